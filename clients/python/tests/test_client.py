"""The Python client against the real wxpushd and wxpush-mock.

tests/clients/harness.py (in the wxpushd tree: $WX_SRCDIR) starts both and
is driven over a pipe; $WX_BUILDDIR names the built programs.
"""

import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
import wxpush  # noqa: E402

SUBSCRIBE = "/cgi-bin/message/template/subscribe"
H = None


class Harness:
    """The harness process: the daemon and the mock, and commands for them."""

    def __init__(self):
        src = os.environ.get("WX_SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
        env = dict(os.environ, PYTHONPATH=os.path.join(src, "tests", "integration"))
        self.proc = subprocess.Popen([os.environ.get("WX_PYTHON", "/usr/bin/python3"),
                                      os.path.join(src, "tests", "clients", "harness.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                     text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.socket = self.info["socket"]
        self.appid = self.info["appid"]

    def do(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        ans = json.loads(self.proc.stdout.readline())
        if not ans["ok"]:
            raise RuntimeError("harness: " + ans["error"])
        return ans

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def setUpModule():
    global H
    H = Harness()


def tearDownModule():
    H.close()


def message(**kw):
    m = {"appid": H.appid, "touser": "oUSER_openid_0001", "template_id": "TEMPLATE_id_0001",
         "scene": 1000, "title": "订阅通知", "data": {"content": {"value": "您好, wxpushd!"}}}
    m.update(kw)
    return m


class ClientTest(unittest.TestCase):

    def setUp(self):
        self.c = wxpush.Client(H.socket, timeout=20)

    def tearDown(self):
        self.c.close()

    def test_ping(self):
        r = self.c.ping()
        self.assertEqual(r["protocol"], 1)
        self.assertIsInstance(r["version"], str)

    def test_status(self):
        creds = self.c.status()["credentials"]
        self.assertIn(H.appid, [c["appid"] for c in creds])
        one = self.c.status(H.appid)["credentials"]
        self.assertEqual([c["appid"] for c in one], [H.appid])

    def test_send(self):
        before = H.do("sends")["n"]
        r = self.c.send(message())
        self.assertEqual((r["errcode"], r["attempts"]), (0, 1))
        self.assertEqual(H.do("sends")["n"], before + 1)

    def test_invalid_request(self):
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message(title="x" * 16))
        e = cm.exception
        self.assertEqual((e.code, e.field, e.retryable), ("invalid_request", "title", False))

    def test_unknown_appid_and_method(self):
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message(appid="wxnotconfigured00"))
        self.assertEqual(cm.exception.code, "unknown_appid")
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.request("no_such_method")
        self.assertEqual(cm.exception.code, "unknown_method")

    def test_wechat_refusal(self):
        H.do("fault", path=SUBSCRIBE, count=1, errcode=43101)
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message(), retries=3)
        e = cm.exception
        self.assertEqual((e.code, e.errcode, e.retryable), ("wechat", 43101, False))
        self.assertIsInstance(e.errmsg, str)

    def test_rate_limit_retry_after_over_budget(self):
        H.do("fault", path=SUBSCRIBE, count=1, errcode=45011)
        before = H.do("sends")["n"]
        c = wxpush.Client(H.socket, retries=3, max_retry_after=0)
        t0 = time.time()
        with self.assertRaises(wxpush.WxpushError) as cm:
            c.send(message())
        c.close()
        e = cm.exception
        self.assertEqual((e.code, e.errcode, e.retryable), ("wechat", 45011, True))
        self.assertTrue(1 <= e.retry_after <= 60, e.retry_after)
        self.assertLess(time.time() - t0, 5)        # not waited for
        self.assertEqual(H.do("sends")["n"], before)

    def test_retries(self):
        # The daemon tries 4 times on -1 and answers a retryable wechat -1.
        H.do("fault", path=SUBSCRIBE, count=4, errcode=-1)
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message())
        self.assertEqual((cm.exception.errcode, cm.exception.retryable), (-1, True))
        H.do("fault", path=SUBSCRIBE, count=4, errcode=-1)
        before = H.do("sends")["n"]
        r = self.c.send(message(), retries=2)
        self.assertEqual(r["errcode"], 0)
        self.assertEqual(H.do("sends")["n"], before + 1)

    def test_timeout_then_connection_still_usable(self):
        H.do("fault", path=SUBSCRIBE, count=1, delay_ms=1500)
        t0 = time.time()
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message(), timeout=0.3)
        self.assertEqual(cm.exception.code, "timeout")
        self.assertLess(time.time() - t0, 1.4)
        time.sleep(1.6)          # the late answer arrives and is skipped
        self.assertEqual(self.c.ping()["protocol"], 1)
        self.assertEqual(self.c.send(message())["errcode"], 0)

    def test_pipelining(self):
        H.do("fault", path=SUBSCRIBE, count=1, delay_ms=1500)
        order = []
        slow = threading.Thread(target=lambda: order.append(("send", self.c.send(message()))))
        slow.start()
        time.sleep(0.2)
        order.append(("ping", self.c.ping()))
        slow.join()
        self.assertEqual([o[0] for o in order], ["ping", "send"])
        before = H.do("sends")["n"]
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.c.send(message())))
                   for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r["errcode"] for r in results], [0] * 20)
        self.assertEqual(H.do("sends")["n"], before + 20)

    def test_idempotency_key(self):
        key = "py-idem-%d" % time.time_ns()
        before = H.do("sends")["n"]
        a = self.c.send(message(), idempotency_key=key)
        b = self.c.send(message(), idempotency_key=key)
        self.assertEqual(a, b)
        self.assertEqual(H.do("sends")["n"], before + 1)
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.send(message(title="another"), idempotency_key=key)
        self.assertEqual((cm.exception.code, cm.exception.field),
                         ("invalid_request", "idempotency_key"))

    def test_restart(self):
        self.assertEqual(self.c.ping()["protocol"], 1)
        H.do("restart")
        self.assertEqual(self.c.ping()["protocol"], 1)      # a new connection
        H.do("stop")
        try:
            with self.assertRaises(wxpush.WxpushError) as cm:
                self.c.ping()
            self.assertEqual((cm.exception.code, cm.exception.retryable), ("connect", True))
            out = []
            c = wxpush.Client(H.socket, retries=20, backoff=0.1, max_backoff=0.5)
            t = threading.Thread(target=lambda: out.append(c.send(message())))
            t.start()
            time.sleep(1)
        finally:
            H.do("start")
        t.join(30)
        c.close()
        self.assertEqual(out and out[0]["errcode"], 0)

    def test_connection_lost_during_send(self):
        # A send the daemon was carrying out when it died may have been
        # delivered: repeatable only under an idempotency key.
        for key, retryable in ((None, False), ("py-lost-%d" % time.time_ns(), True)):
            self.c.send(message())      # a token at hand: the next send goes out at once
            H.do("fault", path=SUBSCRIBE, count=1, delay_ms=1500)
            before = H.do("sends")["n"]
            errs = []

            def send():
                try:
                    self.c.send(message(), idempotency_key=key)
                except wxpush.WxpushError as e:
                    errs.append(e)
            t = threading.Thread(target=send)
            t.start()
            time.sleep(0.5)
            H.do("kill")
            t.join(10)
            H.do("start")
            self.assertEqual([(e.code, e.retryable) for e in errs], [("connect", retryable)])
            # ... and it was: WeChat got it after the daemon died.
            end = time.time() + 10
            while H.do("sends")["n"] == before and time.time() < end:
                time.sleep(0.05)
            self.assertEqual(H.do("sends")["n"], before + 1)

    def test_protocol_errors(self):
        # What breaks the protocol ends the connection; the next request opens another.
        c = wxpush.Client(H.info["fake"], timeout=20)
        try:
            for method in ("test_garbage", "test_oversize", "test_malformed"):
                with self.assertRaises(wxpush.WxpushError) as cm:
                    c.request(method)
                self.assertEqual(cm.exception.code, "protocol", method)
                self.assertEqual(c.call(H.appid, H.info["call_path"])["errcode"], 0)
        finally:
            c.close()

    def test_enqueue_params_and_idempotency_keys(self):
        # What enqueue writes (the stand-in hands it back): not_after, watch,
        # the caller's key, and a key of the client's own when it retries.
        c = wxpush.Client(H.info["fake"], timeout=20)
        r = wxpush.Client(H.info["fake"], timeout=20, retries=2)
        try:
            c.enqueue(message(), not_after=1900000000, watch=True, idempotency_key="k-1")
            p = c.request("test_last")["params"]
            self.assertEqual((p["not_after"], p["watch"], p["idempotency_key"], p["title"]),
                             (1900000000, True, "k-1", "订阅通知"))
            c.enqueue(message())
            p = c.request("test_last")["params"]
            self.assertNotIn("idempotency_key", p)
            self.assertNotIn("watch", p)
            r.enqueue(message())
            k1 = r.request("test_last")["params"]["idempotency_key"]
            r.enqueue(message())
            k2 = r.request("test_last")["params"]["idempotency_key"]
            self.assertTrue(k1.startswith("wxpush-") and k1 != k2, (k1, k2))
        finally:
            c.close()
            r.close()


