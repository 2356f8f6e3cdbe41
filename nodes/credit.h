/* Flow control of a link's lanes (include/peernet/node.h, "Flow
 * control"): credit in the manner of a QUIC stream's MAX_STREAM_DATA, one
 * window per lane, so a slow receiver stalls only the lanes that reach it.
 *
 * The unit is an envelope's cost, its payload's length plus
 * PN__CREDIT_OVERHEAD (what holding it costs beside the bytes). Each end
 * tells the other its lane window W in its Hello. The receiver grants
 * each lane a limit, consumed + W, where `consumed` is the cost of the
 * envelopes its actors are done with (handled, or dropped); it grants
 * again (a Credit on lane 0) whenever a lane has consumed W/4 more since
 * the last grant, or a sixteenth (the quantum) and everything that came.
 * The sender starts an envelope only while the lane's `sent` plus its
 * cost stays within the limit heard, with two exceptions: a lane with
 * less than a quantum out (as far as the last grant says) takes one of
 * any size, and an actor, which local backpressure never refuses either, may
 * go one more window past it and is muted (parked after its run, as a
 * full mailbox mutes it) until a grant comes. Application threads get
 * PN_EAGAIN where an actor would be muted.
 *
 * So a receiver never holds more than 2 W + PN__CREDIT_LARGEST per lane
 * for a sender that keeps to this; one that sends more breaks the
 * protocol and loses its link. And senders never queue more than that.
 *
 * Threading: `sent` is taken by any sending thread (under the node's read
 * lock, so the link outlives the call), `consumed` added by whichever
 * thread frees a delivery; the limits and `received` are the node
 * actor's. A pn__credit is reference counted: its link holds it, and so
 * does every delivery in a mailbox, which may outlive the link.
 */
#ifndef PN_NODES_CREDIT_H
#define PN_NODES_CREDIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "nodes/envelope.h"
#include "peernet/net.h"
#include "peernet/node.h"
#include "runtime/actor.h"

#define PN__CREDIT_OVERHEAD 64u
/* Below this much of a window out, a lane takes a message of any size. */
#define PN__CREDIT_QUANTUM(window) ((window) / 16)
#define PN__CREDIT_WINDOW_DEFAULT (1u << 20)
#define PN__CREDIT_WINDOW_MIN (64u << 10)
/* The most one envelope costs: the largest payload and its overhead. */
#define PN__CREDIT_LARGEST ((4ull << 20) + PN__CREDIT_OVERHEAD)

typedef struct pn__lane_credit {
  /* Sending (this node's senders to the other end). */
  _Alignas(64) _Atomic uint64_t sent; /* cost started */
  _Atomic uint64_t limit;             /* the highest grant heard */
  /* Receiving (the other end's envelopes to this node's actors). */
  _Alignas(64) _Atomic uint64_t consumed; /* cost the receivers are done with */
  _Atomic uint64_t granted;  /* `consumed` when last granted (node actor) */
  _Atomic uint64_t received; /* cost that arrived (node actor) */
  /* The lane's open Batch (batch.c): envelopes accepted, not yet handed
   * to the link. */
  _Alignas(64) pthread_mutex_t batch_lock;
  pn_packet *batch;     /* NULL: none open */
  uint32_t batch_used;  /* bytes of it written */
  uint32_t batch_cap;   /* bytes it has room for */
  uint32_t batch_count; /* envelopes in it */
  bool batch_queued;    /* a run's end will flush it (a credit held) */
  struct pn__credit *owner;
  uint32_t index; /* its lane: index + 1 */
} pn__lane_credit;

