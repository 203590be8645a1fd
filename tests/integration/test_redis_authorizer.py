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
r = mock.component_event("authorized", AUTH1)
t.ok(r["reply"] == "success", "an authorized event to a", r)
t.ok(wait_for(lambda: state(b, AUTH1) == "valid", 10),
     "b has the authorizer, valid, through Redis", cred(b, AUTH1))
t.ok(row(b, AUTH1) is not None and row(b, AUTH1) == row(a, AUTH1),
     "b committed the same refresh token to its own store", (row(a, AUTH1), row(b, AUTH1)))
err, res = b.call("send", message(appid=AUTH1))
t.ok(err is None and res["errcode"] == 0, "b sends for the authorizer", err)
t.eq(mock.calls(AUTH_EP), 0, "with a's token: no api_authorizer_token call")

# 2. Rotation: a refresh on either host commits the new refresh token on both.
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

# 3. Under load on both hosts, a refused token costs one call for the fleet.
calls, errs = mock.calls(AUTH_EP), errors()
results = []
ths = [threading.Thread(target=send_load, args=(d, AUTH1, 4, results)) for d in (a, b)]
for th in ths:
    th.start()
time.sleep(1)
mock.invalidate(AUTH1)
for th in ths:
    th.join()
ok = sum(x[0] for x in results)
failed = [e for x in results for e in x[1]]
t.ok(ok > 20 and not failed, "%d sends, none failed" % ok, failed[:3])
t.eq(mock.calls(AUTH_EP) - calls, 1, "one api_authorizer_token call for both hosts")
t.eq(errors() - errs, 0, "no 61023")
t.ok(wait_for(lambda: row(a, AUTH1) == row(b, AUTH1), 5, 0.05),
     "both stores hold the same refresh token")
mock.config(rotate_refresh_token=False)

# 4. A second authorizer, then a revocation on a: b answers revoked.
r = mock.component_event("authorized", AUTH2)
t.ok(r["reply"] == "success" and wait_for(lambda: state(b, AUTH2) == "valid", 10),
     "a second authorizer reaches b")
r = mock.component_event("unauthorized", AUTH1)
t.ok(r["reply"] == "success" and state(a, AUTH1) == "revoked", "unauthorized on a")
t.ok(wait_for(lambda: state(b, AUTH1) == "revoked", 5), "b's authorizer is revoked too")
err, res = b.call("send", message(appid=AUTH1))
t.ok(err is not None and err["code"] == "revoked", "b's sends answer revoked", err)
t.eq(row(b, AUTH1)[1], 1, "b stored the revocation")

# 5. Redis restarted empty: repopulated, nothing lost.
before = {appid: cli("GET", "wxpushd:authorizer:" + appid) for appid in (AUTH1, AUTH2)}
redis.kill()
redis.wait()
redis = redis_start()
t.ok(wait_for(lambda: all(cli("EXISTS", "wxpushd:authorizer:" + x) == "1"
                          for x in (AUTH1, AUTH2)) and
              cli("EXISTS", "wxpushd:token:" + AUTH2) == "1", 15, 0.1),
     "the daemons write the authorizers and token back")
after = {appid: cli("GET", "wxpushd:authorizer:" + appid) for appid in (AUTH1, AUTH2)}
t.eq(after, before, "the same refresh tokens and revocation")
t.ok(wait_for(lambda: "connected" == b.status().get("redis"), 10), "b reconnected")
calls = mock.calls(AUTH_EP)
mock.invalidate(AUTH2)
err, res = a.call("send", message(appid=AUTH2))
t.ok(err is None, "a refreshes the second authorizer with the shared refresh token", err)
err, res = b.call("send", message(appid=AUTH2))
t.ok(err is None, "and b sends with it", err)
t.eq(mock.calls(AUTH_EP) - calls, 1, "one api_authorizer_token call")
t.eq(state(b, AUTH1), "revoked", "the revocation survived")

for d in (a, b):
    t.eq(d.stop(), 0, "daemon stops cleanly")
redis.kill()
redis.wait()
t.done()
