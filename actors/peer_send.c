/* The peer's sending half: messages queued by its channels are cut into
 * frames, coalesced into DATA datagrams up to the MTU while the congestion
 * window (recovery.c) and the pacing bucket allow, compressed when that
 * pays, sealed and sent; acknowledgements resolve them.
 *
 * Frames, not datagrams, are resent: a datagram declared lost puts its
 * reliable frames on the resend queue and reports its unreliable messages
 * lost. Every frame in flight holds a reference on its message, which goes
 * when the last fragment is acknowledged.
 */
#include <stdlib.h>
#include <string.h>

#include "actors/event.h"
#include "actors/host.h"
#include "actors/msg_ids.h"
#include "actors/peer.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/worker.h"

#define COMPRESS_MIN 128u       /* bodies below this are sent as they are */
#define COMPRESS_MIN_DICT 24u   /* the same with a dictionary */
#define COMPRESS_MIN_SAVING 8u  /* compress only when it saves 1/8 */
#define PACE_BURST_NS 10000000u /* the bucket holds 10 ms of the rate */

/* --- frame deques -------------------------------------------------------- */

/* Makes room for n more items. */
static bool fq_reserve(pn__fq *q, uint64_t n) {
  uint64_t cap = q->items ? q->mask + 1 : 0;
  if (q->tail - q->head + n <= cap) {
    return true;
  }
  uint64_t ncap = cap ? cap : 64;
  while (ncap < q->tail - q->head + n) {
    ncap *= 2;
  }
  pn__fref *items = pn__malloc(ncap * sizeof *items);
  if (!items) {
    return false;
  }
  for (uint64_t i = q->head; i < q->tail; i++) {
    items[i & (ncap - 1)] = q->items[i & q->mask];
  }
  free(q->items);
  q->items = items;
  q->mask = ncap - 1;
  return true;
}

static bool fq_push(pn__fq *q, pn__fref f) {
  if (!fq_reserve(q, 1)) {
    return false;
  }
  q->items[q->tail & q->mask] = f;
  q->tail++;
  return true;
}

static pn__fref *fq_at(pn__fq *q, uint64_t i) { return &q->items[i & q->mask]; }

/* --- outgoing messages --------------------------------------------------- */

/* pn__outmsg_unref for an acknowledged message, in the peer's own run: its
 * bytes leave queued_bytes at the run's end (check_writable), so a run that
 * acknowledges hundreds of messages pays one atomic operation, not one
 * each. Until then senders see the queue fuller than it is, never
 * emptier. */
static void outmsg_unref_acked(pn_peer *p, pn__outmsg *om) {
  if (--om->refs) {
    return;
  }
  if (!om->unqueued) {
    p->unqueued += om->pkt->len;
  }
  pn__outmsg_free(om);
}

/* A message resolved (ACKED or LOST) leaves queued_bytes now, though
 * datagrams declared lost may still hold references to it. */
static void resolved_unqueue(pn_peer *p, pn__outmsg *om) {
  om->resolved = true;
  om->unqueued = true;
  p->unqueued += om->pkt->len;
}

static void om_ref(pn__outmsg *om) { om->refs++; }

static bool frag_acked(const pn__outmsg *om, uint32_t frag) {
  return om->frag_count == 1 ? om->frags_acked == 1
                             : (om->acked[frag / 64] >> (frag % 64)) & 1u;
}

/* --- datagrams out -------------------------------------------------------- */

void pn__peer_send_on(pn_peer *p, uint32_t socket, const uint8_t *data,
                      size_t len) {
  pn__host_send(p->host, socket, &p->addr, data, len);
  pn__stat_add(&p->st_dg_out, 1);
  pn__stat_add(&p->st_bytes_out, len);
  p->last_send_ns = pn__now_ns();
}

/* Compresses body into zbuf's body when that pays; backs off for a
 * while after datagrams that do not shrink. Returns the body length used
 * and sets *out to the bytes to send. */
static size_t maybe_compress(pn_peer *p, pn__scratch *sc, size_t body,
                             bool *zstd) {
  const pn_host *h = p->host;
  *zstd = false;
  /* With a dictionary even small bodies shrink; without one, below
   * COMPRESS_MIN bytes they almost never do. */
  if (!h->compress || body < (h->cdict ? COMPRESS_MIN_DICT : COMPRESS_MIN)) {
    return body;
  }
  if (p->compress_skip) {
    p->compress_skip--;
    return body;
  }
  size_t z = pn__scratch_compress(sc, h->cdict, sc->zbuf + PN__DATA_HEADER,
                                  body - 1, sc->buf + PN__DATA_HEADER, body);
  /* It pays only when it saves at least an eighth: below that, the CPU it
   * costs (about half a sender's time on incompressible 64-byte messages)
   * buys too few bytes. */
  if (!z || z > body - body / COMPRESS_MIN_SAVING) {
    p->compress_misses = p->compress_misses < 6 ? p->compress_misses + 1 : 6;
    p->compress_skip = 1u << p->compress_misses; /* 2 .. 64 datagrams */
    return body;
  }
  p->compress_misses = 0;
  *zstd = true;
  return z;
}

