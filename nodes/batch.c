/* A lane's envelopes in Batches (credit.h, "batches").
 *
 * Why: one PeerNet message per envelope cost the transport a message's
 * work (a queued message, its frame, its acknowledgement, an event and a
 * hop through the node actor at the receiver) for every 64 bytes of a
 * flood. A run's sends to one lane now share it.
 */
#include <stdlib.h>

#include "actors/host.h"
#include "actors/packet.h"
#include "actors/peer.h"
#include "actors/wire.h"
#include "nodes/credit.h"
#include "runtime/actor.h"
#include "runtime/worker.h"

/* The most a Batch of several envelopes holds: what one datagram's frame
 * carries whole (larger, it would leave in fragments). */
static uint32_t batch_max(const pn__credit *c) {
  size_t budget =
      c->peer->host->mtu - PN__DATA_OVERHEAD - PN__PACKET_FIELDS_MAX;
  return (uint32_t)pn__frag_payload_max(budget);
}

/* Hands the lane's open Batch to the link, under its lock. Refused
 * (PN_EAGAIN: the link is full) it stays open, whole, and leaves on the
 * link's PN_MSG_PEER_WRITABLE or at the next send; on any other error (the
 * link is gone, or memory) it is dropped, its envelopes counted unsent
 * but `mine` of them, whose sender gets the error. */
static pn_err flush_locked(pn__credit *c, pn__lane_credit *l, uint32_t mine) {
  if (!l->batch) {
    return PN_OK;
  }
  l->batch->len = l->batch_used;
  pn_err err = pn_channel_send_packet(pn_peer_channel(c->peer, l->index + 1),
                                      l->batch, NULL);
  if (err == PN_OK) {
    /* Off the peer's worker a send waits in this worker's outbox until
     * the run ends, and another worker's could overtake it: a Batch mixes
     * senders, so it must reach the channel before the lock goes, in the
     * order the lock gave. */
    pn__worker *w = pn__worker_current(c->rt);
    if (w && w->outbox_used) {
      pn__outbox_flush(w);
    }
  }
  if (err == PN_EAGAIN) {
    l->batch->len = l->batch_cap;
    return err;
  }
  if (err != PN_OK) {
    atomic_fetch_add_explicit(&c->unsent, l->batch_count - mine,
                              memory_order_relaxed);
  }
  pn_packet_release(l->batch);
  l->batch = NULL;
  l->batch_used = l->batch_count = 0;
  return err;
}

/* A run's end (pn__worker_defer): the Batch its sends left open. */
static void flush_deferred(void *ctx) {
  pn__lane_credit *l = ctx;
  pn__credit *c = l->owner;
  pthread_mutex_lock(&l->batch_lock);
  l->batch_queued = false;
  (void)flush_locked(c, l, 0); /* refused: the link's WRITABLE sends it */
  pthread_mutex_unlock(&l->batch_lock);
  pn__credit_release(c); /* the queue's */
}

/* Writes e into the open Batch, opening one (after handing over a full
 * one) when it does not fit. */
static pn_err write_locked(pn__credit *c, pn__lane_credit *l,
                           const pn__envelope *e, size_t need) {
  if (l->batch && l->batch_used + need > l->batch_cap) {
    pn_err err = flush_locked(c, l, 0);
    if (err == PN_EAGAIN) {
      return err;
    }
  }
  if (!l->batch) {
    size_t cap = batch_max(c);
    bool big = need > cap;
    l->batch = pn__packet_new(big ? NULL : c->rt, big ? need : cap);
    if (!l->batch) {
      return PN_ENOMEM;
    }
    l->batch_cap = l->batch->len;
    l->batch_used = 0;
  }
  l->batch_used = (uint32_t)(pn__batch_put(l->batch->data + l->batch_used, e) -
                             l->batch->data);
  return PN_OK;
}

pn_err pn__batch_add(pn__credit *c, uint32_t lane, const pn__envelope *e,
                     bool actor) {
  pn__lane_credit *l = &c->lane[lane - 1];
  size_t need = pn__batch_entry_size(e);
  pthread_mutex_lock(&l->batch_lock);
  pn_err err = write_locked(c, l, e, need);
  if (err == PN_OK) {
    /* At once when no other envelope fits (the smallest is 2 bytes). */
    bool now = !actor || l->batch_used + 2 > l->batch_cap;
    if (!now && !l->batch_queued) {
      pn__credit_hold(c); /* the queue's */
      l->batch_queued =
          pn__worker_defer(pn__worker_current(c->rt), flush_deferred, l);
      if (!l->batch_queued) {
        pn__credit_release(c);
        now = true;
      }
    }
    if (now) {
      uint32_t before = l->batch_used - (uint32_t)need;
      err = flush_locked(c, l, 1);
      if (err == PN_EAGAIN) {
        l->batch_used = before; /* refused: e is not kept */
        l->batch_count--;
        if (!before && l->batch_cap > batch_max(c)) {
          pn_packet_release(l->batch); /* e's own, too large to reuse */
          l->batch = NULL;
        }
      }
    }
  }
  pthread_mutex_unlock(&l->batch_lock);
  return err == PN_ECLOSED ? PN_ENOENT : err; /* the link is gone */
}

void pn__batch_flush_all(pn__credit *c) {
  for (uint32_t i = 0; i < c->lanes; i++) {
    pn__lane_credit *l = &c->lane[i];
    pthread_mutex_lock(&l->batch_lock);
    (void)flush_locked(c, l, 0);
    pthread_mutex_unlock(&l->batch_lock);
  }
}

uint64_t pn__batch_drop_all(pn__credit *c) {
  for (uint32_t i = 0; i < c->lanes; i++) {
    pn__lane_credit *l = &c->lane[i];
    pthread_mutex_lock(&l->batch_lock);
    if (l->batch) {
      atomic_fetch_add_explicit(&c->unsent, l->batch_count,
                                memory_order_relaxed);
      pn_packet_release(l->batch);
      l->batch = NULL;
      l->batch_used = l->batch_count = 0;
    }
    pthread_mutex_unlock(&l->batch_lock);
  }
  return atomic_exchange(&c->unsent, 0);
}
