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

	(void)params;
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
	const msgpack_object *o = rpc_map_get(params, "appid");
	char appid[WX_APPID_MAX + 1];
	const char *filter = NULL;
	msgpack_packer *pk;
	struct cred *c;
	uint32_t n = 0;

	if (o != NULL) {
		if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
		    o->via.str.size > WX_APPID_MAX) {
			rpc_reply_errorx(req, "invalid_request", 0, "appid",
			    "appid must be a string of 1..%d characters",
			    WX_APPID_MAX);
			return;
		}
		memcpy(appid, o->via.str.ptr, o->via.str.size);
		appid[o->via.str.size] = '\0';
		filter = appid;
	}
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && method_status_match(c, filter))
			n++;
	}
	if (filter != NULL && n == 0) {
		rpc_reply_errorx(req, "unknown_appid", 0, "appid",
		    "the appid is not configured here");
		return;
	}
	pk = rpc_reply_begin(req, 3);
	rpc_pack_kv_str(pk, "version", PACKAGE_VERSION);
	rpc_pack_kv_int(pk, "uptime", (int64_t)(time(NULL) - wx_start_time));
	rpc_pack_str(pk, "credentials");
	msgpack_pack_array(pk, n);
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && method_status_match(c, filter))
			method_pack_cred(pk, c);
	}
	rpc_reply_end(req);
}

/* Counters for monitoring; docs/protocol.md lists them. */
static void
method_stats(struct request *req, const msgpack_object *params)
{
	msgpack_packer *pk;
	struct cred *c;
	uint64_t calls = 0, fails = 0, queued = 0;
	uint32_t ncreds = 0;
	int i, n = 0;

	(void)params;
	TAILQ_FOREACH(c, &cred_all, entry) {
		ncreds++;
		if (c->calls_day == cred_today())
			calls += c->calls_today;
		fails += c->failures;
		queued += c->nqueue;
	}
	while (send_outcome_name(n) != NULL)
		n++;
	pk = rpc_reply_begin(req, 8 + n);
	rpc_pack_kv_int(pk, "uptime", (int64_t)(time(NULL) - wx_start_time));
	rpc_pack_kv_int(pk, "clients", (int64_t)server_nclients());
	rpc_pack_kv_int(pk, "credentials", ncreds);
	rpc_pack_kv_int(pk, "token_calls_today", (int64_t)calls);
	rpc_pack_kv_int(pk, "refresh_failures", (int64_t)fails);
	rpc_pack_kv_int(pk, "queued", (int64_t)queued);
	rpc_pack_kv_int(pk, "upstream_inflight", (int64_t)upstream_inflight());
	rpc_pack_kv_int(pk, "requests", (int64_t)rpc_requests);
	for (i = 0; i < n; i++) {
		char key[48];

		snprintf(key, sizeof key, "sends_%s", send_outcome_name(i));
		rpc_pack_kv_int(pk, key, (int64_t)send_stats[i]);
	}
	rpc_reply_end(req);
}
