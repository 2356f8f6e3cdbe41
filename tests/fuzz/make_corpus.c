/* Writes the fuzzer's seed corpus: one valid datagram of each type, and
 * DATA with whole messages, fragments, acknowledgements, a ping, a
 * disconnect and a zstd body. Every value is fixed, so the files only
 * change when the wire format (or zstd's output) does.
 *
 *   make_corpus DIR    writes DIR/<name>.bin for each datagram */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "actors/wire.h"
#include "peernet/socket.h"

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

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_corpus DIR\n");
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
  return failures ? 1 : 0;
}
