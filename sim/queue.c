/* A block's pending events (sim/sim.h): a binary min-heap of keys over a
 * pool of slots. */
#include <stdlib.h>
#include <string.h>

#include "runtime/alloc.h"
#include "sim/sim.h"

void pn__sim_queue_init(pn__sim_queue *q, uint32_t event_max) {
  memset(q, 0, sizeof *q);
  q->slot_size = (sizeof(pn__sim_slot) + event_max + 7) & ~(size_t)7;
}

void pn__sim_queue_fini(pn__sim_queue *q) {
  free(q->heap);
  free(q->slots);
  free(q->free);
  memset(q, 0, sizeof *q);
}

/* A free slot, the pool grown (doubled) when none is left. */
static bool slot_take(pn__sim_queue *q, uint32_t *out) {
  if (q->nfree) {
    *out = q->free[--q->nfree];
    return true;
  }
  size_t n = q->nslots ? q->nslots * 2 : 256;
  if (n > UINT32_MAX) {
    return false;
  }
  uint8_t *s = realloc(q->slots, n * q->slot_size);
  if (!s) {
    return false;
  }
  q->slots = s;
  uint32_t *f = realloc(q->free, n * sizeof *f);
  if (!f) {
    return false;
  }
  q->free = f;
  /* The new slots, lowest taken first. */
  for (size_t i = n; i > q->nslots + 1; i--) {
    q->free[q->nfree++] = (uint32_t)(i - 1);
  }
  *out = (uint32_t)q->nslots;
  q->nslots = n;
  return true;
}

bool pn__sim_queue_push(pn__sim_queue *q, const pn__sim_key *key,
                        uint32_t lp_local, const void *data, uint32_t len) {
  if (q->count == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 256;
    pn__sim_entry *h = realloc(q->heap, cap * sizeof *h);
    if (!h) {
      return false;
    }
    q->heap = h;
    q->cap = cap;
  }
  uint32_t slot;
  if (!slot_take(q, &slot)) {
    return false;
  }
  pn__sim_slot *s = (pn__sim_slot *)(q->slots + (size_t)slot * q->slot_size);
  s->lp_local = lp_local;
  s->len = len;
  if (len) {
    memcpy(s + 1, data, len);
  }
  /* Sift up. */
  size_t i = q->count++;
  while (i) {
    size_t parent = (i - 1) / 2;
    if (!pn__sim_key_less(key, &q->heap[parent].key)) {
      break;
    }
    q->heap[i] = q->heap[parent];
    i = parent;
  }
  q->heap[i] = (pn__sim_entry){*key, slot};
  return true;
}

uint32_t pn__sim_queue_pop(pn__sim_queue *q, pn__sim_key *key_out) {
  pn__sim_entry top = q->heap[0];
  pn__sim_entry last = q->heap[--q->count];
  /* Sift the last entry down from the root. */
  size_t i = 0, n = q->count;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n) {
      break;
    }
    if (c + 1 < n && pn__sim_key_less(&q->heap[c + 1].key, &q->heap[c].key)) {
      c++;
    }
    if (!pn__sim_key_less(&q->heap[c].key, &last.key)) {
      break;
    }
    q->heap[i] = q->heap[c];
    i = c;
  }
  if (n) {
    q->heap[i] = last;
  }
  *key_out = top.key;
  return top.slot;
}

void pn__sim_queue_done(pn__sim_queue *q, uint32_t slot) {
  q->free[q->nfree++] = slot; /* room: the pool's size */
}
