/*
 * The outbox's scheduler and retry rules, with a fixed clock and a fake
 * upstream: a message waits for its credential's token and goes when it comes,
 * 45011 pauses the appid until retry_after without counting the attempt, a
 * final refusal ends it, a batch is committed whole, a message claimed by a
 * run that died is attempted again as uncertain, its 43101 then counting as
 * delivered, callers of one appid get fair shares, state changes are
 * written in few operations and transactions, and send.c gets no more than
 * two rounds of an appid's messages at a time. The writer thread is real:
 * each step runs the loop until the commit is back.
 */
#include "config.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>
#include <sqlite3.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define STABLE		"/cgi-bin/stable_token"
#define SUBSCRIBE	"/cgi-bin/message/template/subscribe"

static struct config	conf;
static struct account_conf accounts[3];
static time_t		t0 = 1700000000;	/* the fixed "now" */
static struct client	client;
static char		dir[] = "/tmp/wxpushd-test-outbox.XXXXXX";

/* Run the loop (and the writer) until pred() or about 3 s. */
static int
run_until(int (*pred)(void))
{
	return (harness_run_until(pred, 3000));
}

/* Enqueue params as a request of a root client; n messages (batch if > 1). */
static void
do_enqueue(const char *appid, int n, int bad)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int i;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (n > 1) {
		msgpack_pack_map(&pk, 1);
		rpc_pack_str(&pk, "messages");
		msgpack_pack_array(&pk, n);
	}
	for (i = 0; i < n; i++)
		harness_pack_subscribe(&pk, appid, "OPENID", "TEMPLATE", 1,
		    bad && i == n - 1 ? "" : "title");
	harness_request(&client, outbox_method_enqueue, &sb);
}

static int64_t	want_id;
static int	want_state;

/* Whether message want_id is in want_state on disk. */
static int
in_state(void)
{
	struct outbox_row row;

	return (outbox_db_get(want_id, &row) == 1 && row.state == want_state);
}

static int
wait_state(int64_t id, int state)
{
	want_id = id;
	want_state = state;
	return (run_until(in_state));
}

/* The row of id (zeroed if none). */
static struct outbox_row
row_of(int64_t id)
{
	struct outbox_row row;

	if (outbox_db_get(id, &row) != 1)
		memset(&row, 0, sizeof row);
	return (row);
}

static int
subscribe_pending(void)
{
	return (fake_pending(SUBSCRIBE) > 0);
}

static int
stable_pending(void)
{
	return (fake_pending(STABLE) > 0);
}

static void
give_token(const char *token)
{
	if (fake_token(token) != 0)
		fatalx("give_token: no stable_token call");
}

static void
setup(void)
{
	char *cause = NULL, appid[32];
	size_t i;

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	fake_daemon_open(&conf, t0, dir);
	conf.state_dir = dir;
	conf.outbox_ttl = 86400;
	conf.outbox_limit = 1000;
	conf.outbox_keep = 86400;
	for (i = 0; i < sizeof accounts / sizeof accounts[0]; i++) {
		snprintf(appid, sizeof appid, "wxtestaccount%zu", i);
		harness_account(&conf, &accounts[i], appid);
		accounts[i].allow.set = 1;	/* uid 1234, and root */
		accounts[i].allow.n = 1;
		accounts[i].allow.rules = xcalloc(1,
		    sizeof *accounts[i].allow.rules);
		accounts[i].allow.rules[0].kind = ACL_UID;
		accounts[i].allow.rules[0].id = 1234;
	}
	harness_client(&client, NULL);
	send_init();
	official_reconcile(&conf);
	for (i = 0; i < sizeof accounts / sizeof accounts[0]; i++)
		cred_cancel(cred_find(accounts[i].appid));
	if (outbox_init(&cause) != 0)
		fatalx("outbox_init: %s", cause);
}

/* No token: queued, not attempted; the token comes: delivered. */
static void
test_waits_for_token(struct cred *c)
{
	struct outbox_row row;

	do_enqueue(cred_appid(c), 1, 0);
	ok(wait_state(1, OUTBOX_QUEUED), "enqueue commits message 1");
	harness_run_for(300);
	is_int(fake_pending(SUBSCRIBE), 0, "no attempt without a token");
	row = row_of(1);
	is_int(row.state, OUTBOX_QUEUED, "it stays queued");
	is_int(row.attempts, 0, "with no attempt counted");
	cred_refresh(c, 0);	/* the credential's own schedule */
	ok(run_until(stable_pending), "a token is fetched");
	give_token("T1");
	ok(run_until(subscribe_pending), "the token came: the message goes");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(wait_state(1, OUTBOX_DELIVERED), "delivered");
	is_int(row_of(1).attempts, 1, "after one attempt");
}

