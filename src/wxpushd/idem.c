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
 *
 * Shared between hosts (a share registered, Redis): a send's new key is
 * claimed in Redis before its first attempt (one async round trip; the send
 * is parked meanwhile), as wxpushd:idem:SHA256(uid, appid, key). Held by
 * another host's send in flight: asked again every IDEM_REMOTE_POLL_MS until
 * it is settled (its answer) or released (retryable: we claim it and send).
 * Our final answer replaces our claim; a retryable one drops it. Redis
 * unreachable: this host's table only, as without Redis. The local table
 * stays in front: repeats on one host wait on one entry.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wxpushd.h"

#define IDEM_TTL		86400	/* seconds a key is remembered */
#define IDEM_MAX		1000000	/* keys held; past it the oldest go */
#define IDEM_FLUSH_MS		200	/* write-behind delay */
#define IDEM_FLUSH_RETRY	5	/* seconds, after a failed write */
#define IDEM_FLUSH_ROWS		10000	/* rows per batch, to bound a stall */
#define IDEM_EXPIRE_EVERY	60	/* seconds between expiry sweeps */
#define IDEM_TABLE_MIN		1024
#define IDEM_CLAIM_EXTRA	10	/* a claim outlives send_timeout by this, s */
#define IDEM_REMOTE_POLL_MS	200	/* another host's send in flight */
#define IDEM_VALUE_MAX		4096	/* a value read from Redis */
#define IDEM_RKEY_PREFIX	"wxpushd:idem:"

/* Where a shared key is: the entry's first send is parked until OURS/LOCAL. */
enum idem_rstate {
	IDEM_R_CLAIMING,	/* our claim's answer is awaited */
	IDEM_R_REMOTE,		/* another host's send is in flight: poll */
	IDEM_R_OURS,		/* claimed: our send goes */
	IDEM_R_LOCAL		/* Redis unreachable: our send goes, local only */
};

/* An entry's life in Redis; outlives the entry while a claim is asked. */
struct idem_remote {
	struct idem		*i;		/* NULL once the entry is gone */
	enum idem_rstate	 state;
	struct request		*first;		/* the parked first send */
	idem_resume_cb		 resume;
	void			*arg;
	struct event		*ev;		/* an answer to act on, or a poll */
	int			 asking;	/* a claim is in flight */
	int			 have;		/* got, held: an answer to act on */
	enum redis_claim	 got;
	char			*held;
	char			 key[sizeof IDEM_RKEY_PREFIX + 2 * 32];
	char			*claim;		/* our claim's value */
};

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
	struct idem_remote	*r;		/* shared through Redis, or NULL */
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
static const struct idem_share	*idem_share;

static void	idem_remote_detach(struct idem *);
static void	idem_remote_finish(struct idem *, int);

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
	if (i->r != NULL)
		idem_remote_detach(i);
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

/* Share keys through s (Redis), or NULL: this host's table only. */
void
idem_set_share(const struct idem_share *s)
{
	idem_share = s;
}

/* Free r, which no entry and no claim in flight holds any more. */
static void
idem_remote_free(struct idem_remote *r)
{
	if (r->ev != NULL)
		event_free(r->ev);
	free(r->held);
	free(r->claim);
	free(r);
}

/* i goes (or is settled): r lives on only for a claim still asked. */
static void
idem_remote_detach(struct idem *i)
{
	struct idem_remote	*r = i->r;

	i->r = NULL;
	r->i = NULL;
	r->first = NULL;
	r->resume = NULL;
	evtimer_del(r->ev);
	if (!r->asking)
		idem_remote_free(r);
}

/* Give the parked first send back to its owner: go on (IDEM_NEW) or done. */
static void
idem_remote_resume(struct idem_remote *r, enum idem_begin how)
{
	idem_resume_cb	 cb = r->resume;
	void		*arg = r->arg;

	r->first = NULL;
	r->resume = NULL;
	if (cb != NULL)
		cb(arg, how);
}

