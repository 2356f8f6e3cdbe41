/* Worker threads: picking, stealing, spinning and sleeping. See worker.h. */
#include "runtime/worker.h"

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/tsan.h"

_Thread_local pn__worker *pn__tls_worker
    __attribute__((tls_model("initial-exec")));

/* Picks between fairness checks of the inject queues (a prime, as in Go,
 * so it does not beat with other periodic patterns). */
#define INJECT_CHECK_EVERY 61u
/* Picks between timer checks while busy. */
#define TIMER_CHECK_EVERY 32u
/* Consecutive run-next picks before queued actors get a turn. */
#define RUN_NEXT_STREAK_MAX 16u

/* The Dekker handshake between a thread that publishes work and a worker
 * going to sleep needs a seq_cst fence on each side. ThreadSanitizer does
 * not model fences (GCC refuses to compile them under it), so sanitizer
 * builds use read-modify-writes on the flag itself, which order the same
 * way through the flag's modification order and which it does model. */

static uint32_t sleepers_after_publish(pn_runtime *rt) {
#ifdef PN__TSAN
  /* acq_rel: the release half pairs with the acquire half of the seq_cst
   * fetch_add in worker_sleep() when ours comes first in nsleeping's order
   * (the sleeper then sees our work); otherwise ours reads its count. */
  return atomic_fetch_add_explicit(&rt->nsleeping, 0, memory_order_acq_rel);
#else
  /* seq_cst fence: orders the work we published before the read of the
   * sleeper count; pairs with the seq_cst fence in worker_sleep(). */
  atomic_thread_fence(memory_order_seq_cst);
  return atomic_load_explicit(&rt->nsleeping, memory_order_relaxed);
#endif
}

static uint32_t sleeping_after_publish(pn__worker *w) {
#ifdef PN__TSAN
  /* acq_rel: pairs with the seq_cst exchange of sleeping in worker_sleep(),
   * as in sleepers_after_publish(). */
  return atomic_fetch_or_explicit(&w->sleeping, 0, memory_order_acq_rel);
#else
  /* seq_cst fence: pairs with the seq_cst fence in worker_sleep(), as in
   * sleepers_after_publish(). */
  atomic_thread_fence(memory_order_seq_cst);
  return atomic_load_explicit(&w->sleeping, memory_order_relaxed);
#endif
}

static void wake_if_sleeping(pn__worker *w) {
  uint32_t expected = 1;
  /* acq_rel: claims the wakeup so concurrent wakers write the eventfd once.
   * The acquire half pairs with the sleeper's seq_cst exchange to 1 in
   * worker_sleep(), the release half with its next one; neither orders
   * anything the sleeper reads (the work was published before
   * sleeping_after_publish() or sleepers_after_publish()). Kept: a wakeup
   * costs a system call anyway. */
  if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) == 1 &&
      atomic_compare_exchange_strong_explicit(&w->sleeping, &expected, 0,
                                              memory_order_acq_rel,
                                              memory_order_relaxed)) {
    w->rt->io->wake(w);
  }
}

void pn__worker_wake(pn__worker *w) {
  if (sleeping_after_publish(w)) {
    wake_if_sleeping(w);
  }
}

void pn__wake_one(pn_runtime *rt) {
  if (sleepers_after_publish(rt) == 0) {
    return;
  }
  uint32_t n = rt->nworkers;
  uint32_t start =
      atomic_fetch_add_explicit(&rt->wake_cursor, 1, memory_order_relaxed) % n;
  for (uint32_t i = 0; i < n; i++) {
    pn__worker *w = &rt->workers[(start + i) % n];
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed) == 1) {
      wake_if_sleeping(w);
      return;
    }
  }
}

void pn__schedule(pn__worker *cur, pn_actor *a, bool woken) {
  pn_runtime *rt = a->rt;
  if (a->home >= 0 && (!cur || cur->index != (uint32_t)a->home)) {
    pn__worker *home = &rt->workers[a->home];
    pn__injectq_push(&home->inbox, a);
    pn__worker_wake(home);
    return;
  }
  if (!cur) {
    pn__injectq_push(&rt->global, a);
    pn__wake_one(rt);
    return;
  }
  if (woken) {
    /* The run-next slot is touched by its owner only, so plain relaxed
     * accesses suffice; the displaced actor goes to the queue. */
    pn_actor *prev = atomic_load_explicit(&cur->run_next, memory_order_relaxed);
    atomic_store_explicit(&cur->run_next, a, memory_order_relaxed);
    if (!prev) {
      return;
    }
    a = prev;
  }
  if (!pn__runq_push(&cur->q, a)) {
    pn__injectq_push(&rt->global, a);
  }
  pn__wake_one(rt);
}

