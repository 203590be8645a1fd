/*
 * wxpush-mock: main, command line, the HTTP(S) server, request dispatch and
 * the reply helpers every endpoint uses.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

/* Idle keep-alive connections are closed after this many seconds. */
#define MOCK_HTTP_TIMEOUT	60
#define MOCK_BACKLOG		1024
#define MOCK_JSON_TYPE		"application/json; encoding=utf-8"

struct event_base	*mock_base;
struct mock_config	 mock_conf = {
	.expires_in = 7200,
	.rotation_window = 300,
	.overlap = 300,
};
struct mock_stats	 mock_stats;

const struct mock_endpoint mock_endpoints[MOCK_EP_COUNT] = {
	[MOCK_EP_TOKEN] = { "/cgi-bin/token", EVHTTP_REQ_GET,
	    mock_token_classic },
	[MOCK_EP_STABLE_TOKEN] = { "/cgi-bin/stable_token", EVHTTP_REQ_POST,
	    mock_token_stable },
	[MOCK_EP_SUBSCRIBE] = { "/cgi-bin/message/template/subscribe",
	    EVHTTP_REQ_POST, mock_send_subscribe },
	[MOCK_EP_COMPONENT_TOKEN] = { "/cgi-bin/component/api_component_token",
	    EVHTTP_REQ_POST, mock_component_token },
	[MOCK_EP_QUERY_AUTH] = { "/cgi-bin/component/api_query_auth",
	    EVHTTP_REQ_POST, mock_component_query_auth },
	[MOCK_EP_AUTHORIZER_TOKEN] = {
	    "/cgi-bin/component/api_authorizer_token", EVHTTP_REQ_POST,
	    mock_component_authorizer_token },
	[MOCK_EP_AUTHORIZER_LIST] = {
	    "/cgi-bin/component/api_get_authorizer_list", EVHTTP_REQ_POST,
	    mock_component_authorizer_list },
	[MOCK_EP_START_PUSH_TICKET] = {
	    "/cgi-bin/component/api_start_push_ticket", EVHTTP_REQ_POST,
	    mock_component_start_push },
	[MOCK_EP_PREAUTHCODE] = {
	    "/cgi-bin/component/api_create_preauthcode", EVHTTP_REQ_POST,
	    mock_component_preauthcode },
	[MOCK_EP_TEMPLATE_SEND] = { "/cgi-bin/message/template/send",
	    EVHTTP_REQ_POST, mock_kinds_template },
	[MOCK_EP_BIZSEND] = { "/cgi-bin/message/subscribe/bizsend",
	    EVHTTP_REQ_POST, mock_kinds_bizsend },
	[MOCK_EP_SUBSCRIBE_SEND] = { "/cgi-bin/message/subscribe/send",
	    EVHTTP_REQ_POST, mock_kinds_subscribe },
	[MOCK_EP_CUSTOM_SEND] = { "/cgi-bin/message/custom/send",
	    EVHTTP_REQ_POST, mock_kinds_custom },
	[MOCK_EP_GETTICKET] = { "/cgi-bin/ticket/getticket", EVHTTP_REQ_GET,
	    mock_api_getticket },
	[MOCK_EP_DOMAIN_IP] = { "/cgi-bin/get_api_domain_ip", EVHTTP_REQ_GET,
	    mock_api_domain_ip },
	[MOCK_EP_ECHO] = { "/cgi-bin/mock/echo", EVHTTP_REQ_POST,
	    mock_api_echo },
	[MOCK_EP_LEAK] = { "/cgi-bin/mock/leak", EVHTTP_REQ_GET,
	    mock_api_leak },
	[MOCK_EP_BIG] = { "/cgi-bin/mock/big", EVHTTP_REQ_GET, mock_api_big },
};

static int		 mock_debug;
static SSL_CTX		*mock_tls;
static int		 mock_tls_idx = -1;
static struct event	*mock_pause_ev;
static struct evhttp_bound_socket *mock_bound;
static uint64_t		 mock_prng[2];

static const struct option mock_options[] = {
	{ "debug",		no_argument,		NULL, 'd' },
	{ "help",		no_argument,		NULL, 'h' },
	{ "listen",		required_argument,	NULL, 'l' },
	{ "version",		no_argument,		NULL, 'V' },
	{ "port-file",		required_argument,	NULL, 'p' },
	{ "cert",		required_argument,	NULL, 'c' },
	{ "key",		required_argument,	NULL, 'k' },
	{ "expires-in",		required_argument,	NULL, 'e' },
	{ "rotation-window",	required_argument,	NULL, 'w' },
	{ "overlap",		required_argument,	NULL, 'o' },
	{ "account",		required_argument,	NULL, 'a' },
	{ "component",		required_argument,	NULL, 'C' },
	{ "event-url",		required_argument,	NULL, 'u' },
	{ NULL,			0,			NULL, 0 }
};

