/*
 * The send method: validate, check the peer, wait for a token and a slot, call
 * WeChat, and react to its answer as wxapi.c classifies it. Nothing here
 * touches the disk; each attempt allocates only inside upstream.c.
 *
 * Each credential that has had a send gets a lane here (its queue, its sends
 * upstream, its counters), reached through the credential's user slot. A lane
 * waits for a token through the listener send.c registered with cred.c: cred.c
 * never calls send.c by name.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event_struct.h>
#include <jansson.h>

#include "wxpushd.h"

#define SEND_BUSY_RETRIES	3	/* errcode -1 and transport failures */
#define SEND_RETRY_BASE_MS	250
#define SEND_MIN_LEFT_MS	500	/* do not start an attempt with less left */
/*
 * Freed sends kept for reuse: the send path allocates no struct send at a
 * steady rate. None under AddressSanitizer, which must see every free.
 */
#if defined(__SANITIZE_ADDRESS__)
#define SEND_POOL_MAX		0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEND_POOL_MAX		0
#endif
#endif
#ifndef SEND_POOL_MAX
#define SEND_POOL_MAX		1024
#endif

/*
 * One send, from request to answer. Its origin is an RPC request (req), or,
 * for a background send, whoever passed done: the outbox.
 */
struct send {
	struct request		*req;		/* NULL for a background send */
	send_done_cb		 done;		/* background: the answer goes here */
	void			*done_arg;
	struct message		 msg;
	struct send_lane	*lane;		/* NULL until the appid is known */
	int			 attempts;
	int			 auth_retried;	/* one retry after a refused token */
	int			 busy_retries;	/* -1 answers retried */
	uint64_t		 gen;		/* token generation of this attempt */
	int			 queued;
	struct upstream_call	*call;
	struct event		 deadline;	/* set once admitted */
	int			 has_deadline;
	struct event		*retry;
	struct timeval		 started;	/* accepted at; for the histogram */
	TAILQ_ENTRY(send)	 entry;
	struct idem		*idem;		/* idempotency key entry, or NULL */
	TAILQ_ENTRY(send)	 all;		/* every send not yet answered */
	const struct send_job	*job;		/* a call (msg unused), or NULL */
	void			*jobarg;
	int			 consent;	/* subscribe_once: ledger consulted */
	char			 consent_tag[CONSENT_TAG_HEX + 1]; /* spent, or "" */
};

/* A credential's sends: those waiting for a token or a slot, and counters. */
struct send_lane {
	struct cred		*cred;		/* held while the lane exists */
	TAILQ_HEAD(, send)	 queue;
	int			 nqueue;
	/* Background sends wait behind every send of a request. */
	TAILQ_HEAD(, send)	 bgqueue;
	int			 nbg;
	int			 inflight;	/* sends upstream now */
	struct send_counters	 counters;
};

/* Histogram bucket bounds, in microseconds and as Prometheus writes them. */
static const uint64_t send_bucket_us[SEND_NBUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000
};
static const char *send_bucket_names[SEND_NBUCKETS] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
	"5", "10", "30", "60"
};

static struct send_counters	 send_all_counters;	/* every answered send */
static struct send_counters	 send_nocred_counters;	/* before an appid */
/* Unloaded authorizers' counters, per platform (send_retire). */
struct send_retired {
	char			 component[WX_APPID_MAX + 1];
	struct send_counters	 counters;
	TAILQ_ENTRY(send_retired) entry;
};
static TAILQ_HEAD(, send_retired) send_retired =
    TAILQ_HEAD_INITIALIZER(send_retired);
static struct send_histogram	 send_hist;
static const struct timeval	*send_timeout_tv;
static int			 send_timeout_secs;
/* Every send not answered yet, so a stop can answer them all. */
static TAILQ_HEAD(, send)	 send_all = TAILQ_HEAD_INITIALIZER(send_all);
/* Freed sends for reuse, linked through entry. */
static TAILQ_HEAD(, send)	 send_pool = TAILQ_HEAD_INITIALIZER(send_pool);
static int			 send_npool;	/* int: the max may be 0 */

