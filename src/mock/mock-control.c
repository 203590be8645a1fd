/*
 * The control API under /mock/: statistics, recorded sends, fault injection,
 * token invalidation and expiry, run-time configuration and reset. Also
 * applies queued faults to the WeChat endpoints.
 */
#include "config.h"

#include <sys/socket.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

#define MOCK_CTL_TYPE	"application/json"

enum mock_fault_kind {
	MOCK_FAULT_ERRCODE,
	MOCK_FAULT_STATUS,
	MOCK_FAULT_DELAY,
	MOCK_FAULT_DROP,
	MOCK_FAULT_BROKEN,
	MOCK_FAULT_OVERSIZE
};

struct mock_fault {
	TAILQ_ENTRY(mock_fault)	 entry;
	enum mock_fault_kind	 kind;
	u_int			 count;		/* calls left */
	int			 errcode;
	char			*errmsg;
	int			 status;
	int			 delay_ms;
	size_t			 oversize;
};
TAILQ_HEAD(mock_faults, mock_fault);

/* A call held back by a delay_ms fault. */
struct mock_delayed {
	TAILQ_ENTRY(mock_delayed) entry;
	struct mock_call	 call;
	struct event		*ev;
};

/* A credential the mock handed out, for GET /mock/tokens. */
struct mock_issued {
	TAILQ_ENTRY(mock_issued) entry;
	const char		*kind;		/* a static string */
	char			 appid[MOCK_APPID_MAX + 1];
	char			*value;
	time_t			 issued_at;
};

static TAILQ_HEAD(, mock_issued) mock_issued =
    TAILQ_HEAD_INITIALIZER(mock_issued);
static size_t			 mock_nissued;
static uint64_t			 mock_issued_dropped;

static struct mock_faults	 mock_faults[MOCK_EP_COUNT];
static u_int			 mock_nfaults[MOCK_EP_COUNT];
static TAILQ_HEAD(, mock_delayed) mock_delayed =
    TAILQ_HEAD_INITIALIZER(mock_delayed);
static size_t			 mock_ndelayed;

/* Set up the empty fault queues. */
void
mock_fault_init(void)
{
	int i;

	for (i = 0; i < MOCK_EP_COUNT; i++)
		TAILQ_INIT(&mock_faults[i]);
}

/* Answer a control call with a JSON object (consumed). */
void
mock_ctl_reply(struct evhttp_request *req, int status, json_t *o)
{
	char *s;

	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL) {
		json_decref(o);
		mock_reply(req, 500, MOCK_CTL_TYPE,
		    MOCK_LIT("{\"error\":\"internal error\"}"));
		return;
	}
	mock_reply(req, status, MOCK_CTL_TYPE, s, strlen(s));
	free(s);
	json_decref(o);
}

/* Answer a control call with {"error":"..."}. */
void
mock_ctl_error(struct evhttp_request *req, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if ((o = json_pack("{s:s}", "error", msg)) == NULL)
		o = json_pack("{s:s}", "error", "bad request");
	mock_ctl_reply(req, status, o);
}

/* The default errmsg for an injected errcode. */
static const char *
mock_fault_errmsg(int errcode)
{
	static const struct {
		int		 errcode;
		const char	*errmsg;
	} tab[] = {
		{ -1, "system error" },
		{ 0, "ok" },
		{ 40001, "invalid credential, access_token is invalid or not "
		    "latest" },
		{ 40003, "invalid openid" },
		{ 40013, "invalid appid" },
		{ 40014, "invalid access_token" },
		{ 40037, "invalid template_id" },
		{ 40125, "invalid appsecret" },
		{ 40164, "invalid ip, not in whitelist" },
		{ 40243, "AppSecret is frozen" },
		{ 42001, "access_token expired" },
		{ 43101, "user refuse to accept the msg" },
		{ 45009, "reach max api daily quota limit" },
		{ 45011, "api minute-quota reach limit" },
		{ 47001, "data format error" },
		{ 48001, "api unauthorized" },
		{ 61003, "component is not authorized by this account" },
		{ 61005, "component ticket is expired" },
		{ 61006, "component ticket is invalid" },
		{ 61010, "code is expired" },
		{ 61023, "refresh_token is invalid" },
	};
	size_t i;

	for (i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		if (tab[i].errcode == errcode)
			return (tab[i].errmsg);
	}
	return ("mock fault");
}

