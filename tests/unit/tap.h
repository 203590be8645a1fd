/*
 * A minimal TAP producer for the unit tests (automake's tap-driver.sh reads it).
 * ok() records one result; tap_done() prints the plan and returns the exit status.
 */
#ifndef WX_TAP_H
#define WX_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) do {					\
	long long tap_g = (got), tap_w = (want);			\
	if (!ok(tap_g == tap_w, __VA_ARGS__))				\
		printf("#   got %lld, want %lld\n", tap_g, tap_w);	\
} while (0)
#define is_str(got, want, ...) do {					\
	const char *tap_gs = (got), *tap_ws = (want);			\
	if (!ok(tap_gs != NULL && strcmp(tap_gs, tap_ws) == 0, __VA_ARGS__))	\
		printf("#   got '%s', want '%s'\n", tap_gs ? tap_gs : "(null)", tap_ws); \
} while (0)

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
		printf("#   failed at %s:%d\n", file, line);
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