static void	send_upstream_cb(const struct upstream_reply *, void *);
static void	send_cred_event(struct cred *, enum cred_event, const char *);
static void	send_pump(struct send_lane *);
static void	(*send_ready_hook)(struct cred *);
static int	send_cred_busy(const struct cred *);

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
	cred_set_listener(send_cred_event);
	cred_set_busy(send_cred_busy);
}

/* Names for the stats method, in enum send_outcome order. */
const char *
send_outcome_name(int i)
{
	static const char *names[] = { "ok", "invalid_request",
	    "unknown_appid", "forbidden", "busy", "unavailable", "timeout",
	    "revoked", "wechat", "internal", "no_consent" };

	return (i >= 0 && i < SEND_NOUTCOMES ? names[i] : NULL);
}

/* The upper bound of histogram bucket i as Prometheus writes it. */
const char *
send_bucket_name(int i)
{
	return (i >= 0 && i < SEND_NBUCKETS ? send_bucket_names[i] : NULL);
}

/* Counters of every answered send, and of those refused before an appid. */
const struct send_counters *
send_counters_all(void)
{
	return (&send_all_counters);
}

const struct send_counters *
send_counters_nocred(void)
{
	return (&send_nocred_counters);
}

/* A credential's counters, or NULL if it has had no send. */
const struct send_counters *
send_counters_of(const struct cred *c)
{
	const struct send_lane *l = cred_user(c);

	return (l != NULL ? &l->counters : NULL);
}

/* The latency histogram of accepted sends. */
const struct send_histogram *
send_duration(void)
{
	return (&send_hist);
}

/* A credential's queue: sends waiting and sends upstream. */
struct send_queue_state
send_queue_of(const struct cred *c)
{
	const struct send_lane *l = cred_user(c);
	struct send_queue_state q = { 0, 0, 0 };
	const struct send *s;
	struct timeval now;

	if (l == NULL)
		return (q);
	q.queued = l->nqueue;
	q.inflight = l->inflight;
	/* Requeued sends go first in line: the oldest is not always first. */
	event_base_gettimeofday_cached(wx_base, &now);
	TAILQ_FOREACH(s, &l->queue, entry) {
		if (now.tv_sec - s->started.tv_sec > q.oldest)
			q.oldest = now.tv_sec - s->started.tv_sec;
	}
	return (q);
}

/* c's lane, made (holding c) at its first send. */
static struct send_lane *
send_lane_get(struct cred *c)
{
	struct send_lane *l;

	if ((l = cred_user(c)) != NULL)
		return (l);
	l = xcalloc(1, sizeof *l);
	l->cred = c;
	TAILQ_INIT(&l->queue);
	TAILQ_INIT(&l->bgqueue);
	cred_hold(c);
	cred_set_user(c, l);
	return (l);
}

/*
 * Whether c's lane holds a send, queued or upstream (cred.c asks before it
 * unloads c). One between tries, or waiting for its key's claim, looked c
 * up within send_timeout: cred.c's window keeps c for it.
 */
static int
send_cred_busy(const struct cred *c)
{
	const struct send_lane *l = cred_user(c);

	return (l != NULL && (l->nqueue != 0 || l->nbg != 0 ||
	    l->inflight != 0));
}

/* Drop a removed credential's lane once nothing is in it. */
static void
send_lane_check(struct send_lane *l)
{
	struct cred *c = l->cred;

	if (!cred_removed(c) || l->nqueue != 0 || l->nbg != 0 ||
	    l->inflight != 0)
		return;
	cred_set_user(c, NULL);
	free(l);
	cred_release(c);
}

/*
 * Count one answered send: per lane (l NULL: before any appid was known), by
 * errcode when WeChat refused it, and its latency if it was accepted (started
 * set). No allocation, no formatting: this is the hot path.
 */
