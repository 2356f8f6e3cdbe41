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

typedef Peernet__Node__V1__Envelope Envelope;

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

pn_err pn_msg_sender(const pn_msg *msg, pn_ref *out) {
  if (!msg || !out) {
    return PN_EINVAL;
  }
  pn_msg *m = (pn_msg *)msg; /* read only */
  if (m->kind != PN__MSG_BUF || pn__msg_buf_of(m)->fn != delivery_free) {
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

/* As pn__ref_exported, for a message from another node: counted as the
 * actor's (remote_received) when it is there. */
static pn_actor *exported_for_remote(pn_node *n, uint64_t id) {
  pthread_mutex_lock(&n->exports_lock);
  pn__export *e = export_find(n, id);
  pn_actor *a = NULL;
  if (e) {
    a = e->actor;
    pn_actor_hold(a);
    atomic_fetch_add_explicit(&e->received, 1, memory_order_relaxed);
  }
  pthread_mutex_unlock(&n->exports_lock);
  return a;
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

/* Hands the payload (owned by d) to the exported actor `to`; false when
 * there is none (counted). */
static bool deliver(pn_node *n, uint64_t to, uint32_t type, void *data,
                    size_t size, delivery *d) {
  pn_actor *a = d->pkt ? exported_for_remote(n, to) : pn__ref_exported(n, to);
  pn_err err =
      a ? pn_send_buf(a, type, size ? data : NULL, size, delivery_free, d)
        : PN_ECLOSED;
  if (err == PN_ECLOSED && a) {
    unexport(n, to); /* stopped: gone for good */
  }
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
  Envelope env = PEERNET__NODE__V1__ENVELOPE__INIT;
  env.to_actor = to->actor;
  env.to_incarnation = to->incarnation;
  env.from_actor = from;
  env.type = type;
  env.payload.len = size;
  env.payload.data = (uint8_t *)(uintptr_t)data;
  pn_packet *pkt = NULL;
  pn_err err = pn_packet_from_protobuf(&env.base, &pkt);
  if (err != PN_OK) {
    return err;
  }
  /* The read lock keeps the member and its link while the send, which
   * never blocks, queues the packet. */
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
      err = pn_channel_send_packet(pn_peer_channel(m->link->peer, lane), pkt,
                                   NULL);
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
  pn_packet_release(pkt);
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
    /* The record stays while self runs: only a stopped actor's goes. */
    sender = pn__ref_export(node, self);
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
bool pn__ref_deliver(pn_node *n, pn__link *l, const pn_peer_event *ev) {
  pn__member *from = l->member;
  pn__credit *c = l->credit;
  pn__envelope env;
  if (!pn__envelope_read(ev->data, ev->len, &env) ||
      env.type >= PN_MSG_TYPE_RESERVED ||
      ev->channel > c->lanes /* the peer's count: never */) {
    return false;
  }
  uint64_t cost = env.len + PN__CREDIT_OVERHEAD;
  if (!pn__credit_received(c, ev->channel, cost)) {
    return false; /* more than its credit */
  }
  atomic_fetch_add(&from->msgs_in, 1);
  if (env.to_incarnation != n->incarnation) {
    atomic_fetch_add(&n->dropped_stale, 1);
    pn__credit_consumed(c, ev->channel, cost);
    return true;
  }
  delivery *d = malloc(sizeof *d);
  if (!d) {
    atomic_fetch_add(&n->dropped_no_actor, 1);
    pn__credit_consumed(c, ev->channel, cost);
    return true;
  }
  pn__credit_hold(c);
  d->credit = c;
  d->lane = ev->channel;
  d->cost = cost;
  d->sender = (pn_ref){.node = env.from_actor ? from->id : 0,
                       .incarnation = env.from_actor ? from->incarnation : 0,
                       .actor = env.from_actor};
  d->pkt = ev->packet;
  pn_packet_hold(d->pkt);
  /* Counted before the hand-over: the receiver may look at the counters
   * as soon as it has the message. */
  atomic_fetch_add(&n->delivered, 1);
  if (deliver(n, env.to_actor, env.type, (void *)(uintptr_t)env.payload,
              env.len, d)) {
    pn__tr(pn__worker_current(n->rt), PN__TR_REMOTE_DELIVER, env.to_actor,
           env.from_actor);
  } else {
    atomic_fetch_sub(&n->delivered, 1);
  }
  return true;
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
