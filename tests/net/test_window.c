/* Bounded memory under abuse, on both I/O backends: the receive window
 * (max_receive_buffer, actors/flow.h) and the retransmission limit.
 *
 * The withheld-message attack: a client never delivers message 1 of an
 * ORDERED channel and sends the rest, so the server must hold everything
 * after it. A client that keeps to the window stops when the server's
 * buffer is full, and goes on once message 1 arrives; one that ignores the
 * window has its excess dropped and counted, and the server's buffer never
 * grows past its limit. (Before the window, a server held 461 MB for
 * 200 MB sent this way.)
 *
 * The never-acknowledging peer: frames resent retransmit_limit times
 * without an acknowledgement end the connection with
 * PN_REASON_RETRANSMIT_LIMIT, long before the ack timeout.
 *
 * The misbehaving client is the library's own, with the test hooks of
 * pn_host (actors/host.h): test_withhold keeps a message back unsent,
 * test_ignore_window sends past the window. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "actors/host.h"
#include "tests/net/net_harness.h"

enum { LIMIT = 128 << 10, MSG = 1000 };

/* The server's side of the pair's connection. */
static pn_peer *server_peer(net_pair *p) {
  pthread_mutex_lock(&p->server_app.lock);
  pn_peer *peer = p->server_app.peer;
  pthread_mutex_unlock(&p->server_app.lock);
  assert_non_null(peer);
  return peer;
}

static void print_both(pn_peer *server, pn_peer *client) {
  pn_peer_stats s = net_peer_stats(server), c = net_peer_stats(client);
  fprintf(stderr,
          "# server: held %" PRIu64 " (max %" PRIu64 ", limit %d), %" PRIu64
          " window drops, %" PRIu64 " messages in; client: window left "
          "%" PRIu64 ", %" PRIu64 " in flight, %" PRIu64 " retransmits\n",
          s.receive_buffer_bytes, s.receive_buffer_max, LIMIT, s.window_drops,
          s.messages_in, c.send_window, c.in_flight, c.retransmits);
}

/* A client that keeps to the window: with message 1 kept back (as if lost
 * every time), it sends until the server's buffer is full and stops; the
 * server holds exactly what the window allowed and drops nothing. Once
 * message 1 goes, everything is delivered in order. */
static void withheld_message_stops_the_sender(void **state) {
  (void)state;
  enum { N = 300 };
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.max_message = 64 << 10;
  scfg.max_receive_buffer = LIMIT;
  net_pair_opts o = {.server_cfg = &scfg, .nch = 1, .cap = N + 1};
  net_pair p;
  net_pair_start(&p, &o);
  atomic_store(&p.client->test_withhold, 1);
  net_pair_connect(&p, &o, NULL);
  net_pair_wait_connected(&p);
  pn_peer *sp = server_peer(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, N + 1);
  p.server_app.on_packet = &got;
  net_send_range(pn_peer_channel(p.peer, 0), 1, N, MSG);
  /* The window holds LIMIT / MSG whole messages, message 1's share
   * included: the server ends up holding the others. */
  const uint64_t held = (LIMIT / MSG - 1) * MSG;
  uint64_t t0 = net_now_ms();
  pn_peer_stats s = net_peer_stats(sp), c = net_peer_stats(p.peer);
  while ((s.receive_buffer_bytes != held || c.in_flight) &&
         net_now_ms() - t0 < NET_WAIT_MS) {
    sched_yield();
    s = net_peer_stats(sp);
    c = net_peer_stats(p.peer);
  }
  print_both(sp, p.peer);
  assert_int_equal(s.receive_buffer_bytes, held);
  assert_int_equal(c.in_flight, 0);
  assert_true(c.send_window < MSG); /* stopped at the window */
  /* Stopped, not slow: a few more datagrams (its probes) reach the
   * server, and it holds no more. */
  uint64_t in = s.datagrams_in;
  while (s.datagrams_in < in + 2 && net_now_ms() - t0 < NET_WAIT_MS) {
    sched_yield();
    s = net_peer_stats(sp);
  }
  assert_true(s.datagrams_in >= in + 2);
  assert_int_equal(s.receive_buffer_bytes, held);
  assert_int_equal(s.receive_buffer_max, held);
  assert_int_equal(s.window_drops, 0);
  pthread_mutex_lock(&p.server_app.lock);
  assert_int_equal(p.server_app.packets, 0); /* nothing could be delivered */
  pthread_mutex_unlock(&p.server_app.lock);
  /* Message 1 goes (with one more to wake the client): the gap fills,
   * the window opens, and the rest follows in order. */
  atomic_store(&p.client->test_withhold, 0);
  net_send_range(pn_peer_channel(p.peer, 0), N + 1, N + 1, MSG);
  if (!pn_test_latch_wait(&got, NET_WAIT_MS)) {
    print_both(sp, p.peer);
    fail_msg("the window never opened again");
  }
  p.server_app.on_packet = NULL;
  pthread_mutex_lock(&p.server_app.lock);
  for (uint64_t i = 0; i <= N; i++) {
    assert_int_equal(p.server_app.ids[i], i + 1);
  }
  pthread_mutex_unlock(&p.server_app.lock);
  s = net_peer_stats(sp);
  assert_int_equal(s.receive_buffer_bytes, 0);
  assert_true(s.receive_buffer_max <= LIMIT);
  assert_int_equal(s.window_drops, 0);
  net_pair_close(&p);
  pn_test_latch_fini(&got);
}

/* A client that ignores the window floods past it with message 1 kept
 * back: the server holds at most its limit, and drops the excess
 * unacknowledged and counts it. */
