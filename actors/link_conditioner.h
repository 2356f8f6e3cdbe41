/* The link conditioner engine: decides, per datagram, whether it is
 * dropped, duplicated, delayed or held back, and releases the survivors in
 * time order. The socket actor owns one per direction and calls it from its
 * own handler only (no locking), submitting datagrams as opaque items and
 * taking back the due ones; its timer fires at pn__conditioner_next_ns().
 *
 * Model: a datagram first meets the bandwidth cap (a link that is busy for
 * bytes/rate per datagram; one that would wait longer than queue_us is tail
 * dropped), then random loss, then latency plus jitter. Jitter alone never
 * reorders (release times are kept monotonic); a datagram picked for
 * reordering gets reorder_delay_us more and is exempt from that, so later
 * datagrams overtake it. A duplicate follows its original by a fresh
 * jitter draw.
 */
#ifndef PN_ACTORS_LINK_CONDITIONER_H
#define PN_ACTORS_LINK_CONDITIONER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/conditioner.h"

typedef struct pn__cond_entry {
  uint64_t release_ns;
  uint64_t order; /* ties release in submit order */
  void *item;
} pn__cond_entry;

typedef struct pn__cond_stats {
  uint64_t submitted;
  uint64_t dropped_loss;
  uint64_t dropped_rate;
  uint64_t duplicated;
  uint64_t delayed; /* released later than submitted */
  uint64_t reordered;
} pn__cond_stats;

typedef struct pn__conditioner {
  pn_link_conditioner cfg;
  bool active; /* any impairment set */
  uint64_t rng[4];
  uint64_t link_free_ns;    /* the capped link is busy until then */
  uint64_t last_release_ns; /* keeps jitter from reordering */
  uint64_t next_order;
  pn__cond_entry *heap;
  size_t count;
  size_t capacity;
  pn__cond_stats stats;
} pn__conditioner;

/* Starts with cfg (NULL: no impairment). PN_EINVAL as
 * pn_link_conditioner_check(). */
pn_err pn__conditioner_init(pn__conditioner *c, const pn_link_conditioner *cfg);

/* Changes the settings while running; items already held keep their
 * release times. The PRNG is reseeded only if the seed changed. */
pn_err pn__conditioner_set(pn__conditioner *c, const pn_link_conditioner *cfg);

/* Frees the heap; the caller frees every item it gets from
 * pn__conditioner_drain() first. */
void pn__conditioner_fini(pn__conditioner *c);

/* Duplicates an item for a second copy; NULL when out of memory (the copy
 * is then skipped). */
typedef void *(*pn__cond_dup_fn)(void *item, void *ctx);

/* Hands over one datagram of `bytes` at now_ns. Returns true when the item
 * was taken (held, possibly with a duplicate); false when it was dropped,
 * in which case the caller still owns it. When the heap cannot grow the
 * datagram is dropped and counted as a rate drop. When the conditioner is
 * inactive the item is released at now_ns. */
bool pn__conditioner_submit(pn__conditioner *c, uint64_t now_ns, size_t bytes,
                            void *item, pn__cond_dup_fn dup, void *dup_ctx);

/* Takes the next item due at or before now_ns, or NULL. */
void *pn__conditioner_pop_due(pn__conditioner *c, uint64_t now_ns);

/* Release time of the next held item, or UINT64_MAX when none. */
uint64_t pn__conditioner_next_ns(const pn__conditioner *c);

/* Takes any held item regardless of time (for close), or NULL. */
void *pn__conditioner_drain(pn__conditioner *c);

#endif
