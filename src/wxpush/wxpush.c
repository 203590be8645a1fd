/*
 * wxpush: the command-line client of wxpushd, on top of libwxpush.
 *
 * Exit status: 0 ok, 1 the daemon or WeChat refused, 2 usage error, 3 cannot
 * reach the daemon (the WXPUSH_* return codes of libwxpush).
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <msgpack.h>

#include "wxpush.h"
#include "wxpush-cli.h"

#define WXPUSH_BODY_MAX		65536	/* bytes of a --body file or call params */
#define WXPUSH_JSON_DEPTH	16	/* nesting of a JSON body */

static const char	*wxpush_socket;		/* -s, NULL: library default */
static int		 wxpush_json;		/* --json */
static int		 wxpush_timeout = WXPUSH_DEFAULT_TIMEOUT;
static const char	*wxpush_command = NULL;	/* for messages */

/* The usage, a few lines per command. */
static const struct {
	const char	*command;
	const char	*text;
} wxpush_usage_text[] = {
	{ "ping", "  ping\n" },
	{ "status", "  status [--appid A]\n" },
	{ "stats", "  stats\n" },
	{ "top", "  top [-b] [-n COUNT]            (a live view, refreshed every second)\n" },
	{ "send",
	  "  send --appid A --touser OPENID --template-id T --scene S --title TEXT\n"
	  "       --content TEXT [--color #RRGGBB] [--url URL]\n"
	  "       [--miniprogram-appid X --miniprogram-pagepath P] [--idempotency-key K]\n"
	  "  send --appid A [--kind K] [--idempotency-key K] --body FILE\n"
	  "       (the send params as JSON, - for stdin; K: subscribe_once,\n"
	  "       template, subscribe, mini_subscribe, custom)\n"
	  "  send ... --queue [--not-after UNIXTIME] [--watch]   (the outbox: prints the id)\n" },
	{ "delivery", "  delivery ID                  (a queued message's state)\n" },
	{ "outbox", "  outbox                       (messages waiting, per appid)\n" },
	{ "authorize", "  authorize --component-appid C --code CODE\n" },
	{ "preauth",
	  "  preauth --component-appid C --redirect-uri URL [--auth-type 1|2|3]\n"
	  "       [--biz-appid A] [--mobile]   (the merchant's authorization page)\n" },
	{ "call", "  call METHOD [JSON]           (any method, JSON params object or -)\n"
	  "  call --appid A [--method GET|POST] [--query JSON] [--body FILE] PATH\n"
	  "       (a WeChat API the daemon allows, with the appid's token)\n" },
	{ "jssdk-sign", "  jssdk-sign --appid A --url URL   (a JS-SDK wx.config signature)\n" },
	{ "consent-url",
	  "  consent-url --appid A --scene S --template-id T --redirect-url URL\n"
	  "       [--reserved R]        (the user's consent page; no daemon needed)\n"
	  "  consent-url --signed --appid A --scene S --template-id T\n"
	  "       [--redirect-url URL] [--reference R] [--expires-in SECONDS]\n"
	  "       (a link the daemon signs, for its consent ledger)\n" },
	{ "consents", "  consents --appid A [--openid O] [--template-id T]\n" },
	{ "consent-forget", "  consent-forget --appid A --openid O\n" },
};

/* Print the usage of the current command, or of all commands. */
static void
wxpush_print_usage(FILE *f)
{
	size_t	i, n = sizeof wxpush_usage_text / sizeof wxpush_usage_text[0];
	int	found = 0;

	fputs("usage: wxpush [-s socket] [-t seconds] [--json] command [options]\n", f);
	for (i = 0; wxpush_command != NULL && i < n; i++) {
		if (strcmp(wxpush_usage_text[i].command, wxpush_command) == 0) {
			fputs(wxpush_usage_text[i].text, f);
			found = 1;
		}
	}
	for (i = 0; !found && i < n; i++)
		fputs(wxpush_usage_text[i].text, f);
}

/* Print a JSON value on stdout (it takes the reference). */
static void
wxpush_print_json(json_t *j)
{
	if (j == NULL)
		j = json_null();
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
	json_decref(j);
}

/* Print an error in what the user gave us and exit 2, with the usage if asked. */
static void __attribute__((format(printf, 2, 0), noreturn))
wxpush_usage_v(int show, const char *fmt, va_list ap)
{
	char	msg[512];
	json_t	*j;

	vsnprintf(msg, sizeof msg, fmt, ap);
	if (wxpush_command != NULL)
		fprintf(stderr, "wxpush: %s: %s\n", wxpush_command, msg);
	else
		fprintf(stderr, "wxpush: %s\n", msg);
	if (wxpush_json) {
		j = json_pack("{s:{s:s,s:s,s:b}}", "error", "code", "usage",
		    "message", msg, "retryable", 0);
		wxpush_print_json(j);
		fflush(stdout);
	}
	if (show)
		wxpush_print_usage(stderr);
	exit(WXPUSH_ERR_USAGE);
}

/* A mistake on the command line: say what, show the usage, exit 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
wxpush_usage(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	wxpush_usage_v(1, fmt, ap);
}

/* Bad input (a body file, JSON params): say what and exit 2. */
static void __attribute__((format(printf, 1, 2), noreturn))
wxpush_bad_input(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	wxpush_usage_v(0, fmt, ap);
}

/* Exit on a failed allocation: there is nothing sensible left to do. */
void
wxpush_nomem(void)
{
	fprintf(stderr, "wxpush: out of memory\n");
	exit(WXPUSH_ERR_CONNECT);
}

/* A copy of a msgpack str for the terminal: bounded, no control characters. */
void
wxpush_strcell(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	i, n;

	n = srclen < dstlen - 1 ? srclen : dstlen - 1;
	while (n < srclen && n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
		n--;	/* keep whole UTF-8 characters */
	for (i = 0; i < n; i++) {
		if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
			dst[i] = '?';
		else
			dst[i] = src[i];
	}
	dst[n] = '\0';
}

/* A JSON string from bytes that should be UTF-8; bad bytes become U+FFFD. */
static json_t *
wxpush_json_string(const char *p, size_t len)
{
	json_t			*j;
	char			*fixed, *q;
	const unsigned char	*s = (const unsigned char *)p;
	size_t			 i, k, need;
	json_t			*one;

	if ((j = json_stringn(p, len)) != NULL)
		return (j);
	/* Invalid UTF-8: keep the valid characters, replace the rest. */
	if (len > SIZE_MAX / 3 - 1 || (fixed = malloc(len * 3 + 1)) == NULL)
		wxpush_nomem();
	q = fixed;
	for (i = 0; i < len; ) {
		need = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 :
		    (s[i] & 0xf0) == 0xe0 ? 3 : (s[i] & 0xf8) == 0xf0 ? 4 : 0;
		if (need != 0 && i + need <= len) {
			/* Let jansson judge the character (overlongs, surrogates). */
			one = json_stringn(p + i, need);
			if (one != NULL) {
				json_decref(one);
				for (k = 0; k < need; k++)
					*q++ = (char)s[i + k];
				i += need;
				continue;
			}
		}
		memcpy(q, "\xef\xbf\xbd", 3);
		q += 3;
		i++;
	}
	j = json_stringn(fixed, (size_t)(q - fixed));
	free(fixed);
	return (j != NULL ? j : json_string(""));
}

/* Convert a msgpack object to JSON, faithfully where JSON can say it. */
static json_t *
wxpush_mp_to_json(const msgpack_object *o)
{
	const msgpack_object_kv	*kv;
	json_t			*j, *v, *k;
	char			 buf[64], *ks;
	uint32_t		 i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return (json_null());
	case MSGPACK_OBJECT_BOOLEAN:
		return (json_boolean(o->via.boolean));
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return (json_real((double)o->via.u64));
		return (json_integer((json_int_t)o->via.u64));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (json_integer((json_int_t)o->via.i64));
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		j = json_real(o->via.f64);	/* NULL for NaN and infinities */
		return (j != NULL ? j : json_null());
	case MSGPACK_OBJECT_STR:
		return (wxpush_json_string(o->via.str.ptr, o->via.str.size));
	case MSGPACK_OBJECT_BIN:
		return (wxpush_json_string(o->via.bin.ptr, o->via.bin.size));
	case MSGPACK_OBJECT_ARRAY:
		if ((j = json_array()) == NULL)
			wxpush_nomem();
		for (i = 0; i < o->via.array.size; i++)
			json_array_append_new(j,
			    wxpush_mp_to_json(&o->via.array.ptr[i]));
		return (j);
	case MSGPACK_OBJECT_MAP:
		if ((j = json_object()) == NULL)
			wxpush_nomem();
		for (i = 0; i < o->via.map.size; i++) {
			kv = &o->via.map.ptr[i];
			v = wxpush_mp_to_json(&kv->val);
			if (kv->key.type == MSGPACK_OBJECT_STR ||
			    kv->key.type == MSGPACK_OBJECT_BIN) {
				k = wxpush_mp_to_json(&kv->key);
				json_object_setn_new(j, json_string_value(k),
				    json_string_length(k), v);
				json_decref(k);
				continue;
			}
			/* JSON keys are strings: spell other keys out. */
			k = wxpush_mp_to_json(&kv->key);
			ks = json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY);
			json_decref(k);
			if (ks == NULL) {
				snprintf(buf, sizeof buf, "?");
				json_object_set_new(j, buf, v);
			} else {
				json_object_set_new(j, ks, v);
				free(ks);
			}
		}
		return (j);
	default:	/* ext */
		return (json_null());
	}
}

