/* Encryption and authentication, as an on-path observer and a server of
 * the wrong key would meet them: payloads never travel in the clear,
 * a pinned server key and a pre-shared key are enforced with their own
 * reasons, a changed Accept is refused, and keys roll over during a
 * connection without losing a message. */
#include <stdio.h>
#include <string.h>

#include "actors/wire.h"
#include "tests/net/relay.h"

#define MARKER "peernet secret marker: nobody on the path reads this"

/* A client disconnect latch of its own, set before the client connects,
 * for the refusals (the pair's latch counts both sides). */
typedef struct refusal {
  net_pair p;
  pn_test_latch client_done;
} refusal;

static void refusal_open(refusal *r, net_pair_opts *o) {
  net_pair_start(&r->p, o);
  pn_test_latch_init(&r->client_done, 1);
  r->p.client_app.on_disconnect = &r->client_done;
  net_pair_connect(&r->p, o, NULL);
}

/* The client's one disconnect came with `reason` (from the server when
 * `by_server`), and no connect. */
static void refusal_expect_from(refusal *r, uint32_t reason, bool by_server) {
  assert_true(pn_test_latch_wait(&r->client_done, NET_WAIT_MS));
  net_app *a = &r->p.client_app;
  pthread_mutex_lock(&a->lock);
  uint64_t connected = a->connected;
  uint32_t got = a->reason;
  bool remote = a->remote;
  pthread_mutex_unlock(&a->lock);
  if (got != reason) {
    fail_msg("client refused with %s, expected %s", pn_reason_name(got),
             pn_reason_name(reason));
  }
  assert_int_equal(connected, 0);
  assert_int_equal(remote, by_server);
  r->p.client_app.on_disconnect = NULL;
  /* The pair's close waits for one disconnect per side that connected:
   * the client's went to client_done, and a server that never accepted
   * has none to give. */
  pthread_mutex_lock(&r->p.server_app.lock);
  uint64_t server_connected = r->p.server_app.connected;
  pthread_mutex_unlock(&r->p.server_app.lock);
  for (uint64_t i = server_connected; i < 2; i++) {
    pn_test_latch_count_down(&r->p.disconnected);
  }
  net_pair_close(&r->p);
  pn_test_latch_fini(&r->client_done);
}

/* The same, the client itself giving up. */
static void refusal_expect(refusal *r, uint32_t reason) {
  refusal_expect_from(r, reason, false);
}

static void fixed_key(uint8_t out[PN_KEY_BYTES], uint8_t fill) {
  memset(out, fill, PN_KEY_BYTES);
}

static void nothing_in_the_clear(void **state) {
  (void)state;
  pn_host_config scfg = PN_HOST_CONFIG_INIT, ccfg = PN_HOST_CONFIG_INIT;
  scfg.no_compression = ccfg.no_compression = true; /* no help from zstd */
  net_pair_opts o = {.server_cfg = &scfg, .client_cfg = &ccfg, .cap = 256};
  net_pair p;
  relay *r = relay_pair_open(&p, &o, 0x5ec);
  memcpy(r->marker, MARKER, sizeof MARKER - 1);
  /* release: pairs with the relay's acquire load (it already runs). */
  atomic_store_explicit(&r->marker_len, sizeof MARKER - 1,
                        memory_order_release);
  net_pair_wait_connected(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, 200);
  p.server_app.on_packet = &got;
  p.server_app.echo = true; /* and back, so both directions carry it */
  for (int i = 0; i < 200; i++) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%d %s", i, MARKER);
    PN_ASSERT_OK(
        pn_channel_send(pn_peer_channel(p.peer, 0), msg, (size_t)n, NULL));
  }
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  uint64_t data =
      atomic_load(&r->dir[0].forwarded) + atomic_load(&r->dir[1].forwarded) -
      atomic_load(&r->dir[0].handshakes) - atomic_load(&r->dir[1].handshakes);
  fprintf(stderr, "# %llu DATA datagrams relayed, marker seen in %llu\n",
          (unsigned long long)data,
          (unsigned long long)atomic_load(&r->marker_seen));
  assert_true(data >= 2);
  assert_int_equal(atomic_load(&r->marker_seen), 0);
  p.server_app.on_packet = NULL;
  net_pair_close(&p);
  pn_test_latch_fini(&got);
  relay_free(r);
}

