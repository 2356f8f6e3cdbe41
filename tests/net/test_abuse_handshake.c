/* The handshake under abuse, on both I/O backends: a flood of forged
 * connect requests that never answer the challenge, unpadded requests,
 * requests of other versions, forged and stolen cookies; then the
 * refusals a real client hears: a full host (max_peers) and the accept
 * hook.
 *
 * Counters are checked exactly: the host handles its socket's datagrams
 * in arrival order, so once it answers a marker request sent after a
 * batch, it has counted the whole batch. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "actors/wire.h"
#include "tests/net/forge.h"
#include "tests/net/net_harness.h"

/* --- connect floods ------------------------------------------------------ */

/* 10,000 padded requests from random-looking clients that never answer
 * the challenge: every one gets a challenge no larger than itself and
 * nothing else happens. Then unpadded requests (no reply), a request of
 * another version (a Reject), forged cookies (dropped), a cookie used from
 * another address (dropped) and from its own (accepted, once). */
static void connect_flood(void **state) {
  (void)state;
  enum { N = 10000, WINDOW = 500, SHORT = 1000, FORGED = 200 };
  pn_runtime *rt = net_runtime();
  net_app app;
  net_app_init(&app, 4);
  pn_test_latch connected, disconnected;
  pn_test_latch_init(&connected, 1);
  pn_test_latch_init(&disconnected, 1);
  app.on_connect = &connected;
  app.on_disconnect = &disconnected;
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &app, -1);
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.rto_initial_us = 20000; /* its one peer gives up on a mute client */
  cfg.rto_max_us = 20000;
  cfg.max_handshakes_per_s = UINT32_MAX; /* every request is answered */
  pn_host *server = net_host(rt, sa, &cfg, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  prober a, b;
  pn_actor *pa = prober_open(rt, &a);
  pn_actor *pb = prober_open(rt, &b);
  uint8_t buf[512];
  uint64_t t0 = net_now_ms();
  for (uint32_t first = 1; first <= N; first += WINDOW) {
    prober_expect(&a, WINDOW);
    for (uint32_t id = first; id < first + WINDOW; id++) {
      size_t len =
          forge_request(buf, PN__WIRE_VERSION, id, 1 + id % PN_MAX_CHANNELS,
                        forge_request_size(id));
      assert_true(len >= forge_request_size(id) &&
                  len <= forge_request_size(id) + 2);
      prober_send(&a, &to, buf, len);
    }
    prober_wait(&a, "flood window");
  }
  fprintf(stderr, "# %d requests answered in %" PRIu64 " ms\n", N,
          net_now_ms() - t0);
  pn_host_stats st = net_host_stats(server);
  assert_int_equal(atomic_load(&a.challenges), N);
  assert_int_equal(atomic_load(&a.bad), 0);
  assert_int_equal(st.datagrams_in, N);
  assert_int_equal(st.challenges_sent, N);
  assert_int_equal(st.handshake_dropped, 0);
  assert_int_equal(st.accepted, 0);
  assert_int_equal(st.rejected, 0);
  assert_int_equal(st.peers, 0);
  /* Unpadded: no reply at all (the marker's challenge is the next). */
  for (uint32_t i = 0; i < SHORT; i++) {
    prober_send(&a, &to, buf,
                forge_request(buf, PN__WIRE_VERSION, N + 1 + i, 1, 0));
  }
  prober_sync(&a, &to);
  st = net_host_stats(server);
  assert_int_equal(atomic_load(&a.replies), N + 1);
  assert_int_equal(st.handshake_dropped, SHORT);
  assert_int_equal(st.challenges_sent, N + 1);
  /* Another version: a Reject saying so, no larger than the request. */
  prober_expect(&a, 1);
  prober_send(&a, &to, buf,
              forge_request(buf, PN__WIRE_VERSION + 1, 0x50000000u, 1, 256));
  prober_wait(&a, "version reject");
  assert_int_equal(atomic_load(&a.rejects), 1);
  assert_int_equal(atomic_load(&a.reject_reason), PN_REASON_VERSION);
  assert_int_equal(net_host_stats(server).rejected, 1);
  /* A client of the previous version: the Reject comes in its version. */
  prober_expect(&a, 1);
  size_t old_len =
      forge_request(buf, PN__WIRE_VERSION - 1, 0x50000001u, 1, 256);
  buf[0] = PN__WIRE_VERSION - 1;
  (void)pn__wire_seal(buf, old_len - PN__WIRE_TAG, pn__wire_public_key);
  prober_send(&a, &to, buf, old_len);
  prober_wait(&a, "old version reject");
  assert_int_equal(atomic_load(&a.old_rejects), 1);
  assert_int_equal(atomic_load(&a.bad), 0);
  assert_int_equal(net_host_stats(server).rejected, 2);
  /* Forged cookies. */
  uint64_t rng = pn_test_seed() ^ 0xC00C1E;
  for (uint32_t i = 0; i < FORGED; i++) {
    uint8_t cookie[16];
    for (size_t j = 0; j < sizeof cookie; j++) {
      cookie[j] = (uint8_t)pn_test_rand(&rng);
    }
    prober_send(&a, &to, buf,
                forge_response(buf, 0x60000000u + i, net_now_ms(), cookie, 16));
  }
  prober_sync(&a, &to); /* leaves a's last challenge: the marker's */
  st = net_host_stats(server);
  assert_int_equal(st.handshake_dropped, SHORT + FORGED);
  assert_int_equal(atomic_load(&a.replies), N + 4);
  /* A genuine cookie from another address: dropped. */
  pthread_mutex_lock(&a.lock);
  uint32_t id = a.chal_id;
  uint64_t ts = a.chal_ts;
  uint8_t cookie[32];
  size_t cookie_len = a.cookie_len;
  memcpy(cookie, a.cookie, cookie_len);
  pthread_mutex_unlock(&a.lock);
  size_t len = forge_response(buf, id, ts, cookie, cookie_len);
  prober_send(&b, &to, buf, len);
  prober_sync(&b, &to);
  st = net_host_stats(server);
  assert_int_equal(st.handshake_dropped, SHORT + FORGED + 1);
  assert_int_equal(st.accepted, 0);
  assert_int_equal(atomic_load(&b.replies), 1);
  assert_int_equal(atomic_load(&b.accepts), 0);
  /* From its own address: accepted; sent again, the same Accept again and
   * no second peer. */
  prober_expect(&a, 1);
  prober_send(&a, &to, buf, len);
  prober_wait(&a, "accept");
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
  assert_int_equal(atomic_load(&a.accepts), 1);
  pthread_mutex_lock(&a.lock);
  uint32_t server_id = a.accept_server_id;
  pthread_mutex_unlock(&a.lock);
  prober_expect(&a, 1);
  prober_send(&a, &to, buf, len);
  prober_wait(&a, "accept again");
  assert_int_equal(atomic_load(&a.accepts), 2);
  pthread_mutex_lock(&a.lock);
  assert_int_equal(a.accept_server_id, server_id);
  pthread_mutex_unlock(&a.lock);
  st = net_host_stats(server);
  assert_int_equal(st.accepted, 1);
  assert_int_equal(st.peers, 1);
  assert_int_equal(app.connected, 1);
  pn_addr peer_addr;
  PN_ASSERT_OK(pn_peer_addr(app.peer, &peer_addr));
  assert_true(pn_addr_equal(&peer_addr, &a.local));
  assert_int_equal(atomic_load(&a.bad), 0);
  assert_int_equal(atomic_load(&b.bad), 0);
  /* The mute client's peer gives up after its disconnect tries. */
  pn_host_close(server);
  assert_true(pn_test_latch_wait(&disconnected, NET_WAIT_MS));
  assert_int_equal(app.reason, PN_REASON_HOST_CLOSED);
  assert_false(app.remote);
  pn_socket_close(a.sock);
  pn_socket_close(b.sock);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_peer_release(app.peer);
  pn_actor_release(sa);
  prober_fini(&a, pa);
  prober_fini(&b, pb);
  pn_test_runtime_end(rt);
  net_app_fini(&app);
  pn_test_latch_fini(&connected);
  pn_test_latch_fini(&disconnected);
}

