/* Runtime lifetime: create, shutdown (two phases: stop every actor, then
 * join the workers) and destroy (free, or refuse while handles are held). */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peernet/peernet.h"
#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "runtime/err_os.h"
#include "runtime/lock.h"
#include "runtime/observer.h"
#include "runtime/rt.h"

/* How long pn_runtime_destroy() waits for running handlers to return. */
#define PN__DESTROY_WAIT_US (10u * 1000000u)

const char *pn_version(void) { return "0.1.0"; }

static uint32_t online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (uint32_t)n : 1u;
}

uint32_t pn_runtime_workers(const pn_runtime *rt) {
  return rt ? rt->nworkers : 0;
}

const char *pn_runtime_io_name(const pn_runtime *rt) {
  return rt ? rt->io->name : "none";
}

uint64_t pn__ticks_to_ns(const pn_runtime *rt, uint64_t ticks) {
  uint64_t dt = pn__ticks() - rt->tick0;
  uint64_t dns = pn__now_ns() - rt->ns0;
  if (dt == 0 || dns == 0) {
    return ticks;
  }
  return (uint64_t)((long double)ticks * (long double)dns / (long double)dt);
}

/* Nanoseconds per TSC tick, for histograms that bucket as they record.
 * Measured from the runtime's creation, which starting the workers has
 * already made take a while; stretched to at least 200 us (0.01% with a
 * clock good to 20 ns), far finer than a log2 bucket. Must run before any
 * actor can run: messages are timed with it. */
static uint64_t calibrate_ticks_q32(const pn_runtime *rt) {
  uint64_t ns;
  while ((ns = pn__now_ns() - rt->ns0) < 200000) {
    pn__cpu_relax();
  }
  uint64_t ticks = pn__ticks() - rt->tick0;
  double ns_per_tick = ticks ? (double)ns / (double)ticks : 1.0;
  return (uint64_t)(ns_per_tick * 4294967296.0 + 0.5);
}

static void worker_fini(pn_runtime *rt, pn__worker *w) {
  pn__trace_ring_fini(&w->trace);
  pn__timer_heap_fini(rt, &w->timers);
  if (w->io.epfd >= 0 || w->io.wakefd >= 0) {
    rt->io->worker_fini(w);
  }
  pn__injectq_fini(&w->inbox);
}

static void runtime_free(pn_runtime *rt, uint32_t workers_inited) {
  /* Timers first: retiring them drops actor references. */
  for (uint32_t i = 0; i < workers_inited; i++) {
    worker_fini(rt, &rt->workers[i]);
  }
  for (uint32_t i = 0; i < workers_inited; i++) {
    pn__msg_pool_fini(&rt->workers[i].pool, rt->nworkers);
  }
  if (rt->ext_pool.ret_head) {
    pn__msg_pool_fini(&rt->ext_pool, rt->nworkers);
  }
  pthread_mutex_destroy(&rt->ext_lock);
  pn__monitors_fini(&rt->monitors);
  free(rt->workers);
  for (size_t i = 0; i < rt->slab_nchunks; i++) {
    free(rt->slab_chunks[i]);
  }
  free(rt->slab_chunks);
  pn__trace_names_fini(&rt->trace_names);
  pn__labels_fini(&rt->labels);
  free(rt->trace_path);
  for (uint32_t i = 0; i < PN__MUTE_STRIPES; i++) {
    pthread_mutex_destroy(&rt->mute_locks[i]);
  }
  pthread_mutex_destroy(&rt->reg_lock);
  pthread_mutex_destroy(&rt->done_lock);
  pthread_cond_destroy(&rt->done_cv);
  pn__injectq_fini(&rt->global);
  free(rt);
}

