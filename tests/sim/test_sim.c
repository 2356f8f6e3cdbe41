/* The simulation engine (include/peernet/sim.h): results are bit-identical
 * whatever the workers, blocks and mapping, and from run to run; another
 * seed gives another digest; misuse from a handler gets a clear error and
 * schedules nothing; bad configs are refused with nothing left running;
 * time-stepped runs visit every tick; the per-LP random draws keep to
 * their ranges. The model's seed is the test's (PEERNET_TEST_SEED
 * replays it).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "peernet/peernet.h"
#include "tests/sim/token_model.h"
#include "tests/support/test_support.h"

static uint32_t round_robin(uint64_t lp, uint32_t blocks, void *ctx) {
  (void)ctx;
  return (uint32_t)(lp % blocks);
}

static pn_sim_result run_tokens(uint32_t workers, uint32_t blocks,
                                pn_sim_map_fn map, uint64_t seed,
                                token_model *tm) {
  pn_runtime *rt = pn_test_runtime(workers);
  pn_sim_model m;
  pn_sim_config c;
  token_model_setup(tm, &m, &c);
  c.seed = seed;
  c.blocks = blocks;
  c.map = map;
  pn_sim_result r;
  PN_ASSERT_OK(pn_sim_run(rt, &m, &c, &r));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
  return r;
}

static void same_results_whatever_the_workers_and_blocks(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  token_model mc = {.hops = 1000};
  pn_sim_result base = run_tokens(1, 1, NULL, seed, &mc);
  fprintf(stderr, "# %llu events, %llu windows, digest %016llx\n",
          (unsigned long long)base.events, (unsigned long long)base.windows,
          (unsigned long long)base.digest);
  assert_true(base.events > 10000);
  assert_true(base.end_time < 300.0 && base.end_time > 290.0);
  assert_int_equal(base.sums[0], (int64_t)base.events);
  struct {
    uint32_t workers, blocks;
    pn_sim_map_fn map;
  } runs[] = {{1, 1, NULL},         {2, 0, NULL}, {2, 2, NULL},
              {2, 7, NULL},         {3, 5, NULL}, {2, 4, round_robin},
              {1, 500, round_robin}};
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    pn_sim_result r =
        run_tokens(runs[i].workers, runs[i].blocks, runs[i].map, seed, &mc);
    assert_int_equal(r.events, base.events);
    assert_int_equal(r.beyond_end, base.beyond_end);
    assert_int_equal(r.digest, base.digest);
    assert_memory_equal(r.sums, base.sums, sizeof r.sums);
    assert_true(r.end_time == base.end_time);
  }
  pn_sim_result other = run_tokens(2, 2, NULL, seed + 1, &mc);
  assert_int_not_equal(other.digest, base.digest);
}

/* Misuse from a handler: each gets its code, and nothing is scheduled (the
 * run is the run without the misuse). */
static void misuse_from_handlers(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  token_model plain = {.hops = 50};
  token_model bad = {.hops = 50, .misuse = true};
  pn_sim_result a = run_tokens(2, 2, NULL, seed, &plain);
  pn_sim_result b = run_tokens(2, 2, NULL, seed, &bad);
  assert_int_equal(bad.got[0], PN_EINVAL);
  assert_int_equal(bad.got[1], PN_ENOENT);
  assert_int_equal(bad.got[2], PN_ERANGE);
  assert_int_equal(bad.got[3], PN_EINVAL);
  assert_int_equal(bad.got[4], PN_EINVAL);
  assert_int_equal(bad.got[5], PN_EINVAL);
  assert_int_equal(bad.got[6], PN_EINVAL);
  assert_int_equal(bad.got[7], PN_ECLOSED);
  assert_int_equal(a.events, b.events);
  assert_int_equal(a.digest, b.digest);
}

static void nop_event(pn_sim_ctx *ctx, void *state, const void *data,
                      size_t len, void *user) {
  (void)ctx;
  (void)state;
  (void)data;
  (void)len;
  (void)user;
}

static void nop_init(pn_sim_ctx *ctx, void *state, void *user) {
  (void)ctx;
  (void)state;
  (void)user;
}

static uint32_t out_of_range(uint64_t lp, uint32_t blocks, void *ctx) {
  (void)ctx;
  return lp == 3 ? blocks : 0;
}

/* pn_sim_run from a handler: refused (it would wait on its own worker). */
typedef struct nested {
  pn_runtime *rt;
  pn_err got;
  pn_test_latch done;
} nested;

