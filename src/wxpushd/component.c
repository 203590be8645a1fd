/*
 * Third-party platforms (components): the verify ticket WeChat pushes, the
 * component_access_token it buys (a token source), the calls made with that
 * token for authorizations (api_query_auth, api_create_preauthcode), and what
 * component events do: applied in CreateTime order per ticket and per
 * authorizer (marks in the store), an authorization's code recorded and
 * exchanged in the background. The authorizers themselves are authorizer.c's;
 * the component methods are method-component.c's.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wxpushd.h"

#define COMPONENT_TICKET_LIFE	(12 * 3600)	/* WeChat: a ticket is good 12 h */
#define COMPONENT_PUSH_SPACING	600	/* api_start_push_ticket at most this often */
#define COMPONENT_QUERIES_MAX	256	/* api_query_auth calls in flight */
#define COMPONENT_ERRMSG_MAX	200
#define COMPONENT_PREAUTH_LIFE	86400	/* longest expires_in believed */
#define COMPONENT_EXCHANGE_TRIES	8	/* api_query_auth attempts for an event's code */
#define COMPONENT_EXCHANGE_BACKOFF	5	/* seconds before the first retry, doubled */
#define COMPONENT_EXCHANGE_BACKOFF_MAX	300
#define COMPONENT_EXCHANGE_LIFE		3600	/* an event's code is given up after */
#define COMPONENT_EXCHANGE_WAIT		60	/* no component token: look again */
#define COMPONENT_PENDING_MAX		1024	/* exchanges waiting per component */
#define COMPONENT_PERMS_MAX		64	/* permission set ids kept per authorizer */

struct component_query;
struct component_pending;

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

	/* Authorization codes from events, exchanged in the background. */
	TAILQ_HEAD(, component_pending) pending;
	int			 npending;
	uint64_t		 exchanges_failed;
	char			 exchange_error[160];	/* the last failure, for status */
	TAILQ_ENTRY(component)	 entry;
};

/* An authorized/updateauthorized event's code, recorded, to be exchanged. */
struct component_pending {
	struct component	*comp;
	char			 authorizer[WX_APPID_MAX + 1];
	char			 info_type[INGRESS_INFO_TYPE_MAX + 1];
	char			*code;		/* wiped on free */
	time_t			 create_time;
	int			 attempts;
	int			 running;	/* its api_query_auth is in flight */
	int			 cancelled;	/* superseded while running: free when done */
	struct event		*timer;
	TAILQ_ENTRY(component_pending) entry;
};
static TAILQ_HEAD(, component) components = TAILQ_HEAD_INITIALIZER(components);

