/* Limits a server sets on what any one client can take, on both I/O
 * backends: connections from one IP address (max_peers_per_address:
 * refused with PN_REASON_ADDRESS_LIMIT, the slots free again when a peer
 * leaves), and handshake requests per second (max_handshakes_per_s:
 * beyond the bucket, dropped unanswered before any work and counted). */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "actors/wire.h"
#include "tests/net/forge.h"
#include "tests/net/net_harness.h"

/* One client host (one socket: one address) asks for more connections
 * than the server allows from an address: the first three connect, the
 * others hear why; once one leaves, a new one fits. */
static void connections_per_address_are_limited(void **state) {
  (void)state;
  enum { LIMIT = 3, TRIES = 6 };
  pn_runtime *rt = net_runtime();
  net_app app;
  net_app_init(&app, 4);
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &app, -1);
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.max_peers_per_address = LIMIT;
  pn_host *server = net_host(rt, sa, &scfg, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  net_attempt at[TRIES + 1];
  for (int i = 0; i < TRIES; i++) {
    net_attempt_start(&at[i], rt, client, &to, 1, NULL);
    net_attempt_wait(&at[i]);
  }
  int connected = 0, limited = 0;
  for (int i = 0; i < TRIES; i++) {
    net_app *a = &at[i].app;
    pthread_mutex_lock(&a->lock);
    connected += (int)a->connected;
    if (a->disconnected && a->reason == PN_REASON_ADDRESS_LIMIT && a->remote) {
      limited++;
    }
    pthread_mutex_unlock(&a->lock);
  }
  assert_int_equal(connected, LIMIT);
  assert_int_equal(limited, TRIES - LIMIT);
  pn_host_stats st = net_host_stats(server);
  assert_int_equal(st.peers, LIMIT);
  assert_int_equal(st.rejected, TRIES - LIMIT);
  /* One leaves (the server hears it); a new attempt then fits. */
  pn_test_latch left;
  pn_test_latch_init(&left, 1);
  pthread_mutex_lock(&app.lock);
  app.on_disconnect = &left;
  pthread_mutex_unlock(&app.lock);
  PN_ASSERT_OK(pn_peer_disconnect(at[0].peer, 5));
  assert_true(pn_test_latch_wait(&left, NET_WAIT_MS));
  net_attempt_start(&at[TRIES], rt, client, &to, 1, NULL);
  net_attempt_wait(&at[TRIES]);
  pthread_mutex_lock(&at[TRIES].app.lock);
  assert_int_equal(at[TRIES].app.connected, 1);
  pthread_mutex_unlock(&at[TRIES].app.lock);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30u * 1000000u));
  for (int i = 0; i <= TRIES; i++) {
    net_attempt_fini(&at[i]);
  }
  pn_peer_release(app.peer);
  pn_actor_release(sa);
  net_app_fini(&app);
  pn_test_latch_fini(&left);
  pn_test_runtime_end(rt);
}

/* A burst of forged requests far above the rate: the bucket answers its
 * burst and then the rate, drops the rest unanswered, and counts every
 * request one way or the other. */
static void handshakes_per_second_are_limited(void **state) {
  (void)state;
  enum { RATE = 200, N = 3000 };
  pn_runtime *rt = net_runtime();
  net_app app;
  net_app_init(&app, 4);
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &app, -1);
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.max_handshakes_per_s = RATE;
  pn_host *server = net_host(rt, sa, &scfg, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  prober pr;
  pn_actor *pa = prober_open(rt, &pr);
  uint8_t buf[512];
  uint64_t t0 = net_now_ms();
  for (uint32_t id = 1; id <= N; id++) {
    prober_send(
        &pr, &to, buf,
        forge_request(buf, PN__WIRE_VERSION, id, 1, forge_request_size(id)));
  }
  /* Every request reaches the host (loopback drops nothing at this
   * rate); wait until it answered or dropped them all, with a deadline
   * (datagrams_in is counted before the handling ends). */
  pn_host_stats st = net_host_stats(server);
  while (st.challenges_sent + st.handshake_limited < N &&
         net_now_ms() - t0 < NET_WAIT_MS) {
    sched_yield();
    st = net_host_stats(server);
  }
  uint64_t elapsed_ms = net_now_ms() - t0;
  fprintf(stderr,
          "# %d requests in %" PRIu64 " ms: %" PRIu64 " answered, %" PRIu64
          " limited\n",
          N, elapsed_ms, st.challenges_sent, st.handshake_limited);
  assert_int_equal(st.datagrams_in, N);
  assert_int_equal(st.challenges_sent + st.handshake_limited, N);
  /* The burst (a tenth of the rate) and the rate over the time taken. */
  assert_true(st.challenges_sent <= RATE / 10 + RATE * elapsed_ms / 1000 + 2);
  assert_true(st.handshake_limited > 0);
  assert_int_equal(st.accepted, 0);
  pn_host_close(server);
  pn_socket_close(pr.sock);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30u * 1000000u));
  pn_actor_release(sa);
  prober_fini(&pr, pa);
  net_app_fini(&app);
  pn_test_runtime_end(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connections_per_address_are_limited),
      cmocka_unit_test(handshakes_per_second_are_limited),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
