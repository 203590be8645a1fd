/*
 * HTTP(S) to WeChat: libcurl multi driven by libevent, after curl's
 * docs/examples/hiperfifo.c. One struct event per socket (found again with
 * curl_multi_assign), one timer, and completed transfers drained from
 * curl_multi_info_read. Calls, their easy handles and buffers are recycled
 * through a free list so the send path allocates almost nothing.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "wxpushd.h"

#define UPSTREAM_MAX_BODY	(1024 * 1024)	/* response body cap */
#define UPSTREAM_KEEP_BUF	(16 * 1024)	/* larger buffers are not recycled */
#define UPSTREAM_POOL_MAX	128		/* idle calls kept with their handles */
#define UPSTREAM_MAXCONNECTS	256		/* connection cache size */
#define UPSTREAM_CONNECT_MAX	5000		/* ms; connect timeout ceiling */

enum upstream_state {
	UPSTREAM_IDLE,		/* in the free list */
	UPSTREAM_ACTIVE,	/* in the multi handle */
	UPSTREAM_DONE,		/* finished, waiting for its callback */
	UPSTREAM_DELIVERING	/* its callback is running */
};

/* A growable byte buffer that is wiped before it is freed or reused. */
struct upstream_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};

struct upstream_call {
	CURL			*easy;
	enum upstream_state	 state;
	upstream_cb		 cb;
	void			*arg;

	struct upstream_buf	 url;		/* may hold a token or secret */
	struct upstream_buf	 seturl;	/* the URL its handle has; ditto */
	CURLU			*uh;		/* that URL, parsed once */
	struct upstream_buf	 body;		/* ditto */
	struct upstream_buf	 resp;		/* ditto (token replies) */
	size_t			 received;	/* body bytes seen, kept or not */
	int			 too_large;

	const char		*method;	/* static string */
	char			 path[96];	/* for the debug log only */
	struct timespec		 start;

	unsigned int		 conf_gen;	/* configuration its handle has */
	int			 post;		/* method its handle is set for */

	const char		*early_error;	/* failed before the transfer */
	CURLcode		 result;
	char			 errbuf[CURL_ERROR_SIZE];

	TAILQ_ENTRY(upstream_call) entry;
};
TAILQ_HEAD(upstream_calls, upstream_call);

/*
 * One per socket curl watches. A connection's socket (one curl opened through
 * upstream_opensocket_cb) stays watched for reading while it sits idle in
 * curl's cache, so that reusing it costs no epoll_ctl; it is freed when curl
 * closes it. Any other socket is freed on CURL_POLL_REMOVE.
 */
struct upstream_sock {
	struct event		 ev;
	curl_socket_t		 fd;
	short			 kind;		/* the events ev watches, or 0 */
	int			 conn;		/* a connection's: kept while idle */
	int			 idle;		/* in curl's cache: not curl's now */
	LIST_ENTRY(upstream_sock) entry;
};

static int			 upstream_global_done;
static struct event_base	*upstream_base;
static CURLM			*upstream_multi;
static CURLSH			*upstream_share;
static struct event		*upstream_timer;
static int			 upstream_in_timer;	/* inside upstream_timer_cb */
static struct event		*upstream_deliver_ev;
static struct curl_slist	*upstream_post_headers;

/*
 * WeChat's answer to nearly every send, parsed once by jansson at start;
 * an answer of exactly these bytes is handed on as that object (shared,
 * read-only) instead of being parsed again. Any other answer, however
 * close, goes through json_loadb.
 */
static const char		 upstream_ok_answer[] =
    "{\"errcode\":0,\"errmsg\":\"ok\"}";
static json_t			*upstream_ok_json;
static const char		*upstream_default_cainfo;
static const char		*upstream_default_capath;

static char			*upstream_api_base;
static char			*upstream_ca_file;
static long			 upstream_timeout_ms = 10000;
static long			 upstream_connect_ms = 5000;
/* Bumped by upstream_configure: handles set for an older one are reset. */
static unsigned int		 upstream_conf_gen = 1;

