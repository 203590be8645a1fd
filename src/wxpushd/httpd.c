/*
 * An evhttp endpoint bound to a HOST:PORT from the configuration, which a
 * reload can move: the callback endpoint and /metrics share this.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "wxpushd.h"

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
	log_info("%s: listening on %s", h->name, h->addr);
}

/* At exit: the server, its socket and its connections. */
void
httpd_close(struct httpd *h)
{
	if (h->http != NULL)
		evhttp_free(h->http);
	h->http = NULL;
	h->sock = NULL;
	free(h->addr);
	h->addr = NULL;
}
