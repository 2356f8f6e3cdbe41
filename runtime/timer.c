/* Timers: per-worker min-heap ordered by (deadline, arm order). */
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/timer.h"

#include <stdlib.h>

#include "runtime/actor.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/worker.h"

#define OFF_HEAP UINT32_MAX

static bool timer_before(const pn_timer *a, const pn_timer *b) {
  return a->deadline_ns < b->deadline_ns ||
         (a->deadline_ns == b->deadline_ns && a->order < b->order);
}

static void heap_set(pn__timer_heap *h, uint32_t i, pn_timer *t) {
  h->items[i] = t;
  t->heap_index = i;
}

static void sift_up(pn__timer_heap *h, uint32_t i) {
  pn_timer *t = h->items[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!timer_before(t, h->items[parent])) {
      break;
    }
    heap_set(h, i, h->items[parent]);
    i = parent;
  }
  heap_set(h, i, t);
}

static void sift_down(pn__timer_heap *h, uint32_t i) {
  pn_timer *t = h->items[i];
  for (;;) {
    uint32_t l = 2 * i + 1;
    if (l >= h->count) {
      break;
    }
    uint32_t m = l;
    if (l + 1 < h->count && timer_before(h->items[l + 1], h->items[l])) {
      m = l + 1;
    }
    if (!timer_before(h->items[m], t)) {
      break;
    }
    heap_set(h, i, h->items[m]);
    i = m;
  }
  heap_set(h, i, t);
}

static void publish_earliest(pn__timer_heap *h) {
  atomic_store_explicit(&h->earliest_ns,
                        h->count ? h->items[0]->deadline_ns : UINT64_MAX,
                        memory_order_relaxed);
}

static bool heap_insert(pn__timer_heap *h, pn_timer *t) {
  if (h->count == h->capacity) {
    uint32_t cap = h->capacity ? h->capacity * 2 : 64;
    pn_timer **items = pn__realloc(h->items, cap * sizeof *items);
    if (!items) {
      return false;
    }
    h->items = items;
    h->capacity = cap;
  }
  t->order = h->next_order++;
  heap_set(h, h->count++, t);
  sift_up(h, h->count - 1);
  publish_earliest(h);
  return true;
}

static void heap_remove(pn__timer_heap *h, pn_timer *t) {
  uint32_t i = t->heap_index;
  PN_ASSERT(i < h->count); /* callers take only timers on this heap */
  t->heap_index = OFF_HEAP;
  h->count--;
  if (i != h->count) {
    pn_timer *moved = h->items[h->count];
    heap_set(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->heap_index);
  }
  publish_earliest(h);
}

pn_err pn__timer_heap_init(pn__timer_heap *h) {
  h->items = NULL;
  h->count = h->capacity = 0;
  h->next_order = 0;
  h->inbox = NULL;
  atomic_init(&h->inbox_len, 0);
  atomic_init(&h->earliest_ns, UINT64_MAX);
  if (pthread_mutex_init(&h->inbox_lock, NULL) != 0) {
    return PN_ENOMEM;
  }
  return PN_OK;
}

void pn__timer_release(pn_timer *t) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's writes (the receiving worker's tick bookkeeping, the
   * heap's) to whoever frees; the acquire half, in the last holder, pairs
   * with every other holder's release half here before free(). */
  if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
    atomic_fetch_sub_explicit(&t->rt->timers_live, 1, memory_order_relaxed);
    free(t);
  }
}

/* The timer leaves the heap for good: its target and heap references go.
 * The target's as pn_actor_release gives it back: after this worker's
 * outbox is delivered, which may hold a tick for it (send_tick) or a
 * handler's sends to it, and holds no reference of its own; a target that
 * stopped on another worker meanwhile could otherwise be freed under it. */
static void timer_retire(pn_timer *t) {
  pn_actor_release(t->target);
  t->target = NULL;
  pn__timer_release(t);
}

