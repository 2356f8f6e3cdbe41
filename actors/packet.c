/* Packets, the names of kinds and reasons, dictionary training. See net.h. */
#include <protobuf-c/protobuf-c.h>
#include <zdict.h>
#include <stdlib.h>
#include <string.h>

#include "actors/packet.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"

pn_packet *pn__packet_new(pn_runtime *rt, size_t len) {
  pn_packet *p =
      rt ? pn__block_alloc(rt, sizeof *p + len) : pn__malloc(sizeof *p + len);
  if (p) {
    atomic_init(&p->refs, 1);
    p->len = (uint32_t)len;
    p->rt = rt;
  }
  return p;
}

pn_err pn_packet_create(const void *data, size_t len, pn_packet **out) {
  if (!out || (len && !data)) {
    return PN_EINVAL;
  }
  if (len > PN_PACKET_MAX) {
    return PN_EMSGSIZE;
  }
  pn_packet *p = pn__packet_new(NULL, len);
  if (!p) {
    return PN_ENOMEM;
  }
  if (len) {
    memcpy(p->data, data, len);
  }
  *out = p;
  return PN_OK;
}

pn_err pn_packet_from_protobuf(const struct ProtobufCMessage *msg,
                               pn_packet **out) {
  if (!msg || !out) {
    return PN_EINVAL;
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > PN_PACKET_MAX) {
    return PN_EMSGSIZE;
  }
  pn_packet *p = pn__packet_new(NULL, len);
  if (!p) {
    return PN_ENOMEM;
  }
  (void)protobuf_c_message_pack(msg, p->data);
  *out = p;
  return PN_OK;
}

pn_err pn_packet_unpack(const pn_packet *pkt,
                        const struct ProtobufCMessageDescriptor *desc,
                        struct ProtobufCAllocator *allocator,
                        struct ProtobufCMessage **out) {
  if (!pkt || !desc || !out) {
    return PN_EINVAL;
  }
  ProtobufCMessage *m =
      protobuf_c_message_unpack(desc, allocator, pkt->len, pkt->data);
  if (!m) {
    return PN_EINVAL;
  }
  *out = m;
  return PN_OK;
}

void pn_packet_hold(pn_packet *pkt) {
  if (pkt) {
    atomic_fetch_add_explicit(&pkt->refs, 1, memory_order_relaxed);
  }
}

void pn_packet_release(pn_packet *pkt) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's reads and writes; the acquire half, in the last holder,
   * pairs with every other holder's release half here before the free. A
   * sole holder (the common case: a received message) skips the RMW:
   * nobody else can take a reference, and its acquire load pairs with the
   * release half of the earlier holders' fetch_sub here just the same. */
  if (pkt &&
      (atomic_load_explicit(&pkt->refs, memory_order_acquire) == 1 ||
       atomic_fetch_sub_explicit(&pkt->refs, 1, memory_order_acq_rel) == 1)) {
    if (pkt->rt) {
      pn__block_free(pkt->rt, pkt);
    } else {
      free(pkt);
    }
  }
}

const void *pn_packet_data(const pn_packet *pkt) {
  return pkt ? pkt->data : NULL;
}

size_t pn_packet_len(const pn_packet *pkt) { return pkt ? pkt->len : 0; }

/* --- names --------------------------------------------------------------- */

static const char *const kind_names[PN_CHANNEL_KINDS] = {
    "unreliable", "reliable", "ordered", "unsequenced", "reliable-unordered"};

const char *pn_channel_kind_name(pn_channel_kind kind) {
  return (unsigned)kind < PN_CHANNEL_KINDS ? kind_names[kind] : "?";
}

pn_err pn_channel_kind_parse(const char *name, pn_channel_kind *out) {
  if (!name || !out) {
    return PN_EINVAL;
  }
  for (unsigned i = 0; i < PN_CHANNEL_KINDS; i++) {
    if (strcmp(name, kind_names[i]) == 0) {
      *out = (pn_channel_kind)i;
      return PN_OK;
    }
  }
  return PN_EINVAL;
}

const char *pn_reason_name(uint32_t reason) {
  switch (reason) {
  case PN_REASON_TIMEOUT:
    return "timeout";
  case PN_REASON_CONNECT_TIMEOUT:
    return "connect-timeout";
  case PN_REASON_FULL:
    return "full";
  case PN_REASON_HOST_CLOSED:
    return "host-closed";
  case PN_REASON_VERSION:
    return "version";
  case PN_REASON_REFUSED:
    return "refused";
  case PN_REASON_DICTIONARY:
    return "dictionary";
  case PN_REASON_SERVER_KEY:
    return "server-key";
  case PN_REASON_AUTH:
    return "auth";
  case PN_REASON_ACK_TIMEOUT:
    return "ack-timeout";
  case PN_REASON_ADDRESS_LIMIT:
    return "address-limit";
  case PN_REASON_RETRANSMIT_LIMIT:
    return "retransmit-limit";
  default:
    return reason < PN_REASON_LIBRARY ? "application" : "?";
  }
}

/* --- dictionaries -------------------------------------------------------- */

pn_err pn_zstd_train_dictionary(const void *const *samples,
                                const size_t *sample_lens, size_t count,
                                void *dict, size_t *dict_len) {
  if (!samples || !sample_lens || !count || !dict || !dict_len || !*dict_len ||
      count > UINT32_MAX) {
    return PN_EINVAL;
  }
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    if (!samples[i] && sample_lens[i]) {
      return PN_EINVAL;
    }
    total += sample_lens[i];
  }
  /* ZDICT wants the samples back to back. */
  unsigned char *all = pn__malloc(total ? total : 1);
  size_t *lens = pn__malloc(count * sizeof *lens);
  if (!all || !lens) {
    free(all);
    free(lens);
    return PN_ENOMEM;
  }
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    if (sample_lens[i]) {
      memcpy(all + off, samples[i], sample_lens[i]);
    }
    off += sample_lens[i];
    lens[i] = sample_lens[i];
  }
  size_t n = ZDICT_trainFromBuffer(dict, *dict_len, all, lens, (unsigned)count);
  free(all);
  free(lens);
  if (ZDICT_isError(n)) {
    return PN_ERANGE;
  }
  *dict_len = n;
  return PN_OK;
}
