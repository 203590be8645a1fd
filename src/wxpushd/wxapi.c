/*
 * What wxpushd knows of WeChat's API, in one place: the endpoints it calls
 * (path, HTTP method, which token goes in the query) and what each errcode
 * means for the caller (docs/design.md has the table). send, cred, the token
 * sources, the component methods and metrics ask here; none keeps a list.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "wxpushd.h"

static const struct wxapi_endpoint wxapi_endpoints[WXAPI_NENDPOINTS] = {
	[WXAPI_TOKEN] = { "token", "GET", "/cgi-bin/token", NULL, 1 },
	[WXAPI_STABLE_TOKEN] = { "stable_token", "POST",
	    "/cgi-bin/stable_token", NULL, 1 },
	[WXAPI_COMPONENT_TOKEN] = { "api_component_token", "POST",
	    "/cgi-bin/component/api_component_token", NULL, 1 },
	[WXAPI_START_PUSH_TICKET] = { "api_start_push_ticket", "POST",
	    "/cgi-bin/component/api_start_push_ticket", NULL, 1 },
	[WXAPI_AUTHORIZER_TOKEN] = { "api_authorizer_token", "POST",
	    "/cgi-bin/component/api_authorizer_token",
	    "component_access_token", 1 },
	[WXAPI_QUERY_AUTH] = { "api_query_auth", "POST",
	    "/cgi-bin/component/api_query_auth", "component_access_token", 0 },
	[WXAPI_CREATE_PREAUTHCODE] = { "api_create_preauthcode", "POST",
	    "/cgi-bin/component/api_create_preauthcode",
	    "component_access_token", 0 },
	[WXAPI_GET_AUTHORIZER_LIST] = { "api_get_authorizer_list", "POST",
	    "/cgi-bin/component/api_get_authorizer_list",
	    "component_access_token", 0 },
	[WXAPI_SUBSCRIBE_ONCE] = { "template_subscribe", "POST",
	    "/cgi-bin/message/template/subscribe", "access_token", 0 },
	[WXAPI_TEMPLATE_SEND] = { "template_send", "POST",
	    "/cgi-bin/message/template/send", "access_token", 0 },
	[WXAPI_SUBSCRIBE_BIZSEND] = { "subscribe_bizsend", "POST",
	    "/cgi-bin/message/subscribe/bizsend", "access_token", 0 },
	[WXAPI_SUBSCRIBE_SEND] = { "subscribe_send", "POST",
	    "/cgi-bin/message/subscribe/send", "access_token", 0 },
	[WXAPI_CUSTOM_SEND] = { "custom_send", "POST",
	    "/cgi-bin/message/custom/send", "access_token", 0 },
	[WXAPI_GETTICKET] = { "getticket", "GET", "/cgi-bin/ticket/getticket",
	    "access_token", 0 },
	/* call: any path the configuration allows, given per call. */
	[WXAPI_CALL] = { "call", "POST", NULL, "access_token", 0 },
};

/*
 * Paths whose answers are credentials: never called for a peer, whatever
 * the configuration says. A row ending in '/' or '_' is a prefix.
 */
static const char *wxapi_secret_paths[] = {
	"/cgi-bin/token",			/* access_token */
	"/cgi-bin/stable_token",
	"/cgi-bin/component/api_",		/* component and authorizer tokens,
						   pre_auth_code, refresh tokens */
	"/cgi-bin/ticket/",			/* jsapi_ticket, wx_card ticket */
	"/sns/oauth2/",				/* web authorization tokens */
	"/sns/jscode2session",			/* session_key */
	"/sns/component/",			/* the same, for platforms */
	"/cgi-bin/account/getaccountbasicinfo/token",
};

/* Answer fields that carry a credential, stripped from what call returns. */
static const char *wxapi_secret_fields[] = {
	"ticket", "token", "pre_auth_code", "session_key", "auth_code",
	"authorization_code", "secret", "appsecret",
};

/* Query parameters the daemon sets: a caller may not. */
static const char *wxapi_reserved_query[] = {
	"access_token", "component_access_token", "authorizer_access_token",
	"secret", "appsecret",
};

