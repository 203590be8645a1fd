/*
 * wxpush top: a live view of the daemon for an operator without Grafana.
 * Every second it asks for stats and status over one connection and prints
 * sends per second by appid and outcome, send latency over the last second
 * (quantiles from the stats histogram), each credential's state, token
 * lifetime and token calls, and the queues. Plain text: on a terminal each
 * frame replaces the last (ANSI clear screen); otherwise (-b, or stdout not a
 * terminal) frames follow one another, for logs and tests.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "wxpush.h"
#include "wxpush-cli.h"

#define TOP_MAX_BUCKETS		32	/* histogram buckets read from stats */
#define TOP_MAX_OUTCOMES	8	/* failing outcomes shown per appid */
#define TOP_CLEAR		"\033[H\033[2J"
/* A row of the credentials table. */
#define TOP_ROW	"%-20s %-10s %-10s %8s %6s %5s %7s %8s %7s %8s\n"

/* One stats or status answer, kept for the next frame's differences. */
struct top_sample {
	msgpack_unpacked	 stats;
	msgpack_unpacked	 status;
	struct timespec		 at;	/* CLOCK_MONOTONIC */
	int			 have;
};

/* One histogram bucket: its upper bound and cumulative count. */
struct top_bucket {
	double		le;
	long long	count;
};

