/* References and the messages sent to them (include/peernet/node.h).
 *
 * A local actor is reachable by reference once exported (pn_node_ref, or
 * as the sender of pn_node_send): the node holds it in `exports` until a
 * message finds it stopped. A message to another node is one Envelope on
 * the lane its sender's id picks; the receiving node actor unpacks it and
 * hands the payload over to the actor (pn_send_buf), with the sender's
 * reference beside it, where pn_msg_sender() finds it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/credit.h"
#include "nodes/envelope.h"
#include "nodes/node.h"
#include "peernet_node.pb-c.h"
#include "runtime/alloc.h"
#include "runtime/msg.h"
#include "runtime/worker.h"

/* What a delivered message carries beside its bytes. */
typedef struct delivery {
  pn_ref sender;
  pn_packet *pkt;        /* remote: the payload's home (held) */
  pn__credit *credit;    /* remote: its link's flow control (held) */
  uint32_t lane;         /* remote: the lane it came on */
  uint64_t cost;         /* remote: its cost there */
  unsigned char bytes[]; /* local: the payload */
} delivery;

static void delivery_free(void *data, void *ctx) {
  (void)data;
  delivery *d = ctx;
  pn_packet_release(d->pkt);
  if (d->credit) {
    pn__credit_consumed(d->credit, d->lane, d->cost);
    pn__credit_release(d->credit);
  }
  free(d);
}

/* A small remote message's delivery, inside its envelope with the
 * payload (deliver_one): only the credit to give back. */
static void delivery_inline_free(void *data, void *ctx) {
  (void)data;
  delivery *d = ctx;
  pn__credit_consumed(d->credit, d->lane, d->cost);
  pn__credit_release(d->credit);
}

pn_err pn_msg_sender(const pn_msg *msg, pn_ref *out) {
  if (!msg || !out) {
    return PN_EINVAL;
  }
  pn_msg *m = (pn_msg *)msg; /* read only */
  if (m->kind != PN__MSG_BUF ||
      (pn__msg_buf_of(m)->fn != delivery_free &&
       pn__msg_buf_of(m)->fn != delivery_inline_free)) {
    return PN_ENOENT;
  }
  *out = ((const delivery *)pn__msg_buf_of(m)->ctx)->sender;
  return PN_OK;
}

/* --- exports ------------------------------------------------------------- */

/* Under exports_lock. */
static pn__export *export_find(pn_node *n, uint64_t id) {
  return id ? pn__idmap_get(&n->exports, id) : NULL;
}

pn__export *pn__ref_export(pn_node *n, pn_actor *a) {
  uint64_t id = pn_actor_id(a);
  pthread_mutex_lock(&n->exports_lock);
  pn__export *e = export_find(n, id);
  if (!e && (e = pn__calloc(1, sizeof *e)) != NULL) {
    pn_actor_hold(a);
    e->actor = a;
    if (!pn__idmap_put(&n->exports, id, e)) {
      pn_actor_release(a);
      free(e);
      e = NULL;
    }
  }
  pthread_mutex_unlock(&n->exports_lock);
  return e;
}

pn_actor *pn__ref_exported(pn_node *n, uint64_t id) {
  pthread_mutex_lock(&n->exports_lock);
  pn__export *e = export_find(n, id);
  pn_actor *a = e ? e->actor : NULL;
  pn_actor_hold(a);
  pthread_mutex_unlock(&n->exports_lock);
  return a;
}

/* The running actor's record, through its worker's one-entry cache: a
 * handler that sends a stream finds it without the lock. A cached record
 * is sound while its actor runs: only a stopped actor's is removed, and
 * ids are never reused. */
static pn__export *export_self(pn_node *n, pn_actor *self) {
  pn__worker *w = pn__worker_current(n->rt);
  pn__sender_cache *k = w ? &n->senders[w->index] : NULL;
  uint64_t id = pn_actor_id(self);
  if (k && k->id == id) {
    return k->e;
  }
  pn__export *e = pn__ref_export(n, self);
  if (k && e) {
    k->id = id;
    k->e = e;
  }
  return e;
}

