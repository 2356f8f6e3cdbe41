/* peernet-bench throughput (see bench_throughput.c). */
#ifndef PN_BENCH_THROUGHPUT_H
#define PN_BENCH_THROUGHPUT_H

#include <stdint.h>

#include "peernet/net.h"

/* n one-way messages of size bytes on a channel of `kind`; prints one JSON
 * line with msgs_per_s and mbytes_per_s. Returns 0, or 1 on failure. */
int bench_peernet_throughput(pn_io_backend io, pn_channel_kind kind, uint64_t n,
                             uint32_t size);

#endif
