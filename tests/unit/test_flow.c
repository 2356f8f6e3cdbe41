/* actors/flow.c, the receive window, alone: what messages cost, when a
 * sender is blocked and probes, and, over a seeded lossy and reordering
 * channel whose first message is withheld for a while, that a receiver
 * checking its buffer never has to refuse a sender that keeps to the
 * window, never holds more than its capacity, and that the window opens
 * again once the gap fills. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "actors/flow.h"
#include "tests/support/seed.h"

static void costs(void **state) {
  (void)state;
  assert_int_equal(pn__flow_cost(PN_CHANNEL_ORDERED, 1, 100), 100);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_ORDERED, 0, 100), 100);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_ORDERED, 9, 10000), 10000);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_RELIABLE, 1, 100), 0);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_RELIABLE, 3, 3000), 3000);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_RELIABLE_UNORDERED, 1, 100), 0);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_RELIABLE_UNORDERED, 2, 2000), 2000);
  /* Unreliable pieces are never resent: a cost could never come back. */
  assert_int_equal(pn__flow_cost(PN_CHANNEL_UNRELIABLE, 5, 5000), 0);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_UNSEQUENCED, 5, 5000), 0);
  assert_int_equal(pn__flow_cost(PN_CHANNEL_ORDERED, 1, 0), 0);
}

static void sender_blocks_and_probes(void **state) {
  (void)state;
  pn__flow f;
  pn__flow_init(&f, 1u << 20);
  assert_int_equal(pn__flow_window(&f), PN__FLOW_INITIAL);
  assert_true(pn__flow_may_start(&f, PN__FLOW_INITIAL - 100));
  pn__flow_started(&f, PN__FLOW_INITIAL - 100);
  assert_int_equal(pn__flow_window(&f), 100);
  assert_false(f.blocked);
  assert_true(pn__flow_may_start(&f, 0)); /* costs nothing: always */
  assert_false(pn__flow_may_start(&f, 101));
  assert_true(f.blocked);
  /* Blocked with something in flight: its acknowledgement will tell. */
  assert_false(pn__flow_probe_due(&f, 1, 1000));
  assert_int_equal(pn__flow_probe_deadline(&f, 1), 0);
  /* Nothing in flight: a probe at once, then after first_ns, doubling up
   * to max_ns. */
  assert_true(pn__flow_probe_due(&f, 0, 1000));
  assert_true(pn__flow_probe_deadline(&f, 0) <= 1000);
  uint64_t now = 1000, waits[6];
  for (int i = 0; i < 6; i++) {
    pn__flow_probed(&f, now, 10, 100);
    waits[i] = f.probe_at - now;
    assert_false(pn__flow_probe_due(&f, 0, f.probe_at - 1));
    assert_true(pn__flow_probe_due(&f, 0, f.probe_at));
    assert_int_equal(pn__flow_probe_deadline(&f, 0), f.probe_at);
    now = f.probe_at;
  }
  const uint64_t want[6] = {10, 20, 40, 80, 100, 100};
  assert_memory_equal(waits, want, sizeof want);
  /* An older (smaller or equal) limit changes nothing; a larger one
   * unblocks and starts the probes over. */
  assert_false(pn__flow_on_limit(&f, PN__FLOW_INITIAL));
  assert_false(pn__flow_on_limit(&f, 10));
  assert_true(f.blocked);
  assert_true(pn__flow_on_limit(&f, PN__FLOW_INITIAL + 1));
  assert_false(f.blocked);
  assert_int_equal(f.probe_wait_ns, 0);
  assert_int_equal(pn__flow_probe_deadline(&f, 0), 0);
  assert_true(pn__flow_may_start(&f, 101));
}

static void receiver_accounts(void **state) {
  (void)state;
  pn__flow f;
  pn__flow_init(&f, 1000);
  assert_int_equal(pn__flow_advertised(&f), 1000);
  assert_true(pn__flow_fits(&f, 1000));
  assert_false(pn__flow_fits(&f, 1001));
  pn__flow_hold(&f, 600);
  assert_true(pn__flow_fits(&f, 400));
  assert_false(pn__flow_fits(&f, 401));
  assert_false(pn__flow_fits(&f, UINT64_MAX)); /* no overflow */
  pn__flow_unhold(&f, 600);
  pn__flow_release(&f, 600);
  assert_int_equal(f.held, 0);
  assert_int_equal(f.held_max, 600);
  assert_int_equal(pn__flow_advertised(&f), 1600);
}

/* --- a simulated ORDERED channel ------------------------------------------
 * Messages 1..N of random sizes; the network loses, reorders and delays
 * datagrams (one message each) and the limits that ride back on
 * acknowledgements. The receiver holds messages past a gap, checks its
 * buffer as peer_recv.c does, and releases in order. */

enum { N = 3000, CAP = 64 << 10, NET_MAX = 256 };

typedef struct sim {
  uint64_t rng;
  pn__flow tx, rx;
  uint32_t len[N + 1];
  bool arrived[N + 1];
  uint64_t next_new;      /* sender: next message to start */
  uint64_t next_expected; /* receiver */
  uint64_t net[NET_MAX];  /* messages on the way (0: free) */
  uint64_t rtx[N + 1];    /* lost ones, to send again */
  size_t nrtx;
  bool parked; /* message 1, kept back */
  uint64_t refused, blocked_steps, max_held, probes;
} sim;

