/*
 * The durable outbox: `enqueue` answers once its messages are committed
 * (outbox-db.c's writer thread), and a scheduler delivers them through
 * send.c's background sends, retrying until not_after. Only a window of
 * claimed messages per appid is in memory; the rest stay on disk.
 *
 * Scheduling: each appid with messages waiting is an outbox_app. A round
 * (outbox_pump) gives every due app one claim of up to its free window, in
 * round-robin order, so one appid's backlog never holds another back for
 * more than a round. Claimed rows are marked sending on disk before any
 * attempt: a row found sending at start was maybe attempted, and is attempted
 * again as uncertain (a 43101 then counts as delivered).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wxpushd.h"

#define OUTBOX_BATCH_MAX	1000	/* messages in one enqueue */
#define OUTBOX_CLAIM_MAX	256	/* rows per claim */
#define OUTBOX_CLAIMS		4	/* claims in flight per appid */
#define OUTBOX_WINDOW_MAX	4096	/* claimed messages of one appid */
#define OUTBOX_MEM_MAX		8192	/* claimed messages in memory, all appids */
#define OUTBOX_HASH		1024	/* appid buckets */
#define OUTBOX_BACKOFF_MAX	30	/* seconds an appid waits after failures */
#define OUTBOX_CRED_POLL	5	/* seconds: look at a blocked appid again */
#define OUTBOX_EXPIRE_EVERY	5	/* seconds between expiry sweeps */
#define OUTBOX_EXPIRE_CHUNK	1000
#define OUTBOX_KEEP_EVERY	60	/* seconds between deletions of old rows */
#define OUTBOX_NOT_AFTER_MAX	(366 * 86400)	/* not_after at most this far */
#define OUTBOX_WATCH_HASH	4096
#define OUTBOX_WATCH_MAX	100000	/* watched messages, all clients */
#define OUTBOX_SETS_MAX		1024	/* state changes in one operation */
#define OUTBOX_ERRMSG_MAX	255	/* bytes of WeChat's errmsg kept */

/* A message whose final state its connection wants to hear of. */
struct outbox_watch {
	int64_t			 id;
	uint64_t		 client;	/* struct client's id */
	LIST_ENTRY(outbox_watch) entry;
};
static LIST_HEAD(, outbox_watch) outbox_watches[OUTBOX_WATCH_HASH];
static size_t			 outbox_nwatches;

/* An appid with messages on disk. */
struct outbox_app {
	char			 appid[WX_APPID_MAX + 1];
	int64_t			 depth;		/* queued or sending */
	int			 claimed;	/* in memory now */
	int			 claiming;	/* claims with the writer */
	int			 reserved;	/* rows they may return */
	int			 more;		/* due rows may be left */
	int			 due;		/* on the due list */
	time_t			 paused_until;	/* 45011, 45009 */
	time_t			 blocked_until;	/* no usable credential */
	int			 failing;	/* retryable failures in a row */
	uint32_t		 uids[OUTBOX_UIDS_MAX];	/* callers with due rows */
	size_t			 nuids;
	size_t			 uid_next;	/* who goes first next claim */
	TAILQ_HEAD(, outbox_msg) ready;		/* claimed, not yet sending */
	int			 nsending;	/* with send.c */
	int			 feeding;	/* in outbox_feed */
	LIST_ENTRY(outbox_app)	 hash;
	TAILQ_ENTRY(outbox_app)	 all;
	TAILQ_ENTRY(outbox_app)	 dueq;
};

/* A claimed message, from its claim to its next state on disk. */
struct outbox_msg {
	int64_t			 id;
	struct outbox_app	*app;
	struct message		 msg;		/* send.c's once sent */
	const struct kind	*kind;
	uint32_t		 uid;
	int			 watch;
	int			 attempts;	/* before this claim */
	int			 uncertain;
	time_t			 created_at;
	time_t			 not_after;
	struct outbox_consent	*consent;	/* NULL: holds none */
	int			 sending;	/* with send.c */
	TAILQ_ENTRY(outbox_msg)	 entry;		/* its app's ready list */
};

/* One enqueue request while its messages are committed. */
struct outbox_enqueue {
	struct request		*req;
	int			 batch;		/* answer {ids} */
	size_t			 n;		/* messages parsed */
	struct message		*msgs;
	int64_t			*ids;		/* the answer, by message */
	struct idem		**idems;	/* new keys, by message */
	struct outbox_item	*items;		/* those to write */
	size_t			*pos;		/* items[k] is msgs[pos[k]] */
	size_t			 nitems;
	struct outbox_consent	*consents;	/* what item k holds */
	struct outbox_op	 op;
};

static LIST_HEAD(, outbox_app)	 outbox_hash[OUTBOX_HASH];
static TAILQ_HEAD(, outbox_app)	 outbox_apps = TAILQ_HEAD_INITIALIZER(outbox_apps);
static TAILQ_HEAD(, outbox_app)	 outbox_dueq = TAILQ_HEAD_INITIALIZER(outbox_dueq);
static int64_t			 outbox_total;		/* depth, all appids */
static int64_t			 outbox_inserting;	/* with the writer */
static int			 outbox_claimed;	/* in memory, all appids */
static struct event		*outbox_pump_ev;
static struct event		*outbox_flush_ev;	/* hands outbox_sets over */
static struct outbox_op		*outbox_sets;		/* this turn's changes */
static size_t			 outbox_sets_cap;
static struct event		*outbox_tick_ev;
static int			 outbox_expiring;
static int			 outbox_keeping;
static time_t			 outbox_last_expire, outbox_last_keep;
static int			 outbox_open;

static void	outbox_pump_cb(evutil_socket_t, short, void *);
static void	outbox_feed(struct outbox_app *);

static const char *outbox_state_names[] = {
	[OUTBOX_QUEUED] = "queued",
	[OUTBOX_SENDING] = "sending",
	[OUTBOX_DELIVERED] = "delivered",
	[OUTBOX_FAILED] = "failed",
	[OUTBOX_EXPIRED] = "expired",
};

/* The name of a state, as `delivery` answers it. */
const char *
outbox_state_name(int state)
{
	if (state < 0 || state > OUTBOX_EXPIRED)
		return ("unknown");
	return (outbox_state_names[state]);
}

/* FNV-1a of an appid, for the hash. */
static unsigned
outbox_hash_of(const char *appid)
{
	uint32_t h = 2166136261u;

	while (*appid != '\0')
		h = (h ^ (unsigned char)*appid++) * 16777619u;
	return (h % OUTBOX_HASH);
}