static void unexport(pn_node *n, uint64_t id) {
  pthread_mutex_lock(&n->exports_lock);
  pn__export *e = pn__idmap_del(&n->exports, id);
  pthread_mutex_unlock(&n->exports_lock);
  if (e) {
    pn_actor_release(e->actor);
    free(e);
  }
}

void pn__refs_free(pn_node *n) {
  for (size_t i = 0; i < n->exports.cap; i++) {
    if (n->exports.slots[i].key) {
      pn__export *e = n->exports.slots[i].value;
      pn_actor_release(e->actor);
      free(e);
    }
  }
  pn__idmap_free(&n->exports);
}

void pn__refs_snap(pn_node *n, pn_actor_stats *rows, size_t count) {
  pthread_mutex_lock(&n->exports_lock);
  for (size_t i = 0; i < count && n->exports.count; i++) {
    const pn__export *e = export_find(n, rows[i].id);
    if (e) {
      rows[i].remote_sent +=
          atomic_load_explicit(&e->sent, memory_order_relaxed);
      rows[i].remote_received +=
          atomic_load_explicit(&e->received, memory_order_relaxed);
    }
  }
  pthread_mutex_unlock(&n->exports_lock);
}

pn_err pn_node_ref(pn_node *node, pn_actor *actor, pn_ref *ref_out) {
  if (!node || !actor || !ref_out || pn_actor_runtime(actor) != node->rt) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  if (!pn__ref_export(node, actor)) {
    return PN_ENOMEM;
  }
  *ref_out = (pn_ref){.node = node->id,
                      .incarnation = node->incarnation,
                      .actor = pn_actor_id(actor)};
  return PN_OK;
}

/* Hands a local message's payload (owned by d) to the exported actor
 * `to`; false when there is none (counted). */
static bool deliver(pn_node *n, uint64_t to, uint32_t type, void *data,
                    size_t size, delivery *d) {
  pn_actor *a = pn__ref_exported(n, to);
  pn_err err =
      a ? pn_send_buf(a, type, size ? data : NULL, size, delivery_free, d)
        : PN_ECLOSED;
  /* Not unexported here, on any thread: the node actor alone removes
   * records (deliver_one keeps one across a Batch). */
  pn_actor_release(a);
  if (err != PN_OK) {
    atomic_fetch_add(&n->dropped_no_actor, 1);
    delivery_free(data, d);
    return false;
  }
  return true;
}

/* --- sending ------------------------------------------------------------- */

static pn_err send_local(pn_node *n, const pn_ref *to, uint64_t from,
                         uint32_t type, const void *data, size_t size) {
  delivery *d = malloc(sizeof *d + size);
  if (!d) {
    return PN_ENOMEM;
  }
  d->sender = (pn_ref){.node = from ? n->id : 0,
                       .incarnation = from ? n->incarnation : 0,
                       .actor = from};
  d->pkt = NULL;
  d->credit = NULL;
  if (size) {
    memcpy(d->bytes, data, size);
  }
  atomic_fetch_add(&n->sent_local, 1);
  (void)deliver(n, to->actor, type, d->bytes, size, d);
  return PN_OK;
}

/* Flow control (credit.h): an actor the lane is out of credit for is
 * muted once its envelope is queued; a thread gets PN_EAGAIN. */
