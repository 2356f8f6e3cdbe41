/* Actors: spawn, send, stop, and one run of an actor on a worker.
 *
 * States: idle (mailbox head has bit 0 set) -> runnable (a sender found it
 * idle and scheduled it; exactly one run is queued or running) -> idle again
 * when a run ends with an empty mailbox and its CAS succeeds. Stop: a
 * PN__MSG_STOP envelope (or pn_actor_stop(self)) ends the run; the handler
 * gets PN_MSG_STOPPED once, the DEAD flag is set and the mailbox drained.
 *
 * Backpressure (after Pony, with counts): every push adds to the receiver's
 * enqueued count (once per outbox chain), every run adds what it took to
 * taken, so depth = enqueued - taken (see pn__mailbox_push_msgs() for why
 * a push that wakes an idle actor is not counted). An actor that sends to
 * an actor at or above the high mark registers on its mute list, marks it
 * OVERLOADED, and parks when its run ends. The receiver reschedules its list
 * and clears the mark when its depth falls below the low mark or it goes
 * idle. No cycle can form: a marked actor never registers anywhere (so it
 * never parks), and nobody registers on an actor that is itself registered.
 * Application threads are never muted.
 */
#include "runtime/actor.h"
#include "runtime/alloc.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/clock.h"
#include "runtime/inbox.h"
#include "runtime/monitor.h"
#include "runtime/rt.h"
#include "runtime/timer.h"
#include "runtime/worker.h"

static _Thread_local pn_actor *tls_actor
    __attribute__((tls_model("initial-exec")));

pn_actor *pn_self(void) { return tls_actor; }

pn_runtime *pn_actor_runtime(const pn_actor *actor) {
  return actor ? actor->rt : NULL;
}

uint64_t pn_actor_id(const pn_actor *actor) { return actor ? actor->id : 0; }

/* --- slab (under rt->reg_lock) ------------------------------------------- */

static pn_actor *slab_take(pn_runtime *rt) {
  if (!rt->slab_free) {
    if (rt->slab_nchunks == rt->slab_cap) {
      size_t cap = rt->slab_cap ? rt->slab_cap * 2 : 16;
      void **chunks = pn__realloc(rt->slab_chunks, cap * sizeof *chunks);
      if (!chunks) {
        return NULL;
      }
      rt->slab_chunks = chunks;
      rt->slab_cap = cap;
    }
    /* With histograms, the chunk's actors are followed by theirs. */
    size_t bytes = PN__ACTORS_PER_CHUNK * sizeof(struct pn_actor);
    if (rt->stats_histograms) {
      bytes += PN__ACTORS_PER_CHUNK * sizeof(pn__actor_hist);
    }
    pn_actor *chunk = pn__aligned_alloc(64, bytes);
    if (!chunk) {
      return NULL;
    }
    rt->slab_chunks[rt->slab_nchunks++] = chunk;
    for (uint32_t i = PN__ACTORS_PER_CHUNK; i-- > 0;) {
      chunk[i].slab_slot = (uint8_t)i;
      chunk[i].slab_next = rt->slab_free;
      rt->slab_free = &chunk[i];
    }
  }
  pn_actor *a = rt->slab_free;
  rt->slab_free = a->slab_next;
  return a;
}

void pn__actor_unref(pn_actor *a) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's writes to whoever drops the last reference; the acquire
   * half, in that last holder, pairs with every other holder's release
   * half here, so the slab reuse comes after all their writes. */
  if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1) {
    return;
  }
  if (atomic_load_explicit(&a->flags, memory_order_relaxed) & PN__A_INBOX) {
    pn__inbox_free(a);
  }
  pn_runtime *rt = a->rt;
  pthread_mutex_lock(&rt->reg_lock);
  pn__label_put(&rt->labels, a->label);
  a->label = NULL;
  a->slab_next = rt->slab_free;
  rt->slab_free = a;
  pthread_mutex_unlock(&rt->reg_lock);
  atomic_fetch_sub_explicit(&rt->actor_objects, 1, memory_order_relaxed);
}

void pn_actor_hold(pn_actor *actor) {
  if (actor) {
    /* relaxed: the caller already holds a reference. */
    atomic_fetch_add_explicit(&actor->refs, 1, memory_order_relaxed);
  }
}

void pn_actor_release(pn_actor *actor) {
  if (!actor) {
    return;
  }
  /* A handler's sends wait in its worker's outbox, which holds no
   * reference to their receivers: deliver them before this may drop the
   * last one (a send and then a release of the only handle, to an actor
   * that already stopped, would otherwise push into a freed actor). */
  pn__worker *w = pn__worker_current(actor->rt);
  if (w && w->outbox_used) {
    pn__outbox_flush(w);
  }
  pn__actor_unref(actor);
}

pn_err pn_spawn(pn_runtime *rt, const pn_actor_config *cfg,
                pn_actor **actor_out) {
  if (!rt || !cfg || cfg->size < sizeof(pn_actor_config) || !cfg->handler ||
      cfg->home_worker < -1 || cfg->home_worker >= (int32_t)rt->nworkers) {
    return PN_EINVAL;
  }
  return pn__spawn(rt, cfg, 0, actor_out);
}

