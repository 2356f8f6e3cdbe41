/* The channel actor: one typed stream of a peer.
 *
 * Sending: the channel gives each message its next wire sequence and
 * queues it on its peer (pn__peer_enqueue), which fragments, sends and
 * resends it. From threads other than the host's worker the message comes
 * through the actor's mailbox (PN__C_SEND); an actor on that worker queues
 * it directly when no PN__C_SEND is pending (the order stays the same).
 *
 * Receiving: the peer calls pn__channel_receive() with each complete
 * message once (duplicates of reliable kinds are already gone), on its own
 * thread; it applies the kind and sends the owner PN_MSG_PEER_PACKET:
 *   UNRELIABLE, RELIABLE: only messages newer than the newest delivered;
 *   ORDERED: in sequence, holding early ones until the gap is filled;
 *   UNSEQUENCED, RELIABLE_UNORDERED: as they come.
 *
 * PN__C_CLOSE (the peer closed): held messages are dropped, the peer is
 * told (PN__P_CHANNEL_DONE) and the actor stops. Deliveries were pushed
 * before that, so the owner gets them before the peer's
 * PN_MSG_PEER_DISCONNECTED.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/channel.h"
#include "actors/event.h"
#include "actors/host.h"
#include "actors/msg_ids.h"
#include "actors/outmsg.h"
#include "actors/peer.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/worker.h"

/* --- duplicate window ---------------------------------------------------- */

bool pn__rxwin_grow(pn__rxwin *w, uint64_t need) {
  uint64_t n = w->nbits ? w->nbits : 64;
  while (n < need) {
    n *= 2;
  }
  uint64_t *bits = pn__calloc(n / 64, sizeof *bits);
  if (!bits) {
    return false;
  }
  for (uint64_t s = w->base; s < w->base + w->nbits; s++) {
    uint64_t b = s & (w->nbits - 1);
    if ((w->bits[b / 64] >> (b % 64)) & 1u) {
      uint64_t nb = s & (n - 1);
      bits[nb / 64] |= 1ull << (nb % 64);
    }
  }
  free(w->bits);
  w->bits = bits;
  w->nbits = n;
  return true;
}

bool pn__rxwin_mark(pn__rxwin *w, uint64_t seq) {
  if (!pn__rxwin_reserve(w, seq)) {
    return false;
  }
  if (seq < w->base) {
    return true;
  }
  uint64_t b = seq & (w->nbits - 1);
  w->bits[b / 64] |= 1ull << (b % 64);
  for (;;) {
    b = w->base & (w->nbits - 1);
    if (!((w->bits[b / 64] >> (b % 64)) & 1u)) {
      break;
    }
    w->bits[b / 64] &= ~(1ull << (b % 64));
    w->base++;
  }
  return true;
}

void pn__rxwin_free(pn__rxwin *w) {
  free(w->bits);
  w->bits = NULL;
  w->nbits = 0;
}

/* --- receiving ----------------------------------------------------------- */

static void drop_held(pn_channel *ch) {
  for (uint64_t i = 0; i < ch->held_cap; i++) {
    if (ch->held[i]) {
      pn__event_drop(ch->peer, ch->held[i]);
    }
  }
  free(ch->held);
  ch->held = NULL;
  ch->held_cap = ch->held_count = 0;
}

static uint64_t held_seq(const pn_msg *m) {
  return ((const pn__event *)pn_msg_data(m))->ev.msg_id;
}

bool pn__channel_hold_grow(pn_channel *ch, uint64_t ahead) {
  if (ahead > ch->held_cap) {
    uint64_t n = ch->held_cap ? ch->held_cap : 16;
    while (n < ahead) {
      n *= 2;
    }
    pn_msg **h = pn__calloc(n, sizeof *h);
    if (!h) {
      return false;
    }
    for (uint64_t i = 0; i < ch->held_cap; i++) {
      pn_msg *x = ch->held[i];
      if (x) {
        h[held_seq(x) & (n - 1)] = x;
      }
    }
    free(ch->held);
    ch->held = h;
    ch->held_cap = n;
  }
  return true;
}