/*
 * Convert JSON to a msgpack object allocated in zone z; strings point into
 * the JSON value, which must outlive the object. -1 with why on failure.
 */
static int
wxpush_json_to_mp(json_t *j, msgpack_object *o, msgpack_zone *z, int depth,
    const char **why)
{
	msgpack_object_kv	*kv;
	void			*it;
	json_int_t		 n;
	size_t			 size, i;

	memset(o, 0, sizeof *o);
	if (depth > WXPUSH_JSON_DEPTH) {
		*why = "nested too deeply";
		return (-1);
	}
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		size = json_object_size(j);
		o->type = MSGPACK_OBJECT_MAP;
		if (size == 0)
			return (0);
		if ((kv = msgpack_zone_malloc(z, size * sizeof *kv)) == NULL)
			wxpush_nomem();
		i = 0;
		for (it = json_object_iter(j); it != NULL && i < size;
		    it = json_object_iter_next(j, it), i++) {
			kv[i].key.type = MSGPACK_OBJECT_STR;
			kv[i].key.via.str.ptr = json_object_iter_key(it);
			kv[i].key.via.str.size =
			    (uint32_t)json_object_iter_key_len(it);
			if (wxpush_json_to_mp(json_object_iter_value(it),
			    &kv[i].val, z, depth + 1, why) != 0)
				return (-1);
		}
		o->via.map.ptr = kv;
		o->via.map.size = (uint32_t)i;
		return (0);
	case JSON_ARRAY:
		size = json_array_size(j);
		o->type = MSGPACK_OBJECT_ARRAY;
		if (size == 0)
			return (0);
		o->via.array.ptr = msgpack_zone_malloc(z,
		    size * sizeof *o->via.array.ptr);
		if (o->via.array.ptr == NULL)
			wxpush_nomem();
		for (i = 0; i < size; i++) {
			if (wxpush_json_to_mp(json_array_get(j, i),
			    &o->via.array.ptr[i], z, depth + 1, why) != 0)
				return (-1);
		}
		o->via.array.size = (uint32_t)size;
		return (0);
	case JSON_STRING:
		o->type = MSGPACK_OBJECT_STR;
		o->via.str.ptr = json_string_value(j);
		o->via.str.size = (uint32_t)json_string_length(j);
		return (0);
	case JSON_INTEGER:
		n = json_integer_value(j);
		if (n >= 0) {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = (uint64_t)n;
		} else {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = n;
		}
		return (0);
	case JSON_REAL:
		o->type = MSGPACK_OBJECT_FLOAT64;
		o->via.f64 = json_real_value(j);
		return (0);
	case JSON_TRUE:
	case JSON_FALSE:
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = json_is_true(j);
		return (0);
	case JSON_NULL:
		o->type = MSGPACK_OBJECT_NIL;
		return (0);
	}
	*why = "unknown JSON type";
	return (-1);
}

/* Read a file ('-' for stdin) of at most WXPUSH_BODY_MAX bytes and parse it as a JSON object. */
static json_t *
wxpush_load_json(const char *path, const char *what)
{
	json_error_t	 jerr;
	json_t		*j;
	FILE		*f;
	char		*buf;
	size_t		 len = 0, n;

	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "r")) == NULL)
		wxpush_bad_input("%s %s: %s", what, path, strerror(errno));
	if ((buf = malloc(WXPUSH_BODY_MAX + 1)) == NULL)
		wxpush_nomem();
	while (len < WXPUSH_BODY_MAX + 1) {
		n = fread(buf + len, 1, WXPUSH_BODY_MAX + 1 - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f))
		wxpush_bad_input("%s %s: %s", what, path, strerror(errno));
	if (f != stdin)
		fclose(f);
	if (len > WXPUSH_BODY_MAX)
		wxpush_bad_input("%s %s is larger than %d bytes", what, path,
		    WXPUSH_BODY_MAX);
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
	    &jerr);
	free(buf);
	if (j == NULL)
		wxpush_bad_input("%s %s: line %d column %d: %s", what, path,
		    jerr.line, jerr.column, jerr.text);
	if (!json_is_object(j))
		wxpush_bad_input("%s %s is not a JSON object", what, path);
	return (j);
}

/* Print an error: one line on stderr, and the JSON form on stdout with --json. */
void
wxpush_print_error(const struct wxpush_error *e, const msgpack_unpacked *res)
{
	const msgpack_object	*eo = NULL;
	json_t			*j, *em;

	fprintf(stderr, "wxpush: %s", e->code[0] != '\0' ? e->code : "error");
	if (e->message[0] != '\0')
		fprintf(stderr, ": %s", e->message);
	if (e->field[0] != '\0')
		fprintf(stderr, " (field %s)", e->field);
	if (e->errcode != 0 || e->errmsg[0] != '\0') {
		fprintf(stderr, " (errcode %ld", e->errcode);
		if (e->errmsg[0] != '\0')
			fprintf(stderr, ": %s", e->errmsg);
		fputc(')', stderr);
	}
	if (e->retry_after > 0)
		fprintf(stderr, " (retry after %d s)", e->retry_after);
	if (e->retryable)
		fprintf(stderr, " (retryable)");
	fputc('\n', stderr);

	if (!wxpush_json)
		return;
	if (res != NULL)
		eo = wxpush_error_object(res);
	if (eo != NULL && eo->type == MSGPACK_OBJECT_MAP)
		em = wxpush_mp_to_json(eo);	/* the daemon's own map, whole */
	else {
		em = json_pack("{s:s,s:s,s:b}", "code", e->code[0] != '\0' ?
		    e->code : "error", "message", e->message, "retryable",
		    e->retryable);
		if (em == NULL)
			wxpush_nomem();
	}
	j = json_object();
	if (j == NULL)
		wxpush_nomem();
	json_object_set_new(j, "error", em);
	wxpush_print_json(j);
}

/* Connect, or exit 3. */
struct wxpush *
wxpush_connect(void)
{
	struct wxpush_error	 e;
	struct wxpush		*w;
	char			 buf[sizeof e.message];

	if ((w = wxpush_open(wxpush_socket, buf, sizeof buf)) == NULL) {
		memset(&e, 0, sizeof e);
		snprintf(e.code, sizeof e.code, "connect");
		memcpy(e.message, buf, sizeof e.message);
		e.retryable = 1;
		wxpush_print_error(&e, NULL);
		exit(WXPUSH_ERR_CONNECT);
	}
	wxpush_set_timeout(w, wxpush_timeout);
	return (w);
}

/*
 * Call a method; on success return with res holding the response, on
 * failure print the error and exit with the library's code.
 */
