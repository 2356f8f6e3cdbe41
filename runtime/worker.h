/* Workers: one thread each, running actors from their run queues.
 *
 * A worker picks, in order: every 61st pick the inject queues (so a busy
 * local queue cannot starve them), the "run next" slot (the actor this
 * worker's last run woke, so a request/reply pair stays on one core and in
 * cache), its local queue, its inbox of actors homed here, the global inject
 * queue, due timers, and other workers' queues (stealing the oldest half).
 * With nothing found it spins for spin_us, then sleeps in the I/O backend's
 * wait.
 *
 * Sleeping (Dekker style, no lost wakeups): the worker sets its sleeping flag
 * and the runtime's sleeper count (seq_cst), then checks every source once
 * more before waiting. A thread that publishes work issues a seq_cst fence
 * and then reads the sleeper count; one of the two sees the other.
 */
#ifndef PN_RUNTIME_WORKER_H
#define PN_RUNTIME_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/io/io.h"
#include "runtime/msg.h"
#include "runtime/runq.h"
#include "runtime/timer.h"
#include "runtime/trace.h"

/* Sends made by a handler are collected per receiver and pushed as one
 * chain when the run ends: one exchange on the receiver's mailbox per run
 * instead of one per message, which is what makes fan-in scale across
 * cores. Order per sender and receiver is kept. */
#define PN__OUTBOX_SLOTS 8u
#define PN__OUTBOX_CHAIN_MAX 256u

/* Work a handler's sends leave for the end of its run (pn__worker_defer,
 * actor.h). */
#define PN__DEFERRED_MAX 16u
typedef struct pn__deferred {
  void (*fn)(void *ctx);
  void *ctx;
} pn__deferred;

typedef struct pn__outbox_slot {
  pn_actor *to;
  pn_msg *first;
  pn_msg *last;
  uint32_t count;
} pn__outbox_slot;

struct pn__worker {
  pn__runq q; /* cache-line aligned */
  _Atomic(pn_actor *) run_next;
  pn_runtime *rt;
  uint32_t index;
  uint32_t tick;            /* picks so far, for the fairness checks */
  uint32_t run_next_streak; /* consecutive picks from run_next */
  uint64_t rng;             /* steal victim choice */
  uint32_t cpu_rng;         /* CPU-time sampling draws */
  uint32_t cpu_gap;         /* runs until the next timed one */
  pthread_t thread;
  bool thread_started;
  _Alignas(64) _Atomic uint32_t sleeping; /* 1 while in (or entering) wait */
  _Atomic uint32_t io_sources;            /* fds watched by this worker */
  bool io_submit_pending; /* owner only: poll the backend after this run
                             (submissions queued, or datagrams just sent) */
  pn__injectq inbox;      /* actors homed here */
  pn__io_worker io;
  pn__msg_pool pool;
  uint64_t pool_shrunk_ns; /* owner only: when the idle shrink last ran */
  uint64_t idle_total_ns;  /* owner only: idle time of the finished waits */
  /* Under the runtime's reg_lock: the idle time and uptime the last
   * snapshot reported, which the next one is held to (stats.c). */
  uint64_t snap_idle_ns;
  uint64_t snap_uptime_ns;
  pn__timer_heap timers;
  pn__trace_ring trace;  /* flight recorder; trace.ev NULL when off */
  uint64_t trace_run_ts; /* start of the run in progress, 0 between runs */
  uint32_t trace_mask;   /* bit k: record kind k; 0 when tracing is off */
  uint32_t outbox_used;
  bool hist;   /* the runtime keeps histograms: stamp what the outbox pushes */
  bool in_run; /* a handler of pn__actor_run() is running (deferrals) */
  uint32_t ndeferred;
  pn__deferred deferred[PN__DEFERRED_MAX];
  pn__outbox_slot outbox[PN__OUTBOX_SLOTS];
  /* Stats: written by the owner only (relaxed), read by any thread. */
  _Alignas(64) _Atomic uint64_t runs;
  _Atomic uint64_t steals;
  _Atomic uint64_t stolen_actors;
  _Atomic uint64_t wakeups;
  /* Idle time, readable at any moment (pn__worker_idle_ns): while the
   * worker waits, bit 0 is set and the rest is (idle time before this wait
   * - its start) modulo 2^63, to which a reader adds its own clock; between
   * waits the rest is the idle time so far. One word, so a reader never
   * pairs a total with a wait it does not belong to, and a wait counts as
   * idle while it lasts, not only once it returns. */
  _Atomic uint64_t idle_clock;
  _Atomic uint64_t timers_fired;
  _Atomic uint64_t io_calls; /* backend waits and polls (syscalls) */
};

/* The worker running on this thread (any runtime), or NULL. */
extern _Thread_local pn__worker *pn__tls_worker
    __attribute__((tls_model("initial-exec")));

/* The worker of the calling thread if it belongs to rt, else NULL. */
static inline pn__worker *pn__worker_current(const pn_runtime *rt) {
  pn__worker *w = pn__tls_worker;
  return w && w->rt == rt ? w : NULL;
}

/* Thread entry point. */
void *pn__worker_main(void *arg);

/* Makes a runnable actor run soon. cur is the calling worker (same runtime)
 * or NULL. woken says the caller just made it runnable by a send, which puts
 * it in cur's run-next slot. */
void pn__schedule(pn__worker *cur, pn_actor *a, bool woken);

/* Wakes w if it sleeps. Any thread. */
void pn__worker_wake(pn__worker *w);

/* Wakes one sleeping worker, if any. Any thread. */
void pn__wake_one(pn_runtime *rt);

/* Whether w is a worker that records events of this kind. */
static inline bool pn__tr_on(const pn__worker *w, uint32_t kind) {
  return w && (w->trace_mask >> kind & 1u);
}

/* Records an instant event on w's flight recorder, if w is a worker and
 * records this kind. */
static inline void pn__tr(pn__worker *w, uint32_t kind, uint64_t a,
                          uint64_t b) {
  if (pn__tr_on(w, kind)) {
    /* Inside a run, events take the run's start time: no clock read for
     * them (the run's span holds them anyway), and the run's own event,
     * written when it ends, keeps the ring in time order. */
    uint64_t ts = w->trace_run_ts ? w->trace_run_ts : pn__trace_now(&w->trace);
    pn__trace_put(&w->trace, kind, ts, a, b);
  }
}

/* The idle time, in nanoseconds, that a word loaded from a worker's
 * idle_clock (acquire) stands for at now_ns, a pn__now_ns() reading taken
 * after that load. A wait that ends while a reader extrapolates it can be
 * counted up to the moment the worker publishes its end (nanoseconds,
 * unless the worker is preempted right then), so a reader whose figures
 * must never run backwards or faster than the clock holds them to its
 * previous ones (stats.c does). Pure. */
static inline uint64_t pn__worker_idle_ns(uint64_t clock_word,
                                          uint64_t now_ns) {
  const uint64_t mask = UINT64_MAX >> 1;
  return clock_word & 1u ? ((clock_word >> 1) + now_ns) & mask
                         : clock_word >> 1;
}

/* Single-writer counter bump: a plain load and store, no lock prefix;
 * readers on other threads see a recent value. */
static inline void pn__stat_add(_Atomic uint64_t *c, uint64_t v) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                        memory_order_relaxed);
}

#endif
