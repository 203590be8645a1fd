"""Official accounts end to end against wxpush-mock: one token for many sends,
validation before anything goes upstream, compare-and-refresh, retries, final
errors, busy, restart without a token call, wrong secrets, and the logs."""

import concurrent.futures
import json
import signal
import time
import urllib.request

import msgpack

from wxtest import APPID, SECRET, SUBSCRIBE, Daemon, Mock, Tap, message, wait_for

t = Tap(timeout=280)
mock = Mock()
d = Daemon(mock=mock, extra="max_inflight = 8\nqueue_limit = 100")


def send(c=None, **kw):
    if c is None:
        return d.call("send", message(**kw))
    return c.call("send", message(**kw))


def pipelined(n, **kw):
    c = d.client()
    ids = [c.request("send", message(**kw)) for _ in range(n)]
    res = [c.wait(i, 30) for i in ids]
    c.close()
    return res


# First send fetches one token; 50 pipelined sends reuse it.
err, res = send()
t.ok(err is None and res["errcode"] == 0 and res["attempts"] == 1, "a send succeeds", err)
t.eq(mock.token_calls(), 1, "the first send fetched one token")
body = mock.sends()[-1]["body"]
t.eq(body, {"touser": "oUSER_openid_0001", "template_id": "TEMPLATE_id_0001",
            "scene": "1000", "title": "订阅通知",
            "data": {"content": {"value": "您好, wxpushd!", "color": "#FF0000"}}},
     "WeChat got the exact body, scene as a string")
res = pipelined(50)
t.ok(all(e is None for e, r in res), "50 pipelined sends succeed",
     [e for e, r in res if e][:3])
t.eq(mock.token_calls(), 1, "and reuse the same token")
t.eq(len(mock.sends()), 51, "WeChat received 51 messages")

# Each validation failure is answered precisely and nothing goes upstream.
before = mock.calls(SUBSCRIBE)
cases = [
    ("title", dict(title="这是一个超过十五个字的订阅通知标题啊啊")),
    ("title", dict(title=None)),
    ("touser", dict(touser=None)),
    ("template_id", dict(template_id=None)),
    ("scene", dict(scene=10001)),
    ("scene", dict(scene="12a")),
    ("scene", dict(scene=-1)),
    ("data.content.value", dict(data={"content": {"value": "x" * 201}})),
    ("data.content.color", dict(data={"content": {"value": "x", "color": "red"}})),
    ("url", dict(url="ftp://example.com/")),
    ("miniprogram.pagepath", dict(miniprogram={"appid": "wxmini"})),
    ("bogus", dict(bogus=1)),
    ("appid", dict(appid=None)),
]
for field, kw in cases:
    err, res = send(**kw)
    t.ok(err is not None and err["code"] == "invalid_request" and
         err.get("field") == field and err["retryable"] is False,
         "invalid %s is refused with field %s" % (field, field), err)
c = d.client()
c.send_raw(msgpack.packb([0, 9, "send", [{"appid": APPID, "touser": "o", "template_id": "t",
                                         "scene": 1, "title": b"\xff\xfe",
                                         "data": {"content": {"value": "x"}}}]],
                         use_bin_type=False))
err, res = c.wait(9)
t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "title",
     "invalid UTF-8 in the title is refused", err)
c.close()
t.eq(mock.calls(SUBSCRIBE), before, "nothing was sent upstream for invalid requests")

err, res = send(appid="wxunknownappid0000")
t.ok(err is not None and err["code"] == "unknown_appid", "an unconfigured appid", err)

# Token invalidated upstream, then 50 concurrent sends: all succeed, one refresh.
mock.invalidate(APPID)
tc = mock.token_calls()
res = pipelined(50)
t.ok(all(e is None for e, r in res), "50 sends after invalidation all succeed",
     [e for e, r in res if e][:3])
t.eq(mock.token_calls() - tc, 1, "with exactly one token refresh")
t.ok(max(r["attempts"] for e, r in res if r) == 2, "the refused ones took two attempts")

# -1 once: retried and delivered.
mock.fault(SUBSCRIBE, 1, errcode=-1)
err, res = send()
t.ok(err is None and res["attempts"] == 2, "-1 once is retried and succeeds", (err, res))

# 43101: final, not retried.
before = mock.calls(SUBSCRIBE)
mock.fault(SUBSCRIBE, 1, errcode=43101, errmsg="user refuse to accept the msg rid: 1")
err, res = send()
t.ok(err is not None and err["code"] == "wechat" and err["errcode"] == 43101 and
     err["retryable"] is False, "43101 is a final wechat error", err)
t.eq(mock.calls(SUBSCRIBE) - before, 1, "43101 is not retried")

