/*
 * Monitoring: the counters a send leaves behind (by appid, outcome and WeChat
 * errcode, and a latency histogram), and the Prometheus text exposition of
 * them and of the credentials' state at GET /metrics (metrics_listen). The
 * stats method reads the same counters. Labels are appids, outcomes and
 * errcodes: never a token or a secret.
 */
#include "config.h"

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "wxpushd.h"

#define METRICS_HEADERS_MAX	8192
#define METRICS_TIMEOUT		10	/* seconds for one scrape */

/* WeChat errcodes a send can end with that get a label of their own. */
static const long metrics_errcodes[METRICS_NERRCODES - 1] = {
	-1, 40001, 40003, 40013, 40014, 40037, 40164, 42001, 43101, 45009,
	45011, 47001, 48001, 89501, 89502, 89503, 89504, 89505, 89506, 89507
};

/* Histogram bucket bounds, in microseconds and as Prometheus writes them. */
static const uint64_t metrics_bucket_us[METRICS_NBUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000
};
static const char *metrics_bucket_names[METRICS_NBUCKETS] = {
	"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
	"5", "10", "30", "60"
};

struct metrics_histogram	 metrics_send_duration;
uint64_t			 metrics_sends_nocred[SEND_NOUTCOMES];
uint64_t			 metrics_sends_errcode[METRICS_NERRCODES];

static struct httpd			 metrics_httpd = { .name = "metrics" };

/* The index of errcode in the errcode table; the last one is "other". */
int
metrics_errcode_index(long errcode)
{
	int i;

	for (i = 0; i < METRICS_NERRCODES - 1; i++) {
		if (metrics_errcodes[i] == errcode)
			return (i);
	}
	return (METRICS_NERRCODES - 1);
}

/* The label value of errcode bucket i: "43101", "-1" or "other". */
const char *
metrics_errcode_name(int i)
{
	static char	names[METRICS_NERRCODES - 1][16];

	if (i < 0 || i >= METRICS_NERRCODES - 1)
		return ("other");
	if (names[i][0] == '\0')
		snprintf(names[i], sizeof names[i], "%ld", metrics_errcodes[i]);
	return (names[i]);
}

/* The upper bound of histogram bucket i as Prometheus writes it. */
const char *
metrics_bucket_name(int i)
{
	return (i >= 0 && i < METRICS_NBUCKETS ? metrics_bucket_names[i] : NULL);
}

/*
 * Count one answered send: per credential (c NULL: before any appid was
 * known), by errcode when WeChat refused it, and its latency if it was
 * accepted (started set). No allocation, no formatting: this is the hot path.
 */
void
metrics_count_send(struct cred *c, int outcome, long errcode,
    const struct timeval *started)
{
	struct timeval	now;
	uint64_t	us;
	int		i;

	if (outcome < 0 || outcome >= SEND_NOUTCOMES)
		return;
	if (c != NULL)
		c->sends[outcome]++;
	else
		metrics_sends_nocred[outcome]++;
	if (outcome == SEND_WECHAT) {
		i = metrics_errcode_index(errcode);
		metrics_sends_errcode[i]++;
		if (c != NULL)
			c->sends_errcode[i]++;
	}
	if (started == NULL || (started->tv_sec == 0 && started->tv_usec == 0))
		return;
	event_base_gettimeofday_cached(wx_base, &now);
	if (timercmp(&now, started, <))
		us = 0;
	else
		us = (uint64_t)(now.tv_sec - started->tv_sec) * 1000000 +
		    (uint64_t)(now.tv_usec - started->tv_usec);
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		if (us <= metrics_bucket_us[i])
			break;
	}
	if (i < METRICS_NBUCKETS)
		metrics_send_duration.buckets[i]++;
	metrics_send_duration.count++;
	metrics_send_duration.sum_us += us;
}

/* Write v as a label value: backslash, double quote and newline escaped. */
static void
metrics_label(struct evbuffer *b, const char *v)
{
	const char *p;

	for (p = v; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			evbuffer_add(b, "\\\\", 2);
			break;
		case '"':
			evbuffer_add(b, "\\\"", 2);
			break;
		case '\n':
			evbuffer_add(b, "\\n", 2);
			break;
		default:
			evbuffer_add(b, p, 1);
			break;
		}
	}
}

