/*
 * The Unix socket: listening, accepting with limits, and each client connection
 * with its framing loop, backpressure and idle timeout.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wxpushd.h"

/*
 * A client's output past this stops reading its requests until it drains;
 * with the input bound below, what a client that never reads costs.
 */
#define SERVER_OUTPUT_HIGH	(64 * 1024)
#define SERVER_OUTPUT_LOW	(16 * 1024)
/* Requests in flight per connection before reading pauses. */
#define SERVER_CLIENT_INFLIGHT	4096
/* Requests handled per read event, so one busy client cannot starve others. */
#define SERVER_QUOTA		256
/* Input buffered beyond one max_request frame before reading stops. */
#define SERVER_INPUT_SLACK	(16 * 1024)
#define SERVER_READ_CHUNK	(16 * 1024)	/* at most per read(2) */

struct server_uid {
	uid_t	uid;
	int	n;
};

static int			 server_fd = -1;
static char			*server_path;
static struct event		*server_ev;
static struct event		*server_pause_ev;
static TAILQ_HEAD(, client)	 server_clients = TAILQ_HEAD_INITIALIZER(server_clients);
static size_t			 server_n;
static uint64_t			 server_next_id;
static struct server_uid	*server_uids;
static size_t			 server_nuids;
static void			(*server_drained)(void);
static int			 server_draining;

static void	server_client_free(struct client *);
static void	server_client_read(struct client *);
static void	server_client_reading(struct client *, int);
static void	server_accept_cb(evutil_socket_t, short, void *);

size_t
server_nclients(void)
{
	return (server_n);
}

/* The open client with this id, or NULL (ids are never reused). */
struct client *
server_client_find(uint64_t id)
{
	struct client *c;

	TAILQ_FOREACH(c, &server_clients, entry) {
		if (c->id == id)
			return (c->closing || c->bev == NULL ? NULL : c);
	}
	return (NULL);
}

/* The path of the socket this daemon created, or NULL (systemd's, or none). */
const char *
server_socket_path(void)
{
	return (server_path);
}

/* Forget a uid that has no connection left, so the table stays small. */
static void
server_uid_release(struct server_uid *u)
{
	if (u->n != 0)
		return;
	*u = server_uids[--server_nuids];
}

/*
 * Log a refused connection at most once a second per reason, so that a peer
 * hammering the socket cannot fill the log.
 */
static void
server_log_refused(uid_t uid, int per_uid)
{
	static time_t	last[2];
	static unsigned	skipped[2];
	const char	*why = per_uid ? "max_clients_per_uid reached" :
			    "max_clients reached";
	time_t		now = time(NULL);

	if (now == last[per_uid]) {
		skipped[per_uid]++;
		return;
	}
	last[per_uid] = now;
	if (skipped[per_uid] != 0)
		log_warnx("refusing connection from uid %u: %s (%u more "
		    "refused since the last message)", (unsigned)uid, why,
		    skipped[per_uid]);
	else
		log_warnx("refusing connection from uid %u: %s", (unsigned)uid,
		    why);
	skipped[per_uid] = 0;
}

/* The connection count of uid, created at zero on first use. */
static struct server_uid *
server_uid_find(uid_t uid)
{
	size_t i;

	for (i = 0; i < server_nuids; i++) {
		if (server_uids[i].uid == uid)
			return (&server_uids[i]);
	}
	server_uids = xreallocarray(server_uids, server_nuids + 1,
	    sizeof *server_uids);
	server_uids[server_nuids].uid = uid;
	server_uids[server_nuids].n = 0;
	return (&server_uids[server_nuids++]);
}

