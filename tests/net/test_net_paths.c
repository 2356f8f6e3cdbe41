/* Source addresses, on both I/O backends: authentic datagrams copied to
 * the server from an address that cannot receive are not acted on (no
 * spoofed disconnect or migration), a client whose address changes is
 * proven and followed, reflected and forged datagrams are refused, and a
 * client sending through two sockets proves both once. Every message
 * arrives exactly once, in order, throughout. */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/net/relay.h"

enum { N = 300 };

/* The server's peer of the pair, held by its app. */
static pn_peer *server_peer(net_pair *p) {
  pthread_mutex_lock(&p->server_app.lock);
  pn_peer *back = p->server_app.peer;
  pthread_mutex_unlock(&p->server_app.lock);
  assert_non_null(back);
  return back;
}

/* Sends ids first..last from the client and waits until the server has
 * them all, in order. */
static void send_and_check(net_pair *p, uint64_t first, uint64_t last) {
  pn_test_latch got;
  pn_test_latch_init(&got, last - first + 1);
  p->server_app.on_packet = &got;
  net_send_range(pn_peer_channel(p->peer, 0), first, last, 200);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  p->server_app.on_packet = NULL;
  pthread_mutex_lock(&p->server_app.lock);
  for (uint64_t i = 1; i <= last; i++) {
    assert_int_equal(p->server_app.ids[i - 1], i);
  }
  assert_int_equal(p->server_app.packets, last);
  assert_int_equal(p->server_app.bad, 0);
  pthread_mutex_unlock(&p->server_app.lock);
  pn_test_latch_fini(&got);
}

static void print_paths(const char *name, const pn_peer_stats *st) {
  fprintf(stderr,
          "# %s: unproven %" PRIu64 ", challenges %" PRIu64
          ", migrations %" PRIu64 ", bad %" PRIu64 ", dups %" PRIu64 "\n",
          name, st->unproven_datagrams, st->path_challenges, st->migrations,
          st->bad_datagrams, st->duplicates);
}

static bool addr_is(pn_peer *peer, const pn_addr *want) {
  pn_addr a;
  PN_ASSERT_OK(pn_peer_addr(peer, &a));
  return pn_addr_equal(&a, want);
}

/* Someone on the path copies client datagrams to the server from another
 * address, and the copies win the race (the relay holds the originals
 * back until the server has seen every copy); the copier cannot receive
 * there. The copies are challenged and never acted on: nothing delivered,
 * not even marked received, so the originals, released, are. */
static void copies_from_elsewhere_are_not_acted_on(void **state) {
  (void)state;
  net_pair_opts o = {.cap = 2 * N};
  net_pair p;
  relay *r = relay_pair_open(&p, &o, 0xa1);
  net_pair_wait_connected(&p);
  send_and_check(&p, 1, N / 2);
  pn_peer *back = server_peer(&p);
  atomic_store(&r->path_mode, RELAY_PATH_RACE);
  pn_test_latch got;
  pn_test_latch_init(&got, 20);
  p.server_app.on_packet = &got;
  net_send_range(pn_peer_channel(p.peer, 0), N / 2 + 1, N / 2 + 20, 200);
  /* Every copy seen: the server counted each as unproven (the held
   * originals make every copy new to it). */
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  pn_peer_stats st = net_peer_stats(back);
  while ((atomic_load(&r->held_n) == 0 ||
          st.unproven_datagrams < atomic_load(&r->path_sent)) &&
         net_now_ms() < deadline) {
    sched_yield();
    st = net_peer_stats(back);
  }
  uint64_t copies = atomic_load(&r->path_sent);
  assert_true(copies > 0);
  assert_int_equal(st.unproven_datagrams, copies);
  pthread_mutex_lock(&p.server_app.lock);
  assert_int_equal(p.server_app.packets, N / 2); /* nothing acted on */
  pthread_mutex_unlock(&p.server_app.lock);
  relay_release(r);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  p.server_app.on_packet = NULL;
  pn_test_latch_fini(&got);
  send_and_check(&p, N / 2 + 21, N);
  st = net_peer_stats(back);
  print_paths("server", &st);
  fprintf(stderr, "# relay: %" PRIu64 " copies, %" PRIu64 " dropped at alt\n",
          copies, atomic_load(&r->alt_dropped));
  assert_true(st.path_challenges >= 1 && st.path_challenges <= copies);
  assert_true(atomic_load(&r->alt_dropped) >= 1); /* the challenges */
  assert_int_equal(st.migrations, 0);
  assert_int_equal(st.bad_datagrams, 0);
  assert_true(addr_is(back, &r->local)); /* never moved to the copier */
  net_pair_close(&p);
  relay_free(r);
}

/* The client's address changes mid-connection (a NAT rebinding): the new
 * one is challenged, answers, and becomes the one the server sends to. */
