/*
 * The daemon's idea of the time of day, so that tests can set it: the
 * credential machine's refresh moments, backoffs, breaker and quota day are
 * all computed from clock_now(). Timers still run on libevent's clock.
 */
#include "config.h"

#include <time.h>

#include "wxpushd.h"

static time_t	clock_fixed;	/* 0: the real time */

/* Now, in seconds since the epoch. */
time_t
clock_now(void)
{
	return (clock_fixed != 0 ? clock_fixed : time(NULL));
}

/* WeChat's quota day is Beijing's (UTC+8) day. */
int
clock_today(void)
{
	return ((int)((clock_now() + 8 * 3600) / 86400));
}

/* Seconds until the next quota day starts (midnight UTC+8). */
long
clock_until_tomorrow(void)
{
	return (86400 - (long)((clock_now() + 8 * 3600) % 86400));
}

/* Tests: fix the time at t (0 returns to the real time). */
void
clock_set(time_t t)
{
	clock_fixed = t;
}
