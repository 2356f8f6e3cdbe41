/* The tests' model (token_model.h). */
#include "tests/sim/token_model.h"

#include <math.h>
#include <string.h>

#include "tests/support/test_support.h"

typedef struct token {
  uint32_t hops;
  uint32_t pad;
  uint64_t value;
} token;

typedef struct lp_state {
  uint64_t hash;
  uint64_t seen;
  double last;
} lp_state;

static void token_init(pn_sim_ctx *ctx, void *state, void *user) {
  (void)state;
  token_model *mc = user;
  token t = {.hops = mc->hops, .value = pn_sim_random(ctx)};
  PN_ASSERT_OK(pn_sim_schedule(
      ctx, pn_sim_lp(ctx), 1.0 + pn_sim_exponential(ctx, 2.0), &t, sizeof t));
  if (mc->misuse && pn_sim_lp(ctx) == 0) {
    uint8_t big[128] = {0};
    mc->got[0] = pn_sim_schedule(ctx, 0, 0.5, &t, sizeof t); /* < lookahead */
    mc->got[1] = pn_sim_schedule(ctx, pn_sim_lp_count(ctx), 1.0, &t, sizeof t);
    mc->got[2] = pn_sim_schedule(ctx, 0, 1.0, big, sizeof big); /* > max */
    mc->got[3] = pn_sim_schedule(ctx, 0, NAN, &t, sizeof t);
    mc->got[4] = pn_sim_schedule(ctx, 0, INFINITY, &t, sizeof t);
    mc->got[5] = pn_sim_schedule(ctx, 0, 1.0, NULL, 4);
    mc->got[6] = pn_sim_add(ctx, PN_SIM_SUMS, 1);
  }
}

static void token_event(pn_sim_ctx *ctx, void *state, const void *data,
                        size_t len, void *user) {
  token_model *tm = user;
  lp_state *s = state;
  if (tm->mark > 0 && pn_sim_now(ctx) >= tm->mark) {
    atomic_store(&tm->marked, true);
  }
  token t;
  assert_int_equal(len, sizeof t);
  memcpy(&t, data, sizeof t);
  assert_true(pn_sim_now(ctx) >= s->last); /* timestamp order */
  s->last = pn_sim_now(ctx);
  s->hash = (s->hash ^ t.value) * 0x100000001B3ull + pn_sim_lp(ctx);
  s->seen++;
  if (t.hops-- == 0) {
    return;
  }
  t.value = pn_sim_random(ctx);
  uint64_t to = pn_sim_lp(ctx);
  if (pn_sim_below(ctx, 3) == 0) {
    to = pn_sim_below(ctx, pn_sim_lp_count(ctx));
  }
  /* Ties on purpose: a delay of exactly the lookahead, often. */
  double delay = pn_sim_below(ctx, 2) ? 1.0 : 1.0 + pn_sim_uniform(ctx);
  PN_ASSERT_OK(pn_sim_schedule(ctx, to, delay, &t, sizeof t));
}

static void token_finish(pn_sim_ctx *ctx, void *state, void *user) {
  token_model *mc = user;
  lp_state *s = state;
  PN_ASSERT_OK(pn_sim_add(ctx, 0, (int64_t)s->seen));
  PN_ASSERT_OK(pn_sim_add(ctx, 1, (int64_t)(s->hash & 0xFFFF)));
  if (mc->misuse && pn_sim_lp(ctx) == 0) {
    token t = {0};
    mc->got[7] = pn_sim_schedule(ctx, 0, 1.0, &t, sizeof t);
  }
}

void token_model_setup(token_model *tm, pn_sim_model *m, pn_sim_config *c) {
  *m = (pn_sim_model)PN_SIM_MODEL_INIT;
  m->lp_state_size = sizeof(lp_state);
  m->init = token_init;
  m->event = token_event;
  m->finish = token_finish;
  m->user = tm;
  *c = (pn_sim_config)PN_SIM_CONFIG_INIT;
  c->lp_count = 500;
  c->lookahead = 1.0;
  c->end_time = 300.0;
  c->event_max = sizeof(token);
}
