/*
 * The call method: any WeChat API path the configuration allows for the
 * appid (its account's or platform's apis list), sent with the appid's
 * current token through send.c's lanes (token wait, compare-and-refresh, -1
 * backoff, deadline), answered with WeChat's JSON as a map from which every
 * credential field has been stripped. Counted by the apis entry that allowed
 * the path, so the metrics' labels are bounded by the configuration.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "wxpushd.h"

#define CALL_QUERY_MAX		32	/* parameters in query */
#define CALL_QUERY_KEY_MAX	64
#define CALL_QUERY_VALUE_MAX	1024
#define CALL_DEPTH_MAX		12	/* nesting of a body or an answer */
#define CALL_STATS_MAX		1024	/* paths counted; more go to "other" */

/* One call: what each attempt sends, and where it is counted. */
struct call {
	const char		*method;	/* "GET" or "POST" */
	char			 path[WXAPI_PATH_MAX + 1];
	char			*query;		/* the caller's part, or NULL */
	char			*body;		/* NULL for GET */
	size_t			 len;
	struct call_stat	*stat;
};

static struct call_stat	*call_stats;
static size_t		 call_nstats;
static struct call_stat	 call_stat_other = { "other", { 0 }, 0, 0 };

static struct upstream_call	*call_start(void *, const char *, upstream_cb,
				    void *);
static void	call_answer(void *, struct request *,
		    const struct upstream_reply *);
static void	call_done(void *, enum send_outcome, long);
static void	call_free(void *);

static const struct send_job call_job = {
	.endpoint = WXAPI_CALL,
	.start = call_start,
	.answer = call_answer,
	.done = call_done,
	.free = call_free,
};

/* The counters of apis entry name, made at its first call. */
static struct call_stat *
call_stat_get(const char *name)
{
	size_t i;

	for (i = 0; i < call_nstats; i++) {
		if (strcmp(call_stats[i].path, name) == 0)
			return (&call_stats[i]);
	}
	if (call_nstats >= CALL_STATS_MAX)
		return (&call_stat_other);
	call_stats = xreallocarray(call_stats, call_nstats + 1,
	    sizeof *call_stats);
	memset(&call_stats[call_nstats], 0, sizeof *call_stats);
	call_stats[call_nstats].path = xstrdup(name);
	return (&call_stats[call_nstats++]);
}

/* The counters by path: i from 0 until NULL ("other" last, if used). */
const struct call_stat *
method_call_stat(size_t i)
{
	uint64_t n = 0;
	int o;

	if (i < call_nstats)
		return (&call_stats[i]);
	for (o = 0; o < SEND_NOUTCOMES; o++)
		n += call_stat_other.outcome[o];
	return (i == call_nstats && n != 0 ? &call_stat_other : NULL);
}

/* Free the counters at exit. */
void
method_call_shutdown(void)
{
	size_t i;

	for (i = 0; i < call_nstats; i++)
		free(call_stats[i].path);
	free(call_stats);
	call_stats = NULL;
	call_nstats = 0;
}

static struct upstream_call *
call_start(void *arg, const char *token, upstream_cb cb, void *cbarg)
{
	struct call *k = arg;

	return (wxapi_request_path(WXAPI_CALL, k->method, k->path, token,
	    k->query, k->body, k->len, cb, cbarg));
}

static void
call_done(void *arg, enum send_outcome o, long errcode)
{
	struct call *k = arg;

	(void)errcode;
	if (k->stat != NULL)
		k->stat->outcome[o]++;
}

static void
call_free(void *arg)
{
	struct call *k = arg;

	free(k->query);
	free(k->body);
	free(k);
}

/*
 * How many credential fields j holds, at any depth: call_pack leaves them
 * out. j is only read: the answer may be upstream.c's shared object.
 */
static uint64_t
call_secrets(const json_t *j, int depth)
{
	const char *key;
	json_t *v;
	uint64_t n = 0;
	size_t i;

	if (depth > CALL_DEPTH_MAX)
		return (0);	/* refused later as too deep */
	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v) {
			if (wxapi_secret_field(key, strlen(key)))
				n++;
			else
				n += call_secrets(v, depth + 1);
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			n += call_secrets(v, depth + 1);
	}
	return (n);
}

