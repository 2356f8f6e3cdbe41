/* The peer's receiving half: a DATA datagram is verified (its tag names
 * the sequence, so a replay or forgery is dropped before anything else),
 * decompressed, decoded into the worker's arena, its acknowledgements
 * handed to the sending half, and its frames delivered: whole messages to
 * their channel, fragments into reassembly.
 *
 * A datagram whose frames the receiver cannot hold (the receive buffer,
 * reassembly memory, duplicate window) is dropped whole and not
 * acknowledged, so nothing acknowledged is ever thrown away.
 *
 * The receive buffer (flow.h): what is held for the peer, ORDERED messages
 * waiting for an earlier one and partial messages, never exceeds
 * max_receive_buffer. A sender that keeps to the window advertised never
 * meets that limit; datagrams of one that does not are dropped and
 * counted (window_drops).
 */
#include <stdlib.h>
#include <string.h>

#include "actors/event.h"
#include "actors/handshake.h"
#include "actors/host.h"
#include "actors/peer.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/rt.h"

#define ACK_EVERY 32u /* datagrams received before an acknowledgement */

/* --- reassembly ---------------------------------------------------------- */

static pn__partial *find_partial(pn_peer *p, uint32_t ch, uint64_t seq) {
  for (pn__partial *q = p->partials; q; q = q->next) {
    if (q->channel == ch && q->seq == seq) {
      return q;
    }
  }
  return NULL;
}

static void publish_held(pn_peer *p) {
  atomic_store_explicit(&p->st_held, p->flow.held, memory_order_relaxed);
  atomic_store_explicit(&p->st_held_max, p->flow.held_max,
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_reassembly, p->reassembly, memory_order_relaxed);
}

static void free_partial(pn_peer *p, pn__partial *q) {
  for (pn__partial **pp = &p->partials; *pp; pp = &(*pp)->next) {
    if (*pp == q) {
      *pp = q->next;
      break;
    }
  }
  p->reassembly -= q->pkt->len;
  pn__flow_unhold(&p->flow, q->pkt->len);
  pn_packet_release(q->pkt);
  free(q->have);
  free(q);
}

/* Drops partial unreliable messages nobody will complete: older than the
 * newest complete one on a sequenced channel, or silent for too long. */
void pn__peer_expire_partials(pn_peer *p, uint64_t now, uint32_t channel,
                              uint64_t newest) {
  pn__partial *q = p->partials;
  while (q) {
    pn__partial *next = q->next;
    pn_channel_kind kind = p->channels[q->channel].kind;
    bool stale = !pn__kind_reliable(kind) &&
                 ((q->channel == channel && q->seq < newest &&
                   kind == PN_CHANNEL_UNRELIABLE) ||
                  now - q->touched_ns > PN__PARTIAL_EXPIRY_NS);
    if (stale) {
      free_partial(p, q);
    }
    q = next;
  }
  publish_held(p);
}

/* --- frames and datagrams ------------------------------------------------ */

/* Whether an earlier frame of the datagram starts the same message. */
static bool same_message_before(const Peernet__Wire__V1__Packet *pk, size_t i) {
  const Peernet__Wire__V1__Frame *f = pk->frames[i];
  for (size_t j = 0; j < i; j++) {
    const Peernet__Wire__V1__Frame *g = pk->frames[j];
    if (g->frag_count > 1 && g->channel == f->channel &&
        g->msg_seq == f->msg_seq) {
      return true;
    }
  }
  return false;
}

/* Can every frame of the packet be taken? (see the top comment) Counts
 * what the receive buffer would hold if none of them could be delivered
 * yet: every new ORDERED message, every new partial one. A sender within
 * the window never goes past the limit even so (flow.h). */
static bool frames_fit(pn_peer *p, const Peernet__Wire__V1__Packet *pk) {
  uint64_t held = 0, partial = 0;
  for (size_t i = 0; i < pk->n_frames; i++) {
    const Peernet__Wire__V1__Frame *f = pk->frames[i];
    /* pn__wire_decode_packet() refused any other channel (network input
     * never gets here); on_frame() indexes with the same frames. */
    PN_ASSERT(f->channel < p->nchannels);
    pn_channel *ch = &p->channels[f->channel];
    bool reliable = pn__kind_reliable(ch->kind);
    if (reliable && f->msg_seq >= ch->rx.base &&
        f->msg_seq - ch->rx.base >= PN__RXWIN_MAX_BITS) {
      return false;
    }
    if (reliable && pn__rxwin_seen(&ch->rx, f->msg_seq)) {
      continue; /* a duplicate: nothing to hold */
    }
    if (f->frag_count <= 1) {
      held += ch->kind == PN_CHANNEL_ORDERED ? f->payload.len : 0;
    } else if (!find_partial(p, f->channel, f->msg_seq) &&
               !same_message_before(pk, i)) {
      partial += f->msg_len;
    }
  }
  if (!pn__flow_fits(&p->flow, held + partial)) {
    pn__stat_add(&p->st_window_drops, 1);
    return false;
  }
  return p->reassembly + partial <= p->host->max_reassembly;
}

