/*
 * libwxpush: a blocking MessagePack-RPC client for wxpushd's Unix socket.
 *
 * A library: it never logs, never exits, and reports everything through
 * return codes and struct wxpush_error. Responses are bounded
 * (WXPUSH_MAX_RESPONSE) and scanned before msgpack-c sees them, so a declared
 * container size cannot make the unpacker allocate more than the bytes we hold.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "wxpush.h"

#ifndef WX_RUNSTATEDIR
#define WX_RUNSTATEDIR "/run"
#endif
#define WXPUSH_SOCKET_PATH	WX_RUNSTATEDIR "/wxpushd/wxpushd.sock"

#define WXPUSH_READ_MAX		(1024 * 1024)	/* bytes per recv() */
#define WXPUSH_REQUEST_HINT	65536		/* the daemon's default max_request */

struct wxpush {
	int			 fd;		/* -1 once the connection is lost */
	int			 timeout;	/* ms, <= 0 forever */
	uint32_t		 msgid;
	size_t			 reqlen;	/* bytes of the last request */
	msgpack_unpacker	 unpacker;
	int			 unpacker_ok;

	/* Scan state of the frame at the unpacker's read offset. */
	size_t			 scan_pos;	/* bytes of it already checked */
	uint64_t		 scan_need;	/* objects still to come in it */
};

/* Copy a string from the peer: bounded, no control characters, whole UTF-8 characters. */
static void
wxpush_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	size_t	i, n;

	if (dstlen == 0)
		return;
	n = srclen;
	if (n > dstlen - 1) {
		n = dstlen - 1;
		/* Do not cut a multi-byte character in two. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)src[i] < 0x20 || src[i] == 0x7f)
			dst[i] = '?';
		else
			dst[i] = src[i];
	}
	dst[n] = '\0';
}

/* Fill err with an error made by the library and return rc. */
static int __attribute__((format(printf, 4, 5)))
wxpush_fail(struct wxpush_error *err, int rc, const char *code,
    const char *fmt, ...)
{
	va_list	ap;
	char	buf[sizeof err->message];

	if (err == NULL)
		return (rc);
	memset(err, 0, sizeof *err);
	wxpush_copy(err->code, sizeof err->code, code, strlen(code));
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	wxpush_copy(err->message, sizeof err->message, buf, strlen(buf));
	err->retryable = (strcmp(code, "connect") == 0);
	return (rc);
}

/* Drop the connection after an error that leaves the stream unusable. */
static void
wxpush_break(struct wxpush *w)
{
	if (w->fd != -1) {
		close(w->fd);
		w->fd = -1;
	}
}

/* The default socket path, from the build. */
const char *
wxpush_default_socket(void)
{
	return (WXPUSH_SOCKET_PATH);
}

/* Connect to the daemon's socket. */
struct wxpush *
wxpush_open(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct wxpush		*w;
	struct pollfd		 pfd;
	const char		*env;
	socklen_t		 sl;
	int			 fd, flags, error, saved;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (path == NULL) {
		env = getenv("WXPUSH_SOCKET");
		path = (env != NULL && *env != '\0') ? env : WXPUSH_SOCKET_PATH;
	}

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (*path == '\0' || strlen(path) >= sizeof sun.sun_path) {
		if (err != NULL)
			snprintf(err, errlen, "bad socket path (empty or longer "
			    "than %zu bytes)", sizeof sun.sun_path - 1);
		return (NULL);
	}
	memcpy(sun.sun_path, path, strlen(path));

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		if (err != NULL)
			snprintf(err, errlen, "socket: %s", strerror(errno));
		return (NULL);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == -1) {
		error = errno;
		if (error == EINTR) {
			/* The connection goes on in the background: wait for it. */
			pfd.fd = fd;
			pfd.events = POLLOUT;
			while (poll(&pfd, 1, WXPUSH_DEFAULT_TIMEOUT) == -1 &&
			    errno == EINTR)
				;
			sl = sizeof error;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error,
			    &sl) == -1)
				error = errno;
		}
		if (error != 0) {
			if (err != NULL)
				snprintf(err, errlen, "cannot connect to %s: "
				    "%s%s", path, strerror(error),
				    (error == ENOENT || error == ECONNREFUSED) ?
				    " (is wxpushd running?)" : "");
			close(fd);
			return (NULL);
		}
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		saved = errno;
		close(fd);
		if (err != NULL)
			snprintf(err, errlen, "fcntl: %s", strerror(saved));
		return (NULL);
	}

	if ((w = calloc(1, sizeof *w)) == NULL) {
		close(fd);
		if (err != NULL)
			snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	w->fd = fd;
	w->timeout = WXPUSH_DEFAULT_TIMEOUT;
	w->scan_need = 1;
	if (!msgpack_unpacker_init(&w->unpacker,
	    MSGPACK_UNPACKER_INIT_BUFFER_SIZE)) {
		close(fd);
		free(w);
		if (err != NULL)
			snprintf(err, errlen, "out of memory");
		return (NULL);
	}
	w->unpacker_ok = 1;
	return (w);
}

