/* libFuzzer target for both halves of the handshake (handshake.c): the
 * host's stateless answers to ConnectRequest and ConnectResponse, the
 * server peer it creates, and a connecting client peer's handling of
 * Challenge, Accept and Reject.
 *
 * Each input (format in fuzz_handshake.h) starts a client peer of the
 * host as pn_host_connect() and the host actor would (created, counted,
 * registered, started: it sends its ConnectRequest), then runs a script
 * on the host's worker. Handshake bodies come from the fuzzer and get a
 * valid tag from the harness; the harness can also add what only a real
 * counterpart knows: a valid cookie (pn__handshake_cookie), the client's
 * ids, the client's own ConnectResponse, the Accept the server peer made
 * for it. So a script can run a whole handshake, both peers' first DATA
 * datagrams, retries, lost Accepts resent, rejections and disconnects,
 * and anything in between.
 *
 * Checked, besides ASan and UBSan and the library's own assertions:
 *   - a client that reaches CONNECTED has the keys of a server peer the
 *     host accepted for it (its receive key is that peer's send key and
 *     the other way round), and never when it pins a key that is not the
 *     host's;
 *   - every peer closes and is freed, and no actor or timer outlives the
 *     input (fuzz_net.c). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/handshake.h"
#include "actors/msg_ids.h"
#include "runtime/clock.h"
#include "tests/fuzz/fuzz_handshake.h"
#include "tests/fuzz/fuzz_net.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 64u
#define MAX_BODY 2048u
#define REFUSE_CHANNELS 7u /* the accept hook refuses this many channels */
#define REFUSE_REASON 42u

static bool verbose; /* PEERNET_FUZZ_VERBOSE: each op's states */
static uint8_t body[MAX_BODY + 512];
static uint8_t dg[MAX_BODY + 1024];
static const uint8_t zeros[PN__HANDSHAKE_PAD];

/* The key a client of this harness may present (start_client). */
static const uint8_t client_secret[PN_KEY_BYTES] = {0x33, 0x44};
static uint8_t client_public[PN_KEY_BYTES];

static uint32_t accept_hook(void *ctx, const pn_accept_info *info) {
  (void)ctx;
  if (info->client_key &&
      memcmp(info->client_key, client_public, PN_KEY_BYTES) != 0) {
    fz_broken("the accept hook got a client key nobody proved");
  }
  static const char want[] = "fuzz login token";
  if (info->data_len && (info->data_len != sizeof want - 1 ||
                         memcmp(info->data, want, info->data_len) != 0)) {
    fz_broken("the accept hook got connect data the client did not send");
  }
  return info->channels == REFUSE_CHANNELS ? REFUSE_REASON : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0) {
    abort();
  }
  verbose = getenv("PEERNET_FUZZ_VERBOSE") != NULL;
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.accept = accept_hook;
  if (crypto_scalarmult_base(client_public, client_secret) != 0) {
    fz_broken("client key");
  }
  cfg.connect_retry_us = 1; /* every tick retries */
  cfg.max_peers = 8;        /* PN_REASON_FULL within one input */
  cfg.max_peers_per_address = 4;
  fz_init(&cfg, NULL);
  return 0;
}

typedef struct script {
  fz_in in;
  pn_peer *client; /* the caller's reference */
  bool pinned_wrong;
} script;

static uint64_t now_ms(void) { return pn__now_ns() / 1000000u; }

/* The accepted server peer of the client, if any. */
static pn_peer *server_peer(const script *s) {
  return pn__host_find_accepted(fz.host, &fz.sink, s->client->local_id);
}

/* The body's length and bytes from the input, appended to body[0..len). */
static size_t read_body(script *s, size_t len) {
  size_t want = fz_u16(&s->in) % MAX_BODY, got;
  const uint8_t *b = fz_bytes(&s->in, want, &got);
  memcpy(body + len, b, got);
  return len + got;
}

