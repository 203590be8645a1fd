/*
 * The dispatch table, and the small methods that need no other home: ping,
 * status and stats. Methods answer now or later through rpc_reply_*.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wxpushd.h"

#define METHOD_PAGE_MAX		1000	/* authorizers in one status page */
#define METHOD_PAGE_DEFAULT	100

/* An authorizer row of a status page: no refresh token. */
struct method_page_row {
	char		 appid[WX_APPID_MAX + 1];
	int		 revoked;
	int		 has_rt;
	time_t		 last_used;
};
struct method_page {
	struct method_page_row	*rows;
	size_t			 n;
};

static void	method_ping(struct request *, const msgpack_object *);
static void	method_status(struct request *, const msgpack_object *);
static void	method_stats(struct request *, const msgpack_object *);

static const struct method methods[] = {
	{ "ping", method_ping },
	{ "send", send_method },
	{ "status", method_status },
	{ "stats", method_stats },
	{ "component_event", method_component_event },
	{ "authorize", method_component_authorize },
	{ "preauth", method_component_preauth },
	{ "call", method_call },
	{ "jssdk_sign", jsapi_method_sign },
	{ "enqueue", outbox_method_enqueue },
	{ "delivery", outbox_method_delivery },
	{ "outbox", outbox_method_outbox },
	{ "consent_url", method_consent_url },
	{ "consent_record", method_consent_record },
	{ "consents", method_consents },
	{ "consent_forget", method_consent_forget },
};

const struct method *
method_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		if (strlen(methods[i].name) == len &&
		    memcmp(methods[i].name, name, len) == 0)
			return (&methods[i]);
	}
	return (NULL);
}

static void
method_ping(struct request *req, const msgpack_object *params)
{
	msgpack_packer *pk;

	if (rpc_params_check(req, params, NULL, 0) != 0)
		return;
	pk = rpc_reply_begin(req, 2);
	rpc_pack_kv_str(pk, "version", PACKAGE_VERSION);
	rpc_pack_kv_int(pk, "protocol", WXPUSHD_PROTOCOL);
	rpc_reply_end(req);
}

static const char *const method_states[] = { "valid", "refreshing",
    "expired", "failed", "revoked", "idle" };
#define METHOD_NSTATES	(sizeof method_states / sizeof method_states[0])

/*
 * A platform's authorizers summed up, however many: the store's counts (on
 * its index) and the states of those in memory; the rest are idle there.
 */
static void
method_pack_authorizers(msgpack_packer *pk, const struct cred *comp)
{
	uint64_t nstate[METHOD_NSTATES] = { 0 }, total, recent, loaded = 0;
	time_t since = wx_conf->authorizer_idle > 0 ?
	    clock_now() - wx_conf->authorizer_idle : 0;
	const struct cred *c;
	const char *parent;
	size_t k;

	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (cred_removed(c) ||
		    (parent = authorizer_component_appid(c)) == NULL ||
		    strcmp(parent, cred_appid(comp)) != 0)
			continue;
		loaded++;
		for (k = 0; k < METHOD_NSTATES; k++)
			nstate[k] += strcmp(cred_state_name(c),
			    method_states[k]) == 0;
	}
	if (store_authorizer_count(cred_appid(comp), since, &total,
	    &recent) != 0)
		total = recent = loaded;
	rpc_pack_str(pk, "authorizers");
	msgpack_pack_map(pk, 4);
	rpc_pack_kv_int(pk, "stored", (int64_t)total);
	rpc_pack_kv_int(pk, "recent", (int64_t)recent);
	rpc_pack_kv_int(pk, "loaded", (int64_t)loaded);
	rpc_pack_str(pk, "states");
	msgpack_pack_map(pk, METHOD_NSTATES);
	for (k = 0; k < METHOD_NSTATES; k++)
		rpc_pack_kv_int(pk, method_states[k], (int64_t)nstate[k]);
}