/* What delivering one frame may need, allocated before the datagram is
 * acknowledged: a packet for a whole message, the reassembly entry for a
 * fragment, the owner's event envelope, room in the duplicate window and
 * in the ORDERED hold ring. Without this, memory running out after the
 * acknowledgement would lose a reliable message for good (or stall an
 * ORDERED channel behind it). */
typedef struct prepared {
  pn_packet *pkt; /* whole messages */
  pn_msg *ev;     /* the PN_MSG_PEER_PACKET envelope */
  pn__event *e;
} prepared;

static pn__partial *partial_new(pn_peer *p, const Peernet__Wire__V1__Frame *f) {
  pn__partial *q = pn__calloc(1, sizeof *q);
  uint64_t words = (f->frag_count + 63) / 64;
  if (q) {
    q->have = pn__calloc(words, sizeof *q->have);
    q->pkt = pn__packet_new(NULL, f->msg_len);
  }
  if (!q || !q->have || !q->pkt) {
    if (q) {
      free(q->have);
      free(q->pkt);
    }
    free(q);
    return NULL;
  }
  q->channel = f->channel;
  q->seq = f->msg_seq;
  q->count = f->frag_count;
  q->next = p->partials;
  p->partials = q;
  p->reassembly += f->msg_len;
  pn__flow_hold(&p->flow, f->msg_len);
  return q;
}

static void release_prepared(pn_peer *p, prepared *pr, size_t n) {
  for (size_t i = 0; i < n; i++) {
    pn_packet_release(pr[i].pkt);
    if (pr[i].ev) {
      pn__event_drop(p, pr[i].ev);
    }
    pr[i] = (prepared){0};
  }
}

/* All or nothing: false when memory ran out (everything given back; a
 * reassembly entry already made stays for the resend to fill). */
static bool prepare_frames(pn_peer *p, const Peernet__Wire__V1__Packet *pk,
                           prepared *pr) {
  for (size_t i = 0; i < pk->n_frames; i++) {
    const Peernet__Wire__V1__Frame *f = pk->frames[i];
    pn_channel *ch = &p->channels[f->channel];
    bool reliable = pn__kind_reliable(ch->kind);
    pr[i] = (prepared){0};
    if (reliable && pn__rxwin_seen(&ch->rx, f->msg_seq)) {
      continue; /* a duplicate: nothing to deliver */
    }
    bool ok = !reliable || pn__rxwin_reserve(&ch->rx, f->msg_seq);
    if (ok && f->frag_count <= 1) {
      pr[i].pkt = pn__packet_new(p->host->rt, f->payload.len);
      ok = pr[i].pkt != NULL;
    } else if (ok && !find_partial(p, f->channel, f->msg_seq)) {
      ok = partial_new(p, f) != NULL;
    }
    if (ok) {
      pr[i].ev = pn__event_new(PN_MSG_PEER_PACKET, p, &pr[i].e);
      ok = pr[i].ev && pn__channel_reserve(ch, f->msg_seq);
    }
    if (!ok) {
      release_prepared(p, pr, i + 1);
      return false;
    }
  }
  return true;
}

/* Delivers one frame with what prepare_frames() set aside (the caller
 * gives back what it did not use). */
