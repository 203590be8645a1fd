/*
 * The send method: validate, check the peer, wait for a token and a slot, call
 * WeChat, and react to its answer as wechat-api.md section 6 says. Nothing here
 * touches the disk; each attempt allocates only inside upstream.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wxpushd.h"

#define SEND_BUSY_RETRIES	3	/* errcode -1 and transport failures */
#define SEND_RETRY_BASE_MS	250
#define SEND_MIN_LEFT_MS	500	/* do not start an attempt with less left */

/* enum send_outcome is in wxpushd.h: metrics.c counts by it too. */
uint64_t			 send_stats[SEND_NOUTCOMES];
static const struct timeval	*send_timeout_tv;
static int			 send_timeout_secs;
/* Every send not answered yet, so a stop can answer them all. */
static TAILQ_HEAD(, send)	 send_all = TAILQ_HEAD_INITIALIZER(send_all);

static void	send_upstream_cb(const struct upstream_reply *, void *);

/* A common timeout makes the many identical deadlines O(1) in libevent. */
void
send_init(void)
{
	struct timeval tv;

	if (send_timeout_tv != NULL && send_timeout_secs == wx_conf->send_timeout)
		return;
	tv.tv_sec = wx_conf->send_timeout;
	tv.tv_usec = 0;
	send_timeout_tv = event_base_init_common_timeout(wx_base, &tv);
	send_timeout_secs = wx_conf->send_timeout;
}

/* Names for the stats method, in enum send_outcome order. */
const char *
send_outcome_name(int i)
{
	static const char *names[] = { "ok", "invalid_request",
	    "unknown_appid", "forbidden", "busy", "unavailable", "timeout",
	    "revoked", "wechat", "internal" };

	return (i >= 0 && i < SEND_NOUTCOMES ? names[i] : NULL);
}

static void
send_free(struct send *s)
{
	if (s->queued) {
		TAILQ_REMOVE(&s->cred->queue, s, entry);
		s->cred->nqueue--;
	}
	if (s->call != NULL) {
		upstream_cancel(s->call);
		s->cred->inflight--;
	}
	if (s->deadline != NULL)
		event_free(s->deadline);
	if (s->retry != NULL)
		event_free(s->retry);
	TAILQ_REMOVE(&send_all, s, all);
	message_free(&s->msg);
	free(s);
}

/* Finish s with an error reply; the credential may be freed by the pump. */
static void
send_fail(struct send *s, enum send_outcome o, const struct rpc_error *e)
{
	struct cred *c = s->cred;

	send_stats[o]++;
	if (c != NULL)
		c->sends_failed++;
	metrics_count_send(c, o, e->errcode, &s->started);
	if (s->idem != NULL)
		idem_finish_error(s->idem, e);
	rpc_reply_error(s->req, e);
	send_free(s);
	if (c != NULL)
		cred_pump(c);
}

static void
send_failx(struct send *s, enum send_outcome o, const char *code, int retryable,
    const char *message)
{
	struct rpc_error e;

	memset(&e, 0, sizeof e);
	e.code = code;
	e.retryable = retryable;
	e.message = message;
	send_fail(s, o, &e);
}

/* Answer a send that cannot get a token now. */
void
send_fail_unavailable(struct send *s, const char *why)
{
	char msg[192];

	snprintf(msg, sizeof msg, "no valid token for %s: %s", s->msg.appid, why);
	send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, msg);
}

/* Answer a queued send that will not go out (a stop, a removed appid). */
void
send_fail_queued(struct send *s, const char *why)
{
	send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, why);
}

/* Answer a send for an authorizer that revoked the platform. */
void
send_fail_revoked(struct send *s)
{
	send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked the "
	    "platform's authorization");
}

/*
 * Read WeChat's answer to a send: *errcode (0 if absent) and its errmsg into
 * buf. -1 if errcode is there but not an integer: then nobody knows whether
 * the message went out.
 */
int
send_reply_parse(const json_t *j, long *errcode, char *buf, size_t len)
{
	const json_t *ec = json_object_get(j, "errcode");

	*errcode = json_is_integer(ec) ? (long)json_integer_value(ec) : 0;
	upstream_errmsg(j, buf, len);
	if (ec != NULL && !json_is_integer(ec))
		return (-1);
	return (0);
}

