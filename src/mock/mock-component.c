/*
 * The third-party platform: component tokens, verify tickets, authorization
 * codes, authorizers and their refresh tokens, and the encrypted events the
 * mock POSTs to a platform's event URL.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

/* What generated credentials start with, as WeChat's do. */
#define MOCK_TICKET_PREFIX	"ticket@@@"
#define MOCK_CODE_PREFIX	"queryauthcode@@@"
#define MOCK_REFRESH_PREFIX	"refreshtoken@@@"
#define MOCK_PREAUTH_PREFIX	"preauthcode@@@"

/* An authorization code for api_query_auth: single use, 10 minutes. */
struct mock_code {
	char			 value[MOCK_CRED_MAX];
	struct mock_account	*auth;
	time_t			 expires_at;
	TAILQ_ENTRY(mock_code)	 entry;
};

/* One event POST in flight. */
struct mock_emit {
	TAILQ_ENTRY(mock_emit)	 entry;
	struct evhttp_connection *conn;
	struct evhttp_request	*ctl;		/* control call, or NULL */
	json_t			*answer;	/* its answer so far */
	struct event		*finish_ev;
	char			*where;		/* host:port */
	int			 done;
	int			 status;
	const char		*error;
	char			*reply;
	size_t			 replylen;
};

/* Codes by value, and in expiry order. */
static struct mock_hash		*mock_codes;
static TAILQ_HEAD(, mock_code)	 mock_code_fifo =
    TAILQ_HEAD_INITIALIZER(mock_code_fifo);
static TAILQ_HEAD(, mock_emit)	 mock_emits =
    TAILQ_HEAD_INITIALIZER(mock_emits);
static size_t			 mock_nemits;

static void	mock_emit_free(struct mock_emit *);

/* Create the code table. */
void
mock_component_init(void)
{
	mock_codes = mock_hash_new();
}

/* Forget a code. */
static void
mock_code_free(struct mock_code *c)
{
	mock_hash_remove(mock_codes, c->value);
	TAILQ_REMOVE(&mock_code_fifo, c, entry);
	free(c);
}

/* At exit: abandon the event POSTs, answering their control calls 503. */
void
mock_component_drain(void)
{
	struct mock_emit *e;

	while ((e = TAILQ_FIRST(&mock_emits)) != NULL) {
		TAILQ_REMOVE(&mock_emits, e, entry);
		if (e->ctl != NULL)
			mock_ctl_error(e->ctl, 503, "shutting down");
		mock_emit_free(e);
	}
	mock_nemits = 0;
}

/* At exit, after mock_component_drain: free the codes. */
void
mock_component_shutdown(void)
{
	struct mock_code *c;

	while ((c = TAILQ_FIRST(&mock_code_fifo)) != NULL)
		mock_code_free(c);
	mock_hash_free(mock_codes);
}

/* Whether url is an event URL the mock can POST to (http:// only). */
int
mock_component_url_check(const char *url, char **cause)
{
	struct evhttp_uri *uri;
	const char *scheme, *host;
	int ok;

	if ((uri = evhttp_uri_parse(url)) == NULL) {
		*cause = xstrdup("not a URL");
		return (-1);
	}
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	ok = scheme != NULL && strcasecmp(scheme, "http") == 0 &&
	    host != NULL && *host != '\0';
	evhttp_uri_free(uri);
	if (!ok) {
		*cause = xstrdup("the event URL must be "
		    "http://HOST[:PORT]/...");
		return (-1);
	}
	return (0);
}

/*
 * Add a component or change an existing one's secret, token and key.
 * 0, or an HTTP status with *cause.
 */
int
mock_component_add(const char *appid, const char *secret, const char *token,
    const char *aes_key, char **cause)
{
	unsigned char key[WXCRYPT_KEY_LEN];
	struct mock_account *a;
	struct mock_component *c;

	if (!mock_appid_valid(appid)) {
		*cause = xstrdup("appid must be 1-64 characters of "
		    "[A-Za-z0-9_-]");
		return (400);
	}
	if (secret == NULL || *secret == '\0' ||
	    strlen(secret) > MOCK_SECRET_MAX ||
	    token == NULL || *token == '\0' ||
	    strlen(token) > MOCK_SECRET_MAX) {
		*cause = xstrdup("secret and token must be 1-256 bytes");
		return (400);
	}
	if (aes_key == NULL || wxcrypt_key_decode(aes_key, key) != 0) {
		*cause = xstrdup("the EncodingAESKey must be 43 characters "
		    "of [A-Za-z0-9]");
		return (400);
	}
	if ((a = mock_account_find(appid)) != NULL) {
		if (a->kind != MOCK_COMPONENT) {
			*cause = xstrdup("appid is not a component");
			OPENSSL_cleanse(key, sizeof key);
			return (409);
		}
		freezero_str(a->secret);
		a->secret = xstrdup(secret);
	} else {
		if ((a = mock_account_new(appid, MOCK_COMPONENT,
		    secret)) == NULL) {
			*cause = xstrdup("too many accounts");
			OPENSSL_cleanse(key, sizeof key);
			return (503);
		}
		a->component = xcalloc(1, sizeof *a->component);
	}
	c = a->component;
	freezero_str(c->token);
	c->token = xstrdup(token);
	memcpy(c->key, key, sizeof c->key);
	OPENSSL_cleanse(key, sizeof key);
	return (0);
}

