/* Datagram header, integrity tag and Packet validation. See wire.h. */
#include "actors/wire.h"
#include "actors/pbread.h"

#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

const uint8_t pn__wire_public_key[PN__KEY_BYTES] = {
    'p', 'e', 'e', 'r', 'n', 'e', 't', '-',
    'w', 'i', 'r', 'e', '-', 'v', '1', 0};

bool pn__wire_peek(const uint8_t *buf, size_t len, pn__wire_header *out) {
  if (len < PN__WIRE_OVERHEAD || buf[0] == 0 || buf[0] > PN__WIRE_VERSION) {
    return false;
  }
  uint8_t type = buf[1] & 0x0Fu;
  if (type == 0 || type > PN__T_MAX || (buf[1] & ~(0x0Fu | PN__WIRE_ZSTD)) ||
      (buf[0] != PN__WIRE_VERSION && type != PN__T_CONNECT_REQUEST)) {
    return false;
  }
  out->version = buf[0];
  out->type = type;
  out->zstd = (buf[1] & PN__WIRE_ZSTD) != 0;
  out->conn_id = (uint32_t)buf[2] | (uint32_t)buf[3] << 8 |
                 (uint32_t)buf[4] << 16 | (uint32_t)buf[5] << 24;
  return true;
}

void pn__wire_put_header(uint8_t *buf, uint8_t type, bool zstd,
                         uint32_t conn_id) {
  buf[0] = PN__WIRE_VERSION;
  buf[1] = (uint8_t)(type | (zstd ? PN__WIRE_ZSTD : 0));
  buf[2] = (uint8_t)conn_id;
  buf[3] = (uint8_t)(conn_id >> 8);
  buf[4] = (uint8_t)(conn_id >> 16);
  buf[5] = (uint8_t)(conn_id >> 24);
}

size_t pn__wire_seal(uint8_t *buf, size_t len, const uint8_t *key) {
  crypto_shorthash(buf + len, buf, len, key);
  return len + PN__WIRE_TAG;
}

/* Padding bytes: zeros, never read back (tests pad forged requests up
 * to 2 KiB). */
static const uint8_t pad_zeros[2048];

size_t pn__wire_pack_handshake(uint8_t *buf, uint8_t type, uint32_t conn_id,
                               ProtobufCMessage *m,
                               ProtobufCBinaryData *padding, size_t pad_to) {
  if (padding) {
    padding->data = (uint8_t *)pad_zeros;
    padding->len = 0;
    size_t base = PN__WIRE_OVERHEAD + protobuf_c_message_get_packed_size(m);
    /* One byte of field tag, the length's varint, the bytes. */
    while (base + 1 + pn__varint_len(padding->len) + padding->len < pad_to &&
           padding->len < sizeof pad_zeros) {
      padding->len++;
    }
  }
  pn__wire_put_header(buf, type, false, conn_id);
  size_t body = protobuf_c_message_pack(m, buf + PN__WIRE_HEADER);
  return pn__wire_seal(buf, PN__WIRE_HEADER + body, pn__wire_public_key);
}

bool pn__wire_verify(const uint8_t *buf, size_t len, const uint8_t *key) {
  if (len < PN__WIRE_OVERHEAD) {
    return false;
  }
  uint8_t tag[PN__WIRE_TAG];
  crypto_shorthash(tag, buf, len - PN__WIRE_TAG, key);
  return sodium_memcmp(tag, buf + len - PN__WIRE_TAG, PN__WIRE_TAG) == 0;
}

_Atomic bool pn__wire_aes_disabled;

bool pn__wire_aes_available(void) {
  return crypto_aead_aes256gcm_is_available() &&
         !atomic_load_explicit(&pn__wire_aes_disabled, memory_order_relaxed);
}

_Atomic uint32_t pn__wire_rekey_bits = 28;

static void dir_key_set(pn__dir_key *k, const uint8_t key[PN__DATA_KEY_BYTES],
                        uint64_t epoch, bool aes) {
  memcpy(k->key, key, PN__DATA_KEY_BYTES);
  k->epoch = epoch;
  k->aes = aes;
  if (aes) {
    crypto_aead_aes256gcm_beforenm(&k->gcm, key);
  }
}

