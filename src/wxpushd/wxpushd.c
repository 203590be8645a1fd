/*
 * wxpushd: holds a host's WeChat credentials and sends one-time subscription
 * messages for local applications. main(), signals, reload and shutdown.
 */
#include "config.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "wxpushd.h"

#ifndef WX_SYSCONFDIR
#define WX_SYSCONFDIR "/etc"
#endif
#define WXPUSHD_CONF	WX_SYSCONFDIR "/wxpushd/wxpushd.conf"

/* Idempotency keys claimed through Redis (idem.c sits above redis.c). */
static const struct idem_share wxpushd_idem_share = {
	.claim = redis_claim,
	.settle = redis_settle,
	.unclaim = redis_unclaim,
};

static int		 wxpushd_debug;
static struct event	*wxpushd_drain_timer;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: wxpushd [-dnV] [-f config]\n");
	exit(2);
}

/* Everything has been answered or the drain timeout passed: leave the loop. */
static void
wxpushd_drained(void)
{
	event_base_loopbreak(wx_base);
}

/*
 * drain_timeout passed: answer the sends still in flight (`timeout`: WeChat
 * may have them) and give the answers a second to reach their clients;
 * server_drain ends the loop as soon as they are written.
 */
static void
wxpushd_drain_timeout(evutil_socket_t fd, short events, void *arg)
{
	static int	 answered;
	struct timeval	 tv = { 1, 0 };

	(void)fd;
	(void)events;
	(void)arg;
	if (!answered) {
		answered = 1;
		log_warnx("drain_timeout passed with requests in flight; "
		    "answering them and stopping");
		send_abort("wxpushd is stopping");
		evtimer_add(wxpushd_drain_timer, &tv);
		return;
	}
	log_warnx("answers not written out within a second; stopping");
	event_base_loopbreak(wx_base);
}

/* SIGTERM/SIGINT: stop accepting, answer what is in flight, then exit 0. */
static void
wxpushd_sigterm(evutil_socket_t sig, short events, void *arg)
{
	struct timeval tv;

	(void)events;
	(void)arg;
	if (wxpushd_drain_timer != NULL) {
		log_warnx("second signal: stopping now");
		event_base_loopbreak(wx_base);
		return;
	}
	log_info("%s: stopping", strsignal((int)sig));
	systemd_stopping();
	wx_stopping = 1;
	/* Queued sends will not get a token in time: answer them now. */
	send_stop_queued("wxpushd is stopping");
	tv.tv_sec = wx_conf->drain_timeout;
	tv.tv_usec = 0;
	wxpushd_drain_timer = evtimer_new(wx_base, wxpushd_drain_timeout, NULL);
	evtimer_add(wxpushd_drain_timer, &tv);
	server_drain(wxpushd_drained);
}

/* SIGHUP: load the file again; a bad file leaves the old configuration in force. */
static void
wxpushd_sighup(evutil_socket_t sig, short events, void *arg)
{
	struct config *conf, *old;
	int nerr = 0;

	(void)sig;
	(void)events;
	(void)arg;
	log_info("SIGHUP: reloading %s", wx_conf->path);
	if ((conf = config_load(wx_conf->path, &nerr)) == NULL) {
		log_warnx("%s: %d error%s, keeping the current configuration",
		    wx_conf->path, nerr, nerr == 1 ? "" : "s");
		return;
	}
	if (strcmp(conf->socket, wx_conf->socket) != 0 ||
	    strcmp(conf->state_dir, wx_conf->state_dir) != 0)
		log_warnx("socket and state_dir changes take effect at restart");
	systemd_reloading();
	old = wx_conf;
	/* Keep the running socket and store where they are. */
	free(conf->socket);
	conf->socket = xstrdup(old->socket);
	free(conf->state_dir);
	conf->state_dir = xstrdup(old->state_dir);
	wx_conf = conf;
	if (!wxpushd_debug)
		log_setlevel(conf->log_level);
	upstream_configure(conf);
	send_init();
	official_reconcile(conf);
	component_reconcile(conf);
	jsapi_reconcile();
	ingress_reload();
	consent_http_reload();
	metrics_reload();
	config_free(old);
	log_info("configuration reloaded");
	systemd_ready();
}

