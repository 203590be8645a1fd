"""The call method against wxpush-mock: allowed paths only (apis), never a
path that returns credentials (refused at config load and per request), never
a credential in an answer (stripped), query and body passed as given, size
limits both ways, compare-and-refresh and -1 retries as for sends, counters by
apis entry in stats and /metrics, and `wxpush call`."""

import json
import os
import signal
import subprocess
import urllib.request

from wxtest import (APPID, COMPONENT, COMPONENT_KEY, COMPONENTS, WXPUSHD, Daemon,
                    Mock, Tap, free_port, wait_for)

t = Tap(timeout=200)
mock = Mock()
port = free_port()
APIS = 'apis = { "/cgi-bin/mock/*", "/cgi-bin/get_api_domain_ip" }'
d = Daemon(mock=mock, account_extra=APIS,
           extra='metrics_listen = "127.0.0.1:%d"\ncall_max_body = 1024\n'
                 'call_max_answer = 4096' % port)
DOMAIN = "/cgi-bin/get_api_domain_ip"
ECHO = "/cgi-bin/mock/echo"


def call(**kw):
    p = {"appid": APPID}
    p.update(kw)
    return d.call("call", p)


# A fixed answer, with the token the daemon adds.
err, res = call(path=DOMAIN)
t.ok(err is None and res == {"ip_list": ["101.226.103.0/25", "101.226.233.128/25",
                                         "58.247.206.128/25"]},
     "call answers WeChat's JSON as a map", err or res)
t.eq(mock.token_calls(), 1, "with the appid's token, fetched once")

# Query and body go as given; the caller never names the token.
body = {"text": "中文 & more", "n": 7, "f": 1.5, "ok": True, "none": None,
        "nested": {"list": [1, "two", {"three": 3}]}}
err, res = call(path=ECHO, method="POST", query={"foo": "bar baz&=", "x": "中"},
                body=body)
t.ok(err is None and res["errcode"] == 0 and res["appid"] == APPID,
     "POST with a map body succeeds", err or res)
t.eq(res and res["body"], body, "the body arrived as JSON, unchanged")
t.eq(res and res["query"], {"foo": "bar baz&=", "x": "中"},
     "the query arrived percent-encoded and decoded back, without our token")
err, res = call(path=ECHO, body='{"raw":"\\u4e2d","list":[1,2]}')
t.ok(err is None and res["body"] == {"raw": "中", "list": [1, 2]},
     "a raw JSON string body is sent as it is (method POST by default)", err or res)
err, res = call(path=ECHO)
t.ok(err is not None and err["code"] == "wechat" and err.get("errcode") == 43002 and
     err["retryable"] is False,
     "a POST-only path called with GET: WeChat's 43002, final", err)

# Credentials in an answer never reach the caller.
err, res = call(path="/cgi-bin/mock/leak")
flat = json.dumps(res, ensure_ascii=False)
t.ok(err is None and "LEAK" not in flat, "no credential field survives in the answer",
     err or flat)
t.ok(res is not None and res.get("expires_in") == 7200 and
     res.get("data", {}).get("keep") == "yes" and
     res.get("data", {}).get("list") == [{"id": 1}],
     "the rest of the answer is kept", flat)

# Refusals: unlisted and credential paths, bad syntax, reserved query names.
before = mock.stats()["calls"]
for path in ["/cgi-bin/user/info", "/wxa/getwxacode"]:
    err, res = call(path=path)
    t.ok(err is not None and err["code"] == "forbidden" and err.get("field") == "path",
         "an unlisted path is forbidden: %s" % path, err)
for path in ["/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/ticket/getticket",
             "/cgi-bin/component/api_authorizer_token", "/sns/oauth2/access_token",
             "/sns/jscode2session"]:
    err, res = call(path=path)
    t.ok(err is not None and err["code"] == "forbidden" and err.get("field") == "path" and
         "credentials" in err["message"],
         "a credential path is forbidden: %s" % path, err)
for path in ["https://api.weixin.qq.com/cgi-bin/mock/echo", "cgi-bin/mock/echo",
             "/cgi-bin/mock/../token", "/cgi-bin/mock/echo?access_token=x",
             "/cgi-bin/mock/中文", "/cgi-bin//mock/echo", "/cgi-bin/mock/echo#x",
             "/" + "a" * 300, ""]:
    err, res = call(path=path)
    t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "path",
         "a bad path is invalid: %r" % path[:40], err)
for q in [{"access_token": "x"}, {"component_access_token": "x"}, {"a b": "x"},
          {"k": 1}, {"k": "\n"}, "k=v"]:
    err, res = call(path=ECHO, query=q, body={})
    t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "query",
         "a bad query is invalid: %r" % (q,), err)
