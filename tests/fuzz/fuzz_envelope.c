/* libFuzzer target for what a node reads from any member on a link: its
 * Envelope, read by hand (nodes/envelope.c) and by protobuf-c, which must
 * agree on every input (the same verdict and, when both read it, the same
 * fields: the hand reader replaced protobuf-c's on the node actor); and
 * its Control messages through protobuf-c's unpack (the node actor's
 * reader for them). A disagreement aborts, which libFuzzer reports as a
 * crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/envelope.h"
#include "peernet_node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pn__envelope mine;
  bool ok = pn__envelope_read(data, size, &mine);
  Peernet__Node__V1__Envelope *theirs =
      peernet__node__v1__envelope__unpack(NULL, size, data);
  if (ok != (theirs != NULL)) {
    abort();
  }
  if (theirs) {
    if (mine.to_actor != theirs->to_actor ||
        mine.to_incarnation != theirs->to_incarnation ||
        mine.from_actor != theirs->from_actor || mine.type != theirs->type ||
        mine.len != theirs->payload.len ||
        (mine.len && memcmp(mine.payload, theirs->payload.data, mine.len))) {
      abort();
    }
    if (mine.len &&
        (mine.payload < data || mine.payload + mine.len > data + size)) {
      abort(); /* the payload lies inside the input */
    }
    peernet__node__v1__envelope__free_unpacked(theirs, NULL);
  }
  Peernet__Node__V1__Control *c =
      peernet__node__v1__control__unpack(NULL, size, data);
  if (c) {
    peernet__node__v1__control__free_unpacked(c, NULL);
  }
  return 0;
}
