/* Hosts with several sockets, on both I/O backends: a client peer sends
 * round robin through the sockets its mask names, a server accepts on
 * each and answers from the one a client used, and a host may have 32
 * sockets with a peer sending through the last. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>

#include "tests/net/net_harness.h"

/* --- several sockets ----------------------------------------------------- */

/* A client host with two sockets sends round robin through both for a
 * peer whose mask names both (its handshake from one of them: the cookie
 * names the address it was issued to, so no response is dropped); a
 * server with two sockets accepts on each and answers from the one a
 * client used. */
static void several_sockets(void **state) {
  (void)state;
  enum { N = 200 };
  pn_runtime *rt = net_runtime();
  net_app sapp, capp;
  net_app_init(&sapp, 2 * N);
  net_app_init(&capp, 4);
  pn_test_latch connected, got, acked;
  pn_test_latch_init(&connected, 4);
  pn_test_latch_init(&got, 2 * N);
  pn_test_latch_init(&acked, 2 * N);
  sapp.on_connect = capp.on_connect = &connected;
  sapp.on_packet = &got;
  capp.on_resolved = &acked;
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &sapp, -1);
  pn_actor *ca = pn_test_spawn(rt, "client-app", net_app_handler, &capp, -1);
  pn_host_config quiet = PN_HOST_CONFIG_INIT;
  quiet.keepalive_us = 60000000;
  quiet.idle_timeout_us = 120000000;
  pn_host *server = net_host_sockets(rt, sa, &quiet, 2);
  pn_host *client = net_host_sockets(rt, NULL, &quiet, 2);
  pn_addr s0, s1, c0, c1;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &s0));
  PN_ASSERT_OK(pn_host_local_addr(server, 1, &s1));
  PN_ASSERT_OK(pn_host_local_addr(client, 0, &c0));
  PN_ASSERT_OK(pn_host_local_addr(client, 1, &c1));
  assert_int_not_equal(s0.port, s1.port);
  pn_peer *both = net_connect(client, &s0, ca, 1, NULL, 0x3);
  pn_peer *second = net_connect(client, &s1, ca, 1, NULL, 0x2);
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
  net_send_range(pn_peer_channel(both, 0), 1, N, 100);
  net_send_range(pn_peer_channel(second, 0), N + 1, 2 * N, 100);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  assert_true(pn_test_latch_wait(&acked, NET_WAIT_MS));
  assert_int_equal(sapp.bad, 0);
  assert_int_equal(sapp.packets, 2 * N);
  pn_host_stats st = net_host_stats(server);
  assert_int_equal(st.accepted, 2);
  assert_int_equal(st.peers, 2);
  assert_int_equal(st.handshake_dropped, 0);
  assert_int_equal(st.challenges_sent, 2);
  /* Once the sockets sent all the peers sent (a bounded wait): `both`
   * goes through sockets 0 and 1, `second` through socket 1 only. */
  pn_peer_stats pb = net_peer_stats(both), p2 = net_peer_stats(second);
  pn_socket_stats k0, k1;
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  do {
    k0 = net_socket_stats(rt, &c0);
    k1 = net_socket_stats(rt, &c1);
    pb = net_peer_stats(both);
    p2 = net_peer_stats(second);
    if (k0.datagrams_out + k1.datagrams_out ==
        pb.datagrams_out + p2.datagrams_out) {
      break;
    }
    sched_yield();
  } while (net_now_ms() < deadline);
  fprintf(stderr,
          "# client sockets sent %" PRIu64 " + %" PRIu64 "; peers %" PRIu64
          " (both) + %" PRIu64 " (second)\n",
          k0.datagrams_out, k1.datagrams_out, pb.datagrams_out,
          p2.datagrams_out);
  assert_int_equal(k0.datagrams_out + k1.datagrams_out,
                   pb.datagrams_out + p2.datagrams_out);
  assert_true(k1.datagrams_out >= p2.datagrams_out);
  uint64_t both0 = k0.datagrams_out,
           both1 = k1.datagrams_out - p2.datagrams_out;
  /* Both carried some: socket 1 at least the acknowledgement that gets it
   * proven (it carries data from then on; test_multisocket checks that
   * and the balance of a longer transfer). */
  assert_true(both0 > 1 && both1 >= 1);
  /* The server answered the second peer from socket 1 only. */
  pn_socket_stats ks0 = net_socket_stats(rt, &s0);
  pn_socket_stats ks1 = net_socket_stats(rt, &s1);
  assert_int_equal(ks1.datagrams_in, p2.datagrams_out);
  assert_true(ks0.datagrams_in <= pb.datagrams_out);
  assert_int_equal(p2.bad_datagrams, 0);
  assert_int_equal(pb.bad_datagrams, 0);
  pn_peer_release(both);
  pn_peer_release(second);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_peer_release(sapp.peer);
  pn_peer_release(capp.peer);
  pn_actor_release(sa);
  pn_actor_release(ca);
  pn_test_runtime_end(rt);
  net_app_fini(&sapp);
  net_app_fini(&capp);
  pn_test_latch_fini(&connected);
  pn_test_latch_fini(&got);
  pn_test_latch_fini(&acked);
}

/* A host may have 32 sockets, and a peer may send through the 32nd. */
static void thirty_two_sockets(void **state) {
  (void)state;
  net_pair w;
  net_pair_open(&w, &(net_pair_opts){.nch = 1, .cap = 16});
  net_pair_wait_connected(&w);
  pn_host *wide = net_host_sockets(w.rt, NULL, NULL, 32);
  pn_addr last;
  PN_ASSERT_OK(pn_host_local_addr(wide, 31, &last));
  pn_test_latch done;
  pn_test_latch_init(&done, 2);
  net_app app;
  net_app_init(&app, 4);
  app.on_connect = &done;
  app.on_disconnect = &done;
  pn_actor *owner = pn_test_spawn(w.rt, "wide-app", net_app_handler, &app, -1);
  pn_peer *all = net_connect(wide, &w.server_addr, owner, 1, NULL, 0xFFFFFFFFu);
  pn_peer *top = net_connect(wide, &w.server_addr, owner, 1, NULL, 0x80000000u);
  assert_true(pn_test_latch_wait(&done, NET_WAIT_MS));
  assert_int_equal(app.connected, 2);
  pn_host_stats st = net_host_stats(w.server);
  assert_int_equal(st.accepted, 3);
  assert_int_equal(st.handshake_dropped, 0);
  pn_peer_release(all);
  pn_peer_release(top);
  pn_host_close(wide);
  net_pair_adopt_actor(&w, owner);
  net_pair_adopt_peer(&w, app.peer); /* the app holds its first peer */
  net_pair_close(&w);
  net_app_fini(&app);
  pn_test_latch_fini(&done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(several_sockets),
      cmocka_unit_test(thirty_two_sockets),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
