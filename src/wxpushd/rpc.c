/*
 * MessagePack-RPC: finding frame boundaries without allocating, decoding one
 * request, and packing replies straight into the client's output buffer.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

/*
 * Freed requests kept for reuse (as send.c keeps sends); none under
 * AddressSanitizer, which must see every free.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RPC_POOL_MAX		0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RPC_POOL_MAX		0
#endif
#endif
#ifndef RPC_POOL_MAX
#define RPC_POOL_MAX		1024
#endif

/* The longest unknown key quoted back in an error. */
#define RPC_KEY_QUOTE_MAX	32

/* Decoded requests live in this zone only until their method returns. */
static msgpack_zone	*rpc_zone;
uint64_t		 rpc_requests;
/* Registered by the layers above, so that rpc.c calls none of them by name. */
static const struct method	*(*rpc_find)(const char *, size_t);
static void			 (*rpc_done)(struct client *);
/* Freed requests, linked through entry. */
static TAILQ_HEAD(, request)	 rpc_pool = TAILQ_HEAD_INITIALIZER(rpc_pool);
static int			 rpc_npool;	/* int: the max may be 0 */

/*
 * The method table (method.c) and the client's output hook (server.c), called
 * once output for the client has been packed or is about to be.
 */
void
rpc_init(const struct method *(*find)(const char *, size_t),
    void (*done)(struct client *))
{
	rpc_find = find;
	rpc_done = done;
}

/* Whether p[0..n) is short printable ASCII, safe to quote in a message or log. */
int
rpc_printable(const char *p, size_t n, size_t max)
{
	size_t i;

	if (n > max)
		return (0);
	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e)
			return (0);
	}
	return (1);
}

/* Whether o is a string equal to s. */
int
rpc_str_eq(const msgpack_object *o, const char *s)
{
	size_t n = strlen(s);

	return (o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
	    memcmp(o->via.str.ptr, s, n) == 0);
}

/* The value of key in map m, or NULL (m need not be a map). */
const msgpack_object *
rpc_map_get(const msgpack_object *m, const char *key)
{
	uint32_t i;

	if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
		return (NULL);
	for (i = 0; i < m->via.map.size; i++) {
		if (rpc_str_eq(&m->via.map.ptr[i].key, key))
			return (&m->via.map.ptr[i].val);
	}
	return (NULL);
}

/*
 * Check that params (NULL, or a map) has only string keys, each one of the
 * n names, and none twice. Returns 0, or -1 after answering invalid_request
 * with the offending key as the field when it is printable.
 */
int
rpc_params_check(struct request *req, const msgpack_object *params,
    const char *const *names, size_t n)
{
	const msgpack_object	*k;
	char			 key[RPC_KEY_QUOTE_MAX + 1];
	uint32_t		 i, l;
	size_t			 j;

	if (params == NULL)
		return (0);
	if (params->type != MSGPACK_OBJECT_MAP) {
		rpc_reply_errorx(req, "invalid_request", 0, "params",
		    "params must be a map");
		return (-1);
	}
	for (i = 0; i < params->via.map.size; i++) {
		k = &params->via.map.ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR) {
			rpc_reply_errorx(req, "invalid_request", 0, "params",
			    "params has a key that is not a string");
			return (-1);
		}
		for (j = 0; j < n; j++) {
			if (rpc_str_eq(k, names[j]))
				break;
		}
		if (j == n) {
			if (k->via.str.size == 0 || !rpc_printable(
			    k->via.str.ptr, k->via.str.size,
			    RPC_KEY_QUOTE_MAX)) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    "params", "params has an unknown field "
				    "(its name is empty, long or not "
				    "printable)");
				return (-1);
			}
			memcpy(key, k->via.str.ptr, k->via.str.size);
			key[k->via.str.size] = '\0';
			rpc_reply_errorx(req, "invalid_request", 0, key,
			    "unknown field '%s'", key);
			return (-1);
		}
		for (l = 0; l < i; l++) {
			if (rpc_str_eq(&params->via.map.ptr[l].key,
			    names[j])) {
				rpc_reply_errorx(req, "invalid_request", 0,
				    names[j], "duplicate field '%s'",
				    names[j]);
				return (-1);
			}
		}
	}
	return (0);
}

static int
rpc_write_evbuffer(void *data, const char *buf, size_t len)
{
	return (evbuffer_add(data, buf, len));
}

