/* Datagrams that are wrong, on both I/O backends: every kind of garbage
 * and forgery a stranger can send to a server with a live connection, and
 * a relay that corrupts, truncates and replays that connection's own
 * datagrams. Each one is counted exactly once and dropped; the connection
 * carries on undisturbed.
 *
 * Counters are checked exactly wherever the path is deterministic: the
 * host handles its socket's datagrams in arrival order, so once it
 * answers a marker request (or delivers a marker message) sent after a
 * batch, it has counted the whole batch. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/wire.h"
#include "tests/net/forge.h"
#include "tests/net/net_harness.h"
#include "tests/net/relay.h"

/* Sends id `id` from the client and waits until the server delivered it:
 * every datagram that reached the server before it has been handled. */
static void pair_sync(net_pair *w, uint64_t id) {
  pn_test_latch got;
  pn_test_latch_init(&got, 1);
  pthread_mutex_lock(&w->server_app.lock);
  w->server_app.signal_id = id;
  w->server_app.signal_channel = 0;
  w->server_app.on_signal = &got;
  pthread_mutex_unlock(&w->server_app.lock);
  net_send_range(pn_peer_channel(w->peer, 0), id, id, 64);
  if (!pn_test_latch_wait(&got, NET_WAIT_MS)) {
    net_print_host("server", w->server);
    net_print_peer("client peer", w->peer);
    fail_msg("message %" PRIu64 " never arrived", id);
  }
  pthread_mutex_lock(&w->server_app.lock);
  w->server_app.on_signal = NULL;
  pthread_mutex_unlock(&w->server_app.lock);
  pn_test_latch_fini(&got);
}

/* --- garbage from a plain socket ----------------------------------------- */

/* Every kind of malformed or forged datagram a stranger can send, to a
 * server with one live connection (through the relay, which tells the
 * test the connection's real id). Each lands in exactly one counter; none
 * gets a reply, creates a peer or disturbs the connection. */