pn_err pn__spawn(pn_runtime *rt, const pn_actor_config *cfg, uint32_t flags,
                 pn_actor **actor_out) {
  pthread_mutex_lock(&rt->reg_lock);
  if (rt->closing) {
    pthread_mutex_unlock(&rt->reg_lock);
    return PN_ECLOSED;
  }
  pn_actor *a = slab_take(rt);
  if (!a) {
    pthread_mutex_unlock(&rt->reg_lock);
    return PN_ENOMEM;
  }
  /* Initialised under the registry lock: a concurrent snapshot reads it as
   * soon as it is on the list. */
  pn__label *label = NULL;
  if (cfg->name && cfg->name[0]) {
    label = pn__label_get(&rt->labels, cfg->name);
    if (!label) {
      a->slab_next = rt->slab_free;
      rt->slab_free = a;
      pthread_mutex_unlock(&rt->reg_lock);
      return PN_ENOMEM;
    }
  }
  uint8_t slot = a->slab_slot;
  memset(a, 0, sizeof *a);
  a->slab_slot = slot;
  if (rt->stats_histograms) {
    /* A reused slot starts from empty histograms. Nothing else reaches
     * them: the previous actor here was freed, and snapshots hold the
     * registry lock we hold. */
    pn__actor_hist *h = pn__actor_hist_of(a);
    for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
      atomic_store_explicit(&h->mailbox[i], 0, memory_order_relaxed);
      atomic_store_explicit(&h->processing[i], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&h->mailbox_sum_ns, 0, memory_order_relaxed);
    atomic_store_explicit(&h->processing_sum_ns, 0, memory_order_relaxed);
  }
  a->label = label;
  a->id = ++rt->next_id;
  a->rt = rt;
  a->home = (int16_t)cfg->home_worker;
  a->handler = cfg->handler;
  a->state = cfg->state;
  atomic_init(&a->stub.next, NULL);
  a->tail = &a->stub;
  atomic_init(&a->refs, actor_out ? 2u : 1u);
  atomic_init(&a->flags, flags | (cfg->batch_end ? PN__A_BATCH_END : 0u));
  atomic_init(&a->mute_state, PN__MUTE_NONE);
  atomic_init(&a->head, (uintptr_t)&a->stub | 1u);
  pn__list_insert_after(&rt->actors, &a->reg);
  /* Counted under the lock: a shutdown that set closing sees every spawn
   * that got past the check. */
  atomic_fetch_add_explicit(&rt->actor_objects, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&rt->actors_spawned, 1, memory_order_relaxed);
  pthread_mutex_unlock(&rt->reg_lock);
  pn__tr(pn__worker_current(rt), PN__TR_SPAWN, a->id, 0);
  if (actor_out) {
    *actor_out = a;
  }
  return PN_OK;
}

/* --- backpressure ----------------------------------------------------------
 */

static void release_muted(pn__worker *w, pn_actor *list);

static void mute_register(pn_actor *sender, pn_actor *to) {
  pn_runtime *rt = to->rt;
  pthread_mutex_t *lock = pn__mute_lock(rt, to);
  pthread_mutex_lock(lock);
  uint32_t f = atomic_load_explicit(&to->flags, memory_order_relaxed);
  /* acquire: pairs with the release exchange in unmute_all(), so this
   * sender's reuse of mute_next comes after the old receiver read it. */
  if (!(f & PN__A_DEAD) && pn__mailbox_depth(to) >= rt->mailbox_high &&
      atomic_load_explicit(&to->mute_state, memory_order_relaxed) ==
          PN__MUTE_NONE &&
      atomic_load_explicit(&sender->mute_state, memory_order_acquire) ==
          PN__MUTE_NONE) {
    /* seq_cst, with the seq_cst load of head below: pairs with the
     * receiver's seq_cst idle CAS in mailbox_try_idle() and its seq_cst
     * load of the flags in went_idle(). Either we see it idle and stay
     * unmuted, or it sees the mark after going idle and unmutes us. */
    atomic_fetch_or_explicit(&to->flags, PN__A_OVERLOADED,
                             memory_order_seq_cst);
    if (!(atomic_load_explicit(&to->head, memory_order_seq_cst) & 1u)) {
      sender->mute_next = to->mute_list;
      to->mute_list = sender;
      pn_actor_hold(sender);
      atomic_store_explicit(&sender->mute_state, PN__MUTE_PENDING,
                            memory_order_relaxed);
      pn__tr(pn__worker_current(rt), PN__TR_MUTE, sender->id, to->id);
    }
  }
  pthread_mutex_unlock(lock);
}

/* Clears the overloaded flag and reschedules every actor muted on a. The
 * lock comes from w's runtime, not a->rt: from went_idle(), a may have been
 * freed and be in pn_spawn(), whose memset leaves a->rt NULL for a moment
 * (actor memory stays in its runtime's slab, so the runtimes are one). Off
 * the workers (w NULL: an inbox's reader) the caller holds a reference, so
 * a->rt is sound. */
static void unmute_all(pn__worker *w, pn_actor *a) {
  pthread_mutex_t *lock = pn__mute_lock(w ? w->rt : a->rt, a);
  pthread_mutex_lock(lock);
  atomic_fetch_and_explicit(&a->flags, ~PN__A_OVERLOADED, memory_order_relaxed);
  pn_actor *list = a->mute_list;
  a->mute_list = NULL;
  pthread_mutex_unlock(lock);
  if (list) {
    pn__tr(w, PN__TR_UNMUTE, a->id, 0);
  }
  release_muted(w, list);
}

/* --- deferred work ---------------------------------------------------------
 */

