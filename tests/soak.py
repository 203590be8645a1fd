"""Soak: wxpushd under steady traffic for a long time, with tokens that expire
every 30 s and random faults injected into wxpush-mock's token and send
endpoints. Checks that nothing is lost or duplicated and memory stays flat.

    python3 tests/soak.py [SECONDS]        (default 1800; `make soak`)

The environment is the one `make check` gives (WX_BUILDDIR, WX_SRCDIR, and
PYTHONPATH holding tests/integration). tests/integration/test_soak.py runs
the same code for 60 s in `make check`.

What is checked:
- every request gets exactly one answer, with a defined code;
- a recording proxy between the daemon and the mock sees what WeChat
  accepted: every message answered ok was delivered exactly once, no message
  was delivered twice (with or without an idempotency key, repeats
  included), and a message answered with a retryable error was not delivered;
  only `timeout` answers are ambiguous (delivered at most once);
- repeats of a keyed message get the same answer as the first;
- token calls stay proportionate to the token lifetime;
- the daemon's RSS: the mean over the last quarter of the run exceeds the
  mean over the first quarter by no more than max(2 MiB, 5%) plus 400 bytes
  for each idempotency key created between the two (the daemon holds keys for
  24 h by design; one takes about 350 bytes). Skipped under AddressSanitizer,
  whose allocator grows by design.
"""

import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))

from wxproxy import Proxy                                           # noqa: E402
from wxtest import (APPID, SECRET, SUBSCRIBE, Client, Daemon, Mock, Tap,   # noqa: E402
                    message)

APPID2 = "wx00000000000000b2"
SECRET2 = "another-secret-0123456789"
TOKEN_LIFE = 30
SEND_TIMEOUT = 8
KEY_BYTES = 400             # memory allowed per idempotency key held (about 350 used)
INVALIDATE_EVERY = 90       # s between invalidations of one appid: never trip the breaker
RETRYABLE = {"unavailable", "busy"}


class Run:
    def __init__(self, seconds, rate, seed):
        self.seconds = seconds
        self.rate = rate                    # sends per second, all connections
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.next_id = 0
        self.requests = {}                  # (conn, msgid) -> message id
        self.answers = {}                   # (conn, msgid) -> [answer, ...]
        self.by_id = {}                     # message id -> [(key?, answer)]
        self.keyed = set()
        self.dup_pairs = []                 # [((conn, msgid), (conn, msgid))]
        self.rss = []                       # (time, kB)
        self.faults = 0
        self.problems = []

    def new_id(self):
        with self.lock:
            self.next_id += 1
            return "soak m%d" % self.next_id


def outcome(err, res):
    if err is None:
        return ("ok", res.get("errcode"), res.get("attempts"))
    return (err.get("code"), err.get("errcode"), err.get("message"))


def sender(run, d, conn_no, per_conn_rate):
    """One connection: pipelined sends at a steady rate; keyed messages that
    fail retryably are repeated with the same key, some are sent twice."""
    c = Client(d.sock)
    pending = {}                            # msgid -> (id, key, tries, appid)
    retry = []                              # (when, id, key, tries, appid)
    rng = random.Random(run.rng.random())
    interval = 1.0 / per_conn_rate
    nxt = time.time()

    def submit(mid, key, tries, appid):
        m = message(appid=appid, data={"content": {"value": mid}}, idempotency_key=key)
        msgid = c.request("send", m)
        pending[msgid] = (mid, key, tries, appid)
        with run.lock:
            run.requests[(conn_no, msgid)] = mid
        return msgid

    while not run.stop.is_set() or pending or retry:
        now = time.time()
        if not run.stop.is_set() and now >= nxt and len(pending) < 64:
            nxt += interval
            mid = run.new_id()
            appid = APPID if rng.random() < 0.6 else APPID2
            key = None
            if rng.random() < 0.3:
                key = mid.replace(" ", "-")
                with run.lock:
                    run.keyed.add(mid)
            a = submit(mid, key, 0, appid)
            if key is not None and rng.random() < 0.2:
                b = submit(mid, key, 0, appid)      # a duplicate, at once
                run.dup_pairs.append(((conn_no, a), (conn_no, b)))
        for item in [r for r in retry if r[0] <= now]:
            retry.remove(item)
            submit(*item[1:])
        if not pending:
            time.sleep(0.005)
            continue
        try:
            m = c.read_one(timeout=max(0.001, min(0.05, nxt - time.time())))
        except TimeoutError:
            continue
        except OSError as e:
            run.problems.append("connection %d: %r" % (conn_no, e))
            return
        if m is None:
            run.problems.append("connection %d closed by the daemon" % conn_no)
            return
        msgid, err, res = m[1], m[2], m[3]
        o = outcome(err, res)
        with run.lock:
            run.answers.setdefault((conn_no, msgid), []).append(o)
        if msgid not in pending:
            run.problems.append("connection %d: answer to unknown msgid %d" % (conn_no, msgid))
            continue
        mid, key, tries, appid = pending.pop(msgid)
        with run.lock:
            run.by_id.setdefault(mid, []).append((key, o))
        retryable = err is not None and (err.get("code") in RETRYABLE or
                                         (err.get("code") == "wechat" and err.get("retryable")))
        if key is not None and retryable and tries < 3 and not run.stop.is_set():
            retry.append((time.time() + rng.uniform(0.3, 1.0), mid, key, tries + 1, appid))
    c.close()


