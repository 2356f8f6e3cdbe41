/* Order statistics for peernet-bench (see bench_stats.h). */
#include "tests/bench/bench_stats.h"

#include <stdlib.h>

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a;
  uint64_t y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void bench_sort_ns(uint64_t *v, size_t n) {
  if (n > 1) {
    qsort(v, n, sizeof *v, cmp_u64);
  }
}

double bench_percentile(const uint64_t *sorted_ns, size_t n, double p) {
  if (n == 0) {
    return 0.0;
  }
  /* Written so that a NaN p ends up as 0 rather than as an index. */
  if (!(p > 0.0)) {
    p = 0.0;
  } else if (p > 1.0) {
    p = 1.0;
  }
  double h = p * (double)(n - 1);
  size_t k = (size_t)h;
  if (k >= n - 1) {
    return (double)sorted_ns[n - 1];
  }
  double lo = (double)sorted_ns[k];
  double hi = (double)sorted_ns[k + 1];
  return lo + (h - (double)k) * (hi - lo);
}
