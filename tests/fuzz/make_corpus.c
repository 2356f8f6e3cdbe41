/* Writes the fuzzers' seed corpora. For fuzz_datagram: one valid datagram
 * of each type, and DATA with whole messages, fragments,
 * acknowledgements, a ping, a disconnect and a zstd body. For fuzz_peer
 * and fuzz_handshake: scripts (fuzz_peer.h, fuzz_handshake.h) that reach
 * each part of the state machines: every channel kind, reassembly, the
 * ORDERED hold buffer, acknowledgements of the peer's own sends, ticks,
 * both disconnects, a whole handshake, retries, rejections. Every value is
 * fixed, so the files only change when the formats (or zstd's output) do.
 *
 *   make_corpus DIR [PEER_DIR HANDSHAKE_DIR]   writes <name>.bin files */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "actors/wire.h"
#include "peernet/net.h"
#include "peernet/socket.h"
#include "tests/fuzz/fuzz_handshake.h"
#include "tests/fuzz/fuzz_peer.h"

/* DATA datagrams are encrypted with ChaCha20-Poly1305 under 32 bytes of
 * 0x42 (both directions): the fuzzer opens them with the same key. */
static pn__data_keys data_key;
static const uint8_t cookie[16] = {0xC0, 0x0C, 0x1E, 3,  4,  5,  6,  7,
                                   8,    9,    10,   11, 12, 13, 14, 15};
static const uint8_t kinds[5] = {2, 0, 1, 3, 4};

static const char *dir;
static int failures;

static void write_file(const char *name, const uint8_t *b, size_t len) {
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s.bin", dir, name);
  FILE *f = n > 0 && (size_t)n < sizeof path ? fopen(path, "wb") : NULL;
  if (!f || fwrite(b, 1, len, f) != len) {
    fprintf(stderr, "make_corpus: cannot write %s\n", path);
    failures++;
  }
  if (f) {
    fclose(f);
  }
}

/* Packs m after a header, padded like a client's handshake when padding
 * is given, sealed with the public key. */
static void handshake(const char *name, uint8_t type, uint32_t conn_id,
                      ProtobufCMessage *m, ProtobufCBinaryData *padding) {
  uint8_t buf[PN_DATAGRAM_MAX];
  write_file(name, buf,
             pn__wire_pack_handshake(buf, type, conn_id, m, padding,
                                     PN__HANDSHAKE_PAD));
}

/* The sequence goes in the header (version 2); the body's field stays 0. */
static void data(const char *name, Peernet__Wire__V1__Packet *pk, uint64_t seq,
                 bool zstd) {
  uint8_t raw[4096], buf[4096];
  size_t body = protobuf_c_message_pack(&pk->base, raw);
  if (zstd) {
    size_t z = ZSTD_compress(buf + PN__DATA_HEADER,
                             sizeof buf - PN__DATA_OVERHEAD, raw, body, 1);
    if (ZSTD_isError(z)) {
      failures++;
      return;
    }
    body = z;
  } else {
    memcpy(buf + PN__DATA_HEADER, raw, body);
  }
  /* Connection id 0x00000F07: the fuzzer reads channels and max_message
   * choices from bytes 2 and 3 (here 64 channels, 4 MiB). */
  pn__wire_put_data_header(buf, zstd, 0x00000F07u, seq);
  write_file(name, buf,
             pn__data_seal(&data_key.tx, seq, buf, PN__DATA_HEADER + body));
}

/* --- scripts -------------------------------------------------------------- */

static uint8_t script[4096];
static size_t slen;

static void b(uint8_t v) {
  if (slen < sizeof script) {
    script[slen++] = v;
  }
}

static void b16(uint16_t v) {
  b((uint8_t)v);
  b((uint8_t)(v >> 8));
}

static void b64(uint64_t v) {
  for (int i = 0; i < 8; i++) {
    b((uint8_t)(v >> (8 * i)));
  }
}

static void bytes(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    b(p[i]);
  }
}

static void script_done(const char *name) {
  write_file(name, script, slen);
  slen = 0;
}

/* fuzz_peer: a DATA datagram of frames, the next sequence (selector 64)
 * unless seq_sel says otherwise (0xF0: the low 32 bits are `low`). */