/* Close the connection without an answer. */
static void
mock_fault_drop(struct evhttp_request *req)
{
	struct evhttp_connection *evcon;
	struct bufferevent *bev;
	evutil_socket_t fd;

	evcon = evhttp_request_get_connection(req);
	if (evcon != NULL &&
	    (bev = evhttp_connection_get_bufferevent(evcon)) != NULL &&
	    (fd = bufferevent_getfd(bev)) != -1)
		shutdown(fd, SHUT_RDWR);
	/* The reply goes nowhere; libevent then frees the connection. */
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* Answer a bare HTTP error page, as a proxy in front of WeChat would. */
static void
mock_fault_status(struct evhttp_request *req, int status)
{
	char body[512];
	int n;

	n = snprintf(body, sizeof body, "<html>\r\n<head><title>%d</title>"
	    "</head>\r\n<body>\r\n<center><h1>%d</h1></center>\r\n<hr>"
	    "<center>wxpush-mock</center>\r\n</body>\r\n</html>\r\n", status,
	    status);
	mock_reply(req, status, "text/html", body, (size_t)n);
}

/* Answer {"errcode":0,"errmsg":"ok","padding":"xx..."}, exactly size bytes. */
static void
mock_fault_oversize(struct evhttp_request *req, size_t size)
{
	static const char head[] = "{\"errcode\":0,\"errmsg\":\"ok\","
	    "\"padding\":\"";
	char fill[4096];
	struct evbuffer *out = evhttp_request_get_output_buffer(req);
	size_t left, n;

	memset(fill, 'x', sizeof fill);
	evbuffer_expand(out, size);
	evbuffer_add(out, head, sizeof head - 1);
	for (left = size - (sizeof head - 1) - 2; left > 0; left -= n) {
		n = left < sizeof fill ? left : sizeof fill;
		evbuffer_add(out, fill, n);
	}
	evbuffer_add(out, MOCK_LIT("\"}"));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json; encoding=utf-8");
	evhttp_send_reply(req, 200, "OK", NULL);
}

/* A delayed call's time has come: answer it normally. */
static void
mock_fault_delay_done(evutil_socket_t fd, short events, void *arg)
{
	struct mock_delayed *d = arg;

	(void)fd;
	(void)events;
	TAILQ_REMOVE(&mock_delayed, d, entry);
	mock_ndelayed--;
	event_free(d->ev);
	mock_call_run(&d->call);
	free(d);
}

/* Hold a call back for ms milliseconds; -1 if too many are held already. */
static int
mock_fault_delay(struct mock_call *call, int ms)
{
	struct mock_delayed *d;
	struct timeval tv;

	if (mock_ndelayed >= MOCK_MAX_DELAYED)
		return (-1);
	d = xcalloc(1, sizeof *d);
	d->call = *call;
	d->ev = evtimer_new(mock_base, mock_fault_delay_done, d);
	if (d->ev == NULL)
		fatalx("evtimer_new failed");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(d->ev, &tv);
	TAILQ_INSERT_TAIL(&mock_delayed, d, entry);
	mock_ndelayed++;
	return (0);
}

/*
 * Apply the next queued fault of the call's path, if any: 1 if the fault
 * answered (or holds) the call, 0 to answer it normally now.
 */
int
mock_fault_apply(struct mock_call *call)
{
	struct mock_faults *q = &mock_faults[call->ep];
	struct mock_fault *f;
	int taken = 1;

	if ((f = TAILQ_FIRST(q)) == NULL)
		return (0);
	switch (f->kind) {
	case MOCK_FAULT_ERRCODE:
		mock_reply_error(call, f->errcode, "%s", f->errmsg != NULL ?
		    f->errmsg : mock_fault_errmsg(f->errcode));
		break;
	case MOCK_FAULT_STATUS:
		mock_stats.errors[call->ep]++;
		mock_fault_status(call->req, f->status);
		break;
	case MOCK_FAULT_DELAY:
		if (mock_fault_delay(call, f->delay_ms) != 0)
			taken = 0;
		break;
	case MOCK_FAULT_DROP:
		mock_stats.errors[call->ep]++;
		mock_fault_drop(call->req);
		break;
	case MOCK_FAULT_BROKEN:
		mock_stats.errors[call->ep]++;
		mock_reply(call->req, 200, "application/json; encoding=utf-8",
		    MOCK_LIT("{\"errcode\":0,\"errm"));
		break;
	case MOCK_FAULT_OVERSIZE:
		mock_stats.errors[call->ep]++;
		mock_fault_oversize(call->req, f->oversize);
		break;
	}
	if (--f->count == 0) {
		TAILQ_REMOVE(q, f, entry);
		mock_nfaults[call->ep]--;
		free(f->errmsg);
		free(f);
	}
	return (taken);
}

/* Drop every queued fault. */
static void
mock_fault_clear(void)
{
	struct mock_fault *f;
	int i;

	for (i = 0; i < MOCK_EP_COUNT; i++) {
		while ((f = TAILQ_FIRST(&mock_faults[i])) != NULL) {
			TAILQ_REMOVE(&mock_faults[i], f, entry);
			free(f->errmsg);
			free(f);
		}
		mock_nfaults[i] = 0;
	}
}

/* At exit: answer the delayed calls with 503 and drop the queues. */
void
mock_fault_shutdown(void)
{
	struct mock_delayed *d;

	while ((d = TAILQ_FIRST(&mock_delayed)) != NULL) {
		TAILQ_REMOVE(&mock_delayed, d, entry);
		event_free(d->ev);
		mock_reply(d->call.req, 503, MOCK_CTL_TYPE,
		    MOCK_LIT("{\"errcode\":-1,\"errmsg\":\"shutting down\"}"));
		free(d);
	}
	mock_ndelayed = 0;
	mock_fault_clear();
}

/*
 * An integer member within [min, max]: 1 if present and valid, 0 if absent,
 * -1 otherwise.
 */
static int
mock_ctl_int(json_t *o, const char *key, long long min, long long max,
    long long *v)
{
	json_t *j;

	if ((j = json_object_get(o, key)) == NULL)
		return (0);
	if (!json_is_integer(j))
		return (-1);
	*v = json_integer_value(j);
	return (*v >= min && *v <= max ? 1 : -1);
}

/* POST /mock/fault: queue a fault for the next count calls to a path. */
static void
mock_ctl_fault(struct evhttp_request *req, json_t *body)
{
	static const char *kinds[] = { "errcode", "http_status", "delay_ms",
	    "drop", "broken_body", "oversize" };
	struct mock_fault *f;
	const char *path, *errmsg = NULL;
	long long count = 1, v = 0;
	json_t *j;
	u_int i, nkinds = 0, total = 0;
	int ep, kind = -1;

	if ((path = mock_json_str(body, "path")) == NULL ||
	    (ep = mock_endpoint_find(path)) == -1) {
		mock_ctl_error(req, 400, "path must be a WeChat endpoint path "
		    "such as /cgi-bin/token");
		return;
	}
	if (mock_ctl_int(body, "count", 1, MOCK_MAX_FAULT_COUNT, &count) < 0) {
		mock_ctl_error(req, 400, "count must be 1..%d",
		    MOCK_MAX_FAULT_COUNT);
		return;
	}
	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (json_object_get(body, kinds[i]) != NULL) {
			kind = (int)i;
			nkinds++;
		}
	}
	if (nkinds != 1) {
		mock_ctl_error(req, 400, "give exactly one of errcode, "
		    "http_status, delay_ms, drop, broken_body, oversize");
		return;
	}
	if (json_object_get(body, "errmsg") != NULL &&
	    (kind != MOCK_FAULT_ERRCODE ||
	    (errmsg = mock_json_str(body, "errmsg")) == NULL ||
	    strlen(errmsg) > MOCK_ERRMSG_MAX - 64)) {
		mock_ctl_error(req, 400, "errmsg must be a string of at most "
		    "%d bytes, with errcode", MOCK_ERRMSG_MAX - 64);
		return;
	}
	j = json_object_get(body, kinds[kind]);
	switch (kind) {
	case MOCK_FAULT_ERRCODE:
		if (mock_ctl_int(body, "errcode", INT32_MIN, INT32_MAX,
		    &v) < 0) {
			mock_ctl_error(req, 400, "errcode must be an integer");
			return;
		}
		break;
	case MOCK_FAULT_STATUS:
		if (mock_ctl_int(body, "http_status", 200, 599, &v) < 0) {
			mock_ctl_error(req, 400, "http_status must be "
			    "200..599");
			return;
		}
		break;
	case MOCK_FAULT_DELAY:
		if (mock_ctl_int(body, "delay_ms", 0, MOCK_MAX_DELAY_MS,
		    &v) < 0) {
			mock_ctl_error(req, 400, "delay_ms must be 0..%d",
			    MOCK_MAX_DELAY_MS);
			return;
		}
		break;
	case MOCK_FAULT_DROP:
	case MOCK_FAULT_BROKEN:
		if (!json_is_true(j)) {
			mock_ctl_error(req, 400, "%s must be true",
			    kinds[kind]);
			return;
		}
		break;
	case MOCK_FAULT_OVERSIZE:
		if (mock_ctl_int(body, "oversize", 64, MOCK_MAX_OVERSIZE,
		    &v) < 0) {
			mock_ctl_error(req, 400, "oversize must be 64..%d",
			    MOCK_MAX_OVERSIZE);
			return;
		}
		break;
	}
	if (mock_nfaults[ep] >= MOCK_MAX_FAULTS) {
		mock_ctl_error(req, 503, "too many faults queued on %s", path);
		return;
	}

	f = xcalloc(1, sizeof *f);
	f->kind = kind;
	f->count = (u_int)count;
	switch (kind) {
	case MOCK_FAULT_ERRCODE:
		f->errcode = (int)v;
		if (errmsg != NULL)
			f->errmsg = xstrdup(errmsg);
		break;
	case MOCK_FAULT_STATUS:
		f->status = (int)v;
		break;
	case MOCK_FAULT_DELAY:
		f->delay_ms = (int)v;
		break;
	case MOCK_FAULT_OVERSIZE:
		f->oversize = (size_t)v;
		break;
	}
	TAILQ_INSERT_TAIL(&mock_faults[ep], f, entry);
	mock_nfaults[ep]++;
	TAILQ_FOREACH(f, &mock_faults[ep], entry)
		total += f->count;
	mock_ctl_reply(req, 200, json_pack("{s:s,s:I}", "path",
	    mock_endpoints[ep].path, "pending", (json_int_t)total));
}

