/* Statistics: exact per-actor counters after a known workload, snapshots
 * (every live actor exactly once, stopped ones gone, taken concurrently with
 * spawns and stops, from a handler too), state names, handler CPU time on
 * and off, the mailbox high-water mark, the envelopes-in-flight count,
 * bad arguments, the mailbox-time and processing-time histograms, and
 * workers' idle time (current, never faster than the clock). */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/test_support.h"

enum { MSG_VALUE = 1, MSG_BLOCK = 2, MSG_FILL = 3, MSG_SNAP = 4 };

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static pn_actor_stats actor_stats(const pn_actor *a) {
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  return st;
}

static pn_runtime_stats runtime_stats(pn_runtime *rt) {
  pn_runtime_stats st;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &st));
  return st;
}

/* Polls until actors_stopped reaches n. The registry forgets an actor just
 * after its PN_MSG_STOPPED handler returned and there is no hook to wait
 * on, so this yields in a loop with a deadline (never sleeps). */
static bool wait_stopped_count(pn_runtime *rt, uint64_t n,
                               uint64_t timeout_ms) {
  uint64_t deadline = mono_ns() + timeout_ms * 1000000u;
  for (;;) {
    if (runtime_stats(rt).actors_stopped >= n) {
      return true;
    }
    if (mono_ns() >= deadline) {
      return false;
    }
    sched_yield();
  }
}

/* --- exact counters ------------------------------------------------------- */

typedef struct forwarder {
  pn_actor *to;        /* NULL: only counts */
  pn_test_latch *each; /* counted down per MSG_VALUE, may be NULL */
  pn_test_latch *stopped;
  _Atomic uint64_t handled;
  _Atomic int errors;
} forwarder;

/* Counts MSG_VALUE and forwards the even ones to f->to. */
static void forwarder_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  forwarder *f = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    pn_test_latch_count_down(f->stopped);
    return;
  }
  uint64_t v = 0;
  if (pn_msg_type(msg) != MSG_VALUE || pn_msg_size(msg) != sizeof v) {
    atomic_fetch_add(&f->errors, 1);
    return;
  }
  memcpy(&v, pn_msg_data(msg), sizeof v);
  atomic_fetch_add(&f->handled, 1);
  if (f->to && v % 2 == 0 && pn_send(f->to, MSG_VALUE, &v, sizeof v) != PN_OK) {
    atomic_fetch_add(&f->errors, 1);
  }
  if (f->each) {
    pn_test_latch_count_down(f->each);
  }
}

static void counters_exact_after_known_workload(void **state) {
  (void)state;
  enum { K = 2000 };
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch b_done, stopped;
  pn_test_latch_init(&b_done, K / 2);
  pn_test_latch_init(&stopped, 2);
  forwarder fb = {.each = &b_done, .stopped = &stopped};
  pn_actor *b = pn_test_spawn(rt, "fwd-b", forwarder_handler, &fb, -1);
  forwarder fa = {.to = b, .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "fwd-a", forwarder_handler, &fa, -1);
  for (uint64_t i = 0; i < K; i++) {
    PN_ASSERT_OK(pn_send(a, MSG_VALUE, &i, sizeof i));
  }
  assert_true(pn_test_latch_wait(&b_done, 10000));
  PN_ASSERT_OK(pn_actor_stop(a));
  PN_ASSERT_OK(pn_actor_stop(b));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  /* Workers joined: every counter is final. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&fa.errors), 0);
  assert_int_equal(atomic_load(&fb.errors), 0);
  assert_int_equal(atomic_load(&fa.handled), K);
  assert_int_equal(atomic_load(&fb.handled), K / 2);

  /* received counts the stop request (taken from the mailbox, not handled);
   * processed counts the final PN_MSG_STOPPED (handled, never queued). */
  pn_actor_stats sa = actor_stats(a);
  assert_int_equal(sa.id, pn_actor_id(a));
  assert_string_equal(sa.name, "fwd-a");
  assert_int_equal(sa.state, PN_ACTOR_STOPPED);
  assert_int_equal(sa.home_worker, -1);
  assert_int_equal(sa.received, K + 1);
  assert_int_equal(sa.processed, K + 1);
  assert_int_equal(sa.dropped, 0);
  assert_int_equal(sa.sent, K / 2);
  assert_true(sa.runs > 0);
  assert_int_equal(sa.mailbox_depth, 0); /* drained */

  pn_actor_stats sb = actor_stats(b);
  assert_int_equal(sb.id, pn_actor_id(b));
  assert_string_equal(sb.name, "fwd-b");
  assert_int_equal(sb.state, PN_ACTOR_STOPPED);
  assert_int_equal(sb.received, K / 2 + 1);
  assert_int_equal(sb.processed, K / 2 + 1);
  assert_int_equal(sb.dropped, 0);
  assert_int_equal(sb.sent, 0); /* sends from the test thread don't count */
  assert_true(sb.runs > 0);
  assert_int_equal(sb.mailbox_depth, 0);

  pn_runtime_stats rs = runtime_stats(rt);
  assert_int_equal(rs.workers, 2);
  assert_int_equal(rs.actors_spawned, 2);
  assert_int_equal(rs.actors_stopped, 2);
  assert_int_equal(rs.actors_alive, 0);
  assert_int_equal(rs.actor_handles, 2); /* ours */
  assert_int_equal(rs.msgs_in_flight, 0);
  assert_int_equal(rs.timers_active, 0);

  /* Every actor run is counted once by its actor and once by the worker
   * that ran it; only these two actors ever ran. */
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  assert_int_equal(snap->actor_count, 0);
  assert_int_equal(snap->worker_count, 2);
  uint64_t worker_runs = 0;
  for (size_t i = 0; i < snap->worker_count; i++) {
    worker_runs += snap->workers[i].runs;
    assert_true(snap->workers[i].stolen_actors >= snap->workers[i].steals);
    assert_int_equal(snap->workers[i].timers_fired, 0);
  }
  assert_int_equal(worker_runs, sa.runs + sb.runs);
  pn_snapshot_free(snap);

  pn_actor_release(a);
  pn_actor_release(b);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&b_done);
  pn_test_latch_fini(&stopped);
}