/* 45011: paused until the next minute, the attempt not counted. */
static void
test_rate_limited(struct cred *c)
{
	do_enqueue(cred_appid(c), 1, 0);
	ok(run_until(subscribe_pending), "message 2 is attempted");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":45011}");
	ok(wait_state(2, OUTBOX_QUEUED), "45011: queued again");
	is_int(row_of(2).attempts, 0, "the rate-limited attempt is not "
	    "counted");
	harness_run_for(1500);
	is_int(fake_pending(SUBSCRIBE), 0, "no attempt while paused");
	clock_set(t0 + 61);
	ok(run_until(subscribe_pending), "after retry_after it goes again");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(wait_state(2, OUTBOX_DELIVERED), "and is delivered");
	is_int(row_of(2).attempts, 1, "one attempt counted");
}

/* A final refusal ends the message with WeChat's errcode. */
static void
test_final(struct cred *c)
{
	struct outbox_row row;

	do_enqueue(cred_appid(c), 1, 0);
	ok(run_until(subscribe_pending), "message 3 is attempted");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":40003,"
	    "\"errmsg\":\"invalid openid\"}");
	ok(wait_state(3, OUTBOX_FAILED), "40003: failed");
	row = row_of(3);
	is_str(row.code, "wechat", "code wechat");
	is_int(row.errcode, 40003, "errcode 40003");
	is_str(row.errmsg, "invalid openid", "WeChat's errmsg");
	harness_run_for(300);
	is_int(fake_pending(SUBSCRIBE), 0, "not attempted again");
}

/* A batch with a bad message writes nothing; a good one all. */
static void
test_batch(struct cred *c)
{
	do_enqueue(cred_appid(c), 3, 1);
	harness_run_for(200);
	is_int(row_of(4).id, 0, "a batch with a bad message queues nothing");
	do_enqueue(cred_appid(c), 3, 0);
	ok(wait_state(6, OUTBOX_SENDING) || wait_state(6, OUTBOX_QUEUED) ||
	    row_of(6).id == 6, "a good batch commits all three (ids 4-6)");
	ok(row_of(4).id == 4 && row_of(5).id == 5, "ids in order");
	ok(run_until(subscribe_pending), "they are attempted");
	while (fake_pending(SUBSCRIBE) > 0 || !wait_state(6, OUTBOX_DELIVERED)) {
		if (!run_until(subscribe_pending))
			break;
		fake_answer(fake_first(SUBSCRIBE),
		    "{\"errcode\":0,\"errmsg\":\"ok\"}");
	}
	ok(row_of(4).state == OUTBOX_DELIVERED &&
	    row_of(5).state == OUTBOX_DELIVERED &&
	    row_of(6).state == OUTBOX_DELIVERED, "all three delivered");
}

/*
 * A row left sending by a run that died is queued again as uncertain at the
 * next start; a 43101 then means the first attempt got through.
 */
static void
test_uncertain(struct cred *c)
{
	sqlite3 *db;
	char *path;

	outbox_shutdown();
	xasprintf(&path, "%s/outbox.db", dir);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		fatalx("sqlite3_open");
	sqlite3_exec(db, "INSERT INTO outbox (appid, kind, body, uid, watch,"
	    " state, created_at, updated_at, next_at, not_after) SELECT appid,"
	    " kind, body, uid, 0, 1, created_at, created_at, 0, not_after + "
	    "100000 FROM outbox WHERE id = 1", NULL, NULL, NULL);
	sqlite3_close(db);
	free(path);
	{
		char *cause = NULL;

		if (outbox_init(&cause) != 0)
			fatalx("outbox_init: %s", cause);
	}
	ok(run_until(subscribe_pending), "a message sending at the last stop "
	    "is attempted again");
	fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":43101}");
	ok(wait_state(7, OUTBOX_DELIVERED), "its 43101 counts as delivered");
	is_int(row_of(7).errcode, 43101, "with the errcode kept");
	(void)c;
}

/*
 * Fair between callers: uid 0 queues 40 messages, then uid 1234 one; the
 * first claim (4: a quarter of the window of max_inflight 1) takes uid
 * 1234's among them, not only uid 0's oldest.
 */
