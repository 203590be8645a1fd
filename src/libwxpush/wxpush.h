/*
 * libwxpush: a small blocking client for wxpushd (MessagePack-RPC over its
 * Unix socket). The wire protocol is described in docs/protocol.md.
 *
 * One struct wxpush is one connection; it is not thread-safe (use one per
 * thread). Every call waits at most the timeout set with wxpush_set_timeout().
 */
#ifndef WXPUSH_H
#define WXPUSH_H

#include <stddef.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes; the same numbers are wxpush(1)'s exit codes. */
#define WXPUSH_OK		0	/* done */
#define WXPUSH_ERR_REFUSED	1	/* the daemon answered with an error: see err */
#define WXPUSH_ERR_USAGE	2	/* bad arguments to the library */
#define WXPUSH_ERR_CONNECT	3	/* cannot reach the daemon, lost it, timed out,
					   or it broke the protocol: err->code is
					   "connect", "protocol" or "timeout" */

#define WXPUSH_DEFAULT_TIMEOUT	60000	/* milliseconds */
#define WXPUSH_MAX_RESPONSE	(16 * 1024 * 1024)	/* bytes in one response */

/*
 * An error, from the daemon's error map (WXPUSH_ERR_REFUSED) or made up by the
 * library (WXPUSH_ERR_USAGE: code "usage"; WXPUSH_ERR_CONNECT: code "connect",
 * "protocol" or "timeout"). Strings are always NUL-terminated, truncated at a
 * UTF-8 character boundary, with control characters replaced by '?'. Absent
 * fields are "" or 0.
 */
struct wxpush_error {
	char	code[32];
	char	message[256];
	int	retryable;		/* 1 if the same call may succeed later */
	char	field[64];		/* the request field that is wrong */
	long	errcode;		/* WeChat's errcode, 0 if none */
	char	errmsg[256];		/* WeChat's errmsg */
	int	retry_after;		/* seconds, 0 if none */
};

/* A one-time subscription message; NULL fields are left out of the request. */
struct wxpush_message {
	const char	*appid;			/* required */
	const char	*touser;
	const char	*template_id;
	const char	*scene;			/* "0".."10000" */
	const char	*title;
	const char	*content;
	const char	*color;			/* "#RRGGBB" */
	const char	*url;
	const char	*miniprogram_appid;	/* with miniprogram_pagepath */
	const char	*miniprogram_pagepath;
	const char	*idempotency_key;
};

struct wxpush;

/*
 * Connect to the daemon at path; NULL means $WXPUSH_SOCKET if set, else the
 * default socket. On failure return NULL with a message in err.
 */
struct wxpush	*wxpush_open(const char *path, char *err, size_t errlen);
void		 wxpush_close(struct wxpush *);

/* The default socket path (without looking at $WXPUSH_SOCKET). */
const char	*wxpush_default_socket(void);

/* Time allowed for each call, in milliseconds; <= 0 waits forever. */
void		 wxpush_set_timeout(struct wxpush *, int ms);

/*
 * Call method with params_map (a MSGPACK_OBJECT_MAP, or NULL for none).
 * result may be NULL; otherwise it is (re)initialized, and on WXPUSH_OK and
 * WXPUSH_ERR_REFUSED holds the whole response [1, msgid, error, result]
 * (see wxpush_result()); the caller frees it with msgpack_unpacked_destroy().
 * err may be NULL. After WXPUSH_ERR_CONNECT with code "timeout" the
 * connection stays usable (a late answer is skipped) but the daemon may still
 * carry the request out; after "connect" or "protocol" it is closed and
 * further calls fail with code "connect": open a new one.
 */
int	 wxpush_call(struct wxpush *, const char *method,
	    const msgpack_object *params_map, msgpack_unpacked *result,
	    struct wxpush_error *err);

/* The result map of a response filled by wxpush_call(), or NULL if nil. */
const msgpack_object	*wxpush_result(const msgpack_unpacked *);
/* The error object of such a response, or NULL if nil. */
const msgpack_object	*wxpush_error_object(const msgpack_unpacked *);

/* Ping the daemon; version (may be NULL) gets its version string. */
int	 wxpush_ping(struct wxpush *, char *version, size_t versionlen,
	    struct wxpush_error *err);

/* Send a message; attempts (may be NULL) gets the upstream HTTP attempts. */
int	 wxpush_send(struct wxpush *, const struct wxpush_message *,
	    int *attempts, struct wxpush_error *err);

#ifdef __cplusplus
}
#endif

#endif
