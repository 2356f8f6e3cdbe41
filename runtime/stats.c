/* The runtime's statistics: runtime, worker and actor counters and
 * histograms, and the runtime's part of a snapshot (the observability
 * layer, observe/snapshot.c, adds the objects of the layers above).
 * Counters are single-writer relaxed atomics, read here without stopping
 * anyone. */
#include <stdlib.h>
#include <string.h>

#include "peernet/stats.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/rt.h"

const char *pn_actor_state_name(pn_actor_state state) {
  switch (state) {
  case PN_ACTOR_IDLE:
    return "idle";
  case PN_ACTOR_RUNNABLE:
    return "runnable";
  case PN_ACTOR_MUTED:
    return "muted";
  case PN_ACTOR_STOPPING:
    return "stopping";
  case PN_ACTOR_STOPPED:
    return "stopped";
  }
  return "unknown";
}

#define LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

static void actor_fill(const pn_actor *a, pn_actor_stats *s) {
  memset(s, 0, sizeof *s);
  s->id = a->id;
  if (a->label) {
    memcpy(s->name, a->label->text, sizeof s->name);
  }
  uint32_t flags = LOAD(a->flags);
  if (flags & PN__A_DEAD) {
    s->state = PN_ACTOR_STOPPED;
  } else if (flags & PN__A_STOP_REQ) {
    s->state = PN_ACTOR_STOPPING;
  } else if (LOAD(a->mute_state) == PN__MUTE_PARKED) {
    s->state = PN_ACTOR_MUTED;
  } else if (LOAD(a->head) & 1u) {
    s->state = PN_ACTOR_IDLE;
  } else {
    s->state = PN_ACTOR_RUNNABLE;
  }
  s->home_worker = a->home;
  s->overloaded = (flags & PN__A_OVERLOADED) != 0;
  s->received = LOAD(a->received);
  s->processed = LOAD(a->processed);
  s->dropped = LOAD(a->dropped);
  s->sent = LOAD(a->sent);
  s->runs = LOAD(a->runs);
  s->muted = LOAD(a->muted);
  s->cpu_ns = pn__ticks_to_ns(a->rt, LOAD(a->cpu_ticks));
  s->mailbox_depth = pn__mailbox_depth(a);
  s->mailbox_hwm = LOAD(a->depth_hwm);
}

static void hist_fill(pn_histogram *h, const _Atomic uint64_t *buckets,
                      const _Atomic uint64_t *sum_ns) {
  h->count = 0;
  for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
    h->buckets[i] = LOAD(buckets[i]);
    h->count += h->buckets[i];
  }
  h->sum_ns = LOAD(*sum_ns);
}

static void actor_hist_fill(const pn_actor *a, pn_actor_histograms *out) {
  const pn__actor_hist *h = pn__actor_hist_of(a);
  out->id = a->id;
  hist_fill(&out->mailbox_time, h->mailbox, &h->mailbox_sum_ns);
  hist_fill(&out->processing_time, h->processing, &h->processing_sum_ns);
}

uint64_t pn_histogram_bucket_le_ns(uint32_t i) {
  return i < PN_HIST_BUCKETS - 1 ? UINT64_C(16) << i : UINT64_MAX;
}

double pn_histogram_quantile_ns(const pn_histogram *h, double q) {
  if (!h || !h->count || !(q >= 0.0)) {
    return 0.0;
  }
  if (q > 1.0) {
    q = 1.0;
  }
  /* The rank, counted from 1, and the bucket it falls in. */
  double rank = q * (double)h->count;
  uint64_t below = 0;
  for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
    uint64_t n = h->buckets[i];
    if (n && (double)(below + n) >= rank) {
      double lo = i ? (double)pn_histogram_bucket_le_ns(i - 1) : 0.0;
      if (i == PN_HIST_BUCKETS - 1) {
        return lo;
      }
      double hi = (double)pn_histogram_bucket_le_ns(i);
      return lo + (hi - lo) * ((rank - (double)below) / (double)n);
    }
    below += n;
  }
  return 0.0;
}

/* now_ns: a pn__now_ns() reading, which uptime is counted to. */
static void runtime_fill(pn_runtime *rt, uint64_t now_ns, pn_runtime_stats *s) {
  memset(s, 0, sizeof *s);
  s->workers = rt->nworkers;
  s->uptime_ns = now_ns > rt->ns0 ? now_ns - rt->ns0 : 0;
  s->io_backend = rt->io->name;
  s->actors_spawned = LOAD(rt->actors_spawned);
  s->actors_stopped = LOAD(rt->actors_stopped);
  s->actors_alive = s->actors_spawned >= s->actors_stopped
                        ? s->actors_spawned - s->actors_stopped
                        : 0;
  s->actor_handles = LOAD(rt->actor_objects);
  uint64_t allocs = LOAD(rt->ext_pool.allocs);
  uint64_t frees = LOAD(rt->ext_frees);
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    allocs += LOAD(rt->workers[i].pool.allocs);
    frees += LOAD(rt->workers[i].pool.frees);
  }
  s->msgs_in_flight = allocs >= frees ? allocs - frees : 0;
  s->timers_active = LOAD(rt->timers_live);
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    s->timers_fired += LOAD(rt->workers[i].timers_fired);
  }
}

