/* Allocation failure injection: see alloc.h. */
#include "runtime/alloc.h"

#include <stdatomic.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

/* All relaxed: a test arms the hook before it starts the work it watches
 * and reads the count after joining that work (pn_runtime_shutdown and
 * the latches order those), so the counters order nothing themselves. */
_Atomic uint64_t pn__alloc_fail_n; /* 0: off */
static _Atomic uint64_t counted;
static _Atomic bool failed;

bool pn__alloc_fails_slow(void) {
  uint64_t at = atomic_load_explicit(&pn__alloc_fail_n, memory_order_relaxed);
  if (at == 0) {
    return false;
  }
  uint64_t n = atomic_fetch_add_explicit(&counted, 1, memory_order_relaxed);
  if (n + 1 != at) {
    return false;
  }
  atomic_store_explicit(&failed, true, memory_order_relaxed);
  return true;
}

void pn__alloc_fail_at(uint64_t n) {
  atomic_store_explicit(&pn__alloc_fail_n, 0, memory_order_relaxed);
  atomic_store_explicit(&counted, 0, memory_order_relaxed);
  atomic_store_explicit(&failed, false, memory_order_relaxed);
  atomic_store_explicit(&pn__alloc_fail_n, n, memory_order_relaxed);
}

uint64_t pn__alloc_counted(void) {
  return atomic_load_explicit(&counted, memory_order_relaxed);
}

bool pn__alloc_failed(void) {
  return atomic_load_explicit(&failed, memory_order_relaxed);
}

/* --- giving memory back --------------------------------------------------- */

#define TRIM_AFTER_BYTES (4u << 20)
#define TRIM_GAP_NS 1000000000u

/* Relaxed, all: a hint and a claim that order nothing else (malloc_trim
 * takes the allocator's own locks). */
static _Atomic uint64_t released;
static _Atomic uint64_t last_trim_ns;

void pn__alloc_released(size_t bytes) {
  atomic_fetch_add_explicit(&released, bytes, memory_order_relaxed);
}

int64_t pn__alloc_idle_trim(uint64_t now_ns) {
  if (atomic_load_explicit(&released, memory_order_relaxed) <
      TRIM_AFTER_BYTES) {
    return -1;
  }
  uint64_t last = atomic_load_explicit(&last_trim_ns, memory_order_relaxed);
  if (now_ns - last < TRIM_GAP_NS) {
    return (int64_t)(TRIM_GAP_NS - (now_ns - last));
  }
  if (!atomic_compare_exchange_strong_explicit(&last_trim_ns, &last, now_ns,
                                               memory_order_relaxed,
                                               memory_order_relaxed)) {
    return TRIM_GAP_NS; /* another worker is at it */
  }
  atomic_store_explicit(&released, 0, memory_order_relaxed);
#if defined(__GLIBC__)
  (void)malloc_trim(0);
#endif
  return 0;
}
