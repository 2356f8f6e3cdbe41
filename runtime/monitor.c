/* Monitors: see monitor.h and pn_monitor (peernet/runtime.h). */
#include "runtime/monitor.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/lock.h"
#include "runtime/rt.h"

#define BUCKETS_MIN 16u

/* One monitor: its id, its watcher (held), and the node its DOWN names
 * (pn__monitor_as). */
typedef struct pn__watch {
  uint64_t id;
  pn_actor *watcher;
  uint64_t node, incarnation;
  struct pn__watch *next;
} pn__watch;

/* A watched (or reason-given) actor's entry. */
typedef struct pn__watched {
  uint64_t actor;
  uint32_t reason;
  pn__watch *watches;
  struct pn__watched *next;
} pn__watched;

void pn__monitors_init(pn__monitors *m) {
  memset(m, 0, sizeof *m);
  pn__mutex_init(&m->lock);
}

void pn__monitors_fini(pn__monitors *m) {
  for (size_t b = 0; b < m->nbuckets; b++) {
    for (pn__watched *e = m->buckets[b], *en; e; e = en) {
      en = e->next;
      for (pn__watch *w = e->watches, *wn; w; w = wn) {
        wn = w->next;
        pn_actor_release(w->watcher);
        free(w);
      }
      free(e);
    }
  }
  free(m->buckets);
  pthread_mutex_destroy(&m->lock);
}

static size_t bucket_of(const pn__monitors *m, uint64_t actor) {
  return (size_t)((actor * 0x9E3779B97F4A7C15ull) >> 32) & (m->nbuckets - 1);
}

/* The link that points at actor's entry (at a NULL one when it has
 * none). Under the lock; the table has buckets. */
static pn__watched **find(pn__monitors *m, uint64_t actor) {
  pn__watched **l = &m->buckets[bucket_of(m, actor)];
  while (*l && (*l)->actor != actor) {
    l = &(*l)->next;
  }
  return l;
}

/* Doubles the buckets when the entries outnumber them (false: out of
 * memory, the table unchanged). Under the lock. */
static bool grow(pn__monitors *m) {
  if (m->nbuckets && m->count < m->nbuckets) {
    return true;
  }
  size_t nb = m->nbuckets ? 2 * m->nbuckets : BUCKETS_MIN;
  pn__watched **b = pn__calloc(nb, sizeof *b);
  if (!b) {
    return m->nbuckets != 0; /* still room to chain */
  }
  pn__monitors old = *m;
  m->buckets = b;
  m->nbuckets = nb;
  for (size_t i = 0; i < old.nbuckets; i++) {
    for (pn__watched *e = old.buckets[i], *en; e; e = en) {
      en = e->next;
      pn__watched **l = &m->buckets[bucket_of(m, e->actor)];
      e->next = *l;
      *l = e;
    }
  }
  free(old.buckets);
  return true;
}

/* actor's entry, made if it has none; marks the actor MONITORED and
 * returns NULL when it is DEAD already (*dead) or memory ran out. Under
 * the lock: the flag and the entry appear together for its stop. */
static pn__watched *entry(pn__monitors *m, pn_actor *a, bool *dead) {
  /* acq_rel: one read-modify-write of the flags word with the stop's (see
   * monitor.h); the acquire half sees the stopped handler's writes. */
  uint32_t was = atomic_fetch_or_explicit(&a->flags, PN__A_MONITORED,
                                          memory_order_acq_rel);
  *dead = was & PN__A_DEAD;
  if (*dead || !grow(m)) {
    return NULL;
  }
  pn__watched **l = find(m, a->id);
  if (!*l) {
    *l = pn__calloc(1, sizeof **l);
    if (!*l) {
      return NULL;
    }
    (*l)->actor = a->id;
    m->count++;
  }
  return *l;
}

pn_err pn__down_send(pn_actor *watcher, const pn_down *d) {
  return pn__send_parts(watcher, PN_MSG_DOWN, d, sizeof *d, NULL, 0);
}

pn_err pn_monitor(pn_actor *target, pn_actor *watcher, uint64_t *monitor_out) {
  return pn__monitor_as(target, watcher, 0, 0, monitor_out);
}

