/*
 * Component events as WeChat POSTs them: opening an event (the signature, the
 * decryption, the outer and inner XML) and judging its freshness (the time
 * window, the memory of recent events) for both ways in, and the optional
 * HTTP endpoint on callback_listen. What an event does is component.c's
 * business.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <expat.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "wxpushd.h"
#include "wxcrypt.h"

#define INGRESS_HEADERS_MAX	8192	/* bytes of request line and headers */
#define INGRESS_TIMEOUT	10	/* seconds to read a request or write a reply */
#define INGRESS_PARAM_MAX	64	/* msg_signature, timestamp, nonce */
#define INGRESS_XML_ELEMENTS	64	/* elements in one document */
#define INGRESS_XML_DEPTH	8
#define INGRESS_XML_FIELDS	8	/* fields read from one document */
#define INGRESS_TIME_MAX	20	/* digits of CreateTime */
#define INGRESS_REPLAY_MAX	4096	/* signed events remembered */

/* A signed event answered lately: its (timestamp, nonce, signature). */
struct ingress_seen {
	unsigned char	 key[SHA256_DIGEST_LENGTH];	/* all zero: free */
	time_t		 timestamp;
	char		 info_type[INGRESS_INFO_TYPE_MAX + 1];
	char		 authorizer_appid[WX_APPID_MAX + 1];
};

/* An accepted event on its way through component.c: remembered when done. */
struct ingress_pass {
	component_done_cb	 done;
	void			*arg;
	unsigned char		 key[SHA256_DIGEST_LENGTH];
	time_t			 timestamp;
};

/* An element read from the children of <xml>, and its longest text. */
struct ingress_field {
	const char	*name;
	size_t		 max;
};

enum { OUTER_APPID, OUTER_ENCRYPT, OUTER_N };
static const struct ingress_field ingress_outer[OUTER_N] = {
	[OUTER_APPID] = { "AppId", WX_APPID_MAX },
	[OUTER_ENCRYPT] = { "Encrypt", INGRESS_BODY_MAX },
};

enum { INNER_APPID, INNER_TIME, INNER_TYPE, INNER_TICKET, INNER_AUTHORIZER,
	INNER_CODE, INNER_N };
static const struct ingress_field ingress_inner[INNER_N] = {
	[INNER_APPID] = { "AppId", WX_APPID_MAX },
	[INNER_TIME] = { "CreateTime", INGRESS_TIME_MAX },
	[INNER_TYPE] = { "InfoType", INGRESS_INFO_TYPE_MAX },
	[INNER_TICKET] = { "ComponentVerifyTicket", WX_TOKEN_MAX },
	[INNER_AUTHORIZER] = { "AuthorizerAppid", WX_APPID_MAX },
	[INNER_CODE] = { "AuthorizationCode", WX_TOKEN_MAX },
};

/* One parse: the fields found and why it stopped, if it did. */
struct ingress_xml {
	XML_Parser			 parser;
	const struct ingress_field	*fields;
	size_t				 nfields;
	char				*value[INGRESS_XML_FIELDS];	/* NULL: absent */
	size_t				 len[INGRESS_XML_FIELDS];
	int				 cur;	/* field being read, or -1 */
	int				 depth;
	int				 nelements;
	char				 error[128];
};

static struct httpd			 ingress_httpd = { .name = "callback" };
static struct ingress_seen		 ingress_seen[INGRESS_REPLAY_MAX];
static size_t				 ingress_seen_next;

/* Stop the parse with a reason of our own. */
static void
ingress_xml_stop(struct ingress_xml *x, const char *why)
{
	if (x->error[0] == '\0')
		snprintf(x->error, sizeof x->error, "%s", why);
	XML_StopParser(x->parser, XML_FALSE);
}

