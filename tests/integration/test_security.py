"""Access control and hostile input (docs/security.md): peers checked against
allow lists by their kernel credentials, secret files and inline secrets that
others can read, no secret or token in any log or output, the connection and
request limits, EMFILE, clients that never read, and dropping root."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import urllib.error
import urllib.request

import msgpack

import wxtest
from wxtest import (APPID, COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN,
                    COMPONENTS, SECRET, SUBSCRIBE, WXPUSHD, Client, Daemon, Mock, Tap,
                    message, wait_for)

t = Tap(timeout=170)

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
PY = sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3"
ENV = dict(os.environ, PYTHONPATH=wxtest.everyone_pythonpath(),
           PYTHONDONTWRITEBYTECODE="1")

# Run by another user: a list of operations on numbered connections, one
# JSON result per operation. ["connect"], ["call", i, method, params],
# ["closed", i] (whether the daemon closes connection i at once).
AS_USER = r"""
import json, sys
from wxtest import Client
path, ops = sys.argv[1], json.loads(sys.argv[2])
conns, out = [], []
for op in ops:
    if op[0] != "connect" and conns[op[1]] is None:
        out.append({"skipped": True})
        continue
    try:
        if op[0] == "connect":
            conns.append(Client(path))
            out.append({"ok": True})
        elif op[0] == "call":
            err, res = conns[op[1]].call(op[2], op[3], timeout=20)
            out.append({"err": err, "res": res})
        elif op[0] == "closed":
            out.append({"closed": conns[op[1]].closed(op[2])})
    except OSError as e:
        conns.append(None)
        out.append({"oserror": e.errno, "what": str(e)})
    except EOFError:
        out.append({"eof": True})
print(json.dumps(out))
"""


def as_user(cred, sock, ops):
    r = subprocess.run(cred + [PY, "-c", AS_USER, sock, json.dumps(ops)], env=ENV,
                       capture_output=True, text=True, timeout=60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        return [{"script_error": r.stdout + r.stderr}]


def call_as(cred, sock, method, params=None):
    """One call on a new connection as another user: (err, res), or the failure."""
    out = as_user(cred, sock, [["connect"], ["call", 0, method, params]])
    if "ok" not in out[0]:
        return out[0], None
    r = out[-1]
    return (r.get("err"), r.get("res")) if "err" in r else (r, None)


def write_conf(d, accounts, extra=""):
    """d's configuration with one section per (appid, secret, section lines)."""
    lines = ['socket = "%s"' % d.sock, 'state_dir = "%s"' % d.state,
             'api_base = "%s"' % d.api_base, "upstream_timeout = 2", "send_timeout = 6",
             extra]
    for appid, secret, body in accounts:
        sf = os.path.join(d.dir, appid + ".secret")
        with open(sf, "w") as f:
            f.write(secret + "\n")
        os.chmod(sf, 0o600)
        lines.append('account "%s" {\n    secret_file = "%s"\n    %s\n}' % (appid, sf, body))
    d.write_conf("\n".join(lines) + "\n")


def is_code(err, code):
    return isinstance(err, dict) and err.get("code") == code


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])       # utime + stime


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"][0])


# --- Peers and allow lists -------------------------------------------------

A_USER, A_UID, A_NONE = "wxallowuser0000001", "wxallowuid00000002", "wxnoallowlist00003"
A_EMPTY, A_GROUP, A_SUPP = "wxemptyallow000004", "wxallowgroup000005", "wxallowsupp0000006"
SECRETS = {a: "secret-of-%s-0123456789" % a for a in
           (A_USER, A_UID, A_NONE, A_EMPTY, A_GROUP, A_SUPP)}
