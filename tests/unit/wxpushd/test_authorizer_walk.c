/*
 * The api_get_authorizer_list walk at scale, with a fake upstream: pages asked
 * in order and paced, rows of idle authorizers learned into the store without
 * a credential loaded, the position stored after every page, a restart (the
 * first run is a child that dies after two pages) resuming from it, and the
 * end of the list ending the walk. An authorizer that joins a resumed walk
 * gets a walk from the start after it before it is declared lost.
 */
#include "config.h"

#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define COMP		"wxcomponent0001"
#define A1		"wxactive0001"		/* used an hour ago: in memory */
#define I1		"wxidle0001"		/* idle, a stale refresh token */
#define I2		"wxidle0002"		/* idle and revoked */
#define I3		"wxidle0003"		/* idle, WeChat lists the same */
#define N1		"wxnew0001"		/* not stored: authorized unseen */
#define EP_COMPONENT	"/cgi-bin/component/api_component_token"
#define EP_AUTHORIZER	"/cgi-bin/component/api_authorizer_token"
#define EP_LIST		"/cgi-bin/component/api_get_authorizer_list"
#define PACE_MS		500	/* AUTHORIZER_LIST_PACE_MS */

static struct config		conf;
static struct component_conf	cc;
static time_t			t0 = 1700000000;
static char			dir[64];

/* The stored walk's next offset, or -1 if there is none. */
static int
walk_offset(void)
{
	time_t started;
	int off;

	return (store_walk_load(COMP, &off, &started) == 1 ? off : -1);
}

/* Milliseconds on the monotonic clock. */
static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Run the loop until a call to path is pending (at most ~10 s); its ms. */
static long
wait_for(const char *path)
{
	long t = now_ms();
	int n;

	/* Ticks: a far timer (a refresh in two hours) must not block. */
	for (n = 0; n < 500 && fake_pending(path) == 0; n++)
		harness_tick();
	return (now_ms() - t);
}

/* The daemon's start on the store in dir; the component gets its token. */
static void
start(void)
{
	send_init();
	component_init();
	component_reconcile(&conf);
	wait_for(EP_COMPONENT);
	fake_answer_first(EP_COMPONENT, "{\"component_access_token\":\"CT1\","
	    "\"expires_in\":7200}");
}

/*
 * The first run: A1's refresh token is refused, the walk starts; two pages
 * are answered, then the process dies (a crash: nothing is flushed).
 */
static void
first_run(void)
{
	long ms;

	harness_store_open(dir);
	wx_base = event_base_new();
	start();
	ok(cred_find(A1) != NULL && cred_find(I1) == NULL,
	    "only the active authorizer is in memory");
	wait_for(EP_AUTHORIZER);
	fake_answer_first(EP_AUTHORIZER, "{\"errcode\":61023}");
	is_int(fake_pending(EP_LIST), 1, "61023: the walk starts at once");
	is_int(fake_body_int(EP_LIST, "offset"), 0, "from offset 0");
	is_int(fake_body_int(EP_LIST, "count"), 500, "500 at a time");
	is_int(walk_offset(), 0, "the walk is stored before its first page");
	fake_answer_first(EP_LIST, "{\"total_count\":9,\"list\":["
	    "{\"authorizer_appid\":\"" A1 "\",\"refresh_token\":\"RTA1new\"},"
	    "{\"authorizer_appid\":\"" I1 "\",\"refresh_token\":\"RTI1new\"},"
	    "{\"authorizer_appid\":\"" I2 "\",\"refresh_token\":\"RTI2new\"}]}");
	is_str(harness_stored_rt(A1, NULL), "RTA1new",
	    "A1's listed refresh token is committed");
	is_int(fake_pending(EP_AUTHORIZER), 1, "and A1 retries with it");
	is_str(harness_stored_rt(I1, NULL), "RTI1new",
	    "an idle authorizer's newer refresh token goes to the store");
	ok(cred_find(I1) == NULL, "without loading its credential");
	is_str(harness_stored_rt(I2, NULL), "RTI2",
	    "a revoked row is left alone");
	is_int(walk_offset(), 3, "the next offset is stored");
	is_int(fake_pending(EP_LIST), 0, "the next page is not asked at once");
	ms = wait_for(EP_LIST);
	ok(ms >= PACE_MS - 100, "it is asked after the pace (%ld ms)", ms);
	is_int(fake_body_int(EP_LIST, "offset"), 3, "at offset 3");
	fake_answer_first(EP_LIST, "{\"total_count\":9,\"list\":["
	    "{\"authorizer_appid\":\"" I3 "\",\"refresh_token\":\"RTI3\"},"
	    "{\"authorizer_appid\":\"" N1 "\",\"refresh_token\":\"RTN1\"},"
	    "{\"authorizer_appid\":\"bad appid\",\"refresh_token\":\"X\"}]}");
	is_str(harness_stored_rt(N1, NULL), "RTN1",
	    "an authorizer the store did not know is stored");
	ok(cred_find(N1) == NULL, "not loaded either");
	is_str(harness_stored_rt(I3, NULL), "RTI3",
	    "the same refresh token changes nothing");
	is_int(walk_offset(), 6, "offset 6 stored");
	/* Killed here: the third page never asked. */
	_exit(tap_failed != 0);
}