bool pn__worker_defer(pn__worker *w, void (*fn)(void *ctx), void *ctx) {
  if (!w || !w->in_run || w->ndeferred == PN__DEFERRED_MAX) {
    return false;
  }
  w->deferred[w->ndeferred++] = (pn__deferred){fn, ctx};
  return true;
}

/* At a run's end, after its handler: the work it left, in order (not
 * deferrable again: in_run is off). */
static void run_deferred(pn__worker *w) {
  for (uint32_t i = 0; i < w->ndeferred; i++) {
    w->deferred[i].fn(w->deferred[i].ctx);
  }
  w->ndeferred = 0;
}

/* --- gates ----------------------------------------------------------------
 */

void pn__gate_init(pn__gate *g) {
  pthread_mutex_init(&g->lock, NULL);
  g->list = NULL;
}

bool pn__gate_mute(pn__gate *g) {
  pn_actor *cur = tls_actor;
  if (!cur || (atomic_load_explicit(&cur->flags, memory_order_relaxed) &
               (PN__A_OVERLOADED | PN__A_NEVER_MUTED))) {
    return false;
  }
  bool muted = false;
  pthread_mutex_lock(&g->lock);
  /* acquire: as in mute_register(), our reuse of mute_next comes after
   * the last releaser read it. */
  if (atomic_load_explicit(&cur->mute_state, memory_order_acquire) ==
      PN__MUTE_NONE) {
    cur->mute_next = g->list;
    g->list = cur;
    pn_actor_hold(cur);
    atomic_store_explicit(&cur->mute_state, PN__MUTE_PENDING,
                          memory_order_relaxed);
    muted = true;
  }
  pthread_mutex_unlock(&g->lock);
  if (muted) {
    pn__tr(pn__worker_current(cur->rt), PN__TR_MUTE, cur->id, 0);
  }
  return muted;
}

void pn__gate_open(pn__gate *g) {
  pthread_mutex_lock(&g->lock);
  pn_actor *list = g->list;
  g->list = NULL;
  pthread_mutex_unlock(&g->lock);
  if (list) {
    pn__worker *w = pn__worker_current(list->rt);
    pn__tr(w, PN__TR_UNMUTE, 0, 0);
    release_muted(w, list);
  }
}

void pn__gate_destroy(pn__gate *g) {
  pn__gate_open(g);
  pthread_mutex_destroy(&g->lock);
}

/* Reschedules every actor of a mute list taken off its receiver or gate,
 * and gives back the list's references. */
static void release_muted(pn__worker *w, pn_actor *list) {
  while (list) {
    pn_actor *s = list;
    list = s->mute_next;
    /* acq_rel: the acquire half pairs with the parking CAS at the end of
     * pn__actor_run() (the parked run's writes are visible before we
     * reschedule it); the release half pairs with the acquire load of
     * mute_state in mute_register() (our read of mute_next comes before the
     * sender reuses it). */
    uint16_t prev = atomic_exchange_explicit(&s->mute_state, PN__MUTE_NONE,
                                             memory_order_acq_rel);
    if (prev == PN__MUTE_PARKED) {
      pn__schedule(w, s, false);
    }
    pn__actor_unref(s);
  }
}

/* --- sending ---------------------------------------------------------------
 */

/* A push found a's mailbox idle, so the pusher owns waking it: a run on a
 * worker, or for an inbox its reader (inbox.c). */
static void wake_receiver(pn__worker *cur, pn_actor *a) {
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped(), so a drain sees the stopped run's writes. */
  uint32_t f = atomic_load_explicit(&a->flags, memory_order_acquire);
  if (f & PN__A_INBOX) {
    pn__inbox_wake(cur, a, f);
    return;
  }
  if (f & PN__A_DEAD) {
    pn_actor_hold(a); /* a stopped actor's drain run owns one of its own */
  }
  pn__schedule(cur, a, true);
}

void pn__actor_deliver(pn__worker *cur, pn_actor *a, pn_msg *m) {
  if (pn__mailbox_push_msgs(a, m, m, 1)) {
    wake_receiver(cur, a);
  }
}

/* With histograms, a message's mailbox time starts when it is pushed: the
 * envelopes of the outbox get the push time, or, at the end of a run, the
 * time its last handler returned, which the run has just read anyway. */