/* An element opens: count it, check depth and root, maybe read a field. */
static void XMLCALL
ingress_xml_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct ingress_xml *x = arg;
	char why[96];
	size_t i;

	(void)attrs;
	x->cur = -1;
	if (++x->nelements > INGRESS_XML_ELEMENTS) {
		ingress_xml_stop(x, "too many elements");
		return;
	}
	if (++x->depth > INGRESS_XML_DEPTH) {
		ingress_xml_stop(x, "elements nested too deep");
		return;
	}
	if (x->depth == 1 && strcmp(name, "xml") != 0) {
		ingress_xml_stop(x, "the root element is not <xml>");
		return;
	}
	if (x->depth != 2)
		return;
	for (i = 0; i < x->nfields; i++) {
		if (strcmp(name, x->fields[i].name) == 0)
			break;
	}
	if (i == x->nfields)
		return;		/* WeChat may add elements: ignore them */
	if (x->value[i] != NULL) {
		snprintf(why, sizeof why, "<%s> appears twice",
		    x->fields[i].name);
		ingress_xml_stop(x, why);
		return;
	}
	x->value[i] = xmalloc(x->fields[i].max + 1);
	x->value[i][0] = '\0';
	x->len[i] = 0;
	x->cur = (int)i;
}

/* An element closes. */
static void XMLCALL
ingress_xml_end(void *arg, const XML_Char *name)
{
	struct ingress_xml *x = arg;

	(void)name;
	x->cur = -1;
	x->depth--;
}

/* Text of a field we read (CDATA arrives here too), bounded. */
static void XMLCALL
ingress_xml_text(void *arg, const XML_Char *s, int len)
{
	struct ingress_xml *x = arg;
	const struct ingress_field *f;
	char why[96];

	if (x->cur < 0 || x->depth != 2 || len <= 0)
		return;
	f = &x->fields[x->cur];
	if ((size_t)len > f->max - x->len[x->cur]) {
		snprintf(why, sizeof why, "<%s> is longer than %zu bytes",
		    f->name, f->max);
		ingress_xml_stop(x, why);
		return;
	}
	memcpy(x->value[x->cur] + x->len[x->cur], s, len);
	x->len[x->cur] += len;
	x->value[x->cur][x->len[x->cur]] = '\0';
}

/* A DOCTYPE could declare entities (billion laughs, external): refuse it. */
static void XMLCALL
ingress_xml_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
    const XML_Char *pubid, int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	ingress_xml_stop(arg, "a DOCTYPE is not allowed");
}

/* Never reached without a DOCTYPE; refused anyway. */
static void XMLCALL
ingress_xml_entity(void *arg, const XML_Char *name, int is_parameter_entity,
    const XML_Char *value, int value_length, const XML_Char *base,
    const XML_Char *sysid, const XML_Char *pubid, const XML_Char *notation)
{
	(void)name;
	(void)is_parameter_entity;
	(void)value;
	(void)value_length;
	(void)base;
	(void)sysid;
	(void)pubid;
	(void)notation;
	ingress_xml_stop(arg, "an entity declaration is not allowed");
}

/* Forget what a parse found, wiping it: it may hold a ticket or a code. */
static void
ingress_xml_free(struct ingress_xml *x)
{
	size_t i;

	for (i = 0; i < x->nfields; i++) {
		if (x->value[i] != NULL)
			freezero(x->value[i], x->fields[i].max + 1);
		x->value[i] = NULL;
	}
}

/*
 * Parse doc as <xml> with the given fields as its children. 0, or -1 with the
 * reason in x->error; either way the caller frees x with ingress_xml_free.
 */
static int
ingress_xml_parse(struct ingress_xml *x, const struct ingress_field *fields,
    size_t nfields, const char *doc, size_t len)
{
	enum XML_Error code;
	int ret = 0;

	memset(x, 0, sizeof *x);
	x->fields = fields;
	x->nfields = nfields;
	x->cur = -1;
	if (len > INGRESS_BODY_MAX) {
		snprintf(x->error, sizeof x->error, "longer than %d bytes",
		    INGRESS_BODY_MAX);
		return (-1);
	}
	if ((x->parser = XML_ParserCreate(NULL)) == NULL)
		fatalx("XML_ParserCreate");
	XML_SetUserData(x->parser, x);
	XML_SetElementHandler(x->parser, ingress_xml_start, ingress_xml_end);
	XML_SetCharacterDataHandler(x->parser, ingress_xml_text);
	XML_SetStartDoctypeDeclHandler(x->parser, ingress_xml_doctype);
	XML_SetEntityDeclHandler(x->parser, ingress_xml_entity);
	XML_SetParamEntityParsing(x->parser, XML_PARAM_ENTITY_PARSING_NEVER);
	if (XML_Parse(x->parser, doc, (int)len, 1) != XML_STATUS_OK) {
		if (x->error[0] == '\0') {
			code = XML_GetErrorCode(x->parser);
			snprintf(x->error, sizeof x->error, "not well-formed "
			    "XML (%s at line %lu, column %lu)",
			    XML_ErrorString(code), (unsigned long)
			    XML_GetCurrentLineNumber(x->parser), (unsigned long)
			    XML_GetCurrentColumnNumber(x->parser));
		}
		ret = -1;
	}
	XML_ParserFree(x->parser);
	x->parser = NULL;
	return (ret);
}

