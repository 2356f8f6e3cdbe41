/* peernet-bench flood (see bench_flood.c). */
#ifndef PN_BENCH_FLOOD_H
#define PN_BENCH_FLOOD_H

#include <stdint.h>

#include "peernet/net.h"

/* Measures an established connection's ping round trip (rtt_n round
 * trips) and one-way throughput (tp_n 64-byte ordered messages), unloaded
 * and then under `rate` spoofed ConnectRequests per second to the server;
 * the server host runs with max_handshakes_per_s = limit (0: the
 * library's default). Prints one JSON line. Returns 0, or 1 when the
 * unloaded run failed or the connection was lost. */
int bench_flood(pn_io_backend io, uint64_t rate, uint64_t rtt_n, uint64_t tp_n,
                uint32_t limit);

#endif
