/* Credit of a link's lanes (nodes/credit.h), without a network: an inbox
 * stands in for the node actor. A thread takes a window's worth and no
 * more; an empty lane takes a message larger than the window; what the
 * other end sends past its credit is refused; grants are asked once a
 * quarter of the window (or everything that arrived) is consumed, and
 * once until the node actor has answered; limits only grow. An actor past
 * the window is muted and released by a grant (test_node.c floods across
 * two nodes). pn_test_runtime_end proves every reference was given back.
 */
#include <string.h>

#include "nodes/credit.h"
#include "nodes/node.h"
#include "peernet/inbox.h"
#include "peernet_node.pb-c.h"
#include "tests/support/test_support.h"

enum { WINDOW = 64 << 10, COST = 1000 + PN__CREDIT_OVERHEAD };

typedef struct fixture {
  pn_runtime *rt;
  pn_actor *node; /* an inbox in the node actor's place */
  pn__credit *c;
} fixture;

static void open_fixture(fixture *f) {
  f->rt = pn_test_runtime(1);
  PN_ASSERT_OK(pn_inbox_open(f->rt, "node", &f->node));
  f->c = pn__credit_new(f->node, NULL, NULL, 2, WINDOW);
  assert_non_null(f->c);
  pn__credit_start(f->c, WINDOW);
}

static void close_fixture(fixture *f) {
  pn__credit_release(f->c);
  PN_ASSERT_OK(pn_inbox_close(f->node));
  PN_ASSERT_OK(pn_runtime_shutdown(f->rt, UINT64_MAX));
  pn_test_runtime_end(f->rt);
}

/* Grants asked of the node actor so far (each is answered, as the node
 * actor would with no link: nothing sent, the flag cleared). */
static int grants_asked(fixture *f) {
  int n = 0;
  pn_msg *m = NULL;
  while (pn_inbox_receive(f->node, 0, &m) == PN_OK) {
    assert_int_equal(pn_msg_type(m), PN__NODE_CREDIT);
    assert_ptr_equal(pn_msg_data(m), f->c);
    pn__credit_grant_due(f->c);
    pn_inbox_release(f->node, m);
    n++;
  }
  return n;
}

static void a_thread_takes_a_window(void **state) {
  (void)state;
  fixture f;
  open_fixture(&f);
  bool mute = true;
  int taken = 0;
  while (pn__credit_take(f.c, 1, COST, false, &mute) == PN_OK) {
    assert_false(mute);
    taken++;
  }
  assert_int_equal(taken, WINDOW / COST);
  /* Refused: nothing taken, and the other lane is untouched. */
  assert_int_equal(atomic_load(&f.c->lane[0].sent), (uint64_t)taken * COST);
  PN_ASSERT_OK(pn__credit_take(f.c, 2, COST, false, &mute));
  /* A failed send gives its cost back. */
  pn__credit_untake(f.c, 1, COST);
  PN_ASSERT_OK(pn__credit_take(f.c, 1, COST, false, &mute));
  /* A grant raises the limit; a smaller one later changes nothing. */
  uint64_t limits[2] = {2 * WINDOW, WINDOW};
  Peernet__Node__V1__Credit cr = PEERNET__NODE__V1__CREDIT__INIT;
  cr.n_limits = 2;
  cr.limits = limits;
  pn__credit_heard(f.c, &cr);
  assert_int_equal(atomic_load(&f.c->lane[0].limit), 2 * WINDOW);
  limits[0] = WINDOW;
  pn__credit_heard(f.c, &cr);
  assert_int_equal(atomic_load(&f.c->lane[0].limit), 2 * WINDOW);
  /* More limits than lanes: the extra ones are ignored. */
  uint64_t three[3] = {3 * WINDOW, 3 * WINDOW, 3 * WINDOW};
  cr.n_limits = 3;
  cr.limits = three;
  pn__credit_heard(f.c, &cr);
  assert_int_equal(atomic_load(&f.c->lane[1].limit), 3 * WINDOW);
  close_fixture(&f);
}

