"""The preauth method and wxpush preauth against wxpush-mock: a pre_auth_code
from api_create_preauthcode with the component's token, the authorization page
built around it (desktop and mobile), the caller's allow list, precise errors
for bad params, a refused component token, and no code in the log."""

import json
import os
import signal
import subprocess
import sys
import urllib.parse

import wxtest
from wxtest import (COMPONENT, COMPONENT_KEY, COMPONENTS, Daemon, Mock, Tap,
                    wait_for)

PREAUTH_EP = "/cgi-bin/component/api_create_preauthcode"
REDIRECT = "https://platform.example/wx/auth?state=a b&x=1/2"
REDIRECT_OK = "https://platform.example/wx/auth?state=ab&x=1/2&y=%E4%B8%AD"

t = Tap(timeout=120)

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PY = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"
ENV = dict(os.environ, PYTHONPATH=wxtest.everyone_pythonpath(),
           PYTHONDONTWRITEBYTECODE="1")
AS_USER = r"""
import json, sys
from wxtest import Client
c = Client(sys.argv[1])
err, res = c.call(sys.argv[2], json.loads(sys.argv[3]), timeout=20)
print(json.dumps([err, res]))
"""


def call_as(cred, sock, method, params):
    """One call as another user (copied from test_security.py's pattern)."""
    r = subprocess.run(cred + [PY, "-c", AS_USER, sock, method, json.dumps(params)],
                       env=ENV, capture_output=True, text=True, timeout=60)
    try:
        return tuple(json.loads(r.stdout))
    except ValueError:
        return {"script_error": r.stdout + r.stderr}, None


def is_code(err, code, field=None):
    return (isinstance(err, dict) and err.get("code") == code and
            (field is None or err.get("field") == field))


def state(d, appid):
    for c in d.status()["credentials"]:
        if c["appid"] == appid:
            return c["state"]
    return None


def issued_preauth():
    return [x["value"] for x in mock.tokens()["tokens"] if x["kind"] == "pre_auth_code"]


def query(url):
    """(scheme://host/path, {name: [values]}, fragment) of a URL."""
    u = urllib.parse.urlsplit(url)
    return ("%s://%s%s" % (u.scheme, u.netloc, u.path),
            urllib.parse.parse_qs(u.query, keep_blank_values=True, strict_parsing=True),
            u.fragment)


mock = Mock(components=COMPONENTS)
d = Daemon(mock=mock, components=dict(COMPONENTS), callback=True, start=False,
           extra='socket_mode = "0666"')
mock.config(event_url=d.callback_url)
d.start()
t.ok(wait_for(lambda: state(d, COMPONENT) == "valid", 10),
     "the component gets its token", d.status())

# --- Success: the code is the mock's, the page is exact. ---

calls0 = mock.calls(PREAUTH_EP)
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(err is None and set(res) == {"pre_auth_code", "expires_in", "url"},
     "preauth answers pre_auth_code, expires_in and url", (err, res))
t.eq(mock.calls(PREAUTH_EP), calls0 + 1, "one api_create_preauthcode call")
t.ok(res["pre_auth_code"] in issued_preauth(), "the code is one the mock issued",
     res["pre_auth_code"])
t.eq(res["expires_in"], 1800, "expires_in is WeChat's")
base, q, frag = query(res["url"])
t.eq(base, "https://mp.weixin.qq.com/cgi-bin/componentloginpage", "the desktop page")
t.eq(q, {"component_appid": [COMPONENT], "pre_auth_code": [res["pre_auth_code"]],
         "redirect_uri": [REDIRECT_OK]},
     "its query: component_appid, pre_auth_code, redirect_uri (round-trips)")
t.eq(frag, "", "no fragment on the desktop page")
t.ok("%2F" in res["url"] and "%3F" in res["url"] and "%25E4" in res["url"],
     "redirect_uri is percent-encoded whole", res["url"])
t.eq([k for k, _ in urllib.parse.parse_qsl(urllib.parse.urlsplit(res["url"]).query)],
     ["component_appid", "pre_auth_code", "redirect_uri"], "in WeChat's order")

err, res2 = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": "http://h",
                               "auth_type": 2, "biz_appid": "wxmerchant0000001"})