/* The app of appid, made if create is set. */
static struct outbox_app *
outbox_app_get(const char *appid, int create)
{
	struct outbox_app *a;
	unsigned h = outbox_hash_of(appid);

	LIST_FOREACH(a, &outbox_hash[h], hash) {
		if (strcmp(a->appid, appid) == 0)
			return (a);
	}
	if (!create)
		return (NULL);
	a = xcalloc(1, sizeof *a);
	snprintf(a->appid, sizeof a->appid, "%s", appid);
	TAILQ_INIT(&a->ready);
	LIST_INSERT_HEAD(&outbox_hash[h], a, hash);
	TAILQ_INSERT_TAIL(&outbox_apps, a, all);
	return (a);
}

/*
 * Note that uid has messages of a waiting: claims give each such caller an
 * equal share first. Past OUTBOX_UIDS_MAX callers the others share what is
 * left, oldest first.
 */
static void
outbox_app_uid(struct outbox_app *a, uint32_t uid)
{
	size_t i;

	for (i = 0; i < a->nuids; i++) {
		if (a->uids[i] == uid)
			return;
	}
	if (a->nuids < OUTBOX_UIDS_MAX)
		a->uids[a->nuids++] = uid;
}

/* Forget caller i of a: none of its rows was due at the last claim. */
static void
outbox_app_uid_drop(struct outbox_app *a, uint32_t uid)
{
	size_t i;

	for (i = 0; i < a->nuids; i++) {
		if (a->uids[i] == uid) {
			a->uids[i] = a->uids[--a->nuids];
			return;
		}
	}
}

/* Depth and age of appid's outbox. */
struct outbox_depth
outbox_depth_of(const char *appid)
{
	struct outbox_depth d = { 0, 0 };
	struct outbox_app *a;

	if (!outbox_open || (a = outbox_app_get(appid, 0)) == NULL)
		return (d);
	d.depth = a->depth;
	if (a->depth > 0)
		d.oldest = outbox_db_oldest(appid);
	return (d);
}

/* Ask for a scheduling round soon. */
static void
outbox_kick(void)
{
	if (outbox_pump_ev != NULL)
		event_active(outbox_pump_ev, EV_TIMEOUT, 0);
}

/* Put a on the due list: it may have rows to claim. */
static void
outbox_app_due(struct outbox_app *a)
{
	a->more = 1;
	if (!a->due) {
		a->due = 1;
		TAILQ_INSERT_TAIL(&outbox_dueq, a, dueq);
	}
	outbox_kick();
}

/*
 * How many messages an appid may have in memory: enough that its claims (a
 * commit each, 10 to 30 ms on a busy machine) are made long before the lane
 * runs dry.
 */
static int
outbox_window(void)
{
	int w = wx_conf->max_inflight * 16;

	return (w < 16 ? 16 : w > OUTBOX_WINDOW_MAX ? OUTBOX_WINDOW_MAX : w);
}

/* How many messages of an appid may be with send.c: two rounds. */
static int
outbox_lane_max(void)
{
	return (wx_conf->max_inflight * 2);
}

/* Remember that the connection client watches message id. */
static void
outbox_watch_add(int64_t id, uint64_t client)
{
	struct outbox_watch *w;

	w = xcalloc(1, sizeof *w);
	w->id = id;
	w->client = client;
	LIST_INSERT_HEAD(&outbox_watches[(uint64_t)id % OUTBOX_WATCH_HASH], w,
	    entry);
	outbox_nwatches++;
}

/*
 * Message id reached a final state: tell its watcher, if it has one and the
 * connection is still open: [2, "delivery", [{id, state, attempts, ...}]].
 */
static void
outbox_watch_fire(int64_t id, int state, int attempts, const char *code,
    long errcode, const char *errmsg)
{
	struct outbox_watch *w;
	struct client *c;
	msgpack_packer *pk;
	int err = code != NULL && state != OUTBOX_DELIVERED;

	if (outbox_nwatches == 0)
		return;
	LIST_FOREACH(w, &outbox_watches[(uint64_t)id % OUTBOX_WATCH_HASH],
	    entry) {
		if (w->id == id)
			break;
	}
	if (w == NULL)
		return;
	LIST_REMOVE(w, entry);
	outbox_nwatches--;
	if ((c = server_client_find(w->client)) != NULL) {
		pk = rpc_notify_begin(c, "delivery", 1);
		msgpack_pack_map(pk, 3 + (err ? 3 : 0));
		rpc_pack_kv_int(pk, "id", id);
		rpc_pack_kv_str(pk, "state", outbox_state_name(state));
		rpc_pack_kv_int(pk, "attempts", attempts);
		if (err) {
			rpc_pack_kv_str(pk, "code", code);
			rpc_pack_kv_int(pk, "errcode", errcode);
			rpc_pack_kv_str(pk, "errmsg", errmsg != NULL ? errmsg :
			    "");
		}
	}
	free(w);
}

/* A set operation is done; a failed one (disk full) is tried again later. */
static TAILQ_HEAD(, outbox_op)	outbox_retry_ops =
    TAILQ_HEAD_INITIALIZER(outbox_retry_ops);

static void
outbox_set_free(struct outbox_op *op)
{
	size_t i;

	for (i = 0; i < op->nsets; i++)
		free(op->sets[i].errmsg);
	free(op->sets);
	free(op);
}

static void
outbox_set_done(struct outbox_op *op)
{
	if (op->rc != 0) {
		log_warnx("outbox: writing the state of %zu message%s: %s "
		    "(tried again)", op->nsets, op->nsets == 1 ? "" : "s",
		    op->error);
		TAILQ_INSERT_TAIL(&outbox_retry_ops, op, entry);
		return;
	}
	outbox_set_free(op);
}

/* Hand the state changes gathered in this turn of the loop to the writer. */
static void
outbox_flush(void)
{
	struct outbox_op *op = outbox_sets;

	if (op == NULL)
		return;
	outbox_sets = NULL;
	outbox_db_submit(op);
}

static void
outbox_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	outbox_flush();
}

/*
 * Write m's new state (m is not freed here). The changes of one turn of the
 * loop go to the writer as one operation, once the turn's other callbacks
 * have run: one lock and one wakeup for all of them, not one per message.
 */