void pn__data_keys_init(pn__data_keys *k, const uint8_t tx[PN__DATA_KEY_BYTES],
                        const uint8_t rx[PN__DATA_KEY_BYTES], bool aes) {
  dir_key_set(&k->tx, tx, 0, aes);
  dir_key_set(&k->rx, rx, 0, aes);
}

void pn__data_keys_clear(pn__data_keys *k) { sodium_memzero(k, sizeof *k); }

/* The key of the epoch after k's. */
static void next_key(const pn__dir_key *k, uint8_t out[PN__DATA_KEY_BYTES]) {
  static const uint8_t label[] = "peernet rekey";
  crypto_generichash(out, PN__DATA_KEY_BYTES, label, sizeof label - 1, k->key,
                     PN__DATA_KEY_BYTES);
}

static uint64_t epoch_of(uint64_t seq) {
  return seq >>
         atomic_load_explicit(&pn__wire_rekey_bits, memory_order_relaxed);
}

void pn__wire_put_data_header(uint8_t *buf, bool zstd, uint32_t conn_id,
                              uint64_t seq) {
  pn__wire_put_header(buf, PN__T_DATA, zstd, conn_id);
  for (int i = 0; i < 4; i++) {
    buf[PN__WIRE_HEADER + i] = (uint8_t)(seq >> (8 * i));
  }
}

uint64_t pn__data_seq(const uint8_t *buf, uint64_t largest) {
  const uint64_t win = 1ull << 32, half = win / 2;
  uint64_t low = (uint64_t)buf[6] | (uint64_t)buf[7] << 8 |
                 (uint64_t)buf[8] << 16 | (uint64_t)buf[9] << 24;
  uint64_t expected = largest + 1;
  uint64_t seq = (expected & ~(win - 1)) | low;
  /* Written without sums that could overflow near 2^64. */
  if (expected >= half && seq <= expected - half && seq <= UINT64_MAX - win) {
    seq += win;
  } else if (expected <= UINT64_MAX - half && seq > expected + half &&
             seq >= win) {
    seq -= win;
  }
  return seq;
}

/* Directions have keys of their own, so the nonce is the sequence alone:
 * unique under one key, since a direction never sends a sequence twice. */
static void data_nonce(uint8_t nonce[12], uint64_t seq) {
  nonce[0] = nonce[1] = nonce[2] = nonce[3] = 0;
  for (int i = 0; i < 8; i++) {
    nonce[4 + i] = (uint8_t)(seq >> (8 * i));
  }
}

size_t pn__data_seal(pn__dir_key *k, uint64_t seq, uint8_t *buf, size_t len) {
  uint64_t epoch = epoch_of(seq);
  while (k->epoch < epoch) {
    uint8_t key[PN__DATA_KEY_BYTES];
    next_key(k, key);
    dir_key_set(k, key, k->epoch + 1, k->aes);
    sodium_memzero(key, sizeof key);
  }
  uint8_t nonce[12];
  data_nonce(nonce, seq);
  uint8_t *body = buf + PN__DATA_HEADER;
  size_t blen = len - PN__DATA_HEADER;
  unsigned long long maclen;
  /* In place: libsodium allows the ciphertext to be the plaintext. */
  if (k->aes) {
    (void)crypto_aead_aes256gcm_encrypt_detached_afternm(
        body, buf + len, &maclen, body, blen, buf, PN__DATA_HEADER, NULL, nonce,
        &k->gcm);
  } else {
    (void)crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        body, buf + len, &maclen, body, blen, buf, PN__DATA_HEADER, NULL, nonce,
        k->key);
  }
  return len + PN__DATA_TAG;
}

