/* actors/recovery.c with several paths (a connection's sockets): each
 * path's gap rule, round trip, RTO and congestion window are its own, the
 * windows grow coupled (RFC 6356), and an acknowledgement judges only
 * what it could have named. Hand-chosen times, as test_recovery.c.
 */
#include "tests/unit/recovery_test.h"

/* Datagrams through two sockets (paths): the gap rule counts each path's
 * own, so a slower path's datagrams are not taken for lost when the faster
 * one's are acknowledged first; a path's own gap still finds its losses,
 * and suspects may then sit between datagrams in flight. */
static uint64_t send_on(pn__recovery *r, uint64_t now, uint32_t path) {
  assert_true(pn__recovery_room(r));
  uint64_t seq = r->next_seq;
  pn__sent *e = pn__recovery_sent(r, now, 1200, true, false, path);
  assert_non_null(e);
  assert_int_equal(e->path, path % PN__REC_PATHS);
  e->fstart = seq * 10;
  e->nframes = 1;
  return seq;
}

static void gap_rule_per_path(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  /* 1, 2 on path 0 (slow); 3..7 on path 1 (fast), an ack-only datagram
   * (8) on path 9, which is path 1 too. */
  for (int i = 0; i < 2; i++) {
    (void)send_on(r, T0, 0);
  }
  for (int i = 0; i < 5; i++) {
    (void)send_on(r, T0, 1);
  }
  assert_null(pn__recovery_sent(r, T0, 40, false, false, 1 + PN__REC_PATHS));
  /* 8 names 5..7: on path 1, 3 and 4 had three sent after them
   * acknowledged (5, 6, 7; 8 is a fourth): suspect. 1 and 2, on path 0,
   * only had another path's acknowledged: still in flight. */
  const uint64_t b1[2] = {bits_below(3), 0};
  assert_int_equal(pn__recovery_on_ack(r, 8, b1, 0, T0 + 10 * MS, record, &rec),
                   PN__ACK_NEW);
  assert_int_equal(r->in_flight, 2);
  assert_int_equal(r->suspects, 2);
  assert_int_equal(rec.n, 5);
  assert_int_equal(rec.log[3].seq, 3);
  assert_int_equal(rec.log[3].res, PN__RES_SUSPECT);
  assert_int_equal(rec.log[4].seq, 4);
  assert_int_equal(rec.log[4].res, PN__RES_SUSPECT);
  /* Only path 1's window was cut: 32 + 16. */
  assert_int_equal(r->path[0].cwnd, 32 * ONE);
  assert_int_equal(r->path[1].cwnd, 16 * ONE);
  assert_int_equal(pn__recovery_cwnd(r), 48);
  /* In flight before the suspects: advance() stops at 1, and the timer is
   * path 0's RTO from when its datagrams left (no acknowledgement of path
   * 0 came), before the suspects' four RTOs (no acknowledgement of path 1
   * came after they were declared). */
  assert_int_equal(pn__recovery_advance(r, 999), 10);
  uint64_t rto = pn__recovery_rto(r);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + rto);
  /* Path 0 arrives, and 4 after all (named by 8's next acknowledgement):
   * 1, 2 ACKED (path 0 measures its round trip from 2), 4 LATE; 3 stays
   * suspect. */
  const uint64_t b2[2] = {bit(8, 1) | bit(8, 2) | bit(8, 4), 0};
  assert_int_equal(pn__recovery_on_ack(r, 8, b2, 0, T0 + 12 * MS, record, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].srtt_ns, 12 * MS);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->suspects, 1);
  assert_int_equal(r->late, 1);
  /* 3's wait: one RTO, since an acknowledgement of something new came
   * after it was declared; then it is LOST, and the cut stays. */
  rto = pn__recovery_rto(r);
  uint64_t at = pn__recovery_rto_deadline(r);
  assert_int_equal(at, T0 + 10 * MS + rto);
  assert_false(pn__recovery_on_rto(r, at - 1, record, &rec));
  assert_int_equal(rec.nfinals, 0);
  assert_false(pn__recovery_on_rto(r, at, record, &rec));
  assert_int_equal(rec.nfinals, 1);
  assert_int_equal(rec.finals[0].seq, 3);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(pn__recovery_cwnd(r), 48);
  assert_false(r->path[1].undo_valid);
  assert_int_equal(pn__recovery_advance(r, 999), 999);
  pn__recovery_fini(r);
}