/*
 * The AppId of an event body's outer <xml>, to find its component: 0, or -1
 * and a cause.
 */
int
ingress_outer_appid(const char *body, size_t len, char *appid, size_t size,
    char **cause)
{
	struct ingress_xml x;
	int ret = -1;

	*cause = NULL;
	if (len == 0) {
		*cause = xstrdup("the body is empty");
		return (-1);
	}
	if (ingress_xml_parse(&x, ingress_outer, OUTER_N, body, len) != 0)
		xasprintf(cause, "the body: %s", x.error);
	else if (x.value[OUTER_APPID] == NULL)
		*cause = xstrdup("the body has no <AppId>");
	else if (!valid_appid(x.value[OUTER_APPID], x.len[OUTER_APPID]) ||
	    x.len[OUTER_APPID] >= size)
		*cause = xstrdup("the body's <AppId> is not an appid");
	else {
		memcpy(appid, x.value[OUTER_APPID], x.len[OUTER_APPID] + 1);
		ret = 0;
	}
	ingress_xml_free(&x);
	return (ret);
}

/* Decrypt with the current key, then the previous one; 0 or -1 and a cause. */
static int
ingress_decrypt(const struct component_conf *cc, const char *enc, size_t len,
    char **plain, size_t *plainlen, char **cause)
{
	const char *why = NULL, *why2 = NULL;

	if (wxcrypt_decrypt(cc->aes_key, enc, len, cc->appid, plain, plainlen,
	    &why) == 0)
		return (0);
	if (!cc->has_previous_key) {
		xasprintf(cause, "<Encrypt> does not decrypt with aes_key (%s)",
		    why);
		return (-1);
	}
	if (wxcrypt_decrypt(cc->previous_aes_key, enc, len, cc->appid, plain,
	    plainlen, &why2) == 0) {
		log_debug("%s: event decrypted with previous_aes_key",
		    cc->appid);
		return (0);
	}
	xasprintf(cause, "<Encrypt> does not decrypt with aes_key (%s) nor "
	    "previous_aes_key (%s)", why, why2);
	return (-1);
}

/* Check the decrypted event's fields and keep what the event needs. */
static int
ingress_event_fields(const struct component_conf *cc, struct ingress_xml *x,
    struct ingress_event *ev, char **cause)
{
	const char *type = x->value[INNER_TYPE], *aid, *secret = NULL;
	size_t i, secretlen = 0;
	int need_authorizer = 0;

	if (x->value[INNER_APPID] == NULL || x->len[INNER_APPID] == 0) {
		*cause = xstrdup("the decrypted event has no <AppId>");
		return (-1);
	}
	if (strcmp(x->value[INNER_APPID], cc->appid) != 0) {
		*cause = xstrdup("the decrypted event's <AppId> is not this "
		    "component");
		return (-1);
	}
	if (type == NULL || x->len[INNER_TYPE] == 0) {
		*cause = xstrdup("the decrypted event has no <InfoType>");
		return (-1);
	}
	for (i = 0; i < x->len[INNER_TYPE]; i++) {
		if (!((type[i] >= 'a' && type[i] <= 'z') || (type[i] >= 'A' &&
		    type[i] <= 'Z') || (type[i] >= '0' && type[i] <= '9') ||
		    type[i] == '_'))
			break;
	}
	if (i != x->len[INNER_TYPE]) {
		*cause = xstrdup("the decrypted event's <InfoType> is not a "
		    "word");
		return (-1);
	}
	if (x->value[INNER_TIME] != NULL && (x->len[INNER_TIME] == 0 ||
	    x->len[INNER_TIME] > 12 || strspn(x->value[INNER_TIME],
	    "0123456789") != x->len[INNER_TIME])) {
		*cause = xstrdup("the decrypted event's <CreateTime> is not a "
		    "number");
		return (-1);
	}
	if (x->value[INNER_TIME] != NULL)
		ev->create_time = (time_t)strtoll(x->value[INNER_TIME], NULL,
		    10);
	memcpy(ev->info_type, type, x->len[INNER_TYPE] + 1);

