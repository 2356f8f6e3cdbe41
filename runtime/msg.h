/* Message envelopes and the per-worker pools they come from.
 *
 * An envelope is a mailbox node followed by the message's header and, for
 * copied messages, its bytes. Envelopes come from size classes kept in
 * per-worker free lists; a worker that frees another worker's envelope
 * collects it in a batch and hands the batch home with one CAS. Envelopes
 * made off the workers (application threads) come from one locked pool of
 * the runtime's, which workers feed back the same way. Oversized envelopes
 * come from malloc and go back to free().
 *
 * Threading: pn__msg_alloc/free may run on any thread; w is the calling
 * worker of the same runtime, or NULL elsewhere.
 */
#ifndef PN_RUNTIME_MSG_H
#define PN_RUNTIME_MSG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/runtime.h"

typedef struct pn__worker pn__worker;

/* Intrusive MPSC mailbox link; first member of every envelope. */
typedef struct pn__node {
  _Atomic(struct pn__node *) next;
} pn__node;

enum pn__msg_kind {
  PN__MSG_COPY = 0, /* bytes inline */
  PN__MSG_BUF = 1,  /* caller's buffer handed over, freed by free_fn */
  PN__MSG_STOP = 2, /* stop request */
  PN__MSG_TICK = 3  /* timer tick; timer holds a reference for it */
};

#define PN__HOME_EXT 0xFFFFu /* from the application threads' pool */
#define PN__MSG_CLASSES 5

struct pn_msg {
  pn__node node;
  uint32_t type;
  uint32_t size;
  uint16_t home; /* worker index whose pool owns the block, or HOME_EXT */
  uint8_t cls;   /* size class */
  uint8_t kind;  /* enum pn__msg_kind */
  uint32_t chain_count; /* set on a chain's first envelope: see actor.h */
  void *data;
  struct pn_timer *timer; /* PN__MSG_TICK: holds a reference for it */
  uint64_t sent_ticks;    /* TSC when pushed into the mailbox; written
                             (and read) only when the runtime keeps
                             histograms */
  _Alignas(16) unsigned char inline_data[];
};

_Static_assert(sizeof(struct pn_msg) == 48,
               "a small message and its header share one cache line");

/* A handed-over buffer's release function (PN__MSG_BUF). It lives in the
 * inline bytes, which such an envelope does not otherwise use, so the
 * header has room for the send time without growing. */
typedef struct pn__msg_buf {
  pn_free_fn fn;
  void *ctx;
} pn__msg_buf;

static inline pn__msg_buf *pn__msg_buf_of(pn_msg *m) {
  return (pn__msg_buf *)(void *)m->inline_data;
}

typedef struct pn__msg_pool {
  pn_msg *free_list[PN__MSG_CLASSES];
  uint32_t free_count[PN__MSG_CLASSES];
  /* Batches of envelopes owned by other pools, indexed by home (the last
   * slot is the application threads' pool). */
  pn_msg **ret_head;
  pn_msg **ret_tail;
  uint32_t *ret_count;
  /* Chains handed home by other workers (Treiber stack of chains; only the
   * owner takes, and it takes everything, so there is no ABA). */
  _Atomic(pn_msg *) returned;
  /* Written by the owner only; read by stats. */
  _Atomic uint64_t allocs;
  _Atomic uint64_t frees;
} pn__msg_pool;

pn_err pn__msg_pool_init(pn__msg_pool *pool, uint32_t workers);

/* Frees every pooled block. Only once no thread uses the pool. */
void pn__msg_pool_fini(pn__msg_pool *pool, uint32_t workers);

/* The pool's owner, when idle: takes what other threads handed home, then
 * frees cached blocks above an eighth of each class's cap, so a past
 * burst's blocks do not pin the heap. Returns the bytes freed. */
size_t pn__msg_pool_shrink(pn__msg_pool *pool);

/* Envelope with room for size inline bytes (0 for handed-over buffers).
 * Returns NULL when memory runs out. rt counts off-worker allocations. */
pn_msg *pn__msg_alloc(pn_runtime *rt, pn__worker *w, size_t size);

/* Releases the payload (free_fn, timer reference) then the envelope. */
void pn__msg_free(pn_runtime *rt, pn__worker *w, pn_msg *m);

/* Releases only the payload of a delivered message, early, so the user's
 * buffer goes back as soon as the handler returned. Idempotent. */
void pn__msg_release_payload(pn_msg *m);

/* Hands every partly filled batch of foreign envelopes home. Owner only. */
void pn__msg_pool_flush(pn_runtime *rt, pn__worker *w);

#endif
