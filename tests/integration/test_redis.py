"""Several daemons sharing one appid's tokens through a real redis-server: one
token call per rotation under load, the lease holder killed mid-refresh, Redis
restarted empty, and Redis down for longer than a token's life."""

import signal
import threading
import time

from wxtest import APPID, Daemon, Mock, Redis, Tap, message, need_redis, wait_for

need_redis()

t = Tap(timeout=200)
TOKEN_KEY = "wxpushd:token:" + APPID


def shared_gen(r):
    v = r.cli("GET", TOKEN_KEY)
    return int(v.split(":")[0]) if v else 0


def send_load(d, seconds, results, rate=15):
    ok, errors = 0, []
    c = d.client()
    end = time.time() + seconds
    while time.time() < end:
        err, _ = c.call("send", message(), timeout=15)
        if err is None:
            ok += 1
        else:
            errors.append(err)
        time.sleep(1.0 / rate)
    c.close()
    results.append((ok, errors))


def load(daemons, seconds):
    results = []
    ths = [threading.Thread(target=send_load, args=(d, seconds, results)) for d in daemons]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    ok = sum(r[0] for r in results)
    errors = [e for r in results for e in r[1]]
    return ok, errors


def modes(daemons):
    return [d.status()["redis"] for d in daemons]


redis = Redis()
redis.start()
# Tokens live 40 s and are refreshed 10 s after they are issued (refresh_margin 30).
# As WeChat's stable API does, the mock hands out the current token until it
# nears its end (30 s left here), so daemons refreshing on their own converge.
mock = Mock(args=["--expires-in", "40", "--rotation-window", "30"])
extra = 'refresh_margin = 30\nredis = "redis://127.0.0.1:%d/0"' % redis.port
daemons = [Daemon(mock=mock, extra=extra) for _ in range(3)]

t.ok(wait_for(lambda: modes(daemons) == ["connected"] * 3, 10, 0.1),
     "status: three daemons connected to Redis", modes(daemons))
t.ok(wait_for(lambda: all(d.cred()["state"] == "valid" for d in daemons), 10, 0.1),
     "all three have a token")
t.eq(mock.token_calls(), 1, "one token call for three daemons at start")
off = Daemon(mock=Mock())
t.eq(off.status()["redis"], "off", "status: redis off without the redis key")
off.stop()

# 1. Load across rotations: one token call per rotation, no failed send.
calls0 = mock.token_calls()
t0 = time.time()
ok, errors = load(daemons, 25)
calls = mock.token_calls() - calls0
rotations = (time.time() - t0) / 10.0
t.ok(ok > 500 and not errors, "%d sends by three daemons over 25 s of rotation, none failed"
     % ok, errors[:3])
t.ok(1 <= calls <= int(rotations) + 2,
     "%d token calls for %.1f rotations of three daemons" % (calls, rotations))
keys = (redis.cli("KEYS", "wxpushd:*") or "").split()
t.ok(TOKEN_KEY in keys and "wxpushd:gen:" + APPID in keys, "the token is in Redis", keys)

# 40001 on every host: one refresh for all (compare-and-refresh across hosts).
calls0 = mock.token_calls()
mock.invalidate()
answers = []
ths = [threading.Thread(target=lambda d=d: answers.append(d.call("send", message())[0]))
       for d in daemons]
for th in ths:
    th.start()
for th in ths:
    th.join()
t.ok(answers == [None] * 3, "token refused on three hosts: the sends are retried and delivered",
     answers)
t.eq(mock.token_calls() - calls0, 1, "one token call for the three refusals")

# 2. The lease holder killed with SIGKILL mid-refresh: another takes over.
mock.fault("/cgi-bin/stable_token", 1, delay_ms=20000)
holder = None
end = time.time() + 15
while holder is None and time.time() < end:
    for d in daemons:
        if d.cred()["state"] == "refreshing":
            holder = d
            break
    time.sleep(0.05)