/* The acknowledgement fields every DATA datagram carries, with the receive
 * window. pk->seq stays 0
 * (not encoded): the header carries the sequence. */
static void put_acks(const pn_peer *p, Peernet__Wire__V1__Packet *pk,
                     uint64_t now) {
  pk->ack = p->rx.highest;
  pk->ack_bits = p->rx.bits[0];
  pk->ack_bits_more = p->rx.bits[1];
  pk->window = pn__flow_advertised(&p->flow);
  if (p->rx.highest) {
    uint64_t d = (now - p->rx_highest_ns) / 1000u;
    pk->ack_delay_us = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
  }
}

/* Acknowledgements repair each other: an acknowledgement names only the
 * PN__ACK_SPAN + 1 datagrams up to the highest received, and nothing
 * acknowledges an
 * ack-only datagram, so the last acknowledgement of a burst, if lost,
 * left its datagrams to the sender's RTO, which declared them lost
 * although they had arrived (5% of acknowledgements lost made 5% of
 * messages LOST and a 5% loss figure with no data lost). After an
 * ack-only datagram, the same acknowledgement goes again PN__REACKS times,
 * at a quarter of rto_min and then half of it (the two ends usually share
 * rto_min; the sender's RTO is at least that), unless a newer one went
 * first: its loss then needs every copy lost. While data keeps coming
 * each acknowledgement replaces the last and moves the copies on, so
 * they cost one or two datagrams per pause in the traffic, not per
 * acknowledgement. An acknowledgement carried by a datagram with frames
 * is not repeated: that datagram is resent if lost. */
static void schedule_reack(pn_peer *p, bool eliciting, uint64_t now) {
  if (eliciting || !p->rx.highest || !p->reacks_left) {
    p->reack_at_ns = 0;
    return;
  }
  uint64_t base = p->host->rto_min_ns / 4;
  p->reack_at_ns = now + (base << (PN__REACKS - p->reacks_left));
}

void pn__peer_on_reack(pn_peer *p, uint64_t now) {
  if (p->reack_at_ns && now >= p->reack_at_ns) {
    p->reack_at_ns = 0;
    p->reacks_left--;
    p->ack_owed = true;
  }
}

/* Builds and sends one DATA datagram from frames[0..n) and the owed
 * flags; records it when it will be acknowledged. */
