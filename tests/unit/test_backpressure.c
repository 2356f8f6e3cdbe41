/* Backpressure: actors flooding a slow actor are muted, so the envelopes in
 * flight stay within a bound set by the high mark, the number of senders and
 * their chunk size, instead of growing with the flood; muted senders resume;
 * actors that flood each other never deadlock. */
#include <string.h>

#include "tests/support/test_support.h"

enum { MSG_DATA = 1, MSG_GO = 2 };
enum { SENDERS = 40, CHUNK = 50, HIGH = 1024 };

typedef struct slow_sink {
  pn_runtime *rt;
  uint64_t target;
  uint64_t got;
  uint64_t max_in_flight;
  volatile uint64_t work;
  pn_test_latch *done;
} slow_sink;

static void slow_sink_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  slow_sink *s = state;
  if (pn_msg_type(msg) != MSG_DATA) {
    return;
  }
  /* Much slower than the senders: some arithmetic per message. */
  for (int i = 0; i < 400; i++) {
    s->work = s->work * 6364136223846793005ull + 1442695040888963407ull;
  }
  if (++s->got % 64 == 0) {
    pn_runtime_stats st;
    PN_ASSERT_OK(pn_runtime_stats_get(s->rt, &st));
    if (st.msgs_in_flight > s->max_in_flight) {
      s->max_in_flight = st.msgs_in_flight;
    }
  }
  if (s->got == s->target) {
    pn_test_latch_count_down(s->done);
  }
}

typedef struct flooder {
  pn_actor *to;
} flooder;

/* Sends a chunk per run, forever, until stopped. */
static void flooder_handler(pn_actor *self, void *state, const pn_msg *msg) {
  flooder *f = state;
  if (pn_msg_type(msg) != MSG_GO) {
    return;
  }
  for (int i = 0; i < CHUNK; i++) {
    pn_err err = pn_send(f->to, MSG_DATA, &i, sizeof i);
    assert_true(err == PN_OK || err == PN_ECLOSED);
  }
  (void)pn_send(self, MSG_GO, NULL, 0);
}

static void flood_stays_bounded(void **state) {
  (void)state;
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  rcfg.mailbox_high = HIGH;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rcfg, &rt));
  pn_test_latch done;
  pn_test_latch_init(&done, 1);
  slow_sink sink = {.rt = rt, .target = 200000, .done = &done};
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "slow-sink";
  cfg.handler = slow_sink_handler;
  cfg.state = &sink;
  pn_actor *sink_actor = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &sink_actor));
  flooder fl[SENDERS];
  pn_actor *senders[SENDERS];
  cfg.name = "flooder";
  cfg.handler = flooder_handler;
  for (int i = 0; i < SENDERS; i++) {
    fl[i].to = sink_actor;
    cfg.state = &fl[i];
    PN_ASSERT_OK(pn_spawn(rt, &cfg, &senders[i]));
    PN_ASSERT_OK(pn_send(senders[i], MSG_GO, NULL, 0));
  }
  assert_true(pn_test_latch_wait(&done, 60000));
  uint64_t muted = 0;
  for (int i = 0; i < SENDERS; i++) {
    pn_actor_stats st;
    PN_ASSERT_OK(pn_actor_stats_get(senders[i], &st));
    muted += st.muted;
    PN_ASSERT_OK(pn_actor_stop(senders[i]));
  }
  pn_actor_stats sink_st;
  PN_ASSERT_OK(pn_actor_stats_get(sink_actor, &sink_st));
  /* Senders were held back; the sink's mailbox never went far past the
   * high mark plus one chunk per sender, and neither did the envelopes in
   * flight (plus the senders' own "go" messages). */
  assert_true(muted > 0);
  uint64_t bound = HIGH + (uint64_t)SENDERS * (CHUNK + 1) * 2;
  if (sink_st.mailbox_hwm > bound || sink.max_in_flight > bound) {
    fail_msg("mailbox peaked at %u, in flight at %llu, bound %llu",
             sink_st.mailbox_hwm, (unsigned long long)sink.max_in_flight,
             (unsigned long long)bound);
  }
  /* The flooders borrow the sink's handle: keep ours until every handler
   * has finished, then give it back. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30000000));
  pn_actor_release(sink_actor);
  for (int i = 0; i < SENDERS; i++) {
    pn_actor_release(senders[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
}

/* Two actors that flood each other: both get marked overloaded, a marked
 * actor is never muted, so neither waits for the other forever. */
