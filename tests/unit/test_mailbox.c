/* Mailbox and scheduling: many producers lose and duplicate nothing, each
 * producer's messages stay in order, and thousands of idle/busy transitions
 * never lose a wakeup (a lost one would leave a message unhandled and the
 * wait below would time out). */
#include <string.h>

#include "tests/support/test_support.h"

enum { MSG_TAGGED = 1, MSG_GO = 2, MSG_HOP = 3 };
enum { MAX_PRODUCERS = 64 };

typedef struct consumer {
  uint64_t next_seq[MAX_PRODUCERS];
  uint64_t count[MAX_PRODUCERS];
  _Atomic int order_broken;
  pn_test_latch *done;
} consumer;

static void consumer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  consumer *c = state;
  if (pn_msg_type(msg) != MSG_TAGGED) {
    return;
  }
  uint64_t tag[2];
  assert_int_equal(pn_msg_size(msg), sizeof tag);
  memcpy(tag, pn_msg_data(msg), sizeof tag);
  assert_true(tag[0] < MAX_PRODUCERS);
  if (tag[1] != c->next_seq[tag[0]]) {
    atomic_store(&c->order_broken, 1);
  }
  c->next_seq[tag[0]] = tag[1] + 1;
  c->count[tag[0]]++;
  pn_test_latch_count_down(c->done);
}

typedef struct producer {
  pn_actor *to;
  uint64_t id;
  uint64_t total;
  uint64_t sent;
  uint64_t chunk;
} producer;

static void send_tagged(pn_actor *to, uint64_t id, uint64_t seq) {
  uint64_t tag[2] = {id, seq};
  PN_ASSERT_OK(pn_send(to, MSG_TAGGED, tag, sizeof tag));
}

/* An actor producer sends a seeded-size chunk per run and asks itself for
 * the next, so producers interleave with each other and with muting. */
static void producer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  producer *p = state;
  if (pn_msg_type(msg) != MSG_GO) {
    return;
  }
  for (uint64_t i = 0; i < p->chunk && p->sent < p->total; i++) {
    send_tagged(p->to, p->id, p->sent++);
  }
  if (p->sent < p->total) {
    PN_ASSERT_OK(pn_send(self, MSG_GO, NULL, 0));
  }
}

static void *thread_producer(void *arg) {
  producer *p = arg;
  for (; p->sent < p->total; p->sent++) {
    send_tagged(p->to, p->id, p->sent);
  }
  return NULL;
}

static void many_producers_lose_nothing(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() ^ 0x6d61696c626f78ull;
  pn_runtime *rt = pn_test_runtime(2);
  enum { THREADS = 4, ACTORS = 24 };
  uint64_t total_msgs = 0;
  producer ps[THREADS + ACTORS];
  for (uint64_t i = 0; i < THREADS + ACTORS; i++) {
    ps[i] = (producer){.id = i,
                       .total = 5000 + pn_test_rand(&rng) % 20000,
                       .chunk = 1 + pn_test_rand(&rng) % 200};
    total_msgs += ps[i].total;
  }
  pn_test_latch done;
  pn_test_latch_init(&done, total_msgs);
  consumer c;
  memset(&c, 0, sizeof c);
  c.done = &done;
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "consumer";
  cfg.handler = consumer_handler;
  cfg.state = &c;
  pn_actor *sink = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &sink));
  pn_actor *actors[ACTORS];
  cfg.name = "producer";
  cfg.handler = producer_handler;
  for (int i = 0; i < ACTORS; i++) {
    ps[THREADS + i].to = sink;
    cfg.state = &ps[THREADS + i];
    PN_ASSERT_OK(pn_spawn(rt, &cfg, &actors[i]));
  }
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ps[i].to = sink;
    pthread_create(&th[i], NULL, thread_producer, &ps[i]);
  }
  for (int i = 0; i < ACTORS; i++) {
    PN_ASSERT_OK(pn_send(actors[i], MSG_GO, NULL, 0));
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
  }
  assert_true(pn_test_latch_wait(&done, 60000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&c.order_broken), 0);
  for (int i = 0; i < THREADS + ACTORS; i++) {
    assert_int_equal(c.count[i], ps[i].total);
  }
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(sink, &st));
  assert_int_equal(st.processed, total_msgs + 1); /* + PN_MSG_STOPPED */
  pn_actor_release(sink);
  for (int i = 0; i < ACTORS; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
}

/* The main thread and an actor take turns: every message finds the actor
 * idle, so each one is an idle -> runnable -> idle transition. */
typedef struct turn {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  uint64_t handled;
} turn;

static void turn_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  turn *t = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    return;
  }
  pthread_mutex_lock(&t->lock);
  t->handled++;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->lock);
}

static bool wait_handled(turn *t, uint64_t target) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&t->lock);
  while (t->handled < target) {
    if (pthread_cond_timedwait(&t->cv, &t->lock, &deadline) != 0) {
      break;
    }
  }
  bool ok = t->handled >= target;
  pthread_mutex_unlock(&t->lock);
  return ok;
}

static void idle_busy_transitions_never_lose_a_wakeup(void **state) {
  (void)state;
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  rcfg.spin_us = 1; /* sleep almost at once: exercise the wake path */
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rcfg, &rt));
  turn t = {.handled = 0};
  pthread_mutex_init(&t.lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&t.cv, &ca);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = turn_handler;
  cfg.state = &t;
  pn_actor *a = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &a));
  for (uint64_t i = 1; i <= 20000; i++) {
    PN_ASSERT_OK(pn_send(a, 1, NULL, 0));
    if (!wait_handled(&t, i)) {
      fail_msg("message %llu was never handled (lost wakeup)",
               (unsigned long long)i);
    }
  }
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_true(st.runs >= 20000);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pthread_mutex_destroy(&t.lock);
  pthread_cond_destroy(&t.cv);
  pthread_condattr_destroy(&ca);
}

/* Two actors homed on different workers bounce a token: every hop wakes
 * the other worker through its inbox and, often, its idle wait. */
typedef struct hopper {
  pn_actor *peer;
  uint64_t limit;
  pn_test_latch *done;
} hopper;

static void hop_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  hopper *h = state;
  if (pn_msg_type(msg) != MSG_HOP) {
    return;
  }
  uint64_t k;
  memcpy(&k, pn_msg_data(msg), sizeof k);
  if (k >= h->limit) {
    pn_test_latch_count_down(h->done);
    return;
  }
  k++;
  PN_ASSERT_OK(pn_send(h->peer, MSG_HOP, &k, sizeof k));
}

static void cross_worker_hops_never_stall(void **state) {
  (void)state;
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  rcfg.spin_us = 1;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rcfg, &rt));
  pn_test_latch done;
  pn_test_latch_init(&done, 1);
  hopper h0 = {.limit = 20000, .done = &done};
  hopper h1 = {.limit = 20000, .done = &done};
  pn_actor *a0 = pn_test_spawn(rt, "hopper", hop_handler, &h0, 0);
  pn_actor *a1 = pn_test_spawn(rt, "hopper", hop_handler, &h1, 1);
  h0.peer = a1;
  h1.peer = a0;
  uint64_t zero = 0;
  PN_ASSERT_OK(pn_send(a0, MSG_HOP, &zero, sizeof zero));
  assert_true(pn_test_latch_wait(&done, 30000));
  /* The hoppers borrow each other's handles: release after shutdown. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30000000));
  pn_actor_release(a0);
  pn_actor_release(a1);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&done);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(many_producers_lose_nothing),
      cmocka_unit_test(idle_busy_transitions_never_lose_a_wakeup),
      cmocka_unit_test(cross_worker_hops_never_stall),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