static void send_packet(pn_peer *p, pn__scratch *sc, const pn__fref *frames,
                        uint32_t n, uint64_t now) {
  Peernet__Wire__V1__Frame fr[PN__MAX_FRAMES];
  Peernet__Wire__V1__Frame *fp[PN__MAX_FRAMES];
  for (uint32_t i = 0; i < n; i++) {
    const pn__outmsg *om = frames[i].om;
    peernet__wire__v1__frame__init(&fr[i]);
    fr[i].channel = om->channel;
    fr[i].msg_seq = om->seq;
    if (om->frag_count > 1) {
      uint32_t len = (uint32_t)om->pkt->len;
      size_t piece = ((size_t)len + om->frag_count - 1) / om->frag_count;
      fr[i].frag_index = frames[i].frag;
      fr[i].frag_count = om->frag_count;
      fr[i].msg_len = len;
      fr[i].payload.data = om->pkt->data + piece * frames[i].frag;
      fr[i].payload.len = pn__frag_len(len, om->frag_count, frames[i].frag);
    } else {
      fr[i].payload.data = (uint8_t *)om->pkt->data;
      fr[i].payload.len = om->pkt->len;
    }
    fp[i] = &fr[i];
  }
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  put_acks(p, &pk, now);
  if (n && pk.ack_bits_more == UINT64_MAX) {
    /* A datagram with frames is resent if lost; the older half of the
     * record costs it 9 bytes and says only "all arrived", which the
     * ack-only datagrams repeat. A hole is news: it goes. (What that half
     * holds that no acknowledgement named yet stays owed.) */
    pk.ack_bits_more = 0;
  } else {
    p->rx_unnamed_lo = 0; /* named, or owed apart (send_late_acks) */
  }
  pk.n_frames = n;
  pk.frames = fp;
  pk.ping = p->ping_owed;
  if (p->disconnect_owed) {
    pk.disconnect = true;
    pk.disconnect_reason = p->reason;
  }
  /* A path response goes alone, after the flush's data (pn__peer_flush
   * sends it last): through another socket than the data, it must not
   * arrive behind a batch of newer datagrams, which would make it too old
   * to be taken (ackwin.h) and leave the address unproven. */
  pk.path_response = n ? 0 : p->path_response_owed;
  if (pk.path_response && pn__recovery_room(&p->rec)) {
    /* Asks for an acknowledgement: the one that proves the socket to
     * this side (sockets_proven). */
    pk.ping = true;
  }
  size_t body = pn__wire_encode_packet(&pk, sc->buf + PN__DATA_HEADER);
  bool zstd;
  size_t sent_body = maybe_compress(p, sc, body, &zstd);
  uint8_t *out = zstd ? sc->zbuf : sc->buf;
  uint64_t seq = p->rec.next_seq;
  pn__wire_put_data_header(out, zstd, p->remote_id, seq);
  size_t len =
      pn__data_seal(&p->dkeys.tx, seq, out, PN__DATA_HEADER + sent_body);
  if (p->send_rate && n) {
    p->pace_tokens -= (int64_t)len;
  }
  pn__stat_add(&p->st_raw_out, body);
  pn__stat_add(&p->st_comp_out, sent_body);
  /* A path response goes through the socket the challenge came in on:
   * the address it tests. */
  uint32_t socket = pk.path_response ? p->path_response_socket : p->socket_rr;
  pn__peer_send_on(p, socket, out, len);
  bool eliciting = n > 0 || pk.ping || pk.disconnect;
  pn__sent *e = pn__recovery_sent(&p->rec, now, (uint32_t)len, eliciting,
                                  pk.disconnect, socket);
  if (e) {
    if (!p->unacked_since_ns) {
      p->unacked_since_ns = now; /* the ack timeout starts */
    }
    e->fstart = p->frefs.tail;
    e->nframes = (uint16_t)n;
    for (uint32_t i = 0; i < n; i++) {
      bool pushed = fq_push(&p->frefs, frames[i]);
      PN_ASSERT(pushed); /* reserved in flush beforehand */
    }
  } else {
    pn__stat_add(&p->st_acks_only, 1);
  }
  schedule_reack(p, eliciting, now);
  p->ack_owed = false;
  p->rx_unacked = 0;
  p->ping_owed = false;
  p->disconnect_owed = false;
  if (pk.path_response) {
    p->path_response_owed = 0;
  }
}

/* Marks the sockets of the mask the remote has proven: it acknowledged a
 * datagram sent through one (it acts on, and so acknowledges, nothing from
 * an address it has not proven: path.c). Datagrams the remote sends to a
 * socket prove it too (peer_recv.c), but its replies follow the newest
 * datagram, which a slower path's seldom is. */
static void sockets_proven(pn_peer *p) {
  uint32_t unproven = p->sockets_mask & ~p->sockets_ok;
  for (uint32_t s = 0; unproven >> s && s < PN__REC_PATHS; s++) {
    if (unproven >> s & 1u && pn__recovery_path_acked(&p->rec, s)) {
      p->sockets_ok |= 1u << s;
    }
  }
}

/* Encodes and seals pk, which asks for no acknowledgement, into sc->buf
 * for `socket`, uncompressed; it takes its sequence number all the same
 * (a nonce is never used twice). Returns its length. */
static size_t seal_unelicited(pn_peer *p, pn__scratch *sc,
                              const Peernet__Wire__V1__Packet *pk,
                              uint32_t socket, uint64_t now) {
  size_t body = pn__wire_encode_packet(pk, sc->buf + PN__DATA_HEADER);
  uint64_t seq = p->rec.next_seq;
  pn__wire_put_data_header(sc->buf, false, p->remote_id, seq);
  size_t len =
      pn__data_seal(&p->dkeys.tx, seq, sc->buf, PN__DATA_HEADER + body);
  pn__sent *e =
      pn__recovery_sent(&p->rec, now, (uint32_t)len, false, false, socket);
  PN_ASSERT(!e);
  return len;
}

static void send_late_ack(pn_peer *p, pn__scratch *sc, uint64_t top,
                          uint64_t now) {
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  uint64_t bits[2];
  pn__ackwin_below(&p->rx, top, bits);
  pk.ack = top;
  pk.ack_bits = bits[0];
  pk.ack_bits_more = bits[1];
  pk.window = pn__flow_advertised(&p->flow);
  size_t len = seal_unelicited(p, sc, &pk, p->socket_rr, now);
  pn__peer_send_on(p, p->socket_rr, sc->buf, len);
  pn__stat_add(&p->st_acks_only, 1);
}