static void hold(pn_channel *ch, pn_msg *m, uint64_t seq) {
  PN_ASSERT(seq - ch->next_expected < ch->held_cap); /* reserved */
  pn_msg **slot = &ch->held[seq & (ch->held_cap - 1)];
  PN_ASSERT(!*slot); /* the peer removes duplicates before delivery */
  *slot = m;
  ch->held_count++;
}

/* Whether the kind lets message seq through now (ORDERED: in sequence). */
static bool admit(pn_channel *ch, uint64_t seq) {
  switch (ch->kind) {
  case PN_CHANNEL_UNRELIABLE:
  case PN_CHANNEL_RELIABLE:
    if (seq > ch->newest) {
      ch->newest = seq;
      return true;
    }
    pn__stat_add(&ch->peer->st_stale, 1);
    return false;
  case PN_CHANNEL_ORDERED:
    if (seq < ch->next_expected) {
      pn__stat_add(&ch->peer->st_dups, 1);
    }
    return seq == ch->next_expected;
  default:
    return true;
  }
}

void pn__channel_receive(pn_channel *ch, uint64_t seq, pn_packet *pkt,
                         pn_msg *m, pn__event *e) {
  pn_peer *p = ch->peer;
  if (!admit(ch, seq) &&
      (ch->kind != PN_CHANNEL_ORDERED || seq < ch->next_expected)) {
    pn_packet_release(pkt);
    pn__event_drop(p, m);
    return;
  }
  e->ev.channel = ch->index;
  e->ev.kind = ch->kind;
  e->ev.ch = ch;
  e->ev.msg_id = seq;
  e->ev.packet = pkt;
  e->ev.data = pkt->data;
  e->ev.len = pkt->len;
  pn__stat_add(&p->st_msgs_in, 1);
  if (ch->kind != PN_CHANNEL_ORDERED) {
    pn__event_send(p->owner, m);
    return;
  }
  /* The receive buffer (flow.h): a message held counts until it goes to
   * the owner, when its cost goes back to the sender. */
  if (seq > ch->next_expected) {
    hold(ch, m, seq);
    pn__flow_hold(&p->flow, pkt->len);
    return;
  }
  pn__flow_release(&p->flow, pkt->len); /* before the owner has pkt */
  pn__event_send(p->owner, m);
  ch->next_expected++;
  while (ch->held_count) {
    pn_msg **slot = &ch->held[ch->next_expected & (ch->held_cap - 1)];
    if (!*slot || held_seq(*slot) != ch->next_expected) {
      break;
    }
    pn_msg *x = *slot;
    *slot = NULL;
    ch->held_count--;
    size_t len = ((const pn__event *)pn_msg_data(x))->ev.len;
    pn__flow_unhold(&p->flow, len);
    pn__flow_release(&p->flow, len);
    pn__event_send(p->owner, x);
    ch->next_expected++;
  }
}

/* --- sending ------------------------------------------------------------- */

/* Gives om the channel's next wire sequence and queues it on the peer.
 * Runs on the peer's worker: from the channel actor, or straight from
 * pn_channel_send_packet() when the caller runs there. */
static void enqueue(pn_channel *ch, pn__outmsg *om) {
  pn_peer *p = ch->peer;
  if (p->gone || atomic_load_explicit(&p->state, memory_order_relaxed) >=
                     PN_PEER_DISCONNECTING) {
    return;
  }
  om->seq = ch->next_seq++;
  pn__peer_enqueue(p, om);
}

