/* The runtime object: configuration, workers, the global inject queue, the
 * actor registry and slab, and the shutdown state. */
#ifndef PN_RUNTIME_RT_H
#define PN_RUNTIME_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "peernet/runtime.h"
#include "peernet/stats.h"
#include "runtime/actor.h"
#include "runtime/io/io.h"
#include "runtime/labels.h"
#include "runtime/list.h"
#include "runtime/monitor.h"
#include "runtime/runq.h"
#include "runtime/worker.h"

#define PN__MUTE_STRIPES 64u
#define PN__MAX_WORKERS 1024u

struct pn_runtime {
  uint32_t nworkers;
  uint32_t batch;
  uint32_t mailbox_high; /* senders are muted at this depth */
  bool stats_histograms; /* per-actor mailbox and processing times */
  uint64_t hist_ns_q32;  /* their TSC calibration: ns per tick << 32 */
  char *trace_path;      /* dump the flight recorder here at shutdown */
  void *observer;        /* the stats endpoint (observer.h), or NULL */
  uint32_t trace_events; /* 0: tracing off */
  uint32_t trace_mask;   /* kinds recorded (see pn__worker.trace_mask) */
  uint64_t spin_ns;
  bool stats_cpu_time;
  const pn__io_ops *io;
  pn__worker *workers; /* nworkers entries, each cache-line aligned */

  pn__injectq global; /* runnable actors from application threads */
  _Alignas(64) _Atomic uint32_t nsleeping;
  _Atomic uint32_t wake_cursor;
  _Atomic uint32_t exit_workers; /* set once every actor stopped */

  /* Registry of live actors and the actor slab; one lock for both so a
   * spawn takes it once. */
  _Alignas(64) pthread_mutex_t reg_lock;
  pn__list actors; /* live actors (pn_actor.reg) */
  pn_actor *slab_free;
  void **slab_chunks;
  size_t slab_nchunks;
  size_t slab_cap;
  pn__label_table labels;      /* under reg_lock */
  pn__list objects;            /* observable objects of the layers above
                                  (registry.h), under reg_lock */
  pn__trace_names trace_names; /* stopped actors' names, under reg_lock */
  bool closing;                /* under reg_lock */
  uint64_t next_id;            /* under reg_lock */

  /* Workers report their backend's thread_start here. */
  uint32_t workers_started; /* under done_lock */
  pn_err start_err;         /* under done_lock */

  /* Shutdown waits here for actors_alive to reach zero. */
  pthread_mutex_t done_lock;
  pthread_cond_t done_cv;
  bool shut_down; /* workers joined */

  pthread_mutex_t mute_locks[PN__MUTE_STRIPES];

  _Atomic uint64_t actors_spawned;
  _Atomic uint64_t actors_stopped;
  _Atomic uint64_t actor_objects; /* allocated and not yet freed */
  _Atomic uint64_t timers_live;   /* timer objects not yet freed */
  _Atomic uint64_t ext_frees;     /* envelopes freed off the workers */

  pn__monitors monitors; /* monitor.h */

  /* Envelopes for application threads (see msg.h). */
  _Alignas(64) pthread_mutex_t ext_lock;
  pn__msg_pool ext_pool;

  /* TSC-to-nanosecond calibration: ticks and time at creation. */
  uint64_t tick0;
  uint64_t ns0;
};

/* Drops one reference to an actor; frees it at zero. Any thread. */
void pn__actor_unref(pn_actor *a);

/* Called by the run that handled PN_MSG_STOPPED: takes the actor off the
 * registry of live actors. */
void pn__runtime_unregister(pn_runtime *rt, pn_actor *a);

/* Called by the same run once the actor is marked stopped: counts it and
 * wakes a shutdown waiting for the last one. */
void pn__runtime_count_stopped(pn_runtime *rt);

/* With reg_lock held: fills the runtime's part of snap (runtime counters,
 * workers, live actors and their histograms). Errors: PN_ENOMEM (what was
 * allocated stays in snap for pn_snapshot_free). Defined in stats.c. */
pn_err pn__runtime_snapshot_locked(pn_runtime *rt, pn_snapshot *snap);

/* Converts a tick count to nanoseconds with the runtime's calibration. */
uint64_t pn__ticks_to_ns(const pn_runtime *rt, uint64_t ticks);

static inline pthread_mutex_t *pn__mute_lock(pn_runtime *rt, pn_actor *a) {
  return &rt->mute_locks[((uintptr_t)a >> 8) % PN__MUTE_STRIPES];
}

#endif
