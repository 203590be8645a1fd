/*
 * rpc_scan: frame boundaries and the refusal of headers that over-declare;
 * rpc_decode: the request envelope; rpc_printable.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "wxpushd.h"
#include "tap.h"

static enum rpc_scan
scan_hex(const char *hex, size_t limit, size_t *objlen)
{
	unsigned char buf[256];
	size_t n = 0;
	unsigned int b;

	while (hex[0] != '\0' && hex[1] != '\0' && n < sizeof buf) {
		if (hex[0] == ' ') {
			hex++;
			continue;
		}
		sscanf(hex, "%2x", &b);
		buf[n++] = (unsigned char)b;
		hex += 2;
	}
	return (rpc_scan(buf, n, limit, objlen));
}

/* A frame of n positive fixints in an array32, packed into *sb. */
static void
pack_ints(msgpack_sbuffer *sb, size_t n, int nil)
{
	msgpack_packer	pk;
	size_t		i;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str_with_body(&pk, "ping", 4);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, (uint32_t)n);
	for (i = 0; i < n; i++) {
		if (nil)
			msgpack_pack_nil(&pk);
		else
			msgpack_pack_uint8(&pk, 1);
	}
}

/*
 * rpc_scan_more goes on where it stopped: fed a byte at a time it finds the
 * same end as a whole scan, and never walks an object twice (its position
 * only moves forward, to the last whole object before the bytes end).
 */
static void
test_resume(void)
{
	struct rpc_scan_state	 st;
	msgpack_sbuffer		 sb;
	size_t			 len = 0, whole = 0, i, lastpos = 0;
	enum rpc_scan		 rc = RPC_SCAN_MORE;
	int			 forward = 1, cut_ok = 1;
	const unsigned char	*p;

	pack_ints(&sb, 1000, 0);
	p = (const unsigned char *)sb.data;
	is_int(rpc_scan(p, sb.size, 65536, &whole), RPC_SCAN_OK, "1000 ints whole");
	rpc_scan_reset(&st);
	for (i = 1; i <= sb.size; i++) {
		rc = rpc_scan_more(&st, p, i, 65536, RPC_MAX_OBJECTS(65536),
		    &len);
		if (rc != (i == sb.size ? RPC_SCAN_OK : RPC_SCAN_MORE))
			break;
		if (st.pos < lastpos)
			forward = 0;
		/* Every byte but a cut object's is behind the position. */
		if (rc == RPC_SCAN_MORE && i > 16 && st.pos + 1 < i)
			cut_ok = 0;
		lastpos = st.pos;
	}
	is_int(rc, RPC_SCAN_OK, "fed a byte at a time, the frame ends");
	is_int(len, whole, "at the same length as a whole scan");
	ok(forward && cut_ok, "the scan resumes where it stopped: nothing is "
	    "walked twice");
	msgpack_sbuffer_destroy(&sb);

	/* A long string cut in its payload is resumed at its header. */
	msgpack_sbuffer_init(&sb);
	{
		msgpack_packer	pk;
		char		s[3000];

		memset(s, 'y', sizeof s);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 2);
		msgpack_pack_uint8(&pk, 7);
		msgpack_pack_str_with_body(&pk, s, sizeof s);
	}
	p = (const unsigned char *)sb.data;
	rpc_scan_reset(&st);
	is_int(rpc_scan_more(&st, p, 100, 65536, 100, &len), RPC_SCAN_MORE,
	    "a string cut in its payload asks for more");
	is_int(st.pos, 2, "the position is at the string's header");
	is_int(rpc_scan_more(&st, p, sb.size, 65536, 100, &len), RPC_SCAN_OK,
	    "and the rest completes it");
	is_int(len, sb.size, "to its size");
	msgpack_sbuffer_destroy(&sb);
}

/* RPC_MAX_OBJECTS: a frame of many tiny objects is refused before decoding. */
static void
test_objects(void)
{
	msgpack_sbuffer	sb;
	size_t		len;
	size_t		limit = 1024 * 1024;

	pack_ints(&sb, limit / 16, 1);
	is_int(rpc_scan((unsigned char *)sb.data, sb.size, limit, &len),
	    RPC_SCAN_OK, "limit/16 nils in a frame are accepted");
	msgpack_sbuffer_destroy(&sb);
	pack_ints(&sb, limit / 16 + 64, 1);
	is_int(rpc_scan((unsigned char *)sb.data, sb.size, limit, &len),
	    RPC_SCAN_BAD, "limit/16 + 64 nils (past RPC_MAX_OBJECTS with the "
	    "envelope) are refused");
	is_int(rpc_scan((unsigned char *)sb.data, 70000, limit, &len),
	    RPC_SCAN_BAD, "refused as soon as the count passes, before the "
	    "frame is complete");
	msgpack_sbuffer_destroy(&sb);
}

