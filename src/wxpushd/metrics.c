/*
 * Monitoring: the Prometheus text exposition, at GET /metrics
 * (metrics_listen), of the send counters send.c keeps (by appid, outcome and
 * WeChat errcode, and a latency histogram) and of the credentials' state.
 * The stats method reads the same counters. Labels are appids, outcomes and
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

static struct httpd			 metrics_httpd = { .name = "metrics" };

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

/* A family of one sample without labels. */
static void
metrics_scalar(struct evbuffer *b, const char *name, const char *type,
    const char *help, long long value)
{
	metrics_family(b, name, type, help);
	evbuffer_add_printf(b, "%s %lld\n", name, value);
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
    const char *appid, const struct send_counters *sc, int errcodes)
{
	int		 o, i;

	for (o = 0; o < SEND_NOUTCOMES; o++) {
		if (o == SEND_WECHAT) {
			for (i = 0; errcodes && i < WXAPI_NERRCODES; i++) {
				if (sc->errcode[i] == 0)
					continue;
				evbuffer_add_printf(b, "%s{%s=\"", name, key);
				metrics_label(b, appid);
				evbuffer_add_printf(b, "\",outcome=\"wechat\","
				    "errcode=\"%s\"} %llu\n",
				    wxapi_errcode_name(i),
				    (unsigned long long)sc->errcode[i]);
			}
			continue;
		}
		/* ok always, so that rates start at zero; the rest once seen. */
		if (sc->outcome[o] == 0 && (o != SEND_OK || *appid == '\0'))
			continue;
		evbuffer_add_printf(b, "%s{%s=\"", name, key);
		metrics_label(b, appid);
		evbuffer_add_printf(b, "\",outcome=\"%s\",errcode=\"%s\"} %llu\n",
		    send_outcome_name(o), o == SEND_OK ? "0" : "none",
		    (unsigned long long)sc->outcome[o]);
	}
}

/* The wxpushd_sends_total samples of one appid. */
static void
metrics_sends(struct evbuffer *b, const char *appid,
    const struct send_counters *sc, int errcodes)
{
	metrics_sends_family(b, "wxpushd_sends_total", "appid", appid, sc,
	    errcodes);
}

/*
 * Whether c has series of its own: with metrics_authorizers = aggregate, a
 * platform's authorizers (merchants' appids) are only counted per platform.
 */
static int
metrics_listed(const struct cred *c)
{
	return (!cred_removed(c) && !(wx_conf->metrics_aggregate &&
	    cred_kind(c) == CRED_AUTHORIZER));
}

/* The process: build, start time, clients, requests, upstream calls. */
static void
metrics_write_process(struct evbuffer *b)
{
	metrics_family(b, "wxpushd_build_info", "gauge",
	    "Always 1; the version of this wxpushd.");
	evbuffer_add_printf(b, "wxpushd_build_info{version=\"");
	metrics_label(b, PACKAGE_VERSION);
	evbuffer_add_printf(b, "\",protocol=\"%d\"} 1\n", WXPUSHD_PROTOCOL);
	metrics_scalar(b, "wxpushd_start_time_seconds", "gauge",
	    "Unix time at which the daemon started.", (long long)wx_start_time);
	metrics_scalar(b, "wxpushd_clients", "gauge",
	    "Client connections now.", (long long)server_nclients());
	metrics_scalar(b, "wxpushd_rpc_requests_total", "counter",
	    "MessagePack-RPC requests received.", (long long)rpc_requests);
	metrics_scalar(b, "wxpushd_upstream_inflight", "gauge",
	    "HTTP requests to WeChat in flight (sends and token calls).",
	    (long long)upstream_inflight());
}

/*
 * Authorizers in memory (every platform's), and the dozing ones unloaded
 * since the start (docs/scaling.md, "Memory").
 */
