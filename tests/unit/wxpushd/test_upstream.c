/*
 * upstream.c against servers in the same event base: an evhttp server (and
 * an HTTPS one with a throwaway self-signed certificate), a black hole that
 * never answers and a server that hangs up without answering.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "wxpushd.h"
#include "tap.h"

#define BIG_BODY	(1536 * 1024)
#define MAX_RAW		256

static struct event_base	*base;
static int			 http_port, https_port, hole_port, hang_port;
static int			 accepts, tls_accepts;

/* What the evhttp server saw last. */
static int	 seen_method;
static char	*seen_query;
static char	*seen_body;
static size_t	 seen_bodylen;
static char	*seen_ctype;
static int	 seen_expect;

/* Raw connections of the black hole and hang-up servers. */
static struct bufferevent	*raw[MAX_RAW];

/* One call's outcome, as its callback saw it. */
struct result {
	int			 called;
	int			 ok;
	long			 status;
	char			 error[64];
	double			 seconds;
	long			 errcode;
	long			 n;
	size_t			 refs;		/* the json's references */
	char			 errmsg[16];
	long			 errcode_after;	/* read after a shutdown */
	struct upstream_call	*call;		/* our own handle */
	struct result		*other;		/* cancelled by our callback */
	int			 shutdown;	/* call upstream_shutdown */
	int			*count;		/* bumped when called */
};

static int	test_done;
static evutil_socket_t	last_conn_fd = -1;	/* server side, last request */

/* Remember a string the server saw, replacing the previous one. */
static void
seen_set(char **dst, const char *s)
{
	free(*dst);
	*dst = s != NULL ? strdup(s) : NULL;
}

/* The evhttp handler: the reply depends on the path. */
static void
http_cb(struct evhttp_request *req, __attribute__((unused)) void *arg)
{
	const struct evhttp_uri	*uri = evhttp_request_get_evhttp_uri(req);
	const char		*path = evhttp_uri_get_path(uri);
	struct evbuffer		*in = evhttp_request_get_input_buffer(req);
	struct evbuffer		*out = evbuffer_new();
	struct evkeyvalq	*h = evhttp_request_get_input_headers(req);
	int			 code = 200, i;
	char			*big;

	seen_method = evhttp_request_get_command(req);
	last_conn_fd = bufferevent_getfd(evhttp_connection_get_bufferevent(
	    evhttp_request_get_connection(req)));
	seen_set(&seen_query, evhttp_uri_get_query(uri));
	seen_set(&seen_ctype, evhttp_find_header(h, "Content-Type"));
	seen_expect = evhttp_find_header(h, "Expect") != NULL;
	free(seen_body);
	seen_bodylen = evbuffer_get_length(in);
	seen_body = malloc(seen_bodylen + 1);
	evbuffer_remove(in, seen_body, seen_bodylen);
	seen_body[seen_bodylen] = '\0';

	if (strcmp(path, "/ok") == 0)
		evbuffer_add_printf(out, "{\"errcode\":0,\"errmsg\":\"ok\",\"n\":42}");
	else if (strcmp(path, "/okexact") == 0)
		evbuffer_add_printf(out, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	else if (strcmp(path, "/okspace") == 0)
		evbuffer_add_printf(out, "{\"errcode\":0, \"errmsg\":\"ok\"}");
	else if (strcmp(path, "/okbad") == 0)
		evbuffer_add_printf(out, "{\"errcode\":0,\"errmsg\":\"ok\"x");
	else if (strcmp(path, "/okdup") == 0)
		evbuffer_add_printf(out,
		    "{\"errcode\":0,\"errmsg\":\"ok\",\"errcode\":0}");
	else if (strcmp(path, "/500") == 0) {
		code = 500;
		evbuffer_add_printf(out, "{\"errcode\":-1}");
	} else if (strcmp(path, "/text") == 0)
		evbuffer_add_printf(out, "this is not json");
	else if (strcmp(path, "/array") == 0)
		evbuffer_add_printf(out, "[1,2,3]");
	else if (strcmp(path, "/dup") == 0)
		evbuffer_add_printf(out, "{\"a\":1,\"a\":2}");
	else if (strcmp(path, "/empty") == 0)
		;
	else if (strcmp(path, "/big") == 0) {
		big = malloc(BIG_BODY);
		memset(big, 'a', BIG_BODY);
		big[0] = big[BIG_BODY - 1] = '"';
		evbuffer_add(out, big, BIG_BODY);
		free(big);
	} else if (strcmp(path, "/bigchunked") == 0) {
		/* No Content-Length: only the write callback can stop it. */
		big = malloc(64 * 1024);
		memset(big, ' ', 64 * 1024);
		evhttp_send_reply_start(req, 200, "OK");
		for (i = 0; i < BIG_BODY / (64 * 1024); i++) {
			evbuffer_add(out, big, 64 * 1024);
			evhttp_send_reply_chunk(req, out);
		}
		evhttp_send_reply_end(req);
		free(big);
		evbuffer_free(out);
		return;
	} else
		code = 404;
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", out);
	evbuffer_free(out);
}

/* Every connection the plain server accepts comes through here. */
static struct bufferevent *
http_bevcb(struct event_base *b, __attribute__((unused)) void *arg)
{
	accepts++;
	return (bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE));
}

