/* libFuzzer target for message.c: hostile send params, as MessagePack. */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "wxpushd.h"

#define FUZZ_MESSAGE_MAX	65536	/* the daemon's default max_request */

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Whether s is one line of printable ASCII, as an error message must be. */
static int
fuzz_message_line(const char *s)
{
	if (s == NULL || *s == '\0')
		return (0);
	for (; *s != '\0'; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return (0);
	}
	return (1);
}

/* Parse params; a body must read back as JSON and dump to the same bytes. */
static void
fuzz_message_one(const msgpack_object *params)
{
	struct message		 msg;
	struct rpc_error	 err;
	json_t			*j;
	char			*again;

	memset(&err, 0, sizeof err);
	if (message_parse(params, &msg, &err) != 0) {
		if (err.code == NULL ||
		    strcmp(err.code, "invalid_request") != 0 || err.retryable ||
		    !fuzz_message_line(err.field) ||
		    !fuzz_message_line(err.message) || msg.json != NULL ||
		    msg.idempotency_key != NULL || msg.len != 0)
			abort();
		message_free(&msg);
		return;
	}
	if (msg.json == NULL || strlen(msg.json) != msg.len ||
	    msg.appid[0] == '\0')
		abort();
	if ((j = json_loadb(msg.json, msg.len, 0, NULL)) == NULL ||
	    !json_is_string(json_object_get(j, "scene")) ||
	    !json_is_string(json_object_get(j, "title")) ||
	    json_object_get(j, "appid") != NULL ||
	    json_object_get(j, "idempotency_key") != NULL)
		abort();
	again = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (again == NULL || strcmp(again, msg.json) != 0)
		abort();
	free(again);
	json_decref(j);
	message_free(&msg);
	if (msg.json != NULL || msg.idempotency_key != NULL)
		abort();
}

/* Decode the input as one MessagePack object and treat it as send params. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static msgpack_zone	*zone;
	msgpack_object		 o;
	size_t			 objlen, off = 0;

	if (size > FUZZ_MESSAGE_MAX)
		return (0);
	/* msgpack-c allocates for declared sizes: let rpc_scan refuse them. */
	if (rpc_scan(data, size, size, &objlen) != RPC_SCAN_OK)
		return (0);
	if (zone == NULL && (zone = msgpack_zone_new(8192)) == NULL)
		abort();
	if (msgpack_unpack((const char *)data, objlen, &off, zone, &o) ==
	    MSGPACK_UNPACK_SUCCESS) {
		fuzz_message_one(&o);
		/* The RPC shape: params is an array holding one map. */
		if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 1)
			fuzz_message_one(&o.via.array.ptr[0]);
	}
	msgpack_zone_clear(zone);
	return (0);
}