static void sim_arrive(sim *s, uint64_t m) {
  if (m < s->next_expected || s->arrived[m]) {
    return; /* a duplicate */
  }
  uint64_t len = s->len[m];
  if (!pn__flow_fits(&s->rx, len)) {
    s->refused++; /* dropped unacknowledged: sent again */
    s->rtx[s->nrtx++] = m;
    return;
  }
  s->arrived[m] = true;
  if (m != s->next_expected) {
    pn__flow_hold(&s->rx, len);
  } else {
    pn__flow_release(&s->rx, len);
    s->next_expected++;
    while (s->next_expected <= N && s->arrived[s->next_expected]) {
      uint64_t l = s->len[s->next_expected++];
      pn__flow_unhold(&s->rx, l);
      pn__flow_release(&s->rx, l);
    }
  }
  if (s->rx.held > s->max_held) {
    s->max_held = s->rx.held;
  }
  /* The acknowledgement, with the limit, may be lost. */
  if (pn_test_rand(&s->rng) % 10) {
    (void)pn__flow_on_limit(&s->tx, pn__flow_advertised(&s->rx));
  }
}

static bool sim_put(sim *s, uint64_t m) {
  for (size_t i = 0; i < NET_MAX; i++) {
    if (!s->net[i]) {
      s->net[i] = m;
      return true;
    }
  }
  return false;
}

static void sim_run(sim *s, uint64_t withhold_until) {
  for (uint64_t step = 0; s->next_expected <= N; step++) {
    assert_true(step < 1000000); /* bounded: fails rather than spins */
    /* Send: resends first (never held back by the window), then new
     * messages in order while the window allows. Message 1 is started
     * but kept back until withhold_until. */
    while (s->nrtx && sim_put(s, s->rtx[s->nrtx - 1])) {
      s->nrtx--;
    }
    while (s->next_new <= N) {
      uint64_t m = s->next_new;
      uint64_t cost = pn__flow_cost(PN_CHANNEL_ORDERED, 1, s->len[m]);
      if (!pn__flow_may_start(&s->tx, cost)) {
        s->blocked_steps++;
        break;
      }
      pn__flow_started(&s->tx, cost);
      s->next_new++;
      if (m == 1) {
        s->parked = true;
      } else if (!sim_put(s, m)) {
        s->rtx[s->nrtx++] = m; /* as if lost */
      }
    }
    /* Blocked with nothing on the way: a probe, whose acknowledgement
     * (when not lost) brings the limit. */
    bool empty = !s->nrtx && !s->parked;
    for (size_t i = 0; empty && i < NET_MAX; i++) {
      empty = !s->net[i];
    }
    if (empty && pn__flow_probe_due(&s->tx, 0, step)) {
      pn__flow_probed(&s->tx, step, 1, 16);
      s->probes++;
      if (pn_test_rand(&s->rng) % 10) {
        (void)pn__flow_on_limit(&s->tx, pn__flow_advertised(&s->rx));
      }
    }
    if (s->parked && step >= withhold_until) {
      s->rtx[s->nrtx++] = 1;
      s->parked = false;
    }
    /* The network: random datagrams arrive (reordered) or are lost. */
    for (int k = 0; k < 8; k++) {
      size_t i = pn_test_rand(&s->rng) % NET_MAX;
      uint64_t m = s->net[i];
      if (!m) {
        continue;
      }
      s->net[i] = 0;
      if (pn_test_rand(&s->rng) % 100 < 15) {
        s->rtx[s->nrtx++] = m; /* lost: the sender finds out, resends */
      } else {
        sim_arrive(s, m);
      }
    }
  }
}

static void window_holds_under_loss_and_withholding(void **state) {
  (void)state;
  sim *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->rng = pn_test_seed();
  pn__flow_init(&s->tx, CAP);
  pn__flow_init(&s->rx, CAP);
  /* The sender starts from PN__FLOW_INITIAL, the receiver's capacity. */
  for (uint64_t m = 1; m <= N; m++) {
    s->len[m] = 1 + (uint32_t)(pn_test_rand(&s->rng) % 4000);
  }
  s->next_new = s->next_expected = 1;
  sim_run(s, 2000);
  /* Everything arrived in order; the receiver never had to refuse a
   * sender within its window, nor held more than its capacity; while
   * message 1 was withheld the window closed and the sender stopped. */
  assert_int_equal(s->next_expected, N + 1);
  assert_int_equal(s->refused, 0);
  assert_true(s->max_held <= CAP);
  assert_true(s->max_held > CAP - 4000);
  assert_true(s->blocked_steps > 0);
  assert_int_equal(s->rx.held, 0);
  assert_int_equal(s->rx.released, s->tx.sent);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(costs),
      cmocka_unit_test(sender_blocks_and_probes),
      cmocka_unit_test(receiver_accounts),
      cmocka_unit_test(window_holds_under_loss_and_withholding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