/* One credential's public state: never its token or secret. */
static void
method_pack_cred(msgpack_packer *pk, const struct cred *c)
{
	const char *parent = authorizer_component_appid(c);
	const char *perms = authorizer_permissions(c), *s;
	struct send_queue_state q = send_queue_of(c);
	int comp = cred_kind(c) == CRED_COMPONENT;
	uint32_t n;

	msgpack_pack_map(pk, 12 + (parent != NULL) + (perms != NULL) + comp);
	rpc_pack_kv_str(pk, "appid", cred_appid(c));
	rpc_pack_kv_str(pk, "kind", cred_kind_name(cred_kind(c)));
	rpc_pack_kv_str(pk, "state", cred_state_name(c));
	rpc_pack_kv_int(pk, "expires_in", cred_expires_in(c));
	rpc_pack_kv_int(pk, "refreshed_at", (int64_t)cred_refreshed_at(c));
	rpc_pack_kv_int(pk, "token_calls_today", cred_calls_today(c));
	rpc_pack_kv_int(pk, "failures", cred_failures(c));
	rpc_pack_kv_int(pk, "last_errcode", cred_last_errcode(c));
	rpc_pack_kv_str(pk, "last_error", cred_last_error(c));
	rpc_pack_kv_int(pk, "queued", q.queued);
	rpc_pack_kv_int(pk, "inflight", q.inflight);
	rpc_pack_kv_str(pk, "detail", component_detail(c));
	if (comp)
		method_pack_authorizers(pk, c);
	if (parent != NULL)
		rpc_pack_kv_str(pk, "component_appid", parent);
	if (perms != NULL) {
		/* "1,2,15" as [1, 2, 15]: the permission sets granted. */
		for (n = 0, s = perms; *s != '\0'; s++)
			n += *s == ',';
		rpc_pack_str(pk, "permissions");
		msgpack_pack_array(pk, *perms != '\0' ? n + 1 : 0);
		for (s = perms; *s != '\0'; s += *s == ',') {
			msgpack_pack_uint32(pk, (uint32_t)strtoul(s, NULL, 10));
			s += strspn(s, "0123456789");
		}
	}
}

/*
 * Whether c is shown for a status filter: the appid itself, its component's,
 * or (a jsapi_ticket) its account's.
 */
static int
method_status_match(const struct cred *c, const char *appid, int paging)
{
	const char *parent;

	if (appid == NULL)
		return (1);
	if (paging)
		return (strcmp(cred_appid(c), appid) == 0);
	parent = authorizer_component_appid(c);
	if (parent == NULL)
		parent = jsapi_parent_appid(c);	/* APPID/jsapi with APPID */
	return (strcmp(cred_appid(c), appid) == 0 ||
	    (parent != NULL && strcmp(parent, appid) == 0));
}

static int
method_page_row(const struct store_authorizer *sa, void *arg)
{
	struct method_page *pg = arg;
	struct method_page_row *r = &pg->rows[pg->n++];

	snprintf(r->appid, sizeof r->appid, "%s", sa->appid);
	r->revoked = sa->revoked;
	r->has_rt = sa->refresh_token[0] != '\0';
	r->last_used = sa->last_used;
	return (0);
}

/*
 * A page of a platform's authorizers from the store, in appid order: each
 * one's state (in memory: its credential's; else idle, revoked, or failed
 * without a refresh token), when it was last used, whether it is loaded;
 * and the appid to ask from next (nil at the end).
 */
static void
method_pack_page(msgpack_packer *pk, const char *component, const char *after,
    size_t limit)
{
	struct method_page pg;
	const struct cred *c;
	const char *state;
	size_t i;

	pg.rows = xcalloc(limit, sizeof *pg.rows);
	pg.n = 0;
	if (store_authorizer_page(component, after, limit, method_page_row,
	    &pg) == -1)
		pg.n = 0;
	rpc_pack_str(pk, "authorizers");
	msgpack_pack_array(pk, pg.n);
	for (i = 0; i < pg.n; i++) {
		c = cred_find(pg.rows[i].appid);
		if (c != NULL && cred_removed(c))
			c = NULL;
		if (c != NULL)
			state = cred_state_name(c);
		else
			state = pg.rows[i].revoked ? "revoked" :
			    !pg.rows[i].has_rt ? "failed" : "idle";
		msgpack_pack_map(pk, 4);
		rpc_pack_kv_str(pk, "appid", pg.rows[i].appid);
		rpc_pack_kv_str(pk, "state", state);
		rpc_pack_kv_int(pk, "last_used", (int64_t)pg.rows[i].last_used);
		rpc_pack_kv_bool(pk, "loaded", c != NULL);
	}
	rpc_pack_str(pk, "authorizers_next");
	if (pg.n == limit)
		rpc_pack_str(pk, pg.rows[pg.n - 1].appid);
	else
		msgpack_pack_nil(pk);
	free(pg.rows);
}

