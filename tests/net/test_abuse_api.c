/* Bad input from the caller, on both I/O backends: every host, peer,
 * channel, packet, name and event function given NULLs, wrong sizes and
 * out-of-range values returns PN_EINVAL (or a more precise code), leaves
 * its outputs untouched and changes nothing, while a live connection
 * next to it never notices. */
#include <stdint.h>
#include <string.h>

#include "peernet.pb-c.h" /* a generated message for the packet calls */
#include "tests/net/net_harness.h"

/* --- bad caller input ---------------------------------------------------- */

typedef struct event_probe {
  pn_test_latch got;
  _Atomic int result;
} event_probe;

static void event_probe_handler(pn_actor *self, void *state,
                                const pn_msg *msg) {
  (void)self;
  event_probe *e = state;
  if (pn_msg_type(msg) != 7) {
    return;
  }
  pn_peer_event ev;
  memset(&ev, 0x5A, sizeof ev);
  pn_peer_event copy = ev;
  pn_err err = pn_msg_peer_event(msg, &ev);
  if (err == PN_EINVAL && memcmp(&ev, &copy, sizeof ev) != 0) {
    err = PN_EBUSY; /* changed its output on error */
  }
  atomic_store(&e->result, (int)err);
  pn_test_latch_count_down(&e->got);
}

static void open_fails(pn_runtime *rt, pn_err want, const pn_host_config *cfg) {
  pn_host *h = (pn_host *)(uintptr_t)0x1;
  pn_err err = pn_host_open(rt, cfg, &h);
  if (err != want) {
    fail_msg("pn_host_open returned %s, expected %s", pn_err_name(err),
             pn_err_name(want));
  }
  assert_ptr_equal(h, (pn_host *)(uintptr_t)0x1);
}

static void bad_input_changes_nothing(void **state) {
  (void)state;
  net_pair w;
  pn_host_config small = PN_HOST_CONFIG_INIT;
  small.max_message = 1000;
  net_pair_open(
      &w, &(net_pair_opts){
              .server_cfg = &small, .client_cfg = &small, .nch = 2, .cap = 8});
  net_pair_wait_connected(&w);
  pn_runtime *rt = w.rt;

  /* pn_host_open. */
  pn_socket_config sc[33];
  for (int i = 0; i < 33; i++) {
    pn_socket_config one = PN_SOCKET_CONFIG_INIT;
    one.host = "127.0.0.1";
    sc[i] = one;
  }
  pn_host_config ok = PN_HOST_CONFIG_INIT;
  ok.sockets = sc;
  ok.socket_count = 1;
  pn_host_config c;
  pn_host *h = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_open(NULL, &ok, &h));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_open(rt, &ok, NULL));
  open_fails(rt, PN_EINVAL, NULL);
  c = ok, c.size = sizeof c - 1;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.sockets = NULL;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.socket_count = 0;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.socket_count = 33;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.mtu = 575;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.mtu = 2049; /* above the socket's default max_datagram */
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.max_message = PN_PACKET_MAX + 1;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.home_worker = -2;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.home_worker = (int32_t)pn_runtime_workers(rt);
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.zstd_dict_len = 10;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.window = (1u << 20) + 1;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.rto_min_us = 5000000, c.rto_max_us = 1000000;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.keepalive_us = PN_HOST_TIME_MAX_US + 1;
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.idle_timeout_us = UINT64_MAX; /* would wrap as nanoseconds */
  open_fails(rt, PN_EINVAL, &c);
  c = ok, c.connect_timeout_us = PN_HOST_TIME_MAX_US + 1;
  open_fails(rt, PN_EINVAL, &c);
  {
    pn_socket_config two[2] = {sc[0], sc[1]};
    two[1].size = 0;
    c = ok, c.sockets = two, c.socket_count = 2;
    open_fails(rt, PN_EINVAL, &c);
    /* The second socket fails to open after the first did. */
    two[1] = sc[1];
    two[1].send_conditioner.loss = 2.0;
    open_fails(rt, PN_EINVAL, &c);
    two[1] = sc[1];
    two[1].host = "192.0.2.1"; /* not a local address */
    open_fails(rt, PN_EADDRNOTAVAIL, &c);
  }

  /* Host accessors. */
  pn_addr addr;
  memset(&addr, 0x77, sizeof addr);
  pn_addr addr_copy = addr;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_local_addr(NULL, 0, &addr));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_local_addr(w.server, 1, &addr));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_local_addr(w.server, 0, NULL));
  assert_memory_equal(&addr, &addr_copy, sizeof addr);
  pn_host_stats hs;
  PN_ASSERT_ERR(PN_EINVAL, pn_host_stats_get(NULL, &hs));
  PN_ASSERT_ERR(PN_EINVAL, pn_host_stats_get(w.server, NULL));
  pn_host_close(NULL);

  /* pn_host_connect. */
  pn_host_stats before = net_host_stats(w.client);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = w.server_addr;
  pc.owner = w.client_actor;
  pn_peer_config p2;
  pn_peer *sentinel = (pn_peer *)(uintptr_t)0x2;
  pn_peer *out = sentinel;
