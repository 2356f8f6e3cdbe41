/* See net_harness.h. */
#include "tests/net/net_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  a->channels = calloc(cap ? cap : 1, sizeof *a->channels);
  a->acked_cap = cap;
  a->acked_ids = calloc(cap ? cap : 1, sizeof *a->acked_ids);
  a->lost_ids = calloc(cap ? cap : 1, sizeof *a->lost_ids);
}

void net_app_fini(net_app *a) {
  free(a->ids);
  free(a->channels);
  free(a->acked_ids);
  free(a->lost_ids);
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
      a->channels[a->packets] = ev.channel;
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
    if (a->acked < a->acked_cap) {
      a->acked_ids[a->acked] = ev.msg_id;
    }
    a->acked++;
    a->rtt_sum_us += ev.rtt_us;
    latch = a->on_resolved;
    break;
  case PN_MSG_PEER_WRITABLE:
    a->writable++;
    latch = a->on_writable;
    break;
  case PN_MSG_PEER_LOST:
    if (a->lost < a->acked_cap) {
      a->lost_ids[a->lost] = ev.msg_id;
    }
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

pn_host *net_host(pn_runtime *rt, pn_actor *accept_owner, pn_host_config *cfg,
                  const pn_link_conditioner *send_cond) {
  pn_host_config local = PN_HOST_CONFIG_INIT;
  if (!cfg) {
    cfg = &local;
  }
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  if (send_cond) {
    sc.send_conditioner = *send_cond;
  }
  cfg->sockets = &sc;
  cfg->socket_count = 1;
  cfg->accept_owner = accept_owner;
  pn_host *h = NULL;
  PN_ASSERT_OK(pn_host_open(rt, cfg, &h));
  cfg->sockets = NULL;
  return h;
}

int net_run_groups(const struct CMUnitTest *tests, size_t n) {
  pn_test_seed();
  return pn_test_run_on_backends(tests, n, &net_backend);
}