/* The synopsis, on stdout for -h and stderr for mistakes. */
static void
mock_usage(FILE *f)
{
	fprintf(f,
	    "usage: wxpush-mock [-dhV] [-l addr:port] [--port-file file]\n"
	    "                   [--cert pem --key pem] [--expires-in n]\n"
	    "                   [--rotation-window n] [--overlap n]\n"
	    "                   [--account appid:secret]...\n"
	    "                   [--component appid:secret:token:aeskey]...\n"
	    "                   [--event-url url]\n");
}

/* The index of the endpoint serving path, or -1. */
int
mock_endpoint_find(const char *path)
{
	int i;

	if (strncmp(path, "/cgi-bin/", 9) != 0)
		return (-1);
	for (i = 0; i < MOCK_EP_COUNT; i++) {
		if (strcmp(mock_endpoints[i].path, path) == 0)
			return (i);
	}
	return (-1);
}

/* The reason phrase for an HTTP status. */
static const char *
mock_reason(int status)
{
	switch (status) {
	case 200:
		return ("OK");
	case 400:
		return ("Bad Request");
	case 403:
		return ("Forbidden");
	case 404:
		return ("Not Found");
	case 405:
		return ("Method Not Allowed");
	case 409:
		return ("Conflict");
	case 413:
		return ("Payload Too Large");
	case 429:
		return ("Too Many Requests");
	case 500:
		return ("Internal Server Error");
	case 502:
		return ("Bad Gateway");
	case 503:
		return ("Service Unavailable");
	case 504:
		return ("Gateway Timeout");
	}
	return ("Status");
}

/* Send a complete reply with that status, content type and body. */
void
mock_reply(struct evhttp_request *req, int status, const char *ctype,
    const char *body, size_t len)
{
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", ctype);
	if (len != 0)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, status, mock_reason(status), NULL);
}

/* Answer a JSON object (consumed) with HTTP 200. */
void
mock_reply_json(struct mock_call *call, json_t *o)
{
	char *s;

	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		mock_stats.errors[call->ep]++;
		mock_reply(call->req, 500, MOCK_JSON_TYPE,
		    MOCK_LIT("{\"errcode\":-1,\"errmsg\":\"system error\"}"));
		return;
	}
	mock_reply(call->req, 200, MOCK_JSON_TYPE, s, strlen(s));
	free(s);
	json_decref(o);
}

/* Answer {"errcode":0,"errmsg":"ok"}. */
void
mock_reply_ok(struct mock_call *call)
{
	static const char ok[] = "{\"errcode\":0,\"errmsg\":\"ok\"}";

	mock_reply(call->req, 200, MOCK_JSON_TYPE, ok, sizeof ok - 1);
}

/* {"errcode":N,"errmsg":"msg rid: ..."}; NULL only if msg is not UTF-8. */
static json_t *
mock_error_json(int errcode, const char *msg)
{
	char rid[32], full[MOCK_ERRMSG_MAX + 64];

	if (errcode == 0)
		snprintf(full, sizeof full, "%s", msg);
	else {
		mock_rid(rid, sizeof rid);
		snprintf(full, sizeof full, "%s rid: %s", msg, rid);
	}
	return (json_pack("{s:i,s:s}", "errcode", errcode, "errmsg", full));
}

/* Answer a WeChat error with HTTP 200, as WeChat does. */
void
mock_reply_error(struct mock_call *call, int errcode, const char *fmt, ...)
{
	char msg[MOCK_ERRMSG_MAX + 1];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if ((o = mock_error_json(errcode, msg)) == NULL)
		o = mock_error_json(errcode, "error");
	if (errcode != 0)
		mock_stats.errors[call->ep]++;
	mock_reply_json(call, o);
}

/* Answer HTTP 503 when a bounded table is full. */
void
mock_reply_busy(struct mock_call *call, const char *what)
{
	char msg[MOCK_ERRMSG_MAX + 1];
	json_t *o;
	char *s;

	snprintf(msg, sizeof msg, "system busy: %s", what);
	mock_stats.errors[call->ep]++;
	o = mock_error_json(-1, msg);
	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("json_dumps failed");
	mock_reply(call->req, 503, MOCK_JSON_TYPE, s, strlen(s));
	free(s);
	json_decref(o);
}

