"""The Prometheus endpoint (metrics_listen) and the stats method: counters by
appid, outcome and errcode after real sends and injected failures, a strictly
parsed exposition, the same figures over RPC, a rebind on SIGHUP, and never a
token or a secret."""

import json
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

from wxtest import (APPID, COMPONENT, COMPONENTS, SECRET, SUBSCRIBE, Daemon, Mock, Tap,
                    message, wait_for)

APPID2 = "wx00000000000000b2"
SECRET2 = "another-appsecret-for-b2-0000000"

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE_RE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)?\})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|[+-]Inf|NaN)$"
                       % (NAME, LABEL, LABEL))
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
HELP_RE = re.compile(r"^# HELP (%s) (.*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse(text):
    """A strict parser of the text exposition format (0.0.4): returns
    {(name, frozenset(labels.items())): value} or raises ValueError."""
    if not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    types, helps, samples = {}, set(), {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        m = HELP_RE.match(line)
        if m:
            if m.group(1) in helps:
                raise ValueError("line %d: second HELP for %s" % (n, m.group(1)))
            helps.add(m.group(1))
            continue
        m = TYPE_RE.match(line)
        if m:
            if m.group(1) in types:
                raise ValueError("line %d: second TYPE for %s" % (n, m.group(1)))
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            raise ValueError("line %d does not parse: %r" % (n, line))
        name, labels, value = m.group(1), m.group(2), m.group(3)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        if family not in types or family not in helps:
            raise ValueError("line %d: %s has no TYPE and HELP before it" % (n, name))
        lab = {}
        for k, v in LABEL_RE.findall(labels or ""):
            if k in lab:
                raise ValueError("line %d: label %s twice" % (n, k))
            lab[k] = unescape(v)
        key = (name, frozenset(lab.items()))
        if key in samples:
            raise ValueError("line %d: duplicate series %r" % (n, line))
        samples[key] = float(value)
    return samples, types


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def scrape(port, path="/metrics", method="GET", token=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


t = Tap(timeout=120)
mock = Mock(accounts={APPID: SECRET, APPID2: SECRET2})
port = free_port()
d = Daemon(mock=mock, accounts={APPID: SECRET, APPID2: "wrong-secret-000000000000000000"},
           extra='metrics_listen = "127.0.0.1:%d"\nmax_inflight = 4' % port)

# Sends with every kind of ending: ok, WeChat refusals known and unknown,
# invalid, unknown appid, forbidden-free appid with a failing token.
for _ in range(3):
    err, res = d.call("send", message())
    t.ok(err is None, "a send succeeds", err)
for code in (43101, 45009, 12345):
    mock.fault(SUBSCRIBE, 1, errcode=code, errmsg="refused rid: 1")
    err, res = d.call("send", message())
    t.ok(err is not None and err.get("errcode") == code, "errcode %d is answered" % code, err)
err, res = d.call("send", message(title="x" * 40))
t.ok(err is not None and err["code"] == "invalid_request", "an invalid send", err)
err, res = d.call("send", message(appid="wxnotconfigured000"))
t.ok(err is not None and err["code"] == "unknown_appid", "an unknown appid", err)
t.ok(wait_for(lambda: d.cred(APPID2)["failures"] >= 1, 5), "the refresh of the second "
     "appid failed")
err, res = d.call("send", message(appid=APPID2))
t.ok(err is not None and err["code"] == "unavailable", "a send with a wrong secret", err)

status, ctype, text = scrape(port)
t.eq(status, 200, "GET /metrics answers 200")
t.ok(ctype is not None and ctype.startswith("text/plain") and "version=0.0.4" in ctype,
     "with the exposition content type", ctype)
try:
    samples, types = parse(text)
    t.ok(True, "the exposition parses strictly (%d samples)" % len(samples))
except ValueError as e:
    samples, types = {}, {}
    t.ok(False, "the exposition parses strictly", "%s\n%s" % (e, text))

S = "wxpushd_sends_total"
t.eq(get(samples, S, appid=APPID, outcome="ok", errcode="0"), 3.0, "3 ok sends for the appid")
t.eq(get(samples, S, appid=APPID, outcome="wechat", errcode="43101"), 1.0, "one 43101")
t.eq(get(samples, S, appid=APPID, outcome="wechat", errcode="45009"), 1.0, "one 45009")
t.eq(get(samples, S, appid=APPID, outcome="wechat", errcode="other"), 1.0,
     "an unknown errcode counts as other")
t.eq(get(samples, S, appid="", outcome="invalid_request", errcode="none"), 1.0,
     "the invalid send counts without an appid")
t.eq(get(samples, S, appid="", outcome="unknown_appid", errcode="none"), 1.0,
     "the unknown appid is not a label")
t.eq(get(samples, S, appid=APPID2, outcome="unavailable", errcode="none"), 1.0,
     "the unavailable send counts for the second appid")
t.ok(not any(n == S and ("appid", "wxnotconfigured000") in l for n, l in samples),
     "an appid a client made up creates no series")
t.eq(types.get(S), "counter", "sends_total is a counter")

H = "wxpushd_send_duration_seconds"
t.eq(types.get(H), "histogram", "send_duration_seconds is a histogram")
les = sorted((float(dict(l)["le"]), v) for (n, l), v in samples.items() if n == H + "_bucket")
t.ok(len(les) >= 10 and les[-1][0] == float("inf"), "with fixed buckets up to +Inf", les)
t.ok(all(les[i][1] <= les[i + 1][1] for i in range(len(les) - 1)), "cumulative buckets")
count = get(samples, H + "_count")
t.eq(les[-1][1], count, "+Inf equals _count")
t.eq(count, 6.0, "every accepted send was observed (3 ok, 3 refused by WeChat)")
t.ok(0 < get(samples, H + "_sum") < 30, "the sum is plausible", get(samples, H + "_sum"))

t.eq(get(samples, "wxpushd_token_calls_today", appid=APPID), 1.0, "one token call today")
t.ok(get(samples, "wxpushd_token_expires_in_seconds", appid=APPID) > 7000,
     "the token expires in about two hours")
t.eq(get(samples, "wxpushd_token_expires_in_seconds", appid=APPID2), 0.0,
     "no token for the second appid")
t.ok(get(samples, "wxpushd_token_refresh_failures", appid=APPID2) >= 1,
     "its refresh failures are counted")
t.eq(get(samples, "wxpushd_token_last_errcode", appid=APPID2), 40125.0,
     "with WeChat's errcode (40125)")
t.eq(get(samples, "wxpushd_credential_state", appid=APPID, kind="official", state="valid"),
     1.0, "the first credential is valid")
t.eq(get(samples, "wxpushd_credential_state", appid=APPID2, kind="official", state="failed"),
     1.0, "the second is failed")
t.eq(get(samples, "wxpushd_queue_depth", appid=APPID), 0.0, "nothing queued now")
t.eq(get(samples, "wxpushd_upstream_inflight"), 0.0, "nothing upstream now")
t.ok(get(samples, "wxpushd_clients") is not None, "connected clients")
err, ping = d.call("ping")
t.eq(get(samples, "wxpushd_build_info", version=ping["version"], protocol="1"), 1.0,
     "build info carries the version")
t.ok(get(samples, "wxpushd_rpc_requests_total") >= 10, "RPC requests are counted")

# The stats method gives the same figures.
err, st = d.call("stats")
t.ok(err is None, "stats answers", err)
for k in ("uptime", "clients", "credentials", "token_calls_today", "refresh_failures",
          "queued", "upstream_inflight", "requests", "sends_ok", "sends_wechat"):
    t.ok(isinstance(st.get(k), int), "stats keeps %s" % k, st)
a = st["appids"].get(APPID, {})
t.eq(a.get("sends_ok"), 3, "stats: 3 ok sends for the appid")
t.eq(a.get("sends_wechat_43101"), 1, "stats: one 43101 for the appid")
t.eq(a.get("sends_wechat_other"), 1, "stats: one other errcode for the appid")
t.eq(a.get("token_calls_today"), 1, "stats: one token call")
t.eq(st["appids"].get(APPID2, {}).get("refresh_failures"),
     int(get(samples, "wxpushd_token_refresh_failures", appid=APPID2)),
     "stats: the second appid's failures")
t.eq(st.get("sends_wechat_45009"), 1, "stats: 45009 in all")
t.eq(st.get("sends_no_appid"), 2, "stats: two sends without an appid")
t.eq(st.get("send_duration_count"), int(count), "stats: the histogram count")
t.eq(st.get("send_duration_le_60"), int(count), "stats: the last bucket")
t.ok(all(isinstance(v, int) for k, v in st.items() if k not in ("appids", "calls", "consents")),
     "stats: every counter is an integer")

# In flight: slow answers show up as in-flight sends and upstream requests.
mock.fault(SUBSCRIBE, 3, delay_ms=1500)
c = d.client()
ids = [c.request("send", message()) for _ in range(3)]
time.sleep(0.5)
_, _, text2 = scrape(port)
s2, _ = parse(text2)
t.eq(get(s2, "wxpushd_sends_inflight", appid=APPID), 3.0, "3 sends in flight")
t.ok(get(s2, "wxpushd_upstream_inflight") >= 3, "3 upstream requests in flight")
t.ok(get(s2, "wxpushd_clients") >= 1, "a connected client")
res = [c.wait(i) for i in ids]
c.close()
t.ok(all(e is None for e, r in res), "the slow sends succeed")

# Queue depth: max_inflight is 4; 8 slow sends leave 4 waiting.
mock.fault(SUBSCRIBE, 8, delay_ms=1500)
c = d.client()
ids = [c.request("send", message()) for _ in range(8)]
time.sleep(0.5)
_, _, text3 = scrape(port)
s3, _ = parse(text3)
t.eq(get(s3, "wxpushd_queue_depth", appid=APPID), 4.0, "4 sends queued")
res = [c.wait(i) for i in ids]
c.close()

# Queue age: the longest-waiting send, in whole seconds; 0 with an empty queue.
t.eq(get(s3, "wxpushd_queue_oldest_seconds", appid=APPID2), 0.0,
     "queue_oldest_seconds is 0 for an empty queue")
mock.fault(SUBSCRIBE, 8, delay_ms=3000)
c = d.client()
ids = [c.request("send", message()) for _ in range(8)]
time.sleep(1.6)
_, _, text4 = scrape(port)
s4, _ = parse(text4)
t.eq(get(s4, "wxpushd_queue_depth", appid=APPID), 4.0, "4 sends queued behind slow ones")
t.ok(1.0 <= get(s4, "wxpushd_queue_oldest_seconds", appid=APPID) <= 3.0,
     "queue_oldest_seconds says how long they have waited",
     get(s4, "wxpushd_queue_oldest_seconds", appid=APPID))
res = [c.wait(i) for i in ids]
c.close()

# The breaker: a token refused right after a refusal-driven refresh opens it
# (the first send is refused, refreshes, is refused again; the second opens it).
# The credential still looks valid: only this gauge tells.
t.eq(get(s4, "wxpushd_token_breaker_open", appid=APPID), 0.0, "the breaker is closed")
mock.fault(SUBSCRIBE, 3, errcode=40001)
for _ in range(2):
    err, _ = d.call("send", message())
    t.ok(err is not None and err.get("errcode") == 40001, "a send refused with 40001", err)
_, _, text5 = scrape(port)
s5, _ = parse(text5)
t.eq(get(s5, "wxpushd_token_breaker_open", appid=APPID), 1.0,
     "then the breaker is open (wxpushd_token_breaker_open 1)")
t.eq(get(s5, "wxpushd_token_breaker_open", appid=APPID2), 0.0, "for that appid only")

# Never a token or a secret.
token = json.loads(urllib.request.urlopen(urllib.request.Request(
    mock.base + "/cgi-bin/stable_token", data=json.dumps(
        {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}).encode(),
    method="POST")).read())["access_token"]
_, _, text = scrape(port)
for what, v in (("the token", token), ("the secret", SECRET), ("the wrong secret",
                "wrong-secret-000000000000000000")):
    t.ok(v not in text, "/metrics holds not %s" % what)
    t.ok(v not in json.dumps(st), "stats holds not %s" % what)

# Only /metrics, only GET and HEAD.
try:
    scrape(port, "/other")
    t.ok(False, "another path is 404")
except urllib.error.HTTPError as e:
    t.eq(e.code, 404, "another path is 404")
try:
    urllib.request.urlopen(urllib.request.Request("http://127.0.0.1:%d/metrics" % port,
                                                  data=b"x", method="POST"), timeout=10)
    t.ok(False, "POST is refused")
except urllib.error.HTTPError as e:
    t.ok(e.code in (405, 413), "POST is refused (%d)" % e.code)
status, _, body = scrape(port, method="HEAD")
t.eq((status, body), (200, ""), "HEAD answers without a body")

# A scrape that never finishes does not block the daemon.
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
err, res = d.call("ping")
t.ok(err is None, "the daemon answers while a scrape hangs")
slow.close()

# SIGHUP with another metrics_listen moves the endpoint; the counters stay.
_, _, text = scrape(port)
before, _ = parse(text)
oks_before = get(before, S, appid=APPID, outcome="ok", errcode="0")
port2 = free_port()
d.extra = 'metrics_listen = "127.0.0.1:%d"\nmax_inflight = 4' % port2
d.write_conf()
d.sig(signal.SIGHUP)


def moved():
    try:
        return scrape(port2)[0] == 200
    except OSError:
        return False


t.ok(wait_for(moved, 5), "after SIGHUP /metrics answers on the new port")
try:
    scrape(port)
    t.ok(False, "the old port is closed")
except OSError:
    t.ok(True, "the old port is closed")
err, res = d.call("send", message())
t.ok(err is None, "sends go on after the move", err)
_, _, text = scrape(port2)
s4, _ = parse(text)
t.eq(get(s4, S, appid=APPID, outcome="ok", errcode="0"), oks_before + 1,
     "the counters survive the reload (one more ok send than before it)")

# Without metrics_listen after a reload, nothing listens.
d.extra = "max_inflight = 4"
d.write_conf()
d.sig(signal.SIGHUP)


def closed():
    try:
        scrape(port2)
        return False
    except OSError:
        return True


t.ok(wait_for(closed, 5), "removing metrics_listen closes the endpoint")
t.eq(d.stop(), 0, "the daemon stops cleanly")
t.ok(SECRET not in d.logtext() and token not in d.logtext(), "no token or secret in the log")

# A third-party platform: its verify ticket's age, and an authorizer's sends.
AUTH = "wxauthorizer000042"
mock3 = Mock(components=COMPONENTS)
port3 = free_port()
d3 = Daemon(mock=mock3, accounts={}, components=COMPONENTS, callback=True, start=False,
            extra='metrics_listen = "127.0.0.1:%d"' % port3)
mock3.config(event_url=d3.callback_url)
d3.start()
t.ok(wait_for(lambda: any(c["appid"] == COMPONENT and c["state"] == "valid"
                          for c in d3.status()["credentials"]), 10),
     "the platform gets a ticket and a token")
r = mock3.component_event("authorized", AUTH)
t.ok(wait_for(lambda: any(c["appid"] == AUTH and c["state"] == "valid"
                          for c in d3.status()["credentials"]), 10),
     "a merchant authorizes it", r)
err, res = d3.call("send", message(appid=AUTH))
t.ok(err is None, "a send as the authorizer", err)
s5, _ = parse(scrape(port3)[2])
age = get(s5, "wxpushd_verify_ticket_age_seconds", appid=COMPONENT)
t.ok(age is not None and 0 <= age < 60, "the verify ticket's age is exposed", age)
t.eq(get(s5, S, appid=AUTH, outcome="ok", errcode="0"), 1.0, "the authorizer's send counts")
t.eq(get(s5, "wxpushd_credential_state", appid=AUTH, kind="authorizer", state="valid"), 1.0,
     "the authorizer's state")
t.ok(not any(n == S and ("appid", COMPONENT) in l for n, l in s5),
     "a platform's own appid has no send series")
err, st = d3.call("stats")
t.ok(0 <= st["appids"].get(COMPONENT, {}).get("verify_ticket_age", -1) < 60,
     "stats: the verify ticket's age", st["appids"].get(COMPONENT))
t.eq(st["appids"].get(AUTH, {}).get("sends_ok"), 1, "stats: the authorizer's send")
t.eq(d3.stop(), 0, "the platform's daemon stops cleanly")

# metrics_token_file: a bearer token; metrics_authorizers = aggregate: the
# merchants' appids are not listed, only counted per platform (issue 13 item 8).
import os
import subprocess
from wxtest import WXPUSHD
TOKEN = "scrape-token-0123456789abcdef"
mock4 = Mock(components=COMPONENTS)
port4 = free_port()
d4 = Daemon(mock=mock4, accounts={}, components=COMPONENTS, callback=True, start=False,
            extra='metrics_listen = "127.0.0.1:%d"\nmetrics_authorizers = aggregate\n'
                  'metrics_token_file = "metrics.token"' % port4)
tf = os.path.join(d4.dir, "metrics.token")
with open(tf, "w") as f:
    f.write(TOKEN + "\n")
os.chmod(tf, 0o644)
r = subprocess.run([WXPUSHD, "-n", "-f", d4.conf], capture_output=True, text=True)
t.ok(r.returncode == 1 and tf in r.stderr and "chmod 600" in r.stderr,
     "a metrics_token_file others can read is refused", r.stderr)
os.chmod(tf, 0o600)
mock4.config(event_url=d4.callback_url)
d4.start()
t.ok(wait_for(lambda: any(c["appid"] == COMPONENT and c["state"] == "valid"
                          for c in d4.status()["credentials"]), 10),
     "the platform gets a ticket and a token")
mock4.component_event("authorized", AUTH)
t.ok(wait_for(lambda: any(c["appid"] == AUTH and c["state"] == "valid"
                          for c in d4.status()["credentials"]), 10), "a merchant authorizes it")
err, res = d4.call("send", message(appid=AUTH))
t.ok(err is None, "a send as the authorizer", err)


def status_of(**kw):
    try:
        st, _, body = scrape(port4, **kw)
        return st, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WWW-Authenticate")


t.eq(status_of(), (401, 'Bearer realm="wxpushd"'), "no token: 401 with WWW-Authenticate")
t.eq(status_of(token="wrong")[0], 401, "a wrong token: 401")
t.eq(status_of(token=TOKEN[:-1])[0], 401, "the token's prefix: 401")
t.eq(status_of(token=TOKEN + "x")[0], 401, "the token and more: 401")
st, _, body = scrape(port4, token=TOKEN)
t.eq(st, 200, "the right token: 200")
s6, _ = parse(body)
t.ok(not any(("appid", AUTH) in l for n, l in s6), "aggregate: the authorizer's appid is "
     "in no series")
t.eq(get(s6, "wxpushd_authorizers", component=COMPONENT, state="valid"), 1.0,
     "aggregate: one valid authorizer counted under its platform")
t.eq(get(s6, "wxpushd_authorizer_sends_total", component=COMPONENT, outcome="ok",
         errcode="0"), 1.0, "aggregate: its send counted under its platform")
t.ok(get(s6, "wxpushd_credential_state", appid=COMPONENT, kind="component",
         state="valid") == 1.0, "the platform's own series stay")
t.ok(TOKEN not in d4.logtext(), "the scrape token is not in the log")
t.ok("without the right bearer token" in d4.logtext(), "refused scrapes are logged")
t.eq(d4.stop(), 0, "the daemon stops cleanly")
t.done()
