/* Run queues: which runnable actors a worker runs next.
 *
 * pn__runq is a worker's local queue: a bounded ring where only the owner
 * pushes (at the tail) and both the owner and thieves take the oldest entry
 * (CAS on head), so a steal never races with a push into the same slot.
 * pn__injectq is an unbounded FIFO for threads that do not own the target
 * queue: application threads (the global inject queue) and other workers
 * scheduling an actor homed elsewhere (a worker's inbox). Pushes are
 * lock-free (an intrusive Vyukov MPSC queue through the actor's run link);
 * the consumers, which may be several workers, take turns with a try-lock,
 * so neither side ever sleeps on the other. Its length is an atomic so an
 * empty check takes no lock.
 */
#ifndef PN_RUNTIME_RUNQ_H
#define PN_RUNTIME_RUNQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "peernet/runtime.h"

#define PN__RUNQ_SIZE 256u

typedef struct pn__runq {
  _Alignas(64) _Atomic uint32_t head; /* next to take; thieves CAS it */
  _Atomic uint32_t tail;              /* next free slot; owner writes */
  _Atomic(pn_actor *) slots[PN__RUNQ_SIZE];
} pn__runq;

/* Owner only. Returns false when the ring is full (caller overflows). */
bool pn__runq_push(pn__runq *q, pn_actor *a);

/* Owner only. Oldest entry or NULL. */
pn_actor *pn__runq_pop(pn__runq *q);

/* Any thread except the owner of dst; dst's owner must be the caller.
 * Moves about half of src's entries into dst and returns how many moved. */
uint32_t pn__runq_steal(pn__runq *src, pn__runq *dst);

/* Racy length estimate, for idle checks and stats. Any thread. */
uint32_t pn__runq_len(const pn__runq *q);

/* Link embedded in every actor for inject queues. */
typedef struct pn__qlink {
  _Atomic(struct pn__qlink *) next;
} pn__qlink;

typedef struct pn__injectq {
  _Alignas(64) _Atomic(pn__qlink *) head; /* producers exchange */
  _Atomic uint32_t len;
  _Alignas(64) pthread_mutex_t pop_lock; /* consumers */
  pn__qlink *tail;
  pn__qlink stub;
} pn__injectq;

void pn__injectq_init(pn__injectq *q);
void pn__injectq_fini(pn__injectq *q);
/* Any thread, lock-free. */
void pn__injectq_push(pn__injectq *q, pn_actor *a);
/* Any thread. NULL when empty, or when another consumer holds the queue or
 * a producer is halfway through a push (the caller looks again later). */
pn_actor *pn__injectq_pop(pn__injectq *q);

static inline uint32_t pn__injectq_len(const pn__injectq *q) {
  return atomic_load_explicit(&q->len, memory_order_relaxed);
}

#endif