static void
outbox_set(struct outbox_msg *m, int state, int attempts, time_t next_at,
    const char *code, long errcode, const char *errmsg)
{
	struct outbox_op *op = outbox_sets;
	struct outbox_set *set;

	if (op == NULL) {
		op = outbox_sets = xcalloc(1, sizeof *op);
		op->type = OUTBOX_OP_SET;
		op->now = clock_now();
		op->done = outbox_set_done;
		outbox_sets_cap = 0;
		event_active(outbox_flush_ev, EV_TIMEOUT, 0);
	}
	if (op->nsets == outbox_sets_cap) {
		outbox_sets_cap = outbox_sets_cap == 0 ? 16 :
		    outbox_sets_cap * 2;
		op->sets = xreallocarray(op->sets, outbox_sets_cap,
		    sizeof *op->sets);
	}
	set = &op->sets[op->nsets++];
	memset(set, 0, sizeof *set);
	set->id = m->id;
	set->state = state;
	set->attempts = attempts;
	set->uncertain = m->uncertain;
	set->next_at = next_at;
	if (code != NULL) {
		snprintf(set->code, sizeof set->code, "%s", code);
		set->errcode = errcode;
		set->errmsg = xstrndup(errmsg != NULL ? errmsg : "",
		    OUTBOX_ERRMSG_MAX);
	}
	if (op->nsets == OUTBOX_SETS_MAX)
		outbox_flush();
}

/* m is out of memory: free its slot and maybe claim more for its app. */
static void
outbox_msg_free(struct outbox_msg *m)
{
	struct outbox_app *a = m->app;

	if (m->sending)
		a->nsending--;
	a->claimed--;
	outbox_claimed--;
	message_free(&m->msg);
	free(m->consent);
	free(m);
	if (a->more || a->depth > a->claimed)
		outbox_app_due(a);
	outbox_feed(a);
}

/* m reached a final state. */
static void
outbox_final(struct outbox_msg *m, int state, int attempts, const char *code,
    long errcode, const char *errmsg)
{
	outbox_set(m, state, attempts, 0, code, errcode, errmsg);
	outbox_consent_final(m->app->appid, m->consent, state, errcode,
	    m->uncertain);
	if (m->watch)
		outbox_watch_fire(m->id, state, attempts, code, errcode, errmsg);
	if (m->app->depth > 0)
		m->app->depth--;
	if (outbox_total > 0)
		outbox_total--;
	log_debug("outbox: message %lld %s after %d attempt%s", (long long)m->id,
	    outbox_state_name(state), attempts, attempts == 1 ? "" : "s");
	outbox_msg_free(m);
}

/* m goes back to the queue, due at next_at. */
static void
outbox_requeue(struct outbox_msg *m, int attempts, time_t next_at)
{
	if (next_at > m->not_after)
		next_at = m->not_after;		/* the sweep expires it */
	outbox_app_uid(m->app, m->uid);
	outbox_set(m, OUTBOX_QUEUED, attempts, next_at, NULL, 0, NULL);
	outbox_msg_free(m);
}

/*
 * A retryable failure (WeChat unreachable, -1, a timeout): the appid waits
 * 1, 2, 4 ... 30 seconds (jittered), then sends one message as a probe until
 * one goes through; m is due again at once, behind the wait. An outage thus
 * costs one attempt per wait, not one per message.
 */
static void
outbox_retry(struct outbox_msg *m, int attempts)
{
	struct outbox_app *a = m->app;
	time_t now = clock_now();
	long s = 1;
	int n;

	if (a->paused_until > now) {
		/* Others of the window failing alike: the same outage. */
		outbox_requeue(m, attempts, now);
		return;
	}
	n = a->failing++;
	while (n-- > 0 && s < OUTBOX_BACKOFF_MAX)
		s *= 2;
	if (s > OUTBOX_BACKOFF_MAX)
		s = OUTBOX_BACKOFF_MAX;
	s += arc4random_uniform((uint32_t)s / 4 + 1);
	if (a->paused_until < now + s)
		a->paused_until = now + s;
	outbox_requeue(m, attempts, now);
}

/* What send.c did with a claimed message: decide its next state. */
static void
outbox_sent(void *arg, const struct send_result *r)
{
	struct outbox_msg *m = arg;
	struct outbox_app *a = m->app;
	const struct rpc_error *e = r->error;
	time_t now = clock_now();
	int attempts = m->attempts + r->attempts, retry_after = 0;
	enum wxapi_class cls;

	if (r->uncertain)
		m->uncertain = 1;
	if (wx_stopping) {
		/* Attempted again at the next start. */
		outbox_requeue(m, attempts, now);
		return;
	}
	if (r->outcome == SEND_OK || (r->outcome == SEND_WECHAT &&
	    !e->retryable))
		a->failing = 0;		/* WeChat answers again */
	switch (r->outcome) {
	case SEND_OK:
		outbox_final(m, OUTBOX_DELIVERED, attempts, NULL, 0, NULL);
		return;
	case SEND_WECHAT:
		cls = wxapi_classify(m->kind->endpoint, e->errcode,
		    &retry_after);
		if (cls == WXAPI_RATE_LIMITED || cls == WXAPI_QUOTA) {
			/* The appid waits; the message loses no attempt. */
			if (retry_after < 1)
				retry_after = cls == WXAPI_QUOTA ?
				    (int)clock_until_tomorrow() : 60;
			a->paused_until = now + retry_after;
			log_info("%s: outbox paused %d s (errcode %ld)",
			    a->appid, retry_after, e->errcode);
			outbox_requeue(m, attempts > 0 ? attempts - 1 : 0,
			    a->paused_until);
			return;
		}
		if (e->errcode == 43101 && m->uncertain) {
			/* The consent went to an earlier, uncertain attempt. */
			outbox_final(m, OUTBOX_DELIVERED, attempts, "wechat",
			    e->errcode, "43101 after an uncertain attempt: "
			    "counted as delivered");
			return;
		}
		if (cls == WXAPI_REVOKED) {
			a->blocked_until = now + OUTBOX_CRED_POLL;
			outbox_requeue(m, attempts, now);
			return;
		}
		if (e->retryable) {
			outbox_retry(m, attempts);
			return;
		}
		outbox_final(m, OUTBOX_FAILED, attempts, "wechat", e->errcode,
		    e->errmsg);
		return;
	case SEND_UNAVAILABLE:
	case SEND_REVOKED:
	case SEND_UNKNOWN_APPID:
	case SEND_FORBIDDEN:
		if (r->attempts == 0) {
			/* No token, no slot: wait for the credential. */
			a->blocked_until = now + OUTBOX_CRED_POLL;
			outbox_requeue(m, attempts, now);
			return;
		}
		outbox_retry(m, attempts);
		return;
	default:
		/* timeout (uncertain), internal, and the rest: again later. */
		outbox_retry(m, attempts);
		return;
	}
}