/* The # HELP and # TYPE lines of a metric family. */
static void
metrics_family(struct evbuffer *b, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* One sample with an appid label (and optionally one more label). */
static void
metrics_sample(struct evbuffer *b, const char *name, const char *appid,
    const char *k2, const char *v2, int64_t value)
{
	evbuffer_add_printf(b, "%s{appid=\"", name);
	metrics_label(b, appid);
	evbuffer_add(b, "\"", 1);
	if (k2 != NULL) {
		evbuffer_add_printf(b, ",%s=\"", k2);
		metrics_label(b, v2);
		evbuffer_add(b, "\"", 1);
	}
	evbuffer_add_printf(b, "} %lld\n", (long long)value);
}

/*
 * The samples of a sends counter family (name) for one value of its first
 * label (key: appid or component; "" for sends that named no appid).
 */
static void
metrics_sends_family(struct evbuffer *b, const char *name, const char *key,
    const char *appid, const uint64_t *sends, const uint64_t *errcodes)
{
	int		 o, i;

	for (o = 0; o < SEND_NOUTCOMES; o++) {
		if (o == SEND_WECHAT) {
			for (i = 0; errcodes != NULL && i < METRICS_NERRCODES;
			    i++) {
				if (errcodes[i] == 0)
					continue;
				evbuffer_add_printf(b, "%s{%s=\"", name, key);
				metrics_label(b, appid);
				evbuffer_add_printf(b, "\",outcome=\"wechat\","
				    "errcode=\"%s\"} %llu\n",
				    metrics_errcode_name(i),
				    (unsigned long long)errcodes[i]);
			}
			continue;
		}
		/* ok always, so that rates start at zero; the rest once seen. */
		if (sends[o] == 0 && (o != SEND_OK || *appid == '\0'))
			continue;
		evbuffer_add_printf(b, "%s{%s=\"", name, key);
		metrics_label(b, appid);
		evbuffer_add_printf(b, "\",outcome=\"%s\",errcode=\"%s\"} %llu\n",
		    send_outcome_name(o), o == SEND_OK ? "0" : "none",
		    (unsigned long long)sends[o]);
	}
}

/* The wxpushd_sends_total samples of one appid. */
static void
metrics_sends(struct evbuffer *b, const char *appid, const uint64_t *sends,
    const uint64_t *errcodes)
{
	metrics_sends_family(b, "wxpushd_sends_total", "appid", appid, sends,
	    errcodes);
}

/*
 * Whether c has series of its own: with metrics_authorizers = aggregate, a
 * platform's authorizers (merchants' appids) are only counted per platform.
 */
static int
metrics_listed(const struct cred *c)
{
	return (!c->removed && !(wx_conf->metrics_aggregate &&
	    c->kind == CRED_AUTHORIZER));
}

/*
 * metrics_authorizers = aggregate: per platform, how many authorizers are in
 * each state, and their sends, queue and sends in flight summed, labelled by
 * the platform's appid (component) only.
 */
static void
metrics_write_authorizers(struct evbuffer *b)
{
	static const char *states[] = { "valid", "refreshing", "expired",
	    "failed", "revoked" };
	uint64_t	 sends[SEND_NOUTCOMES], errcodes[METRICS_NERRCODES];
	uint64_t	 nstate[sizeof states / sizeof states[0]], queued, inflight;
	struct cred	*p, *c;
	size_t		 k;
	int		 i, pass;

	for (pass = 0; pass < 4; pass++) {
		if (pass == 0)
			metrics_family(b, "wxpushd_authorizers", "gauge",
			    "Authorizers of a third-party platform in each "
			    "state.");
		else if (pass == 1)
			metrics_family(b, "wxpushd_authorizer_sends_total",
			    "counter", "Answered sends of a platform's "
			    "authorizers, by outcome and WeChat errcode.");
		else if (pass == 2)
			metrics_family(b, "wxpushd_authorizer_queue_depth",
			    "gauge", "Sends of a platform's authorizers "
			    "waiting for a token or a slot.");
		else
			metrics_family(b, "wxpushd_authorizer_sends_inflight",
			    "gauge", "Sends of a platform's authorizers "
			    "waiting for WeChat's answer now.");
		TAILQ_FOREACH(p, &cred_all, entry) {
			if (p->removed || p->kind != CRED_COMPONENT)
				continue;
			memset(sends, 0, sizeof sends);
			memset(errcodes, 0, sizeof errcodes);
			memset(nstate, 0, sizeof nstate);
			queued = inflight = 0;
			TAILQ_FOREACH(c, &cred_all, entry) {
				if (c->removed || c->kind != CRED_AUTHORIZER ||
				    c->parent != p)
					continue;
				for (i = 0; i < SEND_NOUTCOMES; i++)
					sends[i] += c->sends[i];
				for (i = 0; i < METRICS_NERRCODES; i++)
					errcodes[i] += c->sends_errcode[i];
				for (k = 0; k < sizeof states /
				    sizeof states[0]; k++)
					nstate[k] += strcmp(cred_state_name(c),
					    states[k]) == 0;
				queued += (uint64_t)c->nqueue;
				inflight += (uint64_t)c->inflight;
			}
			if (pass == 1) {
				/* Same samples as wxpushd_sends_total. */
				metrics_sends_family(b,
				    "wxpushd_authorizer_sends_total",
				    "component", p->appid, sends, errcodes);
				continue;
			}
			for (k = 0; pass == 0 && k < sizeof states /
			    sizeof states[0]; k++) {
				evbuffer_add_printf(b, "wxpushd_authorizers"
				    "{component=\"");
				metrics_label(b, p->appid);
				evbuffer_add_printf(b, "\",state=\"%s\"} %llu\n",
				    states[k], (unsigned long long)nstate[k]);
			}
			if (pass >= 2) {
				evbuffer_add_printf(b, "%s{component=\"",
				    pass == 2 ? "wxpushd_authorizer_queue_depth" :
				    "wxpushd_authorizer_sends_inflight");
				metrics_label(b, p->appid);
				evbuffer_add_printf(b, "\"} %llu\n",
				    (unsigned long long)(pass == 2 ? queued :
				    inflight));
			}
		}
	}
}

/* The whole exposition, into b. */
static void
metrics_write(struct evbuffer *b)
{
	static const char *states[] = { "valid", "refreshing", "expired",
	    "failed", "revoked" };
	struct cred	*c;
	time_t		 now = time(NULL);
	uint64_t	 cum;
	int64_t		 age;
	size_t		 k;
	int		 i;

	metrics_family(b, "wxpushd_build_info", "gauge",
	    "Always 1; the version of this wxpushd.");
	evbuffer_add_printf(b, "wxpushd_build_info{version=\"");
	metrics_label(b, PACKAGE_VERSION);
	evbuffer_add_printf(b, "\",protocol=\"%d\"} 1\n", WXPUSHD_PROTOCOL);
	metrics_family(b, "wxpushd_start_time_seconds", "gauge",
	    "Unix time at which the daemon started.");
	evbuffer_add_printf(b, "wxpushd_start_time_seconds %lld\n",
	    (long long)wx_start_time);
	metrics_family(b, "wxpushd_clients", "gauge",
	    "Client connections now.");
	evbuffer_add_printf(b, "wxpushd_clients %zu\n", server_nclients());
	metrics_family(b, "wxpushd_rpc_requests_total", "counter",
	    "MessagePack-RPC requests received.");
	evbuffer_add_printf(b, "wxpushd_rpc_requests_total %llu\n",
	    (unsigned long long)rpc_requests);
	metrics_family(b, "wxpushd_upstream_inflight", "gauge",
	    "HTTP requests to WeChat in flight (sends and token calls).");
	evbuffer_add_printf(b, "wxpushd_upstream_inflight %zu\n",
	    upstream_inflight());

	metrics_family(b, "wxpushd_sends_total", "counter", "Answered sends by "
	    "appid, outcome (the error code, or ok) and WeChat errcode.");
	metrics_sends(b, "", metrics_sends_nocred, NULL);
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c) && c->kind != CRED_COMPONENT)
			metrics_sends(b, c->appid, c->sends, c->sends_errcode);
	}

	metrics_family(b, "wxpushd_send_duration_seconds", "histogram",
	    "Time from accepting a send to answering it.");
	cum = 0;
	for (i = 0; i < METRICS_NBUCKETS; i++) {
		cum += metrics_send_duration.buckets[i];
		evbuffer_add_printf(b, "wxpushd_send_duration_seconds_bucket"
		    "{le=\"%s\"} %llu\n", metrics_bucket_names[i],
		    (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n",
	    (unsigned long long)metrics_send_duration.count);
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_sum %llu.%06llu\n",
	    (unsigned long long)(metrics_send_duration.sum_us / 1000000),
	    (unsigned long long)(metrics_send_duration.sum_us % 1000000));
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_count %llu\n",
	    (unsigned long long)metrics_send_duration.count);

	metrics_family(b, "wxpushd_credential_state", "gauge", "1 for the "
	    "state each credential is in (kind: official, component, "
	    "authorizer).");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!metrics_listed(c))
			continue;
		for (k = 0; k < sizeof states / sizeof states[0]; k++) {
			evbuffer_add_printf(b, "wxpushd_credential_state"
			    "{appid=\"");
			metrics_label(b, c->appid);
			evbuffer_add_printf(b, "\",kind=\"%s\",state=\"%s\"} %d\n",
			    cred_kind_name(c->kind), states[k],
			    strcmp(cred_state_name(c), states[k]) == 0);
		}
	}
	metrics_family(b, "wxpushd_token_expires_in_seconds", "gauge",
	    "Seconds until the current token expires; 0 if there is none.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c))
			metrics_sample(b, "wxpushd_token_expires_in_seconds",
			    c->appid, NULL, NULL, c->token != NULL &&
			    c->expires_at > now ? (int64_t)(c->expires_at - now) :
			    0);
	}
	metrics_family(b, "wxpushd_token_calls_today", "gauge", "Token API "
	    "calls today (WeChat's quota day, UTC+8).");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c))
			metrics_sample(b, "wxpushd_token_calls_today", c->appid,
			    NULL, NULL, c->calls_day == cred_today() ?
			    c->calls_today : 0);
	}
	metrics_family(b, "wxpushd_token_refreshes_total", "counter",
	    "Successful token refreshes since the daemon started.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c))
			metrics_sample(b, "wxpushd_token_refreshes_total",
			    c->appid, NULL, NULL, (int64_t)c->refreshes);
	}
	metrics_family(b, "wxpushd_token_refresh_failures", "gauge",
	    "Failed token refreshes since the last successful one.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c))
			metrics_sample(b, "wxpushd_token_refresh_failures",
			    c->appid, NULL, NULL, c->failures);
	}
	metrics_family(b, "wxpushd_token_last_errcode", "gauge",
	    "WeChat's errcode of the last failed refresh; 0 if none.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c))
			metrics_sample(b, "wxpushd_token_last_errcode",
			    c->appid, NULL, NULL, c->last_errcode);
	}
	metrics_family(b, "wxpushd_queue_depth", "gauge",
	    "Sends waiting for a token or an upstream slot.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c) && c->kind != CRED_COMPONENT)
			metrics_sample(b, "wxpushd_queue_depth", c->appid,
			    NULL, NULL, c->nqueue);
	}
	metrics_family(b, "wxpushd_sends_inflight", "gauge",
	    "Sends waiting for WeChat's answer now.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (metrics_listed(c) && c->kind != CRED_COMPONENT)
			metrics_sample(b, "wxpushd_sends_inflight", c->appid,
			    NULL, NULL, c->inflight);
	}
	metrics_family(b, "wxpushd_verify_ticket_age_seconds", "gauge",
	    "Seconds since a third-party platform's component_verify_ticket "
	    "arrived.");
	TAILQ_FOREACH(c, &cred_all, entry) {
		if (!c->removed && c->kind == CRED_COMPONENT &&
		    (age = component_ticket_age(c)) >= 0)
			metrics_sample(b, "wxpushd_verify_ticket_age_seconds",
			    c->appid, NULL, NULL, age);
	}
	if (wx_conf->metrics_aggregate)
		metrics_write_authorizers(b);
}

