/*
 * Third-party platforms (component): the verify ticket, the
 * component_access_token, the authorizers and their refresh tokens, and what
 * component events do. An authorizer's refresh token is committed to the store
 * before the access token that came with it is used: a lost refresh token
 * means the merchant must authorize the platform again.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "wxpushd.h"

#define COMPONENT_TICKET_LIFE	(12 * 3600)	/* WeChat: a ticket is good 12 h */
#define COMPONENT_PUSH_SPACING	600	/* api_start_push_ticket at most this often */
#define COMPONENT_LIST_COUNT	500	/* api_get_authorizer_list page, WeChat's most */
#define COMPONENT_LIST_PAGES	200	/* pages walked at most: 100,000 authorizers */
#define COMPONENT_SPREAD_MAX	60000	/* ms over which waiting authorizers start */
#define COMPONENT_SPREAD_RATE	100	/* ... at about this many per second */
#define COMPONENT_QUERIES_MAX	256	/* api_query_auth calls in flight */
#define COMPONENT_ERRMSG_MAX	200
#define COMPONENT_REDIRECT_MAX	1024	/* bytes of a preauth redirect_uri */
#define COMPONENT_PREAUTH_LIFE	86400	/* longest expires_in believed */
/* The longest authorization page URL: every value at its limit, encoded. */
#define COMPONENT_URL_MAX	(192 + 3 * (2 * WX_APPID_MAX + WX_TOKEN_MAX + \
				    COMPONENT_REDIRECT_MAX))

#define COMPONENT_NITEMS(a)	(sizeof (a) / sizeof (a)[0])

/* An authorizer's cflags. */
#define COMPONENT_WAITING	0x01	/* refresh once the component has a token */
#define COMPONENT_STAGGERED	0x02	/* refresh deferred to spread the load */
#define COMPONENT_LISTED	0x04	/* 61023: in api_get_authorizer_list's hands */
#define COMPONENT_LATE		0x08	/* ... joined after the walk had started */
#define COMPONENT_REAUTH	0x10	/* 61023 and no other refresh token */
#define COMPONENT_RTWAIT	0x20	/* 61023: asking Redis for a newer one */
#define COMPONENT_RTNEW		0x40	/* refresh token replaced mid-refresh */
#define COMPONENT_RTWAIT_SECS	5	/* Redis silent that long: walk the list */

struct component_query;
struct component_preauth;

/* What a platform has besides its credential. */
struct component {
	char			 appid[WX_APPID_MAX + 1];
	struct cred		*cred;
	struct component_conf	*conf;
	char			 ticket[WX_TOKEN_MAX + 1];	/* "" if none; wiped */
	time_t			 ticket_at;
	uint64_t		 ticket_seq;	/* bumped with every ticket */
	uint64_t		 ticket_used;	/* ticket_seq of the one in c->call */
	time_t			 ticket_bad_at;	/* received_at of one WeChat refused */
	time_t			 push_at;	/* last api_start_push_ticket, 0 never */
	struct upstream_call	*push_call;

	struct upstream_call	*list_call;	/* api_get_authorizer_list walk */
	uint64_t		 list_gen;
	int			 list_offset;
	int			 list_pages;

	TAILQ_HEAD(, component_query) queries;
	int			 nqueries;
	TAILQ_ENTRY(component)	 entry;
};
static TAILQ_HEAD(, component) components = TAILQ_HEAD_INITIALIZER(components);

/* An api_query_auth in flight, for authorize or an authorized event. */
struct component_query {
	struct component	*comp;
	struct upstream_call	*call;
	uint64_t		 gen;		/* the component token it used */
	char			 info_type[CALLBACK_INFO_TYPE_MAX + 1];
	char			 expected[WX_APPID_MAX + 1];	/* the event's, or "" */
	component_done_cb	 done;
	void			*arg;
	struct component_preauth *preauth;	/* api_create_preauthcode */
	TAILQ_ENTRY(component_query) entry;
};

/* What the authorization page of a preauth call is built from. */
struct component_preauth {
	struct request		*req;
	char			 redirect_uri[COMPONENT_REDIRECT_MAX + 1];
	char			 biz_appid[WX_APPID_MAX + 1];	/* "" if none */
	int			 auth_type;	/* 1..3, 0 if none */
	int			 mobile;
};

/* Loading a component's stored authorizers. */
struct component_load {
	struct component	*comp;
	unsigned int		 n, revoked;
};

static void	component_list_start(struct component *);
static void	component_list_page(struct component *);
static void	component_list_join(struct component *, struct cred *);
static void	component_revoke(struct cred *, int);

/* The running component of an appid, or NULL. */
static struct component *
component_find(const char *appid)
{
	struct component *comp;

	TAILQ_FOREACH(comp, &components, entry) {
		if (strcmp(comp->appid, appid) == 0)
			return (comp);
	}
	return (NULL);
}

/* The component whose credential is c, or NULL. */
static struct component *
component_by_cred(const struct cred *c)
{
	struct component *comp;

	TAILQ_FOREACH(comp, &components, entry) {
		if (comp->cred == c)
			return (comp);
	}
	return (NULL);
}

/* Run c's refresh (here: give up waiting for Redis) in secs seconds. */
static void
component_arm(struct cred *c, long secs)
{
	struct timeval tv;

	tv.tv_sec = secs;
	tv.tv_usec = 0;
	evtimer_add(c->timer, &tv);
}

/* cred_refresh counted a token call that was not made after all. */
static void
component_uncount(struct cred *c)
{
	if (c->calls_day == cred_today() && c->calls_today > 0)
		c->calls_today--;
}

/* WeChat's errcode in a reply, 0 if none. */
static long
component_errcode(const struct upstream_reply *r)
{
	json_t *ec;

	if (!r->ok)
		return (0);
	ec = json_object_get(r->json, "errcode");
	return (json_is_integer(ec) ? (long)json_integer_value(ec) : 0);
}

/* Whether s can be a token, ticket or code: 1..512 printable, no spaces. */
static int
component_token_ok(const char *s)
{
	size_t i, n;

	if (s == NULL || (n = strlen(s)) == 0 || n > WX_TOKEN_MAX)
		return (0);
	for (i = 0; i < n; i++) {
		if (s[i] <= 0x20 || s[i] > 0x7e)
			return (0);
	}
	return (1);
}

/* Answer done with an error. */
static void __attribute__((format(printf, 7, 8)))
component_answer(component_done_cb done, void *arg, const char *code,
    int retryable, long errcode, const char *errmsg, const char *fmt, ...)
{
	struct rpc_error e;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memset(&e, 0, sizeof e);
	e.code = code;
	e.message = msg;
	e.retryable = retryable;
	e.errcode = errcode;
	e.errmsg = errmsg;
	/* Every unknown_appid names its field (docs/protocol.md). */
	if (strcmp(code, "unknown_appid") == 0)
		e.field = "component_appid";
	done(arg, &e, NULL, NULL);
}

/* Commit an authorizer's refresh token and revoked flag, as of at; 0 or -1. */
static int
component_save(const char *component_appid, const char *appid,
    const char *refresh_token, int revoked, time_t at)
{
	struct store_authorizer sa;
	int r;

	memset(&sa, 0, sizeof sa);
	if (strlen(component_appid) >= sizeof sa.component_appid ||
	    strlen(appid) >= sizeof sa.appid ||
	    strlen(refresh_token) >= sizeof sa.refresh_token)
		return (-1);
	memcpy(sa.component_appid, component_appid, strlen(component_appid));
	memcpy(sa.appid, appid, strlen(appid));
	memcpy(sa.refresh_token, refresh_token, strlen(refresh_token));
	sa.revoked = revoked;
	sa.updated_at = at;
	r = store_authorizer_save(&sa);
	explicit_bzero(&sa, sizeof sa);
	return (r);
}

/*
 * Commit an authorizer's refresh token and revoked flag, then (only once it is
 * committed) share them with the other hosts through Redis; 0 or -1.
 */
static int
component_commit(const char *component_appid, const char *appid,
    const char *refresh_token, int revoked)
{
	time_t now = time(NULL);

	if (component_save(component_appid, appid, refresh_token, revoked,
	    now) != 0)
		return (-1);
	redis_authorizer_put(component_appid, appid, refresh_token, revoked,
	    now);
	return (0);
}

