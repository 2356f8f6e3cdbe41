/* Local run queues (a bounded SPMC ring in the style of Go's runq) and
 * locked inject queues. */
#include "runtime/runq.h"

#include <stddef.h>

#include "runtime/actor.h"
#include "runtime/lock.h"

bool pn__runq_push(pn__runq *q, pn_actor *a) {
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  /* acquire: pairs with the release half of the thieves' CAS on head in
   * pn__runq_steal(), so the slot we are about to reuse has been read by
   * whoever took it. */
  uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
  if (t - h >= PN__RUNQ_SIZE) {
    return false;
  }
  atomic_store_explicit(&q->slots[t % PN__RUNQ_SIZE], a, memory_order_relaxed);
  /* release: publishes the slot (and the actor's state) to thieves; pairs
   * with the acquire load of src->tail in pn__runq_steal(). Our own pops
   * read tail in program order. */
  atomic_store_explicit(&q->tail, t + 1, memory_order_release);
  return true;
}

pn_actor *pn__runq_pop(pn__runq *q) {
  for (;;) {
    /* acquire: pairs with the release half of a thief's CAS on head in
     * pn__runq_steal(). The owner writes no slot here, so nothing depends
     * on it; kept (a plain load on x86) so head is read the same way
     * everywhere. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (h == t) {
      return NULL;
    }
    pn_actor *a = atomic_load_explicit(&q->slots[h % PN__RUNQ_SIZE],
                                       memory_order_relaxed);
    /* release: pairs with the acquire loads of head in pn__runq_steal().
     * Only this thread writes the slots, so the read of the slot above
     * needs no ordering against a reuse; kept as it costs nothing over the
     * locked CAS itself. */
    if (atomic_compare_exchange_weak_explicit(
            &q->head, &h, h + 1, memory_order_release, memory_order_relaxed)) {
      return a;
    }
  }
}

uint32_t pn__runq_steal(pn__runq *src, pn__runq *dst) {
  for (;;) {
    /* acquire on both: tail pairs with the owner's release store in
     * pn__runq_push() (the slots below it are written), head with the
     * release CAS of other consumers in pn__runq_pop() and here (so head
     * is read before tail, never after). */
    uint32_t h = atomic_load_explicit(&src->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&src->tail, memory_order_acquire);
    uint32_t n = t - h;
    if (n == 0 || n > PN__RUNQ_SIZE) {
      if (n == 0) {
        return 0;
      }
      continue; /* torn read of head/tail; retry */
    }
    n -= n / 2;
    uint32_t dt = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    /* acquire: dst is ours; pairs with the release CAS of thieves stealing
     * from it (here, in their call), so the slots we overwrite below have
     * been read. */
    uint32_t dh = atomic_load_explicit(&dst->head, memory_order_acquire);
    if (PN__RUNQ_SIZE - (dt - dh) < n) {
      n = PN__RUNQ_SIZE - (dt - dh);
      if (n == 0) {
        return 0;
      }
    }
    for (uint32_t i = 0; i < n; i++) {
      pn_actor *a = atomic_load_explicit(&src->slots[(h + i) % PN__RUNQ_SIZE],
                                         memory_order_relaxed);
      atomic_store_explicit(&dst->slots[(dt + i) % PN__RUNQ_SIZE], a,
                            memory_order_relaxed);
    }
    /* acq_rel: claims the copied slots; if another consumer moved head first
     * the copies are discarded (dst's tail is not advanced). The release
     * half pairs with the owner's acquire load of head in pn__runq_push()
     * (our reads of the slots come before it reuses them); the acquire
     * half pairs with the release CAS of other consumers (pn__runq_pop(),
     * here). */
    if (atomic_compare_exchange_strong_explicit(&src->head, &h, h + n,
                                                memory_order_acq_rel,
                                                memory_order_relaxed)) {
      /* release: publishes the copied slots to thieves of dst; pairs with
       * the acquire load of src->tail above in their call. dst's own pops
       * are this thread. */
      atomic_store_explicit(&dst->tail, dt + n, memory_order_release);
      return n;
    }
  }
}

uint32_t pn__runq_len(const pn__runq *q) {
  uint32_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
  uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
  uint32_t n = t - h;
  return n > PN__RUNQ_SIZE ? 0 : n;
}

static pn_actor *actor_of(pn__qlink *l) {
  return (pn_actor *)((char *)l - offsetof(pn_actor, run_link));
}

void pn__injectq_init(pn__injectq *q) {
  atomic_init(&q->stub.next, NULL);
  atomic_init(&q->head, &q->stub);
  atomic_init(&q->len, 0);
  q->tail = &q->stub;
  pn__mutex_init(&q->pop_lock);
}

void pn__injectq_fini(pn__injectq *q) { pthread_mutex_destroy(&q->pop_lock); }

static void link_push(pn__injectq *q, pn__qlink *l) {
  atomic_store_explicit(&l->next, NULL, memory_order_relaxed);
  /* acq_rel. The release half orders the reset of l->next before l is
   * reachable: it pairs with the acquire half of the next exchange here
   * (by the next producer, or by link_pop() pushing the stub), whose link
   * into l must come after the reset. The acquire half pairs with the
   * previous exchange's release half in the same way, for prev. */
  pn__qlink *prev = atomic_exchange_explicit(&q->head, l, memory_order_acq_rel);
  /* release: publishes l (and the actor's state) to the consumer; pairs
   * with the acquire loads of next in link_pop(). */
  atomic_store_explicit(&prev->next, l, memory_order_release);
}

void pn__injectq_push(pn__injectq *q, pn_actor *a) {
  /* The count goes first so an idle check after the caller's fence never
   * sees an empty queue while the actor is on its way. */
  atomic_fetch_add_explicit(&q->len, 1, memory_order_relaxed);
  link_push(q, &a->run_link);
}

/* Vyukov's intrusive MPSC pop; the caller holds pop_lock. */
static pn__qlink *link_pop(pn__injectq *q) {
  pn__qlink *tail = q->tail;
  /* acquire (all loads of next here): pairs with the release store of the
   * link in link_push(); the actor behind it is complete. */
  pn__qlink *next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (tail == &q->stub) {
    if (!next) {
      return NULL;
    }
    q->tail = next;
    tail = next;
    next = atomic_load_explicit(&next->next, memory_order_acquire);
  }
  if (next) {
    q->tail = next;
    return tail;
  }
  /* acquire: pairs with the release half of the exchange in link_push().
   * Only compared; the stub push below orders itself (acq_rel). */
  if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) {
    return NULL; /* a producer is between its exchange and its link */
  }
  link_push(q, &q->stub);
  next = atomic_load_explicit(&tail->next, memory_order_acquire);
  if (next) {
    q->tail = next;
    return tail;
  }
  return NULL;
}

pn_actor *pn__injectq_pop(pn__injectq *q) {
  if (atomic_load_explicit(&q->len, memory_order_relaxed) == 0 ||
      pthread_mutex_trylock(&q->pop_lock) != 0) {
    return NULL;
  }
  pn__qlink *l = link_pop(q);
  pthread_mutex_unlock(&q->pop_lock);
  if (!l) {
    return NULL;
  }
  atomic_fetch_sub_explicit(&q->len, 1, memory_order_relaxed);
  return actor_of(l);
}