/* GET /mock/stats */
static void
mock_ctl_stats(struct evhttp_request *req, json_t *body)
{
	json_t *calls, *errors, *faults;
	u_int total;
	struct mock_fault *f;
	int i;

	(void)body;
	calls = json_object();
	errors = json_object();
	faults = json_object();
	for (i = 0; i < MOCK_EP_COUNT; i++) {
		json_object_set_new(calls, mock_endpoints[i].path,
		    json_integer((json_int_t)mock_stats.calls[i]));
		json_object_set_new(errors, mock_endpoints[i].path,
		    json_integer((json_int_t)mock_stats.errors[i]));
		total = 0;
		TAILQ_FOREACH(f, &mock_faults[i], entry)
			total += f->count;
		json_object_set_new(faults, mock_endpoints[i].path,
		    json_integer(total));
	}
	mock_ctl_reply(req, 200, json_pack("{s:o,s:o,s:o,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I}",
	    "calls", calls,
	    "errors", errors,
	    "faults_pending", faults,
	    "unknown_paths", (json_int_t)mock_stats.unknown_paths,
	    "tokens_issued", (json_int_t)mock_stats.tokens_issued,
	    "sends_ok", (json_int_t)mock_stats.sends_ok,
	    "connections", (json_int_t)mock_stats.connections,
	    "tls_handshakes", (json_int_t)mock_stats.tls_handshakes,
	    "events_sent", (json_int_t)mock_stats.events_sent,
	    "events_failed", (json_int_t)mock_stats.events_failed,
	    "delayed", (json_int_t)mock_ndelayed,
	    "authorizers", (json_int_t)mock_account_count(MOCK_AUTHORIZER)));
}