static void a_moved_client_is_proven_and_followed(void **state) {
  (void)state;
  net_pair_opts o = {.cap = 2 * N};
  net_pair p;
  relay *r = relay_pair_open(&p, &o, 0xa2);
  net_pair_wait_connected(&p);
  send_and_check(&p, 1, N / 2);
  pn_peer *back = server_peer(&p);
  assert_true(addr_is(back, &r->local));
  atomic_store(&r->path_mode, RELAY_PATH_REBIND);
  send_and_check(&p, N / 2 + 1, N);
  /* The second socket is proven once the server challenged it (the
   * client probes it with an acknowledgement, then uses it): a short
   * transfer on a busy machine may end first. Bounded. */
  pn_peer_stats st = net_peer_stats(back);
  for (uint64_t t0 = net_now_ms();
       !st.migrations && net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
    st = net_peer_stats(back);
  }
  print_paths("server", &st);
  assert_int_equal(st.migrations, 1);
  assert_true(st.path_challenges >= 1);
  assert_int_equal(st.bad_datagrams, 0);
  assert_true(addr_is(back, &r->alt_local));
  net_pair_close(&p);
  relay_free(r);
}

/* The client's own datagrams sent back to it, and forged ones (the right
 * header, a random body) sent to the server, fail authentication. */
static void reflected_and_forged_are_refused(void **state) {
  (void)state;
  net_pair_opts o = {.cap = 2 * N};
  net_pair p;
  relay *r = relay_pair_open(&p, &o, 0xa3);
  net_pair_wait_connected(&p);
  atomic_store(&r->path_mode, RELAY_PATH_REFLECT);
  send_and_check(&p, 1, N / 2);
  uint64_t reflected = atomic_load(&r->path_sent);
  atomic_store(&r->path_mode, RELAY_PATH_INJECT);
  send_and_check(&p, N / 2 + 1, N);
  uint64_t forged = atomic_load(&r->path_sent) - reflected;
  atomic_store(&r->path_mode, RELAY_PATH_NONE);
  /* The server had each forgery before the original after it (one socket
   * to another keeps their order); the client may still be reading the
   * last reflections. */
  /* A reflection names the server's connection id, which the client's
   * host does not know: it never reaches the peer. */
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  while (net_host_stats(p.client).unknown_connection < reflected &&
         net_now_ms() < deadline) {
    sched_yield();
  }
  pn_peer_stats cs = net_peer_stats(p.peer);
  pn_peer_stats ss = net_peer_stats(server_peer(&p));
  print_paths("client", &cs);
  print_paths("server", &ss);
  fprintf(stderr, "# relay: %" PRIu64 " reflected, %" PRIu64 " forged\n",
          reflected, forged);
  assert_true(reflected > 0 && forged > 0);
  /* Each was counted bad where it arrived. */
  assert_true(net_host_stats(p.client).unknown_connection >= reflected);
  assert_true(ss.bad_datagrams >= forged);
  assert_int_equal(ss.migrations + cs.migrations, 0);
  net_pair_close(&p);
  relay_free(r);
}

/* A client peer sending round robin through two sockets: the server sees
 * two addresses, proves the second once, and keeps both. */
static void two_client_sockets_are_proven_once(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  net_app sapp, capp;
  net_app_init(&sapp, N);
  net_app_init(&capp, 4);
  pn_test_latch connected, got;
  pn_test_latch_init(&connected, 2);
  pn_test_latch_init(&got, N);
  sapp.on_connect = capp.on_connect = &connected;
  sapp.on_packet = &got;
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &sapp, -1);
  pn_actor *ca = pn_test_spawn(rt, "client-app", net_app_handler, &capp, -1);
  pn_host *server = net_host(rt, sa, NULL, NULL);
  pn_host *client = net_host_sockets(rt, NULL, NULL, 2);
  pn_addr s0;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &s0));
  pn_peer *both = net_connect(client, &s0, ca, 1, NULL, 0x3);
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
  net_send_range(pn_peer_channel(both, 0), 1, N, 100);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pthread_mutex_lock(&sapp.lock);
  for (uint64_t i = 0; i < N; i++) {
    assert_int_equal(sapp.ids[i], i + 1);
  }
  pn_peer *back = sapp.peer;
  pthread_mutex_unlock(&sapp.lock);
  /* The second address is proven about a round trip after its first
   * datagram (the client probes it with an acknowledgement): a short
   * transfer may end first. Bounded. */
  pn_peer_stats st = net_peer_stats(back);
  for (uint64_t t0 = net_now_ms();
       !st.migrations && net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
    st = net_peer_stats(back);
  }
  print_paths("server", &st);
  assert_int_equal(st.migrations, 1);
  /* A few challenges while the second address proves itself, not one per
   * datagram from it. */
  assert_true(st.path_challenges >= 1 && st.path_challenges <= 8);
  assert_int_equal(st.bad_datagrams, 0);
  pn_peer_release(both);
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
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(copies_from_elsewhere_are_not_acted_on),
      cmocka_unit_test(a_moved_client_is_proven_and_followed),
      cmocka_unit_test(reflected_and_forged_are_refused),
      cmocka_unit_test(two_client_sockets_are_proven_once),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
