/*
 * Idempotency keys: the first outcome of a send that carries an
 * idempotency_key, remembered for 24 hours per (caller uid, appid, key), so a
 * repeat is answered with that outcome instead of being sent again. A repeat
 * that comes while the first is still in flight waits for it.
 *
 * The send path only touches the hash table here. Outcomes are written behind
 * to the store in batches by a timer, and at a graceful stop, and loaded at
 * start: a crash loses at most the last IDEM_FLUSH_MS of outcomes (see
 * docs/operations.md for the exact guarantee).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "wxpushd.h"

#define IDEM_TTL		86400	/* seconds a key is remembered */
#define IDEM_MAX		1000000	/* keys held; past it the oldest go */
#define IDEM_FLUSH_MS		200	/* write-behind delay */
#define IDEM_FLUSH_RETRY	5	/* seconds, after a failed write */
#define IDEM_FLUSH_ROWS		10000	/* rows per batch, to bound a stall */
#define IDEM_EXPIRE_EVERY	60	/* seconds between expiry sweeps */
#define IDEM_TABLE_MIN		1024

struct idem_waiter {
	struct request			*req;
	TAILQ_ENTRY(idem_waiter)	 entry;
};

struct idem {
	struct idem		*hnext;		/* hash chain */
	uint32_t		 hash;
	uint32_t		 uid;
	const char		*appid;		/* in names */
	const char		*key;		/* in names */
	time_t			 created;
	unsigned char		 digest[IDEM_DIGEST_LEN];
	int			 pending;	/* the first send is in flight */
	int			 dirty;		/* not yet in the store */
	TAILQ_HEAD(, idem_waiter) waiters;	/* repeats waiting for it */
	TAILQ_ENTRY(idem)	 age;		/* oldest first */
	TAILQ_ENTRY(idem)	 dirtyq;

	/* The outcome, once the first send has one worth remembering. */
	const char		*code;		/* NULL: delivered */
	int64_t			 outbox_id;	/* code idem_queued: enqueued */
	int			 attempts;
	int64_t			 msgid;		/* WeChat's, 0 if none */
	long			 errcode;
	int			 retryable;
	int			 retry_after;
	char			*errmsg;
	char			*message;

	char			 names[];	/* appid, NUL, key, NUL */
};
TAILQ_HEAD(idem_list, idem);

static struct idem		**idem_table;
static size_t			 idem_tsize, idem_n;
static struct idem_list		 idem_age = TAILQ_HEAD_INITIALIZER(idem_age);
static struct idem_list		 idem_dirty = TAILQ_HEAD_INITIALIZER(idem_dirty);
static struct event		*idem_flush_ev, *idem_expire_ev;
static time_t			 idem_warned;

/* The error codes whose outcome is final enough to remember. */
static const char *idem_codes[] = { "wechat", "timeout" };
static const char idem_queued[] = "queued";	/* an enqueue's {id} */

/* FNV-1a over the uid, the appid and the key. */
static uint32_t
idem_hash(uint32_t uid, const char *appid, const char *key)
{
	uint32_t	 h = 2166136261u;
	int		 i;

	for (i = 0; i < 4; i++)
		h = (h ^ ((uid >> (8 * i)) & 0xff)) * 16777619u;
	while (*appid != '\0')
		h = (h ^ (unsigned char)*appid++) * 16777619u;
	h = (h ^ 0xff) * 16777619u;	/* appid "ab" key "c" is not "a", "bc" */
	while (*key != '\0')
		h = (h ^ (unsigned char)*key++) * 16777619u;
	return (h);
}

/* How many keys are held (for stats). */
size_t
idem_count(void)
{
	return (idem_n);
}

