/*
 * Sharing access tokens between daemons through Redis, with
 * hiredis's async API on our libevent loop: the loop never waits for Redis.
 *
 * Keys (in the configured database), for each appid:
 *   wxpushd:token:APPID  "GEN:EXPIRES_AT:TOKEN", expiring with the token
 *   wxpushd:gen:APPID    the last generation handed out (INCR)
 *   wxpushd:lease:APPID  the owner refreshing now (SET NX PX)
 * and the channel wxpushd:tokens:DB, on which an appid is published when its
 * token changes. A daemon refreshes only with the lease; the token it gets is
 * written only if its generation is newer than the stored one (fencing), so a
 * daemon that stalled past its lease cannot replace a newer token. When Redis
 * cannot be reached, each daemon refreshes on its own (cred.c as without
 * Redis) and reconciles when Redis returns: the token issued last wins.
 * SQLite stays the durable copy: Redis restarted empty loses nothing.
 * With Sentinel (redis_sentinels, redis_master) the master's address is asked
 * of a sentinel before each connection, the master must answer ROLE "master"
 * before anything is written (and again at each idle check), and a
 * +switch-master heard on a sentinel connection, or a READONLY answer, drops
 * the connection and asks again.
 * Components' verify tickets are shared too (wxpushd:ticket:APPID,
 * "RECEIVED_AT:TICKET", the latest wins; "ticket:APPID" on the channel).
 * Authorizers' access tokens go through the same lease and fencing as
 * official accounts'; their refresh tokens and revocations are shared in
 * wxpushd:authorizer:APPID, "UPDATED_AT:REVOKED:COMPONENT_APPID:REFRESH_TOKEN"
 * (the latest wins; "authorizer:APPID" on the channel), written after the
 * SQLite commit, and handed to the lease holder with its lease.
 * Claims (idem.c's idempotency keys, wxpushd:idem:HASH): an atomic get-or-set
 * with a TTL, settled (compare-and-set) or released (compare-and-delete) by
 * the claim's owner; the values are idem.c's, opaque here.
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <hiredis/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "wxpushd.h"

#define REDIS_RETRY		2	/* seconds between connection attempts */
#define REDIS_CONNECT_TIMEOUT	3	/* a connection not up by then is down */
#define REDIS_REPLY_TIMEOUT	3	/* no answer to a command: Redis is down */
#define REDIS_PING		2	/* seconds between PINGs when idle */
#define REDIS_POLL_MS		1000	/* waiting for another daemon's token */
#define REDIS_START_WAIT_MS	200	/* a credential waiting for the connection */
#define REDIS_MIN_LEFT		5	/* a shared token with less left is not taken */
#define REDIS_LEASE_EXTRA	2	/* lease: upstream_timeout plus this, seconds */
#define REDIS_TICKET_PREFIX	"ticket:"	/* on the channel: a component's ticket */
#define REDIS_AUTH_PREFIX	"authorizer:"	/* on the channel: an authorizer's */
#define REDIS_SENTINELS_MAX	16	/* as config.c allows */
#define REDIS_HOST_MAX		255	/* a master's address from a sentinel */

enum redis_state { RSTATE_OFF, RSTATE_CONNECTING, RSTATE_CONNECTED,
	RSTATE_DOWN };
enum redis_opkind { REDIS_OP_ACQUIRE, REDIS_OP_PUBLISH, REDIS_OP_RECONCILE,
	REDIS_OP_GET, REDIS_OP_RELEASE, REDIS_OP_SETUP, REDIS_OP_PING,
	REDIS_OP_TICKET, REDIS_OP_AUTHORIZER, REDIS_OP_ROLE, REDIS_OP_CLAIM };

/* A sentinel's address. */
struct redis_sentinel {
	char	*host;
	int	 port;
};

/* What redis.c keeps per shared credential, in the credential's share slot. */
struct redis_cred {
	struct cred	*cred;
	uint64_t	 gen;		/* shared generation of our token */
	uint64_t	 lease;		/* generation leased to us, 0 none */
	int		 busy;		/* REDIS_ASKING, REDIS_WAITING, REDIS_ALONE */
	struct event	*poll;		/* asks again: a refresh through cred.c */
};
#define REDIS_ASKING	1	/* the lease request is in flight */
#define REDIS_WAITING	2	/* another daemon refreshes: poll for its token */
#define REDIS_ALONE	3	/* Redis refused the lease: refresh alone, once */

/* One command in flight; names its credential by appid, which may go away. */
struct redis_op {
	enum redis_opkind	 kind;
	char			 appid[WX_APPID_MAX + 1];
	int			 force;
	redis_claim_cb		 cb;		/* REDIS_OP_CLAIM: its answer */
	void			*arg;
};

static enum redis_state	 redis_state = RSTATE_OFF;
static redisAsyncContext	*redis_cmd;	/* commands */
static redisAsyncContext	*redis_sub;	/* the subscription */
static struct event	*redis_tick;
static char		*redis_host;
static int		 redis_port, redis_db;
static char		*redis_password;
static char		 redis_owner[128];
static char		 redis_channel[64];
static time_t		 redis_attempt;	/* when the last connection started */
static time_t		 redis_progress;	/* last reply, or first unanswered send */
static int		 redis_pending;	/* commands unanswered */
static int		 redis_closing;
static int		 redis_warned;	/* the outage is logged */
static const struct redis_handlers *redis_handlers;
static struct redis_sentinel redis_sentinels[REDIS_SENTINELS_MAX];
static size_t		 redis_nsentinels;	/* 0: no Sentinel, redis = URL */
static size_t		 redis_next;	/* the sentinel asked next */
static char		*redis_master;	/* the name the sentinels know */
static redisAsyncContext	*redis_ask;	/* a sentinel, asked for the master */
static redisAsyncContext	*redis_watch;	/* a sentinel, +switch-master */
static time_t		 redis_watch_attempt;

static void	redis_connect(void);
static void	redis_down(const char *);
static int	redis_command(struct redis_op *, int, const char **);
static struct redis_op	*redis_op_new(enum redis_opkind, const struct cred *);
static void	redis_authorizer_reply(const char *, const char *, size_t);
static int	redis_acquire(struct cred *, int);
static void	redis_publish(struct cred *);
static void	redis_release(struct cred *);
static int	redis_busy(const struct cred *);
static void	redis_forget(struct cred *);
static void	redis_up(void);
static void	redis_lost(const char *);
static int	redis_role_master(const redisReply *);
static void	redis_reply_cb(redisAsyncContext *, void *, void *);
static void	redis_master_open(void);

/* redis.c as cred.c's share backend. */
static const struct cred_share redis_share = {
	.acquire = redis_acquire,
	.publish = redis_publish,
	.release = redis_release,
	.busy = redis_busy,
	.forget = redis_forget,
};

/*
 * Take the lease or a newer token. KEYS: token, lease, gen, and for an
 * authorizer its shared refresh token; ARGV: our generation, the least expiry
 * worth taking, owner, lease ms. The generation handed out is above both ours
 * and the stored one, even after Redis lost the gen key. An authorizer's lease
 * comes with the latest refresh token, so that the holder refreshes with it.
 */