/* POST a JSON body to a component endpoint; query may be NULL. */
static struct upstream_call *
component_post(const char *path, const char *query, json_t *body,
    upstream_cb cb, void *arg)
{
	struct upstream_call *call;
	char *s;

	if (body == NULL || (s = json_dumps(body, JSON_COMPACT)) == NULL)
		fatalx("%s: json", __func__);
	json_decref(body);
	call = upstream_request("POST", path, query, s, strlen(s), cb, arg);
	freezero_str(s);
	return (call);
}

/* POST with the component_access_token of p in the query string. */
static struct upstream_call *
component_post_token(const struct cred *p, const char *path, json_t *body,
    upstream_cb cb, void *arg)
{
	struct upstream_call *call;
	char query[sizeof "component_access_token=" + WX_TOKEN_MAX];

	snprintf(query, sizeof query, "component_access_token=%s", p->token);
	call = component_post(path, query, body, cb, arg);
	OPENSSL_cleanse(query, sizeof query);
	return (call);
}

/* Whether the component holds a verify ticket younger than 12 hours. */
static int
component_ticket_valid(const struct component *comp)
{
	return (comp->ticket[0] != '\0' &&
	    time(NULL) - comp->ticket_at < COMPONENT_TICKET_LIFE);
}

/* WeChat's answer to a push request: logged; the ticket comes as an event. */
static void
component_push_cb(const struct upstream_reply *r, void *arg)
{
	struct component *comp = arg;
	long errcode = component_errcode(r);

	comp->push_call = NULL;
	if (!r->ok)
		log_warnx("%s: api_start_push_ticket failed (%s)", comp->appid,
		    r->error);
	else if (errcode != 0)
		log_warnx("%s: api_start_push_ticket refused (errcode %ld)",
		    comp->appid, errcode);
	else
		log_info("%s: WeChat will push a component_verify_ticket",
		    comp->appid);
}

/* Ask WeChat to push a verify ticket now, at most once per 10 minutes. */
static void
component_push(struct component *comp)
{
	time_t now = time(NULL);

	if (comp->push_call != NULL || (comp->push_at != 0 &&
	    now - comp->push_at < COMPONENT_PUSH_SPACING))
		return;
	comp->push_at = now;
	log_info("%s: no valid component_verify_ticket: asking for a push",
	    comp->appid);
	comp->push_call = component_post("/cgi-bin/component/"
	    "api_start_push_ticket", NULL, json_pack("{s:s, s:s}",
	    "component_appid", comp->appid, "component_secret",
	    comp->conf->secret), component_push_cb, comp);
}

/* Keep ticket (received at at), durably, and get a token with it if needed. */
static void
component_ticket_keep(struct component *comp, const char *ticket, time_t at)
{
	struct cred *c = comp->cred;

	snprintf(comp->ticket, sizeof comp->ticket, "%s", ticket);
	comp->ticket_at = at;
	comp->ticket_seq++;
	if (store_ticket_save(comp->appid, ticket, at) == -1)
		log_warnx("%s: could not store the verify ticket; using it "
		    "anyway", comp->appid);
	if (c->call == NULL && (!cred_usable(c) || c->failures > 0))
		cred_refresh(c, 0);
}

/* A ticket was pushed to us: keep it, and share it with the other hosts. */
static void
component_ticket_set(struct component *comp, const char *ticket)
{
	time_t now = time(NULL);

	component_ticket_keep(comp, ticket, now);
	redis_ticket_put(comp->appid, ticket, now);
}

/*
 * A ticket another host received, from Redis (redis.c): kept like one pushed
 * to us if it is later than ours and not one WeChat refused.
 */
void
component_ticket_shared(const char *appid, const char *ticket, time_t at)
{
	struct component *comp;
	time_t now = time(NULL);

	if ((comp = component_find(appid)) == NULL ||
	    !component_token_ok(ticket) || at < comp->ticket_at ||
	    strcmp(ticket, comp->ticket) == 0 || at <= comp->ticket_bad_at ||
	    now - at >= COMPONENT_TICKET_LIFE)
		return;
	if (at > now)
		at = now;	/* another host's clock is ahead */
	log_info("%s: verify ticket from another host (through Redis)",
	    comp->appid);
	component_ticket_keep(comp, ticket, at);
}

/* Redis is (back) up: share our valid ticket, or look for one. */
void
component_ticket_sync(struct cred *c)
{
	struct component *comp;

	if ((comp = component_by_cred(c)) == NULL)
		return;
	if (component_ticket_valid(comp))
		redis_ticket_put(comp->appid, comp->ticket, comp->ticket_at);
	else
		redis_ticket_get(comp->appid);
}

/* WeChat refused the ticket: forget it, also in the store (as too old). */
static void
component_ticket_forget(struct component *comp)
{
	comp->ticket_bad_at = comp->ticket_at;	/* not again from Redis */
	if (comp->ticket[0] != '\0' &&
	    store_ticket_save(comp->appid, comp->ticket, 0) == -1)
		log_warnx("%s: could not mark the stored ticket invalid",
		    comp->appid);
	explicit_bzero(comp->ticket, sizeof comp->ticket);
	comp->ticket_at = 0;
}

/* api_component_token's answer; a refused ticket is forgotten, a push asked. */
static void
component_token_cb(const struct upstream_reply *r, void *arg)
{
	struct cred *c = arg;
	struct component *comp = component_by_cred(c);
	long errcode = component_errcode(r);

	if (comp != NULL && (errcode == 61005 || errcode == 61006)) {
		c->call = NULL;
		if (comp->ticket_seq != comp->ticket_used &&
		    component_ticket_valid(comp)) {
			/* A newer ticket came while this one was in use. */
			cred_refresh(c, 0);
			return;
		}
		component_ticket_forget(comp);
		component_push(comp);
		cred_fetch_failed(c, errcode, "component_verify_ticket expired "
		    "or invalid; push requested", 0);
		return;
	}
	cred_token_reply(c, r, "component_access_token");
}

/* Ask for the component_access_token, which needs a valid verify ticket. */
static void
component_fetch_component(struct cred *c)
{
	struct component *comp;

	if ((comp = component_by_cred(c)) == NULL) {
		component_uncount(c);
		return;
	}
	if (!component_ticket_valid(comp)) {
		component_uncount(c);
		redis_ticket_get(comp->appid);	/* another host may have one */
		component_push(comp);
		cred_fetch_failed(c, 0, "no valid component_verify_ticket; "
		    "push requested", 0);
		return;
	}
	comp->ticket_used = comp->ticket_seq;
	c->call = component_post("/cgi-bin/component/api_component_token", NULL,
	    json_pack("{s:s, s:s, s:s}", "component_appid", comp->appid,
	    "component_appsecret", comp->conf->secret,
	    "component_verify_ticket", comp->ticket), component_token_cb, c);
	log_debug("%s: fetching component_access_token", c->appid);
}

/* Whether a is an authorizer of p in the api_get_authorizer_list walk. */
static int
component_listed(const struct cred *a, const struct cred *p)
{
	return (a->kind == CRED_AUTHORIZER && a->parent == p && !a->removed &&
	    !a->revoked && (a->cflags & COMPONENT_LISTED));
}

/*
 * The walk is over: an authorizer still listed that joined before it started
 * has no other refresh token and needs re-authorization; one that joined later
 * gets another walk; on failure (why) they all retry later.
 */
static void
component_list_end(struct component *comp, const char *why)
{
	struct cred *a;
	char msg[sizeof a->last_error];
	int again = 0;

	TAILQ_FOREACH(a, &cred_all, entry) {
		if (!component_listed(a, comp->cred))
			continue;
		if (why != NULL) {
			a->cflags &= ~(COMPONENT_LISTED | COMPONENT_LATE);
			snprintf(msg, sizeof msg, "refresh token refused "
			    "(61023); %s", why);
			cred_fetch_failed(a, 61023, msg, 0);
		} else if (a->cflags & COMPONENT_LATE) {
			a->cflags &= ~COMPONENT_LATE;
			again = 1;
		} else {
			a->cflags &= ~COMPONENT_LISTED;
			a->cflags |= COMPONENT_REAUTH;
			log_warnx("%s: refresh token invalid (61023) and "
			    "WeChat lists no other: the merchant must "
			    "authorize %s again", a->appid, comp->appid);
			cred_fetch_failed(a, 61023, "refresh token invalid "
			    "(61023): needs re-authorization", 1);
		}
	}
	if (again)
		component_list_start(comp);
}

