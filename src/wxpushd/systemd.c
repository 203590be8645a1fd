/*
 * systemd integration, when built with libsystemd (--with-systemd): readiness
 * and stop notifications for Type=notify, the watchdog, and socket activation
 * (a listening socket handed over by wxpushd.socket). Without libsystemd each
 * function does nothing, and the daemon binds its socket itself.
 */
#include "config.h"

#include <sys/socket.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "wxpushd.h"

#ifdef HAVE_SYSTEMD
static struct event	*systemd_watchdog_ev;

/* Tell systemd something; failures only matter to systemd, so just log. */
static void
systemd_notify(const char *state)
{
	int rc;

	if ((rc = sd_notify(0, state)) < 0)
		log_debug("sd_notify: %s", strerror(-rc));
}

/* The watchdog timer: the loop still turns, so tell systemd we live. */
static void
systemd_watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	(void)fd;
	(void)events;
	(void)arg;
	systemd_notify("WATCHDOG=1");
}
#endif

/*
 * A listening AF_UNIX stream socket passed by systemd (socket activation),
 * non-blocking and close-on-exec; -1 if there is none. One whose path is not
 * the configured socket is used all the same, with a warning: the .socket
 * unit decides. Other passed descriptors are closed.
 */
int
systemd_listen_fd(const char *path)
{
#ifdef HAVE_SYSTEMD
	int fd, n, found = -1, flags;

	if ((n = sd_listen_fds(1)) <= 0)
		return (-1);
	for (fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; fd++) {
		if (found == -1 && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL,
		    0) > 0) {
			found = fd;
			continue;
		}
		log_warnx("socket activation: ignoring descriptor %d, not a "
		    "listening Unix stream socket", fd);
		close(fd);
	}
	if (found == -1)
		return (-1);
	if (sd_is_socket_unix(found, SOCK_STREAM, 1, path, 0) <= 0)
		log_warnx("socket activation: the socket passed by systemd is "
		    "not %s; using it anyway", path);
	if ((flags = fcntl(found, F_GETFL)) == -1 ||
	    fcntl(found, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(found, F_SETFD, FD_CLOEXEC) == -1) {
		log_warn("socket activation: fcntl");
		close(found);
		return (-1);
	}
	return (found);
#else
	(void)path;
	return (-1);
#endif
}

/* Start-up is complete: READY=1, and the watchdog if the unit asks for one. */
void
systemd_ready(void)
{
#ifdef HAVE_SYSTEMD
	struct timeval	tv;
	uint64_t	usec;

	systemd_notify("READY=1\nSTATUS=sending");
	if (systemd_watchdog_ev != NULL || sd_watchdog_enabled(0, &usec) <= 0)
		return;
	/* Twice per period, as sd_watchdog_enabled(3) advises. */
	usec /= 2;
	tv.tv_sec = usec / 1000000;
	tv.tv_usec = usec % 1000000;
	systemd_watchdog_ev = event_new(wx_base, -1, EV_PERSIST,
	    systemd_watchdog_cb, NULL);
	event_add(systemd_watchdog_ev, &tv);
	log_debug("systemd watchdog: every %lld ms", (long long)usec / 1000);
#endif
}

/* SIGHUP: a reload starts. */
void
systemd_reloading(void)
{
#ifdef HAVE_SYSTEMD
	systemd_notify("RELOADING=1");
#endif
}

/* SIGTERM: draining. The watchdog keeps running until the loop ends. */
void
systemd_stopping(void)
{
#ifdef HAVE_SYSTEMD
	systemd_notify("STOPPING=1\nSTATUS=draining");
#endif
}

/* At exit. */
void
systemd_shutdown(void)
{
#ifdef HAVE_SYSTEMD
	if (systemd_watchdog_ev != NULL)
		event_free(systemd_watchdog_ev);
	systemd_watchdog_ev = NULL;
#endif
}
