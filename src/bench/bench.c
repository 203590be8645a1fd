/*
 * wxpush-bench: load for wxpushd, measured. One process, one libevent loop:
 * C connections to the daemon's socket with D requests pipelined on each, or
 * (--reference URL) the same sends straight to the upstream with a bare
 * libcurl multi client, for a warm-up and then T measured seconds. Prints
 * answers/s, latency quantiles, errors by code, and the CPU time and memory of
 * the process given with --pid.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/resource.h>

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "log.h"
#include "xmalloc.h"
#include "bench.h"

#ifndef WX_RUNSTATEDIR
#define WX_RUNSTATEDIR "/run"
#endif
#define BENCH_SOCKET		WX_RUNSTATEDIR "/wxpushd/wxpushd.sock"
#define BENCH_MAX_SECS		86400
#define BENCH_FD_WAIT		30	/* seconds for the daemon to accept idle ones */

struct bench_opts	 bench_opts = {
	.conns = 16,
	.depth = 8,
	.secs = 10,
	.warmup = 2,
	.method = "send",
};
struct bench_state	 bench;

/* CPU and memory as sampled at the start and end of the window. */
struct bench_sample {
	uint64_t	 ns;
	double		 pid_cpu;	/* seconds, -1 if unknown */
	double		 self_cpu;
	uint64_t	 machine_busy;	/* /proc/stat jiffies */
	uint64_t	 machine_total;
};

static struct bench_sample	 bench_t0, bench_t1;
static struct event		*bench_phase_ev;
static const char		*bench_stop_reason;
static long			 bench_idle_rss = -1;	/* KiB after the idle connect */

static const struct option bench_longopts[] = {
	{ "socket",	required_argument,	NULL, 's' },
	{ "conns",	required_argument,	NULL, 'c' },
	{ "depth",	required_argument,	NULL, 'd' },
	{ "time",	required_argument,	NULL, 't' },
	{ "warmup",	required_argument,	NULL, 'w' },
	{ "appid",	required_argument,	NULL, 'a' },
	{ "pid",	required_argument,	NULL, 'p' },
	{ "json",	no_argument,		NULL, 'j' },
	{ "method",	required_argument,	NULL, 'm' },
	{ "idle",	required_argument,	NULL, 'i' },
	{ "reference",	required_argument,	NULL, 'r' },
	{ "reference-bare", required_argument,	NULL, 'R' },
	{ "ca-file",	required_argument,	NULL, 'C' },
	{ "token",	required_argument,	NULL, 'T' },
	{ "secret-file", required_argument,	NULL, 'S' },
	{ "label",	required_argument,	NULL, 'l' },
	{ "help",	no_argument,		NULL, 'h' },
	{ "version",	no_argument,		NULL, 'V' },
	{ NULL,		0,			NULL, 0 }
};

/* Print the usage and exit with status. */
static void __attribute__((noreturn))
bench_usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: wxpush-bench [-s socket] [-c conns] [-d depth] [-t secs] "
	    "[--warmup secs]\n"
	    "                    [--appid A] [--pid PID] [--method send|enqueue|ping] "
	    "[--idle N]\n"
	    "                    [--json] [--label L]\n"
	    "       wxpush-bench (--reference | --reference-bare) URL "
	    "(--token T | --appid A --secret-file F)\n"
	    "                    [--ca-file F] [-c conns] [-d depth] [-t secs] "
	    "[--warmup secs]\n");
	exit(status);
}

/* A number in lo..hi from an option, or a usage error. */
static long
bench_number(const char *opt, const char *s, long lo, long hi)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "wxpush-bench: %s: \"%s\" is not a number in "
		    "%ld..%ld\n", opt, s, lo, hi);
		exit(2);
	}
	return (v);
}

/* Monotonic nanoseconds. */
uint64_t
bench_now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

