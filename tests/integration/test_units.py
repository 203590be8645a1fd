"""systemd: the generated units pass `systemd-analyze verify` (with ExecStart
pointed at the built daemon and Documentation= at the built manual pages),
carry the sandboxing, and, in a build with libsystemd, the daemon speaks the
notify protocol (READY, RELOADING, STOPPING, WATCHDOG) and takes over a socket
passed by socket activation without ever removing it. Parts whose tool is
missing are skipped."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from wxtest import BUILDDIR, WXPUSHD, Daemon, Mock, Tap, message, tmpdir, wait_for

t = Tap(timeout=90)
etc = os.path.join(BUILDDIR, "etc")
service = open(os.path.join(etc, "wxpushd.service")).read()
sock_unit = open(os.path.join(etc, "wxpushd.socket")).read()
config_h = open(os.path.join(BUILDDIR, "config.h")).read()
have_systemd = re.search(r"^#define HAVE_SYSTEMD 1$", config_h, re.M) is not None


def directives(text):
    d = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            d.setdefault(k, []).append(v)
    return d


sv = directives(service)
want_type = "notify" if have_systemd else "simple"
t.eq(sv.get("Type"), [want_type], "Type=%s for this build" % want_type)
t.eq(sv.get("WatchdogSec"), ["30s" if have_systemd else "0"], "WatchdogSec for this build")
for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
             ("PrivateTmp", "yes"), ("PrivateDevices", "yes"), ("CapabilityBoundingSet", ""),
             ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"), ("User", "wxpushd"),
             ("RuntimeDirectory", "wxpushd"), ("StateDirectory", "wxpushd"),
             ("Restart", "on-failure"), ("ExecReload", "/bin/kill -HUP $MAINPID")):
    t.ok(v in sv.get(k, []), "the service has %s=%s" % (k, v), sv.get(k))
t.ok("@system-service" in sv.get("SystemCallFilter", []), "SystemCallFilter=@system-service")
t.ok("PrivateUsers" not in sv, "no PrivateUsers (peer uids must stay real)")
t.ok(not re.search(r"@[A-Za-z_]+@", service + sock_unit), "every @VAR@ was substituted")
exec_start = sv["ExecStart"][0].split()
sockpath = directives(sock_unit)["ListenStream"][0]
t.ok(exec_start[0].endswith("/sbin/wxpushd") and exec_start[1] == "-f",
     "ExecStart runs the installed wxpushd with -f", exec_start)
t.ok(sockpath.endswith("/wxpushd/wxpushd.sock"), "the socket unit listens on the "
     "daemon's default socket", sockpath)

# systemd-analyze verify on copies whose ExecStart is the built daemon.
analyze = shutil.which("systemd-analyze")
if analyze is None:
    t.ok(True, "# SKIP systemd-analyze is not installed")
else:
    d = tmpdir()
    with open(os.path.join(d, "wxpushd.service"), "w") as f:
        f.write(service.replace("ExecStart=" + exec_start[0], "ExecStart=" + WXPUSHD))
    with open(os.path.join(d, "wxpushd.socket"), "w") as f:
        f.write(sock_unit)
    env = dict(os.environ)
    args = [analyze, "verify"]
    if shutil.which("man") is not None:
        # Documentation=man:... must name pages that exist: the built ones.
        mandir = os.path.join(d, "man")
        for page in ("wxpushd.8", "wxpushd.conf.5"):
            sect = os.path.join(mandir, "man" + page.rsplit(".", 1)[1])
            os.makedirs(sect, exist_ok=True)
            shutil.copy(os.path.join(BUILDDIR, "man", page), sect)
        env["MANPATH"] = mandir
    else:
        args.append("--man=no")
    for unit in ("wxpushd.service", "wxpushd.socket"):
        r = subprocess.run(args + [os.path.join(d, unit)], capture_output=True, text=True,
                           env=env, cwd=d, timeout=60)
        t.ok(r.returncode == 0 and r.stderr.strip() == "", "systemd-analyze verify %s" % unit,
             r.stdout + r.stderr)
    bad = os.path.join(d, "bad.service")
    with open(bad, "w") as f:
        f.write(service.replace("ExecStart=" + exec_start[0], "ExecStart=/nonexistent/wxpushd"))
    r = subprocess.run([analyze, "verify", "--man=no", bad], capture_output=True, text=True,
                       timeout=60)
    t.ok(r.returncode != 0, "and it does catch a unit whose binary is missing")

if not have_systemd:
    t.ok(True, "# SKIP notify and socket activation: built without libsystemd")
    t.done()

# The notify protocol, with a datagram socket standing in for systemd.
mock = Mock()
d = Daemon(mock=mock, start=False)
nsock_path = os.path.join(d.dir, "notify")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(nsock_path)
ns.settimeout(0.2)
msgs = []


def notified(what, timeout=5):
    end = time.time() + timeout
    while time.time() < end:
        if any(what in m for m in msgs):
            return True
        try:
            msgs.append(ns.recv(4096).decode())
        except socket.timeout:
            pass
    return any(what in m for m in msgs)


os.environ["NOTIFY_SOCKET"] = nsock_path
os.environ["WATCHDOG_USEC"] = "400000"
d.start()
del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
t.ok(notified("READY=1"), "READY=1 once started", msgs)
err, res = d.call("ping")
t.ok(err is None, "and the daemon answers", err)
msgs.clear()
t.ok(notified("WATCHDOG=1", 2), "WATCHDOG=1 within the watchdog period", msgs)
msgs.clear()
d.sig(signal.SIGHUP)
t.ok(notified("RELOADING=1") and notified("READY=1"), "RELOADING=1 then READY=1 on SIGHUP",
     msgs)
msgs.clear()
t.eq(d.stop(), 0, "SIGTERM exits 0")
t.ok(notified("STOPPING=1", 1), "STOPPING=1 on SIGTERM", msgs)
ns.close()

# Socket activation: systemd-socket-activate binds, the daemon takes over.
activate = shutil.which("systemd-socket-activate")
if activate is None:
    t.ok(True, "# SKIP systemd-socket-activate is not installed")
    t.done()
d2 = Daemon(mock=mock, start=False)
os.makedirs(os.path.dirname(d2.sock), exist_ok=True)
log = open(d2.logpath, "a")
p = subprocess.Popen([activate, "-l", d2.sock, WXPUSHD, "-d", "-f", d2.conf],
                     stdout=log, stderr=log)
t.ok(wait_for(lambda: os.path.exists(d2.sock), 5), "systemd-socket-activate made the socket")
ino = os.stat(d2.sock).st_ino
err, res = d2.call("send", message())
t.ok(err is None, "the first connection starts the daemon, which sends", err)
t.ok(wait_for(lambda: "using the socket passed by systemd" in d2.logtext(), 5),
     "the daemon used the passed socket", d2.logtext()[-2000:])
t.ok("removing stale socket" not in d2.logtext(), "and did not bind its own")
err, res = d2.call("ping")
t.ok(err is None, "a second connection is served too", err)
p.send_signal(signal.SIGTERM)
try:
    rc = p.wait(20)
except subprocess.TimeoutExpired:
    p.kill()
    rc = None
t.eq(rc, 0, "SIGTERM exits 0")
t.ok(os.path.exists(d2.sock) and os.stat(d2.sock).st_ino == ino,
     "the passed socket was not removed at exit")
t.done()
