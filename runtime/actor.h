/* Actors: the handler, its state, its mailbox and its counters.
 *
 * Layout is 192 bytes in three cache lines so that senders (which write only
 * the mailbox head and read the flags) never share a line with the running
 * worker's fields. An idle actor owns no envelope: the mailbox's embedded
 * stub node is its only node. Names are interned (labels.c): thousands of
 * actors of one kind share one copy of "peer".
 *
 * Lifetime: one reference belongs to the runtime from spawn until the run
 * that handles the stop marks the mailbox idle; handles, timers and
 * mute-list entries hold their own. A run of a stopped actor owns one
 * reference (see pn__actor_run).
 */
#ifndef PN_RUNTIME_ACTOR_H
#define PN_RUNTIME_ACTOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "peernet/runtime.h"
#include "peernet/stats.h"
#include "runtime/list.h"
#include "runtime/msg.h"
#include "runtime/runq.h"

/* flags bits */
#define PN__A_DEAD 1u       /* PN_MSG_STOPPED handled; nothing runs again */
#define PN__A_STOP_REQ 2u   /* a stop was requested */
#define PN__A_OVERLOADED 4u /* mailbox over the high mark; may have muters */
#define PN__A_BATCH_END 8u  /* wants PN_MSG_BATCH_END after each run */
#define PN__A_INBOX                                                            \
  16u                       /* read by application threads (inbox.c), never    \
                               run by a worker except to stop it */
#define PN__A_MONITORED 32u /* has monitors or a stop reason (monitor.h) */
#define PN__A_NEVER_MUTED                                                      \
  64u /* never muted by a receiver's backpressure (its sends are bounded       \
         otherwise: a node actor's deliveries, by credit) */

/* mute_state values (see backpressure in actor.c) */
#define PN__MUTE_NONE 0u
#define PN__MUTE_PENDING 1u   /* on a receiver's list; this run still going */
#define PN__MUTE_PARKED 2u    /* on a list and not scheduled */
#define PN__MUTE_CANCELLED 3u /* on a list but chose to keep running */

struct pn_actor {
  /* Line 0: senders. head is the MPSC mailbox's push end; bit 0 set means
   * "empty and not scheduled". The other fields are read by senders or
   * written rarely (spawn, stop, inject queues). */
  _Alignas(64) _Atomic uintptr_t head;
  _Atomic uint32_t flags;
  _Atomic uint32_t enqueued; /* counted envelopes pushed, mod 2^32 */
  pn_runtime *rt;
  _Atomic uint32_t refs;
  _Atomic uint16_t mute_state;
  int16_t home; /* -1 or worker index */
  uint64_t id;
  pn__qlink run_link; /* inject queue link */
  union {
    pn__list reg;        /* registry of live actors (runtime lock) */
    pn_actor *slab_next; /* the slab's free list, while unused */
  };

  /* Line 1: the running worker. */
  _Alignas(64) pn__node *tail; /* last node taken (stub or envelope) */
  pn__node stub;
  pn_handler handler;
  void *state;
  pn_actor *mute_list;     /* senders muted on this actor (stripe lock) */
  pn_actor *mute_next;     /* link in a receiver's mute_list (stripe lock) */
  struct pn__label *label; /* interned name, or NULL */
  bool time_exactly;       /* its runs are long: time each one (cpu stats) */
  bool stop_now;     /* handle the stop when the current message returns */
  uint8_t slab_slot; /* index in its slab chunk, set once (histograms) */

  /* Line 2: counters, written by the running worker only. */
  _Alignas(64) _Atomic uint64_t received;
  _Atomic uint64_t processed;
  _Atomic uint64_t dropped;
  _Atomic uint64_t sent;
  _Atomic uint64_t runs;
  _Atomic uint64_t muted;
  _Atomic uint64_t cpu_ticks;
  _Atomic uint32_t taken; /* counted envelopes taken, mod 2^32 */
  _Atomic uint32_t depth_hwm;
};

_Static_assert(sizeof(struct pn_actor) == 192, "an actor is 3 cache lines");

/* Actors come from slab chunks of this many (never returned to malloc
 * while the runtime lives). */
#define PN__ACTORS_PER_CHUNK 64u

/* An actor's histograms (stats_histograms), written by the running worker
 * only (relaxed), read by snapshots. They live in the actor's slab chunk,
 * after its actors, so an actor without them stays 192 bytes; a cache line
 * of their own each, so two workers never write one line. Counts are the
 * sums of the buckets. */
typedef struct pn__actor_hist {
  _Alignas(64) _Atomic uint64_t mailbox[PN_HIST_BUCKETS];
  _Atomic uint64_t processing[PN_HIST_BUCKETS];
  _Atomic uint64_t mailbox_sum_ns;
  _Atomic uint64_t processing_sum_ns;
} pn__actor_hist;