/* GET /mock/sends[?appid=A] */
static void
mock_ctl_sends(struct evhttp_request *req, json_t *body)
{
	const struct evhttp_uri *uri;
	struct evkeyvalq query;
	const char *q = NULL;

	(void)body;
	TAILQ_INIT(&query);
	if ((uri = evhttp_request_get_evhttp_uri(req)) != NULL)
		q = evhttp_uri_get_query(uri);
	if (q != NULL && evhttp_parse_query_str(q, &query) != 0) {
		evhttp_clear_headers(&query);
		mock_ctl_error(req, 400, "bad query string");
		return;
	}
	mock_ctl_reply(req, 200, mock_send_list(evhttp_find_header(&query,
	    "appid")));
	evhttp_clear_headers(&query);
}

/*
 * Remember a credential handed out (kind is a static string such as
 * "access_token"), so tests can look for it where it must never appear. The
 * oldest are forgotten past MOCK_MAX_ISSUED, and counted.
 */
void
mock_issued_add(const char *kind, const char *appid, const char *value,
    time_t now)
{
	struct mock_issued *i;

	if (mock_nissued >= MOCK_MAX_ISSUED) {
		i = TAILQ_FIRST(&mock_issued);
		TAILQ_REMOVE(&mock_issued, i, entry);
		free(i->value);
		free(i);
		mock_nissued--;
		mock_issued_dropped++;
	}
	i = xcalloc(1, sizeof *i);
	i->kind = kind;
	snprintf(i->appid, sizeof i->appid, "%s", appid);
	i->value = xstrdup(value);
	i->issued_at = now;
	TAILQ_INSERT_TAIL(&mock_issued, i, entry);
	mock_nissued++;
}