/* Issue a new verify ticket; the ring forgets the oldest. */
static const char *
mock_ticket_new(struct mock_account *comp, time_t now)
{
	struct mock_component *c = comp->component;
	struct mock_ticket *t;

	t = &c->tickets[c->ticket_next++ % MOCK_TICKETS];
	memcpy(t->value, MOCK_LIT(MOCK_TICKET_PREFIX));
	mock_random_b64url(t->value + sizeof MOCK_TICKET_PREFIX - 1,
	    MOCK_TICKET_BYTES);
	t->issued = now;
	mock_issued_add("component_verify_ticket", comp->appid, t->value, now);
	return (t->value);
}

/* Whether value is a ticket of comp issued less than 12 hours ago. */
static int
mock_ticket_valid(struct mock_account *comp, const char *value, time_t now)
{
	struct mock_ticket *t;
	u_int i;

	for (i = 0; i < MOCK_TICKETS; i++) {
		t = &comp->component->tickets[i];
		if (t->issued != 0 && now - t->issued < MOCK_TICKET_LIFE &&
		    strcmp(t->value, value) == 0)
			return (1);
	}
	return (0);
}

/* Drop the codes that have expired; they are in expiry order. */
static void
mock_code_prune(time_t now)
{
	struct mock_code *c;

	while ((c = TAILQ_FIRST(&mock_code_fifo)) != NULL &&
	    c->expires_at <= now)
		mock_code_free(c);
}

/* A new authorization code for auth; NULL if the table is full. */
static struct mock_code *
mock_code_new(struct mock_account *auth, time_t now)
{
	struct mock_code *c;

	mock_code_prune(now);
	if (mock_hash_count(mock_codes) >= MOCK_MAX_CODES)
		return (NULL);
	c = xcalloc(1, sizeof *c);
	do {
		memcpy(c->value, MOCK_LIT(MOCK_CODE_PREFIX));
		mock_random_b64url(c->value + sizeof MOCK_CODE_PREFIX - 1,
		    MOCK_CODE_BYTES);
	} while (mock_hash_find(mock_codes, c->value) != NULL);
	c->auth = auth;
	c->expires_at = now + MOCK_CODE_LIFE;
	mock_issued_add("authorization_code", auth->appid, c->value, now);
	mock_hash_insert(mock_codes, c->value, c);
	TAILQ_INSERT_TAIL(&mock_code_fifo, c, entry);
	return (c);
}

/* A fresh refresh token for an authorizer; the old one stops working. */
static void
mock_authorizer_new_refresh(struct mock_account *a)
{
	memcpy(a->refresh_token, MOCK_LIT(MOCK_REFRESH_PREFIX));
	mock_random_b64url(a->refresh_token + sizeof MOCK_REFRESH_PREFIX - 1,
	    MOCK_REFRESH_BYTES);
	mock_issued_add("authorizer_refresh_token", a->appid, a->refresh_token,
	    time(NULL));
}

/* Append an authorizer to its platform's list. */
static void
mock_authorizer_list_add(struct mock_account *a)
{
	struct mock_component *c = a->platform->component;

	if (c->nlist == c->list_alloc) {
		c->list_alloc = c->list_alloc == 0 ? 64 : c->list_alloc * 2;
		c->list = xreallocarray(c->list, c->list_alloc,
		    sizeof *c->list);
	}
	a->list_index = c->nlist;
	c->list[c->nlist++] = a;
}

/* Take an authorizer off its platform's list, keeping the order. */
static void
mock_authorizer_list_remove(struct mock_account *a)
{
	struct mock_component *c = a->platform->component;
	size_t i;

	memmove(&c->list[a->list_index], &c->list[a->list_index + 1],
	    (c->nlist - a->list_index - 1) * sizeof *c->list);
	c->nlist--;
	for (i = a->list_index; i < c->nlist; i++)
		c->list[i]->list_index = i;
}

/*
 * The authorizer aid of comp, created or re-activated (with a new refresh
 * token) if needed: an authorization. NULL and an HTTP status with *cause.
 */
static struct mock_account *
mock_authorizer_authorize(struct mock_account *comp, const char *aid,
    time_t now, int *status, const char **cause)
{
	struct mock_account *a;

	if (!mock_appid_valid(aid)) {
		*status = 400;
		*cause = "authorizer_appid must be 1-64 characters of "
		    "[A-Za-z0-9_-]";
		return (NULL);
	}
	if ((a = mock_account_find(aid)) != NULL &&
	    (a->kind != MOCK_AUTHORIZER || a->platform != comp)) {
		*status = 409;
		*cause = "authorizer_appid is another account or another "
		    "component's authorizer";
		return (NULL);
	}
	if (a == NULL) {
		a = mock_account_new(aid, MOCK_AUTHORIZER, NULL);
		if (a == NULL) {
			*status = 503;
			*cause = "too many authorizers";
			return (NULL);
		}
		a->platform = comp;
		a->revoked = 1;
	}
	if (a->revoked) {
		a->revoked = 0;
		mock_authorizer_new_refresh(a);
		mock_authorizer_list_add(a);
	}
	a->auth_time = now;
	return (a);
}