mock = Mock(accounts=dict(SECRETS))
d = Daemon(mock=mock, start=False)
write_conf(d, [
    (A_USER, SECRETS[A_USER], 'allow = { "user:nobody" }'),
    (A_UID, SECRETS[A_UID], 'allow = { "uid:65534" }'),
    (A_NONE, "a-wrong-secret-0123456789", ""),     # failed: 40125
    (A_EMPTY, SECRETS[A_EMPTY], "allow = {}"),
    (A_GROUP, SECRETS[A_GROUP], 'allow = { "group:nogroup" }'),
    (A_SUPP, SECRETS[A_SUPP], 'allow = { "gid:4242", "user:root" }'),
], extra='socket_mode = "0666"')
d.start()
t.ok(wait_for(lambda: d.cred(A_NONE)["state"] == "failed", 5),
     "the account without allow list is in failed state (wrong secret)", d.cred(A_NONE))

sends0, tokens0 = len(mock.sends()), mock.token_calls()
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_USER))
t.ok(err is None and res["errcode"] == 0, "nobody may send as an appid with user:nobody",
     err)
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_UID))
t.ok(err is None, "nobody may send as an appid with uid:65534", err)
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_GROUP))
t.ok(err is None, "nobody (primary group nogroup) may send as group:nogroup", err)
t.eq(len(mock.sends()), sends0 + 3, "and those three went to WeChat")

sends0 = len(mock.sends())
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_NONE))
t.ok(is_code(err, "forbidden") and err["retryable"] is False,
     "no allow list: nobody is forbidden", err)
t.ok(set(err) == {"code", "message", "retryable"} and "40125" not in err["message"] and
     "secret" not in err["message"].lower(),
     "the forbidden peer learns nothing of the appid's state", err)
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_EMPTY))
t.ok(is_code(err, "forbidden"), "allow = {}: nobody is forbidden", err)
err, res = call_as(NOBODY, d.sock, "send", message(appid=A_SUPP))
t.ok(is_code(err, "forbidden"), "gid:4242 without that group: forbidden", err)
err, res = call_as(NOBODY, d.sock, "send", message(appid="wxnotconfigured001"))
t.ok(is_code(err, "unknown_appid"), "an unknown appid is unknown_appid, even for nobody", err)
t.eq(len(mock.sends()), sends0, "nothing forbidden reached WeChat")

# Supplementary groups count; a primary group other than the rule's does not.
with_4242 = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--groups=4242"]
err, res = call_as(with_4242, d.sock, "send", message(appid=A_SUPP))
t.ok(err is None, "gid:4242 as a supplementary group is allowed", err)
users = ["setpriv", "--reuid=nobody", "--regid=100", "--clear-groups"]
err, res = call_as(users, d.sock, "send", message(appid=A_GROUP))
t.ok(is_code(err, "forbidden"), "uid nobody with primary group 100: group:nogroup refuses",
     err)
users_supp = ["setpriv", "--reuid=nobody", "--regid=100", "--groups=65534"]
err, res = call_as(users_supp, d.sock, "send", message(appid=A_GROUP))
t.ok(err is None, "and nogroup as a supplementary group is enough", err)
other = ["setpriv", "--reuid=1", "--regid=1", "--clear-groups"]     # daemon:daemon
err, res = call_as(other, d.sock, "send", message(appid=A_USER))
t.ok(is_code(err, "forbidden"), "another user is forbidden for user:nobody", err)

# Root may use everything, including allow = {} and the failed account.
err, res = d.call("send", message(appid=A_EMPTY))
t.ok(err is None, "root may send as allow = {}", err)
err, res = d.call("send", message(appid=A_SUPP))
t.ok(err is None, "root may send as an appid that allows user:root", err)
err, res = d.call("send", message(appid=A_NONE))
t.ok(is_code(err, "unavailable"), "root gets the real state of the failed account", err)

# status shows a peer only what it may use.
err, res = call_as(NOBODY, d.sock, "status", {})
seen = sorted(c["appid"] for c in res["credentials"]) if res else None
t.eq(seen, sorted([A_USER, A_UID, A_GROUP]), "status lists only nobody's appids")
err, res = call_as(NOBODY, d.sock, "status", {"appid": A_NONE})
t.ok(is_code(err, "forbidden") and res is None, "status of a forbidden appid is forbidden",
     (err, res))