/* An acknowledgement names 128 datagrams below its own (bits[1]: 65 to
 * 128 below), and says nothing of what lies further back: the receiver
 * remembers PN__RX_WINDOW and acknowledges apart what arrives further back
 * than 128 (a slower path's), so only more than PN__RX_WINDOW below the
 * largest acknowledged is a datagram out of every acknowledgement's reach,
 * and LOST at once, in flight or suspect. */
static void acks_name_128_below_then_suspects_end(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  enum { W = PN__RX_WINDOW };
  start(r, 2 * W);
  send_eliciting_n(r, T0, W + 80);
  /* W + 6 named alone: the 126 it could name from W - 122 to W + 3
   * declared lost (not W + 4, W + 5: fewer than 3 below); 1..5 are more
   * than W below it: LOST at once; 6..W - 123 it says nothing of. */
  (void)ack_at(r, W + 6, 0, T0 + 10 * MS, &rec);
  assert_int_equal(rec.nfinals, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(rec.finals[i].seq, i + 1);
  }
  assert_int_equal(r->suspects, 126);
  assert_int_equal(r->in_flight, W + 80 - 5 - 126 - 1);
  /* W + 7 with bits[1] all set (65..128 below it) and bit 0 of bits[0]
   * (W + 6): those 64 LATE; 6, now more than W below, LOST. */
  const uint64_t b[2] = {1, ALL_BITS};
  assert_int_equal(
      pn__recovery_on_ack(r, W + 7, b, 0, T0 + 11 * MS, record, &rec),
      PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->late, 64);
  assert_int_equal(rec.nfinals, 6);
  assert_int_equal(rec.finals[5].seq, 6);
  /* A late acknowledgement (the receiver's, for a datagram far behind its
   * highest) names 500 and the 128 below it: ACKED, never declared. */
  const uint64_t all[2] = {ALL_BITS, ALL_BITS};
  uint64_t suspects = r->suspects;
  (void)pn__recovery_on_ack(r, 500, all, 0, T0 + 11 * MS, record, &rec);
  assert_int_equal(r->late, 64);
  assert_int_equal(r->suspects, suspects);
  assert_int_equal(r->in_flight, W + 80 - 6 - 126 - 2 - 129);
  /* Once an RTO old, what later acknowledgements of its path overtook is
   * lost, though none could name it: 7..371 and 501..W - 123. */
  uint64_t at = pn__recovery_rto_deadline(r);
  assert_int_equal(at, T0 + pn__recovery_rto(r));
  uint64_t declared = rec.n;
  assert_true(pn__recovery_on_rto(r, at, record, &rec));
  assert_int_equal(rec.n - declared, (371 - 7 + 1) + (W - 123 - 501 + 1));
  /* W + 80 named: 7..79 are more than W below it. */
  (void)ack_at(r, W + 80, 0, at + MS, &rec);
  assert_int_equal(rec.nfinals, 79);
  for (size_t i = 6; i < rec.nfinals; i++) {
    assert_int_equal(rec.finals[i].seq, i + 1);
  }
  pn__recovery_fini(r);
}

/* A loss on one path halves that path's window only, and each path sends
 * within its own window; the configured window bounds all paths together.
 */