static pn_actor *pick_local(pn__worker *w) {
  pn_runtime *rt = w->rt;
  pn_actor *a;
  if (++w->tick % INJECT_CHECK_EVERY == 0) {
    a = pn__injectq_pop(&w->inbox);
    if (!a) {
      a = pn__injectq_pop(&rt->global);
    }
    if (a) {
      return a;
    }
  }
  a = atomic_load_explicit(&w->run_next, memory_order_relaxed);
  if (a) {
    atomic_store_explicit(&w->run_next, NULL, memory_order_relaxed);
    if (++w->run_next_streak < RUN_NEXT_STREAK_MAX ||
        !pn__runq_push(&w->q, a)) {
      return a;
    }
    /* A pair bouncing messages would otherwise hold the worker forever. */
    w->run_next_streak = 0;
    return pn__runq_pop(&w->q);
  }
  w->run_next_streak = 0;
  a = pn__runq_pop(&w->q);
  if (!a) {
    a = pn__injectq_pop(&w->inbox);
  }
  if (!a) {
    a = pn__injectq_pop(&rt->global);
  }
  return a;
}

static uint64_t next_random(pn__worker *w) {
  /* xorshift64: victim choice only needs to be spread out. */
  uint64_t x = w->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  w->rng = x;
  return x;
}

static pn_actor *steal(pn__worker *w) {
  pn_runtime *rt = w->rt;
  uint32_t n = rt->nworkers;
  if (n == 1) {
    return NULL;
  }
  uint32_t start = (uint32_t)(next_random(w) % n);
  for (uint32_t i = 0; i < n; i++) {
    pn__worker *v = &rt->workers[(start + i) % n];
    if (v == w) {
      continue;
    }
    uint32_t moved = pn__runq_steal(&v->q, &w->q);
    if (moved) {
      pn__tr(w, PN__TR_STEAL, v->index, moved);
      pn__stat_add(&w->steals, 1);
      pn__stat_add(&w->stolen_actors, moved);
      return pn__runq_pop(&w->q);
    }
  }
  return NULL;
}

/* A busy worker still looks at I/O every few picks: readiness must not wait
 * for the worker to run out of actors. */
static void poll_io(pn__worker *w) {
  if (atomic_load_explicit(&w->io_sources, memory_order_relaxed)) {
    pn__stat_add(&w->io_calls, 1);
    w->rt->io->poll(w);
  }
}

static void fire_timers(pn__worker *w) {
  if (w->timers.count ||
      atomic_load_explicit(&w->timers.inbox_len, memory_order_relaxed)) {
    pn__timer_heap_fire(w, pn__now_ns());
  }
}

static bool timers_due(pn__worker *w) {
  if (!w->timers.count &&
      !atomic_load_explicit(&w->timers.inbox_len, memory_order_relaxed)) {
    return false;
  }
  return pn__timer_heap_timeout_ns(w, pn__now_ns()) == 0;
}

/* Anything this worker could run or take right now. */
static bool has_work(pn__worker *w) {
  pn_runtime *rt = w->rt;
  if (atomic_load_explicit(&w->run_next, memory_order_relaxed) ||
      pn__runq_len(&w->q) || pn__injectq_len(&w->inbox) ||
      pn__injectq_len(&rt->global) || timers_due(w)) {
    return true;
  }
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    if (pn__runq_len(&rt->workers[i].q)) {
      return true;
    }
  }
  return false;
}

static void run_one(pn__worker *w, pn_actor *a) {
  if (a->home >= 0 && (uint32_t)a->home != w->index) {
    /* Stolen along with others; it belongs to its home worker. */
    pn__schedule(w, a, false);
    return;
  }
  pn__stat_add(&w->runs, 1);
  pn__actor_run(w, a);
}

/* Busy-waits up to spin_ns for work, stealing along the way. */
static bool spin_for_work(pn__worker *w) {
  pn_runtime *rt = w->rt;
  if (!rt->spin_ns) {
    return false;
  }
  uint64_t deadline = pn__now_ns() + rt->spin_ns;
  for (uint32_t i = 1;; i++) {
    if (atomic_load_explicit(&rt->exit_workers, memory_order_relaxed)) {
      return false;
    }
    if (has_work(w)) {
      return true;
    }
    for (int k = 0; k < 4; k++) {
      pn__cpu_relax();
    }
    /* A PAUSE costs about 140 cycles on recent Intel cores, so this looks
     * at I/O roughly every microsecond: a datagram arriving while the
     * worker spins is picked up at once, not at the next sleep. */
    if ((i & 3u) == 0) {
      poll_io(w);
      if (pn__now_ns() >= deadline) {
        return has_work(w);
      }
    }
  }
}

/* How often an idle worker gives its pool's excess back. */
#define POOL_SHRINK_EVERY_NS 1000000000u