static void garbage_is_counted_and_dropped(void **state) {
  (void)state;
  net_pair w;
  pn_host_config quiet = PN_HOST_CONFIG_INIT;
  quiet.keepalive_us = 60000000; /* no traffic of its own meanwhile */
  quiet.idle_timeout_us = 120000000;
  pn_channel_kind kind = PN_CHANNEL_ORDERED;
  relay *rl = relay_pair_open(&w,
                              &(net_pair_opts){.server_cfg = &quiet,
                                               .client_cfg = &quiet,
                                               .nch = 1,
                                               .kinds = &kind,
                                               .cap = 64},
                              0);
  net_pair_wait_connected(&w);
  pair_sync(&w, 1); /* a DATA datagram: the relay learns the server's id */
  uint32_t real = atomic_load(&rl->server_id);
  assert_true(real != 0);
  prober pr;
  pn_actor *pa = prober_open(w.rt, &pr);
  const pn_addr *to = &w.server_addr;
  uint64_t rng = pn_test_seed() ^ 0xBAD;
  uint8_t buf[2048];
  pn_host_stats before = net_host_stats(w.server);
  uint64_t sent = 0, bad_header = 0, unknown = 0, dropped = 0, peer_bad = 0;

  /* Random bytes (never a version the host reads: an older one with the
   * ConnectRequest type would be an old client's request), 1..1200 long. */
  for (int i = 0; i < 200; i++) {
    size_t len = 1 + pn_test_rand(&rng) % 1200;
    for (size_t j = 0; j < len; j++) {
      buf[j] = (uint8_t)pn_test_rand(&rng);
    }
    if (buf[0] >= 1 && buf[0] <= PN__WIRE_VERSION) {
      buf[0] = 0;
    }
    prober_send(&pr, to, buf, len);
    bad_header++;
  }
  /* An empty datagram and every header shorter than header + tag. */
  prober_send(&pr, to, buf, 0);
  bad_header++;
  for (size_t len = 1; len < PN__WIRE_OVERHEAD; len++) {
    pn__wire_put_header(buf, PN__T_DATA, false, real);
    memset(buf + PN__WIRE_HEADER, 0xAB, sizeof buf - PN__WIRE_HEADER);
    prober_send(&pr, to, buf, len);
    bad_header++;
  }
  /* Wrong versions, unknown types, unknown flag bits. */
  static const uint8_t versions[] = {
      0, PN__WIRE_VERSION - 1, PN__WIRE_VERSION + 1, 0x7F, 0x81, 0xFF};
  for (size_t i = 0; i < sizeof versions; i++) {
    pn__wire_put_header(buf, PN__T_DATA, false, real);
    buf[0] = versions[i];
    prober_send(&pr, to, buf, 100);
    bad_header++;
  }
  static const uint8_t type_bytes[] = {0x00, 0x07, 0x08, 0x0F, 0x10,
                                       0x20, 0x46, 0x86, 0xE6};
  for (size_t i = 0; i < sizeof type_bytes; i++) {
    pn__wire_put_header(buf, PN__T_DATA, false, real);
    buf[1] = type_bytes[i];
    prober_send(&pr, to, buf, 100);
    bad_header++;
  }
  /* DATA and server-bound replies for connections that do not exist. */
  for (int i = 0; i < 300; i++) {
    uint32_t id = (uint32_t)pn_test_rand(&rng);
    if (id == real) {
      id ^= 1;
    }
    pn__wire_put_header(buf, PN__T_DATA, i % 2 == 0, i == 0 ? 0 : id);
    for (size_t j = PN__WIRE_HEADER; j < 200; j++) {
      buf[j] = (uint8_t)pn_test_rand(&rng);
    }
    prober_send(&pr, to, buf, 200);
    unknown++;
  }
  for (uint8_t t = PN__T_CHALLENGE; t <= PN__T_REJECT; t++) {
    if (t == PN__T_CONNECT_RESPONSE) {
      continue;
    }
    pn__wire_put_header(buf, t, false, 0);
    size_t len = pn__wire_seal(buf, 100, pn__wire_public_key);
    prober_send(&pr, to, buf, len);
    unknown++;
  }
  /* Handshakes the host must drop: unpadded requests, bad tags, zero ids,
   * bad channel lists, bodies that are not protobuf, forged cookies. */
  for (uint32_t i = 0; i < 50; i++) {
    size_t len = forge_request(buf, PN__WIRE_VERSION, 1000 + i, 1, 0);
    assert_true(len < PN__HANDSHAKE_PAD);
    prober_send(&pr, to, buf, len);
    dropped++;
  }
  for (uint32_t i = 0; i < 10; i++) {
    size_t len = forge_request(buf, PN__WIRE_VERSION, 2000 + i, 1, 256);
    buf[len - 1 - i] ^= 0x40; /* tag or padding */
    prober_send(&pr, to, buf, len);
    dropped++;
  }
  static const uint32_t bad_nch[] = {0, PN_MAX_CHANNELS + 1};
  for (size_t i = 0; i < 2; i++) {
    prober_send(&pr, to, buf,
                forge_request(buf, PN__WIRE_VERSION, 3000, bad_nch[i], 300));
    dropped++;
  }
  {
    uint8_t kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_KINDS};
    Peernet__Wire__V1__ConnectRequest r =
        PEERNET__WIRE__V1__CONNECT_REQUEST__INIT;
    r.version = PN__WIRE_VERSION;
    r.client_id = 3001;
    r.channel_kinds.data = kinds;
    r.channel_kinds.len = 2;
    prober_send(&pr, to, buf,
                forge_handshake(buf, PN__T_CONNECT_REQUEST, 0, &r.base,
                                &r.padding, 256));
    dropped++;
    r.client_id = 0; /* no id */
    r.channel_kinds.len = 1;
    prober_send(&pr, to, buf,
                forge_handshake(buf, PN__T_CONNECT_REQUEST, 0, &r.base,
                                &r.padding, 256));
    dropped++;
  }
  for (uint8_t t = PN__T_CONNECT_REQUEST; t <= PN__T_CONNECT_RESPONSE; t += 2) {
    pn__wire_put_header(buf, t, false, 0);
    memset(buf + PN__WIRE_HEADER, 0xFF, 300); /* truncated varints */
    prober_send(&pr, to, buf,
                pn__wire_seal(buf, PN__WIRE_HEADER + 300, pn__wire_public_key));
    dropped++;
  }
  for (uint32_t i = 0; i < 50; i++) {
    uint8_t cookie[16];
    for (size_t j = 0; j < sizeof cookie; j++) {
      cookie[j] = (uint8_t)pn_test_rand(&rng);
    }
    uint64_t ts = i % 2 ? pn_test_rand(&rng) : 0;
    prober_send(&pr, to, buf,
                forge_response(buf, 4000 + i, ts, cookie, i % 5 ? 16 : 15));
    dropped++;
  }
  /* The real connection id from a stranger: bad tags, a compressed body
   * that is not, handshake replies a server peer never takes. */
  for (int i = 0; i < 100; i++) {
    size_t len = PN__WIRE_OVERHEAD + pn_test_rand(&rng) % 1100;
    pn__wire_put_header(buf, PN__T_DATA, i % 3 == 0, real);
    for (size_t j = PN__WIRE_HEADER; j < len; j++) {
      buf[j] = (uint8_t)pn_test_rand(&rng);
    }
    prober_send(&pr, to, buf, len);
    peer_bad++;
  }
  for (uint8_t t = PN__T_CHALLENGE; t <= PN__T_REJECT; t++) {
    if (t == PN__T_CONNECT_RESPONSE) {
      continue;
    }
    pn__wire_put_header(buf, t, false, real);
    memset(buf + PN__WIRE_HEADER, 0, 50);
    prober_send(&pr, to, buf,
                pn__wire_seal(buf, PN__WIRE_HEADER + 50, pn__wire_public_key));
    peer_bad++;
  }
  sent = bad_header + unknown + dropped + peer_bad;
  prober_sync(&pr, to);
  pn_host_stats after = net_host_stats(w.server);
  if (after.datagrams_in - before.datagrams_in != sent + 1) {
    net_print_host("server", w.server);
  }
  assert_int_equal(after.datagrams_in - before.datagrams_in, sent + 1);
  assert_int_equal(after.bad_header - before.bad_header, bad_header);
  assert_int_equal(after.unknown_connection - before.unknown_connection,
                   unknown);
  assert_int_equal(after.handshake_dropped - before.handshake_dropped, dropped);
  assert_int_equal(after.challenges_sent - before.challenges_sent, 1);
  assert_int_equal(after.accepted, 1);
  assert_int_equal(after.rejected, 0);
  assert_int_equal(after.peers, 1);
  assert_int_equal(atomic_load(&pr.replies), 1); /* the marker's only */
  assert_int_equal(atomic_load(&pr.bad), 0);
  /* The connection still works, and its peer counted the forged DATA. */
  pair_sync(&w, 2);
  pn_peer_stats sp = net_peer_stats(w.server_app.peer);
  assert_int_equal(sp.bad_datagrams, peer_bad);
  assert_int_equal(sp.state, PN_PEER_CONNECTED);
  assert_int_equal(net_peer_stats(w.peer).bad_datagrams, 0);
  assert_int_equal(w.server_app.bad, 0);
  assert_int_equal(w.server_app.packets, 2);
  assert_int_equal(w.server_app.ids[0], 1);
  assert_int_equal(w.server_app.ids[1], 2);
  pn_socket_close(pr.sock);
  net_pair_adopt_actor(&w, pa);
  net_pair_close(&w);
  relay_free(rl);
  prober_fini(&pr, NULL);
}