/* --- snapshots ------------------------------------------------------------ */

typedef struct quiet {
  pn_test_latch *stopped;
} quiet;

static void quiet_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  quiet *q = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED && q && q->stopped) {
    pn_test_latch_count_down(q->stopped);
  }
}

enum { SNAP_ACTORS = 500, SNAP_NAMES = 10, SNAP_WORKERS = 3 };

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x;
  uint64_t b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* Checks that the snapshot lists exactly the actors a[i] with live[i] set,
 * each once, with its name "w-<i % SNAP_NAMES>". */
static void check_listed(const pn_snapshot *snap, pn_actor *const *a,
                         const bool *live) {
  size_t expected = 0;
  size_t per_name[SNAP_NAMES] = {0};
  for (uint32_t i = 0; i < SNAP_ACTORS; i++) {
    if (live[i]) {
      expected++;
      per_name[i % SNAP_NAMES]++;
    }
  }
  assert_int_equal(snap->actor_count, expected);
  /* Ids of a fresh runtime are 1..SNAP_ACTORS in spawn order. */
  uint8_t seen[SNAP_ACTORS + 1];
  memset(seen, 0, sizeof seen);
  size_t names[SNAP_NAMES] = {0};
  for (size_t k = 0; k < snap->actor_count; k++) {
    const pn_actor_stats *st = &snap->actors[k];
    if (st->id < 1 || st->id > SNAP_ACTORS) {
      fail_msg("unknown actor id %" PRIu64, st->id);
    }
    uint32_t i = (uint32_t)(st->id - 1);
    assert_int_equal(pn_actor_id(a[i]), st->id);
    if (!live[i]) {
      fail_msg("stopped actor %" PRIu64 " still listed (state %s)", st->id,
               pn_actor_state_name(st->state));
    }
    if (seen[st->id]++) {
      fail_msg("actor %" PRIu64 " listed twice", st->id);
    }
    char want[16];
    snprintf(want, sizeof want, "w-%u", i % SNAP_NAMES);
    assert_string_equal(st->name, want);
    names[i % SNAP_NAMES]++;
    assert_int_equal(st->home_worker, -1);
    assert_true(st->state != PN_ACTOR_STOPPED);
  }
  for (uint32_t n = 0; n < SNAP_NAMES; n++) {
    assert_int_equal(names[n], per_name[n]);
  }
}

