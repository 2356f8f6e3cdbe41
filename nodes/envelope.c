/* A node's Envelope read by hand: see envelope.h. */
#include "nodes/envelope.h"

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