class PlannedMethodsTest(unittest.TestCase):
    """enqueue, delivery and call (issues #14, #16): against the daemon once it
    has them, until then against the harness's stand-in of their contract."""

    def setUp(self):
        self.c = wxpush.Client(H.info["planned"]["enqueue"], timeout=20)

    def tearDown(self):
        self.c.close()

    def test_enqueue_and_delivery(self):
        id_ = self.c.enqueue(message(), not_after=int(time.time()) + 600)
        end = time.time() + 20
        while True:
            d = self.c.delivery(id_)
            if d["state"] not in ("queued", "sending") or time.time() > end:
                break
            time.sleep(0.1)
        self.assertEqual((d["id"], d["state"]), (id_, "delivered"))
        self.assertGreaterEqual(d["attempts"], 1)
        ids = self.c.enqueue_batch([message(), message()])
        self.assertEqual(len(ids), 2)
        # Delivered before the test ends: a later test's one-shot fault is its own.
        for i in ids:
            end = time.time() + 20
            while True:
                d = self.c.delivery(i)
                if d["state"] not in ("queued", "sending") or time.time() > end:
                    break
                time.sleep(0.1)
            self.assertEqual(d["state"], "delivered")
        with self.assertRaises(wxpush.WxpushError) as cm:
            self.c.enqueue_batch([message(), message(title="")])
        self.assertEqual(cm.exception.code, "invalid_request")

    def test_enqueue_watch(self):
        got = threading.Event()
        seen = []

        def note(method, params):
            seen.append((method, params))
            got.set()
        c = wxpush.Client(H.info["planned"]["enqueue"], on_notification=note)
        try:
            id_ = c.enqueue(message(), watch=True)
            self.assertTrue(got.wait(20))
            self.assertEqual(seen[0][0], "delivery")
            self.assertEqual(seen[0][1][0]["id"], id_)
        finally:
            c.close()

    def test_call(self):
        c = wxpush.Client(H.info["planned"]["call"], timeout=20)
        try:
            r = c.call(H.appid, H.info["call_path"])
            self.assertIsInstance(r, dict)
            self.assertNotIn("access_token", r)
            with self.assertRaises(wxpush.WxpushError) as cm:
                c.call(H.appid, "/cgi-bin/token")
            self.assertIn(cm.exception.code, ("forbidden", "invalid_request"))
        finally:
            c.close()

if __name__ == "__main__":
    unittest.main()