static void snapshot_lists_live_actors_once(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(SNAP_WORKERS);
  enum { STOPPED = SNAP_ACTORS / 4 };
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, STOPPED);
  quiet q = {.stopped = &stopped};
  static pn_actor *a[SNAP_ACTORS];
  static bool live[SNAP_ACTORS];
  for (uint32_t i = 0; i < SNAP_ACTORS; i++) {
    char name[16];
    snprintf(name, sizeof name, "w-%u", i % SNAP_NAMES);
    a[i] = pn_test_spawn(rt, name, quiet_handler, &q, -1);
    live[i] = true;
  }
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  assert_int_equal(snap->worker_count, SNAP_WORKERS);
  assert_non_null(snap->workers);
  for (uint32_t w = 0; w < SNAP_WORKERS; w++) {
    assert_int_equal(snap->workers[w].index, w);
  }
  assert_int_equal(snap->runtime.workers, SNAP_WORKERS);
  assert_non_null(snap->runtime.io_backend);
  assert_string_equal(snap->runtime.io_backend, pn_runtime_io_name(rt));
  assert_int_equal(snap->runtime.actors_spawned, SNAP_ACTORS);
  assert_int_equal(snap->runtime.actors_stopped, 0);
  assert_int_equal(snap->runtime.actors_alive, SNAP_ACTORS);
  assert_int_equal(snap->runtime.actor_handles, SNAP_ACTORS);
  check_listed(snap, a, live);
  for (size_t k = 0; k < snap->actor_count; k++) {
    /* Never sent anything: idle, all counters zero. */
    assert_int_equal(snap->actors[k].state, PN_ACTOR_IDLE);
    assert_int_equal(snap->actors[k].received, 0);
    assert_int_equal(snap->actors[k].runs, 0);
  }
  pn_snapshot_free(snap);

  /* Stop every fourth actor: the next snapshot no longer lists them. */
  for (uint32_t i = 0; i < SNAP_ACTORS; i += 4) {
    PN_ASSERT_OK(pn_actor_stop(a[i]));
    live[i] = false;
  }
  assert_true(pn_test_latch_wait(&stopped, 10000));
  assert_true(wait_stopped_count(rt, STOPPED, 10000));
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  check_listed(snap, a, live);
  assert_int_equal(snap->runtime.actors_spawned, SNAP_ACTORS);
  assert_int_equal(snap->runtime.actors_stopped, STOPPED);
  assert_int_equal(snap->runtime.actors_alive, SNAP_ACTORS - STOPPED);
  pn_snapshot_free(snap);
  /* A stopped actor's own stats remain readable through its handle. */
  pn_actor_stats st = actor_stats(a[0]);
  assert_int_equal(st.state, PN_ACTOR_STOPPED);
  assert_string_equal(st.name, "w-0");
  assert_int_equal(st.processed, 1); /* PN_MSG_STOPPED */

  for (uint32_t i = 0; i < SNAP_ACTORS; i++) {
    pn_actor_release(a[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&stopped);
}

/* A snapshot thread loops while the test thread spawns, feeds and stops
 * actors, and an actor takes snapshots from its own handler. Checks
 * are counted (cmocka asserts only on the test thread). */

enum { CONC_ROUNDS = 20, CONC_PER_ROUND = 25, CONC_MAX_SNAPS = 3000 };

typedef struct snap_checker {
  pn_runtime *rt;
  uint32_t workers;
  _Atomic int done;
  _Atomic uint64_t snaps;
  _Atomic uint64_t errors;
  _Atomic uint64_t max_listed;
  _Atomic uint64_t listed_stopped; /* see the note in check_snapshot() */
  pn_test_latch *snapped;          /* counted down per MSG_SNAP handled */
  pn_test_latch *started;          /* the thread took its first snapshot */
} snap_checker;

static uint64_t check_snapshot(snap_checker *c, const pn_snapshot *snap) {
  uint64_t errors = 0;
  if (snap->worker_count != c->workers || snap->runtime.workers != c->workers) {
    errors++;
  }
  for (size_t i = 0; i < snap->worker_count; i++) {
    errors += snap->workers[i].index != i;
  }
  if (snap->actor_count > snap->runtime.actors_spawned) {
    errors++;
  }
  uint64_t *ids = malloc((snap->actor_count + 1) * sizeof *ids);
  if (!ids) {
    return errors + 1;
  }
  for (size_t k = 0; k < snap->actor_count; k++) {
    const pn_actor_stats *st = &snap->actors[k];
    ids[k] = st->id;
    if (memchr(st->name, '\0', sizeof st->name) == NULL ||
        (strcmp(st->name, "snapper") != 0 && strncmp(st->name, "c-", 2) != 0) ||
        st->state > PN_ACTOR_STOPPED || st->id == 0) {
      errors++;
    }
    /* The registry drops an actor just after its DEAD flag is set, so a
     * snapshot may catch one in state STOPPED. Counted, not an error. */
    if (st->state == PN_ACTOR_STOPPED) {
      atomic_fetch_add(&c->listed_stopped, 1);
    }
  }
  qsort(ids, snap->actor_count, sizeof *ids, cmp_u64);
  for (size_t k = 1; k < snap->actor_count; k++) {
    errors += ids[k] == ids[k - 1];
  }
  free(ids);
  uint64_t prev = atomic_load(&c->max_listed);
  while (
      snap->actor_count > prev &&
      !atomic_compare_exchange_weak(&c->max_listed, &prev, snap->actor_count)) {
  }
  return errors;
}

static void *snapshot_thread(void *arg) {
  snap_checker *c = arg;
  for (int i = 0; i < CONC_MAX_SNAPS && !atomic_load(&c->done); i++) {
    pn_snapshot *snap = NULL;
    if (pn_snapshot_take(c->rt, &snap) != PN_OK) {
      atomic_fetch_add(&c->errors, 1);
      continue;
    }
    atomic_fetch_add(&c->errors, check_snapshot(c, snap));
    atomic_fetch_add(&c->snaps, 1);
    pn_snapshot_free(snap);
    if (i == 0) {
      pn_test_latch_count_down(c->started);
    }
  }
  return NULL;
}

static void snapper_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  snap_checker *c = state;
  if (pn_msg_type(msg) != MSG_SNAP) {
    return;
  }
  pn_snapshot *snap = NULL;
  if (pn_snapshot_take(c->rt, &snap) != PN_OK) {
    atomic_fetch_add(&c->errors, 1);
    return;
  }
  atomic_fetch_add(&c->errors, check_snapshot(c, snap));
  /* The actor taking the snapshot is live and running. */
  bool found = false;
  for (size_t k = 0; k < snap->actor_count; k++) {
    if (snap->actors[k].id == pn_actor_id(self)) {
      found = snap->actors[k].state == PN_ACTOR_RUNNABLE;
    }
  }
  atomic_fetch_add(&c->errors, found ? 0u : 1u);
  pn_snapshot_free(snap);
  pn_test_latch_count_down(c->snapped);
}

static void snapshot_concurrent_with_spawn_and_stop(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch snapped;
  pn_test_latch_init(&snapped, CONC_ROUNDS);
  pn_test_latch started;
  pn_test_latch_init(&started, 1);
  snap_checker c = {
      .rt = rt, .workers = 2, .snapped = &snapped, .started = &started};
  pn_actor *snapper = pn_test_spawn(rt, "snapper", snapper_handler, &c, -1);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, snapshot_thread, &c), 0);
  /* Overlap for sure: the churn starts once the thread takes snapshots. */
  assert_true(pn_test_latch_wait(&started, 10000));
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, CONC_ROUNDS * CONC_PER_ROUND);
  quiet q = {.stopped = &stopped};
  for (uint32_t r = 0; r < CONC_ROUNDS; r++) {
    pn_actor *batch[CONC_PER_ROUND];
    for (uint32_t i = 0; i < CONC_PER_ROUND; i++) {
      char name[16];
      snprintf(name, sizeof name, "c-%u", i % 5);
      batch[i] = pn_test_spawn(rt, name, quiet_handler, &q, -1);
      PN_ASSERT_OK(pn_send(batch[i], MSG_VALUE, NULL, 0));
    }
    PN_ASSERT_OK(pn_send(snapper, MSG_SNAP, NULL, 0));
    for (uint32_t i = 0; i < CONC_PER_ROUND; i++) {
      PN_ASSERT_OK(pn_actor_stop(batch[i]));
      pn_actor_release(batch[i]);
    }
  }
  assert_true(pn_test_latch_wait(&stopped, 10000));
  /* Before shutdown asks the snapper to stop (it checks its own state). */
  assert_true(pn_test_latch_wait(&snapped, 10000));
  atomic_store(&c.done, 1);
  pthread_join(th, NULL);
  pn_actor_release(snapper);
  pn_test_runtime_end(rt);
  print_message("%" PRIu64 " snapshots (up to %" PRIu64
                " actors listed, %" PRIu64 " entries in state stopped)\n",
                atomic_load(&c.snaps), atomic_load(&c.max_listed),
                atomic_load(&c.listed_stopped));
  assert_true(atomic_load(&c.snaps) > 0);
  assert_true(atomic_load(&c.max_listed) >= 1);
  if (atomic_load(&c.errors)) {
    fail_msg("%" PRIu64 " inconsistencies in %" PRIu64 " snapshots",
             atomic_load(&c.errors), atomic_load(&c.snaps));
  }
  pn_test_latch_fini(&stopped);
  pn_test_latch_fini(&snapped);
  pn_test_latch_fini(&started);
}

