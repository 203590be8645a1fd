"""Idempotency keys shared between two daemons through a real redis-server: a
repeat on the other host is answered with the first's answer and costs no
upstream call, also while the first is in flight; a retryable answer releases
the key; a key reused for another message is refused on the other host; a
claim whose host died expires; Redis down leaves each host with its own
keys. Also reports what the claim adds to a send's latency."""

import signal
import subprocess
import time

from wxtest import REDIS_CLI, SUBSCRIBE, Daemon, Mock, Redis, Tap, message, need_redis, wait_for

need_redis()

t = Tap(timeout=240)


def send(d, key, text="shared", **kw):
    return d.call("send", message(idempotency_key=key, data={"content": {"value": text}},
                                  **kw), timeout=40)


def delivered(text):
    return sum(1 for s in mock.sends() if s["body"]["data"]["content"]["value"] == text)


def idem_keys():
    return [k for k in (redis.cli("KEYS", "wxpushd:idem:*") or "").split() if k]


redis = Redis(args=["--enable-debug-command", "yes"])
redis.start()
mock = Mock()
extra = 'redis = "redis://127.0.0.1:%d/0"\nmax_inflight = 8' % redis.port
a = Daemon(mock=mock, extra=extra)
b = Daemon(mock=mock, extra=extra)
t.ok(wait_for(lambda: [d.status()["redis"] for d in (a, b)] == ["connected"] * 2, 10, 0.1),
     "two daemons connected to Redis")
t.ok(wait_for(lambda: all(d.cred()["state"] == "valid" for d in (a, b)), 10, 0.1),
     "both have a token")

# 1. K on A, then K on B: one call upstream, B answers A's answer.
n = mock.calls(SUBSCRIBE)
err, first = send(a, "order-1", "order one")
t.ok(err is None and first["errcode"] == 0, "A delivers a keyed send", err)
err, again = send(b, "order-1", "order one")
t.eq((err, again), (None, first), "the repeat on B gets A's answer")
t.eq(mock.calls(SUBSCRIBE) - n, 1, "one call upstream for both")
t.eq(delivered("order one"), 1, "WeChat has the message once")
keys = idem_keys()
t.ok(len(keys) == 1 and "order-1" not in keys[0] and len(keys[0]) == 13 + 64,
     "Redis holds the key under a hash, not the caller's key", keys)
val = redis.cli("GET", keys[0]) if keys else ""
ttl = int(redis.cli("TTL", keys[0]) or -1) if keys else -1
t.ok('"final"' in (val or "") and "order-1" not in (val or ""),
     "its value is the final answer, without the key", val)
t.ok(86400 - 60 <= ttl <= 86400, "and expires 24 h after the first send (TTL %d s)" % ttl)
err, again = send(b, "order-1", "order one")
t.eq((err, again), (None, first), "B remembers it: a second repeat on B")
err, res = send(b, "order-1", "another message")
t.ok(err is not None and err["code"] == "invalid_request" and
     err.get("field") == "idempotency_key",
     "the key for another message on B is refused, as on one host", err)
err, res = send(b, "order-x", "a message")
err2, res2 = send(a, "order-x", "another message")
t.ok(err is None and err2 is not None and err2["code"] == "invalid_request",
     "and on A when B sent first", err2)

# 2. A repeat on B while A's send is in flight: B waits for A's answer.
mock.fault(SUBSCRIBE, 1, delay_ms=2000)
n = mock.calls(SUBSCRIBE)
ca = a.client()
ia = ca.request("send", message(idempotency_key="flight-1",
                                data={"content": {"value": "in flight"}}))
time.sleep(0.5)
t0 = time.time()
err, rb = send(b, "flight-1", "in flight")
waited = time.time() - t0
ea, ra = ca.wait(ia, 20)
ca.close()
t.ok(ea is None and err is None and rb == ra and 0.8 <= waited <= 5,
     "a repeat on B while A's send is in flight waits for it (%.1f s) and gets "
     "its answer" % waited, (ea, err))
t.eq((mock.calls(SUBSCRIBE) - n, delivered("in flight")), (1, 1),
     "one call upstream, one delivery")

# 3. A retryable answer releases the key: the repeat on B is sent.
mock.fault(SUBSCRIBE, 20, errcode=-1)
err, res = send(a, "retry-1", "retried")
mock.reset()
t.ok(err is not None and err["retryable"], "A: a retryable failure (%s)" % (err and err["code"]))
n = mock.calls(SUBSCRIBE)
err, res = send(b, "retry-1", "retried")
t.ok(err is None and mock.calls(SUBSCRIBE) - n == 1,
     "it released the key: the repeat on B is sent and delivered", err)
