/*
 * The other message endpoints: the template message (answers a msgid), the
 * official account's subscription notice, the mini program's subscribe
 * message and the customer-service message. Each checks the token, then the
 * body as WeChat documents it: required fields and their types (47001),
 * fields WeChat does not know (47001, so a daemon bug shows), subscribe data
 * values by their type prefix (47003, naming the field as WeChat does), and
 * a news message with more than one article (45008). 45015 (no interaction
 * within 48 hours) comes from a fault: POST /mock/fault.
 *
 * These checks are written apart from the daemon's (message-value.c) and
 * more simply, with POSIX regular expressions: a test passes only when both
 * agree.
 */
#include "config.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

#define MOCK_KINDS_MSGID_BASE	2000000000000000000LL

static json_int_t	mock_kinds_msgid = MOCK_KINDS_MSGID_BASE;

/* The value rules, compiled once: the type prefix and its expression. */
#define MK_DATE	"([0-9]{4}[-/.][0-9]{1,2}([-/.][0-9]{1,2})?|" \
	"[0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{4}年[0-9]{1,2}月([0-9]{1,2}日)?|" \
	"[0-9]{1,2}月[0-9]{1,2}日)"
#define MK_TIME	"([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
static struct {
	const char	*prefix;
	const char	*re;
	regex_t		 compiled;
	int		 ready;
} mock_kinds_rules[] = {
	{ "number", "^[0-9]+([.][0-9]+)?$", { 0 }, 0 },
	{ "letter", "^[A-Za-z]+$", { 0 }, 0 },
	{ "time", "^(" MK_DATE " +)?" MK_TIME "( *~ *(" MK_DATE " +)?" MK_TIME
	    ")?$", { 0 }, 0 },
	{ "date", "^" MK_DATE "( +" MK_TIME ")?( *~ *" MK_DATE "( +" MK_TIME
	    ")?)?$", { 0 }, 0 },
	{ "amount", "^(￥|¥|[$]|€|£)?[0-9]{1,10}([.][0-9]+)?(元)?$", { 0 }, 0 },
	{ "phone_number", "^[-0-9+() #*]+$", { 0 }, 0 },
};

/* The code points of UTF-8 s, into cp (at most max); their count. */
static size_t
mock_kinds_decode(const char *s, unsigned long *cp, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	int more;

	while (*p != '\0' && n < max) {
		if (*p < 0x80) {
			cp[n] = *p++;
			more = 0;
		} else if (*p < 0xe0) {
			cp[n] = *p++ & 0x1f;
			more = 1;
		} else if (*p < 0xf0) {
			cp[n] = *p++ & 0x0f;
			more = 2;
		} else {
			cp[n] = *p++ & 0x07;
			more = 3;
		}
		for (; more > 0 && *p != '\0'; more--)
			cp[n] = (cp[n] << 6) | (*p++ & 0x3f);
		n++;
	}
	return (n);
}

static int
mock_kinds_han(unsigned long c)
{
	return ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
	    (c >= 0x20000 && c <= 0x3134f) || (c >= 0xf900 && c <= 0xfaff));
}

static int
mock_kinds_alnum(unsigned long c)
{
	return ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z'));
}

