/* actors/recovery.c under a seeded sender and receiver over a lossy,
 * queue-limited channel, checking the invariants (every datagram resolved
 * once, nothing that arrived reported lost but rarely, the window within
 * its bounds), and actors/ackwin.h against a plain set. The seed is
 * pn_test_seed()'s (tests/support/seed.c): PEERNET_TEST_SEED replays a
 * run.
 */
#include "tests/unit/recovery_test.h"

/* ackwin.h against a plain set of every sequence received. */
static void ackwin_matches_a_set(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() | 1;
  enum { SEQS = 1 << 20 };
  static bool got[SEQS];
  memset(got, 0, sizeof got);
  pn__ackwin w = {0};
  uint64_t highest = 0;
  for (int i = 0; i < 20000; i++) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    /* mostly forward, sometimes far ahead, sometimes back */
    uint64_t step = rng % 16;
    uint64_t seq = highest + 1 +
                   (step < 10   ? 0
                    : step < 14 ? rng % 5
                                : rng % (PN__RX_WINDOW + 200));
    if (step == 15 && highest > PN__RX_WINDOW + 200) {
      seq = highest - rng % (PN__RX_WINDOW + 200);
    }
    if (seq == 0 || seq >= SEQS) {
      break;
    }
    uint64_t back = highest >= seq ? highest - seq : 0;
    bool expect_new =
        seq > highest || (back >= 1 && back <= PN__RX_WINDOW && !got[seq]);
    assert_int_equal(pn__ackwin_is_new(&w, seq), expect_new);
    if (!expect_new) {
      continue;
    }
    assert_int_equal(pn__ackwin_mark(&w, seq), seq > highest);
    got[seq] = true;
    highest = seq > highest ? seq : highest;
    assert_int_equal(w.highest, highest);
    for (uint64_t k = 1; k <= PN__RX_WINDOW && k < highest; k++) {
      bool bitset = w.bits[(k - 1) / 64] >> ((k - 1) % 64) & 1u;
      assert_int_equal(bitset, got[highest - k]);
    }
  }
}

/* --- seeded: a sender and a receiver over a lossy channel ---------------- */

