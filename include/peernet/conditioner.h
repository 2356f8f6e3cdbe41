/* Link conditioner settings: the network impairments a PeerNet socket can
 * apply to its own traffic, per direction, for testing games and services
 * on loopback (netem is not available everywhere, and needs root).
 *
 * Every impairment is drawn from a PRNG seeded by `seed`, so a run with the
 * same settings, seed and traffic makes the same decisions. Plain value
 * type; threading and ownership follow the function that takes it.
 */
#ifndef PEERNET_CONDITIONER_H
#define PEERNET_CONDITIONER_H

#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "peernet/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_link_conditioner {
  size_t size;               /* sizeof(pn_link_conditioner) */
  double loss;               /* probability a datagram is dropped, 0..1 */
  double duplicate;          /* probability a second copy is sent, 0..1 */
  double reorder;            /* probability a datagram is held back, 0..1 */
  uint32_t latency_us;       /* added one-way delay */
  uint32_t jitter_us;        /* uniform extra delay in [0, jitter_us] */
  uint32_t reorder_delay_us; /* hold-back of a reordered datagram; 0 =
                                latency + jitter + 1 ms */
  uint64_t rate_bytes_per_s; /* bandwidth cap; 0 = none */
  uint32_t queue_us;         /* at the cap, drop what would wait longer;
                                0 = 100 ms */
  uint64_t seed;             /* PRNG seed; 0 picks a fixed default */
} pn_link_conditioner;

/* No impairment at all. */
#define PN_LINK_CONDITIONER_INIT                                               \
  { .size = sizeof(pn_link_conditioner) }

/* Checks settings: PN_OK, or PN_EINVAL for a NULL pointer, a small size, a
 * probability outside 0..1 (or NaN), or delays over 60 s. Pure; any
 * thread. */
PN_API pn_err pn_link_conditioner_check(const pn_link_conditioner *cfg);

#ifdef __cplusplus
}
#endif

#endif
