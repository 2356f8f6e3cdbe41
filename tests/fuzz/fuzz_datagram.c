/* libFuzzer target for the datagram decoder: everything a datagram from
 * the network meets before a peer trusts it.
 *
 *   pn__wire_peek() and pn__wire_verify() on the whole input (with the
 *   tag recomputed by pn__wire_seal(), which must agree with verify);
 *   pn__data_seq() and pn__data_open() under the corpus's
 *   ChaCha20-Poly1305 key and an AES-256-GCM one (when the CPU has it):
 *   what opens must seal back to the same bytes; when the header parses,
 *   the body as the peer would see it after the tag (the plaintext of a
 *   datagram that opens, else the raw bytes, zstd-decompressed into a
 *   bounded buffer when the flag says so); DATA bodies through
 * pn__wire_decode_packet() with channel counts and max_message values taken
 * from the header bytes, and once with the most permissive ones; every
 * handshake unpacker on the body; inputs that do not parse as a datagram go
 * through all of them whole.
 *
 * A decoded packet is checked against what the peer relies on: channels
 * in range, fragments that lie inside their message (on_frame copies
 * payload.len bytes at piece * frag_index into msg_len bytes), at most
 * PN__MAX_FRAMES frames, and pn__frame_wire_size() equal to the size
 * protobuf-c gives the frame (the sender budgets datagrams with it). A
 * broken invariant aborts, which libFuzzer reports as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zstd.h>

#include "actors/wire.h"
#include "tests/support/bump_arena.h"
#include "peernet/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[PN__DATA_OVERHEAD + 65536];
static pn__data_keys keys[2]; /* ChaCha20-Poly1305, AES-256-GCM */
static uint8_t plain[65536];
static int nkeys;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0) {
    abort();
  }
  uint8_t key[PN__DATA_KEY_BYTES];
  memset(key, 0x42, sizeof key); /* make_corpus's */
  pn__data_keys_init(&keys[nkeys++], key, key, false);
  if (crypto_aead_aes256gcm_is_available()) {
    pn__data_keys_init(&keys[nkeys++], key, key, true);
  }
  return 0;
}

static void broken(const char *what) {
  fprintf(stderr, "invariant broken: %s\n", what);
  abort();
}

static void check_frame(const Peernet__Wire__V1__Frame *f, uint32_t channels,
                        uint32_t max_message) {
  if (f->channel >= channels || f->msg_seq == 0) {
    broken("frame channel or sequence");
  }
  if (f->frag_count > 1) {
    if (f->msg_len > max_message || f->frag_index >= f->frag_count ||
        f->payload.len == 0) {
      broken("fragment fields");
    }
    size_t piece = ((size_t)f->msg_len + f->frag_count - 1) / f->frag_count;
    size_t off = piece * f->frag_index;
    if (off >= f->msg_len || f->payload.len > f->msg_len - off ||
        f->payload.len > piece) {
      broken("fragment outside its message");
    }
  } else if (f->payload.len > max_message || f->msg_len || f->frag_index) {
    broken("whole message fields");
  }
  if (f->frag_count != 1 && f->base.n_unknown_fields == 0) {
    size_t inner = protobuf_c_message_get_packed_size(&f->base);
    size_t want = 1 + pn__varint_len(inner) + inner;
    size_t got = pn__frame_wire_size(f->channel, f->msg_seq, f->frag_index,
                                     f->frag_count, f->msg_len, f->payload.len);
    if (got != want) {
      broken("pn__frame_wire_size differs from protobuf-c");
    }
  }
}

static void decode(const uint8_t *body, size_t len, uint32_t channels,
                   uint32_t max_message) {
  static pn_test_arena mem;
  ProtobufCAllocator arena = pn_test_arena_allocator(&mem);
  Peernet__Wire__V1__Packet *p =
      pn__wire_decode_packet(body, len, channels, max_message, &arena);
  if (!p) {
    return;
  }
  if (p->n_frames > PN__MAX_FRAMES) {
    broken("packet fields");
  }
  for (size_t i = 0; i < p->n_frames; i++) {
    check_frame(p->frames[i], channels, max_message);
  }
}