/* Whether value v of data name (its type prefix before the digits) is valid. */
static int
mock_kinds_value_ok(const char *name, const char *v)
{
	unsigned long cp[256];
	size_t n, i, plen, han = 0;
	int digits = 0;

	for (plen = strlen(name); plen > 0 && name[plen - 1] >= '0' &&
	    name[plen - 1] <= '9'; plen--)
		/* nothing */;
	n = mock_kinds_decode(v, cp, 256);
	for (i = 0; i < n; i++) {
		if (cp[i] < 0x20 || cp[i] == 0x7f)
			return (0);	/* no line breaks or other controls */
		han += mock_kinds_han(cp[i]);
		digits += cp[i] >= '0' && cp[i] <= '9';
	}
	for (i = 0; i < sizeof mock_kinds_rules / sizeof mock_kinds_rules[0];
	    i++) {
		if (strlen(mock_kinds_rules[i].prefix) != plen ||
		    strncmp(mock_kinds_rules[i].prefix, name, plen) != 0)
			continue;
		if (!mock_kinds_rules[i].ready) {
			if (regcomp(&mock_kinds_rules[i].compiled,
			    mock_kinds_rules[i].re, REG_EXTENDED | REG_NOSUB))
				fatalx("mock: bad rule for %s",
				    mock_kinds_rules[i].prefix);
			mock_kinds_rules[i].ready = 1;
		}
		if (regexec(&mock_kinds_rules[i].compiled, v, 0, NULL, 0) != 0)
			return (0);
		if (strcmp(mock_kinds_rules[i].prefix, "phone_number") == 0)
			return (n <= 17);
		return (n <= 32);
	}
#define MK_IS(s)	(plen == sizeof (s) - 1 && strncmp(name, s, plen) == 0)
	if (MK_IS("thing"))
		return (n <= 20);
	if (MK_IS("symbol")) {
		for (i = 0; i < n; i++) {
			if (mock_kinds_alnum(cp[i]) || mock_kinds_han(cp[i]) ||
			    cp[i] == ' ')
				return (0);
		}
		return (n <= 5);
	}
	if (MK_IS("character_string"))
		return (n <= 32 && han == 0);
	if (MK_IS("car_number")) {
		for (i = 0; i < n; i++) {
			if (!mock_kinds_alnum(cp[i]) && !(mock_kinds_han(cp[i]) &&
			    (i == 0 || i == n - 1)))
				return (0);
		}
		return (n <= 8);
	}
	if (MK_IS("name"))
		return (digits == 0 && (han > 0 ? n <= 10 : n <= 20));
	if (MK_IS("phrase"))
		return (n <= 5 && han == n);
#undef MK_IS
	return (1);
}

/* Refuse (47001) a body member that is not among known; 0 if all known. */
static int
mock_kinds_known(struct mock_call *call, json_t *o, const char *where,
    const char *const *known)
{
	const char *k;
	const char *const *p;
	json_t *v;

	json_object_foreach(o, k, v) {
		for (p = known; *p != NULL; p++) {
			if (strcmp(*p, k) == 0)
				break;
		}
		if (*p == NULL) {
			mock_reply_error(call, 47001, "data format error: "
			    "unexpected field %s%s", where, k);
			return (-1);
		}
	}
	return (0);
}

/* Refuse (47001) unless o.key is a non-empty string (or absent, if opt). */
static int
mock_kinds_str(struct mock_call *call, json_t *o, const char *where,
    const char *key, int opt)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL && opt)
		return (0);
	if (!json_is_string(v) || json_string_length(v) == 0) {
		mock_reply_error(call, 47001, "data format error: %s%s missing "
		    "or not a non-empty string", where, key);
		return (-1);
	}
	return (0);
}

/*
 * The data object: {name: {value[, color]}}, at least one entry. typed: the
 * values follow their type prefix (47003 as WeChat words it).
 */
static int
mock_kinds_data(struct mock_call *call, json_t *body, int color_ok, int typed)
{
	static const char *const with_color[] = { "value", "color", NULL };
	static const char *const without[] = { "value", NULL };
	json_t *data, *e, *v;
	const char *name;

	data = json_object_get(body, "data");
	if (!json_is_object(data) || json_object_size(data) == 0) {
		mock_reply_error(call, 47001, "data format error: data missing "
		    "or not a non-empty object");
		return (-1);
	}
	json_object_foreach(data, name, e) {
		if (!json_is_object(e) || mock_kinds_known(call, e, "data.",
		    color_ok ? with_color : without) != 0) {
			if (!json_is_object(e))
				mock_reply_error(call, 47001, "data format "
				    "error: data.%s is not an object", name);
			return (-1);
		}
		v = json_object_get(e, "value");
		if (!json_is_string(v)) {
			mock_reply_error(call, 47001, "data format error: "
			    "data.%s.value missing or not a string", name);
			return (-1);
		}
		if ((v = json_object_get(e, "color")) != NULL &&
		    !json_is_string(v)) {
			mock_reply_error(call, 47001, "data format error: "
			    "data.%s.color is not a string", name);
			return (-1);
		}
		if (!typed)
			continue;
		v = json_object_get(e, "value");
		if (json_string_length(v) == 0) {
			mock_reply_error(call, 47003, "argument invalid! "
			    "data.%s.value is empty", name);
			return (-1);
		}
		if (!mock_kinds_value_ok(name, json_string_value(v))) {
			mock_reply_error(call, 47003, "argument invalid! "
			    "data.%s.value invalid", name);
			return (-1);
		}
	}
	return (0);
}