/* Close the connection and free it. */
void
wxpush_close(struct wxpush *w)
{
	if (w == NULL)
		return;
	wxpush_break(w);
	if (w->unpacker_ok)
		msgpack_unpacker_destroy(&w->unpacker);
	free(w);
}

/* Set the time allowed for each call. */
void
wxpush_set_timeout(struct wxpush *w, int ms)
{
	if (w != NULL)
		w->timeout = ms;
}

/* Milliseconds left before the deadline: -1 forever, 0 passed. */
static int
wxpush_remaining(const struct wxpush *w, const struct timespec *deadline)
{
	struct timespec	now;
	long long	ms;

	if (w->timeout <= 0)
		return (-1);
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return (0);
	if (ms > INT_MAX)
		return (INT_MAX);
	return ((int)ms);
}

/* Wait until the socket is ready for events; 0 ready, -1 timed out or error. */
static int
wxpush_wait(struct wxpush *w, short events, const struct timespec *deadline,
    struct wxpush_error *err)
{
	struct pollfd	pfd;
	int		ms, n;

	for (;;) {
		if ((ms = wxpush_remaining(w, deadline)) == 0) {
			wxpush_fail(err, WXPUSH_ERR_CONNECT, "timeout",
			    "no answer from wxpushd within %d.%03d s", w->timeout /
			    1000, w->timeout % 1000);
			return (-1);
		}
		pfd.fd = w->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
			    "poll: %s", strerror(errno));
			return (-1);
		}
		/* POLLHUP and POLLERR: let recv/send report what happened. */
		if (n > 0)
			return (0);
	}
}

/* Write all of buf; 0 done, -1 failed (err filled). */
static int
wxpush_write(struct wxpush *w, const char *buf, size_t len,
    const struct timespec *deadline, struct wxpush_error *err)
{
	size_t	off = 0;
	ssize_t	n;

	while (off < len) {
		n = send(w->fd, buf + off, len - off, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (wxpush_wait(w, POLLOUT, deadline, err) != 0)
					return (-1);
				continue;
			}
			if (errno == EPIPE || errno == ECONNRESET) {
				wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
				    "connection closed by wxpushd while "
				    "sending%s", len > WXPUSH_REQUEST_HINT ?
				    " (the request may exceed its max_request)" :
				    "");
			} else {
				wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
				    "send: %s", strerror(errno));
			}
			return (-1);
		}
		off += (size_t)n;
	}
	return (0);
}

/* Read an unsigned big-endian integer of n bytes. */
static uint64_t
wxpush_be(const unsigned char *p, size_t n)
{
	uint64_t	v = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return (v);
}

/*
 * Check how far the frame at the unpacker's read offset is complete, without
 * allocating: 1 complete, 0 more bytes needed, -1 malformed or too large.
 * Every object takes at least one byte, so a frame whose declared elements
 * cannot fit in WXPUSH_MAX_RESPONSE is refused before msgpack-c allocates.
 */