static void windows_per_path(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 48);
  assert_int_equal(r->lim.paths, PN__REC_PATHS);
  /* 1..32 on path 1 fill its window (32); path 0 may still send. */
  for (int i = 0; i < 32; i++) {
    (void)send_on(r, T0, 1);
  }
  assert_false(pn__recovery_can_send(r, 1));
  assert_false(pn__recovery_can_send(r, 1 + PN__REC_PATHS)); /* same path */
  assert_true(pn__recovery_can_send(r, 0));
  /* 33..48 on path 0: then the configured 48 bound both. */
  for (int i = 0; i < 16; i++) {
    (void)send_on(r, T0, 0);
  }
  assert_false(pn__recovery_can_send(r, 0));
  assert_int_equal(pn__recovery_cwnd(r), 64);
  /* 5..32 and all of path 0 acknowledged at 10 ms: 1..4 of path 1 had
   * 28 of their path acknowledged after them: suspect, and path 1's window
   * is halved, after the growth those acknowledgements of a used window
   * brought (16..32: to 49, capped at the configured 48); path 0's
   * grew. */
  const uint64_t b[2] = {ALL_BITS >> (64 - 43), 0}; /* 5..47 below 48 */
  (void)pn__recovery_on_ack(r, 48, b, 0, T0 + 10 * MS, record, &rec);
  assert_int_equal(r->suspects, 4);
  assert_int_equal(r->path[1].suspects, 4);
  assert_int_equal(r->path[0].suspects, 0);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->path[1].cwnd, 24 * ONE);
  assert_int_equal(r->path[1].ssthresh, 24 * ONE);
  assert_true(r->path[0].cwnd > 32 * ONE);
  assert_int_equal(r->path[0].ssthresh, UINT64_MAX);
  assert_int_equal(pn__recovery_ssthresh(r), 24);
  assert_true(pn__recovery_can_send(r, 0) && pn__recovery_can_send(r, 1));
}

/* Each path measures its own round trip, so its RTO is its own: a slower
 * path's datagrams are not timed out by the faster one's RTO, and a path
 * that stops acknowledging times out (backoff, window to the minimum)
 * while the other goes on untouched. */
static void round_trip_and_rto_per_path(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  /* 1 on path 0 (20 ms), 2 on path 1 (80 ms). */
  (void)send_on(r, T0, 0);
  (void)send_on(r, T0, 1);
  (void)ack_at(r, 1, 0, T0 + 20 * MS, &rec);
  (void)ack_at(r, 2, bit(2, 1), T0 + 80 * MS, &rec);
  /* Path 0: SRTT 20, RTTVAR 10, RTO 60; path 1: 80, 40, 240. The
   * connection's: 20, then 7/8 x 20 + 80/8 = 27.5, its variation
   * 3/4 x 10 + 60/4 = 22.5, RTO 27.5 + 90 = 117.5. */
  assert_int_equal(r->path[0].srtt_ns, 20 * MS);
  assert_int_equal(r->path[0].rto_ns, 60 * MS);
  assert_int_equal(r->path[1].srtt_ns, 80 * MS);
  assert_int_equal(r->path[1].rto_ns, 240 * MS);
  assert_int_equal(r->srtt_ns, 27500 * US);
  assert_int_equal(r->rto_ns, 117500 * US);
  assert_int_equal(pn__recovery_rto(r), 240 * MS);
  /* 3 on path 0 and 4 on path 1 at 100 ms: each path's timer from its own
   * RTO. */
  uint64_t t = T0 + 100 * MS;
  (void)send_on(r, t, 0);
  (void)send_on(r, t, 1);
  assert_int_equal(pn__recovery_rto_deadline(r), t + 60 * MS);
  /* Path 0 acknowledged at 120 (3); path 1 silent. At 160 path 0 has
   * nothing out; 4 waits for path 1's RTO (at 340). */
  (void)ack_at(r, 3, 0, t + 20 * MS, &rec);
  assert_int_equal(pn__recovery_rto_deadline(r), t + 240 * MS);
  assert_false(pn__recovery_on_rto(r, t + 240 * MS - 1, record, &rec));
  /* 5 on path 0 at 300, acknowledged at 320: path 0 alive. */
  (void)send_on(r, t + 200 * MS, 0);
  (void)ack_at(r, 5, bit(5, 3), t + 220 * MS, &rec);
  uint64_t cwnd0 = r->path[0].cwnd;
  assert_true(pn__recovery_on_rto(r, t + 240 * MS, record, &rec));
  assert_int_equal(r->suspects, 1);
  assert_int_equal(r->path[1].suspects, 1);
  assert_int_equal(r->path[1].backoff, 1);
  assert_int_equal(r->path[1].cwnd, PN__CWND_MIN * ONE);
  assert_int_equal(r->path[0].backoff, 0);
  assert_int_equal(r->path[0].cwnd, cwnd0);
  assert_int_equal(pn__recovery_rto(r), 480 * MS);
}

