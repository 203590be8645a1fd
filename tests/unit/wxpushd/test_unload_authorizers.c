/*
 * Dozing authorizers leave memory: with authorizer_idle, one unused for the
 * window dozes, and one dozing for a further window is unloaded by the
 * sweep (its row stays, with its refresh token and last use); its next send
 * loads it again like a never-loaded one (one api_authorizer_token call).
 * One with a send queued or upstream, or a refresh in flight, stays; a
 * lane's credential never dangles (run it under ASan or valgrind); its sends
 * stay counted in its platform's sums; a jsapi_ticket's refresh loads its
 * unloaded authorizer again.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-redis.h"
#include "harness.h"
#include "fake-upstream.h"
#include "tap.h"

#define COMP		"wxcomponent0001"
#define A1		"wxunload0001"		/* unloaded, then sent again */
#define A2		"wxunload0002"		/* a send queued, one upstream */
#define A3		"wxunload0003"		/* a refresh in flight */
#define W		1800			/* authorizer_idle */
#define EP_COMPONENT	"/cgi-bin/component/api_component_token"
#define EP_AUTHORIZER	"/cgi-bin/component/api_authorizer_token"
#define EP_SEND		"/cgi-bin/message/template/subscribe"
#define EP_TICKET	"/cgi-bin/ticket/getticket"

static struct config		conf;
static struct component_conf	cc;
static struct client		client;
static time_t			t0 = 1700000000;
static char			dir[64];

/* The stored row's last use and refresh token (rt), or -1 if no row. */
static time_t
row(const char *appid, char *rt, size_t rtlen)
{
	struct store_authorizer sa;

	if (store_authorizer_load(appid, &sa) != 1)
		return (-1);
	snprintf(rt, rtlen, "%s", sa.refresh_token);
	return (sa.last_used);
}

/* Give authorizer appid's pending token call a token for secs seconds. */
static int
give_token(const char *appid, int secs)
{
	char json[256];

	if (strcmp(fake_body_str(EP_AUTHORIZER, "authorizer_appid"),
	    appid) != 0)
		return (-1);
	snprintf(json, sizeof json, "{\"authorizer_access_token\":\"AT%s\","
	    "\"expires_in\":%d,\"authorizer_refresh_token\":\"RT%s\"}",
	    appid, secs, appid);
	return (fake_answer_first(EP_AUTHORIZER, json));
}

/* Send a subscription notice as appid, as a root client would. */
static void
do_send(const char *appid)
{
	harness_subscribe(&client, send_method, appid, "OPENID", "TEMPLATE", 1);
}

/* jssdk_sign as appid, as a root client would. */
static void
do_sign(const char *appid)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	rpc_pack_kv_str(&pk, "appid", appid);
	rpc_pack_kv_str(&pk, "url", "https://example.com/page");
	harness_request(&client, jsapi_method_sign, &sb);
}

/* How many sends of c ended with outcome o. */
static long long
outcome(const struct cred *c, enum send_outcome o)
{
	const struct send_counters *sc = send_counters_of(c);

	return (sc != NULL ? (long long)sc->outcome[o] : 0);
}

/* Run the loop for ms milliseconds: sweep turns (1 s), flushes (5 s). */
static void
run_for(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(wx_base, &tv);
	event_base_dispatch(wx_base);
}

/*
 * Run the loop until appid is unloaded (removed, or freed already), for at
 * most ms; 1 if it is.
 */
static int
run_until_unloaded(const char *appid, long ms)
{
	struct cred *c;

	for (; ms > 0; ms -= 250) {
		run_for(250);
		if ((c = cred_find(appid)) == NULL || cred_removed(c))
			return (1);
	}
	return (0);
}

/* Make the loaded authorizer appid doze, as its proactive refresh would. */
static struct cred *
doze(const char *appid)
{
	struct cred *c = cred_find(appid);

	if (c == NULL)
		fatalx("doze: %s not loaded", appid);
	cred_refresh_if_used(c);
	return (c);
}