/* The fields of object j that are not credentials: its packed map's size. */
static size_t
call_kept(const json_t *j)
{
	const char *key;
	json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)j, key, v) {
		if (!wxapi_secret_field(key, strlen(key)))
			n++;
	}
	return (n);
}

/*
 * Pack j into pk without its credential fields, at most CALL_DEPTH_MAX
 * deep; 0 or -1.
 */
static int
call_pack(msgpack_packer *pk, const json_t *j, int depth)
{
	const char *key;
	json_t *v;
	size_t i;

	if (depth > CALL_DEPTH_MAX)
		return (-1);
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, call_kept(j));
		json_object_foreach((json_t *)j, key, v) {
			if (wxapi_secret_field(key, strlen(key)))
				continue;
			msgpack_pack_str_with_body(pk, key, strlen(key));
			if (call_pack(pk, v, depth + 1) != 0)
				return (-1);
		}
		return (0);
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v) {
			if (call_pack(pk, v, depth + 1) != 0)
				return (-1);
		}
		return (0);
	case JSON_STRING:
		msgpack_pack_str_with_body(pk, json_string_value(j),
		    json_string_length(j));
		return (0);
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		return (0);
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		return (0);
	case JSON_TRUE:
		msgpack_pack_true(pk);
		return (0);
	case JSON_FALSE:
		msgpack_pack_false(pk);
		return (0);
	case JSON_NULL:
		msgpack_pack_nil(pk);
		return (0);
	}
	return (-1);
}

/*
 * WeChat accepted the call: bound its answer's size and depth, and reply
 * with it as the result map, its credential fields left out. r->json is
 * read, never changed.
 */
static void
call_answer(void *arg, struct request *req, const struct upstream_reply *r)
{
	struct call *k = arg;
	msgpack_sbuffer sb;
	msgpack_packer tmp, *pk;
	const char *key;
	json_t *v;
	uint64_t stripped;

	stripped = call_secrets(r->json, 0);
	if (stripped != 0) {
		log_warnx("call %s: %llu credential field%s stripped from "
		    "WeChat's answer", k->path, (unsigned long long)stripped,
		    stripped == 1 ? "" : "s");
		if (k->stat != NULL)
			k->stat->stripped += stripped;
	}
	/* Packed once aside to measure it; the reply is packed again. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&tmp, &sb, msgpack_sbuffer_write);
	if (call_pack(&tmp, r->json, 1) != 0 ||
	    sb.size > wx_conf->call_max_answer) {
		msgpack_sbuffer_destroy(&sb);
		if (k->stat != NULL)
			k->stat->too_large++;
		rpc_reply_errorx(req, "too_large", 0, NULL, "WeChat's answer "
		    "is larger than call_max_answer (%zu bytes) or nested "
		    "deeper than %d; WeChat carried out the call",
		    wx_conf->call_max_answer, CALL_DEPTH_MAX);
		return;
	}
	msgpack_sbuffer_destroy(&sb);
	pk = rpc_reply_begin(req, call_kept(r->json));
	json_object_foreach(r->json, key, v) {
		if (wxapi_secret_field(key, strlen(key)))
			continue;
		msgpack_pack_str_with_body(pk, key, strlen(key));
		call_pack(pk, v, 2);
	}
	rpc_reply_end(req);
}

/* A msgpack value as JSON (a call's body), at most CALL_DEPTH_MAX deep. */
static json_t *
call_json(const msgpack_object *o, int depth, const char **why)
{
	json_t *j, *v;
	uint32_t i;

	if (depth > CALL_DEPTH_MAX) {
		*why = "body is nested too deeply";
		return (NULL);
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return (json_null());
	case MSGPACK_OBJECT_BOOLEAN:
		return (json_boolean(o->via.boolean));
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX) {
			*why = "body has an integer out of range";
			return (NULL);
		}
		return (json_integer((json_int_t)o->via.u64));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (json_integer((json_int_t)o->via.i64));
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if ((j = json_real(o->via.f64)) == NULL)
			*why = "body has a number JSON cannot hold";
		return (j);
	case MSGPACK_OBJECT_STR:
		if ((j = json_stringn(o->via.str.ptr, o->via.str.size)) == NULL)
			*why = "body has a string that is not UTF-8";
		return (j);
	case MSGPACK_OBJECT_ARRAY:
		j = json_array();
		for (i = 0; i < o->via.array.size; i++) {
			if ((v = call_json(&o->via.array.ptr[i], depth + 1,
			    why)) == NULL) {
				json_decref(j);
				return (NULL);
			}
			json_array_append_new(j, v);
		}
		return (j);
	case MSGPACK_OBJECT_MAP:
		j = json_object();
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			if (kv->key.type != MSGPACK_OBJECT_STR) {
				*why = "body has a map key that is not a string";
				json_decref(j);
				return (NULL);
			}
			if ((v = call_json(&kv->val, depth + 1, why)) == NULL) {
				json_decref(j);
				return (NULL);
			}
			if (json_object_setn_new(j, kv->key.via.str.ptr,
			    kv->key.via.str.size, v) != 0) {
				*why = "body has a map key that is not UTF-8";
				json_decref(j);
				return (NULL);
			}
		}
		return (j);
	default:
		*why = "body holds binary or extension data";
		return (NULL);
	}
}