/* Double the hash table (or create it). */
static void
idem_grow(void)
{
	struct idem	**old = idem_table, *i, *next;
	size_t		  oldsize = idem_tsize, b, j;

	idem_tsize = oldsize == 0 ? IDEM_TABLE_MIN : oldsize * 2;
	idem_table = xcalloc(idem_tsize, sizeof *idem_table);
	for (j = 0; j < oldsize; j++) {
		for (i = old[j]; i != NULL; i = next) {
			next = i->hnext;
			b = i->hash & (idem_tsize - 1);
			i->hnext = idem_table[b];
			idem_table[b] = i;
		}
	}
	free(old);
}

/* The entry for (uid, appid, key), or NULL. */
static struct idem *
idem_find(uint32_t hash, uint32_t uid, const char *appid, const char *key)
{
	struct idem	*i;

	if (idem_tsize == 0)
		return (NULL);
	for (i = idem_table[hash & (idem_tsize - 1)]; i != NULL; i = i->hnext) {
		if (i->hash == hash && i->uid == uid &&
		    strcmp(i->appid, appid) == 0 && strcmp(i->key, key) == 0)
			return (i);
	}
	return (NULL);
}

/* Unlink and free an entry that nobody waits for. */
static void
idem_remove(struct idem *i)
{
	struct idem	**pp;

	for (pp = &idem_table[i->hash & (idem_tsize - 1)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == i) {
			*pp = i->hnext;
			break;
		}
	}
	TAILQ_REMOVE(&idem_age, i, age);
	if (i->dirty)
		TAILQ_REMOVE(&idem_dirty, i, dirtyq);
	idem_n--;
	free(i->errmsg);
	free(i->message);
	free(i);
}

/* Make room for one more: forget the oldest finished key (logged). */
static void
idem_evict(void)
{
	struct idem	*i;
	time_t		 now = time(NULL);

	TAILQ_FOREACH(i, &idem_age, age) {
		if (!i->pending)
			break;
	}
	if (i == NULL)
		return;
	if (now - idem_warned >= 60) {
		idem_warned = now;
		log_warnx("idempotency: %d keys held, forgetting the oldest "
		    "before their 24 h are up", IDEM_MAX);
	}
	idem_remove(i);
}

/* Create an entry, newest in age order; the caller fills in the outcome. */
static struct idem *
idem_insert(uint32_t hash, uint32_t uid, const char *appid, const char *key,
    time_t created, const unsigned char *digest)
{
	struct idem	*i;
	size_t		 alen = strlen(appid), klen = strlen(key), b;

	while (idem_n >= IDEM_MAX && idem_n > 0) {
		b = idem_n;
		idem_evict();
		if (idem_n == b)
			break;		/* all in flight: go over, briefly */
	}
	if (idem_n + 1 > idem_tsize / 2)
		idem_grow();
	i = xcalloc(1, sizeof *i + alen + klen + 2);
	memcpy(i->names, appid, alen + 1);
	memcpy(i->names + alen + 1, key, klen + 1);
	i->appid = i->names;
	i->key = i->names + alen + 1;
	i->hash = hash;
	i->uid = uid;
	i->created = created;
	memcpy(i->digest, digest, sizeof i->digest);
	TAILQ_INIT(&i->waiters);
	b = hash & (idem_tsize - 1);
	i->hnext = idem_table[b];
	idem_table[b] = i;
	TAILQ_INSERT_TAIL(&idem_age, i, age);
	idem_n++;
	return (i);
}

/* Answer req with i's remembered outcome. */
static void
idem_reply(const struct idem *i, struct request *req)
{
	struct rpc_error	 e;
	msgpack_packer		*pk;

	if (i->code == idem_queued) {
		pk = rpc_reply_begin(req, 1);
		rpc_pack_kv_int(pk, "id", i->outbox_id);
		rpc_reply_end(req);
		return;
	}
	if (i->code == NULL) {
		pk = rpc_reply_begin(req, 3 + (i->msgid != 0));
		rpc_pack_kv_int(pk, "errcode", 0);
		rpc_pack_kv_str(pk, "errmsg", "ok");
		rpc_pack_kv_int(pk, "attempts", i->attempts);
		if (i->msgid != 0)
			rpc_pack_kv_int(pk, "msgid", i->msgid);
		rpc_reply_end(req);
		return;
	}
	memset(&e, 0, sizeof e);
	e.code = i->code;
	e.message = i->message;
	e.retryable = i->retryable;
	e.errcode = i->errcode;
	e.errmsg = i->errmsg;
	e.retry_after = i->retry_after;
	rpc_reply_error(req, &e);
}

