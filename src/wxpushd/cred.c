/*
 * Credentials: one state machine per appid, and the only file that writes a
 * credential's state. Each keeps its token fresh in the background, backs off
 * on failure without dropping a still-valid token, refreshes a refused token
 * only once however many sends saw it fail (compare-and-refresh), and trips a
 * breaker instead of looping through the daily token quota.
 *
 * What differs between an official account, a component and an authorizer
 * is its token source (struct cred_source: official.c, component.c,
 * authorizer.c); how hosts share tokens is a share backend (struct
 * cred_share: redis.c, or none). The layer above (send.c) hears of a
 * credential through the listener it registered. cred.c calls none of them
 * by name.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wxpushd.h"

#define CRED_BACKOFF_MIN	1
#define CRED_BACKOFF_MAX	300
#define CRED_PERMANENT_RETRY	600	/* wrong secret and the like: retry rarely */
#define CRED_BREAKER_WINDOW	60	/* a token refused this soon is "at once" */
#define CRED_BREAKER_MIN	60
#define CRED_BREAKER_MAX	1800
#define CRED_FORCE_PER_DAY	20	/* WeChat: stable force_refresh 20/day */
#define CRED_FORCE_SPACING	30	/* ... and 30 s apart */
#define CRED_SAME_TOKEN_WAIT	30	/* stable API returned our token again */
#define CRED_MIN_LIFETIME	60	/* a stored token with less left is refetched */
#define CRED_MIN_INTERVAL	5	/* never refresh a valid token more often */

struct cred {
	char			 appid[WX_APPID_MAX + 1];
	enum cred_kind		 kind;
	const struct cred_source *src;
	void			*data;		/* the source's */
	void			*user;		/* the listener's (send.c) */
	void			*share;		/* the share backend's */

	char			*token;		/* NULL if none; wiped on free */
	uint64_t		 gen;		/* bumped with every new token */
	time_t			 expires_at;
	time_t			 refreshed_at;
	time_t			 token_issued;	/* when we got this token */
	int			 invalid;	/* the current token was refused */
	int			 after_refusal;	/* a refusal asked for this token */
	int			 refusal_refresh; /* the refresh in flight is for one */
	int			 revoked;
	int			 removed;	/* gone from the configuration */
	int			 refs;		/* holders besides the list */

	struct upstream_call	*call;		/* refresh in flight */
	struct event		*refresh;	/* the next refresh or retry */
	struct event		*reap;		/* frees a removed credential */
	int			 backoff;	/* seconds, doubled on failure */
	int			 failures;	/* consecutive failed refreshes */
	int			 permanent;	/* last failure needs an operator */
	int			 call_refused;	/* a call with the token was refused
						 * for an operator (40164...) */
	long			 last_errcode;
	char			 last_error[96];
	time_t			 breaker_until;	/* no token-failure refreshes before */
	int			 breaker_backoff;
	int			 force_day, force_count;	/* stable force_refresh */
	time_t			 force_last;
	int			 calls_day, calls_today;
	uint64_t		 refreshes;
	time_t			 used_at;	/* the last send or token asked for */
	time_t			 named_at;	/* the last cred_lookup that found it */
	int			 dozing;	/* idle: not refreshed until used */

	struct cred		*hnext;		/* hash chain */
	TAILQ_ENTRY(cred)	 entry;
};
static TAILQ_HEAD(, cred)	 cred_all = TAILQ_HEAD_INITIALIZER(cred_all);
static struct cred		**cred_table;
static size_t			 cred_tsize, cred_n;
static cred_listener		 cred_listen;
static int			(*cred_listen_busy)(const struct cred *);
static const struct cred_share	*cred_sharing;
static struct cred		*(*cred_loader)(const char *);

static void	cred_refresh_cb(evutil_socket_t, short, void *);
static void	cred_reap_cb(evutil_socket_t, short, void *);
static int	cred_force_allowed(struct cred *);
static void	cred_persist(struct cred *);

/* The layer above: told of new tokens, failures, revocations, removals. */
void
cred_set_listener(cred_listener fn)
{
	cred_listen = fn;
}

/*
 * Whether the layer above holds c for a send (send.c: one queued or
 * upstream); asked before c is unloaded.
 */
void
cred_set_busy(int (*fn)(const struct cred *))
{
	cred_listen_busy = fn;
}

/* The share backend (redis.c registers itself); NULL for none. */
void
cred_set_share(const struct cred_share *share)
{
	cred_sharing = share;
}