/* --- state names ---------------------------------------------------------- */

static void state_names_are_distinct(void **state) {
  (void)state;
  static const pn_actor_state states[] = {PN_ACTOR_IDLE, PN_ACTOR_RUNNABLE,
                                          PN_ACTOR_MUTED, PN_ACTOR_STOPPING,
                                          PN_ACTOR_STOPPED};
  enum { NSTATES = sizeof states / sizeof states[0] };
  const char *names[NSTATES];
  for (size_t i = 0; i < NSTATES; i++) {
    names[i] = pn_actor_state_name(states[i]);
    assert_non_null(names[i]);
    assert_true(names[i][0] != '\0');
    for (size_t j = 0; j < i; j++) {
      assert_string_not_equal(names[i], names[j]);
    }
  }
  assert_string_equal(names[0], "idle");
  assert_string_equal(names[1], "runnable");
  /* Never NULL, even for a value outside the enum. */
  assert_non_null(pn_actor_state_name((pn_actor_state)42));
}

/* --- CPU time ------------------------------------------------------------- */

typedef struct busy {
  pn_test_latch *stopped;
  uint64_t sink; /* handler only */
} busy;

static void busy_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  busy *b = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    pn_test_latch_count_down(b->stopped);
    return;
  }
  /* A little work per message so the handler time is well above zero. */
  uint64_t x = b->sink + 1;
  for (int i = 0; i < 2000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
  }
  b->sink = x;
}

static pn_actor_stats run_busy_workload(bool cpu_time, uint64_t *wall_ns) {
  enum { MSGS = 2000 };
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.stats_cpu_time = cpu_time;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, 1);
  busy b = {.stopped = &stopped};
  uint64_t t0 = mono_ns();
  pn_actor *a = pn_test_spawn(rt, "busy", busy_handler, &b, -1);
  for (int i = 0; i < MSGS; i++) {
    PN_ASSERT_OK(pn_send(a, MSG_VALUE, NULL, 0));
  }
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  *wall_ns = mono_ns() - t0;
  pn_actor_stats st = actor_stats(a);
  assert_int_equal(st.processed, MSGS + 1);
  assert_true(st.runs > 0);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&stopped);
  return st;
}

static void cpu_time_on_and_off(void **state) {
  (void)state;
  uint64_t wall = 0;
  pn_actor_stats on = run_busy_workload(true, &wall);
  assert_true(on.cpu_ns > 0);
  /* Runs of one actor never overlap and all lie between the spawn and the
   * end of the shutdown; half again for clock calibration error. */
  if (on.cpu_ns > wall + wall / 2) {
    fail_msg("cpu_ns %" PRIu64 " exceeds the %" PRIu64 " ns the test took",
             on.cpu_ns, wall);
  }
  pn_actor_stats off = run_busy_workload(false, &wall);
  assert_int_equal(off.cpu_ns, 0);
}

/* --- a flooded mailbox ---------------------------------------------------- */

typedef struct blocker {
  pn_test_latch *entered; /* the handler is inside MSG_BLOCK */
  pn_test_latch *release; /* the test lets it go */
  pn_test_latch *stopped;
  _Atomic uint64_t fills;
  _Atomic int timed_out;
} blocker;

static void blocker_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  blocker *b = state;
  switch (pn_msg_type(msg)) {
  case MSG_BLOCK:
    pn_test_latch_count_down(b->entered);
    /* Bounded: a failed test thread cannot leave it blocked forever. */
    if (!pn_test_latch_wait(b->release, 10000)) {
      atomic_store(&b->timed_out, 1);
    }
    return;
  case MSG_FILL:
    atomic_fetch_add(&b->fills, 1);
    return;
  case PN_MSG_STOPPED:
    pn_test_latch_count_down(b->stopped);
    return;
  default:
    return;
  }
}

typedef struct flooder {
  pn_actor *to;
  uint32_t count;
  pn_test_latch *go; /* all threads start sending together */
  _Atomic int errors;
} flooder;

static void *flood_thread(void *arg) {
  flooder *f = arg;
  if (!pn_test_latch_wait(f->go, 10000)) {
    atomic_fetch_add(&f->errors, 1);
  }
  for (uint32_t i = 0; i < f->count; i++) {
    if (pn_send(f->to, MSG_FILL, NULL, 0) != PN_OK) {
      atomic_fetch_add(&f->errors, 1);
    }
  }
  return NULL;
}

