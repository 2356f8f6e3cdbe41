/* Events for the application actor that owns a peer: PN_MSG_PEER_*
 * envelopes (net.h) built on the peer's worker and sent to the owner. */
#ifndef PN_ACTORS_EVENT_H
#define PN_ACTORS_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "peernet/net.h"

/* The inline payload of an event envelope (pn__envelope_new), whose free
 * function gives back its reference on ev.packet. Events borrow ev.peer:
 * only the peer's last event, PN_MSG_PEER_DISCONNECTED (reserved when the
 * peer is created, so it is never missing), holds a reference on it. As
 * every event of a peer goes from the peer's worker to its owner's mailbox
 * in order, the peer outlives all of them. */
typedef struct pn__event {
  uint32_t type;
  bool holds_peer;
  pn_peer_event ev;
} pn__event;

/* An event envelope of type PN_MSG_PEER_* about p (borrowing p), *ev_out
 * its event to fill in; a packet stored in (*ev_out)->ev.packet is
 * released with it. NULL when out of memory. Peer's worker. */
pn_msg *pn__event_new(uint32_t type, pn_peer *p, pn__event **ev_out);

/* Delivers the envelope to actor `to` (dropped if `to` stopped); the
 * envelope is gone either way. Any thread. */
void pn__event_send(pn_actor *to, pn_msg *m);

/* Frees an event envelope that was never sent. Peer's worker. */
void pn__event_drop(pn_peer *p, pn_msg *m);

#endif
