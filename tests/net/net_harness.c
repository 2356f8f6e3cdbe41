/* See net_harness.h. */
#include "tests/net/net_harness.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pn_io_backend net_backend = PN_IO_EPOLL;
const char *net_trace_path;

void net_fill(uint8_t *buf, size_t len, uint64_t id) {
  uint64_t s = id * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < len; i++) {
    buf[i] = (uint8_t)(s >> ((i % 8) * 8)) ^ (uint8_t)(i / 8);
  }
  memcpy(buf, &id, len < 8 ? len : 8);
}

bool net_check(const uint8_t *buf, size_t len, uint64_t *id_out) {
  uint64_t id = 0;
  memcpy(&id, buf, len < 8 ? len : 8);
  if (len >= 8) {
    uint64_t s = id * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 8; i < len; i++) {
      if (buf[i] != ((uint8_t)(s >> ((i % 8) * 8)) ^ (uint8_t)(i / 8))) {
        return false;
      }
    }
  }
  *id_out = id;
  return true;
}

void net_app_init(net_app *a, size_t cap) {
  memset(a, 0, sizeof *a);
  pthread_mutex_init(&a->lock, NULL);
  a->cap = cap;
  a->ids = calloc(cap ? cap : 1, sizeof *a->ids);
  a->acked_ids = calloc(cap ? cap : 1, sizeof *a->acked_ids);
}

void net_app_fini(net_app *a) {
  free(a->ids);
  free(a->acked_ids);
  pthread_mutex_destroy(&a->lock);
}

void net_app_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  net_app *a = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  pn_test_latch *latch = NULL;
  pthread_mutex_lock(&a->lock);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (!a->peer) {
      pn_peer_hold(ev.peer);
      a->peer = ev.peer;
    }
    a->connected++;
    latch = a->on_connect;
    break;
  case PN_MSG_PEER_DISCONNECTED:
    a->disconnected++;
    a->reason = ev.reason;
    a->remote = ev.remote;
    latch = a->on_disconnect;
    break;
  case PN_MSG_PEER_PACKET: {
    uint64_t id = 0;
    if (!net_check(ev.data, ev.len, &id)) {
      a->bad++;
    }
    if (a->packets < a->cap) {
      a->ids[a->packets] = id;
    }
    a->packets++;
    if (a->echo) {
      pn_err err = pn_channel_send_packet(ev.ch, ev.packet, NULL);
      if (err != PN_OK && err != PN_ECLOSED) {
        a->bad++;
      }
    }
    latch = a->on_packet;
    if (a->on_signal && id == a->signal_id && ev.channel == a->signal_channel) {
      pthread_mutex_unlock(&a->lock);
      pn_test_latch_count_down(a->on_signal);
      pthread_mutex_lock(&a->lock);
    }
    break;
  }
  case PN_MSG_PEER_ACKED:
    if (a->acked < a->cap) {
      a->acked_ids[a->acked] = ev.msg_id;
    }
    a->acked++;
    latch = a->on_resolved;
    break;
  case PN_MSG_PEER_WRITABLE:
    a->writable++;
    latch = a->on_writable;
    break;
  case PN_MSG_PEER_LOST:
    a->lost++;
    latch = a->on_resolved;
    break;
  default:
    break;
  }
  pthread_mutex_unlock(&a->lock);
  if (latch) {
    pn_test_latch_count_down(latch);
  }
}

pn_runtime *net_runtime(void) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.io = net_backend;
  cfg.trace_path = net_trace_path;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  return rt;
}

/* A host on 127.0.0.1 with `nsockets` sockets, each on a free port, the
 * first one's sends through send_cond when set. */
static pn_host *host_open(pn_runtime *rt, pn_actor *accept_owner,
                          pn_host_config *cfg, uint32_t nsockets,
                          const pn_link_conditioner *send_cond) {
  pn_host_config local = PN_HOST_CONFIG_INIT;
  if (!cfg) {
    cfg = &local;
  }
  pn_socket_config sc[32];
  assert_true(nsockets >= 1 && nsockets <= 32);
  for (uint32_t i = 0; i < nsockets; i++) {
    pn_socket_config one = PN_SOCKET_CONFIG_INIT;
    one.host = "127.0.0.1";
    sc[i] = one;
  }
  if (send_cond) {
    sc[0].send_conditioner = *send_cond;
  }
  cfg->sockets = sc;
  cfg->socket_count = nsockets;
  cfg->accept_owner = accept_owner;
  pn_host *h = NULL;
  PN_ASSERT_OK(pn_host_open(rt, cfg, &h));
  cfg->sockets = NULL;
  return h;
}

pn_host *net_host(pn_runtime *rt, pn_actor *accept_owner, pn_host_config *cfg,
                  const pn_link_conditioner *send_cond) {
  return host_open(rt, accept_owner, cfg, 1, send_cond);
}