static struct upstream_calls	 upstream_active = TAILQ_HEAD_INITIALIZER(upstream_active);
static struct upstream_calls	 upstream_done = TAILQ_HEAD_INITIALIZER(upstream_done);
static struct upstream_calls	 upstream_pool = TAILQ_HEAD_INITIALIZER(upstream_pool);
static size_t			 upstream_npool;
static size_t			 upstream_ninflight;
static struct upstream_call	*upstream_delivering;
static LIST_HEAD(, upstream_sock) upstream_socks = LIST_HEAD_INITIALIZER(upstream_socks);
/* Connection sockets by descriptor, from open to close. */
static struct upstream_sock	**upstream_conns;
static size_t			 upstream_nconns;	/* slots */

static void	upstream_check_multi(void);
static void	upstream_deliver(void);

/* Make room for n more bytes, wiping the old copy when the buffer moves. */
static void
upstream_buf_reserve(struct upstream_buf *b, size_t n)
{
	size_t	 cap;
	char	*data;

	if (b->cap - b->len > n)
		return;
	cap = b->cap < 1024 ? 1024 : b->cap;
	while (cap - b->len <= n)
		cap *= 2;
	data = xmalloc(cap);
	if (b->len != 0)
		memcpy(data, b->data, b->len);
	freezero(b->data, b->cap);
	b->data = data;
	b->cap = cap;
}

/* Append bytes and keep the buffer NUL-terminated. */
static void
upstream_buf_add(struct upstream_buf *b, const void *p, size_t n)
{
	upstream_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

/* Wipe the contents; keep the memory unless it has grown large. */
static void
upstream_buf_clear(struct upstream_buf *b, int keep)
{
	if (b->data == NULL)
		return;
	if (keep && b->cap <= UPSTREAM_KEEP_BUF) {
		OPENSSL_cleanse(b->data, b->len + 1);
		b->len = 0;
		return;
	}
	freezero(b->data, b->cap);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Seconds since the call started. */
static double
upstream_elapsed(const struct upstream_call *call)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return ((double)(now.tv_sec - call->start.tv_sec) +
	    (double)(now.tv_nsec - call->start.tv_nsec) / 1e9);
}

/* Free a call and its easy handle for good. */
static void
upstream_call_free(struct upstream_call *call)
{
	if (call->easy != NULL)
		curl_easy_cleanup(call->easy);
	if (call->uh != NULL)
		curl_url_cleanup(call->uh);
	upstream_buf_clear(&call->url, 0);
	upstream_buf_clear(&call->seturl, 0);
	upstream_buf_clear(&call->body, 0);
	upstream_buf_clear(&call->resp, 0);
	free(call);
}

/* Wipe a finished call and put it back in the free list. */
static void
upstream_call_recycle(struct upstream_call *call)
{
	if (upstream_npool >= UPSTREAM_POOL_MAX || call->easy == NULL) {
		upstream_call_free(call);
		return;
	}
	upstream_buf_clear(&call->url, 1);
	upstream_buf_clear(&call->body, 1);
	upstream_buf_clear(&call->resp, 1);
	call->state = UPSTREAM_IDLE;
	call->cb = NULL;
	call->arg = NULL;
	TAILQ_INSERT_HEAD(&upstream_pool, call, entry);
	upstream_npool++;
}

/* Keep the body in the call's buffer, up to the cap. */
static size_t
upstream_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct upstream_call	*call = arg;
	size_t			 n = size * nmemb;
	long			 status = 0;

	if (n > UPSTREAM_MAX_BODY - call->received) {
		call->too_large = 1;
		return (0);	/* aborts with CURLE_WRITE_ERROR */
	}
	call->received += n;

	/* Only a 200 body is ever parsed; read the others and drop them. */
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200 && n != 0)
		upstream_buf_add(&call->resp, ptr, n);
	return (n);
}

/* A socket of curl's is ready: tell curl, then collect what finished. */
static void
upstream_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_sock	*us = arg;
	int			 action = 0, running;

	if (us->idle) {
		/*
		 * An idle connection spoke or closed: stop watching it. curl
		 * finds it dead at its next reuse and closes it.
		 */
		event_del(&us->ev);
		us->kind = 0;
		return;
	}

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* The socket's struct may be freed inside this: do not touch it after. */
	curl_multi_socket_action(upstream_multi, fd, action, &running);
	upstream_check_multi();
}

