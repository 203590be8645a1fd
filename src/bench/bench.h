/*
 * wxpush-bench: shared types and prototypes, grouped by the file that defines
 * them. One process, one libevent loop: either MessagePack-RPC clients of
 * wxpushd (bench-rpc.c) or a bare libcurl multi client of the upstream
 * (bench-ref.c, the reference), measured the same way (bench.c).
 */
#ifndef BENCH_H
#define BENCH_H

#include <sys/types.h>

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* The message every send carries: the same for the daemon and the reference. */
#define BENCH_TOUSER		"oBENCH_openid_000000001"
#define BENCH_TEMPLATE_ID	"TEMPLATE_bench_000001"
#define BENCH_SCENE		1000
#define BENCH_TITLE		"订阅通知"
#define BENCH_CONTENT		"wxpush-bench: 您好, 这是一条测试消息"
#define BENCH_COLOR		"#173177"

#define BENCH_MAX_DEPTH		4096	/* in flight per connection */
#define BENCH_MAX_CONNS		100000
#define BENCH_ERR_CODES		16	/* distinct error codes counted */
#define BENCH_ERR_LEN		40

/* bench-hist.c: a log-linear latency histogram (HdrHistogram-like, < 0.8%). */
#define BENCH_HIST_SUB_BITS	8
#define BENCH_HIST_SUB		(1 << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_HALF		(BENCH_HIST_SUB / 2)
#define BENCH_HIST_BUCKETS	(BENCH_HIST_SUB + \
	(64 - BENCH_HIST_SUB_BITS) * BENCH_HIST_HALF)
struct bench_hist {
	uint64_t	 count;
	uint64_t	 min;		/* ns */
	uint64_t	 max;
	double		 sum;
	uint64_t	 buckets[BENCH_HIST_BUCKETS];
};
void		 bench_hist_reset(struct bench_hist *);
void		 bench_hist_add(struct bench_hist *, uint64_t);
uint64_t	 bench_hist_quantile(const struct bench_hist *, double);

/* bench.c: options, phases, measurement and the report. */
struct bench_opts {
	const char	*socket;
	int		 conns;
	int		 depth;
	int		 secs;
	int		 warmup;
	const char	*appid;
	pid_t		 pid;
	int		 json;
	const char	*method;	/* "send" or "ping" */
	int		 idle;		/* extra idle connections */
	const char	*reference;	/* upstream base URL: reference mode */
	int		 bare;		/* --reference-bare: perform + poll */
	const char	*ca_file;
	const char	*token;
	const char	*secret_file;
	const char	*label;
};

enum bench_phase { BENCH_WARMUP, BENCH_MEASURE, BENCH_DONE };

struct bench_errors {
	char		 code[BENCH_ERR_CODES][BENCH_ERR_LEN];
	uint64_t	 n[BENCH_ERR_CODES];
	size_t		 ncodes;
	uint64_t	 other;
};

struct bench_state {
	struct event_base	*base;
	enum bench_phase	 phase;
	uint64_t		 issued;	/* requests written, all phases */
	uint64_t		 done;		/* answers in the window */
	uint64_t		 ok;
	uint64_t		 lost;		/* connections lost or refused */
	struct bench_hist	 hist;
	struct bench_errors	 errors;
	uint64_t		 first_ns;	/* latency of the first answer */
	int			 have_first;
};
extern struct bench_opts	 bench_opts;
extern struct bench_state	 bench;

uint64_t	 bench_now_ns(void);
void		 bench_record(uint64_t, const char *);
void		 bench_stop(const char *);
void		 bench_phase_advance(void);
extern volatile sig_atomic_t	 bench_interrupted;

/* bench-rpc.c: MessagePack-RPC clients of wxpushd. */
int		 bench_rpc_start(void);
int		 bench_rpc_idle(int);
size_t		 bench_rpc_active(void);
void		 bench_rpc_close(void);

/* bench-ref.c: the reference, libcurl multi straight to the upstream. */
int		 bench_ref_start(void);
void		 bench_ref_bare_run(void);
void		 bench_ref_close(void);
char		*bench_ref_body(size_t *);

#endif