/* A query string parameter of the call, or NULL. */
const char *
mock_call_param(struct mock_call *call, const char *name)
{
	return (evhttp_find_header(&call->query, name));
}

/*
 * The request body as a JSON object, or NULL after answering 47001. The
 * caller owns the reference.
 */
json_t *
mock_call_body(struct mock_call *call)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(call->req);
	size_t len = evbuffer_get_length(in);
	json_error_t error;
	const char *p;
	json_t *o;

	if (len == 0) {
		mock_reply_error(call, 47001, "data format error: empty body");
		return (NULL);
	}
	p = (const char *)evbuffer_pullup(in, -1);
	if ((o = json_loadb(p, len, 0, &error)) == NULL) {
		mock_reply_error(call, 47001, "data format error: body is not "
		    "JSON");
		return (NULL);
	}
	if (!json_is_object(o)) {
		json_decref(o);
		mock_reply_error(call, 47001, "data format error: body is not "
		    "a JSON object");
		return (NULL);
	}
	return (o);
}

/* Run a call's handler: method check, query string, then the endpoint. */
void
mock_call_run(struct mock_call *call)
{
	const struct mock_endpoint *e = &mock_endpoints[call->ep];
	const struct evhttp_uri *uri;
	const char *q = NULL;

	call->now = time(NULL);
	TAILQ_INIT(&call->query);
	if (evhttp_request_get_command(call->req) != e->method) {
		if (e->method == EVHTTP_REQ_GET)
			mock_reply_error(call, 43001, "require GET method");
		else
			mock_reply_error(call, 43002, "require POST method");
		return;
	}
	if ((uri = evhttp_request_get_evhttp_uri(call->req)) != NULL)
		q = evhttp_uri_get_query(uri);
	if (q != NULL && evhttp_parse_query_str(q, &call->query) != 0) {
		evhttp_clear_headers(&call->query);
		mock_reply_error(call, 47001, "data format error: bad query "
		    "string");
		return;
	}
	e->handler(call);
	evhttp_clear_headers(&call->query);
}

/* A method's name for the debug log. */
static const char *
mock_method_name(enum evhttp_cmd_type method)
{
	switch (method) {
	case EVHTTP_REQ_GET:
		return ("GET");
	case EVHTTP_REQ_POST:
		return ("POST");
	default:
		return ("OTHER");
	}
}

/* Every request: control API, WeChat endpoint (after faults) or 404. */
static void
mock_request(struct evhttp_request *req, void *arg)
{
	static const char nf[] =
	    "{\"errcode\":-1,\"errmsg\":\"no such api path\"}";
	const struct evhttp_uri *uri;
	const char *path = NULL;
	struct mock_call call;
	int ep;

	(void)arg;
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		path = evhttp_uri_get_path(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	/* The path only: the query string holds tokens and secrets. */
	if (mock_debug)
		log_debug("%s %.256s",
		    mock_method_name(evhttp_request_get_command(req)), path);

	if (strncmp(path, "/mock/", 6) == 0) {
		mock_control(req, path);
		return;
	}
	if ((ep = mock_endpoint_find(path)) == -1) {
		mock_stats.unknown_paths++;
		mock_reply(req, 404, MOCK_JSON_TYPE, nf, sizeof nf - 1);
		return;
	}
	mock_stats.calls[ep]++;
	memset(&call, 0, sizeof call);
	call.req = req;
	call.ep = ep;
	if (mock_fault_apply(&call))
		return;
	mock_call_run(&call);
}

/* A request id for error messages; not secret, so a fast generator. */
void
mock_rid(char *buf, size_t len)
{
	uint64_t a = mock_prng[0], b = mock_prng[1];

	/* xorshift128+ */
	mock_prng[0] = b;
	a ^= a << 23;
	mock_prng[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
	a = mock_prng[1] + b;
	snprintf(buf, len, "%08x-%08x-%08x", (u_int)(a >> 32), (u_int)a,
	    (u_int)(time(NULL) & 0xffffffff));
}

/* Fill out with the base64url encoding of n random bytes (n <= 128). */
void
mock_random_b64url(char *out, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[128];
	size_t i, o = 0;
	uint32_t v;

	if (n > sizeof raw)
		fatalx("%s: too long", __func__);
	if (RAND_bytes(raw, (int)n) != 1)
		fatalx("RAND_bytes failed");
	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 |
		    raw[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)raw[i + 1] << 8;
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
	}
	out[o] = '\0';
	OPENSSL_cleanse(raw, sizeof raw);
}

/* The string member key of a JSON object, or NULL if absent or not a string. */
const char *
mock_json_str(json_t *o, const char *key)
{
	return (json_string_value(json_object_get(o, key)));
}

/* Whether s is a plausible appid: 1-64 characters of [A-Za-z0-9_-]. */
int
mock_appid_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return (0);
	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-");
	return (n > 0 && n <= MOCK_APPID_MAX && s[n] == '\0');
}

