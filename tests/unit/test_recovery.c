/* actors/recovery.c alone, on one path: the round-trip estimate
 * (RFC 6298), loss by acknowledgement gap and by RTO, suspects that end
 * LATE or LOST, the congestion window (Reno, RFC 7661's unused window, the
 * queueing-delay cut, the undo of a spurious cut) and the ring of
 * datagrams in flight, each driven with hand-chosen times and checked
 * against values worked out from the RFCs and the code's integer
 * arithmetic. Several paths: test_recovery_paths.c; a seeded sender and
 * receiver: test_recovery_sim.c.
 */
#include "tests/unit/recovery_test.h"

/* --- init ---------------------------------------------------------------- */

static void init_and_fini(void **state) {
  pn__recovery *r = *state;
  start(r, 64);
  assert_int_equal(r->next_seq, 1);
  assert_int_equal(r->oldest, 1);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->rto_ns, 100 * MS);
  assert_int_equal(pn__recovery_rto(r), 100 * MS);
  assert_int_equal(r->srtt_ns, 0);
  assert_int_equal(r->rttvar_ns, 0);
  assert_int_equal(r->min_rtt_ns, 0);
  assert_int_equal(r->path[0].backoff, 0);
  assert_int_equal(pn__recovery_cwnd(r), PN__CWND_INITIAL);
  assert_int_equal(r->path[0].cwnd, PN__CWND_INITIAL * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), 0);
  assert_true(pn__recovery_can_send(r, 0));
  assert_int_equal(pn__recovery_advance(r, 77), 77);
  assert_int_equal(pn__recovery_rto_deadline(r), 0);
  pn__recovery_fini(r);
  assert_null(r->sent);
  pn__recovery_fini(r);

  pn__recovery zeroed = {0};
  pn__recovery_fini(&zeroed);
}

static void init_out_of_memory(void **state) {
  pn__recovery *r = *state;
  pn__recovery_limits lim = limits(64);
  pn__alloc_fail_at(1);
  assert_int_equal(pn__recovery_init(r, &lim), PN_ENOMEM);
  assert_true(pn__alloc_failed());
  assert_null(r->sent);
  pn__recovery_fini(r);
  pn__alloc_fail_at(0);
  assert_int_equal(pn__recovery_init(r, &lim), PN_OK);
}

/* --- round trip (RFC 6298) ----------------------------------------------- */