/* Every connection the TLS server accepts comes through here. */
static struct bufferevent *
https_bevcb(struct event_base *b, void *arg)
{
	SSL	*ssl = SSL_new(arg);

	tls_accepts++;
	return (bufferevent_openssl_socket_new(b, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE));
}

/* The port a listening socket is bound to. */
static int
fd_port(evutil_socket_t fd)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;

	if (getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		return (-1);
	return (ntohs(sin.sin_port));
}

/* Start an evhttp server on 127.0.0.1 with an ephemeral port. */
static struct evhttp *
http_start(int *port, struct bufferevent *(*bevcb)(struct event_base *, void *),
    void *arg)
{
	struct evhttp			*http;
	struct evhttp_bound_socket	*bs;

	http = evhttp_new(base);
	evhttp_set_gencb(http, http_cb, NULL);
	evhttp_set_bevcb(http, bevcb, arg);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (bs == NULL)
		return (NULL);
	*port = fd_port(evhttp_bound_socket_get_fd(bs));
	return (http);
}

/* Forget a raw connection and close it. */
static void
raw_free(struct bufferevent *bev)
{
	int	i;

	for (i = 0; i < MAX_RAW; i++) {
		if (raw[i] == bev)
			raw[i] = NULL;
	}
	bufferevent_free(bev);
}

/* Black hole: read and drop everything, never answer. */
static void
hole_read(struct bufferevent *bev, __attribute__((unused)) void *arg)
{
	evbuffer_drain(bufferevent_get_input(bev),
	    evbuffer_get_length(bufferevent_get_input(bev)));
}

/* Hang-up server: read the request head, then close without a word. */
static void
hang_read(struct bufferevent *bev, __attribute__((unused)) void *arg)
{
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 p;

	p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (p.pos != -1)
		raw_free(bev);
}

/* A raw connection closed or failed. */
static void
raw_event(struct bufferevent *bev, short what, __attribute__((unused)) void *arg)
{
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		raw_free(bev);
}

/* Accept for the raw servers; arg says which one. */
static void
raw_accept(__attribute__((unused)) struct evconnlistener *l,
    evutil_socket_t fd, __attribute__((unused)) struct sockaddr *sa,
    __attribute__((unused)) int salen, void *arg)
{
	struct bufferevent	*bev;
	int			 i;

	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(bev, arg != NULL ? hang_read : hole_read, NULL,
	    raw_event, NULL);
	bufferevent_enable(bev, EV_READ);
	for (i = 0; i < MAX_RAW; i++) {
		if (raw[i] == NULL) {
			raw[i] = bev;
			return;
		}
	}
	bufferevent_free(bev);
}

/* Start a raw server on 127.0.0.1 with an ephemeral port. */
static struct evconnlistener *
raw_start(int *port, int hang)
{
	struct evconnlistener	*l;
	struct sockaddr_in	 sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, raw_accept, hang ? (void *)1 : NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, -1,
	    (struct sockaddr *)&sin, sizeof sin);
	if (l != NULL)
		*port = fd_port(evconnlistener_get_fd(l));
	return (l);
}

