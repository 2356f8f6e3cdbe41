/* peernet-bench handshakes: completed encrypted connections per second
 * into one server host. The server host (and the peers it accepts) runs on
 * worker 0, the client host (and its peers) on worker 1: one core per
 * side. The client's owner actor keeps `window` handshakes in flight:
 * each connection that completes starts the next, so the loop runs inside
 * the two workers and the main thread only waits for the end.
 *
 * Connections stay up until the end (keepalives are set far apart, so
 * they cost nothing meanwhile); a connection counts when the client heard
 * PN_MSG_PEER_CONNECTED, that is when it checked the server's key
 * confirmation: both sides made their keys. */
#include "tests/bench/bench_handshakes.h"
#include "tests/bench/bench_pair.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct hs_state {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
  uint64_t count, started, connected, failed;
  uint64_t t_end_ns;
  pn_host *client;
  pn_peer_config pc;
  pn_peer **peers; /* [count]: the handles, released at the end */
  /* Each worker's CPU clock, read by its owner actor on a PROBE message. */
  clockid_t clock[2];
  uint32_t probed;
} hs_state;

#define MSG_PROBE 1u

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Starts the next connection, if any is left. Runs on the client's owner
 * (or main, before the first event). */
static void start_next(hs_state *s) {
  pthread_mutex_lock(&s->lock);
  uint64_t i = s->started < s->count ? s->started++ : UINT64_MAX;
  pthread_mutex_unlock(&s->lock);
  if (i == UINT64_MAX) {
    return;
  }
  if (pn_host_connect(s->client, &s->pc, &s->peers[i]) != PN_OK) {
    pthread_mutex_lock(&s->lock);
    s->failed++;
    pthread_mutex_unlock(&s->lock);
  }
}

/* Records the calling worker's CPU clock as side `side`. */
static void probe(hs_state *s, uint32_t side) {
  clockid_t c;
  pthread_mutex_lock(&s->lock);
  if (pthread_getcpuclockid(pthread_self(), &c) == 0) {
    s->clock[side] = c;
  }
  s->probed++;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

static double clock_seconds(clockid_t c) {
  struct timespec ts;
  if (clock_gettime(c, &ts) != 0) {
    return 0;
  }
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_owner(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  hs_state *s = state;
  uint32_t t = pn_msg_type(msg);
  if (t == MSG_PROBE) {
    probe(s, 1);
    return;
  }
  if (t != PN_MSG_PEER_CONNECTED && t != PN_MSG_PEER_DISCONNECTED) {
    return;
  }
  pthread_mutex_lock(&s->lock);
  if (!s->done) {
    if (t == PN_MSG_PEER_CONNECTED) {
      s->connected++;
    } else {
      s->failed++;
    }
    if (s->connected + s->failed >= s->count) {
      s->done = true;
      s->t_end_ns = now_ns();
      pthread_cond_signal(&s->cv);
    }
  }
  pthread_mutex_unlock(&s->lock);
  start_next(s);
}

/* Accepted peers are the library's until the host closes: the server's
 * owner only says which thread is worker 0. */
static void server_owner(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  if (pn_msg_type(msg) == MSG_PROBE) {
    probe(state, 0);
  }
}

static pn_host *open_host(pn_runtime *rt, int32_t home, pn_actor *accept,
                          uint32_t max_peers) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.home_worker = home;
  hc.accept_owner = accept;
  hc.max_peers = max_peers;
  hc.connect_timeout_us = 30000000;
  /* Idle connections cost nothing during the run. */
  hc.keepalive_us = 600000000;
  hc.idle_timeout_us = 1200000000;
  pn_host *h = NULL;
  pn_err err = pn_host_open(rt, &hc, &h);
  if (err != PN_OK) {
    fprintf(stderr, "handshakes: pn_host_open: %s\n", pn_err_name(err));
  }
  return h;
}

int bench_handshakes(pn_io_backend io, uint64_t count, uint32_t window) {
  hs_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.count = count;
  s.peers = calloc(count, sizeof *s.peers);
  pn_actor *server_app, *client_app;
  pn_runtime *rt =
      s.peers ? bench_pair_start(io, "handshakes", "hs-server", server_owner,
                                 "hs-client", client_owner, &s, &server_app,
                                 &client_app)
              : NULL;
  if (!rt) {
    free(s.peers);
    return 1;
  }
  uint32_t max = (uint32_t)count + 16;
  pn_host *server = open_host(rt, 0, server_app, max);
  s.client = open_host(rt, 1, NULL, max);
  int rc_out = 1;
  if (server && s.client) {
    (void)pn_host_local_addr(server, 0, &s.pc.remote);
    s.pc.size = sizeof s.pc;
    s.pc.owner = client_app;
    s.pc.channel_count = 1;
    (void)pn_send(server_app, MSG_PROBE, NULL, 0);
    (void)pn_send(client_app, MSG_PROBE, NULL, 0);
    pthread_mutex_lock(&s.lock);
    while (s.probed < 2) {
      pthread_cond_wait(&s.cv, &s.lock);
    }
    pthread_mutex_unlock(&s.lock);
    double c0 = cpu_seconds();
    double w0[2] = {clock_seconds(s.clock[0]), clock_seconds(s.clock[1])};
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < window; i++) {
      start_next(&s);
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60 + (time_t)(count / 1000);
    pthread_mutex_lock(&s.lock);
    while (!s.done && pthread_cond_timedwait(&s.cv, &s.lock, &dl) == 0) {
    }
    bool done = s.done;
    uint64_t connected = s.connected, failed = s.failed, t1 = s.t_end_ns;
    pthread_mutex_unlock(&s.lock);
    double cpu = cpu_seconds() - c0;
    double server_cpu = clock_seconds(s.clock[0]) - w0[0];
    double client_cpu = clock_seconds(s.clock[1]) - w0[1];
    pn_host_stats hs;
    (void)pn_host_stats_get(server, &hs);
    if (done) {
      double secs = (double)(t1 - t0) / 1e9;
      printf("{\"bench\":\"handshakes\",\"impl\":\"peernet\",\"io\":\"%s\","
             "\"connects\":%llu,\"failures\":%llu,\"window\":%u,"
             "\"seconds\":%.3f,\"connect_per_s\":%.0f,\"cpu_s\":%.3f,"
             "\"server_worker_cpu_s\":%.3f,\"client_worker_cpu_s\":%.3f,"
             "\"connect_per_server_cpu_s\":%.0f,"
             "\"connect_per_client_cpu_s\":%.0f,\"server_accepted\":%llu,"
             "\"server_limited\":%llu}\n",
             pn_runtime_io_name(rt), (unsigned long long)connected,
             (unsigned long long)failed, window, secs, (double)connected / secs,
             cpu, server_cpu, client_cpu, (double)connected / server_cpu,
             (double)connected / client_cpu, (unsigned long long)hs.accepted,
             (unsigned long long)hs.handshake_limited);
      rc_out = failed ? 1 : 0;
    } else {
      fprintf(stderr, "handshakes: timed out: %llu of %llu connected\n",
              (unsigned long long)connected, (unsigned long long)count);
    }
  }
  pn_host_close(s.client);
  pn_host_close(server);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  for (uint64_t i = 0; i < count; i++) {
    pn_peer_release(s.peers[i]);
  }
  free(s.peers);
  pn_actor_release(server_app);
  pn_actor_release(client_app);
  if (pn_runtime_destroy(rt) != PN_OK) {
    rc_out = 1;
  }
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return rc_out;
}