/* Floods a blocked actor from `threads` application threads (0: the test
 * thread) with `per_thread` messages each, then checks the stats. */
/* Returns true when msgs_in_flight, read while the actor was blocked,
 * counted every envelope sent (see msgs_in_flight_with_concurrent_senders).
 */
static bool flood_blocked_actor(uint32_t threads, uint32_t per_thread) {
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch entered, release, stopped;
  pn_test_latch_init(&entered, 1);
  pn_test_latch_init(&release, 1);
  pn_test_latch_init(&stopped, 1);
  blocker b = {.entered = &entered, .release = &release, .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "blocker", blocker_handler, &b, -1);
  PN_ASSERT_OK(pn_send(a, MSG_BLOCK, NULL, 0));
  assert_true(pn_test_latch_wait(&entered, 10000));
  assert_int_equal(actor_stats(a).state, PN_ACTOR_RUNNABLE);

  uint64_t total = (uint64_t)(threads ? threads : 1) * per_thread;
  if (threads == 0) {
    for (uint32_t i = 0; i < per_thread; i++) {
      PN_ASSERT_OK(pn_send(a, MSG_FILL, NULL, 0));
    }
  } else {
    pthread_t th[8];
    flooder f[8];
    pn_test_latch go;
    pn_test_latch_init(&go, 1);
    assert_true(threads <= 8);
    for (uint32_t i = 0; i < threads; i++) {
      f[i].to = a;
      f[i].count = per_thread;
      f[i].go = &go;
      atomic_init(&f[i].errors, 0);
      assert_int_equal(pthread_create(&th[i], NULL, flood_thread, &f[i]), 0);
    }
    pn_test_latch_count_down(&go);
    for (uint32_t i = 0; i < threads; i++) {
      pthread_join(th[i], NULL);
      assert_int_equal(atomic_load(&f[i].errors), 0);
    }
    pn_test_latch_fini(&go);
  }
  /* Every envelope sent so far is still allocated: the one being handled
   * and everything queued behind it. */
  pn_runtime_stats rs = runtime_stats(rt);
  uint64_t in_flight = rs.msgs_in_flight;
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_int_equal(actor_stats(a).state, PN_ACTOR_STOPPING);
  pn_test_latch_count_down(&release);
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&b.timed_out), 0);
  assert_int_equal(atomic_load(&b.fills), total);

  pn_actor_stats st = actor_stats(a);
  assert_int_equal(st.state, PN_ACTOR_STOPPED);
  assert_int_equal(st.processed, total + 2); /* block, fills, STOPPED */
  assert_int_equal(st.received, total + 2);  /* block, fills, stop request */
  assert_int_equal(st.dropped, 0);
  assert_int_equal(st.mailbox_depth, 0);
  assert_true(st.mailbox_hwm > 0);
  /* At most everything queued behind the blocking message: the fills and
   * the stop request. */
  if (st.mailbox_hwm > total + 1) {
    fail_msg("mailbox_hwm %" PRIu32 " but only %" PRIu64
             " messages were ever queued",
             st.mailbox_hwm, total + 1);
  }
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&entered);
  pn_test_latch_fini(&release);
  pn_test_latch_fini(&stopped);
  /* Reported last so that a failure leaks nothing. */
  if (in_flight != total + 1) {
    print_error("msgs_in_flight was %" PRIu64 " with %" PRIu64
                " envelopes allocated and none freed (%u sending threads)\n",
                in_flight, total + 1, threads);
    return false;
  }
  return true;
}

static void mailbox_hwm_of_flooded_actor(void **state) {
  (void)state;
  assert_true(flood_blocked_actor(0, 5000));
}

/* The application threads' envelope pool is shared: its counters must not
 * lose updates when several threads send at once. */
static void msgs_in_flight_with_concurrent_senders(void **state) {
  (void)state;
  /* A lost update needs two senders in the same few instructions: give it
   * several rounds (a correct count passes them all). */
  for (int round = 0; round < 6; round++) {
    if (!flood_blocked_actor(4, 50000)) {
      fail_msg("envelope count lost updates in round %d", round);
    }
  }
}

/* --- histograms ----------------------------------------------------------- */

enum { MSG_HOLD = 5, MSG_PLAIN = 6 };

typedef struct timed {
  pn_test_latch *handled; /* counted down per message, the hold included */
  pn_test_latch *entered; /* the handler is inside MSG_HOLD */
  _Atomic int let_go;     /* the test lets MSG_HOLD return */
  pn_test_latch *stopped;
  _Atomic uint64_t frees; /* buffers handed over and released */
} timed;

static void timed_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  timed *t = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    pn_test_latch_count_down(t->stopped);
    return;
  }
  if (pn_msg_type(msg) == MSG_HOLD) {
    pn_test_latch_count_down(t->entered);
    uint64_t deadline = mono_ns() + 10000000000u;
    while (!atomic_load(&t->let_go) && mono_ns() < deadline) {
      sched_yield();
    }
  }
  pn_test_latch_count_down(t->handled);
}

static void count_free(void *data, void *ctx) {
  free(data);
  atomic_fetch_add(&((timed *)ctx)->frees, 1);
}

static pn_actor_histograms histograms(const pn_actor *a) {
  pn_actor_histograms h;
  PN_ASSERT_OK(pn_actor_histograms_get(a, &h));
  assert_int_equal(h.id, pn_actor_id(a));
  for (int k = 0; k < 2; k++) {
    const pn_histogram *x = k ? &h.processing_time : &h.mailbox_time;
    uint64_t sum = 0;
    for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
      sum += x->buckets[i];
    }
    assert_int_equal(sum, x->count);
  }
  return h;
}

