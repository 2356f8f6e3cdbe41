/* Out of memory at every step of a connection's life.
 *
 * One life: a runtime, two owner actors, a server and a client host on
 * loopback, a connection, messages both ways on an ordered and an
 * unreliable channel, a disconnect, the hosts closed and the runtime shut
 * down. The first run counts the allocations it makes (runtime/alloc.h);
 * then the life runs again once for every N up to that count (and a
 * margin: thread timing moves a few allocations around), with the Nth
 * allocation failing. Every public call must then return PN_OK or the
 * error its header names for running out of memory (PN_ENOMEM; a send on
 * a peer a failure already closed may say PN_ECLOSED), the life must end
 * (waits have deadlines, no hang), and the runtime's own accounting must
 * show nothing left: no actor, handle, envelope or timer, and ASan's leak
 * check at exit sees no block. A failure inside an actor (an event that
 * could not be built) may lose that event or end the connection: what it
 * must never do is crash, hang or leak.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "runtime/alloc.h"
#include "tests/support/test_support.h"

#define MESSAGES 8u
#define WAIT_MS 400u /* per step, when a failure lost an event */
#define MARGIN 64u   /* lives beyond the counted allocations */

static pn_io_backend backend;

typedef struct owner {
  pthread_mutex_t lock;
  pn_peer *peer; /* held, from PN_MSG_PEER_CONNECTED */
  uint64_t connected, disconnected, packets;
  pn_test_latch connected_l, disconnected_l, packets_l;
} owner;

static void owner_init(owner *o) {
  memset(o, 0, sizeof *o);
  pthread_mutex_init(&o->lock, NULL);
  pn_test_latch_init(&o->connected_l, 1);
  pn_test_latch_init(&o->disconnected_l, 1);
  pn_test_latch_init(&o->packets_l, MESSAGES);
}

static void owner_fini(owner *o) {
  pn_peer_release(o->peer);
  pn_test_latch_fini(&o->connected_l);
  pn_test_latch_fini(&o->disconnected_l);
  pn_test_latch_fini(&o->packets_l);
  pthread_mutex_destroy(&o->lock);
}

static void owner_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  owner *o = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  pn_test_latch *latch = NULL;
  pthread_mutex_lock(&o->lock);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (!o->peer) {
      pn_peer_hold(ev.peer);
      o->peer = ev.peer;
    }
    o->connected++;
    latch = &o->connected_l;
    break;
  case PN_MSG_PEER_DISCONNECTED:
    o->disconnected++;
    latch = &o->disconnected_l;
    break;
  case PN_MSG_PEER_PACKET:
    o->packets++;
    latch = &o->packets_l;
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&o->lock);
  if (latch) {
    pn_test_latch_count_down(latch);
  }
}

/* A call's result: OK, or one of the errors allowed after a failure. */
static void expect_ok_or(pn_err got, pn_err also, const char *what,
                         uint64_t n) {
  if (got != PN_OK && got != PN_ENOMEM && got != also) {
    fail_msg("life %" PRIu64 ": %s returned %s", n, what, pn_err_name(got));
  }
  if (got == PN_ENOMEM && !pn__alloc_failed()) {
    fail_msg("life %" PRIu64 ": %s returned PN_ENOMEM with memory to spare", n,
             what);
  }
}

static pn_host *open_host(pn_runtime *rt, pn_actor *accept_owner, uint64_t n,
                          pn_err *err_out) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.sockets = &sc;
  cfg.socket_count = 1;
  cfg.accept_owner = accept_owner;
  cfg.home_worker = 0;
  cfg.connect_timeout_us = 300000;
  cfg.connect_retry_us = 20000;
  cfg.rto_initial_us = 20000;
  cfg.rto_max_us = 40000;
  cfg.idle_timeout_us = 300000;
  pn_host *h = NULL;
  *err_out = pn_host_open(rt, &cfg, &h);
  expect_ok_or(*err_out, PN_OK, "pn_host_open", n);
  return h;
}

/* Sends MESSAGES on both channels of peer (if it is there). */
static void send_all(pn_peer *peer, uint64_t n) {
  if (!peer) {
    return;
  }
  for (uint32_t i = 0; i < MESSAGES; i++) {
    uint8_t buf[300];
    memset(buf, (int)i, sizeof buf);
    for (uint32_t c = 0; c < pn_peer_channel_count(peer); c++) {
      pn_err err =
          pn_channel_send(pn_peer_channel(peer, c), buf, sizeof buf, NULL);
      /* PN_ECLOSED: a failure already ended the connection. */
      expect_ok_or(err, PN_ECLOSED, "pn_channel_send", n);
    }
  }
  pn_packet *pkt = NULL;
  pn_err err = pn_packet_create("x", 1, &pkt);
  expect_ok_or(err, PN_OK, "pn_packet_create", n);
  if (err == PN_OK) {
    err = pn_channel_send_packet(pn_peer_channel(peer, 0), pkt, NULL);
    expect_ok_or(err, PN_ECLOSED, "pn_channel_send_packet", n);
    pn_packet_release(pkt);
  }
}