static pn_err worker_init(pn_runtime *rt, pn__worker *w, uint32_t index) {
  memset(w, 0, sizeof *w);
  w->rt = rt;
  w->index = index;
  w->rng = 0x9E3779B97F4A7C15ull * (index + 1);
  w->io.epfd = w->io.wakefd = -1;
  pn__injectq_init(&w->inbox);
  if (rt->trace_events) {
    if (pn__trace_ring_init(&w->trace, rt->trace_events) != PN_OK) {
      pn__injectq_fini(&w->inbox);
      return PN_ENOMEM;
    }
    w->trace_mask = rt->trace_mask;
  }
  w->hist = rt->stats_histograms;
  pn_err err = pn__msg_pool_init(&w->pool, rt->nworkers);
  if (err == PN_OK) {
    err = pn__timer_heap_init(&w->timers);
    if (err == PN_OK) {
      err = rt->io->worker_init(w);
      if (err != PN_OK) {
        pthread_mutex_destroy(&w->timers.inbox_lock);
      }
    }
    if (err != PN_OK) {
      pn__msg_pool_fini(&w->pool, rt->nworkers);
    }
  }
  if (err != PN_OK) {
    pn__trace_ring_fini(&w->trace);
    pn__injectq_fini(&w->inbox);
  }
  return err;
}

/* Stops and joins every started worker thread. */
static void join_workers(pn_runtime *rt) {
  /* seq_cst: pairs with the acquire load in pn__worker_main() and the
   * seq_cst load after the fence in worker_sleep() (worker.c). Release
   * would do: the wake below, sent to every worker whether it sleeps or
   * not, is what ends a wait; kept as this runs once. */
  atomic_store_explicit(&rt->exit_workers, 1, memory_order_seq_cst);
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    if (rt->workers[i].thread_started) {
      rt->io->wake(&rt->workers[i]);
    }
  }
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    if (rt->workers[i].thread_started) {
      pthread_join(rt->workers[i].thread, NULL);
      rt->workers[i].thread_started = false;
    }
  }
}