/* miniprogram {appid[, pagepath]}: appid required, pagepath if need_page. */
static int
mock_kinds_miniprogram(struct mock_call *call, json_t *body, int need_page)
{
	static const char *const known[] = { "appid", "pagepath", NULL };
	json_t *mp = json_object_get(body, "miniprogram");

	if (mp == NULL)
		return (0);
	if (!json_is_object(mp)) {
		mock_reply_error(call, 47001, "data format error: miniprogram "
		    "is not an object");
		return (-1);
	}
	if (mock_kinds_known(call, mp, "miniprogram.", known) != 0 ||
	    mock_kinds_str(call, mp, "miniprogram.", "appid", 0) != 0 ||
	    mock_kinds_str(call, mp, "miniprogram.", "pagepath",
	    !need_page) != 0)
		return (-1);
	return (0);
}

/* The common start: the sender and the body, or NULL (answered). */
static json_t *
mock_kinds_begin(struct mock_call *call, struct mock_account **a)
{
	if ((*a = mock_send_sender(call)) == NULL)
		return (NULL);
	return (mock_call_body(call));
}

/* Record an accepted send and answer ok (with a new msgid if msgid). */
static void
mock_kinds_accept(struct mock_call *call, struct mock_account *a, json_t *body,
    int msgid)
{
	mock_send_record(call, a->appid, body);
	mock_stats.sends_ok++;
	if (msgid)
		mock_reply_json(call, json_pack("{s:i,s:s,s:I}", "errcode", 0,
		    "errmsg", "ok", "msgid", ++mock_kinds_msgid));
	else
		mock_reply_ok(call);
}

/* POST /cgi-bin/message/template/send: the template message; a msgid. */
void
mock_kinds_template(struct mock_call *call)
{
	static const char *const known[] = { "touser", "template_id", "url",
	    "miniprogram", "client_msg_id", "data", NULL };
	struct mock_account *a;
	json_t *body;

	if ((body = mock_kinds_begin(call, &a)) == NULL)
		return;
	if (mock_kinds_known(call, body, "", known) == 0 &&
	    mock_kinds_str(call, body, "", "touser", 0) == 0 &&
	    mock_kinds_str(call, body, "", "template_id", 0) == 0 &&
	    mock_kinds_str(call, body, "", "url", 1) == 0 &&
	    mock_kinds_str(call, body, "", "client_msg_id", 1) == 0 &&
	    mock_kinds_miniprogram(call, body, 0) == 0 &&
	    mock_kinds_data(call, body, 1, 0) == 0)
		mock_kinds_accept(call, a, body, 1);
	json_decref(body);
}

/* POST /cgi-bin/message/subscribe/bizsend: the subscription notice. */
void
mock_kinds_bizsend(struct mock_call *call)
{
	static const char *const known[] = { "touser", "template_id", "page",
	    "miniprogram", "data", NULL };
	struct mock_account *a;
	json_t *body;

	if ((body = mock_kinds_begin(call, &a)) == NULL)
		return;
	if (mock_kinds_known(call, body, "", known) == 0 &&
	    mock_kinds_str(call, body, "", "touser", 0) == 0 &&
	    mock_kinds_str(call, body, "", "template_id", 0) == 0 &&
	    mock_kinds_str(call, body, "", "page", 1) == 0 &&
	    mock_kinds_miniprogram(call, body, 1) == 0 &&
	    mock_kinds_data(call, body, 0, 1) == 0)
		mock_kinds_accept(call, a, body, 0);
	json_decref(body);
}

/* Refuse (47001) o.key unless absent or one of the strings in set. */
static int
mock_kinds_oneof(struct mock_call *call, json_t *o, const char *key,
    const char *const *set)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return (0);
	for (; json_is_string(v) && *set != NULL; set++) {
		if (strcmp(*set, json_string_value(v)) == 0)
			return (0);
	}
	mock_reply_error(call, 47001, "data format error: invalid %s", key);
	return (-1);
}

