/*
 * The JS-SDK's jsapi_ticket: a token source of its own, one credential per
 * appid that asked for a signature, keyed "APPID/jsapi" next to the appid's
 * access token credential "APPID" (so cred.c, the store and Redis keep,
 * persist and share it like any token), fetched with that access token. A
 * 40001/40014/42001 from getticket is the access token's refusal: it is
 * reported to the access token's credential (compare-and-refresh) and the
 * ticket retries after a short backoff. The ticket never leaves the daemon:
 * jssdk_sign answers with a signature made from it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "wxpushd.h"

#define JSAPI_URL_MAX		2048	/* bytes of a page URL */
#define JSAPI_NONCE_LEN		16
#define JSAPI_WAITS_MAX		10000	/* signatures waiting for one ticket */

/* A jssdk_sign waiting for its ticket. */
struct jsapi_wait {
	struct request		*req;
	struct jsapi		*j;
	char			*url;		/* without its #fragment */
	struct event		*deadline;
	TAILQ_ENTRY(jsapi_wait)	 entry;
};

/* The source's data of one ticket credential. */
struct jsapi {
	char			 appid[WX_APPID_MAX + 1];	/* the account's */
	struct cred		*cred;
	uint64_t		 parent_gen;	/* access token of the fetch */
	TAILQ_HEAD(, jsapi_wait) waits;
	size_t			 nwaits;
};

static enum cred_fetch	jsapi_fetch(struct cred *, void *, int,
			    struct upstream_call **);
static const struct acl	*jsapi_acl(void *);
static void		jsapi_ready(struct cred *, void *);

static const struct cred_source jsapi_source = {
	.name = "jsapi_ticket",
	.endpoint = WXAPI_GETTICKET,
	.token_field = "ticket",
	.shared = 1,
	.fetch = jsapi_fetch,
	.acl = jsapi_acl,
	.ready = jsapi_ready,
};

/*
 * The access token credential behind ticket data j, or NULL if gone; load
 * (a refresh): an idle authorizer unloaded meanwhile comes back from the
 * store.
 */
static struct cred *
jsapi_parent_get(const struct jsapi *j, int load)
{
	struct cred *p = load ? cred_lookup(j->appid) : cred_find(j->appid);

	if (p == NULL || cred_removed(p) || (cred_kind(p) != CRED_OFFICIAL &&
	    cred_kind(p) != CRED_AUTHORIZER))
		return (NULL);
	return (p);
}

static struct cred *
jsapi_parent(const struct jsapi *j)
{
	return (jsapi_parent_get(j, 0));
}

/* The appid whose ticket credential c is, or NULL if c is not one. */
const char *
jsapi_parent_appid(const struct cred *c)
{
	const struct jsapi *j;

	if (cred_source(c) != &jsapi_source || (j = cred_data(c)) == NULL)
		return (NULL);
	return (j->appid);
}

/* Who may sign with the ticket: whoever may use the appid. */
static const struct acl *
jsapi_acl(void *data)
{
	struct jsapi *j = data;
	struct cred *p;
	const struct cred_source *src;

	if (j == NULL || (p = jsapi_parent(j)) == NULL)
		return (NULL);
	src = cred_source(p);
	return (src->acl != NULL ? src->acl(cred_data(p)) : NULL);
}

/*
 * WeChat's JS-SDK signature: the lowercase hex SHA-1 of
 * "jsapi_ticket=T&noncestr=N&timestamp=TS&url=U" (keys in that order, the
 * URL without its fragment), into out (41 bytes). 0, or -1.
 */
