/* See forge.h. */
#include "tests/net/forge.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#include "actors/wire.h"

size_t forge_handshake(uint8_t *buf, uint8_t type, uint32_t conn_id,
                       ProtobufCMessage *m, ProtobufCBinaryData *padding,
                       size_t pad_to) {
  return pn__wire_pack_handshake(buf, type, conn_id, m, padding, pad_to);
}

/* The nonce the prober uses for a client id (from the run's seed), so
 * replies can be checked without shared tables. */
static uint64_t forge_nonce(uint32_t client_id) {
  uint64_t s = pn_test_seed() ^ ((uint64_t)client_id << 20);
  return pn_test_rand(&s);
}

size_t forge_request_size(uint32_t client_id) {
  return client_id < 0x40000000u ? 256u + client_id % 97u : 256u;
}

/* One ephemeral public key for every forged client (a valid point, so the
 * server's key exchange goes through). */
static const uint8_t *forge_kx(void) {
  static uint8_t kx[PN_KEY_BYTES];
  static bool made;
  if (!made) {
    uint8_t secret[PN_KEY_BYTES];
    memset(secret, 0x5a, sizeof secret);
    (void)crypto_scalarmult_base(kx, secret);
    made = true;
  }
  return kx;
}

size_t forge_request(uint8_t *buf, uint32_t version, uint32_t client_id,
                     uint32_t nch, size_t pad_to) {
  uint8_t kinds[PN_MAX_CHANNELS + 1];
  for (uint32_t i = 0; i < nch; i++) {
    kinds[i] = (uint8_t)(i % PN_CHANNEL_KINDS);
  }
  Peernet__Wire__V1__ConnectRequest r =
      PEERNET__WIRE__V1__CONNECT_REQUEST__INIT;
  r.version = version;
  r.client_id = client_id;
  r.client_nonce = forge_nonce(client_id);
  r.channel_kinds.data = kinds;
  r.channel_kinds.len = nch;
  r.client_kx.data = (uint8_t *)forge_kx();
  r.client_kx.len = PN_KEY_BYTES;
  return forge_handshake(buf, PN__T_CONNECT_REQUEST, 0, &r.base,
                         pad_to ? &r.padding : NULL, pad_to);
}

size_t forge_response(uint8_t *buf, uint32_t client_id, uint64_t ts_ms,
                      const uint8_t *cookie, size_t cookie_len) {
  uint8_t kinds[1] = {PN_CHANNEL_ORDERED};
  Peernet__Wire__V1__ConnectResponse r =
      PEERNET__WIRE__V1__CONNECT_RESPONSE__INIT;
  r.client_id = client_id;
  r.client_nonce = forge_nonce(client_id);
  r.timestamp_ms = ts_ms;
  r.cookie.data = (uint8_t *)cookie;
  r.cookie.len = cookie_len;
  r.channel_kinds.data = kinds;
  r.channel_kinds.len = 1;
  r.client_kx.data = (uint8_t *)forge_kx();
  r.client_kx.len = PN_KEY_BYTES;
  return forge_handshake(buf, PN__T_CONNECT_RESPONSE, 0, &r.base, &r.padding,
                         forge_request_size(client_id));
}

/* --- the prober ---------------------------------------------------------- */

/* A Reject to a request in the previous version comes in that version (an
 * old client reads nothing else); the handshake layout is the same. */
static bool prober_old_reject(prober *pr, const uint8_t *b, size_t len) {
  if (len < PN__WIRE_OVERHEAD || b[0] != PN__WIRE_VERSION - 1 ||
      b[1] != PN__T_REJECT) {
    return false;
  }
  Peernet__Wire__V1__Reject *r =
      pn__wire_verify(b, len, pn__wire_public_key)
          ? peernet__wire__v1__reject__unpack(NULL, len - PN__WIRE_OVERHEAD,
                                              b + PN__WIRE_HEADER)
          : NULL;
  if (r && r->client_nonce == forge_nonce(r->client_id) &&
      r->reason == PN_REASON_VERSION &&
      len <= forge_request_size(r->client_id)) {
    atomic_fetch_add(&pr->old_rejects, 1);
  } else {
    atomic_fetch_add(&pr->bad, 1);
  }
  peernet__wire__v1__reject__free_unpacked(r, NULL);
  return true;
}