static void
cred_tell(struct cred *c, enum cred_event ev, const char *why)
{
	if (cred_listen != NULL)
		cred_listen(c, ev, why);
}

const char *
cred_kind_name(enum cred_kind k)
{
	switch (k) {
	case CRED_OFFICIAL:
		return ("official");
	case CRED_COMPONENT:
		return ("component");
	case CRED_AUTHORIZER:
		return ("authorizer");
	case CRED_JSAPI:
		return ("jsapi_ticket");
	}
	return ("unknown");
}

/* Readers: what other files may know of a credential. */
const char *
cred_appid(const struct cred *c)
{
	return (c->appid);
}

enum cred_kind
cred_kind(const struct cred *c)
{
	return (c->kind);
}

const struct cred_source *
cred_source(const struct cred *c)
{
	return (c->src);
}

void *
cred_data(const struct cred *c)
{
	return (c->data);
}

void *
cred_user(const struct cred *c)
{
	return (c->user);
}

void *
cred_share_data(const struct cred *c)
{
	return (c->share);
}

int
cred_removed(const struct cred *c)
{
	return (c->removed);
}

int
cred_revoked(const struct cred *c)
{
	return (c->revoked);
}

int
cred_permanent(const struct cred *c)
{
	return (c->permanent);
}

int
cred_refreshing(const struct cred *c)
{
	return (c->call != NULL);
}

int
cred_invalid(const struct cred *c)
{
	return (c->invalid);
}

int
cred_has_token(const struct cred *c)
{
	return (c->token != NULL);
}

/* The token, for the query of a call made with it; NULL if none. */
const char *
cred_token(const struct cred *c)
{
	return (c->token);
}

uint64_t
cred_gen(const struct cred *c)
{
	return (c->gen);
}

time_t
cred_expires_at(const struct cred *c)
{
	return (c->expires_at);
}

time_t
cred_refreshed_at(const struct cred *c)
{
	return (c->refreshed_at);
}

/* Seconds the token has left, 0 if none. */
int
cred_expires_in(const struct cred *c)
{
	time_t now = clock_now();

	return (c->token != NULL && c->expires_at > now ?
	    (int)(c->expires_at - now) : 0);
}

int
cred_failures(const struct cred *c)
{
	return (c->failures);
}

long
cred_last_errcode(const struct cred *c)
{
	return (c->last_errcode);
}

const char *
cred_last_error(const struct cred *c)
{
	return (c->last_error);
}

/* Token calls made today (WeChat's quota day). */
int
cred_calls_today(const struct cred *c)
{
	return (c->calls_day == clock_today() ? c->calls_today : 0);
}

uint64_t
cred_refreshes(const struct cred *c)
{
	return (c->refreshes);
}

/* Whether c has a token that can be sent with now. */
int
cred_usable(const struct cred *c)
{
	return (c->token != NULL && !c->invalid && !c->revoked &&
	    c->expires_at > clock_now());
}

/* Whether the share backend shares c's token with other hosts. */
int
cred_shared(const struct cred *c)
{
	return (c->src->shared && !c->revoked && !c->removed);
}

/* Whether a newer token is on its way: a refresh, or another host's. */
int
cred_awaiting(const struct cred *c)
{
	return (c->call != NULL || (cred_sharing != NULL &&
	    cred_sharing->busy(c)));
}

const char *
cred_state_name(const struct cred *c)
{
	if (c->revoked)
		return ("revoked");
	if (c->call != NULL)
		return ("refreshing");
	if (c->call_refused)
		return ("failed");
	if (cred_usable(c))
		return ("valid");
	if (c->dozing)
		return ("idle");
	if (c->permanent || clock_now() < c->breaker_until)
		return ("failed");
	return ("expired");
}

/* Whether peer may use c: its account's or platform's allow list. */
int
cred_allows(const struct cred *c, const struct peer *peer)
{
	const struct acl *acl;

	if (c->removed || c->src->acl == NULL ||
	    (acl = c->src->acl(c->data)) == NULL)
		return (0);
	return (acl_allows(acl, peer));
}

/* Whether the breaker is open: refusals refresh nothing for now. */
int
cred_breaker_open(const struct cred *c)
{
	return (clock_now() < c->breaker_until);
}

/* When c was last used: a send, a call, or its token asked for. */
time_t
cred_used_at(const struct cred *c)
{
	return (c->used_at);
}