static void
wxpush_do_call(const char *method, const msgpack_object *params,
    msgpack_unpacked *res)
{
	struct wxpush_error	 e;
	struct wxpush		*w;
	int			 rc;

	w = wxpush_connect();
	rc = wxpush_call(w, method, params, res, &e);
	wxpush_close(w);
	if (rc != WXPUSH_OK) {
		wxpush_print_error(&e, res);
		msgpack_unpacked_destroy(res);
		fflush(stdout);
		exit(rc);
	}
}

/* Look a str key up in a map; NULL if absent or not a map. */
const msgpack_object *
wxpush_get(const msgpack_object *map, const char *key)
{
	const msgpack_object_kv	*kv;
	size_t			 len = strlen(key);
	uint32_t		 i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	for (i = 0; i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == len &&
		    memcmp(kv->key.via.str.ptr, key, len) == 0)
			return (&kv->val);
	}
	return (NULL);
}

/* Whether o is an integer; its value, clamped, in *v. */
int
wxpush_get_int(const msgpack_object *o, long long *v)
{
	if (o == NULL)
		return (0);
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*v = o->via.u64 > LLONG_MAX ? LLONG_MAX : (long long)o->via.u64;
		return (1);
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return (1);
	}
	return (0);
}

/* Format a duration in seconds for a person: 2d03h, 1h05m, 4m09s, 7s. */
void
wxpush_fmt_duration(char *buf, size_t len, long long s)
{
	const char	*sign = "";

	if (s < 0) {
		sign = "-";
		s = s == LLONG_MIN ? LLONG_MAX : -s;
	}
	if (s >= 86400)
		snprintf(buf, len, "%s%lldd%02lldh", sign, s / 86400,
		    (s % 86400) / 3600);
	else if (s >= 3600)
		snprintf(buf, len, "%s%lldh%02lldm", sign, s / 3600,
		    (s % 3600) / 60);
	else if (s >= 60)
		snprintf(buf, len, "%s%lldm%02llds", sign, s / 60, s % 60);
	else
		snprintf(buf, len, "%s%llds", sign, s);
}

/* Format any value for a table cell or a "key: value" line. */
void
wxpush_fmt_value(char *buf, size_t len, const msgpack_object *o)
{
	json_t	*j;
	char	*s;

	if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
		snprintf(buf, len, "-");
		return;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_BOOLEAN:
		snprintf(buf, len, "%s", o->via.boolean ? "true" : "false");
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(buf, len, "%llu", (unsigned long long)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(buf, len, "%lld", (long long)o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		snprintf(buf, len, "%g", o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		wxpush_strcell(buf, len, o->via.str.ptr, o->via.str.size);
		break;
	default:
		/* Containers and the rest: compact JSON. */
		j = wxpush_mp_to_json(o);
		s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
		if (s == NULL)
			wxpush_nomem();
		wxpush_strcell(buf, len, s, strlen(s));
		free(s);
		break;
	}
}

/* Format a Unix time as local time; 0 is "never". */
static void
wxpush_fmt_time(char *buf, size_t len, const msgpack_object *o)
{
	struct tm	tm;
	long long	v;
	time_t		t;

	if (!wxpush_get_int(o, &v)) {
		wxpush_fmt_value(buf, len, o);
		return;
	}
	if (v == 0) {
		snprintf(buf, len, "never");
		return;
	}
	t = (time_t)v;
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%lld", v);
}

/* ping: print the daemon's version and protocol. */
static int
wxpush_cmd_ping(void)
{
	msgpack_unpacked	 res;
	const msgpack_object	*r;
	char			 version[128], protocol[32];

	wxpush_do_call("ping", NULL, &res);
	r = wxpush_result(&res);
	if (wxpush_json)
		wxpush_print_json(r != NULL ? wxpush_mp_to_json(r) : NULL);
	else {
		wxpush_fmt_value(version, sizeof version,
		    wxpush_get(r, "version"));
		wxpush_fmt_value(protocol, sizeof protocol,
		    wxpush_get(r, "protocol"));
		printf("pong (wxpushd %s, protocol %s)\n", version, protocol);
	}
	msgpack_unpacked_destroy(&res);
	return (WXPUSH_OK);
}

/* The columns of the status table: key in each credential, and heading. */
static const struct {
	const char	*key;
	const char	*heading;
} wxpush_status_columns[] = {
	{ "appid", "APPID" },
	{ "kind", "KIND" },
	{ "state", "STATE" },
	{ "expires_in", "EXPIRES_IN" },
	{ "refreshed_at", "REFRESHED_AT" },
	{ "token_calls_today", "CALLS_TODAY" },
	{ "failures", "FAILURES" },
	{ "last_errcode", "LAST_ERRCODE" },
};
#define WXPUSH_NCOLUMNS \
	(sizeof wxpush_status_columns / sizeof wxpush_status_columns[0])

/* Format one status cell. */
static void
wxpush_status_cell(char *buf, size_t len, const msgpack_object *cred,
    size_t col)
{
	const char		*key = wxpush_status_columns[col].key;
	const msgpack_object	*o = wxpush_get(cred, key);
	long long		 v;

	if (strcmp(key, "refreshed_at") == 0 && o != NULL)
		wxpush_fmt_time(buf, len, o);
	else if (strcmp(key, "expires_in") == 0 && wxpush_get_int(o, &v))
		wxpush_fmt_duration(buf, len, v);
	else
		wxpush_fmt_value(buf, len, o);
}

/* Whether a value says nothing: nil, "", 0 or false. */
static int
wxpush_is_empty(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return (1);
	case MSGPACK_OBJECT_BOOLEAN:
		return (!o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return (o->via.u64 == 0);
	case MSGPACK_OBJECT_STR:
		return (o->via.str.size == 0);
	default:
		return (0);
	}
}

/* Print a credential's other fields (last_error, ...) that say something. */
static void
wxpush_status_extra(const msgpack_object *cred)
{
	const msgpack_object_kv	*kv;
	char			 appid[WXPUSH_CELL_MAX], key[64];
	char			 value[WXPUSH_CELL_MAX];
	size_t			 col;
	uint32_t		 i;
	int			 n = 0;

	if (cred->type != MSGPACK_OBJECT_MAP)
		return;
	wxpush_fmt_value(appid, sizeof appid, wxpush_get(cred, "appid"));
	for (i = 0; i < cred->via.map.size; i++) {
		kv = &cred->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR ||
		    wxpush_is_empty(&kv->val))
			continue;
		wxpush_strcell(key, sizeof key, kv->key.via.str.ptr,
		    kv->key.via.str.size);
		for (col = 0; col < WXPUSH_NCOLUMNS; col++) {
			if (strcmp(key, wxpush_status_columns[col].key) == 0)
				break;
		}
		if (col < WXPUSH_NCOLUMNS)
			continue;
		wxpush_fmt_value(value, sizeof value, &kv->val);
		if (n++ == 0)
			printf("%s: ", appid);
		else
			printf("; ");
		printf("%s: %s", key, value);
	}
	if (n > 0)
		putchar('\n');
}

/* Print the status result as a table. */
static void
wxpush_status_print(const msgpack_object *r)
{
	const msgpack_object	*creds, *cred;
	const msgpack_object_kv	*kv;
	size_t			 width[WXPUSH_NCOLUMNS], col, w;
	char			 cell[WXPUSH_CELL_MAX], version[128], key[64];
	long long		 v;
	uint32_t		 i;

	wxpush_fmt_value(version, sizeof version, wxpush_get(r, "version"));
	printf("wxpushd %s", version);
	if (wxpush_get_int(wxpush_get(r, "uptime"), &v)) {
		wxpush_fmt_duration(cell, sizeof cell, v);
		printf(", up %s", cell);
	}
	putchar('\n');

	/* Whatever else the daemon says, as key: value lines. */
	for (i = 0; r != NULL && i < r->via.map.size; i++) {
		kv = &r->via.map.ptr[i];
		if (kv->key.type != MSGPACK_OBJECT_STR)
			continue;
		wxpush_strcell(key, sizeof key, kv->key.via.str.ptr,
		    kv->key.via.str.size);
		if (strcmp(key, "version") == 0 || strcmp(key, "uptime") == 0 ||
		    strcmp(key, "credentials") == 0)
			continue;
		wxpush_fmt_value(cell, sizeof cell, &kv->val);
		printf("%s: %s\n", key, cell);
	}

	creds = wxpush_get(r, "credentials");
	if (creds == NULL || creds->type != MSGPACK_OBJECT_ARRAY ||
	    creds->via.array.size == 0) {
		printf("no credentials\n");
		return;
	}
	for (col = 0; col < WXPUSH_NCOLUMNS; col++)
		width[col] = strlen(wxpush_status_columns[col].heading);
	for (i = 0; i < creds->via.array.size; i++) {
		cred = &creds->via.array.ptr[i];
		for (col = 0; col < WXPUSH_NCOLUMNS; col++) {
			wxpush_status_cell(cell, sizeof cell, cred, col);
			if ((w = strlen(cell)) > width[col])
				width[col] = w;
		}
	}
	for (col = 0; col < WXPUSH_NCOLUMNS; col++)
		printf("%-*s%s", col + 1 < WXPUSH_NCOLUMNS ? (int)width[col] : 0,
		    wxpush_status_columns[col].heading,
		    col + 1 < WXPUSH_NCOLUMNS ? "  " : "\n");
	for (i = 0; i < creds->via.array.size; i++) {
		cred = &creds->via.array.ptr[i];
		for (col = 0; col < WXPUSH_NCOLUMNS; col++) {
			wxpush_status_cell(cell, sizeof cell, cred, col);
			printf("%-*s%s", col + 1 < WXPUSH_NCOLUMNS ?
			    (int)width[col] : 0, cell,
			    col + 1 < WXPUSH_NCOLUMNS ? "  " : "\n");
		}
	}
	for (i = 0; i < creds->via.array.size; i++)
		wxpush_status_extra(&creds->via.array.ptr[i]);
}

/* status: the credentials table, for one appid or all. */
static int
wxpush_cmd_status(const char *appid)
{
	msgpack_unpacked	 res;
	msgpack_object_kv	 kv;
	msgpack_object		 params;
	const msgpack_object	*r;

	if (appid != NULL) {
		kv.key.type = MSGPACK_OBJECT_STR;
		kv.key.via.str.ptr = "appid";
		kv.key.via.str.size = 5;
		kv.val.type = MSGPACK_OBJECT_STR;
		kv.val.via.str.ptr = appid;
		kv.val.via.str.size = (uint32_t)strlen(appid);
		params.type = MSGPACK_OBJECT_MAP;
		params.via.map.ptr = &kv;
		params.via.map.size = 1;
	}
	wxpush_do_call("status", appid != NULL ? &params : NULL, &res);
	r = wxpush_result(&res);
	if (wxpush_json)
		wxpush_print_json(r != NULL ? wxpush_mp_to_json(r) : NULL);
	else
		wxpush_status_print(r);
	msgpack_unpacked_destroy(&res);
	return (WXPUSH_OK);
}

/* Print a map as "key: value" lines, nested maps as dotted keys. */
static void
wxpush_print_flat(const char *prefix, const msgpack_object *map)
{
	const msgpack_object_kv	*kv;
	char			 key[256], name[512], value[WXPUSH_CELL_MAX];
	uint32_t		 i;

	for (i = 0; i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR)
			wxpush_strcell(key, sizeof key, kv->key.via.str.ptr,
			    kv->key.via.str.size);
		else
			wxpush_fmt_value(key, sizeof key, &kv->key);
		snprintf(name, sizeof name, "%s%s%s", prefix,
		    *prefix != '\0' ? "." : "", key);
		if (kv->val.type == MSGPACK_OBJECT_MAP)
			wxpush_print_flat(name, &kv->val);
		else {
			wxpush_fmt_value(value, sizeof value, &kv->val);
			printf("%s: %s\n", name, value);
		}
	}
}