static int
wxpush_scan(struct wxpush *w, const char **why)
{
	const unsigned char	*p;
	size_t			 have, pos, width, fixed;
	uint64_t		 need, n, body, add;
	unsigned char		 c;
	enum { SCALAR, BYTES, ARRAY, MAP } kind;

	p = (const unsigned char *)w->unpacker.buffer + w->unpacker.off;
	have = w->unpacker.used - w->unpacker.off;
	pos = w->scan_pos;
	need = w->scan_need;

	while (need > 0) {
		if (pos >= have)
			break;
		c = p[pos];
		kind = SCALAR;
		width = 0;	/* bytes of the length field */
		fixed = 0;	/* bytes after the tag and length */
		n = 0;
		if (c <= 0x7f || c >= 0xe0)
			;
		else if (c <= 0x8f) {
			kind = MAP;
			n = c & 0x0f;
		} else if (c <= 0x9f) {
			kind = ARRAY;
			n = c & 0x0f;
		} else if (c <= 0xbf) {
			kind = BYTES;
			n = c & 0x1f;
		} else {
			switch (c) {
			case 0xc0: case 0xc2: case 0xc3:
				break;
			case 0xc4: case 0xd9:
				kind = BYTES; width = 1;
				break;
			case 0xc5: case 0xda:
				kind = BYTES; width = 2;
				break;
			case 0xc6: case 0xdb:
				kind = BYTES; width = 4;
				break;
			case 0xc7:
				kind = BYTES; width = 1; fixed = 1;
				break;
			case 0xc8:
				kind = BYTES; width = 2; fixed = 1;
				break;
			case 0xc9:
				kind = BYTES; width = 4; fixed = 1;
				break;
			case 0xcc: case 0xd0:
				fixed = 1;
				break;
			case 0xcd: case 0xd1:
				fixed = 2;
				break;
			case 0xca: case 0xce: case 0xd2:
				fixed = 4;
				break;
			case 0xcb: case 0xcf: case 0xd3:
				fixed = 8;
				break;
			case 0xd4:
				fixed = 2;
				break;
			case 0xd5:
				fixed = 3;
				break;
			case 0xd6:
				fixed = 5;
				break;
			case 0xd7:
				fixed = 9;
				break;
			case 0xd8:
				fixed = 17;
				break;
			case 0xdc:
				kind = ARRAY; width = 2;
				break;
			case 0xdd:
				kind = ARRAY; width = 4;
				break;
			case 0xde:
				kind = MAP; width = 2;
				break;
			case 0xdf:
				kind = MAP; width = 4;
				break;
			default:	/* 0xc1: never used */
				*why = "bytes that are not MessagePack";
				return (-1);
			}
		}
		if (have - pos < 1 + width)
			break;
		if (width != 0)
			n = wxpush_be(p + pos + 1, width);
		body = fixed;
		add = 0;
		if (kind == BYTES)
			body += n;
		else if (kind == ARRAY)
			add = n;
		else if (kind == MAP)
			add = 2 * n;
		if (body > WXPUSH_MAX_RESPONSE ||
		    pos + 1 + width + body > WXPUSH_MAX_RESPONSE) {
			*why = "a response larger than 16 MiB";
			return (-1);
		}
		if (have - pos < 1 + width + body)
			break;
		pos += 1 + width + body;
		need = need - 1 + add;
		if (need > WXPUSH_MAX_RESPONSE - pos) {
			*why = "a response larger than 16 MiB";
			return (-1);
		}
	}
	w->scan_pos = pos;
	w->scan_need = need;
	return (need == 0);
}

/* Read bytes from the socket into the unpacker; 0 got some, -1 failed. */
static int
wxpush_fill(struct wxpush *w, const struct timespec *deadline,
    struct wxpush_error *err)
{
	size_t	want;
	ssize_t	n;