int
main(void)
{
	pid_t pid;
	int status, revoked = 0;
	long ms;

	log_init("test_authorizer_walk", 1, LOG_LEVEL_ERR);
	fake_daemon(&conf, t0, dir, sizeof dir);
	conf.authorizer_idle = 86400;
	harness_component(&conf, &cc, COMP, t0 - 60);
	harness_authorizer(COMP, A1, "RTA1", 0, t0 - 3600, t0 - 3600);
	harness_authorizer(COMP, I1, "RTI1", 0, t0 - 3 * 86400, t0 - 3 * 86400);
	harness_authorizer(COMP, I2, "RTI2", 1, t0 - 3 * 86400, t0 - 3 * 86400);
	harness_authorizer(COMP, I3, "RTI3", 0, t0 - 3 * 86400, t0 - 3 * 86400);
	store_close();

	/* The first run's checks go to the log (stderr), not to TAP. */
	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		dup2(2, 1);
		first_run();
	}
	if (waitpid(pid, &status, 0) == -1)
		fatal("waitpid");
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the first run "
	    "walked two pages and died (its checks are in the log)");

	/* The restart. */
	clock_set(t0 + 60);
	harness_store_open(dir);
	is_int(walk_offset(), 6, "the store has the walk at offset 6");
	is_str(harness_stored_rt(I1, NULL), "RTI1new",
	    "and the rows it learned");
	start();
	is_int(fake_pending(EP_LIST), 1, "once the component has a token, "
	    "the walk resumes");
	is_int(fake_body_int(EP_LIST, "offset"), 6, "from offset 6, not 0");

	/* A1 refused again while the resumed walk runs: it joins late. */
	wait_for(EP_AUTHORIZER);
	is_int(fake_pending(EP_AUTHORIZER), 1, "A1 refreshes at the start");
	fake_answer_first(EP_AUTHORIZER, "{\"errcode\":61023}");
	is_int(fake_pending(EP_LIST), 1, "A1's 61023 joins the walk under way");
	fake_answer_first(EP_LIST, "{\"total_count\":9,\"list\":["
	    "{\"authorizer_appid\":\"wxidle0007\",\"refresh_token\":\"R7\"},"
	    "{\"authorizer_appid\":\"wxidle0008\",\"refresh_token\":\"R8\"},"
	    "{\"authorizer_appid\":\"wxidle0009\",\"refresh_token\":\"R9\"}]}");
	ok(!cred_permanent(cred_find(A1)), "the end of a resumed walk does not "
	    "give up on A1: its row may be before offset 6");
	is_int(fake_pending(EP_LIST), 0, "and the next walk is paced");
	ms = wait_for(EP_LIST);
	ok(ms >= PACE_MS - 100, "it starts after the pace (%ld ms)", ms);
	is_int(fake_body_int(EP_LIST, "offset"), 0, "from offset 0");
	is_int(walk_offset(), 0, "stored as a new walk");
	fake_answer_first(EP_LIST, "{\"total_count\":3,\"list\":["
	    "{\"authorizer_appid\":\"" A1 "\",\"refresh_token\":\"RTA1new\"},"
	    "{\"authorizer_appid\":\"" I1 "\",\"refresh_token\":\"RTI1new\"},"
	    "{\"authorizer_appid\":\"" I2 "\",\"refresh_token\":\"RTI2new\"}]}");
	is_int(walk_offset(), -1, "the end of the list ends the walk: its row "
	    "is gone");
	ok(cred_permanent(cred_find(A1)), "a full walk lists only A1's refused "
	    "token: it needs re-authorization");
	event_base_loop(wx_base, EVLOOP_NONBLOCK);
	is_int(fake_pending(EP_LIST), 0, "and no page is asked after it");
	is_str(harness_stored_rt(I2, &revoked), "RTI2",
	    "the revoked row stays");
	ok(revoked, "revoked");
	return (tap_done());
}