static void an_empty_lane_takes_a_large_message(void **state) {
  (void)state;
  fixture f;
  open_fixture(&f);
  bool mute = false;
  /* Less than a quantum out: still empty enough. */
  PN_ASSERT_OK(pn__credit_take(f.c, 1, WINDOW / 16, false, &mute));
  PN_ASSERT_OK(pn__credit_take(f.c, 1, 4 * WINDOW, false, &mute));
  assert_false(mute);
  /* Not empty now: nothing more until the other end consumed it. */
  PN_ASSERT_ERR(PN_EAGAIN, pn__credit_take(f.c, 1, COST, false, &mute));
  uint64_t limits[2] = {4 * WINDOW + WINDOW / 16 + WINDOW, WINDOW};
  Peernet__Node__V1__Credit cr = PEERNET__NODE__V1__CREDIT__INIT;
  cr.n_limits = 2;
  cr.limits = limits;
  pn__credit_heard(f.c, &cr);
  PN_ASSERT_OK(pn__credit_take(f.c, 1, 4 * WINDOW, false, &mute));
  close_fixture(&f);
}

static void a_sender_past_its_credit_is_refused(void **state) {
  (void)state;
  fixture f;
  open_fixture(&f);
  uint64_t most = 2 * WINDOW + PN__CREDIT_LARGEST;
  assert_true(pn__credit_received(f.c, 1, most - COST));
  assert_true(pn__credit_received(f.c, 1, COST));
  assert_false(pn__credit_received(f.c, 1, 1)); /* one byte too many */
  /* Refused: not counted, so consuming frees room as before. */
  assert_int_equal(atomic_load(&f.c->lane[0].received), most);
  pn__credit_consumed(f.c, 1, COST);
  assert_true(pn__credit_received(f.c, 1, COST));
  assert_true(pn__credit_received(f.c, 2, COST)); /* lanes apart */
  (void)grants_asked(&f);
  close_fixture(&f);
}

static void grants_are_asked_once_when_due(void **state) {
  (void)state;
  fixture f;
  open_fixture(&f);
  int n = 10 * WINDOW / COST;
  for (int i = 0; i < n; i++) {
    assert_true(pn__credit_received(f.c, 1, COST));
  }
  /* Less than a quarter of the window: no grant. */
  int quarter = (WINDOW / 4 + COST - 1) / COST;
  for (int i = 0; i < quarter - 1; i++) {
    pn__credit_consumed(f.c, 1, COST);
  }
  assert_int_equal(grants_asked(&f), 0);
  /* The quarter, and more before the node actor answers: one ask. */
  for (int i = 0; i < 3; i++) {
    pn__credit_consumed(f.c, 1, COST);
  }
  assert_int_equal(grants_asked(&f), 1);
  uint64_t granted = atomic_load(&f.c->lane[0].granted);
  assert_int_equal(granted, (uint64_t)(quarter + 2) * COST);
  /* Everything that arrived consumed: asked below a quarter, once a
   * quantum (a sixteenth) is consumed, never for less (a ping-pong would
   * get a Credit for every message). */
  int quantum = (WINDOW / 16 + COST - 1) / COST;
  for (int i = quarter + 2; i < n - quantum; i++) {
    pn__credit_consumed(f.c, 1, COST);
  }
  (void)grants_asked(&f);
  for (int i = 0; i < quantum - 1; i++) {
    pn__credit_consumed(f.c, 1, COST);
  }
  assert_int_equal(grants_asked(&f), 0);
  pn__credit_consumed(f.c, 1, COST);
  assert_int_equal(grants_asked(&f), 1);
  /* One more arrives and is consumed at once: less than a quantum. */
  assert_true(pn__credit_received(f.c, 1, COST));
  pn__credit_consumed(f.c, 1, COST);
  assert_int_equal(grants_asked(&f), 0);
  assert_int_equal(atomic_load(&f.c->lane[0].granted),
                   (uint64_t)(n + 1) * COST - COST);
  close_fixture(&f);
}

/* A grant asked of a node actor that is gone: the ask gives its
 * reference back (no leak), and the flag is cleared. */
static void a_grant_for_a_gone_node_is_dropped(void **state) {
  (void)state;
  fixture f;
  open_fixture(&f);
  PN_ASSERT_OK(pn_inbox_close(f.node));
  f.node = NULL;
  assert_true(pn__credit_received(f.c, 1, WINDOW));
  pn__credit_consumed(f.c, 1, WINDOW);
  assert_false(atomic_load(&f.c->grant_due));
  pn__credit_release(f.c);
  PN_ASSERT_OK(pn_runtime_shutdown(f.rt, UINT64_MAX));
  pn_test_runtime_end(f.rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_thread_takes_a_window),
      cmocka_unit_test(an_empty_lane_takes_a_large_message),
      cmocka_unit_test(a_sender_past_its_credit_is_refused),
      cmocka_unit_test(grants_are_asked_once_when_due),
      cmocka_unit_test(a_grant_for_a_gone_node_is_dropped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
