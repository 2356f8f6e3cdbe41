/* ENet and plain-UDP anchors of peernet-bench (see bench_enet.c): the same
 * ping-pong over loopback with ENet 1.3 reliable packets and with plain
 * blocking UDP sockets, for reading PeerNet's round trip against both, and
 * a one-way reliable transfer with ENet, for reading PeerNet's throughput.
 *
 * Threads: call from one thread at a time (ENet's global set-up is not
 * reentrant). Each call blocks until its run is over; meanwhile it runs the
 * echo or receiving side on a thread of its own, joined before it returns. */
#ifndef PN_BENCH_ENET_H
#define PN_BENCH_ENET_H

#include <stdint.h>

/* Round trips timed after BENCH_RTT_WARMUP untimed ones. */
#define BENCH_RTT_WARMUP 1000u
/* The largest message: the largest UDP payload over IPv4. */
#define BENCH_RTT_MAX_SIZE 65507u

/* n reliable ENet packets of size bytes (1..BENCH_RTT_MAX_SIZE) on channel
 * 0, each echoed by a second ENet host before the next is sent. Runs twice,
 * with both hosts serviced by enet_host_service with a 1 ms timeout (the
 * headline) and by busy polling with a 0 timeout, and prints one JSON line
 * with both. Returns 0, 1 when the run failed (the reason is on stderr), or
 * 2 for bad arguments or a build without ENet (then an error JSON line is
 * printed instead). */
int bench_enet_rtt(uint64_t n, uint32_t size);

/* The same ping-pong with blocking sendto/recvfrom on two UDP sockets;
 * prints one JSON line. Returns 0, 1 when the run failed or 2 for bad
 * arguments. */
int bench_raw_rtt(uint64_t n, uint32_t size);

/* n reliable ENet packets of size bytes (1..BENCH_RTT_MAX_SIZE) on channel
 * 0, sent one way as fast as ENet takes them from one ENet host to another,
 * which checks that each arrives once and in order. Prints one JSON line
 * with messages and payload megabytes (10^6 bytes) per second, timed from
 * the first send to the last receive. Returns 0, 1 when the run failed (the
 * reason is on stderr), or 2 for bad arguments or a build without ENet
 * (then an error JSON line is printed instead). */
int bench_enet_throughput(uint64_t n, uint32_t size);

#endif