static bool open_with(const pn__dir_key *k, uint64_t seq, const uint8_t *in,
                      size_t len, uint8_t *out) {
  uint8_t nonce[12];
  data_nonce(nonce, seq);
  size_t clen = len - PN__DATA_OVERHEAD;
  const uint8_t *tag = in + len - PN__DATA_TAG;
  if (k->aes) {
    return crypto_aead_aes256gcm_decrypt_detached_afternm(
               out, NULL, in + PN__DATA_HEADER, clen, tag, in, PN__DATA_HEADER,
               nonce, &k->gcm) == 0;
  }
  return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
             out, NULL, in + PN__DATA_HEADER, clen, tag, in, PN__DATA_HEADER,
             nonce, k->key) == 0;
}

bool pn__data_open(pn__dir_key *k, uint64_t seq, const uint8_t *in, size_t len,
                   uint8_t *out) {
  if (len < PN__DATA_OVERHEAD || seq == 0) {
    return false;
  }
  uint64_t epoch = epoch_of(seq);
  if (epoch == k->epoch) {
    return open_with(k, seq, in, len, out);
  }
  if (epoch != k->epoch + 1) {
    return false; /* an older epoch's key is gone; a later one is forged */
  }
  pn__dir_key next;
  uint8_t key[PN__DATA_KEY_BYTES];
  next_key(k, key);
  dir_key_set(&next, key, epoch, k->aes);
  sodium_memzero(key, sizeof key);
  bool ok = open_with(&next, seq, in, len, out);
  if (ok) {
    *k = next; /* only an authentic datagram moves the key on */
  }
  sodium_memzero(&next, sizeof next);
  return ok;
}

/* A length-delimited or varint field with a one-byte tag. */
static size_t varint_field(uint64_t v) { return v ? 1 + pn__varint_len(v) : 0; }

size_t pn__frame_wire_size(uint32_t channel, uint64_t msg_seq,
                           uint32_t frag_index, uint32_t frag_count,
                           uint32_t msg_len, size_t payload_len) {
  size_t inner = varint_field(channel) + varint_field(msg_seq);
  if (frag_count > 1) {
    inner += varint_field(frag_index) + varint_field(frag_count) +
             varint_field(msg_len);
  }
  if (payload_len) {
    inner += 1 + pn__varint_len(payload_len) + payload_len;
  }
  return 1 + pn__varint_len(inner) + inner;
}

size_t pn__frag_payload_max(size_t budget) {
  /* Worst case of everything but the payload: channel < 2^7 is not
   * assumed; sequence up to 2^64; fragment fields up to 2^32. */
  size_t fields = (1 + 5) + (1 + 10) + 3 * (1 + 5) + 1 + 3;
  size_t outer = 1 + 3;
  return budget > fields + outer ? budget - fields - outer : 0;
}

/* --- Packet codec ---------------------------------------------------------
 * Packet and Frame are on every datagram, so they are encoded and decoded
 * here by hand rather than through protobuf-c's reflection (which costs
 * more than everything else a receiver does per message). The bytes are
 * protobuf's: fields in number order, proto3 defaults left out, the same
 * as protobuf_c_message_pack() writes; decoding takes fields in any order,
 * keeps the last of a repeated scalar and skips unknown fields, as
 * protobuf does. test_wire checks both against protobuf-c. */

