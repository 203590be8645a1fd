/*
 * libFuzzer target for rpc.c: the input is a client's byte stream, framed by
 * rpc_scan and decoded by rpc_decode as server.c and rpc_input do, with the
 * framer checked against msgpack-c on every frame.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"

#define FUZZ_RPC_LIMIT	65536	/* the daemon's default max_request */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Answer a decoded request as rpc_input would, but with nobody listening. */
static void
fuzz_rpc_reply(const struct rpc_decoded *d)
{
	struct request		*req;
	struct message		 msg;
	struct rpc_error	 err;

	req = xcalloc(1, sizeof *req);	/* client NULL: packed to nowhere */
	req->notify = d->notify;
	req->msgid = d->msgid;
	if (d->bad_field != NULL) {
		rpc_reply_errorx(req, "invalid_request", 0, d->bad_field, "%s",
		    d->bad_message);
		return;
	}
	if (method_find(d->method, d->methodlen) == NULL) {
		if (rpc_printable(d->method, d->methodlen, 64))
			rpc_reply_errorx(req, "unknown_method", 0, NULL,
			    "no method '%.*s'", (int)d->methodlen, d->method);
		else
			rpc_reply_errorx(req, "unknown_method", 0, NULL,
			    "no such method");
		return;
	}
	/* Methods need a daemon; send's validation does not. */
	if (d->methodlen == 4 && memcmp(d->method, "send", 4) == 0) {
		memset(&err, 0, sizeof err);
		if (message_parse(d->params, &msg, &err) == 0)
			message_free(&msg);
		else if (err.code == NULL || err.message == NULL)
			abort();
	}
	free(req);
}

/* Check what rpc_decode says about a frame that rpc_scan accepted. */
static void
fuzz_rpc_frame(msgpack_zone *zone, const unsigned char *p, size_t len)
{
	struct rpc_decoded	 d;
	msgpack_object		 o;
	size_t			 off = 0;

	/* A frame rpc_scan accepts is exactly one object to msgpack-c. */
	if (msgpack_unpack((const char *)p, len, &off, zone, &o) !=
	    MSGPACK_UNPACK_SUCCESS || off != len)
		abort();
	msgpack_zone_clear(zone);

	if (rpc_decode(zone, p, len, &d) == 0) {
		if ((d.bad_field == NULL) != (d.bad_message == NULL))
			abort();
		if (d.notify && d.msgid != 0)
			abort();
		if (d.bad_field == NULL && (d.method == NULL ||
		    (d.params != NULL && d.params->type != MSGPACK_OBJECT_MAP)))
			abort();
		if (d.bad_field != NULL && strcmp(d.bad_field, "method") != 0 &&
		    strcmp(d.bad_field, "params") != 0)
			abort();
		fuzz_rpc_reply(&d);
	}
	msgpack_zone_clear(zone);
}

/* Frame and decode the input as one client connection's bytes. */
/*
 * server.c scans a frame as its bytes arrive, resuming each time: fed in
 * pieces (cut where the data says), the scan must end as a whole scan does.
 */
static void
fuzz_rpc_resume(const uint8_t *data, size_t n)
{
	struct rpc_scan_state	 st;
	enum rpc_scan		 whole, rc = RPC_SCAN_MORE;
	size_t			 len1 = 0, len2 = 0, have, step;

	whole = rpc_scan(data, n, FUZZ_RPC_LIMIT, &len1);
	rpc_scan_reset(&st);
	step = n > 0 ? 1 + data[0] % 7 : 1;
	for (have = step < n ? step : n; ; have += step) {
		if (have > n)
			have = n;
		rc = rpc_scan_more(&st, data, have, FUZZ_RPC_LIMIT,
		    RPC_MAX_OBJECTS(FUZZ_RPC_LIMIT), &len2);
		if (rc != RPC_SCAN_MORE || have == n)
			break;
	}
	if (rc != whole || (rc == RPC_SCAN_OK && len1 != len2))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone	*zone;
	msgpack_object		 o;
	size_t			 n, objlen, off;
	int			 rc;

	if (zone == NULL && (zone = msgpack_zone_new(8192)) == NULL)
		abort();
	while (size > 0) {
		/* server.c looks at no more than the limit at once. */
		n = size > FUZZ_RPC_LIMIT ? FUZZ_RPC_LIMIT : size;
		objlen = 0;
		fuzz_rpc_resume(data, n);
		switch (rpc_scan(data, n, FUZZ_RPC_LIMIT, &objlen)) {
		case RPC_SCAN_OK:
			if (objlen == 0 || objlen > n)
				abort();
			fuzz_rpc_frame(zone, data, objlen);
			data += objlen;
			size -= objlen;
			break;
		case RPC_SCAN_MORE:
			/*
			 * Every size seen so far was within the limit, so
			 * msgpack-c may look: it must want more bytes too.
			 */
			if (n >= FUZZ_RPC_LIMIT)
				abort();
			off = 0;
			rc = msgpack_unpack((const char *)data, n, &off, zone,
			    &o);
			msgpack_zone_clear(zone);
			if (rc != MSGPACK_UNPACK_CONTINUE)
				abort();
			return (0);
		case RPC_SCAN_BAD:
			/* The server closes: msgpack-c never sees it. */
			return (0);
		default:
			abort();
		}
	}
	return (0);
}
