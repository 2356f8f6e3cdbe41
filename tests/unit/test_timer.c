/* Timers: one-shot and periodic delivery, deadline order, cancellation
 * (before a timer fires, while it ticks, after it fired; from handlers and
 * from application threads), timers to stopped actors, timers still armed
 * at shutdown, and bad arguments.
 *
 * Waiting without sleeping: when a test must let time pass to show that
 * something did NOT happen, it arms a "probe" timer that lands on the same
 * worker heap as the timers under test (same arming thread and target, or
 * targets homed on one worker) with a deadline well after theirs. A heap
 * fires in deadline order and delivery from one worker is FIFO, so when the
 * probe arrives every tick that was due before it has been delivered. */
#include <inttypes.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/support/test_support.h"

enum {
  MAX_TYPES = 128, /* tick types 1..MAX_TYPES-1 are counted per type */
  MAX_ORDER = 256, /* delivery order recorded for this many ticks */
  MSG_PROBE = 1000,
  MSG_ARM = 1001,
  MSG_HANDLE = 1002,
  MSG_CANCEL = 1003
};

/* The largest type an application may use. */
#define TOP_TYPE (PN_MSG_TYPE_RESERVED - 1u)

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Polls an actor's state until it reads STOPPED. The DEAD flag is set just
 * after the PN_MSG_STOPPED handler returns and there is no hook to wait on,
 * so this yields in a loop with a deadline (never sleeps). */
static bool wait_actor_stopped(const pn_actor *a, uint64_t timeout_ms) {
  uint64_t deadline = mono_ns() + timeout_ms * 1000000u;
  for (;;) {
    pn_actor_stats st;
    PN_ASSERT_OK(pn_actor_stats_get(a, &st));
    if (st.state == PN_ACTOR_STOPPED) {
      return true;
    }
    if (mono_ns() >= deadline) {
      return false;
    }
    sched_yield();
  }
}

static uint64_t timers_active(pn_runtime *rt) {
  pn_runtime_stats st;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &st));
  return st.timers_active;
}

/* --- sink: an actor that records every tick it handles -------------------- */

typedef struct sink {
  pn_test_latch *ticks;   /* counted down per tick, may be NULL */
  pn_test_latch *probe;   /* counted down per MSG_PROBE, may be NULL */
  pn_test_latch *stopped; /* counted down on PN_MSG_STOPPED, may be NULL */
  _Atomic uint64_t count[MAX_TYPES];
  uint64_t first_ns[MAX_TYPES]; /* read by the test after PN_MSG_STOPPED */
  uint32_t order[MAX_ORDER];    /* ditto */
  _Atomic uint32_t norder;
  _Atomic uint64_t top_type; /* ticks of type TOP_TYPE */
  uint64_t top_first_ns;
  _Atomic uint64_t total; /* every tick, probes excluded */
  _Atomic int bad_type;
  _Atomic int bad_payload;
  _Atomic int after_stop; /* handler calls after PN_MSG_STOPPED */
  _Atomic int stopped_seen;
} sink;

static void sink_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  sink *s = state;
  uint32_t type = pn_msg_type(msg);
  if (atomic_load(&s->stopped_seen)) {
    atomic_fetch_add(&s->after_stop, 1);
    return;
  }
  if (type == PN_MSG_STOPPED) {
    atomic_store(&s->stopped_seen, 1);
    if (s->stopped) {
      pn_test_latch_count_down(s->stopped);
    }
    return;
  }
  /* A tick carries no payload. */
  if (pn_msg_size(msg) != 0 || pn_msg_data(msg) != NULL) {
    atomic_fetch_add(&s->bad_payload, 1);
  }
  if (type == MSG_PROBE) {
    if (s->probe) {
      pn_test_latch_count_down(s->probe);
    }
    return;
  }
  if (type == TOP_TYPE) {
    if (atomic_fetch_add(&s->top_type, 1) == 0) {
      s->top_first_ns = mono_ns();
    }
  } else if (type == 0 || type >= MAX_TYPES) {
    atomic_fetch_add(&s->bad_type, 1);
    return;
  } else if (atomic_fetch_add(&s->count[type], 1) == 0) {
    s->first_ns[type] = mono_ns();
  }
  uint32_t pos = atomic_fetch_add(&s->norder, 1);
  if (pos < MAX_ORDER) {
    s->order[pos] = type;
  }
  atomic_fetch_add(&s->total, 1);
  if (s->ticks) {
    pn_test_latch_count_down(s->ticks);
  }
}

static pn_actor *spawn_sink(pn_runtime *rt, sink *s, int32_t home) {
  return pn_test_spawn(rt, "sink", sink_handler, s, home);
}

/* Stops a sink from the test thread and waits for its PN_MSG_STOPPED. */
static void stop_sink(pn_actor *a, pn_test_latch *stopped) {
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(stopped, 10000));
}

static void assert_sink_clean(sink *s) {
  assert_int_equal(atomic_load(&s->bad_type), 0);
  assert_int_equal(atomic_load(&s->bad_payload), 0);
  assert_int_equal(atomic_load(&s->after_stop), 0);
}

/* --- one-shot ------------------------------------------------------------- */