/* Padding (field 15) so the datagram is at least PN__HANDSHAKE_PAD. */
static size_t pad(size_t len) {
  size_t min = PN__HANDSHAKE_PAD - PN__WIRE_OVERHEAD;
  if (len >= min) {
    return len;
  }
  /* The field's tag and length take 2 or 3 bytes more: a little over. */
  return fz_pb_bytes(body, len, sizeof body, 15, zeros, min - len);
}

/* The client's ids (client_id field 1, client_nonce field 2: the same in
 * Challenge, Accept and Reject). */
static size_t client_ids(const script *s, size_t len) {
  len = fz_pb_varint(body, len, sizeof body, 1, s->client->local_id);
  return fz_pb_fixed64(body, len, sizeof body, 2, s->client->client_nonce);
}

/* body[0..len) as a sealed handshake datagram in dg. */
static size_t seal(uint8_t type, uint8_t version, uint32_t conn_id,
                   size_t len) {
  pn__wire_put_header(dg, type, false, conn_id);
  dg[0] = version;
  memcpy(dg + PN__WIRE_HEADER, body, len);
  return pn__wire_seal(dg, PN__WIRE_HEADER + len, pn__wire_public_key);
}

/* As the host actor routes a datagram from the network (host.c's
 * on_datagram), from the client's address. */
static void host_route(const uint8_t *data, size_t len) {
  pn__wire_header hdr;
  if (!pn__wire_peek(data, len, &hdr)) {
    return;
  }
  if (hdr.type == PN__T_CONNECT_REQUEST) {
    pn__handshake_on_request(fz.host, 0, &fz.sink, data, len, hdr.version);
  } else if (hdr.type == PN__T_CONNECT_RESPONSE) {
    pn__handshake_on_response(fz.host, 0, &fz.sink, data, len);
  } else {
    pn_peer *p = pn__idmap_get(&fz.host->by_id, hdr.conn_id);
    if (p) {
      fz_peer_recv(p, data, len);
    }
  }
}

static void op_request(script *s, uint8_t flags) {
  size_t len = read_body(s, 0);
  if (flags & 4u) {
    len = pad(len);
  }
  uint8_t version = (flags & 3u) ? (flags & 3u) : PN__WIRE_VERSION;
  host_route(dg, seal(PN__T_CONNECT_REQUEST, version, 0, len));
}

static void op_response(script *s, uint8_t flags) {
  size_t len = read_body(s, 0);
  if (flags & 1u) {
    Peernet__Wire__V1__ConnectResponse *r =
        peernet__wire__v1__connect_response__unpack(NULL, len, body);
    if (r && r->client_kx.len == PN_KEY_BYTES) {
      uint64_t ts = now_ms();
      uint8_t cookie[PN__COOKIE_BYTES];
      pn__handshake_cookie(fz.host, &fz.sink, r->client_id, r->client_nonce,
                           r->client_kx.data, ts, cookie);
      len = fz_pb_varint(body, len, sizeof body, 3, ts);
      len = fz_pb_bytes(body, len, sizeof body, 4, cookie, sizeof cookie);
    }
    peernet__wire__v1__connect_response__free_unpacked(r, NULL);
  }
  if (flags & 2u) {
    len = pad(len);
  }
  host_route(dg, seal(PN__T_CONNECT_RESPONSE, PN__WIRE_VERSION, 0, len));
}

/* The ConnectResponse the client would send once it had the host's
 * cookie (handshake.c's pn__handshake_send_connect). */