/* Whether c has gone unused longer than its source's idle window. */
int
cred_idle(const struct cred *c)
{
	long window;

	if (c->src->idle_after == NULL ||
	    (window = c->src->idle_after(c->data)) <= 0)
		return (0);
	return (clock_now() - c->used_at > window);
}

/* Whether c dozes: idle, no proactive refresh until it is used again. */
int
cred_dozing(const struct cred *c)
{
	return (c->dozing);
}

/* When the next refresh (or retry) is due: 1 and *tv, or 0 if none is armed. */
int
cred_refresh_due(const struct cred *c, struct timeval *tv)
{
	return (event_pending(c->refresh, EV_TIMEOUT, tv) != 0);
}

static uint32_t
cred_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return (h);
}

static void
cred_table_grow(void)
{
	struct cred **old = cred_table, *c, *next;
	size_t i, oldsize = cred_tsize;

	cred_tsize = oldsize == 0 ? 64 : oldsize * 2;
	cred_table = xcalloc(cred_tsize, sizeof *cred_table);
	for (i = 0; i < oldsize; i++) {
		for (c = old[i]; c != NULL; c = next) {
			next = c->hnext;
			c->hnext = cred_table[cred_hash(c->appid) & (cred_tsize - 1)];
			cred_table[cred_hash(c->appid) & (cred_tsize - 1)] = c;
		}
	}
	free(old);
}

struct cred *
cred_find(const char *appid)
{
	struct cred *c;

	if (cred_tsize == 0)
		return (NULL);
	for (c = cred_table[cred_hash(appid) & (cred_tsize - 1)]; c != NULL;
	    c = c->hnext) {
		if (strcmp(c->appid, appid) == 0)
			return (c);
	}
	return (NULL);
}

/*
 * Who loads a credential kept in the store rather than in memory (component.c:
 * idle authorizers); NULL for none.
 */
void
cred_set_loader(struct cred *(*fn)(const char *))
{
	cred_loader = fn;
}

/*
 * The credential a send or call names: the one in memory, or else one the
 * loader brings in from the store (one indexed read); NULL if none.
 */
struct cred *
cred_lookup(const char *appid)
{
	struct cred *c = cred_find(appid), *l;

	if ((c == NULL || c->removed) && cred_loader != NULL &&
	    (l = cred_loader(appid)) != NULL)
		c = l;
	/* Whoever named it may hold it a while: not unloaded meanwhile. */
	if (c != NULL)
		c->named_at = clock_now();
	return (c);
}

/* Every credential, removed ones included, in the order they were added. */
struct cred *
cred_first(void)
{
	return (TAILQ_FIRST(&cred_all));
}

struct cred *
cred_next(const struct cred *c)
{
	return (TAILQ_NEXT(c, entry));
}

/* Create the credential for appid, with its token source and its data. */
struct cred *
cred_add(const char *appid, enum cred_kind kind, const struct cred_source *src,
    void *data)
{
	struct cred *c;
	size_t b;

	if (cred_n + 1 > cred_tsize / 2)
		cred_table_grow();
	c = xcalloc(1, sizeof *c);
	snprintf(c->appid, sizeof c->appid, "%s", appid);
	c->kind = kind;
	c->src = src;
	c->data = data;
	c->backoff = CRED_BACKOFF_MIN;
	c->breaker_backoff = CRED_BREAKER_MIN;
	c->calls_day = clock_today();
	c->used_at = c->named_at = clock_now();
	c->refresh = evtimer_new(wx_base, cred_refresh_cb, c);
	c->reap = evtimer_new(wx_base, cred_reap_cb, c);
	b = cred_hash(appid) & (cred_tsize - 1);
	c->hnext = cred_table[b];
	cred_table[b] = c;
	cred_n++;
	TAILQ_INSERT_TAIL(&cred_all, c, entry);
	return (c);
}

void
cred_set_user(struct cred *c, void *user)
{
	c->user = user;
}

void
cred_set_share_data(struct cred *c, void *share)
{
	c->share = share;
}

void
cred_set_data(struct cred *c, void *data)
{
	c->data = data;
}

static void
cred_free(struct cred *c)
{
	struct cred **pp;

	for (pp = &cred_table[cred_hash(c->appid) & (cred_tsize - 1)]; *pp != NULL;
	    pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	}
	cred_n--;
	TAILQ_REMOVE(&cred_all, c, entry);
	if (c->call != NULL)
		upstream_cancel(c->call);
	if (cred_sharing != NULL)
		cred_sharing->forget(c);
	event_free(c->refresh);
	event_free(c->reap);
	freezero_str(c->token);
	free(c);
}