/* --- refusals ------------------------------------------------------------ */

typedef struct hook_ctx {
  pthread_mutex_t lock;
  uint32_t calls;
  uint32_t channels;
  pn_channel_kind kinds[PN_MAX_CHANNELS];
  pn_addr from;
  uint32_t answer;
} hook_ctx;

static uint32_t accept_hook(void *ctx, const pn_accept_info *info) {
  hook_ctx *h = ctx;
  pthread_mutex_lock(&h->lock);
  h->calls++;
  h->channels = info->channels;
  memcpy(h->kinds, info->kinds, info->channels * sizeof *info->kinds);
  h->from = info->from;
  assert_null(info->client_key); /* these clients present none */
  assert_int_equal(info->data_len, 0);
  uint32_t answer = h->answer;
  pthread_mutex_unlock(&h->lock);
  return answer;
}

static void assert_refused(net_attempt *at, uint32_t reason) {
  pthread_mutex_lock(&at->app.lock);
  assert_int_equal(at->app.connected, 0);
  assert_int_equal(at->app.disconnected, 1);
  assert_int_equal(at->app.reason, reason);
  assert_true(at->app.remote);
  pthread_mutex_unlock(&at->app.lock);
  assert_int_equal(net_peer_stats(at->peer).state, PN_PEER_DISCONNECTED);
}

