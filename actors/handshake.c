/* The handshake, both halves (see handshake.h for the exchange).
 *
 * Server half, on the host actor: nothing is allocated before the client
 * echoes a cookie, a keyed hash of what it sent and of the address it sent
 * from, so a spoofed source can only make the host answer to the address
 * it spoofed, with no more bytes than it sent. Client half, on the peer
 * actor: the request is retried every connect_retry until
 * connect_timeout (peer.c's timer). The DATA key is derived from the
 * nonces and connection ids once both sides know them.
 */
#include "actors/handshake.h"

#include <sodium.h>
#include <string.h>

#include "actors/event.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/worker.h"

#define COOKIE_BYTES 16u
#define COOKIE_LIFETIME_MS 10000u

/* --- server half ---------------------------------------------------------- */

static uint64_t now_ms(void) { return pn__now_ns() / 1000000u; }

static void make_cookie(const pn_host *h, const pn_addr *from,
                        uint32_t client_id, uint64_t nonce, uint64_t ts,
                        uint8_t out[COOKIE_BYTES]) {
  uint8_t in[2 + 2 + 4 + 16 + 4 + 8 + 8];
  size_t n = 0;
  memcpy(in + n, &from->family, 2);
  n += 2;
  memcpy(in + n, &from->port, 2);
  n += 2;
  memcpy(in + n, &from->scope_id, 4);
  n += 4;
  memcpy(in + n, from->ip, 16);
  n += 16;
  memcpy(in + n, &client_id, 4);
  n += 4;
  memcpy(in + n, &nonce, 8);
  n += 8;
  memcpy(in + n, &ts, 8);
  n += 8;
  crypto_generichash(out, COOKIE_BYTES, in, n, h->secret, sizeof h->secret);
}

/* Packs a handshake reply and sends it if it is no larger than the
 * request that caused it (never amplify). */
static void reply(pn_host *h, uint32_t socket, const pn_addr *to, uint8_t type,
                  uint32_t client_id, const ProtobufCMessage *m,
                  size_t request_len, uint8_t version) {
  size_t body = protobuf_c_message_get_packed_size(m);
  size_t len = PN__WIRE_OVERHEAD + body;
  if (len > request_len) {
    return;
  }
  uint8_t *buf = pn__host_scratch(h)->buf;
  pn__wire_put_header(buf, type, false, client_id);
  buf[0] = version; /* an old client reads only its own version */
  size_t packed = protobuf_c_message_pack(m, buf + PN__WIRE_HEADER);
  PN_ASSERT(packed == body); /* our own message, sized just above */
  len = pn__wire_seal(buf, PN__WIRE_HEADER + body, pn__wire_public_key);
  pn__host_send(h, socket, to, buf, len);
}

static void send_reject_in(pn_host *h, uint32_t socket, const pn_addr *to,
                           uint32_t client_id, uint64_t nonce, uint32_t reason,
                           size_t request_len, uint8_t version) {
  Peernet__Wire__V1__Reject r = PEERNET__WIRE__V1__REJECT__INIT;
  r.client_id = client_id;
  r.client_nonce = nonce;
  r.reason = reason;
  reply(h, socket, to, PN__T_REJECT, client_id, &r.base, request_len, version);
  pn__stat_add(&h->st_rejected, 1);
}

static void send_reject(pn_host *h, uint32_t socket, const pn_addr *to,
                        uint32_t client_id, uint64_t nonce, uint32_t reason,
                        size_t request_len) {
  send_reject_in(h, socket, to, client_id, nonce, reason, request_len,
                 PN__WIRE_VERSION);
}

static bool handshake_ok(pn_host *h, const uint8_t *data, size_t len) {
  return h->accept_owner && len >= PN__HANDSHAKE_PAD &&
         !atomic_load_explicit(&h->closing, memory_order_relaxed) &&
         pn__wire_verify(data, len, pn__wire_public_key);
}

static bool kinds_ok(const ProtobufCBinaryData *kinds) {
  if (kinds->len < 1 || kinds->len > PN_MAX_CHANNELS) {
    return false;
  }
  for (size_t i = 0; i < kinds->len; i++) {
    if (kinds->data[i] >= PN_CHANNEL_KINDS) {
      return false;
    }
  }
  return true;
}

