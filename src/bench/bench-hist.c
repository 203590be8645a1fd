/*
 * A log-linear latency histogram in the manner of HdrHistogram: values below
 * BENCH_HIST_SUB are exact, larger ones fall in one of BENCH_HIST_HALF
 * buckets per power of two, so a quantile is off by less than 1/128.
 */
#include "config.h"

#include <string.h>

#include "bench.h"

/* The bucket of v. */
static size_t
bench_hist_index(uint64_t v)
{
	int	msb, shift;

	if (v < BENCH_HIST_SUB)
		return ((size_t)v);
	msb = 63 - __builtin_clzll(v);
	shift = msb - (BENCH_HIST_SUB_BITS - 1);
	return (BENCH_HIST_SUB + (size_t)(msb - BENCH_HIST_SUB_BITS) *
	    BENCH_HIST_HALF + (size_t)((v >> shift) - BENCH_HIST_HALF));
}

/* The lowest value that falls in bucket i. */
static uint64_t
bench_hist_low(size_t i)
{
	size_t	j, k, r;
	int	shift;

	if (i < BENCH_HIST_SUB)
		return (i);
	j = i - BENCH_HIST_SUB;
	k = j / BENCH_HIST_HALF;
	r = j % BENCH_HIST_HALF;
	shift = (int)k + 1;
	return ((uint64_t)(r + BENCH_HIST_HALF) << shift);
}

/* Empty the histogram. */
void
bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof *h);
	h->min = UINT64_MAX;
}

/* Count one value (nanoseconds). */
void
bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->buckets[bench_hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/*
 * The value at quantile q (0..1): the highest value of the bucket that holds
 * it, never above the largest value seen. 0 when empty.
 */
uint64_t
bench_hist_quantile(const struct bench_hist *h, double q)
{
	uint64_t	target, seen = 0, high;
	size_t		i;

	if (h->count == 0)
		return (0);
	target = (uint64_t)(q * (double)h->count + 0.999999);
	if (target == 0)
		target = 1;
	for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= target) {
			high = i + 1 < BENCH_HIST_BUCKETS ?
			    bench_hist_low(i + 1) - 1 : UINT64_MAX;
			if (high > h->max)
				high = h->max;
			if (high < h->min)
				high = h->min;
			return (high);
		}
	}
	return (h->max);
}
