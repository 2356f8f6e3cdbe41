/* A server's bookkeeping, on both I/O backends: listing a host's peers,
 * broadcasting one packet to all (or a filtered set), a user pointer on
 * accepted peers, per-peer timeouts (from the config and set on an
 * accepted peer), and names resolved for connecting. */
#include <string.h>

#include "tests/net/net_harness.h"

enum { CLIENTS = 3 };

/* The server's owner: holds the accepted peers, records the user pointer
 * of every packet event and the reason of every disconnect. */
typedef struct server_rec {
  pthread_mutex_t lock;
  pn_peer *peers[CLIENTS];
  uint32_t npeers;
  void *last_user;
  void *gone_user; /* the last PN_MSG_PEER_DISCONNECTED's */
  uint64_t packets;
  uint32_t reason;
  pn_test_latch *on_connect, *on_packet, *on_disconnect;
} server_rec;

static void server_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  server_rec *s = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  pthread_mutex_lock(&s->lock);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (s->npeers < CLIENTS) {
      pn_peer_hold(ev.peer);
      s->peers[s->npeers++] = ev.peer;
    }
    pn_test_latch_count_down(s->on_connect);
    break;
  case PN_MSG_PEER_PACKET:
    s->last_user = ev.user;
    s->packets++;
    if (s->on_packet) {
      pn_test_latch_count_down(s->on_packet);
    }
    break;
  case PN_MSG_PEER_DISCONNECTED:
    s->reason = ev.reason;
    s->gone_user = ev.user;
    if (s->on_disconnect) {
      pn_test_latch_count_down(s->on_disconnect);
    }
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&s->lock);
}

/* A server and a client host, CLIENTS (or n) peers from the client to
 * the server, every one connected. */
typedef struct world {
  pn_runtime *rt;
  server_rec srv;
  net_app cli;
  pn_actor *srv_actor, *cli_actor;
  pn_host *server, *client;
  pn_addr server_addr;
  pn_peer *peers[CLIENTS]; /* the client's handles */
  uint32_t n;
  pn_test_latch srv_connected, cli_connected;
} world;

/* scfg, ccfg: the hosts' configs (NULL: defaults); first: the config of
 * the first peer (NULL: defaults), its remote and owner filled here. */
static void world_open(world *w, uint32_t n, pn_host_config *scfg,
                       pn_host_config *ccfg, const pn_peer_config *first) {
  memset(w, 0, sizeof *w);
  w->n = n;
  w->rt = net_runtime();
  pthread_mutex_init(&w->srv.lock, NULL);
  pn_test_latch_init(&w->srv_connected, n);
  pn_test_latch_init(&w->cli_connected, n);
  w->srv.on_connect = &w->srv_connected;
  net_app_init(&w->cli, 64);
  w->cli.on_connect = &w->cli_connected;
  w->srv_actor = pn_test_spawn(w->rt, "server", server_handler, &w->srv, 0);
  w->cli_actor = pn_test_spawn(w->rt, "client", net_app_handler, &w->cli, 1);
  w->server = net_host(w->rt, w->srv_actor, scfg, NULL);
  w->client = net_host(w->rt, NULL, ccfg, NULL);
  PN_ASSERT_OK(pn_host_local_addr(w->server, 0, &w->server_addr));
  for (uint32_t i = 0; i < n; i++) {
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    if (i == 0 && first) {
      pc = *first;
    }
    pc.remote = w->server_addr;
    pc.owner = w->cli_actor;
    PN_ASSERT_OK(pn_host_connect(w->client, &pc, &w->peers[i]));
  }
  assert_true(pn_test_latch_wait(&w->srv_connected, NET_WAIT_MS));
  assert_true(pn_test_latch_wait(&w->cli_connected, NET_WAIT_MS));
}

static void world_close(world *w) {
  for (uint32_t i = 0; i < w->n; i++) {
    pn_peer_release(w->peers[i]);
  }
  pn_host_close(w->client);
  pn_host_close(w->server);
  PN_ASSERT_OK(pn_runtime_shutdown(w->rt, UINT64_MAX));
  for (uint32_t i = 0; i < w->srv.npeers; i++) {
    pn_peer_release(w->srv.peers[i]);
  }
  pn_peer_release(w->cli.peer);
  pn_actor_release(w->srv_actor);
  pn_actor_release(w->cli_actor);
  pn_test_runtime_end(w->rt);
  net_app_fini(&w->cli);
  pthread_mutex_destroy(&w->srv.lock);
  pn_test_latch_fini(&w->srv_connected);
  pn_test_latch_fini(&w->cli_connected);
}