static void outbox_stamp(pn__worker *w, uint64_t at) {
  for (uint32_t i = 0; i < w->outbox_used; i++) {
    pn__outbox_slot *slot = &w->outbox[i];
    for (pn_msg *m = slot->first;;) {
      m->sent_ticks = at;
      if (m == slot->last) {
        break;
      }
      m = (pn_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    }
  }
}

/* pn__outbox_flush(), with at the time to stamp (0: read the clock). */
static void outbox_flush_at(pn__worker *w, uint64_t at) {
  if (w->hist && w->outbox_used) {
    outbox_stamp(w, at ? at : pn__ticks());
  }
  for (uint32_t i = 0; i < w->outbox_used; i++) {
    pn__outbox_slot *slot = &w->outbox[i];
    pn_actor *a = slot->to;
    if (pn__mailbox_push_msgs(a, slot->first, slot->last, slot->count)) {
      wake_receiver(w, a);
    }
  }
  w->outbox_used = 0;
}

void pn__outbox_flush(pn__worker *w) { outbox_flush_at(w, 0); }

/* Sends an envelope: collected in the worker's outbox when a handler of
 * this runtime sends, pushed at once otherwise. */
static void send_envelope(pn__worker *w, pn_actor *to, pn_msg *m) {
  if (!w || !tls_actor) {
    if (to->rt->stats_histograms) {
      m->sent_ticks = pn__ticks();
    }
    pn__actor_deliver(w, to, m);
    return;
  }
  pn__outbox_slot *slot = NULL;
  for (uint32_t i = 0; i < w->outbox_used; i++) {
    if (w->outbox[i].to == to) {
      slot = &w->outbox[i];
      break;
    }
  }
  if (slot && slot->count >= PN__OUTBOX_CHAIN_MAX) {
    pn__outbox_flush(w);
    slot = NULL;
  }
  if (!slot) {
    if (w->outbox_used == PN__OUTBOX_SLOTS) {
      pn__outbox_flush(w);
    }
    slot = &w->outbox[w->outbox_used++];
    slot->to = to;
    slot->first = slot->last = m;
    slot->count = 1;
    return;
  }
  atomic_store_explicit(&slot->last->node.next, &m->node, memory_order_relaxed);
  slot->last = m;
  slot->count++;
}

/* Counts the send and mutes the sending actor if the receiver's mailbox is
 * over the high mark. Only for sends made by a handler of the same
 * runtime. */
static void note_send(pn_actor *to) {
  pn_actor *cur = tls_actor;
  if (!cur || cur->rt != to->rt) {
    return;
  }
  pn__stat_add(&cur->sent, 1);
  if (cur != to && pn__mailbox_depth(to) >= to->rt->mailbox_high &&
      !(atomic_load_explicit(&cur->flags, memory_order_relaxed) &
        (PN__A_OVERLOADED | PN__A_NEVER_MUTED)) &&
      atomic_load_explicit(&cur->mute_state, memory_order_relaxed) ==
          PN__MUTE_NONE) {
    mute_register(cur, to);
  }
}

/* Counts, traces and queues a built envelope for `to`. */
static void post(pn__worker *w, pn_actor *to, pn_msg *m) {
  note_send(to);
  if (pn__tr_on(w, PN__TR_SEND)) {
    pn__tr(w, PN__TR_SEND, tls_actor ? tls_actor->id : 0, to->id);
  }
  send_envelope(w, to, m);
}

pn_err pn__send_parts(pn_actor *to, uint32_t type, const void *a, size_t alen,
                      const void *b, size_t blen) {
  size_t size = alen + blen;
  if (size > PN_MSG_COPY_MAX + 64u) {
    return PN_ERANGE;
  }
  uint32_t f = atomic_load_explicit(&to->flags, memory_order_relaxed);
  if (f & PN__A_DEAD) {
    return PN_ECLOSED;
  }
  pn__worker *w = pn__worker_current(to->rt);
  pn_msg *m = pn__msg_alloc(to->rt, w, size);
  if (!m) {
    return PN_ENOMEM;
  }
  m->type = type;
  m->size = (uint32_t)size;
  if (size) {
    m->data = m->inline_data;
    if (alen) {
      memcpy(m->inline_data, a, alen);
    }
    if (blen) {
      memcpy(m->inline_data + alen, b, blen);
    }
  }
  post(w, to, m);
  return PN_OK;
}

pn_err pn_send(pn_actor *to, uint32_t type, const void *data, size_t size) {
  if (!to || type >= PN_MSG_TYPE_RESERVED || (size && !data)) {
    return PN_EINVAL;
  }
  if (size > PN_MSG_COPY_MAX) {
    return PN_ERANGE;
  }
  return pn__send_parts(to, type, data, size, NULL, 0);
}

pn_err pn_send_buf(pn_actor *to, uint32_t type, void *data, size_t size,
                   pn_free_fn free_fn, void *ctx) {
  if (!to || type >= PN_MSG_TYPE_RESERVED || (size && !data) ||
      size > UINT32_MAX) {
    return PN_EINVAL;
  }
  return pn__send_buf(to, type, data, size, free_fn, ctx);
}

pn_err pn__send_buf(pn_actor *to, uint32_t type, void *data, size_t size,
                    pn_free_fn free_fn, void *ctx) {
  uint32_t f = atomic_load_explicit(&to->flags, memory_order_relaxed);
  if (f & PN__A_DEAD) {
    return PN_ECLOSED;
  }
  pn__worker *w = pn__worker_current(to->rt);
  pn_msg *m = pn__msg_alloc(to->rt, w, sizeof(pn__msg_buf));
  if (!m) {
    return PN_ENOMEM;
  }
  m->type = type;
  m->size = (uint32_t)size;
  m->kind = PN__MSG_BUF;
  m->data = data;
  pn__msg_buf *buf = pn__msg_buf_of(m);
  buf->fn = free_fn;
  buf->ctx = ctx;
  post(w, to, m);
  return PN_OK;
}

#define ENVELOPE_DATA_OFF ((sizeof(pn__msg_buf) + 15u) & ~(size_t)15u)

pn_msg *pn__envelope_new(pn_runtime *rt, uint32_t type, size_t size,
                         pn_free_fn free_fn, void **data_out) {
  pn_msg *m =
      pn__msg_alloc(rt, pn__worker_current(rt), ENVELOPE_DATA_OFF + size);
  if (!m) {
    return NULL;
  }
  m->type = type;
  m->size = (uint32_t)size;
  m->kind = PN__MSG_BUF;
  m->data = m->inline_data + ENVELOPE_DATA_OFF;
  memset(m->data, 0, size);
  pn__msg_buf *buf = pn__msg_buf_of(m);
  buf->fn = free_fn;
  buf->ctx = NULL;
  *data_out = m->data;
  return m;
}

pn_err pn__envelope_send(pn_actor *to, pn_msg *m) {
  pn__worker *w = pn__worker_current(to->rt);
  uint32_t f = atomic_load_explicit(&to->flags, memory_order_relaxed);
  if (f & PN__A_DEAD) {
    pn__msg_free(to->rt, w, m);
    return PN_ECLOSED;
  }
  post(w, to, m);
  return PN_OK;
}

void pn__envelope_free(pn_runtime *rt, pn_msg *m) {
  pn__msg_free(rt, pn__worker_current(rt), m);
}

void *pn__block_alloc(pn_runtime *rt, size_t size) {
  pn_msg *m = pn__msg_alloc(rt, pn__worker_current(rt), size);
  return m ? m->inline_data : NULL;
}

void pn__block_free(pn_runtime *rt, void *block) {
  if (block) {
    pn_msg *m = (pn_msg *)(void *)((unsigned char *)block -
                                   offsetof(pn_msg, inline_data));
    pn__msg_free(rt, pn__worker_current(rt), m);
  }
}

pn_err pn_actor_stop(pn_actor *actor) {
  if (!actor) {
    return PN_EINVAL;
  }
  /* acq_rel: the acquire half pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped(), so a caller told PN_ECLOSED sees the stopped
   * handler's writes. The release half pairs with nothing that reads STOP_REQ
   * for data (the stop travels as an envelope, which the mailbox push
   * publishes); it is kept because this is no hot path. */
  uint32_t f = atomic_fetch_or_explicit(&actor->flags, PN__A_STOP_REQ,
                                        memory_order_acq_rel);
  if (f & PN__A_DEAD) {
    return PN_ECLOSED;
  }
  if (f & PN__A_STOP_REQ) {
    return PN_OK;
  }
  if (f & PN__A_INBOX) {
    /* No handler to run and no reader to count on: a worker stops it, on
     * the runtime's reference, which only that stop gives back. */
    pn__schedule(pn__worker_current(actor->rt), actor, false);
    return PN_OK;
  }
  if (tls_actor == actor) {
    actor->stop_now = true;
    return PN_OK;
  }
  pn__worker *w = pn__worker_current(actor->rt);
  pn_msg *m = pn__msg_alloc(actor->rt, w, 0);
  if (!m) {
    atomic_fetch_and_explicit(&actor->flags, ~PN__A_STOP_REQ,
                              memory_order_relaxed);
    return PN_ENOMEM;
  }
  m->kind = PN__MSG_STOP;
  m->type = PN_MSG_STOPPED;
  /* Through the outbox, so it stays behind this sender's earlier sends. */
  send_envelope(w, actor, m);
  return PN_OK;
}

uint32_t pn_msg_type(const pn_msg *msg) { return msg ? msg->type : 0; }

const void *pn_msg_data(const pn_msg *msg) { return msg ? msg->data : NULL; }

size_t pn_msg_size(const pn_msg *msg) { return msg ? msg->size : 0; }

/* --- running ------------------------------------------------------------- */

/* Marks an empty mailbox idle, and at the same time puts the stub back as
 * its only node so the last envelope can be freed: an idle actor holds no
 * envelope. The CAS expects head to be the last node taken, so it fails if
 * any sender exchanged head since, even one still linking; only this CAS
 * ever sets the idle bit. On success the envelope is unreachable: every
 * later sender's exchange returns the stub. */
static bool idle_cas(pn_actor *a, pn__node *tail) {
  if (tail != &a->stub) {
    /* Written before the CAS publishes the stub: once it does, a sender
     * may link behind it and a run on another worker may read tail. */
    atomic_store_explicit(&a->stub.next, NULL, memory_order_relaxed);
    a->tail = &a->stub;
  }
  uintptr_t expected = (uintptr_t)tail;
  /* seq_cst (at least release): publishes this run's writes, tail and the
   * stub to the sender that next finds the mailbox idle (pairs with the
   * acquire half of its exchange in pn__mailbox_push_chain() or
   * pn__mailbox_push_msgs(), actor.h), and orders the CAS before
   * went_idle()'s seq_cst look at the overload mark (pairs with the seq_cst
   * fetch_or and load of head in mute_register()). */
  if (atomic_compare_exchange_strong_explicit(
          &a->head, &expected, (uintptr_t)&a->stub | 1u, memory_order_seq_cst,
          memory_order_relaxed)) {
    return true;
  }
  a->tail = tail;
  return false;
}

bool pn__mailbox_idle_cas(pn_actor *a, pn__node *tail) {
  return idle_cas(a, tail);
}

static bool mailbox_try_idle(pn__worker *w, pn_actor *a) {
  pn__node *tail = a->tail;
  if (!idle_cas(a, tail)) {
    return false;
  }
  if (tail != &a->stub) {
    pn__msg_free(a->rt, w, (pn_msg *)tail);
  }
  return true;
}

/* After the mailbox went idle: if a sender marked it overloaded meanwhile,
 * release the muted senders. The actor may already run again elsewhere,
 * or even have been freed and reused: actor memory is never returned to
 * the allocator while the runtime lives, and a stray unmute is harmless
 * (the senders resume and register again if they must). */
static void went_idle(pn__worker *w, pn_actor *a) {
  /* seq_cst: after the seq_cst idle CAS in idle_cas(), pairs with
   * mute_register()'s seq_cst fetch_or of OVERLOADED and load of head (its
   * mark, then its look). */
  if (atomic_load_explicit(&a->flags, memory_order_seq_cst) &
      PN__A_OVERLOADED) {
    unmute_all(w, a);
  }
}

void pn__actor_went_idle(pn__worker *w, pn_actor *a) { went_idle(w, a); }

/* Below half the high mark an overloaded actor releases its muted
 * senders; depth is what is still queued. */
static void unmute_if_relieved(pn__worker *w, pn_actor *a, uint32_t depth) {
  if ((atomic_load_explicit(&a->flags, memory_order_relaxed) &
       PN__A_OVERLOADED) &&
      depth < a->rt->mailbox_high / 2) {
    unmute_all(w, a);
  }
}

void pn__mailbox_note_taken(pn__worker *w, pn_actor *a, uint32_t taken) {
  atomic_store_explicit(
      &a->taken, atomic_load_explicit(&a->taken, memory_order_relaxed) + taken,
      memory_order_relaxed);
  unmute_if_relieved(w, a, pn__mailbox_depth(a));
}

/* A stopped actor's run: frees everything queued, then marks the mailbox
 * idle and gives up the reference this run owns. */
static void drain_stopped(pn__worker *w, pn_actor *a) {
  uint64_t dropped = 0;
  uint32_t taken = 0;
  for (;;) {
    pn__node *tail = a->tail;
    /* acquire: pairs with the release store of this link in
     * pn__mailbox_push_chain() or pn__mailbox_push_msgs() (actor.h). */
    pn__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (!next) {
      break;
    }
    a->tail = next;
    if (tail != &a->stub) {
      pn__msg_free(a->rt, w, (pn_msg *)tail);
    }
    dropped++;
    taken += ((pn_msg *)next)->chain_count;
  }
  atomic_store_explicit(
      &a->taken, atomic_load_explicit(&a->taken, memory_order_relaxed) + taken,
      memory_order_relaxed);
  pn__stat_add(&a->received, dropped);
  pn__stat_add(&a->dropped, dropped);
  if (mailbox_try_idle(w, a)) {
    pn__actor_unref(a);
    return;
  }
  /* A sender is between its exchange and its link; come back later. The
   * reference stays with the next run. */
  pn__schedule(w, a, false);
}

void pn__actor_mark_stopped(pn__worker *w, pn_actor *a) {
  pn__tr(w, PN__TR_STOP, a->id, 0);
  /* Off the registry first, under its lock, so no snapshot lists an actor
   * that is already marked stopped. */
  pn__runtime_unregister(a->rt, a);
  /* release: pairs with the acquire loads of the flags in wake_receiver()
   * and pn__actor_run(), the acq_rel fetch_or in pn_actor_stop(),
   * pn__timer_heap_fire() and pn__timer_start() (timer.c),
   * pn_stats_subscribe() (stats_feed.c), pn_socket_open()
   * (actors/socket.c) and the inbox's loads (inbox.c): whoever sees DEAD
   * sees the handler's last writes. */
  uint32_t was = atomic_fetch_or_explicit(
      &a->flags, PN__A_DEAD | PN__A_STOP_REQ, memory_order_acq_rel);
  unmute_all(w, a);
  if (was & PN__A_MONITORED) {
    pn__monitors_fire(a->rt, a); /* before the count: a shutdown waits */
  }
  pn__runtime_count_stopped(a->rt);
}

static void finish_stop(pn__worker *w, pn_actor *a) {
  pn_msg stopped;
  memset(&stopped, 0, sizeof stopped);
  stopped.type = PN_MSG_STOPPED;
  tls_actor = a;
  a->handler(a, a->state, &stopped);
  tls_actor = NULL;
  pn__outbox_flush(w);
  pn__stat_add(&a->processed, 1);
  pn__actor_mark_stopped(w, a);
  drain_stopped(w, a);
}

enum run_end { RUN_EMPTY, RUN_PENDING, RUN_STOP };

/* CPU time of short single-message runs is sampled (runs with more
 * waiting, and every run of an actor whose runs are long, are timed
 * exactly): an actor's first CPU_EXACT_RUNS runs are all
 * timed; after that a worker times one run in every CPU_SAMPLE_EVERY on
 * average, at random gaps (so a periodic pattern of actors cannot always
 * dodge or always hit the sample), and counts it that many times over,
 * which estimates the total without bias. Reading the TSC around every run
 * cost about 30% of a ping-pong's throughput; the sampled path costs a
 * decrement per run. */
#define CPU_EXACT_RUNS 16u
#define CPU_SAMPLE_EVERY 64u

/* The weight to charge this run's time with, or 0 to leave it untimed. */
static uint64_t cpu_sample_weight(pn__worker *w, uint64_t runs_before) {
  if (!w->rt->stats_cpu_time) {
    return 0;
  }
  if (runs_before < CPU_EXACT_RUNS) {
    return 1;
  }
  if (--w->cpu_gap) {
    return 0;
  }
  /* Next gap uniform in [1, 2 * CPU_SAMPLE_EVERY - 1]: mean CPU_SAMPLE_EVERY.
   * xorshift32 on the worker's own state. */
  uint32_t x = w->cpu_rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  w->cpu_rng = x;
  w->cpu_gap = 1u + x % (2u * CPU_SAMPLE_EVERY - 1u);
  return CPU_SAMPLE_EVERY;
}

/* A run longer than this (about 10-20 us) makes reading the TSC around
 * every run of the actor cheap in comparison, so its runs are then timed
 * exactly. A sampled run that long is counted once, not
 * CPU_SAMPLE_EVERY times: it is more likely a preemption than typical. */
#define CPU_LONG_RUN_TICKS 50000u

static void charge_cpu(pn_actor *a, uint64_t weight, uint64_t t0) {
  if (!weight) {
    return;
  }
  uint64_t dt = pn__ticks() - t0;
  bool long_run = dt > CPU_LONG_RUN_TICKS;
  a->time_exactly = long_run;
  pn__stat_add(&a->cpu_ticks, long_run ? dt : dt * weight);
}

/* Per-actor histograms (stats_histograms): the time from a message's push
 * into the mailbox to the start of its handling, and the handler's
 * duration. The TSC is read once when the run begins and once after each
 * handler, whose return is taken as the next message's start; the push
 * time rides in the envelope (outbox_stamp, send_envelope, timer ticks).
 * A TSC that differs slightly between CPUs could make a time negative: it
 * counts as zero. */
static inline void hist_add(_Atomic uint64_t *buckets, _Atomic uint64_t *sum,
                            uint64_t from, uint64_t to, uint64_t ns_q32) {
  uint64_t ticks = to > from ? to - from : 0;
  /* Fixed point: one multiply instead of two float conversions. */
#ifdef __SIZEOF_INT128__
  __extension__ unsigned __int128 p = (unsigned __int128)ticks * ns_q32;
  uint64_t ns = (uint64_t)(p >> 32);
#else
  uint64_t ns = (uint64_t)((double)ticks * ((double)ns_q32 / 4294967296.0));
#endif
  pn__stat_add(&buckets[pn__hist_bucket(ns)], 1);
  pn__stat_add(sum, ns);
}

/* Calls the handler for m. With histograms (hist not NULL), *now is the
 * time the previous handler returned, or the run began, and moves on. */
static inline __attribute__((always_inline)) void
call_handler(pn_actor *a, pn_msg *m, pn__actor_hist *hist, uint64_t ns_q32,
             uint64_t *now) {
  if (hist) {
    hist_add(hist->mailbox, &hist->mailbox_sum_ns, m->sent_ticks, *now, ns_q32);
  }
  a->handler(a, a->state, m);
  if (hist) {
    uint64_t t = pn__ticks();
    hist_add(hist->processing, &hist->processing_sum_ns, *now, t, ns_q32);
    *now = t;
  }
}

typedef struct run_tally {
  enum run_end end;
  uint32_t count;     /* envelopes taken */
  uint32_t taken;     /* counted envelopes taken (backpressure) */
  uint64_t processed; /* given to the handler */
  uint64_t dropped;   /* taken but not handled (late ticks) */
  uint64_t now;       /* histograms: when the last handler returned */
} run_tally;

/* The body of a run: takes and handles at most batch messages, stopping
 * after h0. Inlined at two calls, one with hist NULL, so a runtime without
 * histograms runs a loop that has no trace of them. */
static inline __attribute__((always_inline)) run_tally
handle_messages(pn__worker *w, pn_actor *a, pn__node *h0,
                pn__actor_hist *hist) {
  pn_runtime *rt = a->rt;
  uint32_t batch = rt->batch;
  uint64_t ns_q32 = hist ? rt->hist_ns_q32 : 0;
  run_tally t = {RUN_EMPTY, 0, 0, 0, 0, hist ? pn__ticks() : 0};
  bool reached_h0 = false;
  for (;;) {
    pn__node *tail = a->tail;
    /* acquire: pairs with the sender's release store of this link in
     * pn__mailbox_push_chain() or pn__mailbox_push_msgs() (actor.h). */
    pn__node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (!next) {
      t.end = RUN_EMPTY;
      return t;
    }
    if (reached_h0 || t.count >= batch) {
      t.end = RUN_PENDING;
      return t;
    }
    a->tail = next;
    if (tail != &a->stub) {
      pn__msg_free(rt, w, (pn_msg *)tail);
    }
    reached_h0 = next == h0;
    pn_msg *m = (pn_msg *)next;
    t.count++;
    t.taken += m->chain_count;
    switch (m->kind) {
    case PN__MSG_STOP:
      a->stop_now = true;
      break;
    case PN__MSG_TICK:
      if (pn__timer_tick_take(m->timer)) {
        call_handler(a, m, hist, ns_q32, &t.now);
        t.processed++;
      } else {
        t.dropped++;
      }
      pn__msg_release_payload(m);
      break;
    case PN__MSG_BUF:
      call_handler(a, m, hist, ns_q32, &t.now);
      t.processed++;
      pn__msg_release_payload(m);
      break;
    default:
      call_handler(a, m, hist, ns_q32, &t.now);
      t.processed++;
      break;
    }
    if (a->stop_now) {
      t.end = RUN_STOP;
      return t;
    }
  }
}

void pn__actor_run(pn__worker *w, pn_actor *a) {
  pn_runtime *rt = a->rt;
  uint64_t runs_before = atomic_load_explicit(&a->runs, memory_order_relaxed);
  atomic_store_explicit(&a->runs, runs_before + 1, memory_order_relaxed);
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped(), so a drain run sees the stopped run's writes (the
   * run queue's hand-over orders them too; this keeps the pairing visible
   * here). */
  uint32_t flags = atomic_load_explicit(&a->flags, memory_order_acquire);
  if (flags & (PN__A_DEAD | PN__A_INBOX)) {
    if (flags & PN__A_INBOX) {
      pn__inbox_run(w, a); /* its stop, or a drain once stopped */
    } else {
      drain_stopped(w, a);
    }
    return;
  }
  /* acquire: pairs with the release half of the senders' exchange in
   * pn__mailbox_push_chain() or pn__mailbox_push_msgs() (actor.h). h0 is
   * only compared, never read through: everything pushed up to it is
   * linked or being linked, and the run stops after h0 so a steady stream
   * of sends cannot keep it going. */
  pn__node *h0 =
      (pn__node *)(atomic_load_explicit(&a->head, memory_order_acquire) &
                   ~(uintptr_t)1);
  /* A run with more than one message waiting is timed exactly (two TSC
   * reads are cheap next to it); single-message runs are sampled. acquire:
   * pairs with the release link store in pn__mailbox_push_chain() or
   * pn__mailbox_push_msgs() (actor.h), as the loads in handle_messages()
   * do; this one is only compared. */
  bool several =
      atomic_load_explicit(&a->tail->next, memory_order_acquire) != h0;
  uint64_t cpu_weight = (several || a->time_exactly) && rt->stats_cpu_time
                            ? 1
                            : cpu_sample_weight(w, runs_before);
  uint64_t t0 = cpu_weight ? pn__ticks() : 0;
  /* Events inside the run take its start time; the run's own event goes in
   * when it ends, after them, so the ring stays in time order. */
  uint64_t trace_t0 = 0;
  if (w->trace_mask) {
    trace_t0 = pn__trace_now(&w->trace);
    w->trace_run_ts = trace_t0;
  }
  tls_actor = a;
  w->in_run = true;
  run_tally tally = rt->stats_histograms
                        ? handle_messages(w, a, h0, pn__actor_hist_of(a))
                        : handle_messages(w, a, h0, NULL);
  enum run_end end = tally.end;
  uint32_t count = tally.count;
  uint64_t processed = tally.processed;
  uint64_t dropped = tally.dropped;
  if (end != RUN_STOP && (processed || dropped) && (flags & PN__A_BATCH_END)) {
    pn_msg batch_end;
    memset(&batch_end, 0, sizeof batch_end);
    batch_end.type = PN_MSG_BATCH_END;
    a->handler(a, a->state, &batch_end);
    end = a->stop_now ? RUN_STOP : end;
    tally.now = 0; /* it may have sent: stamp with a fresh read */
  }
  w->in_run = false;
  if (w->ndeferred) {
    run_deferred(w);
    tally.now = 0;
  }
  tls_actor = NULL;
  outbox_flush_at(w, tally.now);
  atomic_store_explicit(&a->taken,
                        atomic_load_explicit(&a->taken, memory_order_relaxed) +
                            tally.taken,
                        memory_order_relaxed);
  pn__stat_add(&a->received, count);
  pn__stat_add(&a->processed, processed);
  if (w->trace_mask) {
    w->trace_run_ts = 0;
    uint64_t dur = pn__trace_run_dur(&w->trace, trace_t0);
    if (pn__tr_on(w, PN__TR_RUN)) {
      pn__trace_put(&w->trace, PN__TR_RUN, trace_t0, a->id,
                    (uint64_t)count | (dur < UINT32_MAX ? dur : UINT32_MAX)
                                          << 32);
    }
  }
  if (dropped) {
    pn__stat_add(&a->dropped, dropped);
  }
  if (end == RUN_STOP) {
    /* Charged first: finishing the stop may free the actor. */
    charge_cpu(a, cpu_weight, t0);
    finish_stop(w, a);
    return;
  }

  uint32_t depth = end == RUN_EMPTY ? 0 : pn__mailbox_depth(a);
  if (end != RUN_EMPTY) {
    unmute_if_relieved(w, a, depth);
  }
  flags = atomic_load_explicit(&a->flags, memory_order_relaxed);
  if (depth > atomic_load_explicit(&a->depth_hwm, memory_order_relaxed)) {
    atomic_store_explicit(&a->depth_hwm, depth, memory_order_relaxed);
  }
  charge_cpu(a, cpu_weight, t0);

  if (atomic_load_explicit(&a->mute_state, memory_order_relaxed) ==
      PN__MUTE_PENDING) {
    uint16_t expected = PN__MUTE_PENDING;
    /* A marked actor may have muters of its own; it must keep running so
     * it can release them (that is what keeps muting free of cycles). */
    uint16_t target =
        (flags & PN__A_OVERLOADED) ? PN__MUTE_CANCELLED : PN__MUTE_PARKED;
    /* acq_rel: the release half pairs with the acq_rel exchange in
     * unmute_all(), which may then reschedule us on another worker; the
     * acquire half (and the acquire failure order) pairs with that
     * exchange's release half when it already unmuted us. */
    if (atomic_compare_exchange_strong_explicit(&a->mute_state, &expected,
                                                target, memory_order_acq_rel,
                                                memory_order_acquire) &&
        target == PN__MUTE_PARKED) {
      pn__stat_add(&a->muted, 1);
      return;
    }
  }
  if (end == RUN_EMPTY && mailbox_try_idle(w, a)) {
    went_idle(w, a);
    return;
  }
  pn__schedule(w, a, false);
}