static void
method_status(struct request *req, const msgpack_object *params)
{
	static const char *const names[] = { "appid", "authorizers_after",
	    "authorizers_limit" };
	const msgpack_object *o = rpc_map_get(params, "appid");
	const msgpack_object *oa = rpc_map_get(params, "authorizers_after");
	const msgpack_object *ol = rpc_map_get(params, "authorizers_limit");
	char appid[WX_APPID_MAX + 1], after[WX_APPID_MAX + 1] = "";
	const char *filter = NULL;
	msgpack_packer *pk;
	struct cred *c;
	const struct peer *peer = req->client != NULL ?
	    &req->client->peer : NULL;
	uint32_t n = 0, found = 0;
	size_t limit = 0;
	int paging;

	if (rpc_params_check(req, params, names, 3) != 0)
		return;
	if (oa != NULL && oa->type == MSGPACK_OBJECT_NIL)
		oa = NULL;
	if (ol != NULL && ol->type == MSGPACK_OBJECT_NIL)
		ol = NULL;
	if (ol != NULL && (ol->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    ol->via.u64 < 1 || ol->via.u64 > METHOD_PAGE_MAX)) {
		rpc_reply_errorx(req, "invalid_request", 0,
		    "authorizers_limit", "authorizers_limit must be an integer "
		    "from 1 to %d", METHOD_PAGE_MAX);
		return;
	}
	if (oa != NULL && (oa->type != MSGPACK_OBJECT_STR ||
	    (oa->via.str.size != 0 &&
	    !valid_appid(oa->via.str.ptr, oa->via.str.size)))) {
		rpc_reply_errorx(req, "invalid_request", 0,
		    "authorizers_after", "authorizers_after must be \"\" or "
		    "an appid (1 to %d of A-Z a-z 0-9 _ -)", WX_APPID_MAX);
		return;
	}
	if (oa != NULL) {
		memcpy(after, oa->via.str.ptr, oa->via.str.size);
		after[oa->via.str.size] = '\0';
	}
	paging = oa != NULL || ol != NULL;
	limit = ol != NULL ? (size_t)ol->via.u64 : METHOD_PAGE_DEFAULT;
	if (o != NULL && o->type == MSGPACK_OBJECT_NIL)
		o = NULL;	/* nil: absent */
	if (o != NULL) {
		/* No NUL: "wx1\0x" must not match wx1 as a C string. */
		if (o->type != MSGPACK_OBJECT_STR ||
		    !valid_appid(o->via.str.ptr, o->via.str.size)) {
			rpc_reply_errorx(req, "invalid_request", 0, "appid",
			    "appid must be 1 to %d of A-Z a-z 0-9 _ -",
			    WX_APPID_MAX);
			return;
		}
		memcpy(appid, o->via.str.ptr, o->via.str.size);
		appid[o->via.str.size] = '\0';
		filter = appid;
		/* An idle authorizer is in the store: load it to show it. */
		if (!paging)
			(void)cred_lookup(appid);
	}
	if (paging && (filter == NULL || !component_running(filter))) {
		rpc_reply_errorx(req, "invalid_request", 0, ol != NULL ?
		    "authorizers_limit" : "authorizers_after", "paging through "
		    "authorizers needs appid to name a third-party platform");
		return;
	}
	/* A peer sees only what it may use: others' state is theirs. */
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (cred_removed(c) || !method_status_match(c, filter, paging))
			continue;
		found++;
		if (peer != NULL && cred_allows(c, peer))
			n++;
	}
	if (filter != NULL && found == 0) {
		rpc_reply_errorx(req, "unknown_appid", 0, "appid",
		    "the appid is not configured here");
		return;
	}
	if (filter != NULL && n == 0) {
		rpc_reply_errorx(req, "forbidden", 0, "appid",
		    "this user may not use this appid");
		return;
	}
	pk = rpc_reply_begin(req, paging ? 6 : 4);
	rpc_pack_kv_str(pk, "version", PACKAGE_VERSION);
	rpc_pack_kv_int(pk, "uptime", (int64_t)(time(NULL) - wx_start_time));
	rpc_pack_kv_str(pk, "redis", redis_mode());	/* off, connected, unreachable */
	rpc_pack_str(pk, "credentials");
	msgpack_pack_array(pk, n);
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (!cred_removed(c) && method_status_match(c, filter, paging) &&
		    peer != NULL && cred_allows(c, peer))
			method_pack_cred(pk, c);
	}
	if (paging)
		method_pack_page(pk, filter, after, limit);
	rpc_reply_end(req);
}

