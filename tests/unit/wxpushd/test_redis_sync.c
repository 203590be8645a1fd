/*
 * Redis (back) up with thousands of stored authorizers: the write-back goes
 * a page at a time from the store, never more than AUTHORIZER_SYNC_INFLIGHT
 * commands unanswered, without blocking the loop, and every row is shared
 * once. Redis is fake-redis.c: commands are counted and answered by the test.
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
#include "fake-redis.h"
#include "tap.h"

#define COMP		"wxcomponent0001"
#define NAUTH		2500
#define INFLIGHT	1000	/* AUTHORIZER_SYNC_INFLIGHT */
#define PAGE		200	/* AUTHORIZER_SYNC_PAGE */

static struct config		conf;
static struct component_conf	cc;
static time_t			t0 = 1700000000;
static char			dir[64];

int
main(void)
{
	char appid[32], rt[32];
	int i, n, first;

	log_init("test_redis_sync", 1, LOG_LEVEL_ERR);
	fake_daemon(&conf, t0, dir, sizeof dir);
	conf.authorizer_idle = 86400;
	harness_component(&conf, &cc, COMP, 0);
	if (store_batch_begin() != 0)
		fatalx("store_batch_begin");
	for (i = 0; i < NAUTH; i++) {
		snprintf(appid, sizeof appid, "wxa%07d", i);
		snprintf(rt, sizeof rt, "RT%d", i);
		harness_authorizer(COMP, appid, rt, 0, t0 - 86400 * 3, 0);
	}
	if (store_batch_end(1) != 0)
		fatalx("store_batch_end");
	send_init();
	component_init();
	component_reconcile(&conf);
	ok(fake_redis_handlers != NULL && fake_redis_handlers->connected !=
	    NULL, "component.c listens to Redis");

	fake_redis_pending = fake_redis_max = 0;
	fake_redis_puts = 0;
	fake_redis_handlers->connected();
	first = (int)fake_redis_puts;
	ok(first > 0 && first <= PAGE, "a connection shares one page at "
	    "once (%d of %d), not every stored row", first, NAUTH);

	/* Redis answers slowly: 50 commands a tick. */
	for (n = 0; n < 5000 && fake_redis_puts < NAUTH; n++) {
		harness_tick();
		fake_redis_answer(50);
	}
	is_int(fake_redis_puts, NAUTH, "every stored row is shared once");
	ok(fake_redis_max <= INFLIGHT, "never more than %d unanswered "
	    "(most: %d)", INFLIGHT, fake_redis_max);
	ok(fake_redis_max > INFLIGHT / 2, "but the window is used (%d)",
	    fake_redis_max);

	/* A page waits while Redis does not answer at all. */
	fake_redis_pending = fake_redis_max = 0;
	fake_redis_puts = 0;
	fake_redis_handlers->connected();
	for (n = 0; n < 50; n++) {
		harness_tick();
	}
	ok(fake_redis_puts <= INFLIGHT && fake_redis_pending <= INFLIGHT,
	    "a silent Redis: %ld sent, then it waits", fake_redis_puts);
	for (n = 0; n < 5000 && fake_redis_puts < NAUTH; n++) {
		harness_tick();
		fake_redis_answer(400);
	}
	is_int(fake_redis_puts, NAUTH, "once it answers, the rest follow");
	return (tap_done());
}