typedef struct pn__credit {
  _Atomic uint32_t refs;
  pn_runtime *rt;
  pn_peer *peer;           /* the link's, held (batches are sent on it) */
  _Atomic bool grant_due;  /* a PN__NODE_CREDIT is on its way to the actor */
  pn_actor *node_actor;    /* held: told when a grant is due */
  struct pn__link *link;   /* NULL once the link is gone (node actor) */
  uint64_t window;         /* this node's window per lane */
  uint64_t peer_window;    /* what this node sends against: the other
                              end's window, at most this one's */
  uint64_t peer_excess;    /* the other end's window beyond that */
  pn__gate gate;           /* actors muted on this link's lanes */
  _Atomic uint64_t unsent; /* envelopes dropped before they left (batch.c) */
  uint32_t lanes;
  pn__lane_credit lane[]; /* index 0: lane 1 */
} pn__credit;

/* A link's credit (refs 1), or NULL when out of memory. Node actor. */
pn__credit *pn__credit_new(pn_actor *node_actor, struct pn__link *link,
                           pn_peer *peer, uint32_t lanes, uint64_t window);
void pn__credit_hold(pn__credit *c);
void pn__credit_release(pn__credit *c); /* any thread */

/* The other end's Hello: its window (this node sends against at most its
 * own). Node actor, before anything is sent on the link's lanes. */
void pn__credit_start(pn__credit *c, uint64_t peer_window);

/* Sending `cost` on lane (1-based), from any thread under the node's read
 * lock: PN_OK (taken; *mute set when the caller, an actor, must now be
 * muted: pn__credit_mute), PN_EAGAIN (refused, nothing taken).
 * pn__credit_untake gives back a cost taken for a send that then failed. */
pn_err pn__credit_take(pn__credit *c, uint32_t lane, uint64_t cost, bool actor,
                       bool *mute);
void pn__credit_untake(pn__credit *c, uint32_t lane, uint64_t cost);
/* Mutes the running actor on the link until the lane has room again (at
 * once released if it has by now); false when it could not be muted. */
bool pn__credit_mute(pn__credit *c, uint32_t lane);

/* An envelope of `cost` arrived on lane: false when it is more than the
 * sender may have sent (the link must go). Node actor. */
bool pn__credit_received(pn__credit *c, uint32_t lane, uint64_t cost);
/* The receiver is done with an envelope of `cost` (any thread): a grant
 * is asked of the node actor once one is due. */
void pn__credit_consumed(pn__credit *c, uint32_t lane, uint64_t cost);

/* Node actor: PN__NODE_CREDIT (its payload: the pn__credit, held for it),
 * the node's periodic round and PN_MSG_PEER_WRITABLE grant every lane
 * that has consumed anything since its last grant; a Credit heard raises
 * the limits and releases the muted senders; a link gone releases them
 * too. */
struct Peernet__Node__V1__Credit;
void pn__credit_grant_due(pn__credit *c);
void pn__credit_heard(pn__credit *c,
                      const struct Peernet__Node__V1__Credit *cr);
void pn__credit_link_gone(pn__credit *c);

/* --- batches (batch.c) ----------------------------------------------------
 *
 * A lane's envelopes leave in Batches: an actor's sends of one run are
 * written into the lane's open Batch and handed to the link when the run
 * ends (pn__worker_defer), or once the next would not fit in one
 * datagram's frame (the link's mtu); a thread's leave at once. One mutex per
 * lane keeps the order in which senders wrote. A Batch the link refuses (full:
 * its max_queued) stays open and leaves at the next send or when the link says
 * it is writable. */

/* Writes e into lane's Batch (under the node's read lock, after the
 * credit was taken): PN_OK, or the error of a hand-over that had to
 * happen first or at once (nothing of e is kept then). */
pn_err pn__batch_add(pn__credit *c, uint32_t lane, const pn__envelope *e,
                     bool actor);
/* Hands every lane's open Batch to the link (node actor: writable, or
 * leaving). */
void pn__batch_flush_all(pn__credit *c);
/* The link is gone: drops every open Batch and returns the envelopes
 * dropped unsent since the last call (node actor). */
uint64_t pn__batch_drop_all(pn__credit *c);

#endif