static void channel_handler(pn_actor *self, void *state, const pn_msg *msg) {
  pn_channel *ch = state;
  switch (pn_msg_type(msg)) {
  case PN__C_SEND:
    /* relaxed: this decrement and the load that lets send_om() skip the
     * mailbox both run on the host's home worker: the channel actor is
     * homed there and only runs there (run_one() in runtime/worker.c sends
     * a stolen homed actor back), and the skip is taken only there. One
     * thread's program order puts this decrement and the enqueue below
     * before any later skip, so a release here would pair with nothing
     * (and, coming before the enqueue, could not publish it anyway).
     * Increments from other threads order nothing: their messages come
     * through the mailbox. */
    atomic_fetch_sub_explicit(&ch->in_mailbox, 1, memory_order_relaxed);
    enqueue(ch, (pn__outmsg *)pn_msg_data(msg));
    break;
  case PN__C_CLOSE:
    drop_held(ch);
    (void)pn__send_parts(ch->peer->actor, PN__P_CHANNEL_DONE, NULL, 0, NULL, 0);
    (void)pn_actor_stop(self);
    break;
  case PN_MSG_STOPPED:
    drop_held(ch);
    pn_peer_release(ch->peer); /* the actor's reference */
    break;
  default:
    break;
  }
}

pn_err pn__channel_spawn(pn_peer *p, pn_channel *ch, int32_t home) {
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "pn.channel";
  cfg.handler = channel_handler;
  cfg.state = ch;
  cfg.home_worker = home;
  pn_peer_hold(p);
  pn_err err = pn_spawn(p->host->rt, &cfg, &ch->actor);
  if (err != PN_OK) {
    ch->actor = NULL;
    pn_peer_release(p);
  }
  return err;
}

/* --- API ----------------------------------------------------------------- */

/* Queues om, a message whose only field set is its packet (held by om);
 * on errors om and the packet are given back. */
static pn_err send_om(pn_channel *ch, pn__outmsg *om, uint64_t *msg_id_out) {
  pn_peer *p = ch->peer;
  pn_packet *pkt = om->pkt;
  pn_err err = PN_OK;
  if (pkt->len > p->host->max_message) {
    err = PN_EMSGSIZE;
  } else if (atomic_load_explicit(&p->sends_closed, memory_order_relaxed)) {
    /* relaxed: a send ordered after the disconnect request (same thread,
     * or synchronised with it) sees the flag; a concurrent one may go
     * either way. */
    err = PN_ECLOSED;
  }
  if (err != PN_OK) {
    om->peer = p; /* whose runtime's pools it goes back to */
    om->holds_peer = false;
    om->acked = NULL;
    pn__outmsg_free(om);
    return err;
  }
  /* A compound literal, not memset + stores: a small memset is a
   * `rep stos`, slow to start on every message. */
  *om = (pn__outmsg){
      .refs = 1,
      .peer = p,
      .pkt = pkt,
      .channel = ch->index,
      .kind = (uint8_t)ch->kind,
      .reliable = ch->kind == PN_CHANNEL_RELIABLE ||
                  ch->kind == PN_CHANNEL_ORDERED ||
                  ch->kind == PN_CHANNEL_RELIABLE_UNORDERED,
      .frag_count = 1,
  };
  /* A message is taken while less than max_queued is queued, whatever its
   * own size: a message larger than the limit goes once the queue has
   * room, and PN_MSG_PEER_WRITABLE (at half the limit) always means the
   * next send is taken. */
  uint64_t before = atomic_fetch_add_explicit(&p->queued_bytes, pkt->len,
                                              memory_order_relaxed);
  if (before >= p->host->max_queued) {
    atomic_fetch_sub_explicit(&p->queued_bytes, pkt->len, memory_order_relaxed);
    pn__outmsg_free(om);
    /* Owe the owner PN_MSG_PEER_WRITABLE. seq_cst on this store and on the
     * loads of queued_bytes and sends_closed below, pairing with the
     * seq_cst fetch_sub of queued_bytes and load of want_writable in
     * pn__peer_check_writable() (peer_send.c), and with the seq_cst store
     * of sends_closed and exchange of want_writable in close_sends()
     * (peer.c): each side writes one variable then reads the other, so in
     * the single order of seq_cst operations either its read sees our
     * flag, or our load sees its write. In the second case nothing would
     * wake the owner: the queue drained below half before the flag was
     * up (poke the peer to look again), or the peer stopped taking sends
     * (refuse: the caller would wait for nothing). Release and acquire
     * would let both miss; this needs seq_cst. */
    atomic_store_explicit(&p->want_writable, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sends_closed, memory_order_seq_cst)) {
      return PN_ECLOSED;
    }
    if (atomic_load_explicit(&p->queued_bytes, memory_order_seq_cst) <=
        p->host->max_queued / 2) {
      (void)pn__send_parts(p->actor, PN__P_POKE, NULL, 0, NULL, 0);
    }
    return PN_EAGAIN;
  }
  uint64_t id =
      atomic_fetch_add_explicit(&ch->next_msg_id, 1, memory_order_relaxed);
  om->msg_id = id;
  pn__worker *w = pn__worker_current(p->host->rt);
  /* On the peer's worker with nothing of this channel's in the mailbox,
   * the message skips the channel actor: same order, no hop. The channel
   * actor cannot be running now (it runs on this thread). relaxed: the
   * decrement in channel_handler() runs on this same thread (see there);
   * our own increments below are ours in program order. */
  if (w && w->index == (uint32_t)p->host->home &&
      atomic_load_explicit(&ch->in_mailbox, memory_order_relaxed) == 0) {
    enqueue(ch, om);
    pn__outmsg_unref(om); /* the queue holds its own reference */
  } else {
    om->holds_peer = true;
    pn_peer_hold(p);
    atomic_fetch_add_explicit(&ch->in_mailbox, 1, memory_order_relaxed);
    if (pn__send_buf(ch->actor, PN__C_SEND, om, sizeof *om, pn__outmsg_unref_fn,
                     NULL) != PN_OK) {
      atomic_fetch_sub_explicit(&ch->in_mailbox, 1, memory_order_relaxed);
      pn__outmsg_unref(om);
      return PN_ECLOSED;
    }
  }
  if (msg_id_out) {
    *msg_id_out = id;
  }
  return PN_OK;
}