void pn__timer_heap_fini(pn_runtime *rt, pn__timer_heap *h) {
  (void)rt;
  for (uint32_t i = 0; i < h->count; i++) {
    h->items[i]->heap_index = OFF_HEAP;
    timer_retire(h->items[i]);
  }
  free(h->items);
  h->items = NULL;
  h->count = h->capacity = 0;
  pn_timer *t = h->inbox;
  while (t) {
    pn_timer *next = t->inbox_next;
    timer_retire(t);
    t = next;
  }
  h->inbox = NULL;
  pthread_mutex_destroy(&h->inbox_lock);
}

static void take_inbox(pn__worker *w) {
  pn__timer_heap *h = &w->timers;
  pthread_mutex_lock(&h->inbox_lock);
  pn_timer *t = h->inbox;
  h->inbox = NULL;
  atomic_store_explicit(&h->inbox_len, 0, memory_order_relaxed);
  pthread_mutex_unlock(&h->inbox_lock);
  /* The inbox is LIFO; reverse it so timers armed together keep arm order. */
  pn_timer *fifo = NULL;
  while (t) {
    pn_timer *next = t->inbox_next;
    t->inbox_next = fifo;
    fifo = t;
    t = next;
  }
  while (fifo) {
    pn_timer *next = fifo->inbox_next;
    /* acquire: pairs with the release store in pn_timer_cancel(). */
    if (atomic_load_explicit(&fifo->cancelled, memory_order_acquire) ||
        !heap_insert(h, fifo)) {
      timer_retire(fifo);
    }
    fifo = next;
  }
}

static void send_tick(pn__worker *w, pn_timer *t) {
  /* One tick in flight at most: a receiver that fell behind gets the next
   * tick, not a burst of stale ones. acquire: pairs with the release store
   * in pn__timer_tick_take(), so the receiver's take of the last tick comes
   * before the next one is queued. */
  if (atomic_exchange_explicit(&t->tick_queued, 1, memory_order_acquire)) {
    return;
  }
  pn_msg *m = pn__msg_alloc(w->rt, w, 0);
  if (!m) {
    atomic_store_explicit(&t->tick_queued, 0, memory_order_relaxed);
    return;
  }
  m->kind = PN__MSG_TICK;
  m->type = t->type;
  m->timer = t;
  if (w->rt->stats_histograms) {
    m->sent_ticks = pn__ticks();
  }
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
  pn__actor_deliver(w, t->target, m);
  pn__stat_add(&w->timers_fired, 1);
}

uint32_t pn__timer_heap_fire(pn__worker *w, uint64_t now_ns) {
  pn__timer_heap *h = &w->timers;
  if (atomic_load_explicit(&h->inbox_len, memory_order_relaxed)) {
    take_inbox(w);
  }
  uint32_t fired = 0;
  while (h->count && h->items[0]->deadline_ns <= now_ns) {
    pn_timer *t = h->items[0];
    heap_remove(h, t);
    /* acquire: the flags pair with the release fetch_or of DEAD in
     * pn__actor_mark_stopped() (actor.c), cancelled with the release store in
     * pn_timer_cancel(). */
    bool dead = atomic_load_explicit(&t->target->flags, memory_order_acquire) &
                PN__A_DEAD;
    if (dead || atomic_load_explicit(&t->cancelled, memory_order_acquire)) {
      timer_retire(t);
      continue;
    }
    send_tick(w, t);
    fired++;
    if (t->period_ns) {
      t->deadline_ns += t->period_ns;
      if (t->deadline_ns <= now_ns) {
        t->deadline_ns = now_ns + t->period_ns;
      }
      if (!heap_insert(h, t)) {
        timer_retire(t);
      }
    } else {
      timer_retire(t);
    }
  }
  return fired;
}