	if (strcmp(type, "component_verify_ticket") == 0) {
		secret = x->value[INNER_TICKET];
		secretlen = x->len[INNER_TICKET];
		if (secret == NULL || !valid_word(secret, secretlen,
		    WX_TOKEN_MAX)) {
			*cause = xstrdup("the decrypted event has no valid "
			    "<ComponentVerifyTicket>");
			return (-1);
		}
	} else if (strcmp(type, "authorized") == 0 ||
	    strcmp(type, "updateauthorized") == 0) {
		need_authorizer = 1;
		secret = x->value[INNER_CODE];
		secretlen = x->len[INNER_CODE];
		if (secret == NULL || !valid_word(secret, secretlen,
		    WX_TOKEN_MAX)) {
			*cause = xstrdup("the decrypted event has no valid "
			    "<AuthorizationCode>");
			return (-1);
		}
	} else if (strcmp(type, "unauthorized") == 0)
		need_authorizer = 1;

	aid = x->value[INNER_AUTHORIZER];
	if (aid != NULL && x->len[INNER_AUTHORIZER] != 0) {
		if (!valid_appid(aid, x->len[INNER_AUTHORIZER])) {
			*cause = xstrdup("the decrypted event's "
			    "<AuthorizerAppid> is not an appid");
			return (-1);
		}
		memcpy(ev->authorizer_appid, aid, x->len[INNER_AUTHORIZER] + 1);
	} else if (need_authorizer) {
		*cause = xstrdup("the decrypted event has no "
		    "<AuthorizerAppid>");
		return (-1);
	}
	if ((secret != NULL || need_authorizer) && ev->create_time == 0) {
		/* Events are applied in CreateTime order: it must be there. */
		*cause = xstrdup("the decrypted event has no <CreateTime>");
		return (-1);
	}
	if (secret != NULL) {
		ev->secret = xmemdup(secret, secretlen + 1);
		ev->secretlen = secretlen;
	}
	return (0);
}

/*
 * Open an event for component cc: check msg_signature over <Encrypt> first
 * (in constant time, before any decryption, so that the decryption's causes
 * are no padding oracle), then decrypt and parse. 0 and ev filled (clear it
 * with ingress_event_clear), or -1, *field ("msg_signature" or "body") and
 * an allocated *cause that holds no secret.
 */
int
ingress_event_open(const struct component_conf *cc, const char *sig,
    const char *timestamp, const char *nonce, const char *body, size_t len,
    struct ingress_event *ev, const char **field, char **cause)
{
	struct ingress_xml outer, inner;
	char *plain = NULL;
	size_t plainlen = 0;
	int ret = -1;