/* Create the socket's directory if needed (one level, 0755). */
static int
server_mkdir(const char *path)
{
	char *copy, *dir;
	struct stat st;
	int rc = 0;

	copy = xstrdup(path);
	dir = dirname(copy);
	if (stat(dir, &st) == -1) {
		if (errno != ENOENT || mkdir(dir, 0755) == -1) {
			log_warn("socket directory %s", dir);
			rc = -1;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		log_warnx("socket directory %s: not a directory", dir);
		rc = -1;
	}
	free(copy);
	return (rc);
}

/*
 * Remove a stale socket left by a crash; refuse if a daemon still answers on it,
 * or if the path is something other than a socket.
 */
static int
server_unlink_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) == -1)
		return (errno == ENOENT ? 0 : -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("%s exists and is not a socket", path);
		return (-1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	if (connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0) {
		close(fd);
		log_warnx("%s: another wxpushd is running", path);
		return (-1);
	}
	close(fd);
	log_info("removing stale socket %s", path);
	return (unlink(path));
}

/* Bind and listen on the configured socket; -1 (logged) on failure. */
int
server_listen(void)
{
	struct sockaddr_un sun;
	const char *path = wx_conf->socket;
	mode_t old;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		log_warnx("socket path %s is too long", path);
		return (-1);
	}
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	/* Socket activation: systemd owns that socket; it is never unlinked. */
	if ((server_fd = systemd_listen_fd(path)) != -1) {
		log_info("using the socket passed by systemd");
		goto listening;
	}
	if (server_mkdir(path) == -1 || server_unlink_stale(path, &sun) == -1)
		return (-1);
	server_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (server_fd == -1) {
		log_warn("socket");
		return (-1);
	}
	/* The socket never exists with looser permissions than asked for. */
	old = umask(0777 & ~wx_conf->socket_mode);
	if (bind(server_fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		umask(old);
		log_warn("bind %s", path);
		goto fail;
	}
	umask(old);
	if (chmod(path, wx_conf->socket_mode) == -1) {
		log_warn("chmod %s", path);
		goto fail;
	}
	if (listen(server_fd, 1024) == -1) {
		log_warn("listen %s", path);
		goto fail;
	}
	server_path = xstrdup(path);	/* ours: unlinked at exit */
listening:
	server_ev = event_new(wx_base, server_fd, EV_READ | EV_PERSIST,
	    server_accept_cb, NULL);
	server_pause_ev = evtimer_new(wx_base, server_accept_cb, NULL);
	event_add(server_ev, NULL);
	log_info("listening on %s", path);
	return (0);
fail:
	close(server_fd);
	server_fd = -1;
	return (-1);
}

/* Stop accepting and remove the socket; clients already connected stay. */
void
server_stop_accepting(void)
{
	if (server_ev != NULL) {
		event_free(server_ev);
		server_ev = NULL;
	}
	if (server_pause_ev != NULL) {
		event_free(server_pause_ev);
		server_pause_ev = NULL;
	}
	if (server_fd != -1) {
		close(server_fd);
		server_fd = -1;
	}
	if (server_path != NULL) {
		unlink(server_path);
		free(server_path);
		server_path = NULL;
	}
}

/* Close everything at exit. */
void
server_close(void)
{
	struct client *c;

	server_stop_accepting();
	while ((c = TAILQ_FIRST(&server_clients)) != NULL)
		server_client_free(c);
	free(server_uids);
	server_uids = NULL;
	server_nuids = 0;
}

/* Whether every client has no request in flight and nothing left to write. */
static int
server_idle(void)
{
	struct client *c;

	TAILQ_FOREACH(c, &server_clients, entry) {
		if (c->nrequests != 0 || (c->bev != NULL &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0))
			return (0);
	}
	return (1);
}

static void
server_check_drained(void)
{
	void (*cb)(void);

	if (!server_draining || !server_idle())
		return;
	cb = server_drained;
	server_drained = NULL;
	server_draining = 0;
	if (cb != NULL)
		cb();
}

/*
 * Graceful stop: accept nothing new, read no new requests, and call done once
 * every request in flight has been answered and written out.
 */
void
server_drain(void (*done)(void))
{
	struct client *c;

	server_stop_accepting();
	TAILQ_FOREACH(c, &server_clients, entry)
		server_client_reading(c, 0);
	server_drained = done;
	server_draining = 1;
	server_check_drained();
}

static void
server_client_free(struct client *c)
{
	struct request *req;
	struct server_uid *u;

	/* Requests in flight finish without anyone to answer. */
	while ((req = TAILQ_FIRST(&c->requests)) != NULL) {
		TAILQ_REMOVE(&c->requests, req, entry);
		req->client = NULL;
	}
	TAILQ_REMOVE(&server_clients, c, entry);
	server_n--;
	u = server_uid_find(c->peer.uid);
	u->n--;
	server_uid_release(u);
	if (c->rd != NULL)
		event_free(c->rd);
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	if (c->more != NULL)
		event_free(c->more);
	peer_free(&c->peer);
	log_debug("client %llu: closed", (unsigned long long)c->id);
	free(c);
	server_check_drained();
}

/* Free c if it is closing and has nothing left to answer or write. */
static int
server_client_maybe_free(struct client *c)
{
	if (!c->closing || c->nrequests != 0 ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) != 0)
		return (0);
	server_client_free(c);
	return (1);
}

/* Pause or resume reading from c for backpressure. */
static void
server_client_update(struct client *c)
{
	int full;

	if (c->closing || server_draining)
		return;
	full = c->nrequests >= SERVER_CLIENT_INFLIGHT ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > SERVER_OUTPUT_HIGH;
	if (full && !c->paused) {
		server_client_reading(c, 0);
		c->paused = 1;
	} else if (!full && c->paused &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) <= SERVER_OUTPUT_LOW) {
		server_client_reading(c, 1);
		c->paused = 0;
		/* Requests may already be buffered: parse them. */
		event_active(c->more, EV_TIMEOUT, 0);
	}
}