/* Queue i for the next write-behind batch. */
static void
idem_mark_dirty(struct idem *i)
{
	struct timeval	 tv;

	if (i->dirty)
		return;
	i->dirty = 1;
	TAILQ_INSERT_TAIL(&idem_dirty, i, dirtyq);
	if (idem_flush_ev != NULL && !evtimer_pending(idem_flush_ev, NULL)) {
		tv.tv_sec = 0;
		tv.tv_usec = IDEM_FLUSH_MS * 1000;
		evtimer_add(idem_flush_ev, &tv);
	}
}

/*
 * A send with this message arrived. Without a key, or with a key not seen in
 * 24 h, it goes ahead: IDEM_NEW, with *ip the new entry (NULL without a key).
 * A repeat is answered now with the first outcome (IDEM_ANSWERED), or when the
 * first send, still in flight, has one (IDEM_WAITING). A key reused for a
 * different message is refused (IDEM_ANSWERED).
 */
enum idem_begin
idem_begin(struct request *req, const struct message *msg, struct idem **ip)
{
	return (idem_begin_salted(req, msg, NULL, ip));
}

/* SHA-256 of salt, a NUL and the body. */
static void
idem_digest_salted(const char *salt, const struct message *msg,
    unsigned char *digest)
{
	EVP_MD_CTX	*ctx;
	unsigned int	 dlen = 0;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, salt, strlen(salt) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, msg->json, msg->len) != 1 ||
	    EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 ||
	    dlen != IDEM_DIGEST_LEN)
		fatalx("idempotency: SHA-256 failed");
	EVP_MD_CTX_free(ctx);
}

/*
 * idem_begin for a method other than send (salt "enqueue"): the salt is part
 * of the digest, so a key used for a send and an enqueue is two messages.
 */
enum idem_begin
idem_begin_salted(struct request *req, const struct message *msg,
    const char *salt, struct idem **ip)
{
	struct idem		*i;
	struct idem_waiter	*w;
	unsigned char		 digest[IDEM_DIGEST_LEN];
	unsigned int		 dlen = 0;
	uint32_t		 uid, hash;

	*ip = NULL;
	if (msg->idempotency_key == NULL)
		return (IDEM_NEW);
	uid = req->client != NULL ? (uint32_t)req->client->peer.uid : 0;
	if (salt == NULL) {
		if (EVP_Digest(msg->json, msg->len, digest, &dlen, EVP_sha256(),
		    NULL) != 1 || dlen != sizeof digest)
			fatalx("idempotency: SHA-256 failed");
	} else
		idem_digest_salted(salt, msg, digest);
	hash = idem_hash(uid, msg->appid, msg->idempotency_key);
	i = idem_find(hash, uid, msg->appid, msg->idempotency_key);
	if (i != NULL && !i->pending && i->created + IDEM_TTL <= time(NULL)) {
		idem_remove(i);		/* expired, not swept yet */
		i = NULL;
	}
	if (i == NULL) {
		i = idem_insert(hash, uid, msg->appid, msg->idempotency_key,
		    time(NULL), digest);
		i->pending = 1;
		*ip = i;
		return (IDEM_NEW);
	}
	if (memcmp(i->digest, digest, sizeof digest) != 0) {
		rpc_reply_errorx(req, "invalid_request", 0, "idempotency_key",
		    "this idempotency_key was used for a different message "
		    "in the last 24 hours");
		return (IDEM_ANSWERED);
	}
	log_debug("%s: idempotency key repeated (%s)", msg->appid,
	    i->pending ? "waiting for the first send" : "answered from memory");
	if (i->pending) {
		w = xcalloc(1, sizeof *w);
		w->req = req;
		TAILQ_INSERT_TAIL(&i->waiters, w, entry);
		return (IDEM_WAITING);
	}
	idem_reply(i, req);
	return (IDEM_ANSWERED);
}