static void rtt_first_sample_then_smoothing(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR). */
  assert_int_equal(send_eliciting(r, T0), 1);
  assert_int_equal(ack_at(r, 1, 0, T0 + 40 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 1);
  expect_resolved(&rec, 0, 1, true);
  assert_int_equal(rec.log[0].now, T0 + 40 * MS);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->srtt_ns, 40 * MS);
  assert_int_equal(r->rttvar_ns, 20 * MS);
  assert_int_equal(r->min_rtt_ns, 40 * MS);
  assert_int_equal(r->rto_ns, 120 * MS);
  assert_int_equal(pn__recovery_rto(r), 120 * MS);

  /* 2.3: RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R| (the old SRTT), then
   * SRTT = 7/8 SRTT + 1/8 R. R = 80: |40 - 80| = 40, RTTVAR 25, SRTT 45,
   * RTO 45 + 100. (80 is exactly min + max(2 ms, min): no delay cut.) */
  (void)send_eliciting(r, T0 + 100 * MS);
  assert_int_equal(ack_at(r, 2, 0, T0 + 180 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->srtt_ns, 45 * MS);
  assert_int_equal(r->rttvar_ns, 25 * MS);
  assert_int_equal(r->rto_ns, 145 * MS);
  assert_int_equal(r->min_rtt_ns, 40 * MS);

  /* R = 20: |45 - 20| = 25, RTTVAR (75 + 25) / 4 = 25, SRTT 335 / 8. */
  (void)send_eliciting(r, T0 + 200 * MS);
  assert_int_equal(ack_at(r, 3, 0, T0 + 220 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->srtt_ns, 41875000);
  assert_int_equal(r->rttvar_ns, 25 * MS);
  assert_int_equal(r->rto_ns, 41875000 + 100 * MS);
  assert_int_equal(r->min_rtt_ns, 20 * MS);

  /* R = 20 ms + 1 ns, where the integer divisions truncate:
   * d = 21874999, RTTVAR (75000000 + 21874999) / 4 = 24218749,
   * SRTT (7 x 41875000 + 20000001) / 8 = 39140625. */
  (void)send_eliciting(r, T0 + 300 * MS);
  assert_int_equal(ack_at(r, 4, 0, T0 + 320 * MS + 1, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->rttvar_ns, 24218749);
  assert_int_equal(r->srtt_ns, 39140625);
  assert_int_equal(r->rto_ns, 39140625 + 4 * 24218749);
  assert_int_equal(r->min_rtt_ns, 20 * MS);
  assert_int_equal(rec.n, 4);
  pn__recovery_fini(r);
}

static void rto_granularity_floor_and_clamps(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};

  /* 4 RTTVAR below G (1 ms): RTO = SRTT + 1 ms. */
  pn__recovery_limits lim = limits(64);
  lim.rto_min_ns = 1 * US;
  assert_int_equal(pn__recovery_init(r, &lim), PN_OK);
  (void)send_eliciting(r, T0);
  (void)ack_at(r, 1, 0, T0 + 200 * US, &rec);
  assert_int_equal(r->srtt_ns, 200 * US);
  assert_int_equal(r->rttvar_ns, 100 * US);
  assert_int_equal(r->rto_ns, 1200 * US);
  (void)send_eliciting(r, T0 + 10 * MS);
  (void)ack_at(r, 2, 0, T0 + 10 * MS + 200 * US, &rec);
  assert_int_equal(r->srtt_ns, 200 * US);
  assert_int_equal(r->rttvar_ns, 75 * US);
  assert_int_equal(r->rto_ns, 1200 * US);
  pn__recovery_fini(r);

  /* The same sample under rto_min 5 ms. */
  start(r, 64);
  (void)send_eliciting(r, T0);
  (void)ack_at(r, 1, 0, T0 + 200 * US, &rec);
  assert_int_equal(r->srtt_ns, 200 * US);
  assert_int_equal(r->rto_ns, 5 * MS);
  assert_int_equal(pn__recovery_rto(r), 5 * MS);
  pn__recovery_fini(r);

  /* 1.5 s + 4 x 0.75 s = 4.5 s, above rto_max 1 s. */
  start(r, 64);
  (void)send_eliciting(r, T0);
  (void)ack_at(r, 1, 0, T0 + 1500 * MS, &rec);
  assert_int_equal(r->srtt_ns, 1500 * MS);
  assert_int_equal(r->rttvar_ns, 750 * MS);
  assert_int_equal(r->rto_ns, 1000 * MS);
  assert_int_equal(pn__recovery_rto(r), 1000 * MS);
  pn__recovery_fini(r);
}

static void ack_delay_is_subtracted(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* 50 ms round trip, 10 ms of it held by the receiver: sample 40 ms. */
  (void)send_eliciting(r, T0);
  assert_int_equal(
      pn__recovery_on_ack(r, 1, NO_BITS, 10000, T0 + 50 * MS, record, &rec),
      PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->srtt_ns, 40 * MS);
  assert_int_equal(r->rttvar_ns, 20 * MS);
  assert_int_equal(r->min_rtt_ns, 40 * MS);

  /* A hold longer than the round trip is not subtracted (it would go
   * below zero): the sample is the raw 30 ms. SRTT (280 + 30) / 8,
   * RTTVAR (60 + 10) / 4. */
  (void)send_eliciting(r, T0 + 100 * MS);
  assert_int_equal(
      pn__recovery_on_ack(r, 2, NO_BITS, 50000, T0 + 130 * MS, record, &rec),
      PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->srtt_ns, 38750000);
  assert_int_equal(r->rttvar_ns, 17500000);
  assert_int_equal(r->min_rtt_ns, 30 * MS);

  /* Nor one equal to it (the sample would be 0): raw 20 ms.
   * d = 18.75 ms, RTTVAR (52.5 + 18.75) / 4, SRTT (271.25 + 20) / 8. */
  (void)send_eliciting(r, T0 + 200 * MS);
  assert_int_equal(
      pn__recovery_on_ack(r, 3, NO_BITS, 20000, T0 + 220 * MS, record, &rec),
      PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->rttvar_ns, 17812500);
  assert_int_equal(r->srtt_ns, 36406250);
  assert_int_equal(r->min_rtt_ns, 20 * MS);
  pn__recovery_fini(r);
}

static void rtt_only_from_eliciting_in_flight(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* The top of the acknowledgement carried only an acknowledgement: the
   * eliciting datagram below it is resolved, but no sample is taken. */
  assert_int_equal(send_eliciting(r, T0), 1);
  assert_int_equal(send_ack_only(r, T0), 2);
  assert_int_equal(r->in_flight, 1);
  assert_int_equal(ack_at(r, 2, bit(2, 1), T0 + 10 * MS, &rec), PN__ACK_NEW);
  assert_int_equal(rec.n, 1);
  expect_resolved(&rec, 0, 1, true);
  assert_int_equal(r->srtt_ns, 0);
  assert_int_equal(r->min_rtt_ns, 0);
  assert_int_equal(r->rto_ns, 100 * MS);
  assert_int_equal(r->last_ack_ns, T0 + 10 * MS);

  /* Only an unrecorded datagram acknowledged: nothing at all. */
  (void)send_ack_only(r, T0 + 15 * MS);
  assert_int_equal(ack_at(r, 3, 0, T0 + 16 * MS, &rec), 0);
  assert_int_equal(rec.n, 1);
  assert_int_equal(r->last_ack_ns, T0 + 10 * MS);

  /* Declared lost by the RTO, then acknowledged late: it arrived after
   * all (LATE, and the backoff goes), but gives no sample. */
  assert_int_equal(send_eliciting(r, T0 + 20 * MS), 4);
  assert_true(pn__recovery_on_rto(r, T0 + 120 * MS, record, &rec));
  assert_int_equal(rec.n, 2);
  expect_resolved(&rec, 1, 4, false);
  assert_int_equal(r->path[0].backoff, 1);
  assert_int_equal(ack_at(r, 4, 0, T0 + 130 * MS, &rec), PN__ACK_NEW);
  assert_int_equal(rec.n, 3);
  assert_int_equal(rec.log[2].res, PN__RES_LATE);
  assert_int_equal(rec.log[2].seq, 4);
  assert_int_equal(r->srtt_ns, 0);
  assert_int_equal(r->path[0].backoff, 0);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(r->late, 1);
  assert_int_equal(rec.nfinals, 0);

  /* An eliciting datagram in flight: a 40 ms sample, and the backoff goes. */
  assert_int_equal(send_eliciting(r, T0 + 200 * MS), 5);
  assert_int_equal(ack_at(r, 5, 0, T0 + 240 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->srtt_ns, 40 * MS);
  assert_int_equal(r->path[0].backoff, 0);
  pn__recovery_fini(r);
}

/* --- acknowledgements ----------------------------------------------------- */

static void ack_bits_resolve_named_datagrams(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* 10 with 9, 7 and 4 named (bits 0, 2 and 5): those four acknowledged,
   * newest first; then the gap rule (3 below the largest, 10) declares 1,
   * 2, 3, 5 and 6 lost, oldest first. 8 stays in flight. */
  send_eliciting_n(r, T0, 10);
  uint64_t bits = bit(10, 9) | bit(10, 7) | bit(10, 4);
  assert_int_equal(bits, 0x25);
  assert_int_equal(ack_at(r, 10, bits, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 9);
  static const uint64_t order[] = {10, 9, 7, 4, 1, 2, 3, 5, 6};
  for (size_t i = 0; i < 9; i++) {
    expect_resolved(&rec, i, order[i], i < 4);
    assert_int_equal(rec.log[i].now, T0 + 10 * MS);
  }
  assert_int_equal(r->in_flight, 1);
  assert_true(r->sent[8 & r->sent_mask].in_flight);
  assert_int_equal(r->largest_acked, 10);
  pn__recovery_fini(r);

  /* All 64 bits: 65 datagrams in one acknowledgement, 65 down to 1. */
  rec.n = 0;
  start(r, 64);
  send_eliciting_n(r, T0, 65);
  assert_int_equal(ack_at(r, 65, ALL_BITS, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 65);
  for (size_t i = 0; i < 65; i++) {
    expect_resolved(&rec, i, 65 - i, true);
  }
  assert_int_equal(r->in_flight, 0);
  pn__recovery_fini(r);
}

static void acks_of_unsent_and_duplicates_ignored(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  send_eliciting_n(r, T0, 3);

  /* Sequence 0 is never sent; 4 and above not yet: ignored whole (a
   * bogus largest would otherwise declare everything lost). */
  assert_int_equal(ack_at(r, 0, ALL_BITS, T0 + 10 * MS, &rec), 0);
  assert_int_equal(ack_at(r, 4, ALL_BITS, T0 + 10 * MS, &rec), 0);
  assert_int_equal(ack_at(r, 1000, 0, T0 + 10 * MS, &rec), 0);
  assert_int_equal(ack_at(r, UINT64_MAX, ALL_BITS, T0 + 10 * MS, &rec), 0);
  assert_int_equal(rec.n, 0);
  assert_int_equal(r->in_flight, 3);
  assert_int_equal(r->largest_acked, 0);
  assert_int_equal(r->srtt_ns, 0);
  assert_int_equal(r->last_ack_ns, 0);

  /* Bits reaching below sequence 1 name nothing. */
  assert_int_equal(ack_at(r, 2, ALL_BITS, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 2);
  expect_resolved(&rec, 0, 2, true);
  expect_resolved(&rec, 1, 1, true);
  assert_int_equal(r->in_flight, 1);
  assert_int_equal(r->srtt_ns, 10 * MS);

  /* The same acknowledgement again: nothing new, no sample. */
  assert_int_equal(ack_at(r, 2, ALL_BITS, T0 + 30 * MS, &rec), 0);
  assert_int_equal(ack_at(r, 1, 0, T0 + 30 * MS, &rec), 0);
  assert_int_equal(rec.n, 2);
  assert_int_equal(r->in_flight, 1);
  assert_int_equal(r->srtt_ns, 10 * MS);
  assert_int_equal(r->last_ack_ns, T0 + 10 * MS);

  assert_int_equal(ack_at(r, 3, 0, T0 + 40 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  expect_resolved(&rec, 2, 3, true);
  assert_int_equal(r->in_flight, 0);
  pn__recovery_fini(r);
}

/* --- loss and the window ------------------------------------------------- */

static void gap_loss_cuts_once_per_round_trip(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* 5 acknowledged alone: 1 and 2 are 3 or more below it, 3 and 4 are
   * not. The window halves once: 32 -> 16, ssthresh 16. (No datagram
   * here was sent with half the window in flight: none grows it.) */
  send_eliciting_n(r, T0, 5);
  assert_int_equal(ack_at(r, 5, 0, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 3);
  expect_resolved(&rec, 0, 5, true);
  expect_resolved(&rec, 1, 1, false);
  expect_resolved(&rec, 2, 2, false);
  assert_int_equal(r->in_flight, 2);
  assert_int_equal(pn__recovery_cwnd(r), 16);
  assert_int_equal(pn__recovery_ssthresh(r), 16);
  assert_int_equal(r->path[0].recovery_seq, 6);

  /* 3 lost later, but it left before the cut: the same loss event. */
  assert_int_equal(send_eliciting(r, T0 + 20 * MS), 6);
  assert_int_equal(ack_at(r, 6, 0, T0 + 30 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 5);
  expect_resolved(&rec, 3, 6, true);
  expect_resolved(&rec, 4, 3, false);
  assert_int_equal(pn__recovery_cwnd(r), 16);

  /* 4 (before the cut) and 7 (after it) lost by 10: one more cut, 8. */
  send_eliciting_n(r, T0 + 40 * MS, 4);
  assert_int_equal(ack_at(r, 10, 0, T0 + 50 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 8);
  expect_resolved(&rec, 5, 10, true);
  expect_resolved(&rec, 6, 4, false);
  expect_resolved(&rec, 7, 7, false);
  assert_int_equal(pn__recovery_cwnd(r), 8);
  assert_int_equal(pn__recovery_ssthresh(r), 8);
  assert_int_equal(r->in_flight, 2); /* 8 and 9 */

  /* Down to the floor: each round one eliciting datagram and three
   * acknowledgements-only, the last acknowledged (which resolves nothing
   * itself, so nothing grows the window). 8 -> 4 -> 4. */
  uint64_t a = send_eliciting(r, T0 + 60 * MS);
  assert_int_equal(a, 11);
  (void)send_ack_only(r, T0 + 60 * MS);
  (void)send_ack_only(r, T0 + 60 * MS);
  uint64_t top = send_ack_only(r, T0 + 60 * MS);
  assert_int_equal(ack_at(r, top, 0, T0 + 70 * MS, &rec), 0);
  assert_int_equal(rec.n, 11);
  expect_resolved(&rec, 8, 8, false);
  expect_resolved(&rec, 9, 9, false);
  expect_resolved(&rec, 10, 11, false);
  assert_int_equal(pn__recovery_cwnd(r), 4);
  assert_int_equal(pn__recovery_ssthresh(r), 4);

  (void)send_eliciting(r, T0 + 80 * MS);
  for (int i = 0; i < 3; i++) {
    top = send_ack_only(r, T0 + 80 * MS);
  }
  assert_int_equal(ack_at(r, top, 0, T0 + 90 * MS, &rec), 0);
  assert_int_equal(rec.n, 12);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), PN__CWND_MIN);
  assert_int_equal(r->in_flight, 0);
  pn__recovery_fini(r);
}

static void slow_start_grows_per_used_ack(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 128);

  /* 32 sent at once: the k-th left with k - 1 in flight and counts as
   * using the window when 2k >= 32, so 16..32 (17 datagrams) grow it by
   * one each: 32 + 17 = 49. */
  send_eliciting_n(r, T0, 32);
  assert_false(r->sent[15 & r->sent_mask].window_used);
  assert_true(r->sent[16 & r->sent_mask].window_used);
  assert_int_equal(ack_at(r, 32, bits_below(31), T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 32);
  assert_int_equal(r->path[0].cwnd, 49 * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), 0);

  /* The next round sends 49 (and no more); 2k >= 49 for k >= 25: 25 of
   * them grow it to 74. */
  uint64_t sent = 0;
  while (pn__recovery_can_send(r, 0)) {
    (void)send_eliciting(r, T0 + 20 * MS);
    sent++;
  }
  assert_int_equal(sent, 49);
  assert_int_equal(ack_at(r, 81, bits_below(48), T0 + 30 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 81);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(pn__recovery_cwnd(r), 74);
  assert_int_equal(r->path[0].cwnd, 74 * ONE);
  pn__recovery_fini(r);
}

static void unused_window_does_not_grow(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* RFC 7661: one datagram at a time never fills half of 32. */
  for (uint64_t i = 0; i < 100; i++) {
    uint64_t t = T0 + i * 20 * MS;
    uint64_t seq = send_eliciting(r, t);
    assert_false(r->sent[seq & r->sent_mask].window_used);
    assert_int_equal(ack_at(r, seq, 0, t + 10 * MS, &rec),
                     PN__ACK_NEW | PN__ACK_RTT);
  }
  assert_int_equal(rec.n, 100);
  assert_int_equal(r->path[0].cwnd, PN__CWND_INITIAL * ONE);
  pn__recovery_fini(r);
}

static void avoidance_after_ssthresh(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* A gap loss of 1 (the top, 4, carried only an acknowledgement, so
   * nothing is acknowledged): 32 -> 16. */
  (void)send_eliciting(r, T0);
  (void)send_eliciting(r, T0);
  (void)send_ack_only(r, T0);
  (void)send_ack_only(r, T0);
  assert_int_equal(ack_at(r, 4, 0, T0 + 10 * MS, &rec), 0);
  assert_int_equal(rec.n, 1);
  expect_resolved(&rec, 0, 1, false);
  assert_int_equal(pn__recovery_cwnd(r), 16);

  /* Then the RTO of 2, sent before that cut: no second halving from the
   * loss itself; the timeout sets ssthresh to half the window (8) and the
   * window to the minimum. */
  assert_false(pn__recovery_on_rto(r, T0 + 100 * MS - 1, record, &rec));
  assert_true(pn__recovery_on_rto(r, T0 + 100 * MS, record, &rec));
  expect_resolved(&rec, 1, 2, false);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), 8);

  /* Slow start from 4: of 5..8, 2k >= 4 for k >= 2: 6, 7, 8 add one
   * each: 7. */
  send_eliciting_n(r, T0 + 200 * MS, 4);
  assert_int_equal(ack_at(r, 8, bits_below(3), T0 + 210 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].cwnd, 7 * ONE);

  /* Of 9..15, 2k x 1024 >= 7168 for k >= 4: 12..15 grow it. 15 (newest
   * first) reaches ssthresh: 8192; then congestion avoidance adds
   * 1024 x 1024 / cwnd each: + 128, + 126, + 124 = 8570. */
  send_eliciting_n(r, T0 + 230 * MS, 7);
  assert_int_equal(ack_at(r, 15, bits_below(6), T0 + 240 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].cwnd, 8570);
  assert_int_equal(pn__recovery_cwnd(r), 8);
  assert_int_equal(pn__recovery_ssthresh(r), 8);
  pn__recovery_fini(r);

  /* Avoidance right after a gap cut (cwnd = ssthresh = 16): of 16 sent
   * together, 2k >= 16 for k >= 8 (9 of them): 16384 + 64 + 63 + 63 + 63
   * + 63 + 62 + 62 + 62 + 62 = 16948, about one datagram per window. */
  rec.n = 0;
  start(r, 64);
  (void)send_eliciting(r, T0);
  for (int i = 0; i < 3; i++) {
    (void)send_ack_only(r, T0);
  }
  assert_int_equal(ack_at(r, 4, 0, T0 + 10 * MS, &rec), 0);
  assert_int_equal(r->path[0].cwnd, 16 * ONE);
  assert_int_equal(r->path[0].ssthresh, 16 * ONE);
  send_eliciting_n(r, T0 + 20 * MS, 16);
  assert_int_equal(ack_at(r, 20, bits_below(15), T0 + 30 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].cwnd, 16948);
  assert_int_equal(pn__recovery_cwnd(r), 16);
  pn__recovery_fini(r);
}

static void window_capped_at_limit(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 40);

  /* 32 + 17 would be 49: capped at the window, 40. */
  send_eliciting_n(r, T0, 32);
  (void)ack_at(r, 32, bits_below(31), T0 + 10 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 40 * ONE);
  uint64_t sent = 0;
  while (pn__recovery_can_send(r, 0)) {
    (void)send_eliciting(r, T0 + 20 * MS);
    sent++;
  }
  assert_int_equal(sent, 40);
  (void)ack_at(r, 72, bits_below(39), T0 + 30 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 40 * ONE);
  assert_int_equal(rec.n, 72);
  pn__recovery_fini(r);
}

static void queueing_delay_cut(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  /* min RTT 10 ms; the allowance max(2 ms, 10 ms): a cut above 20 ms. */
  (void)send_eliciting(r, T0);
  (void)ack_at(r, 1, 0, T0 + 10 * MS, &rec);
  assert_int_equal(r->min_rtt_ns, 10 * MS);
  (void)send_eliciting(r, T0 + 100 * MS);
  (void)ack_at(r, 2, 0, T0 + 120 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 32 * ONE);

  /* 21 ms: 32 - 32/8 = 28, ssthresh 28, and a round trip starts at 5. */
  send_eliciting_n(r, T0 + 200 * MS, 2);
  (void)ack_at(r, 3, 0, T0 + 221 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 28 * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), 28);
  assert_int_equal(r->path[0].recovery_seq, 5);
  /* 4 left before the cut: its 30 ms does not cut again. */
  (void)ack_at(r, 4, 0, T0 + 230 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 28 * ONE);
  /* 5 did not: 28672 - 3584 = 25088 (24.5 datagrams). */
  (void)send_eliciting(r, T0 + 300 * MS);
  (void)ack_at(r, 5, 0, T0 + 325 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 25088);
  assert_int_equal(pn__recovery_cwnd(r), 24);
  assert_int_equal(pn__recovery_ssthresh(r), 24);
  assert_int_equal(r->min_rtt_ns, 10 * MS);
  assert_int_equal(rec.n, 5);
  pn__recovery_fini(r);

  /* min RTT 1 ms: the allowance is 2 ms, a cut above 3 ms. */
  start(r, 64);
  (void)send_eliciting(r, T0);
  (void)ack_at(r, 1, 0, T0 + 1 * MS, &rec);
  (void)send_eliciting(r, T0 + 10 * MS);
  (void)ack_at(r, 2, 0, T0 + 13 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 32 * ONE);
  (void)send_eliciting(r, T0 + 20 * MS);
  (void)ack_at(r, 3, 0, T0 + 23 * MS + 1, &rec);
  assert_int_equal(r->path[0].cwnd, 28 * ONE);
  pn__recovery_fini(r);

  /* Never below the minimum: at 4 (after an RTO), 4 - 4/8 stays 4. */
  start(r, 64);
  (void)send_eliciting(r, T0);
  assert_true(pn__recovery_on_rto(r, T0 + 100 * MS, record, &rec));
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  (void)send_eliciting(r, T0 + 200 * MS);
  (void)ack_at(r, 2, 0, T0 + 210 * MS, &rec);
  (void)send_eliciting(r, T0 + 300 * MS);
  (void)ack_at(r, 3, 0, T0 + 330 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), PN__CWND_MIN);
  pn__recovery_fini(r);
}

/* --- the retransmission timer -------------------------------------------- */

static void rto_waits_for_silence_then_backs_off(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);

  send_eliciting_n(r, T0, 3);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 100 * MS);
  /* 1 acknowledged at 30 ms: SRTT 30, RTTVAR 15, RTO 90. */
  assert_int_equal(ack_at(r, 1, 0, T0 + 30 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(pn__recovery_rto(r), 90 * MS);
  (void)send_eliciting(r, T0 + 50 * MS);

  /* The oldest in flight (2) left at 0 but an acknowledgement came at
   * 30: the deadline runs from 30. */
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 120 * MS);
  assert_int_equal(r->oldest, 2);

  /* 2 and 3 are older than the RTO at 100 ms, but an acknowledgement
   * came less than an RTO ago: nothing. */
  assert_false(pn__recovery_on_rto(r, T0 + 100 * MS, record, &rec));
  assert_false(pn__recovery_on_rto(r, T0 + 120 * MS - 1, record, &rec));
  assert_int_equal(rec.n, 1);
  assert_int_equal(r->in_flight, 3);
  assert_int_equal(r->path[0].backoff, 0);

  /* At 120: 2 and 3 (90 ms old) lost, 4 (70 ms old) not. */
  assert_true(pn__recovery_on_rto(r, T0 + 120 * MS, record, &rec));
  assert_int_equal(rec.n, 3);
  expect_resolved(&rec, 1, 2, false);
  expect_resolved(&rec, 2, 3, false);
  assert_int_equal(rec.log[1].now, T0 + 120 * MS);
  assert_int_equal(r->in_flight, 1);
  assert_int_equal(r->path[0].backoff, 1);
  assert_int_equal(pn__recovery_rto(r), 180 * MS);
  assert_int_equal(r->rto_ns, 90 * MS);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);

  /* 4 left at 50, later than the last acknowledgement: 50 + 180. */
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 230 * MS);
  assert_false(pn__recovery_on_rto(r, T0 + 230 * MS - 1, record, &rec));
  assert_int_equal(r->path[0].backoff, 1);
  assert_true(pn__recovery_on_rto(r, T0 + 230 * MS, record, &rec));
  expect_resolved(&rec, 3, 4, false);
  assert_int_equal(r->path[0].backoff, 2);
  assert_int_equal(pn__recovery_rto(r), 360 * MS);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), PN__CWND_MIN);
  /* Nothing in flight; the suspects wait: 2 and 3 were declared at 120,
   * and no acknowledgement came since, so they wait 4 RTOs (360 ms each
   * now) for one that names them. None did: lost for good, all three,
   * and nothing newly declared. */
  assert_int_equal(r->suspects, 3);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 1560 * MS);
  assert_false(pn__recovery_on_rto(r, T0 + 1560 * MS - 1, record, &rec));
  assert_int_equal(rec.nfinals, 0);
  assert_false(pn__recovery_on_rto(r, T0 + 1560 * MS, record, &rec));
  assert_int_equal(rec.nfinals, 2);
  assert_int_equal(rec.finals[0].seq, 2);
  assert_int_equal(rec.finals[1].seq, 3);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 1670 * MS);
  assert_false(pn__recovery_on_rto(r, T0 + 10000 * MS, record, &rec));
  assert_int_equal(rec.nfinals, 3);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(pn__recovery_rto_deadline(r), 0);
  assert_int_equal(r->final_lost, 3);

  /* 360 -> 720 -> 1440, bounded by rto_max (1 s). */
  (void)send_eliciting(r, T0 + 300 * MS);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 660 * MS);
  assert_true(pn__recovery_on_rto(r, T0 + 660 * MS, record, &rec));
  assert_int_equal(pn__recovery_rto(r), 720 * MS);
  (void)send_eliciting(r, T0 + 700 * MS);
  /* 5, declared at 660, waits 4 RTOs: 6's RTO (700 + 720) comes first. */
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 1420 * MS);
  assert_true(pn__recovery_on_rto(r, T0 + 1420 * MS, record, &rec));
  assert_int_equal(r->path[0].backoff, 4);
  assert_int_equal(pn__recovery_rto(r), 1000 * MS);
  (void)send_eliciting(r, T0 + 1500 * MS);
  assert_true(pn__recovery_on_rto(r, T0 + 2500 * MS, record, &rec));
  assert_int_equal(r->path[0].backoff, 5);
  assert_int_equal(pn__recovery_rto(r), 1000 * MS);
  assert_int_equal(rec.n, 7);

  /* A new acknowledgement ends the backoff: 30 ms again, SRTT 30,
   * RTTVAR 3/4 x 15 = 11.25, RTO 30 + 45. */
  (void)send_eliciting(r, T0 + 3000 * MS);
  assert_int_equal(ack_at(r, 8, 0, T0 + 3030 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].backoff, 0);
  assert_int_equal(r->rttvar_ns, 11250000);
  assert_int_equal(pn__recovery_rto(r), 75 * MS);
  /* 5, 6 and 7 are still suspects; an acknowledgement came after they
   * were declared without naming them: they wait one RTO (75 ms) from
   * their declaration, which is past. */
  assert_int_equal(r->suspects, 3);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 735 * MS);
  assert_false(pn__recovery_on_rto(r, T0 + 3030 * MS, record, &rec));
  assert_int_equal(r->suspects, 0);
  assert_int_equal(pn__recovery_rto_deadline(r), 0);
  pn__recovery_fini(r);
}

