/* The peer actor: one connection.
 *
 * States: CONNECTING (client: ConnectRequest, then ConnectResponse with the
 * server's cookie, retried every connect_retry until connect_timeout) ->
 * CONNECTED -> DISCONNECTING (a Packet with `disconnect` sent up to eight
 * times until acknowledged) -> DISCONNECTED (channels closed, then the
 * owner's PN_MSG_PEER_DISCONNECTED, the peer's last event, and the actor
 * stops).
 *
 * Messages: PN__P_START (client: the host gave it an id), PN__P_RECV (a
 * datagram routed by the host), PN__P_POKE (messages were queued with
 * pn__peer_enqueue: run, so the batch end sends them), PN__P_TICK (its one
 * timer), PN__P_DISCONNECT, PN__P_CHANNEL_DONE, PN_MSG_BATCH_END (flush:
 * frames coalesced into datagrams up to the MTU, acknowledgements
 * piggybacked; PN_MSG_PEER_WRITABLE when owed), PN_MSG_STOPPED.
 *
 * Reliability: every datagram has a sequence number and carries the
 * highest sequence received with a 64-bit bitmap of the ones before it. A
 * datagram is lost when one sent three later is acknowledged, or when the
 * RTO (RFC 6298, doubled per expiry, bounded) passes; its reliable frames
 * are queued again (frames, not datagrams, are resent) and its unreliable
 * messages are reported lost. A datagram whose frames the receiver cannot
 * hold (reassembly memory, duplicate window) is dropped whole and not
 * acknowledged, so nothing acknowledged is ever thrown away.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "actors/net_internal.h"
#include "runtime/actor.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/worker.h"

#define LOSS_THRESHOLD 3u   /* datagrams acknowledged after a lost one */
#define DISCONNECT_SENDS 8u /* tries before closing anyway */
#define KEEPALIVE_SLOTS 32u /* keepalive deadlines round up to 1/32 of it, */
#define KEEPALIVE_SLOT_MAX_NS 2000000u /* but to no more than 2 ms */
#define PARTIAL_EXPIRY_NS (5ull * 1000000000u)
#define COMPRESS_MIN 128u      /* bodies below this are sent as they are */
#define COMPRESS_MIN_DICT 24u  /* the same with a dictionary */
#define COMPRESS_MIN_SAVING 8u /* compress only when it saves 1/8 */
#define RXWIN_MAX_BITS (1ull << 22)
#define SENT_MIN 64u
#define CWND_ONE 1024u
#define QUEUE_DELAY_NS 2000000u /* 2 ms */
#define CWND_MIN 4u
#define CWND_INITIAL 32u
#define ACK_EVERY 32u /* datagrams received before an acknowledgement */
#define PACE_BURST_NS 10000000u /* the bucket holds 10 ms of the rate */

typedef struct recv_header {
  uint32_t socket;
  pn_addr from;
} recv_header;

static _Atomic uint64_t next_peer_id = 1;
static const uint8_t zeros[PN__HANDSHAKE_PAD];

static pn_peer_state state_of(const pn_peer *p) {
  return (pn_peer_state)atomic_load_explicit(&p->state, memory_order_relaxed);
}

static void set_state(pn_peer *p, pn_peer_state s) {
  atomic_store_explicit(&p->state, (uint32_t)s, memory_order_relaxed);
}

static bool kind_reliable(uint8_t kind) {
  return kind == PN_CHANNEL_RELIABLE || kind == PN_CHANNEL_ORDERED ||
         kind == PN_CHANNEL_RELIABLE_UNORDERED;
}

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
  pn__fref *items = malloc(ncap * sizeof *items);
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

void pn__outmsg_free(pn__outmsg *om) {
  if (om->pkt != pn__outmsg_inline_packet(om)) {
    pn_packet_release(om->pkt);
  }
  pn_peer *p = om->peer;
  free(om->acked);
  bool held = om->holds_peer;
  pn__block_free(p->host->rt, om);
  if (held) {
    pn_peer_release(p);
  }
}

void pn__outmsg_unref(pn__outmsg *om) {
  if (--om->refs) {
    return;
  }
  atomic_fetch_sub_explicit(&om->peer->queued_bytes, om->pkt->len,
                            memory_order_relaxed);
  pn__outmsg_free(om);
}

/* pn__outmsg_unref for an acknowledged message, in the peer's own run: its
 * bytes leave queued_bytes at the run's end (check_writable), so a run that
 * acknowledges hundreds of messages pays one atomic operation, not one
 * each. Until then senders see the queue fuller than it is, never
 * emptier. */
static void outmsg_unref_acked(pn_peer *p, pn__outmsg *om) {
  if (--om->refs) {
    return;
  }
  p->unqueued += om->pkt->len;
  pn__outmsg_free(om);
}

void pn__outmsg_unref_fn(void *data, void *ctx) {
  (void)ctx;
  pn__outmsg_unref(data);
}

static void om_ref(pn__outmsg *om) { om->refs++; }

static bool frag_acked(const pn__outmsg *om, uint32_t frag) {
  return om->frag_count == 1 ? om->frags_acked == 1
                             : (om->acked[frag / 64] >> (frag % 64)) & 1u;
}

/* --- lifetime ------------------------------------------------------------ */

static void drop_queues(pn_peer *p) {
  /* Acknowledged bytes a closing run had not given back yet. */
  atomic_fetch_sub_explicit(&p->queued_bytes, p->unqueued,
                            memory_order_relaxed);
  p->unqueued = 0;
  for (uint64_t s = p->oldest; s < p->next_seq; s++) {
    pn__sent *e = &p->sent[s & p->sent_mask];
    if (e->seq == s && e->in_flight) {
      for (uint32_t i = 0; i < e->nframes; i++) {
        pn__outmsg_unref(fq_at(&p->frefs, e->fstart + i)->om);
      }
      e->in_flight = false;
    }
  }
  p->oldest = p->next_seq;
  p->in_flight = 0;
  p->frefs.head = p->frefs.tail;
  for (uint64_t i = p->rtx.head; i < p->rtx.tail; i++) {
    pn__outmsg_unref(fq_at(&p->rtx, i)->om);
  }
  p->rtx.head = p->rtx.tail;
  while (p->newq) {
    pn__outmsg *om = p->newq;
    p->newq = om->next;
    pn__outmsg_unref(om);
  }
  p->newq_tail = NULL;
  while (p->partials) {
    pn__partial *q = p->partials;
    p->partials = q->next;
    pn_packet_release(q->pkt);
    free(q->have);
    free(q);
  }
  p->reassembly = 0;
}

static void registry_add(pn_peer *p);
static void registry_remove(pn_peer *p);

static void peer_free(pn_peer *p) {
  if (p->in_registry) {
    registry_remove(p);
  }
  drop_queues(p);
  if (p->goodbye) {
    pn__event_drop(p, p->goodbye); /* its creation failed */
  }
  for (uint32_t i = 0; i < p->nchannels; i++) {
    pn__rxwin_free(&p->channels[i].rx);
    pn_actor_release(p->channels[i].actor);
  }
  free(p->sent);
  free(p->frefs.items);
  free(p->rtx.items);
  pn_actor_release(p->actor);
  pn_actor_release(p->owner);
  pn__host_unref(p->host);
  pn__data_key_clear(&p->dkey);
  free(p);
}

void pn_peer_hold(pn_peer *peer) {
  if (peer) {
    atomic_fetch_add_explicit(&peer->refs, 1, memory_order_relaxed);
  }
}

void pn_peer_release(pn_peer *peer) {
  if (peer &&
      atomic_fetch_sub_explicit(&peer->refs, 1, memory_order_acq_rel) == 1) {
    peer_free(peer);
  }
}

/* --- sending datagrams --------------------------------------------------- */

static uint32_t next_socket(pn_peer *p) {
  uint32_t n = p->host->nsockets;
  for (uint32_t i = 1; i <= n; i++) {
    uint32_t s = (p->socket_rr + i) % n;
    if (p->sockets_mask >> s & 1u) {
      p->socket_rr = s;
      return s;
    }
  }
  return 0;
}

