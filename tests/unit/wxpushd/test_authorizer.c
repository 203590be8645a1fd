/*
 * A third-party platform's authorizers through their life, with a fake
 * upstream and a fixed clock: loaded from the store (waiting, revoked, no
 * refresh token), started once the component has its token, refresh tokens
 * committed before their access tokens are used (and not used when the
 * commit fails), 61023 recovered through api_get_authorizer_list or marked
 * for re-authorization, the component's token refused (compare-and-refresh),
 * and revocation kept in the store.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define COMP		"wxcomponent0001"
#define A1		"wxauthorizer0001"	/* stored with a refresh token */
#define A2		"wxauthorizer0002"	/* stored revoked */
#define A3		"wxauthorizer0003"	/* stored without a refresh token */
#define EP_COMPONENT	"/cgi-bin/component/api_component_token"
#define EP_AUTHORIZER	"/cgi-bin/component/api_authorizer_token"
#define EP_LIST		"/cgi-bin/component/api_get_authorizer_list"
#define EP_QUERY	"/cgi-bin/component/api_query_auth"
#define A4		"wxauthorizer0004"	/* authorized during the test */
#define A5		"wxauthorizer0005"	/* authorized, then idle */

static struct config		conf;
static struct component_conf	cc;
static time_t			t0 = 1700000000;
static char			dir[64];

/* Store an authorizer row as a previous run would have. */
static void
stored(const char *appid, const char *rt, int revoked)
{
	harness_authorizer(COMP, appid, rt, revoked, t0 - 100, 0);
}

/* An authorizer token answer with access token at and refresh token rt. */
static int
answer_authorizer(const char *at, const char *rt)
{
	char json[256];

	snprintf(json, sizeof json, "{\"authorizer_access_token\":\"%s\","
	    "\"expires_in\":7200,\"authorizer_refresh_token\":\"%s\"}", at, rt);
	return (fake_answer_first(EP_AUTHORIZER, json));
}

static void
setup(void)
{
	fake_daemon(&conf, t0, dir, sizeof dir);
	harness_component(&conf, &cc, COMP, t0 - 60);
	stored(A1, "RT1", 0);
	stored(A2, "RT2", 1);
	stored(A3, "", 0);
	send_init();
	component_init();
	component_reconcile(&conf);
}

/* What a restart finds in the store. */
static void
test_load(struct cred *p, struct cred *a1, struct cred *a2, struct cred *a3)
{
	ok(p != NULL && a1 != NULL && a2 != NULL && a3 != NULL,
	    "the component and its three stored authorizers are loaded");
	is_str(authorizer_component_appid(a1), COMP, "an authorizer knows its "
	    "component");
	is_str(cred_state_name(a2), "revoked", "a stored revocation holds");
	is_str(authorizer_detail(a3), "needs re-authorization",
	    "no stored refresh token: needs re-authorization");
	ok(!cred_usable(a3), "and it has no token");
	is_str(cred_state_name(a3), "failed", "state failed");
	ok(cred_permanent(a3), "an operator (the merchant) must act");
	is_int(fake_pending(EP_AUTHORIZER), 0, "no authorizer refreshes "
	    "before the component has a token");
	ok(strstr(authorizer_detail(a1), "waiting") != NULL ||
	    !cred_refreshing(a1), "the authorizer waits for the component");
}

/* The component's token starts the waiting authorizer, spread a little. */
static void
test_start(struct cred *p, struct cred *a1)
{
	event_base_loop(wx_base, EVLOOP_ONCE);	/* the first refresh, jittered */
	is_int(fake_pending(EP_COMPONENT), 1, "the component token is asked "
	    "for at start");
	is_str(fake_body_str(EP_COMPONENT, "component_verify_ticket"), "TICKET",
	    "with the stored verify ticket");
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CT1\","
	    "\"expires_in\":7200}");
	ok(cred_usable(p), "the component has its token");
	event_base_loop(wx_base, EVLOOP_ONCE);	/* the staggered start */
	is_int(fake_pending(EP_AUTHORIZER), 1, "then the authorizer refreshes");
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_refresh_token"), "RT1",
	    "with its stored refresh token");
	answer_authorizer("AT1", "RT1b");
	ok(cred_usable(a1), "the authorizer has its token");
	is_str(harness_stored_rt(A1, NULL), "RT1b",
	    "the rotated refresh token is committed");
}