/* Forget every credential handed out, at exit. */
void
mock_issued_shutdown(void)
{
	struct mock_issued *i;

	while ((i = TAILQ_FIRST(&mock_issued)) != NULL) {
		TAILQ_REMOVE(&mock_issued, i, entry);
		free(i->value);
		free(i);
	}
	mock_nissued = 0;
}

/* GET /mock/tokens: every credential handed out so far, oldest first. */
static void
mock_ctl_tokens(struct evhttp_request *req, json_t *body)
{
	struct mock_issued *i;
	json_t *list;

	(void)body;
	list = json_array();
	TAILQ_FOREACH(i, &mock_issued, entry) {
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I}",
		    "kind", i->kind, "appid", i->appid, "value", i->value,
		    "issued_at", (json_int_t)i->issued_at));
	}
	mock_ctl_reply(req, 200, json_pack("{s:o,s:I}", "tokens", list,
	    "dropped", (json_int_t)mock_issued_dropped));
}

/* The account named by the body's appid; NULL after answering. */
static struct mock_account *
mock_ctl_account(struct evhttp_request *req, json_t *body)
{
	struct mock_account *a;
	const char *appid;

	if ((appid = mock_json_str(body, "appid")) == NULL) {
		mock_ctl_error(req, 400, "appid missing");
		return (NULL);
	}
	if ((a = mock_account_find(appid)) == NULL) {
		mock_ctl_error(req, 404, "unknown appid");
		return (NULL);
	}
	return (a);
}

/* POST /mock/invalidate {"appid":A}: its tokens become unknown (40001). */
static void
mock_ctl_invalidate(struct evhttp_request *req, json_t *body)
{
	struct mock_account *a;
	u_int n;

	if ((a = mock_ctl_account(req, body)) == NULL)
		return;
	n = mock_token_count_all(a);
	mock_token_kill_all(a);
	mock_ctl_reply(req, 200, json_pack("{s:s,s:i}", "appid", a->appid,
	    "tokens", (int)n));
}

/* POST /mock/expire {"appid":A}: its tokens answer 42001. */
static void
mock_ctl_expire(struct evhttp_request *req, json_t *body)
{
	struct mock_account *a;
	u_int n;

	if ((a = mock_ctl_account(req, body)) == NULL)
		return;
	n = mock_token_expire_all(a, time(NULL));
	mock_ctl_reply(req, 200, json_pack("{s:s,s:i}", "appid", a->appid,
	    "tokens", (int)n));
}

