/* Logging to stderr (foreground) or syslog, with levels; errno is preserved. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *log_name = "wxpushd";
static int log_to_syslog;
static int log_level = LOG_LEVEL_INFO;

/* Start logging: to syslog when use_syslog is set, otherwise to stderr. */
void
log_init(const char *name, int use_syslog, int level)
{
	log_name = name;
	log_to_syslog = use_syslog;
	log_level = level;
	if (log_to_syslog)
		openlog(name, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

void
log_setlevel(int level)
{
	log_level = level;
}

int
log_getlevel(void)
{
	return (log_level);
}

/* Map a level name to its number; -1 if unknown. */
int
log_level_parse(const char *s)
{
	if (strcmp(s, "error") == 0)
		return (LOG_LEVEL_ERR);
	if (strcmp(s, "warn") == 0 || strcmp(s, "warning") == 0)
		return (LOG_LEVEL_WARN);
	if (strcmp(s, "info") == 0)
		return (LOG_LEVEL_INFO);
	if (strcmp(s, "debug") == 0)
		return (LOG_LEVEL_DEBUG);
	return (-1);
}

static void __attribute__((format(printf, 3, 0)))
log_vwrite(int level, const char *suffix, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *tag[] = { "error", "warning", "info", "debug" };
	char msg[2048];
	int saved = errno;

	if (level > log_level) {
		errno = saved;
		return;
	}
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (log_to_syslog) {
		if (suffix != NULL)
			syslog(prio[level], "%s: %s", msg, suffix);
		else
			syslog(prio[level], "%s", msg);
	} else {
		if (suffix != NULL)
			fprintf(stderr, "%s: %s: %s: %s\n", log_name, tag[level],
			    msg, suffix);
		else
			fprintf(stderr, "%s: %s: %s\n", log_name, tag[level], msg);
		fflush(stderr);
	}
	errno = saved;
}

/* Log at level (LOG_LEVEL_*), for callers that choose the level. */
void
log_vmsg(int level, const char *fmt, va_list ap)
{
	log_vwrite(level, NULL, fmt, ap);
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, NULL, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, e, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	const char *e = strerror(errno);

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