/* stats: the daemon's counters. */
static int
wxpush_cmd_stats(void)
{
	msgpack_unpacked	 res;
	const msgpack_object	*r;

	wxpush_do_call("stats", NULL, &res);
	r = wxpush_result(&res);
	if (wxpush_json)
		wxpush_print_json(r != NULL ? wxpush_mp_to_json(r) : NULL);
	else if (r != NULL)
		wxpush_print_flat("", r);
	msgpack_unpacked_destroy(&res);
	return (WXPUSH_OK);
}

/* outbox: one line per appid: depth and the age of the oldest message. */
static void
wxpush_print_outbox(const msgpack_object *r)
{
	const msgpack_object	*a = wxpush_get(r, "appids"), *e;
	char			 appid[128];
	long long		 depth, oldest;
	uint32_t		 i;

	printf("%-20s %10s %12s\n", "APPID", "DEPTH", "OLDEST");
	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (i = 0; i < a->via.array.size; i++) {
		e = &a->via.array.ptr[i];
		wxpush_fmt_value(appid, sizeof appid, wxpush_get(e, "appid"));
		if (!wxpush_get_int(wxpush_get(e, "depth"), &depth))
			depth = 0;
		if (!wxpush_get_int(wxpush_get(e, "oldest"), &oldest))
			oldest = 0;
		if (oldest > 0)
			printf("%-20s %10lld %11llds\n", appid, depth,
			    (long long)time(NULL) - oldest);
		else
			printf("%-20s %10lld %12s\n", appid, depth, "-");
	}
}

/* The consents method's list, one consent a line. */
static void
wxpush_print_consents(const msgpack_object *a)
{
	static const char *keys[] = { "openid", "template_id", "scene",
	    "state", "recorded_at", "spent_at" };
	char		 buf[256];
	uint32_t	 i;
	size_t		 k;

	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
		return;
	for (i = 0; i < a->via.array.size; i++) {
		for (k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			wxpush_fmt_value(buf, sizeof buf,
			    wxpush_get(&a->via.array.ptr[i], keys[k]));
			printf("%s%s", k == 0 ? "" : " ", buf);
		}
		printf("\n");
	}
}

/* Call a method with a JSON params object (or none) and print the result. */
static int
wxpush_call_json(const char *method, json_t *params, int how)
{
	msgpack_unpacked	 res;
	msgpack_object		 o;
	msgpack_zone		*z;
	const msgpack_object	*r, *v;
	const char		*why = NULL;
	char			 buf[256];
	long long		 n;

	if ((z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)) == NULL)
		wxpush_nomem();
	if (params != NULL &&
	    wxpush_json_to_mp(params, &o, z, 0, &why) != 0)
		wxpush_bad_input("%s: %s", how == 's' ? "body" : "params", why);
	wxpush_do_call(method, params != NULL ? &o : NULL, &res);
	msgpack_zone_free(z);

	r = wxpush_result(&res);
	if (wxpush_json || how == 0)
		wxpush_print_json(r != NULL ? wxpush_mp_to_json(r) : NULL);
	else if (how == 's') {
		if (wxpush_get_int(wxpush_get(r, "attempts"), &n))
			printf("sent (attempts %lld", n);
		else
			printf("sent (");
		/* WeChat's msgid, for the kinds that answer one. */
		if (wxpush_get_int(wxpush_get(r, "msgid"), &n))
			printf(", msgid %lld", n);
		printf(")\n");
	} else if (how == 'q') {
		if (wxpush_get_int(wxpush_get(r, "id"), &n))
			printf("%lld\n", n);
	} else if (how == 'd') {
		v = wxpush_get(r, "state");
		wxpush_fmt_value(buf, sizeof buf, v);
		printf("%s", buf);
		if (wxpush_get_int(wxpush_get(r, "attempts"), &n))
			printf(" (attempts %lld)", n);
		if ((v = wxpush_get(r, "errcode")) != NULL) {
			wxpush_fmt_value(buf, sizeof buf, wxpush_get(r, "code"));
			printf(" %s", buf);
			wxpush_fmt_value(buf, sizeof buf, v);
			printf(" errcode %s", buf);
			wxpush_fmt_value(buf, sizeof buf, wxpush_get(r, "errmsg"));
			printf(": %s", buf);
		}
		printf("\n");
	} else if (how == 'o') {
		wxpush_print_outbox(r);
	} else if (how == 'a') {
		v = wxpush_get(r, "authorizer_appid");
		wxpush_fmt_value(buf, sizeof buf, v);
		printf("%s\n", buf);
	} else if (how == 'c') {
		/* consents: OPENID TEMPLATE_ID SCENE STATE RECORDED_AT */
		wxpush_print_consents(wxpush_get(r, "consents"));
	} else if (how == 'f') {
		if (wxpush_get_int(wxpush_get(r, "deleted"), &n))
			printf("deleted %lld\n", n);
	} else if (how == 'p') {
		/* The whole URL, which is longer than a cell. */
		v = wxpush_get(r, "url");
		if (v != NULL && v->type == MSGPACK_OBJECT_STR)
			printf("%.*s\n", (int)v->via.str.size, v->via.str.ptr);
	}
	msgpack_unpacked_destroy(&res);
	return (WXPUSH_OK);
}