/* One authorizer of the list: a refresh token other than ours may work. */
static void
component_list_item(struct component *comp, json_t *item)
{
	const char *aid, *rt;
	struct cred *a;

	aid = json_string_value(json_object_get(item, "authorizer_appid"));
	rt = json_string_value(json_object_get(item, "refresh_token"));
	if (aid == NULL || !component_token_ok(rt) ||
	    !callback_appid_ok(aid, strlen(aid)))
		return;
	if ((a = cred_find(aid)) == NULL || !component_listed(a, comp->cred) ||
	    strcmp(rt, a->refresh_token) == 0)
		return;
	a->cflags &= ~(COMPONENT_LISTED | COMPONENT_LATE);
	if (component_commit(comp->appid, a->appid, rt, 0) != 0) {
		cred_fetch_failed(a, 61023, "could not store the refresh token "
		    "found with api_get_authorizer_list", 0);
		return;
	}
	freezero_str(a->refresh_token);
	a->refresh_token = xstrdup(rt);
	log_info("%s: api_get_authorizer_list has a newer refresh token; "
	    "stored, retrying", a->appid);
	cred_refresh(a, 0);
}

/* A page of api_get_authorizer_list: use it, then ask for the next or end. */
static void
component_list_cb(const struct upstream_reply *r, void *arg)
{
	struct component *comp = arg;
	struct cred *a;
	json_t *list, *total, *item;
	size_t i, n;
	long errcode = component_errcode(r);
	char why[96];
	int left = 0;

	comp->list_call = NULL;
	if (!r->ok) {
		snprintf(why, sizeof why, "api_get_authorizer_list failed (%s)",
		    r->error);
		component_list_end(comp, why);
		return;
	}
	if (errcode == 40001 || errcode == 40014 || errcode == 42001) {
		cred_token_failed(comp->cred, comp->list_gen, errcode);
		component_list_end(comp, "the component_access_token was "
		    "refused");
		return;
	}
	if (errcode != 0) {
		snprintf(why, sizeof why, "api_get_authorizer_list refused "
		    "(errcode %ld)", errcode);
		component_list_end(comp, why);
		return;
	}
	list = json_object_get(r->json, "list");
	total = json_object_get(r->json, "total_count");
	if (!json_is_array(list) || !json_is_integer(total) ||
	    (n = json_array_size(list)) > COMPONENT_LIST_COUNT) {
		component_list_end(comp, "malformed api_get_authorizer_list "
		    "reply");
		return;
	}
	json_array_foreach(list, i, item)
		component_list_item(comp, item);
	comp->list_offset += (int)n;
	comp->list_pages++;
	TAILQ_FOREACH(a, &cred_all, entry) {
		if (component_listed(a, comp->cred)) {
			left = 1;
			break;
		}
	}
	if (!left || n == 0 || comp->list_offset >= json_integer_value(total) ||
	    comp->list_pages >= COMPONENT_LIST_PAGES) {
		component_list_end(comp, NULL);
		return;
	}
	component_list_page(comp);
}

/* Ask for the next page of the component's authorizers. */
static void
component_list_page(struct component *comp)
{
	struct cred *p = comp->cred;

	if (!cred_usable(p)) {
		component_list_end(comp, "the component has no "
		    "component_access_token");
		return;
	}
	comp->list_gen = p->gen;
	comp->list_call = component_post_token(p, "/cgi-bin/component/"
	    "api_get_authorizer_list", json_pack("{s:s, s:i, s:i}",
	    "component_appid", comp->appid, "offset", comp->list_offset,
	    "count", COMPONENT_LIST_COUNT), component_list_cb, comp);
}

/* Walk api_get_authorizer_list for the authorizers that got 61023. */
static void
component_list_start(struct component *comp)
{
	struct cred *a;

	TAILQ_FOREACH(a, &cred_all, entry) {
		if (component_listed(a, comp->cred))
			a->cflags &= ~COMPONENT_LATE;
	}
	comp->list_offset = 0;
	comp->list_pages = 0;
	component_list_page(comp);
}

/*
 * 61023: our refresh token is no longer good. WeChat's list of authorizers
 * may hold a newer one (lost by a crash, or rotated by another host); one walk
 * serves every authorizer of the component that needs it.
 */
static void
component_list_join(struct component *comp, struct cred *a)
{
	a->cflags |= COMPONENT_LISTED;
	a->last_errcode = 61023;
	snprintf(a->last_error, sizeof a->last_error, "refresh token refused "
	    "(61023); looking for a newer one");
	log_warnx("%s: refresh token refused (61023); checking "
	    "api_get_authorizer_list", a->appid);
	if (comp->list_call != NULL) {
		a->cflags |= COMPONENT_LATE;
		return;
	}
	component_list_start(comp);
}

/* api_authorizer_token's answer; 40001 here means the component's token. */
static void
component_authorizer_cb(const struct upstream_reply *r, void *arg)
{
	struct cred *c = arg, *p = c->parent;
	struct component *comp;
	const char *rt;
	long errcode = component_errcode(r);
	int rtnew = c->cflags & COMPONENT_RTNEW;

	c->cflags &= ~COMPONENT_RTNEW;
	if (!r->ok) {
		cred_token_reply(c, r, "authorizer_access_token");
		return;
	}
	switch (errcode) {
	case 0:
		break;
	case 40001:
	case 40014:
	case 42001:
		/* The only token in this call is the component's. */
		c->call = NULL;
		cred_token_failed(p, c->parent_gen, errcode);
		c->cflags |= COMPONENT_WAITING;
		cred_fetch_failed(c, errcode, "the component_access_token was "
		    "refused", 0);
		return;
	case 61023:
		c->call = NULL;
		redis_release(c);
		if (rtnew) {
			/* Refused the one we replaced meanwhile: try the new. */
			log_info("%s: the old refresh token was refused; "
			    "retrying with the newer one", c->appid);
			cred_refresh(c, 0);
		} else if ((comp = component_by_cred(p)) == NULL)
			cred_fetch_failed(c, errcode, "refresh token invalid",
			    0);
		else if (redis_authorizer_get(c->appid) == 0) {
			/* Another host may have rotated it: Redis first. */
			c->cflags |= COMPONENT_RTWAIT;
			c->last_errcode = 61023;
			snprintf(c->last_error, sizeof c->last_error, "refresh "
			    "token refused (61023); checking Redis");
			log_warnx("%s: refresh token refused (61023); checking "
			    "Redis for a newer one", c->appid);
			component_arm(c, COMPONENT_RTWAIT_SECS);
		} else
			component_list_join(comp, c);
		return;
	case 61003:
		c->call = NULL;
		redis_release(c);
		c->last_errcode = errcode;
		snprintf(c->last_error, sizeof c->last_error, "the merchant "
		    "revoked the authorization (61003)");
		component_revoked(c);
		return;
	default:
		cred_token_reply(c, r, "authorizer_access_token");
		return;
	}

	/* Commit the refresh token that came back before using the token. */
	c->call = NULL;
	rt = json_string_value(json_object_get(r->json,
	    "authorizer_refresh_token"));
	if (!component_token_ok(rt))
		log_warnx("%s: api_authorizer_token gave no usable refresh "
		    "token; keeping ours", c->appid);
	else if (strcmp(rt, c->refresh_token) != 0) {
		if (component_commit(p->appid, c->appid, rt, 0) != 0) {
			cred_fetch_failed(c, 0, "could not store the new "
			    "refresh token, so its access token is not used",
			    0);
			return;
		}
		freezero_str(c->refresh_token);
		c->refresh_token = xstrdup(rt);
		log_info("%s: new refresh token stored", c->appid);
	}
	c->cflags &= ~(COMPONENT_WAITING | COMPONENT_REAUTH);
	cred_token_reply(c, r, "authorizer_access_token");
}