/* The merchant revoked the platform: 61003 on refresh, 40001 on tokens. */
static void
mock_authorizer_revoke(struct mock_account *a)
{
	mock_token_kill_all(a);
	if (!a->revoked) {
		a->revoked = 1;
		mock_authorizer_list_remove(a);
	}
}

/*
 * The component a call's token belongs to, and the call's body; NULL after
 * answering.
 */
static struct mock_account *
mock_component_caller(struct mock_call *call, json_t **bodyp)
{
	const char *value, *appid;
	struct mock_token *t;
	json_t *body;
	int error;

	*bodyp = NULL;
	/* The SDKs say component_access_token=, newer docs access_token=. */
	if ((value = mock_call_param(call, "component_access_token")) == NULL)
		value = mock_call_param(call, "access_token");
	if (value == NULL || *value == '\0') {
		mock_reply_error(call, 41001, "component_access_token missing");
		return (NULL);
	}
	if ((error = mock_token_check(value, call->now, &t)) != 0) {
		mock_reply_error(call, error, error == 42001 ?
		    "component_access_token expired" :
		    "invalid credential, component_access_token is invalid or "
		    "not latest");
		return (NULL);
	}
	if (t->owner->kind != MOCK_COMPONENT) {
		mock_reply_error(call, 40001, "invalid credential, not a "
		    "component_access_token");
		return (NULL);
	}
	if ((body = mock_call_body(call)) == NULL)
		return (NULL);
	if ((appid = mock_json_str(body, "component_appid")) == NULL) {
		json_decref(body);
		mock_reply_error(call, 47001, "data format error: "
		    "component_appid missing");
		return (NULL);
	}
	if (strcmp(appid, t->owner->appid) != 0) {
		json_decref(body);
		mock_reply_error(call, 61011, "invalid component: the token "
		    "belongs to another component");
		return (NULL);
	}
	*bodyp = body;
	return (t->owner);
}

/*
 * Find the component of a body's component_appid and check its secret
 * under secret_key; NULL after answering.
 */
static struct mock_account *
mock_component_login(struct mock_call *call, json_t *body,
    const char *secret_key)
{
	const char *appid, *secret;
	struct mock_account *a;

	if ((appid = mock_json_str(body, "component_appid")) == NULL) {
		mock_reply_error(call, 47001, "data format error: "
		    "component_appid missing");
		return (NULL);
	}
	if ((a = mock_account_find(appid)) == NULL) {
		mock_reply_error(call, 40013, "invalid appid");
		return (NULL);
	}
	if (a->kind != MOCK_COMPONENT) {
		mock_reply_error(call, 61011, "invalid component");
		return (NULL);
	}
	if ((secret = mock_json_str(body, secret_key)) == NULL ||
	    *secret == '\0') {
		mock_reply_error(call, 41004, "appsecret missing");
		return (NULL);
	}
	if (strlen(secret) != strlen(a->secret) ||
	    CRYPTO_memcmp(secret, a->secret, strlen(secret)) != 0) {
		mock_reply_error(call, 40125, "invalid appsecret");
		return (NULL);
	}
	return (a);
}

/* POST /cgi-bin/component/api_component_token */
void
mock_component_token(struct mock_call *call)
{
	struct mock_account *a;
	struct mock_token *t;
	const char *ticket;
	json_t *body;

	if ((body = mock_call_body(call)) == NULL)
		return;
	if ((a = mock_component_login(call, body,
	    "component_appsecret")) == NULL)
		goto out;
	if ((ticket = mock_json_str(body, "component_verify_ticket")) == NULL ||
	    !mock_ticket_valid(a, ticket, call->now)) {
		mock_reply_error(call, 61006, "component ticket is invalid");
		goto out;
	}
	if (mock_token_issue(a, MOCK_SLOT_CLASSIC, MOCK_ISSUE_ROTATE, call->now,
	    &t) != 0) {
		mock_reply_busy(call, "token table full");
		goto out;
	}
	mock_reply_json(call, json_pack("{s:s,s:I}", "component_access_token",
	    t->value, "expires_in", (json_int_t)(t->expires_at - call->now)));
out:
	json_decref(body);
}

/* func_info as WeChat writes it, for the permission set ids configured. */
static json_t *
mock_component_func_info(void)
{
	json_t *list = json_array(), *id;
	size_t i;

	if (mock_conf.func_info == NULL)
		return (list);
	json_array_foreach(mock_conf.func_info, i, id)
		json_array_append_new(list, json_pack("{s:{s:I}}",
		    "funcscope_category", "id", json_integer_value(id)));
	return (list);
}