/* curl's timer expired. */
static void
upstream_timer_cb(__attribute__((unused)) evutil_socket_t fd,
    __attribute__((unused)) short what, __attribute__((unused)) void *arg)
{
	int	running;

	upstream_in_timer = 1;
	curl_multi_socket_action(upstream_multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	upstream_check_multi();
	upstream_in_timer = 0;
}

/* The struct of connection socket s, or NULL. */
static struct upstream_sock *
upstream_conn_find(curl_socket_t s)
{
	if (s < 0 || (size_t)s >= upstream_nconns)
		return (NULL);
	return (upstream_conns[s]);
}

/* Forget a socket's struct: unwatch it and free it. */
static void
upstream_sock_free(struct upstream_sock *us)
{
	if (us->kind != 0)
		event_del(&us->ev);
	if (us->conn)
		upstream_conns[us->fd] = NULL;
	LIST_REMOVE(us, entry);
	free(us);
}

/* Watch s for kind (EV_PERSIST and EV_READ/EV_WRITE); no-op if so already. */
static void
upstream_sock_watch(struct upstream_sock *us, short kind)
{
	if (us->kind == kind)
		return;		/* already watched so: no epoll_ctl */
	if (us->kind != 0)
		event_del(&us->ev);
	us->kind = kind;
	event_assign(&us->ev, upstream_base, us->fd, kind, upstream_event_cb,
	    us);
	event_add(&us->ev, NULL);
}

/*
 * CURLMOPT_SOCKETFUNCTION: watch, rewatch or forget a socket. A connection
 * going idle into curl's cache stays watched for reading (its epoll entry
 * kept for the next transfer on it), but for writing never: an idle
 * socket is always writable.
 */
static int
upstream_socket_cb(__attribute__((unused)) CURL *easy, curl_socket_t s,
    int what, __attribute__((unused)) void *userp, void *socketp)
{
	struct upstream_sock	*us = socketp;
	short			 kind = EV_PERSIST;

	if (us == NULL)
		us = upstream_conn_find(s);
	if (what == CURL_POLL_REMOVE) {
		if (us == NULL)
			return (0);
		if (!us->conn) {
			upstream_sock_free(us);
			return (0);
		}
		us->idle = 1;
		if (us->kind != (EV_PERSIST | EV_READ)) {
			event_del(&us->ev);
			us->kind = 0;
		}
		return (0);
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (us == NULL) {
		us = xcalloc(1, sizeof *us);
		us->fd = s;
		LIST_INSERT_HEAD(&upstream_socks, us, entry);
	}
	if (socketp == NULL)
		curl_multi_assign(upstream_multi, s, us);
	us->idle = 0;
	upstream_sock_watch(us, kind);
	return (0);
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket, known until closed. */
static curl_socket_t
upstream_opensocket_cb(__attribute__((unused)) void *clientp,
    curlsocktype purpose, struct curl_sockaddr *addr)
{
	struct upstream_sock	*us, **conns;
	curl_socket_t		 s;
	size_t			 n;

	if (purpose != CURLSOCKTYPE_IPCXN)
		return (CURL_SOCKET_BAD);
	s = socket(addr->family, addr->socktype | SOCK_CLOEXEC,
	    addr->protocol);
	if (s == CURL_SOCKET_BAD)
		return (s);
	if ((size_t)s >= upstream_nconns) {
		n = upstream_nconns != 0 ? upstream_nconns : 64;
		while (n <= (size_t)s)
			n *= 2;
		conns = xreallocarray(upstream_conns, n, sizeof *conns);
		memset(conns + upstream_nconns, 0,
		    (n - upstream_nconns) * sizeof *conns);
		upstream_conns = conns;
		upstream_nconns = n;
	}
	us = xcalloc(1, sizeof *us);
	us->fd = s;
	us->conn = 1;
	LIST_INSERT_HEAD(&upstream_socks, us, entry);
	upstream_conns[s] = us;
	return (s);
}

/* CURLOPT_CLOSESOCKETFUNCTION: unwatch a connection's socket, then close. */
static int
upstream_closesocket_cb(__attribute__((unused)) void *clientp,
    curl_socket_t s)
{
	struct upstream_sock	*us;

	if ((us = upstream_conn_find(s)) != NULL)
		upstream_sock_free(us);
	return (close(s));
}

/*
 * CURLMOPT_TIMERFUNCTION: arm or disarm the one timer. "Now" (a transfer
 * just added, usually) runs later in this same loop iteration instead of
 * on a 0 ms timer, which would cost an epoll_wait of its own; "now" asked
 * from inside the timer's run (libcurl's, or a callback's new transfer)
 * waits for the next iteration, so a chain of transfers that fail at once
 * cannot keep the loop from polling.
 */
static int
upstream_timerfn_cb(__attribute__((unused)) CURLM *multi, long timeout_ms,
    __attribute__((unused)) void *userp)
{
	struct timeval	tv;

	if (timeout_ms < 0) {
		evtimer_del(upstream_timer);
		return (0);
	}
	if (timeout_ms == 0 && !upstream_in_timer) {
		evtimer_del(upstream_timer);
		event_active(upstream_timer, EV_TIMEOUT, 0);
		return (0);
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(upstream_timer, &tv);
	return (0);
}

/* Move finished transfers out of the multi handle, then run callbacks. */
static void
upstream_check_multi(void)
{
	CURLMsg			*msg;
	struct upstream_call	*call;
	char			*priv;
	int			 left;

	while ((msg = curl_multi_info_read(upstream_multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		call = (struct upstream_call *)priv;
		call->result = msg->data.result;
		curl_multi_remove_handle(upstream_multi, call->easy);
		TAILQ_REMOVE(&upstream_active, call, entry);
		call->state = UPSTREAM_DONE;
		TAILQ_INSERT_TAIL(&upstream_done, call, entry);
	}
	upstream_deliver();
}

/* A short reason for a failed transfer; never holds the URL. */
static const char *
upstream_curl_error(const struct upstream_call *call)
{
	switch (call->result) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return ("resolve failed");
	case CURLE_COULDNT_CONNECT:
		return ("connect failed");
	case CURLE_OPERATION_TIMEDOUT:
		return ("timed out");
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return ("tls error");
	case CURLE_FILESIZE_EXCEEDED:
		return ("body too large");
	case CURLE_WRITE_ERROR:
		return (call->too_large ? "body too large" : "write error");
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return ("connection dropped");
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return ("bad http reply");
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return ("bad url");
	case CURLE_OUT_OF_MEMORY:
		return ("out of memory");
	default:
		return ("transfer failed");
	}
}

/* Run the callbacks of finished calls, one at a time, each exactly once. */
static void
upstream_deliver(void)
{
	struct upstream_call	*call;
	struct upstream_reply	 r;
	json_t			*json;
	json_error_t		 jerr;
	char			 status[32];
	upstream_cb		 cb;

	while ((call = TAILQ_FIRST(&upstream_done)) != NULL) {
		TAILQ_REMOVE(&upstream_done, call, entry);
		upstream_ninflight--;

		memset(&r, 0, sizeof r);
		json = NULL;
		r.seconds = upstream_elapsed(call);
		if (call->early_error != NULL)
			r.error = call->early_error;
		else {
			curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE,
			    &r.http_status);
			if (call->result != CURLE_OK)
				r.error = upstream_curl_error(call);
			else if (r.http_status != 200) {
				snprintf(status, sizeof status, "http %ld",
				    r.http_status);
				r.error = status;
			} else if (call->resp.len ==
			    sizeof upstream_ok_answer - 1 &&
			    memcmp(call->resp.data, upstream_ok_answer,
			    call->resp.len) == 0) {
				/* Held for the callback: it may shut us down. */
				json = json_incref(upstream_ok_json);
				r.ok = 1;
				r.json = json;
			} else if ((json = json_loadb(call->resp.len != 0 ?
			    call->resp.data : "", call->resp.len,
			    JSON_REJECT_DUPLICATES, &jerr)) == NULL)
				r.error = "bad json";
			else if (!json_is_object(json))
				r.error = "json not an object";
			else {
				r.ok = 1;
				r.json = json;
			}
		}
		if (r.ok)
			log_debug("upstream: %s %s: %ld in %.3fs", call->method,
			    call->path, r.http_status, r.seconds);
		else if (r.http_status != 200)
			log_debug("upstream: %s %s: %s in %.3fs", call->method,
			    call->path, r.error, r.seconds);
		else
			log_debug("upstream: %s %s: 200, %s in %.3fs",
			    call->method, call->path, r.error, r.seconds);

		/* The body may hold a token: wipe it before anyone else runs. */
		upstream_buf_clear(&call->resp, 1);

		cb = call->cb;
		call->state = UPSTREAM_DELIVERING;
		upstream_delivering = call;
		cb(&r, call->arg);
		upstream_delivering = NULL;
		json_decref(json);

		if (upstream_multi == NULL) {
			/* upstream_shutdown ran inside the callback. */
			upstream_call_free(call);
			return;
		}
		upstream_call_recycle(call);
	}
}

/* Deliver failures found before a transfer started, from the event loop. */
static void
upstream_deliver_cb(__attribute__((unused)) evutil_socket_t fd,
    __attribute__((unused)) short what, __attribute__((unused)) void *arg)
{
	upstream_deliver();
}

/* Set up curl and the multi handle on the event base. */
int
upstream_init(struct event_base *base)
{
	curl_version_info_data	*vi;

	if (upstream_multi != NULL)
		fatalx("%s: already initialised", __func__);
	if (!upstream_global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_warnx("upstream: curl_global_init failed");
			return (-1);
		}
		upstream_global_done = 1;
	}

	/* The built-in CA defaults, to restore them when ca_file goes away. */
	vi = curl_version_info(CURLVERSION_NOW);
	if (vi->age >= CURLVERSION_SEVENTH) {
		upstream_default_cainfo = vi->cainfo;
		upstream_default_capath = vi->capath;
	}

	if ((upstream_multi = curl_multi_init()) == NULL) {
		log_warnx("upstream: curl_multi_init failed");
		return (-1);
	}
	upstream_base = base;
	upstream_timer = evtimer_new(base, upstream_timer_cb, NULL);
	upstream_deliver_ev = event_new(base, -1, 0, upstream_deliver_cb, NULL);
	if (upstream_timer == NULL || upstream_deliver_ev == NULL)
		fatalx("%s: event_new failed", __func__);

	curl_multi_setopt(upstream_multi, CURLMOPT_SOCKETFUNCTION,
	    upstream_socket_cb);
	curl_multi_setopt(upstream_multi, CURLMOPT_TIMERFUNCTION,
	    upstream_timerfn_cb);
	curl_multi_setopt(upstream_multi, CURLMOPT_MAXCONNECTS,
	    (long)UPSTREAM_MAXCONNECTS);
	curl_multi_setopt(upstream_multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_NOTHING);

	/* TLS sessions shared so new connections resume instead of full handshakes. */
	if ((upstream_share = curl_share_init()) != NULL)
		curl_share_setopt(upstream_share, CURLSHOPT_SHARE,
		    CURL_LOCK_DATA_SSL_SESSION);

	upstream_post_headers = curl_slist_append(NULL,
	    "Content-Type: application/json");
	if (upstream_post_headers == NULL ||
	    curl_slist_append(upstream_post_headers, "Expect:") == NULL)
		fatalx("%s: curl_slist_append failed", __func__);
	if ((upstream_ok_json = json_loadb(upstream_ok_answer,
	    sizeof upstream_ok_answer - 1, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL)
		fatalx("%s: json_loadb failed", __func__);
	return (0);
}

/* Take the settings new calls use; calls in progress keep theirs. */
void
upstream_configure(const struct config *conf)
{
	long	ms;

	free(upstream_api_base);
	upstream_api_base = conf->api_base != NULL ?
	    xstrdup(conf->api_base) : NULL;
	free(upstream_ca_file);
	upstream_ca_file = conf->ca_file != NULL ? xstrdup(conf->ca_file) : NULL;

	/* A cache of idle connections, not a cap on open ones. */
	if (upstream_multi != NULL)
		curl_multi_setopt(upstream_multi, CURLMOPT_MAXCONNECTS,
		    conf->max_inflight > UPSTREAM_MAXCONNECTS ?
		    (long)conf->max_inflight : (long)UPSTREAM_MAXCONNECTS);

	ms = conf->upstream_timeout > 0 ? (long)conf->upstream_timeout * 1000 :
	    10000;
	upstream_timeout_ms = ms;
	upstream_connect_ms = ms < UPSTREAM_CONNECT_MAX ? ms :
	    UPSTREAM_CONNECT_MAX;

	/* Recycled handles take the new settings at their next call. */
	if (++upstream_conf_gen == 0)
		upstream_conf_gen = 1;
}

#define UPSTREAM_SETOPT(o, v) do {					\
	if (curl_easy_setopt(e, o, v) != CURLE_OK)			\
		bad = 1;						\
} while (0)

/*
 * The options that never change for a call object, set once when its easy
 * handle is made. Nothing ever calls curl_easy_reset, so they stay.
 */
static int
upstream_call_setopt_once(struct upstream_call *call)
{
	CURL	*e = call->easy;
	int	 bad = 0;

	UPSTREAM_SETOPT(CURLOPT_PRIVATE, (char *)call);
	UPSTREAM_SETOPT(CURLOPT_ERRORBUFFER, call->errbuf);
	UPSTREAM_SETOPT(CURLOPT_NOSIGNAL, 1L);
	UPSTREAM_SETOPT(CURLOPT_OPENSOCKETFUNCTION, upstream_opensocket_cb);
	UPSTREAM_SETOPT(CURLOPT_CLOSESOCKETFUNCTION, upstream_closesocket_cb);
	UPSTREAM_SETOPT(CURLOPT_WRITEFUNCTION, upstream_write_cb);
	UPSTREAM_SETOPT(CURLOPT_WRITEDATA, call);
	UPSTREAM_SETOPT(CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)UPSTREAM_MAX_BODY);
	UPSTREAM_SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	UPSTREAM_SETOPT(CURLOPT_TCP_KEEPIDLE, 60L);
	UPSTREAM_SETOPT(CURLOPT_TCP_KEEPINTVL, 30L);
	UPSTREAM_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	UPSTREAM_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	UPSTREAM_SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	UPSTREAM_SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	UPSTREAM_SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (upstream_share != NULL)
		UPSTREAM_SETOPT(CURLOPT_SHARE, upstream_share);
	return (bad ? -1 : 0);
}

/*
 * The URL as a CURLU parsed here, set only when it differs from the one the
 * handle has: most calls repeat their handle's last URL (same path, same
 * token), and libcurl then neither parses it nor prints it again per
 * transfer (with CURLOPT_URL alone it does both, each time). CURLOPT_URL is
 * set beside it so that libcurl's own copy of the URL string stays the
 * current one. The flags are the ones libcurl parses CURLOPT_URL with.
 */
static int
upstream_call_seturl(struct upstream_call *call)
{
	CURL	*e = call->easy;
	int	 bad = 0;

	if (call->seturl.data != NULL && call->seturl.len == call->url.len &&
	    memcmp(call->seturl.data, call->url.data, call->url.len) == 0)
		return (0);
	upstream_buf_clear(&call->seturl, 1);
	if (call->uh == NULL && (call->uh = curl_url()) == NULL)
		return (-1);
	if (curl_url_set(call->uh, CURLUPART_URL, call->url.data,
	    CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
		return (-2);
	UPSTREAM_SETOPT(CURLOPT_URL, call->url.data);
	UPSTREAM_SETOPT(CURLOPT_CURLU, call->uh);
	if (bad)
		return (-1);
	upstream_buf_add(&call->seturl, call->url.data, call->url.len);
	return (0);
}

/*
 * The options of this call: URL, configuration (which a reload may change)
 * and method. A recycled handle keeps its connection, DNS and TLS state, and
 * its options: the configuration is set again only when it has changed since
 * (libcurl copies the CA strings each time), the headers only when the method
 * has. A failed setopt leaves the handle marked to be set again in full.
 */
static int
upstream_call_setopt(struct upstream_call *call, int post)
{
	CURL		*e = call->easy;
	const char	*cainfo, *capath;
	int		 bad = 0;

	if ((bad = upstream_call_seturl(call)) != 0)
		return (bad);

	if (call->conf_gen != upstream_conf_gen) {
		UPSTREAM_SETOPT(CURLOPT_TIMEOUT_MS, upstream_timeout_ms);
		UPSTREAM_SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
		    upstream_connect_ms);

		/* With a ca_file only it is trusted; without, the system's. */
		if (upstream_ca_file != NULL) {
			cainfo = upstream_ca_file;
			capath = NULL;
		} else {
			cainfo = upstream_default_cainfo;
			capath = upstream_default_capath;
		}
		UPSTREAM_SETOPT(CURLOPT_CAINFO, cainfo);
		UPSTREAM_SETOPT(CURLOPT_CAPATH, capath);
		call->conf_gen = bad ? 0 : upstream_conf_gen;
	}

	if (post) {
		/* Our own copy, wiped when the call ends: no copy inside curl. */
		UPSTREAM_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)call->body.len);
		UPSTREAM_SETOPT(CURLOPT_POSTFIELDS,
		    call->body.data != NULL ? call->body.data : "");
		if (call->post != 1) {
			UPSTREAM_SETOPT(CURLOPT_HTTPHEADER,
			    upstream_post_headers);
			call->post = bad ? -1 : 1;
		}
	} else if (call->post != 0) {
		/* POSTFIELDS switches to POST, so clear it before HTTPGET. */
		UPSTREAM_SETOPT(CURLOPT_POSTFIELDS, (char *)NULL);
		UPSTREAM_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
		UPSTREAM_SETOPT(CURLOPT_HTTPGET, 1L);
		UPSTREAM_SETOPT(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
		call->post = bad ? -1 : 0;
	}
	return (bad ? -1 : 0);
}
#undef UPSTREAM_SETOPT

/* Take a call from the free list, or make one. */
static struct upstream_call *
upstream_call_get(void)
{
	struct upstream_call	*call;

	if ((call = TAILQ_FIRST(&upstream_pool)) != NULL) {
		TAILQ_REMOVE(&upstream_pool, call, entry);
		upstream_npool--;
	} else {
		call = xcalloc(1, sizeof *call);
		if ((call->easy = curl_easy_init()) == NULL)
			fatalx("%s: curl_easy_init failed", __func__);
		call->conf_gen = 0;	/* options not set yet */
		call->post = -1;
		if (upstream_call_setopt_once(call) != 0)
			fatalx("%s: curl_easy_setopt failed", __func__);
	}
	call->too_large = 0;
	call->received = 0;
	call->early_error = NULL;
	call->result = CURLE_OK;
	call->errbuf[0] = '\0';
	return (call);
}

/* Start a call; its callback runs later from the event loop, exactly once. */
struct upstream_call *
upstream_request(const char *method, const char *path, const char *query,
    const char *body, size_t bodylen, upstream_cb cb, void *arg)
{
	struct upstream_call	*call;
	int			 post, rc;

	if (upstream_multi == NULL)
		fatalx("%s: not initialised", __func__);
	if (strcmp(method, "POST") == 0)
		post = 1;
	else if (strcmp(method, "GET") == 0)
		post = 0;
	else
		fatalx("%s: bad method", __func__);

	call = upstream_call_get();
	call->method = post ? "POST" : "GET";
	call->cb = cb;
	call->arg = arg;
	snprintf(call->path, sizeof call->path, "%s", path);
	clock_gettime(CLOCK_MONOTONIC, &call->start);

	if (upstream_api_base != NULL) {
		upstream_buf_add(&call->url, upstream_api_base,
		    strlen(upstream_api_base));
		upstream_buf_add(&call->url, path, strlen(path));
		if (query != NULL && *query != '\0') {
			upstream_buf_add(&call->url, "?", 1);
			upstream_buf_add(&call->url, query, strlen(query));
		}
	}
	if (post && bodylen != 0)
		upstream_buf_add(&call->body, body, bodylen);

	upstream_ninflight++;
	if (upstream_api_base == NULL || *path != '/')
		call->early_error = "bad url";
	else if ((rc = upstream_call_setopt(call, post)) != 0)
		call->early_error = rc == -2 ? "bad url" : "bad request";
	else if (curl_multi_add_handle(upstream_multi, call->easy) != CURLM_OK)
		call->early_error = "internal error";
	if (call->early_error != NULL) {
		/* Never call back from here: the event loop does it. */
		call->state = UPSTREAM_DONE;
		TAILQ_INSERT_TAIL(&upstream_done, call, entry);
		event_active(upstream_deliver_ev, EV_TIMEOUT, 0);
		return (call);
	}
	call->state = UPSTREAM_ACTIVE;
	TAILQ_INSERT_TAIL(&upstream_active, call, entry);
	return (call);
}

/* Forget a call: its callback will not run. Safe from any callback. */
void
upstream_cancel(struct upstream_call *call)
{
	if (call == NULL)
		return;
	switch (call->state) {
	case UPSTREAM_ACTIVE:
		curl_multi_remove_handle(upstream_multi, call->easy);
		TAILQ_REMOVE(&upstream_active, call, entry);
		break;
	case UPSTREAM_DONE:
		TAILQ_REMOVE(&upstream_done, call, entry);
		break;
	case UPSTREAM_DELIVERING:
	case UPSTREAM_IDLE:
		/* Its callback is running or has run: nothing to stop. */
		return;
	}
	upstream_ninflight--;
	log_debug("upstream: %s %s: cancelled after %.3fs", call->method,
	    call->path, upstream_elapsed(call));
	upstream_call_recycle(call);
}

/* Calls whose callback has not run yet. */
size_t
upstream_inflight(void)
{
	return (upstream_ninflight);
}

/* Cancel every call and free everything; upstream_init may follow. */
void
upstream_shutdown(void)
{
	struct upstream_call	*call;
	struct upstream_sock	*us;

	if (upstream_multi == NULL)
		return;
	while ((call = TAILQ_FIRST(&upstream_active)) != NULL) {
		curl_multi_remove_handle(upstream_multi, call->easy);
		TAILQ_REMOVE(&upstream_active, call, entry);
		upstream_call_free(call);
	}
	while ((call = TAILQ_FIRST(&upstream_done)) != NULL) {
		TAILQ_REMOVE(&upstream_done, call, entry);
		upstream_call_free(call);
	}
	while ((call = TAILQ_FIRST(&upstream_pool)) != NULL) {
		TAILQ_REMOVE(&upstream_pool, call, entry);
		upstream_call_free(call);
	}
	upstream_npool = 0;
	upstream_ninflight = 0;
	if (upstream_delivering != NULL) {
		/* Its callback is running; upstream_deliver frees the rest. */
		curl_easy_cleanup(upstream_delivering->easy);
		upstream_delivering->easy = NULL;
	}

	curl_multi_cleanup(upstream_multi);
	upstream_multi = NULL;
	while ((us = LIST_FIRST(&upstream_socks)) != NULL)
		upstream_sock_free(us);
	free(upstream_conns);
	upstream_conns = NULL;
	upstream_nconns = 0;
	if (upstream_share != NULL)
		curl_share_cleanup(upstream_share);
	upstream_share = NULL;
	event_free(upstream_timer);
	upstream_timer = NULL;
	event_free(upstream_deliver_ev);
	upstream_deliver_ev = NULL;
	curl_slist_free_all(upstream_post_headers);
	json_decref(upstream_ok_json);
	upstream_ok_json = NULL;
	upstream_post_headers = NULL;

	free(upstream_api_base);
	upstream_api_base = NULL;
	free(upstream_ca_file);
	upstream_ca_file = NULL;
	upstream_base = NULL;

	curl_global_cleanup();
	upstream_global_done = 0;
}

