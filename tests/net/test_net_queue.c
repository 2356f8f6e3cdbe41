/* The send queue's edges, on both I/O backends: messages larger than
 * max_queued, PN_MSG_PEER_WRITABLE meaning the next send is taken, sends
 * and disconnects meeting (what pn_peer_disconnect() promises in net.h),
 * no message held behind another channel's, and the graceful disconnect
 * (pn_peer_disconnect_later): everything queued arrives, then the disconnect
 * with its reason, within a bound even when the other side is gone.
 *
 * A message kept in the queue for as long as a test needs is the
 * client's own, held back unsent by the host's test hook (test_withhold,
 * actors/host.h), so the queue's contents never depend on timing. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/host.h"
#include "tests/net/net_harness.h"

enum { BIG = 2 << 20 };

/* Waits for the app's PN_MSG_PEER_WRITABLE number `n` (from 1). */
static void wait_writable(net_app *a, uint64_t n) {
  pn_test_latch w;
  pn_test_latch_init(&w, 1);
  pthread_mutex_lock(&a->lock);
  a->on_writable = &w;
  bool already = a->writable >= n;
  pthread_mutex_unlock(&a->lock);
  assert_true(already || pn_test_latch_wait(&w, NET_WAIT_MS));
  pthread_mutex_lock(&a->lock);
  a->on_writable = NULL;
  pthread_mutex_unlock(&a->lock);
  pn_test_latch_fini(&w);
}

static uint64_t app_count(net_app *a, const uint64_t *field) {
  pthread_mutex_lock(&a->lock);
  uint64_t v = *field;
  pthread_mutex_unlock(&a->lock);
  return v;
}

/* With 1,000 bytes queued (message 1, held back), a 2 MiB message is
 * taken under the default 512 KiB max_queued: less than the limit is
 * queued. (It was refused with PN_EAGAIN unless nothing was queued.) Both
 * arrive once message 1 goes. */
static void a_message_larger_than_max_queued_is_taken(void **state) {
  (void)state;
  net_pair p;
  net_pair_opts o = {.nch = 1, .cap = 4};
  net_pair_start(&p, &o);
  atomic_store(&p.client->test_withhold, 1);
  net_pair_connect(&p, &o, NULL);
  net_pair_wait_connected(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, 2);
  p.server_app.on_packet = &got;
  pn_channel *ch = pn_peer_channel(p.peer, 0);
  net_send_range(ch, 1, 1, 1000);
  uint8_t *big = malloc(BIG);
  net_fill(big, BIG, 2);
  uint64_t id = 0;
  PN_ASSERT_OK(pn_channel_send(ch, big, BIG, &id));
  assert_int_equal(id, 2);
  /* Message 1 held the queue: the large one waits behind it. */
  assert_true(net_peer_stats(p.peer).queued_bytes >= BIG);
  atomic_store(&p.client->test_withhold, 0);
  PN_ASSERT_OK(pn_peer_disconnect_later(p.peer, 3, 10000000));
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  assert_true(pn_test_latch_wait(&p.disconnected, NET_WAIT_MS));
  assert_int_equal(p.server_app.ids[0], 1);
  assert_int_equal(p.server_app.ids[1], 2);
  assert_int_equal(p.server_app.bad, 0);
  assert_int_equal(p.client_app.acked, 2);
  free(big);
  pn_test_latch_fini(&got);
  net_pair_close(&p);
}

/* Channels do not queue behind each other at the sender: a 2 MiB message
 * on one channel, already leaving (paced at 8 MB/s, so it takes about a
 * quarter of a second), does not hold back a small one sent after it on
 * another channel, which arrives first; both arrive whole. (With one FIFO
 * for all channels the small one left after the big one's last
 * fragment.) */
