"""The message kinds end to end against wxpush-mock, for an official account
and for a platform's authorizer: each kind's body byte for byte at its
endpoint, the template message's msgid (also on a repeated idempotency key),
45015 final and said so, 47003 caught before the call, the mock's own checks,
and `wxpush send --kind`."""

import json
import os
import urllib.request

from wxtest import (APPID, COMPONENT, COMPONENT_KEY, COMPONENT_SECRET,
                    COMPONENT_TOKEN, COMPONENTS, SUBSCRIBE, Daemon, Mock, Tap,
                    message, wait_for)

TEMPLATE = "/cgi-bin/message/template/send"
BIZSEND = "/cgi-bin/message/subscribe/bizsend"
MINI = "/cgi-bin/message/subscribe/send"
CUSTOM = "/cgi-bin/message/custom/send"
AUTH1 = "wxauthorizer000001"

t = Tap(timeout=280)
mock = Mock(components=COMPONENTS)
d = Daemon(mock=mock, components={COMPONENT: (COMPONENT_SECRET, COMPONENT_TOKEN,
                                              COMPONENT_KEY)},
           callback=True, start=False)
mock.config(event_url=d.callback_url)
d.start()


def state(appid):
    c = d.cred(appid)
    return c["state"] if c else None


t.ok(wait_for(lambda: state(COMPONENT) == "valid", 15), "the component has a token",
     d.cred(COMPONENT))
r = mock.component_event("authorized", AUTH1)
t.ok(r.get("reply") == "success" and wait_for(lambda: state(AUTH1) == "valid", 10),
     "an authorizer is authorized and has a token", d.cred(AUTH1))


