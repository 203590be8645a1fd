"""A third-party platform on two daemons sharing Redis: the verify ticket WeChat
pushes to one host's callback reaches the other, which then gets its own
component_access_token without a push of its own; a later ticket follows."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time

from wxtest import (COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN,
                    COMPONENTS, Daemon, Mock, Tap, free_port, tmpdir, wait_for)

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
if REDIS is None or REDIS_CLI is None:
    print("1..0 # SKIP redis-server is not installed (apt-get install redis-server)")
    sys.exit(0)

t = Tap(timeout=120)
PORT = free_port()
rdir = tmpdir()
rlog = open(os.path.join(rdir, "redis.log"), "w")
redis = subprocess.Popen([REDIS, "--port", str(PORT), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--daemonize", "no", "--dir", rdir],
                         stdout=rlog, stderr=rlog)


def cli(*args):
    r = subprocess.run([REDIS_CLI, "-p", str(PORT)] + list(args), capture_output=True,
                       text=True, timeout=5)
    return r.stdout.strip() if r.returncode == 0 else None


def stored_ticket(d):
    with sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=5) as c:
        r = c.execute("SELECT ticket FROM tickets WHERE component_appid = ?",
                      (COMPONENT,)).fetchone()
    return r[0] if r else None


def cred(d, appid):
    for c in d.status()["credentials"]:
        if c["appid"] == appid:
            return c
    return None


t.ok(wait_for(lambda: cli("PING") == "PONG", 10, 0.05), "redis-server started")
mock = Mock(components=COMPONENTS)
comp = {COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY)}
extra = 'redis = "redis://127.0.0.1:%d/0"' % PORT
# a has the callback endpoint WeChat pushes to; b has none.
a = Daemon(mock=mock, components=comp, callback=True, start=False, extra=extra)
mock.config(event_url=a.callback_url)
a.start()
t.ok(wait_for(lambda: (cred(a, COMPONENT) or {}).get("state") == "valid", 10),
     "the host with the callback gets a ticket and the component token")
t.ok(wait_for(lambda: cli("EXISTS", "wxpushd:ticket:" + COMPONENT) == "1", 5, 0.05),
     "its ticket is in Redis")

b = Daemon(mock=mock, components=comp, extra=extra)
t.ok(wait_for(lambda: (cred(b, COMPONENT) or {}).get("state") == "valid", 10),
     "the host without a callback gets the ticket through Redis, then its token",
     cred(b, COMPONENT))
t.eq(stored_ticket(b), stored_ticket(a), "and stores the same ticket")
t.ok(cred(b, COMPONENT)["detail"].startswith("verify ticket"),
     "status shows b's ticket", cred(b, COMPONENT))

r = mock.component_event("component_verify_ticket")
t.ok(r["reply"] == "success", "a new ticket pushed to a", r)
t.ok(wait_for(lambda: stored_ticket(b) == r["ticket"], 5, 0.05),
     "reaches b through Redis")

for d in (a, b):
    t.eq(d.stop(), 0, "daemon stops cleanly")
redis.kill()
redis.wait()
t.done()
