/*
 * call and jssdk_sign with a fixed clock and a fake upstream: the JS-SDK
 * signature against WeChat's documented example, a call refused with 40001
 * retried once with the refreshed token, a -1 retried after a backoff, the
 * credential fields stripped from an answer, and the jsapi_ticket: fetched
 * with the access token, a 40001 refreshing the access token first, the
 * ticket's own refresh scheduled before it expires.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define STABLE		"/cgi-bin/stable_token"
#define GETTICKET	"/cgi-bin/ticket/getticket"
#define API		"/cgi-bin/test/thing"
#define MARGIN		300

static struct config	conf;
static struct account_conf account;
static struct client	client;
static char		*apis[] = { "/cgi-bin/test/*" };

/* method {appid, key: value}: call {appid, path} or jssdk_sign {appid, url}. */
static void
run_with(void (*method)(struct request *, const msgpack_object *),
    const char *key, const char *value)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	rpc_pack_kv_str(&pk, "appid", account.appid);
	rpc_pack_kv_str(&pk, key, value);
	harness_request(&client, method, &sb);
}
#define do_call(path)	run_with(method_call, "path", (path))
#define do_sign(url)	run_with(jsapi_method_sign, "url", (url))

/* The call counters of the only apis entry. */
static const struct call_stat *
stat0(void)
{
	return (method_call_stat(0));
}

static void
setup(void)
{
	char dir[64];

	fake_daemon(&conf, 1700000000, dir, sizeof dir);
	conf.refresh_margin = MARGIN;
	conf.send_timeout = 10;
	conf.call_max_body = 65536;
	conf.call_max_answer = 65536;
	harness_account(&conf, &account, "wxtestcallaccount1");
	account.apis.n = 1;
	account.apis.paths = apis;
	harness_client(&client, wx_base);
	send_init();
	official_reconcile(&conf);
}

/* WeChat's documented example (JS-SDK appendix 1, also WeCom's page). */
static void
test_sign_vector(void)
{
	char sig[41];

	ok(jsapi_sign("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbS"
	    "lYy3-Sl-HhTdfl2fzFy1AOcHKP7qg", "Wm3WZYTPz0wzccnW",
	    "http://mp.weixin.qq.com?params=value", 1414587457, sig) == 0,
	    "jsapi_sign computes");
	is_str(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed",
	    "the documented example's signature");
}

/* A call refused with 40001 goes again once with the new token. */
static void
test_call_refresh(void)
{
	char buf[1024] = "";

	cred_refresh(cred_find(account.appid), 0);
	fake_token("T1");
	do_call(API);
	ok(fake_query_is(API, "access_token=T1"), "the call carries the token");
	fake_answer_first(API,
	    "{\"errcode\":40001,\"errmsg\":\"invalid credential\"}");
	is_int(fake_pending(STABLE), 1, "40001: one token refresh");
	is_int(fake_pending(API), 0, "the call waits for the new token");
	fake_token("T2");
	ok(fake_query_is(API, "access_token=T2"), "and goes again with it");
	fake_answer_first(API, "{\"errcode\":0,\"errmsg\":\"ok\",\"n\":1,"
	    "\"authorizer_access_token\":\"SECRET1\","
	    "\"x\":{\"ticket\":\"S2\"}}");
	ok(stat0() != NULL && stat0()->outcome[SEND_OK] == 1, "it succeeds");
	ok(!fake_changed(), "WeChat's answer object is left as it came: "
	    "read-only, it may be shared");
	is_int(stat0() != NULL ? (long long)stat0()->stripped : -1, 2,
	    "two credential fields stripped");
	ok(harness_reply(&client, buf, sizeof buf) == 0 &&
	    strstr(buf, "SECRET") == NULL && strstr(buf, "S2") == NULL &&
	    strstr(buf, "\"n\"=>1") != NULL,
	    "the reply has the answer without them (%s)", buf);
}

/* -1 is retried after a backoff. */
static void
test_call_busy(void)
{
	do_call(API);
	fake_answer_first(API, "{\"errcode\":-1,\"errmsg\":\"system busy\"}");
	is_int(fake_pending(API), 0, "-1: no attempt at once");
	event_base_loop(wx_base, EVLOOP_ONCE);
	ok(fake_pending(API) == 1, "a retry after a backoff");
	fake_answer_first(API, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(stat0() != NULL && stat0()->outcome[SEND_OK] == 2, "ok after the "
	    "retry");
}

/* The ticket: fetched with the access token; 40001 refreshes that first. */
static void
test_ticket(void)
{
	char buf[1024] = "";
	struct cred *tc;
	struct timeval tv;

	/* Past the breaker's window of the token a refusal brought (cred.c). */
	clock_set(1700000000 + 100);
	do_sign("https://example.com/a?b=1#frag");
	event_base_loop(wx_base, EVLOOP_ONCE);	/* the new credential starts */
	ok(fake_query_is(GETTICKET, "access_token=T2&type=jsapi"),
	    "getticket is called with the access token");
	fake_answer_first(GETTICKET,
	    "{\"errcode\":40001,\"errmsg\":\"invalid credential\"}");
	is_int(fake_pending(STABLE), 1, "40001: the access token is refreshed");
	fake_token("T3");
	is_int(fake_pending(GETTICKET), 0, "the ticket waits out a short "
	    "backoff");
	event_base_loop(wx_base, EVLOOP_ONCE);
	ok(fake_query_is(GETTICKET, "access_token=T3&type=jsapi"),
	    "then asks again with the new access token");
	fake_answer_first(GETTICKET, "{\"errcode\":0,\"errmsg\":\"ok\","
	    "\"ticket\":"
	    "\"TICKET1\",\"expires_in\":7200}");
	tc = cred_find("wxtestcallaccount1/jsapi");
	ok(tc != NULL && cred_usable(tc), "the ticket credential is valid");
	ok(harness_reply(&client, buf, sizeof buf) == 0 &&
	    strstr(buf, "signature") != NULL && strstr(buf, "TICKET1") == NULL,
	    "the waiting signature is answered, without the ticket (%s)", buf);
	ok(tc != NULL && cred_refresh_due(tc, &tv) &&
	    tv.tv_sec - time(NULL) <= 7200 - MARGIN + 2 &&
	    tv.tv_sec - time(NULL) >= 7200 - MARGIN - MARGIN / 5 - 2,
	    "its refresh is due before it expires");
	do_sign("https://example.com/");
	is_int(fake_pending(GETTICKET), 0, "a second signature makes no call");
}

int
main(void)
{
	log_init("test_call", 1, LOG_LEVEL_WARN);
	setup();
	test_sign_vector();
	test_call_refresh();
	test_call_busy();
	test_ticket();
	return (tap_done());
}