/* The current run-time configuration. */
static json_t *
mock_ctl_config_json(void)
{
	return (json_pack("{s:i,s:i,s:i,s:b,s:s?,s:O?}",
	    "expires_in", mock_conf.expires_in,
	    "rotation_window", mock_conf.rotation_window,
	    "overlap", mock_conf.overlap,
	    "rotate_refresh_token", mock_conf.rotate_refresh_token,
	    "event_url", mock_conf.event_url,
	    "func_info", mock_conf.func_info));
}

/* GET /mock/config */
static void
mock_ctl_config_get(struct evhttp_request *req, json_t *body)
{
	(void)body;
	mock_ctl_reply(req, 200, mock_ctl_config_json());
}

/* POST /mock/config: change any subset; accounts and components first. */
static void
mock_ctl_config(struct evhttp_request *req, json_t *body)
{
	static const char *keys[] = { "expires_in", "rotation_window",
	    "overlap", "rotate_refresh_token", "event_url", "account",
	    "component", "func_info" };
	long long expires = -1, window = -1, overlap = -1;
	const char *key, *url = NULL;
	json_t *value, *acct, *comp, *rot, *fi, *id;
	char *cause = NULL;
	size_t i;
	int status;

	json_object_foreach(body, key, value) {
		for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			if (strcmp(key, keys[i]) == 0)
				break;
		}
		if (i == sizeof keys / sizeof keys[0]) {
			mock_ctl_error(req, 400, "unknown key %.64s", key);
			return;
		}
	}
	if (mock_ctl_int(body, "expires_in", 1, MOCK_DURATION_MAX,
	    &expires) < 0 ||
	    mock_ctl_int(body, "rotation_window", 0, MOCK_DURATION_MAX,
	    &window) < 0 ||
	    mock_ctl_int(body, "overlap", 0, MOCK_DURATION_MAX, &overlap) < 0) {
		mock_ctl_error(req, 400, "expires_in (1..), rotation_window "
		    "and overlap (0..) are integers up to %d",
		    MOCK_DURATION_MAX);
		return;
	}
	rot = json_object_get(body, "rotate_refresh_token");
	if (rot != NULL && !json_is_boolean(rot)) {
		mock_ctl_error(req, 400, "rotate_refresh_token is a boolean");
		return;
	}
	if (json_object_get(body, "event_url") != NULL) {
		if ((url = mock_json_str(body, "event_url")) == NULL ||
		    (*url != '\0' && mock_component_url_check(url,
		    &cause) != 0)) {
			mock_ctl_error(req, 400, "event_url: %s",
			    cause != NULL ? cause : "not a string");
			free(cause);
			return;
		}
	}
	fi = json_object_get(body, "func_info");
	if (fi != NULL && !json_is_null(fi)) {
		if (!json_is_array(fi) || json_array_size(fi) > 64) {
			mock_ctl_error(req, 400, "func_info is null or an array "
			    "of up to 64 permission set ids");
			return;
		}
		json_array_foreach(fi, i, id) {
			if (!json_is_integer(id) || json_integer_value(id) < 1 ||
			    json_integer_value(id) > 1000) {
				mock_ctl_error(req, 400, "func_info: ids are "
				    "integers from 1 to 1000");
				return;
			}
		}
	}
	acct = json_object_get(body, "account");
	if (acct != NULL && !json_is_object(acct)) {
		mock_ctl_error(req, 400, "account is {\"appid\",\"secret\"}");
		return;
	}
	comp = json_object_get(body, "component");
	if (comp != NULL && !json_is_object(comp)) {
		mock_ctl_error(req, 400, "component is {\"appid\",\"secret\","
		    "\"token\",\"aes_key\"}");
		return;
	}

	if (acct != NULL && (status = mock_account_add(mock_json_str(acct,
	    "appid"), mock_json_str(acct, "secret"), &cause)) != 0) {
		mock_ctl_error(req, status, "account: %s", cause);
		free(cause);
		return;
	}
	if (comp != NULL && (status = mock_component_add(mock_json_str(comp,
	    "appid"), mock_json_str(comp, "secret"), mock_json_str(comp,
	    "token"), mock_json_str(comp, "aes_key"), &cause)) != 0) {
		mock_ctl_error(req, status, "component: %s", cause);
		free(cause);
		return;
	}
	if (expires != -1)
		mock_conf.expires_in = (int)expires;
	if (window != -1)
		mock_conf.rotation_window = (int)window;
	if (overlap != -1)
		mock_conf.overlap = (int)overlap;
	if (rot != NULL)
		mock_conf.rotate_refresh_token = json_is_true(rot);
	if (fi != NULL) {
		json_decref(mock_conf.func_info);
		mock_conf.func_info = json_is_null(fi) ? NULL : json_incref(fi);
	}
	if (url != NULL) {
		free(mock_conf.event_url);
		mock_conf.event_url = *url == '\0' ? NULL : xstrdup(url);
	}
	mock_ctl_reply(req, 200, mock_ctl_config_json());
}