/* The number of code points in a valid UTF-8 string. */
size_t
mock_utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	}
	return (n);
}

/* Count each TLS connection's first completed handshake. */
static void
mock_tls_info(const SSL *ssl, int where, int ret)
{
	(void)ret;
	if ((where & SSL_CB_HANDSHAKE_DONE) &&
	    SSL_get_ex_data(ssl, mock_tls_idx) == NULL) {
		mock_stats.tls_handshakes++;
		SSL_set_ex_data((SSL *)ssl, mock_tls_idx, &mock_tls_idx);
	}
}

/* Load the certificate and key; fatal on any error. */
static void
mock_tls_init(const char *cert, const char *key)
{
	char err[256];

	if ((mock_tls = SSL_CTX_new(TLS_server_method())) == NULL)
		fatalx("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(mock_tls, TLS1_2_VERSION);
	SSL_CTX_set_options(mock_tls, SSL_OP_NO_RENEGOTIATION);
	if (SSL_CTX_use_certificate_chain_file(mock_tls, cert) != 1) {
		ERR_error_string_n(ERR_get_error(), err, sizeof err);
		fatalx("%s: %s", cert, err);
	}
	if (SSL_CTX_use_PrivateKey_file(mock_tls, key, SSL_FILETYPE_PEM) != 1) {
		ERR_error_string_n(ERR_get_error(), err, sizeof err);
		fatalx("%s: %s", key, err);
	}
	if (SSL_CTX_check_private_key(mock_tls) != 1)
		fatalx("%s does not match %s", key, cert);
	mock_tls_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	if (mock_tls_idx == -1)
		fatalx("SSL_get_ex_new_index failed");
	SSL_CTX_set_info_callback(mock_tls, mock_tls_info);
}

/* A bufferevent for each accepted connection: TLS when configured. */
static struct bufferevent *
mock_bevcb(struct event_base *base, void *arg)
{
	struct bufferevent *bev;
	SSL *ssl;

	(void)arg;
	mock_stats.connections++;
	if (mock_tls == NULL) {
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL)
			fatalx("bufferevent_socket_new failed");
		return (bev);
	}
	if ((ssl = SSL_new(mock_tls)) == NULL)
		fatalx("SSL_new failed");
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		fatalx("bufferevent_openssl_socket_new failed");
	/* Clients that close without close_notify are not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return (bev);
}

/* Resume accepting after a pause. */
static void
mock_pause_done(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	evconnlistener_enable(arg);
}

/* Out of descriptors: stop accepting for a second instead of spinning. */
static void
mock_accept_error(struct evconnlistener *lev, void *arg)
{
	struct timeval tv = { 1, 0 };
	int error = EVUTIL_SOCKET_ERROR();

	(void)arg;
	if (error != EMFILE && error != ENFILE && error != ENOBUFS &&
	    error != ENOMEM)
		return;
	log_warnx("accept: %s; pausing for a second", strerror(error));
	evconnlistener_disable(lev);
	evtimer_add(mock_pause_ev, &tv);
}

/* SIGTERM, SIGINT: leave the loop and exit 0. */
static void
mock_signal(evutil_socket_t sig, short events, void *arg)
{
	(void)events;
	(void)arg;
	log_info("signal %d: exiting", (int)sig);
	event_base_loopbreak(mock_base);
}

/* A number option within [min, max]; fatal otherwise. */
static int
mock_number(const char *s, long long min, long long max, const char *what)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		fatalx("%s: %s must be an integer in %lld..%lld", s, what, min,
		    max);
	return ((int)v);
}

/* --account APPID:SECRET */
static void
mock_option_account(const char *arg)
{
	char *copy, *secret, *cause;

	copy = xstrdup(arg);
	if ((secret = strchr(copy, ':')) == NULL)
		fatalx("--account wants APPID:SECRET");
	*secret++ = '\0';
	if (mock_account_add(copy, secret, &cause) != 0)
		fatalx("--account %s: %s", copy, cause);
	freezero_str(copy);
}