/*
 * What msg's key already means for the caller uid, changing nothing (a batch
 * of enqueue checks all its keys before it writes anything): IDEM_LOOK_NEW
 * (no key, or not seen in 24 h), IDEM_LOOK_QUEUED (queued before as *id),
 * IDEM_LOOK_PENDING (its first is still being committed) or IDEM_LOOK_OTHER
 * (used for a different message, or a different method).
 */
enum idem_look
idem_look_salted(uint32_t uid, const struct message *msg, const char *salt,
    int64_t *id)
{
	struct idem	*i;
	unsigned char	 digest[IDEM_DIGEST_LEN];

	*id = 0;
	if (msg->idempotency_key == NULL)
		return (IDEM_LOOK_NEW);
	i = idem_find(idem_hash(uid, msg->appid, msg->idempotency_key), uid,
	    msg->appid, msg->idempotency_key);
	if (i == NULL || (!i->pending && i->created + IDEM_TTL <= time(NULL)))
		return (IDEM_LOOK_NEW);
	idem_digest_salted(salt, msg, digest);
	if (memcmp(i->digest, digest, sizeof digest) != 0)
		return (IDEM_LOOK_OTHER);
	if (i->pending)
		return (IDEM_LOOK_PENDING);
	if (i->code != idem_queued)
		return (IDEM_LOOK_OTHER);
	*id = i->outbox_id;
	return (IDEM_LOOK_QUEUED);
}

/*
 * Remember msg's key as new and pending, as idem_begin_salted does, after
 * idem_look_salted said IDEM_LOOK_NEW for it.
 */
struct idem *
idem_add_salted(uint32_t uid, const struct message *msg, const char *salt)
{
	struct idem	*i;
	unsigned char	 digest[IDEM_DIGEST_LEN];
	uint32_t	 hash;

	hash = idem_hash(uid, msg->appid, msg->idempotency_key);
	i = idem_find(hash, uid, msg->appid, msg->idempotency_key);
	if (i != NULL && !i->pending)
		idem_remove(i);		/* expired, not swept yet */
	idem_digest_salted(salt, msg, digest);
	i = idem_insert(hash, uid, msg->appid, msg->idempotency_key,
	    time(NULL), digest);
	i->pending = 1;
	return (i);
}

/* Answer every repeat waiting for i with its outcome. */
static void
idem_wake(struct idem *i)
{
	struct idem_waiter	*w;

	while ((w = TAILQ_FIRST(&i->waiters)) != NULL) {
		TAILQ_REMOVE(&i->waiters, w, entry);
		idem_reply(i, w->req);
		free(w);
	}
}

/* The first send of i was delivered: remember that. */
void
idem_finish_ok(struct idem *i, int attempts, int64_t msgid)
{
	i->pending = 0;
	i->code = NULL;
	i->attempts = attempts;
	i->msgid = msgid;
	idem_wake(i);
	idem_mark_dirty(i);
}

/* The first enqueue of i is committed as outbox message id: remember that. */
void
idem_finish_queued(struct idem *i, int64_t id)
{
	i->pending = 0;
	i->code = idem_queued;
	i->outbox_id = id;
	idem_wake(i);
	idem_mark_dirty(i);
}

/*
 * The first send of i failed with e. The waiting repeats get the same answer.
 * It is remembered only if final: a WeChat refusal that is not retryable, or
 * a timeout (the message may have been delivered: sending it again could
 * deliver it twice). Anything retryable (busy, unavailable, -1, 45011...)
 * was not delivered, and is forgotten so the next repeat tries again.
 */