/* Seconds from a to b. */
static double
top_elapsed(const struct timespec *a, const struct timespec *b)
{
	return ((double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9);
}

/* An integer counter of a map, or -1 if absent. */
static long long
top_counter(const msgpack_object *map, const char *key)
{
	long long	v;

	return (wxpush_get_int(wxpush_get(map, key), &v) ? v : -1);
}

/* The per-second rate of a counter between two maps; -1 if unknown. */
static double
top_rate(const msgpack_object *prev, const msgpack_object *cur,
    const char *key, double secs)
{
	long long	a, b;

	if (prev == NULL || secs <= 0)
		return (-1);
	a = top_counter(prev, key);
	b = top_counter(cur, key);
	if (b < 0)
		return (-1);
	if (a < 0)
		a = 0;		/* a counter appears once it is not 0 */
	return (b >= a ? (double)(b - a) / secs : -1);
}

/* Format a rate for a cell: "-" if unknown. */
static void
top_fmt_rate(char *buf, size_t len, double r)
{
	if (r < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", r);
}

/* A key of a map as a C string, bounded and printable. */
static void
top_key(char *buf, size_t len, const msgpack_object_kv *kv)
{
	if (kv->key.type == MSGPACK_OBJECT_STR)
		wxpush_strcell(buf, len, kv->key.via.str.ptr,
		    kv->key.via.str.size);
	else
		buf[0] = '\0';
}

/* The stats histogram (send_duration_le_<s>), sorted by bound; its size. */
static size_t
top_buckets(const msgpack_object *stats, struct top_bucket *b, size_t max)
{
	const msgpack_object_kv	*kv;
	struct top_bucket	 tmp;
	char			 key[64], *end;
	long long		 v;
	double			 le;
	size_t			 n = 0, i, j;

	if (stats == NULL || stats->type != MSGPACK_OBJECT_MAP)
		return (0);
	for (i = 0; i < stats->via.map.size && n < max; i++) {
		kv = &stats->via.map.ptr[i];
		top_key(key, sizeof key, kv);
		if (strncmp(key, "send_duration_le_", 17) != 0 ||
		    !wxpush_get_int(&kv->val, &v))
			continue;
		errno = 0;
		le = strtod(key + 17, &end);
		if (errno != 0 || end == key + 17 || *end != '\0' || le <= 0)
			continue;
		b[n].le = le;
		b[n].count = v;
		n++;
	}
	for (i = 1; i < n; i++) {
		for (j = i; j > 0 && b[j - 1].le > b[j].le; j--) {
			tmp = b[j];
			b[j] = b[j - 1];
			b[j - 1] = tmp;
		}
	}
	return (n);
}

/*
 * The q-quantile of the sends answered between two stats answers, from the
 * difference of their histograms, interpolated within a bucket as Prometheus
 * does. Returns -1 if no send was answered, or the last bound, negated minus
 * one, when the quantile lies beyond it.
 */
static double
top_quantile(const struct top_bucket *prev, size_t nprev,
    const struct top_bucket *cur, size_t ncur, long long total, double q)
{
	double		rank, lower = 0, below = 0, in;
	long long	c;
	size_t		i;

	if (total <= 0 || ncur == 0 || nprev != ncur)
		return (-1);
	rank = q * (double)total;
	for (i = 0; i < ncur; i++) {
		c = cur[i].count - prev[i].count;
		if ((double)c >= rank) {
			in = (double)c - below;
			if (in <= 0)
				return (cur[i].le);
			return (lower + (cur[i].le - lower) * (rank - below) / in);
		}
		lower = cur[i].le;
		below = (double)c;
	}
	return (-1 - cur[ncur - 1].le);
}

/* Format a latency in seconds: "250us", "12.5ms", "1.25s", ">60s", "-". */
static void
top_fmt_latency(char *buf, size_t len, double s)
{
	if (s < -1)
		snprintf(buf, len, ">%gs", -s - 1);
	else if (s < 0)
		snprintf(buf, len, "-");
	else if (s < 0.001)
		snprintf(buf, len, "%.0fus", s * 1e6);
	else if (s < 1)
		snprintf(buf, len, "%.1fms", s * 1000);
	else
		snprintf(buf, len, "%.2fs", s);
}

/* The header: version, uptime, clients, upstream requests, the time. */
static void
top_header(const msgpack_object *stats, const msgpack_object *status)
{
	char		version[128], up[32], now[32];
	time_t		t = time(NULL);
	struct tm	tm;

	wxpush_fmt_value(version, sizeof version, wxpush_get(status, "version"));
	wxpush_fmt_duration(up, sizeof up, top_counter(stats, "uptime"));
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(now, sizeof now, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(now, sizeof now, "%lld", (long long)t);
	printf("wxpushd %s, up %s, clients %lld, upstream in flight %lld, %s\n",
	    version, up, top_counter(stats, "clients"),
	    top_counter(stats, "upstream_inflight"), now);
}

/* All sends, and latency, over the last interval. */
static void
top_totals(const msgpack_object *prev, const msgpack_object *cur, double secs)
{
	struct top_bucket	 pb[TOP_MAX_BUCKETS], cb[TOP_MAX_BUCKETS];
	const msgpack_object_kv	*kv;
	char			 key[64], r[32], lat[4][32];
	double			 total = 0, ok, x;
	long long		 n = 0, sum = 0;
	size_t			 np, nc, i;
	int			 known = prev != NULL;

	for (i = 0; known && i < cur->via.map.size; i++) {
		kv = &cur->via.map.ptr[i];
		top_key(key, sizeof key, kv);
		if (strncmp(key, "sends_", 6) != 0 ||
		    strncmp(key, "sends_wechat_", 13) == 0 ||
		    strcmp(key, "sends_no_appid") == 0)
			continue;
		if ((x = top_rate(prev, cur, key, secs)) > 0)
			total += x;
	}
	ok = top_rate(prev, cur, "sends_ok", secs);
	top_fmt_rate(r, sizeof r, known ? total : -1);
	printf("sends/s %s", r);
	if (known && ok >= 0)
		printf(" (ok %.1f, failed %.1f)", ok, total - ok > 0 ?
		    total - ok : 0.0);
	np = top_buckets(prev, pb, TOP_MAX_BUCKETS);
	nc = top_buckets(cur, cb, TOP_MAX_BUCKETS);
	if (known) {
		n = top_counter(cur, "send_duration_count") -
		    top_counter(prev, "send_duration_count");
		sum = top_counter(cur, "send_duration_sum_us") -
		    top_counter(prev, "send_duration_sum_us");
	}
	top_fmt_latency(lat[0], sizeof lat[0],
	    top_quantile(pb, np, cb, nc, n, 0.5));
	top_fmt_latency(lat[1], sizeof lat[1],
	    top_quantile(pb, np, cb, nc, n, 0.9));
	top_fmt_latency(lat[2], sizeof lat[2],
	    top_quantile(pb, np, cb, nc, n, 0.99));
	top_fmt_latency(lat[3], sizeof lat[3], n > 0 && sum >= 0 ?
	    (double)sum / 1e6 / (double)n : -1);
	printf("   latency p50 %s p90 %s p99 %s mean %s\n", lat[0], lat[1],
	    lat[2], lat[3]);
}

/* The failing outcomes of one appid over the interval, as "name r/s, ...". */
static void
top_failures(const char *appid, const msgpack_object *prev,
    const msgpack_object *cur, double secs)
{
	const msgpack_object_kv	*kv;
	char			 key[64];
	double			 r;
	uint32_t		 i;
	int			 n = 0;

	if (prev == NULL || cur == NULL || cur->type != MSGPACK_OBJECT_MAP)
		return;
	for (i = 0; i < cur->via.map.size && n < TOP_MAX_OUTCOMES; i++) {
		kv = &cur->via.map.ptr[i];
		top_key(key, sizeof key, kv);
		if (strncmp(key, "sends_", 6) != 0 ||
		    strcmp(key, "sends_ok") == 0 ||
		    strcmp(key, "sends_wechat") == 0)
			continue;	/* wechat: by errcode below */
		if ((r = top_rate(prev, cur, key, secs)) <= 0)
			continue;
		if (n++ == 0)
			printf("  %s: ", appid);
		else
			printf(", ");
		if (strncmp(key, "sends_wechat_", 13) == 0)
			printf("wechat %s %.1f/s", key + 13, r);
		else
			printf("%s %.1f/s", key + 6, r);
	}
	if (n > 0)
		putchar('\n');
}

/* The credentials table: one row per credential of status. */
static void
top_table(const msgpack_object *stats, const msgpack_object *pstats,
    const msgpack_object *status, double secs)
{
	const msgpack_object	*creds, *cred, *appids, *cur, *prev;
	char			 appid[WXPUSH_CELL_MAX], kind[32], state[32];
	char			 token[32], calls[24], fails[24], queued[24];
	char			 inflight[24], ok[24], failed[24];
	const msgpack_object_kv	*kv;
	long long		 v;
	double			 r, rf;
	uint32_t		 i, k;
	char			 key[64];

	printf("\n");
	printf(TOP_ROW, "APPID", "KIND", "STATE", "TOKEN", "CALLS", "FAIL",
	    "QUEUED", "INFLIGHT", "OK/S", "FAILED/S");
	creds = wxpush_get(status, "credentials");
	if (creds == NULL || creds->type != MSGPACK_OBJECT_ARRAY ||
	    creds->via.array.size == 0) {
		printf("no credentials\n");
		return;
	}
	appids = wxpush_get(stats, "appids");
	for (i = 0; i < creds->via.array.size; i++) {
		cred = &creds->via.array.ptr[i];
		wxpush_fmt_value(appid, sizeof appid, wxpush_get(cred, "appid"));
		wxpush_fmt_value(kind, sizeof kind, wxpush_get(cred, "kind"));
		wxpush_fmt_value(state, sizeof state, wxpush_get(cred, "state"));
		if (wxpush_get_int(wxpush_get(cred, "expires_in"), &v))
			wxpush_fmt_duration(token, sizeof token, v);
		else
			snprintf(token, sizeof token, "-");
		wxpush_fmt_value(calls, sizeof calls,
		    wxpush_get(cred, "token_calls_today"));
		wxpush_fmt_value(fails, sizeof fails, wxpush_get(cred, "failures"));
		cur = wxpush_get(appids, appid);
		prev = pstats != NULL ?
		    wxpush_get(wxpush_get(pstats, "appids"), appid) : NULL;
		wxpush_fmt_value(queued, sizeof queued, wxpush_get(cur, "queued"));
		wxpush_fmt_value(inflight, sizeof inflight,
		    wxpush_get(cur, "inflight"));
		r = cur != NULL && prev != NULL ?
		    top_rate(prev, cur, "sends_ok", secs) : -1;
		rf = r < 0 ? -1 : 0;
		for (k = 0; rf >= 0 && cur->type == MSGPACK_OBJECT_MAP &&
		    k < cur->via.map.size; k++) {
			kv = &cur->via.map.ptr[k];
			top_key(key, sizeof key, kv);
			if (strncmp(key, "sends_", 6) == 0 &&
			    strcmp(key, "sends_ok") != 0 &&
			    strncmp(key, "sends_wechat_", 13) != 0)
				rf += top_rate(prev, cur, key, secs) > 0 ?
				    top_rate(prev, cur, key, secs) : 0;
		}
		top_fmt_rate(ok, sizeof ok, r);
		top_fmt_rate(failed, sizeof failed, rf);
		printf(TOP_ROW, appid, kind, state, token, calls, fails, queued,
		    inflight, ok, failed);
	}
	for (i = 0; i < creds->via.array.size; i++) {
		cred = &creds->via.array.ptr[i];
		wxpush_fmt_value(appid, sizeof appid, wxpush_get(cred, "appid"));
		top_failures(appid, pstats != NULL ?
		    wxpush_get(wxpush_get(pstats, "appids"), appid) : NULL,
		    wxpush_get(appids, appid), secs);
	}
}

/* Ask the daemon one method; on failure report it and exit. */
static void
top_call(struct wxpush *w, const char *method, msgpack_unpacked *res)
{
	struct wxpush_error	e;
	int			rc;

	if ((rc = wxpush_call(w, method, NULL, res, &e)) != WXPUSH_OK) {
		wxpush_print_error(&e, res);
		msgpack_unpacked_destroy(res);
		exit(rc);
	}
}

/*
 * Sleep until the monotonic time at; a frame that took longer than a second
 * moves at to now, so that a slow daemon is not asked twice in a row.
 */
static void
top_sleep_until(struct timespec *at)
{
	struct timespec	now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > at->tv_sec ||
	    (now.tv_sec == at->tv_sec && now.tv_nsec > at->tv_nsec)) {
		*at = now;
		return;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, at, NULL) ==
	    EINTR)
		;
}

/*
 * Run the view: count frames (0: until interrupted), one a second; batch
 * prints frames one after another instead of redrawing the screen.
 */
int
top_run(long count, int batch)
{
	struct top_sample	 s[2];
	struct timespec		 next;
	struct wxpush		*w;
	const msgpack_object	*stats, *status, *pstats;
	double			 secs = 0;
	long			 i;
	int			 cur = 0, prev;

	if (!batch && !isatty(STDOUT_FILENO))
		batch = 1;
	memset(s, 0, sizeof s);
	w = wxpush_connect();
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (i = 0; count == 0 || i < count; i++) {
		prev = 1 - cur;
		if (s[cur].have) {
			msgpack_unpacked_destroy(&s[cur].stats);
			msgpack_unpacked_destroy(&s[cur].status);
		}
		top_call(w, "stats", &s[cur].stats);
		top_call(w, "status", &s[cur].status);
		clock_gettime(CLOCK_MONOTONIC, &s[cur].at);
		s[cur].have = 1;
		stats = wxpush_result(&s[cur].stats);
		status = wxpush_result(&s[cur].status);
		if (stats == NULL || stats->type != MSGPACK_OBJECT_MAP ||
		    status == NULL || status->type != MSGPACK_OBJECT_MAP) {
			fprintf(stderr, "wxpush: top: the daemon's stats or "
			    "status is not a map\n");
			exit(WXPUSH_ERR_CONNECT);
		}
		pstats = s[prev].have ? wxpush_result(&s[prev].stats) : NULL;
		if (pstats != NULL)
			secs = top_elapsed(&s[prev].at, &s[cur].at);
		if (batch)
			printf("%s", i > 0 ? "\n" : "");
		else
			printf("%s", TOP_CLEAR);
		top_header(stats, status);
		top_totals(pstats, stats, secs);
		top_table(stats, pstats, status, secs);
		fflush(stdout);
		cur = prev;
		if (count != 0 && i + 1 >= count)
			break;
		next.tv_sec += 1;
		top_sleep_until(&next);
	}
	for (i = 0; i < 2; i++) {
		if (s[i].have) {
			msgpack_unpacked_destroy(&s[i].stats);
			msgpack_unpacked_destroy(&s[i].status);
		}
	}
	wxpush_close(w);
	return (WXPUSH_OK);
}