/* WeChat errcodes that get a label of their own in the send counters. */
static const long wxapi_labelled[WXAPI_NERRCODES - 1] = {
	-1, 40001, 40003, 40013, 40014, 40037, 40164, 42001, 43101, 45009,
	45011, 47001, 48001, 89501, 89502, 89503, 89504, 89505, 89506, 89507,
	45015, 47003, 41030
};

/* What a final send errcode means, for the caller's error message. */
static const struct {
	long		 errcode;
	const char	*hint;
} wxapi_hints[] = {
	{ 40003, "the touser openid is not valid for this appid" },
	{ 40037, "the template_id is not valid" },
	{ 41030, "the page does not exist in the released mini program" },
	{ 43101, "the user has not consented (or the consent was used)" },
	{ 45008, "a custom news message may hold only one article" },
	{ 45015, "the user has not interacted with the account within 48 "
	    "hours: a customer-service message cannot reach them until they "
	    "do; final, do not retry" },
	{ 45047, "too many customer-service messages to this user without "
	    "a reply" },
	{ 47003, "a data value breaks its type's rule (WeChat's errmsg names "
	    "the field)" },
};

/* Errcodes of a token endpoint that only an operator can fix. */
static const long wxapi_operator[] = {
	40001,	/* from a token endpoint: wrong AppSecret */
	40002, 40013, 40125, 40164, 40243, 41002, 41004, 61004, 61024, 61011
};

/* An endpoint's row. */
const struct wxapi_endpoint *
wxapi_endpoint(enum wxapi_ep ep)
{
	if ((unsigned)ep >= WXAPI_NENDPOINTS)
		fatalx("%s: no endpoint %d", __func__, (int)ep);
	return (&wxapi_endpoints[ep]);
}

/*
 * Call endpoint ep with token (NULL for the token endpoints) in its query,
 * after extra (another query, or NULL); the copy of the token is wiped.
 */
struct upstream_call *
wxapi_request(enum wxapi_ep ep, const char *token, const char *extra,
    const char *body, size_t len, upstream_cb cb, void *arg)
{
	const struct wxapi_endpoint *e = wxapi_endpoint(ep);

	if (e->path == NULL)
		fatalx("%s: endpoint %s has no fixed path", __func__, e->name);
	return (wxapi_request_path(ep, e->method, e->path, token, extra, body,
	    len, cb, arg));
}

/*
 * Call path with method as endpoint ep does (its token parameter): the
 * endpoint's own row for the fixed endpoints, any path for WXAPI_CALL.
 */
struct upstream_call *
wxapi_request_path(enum wxapi_ep ep, const char *method, const char *path,
    const char *token, const char *extra, const char *body, size_t len,
    upstream_cb cb, void *arg)
{
	const struct wxapi_endpoint *e = wxapi_endpoint(ep);
	struct upstream_call *call;
	char *query;
	int n;

	if (e->token_param == NULL || token == NULL)
		return (upstream_request(method, path, extra, body, len, cb,
		    arg));
	n = xasprintf(&query, "%s=%s%s%s", e->token_param, token,
	    extra != NULL ? "&" : "", extra != NULL ? extra : "");
	call = upstream_request(method, path, query, body, len, cb, arg);
	OPENSSL_cleanse(query, (size_t)n);
	free(query);
	return (call);
}

/*
 * Whether path[0..len) is a path call may send to: '/' then segments of
 * A-Z a-z 0-9 _ - . (no scheme, host, query, "..", "//" or non-ASCII), at
 * most WXAPI_PATH_MAX bytes; with pattern, a final '*' makes it a prefix.
 * 1, or 0 and *why.
 */
int
wxapi_path_check(const char *path, size_t len, int pattern, const char **why)
{
	size_t i;
	char ch;

	if (len == 0 || len > WXAPI_PATH_MAX) {
		*why = "a path is 1 to 256 bytes";
		return (0);
	}
	if (path[0] != '/') {
		*why = "a path starts with '/' (no scheme or host)";
		return (0);
	}
	for (i = 0; i < len; i++) {
		ch = path[i];
		if (pattern && ch == '*' && i == len - 1)
			break;
		if (ch == '?' || ch == '#') {
			*why = "a path has no query or fragment (use query)";
			return (0);
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
		    ch == '.' || ch == '/')) {
			*why = pattern ? "a path is ASCII letters, digits and "
			    "_ - . /, with '*' only at its end" : "a path is "
			    "ASCII letters, digits and _ - . /";
			return (0);
		}
		if (ch == '/' && i + 1 < len && path[i + 1] == '/') {
			*why = "a path has no empty segment (\"//\")";
			return (0);
		}
		if (ch == '.' && (i == 0 || path[i - 1] == '/') &&
		    (i + 1 == len || path[i + 1] == '/' || (path[i + 1] == '.' &&
		    (i + 2 == len || path[i + 2] == '/')))) {
			*why = "a path has no \".\" or \"..\" segment";
			return (0);
		}
	}
	return (1);
}