/* Values in the bucket of ns and above (each over ns / 2: a bucket spans
 * a factor of two). */
static uint64_t at_least(const pn_histogram *h, uint64_t ns) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
    if (pn_histogram_bucket_le_ns(i) >= ns) {
      n += h->buckets[i];
    }
  }
  return n;
}

/* Every message a handler got from its mailbox counts once in each
 * histogram, whichever way it came: sent from another thread, sent by a
 * handler (through its outbox), handed over as a buffer, a timer tick. A
 * message held up behind a slow one shows the wait, the slow one its
 * time. */
static void histograms_count_every_handled_message(void **state) {
  (void)state;
  enum { K = 2000, BUFS = 50, HOLD_US = 300 };
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.stats_histograms = true;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  pn_test_latch b_done, stopped, handled, entered;
  pn_test_latch_init(&b_done, K / 2);
  pn_test_latch_init(&stopped, 3);
  pn_test_latch_init(&handled, BUFS + 3);
  pn_test_latch_init(&entered, 1);
  forwarder fb = {.each = &b_done, .stopped = &stopped};
  pn_actor *b = pn_test_spawn(rt, "fwd-b", forwarder_handler, &fb, -1);
  forwarder fa = {.to = b, .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "fwd-a", forwarder_handler, &fa, -1);
  timed t = {.handled = &handled, .entered = &entered, .stopped = &stopped};
  pn_actor *c = pn_test_spawn(rt, "timed", timed_handler, &t, -1);

  for (uint64_t i = 0; i < K; i++) {
    PN_ASSERT_OK(pn_send(a, MSG_VALUE, &i, sizeof i));
  }
  for (int i = 0; i < BUFS; i++) {
    void *p = malloc(16);
    assert_non_null(p);
    PN_ASSERT_OK(pn_send_buf(c, MSG_PLAIN, p, 16, count_free, &t));
  }
  PN_ASSERT_OK(pn_timer_start(c, MSG_PLAIN, 0, 0, NULL));
  /* The hold, then a message that waits behind it at least HOLD_US. */
  PN_ASSERT_OK(pn_send(c, MSG_HOLD, NULL, 0));
  assert_true(pn_test_latch_wait(&entered, 10000));
  PN_ASSERT_OK(pn_send(c, MSG_PLAIN, NULL, 0));
  uint64_t until = mono_ns() + HOLD_US * 1000u;
  while (mono_ns() < until) {
    sched_yield();
  }
  atomic_store(&t.let_go, 1);
  assert_true(pn_test_latch_wait(&b_done, 10000));
  assert_true(pn_test_latch_wait(&handled, 10000));

  /* Live: each histogram counts exactly the messages processed. The
   * latches open inside the last handler, and a processing time is
   * counted when the handler returns, processed when the run ends: wait
   * for those (polling, with a deadline). */
  pn_actor *all[3] = {a, b, c};
  const uint64_t expect[3] = {K, K / 2, BUFS + 3};
  for (int i = 0; i < 3; i++) {
    uint64_t deadline = mono_ns() + 10000000000u;
    while (histograms(all[i]).processing_time.count < expect[i] ||
           actor_stats(all[i]).processed < expect[i]) {
      assert_true(mono_ns() < deadline);
      sched_yield();
    }
    pn_actor_histograms h = histograms(all[i]);
    assert_int_equal(h.mailbox_time.count, expect[i]);
    assert_int_equal(h.processing_time.count, expect[i]);
    assert_int_equal(actor_stats(all[i]).processed, expect[i]);
  }
  pn_actor_histograms hc = histograms(c);
  assert_true(at_least(&hc.processing_time, HOLD_US * 1000u) >= 1);
  assert_true(at_least(&hc.mailbox_time, HOLD_US * 1000u) >= 1);
  assert_true(hc.processing_time.sum_ns >= HOLD_US * 1000u);
  assert_true(hc.mailbox_time.sum_ns >= HOLD_US * 1000u);
  /* The median is an ordinary message: well below the hold. */
  assert_true(pn_histogram_quantile_ns(&hc.processing_time, 0.5) <
              HOLD_US * 1000.0);

  /* A snapshot carries the same histograms, entry i for actors[i]. */
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  assert_non_null(snap->actor_histograms);
  assert_int_equal(snap->actor_count, 3);
  for (size_t i = 0; i < snap->actor_count; i++) {
    const pn_actor_histograms *h = &snap->actor_histograms[i];
    assert_int_equal(h->id, snap->actors[i].id);
    assert_int_equal(h->mailbox_time.count, snap->actors[i].processed);
    assert_int_equal(h->processing_time.count, snap->actors[i].processed);
  }
  pn_snapshot_free(snap);

  /* Stopped: PN_MSG_STOPPED came from no mailbox and is not counted. */
  for (int i = 0; i < 3; i++) {
    PN_ASSERT_OK(pn_actor_stop(all[i]));
  }
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  for (int i = 0; i < 3; i++) {
    pn_actor_histograms h = histograms(all[i]);
    assert_int_equal(h.processing_time.count, expect[i]);
    assert_int_equal(actor_stats(all[i]).processed, expect[i] + 1);
  }
  assert_int_equal(atomic_load(&t.frees), BUFS);
  assert_int_equal(atomic_load(&fa.errors) + atomic_load(&fb.errors), 0);
  for (int i = 0; i < 3; i++) {
    pn_actor_release(all[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&b_done);
  pn_test_latch_fini(&stopped);
  pn_test_latch_fini(&handled);
  pn_test_latch_fini(&entered);
}

/* Off by default: nothing to read, and snapshots carry no histograms. */
static void histograms_off_by_default(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_actor *a = pn_test_spawn(rt, "plain", quiet_handler, NULL, -1);
  pn_actor_histograms h;
  memset(&h, 0xA5, sizeof h);
  pn_actor_histograms pattern = h;
  PN_ASSERT_ERR(PN_ENOTSUP, pn_actor_histograms_get(a, &h));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_histograms_get(NULL, &h));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_histograms_get(a, NULL));
  assert_memory_equal(&h, &pattern, sizeof h);
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  assert_null(snap->actor_histograms);
  pn_snapshot_free(snap);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
}

