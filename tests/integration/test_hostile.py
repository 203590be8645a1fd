"""Hostile clients: 1,000 connections sending garbage, partial frames, huge
declared sizes, trickles and floods, while a well-behaved client keeps sending
real messages through wxpush-mock. Every good send must succeed, the daemon's
memory must stay bounded, and it must never crash."""

import heapq
import os
import random
import resource
import selectors
import socket
import threading
import time

import msgpack

from wxtest import WXPUSHD, Daemon, Mock, Tap, message, wait_for

DURATION = 30           # seconds of hostile traffic
PER_KIND = 125          # connections per kind; 8 kinds: 1,000
RSS_LIMIT = 128 << 10   # KiB

t = Tap(timeout=150)

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

# Under AddressSanitizer freed memory is held in quarantine (256 MiB by
# default) and counts in RSS: keep the quarantine small so the limit holds.
with open(WXPUSHD, "rb") as f:
    if b"__asan_init" in f.read():
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                      ":quarantine_size_mb=16").lstrip(":")

mock = Mock()
d = Daemon(mock=mock)
pid = d.proc.pid


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ping takes no params: an unknown key would be answered invalid_request,
# and floods count successful answers ([1, 1, nil, ...]).
PING = msgpack.packb([0, 1, "ping", []])
NOTIFY = msgpack.packb([2, "ping", []])
SEND = msgpack.packb([0, 7, "send", [message()]])
HUGE = [b"\xdd\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff", b"\x94\x00\x01\xa4ping\x91\xde\xff\xff",
        b"\x94\x00\x01\xa4send\x91\xdf\x7f\xff\xff\xff", b"\xc9\xff\xff\xff\xff\x01"]
KINDS = ["garbage", "huge", "partial", "bigpartial", "trickle", "flood", "hog", "notify"]


class Conn:
    def __init__(self, kind):
        self.kind = kind
        self.sock = None
        self.next = 0.0
        self.pos = 0
        self.unpacker = msgpack.Unpacker()


stats = {k: {"connects": 0, "closed": 0, "answers": 0} for k in KINDS}
stop = threading.Event()
hostile_error = []


def connect(c, sel, now):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(d.sock)
    except OSError:
        s.close()
        c.next = now + 0.2
        return
    s.setblocking(False)
    c.sock, c.pos, c.unpacker = s, 0, msgpack.Unpacker()
    stats[c.kind]["connects"] += 1
    if c.kind != "hog":             # a hog never reads
        sel.register(s, selectors.EVENT_READ, c)
    try:
        if c.kind == "garbage":
            s.send(b"\xc1" + os.urandom(random.randint(1, 4096)))
        elif c.kind == "huge":
            s.send(random.choice(HUGE))
        elif c.kind == "partial":
            s.send(SEND[:random.randint(1, len(SEND) - 1)])
        elif c.kind == "bigpartial":        # a 60 KB string declared, 1 KB sent
            s.send(b"\x94\x00\x01\xa4ping\x91\x81\xa3pad\xda\xea\x60" + b"y" * 1024)
    except OSError:
        pass
    c.next = now + 0.1


def drop(c, sel, now):
    sel.unregister(c.sock)
    c.sock.close()
    c.sock = None
    stats[c.kind]["closed"] += 1
    c.next = now + 0.2              # then connect again


def tick(c, now):
    s = c.sock
    try:
        if c.kind == "trickle":
            if c.pos < len(PING):
                s.send(PING[c.pos:c.pos + 1])
                c.pos += 1
            c.next = now + 0.1
        elif c.kind in ("flood", "hog"):
            s.send(PING * 200)
            c.next = now + 0.1
        elif c.kind == "notify":
            s.send(NOTIFY * 500)
            c.next = now + 0.1
        else:
            c.next = now + 1
    except BlockingIOError:
        c.next = now + 0.05
    except OSError:
        c.next = now + 0.05