/* Keep c from being freed while a caller (send.c) holds it. */
void
cred_hold(struct cred *c)
{
	c->refs++;
}

/* Let go of c; a removed credential nobody holds is freed soon. */
void
cred_release(struct cred *c)
{
	if (--c->refs == 0 && c->removed)
		event_active(c->reap, EV_TIMEOUT, 1);
}

static void
cred_reap_cb(evutil_socket_t fd, short events, void *arg)
{
	struct cred *c = arg;

	(void)fd;
	(void)events;
	if (c->removed && c->refs == 0)
		cred_free(c);
}

/*
 * c goes (why): no more refreshes, its waiting sends are told, and it is
 * freed once nobody holds it (deferred, so no caller's c dangles).
 */
static void
cred_drop(struct cred *c, const char *why)
{
	c->removed = 1;
	if (c->call != NULL) {
		upstream_cancel(c->call);
		c->call = NULL;
	}
	evtimer_del(c->refresh);
	c->data = NULL;
	cred_tell(c, CRED_EV_REMOVED, why);
	if (c->refs == 0)
		event_active(c->reap, EV_TIMEOUT, 1);
}

/* c left the configuration. */
void
cred_remove(struct cred *c)
{
	cred_drop(c, "the appid was removed from the configuration");
}

/*
 * Whether c can leave memory: it dozes, nothing is on its way for it (a
 * refresh, another host's token), no send holds it, and nobody used or named
 * it (cred_lookup) for more than secs seconds.
 */
int
cred_unloadable(const struct cred *c, long secs)
{
	time_t now = clock_now();

	if (!c->dozing || c->removed || c->revoked || c->call != NULL ||
	    cred_awaiting(c) || evtimer_pending(c->refresh, NULL) ||
	    now - c->used_at <= secs || now - c->named_at <= secs)
		return (0);
	return (cred_listen_busy == NULL || !cred_listen_busy(c));
}

/*
 * Take c out of memory (its source checked cred_unloadable): the store
 * holds it, and cred_lookup loads it again. Today's token calls are saved
 * first if any were counted (cred_persist: inside the caller's batch).
 */
void
cred_unload(struct cred *c)
{
	if (c->calls_day == clock_today() && c->calls_today != 0)
		cred_persist(c);
	cred_tell(c, CRED_EV_UNLOADED, NULL);	/* with its source's data */
	cred_drop(c, "the appid was unloaded");
}

/* Arm the refresh to fire in secs seconds (at least now). */
static void
cred_arm(struct cred *c, long secs)
{
	struct timeval tv;

	if (secs < 0)
		secs = 0;
	tv.tv_sec = secs;
	tv.tv_usec = arc4random_uniform(1000000);
	evtimer_add(c->refresh, &tv);
}

/* Schedule the proactive refresh of a valid token, with jitter. */
static void
cred_schedule(struct cred *c)
{
	time_t now = clock_now();
	long margin = wx_conf->refresh_margin, jitter, at;

	/* Jitter spreads many credentials' refreshes; a fifth of the margin. */
	jitter = arc4random_uniform((uint32_t)(margin / 5) + 1);
	at = (long)(c->expires_at - now) - margin - jitter;
	/* A token shorter-lived than the margin must not make a refresh loop. */
	if (at < (long)(c->expires_at - now) / 4)
		at = (long)(c->expires_at - now) / 4;
	cred_arm(c, at < CRED_MIN_INTERVAL ? CRED_MIN_INTERVAL : at);
}

/* Save what a restart must not lose: the token, its expiry, today's calls. */
static void
cred_persist(struct cred *c)
{
	struct store_token st;

	memset(&st, 0, sizeof st);
	snprintf(st.appid, sizeof st.appid, "%s", c->appid);
	st.kind = c->kind;
	if (c->token != NULL && !c->invalid)
		snprintf(st.token, sizeof st.token, "%s", c->token);
	st.expires_at = c->expires_at;
	st.refreshed_at = c->refreshed_at;
	st.calls_day = c->calls_day;
	st.calls_today = c->calls_today;
	if (store_token_save(&st) == -1)
		log_warnx("%s: could not save the token state", c->appid);
	OPENSSL_cleanse(st.token, sizeof st.token);
}

