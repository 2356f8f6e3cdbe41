/* Flow control of a link's lanes (credit.h). */
#include "nodes/credit.h"

#include <stdlib.h>
#include <string.h>

#include "nodes/node.h"
#include "peernet_node.pb-c.h"
#include "runtime/alloc.h"

pn__credit *pn__credit_new(pn_actor *node_actor, struct pn__link *link,
                           pn_peer *peer, uint32_t lanes, uint64_t window) {
  /* A multiple of 64 bytes, as aligned_alloc wants: the lanes are. */
  size_t size = sizeof(pn__credit) + lanes * sizeof(pn__lane_credit);
  pn__credit *c = pn__aligned_alloc(64, (size + 63) & ~(size_t)63);
  if (!c) {
    return NULL;
  }
  memset(c, 0, size);
  atomic_init(&c->refs, 1);
  pn_actor_hold(node_actor);
  c->node_actor = node_actor;
  c->link = link;
  c->window = window;
  c->peer_window = UINT64_MAX;
  c->lanes = lanes;
  c->rt = pn_actor_runtime(node_actor);
  if (peer) { /* none in tests/unit/test_credit.c */
    pn_peer_hold(peer);
  }
  c->peer = peer;
  for (uint32_t i = 0; i < lanes; i++) {
    pthread_mutex_init(&c->lane[i].batch_lock, NULL);
    c->lane[i].owner = c;
    c->lane[i].index = i;
  }
  pn__gate_init(&c->gate);
  return c;
}

void pn__credit_hold(pn__credit *c) {
  atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void pn__credit_release(pn__credit *c) {
  /* acq_rel: the last release sees every other holder's writes. */
  if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
    pn__gate_destroy(&c->gate);
    for (uint32_t i = 0; i < c->lanes; i++) {
      pn_packet_release(c->lane[i].batch); /* refused, never sent */
      pthread_mutex_destroy(&c->lane[i].batch_lock);
    }
    if (c->peer) {
      pn_peer_release(c->peer);
    }
    pn_actor_release(c->node_actor);
    free(c);
  }
}

void pn__credit_start(pn__credit *c, uint64_t peer_window) {
  /* Sent against at most this node's own window, whatever the other end
   * grants: the host's max_queued is sized from it. */
  uint64_t w = peer_window < c->window ? peer_window : c->window;
  c->peer_window = w;
  c->peer_excess = peer_window - w;
  for (uint32_t i = 0; i < c->lanes; i++) {
    atomic_store(&c->lane[i].limit, w);
  }
}

/* --- sending ------------------------------------------------------------- */

pn_err pn__credit_take(pn__credit *c, uint32_t lane, uint64_t cost, bool actor,
                       bool *mute) {
  pn__lane_credit *l = &c->lane[lane - 1];
  *mute = false;
  if (c->peer_window == UINT64_MAX) {
    atomic_fetch_add_explicit(&l->sent, cost, memory_order_relaxed);
    return PN_OK;
  }
  uint64_t sent = atomic_load_explicit(&l->sent, memory_order_relaxed);
  for (;;) {
    /* seq_cst: pairs with the store in pn__credit_heard() (see mute). */
    uint64_t limit = atomic_load(&l->limit);
    /* limit - window is what the other end had consumed when it granted
     * it: within a quantum of `sent`, little of ours is left there, and a
     * message of any size may go (the other end grants again once it has
     * consumed a quantum and everything that came). */
    bool room =
        sent + cost <= limit ||
        sent + c->peer_window <= limit + PN__CREDIT_QUANTUM(c->peer_window);
    bool slack = actor && sent + cost <= limit + c->peer_window;
    if (!room && !slack) {
      return PN_EAGAIN;
    }
    if (atomic_compare_exchange_weak_explicit(&l->sent, &sent, sent + cost,
                                              memory_order_relaxed,
                                              memory_order_relaxed)) {
      *mute = !room;
      return PN_OK;
    }
  }
}

void pn__credit_untake(pn__credit *c, uint32_t lane, uint64_t cost) {
  atomic_fetch_sub_explicit(&c->lane[lane - 1].sent, cost,
                            memory_order_relaxed);
}

bool pn__credit_mute(pn__credit *c, uint32_t lane) {
  if (!pn__gate_mute(&c->gate)) {
    return false;
  }
  /* A grant that came since our look found nobody to release: look
   * again (seq_cst, after the gate's lock: the grant stores the limit
   * before it opens the gate). */
  pn__lane_credit *l = &c->lane[lane - 1];
  if (atomic_load(&l->sent) <= atomic_load(&l->limit)) {
    pn__gate_open(&c->gate);
  }
  return true;
}

/* --- receiving ----------------------------------------------------------- */

