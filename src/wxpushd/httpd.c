/*
 * An evhttp endpoint bound to a HOST:PORT from the configuration, which a
 * reload can move: the callback endpoint and /metrics share this. Its limits
 * are kept here: at most http_max_connections at once (past that the listener
 * stops accepting, and connections wait in the kernel's backlog without a
 * descriptor, so HTTP can never take the Unix socket's), a pause of a second
 * when descriptors run out instead of a spin, and http_request_timeout for a
 * whole request however slowly it trickles (evhttp's own timeout restarts on
 * every byte).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/listener.h>

#include "wxpushd.h"

/* One accepted connection, from accept until evhttp lets go of it. */
struct httpd_conn {
	struct httpd			*h;
	struct bufferevent		*bev;	/* referenced until adopted */
	struct evhttp_connection	*evcon;	/* NULL until adopted */
	struct event			*deadline;
	int				 dispatched;	/* a handler has the request */
	TAILQ_ENTRY(httpd_conn)		 entry;
};

/* The endpoints set up, to find one from its listener. */
static struct httpd	*httpd_all[4];

static void	httpd_update(struct httpd *);

/* The endpoint whose current listener is lev, or NULL. */
static struct httpd *
httpd_by_listener(struct evconnlistener *lev)
{
	size_t i;

	for (i = 0; i < sizeof httpd_all / sizeof httpd_all[0]; i++) {
		if (httpd_all[i] != NULL && httpd_all[i]->sock != NULL &&
		    evhttp_bound_socket_get_listener(httpd_all[i]->sock) == lev)
			return (httpd_all[i]);
	}
	return (NULL);
}

/* Forget c: evhttp has closed its connection (or never kept it). */
static void
httpd_conn_free(struct httpd_conn *c)
{
	struct httpd *h = c->h;

	TAILQ_REMOVE(&h->conns, c, entry);
	h->nconns--;
	if (c->deadline != NULL)
		event_free(c->deadline);
	free(c);
	if (!h->closing)
		httpd_update(h);
}

/* evhttp is freeing a connection of ours. */
static void
httpd_close_cb(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	httpd_conn_free(arg);
}

/* A request did not arrive whole within http_request_timeout: close it. */
static void
httpd_deadline_cb(evutil_socket_t fd, short events, void *arg)
{
	struct httpd_conn	*c = arg;
	char			*addr = NULL;
	ev_uint16_t		 port = 0;

	(void)fd;
	(void)events;
	if (c->dispatched || c->evcon == NULL)
		return;
	evhttp_connection_get_peer(c->evcon, &addr, &port);
	ratelog(LOG_LEVEL_INFO, "slow HTTP request", addr != NULL ? addr :
	    "unknown", "%s: request from %s not complete within %d s, "
	    "closing", c->h->name, addr != NULL ? addr : "unknown",
	    wx_conf->http_request_timeout);
	evhttp_connection_free(c->evcon);	/* calls httpd_close_cb */
}

/*
 * Right after accept, once evhttp has made the connection: find it from its
 * bufferevent, to hear when it closes, and start its deadline.
 */
static void
httpd_adopt_cb(evutil_socket_t fd, short events, void *arg)
{
	struct httpd		*h = arg;
	struct httpd_conn	*c, *next;
	struct bufferevent	*bev;
	bufferevent_event_cb	 eventcb;
	struct timeval		 tv;
	void			*cbarg;

	(void)fd;
	(void)events;
	TAILQ_FOREACH_SAFE(c, &h->conns, entry, next) {
		if ((bev = c->bev) == NULL)
			continue;
		c->bev = NULL;
		bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
		if (eventcb == NULL || cbarg == NULL) {
			/* evhttp failed and freed it already. */
			httpd_conn_free(c);
			bufferevent_decref(bev);
			continue;
		}
		/* evhttp's callbacks take its connection as their argument. */
		c->evcon = cbarg;
		evhttp_connection_set_closecb(c->evcon, httpd_close_cb, c);
		bufferevent_decref(bev);
		c->deadline = evtimer_new(wx_base, httpd_deadline_cb, c);
		tv.tv_sec = wx_conf->http_request_timeout;
		tv.tv_usec = 0;
		evtimer_add(c->deadline, &tv);
	}
}