/* The bucket bounds and the quantile estimate, on made-up histograms. */
static void histogram_bounds_and_quantiles(void **state) {
  (void)state;
  assert_int_equal(pn_histogram_bucket_le_ns(0), 16);
  assert_int_equal(pn_histogram_bucket_le_ns(1), 32);
  assert_int_equal(pn_histogram_bucket_le_ns(PN_HIST_BUCKETS - 2), UINT64_C(1)
                                                                       << 34);
  assert_true(pn_histogram_bucket_le_ns(PN_HIST_BUCKETS - 1) == UINT64_MAX);
  assert_true(pn_histogram_bucket_le_ns(1000) == UINT64_MAX);
  for (uint32_t i = 1; i < PN_HIST_BUCKETS; i++) {
    assert_true(pn_histogram_bucket_le_ns(i) >
                pn_histogram_bucket_le_ns(i - 1));
  }

  pn_histogram h;
  memset(&h, 0, sizeof h);
  assert_true(pn_histogram_quantile_ns(&h, 0.5) == 0.0);
  assert_true(pn_histogram_quantile_ns(NULL, 0.5) == 0.0);
  /* 100 values in (32, 64] ns: the median halfway through the bucket. */
  h.buckets[2] = 100;
  h.count = 100;
  assert_true(pn_histogram_quantile_ns(&h, 0.5) == 48.0);
  assert_true(pn_histogram_quantile_ns(&h, 1.0) == 64.0);
  /* One slow value in 100 lifts p99 but not the median. */
  h.buckets[2] = 99;
  h.buckets[20] = 1;
  assert_true(pn_histogram_quantile_ns(&h, 0.5) <= 64.0);
  assert_true(pn_histogram_quantile_ns(&h, 0.995) >
              (double)pn_histogram_bucket_le_ns(19));
  /* The overflow bucket reports its lower bound. */
  memset(&h, 0, sizeof h);
  h.buckets[PN_HIST_BUCKETS - 1] = 3;
  h.count = 3;
  assert_true(pn_histogram_quantile_ns(&h, 0.5) ==
              (double)pn_histogram_bucket_le_ns(PN_HIST_BUCKETS - 2));
}

/* Actor memory is reused: an actor spawned into the slot of one that
 * handled messages starts with empty histograms. */
static void histograms_start_empty_in_a_reused_slot(void **state) {
  (void)state;
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.stats_histograms = true;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  pn_test_latch done, stopped;
  pn_test_latch_init(&done, 10);
  pn_test_latch_init(&stopped, 1);
  forwarder f = {.each = &done, .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "first", forwarder_handler, &f, -1);
  for (uint64_t i = 0; i < 10; i++) {
    PN_ASSERT_OK(pn_send(a, MSG_VALUE, &i, sizeof i));
  }
  assert_true(pn_test_latch_wait(&done, 10000));
  assert_true(histograms(a).mailbox_time.count == 10);
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  const void *old = a;
  pn_actor_release(a);
  /* The runtime drops its reference just after the stop: wait for it. */
  uint64_t deadline = mono_ns() + 10000000000u;
  while (runtime_stats(rt).actor_handles != 0) {
    assert_true(mono_ns() < deadline);
    sched_yield();
  }
  pn_actor *b = pn_test_spawn(rt, "second", quiet_handler, NULL, -1);
  assert_ptr_equal(b, old); /* the slab hands the freed slot out first */
  pn_actor_histograms h = histograms(b);
  assert_int_equal(h.mailbox_time.count + h.processing_time.count, 0);
  assert_int_equal(h.mailbox_time.sum_ns + h.processing_time.sum_ns, 0);
  pn_actor_release(b);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
  pn_test_latch_fini(&stopped);
}

/* --- fresh actors and bad arguments --------------------------------------- */

static void fresh_actor_stats_and_bad_arguments(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_actor *a = pn_test_spawn(rt, "fresh", quiet_handler, NULL, 1);
  pn_actor *anon = pn_test_spawn(rt, NULL, quiet_handler, NULL, -1);

  pn_actor_stats st = actor_stats(a);
  assert_int_equal(st.id, pn_actor_id(a));
  assert_string_equal(st.name, "fresh");
  assert_int_equal(st.state, PN_ACTOR_IDLE);
  assert_int_equal(st.home_worker, 1);
  assert_false(st.overloaded);
  assert_int_equal(st.received + st.processed + st.dropped + st.sent + st.runs +
                       st.muted + st.cpu_ns,
                   0);
  assert_int_equal(st.mailbox_depth, 0);
  assert_int_equal(st.mailbox_hwm, 0);
  st = actor_stats(anon);
  assert_string_equal(st.name, "");
  assert_int_equal(st.home_worker, -1);

  /* Failures leave the outputs alone. */
  pn_actor_stats pattern;
  memset(&pattern, 0xA5, sizeof pattern);
  st = pattern;
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stats_get(NULL, &st));
  assert_memory_equal(&st, &pattern, sizeof st);
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stats_get(a, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stats_get(NULL, NULL));

  pn_runtime_stats rpattern;
  memset(&rpattern, 0x5A, sizeof rpattern);
  pn_runtime_stats rs = rpattern;
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_stats_get(NULL, &rs));
  assert_memory_equal(&rs, &rpattern, sizeof rs);
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_stats_get(rt, NULL));

  pn_snapshot *const sentinel = (pn_snapshot *)&rpattern;
  pn_snapshot *snap = sentinel;
  PN_ASSERT_ERR(PN_EINVAL, pn_snapshot_take(NULL, &snap));
  assert_ptr_equal(snap, sentinel);
  PN_ASSERT_ERR(PN_EINVAL, pn_snapshot_take(rt, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_snapshot_take(NULL, NULL));
  pn_snapshot_free(NULL);

  /* Nothing was sent, queued or counted by the failed calls. */
  rs = runtime_stats(rt);
  assert_int_equal(rs.actors_spawned, 2);
  assert_int_equal(rs.actors_alive, 2);
  assert_int_equal(rs.actor_handles, 2);
  assert_int_equal(rs.msgs_in_flight, 0);
  assert_int_equal(rs.timers_active, 0);
  assert_int_equal(actor_stats(a).received, 0);

  pn_actor_release(a);
  pn_actor_release(anon);
  pn_test_runtime_end(rt);
}