static void one_shot_fires_once_never_early(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  enum { N = 4 };
  static const uint64_t delay_us[N] = {0, 1000, 5000, 15000};
  pn_test_latch ticks, probe, stopped;
  pn_test_latch_init(&ticks, N + 1);
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&stopped, 1);
  static sink s;
  memset(&s, 0, sizeof s);
  s.ticks = &ticks;
  s.probe = &probe;
  s.stopped = &stopped;
  pn_actor *a = spawn_sink(rt, &s, -1);

  uint64_t armed_ns[N];
  for (uint32_t i = 0; i < N; i++) {
    armed_ns[i] = mono_ns();
    PN_ASSERT_OK(pn_timer_start(a, 1 + i, delay_us[i], 0, NULL));
  }
  /* The largest application type is accepted and delivered as is. */
  uint64_t top_armed_ns = mono_ns();
  PN_ASSERT_OK(pn_timer_start(a, TOP_TYPE, 2000, 0, NULL));
  assert_true(pn_test_latch_wait(&ticks, 10000));
  /* A one-shot that fired twice would be due again at once, before this
   * probe: same heap, earlier deadline. */
  PN_ASSERT_OK(pn_timer_start(a, MSG_PROBE, 20000, 0, NULL));
  assert_true(pn_test_latch_wait(&probe, 10000));
  stop_sink(a, &stopped);

  /* Workers count a tick after delivering it: read once they are joined. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  pn_runtime_stats rs;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &rs));
  assert_int_equal(rs.timers_fired,
                   N + 2); /* the timers, TOP_TYPE and the probe */
  for (uint32_t i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&s.count[1 + i]), 1);
    uint64_t waited = s.first_ns[1 + i] - armed_ns[i];
    if (waited < delay_us[i] * 1000u) {
      fail_msg("timer %u with delay %" PRIu64 " us fired after %" PRIu64 " ns",
               i, delay_us[i], waited);
    }
  }
  assert_int_equal(atomic_load(&s.top_type), 1);
  assert_true(s.top_first_ns - top_armed_ns >= 2000000u);
  assert_int_equal(atomic_load(&s.total), N + 1);
  assert_sink_clean(&s);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&ticks);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&stopped);
}

/* --- deadline order -------------------------------------------------------
 * N timers, delays in pairs (equal delays in a pair), armed in a seeded
 * random order. The runtime reads the clock inside pn_timer_start, so a
 * timer's deadline lies in [before + delay, after + delay] of the test's
 * readings around the call: if i is delivered before j, then
 * before_i + delay_i <= after_j + delay_j must hold. Equal delays are
 * delivered in arm order (a later arm cannot have an earlier deadline and
 * equal deadlines tie-break on arm order). */

enum { ORDER_N = 64 };

typedef struct order_plan {
  pn_actor *target;
  uint64_t delay_us[ORDER_N];
  uint32_t arm_seq[ORDER_N]; /* arm_seq[k]: the timer armed k-th */
  uint32_t rank[ORDER_N];    /* rank[i]: when timer i was armed */
  uint64_t before_ns[ORDER_N];
  uint64_t after_ns[ORDER_N];
  _Atomic int errors;
  pn_test_latch *armed;
} order_plan;

static void plan_init(order_plan *p, pn_actor *target, uint64_t *rng) {
  memset(p, 0, sizeof *p);
  p->target = target;
  for (uint32_t i = 0; i < ORDER_N; i++) {
    p->delay_us[i] = 3000 + (i / 2) * 600;
    p->arm_seq[i] = i;
  }
  for (uint32_t i = ORDER_N - 1; i > 0; i--) {
    uint32_t j = (uint32_t)(pn_test_rand(rng) % (i + 1));
    uint32_t t = p->arm_seq[i];
    p->arm_seq[i] = p->arm_seq[j];
    p->arm_seq[j] = t;
  }
}

/* Arms every timer of the plan; from the test thread or a handler. */
static void plan_arm(order_plan *p) {
  for (uint32_t k = 0; k < ORDER_N; k++) {
    uint32_t i = p->arm_seq[k];
    p->rank[i] = k;
    p->before_ns[i] = mono_ns();
    if (pn_timer_start(p->target, 1 + i, p->delay_us[i], 0, NULL) != PN_OK) {
      atomic_fetch_add(&p->errors, 1);
    }
    p->after_ns[i] = mono_ns();
  }
  if (p->armed) {
    pn_test_latch_count_down(p->armed);
  }
}

static void plan_check(order_plan *p, sink *s) {
  assert_int_equal(atomic_load(&p->errors), 0);
  assert_int_equal(atomic_load(&s->norder), ORDER_N);
  for (uint32_t i = 0; i < ORDER_N; i++) {
    assert_int_equal(atomic_load(&s->count[1 + i]), 1);
  }
  for (uint32_t a = 0; a < ORDER_N; a++) {
    for (uint32_t b = a + 1; b < ORDER_N; b++) {
      uint32_t i = s->order[a] - 1; /* delivered before j */
      uint32_t j = s->order[b] - 1;
      uint64_t earliest_i = p->before_ns[i] + p->delay_us[i] * 1000u;
      uint64_t latest_j = p->after_ns[j] + p->delay_us[j] * 1000u;
      if (earliest_i > latest_j) {
        fail_msg("timer %u (delay %" PRIu64 " us) delivered before timer %u "
                 "(delay %" PRIu64 " us) whose deadline was %" PRIu64
                 " ns earlier",
                 i, p->delay_us[i], j, p->delay_us[j], earliest_i - latest_j);
      }
      if (p->delay_us[i] == p->delay_us[j] && p->rank[i] > p->rank[j]) {
        fail_msg("equal delays out of arm order: timer %u armed %u-th "
                 "delivered before timer %u armed %u-th",
                 i, p->rank[i], j, p->rank[j]);
      }
    }
  }
}