/* Acknowledgements of datagrams that fell more than PN__ACK_SPAN behind
 * the highest before an acknowledgement named them (rx_late_lo..
 * rx_late_hi): the ordinary ones name only the highest and the
 * PN__ACK_SPAN before it, so without these a datagram that took a slower
 * path (another socket), or arrived in a run longer than that, would be
 * resent, and its unreliable messages reported LOST, though it arrived.
 * Each names a received datagram and the PN__ACK_SPAN before it, from the
 * newest down, so a flush of the slower path costs one or two. Sent
 * before the flush's ordinary acknowledgement. */
static void send_late_acks(pn_peer *p, pn__scratch *sc, uint64_t now) {
  /* What arrived since the last acknowledgement and fell out of the next
   * one's reach is owed apart; the rest the next one names. */
  uint64_t reach =
      p->rx.highest > PN__ACK_SPAN ? p->rx.highest - PN__ACK_SPAN : 1;
  if (p->rx_unnamed_lo && p->rx_unnamed_lo < reach) {
    if (!p->rx_late_lo || p->rx_unnamed_lo < p->rx_late_lo) {
      p->rx_late_lo = p->rx_unnamed_lo;
    }
    if (reach - 1 > p->rx_late_hi) {
      p->rx_late_hi = reach - 1;
    }
    p->rx_unnamed_lo = reach;
  }
  uint64_t lo = p->rx_late_lo, top = p->rx_late_hi;
  p->rx_late_lo = p->rx_late_hi = 0;
  while (lo && top >= lo) {
    if (pn__ackwin_has(&p->rx, top)) {
      send_late_ack(p, sc, top, now);
      if (top < lo + PN__ACK_SPAN + 1) {
        return;
      }
      top -= PN__ACK_SPAN + 1;
    } else {
      top--; /* at most PN__RX_WINDOW steps in all */
    }
  }
}

#define PN__SOCKET_RUN 64u /* datagrams through a socket before the next */

/* Moves socket_rr to the next proven socket of the mask after it (round
 * robin); with need_window, to the next one whose path's window has room.
 * True when one was found (the current one counts last). */
static bool move_socket(pn_peer *p, bool need_window) {
  uint32_t n = p->host->nsockets;
  uint32_t usable = p->sockets_mask & p->sockets_ok;
  for (uint32_t i = 1; i <= n; i++) {
    uint32_t s = (p->socket_rr + i) % n;
    if (usable >> s & 1u &&
        (!need_window || pn__recovery_can_send(&p->rec, s))) {
      p->socket_rr = s;
      return true;
    }
  }
  return false;
}

/* An acknowledgement through each socket of the mask not yet proven, at
 * most once per RTO (and 20 ms): the remote answers it with a challenge
 * to that address, and the answer, once acknowledged, proves it.
 * Acknowledgements are not in flight, so one the remote does not act on
 * costs nothing. */
static void probe_sockets(pn_peer *p, pn__scratch *sc, uint64_t now) {
  sockets_proven(p);
  uint32_t unproven = p->sockets_mask & ~p->sockets_ok;
  uint64_t gap = p->rec.rto_ns > 20000000u ? p->rec.rto_ns : 20000000u;
  if (!unproven || now - p->sockets_probe_ns < gap) {
    return;
  }
  p->sockets_probe_ns = now;
  uint32_t keep = p->socket_rr;
  bool ping = p->ping_owed;
  for (uint32_t s = 0; s < p->host->nsockets; s++) {
    if (unproven >> s & 1u) {
      p->socket_rr = s;
      /* Once the remote challenged it, a ping: what it acts on it
       * acknowledges, which proves the socket here. Before, a ping it
       * does not act on would count as a loss. */
      p->ping_owed =
          (p->sockets_challenged >> s & 1u) && pn__recovery_room(&p->rec);
      send_packet(p, sc, NULL, 0, now);
    }
  }
  p->socket_rr = keep;
  p->ping_owed = ping;
}

void pn__peer_send_challenge(pn_peer *p, pn__scratch *sc, uint32_t socket,
                             const pn_addr *to, uint64_t token) {
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  uint64_t now = pn__now_ns();
  put_acks(p, &pk, now);
  pk.path_challenge = token;
  /* Not eliciting: nothing waits for its acknowledgement. */
  size_t len = seal_unelicited(p, sc, &pk, socket, now);
  pn__host_send(p->host, socket, to, sc->buf, len);
  pn__stat_add(&p->st_dg_out, 1);
  pn__stat_add(&p->st_bytes_out, len);
  pn__stat_add(&p->st_challenges, 1);
}

