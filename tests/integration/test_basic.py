"""The foundation: configuration checks, ping/status, framing, pipelining,
garbage and over-large frames, SIGTERM and SIGHUP."""

import os
import signal
import subprocess
import time

import msgpack

from wxtest import APPID, Daemon, Tap, WXPUSHD, wait_for

t = Tap()

# -n on a good file, and on a file with two errors reported as file:line.
d = Daemon(start=False)
r = subprocess.run([WXPUSHD, "-n", "-f", d.conf], capture_output=True, text=True)
t.eq((r.returncode, r.stdout.strip()), (0, "configuration OK"), "-n accepts a good file")

bad = d.default_conf() + "max_clients = -5\nno_such_key = 1\n"
badpath = os.path.join(d.dir, "bad.conf")
with open(badpath, "w") as f:
    f.write(bad)
nlines = bad.count("\n")
r = subprocess.run([WXPUSHD, "-n", "-f", badpath], capture_output=True, text=True)
t.eq(r.returncode, 1, "-n refuses a bad file with exit 1")
t.ok("%s:%d:" % (badpath, nlines - 1) in r.stderr, "the range error names file:line",
     r.stderr)
t.ok("%s:%d:" % (badpath, nlines) in r.stderr, "the unknown key is reported too",
     r.stderr)
t.ok("configuration OK" not in r.stdout, "no OK for a bad file")

r = subprocess.run([WXPUSHD, "-n", "-f", os.path.join(d.dir, "missing.conf")],
                   capture_output=True, text=True)
t.eq(r.returncode, 1, "a missing file is an error")

r = subprocess.run([WXPUSHD, "-V"], capture_output=True, text=True)
t.ok(r.returncode == 0 and r.stdout.startswith("wxpushd "), "-V prints the version")

# A running daemon answers ping and status.
d.start()
err, res = d.call("ping")
t.ok(err is None and res["protocol"] == 1 and res["version"], "ping answers", (err, res))
st = d.status()
t.ok(isinstance(st["uptime"], int) and st["version"] == res["version"],
     "status has version and uptime", st)
t.eq([c["appid"] for c in st["credentials"]], [APPID], "status lists the account")
mode = os.stat(d.sock).st_mode & 0o777
t.eq(mode, 0o660, "the socket gets socket_mode (default 0660)")

err, res = d.call("no_such_method", {})
t.ok(err is not None and err["code"] == "unknown_method" and res is None,
     "unknown method -> unknown_method", err)
err, res = d.call("status", {"appid": "wxnotconfigured00"})
t.ok(err is not None and err["code"] == "unknown_appid", "status for an unknown appid", err)
err, res = d.call("status", {"appid": 12})
t.ok(err is not None and err["code"] == "invalid_request" and err.get("field") == "appid",
     "a wrongly typed param names its field", err)

# 200 pipelined requests on one connection, all answered, matched by msgid.
c = d.client()
buf = b"".join(msgpack.packb([0, i, "ping", []]) for i in range(1, 201))
c.send_raw(buf)
got = set()
for _ in range(200):
    m = c.read_one(10)
    if m is None or m[0] != 1:
        break
    got.add(m[1])
t.eq(got, set(range(1, 201)), "200 pipelined pings all answered")

# A notification gets no answer; the connection stays usable.
c.send_raw(msgpack.packb([2, "ping", []]))
err, res = c.call("ping")
t.ok(err is None and c.msgid == 1, "a notification is not answered")
c.close()

# Garbage closes only its own connection.
good = d.client()
bad = d.client()
bad.send_raw(b"\xc1 this is not msgpack")
t.ok(bad.closed(), "garbage closes that connection")
err, res = good.call("ping")
t.ok(err is None, "another connection does not notice")

# Valid msgpack that is not MessagePack-RPC closes the connection too.
bad = d.client()
bad.send_raw(msgpack.packb({"hello": "world"}))
t.ok(bad.closed(), "a map instead of a request closes the connection")