static const char redis_lua_acquire[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local sg = 0 "
    "if v then "
    "  local g, e = string.match(v, '^(%d+):(%d+):') "
    "  sg = tonumber(g) or 0 "
    "  if sg > tonumber(ARGV[1]) and (tonumber(e) or 0) > tonumber(ARGV[2]) "
    "  then return {'token', v} end "
    "end "
    "if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then "
    "  return {'wait', ''} end "
    "local n = redis.call('INCR', KEYS[3]) "
    "local m = math.max(n, tonumber(ARGV[1]) + 1, sg + 1) "
    "if m ~= n then redis.call('SET', KEYS[3], m) end "
    "if KEYS[4] then "
    "  return {'lease', tostring(m), redis.call('GET', KEYS[4]) or ''} end "
    "return {'lease', tostring(m)}";

/*
 * Store a token fetched under the lease, unless a newer generation is there
 * (fencing); drop our lease either way. KEYS: token, lease, gen; ARGV: gen,
 * expires_at, token, owner, channel, appid, now.
 */
static const char redis_lua_publish[] =
    "if redis.call('GET', KEYS[2]) == ARGV[4] then "
    "  redis.call('DEL', KEYS[2]) end "
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
    "  local g = tonumber(string.match(v, '^(%d+):')) or 0 "
    "  if g >= tonumber(ARGV[1]) then return {'stale', v} end "
    "end "
    "if tonumber(ARGV[2]) > tonumber(ARGV[7]) then "
    "  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2] .. ':' .. ARGV[3]) "
    "  redis.call('EXPIREAT', KEYS[1], ARGV[2]) end "
    "if (tonumber(redis.call('GET', KEYS[3])) or 0) < tonumber(ARGV[1]) then "
    "  redis.call('SET', KEYS[3], ARGV[1]) end "
    "redis.call('PUBLISH', ARGV[5], ARGV[6]) "
    "return {'ok', ARGV[1]}";

/*
 * A token got without the lease (Redis was down, or restarted empty, or a
 * promoted replica missed writes): the one issued last, by expiry, wins; in
 * the same second, the higher generation (a replica's older token issued in
 * the same second as ours must not win). KEYS: token, gen; ARGV: our gen,
 * expires_at, token, channel, appid, now.
 */
static const char redis_lua_reconcile[] =
    "local v = redis.call('GET', KEYS[1]) "
    "local sg = 0 "
    "if v then "
    "  local g, e = string.match(v, '^(%d+):(%d+):') "
    "  sg = tonumber(g) or 0 "
    "  e = tonumber(e) or 0 "
    "  if e > tonumber(ARGV[2]) or "
    "      (e == tonumber(ARGV[2]) and sg >= tonumber(ARGV[1])) then "
    "    return {'newer', v} end "
    "end "
    "local n = redis.call('INCR', KEYS[2]) "
    "local m = math.max(n, tonumber(ARGV[1]) + 1, sg + 1) "
    "if m ~= n then redis.call('SET', KEYS[2], m) end "
    "if tonumber(ARGV[2]) > tonumber(ARGV[6]) then "
    "  redis.call('SET', KEYS[1], m .. ':' .. ARGV[2] .. ':' .. ARGV[3]) "
    "  redis.call('EXPIREAT', KEYS[1], ARGV[2]) end "
    "redis.call('PUBLISH', ARGV[4], ARGV[5]) "
    "return {'written', tostring(m)}";

/*
 * A component's verify ticket: stored unless the stored one was received later
 * (in the same second, the last written wins), kept 12 hours; answers the
 * latest. KEYS: ticket; ARGV: received_at, ticket,
 * channel, message.
 */
static const char redis_lua_ticket[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
    "  local at = tonumber(string.match(v, '^(%d+):')) or 0 "
    "  if at > tonumber(ARGV[1]) or v == ARGV[1] .. ':' .. ARGV[2] then "
    "    return v end "
    "end "
    "local nv = ARGV[1] .. ':' .. ARGV[2] "
    "redis.call('SET', KEYS[1], nv) "
    "redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[1]) + 43200) "
    "redis.call('PUBLISH', ARGV[3], ARGV[4]) "
    "return nv";

/*
 * An authorizer's refresh token and revoked flag: stored unless the stored one
 * was updated later (in the same second, the last written wins); answers the
 * latest. KEYS: authorizer; ARGV: updated_at, value, channel, message.
 */
static const char redis_lua_authorizer[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then "
    "  local at = tonumber(string.match(v, '^(%d+):')) or 0 "
    "  if at > tonumber(ARGV[1]) or v == ARGV[2] then return v end "
    "end "
    "redis.call('SET', KEYS[1], ARGV[2]) "
    "redis.call('PUBLISH', ARGV[3], ARGV[4]) "
    "return ARGV[2]";

/*
 * A claim: the value held, or, if none, ours with a TTL (nil). KEYS: the
 * claim; ARGV: our value, TTL in ms.
 */
static const char redis_lua_claim[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v then return v end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return false";

/*
 * Settle a claim: the final value replaces ours, or takes an empty place
 * (a claim made while Redis was down); never another's. KEYS: the claim;
 * ARGV: our claim's value, the final value, its expiry (Unix time).
 */
static const char redis_lua_settle[] =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and v ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[2]) "
    "redis.call('EXPIREAT', KEYS[1], ARGV[3]) "
    "return 1";

/* Drop the lease if it is still ours. KEYS: lease; ARGV: owner. */
static const char redis_lua_release[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  return redis.call('DEL', KEYS[1]) end return 0";

/* What status says: off, connected or unreachable. */
const char *
redis_mode(void)
{
	switch (redis_state) {
	case RSTATE_OFF:
		return ("off");
	case RSTATE_CONNECTED:
		return ("connected");
	default:
		return ("unreachable");
	}
}

/* Whether Redis is configured at all. */
int
redis_connected(void)
{
	return (redis_state == RSTATE_CONNECTED);
}

/* Commands sent and not yet answered: what a bulk writer paces itself on. */
int
redis_pending_count(void)
{
	return (redis_pending);
}

/* What component.c wants to hear: tickets, authorizers, a connection. */
void
redis_set_handlers(const struct redis_handlers *h)
{
	redis_handlers = h;
}

/* Whether Redis shares c's token: official accounts' and authorizers'. */
static int
redis_shared(const struct cred *c)
{
	return (redis_state != RSTATE_OFF && cred_shared(c));
}

/* A poll is due: go through cred.c's refresh, which asks Redis again. */
static void
redis_poll_cb(evutil_socket_t fd, short events, void *arg)
{
	struct redis_cred *rc = arg;

	(void)fd;
	(void)events;
	cred_refresh(rc->cred, 0);
}

/* c's Redis state, made at first use. */
static struct redis_cred *
redis_cred(struct cred *c)
{
	struct redis_cred *rc;

	if ((rc = cred_share_data(c)) != NULL)
		return (rc);
	rc = xcalloc(1, sizeof *rc);
	rc->cred = c;
	rc->poll = evtimer_new(wx_base, redis_poll_cb, rc);
	cred_set_share_data(c, rc);
	return (rc);
}

/* c is being freed. */
static void
redis_forget(struct cred *c)
{
	struct redis_cred *rc;

	if ((rc = cred_share_data(c)) == NULL)
		return;
	event_free(rc->poll);
	free(rc);
	cred_set_share_data(c, NULL);
}

/* Whether a token for c may come from another daemon: we asked or wait. */
static int
redis_busy(const struct cred *c)
{
	const struct redis_cred *rc = cred_share_data(c);

	return (rc != NULL && rc->busy != 0);
}

/* Poll for c (a refresh through cred.c) in ms milliseconds. */
static void
redis_arm(struct cred *c, long ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(redis_cred(c)->poll, &tv);
}

/* Parse a stored "GEN:EXPIRES_AT:TOKEN"; 0, or -1 if it is not one. */
static int
redis_parse(const char *v, size_t len, uint64_t *gen, time_t *expires_at,
    char *token, size_t tokenlen)
{
	const char *p = v, *end = v + len;
	unsigned long long n[2];
	size_t i, tl;
	int k;

	for (k = 0; k < 2; k++) {
		n[k] = 0;
		if (p == end || *p < '0' || *p > '9')
			return (-1);
		for (i = 0; p < end && *p >= '0' && *p <= '9'; p++, i++) {
			if (i >= 19)
				return (-1);
			n[k] = n[k] * 10 + (unsigned long long)(*p - '0');
		}
		if (p == end || *p++ != ':')
			return (-1);
	}
	tl = (size_t)(end - p);
	if (tl == 0 || tl > WX_TOKEN_MAX || tl >= tokenlen)
		return (-1);
	/* Bound what goes into a URL query, as cred.c does with WeChat's. */
	for (i = 0; i < tl; i++) {
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
		    p[i] == '&' || p[i] == '#')
			return (-1);
	}
	memcpy(token, p, tl);
	token[tl] = '\0';
	*gen = n[0];
	*expires_at = (time_t)n[1];
	return (0);
}

/* A stored token value for c: taken if newer than ours and not about to lapse. */
static void
redis_take(struct cred *c, const char *v, size_t len, int any)
{
	char token[WX_TOKEN_MAX + 1];
	uint64_t gen;
	time_t expires_at;

	struct redis_cred *rc = redis_cred(c);

	if (redis_parse(v, len, &gen, &expires_at, token, sizeof token) != 0) {
		log_warnx("%s: malformed token in Redis; ignored", cred_appid(c));
		return;
	}
	/*
	 * Our own token under a new generation (re-shared after a failover or
	 * a restart of Redis): only the generation moves. Adopting it again
	 * would make it look freshly fetched, and its refusal then would not
	 * refresh.
	 */
	if (cred_has_token(c) && strcmp(cred_token(c), token) == 0) {
		if (gen > rc->gen)
			rc->gen = gen;
		log_debug("%s: Redis holds our token, generation %llu",
		    cred_appid(c), (unsigned long long)gen);
		OPENSSL_cleanse(token, sizeof token);
		return;
	}
	if ((any || gen > rc->gen) &&
	    expires_at > time(NULL) + REDIS_MIN_LEFT) {
		log_info("%s: using the token from Redis (generation %llu), "
		    "expires in %lld s", cred_appid(c), (unsigned long long)gen,
		    (long long)(expires_at - time(NULL)));
		rc->busy = 0;	/* no longer waiting */
		rc->gen = gen;
		evtimer_del(rc->poll);
		cred_adopt(c, token, expires_at, gen);
	}
	OPENSSL_cleanse(token, sizeof token);
}

/* The credential a reply is for, if it still exists and is shared. */
static struct cred *
redis_op_cred(const struct redis_op *op)
{
	struct cred *c;

	if (redis_closing || op->appid[0] == '\0' ||
	    (c = cred_find(op->appid)) == NULL || !redis_shared(c))
		return (NULL);
	return (c);
}

/* The first two strings of a script's {what, value[, more]} answer, or -1. */
static int
redis_pair(const redisReply *r, const redisReply **what,
    const redisReply **val)
{
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->elements > 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)
		return (-1);
	*what = r->element[0];
	*val = r->element[1];
	return (0);
}

/* Whether a reply string is s. */
static int
redis_is(const redisReply *r, const char *s)
{
	return (r->len == strlen(s) && memcmp(r->str, s, r->len) == 0);
}

/* The answer to the lease request: a newer token, the lease, or wait. */
static void
redis_acquire_done(struct cred *c, const struct redis_op *op,
    const redisReply *r)
{
	struct redis_cred *rc = redis_cred(c);
	const redisReply *what, *val;
	unsigned long long gen;

	rc->busy = 0;
	if (r != NULL && redis_pair(r, &what, &val) != 0) {
		/* Redis is up but refuses (a read-only replica, out of memory...). */
		log_warnx("%s: Redis cannot lease the refresh: refreshing on our "
		    "own", cred_appid(c));
		rc->busy = REDIS_ALONE;
		redis_arm(c, 0);
		return;
	}
	if (r == NULL) {
		/* No answer: try again soon, locally if Redis is down. */
		redis_arm(c, cred_usable(c) ? REDIS_POLL_MS : REDIS_START_WAIT_MS);
		return;
	}
	if (redis_is(what, "token")) {
		redis_take(c, val->str, val->len, 0);
		if (cred_invalid(c) || !cred_usable(c)) {
			rc->busy = REDIS_WAITING;
			redis_arm(c, REDIS_POLL_MS);
		}
	} else if (redis_is(what, "lease")) {
		gen = strtoull(val->str, NULL, 10);
		if (gen == 0)
			return;
		rc->lease = gen;
		log_debug("%s: lease taken, generation %llu", cred_appid(c), gen);
		/* An authorizer refreshes with the latest shared refresh token. */
		if (cred_kind(c) == CRED_AUTHORIZER && r->elements == 3 &&
		    r->element[2]->type == REDIS_REPLY_STRING)
			redis_authorizer_reply(cred_appid(c), r->element[2]->str,
			    r->element[2]->len);
		cred_refresh(c, op->force);
		if (!cred_refreshing(c) && rc->lease != 0)
			redis_release(c);
	} else {
		/* Another daemon refreshes: keep our token, look again soon. */
		log_debug("%s: another daemon holds the lease", cred_appid(c));
		rc->busy = REDIS_WAITING;
		redis_arm(c, REDIS_POLL_MS);
	}
}

/* A stored "RECEIVED_AT:TICKET" for a component: hand it to component.c. */
static void
redis_ticket_reply(const char *appid, const char *v, size_t len)
{
	char ticket[WX_TOKEN_MAX + 1];
	unsigned long long at = 0;
	size_t i = 0, tl;

	while (i < len && i < 19 && v[i] >= '0' && v[i] <= '9')
		at = at * 10 + (unsigned long long)(v[i++] - '0');
	if (i == 0 || i >= len || v[i] != ':')
		return;
	tl = len - i - 1;
	if (tl == 0 || tl > WX_TOKEN_MAX)
		return;
	memcpy(ticket, v + i + 1, tl);
	ticket[tl] = '\0';
	if (strlen(ticket) == tl && redis_handlers != NULL)	/* no NUL inside */
		redis_handlers->ticket(appid, ticket, (time_t)at);
	OPENSSL_cleanse(ticket, sizeof ticket);
}

/* Share a component's verify ticket received at at; the latest one wins. */
void
redis_ticket_put(const char *appid, const char *ticket, time_t at)
{
	char key[128], ats[24], msg[sizeof REDIS_TICKET_PREFIX + WX_APPID_MAX];
	const char *argv[8];
	struct redis_op *op;

	if (redis_state != RSTATE_CONNECTED)
		return;
	snprintf(key, sizeof key, "wxpushd:ticket:%s", appid);
	snprintf(ats, sizeof ats, "%lld", (long long)at);
	snprintf(msg, sizeof msg, REDIS_TICKET_PREFIX "%s", appid);
	argv[0] = "EVAL";
	argv[1] = redis_lua_ticket;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = ats;
	argv[5] = ticket;
	argv[6] = redis_channel;
	argv[7] = msg;
	op = redis_op_new(REDIS_OP_TICKET, NULL);
	snprintf(op->appid, sizeof op->appid, "%s", appid);
	redis_command(op, 8, argv);
}

/* Read a component's shared verify ticket, if any. */
void
redis_ticket_get(const char *appid)
{
	char key[128];
	const char *argv[2];
	struct redis_op *op;

	if (redis_state != RSTATE_CONNECTED)
		return;
	snprintf(key, sizeof key, "wxpushd:ticket:%s", appid);
	argv[0] = "GET";
	argv[1] = key;
	op = redis_op_new(REDIS_OP_TICKET, NULL);
	snprintf(op->appid, sizeof op->appid, "%s", appid);
	redis_command(op, 2, argv);
}

/*
 * A stored "UPDATED_AT:REVOKED:COMPONENT_APPID:REFRESH_TOKEN" for an
 * authorizer: hand it to component.c, which checks it; none (or not one) is
 * said with a NULL component.
 */
static void
redis_authorizer_reply(const char *appid, const char *v, size_t len)
{
	char buf[32 + WX_APPID_MAX + WX_TOKEN_MAX], *p, *comp, *rt, *end;
	unsigned long long at;
	int revoked;

	if (len == 0 || len >= sizeof buf || memchr(v, '\0', len) != NULL)
		goto none;
	memcpy(buf, v, len);
	buf[len] = '\0';
	errno = 0;
	at = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || end - buf > 19 || *end != ':' ||
	    (end[1] != '0' && end[1] != '1') || end[2] != ':')
		goto none;
	revoked = end[1] == '1';
	comp = end + 3;
	if ((p = strchr(comp, ':')) == NULL)
		goto none;
	*p = '\0';
	rt = p + 1;
	if (redis_handlers != NULL)
		redis_handlers->authorizer(appid, comp, rt, revoked, (time_t)at);
	explicit_bzero(buf, sizeof buf);
	return;
none:
	explicit_bzero(buf, sizeof buf);
	if (redis_handlers != NULL)
		redis_handlers->authorizer(appid, NULL, NULL, 0, 0);
}

/*
 * Share an authorizer's refresh token and revoked flag, committed to SQLite at
 * at; the latest one wins, and Redis's answer is handed back to component.c.
 */
void
redis_authorizer_put(const char *component, const char *appid,
    const char *refresh_token, int revoked, time_t at)
{
	char key[128], ats[24], *val;
	char msg[sizeof REDIS_AUTH_PREFIX + WX_APPID_MAX];
	const char *argv[8];
	struct redis_op *op;

	if (redis_state != RSTATE_CONNECTED)
		return;
	snprintf(key, sizeof key, "wxpushd:authorizer:%s", appid);
	snprintf(ats, sizeof ats, "%lld", (long long)at);
	snprintf(msg, sizeof msg, REDIS_AUTH_PREFIX "%s", appid);
	xasprintf(&val, "%lld:%d:%s:%s", (long long)at, revoked ? 1 : 0,
	    component, refresh_token);
	argv[0] = "EVAL";
	argv[1] = redis_lua_authorizer;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = ats;
	argv[5] = val;
	argv[6] = redis_channel;
	argv[7] = msg;
	op = redis_op_new(REDIS_OP_AUTHORIZER, NULL);
	snprintf(op->appid, sizeof op->appid, "%s", appid);
	redis_command(op, 8, argv);
	freezero_str(val);
}

/* Read an authorizer's shared refresh token: 0 if asked (answered later). */
int
redis_authorizer_get(const char *appid)
{
	char key[128];
	const char *argv[2];
	struct redis_op *op;

	if (redis_state != RSTATE_CONNECTED)
		return (-1);
	snprintf(key, sizeof key, "wxpushd:authorizer:%s", appid);
	argv[0] = "GET";
	argv[1] = key;
	op = redis_op_new(REDIS_OP_AUTHORIZER, NULL);
	snprintf(op->appid, sizeof op->appid, "%s", appid);
	return (redis_command(op, 2, argv));
}

/*
 * Claim key with val for ttl_ms, unless a value is held there: cb hears
 * REDIS_CLAIM_OURS, REDIS_CLAIM_HELD (and the value) or REDIS_CLAIM_FAILED,
 * once, later (never from inside this call). -1 if Redis is not connected
 * now (cb is not called).
 */
int
redis_claim(const char *key, const char *val, long ttl_ms, redis_claim_cb cb,
    void *arg)
{
	char ms[24];
	const char *argv[6];
	struct redis_op *op;

	if (redis_state != RSTATE_CONNECTED)
		return (-1);
	snprintf(ms, sizeof ms, "%ld", ttl_ms > 0 ? ttl_ms : 1);
	argv[0] = "EVAL";
	argv[1] = redis_lua_claim;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = val;
	argv[5] = ms;
	op = redis_op_new(REDIS_OP_CLAIM, NULL);
	op->cb = cb;
	op->arg = arg;
	return (redis_command(op, 6, argv));
}

/* Replace our claim (or nothing) with val until expire_at; not answered. */
void
redis_settle(const char *key, const char *claim, const char *val,
    time_t expire_at)
{
	char at[24];
	const char *argv[7];

	if (redis_state != RSTATE_CONNECTED)
		return;
	snprintf(at, sizeof at, "%lld", (long long)expire_at);
	argv[0] = "EVAL";
	argv[1] = redis_lua_settle;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = claim;
	argv[5] = val;
	argv[6] = at;
	redis_command(redis_op_new(REDIS_OP_RELEASE, NULL), 7, argv);
}

/* Drop our claim on key, if it is still ours; not answered. */
void
redis_unclaim(const char *key, const char *claim)
{
	const char *argv[5];

	if (redis_state != RSTATE_CONNECTED)
		return;
	argv[0] = "EVAL";
	argv[1] = redis_lua_release;	/* the same compare-and-delete */
	argv[2] = "1";
	argv[3] = key;
	argv[4] = claim;
	redis_command(redis_op_new(REDIS_OP_RELEASE, NULL), 5, argv);
}

/* The connection is up (and, with Sentinel, to a master): share again. */
static void
redis_up(void)
{
	struct cred *c;

	redis_state = RSTATE_CONNECTED;
	redis_warned = 0;
	log_info("redis: connected to %s%s:%d/%d", redis_nsentinels > 0 ?
	    "the master at " : "", redis_host, redis_port, redis_db);
	if (redis_handlers != NULL)
		redis_handlers->connected();
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (!redis_shared(c))
			continue;
		if (cred_has_token(c) && !cred_invalid(c) &&
		    !cred_refreshing(c))
			redis_publish(c);	/* reconcile */
		else if (!cred_refreshing(c) &&
		    (cred_kind(c) != CRED_AUTHORIZER ||
		    redis_busy(c)))
			redis_arm(c, 0);	/* authorizers: spread */
	}
}