/* With max_peers = 1 a second client is refused with PN_REASON_FULL, and
 * admitted once the first left. */
static void max_peers_refuses_with_full(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  net_app sapp;
  net_app_init(&sapp, 4);
  pn_test_latch sdisc;
  pn_test_latch_init(&sdisc, 1);
  sapp.on_disconnect = &sdisc;
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &sapp, -1);
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.max_peers = 1;
  pn_host *server = net_host(rt, sa, &scfg, NULL);
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  net_attempt first, second, third;
  net_attempt_start(&first, rt, client, &to, 1, NULL);
  net_attempt_wait(&first);
  assert_int_equal(first.app.connected, 1);
  net_attempt_start(&second, rt, client, &to, 1, NULL);
  net_attempt_wait(&second);
  assert_refused(&second, PN_REASON_FULL);
  pn_host_stats st = net_host_stats(server);
  assert_int_equal(st.accepted, 1);
  assert_int_equal(st.rejected, 1);
  assert_int_equal(st.peers, 1);
  assert_int_equal(net_host_stats(client).peers, 1);
  /* The first leaves; the slot is free again. */
  pn_test_latch_add(&first.done, 1);
  PN_ASSERT_OK(pn_peer_disconnect(first.peer, 9));
  assert_true(pn_test_latch_wait(&first.done, NET_WAIT_MS));
  assert_true(pn_test_latch_wait(&sdisc, NET_WAIT_MS));
  assert_int_equal(sapp.reason, 9);
  assert_int_equal(net_host_stats(server).peers, 0);
  net_attempt_start(&third, rt, client, &to, 1, NULL);
  net_attempt_wait(&third);
  assert_int_equal(third.app.connected, 1);
  st = net_host_stats(server);
  assert_int_equal(st.accepted, 2);
  assert_int_equal(st.peers, 1);
  /* The client host's own max_peers (its one peer connecting to a host
   * that never answers): PN_EAGAIN, nothing created. */
  pn_host_config ccfg = PN_HOST_CONFIG_INIT;
  ccfg.max_peers = 1;
  pn_host *small = net_host(rt, NULL, &ccfg, NULL);
  pn_addr mute;
  PN_ASSERT_OK(pn_host_local_addr(client, 0, &mute));
  net_attempt fourth;
  net_attempt_start(&fourth, rt, small, &mute, 1, NULL);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = to;
  pc.owner = fourth.actor;
  pn_peer *none = (pn_peer *)&pc;
  PN_ASSERT_ERR(PN_EAGAIN, pn_host_connect(small, &pc, &none));
  assert_ptr_equal(none, (pn_peer *)&pc);
  assert_int_equal(net_host_stats(small).peers, 1);
  pn_host_close(small);
  net_attempt_wait(&fourth);
  assert_int_equal(fourth.app.reason, PN_REASON_HOST_CLOSED);
  assert_false(fourth.app.remote);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  net_attempt_fini(&first);
  net_attempt_fini(&second);
  net_attempt_fini(&third);
  net_attempt_fini(&fourth);
  pn_peer_release(sapp.peer);
  pn_actor_release(sa);
  pn_test_runtime_end(rt);
  net_app_fini(&sapp);
  pn_test_latch_fini(&sdisc);
}