	if (!msgpack_unpacker_reserve_buffer(&w->unpacker, 65536)) {
		wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
		    "out of memory");
		return (-1);
	}
	want = msgpack_unpacker_buffer_capacity(&w->unpacker);
	if (want > WXPUSH_READ_MAX)
		want = WXPUSH_READ_MAX;
	for (;;) {
		n = recv(w->fd, msgpack_unpacker_buffer(&w->unpacker), want, 0);
		if (n > 0)
			break;
		if (n == 0) {
			wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
			    "connection closed by wxpushd%s",
			    w->reqlen > WXPUSH_REQUEST_HINT ? " (the request "
			    "may exceed its max_request)" : "");
			return (-1);
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (wxpush_wait(w, POLLIN, deadline, err) != 0)
				return (-1);
			continue;
		}
		wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect", "recv: %s",
		    strerror(errno));
		return (-1);
	}
	msgpack_unpacker_buffer_consumed(&w->unpacker, (size_t)n);
	return (0);
}

/* Look a key up in a map (keys are str); NULL if absent. */
static const msgpack_object *
wxpush_map_get(const msgpack_object *map, const char *key)
{
	const msgpack_object_kv	*kv;
	size_t			 len = strlen(key);
	uint32_t		 i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	for (i = 0; i < map->via.map.size; i++) {
		kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == len &&
		    memcmp(kv->key.via.str.ptr, key, len) == 0)
			return (&kv->val);
	}
	return (NULL);
}

/* Copy a str object into a buffer if it is one. */
static void
wxpush_copy_obj(char *dst, size_t dstlen, const msgpack_object *o)
{
	if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		wxpush_copy(dst, dstlen, o->via.str.ptr, o->via.str.size);
}

/* An integer object as a long long, clamped; 0 if not a number. */
static long long
wxpush_int_obj(const msgpack_object *o)
{
	double		d;
	long long	v;

	if (o == NULL)
		return (0);
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > LLONG_MAX)
			return (LLONG_MAX);
		return ((long long)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return (o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		d = o->via.f64;
		if (d != d)
			return (0);	/* NaN */
		if (d >= 9e18)
			return (LLONG_MAX);
		if (d <= -9e18)
			return (LLONG_MIN);
		v = (long long)d;
		return ((double)v < d ? v + 1 : v);	/* round up: retry_after */
	default:
		return (0);
	}
}

/* Fill err from the daemon's error object. */
static void
wxpush_error_fill(struct wxpush_error *err, const msgpack_object *e)
{
	const msgpack_object	*o;
	long long		 v;

	if (err == NULL)
		return;
	memset(err, 0, sizeof *err);
	if (e->type != MSGPACK_OBJECT_MAP) {
		/* A str: not our daemon's form, but valid MessagePack-RPC. */
		wxpush_copy(err->code, sizeof err->code, "unknown", 7);
		wxpush_copy_obj(err->message, sizeof err->message, e);
		return;
	}

	wxpush_copy_obj(err->code, sizeof err->code, wxpush_map_get(e, "code"));
	if (err->code[0] == '\0')
		wxpush_copy(err->code, sizeof err->code, "unknown", 7);
	wxpush_copy_obj(err->message, sizeof err->message,
	    wxpush_map_get(e, "message"));
	wxpush_copy_obj(err->field, sizeof err->field,
	    wxpush_map_get(e, "field"));
	wxpush_copy_obj(err->errmsg, sizeof err->errmsg,
	    wxpush_map_get(e, "errmsg"));
	o = wxpush_map_get(e, "retryable");
	if (o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN)
		err->retryable = o->via.boolean;
	else
		err->retryable = (wxpush_int_obj(o) != 0);
	v = wxpush_int_obj(wxpush_map_get(e, "errcode"));
	err->errcode = v > LONG_MAX ? LONG_MAX : v < LONG_MIN ? LONG_MIN : v;
	v = wxpush_int_obj(wxpush_map_get(e, "retry_after"));
	err->retry_after = v > INT_MAX ? INT_MAX : v < 0 ? 0 : (int)v;
}