static void op_serve(script *s, uint8_t flags) {
  pn_peer *c = s->client;
  if (!c->hs) {
    (void)read_body(s, 0);
    return; /* connected or closed: its handshake state is gone */
  }
  uint8_t kinds[PN_MAX_CHANNELS];
  for (uint32_t i = 0; i < c->nchannels; i++) {
    kinds[i] = (uint8_t)c->channels[i].kind;
  }
  uint8_t cookie[PN__COOKIE_BYTES];
  Peernet__Wire__V1__ConnectResponse r =
      PEERNET__WIRE__V1__CONNECT_RESPONSE__INIT;
  r.client_id = c->local_id;
  r.client_nonce = c->client_nonce;
  r.timestamp_ms = now_ms();
  pn__handshake_cookie(fz.host, &fz.sink, r.client_id, r.client_nonce,
                       c->hs->kx_public, r.timestamp_ms, cookie);
  r.cookie.data = cookie;
  r.cookie.len = sizeof cookie;
  r.channel_kinds.data = kinds;
  r.channel_kinds.len = c->nchannels;
  r.dict_hash = (flags & 2u) ? 0x5EED : fz.host->dict_hash;
  r.aes_gcm = (flags & 1u) != 0;
  r.client_kx.data = c->hs->kx_public;
  r.client_kx.len = PN_KEY_BYTES;
  if (c->hs->has_client_key || c->hs->data_len) {
    /* Its proof and sealed data cover the cookie and the server's key: the
     * client makes them from a Challenge, so it gets the host's own. */
    Peernet__Wire__V1__Challenge ch = PEERNET__WIRE__V1__CHALLENGE__INIT;
    ch.client_id = c->local_id;
    ch.client_nonce = c->client_nonce;
    ch.timestamp_ms = r.timestamp_ms;
    ch.cookie.data = cookie;
    ch.cookie.len = sizeof cookie;
    ch.server_key.data = fz.host->public_key;
    ch.server_key.len = PN_KEY_BYTES;
    size_t n = protobuf_c_message_pack(&ch.base, body);
    fz_peer_recv(c, dg,
                 seal(PN__T_CHALLENGE, PN__WIRE_VERSION, c->local_id, n));
    if (!c->hs || !c->cookie_len) {
      (void)read_body(s, 0);
      return; /* it gave up (a pinned key that is not the host's) */
    }
    if (c->hs->has_client_key) {
      r.client_key.data = c->hs->client_public;
      r.client_key.len = PN_KEY_BYTES;
      r.client_proof.data = c->hs->proof;
      r.client_proof.len = PN__PROOF_BYTES;
    }
    if (c->hs->data_len) {
      r.connect_data.data = c->hs->data + c->hs->data_len;
      r.connect_data.len = c->hs->data_len + PN__SEAL_BYTES;
    }
  }
  size_t len = protobuf_c_message_pack(&r.base, body);
  len = pad(read_body(s, len));
  host_route(dg, seal(PN__T_CONNECT_RESPONSE, PN__WIRE_VERSION, 0, len));
}

/* The keys of a client that just connected are those of a server peer
 * the host made for it. */
static void check_connected(const script *s) {
  pn_peer *c = s->client;
  if (pn__peer_state(c) != PN_PEER_CONNECTED) {
    return;
  }
  if (s->pinned_wrong) {
    fz_broken("a client pinning another key connected");
  }
  pn_peer *sp = server_peer(s);
  if (!sp || memcmp(c->dkeys.rx.key, sp->dkeys.tx.key, PN__DATA_KEY_BYTES) ||
      memcmp(c->dkeys.tx.key, sp->dkeys.rx.key, PN__DATA_KEY_BYTES) ||
      c->aes_gcm != sp->aes_gcm || c->remote_id != sp->local_id) {
    fz_broken("a client connected without the server peer's keys");
  }
}

