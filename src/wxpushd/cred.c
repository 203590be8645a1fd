/*
 * Credentials: one state machine per appid. Each keeps its token fresh in the
 * background, backs off on failure without dropping a still-valid token, refreshes
 * a refused token only once however many sends saw it fail (compare-and-refresh),
 * and trips a breaker instead of looping through the daily token quota.
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

struct cred_list	 cred_all = TAILQ_HEAD_INITIALIZER(cred_all);
static struct cred	**cred_table;
static size_t		 cred_tsize, cred_n;

static void	cred_timer_cb(evutil_socket_t, short, void *);
static void	cred_fetch_official(struct cred *, int);
static void	cred_fail_queue(struct cred *, const char *);
static int	cred_force_allowed(struct cred *);

/* WeChat's quota day is Beijing's (UTC+8) day. */
int
cred_today(void)
{
	return ((int)((time(NULL) + 8 * 3600) / 86400));
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
	}
	return ("unknown");
}

/* Whether c has a token that can be sent with now. */
int
cred_usable(const struct cred *c)
{
	return (c->token != NULL && !c->invalid && !c->revoked &&
	    c->expires_at > time(NULL));
}

const char *
cred_state_name(const struct cred *c)
{
	if (c->revoked)
		return ("revoked");
	if (c->call != NULL)
		return ("refreshing");
	if (cred_usable(c))
		return ("valid");
	if (c->permanent || time(NULL) < c->breaker_until)
		return ("failed");
	return ("expired");
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

/* Create the credential for appid; the caller sets its configuration links. */
struct cred *
cred_add(const char *appid, enum cred_kind kind)
{
	struct cred *c;
	size_t b;

	if (cred_n + 1 > cred_tsize / 2)
		cred_table_grow();
	c = xcalloc(1, sizeof *c);
	snprintf(c->appid, sizeof c->appid, "%s", appid);
	c->kind = kind;
	c->backoff = CRED_BACKOFF_MIN;
	c->breaker_backoff = CRED_BREAKER_MIN;
	c->calls_day = cred_today();
	TAILQ_INIT(&c->queue);
	c->timer = evtimer_new(wx_base, cred_timer_cb, c);
	b = cred_hash(appid) & (cred_tsize - 1);
	c->hnext = cred_table[b];
	cred_table[b] = c;
	cred_n++;
	TAILQ_INSERT_TAIL(&cred_all, c, entry);
	return (c);
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
	event_free(c->timer);
	freezero_str(c->token);
	freezero_str(c->refresh_token);
	free(c);
}

/*
 * Drop c once nothing uses it: removed from the configuration, its sends
 * finished. The free is deferred to c's timer so no caller holds a dangling c.
 */
void
cred_remove(struct cred *c)
{
	struct send *s;

	c->removed = 1;
	if (c->call != NULL) {
		upstream_cancel(c->call);
		c->call = NULL;
	}
	while ((s = TAILQ_FIRST(&c->queue)) != NULL)
		send_fail_queued(s, "the appid was removed from the "
		    "configuration");
	event_active(c->timer, EV_TIMEOUT, 1);
}

/* Arm the timer to fire in secs seconds (at least now). */
static void
cred_arm(struct cred *c, long secs)
{
	struct timeval tv;

	if (secs < 0)
		secs = 0;
	tv.tv_sec = secs;
	tv.tv_usec = arc4random_uniform(1000000);
	evtimer_add(c->timer, &tv);
}

/* Schedule the proactive refresh of a valid token, with jitter. */
static void
cred_schedule(struct cred *c)
{
	time_t now = time(NULL);
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
	int today = cred_today();

	if (c->calls_day != today) {
		c->calls_day = today;
		c->calls_today = 0;
	}
	c->calls_today++;
}

/*
 * Start a refresh now unless one is running. force asks the stable API to
 * invalidate the current token (last resort, within WeChat's limits).
 */
void
cred_refresh(struct cred *c, int force)
{
	if (c->call != NULL || c->revoked || c->removed)
		return;
	/* With Redis, one daemon refreshes for all: redis.c may take it. */
	if (redis_refresh(c, force) == 0)
		return;
	evtimer_del(c->timer);
	cred_count_call(c);
	switch (c->kind) {
	case CRED_OFFICIAL:
		cred_fetch_official(c, force);
		break;
	case CRED_COMPONENT:
	case CRED_AUTHORIZER:
		component_fetch(c, force);
		break;
	}
}

/*
 * A new token arrived. A stable-API answer with the very token we hold means
 * the rotation window has not opened: wait rather than ask again at once.
 */
void
cred_got_token(struct cred *c, const char *token, int expires_in)
{
	time_t now = time(NULL);
	int same = c->token != NULL && strcmp(c->token, token) == 0;

	c->refreshes++;
	c->failures = 0;
	c->permanent = 0;
	c->backoff = CRED_BACKOFF_MIN;
	c->last_errcode = 0;
	c->last_error[0] = '\0';
	if (!same) {
		/* Whether a refusal asked for this token (for the breaker). */
		c->after_refusal = c->refusal_refresh;
		c->refusal_refresh = 0;
		freezero_str(c->token);
		c->token = xstrdup(token);
		c->gen++;
		c->token_issued = now;
		c->invalid = 0;
	}
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
	redis_token(c);		/* share it with the other daemons */
	if (c->kind == CRED_COMPONENT)
		component_token_ready(c);
	cred_pump(c);
}

/*
 * Another daemon's token for c, from Redis (redis.c), with its shared
 * generation: used like one we fetched, without a call to WeChat.
 */
void
cred_adopt(struct cred *c, const char *token, time_t expires_at, uint64_t rgen)
{
	time_t now = time(NULL);

	c->redis_gen = rgen;
	if (c->token != NULL && strcmp(c->token, token) == 0 && c->invalid) {
		/* The very token WeChat refused: refresh past it. */
		cred_arm(c, 0);
		return;
	}
	if (c->token == NULL || strcmp(c->token, token) != 0) {
		c->after_refusal = c->refusal_refresh;
		c->refusal_refresh = 0;
		freezero_str(c->token);
		c->token = xstrdup(token);
		c->gen++;
		c->token_issued = now;
		c->invalid = 0;
	}
	c->expires_at = expires_at;
	c->refreshed_at = now;
	c->failures = 0;
	c->permanent = 0;
	c->backoff = CRED_BACKOFF_MIN;
	c->last_errcode = 0;
	c->last_error[0] = '\0';
	cred_persist(c);
	if (c->call == NULL)
		cred_schedule(c);
	cred_pump(c);
}

/*
 * A refresh failed: keep any still-valid token, back off (long for errors an
 * operator must fix), and fail the waiting sends if no token can come soon.
 */
void
cred_fetch_failed(struct cred *c, long errcode, const char *why, int permanent)
{
	long wait;

	redis_release(c);	/* another daemon may do better at once */
	c->failures++;
	c->last_errcode = errcode;
	snprintf(c->last_error, sizeof c->last_error, "%s", why);
	c->permanent = permanent;
	if (permanent)
		wait = CRED_PERMANENT_RETRY;
	else {
		wait = c->backoff;
		c->backoff = c->backoff * 2 > CRED_BACKOFF_MAX ?
		    CRED_BACKOFF_MAX : c->backoff * 2;
	}
	/* A still-valid token is used until it lapses; retry before then. */
	if (cred_usable(c) && c->expires_at - time(NULL) < wait)
		wait = c->expires_at - time(NULL) > 2 ?
		    (long)(c->expires_at - time(NULL)) / 2 : 1;
	if (errcode != 0)
		log_warnx("%s: %s token refresh failed (%s, errcode %ld), retry "
		    "in %ld s", c->appid, cred_kind_name(c->kind), why, errcode,
		    wait);
	else
		log_warnx("%s: %s token refresh failed (%s), retry in %ld s",
		    c->appid, cred_kind_name(c->kind), why, wait);
	cred_arm(c, wait);
	if (!cred_usable(c) && permanent)
		cred_fail_queue(c, why);
}

/* The proactive refresh timer, or the end of a backoff. */
static void
cred_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct cred *c = arg;

	(void)fd;
	(void)events;
	if (c->removed) {
		if (c->inflight == 0 && c->nqueue == 0)
			cred_free(c);
		return;
	}
	cred_refresh(c, 0);
}