static size_t frame_size(const pn__outmsg *om, uint32_t frag) {
  uint32_t len = (uint32_t)om->pkt->len;
  if (om->frag_count == 1) {
    return pn__frame_wire_size(om->channel, om->seq, 0, 1, 0, len);
  }
  return pn__frame_wire_size(om->channel, om->seq, frag, om->frag_count, len,
                             pn__frag_len(len, om->frag_count, frag));
}

static bool frame_fits(const pn__outmsg *om, void *ctx) {
  return frame_size(om, om->next_frag) <= *(const size_t *)ctx;
}

/* Pacing to send_rate: a token bucket of bytes, refilled at the rate and
 * holding at most PACE_BURST_NS of it (at least two datagrams). A
 * datagram with frames waits until the bucket is not negative; one may
 * overdraw it. Acknowledgements and pings are never held back. */
uint64_t pn__peer_pace_burst(const pn_peer *p) {
  uint64_t b = p->send_rate * PACE_BURST_NS / 1000000000u;
  uint64_t min = 2u * p->host->mtu;
  return b > min ? b : min;
}

static bool pace_ready(pn_peer *p, uint64_t now) {
  if (!p->send_rate) {
    return true;
  }
  if (now - p->pace_ns >= PACE_BURST_NS + 1000000000u) {
    p->pace_ns = now; /* long idle: a full bucket (and no overflow) */
    p->pace_tokens = (int64_t)pn__peer_pace_burst(p);
    return true;
  }
  uint64_t add = (now - p->pace_ns) * p->send_rate / 1000000000u;
  if (add) {
    /* Advance only by the time the bytes added stand for, so fractions
     * are not lost at high refill frequency. */
    p->pace_ns += add * 1000000000u / p->send_rate;
    int64_t t = p->pace_tokens + (int64_t)add;
    int64_t burst = (int64_t)pn__peer_pace_burst(p);
    p->pace_tokens = t > burst ? burst : t;
  }
  return p->pace_tokens >= 0;
}

/* When the bucket is back at zero (for the timer). */
uint64_t pn__peer_pace_at(const pn_peer *p) {
  if (!p->send_rate || p->pace_tokens >= 0) {
    return 0;
  }
  return p->pace_ns + (uint64_t)(-p->pace_tokens) * 1000000000u / p->send_rate +
         1;
}

/* Tests only (pn_host.test_withhold): whether om is the message to keep
 * back, started but unsent (as if every copy were lost); flush moves it
 * (and the queue's reference) to p->withheld, and it goes back at the
 * head of its channel's queue once the test lets it go. */
static bool to_withhold(const pn_peer *p, const pn__outmsg *om, uint64_t seq) {
  return seq && om->next_frag == 0 && om->channel == 0 && om->seq == seq &&
         !p->withheld;
}

static void withhold_release(pn_peer *p, uint64_t seq) {
  pn__outmsg *om = p->withheld;
  if (om && om->seq != seq) {
    p->withheld = NULL;
    pn__sendq_push_front(&p->sendq, om);
  }
}

/* A blocked sender with nothing in flight pings, so that an
 * acknowledgement brings the receiver's window (flow.h). */
static void probe_window(pn_peer *p, pn__scratch *sc, uint64_t now) {
  if (!pn__flow_probe_due(&p->flow, p->rec.in_flight, now) ||
      !pn__recovery_room(&p->rec) || !fq_reserve(&p->frefs, PN__MAX_FRAMES)) {
    return;
  }
  p->ping_owed = true;
  send_packet(p, sc, NULL, 0, now);
  pn__flow_probed(&p->flow, now, pn__recovery_rto(&p->rec), p->keepalive_ns);
}

/* Coalesces resent and new frames into datagrams up to the MTU while the
 * congestion window and the peer's receive window allow, and sends what
 * acknowledgements, pings and disconnects are owed. A frame due for its
 * retransmit_limit + 1-th resend closes the peer instead. */
