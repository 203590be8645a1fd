/*
 * The message kinds (kind-*.c, message.c's data maps, message-value.c's typed
 * values): each kind's exact body, and every limit refused on its field. The
 * params are written as JSON here and packed as MessagePack the way a client
 * sends them (key order kept).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"
#include "tap.h"

#define A	"\"appid\":\"wx1234567890abcdef\","

static msgpack_sbuffer	t_sb;
static msgpack_packer	t_pk;
static msgpack_zone	t_zone;
static msgpack_object	t_obj;
static struct message	t_msg;
static struct rpc_error	t_err;

/* Pack a JSON value as MessagePack, object keys in their order. */
static void
t_pack(const json_t *j)
{
	const char	*k;
	json_t		*v;
	size_t		 i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(&t_pk, json_object_size(j));
		json_object_foreach((json_t *)j, k, v) {
			/* "a#2" packs as a second "a": JSON has no twice. */
			msgpack_pack_str_with_body(&t_pk, k, strcspn(k, "#"));
			t_pack(v);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(&t_pk, json_array_size(j));
		for (i = 0; i < json_array_size(j); i++)
			t_pack(json_array_get(j, i));
		break;
	case JSON_STRING:
		msgpack_pack_str_with_body(&t_pk, json_string_value(j),
		    json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(&t_pk, json_integer_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(&t_pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(&t_pk);
		break;
	default:
		msgpack_pack_nil(&t_pk);
		break;
	}
}

/* The params in JSON text, packed and unpacked. */
static const msgpack_object *
t_params(const char *params)
{
	json_error_t	 e;
	json_t		*j;
	size_t		 off = 0;

	if ((j = json_loads(params, 0, &e)) == NULL) {
		printf("Bail out! bad test JSON: %s: %s\n", e.text, params);
		exit(1);
	}
	msgpack_sbuffer_clear(&t_sb);
	t_pack(j);
	json_decref(j);
	msgpack_zone_clear(&t_zone);
	if (msgpack_unpack(t_sb.data, t_sb.size, &off, &t_zone, &t_obj) !=
	    MSGPACK_UNPACK_SUCCESS) {
		printf("Bail out! test packing is broken\n");
		exit(1);
	}
	return (&t_obj);
}

/*
 * params are accepted for kind (its endpoint) and give exactly want, which
 * is also what jansson's compact dump of want gives.
 */
static void
t_good(const char *params, enum wxapi_ep ep, const char *want,
    const char *desc)
{
	json_t	*j;
	char	*dump;
	int	 rc;

	rc = message_parse(t_params(params), &t_msg, &t_err);
	if (!ok(rc == 0, "%s: accepted", desc))
		printf("#   refused: %s: %s\n", t_err.field, t_err.message);
	if (rc != 0)
		return;
	is_str(t_msg.json, want, "%s: body", desc);
	is_int(t_msg.len, strlen(want), "%s: length", desc);
	ok(t_msg.kind->endpoint == ep, "%s: endpoint %s", desc,
	    wxapi_endpoint(ep)->path);
	j = json_loads(want, 0, NULL);
	dump = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	is_str(dump, want, "%s: the body is what jansson writes", desc);
	free(dump);
	json_decref(j);
	message_free(&t_msg);
}

/* Whether s is one line of printable ASCII, as an error message must be. */
static int
t_line(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return (0);
	}
	return (s != NULL);
}

/* params are refused on field, the message saying needle. */
static void
t_bad(const char *params, const char *field, const char *needle,
    const char *desc)
{
	int rc;

	memset(&t_err, 0, sizeof t_err);
	rc = message_parse(t_params(params), &t_msg, &t_err);
	if (!ok(rc == -1 && t_err.field != NULL && strcmp(t_err.field,
	    field) == 0 && t_err.message != NULL &&
	    strstr(t_err.message, needle) != NULL && t_line(t_err.message) &&
	    strcmp(t_err.code, "invalid_request") == 0 &&
	    t_msg.json == NULL, "%s: refused on %s", desc, field))
		printf("#   rc %d field '%s' message '%s' (want '%s')\n", rc,
		    t_err.field ? t_err.field : "(null)",
		    t_err.message ? t_err.message : "(null)", needle);
	if (rc == 0)
		message_free(&t_msg);
}

/* A string of count copies of s, in static storage. */
static const char *
t_rep(const char *s, size_t count)
{
	static char	buf[8][8192];
	static int	which;
	char		*p = buf[which++ % 8];
	size_t		 i, n = strlen(s);

	p[0] = '\0';
	for (i = 0; i < count && (i + 1) * n < sizeof buf[0]; i++)
		memcpy(p + i * n, s, n + 1);
	return (p);
}

/* A params or body text built with printf. */
static const char *
t_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *
t_fmt(const char *fmt, ...)
{
	static char	buf[8][16384];
	static int	which;
	char		*p = buf[which++ % 8];
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(p, sizeof buf[0], fmt, ap);
	va_end(ap);
	return (p);
}

static void
t_kind(void)
{
	t_bad("{" A "\"kind\":\"sms\",\"touser\":\"o1\"}", "kind",
	    "kind must be one of: subscribe_once, template", "unknown kind");
	t_bad("{" A "\"kind\":7}", "kind", "must be a string", "kind an int");
	t_bad("{" A "\"kind\":\"template\",\"template_id\":\"T\","
	    "\"data\":{\"k\":{\"value\":\"v\"}}}", "touser",
	    "missing required field 'touser'", "template without touser");
	t_bad("{" A "\"kind\":\"template\",\"touser\":\"o1\","
	    "\"template_id\":\"T\",\"data\":{\"k\":{\"value\":\"v\"}},"
	    "\"scene\":\"1\"}", "scene", "unknown field 'scene'",
	    "template with subscribe_once's scene");
}

static void
t_template(void)
{
	const char *p;

	t_good("{" A "\"kind\":\"template\",\"touser\":\"oUSER\","
	    "\"template_id\":\"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY\","
	    "\"data\":{\"first\":{\"value\":\"\xe6\x81\xad\xe5\x96\x9c\","
	    "\"color\":\"#173177\"},\"keyword1\":{\"value\":\"39.8\\\"\\n\"}}}",
	    WXAPI_TEMPLATE_SEND,
	    "{\"touser\":\"oUSER\",\"template_id\":"
	    "\"ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY\",\"data\":{"
	    "\"first\":{\"value\":\"\xe6\x81\xad\xe5\x96\x9c\",\"color\":"
	    "\"#173177\"},\"keyword1\":{\"value\":\"39.8\\\"\\n\"}}}",
	    "template, data only");
	/* Every field; the params in another order than the body's. */
	t_good("{\"data\":{\"keyword1\":{\"value\":\"a\"}},"
	    "\"client_msg_id\":\"MSG_000001\",\"miniprogram\":{\"pagepath\":"
	    "\"index?foo=bar\",\"appid\":\"wxmini\"},\"url\":"
	    "\"https://example.com/x?y=1\",\"template_id\":\"T1\","
	    "\"touser\":\"oU\",\"kind\":\"template\"," A
	    "\"idempotency_key\":\"ik-1\"}", WXAPI_TEMPLATE_SEND,
	    "{\"touser\":\"oU\",\"template_id\":\"T1\",\"url\":"
	    "\"https://example.com/x?y=1\",\"miniprogram\":{\"appid\":"
	    "\"wxmini\",\"pagepath\":\"index?foo=bar\"},\"client_msg_id\":"
	    "\"MSG_000001\",\"data\":{\"keyword1\":{\"value\":\"a\"}}}",
	    "template, every field; client_msg_id given wins");
	t_good("{" A "\"kind\":\"template\",\"touser\":\"oU\","
	    "\"template_id\":\"T1\",\"idempotency_key\":\"order-42/ship\","
	    "\"miniprogram\":{\"appid\":\"wxmini\"},"
	    "\"data\":{\"k\":{\"value\":\"\"}}}", WXAPI_TEMPLATE_SEND,
	    "{\"touser\":\"oU\",\"template_id\":\"T1\",\"miniprogram\":"
	    "{\"appid\":\"wxmini\"},\"client_msg_id\":\"order-42/ship\","
	    "\"data\":{\"k\":{\"value\":\"\"}}}",
	    "template: client_msg_id from the idempotency key; a "
	    "miniprogram without pagepath; an empty value");

#define TPL	"{" A "\"kind\":\"template\",\"touser\":\"oU\"," \
	"\"template_id\":\"T1\","
	t_bad(TPL "\"data\":{}}", "data", "data is empty", "empty data");
	t_bad(TPL "\"data\":[]}", "data", "data must be a map", "data array");
	p = "";
	{
		static char buf[4096];
		size_t i, off = 0;

		for (i = 0; i < MESSAGE_DATA_MAX + 1; i++)
			off += (size_t)snprintf(buf + off, sizeof buf - off,
			    "%s\"k%zu\":{\"value\":\"v\"}", i ? "," : "", i);
		p = buf;
	}
	t_bad(t_fmt(TPL "\"data\":{%s}}", p), "data", "33 entries; at most 32",
	    "33 data entries");
	t_bad(TPL "\"data\":{\"key-1\":{\"value\":\"v\"}}}", "data",
	    "other than A-Z a-z 0-9 _ (at 3)", "a data name with '-'");
	t_bad(t_fmt(TPL "\"data\":{\"%s\":{\"value\":\"v\"}}}",
	    t_rep("k", 33)), "data", "key of 33 bytes", "a 33-byte data name");
	t_good(t_fmt(TPL "\"data\":{\"%s\":{\"value\":\"v\"}}}", t_rep("k", 32)),
	    WXAPI_TEMPLATE_SEND, t_fmt("{\"touser\":\"oU\",\"template_id\":"
	    "\"T1\",\"data\":{\"%s\":{\"value\":\"v\"}}}", t_rep("k", 32)),
	    "a 32-byte data name");
	t_bad(TPL "\"data\":{\"\":{\"value\":\"v\"}}}", "data",
	    "key of 0 bytes", "an empty data name");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\"},\"a#2\":{\"value\":\"w\"}}}",
	    "data.a", "duplicate field 'data.a'", "a data name twice");
	t_bad(TPL "\"data\":{\"a\":\"v\"}}", "data.a", "data.a must be a map",
	    "a data entry that is not a map");
	t_bad(TPL "\"data\":{\"a\":{\"color\":\"#000000\"}}}", "data.a.value",
	    "missing required field 'data.a.value'", "a data entry without value");
	t_bad(TPL "\"data\":{\"a\":{\"value\":1}}}", "data.a.value",
	    "must be a string", "a value that is a number");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\",\"size\":\"2\"}}}",
	    "data.a.size", "unknown field 'data.a.size'", "an unknown member");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\",\"color\":\"red\"}}}",
	    "data.a.color", "colour such as #FF0000", "a bad colour");
	t_bad(t_fmt(TPL "\"data\":{\"a\":{\"value\":\"%s\"}}}",
	    t_rep("\xe4\xb8\xad", 201)), "data.a.value",
	    "201 characters; at most 200", "a 201-character value");
	t_good(t_fmt(TPL "\"data\":{\"a\":{\"value\":\"%s\"}}}",
	    t_rep("\xe4\xb8\xad", 200)), WXAPI_TEMPLATE_SEND,
	    t_fmt("{\"touser\":\"oU\",\"template_id\":\"T1\",\"data\":{\"a\":"
	    "{\"value\":\"%s\"}}}", t_rep("\xe4\xb8\xad", 200)),
	    "a 200-character value");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\"}},\"url\":\"ftp://x\"}",
	    "url", "http:// or https://", "a bad url");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\"}},\"miniprogram\":"
	    "{\"pagepath\":\"p\"}}", "miniprogram.appid",
	    "missing required field 'miniprogram.appid'", "miniprogram without "
	    "appid");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\"}},\"client_msg_id\":"
	    "\"a b\"}", "client_msg_id", "printable ASCII without spaces",
	    "client_msg_id with a space");
	t_bad(t_fmt(TPL "\"data\":{\"a\":{\"value\":\"v\"}},\"client_msg_id\":"
	    "\"%s\"}", t_rep("x", 129)), "client_msg_id", "129 bytes; must be "
	    "1..128", "a 129-byte client_msg_id");
	t_bad(TPL "\"data\":{\"a\":{\"value\":\"v\"}},\"touser#2\":\"x\"}",
	    "touser", "duplicate field 'touser'", "touser twice");
