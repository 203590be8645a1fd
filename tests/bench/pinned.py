#!/usr/bin/python3
"""CPU per request of the bare libcurl client and per send of the daemon
(issue 18) with the measured process alone on CPU 0 and nginx and the load
generator on CPU 1 (taskset), so that the two do not differ in whom they
share a CPU with. HTTP to nginx as in run.py; REPS pairs of 6 s runs, the
bare client with 64 transfers in flight, the daemon under 64 x DEPTH.

usage: pinned.py BUILDDIR WXPUSHD [DEPTH [REPS]]
e.g.   tests/bench/pinned.py . src/wxpushd/wxpushd 16 3"""
import json
import os
import subprocess
import sys
bd, binary = sys.argv[1], sys.argv[2]
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 16
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
sys.argv = ["run.py", bd, "--only", "http"]
sys.path.insert(0, os.path.join(bd, "tests", "bench"))
import run
import wxtest
wxtest.WXPUSHD = binary


def pin(pid, cpu):
    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True,
                   capture_output=True)


def bench(cpu, args):
    p = subprocess.run(["taskset", "-c", cpu, run.BENCH, "--json"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=120)
    return json.loads([l for l in p.stdout.splitlines() if l.startswith("{")][-1])


cert, key = run.pki(wxtest.tmpdir())
ng = run.Nginx(cert, key)
for p in subprocess.run(["pgrep", "-x", "nginx"], capture_output=True, text=True).stdout.split():
    pin(int(p), "1")
d = run.daemon(ng.base(False), max_inflight=64)
pin(d.proc.pid, "0")
load = ["-s", d.sock, "--appid", wxtest.APPID, "-c", 64, "-d", depth]
bench("1", load + ["-t", 2, "-w", 0])
for i in range(reps):
    b = bench("0", ["--reference-bare", ng.base(False), "--token", run.TOKEN, "-c", 64,
                    "-d", 1, "-t", 6, "-w", 1])
    r = bench("1", load + ["-t", 6, "-w", 1, "--pid", d.proc.pid])
    own = r["pid_cpu_us_per_answer"] + r["self_cpu_us_per_answer"]
    print("run %d: bare %.0f/s %.1f us | daemon %.0f/s %.1f us + clients %.1f us | ratio %.2f"
          % (i + 1, b["ok_rate"], b["self_cpu_us_per_answer"], r["ok_rate"],
             r["pid_cpu_us_per_answer"], r["self_cpu_us_per_answer"],
             b["self_cpu_us_per_answer"] / own))
d.stop()
ng.stop()
wxtest._cleanup()
