/*
 * The crash window of the consent ledger, deterministically: a send spends
 * its consent in memory and the store hears of it in the write-behind 200 ms
 * later. A child process runs the daemon's core (fake upstream, real store)
 * up to a point the test chooses, with the send waiting for WeChat's answer,
 * and kills itself with SIGKILL there; a second child starts on the same
 * state directory as a restarted daemon would:
 *
 * - killed before the write-behind ran (no turn of the loop after the
 *   spend): the consent comes back granted; a new send reaches WeChat,
 *   which answers 43101 if the first was delivered, and the consent is then
 *   spent: one delivery;
 * - killed once the store says spent (the loop ran until it did): the
 *   consent comes back spent; a new send is no_consent without a call.
 *
 * Either way the consent is never both spent and sent twice.
 */
#include "config.h"

#include <sys/wait.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#define T_APPID		"wxtestconsentcrash"
#define T_OPENID	"oUSER_openid_0001"
#define T_TID		"TPL_crash"
#define T_TAG		"0123456789abcdef0123456789abcdef"

static struct config	 conf;
static struct account_conf account;
static struct client	 client;

/* What a restarted child saw, for the parent's checks. */
struct restart {
	char	state_at_start[16];	/* the consent, loaded */
	int	upstream;		/* calls the new send made */
	char	reply[256];		/* its answer */
	char	state_after[16];	/* the consent, after the answer */
};

/* The state of the consent in memory ("" if none). */
static void
ledger_state(char *buf)
{
	harness_consent_state(T_APPID, T_OPENID, T_TID, buf);
}