/* Start the delivery of m (off the ready list). */
static void
outbox_start(struct outbox_app *a, struct outbox_msg *m)
{
	struct cred *cred;
	time_t now = clock_now();

	cred = cred_lookup(a->appid);
	if (cred == NULL || cred_removed(cred) ||
	    cred_kind(cred) == CRED_COMPONENT || !cred_usable(cred)) {
		/* Not sent: back to the queue until the credential works. */
		a->blocked_until = now + OUTBOX_CRED_POLL;
		if (cred != NULL && !cred_removed(cred) && !cred_usable(cred))
			cred_wanted(cred);
		outbox_requeue(m, m->attempts, now);
		return;
	}
	m->sending = 1;
	a->nsending++;
	send_background(cred, &m->msg, outbox_sent, m);
}

/*
 * Hand a's claimed messages to send.c, keeping at most two rounds of
 * max_inflight there: its lane never runs dry, and nothing waits in it long
 * enough for send_timeout to pass. While a is paused or blocked (or the
 * daemon stops) they go back to the queue unattempted.
 */
static void
outbox_feed(struct outbox_app *a)
{
	struct outbox_msg *m;
	time_t now = clock_now();

	if (a->feeding)
		return;		/* a done callback inside send_background */
	a->feeding = 1;
	while ((m = TAILQ_FIRST(&a->ready)) != NULL) {
		if (wx_stopping || now < a->paused_until ||
		    now < a->blocked_until) {
			TAILQ_REMOVE(&a->ready, m, entry);
			outbox_requeue(m, m->attempts, a->paused_until > now ?
			    a->paused_until : now);
			continue;
		}
		if (a->nsending >= outbox_lane_max())
			break;
		TAILQ_REMOVE(&a->ready, m, entry);
		outbox_start(a, m);
	}
	a->feeding = 0;
}

/* Take one claimed row into memory, on a's ready list. */
static void
outbox_take(struct outbox_app *a, struct outbox_claimed *c)
{
	struct outbox_msg *m;
	time_t now = clock_now();

	m = xcalloc(1, sizeof *m);
	m->id = c->id;
	m->app = a;
	m->uid = c->uid;
	m->watch = c->watch;
	m->attempts = c->attempts;
	m->uncertain = c->uncertain;
	m->created_at = c->created_at;
	m->not_after = c->not_after;
	if (c->consent.on) {
		m->consent = xmalloc(sizeof *m->consent);
		*m->consent = c->consent;
	}
	snprintf(m->msg.appid, sizeof m->msg.appid, "%s", a->appid);
	m->msg.json = c->body;
	m->msg.len = c->len;
	c->body = NULL;
	m->msg.kind = m->kind = message_parse_kind(c->kind, strlen(c->kind));
	a->claimed++;
	outbox_claimed++;
	if (m->msg.kind == NULL) {
		outbox_final(m, OUTBOX_FAILED, m->attempts, "internal", 0,
		    "the message's kind is not known to this wxpushd");
		return;
	}
	if (now > m->not_after) {
		outbox_final(m, OUTBOX_EXPIRED, m->attempts, "expired", 0,
		    "not_after passed");
		return;
	}
	TAILQ_INSERT_TAIL(&a->ready, m, entry);
}

/* A claim is committed: deliver what it returned. */
static void
outbox_claim_done(struct outbox_op *op)
{
	struct outbox_app *a = op->arg;
	size_t i;

	a->claiming--;
	a->reserved -= op->limit;
	if (op->rc != 0) {
		outbox_claimed -= op->limit;
		log_warnx("outbox: %s: claiming messages: %s", a->appid,
		    op->error);
		free(op);
		return;		/* the tick tries again */
	}
	a->more = op->nclaimed == (size_t)op->limit;
	for (i = 0; i < op->nuids; i++) {
		if (op->got[i])
			outbox_app_uid_drop(a, op->uids[i]);
	}
	/* outbox_claimed was reserved when the claim was made. */
	outbox_claimed -= op->limit;
	a->feeding = 1;		/* one feed, once all are taken */
	for (i = 0; i < op->nclaimed; i++)
		outbox_take(a, &op->claimed[i]);
	a->feeding = 0;
	outbox_feed(a);
	for (i = 0; i < op->nclaimed; i++)
		free(op->claimed[i].body);
	free(op->claimed);
	free(op);
	if (a->more)
		outbox_app_due(a);
}

/*
 * Whether a may claim now: a claim slot is free and so is half the window
 * (or room for all that is left), so that claims stay large: many small
 * claims would each wait for a commit of their own.
 */
static int
outbox_app_ready(struct outbox_app *a, time_t now)
{
	int64_t left = a->depth - a->claimed - a->reserved;
	int64_t free = outbox_window() - a->claimed - a->reserved;
	int64_t want = outbox_window() / OUTBOX_CLAIMS;

	if (left < want)
		want = left;
	if (a->failing > 0)
		want = 1;
	return (a->claiming < OUTBOX_CLAIMS && a->more && left > 0 &&
	    now >= a->paused_until && now >= a->blocked_until &&
	    free >= want);
}

/* A scheduling round: every due app gets one claim, in turn. */
static void
outbox_pump_cb(evutil_socket_t fd, short events, void *arg)
{
	TAILQ_HEAD(, outbox_app) round;
	struct outbox_app *a;
	struct outbox_op *op;
	time_t now = clock_now();
	size_t i;
	int limit;

	(void)fd;
	(void)events;
	(void)arg;
	if (wx_stopping)
		return;
	TAILQ_INIT(&round);
	TAILQ_CONCAT(&round, &outbox_dueq, dueq);
	while ((a = TAILQ_FIRST(&round)) != NULL) {
		TAILQ_REMOVE(&round, a, dueq);
		a->due = 0;
		if (!outbox_app_ready(a, now))
			continue;	/* the tick or an event puts it back */
		/* Two claims of half a window each overlap a commit. */
		limit = outbox_window() - a->claimed - a->reserved;
		if (limit > outbox_window() / OUTBOX_CLAIMS)
			limit = outbox_window() / OUTBOX_CLAIMS;
		if (a->failing > 0)	/* one probe */
			limit = a->claimed + a->reserved == 0 ? 1 : 0;
		if (limit > OUTBOX_CLAIM_MAX)
			limit = OUTBOX_CLAIM_MAX;
		if (limit > OUTBOX_MEM_MAX - outbox_claimed)
			limit = OUTBOX_MEM_MAX - outbox_claimed;
		if (limit <= 0 && a->failing > 0)
			continue;
		if (limit <= 0) {
			/* Memory is full: wait for a slot, keep the turn. */
			a->due = 1;
			TAILQ_INSERT_HEAD(&outbox_dueq, a, dueq);
			TAILQ_CONCAT(&outbox_dueq, &round, dueq);
			return;
		}
		op = xcalloc(1, sizeof *op);
		op->type = OUTBOX_OP_CLAIM;
		op->now = now;
		snprintf(op->appid, sizeof op->appid, "%s", a->appid);
		op->limit = limit;
		/* Callers in turn: a different one first each claim. */
		for (i = 0; i < a->nuids; i++)
			op->uids[i] = a->uids[(a->uid_next + i) % a->nuids];
		op->nuids = a->nuids;
		a->uid_next++;
		op->done = outbox_claim_done;
		op->arg = a;
		a->claiming++;
		a->reserved += limit;
		outbox_claimed += limit;	/* reserved until it is done */
		outbox_db_submit(op);
	}
}