/* Refresh an authorizer's token, which needs the component's. */
static void
component_fetch_authorizer(struct cred *c)
{
	struct cred *p = c->parent;
	struct component *comp;

	c->cflags &= ~COMPONENT_STAGGERED;
	if (p != NULL && (c->cflags & COMPONENT_RTWAIT)) {
		/* Redis did not answer in time: WeChat's list, then. */
		component_uncount(c);
		c->cflags &= ~COMPONENT_RTWAIT;
		if ((comp = component_by_cred(p)) != NULL)
			component_list_join(comp, c);
		else
			cred_fetch_failed(c, 61023, "refresh token invalid", 0);
		return;
	}
	if (p == NULL || (c->cflags & (COMPONENT_LISTED | COMPONENT_REAUTH))) {
		/* The walk retries it, or only a new authorization helps. */
		component_uncount(c);
		return;
	}
	if (!cred_usable(p)) {
		component_uncount(c);
		c->cflags |= COMPONENT_WAITING;
		if (!cred_usable(c))
			snprintf(c->last_error, sizeof c->last_error,
			    "waiting for the component_access_token");
		return;
	}
	c->cflags &= ~COMPONENT_WAITING;
	c->parent_gen = p->gen;
	c->call = component_post_token(p, "/cgi-bin/component/"
	    "api_authorizer_token", json_pack("{s:s, s:s, s:s}",
	    "component_appid", p->appid, "authorizer_appid", c->appid,
	    "authorizer_refresh_token", c->refresh_token),
	    component_authorizer_cb, c);
	log_debug("%s: fetching authorizer_access_token", c->appid);
}

/* cred_refresh for a component or an authorizer. */
void
component_fetch(struct cred *c, int force)
{
	(void)force;	/* no force_refresh for these */
	if (c->kind == CRED_COMPONENT)
		component_fetch_component(c);
	else if (c->kind == CRED_AUTHORIZER)
		component_fetch_authorizer(c);
}

/* Whether a waits for p's token. */
static int
component_waiting(const struct cred *a, const struct cred *p)
{
	return (a->kind == CRED_AUTHORIZER && a->parent == p && !a->removed &&
	    !a->revoked && a->call == NULL && (a->cflags & COMPONENT_WAITING));
}

/*
 * The component has a token: start the authorizers that waited for it, spread
 * over up to a minute (about 100 a second) so that thousands never fire in the
 * same second; one with a send waiting goes now, and one with a token left
 * goes before half of it is gone.
 */
void
component_token_ready(struct cred *p)
{
	struct cred *a;
	struct timeval tv;
	time_t now = time(NULL);
	uint32_t n = 0, window, ms, limit;

	TAILQ_FOREACH(a, &cred_all, entry) {
		if (component_waiting(a, p))
			n++;
	}
	if (n == 0)
		return;
	window = n > COMPONENT_SPREAD_MAX / (1000 / COMPONENT_SPREAD_RATE) ?
	    COMPONENT_SPREAD_MAX : n * (1000 / COMPONENT_SPREAD_RATE);
	log_info("%s: refreshing %u authorizer%s over %u ms", p->appid, n,
	    n == 1 ? "" : "s", window);
	TAILQ_FOREACH(a, &cred_all, entry) {
		if (!component_waiting(a, p))
			continue;
		a->cflags &= ~COMPONENT_WAITING;
		if (a->nqueue > 0) {
			cred_refresh(a, 0);
			continue;
		}
		ms = arc4random_uniform(window + 1);
		if (cred_usable(a)) {
			limit = (uint32_t)(a->expires_at - now) * 500;
			if (ms > limit)
				ms = limit;
		}
		a->cflags |= COMPONENT_STAGGERED;
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		evtimer_add(a->timer, &tv);
	}
}

/* A send waits for c's token: do not let the spreading delay it. */
void
component_wanted(struct cred *c)
{
	struct cred *p = c->parent;
	struct send *s;
	char why[sizeof p->last_error + 48];

	if (c->kind != CRED_AUTHORIZER || c->removed || c->revoked ||
	    c->call != NULL || p == NULL)
		return;
	if (c->cflags & COMPONENT_STAGGERED) {
		cred_refresh(c, 0);
		return;
	}
	if ((c->cflags & COMPONENT_WAITING) && !cred_usable(p) &&
	    p->permanent) {
		/* The component's own failure needs an operator: say so now. */
		snprintf(why, sizeof why, "the component has no token (%s)",
		    p->last_error);
		while ((s = TAILQ_FIRST(&c->queue)) != NULL)
			send_fail_unavailable(s, why);
	}
}

/*
 * The merchant revoked the platform (61003 or an unauthorized event): keep
 * that across restarts, stop refreshing, and answer the waiting sends.
 */
void
component_revoked(struct cred *c)
{
	component_revoke(c, 1);
}

/* Revoke c; commit and share that unless it came from Redis (committed). */
static void
component_revoke(struct cred *c, int share)
{
	struct send *s;

	if (c->kind != CRED_AUTHORIZER || c->revoked)
		return;
	c->revoked = 1;
	c->cflags = 0;
	redis_release(c);
	if (c->removed || c->parent == NULL)
		return;
	if (share && component_commit(c->parent->appid, c->appid,
	    c->refresh_token != NULL ? c->refresh_token : "", 1) != 0)
		log_warnx("%s: could not store the revocation", c->appid);
	if (c->call != NULL) {
		upstream_cancel(c->call);
		c->call = NULL;
	}
	evtimer_del(c->timer);
	log_info("%s: the merchant revoked its authorization of %s", c->appid,
	    c->parent->appid);
	while ((s = TAILQ_FIRST(&c->queue)) != NULL)
		send_fail_revoked(s);
}

/*
 * Take an authorizer's tokens from api_query_auth: commit the refresh token,
 * then use the access token. 0, or -1 with an error code and message.
 */
static int
component_install(struct component *comp, const char *appid,
    const char *refresh_token, const char *token, int expires_in,
    const char **code, char *msg, size_t msglen)
{
	struct cred *a;
	time_t now = time(NULL);

	a = cred_find(appid);
	if (a != NULL && !a->removed && (a->kind != CRED_AUTHORIZER ||
	    a->parent != comp->cred)) {
		*code = "invalid_request";
		snprintf(msg, msglen, "%s is already configured here as %s",
		    appid, a->kind == CRED_AUTHORIZER ? "an authorizer of "
		    "another component" : "an account or component");
		return (-1);
	}
	if (component_save(comp->appid, appid, refresh_token, 0, now) != 0) {
		*code = "internal";
		snprintf(msg, msglen, "could not store the refresh token of "
		    "%s; its tokens are not used", appid);
		return (-1);
	}
	if (a == NULL || a->removed) {
		a = cred_add(appid, CRED_AUTHORIZER);
		a->parent = comp->cred;
		a->component = comp->conf;
	} else {
		if (a->call != NULL) {
			/* A refresh with the old refresh token: moot now. */
			upstream_cancel(a->call);
			a->call = NULL;
		}
		evtimer_del(a->timer);
	}
	freezero_str(a->refresh_token);
	a->refresh_token = xstrdup(refresh_token);
	a->revoked = 0;
	a->cflags = 0;
	a->permanent = 0;
	/* api_query_auth issued this token: count it as a token call. */
	if (a->calls_day != cred_today()) {
		a->calls_day = cred_today();
		a->calls_today = 0;
	}
	a->calls_today++;
	log_info("%s: authorized %s", appid, comp->appid);
	cred_got_token(a, token, expires_in);
	/* Shared after its token, so another host finds both in Redis. */
	redis_authorizer_put(comp->appid, appid, refresh_token, 0, now);
	return (0);
}

/*
 * What Redis holds for an authorizer (another host committed it), or NULL
 * component if nothing usable: taken, and committed here too, if it is at
 * least as recent as our stored one; ours goes back to Redis if it is newer.
 * An authorizer waiting on 61023 retries with a newer refresh token, or else
 * walks api_get_authorizer_list.
 */