for kw, field in [(dict(method="PUT"), "method"), (dict(method="GET", body={}), "body"),
                  (dict(body="[1,2"), "body"), (dict(body='"str"'), "body"),
                  (dict(body=5), "body"), (dict(bogus=1), "params"),
                  (dict(body="[" * 20 + "]" * 20), "body")]:
    err, res = call(path=ECHO, **kw)
    t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == field,
         "invalid %s is refused: %r" % (field, kw), err)
err, res = d.call("call", {"appid": "wxunknown000000000", "path": DOMAIN})
t.ok(err is not None and err["code"] == "unknown_appid", "an unknown appid", err)
t.eq(mock.stats()["calls"], before, "nothing went upstream for any refusal")

# Size limits: the request body and the answer.
err, res = call(path=ECHO, body={"s": "x" * 1100})
t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "body" and
     "call_max_body" in err["message"], "a body over call_max_body is refused", err)
err, res = call(path=ECHO, body='{"s":"%s"}' % ("x" * 1100))
t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "body",
     "a raw body over call_max_body is refused", err)
err, res = call(path="/cgi-bin/mock/big", query={"n": "3000"})
t.ok(err is None and len(res["data"]) == 3000, "an answer under call_max_answer", err)
err, res = call(path="/cgi-bin/mock/big", query={"n": "5000"})
t.ok(err is not None and err["code"] == "too_large" and err["retryable"] is False,
     "an answer over call_max_answer is refused", err)

# Compare-and-refresh: a refused token is refreshed once and the call retried.
tc = mock.token_calls()
mock.invalidate(APPID)
err, res = call(path=DOMAIN)
t.ok(err is None and "ip_list" in res, "a call after the token was invalidated succeeds", err)
t.eq(mock.token_calls(), tc + 1, "after exactly one token refresh")

# -1 is retried with backoff; past the retries it is WeChat's retryable error.
n = mock.calls(DOMAIN)
mock.fault(DOMAIN, 2, errcode=-1)
err, res = call(path=DOMAIN)
t.ok(err is None and "ip_list" in res, "a call succeeds after two -1 answers", err)
t.eq(mock.calls(DOMAIN), n + 3, "in three attempts")
mock.fault(DOMAIN, 10, errcode=-1)
err, res = call(path=DOMAIN)
t.ok(err is not None and err["code"] == "wechat" and err.get("errcode") == -1 and
     err["retryable"] is True, "a call that stays -1 fails retryable", err)
mock.reset()
mock.fault(DOMAIN, 1, errcode=45011)
err, res = call(path=DOMAIN)
t.ok(err is not None and err["code"] == "wechat" and err.get("retry_after", 0) > 0,
     "45011 carries retry_after", err)

# Counters by apis entry, never by the path a caller sent.
err, st = d.call("stats")
calls = st.get("calls", {}) if st else {}
t.ok(set(calls) == {"/cgi-bin/mock/*", "/cgi-bin/get_api_domain_ip"},
     "stats counts calls by apis entry", calls)
t.ok(calls.get("/cgi-bin/mock/*", {}).get("stripped") == 4 and
     calls.get("/cgi-bin/mock/*", {}).get("too_large") == 1,
     "with stripped fields and too-large answers", calls)
t.ok(calls.get(DOMAIN, {}).get("ok") == 3 and calls.get(DOMAIN, {}).get("wechat") == 2,
     "and outcomes", calls.get(DOMAIN))
with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
    metrics = r.read().decode()
t.ok('wxpushd_calls_total{path="/cgi-bin/get_api_domain_ip",outcome="ok"}' in metrics and
     'wxpushd_call_stripped_fields_total{path="/cgi-bin/mock/*"} 4' in metrics,
     "/metrics has the call counters", [l for l in metrics.splitlines() if "call" in l])
t.ok("/cgi-bin/user/info" not in metrics and "/cgi-bin/mock/leak" not in metrics,
     "and no label from a caller's path")

# wxpush call.
r = d.wxpush("call", "--appid", APPID, DOMAIN)
t.ok(r.returncode == 0 and json.loads(r.stdout).get("ip_list"),
     "wxpush call --appid A PATH prints the answer", r.stdout + r.stderr)
bodyfile = os.path.join(d.dir, "body.json")
with open(bodyfile, "w") as f:
    f.write('{"a": 1}')
r = d.wxpush("call", "--appid", APPID, "--query", '{"q":"1"}', "--body", bodyfile, ECHO)
out = json.loads(r.stdout) if r.returncode == 0 else {}
t.ok(out.get("body") == {"a": 1} and out.get("query") == {"q": "1"},
     "wxpush call with --query and --body", r.stdout + r.stderr)