static void on_frame(pn_peer *p, const Peernet__Wire__V1__Frame *f,
                     prepared *pr, uint64_t now) {
  pn_channel *ch = &p->channels[f->channel];
  bool reliable = pn__kind_reliable(ch->kind);
  if (reliable && pn__rxwin_seen(&ch->rx, f->msg_seq)) {
    pn__stat_add(&p->st_dups, 1);
    return;
  }
  pn_packet *pkt;
  if (f->frag_count <= 1) {
    pkt = pr->pkt;
    pr->pkt = NULL;
    if (!pkt) {
      /* Only an unreliable kind repeats a whole message inside one
       * datagram (reliable repeats are seen above): a duplicate. */
      pn__stat_add(&p->st_dups, 1);
      return;
    }
    /* An empty message has no payload field: its data is NULL, which
     * memcpy may not be given even for 0 bytes. */
    if (f->payload.len) {
      memcpy(pkt->data, f->payload.data, f->payload.len);
    }
  } else {
    pn__partial *q = find_partial(p, f->channel, f->msg_seq);
    if (!q) {
      /* Completed by an earlier frame of this datagram (an unreliable
       * kind: reliable ones were seen above). */
      pn__stat_add(&p->st_dups, 1);
      return;
    }
    q->touched_ns = now;
    if (q->count != f->frag_count || q->pkt->len != f->msg_len) {
      pn__stat_add(&p->st_bad, 1); /* inconsistent fragments */
      return;
    }
    if (q->have[f->frag_index / 64] >> (f->frag_index % 64) & 1u) {
      pn__stat_add(&p->st_dups, 1);
      return;
    }
    q->have[f->frag_index / 64] |= 1ull << (f->frag_index % 64);
    size_t piece = ((size_t)f->msg_len + f->frag_count - 1) / f->frag_count;
    memcpy(q->pkt->data + piece * f->frag_index, f->payload.data,
           f->payload.len);
    if (++q->received < q->count) {
      return;
    }
    pkt = q->pkt;
    pn_packet_hold(pkt);
    free_partial(p, q);
    if (reliable && ch->kind != PN_CHANNEL_ORDERED) {
      /* Delivered or dropped as stale below: its cost goes back (an
       * ORDERED one's when its channel lets it go). */
      pn__flow_release(&p->flow, pkt->len);
    }
    if (ch->kind == PN_CHANNEL_UNRELIABLE) {
      pn__peer_expire_partials(p, now, f->channel, f->msg_seq);
    }
  }
  if (reliable) {
    bool marked = pn__rxwin_mark(&ch->rx, f->msg_seq);
    PN_ASSERT(marked); /* prepare_frames() reserved the room */
  }
  PN_ASSERT(pr->ev); /* prepared for every frame not seen before */
  pn__channel_receive(ch, f->msg_seq, pkt, pr->ev, pr->e);
  pr->ev = NULL;
}

