"""Protocol consistency (issue 13, items 14, 15, 17): every method refuses
unknown and non-string parameter keys, an appid with a NUL byte is refused,
nil for an optional field means absent, and unknown_appid always names its
field."""

import msgpack

from wxtest import APPID, COMPONENT, COMPONENTS, Daemon, Mock, Tap, message

t = Tap(timeout=120)

mock = Mock(components=COMPONENTS)
d = Daemon(mock, components=COMPONENTS)


def code_field(err):
    return (err or {}).get("code"), (err or {}).get("field")


# Item 14: unknown keys, non-string keys, NUL in an appid.
err, res = d.call("status", {"appi": APPID})
t.eq(code_field(err), ("invalid_request", "appi"),
     "status with a misspelt 'appi' is refused, naming the key")
t.ok(res is None, "and returns no credentials")
for method in ("ping", "stats"):
    err, _ = d.call(method, {"verbose": True})
    t.eq(code_field(err), ("invalid_request", "verbose"),
         "%s refuses an unknown key" % method)
c = d.client()
c.send_raw(msgpack.packb([0, 5, "status", [{1: "x"}]]))
err, _ = c.wait(5)
t.eq(code_field(err), ("invalid_request", "params"), "a non-string key is refused")
c.send_raw(msgpack.packb([0, 6, "status", [{"appid": APPID, "appid": APPID}]]) )
err, _ = c.wait(6)
t.ok(err is None, "one appid key is fine")
# A duplicate key, packed by hand (a dict cannot hold one twice).
dup = b"\x94\x00\x07\xa6status\x91\x82" + msgpack.packb("appid") + \
    msgpack.packb(APPID) + msgpack.packb("appid") + msgpack.packb(APPID)
c.send_raw(dup)
err, _ = c.wait(7)
t.eq(code_field(err), ("invalid_request", "appid"), "a duplicate key is refused")
err, _ = c.call("status", {"appid": APPID + "\0junk"})
t.eq(code_field(err), ("invalid_request", "appid"),
     "status of an appid with a NUL byte is refused, not matched by its prefix")
err, _ = c.call("send", message(appid=APPID + "\0junk"))
t.eq(code_field(err), ("invalid_request", "appid"), "send refuses a NUL in the appid")
err, _ = c.call("preauth", {"component_appid": COMPONENT,
                            "redirect_uri": "https://example.com/", "bogus": 1})
t.eq(code_field(err), ("invalid_request", "bogus"), "preauth refuses an unknown key")
err, _ = c.call("authorize", {"component_appid": COMPONENT,
                              "authorization_code": "x", 7: 1})
t.eq(code_field(err), ("invalid_request", "params"),
     "authorize refuses a non-string key")

# Item 15: nil for an optional field means absent.
err, res = c.call("status", {"appid": None})
t.ok(err is None and len(res["credentials"]) >= 2, "status with appid nil lists all",
     err)
err, res = c.call("send", message(url=None))
t.ok(err is None, "send with url: nil is sent", err)
m = message(miniprogram=None, idempotency_key=None)
m["url"] = None
m["data"]["content"]["color"] = None
err, res = c.call("send", m)
t.ok(err is None, "send with every optional field nil is sent", err)
err, _ = c.call("send", dict(message(), title=None))
t.eq(code_field(err), ("invalid_request", "title"), "nil for a required field is missing")
err, _ = c.call("preauth", {"component_appid": COMPONENT,
                            "redirect_uri": "https://example.com/",
                            "auth_type": None, "biz_appid": None, "mobile": None})
t.ok(err is None or err.get("code") != "invalid_request",
     "preauth with nil optional fields is not invalid_request", err)

# Item 17: unknown_appid names its field from every method.
err, _ = c.call("send", message(appid="wxnotconfigured000"))
t.eq(code_field(err), ("unknown_appid", "appid"), "send: unknown_appid has field appid")
err, _ = c.call("status", {"appid": "wxnotconfigured000"})
t.eq(code_field(err), ("unknown_appid", "appid"), "status: unknown_appid has field appid")
for method, p in (("authorize", {"authorization_code": "code"}),
                  ("preauth", {"redirect_uri": "https://example.com/"}),
                  ("component_event", {"msg_signature": "s", "timestamp": "1",
                                       "nonce": "n", "body": "<xml/>"})):
    p["component_appid"] = "wxnotconfigured000"
    err, _ = c.call(method, p)
    t.eq(code_field(err), ("unknown_appid", "component_appid"),
         "%s: unknown_appid has field component_appid" % method)
c.close()
d.stop()
t.done()
