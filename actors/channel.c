/* The channel actor: one typed stream of a peer.
 *
 * Sending: pn_channel_send() hands it an outgoing message (PN__C_SEND); it
 * gives the message the channel's next wire sequence and passes it to its
 * peer (PN__P_SEND), which fragments, sends and resends it.
 *
 * Receiving: its peer hands it each complete message once (PN__C_RECV;
 * duplicates of reliable kinds are already gone); the channel applies its
 * kind and sends the owner PN_MSG_PEER_PACKET:
 *   UNRELIABLE, RELIABLE: only messages newer than the newest delivered;
 *   ORDERED: in sequence, holding early ones until the gap is filled;
 *   UNSEQUENCED, RELIABLE_UNORDERED: as they come.
 *
 * PN__C_CLOSE (the peer closed): held messages are dropped, the peer is
 * told (PN__P_CHANNEL_DONE) and the actor stops. Its deliveries were
 * pushed before that, so the owner gets them before the peer's
 * PN_MSG_PEER_DISCONNECTED.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/net_internal.h"
#include "runtime/actor.h"
#include "runtime/worker.h"

/* --- duplicate window ---------------------------------------------------- */

bool pn__rxwin_seen(const pn__rxwin *w, uint64_t seq) {
  if (seq < w->base) {
    return true;
  }
  if (seq - w->base >= w->nbits) {
    return false;
  }
  uint64_t b = seq & (w->nbits - 1);
  return (w->bits[b / 64] >> (b % 64)) & 1u;
}