t.ok(holder is not None, "a daemon is refreshing with the lease")
gen0 = shared_gen(redis)
killed_at = time.time()
if holder is not None:
    holder.stop(signal.SIGKILL)
rest = [d for d in daemons if d is not holder]
t.ok(wait_for(lambda: shared_gen(redis) > gen0, 10, 0.1),
     "another daemon refreshed within the lease (%.1f s after the kill)"
     % (time.time() - killed_at))
t.ok(all(d.call("send", message())[0] is None for d in rest), "the others keep sending")
if holder is not None:
    holder.start()


def same_token_as_rest(d):
    """Whether d has a valid token expiring when the others' does: the shared one
    (its own stored one, from before the kill, expires 10 s or more earlier)."""
    mine, theirs = d.cred(), rest[0].cred()
    return mine["state"] == "valid" and abs(mine["expires_in"] - theirs["expires_in"]) <= 3


t.ok(holder is not None and wait_for(lambda: same_token_as_rest(holder), 10, 0.1),
     "the killed daemon restarts with the shared token",
     holder and (holder.cred(), rest[0].cred()))
t.ok(holder is not None and
     holder.call("stats")[1]["appids"][APPID]["token_refreshes"] == 0,
     "taken from Redis, not fetched: no refresh of its own since the restart")

# 3. Redis restarted empty: nothing lost, the daemons repopulate it.
def redis_token():
    v = redis.cli("GET", TOKEN_KEY) or ""
    return v.split(":", 2)[2] if v.count(":") >= 2 else ""


def newest_token():
    """The access token the mock issued last for APPID."""
    toks = [x["value"] for x in mock.tokens()["tokens"]
            if x["appid"] == APPID and x["kind"] == "access_token"]
    return toks[-1] if toks else None


before = redis_token()
gen_before = shared_gen(redis)
redis.kill()
t.ok(wait_for(lambda: "unreachable" in modes(daemons), 5, 0.1), "Redis killed: unreachable")
redis.start()   # no persistence: it starts empty
t.ok(wait_for(lambda: modes(daemons) == ["connected"] * 3, 10, 0.1),
     "the daemons reconnect", modes(daemons))
t.ok(wait_for(lambda: redis.cli("EXISTS", TOKEN_KEY) == "1", 5, 0.1),
     "they put the token back in Redis")
# What the daemons put back is the token they hold: the newest WeChat issued (the
# same as before the restart unless a rotation fell in between).
t.ok(before != "" and wait_for(lambda: redis_token() == newest_token(), 5, 0.1),
     "the token in Redis is the one the daemons kept, the newest issued",
     (before, redis_token(), newest_token()))
t.ok(shared_gen(redis) >= gen_before,
     "its generation did not go back (%d, was %d)" % (shared_gen(redis), gen_before))
t.ok(all(d.call("send", message())[0] is None for d in daemons), "sends still work")

# 4. Redis down for longer than a token's life: each keeps sending on its own.
redis.kill()
t.ok(wait_for(lambda: modes(daemons) == ["unreachable"] * 3, 5, 0.1),
     "status: unreachable", modes(daemons))
calls0 = mock.token_calls()
ok, errors = load(daemons, 45)
t.ok(ok > 800 and not errors, "%d sends over 45 s without Redis, none failed" % ok, errors[:3])
t.ok(mock.token_calls() - calls0 >= 3, "each daemon refreshed on its own (%d token calls)"
     % (mock.token_calls() - calls0))
t.ok(all(d.cred()["state"] == "valid" for d in daemons), "all still valid")
redis.start()
t.ok(wait_for(lambda: modes(daemons) == ["connected"] * 3, 10, 0.1),
     "Redis back: status connected", modes(daemons))
t.ok(wait_for(lambda: redis.cli("EXISTS", TOKEN_KEY) == "1", 5, 0.1),
     "the token is in Redis again")

for d in daemons:
    t.eq(d.stop(), 0, "daemon stops cleanly")
redis.kill()
t.done()