/* Whether ROLE's answer says master. */
static int
redis_role_master(const redisReply *r)
{
	return (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    redis_is(r->element[0], "master"));
}

/*
 * The master is no longer one (or moved): drop it now, inside a callback
 * too (the tick frees the connections), and ask the sentinels again.
 */
static void
redis_lost(const char *why)
{
	char msg[REDIS_HOST_MAX + 128];

	if (redis_state != RSTATE_CONNECTING && redis_state != RSTATE_CONNECTED)
		return;
	snprintf(msg, sizeof msg, "%s:%d %s", redis_host != NULL ?
	    redis_host : "?", redis_port, why);
	redis_down(msg);
	redis_attempt = 0;	/* ask again at the next tick */
}

/* Every command's answer. */
static void
redis_reply_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	struct redis_op *op = arg;
	const redisReply *r = reply, *what, *val;
	struct cred *c;

	(void)ac;
	if (redis_pending > 0)
		redis_pending--;
	if (r != NULL)
		redis_progress = time(NULL);
	if (r != NULL && r->type == REDIS_REPLY_ERROR &&
	    (op->kind != REDIS_OP_SETUP || !redis_warned))
		log_warnx("redis: %.*s", r->len > 200 ? 200 : (int)r->len,
		    r->str);
	/* A master turned replica under us: never write there again. */
	if (r != NULL && r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
	    memcmp(r->str, "READONLY", 8) == 0 && !redis_closing)
		redis_lost("answers READONLY (a replica now)");
	if (op->kind == REDIS_OP_CLAIM) {
		/* Always answered, also when closing: the caller frees on it. */
		if (r == NULL || redis_state != RSTATE_CONNECTED ||
		    (r->type != REDIS_REPLY_NIL && r->type != REDIS_REPLY_STRING))
			op->cb(op->arg, REDIS_CLAIM_FAILED, NULL, 0);
		else if (r->type == REDIS_REPLY_NIL)
			op->cb(op->arg, REDIS_CLAIM_OURS, NULL, 0);
		else
			op->cb(op->arg, REDIS_CLAIM_HELD, r->str, r->len);
		free(op);
		return;
	}
	if (op->kind == REDIS_OP_SETUP) {
		/* SELECT's answer: the connection is usable (AUTH came first). */
		if (r != NULL && r->type == REDIS_REPLY_STATUS &&
		    redis_state == RSTATE_CONNECTING && !redis_closing) {
			/* With Sentinel, ROLE's answer (queued next) says. */
			if (redis_nsentinels == 0)
				redis_up();
		} else if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (!redis_closing)
				redis_down("the connection could not be set up");
		}
		free(op);
		return;
	}
	if (op->kind == REDIS_OP_ROLE) {
		/* Only a master is written to; a replica is asked about again. */
		if (!redis_closing && r != NULL &&
		    (redis_state == RSTATE_CONNECTING ||
		    redis_state == RSTATE_CONNECTED)) {
			if (redis_role_master(r)) {
				if (redis_state == RSTATE_CONNECTING)
					redis_up();
			} else
				redis_lost("is not a master (ROLE)");
		}
		free(op);
		return;
	}
	if (op->kind == REDIS_OP_AUTHORIZER) {
		/* Redis's latest, or none (also without an answer: 61023 waits). */
		if (!redis_closing) {
			if (redis_state == RSTATE_CONNECTED && r != NULL &&
			    r->type == REDIS_REPLY_STRING)
				redis_authorizer_reply(op->appid, r->str,
				    r->len);
			else if (redis_handlers != NULL)
				redis_handlers->authorizer(op->appid, NULL,
				    NULL, 0, 0);
		}
		free(op);
		return;
	}
	if (op->kind == REDIS_OP_TICKET) {
		if (!redis_closing && redis_state == RSTATE_CONNECTED &&
		    r != NULL && r->type == REDIS_REPLY_STRING)
			redis_ticket_reply(op->appid, r->str, r->len);
		free(op);
		return;
	}
	if ((c = redis_op_cred(op)) == NULL) {
		free(op);
		return;
	}
	/* A late answer on a connection we gave up on counts for nothing. */
	if (redis_state != RSTATE_CONNECTED)
		r = NULL;
	switch (op->kind) {
	case REDIS_OP_ACQUIRE:
		redis_acquire_done(c, op, r);
		break;
	case REDIS_OP_PUBLISH:
	case REDIS_OP_RECONCILE:
		if (redis_pair(r, &what, &val) != 0)
			break;
		if (redis_is(what, "ok") || redis_is(what, "written")) {
			redis_cred(c)->gen = strtoull(val->str, NULL, 10);
			log_debug("%s: token shared, generation %llu",
			    cred_appid(c),
			    (unsigned long long)redis_cred(c)->gen);
		} else {
			/* Fenced off, or Redis has a later token: take it. */
			log_info("%s: Redis holds a newer token", cred_appid(c));
			redis_take(c, val->str, val->len, 1);
		}
		break;
	case REDIS_OP_GET:
		if (r != NULL && r->type == REDIS_REPLY_STRING)
			redis_take(c, r->str, r->len, 0);
		break;
	default:
		break;
	}
	free(op);
}

