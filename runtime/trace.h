/* The flight recorder: a fixed ring of events per worker, written only by
 * that worker, with no locks. Off, recording costs one load and a branch.
 * Dumped as Chrome trace-event JSON on demand and at shutdown.
 *
 * Fields are relaxed atomics so a dump on another thread reads them
 * without a data race; an event overwritten during the dump may come out
 * torn, which the dump tolerates (a flight recorder, not a log). */
#ifndef PN_RUNTIME_TRACE_H
#define PN_RUNTIME_TRACE_H

#include <stdatomic.h>
#include <stdint.h>

#include "peernet/error.h"
#include "runtime/clock.h"

typedef struct pn__worker pn__worker;
typedef struct pn_runtime pn_runtime;

enum pn__trace_kind {
  PN__TR_RUN = 1,     /* a: actor id, b: messages handled; has duration */
  PN__TR_SEND,        /* a: sender id (0: not an actor), b: receiver id */
  PN__TR_SPAWN,       /* a: new actor id */
  PN__TR_STOP,        /* a: actor id */
  PN__TR_MUTE,        /* a: muted sender id, b: receiver id */
  PN__TR_UNMUTE,      /* a: receiver id */
  PN__TR_STEAL,       /* a: victim worker, b: actors taken */
  PN__TR_IO_SUBMIT,   /* a: socket id, b: messages submitted */
  PN__TR_IO_COMPLETE, /* a: socket id, b: bytes or -errno */
  PN__TR_PACKET_SEND, /* a: socket id, b: datagrams */
  PN__TR_PACKET_RECV, /* a: socket id, b: bytes */
  PN__TR_ACK,         /* protocol: a: peer id, b: sequence */
  PN__TR_RETRANSMIT,  /* protocol: a: peer id, b: sequence */
  PN__TR_KINDS
};

typedef struct pn__trace_event {
  _Atomic uint64_t ts; /* TSC at the event (or run start), never below
                          the worker's previous event */
  _Atomic uint64_t a;
  _Atomic uint64_t b;
  _Atomic uint32_t kind;
  _Atomic uint32_t dur; /* TSC ticks, runs only */
} pn__trace_event;

typedef struct pn__trace_ring {
  pn__trace_event *ev; /* NULL when tracing is off */
  uint64_t mask;
  uint64_t last_ts;      /* owner only */
  uint32_t reads;        /* owner only: clock reads skipped in between */
  _Atomic uint64_t next; /* events written so far */
} pn__trace_ring;

/* Allocates the ring (events rounded up to a power of two). */
pn_err pn__trace_ring_init(pn__trace_ring *r, uint32_t events);
void pn__trace_ring_fini(pn__trace_ring *r);

static inline void pn__trace_put(pn__trace_ring *r, uint32_t kind, uint64_t ts,
                                 uint32_t dur, uint64_t a, uint64_t b) {
  uint64_t n = atomic_load_explicit(&r->next, memory_order_relaxed);
  pn__trace_event *e = &r->ev[n & r->mask];
  atomic_store_explicit(&e->ts, ts, memory_order_relaxed);
  atomic_store_explicit(&e->a, a, memory_order_relaxed);
  atomic_store_explicit(&e->b, b, memory_order_relaxed);
  atomic_store_explicit(&e->dur, dur, memory_order_relaxed);
  atomic_store_explicit(&e->kind, kind, memory_order_relaxed);
  /* release: a dump that reads next sees the event's fields. */
  atomic_store_explicit(&r->next, n + 1, memory_order_release);
}

/* The TSC is the cheapest clock, but a worker that moves to another CPU
 * may read a slightly lower value there; clamping keeps each worker's
 * events in time order. */
static inline uint64_t pn__trace_now(pn__trace_ring *r) {
  /* The clock is read on every 8th call only, and advanced by one tick in
   * between: a TSC read costs about a third of the cheapest actor hop,
   * and the recorder's time resolution (about 100 ns when runs are that
   * short) is what a trace viewer can show anyway. */
  if ((r->reads++ & 7u) == 0) {
    uint64_t t = pn__ticks();
    r->last_ts = t > r->last_ts ? t : r->last_ts + 1;
  } else {
    r->last_ts++;
  }
  return r->last_ts;
}

/* A run: its event goes in at the start, so the ring stays in time order,
 * and its duration is filled in at the end (unless the ring has lapped it,
 * which only a run that logged a whole ring of events inside can see). */
static inline uint64_t pn__trace_begin(pn__trace_ring *r, uint32_t kind,
                                       uint64_t ts, uint64_t a) {
  uint64_t n = atomic_load_explicit(&r->next, memory_order_relaxed);
  pn__trace_put(r, kind, ts, 0, a, 0);
  return n;
}

static inline void pn__trace_end(pn__trace_ring *r, uint64_t slot, uint32_t dur,
                                 uint64_t b) {
  if (atomic_load_explicit(&r->next, memory_order_relaxed) - slot <= r->mask) {
    pn__trace_event *e = &r->ev[slot & r->mask];
    atomic_store_explicit(&e->b, b, memory_order_relaxed);
    atomic_store_explicit(&e->dur, dur, memory_order_relaxed);
  }
}

/* Writes every worker's ring to path. Any thread. */
pn_err pn__trace_dump(pn_runtime *rt, const char *path);

#endif
