/*
 * The component methods: component_event (an event the platform's own web
 * server received), authorize (an authorization code) and preauth (the link
 * a merchant follows to authorize the platform). Each checks its params
 * against a table, then asks component.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

#define METHOD_COMPONENT_REDIRECT_MAX	1024	/* bytes of a preauth redirect_uri */
/* The longest authorization page URL: every value at its limit, encoded. */
#define METHOD_COMPONENT_URL_MAX	(192 + 3 * (2 * WX_APPID_MAX + \
					    WX_TOKEN_MAX + \
					    METHOD_COMPONENT_REDIRECT_MAX))
#define METHOD_COMPONENT_NITEMS(a)	(sizeof (a) / sizeof (a)[0])

/* What the authorization page of a preauth call is built from. */
struct method_component_preauth {
	struct request		*req;
	char			 component_appid[WX_APPID_MAX + 1];
	char			 redirect_uri[METHOD_COMPONENT_REDIRECT_MAX + 1];
	char			 biz_appid[WX_APPID_MAX + 1];	/* "" if none */
	int			 auth_type;	/* 1..3, 0 if none */
	int			 mobile;
};

/* A param's type; strings unless said otherwise. */
#define METHOD_COMPONENT_PARAM_STR	0
#define METHOD_COMPONENT_PARAM_INT	1	/* an integer from 1 to max */
#define METHOD_COMPONENT_PARAM_BOOL	2

/* A method's params: each required unless optional, nothing else allowed. */
struct method_component_param {
	const char	*name;
	size_t		 max;
	int		 bin;		/* MessagePack bin accepted too */
	const char	*ptr;		/* out */
	size_t		 len;
	int		 type;
	int		 optional;
	int		 set;		/* out: present */
	int64_t		 num;		/* out: an int or a bool */
};

/* Check params against p[0..n); 0, or -1 after answering invalid_request. */
static int
method_component_params(struct request *req, const msgpack_object *params,
    struct method_component_param *p, size_t n)
{
	const msgpack_object_kv *kv;
	const msgpack_object *v;
	const char *names[8];
	uint32_t i;
	size_t j;

	if (params == NULL || params->type != MSGPACK_OBJECT_MAP) {
		rpc_reply_errorx(req, "invalid_request", 0, "params", "params "
		    "must be a map with %s and the other fields", p[0].name);
		return (-1);
	}
	for (j = 0; j < n && j < METHOD_COMPONENT_NITEMS(names); j++)
		names[j] = p[j].name;
	if (rpc_params_check(req, params, names, j) != 0)
		return (-1);
	for (i = 0; i < params->via.map.size; i++) {
		kv = &params->via.map.ptr[i];
		for (j = 0; j < n; j++) {
			if (rpc_str_eq(&kv->key, p[j].name))
				break;
		}
		v = &kv->val;
		/* rpc_params_check let only known keys through; nil: absent. */
		if (j == n || (v->type == MSGPACK_OBJECT_NIL && p[j].optional))
			continue;
		p[j].set = 1;
		if (p[j].type == METHOD_COMPONENT_PARAM_INT) {
			if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
			    v->via.u64 < 1 || v->via.u64 > p[j].max) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    p[j].name, "%s must be an integer from 1 "
				    "to %zu", p[j].name, p[j].max);
				return (-1);
			}
			p[j].num = (int64_t)v->via.u64;
			continue;
		}
		if (p[j].type == METHOD_COMPONENT_PARAM_BOOL) {
			if (v->type != MSGPACK_OBJECT_BOOLEAN) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    p[j].name, "%s must be true or false",
				    p[j].name);
				return (-1);
			}
			p[j].num = v->via.boolean;
			continue;
		}
		if ((v->type != MSGPACK_OBJECT_STR && !(p[j].bin &&
		    v->type == MSGPACK_OBJECT_BIN)) || v->via.str.size == 0 ||
		    v->via.str.size > p[j].max) {
			rpc_reply_errorx(req, "invalid_request", 0, p[j].name,
			    "%s must be a string of 1 to %zu bytes", p[j].name,
			    p[j].max);
			return (-1);
		}
		p[j].ptr = v->via.str.ptr;
		p[j].len = v->via.str.size;
	}
	for (j = 0; j < n; j++) {
		if (!p[j].set && !p[j].optional) {
			rpc_reply_errorx(req, "invalid_request", 0, p[j].name,
			    "%s is missing", p[j].name);
			return (-1);
		}
	}
	return (0);
}

