/* peernet-bench peers (see bench_peers.c). */
#ifndef PN_BENCH_PEERS_H
#define PN_BENCH_PEERS_H

#include <stdint.h>

#include "peernet/net.h"

/* Connects `count` peers (two channels each) over loopback, then idles
 * idle_s seconds; prints memory per peer pair and idle CPU as one JSON
 * line. Returns 0, or 1 on failure. */
int bench_peers(pn_io_backend io, uint64_t count, uint32_t idle_s);

#endif