/* Pack the counter named prefix and name together ("sends_" "ok"): v. */
static void
method_pack_outcome(msgpack_packer *pk, const char *prefix, const char *name,
    uint64_t v)
{
	char key[64];

	snprintf(key, sizeof key, "%s%s", prefix, name);
	rpc_pack_kv_int(pk, key, (int64_t)v);
}

/* The number of errcode buckets of a with a count. */
static uint32_t
method_nerrcodes(const uint64_t *a)
{
	uint32_t n = 0;
	int i;

	for (i = 0; i < WXAPI_NERRCODES; i++)
		n += a[i] != 0;
	return (n);
}

/* One credential's counters in the stats result: the /metrics figures. */
static void
method_stats_cred(msgpack_packer *pk, const struct cred *c)
{
	static const struct send_counters none;
	const struct send_counters *sc = send_counters_of(c);
	struct send_queue_state q = send_queue_of(c);
	struct outbox_depth od = outbox_depth_of(cred_appid(c));
	int64_t age = component_ticket_age(c);
	int i;

	if (sc == NULL)
		sc = &none;
	rpc_pack_str(pk, cred_appid(c));
	msgpack_pack_map(pk, 10 + SEND_NOUTCOMES + (age >= 0) +
	    method_nerrcodes(sc->errcode));
	rpc_pack_kv_int(pk, "outbox_depth", od.depth);
	rpc_pack_kv_int(pk, "outbox_oldest_seconds", od.oldest > 0 &&
	    clock_now() > od.oldest ? (int64_t)(clock_now() - od.oldest) : 0);
	rpc_pack_kv_int(pk, "token_expires_in", cred_expires_in(c));
	rpc_pack_kv_int(pk, "token_calls_today", cred_calls_today(c));
	rpc_pack_kv_int(pk, "token_refreshes", (int64_t)cred_refreshes(c));
	rpc_pack_kv_int(pk, "refresh_failures", cred_failures(c));
	rpc_pack_kv_int(pk, "queued", q.queued);
	rpc_pack_kv_int(pk, "inflight", q.inflight);
	rpc_pack_kv_int(pk, "queue_oldest", q.oldest);
	rpc_pack_kv_bool(pk, "breaker_open", cred_breaker_open(c));
	if (age >= 0)
		rpc_pack_kv_int(pk, "verify_ticket_age", age);
	for (i = 0; i < SEND_NOUTCOMES; i++)
		method_pack_outcome(pk, "sends_", send_outcome_name(i),
		    sc->outcome[i]);
	for (i = 0; i < WXAPI_NERRCODES; i++) {
		if (sc->errcode[i] != 0)
			method_pack_outcome(pk, "sends_wechat_",
			    wxapi_errcode_name(i), sc->errcode[i]);
	}
}

/*
 * What method_stats_consents counts and packs. Appids with consents and no
 * credential in memory (idle authorizers) are looked up in the store once
 * per call, never loaded: idle[] in appid order, as consent_groups goes.
 */
struct method_consents {
	const struct peer	*peer;
	msgpack_packer		*pk;	/* NULL: count only */
	uint32_t		 n;
	char			**idle;		/* appids not in memory */
	int			*idle_ok;	/* the peer may use idle[i] */
	size_t			 nidle, idle_cap;
};