#define CONNECT_FAILS(want, host, cfgp)                                        \
  do {                                                                         \
    PN_ASSERT_ERR(want, pn_host_connect(host, cfgp, &out));                    \
    assert_ptr_equal(out, sentinel);                                           \
  } while (0)
  CONNECT_FAILS(PN_EINVAL, NULL, &pc);
  CONNECT_FAILS(PN_EINVAL, w.client, NULL);
  PN_ASSERT_ERR(PN_EINVAL, pn_host_connect(w.client, &pc, NULL));
  p2 = pc, p2.size = sizeof p2 - 1;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.owner = NULL;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.channel_count = PN_MAX_CHANNELS + 1;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  pn_channel_kind bad_kinds[2] = {PN_CHANNEL_ORDERED, (pn_channel_kind)5};
  p2 = pc, p2.channel_count = 2, p2.kinds = bad_kinds;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  bad_kinds[1] = (pn_channel_kind)-1;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.remote.family = 0;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.remote.family = 5;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc;
  PN_ASSERT_OK(pn_addr_parse("[::1]:9", &p2.remote)); /* IPv4 socket */
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.sockets_mask = 0x2; /* the host has one socket */
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
  p2 = pc, p2.sockets_mask = 0x80000000u;
  CONNECT_FAILS(PN_EINVAL, w.client, &p2);
