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

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <msgpack.h>

#include "wxpushd.h"
#include "fake-upstream.h"
#include "tap.h"

#define T_APPID		"wxtestoutboxconsnt"
#define T_OPENID	"oUSER_openid_0001"
#define T_TID		"TPL_disk"
#define T_TAG		"0123456789abcdef0123456789abcdef"

static struct config	 conf;
static struct account_conf account;
static struct client	 client;

/* nftw callback removing everything. */
static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return (remove(path));
}

/* What the child saw. */
struct result {
	char	spent_before[16];	/* the consent once the enqueue spent it */
	char	reply[256];
	char	state_after[16];
};

static void
state_cb(const struct store_consent *row, void *arg)
{
	snprintf(arg, 16, "%s", row->state);
}

static void
ledger_state(char *buf)
{
	buf[0] = '\0';
	consent_foreach(T_APPID, T_OPENID, T_TID, state_cb, buf);
}

/* The last reply written to the client, as text ("" if none yet). */
static void
last_reply(char *buf, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(client.bev);
	msgpack_unpacked up;
	size_t n = evbuffer_get_length(out), off = 0;
	const char *data;

	buf[0] = '\0';
	if (n == 0)
		return;
	data = (const char *)evbuffer_pullup(out, -1);
	msgpack_unpacked_init(&up);
	while (msgpack_unpack_next(&up, data, n, &off) ==
	    MSGPACK_UNPACK_SUCCESS) {
		if (up.data.type == MSGPACK_OBJECT_ARRAY &&
		    up.data.via.array.size == 4)
			msgpack_object_print_buffer(buf, len,
			    up.data.via.array.ptr[2].type ==
			    MSGPACK_OBJECT_NIL ? up.data.via.array.ptr[3] :
			    up.data.via.array.ptr[2]);
	}
	msgpack_unpacked_destroy(&up);
	evbuffer_drain(out, n);
}

/* enqueue one subscribe_once to the user, as root. */
static void
do_enqueue(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	struct request *req;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	rpc_pack_kv_str(&pk, "appid", T_APPID);
	rpc_pack_kv_str(&pk, "touser", T_OPENID);
	rpc_pack_kv_str(&pk, "template_id", T_TID);
	rpc_pack_kv_int(&pk, "scene", 1000);
	rpc_pack_kv_str(&pk, "title", "title");
	rpc_pack_str(&pk, "data");
	msgpack_pack_map(&pk, 1);
	rpc_pack_str(&pk, "content");
	msgpack_pack_map(&pk, 1);
	rpc_pack_kv_str(&pk, "value", "hello");
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, sb.data, sb.size, NULL) !=
	    MSGPACK_UNPACK_SUCCESS)
		fatalx("do_enqueue: unpack");
	req = xcalloc(1, sizeof *req);
	req->client = &client;
	req->msgid = 1;
	TAILQ_INSERT_TAIL(&client.requests, req, entry);
	client.nrequests++;
	outbox_method_enqueue(req, &up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* The child: a consent, then files that cannot grow, then the enqueue. */
static void
child(const char *dir, int fd)
{
	struct result	 r;
	struct rlimit	 rl = { 0, 0 };
	const char	*why;
	char		*cause = NULL;
	int		 yes = 1, i;

	memset(&r, 0, sizeof r);
	log_init("test_outbox_consent", 0, LOG_LEVEL_WARN);
	if (store_open(dir, &cause) != 0)
		fatalx("store_open: %s", cause);
	wx_base = event_base_new();
	conf.state_dir = (char *)dir;
	conf.refresh_margin = 300;
	conf.upstream_timeout = 10;
	conf.send_timeout = 5;
	conf.max_inflight = 4;
	conf.queue_limit = 100;
	conf.outbox_ttl = 86400;
	conf.outbox_limit = 1000;
	conf.outbox_keep = 86400;
	conf.consent_ttl = 30 * 86400;
	conf.consent_max = 100;
	TAILQ_INIT(&conf.accounts);
	TAILQ_INIT(&conf.components);
	account.appid = xstrdup(T_APPID);
	account.secret = xstrdup("SECRET");
	account.token_api = TOKEN_API_STABLE;
	account.consent_required = 1;
	TAILQ_INSERT_TAIL(&conf.accounts, &account, entry);
	wx_conf = &conf;
	clock_set(1800000000);
	TAILQ_INIT(&client.requests);
	client.peer.uid = 0;
	client.bev = bufferevent_socket_new(wx_base, -1, 0);
	send_init();
	if (consent_init() != 0)
		fatalx("consent_init");
	official_reconcile(&conf);
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
		last_reply(r.reply, sizeof r.reply);
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
	pid_t		 pid;
	int		 p[2], status;
	ssize_t		 n;

	log_init("test_outbox_consent", 0, LOG_LEVEL_WARN);
	if (mkdtemp(dir) == NULL || pipe(p) == -1)
		fatal("mkdtemp, pipe");
	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(p[0]);
		child(dir, p[1]);
	}
	close(p[1]);
	memset(&r, 0, sizeof r);
	n = read(p[0], &r, sizeof r);
	if (waitpid(pid, &status, 0) == -1)
		fatal("waitpid");
	ok(n == (ssize_t)sizeof r && WIFEXITED(status) &&
	    WEXITSTATUS(status) == 0, "the child reports");
	is_str(r.spent_before, "spent", "the enqueue spent the consent");
	ok(strstr(r.reply, "\"busy\"") != NULL && strstr(r.reply,
	    "nothing was queued") != NULL, "the outbox cannot write: busy "
	    "(%s)", r.reply);
	is_str(r.state_after, "granted", "and the consent is granted again");
	nftw(dir, test_rm, 16, FTW_DEPTH | FTW_PHYS);
	return (tap_done());
}
