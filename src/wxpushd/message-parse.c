/*
 * A send's params: the kind it names (the kind table: one row per kind, each
 * kind one file kind-NAME.c), the fields every kind shares (appid, kind,
 * idempotency_key), then the kind's own checks and body. Kept apart from
 * message.c so that calls go one way: here -> kind-*.c -> message.c.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

/* Every kind of message; the first is the one a send without kind means. */
static const struct kind *const message_parse_kinds[] = {
	&kind_subscribe_once,
	&kind_template,
	&kind_subscribe,
	&kind_mini_subscribe,
	&kind_custom,
};
#define MESSAGE_PARSE_NKINDS	(sizeof message_parse_kinds / sizeof message_parse_kinds[0])

/* The kind named name[0..len), or NULL. */
const struct kind *
message_parse_kind(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < MESSAGE_PARSE_NKINDS; i++) {
		if (strlen(message_parse_kinds[i]->name) == len &&
		    memcmp(message_parse_kinds[i]->name, name, len) == 0)
			return (message_parse_kinds[i]);
	}
	return (NULL);
}

/* The kind params name: absent means the first; NULL and err if unknown. */
static const struct kind *
message_parse_kind_of(const msgpack_object *params, struct rpc_error *err)
{
	const msgpack_object *o = rpc_map_get(params, "kind");
	const struct kind *k;

	if (o == NULL)
		return (message_parse_kinds[0]);
	if (message_want_str(o, "kind", err) != 0)
		return (NULL);
	if ((k = message_parse_kind(o->via.str.ptr, o->via.str.size)) == NULL)
		message_error(err, "kind", "kind must be one of: "
		    "subscribe_once, template, subscribe, mini_subscribe, "
		    "custom");
	return (k);
}

/*
 * Validate the params of a send request and build the WeChat body. Returns 0
 * with msg filled (the caller frees it with message_free), or -1 with err
 * filled and msg zeroed. Whatever msg held before is overwritten.
 */
int
message_parse(const msgpack_object *params, struct message *msg,
    struct rpc_error *err)
{
	const msgpack_object	*vals[MESSAGE_KEYS_MAX], *v;
	const struct kind	*kind;
	size_t			 i;

	memset(msg, 0, sizeof *msg);
	if (params == NULL || params->type != MSGPACK_OBJECT_MAP)
		return (message_error(err, "params", "params must be a map"));
	if ((kind = message_parse_kind_of(params, err)) == NULL)
		return (-1);
	if (message_fields(params, NULL, kind->keys, kind->nkeys, vals,
	    err) != 0)
		return (-1);
	for (i = 0; i < kind->nkeys; i++) {
		if (vals[i] == NULL && kind->keys[i].required)
			return (message_missing(err, NULL, &kind->keys[i]));
	}
	if (message_id(vals[MESSAGE_APPID], "appid", WX_APPID_MAX, err) != 0)
		return (-1);
	/* Before build: a kind may put the key in its body (client_msg_id). */
	if (vals[MESSAGE_IDEMPOTENCY_KEY] != NULL &&
	    message_ikey(vals[MESSAGE_IDEMPOTENCY_KEY], "idempotency_key",
	    err) != 0)
		return (-1);
	if (kind->build(vals, msg, err) != 0) {
		message_free(msg);
		return (-1);
	}
	v = vals[MESSAGE_APPID];
	memcpy(msg->appid, v->via.str.ptr, v->via.str.size);
	msg->appid[v->via.str.size] = '\0';
	msg->kind = kind;
	if ((v = vals[MESSAGE_IDEMPOTENCY_KEY]) != NULL)
		msg->idempotency_key = xstrndup(v->via.str.ptr,
		    v->via.str.size);
	return (0);
}