int
jsapi_sign(const char *ticket, const char *nonce, const char *url,
    time_t timestamp, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char *s;
	int n;

	n = xasprintf(&s, "jsapi_ticket=%s&noncestr=%s&timestamp=%lld&url=%s",
	    ticket, nonce, (long long)timestamp, url);
	if (EVP_Digest(s, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 ||
	    mdlen != 20) {
		freezero(s, (size_t)n);
		return (-1);
	}
	freezero(s, (size_t)n);
	for (i = 0; i < mdlen; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[2 * mdlen] = '\0';
	return (0);
}

/* Answer req with a signature of url made with c's ticket. */
static void
jsapi_answer(struct request *req, struct cred *c, const char *appid,
    const char *url)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789";
	char nonce[JSAPI_NONCE_LEN + 1], sig[41];
	msgpack_packer *pk;
	time_t now = clock_now();
	int i;

	for (i = 0; i < JSAPI_NONCE_LEN; i++)
		nonce[i] = alnum[arc4random_uniform(sizeof alnum - 1)];
	nonce[JSAPI_NONCE_LEN] = '\0';
	if (jsapi_sign(cred_token(c), nonce, url, now, sig) != 0) {
		rpc_reply_errorx(req, "internal", 1, NULL, "SHA-1 failed");
		return;
	}
	pk = rpc_reply_begin(req, 4);
	rpc_pack_kv_str(pk, "appId", appid);
	rpc_pack_kv_int(pk, "timestamp", (int64_t)now);
	rpc_pack_kv_str(pk, "nonceStr", nonce);
	rpc_pack_kv_str(pk, "signature", sig);
	rpc_reply_end(req);
}

static void
jsapi_wait_free(struct jsapi_wait *w)
{
	TAILQ_REMOVE(&w->j->waits, w, entry);
	w->j->nwaits--;
	event_free(w->deadline);
	free(w->url);
	free(w);
}

/* Answer every waiting signature with an error. */
static void
jsapi_fail_waits(struct jsapi *j, const char *code, const char *why)
{
	struct jsapi_wait *w;

	while ((w = TAILQ_FIRST(&j->waits)) != NULL) {
		rpc_reply_errorx(w->req, code, 1, NULL, "%s", why);
		jsapi_wait_free(w);
	}
}

/* A new ticket: sign what waits. */
static void
jsapi_ready(struct cred *c, void *data)
{
	struct jsapi *j = data;
	struct jsapi_wait *w;

	if (j == NULL || !cred_usable(c))
		return;
	while ((w = TAILQ_FIRST(&j->waits)) != NULL) {
		jsapi_answer(w->req, c, j->appid, w->url);
		jsapi_wait_free(w);
	}
}

/* A waiting signature's send_timeout passed. */
static void
jsapi_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct jsapi_wait *w = arg;
	struct cred *c = w->j->cred;

	(void)fd;
	(void)events;
	rpc_reply_errorx(w->req, "unavailable", 1, NULL, "no jsapi_ticket for "
	    "%s within send_timeout%s%s", w->j->appid,
	    cred_last_error(c)[0] != '\0' ? ": " : "", cred_last_error(c));
	jsapi_wait_free(w);
}

/*
 * After a failed fetch: if no ticket can come soon (an operator must act),
 * the waiting signatures are answered now rather than at their deadline.
 */
static void
jsapi_check_failed(struct cred *c)
{
	struct jsapi *j = cred_data(c);
	char why[192];

	if (j == NULL || cred_usable(c) || !cred_permanent(c))
		return;
	if (cred_last_errcode(c) != 0)
		snprintf(why, sizeof why, "no jsapi_ticket for %s: %s (errcode "
		    "%ld)", j->appid, cred_last_error(c), cred_last_errcode(c));
	else
		snprintf(why, sizeof why, "no jsapi_ticket for %s: %s",
		    j->appid, cred_last_error(c));
	jsapi_fail_waits(j, "unavailable", why);
}

/*
 * getticket answered. 40001/40014/42001 refuse the access token, not the
 * ticket: the access token's credential hears it (compare-and-refresh by
 * the generation used) and the ticket tries again after a short backoff.
 */
static void
jsapi_cb(const struct upstream_reply *r, void *arg)
{
	struct cred *c = arg, *p;
	struct jsapi *j = cred_data(c);
	const char *ticket = NULL, *why = NULL;
	int expires_in = 0, retry_after;
	long errcode;
	enum wxapi_class cls;

	cred_fetch_done(c);
	if (cred_parse_token(r, "ticket", &ticket, &expires_in, &errcode,
	    &why) == 0) {
		cred_got_token(c, ticket, expires_in);
		return;
	}
	if (errcode == 0) {
		cred_fetch_failed(c, 0, why, 0);
		return;
	}
	cls = wxapi_classify(WXAPI_GETTICKET, errcode, &retry_after);
	if (cls == WXAPI_TOKEN_REFUSED) {
		if (j != NULL && (p = jsapi_parent(j)) != NULL)
			cred_token_failed(p, j->parent_gen, errcode);
		cred_fetch_failed(c, errcode, "the access token was refused; "
		    "refreshing it first", 0);
		return;
	}
	if (cls == WXAPI_REVOKED && j != NULL &&
	    (p = jsapi_parent(j)) != NULL)
		cred_revoke(p);
	cred_fetch_failed(c, errcode, "WeChat refused getticket",
	    cls == WXAPI_QUOTA || cls == WXAPI_FINAL || cls == WXAPI_REVOKED ||
	    cls == WXAPI_TOKEN_MISSING || cls == WXAPI_OPERATOR);
	jsapi_check_failed(c);
}

