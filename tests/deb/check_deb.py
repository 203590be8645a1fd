"""make check-deb: the Debian packages, built, installed on this machine,
used and purged.

Builds them with make deb, runs lintian, installs wxpushd and libwxpush-dev
with dpkg, checks what the package set up and that it started nothing, runs
wxpushd -n on the installed configuration, starts the installed daemon (with
systemctl if systemd is PID 1, else as the unit would: as the user wxpushd)
against a wxpush-mock from the build tree on 127.0.0.1, sends one message
with the installed wxpush, links a program against the installed libwxpush
with pkg-config, then removes (state kept) and purges (state gone) the
packages. Whatever happens, the machine ends as it started: the packages,
the user, the files and the processes this test made are undone. Needs root;
refuses to run where wxpushd is installed already. TAP on stdout."""

import glob
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

from wxtest import APPID, SRCDIR, BUILDDIR, Mock, Tap, tmpdir, wait_for

PKGS = ["wxpushd", "libwxpush-dev"]
CONFDIR = "/etc/wxpushd"
CONF = CONFDIR + "/wxpushd.conf"
SECRET_FILE = "%s/%s.secret" % (CONFDIR, APPID)
STATE = "/var/lib/wxpushd"
RUN = "/run/wxpushd"
SOCK = RUN + "/wxpushd.sock"
PATHS = [CONFDIR, STATE, RUN]


class Interrupted(Exception):
    """A signal asked the test to stop: it unwinds to the restore."""


def run(cmd, timeout=600, **kw):
    """Run cmd to its end. Interrupted by a signal, a build is stopped, but
    anything else (dpkg) is waited for, so that the restore finds no lock."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except Interrupted:
        if cmd[0] == "make":
            p.terminate()
        p.communicate()
        raise
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += "\n(timed out after %d s)" % timeout
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def pkg_status(pkg):
    """dpkg's status of pkg (installed, config-files, ...), "" if none."""
    r = run(["dpkg-query", "-W", "-f", "${db:Status-Status}", pkg])
    st = r.stdout.strip() if r.returncode == 0 else ""
    return "" if st == "not-installed" else st


def installed(pkg):
    return pkg_status(pkg) != ""


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def snapshot():
    """What this test may change, as it is now."""
    return {
        "packages": {p: pkg_status(p) for p in PKGS},
        "user": user_exists("wxpushd"),
        "group": group_exists("wxpushd"),
        "paths": {p: os.path.lexists(p) for p in PATHS},
        "unit-state": os.path.lexists(
            "/var/lib/systemd/deb-systemd-helper-enabled/wxpushd.service.dsh-also"),
    }


SYSTEMD = run(["ps", "-p", "1", "-o", "comm="]).stdout.strip() == "systemd"
before = None
daemon = None
restored = False


def restore():
    """Undo everything this test did; idempotent."""
    global restored
    if restored or before is None:
        return
    restored = True
    if SYSTEMD:
        run(["systemctl", "stop", "wxpushd.service", "wxpushd.socket"], timeout=60)
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    to_purge = [p for p in PKGS if not before["packages"][p] and installed(p)]
    if to_purge:
        run(["dpkg", "--purge"] + to_purge, timeout=300)
    if os.path.exists(SECRET_FILE) and not before["paths"][CONFDIR]:
        os.unlink(SECRET_FILE)
    for p in PATHS:
        if not before["paths"][p] and os.path.lexists(p):
            shutil.rmtree(p, ignore_errors=True)
    if not before["user"] and user_exists("wxpushd"):
        run(["userdel", "wxpushd"])
    if not before["group"] and group_exists("wxpushd"):
        run(["groupdel", "wxpushd"])


class DebTap(Tap):
    """wxtest's TAP, which restores the machine before it reports."""

    def _timeout(self, *_):
        raise Interrupted("the test's time limit")

    def done(self):
        try:
            restore()
            if before is not None:
                after = snapshot()
                self.ok(after == before, "the machine ends as it started",
                        "before %r\nafter  %r" % (before, after))
        finally:
            Tap.done(self)


def skip_all(why):
    print("1..0 # SKIP %s" % why)
    sys.exit(0)


def mode(path):
    st = os.stat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


if os.geteuid() != 0:
    skip_all("make check-deb installs packages: run it as root")
for tool in ("dpkg-buildpackage", "dh", "lintian"):
    if shutil.which(tool) is None:
        skip_all("%s is missing (./bootstrap installs the Debian packaging tools)" % tool)
now = snapshot()
if any(now["packages"].values()) or any(now["paths"].values()) or now["user"]:
    skip_all("wxpushd is (or was) installed on this machine: %r" % now)

t = DebTap(timeout=1200)
before = now


def interrupted(signum, _frame):
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted("signal %d" % signum)


for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(s, interrupted)

# Each step below needs the ones before it; a step that fails ends the run.


