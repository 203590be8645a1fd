/*
 * Log lines a peer can cause, rate-limited per peer and per cause (after the
 * kernel's printk_ratelimit): at most RATELOG_BURST lines per RATELOG_WINDOW
 * seconds for one (cause, peer); the rest are counted and summarized in one
 * line when the window ends, so a flood costs a few lines, not one per request.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wxpushd.h"

#define RATELOG_WINDOW	10	/* seconds */
#define RATELOG_BURST	5	/* lines per (cause, peer) and window */
#define RATELOG_KEYS	256	/* (cause, peer) pairs followed at once */

struct ratelog {
	const char	*cause;		/* static; NULL: a free slot */
	char		 peer[64];
	int		 level;
	time_t		 start;		/* of the current window */
	unsigned	 n;		/* lines logged in it */
	uint64_t	 suppressed;	/* lines not logged in it */
};

static struct ratelog	 ratelog_keys[RATELOG_KEYS];
static struct event	*ratelog_timer;
uint64_t		 ratelog_suppressed;	/* ever, for tests and stats */

/* Write the summary of what e's window left out, and start a new window. */
static void
ratelog_summarize(struct ratelog *e, time_t now)
{
	if (e->suppressed != 0) {
		log_msg(e->level, "%s (%s): %llu similar line%s suppressed in "
		    "%lld s", e->cause, e->peer,
		    (unsigned long long)e->suppressed,
		    e->suppressed == 1 ? "" : "s",
		    (long long)(now - e->start));
	}
	e->start = now;
	e->n = 0;
	e->suppressed = 0;
}

/* The timer: summarize ended windows, forget keys that went quiet. */
static void
ratelog_timer_cb(evutil_socket_t fd, short events, void *arg)
{
	struct timeval	 tv = { RATELOG_WINDOW, 0 };
	time_t		 now = time(NULL);
	size_t		 i;
	int		 busy = 0;

	(void)fd;
	(void)events;
	(void)arg;
	for (i = 0; i < RATELOG_KEYS; i++) {
		struct ratelog *e = &ratelog_keys[i];

		if (e->cause == NULL)
			continue;
		if (now - e->start < RATELOG_WINDOW) {
			busy = 1;
			continue;
		}
		if (e->suppressed != 0) {
			ratelog_summarize(e, now);
			busy = 1;	/* keep it a window more */
			continue;
		}
		e->cause = NULL;
	}
	if (busy)
		evtimer_add(ratelog_timer, &tv);
}

/* The slot of (cause, peer): found, free, or one whose window has ended. */
static struct ratelog *
ratelog_find(const char *cause, const char *peer, time_t now)
{
	struct ratelog	*e, *spare = NULL;
	size_t		 i;

	for (i = 0; i < RATELOG_KEYS; i++) {
		e = &ratelog_keys[i];
		if (e->cause == NULL) {
			if (spare == NULL)
				spare = e;
			continue;
		}
		if (strcmp(e->cause, cause) == 0 && strcmp(e->peer, peer) == 0)
			return (e);
		if (spare == NULL && e->suppressed == 0 &&
		    now - e->start >= RATELOG_WINDOW)
			spare = e;
	}
	return (spare);	/* NULL: every slot busy this window */
}

/*
 * Log fmt at level for peer (e.g. "uid 1000", "127.0.0.1"), rate-limited per
 * (cause, peer); cause is a static string naming what happened. When all keys
 * are busy, lines from new peers share one key per cause ("other peers").
 */
void
ratelog(int level, const char *cause, const char *peer, const char *fmt, ...)
{
	struct timeval	 tv = { RATELOG_WINDOW, 0 };
	time_t		 now = time(NULL);
	struct ratelog	*e;
	va_list		 ap;

	if (level > log_getlevel())
		return;
	if ((e = ratelog_find(cause, peer, now)) == NULL) {
		peer = "other peers";
		if ((e = ratelog_find(cause, peer, now)) == NULL)
			e = &ratelog_keys[0];	/* not lost: summarized */
	}
	if (e->cause == NULL || strcmp(e->cause, cause) != 0 ||
	    strcmp(e->peer, peer) != 0) {
		if (e->cause != NULL)
			ratelog_summarize(e, now);
		e->cause = cause;
		snprintf(e->peer, sizeof e->peer, "%s", peer);
		e->level = level;
		e->start = now;
		e->n = 0;
		e->suppressed = 0;
	} else if (now - e->start >= RATELOG_WINDOW)
		ratelog_summarize(e, now);
	if (e->n >= RATELOG_BURST) {
		e->suppressed++;
		ratelog_suppressed++;
		return;
	}
	e->n++;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
	if (wx_base != NULL) {
		if (ratelog_timer == NULL)
			ratelog_timer = evtimer_new(wx_base, ratelog_timer_cb,
			    NULL);
		if (!evtimer_pending(ratelog_timer, NULL))
			evtimer_add(ratelog_timer, &tv);
	}
}

/* At exit: summarize what is pending and free the timer. */
void
ratelog_shutdown(void)
{
	time_t	now = time(NULL);
	size_t	i;

	for (i = 0; i < RATELOG_KEYS; i++) {
		if (ratelog_keys[i].cause != NULL)
			ratelog_summarize(&ratelog_keys[i], now);
		ratelog_keys[i].cause = NULL;
	}
	if (ratelog_timer != NULL)
		event_free(ratelog_timer);
	ratelog_timer = NULL;
}
