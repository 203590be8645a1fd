"""Component events that are replayed, late or repeated (issue #13, items 10-12),
built here with wx_event and sent through the HTTP callback and component_event:
tickets applied in CreateTime order and aged from it, a captured unauthorized
event replayed after a re-authorization, timestamps outside the window, exact
replays; authorized events answered at once and exchanged in the background
with retries, across a restart, 61010 and other final refusals shown in status
and metrics; api_query_auth without tokens (no API permission granted) and the
permission sets granted, durably, in status."""

import os
import signal
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request

from wxtest import (COMPONENT, COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY,
                    COMPONENTS, Daemon, Mock, Tap, free_port, message, wait_for,
                    wx_event)

QUERY_EP = "/cgi-bin/component/api_query_auth"
TOKEN_EP = "/cgi-bin/component/api_component_token"
WINDOW = 900        # CALLBACK_EVENT_WINDOW
AUTH = ["wxeventauthor%05d" % i for i in range(12)]

t = Tap(timeout=600)


def db(d):
    return sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=5)


def stored_ticket(d):
    with db(d) as c:
        r = c.execute("SELECT ticket, received_at FROM tickets WHERE component_appid = ?",
                      (COMPONENT,)).fetchone()
    return tuple(r) if r else None


def post_callback(d, body, params):
    """POST an event to the daemon's callback URL: (HTTP status, reply, seconds)."""
    url = d.callback_url + "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), time.time() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace"), time.time() - t0


def rpc_event(d, body, q):
    return d.call("component_event", dict(q, component_appid=COMPONENT, body=body))


def cred(d, appid):
    for c in d.status()["credentials"]:
        if c["appid"] == appid:
            return c
    return None


def state(d, appid):
    c = cred(d, appid)
    return c["state"] if c else None


def metric(port, name, appid=COMPONENT):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('%s{appid="%s"}' % (name, appid)):
                return float(line.split()[-1])
    return None


def ticket_event(ticket, create_time, ts=None):
    return wx_event("<xml><AppId><![CDATA[%s]]></AppId><CreateTime>%d</CreateTime>"
                    "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
                    "<ComponentVerifyTicket><![CDATA[%s]]></ComponentVerifyTicket></xml>"
                    % (COMPONENT, create_time, ticket), timestamp=ts)


def auth_event(info_type, authorizer, create_time, code=None, ts=None):
    extra = ("<AuthorizationCode><![CDATA[%s]]></AuthorizationCode>" % code
             if code else "")
    return wx_event("<xml><AppId><![CDATA[%s]]></AppId><CreateTime>%d</CreateTime>"
                    "<InfoType><![CDATA[%s]]></InfoType>"
                    "<AuthorizerAppid><![CDATA[%s]]></AuthorizerAppid>%s</xml>"
                    % (COMPONENT, create_time, info_type, authorizer, extra),
                    timestamp=ts)


mport = free_port()
mock = Mock(components=COMPONENTS)
d = Daemon(mock=mock, components={COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN,
                                              COMPONENT_KEY)},
           callback=True, start=False, extra='metrics_listen = "127.0.0.1:%d"' % mport)
d.start()       # no event URL at the mock yet: tickets come from this test

# --- Item 10: tickets in CreateTime order, aged from CreateTime. ---

dead = "http://127.0.0.1:%d/nowhere" % free_port()
t1 = mock.component_event("component_verify_ticket", url=dead)["ticket"]
t2 = mock.component_event("component_verify_ticket", url=dead)["ticket"]
now = int(time.time())
b1, q1 = ticket_event(t1, now - 600)
st, text, _ = post_callback(d, b1, q1)
t.ok(st == 200 and text == "success", "a ticket created 10 min ago is taken", (st, text))
t.eq(stored_ticket(d), (t1, now - 600), "it is stored with its CreateTime")
t.ok(wait_for(lambda: state(d, COMPONENT) == "valid", 10),
     "the component gets its token with it", cred(d, COMPONENT))
c = cred(d, COMPONENT)
t.ok(c["detail"].startswith("verify ticket 10 min old"),
     "its age counts from CreateTime, not its arrival", c["detail"])
age = metric(mport, "wxpushd_verify_ticket_age_seconds")
t.ok(age is not None and 595 <= age <= 700, "and so does the metric", age)

bo, qo = ticket_event("ticket@@@replayed-older", now - 700)
st, text, _ = post_callback(d, bo, qo)
t.ok(st == 200 and text == "success", "an older ticket replayed is answered success",
     (st, text))
