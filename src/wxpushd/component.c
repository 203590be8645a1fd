/*
 * Third-party platforms (components): the verify ticket WeChat pushes, the
 * component_access_token it buys (a token source), the calls made with that
 * token for authorizations (api_query_auth, api_create_preauthcode), and what
 * component events do. The authorizers themselves are authorizer.c's; the
 * component methods are method-component.c's.
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
#define COMPONENT_QUERIES_MAX	256	/* api_query_auth calls in flight */
#define COMPONENT_ERRMSG_MAX	200
#define COMPONENT_PREAUTH_LIFE	86400	/* longest expires_in believed */

struct component_query;

/* A running platform. */
struct component {
	char			 appid[WX_APPID_MAX + 1];
	struct cred		*cred;
	struct component_conf	*conf;
	struct authorizer_set	*authorizers;
	char			 ticket[WX_TOKEN_MAX + 1];	/* "" if none; wiped */
	time_t			 ticket_at;
	uint64_t		 ticket_seq;	/* bumped with every ticket */
	uint64_t		 ticket_used;	/* ticket_seq of the one being used */
	time_t			 ticket_bad_at;	/* received_at of one WeChat refused */
	time_t			 push_at;	/* last api_start_push_ticket, 0 never */
	struct upstream_call	*push_call;

	TAILQ_HEAD(, component_query) queries;
	int			 nqueries;
	TAILQ_ENTRY(component)	 entry;
};
static TAILQ_HEAD(, component) components = TAILQ_HEAD_INITIALIZER(components);

/* A call with the component's token for a caller: authorize, event, preauth. */
struct component_query {
	struct component	*comp;
	struct upstream_call	*call;
	uint64_t		 gen;		/* the component token it used */
	char			 info_type[CALLBACK_INFO_TYPE_MAX + 1];
	char			 expected[WX_APPID_MAX + 1];	/* the event's, or "" */
	component_done_cb	 done;
	component_preauth_cb	 preauth;	/* api_create_preauthcode */
	void			*arg;
	TAILQ_ENTRY(component_query) entry;
};

static enum cred_fetch	component_fetch(struct cred *, void *, int,
			    struct upstream_call **);
static const struct acl	*component_acl(void *);
static void		component_ready(struct cred *, void *);
static void		component_redis_ticket(const char *, const char *,
			    time_t);
static void		component_redis_authorizer(const char *, const char *,
			    const char *, int, time_t);
static void		component_redis_connected(void);

static const struct cred_source component_source = {
	.name = "component",
	.endpoint = WXAPI_COMPONENT_TOKEN,
	.token_field = "component_access_token",
	.shared = 0,
	.fetch = component_fetch,
	.acl = component_acl,
	.ready = component_ready,
};

static const struct redis_handlers component_redis = {
	.ticket = component_redis_ticket,
	.authorizer = component_redis_authorizer,
	.connected = component_redis_connected,
};

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

/* Whether appid is a running component. */
int
component_running(const char *appid)
{
	return (component_find(appid) != NULL);
}

static const struct acl *
component_acl(void *data)
{
	struct component *comp = data;

	return (comp != NULL ? &comp->conf->allow : NULL);
}

/* The component behind credential c, if it is one and still running. */
static struct component *
component_of(const struct cred *c)
{
	if (cred_source(c) != &component_source)
		return (NULL);
	return (cred_data(c));
}

/* Answer done with an error; returns -1 for the caller to return. */
int
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
	return (-1);
}

/* Whether the component holds a verify ticket younger than 12 hours. */
static int
component_ticket_valid(const struct component *comp)
{
	return (comp->ticket[0] != '\0' &&
	    clock_now() - comp->ticket_at < COMPONENT_TICKET_LIFE);
}