/* Whether a[0..alen) and b[0..blen) are the same or one starts the other. */
static int
wxapi_prefix_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	return (memcmp(a, b, n) == 0);
}

/*
 * Whether path[0..len) is, or (a pattern ending in '*') covers, a path whose
 * answer is a credential: such a path can never be allowed for call.
 */
int
wxapi_path_secret(const char *path, size_t len)
{
	const char *row;
	size_t i, rlen;
	int prefix = len > 0 && path[len - 1] == '*';

	if (prefix)
		len--;
	for (i = 0; i < sizeof wxapi_secret_paths /
	    sizeof wxapi_secret_paths[0]; i++) {
		row = wxapi_secret_paths[i];
		rlen = strlen(row);
		if (row[rlen - 1] == '/' || row[rlen - 1] == '_') {
			/* A prefix row: any path under it, or a pattern over it. */
			if (len >= rlen && memcmp(path, row, rlen) == 0)
				return (1);
			if (prefix && wxapi_prefix_overlap(path, len, row, rlen))
				return (1);
		} else {
			/* An exact row: that path, a sub-path, or a pattern
			 * that covers it. */
			if (len >= rlen && memcmp(path, row, rlen) == 0 &&
			    (len == rlen || path[rlen] == '/'))
				return (1);
			if (prefix && len <= rlen && memcmp(path, row, len) == 0)
				return (1);
		}
	}
	return (0);
}

/*
 * Whether an answer's key[0..len) names a credential: any *access_token,
 * *refresh_token or *_ticket, and the fields of wxapi_secret_fields.
 */
int
wxapi_secret_field(const char *key, size_t len)
{
	static const char *suffixes[] = { "access_token", "refresh_token",
	    "_ticket", "_token" };
	size_t i, n;

	for (i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		n = strlen(suffixes[i]);
		if (len >= n && strncasecmp(key + len - n, suffixes[i], n) == 0)
			return (1);
	}
	for (i = 0; i < sizeof wxapi_secret_fields /
	    sizeof wxapi_secret_fields[0]; i++) {
		n = strlen(wxapi_secret_fields[i]);
		if (len == n && strncasecmp(key, wxapi_secret_fields[i], n) == 0)
			return (1);
	}
	return (0);
}

/* Whether a query parameter name is one only the daemon may set. */
int
wxapi_query_reserved(const char *key, size_t len)
{
	size_t i, n;

	for (i = 0; i < sizeof wxapi_reserved_query /
	    sizeof wxapi_reserved_query[0]; i++) {
		n = strlen(wxapi_reserved_query[i]);
		if (len == n && strncasecmp(key, wxapi_reserved_query[i], n) == 0)
			return (1);
	}
	return (0);
}

/* POST a JSON object (consumed) to ep with token; see wxapi_request. */
struct upstream_call *
wxapi_post_json(enum wxapi_ep ep, const char *token, json_t *body,
    upstream_cb cb, void *arg)
{
	struct upstream_call *call;
	char *s;

	if (body == NULL || (s = json_dumps(body, JSON_COMPACT)) == NULL)
		fatalx("%s: json", __func__);
	json_decref(body);
	call = wxapi_request(ep, token, NULL, s, strlen(s), cb, arg);
	freezero_str(s);
	return (call);
}

/* Whether errcode is one an operator must fix at a token endpoint. */
static int
wxapi_is_operator(long errcode)
{
	size_t i;

	for (i = 0; i < sizeof wxapi_operator / sizeof wxapi_operator[0]; i++) {
		if (wxapi_operator[i] == errcode)
			return (1);
	}
	return (0);
}

/*
 * What errcode from endpoint ep means: the class, and for the classes that
 * wait, *retry_after in seconds (0 otherwise). A token endpoint
 * authenticated by a secret reads 40001 as a wrong secret; an endpoint
 * called with a token reads it as that token refused.
 */
