#!/usr/bin/python3
"""System calls per send of a wxpushd binary (issue 18): nginx as in
run.py, the daemon under wxpush-bench load (CONNS x DEPTH), and perf stat on
the syscall tracepoints of the daemon for SECS seconds (low overhead, unlike
strace, which slows the daemon so much that nginx answers before libcurl
looks and the counts change), divided by its sendto calls (one per upstream
request over HTTP).

usage: syscalls.py BUILDDIR WXPUSHD CONNS DEPTH SECS [tls]
e.g.   tests/bench/syscalls.py . src/wxpushd/wxpushd 4 1 5"""
import os
import subprocess
import sys
import time
bd, binary, conns, depth, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tls = len(sys.argv) > 6
sys.argv = ["run.py", bd, "--only", "http"]
sys.path.insert(0, os.path.join(bd, "tests", "bench"))
import run
import wxtest
wxtest.WXPUSHD = binary
cert, key = run.pki(wxtest.tmpdir())
ng = run.Nginx(cert, key)
d = run.daemon(ng.base(tls), ca_file=cert if tls else None, max_inflight=64)
run.run_bench(run.dmn_args(d, conns, depth, 2), "warm")
SC = ("poll", "epoll_ctl", "epoll_wait", "sendto", "recvfrom", "readv", "writev", "ioctl",
      "read", "write", "close", "connect")
out = "/tmp/speed/perf-%d.csv" % os.getpid()
load = subprocess.Popen([run.BENCH, "--json", "-s", d.sock, "--appid", wxtest.APPID, "-c", conns,
                         "-d", depth, "-t", str(secs + 3), "-w", "0"], stdout=subprocess.PIPE)
time.sleep(1.5)
run.perf("stat", "-x,", "-o", out, "-e",
         ",".join(["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + s for s in SC]),
         "-p", str(d.proc.pid), "--", "sleep", str(secs))
load.wait()
c = run.perf_counts(out)
n = max(1, c.get("syscalls:sys_enter_sendto", 0))
tot = c.get("raw_syscalls:sys_enter", 0)
print("%s %sx%s%s: sends %d, per send: all %.2f; %s" % (
    os.path.basename(binary), conns, depth, " tls" if tls else "", n, tot / n,
    ", ".join("%s %.2f" % (k.split("_enter_")[1], v / n) for k, v in
              sorted(c.items(), key=lambda kv: -kv[1]) if "_enter_" in k and v)))
d.stop(); ng.stop(); wxtest._cleanup()