/* Count one call to a token endpoint against today's quota. */
static void
cred_count_call(struct cred *c)
{
	int today = clock_today();

	if (c->calls_day != today) {
		c->calls_day = today;
		c->calls_today = 0;
	}
	c->calls_today++;
}

/* A token call counted but not made after all. */
void
cred_uncount(struct cred *c)
{
	if (c->calls_day == clock_today() && c->calls_today > 0)
		c->calls_today--;
}

/*
 * Start a refresh now unless one is running. force asks the stable API to
 * invalidate the current token (last resort, within WeChat's limits).
 */
void
cred_refresh(struct cred *c, int force)
{
	struct upstream_call *call = NULL;

	if (c->call != NULL || c->revoked || c->removed)
		return;
	/* With a share backend, one daemon refreshes for all. */
	if (c->src->shared && cred_sharing != NULL &&
	    cred_sharing->acquire(c, force) == 0)
		return;
	evtimer_del(c->refresh);
	if (c->src->fetch(c, c->data, force, &call) == CRED_FETCH_STARTED) {
		cred_count_call(c);
		c->call = call;
	}
}

/*
 * A refresh nobody waits for (the proactive one, the end of a backoff, a
 * spread start): an idle credential dozes instead, with no timer, and its
 * token lapses; cred_use wakes it.
 */
void
cred_refresh_if_used(struct cred *c)
{
	if (c->call != NULL || c->revoked || c->removed)
		return;
	if (cred_idle(c)) {
		if (!c->dozing)
			log_debug("%s: unused for %lld s: not refreshed until "
			    "used", c->appid,
			    (long long)(clock_now() - c->used_at));
		c->dozing = 1;
		evtimer_del(c->refresh);
		return;
	}
	cred_refresh(c, 0);
}

/*
 * c is used (a send, a call): a dozing credential wakes, with one token call
 * now if its token has lapsed (sends arriving meanwhile share it), or its
 * proactive refresh armed again if the token is still good.
 */
void
cred_use(struct cred *c)
{
	c->used_at = clock_now();
	if (!c->dozing)
		return;
	c->dozing = 0;
	if (c->revoked || c->removed)
		return;
	log_debug("%s: used again: refreshed proactively", c->appid);
	if (cred_usable(c))
		cred_schedule(c);
	else
		cred_refresh(c, 0);
}

/* When c was last used, as the store remembers it (at start). */
void
cred_set_used(struct cred *c, time_t at)
{
	c->used_at = at;
}

/* Stop c's refresh: the call in flight and the timer (a new token is coming). */
void
cred_cancel(struct cred *c)
{
	if (c->call != NULL) {
		upstream_cancel(c->call);
		c->call = NULL;
	}
	evtimer_del(c->refresh);
}

/* A token replaces ours: a new generation, trusted until refused. */
static void
cred_take(struct cred *c, const char *token)
{
	/* Whether a refusal asked for this token (for the breaker). */
	c->after_refusal = c->refusal_refresh;
	c->refusal_refresh = 0;
	freezero_str(c->token);
	c->token = xstrdup(token);
	c->gen++;
	c->token_issued = clock_now();
	c->invalid = 0;
}

/* A refresh succeeded, however it came: the failure state is cleared. */
static void
cred_succeeded(struct cred *c)
{
	c->failures = 0;
	c->permanent = 0;
	c->call_refused = 0;
	c->backoff = CRED_BACKOFF_MIN;
	c->last_errcode = 0;
	c->last_error[0] = '\0';
}

/* A new token is in place: the source, the other hosts and the waiters hear. */
static void
cred_announce(struct cred *c, int share)
{
	if (share && c->src->shared && cred_sharing != NULL)
		cred_sharing->publish(c);
	if (c->src->ready != NULL)
		c->src->ready(c, c->data);
	if (cred_usable(c))
		cred_tell(c, CRED_EV_READY, NULL);
}

/*
 * A new token arrived. A stable-API answer with the very token we hold means
 * the rotation window has not opened: wait rather than ask again at once.
 */
