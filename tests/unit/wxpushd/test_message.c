/* message.c: validating send params and the exact templateSubscribe body. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"
#include "tap.h"

#define T_APPID		"wx1234567890abcdef"
/* 订阅通知, 您好!, 中 and U+1F600 in UTF-8. */
#define T_TITLE		"\xe8\xae\xa2\xe9\x98\x85\xe9\x80\x9a\xe7\x9f\xa5"
#define T_VALUE		"\xe6\x82\xa8\xe5\xa5\xbd!"
#define T_CJK		"\xe4\xb8\xad"
#define T_EMOJI		"\xf0\x9f\x98\x80"

/* The body of the base message (t_base with nothing left out). */
#define T_BASE_JSON	"{\"touser\":\"oABC-123_xyz\",\"template_id\":" \
	"\"TPL_id-1\"," \
	"\"scene\":\"1000\",\"title\":\"" T_TITLE "\",\"data\":{\"content\":" \
	"{\"value\":\"" T_VALUE "\",\"color\":\"#FF0000\"}}}"

static msgpack_sbuffer	t_sb;
static msgpack_packer	t_pk;
static msgpack_zone	t_zone;
static msgpack_object	t_obj;
static struct message	t_msg;
static struct rpc_error	t_err;

/* Pack a NUL-terminated string. */
static void
t_str(const char *s)
{
	msgpack_pack_str_with_body(&t_pk, s, strlen(s));
}

/* Pack a string of n bytes. */
static void
t_strn(const char *s, size_t n)
{
	msgpack_pack_str_with_body(&t_pk, s, n);
}

/* Pack a key and a string value. */
static void
t_kv(const char *k, const char *v)
{
	t_str(k);
	t_str(v);
}

/* Pack "data": {"content": {"value": value, "color": color (unless NULL)}}. */
static void
t_data(const char *value, const char *color)
{
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, color != NULL ? 2 : 1);
	t_kv("value", value);
	if (color != NULL)
		t_kv("color", color);
}

/* Start the base message without key skip (or NULL), plus extra entries. */
static void
t_base(const char *skip, size_t extra)
{
	static const char *keys[] = { "appid", "touser", "template_id",
	    "scene", "title", "data" };
	static const char *vals[] = { T_APPID, "oABC-123_xyz", "TPL_id-1",
	    "1000", T_TITLE, NULL };
	size_t i, n = 6;

	msgpack_sbuffer_clear(&t_sb);
	for (i = 0; skip != NULL && i < 6; i++) {
		if (strcmp(skip, keys[i]) == 0)
			n--;
	}
	msgpack_pack_map(&t_pk, n + extra);
	for (i = 0; i < 6; i++) {
		if (skip != NULL && strcmp(skip, keys[i]) == 0)
			continue;
		if (vals[i] != NULL)
			t_kv(keys[i], vals[i]);
		else
			t_data(T_VALUE, "#FF0000");
	}
}

/* Start a bare buffer. */
static void
t_begin(void)
{
	msgpack_sbuffer_clear(&t_sb);
}

/* Unpack what was packed; bail out if it is not one object. */
static const msgpack_object *
t_end(void)
{
	size_t off = 0;

	msgpack_zone_clear(&t_zone);
	if (msgpack_unpack(t_sb.data, t_sb.size, &off, &t_zone, &t_obj) !=
	    MSGPACK_UNPACK_SUCCESS || off != t_sb.size) {
		printf("Bail out! test packing is broken\n");
		exit(1);
	}
	return (&t_obj);
}

/* Parse what was packed; it must give exactly want. */
static void
t_good(const char *want, const char *desc)
{
	int rc;

	rc = message_parse(t_end(), &t_msg, &t_err);
	if (!ok(rc == 0, "%s: accepted", desc))
		diag("  refused: %s: %s", t_err.field, t_err.message);
	if (rc != 0)
		return;
	is_str(t_msg.json, want, "%s: body", desc);
	is_int(t_msg.len, strlen(want), "%s: length", desc);
	message_free(&t_msg);
}

