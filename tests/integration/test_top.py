"""wxpush top against a real daemon: two frames a second apart in batch mode
(stdout not a terminal), the second with sends per second by appid and
outcome, latency, the credential's state and token lifetime and the queue;
the screen redrawn with ANSI on a terminal; its usage errors; and exit 3
without a daemon."""

import os
import pty
import re
import subprocess
import threading
import time

from wxtest import APPID, SECRET, WXPUSH, Daemon, Mock, Tap, message, tmpdir, wait_for

APPID2 = "wx00000000000000b2"

t = Tap(timeout=120)
mock = Mock(accounts={APPID: SECRET, APPID2: "the-real-secret-of-b2-0000000000"})
d = Daemon(mock=mock, accounts={APPID: SECRET, APPID2: "a-wrong-secret-000000000000000000"})
t.ok(wait_for(lambda: d.cred(APPID2)["failures"] >= 1, 10),
     "the second appid's token refresh fails (wrong secret)")

# Steady traffic while top watches: sends that succeed for the first appid,
# and sends for the second, answered unavailable (it has no token).
stop = threading.Event()


def load():
    c = d.client()
    while not stop.is_set():
        c.call("send", message())
        c.call("send", message(appid=APPID2))
        time.sleep(0.005)
    c.close()


th = threading.Thread(target=load)
th.start()
time.sleep(0.3)
start = time.monotonic()
r = d.wxpush("top", "-n", "2")
elapsed = time.monotonic() - start
stop.set()
th.join()
out = r.stdout
t.eq(r.returncode, 0, "wxpush top -n 2 exits 0")
t.ok(0.9 <= elapsed < 8, "its two frames are a second apart (%.2f s in all)" % elapsed)
t.ok("\033" not in out, "no escape sequences when stdout is not a terminal")
frames = re.split(r"\n(?=wxpushd )", out.strip("\n"))
t.ok(len(frames) == 2, "two frames", out)
first, second = frames[0], frames[-1]
t.ok(re.match(r"wxpushd \S+, up \d+s, clients \d+, upstream in flight \d+, "
              r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n", first), "a header line", first)
t.ok(re.search(r"^sends/s - ", first, re.M), "the first frame has no rates yet", first)

m = re.search(r"^sends/s ([0-9.]+) \(ok ([0-9.]+), failed ([0-9.]+)\)", second, re.M)
t.ok(m and float(m.group(2)) > 0 and float(m.group(3)) > 0,
     "the second: sends per second, ok and failed", second)
m = re.search(r"latency p50 (\S+) p90 (\S+) p99 (\S+) mean (\S+)", second)
t.ok(m and all(re.match(r"[0-9.]+(us|ms|s)$", v) for v in m.groups()),
     "latency quantiles and mean of the last second", second)
t.ok(re.search(r"^APPID +KIND +STATE +TOKEN +CALLS +FAIL +QUEUED +INFLIGHT +OK/S +FAILED/S$",
               second, re.M), "the credentials table's heading", second)
row = re.search(r"^%s +official +valid +(\S+) +(\d+) +(\d+) +(\d+) +(\d+) +([0-9.]+) +([0-9.]+)$"
                % APPID, second, re.M)
t.ok(row is not None, "a row for the account: official, valid", second)
if row:
    t.ok(re.match(r"1h5\dm|2h00m", row.group(1)), "its token's lifetime (about 2 h)",
         row.group(1))
    t.eq(row.group(2), "1", "one token call today")
    t.ok(float(row.group(6)) > 0 and float(row.group(7)) == 0,
         "ok sends per second for the appid, none failed", row.group(0))
row2 = re.search(r"^%s +official +failed +0s +\d+ +(\d+) +\d+ +\d+ +([0-9.]+) +([0-9.]+)$"
                 % APPID2, second, re.M)
t.ok(row2 and int(row2.group(1)) >= 1 and float(row2.group(2)) == 0 and
     float(row2.group(3)) > 0,
     "the second appid: failed, no token, its failures, failed sends per second", second)
t.ok(re.search(r"^  %s: unavailable [0-9.]+/s$" % APPID2, second, re.M),
     "its failing outcome by name", second)
t.ok(not re.search(r"^  %s: " % APPID, second, re.M), "no failing outcome for the first")

# On a terminal: each frame clears the screen.
pid, fd = pty.fork()
if pid == 0:
    os.execv(WXPUSH, [WXPUSH, "-s", d.sock, "top", "-n", "1"])
data = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
t.ok(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and
     data.startswith(b"\033[H\033[2Jwxpushd "),
     "on a terminal a frame starts by clearing the screen", data[:80])
r = d.wxpush("top", "-b", "-n", "1")
t.ok(r.returncode == 0 and r.stdout.startswith("wxpushd ") and "\033" not in r.stdout,
     "-b: batch output", r.stdout)

# Usage errors, and no daemon.
for args, what in ((["top", "-n", "0"], "-n 0"), (["top", "-n", "x"], "-n x"),
                   (["--json", "top"], "--json"), (["top", "extra"], "an argument"),
                   (["top", "--appid", APPID], "--appid")):
    r = d.wxpush(*args)
    t.ok(r.returncode == 2 and r.stderr.startswith("wxpush: top: "),
         "top refuses %s (exit 2)" % what, r.stderr)
r = subprocess.run([WXPUSH, "-s", os.path.join(tmpdir(), "none.sock"), "top", "-n", "1"],
                   capture_output=True, text=True, timeout=30)
t.ok(r.returncode == 3 and "connect" in r.stderr, "no daemon: exit 3", r.stderr)
t.done()
