#!/usr/bin/env python3
"""make bench-authorizers: a million authorizers (docs/performance.md, "A
million authorizers"; docs/scaling.md, sizing).

For each scenario TOTAL:ACTIVE, a third-party platform with TOTAL authorizers
in the daemon's store (wxpush-mock holds them as one bulk range), ACTIVE of
them used within authorizer_idle (one day), the rest idle for five days:

  ready     seconds from starting wxpushd to its first answered ping
  rss       VmRSS once ready, and once every active authorizer holds a token
  calls     api_authorizer_token calls over a window of --window seconds once
            all hold tokens, with wxpush-mock's tokens living --expires-in
            seconds (refresh_margin 10): the calls per active authorizer per
            token life, extrapolated to WeChat's 7200 s tokens with the default
            refresh_margin (300 s, jitter up to 60 s: a refresh every 6870 s
            on average), per hour
  idle send a send as an idle authorizer (loaded from the store, one
            api_authorizer_token call, then the send), against a send as an
            active one and one bare HTTP round trip to the mock's
            api_authorizer_token (an error answer: the same path, no token)
  lookup    the daemon's on-demand read (SELECT ... WHERE appid = ?) timed
            with Python's sqlite3 on the same database

usage: authorizers.py BUILDDIR [--scenarios 1000000:10000,1000000:100000]
                      [--window S] [--expires-in S] [--samples N] [--json-out F]
"""

import argparse
import http.client
import json
import os
import random
import sqlite3
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
os.environ.setdefault("WX_BUILDDIR", os.path.abspath(sys.argv[1] if len(sys.argv) > 1
                                                     else "."))
from wxtest import COMPONENT, COMPONENTS, Daemon, Mock, message, rss_kib, wait_for  # noqa

AUTH_EP = "/cgi-bin/component/api_authorizer_token"
PREFIX = "wxbulk"
REAL_CYCLE = 7200 - 300 - 30     # WeChat's token life - margin - mean jitter


def summary(d):
    """The platform's summary alone: a page of one keeps 100,000 loaded
    authorizers out of the answer."""
    try:
        err, res = d.call("status", {"appid": COMPONENT, "authorizers_limit": 1},
                          timeout=60)
    except OSError:     # a loop busy with a start's token commits
        return {}
    for c in (res or {}).get("credentials", []):
        if c["appid"] == COMPONENT:
            return c.get("authorizers", {})
    return {}


def seed(d, total, active, refresh_prefix, ticket):
    now = int(time.time())
    t0 = time.time()
    with sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=30) as c:
        c.execute("INSERT OR REPLACE INTO tickets (component_appid, ticket, received_at) "
                  "VALUES (?, ?, ?)", (COMPONENT, ticket, now))
        rows = (("%s%07d" % (PREFIX, i), COMPONENT,
                 refresh_prefix + "%s%07d" % (PREFIX, i), now - 5 * 86400,
                 now - 600 if i < active else now - 5 * 86400) for i in range(total))
        c.executemany("INSERT INTO authorizers (appid, component_appid, refresh_token, "
                      "revoked, updated_at, last_used) VALUES (?, ?, ?, 0, ?, ?)", rows)
    return time.time() - t0


def lookup_cost(path, total, n):
    c = sqlite3.connect(path)
    ts = []
    for _ in range(n):
        a = "%s%07d" % (PREFIX, random.randrange(total))
        t0 = time.perf_counter()
        c.execute("SELECT component_appid, appid, refresh_token, revoked, updated_at, "
                  "last_used FROM authorizers WHERE appid = ?", (a,)).fetchone()
        ts.append(time.perf_counter() - t0)
    c.close()
    return statistics.median(ts) * 1e6, max(ts) * 1e6


def rtt(mock, n):
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", AUTH_EP + "?component_access_token=x", "{}",
                     {"Content-Type": "application/json"})
        conn.getresponse().read()
        ts.append(time.perf_counter() - t0)
    conn.close()
    return statistics.median(ts) * 1000


def sends(d, appids):
    c = d.client()
    ts, errs = [], 0
    for a in appids:
        t0 = time.perf_counter()
        err, _ = c.call("send", message(appid=a), timeout=30)
        ts.append(time.perf_counter() - t0)
        errs += err is not None
    c.close()
    return statistics.median(ts) * 1000, max(ts) * 1000, errs