t.eq(stored_ticket(d), (t1, now - 600), "but does not replace the newer one")
err, res = rpc_event(d, bo, qo)
t.ok(err is None and res["reply"] == "success", "also through component_event", err)
t.eq(stored_ticket(d), (t1, now - 600), "which does not apply it either")

b2, q2 = ticket_event(t2, now - 60)
err, res = rpc_event(d, b2, q2)
t.ok(err is None and res["info_type"] == "component_verify_ticket",
     "a newer ticket through component_event", (err, res))
t.eq(stored_ticket(d), (t2, now - 60), "replaces the older one")
st, text, _ = post_callback(d, b1, q1)
t.ok(st == 200 and text == "success", "the first ticket's event replayed exactly: success",
     (st, text))
t.eq(stored_ticket(d), (t2, now - 60), "not applied again")

bs, qs = ticket_event(t1, now - 3 * WINDOW, ts=now - 3 * WINDOW)
st, text, _ = post_callback(d, bs, qs)
t.ok(st == 400 and "timestamp" in text, "a timestamp far in the past: HTTP 400", (st, text))
err, res = rpc_event(d, bs, qs)
t.ok(err is not None and err["code"] == "invalid_request" and
     err.get("field") == "timestamp", "component_event: invalid_request, field timestamp",
     err)
bf, qf = ticket_event(t1, now + 3 * WINDOW, ts=now + 3 * WINDOW)
st, text, _ = post_callback(d, bf, qf)
t.ok(st == 400 and "ahead" in text, "a timestamp far in the future: HTTP 400", (st, text))
t.eq(stored_ticket(d), (t2, now - 60), "neither changed the ticket")

d.stop()
d.start()
st, text, _ = post_callback(d, bo, qo)
t.ok(st == 200 and text == "success", "after a restart the older ticket is still success",
     (st, text))
t.eq(stored_ticket(d), (t2, now - 60), "and still not applied (the order is durable)")
t.ok(wait_for(lambda: state(d, COMPONENT) == "valid", 10), "component valid again")

# --- Item 12: authorized answered at once, exchanged in the background. ---

mock.config(event_url=d.callback_url)
# WeChat answers api_query_auth after 2.5 s (the old code answered the event
# only then), and first with -1 (system busy), then normally.
mock.fault(QUERY_EP, 1, errcode=-1)
mock.fault(QUERY_EP, 1, delay_ms=2500)
t0 = time.time()
r = mock.component_event("authorized", AUTH[0])
took = time.time() - t0
t.ok(r["http_status"] == 200 and r["reply"] == "success" and took < 1.5,
     "an authorized event is answered success at once while api_query_auth fails "
     "and then is slow (%.1f s)" % took, r)
t.ok("being exchanged" in cred(d, COMPONENT)["detail"],
     "status shows the exchange in progress", cred(d, COMPONENT)["detail"])
t.eq(metric(mport, "wxpushd_authorization_exchanges_pending"), 1.0,
     "and so does the metric")
t.ok(wait_for(lambda: state(d, AUTH[0]) == "valid", 30),
     "the exchange is retried after a backoff and the authorizer is valid",
     cred(d, AUTH[0]))
t.eq(mock.calls(QUERY_EP), 2, "two api_query_auth calls (the first got -1)")
t.ok(wait_for(lambda: "being exchanged" not in cred(d, COMPONENT)["detail"], 5),
     "nothing pending after that", cred(d, COMPONENT)["detail"])

code = mock.component_code(AUTH[1])
ba, qa = auth_event("authorized", AUTH[1], int(time.time()), code)
queries = mock.calls(QUERY_EP)
st, text, _ = post_callback(d, ba, qa)
t.ok(st == 200 and text == "success", "an authorized event built here: success", (st, text))
t.ok(wait_for(lambda: state(d, AUTH[1]) == "valid", 15), "and exchanged",
     cred(d, AUTH[1]))
st, text, _ = post_callback(d, ba, qa)
t.ok(st == 200 and text == "success", "the same push again: success", (st, text))
err, res = rpc_event(d, ba, qa)
t.ok(err is None and res == {"reply": "success", "info_type": "authorized",
                             "authorizer_appid": AUTH[1]},
     "and through component_event, with the contract's map", (err, res))
time.sleep(0.1)
t.eq(mock.calls(QUERY_EP), queries + 1, "the code was exchanged once, not again")
t.ok("61010" not in d.logtext(), "no 61010 from a repeated push")