/* evhttp accepted a connection and asks for its bufferevent: count it. */
static struct bufferevent *
httpd_bev_cb(struct event_base *base, void *arg)
{
	struct httpd		*h = arg;
	struct httpd_conn	*c;
	struct bufferevent	*bev;

	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL)
		fatalx("bufferevent_socket_new");
	/* Ours until adopted, even if evhttp frees it before then. */
	bufferevent_incref(bev);
	c = xcalloc(1, sizeof *c);
	c->h = h;
	c->bev = bev;
	TAILQ_INSERT_TAIL(&h->conns, c, entry);
	h->nconns++;
	httpd_update(h);
	event_active(h->adopt, EV_TIMEOUT, 0);
	return (bev);
}

/* A second after running out of descriptors: accept again. */
static void
httpd_pause_cb(evutil_socket_t fd, short events, void *arg)
{
	struct httpd *h = arg;

	(void)fd;
	(void)events;
	h->paused = 0;
	httpd_update(h);
}

/* accept failed for another reason than a retriable one. */
static void
httpd_accept_error(struct evconnlistener *lev, void *arg)
{
	struct timeval	 tv = { 1, 0 };
	struct httpd	*h;
	int		 e = errno;

	(void)arg;	/* the evhttp */
	if ((h = httpd_by_listener(lev)) == NULL) {
		log_warnx("http: accept: %s", strerror(e));
		return;
	}
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Do not spin on a full descriptor table. */
		ratelog(LOG_LEVEL_WARN, "http accept", h->name, "%s: accept: "
		    "%s, pausing for a second", h->name, strerror(e));
		h->paused = 1;
		evconnlistener_disable(lev);
		evtimer_add(h->pause, &tv);
		return;
	}
	ratelog(LOG_LEVEL_WARN, "http accept", h->name, "%s: accept: %s",
	    h->name, strerror(e));
}

/* Accept while not paused and under http_max_connections. */
static void
httpd_update(struct httpd *h)
{
	struct evconnlistener	*lev;
	int			 full;

	if (h->sock == NULL ||
	    (lev = evhttp_bound_socket_get_listener(h->sock)) == NULL)
		return;
	full = h->nconns >= (size_t)wx_conf->http_max_connections;
	if (full && !h->full)
		ratelog(LOG_LEVEL_WARN, "http_max_connections", h->name,
		    "%s: http_max_connections (%d) reached, new connections "
		    "wait", h->name, wx_conf->http_max_connections);
	h->full = full;
	if (h->paused || full)
		evconnlistener_disable(lev);
	else
		evconnlistener_enable(lev);
}

/*
 * Make h the endpoint of http (set up by the owner, with its callbacks):
 * every connection is counted and has a deadline from here on.
 */
void
httpd_setup(struct httpd *h, struct evhttp *http)
{
	size_t i;

	h->http = http;
	TAILQ_INIT(&h->conns);
	h->adopt = event_new(wx_base, -1, 0, httpd_adopt_cb, h);
	h->pause = evtimer_new(wx_base, httpd_pause_cb, h);
	evhttp_set_bevcb(http, httpd_bev_cb, h);
	for (i = 0; i < sizeof httpd_all / sizeof httpd_all[0]; i++) {
		if (httpd_all[i] == NULL || httpd_all[i] == h) {
			httpd_all[i] = h;
			break;
		}
	}
}

/*
 * A handler has the request of req's connection: its deadline no longer
 * applies (the answer may take the handler's time), and the connection
 * closes after the answer, so every request gets a deadline of its own.
 */
void
httpd_dispatched(struct httpd *h, struct evhttp_request *req)
{
	struct evhttp_connection	*evcon;
	struct httpd_conn		*c;

	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
	    "close");
	if ((evcon = evhttp_request_get_connection(req)) == NULL)
		return;
	TAILQ_FOREACH(c, &h->conns, entry) {
		if (c->evcon == evcon) {
			c->dispatched = 1;
			if (c->deadline != NULL)
				evtimer_del(c->deadline);
			return;
		}
	}
}