static void
metrics_write_loaded(struct evbuffer *b)
{
	const struct cred *c;
	uint64_t n = 0;

	for (c = cred_first(); c != NULL; c = cred_next(c))
		n += !cred_removed(c) && authorizer_component_appid(c) != NULL;
	metrics_scalar(b, "wxpushd_authorizers_loaded", "gauge",
	    "Authorizers of third-party platforms in memory now.",
	    (long long)n);
	metrics_scalar(b, "wxpushd_authorizers_unloaded_total", "counter",
	    "Dozing authorizers taken out of memory (their rows stay).",
	    (long long)authorizer_unloads());
}

/* Sends by appid and outcome, and the latency histogram. */
static void
metrics_write_sends(struct evbuffer *b)
{
	const struct send_histogram *h = send_duration();
	const struct send_counters *sc;
	struct cred *c;
	uint64_t cum = 0;
	int i;

	metrics_family(b, "wxpushd_sends_total", "counter", "Answered sends by "
	    "appid, outcome (the error code, or ok) and WeChat errcode.");
	metrics_sends(b, "", send_counters_nocred(), 0);
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (metrics_listed(c) && cred_kind(c) != CRED_COMPONENT) {
			static const struct send_counters none;

			sc = send_counters_of(c);
			metrics_sends(b, cred_appid(c), sc != NULL ? sc : &none,
			    1);
		}
	}
	metrics_family(b, "wxpushd_send_duration_seconds", "histogram",
	    "Time from accepting a send to answering it.");
	for (i = 0; i < SEND_NBUCKETS; i++) {
		cum += h->buckets[i];
		evbuffer_add_printf(b, "wxpushd_send_duration_seconds_bucket"
		    "{le=\"%s\"} %llu\n", send_bucket_name(i),
		    (unsigned long long)cum);
	}
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_bucket"
	    "{le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_sum %llu.%06llu\n",
	    (unsigned long long)(h->sum_us / 1000000),
	    (unsigned long long)(h->sum_us % 1000000));
	evbuffer_add_printf(b, "wxpushd_send_duration_seconds_count %llu\n",
	    (unsigned long long)h->count);
}

/* Each credential's state, one sample per state it may be in. */
static void
metrics_write_states(struct evbuffer *b)
{
	static const char *states[] = { "valid", "refreshing", "expired",
	    "failed", "revoked", "idle" };
	struct cred *c;
	size_t k;

	metrics_family(b, "wxpushd_credential_state", "gauge", "1 for the "
	    "state each credential is in (kind: official, component, "
	    "authorizer).");
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (!metrics_listed(c))
			continue;
		for (k = 0; k < sizeof states / sizeof states[0]; k++) {
			evbuffer_add_printf(b, "wxpushd_credential_state"
			    "{appid=\"");
			metrics_label(b, cred_appid(c));
			evbuffer_add_printf(b, "\",kind=\"%s\",state=\"%s\"} %d\n",
			    cred_kind_name(cred_kind(c)), states[k],
			    strcmp(cred_state_name(c), states[k]) == 0);
		}
	}
}

/* One consent group as a sample of wxpushd_consents. */
static void
metrics_consent_group(const char *appid, const char *template_id,
    enum consent_state st, uint64_t n, void *arg)
{
	struct evbuffer	*b = arg;

	evbuffer_add_printf(b, "wxpushd_consents{appid=\"");
	metrics_label(b, appid);
	evbuffer_add_printf(b, "\",template_id=\"");
	metrics_label(b, template_id);
	evbuffer_add_printf(b, "\",state=\"%s\"} %llu\n",
	    consent_state_name(st), (unsigned long long)n);
}

/* The consent ledger: consents held by appid, template and state. */
static void
metrics_write_consents(struct evbuffer *b)
{
	metrics_family(b, "wxpushd_consents", "gauge", "Consents in the "
	    "ledger by template and state (granted, refused, spent).");
	consent_groups(metrics_consent_group, b);
}

/* A per-credential metric: name, type, help, which credentials, its value. */
struct metrics_gauge {
	const char	*name;
	const char	*type;		/* gauge, counter */
	const char	*help;
	int		 sends;		/* only those that send (not components) */
	int		(*value)(const struct cred *, int64_t *);	/* 0: none */
};