/* Send a command; arg is an op to free in the callback. 0 or -1. */
static int
redis_command(struct redis_op *op, int argc, const char **argv)
{
	size_t lens[16];
	int i;

	if (redis_cmd == NULL || argc > 16) {
		free(op);
		return (-1);
	}
	for (i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	if (redisAsyncCommandArgv(redis_cmd, redis_reply_cb, op, argc, argv,
	    lens) != REDIS_OK) {
		free(op);
		return (-1);
	}
	if (redis_pending++ == 0)
		redis_progress = time(NULL);
	return (0);
}

/* A new op for c (or for no credential). */
static struct redis_op *
redis_op_new(enum redis_opkind kind, const struct cred *c)
{
	struct redis_op *op;

	op = xcalloc(1, sizeof *op);
	op->kind = kind;
	if (c != NULL)
		snprintf(op->appid, sizeof op->appid, "%s", cred_appid(c));
	return (op);
}

/* The three key names of an appid. */
static void
redis_keys(const char *appid, char tok[], char lease[], char gen[], size_t len)
{
	snprintf(tok, len, "wxpushd:token:%s", appid);
	snprintf(lease, len, "wxpushd:lease:%s", appid);
	snprintf(gen, len, "wxpushd:gen:%s", appid);
}

/*
 * Before c refreshes: 0 if redis.c takes it from here (the lease, or another
 * daemon's token, or waiting for one), -1 to refresh now as without Redis.
 */
static int
redis_acquire(struct cred *c, int force)
{
	struct redis_cred *rc;
	struct redis_op *op;
	char tok[128], lease[128], gen[128], rgen[24], minexp[24], ms[24];
	char auth[128];
	const char *argv[11];
	int n;

	if (!redis_shared(c))
		return (-1);
	rc = redis_cred(c);
	/* A poll due later means nothing once cred.c refreshes or we ask. */
	evtimer_del(rc->poll);
	if (rc->lease != 0)
		return (-1);	/* we hold the lease: fetch */
	if (rc->busy == REDIS_ALONE) {
		rc->busy = 0;	/* Redis refused the lease: this once, alone */
		return (-1);
	}
	if (redis_state == RSTATE_CONNECTING &&
	    time(NULL) - redis_attempt <= REDIS_CONNECT_TIMEOUT) {
		/* At start: the token in Redis may spare a call. */
		redis_arm(c, REDIS_START_WAIT_MS);
		return (0);
	}
	if (redis_state != RSTATE_CONNECTED)
		return (-1);	/* local mode */
	if (rc->busy == REDIS_ASKING)
		return (0);	/* asked already */
	redis_keys(cred_appid(c), tok, lease, gen, sizeof tok);
	snprintf(rgen, sizeof rgen, "%llu", (unsigned long long)rc->gen);
	snprintf(minexp, sizeof minexp, "%lld",
	    (long long)time(NULL) + REDIS_MIN_LEFT);
	snprintf(ms, sizeof ms, "%d",
	    (wx_conf->upstream_timeout + REDIS_LEASE_EXTRA) * 1000);
	n = 0;
	argv[n++] = "EVAL";
	argv[n++] = redis_lua_acquire;
	argv[n++] = cred_kind(c) == CRED_AUTHORIZER ? "4" : "3";
	argv[n++] = tok;
	argv[n++] = lease;
	argv[n++] = gen;
	if (cred_kind(c) == CRED_AUTHORIZER) {
		snprintf(auth, sizeof auth, "wxpushd:authorizer:%s",
		    cred_appid(c));
		argv[n++] = auth;
	}
	argv[n++] = rgen;
	argv[n++] = minexp;
	argv[n++] = redis_owner;
	argv[n++] = ms;
	op = redis_op_new(REDIS_OP_ACQUIRE, c);
	op->force = force;
	if (redis_command(op, n, argv) != 0)
		return (-1);
	rc->busy = REDIS_ASKING;
	return (0);
}

/*
 * c has a new token: store it under our lease's generation, or, got without
 * the lease, reconcile it with what Redis has.
 */
static void
redis_publish(struct cred *c)
{
	char tok[128], lease[128], gen[128], g[24], exp[24], now[24];
	const char *argv[13];
	struct redis_op *op;
	struct redis_cred *rc;
	int n;

	if (!redis_shared(c))
		return;
	rc = redis_cred(c);
	if (redis_state != RSTATE_CONNECTED || !cred_has_token(c)) {
		rc->lease = 0;
		return;
	}
	redis_keys(cred_appid(c), tok, lease, gen, sizeof tok);
	snprintf(exp, sizeof exp, "%lld", (long long)cred_expires_at(c));
	snprintf(now, sizeof now, "%lld", (long long)time(NULL));
	argv[0] = "EVAL";
	if (rc->lease != 0) {
		snprintf(g, sizeof g, "%llu",
		    (unsigned long long)rc->lease);
		argv[1] = redis_lua_publish;
		argv[2] = "3";
		argv[3] = tok;
		argv[4] = lease;
		argv[5] = gen;
		argv[6] = g;
		argv[7] = exp;
		argv[8] = cred_token(c);
		argv[9] = redis_owner;
		argv[10] = redis_channel;
		argv[11] = cred_appid(c);
		argv[12] = now;
		n = 13;
		op = redis_op_new(REDIS_OP_PUBLISH, c);
		rc->lease = 0;
	} else {
		snprintf(g, sizeof g, "%llu",
		    (unsigned long long)rc->gen);
		argv[1] = redis_lua_reconcile;
		argv[2] = "2";
		argv[3] = tok;
		argv[4] = gen;
		argv[5] = g;
		argv[6] = exp;
		argv[7] = cred_token(c);
		argv[8] = redis_channel;
		argv[9] = cred_appid(c);
		argv[10] = now;
		n = 11;
		op = redis_op_new(REDIS_OP_RECONCILE, c);
	}
	if (redis_command(op, n, argv) != 0)
		log_warnx("%s: could not share the token", cred_appid(c));
}

/* c's refresh failed: let another daemon try at once. */
static void
redis_release(struct cred *c)
{
	char tok[128], lease[128], gen[128];
	const char *argv[5];
	struct redis_cred *rc = cred_share_data(c);

	if (rc == NULL || rc->lease == 0)
		return;
	rc->lease = 0;
	if (redis_state != RSTATE_CONNECTED)
		return;
	redis_keys(cred_appid(c), tok, lease, gen, sizeof tok);
	argv[0] = "EVAL";
	argv[1] = redis_lua_release;
	argv[2] = "1";
	argv[3] = lease;
	argv[4] = redis_owner;
	redis_command(redis_op_new(REDIS_OP_RELEASE, NULL), 5, argv);
}

/* A message on our channel: an appid whose token changed; read it. */
static void
redis_sub_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	const redisReply *r = reply, *a;
	char appid[WX_APPID_MAX + 1], tok[128], lease[128], gen[128];
	const char *argv[2];
	struct cred *c;
	size_t plen;

	(void)ac;
	(void)arg;
	if (r == NULL || redis_closing || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
	    !redis_is(r->element[0], "message"))
		return;
	a = r->element[2];
	plen = sizeof REDIS_TICKET_PREFIX - 1;
	if (a->type == REDIS_REPLY_STRING && a->len > plen &&
	    a->len - plen <= WX_APPID_MAX &&
	    memcmp(a->str, REDIS_TICKET_PREFIX, plen) == 0) {
		/* A component's new verify ticket. */
		memcpy(appid, a->str + plen, a->len - plen);
		appid[a->len - plen] = '\0';
		if (redis_state == RSTATE_CONNECTED)
			redis_ticket_get(appid);
		return;
	}
	plen = sizeof REDIS_AUTH_PREFIX - 1;
	if (a->type == REDIS_REPLY_STRING && a->len > plen &&
	    a->len - plen <= WX_APPID_MAX &&
	    memcmp(a->str, REDIS_AUTH_PREFIX, plen) == 0) {
		/* An authorizer's new refresh token, or its revocation. */
		memcpy(appid, a->str + plen, a->len - plen);
		appid[a->len - plen] = '\0';
		if (memchr(appid, '\0', a->len - plen) == NULL)
			redis_authorizer_get(appid);
		return;
	}
	if (a->type != REDIS_REPLY_STRING || a->len == 0 ||
	    a->len > WX_APPID_MAX)
		return;
	memcpy(appid, a->str, a->len);
	appid[a->len] = '\0';
	if ((c = cred_find(appid)) == NULL || !redis_shared(c) ||
	    redis_state != RSTATE_CONNECTED)
		return;
	redis_keys(appid, tok, lease, gen, sizeof tok);
	argv[0] = "GET";
	argv[1] = tok;
	redis_command(redis_op_new(REDIS_OP_GET, c), 2, argv);
}