/*
 * Fetch the ticket with the appid's current access token. Without one, the
 * access token's credential is asked to hurry and the ticket backs off.
 */
static enum cred_fetch
jsapi_fetch(struct cred *c, void *data, int force, struct upstream_call **call)
{
	struct jsapi *j = data;
	struct cred *p;

	(void)force;
	if (j == NULL || (p = jsapi_parent_get(j, 1)) == NULL) {
		cred_fetch_failed(c, 0, "the appid is not configured", 1);
		return (CRED_FETCH_NONE);
	}
	if (!cred_usable(p)) {
		cred_wanted(p);
		if (!cred_awaiting(p) && !cred_refreshing(p) &&
		    cred_permanent(p)) {
			cred_fetch_failed(c, cred_last_errcode(p),
			    "the appid has no access token", 1);
			jsapi_check_failed(c);
			return (CRED_FETCH_NONE);
		}
		cred_fetch_failed(c, 0, "waiting for the appid's access token",
		    0);
		return (CRED_FETCH_NONE);
	}
	j->parent_gen = cred_gen(p);
	*call = wxapi_request(WXAPI_GETTICKET, cred_token(p), "type=jsapi",
	    NULL, 0, jsapi_cb, c);
	log_debug("%s: fetching jsapi_ticket", j->appid);
	return (CRED_FETCH_STARTED);
}

/* The ticket credential of appid, made (and started) at its first use. */
static struct cred *
jsapi_get(const char *appid)
{
	char key[WX_APPID_MAX + sizeof JSAPI_KEY_SUFFIX];
	struct cred *c;
	struct jsapi *j;

	snprintf(key, sizeof key, "%s" JSAPI_KEY_SUFFIX, appid);
	if ((c = cred_find(key)) != NULL && !cred_removed(c))
		return (c);
	j = xcalloc(1, sizeof *j);
	snprintf(j->appid, sizeof j->appid, "%s", appid);
	TAILQ_INIT(&j->waits);
	c = cred_add(key, CRED_JSAPI, &jsapi_source, j);
	j->cred = c;
	cred_start(c, 1);	/* the stored ticket, if still good */
	return (c);
}

/* Stop ticket credential c: its waits are answered, its data freed. */
static void
jsapi_drop(struct cred *c, const char *code, const char *why)
{
	struct jsapi *j = cred_data(c);

	if (j == NULL)
		return;
	jsapi_fail_waits(j, code, why);
	cred_set_data(c, NULL);
	free(j);
}

/* After a reload: tickets of appids no longer configured go. */
void
jsapi_reconcile(void)
{
	struct cred *c, *next;
	struct jsapi *j;

	for (c = cred_first(); c != NULL; c = next) {
		next = cred_next(c);
		if (cred_source(c) != &jsapi_source || cred_removed(c) ||
		    (j = cred_data(c)) == NULL || jsapi_parent(j) != NULL)
			continue;
		log_info("%s: jsapi_ticket dropped with its appid", j->appid);
		jsapi_drop(c, "unavailable", "the appid was removed from the "
		    "configuration");
		cred_remove(c);
	}
}

/* At exit, before the credentials go: answer what waits, free the data. */
void
jsapi_shutdown(void)
{
	struct cred *c;

	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (cred_source(c) == &jsapi_source)
			jsapi_drop(c, "unavailable", "wxpushd is stopping");
	}
}

/*
 * jssdk_sign {appid, url}: {appId, timestamp, nonceStr, signature} for
 * wx.config on the page at url; the ticket stays here.
 */