/* Lowercase hex of n bytes. */
static void
idem_hex(const unsigned char *b, size_t n, char *out)
{
	size_t	 j;

	for (j = 0; j < n; j++)
		snprintf(out + 2 * j, 3, "%02x", b[j]);
}

/*
 * The Redis key of (uid, appid, key): a hash, so that a caller's key, which
 * may name a person or an order, is not written to Redis.
 */
static void
idem_remote_key(const struct idem *i, char *out, size_t len)
{
	EVP_MD_CTX	*ctx;
	unsigned char	 h[32];
	unsigned int	 hlen = 0;
	char		 uid[16], hex[2 * sizeof h + 1];

	snprintf(uid, sizeof uid, "%u", (unsigned)i->uid);
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, uid, strlen(uid) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, i->appid, strlen(i->appid) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, i->key, strlen(i->key)) != 1 ||
	    EVP_DigestFinal_ex(ctx, h, &hlen) != 1 || hlen != sizeof h)
		fatalx("idempotency: SHA-256 failed");
	EVP_MD_CTX_free(ctx);
	idem_hex(h, sizeof h, hex);
	snprintf(out, len, IDEM_RKEY_PREFIX "%s", hex);
}

/* Serialize a JSON object we built; fatal only if out of memory. */
static char *
idem_dump(json_t *o)
{
	char	*v;

	if (o == NULL || (v = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("idempotency: cannot build a Redis value");
	json_decref(o);
	return (v);
}

/* Our claim's value: unique (a random nonce), so only we settle it. */
static char *
idem_claim_value(const struct idem *i)
{
	unsigned char	 nonce[16];
	char		 nhex[2 * sizeof nonce + 1];
	char		 dhex[2 * IDEM_DIGEST_LEN + 1];

	arc4random_buf(nonce, sizeof nonce);
	idem_hex(nonce, sizeof nonce, nhex);
	idem_hex(i->digest, sizeof i->digest, dhex);
	return (idem_dump(json_pack("{s:s, s:s, s:I, s:s}", "state",
	    "pending", "digest", dhex, "created", (json_int_t)i->created,
	    "nonce", nhex)));
}

/*
 * The length of s without a last character cut short: the copies of errmsg
 * and message end at 255 bytes, maybe inside a UTF-8 sequence.
 */
static size_t
idem_utf8_len(const char *s)
{
	size_t		 n = strlen(s), k = 0, need;
	unsigned char	 lead;

	while (k < n && k < 3 && ((unsigned char)s[n - 1 - k] & 0xc0) == 0x80)
		k++;
	if (k == n)
		return (n - k);
	lead = (unsigned char)s[n - 1 - k];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return (need == k + 1 ? n : n - k - 1);
}

/* i's final outcome as the value other hosts answer with; NULL if none. */
static char *
idem_final_value(const struct idem *i)
{
	char		 dhex[2 * IDEM_DIGEST_LEN + 1];
	const char	*em = i->errmsg != NULL ? i->errmsg : "";
	const char	*msg = i->message != NULL ? i->message : "";
	json_t		*o;
	int		 pass;

	idem_hex(i->digest, sizeof i->digest, dhex);
	/* Texts that are not UTF-8 (jansson refuses them) are left out. */
	for (pass = 0; pass < 2; pass++) {
		o = json_pack("{s:s, s:s, s:I, s:s, s:i, s:I, s:I, s:s%, s:s%,"
		    " s:b, s:i}", "state", "final", "digest", dhex,
		    "created", (json_int_t)i->created,
		    "code", i->code != NULL ? i->code : "ok",
		    "attempts", i->attempts, "msgid", (json_int_t)i->msgid,
		    "errcode", (json_int_t)i->errcode,
		    "errmsg", em, pass == 0 ? idem_utf8_len(em) : 0,
		    "message", msg, pass == 0 ? idem_utf8_len(msg) : 0,
		    "retryable", i->retryable, "retry_after", i->retry_after);
		if (o != NULL)
			return (idem_dump(o));
	}
	return (NULL);
}

/* An answer to r's claim (from redis.c's callback; never inside the call). */
static void
idem_claim_cb(void *arg, enum redis_claim got, const char *v, size_t len)
{
	struct idem_remote	*r = arg;
	struct timeval		 tv = { 0, 0 };

	r->asking = 0;
	if (r->i == NULL) {
		/* Nobody waits: a claim we got is dropped at once. */
		if (got == REDIS_CLAIM_OURS && idem_share != NULL)
			idem_share->unclaim(r->key, r->claim);
		idem_remote_free(r);
		return;
	}
	free(r->held);
	r->held = NULL;
	if (got == REDIS_CLAIM_HELD && (len == 0 || len > IDEM_VALUE_MAX ||
	    memchr(v, '\0', len) != NULL))
		got = REDIS_CLAIM_FAILED;
	if (got == REDIS_CLAIM_HELD)
		r->held = xstrndup(v, len);
	r->got = got;
	r->have = 1;
	/* Acted on from the loop: redis.c may be inside hiredis now. */
	evtimer_add(r->ev, &tv);
}

/* Ask Redis for r's key: claim it, or hear what is held. */
static void
idem_remote_ask(struct idem_remote *r)
{
	struct timeval	 tv = { 0, 0 };
	long		 ttl;

	ttl = (wx_conf != NULL ? wx_conf->send_timeout : 30) +
	    IDEM_CLAIM_EXTRA;
	if (idem_share != NULL && idem_share->claim(r->key, r->claim,
	    ttl * 1000, idem_claim_cb, r) == 0) {
		r->asking = 1;
		return;
	}
	r->got = REDIS_CLAIM_FAILED;
	r->have = 1;
	evtimer_add(r->ev, &tv);
}

/* Forget i, whose parked first send was answered: its owner frees it. */
static void
idem_remote_end(struct idem *i)
{
	idem_resume_cb	 cb = i->r->resume;
	void		*arg = i->r->arg;

	idem_remove(i);		/* detaches r */
	if (cb != NULL)
		cb(arg, IDEM_ANSWERED);
}

/* Answer the parked first send and every repeat of i, then forget i. */
static void
idem_remote_refuse(struct idem *i, const char *code, int retryable,
    const char *field, const char *why)
{
	struct idem_waiter	*w;

	if (i->r->first != NULL)
		rpc_reply_errorx(i->r->first, code, retryable, field, "%s", why);
	while ((w = TAILQ_FIRST(&i->waiters)) != NULL) {
		TAILQ_REMOVE(&i->waiters, w, entry);
		rpc_reply_errorx(w->req, code, retryable, field, "%s", why);
		free(w);
	}
	idem_remote_end(i);
}

/* A JSON integer member in [lo, hi], or -1. */
static int
idem_json_int(const json_t *o, const char *name, json_int_t lo, json_int_t hi,
    json_int_t *v)
{
	const json_t	*m = json_object_get(o, name);

	if (!json_is_integer(m) || json_integer_value(m) < lo ||
	    json_integer_value(m) > hi)
		return (-1);
	*v = json_integer_value(m);
	return (0);
}

/* A JSON string member, or NULL. */
static const char *
idem_json_str(const json_t *o, const char *name)
{
	const json_t	*m = json_object_get(o, name);

	return (json_is_string(m) ? json_string_value(m) : NULL);
}

/*
 * Another host's value for i's key: settled (answer with it), pending (its
 * send is in flight: poll), another message (refuse), or unreadable (-1).
 */
static int
idem_remote_held(struct idem *i, const char *v)
{
	struct idem_remote	*r = i->r;
	struct timeval		 tv;
	idem_resume_cb		 cb;
	void			*cbarg;
	json_error_t		 jerr;
	json_t			*o;
	json_int_t		 created, n[6];
	const char		*state, *digest, *code, *em, *msg;
	char			 dhex[2 * IDEM_DIGEST_LEN + 1];
	size_t			 j;
	time_t			 now = time(NULL);

	if ((o = json_loads(v, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return (-1);
	idem_hex(i->digest, sizeof i->digest, dhex);
	if (!json_is_object(o) || (state = idem_json_str(o, "state")) == NULL ||
	    (digest = idem_json_str(o, "digest")) == NULL ||
	    idem_json_int(o, "created", now - IDEM_TTL - 60, now + 300,
	    &created) == -1)
		goto bad;
	if (strcmp(digest, dhex) != 0) {
		json_decref(o);
		idem_remote_refuse(i, "invalid_request", 0, "idempotency_key",
		    "this idempotency_key was used for a different message "
		    "in the last 24 hours");
		return (0);
	}
	if (strcmp(state, "pending") == 0) {
		json_decref(o);
		log_debug("%s: idempotency key in flight on another host",
		    i->appid);
		r->state = IDEM_R_REMOTE;
		tv.tv_sec = 0;
		tv.tv_usec = IDEM_REMOTE_POLL_MS * 1000;
		evtimer_add(r->ev, &tv);
		return (0);
	}
	if (strcmp(state, "final") != 0 ||
	    (code = idem_json_str(o, "code")) == NULL ||
	    (em = idem_json_str(o, "errmsg")) == NULL ||
	    (msg = idem_json_str(o, "message")) == NULL ||
	    !json_is_boolean(json_object_get(o, "retryable")) ||
	    idem_json_int(o, "attempts", 0, 1000000, &n[0]) == -1 ||
	    idem_json_int(o, "msgid", 0, INT64_MAX, &n[1]) == -1 ||
	    idem_json_int(o, "errcode", -2147483647L, 2147483647L, &n[2]) ==
	    -1 || idem_json_int(o, "retry_after", 0, 86400 * 2, &n[3]) == -1)
		goto bad;
	/* The same outcomes as the local table remembers, nothing else. */
	i->code = NULL;
	if (strcmp(code, "ok") != 0) {
		for (j = 0; j < sizeof idem_codes / sizeof idem_codes[0]; j++) {
			if (strcmp(code, idem_codes[j]) == 0)
				i->code = idem_codes[j];
		}
		if (i->code == NULL)
			goto bad;
	}
	log_debug("%s: idempotency key answered from Redis", i->appid);
	i->created = (time_t)created;
	i->attempts = (int)n[0];
	i->msgid = (int64_t)n[1];
	i->errcode = (long)n[2];
	i->retry_after = (int)n[3];
	i->retryable = json_is_true(json_object_get(o, "retryable"));
	if (i->code != NULL) {
		i->errmsg = xstrndup(em, 255);
		i->message = xstrndup(msg, 255);
	}
	json_decref(o);
	/* Settled elsewhere: answered and remembered here too. */
	i->pending = 0;
	if (r->first != NULL)
		idem_reply(i, r->first);
	idem_wake(i);
	idem_mark_dirty(i);
	cb = r->resume;
	cbarg = r->arg;
	idem_remote_detach(i);
	if (cb != NULL)
		cb(cbarg, IDEM_ANSWERED);
	return (0);
bad:
	json_decref(o);
	return (-1);
}

/* Redis did not answer (or not usably) for i. */
static void
idem_remote_failed(struct idem *i)
{
	struct idem_remote	*r = i->r;
	time_t			 now = time(NULL);

	if (r->state == IDEM_R_REMOTE) {
		/* Sending now could deliver twice: the client tries again. */
		idem_remote_refuse(i, "unavailable", 1, NULL, "the first send "
		    "with this idempotency_key is in flight on another host, "
		    "and Redis cannot be reached to hear its answer");
		return;
	}
	if (now - idem_warned >= 60) {
		idem_warned = now;
		log_warnx("idempotency: Redis cannot be reached; keys hold on "
		    "this host only");
	}
	r->state = IDEM_R_LOCAL;
	idem_remote_resume(r, IDEM_NEW);
}

/* r's event: act on the claim's answer, or poll again. */
static void
idem_remote_cb(evutil_socket_t fd, short events, void *arg)
{
	struct idem_remote	*r = arg;
	struct idem		*i = r->i;
	char			*held;

	(void)fd;
	(void)events;
	if (i == NULL)
		return;
	if (!r->have) {
		idem_remote_ask(r);
		return;
	}
	r->have = 0;
	switch (r->got) {
	case REDIS_CLAIM_OURS:
		r->state = IDEM_R_OURS;
		idem_remote_resume(r, IDEM_NEW);
		break;
	case REDIS_CLAIM_HELD:
		held = r->held;
		r->held = NULL;
		if (idem_remote_held(i, held) == -1) {
			log_warnx("%s: idempotency: an unreadable value in "
			    "Redis for a key; ignoring Redis for it",
			    i->appid);
			idem_remote_failed(i);
		}
		free(held);
		break;
	case REDIS_CLAIM_FAILED:
		idem_remote_failed(i);
		break;
	}
}

/* Claim i in Redis for its first send (req), parked until resume. */
static int
idem_remote_begin(struct idem *i, struct request *req, idem_resume_cb resume,
    void *arg)
{
	struct idem_remote	*r;

	r = xcalloc(1, sizeof *r);
	r->i = i;
	r->state = IDEM_R_CLAIMING;
	r->first = req;
	r->resume = resume;
	r->arg = arg;
	r->ev = evtimer_new(wx_base, idem_remote_cb, r);
	idem_remote_key(i, r->key, sizeof r->key);
	r->claim = idem_claim_value(i);
	if (idem_share->claim(r->key, r->claim, ((wx_conf != NULL ?
	    wx_conf->send_timeout : 30) + IDEM_CLAIM_EXTRA) * 1000L,
	    idem_claim_cb, r) == -1) {
		idem_remote_free(r);
		return (-1);		/* Redis is down: local only */
	}
	r->asking = 1;
	i->r = r;
	return (0);
}

/*
 * i's first send has its outcome (kept: remembered): settle our claim with it
 * for the rest of the key's 24 h, or drop the claim. A first send answered
 * while still parked (a stop) claimed nothing worth keeping.
 */
static void
idem_remote_finish(struct idem *i, int keep)
{
	struct idem_remote	*r = i->r;
	char			*v;

	if (r->state == IDEM_R_OURS || r->state == IDEM_R_LOCAL) {
		if (keep && (v = idem_final_value(i)) != NULL) {
			idem_share->settle(r->key, r->claim, v,
			    i->created + IDEM_TTL);
			free(v);
		} else if (r->state == IDEM_R_OURS)
			idem_share->unclaim(r->key, r->claim);
	}
	idem_remote_detach(i);
}

/*
 * idem_begin for a send whose key may be shared between hosts: with a share
 * (Redis) connected, a new key is claimed there first and the send is parked
 * (IDEM_CLAIMING); resume(arg, IDEM_NEW) sends it later, or resume(arg,
 * IDEM_ANSWERED) says it was answered (another host's answer, or a refusal).
 */
enum idem_begin
idem_begin_shared(struct request *req, const struct message *msg,
    struct idem **ip, idem_resume_cb resume, void *arg)
{
	enum idem_begin	 b;

	b = idem_begin_salted(req, msg, NULL, ip);
	if (b != IDEM_NEW || *ip == NULL || idem_share == NULL ||
	    resume == NULL)
		return (b);
	if (idem_remote_begin(*ip, req, resume, arg) == -1)
		return (IDEM_NEW);
	return (IDEM_CLAIMING);
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
	if (i->r != NULL)
		idem_remote_finish(i, 1);
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
	if (i->r != NULL)
		idem_remote_finish(i, 1);
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
	/* Answered while parked for Redis (a stop): nothing was sent. */
	if (i->r != NULL && (i->r->state == IDEM_R_CLAIMING ||
	    i->r->state == IDEM_R_REMOTE))
		keep = 0;
	if (i->r != NULL)
		idem_remote_finish(i, keep);
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
