"""Integration test support: the real wxpushd and wxpush-mock as processes, a
MessagePack-RPC client written from docs/protocol.md, and TAP output."""

import atexit
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

import msgpack

BUILDDIR = os.environ.get("WX_BUILDDIR", os.getcwd())
SRCDIR = os.environ.get("WX_SRCDIR", os.getcwd())
WXPUSHD = os.path.join(BUILDDIR, "src", "wxpushd", "wxpushd")
WXPUSH = os.path.join(BUILDDIR, "src", "wxpush", "wxpush")
MOCK = os.path.join(BUILDDIR, "src", "mock", "wxpush-mock")

APPID = "wx1234567890abcdef"
SECRET = "s3cr3t-appsecret-0123456789abcdef"

# A third-party platform: appid, AppSecret, message-check token, EncodingAESKey.
COMPONENT = "wxcomponent0000001"
COMPONENT_SECRET = "component-secret-0123456789abcdef"
COMPONENT_TOKEN = "callbackToken01"
COMPONENT_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
COMPONENTS = {COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY)}


class Tap:
    """TAP producer: ok() per check, done() prints the plan and exits."""

    def __init__(self, timeout=240):
        self.n = 0
        self.failed = 0
        signal.signal(signal.SIGALRM, self._timeout)
        signal.alarm(timeout)

    def _timeout(self, *_):
        self.ok(False, "test script timed out")
        self.done()

    def ok(self, cond, desc, diag=None):
        self.n += 1
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, desc))
        if not cond:
            self.failed += 1
            if diag is not None:
                for line in str(diag).splitlines()[:40]:
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def eq(self, got, want, desc):
        return self.ok(got == want, desc, "got %r, want %r" % (got, want))

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line)
        sys.stdout.flush()

    def done(self):
        # Every daemon and mock this script ran must be free of sanitizer reports.
        for path in _logs:
            try:
                text = open(path, errors="replace").read()
            except FileNotFoundError:
                continue
            bad = [m for m in SANITIZER_MARKS if m in text]
            if bad:
                self.ok(False, "no sanitizer report in %s" % os.path.basename(path),
                        text[text.find(bad[0]) - 200:][:3000])
        print("1..%d" % self.n)
        sys.stdout.flush()
        _cleanup()
        os._exit(0 if self.failed == 0 else 1)


_procs = []
_dirs = []
_logs = []
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def tmpdir():
    d = tempfile.mkdtemp(prefix="wxtest-")
    os.chmod(d, 0o755)
    _dirs.append(d)
    return d


def everyone_pythonpath():
    """A directory any user can import wxtest from, for code run as another user: the
    source tree may be readable by its owner only (a checkout in root's 0700 home)."""
    d = tmpdir()
    shutil.copy(os.path.abspath(__file__), os.path.join(d, "wxtest.py"))
    os.chmod(os.path.join(d, "wxtest.py"), 0o644)
    return d


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def strace_counts(pid, calls, fn, out):
    """Run fn() while strace -c counts process pid's system calls named in calls
    ("epoll_ctl,writev"), its summary in the file out: (what fn returned,
    {name: calls}). fn runs all the same if strace is missing or cannot attach;
    the counts are None then."""
    st = None
    if shutil.which("strace"):
        st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-e", "trace=" + calls,
                               "-p", str(pid)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        time.sleep(0.5)     # strace attaches
        if st.poll() is not None:
            st = None
    v = fn()
    if st is None:
        return v, None
    st.send_signal(signal.SIGINT)
    st.wait(10)
    counts = {}
    with open(out) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                counts[p[-1]] = int(p[3])
    return v, counts


