/* The flight recorder: a fixed ring of events per worker, written only by
 * that worker, with no locks. Off, a recording site costs one load and a
 * branch. Dumped as Chrome trace-event JSON on demand and at shutdown.
 *
 * Fields are relaxed atomics so a dump on another thread reads them
 * without a data race; an event overwritten during the dump may come out
 * torn, which the dump tolerates (a flight recorder, not a log).
 *
 * Adding an event kind: give it a value before PN__TR_KINDS below (say
 * what its two arguments hold), a name and a category in trace.c
 * (kind_name[], kind_category[]), and record it with pn__tr(w, kind, a, b)
 * where it happens. A kind in a new category also needs a PN_TRACE_... bit
 * in peernet/runtime.h (and in PN_TRACE_ALL) and the category's name in
 * trace.c (category_name[]); users then switch it with trace_categories. */
#ifndef PN_RUNTIME_TRACE_H
#define PN_RUNTIME_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "runtime/clock.h"

typedef struct pn__worker pn__worker;
typedef struct pn_runtime pn_runtime;

enum pn__trace_kind {
  PN__TR_RUN = 1,        /* a: actor id, b: messages handled | duration << 32 */
  PN__TR_SEND,           /* a: sender id (0: not an actor), b: receiver id */
  PN__TR_SPAWN,          /* a: new actor id */
  PN__TR_STOP,           /* a: actor id */
  PN__TR_MUTE,           /* a: muted sender id, b: receiver id */
  PN__TR_UNMUTE,         /* a: receiver id */
  PN__TR_STEAL,          /* a: victim worker, b: actors taken */
  PN__TR_IO_SUBMIT,      /* a: socket id, b: messages submitted */
  PN__TR_IO_COMPLETE,    /* a: socket id, b: bytes or -errno */
  PN__TR_PACKET_SEND,    /* a: socket id, b: datagrams */
  PN__TR_PACKET_RECV,    /* a: socket id, b: bytes */
  PN__TR_ACK,            /* a: peer id, b: datagram sequence acknowledged */
  PN__TR_RETRANSMIT,     /* a: peer id, b: channel sequence of the message */
  PN__TR_REMOTE_SEND,    /* a: sender id (0: not an actor), b: the actor on
                            another node */
  PN__TR_REMOTE_DELIVER, /* a: receiver id, b: the sender on the other node
                            (0: not an actor) */
  PN__TR_KINDS
};

_Static_assert(PN__TR_KINDS <= 32, "kinds are bits of a 32-bit mask");

/* 24 bytes, three stores: the kind rides in the low byte of the
 * timestamp word (56 bits of TSC last 300 days at 3 GHz, and the dump
 * takes differences modulo 2^56). */
typedef struct pn__trace_event {
  _Atomic uint64_t ts_kind; /* ts << 8 | kind; 0 while never written */
  _Atomic uint64_t a;
  _Atomic uint64_t b;
} pn__trace_event;

/* The clock is read on every PN__TRACE_READ_EVERY-th request; in between
 * the time advances by the mean step the last interval measured. When
 * that step is at least PN__TRACE_LONG_STEP ticks (about 1 us), a read
 * costs under 1% of what happens between requests, and every request
 * reads; so do the first PN__TRACE_READ_EVERY requests after the worker
 * idled, which are cheap next to the idle time. */
#define PN__TRACE_READ_EVERY 32u
#define PN__TRACE_LONG_STEP 2500u

typedef struct pn__trace_ring {
  /* Where the next event goes; advanced by the owner with release stores
   * (a plain store on x86: no atomic read-modify-write per event). */
  _Atomic(pn__trace_event *) pos;
  pn__trace_event *end; /* ev + capacity */
  pn__trace_event *ev;  /* NULL when tracing is off */
  _Atomic bool wrapped; /* pos went round at least once */
  /* The recorder's clock, owner only. */
  uint64_t cur;        /* the earliest time the next request may get */
  uint64_t last_read;  /* last TSC value actually read */
  uint64_t step;       /* ticks per request, estimated */
  uint32_t until_read; /* requests left before the next read */
  uint32_t interval;   /* requests between reads: READ_EVERY or 1 */
  uint32_t exact_left; /* reads left that read every request (after idle) */
  bool step_valid;     /* last_read..now was a busy interval */
} pn__trace_ring;

/* Allocates the ring (events rounded up to a power of two). */
pn_err pn__trace_ring_init(pn__trace_ring *r, uint32_t events);
void pn__trace_ring_fini(pn__trace_ring *r);

/* The per-kind mask (bit k: record kind k) for PN_TRACE_... categories. */
uint32_t pn__trace_kind_mask(uint32_t categories);