static uint64_t xorshift64(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* True with probability permille / 1000. */
static bool chance(uint64_t *rng, uint32_t permille) {
  return xorshift64(rng) % 1000 < permille;
}

#define SIM_SEQS 8192u    /* sequences a run may use */
#define SIM_TRANSIT 2048u /* datagrams or acknowledgements on the wire */
#define SIM_SERIALISE_NS (100 * US) /* the bottleneck: 10,000 datagrams/s */
#define SIM_QUEUE_NS (20 * MS)      /* its queue */
#define SIM_ELICITING 2000          /* eliciting datagrams a run sends */

enum {
  SIM_UNSENT,
  SIM_UNRECORDED,
  SIM_IN_FLIGHT,
  SIM_SUSPECT,
  SIM_ACKED,
  SIM_LOST
};

typedef struct sim_datagram {
  uint64_t at, seq;
  bool eliciting;
} sim_datagram;

typedef struct sim_ack {
  uint64_t at, ack, bits[2];
  uint32_t delay_us;
} sim_ack;

typedef struct sim {
  pn__recovery r;
  uint64_t rng;
  uint32_t window, loss, ack_loss; /* loss in permille */
  uint8_t state[SIM_SEQS];
  bool delivered[SIM_SEQS];
  uint64_t eliciting_sent, resolved, acked, lost;
  uint64_t suspected, late, lost_delivered; /* lost_delivered: LOST though
                                                it arrived */
  uint64_t link_free_ns;                    /* when the bottleneck is free */
  /* the receiver, as actors/peer_recv.c keeps it */
  pn__ackwin rx;
  uint64_t rx_highest_ns, ack_timer;
  uint32_t rx_unacked;
  sim_datagram to_rx[SIM_TRANSIT];
  size_t n_to_rx;
  sim_ack to_tx[SIM_TRANSIT];
  size_t n_to_tx;
} sim;

static void sim_resolved(void *ctx, const pn__sent *e, pn__resolution res,
                         uint64_t now) {
  (void)now;
  sim *s = ctx;
  assert_true(e->seq > 0 && e->seq < SIM_SEQS);
  assert_false(e->in_flight);
  assert_int_equal(e->fstart, e->seq * 3);
  uint8_t *st = &s->state[e->seq];
  switch (res) {
  case PN__RES_ACKED:
  case PN__RES_LATE:
    /* from in flight, or from suspect; only what reached the receiver
     * can be acknowledged */
    assert_int_equal(*st, res == PN__RES_ACKED ? SIM_IN_FLIGHT : SIM_SUSPECT);
    assert_true(s->delivered[e->seq]);
    s->acked++;
    s->late += res == PN__RES_LATE;
    s->resolved++;
    *st = SIM_ACKED;
    break;
  case PN__RES_SUSPECT:
    assert_int_equal(*st, SIM_IN_FLIGHT);
    assert_true(e->suspect);
    s->suspected++;
    *st = SIM_SUSPECT;
    break;
  case PN__RES_LOST:
    assert_int_equal(*st, SIM_SUSPECT);
    s->lost++;
    s->lost_delivered += s->delivered[e->seq];
    s->resolved++;
    *st = SIM_LOST;
    break;
  }
}

/* 5 ms each way; one in 50 is held up to 3 ms more (and reordered). */
static uint64_t sim_delay(sim *s) {
  uint64_t d = 5 * MS;
  if (chance(&s->rng, 20)) {
    d += xorshift64(&s->rng) % (3 * MS);
  }
  return d;
}

/* The sender's link: a bottleneck of one datagram per SIM_SERIALISE_NS
 * behind a drop-tail queue of SIM_QUEUE_NS (a window above the path's
 * capacity first queues, then drops), then random loss. */
static void sim_transmit(sim *s, uint64_t seq, bool eliciting, uint64_t now) {
  uint64_t start = s->link_free_ns > now ? s->link_free_ns : now;
  if (start - now > SIM_QUEUE_NS) {
    return;
  }
  s->link_free_ns = start + SIM_SERIALISE_NS;
  if (chance(&s->rng, s->loss)) {
    return;
  }
  assert_true(s->n_to_rx < SIM_TRANSIT);
  s->to_rx[s->n_to_rx++] = (sim_datagram){
      .at = s->link_free_ns + sim_delay(s), .seq = seq, .eliciting = eliciting};
}

static void sim_send_ack(sim *s, uint64_t now) {
  s->ack_timer = 0;
  s->rx_unacked = 0;
  if (chance(&s->rng, s->ack_loss)) {
    return;
  }
  assert_true(s->n_to_tx < SIM_TRANSIT);
  s->to_tx[s->n_to_tx++] =
      (sim_ack){.at = now + sim_delay(s),
                .ack = s->rx.highest,
                .bits = {s->rx.bits[0], s->rx.bits[1]},
                .delay_us = (uint32_t)((now - s->rx_highest_ns) / US)};
}

/* The receiver: the sequence record of actors/peer_recv.c (ackwin.h); an
 * acknowledgement every second eliciting datagram, or 1 ms after one. */
static void sim_receive(sim *s, const sim_datagram *d, uint64_t now) {
  s->delivered[d->seq] = true;
  if (!pn__ackwin_is_new(&s->rx, d->seq)) {
    return;
  }
  if (pn__ackwin_mark(&s->rx, d->seq)) {
    s->rx_highest_ns = now;
  }
  if (!d->eliciting) {
    return;
  }
  if (++s->rx_unacked >= 2) {
    sim_send_ack(s, now);
  } else if (!s->ack_timer) {
    s->ack_timer = now + 1 * MS;
  }
}

/* The invariants; with timers_run (the RTO's deadline for `now` has been
 * handled), also that the gap rule's backstop did its part. */
static void sim_check(sim *s, uint64_t now, bool timers_run) {
  pn__recovery *r = &s->r;
  assert_int_equal(r->in_flight + r->suspects, s->eliciting_sent - s->resolved);
  assert_int_equal(s->resolved, s->acked + s->lost);
  assert_true(r->in_flight <= s->window);
  assert_true(r->path[0].cwnd >= PN__CWND_MIN * ONE);
  assert_true(r->path[0].cwnd <= (uint64_t)s->window * ONE);
  /* What the gap rule leaves in flight though its threshold or more sent
   * after it were acknowledged (one path: ordinals are sequences - 1) is
   * what no acknowledgement that named those could have named (below its
   * reach, recovery.h): once the RTO's deadline is handled, it is younger
   * than an RTO (older, it is declared then). */
  assert_true(r->path[0].reorder >= PN__LOSS_THRESHOLD &&
              r->path[0].reorder <= PN__REORDER_MAX);
  for (uint64_t q = r->oldest;
       timers_run && q + r->path[0].reorder < r->path[0].acked + 1 &&
       q < r->next_seq;
       q++) {
    if (s->state[q] == SIM_IN_FLIGHT) {
      assert_true(r->sent[q & r->sent_mask].sent_ns + pn__recovery_rto(r) >
                  now);
    }
  }
  /* suspects: none an acknowledgement can no longer name, and older than
   * anything in flight but what the gap rule had to leave (above: later
   * ones of its path acknowledged, by acknowledgements that could not
   * name it) */
  uint64_t suspects = 0;
  bool flight_seen = false;
  for (uint64_t q = r->oldest; q < r->next_seq; q++) {
    if (s->state[q] == SIM_SUSPECT) {
      assert_false(flight_seen);
      assert_true(q + PN__RX_WINDOW >= r->largest_acked);
      suspects++;
    }
    flight_seen |= s->state[q] == SIM_IN_FLIGHT &&
                   q + r->path[0].reorder >= r->path[0].acked + 1;
  }
  assert_int_equal(suspects, r->suspects);
}

static void sim_app_send(sim *s, uint64_t now) {
  pn__recovery *r = &s->r;
  /* Sometimes the application has little to send (RFC 7661's case). */
  uint64_t offer = chance(&s->rng, 500) ? UINT64_MAX : xorshift64(&s->rng) % 4;
  while (offer-- && s->eliciting_sent < SIM_ELICITING &&
         pn__recovery_can_send(r, 0)) {
    uint64_t seq = r->next_seq;
    assert_true(seq + 1 < SIM_SEQS);
    pn__sent *e = pn__recovery_sent(r, now, 1200, true, false, 0);
    assert_non_null(e);
    e->fstart = seq * 3;
    s->state[seq] = SIM_IN_FLIGHT;
    s->eliciting_sent++;
    sim_transmit(s, seq, true, now);
    if (chance(&s->rng, 125)) { /* an acknowledgement of its own */
      uint64_t a = r->next_seq;
      assert_null(pn__recovery_sent(r, now, 40, false, false, 0));
      s->state[a] = SIM_UNRECORDED;
      sim_transmit(s, a, false, now);
    }
  }
}

static sim *sim_live; /* the run in progress, for sim_teardown() */

static void sim_run(uint64_t seed, uint32_t window, uint32_t loss,
                    uint32_t ack_loss) {
  sim *s = calloc(1, sizeof *s);
  assert_non_null(s);
  sim_live = s;
  s->rng = seed ? seed : 1;
  s->window = window;
  s->loss = loss;
  s->ack_loss = ack_loss;
  pn__recovery_limits lim = limits(window);
  assert_int_equal(pn__recovery_init(&s->r, &lim), PN_OK);
  pn__recovery *r = &s->r;

  uint64_t now = T0;
  uint64_t app_tick = now;
  for (uint64_t steps = 0;; steps++) {
    assert_true(steps < 10000000);
    if (now >= app_tick) {
      sim_app_send(s, now);
      app_tick = now + 1 * MS;
    }
    /* the next event */
    uint64_t next = UINT64_MAX;
    if (s->eliciting_sent < SIM_ELICITING) {
      next = app_tick;
    }
    for (size_t i = 0; i < s->n_to_rx; i++) {
      next = s->to_rx[i].at < next ? s->to_rx[i].at : next;
    }
    for (size_t i = 0; i < s->n_to_tx; i++) {
      next = s->to_tx[i].at < next ? s->to_tx[i].at : next;
    }
    if (s->ack_timer && s->ack_timer < next) {
      next = s->ack_timer;
    }
    uint64_t deadline = pn__recovery_rto_deadline(r);
    if (deadline && deadline < next) {
      next = deadline;
    }
    if (next == UINT64_MAX) {
      break;
    }
    assert_true(next >= now);
    now = next;

    for (size_t i = 0; i < s->n_to_rx;) {
      if (s->to_rx[i].at <= now) {
        sim_datagram d = s->to_rx[i];
        s->to_rx[i] = s->to_rx[--s->n_to_rx];
        sim_receive(s, &d, now);
      } else {
        i++;
      }
    }
    if (s->ack_timer && s->ack_timer <= now) {
      sim_send_ack(s, now);
    }
    for (size_t i = 0; i < s->n_to_tx;) {
      if (s->to_tx[i].at <= now) {
        sim_ack a = s->to_tx[i];
        s->to_tx[i] = s->to_tx[--s->n_to_tx];
        uint32_t flags = pn__recovery_on_ack(r, a.ack, a.bits, a.delay_us, now,
                                             sim_resolved, s);
        if (flags & PN__ACK_RTT) {
          assert_true(flags & PN__ACK_NEW);
        }
        (void)pn__recovery_advance(r, 0);
        sim_check(s, now, false);
      } else {
        i++;
      }
    }
    /* Acknowledgements just processed may have moved it. */
    deadline = pn__recovery_rto_deadline(r);
    if (deadline && deadline <= now) {
      /* At its deadline the RTO finds the oldest datagram, or the
       * earliest suspect's wait is over; or that earliest had ended
       * (the suspects' bounds), which the call made exact: the
       * next deadline is later. */
      uint64_t suspects = r->suspects;
      bool declared = pn__recovery_on_rto(r, now, sim_resolved, s);
      assert_true(declared || r->suspects < suspects ||
                  pn__recovery_rto_deadline(r) > now);
      (void)pn__recovery_advance(r, 0);
    }
    sim_check(s, now, true);
  }

  /* Everything sent was resolved, exactly once. */
  assert_int_equal(s->eliciting_sent, SIM_ELICITING);
  assert_int_equal(s->resolved, SIM_ELICITING);
  assert_int_equal(r->in_flight, 0);
  assert_int_equal(pn__recovery_advance(r, 7), 7);
  assert_int_equal(pn__recovery_rto_deadline(r), 0);
  for (uint64_t q = 1; q < r->next_seq; q++) {
    assert_true(s->state[q] == SIM_UNRECORDED || s->state[q] == SIM_ACKED ||
                s->state[q] == SIM_LOST);
  }
  printf("# window %u loss %u ack loss %u (permille): %" PRIu64
         " declared lost, %" PRIu64 " of them arrived after all, %" PRIu64
         " lost (%" PRIu64 " of which had arrived)\n",
         window, loss, ack_loss, s->suspected, s->late, s->lost,
         s->lost_delivered);
  assert_int_equal(r->suspects, 0);
  assert_int_equal(s->suspected, s->late + s->lost);
  if (ack_loss <= 50) {
    /* Reordered datagrams and lost acknowledgements are repaired: under
     * 0.5% of what arrived is reported lost. */
    assert_true(s->lost_delivered * 200 < SIM_ELICITING);
  }
  if (loss == 0 && ack_loss == 0) {
    /* a channel without random loss still drops at its queue and
     * reorders, but most datagrams are acknowledged */
    assert_true(s->acked > SIM_ELICITING / 2);
  }
  pn__recovery_fini(r);
  free(s);
  sim_live = NULL;
}

static int sim_teardown(void **state) {
  (void)state;
  if (sim_live) {
    pn__recovery_fini(&sim_live->r);
    free(sim_live);
    sim_live = NULL;
  }
  return 0;
}

static void randomized_lossy_channel(void **state) {
  (void)state;
  static const struct {
    uint32_t window, loss, ack_loss;
  } runs[] = {
      {64, 0, 0},      {32, 10, 10},   {48, 50, 0},    {64, 100, 50},
      {200, 200, 100}, {32, 300, 300}, {1024, 50, 50}, {100, 0, 500},
      {256, 0, 0},     {1024, 0, 0},
  };
  uint64_t seed = pn_test_seed();
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    /* one stream per run, derived from the seed */
    uint64_t run_seed = seed ^ ((i + 1) * 0x9E3779B97F4A7C15ull);
    sim_run(run_seed, runs[i].window, runs[i].loss, runs[i].ack_loss);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ackwin_matches_a_set),
      cmocka_unit_test_teardown(randomized_lossy_channel, sim_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
