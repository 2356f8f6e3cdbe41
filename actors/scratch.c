/* Scratch space of a worker's network actors: see scratch.h. */
#include "actors/scratch.h"
#include "runtime/alloc.h"

#include <stdlib.h>

#include "actors/wire.h"
#include "peernet/net.h"

/* The decoding arena: a decoded datagram needs its frames, their
 * pointers and a copy of every payload, all below this. */
#define ARENA_BYTES (3u * PN_DATAGRAM_MAX + PN__MAX_FRAMES * 256u)

static void *arena_alloc(void *data, size_t size) {
  pn__scratch *s = data;
  size_t at = (s->arena_used + 15u) & ~(size_t)15u;
  if (size > ARENA_BYTES || at > ARENA_BYTES - size) {
    return NULL; /* protobuf-c then fails the decode: counted as bad */
  }
  s->arena_used = at + size;
  return s->arena + at;
}

static void arena_free(void *data, void *ptr) {
  (void)data;
  (void)ptr; /* everything goes at once, after the datagram */
}

pn_err pn__scratch_create(pn__scratch **out) {
  pn__scratch *s = pn__calloc(1, sizeof *s);
  if (!s) {
    return PN_ENOMEM;
  }
  s->cctx = ZSTD_createCCtx();
  s->dctx = ZSTD_createDCtx();
  s->arena = pn__malloc(ARENA_BYTES);
  s->buf = pn__malloc(2 * PN_DATAGRAM_MAX);
  s->zbuf = pn__malloc(2 * PN_DATAGRAM_MAX);
  s->arena_allocator.alloc = arena_alloc;
  s->arena_allocator.free = arena_free;
  s->arena_allocator.allocator_data = s;
  if (!s->cctx || !s->dctx || !s->buf || !s->zbuf || !s->arena) {
    pn__scratch_destroy(s);
    return PN_ENOMEM;
  }
  *out = s;
  return PN_OK;
}

void pn__scratch_destroy(pn__scratch *s) {
  if (!s) {
    return;
  }
  ZSTD_freeCCtx(s->cctx);
  ZSTD_freeDCtx(s->dctx);
  free(s->buf);
  free(s->zbuf);
  free(s->arena);
  free(s);
}

size_t pn__scratch_compress(pn__scratch *s, const ZSTD_CDict *dict,
                            uint8_t *dst, size_t cap, const uint8_t *src,
                            size_t len) {
  size_t z = dict ? ZSTD_compress_usingCDict(s->cctx, dst, cap, src, len, dict)
                  : ZSTD_compressCCtx(s->cctx, dst, cap, src, len, 1);
  return ZSTD_isError(z) ? 0 : z;
}

bool pn__scratch_decompress(pn__scratch *s, const ZSTD_DDict *dict,
                            const uint8_t *src, size_t len, size_t *out) {
  size_t n =
      dict ? ZSTD_decompress_usingDDict(s->dctx, s->zbuf, PN_DATAGRAM_MAX, src,
                                        len, dict)
           : ZSTD_decompressDCtx(s->dctx, s->zbuf, PN_DATAGRAM_MAX, src, len);
  if (ZSTD_isError(n)) {
    return false;
  }
  *out = n;
  return true;
}
