"""Two daemons sharing a platform's authorizers through Redis behind Sentinel
(three sentinels, a master and a replica, Debian's redis-sentinel): they find
the master through the sentinels, refuse a "master" that is a replica (ROLE),
and follow a failover that lost the last refresh-token rotation (the replica
was held back, then the master killed right after the rotation): every
authorizer still refreshes on both hosts, no 61023, no api_get_authorizer_list
walk, and the new master gets the latest refresh tokens back."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

from wxtest import (COMPONENT, COMPONENT_KEY, COMPONENT_SECRET, COMPONENT_TOKEN,
                    COMPONENTS, Daemon, Mock, Tap, free_port, message, tmpdir,
                    wait_for)

REDIS = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
SENTINEL = shutil.which("redis-sentinel")
if REDIS is None or REDIS_CLI is None or SENTINEL is None:
    print("1..0 # SKIP redis-server or redis-sentinel is not installed "
          "(apt-get install redis-server redis-sentinel)")
    sys.exit(0)

AUTH_EP = "/cgi-bin/component/api_authorizer_token"
LIST_EP = "/cgi-bin/component/api_get_authorizer_list"
AUTHS = ("wxauthorizer000001", "wxauthorizer000002", "wxauthorizer000003")
NAME = "wxmaster"

t = Tap(timeout=240)
rdir = tmpdir()
rlog = open(os.path.join(rdir, "redis.log"), "a")
MPORT, RPORT = free_port(), free_port()
SPORTS = [free_port() for _ in range(3)]
procs = {}


def cli(port, *args):
    r = subprocess.run([REDIS_CLI, "-p", str(port)] + list(args), capture_output=True,
                       text=True, timeout=5)
    return r.stdout.strip() if r.returncode == 0 else None


def server(port, *args):
    d = os.path.join(rdir, str(port))
    os.makedirs(d, exist_ok=True)
    p = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--daemonize", "no", "--dir", d] + list(args),
                         stdout=rlog, stderr=rlog)
    procs[port] = p
    if not wait_for(lambda: cli(port, "PING") == "PONG", 10, 0.05):
        raise RuntimeError("redis-server on %d did not start" % port)
    return p


def sentinel(port):
    # Sentinel rewrites its configuration file: one per sentinel, ours.
    conf = os.path.join(rdir, "sentinel-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                "sentinel monitor %s 127.0.0.1 %d 2\n"
                "sentinel down-after-milliseconds %s 1000\n"
                "sentinel failover-timeout %s 10000\n"
                "sentinel parallel-syncs %s 1\n"
                % (port, rdir, NAME, MPORT, NAME, NAME, NAME))
    p = subprocess.Popen([SENTINEL, conf], stdout=rlog, stderr=rlog)
    procs[port] = p
    if not wait_for(lambda: cli(port, "PING") == "PONG", 10, 0.05):
        raise RuntimeError("redis-sentinel on %d did not start" % port)
    return p


def master_info(sport):
    out = cli(sport, "SENTINEL", "master", NAME)
    if not out:
        return {}
    lines = out.split("\n")
    return dict(zip(lines[0::2], lines[1::2]))


def master_port(sport):
    out = cli(sport, "SENTINEL", "get-master-addr-by-name", NAME)
    lines = (out or "").split("\n")
    return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None


def row(d, appid):
    with sqlite3.connect(os.path.join(d.state, "wxpushd.db"), timeout=5) as c:
        return c.execute("SELECT refresh_token, revoked FROM authorizers WHERE appid = ?",
                         (appid,)).fetchone()


def cred(d, appid):
    for c in d.status()["credentials"]:
        if c["appid"] == appid:
            return c
    return None


def state(d, appid):
    return (cred(d, appid) or {}).get("state")


def errors():
    return mock.stats()["errors"].get(AUTH_EP, 0)


def stop_all():
    for p in procs.values():
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()


try:
    # A master, its replica, three sentinels that agree on both.
    server(MPORT)
    server(RPORT, "--replicaof", "127.0.0.1", str(MPORT))
    t.ok(wait_for(lambda: "master_link_status:up" in (cli(RPORT, "INFO", "replication") or ""),
                  15, 0.1), "the replica follows the master")
    for sp in SPORTS:
        sentinel(sp)
    t.ok(wait_for(lambda: all(master_info(sp).get("num-other-sentinels") == "2" and
                              master_info(sp).get("num-slaves") == "1" for sp in SPORTS),
                  30, 0.2), "three sentinels know the master, its replica and each other",
         [master_info(sp) for sp in SPORTS])

    # A daemon told of a "master" that is a replica never takes it for one.
    cli(SPORTS[0], "SENTINEL", "MONITOR", "wxwrong", "127.0.0.1", str(RPORT), "2")
    wrong = Daemon(extra='redis_sentinels = "127.0.0.1:%d"\nredis_master = "wxwrong"'
                   % SPORTS[0])
    t.ok(wait_for(lambda: "is not a master (ROLE)" in wrong.logtext(), 10),
         "a replica named as the master is refused (ROLE)", wrong.logtext()[-2000:])
    t.eq(wrong.status()["redis"], "unreachable", "and the daemon stays in local mode")
    t.eq(wrong.stop(), 0, "that daemon stops cleanly")
    cli(SPORTS[0], "SENTINEL", "REMOVE", "wxwrong")

    mock = Mock(components=COMPONENTS)
    comp = {COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN, COMPONENT_KEY)}
    # Sentinels in a list with a dead one first: the daemons go on to the next.
    dead = free_port()
    extra = ('redis_sentinels = "127.0.0.1:%d, 127.0.0.1:%d,127.0.0.1:%d, 127.0.0.1:%d"\n'
             'redis_master = "%s/0"' % (dead, SPORTS[0], SPORTS[1], SPORTS[2], NAME))
    a = Daemon(mock=mock, components=comp, callback=True, start=False, extra=extra)
    mock.config(event_url=a.callback_url)
    a.start()
    b = Daemon(mock=mock, components=comp, extra=extra)
    at_master = "connected to the master at 127.0.0.1:%d" % MPORT
    t.ok(wait_for(lambda: a.status()["redis"] == "connected" and
                  b.status()["redis"] == "connected", 20),
         "both daemons find the master through the sentinels")
    t.ok(at_master in a.logtext() and at_master in b.logtext(), "the master's address")
    t.ok(wait_for(lambda: state(a, COMPONENT) == "valid" and state(b, COMPONENT) == "valid",
                  15), "both hosts have the component token")
    for x in AUTHS:
        r = mock.component_event("authorized", x)
        t.ok(r["reply"] == "success" and wait_for(lambda: state(b, x) == "valid", 10),
             "authorized on a, reaches b through Redis", cred(b, x))

    # The rotation the replica never sees: hold the replica, rotate every
    # authorizer's refresh token, kill the master right after.
    mock.config(rotate_refresh_token=True)
    # Stopped, and cut off by the master: the rotations reach the master only
    # (not even the replica's socket buffer).
    procs[RPORT].send_signal(signal.SIGSTOP)
    cli(MPORT, "CLIENT", "KILL", "TYPE", "replica")
    latest = {}
    calls, errs = mock.calls(AUTH_EP), errors()
    for i, x in enumerate(AUTHS):
        host, other = (a, b) if i % 2 == 0 else (b, a)
        rt0 = row(host, x)[0]
        mock.invalidate(x)
        err, res = host.call("send", message(appid=x))
        t.ok(err is None and res["errcode"] == 0, "%s: a send refreshes (rotation)" % x, err)
        latest[x] = row(host, x)[0]
        t.ok(latest[x] != rt0, "%s: the rotated refresh token is committed" % x)
        t.ok(wait_for(lambda: row(other, x)[0] == latest[x], 5, 0.05),
             "%s: and reaches the other host" % x)
        t.ok(latest[x] in (cli(MPORT, "GET", "wxpushd:authorizer:" + x) or ""),
             "%s: the master holds it" % x)
    t.eq(mock.calls(AUTH_EP) - calls, len(AUTHS), "one api_authorizer_token call each")
    # When each host got its token (refreshed or taken from the other): a host's
    # own token written back to the new master must not count as new (its
    # refusal would then not refresh for a minute).
    refreshed = {(d.dir, x): cred(d, x)["refreshed_at"] for d in (a, b) for x in AUTHS}
    time.sleep(1.5)
    procs[MPORT].kill()
    procs[MPORT].wait()
    killed = time.monotonic()
    procs[RPORT].send_signal(signal.SIGCONT)
    seen = [x for x in AUTHS
            if latest[x] in (cli(RPORT, "GET", "wxpushd:authorizer:" + x) or "")]
    t.eq(seen, [], "the replica missed the rotations (replication is asynchronous)")

    # Sentinel promotes the replica; the daemons follow.
    t.ok(wait_for(lambda: all(master_port(sp) == RPORT for sp in SPORTS), 60, 0.2),
         "the sentinels promote the replica", [master_port(sp) for sp in SPORTS])
    at_new = "connected to the master at 127.0.0.1:%d" % RPORT
    t.ok(wait_for(lambda: at_new in a.logtext() and at_new in b.logtext() and
                  a.status()["redis"] == "connected" and
                  b.status()["redis"] == "connected", 30),
         "both daemons follow the failover to the new master")
    t.diag("from the master's death to both daemons on the new master: %.1f s"
           % (time.monotonic() - killed))
    t.ok(wait_for(lambda: all(latest[x] in (cli(RPORT, "GET", "wxpushd:authorizer:" + x) or "")
                              for x in AUTHS), 15, 0.1),
         "the new master gets the latest refresh tokens back from the hosts' stores")
    t.ok(wait_for(lambda: all(cli(RPORT, "EXISTS", "wxpushd:token:" + x) == "1" for x in AUTHS),
                  15, 0.1), "and the hosts' access tokens")
    time.sleep(1)
    now = {(d.dir, x): cred(d, x)["refreshed_at"] for d in (a, b) for x in AUTHS}
    t.eq(now, refreshed, "the hosts' own tokens written back are not taken as new ones")
    if now != refreshed:
        for d in (a, b):
            t.diag("\n".join(ln for ln in d.logtext().split("\n")
                             if "redis" in ln or AUTHS[2] in ln))

    # Every authorizer still refreshes, on both hosts, without a 61023: first
    # on the host that did not fetch its token (a token refused seconds after
    # its own fetch trips that host's breaker, by design), then on the other.
    calls, errs = mock.calls(AUTH_EP), errors()
    for rnd in (1, 0):
        for i, x in enumerate(AUTHS):
            host, other = (a, b) if i % 2 == rnd else (b, a)
            mock.invalidate(x)
            err, res = host.call("send", message(appid=x))
            t.ok(err is None and res["errcode"] == 0, "%s refreshes after the failover" % x,
                 (err, [ln for ln in host.logtext().split("\n") if x in ln or "redis" in ln]))
            t.ok(wait_for(lambda: row(other, x) == row(host, x), 5, 0.05),
                 "%s: both stores hold the same refresh token" % x)
    t.eq(errors() - errs, 0, "no 61023 (no refresh token lost or replaced by an older one)")
    t.eq(mock.calls(AUTH_EP) - calls, 2 * len(AUTHS), "one api_authorizer_token call each")
    t.eq(mock.calls(LIST_EP), 0, "no api_get_authorizer_list walk: nobody re-authorizes")
    t.ok(all(state(d, x) == "valid" for d in (a, b) for x in AUTHS), "all authorizers valid")

    # A promoted replica's older token that expires in the same second as the
    # hosts' (issued in the same second) must not win when they write theirs
    # back: the higher generation does.
    x = AUTHS[0]
    v = cli(RPORT, "GET", "wxpushd:token:" + x)
    gen, exp, tok = v.split(":", 2)
    t.ok(int(gen) > 1, "the hosts' token has a generation above 1", v[:20])
    before = {d.dir: cred(d, x)["refreshed_at"] for d in (a, b)}
    time.sleep(1.1)
    cli(RPORT, "SET", "wxpushd:token:" + x, "1:%s:stale%s" % (exp, tok[5:]))
    cli(RPORT, "CLIENT", "KILL", "TYPE", "normal")
    t.ok(wait_for(lambda: (cli(RPORT, "GET", "wxpushd:token:" + x) or "").endswith(":" + tok),
                  15, 0.1), "the hosts write their token back over the older one")
    t.ok(wait_for(lambda: a.status()["redis"] == "connected" and
                  b.status()["redis"] == "connected", 10), "both reconnected")
    t.eq({d.dir: cred(d, x)["refreshed_at"] for d in (a, b)}, before,
         "and neither took the older one")

    for d in (a, b):
        t.eq(d.stop(), 0, "daemon stops cleanly")
finally:
    stop_all()
t.done()