/* Count an error code; past BENCH_ERR_CODES distinct codes, "other". */
static void
bench_error(const char *code)
{
	size_t	i;

	for (i = 0; i < bench.errors.ncodes; i++) {
		if (strcmp(bench.errors.code[i], code) == 0) {
			bench.errors.n[i]++;
			return;
		}
	}
	if (bench.errors.ncodes == BENCH_ERR_CODES) {
		bench.errors.other++;
		return;
	}
	snprintf(bench.errors.code[i], sizeof bench.errors.code[i], "%s", code);
	bench.errors.n[i] = 1;
	bench.errors.ncodes++;
}

/* An answer to a request sent at start: NULL code means success. */
void
bench_record(uint64_t start, const char *code)
{
	uint64_t	lat = bench_now_ns() - start;

	if (!bench.have_first) {
		bench.first_ns = lat;
		bench.have_first = 1;
	}
	if (bench.phase != BENCH_MEASURE)
		return;
	bench.done++;
	bench_hist_add(&bench.hist, lat);
	if (code == NULL)
		bench.ok++;
	else
		bench_error(code);
}

/* utime + stime of pid in seconds, or -1. */
static double
bench_proc_cpu(pid_t pid)
{
	char			 path[64], buf[1024], *p;
	FILE			*f;
	unsigned long long	 ut, st;
	size_t			 n;

	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (-1);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: skip past the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return (-1);
	/* Fields 3..13, then utime (14) and stime (15). */
	if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &ut, &st) != 2)
		return (-1);
	return ((double)(ut + st) / (double)sysconf(_SC_CLK_TCK));
}

/* VmRSS and VmHWM of pid in KiB (-1 if unknown). */
static void
bench_proc_mem(pid_t pid, long *rss, long *hwm)
{
	char	 path[64], line[256];
	FILE	*f;

	*rss = *hwm = -1;
	snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			*hwm = strtol(line + 6, NULL, 10);
	}
	fclose(f);
}

/* Open descriptors of pid, or -1. */
static long
bench_proc_nfds(pid_t pid)
{
	char		 path[64];
	DIR		*d;
	struct dirent	*de;
	long		 n = 0;

	snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return (n);
}

/* Busy and total jiffies of the whole machine, from /proc/stat. */
static void
bench_machine(uint64_t *busy, uint64_t *total)
{
	FILE			*f;
	unsigned long long	 v[8];
	uint64_t		 t = 0;
	int			 i;

	*busy = *total = 0;
	if ((f = fopen("/proc/stat", "r")) == NULL)
		return;
	memset(v, 0, sizeof v);
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
	    &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
		for (i = 0; i < 8; i++)
			t += v[i];
		*total = t;
		*busy = t - v[3] - v[4];	/* less idle and iowait */
	}
	fclose(f);
}

/* Own CPU time in seconds. */
static double
bench_self_cpu(void)
{
	struct rusage	ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* Sample the clocks and CPU counters at one end of the window. */
static void
bench_sample(struct bench_sample *s)
{
	s->ns = bench_now_ns();
	s->pid_cpu = bench_opts.pid > 0 ? bench_proc_cpu(bench_opts.pid) : -1;
	s->self_cpu = bench_self_cpu();
	bench_machine(&s->machine_busy, &s->machine_total);
}

/* End the run early (or normally, with NULL). */
void
bench_stop(const char *why)
{
	if (bench.phase == BENCH_DONE)
		return;
	if (bench.phase == BENCH_MEASURE)
		bench_sample(&bench_t1);
	bench.phase = BENCH_DONE;
	bench_stop_reason = why;
	event_base_loopbreak(bench.base);
}

/* The end of the warm-up, then the end of the window. */
void
bench_phase_advance(void)
{
	if (bench.phase == BENCH_WARMUP) {
		bench.done = bench.ok = 0;
		bench_hist_reset(&bench.hist);
		memset(&bench.errors, 0, sizeof bench.errors);
		bench.phase = BENCH_MEASURE;
		bench_sample(&bench_t0);
		return;
	}
	bench_stop(NULL);
}

/* The phase timer of the event loop modes. */
static void
bench_phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval	tv;

	(void)fd;
	(void)what;
	(void)arg;
	bench_phase_advance();
	if (bench.phase == BENCH_MEASURE) {
		tv.tv_sec = bench_opts.secs;
		tv.tv_usec = 0;
		evtimer_add(bench_phase_ev, &tv);
	}
}

