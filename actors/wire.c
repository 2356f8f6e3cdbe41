/* Datagram header, integrity tag and Packet validation. See wire.h. */
#include "actors/wire.h"

#include <sodium.h>
#include <string.h>

const uint8_t pn__wire_public_key[PN__KEY_BYTES] = {
    'p', 'e', 'e', 'r', 'n', 'e', 't', '-',
    'w', 'i', 'r', 'e', '-', 'v', '1', 0};

bool pn__wire_peek(const uint8_t *buf, size_t len, pn__wire_header *out) {
  if (len < PN__WIRE_OVERHEAD || buf[0] != PN__WIRE_VERSION) {
    return false;
  }
  uint8_t type = buf[1] & 0x0Fu;
  if (type == 0 || type > PN__T_MAX || (buf[1] & ~(0x0Fu | PN__WIRE_ZSTD))) {
    return false;
  }
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

bool pn__wire_verify(const uint8_t *buf, size_t len, const uint8_t *key) {
  if (len < PN__WIRE_OVERHEAD) {
    return false;
  }
  uint8_t tag[PN__WIRE_TAG];
  crypto_shorthash(tag, buf, len - PN__WIRE_TAG, key);
  return sodium_memcmp(tag, buf + len - PN__WIRE_TAG, PN__WIRE_TAG) == 0;
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

Peernet__Wire__V1__Packet *pn__wire_decode_packet(const uint8_t *body,
                                                  size_t len, uint32_t channels,
                                                  uint32_t max_message,
                                                  ProtobufCAllocator *alloc) {
  Peernet__Wire__V1__Packet *p =
      peernet__wire__v1__packet__unpack(alloc, len, body);
  if (!p) {
    return NULL;
  }
  bool ok = p->seq != 0 && p->n_frames <= PN__MAX_FRAMES;
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
  if (!ok) {
    peernet__wire__v1__packet__free_unpacked(p, alloc);
    return NULL;
  }
  return p;
}