static int
metrics_expires_in(const struct cred *c, int64_t *v)
{
	*v = cred_expires_in(c);
	return (1);
}

static int
metrics_calls_today(const struct cred *c, int64_t *v)
{
	*v = cred_calls_today(c);
	return (1);
}

static int
metrics_refreshes(const struct cred *c, int64_t *v)
{
	*v = (int64_t)cred_refreshes(c);
	return (1);
}

static int
metrics_failures(const struct cred *c, int64_t *v)
{
	*v = cred_failures(c);
	return (1);
}

static int
metrics_last_errcode(const struct cred *c, int64_t *v)
{
	*v = cred_last_errcode(c);
	return (1);
}

static int
metrics_queued(const struct cred *c, int64_t *v)
{
	*v = send_queue_of(c).queued;
	return (1);
}

static int
metrics_queue_oldest(const struct cred *c, int64_t *v)
{
	*v = send_queue_of(c).oldest;
	return (1);
}

static int
metrics_breaker_open(const struct cred *c, int64_t *v)
{
	*v = cred_breaker_open(c);
	return (1);
}

static int
metrics_inflight(const struct cred *c, int64_t *v)
{
	*v = send_queue_of(c).inflight;
	return (1);
}

/* The outbox: messages waiting, and the age of the oldest. */
static int
metrics_outbox_depth(const struct cred *c, int64_t *v)
{
	*v = outbox_depth_of(cred_appid(c)).depth;
	return (1);
}

static int
metrics_outbox_oldest(const struct cred *c, int64_t *v)
{
	time_t oldest = outbox_depth_of(cred_appid(c)).oldest;

	*v = oldest > 0 && clock_now() > oldest ? clock_now() - oldest : 0;
	return (1);
}

/* Only components with a ticket have an age. */
static int
metrics_ticket_age(const struct cred *c, int64_t *v)
{
	return ((*v = component_ticket_age(c)) >= 0);
}

/* Only components have authorization exchanges. */
static int
metrics_exchanges_pending(const struct cred *c, int64_t *v)
{
	uint64_t failed;
	int pending;

	if (!component_exchanges(c, &pending, &failed))
		return (0);
	*v = pending;
	return (1);
}

/* A platform's authorization events whose code could not be exchanged. */
static int
metrics_exchange_failures(const struct cred *c, int64_t *v)
{
	uint64_t failed;
	int pending;

	if (!component_exchanges(c, &pending, &failed))
		return (0);
	*v = (int64_t)failed;
	return (1);
}

static const struct metrics_gauge metrics_gauges[] = {
	{ "wxpushd_token_expires_in_seconds", "gauge", "Seconds until the "
	    "current token expires; 0 if there is none.", 0,
	    metrics_expires_in },
	{ "wxpushd_token_calls_today", "gauge", "Token API calls today "
	    "(WeChat's quota day, UTC+8).", 0, metrics_calls_today },
	{ "wxpushd_token_refreshes_total", "counter", "Successful token "
	    "refreshes since the daemon started.", 0, metrics_refreshes },
	{ "wxpushd_token_refresh_failures", "gauge", "Failed token refreshes "
	    "since the last successful one.", 0, metrics_failures },
	{ "wxpushd_token_last_errcode", "gauge", "WeChat's errcode of the last "
	    "failed refresh; 0 if none.", 0, metrics_last_errcode },
	{ "wxpushd_queue_depth", "gauge", "Sends waiting for a token or an "
	    "upstream slot.", 1, metrics_queued },
	{ "wxpushd_queue_oldest_seconds", "gauge", "Seconds the "
	    "longest-waiting queued send has waited; 0 if none.", 1,
	    metrics_queue_oldest },
	{ "wxpushd_token_breaker_open", "gauge", "1 while the breaker is "
	    "open: WeChat refused a fresh token, so refusals refresh no token "
	    "for a while.", 0, metrics_breaker_open },
	{ "wxpushd_sends_inflight", "gauge", "Sends waiting for WeChat's "
	    "answer now.", 1, metrics_inflight },
	{ "wxpushd_outbox_depth", "gauge", "Messages in the outbox not yet "
	    "delivered, failed or expired.", 1, metrics_outbox_depth },
	{ "wxpushd_outbox_oldest_seconds", "gauge", "Age of the oldest "
	    "message in the outbox; 0 if none.", 1, metrics_outbox_oldest },
	{ "wxpushd_verify_ticket_age_seconds", "gauge", "Seconds since a "
	    "third-party platform's component_verify_ticket was created "
	    "(its CreateTime).", 0, metrics_ticket_age },
	{ "wxpushd_authorization_exchanges_pending", "gauge", "Authorization "
	    "codes from authorized/updateauthorized events waiting to be "
	    "exchanged (api_query_auth, in the background).", 0,
	    metrics_exchanges_pending },
	{ "wxpushd_authorization_exchange_failures_total", "counter",
	    "Authorization events whose code could not be exchanged for tokens "
	    "(61010, no permission, retries exhausted).", 0,
	    metrics_exchange_failures },
};

