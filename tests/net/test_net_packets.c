/* What the packets carry, on both I/O backends: protobuf messages
 * through pn_packet_from_protobuf(), the network and pn_packet_unpack(),
 * one packet sent to several peers without a copy; compression of
 * repetitive payloads, none when it is turned off, and a zstd dictionary
 * trained on messages like the ones sent. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>

#include "actors/packet.h" /* a packet's reference count */
#include "peernet.pb-c.h"  /* the generated message the tests send */
#include "tests/net/net_harness.h"

/* --- packets ------------------------------------------------------------- */

typedef struct proto_app {
  pthread_mutex_t lock;
  pn_test_latch *on_packet;
  uint64_t packets, bad;
  uint32_t seen_ids[16];
} proto_app;

static const uint8_t proto_cookie[5] = {1, 2, 3, 4, 5};

static void proto_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  proto_app *a = state;
  pn_peer_event ev;
  if (pn_msg_type(msg) != PN_MSG_PEER_PACKET ||
      pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  ProtobufCMessage *m = NULL;
  bool ok =
      pn_packet_unpack(ev.packet, &peernet__wire__v1__challenge__descriptor,
                       NULL, &m) == PN_OK;
  Peernet__Wire__V1__Challenge *c = (Peernet__Wire__V1__Challenge *)m;
  ok = ok && c->client_nonce == 0x0123456789ABCDEFull &&
       c->timestamp_ms == 1234567890123ull &&
       c->cookie.len == sizeof proto_cookie &&
       memcmp(c->cookie.data, proto_cookie, sizeof proto_cookie) == 0;
  pthread_mutex_lock(&a->lock);
  if (ok && a->packets < 16) {
    a->seen_ids[a->packets] = c->client_id;
  }
  a->packets++;
  a->bad += !ok;
  pthread_mutex_unlock(&a->lock);
  if (m) {
    protobuf_c_message_free_unpacked(m, NULL);
  }
  pn_test_latch_count_down(a->on_packet);
}

/* A protobuf message survives pn_packet_from_protobuf(), the network and
 * pn_packet_unpack(); one packet goes to three peers on two channels each
 * without a copy on the sending side, and every reference comes back. */
static void protobuf_packets_to_many_peers(void **state) {
  (void)state;
  enum { PEERS = 3 };
  pn_runtime *rt = net_runtime();
  proto_app sapp;
  memset(&sapp, 0, sizeof sapp);
  pthread_mutex_init(&sapp.lock, NULL);
  pn_test_latch got;
  pn_test_latch_init(&got, PEERS * 2 + 1);
  sapp.on_packet = &got;
  pn_actor *sa = pn_test_spawn(rt, "proto-app", proto_handler, &sapp, -1);
  pn_host *server = net_host(rt, sa, NULL, NULL);
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  net_attempt at[PEERS];
  pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_UNSEQUENCED};
  for (int i = 0; i < PEERS; i++) {
    net_attempt_start(&at[i], rt, client, &to, 2, kinds);
  }
  for (int i = 0; i < PEERS; i++) {
    net_attempt_wait(&at[i]);
    assert_int_equal(at[i].app.connected, 1);
  }
  /* Round trip in memory. */
  Peernet__Wire__V1__Challenge msg = PEERNET__WIRE__V1__CHALLENGE__INIT;
  msg.client_id = 42;
  msg.client_nonce = 0x0123456789ABCDEFull;
  msg.timestamp_ms = 1234567890123ull;
  msg.cookie.data = (uint8_t *)proto_cookie;
  msg.cookie.len = sizeof proto_cookie;
  pn_packet *pkt = NULL;
  PN_ASSERT_OK(pn_packet_from_protobuf(&msg.base, &pkt));
  assert_int_equal(pn_packet_len(pkt),
                   protobuf_c_message_get_packed_size(&msg.base));
  ProtobufCMessage *m = NULL;
  PN_ASSERT_OK(pn_packet_unpack(pkt, &peernet__wire__v1__challenge__descriptor,
                                NULL, &m));
  Peernet__Wire__V1__Challenge *back = (Peernet__Wire__V1__Challenge *)m;
  assert_int_equal(back->client_id, 42);
  assert_int_equal(back->client_nonce, msg.client_nonce);
  assert_int_equal(back->timestamp_ms, msg.timestamp_ms);
  assert_memory_equal(back->cookie.data, proto_cookie, sizeof proto_cookie);
  protobuf_c_message_free_unpacked(m, NULL);
  /* The same packet, by reference, six times. */
  const void *bytes = pn_packet_data(pkt);
  for (int i = 0; i < PEERS; i++) {
    for (uint32_t c = 0; c < 2; c++) {
      uint64_t id = 0;
      PN_ASSERT_OK(
          pn_channel_send_packet(pn_peer_channel(at[i].peer, c), pkt, &id));
      assert_int_equal(id, 1);
    }
  }
  assert_ptr_equal(pn_packet_data(pkt), bytes);
  /* A packet made from another message arrives as itself. */
  msg.client_id = 43;
  pn_packet *other = NULL;
  PN_ASSERT_OK(pn_packet_from_protobuf(&msg.base, &other));
  PN_ASSERT_OK(
      pn_channel_send_packet(pn_peer_channel(at[0].peer, 0), other, NULL));
  pn_packet_release(other);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pthread_mutex_lock(&sapp.lock);
  assert_int_equal(sapp.packets, PEERS * 2 + 1);
  assert_int_equal(sapp.bad, 0);
  uint32_t n42 = 0, n43 = 0;
  for (uint64_t i = 0; i < sapp.packets; i++) {
    n42 += sapp.seen_ids[i] == 42;
    n43 += sapp.seen_ids[i] == 43;
  }
  pthread_mutex_unlock(&sapp.lock);
  assert_int_equal(n42, PEERS * 2);
  assert_int_equal(n43, 1);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  /* Every reference the library took is back: only ours is left. */
  assert_int_equal(atomic_load(&pkt->refs), 1);
  pn_packet_release(pkt);
  for (int i = 0; i < PEERS; i++) {
    net_attempt_fini(&at[i]);
  }
  pn_actor_release(sa);
  pn_test_runtime_end(rt);
  pthread_mutex_destroy(&sapp.lock);
  pn_test_latch_fini(&got);
}