pn_host *net_host_sockets(pn_runtime *rt, pn_actor *accept_owner,
                          pn_host_config *cfg, uint32_t nsockets) {
  return host_open(rt, accept_owner, cfg, nsockets, NULL);
}

pn_peer *net_connect(pn_host *client, const pn_addr *to, pn_actor *owner,
                     uint32_t nch, const pn_channel_kind *kinds,
                     uint32_t sockets_mask) {
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = *to;
  pc.owner = owner;
  pc.channel_count = nch;
  pc.kinds = kinds;
  pc.sockets_mask = sockets_mask;
  pn_peer *p = NULL;
  PN_ASSERT_OK(pn_host_connect(client, &pc, &p));
  return p;
}

uint64_t net_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool net_wait_until(bool (*cond)(void *), void *ctx) {
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  while (!cond(ctx)) {
    if (net_now_ms() > deadline) {
      return false;
    }
    sched_yield();
  }
  return true;
}

pn_host_stats net_host_stats(const pn_host *h) {
  pn_host_stats st;
  PN_ASSERT_OK(pn_host_stats_get(h, &st));
  return st;
}

pn_peer_stats net_peer_stats(const pn_peer *p) {
  pn_peer_stats st;
  PN_ASSERT_OK(pn_peer_stats_get(p, &st));
  return st;
}

pn_socket_stats net_socket_stats(pn_runtime *rt, const pn_addr *local) {
  char want[PN_ADDR_STRLEN];
  PN_ASSERT_OK(pn_addr_format(local, want, sizeof want));
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  pn_socket_stats st;
  memset(&st, 0, sizeof st);
  int found = 0;
  for (size_t i = 0; i < snap->socket_count; i++) {
    if (strcmp(snap->sockets[i].local, want) == 0) {
      st = snap->sockets[i].stats;
      found++;
    }
  }
  pn_snapshot_free(snap);
  assert_int_equal(found, 1);
  return st;
}

void net_print_host(const char *name, const pn_host *h) {
  pn_host_stats s = net_host_stats(h);
  fprintf(stderr,
          "# %s: in %" PRIu64 " bad_header %" PRIu64 " unknown %" PRIu64
          " hs_dropped %" PRIu64 " challenges %" PRIu64 " accepted %" PRIu64
          " rejected %" PRIu64 " peers %" PRIu64 "\n",
          name, s.datagrams_in, s.bad_header, s.unknown_connection,
          s.handshake_dropped, s.challenges_sent, s.accepted, s.rejected,
          s.peers);
}

void net_print_peer(const char *name, const pn_peer *p) {
  pn_peer_stats s = net_peer_stats(p);
  fprintf(stderr,
          "# %s: state %d out %" PRIu64 " in %" PRIu64 " lost %" PRIu64
          " rtx %" PRIu64 " dups %" PRIu64 " bad %" PRIu64 " msgs %" PRIu64
          "/%" PRIu64 "\n",
          name, (int)s.state, s.datagrams_out, s.datagrams_in, s.datagrams_lost,
          s.retransmits, s.duplicates, s.bad_datagrams, s.messages_out,
          s.messages_in);
}

/* Sends one message, waiting out PN_EAGAIN for up to NET_WAIT_MS; returns
 * the last result. */
static pn_err send_wait(pn_channel *ch, const void *data, size_t len,
                        uint64_t *id_out) {
  /* Under 20% loss on a loaded machine a full queue can take a while to
   * drain. */
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  pn_err err;
  while ((err = pn_channel_send(ch, data, len, id_out)) == PN_EAGAIN &&
         net_now_ms() <= deadline) {
    sched_yield();
  }
  return err;
}

void net_send_n(pn_channel *ch, uint64_t n, size_t min_len, size_t max_len,
                uint64_t *rng) {
  uint8_t *buf = malloc(max_len ? max_len : 1);
  for (uint64_t i = 1; i <= n; i++) {
    size_t len =
        min_len +
        (max_len > min_len ? pn_test_rand(rng) % (max_len - min_len + 1) : 0);
    net_fill(buf, len, i);
    uint64_t id = 0;
    PN_ASSERT_OK(send_wait(ch, buf, len, &id));
    assert_int_equal(id, i);
  }
  free(buf);
}

void net_send_range(pn_channel *ch, uint64_t first, uint64_t last, size_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  for (uint64_t i = first; i <= last; i++) {
    net_fill(buf, len, i);
    PN_ASSERT_OK(send_wait(ch, buf, len, NULL));
  }
  free(buf);
}

/* --- a connected pair ---------------------------------------------------- */