#undef TPL
}

static void
t_subscribe(void)
{
	t_good("{" A "\"kind\":\"subscribe\",\"touser\":\"oU\","
	    "\"template_id\":\"T2\",\"page\":\"https://mp.weixin.qq.com\","
	    "\"miniprogram\":{\"appid\":\"wxmini\",\"pagepath\":\"index?a=b\"},"
	    "\"data\":{\"name1\":{\"value\":\"\xe5\xb9\xbf\xe5\xb7\x9e\"},"
	    "\"date2\":{\"value\":\"2019-12-25 09:42\"},"
	    "\"phrase3\":{\"value\":\"\xe5\xae\xa1\xe6\xa0\xb8\xe9\x80\x9a"
	    "\xe8\xbf\x87\"}}}", WXAPI_SUBSCRIBE_BIZSEND,
	    "{\"touser\":\"oU\",\"template_id\":\"T2\",\"page\":"
	    "\"https://mp.weixin.qq.com\",\"miniprogram\":{\"appid\":\"wxmini\","
	    "\"pagepath\":\"index?a=b\"},\"data\":{\"name1\":{\"value\":"
	    "\"\xe5\xb9\xbf\xe5\xb7\x9e\"},\"date2\":{\"value\":"
	    "\"2019-12-25 09:42\"},\"phrase3\":{\"value\":\"\xe5\xae\xa1\xe6"
	    "\xa0\xb8\xe9\x80\x9a\xe8\xbf\x87\"}}}", "subscribe, every field");
#define SUB	"{" A "\"kind\":\"subscribe\",\"touser\":\"oU\"," \
	"\"template_id\":\"T2\","
	t_bad(SUB "\"data\":{\"thing1\":{\"value\":\"v\",\"color\":"
	    "\"#000000\"}}}", "data.thing1.color",
	    "unknown field 'data.thing1.color'", "subscribe takes no colour");
	t_bad(t_fmt(SUB "\"data\":{\"thing1\":{\"value\":\"%s\"}}}",
	    t_rep("x", 21)), "data.thing1.value", "at most 20 characters",
	    "subscribe: thing of 21");
	t_bad(SUB "\"data\":{\"thing1\":{\"value\":\"\"}}}", "data.thing1.value",
	    "data.thing1.value is empty", "subscribe: empty value");
	t_bad(SUB "\"page\":\"a b\",\"data\":{\"thing1\":{\"value\":\"v\"}}}",
	    "page", "contains a space at byte 1", "subscribe: page with a space");
	t_bad(SUB "\"page\":\"\",\"data\":{\"thing1\":{\"value\":\"v\"}}}",
	    "page", "page is empty", "subscribe: empty page");
	t_bad(SUB "\"miniprogram\":{\"appid\":\"wxmini\"},\"data\":{\"thing1\":"
	    "{\"value\":\"v\"}}}", "miniprogram.pagepath",
	    "missing required field 'miniprogram.pagepath'",
	    "subscribe: miniprogram without pagepath");
#undef SUB
}