	memset(ev, 0, sizeof *ev);
	memset(&inner, 0, sizeof inner);
	*field = "body";
	*cause = NULL;
	if (len == 0) {
		*cause = xstrdup("the body is empty");
		return (-1);
	}
	if (ingress_xml_parse(&outer, ingress_outer, OUTER_N, body,
	    len) != 0) {
		xasprintf(cause, "the body: %s", outer.error);
		goto out;
	}
	if (outer.value[OUTER_ENCRYPT] == NULL ||
	    outer.len[OUTER_ENCRYPT] == 0) {
		*cause = xstrdup("the body has no <Encrypt>");
		goto out;
	}
	if (!wxcrypt_signature_ok(cc->token, timestamp, nonce,
	    outer.value[OUTER_ENCRYPT], sig)) {
		*field = "msg_signature";
		*cause = xstrdup("msg_signature does not match the body (wrong "
		    "token, or a forged or altered event)");
		goto out;
	}
	if (outer.value[OUTER_APPID] != NULL &&
	    strcmp(outer.value[OUTER_APPID], cc->appid) != 0) {
		*cause = xstrdup("the body's <AppId> is not this component");
		goto out;
	}
	if (ingress_decrypt(cc, outer.value[OUTER_ENCRYPT],
	    outer.len[OUTER_ENCRYPT], &plain, &plainlen, cause) != 0)
		goto out;
	if (ingress_xml_parse(&inner, ingress_inner, INNER_N, plain,
	    plainlen) != 0) {
		xasprintf(cause, "the decrypted event: %s", inner.error);
		goto out;
	}
	if (ingress_event_fields(cc, &inner, ev, cause) != 0)
		goto out;
	ret = 0;

out:
	if (plain != NULL)
		freezero(plain, plainlen + 1);
	ingress_xml_free(&inner);
	ingress_xml_free(&outer);
	if (ret != 0)
		ingress_event_clear(ev);
	return (ret);
}

/* Wipe and free what an opened event holds. */
void
ingress_event_clear(struct ingress_event *ev)
{
	if (ev->secret != NULL)
		freezero(ev->secret, ev->secretlen + 1);
	memset(ev, 0, sizeof *ev);
}

/* The key an event is remembered by: its component and signed triple. */
static void
ingress_seen_key(const char *appid, const char *timestamp, const char *nonce,
    const char *sig, unsigned char *key)
{
	char *s;
	int n;

	/* Each part is a word without NUL: NUL-separated, the join is unique. */
	n = xasprintf(&s, "%s%c%s%c%s%c%s", appid, 0, timestamp, 0, nonce, 0,
	    sig);
	if (EVP_Digest(s, (size_t)n, key, NULL, EVP_sha256(), NULL) != 1)
		fatalx("%s: EVP_Digest", __func__);
	free(s);
}

/* The event answered lately under key, if it is still in the window. */
static const struct ingress_seen *
ingress_seen_find(const unsigned char *key)
{
	time_t now = clock_now();
	size_t i;

	for (i = 0; i < INGRESS_REPLAY_MAX; i++) {
		if (memcmp(ingress_seen[i].key, key, SHA256_DIGEST_LENGTH) == 0 &&
		    ingress_seen[i].timestamp > now - 2 * INGRESS_EVENT_WINDOW)
			return (&ingress_seen[i]);
	}
	return (NULL);
}

/* Remember an answered event, over the oldest one remembered. */
static void
ingress_seen_add(const unsigned char *key, time_t timestamp,
    const char *info_type, const char *authorizer_appid)
{
	struct ingress_seen *s = &ingress_seen[ingress_seen_next];

	ingress_seen_next = (ingress_seen_next + 1) % INGRESS_REPLAY_MAX;
	memcpy(s->key, key, SHA256_DIGEST_LENGTH);
	s->timestamp = timestamp;
	snprintf(s->info_type, sizeof s->info_type, "%s", info_type);
	snprintf(s->authorizer_appid, sizeof s->authorizer_appid, "%s",
	    authorizer_appid != NULL ? authorizer_appid : "");
}

/* component.c is done with an accepted event: remember it if it succeeded. */
static void
ingress_pass_done(void *arg, const struct rpc_error *e, const char *info_type,
    const char *authorizer_appid)
{
	struct ingress_pass *p = arg;

	if (e == NULL && info_type != NULL)
		ingress_seen_add(p->key, p->timestamp, info_type,
		    authorizer_appid);
	p->done(p->arg, e, info_type, authorizer_appid);
	free(p);
}

/*
 * Take an event for component cc from either way in: open it (see
 * ingress_event_open), refuse it if its signed timestamp (or CreateTime) is
 * more than INGRESS_EVENT_WINDOW seconds from our clock, answer an exact
 * replay of one answered lately with success again without applying it, and
 * hand the rest to component.c, which answers done. 0, or -1, *field and an
 * allocated *cause (done is not called).
 */
