/* Allocation wrappers: callers never test for NULL. */
#include "config.h"

#include <sys/mman.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "xmalloc.h"

void *
xmalloc(size_t size)
{
	void *p;

	if (size == 0)
		fatalx("xmalloc: zero size");
	if ((p = malloc(size)) == NULL)
		fatal("xmalloc: allocating %zu bytes", size);
	return (p);
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		fatalx("xcalloc: zero size");
	if ((p = calloc(nmemb, size)) == NULL)
		fatal("xcalloc: allocating %zu * %zu bytes", nmemb, size);
	return (p);
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		fatalx("xreallocarray: zero size");
	if (SIZE_MAX / nmemb < size)
		fatalx("xreallocarray: %zu * %zu overflows", nmemb, size);
	if ((p = realloc(ptr, nmemb * size)) == NULL)
		fatal("xreallocarray: allocating %zu * %zu bytes", nmemb, size);
	return (p);
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatal("xstrdup");
	return (p);
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		fatal("xstrndup");
	return (p);
}

void *
xmemdup(const void *src, size_t len)
{
	void *p = xmalloc(len == 0 ? 1 : len);

	if (len != 0)
		memcpy(p, src, len);
	return (p);
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0 || *ret == NULL)
		fatal("xasprintf");
	return (n);
}

/* Wipe a secret before its memory goes back to the allocator. */
void
freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

void
freezero_str(char *s)
{
	if (s != NULL)
		freezero(s, strlen(s));
}

/*
 * Keep the pages holding p[0..len) out of core dumps (MADV_DONTDUMP), for
 * memory that holds a secret. The whole pages are marked, neighbours too, and
 * stay marked after free: that only ever leaves more out of a dump. Best
 * effort: where the system has no MADV_DONTDUMP this does nothing.
 */
void
xdontdump(const void *p, size_t len)
{
#ifdef MADV_DONTDUMP
	static long	pagesize;
	uintptr_t	start, end;

	if (p == NULL || len == 0)
		return;
	if (pagesize == 0 && (pagesize = sysconf(_SC_PAGESIZE)) <= 0)
		pagesize = 4096;
	start = (uintptr_t)p & ~((uintptr_t)pagesize - 1);
	end = ((uintptr_t)p + len + (uintptr_t)pagesize - 1) &
	    ~((uintptr_t)pagesize - 1);
	(void)madvise((void *)start, end - start, MADV_DONTDUMP);
#else
	(void)p;
	(void)len;
#endif
}

/* xstrdup for a secret: the copy's pages are kept out of core dumps. */
char *
xstrdup_secret(const char *s)
{
	char	*p = xstrdup(s);

	xdontdump(p, strlen(p) + 1);
	return (p);
}
