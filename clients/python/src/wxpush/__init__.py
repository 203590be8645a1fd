"""Client for wxpushd: send WeChat messages through the daemon that holds the tokens.

    client = wxpush.Client()            # $WXPUSH_SOCKET or /run/wxpushd/wxpushd.sock
    client.send({"appid": ..., "touser": ..., ...}, idempotency_key="order-42")

One Client holds one connection to the daemon and pipelines every request on
it; it is thread-safe: share one Client between threads. The protocol is in
docs/protocol.md of wxpushd.
"""

import itertools
import os
import random
import socket
import threading
import time
import uuid

import msgpack

__all__ = ["Client", "WxpushError", "DEFAULT_SOCKET", "MAX_RESPONSE"]

DEFAULT_SOCKET = "/run/wxpushd/wxpushd.sock"
MAX_RESPONSE = 16 << 20         # bytes; a larger answer is a protocol error
# Methods that change nothing: a lost answer may be asked for again.
_SAFE = frozenset(("ping", "status", "stats", "delivery"))


class WxpushError(Exception):
    """A failed request: the daemon's error map, or one the client made up.

    code is the daemon's (invalid_request, unknown_method, unknown_appid,
    forbidden, busy, unavailable, timeout, revoked, wechat, internal) or the
    client's own: connect (no connection, or it was lost), protocol (the daemon
    broke the protocol) and timeout (the client's time limit passed).
    """

    def __init__(self, code, message, retryable=False, field=None, errcode=None,
                 errmsg=None, retry_after=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.retryable = bool(retryable)
        self.field = field
        self.errcode = errcode
        self.errmsg = errmsg
        self.retry_after = retry_after

    @classmethod
    def from_map(cls, m):
        """The error of a response's error map (unknown keys ignored)."""
        if not isinstance(m, dict) or not isinstance(m.get("code"), str):
            return cls("protocol", "the daemon sent an error without a code")
        ra = m.get("retry_after")
        return cls(m["code"], str(m.get("message", "")), m.get("retryable") is True,
                   m.get("field"), m.get("errcode"), m.get("errmsg"),
                   ra if isinstance(ra, int) and not isinstance(ra, bool) else None)


def _unsent(err):
    """err, marked as raised before the request reached the daemon."""
    err.unsent = True
    return err


class _Waiter:
    __slots__ = ("event", "error", "result")

    def __init__(self):
        self.event = threading.Event()
        self.error = None
        self.result = None


class _Connection:
    """One socket, its reader thread and the requests waiting on it."""

    def __init__(self, path, on_notification):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise WxpushError("connect", "cannot connect to %s: %s" % (path, e.strerror),
                              retryable=True)
        self.on_notification = on_notification
        self.lock = threading.Lock()        # pending, msgids, closed
        self.wlock = threading.Lock()       # the socket's write side
        self.pending = {}
        self.msgids = itertools.count(1)
        self.closed = None          # the WxpushError that ended it
        self.thread = threading.Thread(target=self._read, name="wxpush-reader", daemon=True)
        self.thread.start()

    def request(self, method, params, timeout):
        """Send one request and wait for its answer (result map, or raise)."""
        w = _Waiter()
        frame = [0, 0, method, [params] if params is not None else []]
        with self.lock:
            if self.closed is not None:
                raise _unsent(WxpushError("connect", self.closed.message, retryable=True))
            msgid = next(self.msgids) & 0xFFFFFFFF
            while msgid in self.pending:
                msgid = next(self.msgids) & 0xFFFFFFFF
            frame[1] = msgid
            self.pending[msgid] = w
        # Written outside self.lock: the reader must be able to take answers
        # while a large write waits for the daemon (which may be waiting for
        # its answers to be read).
        try:
            with self.wlock:
                self.sock.sendall(msgpack.packb(frame, use_bin_type=True))
        except OSError as e:
            err = WxpushError("connect", "connection lost: %s" % e.strerror, retryable=True)
            with self.lock:
                self.pending.pop(msgid, None)
                self._fail_locked(err)
            # Nothing (or a part the daemon drops) was written: safe to repeat.
            raise _unsent(err)
        if not w.event.wait(timeout):
            with self.lock:
                self.pending.pop(msgid, None)
            raise WxpushError("timeout", "no answer within %gs; the request may still be "
                              "carried out" % timeout)
        if w.error is not None:
            e = w.error
            if e.code == "connect":
                # Written, then the connection died: only repeatable when harmless.
                e = WxpushError("connect", e.message,
                                retryable=method in _SAFE or "idempotency_key" in (params or {}))
            raise e
        return w.result

    def _read(self):
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_RESPONSE)
        err = None
        try:
            while err is None:
                data = self.sock.recv(65536)
                if not data:
                    err = WxpushError("connect", "the daemon closed the connection",
                                      retryable=True)
                    break
                unpacker.feed(data)
                for msg in unpacker:
                    err = self._dispatch(msg)
                    if err is not None:
                        break
        except msgpack.BufferFull:
            err = WxpushError("protocol", "an answer over %d bytes" % MAX_RESPONSE)
        except (ValueError, msgpack.UnpackException) as e:
            err = WxpushError("protocol", "not MessagePack: %s" % e)
        except OSError as e:
            err = WxpushError("connect", "connection lost: %s" % e.strerror, retryable=True)
        with self.lock:
            self._fail_locked(err)

    def _dispatch(self, msg):
        """Hand one message to its waiter; an error if it breaks the protocol."""
        if isinstance(msg, (list, tuple)) and len(msg) == 3 and msg[0] == 2 \
                and isinstance(msg[1], str):
            if self.on_notification is not None:
                try:
                    self.on_notification(msg[1], msg[2])
                except Exception:   # the caller's bug must not kill the reader
                    pass
            return None
        if not (isinstance(msg, (list, tuple)) and len(msg) == 4 and msg[0] == 1
                and isinstance(msg[1], int) and (msg[2] is None) != (msg[3] is None)
                and (msg[3] is None or isinstance(msg[3], dict))):
            return WxpushError("protocol", "the daemon sent something that is not a response")
        with self.lock:
            w = self.pending.pop(msg[1], None)
        if w is None:           # an answer we gave up waiting for
            return None
        if msg[2] is not None:
            w.error = WxpushError.from_map(msg[2])
        else:
            w.result = msg[3]
        w.event.set()
        return None

    def _fail_locked(self, err):
        if self.closed is None:
            self.closed = err
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for w in self.pending.values():
            w.error = err
            w.event.set()
        self.pending.clear()

    def close(self):
        with self.lock:
            self._fail_locked(WxpushError("connect", "the client was closed"))
        self.thread.join(5)
        self.sock.close()