pn_err pn_runtime_stats_get(pn_runtime *rt, pn_runtime_stats *stats_out) {
  if (!rt || !stats_out) {
    return PN_EINVAL;
  }
  runtime_fill(rt, pn__now_ns(), stats_out);
  return PN_OK;
}

pn_err pn_actor_stats_get(const pn_actor *actor, pn_actor_stats *stats_out) {
  if (!actor || !stats_out) {
    return PN_EINVAL;
  }
  actor_fill(actor, stats_out);
  return PN_OK;
}

pn_err pn_actor_histograms_get(const pn_actor *actor,
                               pn_actor_histograms *hist_out) {
  if (!actor || !hist_out) {
    return PN_EINVAL;
  }
  if (!actor->rt->stats_histograms) {
    return PN_ENOTSUP;
  }
  actor_hist_fill(actor, hist_out);
  return PN_OK;
}

pn_err pn__runtime_snapshot_locked(pn_runtime *rt, pn_snapshot *snap) {
  snap->worker_count = rt->nworkers;
  snap->workers = pn__calloc(rt->nworkers, sizeof *snap->workers);
  if (!snap->workers) {
    return PN_ENOMEM;
  }
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    const pn__worker *w = &rt->workers[i];
    pn_worker_stats *ws = &snap->workers[i];
    ws->index = i;
    ws->runs = LOAD(w->runs);
    ws->steals = LOAD(w->steals);
    ws->stolen_actors = LOAD(w->stolen_actors);
    ws->wakeups = LOAD(w->wakeups);
    /* acquire: pairs with the release stores in worker_sleep()
     * (worker.c); the word is turned into time below, with a clock read
     * after every worker's load. */
    ws->idle_ns = atomic_load_explicit(&w->idle_clock, memory_order_acquire);
    ws->timers_fired = LOAD(w->timers_fired);
    ws->io_calls = LOAD(w->io_calls);
  }
  /* One clock reading for the whole snapshot, taken after the loads: a
   * wait still going on counts as idle up to it, and a wait that ended
   * counted only up to its end, which came before it. Snapshots are taken
   * one at a time under reg_lock, so each worker's idle time is then held
   * between the last one reported and that plus the uptime since: a
   * reader's difference of two snapshots is never negative nor more than
   * the time between them, even when a wait ended during the read. */
  uint64_t now = pn__now_ns();
  uint64_t uptime = now > rt->ns0 ? now - rt->ns0 : 0;
  for (uint32_t i = 0; i < rt->nworkers; i++) {
    pn__worker *w = &rt->workers[i];
    uint64_t idle = pn__worker_idle_ns(snap->workers[i].idle_ns, now);
    uint64_t ceiling = w->snap_idle_ns + (uptime - w->snap_uptime_ns);
    idle = idle < w->snap_idle_ns ? w->snap_idle_ns
           : idle > ceiling       ? ceiling
                                  : idle;
    w->snap_idle_ns = idle;
    w->snap_uptime_ns = uptime;
    snap->workers[i].idle_ns = idle;
  }
  /* The live count can only be read exactly under the lock the caller
   * holds; size the array from it and fill it in the same section. */
  size_t n = 0;
  PN__LIST_FOREACH(it, &rt->actors) { n++; }
  snap->actors = n ? pn__malloc(n * sizeof *snap->actors) : NULL;
  snap->actor_histograms = n && rt->stats_histograms
                               ? pn__malloc(n * sizeof *snap->actor_histograms)
                               : NULL;
  if (n &&
      (!snap->actors || (rt->stats_histograms && !snap->actor_histograms))) {
    return PN_ENOMEM;
  }
  size_t i = 0;
  PN__LIST_FOREACH(it, &rt->actors) {
    const pn_actor *a = PN__CONTAINER_OF(it, pn_actor, reg);
    PN_ASSERT(i < n); /* counted under the same hold of the lock */
    if (snap->actor_histograms) {
      actor_hist_fill(a, &snap->actor_histograms[i]);
    }
    actor_fill(a, &snap->actors[i++]);
  }
  snap->actor_count = n;
  runtime_fill(rt, now, &snap->runtime);
  return PN_OK;
}
