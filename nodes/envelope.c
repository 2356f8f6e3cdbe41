/* A node's Envelope read by hand: see envelope.h. */
#include "nodes/envelope.h"

#include <string.h>

#include "actors/pbread.h"

bool pn__envelope_read(const uint8_t *buf, size_t len, pn__envelope *out) {
  *out = (pn__envelope){0};
  reader r = {buf, buf + len};
  uint32_t field, wt;
  bool ok;
  while (get_tag(&r, &field, &wt, &ok)) {
    uint64_t v;
    switch (field) {
    case 1:
    case 2:
    case 3:
      if (wt != WT_FIXED64 || !get_fixed64(&r, &v)) {
        return false;
      }
      *(field == 1   ? &out->to_actor
        : field == 2 ? &out->to_incarnation
                     : &out->from_actor) = v;
      break;
    case 4:
      if (wt != WT_VARINT || !get_varint(&r, &v)) {
        return false;
      }
      out->type = (uint32_t)v;
      break;
    case 5:
      if (wt != WT_LEN || !get_bytes(&r, &out->payload, &out->len)) {
        return false;
      }
      if (!out->len) {
        out->payload = NULL;
      }
      break;
    default:
      if (!skip_field(&r, wt)) {
        return false;
      }
    }
  }
  return ok;
}

bool pn__batch_next(const uint8_t **cur, const uint8_t *end, pn__envelope *out,
                    bool *ok) {
  reader r = {*cur, end};
  uint32_t field, wt;
  while (get_tag(&r, &field, &wt, ok)) {
    if (field != 1) {
      if (!skip_field(&r, wt)) {
        *ok = false;
        return false;
      }
      continue;
    }
    const uint8_t *env;
    size_t len;
    if (wt != WT_LEN || !get_bytes(&r, &env, &len) ||
        !pn__envelope_read(env, len, out)) {
      *ok = false;
      return false;
    }
    *cur = r.p;
    return true;
  }
  *cur = r.p;
  return false;
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static uint8_t *put_fixed64(uint8_t *p, uint8_t tag, uint64_t v) {
  *p++ = tag;
  for (int i = 0; i < 8; i++) {
    *p++ = (uint8_t)(v >> (8 * i));
  }
  return p;
}

static size_t envelope_size(const pn__envelope *e) {
  return (e->to_actor ? 9u : 0u) + (e->to_incarnation ? 9u : 0u) +
         (e->from_actor ? 9u : 0u) + (e->type ? 1 + varint_size(e->type) : 0) +
         (e->len ? 1 + varint_size(e->len) + e->len : 0);
}

size_t pn__batch_entry_size(const pn__envelope *e) {
  size_t n = envelope_size(e);
  return 1 + varint_size(n) + n;
}

uint8_t *pn__batch_put(uint8_t *p, const pn__envelope *e) {
  *p++ = 0x0A; /* field 1, length-delimited */
  p = put_varint(p, envelope_size(e));
  if (e->to_actor) {
    p = put_fixed64(p, 0x09, e->to_actor);
  }
  if (e->to_incarnation) {
    p = put_fixed64(p, 0x11, e->to_incarnation);
  }
  if (e->from_actor) {
    p = put_fixed64(p, 0x19, e->from_actor);
  }
  if (e->type) {
    *p++ = 0x20;
    p = put_varint(p, e->type);
  }
  if (e->len) {
    *p++ = 0x2A;
    p = put_varint(p, e->len);
    memcpy(p, e->payload, e->len);
    p += e->len;
  }
  return p;
}