/* Answer every queued send of c with `unavailable`. */
static void
cred_fail_queue(struct cred *c, const char *why)
{
	struct send *s;

	while ((s = TAILQ_FIRST(&c->queue)) != NULL)
		send_fail_unavailable(s, why);
}

/*
 * Start queued sends while there is a token and a free upstream slot. Safe to
 * call from anywhere: it never frees c and never runs a callback of its own.
 */
void
cred_pump(struct cred *c)
{
	struct send *s;

	if (c->removed) {
		if (c->inflight == 0 && c->nqueue == 0)
			event_active(c->timer, EV_TIMEOUT, 1);
		return;
	}
	while (!wx_stopping && cred_usable(c) &&
	    c->inflight < wx_conf->max_inflight &&
	    (s = TAILQ_FIRST(&c->queue)) != NULL) {
		TAILQ_REMOVE(&c->queue, s, entry);
		c->nqueue--;
		s->queued = 0;
		send_start(s);
	}
}

/*
 * A send with token generation gen was refused with errcode (40001, 40014,
 * 42001). Only a refusal of the current token refreshes, so a burst of failures
 * makes one refresh; a token refused right after we got it trips the breaker.
 */
void
cred_token_failed(struct cred *c, uint64_t gen, long errcode)
{
	time_t now = time(NULL);

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
		c->last_errcode = errcode;
		snprintf(c->last_error, sizeof c->last_error,
		    "a fresh token was refused by WeChat");
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
	time_t now = time(NULL);
	int today = cred_today();

	if (c->kind != CRED_OFFICIAL || c->account->token_api != TOKEN_API_STABLE)
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

/*
 * Whether a token from WeChat can go into a URL's query as it is: no NUL
 * inside (it would be cut short), nothing that ends or splits the query.
 */
static int
cred_token_ok(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    s[i] == '&' || s[i] == '#')
			return (0);
	}
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
	if (!json_is_string(t) || json_string_length(t) == 0 ||
	    json_string_length(t) > WX_TOKEN_MAX ||
	    !cred_token_ok(json_string_value(t), json_string_length(t)) ||
	    !json_is_integer(e) ||
	    json_integer_value(e) < 10 || json_integer_value(e) > 7 * 86400) {
		*why = "malformed token reply";
		return (-1);
	}
	*token = json_string_value(t);
	*expires_in = (int)json_integer_value(e);
	return (0);
}

