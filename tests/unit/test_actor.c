/* Actors: spawn, send (copy and hand-over), stop, shutdown with messages in
 * flight, homing, per-pair FIFO and bad arguments. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/actor.h"
#include "runtime/clock.h"
#include "tests/support/test_support.h"

enum { MSG_VALUE = 1, MSG_FORWARD = 2, MSG_STOP_SELF = 3, MSG_BLOCK = 4 };

typedef struct counter {
  pn_test_latch *latch;
  pn_test_latch *gate; /* MSG_BLOCK waits on it */
  _Atomic uint64_t handled;
  _Atomic uint64_t sum;
  _Atomic int stopped_seen;
  _Atomic int worker_mismatch;
  uint64_t expect_next[8]; /* per-sender FIFO check */
  _Atomic int fifo_broken;
} counter;

static void counter_handler(pn_actor *self, void *state, const pn_msg *msg) {
  counter *c = state;
  switch (pn_msg_type(msg)) {
  case PN_MSG_STOPPED:
    assert_ptr_equal(pn_self(), self);
    atomic_fetch_add(&c->stopped_seen, 1);
    if (c->latch) {
      pn_test_latch_count_down(c->latch);
    }
    return;
  case MSG_VALUE: {
    uint64_t v;
    assert_int_equal(pn_msg_size(msg), sizeof v);
    memcpy(&v, pn_msg_data(msg), sizeof v);
    uint32_t sender = (uint32_t)(v >> 56);
    uint64_t seq = v & 0xFFFFFFFFFFFFFFull;
    if (sender < 8) {
      if (seq != c->expect_next[sender]) {
        atomic_store(&c->fifo_broken, 1);
      }
      c->expect_next[sender] = seq + 1;
    }
    atomic_fetch_add(&c->sum, seq);
    atomic_fetch_add(&c->handled, 1);
    return;
  }
  case MSG_BLOCK:
    assert_true(pn_test_latch_wait(c->gate, 30000));
    atomic_fetch_add(&c->handled, 1);
    return;
  case MSG_STOP_SELF:
    PN_ASSERT_OK(pn_actor_stop(self));
    /* Idempotent, and the stop waits for this handler to return. */
    PN_ASSERT_OK(pn_actor_stop(self));
    atomic_fetch_add(&c->handled, 1);
    return;
  default:
    atomic_fetch_add(&c->handled, 1);
    return;
  }
}

static pn_actor *spawn_counter(pn_runtime *rt, counter *c, int32_t home) {
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "counter";
  cfg.handler = counter_handler;
  cfg.state = c;
  cfg.home_worker = home;
  pn_actor *a = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &a));
  return a;
}

static void send_value(pn_actor *to, uint32_t sender, uint64_t seq) {
  uint64_t v = ((uint64_t)sender << 56) | seq;
  PN_ASSERT_OK(pn_send(to, MSG_VALUE, &v, sizeof v));
}

static void spawn_send_stop(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, 1);
  counter c = {.latch = &stopped};
  pn_actor *a = spawn_counter(rt, &c, -1);
  assert_true(pn_actor_id(a) >= 1);
  assert_ptr_equal(pn_actor_runtime(a), rt);
  for (uint64_t i = 0; i < 1000; i++) {
    send_value(a, 0, i);
  }
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 10000));
  /* Every message sent before the stop request was handled, in order. */
  assert_int_equal(atomic_load(&c.handled), 1000);
  assert_int_equal(atomic_load(&c.fifo_broken), 0);
  assert_int_equal(atomic_load(&c.stopped_seen), 1);
  /* The handler saw PN_MSG_STOPPED; the actor is marked stopped when it
   * returns, which shutdown waits for. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  PN_ASSERT_ERR(PN_ECLOSED, pn_send(a, MSG_VALUE, "x", 1));
  PN_ASSERT_ERR(PN_ECLOSED, pn_actor_stop(a));
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_int_equal(st.state, PN_ACTOR_STOPPED);
  assert_int_equal(st.processed, 1001); /* 1000 values and PN_MSG_STOPPED */
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&stopped);
}

