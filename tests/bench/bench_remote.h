/* peernet-bench remote-pingpong, remote-flood and the node they start
 * (see bench_remote.c). */
#ifndef PN_BENCH_REMOTE_H
#define PN_BENCH_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "peernet/runtime.h"

/* Runs one of the two against a child process (exe remote-node); prints
 * one JSON line (rtt_p50_us and rtt_p99_us, or msgs_per_s). Returns 0, or
 * 1 when the run failed (reason on stderr). Main thread; blocks. */
int bench_remote(pn_io_backend io, bool flood, uint64_t n, uint32_t size,
                 const char *exe);

/* The child: node bench-b seeded with 127.0.0.1:seed_port, its echo and
 * sink actors registered, until stdin closes. Returns the exit status. */
int bench_remote_node(pn_io_backend io, uint16_t seed_port);

#endif