/* WeChat's answer to a push request: logged; the ticket comes as an event. */
static void
component_push_cb(const struct upstream_reply *r, void *arg)
{
	struct component *comp = arg;
	long errcode = wxapi_errcode(r);

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
	time_t now = clock_now();

	if (comp->push_call != NULL || (comp->push_at != 0 &&
	    now - comp->push_at < COMPONENT_PUSH_SPACING))
		return;
	comp->push_at = now;
	log_info("%s: no valid component_verify_ticket: asking for a push",
	    comp->appid);
	comp->push_call = wxapi_post_json(WXAPI_START_PUSH_TICKET, NULL,
	    json_pack("{s:s, s:s}", "component_appid", comp->appid,
	    "component_secret", comp->conf->secret), component_push_cb, comp);
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
	if (!cred_refreshing(c) && (!cred_usable(c) || cred_failures(c) > 0))
		cred_refresh(c, 0);
}

/* A ticket was pushed to us: keep it, and share it with the other hosts. */
static void
component_ticket_set(struct component *comp, const char *ticket)
{
	time_t now = clock_now();

	component_ticket_keep(comp, ticket, now);
	redis_ticket_put(comp->appid, ticket, now);
}

/*
 * A ticket another host received, from Redis: kept like one pushed to us if
 * it is later than ours and not one WeChat refused.
 */
static void
component_redis_ticket(const char *appid, const char *ticket, time_t at)
{
	struct component *comp;
	time_t now = clock_now();

	if ((comp = component_find(appid)) == NULL ||
	    !valid_word(ticket, strlen(ticket), WX_TOKEN_MAX) ||
	    at < comp->ticket_at || strcmp(ticket, comp->ticket) == 0 ||
	    at <= comp->ticket_bad_at || now - at >= COMPONENT_TICKET_LIFE)
		return;
	if (at > now)
		at = now;	/* another host's clock is ahead */
	log_info("%s: verify ticket from another host (through Redis)",
	    comp->appid);
	component_ticket_keep(comp, ticket, at);
}

/*
 * An authorizer's refresh token from Redis (component NULL: none there):
 * for the set the authorizer runs in here, else the set it names.
 */
static void
component_redis_authorizer(const char *appid, const char *component,
    const char *rt, int revoked, time_t at)
{
	struct component *comp = NULL;
	struct cred *c;
	const char *owner;

	if ((c = cred_find(appid)) != NULL && !cred_removed(c) &&
	    (owner = authorizer_component_appid(c)) != NULL)
		comp = component_find(owner);
	else if (component != NULL)
		comp = component_find(component);
	if (comp != NULL)
		authorizer_shared(comp->authorizers, appid, component, rt,
		    revoked, at);
}

/* Redis is (back) up: share our valid tickets and refresh tokens. */
static void
component_redis_connected(void)
{
	struct component *comp;

	TAILQ_FOREACH(comp, &components, entry) {
		if (component_ticket_valid(comp))
			redis_ticket_put(comp->appid, comp->ticket,
			    comp->ticket_at);
		else
			redis_ticket_get(comp->appid);
		authorizer_set_sync(comp->authorizers);
	}
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
	struct component *comp = arg;
	struct cred *c = comp->cred;
	int retry_after;

	cred_fetch_done(c);
	if (wxapi_classify(WXAPI_COMPONENT_TOKEN, wxapi_errcode(r),
	    &retry_after) == WXAPI_TICKET_REFUSED) {
		if (comp->ticket_seq != comp->ticket_used &&
		    component_ticket_valid(comp)) {
			/* A newer ticket came while this one was in use. */
			cred_refresh(c, 0);
			return;
		}
		component_ticket_forget(comp);
		component_push(comp);
		cred_fetch_failed(c, wxapi_errcode(r), "component_verify_ticket "
		    "expired or invalid; push requested", 0);
		return;
	}
	cred_token_reply(c, r);
}

/* Ask for the component_access_token, which needs a valid verify ticket. */
static enum cred_fetch
component_fetch(struct cred *c, void *data, int force,
    struct upstream_call **call)
{
	struct component *comp = data;

	(void)force;	/* no force_refresh for these */
	if (!component_ticket_valid(comp)) {
		redis_ticket_get(comp->appid);	/* another host may have one */
		component_push(comp);
		cred_fetch_failed(c, 0, "no valid component_verify_ticket; "
		    "push requested", 0);
		return (CRED_FETCH_NONE);
	}
	comp->ticket_used = comp->ticket_seq;
	*call = wxapi_post_json(WXAPI_COMPONENT_TOKEN, NULL,
	    json_pack("{s:s, s:s, s:s}", "component_appid", comp->appid,
	    "component_appsecret", comp->conf->secret,
	    "component_verify_ticket", comp->ticket), component_token_cb, comp);
	log_debug("%s: fetching component_access_token", comp->appid);
	return (CRED_FETCH_STARTED);
}