static void frames_seq(uint8_t seq_sel, uint32_t low, uint16_t ack,
                       uint64_t ack_bits, uint8_t flags, uint8_t nframes) {
  b(FZ_OP_FRAMES);
  b(seq_sel);
  if (seq_sel >= 0xF0) {
    b16((uint16_t)low);
    b16((uint16_t)(low >> 16));
  }
  b16(ack);
  b64(ack_bits);
  b(10); /* 1 ms */
  b(flags);
  b(nframes);
}

static void frames_op(uint8_t seq_sel, uint16_t ack, uint64_t ack_bits,
                      uint8_t flags, uint8_t nframes) {
  frames_seq(seq_sel, 0, ack, ack_bits, flags, nframes);
}

static void frame(uint8_t ch, uint16_t seq, uint8_t count, uint8_t index,
                  uint16_t msg_len) {
  b(ch);
  b16(seq);
  b(count);
  b(index);
  b16(msg_len);
  b(0); /* payload as the sender cuts it */
}

static void send_op(uint8_t ch, uint16_t len) {
  b((uint8_t)(FZ_OP_SEND | ch << 3));
  b16(len);
}

static void peer_scripts(void) {
  /* Every kind: two whole messages each, the second first on ORDERED
   * (held, then released). */
  b(0x40);
  for (uint8_t k = 0; k < 5; k++) {
    b(k);
  }
  frames_op(64, 0, 0, 0, 5);
  for (uint8_t c = 0; c < 5; c++) {
    frame(c, 2, 1, 0, 40);
  }
  frames_op(64, 0, 0, FZ_DG_PING, 5);
  for (uint8_t c = 0; c < 5; c++) {
    frame(c, 1, 1, 0, (uint16_t)(10 * c));
  }
  b(FZ_OP_FLUSH);
  script_done("peer_kinds");

  /* Fragments out of order, on ORDERED and RELIABLE_UNORDERED, with a
   * whole message held behind the first. */
  b(0x10);
  b(PN_CHANNEL_ORDERED);
  b(PN_CHANNEL_RELIABLE_UNORDERED);
  frames_op(64, 0, 0, 0, 3);
  frame(0, 1, 3, 2, 3000);
  frame(0, 2, 1, 0, 100);
  frame(1, 1, 4, 3, 2500);
  frames_op(66, 0, 0, 0, 2); /* a gap in the datagram sequence */
  frame(0, 1, 3, 0, 3000);
  frame(1, 1, 4, 0, 2500);
  frames_op(63, 0, 0, 0, 3); /* fills the gap */
  frame(0, 1, 3, 1, 3000);
  frame(1, 1, 4, 1, 2500);
  frame(1, 1, 4, 2, 2500);
  b(FZ_OP_FLUSH);
  b(FZ_OP_TICK | 1u << 3); /* partials expire */
  script_done("peer_fragments");

  /* The peer's own sends, acknowledged in part, the rest lost to the gap
   * rule and the RTO, resent, then acknowledged. */
  b(0x20);
  b(PN_CHANNEL_ORDERED);
  b(PN_CHANNEL_UNRELIABLE);
  b(PN_CHANNEL_RELIABLE);
  send_op(0, 100);
  send_op(1, 200);
  send_op(2, 5000);
  send_op(0, 300);
  b(FZ_OP_FLUSH);
  frames_op(64, 6, 0x5, FZ_DG_PING, 0);
  b(FZ_OP_FLUSH);
  b(FZ_OP_TICK);
  b(FZ_OP_FLUSH);
  frames_op(64, 12, ~0ull, 0, 0);
  send_op(1, 10);
  b(FZ_OP_FLUSH);
  b(FZ_OP_TICK);
  b(FZ_OP_FLUSH);
  script_done("peer_acks");

  /* Datagrams declared lost by an acknowledgement of a later one, then
   * named after all (LATE), with the older half of the record. */
  b(0x10);
  b(PN_CHANNEL_UNRELIABLE);
  b(PN_CHANNEL_RELIABLE);
  for (int i = 0; i < 6; i++) {
    send_op(i & 1, 1000);
    b(FZ_OP_FLUSH);
  }
  frames_op(64, 6, 0, 0, 0);
  b(FZ_OP_FLUSH);
  frames_op(64, 7, ~0ull, FZ_DG_MORE_BITS, 0);
  b(FZ_OP_TICK);
  b(FZ_OP_FLUSH);
  script_done("peer_late_acks");

  /* A remote disconnect after a message. */
  b(0x01); /* the client side */
  b(PN_CHANNEL_RELIABLE);
  frames_op(64, 0, 0, FZ_DG_DISCONNECT, 1);
  frame(0, 1, 1, 0, 16);
  script_done("peer_remote_disconnect");

  /* A local disconnect with a send in flight, its goodbye resent, then
   * acknowledged. */
  b(0x00);
  b(PN_CHANNEL_ORDERED);
  send_op(0, 64);
  b(FZ_OP_FLUSH);
  b(FZ_OP_DISCONNECT);
  b(3);
  b(FZ_OP_FLUSH);
  b(FZ_OP_TICK);
  b(FZ_OP_FLUSH);
  frames_op(64, 3, ~0ull, 0, 0);
  script_done("peer_local_disconnect");

  /* zstd, a replay, a forgery, a bad zstd flag, a far sequence in the
   * next key epoch. */
  b(0x02);
  b(PN_CHANNEL_UNSEQUENCED);
  frames_op(64, 0, 0, FZ_DG_ZSTD, 1);
  frame(0, 1, 1, 0, 1000);
  b(FZ_OP_REPLAY);
  frames_op(64, 0, 0, FZ_DG_CORRUPT, 1);
  frame(0, 2, 1, 0, 10);
  frames_op(64, 0, 0, FZ_DG_BAD_ZSTD, 1);
  frame(0, 3, 1, 0, 10);
  frames_seq(0xF0, 1u << 28, 0, 0, 0, 1);
  frame(0, 4, 1, 0, 10);
  script_done("peer_zstd_replay_epoch");

  /* A raw Packet body: a ping and one frame, as protobuf packs it. */
  b(0x00);
  b(PN_CHANNEL_RELIABLE);
  static const uint8_t raw[] = {0x38, 0x01, 0x42, 0x08, 0x10, 0x01,
                                0x32, 0x04, 'p',  'e',  'e',  'r'};
  b(FZ_OP_RAW);
  b(64);
  b(0);
  b16(sizeof raw);
  bytes(raw, sizeof raw);
  b(FZ_OP_FLUSH);
  script_done("peer_raw");
}