void
component_authorizer_shared(const char *appid, const char *component,
    const char *rt, int revoked, time_t at)
{
	struct store_authorizer sa;
	struct component *comp = NULL;
	struct cred *a;
	int wait = 0, found = 0;

	memset(&sa, 0, sizeof sa);
	a = cred_find(appid);
	if (a != NULL && a->removed)
		a = NULL;
	if (a != NULL && a->kind == CRED_AUTHORIZER &&
	    (a->cflags & COMPONENT_RTWAIT)) {
		wait = 1;
		a->cflags &= ~COMPONENT_RTWAIT;
		evtimer_del(a->timer);	/* the fallback */
	}
	if (component == NULL || (comp = component_find(component)) == NULL)
		goto unchanged;
	if (revoked ? rt[0] != '\0' && !component_token_ok(rt) :
	    !component_token_ok(rt))
		goto unchanged;
	if (a != NULL && (a->kind != CRED_AUTHORIZER || a->parent != comp->cred))
		goto unchanged;
	switch (store_authorizer_load(appid, &sa)) {
	case -1:
		goto unchanged;
	case 1:
		found = 1;
		break;
	}
	if (found && (strcmp(sa.component_appid, component) != 0 ||
	    (strcmp(sa.refresh_token, rt) == 0 &&
	    (sa.revoked != 0) == (revoked != 0))))
		goto unchanged;
	if (found && sa.updated_at > at) {
		/* Ours is newer (Redis lost it, or a host was behind). */
		if (sa.revoked || sa.refresh_token[0] != '\0')
			redis_authorizer_put(component, appid, sa.refresh_token,
			    sa.revoked, sa.updated_at);
		goto unchanged;
	}
	if (found && a == NULL && !revoked)
		goto unchanged;	/* stored but not running here (a conflict) */
	if (component_save(component, appid, rt, revoked, at) != 0) {
		log_warnx("%s: could not store the refresh token from Redis",
		    appid);
		goto unchanged;
	}
	explicit_bzero(&sa, sizeof sa);
	if (a == NULL) {
		/* Authorized (or revoked) on another host. */
		a = cred_add(appid, CRED_AUTHORIZER);
		a->parent = comp->cred;
		a->component = comp->conf;
		a->refresh_token = xstrdup(rt);
		a->revoked = revoked;
		log_info("%s: %s %s on another host (through Redis)", appid,
		    revoked ? "revoked" : "authorized", comp->appid);
		if (!revoked)
			cred_start(a);
		return;
	}
	freezero_str(a->refresh_token);
	a->refresh_token = xstrdup(rt);
	if (revoked) {
		component_revoke(a, 0);
		return;
	}
	log_info("%s: %s refresh token from another host (through Redis)",
	    appid, a->revoked ? "re-authorized, with a" : "newer");
	if (a->call != NULL) {
		a->cflags |= COMPONENT_RTNEW;	/* a 61023 then retries */
		return;
	}
	if (wait || a->revoked || a->permanent ||
	    (a->cflags & (COMPONENT_LISTED | COMPONENT_REAUTH))) {
		a->revoked = 0;
		a->permanent = 0;
		a->cflags &= ~(COMPONENT_LISTED | COMPONENT_LATE |
		    COMPONENT_REAUTH);
		cred_refresh(a, 0);
	}
	return;
unchanged:
	explicit_bzero(&sa, sizeof sa);
	if (!wait)
		return;
	if (comp == NULL || comp->cred != a->parent)
		comp = a->parent != NULL ? component_by_cred(a->parent) : NULL;
	if (comp != NULL)
		component_list_join(comp, a);
	else
		cred_fetch_failed(a, 61023, "refresh token invalid", 0);
}

/* Redis is (back) up: share an authorizer's stored refresh token. */
void
component_authorizer_sync(struct cred *c)
{
	struct store_authorizer sa;
	struct component *comp;

	if (c->kind != CRED_AUTHORIZER || c->parent == NULL ||
	    (comp = component_by_cred(c->parent)) == NULL)
		return;
	if (store_authorizer_load(c->appid, &sa) == 1 &&
	    strcmp(sa.component_appid, comp->appid) == 0 &&
	    (sa.revoked || sa.refresh_token[0] != '\0'))
		redis_authorizer_put(comp->appid, c->appid, sa.refresh_token,
		    sa.revoked, sa.updated_at);
	explicit_bzero(&sa, sizeof sa);
}

/* c took another host's token from Redis: no staggered refresh due. */
void
component_adopted(struct cred *c)
{
	c->cflags &= ~(COMPONENT_WAITING | COMPONENT_STAGGERED);
}

/* Forget an api_query_auth, cancelling it if still in flight. */
static void
component_query_free(struct component_query *q)
{
	TAILQ_REMOVE(&q->comp->queries, q, entry);
	q->comp->nqueries--;
	if (q->call != NULL)
		upstream_cancel(q->call);
	free(q->preauth);
	free(q);
}

/* api_query_auth's answer: keep the authorizer, then say done. */
/*
 * What every query on the component's behalf does with a failure: WeChat
 * unreachable, the component token refused (compare-and-refresh it), or
 * another refusal. -1 once q has been answered; 0 for a success to read.
 */
static int
component_query_refused(struct component_query *q,
    const struct upstream_reply *r, long errcode, const char *api,
    const char *refusal)
{
	char errmsg[COMPONENT_ERRMSG_MAX + 1];

	if (!r->ok) {
		component_answer(q->done, q->arg, "unavailable", 1, 0, NULL,
		    "WeChat is unreachable (%s)", r->error);
		return (-1);
	}
	if (errcode == 40001 || errcode == 40014 || errcode == 42001) {
		cred_token_failed(q->comp->cred, q->gen, errcode);
		component_answer(q->done, q->arg, "unavailable", 1, 0, NULL,
		    "the component_access_token was refused (errcode %ld); it "
		    "is being refreshed, try again", errcode);
		return (-1);
	}
	if (errcode != 0) {
		upstream_errmsg(r->json, errmsg, sizeof errmsg);
		log_info("%s: %s refused (errcode %ld)", q->comp->appid, api,
		    errcode);
		component_answer(q->done, q->arg, "wechat", errcode == -1,
		    errcode, errmsg, "%s", refusal);
		return (-1);
	}
	return (0);
}

static void
component_query_cb(const struct upstream_reply *r, void *arg)
{
	struct component_query *q = arg;
	struct component *comp = q->comp;
	json_t *ai, *e;
	const char *appid, *token, *rt, *code;
	char msg[160];
	long errcode = component_errcode(r);

	q->call = NULL;
	if (component_query_refused(q, r, errcode, "api_query_auth",
	    errcode == 61010 ? "the authorization code is expired, used or "
	    "invalid (61010)" : "WeChat refused api_query_auth") == -1)
		goto out;
	ai = json_object_get(r->json, "authorization_info");
	appid = json_string_value(json_object_get(ai, "authorizer_appid"));
	token = json_string_value(json_object_get(ai,
	    "authorizer_access_token"));
	rt = json_string_value(json_object_get(ai, "authorizer_refresh_token"));
	e = json_object_get(ai, "expires_in");
	if (appid == NULL || !callback_appid_ok(appid, strlen(appid)) ||
	    !component_token_ok(token) || !component_token_ok(rt) ||
	    !json_is_integer(e) || json_integer_value(e) < 60 ||
	    json_integer_value(e) > 7 * 86400) {
		component_answer(q->done, q->arg, "unavailable", 1, 0, NULL,
		    "malformed api_query_auth reply");
		goto out;
	}
	if (q->expected[0] != '\0' && strcmp(q->expected, appid) != 0)
		log_warnx("%s: the event named %s but the code authorized %s",
		    comp->appid, q->expected, appid);
	if (component_install(comp, appid, rt, token,
	    (int)json_integer_value(e), &code, msg, sizeof msg) != 0) {
		log_warnx("%s: %s", comp->appid, msg);
		component_answer(q->done, q->arg, code, 1, 0, NULL, "%s", msg);
		goto out;
	}
	q->done(q->arg, NULL, q->info_type, appid);
out:
	component_query_free(q);
}

/*
 * A call that needs the component's token, kept so that a removal or a stop
 * answers it; NULL after answering if there is no token or too many calls.
 */
static struct component_query *
component_query_new(struct component *comp, component_done_cb done,
    void *arg)
{
	struct cred *p = comp->cred;
	struct component_query *q;

	if (!cred_usable(p)) {
		component_answer(done, arg, "unavailable", 1, 0, NULL,
		    "%s has no component_access_token yet%s%s", comp->appid,
		    p->last_error[0] != '\0' ? ": " : "", p->last_error);
		return (NULL);
	}
	if (comp->nqueries >= COMPONENT_QUERIES_MAX) {
		component_answer(done, arg, "busy", 1, 0, NULL,
		    "too many authorizations in progress");
		return (NULL);
	}
	q = xcalloc(1, sizeof *q);
	q->comp = comp;
	q->gen = p->gen;
	q->done = done;
	q->arg = arg;
	TAILQ_INSERT_TAIL(&comp->queries, q, entry);
	comp->nqueries++;
	return (q);
}

