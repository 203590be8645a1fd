#!/usr/bin/env python3
"""The outbox's drain against the sync rate, two or more builds interleaved
(docs/performance.md, "The drain, again"): per run the sync rate (16 x 64),
then N messages queued offline and drained, and the CPU seconds of each of
the daemon's threads (largest first: the loop). usage: outbox_ab.py N REPS BUILDDIR...
"""
import os, sys, time, json, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("WX_BUILDDIR", sys.argv[3])
import outbox as ob
from wxtest import APPID, Client, wait_for

def cpu(pid):
    out = {}
    for t in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
            s = f.read()
        f = s[s.rindex(")")+2:].split()
        out[t] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return sorted(out.values(), reverse=True)

n = int(sys.argv[1]); reps = int(sys.argv[2]); builds = sys.argv[3:]
mock = ob.ab_mock()
res = {b: [] for b in builds}
for r, b in ob.interleaved(reps, builds):
    d = ob.daemon(mock)
    sync = ob.bench(d, "send", APPID, 16, 64, 5)["ok_rate"]
    d.stop()
    ob.fill(d, APPID, n)
    t0 = time.time()
    d.start()
    c = Client(d.sock)
    t1 = time.time(); dep1 = c.call("outbox")[1]["depth"]
    wait_for(lambda: c.call("outbox")[1]["depth"] == 0, 600, 0.05)
    t2 = time.time()
    th = cpu(d.proc.pid)
    c.close(); d.stop()
    x = {"sync": sync, "drain": n / (t2 - t0), "drain_ready": dep1 / (t2 - t1), "cpu": th}
    x["ratio"] = x["drain"] / sync
    res[b].append(x)
    print(os.path.basename(b.rstrip("/")), r, json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in x.items()}), "load", os.getloadavg()[0], flush=True)
for b in builds:
    xs = res[b]
    print(b, "median sync %.0f drain %.0f drain_ready %.0f ratio %.2f" % tuple(
        statistics.median(x[k] for x in xs) for k in ("sync", "drain", "drain_ready", "ratio")))
mock.stop()