/* mini_subscribe with one data entry name: value. */
#define MS	"{" A "\"kind\":\"mini_subscribe\",\"touser\":\"oU\"," \
	"\"template_id\":\"T3\","
static void
t_ms_ok(const char *name, const char *value)
{
	t_good(t_fmt(MS "\"data\":{\"%s\":{\"value\":\"%s\"}}}", name, value),
	    WXAPI_SUBSCRIBE_SEND, t_fmt("{\"touser\":\"oU\",\"template_id\":"
	    "\"T3\",\"data\":{\"%s\":{\"value\":\"%s\"}}}", name, value),
	    t_fmt("%s '%s' accepted", name, value));
}

static void
t_ms_bad(const char *name, const char *value, const char *needle)
{
	t_bad(t_fmt(MS "\"data\":{\"%s\":{\"value\":\"%s\"}}}", name, value),
	    t_fmt("data.%s.value", name), needle,
	    t_fmt("%s '%s' refused", name, value));
}

#define HAN	"\xe4\xb8\xad"		/* 中 */
#define YUAN	"\xe5\x85\x83"		/* 元 */
#define NIAN	"\xe5\xb9\xb4"		/* 年 */
#define YUE	"\xe6\x9c\x88"		/* 月 */
#define RI	"\xe6\x97\xa5"		/* 日 */
#define FWYEN	"\xef\xbf\xa5"		/* ￥ */