/* The component has a new token: its waiting authorizers may start. */
static void
component_ready(struct cred *c, void *data)
{
	struct component *comp = data;

	(void)c;
	authorizer_set_ready(comp->authorizers);
}

/* Forget a query, cancelling it if still in flight. */
static void
component_query_free(struct component_query *q)
{
	TAILQ_REMOVE(&q->comp->queries, q, entry);
	q->comp->nqueries--;
	if (q->call != NULL)
		upstream_cancel(q->call);
	free(q);
}

/* Answer q's caller with an error: its preauth callback, or done. */
static void __attribute__((format(printf, 5, 6)))
component_query_fail(struct component_query *q, const char *code,
    int retryable, long errcode, const char *fmt, ...)
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
	if (strcmp(code, "unknown_appid") == 0)
		e.field = "component_appid";
	if (q->preauth != NULL)
		q->preauth(q->arg, &e, NULL, 0);
	else
		q->done(q->arg, &e, NULL, NULL);
}

/*
 * What every query on the component's behalf does with a failure: WeChat
 * unreachable, the component token refused (compare-and-refresh it), or
 * another refusal. -1 once q has been answered; 0 for a success to read.
 */
static int
component_query_refused(struct component_query *q, enum wxapi_ep ep,
    const struct upstream_reply *r, const char *refusal)
{
	char errmsg[COMPONENT_ERRMSG_MAX + 1];
	struct rpc_error e;
	long errcode = wxapi_errcode(r);
	int retry_after;

	if (!r->ok) {
		component_query_fail(q, "unavailable", 1, 0, "WeChat is "
		    "unreachable (%s)", r->error);
		return (-1);
	}
	switch (wxapi_classify(ep, errcode, &retry_after)) {
	case WXAPI_OK:
		return (0);
	case WXAPI_TOKEN_REFUSED:
		cred_token_failed(q->comp->cred, q->gen, errcode);
		component_query_fail(q, "unavailable", 1, 0, "the "
		    "component_access_token was refused (errcode %ld); it is "
		    "being refreshed, try again", errcode);
		return (-1);
	default:
		break;
	}
	wxapi_errmsg(r->json, errmsg, sizeof errmsg);
	log_info("%s: %s refused (errcode %ld)", q->comp->appid,
	    wxapi_endpoint(ep)->name, errcode);
	memset(&e, 0, sizeof e);
	e.code = "wechat";
	e.message = refusal;
	e.retryable = errcode == -1;
	e.errcode = errcode;
	e.errmsg = errmsg;
	if (q->preauth != NULL)
		q->preauth(q->arg, &e, NULL, 0);
	else
		q->done(q->arg, &e, NULL, NULL);
	return (-1);
}