/*
 * Check one message from the daemon: 1 it is our response, 0 not ours
 * (skip it), -1 it breaks the protocol.
 */
static int
wxpush_check(const msgpack_object *o, uint32_t msgid, const char **why)
{
	const msgpack_object	*a;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1) {
		*why = "a message that is not an array";
		return (-1);
	}
	a = o->via.array.ptr;
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*why = "a message with a bad type";
		return (-1);
	}
	if (a[0].via.u64 == 2 && o->via.array.size == 3)
		return (0);	/* a notification: nothing to answer */
	if (a[0].via.u64 != 1 || o->via.array.size != 4) {
		*why = "a message that is not a response";
		return (-1);
	}
	if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[1].via.u64 > UINT32_MAX) {
		*why = "a response with a bad msgid";
		return (-1);
	}
	if (a[2].type != MSGPACK_OBJECT_NIL && a[2].type != MSGPACK_OBJECT_MAP &&
	    a[2].type != MSGPACK_OBJECT_STR) {
		*why = "a response with a bad error";
		return (-1);
	}
	if (a[3].type != MSGPACK_OBJECT_NIL && a[3].type != MSGPACK_OBJECT_MAP) {
		*why = "a response with a bad result";
		return (-1);
	}
	if (a[1].via.u64 != msgid)
		return (0);	/* an answer to an earlier, timed-out call */
	return (1);
}

/* Call a method and wait for its response. */
int
wxpush_call(struct wxpush *w, const char *method,
    const msgpack_object *params_map, msgpack_unpacked *result,
    struct wxpush_error *err)
{
	msgpack_sbuffer		 sbuf;
	msgpack_packer		 pk;
	msgpack_unpacked	 msg;
	struct timespec		 deadline;
	const char		*why = NULL;
	uint32_t		 msgid;
	int			 r, rc;

	if (result != NULL)
		msgpack_unpacked_init(result);
	if (err != NULL)
		memset(err, 0, sizeof *err);
	if (w == NULL || method == NULL || *method == '\0')
		return (wxpush_fail(err, WXPUSH_ERR_USAGE, "usage",
		    "no connection or no method"));
	if (params_map != NULL && params_map->type != MSGPACK_OBJECT_MAP)
		return (wxpush_fail(err, WXPUSH_ERR_USAGE, "usage",
		    "params must be a map"));
	if (w->fd == -1)
		return (wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
		    "not connected (the connection was lost earlier)"));

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (w->timeout > 0) {
		deadline.tv_sec += w->timeout / 1000;
		deadline.tv_nsec += (long)(w->timeout % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
	}

	msgid = w->msgid++;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	r = msgpack_pack_array(&pk, 4);
	r |= msgpack_pack_uint8(&pk, 0);
	r |= msgpack_pack_uint32(&pk, msgid);
	r |= msgpack_pack_str(&pk, strlen(method));
	r |= msgpack_pack_str_body(&pk, method, strlen(method));
	if (params_map == NULL)
		r |= msgpack_pack_array(&pk, 0);
	else {
		r |= msgpack_pack_array(&pk, 1);
		r |= msgpack_pack_object(&pk, *params_map);
	}
	if (r != 0 || sbuf.data == NULL) {
		msgpack_sbuffer_destroy(&sbuf);
		return (wxpush_fail(err, WXPUSH_ERR_CONNECT, "connect",
		    "out of memory"));
	}
	w->reqlen = sbuf.size;
	r = wxpush_write(w, sbuf.data, sbuf.size, &deadline, err);
	msgpack_sbuffer_destroy(&sbuf);
	if (r != 0) {
		/* Part of a request may be on the wire: the stream is lost. */
		wxpush_break(w);
		return (WXPUSH_ERR_CONNECT);
	}

	msgpack_unpacked_init(&msg);
	for (;;) {
		r = wxpush_scan(w, &why);
		if (r == -1)
			goto protocol;
		if (r == 0) {
			if (wxpush_fill(w, &deadline, err) != 0) {
				/*
				 * After a timeout the stream is intact: a late
				 * answer is skipped by the next call. Otherwise
				 * the connection is gone.
				 */
				if (err == NULL || strcmp(err->code, "timeout") != 0)
					wxpush_break(w);
				/* The request went out: it may have been done. */
				if (err != NULL)
					err->retryable = 0;
				msgpack_unpacked_destroy(&msg);
				return (WXPUSH_ERR_CONNECT);
			}
			continue;
		}

		/* A complete frame: let msgpack-c decode just that. */
		w->scan_pos = 0;
		w->scan_need = 1;
		if (msgpack_unpacker_next(&w->unpacker, &msg) !=
		    MSGPACK_UNPACK_SUCCESS) {
			why = "MessagePack that cannot be decoded";
			goto protocol;
		}
		r = wxpush_check(&msg.data, msgid, &why);
		if (r == -1)
			goto protocol;
		if (r == 1)
			break;
	}

	if (msg.data.via.array.ptr[2].type != MSGPACK_OBJECT_NIL) {
		wxpush_error_fill(err, &msg.data.via.array.ptr[2]);
		rc = WXPUSH_ERR_REFUSED;
	} else
		rc = WXPUSH_OK;
	if (result != NULL)
		*result = msg;
	else
		msgpack_unpacked_destroy(&msg);
	return (rc);

protocol:
	msgpack_unpacked_destroy(&msg);
	wxpush_break(w);
	return (wxpush_fail(err, WXPUSH_ERR_CONNECT, "protocol",
	    "wxpushd sent %s", why));
}