static pn_err send_remote(pn_node *n, const pn_ref *to, uint64_t from,
                          pn__export *sender, uint32_t type, const void *data,
                          size_t size) {
  if (size > PN__NODE_PAYLOAD_MAX) {
    return PN_ERANGE;
  }
  pn__envelope env = {.to_actor = to->actor,
                      .to_incarnation = to->incarnation,
                      .from_actor = from,
                      .type = type,
                      .payload = data,
                      .len = size};
  pn_err err;
  /* The read lock keeps the member and its link while the send, which
   * never blocks, writes the envelope into its lane's Batch (batch.c). */
  pthread_rwlock_rdlock(&n->lock);
  pn__member *m = pn__member_find(n, to->node);
  if (!m || !m->up || m->incarnation != to->incarnation) {
    err = PN_ENOENT;
  } else {
    pn__credit *c = m->link->credit;
    uint32_t lane = 1 + (uint32_t)(from % c->lanes);
    uint64_t cost = size + PN__CREDIT_OVERHEAD;
    bool mute = false;
    err = pn__credit_take(c, lane, cost, from != 0, &mute);
    if (err == PN_EAGAIN) {
      atomic_fetch_add(&n->sends_refused, 1);
    } else {
      err = pn__batch_add(c, lane, &env, from != 0);
      if (err != PN_OK) {
        pn__credit_untake(c, lane, cost);
      } else {
        atomic_fetch_add(&m->msgs_out, 1);
        if (mute && pn__credit_mute(c, lane)) {
          atomic_fetch_add(&n->senders_muted, 1);
        }
      }
    }
  }
  pthread_rwlock_unlock(&n->lock);
  if (err == PN_OK) {
    atomic_fetch_add(&n->sent_remote, 1);
    if (sender) {
      atomic_fetch_add_explicit(&sender->sent, 1, memory_order_relaxed);
    }
    pn__tr(pn__worker_current(n->rt), PN__TR_REMOTE_SEND, from, to->actor);
  }
  return err;
}

pn_err pn_node_send(pn_node *node, const pn_ref *to, uint32_t type,
                    const void *data, size_t size) {
  if (!node || !to || type >= PN_MSG_TYPE_RESERVED || (!data && size)) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  uint64_t from = 0;
  pn__export *sender = NULL;
  pn_actor *self = pn_self();
  if (self && pn_actor_runtime(self) == node->rt) {
    sender = export_self(node, self);
    if (!sender) {
      return PN_ENOMEM;
    }
    from = pn_actor_id(self);
  }
  if (to->node == node->id) {
    return to->incarnation == node->incarnation
               ? send_local(node, to, from, type, data, size)
               : PN_ENOENT;
  }
  return send_remote(node, to, from, sender, type, data, size);
}

/* --- receiving ----------------------------------------------------------- */

/* Read in place (envelope.h); the payload stays in the received packet,
 * which the delivery holds until the receiver is done: no copy. */
/* Payloads up to this size are copied into the envelope that carries
 * them, with their delivery: no malloc, and the received packet is not
 * held for them. Larger ones stay in the packet (no copy). */
#define INLINE_MAX 512u

/* The exported actor a Batch's envelopes went to last: most of a lane's
 * envelopes go to one, so its record is looked up once. The node actor
 * alone removes records, so one stays valid until it does (unexport). */
typedef struct target {
  uint64_t id; /* 0: none looked up yet */
  pn__export *e;
} target;

static pn__export *target_of(pn_node *n, target *t, uint64_t id) {
  if (t->id != id || !id) {
    pthread_mutex_lock(&n->exports_lock);
    t->e = export_find(n, id);
    pthread_mutex_unlock(&n->exports_lock);
    t->id = id;
  }
  return t->e;
}

/* Hands one envelope's payload to its exported actor. */
static pn_err hand_over(pn_node *n, const pn__envelope *env, pn_actor *to,
                        const delivery *head, pn_packet *pkt) {
  if (env->len <= INLINE_MAX) {
    void *p;
    pn_msg *m = pn__envelope_new(n->rt, env->type, sizeof *head + env->len,
                                 delivery_inline_free, &p);
    if (!m) {
      delivery_inline_free(NULL, (void *)(uintptr_t)head);
      return PN_ENOMEM;
    }
    delivery *d = p;
    *d = *head;
    if (env->len) {
      memcpy(d->bytes, env->payload, env->len);
    }
    m->data = env->len ? d->bytes : NULL;
    m->size = (uint32_t)env->len;
    pn__msg_buf_of(m)->ctx = d;
    return pn__envelope_send(to, m); /* freed (credit given) if stopped */
  }
  delivery *d = malloc(sizeof *d);
  if (!d) {
    delivery_inline_free(NULL, (void *)(uintptr_t)head);
    return PN_ENOMEM;
  }
  *d = *head;
  d->pkt = pkt;
  pn_packet_hold(pkt);
  void *data = (void *)(uintptr_t)env->payload;
  pn_err err = pn_send_buf(to, env->type, data, env->len, delivery_free, d);
  if (err != PN_OK) {
    delivery_free(data, d);
  }
  return err;
}