# A re-push with a new nonce and the same CreateTime (the cache cannot know it).
ct = int(time.time()) + 5
code = mock.component_code(AUTH[2])
bb, qb = auth_event("authorized", AUTH[2], ct, code)
st, text, _ = post_callback(d, bb, qb)
t.ok(wait_for(lambda: state(d, AUTH[2]) == "valid", 15), "another authorization",
     cred(d, AUTH[2]))
queries = mock.calls(QUERY_EP)
bb2, qb2 = auth_event("authorized", AUTH[2], ct, code)
st, text, _ = post_callback(d, bb2, qb2)
t.ok(st == 200 and text == "success" and qb2["nonce"] != qb["nonce"],
     "pushed again, signed anew with the same CreateTime: success", (st, text))
time.sleep(0.5)
t.eq(mock.calls(QUERY_EP), queries, "and recognised as handled: no exchange")

# 61010 (a code expired or used) ends the exchange: logged, in status and metrics.
bx, qx = auth_event("authorized", AUTH[3], int(time.time()), "queryauthcode@@@bogus")
st, text, _ = post_callback(d, bx, qx)
t.ok(st == 200 and text == "success", "an authorized event with a dead code: success "
     "to WeChat (it must stop pushing)", (st, text))
t.ok(wait_for(lambda: "authorization of %s failed: wechat 61010" % AUTH[3] in
              cred(d, COMPONENT)["detail"], 10),
     "61010 ends the exchange, shown in the component's status detail",
     cred(d, COMPONENT)["detail"])
t.eq(metric(mport, "wxpushd_authorization_exchange_failures_total"), 1.0,
     "and counted in metrics")
t.ok("could not be exchanged" in d.logtext(), "and logged")
t.eq(cred(d, AUTH[3]), None, "no authorizer was made")

# Pending exchanges survive a restart.
mock.fault(QUERY_EP, 1, errcode=-1)
code = mock.component_code(AUTH[4])
bp, qp = auth_event("authorized", AUTH[4], int(time.time()), code)
st, text, _ = post_callback(d, bp, qp)
t.ok(st == 200 and text == "success", "an authorization whose first exchange fails (-1)",
     (st, text))
t.ok(wait_for(lambda: mock.calls(QUERY_EP) >= queries + 2, 5), "the exchange was tried")
d.stop()
with db(d) as conn:
    rows = conn.execute("SELECT authorizer_appid, info_type, attempts FROM "
                        "pending_authorizations").fetchall()
t.eq(rows, [(AUTH[4], "authorized", 1)], "stopped while waiting to retry: it is in the store")
d.start()
t.ok(wait_for(lambda: state(d, AUTH[4]) == "valid", 20),
     "after the restart the exchange resumes and the authorizer is valid", cred(d, AUTH[4]))
with db(d) as conn:
    n = conn.execute("SELECT count(*) FROM pending_authorizations").fetchone()[0]
t.eq(n, 0, "and the record is gone")

# WeChat takes the code but its answer is lost (longer than upstream_timeout):
# the retry gets 61010, and the refresh token is found in the authorizer list.
LIST_EP = "/cgi-bin/component/api_get_authorizer_list"
lists = mock.calls(LIST_EP)
mock.fault(QUERY_EP, 1, delay_ms=4500)
code = mock.component_code(AUTH[10])
bl, ql = auth_event("authorized", AUTH[10], int(time.time()), code)
st, text, took = post_callback(d, bl, ql)
t.ok(st == 200 and text == "success" and took < 1.5,
     "an authorized event answered at once while api_query_auth hangs (%.1f s)" % took,
     (st, text))
t.ok(wait_for(lambda: state(d, AUTH[10]) == "valid", 40),
     "the exchange timed out and its retry met 61010, yet the authorizer is valid",
     cred(d, AUTH[10]))
t.ok(mock.calls(LIST_EP) > lists, "its refresh token came from api_get_authorizer_list")
t.ok("after an attempt without an answer" in d.logtext(), "logged")

# --- Item 10: a captured unauthorized event replayed after a re-authorization. ---

victim = AUTH[0]
ct_u = int(time.time()) + 1
bu, qu = auth_event("unauthorized", victim, ct_u)
st, text, _ = post_callback(d, bu, qu)
t.ok(st == 200 and text == "success" and state(d, victim) == "revoked",
     "a genuine unauthorized event revokes", (st, text, state(d, victim)))