# 45011: retryable with retry_after (the rest of the minute); 45009 retryable
# once WeChat's quota day turns (midnight UTC+8).
mock.fault(SUBSCRIBE, 1, errcode=45011)
err, res = send()
t.ok(err is not None and err["errcode"] == 45011 and err["retryable"] and
     1 <= err.get("retry_after", 0) <= 60, "45011 is retryable with retry_after", err)
mock.fault(SUBSCRIBE, 1, errcode=45009)
err, res = send()
until_tomorrow = 86400 - (int(time.time()) + 8 * 3600) % 86400
t.ok(err is not None and err["errcode"] == 45009 and err["retryable"] and
     abs(err.get("retry_after", 0) - until_tomorrow) <= 5,
     "45009 is retryable after the quota day turns (retry_after %s, want about %d)" %
     (err.get("retry_after") if err else None, until_tomorrow), err)

# -1 storm: bounded retries, a defined answer within send_timeout.
before = mock.calls(SUBSCRIBE)
mock.fault(SUBSCRIBE, 20, errcode=-1)
t0 = time.time()
err, res = send()
el = time.time() - t0
t.ok(err is not None and err["code"] == "wechat" and err["errcode"] == -1 and
     err["retryable"], "a -1 storm ends in a retryable wechat error", err)
t.ok(mock.calls(SUBSCRIBE) - before <= 4 and el < 9, "with bounded retries (%d calls, %.1fs)"
     % (mock.calls(SUBSCRIBE) - before, el))
mock.reset()

# HTTP 500 once is retried; a dropped connection is a timeout (maybe delivered).
mock.fault(SUBSCRIBE, 1, http_status=502)
err, res = send()
t.ok(err is None and res["attempts"] == 2, "an HTTP 502 is retried", (err, res))
# (curl retries by itself when a reused keep-alive connection dies before any
# answer; each retry may take another pooled connection: drop them all.)
mock.fault(SUBSCRIBE, 20, drop=True)
err, res = send()
t.ok(err is not None and err["code"] == "timeout", "a dropped connection is a timeout", (err, res))
mock.reset()
mock.fault(SUBSCRIBE, 1, broken_body=True)
err, res = send()
t.ok(err is not None and err["code"] == "timeout", "a broken body is a timeout", err)

# busy: max_inflight 8 and queue_limit 100; 120 slow sends, the excess is refused.
mock.fault(SUBSCRIBE, 120, delay_ms=300)
res = pipelined(120)
codes = [e["code"] if e else "ok" for e, r in res]
t.eq(codes.count("busy"), 12, "the 12 sends past max_inflight + queue_limit get busy")
t.ok(codes.count("ok") == 108, "the others are delivered", codes)
mock.reset()

# Status shows the credential but never the token or the secret.
st = d.status()
cr = d.cred()
t.ok(cr["state"] == "valid" and cr["kind"] == "official" and cr["expires_in"] > 7000 and
     cr["token_calls_today"] == 2, "status shows a valid official credential", cr)
token = json.loads(urllib.request.urlopen(urllib.request.Request(
    mock.base + "/cgi-bin/stable_token", data=json.dumps(
        {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}).encode(),
    method="POST")).read())["access_token"]
t.ok(token not in json.dumps(st) and SECRET not in json.dumps(st),
     "status holds neither token nor secret")
stats = d.call("stats")[1]
t.ok(stats["sends_ok"] >= 150 and stats["sends_invalid_request"] >= 14,
     "stats count outcomes", stats)

# Restart: the stored token is reused, no token call.
tc = mock.token_calls()
t.eq(d.stop(), 0, "SIGTERM exits 0")
d.start()
err, res = send()
t.ok(err is None, "a send after restart succeeds", err)
t.eq(mock.token_calls(), tc, "and costs no token call (stored token reused)")

# Logs at debug level hold no token and no secret.
log = d.logtext()
t.ok(token not in log and SECRET not in log, "no token or secret in the debug log")
t.ok("fetching access_token" in log, "the debug log does say what happened")
d.stop()

# Wrong secret: failed state, a clear error, bounded token calls.
mock2 = Mock()
bad = Daemon(mock=mock2, accounts={APPID: "wrong-secret-0000000000000000"})
err, res = bad.call("send", message())
t.ok(err is not None and err["code"] == "unavailable" and err["retryable"],
     "a send with a wrong secret gets unavailable", err)
t.ok(wait_for(lambda: bad.cred()["state"] == "failed", 5), "the credential is failed",
     bad.cred())
t.ok(bad.cred()["last_errcode"] == 40125, "status says why (40125)", bad.cred())
time.sleep(3)
t.ok(mock2.token_calls() <= 2, "token calls stay bounded (%d)" % mock2.token_calls())
t.ok("wrong-secret" not in bad.logtext(), "the wrong secret is not logged either")
bad.stop()

t.done()