int
ingress_event_accept(struct component_conf *cc, const char *sig,
    const char *timestamp, const char *nonce, const char *body, size_t len,
    component_done_cb done, void *arg, const char **field, char **cause)
{
	struct ingress_event ev;
	struct ingress_pass *p;
	const struct ingress_seen *seen;
	unsigned char key[SHA256_DIGEST_LENGTH];
	time_t now = clock_now(), ts;
	long long skew;

	if (ingress_event_open(cc, sig, timestamp, nonce, body, len, &ev,
	    field, cause) != 0)
		return (-1);
	if (strspn(timestamp, "0123456789") != strlen(timestamp) ||
	    strlen(timestamp) > 12) {
		ingress_event_clear(&ev);
		*field = "timestamp";
		*cause = xstrdup("timestamp is not a number of seconds");
		return (-1);
	}
	ts = (time_t)strtoll(timestamp, NULL, 10);
	skew = (long long)ts - (long long)now;
	if (skew < -INGRESS_EVENT_WINDOW || skew > INGRESS_EVENT_WINDOW ||
	    (long long)ev.create_time - (long long)now >
	    INGRESS_EVENT_WINDOW) {
		ingress_event_clear(&ev);
		*field = "timestamp";
		xasprintf(cause, "the event is dated %lld s %s this host's "
		    "clock; events more than %d s away are refused (a replay, "
		    "or a clock to fix)", skew < 0 ? -skew : skew,
		    skew < 0 ? "behind" : "ahead of", INGRESS_EVENT_WINDOW);
		return (-1);
	}
	ingress_seen_key(cc->appid, timestamp, nonce, sig, key);
	if ((seen = ingress_seen_find(key)) != NULL) {
		log_info("%s: event %s%s%s seen already (same timestamp, nonce "
		    "and signature): answered, not applied again", cc->appid,
		    seen->info_type, seen->authorizer_appid[0] != '\0' ?
		    " for " : "", seen->authorizer_appid);
		ingress_event_clear(&ev);
		done(arg, NULL, seen->info_type, seen->authorizer_appid[0] !=
		    '\0' ? seen->authorizer_appid : NULL);
		return (0);
	}
	p = xcalloc(1, sizeof *p);
	p->done = done;
	p->arg = arg;
	memcpy(p->key, key, sizeof p->key);
	p->timestamp = ts;
	component_event_handle(cc, &ev, ingress_pass_done, p);
	ingress_event_clear(&ev);
	return (0);
}

