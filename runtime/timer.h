/* Timers: a min-heap of deadlines per worker, plus a locked inbox through
 * which other threads hand a worker new timers.
 *
 * A timer lives on the heap of the worker that armed it (or, from an
 * application thread, on the target's home worker or worker 0) and is fired
 * only by that worker. Cancelling from any thread sets a flag; the owner
 * drops a cancelled timer when it reaches the top of the heap (or at once
 * when the owner itself cancels), and a tick already queued in a mailbox is
 * dropped by the receiving worker when it sees the flag.
 *
 * A heap rather than a timing wheel: deadlines are in microseconds
 * (retransmission timers on loopback are tens of microseconds apart), the
 * heap is exact at any resolution, and O(log n) with n in the tens of
 * thousands costs less than the wheel's cascading.
 */
#ifndef PN_RUNTIME_TIMER_H
#define PN_RUNTIME_TIMER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "peernet/runtime.h"

typedef struct pn__worker pn__worker;

struct pn_timer {
  _Atomic uint32_t refs;        /* handle, heap, queued tick */
  _Atomic uint32_t cancelled;   /* set once by pn_timer_cancel() */
  _Atomic uint32_t tick_queued; /* a tick is in the target's mailbox */
  uint32_t type;
  uint32_t heap_index; /* position on the owner's heap, UINT32_MAX if off */
  uint32_t owner;      /* worker index whose heap holds it */
  pn_actor *target;    /* referenced while on the heap */
  pn_runtime *rt;
  uint64_t deadline_ns;
  uint64_t period_ns;
  uint64_t order; /* tie-break: equal deadlines fire in arm order */
  struct pn_timer *inbox_next;
};

typedef struct pn__timer_heap {
  struct pn_timer **items;
  uint32_t count;
  uint32_t capacity;
  uint64_t next_order;
  /* Timers armed by other threads, waiting to be put on the heap. */
  pthread_mutex_t inbox_lock;
  struct pn_timer *inbox;
  _Atomic uint32_t inbox_len;
  /* Earliest deadline on the heap, for other workers' idle checks. */
  _Atomic uint64_t earliest_ns;
} pn__timer_heap;

pn_err pn__timer_heap_init(pn__timer_heap *h);

/* Releases every timer still armed (their target references included).
 * Only after the owning worker has exited. */
void pn__timer_heap_fini(pn_runtime *rt, pn__timer_heap *h);

/* Owner only: moves inbox timers onto the heap and sends every tick due at
 * now_ns. Returns the number of ticks sent. */
uint32_t pn__timer_heap_fire(pn__worker *w, uint64_t now_ns);

/* Owner only: nanoseconds until the earliest deadline (0 if due), or -1 when
 * nothing is armed. */
int64_t pn__timer_heap_timeout_ns(pn__worker *w, uint64_t now_ns);

/* The receiving worker calls this for a tick taken from a mailbox. Returns
 * true when the tick should reach the handler (the timer is not cancelled).
 * Either way the tick's timer reference stays with the envelope. */
bool pn__timer_tick_take(struct pn_timer *t);

/* Drops one reference; frees the timer at zero. Any thread. */
void pn__timer_release(struct pn_timer *t);

/* pn_timer_start() for the library's own message types, which live in the
 * reserved range the public call refuses. Same errors, ownership and
 * threading. */
pn_err pn__timer_start(pn_actor *actor, uint32_t type, uint64_t delay_us,
                       uint64_t period_us, pn_timer **timer_out);

#endif
