/* Allocation that cannot fail (fatal on exhaustion or overflow), after tmux's xmalloc.c. */
#ifndef WX_XMALLOC_H
#define WX_XMALLOC_H

#include <stddef.h>

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
void	*xmemdup(const void *, size_t);
int	 xasprintf(char **, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 freezero_str(char *);
void	 xdontdump(const void *, size_t);
char	*xstrdup_secret(const char *);
void	 freezero(void *, size_t);

#endif
