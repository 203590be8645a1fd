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
#include <sqlite3.h>

#include "wxpushd.h"
#include "fake-upstream.h"
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

/* nftw callback removing everything. */
static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return (remove(path));
}

/* The state of the consent in memory ("" if none). */
static void
ledger_state_cb(const struct store_consent *row, void *arg)
{
	snprintf(arg, 16, "%s", row->state);
}

static void
ledger_state(char *buf)
{
	buf[0] = '\0';
	consent_foreach(T_APPID, T_OPENID, T_TID, ledger_state_cb, buf);
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

/* The last reply written to the client, as text ("" if none). */
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

/* The daemon's core on dir (the store, the ledger, the account's token). */
static void
start(const char *dir)
{
	struct cred	*c;
	char		*cause = NULL;

	if (store_open(dir, &cause) != 0)
		fatalx("store_open: %s", cause);
	wx_base = event_base_new();
	conf.state_dir = (char *)dir;
	conf.refresh_margin = 300;
	conf.upstream_timeout = 10;
	conf.send_timeout = 10;
	conf.max_inflight = 4;
	conf.queue_limit = 100;
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
		fatalx("do_send: unpack");
	req = xcalloc(1, sizeof *req);
	req->client = &client;
	req->msgid = 1;
	TAILQ_INSERT_TAIL(&client.requests, req, entry);
	client.nrequests++;
	send_method(req, &up.data);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
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
	last_reply(r.reply, sizeof r.reply);
	ledger_state(r.state_after);
	consent_shutdown();
	if (write(fd, &r, sizeof r) != sizeof r)
		_exit(1);
	_exit(0);
}

/* Run f in a child; what it wrote to its pipe (len bytes) and its status. */
static int
in_child(void (*crash)(const char *, int, int),
    void (*restart)(const char *, const char *, int), const char *dir,
    int after, const char *answer, void *out, size_t len)
{
	pid_t	pid;
	int	p[2], status;
	ssize_t	n;

	if (pipe(p) == -1)
		fatal("pipe");
	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid == 0) {
		close(p[0]);
		log_init("test_consent_crash", 0, LOG_LEVEL_WARN);
		if (crash != NULL)
			crash(dir, after, p[1]);
		else
			restart(dir, answer, p[1]);
		_exit(1);
	}
	close(p[1]);
	n = read(p[0], out, len);
	close(p[0]);
	if (waitpid(pid, &status, 0) == -1)
		fatal("waitpid");
	return (n == (ssize_t)len ? status : -1);
}

/* One crash and restart in a fresh directory. */
static void
run_case(int after, const char *answer, struct restart *r, char *at_kill)
{
	char	dir[] = "/tmp/wxpushd-test-consent-crash.XXXXXX";
	int	status;

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp");
	status = in_child(crash_child, NULL, dir, after, NULL, at_kill, 16);
	ok(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "%s: the first run is killed with SIGKILL while WeChat holds the "
	    "answer", after ? "after the write-behind" : "within the "
	    "write-behind");
	memset(r, 0, sizeof *r);
	status = in_child(NULL, restart_child, dir, 0, answer, r, sizeof *r);
	ok(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "the restarted run reports");
	nftw(dir, test_rm, 16, FTW_DEPTH | FTW_PHYS);
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
