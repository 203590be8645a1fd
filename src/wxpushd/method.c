/*
 * The dispatch table, and the small methods that need no other home: ping,
 * status and stats. Methods answer now or later through rpc_reply_*.
 */
#include "config.h"

#include <string.h>
#include <time.h>

#include "wxpushd.h"

static void	method_ping(struct request *, const msgpack_object *);
static void	method_status(struct request *, const msgpack_object *);
static void	method_stats(struct request *, const msgpack_object *);

static const struct method methods[] = {
	{ "ping", method_ping },
	{ "send", send_method },
	{ "status", method_status },
	{ "stats", method_stats },
	{ "component_event", component_event_method },
	{ "authorize", component_authorize_method },
	{ "preauth", component_preauth_method },
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

/* One credential's public state: never its token or secret. */
static void
method_pack_cred(msgpack_packer *pk, const struct cred *c)
{
	time_t now = time(NULL);
	int parent = c->parent != NULL;

	msgpack_pack_map(pk, 12 + parent);
	rpc_pack_kv_str(pk, "appid", c->appid);
	rpc_pack_kv_str(pk, "kind", cred_kind_name(c->kind));
	rpc_pack_kv_str(pk, "state", cred_state_name(c));
	rpc_pack_kv_int(pk, "expires_in", c->token != NULL &&
	    c->expires_at > now ? (int64_t)(c->expires_at - now) : 0);
	rpc_pack_kv_int(pk, "refreshed_at", (int64_t)c->refreshed_at);
	rpc_pack_kv_int(pk, "token_calls_today",
	    c->calls_day == cred_today() ? c->calls_today : 0);
	rpc_pack_kv_int(pk, "failures", c->failures);
	rpc_pack_kv_int(pk, "last_errcode", c->last_errcode);
	rpc_pack_kv_str(pk, "last_error", c->last_error);
	rpc_pack_kv_int(pk, "queued", c->nqueue);
	rpc_pack_kv_int(pk, "inflight", c->inflight);
	rpc_pack_kv_str(pk, "detail", component_detail(c));
	if (parent)
		rpc_pack_kv_str(pk, "component_appid", c->parent->appid);
}

/* Whether c is shown for a status filter: the appid itself, or its component's. */
static int
method_status_match(const struct cred *c, const char *appid)
{
	if (appid == NULL)
		return (1);
	return (strcmp(c->appid, appid) == 0 ||
	    (c->parent != NULL && strcmp(c->parent->appid, appid) == 0));
}

static void
method_status(struct request *req, const msgpack_object *params)
{
	static const char *const names[] = { "appid" };
	const msgpack_object *o = rpc_map_get(params, "appid");
	char appid[WX_APPID_MAX + 1];
	const char *filter = NULL;
	msgpack_packer *pk;
	struct cred *c;
	const struct peer *peer = req->client != NULL ?
	    &req->client->peer : NULL;
	uint32_t n = 0, found = 0;

	if (rpc_params_check(req, params, names, 1) != 0)
		return;
	if (o != NULL && o->type == MSGPACK_OBJECT_NIL)
		o = NULL;	/* nil: absent */
	if (o != NULL) {
		/* No NUL: "wx1\0x" must not match wx1 as a C string. */
		if (o->type != MSGPACK_OBJECT_STR ||
		    !callback_appid_ok(o->via.str.ptr, o->via.str.size)) {
			rpc_reply_errorx(req, "invalid_request", 0, "appid",
			    "appid must be 1 to %d of A-Z a-z 0-9 _ -",
			    WX_APPID_MAX);
			return;
		}
		memcpy(appid, o->via.str.ptr, o->via.str.size);
		appid[o->via.str.size] = '\0';
		filter = appid;
	}
	/* A peer sees only what it may use: others' state is theirs. */
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (c->removed || !method_status_match(c, filter))
			continue;
		found++;
		if (peer != NULL && acl_cred_allows(c, peer))
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
	pk = rpc_reply_begin(req, 4);
	rpc_pack_kv_str(pk, "version", PACKAGE_VERSION);
	rpc_pack_kv_int(pk, "uptime", (int64_t)(time(NULL) - wx_start_time));
	rpc_pack_kv_str(pk, "redis", redis_mode());	/* off, connected, unreachable */
	rpc_pack_str(pk, "credentials");
	msgpack_pack_array(pk, n);
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && method_status_match(c, filter) &&
		    peer != NULL && acl_cred_allows(c, peer))
			method_pack_cred(pk, c);
	}
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

	for (i = 0; i < METRICS_NERRCODES; i++)
		n += a[i] != 0;
	return (n);
}