/* POST /cgi-bin/component/api_query_auth: an authorization code for tokens. */
void
mock_component_query_auth(struct mock_call *call)
{
	struct mock_account *comp, *a;
	struct mock_token *t;
	struct mock_code *c;
	const char *value;
	json_t *body;

	if ((comp = mock_component_caller(call, &body)) == NULL)
		return;
	if ((value = mock_json_str(body, "authorization_code")) == NULL) {
		mock_reply_error(call, 47001, "data format error: "
		    "authorization_code missing");
		goto out;
	}
	c = mock_hash_find(mock_codes, value);
	if (c == NULL || c->auth->platform != comp ||
	    call->now >= c->expires_at) {
		mock_reply_error(call, 61010, "code is expired or invalid");
		goto out;
	}
	a = c->auth;
	mock_code_free(c);
	if (a->revoked) {
		mock_reply_error(call, 61003, "component is not authorized by "
		    "this account");
		goto out;
	}
	if (mock_token_issue(a, MOCK_SLOT_CLASSIC, MOCK_ISSUE_ROTATE, call->now,
	    &t) != 0) {
		mock_reply_busy(call, "token table full");
		goto out;
	}
	if (mock_conf.func_info != NULL &&
	    json_array_size(mock_conf.func_info) == 0) {
		/* WeChat: no API permission granted, no tokens. */
		mock_reply_json(call, json_pack("{s:{s:s,s:[]}}",
		    "authorization_info", "authorizer_appid", a->appid,
		    "func_info"));
		goto out;
	}
	mock_reply_json(call, json_pack("{s:{s:s,s:s,s:I,s:s,s:o}}",
	    "authorization_info",
	    "authorizer_appid", a->appid,
	    "authorizer_access_token", t->value,
	    "expires_in", (json_int_t)(t->expires_at - call->now),
	    "authorizer_refresh_token", a->refresh_token,
	    "func_info", mock_component_func_info()));
out:
	json_decref(body);
}

/*
 * An authorizer of comp's bulk range (PREFIX and MOCK_BULK_DIGITS digits
 * below the count), made now, at its first token call, with the range's
 * refresh token (MOCK_BULK_REFRESH and its appid); NULL if aid is none.
 * A million authorizers cost nothing until they are used.
 */
static struct mock_account *
mock_bulk_make(struct mock_account *comp, const char *aid, time_t now)
{
	struct mock_component *c = comp->component;
	struct mock_account *a;
	size_t plen;
	const char *d;
	unsigned long i;
	char *end;

	if (c == NULL || c->bulk_prefix == NULL)
		return (NULL);
	plen = strlen(c->bulk_prefix);
	if (strncmp(aid, c->bulk_prefix, plen) != 0 ||
	    strlen(d = aid + plen) != MOCK_BULK_DIGITS ||
	    strspn(d, "0123456789") != MOCK_BULK_DIGITS)
		return (NULL);
	i = strtoul(d, &end, 10);
	if (i >= c->bulk_count ||
	    (a = mock_account_new(aid, MOCK_AUTHORIZER, NULL)) == NULL)
		return (NULL);
	a->platform = comp;
	snprintf(a->refresh_token, sizeof a->refresh_token, "%s%s",
	    MOCK_BULK_REFRESH, aid);
	a->auth_time = now;
	return (a);
}

/* POST /cgi-bin/component/api_authorizer_token: refresh an authorizer. */
void
mock_component_authorizer_token(struct mock_call *call)
{
	struct mock_account *comp, *a;
	struct mock_token *t;
	const char *aid, *refresh;
	json_t *body;

	if ((comp = mock_component_caller(call, &body)) == NULL)
		return;
	if ((aid = mock_json_str(body, "authorizer_appid")) == NULL) {
		mock_reply_error(call, 47001, "data format error: "
		    "authorizer_appid missing");
		goto out;
	}
	if ((refresh = mock_json_str(body, "authorizer_refresh_token")) ==
	    NULL) {
		mock_reply_error(call, 47001, "data format error: "
		    "authorizer_refresh_token missing");
		goto out;
	}
	if ((a = mock_account_find(aid)) == NULL)
		a = mock_bulk_make(comp, aid, call->now);
	if (a == NULL || a->kind != MOCK_AUTHORIZER || a->platform != comp ||
	    a->revoked) {
		mock_reply_error(call, 61003, "component is not authorized by "
		    "this account");
		goto out;
	}
	if (strlen(refresh) != strlen(a->refresh_token) ||
	    CRYPTO_memcmp(refresh, a->refresh_token, strlen(refresh)) != 0) {
		mock_reply_error(call, 61023, "refresh_token is invalid");
		goto out;
	}
	if (mock_token_issue(a, MOCK_SLOT_CLASSIC, MOCK_ISSUE_ROTATE, call->now,
	    &t) != 0) {
		mock_reply_busy(call, "token table full");
		goto out;
	}
	/* Rotate only once the call cannot fail any more. */
	if (mock_conf.rotate_refresh_token)
		mock_authorizer_new_refresh(a);
	mock_reply_json(call, json_pack("{s:s,s:I,s:s}",
	    "authorizer_access_token", t->value,
	    "expires_in", (json_int_t)(t->expires_at - call->now),
	    "authorizer_refresh_token", a->refresh_token));
out:
	json_decref(body);
}

/*
 * POST /cgi-bin/component/api_get_authorizer_list: a page of authorizers, the
 * authorized ones then the bulk range (each with its refresh token: the
 * range's until it is made, then its own).
 */
