"""Graceful stop and reload with sends in flight: SIGTERM lets in-flight sends
finish within drain_timeout and answers queued ones at once; past
drain_timeout the in-flight ones get `timeout`; SIGHUP adds, changes and
removes accounts without dropping connections or in-flight sends."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

from wxtest import APPID, SECRET, SUBSCRIBE, Daemon, Mock, Tap, message, wait_for

t = Tap(timeout=120)
APPID2 = "wx00000000000000b2"
SECRET2 = "another-secret-0123456789"
APPID3 = "wx00000000000000c3"
SECRET3 = "third-secret-0123456789ab"
APPID4 = "wx00000000000000d4"
SECRET4 = "fourth-secret-0123456789a"
NOBODY = 65534
ROOT = os.geteuid() == 0


def collect(c, ids, out, timeout=30):
    """Read the answers to ids on c as they arrive: out[msgid] = (error, result, time)."""
    want = set(ids)
    try:
        while want:
            m = c.read_one(timeout)
            if m is None:
                out["error"] = "EOF"
                return
            out[m[1]] = (m[2], m[3], time.time())
            want.discard(m[1])
    except OSError as e:
        out["error"] = repr(e)


# --- SIGTERM: in flight finishes, queued answered at once, exit 0. ---
mock = Mock()
d = Daemon(mock=mock, extra="max_inflight = 1\ndrain_timeout = 10")
t.ok(d.call("send", message())[0] is None, "a first send fetches the token")
mock.fault(SUBSCRIBE, 1, delay_ms=2500)
idle = d.client()
c = d.client()
ids = [c.request("send", message(idempotency_key="stop-%d" % i)) for i in range(4)]
time.sleep(0.4)
out = {}
th = threading.Thread(target=collect, args=(c, ids, out))
th.start()
t0 = time.time()
d.sig(signal.SIGTERM)
time.sleep(0.3)
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect(d.sock)
    refused = False
except OSError:
    refused = True
t.ok(refused, "after SIGTERM no new connection is accepted")
rc = d.proc.wait(15)
el = time.time() - t0
th.join()
first = out.get(ids[0])
t.ok(first is not None and first[0] is None and first[1]["errcode"] == 0,
     "the send in flight completes with success", out)
queued = [out.get(i) for i in ids[1:]]
t.ok(all(q is not None and q[0] is not None and q[0]["code"] == "unavailable" and
         q[0]["retryable"] and q[2] - t0 < 1.5 for q in queued),
     "the queued ones get unavailable at once", queued)
t.ok(rc == 0 and 1.0 <= el < 5, "exit 0 once the in-flight send is done (%.1fs)" % el)
t.eq(len(mock.sends()), 2, "WeChat got the first send and the in-flight one, no more")
idle.close()
db = sqlite3.connect(os.path.join(d.state, "wxpushd.db"))
row = db.execute("SELECT token != '', calls_today FROM tokens WHERE appid = ?",
                 (APPID,)).fetchone()
keys = dict(db.execute("SELECT key, code FROM idempotency"))
db.close()
t.ok(row == (1, 1), "the token and today's call count are stored", row)
t.eq(keys, {"stop-0": "ok"}, "the delivered key is stored; the unavailable ones are not")

# --- drain_timeout shorter than WeChat's delay: `timeout`, then exit 0. ---
d.write_conf(d.default_conf(extra="max_inflight = 1\ndrain_timeout = 1"))
d.start()
t.ok(d.call("send", message())[0] is None, "restarted: a send works without a token call"
     if mock.token_calls() == 1 else "restarted: a send works")
mock.fault(SUBSCRIBE, 1, delay_ms=6000)
c = d.client()
ids = [c.request("send", message(idempotency_key="slow-%d" % i)) for i in range(2)]
time.sleep(0.4)
out = {}
th = threading.Thread(target=collect, args=(c, ids, out))
th.start()
t0 = time.time()
d.sig(signal.SIGTERM)
rc = d.proc.wait(15)
el = time.time() - t0
th.join()
first = out.get(ids[0])
t.ok(first is not None and first[0] is not None and first[0]["code"] == "timeout" and
     "stopped" in first[0]["message"] and 0.9 <= first[2] - t0 <= 3.0,
     "past drain_timeout the in-flight send gets timeout", out)
q = out.get(ids[1])
t.ok(q is not None and q[0] is not None and q[0]["code"] == "unavailable",
     "the queued one got unavailable", q)
t.ok(rc == 0 and el < 4, "exit 0 at drain_timeout, long before WeChat answers (%.1fs)" % el)
d.start()
err, res = d.call("send", message(idempotency_key="slow-0"))
t.ok(err is not None and err["code"] == "timeout",
     "after a restart, a repeat of the timed-out key is not sent again", err)
err, res = d.call("send", message(idempotency_key="slow-1"))
t.ok(err is None, "while the repeat of the unavailable one is delivered", err)
d.stop()
mock.stop()

# --- SIGHUP: add, change and remove accounts under traffic. ---
mock = Mock(accounts={APPID: SECRET, APPID2: SECRET2, APPID3: SECRET3, APPID4: SECRET4})
base = Daemon(mock=mock, start=False)


def conf(accounts, extra='max_inflight = 1\nsocket_mode = "0666"'):
    """accounts: appid -> (secret, token_api, allow or None)."""
    lines = [base.default_conf(accounts={}, extra=extra).rstrip("\n")]
    for appid, (secret, api, allow) in accounts.items():
        sf = os.path.join(base.dir, appid + ".secret")
        with open(sf, "w") as f:
            f.write(secret + "\n")
        os.chmod(sf, 0o600)
        body = ['secret_file = "%s"' % sf, 'token_api = "%s"' % api]
        if allow is not None:
            body.append('allow = { "%s" }' % allow)
        lines.append('account "%s" {\n    %s\n}' % (appid, "\n    ".join(body)))
    return "\n".join(lines) + "\n"


def reload(accounts):
    base.write_conf(conf(accounts))
    base.sig(signal.SIGHUP)
    return wait_for(lambda: base.logtext().count("configuration reloaded") > reload.n, 5) and \
        setattr(reload, "n", reload.n + 1) is None


reload.n = 0


def nobody_send(appid):
    """A send as uid 65534: its error code, or None for success."""
    code = r"""