/* One credential's counters in the stats result: the /metrics figures. */
static void
method_stats_cred(msgpack_packer *pk, const struct cred *c)
{
	time_t now = time(NULL);
	int64_t age = c->kind == CRED_COMPONENT ? component_ticket_age(c) : -1;
	int i;

	rpc_pack_str(pk, c->appid);
	msgpack_pack_map(pk, 6 + SEND_NOUTCOMES + (age >= 0) +
	    method_nerrcodes(c->sends_errcode));
	rpc_pack_kv_int(pk, "token_expires_in", c->token != NULL &&
	    c->expires_at > now ? (int64_t)(c->expires_at - now) : 0);
	rpc_pack_kv_int(pk, "token_calls_today",
	    c->calls_day == cred_today() ? c->calls_today : 0);
	rpc_pack_kv_int(pk, "token_refreshes", (int64_t)c->refreshes);
	rpc_pack_kv_int(pk, "refresh_failures", c->failures);
	rpc_pack_kv_int(pk, "queued", c->nqueue);
	rpc_pack_kv_int(pk, "inflight", c->inflight);
	if (age >= 0)
		rpc_pack_kv_int(pk, "verify_ticket_age", age);
	for (i = 0; i < SEND_NOUTCOMES; i++)
		method_pack_outcome(pk, "sends_", send_outcome_name(i),
		    c->sends[i]);
	for (i = 0; i < METRICS_NERRCODES; i++) {
		if (c->sends_errcode[i] != 0)
			method_pack_outcome(pk, "sends_wechat_",
			    metrics_errcode_name(i), c->sends_errcode[i]);
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
	const struct metrics_histogram *h = &metrics_send_duration;
	msgpack_packer *pk;
	struct cred *c;
	uint64_t calls = 0, fails = 0, queued = 0, cum;
	uint32_t ncreds = 0, nshown = 0;
	int i, n = 0;

	if (rpc_params_check(req, params, NULL, 0) != 0)
		return;
	TAILQ_FOREACH(c, &cred_all, entry) {
		ncreds++;
		if (c->calls_day == cred_today())
			calls += c->calls_today;
		fails += c->failures;
		queued += c->nqueue;
		if (!c->removed && peer != NULL && acl_cred_allows(c, peer))
			nshown++;
	}
	while (send_outcome_name(n) != NULL)
		n++;
	pk = rpc_reply_begin(req, 8 + n + 3 + METRICS_NERRCODES +
	    METRICS_NBUCKETS + 2 + 1);
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
		    send_stats[i]);
	rpc_pack_kv_int(pk, "start_time", (int64_t)wx_start_time);
	rpc_pack_kv_int(pk, "protocol", WXPUSHD_PROTOCOL);
	for (i = 0, cum = 0; i < SEND_NOUTCOMES; i++)
		cum += metrics_sends_nocred[i];
	rpc_pack_kv_int(pk, "sends_no_appid", (int64_t)cum);
	for (i = 0; i < METRICS_NERRCODES; i++)
		method_pack_outcome(pk, "sends_wechat_",
		    metrics_errcode_name(i), metrics_sends_errcode[i]);
	cum = 0;
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->buckets[i];
		method_pack_outcome(pk, "send_duration_le_",
		    metrics_bucket_name(i), cum);
	}
	rpc_pack_kv_int(pk, "send_duration_count", (int64_t)h->count);
	rpc_pack_kv_int(pk, "send_duration_sum_us", (int64_t)h->sum_us);
	rpc_pack_str(pk, "appids");
	msgpack_pack_map(pk, nshown);
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && peer != NULL && acl_cred_allows(c, peer))
			method_stats_cred(pk, c);
	}
	rpc_reply_end(req);
}