/*
 * Make state_dir ready for uid before dropping root: created 0700 and given to
 * uid:gid if missing. An existing one that belongs to someone else is refused
 * with the fix, rather than chowned behind the operator's back (a mistyped
 * state_dir must not hand a system directory to the daemon's user).
 */
static void
wxpushd_state_dir(uid_t uid, gid_t gid, const char *name)
{
	const char	*dir = wx_conf->state_dir;
	struct stat	 st;

	if (mkdir(dir, 0700) == 0) {
		if (chown(dir, uid, gid) == -1 || chmod(dir, 0700) == -1)
			fatal("state_dir %s", dir);
		log_info("created %s for %s", dir, name);
		return;
	}
	if (errno != EEXIST)
		fatal("state_dir %s", dir);
	if (stat(dir, &st) == -1)
		fatal("state_dir %s", dir);
	if (!S_ISDIR(st.st_mode))
		fatalx("state_dir %s: not a directory", dir);
	if (st.st_uid != uid)
		fatalx("state_dir %s belongs to uid %u, not to %s (uid %u): "
		    "run chown -R %s %s", dir, (unsigned)st.st_uid, name,
		    (unsigned)uid, name, dir);
}

/*
 * Drop root for the configured user and group, after binding the socket. The
 * socket it created is given to them, so that socket_mode means "the daemon's
 * user and group", and state_dir is prepared for them. Started as someone else already
 * (systemd User=), the daemon only checks that it is the configured user.
 */
static void
wxpushd_drop_privileges(void)
{
	struct passwd	*pw = NULL;
	struct group	*gr;
	char		 name[64];
	uid_t		 uid;
	gid_t		 gid;

	if (wx_conf->user == NULL && wx_conf->group == NULL)
		return;
	if (wx_conf->user != NULL && (pw = getpwnam(wx_conf->user)) == NULL)
		fatalx("unknown user %s", wx_conf->user);
	uid = pw != NULL ? pw->pw_uid : geteuid();
	gid = pw != NULL ? pw->pw_gid : getegid();
	snprintf(name, sizeof name, "%s", pw != NULL ? pw->pw_name : "root");
	if (wx_conf->group != NULL) {
		if ((gr = getgrnam(wx_conf->group)) == NULL)
			fatalx("unknown group %s", wx_conf->group);
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (uid != geteuid() || gid != getegid())
			fatalx("user/group: running as uid %u gid %u, and only "
			    "root can become uid %u gid %u",
			    (unsigned)geteuid(), (unsigned)getegid(),
			    (unsigned)uid, (unsigned)gid);
		return;
	}
	/* A socket passed by systemd keeps the owner its .socket unit gave it. */
	if (server_socket_path() != NULL &&
	    lchown(server_socket_path(), uid, gid) == -1)
		fatal("chown %s", server_socket_path());
	wxpushd_state_dir(uid, gid, name);
	/* No supplementary group of root's survives. */
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1)
		fatal("dropping group privileges");
	if (uid != 0 && setresuid(uid, uid, uid) == -1)
		fatal("dropping user privileges");
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1))
		fatalx("could become root again after dropping privileges");
	log_info("running as %s (uid %u, gid %u)", name, (unsigned)uid,
	    (unsigned)gid);
}

/*
 * Before any secret is read: no core dump (RLIMIT_CORE 0, soft and hard) and
 * not dumpable, so neither a crash nor another process of the daemon's user
 * (ptrace, /proc/PID/mem) gets the AppSecrets or tokens. Dumpability is reset
 * by the kernel when the ids change, so it is set again after the drop.
 */