/* Only in a runtime with histograms (its chunks have room for them). */
static inline pn__actor_hist *pn__actor_hist_of(const pn_actor *a) {
  const pn_actor *first = a - a->slab_slot;
  return (pn__actor_hist *)(void *)(uintptr_t)(first + PN__ACTORS_PER_CHUNK) +
         a->slab_slot;
}

/* The bucket of a time: 0 up to 16 ns, i for (2^(i+3), 2^(i+4)] ns, the
 * last one for everything above 2^34 ns (see pn_histogram). */
static inline uint32_t pn__hist_bucket(uint64_t ns) {
  if (ns <= 16) {
    return 0;
  }
  uint32_t i = 60u - (uint32_t)__builtin_clzll(ns - 1);
  return i < PN_HIST_BUCKETS - 1 ? i : PN_HIST_BUCKETS - 1;
}

/* Pushes a chain of nodes already linked first..last (first == last for
 * one). Returns true when the mailbox was idle: the caller then owns
 * scheduling the actor. Any thread. */
static inline bool pn__mailbox_push_chain(pn_actor *a, pn__node *first,
                                          pn__node *last) {
  atomic_store_explicit(&last->next, NULL, memory_order_relaxed);
  /* acq_rel. The acquire half pairs with the seq_cst CAS in
   * mailbox_try_idle() (actor.c) that marked the mailbox idle, so a sender
   * that wakes the actor sees every write the last run made (PN__A_DEAD
   * included), and with the release half of the previous sender's exchange
   * here, so our link into its node comes after its reset of that node's
   * next. The release half pairs with the same acquire half of the next
   * sender's exchange (the reset of last->next above comes before its link)
   * and with the acquire load of head in pn__actor_run() (actor.c). */
  uintptr_t prev =
      atomic_exchange_explicit(&a->head, (uintptr_t)last, memory_order_acq_rel);
  pn__node *p = (pn__node *)(prev & ~(uintptr_t)1);
  /* release: publishes the chain's envelopes and links to the consumer;
   * pairs with the acquire loads of next in handle_messages(),
   * drain_stopped() and pn__actor_run() (actor.c). */
  atomic_store_explicit(&p->next, first, memory_order_release);
  return (prev & 1u) != 0;
}

static inline bool pn__mailbox_push(pn_actor *a, pn__node *n) {
  return pn__mailbox_push_chain(a, n, n);
}

/* Pushes a chain of envelopes and counts it for backpressure. A push that
 * finds the mailbox idle is not counted (the receiver had nothing queued,
 * so the depth stays small), which keeps the atomic add off the
 * request/reply path. The count rides on the chain's first envelope so the
 * consumer subtracts exactly what was added; it is written before the link
 * that publishes the chain. */
static inline bool pn__mailbox_push_msgs(pn_actor *a, pn_msg *first,
                                         pn_msg *last, uint32_t count) {
  atomic_store_explicit(&last->node.next, NULL, memory_order_relaxed);
  /* acq_rel, pairing as in pn__mailbox_push_chain(): acquire with the idle
   * CAS in mailbox_try_idle() (actor.c) and the previous sender's exchange,
   * release with the next sender's exchange and the load of head in
   * pn__actor_run() (actor.c). */
  uintptr_t prev = atomic_exchange_explicit(&a->head, (uintptr_t)&last->node,
                                            memory_order_acq_rel);
  bool was_idle = (prev & 1u) != 0;
  first->chain_count = was_idle ? 0 : count;
  if (!was_idle) {
    atomic_fetch_add_explicit(&a->enqueued, count, memory_order_relaxed);
  }
  pn__node *p = (pn__node *)(prev & ~(uintptr_t)1);
  /* release: publishes the chain (and chain_count) to the consumer; pairs
   * with the acquire loads of next in handle_messages() and drain_stopped()
   * (actor.c). */
  atomic_store_explicit(&p->next, &first->node, memory_order_release);
  return was_idle;
}

/* Counted envelopes queued and not yet taken: exact for the running worker
 * at the end of a run, an upper estimate elsewhere (taken is published once
 * per run). */
static inline uint32_t pn__mailbox_depth(const pn_actor *a) {
  uint32_t in = atomic_load_explicit(&a->enqueued, memory_order_relaxed);
  uint32_t out = atomic_load_explicit(&a->taken, memory_order_relaxed);
  return in - out;
}

/* pn_spawn() with initial flags (PN__A_INBOX); the caller checked
 * nothing more than pn_spawn() does. Any thread. */
pn_err pn__spawn(pn_runtime *rt, const pn_actor_config *cfg, uint32_t flags,
                 pn_actor **actor_out);

