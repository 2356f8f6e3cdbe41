/* A node's Envelope (proto/peernet_node.proto) read by hand: every
 * message from another node is one, and protobuf-c's unpack allocated the
 * message and copied its payload, three allocations and a copy per
 * message on the node actor. This reads it in place, field for field as
 * protobuf-c does (tests/unit/test_envelope.c holds the two together on
 * seeded random and mutated input), the payload left where it is.
 *
 * Pure; nothing shared.
 */
#ifndef PN_NODES_ENVELOPE_H
#define PN_NODES_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pn__envelope {
  uint64_t to_actor, to_incarnation, from_actor;
  uint32_t type;
  const uint8_t *payload; /* inside the buffer read (NULL when empty) */
  size_t len;
} pn__envelope;

/* Reads buf[0..len) into *out; false (out undefined) when protobuf-c's
 * unpack would fail. */
bool pn__envelope_read(const uint8_t *buf, size_t len, pn__envelope *out);

#endif