void
idem_finish_error(struct idem *i, const struct rpc_error *e)
{
	size_t	 j;
	int	 keep = 0;

	/* Waiters get exactly the first answer, code included. */
	i->code = e->code;
	for (j = 0; j < sizeof idem_codes / sizeof idem_codes[0]; j++) {
		if (strcmp(e->code, idem_codes[j]) == 0) {
			i->code = idem_codes[j];	/* outlives e */
			keep = strcmp(e->code, "timeout") == 0 || !e->retryable;
		}
	}
	i->pending = 0;
	i->errcode = e->errcode;
	i->retryable = e->retryable;
	i->retry_after = e->retry_after;
	i->errmsg = xstrndup(e->errmsg != NULL ? e->errmsg : "", 255);
	i->message = xstrndup(e->message != NULL ? e->message : "", 255);
	idem_wake(i);
	if (keep)
		idem_mark_dirty(i);
	else
		idem_remove(i);
}

/* Copy i into a store row. */
static void
idem_row(const struct idem *i, struct store_idem *si)
{
	memset(si, 0, sizeof *si);
	si->uid = i->uid;
	snprintf(si->appid, sizeof si->appid, "%s", i->appid);
	snprintf(si->key, sizeof si->key, "%s", i->key);
	si->created = i->created;
	memcpy(si->digest, i->digest, sizeof si->digest);
	snprintf(si->code, sizeof si->code, "%s", i->code != NULL ? i->code :
	    "ok");
	si->attempts = i->attempts;
	si->msgid = i->msgid;
	si->errcode = i->errcode;
	snprintf(si->errmsg, sizeof si->errmsg, "%s", i->errmsg != NULL ?
	    i->errmsg : "");
	snprintf(si->message, sizeof si->message, "%s", i->message != NULL ?
	    i->message : "");
	si->retryable = i->retryable;
	si->retry_after = i->retry_after;
	/* A "queued" row (an enqueue's key) keeps its outbox id in errcode. */
	if (i->code == idem_queued)
		si->errcode = (long)i->outbox_id;
}

/* Write up to max dirty entries in one transaction; -1 if the store failed. */
static int
idem_flush_some(size_t max)
{
	static struct store_idem	 si;
	struct idem			*i;
	size_t				 n = 0;
	int				 ok = 1;

	if (TAILQ_EMPTY(&idem_dirty))
		return (0);
	if (store_batch_begin() == -1)
		return (-1);
	TAILQ_FOREACH(i, &idem_dirty, dirtyq) {
		if (n == max)
			break;
		idem_row(i, &si);
		if (store_idem_put(&si) == -1) {
			ok = 0;
			break;
		}
		n++;
	}
	if (store_batch_end(ok) == -1)
		return (-1);
	while (n-- > 0) {
		i = TAILQ_FIRST(&idem_dirty);
		TAILQ_REMOVE(&idem_dirty, i, dirtyq);
		i->dirty = 0;
	}
	return (0);
}

/* Write every dirty entry now (graceful stop); failures are logged. */
void
idem_flush(void)
{
	while (!TAILQ_EMPTY(&idem_dirty)) {
		if (idem_flush_some(IDEM_FLUSH_ROWS) == -1) {
			log_warnx("idempotency: could not save the latest "
			    "keys");
			return;
		}
	}
}

/* The write-behind timer: one batch, and another soon if more are waiting. */
static void
idem_flush_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	 tv;
	time_t		 now = time(NULL);
	int		 rc;

	(void)fd;
	(void)events;
	(void)arg;
	rc = idem_flush_some(IDEM_FLUSH_ROWS);
	if (rc == -1 && now - idem_warned >= 60) {
		idem_warned = now;
		log_warnx("idempotency: could not save keys; keeping them in "
		    "memory and retrying");
	}
	if (TAILQ_EMPTY(&idem_dirty))
		return;
	tv.tv_sec = rc == -1 ? IDEM_FLUSH_RETRY : 0;
	tv.tv_usec = rc == -1 ? 0 : IDEM_FLUSH_MS * 1000;
	evtimer_add(idem_flush_ev, &tv);
}