static void send_on(pn_peer *p, uint32_t socket, const uint8_t *data,
                    size_t len) {
  pn__host_send(p->host, socket, &p->addr, data, len);
  pn__stat_add(&p->st_dg_out, 1);
  pn__stat_add(&p->st_bytes_out, len);
  p->last_send_ns = pn__now_ns();
}

static void send_raw(pn_peer *p, const uint8_t *data, size_t len) {
  send_on(p, next_socket(p), data, len);
}

/* The lowest socket of the mask. The whole handshake leaves from it: the
 * server's cookie names the address it challenged, so a ConnectResponse
 * from another socket would be dropped. */
static uint32_t handshake_socket(const pn_peer *p) {
  uint32_t s = 0;
  while (s < 31 && !(p->sockets_mask >> s & 1u)) {
    s++;
  }
  return s;
}

/* Packs a handshake message with padding up to PN__HANDSHAKE_PAD bytes
 * when `pad` is set, seals it with the public key and sends it. */
static void send_handshake(pn_peer *p, uint8_t type, uint32_t conn_id,
                           ProtobufCMessage *m, ProtobufCBinaryData *padding) {
  uint8_t *buf = p->host->buf;
  if (padding) {
    padding->data = (uint8_t *)zeros;
    padding->len = 0;
    size_t base = PN__WIRE_OVERHEAD + protobuf_c_message_get_packed_size(m);
    while (base + 1 + pn__varint_len(padding->len) + padding->len <
           PN__HANDSHAKE_PAD) {
      padding->len++;
    }
  }
  pn__wire_put_header(buf, type, false, conn_id);
  size_t body = protobuf_c_message_pack(m, buf + PN__WIRE_HEADER);
  size_t len = pn__wire_seal(buf, PN__WIRE_HEADER + body, pn__wire_public_key);
  send_on(p, handshake_socket(p), buf, len);
  p->handshake_sent_ns = p->last_send_ns;
}

static void send_connect(pn_peer *p) {
  uint8_t kinds[PN_MAX_CHANNELS];
  for (uint32_t i = 0; i < p->nchannels; i++) {
    kinds[i] = (uint8_t)p->channels[i].kind;
  }
  if (!p->cookie_len) {
    Peernet__Wire__V1__ConnectRequest r =
        PEERNET__WIRE__V1__CONNECT_REQUEST__INIT;
    r.version = PN__WIRE_VERSION;
    r.client_id = p->local_id;
    r.client_nonce = p->client_nonce;
    r.channel_kinds.data = kinds;
    r.channel_kinds.len = p->nchannels;
    r.dict_hash = p->host->dict_hash;
    send_handshake(p, PN__T_CONNECT_REQUEST, 0, &r.base, &r.padding);
  } else {
    Peernet__Wire__V1__ConnectResponse r =
        PEERNET__WIRE__V1__CONNECT_RESPONSE__INIT;
    r.client_id = p->local_id;
    r.client_nonce = p->client_nonce;
    r.timestamp_ms = p->cookie_ts;
    r.cookie.data = p->cookie;
    r.cookie.len = p->cookie_len;
    r.channel_kinds.data = kinds;
    r.channel_kinds.len = p->nchannels;
    r.dict_hash = p->host->dict_hash;
    r.aes_gcm = p->host->aes_gcm;
    send_handshake(p, PN__T_CONNECT_RESPONSE, 0, &r.base, &r.padding);
  }
}

static void send_accept(pn_peer *p) {
  Peernet__Wire__V1__Accept a = PEERNET__WIRE__V1__ACCEPT__INIT;
  a.client_id = p->remote_id;
  a.client_nonce = p->client_nonce;
  a.server_id = p->local_id;
  a.server_nonce = p->server_nonce;
  a.aes_gcm = p->aes_gcm;
  send_handshake(p, PN__T_ACCEPT, p->remote_id, &a.base, NULL);
}

static void derive_key(pn_peer *p) {
  uint8_t in[8 + 8 + 4 + 4], key[PN__DATA_KEY_BYTES];
  uint32_t cid = p->is_client ? p->local_id : p->remote_id;
  uint32_t sid = p->is_client ? p->remote_id : p->local_id;
  memcpy(in, &p->client_nonce, 8);
  memcpy(in + 8, &p->server_nonce, 8);
  memcpy(in + 16, &cid, 4);
  memcpy(in + 20, &sid, 4);
  crypto_generichash(key, sizeof key, in, sizeof in, NULL, 0);
  pn__data_key_init(&p->dkey, key, p->aes_gcm);
  sodium_memzero(key, sizeof key);
}

static bool sent_room(pn_peer *p) {
  uint64_t need = p->next_seq - p->oldest + 1;
  if (need <= p->sent_mask + 1) {
    return true;
  }
  uint64_t cap = p->sent_mask + 1;
  if (cap >= 4ull * p->host->window) {
    return false;
  }
  uint64_t ncap = cap * 2;
  pn__sent *ns = calloc(ncap, sizeof *ns);
  if (!ns) {
    return false;
  }
  for (uint64_t s = p->oldest; s < p->next_seq; s++) {
    ns[s & (ncap - 1)] = p->sent[s & p->sent_mask];
  }
  free(p->sent);
  p->sent = ns;
  p->sent_mask = ncap - 1;
  return true;
}

/* Compresses body into zbuf's body when that pays; backs off for a
 * while after datagrams that do not shrink. Returns the body length used
 * and sets *out to the bytes to send. */
static size_t maybe_compress(pn_peer *p, size_t body, bool *zstd) {
  pn_host *h = p->host;
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
  const uint8_t *src = h->buf + PN__DATA_HEADER;
  uint8_t *dst = h->zbuf + PN__DATA_HEADER;
  size_t z = h->cdict ? ZSTD_compress_usingCDict(h->cctx, dst, body - 1, src,
                                                 body, h->cdict)
                      : ZSTD_compressCCtx(h->cctx, dst, body - 1, src, body, 1);
  /* It pays only when it saves at least an eighth: below that, the CPU it
   * costs (about half a sender's time on incompressible 64-byte messages)
   * buys too few bytes. */
  if (ZSTD_isError(z) || z > body - body / COMPRESS_MIN_SAVING) {
    p->compress_misses = p->compress_misses < 6 ? p->compress_misses + 1 : 6;
    p->compress_skip = 1u << p->compress_misses; /* 2 .. 64 datagrams */
    return body;
  }
  p->compress_misses = 0;
  *zstd = true;
  return z;
}

/* Builds and sends one DATA datagram from frames[0..n) and the owed
 * flags; records it when it will be acknowledged. */
static void send_packet(pn_peer *p, const pn__fref *frames, uint32_t n,
                        uint64_t now) {
  pn_host *h = p->host;
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
  /* pk.seq stays 0 (not encoded): the header carries the sequence. */
  pk.ack = p->rx_highest;
  pk.ack_bits = p->rx_bits;
  if (p->rx_highest) {
    uint64_t d = (now - p->rx_highest_ns) / 1000u;
    pk.ack_delay_us = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
  }
  pk.n_frames = n;
  pk.frames = fp;
  pk.ping = p->ping_owed;
  if (p->disconnect_owed) {
    pk.disconnect = true;
    pk.disconnect_reason = p->reason;
  }
  size_t body = pn__wire_encode_packet(&pk, h->buf + PN__DATA_HEADER);
  bool zstd;
  size_t sent_body = maybe_compress(p, body, &zstd);
  uint8_t *out = zstd ? h->zbuf : h->buf;
  pn__wire_put_data_header(out, zstd, p->remote_id, p->next_seq);
  size_t len = pn__data_seal(&p->dkey, p->is_client, p->next_seq, out,
                             PN__DATA_HEADER + sent_body);
  if (p->send_rate && n) {
    p->pace_tokens -= (int64_t)len;
  }
  pn__stat_add(&p->st_raw_out, body);
  pn__stat_add(&p->st_comp_out, sent_body);
  send_raw(p, out, len);
  bool eliciting = n > 0 || pk.ping || pk.disconnect;
  if (eliciting) {
    pn__sent *e = &p->sent[p->next_seq & p->sent_mask];
    e->seq = p->next_seq;
    e->sent_ns = now;
    e->fstart = p->frefs.tail;
    e->nframes = (uint16_t)n;
    e->bytes = (uint32_t)len;
    e->in_flight = true;
    e->eliciting = true;
    e->disconnect = pk.disconnect;
    e->window_used = (p->in_flight + 1) * 2 * CWND_ONE >= p->cwnd;
    for (uint32_t i = 0; i < n; i++) {
      (void)fq_push(&p->frefs, frames[i]); /* grown in flush beforehand */
    }
    p->in_flight++;
  } else {
    pn__stat_add(&p->st_acks_only, 1);
  }
  p->next_seq++;
  p->ack_owed = false;
  p->rx_unacked = 0;
  p->ping_owed = false;
  p->disconnect_owed = false;
}

