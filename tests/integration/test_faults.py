"""Upstream faults through wxpush-mock that test_send.py and test_refresh.py
do not cover, on the send endpoint and on the token endpoint: every send gets
a defined answer within send_timeout, retries are bounded, token calls stay
few, and the daemon recovers by itself when the upstream heals.

The token-endpoint cases each run their own mock and daemon, in parallel;
the send-endpoint cases share one. Results are reported in a fixed order."""

import signal
import threading
import time

from wxtest import SUBSCRIBE, Daemon, Mock, Tap, message, wait_for

t = Tap(timeout=150)
STABLE = "/cgi-bin/stable_token"
UPSTREAM_TIMEOUT = 1
SEND_TIMEOUT = 4
EXTRA = "upstream_timeout = %d\nsend_timeout = %d" % (UPSTREAM_TIMEOUT, SEND_TIMEOUT)
DEFINED = {"unavailable", "timeout", "wechat", "busy"}
OVERSIZE = 2 * 1024 * 1024      # past upstream.c's 1 MiB cap


def timed_sends(d, n, **kw):
    """n concurrent sends on one connection: [(error, result, seconds)]."""
    c = d.client()
    t0 = time.time()
    ids = [c.request("send", message(**kw)) for _ in range(n)]
    out = []
    for i in ids:
        try:
            err, res = c.wait(i, SEND_TIMEOUT + 10)
        except (OSError, EOFError) as e:
            err, res = {"code": "no answer: %r" % e}, None
        out.append((err, res, time.time() - t0))
    c.close()
    return out


def answered(res, codes=DEFINED):
    """Whether every send got one of codes within send_timeout (+ slack)."""
    return all(err is not None and err.get("code") in codes and el <= SEND_TIMEOUT + 1.0
               for err, r, el in res)


def recovers(d, timeout=25):
    return wait_for(lambda: d.call("send", message(), timeout=SEND_TIMEOUT + 5)[0] is None,
                    timeout, 0.5)


# --- Token endpoint: each fault hits the first fetches of a fresh daemon. ---
TOKEN_CASES = [
    ("slower than upstream_timeout", 3, dict(delay_ms=UPSTREAM_TIMEOUT * 1000 + 700)),
    ("HTTP 503", 3, dict(http_status=503)),
    ("HTTP 500", 3, dict(http_status=500)),
    ("a truncated body", 3, dict(broken_body=True)),
    ("a non-JSON body", 3, dict(http_status=200)),
    ("an oversized body", 3, dict(oversize=OVERSIZE)),
    ("dropped connections", 3, dict(drop=True)),
    ("a -1 storm", 3, dict(errcode=-1)),
    ("45011", 3, dict(errcode=45011)),
]
results = {}


def token_case(name, count, fault):
    r = []
    mock = Mock()
    mock.fault(STABLE, count, **fault)
    d = Daemon(mock=mock, extra=EXTRA)
    res = timed_sends(d, 3)
    r.append((answered(res, {"unavailable"}), "token endpoint, %s: sends get unavailable "
              "within send_timeout" % name, res))
    ok = recovers(d)
    r.append((ok, "token endpoint, %s: recovers by itself" % name, d.cred()))
    calls = mock.calls(STABLE)
    r.append((calls <= count + 2, "token endpoint, %s: %d token calls for %d faults"
              % (name, calls, count), None))
    r.append((d.proc.poll() is None, "token endpoint, %s: the daemon is still running" % name,
              d.logtext()[-2000:]))
    d.stop()
    mock.stop()
    results[name] = r


def quota_case():
    """45009 (daily quota) on the token endpoint: sends fail fast, no retry
    loop; a reload (the operator's "try now") recovers at once."""
    r = []
    mock = Mock()
    mock.fault(STABLE, 1, errcode=45009)
    d = Daemon(mock=mock, extra=EXTRA)
    wait_for(lambda: d.cred()["state"] == "failed", 5)
    res = timed_sends(d, 3)
    r.append((answered(res, {"unavailable"}) and all(el < 1.0 for e, x, el in res),
              "token endpoint, 45009: sends get unavailable at once", res))
    cr = d.cred()
    r.append((cr["state"] == "failed" and cr["last_errcode"] == 45009,
              "token endpoint, 45009: status says failed, 45009", cr))
    time.sleep(2)
    r.append((mock.calls(STABLE) == 1, "token endpoint, 45009: no retry loop (%d calls)"
              % mock.calls(STABLE), None))
    r.append(("retry in 600 s" in d.logtext(), "token endpoint, 45009: retried in 10 minutes",
              d.logtext()[-1000:]))
    d.sig(signal.SIGHUP)
    r.append((wait_for(lambda: d.call("send", message())[0] is None, 10, 0.5),
              "token endpoint, 45009: a reload retries at once", d.cred()))
    d.stop()
    mock.stop()
    results["45009"] = r