void
mock_component_authorizer_list(struct mock_call *call)
{
	struct mock_account *comp, *a;
	struct mock_component *c;
	json_t *body, *jo, *jc, *list;
	json_int_t offset, count, i, total;
	char aid[MOCK_APPID_MAX + 1], rt[MOCK_CRED_MAX];

	if ((comp = mock_component_caller(call, &body)) == NULL)
		return;
	jo = json_object_get(body, "offset");
	jc = json_object_get(body, "count");
	if (!json_is_integer(jo) || (offset = json_integer_value(jo)) < 0) {
		mock_reply_error(call, 47001, "data format error: offset must "
		    "be an integer >= 0");
		goto out;
	}
	if (!json_is_integer(jc) || (count = json_integer_value(jc)) < 1 ||
	    count > MOCK_LIST_MAX) {
		mock_reply_error(call, 47001, "data format error: count must "
		    "be an integer 1..%d", MOCK_LIST_MAX);
		goto out;
	}
	c = comp->component;
	total = (json_int_t)c->nlist +
	    (c->bulk_prefix != NULL ? (json_int_t)c->bulk_count : 0);
	list = json_array();
	for (i = offset; i < offset + count && i < total; i++) {
		if ((size_t)i < c->nlist) {
			a = c->list[i];
			json_array_append_new(list, json_pack("{s:s,s:s,s:I}",
			    "authorizer_appid", a->appid,
			    "refresh_token", a->refresh_token,
			    "auth_time", (json_int_t)a->auth_time));
			continue;
		}
		snprintf(aid, sizeof aid, "%s%0*lld", c->bulk_prefix,
		    MOCK_BULK_DIGITS, (long long)(i - (json_int_t)c->nlist));
		if ((a = mock_account_find(aid)) != NULL)
			snprintf(rt, sizeof rt, "%s", a->refresh_token);
		else
			snprintf(rt, sizeof rt, "%s%s", MOCK_BULK_REFRESH, aid);
		json_array_append_new(list, json_pack("{s:s,s:s,s:I}",
		    "authorizer_appid", aid, "refresh_token", rt,
		    "auth_time", (json_int_t)0));
	}
	mock_reply_json(call, json_pack("{s:I,s:o}", "total_count",
	    total, "list", list));
out:
	json_decref(body);
}

/* The decrypted XML of a component_verify_ticket event. */
static char *
mock_xml_ticket(struct mock_account *comp, const char *ticket, time_t now)
{
	char *xml;

	xasprintf(&xml, "<xml><AppId><![CDATA[%s]]></AppId>"
	    "<CreateTime>%lld</CreateTime>"
	    "<InfoType><![CDATA[component_verify_ticket]]></InfoType>"
	    "<ComponentVerifyTicket><![CDATA[%s]]></ComponentVerifyTicket>"
	    "</xml>", comp->appid, (long long)now, ticket);
	return (xml);
}

/* A new pre_auth_code of comp in pre (MOCK_CRED_MAX bytes), recorded. */
static void
mock_preauth_new(struct mock_account *comp, time_t now, char *pre)
{
	memcpy(pre, MOCK_LIT(MOCK_PREAUTH_PREFIX));
	mock_random_b64url(pre + sizeof MOCK_PREAUTH_PREFIX - 1, 32);
	mock_issued_add("pre_auth_code", comp->appid, pre, now);
}

/* The decrypted XML of an authorized or updateauthorized event. */
static char *
mock_xml_authorized(struct mock_account *comp, const char *type,
    struct mock_code *c, time_t now)
{
	char pre[MOCK_CRED_MAX], *xml;

	mock_preauth_new(comp, now, pre);
	xasprintf(&xml, "<xml><AppId><![CDATA[%s]]></AppId>"
	    "<CreateTime>%lld</CreateTime>"
	    "<InfoType><![CDATA[%s]]></InfoType>"
	    "<AuthorizerAppid><![CDATA[%s]]></AuthorizerAppid>"
	    "<AuthorizationCode><![CDATA[%s]]></AuthorizationCode>"
	    "<AuthorizationCodeExpiredTime>%lld</AuthorizationCodeExpiredTime>"
	    "<PreAuthCode><![CDATA[%s]]></PreAuthCode></xml>", comp->appid,
	    (long long)now, type, c->auth->appid, c->value,
	    (long long)c->expires_at, pre);
	return (xml);
}

/* The decrypted XML of an unauthorized event. */
static char *
mock_xml_unauthorized(struct mock_account *comp, struct mock_account *a,
    time_t now)
{
	char *xml;

	xasprintf(&xml, "<xml><AppId><![CDATA[%s]]></AppId>"
	    "<CreateTime>%lld</CreateTime>"
	    "<InfoType><![CDATA[unauthorized]]></InfoType>"
	    "<AuthorizerAppid><![CDATA[%s]]></AuthorizerAppid></xml>",
	    comp->appid, (long long)now, a->appid);
	return (xml);
}

/* Free an event POST and its connection. */
static void
mock_emit_free(struct mock_emit *e)
{
	if (e->conn != NULL)
		evhttp_connection_free(e->conn);
	if (e->finish_ev != NULL)
		event_free(e->finish_ev);
	json_decref(e->answer);
	free(e->reply);
	free(e->where);
	free(e);
}

/* The receiver's reply as a JSON string (non-ASCII as '?' if not UTF-8). */
static json_t *
mock_emit_reply_json(struct mock_emit *e)
{
	json_t *s;
	size_t i;

	if (e->reply == NULL)
		return (json_null());
	if ((s = json_stringn(e->reply, e->replylen)) != NULL)
		return (s);
	for (i = 0; i < e->replylen; i++) {
		if ((unsigned char)e->reply[i] >= 0x80)
			e->reply[i] = '?';
	}
	return (json_stringn(e->reply, e->replylen));
}