/* An expiry sweep is done: the expired leave the counts. */
static void
outbox_expire_done(struct outbox_op *op)
{
	struct outbox_app *a;
	size_t i;
	int again;

	outbox_expiring = 0;
	if (op->rc != 0)
		log_warnx("outbox: expiring messages: %s", op->error);
	for (i = 0; i < op->nclaimed; i++) {
		if ((a = outbox_app_get(op->claimed[i].appid, 0)) != NULL &&
		    a->depth > 0)
			a->depth--;
		if (outbox_total > 0)
			outbox_total--;
		outbox_consent_final(op->claimed[i].appid,
		    &op->claimed[i].consent, OUTBOX_EXPIRED, 0,
		    op->claimed[i].uncertain);
		if (op->claimed[i].watch)
			outbox_watch_fire(op->claimed[i].id, OUTBOX_EXPIRED,
			    op->claimed[i].attempts, "expired", 0,
			    "not_after passed");
	}
	if (op->nclaimed > 0)
		log_info("outbox: %zu message%s expired (not_after passed)",
		    op->nclaimed, op->nclaimed == 1 ? "" : "s");
	again = op->rc == 0 && op->nclaimed == (size_t)op->limit;
	free(op->claimed);
	free(op);
	if (again)
		outbox_last_expire = 0;
}

static void
outbox_keep_done(struct outbox_op *op)
{
	outbox_keeping = 0;
	if (op->rc != 0)
		log_warnx("outbox: deleting old messages: %s", op->error);
	else if (op->nclaimed > 0)
		log_debug("outbox: %zu old message%s deleted", op->nclaimed,
		    op->nclaimed == 1 ? "" : "s");
	free(op);
}

/* Every second: unblock apps, sweep expired and old rows, retry writes. */
static void
outbox_tick_cb(evutil_socket_t fd, short events, void *arg)
{
	struct outbox_app *a;
	struct outbox_op *op;
	time_t now = clock_now();

	(void)fd;
	(void)events;
	(void)arg;
	if (wx_stopping)
		return;
	while ((op = TAILQ_FIRST(&outbox_retry_ops)) != NULL) {
		TAILQ_REMOVE(&outbox_retry_ops, op, entry);
		outbox_db_submit(op);
	}
	TAILQ_FOREACH(a, &outbox_apps, all) {
		if (a->depth > a->claimed && a->claiming == 0)
			outbox_app_due(a);
	}
	if (!outbox_expiring && now - outbox_last_expire >= OUTBOX_EXPIRE_EVERY) {
		outbox_last_expire = now;
		outbox_expiring = 1;
		op = xcalloc(1, sizeof *op);
		op->type = OUTBOX_OP_EXPIRE;
		op->now = now;
		op->limit = OUTBOX_EXPIRE_CHUNK;
		op->done = outbox_expire_done;
		outbox_db_submit(op);
	}
	if (!outbox_keeping && now - outbox_last_keep >= OUTBOX_KEEP_EVERY) {
		outbox_last_keep = now;
		outbox_keeping = 1;
		op = xcalloc(1, sizeof *op);
		op->type = OUTBOX_OP_KEEP;
		op->now = now - wx_conf->outbox_keep;
		op->done = outbox_keep_done;
		outbox_db_submit(op);
	}
}

/* A credential has a token again: its messages may go now. */
static void
outbox_cred_ready(struct cred *c)
{
	struct outbox_app *a;

	if (!outbox_open || (a = outbox_app_get(cred_appid(c), 0)) == NULL)
		return;
	a->blocked_until = 0;
	if (a->depth > a->claimed)
		outbox_app_due(a);
}

/* At start: an app per appid with messages waiting. */
static void
outbox_depth_cb(const char *appid, int64_t n)
{
	struct outbox_app *a = outbox_app_get(appid, 1);

	a->depth = n;
	outbox_total += n;
	outbox_app_due(a);
}

/* Open the outbox and start its scheduler; 0, or -1 and a cause. */
int
outbox_init(char **cause)
{
	struct timeval tv = { 1, 0 };

	if (outbox_db_open(wx_conf->state_dir, cause) != 0)
		return (-1);
	outbox_open = 1;
	outbox_pump_ev = event_new(wx_base, -1, 0, outbox_pump_cb, NULL);
	outbox_flush_ev = event_new(wx_base, -1, 0, outbox_flush_cb, NULL);
	outbox_tick_ev = event_new(wx_base, -1, EV_PERSIST, outbox_tick_cb,
	    NULL);
	event_add(outbox_tick_ev, &tv);
	if (outbox_db_depths(outbox_depth_cb) != 0) {
		xasprintf(cause, "outbox: counting the messages waiting failed");
		return (-1);
	}
	if (outbox_consent_init() != 0) {
		xasprintf(cause, "outbox: reading the consents queued messages "
		    "hold failed");
		return (-1);
	}
	if (outbox_total > 0)
		log_info("outbox: %lld message%s waiting", (long long)outbox_total,
		    outbox_total == 1 ? "" : "s");
	send_set_ready_hook(outbox_cred_ready);
	return (0);
}

