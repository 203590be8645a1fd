"""The consent ledger (issue #15) against wxpush-mock, with urllib playing the
user's browser on the consent_listen endpoint: signed link -> redirect ->
recorded -> a send spends it -> a second send is no_consent without a call
upstream; forged, tampered, expired and cross-appid reserved values refused;
cancel recorded; reloads counted once; concurrent sends for one consent; a
kill -9 while WeChat has not answered."""

import http.client
import os
import random
import signal
import sqlite3
import string
import time
import urllib.error
import urllib.parse
import urllib.request

from wxtest import (APPID, COMPONENT, COMPONENT_KEY, COMPONENTS, SECRET, Daemon, Mock, Tap,
                    free_port, message, wait_for)

t = Tap(timeout=240)
APPID2 = "wx00000000000000b2"
SUBSCRIBE = "/cgi-bin/message/template/subscribe"
TID = "TEMPLATE_id_0001"
USER = "oUSER_openid_0001"

mock = Mock(accounts={APPID: SECRET, APPID2: SECRET})
port = free_port()
mport = free_port()
d = Daemon(mock, accounts={APPID: SECRET, APPID2: SECRET}, start=False)
keyfile = os.path.join(d.dir, "consent.key")
with open(keyfile, "w") as f:
    f.write("k" * 16 + "0123456789abcdef0123456789abcdef\n")
os.chmod(keyfile, 0o600)
d.extra = ('consent_key_file = "%s"\nconsent_listen = "127.0.0.1:%d"\n'
           'consent_public_url = "http://127.0.0.1:%d/consent/"\n'
           'metrics_listen = "127.0.0.1:%d"\nsocket_mode = "0666"\n'
           % (keyfile, port, port, mport))
d.account_extra = 'consent = "required"'
d.write_conf()
d.start()


def link(appid=APPID, tid=TID, scene=1000, **kw):
    p = {"appid": appid, "template_id": tid, "scene": scene}
    p.update(kw)
    err, res = d.call("consent_url", p)
    if err:
        raise RuntimeError("consent_url: %r" % (err,))
    return res


def browse(appid=APPID, openid=USER, tid=TID, action="confirm", scene=1000,
           reserved=None, path=None):
    """The browser after WeChat's consent page: (status, body)."""
    q = urllib.parse.urlencode({"openid": openid, "template_id": tid,
                                "action": action, "scene": scene,
                                "reserved": reserved})
    url = "http://127.0.0.1:%d%s?%s" % (port, path or "/consent/" + appid, q)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def consents(appid=APPID, **kw):
    p = {"appid": appid}
    p.update(kw)
    err, res = d.call("consents", p)
    if err:
        raise RuntimeError("consents: %r" % (err,))
    return res["consents"]


def send(**kw):
    return d.call("send", message(**kw))


# The signed link: WeChat's page, our redirect, a reserved of [A-Za-z0-9].
res = link(reference="order-42")
u = urllib.parse.urlsplit(res["url"])
q = dict(urllib.parse.parse_qsl(u.query))
t.ok(res["url"].startswith("https://mp.weixin.qq.com/mp/subscribemsg?action=get_confirm&")
     and res["url"].endswith("#wechat_redirect"), "consent_url gives WeChat's page", res)
t.eq((q["appid"], q["template_id"], q["scene"], q["redirect_url"]),
     (APPID, TID, "1000", "http://127.0.0.1:%d/consent/%s" % (port, APPID)),
     "with the appid, template, scene and consent_public_url/APPID")
r1 = q["reserved"]
t.ok(r1 == res["reserved"] and 0 < len(r1) <= 128 and
     all(c in string.ascii_letters + string.digits for c in r1),
     "reserved is 1..128 of [A-Za-z0-9]", r1)

# Nothing spendable yet: no_consent at once, nothing upstream.
err, _ = send()
t.eq((err or {}).get("code"), "no_consent", "consent = required: no consent, no_consent")
t.eq(mock.calls(SUBSCRIBE), 0, "and WeChat was not called")