/* After the POST: answer the waiting control call, or log a failure. */
static void
mock_emit_finish(evutil_socket_t fd, short events, void *arg)
{
	struct mock_emit *e = arg;
	int ok = e->status >= 200 && e->status < 300;

	(void)fd;
	(void)events;
	TAILQ_REMOVE(&mock_emits, e, entry);
	mock_nemits--;
	if (ok)
		mock_stats.events_sent++;
	else
		mock_stats.events_failed++;
	if (e->ctl != NULL) {
		json_object_set_new(e->answer, "http_status",
		    json_integer(e->status));
		json_object_set_new(e->answer, "reply",
		    mock_emit_reply_json(e));
		if (e->error != NULL)
			json_object_set_new(e->answer, "error",
			    json_string(e->error));
		mock_ctl_reply(e->ctl, 200, json_incref(e->answer));
	} else if (!ok) {
		if (e->error != NULL)
			log_warnx("event POST to %s: %s", e->where, e->error);
		else
			log_warnx("event POST to %s: HTTP %d", e->where,
			    e->status);
	}
	mock_emit_free(e);
}

/* Why an event POST failed, from libevent's error. */
static void
mock_emit_error(enum evhttp_request_error error, void *arg)
{
	struct mock_emit *e = arg;

	switch (error) {
	case EVREQ_HTTP_TIMEOUT:
		e->error = "timeout";
		break;
	case EVREQ_HTTP_EOF:
		e->error = "connection closed before a reply";
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		e->error = "invalid HTTP reply";
		break;
	case EVREQ_HTTP_BUFFER_ERROR:
		e->error = "connection failed";
		break;
	case EVREQ_HTTP_REQUEST_CANCEL:
		e->error = "cancelled";
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		e->error = "reply too long";
		break;
	}
}

/* The POST completed or failed; finish outside libevent's callback. */
static void
mock_emit_done(struct evhttp_request *req, void *arg)
{
	struct mock_emit *e = arg;
	struct timeval tv = { 0, 0 };
	struct evbuffer *in;
	size_t len;

	if (e->done)
		return;
	e->done = 1;
	if (req != NULL)
		e->status = evhttp_request_get_response_code(req);
	if (e->status != 0) {
		in = evhttp_request_get_input_buffer(req);
		len = evbuffer_get_length(in);
		if (len > MOCK_EMIT_REPLY_MAX)
			len = MOCK_EMIT_REPLY_MAX;
		e->reply = xmalloc(len + 1);
		evbuffer_copyout(in, e->reply, len);
		e->reply[len] = '\0';
		e->replylen = len;
	} else if (e->error == NULL)
		e->error = "connection failed";
	evtimer_add(e->finish_ev, &tv);
}

/*
 * Encrypt, sign and POST an event to url. When ctl is set, the control call
 * is answered with answer (plus http_status and reply) once the POST ends.
 * -1 and *cause if it cannot start; the caller answers then.
 */
static int
mock_emit_start(struct mock_account *comp, const char *url, const char *xml,
    time_t now, struct evhttp_request *ctl, json_t *answer, const char **cause)
{
	struct mock_component *c = comp->component;
	struct evhttp_uri *uri = NULL;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct mock_emit *e;
	const char *host, *path, *query;
	char ts[32], nonce[16], sig[WXCRYPT_SIG_LEN + 1];
	char msig[WXCRYPT_SIG_LEN + 1], *enc = NULL, *target, *hosthdr;
	char *chost;
	uint64_t r;
	int port;

	if (mock_nemits >= MOCK_MAX_EMITS) {
		*cause = "too many event POSTs in flight";
		return (-1);
	}
	if ((uri = evhttp_uri_parse(url)) == NULL ||
	    (host = evhttp_uri_get_host(uri)) == NULL || *host == '\0') {
		evhttp_uri_free(uri);
		*cause = "bad event URL";
		return (-1);
	}
	if ((enc = wxcrypt_encrypt(c->key, comp->appid, xml, strlen(xml),
	    NULL)) == NULL) {
		evhttp_uri_free(uri);
		*cause = "encryption failed";
		return (-1);
	}
	if ((port = evhttp_uri_get_port(uri)) == -1)
		port = 80;
	if ((path = evhttp_uri_get_path(uri)) == NULL || *path == '\0')
		path = "/";
	query = evhttp_uri_get_query(uri);

	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		fatalx("RAND_bytes failed");
	snprintf(ts, sizeof ts, "%lld", (long long)now);
	snprintf(nonce, sizeof nonce, "%llu",
	    (unsigned long long)(r % 9000000000ULL + 1000000000ULL));
	wxcrypt_signature(c->token, ts, nonce, NULL, sig);
	wxcrypt_signature(c->token, ts, nonce, enc, msig);
	xasprintf(&target, "%s?%s%ssignature=%s&timestamp=%s&nonce=%s"
	    "&encrypt_type=aes&msg_signature=%s", path,
	    query != NULL ? query : "", query != NULL && *query != '\0' ?
	    "&" : "", sig, ts, nonce, msig);
	/* An IPv6 host keeps its brackets in the URL, not for connecting. */
	xasprintf(&hosthdr, "%s:%d", host, port);
	if (host[0] == '[' && strlen(host) > 2)
		chost = xstrndup(host + 1, strlen(host) - 2);
	else
		chost = xstrdup(host);

	e = xcalloc(1, sizeof *e);
	e->ctl = ctl;
	e->answer = json_incref(answer);
	e->where = hosthdr;
	e->finish_ev = evtimer_new(mock_base, mock_emit_finish, e);
	e->conn = evhttp_connection_base_new(mock_base, NULL, chost,
	    (unsigned short)port);
	free(chost);
	if (e->finish_ev == NULL || e->conn == NULL)
		fatalx("cannot create an HTTP client connection");
	evhttp_connection_set_timeout(e->conn, MOCK_EMIT_TIMEOUT);
	evhttp_connection_set_max_body_size(e->conn, MOCK_EMIT_REPLY_MAX);
	TAILQ_INSERT_TAIL(&mock_emits, e, entry);
	mock_nemits++;

	if ((req = evhttp_request_new(mock_emit_done, e)) == NULL)
		fatalx("evhttp_request_new failed");
	evhttp_request_set_error_cb(req, mock_emit_error);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", hosthdr);
	evhttp_add_header(h, "Content-Type", "text/xml");
	evhttp_add_header(h, "User-Agent", "wxpush-mock/" PACKAGE_VERSION);
	evhttp_add_header(h, "Connection", "close");
	evbuffer_add_printf(evhttp_request_get_output_buffer(req),
	    "<xml><AppId><![CDATA[%s]]></AppId><Encrypt><![CDATA[%s]]>"
	    "</Encrypt></xml>", comp->appid, enc);
	/* On failure libevent has freed req; finish once either way. */
	if (evhttp_make_request(e->conn, req, EVHTTP_REQ_POST, target) != 0)
		mock_emit_done(NULL, e);

	free(target);
	free(enc);
	evhttp_uri_free(uri);
	return (0);
}