pn_err pn_channel_send_packet(pn_channel *ch, pn_packet *pkt,
                              uint64_t *msg_id_out) {
  if (!ch || !pkt) {
    return PN_EINVAL;
  }
  pn__outmsg *om = pn__block_alloc(ch->peer->host->rt, sizeof *om);
  if (!om) {
    return PN_ENOMEM;
  }
  pn_packet_hold(pkt);
  om->pkt = pkt;
  return send_om(ch, om, msg_id_out);
}

pn_err pn_channel_send(pn_channel *ch, const void *data, size_t len,
                       uint64_t *msg_id_out) {
  if (!ch || (len && !data)) {
    return PN_EINVAL;
  }
  if (len > ch->peer->host->max_message) {
    return PN_EMSGSIZE;
  }
  /* A copy the application never sees, in the message's own pool block. */
  pn__outmsg *om =
      pn__block_alloc(ch->peer->host->rt, sizeof *om + sizeof(pn_packet) + len);
  if (!om) {
    return PN_ENOMEM;
  }
  pn_packet *pkt = pn__outmsg_inline_packet(om);
  atomic_init(&pkt->refs, 1);
  pkt->len = (uint32_t)len;
  pkt->rt = ch->peer->host->rt;
  if (len) {
    memcpy(pkt->data, data, len);
  }
  om->pkt = pkt;
  return send_om(ch, om, msg_id_out);
}

uint32_t pn_channel_index(const pn_channel *ch) { return ch ? ch->index : 0; }

pn_channel_kind pn_channel_kind_of(const pn_channel *ch) {
  return ch ? ch->kind : PN_CHANNEL_UNRELIABLE;
}