/* SIGINT or SIGTERM in the bare reference, which runs no event loop. */
volatile sig_atomic_t	 bench_interrupted;

static void
bench_bare_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

/* SIGINT or SIGTERM: report what was measured so far. */
static void
bench_signal_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	bench_stop("interrupted");
}

/* Make room for n descriptors, up to the hard limit. */
static void
bench_nofile(size_t n)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("getrlimit");
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= n)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
		fatalx("%zu descriptors needed, the hard limit is %llu: raise "
		    "it (ulimit -Hn)", n, (unsigned long long)rl.rlim_max);
	rl.rlim_cur = n;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		fatal("setrlimit RLIMIT_NOFILE %zu", n);
}

/* Wait until the daemon holds at least n descriptors. */
static void
bench_wait_fds(long n)
{
	uint64_t	 end = bench_now_ns() + BENCH_FD_WAIT * 1000000000ULL;
	struct timespec	 ts = { 0, 20 * 1000 * 1000 };

	while (bench_proc_nfds(bench_opts.pid) < n) {
		if (bench_now_ns() > end) {
			log_warnx("the daemon did not accept the idle "
			    "connections within %d s", BENCH_FD_WAIT);
			return;
		}
		nanosleep(&ts, NULL);
	}
}

/* Milliseconds, from nanoseconds. */
static double
bench_ms(uint64_t ns)
{
	return ((double)ns / 1e6);
}