static void op_accept(script *s, uint8_t flags) {
  size_t len = 0;
  pn_peer *sp = server_peer(s);
  if ((flags & 1u) && sp && sp->hs) {
    /* handshake.c's send_accept */
    Peernet__Wire__V1__Accept a = PEERNET__WIRE__V1__ACCEPT__INIT;
    a.client_id = sp->remote_id;
    a.client_nonce = sp->client_nonce;
    a.server_id = sp->local_id;
    a.server_nonce = sp->server_nonce;
    a.aes_gcm = sp->aes_gcm;
    a.server_kx.data = sp->hs->kx_public;
    a.server_kx.len = PN_KEY_BYTES;
    a.server_key.data = fz.host->public_key;
    a.server_key.len = PN_KEY_BYTES;
    a.confirm.data = sp->hs->confirm;
    a.confirm.len = PN__CONFIRM_BYTES;
    len = protobuf_c_message_pack(&a.base, body);
  }
  len = read_body(s, len);
  if (flags & 2u) {
    len = client_ids(s, len);
  }
  fz_peer_recv(s->client, dg,
               seal(PN__T_ACCEPT, PN__WIRE_VERSION, s->client->local_id, len));
  check_connected(s);
}

static void op_reply(script *s, uint8_t type, uint8_t flags) {
  size_t len = read_body(s, 0);
  if (flags & 1u) {
    len = client_ids(s, len);
  }
  fz_peer_recv(s->client, dg,
               seal(type, PN__WIRE_VERSION, s->client->local_id, len));
}

/* A ping from one connected peer to the other, sealed with a copy of the
 * sender's key (its own stays as it was: it sent nothing). */
static void op_data(script *s, uint8_t flags) {
  pn_peer *sp = server_peer(s);
  pn_peer *from = (flags & 1u) ? sp : s->client;
  pn_peer *to = (flags & 1u) ? s->client : sp;
  if (!from || !to || pn__peer_state(from) != PN_PEER_CONNECTED) {
    return;
  }
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  pk.ping = true;
  size_t len = protobuf_c_message_pack(&pk.base, dg + PN__DATA_HEADER);
  uint64_t seq = to->rx.highest + 1;
  pn__wire_put_data_header(dg, false, from->remote_id, seq);
  pn__dir_key k = from->dkeys.tx;
  len = pn__data_seal(&k, seq, dg, PN__DATA_HEADER + len);
  sodium_memzero(&k, sizeof k);
  fz_peer_recv(to, dg, len);
}

static void spin_us(uint64_t us) {
  uint64_t until = pn__now_ns() + us * 1000u;
  while (pn__now_ns() < until) {
  }
}

static void start_client(script *s) {
  uint8_t config = fz_u8(&s->in);
  uint32_t nch = 1u + (config >> 4);
  pn_channel_kind kinds[16];
  for (uint32_t i = 0; i < nch; i++) {
    kinds[i] = (pn_channel_kind)(fz_u8(&s->in) % PN_CHANNEL_KINDS);
  }
  uint8_t other_key[PN_KEY_BYTES];
  memset(other_key, 0x77, sizeof other_key);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = fz.sink;
  pc.owner = fz.owner;
  pc.channel_count = nch;
  pc.kinds = kinds;
  if (config & 2u) {
    pc.server_key = other_key;
    s->pinned_wrong = true;
  } else if (config & 1u) {
    pc.server_key = fz.host->public_key;
  }
  /* Bit 2: a key of its own; bit 3: connect data (both reach the accept
   * hook, proven and opened, when the ConnectResponse is the client's). */
  static const char connect_data[] = "fuzz login token";
  if (config & 4u) {
    pc.client_key = client_secret;
  }
  if (config & 8u) {
    pc.connect_data = connect_data;
    pc.connect_data_len = sizeof connect_data - 1;
  }
  /* pn_host_connect() counts it and creates it; the host actor's
   * PN__H_REGISTER gives it an id and starts it. */
  pn_host *h = fz.host;
  atomic_fetch_add_explicit(&h->npeers, 1, memory_order_relaxed);
  if (pn__peer_create(h, &pc, true, &s->client) != PN_OK) {
    fz_broken("client creation");
  }
  pn_peer_hold(s->client);
  if (!pn__host_register(h, s->client)) {
    fz_broken("client registration");
  }
  fz_peer_call(s->client, PN__P_START, NULL, 0, NULL, 0);
}