pn_err pn__monitor_as(pn_actor *target, pn_actor *watcher, uint64_t node,
                      uint64_t incarnation, uint64_t *monitor_out) {
  if (!target || !watcher || !monitor_out || target == watcher ||
      target->rt != watcher->rt) {
    return PN_EINVAL;
  }
  pn__monitors *m = &target->rt->monitors;
  pn__watch *w = pn__calloc(1, sizeof *w);
  if (!w) {
    return PN_ENOMEM;
  }
  pthread_mutex_lock(&m->lock);
  bool dead;
  pn__watched *e = entry(m, target, &dead);
  pn_down d = {.monitor = ++m->next_id,
               .actor = target->id,
               .node = node,
               .incarnation = incarnation,
               .reason = PN_DOWN_NOPROC};
  if (e) {
    w->id = d.monitor;
    w->node = node;
    w->incarnation = incarnation;
    w->watcher = watcher;
    pn_actor_hold(watcher);
    w->next = e->watches;
    e->watches = w;
  }
  pthread_mutex_unlock(&m->lock);
  if (!e) {
    free(w);
    if (!dead) {
      return PN_ENOMEM;
    }
    (void)pn__down_send(watcher, &d); /* a stopped watcher needs none */
  }
  *monitor_out = d.monitor;
  return PN_OK;
}

/* Removes e from the table when nothing is left in it. Under the lock. */
static void drop_if_empty(pn__monitors *m, pn__watched **l) {
  pn__watched *e = *l;
  if (!e->watches && !e->reason) {
    *l = e->next;
    m->count--;
    free(e);
  }
}

pn_err pn_demonitor(pn_actor *target, uint64_t monitor) {
  if (!target) {
    return PN_EINVAL;
  }
  pn__monitors *m = &target->rt->monitors;
  pn__watch *found = NULL;
  pthread_mutex_lock(&m->lock);
  pn__watched **l = m->nbuckets ? find(m, target->id) : NULL;
  if (l && *l) {
    for (pn__watch **wl = &(*l)->watches; *wl; wl = &(*wl)->next) {
      if ((*wl)->id == monitor) {
        found = *wl;
        *wl = found->next;
        break;
      }
    }
    drop_if_empty(m, l);
  }
  pthread_mutex_unlock(&m->lock);
  if (!found) {
    return PN_ENOENT;
  }
  pn_actor_release(found->watcher);
  free(found);
  return PN_OK;
}

pn_err pn_actor_stop_reason(pn_actor *actor, uint32_t reason) {
  if (!actor || reason < PN_DOWN_APP) {
    return PN_EINVAL;
  }
  pn__monitors *m = &actor->rt->monitors;
  pthread_mutex_lock(&m->lock);
  bool dead;
  pn__watched *e = entry(m, actor, &dead);
  if (e && !e->reason) {
    e->reason = reason;
  }
  pthread_mutex_unlock(&m->lock);
  if (dead) {
    return PN_ECLOSED;
  }
  return e ? pn_actor_stop(actor) : PN_ENOMEM;
}

void pn__monitors_fire(pn_runtime *rt, pn_actor *a) {
  pn__monitors *m = &rt->monitors;
  pthread_mutex_lock(&m->lock);
  pn__watched *e = NULL;
  pn_down d = {.actor = a->id};
  if (m->nbuckets) {
    pn__watched **l = find(m, a->id);
    e = *l;
    if (e) {
      *l = e->next;
      m->count--;
    }
  }
  pthread_mutex_unlock(&m->lock);
  if (!e) {
    return;
  }
  d.reason = e->reason;
  for (pn__watch *w = e->watches, *wn; w; w = wn) {
    wn = w->next;
    d.monitor = w->id;
    d.node = w->node;
    d.incarnation = w->incarnation;
    (void)pn__down_send(w->watcher, &d); /* a stopped watcher needs none */
    pn_actor_release(w->watcher);
    free(w);
  }
  free(e);
}

uint64_t pn__monitor_id(pn_runtime *rt) {
  pthread_mutex_lock(&rt->monitors.lock);
  uint64_t id = ++rt->monitors.next_id;
  pthread_mutex_unlock(&rt->monitors.lock);
  return id;
}

pn_err pn_msg_down(const pn_msg *msg, pn_down *out) {
  if (!msg || !out || pn_msg_type(msg) != PN_MSG_DOWN ||
      pn_msg_size(msg) != sizeof *out) {
    return PN_EINVAL;
  }
  memcpy(out, pn_msg_data(msg), sizeof *out);
  return PN_OK;
}
