/*
 * libFuzzer target for message.c and the kinds: hostile send params, as
 * MessagePack; every accepted body must equal a jansson-built reference.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"

#define FUZZ_MESSAGE_MAX	65536	/* the daemon's default max_request */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether s is one line of printable ASCII, as an error message must be. */
static int
fuzz_message_line(const char *s)
{
	if (s == NULL || *s == '\0')
		return (0);
	for (; *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return (0);
	}
	return (1);
}

/* The value of key in map o, or NULL. */
static const msgpack_object *
fuzz_message_get(const msgpack_object *o, const char *key)
{
	uint32_t	i;
	size_t		len = strlen(key);

	if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	for (i = 0; i < o->via.map.size; i++) {
		if (o->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR &&
		    o->via.map.ptr[i].key.via.str.size == len &&
		    memcmp(o->via.map.ptr[i].key.via.str.ptr, key, len) == 0)
			return (&o->via.map.ptr[i].val);
	}
	return (NULL);
}

/* Set obj.key to the string o, if o is not NULL. */
static void
fuzz_message_set(json_t *obj, const char *key, const msgpack_object *o)
{
	json_t	*v;

	if (o == NULL)
		return;
	if (o->type != MSGPACK_OBJECT_STR ||
	    (v = json_stringn(o->via.str.ptr, o->via.str.size)) == NULL ||
	    json_object_set_new(obj, key, v) != 0)
		abort();
}

/*
 * The body as the old message.c built it, a jansson tree, from accepted
 * params: the reference the direct writer must match.
 */
static json_t *
fuzz_message_reference(const msgpack_object *params)
{
	const msgpack_object	*o, *mp, *content;
	json_t			*root, *obj, *data;
	char			 scene[32];
	uint64_t		 v = 0;
	uint32_t		 i;

	if ((root = json_object()) == NULL)
		abort();
	fuzz_message_set(root, "touser", fuzz_message_get(params, "touser"));
	fuzz_message_set(root, "template_id",
	    fuzz_message_get(params, "template_id"));
	fuzz_message_set(root, "url", fuzz_message_get(params, "url"));
	if ((mp = fuzz_message_get(params, "miniprogram")) != NULL) {
		if ((obj = json_object()) == NULL ||
		    json_object_set_new(root, "miniprogram", obj) != 0)
			abort();
		fuzz_message_set(obj, "appid", fuzz_message_get(mp, "appid"));
		fuzz_message_set(obj, "pagepath",
		    fuzz_message_get(mp, "pagepath"));
	}
	o = fuzz_message_get(params, "scene");
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		v = o->via.u64;
	else {
		for (i = 0; i < o->via.str.size; i++)
			v = v * 10 + (uint64_t)(o->via.str.ptr[i] - '0');
	}
	snprintf(scene, sizeof scene, "%llu", (unsigned long long)v);
	if (json_object_set_new(root, "scene", json_string(scene)) != 0)
		abort();
	fuzz_message_set(root, "title", fuzz_message_get(params, "title"));
	content = fuzz_message_get(fuzz_message_get(params, "data"), "content");
	if ((data = json_object()) == NULL ||
	    json_object_set_new(root, "data", data) != 0 ||
	    (obj = json_object()) == NULL ||
	    json_object_set_new(data, "content", obj) != 0)
		abort();
	fuzz_message_set(obj, "value", fuzz_message_get(content, "value"));
	fuzz_message_set(obj, "color", fuzz_message_get(content, "color"));
	return (root);
}

/* Set obj.key to the members of map o named in order (strings), in order. */
static void
fuzz_message_members(json_t *obj, const char *key, const msgpack_object *o,
    const char *const *order)
{
	json_t	*sub;

	if (o == NULL)
		return;
	if ((sub = json_object()) == NULL ||
	    json_object_set_new(obj, key, sub) != 0)
		abort();
	for (; *order != NULL; order++)
		fuzz_message_set(sub, *order, fuzz_message_get(o, *order));
}

/* Set obj.data to the data map o: each name -> {value, color}, in order. */
static void
fuzz_message_data(json_t *obj, const msgpack_object *o)
{
	static const char *const order[] = { "value", "color", NULL };
	const msgpack_object	*k;
	json_t			*data;
	char			 name[64];
	uint32_t		 i;

	if ((data = json_object()) == NULL ||
	    json_object_set_new(obj, "data", data) != 0)
		abort();
	for (i = 0; i < o->via.map.size; i++) {
		k = &o->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >=
		    sizeof name)
			abort();
		memcpy(name, k->via.str.ptr, k->via.str.size);
		name[k->via.str.size] = '\0';
		fuzz_message_members(data, name, &o->via.map.ptr[i].val, order);
	}
}

/*
 * The body of the other kinds, built with jansson from accepted params in
 * the order WeChat documents: the reference for the direct writer.
 */
