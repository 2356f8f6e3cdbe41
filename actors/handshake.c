/* The handshake, both halves (see handshake.h for the exchange).
 *
 * Server half, on the host actor: nothing is allocated before the client
 * echoes a cookie, a keyed hash of what it sent and of the address it sent
 * from, so a spoofed source can only make the host answer to the address
 * it spoofed, with no more bytes than it sent. Client half, on the peer
 * actor: the request is retried every connect_retry until
 * connect_timeout (peer.c's timer).
 *
 * Keys (version 3): the client sends an ephemeral X25519 public key, which
 * the cookie covers; only once the cookie comes back does the server make
 * its own ephemeral pair. Both sides compute two Diffie-Hellman results,
 * ephemeral-ephemeral (forward secrecy) and client ephemeral with the
 * server's long-term key (only the holder of that key can compute it:
 * what a client that pins the key relies on), and derive the keys from
 * them, the transcript and the pre-shared key if any (handshake_keys.c). The
 * Accept carries a confirmation only the same keys produce, so a client
 * refuses a server (or someone in the middle) that derived others.
 */
#include "actors/handshake.h"
#include "actors/handshake_keys.h"

#include <sodium.h>
#include <string.h>

#include "actors/event.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "actors/random.h"
#include "runtime/clock.h"
#include "runtime/worker.h"

#define COOKIE_LIFETIME_MS 10000u

/* --- server half ---------------------------------------------------------- */

static uint64_t now_ms(void) { return pn__now_ns() / 1000000u; }

