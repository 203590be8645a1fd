"""wxpush consent-url: the one-time subscription consent page (wechat-api.md
section 5), exactly encoded, checked before it is printed, and no daemon
needed (the socket given does not exist)."""

import json
import subprocess

from wxtest import WXPUSH, Tap

t = Tap(timeout=60)
BASE = "https://mp.weixin.qq.com/mp/subscribemsg?action=get_confirm"


def run(*args):
    return subprocess.run([WXPUSH, "-s", "/nonexistent/wxpushd.sock"] + list(args),
                          capture_output=True, text=True, timeout=30)


def consent(appid="wx1234567890abcdef", scene="1000", tid="TPL_id-0001",
            redirect="https://shop.example/consent", reserved=None, extra=()):
    args = ["consent-url", "--appid", appid, "--scene", scene, "--template-id", tid,
            "--redirect-url", redirect]
    if reserved is not None:
        args += ["--reserved", reserved]
    return run(*(list(extra) + args))


cases = [
    (dict(), BASE + "&appid=wx1234567890abcdef&scene=1000&template_id=TPL_id-0001"
     "&redirect_url=https%3A%2F%2Fshop.example%2Fconsent#wechat_redirect",
     "a plain redirect URL"),
    (dict(reserved="csrf0Token9"), BASE + "&appid=wx1234567890abcdef&scene=1000"
     "&template_id=TPL_id-0001&redirect_url=https%3A%2F%2Fshop.example%2Fconsent"
     "&reserved=csrf0Token9#wechat_redirect", "with reserved"),
    (dict(redirect="https://shop.example:8443/c/ok?next=/o/42&lang=zh_CN#top"),
     BASE + "&appid=wx1234567890abcdef&scene=1000&template_id=TPL_id-0001&redirect_url="
     "https%3A%2F%2Fshop.example%3A8443%2Fc%2Fok%3Fnext%3D%2Fo%2F42%26lang%3Dzh_CN%23top"
     "#wechat_redirect", "reserved characters of the redirect URL are encoded"),
    (dict(redirect="http://127.0.0.1/a-b.c_d~e%20f+g"),
     BASE + "&appid=wx1234567890abcdef&scene=1000&template_id=TPL_id-0001&redirect_url="
     "http%3A%2F%2F127.0.0.1%2Fa-b.c_d~e%2520f%2Bg#wechat_redirect",
     "unreserved characters stay, % and + are encoded"),
    (dict(redirect="https://商店.example/订阅"),
     BASE + "&appid=wx1234567890abcdef&scene=1000&template_id=TPL_id-0001&redirect_url="
     "https%3A%2F%2F%E5%95%86%E5%BA%97.example%2F%E8%AE%A2%E9%98%85#wechat_redirect",
     "UTF-8 bytes are percent-encoded in upper case"),
    (dict(scene="0"), BASE + "&appid=wx1234567890abcdef&scene=0&template_id=TPL_id-0001"
     "&redirect_url=https%3A%2F%2Fshop.example%2Fconsent#wechat_redirect", "scene 0"),
    (dict(scene="10000"), BASE + "&appid=wx1234567890abcdef&scene=10000"
     "&template_id=TPL_id-0001&redirect_url=https%3A%2F%2Fshop.example%2Fconsent"
     "#wechat_redirect", "scene 10000"),
    (dict(scene="007"), BASE + "&appid=wx1234567890abcdef&scene=7&template_id=TPL_id-0001"
     "&redirect_url=https%3A%2F%2Fshop.example%2Fconsent#wechat_redirect",
     "a scene with leading zeros is written plainly"),
    (dict(reserved="A" * 128), BASE + "&appid=wx1234567890abcdef&scene=1000"
     "&template_id=TPL_id-0001&redirect_url=https%3A%2F%2Fshop.example%2Fconsent"
     "&reserved=" + "A" * 128 + "#wechat_redirect", "reserved of 128 bytes"),
]
for kw, want, desc in cases:
    r = consent(**kw)
    t.eq((r.returncode, r.stdout, r.stderr), (0, want + "\n", ""), desc)

r = consent(extra=["--json"])
t.ok(r.returncode == 0 and json.loads(r.stdout) == {"url": cases[0][1]},
     "--json prints {\"url\": ...}", r.stdout)

bad = [
    (dict(scene="10001"), "--scene", "scene over 10000"),
    (dict(scene="-1"), "--scene", "a negative scene"),
    (dict(scene="1e3"), "--scene", "a scene that is not decimal digits"),
    (dict(scene=""), "--scene", "an empty scene"),
    (dict(scene="123456"), "--scene", "a scene of six digits"),
    (dict(reserved="abc-def"), "--reserved", "reserved with a -"),
    (dict(reserved="A" * 129), "--reserved", "reserved over 128 bytes"),
    (dict(reserved=""), "--reserved", "an empty reserved"),
    (dict(redirect="ftp://shop.example/"), "--redirect-url", "a redirect that is not http(s)"),
    (dict(redirect="https://"), "--redirect-url", "a redirect without a host"),
    (dict(redirect="https://shop.example/a b"), "--redirect-url", "a redirect with a space"),
    (dict(redirect="https://shop.example/" + "a" * 1100), "--redirect-url",
     "a redirect over 1024 bytes"),
    (dict(appid="wx12345!"), "--appid", "a bad appid"),
    (dict(tid="T" * 129), "--template-id", "a template id over 128 bytes"),
]
for kw, opt, desc in bad:
    r = consent(**kw)
    t.ok(r.returncode == 2 and r.stdout == "" and opt in r.stderr,
         "%s: exit 2 naming %s" % (desc, opt), (r.returncode, r.stdout, r.stderr))

r = run("consent-url", "--appid", "wx1", "--scene", "1", "--template-id", "T")
t.ok(r.returncode == 2 and "missing --redirect-url" in r.stderr, "a missing option: exit 2",
     r.stderr)
r = run("consent-url", "--appid", "wx1", "--scene", "1", "--template-id", "T",
        "--redirect-url", "https://a/", "--touser", "o")
t.ok(r.returncode == 2 and "--touser" in r.stderr, "an option of another command: exit 2",
     r.stderr)
r = run("consent-url", "--appid", "wx1", "--scene", "1", "--template-id", "T",
        "--redirect-url", "https://a/", "extra")
t.ok(r.returncode == 2 and "unexpected argument" in r.stderr, "an extra argument: exit 2",
     r.stderr)
r = run("consent-url", "--appid", "wx1", "--appid", "wx2", "--scene", "1",
        "--template-id", "T", "--redirect-url", "https://a/")
t.ok(r.returncode == 2 and "twice" in r.stderr, "an option given twice: exit 2", r.stderr)
r = run("--help")
t.ok(r.returncode == 0 and "consent-url" in r.stdout, "the usage lists consent-url")
t.done()
