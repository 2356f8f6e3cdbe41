#include "tests/support/test_support.h"

#include <errno.h>
#include <inttypes.h>
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

void pn_test_latch_init(pn_test_latch *l, uint64_t count) {
  pthread_mutex_init(&l->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cv, &ca);
  pthread_condattr_destroy(&ca);
  l->remaining = count;
}

void pn_test_latch_fini(pn_test_latch *l) {
  pthread_mutex_destroy(&l->lock);
  pthread_cond_destroy(&l->cv);
}

void pn_test_latch_add(pn_test_latch *l, uint64_t count) {
  pthread_mutex_lock(&l->lock);
  l->remaining += count;
  pthread_mutex_unlock(&l->lock);
}

void pn_test_latch_count_down(pn_test_latch *l) {
  pthread_mutex_lock(&l->lock);
  if (l->remaining && --l->remaining == 0) {
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->lock);
}

bool pn_test_latch_wait(pn_test_latch *l, uint64_t timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  uint64_t ns = (uint64_t)deadline.tv_nsec + (timeout_ms % 1000) * 1000000;
  deadline.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
  deadline.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&l->lock);
  while (l->remaining) {
    if (pthread_cond_timedwait(&l->cv, &l->lock, &deadline) == ETIMEDOUT) {
      break;
    }
  }
  bool done = l->remaining == 0;
  pthread_mutex_unlock(&l->lock);
  return done;
}

pn_runtime *pn_test_runtime(uint32_t workers) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = workers;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  return rt;
}

void pn_test_runtime_end(pn_runtime *rt) {
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30u * 1000000u));
  pn_runtime_stats st;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &st));
  assert_int_equal(st.actors_alive, 0);
  assert_int_equal(st.msgs_in_flight, 0);
  if (st.actor_handles || st.timers_active) {
    fail_msg("leak: %" PRIu64 " actor handles and %" PRIu64
             " timers still held",
             st.actor_handles, st.timers_active);
  }
  PN_ASSERT_OK(pn_runtime_destroy(rt));
}
