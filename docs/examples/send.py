#!/usr/bin/env python3
"""Send one subscription message through wxpushd, from Python.

A client written from docs/protocol.md with the msgpack package (Debian:
python3-msgpack). It sends one message with an idempotency_key, retries what
the daemon says is retryable (honouring retry_after, else backing off
exponentially with jitter), and reports anything final.

    send.py [-s SOCKET] --appid A --touser OPENID --template-id T --scene S \
            --title TEXT --content TEXT [--max-attempts N] [--max-wait SECONDS]

Exit status: 0 sent; 1 refused, or still failing after the retries; 2 usage;
3 wxpushd cannot be reached.
"""

import argparse
import itertools
import os
import random
import socket
import sys
import time
import uuid

import msgpack

DEFAULT_SOCKET = "/run/wxpushd/wxpushd.sock"


class Unreachable(Exception):
    """The daemon could not be reached, or the connection broke."""


class Client:
    """One connection to wxpushd; requests are matched to answers by msgid."""

    def __init__(self, path, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Unreachable("cannot connect to %s: %s" % (path, e.strerror)) from e
        # Bound what we accept, as the protocol advises.
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=16 << 20)
        self.msgids = itertools.count(1)

    def close(self):
        self.sock.close()

    def call(self, method, params=None):
        """(error, result) of one request: exactly one of them is None."""
        msgid = next(self.msgids) & 0xFFFFFFFF
        frame = msgpack.packb([0, msgid, method, [params] if params is not None else []],
                              use_bin_type=True)
        try:
            self.sock.sendall(frame)
            while True:
                for msg in self.unpacker:
                    if isinstance(msg, list) and len(msg) == 4 and msg[0] == 1 \
                            and msg[1] == msgid:
                        return msg[2], msg[3]
                    # An answer to some other msgid: not ours, skip it.
                data = self.sock.recv(65536)
                if not data:
                    raise Unreachable("wxpushd closed the connection")
                self.unpacker.feed(data)
        except (OSError, msgpack.exceptions.BufferFull) as e:
            raise Unreachable("connection to wxpushd lost: %s" % e) from e


def describe(err):
    """One line for a person from an error map (never parse 'message')."""
    line = "%s: %s" % (err.get("code", "error"), err.get("message", ""))
    if "field" in err:
        line += " (field %s)" % err["field"]
    if "errcode" in err:
        line += " (WeChat errcode %s: %s)" % (err["errcode"], err.get("errmsg", ""))
    return line


def send(path, params, max_attempts, max_wait):
    """Send params; returns the exit status."""
    # The same key on every attempt: a repeat of a message that did go out is
    # answered from the daemon's memory instead of being delivered twice.
    params = dict(params, idempotency_key=uuid.uuid4().hex)
    client = None
    for attempt in range(1, max_attempts + 1):
        try:
            if client is None:
                client = Client(path)
            err, res = client.call("send", params)
        except Unreachable as e:
            if client is not None:
                client.close()
            client = None
            err, res = {"code": "connect", "message": str(e), "retryable": True}, None
        if err is None:
            print("sent (daemon attempts: %s)" % res.get("attempts"))
            return 0
        if not err.get("retryable") or err.get("code") == "timeout":
            # Final; and after `timeout` the message may have gone out.
            print("wxpushd: %s" % describe(err), file=sys.stderr)
            return 3 if err.get("code") == "connect" else 1
        if attempt == max_attempts:
            break
        if err.get("retry_after"):
            wait = float(err["retry_after"])
        else:
            wait = min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
        if wait > max_wait:
            print("wxpushd: %s; retry after %d s is past --max-wait, giving up"
                  % (describe(err), wait), file=sys.stderr)
            return 1
        print("wxpushd: %s; retrying in %.1f s" % (describe(err), wait), file=sys.stderr)
        time.sleep(wait)
    print("wxpushd: %s; giving up after %d attempts" % (describe(err), max_attempts),
          file=sys.stderr)
    return 3 if err.get("code") == "connect" else 1


def main():
    p = argparse.ArgumentParser(description="Send one subscription message via wxpushd.")
    p.add_argument("-s", "--socket",
                   default=os.environ.get("WXPUSH_SOCKET") or DEFAULT_SOCKET)
    for opt in ("appid", "touser", "template-id", "scene", "title", "content"):
        p.add_argument("--" + opt, required=True)
    p.add_argument("--max-attempts", type=int, default=5)
    p.add_argument("--max-wait", type=float, default=60.0,
                   help="longest wait before a retry, in seconds")
    a = p.parse_args()
    if a.max_attempts < 1:
        p.error("--max-attempts must be at least 1")
    params = {
        "appid": a.appid,
        "touser": a.touser,
        "template_id": a.template_id,
        "scene": a.scene,
        "title": a.title,
        "data": {"content": {"value": a.content}},
    }
    return send(a.socket, params, a.max_attempts, a.max_wait)


if __name__ == "__main__":
    sys.exit(main())
