"""make demo: the main job end to end on the bundled mock WeChat.

Starts wxpush-mock and wxpushd with a generated configuration in a temporary
directory, sends a one-time subscription message with wxpush, shows what the
mock received and `wxpush status`, then stops both."""

import json
import shlex
import os
import sys

builddir = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
srcdir = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("WX_BUILDDIR", builddir)
sys.path.insert(0, os.path.join(srcdir, "integration"))

import wxtest  # noqa: E402


def run(d, *args):
    print("$ wxpush " + shlex.join(args))
    r = d.wxpush(*args)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr)
    return r.returncode


def main():
    mock = wxtest.Mock()
    print("wxpush-mock: WeChat API stand-in on %s" % mock.base)
    d = wxtest.Daemon(mock=mock, debug=False)
    print("wxpushd: socket %s, configuration %s\n" % (d.sock, d.conf))
    print(open(d.conf).read())

    rc = run(d, "ping")
    rc |= run(d, "send", "--appid", wxtest.APPID, "--touser", "oUSER_openid_0001",
              "--template-id", "TEMPLATE_id_0001", "--scene", "1000",
              "--title", "订阅通知", "--content", "您好! Your order has shipped.",
              "--color", "#FF0000", "--url", "https://example.com/orders/42")
    sends = mock.sends()
    if sends:
        print("\nwhat WeChat (the mock) received:")
        print(json.dumps(sends[-1]["body"], ensure_ascii=False, indent=2))
    print()
    rc |= run(d, "send", "--appid", wxtest.APPID, "--touser", "oUSER_openid_0001",
              "--template-id", "TEMPLATE_id_0001", "--scene", "1000",
              "--title", "a title that is far too long", "--content", "x") != 1
    print()
    rc |= run(d, "status")
    print("\ntoken calls made to WeChat: %d (one token served every send)"
          % mock.token_calls())
    d.stop()
    mock.stop()
    print("\ndemo %s" % ("done" if rc == 0 and sends else "FAILED"))
    return 0 if rc == 0 and sends else 1


if __name__ == "__main__":
    sys.exit(main())