/* A param as a C string, if it is printable without spaces; 0 or -1. */
static int
method_component_word(const struct method_component_param *p, char *buf, size_t len)
{
	size_t i;

	if (p->len >= len)
		return (-1);
	for (i = 0; i < p->len; i++) {
		if (p->ptr[i] <= 0x20 || p->ptr[i] > 0x7e)
			return (-1);
	}
	memcpy(buf, p->ptr, p->len);
	buf[p->len] = '\0';
	return (0);
}

/*
 * The configured component a method names, if the peer may act for it;
 * NULL after answering.
 */
static struct component_conf *
method_component_find(struct request *req, const struct method_component_param *p,
    const char *method)
{
	struct component_conf *cc;
	char appid[WX_APPID_MAX + 1];

	if (!valid_appid(p->ptr, p->len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "component_appid",
		    "component_appid must be 1 to %d of A-Z a-z 0-9 _ -",
		    WX_APPID_MAX);
		return (NULL);
	}
	memcpy(appid, p->ptr, p->len);
	appid[p->len] = '\0';
	if ((cc = config_find_component(wx_conf, appid)) == NULL ||
	    !component_running(appid)) {
		rpc_reply_errorx(req, "unknown_appid", 0, "component_appid",
		    "%s is not a configured component", appid);
		return (NULL);
	}
	if (req->client == NULL ||
	    !acl_allows(&cc->allow, &req->client->peer)) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client != NULL ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_INFO, "component method refused", peer,
		    "%s: %s refused to %s", appid, method, peer);
		rpc_reply_errorx(req, "forbidden", 0, "component_appid",
		    "this user may not act for this component");
		return (NULL);
	}
	return (cc);
}

/* component_event's answer: the contract's result map, or the error. */
static void
method_component_event_done(void *arg, const struct rpc_error *e,
    const char *info_type, const char *authorizer_appid)
{
	struct request *req = arg;
	msgpack_packer *pk;
	int aid = authorizer_appid != NULL && *authorizer_appid != '\0';

	if (e != NULL) {
		rpc_reply_error(req, e);
		return;
	}
	pk = rpc_reply_begin(req, 2 + aid);
	rpc_pack_kv_str(pk, "reply", "success");
	rpc_pack_kv_str(pk, "info_type", info_type);
	if (aid)
		rpc_pack_kv_str(pk, "authorizer_appid", authorizer_appid);
	rpc_reply_end(req);
}

/* component_event {component_appid, msg_signature, timestamp, nonce, body}. */
void
method_component_event(struct request *req, const msgpack_object *params)
{
	struct method_component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "msg_signature", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "timestamp", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "nonce", 64, 0, NULL, 0, 0, 0, 0, 0 },
		{ "body", INGRESS_BODY_MAX, 1, NULL, 0, 0, 0, 0, 0 },
	};
	struct component_conf *cc;
	char word[3][65], *cause;
	const char *field;
	size_t i;

	if (method_component_params(req, params, p, METHOD_COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = method_component_find(req, &p[0], "component_event")) == NULL)
		return;
	for (i = 0; i < 3; i++) {
		if (method_component_word(&p[1 + i], word[i],
		    sizeof word[i]) != 0) {
			rpc_reply_errorx(req, "invalid_request", 0,
			    p[1 + i].name, "%s must be printable without "
			    "spaces", p[1 + i].name);
			return;
		}
	}
	if (ingress_event_accept(cc, word[0], word[1], word[2], p[4].ptr,
	    p[4].len, method_component_event_done, req, &field,
	    &cause) != 0) {
		char peer[32];

		snprintf(peer, sizeof peer, "uid %u", req->client != NULL ?
		    (unsigned)req->client->peer.uid : 0);
		ratelog(LOG_LEVEL_WARN, "component_event refused", peer,
		    "%s: component_event refused: %s", cc->appid, cause);
		rpc_reply_errorx(req, "invalid_request", 0, field, "%s", cause);
		free(cause);
	}
}

