#!/usr/bin/env python3
"""make bench-outbox: the outbox's numbers (docs/performance.md, "The outbox").

  enqueue   acknowledged (committed) enqueues per second, wxpush-bench -m enqueue
  latency   sync send latency alone, then while enqueue runs at full rate
  depth     1,000,000 messages queued: daemon RSS and `delivery` latency
  drain     a backlog drained through wxpush-mock, against the sync send rate

Each measurement is repeated (--reps) and the median reported. Uses
wxpush-mock as WeChat and the daemon's state on the build's filesystem.

usage: outbox.py BUILDDIR [--reps N] [--time S] [--depth N] [--only a,b]
"""

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
os.environ.setdefault("WX_BUILDDIR", os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                                                     else "."))
import wxtest  # noqa: E402
from wxtest import APPID, SECRET, BUILDDIR, Client, Daemon, Mock, message, rss_kib, wait_for  # noqa

BENCH = os.path.join(BUILDDIR, "src", "bench", "wxpush-bench")
NOTOKEN = "wx00000000000000c3"      # the mock refuses the daemon's secret: never sent


def bench(d, method, appid, conns, depth, secs):
    r = subprocess.run([BENCH, "-s", d.sock, "-m", method, "--appid", appid,
                        "-c", str(conns), "-d", str(depth), "-t", str(secs),
                        "--warmup", "1", "--json", "--pid", str(d.proc.pid)],
                       capture_output=True, text=True, timeout=secs + 60)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def ab_mock():
    """The mock of the A/B scripts: APPID gets tokens, NOTOKEN's secret is refused."""
    return Mock(accounts={APPID: SECRET, NOTOKEN: "the-right-secret-0000"})


def interleaved(reps, builds):
    """(rep, build) for reps rounds of the builds in turn, that build's daemon and
    wxpush-bench in use (wxtest.WXPUSHD, BENCH) for each."""
    global BENCH
    for r in range(reps):
        for b in builds:
            wxtest.WXPUSHD = os.path.join(b, "src", "wxpushd", "wxpushd")
            BENCH = os.path.join(b, "src", "bench", "wxpush-bench")
            yield r, b


def daemon(mock, extra=""):
    d = Daemon(mock=mock, accounts={APPID: SECRET, NOTOKEN: "a-wrong-secret-00000"},
               extra="max_inflight = 64\nlog_level = \"warning\"\n" + extra, debug=False)
    d.call("ping")      # the loop runs: the outbox is open
    return d


def run_enqueue(a, mock):
    out = []
    for _ in range(a.reps):
        d = daemon(mock)
        r = bench(d, "enqueue", APPID, 16, 64, a.time)
        out.append(r)
        d.stop()
    rates = [r["ok_rate"] for r in out]
    return {"enqueue_per_s": statistics.median(rates), "runs": rates,
            "p99_ms": statistics.median(r["p99_ms"] for r in out),
            "rss_kib": max(r["rss_kib"] for r in out)}


def run_latency(a, mock):
    """Sync send latency (one client, one request at a time) alone, then while
    enqueue runs for an appid with no token (all disk, no delivery): at full
    rate (16 x 64 in flight) and light (2 x 4)."""
    alone, loaded, light = [], [], []
    for _ in range(a.reps):
        d = daemon(mock)
        alone.append(bench(d, "send", APPID, 1, 1, a.time))
        for conns, depth, out in ((16, 64, loaded), (2, 4, light)):
            p = subprocess.Popen([BENCH, "-s", d.sock, "-m", "enqueue", "--appid",
                                  NOTOKEN, "-c", str(conns), "-d", str(depth),
                                  "-t", str(a.time + 2), "--json"],
                                 stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            r = bench(d, "send", APPID, 1, 1, a.time)
            r["enqueue"] = json.loads(p.communicate()[0])["ok_rate"]
            out.append(r)
        d.stop()
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    return {"alone_p50_ms": med(alone, "p50_ms"), "alone_p99_ms": med(alone, "p99_ms"),
            "full_p50_ms": med(loaded, "p50_ms"), "full_p99_ms": med(loaded, "p99_ms"),
            "full_enqueue_per_s": med(loaded, "enqueue"),
            "light_p50_ms": med(light, "p50_ms"), "light_p99_ms": med(light, "p99_ms"),
            "light_enqueue_per_s": med(light, "enqueue")}


def fill(d, appid, n):
    """Queue n messages the way enqueue writes them, offline (faster than n
    round trips); the daemon must be stopped."""
    db = sqlite3.connect(os.path.join(d.state, "outbox.db"))
    body = json.dumps({"touser": "oUSER_openid_0001", "template_id": "TEMPLATE_id_0001",
                       "scene": "1000", "title": "t", "data": {"content": {"value": "v"}}})
    now = int(time.time())
    db.execute("BEGIN")
    db.executemany("INSERT INTO outbox (appid, kind, body, uid, watch, state, created_at,"
                   " updated_at, next_at, not_after) VALUES (?, 'subscribe_once', ?, 0, 0,"
                   " 0, ?, ?, ?, ?)", ((appid, body, now, now, now, now + 86400)
                                       for _ in range(n)))
    db.execute("COMMIT")
    db.close()


def run_depth(a, mock):
    d = daemon(mock)
    d.stop()
    fill(d, NOTOKEN, a.depth)
    t0 = time.time()
    d.start()
    start_s = time.time() - t0
    time.sleep(3)
    c = Client(d.sock)
    lat = []
    for _ in range(3000):
        i = random.randrange(1, a.depth + 1)
        t1 = time.perf_counter()
        err, res = c.call("delivery", {"id": i})
        lat.append((time.perf_counter() - t1) * 1000)
        assert err is None and res["state"] == "queued", (err, res)
    t1 = time.perf_counter()
    for _ in range(3000):
        c.call("ping")
    ping = (time.perf_counter() - t1) / 3000 * 1000
    err, res = c.call("outbox")
    c.close()
    lat.sort()
    r = {"queued": res["depth"], "rss_kib": rss_kib(d.proc.pid), "start_s": start_s,
         "delivery_p50_ms": lat[len(lat) // 2], "delivery_p99_ms": lat[int(len(lat) * .99)],
         "ping_mean_ms": ping}
    d.stop()
    return r


def run_drain(a, mock):
    out = []
    n = 100000
    for _ in range(a.reps):
        d = daemon(mock)
        sync = bench(d, "send", APPID, 16, 64, a.time)["ok_rate"]
        d.stop()
        fill(d, APPID, n)
        t0 = time.time()
        d.start()
        c = Client(d.sock)
        wait_for(lambda: c.call("outbox")[1]["depth"] == 0, 600, 0.1)
        secs = time.time() - t0
        c.close()
        out.append({"sync_per_s": sync, "drain_per_s": n / secs})
        d.stop()
    return {"sync_per_s": statistics.median(o["sync_per_s"] for o in out),
            "drain_per_s": statistics.median(o["drain_per_s"] for o in out),
            "runs": out}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("builddir")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--time", type=int, default=10)
    p.add_argument("--depth", type=int, default=1000000)
    p.add_argument("--only", default="enqueue,latency,depth,drain")
    a = p.parse_args()
    mock = Mock(accounts={APPID: SECRET, NOTOKEN: "the-right-secret-0000"})
    res = {}
    for name in a.only.split(","):
        res[name] = globals()["run_" + name](a, mock)
        print(json.dumps({name: res[name]}), flush=True)
    mock.stop()


if __name__ == "__main__":
    main()
