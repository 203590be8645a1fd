/*
 * The consent methods: consent_url (a signed link to WeChat's consent
 * page), consent_record (a redirect the application received itself),
 * consents (the ledger of an appid) and consent_forget (one user's data).
 * The ledger itself is consent.c's; the redirect endpoint is consent-http.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

#define MC_EXPIRES_DEFAULT	3600	/* seconds a link is valid */
#define MC_EXPIRES_MAX		(30 * 86400)
#define MC_LIST_MAX		1000	/* consents in one answer */
#define MC_PAGE "https://mp.weixin.qq.com/mp/subscribemsg?action=get_confirm"

/* Copy string param name (an id) into out; 0, or -1 after replying. */
static int
mc_id(struct request *req, const msgpack_object *params, const char *name,
    int required, char *out)
{
	const msgpack_object	*o = rpc_map_get(params, name);

	*out = '\0';
	if (o == NULL && !required)
		return (0);
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    !valid_id(o->via.str.ptr, o->via.str.size, CONSENT_ID_MAX)) {
		rpc_reply_errorx(req, "invalid_request", 0, name, "%s is 1..%d "
		    "characters of A-Z a-z 0-9 _ -", name, CONSENT_ID_MAX);
		return (-1);
	}
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return (0);
}

/* The scene param (an integer or digits); the scene, or -1 after replying. */
static int
mc_scene(struct request *req, const msgpack_object *params)
{
	const msgpack_object	*o = rpc_map_get(params, "scene");
	int			 v = -1;

	if (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o->via.u64 <= WX_SCENE_MAX)
		v = (int)o->via.u64;
	else if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		v = valid_scene(o->via.str.ptr, o->via.str.size);
	if (v == -1)
		rpc_reply_errorx(req, "invalid_request", 0, "scene",
		    "scene must be an integer 0..%d", WX_SCENE_MAX);
	return (v);
}

/*
 * The appid param, configured and allowed to the peer: its credential, or
 * NULL after replying.
 */
static struct cred *
mc_appid(struct request *req, const msgpack_object *params, char *appid)
{
	const msgpack_object	*o = rpc_map_get(params, "appid");
	struct cred		*c;

	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    !valid_appid(o->via.str.ptr, o->via.str.size)) {
		rpc_reply_errorx(req, "invalid_request", 0, "appid",
		    "appid is 1..%d bytes of A-Z a-z 0-9 _ -", WX_APPID_MAX);
		return (NULL);
	}
	memcpy(appid, o->via.str.ptr, o->via.str.size);
	appid[o->via.str.size] = '\0';
	c = cred_lookup(appid);
	if (c == NULL || cred_removed(c) || (cred_kind(c) != CRED_OFFICIAL &&
	    cred_kind(c) != CRED_AUTHORIZER)) {
		rpc_reply_errorx(req, "unknown_appid", 0, "appid", "the appid "
		    "is not an account or authorizer configured here");
		return (NULL);
	}
	if (req->client == NULL || !cred_allows(c, &req->client->peer)) {
		rpc_reply_errorx(req, "forbidden", 0, "appid", "this user may "
		    "not use this appid");
		return (NULL);
	}
	return (c);
}

/* Is the ledger usable (a key configured)? Replies if not. */
static int
mc_enabled(struct request *req)
{
	if (wx_conf->consent_key != NULL)
		return (1);
	rpc_reply_errorx(req, "unavailable", 0, NULL, "consents need "
	    "consent_key_file in the configuration");
	return (0);
}

/* Append s percent-encoded (all but A-Z a-z 0-9 - . _ ~) to b. */
static void
mc_urlencode(struct evbuffer *b, const char *s, size_t n)
{
	size_t	i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			evbuffer_add(b, &c, 1);
		else
			evbuffer_add_printf(b, "%%%02X", c);
	}
}

/*
 * consent_url {appid, template_id, scene, redirect_url?, reference?,
 * expires_in?}: WeChat's consent page with a reserved value signed here.
 */
