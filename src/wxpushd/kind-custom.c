/*
 * The customer-service message (POST /cgi-bin/message/custom/send): msgtype
 * text, image, link, miniprogrampage or news, each with its object, checked,
 * and the exact body in the documented key order. WeChat refuses it with
 * 45015 when the user has not written to the account within 48 hours: that
 * is final (wxapi.c's hint says so to the caller).
 */
#include "config.h"

#include <string.h>

#include "wxpushd.h"

#define KIND_CS_ID_MAX		128	/* touser, media ids: bytes */
#define KIND_CS_TEXT_MAX	2048	/* text.content: bytes */
#define KIND_CS_TITLE_MAX	64	/* titles: characters */
#define KIND_CS_DESC_MAX	256	/* descriptions: characters */

enum {
	KIND_CS_TOUSER = MESSAGE_NCOMMON, KIND_CS_MSGTYPE, KIND_CS_TEXT,
	KIND_CS_IMAGE, KIND_CS_LINK, KIND_CS_MPPAGE, KIND_CS_NEWS,
	KIND_CS_NKEYS
};
static const struct message_key kind_cs_keys[KIND_CS_NKEYS] = {
	MESSAGE_COMMON_KEYS, MESSAGE_REQ("touser"), MESSAGE_REQ("msgtype"),
	MESSAGE_KEY("text"), MESSAGE_KEY("image"), MESSAGE_KEY("link"),
	MESSAGE_KEY("miniprogrampage"), MESSAGE_KEY("news")
};

static const struct message_key kind_cs_text[] = { MESSAGE_REQ("content") };
static const struct message_key kind_cs_image[] = { MESSAGE_REQ("media_id") };
enum { CS_LINK_TITLE, CS_LINK_DESC, CS_LINK_URL, CS_LINK_THUMB, CS_NLINK };
static const struct message_key kind_cs_link[CS_NLINK] = {
	MESSAGE_REQ("title"), MESSAGE_REQ("description"), MESSAGE_REQ("url"),
	MESSAGE_REQ("thumb_url")
};
enum { CS_MP_TITLE, CS_MP_APPID, CS_MP_PAGEPATH, CS_MP_THUMB, CS_NMP };
static const struct message_key kind_cs_mp[CS_NMP] = {
	MESSAGE_REQ("title"), MESSAGE_KEY("appid"), MESSAGE_REQ("pagepath"),
	MESSAGE_REQ("thumb_media_id")
};
static const struct message_key kind_cs_news[] = { MESSAGE_REQ("articles") };
enum { CS_ART_TITLE, CS_ART_DESC, CS_ART_URL, CS_ART_PICURL, CS_NART };
static const struct message_key kind_cs_art[CS_NART] = {
	MESSAGE_KEY("title"), MESSAGE_KEY("description"), MESSAGE_KEY("url"),
	MESSAGE_KEY("picurl")
};

static int	kind_custom_build(const msgpack_object **, struct message *,
		    struct rpc_error *);

const struct kind kind_custom = {
	.name = "custom",
	.endpoint = WXAPI_CUSTOM_SEND,
	.keys = kind_cs_keys,
	.nkeys = KIND_CS_NKEYS,
	.build = kind_custom_build,
};

/* Sort map o at path by keys into vals; the required ones must be there. */
static int
kind_custom_object(const msgpack_object *o, const char *path,
    const struct message_key *keys, size_t nkeys, const msgpack_object **vals,
    struct rpc_error *err)
{
	size_t	i;

	if (message_want_map(o, path, err) != 0 ||
	    message_fields(o, path, keys, nkeys, vals, err) != 0)
		return (-1);
	for (i = 0; i < nkeys; i++) {
		if (vals[i] == NULL && keys[i].required)
			return (message_missing(err, path, &keys[i]));
	}
	return (0);
}

/* The text: 1..2048 bytes of UTF-8 (new lines allowed, no NUL). */
static int
kind_custom_text(const msgpack_object *o, const msgpack_object **v,
    struct rpc_error *err)
{
	size_t	count;