/* Congestion avoidance on several paths grows the windows together as
 * RFC 6356 has it: alpha = total x max(w / rtt^2) / (sum of w / rtt)^2,
 * each acknowledged datagram adding min(alpha / total, 1 / w) of a
 * datagram to its path's window; a single path grows as Reno. */
static void coupled_increase(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  for (uint32_t i = 0; i < 2; i++) {
    r->path[i].cwnd = r->path[i].ssthresh = 20 * ONE;
  }
  /* Ten on path 0: the tenth is sent with half the window in flight
   * (RFC 7661: it may grow it). */
  for (int i = 0; i < 10; i++) {
    (void)send_on(r, T0, 0);
  }
  /* Path 1 has never measured a round trip: Reno alone on path 0, 1/20
   * of a datagram: 1024 x 1024 / 20480 = 51. */
  (void)ack_at(r, 10, bits_below(9), T0 + 10 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 20 * ONE + 51);
  /* Both paths at 20 datagrams and 10 ms: alpha = 40 x (20 / 100) /
   * (4)^2 = 1/2, so 1/2 x 1/40: 1024 x 1024 / 2 / 40960 = 12.8 -> 12. */
  r->path[0].cwnd = 20 * ONE;
  r->path[1].srtt_ns = 10 * MS;
  for (int i = 0; i < 10; i++) {
    (void)send_on(r, T0 + 20 * MS, 0);
  }
  (void)ack_at(r, 20, bits_below(9), T0 + 30 * MS, &rec);
  assert_int_equal(r->path[0].cwnd, 20 * ONE + 12);
  /* Path 1 at 40 ms: alpha = 40 x (20 / 100) / (2 + 0.5)^2 = 1.28, the
   * better path's increase 1.28 / 40: 32.77 -> 32. */
  r->path[0].cwnd = 20 * ONE;
  r->path[1].srtt_ns = 40 * MS;
  for (int i = 0; i < 10; i++) {
    (void)send_on(r, T0 + 40 * MS, 0);
  }
  (void)ack_at(r, 30, bits_below(9), T0 + 50 * MS, &rec);
  assert_int_equal(r->path[0].srtt_ns, 10 * MS);
  assert_int_equal(r->path[0].cwnd, 20 * ONE + 32);
}

/* An acknowledgement says nothing of what lies below its reach (itself
 * and the PN__ACK_SPAN before it): a reply that came through another
 * socket can overtake the one that names older datagrams, and those are
 * not declared lost for it. */
static void ack_judges_only_its_reach(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 256);
  r->path[0].cwnd = 256 * ONE;
  for (int i = 0; i < 140; i++) {
    (void)send_on(r, T0, 0);
  }
  /* 140 names 12..139 (all it can): 1..11 below its reach stay in
   * flight. */
  const uint64_t all[2] = {ALL_BITS, ALL_BITS};
  (void)pn__recovery_on_ack(r, 140, all, 0, T0 + 10 * MS, record, &rec);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(r->in_flight, 11);
  /* The overtaken reply names 1..11: ACKED, never suspect. */
  (void)ack_at(r, 11, bits_below(10), T0 + 10 * MS, &rec);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(r->late, 0);
  assert_int_equal(rec.n, 140);
  for (size_t i = 0; i < rec.n; i++) {
    assert_int_equal(rec.log[i].res, PN__RES_ACKED);
  }
  /* But one within its reach that it does not name is: 141..150, then
   * 150 names 144..149, not 141..143. */
  for (int i = 0; i < 10; i++) {
    (void)send_on(r, T0 + 20 * MS, 0);
  }
  (void)ack_at(r, 150, bits_below(6), T0 + 30 * MS, &rec);
  assert_int_equal(r->suspects, 3);
}