void
jsapi_method_sign(struct request *req, const msgpack_object *params)
{
	const msgpack_object *o, *u;
	char appid[WX_APPID_MAX + 1];
	struct jsapi_wait *w;
	struct cred *p, *c;
	struct jsapi *j;
	struct timeval tv;
	const char *hash;
	char *url;
	size_t ulen;
	uint32_t i;

	if (params == NULL || params->type != MSGPACK_OBJECT_MAP) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return;
	}
	for (i = 0; i < params->via.map.size; i++) {
		o = &params->via.map.ptr[i].key;
		if (!rpc_str_eq(o, "appid") && !rpc_str_eq(o, "url")) {
			rpc_reply_errorx(req, "invalid_request", 0, "params",
			    "unknown parameter: jssdk_sign takes appid and url");
			return;
		}
	}
	o = rpc_map_get(params, "appid");
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    !valid_appid(o->via.str.ptr, o->via.str.size) ||
	    o->via.str.size > WX_APPID_MAX - (sizeof JSAPI_KEY_SUFFIX - 1)) {
		rpc_reply_errorx(req, "invalid_request", 0, "appid", "appid is "
		    "1..%zu bytes of A-Z a-z 0-9 _ -",
		    WX_APPID_MAX - (sizeof JSAPI_KEY_SUFFIX - 1));
		return;
	}
	memcpy(appid, o->via.str.ptr, o->via.str.size);
	appid[o->via.str.size] = '\0';
	u = rpc_map_get(params, "url");
	if (u == NULL || u->type != MSGPACK_OBJECT_STR) {
		rpc_reply_errorx(req, "invalid_request", 0, "url",
		    "url is required: the page's full URL");
		return;
	}
	/* The signature covers the URL without its fragment. */
	ulen = u->via.str.size;
	if ((hash = memchr(u->via.str.ptr, '#', ulen)) != NULL)
		ulen = (size_t)(hash - u->via.str.ptr);
	if (!valid_word(u->via.str.ptr, u->via.str.size, JSAPI_URL_MAX) ||
	    !((ulen > 7 && strncmp(u->via.str.ptr, "http://", 7) == 0) ||
	    (ulen > 8 && strncmp(u->via.str.ptr, "https://", 8) == 0))) {
		rpc_reply_errorx(req, "invalid_request", 0, "url", "url is "
		    "http:// or https:// with a host, at most %d bytes of "
		    "printable ASCII without spaces (percent-encode the rest)",
		    JSAPI_URL_MAX);
		return;
	}
	p = cred_lookup(appid);
	if (p == NULL || cred_removed(p) || (cred_kind(p) != CRED_OFFICIAL &&
	    cred_kind(p) != CRED_AUTHORIZER)) {
		rpc_reply_errorx(req, "unknown_appid", 0, "appid", "the appid "
		    "is not an account or authorizer configured here");
		return;
	}
	if (req->client == NULL || !cred_allows(p, &req->client->peer)) {
		rpc_reply_errorx(req, "forbidden", 0, "appid", "this user may "
		    "not use this appid");
		return;
	}
	if (cred_revoked(p)) {
		rpc_reply_errorx(req, "revoked", 0, NULL, "the merchant revoked "
		    "the platform's authorization");
		return;
	}
	url = xmalloc(ulen + 1);
	memcpy(url, u->via.str.ptr, ulen);
	url[ulen] = '\0';
	c = jsapi_get(appid);
	j = cred_data(c);
	if (cred_usable(c)) {
		jsapi_answer(req, c, appid, url);
		free(url);
		return;
	}
	if (cred_permanent(c) && !cred_refreshing(c)) {
		rpc_reply_errorx(req, "unavailable", 1, NULL, "no jsapi_ticket "
		    "for %s: %s (errcode %ld)", appid, cred_last_error(c),
		    cred_last_errcode(c));
		free(url);
		return;
	}
	if (j->nwaits >= JSAPI_WAITS_MAX) {
		rpc_reply_errorx(req, "busy", 1, NULL, "too many signatures "
		    "wait for this appid's jsapi_ticket");
		free(url);
		return;
	}
	w = xcalloc(1, sizeof *w);
	w->req = req;
	w->j = j;
	w->url = url;
	w->deadline = evtimer_new(wx_base, jsapi_deadline_cb, w);
	tv.tv_sec = wx_conf->send_timeout;
	tv.tv_usec = 0;
	evtimer_add(w->deadline, &tv);
	TAILQ_INSERT_TAIL(&j->waits, w, entry);
	j->nwaits++;
	/* Nothing scheduled (a backoff is kept: getticket is rate-limited). */
	if (!cred_refreshing(c) && !cred_awaiting(c) &&
	    !cred_refresh_due(c, &tv))
		cred_refresh(c, 0);
}