static void self_stop_drops_later_messages(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(1);
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, 1);
  pn_test_latch gate;
  pn_test_latch_init(&gate, 1);
  counter c = {.latch = &stopped, .gate = &gate};
  pn_actor *a = spawn_counter(rt, &c, -1);
  /* The actor is held in its first handler while the rest is queued: the
   * stop takes effect after the second message and the other 50 are
   * dropped, not handled. */
  PN_ASSERT_OK(pn_send(a, MSG_BLOCK, NULL, 0));
  PN_ASSERT_OK(pn_send(a, MSG_STOP_SELF, NULL, 0));
  for (int i = 0; i < 50; i++) {
    PN_ASSERT_OK(pn_send(a, 99, NULL, 0));
  }
  pn_test_latch_count_down(&gate);
  assert_true(pn_test_latch_wait(&stopped, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&c.handled), 2);
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_int_equal(st.processed, 3);
  assert_int_equal(st.received, 52);
  assert_int_equal(st.dropped, 50);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&stopped);
  pn_test_latch_fini(&gate);
}

typedef struct buf_tracker {
  _Atomic int freed;
} buf_tracker;

static void tracked_free(void *data, void *ctx) {
  buf_tracker *t = ctx;
  free(data);
  atomic_fetch_add(&t->freed, 1);
}

static void handed_over_buffers_are_freed_once(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  counter c = {0};
  pn_actor *a = spawn_counter(rt, &c, -1);
  buf_tracker t = {0};
  for (int i = 0; i < 500; i++) {
    void *p = malloc(64);
    PN_ASSERT_OK(pn_send_buf(a, 7, p, 64, tracked_free, &t));
  }
  /* Left in the mailbox of an actor stopped by shutdown: freed too. */
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  assert_int_equal(atomic_load(&t.freed), 500);
  (void)c;
}

static void shutdown_with_messages_in_flight(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  pn_runtime *rt = pn_test_runtime(2);
  enum { N = 64 };
  counter cs[N];
  memset(cs, 0, sizeof cs);
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, N);
  pn_actor *actors[N];
  for (int i = 0; i < N; i++) {
    cs[i].latch = &stopped;
    actors[i] = spawn_counter(rt, &cs[i], -1);
  }
  uint64_t rng = seed;
  for (int i = 0; i < 20000; i++) {
    pn_actor *to = actors[pn_test_rand(&rng) % N];
    PN_ASSERT_OK(pn_send(to, 99, &i, sizeof i));
  }
  for (int i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  /* Shutdown stops everyone with thousands of messages still queued. */
  pn_test_runtime_end(rt);
  assert_true(pn_test_latch_wait(&stopped, 0));
  for (int i = 0; i < N; i++) {
    assert_int_equal(atomic_load(&cs[i].stopped_seen), 1);
  }
  pn_test_latch_fini(&stopped);
}

typedef struct homed {
  _Atomic int wrong_worker;
  pn_test_latch *latch;
  pthread_t first;
  _Atomic int have_first;
} homed;

static void homed_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  homed *h = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    return;
  }
  /* Every run happens on the same thread: the home worker's. */
  if (!atomic_exchange(&h->have_first, 1)) {
    h->first = pthread_self();
  } else if (!pthread_equal(h->first, pthread_self())) {
    atomic_store(&h->wrong_worker, 1);
  }
  pn_test_latch_count_down(h->latch);
}

static void homed_actors_stay_home(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch latch;
  pn_test_latch_init(&latch, 4000);
  homed h0 = {.latch = &latch};
  homed h1 = {.latch = &latch};
  pn_actor *a0 = pn_test_spawn(rt, "homed", homed_handler, &h0, 0);
  pn_actor *a1 = pn_test_spawn(rt, "homed", homed_handler, &h1, 1);
  for (int i = 0; i < 2000; i++) {
    PN_ASSERT_OK(pn_send(a0, 1, NULL, 0));
    PN_ASSERT_OK(pn_send(a1, 1, NULL, 0));
  }
  assert_true(pn_test_latch_wait(&latch, 10000));
  assert_int_equal(atomic_load(&h0.wrong_worker), 0);
  assert_int_equal(atomic_load(&h1.wrong_worker), 0);
  assert_false(pthread_equal(h0.first, h1.first));
  pn_actor_release(a0);
  pn_actor_release(a1);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&latch);
}

static void noop_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