/* A refresh token that cannot be committed: its access token is not used. */
static void
test_commit_fails(struct cred *a1)
{
	uint64_t gen = cred_gen(a1);

	cred_refresh(a1, 0);
	store_close();
	answer_authorizer("AT2", "RT1c");
	is_int(cred_gen(a1), gen, "the new access token is not taken");
	is_str(cred_token(a1), "AT1", "the old one, still valid, stays");
	ok(strstr(cred_last_error(a1), "could not store") != NULL,
	    "last_error says the refresh token could not be stored");
	harness_store_open(dir);
	is_str(harness_stored_rt(A1, NULL), "RT1b",
	    "the store still has the last committed refresh token");
	cred_refresh(a1, 0);
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_refresh_token"), "RT1b",
	    "the next refresh uses the committed one");
	answer_authorizer("AT3", "RT1b");
	is_str(cred_token(a1), "AT3", "and its token is taken");
}

/* 61023: a newer refresh token from api_get_authorizer_list, or none. */
static void
test_61023(struct cred *a1)
{
	cred_refresh(a1, 0);
	fake_answer_first(EP_AUTHORIZER,
	    "{\"errcode\":61023,\"errmsg\":\"invalid refresh token\"}");
	is_int(fake_pending(EP_LIST), 1, "61023 without Redis: "
	    "api_get_authorizer_list is walked");
	fake_answer_first(EP_LIST,
	    "{\"total_count\":1,\"list\":[{\"authorizer_appid\":\""
	    A1 "\",\"refresh_token\":\"RTLIST\",\"auth_time\":1}]}");
	is_str(harness_stored_rt(A1, NULL), "RTLIST",
	    "the listed refresh token is committed");
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_refresh_token"),
	    "RTLIST", "and the refresh is tried again with it");
	answer_authorizer("AT4", "RTLIST");
	ok(cred_usable(a1) && strcmp(cred_token(a1), "AT4") == 0,
	    "the authorizer recovered without a new authorization");

	cred_refresh(a1, 0);
	fake_answer_first(EP_AUTHORIZER, "{\"errcode\":61023}");
	fake_answer_first(EP_LIST,
	    "{\"total_count\":1,\"list\":[{\"authorizer_appid\":\""
	    A1 "\",\"refresh_token\":\"RTLIST\",\"auth_time\":1}]}");
	is_int(fake_pending(EP_AUTHORIZER), 0, "the list has only the refused "
	    "token: no retry");
	is_str(authorizer_detail(a1), "needs re-authorization",
	    "needs re-authorization");
	ok(cred_permanent(a1), "which only the merchant can fix");
	ok(cred_usable(a1), "the token it still has is used until it lapses");
}

/* What the authorize method is told. */
static void
authorize_done(void *arg, const struct rpc_error *e, const char *info_type,
    const char *appid)
{
	(void)info_type;
	*(int *)arg = e == NULL && appid != NULL && (strcmp(appid, A4) == 0 ||
	    strcmp(appid, A5) == 0) ? 1 : -1;
}

/*
 * A new authorization (api_query_auth) installs an authorizer; the
 * component's token refused in its refresh is compare-and-refreshed; 61003
 * revokes it durably.
 */
static void
test_authorize_and_revoke(struct cred *p)
{
	struct cred *a;
	int done = 0, revoked = 0;

	component_authorize(COMP, "AUTHCODE", authorize_done, &done);
	is_str(fake_body_str(EP_QUERY, "authorization_code"), "AUTHCODE",
	    "authorize exchanges the code with api_query_auth");
	fake_answer_first(EP_QUERY,
	    "{\"authorization_info\":{\"authorizer_appid\":\""
	    A4 "\",\"authorizer_access_token\":\"AT4\",\"expires_in\":7200,"
	    "\"authorizer_refresh_token\":\"RT4\"}}");
	is_int(done, 1, "and answers with the authorizer's appid");
	if ((a = cred_find(A4)) == NULL) {
		ok(0, "the new authorizer exists");
		return;
	}
	ok(cred_usable(a), "the new authorizer has its token at once");
	is_str(harness_stored_rt(A4, NULL), "RT4",
	    "its refresh token is committed");
	is_int(cred_calls_today(a), 1, "api_query_auth counts as a token call");
	(void)p;
	cred_refresh(a, 0);
	fake_answer_first(EP_AUTHORIZER, "{\"errcode\":40001}");
	is_int(fake_pending(EP_COMPONENT), 1, "40001 there refreshes the "
	    "component's token");
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CT2\","
	    "\"expires_in\":7200}");
	event_base_loop(wx_base, EVLOOP_ONCE);
	is_int(fake_pending(EP_AUTHORIZER), 1, "and the authorizer tries "
	    "again with the new one");
	answer_authorizer("AT5", "RT5");
	ok(cred_usable(a), "it has its token");
	cred_refresh(a, 0);
	fake_answer_first(EP_AUTHORIZER, "{\"errcode\":61003}");
	is_str(cred_state_name(a), "revoked", "61003: revoked");
	{
		is_str(harness_stored_rt(A4, &revoked), "RT5",
		    "the refresh token stays in the store");
		is_int(revoked, 1, "with the revocation committed");
	}
	cred_refresh(a, 0);
	is_int(fake_pending(EP_AUTHORIZER), 0, "a revoked authorizer is not "
	    "refreshed");
}