static void nested_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  nested *n = state;
  if (pn_msg_type(msg) != 1) {
    return; /* its stop */
  }
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.event = nop_event;
  pn_sim_config c = PN_SIM_CONFIG_INIT;
  c.lp_count = 1;
  c.lookahead = 1;
  c.end_time = 1;
  pn_sim_result r;
  n->got = pn_sim_run(n->rt, &m, &c, &r);
  pn_test_latch_count_down(&n->done);
}

static void bad_configs_refused(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.event = nop_event;
  pn_sim_config ok = PN_SIM_CONFIG_INIT;
  ok.lp_count = 10;
  ok.lookahead = 1.0;
  ok.end_time = 10.0;
  pn_sim_result r;
  memset(&r, 0xAB, sizeof r);
  pn_sim_result untouched = r;
  pn_sim_config c;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(NULL, &m, &ok, &r));
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, NULL, &ok, &r));
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, NULL, &r));
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &ok, NULL));
  pn_sim_model no_event = PN_SIM_MODEL_INIT;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &no_event, &ok, &r));
  pn_sim_model small = m;
  small.size = 8;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &small, &ok, &r));
  c = ok, c.size = 8;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.lp_count = 0;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.lookahead = 0;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.lookahead = NAN;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.end_time = INFINITY;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.end_time = -1;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.event_max = PN_SIM_EVENT_MAX + 1;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.blocks = 11;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.sync = (pn_sim_sync)7;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  c = ok, c.sync = PN_SIM_TIME_STEPPED; /* no tick */
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  pn_sim_model ticking = m;
  ticking.tick = nop_init; /* a tick handler in conservative mode */
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &ticking, &ok, &r));
  c = ok, c.map = out_of_range;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(rt, &m, &c, &r));
  assert_memory_equal(&r, &untouched, sizeof r);

  nested n = {.rt = rt};
  pn_test_latch_init(&n.done, 1);
  pn_actor *a = pn_test_spawn(rt, "nested", nested_handler, &n, -1);
  PN_ASSERT_OK(pn_send(a, 1, NULL, 0));
  assert_true(pn_test_latch_wait(&n.done, 10000));
  assert_int_equal(n.got, PN_EINVAL);
  PN_ASSERT_OK(pn_actor_stop(a));
  pn_actor_release(a);
  pn_test_latch_fini(&n.done);

  /* And a good one after all that: nothing was left behind. */
  PN_ASSERT_OK(pn_sim_run(rt, &m, &ok, &r));
  assert_int_equal(r.events, 0);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
}

/* Time-stepped: every LP's tick handler at every tick, events in ticks;
 * the same results on one worker and on two. */
typedef struct stepped_state {
  uint64_t ticks, events;
  double last_tick;
} stepped_state;

static void stepped_tick(pn_sim_ctx *ctx, void *state, void *user) {
  (void)user;
  stepped_state *s = state;
  double now = pn_sim_now(ctx);
  assert_true(s->ticks == 0 || now == s->last_tick + 0.5);
  s->last_tick = now;
  s->ticks++;
  PN_ASSERT_OK(pn_sim_record(ctx, 0, 1));
  if (pn_sim_below(ctx, 4) == 0) {
    uint64_t to = pn_sim_below(ctx, pn_sim_lp_count(ctx));
    PN_ASSERT_OK(pn_sim_schedule(ctx, to, 0.5, NULL, 0));
  }
  assert_int_equal(pn_sim_schedule(ctx, pn_sim_lp(ctx), 0.25, NULL, 0),
                   PN_EINVAL); /* below the tick */
}

static void stepped_event(pn_sim_ctx *ctx, void *state, const void *data,
                          size_t len, void *user) {
  (void)data;
  (void)len;
  (void)user;
  stepped_state *s = state;
  /* Inside the tick that began last. */
  assert_true(pn_sim_now(ctx) >= s->last_tick &&
              pn_sim_now(ctx) < s->last_tick + 0.5);
  s->events++;
  PN_ASSERT_OK(pn_sim_record(ctx, 1, 1));
}

static void stepped_finish(pn_sim_ctx *ctx, void *state, void *user) {
  (void)user;
  stepped_state *s = state;
  PN_ASSERT_OK(pn_sim_add(ctx, 0, (int64_t)s->ticks));
  PN_ASSERT_OK(pn_sim_add(ctx, 1, (int64_t)s->events));
  assert_int_equal(pn_sim_record(ctx, 0, 1), PN_EINVAL); /* the run ended */
}