/* Set a string member of a JSON object, or exit. */
static void
wxpush_json_set(json_t *j, const char *key, const char *value)
{
	json_t	*v;

	if ((v = json_string(value)) == NULL)
		wxpush_bad_input("the value for %s is not valid UTF-8", key);
	if (json_object_set_new(j, key, v) != 0)
		wxpush_nomem();
}

/* Report a bad option in a command's arguments and exit 2. */
static void __attribute__((noreturn))
wxpush_bad_option(int c, char **argv)
{
	const char	*arg = argv[optind - 1];

	if (c == ':')
		wxpush_usage("option %s needs a value", arg);
	if (optopt != 0 && (arg == NULL || strncmp(arg, "--", 2) != 0))
		wxpush_usage("unknown option -%c", optopt);
	wxpush_usage("unknown option %s", arg);
}

/* Handle the options every command accepts; 1 if c was one of them. */
static int
wxpush_common_option(int c)
{
	const char	*errstr = NULL;
	char		*end;
	long		 v;

	switch (c) {
	case 's':
		wxpush_socket = optarg;
		return (1);
	case 'J':
		wxpush_json = 1;
		return (1);
	case 't':
		errno = 0;
		v = strtol(optarg, &end, 10);
		if (errno != 0 || end == optarg || *end != '\0' || v < 0 ||
		    v > 86400)
			errstr = "must be 0 to 86400 seconds";
		if (errstr != NULL)
			wxpush_usage("timeout %s %s", optarg, errstr);
		wxpush_timeout = (int)v * 1000;	/* 0: wait forever */
		return (1);
	case 'h':
		wxpush_print_usage(stdout);
		exit(WXPUSH_OK);
	}
	return (0);
}

#define COMMON_LONGOPTS \
	{ "socket", required_argument, NULL, 's' }, \
	{ "json", no_argument, NULL, 'J' }, \
	{ "timeout", required_argument, NULL, 't' }, \
	{ "help", no_argument, NULL, 'h' }
#define COMMON_SHORTOPTS ":s:t:h"

/* The send command's options. */
enum {
	OPT_APPID = 256, OPT_TOUSER, OPT_TEMPLATE_ID, OPT_SCENE, OPT_TITLE,
	OPT_CONTENT, OPT_COLOR, OPT_URL, OPT_MP_APPID, OPT_MP_PAGEPATH,
	OPT_IDEMPOTENCY_KEY, OPT_BODY, OPT_COMPONENT_APPID, OPT_CODE,
	OPT_REDIRECT_URL, OPT_RESERVED, OPT_REDIRECT_URI, OPT_AUTH_TYPE,
	OPT_BIZ_APPID, OPT_MOBILE, OPT_COUNT, OPT_BATCH, OPT_KIND,
	OPT_METHOD, OPT_QUERY, OPT_QUEUE, OPT_NOT_AFTER, OPT_WATCH,
	OPT_SIGNED, OPT_REFERENCE, OPT_EXPIRES_IN, OPT_OPENID,
	OPT_LAST
};
static const struct option wxpush_cmd_longopts[] = {
	COMMON_LONGOPTS,
	{ "appid", required_argument, NULL, OPT_APPID },
	{ "touser", required_argument, NULL, OPT_TOUSER },
	{ "template-id", required_argument, NULL, OPT_TEMPLATE_ID },
	{ "scene", required_argument, NULL, OPT_SCENE },
	{ "title", required_argument, NULL, OPT_TITLE },
	{ "content", required_argument, NULL, OPT_CONTENT },
	{ "color", required_argument, NULL, OPT_COLOR },
	{ "url", required_argument, NULL, OPT_URL },
	{ "miniprogram-appid", required_argument, NULL, OPT_MP_APPID },
	{ "miniprogram-pagepath", required_argument, NULL, OPT_MP_PAGEPATH },
	{ "idempotency-key", required_argument, NULL, OPT_IDEMPOTENCY_KEY },
	{ "body", required_argument, NULL, OPT_BODY },
	{ "component-appid", required_argument, NULL, OPT_COMPONENT_APPID },
	{ "code", required_argument, NULL, OPT_CODE },
	{ "redirect-url", required_argument, NULL, OPT_REDIRECT_URL },
	{ "reserved", required_argument, NULL, OPT_RESERVED },
	{ "redirect-uri", required_argument, NULL, OPT_REDIRECT_URI },
	{ "auth-type", required_argument, NULL, OPT_AUTH_TYPE },
	{ "biz-appid", required_argument, NULL, OPT_BIZ_APPID },
	{ "mobile", no_argument, NULL, OPT_MOBILE },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "batch", no_argument, NULL, OPT_BATCH },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "method", required_argument, NULL, OPT_METHOD },
	{ "query", required_argument, NULL, OPT_QUERY },
	{ "queue", no_argument, NULL, OPT_QUEUE },
	{ "not-after", required_argument, NULL, OPT_NOT_AFTER },
	{ "watch", no_argument, NULL, OPT_WATCH },
	{ "signed", no_argument, NULL, OPT_SIGNED },
	{ "reference", required_argument, NULL, OPT_REFERENCE },
	{ "expires-in", required_argument, NULL, OPT_EXPIRES_IN },
	{ "openid", required_argument, NULL, OPT_OPENID },
	{ NULL, 0, NULL, 0 }
};

/* The option names, for messages. */
static const char *
wxpush_optname(int opt)
{
	const struct option	*o;

	for (o = wxpush_cmd_longopts; o->name != NULL; o++) {
		if (o->val == opt)
			return (o->name);
	}
	return ("?");
}

/*
 * Parse a command's options into opts[] (indexed by OPT_*, minus OPT_APPID);
 * only those in allowed[] (terminated by 0) are accepted. Returns the index
 * of the first positional argument.
 */
static int
wxpush_parse(int argc, char **argv, const int *allowed, const char **opts)
{
	int	c, i, ok;

	optind = 0;	/* glibc: start afresh, argv[0] is the command */
	opterr = 0;
	while ((c = getopt_long(argc, argv, COMMON_SHORTOPTS "n:b",
	    wxpush_cmd_longopts, NULL)) != -1) {
		if (c == '?' || c == ':')
			wxpush_bad_option(c, argv);
		if (wxpush_common_option(c))
			continue;
		if (c == 'n')
			c = OPT_COUNT;	/* top's -n and -b, as top(1)'s */
		else if (c == 'b')
			c = OPT_BATCH;
		ok = 0;
		for (i = 0; allowed[i] != 0; i++) {
			if (allowed[i] == c)
				ok = 1;
		}
		if (!ok)
			wxpush_usage("option --%s does not apply here",
			    wxpush_optname(c));
		if (opts[c - OPT_APPID] != NULL)
			wxpush_usage("option --%s given twice",
			    wxpush_optname(c));
		opts[c - OPT_APPID] = optarg != NULL ? optarg : "";	/* a flag */
	}
	return (optind);
}