/* An RTO whose lost datagrams left after the last cut halves ssthresh
 * once: to half of the window the RTO found (the timed-out datagrams do
 * not also cut the window one by one, as gap losses do). Before the fix
 * ssthresh came out at a quarter. */
static void rto_halves_ssthresh_once(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  (void)send_eliciting(r, T0);
  assert_true(pn__recovery_on_rto(r, T0 + 100 * MS, record, &rec));
  expect_resolved(&rec, 0, 1, false);
  assert_int_equal(r->path[0].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(pn__recovery_ssthresh(r), PN__CWND_INITIAL / 2);
  pn__recovery_fini(r);
}

/* --- the ring ------------------------------------------------------------ */

static void ring_grows_and_keeps_records(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 32); /* the ring may grow to 4 x 32 = 128 */
  assert_int_equal(r->sent_mask, 63);

  for (uint64_t s = 1; s <= 64; s++) {
    (void)send_eliciting(r, T0 + s);
  }
  assert_int_equal(r->sent_mask, 63);
  /* The 65th needs a 65th slot. */
  (void)send_eliciting(r, T0 + 65);
  assert_int_equal(r->sent_mask, 127);
  for (uint64_t s = 66; s <= 128; s++) {
    (void)send_eliciting(r, T0 + s);
  }
  assert_int_equal(r->in_flight, 128);
  assert_false(pn__recovery_room(r));
  assert_false(pn__recovery_can_send(r, 0));
  assert_int_equal(r->sent_mask, 127);

  /* Every record survived the copy: acknowledged oldest first (so the
   * gap rule finds nothing to declare lost), each once, with its fstart
   * and send time. */
  assert_int_equal(ack_at(r, 63, ALL_BITS, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(ack_at(r, 127, ALL_BITS, T0 + 11 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(ack_at(r, 128, ALL_BITS, T0 + 12 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 128);
  bool seen[129] = {false};
  for (size_t i = 0; i < rec.n; i++) {
    assert_true(rec.log[i].acked);
    assert_false(rec.log[i].in_flight);
    uint64_t s = rec.log[i].seq;
    assert_true(s >= 1 && s <= 128);
    assert_false(seen[s]);
    seen[s] = true;
    assert_int_equal(rec.log[i].fstart, s * 10);
  }
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(pn__recovery_advance(r, 5), 5);
  assert_true(pn__recovery_room(r));
  pn__recovery_fini(r);
}

static void ring_growth_out_of_memory(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 32);
  send_eliciting_n(r, T0, 64);

  /* The 65th needs a larger ring, and the allocation fails: no room, the
   * ring and its records as they were. */
  pn__alloc_fail_at(1);
  assert_false(pn__recovery_room(r));
  assert_false(pn__recovery_can_send(r, 0));
  assert_true(pn__alloc_failed());
  assert_int_equal(r->sent_mask, 63);
  pn__alloc_fail_at(0);

  /* Later it succeeds, and everything recorded before is still there. */
  assert_int_equal(send_eliciting(r, T0 + 1 * MS), 65);
  assert_int_equal(r->sent_mask, 127);
  assert_int_equal(ack_at(r, 65, ALL_BITS, T0 + 10 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(rec.n, 65);
  for (size_t i = 0; i < 65; i++) {
    expect_resolved(&rec, i, 65 - i, true);
  }
  assert_int_equal(r->in_flight, 0);
}

static void ring_grows_across_wrap(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 32);

  /* 1..50, then 1..40 acknowledged: oldest 41. */
  send_eliciting_n(r, T0, 50);
  (void)ack_at(r, 40, bits_below(39), T0 + 10 * MS, &rec);
  assert_int_equal(rec.n, 40);
  assert_int_equal(pn__recovery_advance(r, 0), 410);
  assert_int_equal(r->oldest, 41);

  /* Up to 104 fits in 64 slots (64..104 wrap onto 0..40); 105 grows the
   * ring, whose copy must unwrap them; 168 is the last that fits 128. */
  send_eliciting_n(r, T0 + 20 * MS, 54);
  assert_int_equal(r->next_seq, 105);
  assert_int_equal(r->sent_mask, 63);
  send_eliciting_n(r, T0 + 20 * MS, 64);
  assert_int_equal(r->sent_mask, 127);
  assert_int_equal(r->next_seq, 169);
  assert_false(pn__recovery_room(r));

  rec.n = 0;
  (void)ack_at(r, 104, ALL_BITS, T0 + 30 * MS, &rec);
  (void)ack_at(r, 168, ALL_BITS, T0 + 30 * MS, &rec);
  assert_int_equal(rec.n, 128);
  bool seen[169] = {false};
  for (size_t i = 0; i < rec.n; i++) {
    uint64_t s = rec.log[i].seq;
    assert_true(rec.log[i].acked);
    assert_true(s >= 41 && s <= 168);
    assert_false(seen[s]);
    seen[s] = true;
    assert_int_equal(rec.log[i].fstart, s * 10);
  }
  assert_int_equal(r->in_flight, 0);
  pn__recovery_fini(r);
}

static void can_send_respects_window_and_ring(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};

  /* min(cwnd 32, window 64) = 32. */
  start(r, 64);
  uint64_t sent = 0;
  while (pn__recovery_can_send(r, 0)) {
    (void)send_eliciting(r, T0);
    sent++;
  }
  assert_int_equal(sent, 32);
  (void)ack_at(r, 1, 0, T0 + 10 * MS, &rec);
  assert_true(pn__recovery_can_send(r, 0));
  pn__recovery_fini(r);

  /* min(cwnd 32, window 8) = 8. */
  start(r, 8);
  sent = 0;
  while (pn__recovery_can_send(r, 0)) {
    (void)send_eliciting(r, T0);
    sent++;
  }
  assert_int_equal(sent, 8);
  pn__recovery_fini(r);

  /* Room in the window but not in the ring (window 16: at most 64
   * slots): one eliciting datagram, then 63 that carried only
   * acknowledgements, none acknowledged. */
  start(r, 16);
  (void)send_eliciting(r, T0);
  for (int i = 0; i < 63; i++) {
    (void)send_ack_only(r, T0);
  }
  assert_int_equal(r->in_flight, 1);
  assert_false(pn__recovery_room(r));
  assert_false(pn__recovery_can_send(r, 0));
  /* 64 acknowledged declares 1 lost; it holds its slot while a later
   * acknowledgement may still name it (4 RTOs of 100 ms: no
   * acknowledgement of anything new came since); once `oldest`
   * moves past it there is room again. */
  (void)ack_at(r, 64, 0, T0 + 10 * MS, &rec);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->suspects, 1);
  assert_false(pn__recovery_can_send(r, 0));
  assert_false(pn__recovery_on_rto(r, T0 + 410 * MS - 1, record, &rec));
  assert_int_equal(r->suspects, 1);
  assert_false(pn__recovery_on_rto(r, T0 + 410 * MS, record, &rec));
  assert_int_equal(r->suspects, 0);
  assert_int_equal(pn__recovery_advance(r, 0), 0);
  assert_true(pn__recovery_can_send(r, 0));
  pn__recovery_fini(r);
}

/* pn__recovery_room() counts the datagrams that carry only
 * acknowledgements (they take sequences too): window 32 (ring at most
 * 128) cannot hold 1 eliciting datagram in flight and 150 unrecorded ones
 * after it, so room() says no rather than letting pn__recovery_sent()
 * overwrite a record in flight (which its PN_ASSERT catches). */
static void ring_room_counts_unrecorded_at_cap(void **state) {
  pn__recovery *r = *state;
  start(r, 32);
  (void)send_eliciting(r, T0);
  for (int i = 0; i < 150; i++) {
    (void)send_ack_only(r, T0);
  }
  bool room = pn__recovery_room(r);
  assert_false(room && r->next_seq - r->oldest > r->sent_mask);
  assert_false(room);
  pn__recovery_fini(r);
}

/* The same below the cap: window 128 (ring up to 512) holds the 152,
 * growing by as many doublings as it takes. */
static void ring_room_counts_unrecorded_below_cap(void **state) {
  pn__recovery *r = *state;
  start(r, 128);
  (void)send_eliciting(r, T0);
  for (int i = 0; i < 150; i++) {
    (void)send_ack_only(r, T0);
  }
  assert_true(pn__recovery_room(r));
  /* what pn__recovery_sent() asserts for the next eliciting datagram */
  assert_true(r->next_seq - r->oldest <= r->sent_mask);
  pn__recovery_fini(r);
}

/* --- advance and abandon -------------------------------------------------- */

static void advance_returns_oldest_in_flight(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  assert_int_equal(pn__recovery_advance(r, 999), 999);
  send_eliciting_n(r, T0, 3);
  assert_int_equal(pn__recovery_advance(r, 999), 10);
  (void)ack_at(r, 1, 0, T0 + 10 * MS, &rec);
  assert_int_equal(pn__recovery_advance(r, 999), 20);
  assert_int_equal(r->oldest, 2);
  (void)ack_at(r, 3, 0, T0 + 10 * MS, &rec);
  assert_int_equal(pn__recovery_advance(r, 999), 20);
  (void)ack_at(r, 2, 0, T0 + 10 * MS, &rec);
  assert_int_equal(pn__recovery_advance(r, 999), 999);
  assert_int_equal(r->oldest, 4);
  /* An unrecorded datagram is stepped over. */
  (void)send_ack_only(r, T0 + 20 * MS);
  (void)send_eliciting(r, T0 + 20 * MS);
  assert_int_equal(pn__recovery_advance(r, 999), 50);
  assert_int_equal(r->oldest, 5);
  pn__recovery_fini(r);
}

static void abandon_resolves_all_keeps_window(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  send_eliciting_n(r, T0, 5);
  (void)ack_at(r, 5, 0, T0 + 10 * MS, &rec); /* 5 acked, 1 and 2 lost */
  (void)send_ack_only(r, T0 + 20 * MS);
  (void)send_eliciting(r, T0 + 20 * MS);
  assert_int_equal(rec.n, 3);
  assert_int_equal(r->in_flight, 3); /* 3, 4 and 7 */
  uint64_t cwnd = r->path[0].cwnd, ssthresh = r->path[0].ssthresh;
  assert_int_equal(cwnd, 16 * ONE);

  /* Abandoned: the suspects 1 and 2 and the three in flight, straight
   * to LOST. */
  assert_int_equal(r->suspects, 2);
  pn__recovery_abandon(r, record, &rec);
  assert_int_equal(rec.n, 3);
  assert_int_equal(rec.nfinals, 5);
  static const uint64_t order[] = {1, 2, 3, 4, 7};
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(rec.finals[i].seq, order[i]);
    assert_false(rec.finals[i].in_flight);
    assert_false(rec.finals[i].suspect);
  }
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(r->path[0].cwnd, cwnd);
  assert_int_equal(r->path[0].ssthresh, ssthresh);
  assert_int_equal(r->oldest, r->next_seq);
  assert_int_equal(pn__recovery_advance(r, 999), 999);
  assert_int_equal(pn__recovery_rto_deadline(r), 0);

  /* Nothing is left to resolve twice. */
  assert_int_equal(ack_at(r, 7, ALL_BITS, T0 + 30 * MS, &rec), 0);
  assert_false(pn__recovery_on_rto(r, T0 + 10000 * MS, record, &rec));
  pn__recovery_abandon(r, record, &rec);
  assert_int_equal(rec.n, 3);
  assert_int_equal(rec.nfinals, 5);
  pn__recovery_fini(r);
}

/* A datagram declared lost that a later acknowledgement names arrived
 * after all (reordered, or its acknowledgement was lost): LATE, not LOST,
 * and a window cut only by such losses is given back. */
static void late_ack_repairs_and_undoes_the_cut(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  send_eliciting_n(r, T0, 5);
  /* 5 alone: 1 and 2 suspect, the window halves (32 -> 16). */
  (void)ack_at(r, 5, 0, T0 + 10 * MS, &rec);
  assert_int_equal(r->suspects, 2);
  assert_int_equal(pn__recovery_cwnd(r), 16);
  assert_true(r->path[0].undo_valid);
  /* The suspects keep their records: advance() stops at 1. */
  assert_int_equal(pn__recovery_advance(r, 999), 10);
  /* An acknowledgement of 5 naming 1..4: 1 and 2 LATE, 3 and 4 ACKED;
   * all the losses were spurious: 32 again, ssthresh as before. */
  assert_int_equal(ack_at(r, 5, bits_below(4), T0 + 12 * MS, &rec),
                   PN__ACK_NEW);
  assert_int_equal(rec.n, 7);
  static const struct {
    uint64_t seq;
    pn__resolution res;
  } want[] = {{5, PN__RES_ACKED}, {1, PN__RES_SUSPECT}, {2, PN__RES_SUSPECT},
              {4, PN__RES_ACKED}, {3, PN__RES_ACKED},   {2, PN__RES_LATE},
              {1, PN__RES_LATE}};
  for (size_t i = 0; i < 7; i++) {
    assert_int_equal(rec.log[i].seq, want[i].seq);
    assert_int_equal(rec.log[i].res, want[i].res);
  }
  assert_int_equal(r->suspects, 0);
  assert_int_equal(r->late, 2);
  assert_int_equal(rec.nfinals, 0);
  assert_int_equal(pn__recovery_cwnd(r), 32);
  assert_int_equal(pn__recovery_ssthresh(r), 0);
  assert_false(r->path[0].undo_valid);
  assert_int_equal(pn__recovery_advance(r, 999), 999);
  /* 1 was declared with 4 of its path acknowledged after it (2..5 on
   * path 0, ordinals 1..4, and 5 was the fifth): the path reorders that
   * much, and its gap rule now waits for 5 + 1. */
  assert_int_equal(r->path[0].reorder, 5);

  /* Two losses, one real: nothing is given back. */
  send_eliciting_n(r, T0 + 20 * MS, 7); /* 6..12 */
  (void)ack_at(r, 12, 0, T0 + 30 * MS, &rec);
  assert_int_equal(r->suspects, 2); /* 6 and 7: 6 and 5 below 12 */
  assert_int_equal(pn__recovery_cwnd(r), 16);
  /* 7 arrived; 6 is lost for good once its wait (an RTO) is over */
  (void)ack_at(r, 12, bit(12, 7), T0 + 31 * MS, &rec);
  assert_int_equal(r->path[0].reorder, 6);
  assert_int_equal(r->suspects, 1);
  assert_int_equal(pn__recovery_cwnd(r), 16);
  uint64_t at = pn__recovery_rto_deadline(r);
  assert_int_equal(at, T0 + 30 * MS + pn__recovery_rto(r));
  assert_false(pn__recovery_on_rto(r, at, record, &rec));
  assert_int_equal(rec.nfinals, 1);
  assert_int_equal(rec.finals[0].seq, 6);
  assert_int_equal(r->final_lost, 1);
  assert_int_equal(pn__recovery_cwnd(r), 16);
  assert_false(r->path[0].undo_valid);
  pn__recovery_fini(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(init_and_fini, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(init_out_of_memory, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(rtt_first_sample_then_smoothing,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(rto_granularity_floor_and_clamps,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(ack_delay_is_subtracted, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(rtt_only_from_eliciting_in_flight,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(ack_bits_resolve_named_datagrams,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(acks_of_unsent_and_duplicates_ignored,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(gap_loss_cuts_once_per_round_trip,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(slow_start_grows_per_used_ack,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(unused_window_does_not_grow,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(avoidance_after_ssthresh, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(window_capped_at_limit, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(queueing_delay_cut, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(rto_waits_for_silence_then_backs_off,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(rto_halves_ssthresh_once, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(ring_grows_and_keeps_records,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(ring_growth_out_of_memory, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(ring_grows_across_wrap, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(can_send_respects_window_and_ring,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(ring_room_counts_unrecorded_at_cap,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(ring_room_counts_unrecorded_below_cap,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(advance_returns_oldest_in_flight,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(abandon_resolves_all_keeps_window,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(late_ack_repairs_and_undoes_the_cut,
                                      recovery_setup, recovery_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