static void hs_body(const ProtobufCMessage *m) {
  uint8_t buf[1024];
  size_t n = protobuf_c_message_pack(m, buf);
  b16((uint16_t)n);
  bytes(buf, n);
}

static void handshake_scripts(void) {
  /* A whole handshake, both first DATA datagrams, a late resend. */
  b(0x11);
  b(PN_CHANNEL_ORDERED);
  b(PN_CHANNEL_UNRELIABLE);
  b(FZ_HS_TICK);
  b(FZ_HS_SERVE);
  b16(0);
  b(FZ_HS_SERVE); /* a retry: the Accept again */
  b16(0);
  b(FZ_HS_ACCEPT | 1u << 4);
  b16(0);
  b(FZ_HS_DATA | 1u << 4);
  b(FZ_HS_DATA);
  b(FZ_HS_FLUSH);
  b(FZ_HS_TICK | 1u << 4);
  b(FZ_HS_DISCONNECT);
  b(FZ_HS_FLUSH);
  script_done("hs_connect");

  /* A client with a key of its own and connect data, pinning the host's
   * key: the hook sees both; both first DATA datagrams. */
  b(0x1D);
  b(PN_CHANNEL_ORDERED);
  b(PN_CHANNEL_RELIABLE);
  b(FZ_HS_SERVE);
  b16(0);
  b(FZ_HS_ACCEPT | 1u << 4);
  b16(0);
  b(FZ_HS_DATA | 1u << 4);
  b(FZ_HS_DATA);
  b(FZ_HS_FLUSH);
  script_done("hs_client_key");

  /* A client pinning another key; then one refused by the accept hook
   * (seven channels). */
  b(0x02);
  b(PN_CHANNEL_RELIABLE);
  b(FZ_HS_SERVE | 1u << 4);
  b16(0);
  b(FZ_HS_ACCEPT | 1u << 4);
  b16(0);
  script_done("hs_pinned_other");
  b(0x60);
  for (int i = 0; i < 7; i++) {
    b(PN_CHANNEL_UNSEQUENCED);
  }
  b(FZ_HS_SERVE);
  b16(0);
  b(FZ_HS_SERVE | 2u << 4); /* another dictionary */
  b16(0);
  script_done("hs_refused");

  /* A Challenge (then the client's ConnectResponse goes out), a Reject. */
  b(0x00);
  b(PN_CHANNEL_ORDERED);
  Peernet__Wire__V1__Challenge ch = PEERNET__WIRE__V1__CHALLENGE__INIT;
  ch.timestamp_ms = 1;
  ch.cookie.data = (uint8_t *)cookie;
  ch.cookie.len = sizeof cookie;
  b(FZ_HS_CHALLENGE | 1u << 4);
  hs_body(&ch.base);
  b(FZ_HS_TICK);
  Peernet__Wire__V1__Reject rj = PEERNET__WIRE__V1__REJECT__INIT;
  rj.reason = 0xFFFFFF03u;
  b(FZ_HS_REJECT | 1u << 4);
  hs_body(&rj.base);
  script_done("hs_challenge_reject");

  /* Requests to the host: current and old versions, padded and not; a
   * ConnectResponse with a valid cookie. */
  b(0x00);
  b(PN_CHANNEL_ORDERED);
  Peernet__Wire__V1__ConnectRequest rq =
      PEERNET__WIRE__V1__CONNECT_REQUEST__INIT;
  static uint8_t kx[32] = {9}; /* the X25519 base point */
  rq.version = PN__WIRE_VERSION;
  rq.client_id = 77;
  rq.client_nonce = 0x1122334455667788ull;
  rq.channel_kinds.data = (uint8_t *)kinds;
  rq.channel_kinds.len = sizeof kinds;
  rq.client_kx.data = kx;
  rq.client_kx.len = sizeof kx;
  b(FZ_HS_REQUEST | 4u << 4);
  hs_body(&rq.base);
  b(FZ_HS_REQUEST | 5u << 4);
  hs_body(&rq.base);
  b(FZ_HS_REQUEST);
  hs_body(&rq.base);
  Peernet__Wire__V1__ConnectResponse rs =
      PEERNET__WIRE__V1__CONNECT_RESPONSE__INIT;
  rs.client_id = rq.client_id;
  rs.client_nonce = rq.client_nonce;
  rs.channel_kinds = rq.channel_kinds;
  rs.client_kx = rq.client_kx;
  b(FZ_HS_RESPONSE | 3u << 4);
  hs_body(&rs.base);
  b(FZ_HS_RESPONSE | 3u << 4); /* the same again: the Accept resent */
  hs_body(&rs.base);
  script_done("hs_host");
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 4) {
    fprintf(stderr, "usage: make_corpus DIR [PEER_DIR HANDSHAKE_DIR]\n");
    return 2;
  }
  dir = argv[1];
  if (sodium_init() < 0) {
    return 1;
  }
  uint8_t key[PN__DATA_KEY_BYTES];
  memset(key, 0x42, sizeof key);
  pn__data_keys_init(&data_key, key, key, false);

  Peernet__Wire__V1__ConnectRequest rq =
      PEERNET__WIRE__V1__CONNECT_REQUEST__INIT;
  rq.version = PN__WIRE_VERSION;
  rq.client_id = 0x01020304u;
  rq.client_nonce = 0x1122334455667788ull;
  rq.channel_kinds.data = (uint8_t *)kinds;
  rq.channel_kinds.len = sizeof kinds;
  static uint8_t kx[32];
  memset(kx, 0x21, sizeof kx);
  rq.client_kx.data = kx;
  rq.client_kx.len = sizeof kx;
  handshake("connect_request", PN__T_CONNECT_REQUEST, 0, &rq.base, &rq.padding);
  rq.padding.len = 0;
  handshake("connect_request_unpadded", PN__T_CONNECT_REQUEST, 0, &rq.base,
            NULL);

  Peernet__Wire__V1__Challenge ch = PEERNET__WIRE__V1__CHALLENGE__INIT;
  ch.client_id = rq.client_id;
  ch.client_nonce = rq.client_nonce;
  ch.timestamp_ms = 123456789;
  ch.cookie.data = (uint8_t *)cookie;
  ch.cookie.len = sizeof cookie;
  handshake("challenge", PN__T_CHALLENGE, rq.client_id, &ch.base, NULL);

  Peernet__Wire__V1__ConnectResponse rs =
      PEERNET__WIRE__V1__CONNECT_RESPONSE__INIT;
  rs.client_id = rq.client_id;
  rs.client_nonce = rq.client_nonce;
  rs.timestamp_ms = ch.timestamp_ms;
  rs.cookie = ch.cookie;
  rs.channel_kinds = rq.channel_kinds;
  rs.client_kx = rq.client_kx;
  handshake("connect_response", PN__T_CONNECT_RESPONSE, 0, &rs.base,
            &rs.padding);

  Peernet__Wire__V1__Accept ac = PEERNET__WIRE__V1__ACCEPT__INIT;
  ac.client_id = rq.client_id;
  ac.client_nonce = rq.client_nonce;
  ac.server_id = 0x0A0B0C0Du;
  ac.server_nonce = 0x8877665544332211ull;
  static uint8_t skx[32], skey[32], confirm[16];
  memset(skx, 0x31, sizeof skx);
  memset(skey, 0x41, sizeof skey);
  memset(confirm, 0x51, sizeof confirm);
  ac.server_kx.data = skx;
  ac.server_kx.len = sizeof skx;
  ac.server_key.data = skey;
  ac.server_key.len = sizeof skey;
  ac.confirm.data = confirm;
  ac.confirm.len = sizeof confirm;
  handshake("accept", PN__T_ACCEPT, rq.client_id, &ac.base, NULL);

  Peernet__Wire__V1__Reject rj = PEERNET__WIRE__V1__REJECT__INIT;
  rj.client_id = rq.client_id;
  rj.client_nonce = rq.client_nonce;
  rj.reason = 0xFFFFFF03u; /* PN_REASON_FULL */
  handshake("reject", PN__T_REJECT, rq.client_id, &rj.base, NULL);

  /* DATA: two whole messages. */
  static uint8_t text[3000];
  for (size_t i = 0; i < sizeof text; i++) {
    text[i] = (uint8_t) "peernet fuzz seed "[i % 18];
  }
  Peernet__Wire__V1__Frame f[3];
  Peernet__Wire__V1__Frame *fp[3] = {&f[0], &f[1], &f[2]};
  for (int i = 0; i < 3; i++) {
    peernet__wire__v1__frame__init(&f[i]);
  }
  f[0].channel = 0;
  f[0].msg_seq = 1;
  f[0].payload.data = text;
  f[0].payload.len = 40;
  f[1].channel = 3;
  f[1].msg_seq = 9;
  f[1].payload.data = text + 40;
  f[1].payload.len = 100;
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  pk.frames = fp;
  pk.n_frames = 2;
  data("data_whole", &pk, 1, false);

  /* DATA: fragments 0 and 2 of a 3000-byte message in three, with
   * acknowledgements. */
  f[0].channel = 1;
  f[0].msg_seq = 4;
  f[0].frag_count = 3;
  f[0].frag_index = 0;
  f[0].msg_len = 3000;
  f[0].payload.data = text;
  f[0].payload.len = 1000;
  f[1] = f[0];
  f[1].frag_index = 2;
  f[1].payload.data = text + 2000;
  pk.ack = 75;
  pk.ack_bits = 0x5555555555555555ull;
  pk.ack_delay_us = 1500;
  data("data_fragments", &pk, 77, false);

  /* DATA: acknowledgements and a ping only; a disconnect. */
  Peernet__Wire__V1__Packet ping = PEERNET__WIRE__V1__PACKET__INIT;
  ping.ack = 80;
  ping.ack_bits = ~0ull;
  ping.ping = true;
  data("data_ping", &ping, 78, false);
  Peernet__Wire__V1__Packet bye = PEERNET__WIRE__V1__PACKET__INIT;
  bye.disconnect = true;
  bye.disconnect_reason = 42;
  data("data_disconnect", &bye, 79, false);

  /* DATA, zstd: one compressible 1000-byte message. */
  peernet__wire__v1__frame__init(&f[2]);
  f[2].channel = 2;
  f[2].msg_seq = 5;
  f[2].payload.data = text;
  f[2].payload.len = 1000;
  pk.frames = &fp[2];
  pk.n_frames = 1;
  data("data_zstd", &pk, 80, true);
  if (argc == 4) {
    dir = argv[2];
    peer_scripts();
    dir = argv[3];
    handshake_scripts();
  }
  return failures ? 1 : 0;
}