/* POST /cgi-bin/component/api_start_push_ticket: push a new ticket. */
void
mock_component_start_push(struct mock_call *call)
{
	struct mock_account *a;
	const char *ticket, *cause;
	json_t *body;
	char *xml;

	if ((body = mock_call_body(call)) == NULL)
		return;
	if ((a = mock_component_login(call, body, "component_secret")) == NULL)
		goto out;
	ticket = mock_ticket_new(a, call->now);
	if (mock_conf.event_url == NULL)
		log_warnx("%s: no event URL, ticket not pushed", a->appid);
	else {
		xml = mock_xml_ticket(a, ticket, call->now);
		if (mock_emit_start(a, mock_conf.event_url, xml, call->now,
		    NULL, NULL, &cause) != 0)
			log_warnx("%s: ticket not pushed: %s", a->appid, cause);
		free(xml);
	}
	mock_reply_ok(call);
out:
	json_decref(body);
}

/*
 * POST /cgi-bin/component/api_create_preauthcode: a code for the authorization
 * page. Any number may be outstanding; the mock does not check them later.
 */
void
mock_component_preauthcode(struct mock_call *call)
{
	struct mock_account *comp;
	char pre[MOCK_CRED_MAX];
	json_t *body;

	if ((comp = mock_component_caller(call, &body)) == NULL)
		return;
	mock_preauth_new(comp, call->now, pre);
	mock_reply_json(call, json_pack("{s:s,s:i}", "pre_auth_code", pre,
	    "expires_in", MOCK_PREAUTH_LIFE));
	json_decref(body);
}

/* The component named by a control body; NULL after answering. */
static struct mock_account *
mock_component_ctl_find(struct evhttp_request *req, json_t *body)
{
	struct mock_account *a;
	const char *appid;

	if ((appid = mock_json_str(body, "component_appid")) == NULL) {
		mock_ctl_error(req, 400, "component_appid missing");
		return (NULL);
	}
	a = mock_account_find(appid);
	if (a == NULL || a->kind != MOCK_COMPONENT) {
		mock_ctl_error(req, 404, "unknown component_appid");
		return (NULL);
	}
	return (a);
}

/*
 * POST /mock/component/event: create a ticket, an authorization or a
 * revocation, POST the encrypted event and answer once the receiver has.
 */