/* api_query_auth's answer: keep the authorizer, then say done. */
static void
component_query_cb(const struct upstream_reply *r, void *arg)
{
	struct component_query *q = arg;
	struct component *comp = q->comp;
	json_t *ai, *e;
	const char *appid, *token, *rt, *code;
	char msg[160];

	q->call = NULL;
	if (component_query_refused(q, WXAPI_QUERY_AUTH, r,
	    wxapi_errcode(r) == 61010 ? "the authorization code is expired, "
	    "used or invalid (61010)" : "WeChat refused api_query_auth") == -1)
		goto out;
	ai = json_object_get(r->json, "authorization_info");
	appid = json_string_value(json_object_get(ai, "authorizer_appid"));
	token = json_string_value(json_object_get(ai,
	    "authorizer_access_token"));
	rt = json_string_value(json_object_get(ai, "authorizer_refresh_token"));
	e = json_object_get(ai, "expires_in");
	if (!valid_appid_str(appid) || !valid_token_str(token) ||
	    rt == NULL || !valid_word(rt, strlen(rt), WX_TOKEN_MAX) ||
	    !json_is_integer(e) || json_integer_value(e) < 60 ||
	    json_integer_value(e) > 7 * 86400) {
		component_query_fail(q, "unavailable", 1, 0, "malformed "
		    "api_query_auth reply");
		goto out;
	}
	if (q->expected[0] != '\0' && strcmp(q->expected, appid) != 0)
		log_warnx("%s: the event named %s but the code authorized %s",
		    comp->appid, q->expected, appid);
	if (authorizer_install(comp->authorizers, appid, rt, token,
	    (int)json_integer_value(e), &code, msg, sizeof msg) != 0) {
		log_warnx("%s: %s", comp->appid, msg);
		component_query_fail(q, code, 1, 0, "%s", msg);
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
    component_preauth_cb preauth, void *arg)
{
	struct cred *p = comp->cred;
	struct component_query *q;

	q = xcalloc(1, sizeof *q);
	q->comp = comp;
	q->gen = cred_gen(p);
	q->done = done;
	q->preauth = preauth;
	q->arg = arg;
	if (!cred_usable(p)) {
		component_query_fail(q, "unavailable", 1, 0, "%s has no "
		    "component_access_token yet%s%s", comp->appid,
		    cred_last_error(p)[0] != '\0' ? ": " : "",
		    cred_last_error(p));
		free(q);
		return (NULL);
	}
	if (comp->nqueries >= COMPONENT_QUERIES_MAX) {
		component_query_fail(q, "busy", 1, 0, "too many authorizations "
		    "in progress");
		free(q);
		return (NULL);
	}
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
	struct component_query *q;

	if ((q = component_query_new(comp, done, NULL, arg)) == NULL)
		return;
	snprintf(q->info_type, sizeof q->info_type, "%s", info_type);
	snprintf(q->expected, sizeof q->expected, "%s", expected);
	q->call = wxapi_post_json(WXAPI_QUERY_AUTH, cred_token(comp->cred),
	    json_pack("{s:s, s:s}", "component_appid", comp->appid,
	    "authorization_code", code), component_query_cb, q);
}

/* The authorize method: exchange code for the tokens of an authorizer. */
void
component_authorize(const char *appid, const char *code,
    component_done_cb done, void *arg)
{
	struct component *comp;

	if ((comp = component_find(appid)) == NULL) {
		component_answer(done, arg, "unknown_appid", 0, 0, NULL,
		    "%s is not a running component", appid);
		return;
	}
	component_query_start(comp, code, "authorize", "", done, arg);
}

/* api_create_preauthcode's answer: the code, or the error. */
static void
component_preauth_reply_cb(const struct upstream_reply *r, void *arg)
{
	struct component_query *q = arg;
	json_t *e;
	const char *code;

	q->call = NULL;
	if (component_query_refused(q, WXAPI_CREATE_PREAUTHCODE, r,
	    "WeChat refused api_create_preauthcode") == -1)
		goto out;
	code = json_string_value(json_object_get(r->json, "pre_auth_code"));
	e = json_object_get(r->json, "expires_in");
	if (code == NULL || !valid_word(code, strlen(code), WX_TOKEN_MAX) ||
	    !json_is_integer(e) || json_integer_value(e) < 1 ||
	    json_integer_value(e) > COMPONENT_PREAUTH_LIFE) {
		component_query_fail(q, "unavailable", 1, 0, "malformed "
		    "api_create_preauthcode reply");
		goto out;
	}
	log_debug("%s: pre_auth_code issued", q->comp->appid);
	q->preauth(q->arg, NULL, code, (int)json_integer_value(e));
out:
	component_query_free(q);
}

/* The preauth method: a pre_auth_code for the authorization page. */
void
component_preauth(const char *appid, component_preauth_cb cb, void *arg)
{
	struct component *comp;
	struct component_query *q;

	if ((comp = component_find(appid)) == NULL) {
		struct component_query tmp = { .preauth = cb, .arg = arg };

		component_query_fail(&tmp, "unknown_appid", 0, 0, "%s is not "
		    "a running component", appid);
		return;
	}
	if ((q = component_query_new(comp, NULL, cb, arg)) == NULL)
		return;
	q->call = wxapi_post_json(WXAPI_CREATE_PREAUTHCODE,
	    cred_token(comp->cred), json_pack("{s:s}", "component_appid",
	    comp->appid), component_preauth_reply_cb, q);
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
		authorizer_unauthorized(comp->authorizers, aid);
		done(arg, NULL, ev->info_type, aid);
	} else {
		log_info("%s: %s events need nothing from wxpushd",
		    comp->appid, ev->info_type);
		done(arg, NULL, ev->info_type, *aid != '\0' ? aid : NULL);
	}
}