/* Print the result: a few lines for a person, or one JSON object. */
static void
bench_report(void)
{
	double		 secs, rate, pid_cpu = -1, self_cpu, busy = -1;
	long		 rss = -1, hwm = -1;
	json_t		*o, *errs;
	char		*s, what[256];
	size_t		 i;

	secs = (double)(bench_t1.ns - bench_t0.ns) / 1e9;
	rate = secs > 0 ? (double)bench.done / secs : 0;
	if (bench_t0.pid_cpu >= 0 && bench_t1.pid_cpu >= 0)
		pid_cpu = bench_t1.pid_cpu - bench_t0.pid_cpu;
	self_cpu = bench_t1.self_cpu - bench_t0.self_cpu;
	if (bench_t1.machine_total > bench_t0.machine_total)
		busy = 100.0 * (double)(bench_t1.machine_busy -
		    bench_t0.machine_busy) / (double)(bench_t1.machine_total -
		    bench_t0.machine_total);
	if (bench_opts.pid > 0)
		bench_proc_mem(bench_opts.pid, &rss, &hwm);

	if (bench_opts.reference != NULL)
		snprintf(what, sizeof what, "reference%s: libcurl to %s, %d "
		    "transfers in flight", bench_opts.bare ? " (bare)" : "",
		    bench_opts.reference, bench_opts.conns * bench_opts.depth);
	else
		snprintf(what, sizeof what, "%s to %s, %d connections x %d in "
		    "flight%s", bench_opts.method, bench_opts.socket,
		    bench_opts.conns, bench_opts.depth, bench_opts.idle ?
		    " (and idle ones)" : "");

	if (bench_opts.json) {
		errs = json_object();
		for (i = 0; i < bench.errors.ncodes; i++)
			json_object_set_new(errs, bench.errors.code[i],
			    json_integer((json_int_t)bench.errors.n[i]));
		if (bench.errors.other != 0)
			json_object_set_new(errs, "other",
			    json_integer((json_int_t)bench.errors.other));
		o = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:f,s:I,s:I,s:f,s:f,"
		    "s:f,s:f,s:f,s:f,s:f,s:f,s:o,s:I,s:f,s:f,s:i}",
		    "label", bench_opts.label != NULL ? bench_opts.label : "",
		    "mode", bench_opts.reference == NULL ? "daemon" :
		    bench_opts.bare ? "reference_bare" : "reference",
		    "method", bench_opts.method,
		    "conns", bench_opts.conns,
		    "depth", bench_opts.depth,
		    "inflight", bench_opts.conns * bench_opts.depth,
		    "seconds", secs,
		    "answers", (json_int_t)bench.done,
		    "ok", (json_int_t)bench.ok,
		    "rate", rate,
		    "ok_rate", secs > 0 ? (double)bench.ok / secs : 0.0,
		    "p50_ms", bench_ms(bench_hist_quantile(&bench.hist, 0.50)),
		    "p99_ms", bench_ms(bench_hist_quantile(&bench.hist, 0.99)),
		    "p999_ms", bench_ms(bench_hist_quantile(&bench.hist, 0.999)),
		    "max_ms", bench_ms(bench.hist.count ? bench.hist.max : 0),
		    "mean_ms", bench.hist.count ?
		    bench.hist.sum / (double)bench.hist.count / 1e6 : 0.0,
		    "first_ms", bench_ms(bench.first_ns),
		    "errors", errs,
		    "lost", (json_int_t)bench.lost,
		    "self_cpu_s", self_cpu,
		    "machine_busy_pct", busy,
		    "idle", bench_opts.idle);
		if (o == NULL)
			fatalx("cannot build the JSON result");
		if (bench_opts.pid > 0) {
			json_object_set_new(o, "pid", json_integer(bench_opts.pid));
			json_object_set_new(o, "pid_cpu_s", json_real(pid_cpu));
			json_object_set_new(o, "pid_cpu_us_per_answer",
			    json_real(pid_cpu >= 0 && bench.done != 0 ?
			    pid_cpu * 1e6 / (double)bench.done : -1));
			json_object_set_new(o, "rss_kib", json_integer(rss));
			json_object_set_new(o, "hwm_kib", json_integer(hwm));
			if (bench_idle_rss >= 0)
				json_object_set_new(o, "idle_rss_kib",
				    json_integer(bench_idle_rss));
		}
		json_object_set_new(o, "self_cpu_us_per_answer",
		    json_real(bench.done != 0 ? self_cpu * 1e6 /
		    (double)bench.done : -1));
		if (bench_stop_reason != NULL)
			json_object_set_new(o, "stopped",
			    json_string(bench_stop_reason));
		if ((s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) ==
		    NULL)
			fatalx("cannot print the JSON result");
		printf("%s\n", s);
		free(s);
		json_decref(o);
		fflush(stdout);
		return;
	}

	printf("wxpush-bench%s%s: %s, %.2f s measured after %d s warm-up\n",
	    bench_opts.label != NULL ? " " : "",
	    bench_opts.label != NULL ? bench_opts.label : "", what, secs,
	    bench_opts.warmup);
	if (bench_stop_reason != NULL)
		printf("  stopped early: %s\n", bench_stop_reason);
	printf("  %-14s %.1f/s (%llu answers, %llu ok)\n", "rate", rate,
	    (unsigned long long)bench.done, (unsigned long long)bench.ok);
	printf("  %-14s p50 %.3f  p99 %.3f  p999 %.3f  max %.3f  mean %.3f  "
	    "first %.3f\n", "latency ms",
	    bench_ms(bench_hist_quantile(&bench.hist, 0.50)),
	    bench_ms(bench_hist_quantile(&bench.hist, 0.99)),
	    bench_ms(bench_hist_quantile(&bench.hist, 0.999)),
	    bench_ms(bench.hist.count ? bench.hist.max : 0),
	    bench.hist.count ? bench.hist.sum / (double)bench.hist.count / 1e6 :
	    0.0, bench_ms(bench.first_ns));
	printf("  %-14s", "errors");
	if (bench.errors.ncodes == 0 && bench.errors.other == 0)
		printf(" none");
	for (i = 0; i < bench.errors.ncodes; i++)
		printf(" %s %llu", bench.errors.code[i],
		    (unsigned long long)bench.errors.n[i]);
	if (bench.errors.other != 0)
		printf(" other %llu", (unsigned long long)bench.errors.other);
	if (bench.lost != 0)
		printf(" (connections lost: %llu)",
		    (unsigned long long)bench.lost);
	printf("\n");
	if (bench_opts.pid > 0) {
		printf("  %-14s %.2f s cpu (%.1f%% of a core, %.1f us/answer), "
		    "rss %.1f MiB, hwm %.1f MiB", "pid", pid_cpu,
		    secs > 0 ? 100 * pid_cpu / secs : 0.0, bench.done ?
		    pid_cpu * 1e6 / (double)bench.done : 0.0, rss / 1024.0,
		    hwm / 1024.0);
		if (bench_idle_rss >= 0)
			printf(", rss with idle connections %.1f MiB",
			    bench_idle_rss / 1024.0);
		printf("\n");
	}
	printf("  %-14s %.2f s cpu (%.1f us/answer); machine %.0f%% busy "
	    "(%ld cpus)\n", "bench", self_cpu, bench.done ? self_cpu * 1e6 /
	    (double)bench.done : 0.0, busy, sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
}