static void
send_count(struct send_lane *l, enum send_outcome o, long errcode,
    const struct timeval *started)
{
	struct send_counters *lc = l != NULL ? &l->counters :
	    &send_nocred_counters;
	struct timeval now;
	uint64_t us;
	int i;

	send_all_counters.outcome[o]++;
	lc->outcome[o]++;
	if (o == SEND_WECHAT) {
		i = wxapi_errcode_index(errcode);
		send_all_counters.errcode[i]++;
		lc->errcode[i]++;
	}
	if (started == NULL || (started->tv_sec == 0 && started->tv_usec == 0))
		return;
	event_base_gettimeofday_cached(wx_base, &now);
	if (timercmp(&now, started, <))
		us = 0;
	else
		us = (uint64_t)(now.tv_sec - started->tv_sec) * 1000000 +
		    (uint64_t)(now.tv_usec - started->tv_usec);
	for (i = 0; i < SEND_NBUCKETS; i++) {
		if (us <= send_bucket_us[i])
			break;
	}
	if (i < SEND_NBUCKETS)
		send_hist.buckets[i]++;
	send_hist.count++;
	send_hist.sum_us += us;
}

/* Count s's outcome: a job counts its own, a message in the send counters. */
static void
send_tally(struct send *s, enum send_outcome o, long errcode)
{
	if (s->job != NULL)
		s->job->done(s->jobarg, o, errcode);
	else
		send_count(s->lane, o, errcode, &s->started);
}

/* The endpoint s goes to, for wxapi_classify. */
static enum wxapi_ep
send_endpoint(const struct send *s)
{
	return (s->job != NULL ? s->job->endpoint : s->msg.kind->endpoint);
}

/* Take s out of its lane's queue. */
static void
send_dequeue(struct send *s)
{
	if (s->done != NULL) {
		TAILQ_REMOVE(&s->lane->bgqueue, s, entry);
		s->lane->nbg--;
	} else {
		TAILQ_REMOVE(&s->lane->queue, s, entry);
		s->lane->nqueue--;
	}
	s->queued = 0;
}

/* A zeroed send, from the pool if it has one. */
static struct send *
send_alloc(void)
{
	struct send *s;

	if ((s = TAILQ_FIRST(&send_pool)) == NULL)
		return (xcalloc(1, sizeof *s));
	TAILQ_REMOVE(&send_pool, s, entry);
	send_npool--;
	memset(s, 0, sizeof *s);
	return (s);
}

/* Back to the pool, or to the allocator once the pool is full. */
static void
send_release(struct send *s)
{
	if (send_npool >= SEND_POOL_MAX) {
		free(s);
		return;
	}
	TAILQ_INSERT_HEAD(&send_pool, s, entry);
	send_npool++;
}

static void
send_free(struct send *s)
{
	if (s->queued)
		send_dequeue(s);
	if (s->call != NULL) {
		upstream_cancel(s->call);
		s->lane->inflight--;
	}
	if (s->has_deadline)
		evtimer_del(&s->deadline);
	if (s->retry != NULL)
		event_free(s->retry);
	TAILQ_REMOVE(&send_all, s, all);
	message_free(&s->msg);
	if (s->job != NULL)
		s->job->free(s->jobarg);
	send_release(s);
}

/* Give a background send's outcome to its origin (e NULL: delivered). */
static void
send_done(struct send *s, enum send_outcome o, const struct rpc_error *e)
{
	struct send_result r;

	memset(&r, 0, sizeof r);
	r.outcome = o;
	r.error = e;
	r.attempts = s->attempts;
	r.uncertain = o == SEND_TIMEOUT;
	s->done(s->done_arg, &r);
}

/* Answer s's origin with an error. */
static void
send_answer_error(struct send *s, enum send_outcome o,
    const struct rpc_error *e)
{
	if (s->done != NULL) {
		send_done(s, o, e);
		return;
	}
	if (s->idem != NULL)
		idem_finish_error(s->idem, e);
	rpc_reply_error(s->req, e);
}