/* --- corruption, truncation and replay on a live connection -------------- */

/* 500 ordered messages (8..3000 bytes, so some are fragmented) each way
 * through the relay while it corrupts 8%, truncates 4% and replays after
 * 8% of the DATA datagrams. Nothing arrives corrupt, everything arrives
 * once and in order, and every impaired datagram from the client is
 * counted by exactly one of the server's counters. */
static void corrupted_truncated_replayed(void **state) {
  (void)state;
  enum { N = 500 };
  net_pair w;
  pn_channel_kind kind = PN_CHANNEL_ORDERED;
  relay *rl = relay_pair_open(
      &w, &(net_pair_opts){.nch = 1, .kinds = &kind, .cap = 2 * N + 16},
      0xC0FFEE);
  net_pair_wait_connected(&w);
  rl->corrupt = 0.08;
  rl->truncate = 0.04;
  rl->replay = 0.08;
  pn_host_stats s0 = net_host_stats(w.server), c0 = net_host_stats(w.client);
  atomic_store(&rl->mode, RELAY_IMPAIR);
  pn_test_latch got;
  pn_test_latch_init(&got, 2 * N);
  pthread_mutex_lock(&w.server_app.lock);
  w.server_app.echo = true; /* the server sends everything back */
  w.server_app.on_packet = &got;
  pthread_mutex_unlock(&w.server_app.lock);
  pthread_mutex_lock(&w.client_app.lock);
  w.client_app.on_packet = &got;
  pthread_mutex_unlock(&w.client_app.lock);
  uint64_t rng = pn_test_seed() ^ 0xF00D;
  net_send_n(pn_peer_channel(w.peer, 0), N, 8, 3000, &rng);
  if (!pn_test_latch_wait(&got, NET_WAIT_MS)) {
    net_print_host("server", w.server);
    net_print_host("client", w.client);
    net_print_peer("client peer", w.peer);
    net_print_peer("server peer", w.server_app.peer);
    fail_msg("delivered %" PRIu64 " + %" PRIu64, w.server_app.packets,
             w.client_app.packets);
  }
  atomic_store(&rl->mode, RELAY_PASS);
  pthread_mutex_lock(&w.server_app.lock);
  w.server_app.echo = false;
  w.server_app.on_packet = NULL;
  pthread_mutex_unlock(&w.server_app.lock);
  pair_sync(&w, N + 1);
  relay_dir *cs = &rl->dir[0], *sc = &rl->dir[1];
  uint64_t impaired_cs = atomic_load(&cs->impaired);
  uint64_t impaired_sc = atomic_load(&sc->impaired);
  fprintf(stderr,
          "# relay c->s: %" PRIu64 " forwarded, %" PRIu64 " impaired, %" PRIu64
          " replayed; s->c: %" PRIu64 ", %" PRIu64 ", %" PRIu64 "\n",
          atomic_load(&cs->forwarded), impaired_cs, atomic_load(&cs->replayed),
          atomic_load(&sc->forwarded), impaired_sc, atomic_load(&sc->replayed));
  assert_true(impaired_cs > 0 && impaired_sc > 0);
  assert_true(atomic_load(&cs->replayed) > 0);
  net_app *s = &w.server_app, *c = &w.client_app;
  pthread_mutex_lock(&s->lock);
  pthread_mutex_lock(&c->lock);
  assert_int_equal(s->bad, 0);
  assert_int_equal(c->bad, 0);
  assert_int_equal(s->packets, N + 1);
  assert_int_equal(c->packets, N);
  for (uint64_t i = 0; i < N; i++) {
    assert_int_equal(s->ids[i], i + 1);
    assert_int_equal(c->ids[i], i + 1);
  }
  pthread_mutex_unlock(&c->lock);
  pthread_mutex_unlock(&s->lock);
  /* Client to server: each impaired datagram in exactly one counter. */
  pn_host_stats s1 = net_host_stats(w.server), c1 = net_host_stats(w.client);
  pn_peer_stats sp = net_peer_stats(w.server_app.peer),
                cp = net_peer_stats(w.peer);
  uint64_t seen_cs = (s1.bad_header - s0.bad_header) +
                     (s1.unknown_connection - s0.unknown_connection) +
                     (s1.handshake_dropped - s0.handshake_dropped) +
                     sp.bad_datagrams;
  assert_int_equal(seen_cs, impaired_cs);
  assert_true(sp.duplicates >= atomic_load(&cs->replayed));
  /* Server to client: the same, give or take handshake replies the
   * client no longer takes (a resent Accept counts as bad there). */
  uint64_t seen_sc = (c1.bad_header - c0.bad_header) +
                     (c1.unknown_connection - c0.unknown_connection) +
                     (c1.handshake_dropped - c0.handshake_dropped) +
                     cp.bad_datagrams;
  assert_true(seen_sc >= impaired_sc);
  assert_true(seen_sc <= impaired_sc + atomic_load(&sc->handshakes));
  assert_true(cp.duplicates >= atomic_load(&sc->replayed));
  assert_true(cp.retransmits > 0 && sp.retransmits > 0);
  assert_int_equal(s1.accepted, 1);
  assert_int_equal(s1.peers, 1);
  assert_int_equal(sp.state, PN_PEER_CONNECTED);
  assert_int_equal(cp.state, PN_PEER_CONNECTED);
  pn_test_latch_fini(&got);
  net_pair_close(&w);
  relay_free(rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(garbage_is_counted_and_dropped),
      cmocka_unit_test(corrupted_truncated_replayed),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
