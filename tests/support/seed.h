/* The tests' seeded randomness. */
#ifndef PN_TEST_SEED_H
#define PN_TEST_SEED_H

#include <stdint.h>

/* The run's seed: PEERNET_TEST_SEED if set, else from the clock. Printed
 * once so a failure can be replayed with PEERNET_TEST_SEED=<seed>. */
uint64_t pn_test_seed(void);

/* Deterministic PRNG (splitmix64) for tests. */
uint64_t pn_test_rand(uint64_t *state);

#endif