typedef struct duelist {
  pn_actor *peer;
  uint64_t got;
  uint64_t target;
  pn_test_latch *done;
} duelist;

static void duelist_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  duelist *d = state;
  uint32_t type = pn_msg_type(msg);
  if (type == PN_MSG_STOPPED) {
    return;
  }
  if (type == MSG_DATA && ++d->got == d->target) {
    pn_test_latch_count_down(d->done);
  }
  if (d->got < d->target) {
    for (int i = 0; i < 4; i++) {
      pn_err err = pn_send(d->peer, MSG_DATA, NULL, 0);
      assert_true(err == PN_OK || err == PN_ECLOSED);
    }
  }
}

static void mutual_flood_does_not_deadlock(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch done;
  pn_test_latch_init(&done, 2);
  duelist d0 = {.target = 200000, .done = &done};
  duelist d1 = {.target = 200000, .done = &done};
  pn_actor *a0 = pn_test_spawn(rt, "duelist", duelist_handler, &d0, -1);
  pn_actor *a1 = pn_test_spawn(rt, "duelist", duelist_handler, &d1, -1);
  d0.peer = a1;
  d1.peer = a0;
  PN_ASSERT_OK(pn_send(a0, MSG_GO, NULL, 0));
  PN_ASSERT_OK(pn_send(a1, MSG_GO, NULL, 0));
  assert_true(pn_test_latch_wait(&done, 60000));
  /* Each duelist borrows the other's handle: release after shutdown. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30000000));
  pn_actor_release(a0);
  pn_actor_release(a1);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
}

/* A chain of actors each forwarding to a slower next one: muting
 * propagates backwards without deadlock and everything arrives. */
typedef struct stage {
  pn_actor *next;
  uint64_t got;
  uint64_t target;
  uint32_t cost;
  volatile uint64_t work;
  pn_test_latch *done;
} stage;

static void stage_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  stage *s = state;
  if (pn_msg_type(msg) != MSG_DATA) {
    return;
  }
  for (uint32_t i = 0; i < s->cost; i++) {
    s->work = s->work * 6364136223846793005ull + 1;
  }
  if (s->next) {
    PN_ASSERT_OK(pn_send(s->next, MSG_DATA, NULL, 0));
  } else if (++s->got == s->target) {
    pn_test_latch_count_down(s->done);
  }
}

static void pipeline_of_slower_stages_completes(void **state) {
  (void)state;
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  rcfg.mailbox_high = 64;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rcfg, &rt));
  enum { STAGES = 5, MSGS = 50000 };
  pn_test_latch done;
  pn_test_latch_init(&done, 1);
  stage st[STAGES];
  pn_actor *actors[STAGES];
  memset(st, 0, sizeof st);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = stage_handler;
  for (int i = STAGES - 1; i >= 0; i--) {
    st[i].next = i + 1 < STAGES ? actors[i + 1] : NULL;
    st[i].cost = 20u * (uint32_t)(i + 1);
    st[i].target = MSGS;
    st[i].done = &done;
    cfg.state = &st[i];
    PN_ASSERT_OK(pn_spawn(rt, &cfg, &actors[i]));
  }
  for (int i = 0; i < MSGS; i++) {
    PN_ASSERT_OK(pn_send(actors[0], MSG_DATA, NULL, 0));
  }
  assert_true(pn_test_latch_wait(&done, 60000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30000000));
  for (int i = 0; i < STAGES; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flood_stays_bounded),
      cmocka_unit_test(mutual_flood_does_not_deadlock),
      cmocka_unit_test(pipeline_of_slower_stages_completes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