/* A slower path's datagrams are overtaken by a faster one's, so they may
 * never be the newest an acknowledgement names: the path takes its round
 * trip from the newest of its own an acknowledgement newly names (with no
 * receiver delay taken off), not from the connection's, and an older one
 * of the path named after a newer gives no sample; such a sample is the
 * path's queueing signal too. The connection's estimate keeps the
 * acknowledgements' own. */
static void overtaken_path_measures_its_round_trip(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  /* 1 on path 1 (40 ms), 2..5 on path 0 (2 ms). */
  (void)send_on(r, T0, 1);
  for (int i = 0; i < 4; i++) {
    (void)send_on(r, T0, 0);
  }
  assert_int_equal(ack_at(r, 5, bits_below(3), T0 + 2 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[0].srtt_ns, 2 * MS);
  assert_int_equal(r->path[1].srtt_ns, 0);
  /* 5's next acknowledgement names 1 too: path 1's first sample, 40 ms
   * (RTO 40 + 4 x 20); path 0 and the connection keep 2 ms. */
  assert_int_equal(ack_at(r, 5, bits_below(4), T0 + 40 * MS, &rec),
                   PN__ACK_NEW | PN__ACK_RTT);
  assert_int_equal(r->path[1].srtt_ns, 40 * MS);
  assert_int_equal(r->path[1].rto_ns, 120 * MS);
  assert_int_equal(r->path[0].srtt_ns, 2 * MS);
  assert_int_equal(r->srtt_ns, 2 * MS);
  assert_int_equal(r->in_flight, 0);
  /* 6 and 7 on path 1 at 50 ms; 7 acknowledged alone at 60 (its own
   * sample, 10 ms: 7/8 x 40 + 10/8 = 36.25), then 6 at 90: older than
   * the path's newest acknowledged, no sample. */
  (void)send_on(r, T0 + 50 * MS, 1);
  (void)send_on(r, T0 + 50 * MS, 1);
  (void)ack_at(r, 7, 0, T0 + 60 * MS, &rec);
  assert_int_equal(r->path[1].srtt_ns, 36250 * US);
  assert_int_equal(ack_at(r, 7, bit(7, 6), T0 + 90 * MS, &rec), PN__ACK_NEW);
  assert_int_equal(r->path[1].srtt_ns, 36250 * US);
  /* Such a sample is the path's queueing signal too: 8 (path 1) named at
   * 140 ms by 9's second acknowledgement (path 0's), 40 ms against a
   * minimum of 10 (more than the minimum above it): path 1's window
   * shrinks by an eighth, path 0's stays. */
  (void)send_on(r, T0 + 100 * MS, 1);
  (void)send_on(r, T0 + 100 * MS, 0);
  (void)ack_at(r, 9, 0, T0 + 101 * MS, &rec);
  uint64_t w0 = r->path[0].cwnd, w1 = r->path[1].cwnd;
  assert_int_equal(r->path[1].min_rtt_ns, 10 * MS);
  (void)ack_at(r, 9, bit(9, 8), T0 + 140 * MS, &rec);
  assert_int_equal(r->path[1].cwnd, w1 - w1 / 8);
  assert_int_equal(r->path[1].ssthresh, r->path[1].cwnd);
  assert_int_equal(r->path[0].cwnd, w0);
  assert_int_equal(rec.nfinals, 0);
}

/* A suspect's wait shortens to one RTO only once an acknowledgement that
 * came after its declaration newly named a datagram sent after it on its
 * path (which it would have named too, had the suspect arrived). One
 * naming only older datagrams of the path, as a slower path's trailing
 * acknowledgements do, leaves it PN__SUSPECT_RTOS: it arrives, and is
 * LATE, never LOST. */
static void a_suspect_waits_for_an_acknowledgement_past_it(void **state) {
  pn__recovery *r = *state;
  recorder rec = {0};
  start(r, 64);
  /* 1, 2 on path 1; 3 on path 0, acknowledged at 1 ms: the connection's
   * RTO is the minimum, 5 ms, and path 1 (no sample) uses it. */
  (void)send_on(r, T0, 1);
  (void)send_on(r, T0, 1);
  (void)send_on(r, T0, 0);
  (void)ack_at(r, 3, 0, T0 + 1 * MS, &rec);
  assert_int_equal(r->rto_ns, 5 * MS);
  /* No acknowledgement of path 1 for its RTO: 1 and 2 suspect at 10. */
  assert_true(pn__recovery_on_rto(r, T0 + 10 * MS, record, &rec));
  assert_int_equal(r->path[1].suspects, 2);
  /* At 12 an acknowledgement names 1 (LATE; path 1 measures 12 ms, RTO
   * 36) but not 2, sent after it. */
  (void)ack_at(r, 3, bit(3, 1), T0 + 12 * MS, &rec);
  assert_int_equal(r->late, 1);
  assert_int_equal(r->path[1].srtt_ns, 12 * MS);
  assert_int_equal(r->path[1].rto_ns, 36 * MS);
  /* So 2 waits four RTOs from 10, not one: still suspect at 10 + 36,
   * and its deadline is 10 + 144. */
  (void)pn__recovery_on_rto(r, T0 + 46 * MS, record, &rec);
  assert_int_equal(rec.nfinals, 0);
  assert_int_equal(pn__recovery_rto_deadline(r), T0 + 154 * MS);
  /* It arrived: named at 60, LATE. */
  (void)ack_at(r, 3, bit(3, 1) | bit(3, 2), T0 + 60 * MS, &rec);
  assert_int_equal(r->late, 2);
  assert_int_equal(r->suspects, 0);
  /* 4 and 5 on path 1 at 100, suspect once its RTO passed with no
   * acknowledgement of it; at t1 + 1 ms one names 5, sent after 4: 4 now
   * waits one RTO from its declaration, and is LOST then. */
  (void)send_on(r, T0 + 100 * MS, 1);
  (void)send_on(r, T0 + 100 * MS, 1);
  uint64_t rto1 = r->path[1].rto_ns;
  uint64_t t1 = T0 + 100 * MS + rto1;
  assert_true(pn__recovery_on_rto(r, t1, record, &rec));
  assert_int_equal(r->path[1].suspects, 2);
  (void)ack_at(r, 5, 0, t1 + 1 * MS, &rec);
  assert_int_equal(r->late, 3);
  assert_int_equal(r->path[1].backoff, 0);
  (void)pn__recovery_on_rto(r, t1 + rto1 - 1, record, &rec);
  assert_int_equal(rec.nfinals, 0);
  (void)pn__recovery_on_rto(r, t1 + rto1, record, &rec);
  assert_int_equal(rec.nfinals, 1);
  assert_int_equal(rec.finals[0].seq, 4);
  assert_int_equal(r->suspects, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(acks_name_128_below_then_suspects_end,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(gap_rule_per_path, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(windows_per_path, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(round_trip_and_rto_per_path,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(coupled_increase, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(ack_judges_only_its_reach, recovery_setup,
                                      recovery_teardown),
      cmocka_unit_test_setup_teardown(overtaken_path_measures_its_round_trip,
                                      recovery_setup, recovery_teardown),
      cmocka_unit_test_setup_teardown(
          a_suspect_waits_for_an_acknowledgement_past_it, recovery_setup,
          recovery_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
