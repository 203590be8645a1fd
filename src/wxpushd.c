/*
 * wxpushd: holds a host's WeChat credentials and sends one-time subscription
 * messages for local applications. main(), signals, reload and shutdown.
 */
#include "config.h"

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

static void
wxpushd_drain_timeout(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	log_warnx("drain_timeout passed with sends in flight; stopping");
	event_base_loopbreak(wx_base);
}

/* SIGTERM/SIGINT: stop accepting, answer what is in flight, then exit 0. */
static void
wxpushd_sigterm(evutil_socket_t sig, short events, void *arg)
{
	struct timeval tv;
	struct cred *c;
	struct send *s;

	(void)events;
	(void)arg;
	if (wxpushd_drain_timer != NULL) {
		log_warnx("second signal: stopping now");
		event_base_loopbreak(wx_base);
		return;
	}
	log_info("%s: stopping", strsignal((int)sig));
	wx_stopping = 1;
	/* Queued sends will not get a token in time: answer them now. */
	TAILQ_FOREACH(c, &cred_all, entry) {
		while ((s = TAILQ_FIRST(&c->queue)) != NULL)
			send_fail_unavailable(s, "wxpushd is stopping");
	}
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
	cred_reconcile(conf);
	config_free(old);
	log_info("configuration reloaded");
}

/* Drop root for the configured user and group, after binding the socket. */
static void
wxpushd_drop_privileges(void)
{
	struct passwd *pw = NULL;
	struct group *gr;
	gid_t gid;

	if (wx_conf->user == NULL && wx_conf->group == NULL)
		return;
	if (wx_conf->user != NULL && (pw = getpwnam(wx_conf->user)) == NULL)
		fatalx("unknown user %s", wx_conf->user);
	gid = pw != NULL ? pw->pw_gid : getgid();
	if (wx_conf->group != NULL) {
		if ((gr = getgrnam(wx_conf->group)) == NULL)
			fatalx("unknown group %s", wx_conf->group);
		gid = gr->gr_gid;
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1)
		fatal("dropping group privileges");
	if (pw != NULL && setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
		fatal("dropping user privileges");
	log_info("running as %s:%u", pw != NULL ? pw->pw_name : "-",
	    (unsigned)gid);
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
	if (upstream_init(wx_base) == -1)
		fatalx("upstream_init");
	upstream_configure(wx_conf);
	if (server_listen() == -1)
		fatalx("cannot listen on %s", wx_conf->socket);
	wxpushd_drop_privileges();
	/* After dropping privileges, so the state belongs to the daemon's user. */
	if (store_open(wx_conf->state_dir, &cause) == -1)
		fatalx("%s", cause);
	send_init();
	cred_init();

	ev_term = evsignal_new(wx_base, SIGTERM, wxpushd_sigterm, NULL);
	ev_int = evsignal_new(wx_base, SIGINT, wxpushd_sigterm, NULL);
	ev_hup = evsignal_new(wx_base, SIGHUP, wxpushd_sighup, NULL);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	log_info("wxpushd %s started", PACKAGE_VERSION);

	event_base_dispatch(wx_base);

	server_close();
	cred_shutdown();
	upstream_shutdown();
	store_close();
	rpc_shutdown();
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
