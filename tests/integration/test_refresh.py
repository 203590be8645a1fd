"""Tokens that never lapse: proactive refresh under steady traffic (stable API,
and classic API whose old token dies at rotation), upstream unreachable then
back, and HTTPS verified against a test CA."""

import os
import socket
import subprocess
import threading
import time

from wxtest import APPID, SUBSCRIBE, Daemon, Mock, Tap, message, tmpdir, wait_for

t = Tap(timeout=200)


def steady(d, seconds, rate=25, batch=8):
    """Send pipelined batches at a steady rate; returns (ok, errors). With
    several sends in flight, some are always on the wire when a token rotates."""
    ok, errors = 0, []
    c = d.client()
    end = time.time() + seconds
    while time.time() < end:
        ids = [c.request("send", message()) for _ in range(batch)]
        for i in ids:
            err, res = c.wait(i, 15)
            if err is None:
                ok += 1
            else:
                errors.append(err)
        time.sleep(1.0 / rate)
    c.close()
    return ok, errors


results = {}


def run(name, d, seconds):
    results[name] = steady(d, seconds)


# Tokens live 45 s, refresh_margin 30: a refresh every ~10-15 s while sending.
stable_mock = Mock(args=["--expires-in", "45", "--rotation-window", "40", "--overlap", "20"])
stable = Daemon(mock=stable_mock, extra="refresh_margin = 30")
classic_mock = Mock(args=["--expires-in", "45", "--overlap", "0"])
classic = Daemon(mock=classic_mock, extra="refresh_margin = 30",
                 account_extra='token_api = "classic"')

threads = [threading.Thread(target=run, args=("stable", stable, 40)),
           threading.Thread(target=run, args=("classic", classic, 40))]
for th in threads:
    th.start()

# Meanwhile: upstream unreachable, then back.
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
down = Daemon(api_base="http://127.0.0.1:%d" % port)
t0 = time.time()
err, res = down.call("send", message())
el = time.time() - t0
t.ok(err is not None and err["code"] == "unavailable" and err["retryable"],
     "upstream unreachable: unavailable", err)
t.ok(el <= 8.5, "within send_timeout (%.1fs)" % el)
t.ok(down.cred()["state"] in ("expired", "refreshing"), "status says there is no token",
     down.cred())
# wxpush-mock on the port the daemon was told about (the last -l wins).
up = Mock(args=["-l", "127.0.0.1:%d" % port])
t.ok(wait_for(lambda: down.call("send", message())[0] is None, 40, 1.0),
     "the daemon recovers by itself when the upstream returns")

# HTTPS with a test CA.
pki = tmpdir()


def openssl(*args):
    subprocess.run(["openssl"] + list(args), cwd=pki, check=True, capture_output=True)


openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=wxtest CA",
        "-keyout", "ca.key", "-out", "ca.pem")
openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")
with open(os.path.join(pki, "ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1\n")
openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.pem")
tls_mock = Mock(cert=os.path.join(pki, "server.pem"), key=os.path.join(pki, "server.key"),
                cafile=os.path.join(pki, "ca.pem"))
tls = Daemon(mock=tls_mock, extra='ca_file = "%s"' % os.path.join(pki, "ca.pem"))
oks = sum(1 for _ in range(30) if tls.call("send", message())[0] is None)
t.eq(oks, 30, "HTTPS verified with ca_file: 30 sends delivered")
hs = tls_mock.stats()["tls_handshakes"]
t.ok(1 <= hs <= 3, "connections are reused: %d TLS handshakes for 31 calls" % hs)
tls.stop()
untrusted = Daemon(mock=tls_mock)
err, res = untrusted.call("send", message())
t.ok(err is not None and err["code"] == "unavailable", "without the CA the upstream is refused",
     err)
t.ok("tls" in (untrusted.cred()["last_error"] or "").lower(),
     "status says it was TLS", untrusted.cred())
untrusted.stop()

for th in threads:
    th.join()
for name, mock in (("stable", stable_mock), ("classic", classic_mock)):
    ok, errors = results[name]
    t.ok(ok > 2000 and not errors, "%s: %d sends over 40 s of token rotation, none failed"
         % (name, ok), errors[:3])
    calls = mock.token_calls()
    t.ok(3 <= calls <= 6, "%s: %d token calls for 40 s of 45 s tokens" % (name, calls))
t.ok(stable.cred()["state"] == "valid", "stable credential still valid")
t.done()