/* --- worker idle time ------------------------------------------------------
 */

static uint64_t snapshot_at(pn_runtime *rt, uint64_t *idle, uint32_t n) {
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  assert_int_equal(snap->worker_count, n);
  for (uint32_t i = 0; i < n; i++) {
    idle[i] = snap->workers[i].idle_ns;
  }
  uint64_t uptime = snap->runtime.uptime_ns;
  pn_snapshot_free(snap);
  return uptime;
}

/* Takes snapshots until uptime has grown by at least ns (no sleep: the
 * condition is the passing of time itself), checking each pair on the way:
 * a worker's idle time never goes back nor grows faster than the uptime.
 * Returns the last uptime, its idle times in idle. */
static uint64_t watch_idle(pn_runtime *rt, uint64_t *idle, uint32_t n,
                           uint64_t up0, uint64_t ns) {
  uint64_t up = up0;
  uint64_t cur[4];
  while (up - up0 < ns) {
    uint64_t next = snapshot_at(rt, cur, n);
    assert_true(next >= up);
    for (uint32_t i = 0; i < n; i++) {
      if (cur[i] < idle[i] || cur[i] - idle[i] > next - up) {
        fail_msg("worker %u: idle %" PRIu64 " -> %" PRIu64 " ns while the "
                 "uptime went %" PRIu64 " -> %" PRIu64 " ns",
                 i, idle[i], cur[i], up, next);
      }
      idle[i] = cur[i];
    }
    up = next;
    sched_yield();
  }
  return up;
}

enum { MSG_TICK = 5 };

/* Works about 300 us per tick, so its worker alternates between running
 * and waiting many times a second. */
static void ticking_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  if (pn_msg_type(msg) == MSG_TICK) {
    uint64_t until = mono_ns() + 300000u;
    while (mono_ns() < until) {
    }
  }
}

/* A worker that has waited since the last look counts that wait as idle
 * now, not only once the wait returns: an idle runtime shows its workers
 * idle, and no snapshot ever shows more idle time than elapsed (which made
 * peernet-top show 0% idle for an idle runtime and over 100% busy for a
 * busy one). */
static void idle_time_counts_the_wait_in_progress(void **state) {
  (void)state;
  enum { W = 2 };
  pn_runtime *rt = pn_test_runtime(W);
  uint64_t idle0[W], idle[W];
  uint64_t up0 = snapshot_at(rt, idle0, W);
  memcpy(idle, idle0, sizeof idle);
  /* Nothing to do: the workers wait the whole time. */
  uint64_t up = watch_idle(rt, idle, W, up0, 50000000u);
  for (uint32_t i = 0; i < W; i++) {
    uint64_t grew = idle[i] - idle0[i];
    if (grew < (up - up0) / 2) {
      fail_msg("idle worker %u: %" PRIu64 " ns idle in %" PRIu64 " ns", i, grew,
               up - up0);
    }
  }
  /* One worker alternating between 300 us of work and about 700 us of
   * waiting: every pair of snapshots stays within the bounds, and over the
   * whole stretch it was neither all idle nor all busy. */
  pn_actor *a = pn_test_spawn(rt, "ticking", ticking_handler, NULL, 0);
  pn_timer *t = NULL;
  PN_ASSERT_OK(pn_timer_start(a, MSG_TICK, 1000, 1000, &t));
  memcpy(idle0, idle, sizeof idle);
  up0 = up;
  up = watch_idle(rt, idle, W, up0, 100000000u);
  uint64_t grew = idle[0] - idle0[0];
  assert_true(grew > 0);
  assert_true(grew < up - up0);
  pn_timer_cancel(t);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(counters_exact_after_known_workload),
      cmocka_unit_test(snapshot_lists_live_actors_once),
      cmocka_unit_test(snapshot_concurrent_with_spawn_and_stop),
      cmocka_unit_test(state_names_are_distinct),
      cmocka_unit_test(cpu_time_on_and_off),
      cmocka_unit_test(mailbox_hwm_of_flooded_actor),
      cmocka_unit_test(msgs_in_flight_with_concurrent_senders),
      cmocka_unit_test(fresh_actor_stats_and_bad_arguments),
      cmocka_unit_test(histograms_count_every_handled_message),
      cmocka_unit_test(histograms_off_by_default),
      cmocka_unit_test(histogram_bounds_and_quantiles),
      cmocka_unit_test(histograms_start_empty_in_a_reused_slot),
      cmocka_unit_test(idle_time_counts_the_wait_in_progress),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