err, res = call_as(NOBODY, d.sock, "status", {"appid": A_USER})
t.ok(err is None and res["credentials"][0]["state"] == "valid",
     "status of an allowed appid works", (err, res))
t.eq(sorted(c["appid"] for c in d.status()["credentials"]), sorted(SECRETS),
     "root's status lists every appid")
err, res = call_as(NOBODY, d.sock, "ping")
t.ok(err is None and res["protocol"] == 1, "ping needs no allow list")
t.ok("send refused to uid 65534" in d.logtext(), "a refusal is logged with the uid")
d.stop()

# --- Secrets: files and inline secrets others can read ---------------------

d = Daemon(start=False, debug=False)
sf = os.path.join(d.dir, APPID + ".secret")


def start_fails(path):
    r = subprocess.run([WXPUSHD, "-f", path], capture_output=True, text=True, timeout=20)
    return r.returncode, r.stderr


for mode in (0o644, 0o604, 0o620):
    os.chmod(sf, mode)
    rc, err = start_fails(d.conf)
    t.ok(rc == 1 and sf in err and "chmod 600 %s" % sf in err and "%04o" % mode in err,
         "a secret file of mode %04o: the daemon refuses to start and says how to fix it"
         % mode, err)
    t.ok(SECRET not in err, "without printing the secret (%04o)" % mode)
t.ok(not os.path.exists(d.sock), "and never listened")
os.chmod(sf, 0o640)
r = subprocess.run([WXPUSHD, "-n", "-f", d.conf], capture_output=True, text=True)
t.eq(r.returncode, 0, "group read (0640) is accepted")
os.chmod(sf, 0o600)

inline = os.path.join(d.dir, "inline.conf")
with open(inline, "w") as f:
    f.write('socket = "%s"\nstate_dir = "%s"\naccount "%s" {\n    secret = "%s"\n}\n'
            % (d.sock, d.state, APPID, SECRET))
os.chmod(inline, 0o644)
rc, err = start_fails(inline)
t.ok(rc == 1 and inline in err and "chmod 600 %s" % inline in err,
     "a config holding an inline secret, mode 0644: refused, naming the file and the fix", err)
t.ok(SECRET not in err, "without printing the secret")
os.chmod(inline, 0o600)
r = subprocess.run([WXPUSHD, "-n", "-f", inline], capture_output=True, text=True)
t.eq(r.returncode, 0, "the same file at 0600 is accepted")

# --- No secret and no token in any log or output ---------------------------
# Every error path at debug level, then every secret and every token the mock
# ever issued is looked for in the log and in everything the daemon answered.

A_CLASSIC, A_TOKFAIL, A_QUOTA = "wxclassic000000011", "wxtokenfail0000012", "wxquota00000000013"
A_WRONG, A_FORBID = "wxwrongsecret00014", "wxforbidden0000015"
SEC = {APPID: SECRET, A_CLASSIC: "classic-secret-0123456789ab",
       A_TOKFAIL: "tokfail-secret-0123456789ab", A_QUOTA: "quota-secret-0123456789abcd",
       A_FORBID: "forbid-secret-0123456789abc"}
WRONG = "wrong-secret-for-wxwrongsecret00014"
AUTH1, AUTH2 = "wxauthorizer000021", "wxauthorizer000022"
mock = Mock(accounts=dict(SEC, **{A_WRONG: "the-right-secret-0123456789"}),
            components=COMPONENTS)