class Client:
    """A wxpushd client: one pipelined connection, opened on first use and
    opened again after it is lost.

    timeout: seconds to wait for each answer (the daemon answers a send within
    its send_timeout, 30 s by default). retries: how many times a retryable
    error is retried, waiting backoff, doubled each time up to max_backoff
    (with jitter), or the daemon's retry_after; a retry_after longer than
    max_retry_after is not waited for: the error is raised. With retries, a
    send or enqueue without an idempotency key gets a random one, so that a
    retry never delivers twice. on_notification(method, params) is called on
    the reader thread for the daemon's notifications (a watched delivery).
    """

    def __init__(self, path=None, timeout=35.0, retries=0, backoff=0.2, max_backoff=5.0,
                 max_retry_after=10.0, on_notification=None):
        self.path = path or os.environ.get("WXPUSH_SOCKET") or DEFAULT_SOCKET
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.on_notification = on_notification
        self._lock = threading.Lock()
        self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self):
        with self._lock:
            if self._conn is None or self._conn.closed is not None:
                old, self._conn = self._conn, _Connection(self.path, self.on_notification)
                if old is not None:
                    old.sock.close()
            return self._conn

    def request(self, method, params=None, timeout=None, retries=None):
        """Any method: its result map, or raise WxpushError."""
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        delay = self.backoff
        attempt = 0
        fresh = False
        while True:
            try:
                return self._connection().request(method, params, timeout)
            except WxpushError as e:
                if getattr(e, "unsent", False) and not fresh:
                    # The kept connection died while idle (a daemon restart):
                    # one more try on a new one, whatever retries says.
                    fresh = True
                    continue
                if not e.retryable or attempt >= retries:
                    raise
                if e.retry_after is not None and e.retry_after > self.max_retry_after:
                    raise
                wait = e.retry_after if e.retry_after else random.uniform(delay / 2, delay)
                delay = min(delay * 2, self.max_backoff)
                attempt += 1
                time.sleep(wait)

    def _keyed(self, params, idempotency_key, retries):
        params = dict(params)
        if idempotency_key is not None:
            params["idempotency_key"] = idempotency_key
        elif "idempotency_key" not in params and (self.retries if retries is None else retries):
            params["idempotency_key"] = "wxpush-py-" + uuid.uuid4().hex
        return params

    def ping(self, **kw):
        """{version, protocol}."""
        return self.request("ping", None, **kw)

    def status(self, appid=None, **kw):
        """The credentials' state (all the caller may see, or one appid)."""
        return self.request("status", {"appid": appid} if appid else {}, **kw)

    def stats(self, **kw):
        """The daemon's counters."""
        return self.request("stats", None, **kw)

    def send(self, message, idempotency_key=None, timeout=None, retries=None):
        """Send one message now: {errcode, errmsg, attempts}, or raise."""
        return self.request("send", self._keyed(message, idempotency_key, retries),
                            timeout, retries)

    def enqueue(self, message, not_after=None, watch=False, idempotency_key=None,
                timeout=None, retries=None):
        """Queue one message in the daemon's outbox; its id once it is on disk."""
        params = self._keyed(message, idempotency_key, retries)
        if not_after is not None:
            params["not_after"] = int(not_after)
        if watch:
            params["watch"] = True
        return self.request("enqueue", params, timeout, retries)["id"]

    def enqueue_batch(self, messages, timeout=None, retries=None):
        """Queue up to 1000 messages at once (all or none); their ids."""
        msgs = [self._keyed(m, None, retries) for m in messages]
        return self.request("enqueue", {"messages": msgs}, timeout, retries)["ids"]

    def delivery(self, id, **kw):
        """A queued message's {id, state, attempts, created_at, updated_at, ...}."""
        return self.request("delivery", {"id": id}, **kw)

    def call(self, appid, path, method="GET", query=None, body=None, timeout=None,
             retries=None):
        """Any allowed WeChat API with the appid's token: WeChat's answer as a dict."""
        params = {"appid": appid, "path": path, "method": method}
        if query is not None:
            params["query"] = query
        if body is not None:
            params["body"] = body
        return self.request("call", params, timeout, retries)