static void a_big_message_does_not_hold_back_another_channel(void **state) {
  (void)state;
  net_pair p;
  pn_host_config ccfg = PN_HOST_CONFIG_INIT;
  ccfg.send_rate = 8000000;
  ccfg.max_queued = 2 * BIG; /* the small one is taken at once */
  pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_ORDERED};
  net_pair_open(&p,
                &(net_pair_opts){
                    .client_cfg = &ccfg, .nch = 2, .kinds = kinds, .cap = 4});
  net_pair_wait_connected(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, 2);
  p.server_app.on_packet = &got;
  uint8_t *big = malloc(BIG);
  assert_non_null(big);
  net_fill(big, BIG, 1);
  uint64_t out0 = net_peer_stats(p.peer).datagrams_out;
  PN_ASSERT_OK(pn_channel_send(pn_peer_channel(p.peer, 0), big, BIG, NULL));
  for (uint64_t t0 = net_now_ms();
       net_peer_stats(p.peer).datagrams_out < out0 + 8 &&
       net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
  }
  pn_peer_stats mid = net_peer_stats(p.peer);
  assert_true(mid.datagrams_out >= out0 + 8);
  net_send_range(pn_peer_channel(p.peer, 1), 2, 2, 100);
  uint64_t t0 = net_now_ms();
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  fprintf(stderr,
          "# the small message sent after %" PRIu64
          " of the big one's datagrams; both in %" PRIu64 " ms\n",
          mid.datagrams_out - out0, net_now_ms() - t0);
  pthread_mutex_lock(&p.server_app.lock);
  assert_int_equal(p.server_app.packets, 2);
  assert_int_equal(p.server_app.ids[0], 2);
  assert_int_equal(p.server_app.ids[1], 1);
  assert_int_equal(p.server_app.bad, 0);
  pthread_mutex_unlock(&p.server_app.lock);
  free(big);
  pn_test_latch_fini(&got);
  net_pair_close(&p);
}

/* 16 messages of 2 MiB under the default 512 KiB max_queued from an
 * application thread that waits for PN_MSG_PEER_WRITABLE after each
 * PN_EAGAIN: every retry is taken (no spinning: it fired at half the
 * limit, when a 2 MiB message could not be taken, and 8 K to 39 K retries
 * were seen), and all arrive in order. */
static void writable_means_the_next_send_is_taken(void **state) {
  (void)state;
  enum { N = 16 };
  net_pair p;
  pn_channel_kind kind = PN_CHANNEL_ORDERED;
  net_pair_open(&p, &(net_pair_opts){.nch = 1, .kinds = &kind, .cap = N});
  net_pair_wait_connected(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, N);
  p.server_app.on_packet = &got;
  pn_channel *ch = pn_peer_channel(p.peer, 0);
  uint8_t *big = malloc(BIG);
  uint64_t eagains = 0;
  for (uint64_t i = 1; i <= N; i++) {
    net_fill(big, BIG, i);
    pn_err err = pn_channel_send(ch, big, BIG, NULL);
    if (err == PN_EAGAIN) {
      eagains++;
      wait_writable(&p.client_app, eagains);
      err = pn_channel_send(ch, big, BIG, NULL);
    }
    PN_ASSERT_OK(err); /* the retry after WRITABLE is taken */
  }
  printf("# %" PRIu64 " of %d sends waited for WRITABLE\n", eagains, N);
  assert_true(eagains > 0); /* the limit was reached */
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pthread_mutex_lock(&p.server_app.lock);
  for (uint64_t i = 0; i < N; i++) {
    assert_int_equal(p.server_app.ids[i], i + 1);
  }
  assert_int_equal(p.server_app.bad, 0);
  pthread_mutex_unlock(&p.server_app.lock);
  assert_int_equal(app_count(&p.client_app, &p.client_app.writable), eagains);
  free(big);
  pn_test_latch_fini(&got);
  net_pair_close(&p);
}

/* A second pn_peer_disconnect() is refused (it returned PN_OK), and so
 * is a send right after the first (it returned PN_OK and an id, and the
 * message then vanished with neither ACKED nor LOST). */
