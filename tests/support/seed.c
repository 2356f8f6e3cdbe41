/* Seeds and the tests' PRNG: see seed.h. Needs nothing of the library,
 * so a test of a module alone (test_recovery) links it too. */
#include "tests/support/seed.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t pn_test_seed(void) {
  static uint64_t seed;
  static bool printed;
  if (!printed) {
    const char *env = getenv("PEERNET_TEST_SEED");
    if (env && *env) {
      char *end = NULL;
      errno = 0;
      unsigned long long v = strtoull(env, &end, 0);
      if (errno == 0 && end && *end == '\0') {
        seed = v;
      }
    }
    if (!seed) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec;
    }
    fprintf(stderr,
            "# seed=%" PRIu64 " (replay: PEERNET_TEST_SEED=%" PRIu64 ")\n",
            seed, seed);
    printed = true;
  }
  return seed;
}

uint64_t pn_test_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