/* A port on which nothing listens: bound, then closed. */
static int
dead_port(void)
{
	struct sockaddr_in	sin;
	int			fd, port;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0)
		return (1);
	port = fd_port(fd);
	close(fd);
	return (port);
}

/* The watchdog of run_until. */
static void
expire_cb(__attribute__((unused)) evutil_socket_t fd,
    __attribute__((unused)) short what, void *arg)
{
	*(int *)arg = 1;
}

/* Run the loop until *flag is set or ms milliseconds pass; returns *flag. */
static int
run_until(int *flag, int ms)
{
	struct event	*t;
	struct timeval	 tv;
	int		 expired = 0;

	t = evtimer_new(base, expire_cb, &expired);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(t, &tv);
	while (!*flag && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return (*flag);
}

/* Run the loop for ms milliseconds. */
static void
run_for(int ms)
{
	int	never = 0;

	run_until(&never, ms);
}

/* Record a reply; optionally cancel another call or shut down. */
static void
result_cb(const struct upstream_reply *r, void *arg)
{
	struct result	*res = arg;
	json_t		*v;

	res->called++;
	res->ok = r->ok;
	res->status = r->http_status;
	res->seconds = r->seconds;
	snprintf(res->error, sizeof res->error, "%s",
	    r->error != NULL ? r->error : "");
	if (r->ok) {
		if ((v = json_object_get(r->json, "errcode")) != NULL)
			res->errcode = (long)json_integer_value(v);
		if ((v = json_object_get(r->json, "n")) != NULL)
			res->n = (long)json_integer_value(v);
		snprintf(res->errmsg, sizeof res->errmsg, "%s",
		    json_string_value(json_object_get(r->json, "errmsg")) ?
		    json_string_value(json_object_get(r->json, "errmsg")) :
		    "");
		res->refs = r->json->refcount;
	}
	/* Cancelling oneself from one's own callback must be harmless. */
	upstream_cancel(res->call);
	if (res->other != NULL && !res->other->called)
		upstream_cancel(res->other->call);
	if (res->count != NULL)
		(*res->count)++;
	if (res->shutdown) {
		upstream_shutdown();
		/* The answer stays valid for the rest of the callback. */
		if (r->ok && (v = json_object_get(r->json, "errcode")) != NULL)
			res->errcode_after = (long)json_integer_value(v) + 1;
	}
	test_done = 1;
}

/* Make one call and wait for its callback. */
static void
call(struct result *res, const char *method, const char *path,
    const char *query, const char *body, int ms)
{
	memset(res, 0, sizeof *res);
	test_done = 0;
	res->call = upstream_request(method, path, query, body,
	    body != NULL ? strlen(body) : 0, result_cb, res);
	ok(res->called == 0, "%s %s: no callback from inside upstream_request",
	    method, path);
	run_until(&test_done, ms);
	is_int(res->called, 1, "%s %s: called once", method, path);
}

/* Point upstream at a base URL with a timeout and a CA file. */
static void
configure(const char *scheme, int port, int timeout, const char *ca)
{
	static struct config	conf;
	char			buf[128];

	snprintf(buf, sizeof buf, "%s://127.0.0.1:%d", scheme, port);
	memset(&conf, 0, sizeof conf);
	conf.api_base = buf;
	conf.ca_file = (char *)ca;
	conf.upstream_timeout = timeout;
	conf.max_inflight = 64;
	upstream_configure(&conf);
}

/* The basic replies of the plain server. */
static void
test_replies(void)
{
	struct result	 r;
	char		 body[5000];
	size_t		 i;

	call(&r, "GET", "/ok", "access_token=SECRET&x=1", NULL, 5000);
	ok(r.ok, "GET /ok: ok");
	is_int(r.status, 200, "GET /ok: status");
	is_int(r.errcode, 0, "GET /ok: errcode read from the json");
	is_int(r.n, 42, "GET /ok: n read from the json");
	is_int(seen_method, EVHTTP_REQ_GET, "GET /ok: server saw GET");
	is_str(seen_query, "access_token=SECRET&x=1", "GET /ok: query received");
	ok(r.seconds >= 0 && r.seconds < 5, "GET /ok: seconds %.3f", r.seconds);
	is_int(upstream_inflight(), 0, "GET /ok: nothing in flight after");

	/* Over 1024 bytes, where curl would otherwise send Expect. */
	for (i = 0; i < sizeof body - 1; i++)
		body[i] = 'a' + i % 26;
	memcpy(body, "{\"k\":\"", 6);
	memcpy(body + sizeof body - 3, "\"}", 2);
	body[sizeof body - 1] = '\0';
	call(&r, "POST", "/ok", NULL, body, 5000);
	ok(r.ok, "POST /ok: ok");
	is_int(seen_method, EVHTTP_REQ_POST, "POST /ok: server saw POST");
	is_int(seen_bodylen, strlen(body), "POST /ok: body length");
	ok(seen_body != NULL && strcmp(seen_body, body) == 0,
	    "POST /ok: body received exactly");
	is_str(seen_ctype, "application/json", "POST /ok: content type");
	ok(!seen_expect, "POST /ok: no Expect header");
	ok(seen_query == NULL, "POST /ok: no query");

	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(r.ok, "GET after POST: ok");
	is_int(seen_method, EVHTTP_REQ_GET, "GET after POST: server saw GET");
	is_int(seen_bodylen, 0, "GET after POST: no body");

	call(&r, "POST", "/500", NULL, "{}", 5000);
	ok(!r.ok, "500: fails");
	is_int(r.status, 500, "500: http_status");
	is_str(r.error, "http 500", "500: error");

	call(&r, "GET", "/404", NULL, NULL, 5000);
	is_str(r.error, "http 404", "404: error");

	call(&r, "GET", "/text", NULL, NULL, 5000);
	ok(!r.ok, "text: fails");
	is_int(r.status, 200, "text: http_status");
	is_str(r.error, "bad json", "text: error");

	call(&r, "GET", "/array", NULL, NULL, 5000);
	ok(!r.ok, "array: fails");
	is_str(r.error, "json not an object", "array: error");

	call(&r, "GET", "/dup", NULL, NULL, 5000);
	is_str(r.error, "bad json", "duplicate keys: error");

	call(&r, "GET", "/empty", NULL, NULL, 5000);
	is_str(r.error, "bad json", "empty body: error");

	call(&r, "GET", "/big", NULL, NULL, 5000);
	ok(!r.ok, "big: fails");
	is_str(r.error, "body too large", "big (Content-Length): error");

	call(&r, "GET", "/bigchunked", NULL, NULL, 5000);
	is_str(r.error, "body too large", "big (chunked): error");

	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(r.ok, "GET /ok after the failures: ok");

	call(&r, "GET", "no-slash", NULL, NULL, 5000);
	is_str(r.error, "bad url", "path without '/': error, later");

	/*
	 * WeChat's usual answer, byte for byte, is handed on as one object
	 * parsed at start (held by upstream.c and for the callback: two
	 * references); anything else is parsed (one).
	 */
	call(&r, "POST", "/okexact", NULL, "{}", 5000);
	ok(r.ok, "usual answer: ok");
	is_int(r.errcode, 0, "usual answer: errcode 0");
	is_str(r.errmsg, "ok", "usual answer: errmsg");
	is_int(r.refs, 2, "usual answer: the object parsed at start");
	call(&r, "POST", "/okexact", NULL, "{}", 5000);
	ok(r.ok && r.refs == 2, "usual answer again: the same (%zu)", r.refs);
	call(&r, "POST", "/ok", NULL, "{}", 5000);
	ok(r.ok && r.n == 42, "a longer answer: parsed");
	is_int(r.refs, 1, "a longer answer: its own object");
	call(&r, "POST", "/okspace", NULL, "{}", 5000);
	ok(r.ok && r.errcode == 0, "the same answer spaced: ok");
	is_int(r.refs, 1, "the same answer spaced: parsed");
	is_str(r.errmsg, "ok", "the same answer spaced: errmsg");
	call(&r, "POST", "/okbad", NULL, "{}", 5000);
	is_str(r.error, "bad json", "usual answer's length, last byte wrong: "
	    "bad json");
	call(&r, "POST", "/okdup", NULL, "{}", 5000);
	is_str(r.error, "bad json", "usual answer with a duplicate key: bad json");

	/*
	 * A recycled handle keeps its parsed URL while the next call's is the
	 * same: a new token or path must still reach the server.
	 */
	call(&r, "GET", "/ok", "access_token=A", NULL, 5000);
	call(&r, "GET", "/ok", "access_token=A", NULL, 5000);
	is_str(seen_query, "access_token=A", "same URL again: query received");
	call(&r, "GET", "/ok", "access_token=B", NULL, 5000);
	ok(r.ok, "new token on a recycled handle: ok");
	is_str(seen_query, "access_token=B", "new token: the new query sent");
	call(&r, "GET", "/text", "access_token=B", NULL, 5000);
	is_str(r.error, "bad json", "new path, same token: the new path");

	/* A URL libcurl refuses to parse fails as before, and is not kept. */
	call(&r, "GET", "/a b", "access_token=B", NULL, 5000);
	is_str(r.error, "bad url", "URL with a space: error, later");
	call(&r, "GET", "/ok", "access_token=B", NULL, 5000);
	ok(r.ok, "after a refused URL: ok");
	is_str(seen_query, "access_token=B", "after a refused URL: query");
}

/* Timeouts, refused connections and hang-ups. */
static void
test_failures(void)
{
	struct result	r;

	configure("http", hole_port, 1, NULL);
	call(&r, "GET", "/slow", NULL, NULL, 5000);
	is_str(r.error, "timed out", "black hole: timed out");
	is_int(r.status, 0, "black hole: no http_status");
	ok(r.seconds > 0.9 && r.seconds < 3, "black hole: after %.3fs",
	    r.seconds);

	configure("http", dead_port(), 5, NULL);
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	is_str(r.error, "connect failed", "refused: connect failed");
	is_int(r.status, 0, "refused: no http_status");

	configure("http", hang_port, 5, NULL);
	call(&r, "POST", "/ok", NULL, "{}", 5000);
	is_str(r.error, "connection dropped", "hang-up: connection dropped");

	configure("http", http_port, 5, NULL);
}

/* Issue the next of a chain of sequential calls from the callback. */
static void
seq_cb(const struct upstream_reply *r, void *arg)
{
	int	*left = arg;

	if (!r->ok)
		left[1]++;
	if (--left[0] == 0) {
		test_done = 1;
		return;
	}
	upstream_request("GET", "/ok", "i=1", NULL, 0, seq_cb, arg);
}

/* Sequential calls reuse a connection; concurrent calls all finish. */
static void
test_load(void)
{
	struct result	 r[100];
	int		 left[2] = { 200, 0 }, count = 0, i, before, allok;

	/* Start with an empty connection cache. */
	upstream_shutdown();
	upstream_init(base);
	configure("http", http_port, 5, NULL);

	before = accepts;
	test_done = 0;
	upstream_request("GET", "/ok", "i=1", NULL, 0, seq_cb, left);
	run_until(&test_done, 20000);
	is_int(left[0], 0, "200 sequential: all done");
	is_int(left[1], 0, "200 sequential: none failed");
	ok(accepts - before >= 1 && accepts - before <= 2,
	    "200 sequential: %d connections", accepts - before);
	before = accepts;

	memset(r, 0, sizeof r);
	for (i = 0; i < 100; i++) {
		r[i].count = &count;
		r[i].call = upstream_request("POST", "/ok", NULL, "{\"a\":1}", 7,
		    result_cb, &r[i]);
	}
	is_int(upstream_inflight(), 100, "100 concurrent: in flight");
	for (i = 0; i < 200 && count < 100; i++) {
		test_done = 0;
		run_until(&test_done, 10000);
	}
	is_int(count, 100, "100 concurrent: all called");
	allok = 1;
	for (i = 0; i < 100; i++) {
		if (!r[i].ok || r[i].called != 1)
			allok = 0;
	}
	ok(allok, "100 concurrent: each called once, ok");
	is_int(upstream_inflight(), 0, "100 concurrent: nothing in flight");
	ok(accepts - before > 10, "100 concurrent: %d connections",
	    accepts - before);
}

/* Submit a call from inside the loop, as the daemon does. */
static void
submit_cb(__attribute__((unused)) evutil_socket_t fd,
    __attribute__((unused)) short what, void *arg)
{
	struct result	*res = arg;

	res->call = upstream_request("GET", "/ok", "i=2", NULL, 0, result_cb,
	    res);
}

/*
 * A call submitted from a callback goes out on its kept-alive connection in
 * that same loop iteration: no 0 ms timer, so no epoll_wait of its own.
 */
static void
test_same_iteration(void)
{
	struct result	 r;
	struct event	*ev;
	int		 waiting = 0, rc;

	call(&r, "GET", "/ok", "i=1", NULL, 5000);
	ok(r.ok && last_conn_fd >= 0, "same iteration: connection up (%s)",
	    r.error);
	run_for(50);	/* evhttp ready for the next request on it */
	memset(&r, 0, sizeof r);
	test_done = 0;
	ev = event_new(base, -1, 0, submit_cb, &r);
	event_active(ev, EV_TIMEOUT, 0);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	rc = ioctl(last_conn_fd, FIONREAD, &waiting);
	ok(rc == 0 && waiting > 0,
	    "same iteration: the request is on the wire (%d bytes)", waiting);
	run_until(&test_done, 5000);
	ok(r.called == 1 && r.ok, "same iteration: answered (%s)", r.error);
	event_free(ev);
}

/* Cancelled calls never call back. */
static void
test_cancel(void)
{
	struct result	a, b, c;

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	configure("http", hole_port, 5, NULL);
	a.call = upstream_request("GET", "/slow", NULL, NULL, 0, result_cb, &a);
	run_for(100);
	configure("http", http_port, 5, NULL);
	b.call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb, &b);
	is_int(upstream_inflight(), 2, "cancel: two in flight");
	upstream_cancel(a.call);
	upstream_cancel(b.call);
	is_int(upstream_inflight(), 0, "cancel: none in flight");
	run_for(300);
	ok(!a.called, "cancel: connected call not called");
	ok(!b.called, "cancel: fresh call not called");

	memset(&c, 0, sizeof c);
	c.call = upstream_request("GET", "no-slash", NULL, NULL, 0, result_cb, &c);
	upstream_cancel(c.call);
	run_for(50);
	ok(!c.called, "cancel: early failure not called");

	/* Whichever finishes first cancels the other, even if it is done too. */
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.other = &b;
	b.other = &a;
	a.call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb, &a);
	b.call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb, &b);
	run_for(500);
	is_int(a.called + b.called, 1, "cancel from a callback: one called");
	is_int(upstream_inflight(), 0, "cancel from a callback: none in flight");
}