/* After a bind: errors and limits apply to the new listener too. */
static void
httpd_bound(struct httpd *h)
{
	struct evconnlistener *lev;

	if (h->sock != NULL &&
	    (lev = evhttp_bound_socket_get_listener(h->sock)) != NULL) {
		evconnlistener_set_error_cb(lev, httpd_accept_error);
		httpd_update(h);
	}
}

/* Bind h's server to addr (HOST:PORT, [V6]:PORT); NULL on failure. */
static struct evhttp_bound_socket *
httpd_bind(struct httpd *h, const char *addr)
{
	struct evhttp_bound_socket *sock = NULL;
	char *host, *colon;
	long port;

	host = xstrdup(addr);
	if ((colon = strrchr(host, ':')) == NULL) {
		free(host);
		return (NULL);
	}
	*colon = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (host[0] == '[' && colon > host && colon[-1] == ']') {
		colon[-1] = '\0';
		memmove(host, host + 1, strlen(host + 1) + 1);
	}
	if (port > 0 && port <= 65535)
		sock = evhttp_bind_socket_with_handle(h->http, host,
		    (ev_uint16_t)port);
	free(host);
	return (sock);
}

/* Listen on addr with the server the caller set up in h->http; 0 or -1 (logged). */
int
httpd_listen(struct httpd *h, const char *addr)
{
	if ((h->sock = httpd_bind(h, addr)) == NULL) {
		log_warn("%s: cannot listen on %s", h->name, addr);
		return (-1);
	}
	h->addr = xstrdup(addr);
	httpd_bound(h);
	log_info("%s: listening on %s", h->name, h->addr);
	return (0);
}

/*
 * After a reload: stop, or move to want if it changed. The new address is bound
 * before the old one is let go, so a failed move keeps the endpoint where it was.
 */
void
httpd_reload(struct httpd *h, const char *want)
{
	struct evhttp_bound_socket *sock;

	if ((want == NULL && h->addr == NULL) || (want != NULL &&
	    h->addr != NULL && strcmp(want, h->addr) == 0))
		return;
	if (want == NULL) {
		evhttp_del_accept_socket(h->http, h->sock);
		h->sock = NULL;
		log_info("%s: stopped listening on %s", h->name, h->addr);
		free(h->addr);
		h->addr = NULL;
		return;
	}
	if (h->addr == NULL) {
		httpd_listen(h, want);
		return;
	}
	if ((sock = httpd_bind(h, want)) == NULL) {
		log_warn("%s: cannot listen on %s; still on %s", h->name, want,
		    h->addr);
		return;
	}
	evhttp_del_accept_socket(h->http, h->sock);
	h->sock = sock;
	free(h->addr);
	h->addr = xstrdup(want);
	httpd_bound(h);
	log_info("%s: listening on %s", h->name, h->addr);
}

/* At exit: the server, its socket and its connections. */
void
httpd_close(struct httpd *h)
{
	struct httpd_conn	*c;
	size_t			 i;

	h->closing = 1;		/* connections go: no listener to update */
	if (h->http != NULL)
		evhttp_free(h->http);
	h->http = NULL;
	/* Accepted but never adopted: evhttp has let go of them by now. */
	while (h->adopt != NULL && (c = TAILQ_FIRST(&h->conns)) != NULL) {
		if (c->bev != NULL)
			bufferevent_decref(c->bev);
		httpd_conn_free(c);
	}
	if (h->adopt != NULL)
		event_free(h->adopt);
	if (h->pause != NULL)
		event_free(h->pause);
	h->adopt = h->pause = NULL;
	for (i = 0; i < sizeof httpd_all / sizeof httpd_all[0]; i++) {
		if (httpd_all[i] == h)
			httpd_all[i] = NULL;
	}
	h->sock = NULL;
	free(h->addr);
	h->addr = NULL;
}
