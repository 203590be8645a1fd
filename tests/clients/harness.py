"""The real wxpushd and wxpush-mock for the client libraries' own test suites.

Started by a client's tests (clients/*/): it starts wxpush-mock on 127.0.0.1
and wxpushd on a private Unix socket (tests/integration/wxtest.py does both),
prints one JSON line describing them, then obeys one JSON command per line on
stdin and answers each with one JSON line. End of input stops everything.

Commands: {"op": "stop"} (SIGTERM), {"op": "kill"} (SIGKILL), {"op": "start"},
{"op": "restart"}, {"op": "fault", "path": P, "count": N, ...} (the mock's
POST /mock/fault), {"op": "sends"} ({"n": sends the mock has recorded}).
Every answer has "ok" (true, or false with "error").
"""

import json
import os
import signal
import subprocess
import sys

import wxtest

# The `call` test's path: allowed in the account's `apis` list when the
# daemon knows that setting (issue #16), left out while it does not.
CALL_PATH = "/cgi-bin/getcallbackip"
PROBED = ("enqueue", "delivery", "call")


def accepts(daemon, account_extra):
    """Whether wxpushd -n accepts the configuration with account_extra."""
    daemon.write_conf(daemon.default_conf(account_extra=account_extra))
    r = subprocess.run([wxtest.WXPUSHD, "-n", "-f", daemon.conf],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def methods(daemon):
    """Which of the methods other branches add the daemon knows."""
    c = daemon.client()
    try:
        known = {}
        for m in PROBED:
            err, _ = c.call(m, {}, timeout=10)
            known[m] = not (err and err.get("code") == "unknown_method")
        return known
    finally:
        c.close()


def main():
    # Our stdout is the command channel: keep the children's output off it.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    mock = wxtest.Mock()
    daemon = wxtest.Daemon(mock, start=False)
    apis = 'apis = {"%s"}' % CALL_PATH
    if not accepts(daemon, apis):
        apis = ""
    daemon.account_extra = apis
    daemon.write_conf()
    daemon.start()
    out.write(json.dumps({"ok": True, "socket": daemon.sock, "appid": wxtest.APPID,
                          "mock": mock.base, "call_path": CALL_PATH if apis else None,
                          "methods": methods(daemon)}) + "\n")
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd.pop("op")
            ans = {"ok": True}
            if op in ("stop", "restart"):
                daemon.stop()
            if op == "kill":
                daemon.stop(signal.SIGKILL)
            if op in ("start", "restart"):
                daemon.start()
            if op == "fault":
                ans.update(mock.fault(cmd.pop("path"), cmd.pop("count", 1), **cmd))
            if op == "sends":
                ans["n"] = len(mock.sends())
            if op not in ("stop", "kill", "start", "restart", "fault", "sends"):
                ans = {"ok": False, "error": "unknown op %r" % op}
        except Exception as e:  # the client's test reports it
            ans = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(ans) + "\n")
    daemon.stop()
    mock.stop()
    wxtest._cleanup()


if __name__ == "__main__":
    main()