def main():
    global daemon
    # 1. Build.
    parent = os.path.dirname(os.path.abspath(BUILDDIR))
    # What dpkg-buildpackage writes beside the tree it builds; other files in
    # the parent (a shared /tmp) are not ours to judge.
    def built(names):
        return {n for n in names if re.search(
            r"\.(deb|ddeb|udeb|changes|buildinfo|dsc)$|\.debian\.tar\.|\.orig\.tar\.", n)}
    beside = built(os.listdir(parent))
    r = run(["make", "-C", BUILDDIR, "deb"], timeout=1200)
    debdir = os.path.join(BUILDDIR, "deb-build")
    debs = {p: (glob.glob(os.path.join(debdir, "%s_*.deb" % p)) or [None])[0] for p in PKGS}
    if not t.ok(r.returncode == 0 and all(debs.values()),
                "make deb builds %s" % " and ".join(PKGS), (r.stdout + r.stderr)[-3000:]):
        return
    t.eq(sorted(built(os.listdir(parent)) - beside), [],
         "make deb writes nothing beside the tree (%s)" % parent)

    # 2. lintian: no error and no warning (overrides carry their reasons).
    changes = glob.glob(os.path.join(debdir, "*.changes"))
    r = run(["lintian", "--fail-on", "error,warning"] + changes, timeout=600)
    t.ok(r.returncode == 0, "lintian finds no error or warning", r.stdout + r.stderr)

    # 3. Install.
    r = run(["dpkg", "-i", debs["wxpushd"], debs["libwxpush-dev"]], timeout=300)
    if not t.ok(r.returncode == 0, "dpkg -i installs both packages", r.stdout + r.stderr):
        return

    # 4. What the package set up, and that nothing runs.
    t.ok(user_exists("wxpushd") and pwd.getpwnam("wxpushd").pw_uid < 1000 and
         pwd.getpwnam("wxpushd").pw_shell == "/usr/sbin/nologin",
         "the system user wxpushd exists, with nologin (sysusers.d)")
    t.eq(mode(STATE) if os.path.isdir(STATE) else None, (0o700, "wxpushd", "wxpushd"),
         "%s is 0700 wxpushd:wxpushd (tmpfiles.d)" % STATE)
    t.eq(mode(RUN) if os.path.isdir(RUN) else None, (0o755, "wxpushd", "wxpushd"),
         "%s is 0755 wxpushd:wxpushd (tmpfiles.d)" % RUN)
    t.eq(mode(CONFDIR), (0o750, "root", "wxpushd"), "%s is 0750 root:wxpushd" % CONFDIR)
    t.eq(mode(CONF), (0o640, "root", "wxpushd"), "%s is 0640 root:wxpushd" % CONF)
    r = run(["dpkg-query", "-W", "-f", "${Conffiles}", "wxpushd"])
    t.ok(CONF in r.stdout, "%s is a conffile" % CONF, r.stdout)
    conftext = open(CONF).read()
    t.ok(not re.search(r"^\s*(account|component)\s", conftext, re.M) and
         "account" in conftext, "the installed configuration has no account and says what to add")
    r = run(["systemctl", "is-enabled", "wxpushd.service", "wxpushd.socket"])
    t.eq(r.stdout.split(), ["disabled", "disabled"], "neither unit is enabled")
    if SYSTEMD:
        r = run(["systemctl", "is-active", "wxpushd.service", "wxpushd.socket"])
        t.eq(r.stdout.split(), ["inactive", "inactive"], "neither unit is active")
    t.ok(not os.path.exists(SOCK), "no daemon was started (no %s)" % SOCK)

    # 5. wxpushd -n on the installed configuration, as root and as the daemon's user.
    r = run(["/usr/sbin/wxpushd", "-n"])
    t.ok(r.returncode == 0 and "configuration OK" in r.stdout,
         "wxpushd -n accepts the installed %s" % CONF, r.stdout + r.stderr)
    r = run(["setpriv", "--reuid=wxpushd", "--regid=wxpushd", "--init-groups",
             "/usr/sbin/wxpushd", "-n"])
    t.ok(r.returncode == 0, "the user wxpushd can read it", r.stdout + r.stderr)

    # 6. An account against wxpush-mock, the installed daemon started, one message.
    mock = Mock()
    with open(SECRET_FILE, "w") as f:
        f.write(mock.accounts[APPID] + "\n")
    os.chown(SECRET_FILE, 0, grp.getgrnam("wxpushd").gr_gid)
    os.chmod(SECRET_FILE, 0o640)
    with open(CONF, "a") as f:
        f.write('\napi_base = "%s"\naccount "%s" {\n\tsecret_file = "%s.secret"\n}\n'
                % (mock.base, APPID, APPID))
    r = run(["/usr/sbin/wxpushd", "-n"])
    t.ok(r.returncode == 0, "wxpushd -n accepts it with an account added", r.stdout + r.stderr)
    logpath = os.path.join(tmpdir(), "wxpushd.log")
    if SYSTEMD:
        r = run(["systemctl", "start", "wxpushd.service"], timeout=60)
        t.ok(r.returncode == 0, "systemctl start wxpushd.service", r.stdout + r.stderr)
    else:
        # As wxpushd.service does: the user wxpushd, the installed configuration.
        log = open(logpath, "w")
        daemon = subprocess.Popen(["setpriv", "--reuid=wxpushd", "--regid=wxpushd",
                                   "--init-groups", "/usr/sbin/wxpushd"],
                                  stdout=log, stderr=log)
    started = wait_for(lambda: os.path.exists(SOCK) or
                       (daemon is not None and daemon.poll() is not None), 20)
    t.ok(os.path.exists(SOCK), "the installed daemon serves %s (systemd is %sPID 1)"
         % (SOCK, "" if SYSTEMD else "not "),
         open(logpath).read() if os.path.exists(logpath) else "")
    r = run(["/usr/bin/wxpush", "send", "--appid", APPID, "--touser", "oUSER_openid_0001",
             "--template-id", "TEMPLATE_id_0001", "--scene", "1000", "--title", "check-deb",
             "--content", "from the installed package"], timeout=60)
    t.ok(r.returncode == 0 and r.stdout.startswith("sent"),
         "the installed wxpush sends one message", r.stdout + r.stderr)
    sends = mock.sends(APPID)
    t.ok(len(sends) == 1 and "check-deb" in repr(sends), "wxpush-mock received it", sends)
    r = run(["/usr/bin/wxpush", "status"], timeout=60)
    t.ok(r.returncode == 0 and re.search(r"%s\s+official\s+valid" % APPID, r.stdout),
         "wxpush status shows the account valid", r.stdout + r.stderr)

    # 7. libwxpush-dev: a program built with pkg-config pings the daemon.
    d = tmpdir()
    with open(os.path.join(d, "ping.c"), "w") as f:
        f.write('#include <stdio.h>\n#include <wxpush.h>\n'
                'int main(void) {\n\tchar err[256], v[64];\n'
                '\tstruct wxpush *w = wxpush_open(NULL, err, sizeof err);\n'
                '\tif (w == NULL) { fprintf(stderr, "%s\\n", err); return 3; }\n'
                '\tif (wxpush_ping(w, v, sizeof v, NULL) != WXPUSH_OK) return 1;\n'
                '\tprintf("pong %s\\n", v);\n\twxpush_close(w);\n\treturn 0;\n}\n')
    flags = run(["pkg-config", "--cflags", "--libs", "wxpush"])
    r = run(["sh", "-c", "cc -o ping ping.c %s && ./ping" % flags.stdout.strip()], cwd=d)
    t.ok(flags.returncode == 0 and r.returncode == 0 and r.stdout.startswith("pong "),
         "a program linked with pkg-config --libs wxpush pings the daemon",
         flags.stdout + flags.stderr + r.stdout + r.stderr)

    # 8. Installed again (as an upgrade runs the scripts): the operator's
    # configuration, its mode and the state stay.
    r = run(["dpkg", "-i", debs["wxpushd"]], timeout=300)
    conf = open(CONF).read()
    t.ok(r.returncode == 0 and 'account "%s"' % APPID in conf and
         mode(CONF) == (0o640, "root", "wxpushd") and mode(CONFDIR)[0] == 0o750,
         "installing it again keeps the edited configuration and its mode",
         r.stdout + r.stderr)
    r = run(["/usr/bin/wxpush", "ping"], timeout=60)
    t.ok(r.returncode == 0, "the daemon still answers", r.stdout + r.stderr)

    # 9. Stop, remove (state kept), purge (state gone).
    if SYSTEMD:
        run(["systemctl", "stop", "wxpushd.service"], timeout=60)
    else:
        daemon.terminate()
        try:
            t.eq(daemon.wait(30), 0, "the daemon stops on SIGTERM and exits 0")
        except subprocess.TimeoutExpired:
            t.ok(False, "the daemon stops on SIGTERM and exits 0")
    db = os.path.join(STATE, "wxpushd.db")
    t.ok(os.path.exists(db) and mode(db)[1] == "wxpushd",
         "the daemon kept its state in %s, owned by wxpushd" % db)
    r = run(["dpkg", "--remove"] + PKGS, timeout=300)
    t.ok(r.returncode == 0 and os.path.exists(db) and os.path.exists(CONF),
         "dpkg --remove keeps the state and the configuration", r.stdout + r.stderr)
    r = run(["dpkg", "--purge"] + PKGS, timeout=300)
    t.ok(r.returncode == 0 and not os.path.exists(STATE) and not os.path.exists(RUN) and
         not os.path.exists(CONF), "dpkg --purge removes %s, %s and the conffile"
         % (STATE, RUN), r.stdout + r.stderr)
    t.ok(os.path.exists(SECRET_FILE), "purge leaves the operator's secret file")
    t.ok(not installed("wxpushd") and not installed("libwxpush-dev"),
         "both packages are gone")
    mock.stop()


try:
    main()
except Interrupted as e:
    t.ok(False, "interrupted by %s" % e)
t.done()