/* Answer with WeChat's own refusal. */
static void
send_fail_wechat(struct send *s, long errcode, const char *errmsg,
    int retryable, int retry_after)
{
	struct rpc_error e;
	char msg[160];

	snprintf(msg, sizeof msg, "WeChat refused the message (errcode %ld)",
	    errcode);
	memset(&e, 0, sizeof e);
	e.code = "wechat";
	e.message = msg;
	e.retryable = retryable;
	e.errcode = errcode;
	e.errmsg = errmsg;
	e.retry_after = retry_after;
	if (errcode == 43101)
		log_debug("%s: consent missing or used (43101)", s->msg.appid);
	else
		log_info("%s: WeChat refused a send: errcode %ld", s->msg.appid,
		    errcode);
	send_fail(s, SEND_WECHAT, &e);
}

static void
send_succeed(struct send *s)
{
	struct cred *c = s->cred;
	msgpack_packer *pk;

	send_stats[SEND_OK]++;
	c->sends_ok++;
	metrics_count_send(c, SEND_OK, 0, &s->started);
	if (s->idem != NULL)
		idem_finish_ok(s->idem, s->attempts);
	pk = rpc_reply_begin(s->req, 3);
	rpc_pack_kv_int(pk, "errcode", 0);
	rpc_pack_kv_str(pk, "errmsg", "ok");
	rpc_pack_kv_int(pk, "attempts", s->attempts);
	rpc_reply_end(s->req);
	send_free(s);
	cred_pump(c);
}

/* Put s back in its credential's queue, first in line. */
static void
send_requeue(struct send *s)
{
	s->queued = 1;
	TAILQ_INSERT_HEAD(&s->cred->queue, s, entry);
	s->cred->nqueue++;
}

/* Milliseconds left before s's deadline. */
static long
send_left_ms(struct send *s)
{
	struct timeval at, now;

	if (!event_pending(s->deadline, EV_TIMEOUT, &at))
		return (0);
	event_base_gettimeofday_cached(wx_base, &now);
	return ((at.tv_sec - now.tv_sec) * 1000 + (at.tv_usec - now.tv_usec) / 1000);
}

/*
 * Make one attempt with the credential's current token. A send whose deadline
 * is about to pass is answered now: starting it would only turn a clean
 * "not sent" into an ambiguous timeout.
 */
void
send_start(struct send *s)
{
	struct cred *c = s->cred;
	struct rpc_error e;
	char query[sizeof "access_token=" + WX_TOKEN_MAX];

	if (send_left_ms(s) < SEND_MIN_LEFT_MS) {
		/* Not send_fail: we may be inside cred_pump's loop. */
		send_stats[SEND_UNAVAILABLE]++;
		c->sends_failed++;
		metrics_count_send(c, SEND_UNAVAILABLE, 0, &s->started);
		memset(&e, 0, sizeof e);
		e.code = "unavailable";
		e.retryable = 1;
		e.message = "send_timeout passed while the send waited for an "
		    "upstream slot";
		if (s->idem != NULL)
			idem_finish_error(s->idem, &e);
		rpc_reply_error(s->req, &e);
		send_free(s);
		return;
	}
	s->attempts++;
	s->gen = c->gen;
	c->inflight++;
	snprintf(query, sizeof query, "access_token=%s", c->token);
	s->call = upstream_request("POST", "/cgi-bin/message/template/subscribe",
	    query, s->msg.json, s->msg.len, send_upstream_cb, s);
	OPENSSL_cleanse(query, sizeof query);
}

/* Start s now if a token and a slot are free, or queue it. */
static void
send_submit(struct send *s)
{
	struct cred *c = s->cred;

	if (cred_usable(c) && c->inflight < wx_conf->max_inflight &&
	    c->nqueue == 0) {
		send_start(s);
		return;
	}
	s->queued = 1;
	TAILQ_INSERT_TAIL(&c->queue, s, entry);
	c->nqueue++;
	/* An authorizer may have put its refresh off: not with a send waiting. */
	if (c->kind == CRED_AUTHORIZER && !cred_usable(c))
		component_wanted(c);
}