d = Daemon(mock=mock, start=False, components=COMPONENTS, callback=True)
mock.config(event_url=d.callback_url)
write_conf(d, [
    (APPID, SEC[APPID], 'allow = { "user:nobody" }'),
    (A_CLASSIC, SEC[A_CLASSIC], 'token_api = "classic"'),
    (A_TOKFAIL, SEC[A_TOKFAIL], ""),
    (A_QUOTA, SEC[A_QUOTA], ""),
    (A_WRONG, WRONG, ""),
    (A_FORBID, SEC[A_FORBID], "allow = {}"),
], extra='socket_mode = "0666"\nlog_level = "debug"\ncallback_listen = "127.0.0.1:%d"\n'
         'component "%s" {\n    secret_file = "%s"\n    token = "%s"\n    aes_key = "%s"\n}'
         % (d.callback_port, COMPONENT, os.path.join(d.dir, "component.secret"),
            COMPONENT_TOKEN, COMPONENT_KEY))
with open(os.path.join(d.dir, "component.secret"), "w") as f:
    f.write(COMPONENT_SECRET + "\n")
os.chmod(os.path.join(d.dir, "component.secret"), 0o600)
os.chmod(d.conf, 0o600)         # it holds the component's token and AES key
d.start()
outputs = []                    # everything the daemon answered


def rec(pair):
    outputs.append(json.dumps(pair, ensure_ascii=False, default=repr))
    return pair


def send(appid=APPID, **kw):
    return rec(d.call("send", message(appid=appid, **kw)))


err, res = send()
t.ok(err is None, "scan: a send as the stable account", err)
err, res = send(A_CLASSIC)
t.ok(err is None, "scan: a send as the classic account", err)
mock.invalidate(APPID)
mock.expire(A_CLASSIC)
err, res = send()
t.ok(err is None and res["attempts"] == 2, "scan: an invalidated token is refreshed", err)
err, res = send(A_CLASSIC)
t.ok(err is None, "scan: an expired token is refreshed", err)

# Refresh failures, one account at a time (faults are per path, not per appid):
# -1 then HTTP 500 on the classic endpoint, a dropped connection then a timeout
# on the stable one, and 45009 (the daily quota) for a third account.
mock.invalidate(A_CLASSIC)
mock.fault("/cgi-bin/token", 1, errcode=-1)
mock.fault("/cgi-bin/token", 1, http_status=500)
send(A_CLASSIC)
t.ok(wait_for(lambda: d.cred(A_CLASSIC)["state"] == "valid", 10),
     "scan: the classic account recovers from -1 and HTTP 500", d.cred(A_CLASSIC))
mock.invalidate(A_TOKFAIL)
mock.fault("/cgi-bin/stable_token", 1, drop=True)
mock.fault("/cgi-bin/stable_token", 1, delay_ms=2500)
send(A_TOKFAIL)
t.ok(wait_for(lambda: d.cred(A_TOKFAIL)["state"] == "valid", 12),
     "scan: the stable account recovers from a drop and a timeout", d.cred(A_TOKFAIL))
mock.reset()
mock.invalidate(A_QUOTA)
mock.fault("/cgi-bin/stable_token", 1, errcode=45009)
send(A_QUOTA)
t.ok(wait_for(lambda: "errcode 45009" in d.logtext(), 5),
     "scan: 45009 from the token endpoint")
mock.reset()
# The subscribe path: every kind of answer.
for kw in ({"errcode": -1}, {"errcode": 45009}, {"errcode": 43101}, {"http_status": 502},
           {"http_status": 503}, {"broken_body": True}, {"oversize": 200000}):
    mock.fault(SUBSCRIBE, 1, **kw)
    send()
mock.fault(SUBSCRIBE, 20, drop=True)
send()
mock.reset()
mock.fault(SUBSCRIBE, 1, delay_ms=2500)
err, res = send()
t.ok(is_code(err, "timeout"), "scan: an upstream timeout", err)
mock.reset()
err, res = send(A_WRONG)
t.ok(is_code(err, "unavailable"), "scan: the wrong secret makes unavailable", err)

# A third-party platform: ticket, authorizations by event and by code, a
# rotated refresh token, a used code, a revocation, a forged event.
t.ok(wait_for(lambda: d.cred(COMPONENT)["state"] == "valid", 10),
     "scan: the component gets its ticket and token", d.cred(COMPONENT))