/*
 * Whether req carries "Authorization: Bearer TOKEN" with metrics_token_file's
 * token (or none is configured). The comparison takes the same time whatever
 * the bytes sent.
 */
static int
metrics_authorized(struct evhttp_request *req)
{
	const char	*want = wx_conf->metrics_token, *got;
	unsigned char	 diff = 0;
	size_t		 wl, gl, i;

	if (want == NULL)
		return (1);
	got = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");
	if (got == NULL || strncasecmp(got, "Bearer ", 7) != 0)
		return (0);
	for (got += 7; *got == ' '; got++)
		;
	wl = strlen(want);
	gl = strlen(got);
	for (i = 0; i < wl; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ?
		    got[i] : 0);
	return (diff == 0 && gl == wl);
}

/* 401, and a line (rate-limited per address): no token or the wrong one. */
static void
metrics_unauthorized(struct evhttp_request *req)
{
	struct evhttp_connection	*conn;
	struct evbuffer			*b;
	char				*addr = NULL;
	ev_uint16_t			 port;

	if ((conn = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_get_peer(conn, &addr, &port);
	ratelog(LOG_LEVEL_WARN, "metrics unauthorized", addr != NULL ? addr :
	    "unknown", "metrics: refused a scrape from %s without the right "
	    "bearer token", addr != NULL ? addr : "unknown");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "WWW-Authenticate", "Bearer realm=\"wxpushd\"");
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	evbuffer_add_printf(b, "unauthorized: see metrics_token_file\n");
	evhttp_send_reply(req, 401, "Unauthorized", b);
	evbuffer_free(b);
}

/* GET /metrics. */
static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq	*h = evhttp_request_get_output_headers(req);
	struct evbuffer		*b;

	(void)arg;
	httpd_dispatched(&metrics_httpd, req);
	if (!metrics_authorized(req)) {
		metrics_unauthorized(req);
		return;
	}
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		break;
	default:
		evhttp_add_header(h, "Allow", "GET, HEAD");
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	metrics_write(b);
	evhttp_add_header(h, "Content-Type",
	    "text/plain; version=0.0.4; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* Anything but /metrics. */
static void
metrics_notfound(struct evhttp_request *req, void *arg)
{
	(void)arg;
	httpd_dispatched(&metrics_httpd, req);
	evhttp_send_error(req, 404, "Not Found");
}

/* Start the endpoint if metrics_listen is set; 0, or -1 (logged). */
int
metrics_start(void)
{
	struct evhttp *http;

	if (wx_conf->metrics_listen == NULL)
		return (0);
	if (metrics_httpd.http == NULL) {
		if ((http = evhttp_new(wx_base)) == NULL)
			fatalx("evhttp_new");
		evhttp_set_max_headers_size(http, METRICS_HEADERS_MAX);
		evhttp_set_max_body_size(http, 0);
		evhttp_set_timeout(http, METRICS_TIMEOUT);
		evhttp_set_allowed_methods(http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
		evhttp_set_cb(http, "/metrics", metrics_request, NULL);
		evhttp_set_gencb(http, metrics_notfound, NULL);
		httpd_setup(&metrics_httpd, http);
	}
	return (httpd_listen(&metrics_httpd, wx_conf->metrics_listen));
}

/* After a reload: move the endpoint if metrics_listen changed. */
void
metrics_reload(void)
{
	if (metrics_httpd.http == NULL)
		metrics_start();
	else
		httpd_reload(&metrics_httpd, wx_conf->metrics_listen);
}

/* At exit. */
void
metrics_stop(void)
{
	httpd_close(&metrics_httpd);
}