/* POST /cgi-bin/message/subscribe/send: the mini program's message. */
void
mock_kinds_subscribe(struct mock_call *call)
{
	static const char *const known[] = { "touser", "template_id", "page",
	    "miniprogram_state", "lang", "data", NULL };
	static const char *const states[] = { "developer", "trial", "formal",
	    NULL };
	static const char *const langs[] = { "zh_CN", "en_US", "zh_HK",
	    "zh_TW", NULL };
	struct mock_account *a;
	json_t *body;

	if ((body = mock_kinds_begin(call, &a)) == NULL)
		return;
	if (mock_kinds_known(call, body, "", known) == 0 &&
	    mock_kinds_str(call, body, "", "touser", 0) == 0 &&
	    mock_kinds_str(call, body, "", "template_id", 0) == 0 &&
	    mock_kinds_str(call, body, "", "page", 1) == 0 &&
	    mock_kinds_oneof(call, body, "miniprogram_state", states) == 0 &&
	    mock_kinds_oneof(call, body, "lang", langs) == 0 &&
	    mock_kinds_data(call, body, 0, 1) == 0)
		mock_kinds_accept(call, a, body, 0);
	json_decref(body);
}

/* The object of a custom message's msgtype, with its required members. */
static int
mock_kinds_custom_payload(struct mock_call *call, json_t *body,
    const char *type)
{
	static const char *const text[] = { "content", NULL };
	static const char *const image[] = { "media_id", NULL };
	static const char *const link[] = { "title", "description", "url",
	    "thumb_url", NULL };
	static const char *const mppage[] = { "title", "appid", "pagepath",
	    "thumb_media_id", NULL };
	static const char *const mp_required[] = { "title", "pagepath",
	    "thumb_media_id", NULL };
	static const char *const article[] = { "title", "description", "url",
	    "picurl", NULL };
	static const char *const news[] = { "articles", NULL };
	const char *const *known, *const *req;
	json_t *o = json_object_get(body, type), *arts;
	char where[64];

	snprintf(where, sizeof where, "%s.", type);
	if (!json_is_object(o)) {
		mock_reply_error(call, 47001, "data format error: %s missing "
		    "or not an object", type);
		return (-1);
	}
	if (strcmp(type, "news") == 0) {
		if (mock_kinds_known(call, o, where, news) != 0)
			return (-1);
		arts = json_object_get(o, "articles");
		if (!json_is_array(arts) || json_array_size(arts) == 0) {
			mock_reply_error(call, 47001, "data format error: "
			    "news.articles missing or empty");
			return (-1);
		}
		if (json_array_size(arts) > 1) {
			mock_reply_error(call, 45008, "article size out of "
			    "limit");
			return (-1);
		}
		o = json_array_get(arts, 0);
		if (!json_is_object(o) || json_object_size(o) == 0) {
			mock_reply_error(call, 47001, "data format error: "
			    "news.articles[0] is not an object");
			return (-1);
		}
		return (mock_kinds_known(call, o, "news.articles[0].",
		    article));
	}
	if (strcmp(type, "text") == 0)
		known = req = text;
	else if (strcmp(type, "image") == 0)
		known = req = image;
	else if (strcmp(type, "link") == 0)
		known = req = link;
	else {
		known = mppage;
		req = mp_required;
	}
	if (mock_kinds_known(call, o, where, known) != 0)
		return (-1);
	for (; *req != NULL; req++) {
		if (mock_kinds_str(call, o, where, *req, 0) != 0)
			return (-1);
	}
	return (0);
}

/* POST /cgi-bin/message/custom/send: the customer-service message. */
void
mock_kinds_custom(struct mock_call *call)
{
	static const char *const types[] = { "text", "image", "link",
	    "miniprogrampage", "news", NULL };
	const char *const *t;
	struct mock_account *a;
	const char *type, *k;
	json_t *body, *v;

	if ((body = mock_kinds_begin(call, &a)) == NULL)
		return;
	if (mock_kinds_str(call, body, "", "touser", 0) != 0 ||
	    mock_kinds_str(call, body, "", "msgtype", 0) != 0)
		goto done;
	type = json_string_value(json_object_get(body, "msgtype"));
	for (t = types; *t != NULL && strcmp(*t, type) != 0; t++)
		/* nothing */;
	if (*t == NULL) {
		mock_reply_error(call, 40008, "invalid message type");
		goto done;
	}
	json_object_foreach(body, k, v) {
		if (strcmp(k, "touser") != 0 && strcmp(k, "msgtype") != 0 &&
		    strcmp(k, type) != 0) {
			mock_reply_error(call, 47001, "data format error: "
			    "unexpected field %s", k);
			goto done;
		}
	}
	if (mock_kinds_custom_payload(call, body, type) == 0)
		mock_kinds_accept(call, a, body, 0);
done:
	json_decref(body);
}