int
main(void)
{
	struct cred *c;
	char rt[WX_TOKEN_MAX + 1];
	time_t t;
	int n;

	log_init("test_unload_authorizers", 1, LOG_LEVEL_ERR);
	fake_daemon(&conf, t0, dir, sizeof dir);
	conf.authorizer_idle = W;
	conf.send_timeout = 60;	/* outlasts the flush the test waits for */
	harness_component(&conf, &cc, COMP, t0 - 60);
	harness_client(&client, NULL);
	harness_authorizer(COMP, A1, "RT" A1, 0, t0 - 60, t0 - 60);
	harness_authorizer(COMP, A2, "RT" A2, 0, t0 - 60, t0 - 60);
	harness_authorizer(COMP, A3, "RT" A3, 0, t0 - 60, t0 - 60);
	send_init();
	component_init();
	component_reconcile(&conf);

	/*
	 * The start: all three used within the window, each gets a token
	 * (A1's lapses before it is loaded again; the others' and the
	 * component's outlast the test, whose clock moves by hours).
	 */
	event_base_loop(wx_base, EVLOOP_ONCE);
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CT1\","
	    "\"expires_in\":86400}");
	for (n = 0; n < 200 && fake_pending(EP_AUTHORIZER) < 3; n++)
		run_for(500);	/* the spread start, up to 30 ms each */
	is_int(fake_pending(EP_AUTHORIZER), 3, "three authorizers refresh at "
	    "start");
	for (n = 0; n < 3; n++) {
		snprintf(rt, sizeof rt, "%s",
		    fake_body_str(EP_AUTHORIZER, "authorizer_appid"));
		give_token(rt, strcmp(rt, A1) == 0 ? 3000 : 86400);
	}
	ok(cred_usable(cred_find(A1)) && cred_usable(cred_find(A2)) &&
	    cred_usable(cred_find(A3)), "each has its token");

	/* The window and a minute later, unused: it dozes, stays for now. */
	clock_set(t0 + W + 60);
	c = doze(A1);
	ok(cred_dozing(c), "unused for authorizer_idle: it dozes");
	ok(!run_until_unloaded(A1, 1500), "dozing for less than a further "
	    "authorizer_idle: not unloaded");

	/* A further window: the sweep unloads it; its row is the truth. */
	clock_set(t0 + 2 * W + 120);
	ok(run_until_unloaded(A1, 10000) && cred_find(A1) == NULL,
	    "dozing for a further authorizer_idle: unloaded and freed "
	    "(cred_find finds nothing)");
	is_int((int)authorizer_unloads(), 1, "the unload is counted");
	is_int((int)(row(A1, rt, sizeof rt) - (t0 - 60)), 0, "its row "
	    "stays with its last use");
	is_str(rt, "RT" A1, "and its refresh token");

	/* Another host's refresh token, through Redis: to the row only. */
	fake_redis_handlers->authorizer(A1, COMP, "RTNEW" A1, 0, clock_now());
	ok(cred_find(A1) == NULL, "a refresh token from Redis for an unloaded "
	    "authorizer does not load it");
	row(A1, rt, sizeof rt);
	is_str(rt, "RTNEW" A1, "it is committed to its row");

	/* Its next send loads it again: one token call, then the send. */
	do_send(A1);
	c = cred_find(A1);
	ok(c != NULL && cred_kind(c) == CRED_AUTHORIZER, "a send loads it "
	    "from the store");
	is_int(fake_pending(EP_AUTHORIZER), 1, "one api_authorizer_token "
	    "call");
	is_str(fake_body_str(EP_AUTHORIZER, "authorizer_refresh_token"),
	    "RTNEW" A1, "with the stored refresh token (Redis's)");
	is_int(fake_pending(EP_SEND), 0, "the send waits for it");
	give_token(A1, 3000);
	is_int(fake_pending(EP_AUTHORIZER), 0, "no second token call");
	is_int(fake_pending(EP_SEND), 1, "the send goes out");
	fake_answer_first(EP_SEND, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(c != NULL && outcome(c, SEND_OK) == 1, "and succeeds");

	/*
	 * A2: one send upstream and one queued behind it (one slot), then
	 * unused for two windows and dozing, its use on disk: everything but
	 * its lane says it may go.
	 */
	conf.max_inflight = 1;
	t = t0 + 2 * W + 200;	/* A2's token is good till t0 + 86400 */
	clock_set(t);
	do_send(A2);
	do_send(A2);
	c = cred_find(A2);
	is_int(send_queue_of(c).inflight, 1, "A2: one send upstream");
	is_int(send_queue_of(c).queued, 1, "A2: one queued");
	clock_set(t + 2 * W + 120);
	doze(A2);
	ok(cred_dozing(c), "A2 dozes with its sends in the lane");
	/* The sweep writes its last use first (the flush, 5 s later). */
	for (n = 0; n < 40 && row(A2, rt, sizeof rt) != t; n++)
		run_for(250);
	is_int((int)(row(A2, rt, sizeof rt) - t), 0, "A2's last use is "
	    "written before it could go");
	ok(!run_until_unloaded(A2, 2500), "a send queued and one upstream: "
	    "not unloaded");
	fake_answer_first(EP_SEND, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	is_int(send_queue_of(c).inflight, 1, "A2: the queued send went out");
	ok(!run_until_unloaded(A2, 1500), "a send upstream: not unloaded");
	fake_answer_first(EP_SEND, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	is_int((int)outcome(c, SEND_OK), 2, "both sends succeeded");
	ok(run_until_unloaded(A2, 10000), "its lane empty: unloaded");
	run_for(10);
	ok(cred_find(A2) == NULL, "and freed, its lane with it (nothing "
	    "dangles: see ASan)");
	ok(send_counters_retired(COMP) != NULL &&
	    send_counters_retired(COMP)->outcome[SEND_OK] == 2, "its sends "
	    "stay counted in its platform's sums");
	conf.max_inflight = 4;

	/* A3: dozing, and a refresh in flight that did not wake it. */
	c = doze(A3);
	ok(cred_dozing(c), "A3 dozes");
	cred_refresh(c, 0);	/* as a Redis poll or a 61023 list entry */
	is_int(fake_pending(EP_AUTHORIZER), 1, "A3: a refresh in flight");
	ok(!run_until_unloaded(A3, 2500), "a refresh in flight: not "
	    "unloaded");
	give_token(A3, 86400);
	ok(cred_find(A3) == c, "A3 is still the same credential");

	/*
	 * A3 signs for the JS-SDK, then is unloaded: its jsapi_ticket's next
	 * refresh loads it again (the ticket names it by appid).
	 */
	do_sign(A3);
	for (n = 0; n < 20 && fake_pending(EP_TICKET) == 0; n++)
		run_for(50);
	is_int(fake_pending(EP_TICKET), 1, "A3's jsapi_ticket is fetched");
	fake_answer_first(EP_TICKET, "{\"errcode\":0,\"ticket\":\"TICKETA3\","
	    "\"expires_in\":7200}");
	t = clock_now() + 2 * W + 120;
	clock_set(t);
	doze(A3);
	ok(run_until_unloaded(A3, 10000), "A3 unused for two windows: "
	    "unloaded, its jsapi_ticket kept");
	run_for(10);
	c = cred_find(A3 JSAPI_KEY_SUFFIX);
	ok(c != NULL && cred_find(A3) == NULL, "the ticket stays, A3 is gone");
	if (c != NULL)
		cred_refresh(c, 0);	/* its timer, after the clock moved */
	ok(cred_find(A3) != NULL, "the ticket's refresh loads A3 again");
	is_int(fake_pending(EP_TICKET), 1, "and asks for a ticket with A3's "
	    "stored token");
	fake_answer_first(EP_TICKET, "{\"errcode\":0,\"ticket\":\"TICKETA3B\","
	    "\"expires_in\":7200}");
	ok(c != NULL && cred_usable(c), "the ticket is refreshed");

	is_int((int)authorizer_unloads(), 3, "three unloads in all");
	is_int(fake_pending(NULL), 0, "nothing pending");
	jsapi_shutdown();
	component_shutdown();
	cred_shutdown();
	store_close();
	return (tap_done());
}
