/* actors/sendq.c: a peer's per-channel send queues, served round robin
 * one frame at a time. Within a channel, messages leave in the order they
 * were queued; a channel whose message has many fragments takes one turn
 * in each round, so the others' messages are not held behind it. Pure: no
 * runtime; the messages are the test's. A seeded random run checks the
 * order against a model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "actors/sendq.h"
#include "runtime/alloc.h"
#include "tests/support/seed.h"

static pn__outmsg msg(uint32_t channel, uint64_t seq, uint32_t frags) {
  return (pn__outmsg){.channel = channel, .seq = seq, .frag_count = frags};
}

/* Sends one frame of the next message; returns it. */
static pn__outmsg *frame(pn__sendq *q) {
  pn__outmsg *om = pn__sendq_peek(q);
  assert_non_null(om);
  om->next_frag++;
  pn__sendq_next(q, om->next_frag == om->frag_count);
  return om;
}

static void empty_queue(void **state) {
  (void)state;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, 4), PN_OK);
  assert_true(pn__sendq_empty(&q));
  assert_null(pn__sendq_peek(&q));
  assert_null(pn__sendq_pop_any(&q));
  pn__sendq_fini(&q);
  pn__sendq_fini(&q); /* safe twice */
}

/* One channel: FIFO, a many-fragment message whole before the next. */
static void one_channel_is_fifo(void **state) {
  (void)state;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, 1), PN_OK);
  pn__outmsg m[3] = {msg(0, 1, 1), msg(0, 2, 3), msg(0, 3, 1)};
  for (int i = 0; i < 3; i++) {
    pn__sendq_push(&q, &m[i]);
  }
  const uint64_t want[] = {1, 2, 2, 2, 3};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(frame(&q)->seq, want[i]);
  }
  assert_true(pn__sendq_empty(&q));
  pn__sendq_fini(&q);
}

/* A 2 MiB message (1,800 fragments) on channel 0, then small messages on
 * channels 1 and 2: each small one leaves within the first round, not
 * after the big one's last fragment. */
static void a_big_message_does_not_hold_back_other_channels(void **state) {
  (void)state;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, 3), PN_OK);
  pn__outmsg big = msg(0, 1, 1800), a = msg(1, 1, 1), b = msg(2, 1, 1),
             c = msg(1, 2, 1);
  pn__sendq_push(&q, &big);
  assert_ptr_equal(frame(&q), &big); /* the big one started alone */
  pn__sendq_push(&q, &a);
  pn__sendq_push(&q, &b);
  pn__sendq_push(&q, &c);
  /* Round: big, a (channel 1), b (channel 2), big, c, big, big... */
  assert_ptr_equal(frame(&q), &big);
  assert_ptr_equal(frame(&q), &a);
  assert_ptr_equal(frame(&q), &b);
  assert_ptr_equal(frame(&q), &big);
  assert_ptr_equal(frame(&q), &c);
  uint32_t left = 0;
  while (!pn__sendq_empty(&q)) {
    assert_ptr_equal(frame(&q), &big);
    left++;
  }
  assert_int_equal(left, 1800 - 3);
  assert_int_equal(big.next_frag, 1800);
  pn__sendq_fini(&q);
}

/* take(): the message held back leaves its queue and the turn stays with
 * its channel; push_front() puts it back at its channel's head. */
static void take_and_push_front(void **state) {
  (void)state;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, 2), PN_OK);
  pn__outmsg m1 = msg(0, 1, 1), m2 = msg(0, 2, 1), o = msg(1, 1, 1);
  pn__sendq_push(&q, &m1);
  pn__sendq_push(&q, &m2);
  pn__sendq_push(&q, &o);
  assert_ptr_equal(pn__sendq_take(&q), &m1);
  assert_ptr_equal(pn__sendq_peek(&q), &m2);
  assert_int_equal(q.messages, 2);
  pn__sendq_push_front(&q, &m1);
  assert_ptr_equal(pn__sendq_peek(&q), &m1);
  assert_ptr_equal(frame(&q), &m1);
  assert_ptr_equal(frame(&q), &o);
  assert_ptr_equal(frame(&q), &m2);
  assert_true(pn__sendq_empty(&q));
  /* Into an empty channel while another is queued: its turn is next. */
  m1.next_frag = o.next_frag = 0;
  pn__sendq_push(&q, &o);
  pn__sendq_push_front(&q, &m1);
  assert_ptr_equal(frame(&q), &m1);
  assert_ptr_equal(frame(&q), &o);
  /* Dropping everything. */
  m1.next_frag = m2.next_frag = o.next_frag = 0;
  pn__sendq_push(&q, &m1);
  pn__sendq_push(&q, &o);
  pn__sendq_push(&q, &m2);
  int n = 0;
  while (pn__sendq_pop_any(&q)) {
    n++;
  }
  assert_int_equal(n, 3);
  assert_true(pn__sendq_empty(&q));
  assert_null(pn__sendq_peek(&q));
  pn__sendq_fini(&q);
}

static bool fits_small(const pn__outmsg *om, void *ctx) {
  (void)ctx;
  return om->frag_count == 1;
}