static void bad_arguments_change_nothing(void **state) {
  (void)state;
  pn_runtime *rt = NULL;
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_create(&cfg, NULL));
  cfg.size = 4;
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_create(&cfg, &rt));
  cfg = (pn_runtime_config)PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 5000;
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_create(&cfg, &rt));
  cfg = (pn_runtime_config)PN_RUNTIME_CONFIG_INIT;
  cfg.io = PN_IO_URING;
  /* Forced io_uring: works where the kernel and sandbox allow it, else a
   * clear PN_ENOTSUP. */
  pn_err uring = pn_runtime_create(&cfg, &rt);
  assert_true(uring == PN_OK || uring == PN_ENOTSUP);
  if (uring == PN_OK) {
    assert_string_equal(pn_runtime_io_name(rt), "uring");
    PN_ASSERT_OK(pn_runtime_destroy(rt));
    rt = NULL;
  }
  cfg.io = (pn_io_backend)42;
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_create(&cfg, &rt));
  assert_null(rt);

  rt = pn_test_runtime(2);
  assert_int_equal(pn_runtime_workers(rt), 2);
  const char *io = pn_runtime_io_name(rt);
  assert_true(strcmp(io, "epoll") == 0 || strcmp(io, "uring") == 0);
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  pn_actor *a = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(rt, &acfg, &a)); /* no handler */
  acfg.handler = noop_handler;
  acfg.home_worker = 2;
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(rt, &acfg, &a));
  acfg.home_worker = -2;
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(rt, &acfg, &a));
  acfg.home_worker = -1;
  acfg.size = 3;
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(rt, &acfg, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(NULL, &acfg, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_spawn(rt, NULL, &a));
  assert_null(a);
  acfg.size = sizeof acfg;
  /* A long name is truncated, not overflowed. */
  acfg.name = "a-name-that-is-much-longer-than-thirty-one-bytes";
  PN_ASSERT_OK(pn_spawn(rt, &acfg, &a));
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_int_equal(strlen(st.name), 31);

  PN_ASSERT_ERR(PN_EINVAL, pn_send(NULL, 1, NULL, 0));
  PN_ASSERT_ERR(PN_EINVAL, pn_send(a, PN_MSG_TYPE_RESERVED, NULL, 0));
  PN_ASSERT_ERR(PN_EINVAL, pn_send(a, PN_MSG_STOPPED, NULL, 0));
  PN_ASSERT_ERR(PN_EINVAL, pn_send(a, 1, NULL, 5));
  char big[16];
  PN_ASSERT_ERR(PN_ERANGE, pn_send(a, 1, big, (size_t)PN_MSG_COPY_MAX + 1));
  PN_ASSERT_ERR(PN_EINVAL, pn_send_buf(NULL, 1, big, 1, NULL, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_send_buf(a, PN_MSG_STOPPED, big, 1, NULL, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stop(NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_stats_get(NULL, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_actor_stats_get(a, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_shutdown(NULL, 0));
  PN_ASSERT_ERR(PN_EINVAL, pn_runtime_destroy(NULL));
  /* Nothing was queued by the failed calls. */
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_int_equal(st.received, 0);

  /* A handle still held makes destroy refuse, and change nothing. */
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 1000000));
  PN_ASSERT_ERR(PN_ECLOSED, pn_spawn(rt, &acfg, NULL));
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  pn_actor_release(a);
  pn_test_runtime_end(rt);
}

typedef struct fifo_sender {
  pn_actor *to;
  uint32_t id;
  uint64_t count;
} fifo_sender;

static void *fifo_thread(void *arg) {
  fifo_sender *s = arg;
  for (uint64_t i = 0; i < s->count; i++) {
    send_value(s->to, s->id, i);
  }
  return NULL;
}

static void per_pair_fifo_from_threads(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  counter c = {0};
  pn_actor *a = spawn_counter(rt, &c, -1);
  enum { T = 4, PER = 50000 };
  pthread_t th[T];
  fifo_sender s[T];
  for (uint32_t i = 0; i < T; i++) {
    s[i] = (fifo_sender){.to = a, .id = i, .count = PER};
    pthread_create(&th[i], NULL, fifo_thread, &s[i]);
  }
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
  }
  pn_test_latch stopped;
  pn_test_latch_init(&stopped, 1);
  c.latch = &stopped;
  PN_ASSERT_OK(pn_actor_stop(a));
  assert_true(pn_test_latch_wait(&stopped, 20000));
  assert_int_equal(atomic_load(&c.handled), T * PER);
  assert_int_equal(atomic_load(&c.fifo_broken), 0);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&stopped);
}

static void shutdown_times_out_on_a_stuck_handler(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch gate;
  pn_test_latch_init(&gate, 1);
  counter c = {.gate = &gate};
  pn_actor *a = spawn_counter(rt, &c, -1);
  PN_ASSERT_OK(pn_send(a, MSG_BLOCK, NULL, 0));
  /* The handler holds on: shutdown gives up after its timeout, and the
   * actor that is still alive shows it is stopping. */
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_runtime_shutdown(rt, 2000));
  pn_runtime_stats rs;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &rs));
  assert_int_equal(rs.actors_alive, 1);
  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(a, &st));
  assert_string_equal(st.name, "counter");
  assert_int_equal(st.state, PN_ACTOR_STOPPING);
  pn_test_latch_count_down(&gate);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&gate);
}