/* Every per-credential metric of metrics_gauges. */
static void
metrics_write_gauges(struct evbuffer *b)
{
	const struct metrics_gauge *g;
	struct cred *c;
	int64_t v;
	size_t i;

	for (i = 0; i < sizeof metrics_gauges / sizeof metrics_gauges[0]; i++) {
		g = &metrics_gauges[i];
		metrics_family(b, g->name, g->type, g->help);
		for (c = cred_first(); c != NULL; c = cred_next(c)) {
			if (!metrics_listed(c) || (g->sends &&
			    cred_kind(c) == CRED_COMPONENT))
				continue;
			if (g->value(c, &v))
				metrics_sample(b, g->name, cred_appid(c), NULL,
				    NULL, v);
		}
	}
}

/* One platform's authorizers summed: states, sends, queue, in flight. */
struct metrics_platform {
	uint64_t		 nstate[6];
	struct send_counters	 sends;
	uint64_t		 queued, inflight;
};

/* Sum the authorizers of platform p. */
static void
metrics_platform_sum(const struct cred *p, struct metrics_platform *m,
    const char *const *states, size_t nstates)
{
	const struct send_counters *sc;
	const char *owner;
	struct send_queue_state q;
	struct cred *c;
	size_t k;
	int i;

	memset(m, 0, sizeof *m);
	for (c = cred_first(); c != NULL; c = cred_next(c)) {
		if (cred_removed(c) ||
		    (owner = authorizer_component_appid(c)) == NULL ||
		    strcmp(owner, cred_appid(p)) != 0)
			continue;
		if ((sc = send_counters_of(c)) != NULL) {
			for (i = 0; i < SEND_NOUTCOMES; i++)
				m->sends.outcome[i] += sc->outcome[i];
			for (i = 0; i < WXAPI_NERRCODES; i++)
				m->sends.errcode[i] += sc->errcode[i];
		}
		for (k = 0; k < nstates; k++)
			m->nstate[k] += strcmp(cred_state_name(c), states[k]) == 0;
		q = send_queue_of(c);
		m->queued += (uint64_t)q.queued;
		m->inflight += (uint64_t)q.inflight;
	}
	/* Those unloaded since: the counter goes on, never down. */
	if ((sc = send_counters_retired(cred_appid(p))) != NULL) {
		for (i = 0; i < SEND_NOUTCOMES; i++)
			m->sends.outcome[i] += sc->outcome[i];
		for (i = 0; i < WXAPI_NERRCODES; i++)
			m->sends.errcode[i] += sc->errcode[i];
	}
}

/*
 * metrics_authorizers = aggregate: per platform, how many authorizers are in
 * each state, and their sends, queue and sends in flight summed, labelled by
 * the platform's appid (component) only.
 */