pn_err pn_runtime_create(const pn_runtime_config *cfg, pn_runtime **rt_out) {
  pn_runtime_config defaults = PN_RUNTIME_CONFIG_INIT;
  if (!rt_out) {
    return PN_EINVAL;
  }
  if (!cfg) {
    cfg = &defaults;
  }
  /* Fields added after the first release are read only when the caller's
   * struct has them (the size field says how big it was compiled). */
#define CFG_HAS(field)                                                         \
  (cfg->size >= offsetof(pn_runtime_config, field) + sizeof cfg->field)
  uint32_t trace_categories =
      CFG_HAS(trace_categories) ? cfg->trace_categories : 0;
  if (!CFG_HAS(stats_cpu_time) || cfg->workers > PN__MAX_WORKERS ||
      cfg->batch > 1000000u || cfg->spin_us > 1000000u ||
      (trace_categories & ~PN_TRACE_ALL)) {
    return PN_EINVAL;
  }
  const pn__io_ops *io = NULL;
  pn_err err = pn__io_select(cfg->io, &io);
  if (err != PN_OK) {
    return err;
  }
  pn_runtime *rt = pn__aligned_alloc(64, (sizeof *rt + 63) & ~(size_t)63);
  if (!rt) {
    return PN_ENOMEM;
  }
  memset(rt, 0, sizeof *rt);
  rt->nworkers = cfg->workers ? cfg->workers : online_cpus();
  rt->batch = cfg->batch ? cfg->batch : 100;
  rt->mailbox_high =
      CFG_HAS(mailbox_high) && cfg->mailbox_high ? cfg->mailbox_high : 1024;
  const char *trace_path = CFG_HAS(trace_path) ? cfg->trace_path : NULL;
  if (!trace_path) {
    trace_path = getenv("PEERNET_TRACE");
  }
  if (trace_path && *trace_path) {
    rt->trace_path = strdup(trace_path);
    if (!rt->trace_path) {
      free(rt);
      return PN_ENOMEM;
    }
    rt->trace_events =
        CFG_HAS(trace_events) && cfg->trace_events ? cfg->trace_events : 65536;
    rt->trace_mask =
        pn__trace_kind_mask(trace_categories ? trace_categories : PN_TRACE_ALL);
    rt->trace_names.max =
        pn__trace_ring_capacity(rt->trace_events) * rt->nworkers;
  }
  rt->spin_ns = (uint64_t)(cfg->spin_us ? cfg->spin_us : 20) * 1000;
  rt->stats_cpu_time = cfg->stats_cpu_time;
  rt->stats_histograms = CFG_HAS(stats_histograms) && cfg->stats_histograms;
  rt->io = io;
  rt->tick0 = pn__ticks();
  rt->ns0 = pn__now_ns();
  pn__injectq_init(&rt->global);
  pn__mutex_init(&rt->reg_lock);
  pn__list_init(&rt->actors);
  pn__list_init(&rt->objects);
  pn__mutex_init(&rt->ext_lock);
  pn__monitors_init(&rt->monitors);
  pthread_mutex_init(&rt->done_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->done_cv, &ca);
  pthread_condattr_destroy(&ca);
  for (uint32_t i = 0; i < PN__MUTE_STRIPES; i++) {
    pn__mutex_init(&rt->mute_locks[i]);
  }
  if (pn__msg_pool_init(&rt->ext_pool, rt->nworkers) != PN_OK) {
    runtime_free(rt, 0);
    return PN_ENOMEM;
  }
  rt->workers = pn__aligned_alloc(
      64, ((size_t)rt->nworkers * sizeof(pn__worker) + 63) & ~(size_t)63);
  if (!rt->workers) {
    runtime_free(rt, 0);
    return PN_ENOMEM;
  }
  uint32_t inited = 0;
  for (; inited < rt->nworkers; inited++) {
    err = worker_init(rt, &rt->workers[inited], inited);
    if (err != PN_OK) {
      runtime_free(rt, inited);
      return err;
    }
  }
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    int rc = pthread_create(&rt->workers[i].thread, NULL, pn__worker_main,
                            &rt->workers[i]);
    if (rc != 0) {
      join_workers(rt);
      runtime_free(rt, inited);
      return pn__err_os(rc);
    }
    rt->workers[i].thread_started = true;
  }
  /* Every worker binds its backend on its own thread; wait for them so a
   * failure there is this call's error, not a dead worker later. */
  pthread_mutex_lock(&rt->done_lock);
  while (rt->workers_started < rt->nworkers) {
    pthread_cond_wait(&rt->done_cv, &rt->done_lock);
  }
  err = rt->start_err;
  pthread_mutex_unlock(&rt->done_lock);
  if (err != PN_OK) {
    join_workers(rt);
    runtime_free(rt, inited);
    return err;
  }
  if (rt->stats_histograms) {
    rt->hist_ns_q32 = calibrate_ticks_q32(rt);
  }
  const char *stats_socket = CFG_HAS(stats_socket) ? cfg->stats_socket : NULL;
  if (!stats_socket) {
    stats_socket = getenv("PEERNET_STATS_SOCKET");
  }
  if (stats_socket && *stats_socket) {
    err = pn__observer_hooks.start(rt, stats_socket, &rt->observer);
    if (err != PN_OK) {
      join_workers(rt);
      runtime_free(rt, inited);
      return err;
    }
  }
  *rt_out = rt;
  return PN_OK;
}

void pn__runtime_unregister(pn_runtime *rt, pn_actor *a) {
  pthread_mutex_lock(&rt->reg_lock);
  pn__list_remove(&a->reg);
  if (rt->trace_names.max) {
    /* Its events may still be in the recorder: the dump names it. */
    pn__trace_names_note(rt, a->id, a->label);
  }
  pthread_mutex_unlock(&rt->reg_lock);
}

void pn__runtime_count_stopped(pn_runtime *rt) {
  /* acq_rel: the release half pairs with the acquire load in all_stopped(),
   * so a shutdown that sees every actor stopped sees their last handlers'
   * writes. The acquire half pairs with the release half of the earlier
   * stoppers' fetch_add here: each actor's spawn comes before its own stop,
   * so the last stopper then sees every spawn counted and cannot miss the
   * broadcast by reading a stale actors_spawned. That load pairs with no
   * release (pn_spawn() counts relaxed, under reg_lock); its acquire is
   * more than needed and kept, as this runs once per actor. */
  uint64_t stopped =
      atomic_fetch_add_explicit(&rt->actors_stopped, 1, memory_order_acq_rel) +
      1;
  if (stopped ==
      atomic_load_explicit(&rt->actors_spawned, memory_order_acquire)) {
    pthread_mutex_lock(&rt->done_lock);
    pthread_cond_broadcast(&rt->done_cv);
    pthread_mutex_unlock(&rt->done_lock);
  }
}

