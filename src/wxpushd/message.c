/*
 * The checks and the body writer that message kinds (kind-*.c) are built
 * from: fields sorted by a key table in one pass, identifiers, UTF-8 text,
 * colours, URLs, mini program links, data maps, and WeChat's body written
 * at its exact size. message-parse.c holds the kind table and the parse.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

#define MESSAGE_URL_MAX		1024	/* bytes */
#define MESSAGE_PAGEPATH_MAX	1024	/* bytes */
#define MESSAGE_MP_APPID_MAX	64
#define MESSAGE_IKEY_MAX	128
#define MESSAGE_KEY_QUOTE_MAX	32	/* longest unknown key quoted back */
#define MESSAGE_DATA_TEXT_MAX	200	/* characters of an untyped data value */

static const struct message_key message_mp[MESSAGE_NMP] = {
	MESSAGE_REQ("appid"), MESSAGE_REQ("pagepath")
};

/* Error field and text: static, valid until the next message_parse. */
static char	message_field[MESSAGE_KEY_QUOTE_MAX + 32];
static char	message_text[256];

/* Fill err as an invalid_request on field; returns -1 to be returned. */
int
message_error(struct rpc_error *err, const char *field, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(message_text, sizeof message_text, fmt, ap);
	va_end(ap);
	memset(err, 0, sizeof *err);
	err->code = "invalid_request";
	err->retryable = 0;
	err->field = field;
	err->message = message_text;
	return (-1);
}

/* The field path "path.name" (or "name" at the top) in static storage. */
static const char *
message_path(const char *path, const char *name, size_t len)
{
	if (path == NULL)
		snprintf(message_field, sizeof message_field, "%.*s", (int)len,
		    name);
	else
		snprintf(message_field, sizeof message_field, "%s.%.*s", path,
		    (int)len, name);
	return (message_field);
}

/*
 * Sort the entries of map (at path, NULL for the top) into vals by key, in one
 * pass: a key that is not a string, not known or seen twice is an error.
 */
int
message_fields(const msgpack_object *map, const char *path,
    const struct message_key *keys, size_t nkeys, const msgpack_object **vals,
    struct rpc_error *err)
{
	const char		*where = path != NULL ? path : "params";
	const msgpack_object	*k;
	const char		*field;
	uint32_t		 i;
	size_t			 j;

	memset(vals, 0, nkeys * sizeof *vals);
	for (i = 0; i < map->via.map.size; i++) {
		k = &map->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR) {
			return (message_error(err, where,
			    "%s has a key that is not a string", where));
		}
		for (j = 0; j < nkeys; j++) {
			if (k->via.str.size == keys[j].len &&
			    memcmp(k->via.str.ptr, keys[j].name,
			    keys[j].len) == 0)
				break;
		}
		if (j == nkeys) {
			if (k->via.str.size == 0 || !rpc_printable(
			    k->via.str.ptr, k->via.str.size,
			    MESSAGE_KEY_QUOTE_MAX)) {
				return (message_error(err, where, "%s has an "
				    "unknown field (its name is empty, long "
				    "or not printable)", where));
			}
			field = message_path(path, k->via.str.ptr,
			    k->via.str.size);
			return (message_error(err, field,
			    "unknown field '%s'", field));
		}
		if (vals[j] != NULL) {
			field = message_path(path, keys[j].name, keys[j].len);
			return (message_error(err, field,
			    "duplicate field '%s'", field));
		}
		/* nil means absent (clients send None/undefined for unset). */
		if (map->via.map.ptr[i].val.type != MSGPACK_OBJECT_NIL)
			vals[j] = &map->via.map.ptr[i].val;
	}
	return (0);
}

/* A required field that is absent. */
int
message_missing(struct rpc_error *err, const char *path,
    const struct message_key *key)
{
	const char	*field = message_path(path, key->name, key->len);

	return (message_error(err, field, "missing required field '%s'",
	    field));
}

/* Refuse o unless it is a string; field is a complete path. */
int
message_want_str(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return (message_error(err, field, "%s must be a string",
		    field));
	return (0);
}