/* Parse the options, connect, run the warm-up and the window, report. */
int
main(int argc, char **argv)
{
	struct event	*sigint, *sigterm;
	struct timeval	 tv;
	const char	*env;
	long		 rss, hwm, base_fds = 0;
	int		 ch, rc;

	log_init("wxpush-bench", 0, LOG_LEVEL_INFO);
	if ((env = getenv("WXPUSH_SOCKET")) != NULL && *env != '\0')
		bench_opts.socket = env;
	else
		bench_opts.socket = BENCH_SOCKET;
	while ((ch = getopt_long(argc, argv, "a:c:d:hi:jl:m:p:r:R:s:t:Vw:",
	    bench_longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			bench_opts.socket = optarg;
			break;
		case 'c':
			bench_opts.conns = (int)bench_number("-c", optarg, 1,
			    BENCH_MAX_CONNS);
			break;
		case 'd':
			bench_opts.depth = (int)bench_number("-d", optarg, 1,
			    BENCH_MAX_DEPTH);
			break;
		case 't':
			bench_opts.secs = (int)bench_number("-t", optarg, 1,
			    BENCH_MAX_SECS);
			break;
		case 'w':
			bench_opts.warmup = (int)bench_number("--warmup",
			    optarg, 0, BENCH_MAX_SECS);
			break;
		case 'a':
			bench_opts.appid = optarg;
			break;
		case 'p':
			bench_opts.pid = (pid_t)bench_number("--pid", optarg, 1,
			    INT_MAX);
			break;
		case 'j':
			bench_opts.json = 1;
			break;
		case 'm':
			if (strcmp(optarg, "send") != 0 &&
			    strcmp(optarg, "enqueue") != 0 &&
			    strcmp(optarg, "ping") != 0)
				bench_usage(2);
			bench_opts.method = optarg;
			break;
		case 'i':
			bench_opts.idle = (int)bench_number("--idle", optarg, 0,
			    BENCH_MAX_CONNS);
			break;
		case 'r':
			bench_opts.reference = optarg;
			bench_opts.bare = 0;
			break;
		case 'R':
			bench_opts.reference = optarg;
			bench_opts.bare = 1;
			break;
		case 'C':
			bench_opts.ca_file = optarg;
			break;
		case 'T':
			bench_opts.token = optarg;
			break;
		case 'S':
			bench_opts.secret_file = optarg;
			break;
		case 'l':
			bench_opts.label = optarg;
			break;
		case 'h':
			bench_usage(0);
		case 'V':
			printf("wxpush-bench %s\n", PACKAGE_VERSION);
			return (0);
		default:
			bench_usage(2);
		}
	}
	if (optind != argc)
		bench_usage(2);
	if (bench_opts.reference != NULL) {
		if (strncmp(bench_opts.reference, "http://", 7) != 0 &&
		    strncmp(bench_opts.reference, "https://", 8) != 0) {
			fprintf(stderr, "wxpush-bench: --reference needs an "
			    "http:// or https:// URL\n");
			return (2);
		}
		if (bench_opts.token == NULL && (bench_opts.secret_file == NULL ||
		    bench_opts.appid == NULL)) {
			fprintf(stderr, "wxpush-bench: --reference needs --token, "
			    "or --appid and --secret-file\n");
			return (2);
		}
		if (bench_opts.idle != 0 || strcmp(bench_opts.method, "send") != 0)
			bench_usage(2);
	} else if (strcmp(bench_opts.method, "ping") != 0 &&
	    bench_opts.appid == NULL) {
		fprintf(stderr, "wxpush-bench: %s needs --appid\n",
		    bench_opts.method);
		return (2);
	}
	signal(SIGPIPE, SIG_IGN);

	if (bench_opts.reference != NULL)
		bench_nofile((size_t)bench_opts.conns * bench_opts.depth * 2 + 64);
	else
		bench_nofile((size_t)bench_opts.conns + bench_opts.idle + 64);
	if ((bench.base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	bench_hist_reset(&bench.hist);
	sigint = evsignal_new(bench.base, SIGINT, bench_signal_cb, NULL);
	sigterm = evsignal_new(bench.base, SIGTERM, bench_signal_cb, NULL);
	if (bench_opts.bare) {
		signal(SIGINT, bench_bare_signal);
		signal(SIGTERM, bench_bare_signal);
	} else {
		evsignal_add(sigint, NULL);
		evsignal_add(sigterm, NULL);
	}

	if (bench_opts.reference != NULL) {
		if (bench_ref_start() == -1)
			return (1);
	} else {
		if (bench_opts.pid > 0)
			base_fds = bench_proc_nfds(bench_opts.pid);
		if (bench_opts.idle > 0) {
			if (bench_rpc_idle(bench_opts.idle) == -1)
				return (1);
			if (bench_opts.pid > 0) {
				bench_wait_fds(base_fds + bench_opts.idle);
				bench_proc_mem(bench_opts.pid, &rss, &hwm);
				bench_idle_rss = rss;
			}
		}
		if (bench_rpc_start() == -1)
			return (1);
	}

	bench_phase_ev = evtimer_new(bench.base, bench_phase_cb, NULL);
	tv.tv_sec = bench_opts.warmup;
	tv.tv_usec = 0;
	if (bench_opts.bare)
		bench_ref_bare_run();
	else {
		evtimer_add(bench_phase_ev, &tv);
		/* Connections may all have failed already: a loopbreak is not sticky. */
		if (bench.phase != BENCH_DONE)
			event_base_dispatch(bench.base);
	}
	if (bench.phase != BENCH_DONE)
		bench_stop("the event loop ran dry");

	rc = 0;
	if (bench_t0.ns == 0) {
		log_warnx("stopped before the measurement began: %s",
		    bench_stop_reason != NULL ? bench_stop_reason : "?");
		rc = 1;
	} else {
		bench_report();
		if (bench.done == 0 || bench.lost != 0)
			rc = 1;
	}

	if (bench_opts.reference != NULL)
		bench_ref_close();
	else
		bench_rpc_close();
	event_free(bench_phase_ev);
	event_free(sigint);
	event_free(sigterm);
	event_base_free(bench.base);
	return (rc);
}