/* --- compression --------------------------------------------------------- */

/* Game-state-like text: what a dictionary is for. */
static size_t state_text(char *buf, size_t cap, uint64_t id, uint64_t *rng) {
  static const char *const names[] = {"alice", "bob", "carol", "dave"};
  static const char *const weapons[] = {"sword", "bow", "staff", "axe"};
  int n = snprintf(
      buf, cap,
      "{\"id\":%" PRIu64 ",\"player\":\"%s\",\"pos\":{\"x\":%u,\"y\":%u,"
      "\"z\":%u},\"hp\":%u,\"weapon\":\"%s\",\"team\":\"%s\","
      "\"status\":[\"alive\",\"visible\"],\"score\":%u}",
      id, names[pn_test_rand(rng) % 4], (unsigned)(pn_test_rand(rng) % 4096),
      (unsigned)(pn_test_rand(rng) % 4096), (unsigned)(pn_test_rand(rng) % 256),
      (unsigned)(pn_test_rand(rng) % 101), weapons[pn_test_rand(rng) % 4],
      pn_test_rand(rng) % 2 ? "red" : "blue",
      (unsigned)(pn_test_rand(rng) % 100000));
  return n > 0 ? (size_t)n : 0;
}

typedef struct text_app {
  pthread_mutex_t lock;
  pn_test_latch *on_packet;
  uint64_t packets, bad;
  uint64_t rng; /* replays the sender's sequence */
} text_app;

static void text_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  text_app *a = state;
  pn_peer_event ev;
  if (pn_msg_type(msg) != PN_MSG_PEER_PACKET ||
      pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  char want[512];
  pthread_mutex_lock(&a->lock);
  size_t n = state_text(want, sizeof want, a->packets + 1, &a->rng);
  a->bad += ev.len != n || memcmp(ev.data, want, n) != 0;
  a->packets++;
  pthread_mutex_unlock(&a->lock);
  pn_test_latch_count_down(a->on_packet);
}

/* Sends n state texts one at a time (each waits for its acknowledgement,
 * so each datagram carries one) and returns the client peer's ratio. */