/* Refuse o unless it is a map; field is a complete path. */
int
message_want_map(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	if (o->type != MSGPACK_OBJECT_MAP)
		return (message_error(err, field, "%s must be a map", field));
	return (0);
}

/* An identifier: a string of 1..max bytes of A-Z a-z 0-9 _ -. */
int
message_id(const msgpack_object *o, const char *field, size_t max,
    struct rpc_error *err)
{
	const char	*p;
	size_t		 i, n;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	p = o->via.str.ptr;
	n = o->via.str.size;
	if (n == 0)
		return (message_error(err, field, "%s is empty", field));
	if (n > max) {
		return (message_error(err, field,
		    "%s is %zu bytes; at most %zu", field, n, max));
	}
	if ((i = valid_id_span(p, n)) < n)
		return (message_error(err, field,
		    "%s may hold only A-Z a-z 0-9 _ - (bad byte at %zu)",
		    field, i));
	return (0);
}

/*
 * Check that s[0..n) is UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF) without NUL and, if noctl, without C0, DEL or C1 controls; count
 * its code points. Returns 0, -1 (not UTF-8) or -2 (a refused character),
 * with *why and *at on failure.
 */
static int
message_utf8(const char *s, size_t n, int noctl, size_t *count,
    const char **why, size_t *at)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, k, len, cps = 0;
	uint32_t		 cp, min;

	while (i < n) {
		*at = i;
		if (p[i] < 0x80) {
			if (p[i] == 0) {
				*why = "a NUL byte";
				return (-2);
			}
			if (noctl && (p[i] < 0x20 || p[i] == 0x7f)) {
				*why = "a control character";
				return (-2);
			}
			i++;
			cps++;
			continue;
		}
		if (p[i] < 0xc0) {
			*why = "a stray continuation byte";
			return (-1);
		} else if (p[i] < 0xe0) {
			len = 2;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if (p[i] < 0xf0) {
			len = 3;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if (p[i] < 0xf8) {
			len = 4;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else {
			*why = "an invalid byte";
			return (-1);
		}
		for (k = 1; k < len; k++) {
			if (i + k >= n || (p[i + k] & 0xc0) != 0x80) {
				*why = "a truncated sequence";
				return (-1);
			}
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min) {
			*why = "an overlong encoding";
			return (-1);
		}
		if (cp >= 0xd800 && cp <= 0xdfff) {
			*why = "a surrogate";
			return (-1);
		}
		if (cp > 0x10ffff) {
			*why = "a code point above U+10FFFF";
			return (-1);
		}
		if (noctl && cp <= 0x9f) {
			*why = "a control character";
			return (-2);
		}
		i += len;
		cps++;
	}
	*count = cps;
	return (0);
}

/* Refuse a string that message_utf8 refuses, with the reason. */
int
message_check_utf8(const msgpack_object *o, const char *field, int noctl,
    size_t *count, struct rpc_error *err)
{
	const char	*why;
	size_t		 at;

	switch (message_utf8(o->via.str.ptr, o->via.str.size, noctl, count,
	    &why, &at)) {
	case 0:
		return (0);
	case -1:
		return (message_error(err, field,
		    "%s is not valid UTF-8 (%s at byte %zu)", field, why, at));
	default:
		return (message_error(err, field, "%s contains %s at byte %zu",
		    field, why, at));
	}
}

/* Text for a person: a UTF-8 string of 1..max code points. */
int
message_text_field(const msgpack_object *o, const char *field, size_t max,
    struct rpc_error *err)
{
	size_t	count;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	if (o->via.str.size == 0)
		return (message_error(err, field, "%s is empty", field));
	if (message_check_utf8(o, field, 0, &count, err) != 0)
		return (-1);
	if (count > max) {
		return (message_error(err, field,
		    "%s is %zu characters; at most %zu", field, count, max));
	}
	return (0);
}

/* A font colour: "#RRGGBB", hex digits of either case. */
int
message_color(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	const char	*p;
	size_t		 i;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	p = o->via.str.ptr;
	if (o->via.str.size != 7 || p[0] != '#')
		goto bad;
	for (i = 1; i < 7; i++) {
		if ((p[i] < '0' || p[i] > '9') && (p[i] < 'a' || p[i] > 'f') &&
		    (p[i] < 'A' || p[i] > 'F'))
			goto bad;
	}
	return (0);
bad:
	return (message_error(err, field,
	    "%s must be a colour such as #FF0000", field));
}

/* Case-insensitive prefix match of an ASCII lower-case prefix. */
static int
message_prefix(const char *p, size_t n, const char *prefix, size_t plen)
{
	size_t	i;
	char	c;

	if (n < plen)
		return (0);
	for (i = 0; i < plen; i++) {
		c = p[i];
		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != prefix[i])
			return (0);
	}
	return (1);
}

/*
 * The jump link: http(s), a non-empty host, at most 1024 bytes of UTF-8 and no
 * spaces or control characters.
 */
int
message_url(const msgpack_object *o, struct rpc_error *err)
{
	return (message_url_field(o, "url", err));
}

/* A link like message_url's, at field (a complete path, static). */
int
message_url_field(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	const char	*p, *end, *host, *hend, *sp;
	size_t		 n, count, i;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	p = o->via.str.ptr;
	n = o->via.str.size;
	if (n > MESSAGE_URL_MAX) {
		return (message_error(err, field,
		    "%s is %zu bytes; at most %d", field, n, MESSAGE_URL_MAX));
	}
	if (message_prefix(p, n, "http://", 7))
		i = 7;
	else if (message_prefix(p, n, "https://", 8))
		i = 8;
	else {
		return (message_error(err, field,
		    "%s must start with http:// or https://", field));
	}
	if (message_check_utf8(o, field, 1, &count, err) != 0)
		return (-1);
	if ((sp = memchr(p, ' ', n)) != NULL) {
		return (message_error(err, field,
		    "%s contains a space at byte %zu", field, (size_t)(sp - p)));
	}

	/* The host: after any userinfo, before a port, path or query. */
	host = p + i;
	for (end = host; end < p + n; end++) {
		if (*end == '/' || *end == '?' || *end == '#')
			break;
	}
	for (hend = end; hend > host; hend--) {
		if (hend[-1] == '@')
			break;
	}
	if (hend > host)
		host = hend;
	if (host < end && *host == '[') {
		hend = memchr(host, ']', (size_t)(end - host));
		if (hend == NULL || hend == host + 1)
			hend = host;
	} else {
		for (hend = host; hend < end && *hend != ':'; hend++)
			/* nothing */;
	}
	if (hend == host)
		return (message_error(err, field, "%s has no host", field));
	return (0);
}

/*
 * A page inside a mini program (or a page link WeChat takes as is): 1..1024
 * bytes of UTF-8 without spaces or control characters.
 */
int
message_path_field(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	const char	*sp;
	size_t		 count;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	if (o->via.str.size == 0)
		return (message_error(err, field, "%s is empty", field));
	if (o->via.str.size > MESSAGE_PAGEPATH_MAX) {
		return (message_error(err, field, "%s is %zu bytes; at most %d",
		    field, (size_t)o->via.str.size, MESSAGE_PAGEPATH_MAX));
	}
	if (message_check_utf8(o, field, 1, &count, err) != 0)
		return (-1);
	if ((sp = memchr(o->via.str.ptr, ' ', o->via.str.size)) != NULL) {
		return (message_error(err, field, "%s contains a space at byte "
		    "%zu", field, (size_t)(sp - o->via.str.ptr)));
	}
	return (0);
}

/* The optional mini program to jump to: exactly appid and pagepath. */
int
message_miniprogram(const msgpack_object *o, const msgpack_object **vals,
    struct rpc_error *err)
{
	return (message_miniprogram_opt(o, vals, 1, err));
}

/*
 * The mini program to jump to: appid, and pagepath (required if
 * need_page; the template message takes an appid alone).
 */
int
message_miniprogram_opt(const msgpack_object *o, const msgpack_object **vals,
    int need_page, struct rpc_error *err)
{
	const msgpack_object	*v;
	size_t			 count;

	if (message_want_map(o, "miniprogram", err) != 0 ||
	    message_fields(o, "miniprogram", message_mp, MESSAGE_NMP, vals,
	    err) != 0)
		return (-1);
	if ((v = vals[MESSAGE_MP_APPID]) == NULL)
		return (message_missing(err, "miniprogram", &message_mp[0]));
	if (message_id(v, "miniprogram.appid", MESSAGE_MP_APPID_MAX, err) != 0)
		return (-1);
	if ((v = vals[MESSAGE_MP_PAGEPATH]) == NULL) {
		if (!need_page)
			return (0);
		return (message_missing(err, "miniprogram", &message_mp[1]));
	}
	if (message_want_str(v, "miniprogram.pagepath", err) != 0)
		return (-1);
	if (v->via.str.size == 0) {
		return (message_error(err, "miniprogram.pagepath",
		    "miniprogram.pagepath is empty"));
	}
	if (v->via.str.size > MESSAGE_PAGEPATH_MAX) {
		return (message_error(err, "miniprogram.pagepath",
		    "miniprogram.pagepath is %zu bytes; at most %d",
		    (size_t)v->via.str.size, MESSAGE_PAGEPATH_MAX));
	}
	return (message_check_utf8(v, "miniprogram.pagepath", 1, &count, err));
}

/*
 * A key (the idempotency key, the template's client_msg_id): 1..128 bytes of
 * printable ASCII, no spaces.
 */
int
message_ikey(const msgpack_object *o, const char *field,
    struct rpc_error *err)
{
	const char	*p;
	size_t		 i, n;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	p = o->via.str.ptr;
	n = o->via.str.size;
	if (n == 0 || n > MESSAGE_IKEY_MAX) {
		return (message_error(err, field, "%s is %zu bytes; must be "
		    "1..%d", field, n, MESSAGE_IKEY_MAX));
	}
	for (i = 0; i < n; i++) {
		if (p[i] < 0x21 || p[i] > 0x7e) {
			return (message_error(err, field, "%s may hold only "
			    "printable ASCII without spaces (bad byte at %zu)",
			    field, i));
		}
	}
	return (0);
}

/*
 * The body is written straight into one buffer of the exact size, not built
 * as a jansson tree and dumped: that took about 30 allocations per send. The
 * output is byte for byte what jansson's compact dump gives (the fuzz target
 * checks it against a jansson-built reference).
 */


static const char message_hex[] = "0123456789ABCDEF";

/* The short escape of byte c, 'u' for \u00XX, or 0 if c goes as is. */
static char
message_json_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return ('"');
	case '\\':
		return ('\\');
	case '\b':
		return ('b');
	case '\f':
		return ('f');
	case '\n':
		return ('n');
	case '\r':
		return ('r');
	case '\t':
		return ('t');
	default:
		return (c < 0x20 ? 'u' : 0);
	}
}

