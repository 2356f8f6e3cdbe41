/* The scratch space of a worker's network actors: the buffers a datagram
 * is built or decoded in, the zstd contexts, and the bump arena protobuf-c
 * decodes into. One actor runs at a time on a worker and none keeps
 * anything here past its handler, so every host, peer and handshake on
 * that worker can share one, passed explicitly to whoever needs it.
 *
 * Today a host and its peers live on one worker and the host owns the
 * scratch of that worker (pn__host_scratch); nothing else reaches into the
 * host for buffers. Threading: the owning worker only.
 */
#ifndef PN_ACTORS_SCRATCH_H
#define PN_ACTORS_SCRATCH_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "peernet/error.h"

typedef struct pn__scratch {
  uint8_t *buf;  /* 2 x PN_DATAGRAM_MAX: a datagram being built */
  uint8_t *zbuf; /* 2 x PN_DATAGRAM_MAX: its compressed or decompressed
                    body */
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  /* Decoding one Packet at a time: protobuf-c would otherwise malloc each
   * frame and copy of its payload. Reset after each datagram. */
  ProtobufCAllocator arena_allocator;
  uint8_t *arena;
  size_t arena_used;
} pn__scratch;

/* A new scratch space. Errors: PN_ENOMEM. Any thread. */
pn_err pn__scratch_create(pn__scratch **out);

/* Frees it; NULL is ignored. */
void pn__scratch_destroy(pn__scratch *s);

/* Compresses src into dst (at most cap bytes) with the dictionary when
 * there is one. Returns the compressed length, or 0 when it does not fit
 * or fails. */
size_t pn__scratch_compress(pn__scratch *s, const ZSTD_CDict *dict,
                            uint8_t *dst, size_t cap, const uint8_t *src,
                            size_t len);

/* Decompresses src into zbuf, its length in *out. False on bad input. */
bool pn__scratch_decompress(pn__scratch *s, const ZSTD_DDict *dict,
                            const uint8_t *src, size_t len, size_t *out);

#endif