def rss_kib(pid):
    """Process pid's resident memory in KiB (-1 if /proc does not say)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def seed_authorizers(d, component, ticket, rows):
    """Write the store of the stopped daemon d as a previous run would have left it:
    component's verify ticket, received now, and its authorizers, rows of (appid,
    refresh_token, updated_at, last_used)."""
    with sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=5) as c:
        c.execute("INSERT OR REPLACE INTO tickets (component_appid, ticket, received_at) "
                  "VALUES (?, ?, ?)", (component, ticket, int(time.time())))
        c.executemany("INSERT INTO authorizers (appid, component_appid, refresh_token, "
                      "revoked, updated_at, last_used) VALUES (?, ?, ?, 0, ?, ?)",
                      [(a, component, rt, up, used) for a, rt, up, used in rows])


def wait_for(pred, timeout=10.0, step=0.02):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Mock:
    """wxpush-mock on a private port, driven through its control API."""

    def __init__(self, accounts=None, args=(), cert=None, key=None, cafile=None,
                 components=None, event_url=None):
        self.dir = tmpdir()
        self.accounts = accounts if accounts is not None else {APPID: SECRET}
        portfile = os.path.join(self.dir, "port")
        cmd = [MOCK, "-l", "127.0.0.1:0", "--port-file", portfile]
        for a, s in self.accounts.items():
            cmd += ["--account", "%s:%s" % (a, s)]
        # components: {appid: (secret, token, encoding_aes_key)}
        for a, (s, t, k) in (components or {}).items():
            cmd += ["--component", "%s:%s:%s:%s" % (a, s, t, k)]
        if event_url:
            cmd += ["--event-url", event_url]
        if cert:
            cmd += ["--cert", cert, "--key", key]
        cmd += list(args)
        self.log = open(os.path.join(self.dir, "mock.log"), "w+")
        _logs.append(self.log.name)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        _procs.append(self.proc)
        if not wait_for(lambda: os.path.exists(portfile)):
            raise RuntimeError("wxpush-mock did not start: " + self.logtext())
        self.port = int(open(portfile).read().strip())
        self.scheme = "https" if cert else "http"
        self.base = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.ctl = "http://127.0.0.1:%d" % self.port if not cert else None
        self.ssl_ctx = None
        if cert:
            import ssl
            self.ssl_ctx = ssl.create_default_context(cafile=cafile or cert)

    def logtext(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def _req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_ctx) as r:
            return json.loads(r.read().decode() or "null")

    def stats(self):
        return self._req("GET", "/mock/stats")

    def calls(self, path):
        return self.stats()["calls"].get(path, 0)

    def token_calls(self):
        c = self.stats()["calls"]
        return c.get("/cgi-bin/token", 0) + c.get("/cgi-bin/stable_token", 0)

    def sends(self, appid=None):
        q = "?appid=" + appid if appid else ""
        return self._req("GET", "/mock/sends" + q)["sends"]

    def tokens(self):
        """Every credential the mock has issued: {"tokens": [...], "dropped": n}."""
        return self._req("GET", "/mock/tokens")

    def fault(self, path, count, **kw):
        body = {"path": path, "count": count}
        body.update(kw)
        return self._req("POST", "/mock/fault", body)

    def invalidate(self, appid=APPID):
        return self._req("POST", "/mock/invalidate", {"appid": appid})

    def expire(self, appid=APPID):
        return self._req("POST", "/mock/expire", {"appid": appid})

    def config(self, **kw):
        return self._req("POST", "/mock/config", kw)

    def reset(self):
        return self._req("POST", "/mock/reset", {})

    def post(self, path, body):
        return self._req("POST", path, body)

    def component_event(self, info_type, authorizer=None, component=COMPONENT, **kw):
        """Have the mock POST an encrypted event to the event URL; its answer."""
        body = {"component_appid": component, "info_type": info_type}
        if authorizer:
            body["authorizer_appid"] = authorizer
        body.update(kw)
        return self._req("POST", "/mock/component/event", body)

    def component_code(self, authorizer, component=COMPONENT):
        """An authorization code for authorizer, without an event."""
        return self._req("POST", "/mock/component/code",
                         {"component_appid": component,
                          "authorizer_appid": authorizer})["authorization_code"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


SUBSCRIBE = "/cgi-bin/message/template/subscribe"

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def need_redis():
    """Skip the whole test (plan 1..0) unless redis-server and redis-cli are installed;
    call it before Tap()."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        print("1..0 # SKIP redis-server is not installed (apt-get install redis-server)")
        sys.exit(0)


