/* See relay.h. */
#include "tests/net/relay.h"

#include <stdlib.h>
#include <string.h>

#include "actors/wire.h"

static double unit(uint64_t *rng) {
  return (double)(pn_test_rand(rng) >> 11) / 9007199254740992.0;
}

#define RELAY_MSG_RELEASE 0x52454cu

void relay_free(relay *r) {
  free(r->held);
  free(r);
}

void relay_release(relay *r) {
  PN_ASSERT_OK(pn_send(r->actor, RELAY_MSG_RELEASE, NULL, 0));
}

static void relay_send(relay *r, const pn_addr *to, const uint8_t *b,
                       size_t len) {
  /* PN_ECLOSED once the test closes the relay. */
  (void)pn_socket_send(r->sock, to, b, len);
}

/* An Accept changed on the way: a key flipped, resealed with the public
 * handshake key (which anyone can). True when it was one and was sent. */
static bool tamper(relay *r, const pn_addr *to, const uint8_t *b, size_t len) {
  if (len < PN__WIRE_OVERHEAD || (b[1] & 0x0Fu) != PN__T_ACCEPT) {
    return false;
  }
  Peernet__Wire__V1__Accept *a = peernet__wire__v1__accept__unpack(
      NULL, len - PN__WIRE_OVERHEAD, b + PN__WIRE_HEADER);
  if (!a) {
    return false;
  }
  ProtobufCBinaryData *key = r->tamper_key ? &a->server_key : &a->server_kx;
  if (r->tamper_cipher) {
    a->aes_gcm = !a->aes_gcm; /* the keys stay: only the choice changes */
  } else if (key->len) {
    key->data[0] ^= 0x40;
  }
  uint32_t conn = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 |
                  (uint32_t)b[5] << 24;
  uint8_t out[2048];
  size_t n =
      pn__wire_pack_handshake(out, PN__T_ACCEPT, conn, &a->base, NULL, 0);
  peernet__wire__v1__accept__free_unpacked(a, NULL);
  relay_send(r, to, out, n);
  atomic_fetch_add(&r->tampered, 1);
  return true;
}

/* A ConnectResponse changed on the way: a byte of its connect data (or
 * of its client key), resealed. True when it was one and was sent. */
static bool tamper_resp(relay *r, const pn_addr *to, const uint8_t *b,
                        size_t len) {
  if (len < PN__WIRE_OVERHEAD || (b[1] & 0x0Fu) != PN__T_CONNECT_RESPONSE) {
    return false;
  }
  Peernet__Wire__V1__ConnectResponse *m =
      peernet__wire__v1__connect_response__unpack(NULL, len - PN__WIRE_OVERHEAD,
                                                  b + PN__WIRE_HEADER);
  if (!m) {
    return false;
  }
  ProtobufCBinaryData *f =
      r->tamper_client_key ? &m->client_key : &m->connect_data;
  if (f->len) {
    f->data[f->len / 2] ^= 0x01;
  }
  uint8_t out[2048];
  /* Packing points the padding at a buffer of its own: the unpacked one
   * goes back before the free. */
  ProtobufCBinaryData padding = m->padding;
  size_t n = pn__wire_pack_handshake(out, PN__T_CONNECT_RESPONSE, 0, &m->base,
                                     &m->padding, PN__HANDSHAKE_PAD);
  m->padding = padding;
  peernet__wire__v1__connect_response__free_unpacked(m, NULL);
  relay_send(r, to, out, n);
  atomic_fetch_add(&r->tampered, 1);
  return true;
}

/* The path modes' part for a client DATA datagram b on its way to the
 * server. True when it was forwarded here (REBIND). */
static bool path_play(relay *r, int mode, const uint8_t *b, size_t len) {
  switch (mode) {
  case RELAY_PATH_RACE: {
    uint64_t n = atomic_load(&r->held_n);
    if (n == RELAY_HELD) {
      return true; /* no room: dropped, as by a lossy path */
    }
    (void)pn_socket_send(r->alt, &r->server, b, len);
    memcpy(r->held[n], b, len);
    r->held_len[n] = len;
    atomic_fetch_add(&r->path_sent, 1);
    atomic_store(&r->held_n, n + 1);
    return true;
  }
  case RELAY_PATH_REBIND:
    (void)pn_socket_send(r->alt, &r->server, b, len);
    return true;
  case RELAY_PATH_REFLECT:
    relay_send(r, &r->client, b, len);
    break;
  case RELAY_PATH_INJECT: {
    uint8_t forged[2048];
    memcpy(forged, b, PN__DATA_HEADER); /* version, type, id, sequence */
    for (size_t i = PN__DATA_HEADER; i < len; i++) {
      forged[i] = (uint8_t)pn_test_rand(&r->rng);
    }
    relay_send(r, &r->server, forged, len);
    break;
  }
  default:
    return false;
  }
  atomic_fetch_add(&r->path_sent, 1);
  return false;
}