static void armer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  order_plan *p;
  if (pn_msg_type(msg) == MSG_ARM && pn_msg_size(msg) == sizeof p) {
    memcpy(&p, pn_msg_data(msg), sizeof p);
    plan_arm(p);
  }
}

static void deadline_order(bool from_handler) {
  uint64_t rng = pn_test_seed() ^ (from_handler ? 0x5157u : 0x7157u);
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch ticks, armed, stopped;
  pn_test_latch_init(&ticks, ORDER_N);
  pn_test_latch_init(&armed, 1);
  pn_test_latch_init(&stopped, 1);
  static sink s;
  memset(&s, 0, sizeof s);
  s.ticks = &ticks;
  s.stopped = &stopped;
  pn_actor *target = spawn_sink(rt, &s, -1);
  static order_plan plan;
  plan_init(&plan, target, &rng);
  plan.armed = &armed;
  pn_actor *armer = NULL;
  if (from_handler) {
    armer = pn_test_spawn(rt, "armer", armer_handler, NULL, -1);
    order_plan *p = &plan;
    PN_ASSERT_OK(pn_send(armer, MSG_ARM, &p, sizeof p));
  } else {
    plan_arm(&plan);
  }
  assert_true(pn_test_latch_wait(&armed, 10000));
  assert_true(pn_test_latch_wait(&ticks, 10000));
  stop_sink(target, &stopped);
  plan_check(&plan, &s);
  assert_sink_clean(&s);
  pn_actor_release(target);
  if (armer) {
    pn_actor_release(armer);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&ticks);
  pn_test_latch_fini(&armed);
  pn_test_latch_fini(&stopped);
}

static void deadline_order_armed_from_app_thread(void **state) {
  (void)state;
  deadline_order(false);
}

static void deadline_order_armed_from_handler(void **state) {
  (void)state;
  deadline_order(true);
}

/* --- periodic -------------------------------------------------------------
 * The handler counts ticks and cancels its own periodic timer once it has
 * the handle and has seen cancel_after ticks. It then arms a probe twenty
 * periods out; when the probe arrives the test stops the actor and the
 * PN_MSG_STOPPED handler records the final count, which must equal the count
 * at cancel time. */

typedef struct periodic {
  uint64_t period_us;
  uint32_t cancel_after;
  pn_timer *timer; /* handler only */
  bool cancelled;  /* handler only */
  _Atomic uint64_t ticks;
  _Atomic uint64_t ticks_at_cancel;
  _Atomic uint64_t ticks_at_stop;
  _Atomic int errors;
  pn_test_latch *first_ticks; /* counted down per tick */
  pn_test_latch *probe;
  pn_test_latch *stopped;
} periodic;

enum { TICK = 7 };

static void periodic_maybe_cancel(periodic *p) {
  if (p->cancelled || !p->timer || atomic_load(&p->ticks) < p->cancel_after) {
    return;
  }
  pn_timer_cancel(p->timer);
  p->timer = NULL;
  p->cancelled = true;
  atomic_store(&p->ticks_at_cancel, atomic_load(&p->ticks));
  if (pn_timer_start(pn_self(), MSG_PROBE, 20 * p->period_us, 0, NULL) !=
      PN_OK) {
    atomic_fetch_add(&p->errors, 1);
  }
}

static void periodic_handler(pn_actor *self, void *state, const pn_msg *msg) {
  periodic *p = state;
  switch (pn_msg_type(msg)) {
  case MSG_ARM:
    if (pn_timer_start(self, TICK, p->period_us, p->period_us, &p->timer) !=
        PN_OK) {
      atomic_fetch_add(&p->errors, 1);
    }
    return;
  case MSG_HANDLE:
    memcpy(&p->timer, pn_msg_data(msg), sizeof p->timer);
    periodic_maybe_cancel(p);
    return;
  case TICK:
    atomic_fetch_add(&p->ticks, 1);
    if (p->first_ticks) {
      pn_test_latch_count_down(p->first_ticks);
    }
    periodic_maybe_cancel(p);
    return;
  case MSG_PROBE:
    pn_test_latch_count_down(p->probe);
    return;
  case PN_MSG_STOPPED:
    atomic_store(&p->ticks_at_stop, atomic_load(&p->ticks));
    pn_test_latch_count_down(p->stopped);
    return;
  default:
    atomic_fetch_add(&p->errors, 1);
    return;
  }
}

/* from_handler: the actor arms its timer itself (homed, so the cancel runs
 * on the worker that owns the timer's heap); otherwise the test thread arms
 * it and hands the handle over in a message (unhomed: the cancel may run on
 * any worker). */