/* Require an option; exit 2 naming it if absent. */
static const char *
wxpush_need(const char **opts, int opt)
{
	if (opts[opt - OPT_APPID] == NULL)
		wxpush_usage("missing --%s", wxpush_optname(opt));
	return (opts[opt - OPT_APPID]);
}

/* send --queue: add not_after and watch to an enqueue's params. */
static void
wxpush_queue_params(json_t *p, const char **opts)
{
	const char	*na = opts[OPT_NOT_AFTER - OPT_APPID];
	long long	 v;
	char		*end;

	if (na != NULL) {
		errno = 0;
		v = strtoll(na, &end, 10);
		if (errno != 0 || end == na || *end != '\0' || v <= 0)
			wxpush_bad_input("--not-after must be unix time in "
			    "seconds");
		if (json_object_set_new(p, "not_after", json_integer(v)) != 0)
			wxpush_nomem();
	}
	if (opts[OPT_WATCH - OPT_APPID] != NULL &&
	    json_object_set_new(p, "watch", json_true()) != 0)
		wxpush_nomem();
}

/* send: build the params from flags or a JSON body file. */
static int
wxpush_cmd_send(const char **opts)
{
	json_t		*p, *data, *content, *mp, *v;
	const char	*appid, *kind;
	int		 i;

	appid = wxpush_need(opts, OPT_APPID);
	kind = opts[OPT_KIND - OPT_APPID];
	if (opts[OPT_QUEUE - OPT_APPID] == NULL &&
	    (opts[OPT_NOT_AFTER - OPT_APPID] != NULL ||
	    opts[OPT_WATCH - OPT_APPID] != NULL))
		wxpush_usage("--not-after and --watch go with --queue");
	if (opts[OPT_BODY - OPT_APPID] != NULL) {
		for (i = OPT_APPID + 1; i < OPT_LAST; i++) {
			if (i != OPT_BODY && i != OPT_KIND &&
			    i != OPT_IDEMPOTENCY_KEY && i != OPT_QUEUE &&
			    i != OPT_NOT_AFTER && i != OPT_WATCH &&
			    opts[i - OPT_APPID] != NULL)
				wxpush_usage("--%s cannot be used with --body",
				    wxpush_optname(i));
		}
		p = wxpush_load_json(opts[OPT_BODY - OPT_APPID], "body");
		if ((v = json_object_get(p, "appid")) != NULL &&
		    (!json_is_string(v) ||
		    strcmp(json_string_value(v), appid) != 0))
			wxpush_bad_input("the appid in the body differs from "
			    "--appid");
		wxpush_json_set(p, "appid", appid);
		/* --kind and --idempotency-key: as given, or agreeing. */
		if (kind != NULL) {
			if ((v = json_object_get(p, "kind")) != NULL &&
			    (!json_is_string(v) ||
			    strcmp(json_string_value(v), kind) != 0))
				wxpush_bad_input("the kind in the body differs "
				    "from --kind");
			wxpush_json_set(p, "kind", kind);
		}
		if (opts[OPT_IDEMPOTENCY_KEY - OPT_APPID] != NULL)
			wxpush_json_set(p, "idempotency_key",
			    opts[OPT_IDEMPOTENCY_KEY - OPT_APPID]);
	} else {
		if (kind != NULL && strcmp(kind, "subscribe_once") != 0)
			wxpush_usage("--kind %s takes its params as JSON: "
			    "--body FILE", kind);
		if ((opts[OPT_MP_APPID - OPT_APPID] == NULL) !=
		    (opts[OPT_MP_PAGEPATH - OPT_APPID] == NULL))
			wxpush_usage("--miniprogram-appid and "
			    "--miniprogram-pagepath go together");
		if ((p = json_object()) == NULL ||
		    (data = json_object()) == NULL ||
		    (content = json_object()) == NULL)
			wxpush_nomem();
		wxpush_json_set(p, "appid", appid);
		wxpush_json_set(p, "touser", wxpush_need(opts, OPT_TOUSER));
		wxpush_json_set(p, "template_id",
		    wxpush_need(opts, OPT_TEMPLATE_ID));
		wxpush_json_set(p, "scene", wxpush_need(opts, OPT_SCENE));
		wxpush_json_set(p, "title", wxpush_need(opts, OPT_TITLE));
		wxpush_json_set(content, "value",
		    wxpush_need(opts, OPT_CONTENT));
		if (opts[OPT_COLOR - OPT_APPID] != NULL)
			wxpush_json_set(content, "color",
			    opts[OPT_COLOR - OPT_APPID]);
		json_object_set_new(data, "content", content);
		json_object_set_new(p, "data", data);
		if (opts[OPT_URL - OPT_APPID] != NULL)
			wxpush_json_set(p, "url", opts[OPT_URL - OPT_APPID]);
		if (opts[OPT_MP_APPID - OPT_APPID] != NULL) {
			if ((mp = json_object()) == NULL)
				wxpush_nomem();
			wxpush_json_set(mp, "appid",
			    opts[OPT_MP_APPID - OPT_APPID]);
			wxpush_json_set(mp, "pagepath",
			    opts[OPT_MP_PAGEPATH - OPT_APPID]);
			json_object_set_new(p, "miniprogram", mp);
		}
		if (opts[OPT_IDEMPOTENCY_KEY - OPT_APPID] != NULL)
			wxpush_json_set(p, "idempotency_key",
			    opts[OPT_IDEMPOTENCY_KEY - OPT_APPID]);
	}
	if (opts[OPT_QUEUE - OPT_APPID] != NULL) {
		wxpush_queue_params(p, opts);
		wxpush_call_json("enqueue", p, 'q');
	} else
		wxpush_call_json("send", p, 's');
	json_decref(p);
	return (WXPUSH_OK);
}

/* Whether s is 1..max bytes, each a letter or digit, or in extra. */
static int
wxpush_charset(const char *s, size_t max, const char *extra)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max)
			return (0);
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr(extra, s[i]) != NULL))
			return (0);
	}
	return (i > 0);
}

/*
 * Append name=value to the query in buf, value percent-encoded: everything
 * but RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~) becomes %XX.
 */
static void
wxpush_query_add(char *buf, size_t len, const char *name, const char *value)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p;
	size_t			 n = strlen(buf);

	n += snprintf(buf + n, len - n, "%s%s=", strchr(buf, '?') != NULL ?
	    "&" : "?", name);
	for (p = (const unsigned char *)value; *p != '\0' && n + 4 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~')
			buf[n++] = (char)*p;
		else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 0xf];
		}
	}
	buf[n] = '\0';
}

/*
 * consent-url: print the page where a user consents to one subscription
 * message (wechat-api.md section 5). Everything is checked here, since
 * WeChat would only show the user an error.
 */