/*
 * A request of c has been answered, or output for c packed. Never frees c,
 * writes or parses here: the caller may be inside c's read loop, or still
 * packing; the deferred event does the rest, once for all of c's replies of
 * this loop iteration.
 */
void
server_client_request_done(struct client *c)
{
	event_active(c->more, EV_TIMEOUT, 0);
}

/*
 * Write c's output straight to its socket. EV_WRITE stays off while writes
 * go through, so a reply costs one writev and no epoll_ctl; only when the
 * socket would block is the bufferevent left to finish it (and its write
 * timeout to apply). -1 if c was freed.
 */
static int
server_client_flush(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int n;

	if (evbuffer_get_length(out) == 0 ||
	    (bufferevent_get_enabled(c->bev) & EV_WRITE))
		return (0);
	/* The bufferevent keeps its output's start frozen but while it writes. */
	evbuffer_unfreeze(out, 1);
	n = evbuffer_write(out, c->fd);
	evbuffer_freeze(out, 1);
	if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR) {
		log_debug("client %llu: write: %s, closing",
		    (unsigned long long)c->id, strerror(errno));
		server_client_free(c);
		return (-1);
	}
	if (evbuffer_get_length(out) != 0)
		bufferevent_enable(c->bev, EV_WRITE);
	return (0);
}

/* Deferred work for a client: write, continue parsing, resume, or close. */
static void
server_client_more_cb(evutil_socket_t fd, short events, void *arg)
{
	struct client *c = arg;

	(void)fd;
	(void)events;
	if (server_client_flush(c) == -1)
		return;
	if (server_client_maybe_free(c))
		return;
	if (server_draining) {
		server_check_drained();
		return;
	}
	server_client_update(c);
	if (!c->paused && !c->closing)
		server_client_read(c);
}

/*
 * Close c for a frame that is not MessagePack-RPC: one info line per
 * connection, rate-limited per uid, so a broken client shows without debug.
 */
static void
server_client_malformed(struct client *c, const char *why)
{
	char peer[32];

	snprintf(peer, sizeof peer, "uid %u", (unsigned)c->peer.uid);
	ratelog(LOG_LEVEL_INFO, "malformed frame", peer, "client %llu (%s, "
	    "pid %d): malformed frame (%s), closing", (unsigned long long)c->id,
	    peer, (int)c->peer.pid, why);
	server_client_free(c);
}

/* Parse and dispatch the complete frames in c's input, up to the quota. */
static void
server_client_read(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len, objlen, limit = wx_conf->max_request;
	unsigned char *p;
	int n;

	for (n = 0; n < SERVER_QUOTA; n++) {
		if (c->paused || c->closing || server_draining)
			return;
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		/* Resumed where the last read stopped: linear per frame. */
		p = evbuffer_pullup(in, len > limit ? limit : len);
		switch (rpc_scan_more(&c->scan, p, len > limit ? limit : len,
		    limit, RPC_MAX_OBJECTS(limit), &objlen)) {
		case RPC_SCAN_MORE:
			return;
		case RPC_SCAN_BAD:
			server_client_malformed(c, "not MessagePack, over "
			    "max_request, too deep or too many objects");
			return;
		case RPC_SCAN_OK:
			break;
		}
		if (rpc_input(c, p, objlen) == -1) {
			server_client_malformed(c, "not a MessagePack-RPC "
			    "request or notification");
			return;
		}
		evbuffer_drain(in, objlen);
		rpc_scan_reset(&c->scan);
		if (c->rd_full) {
			/* Room again: read on, unless paused or closing. */
			c->rd_full = 0;
			if (!c->paused && !c->closing && !server_draining)
				server_client_reading(c, 1);
		}
		server_client_update(c);
	}
	/* Quota used up: let other clients run, then continue. */
	event_active(c->more, EV_TIMEOUT, 0);
}

/*
 * Watch c's socket for reading or stop; the idle timeout runs while it is
 * watched. The bufferevent never reads: libevent 2.1's evbuffer_read asks
 * ioctl(FIONREAD) before every read, one system call per request at light
 * load; server_client_recv_cb reads into the bufferevent's input itself.
 */
static void
server_client_reading(struct client *c, int on)
{
	struct timeval tv;

	if (c->rd == NULL)
		return;
	if (!on) {
		event_del(c->rd);
		return;
	}
	tv.tv_sec = c->idle_timeout;
	tv.tv_usec = 0;
	event_add(c->rd, c->idle_timeout > 0 ? &tv : NULL);
}