/* The peers this input made that are still open, held for fz_settle. */
static pn_peer *open_peers[64];
static size_t nopen;

static void close_all(script *s) {
  nopen = 0;
  pn__idmap *ids = &fz.host->by_id;
  for (size_t i = 0; i < ids->cap && nopen < 63; i++) {
    pn_peer *p = ids->slots[i].value;
    if (ids->slots[i].key && p && p != s->client) {
      pn_peer_hold(p);
      open_peers[nopen++] = p;
    }
  }
  for (size_t i = 0; i < nopen; i++) {
    pn__peer_close(open_peers[i], PN_REASON_HOST_CLOSED, false);
  }
  pn__peer_close(s->client, PN_REASON_HOST_CLOSED, false);
  open_peers[nopen++] = s->client;
  /* Each input starts without the last one's ephemeral pair (and its
   * timer does not outlive the input). */
  pn__handshake_eph_forget(fz.host);
  if (fz.host->by_id.count ||
      atomic_load_explicit(&fz.host->npeers, memory_order_relaxed)) {
    fz_broken("peers left in the host's tables");
  }
}

static void run_script(void *ctx) {
  script *s = ctx;
  start_client(s);
  for (uint32_t ops = 0; s->in.n && ops < MAX_OPS; ops++) {
    uint8_t op = fz_u8(&s->in);
    uint8_t flags = op >> 4;
    pn_peer *sp = server_peer(s);
    switch ((op & 15u) % FZ_HS_OPS) {
    case FZ_HS_REQUEST:
      op_request(s, flags);
      break;
    case FZ_HS_RESPONSE:
      op_response(s, flags);
      break;
    case FZ_HS_SERVE:
      op_serve(s, flags);
      break;
    case FZ_HS_CHALLENGE:
      op_reply(s, PN__T_CHALLENGE, flags);
      break;
    case FZ_HS_ACCEPT:
      op_accept(s, flags);
      break;
    case FZ_HS_REJECT:
      op_reply(s, PN__T_REJECT, flags);
      break;
    case FZ_HS_TICK:
      spin_us(2);
      if (!(flags & 1u)) {
        fz_peer_call(s->client, PN__P_TICK, NULL, 0, NULL, 0);
      } else if (sp) {
        fz_peer_call(sp, PN__P_TICK, NULL, 0, NULL, 0);
      }
      break;
    case FZ_HS_DATA:
      op_data(s, flags);
      break;
    case FZ_HS_DISCONNECT: {
      pn_peer *p = (flags & 1u) ? sp : s->client;
      pn__disconnect_request rq = {.reason = 9};
      if (p) {
        fz_peer_call(p, PN__P_DISCONNECT, &rq, sizeof rq, NULL, 0);
      }
      break;
    }
    case FZ_HS_FLUSH:
      fz_peer_call(s->client, PN_MSG_BATCH_END, NULL, 0, NULL, 0);
      if (sp) {
        fz_peer_call(sp, PN_MSG_BATCH_END, NULL, 0, NULL, 0);
      }
      break;
    case FZ_HS_RAW: {
      size_t len = read_body(s, 0);
      memcpy(dg, body, len);
      if (flags & 1u) {
        host_route(dg, len);
      } else {
        fz_peer_recv(s->client, dg, len);
      }
      break;
    }
    default:
      break;
    }
    if (verbose) {
      pn_peer *now_sp = server_peer(s);
      fprintf(stderr, "op %u: client state %d, server peer state %d\n",
              op & 15u, (int)pn__peer_state(s->client),
              now_sp ? (int)pn__peer_state(now_sp) : -1);
    }
  }
  close_all(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  script s = {.in = {data, size}};
  fz_run(run_script, &s);
  fz_settle(open_peers, nopen);
  return 0;
}