/* Bytes that s[0..n) takes as a JSON string, quotes included. */
static size_t
message_json_len(const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, len = n + 2;
	char			 e;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		e = message_json_escape(p[i]);
		len += e == 'u' ? 5 : 1;
	}
	return (len);
}

/*
 * Write s[0..n), validated UTF-8 without NUL, as a JSON string at out: '"',
 * '\\' and controls below 0x20 escaped as jansson does (the short forms, else
 * \u00XX with capital hex), everything else, UTF-8 included, as is. Returns
 * the end of what it wrote.
 */
static char *
message_json_put(char *out, const char *s, size_t n)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i, from = 0;
	char			 e;

	*out++ = '"';
	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		memcpy(out, s + from, i - from);
		out += i - from;
		from = i + 1;
		e = message_json_escape(p[i]);
		*out++ = '\\';
		*out++ = e;
		if (e == 'u') {
			*out++ = '0';
			*out++ = '0';
			*out++ = message_hex[p[i] >> 4];
			*out++ = message_hex[p[i] & 0xf];
		}
	}
	memcpy(out, s + from, n - from);
	out += n - from;
	*out++ = '"';
	return (out);
}

/* Add a literal and the string s[0..n) (none if s is NULL) to parts. */
void
message_part(struct message_part *parts, size_t *np, const char *lit,
    const char *s, size_t n)
{
	struct message_part	*mp;

	if (*np == MESSAGE_PARTS_MAX)
		fatalx("%s: too many parts", __func__);
	mp = &parts[(*np)++];
	mp->lit = lit;
	mp->litlen = strlen(lit);
	mp->s = s;
	mp->n = n;
}