# A header declaring billions of elements is refused without allocation.
bad = d.client()
bad.send_raw(b"\x94\x00\x01\xa4ping\xdd\xff\xff\xff\xff")
t.ok(bad.closed(), "array32 of 4 billion elements closes the connection")

# A frame over max_request (64 KiB) closes the connection.
bad = d.client()
big = msgpack.packb([0, 1, "ping", [{"pad": "x" * 70000}]])
try:
    bad.send_raw(big)
except OSError:
    pass
t.ok(bad.closed(), "a 70 KB frame closes the connection")
err, res = good.call("ping")
t.ok(err is None, "the good connection still works")
# A frame just under the limit is fine.
# (ping refuses the unknown key: the answer shows the frame was read whole.)
err, res = good.call("ping", {"pad": "x" * 60000})
t.ok(err is not None and err.get("field") == "pad", "a 60 KB request is read and answered",
     err)

# A request split across many writes is reassembled.
c = d.client()
frame = msgpack.packb([0, 77, "ping", []])
for b in frame:
    c.send_raw(bytes([b]))
    time.sleep(0.002)
err, res = c.wait(77)
t.ok(err is None, "a request trickled byte by byte is answered")
c.close()

# Half-close: the client shuts down its write side and still gets its answer.
c = d.client()
c.send_raw(msgpack.packb([0, 5, "ping", []]))
c.s.shutdown(1)
m = c.read_one(5)
t.ok(m is not None and m[1] == 5, "a half-closed client still gets its answer")
t.ok(c.closed(), "and then the daemon closes")

# SIGHUP with a broken file keeps the old configuration.
good_conf = open(d.conf).read()
with open(d.conf, "w") as f:
    f.write(good_conf + "refresh_margin = banana\n")
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: "keeping the current configuration" in d.logtext(), 5),
     "SIGHUP with a bad file is reported", d.logtext()[-2000:])
err, res = good.call("ping")
t.ok(err is None and d.proc.poll() is None, "the daemon keeps running and answering")
t.eq([x["appid"] for x in d.status()["credentials"]], [APPID], "the old accounts stay")

# SIGHUP with a good file adding an account.
with open(d.conf, "w") as f:
    f.write(d.default_conf(accounts={APPID: "s3cr3t-appsecret-0123456789abcdef",
                                     "wx00000000000000b2": "another-secret-01234"}))
d.sig(signal.SIGHUP)
t.ok(wait_for(lambda: d.cred("wx00000000000000b2") is not None, 5),
     "SIGHUP with a good file adds the new account")
err, res = good.call("ping")
t.ok(err is None, "existing connections survive a reload")
good.close()

# SIGTERM: exit 0 and the socket is gone.
rc = d.stop()
t.eq(rc, 0, "SIGTERM exits 0")
t.ok(not os.path.exists(d.sock), "the socket is removed")

# A stale socket file left by a crash is replaced on start.
d2 = Daemon()
d2.stop(signal.SIGKILL)
t.ok(os.path.exists(d2.sock), "SIGKILL leaves the socket file")
d2.start()
err, res = d2.call("ping")
t.ok(err is None, "a restart replaces the stale socket")
# A second daemon on the same socket refuses to start.
p = subprocess.run([WXPUSHD, "-f", d2.conf], capture_output=True, text=True, timeout=10)
t.ok(p.returncode != 0 and "another wxpushd is running" in p.stderr,
     "a second daemon on a live socket refuses to start", p.stderr)
d2.stop()

# Something that is not a socket at the socket path is never removed.
with open(d2.sock, "w") as f:
    f.write("not a socket\n")
p = subprocess.Popen([WXPUSHD, "-f", d2.conf], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
try:
    _, err = p.communicate(timeout=10)
except subprocess.TimeoutExpired:     # it started: the file was taken for a socket
    p.kill()
    _, err = p.communicate()
t.ok(p.returncode not in (0, -signal.SIGKILL) and "is not a socket" in err,
     "a regular file at the socket path: the daemon refuses to start", err)
t.ok(os.path.isfile(d2.sock) and open(d2.sock).read() == "not a socket\n",
     "and the file is left as it was")

t.done()