# (The mock's answer holds the ticket or code it made: keep only the daemon's reply.)
outputs.append(repr(mock.component_event("component_verify_ticket").get("reply")))
outputs.append(repr(mock.component_event("authorized", AUTH1).get("reply")))
# The code is exchanged in the background, after the answer.
wait_for(lambda: (d.cred(AUTH1) or {}).get("state") == "valid", 10)
err, res = send(AUTH1)
t.ok(err is None, "scan: a send as an authorizer", err)
mock.config(rotate_refresh_token=True)
mock.invalidate(AUTH1)
err, res = send(AUTH1)
t.ok(err is None and res["attempts"] == 2, "scan: the authorizer's token is refreshed", err)
code = mock.component_code(AUTH2)
err, res = rec(d.call("authorize", {"component_appid": COMPONENT, "authorization_code": code}))
t.ok(err is None, "scan: authorize with a code", err)
err, res = rec(d.call("authorize", {"component_appid": COMPONENT, "authorization_code": code}))
t.ok(is_code(err, "wechat"), "scan: a used code", err)
outputs.append(repr(mock.component_event("unauthorized", AUTH2).get("reply")))
err, res = send(AUTH2)
t.ok(is_code(err, "revoked"), "scan: a revoked authorizer", err)
req = urllib.request.Request(d.callback_url + "?timestamp=1&nonce=2&msg_signature=" + "0" * 40,
                             data=b"<xml><AppId>x</AppId><Encrypt>AAAA</Encrypt></xml>")
try:
    outputs.append(urllib.request.urlopen(req, timeout=10).read().decode())
except urllib.error.HTTPError as e:
    outputs.append(e.read().decode(errors="replace"))
# The platform has no allow list: only root (the daemon's user) may use it.
err, res = rec(call_as(NOBODY, d.sock, "send", message(appid=AUTH1)))
t.ok(is_code(err, "forbidden") and res is None,
     "scan: nobody may not send as an authorizer of a platform without allow list", err)
err, res = rec(call_as(NOBODY, d.sock, "status", {"appid": COMPONENT}))
t.ok(is_code(err, "forbidden") and res is None,
     "scan: nor see the platform's status", err)
err, res = rec(call_as(NOBODY, d.sock, "status", {"appid": AUTH1}))
t.ok(is_code(err, "forbidden") and res is None,
     "scan: nor its authorizer's status", err)
mock.config(rotate_refresh_token=False)
send("wxnotconfigured001")
for field, kw in (("title", {"title": "x" * 30}), ("touser", {"touser": "bad openid!"}),
                  ("bogus", {"bogus": 1})):
    err, res = send(**kw)
    t.ok(is_code(err, "invalid_request") and err.get("field") == field,
         "scan: invalid %s" % field, err)
rec(call_as(NOBODY, d.sock, "send", message(appid=A_FORBID)))
rec(call_as(NOBODY, d.sock, "status", {"appid": A_FORBID}))
err, res = rec(call_as(NOBODY, d.sock, "status", {}))
t.eq(sorted(c["appid"] for c in res["credentials"]) if res else None, [APPID],
     "scan: nobody's status lists only the appid that allows user:nobody")
err, res = rec(call_as(NOBODY, d.sock, "stats", None))
t.eq(sorted(res["appids"]) if res else None, [APPID],
     "scan: and so do nobody's stats")
c = d.client()
c.send_raw(b"\xc1garbage")
c.closed()
for appid in list(SEC) + [COMPONENT, AUTH1]:
    rec(d.call("status", {"appid": appid}))
rec(d.call("status", {}))
rec(d.call("stats"))
for args in (["status"], ["--json", "status"], ["--json", "status", "--appid", APPID]):
    r = d.wxpush(*args)
    outputs.append(r.stdout + r.stderr)