/*
 * c's socket is readable, or idle too long. Reads at most up to the input's
 * bound (max_request and some slack: a flood of small frames, which have no
 * answer to push back with, must not pile up faster than the per-event
 * quota parses them); at the bound reading stops until parsing drains it.
 */
static void
server_client_recv_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v;
	size_t len, limit, want;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		/* Waiting on our own answers is not idleness. */
		if (c->nrequests != 0)
			return;
		log_debug("client %llu: idle timeout, closing",
		    (unsigned long long)c->id);
		server_client_free(c);
		return;
	}
	limit = wx_conf->max_request + SERVER_INPUT_SLACK;
	if ((len = evbuffer_get_length(in)) >= limit) {
		server_client_reading(c, 0);
		c->rd_full = 1;
		return;
	}
	want = limit - len < SERVER_READ_CHUNK ? limit - len :
	    SERVER_READ_CHUNK;
	/* The bufferevent keeps its input's end frozen but while it reads. */
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
		n = -2;
	else {
		if (v.iov_len > want)
			v.iov_len = want;
		if ((n = read(fd, v.iov_base, v.iov_len)) > 0) {
			v.iov_len = (size_t)n;
			evbuffer_commit_space(in, &v, 1);
		}
	}
	evbuffer_freeze(in, 0);
	if (n < 0) {
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			return;
		server_client_free(c);
		return;
	}
	if (n == 0) {
		/* Half-close: answer what was asked, then close. */
		c->closing = 1;
		server_client_reading(c, 0);
		server_client_maybe_free(c);
		return;
	}
	server_client_read(c);
}

/* Output drained below the low watermark: maybe resume reading, or finish. */
static void
server_client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	/* Written out: back to writing directly (see server_client_flush). */
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
	if (server_client_maybe_free(c))
		return;
	if (server_draining)
		server_check_drained();
	else
		server_client_update(c);
}

static void
server_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	/* Only writing is the bufferevent's: a timeout or an error. */
	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("client %llu: write timeout, closing",
		    (unsigned long long)c->id);
	server_client_free(c);
}

/* Accept connections until the backlog is empty, within limits. */
static void
server_accept_cb(evutil_socket_t lfd, short events, void *arg)
{
	struct client *c;
	struct server_uid *u;
	struct timeval tv;
	int fd, n;

	(void)lfd;
	(void)arg;
	if (events & EV_TIMEOUT) {	/* end of an EMFILE pause */
		if (server_ev != NULL)
			event_add(server_ev, NULL);
		return;
	}
	for (n = 0; n < 64 && server_fd != -1; n++) {
		fd = accept4(server_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Do not spin on a full descriptor table. */
				log_warnx("accept: out of file descriptors, "
				    "pausing for a second");
				event_del(server_ev);
				tv.tv_sec = 1;
				tv.tv_usec = 0;
				evtimer_add(server_pause_ev, &tv);
			} else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		c = xcalloc(1, sizeof *c);
		c->fd = fd;
		if (peer_load(fd, &c->peer) == -1) {
			log_warn("peer credentials");
			close(fd);
			free(c);
			continue;
		}
		u = server_uid_find(c->peer.uid);
		if (server_n >= (size_t)wx_conf->max_clients ||
		    u->n >= wx_conf->max_clients_per_uid) {
			server_log_refused(c->peer.uid, server_n <
			    (size_t)wx_conf->max_clients);
			server_uid_release(u);
			peer_free(&c->peer);
			close(fd);
			free(c);
			continue;
		}
		u->n++;
		server_n++;
		c->id = ++server_next_id;
		rpc_scan_reset(&c->scan);
		TAILQ_INIT(&c->requests);
		c->bev = bufferevent_socket_new(wx_base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->rd = event_new(wx_base, fd, EV_READ | EV_PERSIST,
		    server_client_recv_cb, c);
		c->more = event_new(wx_base, -1, 0, server_client_more_cb, c);
		bufferevent_setcb(c->bev, NULL, server_client_write_cb,
		    server_client_event_cb, c);
		bufferevent_setwatermark(c->bev, EV_WRITE, SERVER_OUTPUT_LOW, 0);
		c->idle_timeout = wx_conf->idle_timeout;
		if (wx_conf->idle_timeout > 0) {
			tv.tv_sec = wx_conf->idle_timeout;
			tv.tv_usec = 0;
			bufferevent_set_timeouts(c->bev, NULL, &tv);
		}
		/* Replies are written by server_client_flush. */
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		server_client_reading(c, 1);
		TAILQ_INSERT_TAIL(&server_clients, c, entry);
		log_debug("client %llu: uid %u gid %u pid %d", (unsigned long long)
		    c->id, (unsigned)c->peer.uid, (unsigned)c->peer.gid,
		    (int)c->peer.pid);
	}
}