/* Add a literal and the value of o, a string object, to parts. */
void
message_part_str(struct message_part *parts, size_t *np, const char *lit,
    const msgpack_object *o)
{
	message_part(parts, np, lit, o->via.str.ptr, o->via.str.size);
}

/* Join the parts into msg->json, allocated once at its exact size. */
void
message_body(struct message *msg, const struct message_part *parts,
    size_t np)
{
	size_t	 i, len = 0;
	char	*p;

	for (i = 0; i < np; i++) {
		len += parts[i].litlen;
		if (parts[i].s != NULL)
			len += message_json_len(parts[i].s, parts[i].n);
	}
	p = msg->json = xmalloc(len + 1);
	for (i = 0; i < np; i++) {
		memcpy(p, parts[i].lit, parts[i].litlen);
		p += parts[i].litlen;
		if (parts[i].s != NULL)
			p = message_json_put(p, parts[i].s, parts[i].n);
	}
	if ((size_t)(p - msg->json) != len)
		fatalx("%s: body is %zu bytes, not %zu", __func__,
		    (size_t)(p - msg->json), len);
	*p = '\0';
	msg->len = len;
}

/* Free what message_parse allocated; safe on a zeroed message. */
void
message_free(struct message *msg)
{
	free(msg->json);
	free(msg->idempotency_key);
	memset(msg, 0, sizeof *msg);
}