static void
test_callers(struct cred *c)
{
	struct outbox_row row;
	int i, seen = 0;

	conf.max_inflight = 1;
	/* c has no token yet: nothing goes while they queue. */
	client.peer.uid = 0;
	do_enqueue(cred_appid(c), 40, 0);
	ok(wait_state(47, OUTBOX_QUEUED), "uid 0 queued 40 (ids 8-47)");
	client.peer.uid = 1234;
	do_enqueue(cred_appid(c), 1, 0);
	ok(wait_state(48, OUTBOX_QUEUED), "then uid 1234 one (id 48)");
	client.peer.uid = 0;
	harness_run_for(300);
	cred_refresh(c, 0);
	if (run_until(stable_pending))
		give_token("T3");
	/* Answer the first 8 attempts; see whether 48 is among them. */
	for (i = 0; i < 8; i++) {
		if (!run_until(subscribe_pending))
			break;
		fake_answer(fake_first(SUBSCRIBE),
		    "{\"errcode\":0,\"errmsg\":\"ok\"}");
		harness_run_for(50);
		if (outbox_db_get(48, &row) == 1 &&
		    row.state == OUTBOX_DELIVERED)
			seen = 1;
	}
	ok(seen, "uid 1234's message goes within the first claim, not after "
	    "uid 0's 40");
	while (run_until(subscribe_pending))
		fake_answer(fake_first(SUBSCRIBE),
		    "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(wait_state(47, OUTBOX_DELIVERED), "and all of uid 0's go too");
	conf.max_inflight = 4;
}

static int
four_pending(void)
{
	return (fake_pending(SUBSCRIBE) == 4);
}

/*
 * The state changes of one turn of the loop are one operation for the
 * writer, and a few of them wait for more (here: a minute) instead of
 * costing a transaction and an fsync each.
 */
static void
test_states_batched(struct cred *c)
{
	const char *delivered = "{\"errcode\":0,\"errmsg\":\"ok\"}";
	uint64_t c0, o0, c1, o1;
	int i;

	do_enqueue(cred_appid(c), 8, 0);
	ok(wait_state(56, OUTBOX_QUEUED), "8 queued (ids 49-56)");
	cred_refresh(c, 0);
	if (run_until(stable_pending))
		give_token("T2");
	ok(run_until(four_pending), "4 in flight (max_inflight)");
	ok(wait_state(56, OUTBOX_SENDING), "all 8 claimed");
	outbox_db_set_lazy(60000);
	outbox_db_counts(&c0, &o0);
	for (i = 0; i < 4; i++)	/* in one turn of the loop */
		fake_answer(fake_first(SUBSCRIBE), delivered);
	harness_run_for(300);
	fake_answer(fake_first(SUBSCRIBE), delivered);	/* another turn */
	harness_run_for(300);
	outbox_db_counts(&c1, &o1);
	is_int((int)(c1 - c0), 0, "5 deliveries: no transaction yet");
	is_int(row_of(49).state, OUTBOX_SENDING, "49 still sending on disk");
	outbox_db_set_lazy(0);
	ok(wait_state(53, OUTBOX_DELIVERED), "then 49-53 are delivered");
	outbox_db_counts(&c1, &o1);
	is_int((int)(c1 - c0), 1, "in one transaction");
	is_int((int)(o1 - o0), 2, "of two operations: one per turn");
	ok(row_of(49).state == OUTBOX_DELIVERED &&
	    row_of(52).state == OUTBOX_DELIVERED, "49 and 52 too");
	outbox_db_set_lazy(20);
	while (run_until(subscribe_pending))
		fake_answer(fake_first(SUBSCRIBE), delivered);
	ok(wait_state(56, OUTBOX_DELIVERED), "and the rest");
}

/*
 * The outbox hands send.c at most two rounds of max_inflight (4): when 45011
 * pauses the appid, the rest of its claimed messages go back to the queue
 * unattempted instead of each being refused by WeChat.
 */
static void
test_lane_bounded(struct cred *c)
{
	struct outbox_row row;
	int64_t id;
	int n = 0, attempted = 0, maxpending = 0;

	do_enqueue(cred_appid(c), 40, 0);
	ok(wait_state(96, OUTBOX_SENDING) || wait_state(96, OUTBOX_QUEUED),
	    "40 queued (ids 57-96)");
	harness_run_for(300);
	while (run_until(subscribe_pending)) {
		if ((int)fake_pending(SUBSCRIBE) > maxpending)
			maxpending = (int)fake_pending(SUBSCRIBE);
		fake_answer(fake_first(SUBSCRIBE), "{\"errcode\":45011}");
		n++;
	}
	ok(maxpending <= 4, "at most max_inflight upstream (%d)", maxpending);
	ok(n >= 1 && n <= 8, "45011: %d attempts, not 40 (at most two rounds "
	    "of max_inflight were with send.c)", n);
	ok(wait_state(96, OUTBOX_QUEUED), "the rest are queued again");
	for (id = 57; id <= 96; id++) {
		row = row_of(id);
		attempted += row.state == OUTBOX_QUEUED && row.attempts == 0;
	}
	is_int(attempted, 40, "all 40 queued, no attempt counted");
	clock_set(t0 + 400);
	while (run_until(subscribe_pending))
		fake_answer(fake_first(SUBSCRIBE),
		    "{\"errcode\":0,\"errmsg\":\"ok\"}");
	ok(wait_state(96, OUTBOX_DELIVERED) && wait_state(57, OUTBOX_DELIVERED),
	    "after the pause all are delivered");
}

int
main(void)
{
	struct cred *c;

	log_init("test_outbox", 1, LOG_LEVEL_WARN);
	setup();
	c = cred_find(accounts[0].appid);
	test_waits_for_token(c);
	test_rate_limited(c);
	clock_set(t0 + 120);
	test_final(c);
	test_batch(c);
	test_uncertain(c);
	test_callers(cred_find(accounts[2].appid));
	test_states_batched(cred_find(accounts[1].appid));
	test_lane_bounded(cred_find(accounts[1].appid));
	outbox_shutdown();
	return (tap_done());
}