/* Forget keys older than 24 h, in memory and in the store. */
static void
idem_expire_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	 tv;
	struct idem	*i;
	time_t		 before = time(NULL) - IDEM_TTL;

	(void)fd;
	(void)events;
	(void)arg;
	while ((i = TAILQ_FIRST(&idem_age)) != NULL && i->created <= before &&
	    !i->pending)
		idem_remove(i);
	if (store_batch_begin() == 0)
		store_batch_end(store_idem_expire(before) == 0);
	tv.tv_sec = IDEM_EXPIRE_EVERY;
	tv.tv_usec = 0;
	evtimer_add(idem_expire_ev, &tv);
}

/* Take one stored key into memory at start. */
static int
idem_load_cb(const struct store_idem *si, void *arg)
{
	struct idem	*i;
	size_t		*n = arg, j;
	const char	*code = NULL;

	if (strcmp(si->code, idem_queued) == 0)
		code = idem_queued;
	else if (strcmp(si->code, "ok") != 0) {
		for (j = 0; j < sizeof idem_codes / sizeof idem_codes[0]; j++) {
			if (strcmp(si->code, idem_codes[j]) == 0)
				code = idem_codes[j];
		}
		if (code == NULL)
			return (0);
	}
	i = idem_insert(idem_hash(si->uid, si->appid, si->key), si->uid,
	    si->appid, si->key, si->created, si->digest);
	i->code = code;
	i->attempts = si->attempts;
	i->msgid = si->msgid;
	i->errcode = si->errcode;
	i->retryable = si->retryable;
	i->retry_after = si->retry_after;
	if (code == idem_queued) {
		i->outbox_id = si->errcode;
		i->errcode = 0;
	}
	if (code != NULL && code != idem_queued) {
		i->errmsg = xstrdup(si->errmsg);
		i->message = xstrdup(si->message);
	}
	(*n)++;
	return (0);
}

/* Load the keys of the last 24 h and start the timers; after store_open. */
int
idem_init(void)
{
	struct timeval	 tv;
	size_t		 n = 0;

	if (idem_tsize == 0)
		idem_grow();
	if (store_idem_foreach(time(NULL) - IDEM_TTL, idem_load_cb, &n) == -1)
		log_warnx("idempotency: could not load the stored keys");
	else if (n != 0)
		log_info("idempotency: %zu key%s of the last 24 h loaded", n,
		    n == 1 ? "" : "s");
	idem_flush_ev = evtimer_new(wx_base, idem_flush_cb, NULL);
	idem_expire_ev = evtimer_new(wx_base, idem_expire_cb, NULL);
	tv.tv_sec = IDEM_EXPIRE_EVERY;
	tv.tv_usec = 0;
	evtimer_add(idem_expire_ev, &tv);
	return (0);
}

/* Save what is not saved yet and free everything; before store_close. */
void
idem_shutdown(void)
{
	struct rpc_error	 e;
	struct idem		*i;

	idem_flush();
	memset(&e, 0, sizeof e);
	e.code = "unavailable";
	e.retryable = 1;
	e.message = "wxpushd is stopping";
	while ((i = TAILQ_FIRST(&idem_age)) != NULL) {
		if (i->pending)
			idem_finish_error(i, &e);	/* frees i */
		else
			idem_remove(i);
	}
	if (idem_flush_ev != NULL)
		event_free(idem_flush_ev);
	if (idem_expire_ev != NULL)
		event_free(idem_expire_ev);
	idem_flush_ev = idem_expire_ev = NULL;
	free(idem_table);
	idem_table = NULL;
	idem_tsize = idem_n = 0;
}