base, q, frag = query(res2["url"]) if err is None else (None, None, None)
t.ok(err is None and q == {"component_appid": [COMPONENT],
                           "pre_auth_code": [res2["pre_auth_code"]],
                           "redirect_uri": ["http://h"], "auth_type": ["2"],
                           "biz_appid": ["wxmerchant0000001"]},
     "auth_type and biz_appid are added", (err, res2))
t.ok(res2["pre_auth_code"] != res["pre_auth_code"], "each call a new code")

err, res3 = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK,
                               "mobile": True, "auth_type": 1})
base, q, frag = query(res3["url"]) if err is None else (None, None, None)
t.eq(base, "https://open.weixin.qq.com/wxaopen/safe/bindcomponent", "the mobile page")
t.eq(q, {"action": ["bindcomponent"], "no_scan": ["1"], "component_appid": [COMPONENT],
         "pre_auth_code": [res3["pre_auth_code"] if res3 else None],
         "redirect_uri": [REDIRECT_OK], "auth_type": ["1"]}, "its query")
t.eq(frag, "wechat_redirect", "and #wechat_redirect")
err, res4 = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK,
                               "mobile": False})
t.ok(err is None and res4["url"].startswith(
    "https://mp.weixin.qq.com/cgi-bin/componentloginpage?"), "mobile false: desktop", err)
t.eq(mock.calls(PREAUTH_EP), calls0 + 4, "each preauth is one WeChat call")

# --- Who may ask, and bad params. ---

calls0 = mock.calls(PREAUTH_EP)

err, res = call_as(NOBODY, d.sock, "preauth",
                   {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "forbidden", "component_appid") and res is None,
     "a caller not in the component's allow list is forbidden", err)
conf = d.default_conf()
key_line = '    aes_key = "%s"\n' % COMPONENT_KEY
d.write_conf(conf.replace(key_line, key_line + '    allow = { "user:nobody" }\n'))
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: call_as(NOBODY, d.sock, "preauth",
                              {"component_appid": COMPONENT,
                               "redirect_uri": REDIRECT_OK})[0] is None, 10),
     "once allow lists user:nobody (SIGHUP), nobody gets a code")
d.write_conf(conf)
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: is_code(call_as(NOBODY, d.sock, "preauth",
                                      {"component_appid": COMPONENT,
                                       "redirect_uri": REDIRECT_OK})[0], "forbidden"), 10),
     "and is forbidden again without it")
err, res = d.call("preauth", {"component_appid": "wxnotacomponent01",
                              "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "unknown_appid", "component_appid"), "an unknown component", err)

BAD = [
    ({"redirect_uri": REDIRECT}, "redirect_uri", "a space in redirect_uri"),
    ({"redirect_uri": "https://h/\x01"}, "redirect_uri", "a control character"),
    ({"redirect_uri": "ftp://h/"}, "redirect_uri", "not http or https"),
    ({"redirect_uri": "https:///path"}, "redirect_uri", "no host"),
    ({"redirect_uri": "https://h/" + "a" * 1015}, "redirect_uri", "1025 bytes"),
    ({"redirect_uri": ""}, "redirect_uri", "empty"),
    ({"redirect_uri": 7}, "redirect_uri", "not a string"),
    ({"redirect_uri": None}, "redirect_uri", "missing"),
    ({"auth_type": 0}, "auth_type", "auth_type 0"),
    ({"auth_type": 4}, "auth_type", "auth_type 4"),
    ({"auth_type": "1"}, "auth_type", "auth_type as a string"),
    ({"auth_type": -1}, "auth_type", "auth_type -1"),
    ({"biz_appid": "wx bad"}, "biz_appid", "a bad biz_appid"),
    ({"mobile": 1}, "mobile", "mobile not a bool"),
    ({"component_appid": "wx/x"}, "component_appid", "a bad component_appid"),
    ({"redirect_url": REDIRECT_OK}, "redirect_url", "an unknown field"),
]
for extra, field, what in BAD:
    p = {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK}
    p.update(extra)
    p = {k: v for k, v in p.items() if v is not None}
    err, res = d.call("preauth", p)
    t.ok(is_code(err, "invalid_request", field) and err["retryable"] is False,
         "%s: invalid_request, field %s" % (what, field), err)
err, res = d.call("preauth", {"component_appid": COMPONENT,
                              "redirect_uri": "https://h/" + "a" * 1014})
t.ok(err is None, "a redirect_uri of 1024 bytes is fine", err)
t.eq(mock.calls(PREAUTH_EP), calls0 + 2, "refused calls never reached WeChat")

# --- WeChat says no. ---

mock.fault(PREAUTH_EP, 1, errcode=61011)
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "wechat") and err.get("errcode") == 61011 and not err["retryable"],
     "a refusal is wechat with WeChat's errcode", err)
