/* UDP benchmarks of peernet-bench (see bench_udp.c). */
#ifndef PN_BENCH_UDP_H
#define PN_BENCH_UDP_H

#include <stdint.h>

#include "peernet/runtime.h"

/* 64-byte datagrams echoed between two socket actors, n round trips, with
 * the plain blocking baseline; prints one JSON line. */
void bench_udp_echo(pn_io_backend io, uint64_t n);

/* n one-way 64-byte datagrams as fast as possible, with the plain
 * baseline; prints one JSON line. */
void bench_udp_flood(pn_io_backend io, uint64_t n);

#endif