static size_t frame_size(const pn__outmsg *om, uint32_t frag) {
  uint32_t len = (uint32_t)om->pkt->len;
  if (om->frag_count == 1) {
    return pn__frame_wire_size(om->channel, om->seq, 0, 1, 0, len);
  }
  return pn__frame_wire_size(om->channel, om->seq, frag, om->frag_count, len,
                             pn__frag_len(len, om->frag_count, frag));
}

/* Pacing to send_rate: a token bucket of bytes, refilled at the rate and
 * holding at most PACE_BURST_NS of it (at least two datagrams). A
 * datagram with frames waits until the bucket is not negative; one may
 * overdraw it. Acknowledgements and pings are never held back. */
static uint64_t pace_burst(const pn_peer *p) {
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
    p->pace_tokens = (int64_t)pace_burst(p);
    return true;
  }
  uint64_t add = (now - p->pace_ns) * p->send_rate / 1000000000u;
  if (add) {
    /* Advance only by the time the bytes added stand for, so fractions
     * are not lost at high refill frequency. */
    p->pace_ns += add * 1000000000u / p->send_rate;
    int64_t t = p->pace_tokens + (int64_t)add;
    int64_t burst = (int64_t)pace_burst(p);
    p->pace_tokens = t > burst ? burst : t;
  }
  return p->pace_tokens >= 0;
}

/* When the bucket is back at zero (for the timer). */
static uint64_t pace_at(const pn_peer *p) {
  if (!p->send_rate || p->pace_tokens >= 0) {
    return 0;
  }
  return p->pace_ns + (uint64_t)(-p->pace_tokens) * 1000000000u / p->send_rate +
         1;
}

/* Coalesces resent and new frames into datagrams up to the MTU while the
 * window allows, and sends what acknowledgements, pings and disconnects
 * are owed. */
static void flush(pn_peer *p) {
  pn_peer_state st = state_of(p);
  if (st != PN_PEER_CONNECTED && st != PN_PEER_DISCONNECTING) {
    return;
  }
  pn_host *h = p->host;
  uint64_t now = pn__now_ns();
  size_t budget = h->mtu - PN__DATA_OVERHEAD - PN__PACKET_FIELDS_MAX;
  pn__fref frames[PN__MAX_FRAMES];
  for (;;) {
    uint32_t n = 0;
    size_t used = 0;
    uint64_t cwnd = p->cwnd / CWND_ONE;
    bool room = st == PN_PEER_CONNECTED && pace_ready(p, now) &&
                p->in_flight < (cwnd < h->window ? cwnd : h->window) &&
                sent_room(p) && fq_reserve(&p->frefs, PN__MAX_FRAMES);
    while (room && p->rtx.head < p->rtx.tail && n < PN__MAX_FRAMES) {
      pn__fref *f = fq_at(&p->rtx, p->rtx.head);
      if (f->om->resolved || frag_acked(f->om, f->frag)) {
        pn__outmsg_unref(f->om);
        p->rtx.head++;
        continue;
      }
      size_t sz = frame_size(f->om, f->frag);
      if (used + sz > budget) {
        break;
      }
      used += sz;
      frames[n++] = *f; /* its reference moves to the datagram */
      p->rtx.head++;
      pn__stat_add(&p->st_retransmits, 1);
      pn__tr(pn__worker_current(h->rt), PN__TR_RETRANSMIT, p->id, f->om->seq);
    }
    while (room && p->newq && n < PN__MAX_FRAMES) {
      pn__outmsg *om = p->newq;
      size_t sz = frame_size(om, om->next_frag);
      if (used + sz > budget) {
        break;
      }
      used += sz;
      if (om->next_frag == 0) {
        om->first_sent_ns = now;
      }
      om_ref(om);
      frames[n].om = om;
      frames[n].frag = om->next_frag++;
      n++;
      if (om->next_frag == om->frag_count) {
        p->newq = om->next;
        if (!p->newq) {
          p->newq_tail = NULL;
        }
        pn__outmsg_unref(om); /* the queue's reference */
      }
    }
    bool owed = p->ping_owed || p->disconnect_owed;
    if (!n && !owed && !p->ack_owed) {
      break;
    }
    if (!n && owed &&
        !(sent_room(p) && fq_reserve(&p->frefs, PN__MAX_FRAMES))) {
      p->ping_owed = p->disconnect_owed = false; /* retried by the timer */
      if (!p->ack_owed) {
        break;
      }
    }
    send_packet(p, frames, n, now);
    if (!n) {
      break;
    }
  }
  atomic_store_explicit(&p->st_in_flight, p->in_flight, memory_order_relaxed);
  atomic_store_explicit(&p->st_cwnd, p->cwnd / CWND_ONE, memory_order_relaxed);
  atomic_store_explicit(&p->st_ssthresh,
                        p->ssthresh == UINT64_MAX ? 0 : p->ssthresh / CWND_ONE,
                        memory_order_relaxed);
}

/* --- events -------------------------------------------------------------- */

static void emit(pn_peer *p, pn_msg *m) {
  if (m) {
    pn__event_send(p->owner, m);
  }
}

static void emit_simple(pn_peer *p, uint32_t type) {
  pn__event *e;
  emit(p, pn__event_new(type, p, &e));
}

static void emit_message_event(pn_peer *p, uint32_t type, const pn__outmsg *om,
                               uint64_t now) {
  if (!p->delivery_events) {
    return;
  }
  pn__event *e;
  pn_msg *m = pn__event_new(type, p, &e);
  if (m) {
    e->ev.channel = om->channel;
    e->ev.kind = (pn_channel_kind)om->kind;
    e->ev.ch = &p->channels[om->channel];
    e->ev.msg_id = om->msg_id;
    e->ev.rtt_us = (now - om->first_sent_ns) / 1000u;
  }
  emit(p, m);
}

/* PN_MSG_PEER_WRITABLE once a sender that got PN_EAGAIN may go on. Both
 * sides use seq_cst (here the RMW giving back the run's acknowledged bytes,
 * before the load of the flag; there the flag's store before its load of
 * the bytes):
 * either this sees the flag, or the sender sees the bytes gone and pokes
 * the peer to look again. */
static void check_writable(pn_peer *p) {
  uint64_t queued = atomic_fetch_sub_explicit(&p->queued_bytes, p->unqueued,
                                              memory_order_seq_cst) -
                    p->unqueued;
  p->unqueued = 0;
  if (atomic_load_explicit(&p->want_writable, memory_order_seq_cst) &&
      queued <= p->host->max_queued / 2 &&
      atomic_exchange_explicit(&p->want_writable, 0, memory_order_relaxed)) {
    emit_simple(p, PN_MSG_PEER_WRITABLE);
  }
}

/* --- closing ------------------------------------------------------------- */

static void cancel_timer(pn_peer *p) {
  pn_timer_cancel(p->timer);
  p->timer = NULL;
  p->timer_at = 0;
}

