"""The durable outbox (docs/protocol.md, enqueue/delivery/outbox): answers
only after the commit, all-or-nothing batches, validation before anything is
written, per-uid access to delivery, sync send's priority, outbox_limit,
45011 and 45009 pauses without retry loops or token calls, final refusals,
a credential that cannot get a token keeping its messages queued, WeChat
down for 30 s and back, a graceful restart, and a full disk."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import urllib.request

from wxtest import (APPID, SECRET, SUBSCRIBE, Client, Daemon, Mock, Tap, free_port, message, tmpdir,
                    wait_for)

t = Tap(timeout=200)
NOBODY = 65534
APPID2 = "wx00000000000000b2"
SECRET2 = "another-secret-0123456789"
BADAPP = "wx00000000000000c3"       # the mock refuses its secret: no token ever

METRICS = free_port()
mock = Mock(accounts={APPID: SECRET, APPID2: SECRET2, BADAPP: "the-right-secret-0000"})
d = Daemon(mock=mock, accounts={APPID: SECRET, APPID2: SECRET2, BADAPP: "a-wrong-secret-00000"},
           extra='max_inflight = 4\nsocket_mode = "0666"\noutbox_limit = 50\nmax_request = 1048576\n'
                 'metrics_listen = "127.0.0.1:%d"' % METRICS,
           account_extra='allow = { "uid:%d" }' % NOBODY)
db_path = os.path.join(d.state, "outbox.db")


def tagged(tag, appid=APPID, **kw):
    return message(appid=appid, data={"content": {"value": tag}}, **kw)


def delivered_tags():
    return [s["body"]["data"]["content"]["value"] for s in mock.sends()]


def state(mid):
    err, res = d.call("delivery", {"id": mid})
    return res if err is None else err


def wait_state(mid, want, timeout=15):
    return wait_for(lambda: state(mid).get("state") == want, timeout, 0.05)


def committed(mid):
    db = sqlite3.connect(db_path, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM outbox WHERE id = ?", (mid,)).fetchone()[0]
    finally:
        db.close()


# 1. One message: the id is answered after the commit, and it is delivered.
err, res = d.call("enqueue", tagged("one"))
t.ok(err is None and isinstance(res.get("id"), int), "enqueue answers {id}", (err, res))
mid = res["id"]
t.eq(committed(mid), 1, "the acknowledged message is in the file already")
t.ok(wait_state(mid, "delivered"), "it is delivered", state(mid))
st = state(mid)
t.ok(st["attempts"] == 1 and st["created_at"] <= st["updated_at"] and
     "errcode" not in st, "delivery shows attempts and times, no error", st)
t.ok("one" in delivered_tags(), "WeChat got it")

# The command line: send --queue prints the id, delivery shows the state.
r = d.wxpush("send", "--queue", "--appid", APPID, "--touser", "oUSER_openid_0001",
             "--template-id", "TEMPLATE_id_0001", "--scene", "7", "--title", "cli",
             "--content", "cli")
t.ok(r.returncode == 0 and r.stdout.strip().isdigit(), "wxpush send --queue prints the id",
     (r.returncode, r.stdout, r.stderr))
cli_id = r.stdout.strip()
wait_state(int(cli_id or 0), "delivered")
r = d.wxpush("delivery", cli_id)
t.ok(r.returncode == 0 and r.stdout.startswith("delivered (attempts 1)"),
     "wxpush delivery ID shows the state", (r.stdout, r.stderr))
r = d.wxpush("outbox")
t.ok(r.returncode == 0 and APPID in r.stdout and "DEPTH" in r.stdout,
     "wxpush outbox lists the appids", (r.stdout, r.stderr))
r = d.wxpush("send", "--appid", APPID, "--body", "-", "--watch", input="{}")
t.eq(r.returncode, 2, "--watch without --queue is a usage error")

# watch: a notification on the same connection at the final state.
c = Client(d.sock)
mock.fault(SUBSCRIBE, 1, errcode=40003)
err, res = c.call("enqueue", {"messages": [tagged("w1", watch=True), tagged("w2", watch=True),
                                            tagged("w3")]})
notes = []
try:
    while len(notes) < 2:
        m = c.read_one(15)
        if m is not None and m[0] == 2:
            notes.append(m)
except OSError:
    pass
c.close()
byid = {m[2][0]["id"]: m[2][0] for m in notes if m[1] == "delivery"}
w1, w2, w3 = res["ids"]
states_seen = sorted(v["state"] for v in byid.values())
failed_note = [v for v in byid.values() if v["state"] == "failed"]
t.ok(set(byid) == {w1, w2} and states_seen == ["delivered", "failed"],
     "watch: one notification per watched message, none for the other", notes)
t.ok(failed_note and failed_note[0]["errcode"] == 40003 and failed_note[0]["code"] == "wechat",
     "the failed one's notification carries WeChat's errcode", notes)

# 2. A batch: ids in order; one bad message refuses the batch with nothing queued.
err, res = d.call("enqueue", {"messages": [tagged("b1"), tagged("b2"), tagged("b3")]})
t.ok(err is None and len(res["ids"]) == 3 and res["ids"] == sorted(res["ids"]),
     "a batch answers {ids}", (err, res))
ids = res["ids"]
t.ok(all(wait_state(i, "delivered") for i in ids), "every message of it is delivered")
err, res = d.call("enqueue", {"messages": [tagged("ok1"), tagged("bad", title=""), tagged("ok2")]})
t.ok(err is not None and err["code"] == "invalid_request" and err["field"] == "title",
     "a batch with a bad message is refused, naming the field", err)
err2, res2 = d.call("enqueue", tagged("next"))
t.eq(res2["id"], ids[-1] + 1, "nothing of the refused batch was written (ids run on)")
err, res = d.call("enqueue", {"messages": []})
t.ok(err is not None and err["field"] == "messages", "an empty batch is refused", err)
err, res = d.call("enqueue", {"messages": [tagged("x")] * 1001})
t.ok(err is not None and err["field"] == "messages", "1001 messages are refused", err)
err, res = d.call("enqueue", tagged("x", not_after=int(time.time()) - 5))
t.ok(err is not None and err["field"] == "not_after", "a past not_after is refused", err)
err, res = d.call("enqueue", tagged("x", watch="yes"))
t.ok(err is not None and err["field"] == "watch", "watch must be a bool", err)
err, res = d.call("enqueue", tagged("x", appid="wx0000000000000404"))
t.ok(err is not None and err["code"] == "unknown_appid", "an unknown appid is refused", err)
err, res = d.call("delivery", {"id": 999999})
t.ok(err is not None and err["code"] == "not_found", "an unknown id is not_found", err)
err, res = d.call("delivery", {"id": "1"})
t.ok(err is not None and err["field"] == "id", "an id must be an integer", err)

# Idempotency keys as send's: a repeat answers the first id and queues nothing.
err, res = d.call("enqueue", tagged("idem", idempotency_key="order-7"))
err2, res2 = d.call("enqueue", tagged("idem", idempotency_key="order-7"))
t.ok(err is None and err2 is None and res2["id"] == res["id"],
     "a repeated idempotency_key answers the first id", (res, res2))
idem_id = res["id"]
err, res = d.call("enqueue", tagged("other", idempotency_key="order-7"))
t.ok(err is not None and err["field"] == "idempotency_key",
     "the same key with another message is refused", err)
err, res = d.call("send", tagged("idem", idempotency_key="order-7"))
t.ok(err is not None and err["field"] == "idempotency_key",
     "a key used by enqueue is not a send's key", err)
err, res = d.call("enqueue", tagged("after"))
t.eq(res["id"], idem_id + 1, "the repeats queued nothing")
last = res["id"]

# Keys in a batch: each message's own, with the single form's meaning.
err, res = d.call("enqueue", {"messages": [tagged("b1", idempotency_key="k-1"),
                                           tagged("b2", idempotency_key="k-2"),
                                           tagged("b3")]})
t.ok(err is None and res["ids"] == [last + 1, last + 2, last + 3],
     "a batch with keys queues each message", (err, res))
err, res = d.call("enqueue", {"messages": [tagged("b1", idempotency_key="k-1"),
                                           tagged("b4", idempotency_key="k-4"),
                                           tagged("b2", idempotency_key="k-2"),
                                           tagged("idem", idempotency_key="order-7")]})
t.ok(err is None and res["ids"] == [last + 1, last + 4, last + 2, idem_id],
     "a repeated batch answers the first ids (a single form's key too) and "
     "queues only the new message", (err, res))
err, res = d.call("enqueue", {"messages": [tagged("b1", idempotency_key="k-1"),
                                           tagged("b2", idempotency_key="k-2")]})
t.ok(err is None and res["ids"] == [last + 1, last + 2],
     "a batch of repeats only is answered, nothing queued", (err, res))
err, res = d.call("enqueue", {"messages": [tagged("b5", idempotency_key="k-5"),
                                           tagged("b6"),
                                           tagged("b7", idempotency_key="k-5")]})
t.ok(err is not None and err["code"] == "invalid_request" and
     err["field"] == "messages.2.idempotency_key" and "messages.0" in err["message"],
     "a key twice in one batch is refused, naming both messages", err)
err, res = d.call("enqueue", {"messages": [tagged("b8", idempotency_key="k-8"),
                                           tagged("not-b1", idempotency_key="k-1")]})
t.ok(err is not None and err["code"] == "invalid_request" and
     err["field"] == "messages.1.idempotency_key",
     "a key used before for another message refuses the batch", err)
err, res = d.call("enqueue", {"messages": [tagged("b8", idempotency_key="k-8")]})
t.ok(err is None and res["ids"] == [last + 5],
     "the refused batches queued nothing and remembered no key", (err, res))
err, res = d.call("enqueue", tagged("b4", idempotency_key="k-4"))
t.ok(err is None and res["id"] == last + 4,
     "a batch's key answers a single form's repeat", (err, res))

# 3. delivery as another uid: forbidden; its own: allowed.
if os.geteuid() == 0:
    code = r"""
