/*
 * Finding the end of one MessagePack object without decoding it, with every
 * declared size checked against a limit: shared by wxpushd's RPC server and
 * wxpush-bench, so neither hands msgpack-c a header it would allocate for.
 */
#ifndef WX_RPC_SCAN_H
#define WX_RPC_SCAN_H

#include <stddef.h>

#define RPC_MAX_DEPTH	16

enum rpc_scan { RPC_SCAN_OK, RPC_SCAN_MORE, RPC_SCAN_BAD };
enum rpc_scan	rpc_scan(const unsigned char *, size_t, size_t, size_t *);

#endif