/* After the loop: let the writer finish, then free everything. */
void
outbox_shutdown(void)
{
	struct outbox_app *a;
	struct outbox_msg *m;
	struct outbox_op *op;
	struct outbox_watch *w;
	size_t i;

	if (!outbox_open)
		return;
	/* Claimed but never attempted: queued again as they were. */
	TAILQ_FOREACH(a, &outbox_apps, all) {
		a->feeding = 1;
		while ((m = TAILQ_FIRST(&a->ready)) != NULL) {
			TAILQ_REMOVE(&a->ready, m, entry);
			outbox_requeue(m, m->attempts, clock_now());
		}
	}
	outbox_flush();
	outbox_db_close();	/* runs the last done callbacks */
	while ((op = TAILQ_FIRST(&outbox_retry_ops)) != NULL) {
		TAILQ_REMOVE(&outbox_retry_ops, op, entry);
		outbox_set_free(op);
	}
	while ((a = TAILQ_FIRST(&outbox_apps)) != NULL) {
		TAILQ_REMOVE(&outbox_apps, a, all);
		free(a);
	}
	for (i = 0; i < OUTBOX_WATCH_HASH; i++) {
		while ((w = LIST_FIRST(&outbox_watches[i])) != NULL) {
			LIST_REMOVE(w, entry);
			free(w);
		}
	}
	outbox_nwatches = 0;
	TAILQ_INIT(&outbox_dueq);
	memset(outbox_hash, 0, sizeof outbox_hash);
	if (outbox_pump_ev != NULL)
		event_free(outbox_pump_ev);
	if (outbox_tick_ev != NULL)
		event_free(outbox_tick_ev);
	if (outbox_flush_ev != NULL)
		event_free(outbox_flush_ev);
	outbox_pump_ev = outbox_tick_ev = outbox_flush_ev = NULL;
	outbox_open = 0;
}

/* Free an enqueue request's state (answered or not). */
static void
outbox_enqueue_free(struct outbox_enqueue *q)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		message_free(&q->msgs[i]);
	free(q->msgs);
	free(q->ids);
	free(q->idems);
	free(q->items);
	free(q->pos);
	free(q->consents);
	free(q);
}

/*
 * Answer an enqueue busy (retryable): its new keys are forgotten (nothing
 * was queued), and their waiting repeats hear the same.
 */
static void
outbox_busy(struct outbox_enqueue *q, const char *field, const char *why)
{
	struct rpc_error e;
	size_t i;

	memset(&e, 0, sizeof e);
	e.code = "busy";
	e.retryable = 1;
	e.field = field;
	e.message = why;
	for (i = 0; i < q->n; i++) {
		if (q->idems[i] != NULL)
			idem_finish_error(q->idems[i], &e);
		q->idems[i] = NULL;
	}
	rpc_reply_error(q->req, &e);
}

/* Answer an enqueue whose message i found no consent where one is required. */
static void
outbox_no_consent(struct outbox_enqueue *q, size_t i)
{
	struct rpc_error e;
	char field[32], msg[160];
	size_t j;

	snprintf(field, sizeof field, "messages.%zu", i);
	snprintf(msg, sizeof msg, "%s%sno unspent consent of this user for "
	    "this template_id and scene; nothing was queued",
	    q->batch ? field : "", q->batch ? ": " : "");
	memset(&e, 0, sizeof e);
	e.code = "no_consent";
	e.field = q->batch ? field : NULL;
	e.message = msg;
	for (j = 0; j < q->n; j++) {
		if (q->idems[j] != NULL)
			idem_finish_error(q->idems[j], &e);	/* forgotten */
		q->idems[j] = NULL;
	}
	rpc_reply_error(q->req, &e);
}

/* Answer an enqueue whose messages are all on disk: {id} or {ids}. */
static void
outbox_enqueue_reply(struct outbox_enqueue *q)
{
	msgpack_packer *pk;
	size_t i;

	pk = rpc_reply_begin(q->req, 1);
	if (q->batch) {
		rpc_pack_str(pk, "ids");
		msgpack_pack_array(pk, q->n);
		for (i = 0; i < q->n; i++)
			msgpack_pack_int64(pk, q->ids[i]);
	} else
		rpc_pack_kv_int(pk, "id", q->ids[0]);
	rpc_reply_end(q->req);
}

/* An enqueue's messages are on disk (or not): answer it. */
static void
outbox_enqueue_done(struct outbox_op *op)
{
	struct outbox_enqueue *q = op->arg;
	struct outbox_item *it;
	struct outbox_app *a;
	size_t i, k;

	outbox_inserting -= (int64_t)q->nitems;
	if (op->rc != 0) {
		log_warnx("outbox: queueing %zu message%s: %s", q->nitems,
		    q->nitems == 1 ? "" : "s", op->error);
		outbox_consent_unqueue(q->msgs, q->pos, q->nitems,
		    q->consents);
		outbox_busy(q, NULL, "the outbox cannot write to disk now; "
		    "nothing was queued");
		outbox_enqueue_free(q);
		return;
	}
	for (k = 0; k < q->nitems; k++) {
		it = &q->items[k];
		i = q->pos[k];
		q->ids[i] = it->id;
		if (q->idems[i] != NULL)
			idem_finish_queued(q->idems[i], it->id);
		q->idems[i] = NULL;
		if (it->watch && q->req->client != NULL)
			outbox_watch_add(it->id, q->req->client->id);
		a = outbox_app_get(it->appid, 1);
		outbox_app_uid(a, it->uid);
		a->depth++;
		outbox_total++;
		outbox_app_due(a);
	}
	outbox_enqueue_reply(q);
	outbox_enqueue_free(q);
}

/*
 * Check one message of an enqueue: send's params plus not_after and watch.
 * 0 with msg, not_after and watch filled; -1 with the request answered.
 */
