/* Order statistics for peernet-bench: sorting one run's samples and reading
 * percentiles off them. Meant to be shared by every latency benchmark
 * (enet-rtt and raw-rtt in bench_enet.c, PeerNet's own round trips), so
 * that figures printed side by side are computed the same way.
 *
 * Threads: plain functions on caller-owned arrays, no state; any thread
 * may call them on arrays no other thread is writing. Neither blocks nor
 * allocates. */
#ifndef PN_BENCH_STATS_H
#define PN_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Sorts v[0..n) ascending, in place. n == 0 does nothing. */
void bench_sort_ns(uint64_t *v, size_t n);

/* The p-quantile of sorted_ns[0..n), which the caller has sorted ascending
 * (bench_sort_ns). p is a fraction: 0.5 for the median, 0.99 for p99,
 * 0.999 for p99.9; it is clamped to [0, 1], so 0 gives the minimum and 1
 * the maximum. The result is in the samples' unit (nanoseconds for _ns
 * samples; divide by 1000.0 for microseconds).
 *
 * Definition: linear interpolation between the two closest ranks, the
 * default of numpy.percentile and R's type 7. With h = p * (n - 1) and
 * k = floor(h), the result is v[k] + (h - k) * (v[k + 1] - v[k]). A tail
 * quantile means something only when n is well above 1 / (1 - p): at
 * least a few thousand samples for p99.9.
 *
 * Reads the array only; returns 0.0 when n == 0. */
double bench_percentile(const uint64_t *sorted_ns, size_t n, double p);

#endif