void
mock_component_ctl_event(struct evhttp_request *req, json_t *body)
{
	static const char *types[] = { "component_verify_ticket", "authorized",
	    "updateauthorized", "unauthorized" };
	struct mock_account *comp, *a;
	struct mock_code *c;
	const char *type, *aid = NULL, *url, *cause = NULL;
	char *ucause = NULL, *xml = NULL;
	json_t *answer;
	time_t now = time(NULL);
	size_t i;
	int status;

	if ((comp = mock_component_ctl_find(req, body)) == NULL)
		return;
	type = mock_json_str(body, "info_type");
	for (i = 0; type != NULL && i < sizeof types / sizeof types[0]; i++) {
		if (strcmp(type, types[i]) == 0)
			break;
	}
	if (type == NULL || i == sizeof types / sizeof types[0]) {
		mock_ctl_error(req, 400, "info_type must be "
		    "component_verify_ticket, authorized, updateauthorized or "
		    "unauthorized");
		return;
	}
	if (i != 0 && (aid = mock_json_str(body, "authorizer_appid")) == NULL) {
		mock_ctl_error(req, 400, "authorizer_appid missing");
		return;
	}
	if (json_object_get(body, "url") != NULL) {
		if ((url = mock_json_str(body, "url")) == NULL ||
		    mock_component_url_check(url, &ucause) != 0) {
			mock_ctl_error(req, 400, "url: %s", ucause != NULL ?
			    ucause : "not a string");
			free(ucause);
			return;
		}
	} else
		url = mock_conf.event_url;
	if (url != NULL && mock_nemits >= MOCK_MAX_EMITS) {
		mock_ctl_error(req, 503, "too many event POSTs in flight");
		return;
	}

	answer = json_object();
	if (i == 0) {
		const char *ticket = mock_ticket_new(comp, now);

		json_object_set_new(answer, "ticket", json_string(ticket));
		xml = mock_xml_ticket(comp, ticket, now);
	} else if (i == 3) {
		a = mock_account_find(aid);
		if (a == NULL || a->kind != MOCK_AUTHORIZER ||
		    a->platform != comp) {
			json_decref(answer);
			mock_ctl_error(req, 404, "no such authorizer of this "
			    "component");
			return;
		}
		mock_authorizer_revoke(a);
		json_object_set_new(answer, "authorizer_appid",
		    json_string(a->appid));
		xml = mock_xml_unauthorized(comp, a, now);
	} else {
		if ((a = mock_authorizer_authorize(comp, aid, now, &status,
		    &cause)) == NULL) {
			json_decref(answer);
			mock_ctl_error(req, status, "%s", cause);
			return;
		}
		if ((c = mock_code_new(a, now)) == NULL) {
			json_decref(answer);
			mock_ctl_error(req, 503, "too many authorization "
			    "codes");
			return;
		}
		json_object_set_new(answer, "authorizer_appid",
		    json_string(a->appid));
		json_object_set_new(answer, "authorization_code",
		    json_string(c->value));
		xml = mock_xml_authorized(comp, type, c, now);
	}

	if (url == NULL) {
		cause = "no event URL: give url or start with --event-url";
	} else if (mock_emit_start(comp, url, xml, now, req, answer,
	    &cause) == 0) {
		/* Answered when the POST completes. */
		free(xml);
		json_decref(answer);
		return;
	}
	json_object_set_new(answer, "http_status", json_integer(0));
	json_object_set_new(answer, "reply", json_null());
	json_object_set_new(answer, "error", json_string(cause));
	mock_ctl_reply(req, 200, answer);
	free(xml);
}

/*
 * POST /mock/component/bulk: count authorizers PREFIX0000000 ... authorized
 * at once, each refresh token MOCK_BULK_REFRESH + its appid (for a test that
 * writes them into the daemon's store). They are made at their first token
 * call, and listed by api_get_authorizer_list after the authorized ones. A
 * new range replaces the last.
 */
void
mock_component_ctl_bulk(struct evhttp_request *req, json_t *body)
{
	struct mock_account *comp;
	const char *prefix;
	json_t *jn;
	json_int_t n;

	if ((comp = mock_component_ctl_find(req, body)) == NULL)
		return;
	prefix = mock_json_str(body, "prefix");
	jn = json_object_get(body, "count");
	if (prefix == NULL || strlen(prefix) + MOCK_BULK_DIGITS >
	    MOCK_APPID_MAX || !mock_appid_valid(prefix)) {
		mock_ctl_error(req, 400, "prefix must be 1-%d characters of "
		    "[A-Za-z0-9_-]", MOCK_APPID_MAX - MOCK_BULK_DIGITS);
		return;
	}
	if (!json_is_integer(jn) || (n = json_integer_value(jn)) < 1 ||
	    n > MOCK_BULK_MAX) {
		mock_ctl_error(req, 400, "count must be an integer 1..%d",
		    MOCK_BULK_MAX);
		return;
	}
	free(comp->component->bulk_prefix);
	comp->component->bulk_prefix = xstrdup(prefix);
	comp->component->bulk_count = (uint32_t)n;
	mock_ctl_reply(req, 200, json_pack("{s:s,s:I,s:s}", "prefix", prefix,
	    "count", n, "refresh_token_prefix", MOCK_BULK_REFRESH));
}

/* POST /mock/component/code: authorize without an event, answer the code. */
void
mock_component_ctl_code(struct evhttp_request *req, json_t *body)
{
	struct mock_account *comp, *a;
	struct mock_code *c;
	const char *aid, *cause;
	time_t now = time(NULL);
	int status;

	if ((comp = mock_component_ctl_find(req, body)) == NULL)
		return;
	if ((aid = mock_json_str(body, "authorizer_appid")) == NULL) {
		mock_ctl_error(req, 400, "authorizer_appid missing");
		return;
	}
	if ((a = mock_authorizer_authorize(comp, aid, now, &status,
	    &cause)) == NULL) {
		mock_ctl_error(req, status, "%s", cause);
		return;
	}
	if ((c = mock_code_new(a, now)) == NULL) {
		mock_ctl_error(req, 503, "too many authorization codes");
		return;
	}
	mock_ctl_reply(req, 200, json_pack("{s:s,s:s,s:i}",
	    "authorization_code", c->value, "authorizer_appid", a->appid,
	    "expires_in", MOCK_CODE_LIFE));
}