/* Parse what was packed: refused on field, the message saying needle. */
static void
t_bad(const char *field, const char *needle, const char *desc)
{
	int rc;

	memset(&t_err, 0, sizeof t_err);
	rc = message_parse(t_end(), &t_msg, &t_err);
	if (!ok(rc == -1 && t_err.field != NULL && strcmp(t_err.field,
	    field) == 0 && t_err.message != NULL &&
	    strstr(t_err.message, needle) != NULL &&
	    strcmp(t_err.code, "invalid_request") == 0 && !t_err.retryable &&
	    t_msg.json == NULL && t_msg.idempotency_key == NULL &&
	    t_msg.appid[0] == '\0', "%s: refused on %s", desc, field))
		diag("  rc %d field '%s' message '%s' (want '%s')", rc,
		    t_err.field ? t_err.field : "(null)",
		    t_err.message ? t_err.message : "(null)", needle);
	if (rc == 0)
		message_free(&t_msg);
}

/* The base message with key set to the string value. */
static void
t_with(const char *key, const char *value)
{
	t_base(key, 1);
	t_kv(key, value);
}

/* The base message with key set to n bytes of value. */
static void
t_withn(const char *key, const char *value, size_t n)
{
	t_base(key, 1);
	t_str(key);
	t_strn(value, n);
}

/* The base message with data.content.value set to n bytes of value. */
static void
t_content(const char *value, size_t n)
{
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, 1);
	t_str("value");
	t_strn(value, n);
}

/* The base message with miniprogram {appid, pagepath of n bytes, k?}. */
static void
t_mp(const char *appid, const char *pagepath, size_t n, const char *k)
{
	t_base(NULL, 1);
	t_str("miniprogram");
	msgpack_pack_map(&t_pk, (appid != NULL) + (pagepath != NULL) +
	    (k != NULL));
	if (appid != NULL)
		t_kv("appid", appid);
	if (pagepath != NULL) {
		t_str("pagepath");
		t_strn(pagepath, n);
	}
	if (k != NULL)
		t_kv(k, "x");
}

/* Repeat s count times into a new string. */
static char *
t_repeat(const char *s, size_t count)
{
	size_t n = strlen(s), i;
	char *p = xmalloc(n * count + 1);

	for (i = 0; i < count; i++)
		memcpy(p + i * n, s, n);
	p[n * count] = '\0';
	return (p);
}