static void
send_retry_cb(evutil_socket_t fd, short events, void *arg)
{
	struct send *s = arg;

	(void)fd;
	(void)events;
	/* No new attempt once stopping or removed: nothing went out yet. */
	if (wx_stopping || s->cred->removed) {
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, wx_stopping ?
		    "wxpushd is stopping" : "the appid was removed from the "
		    "configuration");
		return;
	}
	send_requeue(s);
	cred_pump(s->cred);
}

/* Try again after a backoff if the deadline leaves room; 0 if scheduled. */
static int
send_backoff(struct send *s)
{
	struct timeval tv;
	long ms;

	if (s->busy_retries >= SEND_BUSY_RETRIES)
		return (-1);
	ms = SEND_RETRY_BASE_MS << s->busy_retries;
	ms += arc4random_uniform((uint32_t)ms / 2 + 1);
	if (send_left_ms(s) < ms + SEND_MIN_LEFT_MS)
		return (-1);
	s->busy_retries++;
	if (s->retry == NULL)
		s->retry = evtimer_new(wx_base, send_retry_cb, s);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->retry, &tv);
	return (0);
}

/* A token failure (40001/40014/42001): one retry with a newer token. */
static void
send_token_refused(struct send *s, long errcode, const char *errmsg)
{
	struct cred *c = s->cred;

	if (s->auth_retried) {
		send_fail_wechat(s, errcode, errmsg, 1, 0);
		return;
	}
	s->auth_retried = 1;
	cred_token_failed(c, s->gen, errcode);
	if (wx_stopping) {
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1,
		    "wxpushd is stopping");
		return;
	}
	if ((cred_usable(c) && c->gen != s->gen) || c->call != NULL ||
	    c->redis_busy != 0) {
		/* A newer token is here, or on its way (perhaps from another
		 * daemon through Redis): wait in line for it. */
		send_requeue(s);
		cred_pump(c);
		return;
	}
	/* The breaker is open: WeChat refuses even fresh tokens. */
	send_fail_wechat(s, errcode, errmsg, 1, 0);
}

/* Whether a transport failure is known to have left the message undelivered. */
static int
send_transport_safe(const struct upstream_reply *r)
{
	return (r->http_status == 0 && r->error != NULL &&
	    (strcmp(r->error, "connect failed") == 0 ||
	    strcmp(r->error, "tls error") == 0));
}

static void
send_upstream_cb(const struct upstream_reply *r, void *arg)
{
	struct send *s = arg;
	struct cred *c = s->cred;
	long errcode;
	char errmsg[256], msg[192];

	s->call = NULL;
	c->inflight--;
	if (!r->ok) {
		if (send_transport_safe(r) || r->http_status >= 500) {
			if (send_backoff(s) == 0) {
				cred_pump(c);
				return;
			}
			snprintf(msg, sizeof msg, "WeChat is unreachable (%s)",
			    r->error);
			send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, msg);
			return;
		}
		snprintf(msg, sizeof msg, "no usable answer from WeChat (%s); "
		    "the message may or may not have been delivered", r->error);
		send_failx(s, SEND_TIMEOUT, "timeout", 0, msg);
		return;
	}
	if (send_reply_parse(r->json, &errcode, errmsg, sizeof errmsg) == -1) {
		send_failx(s, SEND_TIMEOUT, "timeout", 0, "WeChat's answer has "
		    "no readable errcode; the message may or may not have been "
		    "delivered");
		return;
	}
	if (errcode == 0) {
		send_succeed(s);
		return;
	}
	switch (errcode) {
	case 40001:
	case 40014:
	case 42001:
		send_token_refused(s, errcode, errmsg);
		return;
	case -1:
		if (send_backoff(s) == 0) {
			cred_pump(c);
			return;
		}
		send_fail_wechat(s, errcode, errmsg, 1, 0);
		return;
	case 45011:
		send_fail_wechat(s, errcode, errmsg, 1, 60 - (int)(time(NULL) % 60));
		return;
	case 61003:
		component_revoked(c);
		send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked "
		    "the platform's authorization");
		return;
	case 41001:
		log_warnx("%s: WeChat says the token was missing (41001)",
		    s->msg.appid);
		send_failx(s, SEND_INTERNAL, "internal", 1, "WeChat says the "
		    "token was missing (41001); this is a wxpushd bug");
		return;
	case 89501: case 89502: case 89503: case 89504: case 89505:
		send_fail_wechat(s, errcode, errmsg, 1, 60);
		return;
	case 89506:
		send_fail_wechat(s, errcode, errmsg, 1, 86400);
		return;
	case 89507:
		send_fail_wechat(s, errcode, errmsg, 1, 3600);
		return;
	default:
		send_fail_wechat(s, errcode, errmsg, 0, 0);
		return;
	}
}

