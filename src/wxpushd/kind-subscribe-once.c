/*
 * The one-time subscription message (templateSubscribe, wechat-api.md
 * section 5): its params, checked in one pass, and the exact body WeChat
 * expects, keys in the documented order. A kind of message.c's table.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

#define KIND_SO_ID_MAX		128	/* touser, template_id: bytes */

#define KIND_SO_TITLE_MAX	15	/* code points */
#define KIND_SO_VALUE_MAX	200	/* code points */

enum {
	KIND_SO_TOUSER = MESSAGE_NCOMMON, KIND_SO_TEMPLATE_ID, KIND_SO_SCENE,
	KIND_SO_TITLE, KIND_SO_DATA, KIND_SO_URL, KIND_SO_MINIPROGRAM,
	KIND_SO_NKEYS
};
static const struct message_key kind_so_keys[KIND_SO_NKEYS] = {
	MESSAGE_COMMON_KEYS, MESSAGE_REQ("touser"), MESSAGE_REQ("template_id"),
	MESSAGE_REQ("scene"), MESSAGE_REQ("title"), MESSAGE_REQ("data"),
	MESSAGE_KEY("url"), MESSAGE_KEY("miniprogram")
};
static const struct message_key kind_so_data[] = { MESSAGE_REQ("content") };
enum { KIND_SO_VALUE, KIND_SO_COLOR, KIND_SO_NCONTENT };
static const struct message_key kind_so_content[KIND_SO_NCONTENT] = {
	MESSAGE_REQ("value"), MESSAGE_KEY("color")
};

static int	kind_subscribe_once_build(const msgpack_object **,
		    struct message *, struct rpc_error *);

const struct kind kind_subscribe_once = {
	.name = "subscribe_once",
	.endpoint = WXAPI_SUBSCRIBE_ONCE,
	.keys = kind_so_keys,
	.nkeys = KIND_SO_NKEYS,
	.build = kind_subscribe_once_build,
};

/* The scene: an integer 0..10000 or a string of digits, written as digits. */
static int
kind_subscribe_once_scene(const msgpack_object *o, char *out, size_t outlen,
    struct rpc_error *err)
{
	int64_t		v = -1;

	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= WX_SCENE_MAX)
		v = (int64_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_STR)
		v = valid_scene(o->via.str.ptr, o->via.str.size);
	if (v < 0 || v > WX_SCENE_MAX)
		return (message_error(err, "scene", "scene must be an integer "
		    "0..%d", WX_SCENE_MAX));
	snprintf(out, outlen, "%u", (unsigned int)v);
	return (0);
}

/* The message content: data is exactly {content: {value, color?}}. */
static int
kind_subscribe_once_content(const msgpack_object *o, const msgpack_object **vals,
    struct rpc_error *err)
{
	const msgpack_object	*content;

	if (message_want_map(o, "data", err) != 0 ||
	    message_fields(o, "data", kind_so_data, 1, &content, err) != 0)
		return (-1);
	if (content == NULL)
		return (message_missing(err, "data", &kind_so_data[0]));
	if (message_want_map(content, "data.content", err) != 0 ||
	    message_fields(content, "data.content", kind_so_content,
	    KIND_SO_NCONTENT, vals, err) != 0)
		return (-1);
	if (vals[KIND_SO_VALUE] == NULL)
		return (message_missing(err, "data.content",
		    &kind_so_content[KIND_SO_VALUE]));
	if (message_text_field(vals[KIND_SO_VALUE], "data.content.value",
	    KIND_SO_VALUE_MAX, err) != 0)
		return (-1);
	if (vals[KIND_SO_COLOR] != NULL &&
	    message_color(vals[KIND_SO_COLOR], "data.content.color", err) != 0)
		return (-1);
	return (0);
}

/* Check the kind's own params, then write the body into msg. */
static int
kind_subscribe_once_build(const msgpack_object **top, struct message *msg,
    struct rpc_error *err)
{
	const msgpack_object	*content[KIND_SO_NCONTENT];
	const msgpack_object	*mp[MESSAGE_NMP];
	char			 scene[WX_SCENE_DIGITS + 1];
	struct message_part	 parts[MESSAGE_PARTS_MAX];
	size_t			 np;

	if (message_id(top[KIND_SO_TOUSER], "touser", KIND_SO_ID_MAX,
	    err) != 0 ||
	    message_id(top[KIND_SO_TEMPLATE_ID], "template_id", KIND_SO_ID_MAX,
	    err) != 0 ||
	    kind_subscribe_once_scene(top[KIND_SO_SCENE], scene, sizeof scene,
	    err) != 0 ||
	    message_text_field(top[KIND_SO_TITLE], "title", KIND_SO_TITLE_MAX,
	    err) != 0 ||
	    kind_subscribe_once_content(top[KIND_SO_DATA], content, err) != 0)
		return (-1);
	if (top[KIND_SO_URL] != NULL && message_url(top[KIND_SO_URL], err) != 0)
		return (-1);
	if (top[KIND_SO_MINIPROGRAM] != NULL &&
	    message_miniprogram(top[KIND_SO_MINIPROGRAM], mp, err) != 0)
		return (-1);

	/* What a consent of the ledger matches (touser is 1..128 bytes). */
	memcpy(msg->touser, top[KIND_SO_TOUSER]->via.str.ptr,
	    top[KIND_SO_TOUSER]->via.str.size);
	msg->touser[top[KIND_SO_TOUSER]->via.str.size] = '\0';
	memcpy(msg->template_id, top[KIND_SO_TEMPLATE_ID]->via.str.ptr,
	    top[KIND_SO_TEMPLATE_ID]->via.str.size);
	msg->template_id[top[KIND_SO_TEMPLATE_ID]->via.str.size] = '\0';
	msg->scene = atoi(scene);

	/* Valid: build the body, its keys in the documented order. */
	np = 0;
	message_part_str(parts, &np, "{\"touser\":", top[KIND_SO_TOUSER]);
	message_part_str(parts, &np, ",\"template_id\":",
	    top[KIND_SO_TEMPLATE_ID]);
	if (top[KIND_SO_URL] != NULL)
		message_part_str(parts, &np, ",\"url\":", top[KIND_SO_URL]);
	if (top[KIND_SO_MINIPROGRAM] != NULL) {
		message_part_str(parts, &np, ",\"miniprogram\":{\"appid\":",
		    mp[MESSAGE_MP_APPID]);
		message_part_str(parts, &np, ",\"pagepath\":",
		    mp[MESSAGE_MP_PAGEPATH]);
		message_part(parts, &np, "},\"scene\":", scene, strlen(scene));
	} else
		message_part(parts, &np, ",\"scene\":", scene, strlen(scene));
	message_part_str(parts, &np, ",\"title\":", top[KIND_SO_TITLE]);
	message_part_str(parts, &np, ",\"data\":{\"content\":{\"value\":",
	    content[KIND_SO_VALUE]);
	if (content[KIND_SO_COLOR] != NULL)
		message_part_str(parts, &np, ",\"color\":",
		    content[KIND_SO_COLOR]);
	message_part(parts, &np, "}}}", NULL, 0);
	message_body(msg, parts, np);
	return (0);
}