/* Valid messages, and the exact bodies they give. */
static void
t_valid(void)
{
	json_t *j, *c;
	char *s, *url, *pp, *value;
	size_t n;

	/* Every field, keys in an order unlike the body's. */
	t_begin();
	msgpack_pack_map(&t_pk, 9);
	t_data(T_VALUE, "#FF0000");
	t_kv("idempotency_key", "order-42:paid");
	t_str("miniprogram");
	msgpack_pack_map(&t_pk, 2);
	t_kv("pagepath", "index?foo=bar");
	t_kv("appid", "wxmini_0001");
	t_kv("title", T_TITLE);
	t_kv("url", "https://example.com/a?b=c");
	t_str("scene");
	msgpack_pack_uint32(&t_pk, 1000);
	t_kv("template_id", "TPL_id-1");
	t_kv("touser", "oABC-123_xyz");
	t_kv("appid", T_APPID);
	is_int(message_parse(t_end(), &t_msg, &t_err), 0,
	    "full message accepted");
	is_str(t_msg.json, "{\"touser\":\"oABC-123_xyz\",\"template_id\":"
	    "\"TPL_id-1\",\"url\":\"https://example.com/a?b=c\","
	    "\"miniprogram\":{\"appid\":\"wxmini_0001\",\"pagepath\":"
	    "\"index?foo=bar\"},\"scene\":\"1000\",\"title\":\"" T_TITLE "\","
	    "\"data\":{\"content\":{\"value\":\"" T_VALUE "\",\"color\":"
	    "\"#FF0000\"}}}",
	    "full message: exact body, keys in WeChat's order");
	is_int(t_msg.len, strlen(t_msg.json), "full message: len");
	is_str(t_msg.appid, T_APPID, "full message: appid copied");
	is_str(t_msg.idempotency_key, "order-42:paid",
	    "full message: idempotency_key copied");
	message_free(&t_msg);
	ok(t_msg.json == NULL && t_msg.idempotency_key == NULL &&
	    t_msg.len == 0 && t_msg.appid[0] == '\0', "message_free zeroes");
	message_free(&t_msg);
	ok(t_msg.json == NULL && t_msg.idempotency_key == NULL &&
	    t_msg.len == 0 && t_msg.appid[0] == '\0',
	    "message_free twice is safe: the message stays zeroed");

	t_base(NULL, 0);
	t_good(T_BASE_JSON, "base message");
	ok(t_msg.idempotency_key == NULL, "no idempotency_key: NULL");

	/* Scene: integers and strings, normalised. */
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_int(&t_pk, 1000);
	t_good(T_BASE_JSON, "scene 1000 as an integer");
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_int(&t_pk, 0);
	s = strstr(T_BASE_JSON, "1000");
	{
		char want[512];

		snprintf(want, sizeof want, "%.*s0%s", (int)(s - T_BASE_JSON),
		    T_BASE_JSON, s + 4);
		t_good(want, "scene 0 as an integer");
		t_with("scene", "0");
		t_good(want, "scene \"0\"");
		t_with("scene", "00000");
		t_good(want, "scene \"00000\" is 0");
		t_with("scene", "007");
		snprintf(want, sizeof want, "%.*s7%s", (int)(s - T_BASE_JSON),
		    T_BASE_JSON, s + 4);
		t_good(want, "scene \"007\" is sent as \"7\"");
		t_base("scene", 1);
		t_str("scene");
		msgpack_pack_uint64(&t_pk, 10000);
		snprintf(want, sizeof want, "%.*s10000%s",
		    (int)(s - T_BASE_JSON), T_BASE_JSON, s + 4);
		t_good(want, "scene 10000 as an integer");
		t_with("scene", "10000");
		t_good(want, "scene \"10000\"");
	}

	/* Lengths in code points: 15 CJK characters are 45 bytes. */
	s = t_repeat(T_CJK, 15);
	t_with("title", s);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, s) != NULL,
	    "title of 15 CJK characters (45 bytes)");
	message_free(&t_msg);
	free(s);
	s = t_repeat(T_EMOJI, 200);
	t_content(s, strlen(s));
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, s) != NULL, "content of 200 emoji (800 bytes)");
	message_free(&t_msg);
	free(s);

	/* Optional fields of every accepted form. */
	t_with("url", "HTTP://Example.COM");
	t_good("{\"touser\":\"oABC-123_xyz\",\"template_id\":\"TPL_id-1\","
	    "\"url\":\"HTTP://Example.COM\",\"scene\":\"1000\",\"title\":\""
	    T_TITLE "\",\"data\":{\"content\":{\"value\":\"" T_VALUE
	    "\",\"color\":\"#FF0000\"}}}", "url with an upper-case scheme");
	t_with("url", "https://user@[::1]:8443/" T_CJK "?q=1#top");
	ok(message_parse(t_end(), &t_msg, &t_err) == 0,
	    "url with userinfo, an IPv6 host, a port and UTF-8");
	message_free(&t_msg);
	t_base("data", 1);
	t_data("x", "#a0b1C2");
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, "\"color\":\"#a0b1C2\"") != NULL,
	    "colour in mixed case");
	message_free(&t_msg);
	t_base("data", 1);
	t_data("x", NULL);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, "\"data\":{\"content\":{\"value\":\"x\"}}}") !=
	    NULL, "no colour");
	message_free(&t_msg);
	s = t_repeat("a", 128);
	t_with("idempotency_key", s);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strcmp(t_msg.idempotency_key, s) == 0 &&
	    strstr(t_msg.json, "idempotency") == NULL &&
	    strstr(t_msg.json, T_APPID) == NULL,
	    "idempotency_key of 128 bytes, not in the body, nor is appid");
	message_free(&t_msg);
	t_with("touser", s);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0, "touser of 128 bytes");
	message_free(&t_msg);
	free(s);
	s = t_repeat("A", WX_APPID_MAX);
	t_with("appid", s);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strcmp(t_msg.appid, s) == 0, "appid of WX_APPID_MAX bytes");
	message_free(&t_msg);
	free(s);

	/* JSON escaping. */
	t_content("q\"b\\n\n t\t c\x01\x1f d\x7f" T_CJK, 19);
	t_good("{\"touser\":\"oABC-123_xyz\",\"template_id\":\"TPL_id-1\","
	    "\"scene\":\"1000\",\"title\":\"" T_TITLE "\",\"data\":"
	    "{\"content\":{\"value\":\"q\\\"b\\\\n\\n t\\t c\\u0001\\u001F"
	    " d\x7f" T_CJK "\"}}}",
	    "quotes, backslashes and control characters escaped");
	t_with("title", "a\"b\\c");
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, "\"title\":\"a\\\"b\\\\c\"") != NULL,
	    "title escaped");
	message_free(&t_msg);

	/* The largest body: every string at its limit, escaped at its worst. */
	url = t_repeat("\"", 1024);
	memcpy(url, "http://h/", 9);
	pp = t_repeat("\\", 1024);
	value = t_repeat("\x01", 200);
	t_base("data", 3);
	t_data(value, "#FFFFFF");
	t_kv("url", url);
	t_str("miniprogram");
	msgpack_pack_map(&t_pk, 2);
	t_kv("appid", "m");
	t_kv("pagepath", pp);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0,
	    "largest body accepted");
	j = json_loadb(t_msg.json != NULL ? t_msg.json : "", t_msg.len, 0,
	    NULL);
	c = json_object_get(json_object_get(json_object_get(j, "data"),
	    "content"), "value");
	ok(j != NULL && strcmp(json_string_value(json_object_get(j, "url")),
	    url) == 0 && strcmp(json_string_value(json_object_get(
	    json_object_get(j, "miniprogram"), "pagepath")), pp) == 0 &&
	    strcmp(json_string_value(c), value) == 0,
	    "largest body reads back the same");
	n = t_msg.len;
	ok(n > 5000 && n < 8192, "largest body is %zu bytes", n);
	json_decref(j);
	message_free(&t_msg);
	free(url);
	free(pp);
	free(value);
}

