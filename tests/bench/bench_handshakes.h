/* peernet-bench handshakes (see bench_handshakes.c). */
#ifndef PN_BENCH_HANDSHAKES_H
#define PN_BENCH_HANDSHAKES_H

#include <stdint.h>

#include "peernet/net.h"

/* Connects `count` clients to one server host over loopback, `window`
 * handshakes in flight, server and client on one worker each; prints
 * completed connections per second as one JSON line. Returns 0, or 1 on
 * failure (a connection refused or timed out). */
int bench_handshakes(pn_io_backend io, uint64_t count, uint32_t window);

#endif