/* One envelope of a Batch; false when it broke the protocol. */
static bool deliver_one(pn_node *n, pn__link *l, uint32_t lane,
                        const pn__envelope *env, pn_packet *pkt, target *t) {
  pn__member *from = l->member;
  pn__credit *c = l->credit;
  if (env->type >= PN_MSG_TYPE_RESERVED) {
    return false;
  }
  uint64_t cost = env->len + PN__CREDIT_OVERHEAD;
  if (!pn__credit_received(c, lane, cost)) {
    return false; /* more than its credit */
  }
  atomic_fetch_add(&from->msgs_in, 1);
  if (env->to_incarnation != n->incarnation) {
    atomic_fetch_add(&n->dropped_stale, 1);
    pn__credit_consumed(c, lane, cost);
    return true;
  }
  pn__export *e = target_of(n, t, env->to_actor);
  if (!e) {
    atomic_fetch_add(&n->dropped_no_actor, 1);
    pn__credit_consumed(c, lane, cost);
    return true;
  }
  delivery head = {
      .sender = {.node = env->from_actor ? from->id : 0,
                 .incarnation = env->from_actor ? from->incarnation : 0,
                 .actor = env->from_actor},
      .credit = c,
      .lane = lane,
      .cost = cost};
  pn__credit_hold(c); /* the delivery's, given back however it ends */
  /* Counted before the hand-over: the receiver may look at the counters
   * as soon as it has the message. */
  atomic_fetch_add(&n->delivered, 1);
  atomic_fetch_add_explicit(&e->received, 1, memory_order_relaxed);
  pn_err err = hand_over(n, env, e->actor, &head, pkt);
  if (err == PN_OK) {
    pn__tr(pn__worker_current(n->rt), PN__TR_REMOTE_DELIVER, env->to_actor,
           env->from_actor);
    return true;
  }
  atomic_fetch_sub(&n->delivered, 1);
  atomic_fetch_sub_explicit(&e->received, 1, memory_order_relaxed);
  atomic_fetch_add(&n->dropped_no_actor, 1);
  if (err == PN_ECLOSED) {
    t->id = 0;
    unexport(n, env->to_actor); /* stopped: gone for good */
  }
  return true;
}

bool pn__ref_deliver(pn_node *n, pn__link *l, const pn_peer_event *ev) {
  if (ev->channel > l->credit->lanes) {
    return false; /* the peer's own count: never */
  }
  const uint8_t *cur = ev->data, *end = cur + ev->len;
  pn__envelope env;
  target t = {0};
  bool ok = true;
  while (pn__batch_next(&cur, end, &env, &ok)) {
    if (!deliver_one(n, l, ev->channel, &env, ev->packet, &t)) {
      return false;
    }
  }
  return ok;
}

/* --- values -------------------------------------------------------------- */

bool pn_ref_equal(const pn_ref *a, const pn_ref *b) {
  return a && b && a->node == b->node && a->incarnation == b->incarnation &&
         a->actor == b->actor;
}

uint64_t pn_ref_hash(const pn_ref *r) {
  if (!r) {
    return 0;
  }
  /* splitmix64's finaliser over the three fields, chained */
  uint64_t h = 0x9E3779B97F4A7C15ull;
  const uint64_t v[3] = {r->node, r->incarnation, r->actor};
  for (int i = 0; i < 3; i++) {
    h ^= v[i];
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
  }
  return h;
}

pn_err pn_ref_format(const pn_ref *r, char *buf, size_t cap) {
  if (!r || !buf) {
    return PN_EINVAL;
  }
  int w = snprintf(
      buf, cap, "%016llx.%016llx.%llu", (unsigned long long)r->node,
      (unsigned long long)r->incarnation, (unsigned long long)r->actor);
  return w < 0 || (size_t)w >= cap ? PN_ERANGE : PN_OK;
}
