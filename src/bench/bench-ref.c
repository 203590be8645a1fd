/*
 * The references of wxpush-bench: the same sends straight to the upstream
 * with the same body, the same token-bearing URL, HTTP/1.1 keep-alive, and a
 * fixed number of transfers in flight, each easy handle started again on its
 * kept connection when it finishes. Two ways to drive them:
 *  - --reference: a libcurl multi client on libevent (curl's hiperfifo
 *    pattern, as the daemon's upstream.c), each answer parsed with jansson;
 *  - --reference-bare: the plainest libcurl client, curl_multi_perform and
 *    curl_multi_poll in a loop and nothing else, each answer checked for
 *    HTTP 200 and errcode 0 by a byte search.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "log.h"
#include "xmalloc.h"
#include "bench.h"

#define BENCH_REF_RESP_MAX	8192	/* bytes of an answer kept */
#define BENCH_REF_SECRET_MAX	256
#define BENCH_REF_TOKEN_MAX	512
#define BENCH_REF_TIMEOUT_MS	10000L

struct bench_xfer {
	CURL		*easy;
	uint64_t	 start;
	char		 resp[BENCH_REF_RESP_MAX];
	size_t		 len;
	int		 too_large;
	char		 errbuf[CURL_ERROR_SIZE];
};

/* One per socket curl watches; freed on CURL_POLL_REMOVE or at the end. */
struct bench_ref_sock {
	struct event		 ev;
	LIST_ENTRY(bench_ref_sock) entry;
};

static CURLM			*bench_ref_multi;
static struct event		*bench_ref_timer;
static struct bench_xfer	*bench_ref_xfers;
static size_t			 bench_ref_nxfers;
static char			*bench_ref_url;		/* holds the token */
static char			*bench_ref_body_json;
static size_t			 bench_ref_bodylen;
static struct curl_slist	*bench_ref_headers;
static LIST_HEAD(, bench_ref_sock) bench_ref_socks =
    LIST_HEAD_INITIALIZER(bench_ref_socks);

static void	bench_ref_check(void);

/* The WeChat request body, as wxpushd builds it for the bench's message. */
char *
bench_ref_body(size_t *len)
{
	json_t	*root, *data, *content;
	char	*s, scene[16];

	snprintf(scene, sizeof scene, "%d", BENCH_SCENE);
	content = json_pack("{s:s,s:s}", "value", BENCH_CONTENT, "color",
	    BENCH_COLOR);
	data = json_pack("{s:o}", "content", content);
	root = json_pack("{s:s,s:s,s:s,s:s,s:o}", "touser", BENCH_TOUSER,
	    "template_id", BENCH_TEMPLATE_ID, "scene", scene, "title",
	    BENCH_TITLE, "data", data);
	if (root == NULL ||
	    (s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		fatalx("cannot build the request body");
	json_decref(root);
	*len = strlen(s);
	return (s);
}

/* Keep the answer, up to the cap. */
static size_t
bench_ref_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct bench_xfer	*x = arg;
	size_t			 n = size * nmemb;

	if (n > sizeof x->resp - 1 - x->len) {
		x->too_large = 1;
		return (0);
	}
	memcpy(x->resp + x->len, ptr, n);
	x->len += n;
	return (n);
}

/* A socket of curl's is ready. */
static void
bench_ref_event_cb(evutil_socket_t fd, short what, void *arg)
{
	int	action = 0, running;

	(void)arg;
	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	/* The socket's struct may be freed inside: do not touch it after. */
	curl_multi_socket_action(bench_ref_multi, fd, action, &running);
	bench_ref_check();
}

/* curl's timer expired. */
static void
bench_ref_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	int	running;

	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(bench_ref_multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	bench_ref_check();
}

/* CURLMOPT_SOCKETFUNCTION: watch, rewatch or forget a socket. */
static int
bench_ref_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp,
    void *socketp)
{
	struct bench_ref_sock	*bs = socketp;
	short			 kind = EV_PERSIST;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (bs != NULL) {
			event_del(&bs->ev);
			LIST_REMOVE(bs, entry);
			free(bs);
		}
		return (0);
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (bs == NULL) {
		bs = xcalloc(1, sizeof *bs);
		LIST_INSERT_HEAD(&bench_ref_socks, bs, entry);
		curl_multi_assign(bench_ref_multi, s, bs);
	} else
		event_del(&bs->ev);
	event_assign(&bs->ev, bench.base, s, kind, bench_ref_event_cb, NULL);
	event_add(&bs->ev, NULL);
	return (0);
}