/* The accept hook sees the channels asked for and refuses with its own
 * reason (the client sees it, remote); a library reason from the hook
 * becomes PN_REASON_REFUSED; 0 accepts. */
static void accept_hook_refuses(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  net_app sapp;
  net_app_init(&sapp, 4);
  pn_actor *sa = pn_test_spawn(rt, "server-app", net_app_handler, &sapp, -1);
  hook_ctx hk;
  memset(&hk, 0, sizeof hk);
  pthread_mutex_init(&hk.lock, NULL);
  hk.answer = 77;
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.accept = accept_hook;
  scfg.accept_ctx = &hk;
  pn_host *server = net_host(rt, sa, &scfg, NULL);
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  pn_addr to, client_addr;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  PN_ASSERT_OK(pn_host_local_addr(client, 0, &client_addr));
  pn_channel_kind kinds[3] = {PN_CHANNEL_UNRELIABLE, PN_CHANNEL_ORDERED,
                              PN_CHANNEL_RELIABLE_UNORDERED};
  net_attempt a, b, c;
  net_attempt_start(&a, rt, client, &to, 3, kinds);
  net_attempt_wait(&a);
  assert_refused(&a, 77);
  pthread_mutex_lock(&hk.lock);
  assert_int_equal(hk.calls, 1);
  assert_int_equal(hk.channels, 3);
  assert_memory_equal(hk.kinds, kinds, sizeof kinds);
  assert_true(pn_addr_equal(&hk.from, &client_addr));
  hk.answer = PN_REASON_TIMEOUT;
  pthread_mutex_unlock(&hk.lock);
  net_attempt_start(&b, rt, client, &to, 1, NULL);
  net_attempt_wait(&b);
  assert_refused(&b, PN_REASON_REFUSED);
  pn_host_stats st = net_host_stats(server);
  assert_int_equal(st.rejected, 2);
  assert_int_equal(st.accepted, 0);
  assert_int_equal(st.peers, 0);
  assert_int_equal(sapp.connected, 0);
  pthread_mutex_lock(&hk.lock);
  hk.answer = 0;
  pthread_mutex_unlock(&hk.lock);
  net_attempt_start(&c, rt, client, &to, 1, NULL);
  net_attempt_wait(&c);
  assert_int_equal(c.app.connected, 1);
  assert_int_equal(net_host_stats(server).accepted, 1);
  pthread_mutex_lock(&hk.lock);
  assert_int_equal(hk.calls, 3);
  assert_int_equal(hk.channels, 1);
  assert_int_equal(hk.kinds[0], PN_CHANNEL_ORDERED);
  pthread_mutex_unlock(&hk.lock);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  net_attempt_fini(&a);
  net_attempt_fini(&b);
  net_attempt_fini(&c);
  pn_peer_release(sapp.peer);
  pn_actor_release(sa);
  pn_test_runtime_end(rt);
  net_app_fini(&sapp);
  pthread_mutex_destroy(&hk.lock);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connect_flood),
      cmocka_unit_test(max_peers_refuses_with_full),
      cmocka_unit_test(accept_hook_refuses),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
