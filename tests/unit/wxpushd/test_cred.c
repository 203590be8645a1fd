/*
 * The credential machine and the send path, with a fixed clock and a fake
 * upstream: refresh moments and jitter, the stable API's same-token answer,
 * compare-and-refresh (a refusal that arrives after the new token included),
 * the breaker, force_refresh and its limits, backoff, errors that need an
 * operator, and sends: success, requeue on a refused token, retry of -1, the
 * 500 ms floor before a deadline, 45009's retry_after, 40164's failed state.
 */
#include "config.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define STABLE		"/cgi-bin/stable_token"
#define SUBSCRIBE	"/cgi-bin/message/template/subscribe"
#define MARGIN		300

static struct config	conf;
static struct account_conf accounts[6];
static time_t		t0 = 1700000000;	/* the fixed "now" */
static struct client	client;

/* Seconds from now until c's refresh is due; -1 if none is armed. */
static double
due_in(const struct cred *c)
{
	struct timeval tv, now;

	if (!cred_refresh_due(c, &tv))
		return (-1);
	gettimeofday(&now, NULL);
	return ((double)(tv.tv_sec - now.tv_sec) +
	    (double)(tv.tv_usec - now.tv_usec) / 1e6);
}

/* Whether the pending stable_token call asks for force_refresh. */
static int
pending_force(void)
{
	return (fake_body_true(STABLE, "force_refresh"));
}

/* Send a templateSubscribe message as appid, as a root client would. */
static void
do_send(const char *appid)
{
	harness_subscribe(&client, send_method, appid, "OPENID", "TEMPLATE", 1);
}

/* How many sends of c ended with outcome o. */
static long long
outcome(const struct cred *c, enum send_outcome o)
{
	const struct send_counters *sc = send_counters_of(c);

	return (sc != NULL ? (long long)sc->outcome[o] : 0);
}

/* Whether the pending subscribe call carries token in its query. */
static int
send_uses(const char *token)
{
	char want[128];

	snprintf(want, sizeof want, "access_token=%s", token);
	return (fake_query_is(SUBSCRIBE, want));
}

static void
setup(void)
{
	char dir[64], appid[32];
	size_t i;

	fake_daemon(&conf, t0, dir, sizeof dir);
	for (i = 0; i < sizeof accounts / sizeof accounts[0]; i++) {
		snprintf(appid, sizeof appid, "wxtestaccount%zu", i);
		harness_account(&conf, &accounts[i], appid);
	}
	harness_client(&client, NULL);
	send_init();
	official_reconcile(&conf);
	/* Each test starts its credential's refresh itself. */
	for (i = 0; i < sizeof accounts / sizeof accounts[0]; i++)
		cred_cancel(cred_find(accounts[i].appid));
}

/* The first refresh, its moment, and the stable API's same-token answer. */
static void
test_refresh_moment(struct cred *c)
{
	double d;

	ok(!cred_usable(c), "no token before the first refresh");
	cred_refresh(c, 0);
	is_int(fake_pending(STABLE), 1, "one stable_token call");
	is_int(pending_force(), 0, "without force_refresh");
	cred_refresh(c, 0);
	is_int(fake_pending(STABLE), 1, "a second refresh while one is in "
	    "flight makes no call");
	fake_token("TOKEN1");
	ok(cred_usable(c), "the token is usable");
	is_str(cred_state_name(c), "valid", "state valid");
	is_int(cred_calls_today(c), 1, "one token call counted");
	d = due_in(c);
	ok(d >= 7200 - MARGIN - MARGIN / 5 - 0.1 && d <= 7200 - MARGIN + 1,
	    "refresh due margin plus up to a fifth of it before expiry (%.1f)",
	    d);
	/* The stable API answers with the token we hold: no loop. */
	cred_refresh(c, 0);
	fake_token("TOKEN1");
	d = due_in(c);
	ok(d >= 7200 - 270 - 0.1 && d <= 7200 - 240 + 1,
	    "same token: next try 240-270 s before expiry (%.1f)", d);
	is_int(cred_gen(c), 1, "the same token is not a new generation");
}