/* HTTPS with a throwaway self-signed certificate. */
static void
test_tls(const char *dir)
{
	SSL_CTX		*ctx;
	struct evhttp	*https;
	struct result	 r;
	char		 cmd[2048], cert[512], key[512];
	int		 before;

	snprintf(cert, sizeof cert, "%s/cert.pem", dir);
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 "
	    "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s "
	    ">/dev/null 2>&1", key, cert);
	if (system(cmd) != 0) {
		printf("ok %d # skip no openssl command\n", ++tap_n);
		return;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ok(0, "tls: load the certificate");
		SSL_CTX_free(ctx);
		return;
	}
	https = http_start(&https_port, https_bevcb, ctx);
	ok(https != NULL, "tls: server started");

	configure("https", https_port, 5, cert);
	call(&r, "POST", "/ok", "access_token=T", "{\"x\":\"y\"}", 5000);
	ok(r.ok, "tls with ca_file: ok (%s)", r.error);
	is_int(r.n, 42, "tls with ca_file: json");
	is_str(seen_body, "{\"x\":\"y\"}", "tls with ca_file: body received");

	before = tls_accepts;
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(r.ok, "tls again: ok");
	is_int(tls_accepts - before, 0, "tls again: connection reused");

	configure("https", https_port, 5, NULL);
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(!r.ok, "tls with system CAs: refused");
	is_str(r.error, "tls error", "tls with system CAs: tls error");

	configure("https", https_port, 5, cert);
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(r.ok, "tls with ca_file again: ok");

	configure("http", https_port, 5, NULL);
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(!r.ok, "http to a tls port: fails (%s)", r.error);

	configure("http", http_port, 5, NULL);
	upstream_shutdown();	/* drop cached TLS connections before the server */
	upstream_init(base);
	configure("http", http_port, 5, NULL);
	evhttp_free(https);
	SSL_CTX_free(ctx);
	unlink(cert);
	unlink(key);
}