/* authorize's answer: {authorizer_appid}, or the error. */
static void
method_component_authorize_done(void *arg, const struct rpc_error *e,
    const char *info_type, const char *authorizer_appid)
{
	struct request *req = arg;
	msgpack_packer *pk;

	(void)info_type;
	if (e != NULL) {
		rpc_reply_error(req, e);
		return;
	}
	pk = rpc_reply_begin(req, 1);
	rpc_pack_kv_str(pk, "authorizer_appid", authorizer_appid);
	rpc_reply_end(req);
}

/* authorize {component_appid, authorization_code}: api_query_auth. */
void
method_component_authorize(struct request *req, const msgpack_object *params)
{
	struct method_component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "authorization_code", WX_TOKEN_MAX, 0, NULL, 0, 0, 0, 0, 0 },
	};
	struct component_conf *cc;
	char code[WX_TOKEN_MAX + 1];

	if (method_component_params(req, params, p, METHOD_COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = method_component_find(req, &p[0], "authorize")) == NULL)
		return;
	if (method_component_word(&p[1], code, sizeof code) != 0) {
		rpc_reply_errorx(req, "invalid_request", 0,
		    "authorization_code", "authorization_code must be "
		    "printable without spaces");
		return;
	}
	component_authorize(cc->appid, code, method_component_authorize_done,
	    req);
	explicit_bzero(code, sizeof code);
}

/*
 * Append name=value to the URL in buf, value percent-encoded: everything but
 * RFC 3986's unreserved characters (ALPHA DIGIT - . _ ~) becomes %XX.
 */
static void
method_component_url_add(char *buf, size_t len, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *v;
	size_t n = strlen(buf);

	n += snprintf(buf + n, len - n, "%s%s=", strchr(buf, '?') != NULL ?
	    "&" : "?", name);
	for (v = (const unsigned char *)value; *v != '\0' && n + 4 < len; v++) {
		if ((*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
		    (*v >= '0' && *v <= '9') || *v == '-' || *v == '.' ||
		    *v == '_' || *v == '~')
			buf[n++] = (char)*v;
		else {
			buf[n++] = '%';
			buf[n++] = hex[*v >> 4];
			buf[n++] = hex[*v & 0xf];
		}
	}
	buf[n] = '\0';
}

/* The authorization page for a pre_auth_code, desktop or mobile, in buf. */
static void
method_component_preauth_url(const struct method_component_preauth *pa,
    const char *code, char *buf, size_t len)
{
	char num[16];
	size_t n;
	int auth_type = pa->auth_type;

	if (pa->mobile) {
		snprintf(buf, len, "https://open.weixin.qq.com/wxaopen/safe/"
		    "bindcomponent?action=bindcomponent&no_scan=1");
		if (auth_type == 0)
			auth_type = 3;	/* the mobile page wants one: both */
	} else
		snprintf(buf, len, "https://mp.weixin.qq.com/cgi-bin/"
		    "componentloginpage");
	method_component_url_add(buf, len, "component_appid", pa->component_appid);
	method_component_url_add(buf, len, "pre_auth_code", code);
	method_component_url_add(buf, len, "redirect_uri", pa->redirect_uri);
	if (auth_type != 0) {
		snprintf(num, sizeof num, "%d", auth_type);
		method_component_url_add(buf, len, "auth_type", num);
	}
	if (pa->biz_appid[0] != '\0')
		method_component_url_add(buf, len, "biz_appid", pa->biz_appid);
	n = strlen(buf);
	if (pa->mobile)
		snprintf(buf + n, len - n, "#wechat_redirect");
}

/* Whether s is an http or https URL with a host, without spaces or controls. */
static int
method_component_redirect_ok(const char *s, size_t len)
{
	size_t i, n;

	if (len > 8 && strncmp(s, "https://", 8) == 0)
		n = 8;
	else if (len > 7 && strncmp(s, "http://", 7) == 0)
		n = 7;
	else
		return (0);
	if (s[n] == '/' || s[n] == '?' || s[n] == '#')
		return (0);
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return (0);
	}
	return (1);
}