/* A call with the component's token for a caller: authorize, event, preauth. */
struct component_query {
	struct component	*comp;
	struct upstream_call	*call;
	uint64_t		 gen;		/* the component token it used */
	char			 info_type[INGRESS_INFO_TYPE_MAX + 1];
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

/*
 * A ticket was pushed to us, created at create_time: keep it, aged from then,
 * and share it with the other hosts.
 */
static void
component_ticket_set(struct component *comp, const char *ticket,
    time_t create_time)
{
	time_t now = clock_now(), at;

	at = create_time > 0 && create_time < now ? create_time : now;
	component_ticket_keep(comp, ticket, at);
	redis_ticket_put(comp->appid, ticket, at);
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
	struct component_pending *p;

	(void)c;
	authorizer_set_ready(comp->authorizers);
	/* Exchanges waiting for a token go now (from the loop, not here). */
	TAILQ_FOREACH(p, &comp->pending, entry) {
		if (!p->running) {
			evtimer_del(p->timer);
			event_active(p->timer, EV_TIMEOUT, 1);
		}
	}
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

/*
 * A mark for comp's subject: the key, and the digest of an event of
 * info_type carrying secret (NULL for none) that tells it from another event
 * of the same second.
 */
static void
component_mark_init(struct store_mark *sm, const struct component *comp,
    const char *subject, const char *info_type, const char *secret)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	char *s;
	size_t i;
	int n;

	memset(sm, 0, sizeof *sm);
	snprintf(sm->component_appid, sizeof sm->component_appid, "%s",
	    comp->appid);
	snprintf(sm->subject, sizeof sm->subject, "%s", subject);
	snprintf(sm->info_type, sizeof sm->info_type, "%s", info_type);
	n = xasprintf(&s, "%s%c%s", info_type, 0, secret != NULL ? secret : "");
	if (EVP_Digest(s, (size_t)n, md, NULL, EVP_sha256(), NULL) != 1)
		fatalx("%s: EVP_Digest", __func__);
	freezero(s, (size_t)n + 1);
	for (i = 0; i < sizeof md; i++) {
		sm->digest[2 * i] = hex[md[i] >> 4];
		sm->digest[2 * i + 1] = hex[md[i] & 0xf];
	}
}

/*
 * The permission sets (func_info[].funcscope_category.id) an authorizer
 * granted, kept for status as "1,2,15": sorted, without repeats, bounded.
 */
static void
component_permissions(struct component *comp, const char *appid,
    json_t *func_info)
{
	json_t *f, *id;
	json_int_t ids[COMPONENT_PERMS_MAX], v;
	char buf[COMPONENT_PERMS_MAX * 12 + 1];
	size_t i, j, n = 0, len = 0;

	if (!json_is_array(func_info)) {
		log_info("%s: api_query_auth gave no func_info for %s",
		    comp->appid, appid);
		return;
	}
	json_array_foreach(func_info, i, f) {
		id = json_object_get(json_object_get(f, "funcscope_category"),
		    "id");
		if (!json_is_integer(id) || (v = json_integer_value(id)) < 1 ||
		    v > 1000000)
			continue;
		for (j = 0; j < n && ids[j] < v; j++)
			;
		if ((j < n && ids[j] == v) || n == COMPONENT_PERMS_MAX)
			continue;
		memmove(&ids[j + 1], &ids[j], (n - j) * sizeof ids[0]);
		ids[j] = v;
		n++;
	}
	buf[0] = '\0';
	for (i = 0; i < n; i++)
		len += snprintf(buf + len, sizeof buf - len, "%s%lld",
		    i > 0 ? "," : "", (long long)ids[i]);
	authorizer_set_permissions(comp->authorizers, appid, buf);
}

/*
 * The authorize method installed appid now: a captured event older than
 * that (an unauthorized one, say) is not applied after it.
 */
static void
component_mark_authorize(struct component *comp, const char *appid)
{
	struct store_mark sm;
	time_t now = clock_now();

	component_mark_init(&sm, comp, appid, "authorize", NULL);
	if (store_mark_load(&sm) == 1 && sm.create_time >= now)
		return;
	component_mark_init(&sm, comp, appid, "authorize", NULL);
	sm.create_time = now;
	if (store_mark_save(&sm) != 0)
		log_warnx("%s: could not record the authorization of %s",
		    comp->appid, appid);
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
	if (valid_appid_str(appid) && (token == NULL || *token == '\0') &&
	    (rt == NULL || *rt == '\0')) {
		/* WeChat: no tokens when no API permission was granted. */
		log_warnx("%s: %s authorized the platform without granting any "
		    "API permission: api_query_auth gave no tokens", comp->appid,
		    appid);
		component_query_fail(q, "no_permission", 0, 0, "%s authorized "
		    "%s without granting it any API permission (api_query_auth "
		    "returned no tokens); the merchant must authorize again and "
		    "grant the permissions", appid, comp->appid);
		goto out;
	}
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
		component_query_fail(q, code, strcmp(code, "internal") == 0, 0,
		    "%s", msg);
		goto out;
	}
	component_permissions(comp, appid, json_object_get(ai, "func_info"));
	if (strcmp(q->info_type, "authorize") == 0)
		component_mark_authorize(comp, appid);
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

/* Forget a pending exchange that is not running (the store is the caller's). */
static void
component_pending_free(struct component_pending *p)
{
	if (!p->cancelled) {
		TAILQ_REMOVE(&p->comp->pending, p, entry);
		p->comp->npending--;
	}
	event_free(p->timer);
	freezero_str(p->code);
	free(p);
}

/* Forget a pending exchange, durably; one in flight is freed when it ends. */
static void
component_pending_drop(struct component_pending *p)
{
	if (store_pending_delete(p->comp->appid, p->authorizer) != 0)
		log_warnx("%s: could not delete the pending authorization of "
		    "%s", p->comp->appid, p->authorizer);
	if (p->running) {
		TAILQ_REMOVE(&p->comp->pending, p, entry);
		p->comp->npending--;
		p->cancelled = 1;
		return;
	}
	component_pending_free(p);
}

/* The pending exchange of an authorizer, or NULL. */
static struct component_pending *
component_pending_find(struct component *comp, const char *authorizer)
{
	struct component_pending *p;

	TAILQ_FOREACH(p, &comp->pending, entry) {
		if (strcmp(p->authorizer, authorizer) == 0)
			return (p);
	}
	return (NULL);
}

/* Whether the authorizer got a token here since the event (authorize won). */
static int
component_pending_installed(const struct component_pending *p)
{
	struct cred *c = cred_find(p->authorizer);
	const char *owner;

	return (c != NULL && !cred_removed(c) && cred_usable(c) &&
	    (owner = authorizer_component_appid(c)) != NULL &&
	    strcmp(owner, p->comp->appid) == 0 &&
	    cred_refreshed_at(c) >= p->create_time);
}

/* The end of a pending exchange that failed for good: logged, shown. */
static void
component_pending_failed(struct component_pending *p, const char *code,
    long errcode, const char *why)
{
	struct component *comp = p->comp;

	log_warnx("%s: the %s event of %s could not be exchanged for tokens "
	    "after %d attempt%s: %s%s%.0ld%s", comp->appid, p->info_type,
	    p->authorizer, p->attempts, p->attempts == 1 ? "" : "s", why,
	    errcode != 0 ? " (errcode " : "", errcode, errcode != 0 ? ")" : "");
	comp->exchanges_failed++;
	snprintf(comp->exchange_error, sizeof comp->exchange_error,
	    "authorization of %s failed: %s%s%.0ld", p->authorizer, code,
	    errcode != 0 ? " " : "", errcode);
	component_pending_drop(p);
}

/* api_query_auth for a pending exchange answered (or could not start). */
static void
component_pending_done(void *arg, const struct rpc_error *e,
    const char *info_type, const char *authorizer_appid)
{
	struct component_pending *p = arg;
	struct component *comp = p->comp;
	struct timeval tv = { 0, 0 };
	int wait;

	(void)info_type;
	p->running = 0;
	if (p->cancelled) {
		component_pending_free(p);
		return;
	}
	if (e == NULL) {
		log_info("%s: the %s event of %s is exchanged", comp->appid,
		    p->info_type, authorizer_appid);
		component_pending_drop(p);
		return;
	}
	if (wx_stopping)
		return;		/* stays in the store: resumed at the next start */
	if (e->errcode == 61010 && component_pending_installed(p)) {
		log_info("%s: the code of the %s event of %s was used already "
		    "(by the authorize method): nothing left to do",
		    comp->appid, p->info_type, p->authorizer);
		component_pending_drop(p);
		return;
	}
	if (e->errcode == 61010 && p->attempts > 1 &&
	    authorizer_recover(comp->authorizers, p->authorizer) == 0) {
		/* An earlier attempt may have used the code unseen. */
		log_warnx("%s: the code of %s was refused (61010) after an "
		    "attempt without an answer: looking for its refresh token "
		    "in api_get_authorizer_list", comp->appid, p->authorizer);
		component_pending_drop(p);
		return;
	}
	if (!e->retryable || p->attempts >= COMPONENT_EXCHANGE_TRIES ||
	    clock_now() - p->create_time > COMPONENT_EXCHANGE_LIFE) {
		component_pending_failed(p, e->code, e->errcode, e->message);
		return;
	}
	wait = COMPONENT_EXCHANGE_BACKOFF << (p->attempts - 1);
	if (wait > COMPONENT_EXCHANGE_BACKOFF_MAX)
		wait = COMPONENT_EXCHANGE_BACKOFF_MAX;
	log_info("%s: exchanging the code of %s failed (%s); retry %d of %d "
	    "in %d s", comp->appid, p->authorizer, e->message, p->attempts,
	    COMPONENT_EXCHANGE_TRIES - 1, wait);
	tv.tv_sec = wait;
	evtimer_add(p->timer, &tv);
}

/* Try a pending exchange now, or wait for the component's token. */
static void
component_pending_cb(evutil_socket_t fd, short events, void *arg)
{
	struct component_pending *p = arg;
	struct component *comp = p->comp;
	struct store_pending sp;
	struct timeval tv = { COMPONENT_EXCHANGE_WAIT, 0 };

	(void)fd;
	(void)events;
	if (p->running || wx_stopping)
		return;
	if (!cred_usable(comp->cred)) {
		if (clock_now() - p->create_time > COMPONENT_EXCHANGE_LIFE) {
			component_pending_failed(p, "unavailable", 0, "the "
			    "platform had no component_access_token in time");
			return;
		}
		evtimer_add(p->timer, &tv);	/* component_ready comes first */
		return;
	}
	p->attempts++;
	memset(&sp, 0, sizeof sp);
	snprintf(sp.component_appid, sizeof sp.component_appid, "%s",
	    comp->appid);
	snprintf(sp.authorizer_appid, sizeof sp.authorizer_appid, "%s",
	    p->authorizer);
	snprintf(sp.info_type, sizeof sp.info_type, "%s", p->info_type);
	snprintf(sp.code, sizeof sp.code, "%s", p->code);
	sp.create_time = p->create_time;
	sp.attempts = p->attempts;
	(void)store_pending_save(&sp);	/* the count only: logged if not */
	explicit_bzero(&sp, sizeof sp);
	p->running = 1;
	component_query_start(comp, p->code, p->info_type, p->authorizer,
	    component_pending_done, p);
}

/* A pending exchange in memory, to be tried from the loop at once. */
static struct component_pending *
component_pending_new(struct component *comp, const char *authorizer,
    const char *info_type, const char *code, time_t create_time, int attempts)
{
	struct component_pending *p;

	p = xcalloc(1, sizeof *p);
	p->comp = comp;
	snprintf(p->authorizer, sizeof p->authorizer, "%s", authorizer);
	snprintf(p->info_type, sizeof p->info_type, "%s", info_type);
	p->code = xstrdup(code);
	p->create_time = create_time;
	p->attempts = attempts;
	p->timer = evtimer_new(wx_base, component_pending_cb, p);
	TAILQ_INSERT_TAIL(&comp->pending, p, entry);
	comp->npending++;
	event_active(p->timer, EV_TIMEOUT, 1);
	return (p);
}

/*
 * Record an authorization event's code durably (replacing an older one of
 * the same authorizer) and start its exchange in the background; 0, or -1
 * with nothing recorded.
 */
static int
component_pending_add(struct component *comp, const struct ingress_event *ev)
{
	struct component_pending *p;
	struct store_pending sp;
	int r;

	if ((p = component_pending_find(comp, ev->authorizer_appid)) == NULL &&
	    comp->npending >= COMPONENT_PENDING_MAX)
		return (-1);
	memset(&sp, 0, sizeof sp);
	snprintf(sp.component_appid, sizeof sp.component_appid, "%s",
	    comp->appid);
	snprintf(sp.authorizer_appid, sizeof sp.authorizer_appid, "%s",
	    ev->authorizer_appid);
	snprintf(sp.info_type, sizeof sp.info_type, "%s", ev->info_type);
	snprintf(sp.code, sizeof sp.code, "%s", ev->secret);
	sp.create_time = ev->create_time;
	r = store_pending_save(&sp);
	explicit_bzero(&sp, sizeof sp);
	if (r != 0)
		return (-1);
	if (p != NULL) {
		/* A newer code for the same authorizer: the old one is moot. */
		if (p->running) {
			TAILQ_REMOVE(&comp->pending, p, entry);
			comp->npending--;
			p->cancelled = 1;
		} else
			component_pending_free(p);
	}
	component_pending_new(comp, ev->authorizer_appid, ev->info_type,
	    ev->secret, ev->create_time, 0);
	return (0);
}

/* A stored pending exchange, at start: resumed. */
static int
component_pending_load_one(const struct store_pending *sp, void *arg)
{
	struct component *comp = arg;

	if (!valid_appid_str(sp->authorizer_appid) ||
	    !valid_word(sp->code, strlen(sp->code), WX_TOKEN_MAX))
		return (0);
	component_pending_new(comp, sp->authorizer_appid, sp->info_type,
	    sp->code, sp->create_time, sp->attempts);
	return (0);
}

/*
 * Whether ev is no newer than the last event applied for subject ("" for the
 * ticket, else the authorizer): 1 to ignore it, 0 to apply it, -1 if the
 * store cannot say. The same CreateTime is newer only for another event (a
 * digest of its InfoType and ticket or code tells).
 */
static int
component_event_stale(struct component *comp, const char *subject,
    const struct ingress_event *ev, const struct store_mark *mine)
{
	struct store_mark sm;

	component_mark_init(&sm, comp, subject, ev->info_type, NULL);
	switch (store_mark_load(&sm)) {
	case 0:
		return (0);
	case 1:
		break;
	default:
		return (-1);
	}
	if (ev->create_time > sm.create_time ||
	    (ev->create_time == sm.create_time &&
	    strcmp(sm.digest, mine->digest) != 0))
		return (0);
	log_info("%s: %s event%s%s of CreateTime %lld ignored: %s the last one "
	    "applied (%s of %lld)", comp->appid, ev->info_type,
	    *subject != '\0' ? " for " : "", subject,
	    (long long)ev->create_time, ev->create_time == sm.create_time ?
	    "the same as" : "older than", sm.info_type,
	    (long long)sm.create_time);
	return (1);
}

/*
 * Act on an opened event, in CreateTime order per subject: a ticket is kept
 * (and used at once if the component has no token); an authorization is
 * recorded and its code exchanged in the background; a revocation marks the
 * authorizer. An event no newer than the last applied one is answered
 * success and changes nothing. done runs before we return.
 */
void
component_event_handle(struct component_conf *cc,
    const struct ingress_event *ev, component_done_cb done, void *arg)
{
	struct component *comp;
	struct component_pending *p;
	struct store_mark mine;
	const char *aid = ev->authorizer_appid, *subject = NULL;
	int stale;

	if ((comp = component_find(cc->appid)) == NULL) {
		component_answer(done, arg, "unknown_appid", 0, 0, NULL,
		    "%s is not a running component", cc->appid);
		return;
	}
	log_info("%s: event %s%s%s", comp->appid, ev->info_type,
	    *aid != '\0' ? " for " : "", aid);
	if (strcmp(ev->info_type, "component_verify_ticket") == 0)
		subject = "";
	else if (strcmp(ev->info_type, "authorized") == 0 ||
	    strcmp(ev->info_type, "updateauthorized") == 0 ||
	    strcmp(ev->info_type, "unauthorized") == 0)
		subject = aid;
	if (subject == NULL) {
		log_info("%s: %s events need nothing from wxpushd",
		    comp->appid, ev->info_type);
		done(arg, NULL, ev->info_type, *aid != '\0' ? aid : NULL);
		return;
	}
	component_mark_init(&mine, comp, subject, ev->info_type, ev->secret);
	mine.create_time = ev->create_time;
	stale = component_event_stale(comp, subject, ev, &mine);
	if (stale == 0 && *subject == '\0' && ev->create_time < comp->ticket_at)
		stale = 1;	/* we hold a newer ticket (from Redis) */
	if (stale == 1) {
		done(arg, NULL, ev->info_type, *aid != '\0' ? aid : NULL);
		return;
	}
	if (stale == -1) {
		component_answer(done, arg, "internal", 1, 0, NULL, "the store "
		    "cannot say whether this event is new; not applied");
		return;
	}
	if (strcmp(ev->info_type, "authorized") == 0 ||
	    strcmp(ev->info_type, "updateauthorized") == 0) {
		/* Recorded first: a crash before the mark re-applies it. */
		if (component_pending_add(comp, ev) != 0) {
			component_answer(done, arg, "internal", 1, 0, NULL,
			    "the authorization could not be recorded; not "
			    "applied");
			return;
		}
	}
	if (store_mark_save(&mine) != 0) {
		component_answer(done, arg, "internal", 1, 0, NULL, "the "
		    "event's order could not be recorded; not applied");
		return;
	}
	if (*subject == '\0')
		component_ticket_set(comp, ev->secret, ev->create_time);
	else if (strcmp(ev->info_type, "unauthorized") == 0) {
		if ((p = component_pending_find(comp, aid)) != NULL)
			component_pending_drop(p);
		authorizer_unauthorized(comp->authorizers, aid);
	}
	done(arg, NULL, ev->info_type, *aid != '\0' ? aid : NULL);
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
	TAILQ_INIT(&comp->pending);
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
	if (store_pending_foreach(comp->appid, COMPONENT_PENDING_MAX,
	    component_pending_load_one, comp) == -1)
		log_warnx("%s: could not load the pending authorizations",
		    comp->appid);
	else if (comp->npending > 0)
		log_info("%s: %d authorization%s to exchange, resumed",
		    comp->appid, comp->npending, comp->npending == 1 ? "" : "s");
	if (cred_usable(c))
		authorizer_set_ready(comp->authorizers);
}

/* Stop a component's own calls and answer its pending queries. */
static void
component_free(struct component *comp, const char *code, const char *why)
{
	struct component_query *q;
	struct component_pending *p;

	if (comp->push_call != NULL)
		upstream_cancel(comp->push_call);

	while ((q = TAILQ_FIRST(&comp->queries)) != NULL) {
		component_query_fail(q, code, 1, 0, "%s", why);
		component_query_free(q);
	}
	/* None runs now; they stay in the store for a later start. */
	while ((p = TAILQ_FIRST(&comp->pending)) != NULL)
		component_pending_free(p);
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

/*
 * An authorizer a send names that is not in memory (idle at start, or since):
 * its stored row, in its component's set. NULL if the store has none of a
 * running component.
 */
static struct cred *
component_load_authorizer(const char *appid)
{
	struct store_authorizer sa;
	struct component *comp;
	struct cred *c = NULL;

	if (!valid_appid_str(appid) || store_authorizer_load(appid, &sa) != 1)
		return (NULL);
	if ((comp = component_find(sa.component_appid)) != NULL &&
	    comp->authorizers != NULL)
		c = authorizer_set_load_row(comp->authorizers, &sa);
	explicit_bzero(&sa, sizeof sa);
	return (c);
}

/*
 * Hear from Redis (redis.c calls no component function by name); load idle
 * authorizers for cred.c.
 */
void
component_init(void)
{
	redis_set_handlers(&component_redis);
	cred_set_loader(component_load_authorizer);
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
	static char buf[320];
	size_t n;
	struct component *comp;
	struct tm tm;
	char hhmm[8] = "";
	time_t now = clock_now();

	if (cred_kind(c) == CRED_AUTHORIZER)
		return (authorizer_detail(c));
	if ((comp = component_of(c)) == NULL)
		return ("");
	if (component_ticket_valid(comp))
		snprintf(buf, sizeof buf, "verify ticket %lld min old",
		    (long long)(now - comp->ticket_at) / 60);
	else {
		if (comp->push_at != 0 &&
		    localtime_r(&comp->push_at, &tm) != NULL)
			strftime(hhmm, sizeof hhmm, "%H:%M", &tm);
		snprintf(buf, sizeof buf, "no verify ticket%s%s%s",
		    hhmm[0] != '\0' ? " (push requested " : "", hhmm,
		    hhmm[0] != '\0' ? ")" : "");
	}
	n = strlen(buf);
	if (comp->npending > 0)
		n += snprintf(buf + n, sizeof buf - n, "; %d authorization%s "
		    "being exchanged", comp->npending, comp->npending == 1 ?
		    "" : "s");
	if (comp->exchange_error[0] != '\0' && n < sizeof buf)
		snprintf(buf + n, sizeof buf - n, "; %s", comp->exchange_error);
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

/*
 * A component's authorization exchanges: how many wait, and how many failed
 * for good since the start. 0 if c is no running component.
 */
int
component_exchanges(const struct cred *c, int *pending, uint64_t *failed)
{
	struct component *comp;

	if ((comp = component_of(c)) == NULL)
		return (0);
	*pending = comp->npending;
	*failed = comp->exchanges_failed;
	return (1);
}