static void sends_and_disconnects_after_a_disconnect_are_refused(void **state) {
  (void)state;
  net_pair p;
  net_pair_open(&p, &(net_pair_opts){.nch = 1, .cap = 4});
  net_pair_wait_connected(&p);
  pn_channel *ch = pn_peer_channel(p.peer, 0);
  PN_ASSERT_OK(pn_peer_disconnect(p.peer, 4));
  PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect(p.peer, 5));
  PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect_later(p.peer, 5, 1000000));
  uint64_t id = 77;
  uint8_t buf[16];
  net_fill(buf, sizeof buf, 1);
  PN_ASSERT_ERR(PN_ECLOSED, pn_channel_send(ch, buf, sizeof buf, &id));
  assert_int_equal(id, 77); /* untouched */
  assert_true(pn_test_latch_wait(&p.disconnected, NET_WAIT_MS));
  PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect(p.peer, 6));
  assert_int_equal(p.client_app.reason, 4);
  assert_false(p.client_app.remote);
  assert_int_equal(p.server_app.reason, 4);
  assert_true(p.server_app.remote);
  assert_int_equal(p.client_app.acked + p.client_app.lost, 0);
  assert_int_equal(p.server_app.packets, 0);
  net_pair_close(&p);
}

/* A sender that got PN_EAGAIN and waits for PN_MSG_PEER_WRITABLE is not
 * left waiting when the peer disconnects: WRITABLE comes, and the retry
 * returns PN_ECLOSED. */
static void a_disconnect_wakes_a_sender_waiting_for_writable(void **state) {
  (void)state;
  net_pair p;
  pn_host_config ccfg = PN_HOST_CONFIG_INIT;
  ccfg.max_queued = 1024;
  net_pair_opts o = {.client_cfg = &ccfg, .nch = 1, .cap = 4};
  net_pair_start(&p, &o);
  atomic_store(&p.client->test_withhold, 1);
  net_pair_connect(&p, &o, NULL);
  net_pair_wait_connected(&p);
  pn_channel *ch = pn_peer_channel(p.peer, 0);
  uint8_t buf[2000];
  net_fill(buf, sizeof buf, 1);
  PN_ASSERT_OK(pn_channel_send(ch, buf, sizeof buf, NULL)); /* held back */
  PN_ASSERT_ERR(PN_EAGAIN, pn_channel_send(ch, buf, sizeof buf, NULL));
  PN_ASSERT_OK(pn_peer_disconnect(p.peer, 8));
  wait_writable(&p.client_app, 1);
  PN_ASSERT_ERR(PN_ECLOSED, pn_channel_send(ch, buf, sizeof buf, NULL));
  assert_true(pn_test_latch_wait(&p.disconnected, NET_WAIT_MS));
  assert_int_equal(p.client_app.writable, 1);
  assert_int_equal(p.client_app.reason, 8);
  net_pair_close(&p);
}

/* pn_peer_disconnect_later() through 10% loss each way: 600 messages on
 * an ORDERED and a RELIABLE_UNORDERED channel, then the graceful
 * disconnect at once. Every message arrives and is acknowledged, then
 * both sides hear the reason given; sends after the call are refused. */
static void disconnect_later_delivers_everything_first(void **state) {
  (void)state;
  enum { N = 300 };
  net_pair p;
  pn_link_conditioner cond = PN_LINK_CONDITIONER_INIT;
  cond.loss = 0.1;
  cond.seed = pn_test_seed();
  pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED,
                              PN_CHANNEL_RELIABLE_UNORDERED};
  net_pair_open(&p, &(net_pair_opts){
                        .cond = &cond, .nch = 2, .kinds = kinds, .cap = 2 * N});
  net_pair_wait_connected(&p);
  net_send_range(pn_peer_channel(p.peer, 0), 1, N, 1000);
  net_send_range(pn_peer_channel(p.peer, 1), N + 1, 2 * N, 3000);
  PN_ASSERT_OK(pn_peer_disconnect_later(p.peer, 9, 20000000));
  uint8_t buf[8] = {0};
  PN_ASSERT_ERR(PN_ECLOSED,
                pn_channel_send(pn_peer_channel(p.peer, 0), buf, 8, NULL));
  PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect(p.peer, 10));
  assert_true(pn_test_latch_wait(&p.disconnected, NET_WAIT_MS));
  net_app *s = &p.server_app, *c = &p.client_app;
  pthread_mutex_lock(&s->lock);
  pthread_mutex_lock(&c->lock);
  assert_int_equal(s->packets, 2 * N);
  assert_int_equal(s->bad, 0);
  uint64_t next_ordered = 1;
  for (uint64_t i = 0; i < 2 * N; i++) {
    if (s->ids[i] <= N) {
      assert_int_equal(s->ids[i], next_ordered++); /* in order */
    }
  }
  assert_int_equal(next_ordered, N + 1);
  assert_int_equal(c->acked, 2 * N);
  assert_int_equal(c->lost, 0);
  assert_int_equal(s->reason, 9);
  assert_true(s->remote);
  assert_int_equal(c->reason, 9);
  assert_false(c->remote);
  pthread_mutex_unlock(&c->lock);
  pthread_mutex_unlock(&s->lock);
  net_pair_close(&p);
}