static int
outbox_parse(struct request *req, const msgpack_object *params,
    const char *where, struct message *msg, time_t *not_after, int *watch)
{
	msgpack_object copy;
	msgpack_object_kv kv[MESSAGE_KEYS_MAX + 2];
	const msgpack_object *o;
	struct rpc_error e;
	struct cred *c;
	time_t now = clock_now();
	uint32_t i, n = 0;

	if (params == NULL || params->type != MSGPACK_OBJECT_MAP) {
		rpc_reply_errorx(req, "invalid_request", 0, where,
		    "%s must be a map", where);
		return (-1);
	}
	if (params->via.map.size > MESSAGE_KEYS_MAX + 2) {
		rpc_reply_errorx(req, "invalid_request", 0, where,
		    "%s has too many fields", where);
		return (-1);
	}
	*not_after = now + wx_conf->outbox_ttl;
	*watch = 0;
	for (i = 0; i < params->via.map.size; i++) {
		const msgpack_object_kv *p = &params->via.map.ptr[i];

		if (rpc_str_eq(&p->key, "not_after")) {
			o = &p->val;
			if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    o->via.u64 <= (uint64_t)now ||
			    o->via.u64 > (uint64_t)now + OUTBOX_NOT_AFTER_MAX) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    "not_after", "not_after must be unix time "
				    "in the future, within a year");
				return (-1);
			}
			*not_after = (time_t)o->via.u64;
		} else if (rpc_str_eq(&p->key, "watch")) {
			if (p->val.type != MSGPACK_OBJECT_BOOLEAN) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    "watch", "watch must be a bool");
				return (-1);
			}
			*watch = p->val.via.boolean;
		} else
			kv[n++] = *p;
	}
	copy.type = MSGPACK_OBJECT_MAP;
	copy.via.map.size = n;
	copy.via.map.ptr = kv;
	if (message_parse(&copy, msg, &e) == -1) {
		rpc_reply_error(req, &e);
		return (-1);
	}
	c = cred_lookup(msg->appid);
	if (c == NULL || cred_removed(c) || cred_kind(c) == CRED_COMPONENT) {
		message_free(msg);
		rpc_reply_errorx(req, "unknown_appid", 0, "appid",
		    "the appid is not configured here");
		return (-1);
	}
	if (req->client == NULL || !cred_allows(c, &req->client->peer)) {
		message_free(msg);
		rpc_reply_errorx(req, "forbidden", 0, "appid",
		    "this user may not send as this appid");
		return (-1);
	}
	return (0);
}

/* Whether two messages carry the same key (of the same appid). */
static int
outbox_key_same(const struct message *a, const struct message *b)
{
	return (strcmp(a->appid, b->appid) == 0 &&
	    strcmp(a->idempotency_key, b->idempotency_key) == 0);
}

/* Order of keyed messages (their indexes) by appid, key, then index. */
static const struct message *outbox_sort_msgs;

static int
outbox_key_cmp(const void *x, const void *y)
{
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	const struct message *a = &outbox_sort_msgs[i];
	const struct message *b = &outbox_sort_msgs[j];
	int c;

	if ((c = strcmp(a->appid, b->appid)) != 0)
		return (c);
	if ((c = strcmp(a->idempotency_key, b->idempotency_key)) != 0)
		return (c);
	return (i < j ? -1 : i > j);
}

/*
 * The keys of a batch, checked before anything is written: a key twice in
 * the batch, or used before for another message, refuses the batch; one
 * whose first enqueue is still being committed makes it busy (retryable). A
 * key queued before gives its message that id, and the message is not
 * queued again. Then every new key is remembered (pending until the commit).
 * 0, or -1 with the request answered.
 */
static int
outbox_batch_keys(struct outbox_enqueue *q)
{
	struct request *req = q->req;
	uint32_t uid = (uint32_t)req->client->peer.uid;
	size_t *order, *first, i, j, nk = 0;
	char field[48];
	int64_t id;

	order = xreallocarray(NULL, q->n, sizeof *order);
	first = xreallocarray(NULL, q->n, sizeof *first);
	for (i = 0; i < q->n; i++) {
		first[i] = i;
		if (q->msgs[i].idempotency_key != NULL)
			order[nk++] = i;
	}
	outbox_sort_msgs = q->msgs;
	qsort(order, nk, sizeof *order, outbox_key_cmp);
	/* A key's messages are adjacent, the first of the batch first. */
	for (j = 1; j < nk; j++) {
		if (outbox_key_same(&q->msgs[order[j - 1]], &q->msgs[order[j]]))
			first[order[j]] = first[order[j - 1]];
	}
	free(order);
	for (i = 0; i < q->n; i++) {
		if (q->msgs[i].idempotency_key == NULL)
			continue;
		snprintf(field, sizeof field, "messages.%zu.idempotency_key",
		    i);
		if (first[i] != i) {
			rpc_reply_errorx(req, "invalid_request", 0, field,
			    "%s repeats the idempotency_key of messages.%zu",
			    field, first[i]);
			free(first);
			return (-1);
		}
		switch (idem_look_salted(uid, &q->msgs[i], "enqueue", &id)) {
		case IDEM_LOOK_NEW:
			break;
		case IDEM_LOOK_QUEUED:
			q->ids[i] = id;
			break;
		case IDEM_LOOK_PENDING:
			rpc_reply_errorx(req, "busy", 1, field, "an enqueue with "
			    "this idempotency_key is being committed; nothing "
			    "was queued: repeat the batch");
			free(first);
			return (-1);
		case IDEM_LOOK_OTHER:
			rpc_reply_errorx(req, "invalid_request", 0, field,
			    "this idempotency_key was used for a different "
			    "message in the last 24 hours");
			free(first);
			return (-1);
		}
	}
	free(first);
	for (i = 0; i < q->n; i++) {
		if (q->msgs[i].idempotency_key != NULL && q->ids[i] == 0)
			q->idems[i] = idem_add_salted(uid, &q->msgs[i],
			    "enqueue");
	}
	return (0);
}

/*
 * enqueue: check every message as send would, then hand them to the writer;
 * the answer ({id} or {ids}) comes once they are committed.
 */