/* Answer an HTTP request with a short plain-text body. */
static void
ingress_reply(struct evhttp_request *req, int status, const char *reason,
    const char *text)
{
	struct evbuffer *buf;

	if ((buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add(buf, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, status, reason, buf);
	evbuffer_free(buf);
}

/* An event has been acted on (or refused): tell WeChat. */
static void
ingress_done(void *arg, const struct rpc_error *e, const char *info_type,
    const char *authorizer_appid)
{
	struct evhttp_request *req = arg;
	char *text;
	int status;
	const char *reason;

	(void)info_type;
	(void)authorizer_appid;
	if (e == NULL) {
		ingress_reply(req, 200, "OK", "success");
		return;
	}
	if (strcmp(e->code, "invalid_request") == 0 ||
	    strcmp(e->code, "unknown_appid") == 0) {
		status = 400;
		reason = "Bad Request";
	} else if (strcmp(e->code, "unavailable") == 0) {
		status = 503;
		reason = "Service Unavailable";
	} else if (strcmp(e->code, "wechat") == 0) {
		status = 502;
		reason = "Bad Gateway";
	} else {
		status = 500;
		reason = "Internal Server Error";
	}
	xasprintf(&text, "%s: %s\n", e->code, e->message);
	ingress_reply(req, status, reason, text);
	free(text);
}

/* Refuse a request before it reaches component.c. */
static void
ingress_refuse(struct evhttp_request *req, const char *appid,
    const char *why)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	char *text, *addr = NULL;
	ev_uint16_t port;

	if (conn != NULL)
		evhttp_connection_get_peer(conn, &addr, &port);
	/* Per address, so one sender's junk cannot flood the log. */
	ratelog(LOG_LEVEL_WARN, "callback event refused", addr != NULL ? addr :
	    "unknown", "callback: %s%sevent refused from %s: %s",
	    appid != NULL ? appid : "", appid != NULL ? ": " : "",
	    addr != NULL ? addr : "unknown", why);
	xasprintf(&text, "invalid_request: %s\n", why);
	ingress_reply(req, 400, "Bad Request", text);
	free(text);
}

/* A query parameter of at most INGRESS_PARAM_MAX printable characters. */
static const char *
ingress_param(struct evkeyvalq *q, const char *name)
{
	const char *v;

	if ((v = evhttp_find_header(q, name)) == NULL ||
	    !valid_word(v, strlen(v), INGRESS_PARAM_MAX))
		return (NULL);
	return (v);
}

/* POST ?msg_signature=&timestamp=&nonce= with an event body, on any path. */
static void
ingress_request(struct evhttp_request *req, void *arg)
{
	struct component_conf *cc;
	struct evkeyvalq q;
	struct evbuffer *in;
	const struct evhttp_uri *uri;
	const char *query, *sig, *ts, *nonce, *et, *field;
	char appid[WX_APPID_MAX + 1], *body, *cause = NULL, *why;
	size_t len;

	(void)arg;
	httpd_dispatched(&ingress_httpd, req);
	TAILQ_INIT(&q);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "POST");
		ingress_reply(req, 405, "Method Not Allowed",
		    "invalid_request: POST only\n");
		return;
	}
	uri = evhttp_request_get_evhttp_uri(req);
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
		ingress_refuse(req, NULL, "no query string, or a malformed "
		    "one");
		goto out;
	}
	sig = ingress_param(&q, "msg_signature");
	ts = ingress_param(&q, "timestamp");
	nonce = ingress_param(&q, "nonce");
	if (sig == NULL || ts == NULL || nonce == NULL) {
		ingress_refuse(req, NULL, "msg_signature, timestamp and "
		    "nonce must be in the query string (1 to 64 printable "
		    "characters)");
		goto out;
	}
	if ((et = evhttp_find_header(&q, "encrypt_type")) != NULL &&
	    strcmp(et, "aes") != 0) {
		ingress_refuse(req, NULL, "encrypt_type must be aes");
		goto out;
	}
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	if (len > INGRESS_BODY_MAX) {
		ingress_refuse(req, NULL, "the body is too long");
		goto out;
	}
	body = len != 0 ? (char *)evbuffer_pullup(in, -1) : NULL;
	if (ingress_outer_appid(body, len, appid, sizeof appid, &cause) != 0) {
		ingress_refuse(req, NULL, cause);
		goto out;
	}
	if ((cc = config_find_component(wx_conf, appid)) == NULL) {
		ingress_refuse(req, appid, "the body's <AppId> is not a "
		    "configured component");
		goto out;
	}
	if (ingress_event_accept(cc, sig, ts, nonce, body, len,
	    ingress_done, req, &field, &cause) != 0) {
		xasprintf(&why, "%s: %s", field, cause);
		ingress_refuse(req, appid, why);
		free(why);
	}
out:
	free(cause);
	evhttp_clear_headers(&q);
}

/* Start the HTTP endpoint if callback_listen is set; 0 or -1. */
int
ingress_start(void)
{
	struct evhttp *http;

	if (wx_conf->callback_listen == NULL)
		return (0);
	if (ingress_httpd.http == NULL) {
		if ((http = evhttp_new(wx_base)) == NULL)
			fatalx("evhttp_new");
		evhttp_set_max_body_size(http, INGRESS_BODY_MAX);
		evhttp_set_max_headers_size(http, INGRESS_HEADERS_MAX);
		evhttp_set_timeout(http, INGRESS_TIMEOUT);
		evhttp_set_allowed_methods(http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT);
		evhttp_set_gencb(http, ingress_request, NULL);
		httpd_setup(&ingress_httpd, http);
	}
	return (httpd_listen(&ingress_httpd, wx_conf->callback_listen));
}

/* After a reload: move the endpoint if callback_listen changed. */
void
ingress_reload(void)
{
	if (ingress_httpd.http == NULL)
		ingress_start();
	else
		httpd_reload(&ingress_httpd, wx_conf->callback_listen);
}

/* At exit, after component_shutdown has answered every pending event. */
void
ingress_stop(void)
{
	httpd_close(&ingress_httpd);
}
