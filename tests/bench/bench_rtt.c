/* peernet-bench rtt: one message at a time from a client peer to a server
 * peer and back, as enet-rtt does with ENet. The client's owner actor sends
 * the next message when the echo arrives, so the loop runs entirely inside
 * actors; the main thread only waits for the end. Server on worker 0,
 * client on worker 1: the same two threads ENet's run uses. */
#include "tests/bench/bench_rtt.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/bench/bench_enet.h"
#include "tests/bench/bench_stats.h"

typedef struct rtt_state {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done, failed;
  uint64_t n, total, i;
  uint32_t size;
  uint8_t *buf;
  uint64_t sent_ns;
  uint64_t *samples;
  pn_peer *peer;
} rtt_state;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void finish(rtt_state *s, bool failed) {
  pthread_mutex_lock(&s->lock);
  s->done = true;
  s->failed = failed;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

static void send_next(rtt_state *s, pn_channel *ch) {
  memcpy(s->buf, &s->i, s->size < 8 ? s->size : 8);
  s->sent_ns = now_ns();
  if (pn_channel_send(ch, s->buf, s->size, NULL) != PN_OK) {
    finish(s, true);
  }
}

static void client_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  rtt_state *s = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    send_next(s, pn_peer_channel(ev.peer, 0));
    break;
  case PN_MSG_PEER_PACKET: {
    uint64_t t = now_ns();
    if (s->i >= BENCH_RTT_WARMUP) {
      s->samples[s->i - BENCH_RTT_WARMUP] = t - s->sent_ns;
    }
    if (++s->i == s->total) {
      finish(s, false);
    } else {
      send_next(s, ev.ch);
    }
    break;
  }
  case PN_MSG_PEER_DISCONNECTED:
    finish(s, !s->done);
    break;
  default:
    break;
  }
}

static void server_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  pn_peer_event ev;
  if (pn_msg_type(msg) == PN_MSG_PEER_PACKET &&
      pn_msg_peer_event(msg, &ev) == PN_OK) {
    (void)pn_channel_send_packet(ev.ch, ev.packet, NULL);
  }
}

static pn_host *open_host(pn_runtime *rt, int32_t home, pn_actor *accept) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.home_worker = home;
  hc.accept_owner = accept;
  pn_host *h = NULL;
  pn_err err = pn_host_open(rt, &hc, &h);
  if (err != PN_OK) {
    fprintf(stderr, "rtt: pn_host_open: %s\n", pn_err_name(err));
    return NULL;
  }
  return h;
}

int bench_peernet_rtt(pn_io_backend io, pn_channel_kind kind, uint64_t n,
                      uint32_t size) {
  rtt_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.n = n;
  s.total = n + BENCH_RTT_WARMUP;
  s.size = size ? size : 1;
  s.buf = calloc(1, s.size);
  s.samples = calloc(n, sizeof *s.samples);
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  rc.io = io;
  pn_runtime *rt = NULL;
  pn_err err = pn_runtime_create(&rc, &rt);
  if (err != PN_OK || !s.buf || !s.samples) {
    fprintf(stderr, "rtt: runtime: %s\n", pn_err_name(err));
    return 1;
  }
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = "rtt-server";
  ac.handler = server_handler;
  ac.home_worker = 0;
  pn_actor *server_app = NULL, *client_app = NULL;
  (void)pn_spawn(rt, &ac, &server_app);
  ac.name = "rtt-client";
  ac.handler = client_handler;
  ac.state = &s;
  ac.home_worker = 1;
  (void)pn_spawn(rt, &ac, &client_app);
  pn_host *server = open_host(rt, 0, server_app);
  pn_host *client = open_host(rt, 1, NULL);
  int rc_out = 1;
  if (server && client) {
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    (void)pn_host_local_addr(server, 0, &pc.remote);
    pc.owner = client_app;
    pc.channel_count = 1;
    pc.kinds = &kind;
    err = pn_host_connect(client, &pc, &s.peer);
    if (err == PN_OK) {
      /* Bounded: 5 s per round trip on average is far beyond any run. */
      struct timespec dl;
      clock_gettime(CLOCK_REALTIME, &dl);
      dl.tv_sec += 30 + (time_t)(s.total / 10000);
      pthread_mutex_lock(&s.lock);
      while (!s.done) {
        if (pthread_cond_timedwait(&s.cv, &s.lock, &dl) != 0) {
          break;
        }
      }
      bool ok = s.done && !s.failed;
      pthread_mutex_unlock(&s.lock);
      if (ok) {
        bench_sort_ns(s.samples, n);
        printf("{\"bench\":\"rtt\",\"impl\":\"peernet\",\"io\":\"%s\","
               "\"kind\":\"%s\",\"size\":%u,\"n\":%llu,\"rtt_p50_us\":%.1f,"
               "\"rtt_p99_us\":%.1f,\"rtt_p999_us\":%.1f}\n",
               pn_runtime_io_name(rt), pn_channel_kind_name(kind), s.size,
               (unsigned long long)n,
               bench_percentile(s.samples, n, 0.50) / 1000.0,
               bench_percentile(s.samples, n, 0.99) / 1000.0,
               bench_percentile(s.samples, n, 0.999) / 1000.0);
        rc_out = 0;
      } else {
        fprintf(stderr, "rtt: %s after %llu round trips\n",
                s.done ? "failed" : "timed out", (unsigned long long)s.i);
      }
    } else {
      fprintf(stderr, "rtt: pn_host_connect: %s\n", pn_err_name(err));
    }
  }
  pn_host_close(client);
  pn_host_close(server);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_peer_release(s.peer);
  pn_actor_release(server_app);
  pn_actor_release(client_app);
  err = pn_runtime_destroy(rt);
  if (err != PN_OK) {
    fprintf(stderr, "rtt: pn_runtime_destroy: %s\n", pn_err_name(err));
    rc_out = 1;
  }
  free(s.buf);
  free(s.samples);
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return rc_out;
}