static void periodic_cancelled_in_handler(bool from_handler) {
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch probe, stopped;
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&stopped, 1);
  periodic p = {.period_us = 1000,
                .cancel_after = 5,
                .probe = &probe,
                .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "periodic", periodic_handler, &p,
                              from_handler ? 1 : -1);
  if (from_handler) {
    PN_ASSERT_OK(pn_send(a, MSG_ARM, NULL, 0));
  } else {
    pn_timer *t = NULL;
    PN_ASSERT_OK(pn_timer_start(a, TICK, p.period_us, p.period_us, &t));
    assert_non_null(t);
    PN_ASSERT_OK(pn_send(a, MSG_HANDLE, &t, sizeof t));
  }
  assert_true(pn_test_latch_wait(&probe, 10000));
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));

  assert_int_equal(atomic_load(&p.errors), 0);
  uint64_t at_cancel = atomic_load(&p.ticks_at_cancel);
  assert_true(at_cancel >= p.cancel_after); /* it did tick repeatedly */
  if (from_handler) {
    assert_int_equal(at_cancel, p.cancel_after);
  }
  /* Not one tick handled after the cancel, probe and stop included. */
  assert_int_equal(atomic_load(&p.ticks_at_stop), at_cancel);
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  /* A tick already queued at the cancel is dropped; never more than one is
   * queued for a periodic timer. */
  assert_true(st.dropped <= 1);
  /* The stop request is taken from the mailbox but not handled; the final
   * PN_MSG_STOPPED is handled without being taken. */
  assert_int_equal(st.received, st.processed + st.dropped);
  assert_int_equal(st.processed, at_cancel + 1 /* probe */ +
                                     1 /* arm or handle */ +
                                     1 /* PN_MSG_STOPPED */);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&stopped);
}

static void periodic_armed_and_cancelled_in_handler(void **state) {
  (void)state;
  periodic_cancelled_in_handler(true);
}

static void periodic_armed_by_app_cancelled_in_handler(void **state) {
  (void)state;
  periodic_cancelled_in_handler(false);
}

static void periodic_cancelled_from_app_thread(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch first, probe, stopped;
  pn_test_latch_init(&first, 3);
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&stopped, 1);
  periodic p = {.period_us = 1000,
                .cancel_after = UINT32_MAX, /* the handler never cancels */
                .first_ticks = &first,
                .probe = &probe,
                .stopped = &stopped};
  pn_actor *a = pn_test_spawn(rt, "periodic", periodic_handler, &p, -1);
  pn_timer *t = NULL;
  PN_ASSERT_OK(pn_timer_start(a, TICK, 0, p.period_us, &t));
  assert_true(pn_test_latch_wait(&first, 10000));
  pn_timer_cancel(t);
  /* A handler call that took its tick before the cancel may still be
   * counting it; nothing after that. */
  uint64_t at_cancel = atomic_load(&p.ticks);
  PN_ASSERT_OK(pn_timer_start(a, MSG_PROBE, 20 * p.period_us, 0, NULL));
  assert_true(pn_test_latch_wait(&probe, 10000));
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  assert_int_equal(atomic_load(&p.errors), 0);
  assert_true(at_cancel >= 3);
  uint64_t final = atomic_load(&p.ticks_at_stop);
  if (final > at_cancel + 1) {
    fail_msg("%" PRIu64 " ticks handled after pn_timer_cancel returned",
             final - at_cancel);
  }
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&first);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&stopped);
}

/* A periodic timer whose target cannot keep up: while the target is
 * blocked in a handler, thirty periods pass but at most one tick waits in
 * its mailbox (no burst of catch-up ticks), and a cancel made while that
 * tick waits drops it. The timer lives on worker 1 (armed by a handler
 * homed there), the target on worker 0, so blocking the target does not
 * stop the timer's owner from firing. */

typedef struct slow_target {
  pn_test_latch *entered;
  pn_test_latch *release;
  pn_test_latch *stopped;
  _Atomic uint64_t ticks;
  _Atomic int timed_out;
} slow_target;

static void slow_target_handler(pn_actor *self, void *state,
                                const pn_msg *msg) {
  (void)self;
  slow_target *t = state;
  switch (pn_msg_type(msg)) {
  case MSG_ARM: /* here: block until released */
    pn_test_latch_count_down(t->entered);
    if (!pn_test_latch_wait(t->release, 10000)) {
      atomic_store(&t->timed_out, 1);
    }
    return;
  case TICK:
    atomic_fetch_add(&t->ticks, 1);
    return;
  case PN_MSG_STOPPED:
    pn_test_latch_count_down(t->stopped);
    return;
  default:
    return;
  }
}

typedef struct remote_arm {
  pn_actor *target;
  pn_timer *timer; /* handler only */
  _Atomic int errors;
  pn_test_latch *probe;
  pn_test_latch *cancelled;
} remote_arm;

static void remote_arm_handler(pn_actor *self, void *state, const pn_msg *msg) {
  remote_arm *r = state;
  switch (pn_msg_type(msg)) {
  case MSG_ARM:
    if (pn_timer_start(r->target, TICK, 1000, 1000, &r->timer) != PN_OK ||
        pn_timer_start(self, MSG_PROBE, 30000, 0, NULL) != PN_OK) {
      atomic_fetch_add(&r->errors, 1);
    }
    return;
  case MSG_PROBE:
    pn_test_latch_count_down(r->probe);
    return;
  case MSG_CANCEL:
    pn_timer_cancel(r->timer);
    r->timer = NULL;
    pn_test_latch_count_down(r->cancelled);
    return;
  default:
    return;
  }
}

