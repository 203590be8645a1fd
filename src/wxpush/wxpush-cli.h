/*
 * The command-line client's own helpers, shared by its commands (wxpush.c)
 * and the live view (top.c).
 */
#ifndef WXPUSH_CLI_H
#define WXPUSH_CLI_H

#include <stddef.h>

#include <msgpack.h>

#include "wxpush.h"

#define WXPUSH_CELL_MAX		256	/* bytes shown in one status cell */

void	 wxpush_nomem(void) __attribute__((noreturn));
void	 wxpush_strcell(char *, size_t, const char *, size_t);
void	 wxpush_print_error(const struct wxpush_error *, const msgpack_unpacked *);
struct wxpush	*wxpush_connect(void);
const msgpack_object	*wxpush_get(const msgpack_object *, const char *);
int	 wxpush_get_int(const msgpack_object *, long long *);
void	 wxpush_fmt_duration(char *, size_t, long long);
void	 wxpush_fmt_value(char *, size_t, const msgpack_object *);

/* top.c: wxpush top, a live view of stats and status every second. */
int	 top_run(long count, int batch);

#endif