threads = [threading.Thread(target=token_case, args=c) for c in TOKEN_CASES]
threads.append(threading.Thread(target=quota_case))
for th in threads:
    th.start()

# --- Send endpoint, on one daemon with a valid token. ---
mock = Mock()
d = Daemon(mock=mock, extra=EXTRA)
t.ok(d.call("send", message())[0] is None, "send endpoint: a first send")
tc = mock.token_calls()


def send_case(name, fault, codes, max_calls, count=20):
    mock.fault(SUBSCRIBE, count, **fault)
    n = mock.calls(SUBSCRIBE)
    res = timed_sends(d, 2)
    calls = mock.calls(SUBSCRIBE) - n
    mock.reset()
    t.ok(answered(res, codes), "send endpoint, %s: %s within send_timeout"
         % (name, " or ".join(sorted(codes))), res)
    t.ok(calls <= max_calls, "send endpoint, %s: bounded retries (%d calls for 2 sends)"
         % (name, calls))
    t.ok(d.call("send", message())[0] is None, "send endpoint, %s: the next send works" % name)


# Slower than upstream_timeout: maybe delivered, so `timeout` and no retry.
send_case("slower than upstream_timeout", dict(delay_ms=UPSTREAM_TIMEOUT * 1000 + 1500),
          {"timeout"}, 2)
send_case("an HTTP 500 storm", dict(http_status=500), {"unavailable"}, 8)
send_case("an HTTP 503 storm", dict(http_status=503), {"unavailable"}, 8)
# A 200 whose body is not JSON, or too large: WeChat may have taken it.
send_case("a non-JSON body", dict(http_status=200), {"timeout"}, 2)
send_case("an oversized body", dict(oversize=OVERSIZE), {"timeout"}, 2)
send_case("a 45009", dict(errcode=45009), {"wechat"}, 2)

# TLS failure: api_base switched to https on the mock's plain HTTP port.
port = mock.port
d.api_base = "https://127.0.0.1:%d" % port
d.write_conf()
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: d.logtext().count("configuration reloaded") == 1, 5), "reload to https")
res = timed_sends(d, 2)
t.ok(answered(res, {"unavailable"}), "send endpoint, TLS failure: unavailable within "
     "send_timeout", res)
t.ok("tls error" in d.logtext(), "the log says it was TLS")
d.api_base = mock.base
d.write_conf()
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: d.logtext().count("configuration reloaded") == 2, 5), "reload to http")
t.ok(recovers(d, 10), "send endpoint, TLS failure: recovers once the upstream is right again")

# Connection refused: the mock goes away mid-traffic, then comes back.
mock.stop()
res = timed_sends(d, 2)
t.ok(answered(res, {"unavailable"}), "send endpoint, connection refused: unavailable "
     "within send_timeout", res)
mock = Mock(args=["-l", "127.0.0.1:%d" % port])
t.ok(recovers(d), "send endpoint, connection refused: recovers when WeChat is back")
t.ok(mock.token_calls() <= 1, "with at most one token call (%d): the new WeChat did not know "
     "the old token" % mock.token_calls())
t.ok(tc == 1, "no token call was spent on send-endpoint faults")
d.stop()

for th in threads:
    th.join()
for name, count, fault in TOKEN_CASES:
    for cond, desc, diag in results.get(name, [(False, "token endpoint, %s: ran" % name,
                                                 None)]):
        t.ok(cond, desc, diag)
for cond, desc, diag in results.get("45009", [(False, "token endpoint, 45009: ran", None)]):
    t.ok(cond, desc, diag)
t.done()
