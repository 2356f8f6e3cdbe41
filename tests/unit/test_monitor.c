/* Monitors (pn_monitor, peernet/runtime.h): one PN_MSG_DOWN per monitor
 * when the watched actor stops, with its reason; PN_DOWN_NOPROC at once
 * for an actor already stopped; none after pn_demonitor; monitors made
 * while the actor stops (from other threads) each get exactly one DOWN;
 * bad arguments change nothing. pn_test_runtime_end proves every watcher
 * reference and table entry was given back. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/test_support.h"

enum { MAX_DOWNS = 4096 };

/* A watcher: the DOWNs it got. */
typedef struct watcher {
  pthread_mutex_t lock;
  pn_down downs[MAX_DOWNS];
  size_t n;
  pn_test_latch *latch; /* counted down per DOWN */
} watcher;

static void watcher_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  watcher *w = state;
  if (pn_msg_type(msg) != PN_MSG_DOWN) {
    return;
  }
  pn_down d;
  PN_ASSERT_OK(pn_msg_down(msg, &d));
  pthread_mutex_lock(&w->lock);
  assert_true(w->n < MAX_DOWNS);
  w->downs[w->n++] = d;
  pthread_mutex_unlock(&w->lock);
  if (w->latch) {
    pn_test_latch_count_down(w->latch);
  }
}

static void idle_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

static void watcher_init(watcher *w, pn_test_latch *latch) {
  memset(w, 0, sizeof *w);
  pthread_mutex_init(&w->lock, NULL);
  w->latch = latch;
}

/* Two monitors of one actor, one removed: the other's DOWN names it, the
 * actor, PN_DOWN_NORMAL; the removed one's never comes; a second
 * pn_demonitor of it is PN_ENOENT. */
static void one_down_per_monitor(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  static watcher w;
  pn_test_latch got;
  pn_test_latch_init(&got, 1);
  watcher_init(&w, &got);
  pn_actor *wa = pn_test_spawn(rt, "watcher", watcher_handler, &w, -1);
  pn_actor *t = pn_test_spawn(rt, "target", idle_handler, NULL, -1);
  uint64_t m1, m2;
  PN_ASSERT_OK(pn_monitor(t, wa, &m1));
  PN_ASSERT_OK(pn_monitor(t, wa, &m2));
  assert_true(m1 != m2);
  PN_ASSERT_OK(pn_demonitor(t, m1));
  PN_ASSERT_ERR(PN_ENOENT, pn_demonitor(t, m1));
  PN_ASSERT_OK(pn_actor_stop(t));
  assert_true(pn_test_latch_wait(&got, 10000));
  /* Monitoring it now: NOPROC at once. */
  pn_test_latch_add(&got, 1);
  uint64_t m3;
  PN_ASSERT_OK(pn_monitor(t, wa, &m3));
  assert_true(pn_test_latch_wait(&got, 10000));
  PN_ASSERT_ERR(PN_ENOENT, pn_demonitor(t, m2)); /* it fired */
  pthread_mutex_lock(&w.lock);
  assert_int_equal(w.n, 2);
  assert_int_equal(w.downs[0].monitor, m2);
  assert_int_equal(w.downs[0].actor, pn_actor_id(t));
  assert_int_equal(w.downs[0].reason, PN_DOWN_NORMAL);
  assert_int_equal(w.downs[0].node, 0);
  assert_int_equal(w.downs[1].monitor, m3);
  assert_int_equal(w.downs[1].reason, PN_DOWN_NOPROC);
  pthread_mutex_unlock(&w.lock);
  pn_actor_release(t);
  pn_actor_release(wa);
  pn_test_latch_fini(&got);
  pn_test_runtime_end(rt);
}

/* pn_actor_stop_reason: the first reason given is the one the DOWN
 * carries; reasons below PN_DOWN_APP are refused and change nothing. */