static void
metrics_write_authorizers(struct evbuffer *b)
{
	static const char *const states[] = { "valid", "refreshing", "expired",
	    "failed", "revoked", "idle" };
	static const char *const families[][3] = {
		{ "wxpushd_authorizers", "gauge", "Authorizers of a third-party "
		    "platform in each state." },
		{ "wxpushd_authorizer_sends_total", "counter", "Answered sends "
		    "of a platform's authorizers, by outcome and WeChat "
		    "errcode." },
		{ "wxpushd_authorizer_queue_depth", "gauge", "Sends of a "
		    "platform's authorizers waiting for a token or a slot." },
		{ "wxpushd_authorizer_sends_inflight", "gauge", "Sends of a "
		    "platform's authorizers waiting for WeChat's answer now." },
	};
	struct metrics_platform m;
	struct cred *p;
	size_t f, k;

	for (f = 0; f < sizeof families / sizeof families[0]; f++) {
		metrics_family(b, families[f][0], families[f][1],
		    families[f][2]);
		for (p = cred_first(); p != NULL; p = cred_next(p)) {
			if (cred_removed(p) || cred_kind(p) != CRED_COMPONENT)
				continue;
			metrics_platform_sum(p, &m, states,
			    sizeof states / sizeof states[0]);
			if (f == 1) {
				/* Same samples as wxpushd_sends_total. */
				metrics_sends_family(b, families[f][0],
				    "component", cred_appid(p), &m.sends, 1);
				continue;
			}
			for (k = 0; f == 0 && k < sizeof states /
			    sizeof states[0]; k++) {
				evbuffer_add_printf(b, "wxpushd_authorizers"
				    "{component=\"");
				metrics_label(b, cred_appid(p));
				evbuffer_add_printf(b, "\",state=\"%s\"} %llu\n",
				    states[k], (unsigned long long)m.nstate[k]);
			}
			if (f >= 2) {
				evbuffer_add_printf(b, "%s{component=\"",
				    families[f][0]);
				metrics_label(b, cred_appid(p));
				evbuffer_add_printf(b, "\"} %llu\n",
				    (unsigned long long)(f == 2 ? m.queued :
				    m.inflight));
			}
		}
	}
}

/*
 * The call counters, labelled by the apis entry that allowed the path (so
 * by the configuration, never by what a caller sent).
 */
static void
metrics_write_calls(struct evbuffer *b)
{
	const struct call_stat *cs;
	size_t i;
	int o;

	metrics_family(b, "wxpushd_calls_total", "counter", "Answered call "
	    "requests by apis entry and outcome.");
	for (i = 0; (cs = method_call_stat(i)) != NULL; i++) {
		for (o = 0; o < SEND_NOUTCOMES; o++) {
			if (cs->outcome[o] == 0)
				continue;
			evbuffer_add_printf(b, "wxpushd_calls_total{path=\"");
			metrics_label(b, cs->path);
			evbuffer_add_printf(b, "\",outcome=\"%s\"} %llu\n",
			    send_outcome_name(o),
			    (unsigned long long)cs->outcome[o]);
		}
	}
	metrics_family(b, "wxpushd_call_stripped_fields_total", "counter",
	    "Credential fields taken out of call answers, by apis entry.");
	for (i = 0; (cs = method_call_stat(i)) != NULL; i++) {
		evbuffer_add_printf(b, "wxpushd_call_stripped_fields_total"
		    "{path=\"");
		metrics_label(b, cs->path);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)cs->stripped);
	}
}

/* The whole exposition, into b. */
static void
metrics_write(struct evbuffer *b)
{
	metrics_write_process(b);
	metrics_write_loaded(b);
	metrics_write_sends(b);
	metrics_write_states(b);
	metrics_write_consents(b);
	metrics_write_gauges(b);
	if (wx_conf->metrics_aggregate)
		metrics_write_authorizers(b);
	metrics_write_calls(b);
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