static void finish(pn_peer *p) {
  pn_msg *m = p->goodbye;
  p->goodbye = NULL;
  if (!m) {
    return; /* already said */
  }
  pn__event *e = (pn__event *)pn_msg_data(m);
  e->ev.reason = p->reason;
  e->ev.remote = p->reason_remote;
  e->holds_peer = true; /* the earlier events borrow p: see pn__event */
  pn_peer_hold(p);
  emit(p, m);
  (void)pn_actor_stop(p->actor);
}

/* Ends the connection: nothing more is sent or delivered; the owner hears
 * of it once every channel has delivered what it had. */
static void close_peer(pn_peer *p, uint32_t reason, bool remote) {
  if (p->gone) {
    return;
  }
  p->gone = true;
  p->reason = reason;
  p->reason_remote = remote;
  set_state(p, PN_PEER_DISCONNECTED);
  cancel_timer(p);
  drop_queues(p);
  pn__host_forget(p->host, p);
  p->channels_open = 0;
  for (uint32_t i = 0; i < p->nchannels; i++) {
    if (pn__send_parts(p->channels[i].actor, PN__C_CLOSE, NULL, 0, NULL, 0) ==
        PN_OK) {
      p->channels_open++;
    }
  }
  if (!p->channels_open) {
    finish(p);
  }
}

static void local_disconnect(pn_peer *p, uint32_t reason) {
  switch (state_of(p)) {
  case PN_PEER_CONNECTING:
    close_peer(p, reason, false);
    break;
  case PN_PEER_CONNECTED:
    set_state(p, PN_PEER_DISCONNECTING);
    p->reason = reason;
    p->reason_remote = false;
    drop_queues(p);
    p->disconnect_owed = true;
    p->disconnect_sends = 1;
    break;
  default:
    break;
  }
}

/* --- acknowledgements and loss ------------------------------------------- */

static void rtt_sample(pn_peer *p, uint64_t r) {
  pn_host *h = p->host;
  if (!p->srtt) {
    p->srtt = r;
    p->rttvar = r / 2;
  } else {
    uint64_t d = p->srtt > r ? p->srtt - r : r - p->srtt;
    p->rttvar = (3 * p->rttvar + d) / 4;
    p->srtt = (7 * p->srtt + r) / 8;
  }
  if (!p->min_rtt || r < p->min_rtt) {
    p->min_rtt = r;
  }
  uint64_t g = 1000000; /* clock granularity term of RFC 6298: 1 ms */
  uint64_t rto = p->srtt + (4 * p->rttvar > g ? 4 * p->rttvar : g);
  p->rto = rto < h->rto_min_ns   ? h->rto_min_ns
           : rto > h->rto_max_ns ? h->rto_max_ns
                                 : rto;
  atomic_store_explicit(&p->st_srtt, p->srtt / 1000, memory_order_relaxed);
  atomic_store_explicit(&p->st_rttvar, p->rttvar / 1000, memory_order_relaxed);
  atomic_store_explicit(&p->st_min_rtt, p->min_rtt / 1000,
                        memory_order_relaxed);
  atomic_store_explicit(&p->st_rto, p->rto / 1000, memory_order_relaxed);
}

static void frame_acked(pn_peer *p, pn__fref f, uint64_t now) {
  pn__outmsg *om = f.om;
  if (!om->resolved && !frag_acked(om, f.frag)) {
    if (om->frag_count > 1) {
      om->acked[f.frag / 64] |= 1ull << (f.frag % 64);
    }
    if (++om->frags_acked == om->frag_count) {
      om->resolved = true;
      emit_message_event(p, PN_MSG_PEER_ACKED, om, now);
    }
  }
  outmsg_unref_acked(p, om);
}

static void frame_lost(pn_peer *p, pn__fref f, uint64_t now) {
  pn__outmsg *om = f.om;
  if (om->reliable) {
    if (!om->resolved && !frag_acked(om, f.frag) && fq_push(&p->rtx, f)) {
      return; /* the reference moves to the resend queue */
    }
  } else if (!om->resolved) {
    om->resolved = true;
    emit_message_event(p, PN_MSG_PEER_LOST, om, now);
  }
  pn__outmsg_unref(om);
}

/* Congestion window in datagrams (fixed point, CWND_ONE = 1), Reno style:
 * slow start doubles it per round trip up to ssthresh, then it grows by
 * one datagram per round trip; a loss halves it once per round trip of
 * datagrams (those sent before the cut do not cut again); an RTO drops it
 * to the minimum. */
static void congestion_acked(pn_peer *p, bool window_used) {
  /* Grow only a window the sender uses (RFC 7661): an application that
   * sends little would otherwise inflate it to the cap, and after a loss
   * halve a window it never filled, so the cut would not slow it. Whether
   * it was used is judged when the datagram left (window_used), not now:
   * one acknowledgement can resolve dozens of datagrams, emptying the
   * window before the batch end refills it. */
  if (!window_used) {
    return;
  }
  if (p->cwnd < p->ssthresh) {
    p->cwnd += CWND_ONE;
  } else {
    p->cwnd += CWND_ONE * CWND_ONE / p->cwnd;
  }
  uint64_t max = (uint64_t)p->host->window * CWND_ONE;
  if (p->cwnd > max) {
    p->cwnd = max;
  }
}

static void congestion_lost(pn_peer *p, uint64_t seq, bool timeout) {
  if (timeout) {
    p->ssthresh =
        p->cwnd / 2 > CWND_MIN * CWND_ONE ? p->cwnd / 2 : CWND_MIN * CWND_ONE;
    p->cwnd = CWND_MIN * CWND_ONE;
    p->recovery_seq = p->next_seq;
    return;
  }
  if (seq < p->recovery_seq) {
    return; /* sent before the last cut: part of the same loss event */
  }
  p->cwnd =
      p->cwnd / 2 > CWND_MIN * CWND_ONE ? p->cwnd / 2 : CWND_MIN * CWND_ONE;
  p->ssthresh = p->cwnd;
  p->recovery_seq = p->next_seq;
}

/* Queueing delay as a congestion signal: a round trip more than
 * QUEUE_DELAY_NS (or min RTT, if larger) above the minimum means
 * datagrams wait in a queue (often the receiver's own backlog, which no
 * loss would ever reveal): shrink by an eighth, once per round trip. */
static void congestion_delay(pn_peer *p, uint64_t sample, uint64_t seq) {
  uint64_t allowance =
      p->min_rtt > QUEUE_DELAY_NS ? p->min_rtt : QUEUE_DELAY_NS;
  if (sample <= p->min_rtt + allowance || seq < p->recovery_seq) {
    return;
  }
  p->cwnd -= p->cwnd / 8;
  if (p->cwnd < CWND_MIN * CWND_ONE) {
    p->cwnd = CWND_MIN * CWND_ONE;
  }
  p->ssthresh = p->cwnd;
  p->recovery_seq = p->next_seq;
}

static void resolve(pn_peer *p, uint64_t seq, bool acked, uint64_t now) {
  pn__sent *e = &p->sent[seq & p->sent_mask];
  if (e->seq != seq || !e->in_flight) {
    return;
  }
  e->in_flight = false;
  p->in_flight--;
  if (acked) {
    pn__tr(pn__worker_current(p->host->rt), PN__TR_ACK, p->id, seq);
    /* Only an acknowledged goodbye ends DISCONNECTING early: one declared
     * lost is sent again by the timer. */
    p->disconnect_acked |= e->disconnect;
  }
  pn__stat_add(acked ? &p->st_acked_dg : &p->st_lost, 1);
  if (acked) {
    congestion_acked(p, e->window_used);
  } else {
    congestion_lost(p, seq, false);
  }
  for (uint32_t i = 0; i < e->nframes; i++) {
    pn__fref f = *fq_at(&p->frefs, e->fstart + i);
    if (acked) {
      frame_acked(p, f, now);
    } else {
      frame_lost(p, f, now);
    }
  }
}

static void advance_oldest(pn_peer *p) {
  while (p->oldest < p->next_seq) {
    pn__sent *e = &p->sent[p->oldest & p->sent_mask];
    if (e->seq == p->oldest && e->in_flight) {
      p->frefs.head = e->fstart;
      return;
    }
    p->oldest++;
  }
  p->frefs.head = p->frefs.tail;
}