mock.fault(PREAUTH_EP, 1, errcode=-1)
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "wechat") and err.get("errcode") == -1 and err["retryable"],
     "-1 is retryable", err)

tok = mock.stats()["tokens_issued"]
mock.invalidate(COMPONENT)
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "unavailable") and err["retryable"],
     "40001 on the component token: unavailable, retryable", err)
t.ok(wait_for(lambda: mock.stats()["tokens_issued"] > tok and
              state(d, COMPONENT) == "valid", 10),
     "and the component token is refreshed", d.status())
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(err is None and res["pre_auth_code"] in issued_preauth(),
     "preauth works again with the new token", err)

mock.fault(PREAUTH_EP, 1, http_status=502)
err, res = d.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "unavailable") and err["retryable"], "an HTTP 502: unavailable", err)

# A platform without a token yet (its ticket never comes): unavailable.
d2 = Daemon(mock=mock, components=dict(COMPONENTS))
err, res = d2.call("preauth", {"component_appid": COMPONENT, "redirect_uri": REDIRECT_OK})
t.ok(is_code(err, "unavailable") and err["retryable"],
     "a component without a token: unavailable, retryable", err)
d2.stop()

# --- wxpush preauth. ---

p = d.wxpush("preauth", "--component-appid", COMPONENT, "--redirect-uri", REDIRECT_OK,
             "--auth-type", "3", "--biz-appid", "wxmerchant0000001", "--mobile")
url = p.stdout.strip()
ok = p.returncode == 0 and "\n" not in url
if ok:
    base, q, frag = query(url)
    ok = (base == "https://open.weixin.qq.com/wxaopen/safe/bindcomponent" and
          frag == "wechat_redirect" and q["redirect_uri"] == [REDIRECT_OK] and
          q["auth_type"] == ["3"] and q["biz_appid"] == ["wxmerchant0000001"] and
          q["pre_auth_code"][0] in issued_preauth())
t.ok(ok, "wxpush preauth prints the page", p.stdout + p.stderr)
p = d.wxpush("--json", "preauth", "--component-appid", COMPONENT,
             "--redirect-uri", REDIRECT_OK)
try:
    j = json.loads(p.stdout)
except ValueError:
    j = {}
t.ok(p.returncode == 0 and set(j) == {"pre_auth_code", "expires_in", "url"} and
     query(j["url"])[1]["pre_auth_code"] == [j["pre_auth_code"]],
     "wxpush --json preauth prints the whole result", p.stdout + p.stderr)
p = d.wxpush("preauth", "--component-appid", COMPONENT, "--redirect-uri", REDIRECT)
t.ok(p.returncode == 1 and "invalid_request" in p.stderr and "redirect_uri" in p.stderr,
     "a bad --redirect-uri: the daemon's invalid_request, exit 1", p.stderr)
p = d.wxpush("preauth", "--component-appid", COMPONENT, "--redirect-uri", REDIRECT_OK,
             "--auth-type", "x")
t.eq(p.returncode, 2, "--auth-type x is a usage error")
p = d.wxpush("preauth", "--component-appid", COMPONENT, "--redirect-uri", REDIRECT_OK,
             "--auth-type", "9")
t.ok(p.returncode == 1 and "auth_type" in p.stderr, "--auth-type 9: the daemon refuses",
     p.stderr)
p = d.wxpush("preauth", "--component-appid", COMPONENT)
t.ok(p.returncode == 2 and "--redirect-uri" in p.stderr, "--redirect-uri is required",
     p.stderr)
p = d.wxpush("preauth", "--component-appid", COMPONENT, "--redirect-uri", REDIRECT_OK,
             "--mobile", "--mobile")
t.eq(p.returncode, 2, "--mobile twice is a usage error")

# --- Never a code in the log. ---

log = d.logtext()
codes = issued_preauth()
t.ok(codes and not any(c in log for c in codes), "no pre_auth_code in the daemon's log")
t.ok("preauthcode%40%40%40" not in log and "componentloginpage" not in log,
     "nor a page that holds one")

d.stop()
t.done()