/* A graceful disconnect towards a side that hears nothing more (the
 * client's sends all dropped) ends at its timeout: the owner hears the
 * reason given, long before the connection's own timeouts. */
static void disconnect_later_gives_up_at_its_timeout(void **state) {
  (void)state;
  net_pair p;
  pn_host_config ccfg = PN_HOST_CONFIG_INIT;
  ccfg.rto_max_us = 50000; /* the goodbyes that follow are short */
  net_pair_open(&p, &(net_pair_opts){.client_cfg = &ccfg, .nch = 1, .cap = 4});
  net_pair_wait_connected(&p);
  pn_link_conditioner cut = PN_LINK_CONDITIONER_INIT;
  cut.loss = 1.0;
  PN_ASSERT_OK(pn_host_set_conditioner(p.client, 0, PN_DIR_SEND, &cut));
  net_send_range(pn_peer_channel(p.peer, 0), 1, 3, 500);
  uint64_t t0 = net_now_ms();
  PN_ASSERT_OK(pn_peer_disconnect_later(p.peer, 11, 200000));
  pn_test_latch gone;
  pn_test_latch_init(&gone, 1);
  pthread_mutex_lock(&p.client_app.lock);
  p.client_app.on_disconnect = &gone;
  bool already = p.client_app.disconnected > 0;
  pthread_mutex_unlock(&p.client_app.lock);
  assert_true(already || pn_test_latch_wait(&gone, NET_WAIT_MS));
  uint64_t took = net_now_ms() - t0;
  printf("# disconnected %" PRIu64 " ms after the call\n", took);
  assert_true(took >= 200);
  assert_true(took < 5000); /* the idle timeout is 10 s */
  assert_int_equal(p.client_app.reason, 11);
  assert_false(p.client_app.remote);
  assert_int_equal(app_count(&p.server_app, &p.server_app.packets), 0);
  pthread_mutex_lock(&p.client_app.lock);
  p.client_app.on_disconnect = NULL;
  pthread_mutex_unlock(&p.client_app.lock);
  pn_test_latch_fini(&gone);
  net_pair_close(&p);
}

/* Bad arguments change nothing: the peer still sends afterwards. */
static void disconnect_later_checks_its_arguments(void **state) {
  (void)state;
  net_pair p;
  net_pair_open(&p, &(net_pair_opts){.nch = 1, .cap = 4});
  net_pair_wait_connected(&p);
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect_later(NULL, 1, 1000));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_peer_disconnect_later(p.peer, PN_REASON_LIBRARY, 1000));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect_later(p.peer, 1, 0));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_peer_disconnect_later(p.peer, 1, PN_HOST_TIME_MAX_US + 1));
  pn_test_latch got;
  pn_test_latch_init(&got, 1);
  p.server_app.on_packet = &got;
  net_send_range(pn_peer_channel(p.peer, 0), 1, 1, 100);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pn_test_latch_fini(&got);
  net_pair_close(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_message_larger_than_max_queued_is_taken),
      cmocka_unit_test(a_big_message_does_not_hold_back_another_channel),
      cmocka_unit_test(writable_means_the_next_send_is_taken),
      cmocka_unit_test(sends_and_disconnects_after_a_disconnect_are_refused),
      cmocka_unit_test(a_disconnect_wakes_a_sender_waiting_for_writable),
      cmocka_unit_test(disconnect_later_delivers_everything_first),
      cmocka_unit_test(disconnect_later_gives_up_at_its_timeout),
      cmocka_unit_test(disconnect_later_checks_its_arguments),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
