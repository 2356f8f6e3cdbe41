/* The datagram layout (proto/README.md). Handshake datagrams: a 6-byte
 * header, a body (one protobuf message of proto/peernet.proto) and an
 * 8-byte SipHash-2-4 tag under a fixed public key (a corruption check).
 * DATA datagrams: the 6-byte header, the low 32 bits of the datagram's
 * sequence, the body (zstd-compressed when the flag says so) and a 16-byte
 * AEAD tag (AES-256-GCM or ChaCha20-Poly1305, empty plaintext, the rest of
 * the datagram as associated data) under the connection's key, with a
 * nonce made of the sender's side and the full sequence.
 *
 *   0      version (PN__WIRE_VERSION)
 *   1      low nibble: type (pn__wire_type); bit 4: body is zstd
 *   2..5   connection id of the receiver, little endian (0: none yet)
 *   6..9   DATA only: sequence, low 32 bits, little endian
 *   ..     body
 *   last   tag (8 bytes handshake, 16 bytes DATA)
 *
 * Pure functions: no state, any thread (a pn__data_key is read-only once
 * made). */
#ifndef PN_ACTORS_WIRE_H
#define PN_ACTORS_WIRE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "peernet.pb-c.h"

#define PN__WIRE_VERSION 3u
#define PN__WIRE_HEADER 6u
#define PN__WIRE_TAG 8u
#define PN__WIRE_OVERHEAD (PN__WIRE_HEADER + PN__WIRE_TAG)
#define PN__WIRE_ZSTD 0x10u
#define PN__KEY_BYTES 16u
#define PN__DATA_HEADER (PN__WIRE_HEADER + 4u)
#define PN__DATA_TAG 16u
#define PN__DATA_OVERHEAD (PN__DATA_HEADER + PN__DATA_TAG)
#define PN__DATA_KEY_BYTES 32u
/* Connect requests and responses are padded to at least this many bytes,
 * so no reply (challenge, accept, reject) is larger than its request. */
#define PN__HANDSHAKE_PAD 256u
/* Upper bound of a Packet's own fields as a sender encodes them (ack 11
 * bytes, ack bits 9, delay 6, ping 2, disconnect 2, reason 6, window 11,
 * path challenge 9, path response 9, more ack bits 9; seq is 0 from
 * version 2 on, so never encoded). */
#define PN__PACKET_FIELDS_MAX 75u
/* Frames per datagram. */
#define PN__MAX_FRAMES 128u

typedef enum pn__wire_type {
  PN__T_CONNECT_REQUEST = 1,
  PN__T_CHALLENGE = 2,
  PN__T_CONNECT_RESPONSE = 3,
  PN__T_ACCEPT = 4,
  PN__T_REJECT = 5,
  PN__T_DATA = 6,
  PN__T_MAX = 6,
} pn__wire_type;

typedef struct pn__wire_header {
  uint8_t version; /* PN__WIRE_VERSION, or older in a ConnectRequest */
  uint8_t type;
  bool zstd;
  uint32_t conn_id;
} pn__wire_header;

/* The fixed key of handshake tags. */
extern const uint8_t pn__wire_public_key[PN__KEY_BYTES];

/* Reads the header of a datagram of len bytes. False when it is too short
 * or has an unknown version or type (the tag is not checked here). A
 * ConnectRequest of an older version (1 .. PN__WIRE_VERSION - 1) is read
 * too: the handshake layout is the same in every version, so a server can
 * tell an old client, in its own version, that it is too old. */
bool pn__wire_peek(const uint8_t *buf, size_t len, pn__wire_header *out);

/* Writes the header into buf (PN__WIRE_HEADER bytes). */
void pn__wire_put_header(uint8_t *buf, uint8_t type, bool zstd,
                         uint32_t conn_id);

/* Appends the tag over buf[0..len) at buf + len (the caller leaves
 * PN__WIRE_TAG bytes of room); returns len + PN__WIRE_TAG. */
size_t pn__wire_seal(uint8_t *buf, size_t len, const uint8_t *key);

/* A whole handshake datagram in buf: header (type, conn_id), the message
 * m packed, sealed with the public key. With padding (m's padding field)
 * the padding grows until the datagram is pad_to bytes, so a request is
 * never smaller than its reply. Returns the length; buf holds at least
 * max(pad_to, the packed size + PN__WIRE_OVERHEAD). */
size_t pn__wire_pack_handshake(uint8_t *buf, uint8_t type, uint32_t conn_id,
                               ProtobufCMessage *m,
                               ProtobufCBinaryData *padding, size_t pad_to);

/* True when the last PN__WIRE_TAG bytes are the tag of the rest. */
bool pn__wire_verify(const uint8_t *buf, size_t len, const uint8_t *key);

/* One direction's DATA key. AES-256-GCM when both ends have AES-NI and
 * PCLMUL, else ChaCha20-Poly1305. The key changes every 2^rekey_bits
 * datagrams (an epoch): key(e + 1) = BLAKE2b-256(key(e), "peernet rekey"),
 * so both ends ratchet from the sequence alone, with no message, long
 * before either AEAD's usage limits, and an old key cannot be computed
 * from a newer one. */