void
cred_got_token(struct cred *c, const char *token, int expires_in)
{
	time_t now = clock_now();
	int same = c->token != NULL && strcmp(c->token, token) == 0;

	c->call = NULL;
	c->refreshes++;
	cred_succeeded(c);
	if (!same)
		cred_take(c, token);
	c->expires_at = now + expires_in;
	c->refreshed_at = now;
	cred_persist(c);
	log_info("%s: %s token %s, expires in %d s", c->appid,
	    cred_kind_name(c->kind), same ? "unchanged" : "refreshed", expires_in);
	if (same && !c->invalid) {
		long wait = (long)(c->expires_at - now) - 240 -
		    (long)arc4random_uniform(30);
		cred_arm(c, wait < CRED_SAME_TOKEN_WAIT ? CRED_SAME_TOKEN_WAIT : wait);
	} else if (same && c->invalid) {
		/* WeChat still hands out the token it refused: last resort. */
		if (cred_force_allowed(c)) {
			cred_refresh(c, 1);
			return;
		}
		cred_fetch_failed(c, 40001, "WeChat returned the refused token "
		    "again", 0);
		return;
	} else
		cred_schedule(c);
	cred_announce(c, 1);
}

/*
 * api_query_auth issued c's first token (a new authorization): count it as a
 * token call and take it, whatever c was doing.
 */
void
cred_install(struct cred *c, const char *token, int expires_in)
{
	cred_cancel(c);
	c->revoked = 0;
	c->permanent = 0;
	c->dozing = 0;
	c->used_at = clock_now();	/* a new authorization counts as a use */
	cred_count_call(c);
	cred_got_token(c, token, expires_in);
}

/*
 * Another daemon's token for c, from the share backend, with its shared
 * generation: used like one we fetched, without a call to WeChat.
 */
void
cred_adopt(struct cred *c, const char *token, time_t expires_at, uint64_t rgen)
{
	(void)rgen;
	if (c->token != NULL && strcmp(c->token, token) == 0 && c->invalid) {
		/* The very token WeChat refused: refresh past it. */
		cred_arm(c, 0);
		return;
	}
	if (c->token == NULL || strcmp(c->token, token) != 0)
		cred_take(c, token);
	c->expires_at = expires_at;
	c->refreshed_at = clock_now();
	cred_succeeded(c);
	cred_persist(c);
	if (c->call == NULL)
		cred_schedule(c);
	cred_announce(c, 0);
}

/* Record why c has no token now, without a failed refresh (for status). */
void
cred_note(struct cred *c, long errcode, const char *why)
{
	c->last_errcode = errcode;
	snprintf(c->last_error, sizeof c->last_error, "%s", why);
}

/*
 * WeChat refused a call made with c's token for a reason only an operator can
 * fix (40164: this host's IP is not whitelisted): c is failed in status and
 * metrics until a call with the token succeeds or a refresh does. The token
 * stays usable, since the fix (the whitelist) does not change it.
 */
void
cred_call_refused(struct cred *c, long errcode, const char *why)
{
	if (!c->call_refused)
		log_warnx("%s: WeChat refused a call with the token (%s, "
		    "errcode %ld): an operator must act", c->appid, why,
		    errcode);
	c->call_refused = 1;
	cred_note(c, errcode, why);
}

/* A call with c's token succeeded: what cred_call_refused marked is over. */
void
cred_call_ok(struct cred *c)
{
	if (!c->call_refused)
		return;
	c->call_refused = 0;
	if (c->failures == 0)
		cred_note(c, 0, "");
	log_info("%s: calls with the token succeed again", c->appid);
}

/*
 * A refresh failed: keep any still-valid token, back off (long for errors an
 * operator must fix), and fail the waiting sends if no token can come soon.
 */
void
cred_fetch_failed(struct cred *c, long errcode, const char *why, int permanent)
{
	time_t now = clock_now();
	long wait;

	c->call = NULL;
	if (c->src->shared && cred_sharing != NULL)
		cred_sharing->release(c);	/* another daemon may do better */
	c->failures++;
	cred_note(c, errcode, why);
	c->permanent = permanent;
	if (permanent)
		wait = CRED_PERMANENT_RETRY;
	else {
		wait = c->backoff;
		c->backoff = c->backoff * 2 > CRED_BACKOFF_MAX ?
		    CRED_BACKOFF_MAX : c->backoff * 2;
	}
	/* A still-valid token is used until it lapses; retry before then. */
	if (cred_usable(c) && c->expires_at - now < wait)
		wait = c->expires_at - now > 2 ?
		    (long)(c->expires_at - now) / 2 : 1;
	if (errcode != 0)
		log_warnx("%s: %s token refresh failed (%s, errcode %ld), retry "
		    "in %ld s", c->appid, cred_kind_name(c->kind), why, errcode,
		    wait);
	else
		log_warnx("%s: %s token refresh failed (%s), retry in %ld s",
		    c->appid, cred_kind_name(c->kind), why, wait);
	cred_arm(c, wait);
	if (!cred_usable(c) && permanent)
		cred_tell(c, CRED_EV_FAILED, why);
}