void
outbox_method_enqueue(struct request *req, const msgpack_object *params)
{
	const msgpack_object *list = rpc_map_get(params, "messages");
	const msgpack_object *one;
	struct outbox_enqueue *q;
	struct outbox_item *it;
	struct message *msg;
	char where[32];
	size_t i, n, nwatch;
	time_t not_after;
	int watch;

	if (!outbox_open || wx_stopping) {
		rpc_reply_errorx(req, "unavailable", 1, NULL,
		    "wxpushd is stopping");
		return;
	}
	if (list != NULL) {
		if (params->via.map.size != 1 ||
		    list->type != MSGPACK_OBJECT_ARRAY ||
		    list->via.array.size < 1 ||
		    list->via.array.size > OUTBOX_BATCH_MAX) {
			rpc_reply_errorx(req, "invalid_request", 0, "messages",
			    "messages must be the only field, an array of "
			    "1..%d maps", OUTBOX_BATCH_MAX);
			return;
		}
		n = list->via.array.size;
	} else
		n = 1;
	q = xcalloc(1, sizeof *q);
	q->req = req;
	q->batch = list != NULL;
	q->msgs = xcalloc(n, sizeof *q->msgs);
	q->ids = xcalloc(n, sizeof *q->ids);
	q->idems = xcalloc(n, sizeof *q->idems);
	q->items = xcalloc(n, sizeof *q->items);
	q->pos = xcalloc(n, sizeof *q->pos);
	q->consents = xcalloc(n, sizeof *q->consents);
	for (i = 0; i < n; i++) {
		one = list != NULL ? &list->via.array.ptr[i] : params;
		if (list != NULL)
			snprintf(where, sizeof where, "messages.%zu", i);
		else
			snprintf(where, sizeof where, "params");
		if (outbox_parse(req, one, where, &q->msgs[i], &not_after,
		    &watch) != 0)
			goto fail;
		q->n = i + 1;
		q->items[i].not_after = not_after;
		q->items[i].watch = watch;
	}
	if (!q->batch) {
		/* A repeated key: answered with the first {id}, maybe later. */
		if (idem_begin_salted(req, &q->msgs[0], "enqueue",
		    &q->idems[0]) != IDEM_NEW)
			goto fail;
	} else if (outbox_batch_keys(q) != 0)
		goto fail;
	/*
	 * The messages to write: all but those of keys queued before,
	 * compacted in place (item k is read at i >= k, before it is written).
	 */
	for (i = 0, nwatch = 0; i < n; i++) {
		if (q->ids[i] != 0)
			continue;
		msg = &q->msgs[i];
		it = &q->items[q->nitems];
		it->not_after = q->items[i].not_after;
		it->watch = q->items[i].watch;
		it->appid = msg->appid;
		it->kind = msg->kind->name;
		it->body = msg->json;
		it->len = msg->len;
		it->uid = (uint32_t)req->client->peer.uid;
		it->consent = &q->consents[q->nitems];
		q->pos[q->nitems++] = i;
		nwatch += it->watch != 0;
	}
	if (q->nitems == 0) {
		outbox_enqueue_reply(q);	/* every key queued before */
		goto fail;
	}
	if (outbox_nwatches + nwatch > OUTBOX_WATCH_MAX) {
		outbox_busy(q, "watch", "too many messages are watched now");
		goto fail;
	}
	if (outbox_total + outbox_inserting + (int64_t)q->nitems >
	    wx_conf->outbox_limit) {
		outbox_busy(q, NULL, "the outbox is full (outbox_limit)");
		goto fail;
	}
	/* Last: a subscribe_once spends its consent, or nothing is queued. */
	if (outbox_consent_enqueue(q->msgs, q->pos, q->nitems, q->consents,
	    &i) != 0) {
		outbox_no_consent(q, i);
		goto fail;
	}
	outbox_inserting += (int64_t)q->nitems;
	q->op.type = OUTBOX_OP_INSERT;
	q->op.now = clock_now();
	q->op.items = q->items;
	q->op.n = q->nitems;
	q->op.done = outbox_enqueue_done;
	q->op.arg = q;
	/* q->op is the first thing the done callback frees with q. */
	outbox_db_submit(&q->op);
	return;

fail:
	outbox_enqueue_free(q);
}

/* delivery {id}: a message's state, for the uid that queued it or root. */
void
outbox_method_delivery(struct request *req, const msgpack_object *params)
{
	const msgpack_object *o = rpc_map_get(params, "id");
	struct outbox_row row;
	msgpack_packer *pk;
	int rc, final;

	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > INT64_MAX) {
		rpc_reply_errorx(req, "invalid_request", 0, "id",
		    "id must be a positive integer");
		return;
	}
	if (!outbox_open || (rc = outbox_db_get((int64_t)o->via.u64, &row)) < 0) {
		rpc_reply_errorx(req, "internal", 1, NULL,
		    "the outbox cannot be read now");
		return;
	}
	if (rc == 0) {
		rpc_reply_errorx(req, "not_found", 0, "id",
		    "no such message (or it is older than outbox_keep)");
		return;
	}
	if (req->client == NULL || (req->client->peer.uid != 0 &&
	    (uint32_t)req->client->peer.uid != row.uid)) {
		rpc_reply_errorx(req, "forbidden", 0, "id",
		    "only the user that queued a message (or root) may read it");
		return;
	}
	final = row.code[0] != '\0' && row.state != OUTBOX_DELIVERED;
	pk = rpc_reply_begin(req, 7 + (final ? 3 : 0));
	rpc_pack_kv_int(pk, "id", row.id);
	rpc_pack_kv_str(pk, "appid", row.appid);
	rpc_pack_kv_str(pk, "state", outbox_state_name(row.state));
	rpc_pack_kv_int(pk, "attempts", row.attempts);
	rpc_pack_kv_int(pk, "created_at", (int64_t)row.created_at);
	rpc_pack_kv_int(pk, "updated_at", (int64_t)row.updated_at);
	rpc_pack_kv_int(pk, "not_after", (int64_t)row.not_after);
	if (final) {
		rpc_pack_kv_str(pk, "code", row.code);
		rpc_pack_kv_int(pk, "errcode", row.errcode);
		rpc_pack_kv_str(pk, "errmsg", row.errmsg);
	}
	rpc_reply_end(req);
}

/* outbox: depth and oldest message per appid the peer may use. */
void
outbox_method_outbox(struct request *req, const msgpack_object *params)
{
	const struct peer *peer = req->client != NULL ?
	    &req->client->peer : NULL;
	struct outbox_app *a;
	struct cred *c;
	msgpack_packer *pk;
	uint32_t n = 0;
	time_t oldest;

	(void)params;
	TAILQ_FOREACH(a, &outbox_apps, all) {
		c = cred_lookup(a->appid);
		if (peer != NULL && (peer->uid == 0 ||
		    (c != NULL && cred_allows(c, peer))))
			n++;
	}
	pk = rpc_reply_begin(req, 2);
	rpc_pack_kv_int(pk, "depth", outbox_total);
	rpc_pack_str(pk, "appids");
	msgpack_pack_array(pk, n);
	TAILQ_FOREACH(a, &outbox_apps, all) {
		c = cred_lookup(a->appid);
		if (!(peer != NULL && (peer->uid == 0 ||
		    (c != NULL && cred_allows(c, peer)))))
			continue;
		oldest = a->depth > 0 ? outbox_db_oldest(a->appid) : 0;
		msgpack_pack_map(pk, 5);
		rpc_pack_kv_str(pk, "appid", a->appid);
		rpc_pack_kv_int(pk, "depth", a->depth);
		rpc_pack_kv_int(pk, "oldest", (int64_t)oldest);
		rpc_pack_kv_int(pk, "sending", a->claimed);
		rpc_pack_kv_int(pk, "paused_until", (int64_t)a->paused_until);
	}
	rpc_reply_end(req);
}