# The browser comes back: recorded once, however often it reloads.
st, body = browse(reserved=r1)
t.ok(st == 200 and "one message" in body, "the redirect is accepted", (st, body))
st2, _ = browse(reserved=r1)
browse(reserved=r1)
t.eq(st2, 200, "a reload is answered the same")
c = consents()
t.eq([(x["openid"], x["template_id"], x["scene"], x["state"], x["reference"]) for x in c],
     [(USER, TID, 1000, "granted", "order-42")], "one consent recorded, with the reference")
t.ok("oUSER_openid_0001" not in open(d.logpath).read(),
     "the openid is not in the log (debug level)")

# Spend: the send goes out, a second one does not.
err, r = send()
t.ok(err is None and r.get("errcode") == 0, "a send spends the consent", err)
t.eq(mock.calls(SUBSCRIBE), 1, "one call upstream")
err, _ = send()
t.eq((err or {}).get("code"), "no_consent", "a second send: no_consent")
t.eq(mock.calls(SUBSCRIBE), 1, "without a call upstream")
t.eq([x["state"] for x in consents()], ["spent"], "the consent shows spent")

# Refused: forged, tampered (each field), expired, another appid.
forged = "".join(random.choice(string.ascii_letters + string.digits) for _ in range(len(r1)))
r2 = link()["reserved"]
flip = r2[:5] + ("a" if r2[5] != "a" else "b") + r2[6:]
before = len(consents())
for desc, kw in [
        ("a forged reserved", dict(reserved=forged)),
        ("a reserved with a character changed", dict(reserved=flip)),
        ("another template_id", dict(reserved=r2, tid="TEMPLATE_id_0002")),
        ("another scene", dict(reserved=r2, scene=1001)),
        ("an action that is neither confirm nor cancel", dict(reserved=r2, action="ok")),
        ("another appid's endpoint", dict(reserved=r2, appid=APPID2)),
        ("an appid not configured", dict(reserved=r2, appid="wx99999999999999zz")),
        ("a reserved over 128 characters", dict(reserved=r2 + "0" * 120)),
]:
    st, _ = browse(**kw)
    t.ok(st in (400, 404), "%s is refused" % desc, st)
t.eq(len(consents()) + len(consents(APPID2)), before, "nothing recorded for them")
err, _ = d.call("consent_record", {"appid": APPID2, "openid": USER, "template_id": TID,
                                   "action": "confirm", "scene": 1000, "reserved": r2})
t.eq((err or {}).get("field"), "reserved", "consent_record refuses another appid's link too")
r3 = link(expires_in=1)["reserved"]
time.sleep(2.5)
st, body = browse(reserved=r3)
t.eq(st, 400, "an expired link is refused")
t.eq(len(consents()), before, "and not recorded")

# Cancel: recorded as a refusal, never spendable.
st, body = browse(reserved=r2, action="cancel")
t.ok(st == 200 and "not receive" in body, "a cancel is answered", body)
t.eq(sorted(x["state"] for x in consents()), ["refused", "spent"], "recorded as refused")
err, _ = send()
t.eq((err or {}).get("code"), "no_consent", "a refusal cannot be spent")

# consent_record: the application forwards the redirect itself.
r4 = link(appid=APPID2, scene=7)["reserved"]
err, res = d.call("consent_record", {"appid": APPID2, "openid": USER, "template_id": TID,
                                     "action": "confirm", "scene": 7, "reserved": r4})
t.eq((err, res), (None, {"state": "granted", "new": True}), "consent_record records")
err, res = d.call("consent_record", {"appid": APPID2, "openid": USER, "template_id": TID,
                                     "action": "confirm", "scene": 7, "reserved": r4})
t.eq(res, {"state": "granted", "new": False}, "the same again is not new")