static inline void pn__trace_put(pn__trace_ring *r, uint32_t kind, uint64_t ts,
                                 uint64_t a, uint64_t b) {
  pn__trace_event *e = atomic_load_explicit(&r->pos, memory_order_relaxed);
  atomic_store_explicit(&e->ts_kind, ts << 8 | kind, memory_order_relaxed);
  atomic_store_explicit(&e->a, a, memory_order_relaxed);
  atomic_store_explicit(&e->b, b, memory_order_relaxed);
  /* The ring is bigger than L2: asking for the line 2 KiB ahead now
   * hides the miss its first store would take (about 1% of a ping-pong). */
  __builtin_prefetch((const char *)e + 2048, 1, 3);
  if (__builtin_expect(++e == r->end, 0)) {
    e = r->ev;
    atomic_store_explicit(&r->wrapped, true, memory_order_relaxed);
  }
  /* release: pairs with the acquire load of pos in pn__trace_dump()
   * (trace.c): a dump that reads pos sees the fields of the events before
   * it, and wrapped. */
  atomic_store_explicit(&r->pos, e, memory_order_release);
}

/* Reads the TSC (the slow path of pn__trace_now). */
uint64_t pn__trace_clock_read(pn__trace_ring *r);

/* The recorder's time, never decreasing. A TSC read costs about a quarter
 * of the cheapest actor hop (7 ns in a VM), so while requests come that
 * fast the clock is read on every 32nd only, and in between the time
 * advances by the mean step of the last busy interval: a sustained stream
 * of short runs gets evenly spread times anchored to the clock every 32
 * requests, a stream of long ones, and the first 32 requests after the
 * worker idled (pn__trace_idle), get the clock on every request. A worker
 * that moves to another CPU may read a slightly lower TSC there, and an
 * estimate may have run ahead: times are clamped so each worker's events
 * stay in order. */
static inline uint64_t pn__trace_now(pn__trace_ring *r) {
  if (--r->until_read) {
    uint64_t t = r->cur;
    r->cur = t + r->step;
    return t;
  }
  return pn__trace_clock_read(r);
}

/* The duration of a run that started at t0 (a pn__trace_now() value, with
 * no request since). A run whose start read the clock reads it again: in a
 * sustained stream of short runs one in 32 is timed exactly, and the
 * others are given the estimated step, which ends them where the next
 * request begins, so back-to-back runs tile the time between two reads;
 * every other run is timed exactly. */
static inline uint64_t pn__trace_run_dur(pn__trace_ring *r, uint64_t t0) {
  if (r->until_read != r->interval) {
    return r->step;
  }
  uint64_t t1 = pn__ticks();
  if (t1 <= t0) {
    return 0;
  }
  r->cur = t1 > r->cur ? t1 : r->cur;
  return t1 - t0;
}

/* The worker found nothing to do: the next PN__TRACE_READ_EVERY requests
 * read the clock, and the idle interval is not taken for a step. */
static inline void pn__trace_idle(pn__trace_ring *r) {
  r->until_read = 1;
  r->exact_left = PN__TRACE_READ_EVERY;
  r->step_valid = false;
}

/* Events a ring asked for `events` holds. */
size_t pn__trace_ring_capacity(uint32_t events);

/* Names of actors that stopped while the recorder was on. The dump names
 * the actors its events mention, from the registry for live ones; a
 * stopped actor has left it (at shutdown, every actor has), so its name
 * is kept here when it leaves. A ring: it holds as many names as the
 * workers' rings hold events, so a name falls out only after that many
 * named actors stopped after it, each recording a stop event. Entries hold
 * a reference to their label. Everything here runs under the runtime's
 * reg_lock. */
typedef struct pn__trace_name {
  uint64_t id;
  struct pn__label *label;
} pn__trace_name;

typedef struct pn__trace_names {
  pn__trace_name *ent;
  size_t cap;   /* allocated entries, grown up to max */
  size_t max;   /* 0: the recorder is off, nothing is kept */
  size_t count; /* entries in use */
  size_t next;  /* where the next one goes once count == max */
} pn__trace_names;

/* Keeps actor id's name (label, which may be NULL: nothing is kept). Out
 * of memory, the name is not kept and the dump shows the id alone. */
void pn__trace_names_note(pn_runtime *rt, uint64_t id, struct pn__label *label);

/* Frees the entries; the labels themselves go with the label table. */
void pn__trace_names_fini(pn__trace_names *n);

/* Writes every worker's ring to path, naming the actors it mentions. Any
 * thread; takes the registry lock while it copies the names. */
pn_err pn__trace_dump(pn_runtime *rt, const char *path);

#endif
