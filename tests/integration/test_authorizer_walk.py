"""The api_get_authorizer_list walk against the real daemon and wxpush-mock
with 10,000 bulk authorizers: one stored authorizer with a stale refresh token
gets 61023, the walk pages through the list 500 at a time (paced), recovers
it from the first page, learns every other listed authorizer into the store
without loading it, survives a SIGKILL mid-walk by resuming from the stored
offset, and ends (its row gone) at the end of the list."""

import os
import signal
import sqlite3
import time

from wxtest import COMPONENT, COMPONENTS, Daemon, Mock, Tap, wait_for

LIST_EP = "/cgi-bin/component/api_get_authorizer_list"
AUTH_EP = "/cgi-bin/component/api_authorizer_token"
N = 10000
PREFIX = "wxbulk"

t = Tap(timeout=240)
mock = Mock(components=COMPONENTS)
bulk = mock.post("/mock/component/bulk", {"component_appid": COMPONENT, "prefix": PREFIX,
                                          "count": N})
ticket = mock.post("/mock/component/event", {"component_appid": COMPONENT,
                                             "info_type": "component_verify_ticket"})["ticket"]
stale = "%s%07d" % (PREFIX, 5)

d = Daemon(mock=mock, accounts={}, components=COMPONENTS,
           extra="authorizer_idle = 86400\n")
wait_for(lambda: any(c["appid"] == COMPONENT for c in d.status()["credentials"]), 5)
d.stop()
db = os.path.join(d.state, "wxpushd.db")
now = int(time.time())
with sqlite3.connect(db, timeout=5) as c:
    c.execute("INSERT OR REPLACE INTO tickets (component_appid, ticket, received_at) "
              "VALUES (?, ?, ?)", (COMPONENT, ticket, now))
    c.execute("INSERT INTO authorizers (appid, component_appid, refresh_token, revoked, "
              "updated_at, last_used) VALUES (?, ?, 'refreshtoken@@@stale', 0, ?, ?)",
              (stale, COMPONENT, now - 86400, now - 60))


def q(sql, *args):
    with sqlite3.connect(db, timeout=5) as c:
        return c.execute(sql, args).fetchall()


def walk():
    r = q("SELECT next_offset FROM authorizer_walks WHERE component_appid = ?", COMPONENT)
    return r[0][0] if r else None


d.start()
t.ok(wait_for(lambda: (walk() or 0) >= 1000, 60, 0.05),
     "61023 starts the walk; its offset is stored page by page", walk())
t.ok(wait_for(lambda: any(c["appid"] == stale and c["state"] == "valid"
                          for c in d.status()["credentials"]), 30, 0.2),
     "the stale authorizer recovered from the first page")
d.stop(sig=signal.SIGKILL)
at_kill = walk()
calls_at_kill = mock.calls(LIST_EP)
t.ok(at_kill is not None and at_kill < N, "killed mid-walk at offset %s" % at_kill)
learned = q("SELECT count(*) FROM authorizers WHERE component_appid = ?", COMPONENT)[0][0]
t.ok(learned >= at_kill, "the rows of the pages walked are in the store (%d)" % learned)

d.start()
t.ok(wait_for(lambda: walk() is None, 60, 0.1), "after the restart the walk ends")
pages_after = mock.calls(LIST_EP) - calls_at_kill
t.ok(pages_after <= (N - at_kill + 499) // 500 + 1,
     "resumed: %d pages after the restart, not all %d" % (pages_after, N // 500 + 1))
rows = q("SELECT count(*), sum(refresh_token = 'refreshtoken@@@bulk' || appid) "
         "FROM authorizers WHERE component_appid = ?", COMPONENT)[0]
t.eq(rows[0], N, "every listed authorizer is stored")
t.ok(rows[1] >= N - 1, "with WeChat's refresh token (%d)" % rows[1])
loaded = sum(1 for c in d.status()["credentials"] if c["kind"] == "authorizer")
t.ok(loaded <= 1, "none of them loaded (%d in memory)" % loaded)
t.eq(d.stop(), 0, "SIGTERM exits 0")
t.done()