/* Whether a token endpoint's errcode needs an operator (no point retrying soon). */
static int
cred_errcode_permanent(long errcode)
{
	switch (errcode) {
	case 40001:	/* from a token endpoint: wrong AppSecret */
	case 45009:	/* the daily quota: nothing until WeChat's midnight */
	case 40002:
	case 40013:
	case 40125:
	case 40164:
	case 40243:
	case 41002:
	case 41004:
	case 61004:
	case 61024:
	case 61011:
		return (1);
	}
	return (0);
}

/* Interpret any token endpoint's reply for c. */
void
cred_token_reply(struct cred *c, const struct upstream_reply *r,
    const char *field)
{
	const char *token = NULL, *why = NULL;
	int expires_in = 0;
	long errcode;

	c->call = NULL;
	if (cred_parse_token(r, field, &token, &expires_in, &errcode, &why) == 0) {
		cred_got_token(c, token, expires_in);
		return;
	}
	if (errcode == 45009)
		why = "daily token quota reached";
	cred_fetch_failed(c, errcode, why, cred_errcode_permanent(errcode));
}

static void
cred_official_cb(const struct upstream_reply *r, void *arg)
{
	cred_token_reply(arg, r, "access_token");
}

/* Ask for an official account's access_token, stable (default) or classic. */
static void
cred_fetch_official(struct cred *c, int force)
{
	struct account_conf *a = c->account;
	char *s;
	json_t *body;

	if (a->token_api == TOKEN_API_CLASSIC) {
		xasprintf(&s, "grant_type=client_credential&appid=%s&secret=%s",
		    a->appid, a->secret);
		c->call = upstream_request("GET", "/cgi-bin/token", s, NULL, 0,
		    cred_official_cb, c);
	} else {
		body = json_pack("{s:s, s:s, s:s, s:b}", "grant_type",
		    "client_credential", "appid", a->appid, "secret", a->secret,
		    "force_refresh", force);
		s = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (s == NULL)
			fatalx("json_dumps");
		c->call = upstream_request("POST", "/cgi-bin/stable_token", NULL,
		    s, strlen(s), cred_official_cb, c);
	}
	freezero_str(s);
	log_debug("%s: fetching access_token (%s%s)", c->appid,
	    a->token_api == TOKEN_API_CLASSIC ? "classic" : "stable",
	    force ? ", force_refresh" : "");
}