def body(obj):
    """The exact bytes WeChat documents: compact JSON, keys in that order."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# Each kind: params (without appid), the endpoint, the body WeChat must get.
KINDS = [
    ("template", TEMPLATE,
     {"kind": "template", "touser": "oUSER1", "template_id": "TPL_template_1",
      "data": {"first": {"value": "恭喜你购买成功!", "color": "#173177"},
               "keyword1": {"value": "巧克力 \"Dark\""}},
      "url": "https://example.com/order?id=1",
      "miniprogram": {"pagepath": "index?foo=bar", "appid": "wxmini0001"},
      "client_msg_id": "MSG_000001"},
     {"touser": "oUSER1", "template_id": "TPL_template_1",
      "url": "https://example.com/order?id=1",
      "miniprogram": {"appid": "wxmini0001", "pagepath": "index?foo=bar"},
      "client_msg_id": "MSG_000001",
      "data": {"first": {"value": "恭喜你购买成功!", "color": "#173177"},
               "keyword1": {"value": "巧克力 \"Dark\""}}}),
    ("subscribe", BIZSEND,
     {"kind": "subscribe", "touser": "oUSER1", "template_id": "TPL_biz_1",
      "page": "https://mp.weixin.qq.com",
      "miniprogram": {"appid": "wxmini0001", "pagepath": "index?foo=bar"},
      "data": {"name1": {"value": "广州腾讯科技有限公司"},
               "date2": {"value": "2019-12-25 09:42"},
               "phrase3": {"value": "审核通过"}}},
     {"touser": "oUSER1", "template_id": "TPL_biz_1",
      "page": "https://mp.weixin.qq.com",
      "miniprogram": {"appid": "wxmini0001", "pagepath": "index?foo=bar"},
      "data": {"name1": {"value": "广州腾讯科技有限公司"},
               "date2": {"value": "2019-12-25 09:42"},
               "phrase3": {"value": "审核通过"}}}),
    ("mini_subscribe", MINI,
     {"kind": "mini_subscribe", "lang": "zh_CN", "miniprogram_state": "developer",
      "touser": "oUSER1", "template_id": "TPL_mini_1", "page": "index",
      "data": {"number01": {"value": "339208499"},
               "date01": {"value": "2015年01月05日"},
               "thing01": {"value": "TIT创意园"},
               "amount02": {"value": "¥100.00"}}},
     {"touser": "oUSER1", "template_id": "TPL_mini_1", "page": "index",
      "miniprogram_state": "developer", "lang": "zh_CN",
      "data": {"number01": {"value": "339208499"},
               "date01": {"value": "2015年01月05日"},
               "thing01": {"value": "TIT创意园"},
               "amount02": {"value": "¥100.00"}}}),
    ("custom text", CUSTOM,
     {"kind": "custom", "touser": "oUSER1", "msgtype": "text",
      "text": {"content": "Hello\n\"World\" 你好"}},
     {"touser": "oUSER1", "msgtype": "text",
      "text": {"content": "Hello\n\"World\" 你好"}}),
    ("custom image", CUSTOM,
     {"kind": "custom", "touser": "oUSER1", "msgtype": "image",
      "image": {"media_id": "MEDIA_ID_0001"}},
     {"touser": "oUSER1", "msgtype": "image", "image": {"media_id": "MEDIA_ID_0001"}}),
    ("custom link", CUSTOM,
     {"kind": "custom", "touser": "oUSER1", "msgtype": "link",
      "link": {"url": "https://example.com/a", "title": "标题",
               "thumb_url": "https://example.com/t.png", "description": "描述"}},
     {"touser": "oUSER1", "msgtype": "link",
      "link": {"title": "标题", "description": "描述", "url": "https://example.com/a",
               "thumb_url": "https://example.com/t.png"}}),
    ("custom miniprogrampage", CUSTOM,
     {"kind": "custom", "touser": "oUSER1", "msgtype": "miniprogrampage",
      "miniprogrampage": {"title": "title", "appid": "wxmini0001",
                          "pagepath": "pages/index/index?foo=bar",
                          "thumb_media_id": "THUMB_0001"}},
     {"touser": "oUSER1", "msgtype": "miniprogrampage",
      "miniprogrampage": {"title": "title", "appid": "wxmini0001",
                          "pagepath": "pages/index/index?foo=bar",
                          "thumb_media_id": "THUMB_0001"}}),
    ("custom news", CUSTOM,
     {"kind": "custom", "touser": "oUSER1", "msgtype": "news",
      "news": {"articles": [{"title": "Happy Day", "description": "Is Really A Happy Day",
                             "url": "https://example.com/u",
                             "picurl": "https://example.com/p.jpg"}]}},
     {"touser": "oUSER1", "msgtype": "news",
      "news": {"articles": [{"title": "Happy Day", "description": "Is Really A Happy Day",
                             "url": "https://example.com/u",
                             "picurl": "https://example.com/p.jpg"}]}}),
]

for who, appid in (("official account", APPID), ("authorizer", AUTH1)):
    for name, path, params, want in KINDS:
        before = mock.calls(path)
        p = dict(params, appid=appid)
        err, res = d.call("send", p)
        t.ok(err is None and res["errcode"] == 0,
             "%s: %s is delivered" % (who, name), err)
        s = mock.sends(appid)[-1] if mock.sends(appid) else {}
        t.eq((s.get("path"), mock.calls(path) - before), (path, 1),
             "%s: %s went to %s once" % (who, name, path))
        t.eq(s.get("raw"), body(want),
             "%s: %s: WeChat got the documented body byte for byte" % (who, name))
        if name == "template":
            t.ok(isinstance(res.get("msgid"), int) and res["msgid"] > 0,
                 "%s: template: the result carries WeChat's msgid" % who, res)
        else:
            t.ok("msgid" not in res, "%s: %s: no msgid where WeChat gives none" % (who, name),
                 res)

# The default kind is still the one-time subscription message.
err, res = d.call("send", message())
t.ok(err is None and mock.sends(APPID)[-1]["path"] == SUBSCRIBE,
     "a send without kind is templateSubscribe", err)

# template: client_msg_id from the idempotency key; a repeat answers the same msgid.
p = dict(KINDS[0][2], appid=APPID, idempotency_key="order-42")
del p["client_msg_id"]
err, first = d.call("send", p)
raw = mock.sends(APPID)[-1]["raw"]
t.ok(err is None and '"client_msg_id":"order-42"' in raw,
     "template: client_msg_id is the idempotency key when none is given", (err, raw))
n = mock.calls(TEMPLATE)
err, again = d.call("send", p)
t.ok(err is None and again.get("msgid") == first.get("msgid") and
     mock.calls(TEMPLATE) == n,
     "template: a repeated idempotency key answers the first msgid, nothing sent",
     (first, again))

# 45015 is final and says why.
mock.fault(CUSTOM, 1, errcode=45015, errmsg="response out of time limit or "
           "subscription is canceled")
n = mock.calls(CUSTOM)
err, res = d.call("send", dict(KINDS[3][2], appid=APPID))
t.ok(err is not None and err["code"] == "wechat" and err.get("errcode") == 45015 and
     err["retryable"] is False and "48 hours" in err["message"],
     "custom: 45015 is final and the error says the user has not interacted "
     "within 48 hours", err)
t.eq(mock.calls(CUSTOM) - n, 1, "custom: 45015 is not retried")

# 47003 is caught before the call: nothing goes upstream.
bad = [
    ("mini_subscribe", MINI, "data.thing01.value",
     {"thing01": {"value": "这是一个超过二十个字的事物名称啊啊啊啊啊啊"}}),
    ("mini_subscribe", MINI, "data.phrase3.value", {"phrase3": {"value": "已支付了吗"
                                                                 "没有"}}),
    ("mini_subscribe", MINI, "data.time3.value", {"time3": {"value": "2023/8/21 25:48"}}),
    ("subscribe", BIZSEND, "data.number1.value", {"number1": {"value": "12a"}}),
    ("subscribe", BIZSEND, "data.thing1.value", {"thing1": {"value": ""}}),
]
for kind, path, field, data in bad:
    n = mock.calls(path)
    err, res = d.call("send", {"appid": APPID, "kind": kind, "touser": "oUSER1",
                               "template_id": "T", "data": data})
    t.ok(err is not None and err["code"] == "invalid_request" and
         err.get("field") == field,
         "%s: a value WeChat would refuse with 47003 is refused locally on %s"
         % (kind, field), err)
    t.eq(mock.calls(path), n, "%s: and nothing went to %s" % (kind, path))

# The mock's own checks (so that a daemon bug would show).
def d_token():
    """The account's newest access token, as the mock lists what it issued."""
    return [x["value"] for x in mock.tokens()["tokens"]
            if x["kind"] == "access_token" and x["appid"] == APPID][-1]