static void pinned_server_key_connects(void **state) {
  (void)state;
  uint8_t secret[PN_KEY_BYTES], pub[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(pub, secret));
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.secret_key = secret;
  net_pair_opts o = {.server_cfg = &scfg, .server_key = pub, .cap = 64};
  net_pair p;
  net_pair_open(&p, &o);
  net_pair_wait_connected(&p);
  uint8_t seen[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_host_public_key(p.server, seen));
  assert_memory_equal(seen, pub, PN_KEY_BYTES);
  uint64_t rng = pn_test_seed();
  pn_test_latch got;
  pn_test_latch_init(&got, 50);
  p.server_app.on_packet = &got;
  net_send_n(pn_peer_channel(p.peer, 0), 50, 16, 3000, &rng);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  p.server_app.on_packet = NULL;
  assert_int_equal(p.server_app.bad, 0);
  net_pair_close(&p);
  pn_test_latch_fini(&got);
}

static void wrong_pinned_key_is_refused(void **state) {
  (void)state;
  uint8_t other[PN_KEY_BYTES], secret[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(other, secret)); /* not the server's */
  net_pair_opts o = {.server_key = other, .cap = 16};
  refusal r;
  refusal_open(&r, &o);
  refusal_expect(&r, PN_REASON_SERVER_KEY);
}

static void psk_must_match(void **state) {
  (void)state;
  uint8_t a[PN_KEY_BYTES], b[PN_KEY_BYTES];
  fixed_key(a, 0xA1);
  fixed_key(b, 0xB2);
  /* The same key on both sides connects. */
  {
    pn_host_config scfg = PN_HOST_CONFIG_INIT, ccfg = PN_HOST_CONFIG_INIT;
    scfg.psk = ccfg.psk = a;
    net_pair_opts o = {.server_cfg = &scfg, .client_cfg = &ccfg, .cap = 16};
    net_pair p;
    net_pair_open(&p, &o);
    net_pair_wait_connected(&p);
    net_pair_close(&p);
  }
  /* Different keys, or one side without: refused, with its reason. */
  const uint8_t *client_psk[2] = {b, NULL};
  for (int i = 0; i < 2; i++) {
    pn_host_config scfg = PN_HOST_CONFIG_INIT, ccfg = PN_HOST_CONFIG_INIT;
    scfg.psk = a;
    ccfg.psk = client_psk[i];
    net_pair_opts o = {.server_cfg = &scfg, .client_cfg = &ccfg, .cap = 16};
    refusal r;
    refusal_open(&r, &o);
    refusal_expect(&r, PN_REASON_AUTH);
  }
}

/* An on-path attacker changes the Accept and reseals it (the handshake
 * seal is public): keys no longer agree, and the client says so. With a
 * pinned key, a changed server key is named as such. A changed choice of
 * cipher fails the confirmation too (the fuzzer found it once did not). */
static void changed_accept_is_refused(void **state) {
  (void)state;
  uint8_t secret[PN_KEY_BYTES], pub[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(pub, secret));
  for (int pinned = 0; pinned < 3; pinned++) {
    pn_host_config scfg = PN_HOST_CONFIG_INIT;
    scfg.secret_key = secret;
    net_pair_opts o = {
        .server_cfg = &scfg, .server_key = pinned ? pub : NULL, .cap = 16};
    refusal r;
    net_pair_start(&r.p, &o);
    pn_test_latch_init(&r.client_done, 1);
    r.p.client_app.on_disconnect = &r.client_done;
    relay *rl = calloc(1, sizeof *rl);
    /* relay_pair_open starts the pair itself: open the relay by hand. */
    rl->server = r.p.server_addr;
    rl->rng = pn_test_seed();
    rl->tamper_accept = true;
    rl->tamper_key = pinned == 1;
    rl->tamper_cipher = pinned == 2;
    pn_actor *ra = relay_spawn(r.p.rt, rl);
    net_pair_adopt_actor(&r.p, ra);
    net_pair_connect(&r.p, &o, &rl->local);
    refusal_expect(&r, pinned == 1 ? PN_REASON_SERVER_KEY : PN_REASON_AUTH);
    assert_true(atomic_load(&rl->tampered) >= 1);
    relay_free(rl);
  }
}

/* What the accept hook saw. */
typedef struct seen {
  pthread_mutex_t lock;
  uint32_t calls;
  bool had_key;
  uint8_t key[PN_KEY_BYTES];
  uint8_t data[PN_CONNECT_DATA_MAX];
  size_t data_len;
} seen;

