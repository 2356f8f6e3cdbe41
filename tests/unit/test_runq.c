/* Run queues: the local ring (owner push/pop, thieves steal half) and the
 * inject queue (lock-free push, try-locked pops), alone and under
 * concurrent use where every entry must come out exactly once. */
#include <stdlib.h>
#include <string.h>

#include "runtime/actor.h"
#include "runtime/runq.h"
#include "tests/support/test_support.h"

/* Ring entries are never dereferenced: small integers stand in for actors. */
static pn_actor *fake(uintptr_t i) { return (pn_actor *)(i << 6); }
static uintptr_t unfake(pn_actor *a) { return (uintptr_t)a >> 6; }

static pn__runq *new_runq(void) {
  pn__runq *q = aligned_alloc(64, sizeof *q);
  assert_non_null(q);
  memset(q, 0, sizeof *q);
  return q;
}

static void ring_is_fifo_and_bounded(void **state) {
  (void)state;
  pn__runq *q = new_runq();
  assert_null(pn__runq_pop(q));
  for (uintptr_t i = 1; i <= PN__RUNQ_SIZE; i++) {
    assert_true(pn__runq_push(q, fake(i)));
  }
  assert_false(pn__runq_push(q, fake(999)));
  assert_int_equal(pn__runq_len(q), PN__RUNQ_SIZE);
  for (uintptr_t i = 1; i <= PN__RUNQ_SIZE; i++) {
    assert_int_equal(unfake(pn__runq_pop(q)), i);
  }
  assert_null(pn__runq_pop(q));
  free(q);
}

static void steal_takes_the_oldest_half(void **state) {
  (void)state;
  pn__runq *victim = new_runq();
  pn__runq *thief = new_runq();
  for (uintptr_t i = 1; i <= 10; i++) {
    assert_true(pn__runq_push(victim, fake(i)));
  }
  assert_int_equal(pn__runq_steal(victim, thief), 5);
  for (uintptr_t i = 1; i <= 5; i++) {
    assert_int_equal(unfake(pn__runq_pop(thief)), i);
  }
  assert_int_equal(unfake(pn__runq_pop(victim)), 6);
  assert_int_equal(pn__runq_steal(victim, thief), 2); /* 4 left: half */
  free(victim);
  free(thief);
}

typedef struct steal_ctx {
  pn__runq *victim;
  pn__runq *mine;
  uint8_t *seen;
  _Atomic int stop;
  _Atomic int dup;
  _Atomic uint64_t taken;
} steal_ctx;

static void mark(steal_ctx *c, pn_actor *a) {
  uintptr_t i = unfake(a);
  if (c->seen[i]++) {
    atomic_store(&c->dup, 1);
  }
  atomic_fetch_add(&c->taken, 1);
}

static void *thief_main(void *arg) {
  steal_ctx *c = arg;
  pn__runq *mine = new_runq();
  for (;;) {
    int stopping = atomic_load(&c->stop);
    if (pn__runq_steal(c->victim, mine)) {
      pn_actor *a;
      while ((a = pn__runq_pop(mine))) {
        mark(c, a);
      }
    } else if (stopping) {
      break;
    }
  }
  free(mine);
  return NULL;
}

