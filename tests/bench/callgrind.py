#!/usr/bin/python3
"""Instructions and calls (allocations, system calls) per send of a wxpushd
binary under valgrind --tool=callgrind (issue 18): counts, not times, so
they do not depend on what else the machine runs. Two runs, N1 and N2 sends
(4 clients, one send in flight each, HTTP to nginx as in run.py),
differenced, so that start-up and shutdown cancel out.

With KEEPDIR the two callgrind.out files are kept there (cg-N1.out,
cg-N2.out) for callgrind_annotate; with CONNS DEPTH the load is CONNS
clients with DEPTH sends each in flight (pipelined) instead of 4 x 1.

usage: callgrind.py BUILDDIR WXPUSHD N1 N2 [KEEPDIR [CONNS DEPTH]]
e.g.   tests/bench/callgrind.py . src/wxpushd/wxpushd 400 2400
       tests/bench/callgrind.py . src/wxpushd/wxpushd 2048 8192 /tmp/cg 64 16"""
import os
import re
import sys
import threading
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


def parse(path):
    names, ir, calls = {}, 0, {}
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
            if line.startswith("summary:") or line.startswith("totals:"):
                ir = int(line.split()[1])
    return ir, calls


def one(n):
    if keep:
        os.makedirs(keep, exist_ok=True)
        out = os.path.join(keep, "cg-%d.out" % n)
    else:
        out = os.path.join(wxtest.tmpdir(), "cg.out")
    wrap = os.path.join(wxtest.tmpdir(), "wrap.sh")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec valgrind -q --tool=callgrind --callgrind-out-file=%s %s \"$@\"\n"
                % (out, binary))
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


ir1, c1 = one(n1)
ir2, c2 = one(n2)
k = n2 // conns * conns - n1 // conns * conns
print("instructions per send: %.0f" % ((ir2 - ir1) / k))
for fn in ("malloc", "calloc", "realloc", "free", "poll", "epoll_ctl", "epoll_wait",
           "writev", "readv", "sendto", "recvfrom", "ioctl"):
    a = sum(v for kk, v in c2.items() if kk and kk.split("'")[0] == fn) - \
        sum(v for kk, v in c1.items() if kk and kk.split("'")[0] == fn)
    print("  %s per send: %.2f" % (fn, a / k))
ng.stop()
wxtest._cleanup()