/*
 * Start a credential: the stored token if it is still good (a restart costs no
 * token call), else a refresh now.
 */
void
cred_start(struct cred *c)
{
	struct store_token st;
	time_t now = time(NULL);

	if (store_token_load(c->appid, &st) == 1) {
		if (st.calls_day == cred_today()) {
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
	if (c->token == NULL)
		cred_arm(c, 0);
}

/*
 * A reload gave c new account settings. A usable token is kept whatever
 * changed. Without one, a credential whose secret or token_api changed, or
 * that waits out the long retry of an error an operator must fix (a wrong
 * secret, the IP whitelist, the daily quota), tries again now: the reload may
 * be the fix.
 */
static void
cred_reconfigure(struct cred *c, struct account_conf *a)
{
	struct account_conf *old = c->account;
	int changed;

	changed = old == NULL || old->token_api != a->token_api ||
	    old->secret == NULL || a->secret == NULL ||
	    strcmp(old->secret, a->secret) != 0;
	c->account = a;
	if (changed)
		log_info("%s: secret or token_api changed", c->appid);
	if (cred_usable(c) || c->call != NULL || c->revoked ||
	    (!changed && !c->permanent))
		return;
	c->backoff = CRED_BACKOFF_MIN;
	cred_arm(c, 0);
}

/*
 * Bring the credentials in line with conf: new accounts start, changed ones take
 * the new settings, removed ones go once their sends finish.
 */
void
cred_reconcile(struct config *conf)
{
	struct account_conf *a;
	struct cred *c, *next;

	TAILQ_FOREACH_SAFE(c, &cred_all, entry, next) {
		if (c->kind != CRED_OFFICIAL || c->removed)
			continue;
		if ((a = config_find_account(conf, c->appid)) == NULL) {
			log_info("%s: removed", c->appid);
			c->account = NULL;	/* freed with the old configuration */
			cred_remove(c);
			continue;
		}
		cred_reconfigure(c, a);
	}
	TAILQ_FOREACH(a, &conf->accounts, entry) {
		if ((c = cred_find(a->appid)) != NULL && !c->removed)
			continue;
		c = cred_add(a->appid, CRED_OFFICIAL);
		c->account = a;
		cred_start(c);
	}
	component_reconcile(conf);
}

int
cred_init(void)
{
	cred_reconcile(wx_conf);
	return (0);
}

/* Free every credential at exit. */
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
		cred_fail_queue(c, "wxpushd is stopping");
		cred_free(c);
	}
	free(cred_table);
	cred_table = NULL;
	cred_tsize = 0;
}