/* The result map of a response, or NULL. */
const msgpack_object *
wxpush_result(const msgpack_unpacked *res)
{
	const msgpack_object	*o;

	if (res == NULL || res->zone == NULL ||
	    res->data.type != MSGPACK_OBJECT_ARRAY ||
	    res->data.via.array.size != 4)
		return (NULL);
	o = &res->data.via.array.ptr[3];
	return (o->type == MSGPACK_OBJECT_MAP ? o : NULL);
}

/* The error object of a response, or NULL. */
const msgpack_object *
wxpush_error_object(const msgpack_unpacked *res)
{
	const msgpack_object	*o;

	if (res == NULL || res->zone == NULL ||
	    res->data.type != MSGPACK_OBJECT_ARRAY ||
	    res->data.via.array.size != 4)
		return (NULL);
	o = &res->data.via.array.ptr[2];
	return (o->type == MSGPACK_OBJECT_NIL ? NULL : o);
}

/* Ask the daemon for its version. */
int
wxpush_ping(struct wxpush *w, char *version, size_t versionlen,
    struct wxpush_error *err)
{
	msgpack_unpacked	res;
	int			rc;

	if (version != NULL && versionlen > 0)
		version[0] = '\0';
	rc = wxpush_call(w, "ping", NULL, &res, err);
	if (rc == WXPUSH_OK && version != NULL)
		wxpush_copy_obj(version, versionlen,
		    wxpush_map_get(wxpush_result(&res), "version"));
	msgpack_unpacked_destroy(&res);
	return (rc);
}

/* Set a map entry with a str key and, if value is not NULL, a str value. */
static void
wxpush_kv(msgpack_object_kv *kv, const char *key, const char *value)
{
	kv->key.type = MSGPACK_OBJECT_STR;
	kv->key.via.str.ptr = key;
	kv->key.via.str.size = (uint32_t)strlen(key);
	if (value != NULL) {
		/* wxpush_send() has checked the length. */
		kv->val.type = MSGPACK_OBJECT_STR;
		kv->val.via.str.ptr = value;
		kv->val.via.str.size = (uint32_t)strlen(value);
	}
}