/* What the progress function saw, window by window. */
enum { STEPPED_WINDOWS = 101 }; /* init, then 100 ticks */
typedef struct series {
  uint32_t count;
  double time[STEPPED_WINDOWS];
  int64_t ticks[STEPPED_WINDOWS], events[STEPPED_WINDOWS];
  uint64_t total[STEPPED_WINDOWS];
} series;

static void on_progress(const pn_sim_progress *p, void *ctx) {
  series *s = ctx;
  assert_true(s->count < STEPPED_WINDOWS);
  assert_int_equal(p->window, s->count); /* in order, none missed */
  s->time[s->count] = p->time;
  s->ticks[s->count] = p->series[0];
  s->events[s->count] = p->series[1];
  s->total[s->count] = p->events;
  s->count++;
}

static pn_sim_result run_stepped(uint32_t workers, uint64_t seed, series *out) {
  pn_runtime *rt = pn_test_runtime(workers);
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.lp_state_size = sizeof(stepped_state);
  m.tick = stepped_tick;
  m.event = stepped_event;
  m.finish = stepped_finish;
  pn_sim_config c = PN_SIM_CONFIG_INIT;
  c.sync = PN_SIM_TIME_STEPPED;
  c.tick = 0.5;
  c.lp_count = 300;
  c.end_time = 50.0;
  c.seed = seed;
  c.progress = on_progress;
  c.progress_ctx = out;
  pn_sim_result r;
  PN_ASSERT_OK(pn_sim_run(rt, &m, &c, &r));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
  return r;
}

static void time_stepped_visits_every_tick(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  series s1 = {0}, s2 = {0};
  pn_sim_result one = run_stepped(1, seed, &s1);
  assert_int_equal(one.windows, 100);       /* 50 / 0.5 */
  assert_int_equal(one.sums[0], 300 * 100); /* every LP, every tick */
  assert_int_equal(one.sums[1], (int64_t)one.events);
  assert_true(one.events > 300 * 100 / 8);
  pn_sim_result two = run_stepped(2, seed, &s2);
  assert_int_equal(two.digest, one.digest);
  assert_memory_equal(two.sums, one.sums, sizeof one.sums);
  /* The progress function: every window, its tick's time, each LP's
   * tick recorded once a tick, the events adding up; the same series on
   * two workers. */
  assert_int_equal(s1.count, STEPPED_WINDOWS);
  int64_t events = 0;
  for (uint32_t w = 1; w < STEPPED_WINDOWS; w++) {
    assert_true(s1.time[w] == (w - 1) * 0.5);
    assert_int_equal(s1.ticks[w], 300);
    events += s1.events[w];
    assert_int_equal(s1.total[w], (uint64_t)events);
  }
  assert_int_equal(events, (int64_t)one.events);
  assert_memory_equal(&s1, &s2, sizeof s1);
}

/* The random draws keep to their ranges, and the streams differ by LP. */
typedef struct draws {
  uint64_t first[4];
} draws;

static void draw_init(pn_sim_ctx *ctx, void *state, void *user) {
  (void)state;
  draws *d = user;
  for (int i = 0; i < 2000; i++) {
    double u = pn_sim_uniform(ctx);
    assert_true(u >= 0.0 && u < 1.0);
    assert_true(pn_sim_below(ctx, 7) < 7);
    assert_true(pn_sim_exponential(ctx, 3.0) >= 0.0);
  }
  assert_int_equal(pn_sim_below(ctx, 0), 0);
  assert_int_equal(pn_sim_below(ctx, 1), 0);
  d->first[pn_sim_lp(ctx)] = pn_sim_random(ctx);
}

static void random_streams(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(1);
  draws d = {{0}};
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.init = draw_init;
  m.event = nop_event;
  m.user = &d;
  pn_sim_config c = PN_SIM_CONFIG_INIT;
  c.lp_count = 4;
  c.lookahead = 1.0;
  c.end_time = 1.0;
  c.seed = pn_test_seed();
  pn_sim_result r;
  PN_ASSERT_OK(pn_sim_run(rt, &m, &c, &r));
  for (int i = 0; i < 4; i++) {
    for (int j = i + 1; j < 4; j++) {
      assert_int_not_equal(d.first[i], d.first[j]);
    }
  }
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(same_results_whatever_the_workers_and_blocks),
      cmocka_unit_test(misuse_from_handlers),
      cmocka_unit_test(bad_configs_refused),
      cmocka_unit_test(time_stepped_visits_every_tick),
      cmocka_unit_test(random_streams),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