/* A component in the configuration: its credential, ticket and authorizers. */
static void
component_add(struct component_conf *cc)
{
	struct component *comp;
	struct cred *c;

	if ((c = cred_find(cc->appid)) != NULL && !cred_removed(c)) {
		log_warnx("%s: already used by an authorizer; component not "
		    "started", cc->appid);
		return;
	}
	comp = xcalloc(1, sizeof *comp);
	snprintf(comp->appid, sizeof comp->appid, "%s", cc->appid);
	comp->conf = cc;
	TAILQ_INIT(&comp->queries);
	TAILQ_INSERT_TAIL(&components, comp, entry);
	comp->cred = c = cred_add(cc->appid, CRED_COMPONENT, &component_source,
	    comp);
	comp->authorizers = authorizer_set_new(c, cc);

	if (store_ticket_load(comp->appid, comp->ticket, sizeof comp->ticket,
	    &comp->ticket_at) != 1) {
		explicit_bzero(comp->ticket, sizeof comp->ticket);
		comp->ticket_at = 0;
	} else if (!component_ticket_valid(comp))
		log_info("%s: the stored verify ticket is too old",
		    comp->appid);
	cred_start(c, 1);
	authorizer_set_load(comp->authorizers);
	if (cred_usable(c))
		authorizer_set_ready(comp->authorizers);
}

/* Stop a component's own calls and answer its pending queries. */
static void
component_free(struct component *comp, const char *code, const char *why)
{
	struct component_query *q;

	if (comp->push_call != NULL)
		upstream_cancel(comp->push_call);
	while ((q = TAILQ_FIRST(&comp->queries)) != NULL) {
		component_query_fail(q, code, 1, 0, "%s", why);
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
	log_info("%s: component removed", comp->appid);
	authorizer_set_free(comp->authorizers, 0);
	comp->authorizers = NULL;
	cred_remove(comp->cred);
	component_free(comp, "unknown_appid", "the component was removed from "
	    "the configuration");
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

	TAILQ_FOREACH_SAFE(comp, &components, entry, next) {
		if ((cc = config_find_component(conf, comp->appid)) == NULL) {
			component_remove(comp);
			continue;
		}
		comp->conf = cc;
		authorizer_set_configure(comp->authorizers, cc);
	}
	TAILQ_FOREACH(cc, &conf->components, entry) {
		if (component_find(cc->appid) == NULL)
			component_add(cc);
	}
}

/* Hear from Redis (redis.c calls no component function by name). */
void
component_init(void)
{
	redis_set_handlers(&component_redis);
}

/* At exit, before the credentials go: answer what is pending, free the rest. */
void
component_shutdown(void)
{
	struct component *comp;

	while ((comp = TAILQ_FIRST(&components)) != NULL) {
		authorizer_set_free(comp->authorizers, 1);
		cred_set_data(comp->cred, NULL);	/* cred.c saves it */
		component_free(comp, "unavailable", "wxpushd is stopping");
	}
}

/* A line for status: a component's ticket, an authorizer's trouble. */
const char *
component_detail(const struct cred *c)
{
	static char buf[96];
	struct component *comp;
	struct tm tm;
	char hhmm[8] = "";
	time_t now = clock_now();

	if (cred_kind(c) == CRED_AUTHORIZER)
		return (authorizer_detail(c));
	if ((comp = component_of(c)) == NULL)
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

	if ((comp = component_of(c)) == NULL || comp->ticket[0] == '\0')
		return (-1);
	return ((int64_t)(clock_now() - comp->ticket_at));
}