/* Fail what waits for c's token now (a source knows none can come soon). */
void
cred_fail_waiting(struct cred *c, const char *why)
{
	cred_tell(c, CRED_EV_FAILED, why);
}

/* A send waits for c's token: the source may hurry. */
void
cred_wanted(struct cred *c)
{
	if (!c->removed)
		cred_use(c);	/* a dozing one fetches now */
	if (!c->removed && !c->revoked && c->call == NULL &&
	    c->src->wanted != NULL)
		c->src->wanted(c, c->data);
}

/*
 * The merchant revoked the platform (61003, an unauthorized event): no more
 * refreshes, the source keeps that durably, and what waits is told. Only a
 * source that can be revoked (authorizers) is.
 */
void
cred_revoke(struct cred *c)
{
	if (c->revoked || c->src->revoked == NULL)
		return;
	if (c->src->shared && cred_sharing != NULL)
		cred_sharing->release(c);
	c->revoked = 1;
	cred_cancel(c);
	if (!c->removed)
		c->src->revoked(c, c->data);
	cred_tell(c, CRED_EV_REVOKED, NULL);
}

/* A re-authorization (from another host) lifts a revocation. */
void
cred_unrevoke(struct cred *c)
{
	c->revoked = 0;
	c->permanent = 0;
}

/*
 * The refresh that ended will not bring a token soon (61023 waits for a
 * newer refresh token): let another daemon hold the lease meanwhile.
 */
void
cred_yield(struct cred *c)
{
	if (c->src->shared && cred_sharing != NULL)
		cred_sharing->release(c);
}

/* Without a refresh: c cannot get a token until an operator acts (why). */
void
cred_mark_permanent(struct cred *c, const char *why)
{
	c->permanent = 1;
	cred_note(c, 0, why);
}

/* The call in flight for c's refresh has answered (the source's callback). */
void
cred_fetch_done(struct cred *c)
{
	c->call = NULL;
}

/* The proactive refresh, or the end of a backoff. */
static void
cred_refresh_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	cred_refresh_if_used(arg);
}

/*
 * A call with token generation gen was refused with errcode (40001, 40014,
 * 42001). Only a refusal of the current token refreshes, so a burst of failures
 * makes one refresh; a token refused right after we got it trips the breaker.
 */
void
cred_token_failed(struct cred *c, uint64_t gen, long errcode)
{
	time_t now = clock_now();

	if (gen != c->gen || c->invalid || now < c->breaker_until)
		return;		/* handled already: the send retries or fails */
	if (c->call != NULL) {
		/*
		 * A refresh is in flight: the classic API kills the old token
		 * when it issues the new one, so this refusal is most likely our
		 * own doing. Stop using the token and wait for the new one; it
		 * says nothing about fresh tokens being refused.
		 */
		c->invalid = 1;
		return;
	}
	if (c->after_refusal && now - c->token_issued < CRED_BREAKER_WINDOW) {
		c->breaker_until = now + c->breaker_backoff;
		log_warnx("%s: a token fetched %lld s ago was refused (errcode "
		    "%ld): no token-failure refresh for %d s", c->appid,
		    (long long)(now - c->token_issued), errcode,
		    c->breaker_backoff);
		c->breaker_backoff = c->breaker_backoff * 2 > CRED_BREAKER_MAX ?
		    CRED_BREAKER_MAX : c->breaker_backoff * 2;
		cred_note(c, errcode, "a fresh token was refused by WeChat");
		return;
	}
	log_info("%s: token refused (errcode %ld), refreshing", c->appid,
	    errcode);
	c->invalid = 1;
	c->refusal_refresh = 1;
	cred_refresh(c, 0);
}

/* Whether a stable force_refresh is allowed now (20/day, 30 s apart). */
static int
cred_force_allowed(struct cred *c)
{
	time_t now = clock_now();
	int today = clock_today();

	if (c->src->can_force == NULL || !c->src->can_force(c->data))
		return (0);
	if (c->force_day != today) {
		c->force_day = today;
		c->force_count = 0;
	}
	if (c->force_count >= CRED_FORCE_PER_DAY ||
	    now - c->force_last < CRED_FORCE_SPACING)
		return (0);
	c->force_count++;
	c->force_last = now;
	return (1);
}