import socket, sys, msgpack
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(msgpack.packb([0, 1, "send", [{"appid": sys.argv[2], "touser": "oUSER_openid_0001",
    "template_id": "TEMPLATE_id_0001", "scene": 1000, "title": "t",
    "data": {"content": {"value": "x"}}}]]))
u = msgpack.Unpacker(raw=False)
while True:
    u.feed(s.recv(65536))
    for m in u:
        print(m[2]["code"] if m[2] else "ok"); sys.exit(0)
"""

    def drop():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    r = subprocess.run([sys.executable, "-c", code, base.sock, appid], capture_output=True,
                       text=True, timeout=20, preexec_fn=drop)
    return r.stdout.strip() or r.stderr[-200:]


accounts = {APPID: (SECRET, "stable", "uid:%d" % NOBODY), APPID2: (SECRET2, "stable", None),
            APPID4: ("wrong-secret-000000000000", "stable", None)}
base.write_conf(conf(accounts))
base.start()
for a in (APPID, APPID2):
    t.ok(base.call("send", message(appid=a))[0] is None, "%s: a first send" % a)
err, res = base.call("send", message(appid=APPID4))
t.ok(err is not None and err["code"] == "unavailable", "a wrong secret: unavailable", err)
t.ok(wait_for(lambda: base.cred(APPID4)["state"] == "failed", 5), "and the credential failed")
if ROOT:
    t.eq(nobody_send(APPID), "ok", "uid %d is allowed for %s" % (NOBODY, APPID))

# In flight: one send per appid (slow), and two queued for APPID2.
mock.fault(SUBSCRIBE, 2, delay_ms=2000)
idle = base.client()
c = base.client()
ids = [c.request("send", message(appid=APPID)), c.request("send", message(appid=APPID2))]
time.sleep(0.3)
ids += [c.request("send", message(appid=APPID2)) for _ in range(2)]
out = {}
th = threading.Thread(target=collect, args=(c, ids, out))
th.start()
time.sleep(0.3)
stable_calls = mock.calls("/cgi-bin/stable_token")
# Change APPID (token_api, allow), remove APPID2, add APPID3, fix APPID4's secret.
accounts = {APPID: (SECRET, "classic", "uid:1"), APPID3: (SECRET3, "stable", None),
            APPID4: (SECRET4, "stable", None)}
t0 = time.time()
t.ok(reload(accounts), "SIGHUP reloads", base.logtext()[-1500:])
th.join()
ok0, ok1 = out.get(ids[0]), out.get(ids[1])
t.ok(ok0 is not None and ok0[0] is None, "the changed account's in-flight send completes", out)
t.ok(ok1 is not None and ok1[0] is None, "the removed account's in-flight send completes", out)
q = [out.get(i) for i in ids[2:]]
t.ok(all(x is not None and x[0] is not None and x[0]["code"] == "unavailable" and
         "removed" in x[0]["message"] and x[2] - t0 < 1.5 for x in q),
     "its queued sends get unavailable (removed) at once", q)
err, res = c.call("ping")
t.ok(err is None, "the client connection survived the reload")
err, res = idle.call("ping")
t.ok(err is None, "and so did an idle one")
c.close()
idle.close()
st = {x["appid"]: x for x in base.status()["credentials"]}
t.eq(sorted(st), sorted([APPID, APPID3, APPID4]), "status lists the new set of accounts")
err, res = base.call("send", message(appid=APPID2))
t.ok(err is not None and err["code"] == "unknown_appid", "the removed appid is unknown now", err)
t.ok(base.call("send", message(appid=APPID3))[0] is None, "the added account sends")
t.ok(wait_for(lambda: base.cred(APPID4)["state"] == "valid", 5),
     "the fixed secret is used at once, not after the long retry", base.cred(APPID4))
t.ok(base.call("send", message(appid=APPID4))[0] is None, "and that account sends")
# The changed token_api is used by the next refresh; the valid token was kept.
t.ok(base.call("send", message(appid=APPID))[0] is None and
     mock.calls("/cgi-bin/token") == 0, "the changed account kept its valid token")
mock.invalidate(APPID)
err, res = base.call("send", message(appid=APPID))
t.ok(err is None and mock.calls("/cgi-bin/token") == 1,
     "and its next refresh uses the classic API", (err, mock.stats()["calls"]))
if ROOT:
    t.eq(nobody_send(APPID), "forbidden", "the changed allow list is in force")

# A broken file changes nothing, even with a send in flight.
mock.fault(SUBSCRIBE, 1, delay_ms=1000)
c = base.client()
i = c.request("send", message(appid=APPID3))
time.sleep(0.2)
with open(base.conf, "a") as f:
    f.write("max_inflight = -1\n")
base.sig(signal.SIGHUP)
err, res = c.wait(i, 10)
t.ok(err is None, "a send in flight during a failed reload completes", err)
t.ok(wait_for(lambda: "keeping the current configuration" in base.logtext(), 5),
     "the broken file is reported")
t.eq(sorted(x["appid"] for x in base.status()["credentials"]), sorted([APPID, APPID3, APPID4]),
     "and the configuration in force stays")
c.close()
t.eq(base.stop(), 0, "SIGTERM exits 0")
t.done()