def faults(run, mock):
    """A random fault now and then, on the token endpoints and the send endpoint."""
    rng = random.Random(run.rng.random())
    invalidated = {}
    token_faults = [dict(errcode=-1), dict(http_status=503), dict(drop=True),
                    dict(delay_ms=500), dict(broken_body=True), dict(errcode=45011)]
    send_faults = [dict(errcode=-1), dict(http_status=502), dict(errcode=45011),
                   dict(delay_ms=300), dict(drop=True), dict(broken_body=True)]
    while not run.stop.wait(rng.uniform(1.0, 4.0)):
        try:
            # A fault waits in the mock until a call comes; the token endpoints
            # are called every 20 s or so: never queue a second one there.
            pending = mock.stats()["faults_pending"]
            r = rng.random()
            if r < 0.35:
                path = rng.choice(["/cgi-bin/stable_token", "/cgi-bin/token"])
                if pending.get(path, 0) != 0:
                    continue
                mock.fault(path, rng.randint(1, 2), **rng.choice(token_faults))
            elif r < 0.9:
                if pending.get(SUBSCRIBE, 0) != 0:
                    continue
                mock.fault(SUBSCRIBE, rng.randint(1, 3), **rng.choice(send_faults))
            else:
                # Another system taking the token. Twice within a minute of
                # a refresh trips wxpushd's breaker (by design): not here.
                appid = rng.choice([APPID, APPID2])
                if time.time() - invalidated.get(appid, 0) < INVALIDATE_EVERY:
                    continue
                invalidated[appid] = time.time()
                mock.invalidate(appid)
            run.faults += 1
        except OSError as e:
            run.problems.append("fault injection: %r" % e)


def sample_rss(run, pid):
    while not run.stop.wait(1.0):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        run.rss.append((time.time(), int(line.split()[1])))
        except OSError:
            return


def sanitized(pid):
    try:
        with open("/proc/%d/maps" % pid) as f:
            return "libasan" in f.read()
    except OSError:
        return False