r = d.wxpush("call", "--appid", APPID, "/cgi-bin/token")
t.ok(r.returncode != 0 and "credentials" in r.stderr,
     "wxpush call of a credential path fails", r.stderr)
r = d.wxpush("call", "--body", bodyfile, "ping")
t.ok(r.returncode == 2, "--body without --appid is a usage error", r.stderr)
r = d.wxpush("call", "ping")
t.ok(r.returncode == 0 and "version" in r.stdout, "the raw form of call still works",
     r.stdout + r.stderr)

# A reload changes the list at once.
d.account_extra = 'apis = { "/cgi-bin/mock/*" }'
d.write_conf()
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: (call(path=DOMAIN)[0] or {}).get("code") == "forbidden", 10, 0.2),
     "after a reload without it, a path is forbidden")
err, res = call(path=ECHO, body={})
t.ok(err is None, "and the paths still listed work", err)

# No token ever in the daemon's log.
log = d.logtext()
leaked = [x["value"] for x in mock.tokens()["tokens"] if x["value"] in log]
t.ok(not leaked and "LEAK" not in log, "no token or stripped value in the log", leaked)
t.eq(d.stop(), 0, "wxpushd stops cleanly")

# Configuration: credential paths are refused at load with file:line.
bad = [
    ('"/cgi-bin/token"', "returns credentials"),
    ('"/cgi-bin/*"', "covers a path that returns credentials"),
    ('"/cgi-bin/component/api_get_authorizer_list"', "returns credentials"),
    ('"/cgi-bin/component/*"', "covers"),
    ('"/sns/*"', "covers"),
    ('"/cgi-bin/ticket/getticket"', "returns credentials"),
    ('"/*"', "covers"),
    ('"/cgi-bin/x?y=1"', "no query"),
    ('"cgi-bin/x"', "starts with '/'"),
    ('"/cgi-bin/../token"', ".."),
    ('"/cgi-*/x"', "'*' only at its end"),
]
for value, msg in bad:
    conf = d.default_conf(account_extra="apis = { %s }" % value)
    path = os.path.join(d.dir, "bad.conf")
    with open(path, "w") as f:
        f.write(conf)
    line = conf.splitlines().index("    apis = { %s }" % value) + 1
    r = subprocess.run([WXPUSHD, "-n", "-f", path], capture_output=True, text=True,
                       timeout=30)
    t.ok(r.returncode != 0 and ("%s:%d:" % (path, line)) in r.stderr and msg in r.stderr,
         "apis = { %s } is refused at load with file:line" % value, r.stderr)
conf = d.default_conf(account_extra='apis = { "/wxa/*", "/cgi-bin/message/custom/send" }')
with open(path, "w") as f:
    f.write(conf)
r = subprocess.run([WXPUSHD, "-n", "-f", path], capture_output=True, text=True, timeout=30)
t.ok(r.returncode == 0, "narrow patterns and exact paths load", r.stderr)

mock.stop()

# Authorizers: their platform's apis list and their own token.
AUTH = "wxauthorizer00call"
mc = Mock(components=COMPONENTS)
dc = Daemon(mock=mc, components=COMPONENTS, callback=True, start=False)
mc.config(event_url=dc.callback_url)
conf = dc.default_conf()
key_line = '    aes_key = "%s"\n' % COMPONENT_KEY
t.ok(key_line in conf, "the platform block is where the test expects it")
dc.write_conf(conf.replace(key_line, key_line + '    apis = { "%s" }\n' % DOMAIN))
dc.start()
t.ok(wait_for(lambda: any(c["appid"] == COMPONENT and c["state"] == "valid"
                          for c in dc.status()["credentials"]), 15),
     "the platform has its token")
err, res = dc.call("authorize", {"component_appid": COMPONENT,
                                 "authorization_code": mc.component_code(AUTH)})
t.ok(err is None, "a merchant authorizes the platform", err)
err, res = dc.call("call", {"appid": AUTH, "path": DOMAIN})
t.ok(err is None and "ip_list" in res,
     "an authorizer calls a path of its platform's apis list", err)
err, res = dc.call("call", {"appid": AUTH, "path": ECHO, "body": {}})
t.ok(err is not None and err["code"] == "forbidden" and err.get("field") == "path",
     "and not one outside it", err)
err, res = dc.call("call", {"appid": COMPONENT, "path": DOMAIN})
t.ok(err is not None and err["code"] == "unknown_appid",
     "a platform's own appid cannot call", err)
t.eq(dc.stop(), 0, "wxpushd stops")
mc.stop()
t.done()