#undef CONNECT_FAILS
  pn_host_stats after = net_host_stats(w.client);
  assert_int_equal(after.peers, before.peers);
  assert_int_equal(after.peers, 1);

  /* Channels. */
  pn_channel *ch = pn_peer_channel(w.peer, 0);
  uint8_t big[1001];
  net_fill(big, sizeof big, 1);
  uint64_t id = 99;
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_send(NULL, big, 1, &id));
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_send(ch, NULL, 1, &id));
  PN_ASSERT_ERR(PN_EMSGSIZE, pn_channel_send(ch, big, 1001, &id));
  pn_packet *pkt = NULL;
  PN_ASSERT_OK(pn_packet_create(big, 1001, &pkt));
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_send_packet(NULL, pkt, &id));
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_send_packet(ch, NULL, &id));
  PN_ASSERT_ERR(PN_EMSGSIZE, pn_channel_send_packet(ch, pkt, &id));
  pn_packet_release(pkt);
  assert_int_equal(id, 99);
  assert_int_equal(pn_channel_index(NULL), 0);
  assert_int_equal(pn_channel_kind_of(NULL), PN_CHANNEL_UNRELIABLE);
  assert_null(pn_peer_channel(w.peer, 2));
  assert_null(pn_peer_channel(NULL, 0));
  assert_int_equal(pn_peer_channel_count(NULL), 0);
  /* Nothing was sent: the first real message gets id 1. */
  PN_ASSERT_OK(pn_channel_send(ch, big, 1000, &id));
  assert_int_equal(id, 1);

  /* Peers. */
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect(NULL, 1));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect(w.peer, PN_REASON_LIBRARY));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect(w.peer, PN_REASON_TIMEOUT));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_disconnect(w.peer, UINT32_MAX));
  assert_int_equal(net_peer_stats(w.peer).state, PN_PEER_CONNECTED);
  assert_int_equal(pn_peer_id(NULL), 0);
  assert_true(pn_peer_id(w.peer) != 0);
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_addr(NULL, &addr));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_addr(w.peer, NULL));
  assert_memory_equal(&addr, &addr_copy, sizeof addr);
  pn_peer_stats ps;
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_stats_get(NULL, &ps));
  PN_ASSERT_ERR(PN_EINVAL, pn_peer_stats_get(w.peer, NULL));
  pn_peer_hold(NULL);
  pn_peer_release(NULL);

  /* Packets. */
  pn_packet *pout = (pn_packet *)(uintptr_t)0x3;
  PN_ASSERT_ERR(PN_EINVAL, pn_packet_create(big, 1, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_packet_create(NULL, 1, &pout));
  PN_ASSERT_ERR(PN_EMSGSIZE, pn_packet_create(big, PN_PACKET_MAX + 1, &pout));
  PN_ASSERT_ERR(PN_EINVAL, pn_packet_from_protobuf(NULL, &pout));
  assert_ptr_equal(pout, (pn_packet *)(uintptr_t)0x3);
  PN_ASSERT_OK(pn_packet_create(NULL, 0, &pkt));
  assert_int_equal(pn_packet_len(pkt), 0);
  Peernet__Wire__V1__Reject rj = PEERNET__WIRE__V1__REJECT__INIT;
  PN_ASSERT_ERR(PN_EINVAL, pn_packet_from_protobuf(&rj.base, NULL));
  ProtobufCMessage *m = (ProtobufCMessage *)(uintptr_t)0x4;
  PN_ASSERT_ERR(
      PN_EINVAL,
      pn_packet_unpack(NULL, &peernet__wire__v1__reject__descriptor, NULL, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_packet_unpack(pkt, NULL, NULL, &m));
  PN_ASSERT_ERR(PN_EINVAL,
                pn_packet_unpack(pkt, &peernet__wire__v1__reject__descriptor,
                                 NULL, NULL));
  pn_packet_release(pkt);
  static const uint8_t not_protobuf[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  PN_ASSERT_OK(pn_packet_create(not_protobuf, sizeof not_protobuf, &pkt));
  PN_ASSERT_ERR(
      PN_EINVAL,
      pn_packet_unpack(pkt, &peernet__wire__v1__reject__descriptor, NULL, &m));
  assert_ptr_equal(m, (ProtobufCMessage *)(uintptr_t)0x4);
  pn_packet_release(pkt);
  pn_packet_hold(NULL);
  pn_packet_release(NULL);
  assert_null(pn_packet_data(NULL));
  assert_int_equal(pn_packet_len(NULL), 0);

  /* Names and events. */
  assert_string_equal(pn_channel_kind_name((pn_channel_kind)5), "?");
  assert_string_equal(pn_channel_kind_name((pn_channel_kind)-1), "?");
  pn_channel_kind k = PN_CHANNEL_RELIABLE;
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_kind_parse(NULL, &k));
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_kind_parse("ordered", NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_channel_kind_parse("Ordered", &k));
  assert_int_equal(k, PN_CHANNEL_RELIABLE);
  assert_string_equal(pn_reason_name(7), "application");
  assert_string_equal(pn_reason_name(PN_REASON_LIBRARY), "?");
  assert_string_equal(pn_reason_name(UINT32_MAX), "?");
  pn_peer_event ev;
  memset(&ev, 0, sizeof ev);
  PN_ASSERT_ERR(PN_EINVAL, pn_msg_peer_event(NULL, &ev));
  event_probe ep;
  pn_test_latch_init(&ep.got, 1);
  atomic_init(&ep.result, -1);
  pn_actor *ea = pn_test_spawn(rt, "event-probe", event_probe_handler, &ep, -1);
  PN_ASSERT_OK(pn_send(ea, 7, &ev, sizeof ev)); /* right size, wrong type */
  assert_true(pn_test_latch_wait(&ep.got, NET_WAIT_MS));
  assert_int_equal(atomic_load(&ep.result), PN_EINVAL);

  /* The connection never noticed. */
  pn_peer_stats sp = net_peer_stats(w.server_app.peer);
  assert_int_equal(sp.state, PN_PEER_CONNECTED);
  assert_int_equal(sp.bad_datagrams, 0);
  net_pair_adopt_actor(&w, ea);
  net_pair_close(&w);
  pn_test_latch_fini(&ep.got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bad_input_changes_nothing),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