static void relay_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  relay *r = state;
  pn_datagram d;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    /* The relay closes its own sockets: a handle closed from another
     * thread could be freed while this handler still sends through it. */
    pn_socket_close(r->alt);
    pn_socket_close(r->sock);
    r->alt = NULL;
    r->sock = NULL;
    return;
  }
  if (pn_msg_type(msg) == RELAY_MSG_RELEASE) {
    atomic_store(&r->path_mode, RELAY_PATH_NONE);
    uint64_t n = atomic_load(&r->held_n);
    for (uint64_t i = 0; i < n; i++) {
      relay_send(r, &r->server, r->held[i], r->held_len[i]);
    }
    atomic_store(&r->held_n, 0);
    return;
  }
  if (pn_msg_type(msg) != PN_MSG_DATAGRAM || pn_msg_datagram(msg, &d)) {
    return;
  }
  int mode = atomic_load(&r->path_mode);
  if (r->alt && d.socket_id == pn_socket_id(r->alt)) {
    /* Only a rebinding NAT passes on what reaches the client's new port. */
    if (mode == RELAY_PATH_REBIND && r->have_client) {
      relay_send(r, &r->client, d.data, d.len);
    } else {
      atomic_fetch_add(&r->alt_dropped, 1);
    }
    return;
  }
  int k = pn_addr_equal(&d.from, &r->server) ? 1 : 0;
  if (k == 0) {
    r->client = d.from;
    r->have_client = true;
  } else if (!r->have_client) {
    return;
  }
  const pn_addr *to = k ? &r->client : &r->server;
  relay_dir *rd = &r->dir[k];
  const uint8_t *b = d.data;
  bool data = d.len >= PN__WIRE_OVERHEAD && (b[1] & 0x0Fu) == PN__T_DATA &&
              d.len <= sizeof rd->ring[0];
  if (data) {
    uint32_t id = (uint32_t)b[2] | (uint32_t)b[3] << 8 | (uint32_t)b[4] << 16 |
                  (uint32_t)b[5] << 24;
    atomic_store(k ? &r->client_id : &r->server_id, id);
  } else {
    atomic_fetch_add(&rd->handshakes, 1);
  }
  atomic_fetch_add(&rd->forwarded, 1);
  /* acquire: pairs with the test's release store of marker_len, after
   * which the marker bytes are complete. */
  size_t marker_len =
      atomic_load_explicit(&r->marker_len, memory_order_acquire);
  if (marker_len && memmem(b, d.len, r->marker, marker_len)) {
    atomic_fetch_add(&r->marker_seen, 1);
  }
  if (k == 1 && !data && r->tamper_accept && tamper(r, to, b, d.len)) {
    return;
  }
  if (k == 0 && !data && r->tamper_response && tamper_resp(r, to, b, d.len)) {
    return;
  }
  if (data && atomic_load(&r->mode) == RELAY_IMPAIR) {
    double u = unit(&r->rng);
    if (u < r->corrupt) {
      /* One to three distinct bits, so the copy always differs. */
      uint8_t copy[2048];
      memcpy(copy, b, d.len);
      uint64_t bits[3];
      uint32_t n = 1 + (uint32_t)(pn_test_rand(&r->rng) % 3);
      for (uint32_t i = 0; i < n; i++) {
        bool again;
        do {
          bits[i] = pn_test_rand(&r->rng) % (d.len * 8);
          again = false;
          for (uint32_t j = 0; j < i; j++) {
            again |= bits[j] == bits[i];
          }
        } while (again);
        copy[bits[i] / 8] ^= (uint8_t)(1u << (bits[i] % 8));
      }
      relay_send(r, to, copy, d.len);
      atomic_fetch_add(&rd->impaired, 1);
      return;
    }
    if (u < r->corrupt + r->truncate) {
      size_t len = 1 + (size_t)(pn_test_rand(&r->rng) % (d.len - 1));
      relay_send(r, to, b, len);
      atomic_fetch_add(&rd->impaired, 1);
      return;
    }
  }
  if (!(data && k == 0 && path_play(r, mode, b, d.len))) {
    relay_send(r, to, b, d.len);
  }
  if (!data) {
    return;
  }
  size_t slot = rd->ring_n++ % RELAY_RING;
  memcpy(rd->ring[slot], b, d.len);
  rd->ring_len[slot] = d.len;
  if (atomic_load(&r->mode) == RELAY_IMPAIR && rd->ring_n > 1 &&
      unit(&r->rng) < r->replay) {
    uint64_t n = rd->ring_n < RELAY_RING ? rd->ring_n : RELAY_RING;
    size_t old = (size_t)(pn_test_rand(&r->rng) % n);
    relay_send(r, to, rd->ring[old], rd->ring_len[old]);
    atomic_fetch_add(&rd->replayed, 1);
  }
}

pn_actor *relay_spawn(pn_runtime *rt, relay *r) {
  r->held = calloc(RELAY_HELD, sizeof *r->held);
  assert_non_null(r->held);
  pn_actor *a = pn_test_spawn(rt, "relay", relay_handler, r, -1);
  r->actor = a;
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  sc.owner = a;
  PN_ASSERT_OK(pn_socket_open(rt, &sc, &r->sock));
  PN_ASSERT_OK(pn_socket_local_addr(r->sock, &r->local));
  return a;
}

relay *relay_pair_open(net_pair *p, const net_pair_opts *o, uint64_t salt) {
  net_pair_start(p, o);
  relay *r = calloc(1, sizeof *r);
  r->server = p->server_addr;
  r->rng = pn_test_seed() ^ salt;
  pn_actor *a = relay_spawn(p->rt, r);
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  sc.owner = a;
  PN_ASSERT_OK(pn_socket_open(p->rt, &sc, &r->alt));
  PN_ASSERT_OK(pn_socket_local_addr(r->alt, &r->alt_local));
  net_pair_adopt_actor(p, a);
  net_pair_connect(p, o, &r->local);
  return r;
}