void net_pair_start(net_pair *p, const net_pair_opts *o) {
  memset(p, 0, sizeof *p);
  p->rt = net_runtime();
  net_app_init(&p->server_app, o->cap);
  net_app_init(&p->client_app, o->cap);
  pn_test_latch_init(&p->connected, 2);
  pn_test_latch_init(&p->disconnected, 2);
  p->server_app.on_connect = p->client_app.on_connect = &p->connected;
  p->server_app.on_disconnect = p->client_app.on_disconnect = &p->disconnected;
  p->server_actor =
      pn_test_spawn(p->rt, "server-app", net_app_handler, &p->server_app, -1);
  p->client_actor =
      pn_test_spawn(p->rt, "client-app", net_app_handler, &p->client_app, -1);
  pn_link_conditioner client_cond;
  if (o->cond) {
    client_cond = *o->cond;
    client_cond.seed ^= 0x5555;
  }
  pn_host_config scfg = PN_HOST_CONFIG_INIT;
  if (o->server_cfg) {
    scfg = *o->server_cfg;
  }
  scfg.home_worker = 0;
  if (o->before_host_open) {
    o->before_host_open(true);
  }
  p->server = net_host(p->rt, p->server_actor, &scfg, o->cond);
  pn_host_config ccfg = PN_HOST_CONFIG_INIT;
  if (o->client_cfg) {
    ccfg = *o->client_cfg;
  }
  ccfg.home_worker = 1;
  if (o->before_host_open) {
    o->before_host_open(false);
  }
  p->client = net_host(p->rt, NULL, &ccfg, o->cond ? &client_cond : NULL);
  PN_ASSERT_OK(pn_host_local_addr(p->server, 0, &p->server_addr));
}

void net_pair_connect(net_pair *p, const net_pair_opts *o, const pn_addr *to) {
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = to ? *to : p->server_addr;
  pc.owner = p->client_actor;
  pc.channel_count = o->nch;
  pc.kinds = o->kinds;
  pc.server_key = o->server_key;
  pc.client_key = o->client_key;
  pc.connect_data = o->connect_data;
  pc.connect_data_len = o->connect_data_len;
  PN_ASSERT_OK(pn_host_connect(p->client, &pc, &p->peer));
}

void net_pair_open(net_pair *p, const net_pair_opts *o) {
  net_pair_start(p, o);
  net_pair_connect(p, o, NULL);
}

void net_pair_wait_connected(net_pair *p) {
  if (!pn_test_latch_wait(&p->connected, NET_WAIT_MS)) {
    net_print_host("server", p->server);
    net_print_host("client", p->client);
    net_print_peer("client peer", p->peer);
    fail_msg("not connected");
  }
  assert_int_equal(p->server_app.connected, 1);
  assert_int_equal(p->client_app.connected, 1);
}

void net_pair_adopt_actor(net_pair *p, pn_actor *a) {
  size_t i = 0;
  while (i < NET_PAIR_ADOPTED && p->actors[i]) {
    i++;
  }
  assert_true(i < NET_PAIR_ADOPTED);
  p->actors[i] = a;
}

void net_pair_adopt_peer(net_pair *p, pn_peer *peer) {
  size_t i = 0;
  while (i < NET_PAIR_ADOPTED && p->peers[i]) {
    i++;
  }
  assert_true(i < NET_PAIR_ADOPTED);
  p->peers[i] = peer;
}

void net_pair_close(net_pair *p) {
  pn_peer_release(p->peer);
  pn_host_close(p->client);
  pn_host_close(p->server);
  (void)pn_test_latch_wait(&p->disconnected, NET_WAIT_MS);
  PN_ASSERT_OK(pn_runtime_shutdown(p->rt, UINT64_MAX));
  pn_peer_release(p->server_app.peer);
  pn_peer_release(p->client_app.peer);
  pn_actor_release(p->server_actor);
  pn_actor_release(p->client_actor);
  for (size_t i = 0; i < NET_PAIR_ADOPTED; i++) {
    pn_actor_release(p->actors[i]);
    pn_peer_release(p->peers[i]);
  }
  pn_test_runtime_end(p->rt);
  net_app_fini(&p->server_app);
  net_app_fini(&p->client_app);
  pn_test_latch_fini(&p->connected);
  pn_test_latch_fini(&p->disconnected);
}

/* --- one connection attempt ---------------------------------------------- */

void net_attempt_start(net_attempt *at, pn_runtime *rt, pn_host *client,
                       const pn_addr *to, uint32_t nch,
                       const pn_channel_kind *kinds) {
  net_app_init(&at->app, 4);
  pn_test_latch_init(&at->done, 1);
  at->app.on_connect = &at->done;
  at->app.on_disconnect = &at->done;
  at->actor = pn_test_spawn(rt, "attempt", net_app_handler, &at->app, -1);
  at->peer = net_connect(client, to, at->actor, nch, kinds, 0);
}

void net_attempt_wait(net_attempt *at) {
  assert_true(pn_test_latch_wait(&at->done, NET_WAIT_MS));
}

void net_attempt_fini(net_attempt *at) {
  pn_peer_release(at->peer);
  pn_peer_release(at->app.peer);
  pn_actor_release(at->actor);
  net_app_fini(&at->app);
  pn_test_latch_fini(&at->done);
}

int net_run_groups(const struct CMUnitTest *tests, size_t n) {
  pn_test_seed();
  return pn_test_run_on_backends(tests, n, &net_backend);
}