static void window_flood_is_dropped_and_counted(void **state) {
  (void)state;
  enum { N = 1000, DROPS = 40 };
  pn_host_config scfg = PN_HOST_CONFIG_INIT, ccfg = PN_HOST_CONFIG_INIT;
  scfg.max_message = 64 << 10;
  scfg.max_receive_buffer = LIMIT;
  ccfg.max_queued = 64u << 20;
  ccfg.rto_max_us = 50000;
  net_pair_opts o = {
      .server_cfg = &scfg, .client_cfg = &ccfg, .nch = 1, .cap = 16};
  net_pair p;
  net_pair_start(&p, &o);
  atomic_store(&p.client->test_withhold, 1);
  atomic_store(&p.client->test_ignore_window, true);
  net_pair_connect(&p, &o, NULL);
  net_pair_wait_connected(&p);
  pn_peer *sp = server_peer(&p);
  net_send_range(pn_peer_channel(p.peer, 0), 1, N, MSG); /* 1 MB */
  uint64_t t0 = net_now_ms();
  pn_peer_stats s = net_peer_stats(sp);
  while (s.window_drops < DROPS && net_now_ms() - t0 < NET_WAIT_MS) {
    sched_yield();
    s = net_peer_stats(sp);
  }
  print_both(sp, p.peer);
  assert_true(s.window_drops >= DROPS);
  assert_true(s.receive_buffer_max <= LIMIT);
  assert_true(s.receive_buffer_bytes <= LIMIT);
  assert_true(s.receive_buffer_bytes > LIMIT - 2 * MSG); /* filled */
  assert_int_equal(s.bad_datagrams, 0); /* dropped for room, not as bad */
  pthread_mutex_lock(&p.server_app.lock);
  assert_int_equal(p.server_app.packets, 0);
  pthread_mutex_unlock(&p.server_app.lock);
  net_pair_close(&p);
}

/* A peer whose acknowledgements never arrive (its sends are all lost)
 * while the server has messages for it: each frame is resent
 * retransmit_limit times, then the server disconnects it with its own
 * reason, long before the ack timeout. */
static void unacknowledged_frames_hit_the_retransmit_limit(void **state) {
  (void)state;
  enum { RETRIES = 4 };
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.retransmit_limit = RETRIES;
  scfg.ack_timeout_us = 20000000;
  scfg.idle_timeout_us = 30000000;
  scfg.rto_max_us = 100000;
  net_pair_opts o = {.server_cfg = &scfg, .cap = 64};
  net_pair p;
  net_pair_start(&p, &o);
  pn_test_latch server_done;
  pn_test_latch_init(&server_done, 1);
  p.server_app.on_disconnect = &server_done;
  net_pair_connect(&p, &o, NULL);
  net_pair_wait_connected(&p);
  pn_link_conditioner cut = PN_LINK_CONDITIONER_INIT;
  cut.loss = 1.0;
  PN_ASSERT_OK(pn_host_set_conditioner(p.client, 0, PN_DIR_SEND, &cut));
  pn_peer *sp = server_peer(&p);
  uint64_t t0 = net_now_ms();
  net_send_range(pn_peer_channel(sp, 0), 1, 20, 100);
  assert_true(pn_test_latch_wait(&server_done, NET_WAIT_MS));
  uint64_t elapsed = net_now_ms() - t0;
  pthread_mutex_lock(&p.server_app.lock);
  uint32_t reason = p.server_app.reason;
  bool remote = p.server_app.remote;
  pthread_mutex_unlock(&p.server_app.lock);
  pn_peer_stats s = net_peer_stats(sp);
  fprintf(stderr, "# dropped after %" PRIu64 " ms, %" PRIu64 " resends: %s\n",
          elapsed, s.retransmits, pn_reason_name(reason));
  assert_int_equal(reason, PN_REASON_RETRANSMIT_LIMIT);
  assert_false(remote);
  assert_string_equal(pn_reason_name(reason), "retransmit-limit");
  assert_true(s.retransmits >= RETRIES);
  assert_true(elapsed < 20000);
  p.server_app.on_disconnect = NULL;
  net_pair_close(&p);
  pn_test_latch_fini(&server_done);
}

/* The limits a host config may set. */
static void receive_buffer_config(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  cfg.sockets = &sc;
  cfg.socket_count = 1;
  pn_host *h = NULL;
  cfg.max_receive_buffer = (4u << 20) - 1; /* below max_message */
  PN_ASSERT_ERR(PN_EINVAL, pn_host_open(rt, &cfg, &h));
  cfg.max_message = 1000;
  cfg.max_receive_buffer = (64u << 10) - 1; /* below 64 KiB */
  PN_ASSERT_ERR(PN_EINVAL, pn_host_open(rt, &cfg, &h));
  cfg.max_receive_buffer = 64u << 10;
  PN_ASSERT_OK(pn_host_open(rt, &cfg, &h));
  assert_int_equal(h->max_receive_buffer, 64u << 10);
  pn_host_close(h);
  cfg.max_receive_buffer = 0; /* 2 x max_message, at least 64 KiB */
  PN_ASSERT_OK(pn_host_open(rt, &cfg, &h));
  assert_int_equal(h->max_receive_buffer, 64u << 10);
  assert_int_equal(h->retransmit_limit, 16);
  pn_host_close(h);
  cfg.max_message = 0;
  PN_ASSERT_OK(pn_host_open(rt, &cfg, &h));
  assert_int_equal(h->max_receive_buffer, 8u << 20);
  pn_host_close(h);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30u * 1000000u));
  pn_test_runtime_end(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(withheld_message_stops_the_sender),
      cmocka_unit_test(window_flood_is_dropped_and_counted),
      cmocka_unit_test(unacknowledged_frames_hit_the_retransmit_limit),
      cmocka_unit_test(receive_buffer_config),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