void
method_consent_url(struct request *req, const msgpack_object *params)
{
	static const char *const keys[] = { "appid", "template_id", "scene",
	    "redirect_url", "reference", "expires_in" };
	char			 appid[WX_APPID_MAX + 1];
	char			 tid[CONSENT_ID_MAX + 1];
	char			 ref[CONSENT_REF_MAX + 1];
	char			 reserved[CONSENT_RESERVED_MAX + 1];
	char			*redirect = NULL;
	const msgpack_object	*o;
	struct evbuffer		*b;
	msgpack_packer		*pk;
	time_t			 expires;
	int			 scene, expires_in = MC_EXPIRES_DEFAULT;

	if (rpc_params_check(req, params, keys, 6) != 0)
		return;
	if (params == NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return;
	}
	if (mc_appid(req, params, appid) == NULL || !mc_enabled(req) ||
	    mc_id(req, params, "template_id", 1, tid) != 0 ||
	    (scene = mc_scene(req, params)) == -1)
		return;
	o = rpc_map_get(params, "reference");
	ref[0] = '\0';
	if (o != NULL) {
		if (o->type != MSGPACK_OBJECT_STR ||
		    !valid_id(o->via.str.ptr, o->via.str.size,
		    CONSENT_REF_MAX)) {
			rpc_reply_errorx(req, "invalid_request", 0, "reference",
			    "reference is 1..%d characters of A-Z a-z 0-9 _ -",
			    CONSENT_REF_MAX);
			return;
		}
		memcpy(ref, o->via.str.ptr, o->via.str.size);
		ref[o->via.str.size] = '\0';
	}
	o = rpc_map_get(params, "expires_in");
	if (o != NULL) {
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.u64 < 1 || o->via.u64 > MC_EXPIRES_MAX) {
			rpc_reply_errorx(req, "invalid_request", 0, "expires_in",
			    "expires_in is 1..%d seconds", MC_EXPIRES_MAX);
			return;
		}
		expires_in = (int)o->via.u64;
	}
	o = rpc_map_get(params, "redirect_url");
	if (o != NULL) {
		if (o->type != MSGPACK_OBJECT_STR ||
		    !valid_word(o->via.str.ptr, o->via.str.size, 1024) ||
		    !((o->via.str.size > 7 &&
		    strncmp(o->via.str.ptr, "http://", 7) == 0) ||
		    (o->via.str.size > 8 &&
		    strncmp(o->via.str.ptr, "https://", 8) == 0))) {
			rpc_reply_errorx(req, "invalid_request", 0,
			    "redirect_url", "redirect_url is http:// or "
			    "https:// with a host, at most 1024 bytes of "
			    "printable ASCII without spaces");
			return;
		}
		redirect = xstrndup(o->via.str.ptr, o->via.str.size);
	} else if (wx_conf->consent_public_url != NULL)
		xasprintf(&redirect, "%s/%s", wx_conf->consent_public_url,
		    appid);
	else {
		rpc_reply_errorx(req, "invalid_request", 0, "redirect_url",
		    "redirect_url is required without consent_public_url");
		return;
	}
	expires = clock_now() + expires_in;
	if (consent_sign(wx_conf->consent_key, appid, tid, scene, expires,
	    ref[0] != '\0' ? ref : NULL, reserved) != 0) {
		free(redirect);
		rpc_reply_errorx(req, "internal", 1, NULL, "cannot sign the "
		    "link");
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "%s&appid=%s&scene=%d&template_id=%s"
	    "&redirect_url=", MC_PAGE, appid, scene, tid);
	mc_urlencode(b, redirect, strlen(redirect));
	evbuffer_add_printf(b, "&reserved=%s#wechat_redirect", reserved);
	evbuffer_add(b, "", 1);
	pk = rpc_reply_begin(req, 3);
	rpc_pack_kv_str(pk, "url", (const char *)evbuffer_pullup(b, -1));
	rpc_pack_kv_str(pk, "reserved", reserved);
	rpc_pack_kv_int(pk, "expires_at", (int64_t)expires);
	rpc_reply_end(req);
	evbuffer_free(b);
	free(redirect);
}

/*
 * Verify and record one answer of the consent page for appid. 0 and the
 * state the ledger holds in *granted and whether the answer changed it in
 * *isnew, or -1 and a static *why; the HTTP endpoint and consent_record
 * share it.
 */
int
method_consent_accept(const char *appid, const char *openid,
    const char *template_id, int scene, const char *action,
    const char *reserved, size_t rlen, int *granted, int *isnew,
    const char **why)
{
	char	 tag[CONSENT_TAG_HEX + 1], ref[CONSENT_REF_MAX + 1];
	int	 rc;

	if (strcmp(action, "confirm") == 0)
		*granted = 1;
	else if (strcmp(action, "cancel") == 0)
		*granted = 0;
	else {
		*why = "action must be confirm or cancel";
		return (-1);
	}
	if (wx_conf->consent_key == NULL) {
		*why = "consents need consent_key_file";
		return (-1);
	}
	if (consent_verify(wx_conf->consent_key, appid, template_id, scene,
	    reserved, rlen, clock_now(), tag, ref, why) != 0)
		return (-1);
	if ((rc = consent_record(appid, openid, template_id, scene, tag, ref,
	    granted, why)) == -1)
		return (-1);
	*isnew = rc == 1;
	log_info("%s: consent %s for template %s scene %d%s", appid,
	    *granted ? "granted" : "refused", template_id, scene,
	    *isnew ? "" : " (again)");
	return (0);
}