void pn__peer_flush(pn_peer *p, pn__scratch *sc) {
  pn_peer_state st = pn__peer_state(p);
  if (st != PN_PEER_CONNECTED && st != PN_PEER_DISCONNECTING) {
    return;
  }
  pn_host *h = p->host;
  uint64_t now = pn__now_ns();
  size_t budget = h->mtu - PN__DATA_OVERHEAD - PN__PACKET_FIELDS_MAX;
  pn__fref frames[PN__MAX_FRAMES];
  uint64_t held_back =
      atomic_load_explicit(&h->test_withhold, memory_order_relaxed);
  bool no_window =
      atomic_load_explicit(&h->test_ignore_window, memory_order_relaxed);
  withhold_release(p, held_back);
  /* Before the ordinary acknowledgement: it names datagrams newer than
   * these on the same path, which the sender's gap rule would otherwise
   * take as a sign these were lost. */
  send_late_acks(p, sc, now);
  bool over = false; /* a frame reached the retransmit limit */
  /* Whole flushes of at least PN__SOCKET_RUN datagrams per socket, not
   * one datagram each: every socket actor sends its batch at the end of
   * its own run, so the sockets' batches may arrive in either order. Each
   * switch can reorder what a sequenced channel delivers (older messages
   * dropped as stale) and what the gap rule sees; few switches keep that
   * rare while the sockets still share the load evenly. */
  if (p->rec.next_seq - p->socket_run >= PN__SOCKET_RUN) {
    sockets_proven(p);
    (void)move_socket(p, false);
    p->socket_run = p->rec.next_seq;
  }
  /* If this socket's path has a full window, another whose has room takes
   * the flush (a slower or narrower path leaves the rest to the others).
   * Only here: a flush sends through one socket, as each switch lets the
   * sockets' batches cross on their way. */
  if (!pn__recovery_can_send(&p->rec, p->socket_rr) && move_socket(p, true)) {
    p->socket_run = p->rec.next_seq;
  }
  for (;;) {
    uint32_t n = 0;
    size_t used = 0;
    bool room = st == PN_PEER_CONNECTED && !over && pace_ready(p, now) &&
                pn__recovery_can_send(&p->rec, p->socket_rr) &&
                fq_reserve(&p->frefs, PN__MAX_FRAMES);
    while (room && p->rtx.head < p->rtx.tail && n < PN__MAX_FRAMES) {
      pn__fref *f = fq_at(&p->rtx, p->rtx.head);
      if (f->om->resolved || frag_acked(f->om, f->frag)) {
        pn__outmsg_unref(f->om);
        p->rtx.head++;
        continue;
      }
      if (f->retries >= h->retransmit_limit) {
        over = true;
        break;
      }
      size_t sz = frame_size(f->om, f->frag);
      if (used + sz > budget) {
        break;
      }
      used += sz;
      frames[n] = *f; /* its reference moves to the datagram */
      frames[n++].retries++;
      p->rtx.head++;
      pn__stat_add(&p->st_retransmits, 1);
      pn__tr(pn__worker_current(h->rt), PN__TR_RETRANSMIT, p->id, f->om->seq);
    }
    /* Resends never wait for the receive window: what they carry was
     * counted when it first left. */
    /* New frames, one per channel in turn: a message of many fragments
     * shares the datagrams with the other channels' (sendq.h). A frame
     * that does not fit starts the next datagram, and the other channels'
     * fill this one. */
    pn__outmsg *om;
    while (room && !over && n < PN__MAX_FRAMES &&
           (om = pn__sendq_peek(&p->sendq))) {
      size_t sz = frame_size(om, om->next_frag);
      bool other = used + sz > budget;
      if (other) {
        size_t left = budget - used;
        om = pn__sendq_peek_other(&p->sendq, frame_fits, &left);
        if (!om || to_withhold(p, om, held_back)) {
          break;
        }
        sz = frame_size(om, om->next_frag);
      }
      /* A message starts (its cost counted against the window) when its
       * first frame leaves: first_sent_ns is 0 until then. */
      if (!om->first_sent_ns) {
        uint64_t cost = pn__flow_cost((pn_channel_kind)om->kind, om->frag_count,
                                      om->pkt->len);
        if (!no_window && !pn__flow_may_start(&p->flow, cost)) {
          break; /* the receiver could not hold it: wait for the window */
        }
        pn__flow_started(&p->flow, cost);
        om->first_sent_ns = now;
      }
      if (to_withhold(p, om, held_back)) {
        p->withheld = pn__sendq_take(&p->sendq);
        continue;
      }
      used += sz;
      om_ref(om);
      frames[n].om = om;
      frames[n].frag = om->next_frag++;
      frames[n].retries = 0;
      n++;
      bool done = om->next_frag == om->frag_count;
      if (other) {
        pn__sendq_next_other(&p->sendq, om, done);
      } else {
        pn__sendq_next(&p->sendq, done);
      }
      if (done) {
        pn__outmsg_unref(om); /* the queue's reference */
      }
    }
    bool owed = p->ping_owed || p->disconnect_owed;
    if (!n && !owed && !p->ack_owed && !p->path_response_owed) {
      break;
    }
    if (!n && owed &&
        !(pn__recovery_room(&p->rec) &&
          fq_reserve(&p->frefs, PN__MAX_FRAMES))) {
      p->ping_owed = p->disconnect_owed = false; /* retried by the timer */
      if (!p->ack_owed && !p->path_response_owed) {
        break;
      }
    }
    send_packet(p, sc, frames, n, now);
    if (!n) {
      break;
    }
  }
  if (over) {
    pn__peer_close(p, PN_REASON_RETRANSMIT_LIMIT, false);
    return;
  }
  if (st == PN_PEER_CONNECTED) {
    probe_window(p, sc, now);
    probe_sockets(p, sc, now);
  }
  atomic_store_explicit(&p->st_send_window, pn__flow_window(&p->flow),
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_in_flight, p->rec.in_flight,
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_cwnd, pn__recovery_cwnd(&p->rec),
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_ssthresh, pn__recovery_ssthresh(&p->rec),
                        memory_order_relaxed);
}