static bool rxwin_grow(pn__rxwin *w, uint64_t need) {
  uint64_t n = w->nbits ? w->nbits : 64;
  while (n < need) {
    n *= 2;
  }
  uint64_t *bits = calloc(n / 64, sizeof *bits);
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
  if (seq < w->base) {
    return true;
  }
  if (seq - w->base >= w->nbits && !rxwin_grow(w, seq - w->base + 1)) {
    return false;
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

static void deliver(pn_channel *ch, pn__event *e) {
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
  pn__event_send(ch->peer->owner, e);
}

static void drop_held(pn_channel *ch) {
  for (uint64_t i = 0; i < ch->held_cap; i++) {
    if (ch->held[i]) {
      pn__event_unref_fn(ch->held[i], NULL);
    }
  }
  free(ch->held);
  ch->held = NULL;
  ch->held_cap = ch->held_count = 0;
}

static bool hold(pn_channel *ch, pn__event *e, uint64_t seq) {
  uint64_t ahead = seq - ch->next_expected + 1;
  if (ahead > ch->held_cap) {
    uint64_t n = ch->held_cap ? ch->held_cap : 16;
    while (n < ahead) {
      n *= 2;
    }
    pn__event **h = calloc(n, sizeof *h);
    if (!h) {
      return false;
    }
    for (uint64_t i = 0; i < ch->held_cap; i++) {
      pn__event *x = ch->held[i];
      if (x) {
        h[x->ev.msg_id & (n - 1)] = x;
      }
    }
    free(ch->held);
    ch->held = h;
    ch->held_cap = n;
  }
  pn__event **slot = &ch->held[seq & (ch->held_cap - 1)];
  if (*slot) {
    return false; /* already held (never: the peer removes duplicates) */
  }
  atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
  *slot = e;
  ch->held_count++;
  return true;
}

static void on_recv(pn_channel *ch, pn__event *e) {
  uint64_t seq = e->ev.msg_id;
  switch (ch->kind) {
  case PN_CHANNEL_UNRELIABLE:
  case PN_CHANNEL_RELIABLE:
    if (seq > ch->newest) {
      ch->newest = seq;
      deliver(ch, e);
    } else {
      pn__stat_add(&ch->peer->st_stale, 1);
    }
    break;
  case PN_CHANNEL_ORDERED:
    if (seq == ch->next_expected) {
      deliver(ch, e);
      ch->next_expected++;
      while (ch->held_count) {
        pn__event **slot = &ch->held[ch->next_expected & (ch->held_cap - 1)];
        if (!*slot || (*slot)->ev.msg_id != ch->next_expected) {
          break;
        }
        pn__event *x = *slot;
        *slot = NULL;
        ch->held_count--;
        pn__event_send(ch->peer->owner, x); /* its held reference goes */
        ch->next_expected++;
      }
    } else if (seq > ch->next_expected) {
      (void)hold(ch, e, seq);
    } else {
      pn__stat_add(&ch->peer->st_dups, 1);
    }
    break;
  default:
    deliver(ch, e);
    break;
  }
}

/* --- sending ------------------------------------------------------------- */

static void on_send(pn_channel *ch, pn__outmsg *om) {
  pn_peer *p = ch->peer;
  if (p->gone || atomic_load_explicit(&p->state, memory_order_relaxed) >=
                     PN_PEER_DISCONNECTING) {
    return; /* the message's free function lets it go */
  }
  om->seq = ch->next_seq++;
  atomic_fetch_add_explicit(&om->refs, 1, memory_order_relaxed);
  if (pn__send_buf(p->actor, PN__P_SEND, om, sizeof *om, pn__outmsg_unref_fn,
                   NULL) != PN_OK) {
    pn__outmsg_unref(om);
  }
}

static void channel_handler(pn_actor *self, void *state, const pn_msg *msg) {
  pn_channel *ch = state;
  switch (pn_msg_type(msg)) {
  case PN__C_SEND:
    on_send(ch, (pn__outmsg *)pn_msg_data(msg));
    break;
  case PN__C_RECV:
    on_recv(ch, (pn__event *)pn_msg_data(msg));
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

pn_err pn_channel_send_packet(pn_channel *ch, pn_packet *pkt,
                              uint64_t *msg_id_out) {
  if (!ch || !pkt) {
    return PN_EINVAL;
  }
  pn_peer *p = ch->peer;
  if (pkt->len > p->host->max_message) {
    return PN_EMSGSIZE;
  }
  if (atomic_load_explicit(&p->state, memory_order_relaxed) >=
      PN_PEER_DISCONNECTING) {
    return PN_ECLOSED;
  }
  uint64_t before = atomic_fetch_add_explicit(&p->queued_bytes, pkt->len,
                                              memory_order_relaxed);
  if (before + pkt->len > p->host->max_queued && before > 0) {
    atomic_fetch_sub_explicit(&p->queued_bytes, pkt->len, memory_order_relaxed);
    return PN_EAGAIN;
  }
  pn__outmsg *om = calloc(1, sizeof *om);
  if (!om) {
    atomic_fetch_sub_explicit(&p->queued_bytes, pkt->len, memory_order_relaxed);
    return PN_ENOMEM;
  }
  atomic_init(&om->refs, 1);
  pn_peer_hold(p);
  om->peer = p;
  pn_packet_hold(pkt);
  om->pkt = pkt;
  om->channel = ch->index;
  om->kind = (uint8_t)ch->kind;
  om->reliable = ch->kind == PN_CHANNEL_RELIABLE ||
                 ch->kind == PN_CHANNEL_ORDERED ||
                 ch->kind == PN_CHANNEL_RELIABLE_UNORDERED;
  om->frag_count = 1;
  uint64_t id =
      atomic_fetch_add_explicit(&ch->next_msg_id, 1, memory_order_relaxed);
  om->msg_id = id;
  if (pn__send_buf(ch->actor, PN__C_SEND, om, sizeof *om, pn__outmsg_unref_fn,
                   NULL) != PN_OK) {
    pn__outmsg_unref(om);
    return PN_ECLOSED;
  }
  if (msg_id_out) {
    *msg_id_out = id;
  }
  return PN_OK;
}

pn_err pn_channel_send(pn_channel *ch, const void *data, size_t len,
                       uint64_t *msg_id_out) {
  if (!ch || (len && !data)) {
    return PN_EINVAL;
  }
  if (len > ch->peer->host->max_message) {
    return PN_EMSGSIZE;
  }
  pn_packet *pkt;
  pn_err err = pn_packet_create(data, len, &pkt);
  if (err != PN_OK) {
    return err;
  }
  err = pn_channel_send_packet(ch, pkt, msg_id_out);
  pn_packet_release(pkt);
  return err;
}

uint32_t pn_channel_index(const pn_channel *ch) { return ch ? ch->index : 0; }

pn_channel_kind pn_channel_kind_of(const pn_channel *ch) {
  return ch ? ch->kind : PN_CHANNEL_UNRELIABLE;
}