static void on_acks(pn_peer *p, uint64_t ack, uint64_t bits, uint32_t delay_us,
                    uint64_t now) {
  if (!ack || ack >= p->next_seq) {
    return;
  }
  pn__sent *top = &p->sent[ack & p->sent_mask];
  if (top->seq == ack && top->in_flight && top->eliciting) {
    uint64_t r = now - top->sent_ns;
    uint64_t d = (uint64_t)delay_us * 1000u;
    uint64_t sample = r > d ? r - d : r;
    rtt_sample(p, sample);
    congestion_delay(p, sample, ack);
  }
  bool any = false;
  for (uint64_t i = 0; i <= 64 && ack >= p->oldest + i; i++) {
    if (i == 0 || (bits >> (i - 1) & 1u)) {
      pn__sent *e = &p->sent[(ack - i) & p->sent_mask];
      any |= e->seq == ack - i && e->in_flight;
      resolve(p, ack - i, true, now);
    }
  }
  if (any) {
    p->backoff = 0;
    p->last_ack_ns = now;
  }
  if (ack > p->largest_acked) {
    p->largest_acked = ack;
  }
  for (uint64_t s = p->oldest;
       s + LOSS_THRESHOLD <= p->largest_acked && s < p->next_seq; s++) {
    resolve(p, s, false, now);
  }
  advance_oldest(p);
  if (state_of(p) == PN_PEER_DISCONNECTING && p->disconnect_acked) {
    close_peer(p, p->reason, false); /* the disconnect was acknowledged */
  }
}

static uint64_t rto_now(const pn_peer *p) {
  uint64_t rto = p->rto;
  for (uint32_t i = 0; i < p->backoff && rto < p->host->rto_max_ns; i++) {
    rto *= 2;
  }
  return rto < p->host->rto_max_ns ? rto : p->host->rto_max_ns;
}

static void on_rto(pn_peer *p, uint64_t now) {
  uint64_t rto = rto_now(p);
  /* While acknowledgements keep coming, losses are found by the gap rule;
   * an RTO is for an acknowledgement stream that stopped. (A busy peer's
   * tick can also run before acknowledgements queued behind it.) */
  if (now - p->last_ack_ns < rto) {
    return;
  }
  bool any = false;
  for (uint64_t s = p->oldest; s < p->next_seq; s++) {
    pn__sent *e = &p->sent[s & p->sent_mask];
    if (e->seq == s && e->in_flight && e->sent_ns + rto <= now) {
      resolve(p, s, false, now);
      any = true;
    }
  }
  if (any) {
    advance_oldest(p);
    p->backoff++;
    congestion_lost(p, p->next_seq, true);
    if (p->rtx.head == p->rtx.tail) {
      p->ping_owed = true; /* probe, so acknowledgements resume */
    }
  }
}

/* --- receiving ----------------------------------------------------------- */

static pn__partial *find_partial(pn_peer *p, uint32_t ch, uint64_t seq) {
  for (pn__partial *q = p->partials; q; q = q->next) {
    if (q->channel == ch && q->seq == seq) {
      return q;
    }
  }
  return NULL;
}

static void free_partial(pn_peer *p, pn__partial *q) {
  for (pn__partial **pp = &p->partials; *pp; pp = &(*pp)->next) {
    if (*pp == q) {
      *pp = q->next;
      break;
    }
  }
  p->reassembly -= q->pkt->len;
  pn_packet_release(q->pkt);
  free(q->have);
  free(q);
}

/* Drops partial unreliable messages nobody will complete: older than the
 * newest complete one on a sequenced channel, or silent for too long. */
static void expire_partials(pn_peer *p, uint64_t now, uint32_t channel,
                            uint64_t newest) {
  pn__partial *q = p->partials;
  while (q) {
    pn__partial *next = q->next;
    uint8_t kind = (uint8_t)p->channels[q->channel].kind;
    bool stale =
        !kind_reliable(kind) && ((q->channel == channel && q->seq < newest &&
                                  kind == PN_CHANNEL_UNRELIABLE) ||
                                 now - q->touched_ns > PARTIAL_EXPIRY_NS);
    if (stale) {
      free_partial(p, q);
    }
    q = next;
  }
  atomic_store_explicit(&p->st_reassembly, p->reassembly, memory_order_relaxed);
}

/* Can every frame of the packet be taken? (see the top comment) */
static bool frames_fit(pn_peer *p, const Peernet__Wire__V1__Packet *pk) {
  uint64_t extra = 0;
  for (size_t i = 0; i < pk->n_frames; i++) {
    const Peernet__Wire__V1__Frame *f = pk->frames[i];
    pn_channel *ch = &p->channels[f->channel];
    bool reliable = kind_reliable((uint8_t)ch->kind);
    if (reliable && f->msg_seq >= ch->rx.base &&
        f->msg_seq - ch->rx.base >= RXWIN_MAX_BITS) {
      return false;
    }
    if (f->frag_count > 1 &&
        !(reliable && pn__rxwin_seen(&ch->rx, f->msg_seq)) &&
        !find_partial(p, f->channel, f->msg_seq)) {
      extra += f->msg_len; /* may count one message twice: errs safe */
      if (p->reassembly + extra > p->host->max_reassembly) {
        return false;
      }
    }
  }
  return true;
}

static void on_frame(pn_peer *p, const Peernet__Wire__V1__Frame *f,
                     uint64_t now) {
  pn_channel *ch = &p->channels[f->channel];
  bool reliable = kind_reliable((uint8_t)ch->kind);
  if (reliable && pn__rxwin_seen(&ch->rx, f->msg_seq)) {
    pn__stat_add(&p->st_dups, 1);
    return;
  }
  pn_packet *pkt;
  if (f->frag_count <= 1) {
    pkt = pn__packet_new(p->host->rt, f->payload.len);
    if (!pkt) {
      return;
    }
    memcpy(pkt->data, f->payload.data, f->payload.len);
  } else {
    pn__partial *q = find_partial(p, f->channel, f->msg_seq);
    if (!q) {
      q = calloc(1, sizeof *q);
      uint64_t words = (f->frag_count + 63) / 64;
      if (q) {
        q->have = calloc(words, sizeof *q->have);
        q->pkt = pn__packet_new(NULL, f->msg_len);
      }
      if (!q || !q->have || !q->pkt) {
        if (q) {
          free(q->have);
          free(q->pkt);
        }
        free(q);
        return;
      }
      q->channel = f->channel;
      q->seq = f->msg_seq;
      q->count = f->frag_count;
      q->next = p->partials;
      p->partials = q;
      p->reassembly += f->msg_len;
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
      atomic_store_explicit(&p->st_reassembly, p->reassembly,
                            memory_order_relaxed);
      return;
    }
    pkt = q->pkt;
    pn_packet_hold(pkt);
    free_partial(p, q);
    if (ch->kind == PN_CHANNEL_UNRELIABLE) {
      expire_partials(p, now, f->channel, f->msg_seq);
    }
  }
  if (reliable) {
    (void)pn__rxwin_mark(&ch->rx, f->msg_seq); /* room checked before */
  }
  pn__channel_receive(ch, f->msg_seq, pkt);
}

/* Notes the datagram sequence; false for a duplicate or one too old to
 * tell (replayed or duplicated by the network). */
static bool rx_seq(pn_peer *p, uint64_t seq, uint64_t now) {
  if (seq > p->rx_highest) {
    uint64_t shift = seq - p->rx_highest;
    p->rx_bits = shift >= 64 ? 0 : p->rx_bits << shift;
    if (p->rx_highest && shift <= 64) {
      p->rx_bits |= 1ull << (shift - 1);
    }
    p->rx_highest = seq;
    p->rx_highest_ns = now;
    return true;
  }
  uint64_t back = p->rx_highest - seq;
  if (back == 0 || back > 64 || (p->rx_bits >> (back - 1) & 1u)) {
    return false;
  }
  p->rx_bits |= 1ull << (back - 1);
  return true;
}