static bool all_but(pn_peer *peer, void *ctx) { return peer != ctx; }

static void peers_are_listed_and_broadcast_to(void **state) {
  (void)state;
  world w;
  world_open(&w, CLIENTS, NULL, NULL, NULL);
  /* Listing: counted, capped, each held once. */
  size_t n = 99;
  PN_ASSERT_OK(pn_host_peers(w.server, NULL, 0, &n));
  assert_int_equal(n, CLIENTS);
  pn_peer *some[CLIENTS + 2] = {0};
  PN_ASSERT_OK(pn_host_peers(w.server, some, 2, &n));
  assert_int_equal(n, CLIENTS);
  assert_non_null(some[0]);
  assert_non_null(some[1]);
  assert_null(some[2]);
  pn_peer_release(some[0]);
  pn_peer_release(some[1]);
  PN_ASSERT_OK(pn_host_peers(w.server, some, CLIENTS + 2, &n));
  assert_int_equal(n, CLIENTS);
  for (uint32_t i = 0; i < CLIENTS; i++) {
    bool known = false;
    pthread_mutex_lock(&w.srv.lock);
    for (uint32_t j = 0; j < w.srv.npeers; j++) {
      known |= w.srv.peers[j] == some[i];
    }
    pthread_mutex_unlock(&w.srv.lock);
    assert_true(known);
    for (uint32_t j = 0; j < i; j++) {
      assert_ptr_not_equal(some[i], some[j]);
    }
  }
  PN_ASSERT_OK(pn_host_peers(w.client, NULL, 0, &n));
  assert_int_equal(n, CLIENTS);
  /* Bad arguments change nothing. */
  PN_ASSERT_ERR(PN_EINVAL, pn_host_peers(NULL, some, 1, &n));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_peers(w.server, NULL, 1, &n));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_peers(w.server, some, 1, NULL));

  /* Broadcast: one packet, every peer, no copy. */
  uint8_t body[64];
  net_fill(body, sizeof body, 1);
  pn_packet *pkt;
  PN_ASSERT_OK(pn_packet_create(body, sizeof body, &pkt));
  pn_test_latch got;
  pn_test_latch_init(&got, CLIENTS + CLIENTS - 1);
  pthread_mutex_lock(&w.cli.lock);
  w.cli.on_packet = &got;
  pthread_mutex_unlock(&w.cli.lock);
  size_t sent = 0;
  PN_ASSERT_OK(pn_host_broadcast(w.server, 0, pkt, NULL, NULL, &sent));
  assert_int_equal(sent, CLIENTS);
  /* Filtered: all but one. */
  PN_ASSERT_OK(pn_host_broadcast(w.server, 0, pkt, all_but, some[0], &sent));
  assert_int_equal(sent, CLIENTS - 1);
  /* A channel nobody has: sent to none. */
  PN_ASSERT_OK(pn_host_broadcast(w.server, 5, pkt, NULL, NULL, &sent));
  assert_int_equal(sent, 0);
  PN_ASSERT_ERR(PN_EINVAL, pn_host_broadcast(NULL, 0, pkt, NULL, NULL, &sent));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_host_broadcast(w.server, 0, NULL, NULL, NULL, &sent));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_broadcast(w.server, PN_MAX_CHANNELS, pkt,
                                             NULL, NULL, &sent));
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pn_packet_release(pkt); /* the peers hold their own until acknowledged */
  pthread_mutex_lock(&w.cli.lock);
  assert_int_equal(w.cli.packets, CLIENTS + CLIENTS - 1);
  for (uint64_t i = 0; i < w.cli.packets; i++) {
    assert_int_equal(w.cli.ids[i], 1);
  }
  assert_int_equal(w.cli.bad, 0);
  w.cli.on_packet = NULL;
  pthread_mutex_unlock(&w.cli.lock);
  for (uint32_t i = 0; i < CLIENTS; i++) {
    pn_peer_release(some[i]);
  }
  world_close(&w);
  pn_test_latch_fini(&got);
}