/* Decode a hex frame with rpc_decode into d (valid until the next call). */
static int
decode_hex(const char *hex, msgpack_zone *zone, struct rpc_decoded *d)
{
	static unsigned char buf[256];	/* d's strings point into it */
	size_t n = 0;
	unsigned int b;

	while (hex[0] != '\0' && hex[1] != '\0' && n < sizeof buf) {
		if (hex[0] == ' ') {
			hex++;
			continue;
		}
		sscanf(hex, "%2x", &b);
		buf[n++] = (unsigned char)b;
		hex += 2;
	}
	msgpack_zone_clear(zone);
	return (rpc_decode(zone, buf, n, d));
}

/* The envelope: [0, msgid, method, params] or [2, method, params]. */
static void
test_decode(void)
{
	msgpack_zone *zone = msgpack_zone_new(4096);
	struct rpc_decoded d;

	/* [0, 4294967295, "ping", []] */
	is_int(decode_hex("94 00 ce ff ff ff ff a4 70 69 6e 67 90", zone, &d), 0,
	    "msgid 2^32-1 is accepted");
	ok(d.msgid == 4294967295U && !d.notify && d.bad_field == NULL &&
	    d.methodlen == 4 && memcmp(d.method, "ping", 4) == 0 &&
	    d.params == NULL, "and decoded whole");
	/* [0, 4294967296, "ping", []] */
	is_int(decode_hex("94 00 cf 00 00 00 01 00 00 00 00 a4 70 69 6e 67 90",
	    zone, &d), -1, "msgid 2^32 is refused, not truncated");
	/* [2, "ping", []] and [2, 7, "ping", []] */
	is_int(decode_hex("93 02 a4 70 69 6e 67 90", zone, &d), 0,
	    "a notification of three elements");
	ok(d.notify && d.msgid == 0, "is a notification");
	is_int(decode_hex("94 02 07 a4 70 69 6e 67 90", zone, &d), -1,
	    "a notification of four elements is refused");
	/* [0, 1, "send", [{}]] */
	is_int(decode_hex("94 00 01 a4 73 65 6e 64 91 80", zone, &d), 0,
	    "params of one map");
	ok(d.params != NULL && d.params->type == MSGPACK_OBJECT_MAP &&
	    d.bad_field == NULL, "give the map");
	/* [0, 1, "send", [{}, {}]] */
	is_int(decode_hex("94 00 01 a4 73 65 6e 64 92 80 80", zone, &d), 0,
	    "params of two maps decode");
	ok(d.bad_field != NULL && strcmp(d.bad_field, "params") == 0 &&
	    d.params == NULL, "but are an invalid request on params");
	/* [0, 1, 5, []] */
	is_int(decode_hex("94 00 01 05 90", zone, &d), 0,
	    "a method that is not a string decodes");
	ok(d.bad_field != NULL && strcmp(d.bad_field, "method") == 0,
	    "but is an invalid request on method");
	/* [1, 1, "ping", []]: a response is not a request. */
	is_int(decode_hex("94 01 01 a4 70 69 6e 67 90", zone, &d), -1,
	    "a response is refused");
	msgpack_zone_free(zone);
}

/* What may be quoted back to a peer: printable ASCII only, bounded. */
static void
test_printable(void)
{
	ok(rpc_printable("send", 4, 64), "a method name is printable");
	ok(rpc_printable("~ !", 3, 64), "space and tilde are printable");
	ok(!rpc_printable("a\x7f", 2, 64), "DEL is not printable");
	ok(!rpc_printable("a\x80", 2, 64), "a byte over 0x7e is not printable");
	ok(!rpc_printable("a\nb", 3, 64), "a newline is not printable");
	ok(rpc_printable("abcd", 4, 4) && !rpc_printable("abcde", 5, 4),
	    "the bound is inclusive");
}