static int
wxpush_cmd_consent_url(const char **opts)
{
	/* The longest URL: every value at its limit, each byte encoded. */
	char		 url[256 + 3 * (64 + 128 + 1024 + 128)];
	const char	*appid, *scene, *tid, *redirect, *reserved, *p, *host;
	char		 num[24];
	long		 v = 0;
	size_t		 i;
	json_t		*j;

	appid = wxpush_need(opts, OPT_APPID);
	scene = wxpush_need(opts, OPT_SCENE);
	tid = wxpush_need(opts, OPT_TEMPLATE_ID);
	redirect = wxpush_need(opts, OPT_REDIRECT_URL);
	reserved = opts[OPT_RESERVED - OPT_APPID];
	if (!wxpush_charset(appid, 64, "_-"))
		wxpush_bad_input("--appid must be 1 to 64 letters, digits, _ "
		    "or -");
	for (i = 0; scene[i] >= '0' && scene[i] <= '9'; i++)
		;
	if (i == 0 || i > 5 || scene[i] != '\0' ||
	    (v = strtol(scene, NULL, 10)) > 10000)
		wxpush_bad_input("--scene must be an integer from 0 to 10000");
	snprintf(num, sizeof num, "%ld", v);
	if (!wxpush_charset(tid, 128, "_-"))
		wxpush_bad_input("--template-id must be 1 to 128 letters, "
		    "digits, _ or -");
	if (strncmp(redirect, "https://", 8) == 0)
		host = redirect + 8;
	else if (strncmp(redirect, "http://", 7) == 0)
		host = redirect + 7;
	else
		host = NULL;
	if (host == NULL || *host == '\0' || *host == '/' ||
	    strlen(redirect) > 1024)
		wxpush_bad_input("--redirect-url must be an http:// or https:// "
		    "URL with a host, at most 1024 bytes");
	for (p = redirect; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			wxpush_bad_input("--redirect-url must not hold spaces or "
			    "control characters");
	}
	if (reserved != NULL && !wxpush_charset(reserved, 128, ""))
		wxpush_bad_input("--reserved must be 1 to 128 letters or digits");

	snprintf(url, sizeof url, "https://mp.weixin.qq.com/mp/subscribemsg");
	wxpush_query_add(url, sizeof url, "action", "get_confirm");
	wxpush_query_add(url, sizeof url, "appid", appid);
	wxpush_query_add(url, sizeof url, "scene", num);
	wxpush_query_add(url, sizeof url, "template_id", tid);
	wxpush_query_add(url, sizeof url, "redirect_url", redirect);
	if (reserved != NULL)
		wxpush_query_add(url, sizeof url, "reserved", reserved);
	i = strlen(url);
	snprintf(url + i, sizeof url - i, "#wechat_redirect");
	if (wxpush_json) {
		if ((j = json_pack("{s:s}", "url", url)) == NULL)
			wxpush_nomem();
		wxpush_print_json(j);
	} else
		printf("%s\n", url);
	return (WXPUSH_OK);
}

/* A decimal option of at most 9 digits as a JSON integer member, or exit. */
static void
wxpush_json_set_num(json_t *j, const char *key, const char *opt,
    const char *value)
{
	size_t	i;

	for (i = 0; value[i] >= '0' && value[i] <= '9'; i++)
		;
	if (i == 0 || i > 9 || value[i] != '\0')
		wxpush_bad_input("--%s must be a number", opt);
	if (json_object_set_new(j, key, json_integer(strtol(value, NULL,
	    10))) != 0)
		wxpush_nomem();
}

/* consent-url --signed: the daemon signs the link for its consent ledger. */
static int
wxpush_cmd_consent_url_signed(const char **opts)
{
	const char	*v;
	json_t		*p;

	if (opts[OPT_RESERVED - OPT_APPID] != NULL)
		wxpush_usage("--reserved does not apply with --signed (the "
		    "daemon makes it)");
	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "appid", wxpush_need(opts, OPT_APPID));
	wxpush_json_set(p, "template_id", wxpush_need(opts, OPT_TEMPLATE_ID));
	wxpush_json_set_num(p, "scene", "scene", wxpush_need(opts, OPT_SCENE));
	if ((v = opts[OPT_REDIRECT_URL - OPT_APPID]) != NULL)
		wxpush_json_set(p, "redirect_url", v);
	if ((v = opts[OPT_REFERENCE - OPT_APPID]) != NULL)
		wxpush_json_set(p, "reference", v);
	if ((v = opts[OPT_EXPIRES_IN - OPT_APPID]) != NULL)
		wxpush_json_set_num(p, "expires_in", "expires-in", v);
	wxpush_call_json("consent_url", p, 'p');
	json_decref(p);
	return (WXPUSH_OK);
}

/* consents: the ledger of an appid, one consent a line. */
static int
wxpush_cmd_consents(const char **opts)
{
	const char	*v;
	json_t		*p;

	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "appid", wxpush_need(opts, OPT_APPID));
	if ((v = opts[OPT_OPENID - OPT_APPID]) != NULL)
		wxpush_json_set(p, "openid", v);
	if ((v = opts[OPT_TEMPLATE_ID - OPT_APPID]) != NULL)
		wxpush_json_set(p, "template_id", v);
	wxpush_call_json("consents", p, 'c');
	json_decref(p);
	return (WXPUSH_OK);
}

/* consent-forget: delete everything the daemon holds about one user. */
static int
wxpush_cmd_consent_forget(const char **opts)
{
	json_t	*p;

	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "appid", wxpush_need(opts, OPT_APPID));
	wxpush_json_set(p, "openid", wxpush_need(opts, OPT_OPENID));
	wxpush_call_json("consent_forget", p, 'f');
	json_decref(p);
	return (WXPUSH_OK);
}

/*
 * preauth: a pre_auth_code from the daemon (which holds the platform's token)
 * and the page where the merchant authorizes the platform. The daemon checks
 * the values; only the shape of --auth-type is checked here.
 */
static int
wxpush_cmd_preauth(const char **opts)
{
	const char	*at = opts[OPT_AUTH_TYPE - OPT_APPID], *biz;
	json_t		*p;
	size_t		 i;

	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "component_appid",
	    wxpush_need(opts, OPT_COMPONENT_APPID));
	wxpush_json_set(p, "redirect_uri", wxpush_need(opts, OPT_REDIRECT_URI));
	if (at != NULL) {
		for (i = 0; at[i] >= '0' && at[i] <= '9'; i++)
			;
		if (i == 0 || i > 9 || at[i] != '\0')
			wxpush_bad_input("--auth-type must be 1, 2 or 3");
		if (json_object_set_new(p, "auth_type",
		    json_integer(strtol(at, NULL, 10))) != 0)
			wxpush_nomem();
	}
	if ((biz = opts[OPT_BIZ_APPID - OPT_APPID]) != NULL)
		wxpush_json_set(p, "biz_appid", biz);
	if (opts[OPT_MOBILE - OPT_APPID] != NULL &&
	    json_object_set_new(p, "mobile", json_true()) != 0)
		wxpush_nomem();
	wxpush_call_json("preauth", p, 'p');
	json_decref(p);
	return (WXPUSH_OK);
}

/* top: check -n, then run the live view (top.c). */
static int
wxpush_cmd_top(const char **opts)
{
	const char	*n = opts[OPT_COUNT - OPT_APPID];
	char		*end;
	long		 count = 0;

	if (wxpush_json)
		wxpush_usage("top has no JSON form (wxpush --json stats has the "
		    "same figures)");
	if (n != NULL) {
		errno = 0;
		count = strtol(n, &end, 10);
		if (errno != 0 || end == n || *end != '\0' || count < 1 ||
		    count > 1000000000)
			wxpush_usage("-n %s must be a count from 1 to 1000000000", n);
	}
	return (top_run(count, opts[OPT_BATCH - OPT_APPID] != NULL));
}

/*
 * call --appid A PATH: a WeChat API called by the daemon with the appid's
 * token; the answer (WeChat's JSON, credentials stripped) is printed as JSON.
 */
static int
wxpush_cmd_api(const char **opts, const char *path)
{
	const char	*m = opts[OPT_METHOD - OPT_APPID];
	const char	*q = opts[OPT_QUERY - OPT_APPID];
	const char	*b = opts[OPT_BODY - OPT_APPID];
	json_error_t	 jerr;
	json_t		*p, *v;

	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "appid", wxpush_need(opts, OPT_APPID));
	wxpush_json_set(p, "path", path);
	if (m != NULL)
		wxpush_json_set(p, "method", m);
	if (q != NULL) {
		v = json_loads(q, JSON_REJECT_DUPLICATES, &jerr);
		if (v == NULL || !json_is_object(v))
			wxpush_bad_input("--query must be a JSON object of "
			    "strings");
		json_object_set_new(p, "query", v);
	}
	if (b != NULL)
		json_object_set_new(p, "body", wxpush_load_json(b, "body"));
	wxpush_call_json("call", p, 0);
	json_decref(p);
	return (WXPUSH_OK);
}

/* jssdk-sign: the four values wx.config needs for the page at --url. */
static int
wxpush_cmd_jssdk_sign(const char **opts)
{
	json_t	*p;

	if ((p = json_object()) == NULL)
		wxpush_nomem();
	wxpush_json_set(p, "appid", wxpush_need(opts, OPT_APPID));
	wxpush_json_set(p, "url", wxpush_need(opts, OPT_URL));
	wxpush_call_json("jssdk_sign", p, 0);
	json_decref(p);
	return (WXPUSH_OK);
}

