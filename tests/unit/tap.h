/*
 * A minimal TAP producer for the unit tests (automake's tap-driver.sh reads it).
 * ok() records one result; tap_done() prints the plan and returns the exit status.
 * diag() prints a diagnostic: use it, not printf("# ..."), so that every line
 * of it is a comment and it always ends its line (a diagnostic without a
 * newline would swallow the next result).
 */
#ifndef WX_TAP_H
#define WX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) do {					\
	long long tap_g = (got), tap_w = (want);			\
	if (!ok(tap_g == tap_w, __VA_ARGS__))				\
		diag("  got %lld, want %lld", tap_g, tap_w);		\
} while (0)
#define is_str(got, want, ...) do {					\
	const char *tap_gs = (got), *tap_ws = (want);			\
	if (!ok(tap_gs != NULL && strcmp(tap_gs, tap_ws) == 0, __VA_ARGS__))	\
		diag("  got '%s', want '%s'", tap_gs ? tap_gs : "(null)", tap_ws); \
} while (0)

/*
 * Print a diagnostic: each of its lines prefixed with "# ", the last one
 * ended even if the text does not end with a newline. Empty text prints "#".
 */
static void __attribute__((format(printf, 1, 2), unused))
diag(const char *fmt, ...)
{
	va_list	 ap;
	char	*buf, *p, *nl;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (buf = malloc((size_t)n + 1)) == NULL) {
		printf("# (diagnostic lost)\n");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, (size_t)n + 1, fmt, ap);
	va_end(ap);
	p = buf;
	do {
		if ((nl = strchr(p, '\n')) != NULL)
			*nl = '\0';
		printf("#%s%s\n", *p != '\0' ? " " : "", p);
		p = nl != NULL ? nl + 1 : NULL;
	} while (p != NULL && *p != '\0');
	free(buf);
	fflush(stdout);
}

static int __attribute__((format(printf, 4, 5), unused))
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		diag("  failed at %s:%d", file, line);
		tap_failed++;
	}
	fflush(stdout);
	return (cond);
}

static int __attribute__((unused))
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return (tap_failed == 0 ? 0 : 1);
}

#endif
