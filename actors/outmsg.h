/* A channel message on its way out (sender side): created by
 * pn_channel_send() on any thread, then queued, framed, resent and
 * acknowledged on the peer's worker. */
#ifndef PN_ACTORS_OUTMSG_H
#define PN_ACTORS_OUTMSG_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/packet.h"

typedef struct pn__outmsg pn__outmsg;
struct pn__outmsg {
  /* Plain: after pn_channel_send publishes it, only the peer's worker
   * touches it (the mailbox hand-off orders the rest). */
  uint32_t refs;
  bool holds_peer; /* sent through the channel's mailbox, which the peer
                      may not outlive: holds a reference on peer */
  pn_peer *peer;
  pn_packet *pkt;   /* held */
  pn__outmsg *next; /* its channel's send queue (sendq.h) */
  uint64_t msg_id;  /* the application's id */
  uint64_t seq;     /* the channel's wire sequence */
  uint64_t first_sent_ns;
  uint32_t channel;
  uint32_t frag_count; /* 1: sent whole */
  uint32_t next_frag;  /* first-time sends so far */
  uint32_t frags_acked;
  uint64_t *acked; /* bitmap of acknowledged fragments */
  uint8_t kind;
  bool reliable;
  bool resolved; /* acknowledged or reported lost */
  bool unqueued; /* its bytes left the peer's queued_bytes when it was
                    resolved (datagrams declared lost may hold it longer:
                    recovery.h's suspects) */
};

/* pn_channel_send()'s private copy of the bytes lives in the same pool
 * block as its message, right after it (one allocation, not two); such a
 * packet is never shared, and goes with its message. */
static inline pn_packet *pn__outmsg_inline_packet(pn__outmsg *om) {
  return (pn_packet *)(om + 1);
}

/* Drops a reference; at zero the message's bytes leave the peer's
 * queued_bytes (unless they left already) and it is freed. Peer's worker, or
 * any thread for a message no worker saw yet. */
void pn__outmsg_unref(pn__outmsg *om);

/* pn__outmsg_unref as a pn_free_fn (a message's free function). */
void pn__outmsg_unref_fn(void *data, void *ctx);

/* Frees om and its packet without touching the peer's queued bytes: for a
 * message never queued. */
void pn__outmsg_free(pn__outmsg *om);

#endif
