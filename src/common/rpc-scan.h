/*
 * Finding the end of one MessagePack object without decoding it, with every
 * declared size checked against a limit: shared by wxpushd's RPC server and
 * wxpush-bench, so neither hands msgpack-c a header it would allocate for.
 */
#ifndef WX_RPC_SCAN_H
#define WX_RPC_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define RPC_MAX_DEPTH	16

/*
 * The most objects (of any kind, containers and scalars) a frame of at most
 * limit bytes may hold. msgpack-c's zone takes 16 to 32 bytes per object
 * (16 MiB of nils became 423 MB), while ordinary requests are mostly string
 * bytes: one object per 16 bytes keeps decoding within a few times the limit.
 */
#define RPC_MAX_OBJECTS(limit)	((limit) / 16 + 64)

enum rpc_scan { RPC_SCAN_OK, RPC_SCAN_MORE, RPC_SCAN_BAD };

/*
 * Where a scan stopped, so that the next call with more bytes of the same
 * frame goes on from there: the cost of a frame is linear in its bytes
 * however finely it is trickled. Zero it (rpc_scan_reset) for a new frame.
 */
struct rpc_scan_state {
	uint64_t	left[RPC_MAX_DEPTH + 1];	/* elements still due per level */
	int		depth;		/* -1: not started */
	size_t		pos;		/* bytes of whole objects behind us */
	size_t		objects;	/* objects seen so far */
};

void		rpc_scan_reset(struct rpc_scan_state *);
enum rpc_scan	rpc_scan_more(struct rpc_scan_state *, const unsigned char *,
		    size_t, size_t, size_t, size_t *);
enum rpc_scan	rpc_scan(const unsigned char *, size_t, size_t, size_t *);

#endif