/* A connection is closed (hiredis frees it after this). */
static void
redis_disconnect_cb(const redisAsyncContext *ac, int status)
{
	(void)status;
	if (ac == redis_cmd)
		redis_cmd = NULL;
	if (ac == redis_sub)
		redis_sub = NULL;
	if (!redis_closing)
		redis_down("connection lost");
}

/* A connection attempt ended; failure frees the context. */
static void
redis_connect_cb(const redisAsyncContext *ac, int status)
{
	if (status == REDIS_OK)
		return;		/* SELECT's answer says we are up */
	if (ac == redis_cmd)
		redis_cmd = NULL;
	if (ac == redis_sub)
		redis_sub = NULL;
	if (!redis_closing)
		redis_down(ac->errstr[0] != '\0' ? ac->errstr :
		    "cannot connect");
}

/* Close both connections (none of hiredis's callbacks may be running). */
static void
redis_close(void)
{
	redisAsyncContext *ac;
	int closing = redis_closing;

	/* hiredis answers the pending commands with NULL: ignore them. */
	redis_closing = 1;
	if ((ac = redis_cmd) != NULL) {
		redis_cmd = NULL;
		redisAsyncFree(ac);
	}
	if ((ac = redis_sub) != NULL) {
		redis_sub = NULL;
		redisAsyncFree(ac);
	}
	if ((ac = redis_ask) != NULL) {
		redis_ask = NULL;
		redisAsyncFree(ac);
	}
	redis_pending = 0;
	redis_closing = closing;
}