/* The shape of params: maps, keys, unknown and duplicate fields. */
static void
t_shape(void)
{
	msgpack_object nil;
	char *s;

	memset(&t_err, 0, sizeof t_err);
	ok(message_parse(NULL, &t_msg, &t_err) == -1 &&
	    strcmp(t_err.field, "params") == 0, "params NULL refused");
	t_begin();
	msgpack_pack_array(&t_pk, 1);
	msgpack_pack_map(&t_pk, 0);
	t_bad("params", "must be a map", "params an array");
	memset(&nil, 0, sizeof nil);
	nil.type = MSGPACK_OBJECT_NIL;
	ok(message_parse(&nil, &t_msg, &t_err) == -1 &&
	    strcmp(t_err.field, "params") == 0, "params nil refused");

	t_base(NULL, 1);
	t_kv("foo", "bar");
	t_bad("foo", "unknown field 'foo'", "unknown top-level field");
	t_base(NULL, 1);
	t_kv("page", "index");
	t_bad("page", "unknown field 'page'", "unknown field page");
	s = t_repeat("k", 40);
	t_base(NULL, 1);
	t_kv(s, "bar");
	t_bad("params", "unknown field", "unknown field with a long name");
	free(s);
	t_base(NULL, 1);
	t_kv("a\nb", "bar");
	t_bad("params", "unknown field",
	    "unknown field with a control character");
	t_base(NULL, 1);
	t_kv("", "bar");
	t_bad("params", "unknown field", "unknown field with an empty name");
	t_base(NULL, 1);
	msgpack_pack_int(&t_pk, 7);
	t_str("x");
	t_bad("params", "not a string", "an integer key");
	t_base(NULL, 1);
	msgpack_pack_bin_with_body(&t_pk, "title", 5);
	t_str("x");
	t_bad("params", "not a string", "a binary key");
	t_base(NULL, 1);
	t_kv("title", "again");
	t_bad("title", "duplicate field 'title'", "duplicate title");
	t_base(NULL, 2);
	t_kv("url", "http://a");
	t_kv("url", "http://b");
	t_bad("url", "duplicate", "duplicate url");

	/* Missing required fields. */
	t_base("appid", 0);
	t_bad("appid", "missing required field 'appid'", "no appid");
	t_base("touser", 0);
	t_bad("touser", "missing", "no touser");
	t_base("template_id", 0);
	t_bad("template_id", "missing", "no template_id");
	t_base("scene", 0);
	t_bad("scene", "missing", "no scene");
	t_base("title", 0);
	t_bad("title", "missing", "no title");
	t_base("data", 0);
	t_bad("data", "missing", "no data");

	/* Wrong types. */
	t_base("appid", 1);
	t_str("appid");
	msgpack_pack_int(&t_pk, 1);
	t_bad("appid", "must be a string", "appid an integer");
	t_base("touser", 1);
	t_str("touser");
	msgpack_pack_nil(&t_pk);
	t_bad("touser", "missing required field", "touser nil (nil is absent)");
	t_base("template_id", 1);
	t_str("template_id");
	msgpack_pack_bin_with_body(&t_pk, "TPL", 3);
	t_bad("template_id", "must be a string", "template_id binary");
	t_base("title", 1);
	t_str("title");
	msgpack_pack_true(&t_pk);
	t_bad("title", "must be a string", "title a boolean");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_array(&t_pk, 0);
	t_bad("data", "must be a map", "data an array");
	t_base(NULL, 1);
	t_str("url");
	msgpack_pack_int(&t_pk, 80);
	t_bad("url", "must be a string", "url an integer");
	t_base(NULL, 1);
	t_kv("miniprogram", "wxmini");
	t_bad("miniprogram", "must be a map", "miniprogram a string");
	t_base(NULL, 1);
	t_str("idempotency_key");
	msgpack_pack_uint64(&t_pk, 42);
	t_bad("idempotency_key", "must be a string",
	    "idempotency_key an integer");
}