	if (kind_custom_object(o, "text", kind_cs_text, 1, v, err) != 0 ||
	    message_want_str(v[0], "text.content", err) != 0)
		return (-1);
	if (v[0]->via.str.size == 0)
		return (message_error(err, "text.content", "text.content is "
		    "empty"));
	if (v[0]->via.str.size > KIND_CS_TEXT_MAX)
		return (message_error(err, "text.content", "text.content is "
		    "%zu bytes; at most %d", (size_t)v[0]->via.str.size,
		    KIND_CS_TEXT_MAX));
	return (message_check_utf8(v[0], "text.content", 0, &count, err));
}

/* A link card: title, description, url and thumb_url, all required. */
static int
kind_custom_link(const msgpack_object *o, const msgpack_object **v,
    struct rpc_error *err)
{
	if (kind_custom_object(o, "link", kind_cs_link, CS_NLINK, v, err) != 0 ||
	    message_text_field(v[CS_LINK_TITLE], "link.title",
	    KIND_CS_TITLE_MAX, err) != 0 ||
	    message_text_field(v[CS_LINK_DESC], "link.description",
	    KIND_CS_DESC_MAX, err) != 0 ||
	    message_url_field(v[CS_LINK_URL], "link.url", err) != 0 ||
	    message_url_field(v[CS_LINK_THUMB], "link.thumb_url", err) != 0)
		return (-1);
	return (0);
}

/* A mini program card: title, appid (official accounts), pagepath, cover. */
static int
kind_custom_mppage(const msgpack_object *o, const msgpack_object **v,
    struct rpc_error *err)
{
	if (kind_custom_object(o, "miniprogrampage", kind_cs_mp, CS_NMP, v,
	    err) != 0 ||
	    message_text_field(v[CS_MP_TITLE], "miniprogrampage.title",
	    KIND_CS_TITLE_MAX, err) != 0 ||
	    (v[CS_MP_APPID] != NULL && message_id(v[CS_MP_APPID],
	    "miniprogrampage.appid", WX_APPID_MAX, err) != 0) ||
	    message_path_field(v[CS_MP_PAGEPATH], "miniprogrampage.pagepath",
	    err) != 0 ||
	    message_id(v[CS_MP_THUMB], "miniprogrampage.thumb_media_id",
	    KIND_CS_ID_MAX, err) != 0)
		return (-1);
	return (0);
}

/* News: articles, an array of exactly one article (WeChat's limit). */
static int
kind_custom_news(const msgpack_object *o, const msgpack_object **art,
    struct rpc_error *err)
{
	const msgpack_object	*articles, *a;
	size_t			 i;

	if (kind_custom_object(o, "news", kind_cs_news, 1, &articles,
	    err) != 0)
		return (-1);
	if (articles->type != MSGPACK_OBJECT_ARRAY)
		return (message_error(err, "news.articles", "news.articles "
		    "must be an array"));
	if (articles->via.array.size != 1)
		return (message_error(err, "news.articles", "news.articles has "
		    "%u articles; WeChat takes exactly 1",
		    (unsigned)articles->via.array.size));
	a = &articles->via.array.ptr[0];
	if (kind_custom_object(a, "news.articles.0", kind_cs_art, CS_NART, art,
	    err) != 0)
		return (-1);
	for (i = 0; i < CS_NART && art[i] == NULL; i++)
		/* nothing */;
	if (i == CS_NART)
		return (message_error(err, "news.articles.0", "news.articles.0 "
		    "is empty"));
	if ((art[CS_ART_TITLE] != NULL && message_text_field(art[CS_ART_TITLE],
	    "news.articles.0.title", KIND_CS_TITLE_MAX, err) != 0) ||
	    (art[CS_ART_DESC] != NULL && message_text_field(art[CS_ART_DESC],
	    "news.articles.0.description", KIND_CS_DESC_MAX, err) != 0) ||
	    (art[CS_ART_URL] != NULL && message_url_field(art[CS_ART_URL],
	    "news.articles.0.url", err) != 0) ||
	    (art[CS_ART_PICURL] != NULL && message_url_field(art[CS_ART_PICURL],
	    "news.articles.0.picurl", err) != 0))
		return (-1);
	return (0);
}

/* Write the optional members of an object: ,"name":value for each present. */
static void
kind_custom_members(struct message_part *parts, size_t *np,
    const char *const *lits, const msgpack_object **v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (v[i] != NULL)
			message_part_str(parts, np, lits[i], v[i]);
	}
}