/* Parse a token endpoint's answer: the token and its lifetime, or the errcode. */
int
cred_parse_token(const struct upstream_reply *r, const char *field,
    const char **token, int *expires_in, long *errcode, const char **why)
{
	json_t *t, *e, *ec;

	*errcode = 0;
	if (!r->ok) {
		*why = r->error;
		return (-1);
	}
	ec = json_object_get(r->json, "errcode");
	if (json_is_integer(ec) && json_integer_value(ec) != 0) {
		*errcode = (long)json_integer_value(ec);
		*why = "WeChat refused";
		return (-1);
	}
	t = json_object_get(r->json, field);
	e = json_object_get(r->json, "expires_in");
	if (!json_is_string(t) ||
	    !valid_token(json_string_value(t), json_string_length(t)) ||
	    !json_is_integer(e) ||
	    json_integer_value(e) < 10 || json_integer_value(e) > 7 * 86400) {
		*why = "malformed token reply";
		return (-1);
	}
	*token = json_string_value(t);
	*expires_in = (int)json_integer_value(e);
	return (0);
}

/*
 * Interpret the reply of c's token endpoint: the token, or a failure that an
 * operator must fix (a wrong secret, the IP whitelist, the daily quota) or
 * that a backoff may cure.
 */
void
cred_token_reply(struct cred *c, const struct upstream_reply *r)
{
	const char *token = NULL, *why = NULL;
	int expires_in = 0, permanent = 0;
	long errcode;

	c->call = NULL;
	if (cred_parse_token(r, c->src->token_field, &token, &expires_in,
	    &errcode, &why) == 0) {
		cred_got_token(c, token, expires_in);
		return;
	}
	if (errcode == 45009) {
		why = "daily token quota reached";
		permanent = 1;
	} else if (errcode != 0)
		permanent = wxapi_classify(c->src->endpoint, errcode,
		    &expires_in) == WXAPI_OPERATOR;
	cred_fetch_failed(c, errcode, why, permanent);
}

/*
 * Start a credential: the stored token if it is still good (a restart costs no
 * token call), else a refresh now if refresh_now.
 */
void
cred_start(struct cred *c, int refresh_now)
{
	struct store_token st;
	time_t now = clock_now();

	if (store_token_load(c->appid, &st) == 1) {
		if (st.calls_day == clock_today()) {
			c->calls_day = st.calls_day;
			c->calls_today = st.calls_today;
		}
		if (st.token[0] != '\0' &&
		    st.expires_at > now + CRED_MIN_LIFETIME) {
			c->token = xstrdup(st.token);
			c->gen = 1;
			c->expires_at = st.expires_at;
			c->refreshed_at = st.refreshed_at;
			c->token_issued = st.refreshed_at;
			log_info("%s: using the stored token, expires in %lld s",
			    c->appid, (long long)(st.expires_at - now));
			cred_schedule(c);
		}
		OPENSSL_cleanse(st.token, sizeof st.token);
	}
	if (c->token == NULL && refresh_now)
		cred_arm(c, 0);
}

/*
 * A reload changed what c's token is fetched with (secret, token_api), or may
 * have fixed what an operator had to fix: without a usable token, try now.
 */
void
cred_retry_now(struct cred *c, int changed)
{
	if (cred_usable(c) || c->call != NULL || c->revoked ||
	    (!changed && !c->permanent))
		return;
	c->backoff = CRED_BACKOFF_MIN;
	cred_arm(c, 0);
}

int
cred_init(void)
{
	return (0);
}

/* Save and free every credential at exit. */
void
cred_shutdown(void)
{
	struct cred *c;
	int batch;

	/* Today's token calls, counted since the last refresh, are kept too. */
	batch = store_batch_begin() == 0;
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && (c->token != NULL || c->calls_today != 0))
			cred_persist(c);
	}
	if (batch)
		store_batch_end(1);
	while ((c = TAILQ_FIRST(&cred_all)) != NULL) {
		cred_tell(c, CRED_EV_STOPPING, "wxpushd is stopping");
		cred_free(c);
	}
	free(cred_table);
	cred_table = NULL;
	cred_tsize = 0;
}