static void accepted_peers_carry_a_user_pointer(void **state) {
  (void)state;
  world w;
  world_open(&w, 1, NULL, NULL, NULL);
  pthread_mutex_lock(&w.srv.lock);
  pn_peer *accepted = w.srv.peers[0];
  pthread_mutex_unlock(&w.srv.lock);
  assert_null(pn_peer_user(accepted));
  static int session = 7;
  PN_ASSERT_OK(pn_peer_set_user(accepted, &session));
  assert_ptr_equal(pn_peer_user(accepted), &session);
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_set_user(NULL, &session));
  assert_null(pn_peer_user(NULL));
  pn_test_latch got;
  pn_test_latch_init(&got, 1);
  pthread_mutex_lock(&w.srv.lock);
  w.srv.on_packet = &got;
  pthread_mutex_unlock(&w.srv.lock);
  net_send_range(pn_peer_channel(w.peers[0], 0), 1, 1, 32);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pthread_mutex_lock(&w.srv.lock);
  assert_ptr_equal(w.srv.last_user, &session);
  w.srv.on_packet = NULL;
  pthread_mutex_unlock(&w.srv.lock);
  /* The goodbye carries it too (made with the peer, before it was set). */
  pn_test_latch gone;
  pn_test_latch_init(&gone, 1);
  pthread_mutex_lock(&w.srv.lock);
  w.srv.on_disconnect = &gone;
  pthread_mutex_unlock(&w.srv.lock);
  PN_ASSERT_OK(pn_peer_disconnect(w.peers[0], 1));
  assert_true(pn_test_latch_wait(&gone, NET_WAIT_MS));
  pthread_mutex_lock(&w.srv.lock);
  assert_ptr_equal(w.srv.gone_user, &session);
  w.srv.on_disconnect = NULL;
  pthread_mutex_unlock(&w.srv.lock);
  world_close(&w);
  pn_test_latch_fini(&got);
  pn_test_latch_fini(&gone);
}

/* Both hosts keep a minute of idle timeout; one peer is given 300 ms.
 * Once the other side goes silent (its sends all dropped), that peer times
 * out on its own: within the test's wait, which the hosts' minute cannot
 * be. */
static void timeouts_world(world *w, const pn_peer_config *first) {
  static pn_host_config scfg, ccfg;
  scfg = (pn_host_config)PN_HOST_CONFIG_INIT;
  ccfg = (pn_host_config)PN_HOST_CONFIG_INIT;
  scfg.idle_timeout_us = ccfg.idle_timeout_us = 60u * 1000000u;
  world_open(w, 1, &scfg, &ccfg, first);
}

/* Waits for the one disconnect `latch` counts and checks its reason: the
 * idle timeout, or the ack timeout (half of it) when the silent side's
 * acknowledgements stopped first. */
static void expect_timeout(pthread_mutex_t *lock, pn_test_latch *latch,
                           const uint32_t *reason) {
  assert_true(pn_test_latch_wait(latch, NET_WAIT_MS));
  pthread_mutex_lock(lock);
  assert_true(*reason == PN_REASON_TIMEOUT || *reason == PN_REASON_ACK_TIMEOUT);
  pthread_mutex_unlock(lock);
}

static void a_peer_config_sets_its_own_timeouts(void **state) {
  (void)state;
  pn_peer_config first = PN_PEER_CONFIG_INIT;
  first.idle_timeout_us = 300000;
  first.keepalive_us = 50000;
  world w;
  timeouts_world(&w, &first);
  pn_peer_config bad = PN_PEER_CONFIG_INIT;
  bad.remote = w.server_addr;
  bad.owner = w.cli_actor;
  bad.idle_timeout_us = PN_HOST_TIME_MAX_US + 1;
  pn_peer *none = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_connect(w.client, &bad, &none));
  bad.idle_timeout_us = 0;
  bad.keepalive_us = PN_HOST_TIME_MAX_US + 1;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_connect(w.client, &bad, &none));
  assert_null(none);
  pn_test_latch down;
  pn_test_latch_init(&down, 1);
  pthread_mutex_lock(&w.cli.lock);
  w.cli.on_disconnect = &down;
  pthread_mutex_unlock(&w.cli.lock);
  pn_link_conditioner mute = PN_LINK_CONDITIONER_INIT;
  mute.loss = 1.0;
  mute.seed = pn_test_seed();
  PN_ASSERT_OK(pn_host_set_conditioner(w.server, 0, PN_DIR_SEND, &mute));
  expect_timeout(&w.cli.lock, &down, &w.cli.reason);
  assert_int_equal(net_peer_stats(w.peers[0]).state, PN_PEER_DISCONNECTED);
  PN_ASSERT_ERR(PN_ECLOSED, pn_peer_set_timeouts(w.peers[0], 1000, 1000));
  world_close(&w);
  pn_test_latch_fini(&down);
}

