/* Statistics snapshots. Counters are single-writer relaxed atomics, read
 * here without stopping anyone. */
#include <stdlib.h>
#include <string.h>

#include "peernet/socket.h"
#include "peernet/stats.h"
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

static void runtime_fill(pn_runtime *rt, pn_runtime_stats *s) {
  memset(s, 0, sizeof *s);
  s->workers = rt->nworkers;
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
}

pn_err pn_runtime_stats_get(pn_runtime *rt, pn_runtime_stats *stats_out) {
  if (!rt || !stats_out) {
    return PN_EINVAL;
  }
  runtime_fill(rt, stats_out);
  return PN_OK;
}

pn_err pn_actor_stats_get(const pn_actor *actor, pn_actor_stats *stats_out) {
  if (!actor || !stats_out) {
    return PN_EINVAL;
  }
  actor_fill(actor, stats_out);
  return PN_OK;
}

pn_err pn_snapshot_take(pn_runtime *rt, pn_snapshot **snap_out) {
  if (!rt || !snap_out) {
    return PN_EINVAL;
  }
  pn_snapshot *snap = calloc(1, sizeof *snap);
  if (!snap) {
    return PN_ENOMEM;
  }
  snap->worker_count = rt->nworkers;
  snap->workers = calloc(rt->nworkers, sizeof *snap->workers);
  if (!snap->workers) {
    free(snap);
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
    ws->idle_ns = LOAD(w->idle_ns);
    ws->timers_fired = LOAD(w->timers_fired);
    ws->io_calls = LOAD(w->io_calls);
  }
  /* The live count can only be read exactly under the lock; size the array
   * from it and fill it in the same critical section. */
  pthread_mutex_lock(&rt->reg_lock);
  size_t n = 0;
  for (pn_actor *a = rt->reg_head; a; a = a->reg_next) {
    n++;
  }
  snap->actors = n ? malloc(n * sizeof *snap->actors) : NULL;
  if (n && !snap->actors) {
    pthread_mutex_unlock(&rt->reg_lock);
    free(snap->workers);
    free(snap);
    return PN_ENOMEM;
  }
  size_t i = 0;
  for (pn_actor *a = rt->reg_head; a; a = a->reg_next) {
    actor_fill(a, &snap->actors[i++]);
  }
  size_t ns = pn__sockets_count_locked(rt);
  snap->sockets = ns ? malloc(ns * sizeof *snap->sockets) : NULL;
  if (ns && !snap->sockets) {
    pthread_mutex_unlock(&rt->reg_lock);
    free(snap->actors);
    free(snap->workers);
    free(snap);
    return PN_ENOMEM;
  }
  snap->socket_count = pn__sockets_fill_locked(rt, snap->sockets, ns);
  pthread_mutex_unlock(&rt->reg_lock);
  snap->actor_count = n;
  runtime_fill(rt, &snap->runtime);
  *snap_out = snap;
  return PN_OK;
}

void pn_snapshot_free(pn_snapshot *snap) {
  if (snap) {
    free(snap->workers);
    free(snap->actors);
    free(snap->sockets);
    free(snap);
  }
}
