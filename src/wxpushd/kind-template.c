/*
 * The template message (POST /cgi-bin/message/template/send): its params,
 * checked, and the exact body in the documented key order. WeChat answers
 * with a msgid, which send.c returns. client_msg_id, WeChat's own
 * de-duplication key, is the caller's or else the idempotency key.
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

#define KIND_TPL_ID_MAX		128	/* touser, template_id: bytes */

enum {
	KIND_TPL_TOUSER = MESSAGE_NCOMMON, KIND_TPL_TEMPLATE_ID, KIND_TPL_DATA,
	KIND_TPL_URL, KIND_TPL_MINIPROGRAM, KIND_TPL_CLIENT_MSG_ID,
	KIND_TPL_NKEYS
};
static const struct message_key kind_tpl_keys[KIND_TPL_NKEYS] = {
	MESSAGE_COMMON_KEYS, MESSAGE_REQ("touser"), MESSAGE_REQ("template_id"),
	MESSAGE_REQ("data"), MESSAGE_KEY("url"), MESSAGE_KEY("miniprogram"),
	MESSAGE_KEY("client_msg_id")
};

static int	kind_template_build(const msgpack_object **, struct message *,
		    struct rpc_error *);

const struct kind kind_template = {
	.name = "template",
	.endpoint = WXAPI_TEMPLATE_SEND,
	.keys = kind_tpl_keys,
	.nkeys = KIND_TPL_NKEYS,
	.build = kind_template_build,
};

/* Check the kind's own params, then write the body into msg. */
static int
kind_template_build(const msgpack_object **top, struct message *msg,
    struct rpc_error *err)
{
	struct message_datum	 data[MESSAGE_DATA_MAX];
	const msgpack_object	*mp[MESSAGE_NMP], *cmid;
	struct message_part	 parts[MESSAGE_PARTS_MAX];
	size_t			 np, nd;

	if (message_id(top[KIND_TPL_TOUSER], "touser", KIND_TPL_ID_MAX,
	    err) != 0 ||
	    message_id(top[KIND_TPL_TEMPLATE_ID], "template_id",
	    KIND_TPL_ID_MAX, err) != 0)
		return (-1);
	if (top[KIND_TPL_URL] != NULL && message_url(top[KIND_TPL_URL], err) != 0)
		return (-1);
	if (top[KIND_TPL_MINIPROGRAM] != NULL &&
	    message_miniprogram_opt(top[KIND_TPL_MINIPROGRAM], mp, 0, err) != 0)
		return (-1);
	if ((cmid = top[KIND_TPL_CLIENT_MSG_ID]) != NULL) {
		if (message_ikey(cmid, "client_msg_id", err) != 0)
			return (-1);
	} else
		cmid = top[MESSAGE_IDEMPOTENCY_KEY];	/* checked, or NULL */
	if (message_data(top[KIND_TPL_DATA], "data", 1, MESSAGE_DATA_TEXT,
	    data, &nd, err) != 0)
		return (-1);

	/* Valid: build the body, its keys in the documented order. */
	np = 0;
	message_part_str(parts, &np, "{\"touser\":", top[KIND_TPL_TOUSER]);
	message_part_str(parts, &np, ",\"template_id\":",
	    top[KIND_TPL_TEMPLATE_ID]);
	if (top[KIND_TPL_URL] != NULL)
		message_part_str(parts, &np, ",\"url\":", top[KIND_TPL_URL]);
	if (top[KIND_TPL_MINIPROGRAM] != NULL) {
		message_part_str(parts, &np, ",\"miniprogram\":{\"appid\":",
		    mp[MESSAGE_MP_APPID]);
		if (mp[MESSAGE_MP_PAGEPATH] != NULL)
			message_part_str(parts, &np, ",\"pagepath\":",
			    mp[MESSAGE_MP_PAGEPATH]);
		message_part(parts, &np, "}", NULL, 0);
	}
	if (cmid != NULL)
		message_part_str(parts, &np, ",\"client_msg_id\":", cmid);
	message_part_data(parts, &np, ",\"data\":{", data, nd);
	message_part(parts, &np, "}", NULL, 0);
	message_body(msg, parts, np);
	return (0);
}
