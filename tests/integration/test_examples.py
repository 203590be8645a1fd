"""The client examples in docs/examples (Python with python3-msgpack, Node.js
with @msgpack/msgpack) against the real daemon and wxpush-mock: a send, a
final refusal, a retryable error retried with backoff, a retry_after past the
caller's patience, a bad request, and a daemon that is not there. Node.js is
skipped when node/npm are missing or the npm registry cannot be reached."""

import os
import shutil
import subprocess
import sys
import time

from wxtest import APPID, SRCDIR, SUBSCRIBE, Daemon, Mock, Tap, tmpdir

t = Tap(timeout=170)
EXAMPLES = os.path.join(SRCDIR, "docs", "examples")
mock = Mock()
d = Daemon(mock=mock)


def args(**kw):
    a = {"appid": APPID, "touser": "oUSER_openid_0001", "template-id": "TEMPLATE_id_0001",
         "scene": "1000", "title": "订阅通知", "content": "您好, wxpushd!"}
    a.update(kw)
    out = []
    for k, v in a.items():
        out += ["--" + k, v]
    return out


def check(name, cmd, env=None):
    def run(sock=None, **kw):
        extra = kw.pop("extra", [])
        return subprocess.run(cmd + ["--socket", sock or d.sock] + args(**kw) + extra,
                              capture_output=True, text=True, timeout=60, env=env)

    before = mock.calls(SUBSCRIBE)
    r = run()
    t.ok(r.returncode == 0 and "sent" in r.stdout, "%s: a send succeeds" % name,
         r.stdout + r.stderr)
    last = mock.sends()[-1]["body"]
    t.ok(mock.calls(SUBSCRIBE) == before + 1 and last["title"] == "订阅通知" and
         last["data"]["content"]["value"] == "您好, wxpushd!" and last["scene"] == "1000",
         "%s: WeChat got the message" % name, last)

    # A final refusal is reported, not retried.
    mock.fault(SUBSCRIBE, 1, errcode=43101, errmsg="user refuse to accept the msg rid: 1")
    before = mock.calls(SUBSCRIBE)
    r = run()
    t.ok(r.returncode == 1 and "43101" in r.stderr and "wechat" in r.stderr and
         "retrying" not in r.stderr, "%s: 43101 is final, exit 1" % name, r.stderr)
    t.eq(mock.calls(SUBSCRIBE) - before, 1, "%s: and was not retried" % name)

    # -1 four times: the daemon retries three times and answers retryable;
    # the example backs off and tries again, which goes through.
    mock.fault(SUBSCRIBE, 4, errcode=-1)
    t0 = time.time()
    r = run()
    t.ok(r.returncode == 0 and "retrying in" in r.stderr and "sent" in r.stdout,
         "%s: a retryable error is retried after a backoff" % name, r.stdout + r.stderr)
    t.ok(time.time() - t0 >= 0.4, "%s: it did wait before retrying" % name)
    mock.reset()

    # retry_after (60 s for 89501) past --max-wait: give up at once, saying so.
    mock.fault(SUBSCRIBE, 1, errcode=89501)
    t0 = time.time()
    r = run(extra=["--max-wait", "5"])
    t.ok(r.returncode == 1 and "retry after 60 s" in r.stderr, "%s: retry_after is honoured: "
         "60 s is past --max-wait" % name, r.stderr)
    t.ok(time.time() - t0 < 10, "%s: without waiting for it" % name)
    mock.reset()

    # An invalid request is final, with the field.
    r = run(title="x" * 40)
    t.ok(r.returncode == 1 and "invalid_request" in r.stderr and "field title" in r.stderr,
         "%s: an invalid title is refused naming the field" % name, r.stderr)

    # No daemon: retried as configured, then exit 3.
    r = run(sock=os.path.join(d.dir, "nonexistent.sock"), extra=["--max-attempts", "2"])
    t.ok(r.returncode == 3 and "cannot connect" in r.stderr and "giving up after 2" in r.stderr,
         "%s: no daemon: exit 3 after the retries" % name, r.stderr)

    # Usage errors exit 2.
    r = subprocess.run(cmd + ["--appid", APPID], capture_output=True, text=True, timeout=60,
                       env=env)
    t.eq(r.returncode, 2, "%s: missing options exit 2" % name)


check("python", [sys.executable, os.path.join(EXAMPLES, "send.py")])

node, npm = shutil.which("node"), shutil.which("npm")
if node is None or npm is None:
    t.ok(True, "# SKIP node.js: node or npm is not installed")
    t.done()
mods = tmpdir()
try:
    r = subprocess.run([npm, "install", "--prefix", mods, "--no-audit", "--no-fund",
                        "--no-package-lock", "--loglevel=error", "@msgpack/msgpack"],
                       capture_output=True, text=True, timeout=120, cwd=mods)
    ok = r.returncode == 0
except subprocess.TimeoutExpired:
    ok = False
if not ok or not os.path.isdir(os.path.join(mods, "node_modules", "@msgpack", "msgpack")):
    t.ok(True, "# SKIP node.js: @msgpack/msgpack could not be installed from the npm registry")
    t.done()
env = dict(os.environ, NODE_PATH=os.path.join(mods, "node_modules"))
check("node", [node, os.path.join(EXAMPLES, "send.js")], env=env)
t.ok(not os.path.exists(os.path.join(EXAMPLES, "node_modules")),
     "nothing was installed in docs/examples")
d.stop()
t.done()