/* appid's credential in memory, or NULL (one unloaded or removed is not). */
static struct cred *
method_stats_loaded(const char *appid)
{
	struct cred *c = cred_find(appid);

	return (c != NULL && !cred_removed(c) ? c : NULL);
}

/* Collect the appids of consent groups that have no credential in memory. */
static void
method_stats_idle(const char *appid, const char *template_id,
    enum consent_state st, uint64_t n, void *arg)
{
	struct method_consents	*m = arg;

	(void)template_id;
	(void)st;
	(void)n;
	if (method_stats_loaded(appid) != NULL || (m->nidle > 0 &&
	    strcmp(m->idle[m->nidle - 1], appid) == 0))
		return;
	if (m->nidle == m->idle_cap) {
		m->idle_cap = m->idle_cap == 0 ? 64 : m->idle_cap * 2;
		m->idle = xreallocarray(m->idle, m->idle_cap,
		    sizeof *m->idle);
	}
	m->idle[m->nidle++] = xstrdup(appid);
}

static int
method_stats_idle_cmp(const void *key, const void *elem)
{
	return (strcmp(key, *(char *const *)elem));
}

/* A stored authorizer: its ACL is its component's, if that is running. */
static void
method_stats_idle_row(const char *appid, const char *component, void *arg)
{
	struct method_consents	*m = arg;
	struct cred		*c = cred_find(component);
	char			**p;

	p = bsearch(appid, m->idle, m->nidle, sizeof *m->idle,
	    method_stats_idle_cmp);
	if (p != NULL && c != NULL && cred_kind(c) == CRED_COMPONENT &&
	    cred_allows(c, m->peer))
		m->idle_ok[p - m->idle] = 1;
}

/* Whether the peer may use appid, in memory or (idle) in the store. */
static int
method_stats_allows(const struct method_consents *m, const char *appid)
{
	struct cred	*c = method_stats_loaded(appid);
	char		**p;

	if (c != NULL)
		return (cred_allows(c, m->peer));
	p = bsearch(appid, m->idle, m->nidle, sizeof *m->idle,
	    method_stats_idle_cmp);
	return (p != NULL && m->idle_ok[p - m->idle]);
}

/* One consent group, if the peer may use its appid. */
static void
method_stats_consent(const char *appid, const char *template_id,
    enum consent_state st, uint64_t n, void *arg)
{
	struct method_consents	*m = arg;

	if (m->peer == NULL || !method_stats_allows(m, appid))
		return;
	m->n++;
	if (m->pk == NULL)
		return;
	msgpack_pack_map(m->pk, 4);
	rpc_pack_kv_str(m->pk, "appid", appid);
	rpc_pack_kv_str(m->pk, "template_id", template_id);
	rpc_pack_kv_str(m->pk, "state", consent_state_name(st));
	rpc_pack_kv_int(m->pk, "count", (int64_t)n);
}

/* "consents": [{appid, template_id, state, count}] for the peer's appids. */
static void
method_stats_consents(msgpack_packer *pk, const struct peer *peer)
{
	struct method_consents	m;
	size_t			i;

	memset(&m, 0, sizeof m);
	m.peer = peer;
	if (peer != NULL) {
		consent_groups(method_stats_idle, &m);
		m.idle_ok = xcalloc(m.nidle + 1, sizeof *m.idle_ok);
		if (m.nidle > 0)
			store_authorizer_components((const char *const *)m.idle,
			    m.nidle, method_stats_idle_row, &m);
	}
	consent_groups(method_stats_consent, &m);
	rpc_pack_str(pk, "consents");
	msgpack_pack_array(pk, m.n);
	m.pk = pk;
	m.n = 0;
	consent_groups(method_stats_consent, &m);
	for (i = 0; i < m.nidle; i++)
		free(m.idle[i]);
	free(m.idle);
	free(m.idle_ok);
}