/* A handler that sends to an actor and then releases its only handle to
 * it: the send waits in the worker's outbox until the run ends, so the
 * release has to deliver it first, or the outbox pushes into an actor
 * that was freed (the runtime's actor count then goes below zero). The
 * target stops while the handler waits between its send and release. */
typedef struct releaser {
  pn_actor *target; /* its only handle, released by the handler */
  pn_test_latch *sent, *go, *done;
  _Atomic int drained; /* the target held by nothing but this handle */
} releaser;

static void releaser_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  releaser *r = state;
  if (pn_msg_type(msg) != MSG_VALUE) {
    return;
  }
  uint64_t v = 7;
  PN_ASSERT_OK(pn_send(r->target, MSG_VALUE, &v, sizeof v));
  pn_test_latch_count_down(r->sent);
  if (pn_test_latch_wait(r->go, 20000)) {
    /* Bounded: the stopped target's last run gives up its reference
     * right after its handler returned. */
    uint64_t deadline = pn__now_ns() + 20000000000u;
    while (atomic_load(&r->target->refs) != 1 && pn__now_ns() < deadline) {
      sched_yield();
    }
    atomic_store(&r->drained, atomic_load(&r->target->refs) == 1);
  }
  pn_actor_release(r->target);
  r->target = NULL;
  pn_test_latch_count_down(r->done);
}

static void send_then_release_in_a_handler(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch stopped, sent, go, done;
  pn_test_latch_init(&stopped, 1);
  pn_test_latch_init(&sent, 1);
  pn_test_latch_init(&go, 1);
  pn_test_latch_init(&done, 1);
  counter c = {.latch = &stopped};
  releaser r = {.sent = &sent, .go = &go, .done = &done};
  r.target = spawn_counter(rt, &c, 1);
  pn_actor *target = r.target; /* not a handle of ours: r's */
  pn_actor *a = pn_test_spawn(rt, "releaser", releaser_handler, &r, 0);
  uint64_t v = 1;
  PN_ASSERT_OK(pn_send(a, MSG_VALUE, &v, sizeof v));
  assert_true(pn_test_latch_wait(&sent, 20000));
  PN_ASSERT_OK(pn_actor_stop(target)); /* r's handle keeps it alive */
  assert_true(pn_test_latch_wait(&stopped, 20000));
  pn_test_latch_count_down(&go);
  assert_true(pn_test_latch_wait(&done, 30000));
  assert_true(atomic_load(&r.drained));
  pn_actor_release(a);
  pn_test_runtime_end(rt); /* fails on a freed actor's second release */
  assert_int_equal(atomic_load(&c.handled), 0); /* sent after it stopped */
  pn_test_latch_fini(&stopped);
  pn_test_latch_fini(&sent);
  pn_test_latch_fini(&go);
  pn_test_latch_fini(&done);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(spawn_send_stop),
      cmocka_unit_test(self_stop_drops_later_messages),
      cmocka_unit_test(handed_over_buffers_are_freed_once),
      cmocka_unit_test(shutdown_with_messages_in_flight),
      cmocka_unit_test(homed_actors_stay_home),
      cmocka_unit_test(bad_arguments_change_nothing),
      cmocka_unit_test(per_pair_fifo_from_threads),
      cmocka_unit_test(shutdown_times_out_on_a_stuck_handler),
      cmocka_unit_test(send_then_release_in_a_handler),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