/* Shutdown from a callback and with calls in flight. */
static void
test_shutdown(void)
{
	struct result	a, b, c[5], r;
	int		i, any;

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	a.shutdown = b.shutdown = 1;
	a.call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb, &a);
	b.call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb, &b);
	run_for(500);
	is_int(a.called + b.called, 1, "shutdown in a callback: one called");
	is_int(upstream_inflight(), 0, "shutdown in a callback: none in flight");

	is_int(upstream_init(base), 0, "init again");
	configure("http", hole_port, 5, NULL);
	memset(c, 0, sizeof c);
	for (i = 0; i < 4; i++)
		c[i].call = upstream_request("POST", "/slow", NULL, "{}", 2,
		    result_cb, &c[i]);
	run_for(100);
	configure("http", http_port, 5, NULL);
	c[4].call = upstream_request("GET", "/ok", NULL, NULL, 0, result_cb,
	    &c[4]);
	is_int(upstream_inflight(), 5, "shutdown: five in flight");
	upstream_shutdown();
	is_int(upstream_inflight(), 0, "shutdown: none in flight");
	run_for(200);
	any = 0;
	for (i = 0; i < 5; i++)
		any += c[i].called;
	is_int(any, 0, "shutdown: no callbacks");
	upstream_shutdown();
	is_int(upstream_inflight(), 0, "shutdown twice: none in flight");
	/* The second shutdown left nothing behind that a new start trips on. */
	is_int(upstream_init(base), 0, "shutdown twice: init works again");
	configure("http", http_port, 5, NULL);
	call(&r, "GET", "/ok", NULL, NULL, 5000);
	ok(r.ok && r.n == 42, "shutdown twice: then a call works (%s)",
	    r.error);
	upstream_shutdown();

	/* The shared usual answer outlives a shutdown in its callback. */
	is_int(upstream_init(base), 0, "init for the usual answer");
	configure("http", http_port, 5, NULL);
	memset(&a, 0, sizeof a);
	a.shutdown = 1;
	test_done = 0;
	a.call = upstream_request("POST", "/okexact", NULL, "{}", 2, result_cb,
	    &a);
	run_until(&test_done, 5000);
	ok(a.ok && a.refs == 2, "usual answer, shutdown in its callback: ok");
	is_int(a.errcode_after, 1, "usual answer: still readable after shutdown");
}

int
main(void)
{
	struct evhttp		*http;
	struct evconnlistener	*hole, *hang;
	char			 dir[] = "/tmp/test_upstream.XXXXXX";
	int			 i;

	log_init("test_upstream", 0, getenv("TEST_DEBUG") ? LOG_LEVEL_DEBUG :
	    LOG_LEVEL_WARN);
	base = event_base_new();
	http = http_start(&http_port, http_bevcb, NULL);
	hole = raw_start(&hole_port, 0);
	hang = raw_start(&hang_port, 1);
	ok(http != NULL && hole != NULL && hang != NULL, "servers started");
	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return (tap_done());
	}

	is_int(upstream_init(base), 0, "upstream_init");
	configure("http", http_port, 5, NULL);

	test_replies();
	test_failures();
	test_load();
	test_same_iteration();
	test_cancel();
	test_tls(dir);
	test_shutdown();

	for (i = 0; i < MAX_RAW; i++) {
		if (raw[i] != NULL)
			raw_free(raw[i]);
	}
	evconnlistener_free(hole);
	evconnlistener_free(hang);
	evhttp_free(http);
	event_base_free(base);
	rmdir(dir);
	free(seen_query);
	free(seen_body);
	free(seen_ctype);
	return (tap_done());
}