/* CURLMOPT_TIMERFUNCTION: arm or disarm the one timer. */
static int
bench_ref_timerfn_cb(CURLM *multi, long ms, void *userp)
{
	struct timeval	tv;

	(void)multi;
	(void)userp;
	if (ms < 0) {
		evtimer_del(bench_ref_timer);
		return (0);
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(bench_ref_timer, &tv);
	return (0);
}

/* (Re)start transfer x. */
static void
bench_ref_issue(struct bench_xfer *x)
{
	x->len = 0;
	x->too_large = 0;
	x->errbuf[0] = '\0';
	x->start = bench_now_ns();
	bench.issued++;
	if (curl_multi_add_handle(bench_ref_multi, x->easy) != CURLM_OK)
		fatalx("curl_multi_add_handle failed");
}

/* Judge a finished transfer as the daemon would: 200 and errcode 0. */
static void
bench_ref_done(struct bench_xfer *x, CURLcode result)
{
	json_t		*j, *ec;
	json_error_t	 jerr;
	long		 status = 0;
	char		 code[BENCH_ERR_LEN];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (result != CURLE_OK) {
		snprintf(code, sizeof code, "curl_%d", (int)result);
		bench_record(x->start, code);
		return;
	}
	if (status != 200) {
		snprintf(code, sizeof code, "http_%ld", status);
		bench_record(x->start, code);
		return;
	}
	if ((j = json_loadb(x->resp, x->len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL || !json_is_object(j)) {
		json_decref(j);
		bench_record(x->start, "bad_json");
		return;
	}
	ec = json_object_get(j, "errcode");
	if (ec != NULL && (!json_is_integer(ec) || json_integer_value(ec) != 0)) {
		snprintf(code, sizeof code, "errcode_%lld", json_is_integer(ec) ?
		    (long long)json_integer_value(ec) : -999LL);
		bench_record(x->start, code);
	} else
		bench_record(x->start, NULL);
	json_decref(j);
}

/*
 * The bare reference's check: HTTP 200 and, if the answer names an errcode,
 * 0. A byte search, not a parse: the cheapest check that still catches an
 * upstream that refuses.
 */
static void
bench_ref_bare_done(struct bench_xfer *x, CURLcode result)
{
	static const char	 key[] = "\"errcode\":";
	const char		*p, *end;
	long			 status = 0;
	char			 code[BENCH_ERR_LEN];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (result != CURLE_OK) {
		snprintf(code, sizeof code, "curl_%d", (int)result);
		bench_record(x->start, code);
		return;
	}
	if (status != 200) {
		snprintf(code, sizeof code, "http_%ld", status);
		bench_record(x->start, code);
		return;
	}
	end = x->resp + x->len;
	p = memmem(x->resp, x->len, key, sizeof key - 1);
	if (p != NULL) {
		p += sizeof key - 1;
		if (p + 1 >= end || p[0] != '0' || (p[1] != ',' && p[1] != '}')) {
			bench_record(x->start, "errcode_nonzero");
			return;
		}
	}
	bench_record(x->start, NULL);
}

/* Collect finished transfers and start them again. */
static void
bench_ref_check(void)
{
	CURLMsg			*msg;
	struct bench_xfer	*x;
	char			*priv;
	CURLcode		 result;
	int			 left;

	while ((msg = curl_multi_info_read(bench_ref_multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		x = (struct bench_xfer *)priv;
		result = msg->data.result;
		curl_multi_remove_handle(bench_ref_multi, x->easy);
		if (bench_opts.bare)
			bench_ref_bare_done(x, result);
		else
			bench_ref_done(x, result);
		if (bench.phase != BENCH_DONE)
			bench_ref_issue(x);
	}
}

/* The first line of a file, without its newline; NULL with a warning. */
static char *
bench_ref_read_secret(const char *path)
{
	FILE	*f;
	char	 buf[BENCH_REF_SECRET_MAX + 2], *s;
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		log_warn("%s", path);
		return (NULL);
	}
	if (fgets(buf, sizeof buf, f) == NULL) {
		log_warnx("%s: empty", path);
		fclose(f);
		return (NULL);
	}
	fclose(f);
	n = strcspn(buf, "\r\n");
	buf[n] = '\0';
	if (n == 0 || n > BENCH_REF_SECRET_MAX) {
		log_warnx("%s: no secret on the first line", path);
		OPENSSL_cleanse(buf, sizeof buf);
		return (NULL);
	}
	s = xstrdup(buf);
	OPENSSL_cleanse(buf, sizeof buf);
	return (s);
}

/* The CA options every handle gets. */
static void
bench_ref_tls(CURL *e)
{
	if (bench_opts.ca_file != NULL) {
		curl_easy_setopt(e, CURLOPT_CAINFO, bench_opts.ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, (char *)NULL);
	}
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
}

/*
 * A token from the upstream's stable_token endpoint with the appid and its
 * secret, as wxpushd gets one (for an upstream that checks tokens, such as
 * wxpush-mock). NULL with a warning.
 */
static char *
bench_ref_fetch_token(void)
{
	struct bench_xfer	*x;
	CURL			*e;
	json_t			*req, *resp;
	json_error_t		 jerr;
	char			*secret, *body, *url, *token = NULL;
	const char		*t;
	long			 status = 0;
	CURLcode		 rc;

	if ((secret = bench_ref_read_secret(bench_opts.secret_file)) == NULL)
		return (NULL);
	req = json_pack("{s:s,s:s,s:s}", "grant_type", "client_credential",
	    "appid", bench_opts.appid, "secret", secret);
	freezero_str(secret);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL)
		fatalx("cannot build the token request");
	json_decref(req);
	xasprintf(&url, "%s/cgi-bin/stable_token", bench_opts.reference);

	x = xcalloc(1, sizeof *x);
	if ((e = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, bench_ref_headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, bench_ref_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, BENCH_REF_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	bench_ref_tls(e);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	freezero_str(body);
	free(url);
	if (rc != CURLE_OK || status != 200) {
		log_warnx("stable_token: %s (http %ld)", rc != CURLE_OK ?
		    curl_easy_strerror(rc) : "refused", status);
		goto out;
	}
	resp = json_loadb(x->resp, x->len, 0, &jerr);
	t = json_string_value(json_object_get(resp, "access_token"));
	if (t == NULL || *t == '\0' || strlen(t) > BENCH_REF_TOKEN_MAX)
		log_warnx("stable_token: no access_token in the answer");
	else
		token = xstrdup(t);
	json_decref(resp);
out:
	freezero(x, sizeof *x);
	return (token);
}

/* Make the transfers and start them all. */
int
bench_ref_start(void)
{
	struct bench_xfer	*x;
	char			*token;
	size_t			 i, n;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	bench_ref_headers = curl_slist_append(NULL,
	    "Content-Type: application/json");
	if (bench_ref_headers == NULL ||
	    curl_slist_append(bench_ref_headers, "Expect:") == NULL)
		fatalx("curl_slist_append failed");

	if (bench_opts.token != NULL)
		token = xstrdup(bench_opts.token);
	else if (bench_opts.secret_file != NULL) {
		if ((token = bench_ref_fetch_token()) == NULL)
			return (-1);
	} else {
		log_warnx("--reference needs --token or --secret-file");
		return (-1);
	}
	/* The token goes in a URL unescaped: only WeChat's alphabet. */
	n = strlen(token);
	if (n == 0 || strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
	    "opqrstuvwxyz0123456789-_.~") != n) {
		log_warnx("the token has characters a URL cannot carry as is");
		freezero_str(token);
		return (-1);
	}
	xasprintf(&bench_ref_url, "%s/cgi-bin/message/template/subscribe?"
	    "access_token=%s", bench_opts.reference, token);
	freezero_str(token);
	bench_ref_body_json = bench_ref_body(&bench_ref_bodylen);

	if ((bench_ref_multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	n = (size_t)bench_opts.conns * (size_t)bench_opts.depth;
	if (!bench_opts.bare) {
		bench_ref_timer = evtimer_new(bench.base, bench_ref_timer_cb,
		    NULL);
		if (bench_ref_timer == NULL)
			fatalx("evtimer_new failed");
		curl_multi_setopt(bench_ref_multi, CURLMOPT_SOCKETFUNCTION,
		    bench_ref_socket_cb);
		curl_multi_setopt(bench_ref_multi, CURLMOPT_TIMERFUNCTION,
		    bench_ref_timerfn_cb);
	}
	curl_multi_setopt(bench_ref_multi, CURLMOPT_MAXCONNECTS, (long)n);
	curl_multi_setopt(bench_ref_multi, CURLMOPT_PIPELINING,
	    (long)CURLPIPE_NOTHING);

	bench_ref_xfers = xcalloc(n, sizeof *bench_ref_xfers);
	for (i = 0; i < n; i++) {
		x = &bench_ref_xfers[i];
		if ((x->easy = curl_easy_init()) == NULL)
			fatalx("curl_easy_init failed");
		bench_ref_nxfers++;
		curl_easy_setopt(x->easy, CURLOPT_URL, bench_ref_url);
		curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
		curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
		curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION,
		    bench_ref_write_cb);
		curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS,
		    bench_ref_body_json);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)bench_ref_bodylen);
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, bench_ref_headers);
		curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION,
		    (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
		    BENCH_REF_TIMEOUT_MS);
		curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
		bench_ref_tls(x->easy);
	}
	for (i = 0; i < n; i++)
		bench_ref_issue(&bench_ref_xfers[i]);
	return (0);
}

/*
 * The bare reference's loop, instead of the event loop: perform, collect,
 * poll; the warm-up and the window end by the clock, checked once a round.
 */
void
bench_ref_bare_run(void)
{
	uint64_t	 now, next;
	int		 running, ms;

	next = bench_now_ns() + (uint64_t)bench_opts.warmup * 1000000000ULL;
	while (bench.phase != BENCH_DONE) {
		if (bench_interrupted) {
			bench_stop("interrupted");
			break;
		}
		now = bench_now_ns();
		if (now >= next) {
			bench_phase_advance();
			next = now + (uint64_t)bench_opts.secs * 1000000000ULL;
			continue;
		}
		curl_multi_perform(bench_ref_multi, &running);
		bench_ref_check();
		ms = (int)((next - now) / 1000000) + 1;
		if (ms > 1000)
			ms = 1000;
		curl_multi_poll(bench_ref_multi, NULL, 0, ms, NULL);
	}
}

/* Stop every transfer and free everything. */
void
bench_ref_close(void)
{
	struct bench_ref_sock	*bs;
	size_t			 i;

	for (i = 0; i < bench_ref_nxfers; i++) {
		curl_multi_remove_handle(bench_ref_multi, bench_ref_xfers[i].easy);
		curl_easy_cleanup(bench_ref_xfers[i].easy);
	}
	free(bench_ref_xfers);
	bench_ref_xfers = NULL;
	bench_ref_nxfers = 0;
	if (bench_ref_multi != NULL)
		curl_multi_cleanup(bench_ref_multi);
	bench_ref_multi = NULL;
	while ((bs = LIST_FIRST(&bench_ref_socks)) != NULL) {
		event_del(&bs->ev);
		LIST_REMOVE(bs, entry);
		free(bs);
	}
	if (bench_ref_timer != NULL)
		event_free(bench_ref_timer);
	bench_ref_timer = NULL;
	curl_slist_free_all(bench_ref_headers);
	bench_ref_headers = NULL;
	freezero_str(bench_ref_url);
	bench_ref_url = NULL;
	free(bench_ref_body_json);
	bench_ref_body_json = NULL;
	curl_global_cleanup();
}