static int
rpc_write_null(void *data, const char *buf, size_t len)
{
	(void)data;
	(void)buf;
	(void)len;
	return (0);
}

/* Per-reply packer: into the client's output, or nowhere if nobody listens. */
static msgpack_packer	rpc_pk;

static msgpack_packer *
rpc_packer(struct request *req)
{
	if (req->client == NULL || req->notify || req->client->bev == NULL)
		msgpack_packer_init(&rpc_pk, NULL, rpc_write_null);
	else
		msgpack_packer_init(&rpc_pk,
		    bufferevent_get_output(req->client->bev), rpc_write_evbuffer);
	return (&rpc_pk);
}

/*
 * Begin a notification [2, method, params] to client c, params an array of
 * nparams that the caller packs into the returned packer.
 */
msgpack_packer *
rpc_notify_begin(struct client *c, const char *method, size_t nparams)
{
	msgpack_packer *pk = &rpc_pk;

	msgpack_packer_init(pk, bufferevent_get_output(c->bev),
	    rpc_write_evbuffer);
	/* Only schedules the write: the caller packs the params first. */
	if (rpc_done != NULL)
		rpc_done(c);
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint8(pk, 2);
	rpc_pack_str(pk, method);
	msgpack_pack_array(pk, nparams);
	return (pk);
}

void
rpc_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void
rpc_pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
	rpc_pack_str(pk, k);
	if (v == NULL)
		msgpack_pack_nil(pk);
	else
		rpc_pack_str(pk, v);
}

void
rpc_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
	rpc_pack_str(pk, k);
	msgpack_pack_int64(pk, v);
}