static void stop_with_a_reason(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(1);
  static watcher w;
  pn_test_latch got;
  pn_test_latch_init(&got, 1);
  watcher_init(&w, &got);
  pn_actor *wa = pn_test_spawn(rt, "watcher", watcher_handler, &w, -1);
  pn_actor *t = pn_test_spawn(rt, "target", idle_handler, NULL, -1);
  uint64_t m;
  PN_ASSERT_OK(pn_monitor(t, wa, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stop_reason(t, PN_DOWN_NOPROC));
  PN_ASSERT_OK(pn_actor_stop_reason(t, PN_DOWN_APP + 7));
  (void)pn_actor_stop_reason(t, PN_DOWN_APP + 8); /* the first counts */
  assert_true(pn_test_latch_wait(&got, 10000));
  PN_ASSERT_ERR(PN_ECLOSED, pn_actor_stop_reason(t, PN_DOWN_APP + 9));
  pthread_mutex_lock(&w.lock);
  assert_int_equal(w.n, 1);
  assert_int_equal(w.downs[0].monitor, m);
  assert_int_equal(w.downs[0].reason, PN_DOWN_APP + 7);
  pthread_mutex_unlock(&w.lock);
  pn_actor_release(t);
  pn_actor_release(wa);
  pn_test_latch_fini(&got);
  pn_test_runtime_end(rt);
}

/* Threads monitor 64 actors while they stop: every monitor made gets
 * exactly one DOWN (NORMAL if it was made before the stop, NOPROC after),
 * whatever the interleaving. */
enum { TARGETS = 64, THREADS = 2, PER_THREAD = 8 };

typedef struct racer {
  pn_actor **targets;
  pn_actor *watcher;
  uint64_t ids[TARGETS * PER_THREAD];
  size_t n;
} racer;

static void *race_monitors(void *arg) {
  racer *r = arg;
  for (uint32_t k = 0; k < PER_THREAD; k++) {
    for (uint32_t i = 0; i < TARGETS; i++) {
      PN_ASSERT_OK(pn_monitor(r->targets[i], r->watcher, &r->ids[r->n++]));
    }
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void monitors_racing_stops(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  static watcher w;
  pn_test_latch got;
  pn_test_latch_init(&got, THREADS * TARGETS * PER_THREAD);
  watcher_init(&w, &got);
  pn_actor *wa = pn_test_spawn(rt, "watcher", watcher_handler, &w, -1);
  pn_actor *targets[TARGETS];
  for (uint32_t i = 0; i < TARGETS; i++) {
    targets[i] = pn_test_spawn(rt, "target", idle_handler, NULL, -1);
  }
  static racer rs[THREADS];
  pthread_t th[THREADS];
  for (uint32_t i = 0; i < THREADS; i++) {
    rs[i] = (racer){.targets = targets, .watcher = wa};
    assert_int_equal(pthread_create(&th[i], NULL, race_monitors, &rs[i]), 0);
  }
  for (uint32_t i = 0; i < TARGETS; i++) {
    PN_ASSERT_OK(pn_actor_stop(targets[i]));
  }
  for (uint32_t i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
  }
  assert_true(pn_test_latch_wait(&got, 10000));
  uint64_t ids[THREADS * TARGETS * PER_THREAD];
  size_t n = 0;
  for (uint32_t i = 0; i < THREADS; i++) {
    memcpy(ids + n, rs[i].ids, rs[i].n * sizeof ids[0]);
    n += rs[i].n;
  }
  pthread_mutex_lock(&w.lock);
  assert_int_equal(w.n, n);
  uint64_t got_ids[THREADS * TARGETS * PER_THREAD];
  for (size_t i = 0; i < n; i++) {
    got_ids[i] = w.downs[i].monitor;
    assert_true(w.downs[i].reason == PN_DOWN_NORMAL ||
                w.downs[i].reason == PN_DOWN_NOPROC);
  }
  pthread_mutex_unlock(&w.lock);
  qsort(ids, n, sizeof ids[0], cmp_u64);
  qsort(got_ids, n, sizeof ids[0], cmp_u64);
  assert_memory_equal(ids, got_ids, n * sizeof ids[0]); /* one each */
  for (uint32_t i = 0; i < TARGETS; i++) {
    pn_actor_release(targets[i]);
  }
  pn_actor_release(wa);
  pn_test_latch_fini(&got);
  pn_test_runtime_end(rt);
}

/* A monitor whose watcher stops first: the target's stop still gives the
 * watcher's reference back (pn_test_runtime_end checks), and a monitor
 * left when the runtime shuts down fires then. */
static void watcher_gone_and_shutdown(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(1);
  static watcher w;
  watcher_init(&w, NULL);
  pn_actor *wa = pn_test_spawn(rt, "watcher", watcher_handler, &w, -1);
  pn_actor *t = pn_test_spawn(rt, "target", idle_handler, NULL, -1);
  pn_actor *t2 = pn_test_spawn(rt, "target2", idle_handler, NULL, -1);
  uint64_t m;
  PN_ASSERT_OK(pn_monitor(t, wa, &m));
  PN_ASSERT_OK(pn_monitor(t2, wa, &m));
  PN_ASSERT_OK(pn_actor_stop(wa));
  PN_ASSERT_OK(pn_actor_stop(t));
  pn_actor_release(t);
  pn_actor_release(t2);
  pn_actor_release(wa);
  pn_test_runtime_end(rt); /* t2 stops in the shutdown */
}

static void bad_arguments(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(1);
  pn_runtime *rt2 = pn_test_runtime(1);
  pn_actor *a = pn_test_spawn(rt, "a", idle_handler, NULL, -1);
  pn_actor *b = pn_test_spawn(rt2, "b", idle_handler, NULL, -1);
  uint64_t m = 77;
  PN_ASSERT_ERR(PN_EINVAL, pn_monitor(NULL, a, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_monitor(a, NULL, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_monitor(a, a, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_monitor(a, b, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_monitor(a, a, NULL));
  assert_int_equal(m, 77);
  PN_ASSERT_ERR(PN_EINVAL, pn_demonitor(NULL, 1));
  PN_ASSERT_ERR(PN_ENOENT, pn_demonitor(a, 12345));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stop_reason(NULL, PN_DOWN_APP));
  pn_down d;
  PN_ASSERT_ERR(PN_EINVAL, pn_msg_down(NULL, &d));
  pn_actor_release(a);
  pn_actor_release(b);
  pn_test_runtime_end(rt);
  pn_test_runtime_end(rt2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_down_per_monitor),
      cmocka_unit_test(stop_with_a_reason),
      cmocka_unit_test(monitors_racing_stops),
      cmocka_unit_test(watcher_gone_and_shutdown),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