/* A burst of refusals makes one refresh; a late one is ignored. */
static void
test_compare_and_refresh(struct cred *c)
{
	uint64_t gen1 = cred_gen(c);
	int i;

	for (i = 0; i < 50; i++)
		cred_token_failed(c, gen1, 40001);
	is_int(fake_pending(STABLE), 1, "50 refusals of one token: one call");
	ok(!cred_usable(c), "the refused token is not used meanwhile");
	fake_token("TOKEN2");
	ok(cred_usable(c) && cred_gen(c) == gen1 + 1, "a new generation");
	/* A send that used TOKEN1 answers late, after TOKEN2 is in place. */
	cred_token_failed(c, gen1, 40001);
	is_int(fake_pending(STABLE), 0, "a late refusal of the old token "
	    "refreshes nothing");
	is_str(cred_last_error(c), "", "and trips no breaker (nothing to "
	    "report)");
	is_int(cred_last_errcode(c), 0, "no errcode recorded");
	ok(cred_usable(c), "the new token stays in use");
}

/* A fresh token refused within 60 s: the breaker, then its end. */
static void
test_breaker(struct cred *c)
{
	uint64_t gen2 = cred_gen(c);

	clock_set(t0 + 10);
	cred_token_failed(c, gen2, 40001);
	is_int(fake_pending(STABLE), 0, "a fresh token refused at once: no "
	    "refresh (breaker)");
	ok(cred_usable(c), "the token stays in use while it is open (the "
	    "proactive schedule goes on)");
	ok(strstr(cred_last_error(c), "fresh token") != NULL,
	    "last_error says why");
	cred_token_failed(c, gen2, 40001);
	is_int(fake_pending(STABLE), 0, "still no refresh while open");
	clock_set(t0 + 80);
	cred_token_failed(c, gen2, 40001);
	is_int(fake_pending(STABLE), 1, "after the breaker and 60 s: a "
	    "refusal refreshes again");
	fake_token("TOKEN3");
	clock_set(t0);
}

/* WeChat hands back the token it refused: force_refresh, within limits. */
static void
test_force_refresh(struct cred *c)
{
	int i, forced = 0;

	cred_refresh(c, 0);
	fake_token("SAME");
	for (i = 0; i < 25; i++) {
		clock_set(t0 + 100 + i * 31);
		cred_token_failed(c, cred_gen(c), 40001);
		if (fake_pending(STABLE) == 0)
			cred_refresh(c, 0);
		if (pending_force() != 0)
			break;
		fake_token("SAME");	/* the refused token again */
		if (pending_force() == 1) {
			forced++;
			fake_token("SAME");
		}
		if (i == 0) {
			is_int(forced, 1, "the refused token back: one "
			    "force_refresh");
			is_int(fake_pending(STABLE), 0, "and not a second "
			    "within 30 s");
			ok(strstr(cred_last_error(c), "refused token") != NULL,
			    "last_error says WeChat gave the refused token");
		}
	}
	is_int(forced, 20, "force_refresh at most 20 times a day");
	clock_set(t0 + 86400);
	cred_refresh(c, 0);
	fake_token("SAME");
	is_int(pending_force(), 1, "the next day, force_refresh again");
	fake_token("NEW");
	clock_set(t0);
}