/* --component APPID:SECRET:TOKEN:ENCODINGAESKEY (the token may hold ':'). */
static void
mock_option_component(const char *arg)
{
	char *copy, *secret, *token, *key, *cause;

	copy = xstrdup(arg);
	if ((secret = strchr(copy, ':')) == NULL)
		goto bad;
	*secret++ = '\0';
	if ((token = strchr(secret, ':')) == NULL)
		goto bad;
	*token++ = '\0';
	if ((key = strrchr(token, ':')) == NULL)
		goto bad;
	*key++ = '\0';
	if (mock_component_add(copy, secret, token, key, &cause) != 0)
		fatalx("--component %s: %s", copy, cause);
	freezero_str(copy);
	return;
bad:
	fatalx("--component wants APPID:SECRET:TOKEN:ENCODINGAESKEY");
}

/* Write the port through a temporary file: readers see all or nothing. */
static void
mock_port_file(const char *path, int port)
{
	char *tmp;
	FILE *f;

	xasprintf(&tmp, "%s.tmp.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL)
		fatal("%s", tmp);
	if (fprintf(f, "%d\n", port) < 0 || fclose(f) != 0)
		fatal("%s", tmp);
	if (rename(tmp, path) != 0)
		fatal("rename %s", path);
	free(tmp);
}

/* Let a benchmark use as many descriptors as the hard limit allows. */
static void
mock_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("setrlimit");
	}
}

/* Parse a numeric ADDR:PORT or [ADDR6]:PORT; port 0 lets the kernel pick. */
static int
mock_parse_listen(const char *s, struct sockaddr_storage *ss, int *len)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char *copy, *host, *port, *end;
	size_t n;
	long p;
	int rc = -1;

	memset(ss, 0, sizeof *ss);
	copy = xstrdup(s);
	if ((port = strrchr(copy, ':')) == NULL)
		goto out;
	*port++ = '\0';
	errno = 0;
	p = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535)
		goto out;
	host = copy;
	if (*host == '[') {
		host++;
		if ((n = strlen(host)) == 0 || host[n - 1] != ']')
			goto out;
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			goto out;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*len = sizeof *sin6;
	} else {
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			goto out;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*len = sizeof *sin;
	}
	rc = 0;
out:
	free(copy);
	return (rc);
}

/* Bind, print "listening on ADDR:PORT" and write the port file. */
static void
mock_listen(struct evhttp *http, const char *listen, const char *port_file)
{
	struct sockaddr_storage ss;
	struct sockaddr *sa = (struct sockaddr *)&ss;
	struct evconnlistener *lev;
	char addr[INET6_ADDRSTRLEN];
	socklen_t len = sizeof ss;
	int slen, port, on = 1;
	evutil_socket_t fd;

	if (mock_parse_listen(listen, &ss, &slen) != 0)
		fatalx("%s: -l wants a numeric ADDR:PORT ([ADDR]:PORT for "
		    "IPv6)", listen);
	lev = evconnlistener_new_bind(mock_base, NULL, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    MOCK_BACKLOG, sa, slen);
	if (lev == NULL)
		fatal("bind %s", listen);
	evconnlistener_set_error_cb(lev, mock_accept_error);
	/*
	 * Accepted sockets inherit TCP_NODELAY: a TLS reply leaves as several
	 * records, and Nagle plus delayed ACKs would stall each by 40 ms.
	 */
	if (setsockopt(evconnlistener_get_fd(lev), IPPROTO_TCP, TCP_NODELAY,
	    &on, sizeof on) != 0)
		log_warn("setsockopt TCP_NODELAY");
	mock_pause_ev = evtimer_new(mock_base, mock_pause_done, lev);
	if ((mock_bound = evhttp_bind_listener(http, lev)) == NULL)
		fatalx("evhttp_bind_listener failed");

	fd = evconnlistener_get_fd(lev);
	if (getsockname(fd, sa, &len) != 0)
		fatal("getsockname");
	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    addr, sizeof addr);
		port = ntohs(((struct sockaddr_in6 *)sa)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr,
		    addr, sizeof addr);
		port = ntohs(((struct sockaddr_in *)sa)->sin_port);
	}
	/* The port file first: whoever reads stdout may then read it. */
	if (port_file != NULL)
		mock_port_file(port_file, port);
	if (sa->sa_family == AF_INET6)
		printf("listening on [%s]:%d\n", addr, port);
	else
		printf("listening on %s:%d\n", addr, port);
	fflush(stdout);
	log_info("listening on port %d (%s)", port,
	    mock_tls != NULL ? "https" : "http");
}