typedef struct pn__dir_key {
  crypto_aead_aes256gcm_state gcm; /* expanded key; AES only */
  uint8_t key[PN__DATA_KEY_BYTES];
  uint64_t epoch;
  bool aes;
} pn__dir_key;

/* A connection's keys: what it sends with, what it receives with. */
typedef struct pn__data_keys {
  pn__dir_key tx, rx;
} pn__data_keys;

/* log2 of the datagrams per key epoch: 28 (268 million datagrams, four
 * minutes at a million datagrams a second). Tests lower it to watch keys
 * change. */
extern _Atomic uint32_t pn__wire_rekey_bits;

/* True when this process may use AES-256-GCM: the CPU has it and the test
 * hook pn__wire_aes_disabled is off. */
bool pn__wire_aes_available(void);

/* Tests set this before creating a host to make it behave like a machine
 * without AES-NI. */
extern _Atomic bool pn__wire_aes_disabled;

/* Sets up both directions from their epoch-0 keys; aes must only be true
 * when pn__wire_aes_available(). */
void pn__data_keys_init(pn__data_keys *k, const uint8_t tx[PN__DATA_KEY_BYTES],
                        const uint8_t rx[PN__DATA_KEY_BYTES], bool aes);

/* Wipes k. */
void pn__data_keys_clear(pn__data_keys *k);

/* Writes a DATA header (PN__DATA_HEADER bytes) for datagram `seq`. */
void pn__wire_put_data_header(uint8_t *buf, bool zstd, uint32_t conn_id,
                              uint64_t seq);

/* The full sequence of a DATA datagram whose header carries `low`, the one
 * nearest to largest + 1 (largest: the highest sequence received, 0 for
 * none), as QUIC decodes packet numbers. 0 is never valid. */
uint64_t pn__data_seq(const uint8_t *buf, uint64_t largest);

/* Encrypts DATA datagram buf[0..len) (header, then body) in place: the
 * body becomes ciphertext, the header is authenticated with it, and the
 * tag is appended (the caller leaves PN__DATA_TAG bytes of room). The
 * nonce is the 64-bit sequence, never reused under one key. Moves the
 * send key to seq's epoch first. Returns len + PN__DATA_TAG. */
size_t pn__data_seal(pn__dir_key *k, uint64_t seq, uint8_t *buf, size_t len);

/* Decrypts DATA datagram in[0..len), sequence seq, into out (len -
 * PN__DATA_OVERHEAD bytes of body; out may not overlap in). False when the
 * datagram is not authentic under the receive key of seq's epoch, which
 * is the current one or the next (a datagram from an older epoch is
 * refused); only an authentic datagram moves the key on. Constant time in
 * the tag. */
bool pn__data_open(pn__dir_key *k, uint64_t seq, const uint8_t *in, size_t len,
                   uint8_t *out);

/* Bytes of a protobuf varint holding v. */
static inline size_t pn__varint_len(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* Encoded size of a Frame field inside a Packet (tag, length and body),
 * exactly as protobuf-c packs it. */
size_t pn__frame_wire_size(uint32_t channel, uint64_t msg_seq,
                           uint32_t frag_index, uint32_t frag_count,
                           uint32_t msg_len, size_t payload_len);

/* Largest fragment payload such that one fragment frame fits in `budget`
 * bytes of frames, for any channel index and sequence number. */
size_t pn__frag_payload_max(size_t budget);

/* Encodes pk into out (room for its packed size: the MTU) as protobuf
 * would; returns the bytes written. */
size_t pn__wire_encode_packet(const Peernet__Wire__V1__Packet *pk,
                              uint8_t *out);

/* Decodes and validates a DATA body (already decompressed): a Packet whose
 * frames name channels below `channels`, have consistent fragment fields
 * (count <= max_frags, index < count, msg_len <= max_message and matching
 * the fragment's length) and at most PN__MAX_FRAMES frames. Returns NULL
 * when malformed; the body's seq is decoded but not checked (version 2
 * carries the sequence in the header). The packet is one block from alloc
 * (an arena: nothing to free one by one); frame payloads point into body. */
Peernet__Wire__V1__Packet *pn__wire_decode_packet(const uint8_t *body,
                                                  size_t len, uint32_t channels,
                                                  uint32_t max_message,
                                                  ProtobufCAllocator *alloc);

/* Length of fragment `index` of a message of msg_len bytes cut into count
 * pieces (all ceil(msg_len / count) bytes but the last). */
static inline size_t pn__frag_len(uint32_t msg_len, uint32_t count,
                                  uint32_t index) {
  size_t size = ((size_t)msg_len + count - 1) / count;
  size_t off = size * index;
  if (off >= msg_len) {
    return 0;
  }
  return msg_len - off < size ? msg_len - off : size;
}

/* How a fragmented message is cut: count pieces of at most frag_max. */
static inline uint32_t pn__frag_count(size_t msg_len, size_t frag_max) {
  return (uint32_t)((msg_len + frag_max - 1) / frag_max);
}

#endif