/* Failures back off, doubling; errors that need an operator wait long. */
static void
test_backoff(struct cred *c)
{
	double want = 1, d;
	int i, okd = 1;

	for (i = 0; i < 5; i++) {
		cred_refresh(c, 0);
		fake_answer_first(STABLE,
		    "{\"errcode\":-1,\"errmsg\":\"busy\"}");
		d = due_in(c);
		if (d < want - 0.1 || d > want + 1)
			okd = 0;
		want *= 2;
	}
	ok(okd, "backoff 1, 2, 4, 8, 16 s");
	is_int(cred_failures(c), 5, "five failures counted");
	is_str(cred_state_name(c), "expired", "expired, not failed");
	cred_refresh(c, 0);
	fake_answer_first(STABLE, "{\"errcode\":40164,\"errmsg\":\"ip\"}");
	is_str(cred_state_name(c), "failed", "40164 needs an operator: failed");
	d = due_in(c);
	ok(d >= 600 - 0.1 && d <= 601, "retried after 10 minutes (%.1f)", d);
	is_int(cred_last_errcode(c), 40164, "last_errcode");
	do_send(cred_appid(c));
	is_int(outcome(c, SEND_UNAVAILABLE), 1, "a send is answered "
	    "unavailable at once");
	is_int(fake_pending(SUBSCRIBE), 0, "without a call");
	cred_refresh(c, 0);
	fake_token("BACK");
	ok(cred_usable(c) && cred_failures(c) == 0, "a success clears the "
	    "failures");
}

/* Sends: success, requeue on a refused token, retry of -1. */
static void
test_send(struct cred *c)
{
	struct timeval two = { 2, 0 };
	struct upstream_call *call;

	cred_refresh(c, 0);
	fake_token("SENDTOKEN");
	do_send(cred_appid(c));
	ok(send_uses("SENDTOKEN"), "the send goes out with the token");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":0,\"errmsg\":\"ok\"}");
	is_int(outcome(c, SEND_OK), 1, "ok");

	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":40001}");
	is_int(fake_pending(STABLE), 1, "a refused token: one refresh");
	is_int(send_queue_of(c).queued, 1, "the send waits in the queue");
	fake_token("SENDTOKEN2");
	ok(send_uses("SENDTOKEN2"), "and goes again with the new token");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":0,\"errmsg\":\"ok\"}");
	is_int(outcome(c, SEND_OK), 2, "ok on the second attempt");

	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":-1}");
	is_int(fake_pending(SUBSCRIBE), 0, "-1: no attempt at once");
	/* The retry's backoff, at most 2 s even if none was armed. */
	event_base_loopexit(wx_base, &two);
	event_base_loop(wx_base, EVLOOP_ONCE);
	ok((call = fake_first(SUBSCRIBE)) != NULL, "a retry after a backoff");
	if (call != NULL)
		fake_answer(call, "{\"errcode\":0,\"errmsg\":\"ok\"}");
	is_int(outcome(c, SEND_OK), 3, "ok after the retry");

	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":45011}");
	is_int(outcome(c, SEND_WECHAT), 1, "45011 is answered, not retried");
	is_int(fake_pending(NULL), 0, "nothing pending");
}