/* Send a one-time subscription message. */
int
wxpush_send(struct wxpush *w, const struct wxpush_message *m, int *attempts,
    struct wxpush_error *err)
{
	msgpack_object_kv	 kv[10], data[1], content[2], mp[2];
	msgpack_object		 params;
	const char		*fields[11];
	size_t			 i;
	msgpack_unpacked	 res;
	long long		 v;
	uint32_t		 n = 0, nc = 0, nm = 0;
	int			 rc;

	if (attempts != NULL)
		*attempts = 0;
	if (m == NULL || m->appid == NULL)
		return (wxpush_fail(err, WXPUSH_ERR_USAGE, "usage",
		    "no message or no appid"));
	fields[0] = m->appid;
	fields[1] = m->touser;
	fields[2] = m->template_id;
	fields[3] = m->scene;
	fields[4] = m->title;
	fields[5] = m->content;
	fields[6] = m->color;
	fields[7] = m->url;
	fields[8] = m->miniprogram_appid;
	fields[9] = m->miniprogram_pagepath;
	fields[10] = m->idempotency_key;
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		if (fields[i] != NULL && strlen(fields[i]) > WXPUSH_MAX_RESPONSE)
			return (wxpush_fail(err, WXPUSH_ERR_USAGE, "usage",
			    "a message field is too long"));
	}

	/* The strings are the caller's: nothing is copied. */
	memset(kv, 0, sizeof kv);
	memset(data, 0, sizeof data);
	memset(content, 0, sizeof content);
	memset(mp, 0, sizeof mp);
	wxpush_kv(&kv[n++], "appid", m->appid);
	if (m->touser != NULL)
		wxpush_kv(&kv[n++], "touser", m->touser);
	if (m->template_id != NULL)
		wxpush_kv(&kv[n++], "template_id", m->template_id);
	if (m->scene != NULL)
		wxpush_kv(&kv[n++], "scene", m->scene);
	if (m->title != NULL)
		wxpush_kv(&kv[n++], "title", m->title);
	if (m->content != NULL)
		wxpush_kv(&content[nc++], "value", m->content);
	if (m->color != NULL)
		wxpush_kv(&content[nc++], "color", m->color);
	if (nc > 0) {
		wxpush_kv(&data[0], "content", NULL);
		data[0].val.type = MSGPACK_OBJECT_MAP;
		data[0].val.via.map.ptr = content;
		data[0].val.via.map.size = nc;
		wxpush_kv(&kv[n], "data", NULL);
		kv[n].val.type = MSGPACK_OBJECT_MAP;
		kv[n].val.via.map.ptr = data;
		kv[n].val.via.map.size = 1;
		n++;
	}
	if (m->url != NULL)
		wxpush_kv(&kv[n++], "url", m->url);
	if (m->miniprogram_appid != NULL)
		wxpush_kv(&mp[nm++], "appid", m->miniprogram_appid);
	if (m->miniprogram_pagepath != NULL)
		wxpush_kv(&mp[nm++], "pagepath", m->miniprogram_pagepath);
	if (nm > 0) {
		wxpush_kv(&kv[n], "miniprogram", NULL);
		kv[n].val.type = MSGPACK_OBJECT_MAP;
		kv[n].val.via.map.ptr = mp;
		kv[n].val.via.map.size = nm;
		n++;
	}
	if (m->idempotency_key != NULL)
		wxpush_kv(&kv[n++], "idempotency_key", m->idempotency_key);

	params.type = MSGPACK_OBJECT_MAP;
	params.via.map.ptr = kv;
	params.via.map.size = n;
	rc = wxpush_call(w, "send", &params, &res, err);
	if (rc == WXPUSH_OK && attempts != NULL) {
		v = wxpush_int_obj(wxpush_map_get(wxpush_result(&res),
		    "attempts"));
		*attempts = v < 0 ? 0 : v > INT_MAX ? INT_MAX : (int)v;
	}
	msgpack_unpacked_destroy(&res);
	return (rc);
}