def raw_post(path, obj):
    req = urllib.request.Request("%s%s?access_token=%s" % (mock.base, path, d_token()),
                                 data=json.dumps(obj).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


r = raw_post(MINI, {"touser": "o", "template_id": "T",
                    "data": {"thing1": {"value": "x" * 21}}})
t.eq(r.get("errcode"), 47003, "the mock answers 47003 for a thing over 20 characters")
r = raw_post(MINI, {"touser": "o", "template_id": "T", "data": {"time2": {"value": "25:00"}}})
t.eq(r.get("errcode"), 47003, "the mock answers 47003 for a bad time")
r = raw_post(MINI, {"touser": "o", "template_id": "T", "data": {"time2": {"value": "15:01"}},
                    "scene": 1})
t.eq(r.get("errcode"), 47001, "the mock refuses a field WeChat does not document")
r = raw_post(CUSTOM, {"touser": "o", "msgtype": "news", "news": {"articles": [
    {"title": "a"}, {"title": "b"}]}})
t.eq(r.get("errcode"), 45008, "the mock answers 45008 for two news articles")
r = raw_post(TEMPLATE, {"touser": "o", "template_id": "T", "data": {"k": {"value": 1}}})
t.eq(r.get("errcode"), 47001, "the mock answers 47001 for a value that is not a string")

# wxpush send --kind with a JSON params file.
pf = os.path.join(d.dir, "params.json")
with open(pf, "w") as f:
    json.dump({"touser": "oUSER1", "msgtype": "text", "text": {"content": "cli"}}, f)
p = d.wxpush("--json", "send", "--appid", APPID, "--kind", "custom", "--body", pf)
t.ok(p.returncode == 0 and mock.sends(APPID)[-1]["raw"] ==
     body({"touser": "oUSER1", "msgtype": "text", "text": {"content": "cli"}}),
     "wxpush send --kind custom --body FILE sends a custom message", (p.stdout, p.stderr))
p = d.wxpush("send", "--appid", APPID, "--kind", "bogus", "--body", pf)
t.ok(p.returncode != 0 and "kind" in p.stderr,
     "wxpush send --kind bogus is refused naming kind", (p.returncode, p.stderr))

p = d.wxpush("send", "--appid", APPID, "--kind", "template", "--touser", "oUSER1",
             "--template-id", "T")
t.ok(p.returncode == 2 and "--body" in p.stderr,
     "wxpush send --kind template without --body is a usage error", (p.returncode, p.stderr))
with open(pf, "w") as f:
    json.dump({"kind": "custom", "touser": "oUSER1", "msgtype": "text",
               "text": {"content": "cli"}}, f)
p = d.wxpush("send", "--appid", APPID, "--kind", "template", "--body", pf)
t.ok(p.returncode != 0 and "kind" in p.stderr,
     "wxpush refuses a --kind that differs from the body's kind", (p.returncode, p.stderr))
with open(pf, "w") as f:
    json.dump(dict(KINDS[0][2], client_msg_id="MSG_cli"), f)
p = d.wxpush("send", "--appid", APPID, "--body", pf)
t.ok(p.returncode == 0 and "msgid" in p.stdout and
     mock.sends(APPID)[-1]["path"] == TEMPLATE,
     "wxpush send --body with kind template in the body prints the msgid", p.stdout)

d.stop()
mock.stop()
t.done()