/*
 * The ledger hears how a send that spent a consent ended: 43101 keeps it
 * spent (or spends one); a refusal by WeChat or a failure before any
 * attempt gives it back; an attempt without an answer keeps it spent.
 */
static void
send_consent_failed(struct send *s, enum send_outcome o, long errcode)
{
	if (!s->consent)
		return;
	if (o == SEND_WECHAT && errcode == 43101)
		consent_used_up(s->msg.appid, s->msg.touser, s->msg.template_id,
		    s->msg.scene, s->consent_tag);
	else if (o == SEND_WECHAT || s->attempts == 0)
		consent_give_back(s->msg.appid, s->msg.touser,
		    s->msg.template_id, s->msg.scene, s->consent_tag);
}

/* Finish s with an error reply; its lane may go. */
static void
send_fail(struct send *s, enum send_outcome o, const struct rpc_error *e)
{
	struct send_lane *l = s->lane;

	send_consent_failed(s, o, e->errcode);
	send_tally(s, o, e->errcode);
	send_answer_error(s, o, e);
	send_free(s);
	if (l != NULL) {
		send_pump(l);
		send_lane_check(l);
	}
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
static void
send_fail_unavailable(struct send *s, const char *why)
{
	char msg[192];

	snprintf(msg, sizeof msg, "no valid token for %s: %s", s->msg.appid, why);
	send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, msg);
}

/* Answer a queued send that will not go out (a stop, a removed appid). */
static void
send_fail_queued(struct send *s, const char *why)
{
	send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, why);
}

/* Answer a send for an authorizer that revoked the platform. */
static void
send_fail_revoked(struct send *s)
{
	send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked the "
	    "platform's authorization");
}