/* One life with the nth allocation failing (0: none). Returns the
 * allocations it counted; *failed_out says whether the failure came. */
static uint64_t one_life(uint64_t n, bool *failed_out) {
  pn__alloc_fail_at(n ? n : UINT64_MAX);
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  rc.io = backend;
  pn_runtime *rt = NULL;
  pn_err err = pn_runtime_create(&rc, &rt);
  expect_ok_or(err, PN_OK, "pn_runtime_create", n);
  if (err != PN_OK) {
    *failed_out = pn__alloc_failed();
    uint64_t counted = pn__alloc_counted();
    pn__alloc_fail_at(0);
    return counted;
  }
  owner srv, cli;
  owner_init(&srv);
  owner_init(&cli);
  pn_actor *srv_actor = NULL, *cli_actor = NULL;
  pn_host *server = NULL, *client = NULL;
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.handler = owner_handler;
  ac.name = "server-owner";
  ac.state = &srv;
  err = pn_spawn(rt, &ac, &srv_actor);
  expect_ok_or(err, PN_OK, "pn_spawn", n);
  if (err == PN_OK) {
    ac.name = "client-owner";
    ac.state = &cli;
    err = pn_spawn(rt, &ac, &cli_actor);
    expect_ok_or(err, PN_OK, "pn_spawn", n);
  }
  if (err == PN_OK) {
    server = open_host(rt, srv_actor, n, &err);
  }
  if (err == PN_OK) {
    client = open_host(rt, NULL, n, &err);
  }
  pn_peer *peer = NULL;
  if (err == PN_OK) {
    pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_UNRELIABLE};
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    PN_ASSERT_OK(pn_host_local_addr(server, 0, &pc.remote));
    pc.owner = cli_actor;
    pc.channel_count = 2;
    pc.kinds = kinds;
    err = pn_host_connect(client, &pc, &peer);
    expect_ok_or(err, PN_OK, "pn_host_connect", n);
  }
  if (err == PN_OK) {
    /* A lost event or a failed peer ends the wait at its deadline. */
    (void)pn_test_latch_wait(&cli.connected_l, WAIT_MS);
    (void)pn_test_latch_wait(&srv.connected_l, WAIT_MS);
    send_all(peer, n);
    pthread_mutex_lock(&srv.lock);
    pn_peer *back = srv.peer;
    pthread_mutex_unlock(&srv.lock);
    send_all(back, n);
    (void)pn_test_latch_wait(&srv.packets_l, WAIT_MS);
    err = pn_peer_disconnect(peer, 7);
    expect_ok_or(err, PN_ECLOSED, "pn_peer_disconnect", n);
    (void)pn_test_latch_wait(&cli.disconnected_l, WAIT_MS);
  }
  if (n == 0) {
    /* The counting life must go all the way. */
    assert_int_equal(cli.connected, 1);
    assert_int_equal(srv.connected, 1);
    assert_true(srv.packets >= MESSAGES);
    assert_int_equal(cli.disconnected, 1);
  }
  pn_peer_release(peer);
  pn_host_close(client);
  pn_host_close(server);
  /* A stop request that could not be allocated leaves its actor running:
   * the call says so (PN_ETIMEDOUT) and a second try, with memory back,
   * finishes. */
  err = pn_runtime_shutdown(rt, 2000000);
  if (err == PN_ETIMEDOUT) {
    assert_true(pn__alloc_failed());
    err = pn_runtime_shutdown(rt, 10000000);
  }
  PN_ASSERT_OK(err);
  *failed_out = pn__alloc_failed();
  uint64_t counted = pn__alloc_counted();
  pn__alloc_fail_at(0);
  pn_actor_release(srv_actor);
  pn_actor_release(cli_actor);
  /* Owners let go of the peers they held before the leak check. */
  owner_fini(&srv);
  owner_fini(&cli);
  pn_test_runtime_end(rt);
  return counted;
}

static void every_allocation_of_a_connection_can_fail(void **state) {
  (void)state;
  bool failed_now = false;
  uint64_t total = one_life(0, &failed_now);
  assert_false(failed_now);
  assert_true(total > 50);
  uint64_t failed = 0;
  for (uint64_t n = 1; n <= total + MARGIN; n++) {
    (void)one_life(n, &failed_now);
    failed += failed_now;
  }
  printf("# %" PRIu64 " allocations in a life; %" PRIu64 " lives, %" PRIu64
         " with a failure injected\n",
         total, total + MARGIN, failed);
  assert_true(failed >= total / 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_allocation_of_a_connection_can_fail),
  };
  return pn_test_run_on_backends(tests, sizeof tests / sizeof tests[0],
                                 &backend);
}
