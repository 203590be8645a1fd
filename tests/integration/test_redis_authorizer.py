"""A third-party platform's authorizers on two daemons sharing Redis: an
authorization WeChat pushes to one host reaches the other, rotated refresh
tokens follow whichever host refreshes (no 61023), one api_authorizer_token call
per rotation under send load on both, a revocation reaches the other host, and
Redis restarted empty is repopulated with nothing lost."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

from wxtest import (COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN,
                    COMPONENTS, Daemon, Mock, Tap, free_port, message, tmpdir,
                    wait_for)

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
if REDIS is None or REDIS_CLI is None:
    print("1..0 # SKIP redis-server is not installed (apt-get install redis-server)")
    sys.exit(0)

AUTH_EP = "/cgi-bin/component/api_authorizer_token"
LIST_EP = "/cgi-bin/component/api_get_authorizer_list"
AUTH1 = "wxauthorizer000001"
AUTH2 = "wxauthorizer000002"
AUTH3 = "wxauthorizer000003"
AUTH4 = "wxauthorizer000004"

t = Tap(timeout=120)
PORT = free_port()
rdir = tmpdir()
rlog = open(os.path.join(rdir, "redis.log"), "a")


def redis_start():
    p = subprocess.Popen([REDIS, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--daemonize", "no", "--dir", rdir],
                         stdout=rlog, stderr=rlog)
    wait_for(lambda: cli("PING") == "PONG", 10, 0.05)
    return p


def cli(*args):
    r = subprocess.run([REDIS_CLI, "-p", str(PORT)] + list(args), capture_output=True,
                       text=True, timeout=5)
    return r.stdout.strip() if r.returncode == 0 else None


def row(d, appid):
    with sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=5) as c:
        return c.execute("SELECT refresh_token, revoked FROM authorizers WHERE appid = ?",
                         (appid,)).fetchone()


def cred(d, appid):
    for c in d.status()["credentials"]:
        if c["appid"] == appid:
            return c
    return None


def state(d, appid):
    return (cred(d, appid) or {}).get("state")


def errors():
    return mock.stats()["errors"].get(AUTH_EP, 0)


def send_load(d, appid, seconds, results):
    ok, errs = 0, []
    c = d.client()
    end = time.time() + seconds
    while time.time() < end:
        err, _ = c.call("send", message(appid=appid), timeout=15)
        if err is None:
            ok += 1
        else:
            errs.append(err)
        time.sleep(0.05)
    c.close()
    results.append((ok, errs))


redis = redis_start()
t.ok(cli("PING") == "PONG", "redis-server started")
mock = Mock(components=COMPONENTS)
comp = {COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY)}
extra = 'redis = "redis://127.0.0.1:%d/0"' % PORT
# a has the callback endpoint WeChat pushes to; b has none.
a = Daemon(mock=mock, components=comp, callback=True, start=False, extra=extra)
mock.config(event_url=a.callback_url)
a.start()
b = Daemon(mock=mock, components=comp, extra=extra)
t.ok(wait_for(lambda: state(a, COMPONENT) == "valid" and state(b, COMPONENT) == "valid", 15),
     "both hosts have the component token")

# 1. Authorized on a: b gets the authorizer, its refresh token and token.
for x in (AUTH1, AUTH2):
    r = mock.component_event("authorized", x)
    t.ok(r["reply"] == "success", "an authorized event to a", r)
    t.ok(wait_for(lambda: state(b, x) == "valid", 10),
         "b has the authorizer, valid, through Redis", cred(b, x))
    t.ok(row(b, x) is not None and row(b, x) == row(a, x),
         "b committed the same refresh token to its own store", (row(a, x), row(b, x)))
    err, res = b.call("send", message(appid=x))
    t.ok(err is None and res["errcode"] == 0, "b sends for the authorizer", err)
t.eq(mock.calls(AUTH_EP), 0, "with a's tokens: no api_authorizer_token call")

# 2. Rotation: a refresh on either host commits the new refresh token on both,
# and the other host's next refresh uses it.
mock.config(rotate_refresh_token=True)
for host, other in ((b, a), (a, b), (b, a)):
    rt0 = row(host, AUTH1)[0]
    calls, errs = mock.calls(AUTH_EP), errors()
    mock.invalidate(AUTH1)
    err, res = host.call("send", message(appid=AUTH1))
    t.ok(err is None and res["errcode"] == 0, "a send after invalidation refreshes", err)
    rt1 = row(host, AUTH1)[0]
    t.ok(rt1 != rt0, "the rotated refresh token is committed")
    t.ok(wait_for(lambda: row(other, AUTH1)[0] == rt1, 5, 0.05),
         "and reaches the other host's store")
    t.eq(mock.calls(AUTH_EP) - calls, 1, "one api_authorizer_token call")
    t.eq(errors() - errs, 0, "no 61023 (no refused refresh token)")
t.eq(mock.calls(LIST_EP), 0, "no api_get_authorizer_list walk")

# 3. Under load on both hosts, a refused token costs one call for the fleet
# (another authorizer: a token refused soon after one fetched for a refusal
# would trip a host's breaker).
calls, errs = mock.calls(AUTH_EP), errors()
results = []
ths = [threading.Thread(target=send_load, args=(d, AUTH2, 4, results)) for d in (a, b)]
for th in ths:
    th.start()
time.sleep(1)
mock.invalidate(AUTH2)
for th in ths:
    th.join()
ok = sum(x[0] for x in results)
failed = [e for x in results for e in x[1]]
t.ok(ok > 20 and not failed, "%d sends, none failed" % ok, failed[:3])
t.eq(mock.calls(AUTH_EP) - calls, 1, "one api_authorizer_token call for both hosts")
t.eq(errors() - errs, 0, "no 61023")
t.ok(wait_for(lambda: row(a, AUTH2) == row(b, AUTH2), 5, 0.05),
     "both stores hold the same refresh token")

# 4. A third authorizer, then a revocation on a: b answers revoked.
r = mock.component_event("authorized", AUTH3)
t.ok(r["reply"] == "success" and wait_for(lambda: state(b, AUTH3) == "valid", 10),
     "a third authorizer reaches b")
r = mock.component_event("unauthorized", AUTH1)
t.ok(r["reply"] == "success" and state(a, AUTH1) == "revoked", "unauthorized on a")
t.ok(wait_for(lambda: state(b, AUTH1) == "revoked", 5), "b's authorizer is revoked too")
err, res = b.call("send", message(appid=AUTH1))
t.ok(err is not None and err["code"] == "revoked", "b's sends answer revoked", err)
t.eq(row(b, AUTH1)[1], 1, "b stored the revocation")

# 5. Redis restarted empty: repopulated, nothing lost.
ALL = (AUTH1, AUTH2, AUTH3)
before = {x: cli("GET", "wxpushd:authorizer:" + x) for x in ALL}
redis.kill()
redis.wait()
redis = redis_start()
t.ok(wait_for(lambda: all(cli("EXISTS", "wxpushd:authorizer:" + x) == "1" for x in ALL) and
              cli("EXISTS", "wxpushd:token:" + AUTH3) == "1", 15, 0.1),
     "the daemons write the authorizers and tokens back")
after = {x: cli("GET", "wxpushd:authorizer:" + x) for x in ALL}
t.eq(after, before, "the same refresh tokens and revocation")
t.ok(wait_for(lambda: a.status()["redis"] == "connected" and
              b.status()["redis"] == "connected", 10), "both reconnected")
for host, other in ((a, b), (b, a)):
    calls, errs = mock.calls(AUTH_EP), errors()
    mock.invalidate(AUTH3)
    err, res = host.call("send", message(appid=AUTH3))
    t.ok(err is None and res["errcode"] == 0, "a refresh after the restart", err)
    t.eq(mock.calls(AUTH_EP) - calls, 1, "one api_authorizer_token call")
    t.eq(errors() - errs, 0, "no 61023")
    t.ok(wait_for(lambda: row(other, AUTH3) == row(host, AUTH3), 5, 0.05),
         "the rotated refresh token reaches the other host")
t.eq(state(b, AUTH1), "revoked", "the revocation survived")
t.eq(mock.calls(LIST_EP), 0, "never an api_get_authorizer_list walk")

# 6. A refresh token rotated elsewhere while b's refresh is on its way: b's
# 61023 looks in Redis before it walks WeChat's list.
r = mock.component_event("authorized", AUTH4)
t.ok(r["reply"] == "success" and wait_for(lambda: state(b, AUTH4) == "valid", 10),
     "a fourth authorizer reaches b")
with sqlite3.connect(os.path.join(a.state, "wxpushd.db"), timeout=5) as c:
    ctoken = c.execute("SELECT token FROM tokens WHERE appid = ?", (COMPONENT,)).fetchone()[0]
rt0 = row(b, AUTH4)[0]
calls, errs = mock.calls(AUTH_EP), errors()
mock.fault(AUTH_EP, 1, delay_ms=1500)
mock.invalidate(AUTH4)
answers = []
th = threading.Thread(target=lambda: answers.append(b.call("send", message(appid=AUTH4))))
th.start()
t.ok(wait_for(lambda: mock.calls(AUTH_EP) > calls, 5, 0.02), "b's refresh is held back")
r = mock.post(AUTH_EP + "?component_access_token=" + ctoken,
              {"component_appid": COMPONENT, "authorizer_appid": AUTH4,
               "authorizer_refresh_token": rt0})
newrt = r.get("authorizer_refresh_token")
t.ok(newrt and newrt != rt0, "meanwhile the refresh token rotates elsewhere")
cli("SET", "wxpushd:authorizer:" + AUTH4, "%d:0:%s:%s" % (time.time(), COMPONENT, newrt))
th.join()
err, res = answers[0]
t.ok(err is None and res["errcode"] == 0, "b's send succeeds after a 61023", err)
t.eq(errors() - errs, 1, "one 61023")
t.eq(mock.calls(LIST_EP), 0, "and no api_get_authorizer_list walk: Redis had it")
t.ok(row(b, AUTH4)[0] not in (rt0, newrt), "b committed the next rotation")
t.ok(wait_for(lambda: row(a, AUTH4) == row(b, AUTH4), 5, 0.05), "and a has it too")

for d in (a, b):
    t.eq(d.stop(), 0, "daemon stops cleanly")
redis.kill()
redis.wait()
t.done()