# SIGHUP: a good reload, then one refused for a readable secret file.
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: "configuration reloaded" in d.logtext(), 5), "scan: SIGHUP reloads")
os.chmod(os.path.join(d.dir, APPID + ".secret"), 0o644)
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: "keeping the current configuration" in d.logtext(), 5),
     "scan: a reload with a readable secret file is refused")
os.chmod(os.path.join(d.dir, APPID + ".secret"), 0o600)
err, res = send()
t.ok(err is None, "scan: the daemon still sends", err)

# Restart on the stored tokens: the sending appid gets no new token. (Other
# credentials of this scan, the wrong-secret one retrying on its backoff,
# may call the token endpoint at any moment: only APPID's tokens count.)
def issued_for(appid):
    return sum(1 for x in mock.tokens()["tokens"] if x.get("appid") == appid)


tc = issued_for(APPID)
t.eq(d.stop(), 0, "scan: SIGTERM")
d.start()
err, res = send()
t.ok(err is None and issued_for(APPID) == tc, "scan: a restart reuses the stored token",
     (err, tc, issued_for(APPID)))
rec(d.call("status", {}))
d.stop()

issued = mock.tokens()
tokens = [x["value"] for x in issued["tokens"]]
kinds = {x["kind"] for x in issued["tokens"]}
t.ok(len(tokens) >= 12 and issued["dropped"] == 0 and
     kinds >= {"access_token", "component_access_token", "authorizer_access_token",
               "authorizer_refresh_token", "component_verify_ticket", "authorization_code"},
     "scan: the mock lists the %d credentials it issued" % len(tokens), kinds)
log = d.logtext()
text = log + "\n".join(outputs)
t.ok("fetching access_token" in log and "refresh failed" in log and "43101" in log,
     "scan: the debug log does describe what happened")
leaks = [v[:12] + "..." for v in tokens if v in text or v[:24] in text or v[-24:] in text]
t.eq(leaks, [], "scan: no issued token, nor 24 characters of one, in the log or outputs")
leaks = [s for s in list(SEC.values()) + [WRONG, COMPONENT_SECRET, COMPONENT_TOKEN,
                                          COMPONENT_KEY] if s in text]
t.eq(leaks, [], "scan: no secret in the log or outputs")
t.ok("access_token=" not in text and "secret=" not in text,
     "scan: no URL carrying a token or secret")

# --- Limits -----------------------------------------------------------------

mock = Mock()
d = Daemon(mock=mock, start=False)
write_conf(d, [(APPID, SECRET, 'allow = { "user:nobody" }')],
           extra='socket_mode = "0666"\nmax_clients = 6\nmax_clients_per_uid = 4\n'
                 'idle_timeout = 0\nmax_request = 2048\nmax_inflight = 1\nqueue_limit = 2')
d.start()

# max_clients_per_uid: root's fifth connection is closed, nobody still gets in.
wait_for(lambda: d.call("stats")[1]["clients"] == 1, 5)      # start()'s probe is gone
mine = [d.client() for _ in range(4)]
t.ok(all(c.call("ping")[0] is None for c in mine), "4 connections for root")
fifth = d.client()
t.ok(fifth.closed(3), "root's fifth connection is closed at once (max_clients_per_uid 4)")
out = as_user(NOBODY, d.sock, [["connect"], ["connect"], ["connect"],
                               ["call", 0, "ping", None], ["call", 1, "ping", None],
                               ["closed", 2, 3]])
t.ok(out[3].get("err", 1) is None and out[4].get("err", 1) is None,
     "nobody gets two more (6 in all)", out)
t.eq(out[5], {"closed": True}, "the seventh connection is closed at once (max_clients 6)")
t.ok("max_clients reached" in d.logtext() and "max_clients_per_uid reached" in d.logtext(),
     "both refusals are logged")
refused = []
for _ in range(300):
    refused.append(Client(d.sock))