static uint32_t record_hook(void *ctx, const pn_accept_info *info) {
  seen *s = ctx;
  pthread_mutex_lock(&s->lock);
  s->calls++;
  s->had_key = info->client_key != NULL;
  if (info->client_key) {
    memcpy(s->key, info->client_key, PN_KEY_BYTES);
  }
  s->data_len = info->data_len;
  memcpy(s->data, info->data ? info->data : "", info->data_len);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

#define TOKEN "login token: alice/7f3e, nobody on the path reads this"

/* A client presents its own key and connect data: the hook sees the key
 * (which the client proved it holds) and the data, which travelled sealed
 * (the relay never sees the token); each side learns the other's key. An
 * anonymous client shows the hook no key and no data. */
static void client_key_and_data_reach_the_hook(void **state) {
  (void)state;
  uint8_t spub[PN_KEY_BYTES], ssec[PN_KEY_BYTES];
  uint8_t cpub[PN_KEY_BYTES], csec[PN_KEY_BYTES], got[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(spub, ssec));
  PN_ASSERT_OK(pn_key_pair(cpub, csec));
  for (int anonymous = 0; anonymous < 2; anonymous++) {
    seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    pn_host_config scfg = PN_HOST_CONFIG_INIT;
    scfg.secret_key = ssec;
    scfg.accept = record_hook;
    scfg.accept_ctx = &s;
    net_pair_opts o = {.server_cfg = &scfg, .cap = 16};
    if (!anonymous) {
      o.client_key = csec;
      o.connect_data = TOKEN;
      o.connect_data_len = sizeof TOKEN - 1;
    }
    net_pair p;
    relay *r = relay_pair_open(&p, &o, 0xc1);
    memcpy(r->marker, TOKEN, sizeof TOKEN - 1);
    /* release: pairs with the relay's acquire load (it already runs). */
    atomic_store_explicit(&r->marker_len, sizeof TOKEN - 1,
                          memory_order_release);
    net_pair_wait_connected(&p);
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.had_key, !anonymous);
    if (!anonymous) {
      assert_memory_equal(s.key, cpub, PN_KEY_BYTES);
      assert_int_equal(s.data_len, sizeof TOKEN - 1);
      assert_memory_equal(s.data, TOKEN, sizeof TOKEN - 1);
    } else {
      assert_int_equal(s.data_len, 0);
    }
    pthread_mutex_unlock(&s.lock);
    PN_ASSERT_OK(pn_peer_remote_key(p.peer, got));
    assert_memory_equal(got, spub, PN_KEY_BYTES);
    pthread_mutex_lock(&p.server_app.lock);
    pn_peer *back = p.server_app.peer;
    pthread_mutex_unlock(&p.server_app.lock);
    if (!anonymous) {
      PN_ASSERT_OK(pn_peer_remote_key(back, got));
      assert_memory_equal(got, cpub, PN_KEY_BYTES);
    } else {
      assert_int_equal(pn_peer_remote_key(back, got), PN_ENOENT);
    }
    assert_int_equal(atomic_load(&r->marker_seen), 0);
    net_pair_close(&p);
    relay_free(r);
    pthread_mutex_destroy(&s.lock);
  }
  uint8_t junk[PN_CONNECT_DATA_MAX + 1] = {0};
  pn_runtime *rt = net_runtime();
  pn_host *h = net_host(rt, NULL, NULL, NULL);
  net_app app;
  net_app_init(&app, 4);
  pn_actor *a = pn_test_spawn(rt, "owner", net_app_handler, &app, -1);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  PN_ASSERT_OK(pn_host_local_addr(h, 0, &pc.remote));
  pc.owner = a;
  pc.connect_data = junk;
  pc.connect_data_len = sizeof junk;
  pn_peer *peer = NULL;
  assert_int_equal(pn_host_connect(h, &pc, &peer), PN_EINVAL);
  pc.connect_data = NULL;
  pc.connect_data_len = 1;
  assert_int_equal(pn_host_connect(h, &pc, &peer), PN_EINVAL);
  assert_null(peer);
  pn_host_close(h);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  net_app_fini(&app);
}

/* An on-path attacker changes the client's key or its sealed connect data
 * on the way (and reseals the handshake datagram): the server refuses with
 * PN_REASON_AUTH and its hook never hears of it. */
