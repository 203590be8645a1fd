/*
 * The mini program's subscribe message (POST /cgi-bin/message/subscribe/send):
 * its params, checked (each data value by its name's type prefix, so that
 * WeChat's 47003 is caught before the call), and the exact body in the
 * documented key order.
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

#define KIND_MS_ID_MAX		128	/* touser, template_id: bytes */

enum {
	KIND_MS_TOUSER = MESSAGE_NCOMMON, KIND_MS_TEMPLATE_ID, KIND_MS_DATA,
	KIND_MS_PAGE, KIND_MS_STATE, KIND_MS_LANG, KIND_MS_NKEYS
};
static const struct message_key kind_ms_keys[KIND_MS_NKEYS] = {
	MESSAGE_COMMON_KEYS, MESSAGE_REQ("touser"), MESSAGE_REQ("template_id"),
	MESSAGE_REQ("data"), MESSAGE_KEY("page"),
	MESSAGE_KEY("miniprogram_state"), MESSAGE_KEY("lang")
};
static const char *const kind_ms_states[] = { "developer", "trial", "formal",
	NULL };
static const char *const kind_ms_langs[] = { "zh_CN", "en_US", "zh_HK",
	"zh_TW", NULL };

static int	kind_mini_subscribe_build(const msgpack_object **,
		    struct message *, struct rpc_error *);

const struct kind kind_mini_subscribe = {
	.name = "mini_subscribe",
	.endpoint = WXAPI_SUBSCRIBE_SEND,
	.keys = kind_ms_keys,
	.nkeys = KIND_MS_NKEYS,
	.build = kind_mini_subscribe_build,
};

/* o must be one of the strings in set (listed in the error as list). */
static int
kind_mini_subscribe_oneof(const msgpack_object *o, const char *field,
    const char *const *set, const char *list, struct rpc_error *err)
{
	size_t	i;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	for (i = 0; set[i] != NULL; i++) {
		if (rpc_str_eq(o, set[i]))
			return (0);
	}
	return (message_error(err, field, "%s must be one of: %s", field,
	    list));
}

/* Check the kind's own params, then write the body into msg. */
static int
kind_mini_subscribe_build(const msgpack_object **top, struct message *msg,
    struct rpc_error *err)
{
	struct message_datum	 data[MESSAGE_DATA_MAX];
	struct message_part	 parts[MESSAGE_PARTS_MAX];
	size_t			 np, nd;

	if (message_id(top[KIND_MS_TOUSER], "touser", KIND_MS_ID_MAX,
	    err) != 0 ||
	    message_id(top[KIND_MS_TEMPLATE_ID], "template_id",
	    KIND_MS_ID_MAX, err) != 0)
		return (-1);
	if (top[KIND_MS_PAGE] != NULL &&
	    message_path_field(top[KIND_MS_PAGE], "page", err) != 0)
		return (-1);
	if (top[KIND_MS_STATE] != NULL && kind_mini_subscribe_oneof(
	    top[KIND_MS_STATE], "miniprogram_state", kind_ms_states,
	    "developer, trial, formal", err) != 0)
		return (-1);
	if (top[KIND_MS_LANG] != NULL && kind_mini_subscribe_oneof(
	    top[KIND_MS_LANG], "lang", kind_ms_langs,
	    "zh_CN, en_US, zh_HK, zh_TW", err) != 0)
		return (-1);
	if (message_data(top[KIND_MS_DATA], "data", 0, MESSAGE_DATA_TYPED,
	    data, &nd, err) != 0)
		return (-1);

	/* Valid: build the body, its keys in the documented order. */
	np = 0;
	message_part_str(parts, &np, "{\"touser\":", top[KIND_MS_TOUSER]);
	message_part_str(parts, &np, ",\"template_id\":",
	    top[KIND_MS_TEMPLATE_ID]);
	if (top[KIND_MS_PAGE] != NULL)
		message_part_str(parts, &np, ",\"page\":", top[KIND_MS_PAGE]);
	if (top[KIND_MS_STATE] != NULL)
		message_part_str(parts, &np, ",\"miniprogram_state\":",
		    top[KIND_MS_STATE]);
	if (top[KIND_MS_LANG] != NULL)
		message_part_str(parts, &np, ",\"lang\":", top[KIND_MS_LANG]);
	message_part_data(parts, &np, ",\"data\":{", data, nd);
	message_part(parts, &np, "}", NULL, 0);
	message_body(msg, parts, np);
	return (0);
}
