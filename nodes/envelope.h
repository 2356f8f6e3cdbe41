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

/* A Batch read an envelope at a time: *cur starts at the batch's first
 * byte. True with the next envelope in *out (*cur moved past it); false at
 * the end, with *ok false when the batch is malformed (as protobuf-c's
 * unpack of a Batch would fail; unknown fields are skipped). */
bool pn__batch_next(const uint8_t **cur, const uint8_t *end, pn__envelope *out,
                    bool *ok);

/* The bytes pn__batch_put writes for e, and the writing: one entry of a
 * Batch (field 1, its length, the Envelope), zero fields left out as
 * protobuf-c leaves them out; returns the end of what it wrote. */
size_t pn__batch_entry_size(const pn__envelope *e);
uint8_t *pn__batch_put(uint8_t *p, const pn__envelope *e);

#endif
