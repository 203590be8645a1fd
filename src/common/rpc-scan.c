/* MessagePack frame boundaries without allocating: see rpc-scan.h. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "rpc-scan.h"

static uint64_t
rpc_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return (v);
}

/* Start scanning a new frame with s. */
void
rpc_scan_reset(struct rpc_scan_state *s)
{
	s->depth = -1;
	s->pos = 0;
	s->objects = 0;
}

/*
 * Go on finding the end of the first MessagePack object in p[0..len), from
 * where s stopped: p must start with the same bytes as at the last call, and
 * len may only have grown. Every length and element count is checked against
 * limit before it is believed, so a header such as "dd ff ff ff ff" is refused
 * here and never reaches msgpack-c, which would allocate for it at once; and
 * an object is refused once the frame holds more than maxobjects of them.
 * State changes only at object boundaries, so an object cut anywhere (its
 * header, its payload) is read again whole by the next call; nothing before
 * it is. Returns RPC_SCAN_OK with *objlen, RPC_SCAN_MORE if the object is
 * incomplete, RPC_SCAN_BAD if it can never be valid.
 */
enum rpc_scan
rpc_scan_more(struct rpc_scan_state *s, const unsigned char *p, size_t len,
    size_t limit, size_t maxobjects, size_t *objlen)
{
	size_t		 pos;
	unsigned char	 b;
	uint64_t	 n;
	size_t		 hdr, extra;
	int		 container;

	if (s->depth == -1) {
		s->depth = 0;
		s->left[0] = 1;
	}
	while (s->depth >= 0) {
		if (s->left[s->depth] == 0) {
			s->depth--;
			continue;
		}
		pos = s->pos;
		if (pos >= len)
			return (pos >= limit ? RPC_SCAN_BAD : RPC_SCAN_MORE);
		if (s->objects >= maxobjects)
			return (RPC_SCAN_BAD);
		b = p[pos++];
		hdr = 0;	/* bytes of length field after the type byte */
		extra = 0;	/* fixed bytes of payload */
		n = 0;		/* variable payload bytes or container elements */
		container = 0;
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 ||
		    b == 0xc3) {
			/* nothing more */
		} else if (b >= 0x80 && b <= 0x8f) {
			n = 2 * (uint64_t)(b & 0x0f);
			container = 1;
		} else if (b >= 0x90 && b <= 0x9f) {
			n = b & 0x0f;
			container = 1;
		} else if (b >= 0xa0 && b <= 0xbf)
			n = b & 0x1f;
		else {
			switch (b) {
			case 0xc4: case 0xd9: hdr = 1; break;
			case 0xc5: case 0xda: hdr = 2; break;
			case 0xc6: case 0xdb: hdr = 4; break;
			case 0xc7: hdr = 1; extra = 1; break;
			case 0xc8: hdr = 2; extra = 1; break;
			case 0xc9: hdr = 4; extra = 1; break;
			case 0xcc: case 0xd0: extra = 1; break;
			case 0xcd: case 0xd1: extra = 2; break;
			case 0xca: case 0xce: case 0xd2: extra = 4; break;
			case 0xcb: case 0xcf: case 0xd3: extra = 8; break;
			case 0xd4: extra = 2; break;
			case 0xd5: extra = 3; break;
			case 0xd6: extra = 5; break;
			case 0xd7: extra = 9; break;
			case 0xd8: extra = 17; break;
			case 0xdc: hdr = 2; container = 1; break;
			case 0xdd: hdr = 4; container = 1; break;
			case 0xde: hdr = 2; container = 2; break;
			case 0xdf: hdr = 4; container = 2; break;
			default:	/* 0xc1 is never used */
				return (RPC_SCAN_BAD);
			}
			if (hdr != 0) {
				if (len - pos < hdr)
					return (pos + hdr > limit ?
					    RPC_SCAN_BAD : RPC_SCAN_MORE);
				n = rpc_be(p + pos, hdr);
				pos += hdr;
				if (container == 2)
					n *= 2;
			}
		}
		if (container) {
			/* Each element takes at least one byte. */
			if (n > limit || pos + n > limit)
				return (RPC_SCAN_BAD);
			if (s->depth == RPC_MAX_DEPTH)
				return (RPC_SCAN_BAD);
			s->left[s->depth]--;
			s->left[++s->depth] = n;
		} else {
			if (n + extra > limit || pos + n + extra > limit)
				return (RPC_SCAN_BAD);
			if (len - pos < n + extra)
				return (RPC_SCAN_MORE);
			pos += n + extra;
			s->left[s->depth]--;
		}
		/* The object is whole (or its header is): move past it. */
		s->pos = pos;
		s->objects++;
	}
	*objlen = s->pos;
	return (RPC_SCAN_OK);
}

/* Scan p[0..len) from its start, with RPC_MAX_OBJECTS(limit). */
enum rpc_scan
rpc_scan(const unsigned char *p, size_t len, size_t limit, size_t *objlen)
{
	struct rpc_scan_state	s;

	rpc_scan_reset(&s);
	return (rpc_scan_more(&s, p, len, limit, RPC_MAX_OBJECTS(limit),
	    objlen));
}