int
main(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t len = 0, i;
	unsigned char *big;

	/* [0, 1, "ping", []] */
	is_int(scan_hex("94 00 01 a4 70 69 6e 67 90", 1024, &len), RPC_SCAN_OK,
	    "a ping request is one complete object");
	is_int(len, 9, "its length is 9 bytes");
	is_int(scan_hex("94 00 01 a4 70 69", 1024, &len), RPC_SCAN_MORE,
	    "a truncated request asks for more");
	is_int(scan_hex("94 00 01 a4 70 69 6e 67 90 94 00", 1024, &len),
	    RPC_SCAN_OK, "a request followed by the start of another");
	is_int(len, 9, "only the first is counted");
	is_int(scan_hex("dd ff ff ff ff", 65536, &len), RPC_SCAN_BAD,
	    "array32 declaring 4 billion elements is refused at once");
	is_int(scan_hex("df ff ff ff ff", 65536, &len), RPC_SCAN_BAD,
	    "map32 declaring 4 billion pairs is refused at once");
	is_int(scan_hex("db 00 01 00 00", 65536, &len), RPC_SCAN_BAD,
	    "a str32 longer than the limit is refused before its bytes arrive");
	is_int(scan_hex("dc 00 10", 8, &len), RPC_SCAN_BAD,
	    "an array16 of 16 elements cannot fit in 8 bytes");
	is_int(scan_hex("c1", 1024, &len), RPC_SCAN_BAD,
	    "the never-used byte 0xc1 is refused");
	is_int(scan_hex("91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 00",
	    1024, &len), RPC_SCAN_BAD, "nesting deeper than RPC_MAX_DEPTH is refused");
	is_int(scan_hex("91 91 91 91 00", 1024, &len), RPC_SCAN_OK,
	    "shallow nesting is fine");
	/* RPC_MAX_DEPTH (16) arrays deep is the most; one more is refused. */
	is_int(scan_hex("91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 00",
	    1024, &len), RPC_SCAN_OK, "nesting of exactly RPC_MAX_DEPTH is fine");
	is_int(len, 17, "its length");
	is_int(scan_hex("91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 91 00",
	    1024, &len), RPC_SCAN_BAD, "nesting of RPC_MAX_DEPTH + 1 is refused");
	/* [[0], ...]: the limit is used up and an element is still due. */
	is_int(scan_hex("92 91 00", 3, &len), RPC_SCAN_BAD,
	    "an object still incomplete at the limit is refused, not waited for");
	is_int(scan_hex("92 91 00", 4, &len), RPC_SCAN_MORE,
	    "with one byte of room left it waits");
	/* map16 {"a": 1, "b": 2}: two pairs are four objects. */
	is_int(scan_hex("de 00 02 a1 61 01 a1 62 02", 1024, &len), RPC_SCAN_OK,
	    "a map16 of two pairs");
	is_int(len, 9, "ends after its fourth object");
	is_int(scan_hex("de 00 02 a1 61 01 a1 62", 1024, &len), RPC_SCAN_MORE,
	    "a map16 missing its last value asks for more");
	is_int(scan_hex("d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00", 1024,
	    &len), RPC_SCAN_OK, "fixext16 is 18 bytes");
	is_int(len, 18, "fixext16 length");
	is_int(scan_hex("c7 02 05 aa bb", 1024, &len), RPC_SCAN_OK, "ext8");
	is_int(len, 5, "ext8 length");
	is_int(scan_hex("cb 00 00 00 00 00 00 00", 1024, &len), RPC_SCAN_MORE,
	    "a float64 missing a byte asks for more");
	is_int(scan_hex("90", 1024, &len), RPC_SCAN_OK, "an empty array");
	is_int(scan_hex("80", 1024, &len), RPC_SCAN_OK, "an empty map");

	/* A real packed request with a map of strings, scanned whole and in every prefix. */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint8(&pk, 0);
	msgpack_pack_uint32(&pk, 4000000000u);
	msgpack_pack_str_with_body(&pk, "send", 4);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "appid", 5);
	msgpack_pack_str_with_body(&pk, "wx1234567890abcdef", 18);
	msgpack_pack_str_with_body(&pk, "title", 5);
	big = calloc(1, 300);
	memset(big, 'x', 300);
	msgpack_pack_str_with_body(&pk, big, 300);
	is_int(rpc_scan((unsigned char *)sb.data, sb.size, 65536, &len), RPC_SCAN_OK,
	    "a packed send request scans");
	is_int(len, sb.size, "to its exact size");
	for (i = 0; i < sb.size; i++) {
		if (rpc_scan((unsigned char *)sb.data, i, 65536, &len) != RPC_SCAN_MORE)
			break;
	}
	is_int(i, sb.size, "every proper prefix asks for more");
	is_int(rpc_scan((unsigned char *)sb.data, sb.size, 100, &len), RPC_SCAN_BAD,
	    "the same request over a 100-byte limit is refused");
	free(big);
	msgpack_sbuffer_destroy(&sb);
	test_resume();
	test_objects();

	test_decode();
	test_printable();
	return (tap_done());
}