/*
 * Redis is gone: serve with the tokens we have, refresh locally. The
 * connections are freed by the next attempt, outside hiredis's callbacks.
 */
static void
redis_down(const char *why)
{
	struct redis_cred *rc;
	struct cred *c;
	int waiting;

	if (redis_state == RSTATE_CONNECTED)
		log_warnx("redis: %s; each credential refreshes on its own "
		    "until Redis returns", why);
	else if (redis_state == RSTATE_CONNECTING && !redis_warned &&
	    redis_nsentinels > 0)
		log_warnx("redis: master %s: %s; asking the sentinels again "
		    "every %d s", redis_master, why, REDIS_RETRY);
	else if (redis_state == RSTATE_CONNECTING && !redis_warned)
		log_warnx("redis: %s:%d: %s; retrying every %d s", redis_host,
		    redis_port, why, REDIS_RETRY);
	/* With Sentinel a lost master may have moved: ask at once. */
	if (redis_state == RSTATE_CONNECTED && redis_nsentinels > 0)
		redis_attempt = 0;
	redis_warned = 1;	/* once per outage */
	redis_state = RSTATE_DOWN;
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (!redis_shared(c) || (rc = cred_share_data(c)) == NULL)
			continue;
		waiting = rc->busy != 0;
		rc->busy = 0;
		rc->lease = 0;
		/*
		 * A credential waiting for another daemon must not wait on
		 * (authorizers that were not keep authorizer.c's spreading).
		 */
		if (!cred_refreshing(c) && (!cred_usable(c) || cred_invalid(c)) &&
		    (cred_kind(c) != CRED_AUTHORIZER || waiting))
			redis_arm(c, 0);
	}
}