def main(seconds=1800, rate=None):
    t = Tap(timeout=int(seconds) + 180)
    seconds = int(seconds)
    seed = int(os.environ.get("WX_SEED") or random.randrange(1 << 30))
    rate = rate or 150
    t.diag("soak for %d s at %d sends/s, WX_SEED=%d" % (seconds, rate, seed))
    run = Run(seconds, rate, seed)

    mock = Mock(accounts={APPID: SECRET, APPID2: SECRET2},
                args=["--expires-in", str(TOKEN_LIFE), "--overlap", "10"])
    proxy = Proxy(mock.port)
    d = Daemon(api_base=proxy.base, accounts={APPID: SECRET, APPID2: SECRET2},
               extra="refresh_margin = 10\nupstream_timeout = 2\nsend_timeout = %d\n"
                     "max_inflight = 16\nqueue_limit = 1000" % SEND_TIMEOUT,
               debug=False, start=False)
    d.write_conf(d.default_conf().replace(
        'account "%s" {' % APPID2, 'account "%s" {\n    token_api = "classic"' % APPID2))
    d.start()
    pid = d.proc.pid

    nconn = 4
    threads = [threading.Thread(target=sender, args=(run, d, i, rate / nconn))
               for i in range(nconn)]
    threads.append(threading.Thread(target=faults, args=(run, mock)))
    sampler = threading.Thread(target=sample_rss, args=(run, pid))
    t0 = time.time()
    for th in threads + [sampler]:
        th.start()
    run.stop.wait(seconds)
    run.stop.set()
    for th in threads:
        th.join(SEND_TIMEOUT * 5 + 30)
    sampler.join(5)
    elapsed = time.time() - t0
    time.sleep(0.5)                 # let the proxy record the last answers

    t.ok(not run.problems, "no connection or protocol problem", "\n".join(run.problems[:20]))
    # Every request answered exactly once.
    missing = [k for k in run.requests if k not in run.answers]
    extra = [k for k, v in run.answers.items() if len(v) != 1 or k not in run.requests]
    t.ok(not missing and not extra, "all %d requests got exactly one answer"
         % len(run.requests), "missing %r, extra %r" % (missing[:5], extra[:5]))
    codes = {}
    for v in run.answers.values():
        codes[v[0][0]] = codes.get(v[0][0], 0) + 1
    t.diag("answers by code: %r; faults injected: %d" % (codes, run.faults))
    why = {}
    for v in run.answers.values():
        if v[0][0] != "ok":
            k = "%s %s %s" % v[0]
            why[k] = why.get(k, 0) + 1
    for k, n in sorted(why.items(), key=lambda x: -x[1])[:6]:
        t.diag("  %5d %s" % (n, k))
    t.ok(set(codes) <= {"ok", "unavailable", "busy", "timeout", "wechat"},
         "every answer has a defined code", codes)
    t.ok(codes.get("ok", 0) > 0.5 * len(run.requests), "most sends succeed despite the faults "
         "(%d of %d)" % (codes.get("ok", 0), len(run.requests)))

    # What WeChat accepted, against what the clients were told.
    with proxy.rec.lock:
        delivered = dict(proxy.rec.delivered)
    bad, ambiguous, ok_ids = [], 0, 0
    for mid, answers in run.by_id.items():
        n = delivered.get(mid, 0)
        kinds = {o[0] for k, o in answers}
        if n > 1:
            bad.append("%s delivered %d times (%r)" % (mid, n, answers))
        elif "ok" in kinds:
            ok_ids += 1
            if n != 1:
                bad.append("%s answered ok but delivered %d times" % (mid, n))
        elif "timeout" in kinds:
            ambiguous += n
        elif n != 0:
            bad.append("%s delivered but answered %r" % (mid, answers))
    strays = [k for k in delivered if k.startswith("soak m") and k not in run.by_id]
    t.ok(not bad and not strays, "no message lost or duplicated: %d delivered = %d answered ok "
         "+ %d answered timeout" % (sum(delivered.values()), ok_ids, ambiguous),
         "\n".join(bad[:20] + ["stray: %r" % s for s in strays[:5]]))
    # Repeats of a keyed message got the first answer.
    differ = [(a, b) for a, b in run.dup_pairs
              if run.answers.get(a) != run.answers.get(b)]
    t.ok(run.dup_pairs and not differ, "%d duplicated keyed sends got the same answer twice"
         % len(run.dup_pairs), differ[:5])

    calls = mock.token_calls()
    bound = 2 * (elapsed / (TOKEN_LIFE - 10 - 2) + 2) + 3 * run.faults
    t.ok(calls <= bound, "token calls stay proportionate: %d in %d s (bound %d)"
         % (calls, elapsed, bound))

    # Memory: the last quarter against the first.
    if sanitized(pid):
        t.ok(True, "# SKIP RSS flatness under AddressSanitizer")
    elif len(run.rss) < 8:
        t.ok(False, "enough RSS samples", run.rss)
    else:
        q = len(run.rss) // 4
        first = sum(k for _, k in run.rss[:q]) / q
        last = sum(k for _, k in run.rss[-q:]) / q
        # Between the two quarters' middles, three quarters of the keys came.
        allowed = max(2048, first * 0.05) + 0.75 * len(run.keyed) * KEY_BYTES / 1024
        t.ok(last - first <= allowed, "memory is flat: RSS %.0f kB in the first quarter, %.0f "
             "kB in the last (allowed growth %.0f kB for %d keys)"
             % (first, last, allowed, len(run.keyed)),
             "samples: %r" % [k for _, k in run.rss])

    t.ok(d.proc.poll() is None, "the daemon ran throughout")
    t.eq(d.stop(), 0, "and stops cleanly")
    proxy.stop()
    t.done()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1800)
