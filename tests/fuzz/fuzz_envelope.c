/* libFuzzer target for what a node reads from any member on a link: its
 * Envelope, read by hand (nodes/envelope.c) and by protobuf-c, which must
 * agree on every input (the same verdict and, when both read it, the same
 * fields: the hand reader replaced protobuf-c's on the node actor); and
 * the Batch that carries envelopes on a lane, read an envelope at a time
 * against protobuf-c's unpack of the whole, each envelope written back
 * reading the same; and its Control messages through protobuf-c's unpack
 * (the node actor's reader for them). A disagreement aborts, which libFuzzer
 * reports as a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/envelope.h"
#include "peernet_node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const pn__envelope *mine,
                 const Peernet__Node__V1__Envelope *theirs) {
  return mine->to_actor == theirs->to_actor &&
         mine->to_incarnation == theirs->to_incarnation &&
         mine->from_actor == theirs->from_actor && mine->type == theirs->type &&
         mine->len == theirs->payload.len &&
         (!mine->len ||
          memcmp(mine->payload, theirs->payload.data, mine->len) == 0);
}

/* The input as a Batch (what lanes carry): the hand reader's envelopes,
 * one at a time, against protobuf-c's unpack of the whole; and each
 * envelope written back by pn__batch_put reads the same. */
static void check_batch(const uint8_t *data, size_t size) {
  Peernet__Node__V1__Batch *theirs =
      peernet__node__v1__batch__unpack(NULL, size, data);
  const uint8_t *cur = data, *end = data + size;
  pn__envelope mine;
  bool ok = true;
  size_t n = 0;
  while (pn__batch_next(&cur, end, &mine, &ok)) {
    if (theirs &&
        (n >= theirs->n_envelopes || !same(&mine, theirs->envelopes[n]))) {
      abort();
    }
    uint8_t out[1 << 16];
    if (pn__batch_entry_size(&mine) <= sizeof out) {
      const uint8_t *p = out, *q = pn__batch_put(out, &mine);
      pn__envelope back;
      bool fine = true;
      if ((size_t)(q - out) != pn__batch_entry_size(&mine) ||
          !pn__batch_next(&p, q, &back, &fine) || back.len != mine.len ||
          back.to_actor != mine.to_actor || back.type != mine.type ||
          back.from_actor != mine.from_actor ||
          back.to_incarnation != mine.to_incarnation ||
          (back.len && memcmp(back.payload, mine.payload, back.len))) {
        abort();
      }
    }
    n++;
  }
  if (ok != (theirs != NULL) || (theirs && n != theirs->n_envelopes)) {
    abort();
  }
  if (theirs) {
    peernet__node__v1__batch__free_unpacked(theirs, NULL);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_batch(data, size);
  pn__envelope mine;
  bool ok = pn__envelope_read(data, size, &mine);
  Peernet__Node__V1__Envelope *theirs =
      peernet__node__v1__envelope__unpack(NULL, size, data);
  if (ok != (theirs != NULL)) {
    abort();
  }
  if (theirs) {
    if (!same(&mine, theirs)) {
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
