/*
 * The official account's subscription notice (POST
 * /cgi-bin/message/subscribe/bizsend): its params, checked (data values by
 * their type prefix, as for the mini program's subscribe message), and the
 * exact body in the documented key order.
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

#define KIND_SUB_ID_MAX		128	/* touser, template_id: bytes */

enum {
	KIND_SUB_TOUSER = MESSAGE_NCOMMON, KIND_SUB_TEMPLATE_ID, KIND_SUB_DATA,
	KIND_SUB_PAGE, KIND_SUB_MINIPROGRAM, KIND_SUB_NKEYS
};
static const struct message_key kind_sub_keys[KIND_SUB_NKEYS] = {
	MESSAGE_COMMON_KEYS, MESSAGE_REQ("touser"), MESSAGE_REQ("template_id"),
	MESSAGE_REQ("data"), MESSAGE_KEY("page"), MESSAGE_KEY("miniprogram")
};

static int	kind_subscribe_build(const msgpack_object **, struct message *,
		    struct rpc_error *);

const struct kind kind_subscribe = {
	.name = "subscribe",
	.endpoint = WXAPI_SUBSCRIBE_BIZSEND,
	.keys = kind_sub_keys,
	.nkeys = KIND_SUB_NKEYS,
	.build = kind_subscribe_build,
};

/* Check the kind's own params, then write the body into msg. */
static int
kind_subscribe_build(const msgpack_object **top, struct message *msg,
    struct rpc_error *err)
{
	struct message_datum	 data[MESSAGE_DATA_MAX];
	const msgpack_object	*mp[MESSAGE_NMP];
	struct message_part	 parts[MESSAGE_PARTS_MAX];
	size_t			 np, nd;

	if (message_id(top[KIND_SUB_TOUSER], "touser", KIND_SUB_ID_MAX,
	    err) != 0 ||
	    message_id(top[KIND_SUB_TEMPLATE_ID], "template_id",
	    KIND_SUB_ID_MAX, err) != 0)
		return (-1);
	if (top[KIND_SUB_PAGE] != NULL &&
	    message_path_field(top[KIND_SUB_PAGE], "page", err) != 0)
		return (-1);
	if (top[KIND_SUB_MINIPROGRAM] != NULL &&
	    message_miniprogram(top[KIND_SUB_MINIPROGRAM], mp, err) != 0)
		return (-1);
	if (message_data(top[KIND_SUB_DATA], "data", 0, MESSAGE_DATA_TYPED,
	    data, &nd, err) != 0)
		return (-1);

	/* Valid: build the body, its keys in the documented order. */
	np = 0;
	message_part_str(parts, &np, "{\"touser\":", top[KIND_SUB_TOUSER]);
	message_part_str(parts, &np, ",\"template_id\":",
	    top[KIND_SUB_TEMPLATE_ID]);
	if (top[KIND_SUB_PAGE] != NULL)
		message_part_str(parts, &np, ",\"page\":", top[KIND_SUB_PAGE]);
	if (top[KIND_SUB_MINIPROGRAM] != NULL) {
		message_part_str(parts, &np, ",\"miniprogram\":{\"appid\":",
		    mp[MESSAGE_MP_APPID]);
		message_part_str(parts, &np, ",\"pagepath\":",
		    mp[MESSAGE_MP_PAGEPATH]);
		message_part(parts, &np, "}", NULL, 0);
	}
	message_part_data(parts, &np, ",\"data\":{", data, nd);
	message_part(parts, &np, "}", NULL, 0);
	message_body(msg, parts, np);
	return (0);
}