/* Parse the command line, set up, serve until SIGTERM or SIGINT. */
int
main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:0", *port_file = NULL;
	const char *cert = NULL, *key = NULL;
	struct timeval drain = { 0, 200000 };
	struct event *sigterm, *sigint;
	struct evhttp *http;
	char **accounts, **components, *cause;
	int ch, naccounts = 0, ncomponents = 0, i;

	log_init("wxpush-mock", 0, LOG_LEVEL_INFO);
	accounts = xcalloc(argc, sizeof *accounts);
	components = xcalloc(argc, sizeof *components);
	while ((ch = getopt_long(argc, argv, "dhl:V", mock_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'd':
			mock_debug = 1;
			break;
		case 'h':
			mock_usage(stdout);
			exit(0);
		case 'l':
			listen = optarg;
			break;
		case 'V':
			printf("wxpush-mock %s\n", PACKAGE_VERSION);
			exit(0);
		case 'p':
			port_file = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'e':
			mock_conf.expires_in = mock_number(optarg, 1,
			    MOCK_DURATION_MAX, "--expires-in");
			break;
		case 'w':
			mock_conf.rotation_window = mock_number(optarg, 0,
			    MOCK_DURATION_MAX, "--rotation-window");
			break;
		case 'o':
			mock_conf.overlap = mock_number(optarg, 0,
			    MOCK_DURATION_MAX, "--overlap");
			break;
		case 'a':
			accounts[naccounts++] = optarg;
			break;
		case 'C':
			components[ncomponents++] = optarg;
			break;
		case 'u':
			if (mock_component_url_check(optarg, &cause) != 0)
				fatalx("--event-url: %s", cause);
			free(mock_conf.event_url);
			mock_conf.event_url = xstrdup(optarg);
			break;
		default:
			mock_usage(stderr);
			exit(1);
		}
	}
	if (optind != argc) {
		mock_usage(stderr);
		exit(1);
	}
	if ((cert == NULL) != (key == NULL))
		fatalx("--cert and --key go together");
	if (mock_debug)
		log_setlevel(LOG_LEVEL_DEBUG);

	signal(SIGPIPE, SIG_IGN);
	mock_raise_nofile();
	if (RAND_bytes((unsigned char *)mock_prng, sizeof mock_prng) != 1)
		fatalx("RAND_bytes failed");
	mock_prng[0] |= 1;

	if ((mock_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	mock_token_init();
	mock_fault_init();
	mock_component_init();
	for (i = 0; i < naccounts; i++)
		mock_option_account(accounts[i]);
	for (i = 0; i < ncomponents; i++)
		mock_option_component(components[i]);
	free(accounts);
	free(components);
	if (cert != NULL)
		mock_tls_init(cert, key);

	if ((http = evhttp_new(mock_base)) == NULL)
		fatalx("evhttp_new failed");
	evhttp_set_max_body_size(http, MOCK_MAX_BODY);
	evhttp_set_max_headers_size(http, MOCK_MAX_HEADERS);
	evhttp_set_timeout(http, MOCK_HTTP_TIMEOUT);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(http, mock_request, NULL);
	evhttp_set_bevcb(http, mock_bevcb, NULL);
	mock_listen(http, listen, port_file);

	sigterm = evsignal_new(mock_base, SIGTERM, mock_signal, NULL);
	sigint = evsignal_new(mock_base, SIGINT, mock_signal, NULL);
	if (sigterm == NULL || sigint == NULL ||
	    evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0)
		fatalx("cannot catch signals");

	event_base_dispatch(mock_base);

	/*
	 * Stop accepting, answer the calls still held (503), give the
	 * answers a moment to leave, then free everything.
	 */
	event_del(mock_pause_ev);
	evhttp_del_accept_socket(http, mock_bound);
	mock_fault_shutdown();
	mock_component_drain();
	event_base_loopexit(mock_base, &drain);
	event_base_dispatch(mock_base);
	mock_fault_shutdown();
	mock_component_drain();
	mock_component_shutdown();
	evhttp_free(http);
	mock_send_clear();
	mock_token_shutdown();
	mock_issued_shutdown();
	event_free(sigterm);
	event_free(sigint);
	event_free(mock_pause_ev);
	SSL_CTX_free(mock_tls);
	event_base_free(mock_base);
	libevent_global_shutdown();
	free(mock_conf.event_url);
	return (0);
}