/* The send's deadline: answer it now, whatever it is waiting for. */
static void
send_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct send *s = arg;
	struct cred *c = s->cred;
	char msg[256];

	(void)fd;
	(void)events;
	if (s->call != NULL) {
		send_failx(s, SEND_TIMEOUT, "timeout", 0, "send_timeout passed "
		    "while WeChat was answering; the message may or may not "
		    "have been delivered");
		return;
	}
	if (!cred_usable(c)) {
		snprintf(msg, sizeof msg, "no valid token for %s within "
		    "send_timeout%s%s", c->appid, c->last_error[0] ? ": " : "",
		    c->last_error);
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, msg);
		return;
	}
	send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, s->busy_retries ?
	    "WeChat stayed busy until send_timeout" :
	    "the appid's upstream slots stayed full until send_timeout");
}

/*
 * Answer every send not answered yet, at a stop: `timeout` if WeChat was
 * answering it (it may have been delivered), else `unavailable` with why.
 */
void
send_abort(const char *why)
{
	struct send *s;

	while ((s = TAILQ_FIRST(&send_all)) != NULL) {
		if (s->call != NULL)
			send_failx(s, SEND_TIMEOUT, "timeout", 0, "wxpushd "
			    "stopped while WeChat was answering; the message "
			    "may or may not have been delivered");
		else
			send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, why);
	}
}

/* Whether the peer of req may send as credential c. */
static int
send_allowed(const struct cred *c, const struct request *req)
{
	const struct acl *acl;

	if (req->client == NULL)
		return (0);
	if (c->kind == CRED_OFFICIAL)
		acl = &c->account->allow;
	else
		acl = &c->component->allow;
	return (acl_allows(acl, &req->client->peer));
}

void
send_method(struct request *req, const msgpack_object *params)
{
	struct send *s;
	struct rpc_error e;
	struct cred *c;

	s = xcalloc(1, sizeof *s);
	s->req = req;
	if (message_parse(params, &s->msg, &e) == -1) {
		send_stats[SEND_INVALID]++;
		metrics_count_send(NULL, SEND_INVALID, 0, NULL);
		rpc_reply_error(req, &e);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&send_all, s, all);
	c = cred_find(s->msg.appid);
	if (c == NULL || c->removed || c->kind == CRED_COMPONENT) {
		memset(&e, 0, sizeof e);
		e.code = "unknown_appid";
		e.field = "appid";
		e.message = "the appid is not configured here";
		send_fail(s, SEND_UNKNOWN_APPID, &e);
		return;
	}
	s->cred = c;	/* counted per appid from here on */
	if (!send_allowed(c, req)) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_INFO, "send refused", peer,
		    "%s: send refused to %s", c->appid, peer);
		send_failx(s, SEND_FORBIDDEN, "forbidden", 0,
		    "this user may not send as this appid");
		return;
	}
	/* A repeated idempotency_key: answered with the first outcome. */
	if (idem_begin(req, &s->msg, &s->idem) != IDEM_NEW) {
		send_free(s);
		return;
	}
	if (c->revoked) {
		send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked "
		    "the platform's authorization");
		return;
	}
	if (!cred_usable(c) && c->permanent) {
		send_fail_unavailable(s, c->last_error);
		return;
	}
	if (c->nqueue >= wx_conf->queue_limit && !(cred_usable(c) &&
	    c->inflight < wx_conf->max_inflight && c->nqueue == 0)) {
		send_failx(s, SEND_BUSY, "busy", 1, "the appid's queue is full");
		return;
	}
	req->data = s;
	event_base_gettimeofday_cached(wx_base, &s->started);
	s->deadline = evtimer_new(wx_base, send_deadline_cb, s);
	evtimer_add(s->deadline, send_timeout_tv);
	send_submit(s);
}
