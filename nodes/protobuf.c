/* protobuf-c payloads between nodes (include/peernet/node.h): packed on
 * the way out, unpacked from a delivered message's bytes. */
#include <protobuf-c/protobuf-c.h>
#include <stdlib.h>

#include "nodes/node.h"

/* Packed forms up to this size go from the stack. */
#define STACK_PACK 1024u

pn_err pn_node_send_protobuf(pn_node *node, const pn_ref *to, uint32_t type,
                             const ProtobufCMessage *msg) {
  if (!msg) {
    return PN_EINVAL;
  }
  size_t len = protobuf_c_message_get_packed_size(msg);
  if (len > PN__NODE_PAYLOAD_MAX) {
    return PN_ERANGE;
  }
  uint8_t stack[STACK_PACK];
  uint8_t *buf = len <= sizeof stack ? stack : malloc(len);
  if (!buf) {
    return PN_ENOMEM;
  }
  (void)protobuf_c_message_pack(msg, buf);
  pn_err err = pn_node_send(node, to, type, buf, len);
  if (buf != stack) {
    free(buf);
  }
  return err;
}

pn_err pn_msg_unpack_protobuf(const pn_msg *msg,
                              const ProtobufCMessageDescriptor *desc,
                              ProtobufCAllocator *allocator,
                              ProtobufCMessage **out) {
  if (!msg || !desc || !out) {
    return PN_EINVAL;
  }
  ProtobufCMessage *m = protobuf_c_message_unpack(
      desc, allocator, pn_msg_size(msg), pn_msg_data(msg));
  if (!m) {
    return PN_EINVAL;
  }
  *out = m;
  return PN_OK;
}