t.ok(all(c.closed(3) for c in refused), "300 more connections are all refused")
for c in refused:
    c.close()
n = d.logtext().count("refusing connection")
t.ok(n <= 10, "refusals are logged at most once a second (%d lines for 302)" % n)
mine.pop().close()
t.ok(wait_for(lambda: d.call("ping")[0] is None, 5), "a freed slot takes a new connection")

# max_request (2048 here): under it answered, over it closed.
c = mine[0]
err, res = c.call("ping", {"pad": "x" * 1800})
t.ok(err is not None and err.get("field") == "pad",
     "a 1.8 KB request is answered under max_request 2048", err)
c.send_raw(msgpack.packb([0, 99, "ping", [{"pad": "x" * 3000}]]))
t.ok(c.closed(3), "a 3 KB request closes the connection")

# queue_limit 2 and max_inflight 1: a fourth and fifth waiting send are busy.
err, res = mine[1].call("send", message())
t.ok(err is None, "a send to get the token", err)
mock.fault(SUBSCRIBE, 5, delay_ms=800)
ids = [mine[1].request("send", message()) for _ in range(5)]
codes = [(lambda e: e["code"] if e else "ok")(mine[1].wait(i, 20)[0]) for i in ids]
t.eq(sorted(codes), ["busy", "busy", "ok", "ok", "ok"], "queue_limit 2: two of five are busy")
for c in mine:
    c.close()

# A socket with the default mode 0660 (root's) keeps nobody out altogether.
err, res = call_as(NOBODY, d.sock, "ping")
t.ok(err is None, "(mode 0666: nobody connects)")
d.stop()
d2 = Daemon(mock=mock)
err, res = call_as(NOBODY, d2.sock, "ping")
t.ok(isinstance(err, dict) and err.get("oserror") == 13,
     "socket_mode 0660: nobody cannot even connect (EACCES)", err)
d2.stop()

# idle_timeout: an idle connection goes; one waiting on its own request stays.
mock = Mock()
d = Daemon(mock=mock, start=False)
write_conf(d, [(APPID, SECRET, "")], extra="idle_timeout = 2\nupstream_timeout = 5\n"
                                           "send_timeout = 10")
d.start()
t.ok(d.call("send", message())[0] is None, "idle: a first send for the token")
idle = d.client()
idle.call("ping")
t0 = time.time()
t.ok(idle.closed(8) and 1.5 < time.time() - t0 < 6,
     "an idle connection is closed after idle_timeout (%.1f s)" % (time.time() - t0))
busy = d.client()
mock.fault(SUBSCRIBE, 1, delay_ms=3500)
t0 = time.time()
err, res = busy.call("send", message(), timeout=10)
t.ok(err is None and time.time() - t0 > 3,
     "a connection waiting 3.5 s on its own send is not idle", err)
t.ok(busy.closed(6), "and is closed once idle after its answer")

# A client that never reads: backpressure, then cut off; others unaffected.
hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
hog.connect(d.sock)
hog.setblocking(False)
chunk = b"".join(msgpack.packb([0, i, "ping", []]) for i in range(1, 10001))
sent, last = 0, time.time()
while sent < 64 << 20 and time.time() - last < 0.5:
    try:
        sent += hog.send(chunk)
        last = time.time()
    except BlockingIOError:
        time.sleep(0.02)
    except OSError:
        break
t.ok(sent < 16 << 20, "the daemon stops reading a client that does not read "
     "(%.1f MB taken)" % (sent / 1048576.0))
t.ok(rss_kib(d.proc.pid) < 64 * 1024, "its memory stays bounded (%d KiB)"
     % rss_kib(d.proc.pid))
t0 = time.time()
err, res = d.call("ping", timeout=3)
t.ok(err is None and time.time() - t0 < 2, "another client is answered at once")
t.ok(wait_for(lambda: "write timeout, closing" in d.logtext(), 8),
     "the stuck client is closed after idle_timeout")
