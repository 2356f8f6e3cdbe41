/* Reading protobuf's wire format by hand, for the messages read on every
 * datagram or message (actors/wire.c's Packet, nodes/ref.c's Envelope),
 * where protobuf-c's unpack would allocate: a reader over a buffer, and
 * its varints, tags and skipped fields, read exactly as protobuf-c reads
 * them (tests/unit/test_wire.c holds the two together).
 *
 * Pure and inline; nothing shared.
 */
#ifndef PN_ACTORS_PBREAD_H
#define PN_ACTORS_PBREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_FIXED32 = 5 };

typedef struct reader {
  const uint8_t *p, *end;
} reader;

static inline bool get_varint(reader *r, uint64_t *v) {
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64; shift += 7) {
    if (r->p == r->end) {
      return false;
    }
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return true;
    }
  }
  return false; /* more than 10 bytes */
}

/* A length prefix, as protobuf-c reads one: a varint of at most five
 * bytes (a longer one, even an overlong encoding of a small length, is
 * malformed: fuzz_envelope found the difference). */
static inline bool get_len(reader *r, uint64_t *n) {
  uint64_t x = 0;
  for (unsigned i = 0; i < 5; i++) {
    if (r->p == r->end) {
      return false;
    }
    uint8_t b = *r->p++;
    x |= (uint64_t)(b & 0x7F) << (7 * i);
    if (!(b & 0x80)) {
      *n = x;
      return true;
    }
  }
  return false;
}

/* Skips a field of wire type wt; false when malformed or a group. */
static inline bool skip_field(reader *r, uint32_t wt) {
  uint64_t n;
  switch (wt) {
  case WT_VARINT:
    return get_varint(r, &n);
  case WT_FIXED64:
    n = 8;
    break;
  case WT_FIXED32:
    n = 4;
    break;
  case WT_LEN:
    if (!get_len(r, &n)) {
      return false;
    }
    break;
  default:
    return false;
  }
  if (n > (size_t)(r->end - r->p)) {
    return false;
  }
  r->p += n;
  return true;
}

/* Reads a tag; false at the end or on a malformed tag (*ok says which).
 * Exactly as protobuf-c reads one (test_wire holds the two together): at
 * most five bytes, the first with a field number or a continuation (an
 * overlong encoding of field 0 is read, as an unknown field), the number
 * kept to 32 bits. */
static inline bool get_tag(reader *r, uint32_t *field, uint32_t *wt, bool *ok) {
  *ok = true;
  if (r->p == r->end) {
    return false;
  }
  const uint8_t *p = r->p;
  size_t max = (size_t)(r->end - p) < 5 ? (size_t)(r->end - p) : 5;
  if ((p[0] & 0xF8u) == 0) {
    *ok = false;
    return false;
  }
  uint32_t tag = (uint32_t)(p[0] & 0x7Fu) >> 3;
  *wt = p[0] & 7u;
  if (!(p[0] & 0x80u)) {
    r->p += 1;
    *field = tag;
    return true;
  }
  unsigned shift = 4;
  for (size_t i = 1; i < max; i++) {
    tag |= (uint32_t)(p[i] & 0x7Fu) << shift;
    if (!(p[i] & 0x80u)) {
      r->p += i + 1;
      *field = tag;
      return true;
    }
    shift += 7;
  }
  *ok = false;
  return false;
}

/* A little-endian fixed64; false when fewer than 8 bytes are left. */
static inline bool get_fixed64(reader *r, uint64_t *v) {
  if (r->end - r->p < 8) {
    return false;
  }
  uint64_t x = 0;
  for (int i = 7; i >= 0; i--) {
    x = x << 8 | r->p[i];
  }
  r->p += 8;
  *v = x;
  return true;
}

/* A length-delimited field's bytes; false when malformed. */
static inline bool get_bytes(reader *r, const uint8_t **data, size_t *len) {
  uint64_t n;
  if (!get_len(r, &n) || n > (uint64_t)(r->end - r->p)) {
    return false;
  }
  *data = r->p;
  *len = (size_t)n;
  r->p += n;
  return true;
}

#endif
