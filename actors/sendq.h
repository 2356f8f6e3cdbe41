/* A peer's messages not yet fully sent: one FIFO per channel, served
 * round robin one frame at a time, so a message of many fragments on one
 * channel does not hold back the messages of the others (a node's lanes:
 * nodes/link.c). Within a channel the order is the order of sending, as
 * every channel kind needs; between channels there is no order, as the
 * receiver gives none either.
 *
 * Pure: no I/O, no clock; the messages stay the caller's (the queue keeps
 * the pointers, the caller the references). Tested alone
 * (tests/unit/test_sendq.c).
 *
 * Threading: one owner (the peer actor); nothing here is shared.
 */
#ifndef PN_ACTORS_SENDQ_H
#define PN_ACTORS_SENDQ_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/outmsg.h"
#include "peernet/error.h"

typedef struct pn__sendq_chan {
  pn__outmsg *head, *tail;
  uint32_t next; /* the next channel in the ring of those with messages */
  bool active;   /* in that ring */
} pn__sendq_chan;

typedef struct pn__sendq {
  pn__sendq_chan *ch; /* nchannels of them */
  uint32_t nchannels;
  uint32_t current;    /* the ring's channel whose turn it is */
  uint32_t last;       /* the ring's last: current's predecessor */
  uint32_t active;     /* channels in the ring */
  uint32_t other_prev; /* pn__sendq_peek_other's find's predecessor */
  uint64_t messages;   /* queued in all */
} pn__sendq;

/* Sets q up for nchannels channels. Errors: PN_ENOMEM (q is then safe to
 * pass to pn__sendq_fini). Caller's memory. */
pn_err pn__sendq_init(pn__sendq *q, uint32_t nchannels);

/* Frees the channels' array; the messages still queued are the caller's
 * to take out first (pn__sendq_pop_any). Safe on a zeroed or failed q. */
void pn__sendq_fini(pn__sendq *q);

static inline bool pn__sendq_empty(const pn__sendq *q) {
  return q->messages == 0;
}

/* Appends om to its channel's queue (om->channel < nchannels). */
void pn__sendq_push(pn__sendq *q, pn__outmsg *om);

/* Puts om back at the head of its channel's queue (it goes at that
 * channel's next turn). */
void pn__sendq_push_front(pn__sendq *q, pn__outmsg *om);

/* The message whose frame goes next: the head of the channel whose turn
 * it is; NULL when nothing is queued. */
static inline pn__outmsg *pn__sendq_peek(const pn__sendq *q) {
  return q->active ? q->ch[q->current].head : NULL;
}

/* After a frame of pn__sendq_peek()'s message left: the turn passes to
 * the next channel with messages. With done, that message had its last
 * frame sent and leaves its queue. */
void pn__sendq_next(pn__sendq *q, bool done);

/* When the next frame of pn__sendq_peek()'s message does not fit what is
 * left of a datagram: the first message after it in the round whose next
 * frame does (fits(om, ctx)), the turn staying where it is, so the other
 * channels fill the datagram and the turn's frame starts the next one;
 * NULL when none fits. */
pn__outmsg *pn__sendq_peek_other(pn__sendq *q,
                                 bool (*fits)(const pn__outmsg *om, void *ctx),
                                 void *ctx);

/* After a frame of pn__sendq_peek_other()'s message om left (nothing
 * else changed the queue since): with done, om leaves its queue. The turn
 * stays where it was. */
void pn__sendq_next_other(pn__sendq *q, pn__outmsg *om, bool done);

/* Takes out pn__sendq_peek()'s message without a frame sent (held back),
 * the turn staying with its channel's next message. */
pn__outmsg *pn__sendq_take(pn__sendq *q);

/* Takes out any queued message (for dropping them all); NULL when empty. */
pn__outmsg *pn__sendq_pop_any(pn__sendq *q);

#endif