/* Check the kind's own params, then write the body into msg. */
static int
kind_custom_build(const msgpack_object **top, struct message *msg,
    struct rpc_error *err)
{
	static const char *const types[] = { "text", "image", "link",
	    "miniprogrampage", "news" };
	static const char *const link_lits[CS_NLINK] = { "{\"title\":",
	    ",\"description\":", ",\"url\":", ",\"thumb_url\":" };
	static const char *const mp_lits[CS_NMP] = { "{\"title\":",
	    ",\"appid\":", ",\"pagepath\":", ",\"thumb_media_id\":" };
	static const char *const art_lits[CS_NART] = { "\"title\":",
	    "\"description\":", "\"url\":", "\"picurl\":" };
	const msgpack_object	*v[4];	/* the largest: link, mp, article */
	struct message_part	 parts[MESSAGE_PARTS_MAX];
	size_t			 np, t, i, first;
	int			 rc;

	if (message_id(top[KIND_CS_TOUSER], "touser", KIND_CS_ID_MAX, err) != 0 ||
	    message_want_str(top[KIND_CS_MSGTYPE], "msgtype", err) != 0)
		return (-1);
	for (t = 0; t < 5; t++) {
		if (rpc_str_eq(top[KIND_CS_MSGTYPE], types[t]))
			break;
	}
	if (t == 5)
		return (message_error(err, "msgtype", "msgtype must be one of: "
		    "text, image, link, miniprogrampage, news"));
	for (i = 0; i < 5; i++) {
		if (i != t && top[KIND_CS_TEXT + i] != NULL)
			return (message_error(err, types[i], "%s does not go "
			    "with msgtype %s", types[i], types[t]));
	}
	if (top[KIND_CS_TEXT + t] == NULL)
		return (message_error(err, types[t], "msgtype %s needs the "
		    "field '%s'", types[t], types[t]));
	memset(v, 0, sizeof v);
	switch (t) {
	case 0:
		rc = kind_custom_text(top[KIND_CS_TEXT], v, err);
		break;
	case 1:
		if ((rc = kind_custom_object(top[KIND_CS_IMAGE], "image",
		    kind_cs_image, 1, v, err)) == 0)
			rc = message_id(v[0], "image.media_id", KIND_CS_ID_MAX,
			    err);
		break;
	case 2:
		rc = kind_custom_link(top[KIND_CS_LINK], v, err);
		break;
	case 3:
		rc = kind_custom_mppage(top[KIND_CS_MPPAGE], v, err);
		break;
	default:
		rc = kind_custom_news(top[KIND_CS_NEWS], v, err);
		break;
	}
	if (rc != 0)
		return (-1);

	/* Valid: build the body, its keys in the documented order. */
	np = 0;
	message_part_str(parts, &np, "{\"touser\":", top[KIND_CS_TOUSER]);
	message_part_str(parts, &np, ",\"msgtype\":", top[KIND_CS_MSGTYPE]);
	switch (t) {
	case 0:
		message_part_str(parts, &np, ",\"text\":{\"content\":", v[0]);
		break;
	case 1:
		message_part_str(parts, &np, ",\"image\":{\"media_id\":", v[0]);
		break;
	case 2:
		message_part(parts, &np, ",\"link\":", NULL, 0);
		kind_custom_members(parts, &np, link_lits, v, CS_NLINK);
		break;
	case 3:
		message_part(parts, &np, ",\"miniprogrampage\":", NULL, 0);
		kind_custom_members(parts, &np, mp_lits, v, CS_NMP);
		break;
	default:
		message_part(parts, &np, ",\"news\":{\"articles\":[{", NULL, 0);
		for (i = 0, first = 1; i < CS_NART; i++) {
			if (v[i] == NULL)
				continue;
			message_part(parts, &np, first ? "" : ",", NULL, 0);
			message_part_str(parts, &np, art_lits[i], v[i]);
			first = 0;
		}
		message_part(parts, &np, "}]", NULL, 0);
		break;
	}
	message_part(parts, &np, "}}", NULL, 0);
	message_body(msg, parts, np);
	return (0);
}