static void periodic_never_queues_catch_up_ticks(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch entered, release, stopped, probe, cancelled;
  pn_test_latch_init(&entered, 1);
  pn_test_latch_init(&release, 1);
  pn_test_latch_init(&stopped, 1);
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&cancelled, 1);
  slow_target t = {
      .entered = &entered, .release = &release, .stopped = &stopped};
  pn_actor *b = pn_test_spawn(rt, "slow", slow_target_handler, &t, 0);
  remote_arm r = {.target = b, .probe = &probe, .cancelled = &cancelled};
  pn_actor *h = pn_test_spawn(rt, "remote-arm", remote_arm_handler, &r, 1);

  PN_ASSERT_OK(pn_send(b, MSG_ARM, NULL, 0));
  assert_true(pn_test_latch_wait(&entered, 10000));
  PN_ASSERT_OK(pn_send(h, MSG_ARM, NULL, 0));
  assert_true(pn_test_latch_wait(&probe, 10000));
  /* Thirty periods later: the first tick (due long before the probe, on
   * the same heap) is queued, and nothing behind it. */
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(b, &st));
  if (st.mailbox_depth != 1) {
    fail_msg("%u ticks queued behind a blocked handler, expected 1",
             st.mailbox_depth);
  }
  PN_ASSERT_OK(pn_send(h, MSG_CANCEL, NULL, 0));
  assert_true(pn_test_latch_wait(&cancelled, 10000));
  pn_test_latch_count_down(&release);
  PN_ASSERT_OK(pn_actor_stop(b));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&t.timed_out), 0);
  assert_int_equal(atomic_load(&r.errors), 0);
  /* The queued tick was cancelled before the handler got it: dropped. */
  assert_int_equal(atomic_load(&t.ticks), 0);
  PN_ASSERT_OK(pn_actor_stats_get(b, &st));
  assert_int_equal(st.dropped, 1);
  assert_int_equal(st.processed, 2); /* the blocking message, STOPPED */
  pn_actor_release(b);
  pn_actor_release(h);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&entered);
  pn_test_latch_fini(&release);
  pn_test_latch_fini(&stopped);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&cancelled);
}

/* --- cancel before and after firing --------------------------------------- */

static void cancel_before_fire_never_fires(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() ^ 0xCA4Cu;
  pn_runtime *rt = pn_test_runtime(2);
  enum { N = 16, LONG_TYPE = 100 };
  pn_test_latch probe, stopped;
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&stopped, 1);
  static sink s;
  memset(&s, 0, sizeof s);
  s.probe = &probe;
  s.stopped = &stopped;
  pn_actor *a = spawn_sink(rt, &s, -1);

  pn_timer *t[N];
  uint64_t armed_ns[N];
  uint64_t delay_us[N];
  bool cancel[N];
  for (uint32_t i = 0; i < N; i++) {
    delay_us[i] = 10000 + i * 1000;
    cancel[i] = (pn_test_rand(&rng) & 1u) != 0;
    armed_ns[i] = mono_ns();
    PN_ASSERT_OK(pn_timer_start(a, 1 + i, delay_us[i], 0, &t[i]));
  }
  pn_timer *long_timer = NULL;
  PN_ASSERT_OK(pn_timer_start(a, LONG_TYPE, 10u * 1000000u, 0, &long_timer));
  /* Cancelled at once: it stays on the heap until the owner reaches it or
   * shutdown frees it, but never fires. */
  pn_timer_cancel(long_timer);

  bool in_time[N] = {false};
  for (uint32_t i = 0; i < N; i++) {
    if (cancel[i]) {
      pn_timer_cancel(t[i]);
      t[i] = NULL;
      /* Cancelled before its deadline could pass: it must never fire. A
       * machine stalled past the deadline proves nothing either way. */
      in_time[i] = mono_ns() < armed_ns[i] + delay_us[i] * 1000u;
    }
  }
  PN_ASSERT_OK(pn_timer_start(a, MSG_PROBE, 60000, 0, NULL));
  assert_true(pn_test_latch_wait(&probe, 10000));
  /* The others fired; cancelling them now is safe. */
  for (uint32_t i = 0; i < N; i++) {
    if (t[i]) {
      pn_timer_cancel(t[i]);
    }
  }
  stop_sink(a, &stopped);
  uint64_t expected = 0;
  for (uint32_t i = 0; i < N; i++) {
    uint64_t n = atomic_load(&s.count[1 + i]);
    if (!cancel[i]) {
      assert_int_equal(n, 1);
      expected++;
    } else if (in_time[i] && n != 0) {
      fail_msg("timer %u cancelled before its deadline fired %" PRIu64 " times",
               i, n);
    }
  }
  assert_int_equal(atomic_load(&s.count[LONG_TYPE]), 0);
  assert_true(atomic_load(&s.total) >= expected);
  assert_sink_clean(&s);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  assert_int_equal(atomic_load(&s.count[LONG_TYPE]), 0);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&stopped);
}

/* An actor that arms a long one-shot and a long periodic timer on MSG_ARM
 * and cancels both on MSG_CANCEL, from its own handler. */
typedef struct canceller {
  pn_timer *one_shot; /* handler only */
  pn_timer *periodic; /* handler only */
  _Atomic int ticks;
  _Atomic int errors;
  pn_test_latch *done;
} canceller;

static void canceller_handler(pn_actor *self, void *state, const pn_msg *msg) {
  canceller *c = state;
  switch (pn_msg_type(msg)) {
  case MSG_ARM:
    if (pn_timer_start(self, TICK, 10u * 1000000u, 0, &c->one_shot) != PN_OK ||
        pn_timer_start(self, TICK, 10u * 1000000u, 1000000u, &c->periodic) !=
            PN_OK) {
      atomic_fetch_add(&c->errors, 1);
    }
    return;
  case MSG_CANCEL:
    pn_timer_cancel(c->one_shot);
    pn_timer_cancel(c->periodic);
    c->one_shot = c->periodic = NULL;
    pn_test_latch_count_down(c->done);
    return;
  case TICK:
    atomic_fetch_add(&c->ticks, 1);
    return;
  default:
    return;
  }
}