void
rpc_pack_kv_bool(msgpack_packer *pk, const char *k, int v)
{
	rpc_pack_str(pk, k);
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* Free a request whose reply has been packed, and tell its client. */
static void
rpc_request_free(struct request *req)
{
	struct client *c = req->client;

	if (c != NULL) {
		TAILQ_REMOVE(&c->requests, req, entry);
		c->nrequests--;
	}
	if (rpc_npool < RPC_POOL_MAX) {
		TAILQ_INSERT_HEAD(&rpc_pool, req, entry);
		rpc_npool++;
	} else
		free(req);
	if (c != NULL && rpc_done != NULL)
		rpc_done(c);
}

/*
 * Start a successful reply: [1, msgid, nil, {nfields pairs}]. The caller packs
 * exactly nfields key/value pairs into the returned packer, then calls rpc_reply_end.
 */
msgpack_packer *
rpc_reply_begin(struct request *req, size_t nfields)
{
	msgpack_packer *pk = rpc_packer(req);

	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint32(pk, req->msgid);
	msgpack_pack_nil(pk);
	msgpack_pack_map(pk, nfields);
	return (pk);
}

void
rpc_reply_end(struct request *req)
{
	rpc_request_free(req);
}

/* Reply with an error map; see docs/protocol.md for the fields. */
void
rpc_reply_error(struct request *req, const struct rpc_error *e)
{
	msgpack_packer *pk = rpc_packer(req);
	size_t n = 3;

	n += (e->field != NULL) + (e->errcode != 0) * 2 + (e->retry_after > 0);
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint32(pk, req->msgid);
	msgpack_pack_map(pk, n);
	rpc_pack_kv_str(pk, "code", e->code);
	rpc_pack_kv_str(pk, "message", e->message);
	rpc_pack_kv_bool(pk, "retryable", e->retryable);
	if (e->field != NULL)
		rpc_pack_kv_str(pk, "field", e->field);
	if (e->errcode != 0) {
		rpc_pack_kv_int(pk, "errcode", e->errcode);
		rpc_pack_kv_str(pk, "errmsg", e->errmsg != NULL ? e->errmsg : "");
	}
	if (e->retry_after > 0)
		rpc_pack_kv_int(pk, "retry_after", e->retry_after);
	msgpack_pack_nil(pk);
	rpc_request_free(req);
}

/* Reply with an error built from a code, retryability, field and message. */
void
rpc_reply_errorx(struct request *req, const char *code, int retryable,
    const char *field, const char *fmt, ...)
{
	struct rpc_error e;
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memset(&e, 0, sizeof e);
	e.code = code;
	e.message = msg;
	e.retryable = retryable;
	e.field = field;
	rpc_reply_error(req, &e);
}

/*
 * Decode one complete frame into d, with its objects in zone: the envelope,
 * the msgid, the method name and the params map. Returns -1 if the frame is not
 * MessagePack-RPC at all, and the connection must close; a well-formed request
 * with bad content returns 0 with d->bad_field and d->bad_message set, for an
 * invalid_request reply. Touches nothing but zone and d.
 */
int
rpc_decode(msgpack_zone *zone, const unsigned char *frame, size_t len,
    struct rpc_decoded *d)
{
	msgpack_object		 o;
	const msgpack_object	*a;
	size_t			 off = 0;
	uint64_t		 type;

	memset(d, 0, sizeof *d);
	if (msgpack_unpack((const char *)frame, len, &off, zone, &o) !=
	    MSGPACK_UNPACK_SUCCESS || off != len)
		return (-1);
	if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 3 ||
	    o.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (-1);
	a = o.via.array.ptr;
	type = a[0].via.u64;
	if (type == 0 && o.via.array.size == 4)
		d->notify = 0;
	else if (type == 2 && o.via.array.size == 3)
		d->notify = 1;
	else
		return (-1);
	if (!d->notify && (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[1].via.u64 > UINT32_MAX))
		return (-1);
	d->msgid = d->notify ? 0 : (uint32_t)a[1].via.u64;

	a = d->notify ? a + 1 : a + 2;	/* a[0] method, a[1] params */
	if (a[0].type != MSGPACK_OBJECT_STR) {
		d->bad_field = "method";
		d->bad_message = "method must be a string";
		return (0);
	}
	if (a[1].type == MSGPACK_OBJECT_ARRAY && a[1].via.array.size == 1 &&
	    a[1].via.array.ptr[0].type == MSGPACK_OBJECT_MAP)
		d->params = &a[1].via.array.ptr[0];
	else if (a[1].type == MSGPACK_OBJECT_ARRAY && a[1].via.array.size == 0)
		d->params = NULL;
	else if (a[1].type == MSGPACK_OBJECT_ARRAY && a[1].via.array.size == 1 &&
	    a[1].via.array.ptr[0].type == MSGPACK_OBJECT_NIL)
		d->params = NULL;
	else {
		d->bad_field = "params";
		d->bad_message = "params must be an array holding one map";
		return (0);
	}
	/* msgpack-c gives an empty string a NULL pointer. */
	d->method = a[0].via.str.size != 0 ? a[0].via.str.ptr : "";
	d->methodlen = a[0].via.str.size;
	return (0);
}

/*
 * Decode and dispatch one complete frame from client c. Returns -1 if the frame is
 * not MessagePack-RPC at all, and the connection must close; a well-formed request
 * with bad content gets an error reply instead.
 */
int
rpc_input(struct client *c, const unsigned char *frame, size_t len)
{
	struct rpc_decoded	 d;
	const struct method	*m;
	struct request		*req;

	if (rpc_zone == NULL)
		rpc_zone = msgpack_zone_new(8192);
	if (rpc_decode(rpc_zone, frame, len, &d) == -1) {
		msgpack_zone_clear(rpc_zone);
		return (-1);
	}

	rpc_requests++;
	if ((req = TAILQ_FIRST(&rpc_pool)) != NULL) {
		TAILQ_REMOVE(&rpc_pool, req, entry);
		rpc_npool--;
		memset(req, 0, sizeof *req);
	} else
		req = xcalloc(1, sizeof *req);
	req->client = c;
	req->notify = d.notify;
	req->msgid = d.msgid;
	TAILQ_INSERT_TAIL(&c->requests, req, entry);
	c->nrequests++;

	if (d.bad_field != NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, d.bad_field, "%s",
		    d.bad_message);
		goto done;
	}
	if (rpc_find == NULL ||
	    (m = rpc_find(d.method, d.methodlen)) == NULL) {
		if (rpc_printable(d.method, d.methodlen, 64))
			rpc_reply_errorx(req, "unknown_method", 0, NULL,
			    "no method '%.*s'", (int)d.methodlen, d.method);
		else
			rpc_reply_errorx(req, "unknown_method", 0, NULL,
			    "no such method");
		goto done;
	}
	req->method = m;
	m->fn(req, d.params);
done:
	msgpack_zone_clear(rpc_zone);
	return (0);
}

/* Free the decoding zone at exit (keeps leak checkers quiet). */
void
rpc_shutdown(void)
{
	if (rpc_zone != NULL)
		msgpack_zone_free(rpc_zone);
	rpc_zone = NULL;
}
