"""Idempotency keys: a repeated send is answered with the first outcome and
goes upstream once, also while the first is in flight and across restarts;
keys are scoped per appid and per caller uid; retryable failures are not
remembered, final refusals and timeouts are."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

from wxtest import APPID, SECRET, SUBSCRIBE, Daemon, Mock, Tap, message

t = Tap(timeout=120)
APPID2 = "wx00000000000000b2"
SECRET2 = "another-secret-0123456789"
NOBODY = 65534
mock = Mock(accounts={APPID: SECRET, APPID2: SECRET2})
d = Daemon(mock=mock, accounts={APPID: SECRET, APPID2: SECRET2},
           extra='max_inflight = 8\nsocket_mode = "0666"',
           account_extra='allow = { "uid:%d" }' % NOBODY)


def send(key, c=None, **kw):
    m = message(idempotency_key=key, **kw)
    if c is None:
        return d.call("send", m)
    return c.call("send", m)


def upstream():
    return mock.calls(SUBSCRIBE)


def delivered(text):
    return sum(1 for s in mock.sends() if s["body"]["data"]["content"]["value"] == text)


# A repeat gets the first outcome and costs no upstream call.
err, first = send("order-1")
t.ok(err is None and first["errcode"] == 0, "a keyed send is delivered", err)
n = upstream()
err, again = send("order-1")
t.eq((err, again), (None, first), "the repeat gets the same result")
t.eq(upstream(), n, "and nothing goes upstream")
t.eq(len(mock.sends()), 1, "WeChat has the message once")

# Another key, or the same key for another appid: separate messages.
err, res = send("order-2")
t.ok(err is None and upstream() == n + 1, "another key is another message", err)
err, res = send("order-1", appid=APPID2)
t.ok(err is None and upstream() == n + 2, "the same key for another appid is sent", err)

# The same key for a different message is an error, not a silent replay.
err, res = send("order-1", title="另一条通知")
t.ok(err is not None and err["code"] == "invalid_request" and
     err.get("field") == "idempotency_key", "a key reused for another message is refused",
     err)

# Concurrent duplicates while the first is in flight: one upstream call, one answer each.
mock.fault(SUBSCRIBE, 1, delay_ms=1500)
n = upstream()
conns = [d.client() for _ in range(3)]
text = "concurrent duplicate"
ids = [(c, c.request("send", message(idempotency_key="dup-1",
                                         data={"content": {"value": text}})))
       for c in conns for _ in range(3)]
res = [c.wait(i, 15) for c, i in ids]
for c in conns:
    c.close()
t.ok(all(e is None for e, r in res) and len({str(r) for e, r in res}) == 1,
     "9 concurrent duplicates on 3 connections all get the same success", res[:3])
t.eq(upstream() - n, 1, "with one upstream call")
t.eq(delivered(text), 1, "and one delivery")

# A client that gives up (its own timeout) and repeats on a new connection
# waits for the first send and gets its outcome.
mock.fault(SUBSCRIBE, 1, delay_ms=2000)
n = upstream()
c = d.client()
c.request("send", message(idempotency_key="gave-up", data={"content": {"value": "gave up"}}))
time.sleep(0.5)
c.close()
t0 = time.time()
err, res = send("gave-up", data={"content": {"value": "gave up"}})
t.ok(err is None and res["errcode"] == 0 and 1.0 <= time.time() - t0 <= 3.0,
     "a repeat after the client gave up waits for the first send (%.1fs)" % (time.time() - t0),
     err)
t.eq((upstream() - n, delivered("gave up")), (1, 1), "which went upstream once")

# Retryable failures are not remembered: the repeat is sent.
for name, fault in (("a -1 storm", dict(errcode=-1)), ("HTTP 503", dict(http_status=503)),
                    ("45011", dict(errcode=45011))):
    key = "retry-" + name.replace(" ", "-")
    mock.fault(SUBSCRIBE, 10, **fault)
    err, res = send(key)
    mock.reset()
    t.ok(err is not None and err["retryable"], "%s: a retryable failure (%s)" % (
        name, err and err["code"]), err)
    n = upstream()
    err, res = send(key)
    t.ok(err is None and upstream() == n + 1,
         "%s: not remembered, the repeat is delivered" % name, err)

# A final refusal is remembered.
mock.fault(SUBSCRIBE, 1, errcode=43101)
err1, res = send("refused-1")
n = upstream()
err2, res = send("refused-1")
t.ok(err1 is not None and err1["errcode"] == 43101 and err2 == err1 and upstream() == n,
     "a final refusal (43101) is remembered and not sent again", (err1, err2))

# A timeout is remembered: the message may have been delivered.
mock.fault(SUBSCRIBE, 1, delay_ms=4000)
err1, res = send("slow-1")
n = upstream()
err2, res = send("slow-1")
t.ok(err1 is not None and err1["code"] == "timeout" and err2 == err1 and upstream() == n,
     "a timeout is remembered: the repeat is not sent again", (err1, err2))

# Keys are per caller uid: another user's same key is its own message.
if os.geteuid() == 0:
    code = r"""
import socket, sys, msgpack
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(msgpack.packb([0, 1, "send", [{"appid": sys.argv[2], "touser": "oUSER_openid_0001",
    "template_id": "TEMPLATE_id_0001", "scene": 1000, "title": "t",
    "data": {"content": {"value": "from nobody"}}, "idempotency_key": "order-1"}]]))
u = msgpack.Unpacker(raw=False)
while True:
    u.feed(s.recv(65536))
    for m in u:
        print(repr(m[2])); sys.exit(0)
"""

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    n = upstream()
    runs = [subprocess.run([sys.executable, "-c", code, d.sock, APPID], capture_output=True,
                           text=True, timeout=20, preexec_fn=as_nobody) for _ in range(2)]
    t.ok([r.stdout.strip() for r in runs] == ["None", "None"],
         "another uid may use the same key", [(r.stdout, r.stderr[-300:]) for r in runs])
    t.eq(upstream() - n, 1, "its key is its own: sent once for it, not answered from root's")
else:
    t.ok(True, "# SKIP per-uid scope needs root")
    t.ok(True, "# SKIP per-uid scope needs root")

# Keys survive a graceful restart.
n = upstream()
t.eq(d.stop(), 0, "SIGTERM exits 0")
db = sqlite3.connect(os.path.join(d.state, "wxpushd.db"))
rows = dict(db.execute("SELECT key, code FROM idempotency WHERE appid = ?", (APPID,)))
db.close()
t.ok(rows.get("order-1") == "ok" and rows.get("refused-1") == "wechat" and
     rows.get("slow-1") == "timeout" and
     all(v == "ok" for k, v in rows.items() if k.startswith("retry-")),
     "the store holds the remembered outcomes, not the retryable failures", rows)
d.start()
err, res = send("order-1")
t.ok((err, res) == (None, first) and upstream() == n, "after a restart the repeat is still "
     "answered from the first outcome", (err, res))
err, res = send("refused-1")
t.ok(err is not None and err["errcode"] == 43101, "and so is a remembered refusal", err)

# Keys survive a crash once written behind (every 200 ms).
err, res = send("crash-1")
t.ok(err is None, "a keyed send before a crash", err)
time.sleep(1)
d.stop(signal.SIGKILL)
d.start()
n = upstream()
err, res2 = send("crash-1")
t.ok(err is None and res2 == res and upstream() == n,
     "after SIGKILL the repeat is answered from the store", (err, res2))
t.ok("idempotency:" in d.logtext() and "loaded" in d.logtext(), "the daemon logs the keys it loaded")
d.stop()
t.done()