/* delivery ID: a queued message's state. */
static int
wxpush_cmd_delivery(const char *id)
{
	json_t		*p;
	long long	 v;
	char		*end;

	errno = 0;
	v = strtoll(id, &end, 10);
	if (errno != 0 || end == id || *end != '\0' || v <= 0)
		wxpush_bad_input("ID must be a positive integer");
	if ((p = json_object()) == NULL ||
	    json_object_set_new(p, "id", json_integer(v)) != 0)
		wxpush_nomem();
	wxpush_call_json("delivery", p, 'd');
	json_decref(p);
	return (WXPUSH_OK);
}

/* Refuse positional arguments after a command that takes none. */
static void
wxpush_no_args(int argc, char **argv, int first)
{
	if (first < argc)
		wxpush_usage("unexpected argument %s", argv[first]);
}

/* Parse the global options, then run the command. */
int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		COMMON_LONGOPTS,
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	static const int none[] = { 0 };
	static const int status_opts[] = { OPT_APPID, 0 };
	static const int top_opts[] = { OPT_COUNT, OPT_BATCH, 0 };
	static const int send_opts[] = { OPT_APPID, OPT_TOUSER,
	    OPT_TEMPLATE_ID, OPT_SCENE, OPT_TITLE, OPT_CONTENT, OPT_COLOR,
	    OPT_URL, OPT_MP_APPID, OPT_MP_PAGEPATH, OPT_IDEMPOTENCY_KEY,
	    OPT_BODY, OPT_KIND, OPT_QUEUE, OPT_NOT_AFTER, OPT_WATCH, 0 };
	static const int authorize_opts[] = { OPT_COMPONENT_APPID, OPT_CODE,
	    0 };
	static const int preauth_opts[] = { OPT_COMPONENT_APPID,
	    OPT_REDIRECT_URI, OPT_AUTH_TYPE, OPT_BIZ_APPID, OPT_MOBILE, 0 };
	static const int consent_opts[] = { OPT_APPID, OPT_SCENE,
	    OPT_TEMPLATE_ID, OPT_REDIRECT_URL, OPT_RESERVED, OPT_SIGNED,
	    OPT_REFERENCE, OPT_EXPIRES_IN, 0 };
	static const int consents_opts[] = { OPT_APPID, OPT_OPENID,
	    OPT_TEMPLATE_ID, 0 };
	static const int forget_opts[] = { OPT_APPID, OPT_OPENID, 0 };
	static const int call_opts[] = { OPT_APPID, OPT_METHOD, OPT_QUERY,
	    OPT_BODY, 0 };
	static const int jssdk_opts[] = { OPT_APPID, OPT_URL, 0 };
	const char	*opts[OPT_LAST - OPT_APPID];
	json_t		*p;
	int		 c, first;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+" COMMON_SHORTOPTS "V",
	    longopts, NULL)) != -1) {
		if (c == '?' || c == ':')
			wxpush_bad_option(c, argv);
		if (wxpush_common_option(c))
			continue;
		if (c == 'V') {
			printf("wxpush %s\n", PACKAGE_VERSION);
			return (WXPUSH_OK);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		wxpush_usage("missing command");
	wxpush_command = argv[0];
	memset(opts, 0, sizeof opts);

	if (strcmp(argv[0], "ping") == 0) {
		wxpush_no_args(argc, argv, wxpush_parse(argc, argv, none, opts));
		return (wxpush_cmd_ping());
	}
	if (strcmp(argv[0], "status") == 0) {
		first = wxpush_parse(argc, argv, status_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_status(opts[OPT_APPID - OPT_APPID]));
	}
	if (strcmp(argv[0], "stats") == 0) {
		wxpush_no_args(argc, argv, wxpush_parse(argc, argv, none, opts));
		return (wxpush_cmd_stats());
	}
	if (strcmp(argv[0], "top") == 0) {
		wxpush_no_args(argc, argv, wxpush_parse(argc, argv, top_opts, opts));
		return (wxpush_cmd_top(opts));
	}
	if (strcmp(argv[0], "send") == 0) {
		first = wxpush_parse(argc, argv, send_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_send(opts));
	}
	if (strcmp(argv[0], "outbox") == 0) {
		wxpush_no_args(argc, argv, wxpush_parse(argc, argv, none, opts));
		wxpush_call_json("outbox", NULL, 'o');
		return (WXPUSH_OK);
	}
	if (strcmp(argv[0], "delivery") == 0) {
		first = wxpush_parse(argc, argv, none, opts);
		if (first >= argc)
			wxpush_usage("missing ID");
		wxpush_no_args(argc, argv, first + 1);
		return (wxpush_cmd_delivery(argv[first]));
	}
	if (strcmp(argv[0], "authorize") == 0) {
		first = wxpush_parse(argc, argv, authorize_opts, opts);
		wxpush_no_args(argc, argv, first);
		if ((p = json_object()) == NULL)
			wxpush_nomem();
		wxpush_json_set(p, "component_appid",
		    wxpush_need(opts, OPT_COMPONENT_APPID));
		wxpush_json_set(p, "authorization_code",
		    wxpush_need(opts, OPT_CODE));
		wxpush_call_json("authorize", p, 'a');
		json_decref(p);
		return (WXPUSH_OK);
	}
	if (strcmp(argv[0], "preauth") == 0) {
		first = wxpush_parse(argc, argv, preauth_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_preauth(opts));
	}
	if (strcmp(argv[0], "consent-url") == 0) {
		first = wxpush_parse(argc, argv, consent_opts, opts);
		wxpush_no_args(argc, argv, first);
		if (opts[OPT_SIGNED - OPT_APPID] != NULL)
			return (wxpush_cmd_consent_url_signed(opts));
		if (opts[OPT_REFERENCE - OPT_APPID] != NULL ||
		    opts[OPT_EXPIRES_IN - OPT_APPID] != NULL)
			wxpush_usage("--reference and --expires-in need --signed");
		return (wxpush_cmd_consent_url(opts));
	}
	if (strcmp(argv[0], "consents") == 0) {
		first = wxpush_parse(argc, argv, consents_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_consents(opts));
	}
	if (strcmp(argv[0], "consent-forget") == 0) {
		first = wxpush_parse(argc, argv, forget_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_consent_forget(opts));
	}
	if (strcmp(argv[0], "jssdk-sign") == 0) {
		first = wxpush_parse(argc, argv, jssdk_opts, opts);
		wxpush_no_args(argc, argv, first);
		return (wxpush_cmd_jssdk_sign(opts));
	}
	if (strcmp(argv[0], "call") == 0) {
		first = wxpush_parse(argc, argv, call_opts, opts);
		if (opts[OPT_APPID - OPT_APPID] != NULL) {
			if (first >= argc)
				wxpush_usage("missing PATH");
			if (argc - first > 1)
				wxpush_usage("unexpected argument %s",
				    argv[first + 1]);
			return (wxpush_cmd_api(opts, argv[first]));
		}
		if (opts[OPT_METHOD - OPT_APPID] != NULL ||
		    opts[OPT_QUERY - OPT_APPID] != NULL ||
		    opts[OPT_BODY - OPT_APPID] != NULL)
			wxpush_usage("--method, --query and --body need --appid");
		if (first >= argc)
			wxpush_usage("missing METHOD");
		if (argc - first > 2)
			wxpush_usage("unexpected argument %s",
			    argv[first + 2]);
		p = NULL;
		if (argc - first == 2) {
			if (strcmp(argv[first + 1], "-") == 0)
				p = wxpush_load_json("-", "params");
			else {
				json_error_t	jerr;

				p = json_loads(argv[first + 1],
				    JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
				if (p == NULL)
					wxpush_bad_input("params: column %d: %s",
					    jerr.column, jerr.text);
				if (!json_is_object(p))
					wxpush_bad_input("params must be a JSON "
					    "object");
			}
		}
		wxpush_call_json(argv[first], p, 0);
		json_decref(p);
		return (WXPUSH_OK);
	}
	wxpush_command = NULL;
	wxpush_usage("unknown command %s", argv[0]);
}