/* consent_record {appid, openid, template_id, action, scene, reserved}. */
void
method_consent_record(struct request *req, const msgpack_object *params)
{
	static const char *const keys[] = { "appid", "openid", "template_id",
	    "action", "scene", "reserved" };
	char			 appid[WX_APPID_MAX + 1];
	char			 openid[CONSENT_ID_MAX + 1];
	char			 tid[CONSENT_ID_MAX + 1];
	char			 action[8];
	const msgpack_object	*o, *r;
	const char		*why;
	msgpack_packer		*pk;
	int			 scene, granted, isnew;

	if (rpc_params_check(req, params, keys, 6) != 0)
		return;
	if (params == NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return;
	}
	if (mc_appid(req, params, appid) == NULL || !mc_enabled(req) ||
	    mc_id(req, params, "openid", 1, openid) != 0 ||
	    mc_id(req, params, "template_id", 1, tid) != 0 ||
	    (scene = mc_scene(req, params)) == -1)
		return;
	o = rpc_map_get(params, "action");
	if (o == NULL || o->type != MSGPACK_OBJECT_STR ||
	    o->via.str.size >= sizeof action) {
		rpc_reply_errorx(req, "invalid_request", 0, "action",
		    "action must be confirm or cancel");
		return;
	}
	memcpy(action, o->via.str.ptr, o->via.str.size);
	action[o->via.str.size] = '\0';
	r = rpc_map_get(params, "reserved");
	if (r == NULL || r->type != MSGPACK_OBJECT_STR) {
		rpc_reply_errorx(req, "invalid_request", 0, "reserved",
		    "reserved is required: the value the consent page returned");
		return;
	}
	if (method_consent_accept(appid, openid, tid, scene, action,
	    r->via.str.ptr, r->via.str.size, &granted, &isnew, &why) != 0) {
		rpc_reply_errorx(req, "invalid_request", 0, strncmp(why,
		    "action", 6) == 0 ? "action" : "reserved", "%s", why);
		return;
	}
	pk = rpc_reply_begin(req, 2);
	rpc_pack_kv_str(pk, "state", granted ? "granted" : "refused");
	rpc_pack_kv_bool(pk, "new", isnew);
	rpc_reply_end(req);
}

/* Count, then pack, the consents consents lists. */
struct mc_list {
	msgpack_packer	*pk;
	size_t		 n;
};

/* Count one consent (pk NULL) or pack it. */
static void
mc_list_cb(const struct store_consent *row, void *arg)
{
	struct mc_list	*l = arg;

	if (l->n++ >= MC_LIST_MAX || l->pk == NULL)
		return;
	msgpack_pack_map(l->pk, 7);
	rpc_pack_kv_str(l->pk, "openid", row->openid);
	rpc_pack_kv_str(l->pk, "template_id", row->template_id);
	rpc_pack_kv_int(l->pk, "scene", row->scene);
	rpc_pack_kv_str(l->pk, "state", row->state);
	rpc_pack_kv_str(l->pk, "reference", row->reference);
	rpc_pack_kv_int(l->pk, "recorded_at", (int64_t)row->recorded_at);
	rpc_pack_kv_int(l->pk, "spent_at", (int64_t)row->spent_at);
}

/* consents {appid, openid?, template_id?}: the ledger, oldest first. */
void
method_consents(struct request *req, const msgpack_object *params)
{
	static const char *const keys[] = { "appid", "openid",
	    "template_id" };
	char			 appid[WX_APPID_MAX + 1];
	char			 openid[CONSENT_ID_MAX + 1];
	char			 tid[CONSENT_ID_MAX + 1];
	struct mc_list		 l;
	size_t			 total;

	if (rpc_params_check(req, params, keys, 3) != 0)
		return;
	if (params == NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return;
	}
	if (mc_appid(req, params, appid) == NULL ||
	    mc_id(req, params, "openid", 0, openid) != 0 ||
	    mc_id(req, params, "template_id", 0, tid) != 0)
		return;
	memset(&l, 0, sizeof l);
	consent_foreach(appid, openid[0] ? openid : NULL, tid[0] ? tid : NULL,
	    mc_list_cb, &l);
	total = l.n;
	l.pk = rpc_reply_begin(req, 3);
	rpc_pack_kv_int(l.pk, "total", (int64_t)total);
	rpc_pack_kv_bool(l.pk, "truncated", total > MC_LIST_MAX);
	rpc_pack_str(l.pk, "consents");
	msgpack_pack_array(l.pk, total > MC_LIST_MAX ? MC_LIST_MAX :
	    (uint32_t)total);
	l.n = 0;
	consent_foreach(appid, openid[0] ? openid : NULL, tid[0] ? tid : NULL,
	    mc_list_cb, &l);
	rpc_reply_end(req);
}

/* consent_forget {appid, openid}: everything about one user, deleted. */
void
method_consent_forget(struct request *req, const msgpack_object *params)
{
	static const char *const keys[] = { "appid", "openid" };
	char			 appid[WX_APPID_MAX + 1];
	char			 openid[CONSENT_ID_MAX + 1];
	msgpack_packer		*pk;
	int			 n;

	if (rpc_params_check(req, params, keys, 2) != 0)
		return;
	if (params == NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return;
	}
	if (mc_appid(req, params, appid) == NULL ||
	    mc_id(req, params, "openid", 1, openid) != 0)
		return;
	if ((n = consent_forget(appid, openid)) == -1) {
		rpc_reply_errorx(req, "internal", 1, NULL, "the store could not "
		    "delete the consents; those in memory are gone");
		return;
	}
	pk = rpc_reply_begin(req, 1);
	rpc_pack_kv_int(pk, "deleted", n);
	rpc_reply_end(req);
}