static void changed_response_is_refused(void **state) {
  (void)state;
  uint8_t cpub[PN_KEY_BYTES], csec[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(cpub, csec));
  for (int key = 0; key < 2; key++) {
    seen s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    pn_host_config scfg = PN_HOST_CONFIG_INIT;
    scfg.accept = record_hook;
    scfg.accept_ctx = &s;
    net_pair_opts o = {.server_cfg = &scfg,
                       .client_key = csec,
                       .connect_data = TOKEN,
                       .connect_data_len = sizeof TOKEN - 1,
                       .cap = 16};
    refusal r;
    net_pair_start(&r.p, &o);
    pn_test_latch_init(&r.client_done, 1);
    r.p.client_app.on_disconnect = &r.client_done;
    relay *rl = calloc(1, sizeof *rl);
    rl->server = r.p.server_addr;
    rl->rng = pn_test_seed();
    rl->tamper_response = true;
    rl->tamper_client_key = key;
    pn_actor *ra = relay_spawn(r.p.rt, rl);
    net_pair_adopt_actor(&r.p, ra);
    net_pair_connect(&r.p, &o, &rl->local);
    refusal_expect_from(&r, PN_REASON_AUTH, true);
    assert_true(atomic_load(&rl->tampered) >= 1);
    pthread_mutex_lock(&s.lock);
    assert_int_equal(s.calls, 0);
    pthread_mutex_unlock(&s.lock);
    relay_free(rl);
    pthread_mutex_destroy(&s.lock);
  }
}

/* Keys change every 64 datagrams here (2^28 by default): thousands of
 * messages both ways cross dozens of epochs, in order and intact. */
static void keys_roll_over_during_a_connection(void **state) {
  (void)state;
  atomic_store(&pn__wire_rekey_bits, 6);
  net_pair_opts o = {.cap = 4096};
  net_pair p;
  net_pair_open(&p, &o);
  net_pair_wait_connected(&p);
  pn_test_latch got;
  pn_test_latch_init(&got, 3000);
  p.server_app.on_packet = &got;
  uint64_t rng = pn_test_seed();
  net_send_n(pn_peer_channel(p.peer, 0), 3000, 16, 400, &rng);
  assert_true(pn_test_latch_wait(&got, NET_WAIT_MS));
  p.server_app.on_packet = NULL;
  pthread_mutex_lock(&p.server_app.lock);
  for (uint64_t i = 0; i < 3000; i++) {
    assert_int_equal(p.server_app.ids[i], i + 1);
  }
  assert_int_equal(p.server_app.bad, 0);
  pthread_mutex_unlock(&p.server_app.lock);
  pn_peer_stats st = net_peer_stats(p.peer);
  fprintf(stderr, "# %llu datagrams out: %llu key epochs\n",
          (unsigned long long)st.datagrams_out,
          (unsigned long long)(st.datagrams_out >> 6));
  assert_true(st.datagrams_out >> 6 >= 3);
  assert_int_equal(st.bad_datagrams, 0);
  net_pair_close(&p);
  pn_test_latch_fini(&got);
  atomic_store(&pn__wire_rekey_bits, 28);
}

/* A peer that acknowledges nothing (here: everything it sends is lost) is
 * dropped after ack_timeout_us with its own reason, long before the idle
 * timeout, and its queued messages with it. */
static void silent_acknowledger_is_dropped(void **state) {
  (void)state;
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  scfg.ack_timeout_us = 300000;
  scfg.idle_timeout_us = 20000000;
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
  pthread_mutex_lock(&p.server_app.lock);
  pn_peer *back = p.server_app.peer;
  pthread_mutex_unlock(&p.server_app.lock);
  uint64_t t0 = net_now_ms();
  net_send_range(pn_peer_channel(back, 0), 1, 20, 100);
  assert_true(pn_test_latch_wait(&server_done, NET_WAIT_MS));
  uint64_t elapsed = net_now_ms() - t0;
  pthread_mutex_lock(&p.server_app.lock);
  uint32_t reason = p.server_app.reason;
  pthread_mutex_unlock(&p.server_app.lock);
  fprintf(stderr, "# dropped after %llu ms: %s\n", (unsigned long long)elapsed,
          pn_reason_name(reason));
  assert_int_equal(reason, PN_REASON_ACK_TIMEOUT);
  assert_true(elapsed >= 300 && elapsed < 20000);
  p.server_app.on_disconnect = NULL;
  net_pair_close(&p);
  pn_test_latch_fini(&server_done);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nothing_in_the_clear),
      cmocka_unit_test(pinned_server_key_connects),
      cmocka_unit_test(wrong_pinned_key_is_refused),
      cmocka_unit_test(psk_must_match),
      cmocka_unit_test(changed_accept_is_refused),
      cmocka_unit_test(client_key_and_data_reach_the_hook),
      cmocka_unit_test(changed_response_is_refused),
      cmocka_unit_test(keys_roll_over_during_a_connection),
      cmocka_unit_test(silent_acknowledger_is_dropped),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