# WeChat's refusal gives the consent back; 43101 keeps it spent.
mock.fault(SUBSCRIBE, 1, errcode=40003)
err, _ = send(appid=APPID2, scene=7)
t.eq((err or {}).get("errcode"), 40003, "WeChat refuses a send (40003)")
t.eq([x["state"] for x in consents(APPID2)], ["granted"], "the consent is given back")
mock.fault(SUBSCRIBE, 1, errcode=43101)
err, _ = send(appid=APPID2, scene=7)
t.eq((err or {}).get("errcode"), 43101, "WeChat says 43101")
t.eq([x["state"] for x in consents(APPID2)], ["spent"], "43101 keeps it spent")

# Concurrent sends for one consent: exactly one goes out.
r5 = link(tid="TEMPLATE_id_0005")["reserved"]
browse(reserved=r5, tid="TEMPLATE_id_0005")
calls = mock.calls(SUBSCRIBE)
cl = d.client()
ids = [cl.request("send", message(template_id="TEMPLATE_id_0005")) for _ in range(8)]
answers = [cl.wait(i) for i in ids]
cl.close()
oks = [a for a in answers if a[0] is None]
t.eq((len(oks), sorted({a[0]["code"] for a in answers if a[0]})), (1, ["no_consent"]),
     "8 sends at once: one goes out, 7 no_consent")
t.eq(mock.calls(SUBSCRIBE), calls + 1, "one call upstream")

# stats and /metrics-free reading: counts by state.
err, s = d.call("stats")
t.ok(err is None and s.get("sends_no_consent", 0) >= 9, "stats counts no_consent sends",
     (err, s and s.get("sends_no_consent")))

groups = {(g["appid"], g["template_id"], g["state"]): g["count"]
          for g in (s or {}).get("consents", [])}
t.eq((groups.get((APPID, TID, "spent")), groups.get((APPID, TID, "refused")),
      groups.get((APPID, "TEMPLATE_id_0005", "spent")), groups.get((APPID2, TID, "spent"))),
     (1, 1, 1, 1), "stats counts consents by appid, template and state")
with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
    text = r.read().decode()
t.ok('wxpushd_consents{appid="%s",template_id="%s",state="spent"} 1' % (APPID, TID) in text
     and 'wxpushd_consents{appid="%s",template_id="%s",state="refused"} 1' % (APPID, TID)
     in text and USER not in text, "/metrics counts them too, without openids",
     [x for x in text.splitlines() if "consent" in x])

# kill -9 while WeChat holds the answer: spent, not sent twice.
r6 = link(tid="TEMPLATE_id_0006")["reserved"]
browse(reserved=r6, tid="TEMPLATE_id_0006")
mock.fault(SUBSCRIBE, 1, delay_ms=4000)
calls = mock.calls(SUBSCRIBE)
cl = d.client()
cl.request("send", message(template_id="TEMPLATE_id_0006"))
t.ok(wait_for(lambda: mock.stats().get("delayed") == 1, timeout=10),
     "the send waits for WeChat")


def stored_state(tid):
    """The consent's state on disk, as the write-behind left it."""
    db = sqlite3.connect(os.path.join(d.state, "wxpushd.db"))
    try:
        return [r[0] for r in db.execute("SELECT state FROM consents WHERE template_id = ?",
                                         (tid,))]
    finally:
        db.close()


# Killed once the write-behind is on disk (tests/unit/wxpushd/test_consent_crash
# kills on both sides of it).
t.ok(wait_for(lambda: stored_state("TEMPLATE_id_0006") == ["spent"], timeout=10),
     "the write-behind has written the spend")
d.stop(signal.SIGKILL)
cl.close()
wait_for(lambda: mock.stats().get("delayed") == 0, timeout=10)
d.start()
state = [x["state"] for x in consents(template_id="TEMPLATE_id_0006")]
t.eq(state, ["spent"], "after kill -9 the consent is spent")
err, _ = send(template_id="TEMPLATE_id_0006")
t.eq((err or {}).get("code"), "no_consent", "and a new send is no_consent")
t.eq(mock.calls(SUBSCRIBE), calls + 1, "WeChat got the message once")