/* The state of the consent in dir's store, read as another process would. */
static void
store_state(const char *dir, char *buf)
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	char		*path;

	buf[0] = '\0';
	xasprintf(&path, "%s/wxpushd.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, "SELECT state FROM consents "
	    "WHERE tag = '" T_TAG "'", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(buf, 16, "%s", sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(path);
}

/* The daemon's core on dir (the store, the ledger, the account's token). */
static void
start(const char *dir)
{
	struct cred	*c;

	fake_daemon_open(&conf, 1800000000, dir);
	conf.state_dir = (char *)dir;
	conf.send_timeout = 10;
	harness_consent_core(&conf, &account, &client, T_APPID);
	c = cred_find(T_APPID);
	if (!cred_usable(c)) {
		if (fake_pending(STABLE) == 0)
			cred_refresh(c, 0);
		fake_answer(fake_first(STABLE), "{\"access_token\":\"T1\","
		    "\"expires_in\":7200}");
	}
	if (!cred_usable(c))
		fatalx("no token");
}

/* send a subscribe_once to the user, as root. */
static void
do_send(void)
{
	harness_subscribe(&client, send_method, T_APPID, T_OPENID, T_TID, 1000);
}

/*
 * The first run: a consent, a send that spends it and waits for WeChat,
 * then SIGKILL: at once (after) 0, or once the store says spent. Writes
 * the store's state at the kill to fd.
 */
static void
crash_child(const char *dir, int after, int fd)
{
	const char	*why;
	char		 st[16];
	int		 yes = 1, i;

	start(dir);
	if (consent_record(T_APPID, T_OPENID, T_TID, 1000, T_TAG, "", &yes,
	    &why) != 1)
		fatalx("consent_record: %s", why);
	do_send();
	if (fake_pending(SUBSCRIBE) != 1)
		fatalx("the send is not waiting for WeChat");
	store_state(dir, st);
	/* The write-behind runs on the loop: turn it until the disk says so. */
	for (i = 0; after && strcmp(st, "spent") != 0 && i < 500; i++) {
		event_base_loop(wx_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(10 * 1000);
		store_state(dir, st);
	}
	if (write(fd, st, sizeof st) != sizeof st)
		_exit(1);
	kill(getpid(), SIGKILL);
	_exit(1);
}

/*
 * The restart: load the ledger, send again, let WeChat answer answer (if
 * the send reached it), report what happened to fd.
 */
static void
restart_child(const char *dir, const char *answer, int fd)
{
	struct restart	r;

	memset(&r, 0, sizeof r);
	start(dir);
	ledger_state(r.state_at_start);
	do_send();
	r.upstream = (int)fake_pending(SUBSCRIBE);
	if (r.upstream > 0)
		fake_answer(fake_first(SUBSCRIBE), answer);
	harness_reply(&client, r.reply, sizeof r.reply);
	ledger_state(r.state_after);
	consent_shutdown();
	if (write(fd, &r, sizeof r) != sizeof r)
		_exit(1);
	_exit(0);
}

/* What a child of run_case runs on. */
struct child_case {
	const char	*dir;
	int		 after;		/* crash: once the store says spent */
	const char	*answer;	/* restart: WeChat's answer */
};

static void
crash_run(void *arg, int fd)
{
	struct child_case *cc = arg;

	log_init("test_consent_crash", 0, LOG_LEVEL_WARN);
	crash_child(cc->dir, cc->after, fd);
}

static void
restart_run(void *arg, int fd)
{
	struct child_case *cc = arg;

	log_init("test_consent_crash", 0, LOG_LEVEL_WARN);
	restart_child(cc->dir, cc->answer, fd);
}

/* One crash and restart in a fresh directory. */
static void
run_case(int after, const char *answer, struct restart *r, char *at_kill)
{
	char dir[] = "/tmp/wxpushd-test-consent-crash.XXXXXX";
	struct child_case cc = { dir, after, answer };
	int status;

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	status = harness_child(crash_run, &cc, at_kill, 16);
	ok(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "%s: the first run is killed with SIGKILL while WeChat holds the "
	    "answer", after ? "after the write-behind" : "within the "
	    "write-behind");
	memset(r, 0, sizeof *r);
	status = harness_child(restart_run, &cc, r, sizeof *r);
	ok(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the restarted run reports");
	harness_rmtree(dir);
}

int
main(void)
{
	struct restart	r;
	char		at_kill[16];

	log_init("test_consent_crash", 0, LOG_LEVEL_WARN);

	/* Killed before the loop turned once after the spend. */
	run_case(0, "{\"errcode\":43101,\"errmsg\":\"user refuse to accept "
	    "the msg\"}", &r, at_kill);
	is_str(at_kill, "granted", "at the kill the store still says granted");
	is_str(r.state_at_start, "granted", "after the restart it is granted");
	is_int(r.upstream, 1, "a new send reaches WeChat");
	ok(strstr(r.reply, "43101") != NULL, "which answers 43101: the first "
	    "was delivered, this one is not (%s)", r.reply);
	is_str(r.state_after, "spent", "and after 43101 the consent is spent");

	/* The same, when WeChat never got the first: one delivery. */
	run_case(0, "{\"errcode\":0,\"errmsg\":\"ok\"}", &r, at_kill);
	is_str(r.state_at_start, "granted", "granted after the restart");
	ok(r.upstream == 1 && strstr(r.reply, "errcode") != NULL &&
	    strstr(r.reply, "43101") == NULL, "the new send is the one "
	    "delivery (%s)", r.reply);
	is_str(r.state_after, "spent", "and spends it");

	/* Killed once the write-behind is on disk. */
	run_case(1, "{\"errcode\":0,\"errmsg\":\"ok\"}", &r, at_kill);
	is_str(at_kill, "spent", "at the kill the store says spent");
	is_str(r.state_at_start, "spent", "after the restart it is spent");
	is_int(r.upstream, 0, "a new send does not reach WeChat");
	ok(strstr(r.reply, "no_consent") != NULL, "it is no_consent (%s)",
	    r.reply);
	is_str(r.state_after, "spent", "the consent stays spent");
	return (tap_done());
}