int64_t pn__timer_heap_timeout_ns(pn__worker *w, uint64_t now_ns) {
  pn__timer_heap *h = &w->timers;
  if (atomic_load_explicit(&h->inbox_len, memory_order_relaxed)) {
    return 0;
  }
  if (!h->count) {
    return -1;
  }
  uint64_t d = h->items[0]->deadline_ns;
  return d <= now_ns ? 0 : (int64_t)(d - now_ns);
}

bool pn__timer_tick_take(pn_timer *t) {
  /* release: pairs with the acquire exchange in send_tick(). */
  atomic_store_explicit(&t->tick_queued, 0, memory_order_release);
  /* acquire: pairs with the release store in pn_timer_cancel(). */
  return !atomic_load_explicit(&t->cancelled, memory_order_acquire);
}

pn_err pn_timer_start(pn_actor *actor, uint32_t type, uint64_t delay_us,
                      uint64_t period_us, pn_timer **timer_out) {
  if (type >= PN_MSG_TYPE_RESERVED) {
    return PN_EINVAL;
  }
  return pn__timer_start(actor, type, delay_us, period_us, timer_out);
}

pn_err pn__timer_start(pn_actor *actor, uint32_t type, uint64_t delay_us,
                       uint64_t period_us, pn_timer **timer_out) {
  if (!actor || (period_us && !timer_out) || delay_us > UINT64_MAX / 2000 ||
      period_us > UINT64_MAX / 2000) {
    return PN_EINVAL;
  }
  pn_runtime *rt = actor->rt;
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped() (actor.c). */
  if (atomic_load_explicit(&actor->flags, memory_order_acquire) & PN__A_DEAD) {
    return PN_ECLOSED;
  }
  pn_timer *t = pn__malloc(sizeof *t);
  if (!t) {
    return PN_ENOMEM;
  }
  atomic_init(&t->refs, timer_out ? 2u : 1u);
  atomic_init(&t->cancelled, 0);
  atomic_init(&t->tick_queued, 0);
  t->type = type;
  t->heap_index = OFF_HEAP;
  t->rt = rt;
  t->target = actor;
  t->period_ns = period_us * 1000;
  t->deadline_ns = pn__now_ns() + delay_us * 1000;
  t->inbox_next = NULL;
  pn_actor_hold(actor);
  atomic_fetch_add_explicit(&rt->timers_live, 1, memory_order_relaxed);

  pn__worker *w = pn__worker_current(rt);
  if (w) {
    t->owner = w->index;
    if (!heap_insert(&w->timers, t)) {
      pn_actor_release(actor);
      atomic_fetch_sub_explicit(&rt->timers_live, 1, memory_order_relaxed);
      free(t);
      return PN_ENOMEM;
    }
  } else {
    t->owner = actor->home >= 0 ? (uint32_t)actor->home
                                : (uint32_t)(actor->id % rt->nworkers);
    pn__worker *owner = &rt->workers[t->owner];
    pthread_mutex_lock(&owner->timers.inbox_lock);
    t->inbox_next = owner->timers.inbox;
    owner->timers.inbox = t;
    atomic_fetch_add_explicit(&owner->timers.inbox_len, 1,
                              memory_order_relaxed);
    pthread_mutex_unlock(&owner->timers.inbox_lock);
    pn__worker_wake(owner);
  }
  if (timer_out) {
    *timer_out = t;
  }
  return PN_OK;
}

void pn_timer_cancel(pn_timer *timer) {
  if (!timer) {
    return;
  }
  /* release: pairs with the acquire loads in pn__timer_tick_take(),
   * take_inbox() and pn__timer_heap_fire(), which then drop the timer. */
  atomic_store_explicit(&timer->cancelled, 1, memory_order_release);
  pn__worker *w = pn__worker_current(timer->rt);
  if (w && w->index == timer->owner && timer->heap_index != OFF_HEAP) {
    heap_remove(&w->timers, timer);
    timer_retire(timer);
  }
  pn__timer_release(timer);
}