/* Exchange an authorization code for an authorizer's tokens. */
static void
component_query_start(struct component *comp, const char *code,
    const char *info_type, const char *expected, component_done_cb done,
    void *arg)
{
	struct cred *p = comp->cred;
	struct component_query *q;

	if ((q = component_query_new(comp, done, arg)) == NULL)
		return;
	snprintf(q->info_type, sizeof q->info_type, "%s", info_type);
	snprintf(q->expected, sizeof q->expected, "%s", expected);
	q->call = component_post_token(p, "/cgi-bin/component/api_query_auth",
	    json_pack("{s:s, s:s}", "component_appid", comp->appid,
	    "authorization_code", code), component_query_cb, q);
}

/*
 * Act on an opened event: a ticket is kept (and used at once if the component
 * has no token), an authorization is exchanged for tokens, a revocation marks
 * the authorizer. done runs when the work is done, perhaps before we return.
 */
void
component_event_handle(struct component_conf *cc,
    const struct callback_event *ev, component_done_cb done, void *arg)
{
	struct component *comp;
	const char *aid = ev->authorizer_appid;
	struct cred *a;

	if ((comp = component_find(cc->appid)) == NULL) {
		component_answer(done, arg, "unknown_appid", 0, 0, NULL,
		    "%s is not a running component", cc->appid);
		return;
	}
	log_info("%s: event %s%s%s", comp->appid, ev->info_type,
	    *aid != '\0' ? " for " : "", aid);
	if (strcmp(ev->info_type, "component_verify_ticket") == 0) {
		component_ticket_set(comp, ev->secret);
		done(arg, NULL, ev->info_type, NULL);
	} else if (strcmp(ev->info_type, "authorized") == 0 ||
	    strcmp(ev->info_type, "updateauthorized") == 0) {
		component_query_start(comp, ev->secret, ev->info_type, aid,
		    done, arg);
	} else if (strcmp(ev->info_type, "unauthorized") == 0) {
		a = cred_find(aid);
		if (a != NULL && !a->removed && a->kind == CRED_AUTHORIZER &&
		    a->parent == comp->cred)
			component_revoked(a);
		else
			log_info("%s: %s is not an authorizer here",
			    comp->appid, aid);
		done(arg, NULL, ev->info_type, aid);
	} else {
		log_info("%s: %s events need nothing from wxpushd",
		    comp->appid, ev->info_type);
		done(arg, NULL, ev->info_type, *aid != '\0' ? aid : NULL);
	}
}

/* A stored authorizer, at start: its token if still good, else wait. */
static int
component_load_one(const struct store_authorizer *sa, void *arg)
{
	struct component_load *ld = arg;
	struct component *comp = ld->comp;
	struct cred *a;

	if ((a = cred_find(sa->appid)) != NULL && !a->removed) {
		log_warnx("%s: stored as an authorizer of %s but already used "
		    "here; ignored", sa->appid, comp->appid);
		return (0);
	}
	a = cred_add(sa->appid, CRED_AUTHORIZER);
	a->parent = comp->cred;
	a->component = comp->conf;
	a->refresh_token = xstrdup(sa->refresh_token);
	a->revoked = sa->revoked;
	ld->n++;
	if (a->revoked) {
		ld->revoked++;
		return (0);
	}
	if (sa->refresh_token[0] == '\0') {
		a->cflags |= COMPONENT_REAUTH;
		a->permanent = 1;
		snprintf(a->last_error, sizeof a->last_error, "no refresh "
		    "token stored: needs re-authorization");
		return (0);
	}
	cred_start(a);
	if (a->token == NULL) {
		/* Not now: component_token_ready spreads these. */
		evtimer_del(a->timer);
		a->cflags |= COMPONENT_WAITING;
	}
	return (0);
}