/* The last reply written to the client: its error map's int field, or -1. */
static long long
reply_int(const char *field)
{
	struct evbuffer *out = bufferevent_get_output(client.bev);
	msgpack_unpacked up;
	const msgpack_object *err, *v;
	size_t len = evbuffer_get_length(out), off = 0;
	const char *data;
	long long r = -1;

	if (len == 0)
		return (-1);
	data = (const char *)evbuffer_pullup(out, -1);
	msgpack_unpacked_init(&up);
	while (msgpack_unpack_next(&up, data, len, &off) ==
	    MSGPACK_UNPACK_SUCCESS) {
		r = -1;
		if (up.data.type != MSGPACK_OBJECT_ARRAY ||
		    up.data.via.array.size != 4)
			continue;
		err = &up.data.via.array.ptr[2];
		if (err->type == MSGPACK_OBJECT_MAP &&
		    (v = rpc_map_get(err, field)) != NULL &&
		    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			r = (long long)v->via.u64;
		else if (err->type == MSGPACK_OBJECT_MAP &&
		    (v = rpc_map_get(err, field)) != NULL &&
		    v->type == MSGPACK_OBJECT_BOOLEAN)
			r = v->via.boolean;
	}
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(out, len);
	return (r);
}

/*
 * 45009 on a send is retryable after the rest of WeChat's quota day
 * (midnight UTC+8); 40164 on a send marks the credential failed (status,
 * metrics) until a call with the token succeeds again, or a refresh does.
 */
static void
test_quota_and_whitelist(struct cred *c)
{
	/* 2023-11-14 22:13:20 UTC is 06:13:20 in Beijing: 17:46:40 left. */
	client.bev = bufferevent_socket_new(wx_base, -1, 0);
	cred_refresh(c, 0);
	fake_token("QUOTATOKEN");
	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":45009,"
	    "\"errmsg\":\"reach max api daily quota limit\"}");
	is_int(reply_int("retry_after"), 86400 - (6 * 3600 + 13 * 60 + 20),
	    "45009: retry_after is the time until midnight UTC+8");
	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":45009}");
	is_int(reply_int("retryable"), 1, "45009: retryable");
	ok(strcmp(cred_state_name(c), "valid") == 0, "45009 on a send leaves "
	    "the credential valid");

	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":40164,"
	    "\"errmsg\":\"invalid ip 192.0.2.1, not in whitelist\"}");
	is_int(reply_int("retryable"), 0, "40164: not retryable");
	ok(strcmp(cred_state_name(c), "failed") == 0, "40164 on a send: the "
	    "credential is failed");
	is_int(cred_last_errcode(c), 40164, "last_errcode 40164");
	ok(strstr(cred_last_error(c), "whitelist") != NULL, "last_error "
	    "names the whitelist");
	ok(cred_usable(c), "the token is still used");
	is_int(fake_pending(STABLE), 0, "40164 refreshes nothing");
	do_send(cred_appid(c));
	ok(send_uses("QUOTATOKEN"), "the next send goes out with the token");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(strcmp(cred_state_name(c), "valid") == 0, "a send that succeeds "
	    "clears it");
	is_int(cred_last_errcode(c), 0, "and last_errcode");

	do_send(cred_appid(c));
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":40164}");
	ok(strcmp(cred_state_name(c), "failed") == 0, "40164 again: failed");
	cred_refresh(c, 0);
	fake_token("QUOTATOKEN2");
	ok(strcmp(cred_state_name(c), "valid") == 0, "a refresh that "
	    "succeeds clears it");
	is_int(cred_last_errcode(c), 0, "and last_errcode");
	bufferevent_free(client.bev);
	client.bev = NULL;
}

/* A send waits for a token; with under 500 ms left it is not started. */
static void
test_deadline_floor(struct cred *c)
{
	conf.send_timeout = 1;
	send_init();
	cred_refresh(c, 0);
	do_send(cred_appid(c));
	is_int(send_queue_of(c).queued, 1, "the send waits for the token");
	usleep(600 * 1000);
	event_base_loop(wx_base, EVLOOP_NONBLOCK);
	fake_token("LATE");
	is_int(fake_pending(SUBSCRIBE), 0, "with 400 ms left the send is not "
	    "started");
	is_int(outcome(c, SEND_UNAVAILABLE), 1, "it is answered unavailable");
	conf.send_timeout = 5;
	send_init();
}

int
main(void)
{
	log_init("test_cred", 1, LOG_LEVEL_WARN);
	setup();
	test_refresh_moment(cred_find(accounts[0].appid));
	test_compare_and_refresh(cred_find(accounts[0].appid));
	test_breaker(cred_find(accounts[0].appid));
	test_force_refresh(cred_find(accounts[1].appid));
	test_backoff(cred_find(accounts[2].appid));
	test_send(cred_find(accounts[3].appid));
	test_deadline_floor(cred_find(accounts[4].appid));
	test_quota_and_whitelist(cred_find(accounts[5].appid));
	return (tap_done());
}
