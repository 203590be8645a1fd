/*
 * Endpoints for the JS-SDK and for wxpushd's call method: getticket (the
 * jsapi_ticket), get_api_domain_ip (a fixed answer), and three test paths
 * under /cgi-bin/mock/: echo (POST only: answers what it was sent), leak
 * (answers credential fields a caller must never see) and big (an answer of
 * a chosen size). Each needs a valid access_token, as WeChat's APIs do.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"
#include "mock.h"

#define MOCK_JSAPI_PREFIX	"jsapi@@@"
#define MOCK_BIG_MAX		(1024 * 1024)

/*
 * The account whose valid access_token the call carries; NULL after
 * answering 41001, 40001 or 42001. Component tokens are refused (48001).
 */
static struct mock_account *
mock_api_caller(struct mock_call *call)
{
	const char *value = mock_call_param(call, "access_token");
	struct mock_token *t;
	int error;

	if (value == NULL || *value == '\0') {
		mock_reply_error(call, 41001, "access_token missing");
		return (NULL);
	}
	if ((error = mock_token_check(value, call->now, &t)) != 0) {
		mock_reply_error(call, error, error == 42001 ?
		    "access_token expired" : "invalid credential, "
		    "access_token is invalid or not latest");
		return (NULL);
	}
	if (t->owner->kind == MOCK_COMPONENT) {
		mock_reply_error(call, 48001, "api unauthorized");
		return (NULL);
	}
	return (t->owner);
}

/*
 * GET /cgi-bin/ticket/getticket?access_token=T&type=jsapi: a new
 * jsapi_ticket on every call, listed in /mock/tokens as "jsapi_ticket".
 */
void
mock_api_getticket(struct mock_call *call)
{
	char ticket[sizeof MOCK_JSAPI_PREFIX + MOCK_CRED_MAX];
	struct mock_account *a;
	const char *type;

	if ((a = mock_api_caller(call)) == NULL)
		return;
	type = mock_call_param(call, "type");
	if (type == NULL || (strcmp(type, "jsapi") != 0 &&
	    strcmp(type, "wx_card") != 0)) {
		mock_reply_error(call, 40097, "invalid args: type must be "
		    "jsapi or wx_card");
		return;
	}
	memcpy(ticket, MOCK_LIT(MOCK_JSAPI_PREFIX));
	mock_random_b64url(ticket + sizeof MOCK_JSAPI_PREFIX - 1,
	    MOCK_TICKET_BYTES);
	mock_issued_add(strcmp(type, "jsapi") == 0 ? "jsapi_ticket" :
	    "wx_card_ticket", a->appid, ticket, call->now);
	mock_reply_json(call, json_pack("{s:i,s:s,s:s,s:i}", "errcode", 0,
	    "errmsg", "ok", "ticket", ticket, "expires_in",
	    mock_conf.expires_in));
}

/* GET /cgi-bin/get_api_domain_ip: WeChat's API addresses (fixed). */
void
mock_api_domain_ip(struct mock_call *call)
{
	if (mock_api_caller(call) == NULL)
		return;
	mock_reply_json(call, json_pack("{s:[s,s,s]}", "ip_list",
	    "101.226.103.0/25", "101.226.233.128/25", "58.247.206.128/25"));
}

/*
 * POST /cgi-bin/mock/echo: {"errcode":0,"errmsg":"ok","appid":A,
 * "query":{...},"body":B}, the query without the access_token.
 */
void
mock_api_echo(struct mock_call *call)
{
	struct mock_account *a;
	struct evkeyval *kv;
	json_t *body, *q;

	if ((a = mock_api_caller(call)) == NULL)
		return;
	if ((body = mock_call_body(call)) == NULL)
		return;
	q = json_object();
	TAILQ_FOREACH(kv, &call->query, next) {
		if (strcmp(kv->key, "access_token") != 0)
			json_object_set_new(q, kv->key, json_string(kv->value));
	}
	mock_reply_json(call, json_pack("{s:i,s:s,s:s,s:o,s:o}", "errcode", 0,
	    "errmsg", "ok", "appid", a->appid, "query", q, "body", body));
}

/* GET /cgi-bin/mock/leak: an answer full of credential fields. */
void
mock_api_leak(struct mock_call *call)
{
	if (mock_api_caller(call) == NULL)
		return;
	mock_reply_json(call, json_pack("{s:i,s:s,s:s,s:i,s:s,s:{s:s,s:s,"
	    "s:[{s:s,s:i}]}}", "errcode", 0, "errmsg", "ok",
	    "access_token", "LEAKaccesstoken", "expires_in", 7200,
	    "pre_auth_code", "LEAKpreauthcode", "data",
	    "authorizer_refresh_token", "LEAKrefreshtoken", "keep", "yes",
	    "list", "ticket", "LEAKticket", "id", 1));
}

/* GET /cgi-bin/mock/big?n=N: {"errcode":0,"errmsg":"ok","data":"xx..."}. */
void
mock_api_big(struct mock_call *call)
{
	const char *n = mock_call_param(call, "n");
	char *data;
	long len;

	if (mock_api_caller(call) == NULL)
		return;
	len = n != NULL ? strtol(n, NULL, 10) : 0;
	if (len < 0 || len > MOCK_BIG_MAX) {
		mock_reply_error(call, 40097, "invalid args: n is 0..%d",
		    MOCK_BIG_MAX);
		return;
	}
	data = xmalloc((size_t)len + 1);
	memset(data, 'x', (size_t)len);
	data[len] = '\0';
	mock_reply_json(call, json_pack("{s:i,s:s,s:s}", "errcode", 0,
	    "errmsg", "ok", "data", data));
	free(data);
}