time.sleep(2.2)     # the re-authorization is created later than ct_u
r = mock.component_event("authorized", victim)
t.ok(r["http_status"] == 200 and wait_for(lambda: state(d, victim) == "valid", 15),
     "the merchant authorizes again", (r, cred(d, victim)))
st, text, _ = post_callback(d, bu, qu)
t.ok(st == 200 and text == "success", "the captured unauthorized event replayed: success",
     (st, text))
time.sleep(0.3)
t.eq(state(d, victim), "valid", "but the authorizer stays valid (exact replay, in memory)")
t.ok("seen already" in d.logtext(), "logged as a replay")
err, res = d.call("send", message(appid=victim))
t.ok(err is None, "and it can send", err)
d.stop()
d.start()
st, text, _ = post_callback(d, bu, qu)
t.ok(st == 200 and text == "success", "replayed again after a restart: success", (st, text))
err, res = rpc_event(d, bu, qu)
t.ok(err is None and res["reply"] == "success", "and through component_event", err)
t.ok(wait_for(lambda: state(d, victim) == "valid", 10),
     "still valid: older than the last authorization change (durable order)",
     cred(d, victim))
with db(d) as conn:
    rev = conn.execute("SELECT revoked FROM authorizers WHERE appid = ?",
                       (victim,)).fetchone()[0]
t.eq(rev, 0, "and not revoked in the store")
bu2, qu2 = auth_event("unauthorized", victim, ct_u, ts=int(time.time()) - 2 * WINDOW)
st, text, _ = post_callback(d, bu2, qu2)
t.ok(st == 400 and "timestamp" in text, "an unauthorized event dated outside the window: "
     "400", (st, text))

# The authorize method's own authorization also orders later events.
code = mock.component_code(AUTH[5])
err, res = d.call("authorize", {"component_appid": COMPONENT, "authorization_code": code})
t.ok(err is None and res == {"authorizer_appid": AUTH[5]}, "authorize still answers with "
     "the exchange's result", (err, res))
bo5, qo5 = auth_event("unauthorized", AUTH[5], int(time.time()) - 30)
st, text, _ = post_callback(d, bo5, qo5)
t.ok(st == 200 and state(d, AUTH[5]) == "valid",
     "an unauthorized event older than an authorize call is not applied",
     (st, text, state(d, AUTH[5])))

# --- Item 11: no API permission granted, and the permission sets granted. ---

mock.config(func_info=[])
queries = mock.calls(QUERY_EP)
code = mock.component_code(AUTH[6])
err, res = d.call("authorize", {"component_appid": COMPONENT, "authorization_code": code})
t.ok(err is not None and err["code"] == "no_permission" and not err["retryable"] and
     "permission" in err["message"] and AUTH[6] in err["message"],
     "api_query_auth without tokens: authorize answers no_permission, final", err)
t.eq(cred(d, AUTH[6]), None, "and no authorizer is made")
r = mock.component_event("authorized", AUTH[7])
t.ok(r["http_status"] == 200 and r["reply"] == "success",
     "the same through an event: success to WeChat (it must stop pushing)", r)
t.ok(wait_for(lambda: "authorization of %s failed: no_permission" % AUTH[7] in
              cred(d, COMPONENT)["detail"], 10),
     "the exchange ends at once, shown in status", cred(d, COMPONENT)["detail"])
t.eq(mock.calls(QUERY_EP) - queries, 2, "one api_query_auth each: no retry")

mock.config(func_info=[15, 1, 2, 1])
code = mock.component_code(AUTH[8])
err, res = d.call("authorize", {"component_appid": COMPONENT, "authorization_code": code})
t.ok(err is None, "an authorization with three permission sets", err)
t.eq(cred(d, AUTH[8]).get("permissions"), [1, 2, 15],
     "status shows them sorted, without repeats")
mock.config(func_info=[2])
r = mock.component_event("authorized", AUTH[9])
t.ok(wait_for(lambda: (cred(d, AUTH[9]) or {}).get("permissions") == [2], 15),
     "one without the message set (1) is visible before any send", cred(d, AUTH[9]))
d.stop()
d.start()
t.eq(cred(d, AUTH[8]).get("permissions"), [1, 2, 15], "the permissions are kept across a "
     "restart")
t.ok("permissions" not in cred(d, COMPONENT), "a component has no permissions key")
mock.config(func_info=None)

d.stop()
t.done()