static void an_accepted_peer_is_given_its_own_timeouts(void **state) {
  (void)state;
  world w;
  timeouts_world(&w, NULL);
  pthread_mutex_lock(&w.srv.lock);
  pn_peer *accepted = w.srv.peers[0];
  pthread_mutex_unlock(&w.srv.lock);
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_set_timeouts(NULL, 1000, 1000));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_peer_set_timeouts(accepted, PN_HOST_TIME_MAX_US + 1, 0));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_peer_set_timeouts(accepted, 0, PN_HOST_TIME_MAX_US + 1));
  pn_test_latch down;
  pn_test_latch_init(&down, 1);
  pthread_mutex_lock(&w.srv.lock);
  w.srv.on_disconnect = &down;
  pthread_mutex_unlock(&w.srv.lock);
  PN_ASSERT_OK(pn_peer_set_timeouts(accepted, 300000, 50000));
  pn_link_conditioner mute = PN_LINK_CONDITIONER_INIT;
  mute.loss = 1.0;
  mute.seed = pn_test_seed();
  PN_ASSERT_OK(pn_host_set_conditioner(w.client, 0, PN_DIR_SEND, &mute));
  expect_timeout(&w.srv.lock, &down, &w.srv.reason);
  assert_int_equal(net_peer_stats(accepted).state, PN_PEER_DISCONNECTED);
  world_close(&w);
  pn_test_latch_fini(&down);
}

/* Names: the hosts file's localhost and numeric text, without DNS. */
static void names_resolve_for_connecting(void **state) {
  (void)state;
  pn_addr a;
  PN_ASSERT_OK(pn_addr_resolve("localhost", 7000, PN_AF_INET, &a));
  pn_addr want;
  PN_ASSERT_OK(pn_addr_parse("127.0.0.1:7000", &want));
  assert_true(pn_addr_equal(&a, &want));
  PN_ASSERT_OK(pn_addr_resolve("127.0.0.1", 7001, 0, &a));
  want.port = 7001;
  assert_true(pn_addr_equal(&a, &want));
  PN_ASSERT_OK(pn_addr_resolve("::1", 7002, PN_AF_INET6, &a));
  PN_ASSERT_OK(pn_addr_parse("[::1]:7002", &want));
  assert_true(pn_addr_equal(&a, &want));
  /* Bad arguments leave *out as it was. */
  pn_addr before = a;
  PN_ASSERT_ERR(PN_EINVAL, pn_addr_resolve(NULL, 1, 0, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_addr_resolve("", 1, 0, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_addr_resolve("localhost", 1, 99, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_addr_resolve("localhost", 1, 0, NULL));
  assert_true(pn_addr_equal(&a, &before));
  /* A connection to a resolved name. */
  world w;
  world_open(&w, 1, NULL, NULL, NULL);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  PN_ASSERT_OK(
      pn_addr_resolve("localhost", w.server_addr.port, PN_AF_INET, &pc.remote));
  pc.owner = w.cli_actor;
  pn_test_latch_add(&w.cli_connected, 1);
  pn_test_latch_add(&w.srv_connected, 1);
  pn_peer *named;
  PN_ASSERT_OK(pn_host_connect(w.client, &pc, &named));
  assert_true(pn_test_latch_wait(&w.cli_connected, NET_WAIT_MS));
  pn_peer_release(named);
  world_close(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(peers_are_listed_and_broadcast_to),
      cmocka_unit_test(accepted_peers_carry_a_user_pointer),
      cmocka_unit_test(a_peer_config_sets_its_own_timeouts),
      cmocka_unit_test(an_accepted_peer_is_given_its_own_timeouts),
      cmocka_unit_test(names_resolve_for_connecting),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
