/* A peer's per-channel send queues: see sendq.h.
 *
 * The channels with messages form a circular list (next), current being
 * the one whose turn it is and last its predecessor, so a channel joins at
 * the end of the round and leaves in constant time.
 */
#include "actors/sendq.h"

#include <stdlib.h>

#include "runtime/alloc.h"
#include "runtime/assert.h"

pn_err pn__sendq_init(pn__sendq *q, uint32_t nchannels) {
  *q = (pn__sendq){.nchannels = nchannels};
  q->ch = pn__calloc(nchannels ? nchannels : 1, sizeof *q->ch);
  return q->ch ? PN_OK : PN_ENOMEM;
}

void pn__sendq_fini(pn__sendq *q) {
  free(q->ch);
  q->ch = NULL;
}

/* Joins channel c to the ring, at the end of the round (before current);
 * first, its turn is next. */
static void activate(pn__sendq *q, uint32_t c, bool first) {
  pn__sendq_chan *ch = &q->ch[c];
  ch->active = true;
  if (!q->active++) {
    ch->next = c;
    q->current = q->last = c;
    return;
  }
  ch->next = q->current;
  q->ch[q->last].next = c;
  if (first) {
    q->current = c;
  } else {
    q->last = c;
  }
}

/* Removes current, which has no messages left, from the ring: the turn
 * passes to the next. */
static void deactivate_current(pn__sendq *q) {
  pn__sendq_chan *ch = &q->ch[q->current];
  ch->active = false;
  if (!--q->active) {
    return;
  }
  q->ch[q->last].next = ch->next;
  q->current = ch->next;
}

void pn__sendq_push(pn__sendq *q, pn__outmsg *om) {
  PN_ASSERT(om->channel < q->nchannels);
  pn__sendq_chan *ch = &q->ch[om->channel];
  om->next = NULL;
  if (ch->tail) {
    ch->tail->next = om;
  } else {
    ch->head = om;
  }
  ch->tail = om;
  q->messages++;
  if (!ch->active) {
    activate(q, om->channel, false);
  }
}

void pn__sendq_push_front(pn__sendq *q, pn__outmsg *om) {
  PN_ASSERT(om->channel < q->nchannels);
  pn__sendq_chan *ch = &q->ch[om->channel];
  om->next = ch->head;
  ch->head = om;
  if (!ch->tail) {
    ch->tail = om;
  }
  q->messages++;
  if (!ch->active) {
    activate(q, om->channel, true);
  }
}

/* Takes the head of current's queue out; current leaves the ring when
 * that was its last. */
static pn__outmsg *pop_current(pn__sendq *q) {
  pn__sendq_chan *ch = &q->ch[q->current];
  pn__outmsg *om = ch->head;
  ch->head = om->next;
  if (!ch->head) {
    ch->tail = NULL;
  }
  om->next = NULL;
  q->messages--;
  if (!ch->head) {
    deactivate_current(q);
  }
  return om;
}

void pn__sendq_next(pn__sendq *q, bool done) {
  PN_ASSERT(q->active);
  if (done) {
    uint32_t c = q->current;
    (void)pop_current(q);
    if (!q->ch[c].active) {
      return; /* the turn passed with it */
    }
  }
  q->last = q->current;
  q->current = q->ch[q->current].next;
}

pn__outmsg *pn__sendq_peek_other(pn__sendq *q,
                                 bool (*fits)(const pn__outmsg *om, void *ctx),
                                 void *ctx) {
  uint32_t prev = q->current;
  for (uint32_t k = 1; k < q->active; k++) {
    uint32_t c = q->ch[prev].next;
    if (fits(q->ch[c].head, ctx)) {
      q->other_prev = prev;
      return q->ch[c].head;
    }
    prev = c;
  }
  return NULL;
}

void pn__sendq_next_other(pn__sendq *q, pn__outmsg *om, bool done) {
  uint32_t c = om->channel;
  pn__sendq_chan *ch = &q->ch[c];
  PN_ASSERT(q->ch[q->other_prev].next == c && ch->head == om &&
            c != q->current);
  if (!done) {
    return;
  }
  ch->head = om->next;
  om->next = NULL;
  q->messages--;
  if (ch->head) {
    return;
  }
  ch->tail = NULL;
  ch->active = false;
  q->active--;
  q->ch[q->other_prev].next = ch->next;
  if (q->last == c) {
    q->last = q->other_prev;
  }
}

pn__outmsg *pn__sendq_take(pn__sendq *q) {
  PN_ASSERT(q->active);
  return pop_current(q);
}

pn__outmsg *pn__sendq_pop_any(pn__sendq *q) {
  return q->active ? pop_current(q) : NULL;
}