/* Open one connection, AUTH queued first; NULL on failure. */
static redisAsyncContext *
redis_open(void)
{
	redisAsyncContext *ac;
	const char *argv[2];
	size_t lens[2];

	ac = redisAsyncConnect(redis_host, redis_port);
	if (ac == NULL)
		return (NULL);
	if (ac->err) {
		if (!redis_warned)
			log_warnx("redis: %s:%d: %s", redis_host, redis_port,
			    ac->errstr);
		redis_warned = 1;
		redisAsyncFree(ac);
		return (NULL);
	}
	redisLibeventAttach(ac, wx_base);
	redisAsyncSetConnectCallback(ac, redis_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_disconnect_cb);
	if (redis_password != NULL) {
		argv[0] = "AUTH";
		argv[1] = redis_password;
		lens[0] = 4;
		lens[1] = strlen(redis_password);
		redisAsyncCommandArgv(ac, NULL, NULL, 2, argv, lens);
	}
	return (ac);
}

/* Open both connections to the master; SELECT's (or ROLE's) answer says up. */
static void
redis_master_open(void)
{
	char db[16];
	const char *argv[2];

	if ((redis_cmd = redis_open()) == NULL ||
	    (redis_sub = redis_open()) == NULL) {
		redis_close();
		redis_state = RSTATE_DOWN;
		return;
	}
	snprintf(db, sizeof db, "%d", redis_db);
	argv[0] = "SELECT";
	argv[1] = db;
	redis_command(redis_op_new(REDIS_OP_SETUP, NULL), 2, argv);
	if (redis_nsentinels > 0) {
		argv[0] = "ROLE";
		redis_command(redis_op_new(REDIS_OP_ROLE, NULL), 1, argv);
	}
	redisAsyncCommand(redis_sub, redis_sub_cb, NULL, "SUBSCRIBE %s",
	    redis_channel);
}

/* A sentinel's answer: the master's "HOST", "PORT", or nil if it knows none. */
static void
redis_ask_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	const redisReply *r = reply, *h, *p;
	const struct redis_sentinel *sn = arg;
	char why[REDIS_HOST_MAX + 128];
	unsigned long port = 0;
	size_t i;

	if (ac != redis_ask || redis_closing)
		return;
	redis_ask = NULL;
	redisAsyncDisconnect(ac);	/* after this callback */
	if (redis_state != RSTATE_CONNECTING)
		return;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(why, sizeof why, "sentinel %s:%d %s", sn->host,
		    sn->port, r == NULL ? "did not answer" :
		    r->type == REDIS_REPLY_ERROR ? "refused the question" :
		    "knows no such master");
		redis_down(why);
		redis_attempt = 0;	/* the next sentinel, at the next tick */
		return;
	}
	h = r->element[0];
	p = r->element[1];
	for (i = 0; i < p->len && i < 6 && p->str[i] >= '0' &&
	    p->str[i] <= '9'; i++)
		port = port * 10 + (unsigned long)(p->str[i] - '0');
	if (h->len == 0 || h->len > REDIS_HOST_MAX ||
	    memchr(h->str, '\0', h->len) != NULL || i == 0 || i != p->len ||
	    port == 0 || port > 65535) {
		snprintf(why, sizeof why, "sentinel %s:%d gave a malformed "
		    "address", sn->host, sn->port);
		redis_down(why);
		redis_attempt = 0;
		return;
	}
	free(redis_host);
	redis_host = xstrndup(h->str, h->len);
	redis_port = (int)port;
	log_debug("redis: sentinel %s:%d says the master %s is at %s:%d",
	    sn->host, sn->port, redis_master, redis_host, redis_port);
	redis_master_open();
}

/* A sentinel connection attempt ended; failure frees the context. */
static void
redis_sentinel_connect_cb(const redisAsyncContext *ac, int status)
{
	if (status == REDIS_OK)
		return;
	if (ac == redis_watch)
		redis_watch = NULL;
	if (ac == redis_ask) {
		redis_ask = NULL;
		if (!redis_closing && redis_state == RSTATE_CONNECTING) {
			redis_down("a sentinel cannot be reached");
			redis_attempt = 0;
		}
	}
}

/* A sentinel connection is closed (hiredis frees it after this). */
static void
redis_sentinel_disconnect_cb(const redisAsyncContext *ac, int status)
{
	(void)status;
	if (ac == redis_watch)
		redis_watch = NULL;
	if (ac == redis_ask)
		redis_ask = NULL;
}

/* Open a connection to the next sentinel in turn; NULL on failure. */
static redisAsyncContext *
redis_sentinel_open(struct redis_sentinel **snp)
{
	struct redis_sentinel *sn;
	redisAsyncContext *ac;

	sn = &redis_sentinels[redis_next];
	redis_next = (redis_next + 1) % redis_nsentinels;
	*snp = sn;
	if ((ac = redisAsyncConnect(sn->host, sn->port)) == NULL)
		return (NULL);
	if (ac->err) {
		redisAsyncFree(ac);
		return (NULL);
	}
	redisLibeventAttach(ac, wx_base);
	redisAsyncSetConnectCallback(ac, redis_sentinel_connect_cb);
	redisAsyncSetDisconnectCallback(ac, redis_sentinel_disconnect_cb);
	return (ac);
}

/* Ask the next sentinel where the master is. */
static void
redis_ask_master(void)
{
	struct redis_sentinel *sn;
	const char *argv[3];

	if ((redis_ask = redis_sentinel_open(&sn)) == NULL) {
		redis_down("a sentinel cannot be reached");
		return;
	}
	argv[0] = "SENTINEL";
	argv[1] = "get-master-addr-by-name";
	argv[2] = redis_master;
	redisAsyncCommandArgv(redis_ask, redis_ask_cb, sn, 3, argv, NULL);
}

/*
 * +switch-master from a sentinel: "NAME OLDHOST OLDPORT NEWHOST NEWPORT".
 * Ours moved: drop the old master and ask again.
 */
static void
redis_watch_cb(redisAsyncContext *ac, void *reply, void *arg)
{
	const redisReply *r = reply, *m;
	char buf[2 * REDIS_HOST_MAX + 128], why[REDIS_HOST_MAX + 64];
	char *name, *newhost, *newport, *save;
	size_t nlen;

	(void)ac;
	(void)arg;
	if (r == NULL || redis_closing || r->type != REDIS_REPLY_ARRAY ||
	    r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
	    !redis_is(r->element[0], "message"))
		return;
	m = r->element[2];
	if (m->type != REDIS_REPLY_STRING || m->len >= sizeof buf ||
	    memchr(m->str, '\0', m->len) != NULL)
		return;
	memcpy(buf, m->str, m->len);
	buf[m->len] = '\0';
	nlen = strcspn(redis_master, "/");
	if ((name = strtok_r(buf, " ", &save)) == NULL ||
	    strlen(name) != nlen || strncmp(name, redis_master, nlen) != 0 ||
	    strtok_r(NULL, " ", &save) == NULL ||
	    strtok_r(NULL, " ", &save) == NULL ||
	    (newhost = strtok_r(NULL, " ", &save)) == NULL ||
	    (newport = strtok_r(NULL, " ", &save)) == NULL ||
	    strlen(newhost) > REDIS_HOST_MAX)
		return;
	log_info("redis: the sentinels moved the master %.*s to %s:%s",
	    (int)nlen, redis_master, newhost, newport);
	if (redis_host != NULL && strcmp(newhost, redis_host) == 0 &&
	    atoi(newport) == redis_port && redis_state == RSTATE_CONNECTED)
		return;		/* already there */
	snprintf(why, sizeof why, "was replaced by %s:%s (+switch-master)",
	    newhost, newport);
	redis_lost(why);
}