/* Identifiers, scene and text limits. */
static void
t_values(void)
{
	char *s;

	t_with("appid", "");
	t_bad("appid", "appid is empty", "empty appid");
	s = t_repeat("A", WX_APPID_MAX + 1);
	t_with("appid", s);
	t_bad("appid", "65 bytes; at most 64", "appid too long");
	free(s);
	t_with("appid", "wx.123");
	t_bad("appid", "A-Z a-z 0-9 _ -", "appid with a dot");
	s = t_repeat("o", 129);
	t_with("touser", s);
	t_bad("touser", "129 bytes; at most 128", "touser too long");
	t_with("template_id", s);
	t_bad("template_id", "129 bytes; at most 128", "template_id too long");
	free(s);
	t_with("touser", "o abc");
	t_bad("touser", "bad byte at 1", "touser with a space");
	t_withn("touser", "o\0abc", 5);
	t_bad("touser", "A-Z a-z 0-9 _ -", "touser with a NUL");
	t_with("template_id", "TPL/1");
	t_bad("template_id", "A-Z a-z 0-9 _ -", "template_id with a slash");
	t_with("touser", "");
	t_bad("touser", "empty", "empty touser");

	/* Scene. */
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_int(&t_pk, 10001);
	t_bad("scene", "scene must be an integer 0..10000", "scene 10001");
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_int(&t_pk, -1);
	t_bad("scene", "0..10000", "scene -1");
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_uint64(&t_pk, UINT64_MAX);
	t_bad("scene", "0..10000", "scene 2^64-1");
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_double(&t_pk, 1000.0);
	t_bad("scene", "0..10000", "scene a float");
	t_base("scene", 1);
	t_str("scene");
	msgpack_pack_nil(&t_pk);
	t_bad("scene", "missing required field", "scene nil (nil is absent)");
	t_with("scene", "10001");
	t_bad("scene", "0..10000", "scene \"10001\"");
	t_with("scene", "-1");
	t_bad("scene", "0..10000", "scene \"-1\"");
	t_with("scene", "+1");
	t_bad("scene", "0..10000", "scene \"+1\"");
	t_with("scene", " 1");
	t_bad("scene", "0..10000", "scene with a leading space");
	t_with("scene", "1 ");
	t_bad("scene", "0..10000", "scene with a trailing space");
	t_with("scene", "");
	t_bad("scene", "0..10000", "scene empty");
	t_with("scene", "000001");
	t_bad("scene", "0..10000", "scene of 6 digits");
	t_with("scene", "1e3");
	t_bad("scene", "0..10000", "scene \"1e3\"");
	t_withn("scene", "1\0", 2);
	t_bad("scene", "0..10000", "scene with a NUL");

	/* Title and content lengths in code points. */
	s = t_repeat(T_CJK, 16);
	t_with("title", s);
	t_bad("title", "title is 16 characters; at most 15",
	    "title of 16 CJK characters");
	free(s);
	s = t_repeat("a", 17);
	t_with("title", s);
	t_bad("title", "title is 17 characters; at most 15",
	    "title of 17 bytes");
	free(s);
	t_with("title", "");
	t_bad("title", "title is empty", "empty title");
	s = t_repeat(T_EMOJI, 201);
	t_content(s, strlen(s));
	t_bad("data.content.value", "201 characters; at most 200",
	    "content of 201 emoji");
	free(s);
	t_content("", 0);
	t_bad("data.content.value", "empty", "empty content");

	/* Data's shape. */
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 0);
	t_bad("data.content", "missing required field 'data.content'",
	    "data without content");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_kv("content", "hello");
	t_bad("data.content", "must be a map", "content a string");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 2);
	t_str("content");
	msgpack_pack_map(&t_pk, 1);
	t_kv("value", "x");
	t_str("keyword1");
	msgpack_pack_map(&t_pk, 0);
	t_bad("data.keyword1", "unknown field 'data.keyword1'",
	    "another key in data");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, 2);
	t_kv("value", "x");
	t_kv("size", "12");
	t_bad("data.content.size", "unknown field 'data.content.size'",
	    "another key in content");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, 1);
	t_kv("color", "#FF0000");
	t_bad("data.content.value", "missing required field",
	    "content without value");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, 2);
	t_kv("value", "x");
	t_kv("value", "y");
	t_bad("data.content.value", "duplicate field 'data.content.value'",
	    "duplicate value");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	t_str("content");
	msgpack_pack_map(&t_pk, 1);
	t_str("value");
	msgpack_pack_int(&t_pk, 5);
	t_bad("data.content.value", "must be a string", "value an integer");
	t_base("data", 1);
	t_str("data");
	msgpack_pack_map(&t_pk, 1);
	msgpack_pack_int(&t_pk, 1);
	msgpack_pack_map(&t_pk, 0);
	t_bad("data", "not a string", "an integer key in data");
	t_base("data", 1);
	t_data("x", "#FF00");
	t_bad("data.content.color", "#FF0000", "colour too short");
	t_base("data", 1);
	t_data("x", "FF0000");
	t_bad("data.content.color", "#FF0000", "colour without #");
	t_base("data", 1);
	t_data("x", "#GG0000");
	t_bad("data.content.color", "#FF0000", "colour not hex");
	t_base("data", 1);
	t_data("x", "#FF00000");
	t_bad("data.content.color", "#FF0000", "colour too long");
	t_base("data", 1);
	t_data("x", "red");
	t_bad("data.content.color", "#FF0000", "colour by name");
}