/* api_create_preauthcode answered: the code and its page, or the error. */
static void
method_component_preauth_done(void *arg, const struct rpc_error *e,
    const char *code, int expires_in)
{
	struct method_component_preauth *pa = arg;
	msgpack_packer *pk;
	char url[METHOD_COMPONENT_URL_MAX];

	if (e != NULL) {
		rpc_reply_error(pa->req, e);
		free(pa);
		return;
	}
	method_component_preauth_url(pa, code, url, sizeof url);
	pk = rpc_reply_begin(pa->req, 3);
	rpc_pack_kv_str(pk, "pre_auth_code", code);
	rpc_pack_kv_int(pk, "expires_in", expires_in);
	rpc_pack_kv_str(pk, "url", url);
	rpc_reply_end(pa->req);
	explicit_bzero(url, sizeof url);
	free(pa);
}

/*
 * preauth {component_appid, redirect_uri, auth_type?, biz_appid?, mobile?}:
 * api_create_preauthcode, answered with the code and the authorization page
 * to send the merchant to.
 */
void
method_component_preauth(struct request *req, const msgpack_object *params)
{
	struct method_component_param p[] = {
		{ "component_appid", WX_APPID_MAX, 0, NULL, 0, 0, 0, 0, 0 },
		{ "redirect_uri", METHOD_COMPONENT_REDIRECT_MAX, 0, NULL, 0, 0,
		    0, 0, 0 },
		{ "auth_type", 3, 0, NULL, 0, METHOD_COMPONENT_PARAM_INT, 1, 0,
		    0 },
		{ "biz_appid", WX_APPID_MAX, 0, NULL, 0, 0, 1, 0, 0 },
		{ "mobile", 0, 0, NULL, 0, METHOD_COMPONENT_PARAM_BOOL, 1, 0,
		    0 },
	};
	struct component_conf *cc;
	struct method_component_preauth *pa;

	if (method_component_params(req, params, p,
	    METHOD_COMPONENT_NITEMS(p)) != 0)
		return;
	if ((cc = method_component_find(req, &p[0], "preauth")) == NULL)
		return;
	if (!method_component_redirect_ok(p[1].ptr, p[1].len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "redirect_uri",
		    "redirect_uri must be an http:// or https:// URL with a "
		    "host, without spaces or control characters");
		return;
	}
	if (p[3].set && !valid_appid(p[3].ptr, p[3].len)) {
		rpc_reply_errorx(req, "invalid_request", 0, "biz_appid",
		    "biz_appid must be 1 to %d of A-Z a-z 0-9 _ -",
		    WX_APPID_MAX);
		return;
	}
	pa = xcalloc(1, sizeof *pa);
	pa->req = req;
	snprintf(pa->component_appid, sizeof pa->component_appid, "%s",
	    cc->appid);
	memcpy(pa->redirect_uri, p[1].ptr, p[1].len);
	if (p[3].set)
		memcpy(pa->biz_appid, p[3].ptr, p[3].len);
	pa->auth_type = p[2].set ? (int)p[2].num : 0;
	pa->mobile = p[4].set && p[4].num;
	component_preauth(cc->appid, method_component_preauth_done, pa);
}