static void concurrent_steals_take_each_entry_once(void **state) {
  (void)state;
  enum { N = 200000 };
  steal_ctx c = {.victim = new_runq()};
  /* Two bitmaps: the owner's and the thief's; an entry in both is a dup. */
  uint8_t *owner_seen = calloc(N + 1, 1);
  c.seen = calloc(N + 1, 1);
  assert_non_null(owner_seen);
  assert_non_null(c.seen);
  pthread_t th;
  pthread_create(&th, NULL, thief_main, &c);
  uint64_t rng = pn_test_seed();
  uint64_t owner_taken = 0;
  for (uintptr_t i = 1; i <= N;) {
    uint64_t burst = 1 + pn_test_rand(&rng) % 64;
    for (uint64_t k = 0; k < burst && i <= N; k++) {
      if (pn__runq_push(c.victim, fake(i))) {
        i++;
      }
    }
    uint64_t pops = pn_test_rand(&rng) % 48;
    for (uint64_t k = 0; k < pops; k++) {
      pn_actor *a = pn__runq_pop(c.victim);
      if (!a) {
        break;
      }
      owner_seen[unfake(a)]++;
      owner_taken++;
    }
  }
  pn_actor *a;
  while ((a = pn__runq_pop(c.victim))) {
    owner_seen[unfake(a)]++;
    owner_taken++;
  }
  atomic_store(&c.stop, 1);
  pthread_join(th, NULL);
  assert_int_equal(atomic_load(&c.dup), 0);
  assert_int_equal(owner_taken + atomic_load(&c.taken), N);
  for (uintptr_t i = 1; i <= N; i++) {
    assert_int_equal(owner_seen[i] + c.seen[i], 1);
  }
  free(owner_seen);
  free(c.seen);
  free(c.victim);
}

typedef struct inject_ctx {
  pn__injectq q;
  pn_actor *actors;
  uint32_t per_producer;
  _Atomic uint32_t producers_done;
  _Atomic uint32_t *seen;
  _Atomic uint64_t popped;
  uint32_t base;
} inject_ctx;

typedef struct inject_producer {
  inject_ctx *ctx;
  uint32_t first;
} inject_producer;

static void *inject_push_main(void *arg) {
  inject_producer *p = arg;
  for (uint32_t i = 0; i < p->ctx->per_producer; i++) {
    pn__injectq_push(&p->ctx->q, &p->ctx->actors[p->first + i]);
  }
  atomic_fetch_add(&p->ctx->producers_done, 1);
  return NULL;
}

static void *inject_pop_main(void *arg) {
  inject_ctx *c = arg;
  for (;;) {
    uint32_t done = atomic_load(&c->producers_done);
    pn_actor *a = pn__injectq_pop(&c->q);
    if (a) {
      atomic_fetch_add(&c->seen[a - c->actors], 1);
      atomic_fetch_add(&c->popped, 1);
    } else if (done == 3 && pn__injectq_len(&c->q) == 0) {
      break;
    }
  }
  return NULL;
}

static void inject_queue_many_producers_many_consumers(void **state) {
  (void)state;
  enum { PRODUCERS = 3, CONSUMERS = 2, PER = 20000 };
  inject_ctx c = {.per_producer = PER};
  pn__injectq_init(&c.q);
  c.actors = aligned_alloc(64, sizeof(pn_actor) * PRODUCERS * PER);
  c.seen = calloc(PRODUCERS * PER, sizeof *c.seen);
  assert_non_null(c.actors);
  assert_non_null(c.seen);
  pthread_t prod[PRODUCERS];
  pthread_t cons[CONSUMERS];
  inject_producer ps[PRODUCERS];
  for (int i = 0; i < CONSUMERS; i++) {
    pthread_create(&cons[i], NULL, inject_pop_main, &c);
  }
  for (uint32_t i = 0; i < PRODUCERS; i++) {
    ps[i] = (inject_producer){.ctx = &c, .first = i * PER};
    pthread_create(&prod[i], NULL, inject_push_main, &ps[i]);
  }
  for (int i = 0; i < PRODUCERS; i++) {
    pthread_join(prod[i], NULL);
  }
  for (int i = 0; i < CONSUMERS; i++) {
    pthread_join(cons[i], NULL);
  }
  assert_int_equal(atomic_load(&c.popped), PRODUCERS * PER);
  for (uint32_t i = 0; i < PRODUCERS * PER; i++) {
    assert_int_equal(atomic_load(&c.seen[i]), 1);
  }
  assert_null(pn__injectq_pop(&c.q));
  pn__injectq_fini(&c.q);
  free(c.actors);
  free(c.seen);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ring_is_fifo_and_bounded),
      cmocka_unit_test(steal_takes_the_oldest_half),
      cmocka_unit_test(concurrent_steals_take_each_entry_once),
      cmocka_unit_test(inject_queue_many_producers_many_consumers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