static void
t_mini_subscribe(void)
{
	t_good(MS "\"page\":\"pages/index/index?foo=bar\","
	    "\"miniprogram_state\":\"developer\",\"lang\":\"zh_CN\","
	    "\"data\":{\"number01\":{\"value\":\"339208499\"},"
	    "\"date01\":{\"value\":\"2015" NIAN "01" YUE "05" RI "\"}}}",
	    WXAPI_SUBSCRIBE_SEND,
	    "{\"touser\":\"oU\",\"template_id\":\"T3\",\"page\":"
	    "\"pages/index/index?foo=bar\",\"miniprogram_state\":\"developer\","
	    "\"lang\":\"zh_CN\",\"data\":{\"number01\":{\"value\":\"339208499\"},"
	    "\"date01\":{\"value\":\"2015" NIAN "01" YUE "05" RI "\"}}}",
	    "mini_subscribe, every field (WeChat's example)");
	t_bad(MS "\"miniprogram_state\":\"prod\",\"data\":{\"thing1\":"
	    "{\"value\":\"v\"}}}", "miniprogram_state",
	    "must be one of: developer, trial, formal", "a bad state");
	t_bad(MS "\"lang\":\"fr_FR\",\"data\":{\"thing1\":{\"value\":\"v\"}}}",
	    "lang", "must be one of: zh_CN, en_US, zh_HK, zh_TW", "a bad lang");
	t_bad(MS "\"miniprogram\":{\"appid\":\"x\",\"pagepath\":\"p\"},"
	    "\"data\":{\"thing1\":{\"value\":\"v\"}}}", "miniprogram",
	    "unknown field 'miniprogram'", "mini_subscribe takes no miniprogram");

	/* thing: 20 characters of anything but controls. */
	t_ms_ok("thing1", t_rep(HAN, 20));
	t_ms_ok("thing1", "a1!" HAN " x");
	t_ms_bad("thing1", t_rep(HAN, 21), "a thing is at most 20");
	t_ms_bad("thing1", "a\\nb", "a control character");
	t_ms_bad("thing1", "", "data.thing1.value is empty");
	/* number: 32 digits, with decimals. */
	t_ms_ok("number2", t_rep("9", 32));
	t_ms_ok("number2", "3.14");
	t_ms_bad("number2", t_rep("9", 33), "a number is at most 32");
	t_ms_bad("number2", "-1", "a number");
	t_ms_bad("number2", "1.", "a number");
	t_ms_bad("number2", "1e5", "a number");
	/* letter: 32 letters. */
	t_ms_ok("letter3", t_rep("a", 32));
	t_ms_bad("letter3", t_rep("a", 33), "at most 32 letters");
	t_ms_bad("letter3", "ab1", "at most 32 letters");
	/* symbol: 5 symbols. */
	t_ms_ok("symbol4", "+-*/%");
	t_ms_bad("symbol4", "+-*/%!", "at most 5 symbols");
	t_ms_bad("symbol4", "+a", "at most 5 symbols");
	/* character_string: 32 digits, letters, symbols; no Chinese. */
	t_ms_ok("character_string5", t_rep("a1-", 10));
	t_ms_bad("character_string5", t_rep("a", 33), "character_string");
	t_ms_bad("character_string5", "a" HAN, "character_string");
	/* time: 24-hour, optionally after a date, or a period. */
	t_ms_ok("time6", "15:01");
	t_ms_ok("time6", "15:01:59");
	t_ms_ok("time6", "2019" NIAN "10" YUE "1" RI " 15:01");
	t_ms_ok("time6", "2023-08-21 22:48:54");
	t_ms_ok("time6", "15:01~16:30");
	t_ms_ok("time6", "2019-10-01 15:01 ~ 2019-10-01 16:01");
	t_ms_bad("time6", "24:00", "a time is");
	t_ms_bad("time6", "15:60", "a time is");
	t_ms_bad("time6", "2019-10-01", "a time is");
	t_ms_bad("time6", "3pm", "a time is");
	t_ms_bad("time6", "15:01~", "a time is");
	/* date: the documented forms, optionally with a time, or a period. */
	t_ms_ok("date7", "2019" NIAN "10" YUE "1" RI);
	t_ms_ok("date7", "2019" NIAN "10" YUE);
	t_ms_ok("date7", "10" YUE "1" RI);
	t_ms_ok("date7", "2018-01-01");
	t_ms_ok("date7", "2018/01/01");
	t_ms_ok("date7", "2018.01.01");
	t_ms_ok("date7", "2018-01");
	t_ms_ok("date7", "01-01");
	t_ms_ok("date7", "2019" NIAN "10" YUE "1" RI " 15:01");
	t_ms_ok("date7", "2018-01-01~2018-01-31");
	t_ms_bad("date7", "15:01", "a date is");
	t_ms_bad("date7", "2018-13-01", "a date is");
	t_ms_bad("date7", "2018-01-32", "a date is");
	t_ms_bad("date7", "2018-01/01", "a date is");
	t_ms_bad("date7", "tomorrow", "a date is");
	/* amount: a currency symbol, 10 digits, decimals, 元. */
	t_ms_ok("amount8", FWYEN "100.00");
	t_ms_ok("amount8", "$1234567890");
	t_ms_ok("amount8", "39.8" YUAN);
	t_ms_bad("amount8", FWYEN "12345678901", "an amount is");
	t_ms_bad("amount8", "about 5", "an amount is");
	t_ms_bad("amount8", "-5", "an amount is");
	/* phone_number: 17 digits and symbols. */
	t_ms_ok("phone_number9", "+86-0766-66888866");
	t_ms_bad("phone_number9", "+86-0766-668888661", "at most 17");
	t_ms_bad("phone_number9", "call 110", "at most 17 digits and symbols");
	/* car_number: 8; Chinese only first and last. */
	t_ms_ok("car_number10", "\xe7\xb2\xa4" "A8Z888" "\xe6\x8c\x82");
	t_ms_bad("car_number10", "\xe7\xb2\xa4" "A8Z8888" "\xe6\x8c\x82",
	    "a car_number");
	t_ms_bad("car_number10", "A" HAN "8", "a car_number");
	t_ms_bad("car_number10", "A-8", "a car_number");
	/* name: 10 with Chinese, else 20 letters or symbols. */
	t_ms_ok("name11", t_rep(HAN, 10));
	t_ms_ok("name11", t_rep("ab", 10));
	t_ms_ok("name11", "Li " HAN);
	t_ms_bad("name11", t_rep(HAN, 11), "a name is");
	t_ms_bad("name11", t_fmt("%s" HAN, t_rep("a", 10)), "a name is");
	t_ms_bad("name11", t_rep("a", 21), "a name is");
	t_ms_bad("name11", "R2D2", "a name is");
	/* phrase: 5 Chinese characters. */
	t_ms_ok("phrase12", t_rep(HAN, 5));
	t_ms_bad("phrase12", t_rep(HAN, 6), "at most 5 Chinese");
	t_ms_bad("phrase12", HAN "a", "at most 5 Chinese");
	/* enum and names WeChat's table does not list: the generic check. */
	t_ms_ok("enum13", "anything");
	t_ms_ok("site01", "TIT");
	t_ms_bad("site01", t_rep("x", 201), "201 characters");
}
#undef MS