bool pn__credit_received(pn__credit *c, uint32_t lane, uint64_t cost) {
  pn__lane_credit *l = &c->lane[lane - 1];
  uint64_t consumed = atomic_load_explicit(&l->consumed, memory_order_relaxed);
  uint64_t received =
      atomic_load_explicit(&l->received, memory_order_relaxed) + cost;
  if (received > consumed + 2 * c->window + PN__CREDIT_LARGEST) {
    return false;
  }
  atomic_store_explicit(&l->received, received, memory_order_relaxed);
  return true;
}

static void credit_msg_free(void *data, void *ctx) {
  (void)ctx;
  pn__credit_release(data);
}

void pn__credit_consumed(pn__credit *c, uint32_t lane, uint64_t cost) {
  pn__lane_credit *l = &c->lane[lane - 1];
  uint64_t consumed =
      atomic_fetch_add_explicit(&l->consumed, cost, memory_order_relaxed) +
      cost;
  uint64_t granted = atomic_load_explicit(&l->granted, memory_order_relaxed);
  /* A quarter of the window; or a quantum, and everything that arrived
   * (a sender may be waiting with a message larger than what it has
   * left: a quantum out lets one of any size go). Not at every message:
   * a ping-pong would answer each with a Credit. */
  bool due =
      consumed - granted >= c->window / 4 ||
      (consumed - granted >= PN__CREDIT_QUANTUM(c->window) &&
       consumed == atomic_load_explicit(&l->received, memory_order_relaxed));
  if (!due || atomic_exchange(&c->grant_due, true)) {
    return;
  }
  pn__credit_hold(c); /* the message's, given back however it ends */
  if (pn_send_buf(c->node_actor, PN__NODE_CREDIT, c, sizeof *c, credit_msg_free,
                  NULL) != PN_OK) {
    atomic_store(&c->grant_due, false); /* the node is gone */
    pn__credit_release(c);
  }
}

void pn__credit_grant_due(pn__credit *c) {
  /* Cleared first, with an exchange: it reads the flag a consumer set
   * last, so that consumer's addition to `consumed` is seen below; what
   * is consumed after our reads asks again. */
  (void)atomic_exchange(&c->grant_due, false);
  uint64_t consumed[PN_NODE_LANES_MAX], limits[PN_NODE_LANES_MAX];
  bool any = false;
  for (uint32_t i = 0; i < c->lanes; i++) {
    pn__lane_credit *l = &c->lane[i];
    uint64_t granted = atomic_load_explicit(&l->granted, memory_order_relaxed);
    consumed[i] = atomic_load_explicit(&l->consumed, memory_order_relaxed);
    any |= consumed[i] > granted;
    consumed[i] = consumed[i] > granted ? consumed[i] : granted;
    limits[i] = consumed[i] + c->window;
  }
  if (!any) {
    return;
  }
  if (!c->link) { /* gone, and what it owed with it */
    for (uint32_t i = 0; i < c->lanes; i++) {
      atomic_store_explicit(&c->lane[i].granted, consumed[i],
                            memory_order_relaxed);
    }
    return;
  }
  Peernet__Node__V1__Credit cr = PEERNET__NODE__V1__CREDIT__INIT;
  cr.n_limits = c->lanes;
  cr.limits = limits;
  Peernet__Node__V1__Control ctl = PEERNET__NODE__V1__CONTROL__INIT;
  ctl.body_case = PEERNET__NODE__V1__CONTROL__BODY_CREDIT;
  ctl.credit = &cr;
  /* Granted only once sent: a Credit the link refused is sent again (on
   * PN_MSG_PEER_WRITABLE, or the node's next round), never lost. */
  if (pn__link_send_control(c->link, &ctl) == PN_OK) {
    for (uint32_t i = 0; i < c->lanes; i++) {
      atomic_store_explicit(&c->lane[i].granted, consumed[i],
                            memory_order_relaxed);
    }
  }
}

void pn__credit_heard(pn__credit *c, const Peernet__Node__V1__Credit *cr) {
  size_t n = cr->n_limits < c->lanes ? cr->n_limits : c->lanes;
  for (size_t i = 0; i < n; i++) {
    pn__lane_credit *l = &c->lane[i];
    uint64_t limit = cr->limits[i] > c->peer_excess
                         ? cr->limits[i] - c->peer_excess
                         : 0; /* as if its window were ours */
    if (limit > atomic_load_explicit(&l->limit, memory_order_relaxed)) {
      atomic_store(&l->limit, limit); /* seq_cst: see mute */
    }
  }
  pn__gate_open(&c->gate);
}

void pn__credit_link_gone(pn__credit *c) {
  c->link = NULL;
  pn__gate_open(&c->gate);
}