/* POST /mock/reset: counters, sends, faults and force_refresh quotas. */
static void
mock_ctl_reset(struct evhttp_request *req, json_t *body)
{
	(void)body;
	memset(&mock_stats, 0, sizeof mock_stats);
	mock_send_clear();
	mock_fault_clear();
	mock_token_reset_quota();
	mock_ctl_reply(req, 200, json_pack("{s:b}", "ok", 1));
}

static const struct {
	const char		*path;
	enum evhttp_cmd_type	 method;
	void			(*fn)(struct evhttp_request *, json_t *);
} mock_ctl_table[] = {
	{ "/mock/stats", EVHTTP_REQ_GET, mock_ctl_stats },
	{ "/mock/sends", EVHTTP_REQ_GET, mock_ctl_sends },
	{ "/mock/tokens", EVHTTP_REQ_GET, mock_ctl_tokens },
	{ "/mock/config", EVHTTP_REQ_GET, mock_ctl_config_get },
	{ "/mock/config", EVHTTP_REQ_POST, mock_ctl_config },
	{ "/mock/fault", EVHTTP_REQ_POST, mock_ctl_fault },
	{ "/mock/invalidate", EVHTTP_REQ_POST, mock_ctl_invalidate },
	{ "/mock/expire", EVHTTP_REQ_POST, mock_ctl_expire },
	{ "/mock/reset", EVHTTP_REQ_POST, mock_ctl_reset },
	{ "/mock/component/event", EVHTTP_REQ_POST, mock_component_ctl_event },
	{ "/mock/component/code", EVHTTP_REQ_POST, mock_component_ctl_code },
	{ "/mock/component/bulk", EVHTTP_REQ_POST, mock_component_ctl_bulk },
};

/* Dispatch a control call; POST bodies are JSON objects (empty means {}). */
void
mock_control(struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct evbuffer *in;
	json_error_t error;
	json_t *body = NULL;
	size_t i, len;
	int found = 0;

	for (i = 0; i < sizeof mock_ctl_table / sizeof mock_ctl_table[0]; i++) {
		if (strcmp(mock_ctl_table[i].path, path) != 0)
			continue;
		found = 1;
		if (mock_ctl_table[i].method == method)
			break;
	}
	if (i == sizeof mock_ctl_table / sizeof mock_ctl_table[0]) {
		if (found)
			mock_ctl_error(req, 405, "wrong method for %s", path);
		else
			mock_ctl_error(req, 404, "no such control path");
		return;
	}
	if (method == EVHTTP_REQ_POST) {
		in = evhttp_request_get_input_buffer(req);
		if ((len = evbuffer_get_length(in)) == 0)
			body = json_object();
		else {
			body = json_loadb((const char *)evbuffer_pullup(in, -1),
			    len, 0, &error);
			if (body == NULL || !json_is_object(body)) {
				json_decref(body);
				mock_ctl_error(req, 400, "the body must be a "
				    "JSON object");
				return;
			}
		}
	}
	mock_ctl_table[i].fn(req, body);
	json_decref(body);
}
