#!/usr/bin/env python3
"""Sync send latency (one client, one at a time) while enqueue runs at full
rate (16 x 64, an appid with no token), builds interleaved
(docs/performance.md). usage: outbox_lat.py REPS BUILDDIR...
"""
import os, sys, time, json, statistics, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("WX_BUILDDIR", sys.argv[2])
import outbox as ob
from wxtest import APPID
reps = int(sys.argv[1]); builds = sys.argv[2:]
mock = ob.ab_mock()
res = {b: [] for b in builds}
for r, b in ob.interleaved(reps, builds):
    d = ob.daemon(mock)
    p = subprocess.Popen([ob.BENCH, "-s", d.sock, "-m", "enqueue", "--appid", ob.NOTOKEN,
                          "-c", "16", "-d", "64", "-t", "8", "--json"], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    x = ob.bench(d, "send", APPID, 1, 1, 6)
    enq = json.loads(p.communicate()[0])["ok_rate"]
    d.stop()
    y = {"p50": x["p50_ms"], "p99": x["p99_ms"], "enq": enq}
    res[b].append(y)
    print(os.path.basename(b), r, y, "load", os.getloadavg()[0], flush=True)
for b in builds:
    print(b, {k: statistics.median(y[k] for y in res[b]) for k in ("p50", "p99", "enq")})
mock.stop()