/* acquire on actors_stopped: pairs with the acq_rel fetch_add in
 * pn__runtime_count_stopped(). The acquire on actors_spawned pairs with no
 * release (pn_spawn() counts relaxed); the registry lock in stop_all()
 * orders every spawn that got past the closing check before this. */
static bool all_stopped(pn_runtime *rt) {
  return atomic_load_explicit(&rt->actors_stopped, memory_order_acquire) ==
         atomic_load_explicit(&rt->actors_spawned, memory_order_acquire);
}

/* Sends a stop request to every live actor, under the registry lock so
 * none is freed meanwhile (each still holds the runtime's reference). */
static void stop_all(pn_runtime *rt) {
  pthread_mutex_lock(&rt->reg_lock);
  rt->closing = true;
  PN__LIST_FOREACH(it, &rt->actors) {
    pn_actor *a = PN__CONTAINER_OF(it, pn_actor, reg);
    /* PN_ENOMEM leaves the actor running; the wait below then times out
     * and the caller can retry. */
    (void)pn_actor_stop(a);
  }
  pthread_mutex_unlock(&rt->reg_lock);
}

pn_err pn_runtime_shutdown(pn_runtime *rt, uint64_t timeout_us) {
  if (!rt) {
    return PN_EINVAL;
  }
  if (pn__worker_current(rt)) {
    return PN_EWRONGTHREAD;
  }
  if (rt->shut_down) {
    return PN_OK;
  }
  stop_all(rt);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  bool forever = timeout_us == UINT64_MAX;
  if (!forever) {
    uint64_t ns = (uint64_t)deadline.tv_nsec + (timeout_us % 1000000) * 1000;
    deadline.tv_sec += (time_t)(timeout_us / 1000000 + ns / 1000000000);
    deadline.tv_nsec = (long)(ns % 1000000000);
  }
  pthread_mutex_lock(&rt->done_lock);
  while (!all_stopped(rt)) {
    if (forever) {
      pthread_cond_wait(&rt->done_cv, &rt->done_lock);
    } else if (pthread_cond_timedwait(&rt->done_cv, &rt->done_lock,
                                      &deadline) == ETIMEDOUT) {
      break;
    }
  }
  pthread_mutex_unlock(&rt->done_lock);
  if (!all_stopped(rt)) {
    return PN_ETIMEDOUT;
  }
  pn__observer_hooks.stop(rt->observer);
  rt->observer = NULL;
  join_workers(rt);
  /* No worker runs now: retire the timers still armed, which drops their
   * actor references, so what remains is held by the application. */
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    pn__timer_heap *h = &rt->workers[i].timers;
    pn__timer_heap_fini(rt, h);
    pn__timer_heap_init(h);
  }
  rt->shut_down = true;
  if (rt->trace_path) {
    pn_err terr = pn__trace_dump(rt, rt->trace_path);
    if (terr != PN_OK) {
      fprintf(stderr, "peernet: cannot write the trace to %s: %s\n",
              rt->trace_path, pn_strerror(terr));
    }
  }
  return PN_OK;
}

pn_err pn_runtime_trace_dump(pn_runtime *rt, const char *path) {
  if (!rt || !path) {
    return PN_EINVAL;
  }
  if (!rt->trace_events) {
    return PN_ENOTSUP;
  }
  return pn__trace_dump(rt, path);
}

pn_err pn_runtime_destroy(pn_runtime *rt) {
  if (!rt) {
    return PN_EINVAL;
  }
  /* Bounded, so a handler that never returns cannot hang the caller. */
  pn_err err = pn_runtime_shutdown(rt, PN__DESTROY_WAIT_US);
  if (err != PN_OK) {
    return err;
  }
  /* acquire, pairing with no release: both counts go down relaxed (in
   * pn__actor_unref(), actor.c, and pn__timer_release(), timer.c). Freeing
   * is safe for other reasons: the workers are joined, and the caller's
   * own releases come before this call. Kept; relaxed would do. */
  if (atomic_load_explicit(&rt->actor_objects, memory_order_acquire) ||
      atomic_load_explicit(&rt->timers_live, memory_order_acquire)) {
    return PN_EBUSY;
  }
  runtime_free(rt, rt->nworkers);
  return PN_OK;
}