/* The call counters by apis entry: "calls": {path: {outcome: n, ...}}. */
static void
method_stats_calls(msgpack_packer *pk)
{
	const struct call_stat *cs;
	size_t i, n;
	int o;

	for (n = 0; method_call_stat(n) != NULL; n++)
		;
	rpc_pack_str(pk, "calls");
	msgpack_pack_map(pk, n);
	for (i = 0; i < n; i++) {
		cs = method_call_stat(i);
		rpc_pack_str(pk, cs->path);
		msgpack_pack_map(pk, SEND_NOUTCOMES + 2);
		for (o = 0; o < SEND_NOUTCOMES; o++)
			rpc_pack_kv_int(pk, send_outcome_name(o),
			    (int64_t)cs->outcome[o]);
		rpc_pack_kv_int(pk, "stripped", (int64_t)cs->stripped);
		rpc_pack_kv_int(pk, "too_large", (int64_t)cs->too_large);
	}
}

/*
 * Counters for monitoring; docs/protocol.md lists them. The same figures as
 * /metrics; the per-appid ones only for the appids the peer may use.
 */
static void
method_stats(struct request *req, const msgpack_object *params)
{
	const struct peer *peer = req->client != NULL ?
	    &req->client->peer : NULL;
	const struct send_histogram *h = send_duration();
	const struct send_counters *all = send_counters_all();
	const struct send_counters *nocred = send_counters_nocred();
	msgpack_packer *pk;
	struct cred *c;
	uint64_t calls = 0, fails = 0, queued = 0, cum;
	uint32_t ncreds = 0, nshown = 0;
	int i, n = 0;

	if (rpc_params_check(req, params, NULL, 0) != 0)
		return;
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		ncreds++;
		calls += cred_calls_today(c);
		fails += cred_failures(c);
		queued += send_queue_of(c).queued;
		if (!cred_removed(c) && peer != NULL && cred_allows(c, peer))
			nshown++;
	}
	while (send_outcome_name(n) != NULL)
		n++;
	pk = rpc_reply_begin(req, 8 + n + 3 + WXAPI_NERRCODES +
	    SEND_NBUCKETS + 2 + 1 + 1 + 1);
	rpc_pack_kv_int(pk, "uptime", (int64_t)(time(NULL) - wx_start_time));
	rpc_pack_kv_int(pk, "clients", (int64_t)server_nclients());
	rpc_pack_kv_int(pk, "credentials", ncreds);
	rpc_pack_kv_int(pk, "token_calls_today", (int64_t)calls);
	rpc_pack_kv_int(pk, "refresh_failures", (int64_t)fails);
	rpc_pack_kv_int(pk, "queued", (int64_t)queued);
	rpc_pack_kv_int(pk, "upstream_inflight", (int64_t)upstream_inflight());
	rpc_pack_kv_int(pk, "requests", (int64_t)rpc_requests);
	for (i = 0; i < n; i++)
		method_pack_outcome(pk, "sends_", send_outcome_name(i),
		    all->outcome[i]);
	rpc_pack_kv_int(pk, "start_time", (int64_t)wx_start_time);
	rpc_pack_kv_int(pk, "protocol", WXPUSHD_PROTOCOL);
	for (i = 0, cum = 0; i < SEND_NOUTCOMES; i++)
		cum += nocred->outcome[i];
	rpc_pack_kv_int(pk, "sends_no_appid", (int64_t)cum);
	for (i = 0; i < WXAPI_NERRCODES; i++)
		method_pack_outcome(pk, "sends_wechat_",
		    wxapi_errcode_name(i), all->errcode[i]);
	cum = 0;
	for (i = 0; i < SEND_NBUCKETS; i++) {
		cum += h->buckets[i];
		method_pack_outcome(pk, "send_duration_le_",
		    send_bucket_name(i), cum);
	}
	rpc_pack_kv_int(pk, "send_duration_count", (int64_t)h->count);
	rpc_pack_kv_int(pk, "send_duration_sum_us", (int64_t)h->sum_us);
	method_stats_calls(pk);
	method_stats_consents(pk, peer);
	rpc_pack_str(pk, "appids");
	msgpack_pack_map(pk, nshown);
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (!cred_removed(c) && peer != NULL && cred_allows(c, peer))
			method_stats_cred(pk, c);
	}
	rpc_reply_end(req);
}