static json_t *
fuzz_message_reference_kind(const char *kind, const msgpack_object *params)
{
	static const char *const mp[] = { "appid", "pagepath", NULL };
	static const char *const text[] = { "content", NULL };
	static const char *const image[] = { "media_id", NULL };
	static const char *const link[] = { "title", "description", "url",
	    "thumb_url", NULL };
	static const char *const mppage[] = { "title", "appid", "pagepath",
	    "thumb_media_id", NULL };
	static const char *const article[] = { "title", "description", "url",
	    "picurl", NULL };
	const msgpack_object	*o, *cmid;
	json_t			*root, *news, *arr, *art;

	if ((root = json_object()) == NULL)
		abort();
	fuzz_message_set(root, "touser", fuzz_message_get(params, "touser"));
	if (strcmp(kind, "custom") == 0) {
		fuzz_message_set(root, "msgtype",
		    fuzz_message_get(params, "msgtype"));
		fuzz_message_members(root, "text", fuzz_message_get(params,
		    "text"), text);
		fuzz_message_members(root, "image", fuzz_message_get(params,
		    "image"), image);
		fuzz_message_members(root, "link", fuzz_message_get(params,
		    "link"), link);
		fuzz_message_members(root, "miniprogrampage",
		    fuzz_message_get(params, "miniprogrampage"), mppage);
		if ((o = fuzz_message_get(params, "news")) != NULL) {
			o = fuzz_message_get(o, "articles");
			if ((news = json_object()) == NULL ||
			    json_object_set_new(root, "news", news) != 0 ||
			    (arr = json_array()) == NULL ||
			    json_object_set_new(news, "articles", arr) != 0 ||
			    o == NULL || o->type != MSGPACK_OBJECT_ARRAY ||
			    o->via.array.size != 1)
				abort();
			fuzz_message_members(root, "tmp",
			    &o->via.array.ptr[0], article);
			art = json_incref(json_object_get(root, "tmp"));
			json_object_del(root, "tmp");
			if (json_array_append_new(arr, art) != 0)
				abort();
		}
		return (root);
	}
	fuzz_message_set(root, "template_id",
	    fuzz_message_get(params, "template_id"));
	if (strcmp(kind, "template") == 0) {
		fuzz_message_set(root, "url", fuzz_message_get(params, "url"));
		fuzz_message_members(root, "miniprogram",
		    fuzz_message_get(params, "miniprogram"), mp);
		if ((cmid = fuzz_message_get(params, "client_msg_id")) == NULL)
			cmid = fuzz_message_get(params, "idempotency_key");
		fuzz_message_set(root, "client_msg_id", cmid);
	} else if (strcmp(kind, "subscribe") == 0) {
		fuzz_message_set(root, "page", fuzz_message_get(params, "page"));
		fuzz_message_members(root, "miniprogram",
		    fuzz_message_get(params, "miniprogram"), mp);
	} else if (strcmp(kind, "mini_subscribe") == 0) {
		fuzz_message_set(root, "page", fuzz_message_get(params, "page"));
		fuzz_message_set(root, "miniprogram_state",
		    fuzz_message_get(params, "miniprogram_state"));
		fuzz_message_set(root, "lang", fuzz_message_get(params, "lang"));
	} else
		abort();
	fuzz_message_data(root, fuzz_message_get(params, "data"));
	return (root);
}

/*
 * Parse params; a body must read back as JSON, equal the jansson-built
 * reference as a value and as bytes, and dump to the same bytes.
 */
static void
fuzz_message_one(const msgpack_object *params)
{
	struct message		 msg;
	struct rpc_error	 err;
	json_t			*j, *ref;
	char			*again;

	memset(&err, 0, sizeof err);
	if (message_parse(params, &msg, &err) != 0) {
		if (err.code == NULL ||
		    strcmp(err.code, "invalid_request") != 0 || err.retryable ||
		    !fuzz_message_line(err.field) ||
		    !fuzz_message_line(err.message) || msg.json != NULL ||
		    msg.idempotency_key != NULL || msg.len != 0)
			abort();
		message_free(&msg);
		return;
	}
	if (msg.json == NULL || strlen(msg.json) != msg.len ||
	    msg.appid[0] == '\0')
		abort();
	if ((j = json_loadb(msg.json, msg.len, 0, NULL)) == NULL ||
	    json_object_get(j, "appid") != NULL ||
	    json_object_get(j, "kind") != NULL ||
	    json_object_get(j, "idempotency_key") != NULL)
		abort();
	if (msg.kind == &kind_subscribe_once &&
	    (!json_is_string(json_object_get(j, "scene")) ||
	    !json_is_string(json_object_get(j, "title"))))
		abort();
	again = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (again == NULL || strcmp(again, msg.json) != 0)
		abort();
	free(again);
	if (msg.kind == &kind_subscribe_once)
		ref = fuzz_message_reference(params);
	else
		ref = fuzz_message_reference_kind(msg.kind->name, params);
	if (!json_equal(j, ref))
		abort();
	again = json_dumps(ref, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (again == NULL || strcmp(again, msg.json) != 0)
		abort();
	free(again);
	json_decref(ref);
	json_decref(j);
	message_free(&msg);
	if (msg.json != NULL || msg.idempotency_key != NULL)
		abort();
}

/* Decode the input as one MessagePack object and treat it as send params. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone	*zone;
	msgpack_object		 o;
	size_t			 objlen, off = 0;

	if (size > FUZZ_MESSAGE_MAX)
		return (0);
	/* msgpack-c allocates for declared sizes: let rpc_scan refuse them. */
	if (rpc_scan(data, size, size, &objlen) != RPC_SCAN_OK)
		return (0);
	if (zone == NULL && (zone = msgpack_zone_new(8192)) == NULL)
		abort();
	if (msgpack_unpack((const char *)data, objlen, &off, zone, &o) ==
	    MSGPACK_UNPACK_SUCCESS) {
		fuzz_message_one(&o);
		/* The RPC shape: params is an array holding one map. */
		if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 1)
			fuzz_message_one(&o.via.array.ptr[0]);
	}
	msgpack_zone_clear(zone);
	return (0);
}