# A peer not on the appid's allow list (nobody; no list: only root and the
# daemon's user) may not sign, record, read or forget, and sees no counts.
AS_NOBODY = r'''
import json, sys
from wxtest import Client
c = Client(sys.argv[1])
print(json.dumps([c.call(m, p) for m, p in json.loads(sys.argv[2])]))
'''
if os.getuid() == 0:
    import json
    import subprocess
    import sys
    import wxtest
    py = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"
    ops = [["consents", {"appid": APPID}],
           ["consent_url", {"appid": APPID, "template_id": TID, "scene": 1}],
           ["consent_record", {"appid": APPID, "openid": USER, "template_id": TID,
                               "action": "confirm", "scene": 1000, "reserved": r2}],
           ["consent_forget", {"appid": APPID, "openid": USER}],
           ["stats", {}]]
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        py, "-c", AS_NOBODY, d.sock, json.dumps(ops)],
                       env=dict(os.environ, PYTHONPATH=wxtest.everyone_pythonpath(),
                                PYTHONDONTWRITEBYTECODE="1"),
                       capture_output=True, text=True, timeout=60)
    try:
        out = json.loads(r.stdout)
    except ValueError:
        out = None
    t.ok(out is not None and [(e or {}).get("code") for e, _ in out[:4]] == ["forbidden"] * 4,
         "nobody gets forbidden for consents, consent_url, consent_record, consent_forget",
         r.stdout + r.stderr)
    t.ok(out is not None and out[4][1].get("consents") == [],
         "and no consent counts in stats", out and out[4])
    t.ok(len(consents(openid=USER)) >= 3, "nothing was forgotten")
else:
    t.ok(True, "# SKIP needs root to run a client as nobody")

# The command line: a signed link, the ledger, forgetting.
r = d.wxpush("consent-url", "--signed", "--appid", APPID, "--template-id", "TEMPLATE_id_0007",
             "--scene", "70", "--reference", "cli-1", "--expires-in", "600")
cu = urllib.parse.urlsplit(r.stdout.strip())
r7 = dict(urllib.parse.parse_qsl(cu.query)).get("reserved", "")
t.ok(r.returncode == 0 and r7 != "", "wxpush consent-url --signed prints a signed link",
     r.stdout + r.stderr)
st, _ = browse(reserved=r7, tid="TEMPLATE_id_0007", scene=70)
t.eq(st, 200, "and its redirect is accepted")
r = d.wxpush("consents", "--appid", APPID, "--template-id", "TEMPLATE_id_0007")
t.ok(r.returncode == 0 and r.stdout.startswith("%s TEMPLATE_id_0007 70 granted " % USER)
     and len(r.stdout.splitlines()) == 1, "wxpush consents lists it", r.stdout + r.stderr)
r = d.wxpush("consent-url", "--signed", "--reserved", "abc", "--appid", APPID,
             "--template-id", TID, "--scene", "1")
t.eq(r.returncode, 2, "--signed with --reserved is a usage error")

# consent_forget: everything about the user, also after a restart.
r = d.wxpush("consent-forget", "--appid", APPID, "--openid", USER)
t.ok(r.returncode == 0 and r.stdout == "deleted 5\n",
     "wxpush consent-forget deletes the user's consents", r.stdout + r.stderr)
t.eq(consents(openid=USER), [], "none left")
d.stop()
d.start()
t.eq(consents(openid=USER), [], "none after a restart")

# consent_landing_url, set by a reload: the browser is sent on with the outcome.
d.extra += 'consent_landing_url = "https://shop.example/subscribed?from=wx"\n'
d.write_conf()
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: "configuration reloaded" in d.logtext(), timeout=10), "reloaded")
r8 = link(tid="TEMPLATE_id_0008")["reserved"]


def browse_raw(query):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/consent/%s?%s" % (APPID, urllib.parse.urlencode(query)))
    resp = c.getresponse()
    out = (resp.status, resp.getheader("Location"))
    c.close()
    return out


q8 = {"openid": USER, "template_id": "TEMPLATE_id_0008", "action": "confirm",
      "scene": 1000, "reserved": r8}
t.eq(browse_raw(q8), (303, "https://shop.example/subscribed?from=wx&result=confirmed"),
     "a confirm is sent to the landing URL with result=confirmed")