def scenario(args, total, active):
    say = lambda *a: print(*a, flush=True)  # noqa: E731
    say("== %d authorizers, %d active" % (total, active))
    mock = Mock(accounts={}, components=COMPONENTS,
                args=["--expires-in", str(args.expires_in)])
    bulk = mock.post("/mock/component/bulk", {"component_appid": COMPONENT,
                                              "prefix": PREFIX, "count": total})
    ticket = mock.post("/mock/component/event", {
        "component_appid": COMPONENT, "info_type": "component_verify_ticket"})["ticket"]
    d = Daemon(mock=mock, accounts={}, components=COMPONENTS, debug=False, start=False)
    d.write_conf(d.default_conf(extra='authorizer_idle = 86400\nlog_level = "warning"\n'
                                'max_clients = 1000\n')
                 .replace("refresh_margin = 300", "refresh_margin = 10")
                 .replace("upstream_timeout = 3", "upstream_timeout = 10")
                 .replace("send_timeout = 8", "send_timeout = 30"))
    d.start()
    wait_for(lambda: any(c["appid"] == COMPONENT for c in d.status()["credentials"]), 10)
    d.stop()
    seeded = seed(d, total, active, bulk["refresh_token_prefix"], ticket)
    db = os.path.join(d.state, "wxpushd.db")
    say("  seeded %d rows in %.1f s; database %.0f MiB" % (
        total, seeded, os.path.getsize(db) / 1048576.0))

    t0 = time.time()
    d.start(wait=False)
    ready = None
    while time.time() - t0 < 60:
        try:
            err, _ = d.call("ping", timeout=5)
            if err is None:
                ready = time.time() - t0
                break
        except OSError:
            pass
        time.sleep(0.01)
    rss_ready = rss_kib(d.proc.pid)
    say("  ready in %.3f s, rss %.1f MiB" % (ready or -1, rss_ready / 1024.0))
    s = summary(d)
    say("  status: %s" % json.dumps(s))
    t1 = time.time()
    filled = wait_for(lambda: summary(d).get("states", {}).get("valid", 0) >= active,
                      1200, 1)
    fill = time.time() - t1
    rss_valid = rss_kib(d.proc.pid)
    say("  %d active hold tokens after %.1f s (%s); rss %.1f MiB" % (
        active, fill, "all" if filled else "NOT all", rss_valid / 1024.0))

    c0 = mock.calls(AUTH_EP)
    time.sleep(args.window)     # 0: the fill only, no window
    calls = mock.calls(AUTH_EP) - c0
    cycle = args.expires_in - 10 - 1          # margin 10, mean jitter 1 (a fifth of 10 / 2)
    per_life = calls * cycle / float(max(args.window, 1) * active)
    per_hour = per_life * active * 3600.0 / REAL_CYCLE
    rss_after = rss_kib(d.proc.pid)
    loaded = summary(d).get("loaded")
    say("  %d api_authorizer_token calls in %d s (tokens of %d s): %.2f per active "
        "authorizer per token life; %.0f per hour with 7200 s tokens; loaded %s; rss %.1f MiB"
        % (calls, args.window, args.expires_in, per_life, per_hour, loaded,
           rss_after / 1024.0))

    round_trip = rtt(mock, args.samples)
    act_med, act_max, act_err = sends(d, ["%s%07d" % (PREFIX, i)
                                          for i in random.sample(range(active),
                                                                 args.samples)])
    idle_ids = ["%s%07d" % (PREFIX, i)
                for i in random.sample(range(active, total), args.samples)]
    c1 = mock.calls(AUTH_EP)
    idle_med, idle_max, idle_err = sends(d, idle_ids)
    idle_calls = mock.calls(AUTH_EP) - c1
    look_med, look_max = lookup_cost(db, total, 1000)
    say("  sends: active p50 %.2f ms (max %.2f, %d errors); idle p50 %.2f ms (max %.2f, "
        "%d errors, %d token calls for %d sends); mock round trip p50 %.2f ms; idle - active "
        "= %.2f ms; store lookup p50 %.0f us (max %.0f)"
        % (act_med, act_max, act_err, idle_med, idle_max, idle_err, idle_calls,
           args.samples, round_trip, idle_med - act_med, look_med, look_max))
    d.stop()
    mock.stop()
    return {"total": total, "active": active, "seed_s": seeded, "ready_s": ready,
            "rss_ready_kib": rss_ready, "rss_valid_kib": rss_valid,
            "rss_after_kib": rss_after, "fill_s": fill, "all_valid": bool(filled),
            "window_s": args.window, "expires_in": args.expires_in, "calls": calls,
            "calls_per_life": per_life, "calls_per_hour_7200": per_hour,
            "loaded": loaded, "rtt_ms": round_trip, "active_send_ms": act_med,
            "idle_send_ms": idle_med, "idle_send_max_ms": idle_max,
            "idle_token_calls": idle_calls, "idle_errors": idle_err,
            "active_errors": act_err, "lookup_us": look_med, "status": s}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("builddir")
    p.add_argument("--scenarios", default="1000000:10000,1000000:100000")
    p.add_argument("--window", type=int, default=120)
    p.add_argument("--expires-in", type=int, default=120)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--json-out")
    args = p.parse_args()
    out = []
    for sc in args.scenarios.split(","):
        total, active = (int(x) for x in sc.split(":"))
        out.append(scenario(args, total, active))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