/* The consumer side, for a mailbox read outside pn__actor_run() (an inbox,
 * inbox.c). The caller is the only consumer while it calls these; w is the
 * calling worker or NULL.
 *
 * pn__mailbox_idle_cas: tail is the last node linked (not the stub); puts
 * the stub back as the only node and marks the mailbox idle, as a run that
 * emptied it does, and returns true. tail is then detached and the
 * caller's; follow with pn__actor_went_idle(). False when a sender
 * exchanged the head since (it is linking behind tail; nothing changed).
 *
 * pn__mailbox_note_taken: adds the counted envelopes taken (chain_count of
 * each) and releases the muted senders once the depth is below half the
 * high mark.
 *
 * pn__actor_went_idle: after a successful idle CAS, releases senders that
 * marked the actor overloaded meanwhile. */
bool pn__mailbox_idle_cas(pn_actor *a, pn__node *tail);

/* Leaves fn(ctx) for the end of the running handler's run, where it is
 * called still as that actor (so a node's lane sends the envelopes of one
 * run together). False, and nothing left, when the caller is not a
 * handler inside a worker's run or the list is full: the caller does the
 * work now. Owner worker only. */
bool pn__worker_defer(pn__worker *w, void (*fn)(void *ctx), void *ctx);

/* A gate: actors muted on something other than a mailbox (a remote lane
 * out of credit), parked exactly as backpressure parks them, until the
 * gate's owner opens it.
 *
 * pn__gate_mute: mutes the running actor on g; it parks when its current
 * run ends. False, and nothing done, off a handler, for an actor that may
 * not be muted (overloaded, so that muting stays free of cycles, or
 * PN__A_NEVER_MUTED) or is muted already. A caller that checked a
 * condition before muting must check it again after: an open that came
 * in between found nobody to release.
 *
 * pn__gate_open: releases every actor muted on g (rescheduling the parked
 * ones). pn__gate_destroy opens it, then frees its lock. Any thread. */
typedef struct pn__gate {
  pthread_mutex_t lock;
  pn_actor *list; /* muted on it, held, linked by mute_next */
} pn__gate;
void pn__gate_init(pn__gate *g);
bool pn__gate_mute(pn__gate *g);
void pn__gate_open(pn__gate *g);
void pn__gate_destroy(pn__gate *g);
void pn__mailbox_note_taken(pn__worker *w, pn_actor *a, uint32_t taken);
void pn__actor_went_idle(pn__worker *w, pn_actor *a);

/* Marks an actor stopped: off the registry, DEAD (so sends fail), its
 * muted senders released, counted for shutdown. Its mailbox is still to be
 * drained and the runtime's reference given back by the caller. */
void pn__actor_mark_stopped(pn__worker *w, pn_actor *a);

/* Runs a scheduled actor on w (a bounded batch, then idles, reschedules,
 * parks or finishes stopping). Worker only. */
void pn__actor_run(pn__worker *w, pn_actor *a);

/* Queues an envelope for a and schedules a if it was idle. cur is the
 * calling worker or NULL. Never fails: a stopped receiver drops it later. */
void pn__actor_deliver(pn__worker *cur, pn_actor *a, pn_msg *m);

/* pn_send() for the library's own reserved message types, with the payload
 * gathered from two parts (either may be empty). Same errors as pn_send()
 * except the type check. Any thread. */
pn_err pn__send_parts(pn_actor *to, uint32_t type, const void *a, size_t alen,
                      const void *b, size_t blen);

/* pn_send_buf() for the library's own reserved message types; the caller
 * checked the arguments. Any thread. */
pn_err pn__send_buf(pn_actor *to, uint32_t type, void *data, size_t size,
                    pn_free_fn free_fn, void *ctx);

/* Envelopes built before they are sent (the library's events): a buffer
 * message whose size bytes live inline, 16-aligned, in the envelope itself,
 * with free_fn called on them when the envelope is freed (delivered,
 * dropped or discarded). pn__envelope_new returns NULL when out of memory;
 * *data_out is zeroed. pn__envelope_send hands m over (PN_ECLOSED: the
 * receiver stopped and m was freed). pn__envelope_free frees an unsent one.
 * Any thread. */
pn_msg *pn__envelope_new(pn_runtime *rt, uint32_t type, size_t size,
                         pn_free_fn free_fn, void **data_out);
pn_err pn__envelope_send(pn_actor *to, pn_msg *m);
void pn__envelope_free(pn_runtime *rt, pn_msg *m);

/* Small objects from the worker's envelope pools instead of malloc: what
 * the library allocates per message (outgoing messages, packets). NULL
 * when out of memory. pn__block_free takes any block of rt, from any
 * thread (blocks go back to their home pool in batches). */
void *pn__block_alloc(pn_runtime *rt, size_t size);
void pn__block_free(pn_runtime *rt, void *block);

/* Pushes everything the running handler sent (see pn__outbox). Worker
 * only; called when a run ends. */
void pn__outbox_flush(pn__worker *w);

#endif