t.eq(browse_raw(dict(q8, action="cancel")),
     (303, "https://shop.example/subscribed?from=wx&result=confirmed"),
     "a cancel of a confirmed link: WeChat holds the consent, result=confirmed")
t.eq([x["state"] for x in consents(template_id="TEMPLATE_id_0008")], ["granted"],
     "the consent stands")
r9 = link(tid="TEMPLATE_id_0009")["reserved"]
q9 = dict(q8, template_id="TEMPLATE_id_0009", reserved=r9)
t.eq(browse_raw(dict(q9, action="cancel")),
     (303, "https://shop.example/subscribed?from=wx&result=cancelled"),
     "a cancel: result=cancelled")
t.eq(browse_raw(q9), (303, "https://shop.example/subscribed?from=wx&result=confirmed"),
     "then a confirm of the same link: result=confirmed")
t.eq([x["state"] for x in consents(template_id="TEMPLATE_id_0009")], ["granted"],
     "one consent, granted")
t.eq(browse_raw(dict(q8, scene=1001)),
     (303, "https://shop.example/subscribed?from=wx&result=invalid"),
     "a tampered one: result=invalid")
d.stop()

# A platform's consent = required holds for its authorizers.
AUTH = "wxauthorizer00cons"
mc = Mock(components=COMPONENTS)
dc = Daemon(mock=mc, components=COMPONENTS, callback=True, start=False)
mc.config(event_url=dc.callback_url)
dc.extra = 'consent_key_file = "%s"\n' % keyfile
conf = dc.default_conf()
key_line = '    aes_key = "%s"\n' % COMPONENT_KEY
t.ok(key_line in conf, "the platform block is where the test expects it")
dc.write_conf(conf.replace(key_line, key_line + '    consent = "required"\n'))
dc.start()
t.ok(wait_for(lambda: any(c["appid"] == COMPONENT and c["state"] == "valid"
                          for c in dc.status()["credentials"]), 15),
     "the platform has its token")
err, _ = dc.call("authorize", {"component_appid": COMPONENT,
                               "authorization_code": mc.component_code(AUTH)})
t.ok(err is None, "a merchant authorizes the platform", err)
err, _ = dc.call("send", message(appid=AUTH))
t.eq((err or {}).get("code"), "no_consent", "an authorizer's send without a consent: no_consent")
t.eq(mc.calls(SUBSCRIBE), 0, "nothing upstream")
err, res = dc.call("consent_url", {"appid": AUTH, "template_id": TID, "scene": 1000,
                                   "redirect_url": "https://shop.example/c"})
ra = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(res["url"]).query))["reserved"]
err, res = dc.call("consent_record", {"appid": AUTH, "openid": USER, "template_id": TID,
                                      "action": "confirm", "scene": 1000, "reserved": ra})
t.eq(res, {"state": "granted", "new": True}, "its consent is recorded")
err, res = dc.call("send", message(appid=AUTH))
t.ok(err is None and mc.calls(SUBSCRIBE) == 1, "then its send goes out", err)
err, _ = dc.call("send", message(appid=AUTH))
t.eq((err or {}).get("code"), "no_consent", "once")

# Without consent = required (this daemon's account): sends go out, and spend.
err, _ = dc.call("send", message())
t.ok(err is None and mc.calls(SUBSCRIBE) == 2, "recorded mode: a send without a consent goes out",
     err)
err, res = dc.call("consent_url", {"appid": APPID, "template_id": TID, "scene": 1000,
                                   "redirect_url": "https://shop.example/c"})
rb = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(res["url"]).query))["reserved"]
dc.call("consent_record", {"appid": APPID, "openid": USER, "template_id": TID,
                           "action": "confirm", "scene": 1000, "reserved": rb})
err, _ = dc.call("send", message())
err2, res = dc.call("consents", {"appid": APPID})
t.ok(err is None and [x["state"] for x in res["consents"]] == ["spent"],
     "and a matching consent is marked spent", (err, res))
dc.stop()
t.done()