static void worker_sleep(pn__worker *w) {
  pn_runtime *rt = w->rt;
  pn__msg_pool_flush(rt, w);
  /* About to wait: a good moment to hand back what a past burst left in
   * the pool, and the heap's free pages with it (alloc.h). */
  uint64_t now = pn__now_ns();
  if (now - w->pool_shrunk_ns >= POOL_SHRINK_EVERY_NS) {
    w->pool_shrunk_ns = now;
    size_t freed = pn__msg_pool_shrink(&w->pool);
    /* The application threads' pool too, by worker 0, if nobody holds
     * it (their sends take it: never wait for them here). */
    if (w->index == 0 && pthread_mutex_trylock(&rt->ext_lock) == 0) {
      freed += pn__msg_pool_shrink(&rt->ext_pool);
      pthread_mutex_unlock(&rt->ext_lock);
    }
    pn__alloc_released(freed);
  }
  int64_t trim_in = pn__alloc_idle_trim(now);
  /* seq_cst: the flag, the count and the fence order our next look at the
   * queues after them. The exchange pairs with sleeping_after_publish() and
   * the CAS in wake_if_sleeping(), the fetch_add with
   * sleepers_after_publish(), the fence with the fences in both (in
   * ThreadSanitizer builds, with their read-modify-writes instead). */
  atomic_exchange_explicit(&w->sleeping, 1, memory_order_seq_cst);
  atomic_fetch_add_explicit(&rt->nsleeping, 1, memory_order_seq_cst);
#ifndef PN__TSAN
  atomic_thread_fence(memory_order_seq_cst);
#endif
  /* seq_cst: pairs with the seq_cst store in join_workers() (runtime.c).
   * What guarantees the exit is the wake join_workers() sends every worker
   * after its store (an eventfd write, which also ends a wait begun after
   * it); acquire would do here, seq_cst is kept as this is the slow path. */
  if (!has_work(w) &&
      !atomic_load_explicit(&rt->exit_workers, memory_order_seq_cst)) {
    uint64_t t0 = pn__now_ns();
    pn__stat_add(&w->io_calls, 1);
    int64_t timeout = pn__timer_heap_timeout_ns(w, t0);
    if (trim_in > 0 && (timeout < 0 || trim_in < timeout)) {
      /* Memory is waiting to go back: come back when the trim may run,
       * and the pool's shrink with it. */
      timeout = trim_in;
      w->pool_shrunk_ns = 0;
    }
    /* release, both stores: pair with the acquire load in the snapshot
     * (stats.c), so a reader's clock, read after it loads the word, is
     * not behind the t0 or t1 the word was made from. */
    atomic_store_explicit(&w->idle_clock, (w->idle_total_ns - t0) << 1 | 1u,
                          memory_order_release);
    rt->io->wait(w, timeout);
    uint64_t t1 = pn__now_ns();
    w->idle_total_ns += t1 - t0;
    atomic_store_explicit(&w->idle_clock, w->idle_total_ns << 1,
                          memory_order_release);
    pn__stat_add(&w->wakeups, 1);
  }
  atomic_store_explicit(&w->sleeping, 0, memory_order_relaxed);
  atomic_fetch_sub_explicit(&rt->nsleeping, 1, memory_order_relaxed);
}

void *pn__worker_main(void *arg) {
  pn__worker *w = arg;
  pn_runtime *rt = w->rt;
  pn__tls_worker = w;
  pn_err err = rt->io->thread_start(w);
  pthread_mutex_lock(&rt->done_lock);
  if (err != PN_OK && rt->start_err == PN_OK) {
    rt->start_err = err;
  }
  rt->workers_started++;
  pthread_cond_broadcast(&rt->done_cv);
  pthread_mutex_unlock(&rt->done_lock);
  w->cpu_rng = 0x9E3779B9u ^ (w->index * 0x85EBCA6Bu) ^ 1u;
  w->cpu_gap = 1;
  for (;;) {
    pn_actor *a = pick_local(w);
    if (!a || w->tick % TIMER_CHECK_EVERY == 0) {
      fire_timers(w);
      poll_io(w);
      if (!a) {
        a = pick_local(w);
      }
    }
    if (!a) {
      a = steal(w);
    }
    if (a) {
      run_one(w, a);
      if (w->io_submit_pending) {
        /* What the run queued (sends) goes to the kernel now, once for
         * the whole turn, and what completed is handled. */
        w->io_submit_pending = false;
        pn__stat_add(&w->io_calls, 1);
        rt->io->poll(w);
      }
      continue;
    }
    if (w->trace_mask) {
      pn__trace_idle(&w->trace);
    }
    if (spin_for_work(w)) {
      continue;
    }
    /* acquire: pairs with the seq_cst store in join_workers() (runtime.c);
     * every actor has stopped, so only drain runs can remain and
     * has_work() finds them. */
    if (atomic_load_explicit(&rt->exit_workers, memory_order_acquire) &&
        !has_work(w)) {
      break;
    }
    worker_sleep(w);
  }
  pn__msg_pool_flush(rt, w);
  pn__tls_worker = NULL;
  return NULL;
}