/* --- keys and the Accept (the server peer sends it) ----------------------- */

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
static void send_handshake(pn_peer *p, pn__scratch *sc, uint8_t type,
                           uint32_t conn_id, ProtobufCMessage *m,
                           ProtobufCBinaryData *padding) {
  size_t len = pn__wire_pack_handshake(sc->buf, type, conn_id, m, padding,
                                       PN__HANDSHAKE_PAD);
  pn__peer_send_on(p, handshake_socket(p), sc->buf, len);
  p->handshake_sent_ns = p->last_send_ns;
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

static void send_accept(pn_peer *p, pn__scratch *sc) {
  Peernet__Wire__V1__Accept a = PEERNET__WIRE__V1__ACCEPT__INIT;
  a.client_id = p->remote_id;
  a.client_nonce = p->client_nonce;
  a.server_id = p->local_id;
  a.server_nonce = p->server_nonce;
  a.aes_gcm = p->aes_gcm;
  send_handshake(p, sc, PN__T_ACCEPT, p->remote_id, &a.base, NULL);
}

/* The server peer is accepted (on the host actor, the peer's worker):
 * keys, state, the Accept and the owner's event. */
static void peer_accepted(pn_peer *p, pn__scratch *sc) {
  derive_key(p);
  pn__peer_set_state(p, PN_PEER_CONNECTED);
  p->start_ns = p->last_recv_ns = pn__now_ns();
  send_accept(p, sc);
  pn__peer_emit(p, PN_MSG_PEER_CONNECTED);
}

/* --- server half: requests ------------------------------------------------ */

void pn__handshake_on_request(pn_host *h, uint32_t socket, const pn_addr *from,
                              const uint8_t *data, size_t len,
                              uint8_t version) {
  if (!handshake_ok(h, data, len)) {
    pn__stat_add(&h->st_hs_dropped, 1);
    return;
  }
  Peernet__Wire__V1__ConnectRequest *req =
      peernet__wire__v1__connect_request__unpack(NULL, len - PN__WIRE_OVERHEAD,
                                                 data + PN__WIRE_HEADER);
  if (!req || !req->client_id || !kinds_ok(&req->channel_kinds)) {
    pn__stat_add(&h->st_hs_dropped, 1);
  } else if (version != PN__WIRE_VERSION || req->version != PN__WIRE_VERSION) {
    send_reject_in(h, socket, from, req->client_id, req->client_nonce,
                   PN_REASON_VERSION, len, version);
  } else {
    uint8_t cookie[COOKIE_BYTES];
    Peernet__Wire__V1__Challenge c = PEERNET__WIRE__V1__CHALLENGE__INIT;
    c.client_id = req->client_id;
    c.client_nonce = req->client_nonce;
    c.timestamp_ms = now_ms();
    make_cookie(h, from, c.client_id, c.client_nonce, c.timestamp_ms, cookie);
    c.cookie.data = cookie;
    c.cookie.len = sizeof cookie;
    reply(h, socket, from, PN__T_CHALLENGE, c.client_id, &c.base, len,
          PN__WIRE_VERSION);
    pn__stat_add(&h->st_challenges, 1);
  }
  peernet__wire__v1__connect_request__free_unpacked(req, NULL);
}

static bool cookie_ok(const pn_host *h, const pn_addr *from,
                      const Peernet__Wire__V1__ConnectResponse *r) {
  uint64_t now = now_ms();
  if (r->cookie.len != COOKIE_BYTES || r->timestamp_ms > now ||
      now - r->timestamp_ms > COOKIE_LIFETIME_MS) {
    return false;
  }
  uint8_t want[COOKIE_BYTES];
  make_cookie(h, from, r->client_id, r->client_nonce, r->timestamp_ms, want);
  return crypto_verify_16(want, r->cookie.data) == 0;
}

static void accept_peer(pn_host *h, uint32_t socket, const pn_addr *from,
                        const Peernet__Wire__V1__ConnectResponse *r,
                        size_t len) {
  pn_channel_kind kinds[PN_MAX_CHANNELS];
  for (size_t i = 0; i < r->channel_kinds.len; i++) {
    kinds[i] = (pn_channel_kind)r->channel_kinds.data[i];
  }
  uint32_t nch = (uint32_t)r->channel_kinds.len;
  if (atomic_load_explicit(&h->npeers, memory_order_relaxed) >= h->max_peers) {
    send_reject(h, socket, from, r->client_id, r->client_nonce, PN_REASON_FULL,
                len);
    return;
  }
  uint32_t reason = h->accept ? h->accept(h->accept_ctx, from, nch, kinds) : 0;
  if (reason) {
    send_reject(h, socket, from, r->client_id, r->client_nonce,
                reason < PN_REASON_LIBRARY ? reason : PN_REASON_REFUSED, len);
    return;
  }
  pn_peer_config cfg = PN_PEER_CONFIG_INIT;
  cfg.remote = *from;
  cfg.owner = h->accept_owner;
  cfg.channel_count = nch;
  cfg.kinds = kinds;
  cfg.sockets_mask = 1u << socket;
  cfg.no_delivery_events = h->no_delivery_events;
  pn_peer *p;
  if (pn__peer_create(h, &cfg, false, &p) != PN_OK) {
    pn__stat_add(&h->st_hs_dropped, 1);
    return;
  }
  p->remote_id = r->client_id;
  p->client_nonce = r->client_nonce;
  p->aes_gcm = r->aes_gcm && h->aes_gcm;
  randombytes_buf(&p->server_nonce, sizeof p->server_nonce);
  atomic_fetch_add_explicit(&h->npeers, 1, memory_order_relaxed);
  if (!pn__host_register(h, p)) {
    atomic_fetch_sub_explicit(&h->npeers, 1, memory_order_relaxed);
    /* The host and the new peer share a worker and never run at once:
     * close it here rather than by a request that could not be sent. */
    pn__peer_close(p, PN_REASON_HOST_CLOSED, false);
    pn_peer_release(p);
    return;
  }
  pn__stat_add(&h->st_accepted, 1);
  peer_accepted(p, pn__host_scratch(h)); /* the table keeps the creation
                                           reference */
}

void pn__handshake_on_response(pn_host *h, uint32_t socket, const pn_addr *from,
                               const uint8_t *data, size_t len) {
  if (!handshake_ok(h, data, len)) {
    pn__stat_add(&h->st_hs_dropped, 1);
    return;
  }
  Peernet__Wire__V1__ConnectResponse *r =
      peernet__wire__v1__connect_response__unpack(NULL, len - PN__WIRE_OVERHEAD,
                                                  data + PN__WIRE_HEADER);
  if (!r || !r->client_id || !kinds_ok(&r->channel_kinds) ||
      !cookie_ok(h, from, r)) {
    pn__stat_add(&h->st_hs_dropped, 1);
  } else {
    pn_peer *p = pn__host_find_accepted(h, from, r->client_id);
    if (p && p->client_nonce == r->client_nonce &&
        pn_addr_equal(&p->addr, from)) {
      if (pn__peer_state(p) == PN_PEER_CONNECTED) {
        send_accept(p, pn__host_scratch(h)); /* its Accept was lost */
      }
    } else if (!p && r->dict_hash != h->dict_hash) {
      /* Different dictionaries would decompress into different bytes. */
      send_reject(h, socket, from, r->client_id, r->client_nonce,
                  PN_REASON_DICTIONARY, len);
    } else if (!p) {
      accept_peer(h, socket, from, r, len);
    } else {
      pn__stat_add(&h->st_hs_dropped, 1); /* same address and id, new nonce */
    }
  }
  peernet__wire__v1__connect_response__free_unpacked(r, NULL);
}

/* --- client half --------------------------------------------------------- */

void pn__handshake_send_connect(pn_peer *p, pn__scratch *sc) {
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
    send_handshake(p, sc, PN__T_CONNECT_REQUEST, 0, &r.base, &r.padding);
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
    send_handshake(p, sc, PN__T_CONNECT_RESPONSE, 0, &r.base, &r.padding);
  }
}

void pn__handshake_on_reply(pn_peer *p, pn__scratch *sc, const uint8_t *data,
                            size_t len, uint8_t type) {
  if (!p->is_client || pn__peer_state(p) != PN_PEER_CONNECTING ||
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
      pn__handshake_send_connect(p, sc);
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
      pn__peer_set_state(p, PN_PEER_CONNECTED);
      p->last_recv_ns = pn__now_ns();
      pn__peer_emit(p, PN_MSG_PEER_CONNECTED);
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__accept__free_unpacked(a, NULL);
  } else if (type == PN__T_REJECT) {
    Peernet__Wire__V1__Reject *r =
        peernet__wire__v1__reject__unpack(NULL, blen, body);
    if (r && r->client_id == p->local_id &&
        r->client_nonce == p->client_nonce) {
      pn__peer_close(p, r->reason ? r->reason : PN_REASON_REFUSED, true);
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__reject__free_unpacked(r, NULL);
  }
}