static void cancel_in_handler_before_fire(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch done;
  pn_test_latch_init(&done, 2);
  /* Armed and cancelled by the handler: the timers sit on the heap of the
   * worker that ran MSG_ARM. Homed on worker 0, the cancel surely runs on
   * that owner and takes them off the heap at once; unhomed, it may run on
   * the other worker and only flag them. */
  canceller c0 = {.done = &done};
  canceller c1 = {.done = &done};
  pn_actor *a0 = pn_test_spawn(rt, "canceller", canceller_handler, &c0, 0);
  pn_actor *a1 = pn_test_spawn(rt, "canceller", canceller_handler, &c1, -1);
  PN_ASSERT_OK(pn_send(a0, MSG_ARM, NULL, 0));
  PN_ASSERT_OK(pn_send(a0, MSG_CANCEL, NULL, 0));
  PN_ASSERT_OK(pn_send(a1, MSG_ARM, NULL, 0));
  PN_ASSERT_OK(pn_send(a1, MSG_CANCEL, NULL, 0));
  assert_true(pn_test_latch_wait(&done, 10000));
  pn_actor_release(a0);
  pn_actor_release(a1);
  pn_test_runtime_end(rt);
  assert_int_equal(atomic_load(&c0.errors), 0);
  assert_int_equal(atomic_load(&c1.errors), 0);
  assert_int_equal(atomic_load(&c0.ticks), 0);
  assert_int_equal(atomic_load(&c1.ticks), 0);
  pn_test_latch_fini(&done);
}

/* Arms a short one-shot with a handle on MSG_ARM and cancels it from the
 * tick's own handler call, after it fired. */
typedef struct self_cancel {
  pn_timer *timer; /* handler only */
  _Atomic int ticks;
  _Atomic int errors;
  pn_test_latch *done;
} self_cancel;

static void self_cancel_handler(pn_actor *self, void *state,
                                const pn_msg *msg) {
  self_cancel *c = state;
  switch (pn_msg_type(msg)) {
  case MSG_ARM:
    if (pn_timer_start(self, TICK, 1000, 0, &c->timer) != PN_OK) {
      atomic_fetch_add(&c->errors, 1);
    }
    return;
  case TICK:
    atomic_fetch_add(&c->ticks, 1);
    pn_timer_cancel(c->timer);
    c->timer = NULL;
    pn_test_latch_count_down(c->done);
    return;
  default:
    return;
  }
}

static void cancel_after_fire_is_safe(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch ticks, done, stopped;
  pn_test_latch_init(&ticks, 2);
  pn_test_latch_init(&done, 2);
  pn_test_latch_init(&stopped, 1);
  static sink s;
  memset(&s, 0, sizeof s);
  s.ticks = &ticks;
  s.stopped = &stopped;
  pn_actor *a = spawn_sink(rt, &s, -1);
  /* From the test thread, once the tick was handled (and its envelope may
   * or may not be freed yet). */
  pn_timer *t1 = NULL;
  pn_timer *t2 = NULL;
  PN_ASSERT_OK(pn_timer_start(a, 1, 1000, 0, &t1));
  PN_ASSERT_OK(pn_timer_start(a, 2, 0, 0, &t2));
  assert_true(pn_test_latch_wait(&ticks, 10000));
  pn_timer_cancel(t1);
  pn_timer_cancel(t2);
  /* From the tick's own handler, on the owner (homed) and anywhere. */
  self_cancel c0 = {.done = &done};
  self_cancel c1 = {.done = &done};
  pn_actor *b0 = pn_test_spawn(rt, "self-cancel", self_cancel_handler, &c0, 1);
  pn_actor *b1 = pn_test_spawn(rt, "self-cancel", self_cancel_handler, &c1, -1);
  PN_ASSERT_OK(pn_send(b0, MSG_ARM, NULL, 0));
  PN_ASSERT_OK(pn_send(b1, MSG_ARM, NULL, 0));
  assert_true(pn_test_latch_wait(&done, 10000));
  stop_sink(a, &stopped);
  assert_int_equal(atomic_load(&s.count[1]), 1);
  assert_int_equal(atomic_load(&s.count[2]), 1);
  assert_sink_clean(&s);
  pn_actor_release(a);
  pn_actor_release(b0);
  pn_actor_release(b1);
  pn_test_runtime_end(rt);
  assert_int_equal(atomic_load(&c0.ticks), 1);
  assert_int_equal(atomic_load(&c1.ticks), 1);
  assert_int_equal(atomic_load(&c0.errors), 0);
  assert_int_equal(atomic_load(&c1.errors), 0);
  pn_test_latch_fini(&ticks);
  pn_test_latch_fini(&done);
  pn_test_latch_fini(&stopped);
}

/* --- arming from application threads and from handlers -------------------- */

enum { ARM_THREADS = 3, ARM_PER_THREAD = 50, ARM_BY_HANDLER = 50 };

typedef struct arm_thread {
  pn_actor *to;
  uint32_t type;
  uint64_t rng;
  _Atomic int errors;
} arm_thread;

static void *arm_thread_main(void *arg) {
  arm_thread *t = arg;
  for (int i = 0; i < ARM_PER_THREAD; i++) {
    uint64_t delay = pn_test_rand(&t->rng) % 3000;
    if (pn_timer_start(t->to, t->type, delay, 0, NULL) != PN_OK) {
      atomic_fetch_add(&t->errors, 1);
    }
  }
  return NULL;
}

typedef struct relay {
  pn_actor *to[2]; /* arms one timer to each per MSG_ARM */
  uint64_t rng;    /* handler only */
  _Atomic int errors;
} relay;