import socket, sys, msgpack
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def call(m, p):
    s.sendall(msgpack.packb([0, 1, m, [p]]))
    u = msgpack.Unpacker(raw=False)
    while True:
        u.feed(s.recv(65536))
        for r in u:
            return r[2], r[3]
err, res = call("delivery", {"id": int(sys.argv[2])})
print(err["code"] if err else "ok")
err, res = call("enqueue", {"appid": sys.argv[3], "touser": "oUSER_openid_0001",
    "template_id": "TEMPLATE_id_0001", "scene": 1, "title": "t",
    "data": {"content": {"value": "from nobody"}}})
err, res = call("delivery", {"id": res["id"]})
print(err["code"] if err else res["state"])
"""

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    r = subprocess.run([sys.executable, "-c", code, d.sock, str(mid), APPID],
                       capture_output=True, text=True, timeout=20, preexec_fn=as_nobody)
    lines = r.stdout.split()
    t.ok(lines[:1] == ["forbidden"], "delivery of root's message as nobody: forbidden",
         (r.stdout, r.stderr[-400:]))
    t.ok(len(lines) == 2 and lines[1] in ("queued", "sending", "delivered"),
         "nobody reads its own message", (r.stdout, r.stderr[-400:]))
else:
    t.ok(True, "# SKIP needs root")
    t.ok(True, "# SKIP needs root")

# 4. No token for BADAPP: messages stay queued (no attempt), and count against
# outbox_limit (50); past it enqueue is busy, retryable.
tokens_before = mock.token_calls()
err, res = d.call("enqueue", {"messages": [tagged("held%d" % i, appid=BADAPP)
                                            for i in range(45)]})
t.ok(err is None, "45 messages queued for an appid without a token", err)
held = res["ids"]
err, res = d.call("enqueue", {"messages": [tagged("over%d" % i) for i in range(6)]})
t.ok(err is not None and err["code"] == "busy" and err["retryable"],
     "past outbox_limit: busy, retryable", err)
time.sleep(3)
t.ok(all(state(i)["state"] == "queued" and state(i)["attempts"] == 0 for i in held[:5]),
     "without a token they stay queued, not attempted", [state(i) for i in held[:3]])
err, res = d.call("outbox")
app = [a for a in res["appids"] if a["appid"] == BADAPP]
t.ok(app and app[0]["depth"] == 45 and 0 < app[0]["oldest"] <= time.time(),
     "outbox shows the depth and the oldest message per appid", res)
err, res = d.call("stats")
t.ok(res["appids"][BADAPP]["outbox_depth"] == 45 and
     res["appids"][BADAPP]["outbox_oldest_seconds"] >= 3,
     "stats shows outbox_depth and outbox_oldest_seconds per appid", res["appids"][BADAPP])
with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=10) as r:
    text = r.read().decode()
t.ok('wxpushd_outbox_depth{appid="%s"} 45' % BADAPP in text and
     'wxpushd_outbox_oldest_seconds{appid="%s"}' % BADAPP in text,
     "/metrics has wxpushd_outbox_depth and wxpushd_outbox_oldest_seconds by appid",
     [line for line in text.splitlines() if "outbox" in line])
t.ok(mock.token_calls() - tokens_before < 10, "no token-call storm for them",
     mock.token_calls() - tokens_before)
# The operator fixes the secret and reloads: they go at once.
d.accounts[BADAPP] = "the-right-secret-0000"
d.write_conf()
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: all(state(i)["state"] == "delivered" for i in held), 40, 0.2),
     "once the credential works, they are delivered", [state(i) for i in held[:2]])

# 5. A final refusal ends the message with WeChat's errcode.
mock.fault(SUBSCRIBE, 1, errcode=40003)
err, res = d.call("enqueue", tagged("refused"))
t.ok(wait_state(res["id"], "failed"), "40003: failed")
st = state(res["id"])
t.ok(st.get("code") == "wechat" and st.get("errcode") == 40003 and st["attempts"] == 1,
     "failed shows code, errcode and attempts", st)

# A token refused for a while (40001 on every call, the breaker): a few token
# calls, no loop, and the messages go once WeChat takes the token again.
mock.reset()
tokens_before = mock.token_calls()
n0 = mock.calls(SUBSCRIBE)
mock.fault(SUBSCRIBE, 8, errcode=40001)
err, res = d.call("enqueue", {"messages": [tagged("br%d" % i) for i in range(5)]})
br = res["ids"]
t.ok(wait_for(lambda: all(state(i)["state"] == "delivered" for i in br), 60, 0.2),
     "after a run of refused tokens the messages are delivered",
     [state(i) for i in br[:2]])
t.ok(mock.token_calls() - tokens_before <= 4,
     "the refused tokens cost a few token calls, not one per retry",
     mock.token_calls() - tokens_before)
t.diag("%d subscribe calls, %d token calls" % (mock.calls(SUBSCRIBE) - n0,
                                               mock.token_calls() - tokens_before))

# 6. 45009 (daily quota): paused until the next quota day. Before the
# 45011 step: the mock's faults hold for every appid, and a 45011-paused
# appid whose minute turned while this fault was set would take the 45009
# and wait for tomorrow too.
mock.fault(SUBSCRIBE, 1000, errcode=45009)
err, res = d.call("enqueue", tagged("quota"))
q = res["id"]
time.sleep(3)
err, res = d.call("outbox")
app = [a for a in res["appids"] if a["appid"] == APPID][0]
t.ok(app["paused_until"] > time.time() + 60 and state(q)["state"] == "queued",
     "45009: paused until the next quota day, the message queued",
     (app, state(q)))
mock.reset()

# 7. 45011: the appid pauses until retry_after; no attempt is burnt, no loop.
# retry_after is the turn of the minute: start well inside one, or the
# messages are due again during the step (a second round of attempts).
if 60 - time.time() % 60 < 25:
    time.sleep(60 - time.time() % 60 + 1)
mock.fault(SUBSCRIBE, 1000, errcode=45011)
n0 = mock.calls(SUBSCRIBE)
tokens_before = mock.token_calls()
err, res = d.call("enqueue", {"messages": [tagged("rl%d" % i, appid=APPID2) for i in range(10)]})
rl = res["ids"]
wait_for(lambda: mock.calls(SUBSCRIBE) > n0, 10)
time.sleep(2)
n1 = mock.calls(SUBSCRIBE)
time.sleep(2)
err, res = d.call("outbox")
app = [a for a in res["appids"] if a["appid"] == APPID2][0]
t.ok(n1 - n0 <= 10 and mock.calls(SUBSCRIBE) == n1,
     "45011: a few attempts, then none while paused", (n0, n1, mock.calls(SUBSCRIBE)))
t.ok(app["paused_until"] > time.time() and app["depth"] == 10,
     "the appid is paused until retry_after with its messages queued", app)
t.ok(all(state(i)["state"] == "queued" and state(i)["attempts"] == 0 for i in rl),
     "no attempt counted for a rate-limited message", [state(i) for i in rl[:2]])
t.eq(mock.token_calls(), tokens_before, "45011 touches no token")
# Sync send of the same appid is not held back by the outbox's pause.
mock.reset()
err, res = d.call("send", message(appid=APPID2))
t.ok(err is None, "sync send works while the outbox of that appid is paused", err)

# 8. A graceful restart keeps everything queued. A pause is written into its
# messages' next_at: the 45011 ones go at the next minute, the 45009 one
# waits for the next quota day, restart or not.
t.eq(d.stop(), 0, "SIGTERM exits 0")
d.start()
err, res = d.call("enqueue", tagged("idem", idempotency_key="order-7"))
t.ok(err is None and res["id"] == idem_id, "an enqueue's key survives a restart", (err, res))
t.ok(state(q)["state"] == "queued" and state(q)["attempts"] == 0,
     "the quota-paused message still waits for the next quota day", state(q))

# 9. WeChat down for 30 s (connections dropped), then back: all delivered, none expired.
mock.fault(SUBSCRIBE, 1000000, http_status=503)
err, res = d.call("enqueue", {"messages": [tagged("down%d" % i) for i in range(20)]})
down = res["ids"]
t0 = time.time()
time.sleep(10)
early = mock.calls(SUBSCRIBE)
time.sleep(20)
during = mock.calls(SUBSCRIBE)
mock.reset()
t.ok(wait_for(lambda: all(state(i)["state"] == "delivered" for i in down), 45, 0.2),
     "WeChat down 30 s, then back: all delivered",
     [state(i) for i in down[:2]])
t.diag("drained %.0f s after WeChat came back; %d calls in the outage's first 10 s, "
       "%d in the last 20 s" % (time.time() - t0 - 30, early, during - early))
# A probe is one message: up to 4 calls (send.c retries a 503 three times).
# Quiet, the last 20 s see a few probes (16 calls); on a loaded machine the
# messages claimed as the outage began finish their own attempts late and
# add up to one attempt each. A retry loop would make hundreds of calls.
t.ok(during - early <= 4 * len(down), "an outage costs at most one attempt per message "
     "once the appid waits, not a retry loop", (early, during))

# (Checked here, so that the minute of the 45011 pause passes meanwhile.)
t.ok(wait_for(lambda: all(state(i)["state"] == "delivered" for i in rl), 70, 0.2),
     "after the restart the rate-limited messages are delivered at retry_after",
     [state(i) for i in rl[:2]])

# 10. A full disk: busy, and nothing acknowledged that is not on disk.
if os.geteuid() == 0:
    mnt = tmpdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        t.ok(True, "# SKIP cannot mount a tmpfs: %s" % r.stderr.strip())
        t.ok(True, "# SKIP")
    else:
        try:
            d2 = Daemon(mock=mock, start=False)
            conf = d2.default_conf().replace('state_dir = "%s"' % d2.state,
                                             'state_dir = "%s/state"' % mnt)
            d2.write_conf(conf)
            d2.start()
            # The socket accepts before the stores are open: a ping answered
            # means the loop runs, so outbox.db exists before the disk fills.
            err, _ = d2.call("ping")
            t.diag("the daemon on the small tmpfs answers ping: %s" % (err,))
            # Fill what is left of the tmpfs. Unbuffered: a buffered file
            # raises ENOSPC again when it is closed, with what it still holds.
            fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    os.write(fd, b"\0" * 65536)
            except OSError:
                pass
            finally:
                os.close(fd)
            acked, busy = [], 0
            for i in range(40):
                if d2.proc.poll() is not None:
                    t.diag(d2.logtext()[-3000:])
                err, res = d2.call("enqueue", {"messages": [tagged("full%d-%d" % (i, j))
                                                            for j in range(50)]})
                if err is None:
                    acked += res["ids"]
                elif err["code"] == "busy":
                    busy += 1
            t.ok(busy > 0, "a full disk: enqueue answers busy", (busy, len(acked),
                                                                 d2.logtext()[-1500:]))
            d2.stop(signal.SIGKILL)
            os.unlink(os.path.join(mnt, "filler"))
            db = sqlite3.connect(os.path.join(mnt, "state", "outbox.db"))
            have = {r[0] for r in db.execute("SELECT id FROM outbox")}
            db.close()
            t.ok(set(acked) <= have, "every acknowledged id is on disk after kill -9",
                 len(set(acked) - have))
        finally:
            subprocess.run(["umount", "-l", mnt])
else:
    t.ok(True, "# SKIP needs root")
    t.ok(True, "# SKIP needs root")

d.stop()
t.done()