/* Keep one sentinel connection subscribed to +switch-master. */
static void
redis_watch_open(void)
{
	struct redis_sentinel *sn;

	if (redis_watch != NULL || redis_nsentinels == 0)
		return;
	redis_watch_attempt = time(NULL);
	if ((redis_watch = redis_sentinel_open(&sn)) == NULL)
		return;
	redisAsyncCommand(redis_watch, redis_watch_cb, NULL, "SUBSCRIBE %s",
	    "+switch-master");
}

/* Connect: ask the sentinels first when there are, then the master. */
static void
redis_connect(void)
{
	redis_close();
	redis_attempt = time(NULL);
	redis_state = RSTATE_CONNECTING;
	if (redis_nsentinels > 0)
		redis_ask_master();
	else
		redis_master_open();
}

/* Every second: reconnect, time out a silent Redis, PING when idle. */
static void
redis_tick_cb(evutil_socket_t fd, short events, void *arg)
{
	time_t now = time(NULL);
	const char *argv[1];

	(void)fd;
	(void)events;
	(void)arg;
	if (redis_nsentinels > 0 && redis_watch == NULL &&
	    now - redis_watch_attempt >= REDIS_RETRY)
		redis_watch_open();
	switch (redis_state) {
	case RSTATE_DOWN:
		if (now - redis_attempt >= REDIS_RETRY)
			redis_connect();
		break;
	case RSTATE_CONNECTING:
		if (now - redis_attempt > REDIS_CONNECT_TIMEOUT) {
			redis_down("connection timed out");
			redis_close();
		}
		break;
	case RSTATE_CONNECTED:
		if (redis_cmd == NULL || redis_sub == NULL) {
			redis_down("connection lost");
			redis_close();
		} else if (redis_pending > 0 &&
		    now - redis_progress > REDIS_REPLY_TIMEOUT) {
			redis_down("no answer");
			redis_close();
		} else if (redis_pending == 0 &&
		    now - redis_progress >= REDIS_PING) {
			/* With Sentinel, ROLE: still a master? */
			argv[0] = redis_nsentinels > 0 ? "ROLE" : "PING";
			redis_command(redis_op_new(redis_nsentinels > 0 ?
			    REDIS_OP_ROLE : REDIS_OP_PING, NULL), 1, argv);
		}
		break;
	case RSTATE_OFF:
		break;
	}
}

/* Split redis://HOST[:PORT][/DB] (config.c checked it). */
static int
redis_parse_url(const char *url)
{
	const char *rest, *slash, *colon, *end;
	size_t hl;

	if (strncmp(url, "redis://", 8) != 0)
		return (-1);
	rest = url + 8;
	slash = strchr(rest, '/');
	end = slash != NULL ? slash : rest + strlen(rest);
	redis_port = 6379;
	redis_db = slash != NULL && slash[1] != '\0' ? atoi(slash + 1) : 0;
	if (*rest == '[') {
		/* [v6]:port */
		if ((colon = memchr(rest, ']', (size_t)(end - rest))) == NULL)
			return (-1);
		hl = (size_t)(colon - rest - 1);
		redis_host = xmalloc(hl + 1);
		memcpy(redis_host, rest + 1, hl);
		redis_host[hl] = '\0';
		if (colon + 1 < end && colon[1] == ':')
			redis_port = atoi(colon + 2);
		return (0);
	}
	colon = memchr(rest, ':', (size_t)(end - rest));
	hl = (size_t)((colon != NULL ? colon : end) - rest);
	redis_host = xmalloc(hl + 1);
	memcpy(redis_host, rest, hl);
	redis_host[hl] = '\0';
	if (colon != NULL)
		redis_port = atoi(colon + 1);
	return (0);
}

/* The sentinels and the master's name[/DB] (config.c checked them). */
static int
redis_parse_sentinels(const struct config *conf)
{
	const char *s, *e, *colon, *slash;
	size_t len;

	if (conf->redis_master == NULL)
		return (-1);
	for (s = conf->redis_sentinels; redis_nsentinels < REDIS_SENTINELS_MAX;
	    s = e + 1) {
		s += strspn(s, " \t");
		e = s + strcspn(s, ",");
		len = (size_t)(e - s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		/* HOST:PORT or [V6]:PORT: the port follows the last colon. */
		if ((colon = memrchr(s, ':', len)) == NULL || colon == s)
			return (-1);
		if (*s == '[' && colon[-1] == ']')
			redis_sentinels[redis_nsentinels].host =
			    xstrndup(s + 1, (size_t)(colon - s - 2));
		else
			redis_sentinels[redis_nsentinels].host =
			    xstrndup(s, (size_t)(colon - s));
		redis_sentinels[redis_nsentinels++].port = atoi(colon + 1);
		if (*e == '\0')
			break;
	}
	slash = strchr(conf->redis_master, '/');
	redis_master = slash != NULL ? xstrndup(conf->redis_master,
	    (size_t)(slash - conf->redis_master)) : xstrdup(conf->redis_master);
	redis_db = slash != NULL ? atoi(slash + 1) : 0;
	return (redis_nsentinels > 0 ? 0 : -1);
}

/* Start sharing if conf names a Redis; later reloads do not change it. */
void
redis_init(const struct config *conf)
{
	struct timeval tv = { 1, 0 };
	char host[64];

	if (conf->redis == NULL && conf->redis_sentinels == NULL)
		return;
	if (conf->redis != NULL && redis_parse_url(conf->redis) != 0)
		fatalx("redis: bad URL");
	if (conf->redis_sentinels != NULL && redis_parse_sentinels(conf) != 0)
		fatalx("redis: bad redis_sentinels or redis_master");
	if (conf->redis_password != NULL)
		redis_password = xstrdup(conf->redis_password);
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	snprintf(redis_owner, sizeof redis_owner, "%s:%ld:%08x", host,
	    (long)getpid(), arc4random());
	snprintf(redis_channel, sizeof redis_channel, "wxpushd:tokens:%d",
	    redis_db);
	redis_tick = event_new(wx_base, -1, EV_PERSIST, redis_tick_cb, NULL);
	evtimer_add(redis_tick, &tv);
	cred_set_share(&redis_share);
	redis_connect();
}

/* Close the connections at exit. */
void
redis_shutdown(void)
{
	struct cred *c;

	if (redis_state == RSTATE_OFF)
		return;
	redis_closing = 1;
	redis_close();
	for (c = cred_first(); c != NULL; c = cred_next(c))
		redis_forget(c);
	if (redis_tick != NULL)
		event_free(redis_tick);
	redis_tick = NULL;
	if (redis_watch != NULL) {
		redisAsyncContext *ac = redis_watch;

		redis_watch = NULL;
		redisAsyncFree(ac);
	}
	while (redis_nsentinels > 0)
		free(redis_sentinels[--redis_nsentinels].host);
	free(redis_master);
	redis_master = NULL;
	free(redis_host);
	redis_host = NULL;
	freezero_str(redis_password);
	redis_password = NULL;
	redis_state = RSTATE_OFF;
	cred_set_share(NULL);
}