static void relay_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  relay *r = state;
  if (pn_msg_type(msg) != MSG_ARM) {
    return;
  }
  for (uint32_t k = 0; k < 2; k++) {
    uint64_t delay = pn_test_rand(&r->rng) % 3000;
    if (pn_timer_start(r->to[k], 10 + k, delay, 0, NULL) != PN_OK) {
      atomic_fetch_add(&r->errors, 1);
    }
  }
}

static void timers_from_threads_and_handlers(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch ticks0, ticks1, stopped;
  pn_test_latch_init(&ticks0, ARM_THREADS * ARM_PER_THREAD + ARM_BY_HANDLER);
  pn_test_latch_init(&ticks1, ARM_BY_HANDLER);
  pn_test_latch_init(&stopped, 2);
  static sink s0;
  static sink s1;
  memset(&s0, 0, sizeof s0);
  memset(&s1, 0, sizeof s1);
  s0.ticks = &ticks0;
  s0.stopped = &stopped;
  s1.ticks = &ticks1;
  s1.stopped = &stopped;
  pn_actor *a0 = spawn_sink(rt, &s0, -1);
  pn_actor *a1 = spawn_sink(rt, &s1, 1);
  relay r = {.to = {a0, a1}, .rng = seed ^ 0x4E1Au};
  pn_actor *armer = pn_test_spawn(rt, "relay", relay_handler, &r, -1);

  pthread_t th[ARM_THREADS];
  arm_thread at[ARM_THREADS];
  for (uint32_t i = 0; i < ARM_THREADS; i++) {
    at[i].to = a0;
    at[i].type = 1 + i;
    at[i].rng = seed + i;
    atomic_init(&at[i].errors, 0);
    assert_int_equal(pthread_create(&th[i], NULL, arm_thread_main, &at[i]), 0);
  }
  for (int i = 0; i < ARM_BY_HANDLER; i++) {
    PN_ASSERT_OK(pn_send(armer, MSG_ARM, NULL, 0));
  }
  for (uint32_t i = 0; i < ARM_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&at[i].errors), 0);
  }
  assert_true(pn_test_latch_wait(&ticks0, 10000));
  assert_true(pn_test_latch_wait(&ticks1, 10000));
  PN_ASSERT_OK(pn_actor_stop(a0));
  PN_ASSERT_OK(pn_actor_stop(a1));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  for (uint32_t i = 0; i < ARM_THREADS; i++) {
    assert_int_equal(atomic_load(&s0.count[1 + i]), ARM_PER_THREAD);
  }
  assert_int_equal(atomic_load(&s0.count[10]), ARM_BY_HANDLER);
  assert_int_equal(atomic_load(&s0.total),
                   ARM_THREADS * ARM_PER_THREAD + ARM_BY_HANDLER);
  assert_int_equal(atomic_load(&s1.count[11]), ARM_BY_HANDLER);
  assert_int_equal(atomic_load(&s1.total), ARM_BY_HANDLER);
  assert_int_equal(atomic_load(&r.errors), 0);
  assert_sink_clean(&s0);
  assert_sink_clean(&s1);
  pn_actor_release(a0);
  pn_actor_release(a1);
  pn_actor_release(armer);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&ticks0);
  pn_test_latch_fini(&ticks1);
  pn_test_latch_fini(&stopped);
}

/* --- stopped actors and shutdown ------------------------------------------ */

static void timers_to_stopped_actors(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch probe, stopped_a, stopped_c;
  pn_test_latch_init(&probe, 1);
  pn_test_latch_init(&stopped_a, 1);
  pn_test_latch_init(&stopped_c, 1);
  static sink sa, sb, sc;
  memset(&sa, 0, sizeof sa);
  memset(&sb, 0, sizeof sb);
  memset(&sc, 0, sizeof sc);
  sa.stopped = &stopped_a;
  sb.probe = &probe;
  sc.stopped = &stopped_c;

  /* An actor that has stopped refuses timers and nothing is allocated. */
  pn_actor *a = spawn_sink(rt, &sa, -1);
  stop_sink(a, &stopped_a);
  assert_true(wait_actor_stopped(a, 10000));
  pn_timer *t = NULL;
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(a, 1, 0, 0, NULL));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(a, 1, 1000, 0, &t));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(a, 1, 1000, 1000, &t));
  assert_null(t);
  assert_int_equal(timers_active(rt), 0);

  /* Timers armed before the stop: their ticks are dropped, never handled.
   * b and c share home worker 0, so timers armed here for both sit on one
   * heap and b's probe comes after c's deadlines. */
  pn_actor *b = spawn_sink(rt, &sb, 0);
  pn_actor *c = spawn_sink(rt, &sc, 0);
  pn_timer *tp = NULL;
  uint64_t armed_ns = mono_ns();
  PN_ASSERT_OK(pn_timer_start(c, 1, 20000, 0, NULL));
  PN_ASSERT_OK(pn_timer_start(c, 2, 1000, 1000, &tp));
  stop_sink(c, &stopped_c);
  /* Stopped before the one-shot was due (unless the machine stalled). */
  bool in_time = mono_ns() < armed_ns + 20000000u;
  PN_ASSERT_OK(pn_timer_start(b, MSG_PROBE, 40000, 0, NULL));
  assert_true(pn_test_latch_wait(&probe, 10000));
  /* The periodic timer's target is gone; giving the handle back is safe. */
  pn_timer_cancel(tp);
  if (in_time) {
    assert_int_equal(atomic_load(&sc.count[1]), 0);
  }
  assert_sink_clean(&sc);

  /* After shutdown every actor is stopped: PN_ECLOSED, nothing leaks. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(b, 1, 0, 0, NULL));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(b, 1, 0, 0, &t));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(b, 1, 10, 10, &t));
  assert_null(t);
  assert_int_equal(atomic_load(&sb.total), 0);
  assert_sink_clean(&sb);
  pn_actor_release(a);
  pn_actor_release(b);
  pn_actor_release(c);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&probe);
  pn_test_latch_fini(&stopped_a);
  pn_test_latch_fini(&stopped_c);
}

/* On MSG_ARM arms a ten-second one-shot without a handle, from its
 * handler: it sits on the worker's heap until shutdown frees it. */
