"""Idle authorizers (authorizer_idle) against the real daemon and wxpush-mock:
2,000 stored authorizers of which 20 were used within the window. A start
loads and refreshes only those 20; a send for an idle one loads it from the
store and costs one api_authorizer_token call; status sums the platform's
authorizers up and pages through all of them from the store; the use is
remembered across a restart."""

import time

from wxtest import COMPONENT, COMPONENTS, Daemon, Mock, Tap, message, seed_authorizers, wait_for

AUTH_EP = "/cgi-bin/component/api_authorizer_token"
N, ACTIVE = 2000, 20
PREFIX = "wxbulk"

t = Tap(timeout=180)
mock = Mock(components=COMPONENTS)
bulk = mock.post("/mock/component/bulk", {"component_appid": COMPONENT, "prefix": PREFIX,
                                          "count": N})
t.eq(bulk.get("count"), N, "the mock holds %d authorizers in bulk" % N)
ticket = mock.post("/mock/component/event", {"component_appid": COMPONENT,
                                             "info_type": "component_verify_ticket"})["ticket"]
appids = ["%s%07d" % (PREFIX, i) for i in range(N)]

d = Daemon(mock=mock, accounts={}, components=COMPONENTS,
           extra="authorizer_idle = 86400\n")
wait_for(lambda: any(c["appid"] == COMPONENT for c in d.status()["credentials"]), 5)
d.stop()
now = int(time.time())
seed_authorizers(d, COMPONENT, ticket,
                 [(a, bulk["refresh_token_prefix"] + a, now - 5 * 86400,
                   now - 60 if i < ACTIVE else now - 5 * 86400)
                  for i, a in enumerate(appids)])
d.start()


def summary():
    for c in d.status(COMPONENT)["credentials"]:
        if c["appid"] == COMPONENT:
            return c.get("authorizers", {})
    return {}


s = summary()
t.eq((s.get("stored"), s.get("recent"), s.get("loaded")), (N, ACTIVE, ACTIVE),
     "status sums up the platform: 2000 stored, 20 used within authorizer_idle, 20 loaded")
t.ok(wait_for(lambda: summary().get("states", {}).get("valid") == ACTIVE, 60, 0.2),
     "the 20 recently used get their tokens", summary())
t.eq(mock.calls(AUTH_EP), ACTIVE, "one api_authorizer_token call each, none for the idle")
t.eq(sum(1 for c in d.status()["credentials"] if c["kind"] == "authorizer"), ACTIVE,
     "only they are in memory")

idle = appids[-1]
calls = mock.calls(AUTH_EP)
t0 = time.time()
err, res = d.call("send", message(appid=idle))
took = time.time() - t0
t.ok(err is None, "a send as an idle authorizer succeeds (%.1f ms)" % (took * 1000), err)
t.eq(mock.calls(AUTH_EP) - calls, 1, "with one api_authorizer_token call")
err, res = d.call("send", message(appid=idle))
t.ok(err is None and mock.calls(AUTH_EP) - calls == 1, "the next send needs none", err)
t.eq((d.cred(idle) or {}).get("state"), "valid", "it is valid (and refreshed) from then on")
err, _ = d.call("send", message(appid=PREFIX + "9999999"))
t.eq((err or {}).get("code"), "unknown_appid", "an appid stored nowhere is unknown_appid")

# Paging from the store.
seen, states, after, pages = [], {}, "", 0
while after is not None and pages < 10:
    err, res = d.call("status", {"appid": COMPONENT, "authorizers_after": after,
                                 "authorizers_limit": 500})
    if err is not None:
        t.ok(False, "a page of status", err)
        break
    pages += 1
    for a in res["authorizers"]:
        seen.append(a["appid"])
        states[a["state"]] = states.get(a["state"], 0) + 1
    after = res["authorizers_next"] if len(res["authorizers"]) == 500 else None
    if pages == 1:
        t.eq([c["appid"] for c in res["credentials"]], [COMPONENT],
             "a paged status lists the platform itself, not its loaded authorizers")
t.eq(seen, appids, "pages of 500 walk all 2000 in appid order")
t.eq(states, {"valid": ACTIVE + 1, "idle": N - ACTIVE - 1}, "with their states")
err, _ = d.call("status", {"appid": COMPONENT, "authorizers_limit": 0})
t.eq((err or {}).get("field"), "authorizers_limit", "authorizers_limit 0 is refused")
err, _ = d.call("status", {"appid": idle, "authorizers_limit": 10})
t.eq((err or {}).get("code"), "invalid_request", "paging needs a platform's appid")

# The use is remembered: a restart loads it with the others.
d.stop()
d.start()
s = summary()
t.eq((s.get("recent"), s.get("loaded")), (ACTIVE + 1, ACTIVE + 1),
     "after a restart the authorizer used since is loaded at start")
d.stop()
mock.stop()
t.done()