static void
t_custom(void)
{
#define CS	"{" A "\"kind\":\"custom\",\"touser\":\"oU\","
	t_good(CS "\"msgtype\":\"text\",\"text\":{\"content\":"
	    "\"Hello\\n\\\"World\\\"\"}}", WXAPI_CUSTOM_SEND,
	    "{\"touser\":\"oU\",\"msgtype\":\"text\",\"text\":{\"content\":"
	    "\"Hello\\n\\\"World\\\"\"}}", "custom text");
	t_good(CS "\"msgtype\":\"image\",\"image\":{\"media_id\":\"MEDIA_ID-1\"}}",
	    WXAPI_CUSTOM_SEND, "{\"touser\":\"oU\",\"msgtype\":\"image\","
	    "\"image\":{\"media_id\":\"MEDIA_ID-1\"}}", "custom image");
	t_good(CS "\"msgtype\":\"link\",\"link\":{\"url\":\"https://e.com/a\","
	    "\"thumb_url\":\"https://e.com/t.png\",\"description\":\"d\","
	    "\"title\":\"t\"}}", WXAPI_CUSTOM_SEND,
	    "{\"touser\":\"oU\",\"msgtype\":\"link\",\"link\":{\"title\":\"t\","
	    "\"description\":\"d\",\"url\":\"https://e.com/a\",\"thumb_url\":"
	    "\"https://e.com/t.png\"}}", "custom link, members reordered");
	t_good(CS "\"msgtype\":\"miniprogrampage\",\"miniprogrampage\":"
	    "{\"title\":\"t\",\"appid\":\"wxmini\",\"pagepath\":"
	    "\"pages/index/index?foo=bar\",\"thumb_media_id\":\"M1\"}}",
	    WXAPI_CUSTOM_SEND, "{\"touser\":\"oU\",\"msgtype\":"
	    "\"miniprogrampage\",\"miniprogrampage\":{\"title\":\"t\","
	    "\"appid\":\"wxmini\",\"pagepath\":\"pages/index/index?foo=bar\","
	    "\"thumb_media_id\":\"M1\"}}", "custom miniprogrampage with appid");
	t_good(CS "\"msgtype\":\"miniprogrampage\",\"miniprogrampage\":"
	    "{\"title\":\"t\",\"pagepath\":\"p\",\"thumb_media_id\":\"M1\"}}",
	    WXAPI_CUSTOM_SEND, "{\"touser\":\"oU\",\"msgtype\":"
	    "\"miniprogrampage\",\"miniprogrampage\":{\"title\":\"t\","
	    "\"pagepath\":\"p\",\"thumb_media_id\":\"M1\"}}",
	    "custom miniprogrampage without appid (a mini program's)");
	t_good(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[{\"title\":"
	    "\"Happy Day\",\"description\":\"Is Really\",\"url\":"
	    "\"http://e.com/u\",\"picurl\":\"http://e.com/p.jpg\"}]}}",
	    WXAPI_CUSTOM_SEND, "{\"touser\":\"oU\",\"msgtype\":\"news\","
	    "\"news\":{\"articles\":[{\"title\":\"Happy Day\",\"description\":"
	    "\"Is Really\",\"url\":\"http://e.com/u\",\"picurl\":"
	    "\"http://e.com/p.jpg\"}]}}", "custom news");
	t_good(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[{\"url\":"
	    "\"http://e.com/u\"}]}}", WXAPI_CUSTOM_SEND,
	    "{\"touser\":\"oU\",\"msgtype\":\"news\",\"news\":{\"articles\":"
	    "[{\"url\":\"http://e.com/u\"}]}}", "custom news, url only");

	t_bad(CS "\"msgtype\":\"video\"}", "msgtype",
	    "msgtype must be one of: text, image, link, miniprogrampage, news",
	    "an unknown msgtype");
	t_bad(CS "\"msgtype\":\"text\"}", "text", "msgtype text needs the field "
	    "'text'", "text without its object");
	t_bad(CS "\"msgtype\":\"text\",\"text\":{\"content\":\"a\"},\"image\":"
	    "{\"media_id\":\"m\"}}", "image", "image does not go with msgtype "
	    "text", "two payloads");
	t_bad(CS "\"msgtype\":\"text\",\"text\":{\"content\":\"\"}}",
	    "text.content", "text.content is empty", "empty text");
	t_bad(t_fmt(CS "\"msgtype\":\"text\",\"text\":{\"content\":\"%s\"}}",
	    t_rep("x", 2049)), "text.content", "2049 bytes; at most 2048",
	    "text of 2049 bytes");
	t_good(t_fmt(CS "\"msgtype\":\"text\",\"text\":{\"content\":\"%s\"}}",
	    t_rep("x", 2048)), WXAPI_CUSTOM_SEND, t_fmt("{\"touser\":\"oU\","
	    "\"msgtype\":\"text\",\"text\":{\"content\":\"%s\"}}",
	    t_rep("x", 2048)), "text of 2048 bytes");
	t_bad(CS "\"msgtype\":\"text\",\"text\":{\"body\":\"a\"}}",
	    "text.body", "unknown field 'text.body'", "text.body");
	t_bad(CS "\"msgtype\":\"image\",\"image\":{\"media_id\":\"a/b\"}}",
	    "image.media_id", "may hold only", "a media_id with /");
	t_bad(CS "\"msgtype\":\"link\",\"link\":{\"title\":\"t\","
	    "\"description\":\"d\",\"url\":\"https://e.com\"}}",
	    "link.thumb_url", "missing required field 'link.thumb_url'",
	    "link without thumb_url");
	t_bad(CS "\"msgtype\":\"link\",\"link\":{\"title\":\"t\","
	    "\"description\":\"d\",\"url\":\"javascript:x\",\"thumb_url\":"
	    "\"https://e.com\"}}", "link.url", "link.url must start with http",
	    "link with a javascript: url");
	t_bad(t_fmt(CS "\"msgtype\":\"link\",\"link\":{\"title\":\"%s\","
	    "\"description\":\"d\",\"url\":\"https://e.com\",\"thumb_url\":"
	    "\"https://e.com\"}}", t_rep(HAN, 65)), "link.title",
	    "65 characters; at most 64", "a link title of 65");
	t_bad(CS "\"msgtype\":\"miniprogrampage\",\"miniprogrampage\":"
	    "{\"title\":\"t\",\"pagepath\":\"p\"}}",
	    "miniprogrampage.thumb_media_id", "missing required field",
	    "miniprogrampage without its cover");
	t_bad(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[{\"title\":\"a\"},"
	    "{\"title\":\"b\"}]}}", "news.articles", "2 articles; WeChat takes "
	    "exactly 1", "two articles");
	t_bad(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[]}}",
	    "news.articles", "0 articles", "no article");
	t_bad(CS "\"msgtype\":\"news\",\"news\":{\"articles\":{}}}",
	    "news.articles", "must be an array", "articles not an array");
	t_bad(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[{}]}}",
	    "news.articles.0", "news.articles.0 is empty", "an empty article");
	t_bad(CS "\"msgtype\":\"news\",\"news\":{\"articles\":[{\"picurl\":"
	    "\"x\"}]}}", "news.articles.0.picurl", "must start with http",
	    "a bad picurl");
#undef CS
}

/* wxapi.c knows the kinds' endpoints and what their errcodes mean. */
static void
t_wxapi(void)
{
	static const struct {
		enum wxapi_ep	 ep;
		const char	*path;
	} eps[] = {
		{ WXAPI_TEMPLATE_SEND, "/cgi-bin/message/template/send" },
		{ WXAPI_SUBSCRIBE_BIZSEND, "/cgi-bin/message/subscribe/bizsend" },
		{ WXAPI_SUBSCRIBE_SEND, "/cgi-bin/message/subscribe/send" },
		{ WXAPI_CUSTOM_SEND, "/cgi-bin/message/custom/send" },
	};
	const struct wxapi_endpoint *e;
	const char *hint;
	size_t i;
	int ra;

	for (i = 0; i < sizeof eps / sizeof eps[0]; i++) {
		e = wxapi_endpoint(eps[i].ep);
		ok(strcmp(e->path, eps[i].path) == 0 &&
		    strcmp(e->method, "POST") == 0 && e->token_param != NULL &&
		    strcmp(e->token_param, "access_token") == 0 && !e->fetch,
		    "%s: POST with access_token, not a token endpoint",
		    eps[i].path);
		ok(wxapi_classify(eps[i].ep, 40001, &ra) == WXAPI_TOKEN_REFUSED &&
		    wxapi_classify(eps[i].ep, 42001, &ra) == WXAPI_TOKEN_REFUSED,
		    "%s: 40001 and 42001 are a refused token (compare-and-"
		    "refresh)", eps[i].path);
		ok(wxapi_classify(eps[i].ep, -1, &ra) == WXAPI_RETRY &&
		    wxapi_classify(eps[i].ep, 61003, &ra) == WXAPI_REVOKED,
		    "%s: -1 retried, 61003 revoked", eps[i].path);
	}
	ok(wxapi_classify(WXAPI_CUSTOM_SEND, 45015, &ra) == WXAPI_FINAL &&
	    ra == 0, "45015 is final");
	ok(wxapi_classify(WXAPI_SUBSCRIBE_SEND, 47003, &ra) == WXAPI_FINAL,
	    "47003 is final");
	hint = wxapi_errcode_hint(45015);
	ok(hint != NULL && strstr(hint, "48 hours") != NULL &&
	    strstr(hint, "do not retry") != NULL,
	    "45015's hint says 48 hours and not to retry");
	ok(wxapi_errcode_hint(47003) != NULL && wxapi_errcode_hint(1) == NULL,
	    "47003 has a hint, an unknown errcode none");
	ok(strcmp(wxapi_errcode_name(wxapi_errcode_index(45015)), "45015") == 0 &&
	    strcmp(wxapi_errcode_name(wxapi_errcode_index(47003)), "47003") == 0,
	    "45015 and 47003 have counters of their own");
}

int
main(void)
{
	msgpack_sbuffer_init(&t_sb);
	msgpack_packer_init(&t_pk, &t_sb, msgpack_sbuffer_write);
	msgpack_zone_init(&t_zone, 4096);

	t_kind();
	t_template();
	t_subscribe();
	t_mini_subscribe();
	t_custom();
	t_wxapi();

	msgpack_zone_destroy(&t_zone);
	msgpack_sbuffer_destroy(&t_sb);
	return (tap_done());
}