static void prober_reply(prober *pr, const uint8_t *b, size_t len) {
  if (prober_old_reject(pr, b, len)) {
    return;
  }
  pn__wire_header h;
  if (!pn__wire_peek(b, len, &h)) {
    atomic_fetch_add(&pr->bad, 1);
    return;
  }
  if (h.type == PN__T_DATA) {
    atomic_fetch_add(&pr->data, 1); /* an accepted prober's peer talking */
    return;
  }
  if (h.type == PN__T_CONNECT_REQUEST) {
    bool padded = len >= PN__HANDSHAKE_PAD &&
                  pn__wire_verify(b, len, pn__wire_public_key);
    atomic_fetch_add(padded ? &pr->requests : &pr->bad, 1);
    return;
  }
  if (!pn__wire_verify(b, len, pn__wire_public_key) ||
      len > forge_request_size(h.conn_id)) {
    atomic_fetch_add(&pr->bad, 1);
    return;
  }
  const uint8_t *body = b + PN__WIRE_HEADER;
  size_t blen = len - PN__WIRE_OVERHEAD;
  bool ok = false;
  if (h.type == PN__T_CHALLENGE) {
    Peernet__Wire__V1__Challenge *c =
        peernet__wire__v1__challenge__unpack(NULL, blen, body);
    ok = c && c->client_id == h.conn_id &&
         c->client_nonce == forge_nonce(c->client_id) && c->cookie.len == 16;
    if (ok) {
      pthread_mutex_lock(&pr->lock);
      pr->chal_id = c->client_id;
      pr->chal_ts = c->timestamp_ms;
      memcpy(pr->cookie, c->cookie.data, c->cookie.len);
      pr->cookie_len = c->cookie.len;
      pthread_mutex_unlock(&pr->lock);
      atomic_fetch_add(&pr->challenges, 1);
    }
    peernet__wire__v1__challenge__free_unpacked(c, NULL);
  } else if (h.type == PN__T_REJECT) {
    Peernet__Wire__V1__Reject *r =
        peernet__wire__v1__reject__unpack(NULL, blen, body);
    ok = r && r->client_id == h.conn_id &&
         r->client_nonce == forge_nonce(r->client_id);
    if (ok) {
      atomic_store(&pr->reject_reason, r->reason);
      atomic_fetch_add(&pr->rejects, 1);
    }
    peernet__wire__v1__reject__free_unpacked(r, NULL);
  } else if (h.type == PN__T_ACCEPT) {
    Peernet__Wire__V1__Accept *a =
        peernet__wire__v1__accept__unpack(NULL, blen, body);
    ok = a && a->client_id == h.conn_id &&
         a->client_nonce == forge_nonce(a->client_id) && a->server_id;
    if (ok) {
      pthread_mutex_lock(&pr->lock);
      pr->accept_server_id = a->server_id;
      pthread_mutex_unlock(&pr->lock);
      atomic_fetch_add(&pr->accepts, 1);
    }
    peernet__wire__v1__accept__free_unpacked(a, NULL);
  }
  if (!ok) {
    atomic_fetch_add(&pr->bad, 1);
  }
}

static void prober_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  prober *pr = state;
  pn_datagram d;
  if (pn_msg_type(msg) != PN_MSG_DATAGRAM || pn_msg_datagram(msg, &d)) {
    return;
  }
  prober_reply(pr, d.data, d.len);
  atomic_fetch_add(&pr->replies, 1);
  pn_test_latch_count_down(&pr->replies_latch);
}

pn_actor *prober_open(pn_runtime *rt, prober *pr) {
  memset(pr, 0, sizeof *pr);
  pthread_mutex_init(&pr->lock, NULL);
  pn_test_latch_init(&pr->replies_latch, 0);
  pn_actor *a = pn_test_spawn(rt, "prober", prober_handler, pr, -1);
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  sc.owner = a;
  PN_ASSERT_OK(pn_socket_open(rt, &sc, &pr->sock));
  PN_ASSERT_OK(pn_socket_local_addr(pr->sock, &pr->local));
  return a;
}

void prober_fini(prober *pr, pn_actor *a) {
  pn_actor_release(a);
  pn_test_latch_fini(&pr->replies_latch);
  pthread_mutex_destroy(&pr->lock);
}

void prober_send(prober *pr, const pn_addr *to, const uint8_t *b, size_t len) {
  PN_ASSERT_OK(pn_socket_send(pr->sock, to, b, len));
}

void prober_expect(prober *pr, uint64_t n) {
  pn_test_latch_add(&pr->replies_latch, n);
}

void prober_wait(prober *pr, const char *what) {
  if (!pn_test_latch_wait(&pr->replies_latch, NET_WAIT_MS)) {
    fail_msg("%s: replies %" PRIu64 " challenges %" PRIu64 " bad %" PRIu64,
             what, atomic_load(&pr->replies), atomic_load(&pr->challenges),
             atomic_load(&pr->bad));
  }
}

/* Marker requests' client ids, above the ranges the tests use. */
static uint32_t next_marker = 0x70000000u;

void prober_sync(prober *pr, const pn_addr *to) {
  uint8_t buf[512];
  prober_expect(pr, 1);
  size_t len = forge_request(buf, PN__WIRE_VERSION, next_marker++, 1, 256);
  prober_send(pr, to, buf, len);
  prober_wait(pr, "marker");
}