enum wxapi_class
wxapi_classify(enum wxapi_ep ep, long errcode, int *retry_after)
{
	const struct wxapi_endpoint *e = wxapi_endpoint(ep);

	*retry_after = 0;
	switch (errcode) {
	case 0:
		return (WXAPI_OK);
	case 40001:
	case 40014:
	case 42001:
		if (e->token_param != NULL)
			return (WXAPI_TOKEN_REFUSED);
		break;
	case 61003:
		return (WXAPI_REVOKED);
	case 61023:
		return (WXAPI_REFRESH_TOKEN_REFUSED);
	case 61005:
	case 61006:
		return (WXAPI_TICKET_REFUSED);
	case 45009:
		*retry_after = (int)clock_until_tomorrow();
		return (WXAPI_QUOTA);
	}
	if (e->fetch)
		return (wxapi_is_operator(errcode) ? WXAPI_OPERATOR :
		    WXAPI_RETRY);
	switch (errcode) {
	case -1:
		return (WXAPI_RETRY);
	case 41001:
		return (WXAPI_TOKEN_MISSING);
	case 40164:	/* this host's IP is not whitelisted, whatever the call */
		return (WXAPI_OPERATOR);
	case 45011:
		*retry_after = 60 - (int)(clock_now() % 60);
		return (WXAPI_RATE_LIMITED);
	case 89501: case 89502: case 89503: case 89504: case 89505:
		*retry_after = 60;
		return (WXAPI_RATE_LIMITED);
	case 89506:
		*retry_after = 86400;
		return (WXAPI_RATE_LIMITED);
	case 89507:
		*retry_after = 3600;
		return (WXAPI_RATE_LIMITED);
	}
	return (WXAPI_FINAL);
}

/* WeChat's errcode in a reply, 0 if none (or no usable reply). */
long
wxapi_errcode(const struct upstream_reply *r)
{
	json_t *ec;

	if (!r->ok)
		return (0);
	ec = json_object_get(r->json, "errcode");
	return (json_is_integer(ec) ? (long)json_integer_value(ec) : 0);
}

/* Copy WeChat's errmsg from j into buf, cut on a UTF-8 boundary. */
void
wxapi_errmsg(const json_t *j, char *buf, size_t len)
{
	const char *m = json_string_value(json_object_get(j, "errmsg"));
	size_t n;

	if (m == NULL)
		m = "";
	n = strlen(m);
	if (n >= len) {
		n = len - 1;
		while (n > 0 && ((unsigned char)m[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(buf, m, n);
	buf[n] = '\0';
}

/*
 * Read a call's answer: *errcode (0 if absent) and its errmsg into buf. -1 if
 * errcode is there but not an integer: then nobody knows whether the call
 * took effect.
 */
int
wxapi_reply_parse(const json_t *j, long *errcode, char *buf, size_t len)
{
	const json_t *ec = json_object_get(j, "errcode");

	*errcode = json_is_integer(ec) ? (long)json_integer_value(ec) : 0;
	wxapi_errmsg(j, buf, len);
	if (ec != NULL && !json_is_integer(ec))
		return (-1);
	return (0);
}

/* The counter index of errcode; the last one is "other". */
int
wxapi_errcode_index(long errcode)
{
	int i;

	for (i = 0; i < WXAPI_NERRCODES - 1; i++) {
		if (wxapi_labelled[i] == errcode)
			return (i);
	}
	return (WXAPI_NERRCODES - 1);
}

/* A short explanation of a send's final errcode, or NULL. */
const char *
wxapi_errcode_hint(long errcode)
{
	size_t i;

	for (i = 0; i < sizeof wxapi_hints / sizeof wxapi_hints[0]; i++) {
		if (wxapi_hints[i].errcode == errcode)
			return (wxapi_hints[i].hint);
	}
	return (NULL);
}

/* The label of errcode counter i: "43101", "-1" or "other". */
const char *
wxapi_errcode_name(int i)
{
	static char	names[WXAPI_NERRCODES - 1][16];

	if (i < 0 || i >= WXAPI_NERRCODES - 1)
		return ("other");
	if (names[i][0] == '\0')
		snprintf(names[i], sizeof names[i], "%ld", wxapi_labelled[i]);
	return (names[i]);
}