class Redis:
    """redis-server on a private port, no persistence, as a child process (killed at
    exit); args are added to its command line."""

    def __init__(self, args=()):
        self.port = free_port()
        self.args = list(args)
        self.dir = tmpdir()
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "redis.log"), "a")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.dir] + self.args,
            stdout=self.log, stderr=self.log)
        _procs.append(self.proc)
        if not wait_for(lambda: self.cli("PING") == "PONG", 10, 0.05):
            raise RuntimeError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args):
        r = subprocess.run([REDIS_CLI, "-p", str(self.port)] + list(args),
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip() if r.returncode == 0 else None


class Daemon:
    """The real wxpushd with a generated configuration in a private directory."""

    def __init__(self, mock=None, accounts=None, extra="", account_extra="",
                 debug=True, start=True, api_base=None, conf=None,
                 components=None, callback=False):
        self.dir = tmpdir()
        # components: {appid: (secret, token, aes_key[, previous_aes_key])}
        self.components = components or {}
        self.callback_port = free_port() if callback else None
        self.callback_url = ("http://127.0.0.1:%d/wechat/event" % self.callback_port
                             if callback else None)
        self.sock = os.path.join(self.dir, "run", "wxpushd.sock")
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "wxpushd.conf")
        self.logpath = os.path.join(self.dir, "wxpushd.log")
        _logs.append(self.logpath)
        self.debug = debug
        self.proc = None
        if accounts is None:
            accounts = {APPID: SECRET}
        self.accounts = accounts
        if api_base is None and mock is not None:
            api_base = mock.base
        self.api_base = api_base or "http://127.0.0.1:9"
        self.extra = extra
        self.account_extra = account_extra
        self.write_conf(conf)
        if start:
            self.start()

    def write_conf(self, text=None):
        if text is None:
            text = self.default_conf()
        with open(self.conf, "w") as f:
            f.write(text)
        # Never group- or world-writable, whatever the umask: the daemon
        # refuses such a file (docs/security.md).
        os.chmod(self.conf, 0o600 if self.components else 0o644)

    def default_conf(self, accounts=None, extra=None, account_extra=None):
        accounts = self.accounts if accounts is None else accounts
        extra = self.extra if extra is None else extra
        account_extra = self.account_extra if account_extra is None else account_extra
        lines = [
            'socket = "%s"' % self.sock,
            'state_dir = "%s"' % self.state,
            'api_base = "%s"' % self.api_base,
            "refresh_margin = 300",
            "upstream_timeout = 3",
            "send_timeout = 8",
            extra,
        ]
        for appid, secret in accounts.items():
            sf = os.path.join(self.dir, appid + ".secret")
            with open(sf, "w") as f:
                f.write(secret + "\n")
            os.chmod(sf, 0o600)
            lines.append('account "%s" {\n    secret_file = "%s"\n    %s\n}'
                         % (appid, sf, account_extra))
        if self.callback_port:
            lines.append('callback_listen = "127.0.0.1:%d"' % self.callback_port)
        for appid, c in self.components.items():
            sf = os.path.join(self.dir, appid + ".secret")
            with open(sf, "w") as f:
                f.write(c[0] + "\n")
            os.chmod(sf, 0o600)
            lines.append('component "%s" {\n    secret_file = "%s"\n    token = "%s"\n'
                         '    aes_key = "%s"\n%s}'
                         % (appid, sf, c[1], c[2],
                            '    previous_aes_key = "%s"\n' % c[3] if len(c) > 3 else ""))
        return "\n".join(lines) + "\n"

    def start(self, wait=True):
        cmd = [WXPUSHD, "-f", self.conf] + (["-d"] if self.debug else [])
        self.log = open(self.logpath, "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        _procs.append(self.proc)
        if wait and not wait_for(lambda: self._ready() or self.proc.poll() is not None):
            raise RuntimeError("wxpushd did not start:\n" + self.logtext())
        if wait and self.proc.poll() is not None:
            raise RuntimeError("wxpushd exited %d:\n%s" % (self.proc.returncode,
                                                            self.logtext()))
        return self

    def _ready(self):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.sock)
            s.close()
            return True
        except OSError:
            return False

    def logtext(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def sig(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def client(self):
        return Client(self.sock)

    def call(self, method, params=None, timeout=30):
        c = self.client()
        try:
            return c.call(method, params, timeout=timeout)
        finally:
            c.close()

    def status(self, appid=None):
        err, res = self.call("status", {"appid": appid} if appid else {})
        if err:
            raise RuntimeError("status failed: %r" % (err,))
        return res

    def cred(self, appid=APPID):
        for c in self.status()["credentials"]:
            if c["appid"] == appid:
                return c
        return None

    def wxpush(self, *args, input=None, timeout=60):
        return subprocess.run([WXPUSH, "-s", self.sock] + list(args),
                              input=input, capture_output=True, text=True,
                              timeout=timeout)


class Client:
    """A MessagePack-RPC client written from docs/protocol.md."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0
        self.pending = {}

    def close(self):
        self.s.close()

    def send_raw(self, data):
        self.s.sendall(data)

    def request(self, method, params=None):
        self.msgid += 1
        p = [params] if params is not None else []
        self.s.sendall(msgpack.packb([0, self.msgid, method, p], use_bin_type=True))
        return self.msgid

    def read_one(self, timeout=30):
        """Next message from the daemon, or None on EOF."""
        self.s.settimeout(timeout)
        while True:
            for msg in self.unpacker:
                return msg
            data = self.s.recv(65536)
            if not data:
                return None
            self.unpacker.feed(data)

    def wait(self, msgid, timeout=30):
        while msgid not in self.pending:
            m = self.read_one(timeout)
            if m is None:
                raise EOFError("connection closed")
            self.pending[m[1]] = (m[2], m[3])
        return self.pending.pop(msgid)

    def call(self, method, params=None, timeout=30):
        return self.wait(self.request(method, params), timeout)

    def closed(self, timeout=5):
        """Whether the daemon closes this connection (EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
        except (socket.timeout, BlockingIOError):
            return False
        except ConnectionResetError:
            return True


def message(appid=APPID, **kw):
    m = {
        "appid": appid,
        "touser": "oUSER_openid_0001",
        "template_id": "TEMPLATE_id_0001",
        "scene": 1000,
        "title": "订阅通知",
        "data": {"content": {"value": "您好, wxpushd!", "color": "#FF0000"}},
    }
    m.update(kw)
    return {k: v for k, v in m.items() if v is not None}


def wx_encrypt(encoding_aes_key, appid, xml, random16=None):
    """WXBizMsgCrypt (wechat-api.md section 4) in Python, for building events.
    Needs the cryptography module."""
    import base64
    import struct
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(encoding_aes_key + "=")
    if isinstance(xml, str):
        xml = xml.encode()
    plain = (random16 or os.urandom(16)) + struct.pack(">I", len(xml)) + xml + \
        appid.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def wx_signature(token, timestamp, nonce, encrypt):
    import hashlib
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def wx_event(xml, component=COMPONENT, key=COMPONENT_KEY, token=COMPONENT_TOKEN,
             outer_appid=None, encrypt_appid=None, timestamp=None):
    """An encrypted, signed event: (body, {msg_signature, timestamp, nonce});
    timestamp (the signed one in the query) defaults to now."""
    enc = wx_encrypt(key, encrypt_appid or component, xml)
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    nonce = str(int.from_bytes(os.urandom(4), "big"))
    body = ("<xml><AppId><![CDATA[%s]]></AppId><Encrypt><![CDATA[%s]]></Encrypt></xml>"
            % (outer_appid or component, enc))
    return body, {"msg_signature": wx_signature(token, ts, nonce, enc),
                  "timestamp": ts, "nonce": nonce}