static void on_data(pn_peer *p, pn__scratch *sc, const pn__recv_header *rh,
                    const uint8_t *data, size_t len,
                    const pn__wire_header *hdr) {
  const pn_host *h = p->host;
  pn_peer_state st = pn__peer_state(p);
  if ((st != PN_PEER_CONNECTED && st != PN_PEER_DISCONNECTING) ||
      len < PN__DATA_OVERHEAD) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  uint64_t seq = pn__data_seq(data, p->rx.highest);
  /* Decrypted into the scratch buffer: the datagram itself is the
   * mailbox's. Nothing of a datagram is read before it proved authentic. */
  if (!pn__data_open(&p->dkeys.rx, seq, data, len, sc->buf)) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  if (p->hs) {
    pn__handshake_free(p); /* the client has its Accept: no resend needed */
  }
  const uint8_t *body = sc->buf;
  size_t blen = len - PN__DATA_OVERHEAD;
  if (hdr->zstd) {
    size_t n;
    if (!pn__scratch_decompress(sc, h->ddict, body, blen, &n)) {
      pn__stat_add(&p->st_bad, 1);
      return;
    }
    body = sc->zbuf;
    blen = n;
  }
  sc->arena_used = 0;
  Peernet__Wire__V1__Packet *pk = pn__wire_decode_packet(
      body, blen, p->nchannels, h->max_message, &sc->arena_allocator);
  if (!pk) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  pk->seq = seq; /* the body's own field is not used (version 2 on) */
  if (!pn__path_proven(p, &rh->from)) {
    bool act = false;
    if (!pn__ackwin_is_new(&p->rx, pk->seq)) {
      pn__stat_add(&p->st_dups, 1);
    } else {
      act = pn__path_check(p, sc, rh->socket, &rh->from, pk);
    }
    if (!act) {
      sc->arena_used = 0; /* the decoded packet lived in the arena */
      return;
    }
  } else if (pk->seq > p->rx.highest && !pn_addr_equal(&p->addr, &rh->from)) {
    pn__path_follow(p, &rh->from); /* a replay or a late one never moves it */
  }
  uint64_t now = pn__now_ns();
  const uint64_t ack_bits[2] = {pk->ack_bits, pk->ack_bits_more};
  pn__peer_on_acks(p, pk->ack, ack_bits, pk->ack_delay_us, now);
  /* The largest limit counts; none (0) is a peer that advertises no
   * window (version 3 before it had one): it is not limited. */
  (void)pn__flow_on_limit(&p->flow, pk->window ? pk->window : UINT64_MAX);
  if (p->gone) {
    sc->arena_used = 0; /* the decoded packet lived in the arena */
    return;
  }
  /* A datagram whose frames cannot all be held (limits, or memory for
   * what delivering them needs) is neither acknowledged nor remembered:
   * its sender will send those frames again. */
  prepared pr[PN__MAX_FRAMES];
  if (!pn__ackwin_is_new(&p->rx, pk->seq)) {
    /* A replay does not count as hearing from the peer: an on-path
     * replayer must not keep a dead connection alive. */
    pn__stat_add(&p->st_dups, 1);
  } else if (!frames_fit(p, pk) || !prepare_frames(p, pk, pr)) {
    /* resource limit, not bad input: not counted as either */
    if (pk->seq > p->rx.highest) {
      p->last_recv_ns = now;
    }
  } else {
    if (pn__ackwin_mark(&p->rx, pk->seq)) {
      p->rx_highest_ns = now;
    }
    /* One the sender waits for is owed a naming: if the next
     * acknowledgement cannot (it fell more than PN__ACK_SPAN behind the
     * highest first, through a slower path or a long run), one apart
     * names it (peer_send.c, send_late_acks). */
    bool eliciting = pk->n_frames || pk->ping || pk->disconnect;
    if (eliciting && (!p->rx_unnamed_lo || pk->seq < p->rx_unnamed_lo)) {
      p->rx_unnamed_lo = pk->seq;
    }
    p->last_recv_ns = now;
    for (size_t i = 0; i < pk->n_frames; i++) {
      on_frame(p, pk->frames[i], &pr[i], now);
    }
    release_prepared(p, pr, pk->n_frames);
    if (pk->path_challenge) {
      pn__path_challenged(p, rh->socket, pk->path_challenge);
    } else if (rh->socket < 32) {
      p->sockets_ok |= 1u << rh->socket; /* the remote sends here */
    }
    if (pk->n_frames || pk->ping || pk->disconnect) {
      p->ack_owed = true;
      /* Repeated acknowledgements (peer_send.c, schedule_reack) only for
       * data: a keepalive's lost acknowledgement costs nothing worth a
       * copy, and copying them all tripled an idle crowd's datagrams. */
      if (pk->n_frames) {
        p->reacks_left = PN__REACKS;
      }
      /* An acknowledgement names PN__ACK_SPAN + 1 datagrams: sent every
       * ACK_EVERY, each datagram is named by four, so up to three lost
       * in a row are repaired (ackwin.h). */
      if (++p->rx_unacked >= ACK_EVERY) {
        pn__peer_flush(p, sc);
      }
    }
    if (pk->disconnect) {
      uint32_t reason = pk->disconnect_reason;
      pn__peer_flush(p, sc); /* the acknowledgement, so the other side
                                closes at once */
      pn__peer_close(p, reason, true);
    }
  }
  publish_held(p);
  sc->arena_used = 0; /* the decoded packet lived in the arena */
}

void pn__peer_on_recv(pn_peer *p, pn__scratch *sc, const pn_msg *msg) {
  if (pn_msg_size(msg) < sizeof(pn__recv_header)) {
    return;
  }
  pn__recv_header rh;
  memcpy(&rh, pn_msg_data(msg), sizeof rh);
  const uint8_t *data = (const uint8_t *)pn_msg_data(msg) + sizeof rh;
  size_t len = pn_msg_size(msg) - sizeof rh;
  pn__stat_add(&p->st_dg_in, 1);
  pn__stat_add(&p->st_bytes_in, len);
  pn__wire_header hdr;
  if (!pn__wire_peek(data, len, &hdr)) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  if (hdr.type == PN__T_DATA) {
    on_data(p, sc, &rh, data, len, &hdr);
  } else {
    pn__handshake_on_reply(p, sc, data, len, hdr.type);
  }
}

void pn__peer_drop_partials(pn_peer *p) {
  while (p->partials) {
    pn__partial *q = p->partials;
    p->partials = q->next;
    pn_packet_release(q->pkt);
    free(q->have);
    free(q);
  }
  pn__flow_unhold(&p->flow, p->reassembly);
  p->reassembly = 0;
}
