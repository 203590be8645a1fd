"""A recording HTTP proxy between wxpushd and wxpush-mock, for tests that must
know exactly what crossed the wire: every token WeChat handed out (in order,
per appid; for authorizers with the refresh token that came with it), every
token a send used, and every message WeChat accepted (by its content value),
even when the daemon never saw the answer."""

import http.client
import http.server
import json
import threading
import urllib.parse

SUBSCRIBE = "/cgi-bin/message/template/subscribe"
TOKEN_PATHS = ("/cgi-bin/token", "/cgi-bin/stable_token")
QUERY_AUTH = "/cgi-bin/component/api_query_auth"
AUTHORIZER_TOKEN = "/cgi-bin/component/api_authorizer_token"


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.issued = {}        # appid -> [token, ...] in the order WeChat gave them
        self.owner = {}         # token -> appid
        self.used = {}          # appid -> set of tokens sends used
        self.delivered = {}     # content value -> times WeChat accepted it
        self.refresh_issued = {}    # authorizer appid -> [refresh token, ...] in order
        self.refresh_of = {}    # authorizer access token -> the refresh token it came with
        self.subscribe_calls = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _forward(self):
        rec = self.server.rec
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == SUBSCRIBE:
            tok = q.get("access_token", [None])[0]
            with rec.lock:
                rec.subscribe_calls += 1
                a = rec.owner.get(tok)
                if a is not None:
                    rec.used.setdefault(a, set()).add(tok)
        if getattr(self, "up", None) is None:
            self.up = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port,
                                                 timeout=60)
        try:
            self.up.request(self.command, self.path, body=body,
                            headers={"Content-Type": "application/json"})
            r = self.up.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            # The mock dropped the connection: drop ours too.
            self.close_connection = True
            self.up.close()
            self.up = None
            return
        self._record(url.path, q, body, r.status, data)
        self.send_response(r.status)
        self.send_header("Content-Type", r.getheader("Content-Type") or "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, path, q, body, status, data):
        rec = self.server.rec
        if status != 200:
            return
        try:
            j = json.loads(data)
            req = json.loads(body) if body else {}
        except ValueError:
            return
        if not isinstance(j, dict):
            return
        if path in TOKEN_PATHS and "access_token" in j:
            appid = q.get("appid", [req.get("appid")])[0]
            with rec.lock:
                rec.issued.setdefault(appid, []).append(j["access_token"])
                rec.owner[j["access_token"]] = appid
        elif path in (QUERY_AUTH, AUTHORIZER_TOKEN):
            info = j.get("authorization_info", j)
            if not isinstance(info, dict) or "authorizer_access_token" not in info:
                return
            appid = info.get("authorizer_appid") or req.get("authorizer_appid")
            at, rt = info["authorizer_access_token"], info.get("authorizer_refresh_token")
            with rec.lock:
                rec.issued.setdefault(appid, []).append(at)
                rec.owner[at] = appid
                rec.refresh_issued.setdefault(appid, []).append(rt)
                rec.refresh_of[at] = rt
        elif path == SUBSCRIBE and j.get("errcode") == 0:
            try:
                key = req["data"]["content"]["value"]
            except (KeyError, TypeError):
                return
            with rec.lock:
                rec.delivered[key] = rec.delivered.get(key, 0) + 1

    do_GET = _forward
    do_POST = _forward


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass        # a peer killed mid-request: expected in these tests


class Proxy:
    """Listen on a free loopback port and forward to the mock on upstream_port."""

    def __init__(self, upstream_port):
        self.rec = Recorder()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.rec = self.rec
        self.server.upstream_port = upstream_port
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