static void unpack_handshakes(const uint8_t *body, size_t len) {
  Peernet__Wire__V1__ConnectRequest *rq =
      peernet__wire__v1__connect_request__unpack(NULL, len, body);
  peernet__wire__v1__connect_request__free_unpacked(rq, NULL);
  Peernet__Wire__V1__Challenge *c =
      peernet__wire__v1__challenge__unpack(NULL, len, body);
  peernet__wire__v1__challenge__free_unpacked(c, NULL);
  Peernet__Wire__V1__ConnectResponse *rs =
      peernet__wire__v1__connect_response__unpack(NULL, len, body);
  peernet__wire__v1__connect_response__free_unpacked(rs, NULL);
  Peernet__Wire__V1__Accept *a =
      peernet__wire__v1__accept__unpack(NULL, len, body);
  peernet__wire__v1__accept__free_unpacked(a, NULL);
  Peernet__Wire__V1__Reject *rj =
      peernet__wire__v1__reject__unpack(NULL, len, body);
  peernet__wire__v1__reject__free_unpacked(rj, NULL);
}

static const uint32_t channel_counts[4] = {1, 2, 8, PN_MAX_CHANNELS};
static const uint32_t max_messages[4] = {64, 1200, 4u << 20, PN_PACKET_MAX};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pn__wire_header h;
  bool parsed = pn__wire_peek(data, size, &h);
  bool tagged = pn__wire_verify(data, size, pn__wire_public_key);
  if (parsed &&
      (size < PN__WIRE_OVERHEAD || data[0] == 0 || data[0] > PN__WIRE_VERSION ||
       h.version != data[0] || h.type < 1 || h.type > PN__T_MAX ||
       (data[0] != PN__WIRE_VERSION && h.type != PN__T_CONNECT_REQUEST))) {
    broken("peek accepted a bad header");
  }
  if (size >= PN__WIRE_OVERHEAD && size <= sizeof scratch) {
    memcpy(scratch, data, size - PN__WIRE_TAG);
    size_t n = pn__wire_seal(scratch, size - PN__WIRE_TAG, pn__wire_public_key);
    bool same =
        n == size && memcmp(scratch + size - PN__WIRE_TAG,
                            data + size - PN__WIRE_TAG, PN__WIRE_TAG) == 0;
    if (same != tagged) {
      broken("verify disagrees with seal");
    }
  } else if (tagged) {
    broken("verify accepted a short datagram");
  }
  bool opened = false;
  size_t plain_len = 0;
  if (size >= PN__DATA_OVERHEAD && size <= sizeof scratch) {
    for (int k = 0; k < nkeys; k++) {
      for (int rx = 0; rx < 2; rx++) {
        /* a receiver fresh or near the 32-bit wrap (keys of epoch 0: a
         * fresh copy each time, so nothing ratchets between inputs) */
        uint64_t seq = pn__data_seq(data, (uint64_t)rx * 0xFFFFFFF0u);
        pn__dir_key key = keys[k].rx;
        bool ok = pn__data_open(&key, seq, data, size, plain);
        if (ok) {
          /* Sealing the plaintext again gives the same datagram. */
          pn__dir_key tx = keys[k].tx;
          memcpy(scratch, data, PN__DATA_HEADER);
          memcpy(scratch + PN__DATA_HEADER, plain, size - PN__DATA_OVERHEAD);
          if (pn__data_seal(&tx, seq, scratch, size - PN__DATA_TAG) != size ||
              memcmp(scratch, data, size) != 0) {
            broken("open disagrees with seal");
          }
          opened = true;
          plain_len = size - PN__DATA_OVERHEAD;
        }
      }
    }
  }
  if (!parsed) {
    decode(data, size, PN_MAX_CHANNELS, PN_PACKET_MAX);
    unpack_handshakes(data, size);
    return 0;
  }
  const uint8_t *body = data + PN__WIRE_HEADER;
  size_t len = size - PN__WIRE_OVERHEAD;
  if (h.type == PN__T_DATA) {
    if (size < PN__DATA_OVERHEAD) {
      return 0; /* the peer drops it before the tag */
    }
    body = opened ? plain : data + PN__DATA_HEADER;
    len = opened ? plain_len : size - PN__DATA_OVERHEAD;
  }
  if (h.zstd) {
    /* The peer decompresses into PN_DATAGRAM_MAX bytes; a smaller bound
     * here keeps runs fast and exercises the same refusal. */
    size_t n = ZSTD_decompress(scratch, sizeof scratch, body, len);
    if (ZSTD_isError(n)) {
      return 0;
    }
    if (n > sizeof scratch) {
      broken("zstd wrote past its bound");
    }
    body = scratch;
    len = n;
  }
  if (h.type == PN__T_DATA) {
    decode(body, len, channel_counts[data[2] & 3u], max_messages[data[3] & 3u]);
    decode(body, len, PN_MAX_CHANNELS, PN_PACKET_MAX);
  } else {
    unpack_handshakes(body, len);
  }
  return 0;
}
