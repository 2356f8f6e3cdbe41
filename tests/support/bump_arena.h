/* A bump arena for protobuf-c decoding in tests, as the host decodes each
 * datagram into one (actors/host.c): reset before each decode, nothing
 * freed piece by piece, so a refused body leaves nothing behind.
 * Header-only: the fuzz target is built without the test support
 * library. */
#ifndef PN_TEST_BUMP_ARENA_H
#define PN_TEST_BUMP_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pn_test_arena {
  _Alignas(16) uint8_t buf[1u << 18];
  size_t used;
} pn_test_arena;

static inline void *pn_test_arena_alloc(void *data, size_t size) {
  pn_test_arena *a = data;
  size = (size + 15u) & ~(size_t)15u;
  if (size > sizeof a->buf - a->used) {
    return NULL;
  }
  void *p = a->buf + a->used;
  a->used += size;
  return p;
}

static inline void pn_test_arena_free(void *data, void *p) {
  (void)data;
  (void)p;
}

/* An allocator over a (reset to empty). */
static inline ProtobufCAllocator pn_test_arena_allocator(pn_test_arena *a) {
  a->used = 0;
  ProtobufCAllocator alloc = {pn_test_arena_alloc, pn_test_arena_free, a};
  return alloc;
}

#endif