static double text_run(const void *dict, size_t dict_len, bool no_compression,
                       uint64_t n) {
  pn_runtime *rt = net_runtime();
  text_app sapp;
  memset(&sapp, 0, sizeof sapp);
  pthread_mutex_init(&sapp.lock, NULL);
  sapp.rng = pn_test_seed() ^ 0x7E57;
  pn_test_latch got;
  pn_test_latch_init(&got, n);
  sapp.on_packet = &got;
  pn_actor *sa = pn_test_spawn(rt, "text-app", text_handler, &sapp, -1);
  net_app capp;
  net_app_init(&capp, n);
  pn_test_latch connected;
  pn_test_latch_init(&connected, 1);
  capp.on_connect = &connected;
  pn_actor *ca = pn_test_spawn(rt, "client-app", net_app_handler, &capp, -1);
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.zstd_dict = dict;
  cfg.zstd_dict_len = dict_len;
  cfg.no_compression = no_compression;
  pn_host *server = net_host(rt, sa, &cfg, NULL);
  pn_host *client = net_host(rt, NULL, &cfg, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  pn_peer *peer = net_connect(client, &to, ca, 1, NULL, 0);
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
  uint64_t rng = pn_test_seed() ^ 0x7E57;
  char text[512];
  for (uint64_t i = 1; i <= n; i++) {
    pn_test_latch one;
    pn_test_latch_init(&one, 1);
    pthread_mutex_lock(&capp.lock);
    capp.on_resolved = &one;
    pthread_mutex_unlock(&capp.lock);
    size_t len = state_text(text, sizeof text, i, &rng);
    PN_ASSERT_OK(pn_channel_send(pn_peer_channel(peer, 0), text, len, NULL));
    assert_true(pn_test_latch_wait(&one, NET_WAIT_MS));
    pthread_mutex_lock(&capp.lock);
    capp.on_resolved = NULL;
    pthread_mutex_unlock(&capp.lock);
    pn_test_latch_fini(&one);
  }
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  pthread_mutex_lock(&sapp.lock);
  assert_int_equal(sapp.packets, n);
  assert_int_equal(sapp.bad, 0);
  pthread_mutex_unlock(&sapp.lock);
  pn_peer_stats ps = net_peer_stats(peer);
  if (no_compression) {
    assert_int_equal(ps.raw_bytes_out, ps.compressed_bytes_out);
  }
  pn_peer_release(peer);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_peer_release(capp.peer);
  pn_actor_release(sa);
  pn_actor_release(ca);
  pn_test_runtime_end(rt);
  net_app_fini(&capp);
  pthread_mutex_destroy(&sapp.lock);
  pn_test_latch_fini(&got);
  pn_test_latch_fini(&connected);
  return ps.compression_ratio;
}

/* Highly compressible payloads compress; no_compression sends them as
 * they are; a dictionary trained on similar texts compresses small
 * datagrams that compress poorly alone, and every message arrives as
 * sent. */
static void compression_and_dictionary(void **state) {
  (void)state;
  /* Compressible: 20 x 1000 bytes of mostly one phrase. */
  {
    net_pair w;
    net_pair_open(&w, &(net_pair_opts){.nch = 1, .cap = 32});
    net_pair_wait_connected(&w);
    pn_test_latch got;
    pn_test_latch_init(&got, 20);
    w.server_app.on_packet = &got;
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) {
      buf[i] = (uint8_t) "peernet "[i % 8];
    }
    for (uint64_t i = 1; i <= 20; i++) {
      memcpy(buf, &i, 8);
      PN_ASSERT_OK(
          pn_channel_send(pn_peer_channel(w.peer, 0), buf, 1000, NULL));
    }
    assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
    assert_int_equal(w.server_app.packets, 20);
    pn_peer_stats ps = net_peer_stats(w.peer);
    fprintf(stderr, "# repetitive payloads: ratio %.2f\n",
            ps.compression_ratio);
    assert_true(ps.compression_ratio > 2.0);
    assert_true(ps.compressed_bytes_out < ps.raw_bytes_out);
    pn_test_latch_fini(&got);
    net_pair_close(&w);
  }
  /* A dictionary from 2000 samples like the messages (not the same). */
  enum { SAMPLES = 2000, DICT = 4096, N = 200 };
  char *samples = malloc((size_t)SAMPLES * 512);
  size_t *sizes = malloc(SAMPLES * sizeof *sizes);
  size_t total = 0;
  uint64_t rng = pn_test_seed() ^ 0xD1C7;
  for (int i = 0; i < SAMPLES; i++) {
    sizes[i] =
        state_text(samples + total, 512, 100000 + (uint64_t)i * 7919u, &rng);
    total += sizes[i];
  }
  uint8_t *dict = malloc(DICT);
  size_t dict_len = ZDICT_trainFromBuffer(dict, DICT, samples, sizes, SAMPLES);
  assert_false(ZDICT_isError(dict_len));
  free(samples);
  free(sizes);
  double plain = text_run(NULL, 0, true, N);
  double alone = text_run(NULL, 0, false, N);
  double with_dict = text_run(dict, dict_len, false, N);
  fprintf(stderr,
          "# state texts: ratio %.2f uncompressed, %.2f alone, %.2f with a "
          "%zu-byte dictionary\n",
          plain, alone, with_dict, dict_len);
  assert_true(plain == 1.0);
  assert_true(with_dict > 1.2);
  assert_true(with_dict > alone);
  free(dict);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(protobuf_packets_to_many_peers),
      cmocka_unit_test(compression_and_dictionary),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