typedef struct long_arm {
  pn_test_latch *armed;
  _Atomic int ticks;
} long_arm;

static void long_arm_handler(pn_actor *self, void *state, const pn_msg *msg) {
  long_arm *l = state;
  if (pn_msg_type(msg) == MSG_ARM) {
    if (pn_timer_start(self, TICK, 10u * 1000000u, 0, NULL) == PN_OK) {
      pn_test_latch_count_down(l->armed);
    }
  } else if (pn_msg_type(msg) == TICK) {
    atomic_fetch_add(&l->ticks, 1);
  }
}

static void shutdown_frees_armed_timers(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch armed;
  pn_test_latch_init(&armed, 1);
  static sink s;
  memset(&s, 0, sizeof s);
  pn_actor *a = spawn_sink(rt, &s, -1);
  long_arm l = {.armed = &armed};
  pn_actor *b = pn_test_spawn(rt, "long-arm", long_arm_handler, &l, -1);
  PN_ASSERT_OK(pn_send(b, MSG_ARM, NULL, 0));
  assert_true(pn_test_latch_wait(&armed, 10000));
  pn_timer *one_shot = NULL;
  pn_timer *periodic_timer = NULL;
  PN_ASSERT_OK(pn_timer_start(a, 1, 10u * 1000000u, 0, &one_shot));
  PN_ASSERT_OK(
      pn_timer_start(a, 2, 10u * 1000000u, 10u * 1000000u, &periodic_timer));
  PN_ASSERT_OK(pn_timer_start(a, 3, 10u * 1000000u, 0, NULL));
  assert_int_equal(timers_active(rt), 4);
  pn_actor_release(a);
  pn_actor_release(b);

  /* Shutdown frees the timers nobody holds; the two handles remain. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(timers_active(rt), 2);
  pn_runtime_stats st;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &st));
  assert_int_equal(st.actor_handles, 0); /* the timers' references went */
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  pn_timer_cancel(one_shot);
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  pn_timer_cancel(periodic_timer);
  assert_int_equal(timers_active(rt), 0);
  assert_int_equal(atomic_load(&s.total), 0);
  assert_int_equal(atomic_load(&l.ticks), 0);
  assert_sink_clean(&s);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&armed);
}

/* --- bad arguments -------------------------------------------------------- */

static void bad_arguments_change_nothing(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  static sink s;
  memset(&s, 0, sizeof s);
  pn_actor *a = spawn_sink(rt, &s, -1);
  pn_timer *const sentinel = (pn_timer *)&s;
  pn_timer *t = sentinel;
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(NULL, 1, 0, 0, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(NULL, 1, 1000, 1000, &t));
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(a, PN_MSG_TYPE_RESERVED, 0, 0, &t));
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(a, PN_MSG_STOPPED, 0, 0, NULL));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_timer_start(a, PN_MSG_TYPE_RESERVED + 7, 10, 10, &t));
  /* A periodic timer that could never be cancelled. */
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(a, 1, 1000, 1000, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_timer_start(a, 1, 0, 1, NULL));
  assert_ptr_equal(t, sentinel);
  pn_timer_cancel(NULL); /* ignored */
  assert_int_equal(timers_active(rt), 0);
  pn_runtime_stats rst;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &rst));
  assert_int_equal(rst.msgs_in_flight, 0);
  assert_int_equal(rst.actor_handles, 1);
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_int_equal(st.received, 0);
  assert_int_equal(st.runs, 0);
  /* The boundary type is valid. */
  PN_ASSERT_OK(pn_timer_start(a, TOP_TYPE, 10u * 1000000u, 0, &t));
  assert_ptr_not_equal(t, sentinel);
  assert_non_null(t);
  pn_timer_cancel(t);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  assert_int_equal(atomic_load(&s.total), 0);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_shot_fires_once_never_early),
      cmocka_unit_test(deadline_order_armed_from_app_thread),
      cmocka_unit_test(deadline_order_armed_from_handler),
      cmocka_unit_test(periodic_armed_and_cancelled_in_handler),
      cmocka_unit_test(periodic_armed_by_app_cancelled_in_handler),
      cmocka_unit_test(periodic_cancelled_from_app_thread),
      cmocka_unit_test(periodic_never_queues_catch_up_ticks),
      cmocka_unit_test(cancel_before_fire_never_fires),
      cmocka_unit_test(cancel_in_handler_before_fire),
      cmocka_unit_test(cancel_after_fire_is_safe),
      cmocka_unit_test(timers_from_threads_and_handlers),
      cmocka_unit_test(timers_to_stopped_actors),
      cmocka_unit_test(shutdown_frees_armed_timers),
      cmocka_unit_test(bad_arguments_change_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