static void
wxpushd_no_core(void)
{
	struct rlimit	rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) == -1)
		log_warn("setrlimit RLIMIT_CORE");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		log_warn("prctl PR_SET_DUMPABLE");
}

int
main(int argc, char **argv)
{
	const char *path = WXPUSHD_CONF;
	struct event *ev_term, *ev_int, *ev_hup;
	char *cause = NULL;
	int ch, check = 0, nerr = 0;

	while ((ch = getopt(argc, argv, "df:nV")) != -1) {
		switch (ch) {
		case 'd':
			wxpushd_debug = 1;
			break;
		case 'f':
			path = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'V':
			printf("wxpushd %s\n", PACKAGE_VERSION);
			return (0);
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init("wxpushd", 0, wxpushd_debug ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO);
	wxpushd_no_core();
	if ((wx_conf = config_load(path, &nerr)) == NULL) {
		fprintf(stderr, "%s: %d error%s\n", path, nerr, nerr == 1 ? "" : "s");
		return (1);
	}
	if (check) {
		printf("configuration OK\n");
		config_free(wx_conf);
		return (0);
	}
	if (!wxpushd_debug)
		log_setlevel(wx_conf->log_level);
	signal(SIGPIPE, SIG_IGN);
	wx_start_time = time(NULL);

	if ((wx_base = event_base_new()) == NULL)
		fatalx("event_base_new");
	rpc_init(method_find, server_client_request_done);
	if (upstream_init(wx_base) == -1)
		fatalx("upstream_init");
	upstream_configure(wx_conf);
	if (server_listen() == -1)
		fatalx("cannot listen on %s", wx_conf->socket);
	if (ingress_start() == -1)
		fatalx("cannot listen on %s", wx_conf->callback_listen);
	if (metrics_start() == -1)
		fatalx("cannot listen on %s", wx_conf->metrics_listen);
	if (consent_http_start() == -1)
		fatalx("cannot listen on %s", wx_conf->consent_listen);
	wxpushd_drop_privileges();
	wxpushd_no_core();
	/* After dropping privileges, so the state belongs to the daemon's user. */
	if (store_open(wx_conf->state_dir, &cause) == -1)
		fatalx("%s", cause);
	send_init();
	idem_init();
	if (consent_init() == -1)
		fatalx("cannot load the consent ledger");
	redis_init(wx_conf);	/* before the credentials, which may wait for it */
	if (wx_conf->redis != NULL || wx_conf->redis_sentinels != NULL)
		idem_set_share(&wxpushd_idem_share);	/* sends' keys shared */
	component_init();
	cred_init();
	official_reconcile(wx_conf);
	component_reconcile(wx_conf);
	if (outbox_init(&cause) == -1)
		fatalx("%s", cause);

	ev_term = evsignal_new(wx_base, SIGTERM, wxpushd_sigterm, NULL);
	ev_int = evsignal_new(wx_base, SIGINT, wxpushd_sigterm, NULL);
	ev_hup = evsignal_new(wx_base, SIGHUP, wxpushd_sighup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	log_info("wxpushd %s started", PACKAGE_VERSION);
	systemd_ready();

	event_base_dispatch(wx_base);

	/* Anything still unanswered (a second signal) is answered now. */
	wx_stopping = 1;
	send_abort("wxpushd is stopping");
	jsapi_shutdown();
	outbox_shutdown();	/* after send_abort: what was sending is queued */
	idem_shutdown();
	consent_shutdown();
	server_close();
	component_shutdown();
	ingress_stop();
	metrics_stop();
	consent_http_stop();
	systemd_shutdown();
	redis_shutdown();
	cred_shutdown();
	upstream_shutdown();
	store_close();
	rpc_shutdown();
	ratelog_shutdown();
	method_call_shutdown();
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	if (wxpushd_drain_timer != NULL)
		event_free(wxpushd_drain_timer);
	config_free(wx_conf);
	event_base_free(wx_base);
	log_info("stopped");
	return (0);
}