/* PN_MSG_PEER_WRITABLE once a sender that got PN_EAGAIN may go on. Both
 * sides use seq_cst (here the RMW giving back the run's acknowledged bytes,
 * before the load of the flag; there the flag's store before its load of
 * the bytes):
 * either this sees the flag, or the sender sees the bytes gone and pokes
 * the peer to look again. */
void pn__peer_check_writable(pn_peer *p) {
  /* seq_cst: pairs with the seq_cst load of queued_bytes in send_om()
   * (channel.c), which comes after its seq_cst store of want_writable. */
  uint64_t queued = atomic_fetch_sub_explicit(&p->queued_bytes, p->unqueued,
                                              memory_order_seq_cst) -
                    p->unqueued;
  p->unqueued = 0;
  /* seq_cst: pairs with the seq_cst store of want_writable in send_om()
   * (channel.c). With the subtraction before it, either this sees that
   * store or send_om() sees the subtraction and pokes us. The exchange
   * only claims the flag (one event per PN_EAGAIN): relaxed. */
  if (atomic_load_explicit(&p->want_writable, memory_order_seq_cst) &&
      queued <= p->host->max_queued / 2 &&
      atomic_exchange_explicit(&p->want_writable, 0, memory_order_relaxed)) {
    pn__peer_emit(p, PN_MSG_PEER_WRITABLE);
  }
}

/* --- acknowledgements and loss ------------------------------------------- */

static void frame_acked(pn_peer *p, pn__fref f, uint64_t now) {
  pn__outmsg *om = f.om;
  if (!om->resolved && !frag_acked(om, f.frag)) {
    if (om->frag_count > 1) {
      om->acked[f.frag / 64] |= 1ull << (f.frag % 64);
    }
    if (++om->frags_acked == om->frag_count) {
      resolved_unqueue(p, om);
      pn__peer_emit_message(p, PN_MSG_PEER_ACKED, om, now);
    }
  }
  outmsg_unref_acked(p, om);
}

/* A frame of a datagram declared lost: a reliable one is resent at once
 * (a copy, with a reference of its own, joins the resend queue; the
 * datagram keeps its frame until the loss is final or proves spurious). */
static void frame_suspect(pn_peer *p, pn__fref f) {
  pn__outmsg *om = f.om;
  if (om->reliable && !om->resolved && !frag_acked(om, f.frag) &&
      fq_push(&p->rtx, f)) {
    om_ref(om);
  }
}

/* A frame whose datagram is lost for good: an unreliable message is
 * reported lost (a reliable one lives on in its resend). */
static void frame_lost(pn_peer *p, pn__fref f, uint64_t now) {
  pn__outmsg *om = f.om;
  if (!om->reliable && !om->resolved) {
    resolved_unqueue(p, om);
    pn__peer_emit_message(p, PN_MSG_PEER_LOST, om, now);
  }
  pn__outmsg_unref(om);
}

/* A datagram resolved by recovery.c: its frames are acknowledged (ACKED,
 * or LATE: declared lost, then named by a later acknowledgement), resent
 * (SUSPECT) or lost (LOST); an acknowledged goodbye ends DISCONNECTING
 * (one declared lost is sent again by the timer). Only a final loss
 * counts in the loss figure. */
static void datagram_resolved(void *ctx, const pn__sent *e, pn__resolution res,
                              uint64_t now) {
  pn_peer *p = ctx;
  if (res == PN__RES_SUSPECT) {
    for (uint32_t i = 0; i < e->nframes; i++) {
      frame_suspect(p, *fq_at(&p->frefs, e->fstart + i));
    }
    return;
  }
  bool acked = res != PN__RES_LOST;
  if (acked) {
    pn__tr(pn__worker_current(p->host->rt), PN__TR_ACK, p->id, e->seq);
    p->disconnect_acked |= e->disconnect;
  }
  pn__stat_add(acked ? &p->st_acked_dg : &p->st_lost, 1);
  for (uint32_t i = 0; i < e->nframes; i++) {
    pn__fref f = *fq_at(&p->frefs, e->fstart + i);
    if (acked) {
      frame_acked(p, f, now);
    } else {
      frame_lost(p, f, now);
    }
  }
}