static uint8_t *put_varint(uint8_t *o, uint64_t v) {
  while (v >= 0x80) {
    *o++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *o++ = (uint8_t)v;
  return o;
}

static uint8_t *put_varint_field(uint8_t *o, uint8_t tag, uint64_t v) {
  if (!v) {
    return o;
  }
  *o++ = tag;
  return put_varint(o, v);
}

#define TAG(field, wt) ((uint8_t)((field) << 3 | (wt)))

static uint8_t *put_frame(uint8_t *o, const Peernet__Wire__V1__Frame *f) {
  size_t inner =
      varint_field(f->channel) + varint_field(f->msg_seq) +
      varint_field(f->frag_index) + varint_field(f->frag_count) +
      varint_field(f->msg_len) +
      (f->payload.len ? 1 + pn__varint_len(f->payload.len) + f->payload.len
                      : 0);
  *o++ = TAG(5, WT_LEN);
  o = put_varint(o, inner);
  o = put_varint_field(o, TAG(1, WT_VARINT), f->channel);
  o = put_varint_field(o, TAG(2, WT_VARINT), f->msg_seq);
  o = put_varint_field(o, TAG(3, WT_VARINT), f->frag_index);
  o = put_varint_field(o, TAG(4, WT_VARINT), f->frag_count);
  o = put_varint_field(o, TAG(5, WT_VARINT), f->msg_len);
  if (f->payload.len) {
    *o++ = TAG(6, WT_LEN);
    o = put_varint(o, f->payload.len);
    memcpy(o, f->payload.data, f->payload.len);
    o += f->payload.len;
  }
  return o;
}

/* A fixed64 field, omitted when 0 as protobuf-c omits a proto3 default. */
static uint8_t *put_fixed64_field(uint8_t *o, uint8_t tag, uint64_t v) {
  if (v) {
    *o++ = tag;
    for (int i = 0; i < 8; i++) {
      *o++ = (uint8_t)(v >> (8 * i));
    }
  }
  return o;
}

size_t pn__wire_encode_packet(const Peernet__Wire__V1__Packet *pk,
                              uint8_t *out) {
  uint8_t *o = out;
  o = put_varint_field(o, TAG(1, WT_VARINT), pk->seq);
  o = put_varint_field(o, TAG(2, WT_VARINT), pk->ack);
  o = put_fixed64_field(o, TAG(3, WT_FIXED64), pk->ack_bits);
  o = put_varint_field(o, TAG(4, WT_VARINT), pk->ack_delay_us);
  for (size_t i = 0; i < pk->n_frames; i++) {
    o = put_frame(o, pk->frames[i]);
  }
  o = put_varint_field(o, TAG(6, WT_VARINT), pk->ping);
  o = put_varint_field(o, TAG(7, WT_VARINT), pk->disconnect);
  o = put_varint_field(o, TAG(8, WT_VARINT), pk->disconnect_reason);
  o = put_varint_field(o, TAG(9, WT_VARINT), pk->window);
  o = put_fixed64_field(o, TAG(10, WT_FIXED64), pk->path_challenge);
  o = put_fixed64_field(o, TAG(11, WT_FIXED64), pk->path_response);
  o = put_fixed64_field(o, TAG(12, WT_FIXED64), pk->ack_bits_more);
  return (size_t)(o - out);
}

static bool get_frame(reader *r, Peernet__Wire__V1__Frame *f) {
  uint32_t field, wt;
  bool ok;
  while (get_tag(r, &field, &wt, &ok)) {
    uint64_t v = 0;
    if (field >= 1 && field <= 5) {
      if (wt != WT_VARINT || !get_varint(r, &v)) {
        return false;
      }
      switch (field) {
      case 1:
        f->channel = (uint32_t)v;
        break;
      case 2:
        f->msg_seq = v;
        break;
      case 3:
        f->frag_index = (uint32_t)v;
        break;
      case 4:
        f->frag_count = (uint32_t)v;
        break;
      default:
        f->msg_len = (uint32_t)v;
        break;
      }
    } else if (field == 6) {
      if (wt != WT_LEN || !get_len(r, &v) || v > (uint64_t)(r->end - r->p)) {
        return false;
      }
      f->payload.data = (uint8_t *)(uintptr_t)r->p;
      f->payload.len = (size_t)v;
      r->p += v;
    } else if (!skip_field(r, wt)) {
      return false;
    }
  }
  return ok;
}

static Peernet__Wire__V1__Packet *decode(const uint8_t *body, size_t len,
                                         ProtobufCAllocator *alloc) {
  /* Frames live in one array sized for the most a datagram may carry. */
  Peernet__Wire__V1__Packet *pk = alloc->alloc(
      alloc->allocator_data,
      sizeof *pk + PN__MAX_FRAMES * (sizeof(Peernet__Wire__V1__Frame) +
                                     sizeof(Peernet__Wire__V1__Frame *)));
  if (!pk) {
    return NULL;
  }
  peernet__wire__v1__packet__init(pk);
  Peernet__Wire__V1__Frame **ptrs = (Peernet__Wire__V1__Frame **)(pk + 1);
  Peernet__Wire__V1__Frame *frames =
      (Peernet__Wire__V1__Frame *)(ptrs + PN__MAX_FRAMES);
  pk->frames = ptrs;
  reader r = {body, body + len};
  uint32_t field, wt;
  bool ok;
  while (get_tag(&r, &field, &wt, &ok)) {
    uint64_t v = 0;
    switch (field) {
    case 6:
    case 7: {
      /* Booleans as protobuf-c reads them: any wire type but a group, true
       * when a byte of the value (a length prefix included) has a low bit
       * set. */
      const uint8_t *from = r.p;
      if (!skip_field(&r, wt)) {
        return NULL;
      }
      bool b = false;
      for (const uint8_t *q = from; q < r.p; q++) {
        b |= (*q & 0x7F) != 0;
      }
      if (field == 6) {
        pk->ping = b;
      } else {
        pk->disconnect = b;
      }
      break;
    }
    case 1:
    case 2:
    case 4:
    case 8:
    case 9:
      if (wt != WT_VARINT || !get_varint(&r, &v)) {
        return NULL;
      }
      if (field == 1) {
        pk->seq = v;
      } else if (field == 2) {
        pk->ack = v;
      } else if (field == 4) {
        pk->ack_delay_us = (uint32_t)v;
      } else if (field == 8) {
        pk->disconnect_reason = (uint32_t)v;
      } else {
        pk->window = v;
      }
      break;
    case 3:
    case 10:
    case 11:
    case 12:
      if (wt != WT_FIXED64 || !get_fixed64(&r, &v)) {
        return NULL;
      }
      if (field == 3) {
        pk->ack_bits = v;
      } else if (field == 10) {
        pk->path_challenge = v;
      } else if (field == 11) {
        pk->path_response = v;
      } else {
        pk->ack_bits_more = v;
      }
      break;
    case 5: {
      if (wt != WT_LEN || !get_len(&r, &v) || v > (uint64_t)(r.end - r.p) ||
          pk->n_frames == PN__MAX_FRAMES) {
        return NULL;
      }
      Peernet__Wire__V1__Frame *f = &frames[pk->n_frames];
      peernet__wire__v1__frame__init(f);
      reader fr = {r.p, r.p + v};
      if (!get_frame(&fr, f)) {
        return NULL;
      }
      r.p += v;
      ptrs[pk->n_frames++] = f;
      break;
    }
    default:
      if (!skip_field(&r, wt)) {
        return NULL;
      }
      break;
    }
  }
  return ok ? pk : NULL;
}

Peernet__Wire__V1__Packet *pn__wire_decode_packet(const uint8_t *body,
                                                  size_t len, uint32_t channels,
                                                  uint32_t max_message,
                                                  ProtobufCAllocator *alloc) {
  Peernet__Wire__V1__Packet *p = decode(body, len, alloc);
  if (!p) {
    return NULL;
  }
  bool ok = true; /* seq is not checked: version 2 carries it in the header */
  for (size_t i = 0; ok && i < p->n_frames; i++) {
    const Peernet__Wire__V1__Frame *f = p->frames[i];
    ok = f->channel < channels && f->msg_seq != 0;
    if (ok && f->frag_count > 1) {
      size_t piece = ((size_t)f->msg_len + f->frag_count - 1) / f->frag_count;
      ok = f->msg_len <= max_message && f->frag_index < f->frag_count &&
           f->frag_count <= f->msg_len &&
           piece * (f->frag_count - 1) < f->msg_len &&
           f->payload.len ==
               pn__frag_len(f->msg_len, f->frag_count, f->frag_index);
    } else if (ok) {
      ok = f->frag_index == 0 && f->msg_len == 0 &&
           f->payload.len <= max_message;
    }
  }
  return ok ? p : NULL; /* the arena holds it: nothing to free */
}