void pn__handshake_cookie(const pn_host *h, const pn_addr *from,
                          uint32_t client_id, uint64_t nonce,
                          const uint8_t kx[PN_KEY_BYTES], uint64_t ts,
                          uint8_t out[PN__COOKIE_BYTES]) {
  uint8_t in[2 + 2 + 4 + 16 + 4 + 8 + 8 + PN_KEY_BYTES];
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
  memcpy(in + n, kx, PN_KEY_BYTES);
  n += PN_KEY_BYTES;
  crypto_generichash(out, PN__COOKIE_BYTES, in, n, h->secret, sizeof h->secret);
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

static void send_accept(pn_peer *p, pn__scratch *sc) {
  Peernet__Wire__V1__Accept a = PEERNET__WIRE__V1__ACCEPT__INIT;
  a.client_id = p->remote_id;
  a.client_nonce = p->client_nonce;
  a.server_id = p->local_id;
  a.server_nonce = p->server_nonce;
  a.aes_gcm = p->aes_gcm;
  a.server_kx.data = p->hs->kx_public;
  a.server_kx.len = PN_KEY_BYTES;
  a.server_key.data = (uint8_t *)p->host->public_key;
  a.server_key.len = PN_KEY_BYTES;
  a.confirm.data = p->hs->confirm;
  a.confirm.len = PN__CONFIRM_BYTES;
  send_handshake(p, sc, PN__T_ACCEPT, p->remote_id, &a.base, NULL);
}

/* The server peer is accepted (on the host actor, the peer's worker):
 * keys, state, the Accept and the owner's event. */
static void peer_accepted(pn_peer *p, pn__scratch *sc) {
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
  if (!pn__host_handshake_allowed(h)) {
    return; /* over the rate: counted, before any decoding or hashing */
  }
  Peernet__Wire__V1__ConnectRequest *req =
      peernet__wire__v1__connect_request__unpack(NULL, len - PN__WIRE_OVERHEAD,
                                                 data + PN__WIRE_HEADER);
  if (!req || !req->client_id || !kinds_ok(&req->channel_kinds)) {
    pn__stat_add(&h->st_hs_dropped, 1);
  } else if (version != PN__WIRE_VERSION || req->version != PN__WIRE_VERSION) {
    send_reject_in(h, socket, from, req->client_id, req->client_nonce,
                   PN_REASON_VERSION, len, version);
  } else if (req->client_kx.len != PN_KEY_BYTES) {
    pn__stat_add(&h->st_hs_dropped, 1);
  } else {
    uint8_t cookie[PN__COOKIE_BYTES];
    Peernet__Wire__V1__Challenge c = PEERNET__WIRE__V1__CHALLENGE__INIT;
    c.client_id = req->client_id;
    c.client_nonce = req->client_nonce;
    c.timestamp_ms = now_ms();
    pn__handshake_cookie(h, from, c.client_id, c.client_nonce,
                         req->client_kx.data, c.timestamp_ms, cookie);
    c.cookie.data = cookie;
    c.cookie.len = sizeof cookie;
    c.server_key.data = h->public_key;
    c.server_key.len = PN_KEY_BYTES;
    reply(h, socket, from, PN__T_CHALLENGE, c.client_id, &c.base, len,
          PN__WIRE_VERSION);
    pn__stat_add(&h->st_challenges, 1);
  }
  peernet__wire__v1__connect_request__free_unpacked(req, NULL);
}

static bool cookie_ok(const pn_host *h, const pn_addr *from,
                      const Peernet__Wire__V1__ConnectResponse *r) {
  uint64_t now = now_ms();
  if (r->cookie.len != PN__COOKIE_BYTES || r->client_kx.len != PN_KEY_BYTES ||
      r->timestamp_ms > now || now - r->timestamp_ms > COOKIE_LIFETIME_MS) {
    return false;
  }
  uint8_t want[PN__COOKIE_BYTES];
  pn__handshake_cookie(h, from, r->client_id, r->client_nonce,
                       r->client_kx.data, r->timestamp_ms, want);
  return crypto_verify_16(want, r->cookie.data) == 0;
}

/* The server side of the keys: the current ephemeral pair's result with
 * the client's ephemeral key (dh holds the others), the keys and the
 * confirmation the Accept carries (kept for a resent Accept). False when
 * the client's key is one X25519 refuses (a low-order point: the result
 * would be known to anyone) or memory ran out. */
static bool server_keys(pn_peer *p, const uint8_t client_kx[PN_KEY_BYTES],
                        pn__dh *dh) {
  pn_host *h = p->host;
  p->hs = pn__calloc(1, sizeof *p->hs);
  if (!p->hs || !pn__hs_eph_current(h)) {
    return false;
  }
  memcpy(p->hs->kx_public, h->eph_public, PN_KEY_BYTES);
  bool ok = crypto_scalarmult(dh->ee, h->eph_secret, client_kx) == 0;
  if (ok) {
    pn__hs_derive_keys(p, dh, client_kx, p->hs->kx_public, h->public_key,
                       p->hs->confirm);
  }
  return ok;
}

/* What a ConnectResponse's optional parts say, checked: the connect data
 * opened and the client's key proven. Returns 0, or the reason to refuse
 * with (PN_REASON_AUTH), or UINT32_MAX for a malformed response (dropped).
 * Fills dh (es, and ss and client_key when the client presented a key). */
static uint32_t open_response(const pn_host *h,
                              const Peernet__Wire__V1__ConnectResponse *r,
                              pn__dh *dh, uint8_t data[PN_CONNECT_DATA_MAX],
                              size_t *data_len) {
  *data_len = 0;
  bool data_bad = r->connect_data.len &&
                  (r->connect_data.len < PN__SEAL_BYTES ||
                   r->connect_data.len > PN_CONNECT_DATA_MAX + PN__SEAL_BYTES);
  bool key_bad = (r->client_key.len || r->client_proof.len) &&
                 (r->client_key.len != PN_KEY_BYTES ||
                  r->client_proof.len != PN__PROOF_BYTES);
  if (data_bad || key_bad) {
    return UINT32_MAX;
  }
  if (crypto_scalarmult(dh->es, h->secret_key, r->client_kx.data) != 0) {
    return PN_REASON_AUTH;
  }
  if (r->client_key.len) {
    uint8_t want[PN__PROOF_BYTES];
    if (crypto_scalarmult(dh->ss, h->secret_key, r->client_key.data) != 0) {
      return PN_REASON_AUTH;
    }
    pn__hs_client_proof(want, dh->ss, r->cookie.data, r->cookie.len,
                        r->client_id, r->client_nonce, r->client_kx.data,
                        r->client_key.data, r->connect_data.data,
                        r->connect_data.len);
    if (crypto_verify_16(want, r->client_proof.data) != 0) {
      return PN_REASON_AUTH;
    }
    memcpy(dh->client_key, r->client_key.data, PN_KEY_BYTES);
  }
  if (r->connect_data.len) {
    uint8_t k[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    unsigned long long n = 0;
    pn__hs_data_key(k, dh->es, r->cookie.data, r->cookie.len);
    int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        data, &n, NULL, r->connect_data.data, r->connect_data.len,
        dh->client_key, PN_KEY_BYTES, nonce, k);
    sodium_memzero(k, sizeof k);
    if (rc != 0) {
      return PN_REASON_AUTH;
    }
    *data_len = (size_t)n;
  }
  return 0;
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
  if (!pn__host_ip_has_room(h, from)) {
    send_reject(h, socket, from, r->client_id, r->client_nonce,
                PN_REASON_ADDRESS_LIMIT, len);
    return;
  }
  pn__dh dh;
  memset(&dh, 0, sizeof dh);
  uint8_t data[PN_CONNECT_DATA_MAX];
  size_t data_len;
  uint32_t reason = open_response(h, r, &dh, data, &data_len);
  if (reason == 0 && h->accept) {
    pn_accept_info info = {.from = *from,
                           .channels = nch,
                           .kinds = kinds,
                           .client_key =
                               r->client_key.len ? dh.client_key : NULL,
                           .data = data_len ? data : NULL,
                           .data_len = data_len};
    reason = h->accept(h->accept_ctx, &info);
    if (reason >= PN_REASON_LIBRARY) {
      reason = PN_REASON_REFUSED;
    }
  }
  sodium_memzero(data, sizeof data);
  if (reason) {
    if (reason == UINT32_MAX) {
      pn__stat_add(&h->st_hs_dropped, 1); /* malformed */
    } else {
      send_reject(h, socket, from, r->client_id, r->client_nonce, reason, len);
    }
    sodium_memzero(&dh, sizeof dh);
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
  pn__random_buf(&p->server_nonce, sizeof p->server_nonce);
  atomic_fetch_add_explicit(&h->npeers, 1, memory_order_relaxed);
  if (!pn__host_register(h, p)) {
    atomic_fetch_sub_explicit(&h->npeers, 1, memory_order_relaxed);
    /* The host and the new peer share a worker and never run at once:
     * close it here rather than by a request that could not be sent. */
    pn__peer_close(p, PN_REASON_HOST_CLOSED, false);
    pn_peer_release(p);
    sodium_memzero(&dh, sizeof dh);
    return;
  }
  if (r->client_key.len) {
    pn__peer_set_remote_key(p, dh.client_key);
  }
  /* The keys name the server's connection id, which registering gave. */
  bool keyed = server_keys(p, r->client_kx.data, &dh);
  sodium_memzero(&dh, sizeof dh);
  if (!keyed) {
    pn__stat_add(&h->st_hs_dropped, 1);
    pn__peer_close(p, PN_REASON_AUTH, false); /* leaves the tables too */
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
  if (!pn__host_handshake_allowed(h)) {
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
        pn_addr_equal(&p->origin, from)) {
      /* Its Accept was lost: the same again (until the client's first
       * DATA shows it arrived and the peer let the handshake go). */
      if (pn__peer_state(p) == PN_PEER_CONNECTED && p->hs) {
        send_accept(p, pn__host_scratch(h));
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
    r.client_kx.data = p->hs->kx_public;
    r.client_kx.len = PN_KEY_BYTES;
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
    r.client_kx.data = p->hs->kx_public;
    r.client_kx.len = PN_KEY_BYTES;
    if (p->hs->has_client_key) {
      r.client_key.data = p->hs->client_public;
      r.client_key.len = PN_KEY_BYTES;
      r.client_proof.data = p->hs->proof;
      r.client_proof.len = PN__PROOF_BYTES;
    }
    if (p->hs->data_len) {
      r.connect_data.data = p->hs->data + p->hs->data_len;
      r.connect_data.len = p->hs->data_len + PN__SEAL_BYTES;
    }
    send_handshake(p, sc, PN__T_CONNECT_RESPONSE, 0, &r.base, &r.padding);
  }
}

/* A Challenge came: when the client has a key of its own or connect data,
 * its proof and the sealed data, for the server the Challenge names (which
 * must be the pinned one). Returns 0, a reason to give up with, or
 * UINT32_MAX for a Challenge that cannot serve (dropped as bad). */
static uint32_t seal_response(pn_peer *p,
                              const Peernet__Wire__V1__Challenge *c) {
  pn__handshake *hs = p->hs;
  if (!hs->has_client_key && !hs->data_len) {
    return 0;
  }
  if (c->server_key.len != PN_KEY_BYTES) {
    return UINT32_MAX;
  }
  if (hs->pinned) {
    if (sodium_memcmp(hs->server_key, c->server_key.data, PN_KEY_BYTES) != 0) {
      return PN_REASON_SERVER_KEY;
    }
  } else {
    memcpy(hs->server_key, c->server_key.data, PN_KEY_BYTES);
    hs->challenge_key = true;
  }
  uint8_t dh_es[PN_KEY_BYTES], dh_ss[PN_KEY_BYTES];
  uint32_t reason = 0;
  if (crypto_scalarmult(dh_es, hs->kx_secret, hs->server_key) != 0 ||
      (hs->has_client_key &&
       crypto_scalarmult(dh_ss, hs->client_secret, hs->server_key) != 0)) {
    reason = PN_REASON_AUTH; /* a low-order point for a key */
  } else {
    uint8_t *sealed = hs->data ? hs->data + hs->data_len : NULL;
    if (hs->data_len) {
      uint8_t k[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
      uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
      static const uint8_t none[PN_KEY_BYTES];
      pn__hs_data_key(k, dh_es, p->cookie, p->cookie_len);
      crypto_aead_xchacha20poly1305_ietf_encrypt(
          sealed, NULL, hs->data, hs->data_len,
          hs->has_client_key ? hs->client_public : none, PN_KEY_BYTES, NULL,
          nonce, k);
      sodium_memzero(k, sizeof k);
    }
    if (hs->has_client_key) {
      pn__hs_client_proof(hs->proof, dh_ss, p->cookie, p->cookie_len,
                          p->local_id, p->client_nonce, hs->kx_public,
                          hs->client_public, sealed,
                          hs->data_len ? hs->data_len + PN__SEAL_BYTES : 0);
    }
  }
  sodium_memzero(dh_es, sizeof dh_es);
  sodium_memzero(dh_ss, sizeof dh_ss);
  return reason;
}

/* An Accept for this client: the server's key checked against the pinned
 * one, the keys derived, the confirmation compared (constant time). A
 * mismatch ends the connection with its reason: nothing was sent under
 * those keys. */
static void client_accepted(pn_peer *p, const Peernet__Wire__V1__Accept *a) {
  pn__handshake *hs = p->hs;
  if ((hs->pinned || hs->challenge_key) &&
      sodium_memcmp(hs->server_key, a->server_key.data, PN_KEY_BYTES) != 0) {
    /* Another key than the pinned one; or than the one the Challenge
     * named, which the proof and the connect data were made for. */
    pn__peer_close(p, hs->pinned ? PN_REASON_SERVER_KEY : PN_REASON_AUTH,
                   false);
    return;
  }
  p->aes_gcm = a->aes_gcm;
  p->remote_id = a->server_id;
  p->server_nonce = a->server_nonce;
  pn__dh dh;
  memset(&dh, 0, sizeof dh);
  uint8_t want[PN__CONFIRM_BYTES];
  bool ok = crypto_scalarmult(dh.ee, hs->kx_secret, a->server_kx.data) == 0 &&
            crypto_scalarmult(dh.es, hs->kx_secret, a->server_key.data) == 0 &&
            (!hs->has_client_key || crypto_scalarmult(dh.ss, hs->client_secret,
                                                      a->server_key.data) == 0);
  if (ok) {
    if (hs->has_client_key) {
      memcpy(dh.client_key, hs->client_public, PN_KEY_BYTES);
    }
    pn__hs_derive_keys(p, &dh, hs->kx_public, a->server_kx.data,
                       a->server_key.data, want);
    ok = sodium_memcmp(want, a->confirm.data, PN__CONFIRM_BYTES) == 0;
  }
  sodium_memzero(&dh, sizeof dh);
  if (ok) {
    pn__peer_set_remote_key(p, a->server_key.data);
  }
  pn__handshake_done(p);
  if (!ok) {
    pn__peer_close(p, PN_REASON_AUTH, false);
    return;
  }
  pn__peer_set_state(p, PN_PEER_CONNECTED);
  p->last_recv_ns = pn__now_ns();
  pn__peer_emit(p, PN_MSG_PEER_CONNECTED);
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
        c->cookie.len <= sizeof p->cookie &&
        (c->server_key.len == 0 || c->server_key.len == PN_KEY_BYTES)) {
      memcpy(p->cookie, c->cookie.data, c->cookie.len);
      p->cookie_len = c->cookie.len;
      p->cookie_ts = c->timestamp_ms;
      uint32_t reason = seal_response(p, c);
      if (reason == 0) {
        pn__handshake_send_connect(p, sc);
      } else if (reason == UINT32_MAX) {
        pn__stat_add(&p->st_bad, 1);
      } else {
        pn__peer_close(p, reason, false);
      }
    } else {
      pn__stat_add(&p->st_bad, 1);
    }
    peernet__wire__v1__challenge__free_unpacked(c, NULL);
  } else if (type == PN__T_ACCEPT) {
    Peernet__Wire__V1__Accept *a =
        peernet__wire__v1__accept__unpack(NULL, blen, body);
    if (a && a->client_id == p->local_id &&
        a->client_nonce == p->client_nonce && a->server_id &&
        (!a->aes_gcm || p->host->aes_gcm) && a->server_kx.len == PN_KEY_BYTES &&
        a->server_key.len == PN_KEY_BYTES &&
        a->confirm.len == PN__CONFIRM_BYTES) {
      client_accepted(p, a);
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

pn_err pn__handshake_client_init(pn_peer *p, const pn_peer_config *cfg) {
  p->hs = pn__calloc(1, sizeof *p->hs);
  if (!p->hs) {
    return PN_ENOMEM;
  }
  pn__handshake *hs = p->hs;
  pn__random_buf(hs->kx_secret, PN_KEY_BYTES);
  if (crypto_scalarmult_base(hs->kx_public, hs->kx_secret) != 0) {
    return PN_ENOMEM; /* never for a random scalar: libsodium clamps it */
  }
  if (cfg->server_key) {
    memcpy(hs->server_key, cfg->server_key, PN_KEY_BYTES);
    hs->pinned = true;
  }
  if (cfg->client_key) {
    memcpy(hs->client_secret, cfg->client_key, PN_KEY_BYTES);
    if (crypto_scalarmult_base(hs->client_public, hs->client_secret) != 0) {
      return PN_EINVAL; /* never: libsodium clamps any 32 bytes */
    }
    hs->has_client_key = true;
  }
  if (cfg->connect_data_len) {
    /* The plaintext, then room for it sealed. */
    hs->data = pn__malloc(2 * cfg->connect_data_len + PN__SEAL_BYTES);
    if (!hs->data) {
      return PN_ENOMEM;
    }
    memcpy(hs->data, cfg->connect_data, cfg->connect_data_len);
    hs->data_len = cfg->connect_data_len;
  }
  return PN_OK;
}

/* Wipes and frees a handshake state. */
static void hs_free(pn__handshake *hs) {
  if (hs->data) {
    sodium_memzero(hs->data, 2 * hs->data_len + PN__SEAL_BYTES);
    free(hs->data);
  }
  sodium_memzero(hs, sizeof *hs);
  free(hs);
}

void pn__handshake_done(pn_peer *p) {
  if (p->hs && p->is_client) {
    hs_free(p->hs);
    p->hs = NULL;
  }
}

void pn__handshake_free(pn_peer *p) {
  if (p->hs) {
    hs_free(p->hs);
    p->hs = NULL;
  }
}
