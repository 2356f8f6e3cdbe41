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

/* The client's one disconnect came with `reason`, and no connect. */
static void refusal_expect(refusal *r, uint32_t reason) {
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
  assert_false(remote);
  r->p.client_app.on_disconnect = NULL;
  net_pair_close(&r->p);
  pn_test_latch_fini(&r->client_done);
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
 * pinned key, a changed server key is named as such. */
static void changed_accept_is_refused(void **state) {
  (void)state;
  uint8_t secret[PN_KEY_BYTES], pub[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(pub, secret));
  for (int pinned = 0; pinned < 2; pinned++) {
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
    rl->tamper_key = pinned;
    pn_actor *ra = relay_spawn(r.p.rt, rl);
    net_pair_adopt_socket(&r.p, rl->sock);
    net_pair_adopt_actor(&r.p, ra);
    net_pair_connect(&r.p, &o, &rl->local);
    refusal_expect(&r, pinned ? PN_REASON_SERVER_KEY : PN_REASON_AUTH);
    assert_true(atomic_load(&rl->tampered) >= 1);
    relay_free(rl);
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
      cmocka_unit_test(keys_roll_over_during_a_connection),
      cmocka_unit_test(silent_acknowledger_is_dropped),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