/* Static storage for a data entry's field path ("data.NAME.value"). */
static char	message_dfield[MESSAGE_KEY_QUOTE_MAX + 64];

/* The path field.NAME.leaf of a data entry, in static storage. */
static const char *
message_data_path(const char *field, const msgpack_object *name,
    const char *leaf)
{
	snprintf(message_dfield, sizeof message_dfield, "%s.%.*s%s%s", field,
	    (int)name->via.str.size, name->via.str.ptr, leaf != NULL ? "." : "",
	    leaf != NULL ? leaf : "");
	return (message_dfield);
}

/* A data entry's name: 1..32 bytes of A-Z a-z 0-9 _. */
static int
message_data_name(const msgpack_object *k, const char *field,
    struct rpc_error *err)
{
	size_t	i;
	char	c;

	if (k->type != MSGPACK_OBJECT_STR)
		return (message_error(err, field, "%s has a key that is not a "
		    "string", field));
	if (k->via.str.size == 0 || k->via.str.size > MESSAGE_DATA_NAME_MAX)
		return (message_error(err, field, "%s has a key of %zu bytes; "
		    "names are 1..%d bytes", field, (size_t)k->via.str.size,
		    MESSAGE_DATA_NAME_MAX));
	for (i = 0; i < k->via.str.size; i++) {
		c = k->via.str.ptr[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_')
			continue;
		return (message_error(err, field, "%s has a key with a byte "
		    "other than A-Z a-z 0-9 _ (at %zu)", field, i));
	}
	return (0);
}

static const struct message_key message_datum_keys[] = {
	MESSAGE_REQ("value"), MESSAGE_KEY("color")
};

/*
 * A data map with names of the caller's choosing (a template's keyword1, a
 * subscribe message's thing1): field is {NAME: {value[, color]}}, 1..32
 * entries, each name 1..32 bytes of A-Z a-z 0-9 _ and seen once, color only
 * if color_ok. Each value is checked by rule: MESSAGE_DATA_TEXT (0..200
 * characters), MESSAGE_DATA_TYPED (by its name's type prefix, as WeChat's
 * subscribe messages define them). Fills out[0..*n) in the caller's order.
 */
int
message_data(const msgpack_object *o, const char *field, int color_ok,
    enum message_data_rule rule, struct message_datum *out, size_t *n,
    struct rpc_error *err)
{
	const msgpack_object	*kv[2], *k, *v;
	const char		*path;
	uint32_t		 i, j;
	size_t			 count;