/* The component has a usable token at the test's clock. */
static void
component_fresh(void)
{
	struct cred *p = cred_find(COMP);

	if (cred_usable(p) && cred_expires_in(p) > 600)
		return;
	cred_refresh(p, 0);
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CTI\","
	    "\"expires_in\":7200}");
}

/*
 * authorizer_idle: one used within the window is refreshed proactively; one
 * idle longer dozes (no refresh calls, its token lapses) until a send asks,
 * which costs one api_authorizer_token call shared by concurrent sends, and
 * it is proactive again.
 */
static void
test_idle(void)
{
	struct timeval tv;
	struct cred *a;
	time_t t = t0 + 20000;
	int done = 0;

	clock_set(t);
	component_fresh();
	conf.authorizer_idle = 3600;
	component_authorize(COMP, "AUTHCODE5", authorize_done, &done);
	fake_answer_first(EP_QUERY,
	    "{\"authorization_info\":{\"authorizer_appid\":\""
	    A5 "\",\"authorizer_access_token\":\"AT50\",\"expires_in\":7200,"
	    "\"authorizer_refresh_token\":\"RT5\"}}");
	if ((a = cred_find(A5)) == NULL || !cred_usable(a)) {
		ok(0, "the authorizer to idle is authorized");
		return;
	}
	ok(cred_used_at(a) == t, "a new authorization counts as a use");
	clock_set(t + 1800);
	component_fresh();
	cred_refresh_if_used(a);	/* what its refresh timer does */
	is_int(fake_pending(EP_AUTHORIZER), 1, "used within authorizer_idle: "
	    "refreshed proactively");
	answer_authorizer("AT51", "RT5");
	ok(cred_refresh_due(a, &tv), "and its next refresh is armed");

	clock_set(t + 3601);
	cred_refresh_if_used(a);
	is_int(fake_pending(EP_AUTHORIZER), 0, "idle longer than "
	    "authorizer_idle: not refreshed");
	ok(cred_dozing(a), "it dozes");
	ok(!cred_refresh_due(a, &tv), "with no refresh timer left");
	ok(cred_usable(a), "its token is used until it lapses");

	clock_set(t + 1800 + 7300);
	is_str(cred_state_name(a), "idle", "once the token lapsed: state "
	    "idle");
	cred_refresh_if_used(a);
	is_int(fake_pending(EP_AUTHORIZER), 0, "still no refresh call while "
	    "idle");
	ok(cred_calls_today(a) <= 2, "no token call spent on it");

	/* Two sends arrive together (send.c's send_submit uses it). */
	component_fresh();
	cred_use(a);
	cred_use(a);
	cred_wanted(a);
	is_int(fake_pending(EP_AUTHORIZER), 1, "the first send fetches a "
	    "token: one api_authorizer_token call for concurrent sends");
	ok(!cred_dozing(a), "it is awake");
	answer_authorizer("AT52", "RT5b");
	ok(cred_usable(a) && strcmp(cred_token(a), "AT52") == 0,
	    "the sends have their token after one round trip");
	is_str(harness_stored_rt(A5, NULL), "RT5b",
	    "the rotated refresh token is committed as always");
	ok(cred_refresh_due(a, &tv) && tv.tv_sec > 3600,
	    "and it is refreshed proactively again");
	clock_set(t + 1800 + 7300 + 600);
	component_fresh();
	cred_refresh_if_used(a);
	is_int(fake_pending(EP_AUTHORIZER), 1, "its next refresh (within the "
	    "window) calls WeChat");
	answer_authorizer("AT53", "RT5b");
	conf.authorizer_idle = 0;
}

int
main(void)
{
	struct cred *p, *a1, *a2, *a3;

	log_init("test_authorizer", 1, LOG_LEVEL_ERR);
	setup();
	p = cred_find(COMP);
	a1 = cred_find(A1);
	a2 = cred_find(A2);
	a3 = cred_find(A3);
	test_load(p, a1, a2, a3);
	test_start(p, a1);
	test_commit_fails(a1);
	test_61023(a1);
	test_authorize_and_revoke(p);
	test_idle();
	return (tap_done());
}
