/* Allocation failure injection: see alloc.h. */
#include "runtime/alloc.h"

#include <stdatomic.h>

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