/* A component in the configuration: its credential, ticket and authorizers. */
static void
component_add(struct component_conf *cc)
{
	struct component *comp;
	struct component_load ld;
	struct cred *c;
	struct timespec t0, t1;

	if ((c = cred_find(cc->appid)) != NULL && !c->removed) {
		log_warnx("%s: already used by an authorizer; component not "
		    "started", cc->appid);
		return;
	}
	comp = xcalloc(1, sizeof *comp);
	snprintf(comp->appid, sizeof comp->appid, "%s", cc->appid);
	comp->conf = cc;
	TAILQ_INIT(&comp->queries);
	TAILQ_INSERT_TAIL(&components, comp, entry);
	comp->cred = c = cred_add(cc->appid, CRED_COMPONENT);
	c->component = cc;

	if (store_ticket_load(comp->appid, comp->ticket, sizeof comp->ticket,
	    &comp->ticket_at) != 1) {
		explicit_bzero(comp->ticket, sizeof comp->ticket);
		comp->ticket_at = 0;
	} else if (!component_ticket_valid(comp))
		log_info("%s: the stored verify ticket is too old",
		    comp->appid);
	cred_start(c);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&ld, 0, sizeof ld);
	ld.comp = comp;
	if (store_authorizer_foreach(comp->appid, component_load_one,
	    &ld) == -1)
		log_warnx("%s: could not load all authorizers", comp->appid);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("%s: component with %u authorizer%s (%u revoked) loaded in "
	    "%ld ms", comp->appid, ld.n, ld.n == 1 ? "" : "s", ld.revoked,
	    (long)((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	if (cred_usable(c))
		component_token_ready(c);
}

/* Stop a component's own calls and answer its pending authorizations. */
static void
component_free(struct component *comp, const char *code, const char *why)
{
	struct component_query *q;

	if (comp->push_call != NULL)
		upstream_cancel(comp->push_call);
	if (comp->list_call != NULL)
		upstream_cancel(comp->list_call);
	while ((q = TAILQ_FIRST(&comp->queries)) != NULL) {
		component_answer(q->done, q->arg, code, 1, 0, NULL, "%s", why);
		component_query_free(q);
	}
	TAILQ_REMOVE(&components, comp, entry);
	explicit_bzero(comp->ticket, sizeof comp->ticket);
	free(comp);
}

/* A component left the configuration: it and its authorizers go. */
static void
component_remove(struct component *comp)
{
	struct cred *c = comp->cred, *a;

	log_info("%s: component removed", comp->appid);
	TAILQ_FOREACH(a, &cred_all, entry) {
		if (a->kind != CRED_AUTHORIZER || a->parent != c || a->removed)
			continue;
		cred_remove(a);
		a->parent = NULL;
		a->component = NULL;
	}
	component_free(comp, "unknown_appid", "the component was removed from "
	    "the configuration");
	cred_remove(c);
	c->component = NULL;
}

/*
 * Bring the components in line with conf (at start and on SIGHUP): new ones
 * start with their stored ticket, token and authorizers, kept ones and their
 * authorizers take the new settings, removed ones go with their authorizers.
 */
void
component_reconcile(struct config *conf)
{
	struct component *comp, *next;
	struct component_conf *cc;
	struct cred *a;

	TAILQ_FOREACH_SAFE(comp, &components, entry, next) {
		if ((cc = config_find_component(conf, comp->appid)) == NULL) {
			component_remove(comp);
			continue;
		}
		comp->conf = cc;
		comp->cred->component = cc;
	}
	TAILQ_FOREACH(a, &cred_all, entry) {
		if (a->kind == CRED_AUTHORIZER && !a->removed &&
		    a->parent != NULL)
			a->component = a->parent->component;
	}
	TAILQ_FOREACH(cc, &conf->components, entry) {
		if (component_find(cc->appid) == NULL)
			component_add(cc);
	}
}

/* At exit, before the credentials go: answer what is pending, free the rest. */
void
component_shutdown(void)
{
	struct component *comp;

	while ((comp = TAILQ_FIRST(&components)) != NULL)
		component_free(comp, "unavailable", "wxpushd is stopping");
}

/* A line for status: a component's ticket, an authorizer's trouble. */
const char *
component_detail(const struct cred *c)
{
	static char buf[96];
	struct component *comp;
	struct tm tm;
	char hhmm[8] = "";
	time_t now = time(NULL);

	if (c->kind == CRED_AUTHORIZER) {
		if (c->revoked)
			return ("revoked");
		if (c->cflags & COMPONENT_REAUTH)
			return ("needs re-authorization");
		if (c->cflags & COMPONENT_LISTED)
			return ("refresh token refused (61023): checking "
			    "api_get_authorizer_list");
		if (c->cflags & COMPONENT_RTWAIT)
			return ("refresh token refused (61023): checking "
			    "Redis");
		if ((c->cflags & COMPONENT_WAITING) && !cred_usable(c))
			return ("waiting for the component_access_token");
		return ("");
	}
	if (c->kind != CRED_COMPONENT || (comp = component_by_cred(c)) == NULL)
		return ("");
	if (component_ticket_valid(comp)) {
		snprintf(buf, sizeof buf, "verify ticket %lld min old",
		    (long long)(now - comp->ticket_at) / 60);
		return (buf);
	}
	if (comp->push_at != 0 && localtime_r(&comp->push_at, &tm) != NULL)
		strftime(hhmm, sizeof hhmm, "%H:%M", &tm);
	snprintf(buf, sizeof buf, "no verify ticket%s%s%s", hhmm[0] != '\0' ?
	    " (push requested " : "", hhmm, hhmm[0] != '\0' ? ")" : "");
	return (buf);
}

/* Seconds since component c's verify ticket arrived; -1 if it has none. */
int64_t
component_ticket_age(const struct cred *c)
{
	struct component *comp;

	if (c->kind != CRED_COMPONENT ||
	    (comp = component_by_cred(c)) == NULL || comp->ticket[0] == '\0')
		return (-1);
	return ((int64_t)(time(NULL) - comp->ticket_at));
}

/* A param's type; strings unless said otherwise. */
#define COMPONENT_PARAM_STR	0
#define COMPONENT_PARAM_INT	1	/* an integer from 1 to max */
#define COMPONENT_PARAM_BOOL	2

/* A method's params: each required unless optional, nothing else allowed. */
struct component_param {
	const char	*name;
	size_t		 max;
	int		 bin;		/* MessagePack bin accepted too */
	const char	*ptr;		/* out */
	size_t		 len;
	int		 type;
	int		 optional;
	int		 set;		/* out: present */
	int64_t		 num;		/* out: an int or a bool */
};

/* Check params against p[0..n); 0, or -1 after answering invalid_request. */
static int
component_params(struct request *req, const msgpack_object *params,
    struct component_param *p, size_t n)
{
	const msgpack_object_kv *kv;
	const msgpack_object *v;
	const char *names[8];
	uint32_t i;
	size_t j;

	if (params == NULL || params->type != MSGPACK_OBJECT_MAP) {
		rpc_reply_errorx(req, "invalid_request", 0, "params", "params "
		    "must be a map with %s and the other fields", p[0].name);
		return (-1);
	}
	for (j = 0; j < n && j < COMPONENT_NITEMS(names); j++)
		names[j] = p[j].name;
	if (rpc_params_check(req, params, names, j) != 0)
		return (-1);
	for (i = 0; i < params->via.map.size; i++) {
		kv = &params->via.map.ptr[i];
		for (j = 0; j < n; j++) {
			if (rpc_str_eq(&kv->key, p[j].name))
				break;
		}
		v = &kv->val;
		/* rpc_params_check let only known keys through; nil: absent. */
		if (j == n || (v->type == MSGPACK_OBJECT_NIL && p[j].optional))
			continue;
		p[j].set = 1;
		if (p[j].type == COMPONENT_PARAM_INT) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    v->via.u64 < 1 || v->via.u64 > p[j].max) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    p[j].name, "%s must be an integer from 1 "
				    "to %zu", p[j].name, p[j].max);
				return (-1);
			}
			p[j].num = (int64_t)v->via.u64;
			continue;
		}
		if (p[j].type == COMPONENT_PARAM_BOOL) {
			if (v->type != MSGPACK_OBJECT_BOOLEAN) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    p[j].name, "%s must be true or false",
				    p[j].name);
				return (-1);
			}
			p[j].num = v->via.boolean;
			continue;
		}
		if ((v->type != MSGPACK_OBJECT_STR && !(p[j].bin &&
		    v->type == MSGPACK_OBJECT_BIN)) || v->via.str.size == 0 ||
		    v->via.str.size > p[j].max) {
			rpc_reply_errorx(req, "invalid_request", 0, p[j].name,
			    "%s must be a string of 1 to %zu bytes", p[j].name,
			    p[j].max);
			return (-1);
		}
		p[j].ptr = v->via.str.ptr;
		p[j].len = v->via.str.size;
	}
	for (j = 0; j < n; j++) {
		if (!p[j].set && !p[j].optional) {
			rpc_reply_errorx(req, "invalid_request", 0, p[j].name,
			    "%s is missing", p[j].name);
			return (-1);
		}
	}
	return (0);
}

/* A param as a C string, if it is printable without spaces; 0 or -1. */
static int
component_param_word(const struct component_param *p, char *buf, size_t len)
{
	size_t i;

	if (p->len >= len)
		return (-1);
	for (i = 0; i < p->len; i++) {
		if (p->ptr[i] <= 0x20 || p->ptr[i] > 0x7e)
			return (-1);
	}
	memcpy(buf, p->ptr, p->len);
	buf[p->len] = '\0';
	return (0);
}

/*
 * The configured component a method names, if the peer may act for it;
 * NULL after answering.
 */
static struct component_conf *
component_method_find(struct request *req, const struct component_param *p,
    const char *method)
{
	struct component_conf *cc;
	char appid[WX_APPID_MAX + 1];

	if (!callback_appid_ok(p->ptr, p->len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "component_appid",
		    "component_appid must be 1 to %d of A-Z a-z 0-9 _ -",
		    WX_APPID_MAX);
		return (NULL);
	}
	memcpy(appid, p->ptr, p->len);
	appid[p->len] = '\0';
	if ((cc = config_find_component(wx_conf, appid)) == NULL ||
	    component_find(appid) == NULL) {
		rpc_reply_errorx(req, "unknown_appid", 0, "component_appid",
		    "%s is not a configured component", appid);
		return (NULL);
	}
	if (req->client == NULL ||
	    !acl_allows(&cc->allow, &req->client->peer)) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client != NULL ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_INFO, "component method refused", peer,
		    "%s: %s refused to %s", appid, method, peer);
		rpc_reply_errorx(req, "forbidden", 0, "component_appid",
		    "this user may not act for this component");
		return (NULL);
	}
	return (cc);
}

/* component_event's answer: the contract's result map, or the error. */
static void
component_event_done(void *arg, const struct rpc_error *e,
    const char *info_type, const char *authorizer_appid)
{
	struct request *req = arg;
	msgpack_packer *pk;
	int aid = authorizer_appid != NULL && *authorizer_appid != '\0';

	if (e != NULL) {
		rpc_reply_error(req, e);
		return;
	}
	pk = rpc_reply_begin(req, 2 + aid);
	rpc_pack_kv_str(pk, "reply", "success");
	rpc_pack_kv_str(pk, "info_type", info_type);
	if (aid)
		rpc_pack_kv_str(pk, "authorizer_appid", authorizer_appid);
	rpc_reply_end(req);
}

/* component_event {component_appid, msg_signature, timestamp, nonce, body}. */
void
component_event_method(struct request *req, const msgpack_object *params)
{
	struct component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "msg_signature", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "timestamp", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "nonce", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "body", CALLBACK_BODY_MAX, 1, NULL, 0, 0, 0, 0, 0 },
	};
	struct component_conf *cc;
	struct callback_event ev;
	char word[3][65], *cause;
	const char *field;
	size_t i;

	if (component_params(req, params, p, COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = component_method_find(req, &p[0], "component_event")) == NULL)
		return;
	for (i = 0; i < 3; i++) {
		if (component_param_word(&p[1 + i], word[i],
		    sizeof word[i]) != 0) {
			rpc_reply_errorx(req, "invalid_request", 0,
			    p[1 + i].name, "%s must be printable without "
			    "spaces", p[1 + i].name);
			return;
		}
	}
	if (callback_event_open(cc, word[0], word[1], word[2], p[4].ptr,
	    p[4].len, &ev, &field, &cause) != 0) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client != NULL ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_WARN, "component_event refused", peer,
		    "%s: component_event refused: %s", cc->appid, cause);
		rpc_reply_errorx(req, "invalid_request", 0, field, "%s", cause);
		free(cause);
		return;
	}
	component_event_handle(cc, &ev, component_event_done, req);
	callback_event_clear(&ev);
}

