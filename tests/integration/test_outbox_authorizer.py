"""The outbox and a third-party platform's authorizer that revokes the
platform: messages queued for it stay queued, unattempted, with no token
calls, and go out within seconds of a new authorization."""

import time

from wxtest import (COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENTS,
                    Daemon, Mock, Tap, message, wait_for)

t = Tap(timeout=90)
AUTH1 = "wxauthorizer000001"
AUTH_EP = "/cgi-bin/component/api_authorizer_token"

mock = Mock(components=COMPONENTS)
d = Daemon(mock=mock, components={COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN,
                                              COMPONENT_KEY)},
           callback=True, start=False)
mock.config(event_url=d.callback_url)
d.start()


def cred_state(appid):
    c = d.cred(appid)
    return c["state"] if c else None


def state(mid):
    err, res = d.call("delivery", {"id": mid})
    return res if err is None else err


t.ok(wait_for(lambda: cred_state(COMPONENT) == "valid", 15), "the platform has its token")
mock.component_event("authorized", AUTH1)
t.ok(wait_for(lambda: cred_state(AUTH1) == "valid", 10), "the authorizer is authorized")
err, res = d.call("enqueue", message(appid=AUTH1))
t.ok(err is None and wait_for(lambda: state(res["id"])["state"] == "delivered", 10),
     "a message queued for the authorizer is delivered", (err, res))

mock.component_event("unauthorized", AUTH1)
t.ok(wait_for(lambda: cred_state(AUTH1) == "revoked", 10), "the authorizer revokes the platform")
sends = len(mock.sends(AUTH1))
auth_calls = mock.calls(AUTH_EP)
err, res = d.call("enqueue", {"messages": [message(appid=AUTH1) for _ in range(5)]})
t.ok(err is None, "enqueue accepts messages for a revoked authorizer", err)
ids = res["ids"]
time.sleep(4)
t.ok(all(state(i)["state"] == "queued" and state(i)["attempts"] == 0 for i in ids),
     "they stay queued, unattempted", [state(i) for i in ids[:2]])
t.eq(len(mock.sends(AUTH1)), sends, "nothing reached WeChat for it")
t.eq(mock.calls(AUTH_EP), auth_calls, "no token call for a revoked authorizer")

t0 = time.time()
mock.component_event("authorized", AUTH1)
t.ok(wait_for(lambda: all(state(i)["state"] == "delivered" for i in ids), 15, 0.1),
     "authorized again: they are delivered", [state(i) for i in ids[:2]])
t.diag("delivered %.1f s after the new authorization" % (time.time() - t0))
t.ok(time.time() - t0 < 10, "within seconds")
t.eq(d.stop(), 0, "SIGTERM exits 0")
t.done()