/* The frames of datagrams no longer in flight leave the deque. */
static void advance_frames(pn_peer *p) {
  p->frefs.head = pn__recovery_advance(&p->rec, p->frefs.tail);
}

static void publish_rtt(pn_peer *p) {
  const pn__recovery *r = &p->rec;
  atomic_store_explicit(&p->st_srtt, r->srtt_ns / 1000, memory_order_relaxed);
  atomic_store_explicit(&p->st_rttvar, r->rttvar_ns / 1000,
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_min_rtt, r->min_rtt_ns / 1000,
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_rto, r->rto_ns / 1000, memory_order_relaxed);
}

void pn__peer_on_acks(pn_peer *p, uint64_t ack, const uint64_t bits[2],
                      uint32_t delay_us, uint64_t now) {
  uint32_t flags = pn__recovery_on_ack(&p->rec, ack, bits, delay_us, now,
                                       datagram_resolved, p);
  if (flags & PN__ACK_RTT) {
    publish_rtt(p);
  }
  advance_frames(p);
  if (flags & PN__ACK_NEW) {
    /* Heard back: the ack timeout starts again, or stops when nothing
     * waits (resends and new messages wait too). */
    bool waiting = p->rec.in_flight || p->rtx.head < p->rtx.tail ||
                   !pn__sendq_empty(&p->sendq);
    p->unacked_since_ns = waiting ? now : 0;
  }
  if (pn__peer_state(p) == PN_PEER_DISCONNECTING && p->disconnect_acked) {
    pn__peer_close(p, p->reason, false); /* the goodbye was acknowledged */
  }
}

void pn__peer_on_rto(pn_peer *p, uint64_t now) {
  bool lost = pn__recovery_on_rto(&p->rec, now, datagram_resolved, p);
  advance_frames(p); /* suspects may have been settled either way */
  if (lost && p->rtx.head == p->rtx.tail) {
    p->ping_owed = true; /* probe, so acknowledgements resume */
  }
}

/* --- queueing and closing ------------------------------------------------ */

void pn__peer_enqueue(pn_peer *p, pn__outmsg *om) {
  pn_peer_state st = pn__peer_state(p);
  if (st != PN_PEER_CONNECTING && st != PN_PEER_CONNECTED) {
    return; /* the caller's reference lets it go */
  }
  size_t budget = p->host->mtu - PN__DATA_OVERHEAD - PN__PACKET_FIELDS_MAX;
  size_t len = om->pkt->len;
  if (pn__frame_wire_size(om->channel, om->seq, 0, 1, 0, len) <= budget) {
    om->frag_count = 1;
  } else {
    om->frag_count = pn__frag_count(len, pn__frag_payload_max(budget));
    om->acked = pn__calloc((om->frag_count + 63) / 64, sizeof *om->acked);
    if (!om->acked) {
      return;
    }
  }
  om_ref(om);
  pn__sendq_push(&p->sendq, om);
  pn__stat_add(&p->st_msgs_out, 1);
  /* One poke per run: the peer flushes everything queued at its batch
   * end, so messages sent together leave in full datagrams. */
  if (!p->poked) {
    p->poked = pn__send_parts(p->actor, PN__P_POKE, NULL, 0, NULL, 0) == PN_OK;
  }
}

/* Abandoned datagrams' frames let their messages go, silently. */
static void datagram_dropped(void *ctx, const pn__sent *e, pn__resolution res,
                             uint64_t now) {
  (void)res;
  (void)now;
  pn_peer *p = ctx;
  for (uint32_t i = 0; i < e->nframes; i++) {
    pn__outmsg_unref(fq_at(&p->frefs, e->fstart + i)->om);
  }
}

void pn__peer_drop_sends(pn_peer *p) {
  /* Acknowledged bytes a closing run had not given back yet. */
  atomic_fetch_sub_explicit(&p->queued_bytes, p->unqueued,
                            memory_order_relaxed);
  p->unqueued = 0;
  pn__recovery_abandon(&p->rec, datagram_dropped, p);
  p->frefs.head = p->frefs.tail;
  for (uint64_t i = p->rtx.head; i < p->rtx.tail; i++) {
    pn__outmsg_unref(fq_at(&p->rtx, i)->om);
  }
  p->rtx.head = p->rtx.tail;
  for (pn__outmsg *om; (om = pn__sendq_pop_any(&p->sendq));) {
    pn__outmsg_unref(om);
  }
  if (p->withheld) {
    pn__outmsg_unref(p->withheld);
    p->withheld = NULL;
  }
}
