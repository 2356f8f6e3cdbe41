/* peernet-bench peers: `count` connections from one client host to one
 * server host over loopback, each with two channels (ordered and
 * unreliable); reports the memory each connected peer pair costs and the
 * CPU the runtime burns while the connections idle (keepalives only). */
#include "tests/bench/bench_peers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tests/support/rss.h"

/* Seconds to wait, once every connection closed, before reading what the
 * process gave back (the workers return pool memory when idle). */
#define RETURN_SETTLE_S 3

typedef struct peers_state {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  uint64_t connected, disconnected;
} peers_state;

static void owner(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  peers_state *s = state;
  uint32_t t = pn_msg_type(msg);
  if (t == PN_MSG_PEER_CONNECTED || t == PN_MSG_PEER_DISCONNECTED) {
    pthread_mutex_lock(&s->lock);
    if (t == PN_MSG_PEER_CONNECTED) {
      s->connected++;
    } else {
      s->disconnected++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->lock);
  }
}

static bool wait_count(peers_state *s, uint64_t *field, uint64_t want,
                       int seconds) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += seconds;
  pthread_mutex_lock(&s->lock);
  while (*field < want && pthread_cond_timedwait(&s->cv, &s->lock, &dl) == 0) {
  }
  bool ok = *field >= want;
  pthread_mutex_unlock(&s->lock);
  return ok;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
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
  pn_host *h = NULL;
  pn_err err = pn_host_open(rt, &hc, &h);
  if (err != PN_OK) {
    fprintf(stderr, "peers: pn_host_open: %s\n", pn_err_name(err));
  }
  return h;
}

int bench_peers(pn_io_backend io, uint64_t count, uint32_t idle_s) {
  peers_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  rc.io = io;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK) {
    return 1;
  }
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = "peers-owner";
  ac.handler = owner;
  ac.state = &s;
  pn_actor *app = NULL;
  (void)pn_spawn(rt, &ac, &app);
  uint32_t max = (uint32_t)count + 16;
  pn_host *server = open_host(rt, 0, app, max);
  pn_host *client = open_host(rt, 1, NULL, max);
  pn_peer **peers = calloc(count, sizeof *peers);
  int rc_out = 1;
  long rss0 = pn_rss_bytes();
  if (server && client && peers) {
    pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_UNRELIABLE};
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    (void)pn_host_local_addr(server, 0, &pc.remote);
    pc.owner = app;
    pc.channel_count = 2;
    pc.kinds = kinds;
    uint64_t t0 = (uint64_t)time(NULL);
    uint64_t made = 0;
    for (; made < count; made++) {
      if (pn_host_connect(client, &pc, &peers[made]) != PN_OK) {
        break;
      }
      /* Pace the handshakes a little: at most 2,000 outstanding. */
      if (made % 1000 == 999 &&
          !wait_count(&s, &s.connected, 2 * (made + 1) - 2000, 30)) {
        break;
      }
    }
    bool ok = made == count && wait_count(&s, &s.connected, 2 * count, 60);
    double connect_s = (double)((uint64_t)time(NULL) - t0);
    long rss1 = pn_rss_bytes();
    double c0 = cpu_seconds();
    struct timespec t_a, t_b;
    clock_gettime(CLOCK_MONOTONIC, &t_a);
    struct timespec nap = {(time_t)idle_s, 0};
    nanosleep(&nap, NULL); /* measuring idle CPU: nothing to wait for */
    clock_gettime(CLOCK_MONOTONIC, &t_b);
    double c1 = cpu_seconds();
    double wall = (double)(t_b.tv_sec - t_a.tv_sec) +
                  (double)(t_b.tv_nsec - t_a.tv_nsec) / 1e9;
    pn_host_stats hs;
    (void)pn_host_stats_get(server, &hs);
    /* Then every connection closes: how much of what they took goes back
     * to the system once both hosts forgot them and the workers idled. */
    long rss2 = -1;
    if (ok) {
      for (uint64_t i = 0; i < count; i++) {
        (void)pn_peer_disconnect(peers[i], 0);
      }
      ok = wait_count(&s, &s.disconnected, 2 * count, 60);
      for (uint64_t i = 0; i < count; i++) {
        pn_peer_release(peers[i]); /* the last handle on the client side */
        peers[i] = NULL;
      }
      pn_host_stats cs = hs;
      for (int tries = 0; ok && tries < 3000; tries++) {
        (void)pn_host_stats_get(server, &cs);
        if (cs.peers == 0) {
          break;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
      }
      /* The workers give memory back after a second or two of idling. */
      struct timespec settle = {RETURN_SETTLE_S, 0};
      nanosleep(&settle, NULL);
      rss2 = pn_rss_bytes();
    }
    if (ok) {
      printf("{\"bench\":\"peers\",\"impl\":\"peernet\",\"io\":\"%s\","
             "\"count\":%llu,\"connected_s\":%.0f,\"server_peers\":%llu,"
             "\"bytes_per_peer_pair\":%.0f,\"idle_cpu_percent\":%.2f,"
             "\"idle_s\":%.1f,\"closed_rss_above_start\":%ld,"
             "\"returned_percent\":%.1f}\n",
             pn_runtime_io_name(rt), (unsigned long long)count, connect_s,
             (unsigned long long)hs.peers,
             (double)(rss1 - rss0) / (double)count, 100.0 * (c1 - c0) / wall,
             wall, rss2 - rss0,
             rss1 > rss0 ? 100.0 * (double)(rss1 - rss2) / (double)(rss1 - rss0)
                         : 0.0);
      rc_out = 0;
    } else {
      fprintf(stderr, "peers: %llu of %llu connected\n",
              (unsigned long long)s.connected / 2, (unsigned long long)count);
    }
  }
  for (uint64_t i = 0; peers && i < count; i++) {
    pn_peer_release(peers[i]);
  }
  free(peers);
  pn_host_close(client);
  pn_host_close(server);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_actor_release(app);
  if (pn_runtime_destroy(rt) != PN_OK) {
    rc_out = 1;
  }
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return rc_out;
}