/* Invalid UTF-8 of each kind, in title and content. */
static void
t_utf8(void)
{
	static const struct {
		const char	*s;
		size_t		 n;
		const char	*why;
		const char	*desc;
	} bad[] = {
		{ "a\xc0\xaf", 3, "overlong encoding at byte 1",
		    "2-byte overlong" },
		{ "\xc1\xbf", 2, "overlong", "C1 lead byte" },
		{ "\xe0\x80\xaf", 3, "overlong", "3-byte overlong" },
		{ "\xf0\x80\x80\xaf", 4, "overlong", "4-byte overlong" },
		{ "\xed\xa0\x80", 3, "surrogate", "high surrogate" },
		{ "\xed\xbf\xbf", 3, "surrogate", "low surrogate" },
		{ "\xf4\x90\x80\x80", 4, "above U+10FFFF", "U+110000" },
		{ "\xf7\xbf\xbf\xbf", 4, "above U+10FFFF", "F7 lead byte" },
		{ "\xf8\x88\x80\x80\x80", 5, "invalid byte", "5-byte form" },
		{ "\xff", 1, "invalid byte", "FF byte" },
		{ "ab\xe4\xb8", 4, "truncated sequence at byte 2",
		    "truncated at the end" },
		{ "\xe4\x41\x41", 3, "truncated", "truncated by ASCII" },
		{ "\xf0\x9f\x98", 3, "truncated", "emoji cut short" },
		{ "a\x80", 2, "continuation byte", "stray continuation byte" },
	};
	char desc[128];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(desc, sizeof desc, "title: %s", bad[i].desc);
		t_withn("title", bad[i].s, bad[i].n);
		t_bad("title", bad[i].why, desc);
		snprintf(desc, sizeof desc, "content: %s", bad[i].desc);
		t_content(bad[i].s, bad[i].n);
		t_bad("data.content.value", bad[i].why, desc);
	}
	t_withn("title", "ab\0c", 4);
	t_bad("title", "NUL byte at byte 2", "title with a NUL");
	t_content("ab\0c", 4);
	t_bad("data.content.value", "NUL byte", "content with a NUL");
	t_withn("title", "\xf4\x8f\xbf\xbf", 4);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0, "U+10FFFF accepted");
	message_free(&t_msg);
	t_withn("title", "\xef\xbf\xbd\xee\x80\x80", 6);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0,
	    "U+FFFD and U+E000 accepted");
	message_free(&t_msg);
}