def hostile():
    sel = selectors.DefaultSelector()
    conns = [Conn(k) for k in KINDS for _ in range(PER_KIND)]
    random.shuffle(conns)
    due = [(0.0, i) for i in range(len(conns))]     # (when, index): a heap
    try:
        while not stop.is_set():
            now = time.time()
            while due and due[0][0] <= now:
                _, i = heapq.heappop(due)
                c = conns[i]
                if c.sock is None:
                    connect(c, sel, now)
                else:
                    tick(c, now)
                heapq.heappush(due, (c.next, i))
            wait = min(max(due[0][0] - time.time(), 0), 0.05) if due else 0.05
            for key, _ in sel.select(wait):
                c = key.data
                try:
                    data = c.sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    drop(c, sel, time.time())
                    continue
                if c.kind == "trickle":
                    c.unpacker.feed(data)
                    for m in c.unpacker:
                        stats[c.kind]["answers"] += 1
                        c.pos = 0
                elif c.kind == "flood":
                    stats[c.kind]["answers"] += data.count(b"\x94\x01\x01\xc0")
    except Exception as e:          # reported, never hidden
        hostile_error.append(repr(e))
    finally:
        for c in conns:
            if c.sock is not None:
                c.sock.close()
        sel.close()


good = {"ok": 0, "errors": [], "max": 0.0}


def good_client():
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = d.client()
            t0 = time.time()
            err, res = c.call("send", message(), timeout=30)
            good["max"] = max(good["max"], time.time() - t0)
            if err is None:
                good["ok"] += 1
            else:
                good["errors"].append(err)
        except Exception as e:
            good["errors"].append(repr(e))
            c = None
        time.sleep(0.05)


err, res = d.call("send", message())
t.ok(err is None, "a first send gets the token", err)
rss0 = rss_kib()
threads = [threading.Thread(target=hostile), threading.Thread(target=good_client)]
for th in threads:
    th.start()
peak, clients_peak, end = rss0, 0, time.time() + DURATION
while time.time() < end and d.proc.poll() is None:
    peak = max(peak, rss_kib())
    if int(end - time.time()) % 5 == 0:
        try:
            clients_peak = max(clients_peak, d.call("stats", timeout=10)[1]["clients"])
        except Exception:
            pass
    time.sleep(0.5)
stop.set()
for th in threads:
    th.join(30)

t.ok(d.proc.poll() is None, "the daemon is still running")
t.eq(hostile_error, [], "the hostile clients ran without a hitch")
t.ok(clients_peak >= 6 * PER_KIND - 50, "the %d long-lived hostile connections were "
     "open at once (%d)" % (6 * PER_KIND, clients_peak))
t.ok(good["ok"] >= 20 and good["errors"] == [],
     "every good send succeeded (%d, slowest %.2f s)" % (good["ok"], good["max"]),
     good["errors"][:5])
t.ok(peak < RSS_LIMIT, "the daemon's RSS stayed under %d MiB (%d KiB at the start, "
     "%d KiB at the peak)" % (RSS_LIMIT >> 10, rss0, peak))
t.diag("connections per kind (made/closed by the daemon, answers): " + ", ".join(
    "%s %d/%d/%d" % (k, v["connects"], v["closed"], v["answers"]) for k, v in stats.items()))
for k in ("garbage", "huge"):
    t.ok(stats[k]["closed"] >= stats[k]["connects"] - PER_KIND and stats[k]["closed"] > 0,
         "%s connections are closed by the daemon" % k)
t.ok(stats["trickle"]["answers"] >= PER_KIND, "trickled requests are answered (%d)"
     % stats["trickle"]["answers"])
t.ok(stats["flood"]["answers"] > 10000, "floods are answered (%d)" % stats["flood"]["answers"])
t.ok(wait_for(lambda: d.call("stats")[1]["clients"] == 1, 10),
     "every hostile connection is gone once closed")
err, res = d.call("send", message())
t.ok(err is None, "and the daemon still sends", err)
t.eq(d.stop(), 0, "SIGTERM exits 0")

t.done()