/* authorize's answer: {authorizer_appid}, or the error. */
static void
component_authorize_done(void *arg, const struct rpc_error *e,
    const char *info_type, const char *authorizer_appid)
{
	struct request *req = arg;
	msgpack_packer *pk;

	(void)info_type;
	if (e != NULL) {
		rpc_reply_error(req, e);
		return;
	}
	pk = rpc_reply_begin(req, 1);
	rpc_pack_kv_str(pk, "authorizer_appid", authorizer_appid);
	rpc_reply_end(req);
}

/* authorize {component_appid, authorization_code}: api_query_auth. */
void
component_authorize_method(struct request *req, const msgpack_object *params)
{
	struct component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "authorization_code", WX_TOKEN_MAX, 0, NULL, 0, 0, 0, 0, 0 },
	};
	struct component_conf *cc;
	char code[WX_TOKEN_MAX + 1];

	if (component_params(req, params, p, COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = component_method_find(req, &p[0], "authorize")) == NULL)
		return;
	if (component_param_word(&p[1], code, sizeof code) != 0) {
		rpc_reply_errorx(req, "invalid_request", 0,
		    "authorization_code", "authorization_code must be "
		    "printable without spaces");
		return;
	}
	component_query_start(component_find(cc->appid), code, "authorize", "",
	    component_authorize_done, req);
	explicit_bzero(code, sizeof code);
}

/*
 * Append name=value to the URL in buf, value percent-encoded: everything but
 * RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~) becomes %XX.
 */
static void
component_url_add(char *buf, size_t len, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *v;
	size_t n = strlen(buf);

	n += snprintf(buf + n, len - n, "%s%s=", strchr(buf, '?') != NULL ?
	    "&" : "?", name);
	for (v = (const unsigned char *)value; *v != '\0' && n + 4 < len; v++) {
		if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		    (*v >= '0' && *v <= '9') || *v == '-' || *v == '.' ||
		    *v == '_' || *v == '~')
			buf[n++] = (char)*v;
		else {
			buf[n++] = '%';
			buf[n++] = hex[*v >> 4];
			buf[n++] = hex[*v & 0xf];
		}
	}
	buf[n] = '\0';
}

/* The authorization page for a pre_auth_code, desktop or mobile, in buf. */
static void
component_preauth_url(const struct component *comp,
    const struct component_preauth *pa, const char *code, char *buf,
    size_t len)
{
	char num[16];
	size_t n;
	int auth_type = pa->auth_type;

	if (pa->mobile) {
		snprintf(buf, len, "https://open.weixin.qq.com/wxaopen/safe/"
		    "bindcomponent?action=bindcomponent&no_scan=1");
		if (auth_type == 0)
			auth_type = 3;	/* the mobile page wants one: both */
	} else
		snprintf(buf, len, "https://mp.weixin.qq.com/cgi-bin/"
		    "componentloginpage");
	component_url_add(buf, len, "component_appid", comp->appid);
	component_url_add(buf, len, "pre_auth_code", code);
	component_url_add(buf, len, "redirect_uri", pa->redirect_uri);
	if (auth_type != 0) {
		snprintf(num, sizeof num, "%d", auth_type);
		component_url_add(buf, len, "auth_type", num);
	}
	if (pa->biz_appid[0] != '\0')
		component_url_add(buf, len, "biz_appid", pa->biz_appid);
	n = strlen(buf);
	if (pa->mobile)
		snprintf(buf + n, len - n, "#wechat_redirect");
}

/* api_create_preauthcode's answer: the code and its page, or the error. */
static void
component_preauth_cb(const struct upstream_reply *r, void *arg)
{
	struct component_query *q = arg;
	struct component *comp = q->comp;
	struct request *req = q->preauth->req;
	msgpack_packer *pk;
	json_t *e;
	const char *code;
	char url[COMPONENT_URL_MAX];
	long errcode = component_errcode(r);

	q->call = NULL;
	if (component_query_refused(q, r, errcode, "api_create_preauthcode",
	    "WeChat refused api_create_preauthcode") == -1)
		goto out;
	code = json_string_value(json_object_get(r->json, "pre_auth_code"));
	e = json_object_get(r->json, "expires_in");
	if (!component_token_ok(code) || !json_is_integer(e) ||
	    json_integer_value(e) < 1 ||
	    json_integer_value(e) > COMPONENT_PREAUTH_LIFE) {
		component_answer(q->done, q->arg, "unavailable", 1, 0, NULL,
		    "malformed api_create_preauthcode reply");
		goto out;
	}
	component_preauth_url(comp, q->preauth, code, url, sizeof url);
	log_debug("%s: pre_auth_code issued", comp->appid);
	pk = rpc_reply_begin(req, 3);
	rpc_pack_kv_str(pk, "pre_auth_code", code);
	rpc_pack_kv_int(pk, "expires_in", json_integer_value(e));
	rpc_pack_kv_str(pk, "url", url);
	rpc_reply_end(req);
	explicit_bzero(url, sizeof url);
out:
	component_query_free(q);
}

/* Whether s is an http or https URL with a host, without spaces or controls. */
static int
component_redirect_ok(const char *s, size_t len)
{
	size_t i, n;

	if (len > 8 && strncmp(s, "https://", 8) == 0)
		n = 8;
	else if (len > 7 && strncmp(s, "http://", 7) == 0)
		n = 7;
	else
		return (0);
	if (s[n] == '/' || s[n] == '?' || s[n] == '#')
		return (0);
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return (0);
	}
	return (1);
}

/*
 * preauth {component_appid, redirect_uri, auth_type?, biz_appid?, mobile?}:
 * api_create_preauthcode, answered with the code and the authorization page
 * to send the merchant to.
 */
void
component_preauth_method(struct request *req, const msgpack_object *params)
{
	struct component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "redirect_uri", COMPONENT_REDIRECT_MAX, 0, NULL, 0, 0, 0, 0,
		    0 },
		{ "auth_type", 3, 0, NULL, 0, COMPONENT_PARAM_INT, 1, 0, 0 },
		{ "biz_appid", WX_APPID_MAX, 0, NULL, 0, 0, 1, 0, 0 },
		{ "mobile", 0, 0, NULL, 0, COMPONENT_PARAM_BOOL, 1, 0, 0 },
	};
	struct component_conf *cc;
	struct component *comp;
	struct component_preauth *pa;
	struct component_query *q;

	if (component_params(req, params, p, COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = component_method_find(req, &p[0], "preauth")) == NULL)
		return;
	if (!component_redirect_ok(p[1].ptr, p[1].len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "redirect_uri",
		    "redirect_uri must be an http:// or https:// URL with a "
		    "host, without spaces or control characters");
		return;
	}
	if (p[3].set && !callback_appid_ok(p[3].ptr, p[3].len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "biz_appid",
		    "biz_appid must be 1 to %d of A-Z a-z 0-9 _ -",
		    WX_APPID_MAX);
		return;
	}
	pa = xcalloc(1, sizeof *pa);
	pa->req = req;
	memcpy(pa->redirect_uri, p[1].ptr, p[1].len);
	if (p[3].set)
		memcpy(pa->biz_appid, p[3].ptr, p[3].len);
	pa->auth_type = p[2].set ? (int)p[2].num : 0;
	pa->mobile = p[4].set && p[4].num;

	comp = component_find(cc->appid);
	if ((q = component_query_new(comp, component_authorize_done,
	    req)) == NULL) {
		free(pa);
		return;
	}
	q->preauth = pa;
	q->call = component_post_token(comp->cred, "/cgi-bin/component/"
	    "api_create_preauthcode", json_pack("{s:s}", "component_appid",
	    comp->appid), component_preauth_cb, q);
}