hog.setblocking(True)
hog.settimeout(5)
try:
    while hog.recv(1 << 20):
        pass
    eof = True
except OSError:
    eof = True
t.ok(eof and d.proc.poll() is None, "its connection ends; the daemon runs on")
hog.close()
d.stop()

# EMFILE: accept pauses rather than spinning, and resumes when fds free up.
d = Daemon(mock=Mock())
subprocess.run(["prlimit", "--pid", str(d.proc.pid), "--nofile=64:64"], check=True)
conns, stuck = [], None
for _ in range(100):
    c = d.client()
    c.request("ping")
    try:
        if c.read_one(1.5) is None:
            stuck = c
            break
    except (socket.timeout, OSError):
        stuck = c
        break
    conns.append(c)
t.ok(stuck is not None and 20 < len(conns) < 64,
     "under RLIMIT_NOFILE 64 the daemon takes %d connections, then no more" % len(conns))
t.ok(wait_for(lambda: "out of file descriptors" in d.logtext(), 3), "EMFILE is logged")
before = cpu_ticks(d.proc.pid)
time.sleep(2)
used = (cpu_ticks(d.proc.pid) - before) / float(os.sysconf("SC_CLK_TCK"))
t.ok(used < 0.2, "and it does not spin (%.2f s of CPU in 2 s)" % used)
for c in conns[:10]:
    c.close()
m = None
try:
    m = stuck.read_one(5) if stuck else None
except OSError:
    pass
t.ok(m is not None and m[2] is None, "the waiting connection is served once fds free up")
t.ok(d.call("ping")[0] is None, "and new ones too")
for c in conns[10:]:
    c.close()
d.stop()

# --- Privileges: started as root, running as nobody ------------------------

mock = Mock()
d = Daemon(mock=mock, start=False, extra='user = "nobody"')
d.start()
# The socket answers before the privileges are dropped: wait for the drop.
wait_for(lambda: "running as nobody" in d.logtext(), 10)
st = proc_status(d.proc.pid)
t.eq((st["Uid"], st["Gid"], st.get("Groups")), (["65534"] * 4, ["65534"] * 4, ["65534"]),
     "user = nobody: real, effective, saved and fs ids are nobody's")
sst = os.stat(d.sock)
t.eq((sst.st_uid, sst.st_gid, sst.st_mode & 0o777), (65534, 65534, 0o660),
     "the socket belongs to nobody:nogroup, mode 0660")
dst = os.stat(d.state)
t.eq((dst.st_uid, dst.st_mode & 0o777), (65534, 0o700),
     "state_dir was created for nobody, mode 0700")
err, res = d.call("send", message())
t.ok(err is None, "root can still send", err)
err, res = call_as(NOBODY, d.sock, "send", message())
t.ok(err is None, "the daemon's own user may use an appid without allow list", err)
err, res = call_as(other, d.sock, "ping")
t.ok(isinstance(err, dict) and err.get("oserror") == 13, "another user cannot connect", err)
db = os.path.join(d.state, "wxpushd.db")
t.ok(os.path.exists(db) and os.stat(db).st_uid == 65534, "the store belongs to nobody")
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: "keeping the current configuration" in d.logtext(), 5),
     "a reload that cannot read root's secret file keeps the configuration")
tc = mock.token_calls()
t.eq(d.stop(), 0, "SIGTERM as nobody exits 0")
d.start()
err, res = d.call("send", message())
t.ok(err is None and mock.token_calls() == tc, "after a restart the stored token is used",
     err)
d.stop()

d = Daemon(start=False, extra='user = "nobody"')
os.mkdir(d.state, 0o700)
r = subprocess.run([WXPUSHD, "-f", d.conf], capture_output=True, text=True, timeout=20)
t.ok(r.returncode != 0 and d.state in r.stderr and "chown -R nobody %s" % d.state in r.stderr,
     "a state_dir that belongs to root is refused, with the fix", r.stderr)

t.done()
