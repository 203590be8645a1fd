"""jssdk_sign against wxpush-mock: the signature matches an independent
computation of WeChat's documented algorithm (hashlib), the jsapi_ticket is
fetched once, kept in the store across a restart, refreshed before it
expires, fetched again after a 40001 only once the access token was
refreshed, and never leaves the daemon."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from wxtest import APPID, Daemon, Mock, Tap, free_port, tmpdir, wait_for

t = Tap(timeout=200)
GETTICKET = "/cgi-bin/ticket/getticket"


def tickets(mock):
    return [x["value"] for x in mock.tokens()["tokens"]
            if x["kind"] == "jsapi_ticket" and x["appid"] == APPID]


def expected(ticket, res, url):
    # WeChat's JS-SDK documentation, appendix 1: sha1 over the four fields in
    # this order, keys lowercase, the URL without its #fragment.
    s = "jsapi_ticket=%s&noncestr=%s&timestamp=%d&url=%s" % (
        ticket, res["nonceStr"], res["timestamp"], url)
    return hashlib.sha1(s.encode()).hexdigest()


mock = Mock()
d = Daemon(mock=mock)
PAGE = "https://www.example.com/shop/item?id=7&from=menu"

err, res = d.call("jssdk_sign", {"appid": APPID, "url": PAGE + "#reviews"})
t.ok(err is None and set(res) == {"appId", "timestamp", "nonceStr", "signature"},
     "jssdk_sign answers appId, timestamp, nonceStr, signature", err or res)
t.ok(res["appId"] == APPID and abs(res["timestamp"] - time.time()) < 60 and
     len(res["nonceStr"]) == 16, "for the appid, now, with a fresh nonce", res)
tk = tickets(mock)
t.eq(len(tk), 1, "one jsapi_ticket was fetched")
t.eq(res["signature"], expected(tk[-1], res, PAGE),
     "the signature is sha1 of WeChat's string, the URL without its fragment")
err, res2 = d.call("jssdk_sign", {"appid": APPID, "url": PAGE})
t.ok(err is None and res2["signature"] == expected(tk[-1], res2, PAGE) and
     res2["nonceStr"] != res["nonceStr"], "a second signature, another nonce", err)
t.eq(mock.calls(GETTICKET), 1, "the ticket is reused")

# Refusals.
for params, code, field in [
        ({"appid": APPID, "url": "ftp://x/"}, "invalid_request", "url"),
        ({"appid": APPID, "url": "https://x/a b"}, "invalid_request", "url"),
        ({"appid": APPID, "url": "https://x/" + "a" * 3000}, "invalid_request", "url"),
        ({"appid": APPID}, "invalid_request", "url"),
        ({"url": PAGE}, "invalid_request", "appid"),
        ({"appid": APPID, "url": PAGE, "ticket": "x"}, "invalid_request", "params"),
        ({"appid": "wxunknown000000000", "url": PAGE}, "unknown_appid", "appid")]:
    err, res = d.call("jssdk_sign", params)
    t.ok(err is not None and err["code"] == code and err.get("field") == field,
         "%s: %s" % (code, json.dumps(params)[:60]), err)

# The ticket never leaves the daemon: not in status, stats or the log.
st = json.dumps(d.status())
err, stats = d.call("stats")
t.ok(tk[-1] not in st and tk[-1] not in json.dumps(stats),
     "the ticket is not in status or stats")
t.ok(any(c["appid"] == APPID + "/jsapi" and c["kind"] == "jsapi_ticket" and
         c["state"] == "valid" for c in d.status(APPID)["credentials"]),
     "status --appid APPID shows its credential APPID/jsapi, kind jsapi_ticket", st)
t.ok(tk[-1] not in d.logtext(), "the ticket is not in the log")

# A restart takes the stored ticket: no getticket call.
t.eq(d.stop(), 0, "wxpushd stops")
d.start()
err, res = d.call("jssdk_sign", {"appid": APPID, "url": PAGE})
t.ok(err is None and res["signature"] == expected(tk[-1], res, PAGE),
     "after a restart the stored ticket signs", err)
t.eq(mock.calls(GETTICKET), 1, "without a getticket call")
t.eq(d.stop(), 0, "wxpushd stops")

# 40001 from getticket: the access token is refreshed first, then the ticket.
# (The classic API: a stable token refused while WeChat still hands it out
# would add a force_refresh call, which is cred.c's business.)
d2 = Daemon(mock=mock, account_extra="token_api = classic")
wait_for(lambda: d2.cred() and d2.cred()["state"] == "valid", 10)
tc = mock.token_calls()
mock.fault(GETTICKET, 1, errcode=40001)
err, res = d2.call("jssdk_sign", {"appid": APPID, "url": PAGE})
tk = tickets(mock)
t.ok(err is None and res["signature"] == expected(tk[-1], res, PAGE),
     "a getticket refused with 40001 still ends in a signature", err)
t.eq(mock.token_calls(), tc + 1, "after one access token refresh")
t.eq(mock.calls(GETTICKET), 3, "and a second getticket call")
t.eq(d2.stop(), 0, "wxpushd stops")

# A refusal that needs an operator (48001: no JS-SDK rights) fails at once.
d3 = Daemon(mock=mock)
n = mock.calls(GETTICKET)
mock.fault(GETTICKET, 1, errcode=48001)
started = time.time()
err, res = d3.call("jssdk_sign", {"appid": APPID, "url": PAGE})
t.ok(err is not None and err["code"] == "unavailable" and
     "getticket" in err["message"] and time.time() - started < 6,
     "getticket refused with 48001: unavailable at once", err)
t.eq(mock.calls(GETTICKET), n + 1, "with one getticket call, not a loop")
t.eq(d3.stop(), 0, "wxpushd stops")

# Refreshed before it expires, without a signature asking.
mock2 = Mock(args=["--expires-in", "30"])
d4 = Daemon(mock=mock2, extra="refresh_margin = 10")
err, res = d4.call("jssdk_sign", {"appid": APPID, "url": PAGE})
t.ok(err is None, "a signature with 30-second tickets", err)
t.ok(wait_for(lambda: mock2.calls(GETTICKET) >= 2, 40, 0.5),
     "the ticket is refreshed before it expires", mock2.calls(GETTICKET))
err, res = d4.call("jssdk_sign", {"appid": APPID, "url": PAGE})
tk = [x["value"] for x in mock2.tokens()["tokens"] if x["kind"] == "jsapi_ticket"]
t.ok(err is None and res["signature"] == expected(tk[-1], res, PAGE),
     "and the new ticket signs", err)

# A reload that removes the appid removes its ticket too.
d4.write_conf(d4.default_conf(accounts={"wxother00000000001": "othersecret"}))
d4.sig(signal.SIGHUP)
t.ok(wait_for(lambda: not any(c["appid"].startswith(APPID)
                              for c in d4.status()["credentials"]), 10, 0.2),
     "removing the appid removes APPID/jsapi", d4.status())
err, res = d4.call("jssdk_sign", {"appid": APPID, "url": PAGE})
t.ok(err is not None and err["code"] == "unknown_appid", "and signing is refused", err)
t.eq(d4.stop(), 0, "wxpushd stops")
mock2.stop()

# Shared through Redis like a token: a second daemon signs with the first's
# ticket, without a getticket call of its own.
REDIS = shutil.which("redis-server")
if REDIS is None:
    t.ok(True, "# SKIP redis-server is not installed")
else:
    port = free_port()
    rdir = tmpdir()
    rlog = open(os.path.join(rdir, "redis.log"), "w")
    redis = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", rdir],
                             stdout=rlog, stderr=rlog)

    def redis_up():
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            return False

    wait_for(redis_up, 10, 0.05)
    mock3 = Mock()
    extra = 'redis = "redis://127.0.0.1:%d"' % port
    a = Daemon(mock=mock3, extra=extra)
    b = Daemon(mock=mock3, extra=extra)
    err, res = a.call("jssdk_sign", {"appid": APPID, "url": PAGE})
    t.ok(err is None, "daemon A signs", err)
    err, res = b.call("jssdk_sign", {"appid": APPID, "url": PAGE})
    tk = [x["value"] for x in mock3.tokens()["tokens"] if x["kind"] == "jsapi_ticket"]
    t.ok(err is None and len(tk) == 1 and res["signature"] == expected(tk[0], res, PAGE),
         "daemon B signs with the same ticket", (err, tk))
    t.eq(mock3.calls(GETTICKET), 1, "one getticket call for both daemons")
    t.eq(a.stop(), 0, "daemon A stops")
    t.eq(b.stop(), 0, "daemon B stops")
    mock3.stop()
    redis.terminate()
    redis.wait(10)
mock.stop()
t.done()
