/* What the tests of actors/recovery.c share: a recorder of resolutions,
 * the limits every test starts from, senders of datagrams and
 * acknowledgements, and the fixture. No runtime and no clock: every `now`
 * is the test's. */
#ifndef PN_TESTS_UNIT_RECOVERY_TEST_H
#define PN_TESTS_UNIT_RECOVERY_TEST_H

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "actors/ackwin.h"
#include "actors/recovery.h"
#include "runtime/alloc.h"
#include "tests/support/seed.h"

#define US 1000ull
#define MS 1000000ull
#define T0 (1000 * MS) /* an arbitrary start, far from 0 */
#define ONE PN__CWND_ONE
#define ALL_BITS UINT64_MAX

/* --- helpers ------------------------------------------------------------- */

typedef struct resolution {
  uint64_t seq, fstart, now;
  pn__resolution res;
  bool acked;     /* ACKED or LATE */
  bool in_flight; /* the record's flag while the callback ran */
  bool suspect;   /* the same */
} resolution;

/* ACKED, SUSPECT and LATE go to log; final losses (LOST) to finals, so the
 * tests of loss detection see the declarations in order. */
typedef struct recorder {
  resolution log[2560];
  size_t n;
  resolution finals[2560];
  size_t nfinals;
} recorder;

static inline void record(void *ctx, const pn__sent *e, pn__resolution res,
                          uint64_t now) {
  recorder *rec = ctx;
  resolution x = {.seq = e->seq,
                  .fstart = e->fstart,
                  .now = now,
                  .res = res,
                  .acked = res == PN__RES_ACKED || res == PN__RES_LATE,
                  .in_flight = e->in_flight,
                  .suspect = e->suspect};
  /* a suspect stays recorded (its frames kept) until LATE or LOST */
  assert_int_equal(x.suspect, res == PN__RES_SUSPECT);
  if (res == PN__RES_LOST) {
    assert_true(rec->nfinals < sizeof rec->finals / sizeof rec->finals[0]);
    rec->finals[rec->nfinals++] = x;
    return;
  }
  assert_true(rec->n < sizeof rec->log / sizeof rec->log[0]);
  rec->log[rec->n++] = x;
}

/* The i-th resolution was seq, acknowledged (ACKED) or declared lost
 * (SUSPECT), no longer in flight, with the fstart send_eliciting() gave
 * it. */
static inline void expect_resolved(const recorder *rec, size_t i, uint64_t seq,
                                   bool acked) {
  assert_true(i < rec->n);
  assert_int_equal(rec->log[i].seq, seq);
  assert_int_equal(rec->log[i].res, acked ? PN__RES_ACKED : PN__RES_SUSPECT);
  assert_false(rec->log[i].in_flight);
  assert_int_equal(rec->log[i].fstart, seq * 10);
}

/* rto_min 5 ms, rto_max 1 s, rto_initial 100 ms. */
static inline pn__recovery_limits limits(uint32_t window) {
  return (pn__recovery_limits){.rto_min_ns = 5 * MS,
                               .rto_max_ns = 1000 * MS,
                               .rto_initial_ns = 100 * MS,
                               .window = window,
                               .paths = PN__REC_PATHS};
}

static inline void start(pn__recovery *r, uint32_t window) {
  pn__recovery_limits lim = limits(window);
  assert_int_equal(pn__recovery_init(r, &lim), PN_OK);
}

/* Sends one eliciting datagram (fstart = 10 x its sequence). */
static inline uint64_t send_eliciting(pn__recovery *r, uint64_t now) {
  assert_true(pn__recovery_room(r));
  uint64_t seq = r->next_seq;
  pn__sent *e = pn__recovery_sent(r, now, 1200, true, false, 0);
  assert_non_null(e);
  assert_int_equal(e->seq, seq);
  assert_int_equal(e->sent_ns, now);
  assert_true(e->in_flight);
  e->fstart = seq * 10;
  e->nframes = 1;
  return seq;
}

static inline void send_eliciting_n(pn__recovery *r, uint64_t now, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    (void)send_eliciting(r, now);
  }
}

/* Sends one datagram carrying only an acknowledgement: not recorded. */
static inline uint64_t send_ack_only(pn__recovery *r, uint64_t now) {
  uint64_t seq = r->next_seq;
  assert_null(pn__recovery_sent(r, now, 40, false, false, 0));
  assert_int_equal(r->next_seq, seq + 1);
  return seq;
}

/* The acknowledgement bit naming seq in an acknowledgement of ack. */
static inline uint64_t bit(uint64_t ack, uint64_t seq) {
  assert_true(seq < ack && ack - seq <= 64);
  return 1ull << (ack - 1 - seq);
}

static const uint64_t NO_BITS[2] = {0, 0};

/* Bits naming the n sequences just below ack. */
static inline uint64_t bits_below(uint64_t n) {
  return n >= 64 ? ALL_BITS : (1ull << n) - 1;
}

static inline uint32_t ack_at(pn__recovery *r, uint64_t seq, uint64_t bits,
                              uint64_t now, recorder *rec) {
  const uint64_t b[2] = {bits, 0};
  return pn__recovery_on_ack(r, seq, b, 0, now, record, rec);
}

/* Every test gets a zeroed pn__recovery from the fixture, whose teardown
 * frees the ring even when an assertion ends the test early. */
static inline int recovery_setup(void **state) {
  *state = calloc(1, sizeof(pn__recovery));
  return *state ? 0 : -1;
}

static inline int recovery_teardown(void **state) {
  pn__alloc_fail_at(0);
  pn__recovery_fini(*state);
  free(*state);
  return 0;
}

#endif
