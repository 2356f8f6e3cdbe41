/* Every heap allocation of the library goes through these wrappers, so a
 * test can make the Nth one fail (pn__alloc_fail_at) and prove that every
 * out-of-memory path returns a clear error and leaks nothing. Memory they
 * return is freed with free(). Message envelopes and pool blocks count as
 * allocations too (runtime/msg.c asks pn__alloc_fails() first), whether or
 * not a pool had one ready.
 *
 * Not covered: memory that zstd and protobuf-c's handshake decoding take
 * for themselves, and the C library's own (threads, stdio).
 *
 * Threading: any thread. The hook costs one relaxed load per allocation
 * when off.
 */
#ifndef PN_RUNTIME_ALLOC_H
#define PN_RUNTIME_ALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* The planned failure (0: none). Relaxed: see alloc.c. */
extern _Atomic uint64_t pn__alloc_fail_n;

/* Counts an allocation while a failure is planned; true for the one to
 * fail. */
bool pn__alloc_fails_slow(void);

/* True when this allocation is the one to fail: one relaxed load and a
 * branch when no failure is planned. */
static inline bool pn__alloc_fails(void) {
  return __builtin_expect(
             atomic_load_explicit(&pn__alloc_fail_n, memory_order_relaxed) != 0,
             0) &&
         pn__alloc_fails_slow();
}

static inline void *pn__malloc(size_t n) {
  return pn__alloc_fails() ? NULL : malloc(n);
}

static inline void *pn__calloc(size_t n, size_t size) {
  return pn__alloc_fails() ? NULL : calloc(n, size);
}

static inline void *pn__realloc(void *p, size_t n) {
  return pn__alloc_fails() ? NULL : realloc(p, n);
}

static inline void *pn__aligned_alloc(size_t align, size_t n) {
  return pn__alloc_fails() ? NULL : aligned_alloc(align, n);
}

/* --- giving memory back ------------------------------------------------
 * free() keeps what it gets in the process (the C library returns only the
 * top of a heap by itself). Code that frees a lot at once (a departed
 * peer, a shrunk pool) says so here; an idle worker then hands the free
 * pages back (malloc_trim) once 4 MiB or more were released, at most once
 * a second, so a burst's memory leaves with the burst. */

/* About `bytes` were freed. Any thread; relaxed (a hint). */
void pn__alloc_released(size_t bytes);

/* An idle worker's turn (now_ns: pn__now_ns()); trims when due. Any
 * thread; blocks for the trim (milliseconds for a large heap). Returns
 * -1 when nothing is left to return, else the nanoseconds until the next
 * trim may run (0: it just ran): a worker about to sleep wakes by then. */
int64_t pn__alloc_idle_trim(uint64_t now_ns);

/* Tests only: from now on, the nth allocation counted (1 = the next one)
 * fails, once; 0 turns failures off. Resets the count. */
void pn__alloc_fail_at(uint64_t n);

/* Tests only: allocations counted since the last pn__alloc_fail_at(), and
 * whether the planned failure happened. */
uint64_t pn__alloc_counted(void);
bool pn__alloc_failed(void);

#endif
