/* Connections that end without a goodbye, on both I/O backends: a
 * connect nobody answers, an idle connection whose link goes dead (each
 * side times out on its own; keepalives held it open before), and a host
 * closed under its peers, seen from the other side. */
#include <inttypes.h>
#include <stdio.h>

#include "tests/net/forge.h"
#include "tests/net/net_harness.h"

/* --- timeouts ------------------------------------------------------------ */

/* Nobody answers: a socket that swallows everything (it counts the padded
 * requests and their retries), and a port nobody listens on. */
static void connect_timeout(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  prober hole;
  pn_actor *ha = prober_open(rt, &hole);
  pn_socket *gone = NULL;
  pn_addr closed_port;
  {
    pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
    sc.host = "127.0.0.1";
    sc.owner = ha;
    PN_ASSERT_OK(pn_socket_open(rt, &sc, &gone));
    PN_ASSERT_OK(pn_socket_local_addr(gone, &closed_port));
    pn_socket_close(gone);
  }
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.connect_timeout_us = 300000;
  cfg.connect_retry_us = 50000;
  pn_host *client = net_host(rt, NULL, &cfg, NULL);
  net_attempt a, b;
  uint64_t t0 = net_now_ms();
  net_attempt_start(&a, rt, client, &hole.local, 1, NULL);
  net_attempt_start(&b, rt, client, &closed_port, 1, NULL);
  assert_int_equal(net_host_stats(client).peers, 2);
  net_attempt_wait(&a);
  net_attempt_wait(&b);
  uint64_t elapsed = net_now_ms() - t0;
  fprintf(stderr, "# connect timeouts after %" PRIu64 " ms\n", elapsed);
  assert_true(elapsed >= 300);
  net_attempt *both[2] = {&a, &b};
  for (int i = 0; i < 2; i++) {
    net_app *app = &both[i]->app;
    pthread_mutex_lock(&app->lock);
    assert_int_equal(app->connected, 0);
    assert_int_equal(app->disconnected, 1);
    assert_int_equal(app->reason, PN_REASON_CONNECT_TIMEOUT);
    assert_false(app->remote);
    pthread_mutex_unlock(&app->lock);
    pn_peer_stats ps = net_peer_stats(both[i]->peer);
    assert_int_equal(ps.state, PN_PEER_DISCONNECTED);
    /* The first request and its retries, one per connect_retry. */
    assert_true(ps.datagrams_out >= 2 && ps.datagrams_out <= 7);
    PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect(both[i]->peer, 1));
  }
  assert_int_equal(net_host_stats(client).peers, 0);
  /* What reached the hole: padded requests, never more than were sent. */
  uint64_t got = atomic_load(&hole.requests);
  assert_true(got >= 1 && got <= net_peer_stats(a.peer).datagrams_out);
  assert_int_equal(atomic_load(&hole.bad), 0);
  pn_host_close(client);
  pn_socket_close(hole.sock);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  net_attempt_fini(&a);
  net_attempt_fini(&b);
  prober_fini(&hole, ha);
  pn_test_runtime_end(rt);
}

/* Both sides hear nothing once the link drops everything: each times out
 * on its own. Before that, keepalives hold an idle connection open. */
static void idle_timeout_both_sides(void **state) {
  (void)state;
  net_pair w;
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.idle_timeout_us = 300000;
  cfg.keepalive_us = 50000;
  cfg.ack_timeout_us = 10000000; /* the idle timeout is under test here */
  net_pair_open(
      &w, &(net_pair_opts){
              .server_cfg = &cfg, .client_cfg = &cfg, .nch = 1, .cap = 4});
  net_pair_wait_connected(&w);
  assert_false(pn_test_latch_wait(&w.disconnected, 700)); /* kept alive */
  pn_peer_stats before = net_peer_stats(w.peer);
  assert_true(before.datagrams_out >= 3); /* keepalives */
  pn_link_conditioner cut = PN_LINK_CONDITIONER_INIT;
  cut.loss = 1.0;
  uint64_t t0 = net_now_ms();
  PN_ASSERT_OK(pn_host_set_conditioner(w.client, 0, PN_DIR_SEND, &cut));
  PN_ASSERT_OK(pn_host_set_conditioner(w.client, 0, PN_DIR_RECV, &cut));
  assert_true(pn_test_latch_wait(&w.disconnected, NET_WAIT_MS));
  uint64_t elapsed = net_now_ms() - t0;
  fprintf(stderr, "# both timed out after %" PRIu64 " ms\n", elapsed);
  assert_true(elapsed >= 250); /* a keepalive may have left just before */
  assert_int_equal(w.server_app.reason, PN_REASON_TIMEOUT);
  assert_false(w.server_app.remote);
  assert_int_equal(w.client_app.reason, PN_REASON_TIMEOUT);
  assert_false(w.client_app.remote);
  assert_int_equal(net_host_stats(w.server).peers, 0);
  assert_int_equal(net_host_stats(w.client).peers, 0);
  /* Bad arguments to the conditioner call change nothing. */
  pn_link_conditioner bad = PN_LINK_CONDITIONER_INIT;
  bad.loss = 2.0;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_set_conditioner(NULL, 0, PN_DIR_SEND, &cut));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_host_set_conditioner(w.client, 1, PN_DIR_SEND, &cut));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_host_set_conditioner(w.client, 0, (pn_direction)2, &cut));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_host_set_conditioner(w.client, 0, PN_DIR_SEND, &bad));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_host_set_conditioner(w.client, 0, PN_DIR_SEND, NULL));
  net_pair_close(&w);
}

/* pn_host_close() on either side: the other side hears
 * PN_REASON_HOST_CLOSED from the remote; the closing side's owner hears it
 * as its own once the other side acknowledged the disconnect (the closing
 * host keeps reading until its peers are gone, so one disconnect datagram
 * is enough on a clean link: none arrives after the other side closed). */
static void host_close_seen_remotely(void **state) {
  (void)state;
  for (int server_closes = 0; server_closes < 2; server_closes++) {
    net_pair w;
    net_pair_open(&w, &(net_pair_opts){.nch = 1, .cap = 4});
    net_pair_wait_connected(&w);
    pn_host **closing = server_closes ? &w.server : &w.client;
    net_app *closer = server_closes ? &w.server_app : &w.client_app;
    net_app *other = server_closes ? &w.client_app : &w.server_app;
    pn_host_close(*closing);
    *closing = NULL;
    assert_true(pn_test_latch_wait(&w.disconnected, NET_WAIT_MS));
    assert_int_equal(other->reason, PN_REASON_HOST_CLOSED);
    assert_true(other->remote);
    assert_int_equal(closer->reason, PN_REASON_HOST_CLOSED);
    assert_false(closer->remote);
    PN_ASSERT_ERR(PN_ECLOSED, pn_peer_disconnect(w.peer, 1));
    PN_ASSERT_ERR(PN_ECLOSED,
                  pn_channel_send(pn_peer_channel(w.peer, 0), "x", 1, NULL));
    pn_host *survivor = server_closes ? w.client : w.server;
    pn_host_stats st = net_host_stats(survivor);
    assert_int_equal(st.peers, 0);
    if (st.unknown_connection > 1) {
      fail_msg("%" PRIu64 " disconnect datagrams after the first",
               st.unknown_connection);
    }
    net_pair_close(&w); /* pn_host_close(NULL) is ignored */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connect_timeout),
      cmocka_unit_test(idle_timeout_both_sides),
      cmocka_unit_test(host_close_seen_remotely),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