	*n = 0;
	if (message_want_map(o, field, err) != 0)
		return (-1);
	if (o->via.map.size == 0)
		return (message_error(err, field, "%s is empty", field));
	if (o->via.map.size > MESSAGE_DATA_MAX)
		return (message_error(err, field, "%s has %u entries; at most "
		    "%d", field, (unsigned)o->via.map.size, MESSAGE_DATA_MAX));
	for (i = 0; i < o->via.map.size; i++) {
		k = &o->via.map.ptr[i].key;
		v = &o->via.map.ptr[i].val;
		if (message_data_name(k, field, err) != 0)
			return (-1);
		for (j = 0; j < i; j++) {
			if (o->via.map.ptr[j].key.via.str.size ==
			    k->via.str.size && memcmp(k->via.str.ptr,
			    o->via.map.ptr[j].key.via.str.ptr,
			    k->via.str.size) == 0) {
				path = message_data_path(field, k, NULL);
				return (message_error(err, path,
				    "duplicate field '%s'", path));
			}
		}
		path = message_data_path(field, k, NULL);
		if (message_want_map(v, path, err) != 0 ||
		    message_fields(v, path, message_datum_keys,
		    color_ok ? 2 : 1, kv, err) != 0)
			return (-1);
		if (kv[0] == NULL)
			return (message_missing(err, path,
			    &message_datum_keys[0]));
		path = message_data_path(field, k, "value");
		if (rule == MESSAGE_DATA_TYPED) {
			if (message_typed_value(k->via.str.ptr,
			    k->via.str.size, kv[0], path, err) != 0)
				return (-1);
		} else {
			if (message_want_str(kv[0], path, err) != 0 ||
			    message_check_utf8(kv[0], path, 0, &count,
			    err) != 0)
				return (-1);
			if (count > MESSAGE_DATA_TEXT_MAX)
				return (message_error(err, path, "%s is %zu "
				    "characters; at most %d", path, count,
				    MESSAGE_DATA_TEXT_MAX));
		}
		if (color_ok && kv[1] != NULL && message_color(kv[1],
		    message_data_path(field, k, "color"), err) != 0)
			return (-1);
		out[*n].name = k;
		out[*n].value = kv[0];
		out[*n].color = color_ok ? kv[1] : NULL;
		(*n)++;
	}
	return (0);
}

/*
 * Write a data map: lit (which opens it, e.g. ",\"data\":{"), then each
 * entry as "NAME":{"value":V[,"color":C]}, then the closing brace.
 */
void
message_part_data(struct message_part *parts, size_t *np, const char *lit,
    const struct message_datum *d, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		message_part_str(parts, np, i == 0 ? lit : "},", d[i].name);
		message_part_str(parts, np, ":{\"value\":", d[i].value);
		if (d[i].color != NULL)
			message_part_str(parts, np, ",\"color\":", d[i].color);
	}
	message_part(parts, np, n > 0 ? "}}" : "}", NULL, 0);
}

/*
 * Check the value of data entry name[0..len) at field: a string that is not
 * empty, at most 200 characters without control characters, and as its name's
 * type prefix requires (message-value.c).
 */
int
message_typed_value(const char *name, size_t len, const msgpack_object *o,
    const char *field, struct rpc_error *err)
{
	const char	*why;
	size_t		 count;

	if (message_want_str(o, field, err) != 0)
		return (-1);
	if (o->via.str.size == 0)
		return (message_error(err, field, "%s is empty", field));
	if (message_check_utf8(o, field, 1, &count, err) != 0)
		return (-1);
	if (count > MESSAGE_VALUE_MAX)
		return (message_error(err, field, "%s is %zu characters; at "
		    "most %d", field, count, MESSAGE_VALUE_MAX));
	why = message_value_check(name, len, o->via.str.ptr, o->via.str.size);
	if (why != NULL)
		return (message_error(err, field, "%s is not valid: %s", field,
		    why));
	return (0);
}