/* How deeply j nests (a scalar is 0); jansson bounds its own parse depth. */
static int
call_depth(const json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;
	int d, max = 0;

	if (json_is_object(j)) {
		json_object_foreach((json_t *)j, key, v) {
			if ((d = call_depth(v)) > max)
				max = d;
		}
		return (max + 1);
	}
	if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			if ((d = call_depth(v)) > max)
				max = d;
		}
		return (max + 1);
	}
	return (0);
}

/* Check a raw JSON body: one object or array, within the depth bound. */
static int
call_raw_body(const msgpack_object *o, const char **why)
{
	json_error_t err;
	json_t *j;
	int depth;

	if ((j = json_loadb(o->via.str.ptr, o->via.str.size,
	    JSON_REJECT_DUPLICATES, &err)) == NULL) {
		*why = "body is not valid JSON";
		return (-1);
	}
	if (!json_is_object(j) && !json_is_array(j)) {
		json_decref(j);
		*why = "body must be a JSON object or array";
		return (-1);
	}
	depth = call_depth(j);
	json_decref(j);
	if (depth > CALL_DEPTH_MAX) {
		*why = "body is nested too deeply";
		return (-1);
	}
	return (0);
}

/* Whether p[0..n) is at most max bytes of UTF-8 without control characters. */
static int
call_text_ok(const char *p, size_t n, size_t max)
{
	json_t *j;
	size_t i;

	if (n > max)
		return (0);
	for (i = 0; i < n; i++) {
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return (0);
	}
	if ((j = json_stringn(p, n)) == NULL)
		return (0);	/* not UTF-8 */
	json_decref(j);
	return (1);
}

/* Encode the caller's query map as k=v&...; 0, or -1 with *field, *why. */
static int
call_query(const msgpack_object *o, char **out, const char **why)
{
	struct evbuffer *b;
	const msgpack_object_kv *kv;
	char *enc;
	uint32_t i;
	size_t len;

	*out = NULL;
	if (o->type != MSGPACK_OBJECT_MAP) {
		*why = "query must be a map of strings";
		return (-1);
	}
	if (o->via.map.size > CALL_QUERY_MAX) {
		*why = "query has more than 32 parameters";
		return (-1);
	}
	if (o->via.map.size == 0)
		return (0);
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	for (i = 0; i < o->via.map.size; i++) {
		kv = &o->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    kv->val.type != MSGPACK_OBJECT_STR ||
		    !valid_appid(kv->key.via.str.ptr, kv->key.via.str.size) ||
		    kv->key.via.str.size > CALL_QUERY_KEY_MAX ||
		    !call_text_ok(kv->val.via.str.ptr, kv->val.via.str.size,
		    CALL_QUERY_VALUE_MAX)) {
			*why = "query maps names of 1..64 letters, digits, '_' "
			    "or '-' to strings of at most 1024 bytes without "
			    "control characters";
			evbuffer_free(b);
			return (-1);
		}
		if (wxapi_query_reserved(kv->key.via.str.ptr,
		    kv->key.via.str.size)) {
			*why = "query may not name a token or secret: the "
			    "daemon adds the token";
			evbuffer_free(b);
			return (-1);
		}
		if ((enc = evhttp_uriencode(kv->val.via.str.ptr,
		    kv->val.via.str.size, 0)) == NULL)
			fatalx("evhttp_uriencode");
		evbuffer_add_printf(b, "%s%.*s=%s", i > 0 ? "&" : "",
		    (int)kv->key.via.str.size, kv->key.via.str.ptr, enc);
		free(enc);
	}
	len = evbuffer_get_length(b);
	*out = xmalloc(len + 1);
	evbuffer_remove(b, *out, len);
	(*out)[len] = '\0';
	evbuffer_free(b);
	return (0);
}