static void on_data(pn_peer *p, const uint8_t *data, size_t len,
                    const pn__wire_header *hdr) {
  pn_host *h = p->host;
  pn_peer_state st = state_of(p);
  if ((st != PN_PEER_CONNECTED && st != PN_PEER_DISCONNECTING) ||
      len < PN__DATA_OVERHEAD) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  uint64_t seq = pn__data_seq(data, p->rx_highest);
  if (!pn__data_verify(&p->dkey, !p->is_client, seq, data, len)) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  const uint8_t *body = data + PN__DATA_HEADER;
  size_t blen = len - PN__DATA_OVERHEAD;
  if (hdr->zstd) {
    size_t n =
        h->ddict ? ZSTD_decompress_usingDDict(h->dctx, h->zbuf, PN_DATAGRAM_MAX,
                                              body, blen, h->ddict)
                 : ZSTD_decompressDCtx(h->dctx, h->zbuf, PN_DATAGRAM_MAX, body,
                                       blen);
    if (ZSTD_isError(n)) {
      pn__stat_add(&p->st_bad, 1);
      return;
    }
    body = h->zbuf;
    blen = n;
  }
  h->arena_used = 0;
  Peernet__Wire__V1__Packet *pk = pn__wire_decode_packet(
      body, blen, p->nchannels, h->max_message, &h->arena_allocator);
  if (!pk) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  pk->seq = seq; /* the body's own field is not used (version 2) */
  uint64_t now = pn__now_ns();
  on_acks(p, pk->ack, pk->ack_bits, pk->ack_delay_us, now);
  if (p->gone) {
    h->arena_used = 0; /* the decoded packet lived in the arena */
    return;
  }
  /* A datagram whose frames cannot all be held is neither acknowledged
   * nor remembered: its sender will send those frames again. */
  if (!frames_fit(p, pk)) {
    /* resource limit, not bad input: not counted as either */
    if (pk->seq > p->rx_highest) {
      p->last_recv_ns = now;
    }
  } else if (!rx_seq(p, pk->seq, now)) {
    /* A replay does not count as hearing from the peer: an on-path
     * replayer must not keep a dead connection alive. */
    pn__stat_add(&p->st_dups, 1);
  } else {
    p->last_recv_ns = now;
    for (size_t i = 0; i < pk->n_frames; i++) {
      on_frame(p, pk->frames[i], now);
    }
    if (pk->n_frames || pk->ping || pk->disconnect) {
      p->ack_owed = true;
      /* An acknowledgement covers 65 datagrams: send one before more
       * arrive than it can name, or the sender declares them lost. */
      if (++p->rx_unacked >= ACK_EVERY) {
        flush(p);
      }
    }
    if (pk->disconnect) {
      uint32_t reason = pk->disconnect_reason;
      flush(p); /* the acknowledgement, so the other side closes at once */
      close_peer(p, reason, true);
    }
  }
  h->arena_used = 0; /* the decoded packet lived in the arena */
}