/* The optional url, miniprogram and idempotency_key. */
static void
t_optional(void)
{
	char *s;

	t_with("url", "ftp://example.com/");
	t_bad("url", "http:// or https://", "url of another scheme");
	t_with("url", "example.com");
	t_bad("url", "http:// or https://", "url without a scheme");
	t_with("url", "");
	t_bad("url", "http:// or https://", "empty url");
	t_with("url", "http://");
	t_bad("url", "no host", "url without a host");
	t_with("url", "https:///path");
	t_bad("url", "no host", "url with an empty host and a path");
	t_with("url", "https://user@/path");
	t_bad("url", "no host", "url with userinfo and no host");
	t_with("url", "https://:443/");
	t_bad("url", "no host", "url with a port and no host");
	t_with("url", "https://[]/");
	t_bad("url", "no host", "url with empty brackets");
	t_with("url", "https://example.com/a b");
	t_bad("url", "space at byte 21", "url with a space");
	t_with("url", "https://example.com/a\tb");
	t_bad("url", "control character", "url with a tab");
	t_with("url", "https://example.com/\x7f");
	t_bad("url", "control character", "url with DEL");
	t_with("url", "https://example.com/\xc2\x85");
	t_bad("url", "control character", "url with a C1 control");
	t_withn("url", "https://example.com/\0", 21);
	t_bad("url", "NUL", "url with a NUL");
	t_with("url", "https://example.com/\xe4\xb8");
	t_bad("url", "not valid UTF-8", "url with bad UTF-8");
	s = t_repeat("a", 1025);
	memcpy(s, "https://x/", 10);
	t_with("url", s);
	t_bad("url", "1025 bytes; at most 1024", "url of 1025 bytes");
	s[1024] = '\0';
	t_with("url", s);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0, "url of 1024 bytes");
	message_free(&t_msg);
	free(s);

	t_mp("wxmini", "index?foo=bar", 13, NULL);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0 &&
	    strstr(t_msg.json, "\"miniprogram\":{\"appid\":\"wxmini\","
	    "\"pagepath\":\"index?foo=bar\"},\"scene\"") != NULL,
	    "miniprogram accepted, before scene");
	message_free(&t_msg);
	t_mp(NULL, "index", 5, NULL);
	t_bad("miniprogram.appid", "missing required field 'miniprogram.appid'",
	    "miniprogram without appid");
	t_mp("wxmini", NULL, 0, NULL);
	t_bad("miniprogram.pagepath", "missing",
	    "miniprogram without pagepath");
	t_mp("wxmini", "index", 5, "path");
	t_bad("miniprogram.path", "unknown field 'miniprogram.path'",
	    "miniprogram with another key");
	t_mp("wx mini", "index", 5, NULL);
	t_bad("miniprogram.appid", "A-Z a-z 0-9 _ -",
	    "miniprogram appid with a space");
	s = t_repeat("m", 65);
	t_mp(s, "index", 5, NULL);
	t_bad("miniprogram.appid", "65 bytes; at most 64",
	    "miniprogram appid too long");
	free(s);
	t_mp("wxmini", "", 0, NULL);
	t_bad("miniprogram.pagepath", "empty", "empty pagepath");
	s = t_repeat("p", 1025);
	t_mp("wxmini", s, 1025, NULL);
	t_bad("miniprogram.pagepath", "1025 bytes; at most 1024",
	    "pagepath of 1025 bytes");
	free(s);
	t_mp("wxmini", "index\n", 6, NULL);
	t_bad("miniprogram.pagepath", "control character",
	    "pagepath with a newline");
	t_mp("wxmini", "index\xc0\x80", 7, NULL);
	t_bad("miniprogram.pagepath", "overlong",
	    "pagepath with an overlong NUL");
	t_mp("wxmini", "index?k=" T_CJK, 11, NULL);
	ok(message_parse(t_end(), &t_msg, &t_err) == 0, "pagepath with UTF-8");
	message_free(&t_msg);

	t_with("idempotency_key", "");
	t_bad("idempotency_key", "0 bytes; must be 1..128",
	    "empty idempotency_key");
	s = t_repeat("k", 129);
	t_with("idempotency_key", s);
	t_bad("idempotency_key", "129 bytes", "idempotency_key of 129 bytes");
	free(s);
	t_with("idempotency_key", "a b");
	t_bad("idempotency_key", "printable ASCII",
	    "idempotency_key with a space");
	t_with("idempotency_key", "key-" T_CJK);
	t_bad("idempotency_key", "bad byte at 4", "idempotency_key with UTF-8");
	t_with("idempotency_key", "a\x7f");
	t_bad("idempotency_key", "printable ASCII", "idempotency_key with DEL");
}

int
main(void)
{
	msgpack_sbuffer_init(&t_sb);
	msgpack_packer_init(&t_pk, &t_sb, msgpack_sbuffer_write);
	msgpack_zone_init(&t_zone, 4096);

	t_valid();
	t_shape();
	t_values();
	t_utf8();
	t_optional();

	msgpack_zone_destroy(&t_zone);
	msgpack_sbuffer_destroy(&t_sb);
	return (tap_done());
}