/* peek_other(): when the turn's frame does not fit, the others' fill the
 * datagram, the turn staying put, so the turn's frame starts the next
 * one (and cannot be passed over for ever). */
static void others_fill_a_datagram(void **state) {
  (void)state;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, 4), PN_OK);
  pn__outmsg big = msg(0, 1, 3), a1 = msg(1, 1, 1), a2 = msg(1, 2, 1),
             b = msg(2, 1, 2), c = msg(3, 1, 1);
  pn__sendq_push(&q, &big);
  pn__sendq_push(&q, &a1);
  pn__sendq_push(&q, &a2);
  pn__sendq_push(&q, &b);
  pn__sendq_push(&q, &c);
  /* big's turn, and it "does not fit": a1 (channel 1) fits, then a2,
   * then (b has two fragments) c; then nothing. */
  assert_ptr_equal(pn__sendq_peek(&q), &big);
  pn__outmsg *om = pn__sendq_peek_other(&q, fits_small, NULL);
  assert_ptr_equal(om, &a1);
  pn__sendq_next_other(&q, om, true);
  assert_ptr_equal(pn__sendq_peek_other(&q, fits_small, NULL), &a2);
  pn__sendq_next_other(&q, &a2, true); /* channel 1 leaves the ring */
  assert_ptr_equal(pn__sendq_peek_other(&q, fits_small, NULL), &c);
  pn__sendq_next_other(&q, &c, true); /* channel 3, the last, leaves */
  assert_null(pn__sendq_peek_other(&q, fits_small, NULL));
  assert_int_equal(q.active, 2);
  /* The turn stayed with big; the round is big, b, big, b, big. */
  const pn__outmsg *want[] = {&big, &b, &big, &b, &big};
  for (size_t i = 0; i < 5; i++) {
    assert_ptr_equal(frame(&q), want[i]);
  }
  assert_true(pn__sendq_empty(&q));
  /* A frame from another that does not finish its message keeps it. */
  big.next_frag = b.next_frag = 0;
  pn__sendq_push(&q, &big);
  pn__sendq_push(&q, &b);
  assert_ptr_equal(pn__sendq_peek_other(&q, fits_small, NULL), NULL);
  b.frag_count = 1; /* now it "fits" */
  assert_ptr_equal(pn__sendq_peek_other(&q, fits_small, NULL), &b);
  pn__sendq_next_other(&q, &b, false);
  assert_int_equal(q.messages, 2);
  while (pn__sendq_pop_any(&q)) {
  }
  pn__sendq_fini(&q);
}

/* Random pushes and frames on 8 channels against a model: per channel,
 * frames leave in queue order, a message's fragments in order; every
 * channel with messages waits at most one round (a turn of each other
 * channel) for its next frame. */
static void random_against_a_model(void **state) {
  (void)state;
  enum { CH = 8, MSGS = 4000 };
  uint64_t rng = pn_test_seed() | 1;
  pn__sendq q;
  assert_int_equal(pn__sendq_init(&q, CH), PN_OK);
  static pn__outmsg m[MSGS];
  uint64_t next_seq[CH] = {0}, sent_seq[CH] = {0};
  uint64_t since_turn[CH] = {0}; /* frames of others since its last */
  uint32_t pushed = 0, frames = 0;
  while (pushed < MSGS || !pn__sendq_empty(&q)) {
    if (pushed < MSGS && (pn__sendq_empty(&q) || pn_test_rand(&rng) % 3 == 0)) {
      uint32_t c = (uint32_t)(pn_test_rand(&rng) % CH);
      m[pushed] = msg(c, ++next_seq[c], 1 + (uint32_t)(pn_test_rand(&rng) % 5));
      pn__sendq_push(&q, &m[pushed++]);
      continue;
    }
    pn__outmsg *om = frame(&q);
    frames++;
    uint32_t c = om->channel;
    /* Its channel's oldest unfinished message. */
    assert_true(om->seq == sent_seq[c] + 1);
    if (om->next_frag == om->frag_count) {
      sent_seq[c] = om->seq;
    }
    assert_true(since_turn[c] < CH); /* each other channel once at most */
    since_turn[c] = 0;
    for (uint32_t i = 0; i < CH; i++) {
      if (i != c && q.ch[i].active) {
        since_turn[i]++;
      } else if (i != c) {
        since_turn[i] = 0;
      }
    }
  }
  for (uint32_t c = 0; c < CH; c++) {
    assert_int_equal(sent_seq[c], next_seq[c]);
  }
  assert_true(frames >= MSGS);
  pn__sendq_fini(&q);
}

/* Out of memory at init: PN_ENOMEM, and fini is safe. */
static void init_without_memory(void **state) {
  (void)state;
  pn__sendq q;
  pn__alloc_fail_at(1);
  assert_int_equal(pn__sendq_init(&q, 4), PN_ENOMEM);
  pn__alloc_fail_at(0);
  pn__sendq_fini(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_queue),
      cmocka_unit_test(one_channel_is_fifo),
      cmocka_unit_test(a_big_message_does_not_hold_back_other_channels),
      cmocka_unit_test(take_and_push_front),
      cmocka_unit_test(others_fill_a_datagram),
      cmocka_unit_test(random_against_a_model),
      cmocka_unit_test(init_without_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