/* Answer with WeChat's own refusal. */
static void
send_fail_wechat(struct send *s, long errcode, const char *errmsg,
    int retryable, int retry_after)
{
	struct rpc_error e;
	const char *hint = wxapi_errcode_hint(errcode);
	char msg[256];

	snprintf(msg, sizeof msg, "WeChat refused the %s (errcode %ld)%s%s",
	    s->job != NULL ? "call" : "message", errcode,
	    hint != NULL ? ": " : "", hint != NULL ? hint : "");
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

/*
 * Answer a delivered send; WeChat's msgid (the template message's, and any
 * other kind's that carries one) goes into the result as msgid.
 */
static void
send_succeed(struct send *s, const struct upstream_reply *r)
{
	struct send_lane *l = s->lane;
	msgpack_packer *pk;
	const json_t *id = json_object_get(r->json, "msgid");
	int64_t msgid = json_is_integer(id) ? (int64_t)json_integer_value(id) :
	    0;

	send_tally(s, SEND_OK, 0);
	if (s->done != NULL)
		send_done(s, SEND_OK, NULL);
	else if (s->job != NULL) {
		if (s->idem != NULL)
			idem_finish_ok(s->idem, s->attempts, msgid);
		s->job->answer(s->jobarg, s->req, r);
	} else {
		if (s->idem != NULL)
			idem_finish_ok(s->idem, s->attempts, msgid);
		pk = rpc_reply_begin(s->req, 3 + (msgid != 0));
		rpc_pack_kv_int(pk, "errcode", 0);
		rpc_pack_kv_str(pk, "errmsg", "ok");
		rpc_pack_kv_int(pk, "attempts", s->attempts);
		if (msgid != 0)
			rpc_pack_kv_int(pk, "msgid", msgid);
		rpc_reply_end(s->req);
	}
	send_free(s);
	send_pump(l);
	send_lane_check(l);
}

/* Put s back in its lane's queue, first in line. */
static void
send_requeue(struct send *s)
{
	s->queued = 1;
	if (s->done != NULL) {
		TAILQ_INSERT_HEAD(&s->lane->bgqueue, s, entry);
		s->lane->nbg++;
	} else {
		TAILQ_INSERT_HEAD(&s->lane->queue, s, entry);
		s->lane->nqueue++;
	}
}

/* Milliseconds left before s's deadline. */
static long
send_left_ms(struct send *s)
{
	struct timeval at, now;

	if (!s->has_deadline || !event_pending(&s->deadline, EV_TIMEOUT, &at))
		return (0);
	event_base_gettimeofday_cached(wx_base, &now);
	return ((at.tv_sec - now.tv_sec) * 1000 + (at.tv_usec - now.tv_usec) / 1000);
}

/*
 * Make one attempt with the credential's current token. A send whose deadline
 * is about to pass is answered now: starting it would only turn a clean
 * "not sent" into an ambiguous timeout.
 */
static void
send_start(struct send *s)
{
	struct send_lane *l = s->lane;
	struct cred *c = l->cred;
	struct rpc_error e;

	if (send_left_ms(s) < SEND_MIN_LEFT_MS) {
		/* Not send_fail: we may be inside send_pump's loop. */
		send_tally(s, SEND_UNAVAILABLE, 0);
		memset(&e, 0, sizeof e);
		e.code = "unavailable";
		e.retryable = 1;
		e.message = "send_timeout passed while the send waited for an "
		    "upstream slot";
		send_answer_error(s, SEND_UNAVAILABLE, &e);
		send_free(s);
		return;
	}
	s->attempts++;
	s->gen = cred_gen(c);
	l->inflight++;
	if (s->job != NULL)
		s->call = s->job->start(s->jobarg, cred_token(c),
		    send_upstream_cb, s);
	else
		s->call = wxapi_request(s->msg.kind->endpoint, cred_token(c),
		    NULL, s->msg.json, s->msg.len, send_upstream_cb, s);
}

/*
 * Start queued sends while there is a token and a free upstream slot, the
 * sends of requests before background ones. Safe to call from anywhere: it
 * never frees the lane.
 */
static void
send_pump(struct send_lane *l)
{
	struct send *s;

	while (!wx_stopping && !cred_removed(l->cred) && cred_usable(l->cred) &&
	    l->inflight < wx_conf->max_inflight &&
	    ((s = TAILQ_FIRST(&l->queue)) != NULL ||
	    (s = TAILQ_FIRST(&l->bgqueue)) != NULL)) {
		send_dequeue(s);
		send_start(s);
	}
}

/* Answer every queued send of l with f(s, why). */
static void
send_lane_fail(struct send_lane *l, void (*f)(struct send *, const char *),
    const char *why)
{
	struct send *s;

	while ((s = TAILQ_FIRST(&l->queue)) != NULL ||
	    (s = TAILQ_FIRST(&l->bgqueue)) != NULL)
		f(s, why);
}

static void
send_fail_revoked_why(struct send *s, const char *why)
{
	(void)why;
	send_fail_revoked(s);
}

/*
 * An unloaded authorizer's counters, kept in its platform's (one entry per
 * platform, never per authorizer): a platform's sums count on although the
 * lane goes.
 */
static void
send_retire(struct cred *c, struct send_lane *l)
{
	struct send_retired *r;
	const char *owner = authorizer_component_appid(c);
	int i;

	if (owner == NULL)
		return;
	TAILQ_FOREACH(r, &send_retired, entry) {
		if (strcmp(r->component, owner) == 0)
			break;
	}
	if (r == NULL) {
		r = xcalloc(1, sizeof *r);
		snprintf(r->component, sizeof r->component, "%s", owner);
		TAILQ_INSERT_TAIL(&send_retired, r, entry);
	}
	for (i = 0; i < SEND_NOUTCOMES; i++)
		r->counters.outcome[i] += l->counters.outcome[i];
	for (i = 0; i < WXAPI_NERRCODES; i++)
		r->counters.errcode[i] += l->counters.errcode[i];
}

/* The counters of platform component's unloaded authorizers, or NULL. */
const struct send_counters *
send_counters_retired(const char *component)
{
	const struct send_retired *r;

	TAILQ_FOREACH(r, &send_retired, entry) {
		if (strcmp(r->component, component) == 0)
			return (&r->counters);
	}
	return (NULL);
}

/* What a credential tells its lane: start, fail or drop what waits. */
static void
send_cred_event(struct cred *c, enum cred_event ev, const char *why)
{
	struct send_lane *l = cred_user(c);

	if (ev == CRED_EV_READY && send_ready_hook != NULL && !wx_stopping)
		send_ready_hook(c);	/* the outbox: take what waits */
	if (l == NULL)
		return;
	switch (ev) {
	case CRED_EV_READY:
		send_pump(l);
		break;
	case CRED_EV_FAILED:
		send_lane_fail(l, send_fail_unavailable, why);
		break;
	case CRED_EV_REVOKED:
		send_lane_fail(l, send_fail_revoked_why, NULL);
		break;
	case CRED_EV_REMOVED:
		send_lane_fail(l, send_fail_queued, why);
		send_lane_check(l);
		break;
	case CRED_EV_UNLOADED:
		send_retire(c, l);	/* its lane goes with CRED_EV_REMOVED */
		break;
	case CRED_EV_STOPPING:
		/* c is freed next: send_abort answered what was upstream. */
		send_lane_fail(l, send_fail_queued, why);
		cred_set_user(c, NULL);
		free(l);
		break;
	}
}

/* Answer every send still waiting in a queue (a stop). */
void
send_stop_queued(const char *why)
{
	struct send *s, *next;

	for (s = TAILQ_FIRST(&send_all); s != NULL; s = next) {
		next = TAILQ_NEXT(s, all);
		if (s->queued) {
			send_fail_queued(s, why);
			next = TAILQ_FIRST(&send_all);
		}
	}
}

/* Start s now if a token and a slot are free, or queue it. */
static void
send_submit(struct send *s)
{
	struct send_lane *l = s->lane;

	cred_use(l->cred);	/* keeps it refreshed; wakes an idle one */
	if (cred_usable(l->cred) && l->inflight < wx_conf->max_inflight &&
	    l->nqueue == 0 && (s->done == NULL || l->nbg == 0)) {
		send_start(s);
		return;
	}
	s->queued = 1;
	if (s->done != NULL) {
		TAILQ_INSERT_TAIL(&l->bgqueue, s, entry);
		l->nbg++;
	} else {
		TAILQ_INSERT_TAIL(&l->queue, s, entry);
		l->nqueue++;
	}
	/* A source may have put its refresh off: not with a send waiting. */
	if (!cred_usable(l->cred))
		cred_wanted(l->cred);
}

static void
send_retry_cb(evutil_socket_t fd, short events, void *arg)
{
	struct send *s = arg;

	(void)fd;
	(void)events;
	/* No new attempt once stopping or removed: nothing went out yet. */
	if (wx_stopping || cred_removed(s->lane->cred)) {
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, wx_stopping ?
		    "wxpushd is stopping" : "the appid was removed from the "
		    "configuration");
		return;
	}
	send_requeue(s);
	send_pump(s->lane);
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
	struct cred *c = s->lane->cred;

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
	if ((cred_usable(c) && cred_gen(c) != s->gen) || cred_awaiting(c)) {
		/* A newer token is here, or on its way (perhaps from another
		 * daemon through Redis): wait in line for it. */
		send_requeue(s);
		send_pump(s->lane);
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
	struct send_lane *l = s->lane;
	long errcode;
	int retry_after;
	char errmsg[256], msg[192];

	s->call = NULL;
	l->inflight--;
	if (!r->ok) {
		if (send_transport_safe(r) || r->http_status >= 500) {
			if (send_backoff(s) == 0) {
				send_pump(l);
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
	if (wxapi_reply_parse(r->json, &errcode, errmsg, sizeof errmsg) == -1) {
		send_failx(s, SEND_TIMEOUT, "timeout", 0, "WeChat's answer has "
		    "no readable errcode; the message may or may not have been "
		    "delivered");
		return;
	}
	switch (wxapi_classify(send_endpoint(s), errcode, &retry_after)) {
	case WXAPI_OK:
		cred_call_ok(l->cred);
		send_succeed(s, r);
		return;
	case WXAPI_TOKEN_REFUSED:
		send_token_refused(s, errcode, errmsg);
		return;
	case WXAPI_RETRY:
		if (send_backoff(s) == 0) {
			send_pump(l);
			return;
		}
		send_fail_wechat(s, errcode, errmsg, 1, 0);
		return;
	case WXAPI_RATE_LIMITED:
	case WXAPI_QUOTA:	/* 45009: again once the quota day turns */
		send_fail_wechat(s, errcode, errmsg, 1, retry_after);
		return;
	case WXAPI_OPERATOR:
		cred_call_refused(l->cred, errcode, errcode == 40164 ?
		    "this host's IP is not in the account's IP whitelist "
		    "(40164)" : "WeChat refused a send for a reason an "
		    "operator must fix");
		send_fail_wechat(s, errcode, errmsg, 0, 0);
		return;
	case WXAPI_REVOKED:
		cred_revoke(l->cred);
		send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked "
		    "the platform's authorization");
		return;
	case WXAPI_TOKEN_MISSING:
		log_warnx("%s: WeChat says the token was missing (41001)",
		    s->msg.appid);
		send_failx(s, SEND_INTERNAL, "internal", 1, "WeChat says the "
		    "token was missing (41001); this is a wxpushd bug");
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
	struct cred *c = s->lane->cred;
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
		    "send_timeout%s%s", cred_appid(c),
		    cred_last_error(c)[0] != '\0' ? ": " : "",
		    cred_last_error(c));
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

static void	send_admit_lane(struct send *);

/* idem.c claimed s's key in Redis (IDEM_NEW), or answered s's request. */
static void
send_idem_resume(void *arg, enum idem_begin how)
{
	struct send *s = arg;

	if (how == IDEM_NEW)
		send_admit_lane(s);
	else
		send_free(s);
}

/*
 * Fail s at once if c cannot send for a reason no wait will mend: the
 * merchant revoked the platform, or the credential failed for good. 1 if so.
 */
static int
send_cred_refuses(struct send *s, struct cred *c)
{
	if (cred_revoked(c)) {
		send_failx(s, SEND_REVOKED, "revoked", 0, "the merchant revoked "
		    "the platform's authorization");
		return (1);
	}
	if (!cred_usable(c) && cred_permanent(c)) {
		send_fail_unavailable(s, cred_last_error(c));
		return (1);
	}
	return (0);
}

/*
 * Admit s (its appid in s->msg.appid) into its credential's lane: the
 * checks every send and call share, then its deadline and a start or a
 * place in the queue.
 */
static void
send_admit(struct send *s)
{
	struct request *req = s->req;
	struct send_lane *l;
	struct rpc_error e;
	struct cred *c;

	TAILQ_INSERT_TAIL(&send_all, s, all);
	c = cred_lookup(s->msg.appid);
	if (c == NULL || cred_removed(c) || cred_kind(c) == CRED_COMPONENT ||
	    cred_kind(c) == CRED_JSAPI) {
		memset(&e, 0, sizeof e);
		e.code = "unknown_appid";
		e.field = "appid";
		e.message = "the appid is not configured here";
		send_fail(s, SEND_UNKNOWN_APPID, &e);
		return;
	}
	s->lane = l = send_lane_get(c);	/* counted per appid from here on */
	if (req->client == NULL || !cred_allows(c, &req->client->peer)) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_INFO, "send refused", peer,
		    "%s: send refused to %s", cred_appid(c), peer);
		send_failx(s, SEND_FORBIDDEN, "forbidden", 0,
		    "this user may not send as this appid");
		return;
	}
	/* A repeated idempotency_key: answered with the first outcome. */
	if (s->job == NULL) {
		switch (idem_begin_shared(req, &s->msg, &s->idem,
		    send_idem_resume, s)) {
		case IDEM_NEW:
			break;
		case IDEM_CLAIMING:
			return;		/* send_idem_resume goes on */
		default:
			send_free(s);
			return;
		}
	}
	send_admit_lane(s);
}

/*
 * The rest of send_admit, once the idempotency key (if any) is ours: the
 * lane's checks, then the deadline and a start or a place in the queue.
 */
static void
send_admit_lane(struct send *s)
{
	struct request *req = s->req;
	struct send_lane *l = s->lane;
	struct cred *c = l->cred;

	/* A stop or a reload while the key was claimed in Redis: not sent. */
	if (wx_stopping || cred_removed(c)) {
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1, wx_stopping ?
		    "wxpushd is stopping" : "the appid was removed from the "
		    "configuration");
		return;
	}
	if (send_cred_refuses(s, c))
		return;
	if (l->nqueue >= wx_conf->queue_limit && !(cred_usable(c) &&
	    l->inflight < wx_conf->max_inflight && l->nqueue == 0)) {
		send_failx(s, SEND_BUSY, "busy", 1, "the appid's queue is full");
		return;
	}
	/* subscribe_once: spend a consent of the ledger, or no_consent. */
	if (s->job == NULL && s->msg.kind == &kind_subscribe_once) {
		if (consent_spend(s->msg.appid, s->msg.touser,
		    s->msg.template_id, s->msg.scene, s->consent_tag) == 0 &&
		    consent_required(c)) {
			send_failx(s, SEND_NO_CONSENT, "no_consent", 0, "no "
			    "unspent consent of this user for this template_id "
			    "and scene");
			return;
		}
		s->consent = 1;
	}
	req->data = s;
	event_base_gettimeofday_cached(wx_base, &s->started);
	evtimer_assign(&s->deadline, wx_base, send_deadline_cb, s);
	s->has_deadline = 1;
	evtimer_add(&s->deadline, send_timeout_tv);
	send_submit(s);
}

void
send_method(struct request *req, const msgpack_object *params)
{
	struct send *s;
	struct rpc_error e;

	s = send_alloc();
	s->req = req;
	if (message_parse(params, &s->msg, &e) == -1) {
		send_count(NULL, SEND_INVALID, 0, NULL);
		rpc_reply_error(req, &e);
		send_release(s);
		return;
	}
	send_admit(s);
}

/*
 * Send a job (a call) for appid through its lane, exactly as a message: the
 * job's callbacks start each attempt, answer, count and free it.
 */
void
send_job(struct request *req, const char *appid, const struct send_job *job,
    void *arg)
{
	struct send *s;

	s = send_alloc();
	s->req = req;
	s->job = job;
	s->jobarg = arg;
	snprintf(s->msg.appid, sizeof s->msg.appid, "%s", appid);
	send_admit(s);
}

/* Have hook(c) called whenever credential c has a usable token again. */
void
send_set_ready_hook(void (*hook)(struct cred *))
{
	send_ready_hook = hook;
}

/*
 * A background send of msg (taken over: *msg is zeroed) as c, through the
 * same lane, retries and reactions as a request's, behind the lane's
 * requests; done(arg, result) is called once, maybe before this returns.
 * The caller has checked that the appid may be used.
 */
void
send_background(struct cred *c, struct message *msg, send_done_cb done,
    void *arg)
{
	struct send *s;

	s = send_alloc();
	s->done = done;
	s->done_arg = arg;
	s->msg = *msg;
	memset(msg, 0, sizeof *msg);
	TAILQ_INSERT_TAIL(&send_all, s, all);
	s->lane = send_lane_get(c);
	if (wx_stopping || cred_removed(c)) {
		send_failx(s, SEND_UNAVAILABLE, "unavailable", 1,
		    "the appid cannot send now");
		return;
	}
	if (send_cred_refuses(s, c))
		return;
	evtimer_assign(&s->deadline, wx_base, send_deadline_cb, s);
	s->has_deadline = 1;
	evtimer_add(&s->deadline, send_timeout_tv);
	send_submit(s);
}
