/* peernet-bench rtt: the reliable ping-pong of enet-rtt over PeerNet
 * peers (see bench_rtt.c). */
#ifndef PN_BENCH_RTT_H
#define PN_BENCH_RTT_H

#include <stdint.h>

#include "peernet/net.h"

/* n round trips of a size-byte message on a channel of `kind`, one at a
 * time, echoed by a server host on the other worker; prints one JSON line
 * with rtt_p50_us, rtt_p99_us and rtt_p999_us. Returns 0, or 1 when the
 * run failed (reason on stderr). */
int bench_peernet_rtt(pn_io_backend io, pn_channel_kind kind, uint64_t n,
                      uint32_t size);

#endif