static void on_handshake_reply(pn_peer *p, const uint8_t *data, size_t len,
                               uint8_t type) {
  if (!p->is_client || state_of(p) != PN_PEER_CONNECTING ||
      !pn__wire_verify(data, len, pn__wire_public_key)) {
    pn__stat_add(&p->st_bad, 1);
    return;
  }
  const uint8_t *body = data + PN__WIRE_HEADER;
  size_t blen = len - PN__WIRE_OVERHEAD;
  if (type == PN__T_CHALLENGE) {
    Peernet__Wire__V1__Challenge *c =
        peernet__wire__v1__challenge__unpack(NULL, blen, body);
    if (c && c->client_id == p->local_id &&
        c->client_nonce == p->client_nonce && c->cookie.len &&
        c->cookie.len <= sizeof p->cookie) {
      memcpy(p->cookie, c->cookie.data, c->cookie.len);
      p->cookie_len = c->cookie.len;
      p->cookie_ts = c->timestamp_ms;
      send_connect(p);
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__challenge__free_unpacked(c, NULL);
  } else if (type == PN__T_ACCEPT) {
    Peernet__Wire__V1__Accept *a =
        peernet__wire__v1__accept__unpack(NULL, blen, body);
    if (a && a->client_id == p->local_id &&
        a->client_nonce == p->client_nonce && a->server_id &&
        (!a->aes_gcm || p->host->aes_gcm)) {
      p->aes_gcm = a->aes_gcm;
      p->remote_id = a->server_id;
      p->server_nonce = a->server_nonce;
      derive_key(p);
      set_state(p, PN_PEER_CONNECTED);
      p->last_recv_ns = pn__now_ns();
      emit_simple(p, PN_MSG_PEER_CONNECTED);
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__accept__free_unpacked(a, NULL);
  } else if (type == PN__T_REJECT) {
    Peernet__Wire__V1__Reject *r =
        peernet__wire__v1__reject__unpack(NULL, blen, body);
    if (r && r->client_id == p->local_id &&
        r->client_nonce == p->client_nonce) {
      close_peer(p, r->reason ? r->reason : PN_REASON_REFUSED, true);
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__reject__free_unpacked(r, NULL);
  }
}

static void on_recv(pn_peer *p, const pn_msg *msg) {
  if (pn_msg_size(msg) < sizeof(recv_header)) {
    return;
  }
  recv_header rh;
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
    on_data(p, data, len, &hdr);
  } else {
    on_handshake_reply(p, data, len, hdr.type);
  }
}

/* --- timer --------------------------------------------------------------- */

static uint64_t keepalive_slot(const pn_host *h) {
  uint64_t slot = h->keepalive_ns / KEEPALIVE_SLOTS;
  return slot < KEEPALIVE_SLOT_MAX_NS ? slot : KEEPALIVE_SLOT_MAX_NS;
}

static uint64_t slot_up(uint64_t t, uint64_t slot) {
  return slot ? (t + slot - 1) / slot * slot : t;
}

static uint64_t next_deadline(pn_peer *p) {
  const pn_host *h = p->host;
  advance_oldest(p); /* so sent[oldest] is the oldest datagram in flight */
  switch (state_of(p)) {
  case PN_PEER_CONNECTING: {
    if (!p->registered) {
      return p->start_ns + h->connect_timeout_ns; /* no id yet */
    }
    uint64_t retry = p->handshake_sent_ns + h->connect_retry_ns;
    uint64_t give_up = p->start_ns + h->connect_timeout_ns;
    return retry < give_up ? retry : give_up;
  }
  case PN_PEER_CONNECTED: {
    /* Keepalive and idle deadlines need no precision: rounded up to a slot
     * (keepalive/32, at most 2 ms), all the peers due in one slot are
     * served by one wake-up of the worker rather than one each. Larger
     * slots make bursts that overflow a socket's receive buffer. */
    uint64_t slot = keepalive_slot(h);
    uint64_t d = slot_up(p->last_recv_ns + h->idle_timeout_ns, slot);
    uint64_t k =
        slot_up((p->last_send_ns > p->ping_tried_ns ? p->last_send_ns
                                                    : p->ping_tried_ns) +
                    p->keepalive_ns,
                slot);
    d = k < d ? k : d;
    if (p->in_flight) {
      const pn__sent *e = &p->sent[p->oldest & p->sent_mask];
      uint64_t sent = e->sent_ns > p->last_ack_ns ? e->sent_ns : p->last_ack_ns;
      uint64_t r = sent + rto_now(p);
      d = r < d ? r : d;
    }
    uint64_t pace = pace_at(p);
    if (pace && (p->newq || p->rtx.head < p->rtx.tail)) {
      d = pace < d ? pace : d; /* frames wait for the bucket */
    }
    if (p->partials) {
      d = d < p->last_recv_ns + PARTIAL_EXPIRY_NS
              ? d
              : p->last_recv_ns + PARTIAL_EXPIRY_NS;
    }
    return d;
  }
  case PN_PEER_DISCONNECTING: {
    /* Each goodbye waits twice as long as the one before, up to 4 RTOs
     * (and rto_max): a receiver too busy to answer within one RTO, as
     * when thousands of peers close at once, still hears one of them, and
     * an unresponsive one holds the peer at most 27 RTOs. */
    uint64_t wait = rto_now(p);
    uint32_t sent = p->disconnect_sends;
    wait <<= sent > 3 ? 2 : (sent ? sent - 1 : 0);
    return p->last_send_ns + (wait < h->rto_max_ns ? wait : h->rto_max_ns);
  }
  default:
    return 0;
  }
}

static void arm_timer(pn_peer *p) {
  uint64_t at = next_deadline(p);
  if (!at || (p->timer && p->timer_at <= at)) {
    return;
  }
  cancel_timer(p);
  uint64_t now = pn__now_ns();
  /* At least 100 us: a deadline already past is handled by this tick, and
   * a mistake in one can never become a busy loop of ticks. */
  uint64_t delay = at > now + 100000 ? (at - now + 999) / 1000 : 100;
  if (pn_timer_start(p->actor, PN__P_TICK, delay, 0, &p->timer) == PN_OK) {
    p->timer_at = at;
  } else {
    p->timer = NULL;
  }
}

static void on_tick(pn_peer *p) {
  const pn_host *h = p->host;
  uint64_t now = pn__now_ns();
  switch (state_of(p)) {
  case PN_PEER_CONNECTING:
    if (now - p->start_ns >= h->connect_timeout_ns) {
      close_peer(p, PN_REASON_CONNECT_TIMEOUT, false);
    } else if (now - p->handshake_sent_ns >= h->connect_retry_ns &&
               p->registered) {
      send_connect(p);
    }
    break;
  case PN_PEER_CONNECTED:
    if (now - p->last_recv_ns >= h->idle_timeout_ns) {
      close_peer(p, PN_REASON_TIMEOUT, false);
      break;
    }
    on_rto(p, now);
    if (now - p->last_send_ns >= p->keepalive_ns &&
        now - p->ping_tried_ns >= p->keepalive_ns) {
      p->ping_owed = true;
      p->ping_tried_ns = now;
    }
    expire_partials(p, now, UINT32_MAX, 0);
    break;
  case PN_PEER_DISCONNECTING:
    if (now < next_deadline(p)) {
      break; /* a timer armed while connected: not a goodbye's turn */
    }
    if (p->disconnect_sends >= DISCONNECT_SENDS) {
      close_peer(p, p->reason, false);
    } else {
      p->disconnect_sends++;
      p->disconnect_owed = true;
    }
    break;
  default:
    break;
  }
}

/* --- the actor ----------------------------------------------------------- */

void pn__peer_enqueue(pn_peer *p, pn__outmsg *om) {
  pn_peer_state st = state_of(p);
  if (st != PN_PEER_CONNECTING && st != PN_PEER_CONNECTED) {
    return; /* the caller's reference lets it go */
  }
  size_t budget = p->host->mtu - PN__DATA_OVERHEAD - PN__PACKET_FIELDS_MAX;
  size_t len = om->pkt->len;
  if (pn__frame_wire_size(om->channel, om->seq, 0, 1, 0, len) <= budget) {
    om->frag_count = 1;
  } else {
    om->frag_count = pn__frag_count(len, pn__frag_payload_max(budget));
    om->acked = calloc((om->frag_count + 63) / 64, sizeof *om->acked);
    if (!om->acked) {
      return;
    }
  }
  om_ref(om);
  om->next = NULL;
  if (p->newq_tail) {
    p->newq_tail->next = om;
  } else {
    p->newq = om;
  }
  p->newq_tail = om;
  pn__stat_add(&p->st_msgs_out, 1);
  /* One poke per run: the peer flushes everything queued at its batch
   * end, so messages sent together leave in full datagrams. */
  if (!p->poked) {
    p->poked = pn__send_parts(p->actor, PN__P_POKE, NULL, 0, NULL, 0) == PN_OK;
  }
}

static void peer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pn_peer *p = state;
  uint32_t type = pn_msg_type(msg);
  if (type == PN_MSG_STOPPED) {
    cancel_timer(p);
    drop_queues(p);
    if (p->goodbye) {
      pn__event_drop(p, p->goodbye); /* stopped without finishing */
      p->goodbye = NULL;
    }
    if (!p->gone) {
      p->gone = true;
      set_state(p, PN_PEER_DISCONNECTED);
      pn__host_forget(p->host, p);
    }
    pn_peer_release(p); /* the actor's reference */
    return;
  }
  if (p->gone) {
    if (type == PN__P_CHANNEL_DONE && p->channels_open &&
        --p->channels_open == 0) {
      finish(p);
    }
    return;
  }
  switch (type) {
  case PN__P_START:
    p->start_ns = pn__now_ns();
    send_connect(p);
    break;
  case PN__P_RECV:
    on_recv(p, msg);
    break;
  case PN__P_POKE:
    p->poked = false;
    break;
  case PN__P_TICK:
    cancel_timer(p);
    on_tick(p);
    break;
  case PN__P_DISCONNECT: {
    uint32_t reason;
    memcpy(&reason, pn_msg_data(msg), sizeof reason);
    local_disconnect(p, reason);
    break;
  }
  case PN_MSG_BATCH_END:
    flush(p);
    check_writable(p);
    if (!p->gone) {
      arm_timer(p);
    }
    break;
  default:
    break;
  }
}

/* --- host-facing --------------------------------------------------------- */

void pn__peer_route(pn_peer *p, uint32_t socket, const pn_addr *from,
                    const uint8_t *data, size_t len) {
  recv_header rh = {socket, *from};
  /* PN_ECLOSED: the peer is stopping; the datagram has nobody to go to. */
  (void)pn__send_parts(p->actor, PN__P_RECV, &rh, sizeof rh, data, len);
}

void pn__peer_accepted(pn_peer *p) {
  derive_key(p);
  set_state(p, PN_PEER_CONNECTED);
  p->start_ns = p->last_recv_ns = pn__now_ns();
  send_accept(p);
  emit_simple(p, PN_MSG_PEER_CONNECTED);
}

void pn__peer_resend_accept(pn_peer *p, uint32_t socket) {
  (void)socket;
  if (state_of(p) == PN_PEER_CONNECTED) {
    send_accept(p);
  }
}

void pn__peer_close_request(pn_peer *p, uint32_t reason) {
  (void)pn__send_parts(p->actor, PN__P_DISCONNECT, &reason, sizeof reason, NULL,
                       0);
}

pn_err pn__peer_create(pn_host *h, const pn_peer_config *cfg, bool is_client,
                       pn_peer **out) {
  uint32_t nch = cfg->channel_count ? cfg->channel_count : 1;
  pn_peer *p = calloc(1, sizeof *p + nch * sizeof(pn_channel));
  if (!p) {
    return PN_ENOMEM;
  }
  p->sent = calloc(SENT_MIN, sizeof *p->sent);
  if (!p->sent) {
    free(p);
    return PN_ENOMEM;
  }
  atomic_init(&p->refs, 1);
  atomic_init(&p->state, PN_PEER_CONNECTING);
  p->sent_mask = SENT_MIN - 1;
  pn__host_ref(h);
  p->host = h;
  pn_actor_hold(cfg->owner);
  p->owner = cfg->owner;
  p->id = atomic_fetch_add(&next_peer_id, 1);
  p->user = cfg->user;
  p->addr = cfg->remote;
  p->sockets_mask = cfg->sockets_mask ? cfg->sockets_mask : 1u;
  p->is_client = is_client;
  if (is_client) {
    randombytes_buf(&p->client_nonce, sizeof p->client_nonce);
  }
  p->next_seq = 1;
  p->oldest = 1;
  p->rto = h->rto_initial_ns;
  p->cwnd = CWND_INITIAL * CWND_ONE;
  atomic_init(&p->st_cwnd, CWND_INITIAL);
  /* Each peer pings at its own interval, 3/4 of keepalive_us to one slot
   * less than all of it, so peers that connected together drift apart
   * instead of pinging in one burst; rounded up to next_deadline's slot
   * it is never longer than keepalive_us, which the other side's idle
   * timeout counts on. */
  uint64_t r;
  randombytes_buf(&r, sizeof r);
  p->keepalive_ns = h->keepalive_ns - h->keepalive_ns / 4 +
                    r % (h->keepalive_ns / 4 - keepalive_slot(h) + 1);
  p->send_rate = cfg->send_rate ? cfg->send_rate : h->send_rate;
  p->delivery_events = !cfg->no_delivery_events;
  p->pace_ns = p->start_ns;
  p->pace_tokens = (int64_t)pace_burst(p);
  p->ssthresh = UINT64_MAX;
  p->start_ns = p->last_send_ns = p->last_recv_ns = pn__now_ns();
  atomic_init(&p->st_comp_out, 0);
  p->nchannels = nch;
  for (uint32_t i = 0; i < nch; i++) {
    pn_channel *ch = &p->channels[i];
    ch->peer = p;
    ch->index = i;
    ch->kind = cfg->kinds ? cfg->kinds[i] : PN_CHANNEL_ORDERED;
    atomic_init(&ch->next_msg_id, 1);
    ch->next_seq = 1;
    ch->next_expected = 1;
    ch->rx.base = 1;
  }
  /* Reserved now, so the owner's last event is never missing (the
   * events before it borrow the peer on its strength). */
  pn__event *goodbye;
  p->goodbye = pn__event_new(PN_MSG_PEER_DISCONNECTED, p, &goodbye);
  pn_err err = p->goodbye ? PN_OK : PN_ENOMEM;
  uint32_t spawned = 0;
  for (; spawned < nch && err == PN_OK; spawned++) {
    err = pn__channel_spawn(p, &p->channels[spawned], h->home);
  }
  if (err == PN_OK) {
    pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
    acfg.name = "pn.peer";
    acfg.handler = peer_handler;
    acfg.state = p;
    acfg.home_worker = h->home;
    acfg.batch_end = true;
    pn_peer_hold(p); /* the actor's */
    err = pn_spawn(h->rt, &acfg, &p->actor);
    if (err != PN_OK) {
      pn_peer_release(p);
    }
  }
  if (err != PN_OK) {
    p->gone = true;
    set_state(p, PN_PEER_DISCONNECTED);
    for (uint32_t i = 0; i < nch; i++) {
      if (p->channels[i].actor) {
        (void)pn_actor_stop(p->channels[i].actor);
      }
    }
    pn_peer_release(p);
    return err;
  }
  registry_add(p);
  p->in_registry = true;
  *out = p;
  return PN_OK;
}

/* --- API ----------------------------------------------------------------- */

pn_err pn_peer_disconnect(pn_peer *peer, uint32_t reason) {
  if (!peer || reason >= PN_REASON_LIBRARY) {
    return PN_EINVAL;
  }
  if (state_of(peer) >= PN_PEER_DISCONNECTING) {
    return PN_ECLOSED;
  }
  if (pn__send_parts(peer->actor, PN__P_DISCONNECT, &reason, sizeof reason,
                     NULL, 0) != PN_OK) {
    return PN_ECLOSED;
  }
  return PN_OK;
}

pn_channel *pn_peer_channel(pn_peer *peer, uint32_t index) {
  return peer && index < peer->nchannels ? &peer->channels[index] : NULL;
}

uint32_t pn_peer_channel_count(const pn_peer *peer) {
  return peer ? peer->nchannels : 0;
}

uint64_t pn_peer_id(const pn_peer *peer) { return peer ? peer->id : 0; }

pn_err pn_peer_addr(const pn_peer *peer, pn_addr *out) {
  if (!peer || !out) {
    return PN_EINVAL;
  }
  *out = peer->addr;
  return PN_OK;
}

static void stats_fill(const pn_peer *peer, pn_peer_stats *out) {
  memset(out, 0, sizeof *out);
#define LD(f) atomic_load_explicit(&peer->f, memory_order_relaxed)
  out->state = state_of(peer);
  out->srtt_us = LD(st_srtt);
  out->rttvar_us = LD(st_rttvar);
  out->min_rtt_us = LD(st_min_rtt);
  out->rto_us = LD(st_rto);
  out->datagrams_out = LD(st_dg_out);
  out->bytes_out = LD(st_bytes_out);
  out->datagrams_in = LD(st_dg_in);
  out->bytes_in = LD(st_bytes_in);
  out->datagrams_lost = LD(st_lost);
  uint64_t resolved = out->datagrams_lost + LD(st_acked_dg);
  out->loss = resolved ? (double)out->datagrams_lost / (double)resolved : 0.0;
  out->retransmits = LD(st_retransmits);
  out->acks_only = LD(st_acks_only);
  out->messages_out = LD(st_msgs_out);
  out->messages_in = LD(st_msgs_in);
  out->duplicates = LD(st_dups);
  out->bad_datagrams = LD(st_bad);
  out->stale = LD(st_stale);
  out->raw_bytes_out = LD(st_raw_out);
  out->compressed_bytes_out = LD(st_comp_out);
  out->compression_ratio =
      out->compressed_bytes_out
          ? (double)out->raw_bytes_out / (double)out->compressed_bytes_out
          : 1.0;
  out->in_flight = LD(st_in_flight);
  out->queued_bytes = LD(queued_bytes);
  out->reassembly_bytes = LD(st_reassembly);
  out->cwnd = LD(st_cwnd);
  out->ssthresh = LD(st_ssthresh);
#undef LD
}

pn_err pn_peer_stats_get(const pn_peer *peer, pn_peer_stats *out) {
  if (!peer || !out) {
    return PN_EINVAL;
  }
  stats_fill(peer, out);
  return PN_OK;
}

/* --- the runtime's registry of peers (snapshots) ------------------------- */

static void registry_add(pn_peer *p) {
  pn_runtime *rt = p->host->rt;
  pthread_mutex_lock(&rt->reg_lock);
  p->reg_next = rt->peers;
  if (rt->peers) {
    rt->peers->reg_prev = p;
  }
  rt->peers = p;
  p->reg_prev = NULL;
  pthread_mutex_unlock(&rt->reg_lock);
}

static void registry_remove(pn_peer *p) {
  pn_runtime *rt = p->host->rt;
  pthread_mutex_lock(&rt->reg_lock);
  if (p->reg_prev) {
    p->reg_prev->reg_next = p->reg_next;
  } else {
    rt->peers = p->reg_next;
  }
  if (p->reg_next) {
    p->reg_next->reg_prev = p->reg_prev;
  }
  pthread_mutex_unlock(&rt->reg_lock);
}

void pn__peers_count_locked(pn_runtime *rt, size_t *peers, size_t *channels) {
  *peers = *channels = 0;
  for (pn_peer *p = rt->peers; p; p = p->reg_next) {
    (*peers)++;
    *channels += p->nchannels;
  }
}

void pn__peers_fill_locked(pn_runtime *rt, pn_peer_info *peers, size_t *npeers,
                           pn_channel_info *channels, size_t *nchannels) {
  size_t np = 0, nc = 0;
  for (pn_peer *p = rt->peers; p && np < *npeers; p = p->reg_next) {
    if (nc + p->nchannels > *nchannels) {
      break;
    }
    pn_peer_info *o = &peers[np++];
    memset(o, 0, sizeof *o);
    o->id = p->id;
    o->actor_id = pn_actor_id(p->actor);
    o->owner_id = pn_actor_id(p->owner);
    (void)pn_addr_format(&p->addr, o->remote, sizeof o->remote);
    o->is_client = p->is_client;
    o->channel_count = p->nchannels;
    stats_fill(p, &o->stats);
    for (uint32_t i = 0; i < p->nchannels; i++) {
      pn_channel_info *c = &channels[nc++];
      c->peer_id = p->id;
      c->actor_id = pn_actor_id(p->channels[i].actor);
      c->index = i;
      c->kind = (uint32_t)p->channels[i].kind;
    }
  }
  *npeers = np;
  *nchannels = nc;
}