err, res2 = send(a, "retry-1", "retried")
t.eq((err, res2), (None, res), "and A then answers B's answer")

# 4. A final refusal on A is B's answer too.
mock.fault(SUBSCRIBE, 1, errcode=43101)
err1, _ = send(a, "refused-1", "refused")
n = mock.calls(SUBSCRIBE)
err2, _ = send(b, "refused-1", "refused")
t.ok(err1 is not None and err1["errcode"] == 43101 and err2 == err1 and
     mock.calls(SUBSCRIBE) == n, "a final refusal on A is answered on B, not sent", (err1, err2))

# 5. A dies with its send in flight: its claim expires (send_timeout 8 s + 10 s)
# and B's repeat, which waited, is sent then.
mock.fault(SUBSCRIBE, 1, delay_ms=3000)
n = mock.calls(SUBSCRIBE)
ca = a.client()
ca.request("send", message(idempotency_key="dead-1", data={"content": {"value": "dead"}}))
t.ok(wait_for(lambda: mock.calls(SUBSCRIBE) > n, 5, 0.05), "A's send reached WeChat")
a.stop(signal.SIGKILL)
ca.close()
t0 = time.time()
err, res = send(b, "dead-1", "dead")
waited = time.time() - t0
t.ok(err is None and 10 <= waited <= 25,
     "the claim of a dead host expires: B's repeat waited %.1f s, then was sent" % waited, err)
t.eq(delivered("dead"), 2, "so WeChat got it twice (as after a crash on one host: documented)")
a.start()
t.ok(wait_for(lambda: a.status()["redis"] == "connected", 10, 0.1), "A back")

# 6. Latency: what the claim (one round trip on loopback) adds to a send.
def median_ms(d, prefix, n=150):
    c = d.client()
    lat = []
    for i in range(n):
        m = message(data={"content": {"value": "lat"}})
        if prefix is not None:
            m["idempotency_key"] = "%s-%d" % (prefix, i)
        t0 = time.perf_counter()
        err, _ = c.call("send", m)
        lat.append((time.perf_counter() - t0) * 1000)
        if err is not None:
            return None
    c.close()
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]


nokey = median_ms(a, None)
keyed = median_ms(a, "lat")
t.ok(nokey is not None and keyed is not None,
     "latency on loopback, median / p99: without a key %.2f / %.2f ms, with a key "
     "(claimed in Redis) %.2f / %.2f ms" % (nokey + keyed) if nokey and keyed else "latency")

# 7. Redis down: each host has its own keys (documented: twice across hosts).
redis.kill()
t.ok(wait_for(lambda: [d.status()["redis"] for d in (a, b)] == ["unreachable"] * 2, 15, 0.1),
     "Redis down: both unreachable")
n = mock.calls(SUBSCRIBE)
err1, r1 = send(a, "down-1", "down")
err2, r2 = send(b, "down-1", "down")
err3, r3 = send(a, "down-1", "down")
t.ok(err1 is None and err2 is None and (err3, r3) == (None, r1),
     "each host answers its own repeats", (err1, err2, err3))
t.eq((mock.calls(SUBSCRIBE) - n, delivered("down")), (2, 2),
     "but a repeat on the other host is sent again while Redis is down")
err, again = send(b, "order-1", "order one")
t.eq((err, again), (None, first), "keys a host learned before the outage still hold there")
redis.start()
t.ok(wait_for(lambda: [d.status()["redis"] for d in (a, b)] == ["connected"] * 2, 15, 0.1),
     "Redis back: both connected")
err, res = send(a, "back-1", "back")
err2, res2 = send(b, "back-1", "back")
t.ok(err is None and (err2, res2) == (None, res) and delivered("back") == 1,
     "shared again once Redis is back", (err, err2))
# 8. A stop while a send is parked for its claim (Redis busy for 2 s): the
# claim's answer comes after SIGTERM, and the send is not started.
n = mock.calls(SUBSCRIBE)
busy = subprocess.Popen([REDIS_CLI, "-p", str(redis.port), "DEBUG", "SLEEP", "2"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.3)
cb = b.client()
ib = cb.request("send", message(idempotency_key="stop-1",
                                data={"content": {"value": "stopped"}}))
time.sleep(0.3)
b.sig(signal.SIGTERM)
eb, rb = cb.wait(ib, 15)
busy.wait()
t.ok(eb is not None and eb["code"] == "unavailable" and eb["retryable"],
     "a send parked for its claim when the daemon stops is answered unavailable", eb)
t.eq(b.stop(), 0, "and the daemon exits 0")
t.eq((mock.calls(SUBSCRIBE) - n, delivered("stopped")), (0, 0), "nothing was sent")
a.stop()
t.done()
