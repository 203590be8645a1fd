#!/usr/bin/python3
"""Instructions and calls (allocations, system calls) per send of a wxpushd
binary under valgrind --tool=callgrind (issue 18): counts, not times, so
they do not depend on what else the machine runs. Two runs, N1 and N2 sends
(4 clients, one send in flight each, HTTP to nginx as in run.py),
differenced, so that start-up and shutdown cancel out.

With KEEPDIR the two callgrind.out files are kept there (cg-N1.out,
cg-N2.out) for callgrind_annotate; with CONNS DEPTH the load is CONNS
clients with DEPTH sends each in flight (pipelined) instead of 4 x 1.

With --sim, valgrind also simulates the caches and branch predictors and
every event is printed per send (I1mr: instruction-cache misses, D1mr/D1mw:
data-cache misses, Bcm/Bim: mispredicted branches). With --bare the client
measured is `wxpush-bench --reference-bare` with CONNS transfers in flight
for N1 and N2 seconds, per request, instead of the daemon.

usage: callgrind.py [--sim] [--bare] BUILDDIR WXPUSHD N1 N2 [KEEPDIR [CONNS DEPTH]]
e.g.   tests/bench/callgrind.py . src/wxpushd/wxpushd 400 2400
       tests/bench/callgrind.py . src/wxpushd/wxpushd 2048 8192 /tmp/cg 64 16
       tests/bench/callgrind.py --sim --bare . - 3 9 /tmp/cg 4 1"""
import json
import os
import re
import subprocess
import sys
import threading
sim = "--sim" in sys.argv
bare = "--bare" in sys.argv
sys.argv = [a for a in sys.argv if a not in ("--sim", "--bare")]
bd, binary, n1, n2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keep = sys.argv[5] if len(sys.argv) > 5 else None
conns = int(sys.argv[6]) if len(sys.argv) > 6 else 4
depth = int(sys.argv[7]) if len(sys.argv) > 7 else 1
sys.argv = ["run.py", bd, "--only", "http"]
sys.path.insert(0, os.path.join(bd, "tests", "bench"))
import run
import wxtest

cert, key = run.pki(wxtest.tmpdir())
ng = run.Nginx(cert, key)


VG = ["valgrind", "-q", "--tool=callgrind"] + (
    ["--cache-sim=yes", "--branch-sim=yes"] if sim else [])


def parse(path):
    """(every event's total, calls by callee); the events are Ir first."""
    names, ir, calls = {}, [0], {}
    cur_cfn = None
    with open(path) as f:
        for line in f:
            m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                if m.group(1) == "cfn":
                    cur_cfn = names.get(m.group(2))
                continue
            if line.startswith("calls="):
                n = int(line.split("=")[1].split()[0])
                calls[cur_cfn] = calls.get(cur_cfn, 0) + n
                continue
            if line.startswith("events:"):
                EVENTS[:] = line.split()[1:]
            if line.startswith("summary:") or line.startswith("totals:"):
                ir = [int(x) for x in line.split()[1:]]
    return ir, calls


EVENTS = ["Ir"]


def one(n):
    if keep:
        os.makedirs(keep, exist_ok=True)
        out = os.path.join(keep, "cg-%d.out" % n)
    else:
        out = os.path.join(wxtest.tmpdir(), "cg.out")
    wrap = os.path.join(wxtest.tmpdir(), "wrap.sh")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec %s --callgrind-out-file=%s %s \"$@\"\n"
                % (" ".join(VG), out, binary))
    os.chmod(wrap, 0o755)
    wxtest.WXPUSHD = wrap
    d = run.daemon(ng.base(False), max_inflight=64)
    cs = [d.client() for _ in range(conns)]
    cs[0].call("send", wxtest.message())     # token

    def worker(c, k):
        if depth == 1:
            for _ in range(k):
                err, _ = c.call("send", wxtest.message(), timeout=60)
                assert err is None, err
            return
        # DEPTH requests written before their answers are read.
        done = 0
        while done < k:
            m = min(depth, k - done)
            ids = [c.request("send", wxtest.message()) for _ in range(m)]
            for i in ids:
                err, _ = c.wait(i, timeout=120)
                assert err is None, err
            done += m
    ts = [threading.Thread(target=worker, args=(c, n // conns)) for c in cs]
    [t.start() for t in ts]
    [t.join() for t in ts]
    d.stop(timeout=120)
    return parse(out)


def one_bare(secs):
    """wxpush-bench --reference-bare for secs seconds: (answers, events, calls)."""
    out = os.path.join(keep or wxtest.tmpdir(), "cg-bare-%d.out" % secs)
    if keep:
        os.makedirs(keep, exist_ok=True)
    p = subprocess.run(VG + ["--callgrind-out-file=" + out, run.BENCH, "--json",
                             "--reference-bare", ng.base(False), "--token", run.TOKEN,
                             "-c", str(conns), "-d", "1", "-t", str(secs), "-w", "0"],
                       capture_output=True, text=True, timeout=600)
    answers = json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])["answers"]
    return (answers,) + parse(out)


if bare:
    a1, ir1, c1 = one_bare(n1)
    a2, ir2, c2 = one_bare(n2)
    k = a2 - a1
else:
    ir1, c1 = one(n1)
    ir2, c2 = one(n2)
    k = n2 // conns * conns - n1 // conns * conns
print("instructions per %s: %.0f" % ("request" if bare else "send", (ir2[0] - ir1[0]) / k))
if sim:
    print("  per %s: %s" % ("request" if bare else "send", ", ".join(
        "%s %.0f" % (e, (b - a) / k) for e, a, b in zip(EVENTS, ir1, ir2))))
for fn in ("malloc", "calloc", "realloc", "free", "poll", "epoll_ctl", "epoll_wait",
           "writev", "readv", "sendto", "recvfrom", "ioctl"):
    a = sum(v for kk, v in c2.items() if kk and kk.split("'")[0] == fn) - \
        sum(v for kk, v in c1.items() if kk and kk.split("'")[0] == fn)
    print("  %s per %s: %.2f" % (fn, "request" if bare else "send", a / k))
ng.stop()
wxtest._cleanup()
