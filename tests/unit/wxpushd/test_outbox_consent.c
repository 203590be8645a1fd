/*
 * An enqueue the outbox cannot write gives its consents back: the daemon's
 * core with a fixed clock and a fake upstream, in a child whose files may not
 * grow (RLIMIT_FSIZE 0, as test_store makes a disk fail), so the outbox's
 * insert fails; the enqueue is answered busy, nothing is queued, and the
 * consent its message had spent is granted again.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/wait.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "harness.h"
#include "tap.h"

#define T_APPID		"wxtestoutboxconsnt"
#define T_OPENID	"oUSER_openid_0001"
#define T_TID		"TPL_disk"
#define T_TAG		"0123456789abcdef0123456789abcdef"

static struct config	 conf;
static struct account_conf account;
static struct client	 client;

/* What the child saw. */
struct result {
	char	spent_before[16];	/* the consent once the enqueue spent it */
	char	reply[256];
	char	state_after[16];
};

static void
ledger_state(char *buf)
{
	harness_consent_state(T_APPID, T_OPENID, T_TID, buf);
}

/* enqueue one subscribe_once to the user, as root. */
static void
do_enqueue(void)
{
	harness_subscribe(&client, outbox_method_enqueue, T_APPID, T_OPENID,
	    T_TID, 1000);
}

/* The child: a consent, then files that cannot grow, then the enqueue. */
static void
child(void *arg, int fd)
{
	const char	*dir = arg;
	struct result	 r;
	struct rlimit	 rl = { 0, 0 };
	const char	*why;
	char		*cause = NULL;
	int		 yes = 1, i;

	memset(&r, 0, sizeof r);
	log_init("test_outbox_consent", 0, LOG_LEVEL_WARN);
	fake_daemon_open(&conf, 1800000000, dir);
	conf.state_dir = (char *)dir;
	conf.outbox_ttl = 86400;
	conf.outbox_limit = 1000;
	conf.outbox_keep = 86400;
	harness_consent_core(&conf, &account, &client, T_APPID);
	cred_cancel(cred_find(T_APPID));	/* no token: nothing is sent */
	if (outbox_init(&cause) != 0)
		fatalx("outbox_init: %s", cause);
	if (consent_record(T_APPID, T_OPENID, T_TID, 1000, T_TAG, "", &yes,
	    &why) != 1)
		fatalx("consent_record: %s", why);
	/* From here no file may grow: the outbox's insert fails. */
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		fatal("setrlimit");
	do_enqueue();
	ledger_state(r.spent_before);
	for (i = 0; i < 500 && r.reply[0] == '\0'; i++) {
		event_base_loop(wx_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(10 * 1000);
		harness_reply(&client, r.reply, sizeof r.reply);
	}
	ledger_state(r.state_after);
	if (write(fd, &r, sizeof r) != sizeof r)
		_exit(1);
	_exit(0);
}

int
main(void)
{
	char		 dir[] = "/tmp/wxpushd-test-outbox-consent.XXXXXX";
	struct result	 r;
	int		 status;

	log_init("test_outbox_consent", 0, LOG_LEVEL_WARN);
	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	memset(&r, 0, sizeof r);
	status = harness_child(child, dir, &r, sizeof r);
	ok(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the child reports");
	is_str(r.spent_before, "spent", "the enqueue spent the consent");
	ok(strstr(r.reply, "\"busy\"") != NULL && strstr(r.reply,
	    "nothing was queued") != NULL, "the outbox cannot write: busy "
	    "(%s)", r.reply);
	is_str(r.state_after, "granted", "and the consent is granted again");
	harness_rmtree(dir);
	return (tap_done());
}