/* The apis list that governs call for credential c (NULL: none). */
static const struct apis *
call_apis(const struct cred *c)
{
	const struct account_conf *a;
	const struct component_conf *comp;
	const char *parent;

	if (cred_kind(c) == CRED_OFFICIAL)
		return ((a = official_account(c)) != NULL ? &a->apis : NULL);
	if (cred_kind(c) == CRED_AUTHORIZER &&
	    (parent = authorizer_component_appid(c)) != NULL &&
	    (comp = config_find_component(wx_conf, parent)) != NULL)
		return (&comp->apis);
	return (NULL);
}

/* Reply that the body is over call_max_body, and free k. */
static void
call_body_too_large(struct request *req, struct call *k)
{
	call_free(k);
	rpc_reply_errorx(req, "invalid_request", 0, "body", "body is larger "
	    "than call_max_body (%zu bytes)", wx_conf->call_max_body);
}

/* Reply invalid_request about field. */
static void
call_invalid(struct request *req, const char *field, const char *why)
{
	rpc_reply_errorx(req, "invalid_request", 0, field, "%s", why);
}

void
method_call(struct request *req, const msgpack_object *params)
{
	static const char *keys[] = { "appid", "path", "method", "query",
	    "body" };
	enum { K_APPID, K_PATH, K_METHOD, K_QUERY, K_BODY, K_N };
	const msgpack_object *v[K_N] = { NULL };
	char appid[WX_APPID_MAX + 1];
	const struct apis *apis;
	const char *why, *entry;
	struct call *k;
	struct cred *c;
	json_t *j;
	uint32_t i;
	size_t n;

	if (params == NULL || params->type != MSGPACK_OBJECT_MAP) {
		call_invalid(req, "params", "params must be a map");
		return;
	}
	for (i = 0; i < params->via.map.size; i++) {
		const msgpack_object *key = &params->via.map.ptr[i].key;

		for (n = 0; n < K_N; n++) {
			if (key->type == MSGPACK_OBJECT_STR &&
			    rpc_str_eq(key, keys[n]))
				break;
		}
		if (n == K_N) {
			call_invalid(req, "params", "unknown parameter: call "
			    "takes appid, path, method, query and body");
			return;
		}
		if (v[n] != NULL) {
			call_invalid(req, keys[n], "parameter given twice");
			return;
		}
		v[n] = &params->via.map.ptr[i].val;
	}
	if (v[K_APPID] == NULL || v[K_APPID]->type != MSGPACK_OBJECT_STR ||
	    !valid_appid(v[K_APPID]->via.str.ptr, v[K_APPID]->via.str.size)) {
		call_invalid(req, "appid", "appid is 1..64 bytes of A-Z a-z "
		    "0-9 _ -");
		return;
	}
	memcpy(appid, v[K_APPID]->via.str.ptr, v[K_APPID]->via.str.size);
	appid[v[K_APPID]->via.str.size] = '\0';
	if (v[K_PATH] == NULL || v[K_PATH]->type != MSGPACK_OBJECT_STR) {
		call_invalid(req, "path", "path is required: a string");
		return;
	}
	if (!wxapi_path_check(v[K_PATH]->via.str.ptr, v[K_PATH]->via.str.size,
	    0, &why)) {
		call_invalid(req, "path", why);
		return;
	}
	k = xcalloc(1, sizeof *k);
	memcpy(k->path, v[K_PATH]->via.str.ptr, v[K_PATH]->via.str.size);
	k->method = v[K_BODY] != NULL ? "POST" : "GET";
	if (v[K_METHOD] != NULL) {
		if (rpc_str_eq(v[K_METHOD], "GET"))
			k->method = "GET";
		else if (rpc_str_eq(v[K_METHOD], "POST"))
			k->method = "POST";
		else {
			call_free(k);
			call_invalid(req, "method", "method is GET or POST");
			return;
		}
	}
	if (v[K_QUERY] != NULL && call_query(v[K_QUERY], &k->query,
	    &why) != 0) {
		call_free(k);
		call_invalid(req, "query", why);
		return;
	}
	if (v[K_BODY] != NULL) {
		if (strcmp(k->method, "GET") == 0) {
			call_free(k);
			call_invalid(req, "body", "a GET has no body");
			return;
		}
		if (v[K_BODY]->type == MSGPACK_OBJECT_STR) {
			if (v[K_BODY]->via.str.size > wx_conf->call_max_body) {
				call_body_too_large(req, k);
				return;
			}
			if (call_raw_body(v[K_BODY], &why) != 0) {
				call_free(k);
				call_invalid(req, "body", why);
				return;
			}
			k->len = v[K_BODY]->via.str.size;
			k->body = xmalloc(k->len + 1);
			memcpy(k->body, v[K_BODY]->via.str.ptr, k->len);
			k->body[k->len] = '\0';
		} else if (v[K_BODY]->type == MSGPACK_OBJECT_MAP) {
			if ((j = call_json(v[K_BODY], 1, &why)) == NULL) {
				call_free(k);
				call_invalid(req, "body", why);
				return;
			}
			k->body = json_dumps(j, JSON_COMPACT);
			json_decref(j);
			if (k->body == NULL)
				fatalx("json_dumps");
			k->len = strlen(k->body);
			if (k->len > wx_conf->call_max_body) {
				call_body_too_large(req, k);
				return;
			}
		} else {
			call_free(k);
			call_invalid(req, "body", "body is a map or a string "
			    "of JSON");
			return;
		}
	} else if (strcmp(k->method, "POST") == 0) {
		k->body = xstrdup("{}");
		k->len = 2;
	}

	c = cred_lookup(appid);
	if (c == NULL || cred_removed(c) || (cred_kind(c) != CRED_OFFICIAL &&
	    cred_kind(c) != CRED_AUTHORIZER)) {
		call_free(k);
		rpc_reply_errorx(req, "unknown_appid", 0, "appid", "the appid "
		    "is not an account or authorizer configured here");
		return;
	}
	if (req->client == NULL || !cred_allows(c, &req->client->peer)) {
		call_free(k);
		rpc_reply_errorx(req, "forbidden", 0, "appid", "this user may "
		    "not use this appid");
		return;
	}
	if (wxapi_path_secret(k->path, strlen(k->path))) {
		log_info("%s: call to %s refused: it returns credentials",
		    appid, k->path);
		call_free(k);
		rpc_reply_errorx(req, "forbidden", 0, "path", "this path "
		    "returns credentials and can never be called");
		return;
	}
	apis = call_apis(c);
	if (apis == NULL ||
	    (entry = config_apis_match(apis, k->path, strlen(k->path))) ==
	    NULL) {
		log_info("%s: call to %s refused: not in apis", appid, k->path);
		call_free(k);
		rpc_reply_errorx(req, "forbidden", 0, "path", "this path is "
		    "not in the apis list of the appid's %s",
		    cred_kind(c) == CRED_OFFICIAL ? "account" : "platform");
		return;
	}
	k->stat = call_stat_get(entry);
	send_job(req, appid, &call_job, k);
}
