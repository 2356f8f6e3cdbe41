/* peernet-bench throughput: one-way messages from a client peer to a
 * server peer as fast as the protocol allows. The sender is an actor on
 * the client's worker that sends a chunk per run and asks itself for the
 * next one; when the peer holds max_queued unacknowledged bytes
 * (PN_EAGAIN) it waits for PN_MSG_PEER_WRITABLE. The server's owner counts
 * arrivals and checks their order. Server on worker 0, client on 1. */
#include "tests/bench/bench_throughput.h"
#include "tests/bench/bench_pair.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 256u
#define MSG_NEXT 1u

typedef struct tp_state {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done, failed;
  uint64_t n, sent, got, out_of_order, acked;
  uint32_t size;
  pn_channel_kind kind;
  uint8_t *buf;
  pn_channel *ch;
  bool waiting; /* stopped on PN_EAGAIN until acknowledgements come */
  uint64_t t0, t1;
  uint64_t rng;
  uint8_t noise[1u << 18]; /* random bytes payloads are cut from */
  bool game;      /* game-state payloads instead of incompressible bytes */
  uint32_t chunk; /* messages per sender run */
  bool lockstep;  /* one message in flight at a time */
} tp_state;

/* A small game-state update, as a game server streams them: which entity,
 * where (slowly moving), how fast, health and a few flags, then its name.
 * Deterministic from the sequence number. */
void bench_game_state(uint8_t *buf, uint32_t size, uint64_t seq) {
  static const char *const names[] = {"orc-warrior",  "elf-archer",
                                      "dwarf-miner",  "human-knight",
                                      "goblin-scout", "troll-brute"};
  uint32_t entity = (uint32_t)(seq * 2654435761u % 200u) + 1;
  float t = (float)(seq / 200) * 0.05f;
  float pos[3] = {(float)(entity % 17) * 10.0f + t, 0.0f,
                  (float)(entity % 13) * 10.0f - t};
  int16_t vel[3] = {(int16_t)(entity % 5), 0,
                    (int16_t) - (int16_t)(entity % 3)};
  uint16_t health = (uint16_t)(100 - (seq / 1000 + entity) % 100);
  uint8_t flags[2] = {(uint8_t)(entity & 3), (uint8_t)(seq / 500 % 4)};
  memset(buf, 0, size);
  size_t off = 0;
#define PUT(x)                                                                 \
  do {                                                                         \
    if (off + sizeof(x) <= size) {                                             \
      memcpy(buf + off, &(x), sizeof(x));                                      \
    }                                                                          \
    off += sizeof(x);                                                          \
  } while (0)
  PUT(seq);
  PUT(entity);
  PUT(pos);
  PUT(vel);
  PUT(health);
  PUT(flags);
#undef PUT
  const char *name = names[entity % 6];
  size_t n = strlen(name);
  if (off < size) {
    memcpy(buf + off, name, n < size - off ? n : size - off);
  }
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void finish(tp_state *s, bool failed) {
  pthread_mutex_lock(&s->lock);
  if (!s->done) {
    s->done = true;
    s->failed = failed;
    s->t1 = now_ns();
  }
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

static void send_chunk(pn_actor *self, tp_state *s) {
  for (uint32_t i = 0; i < s->chunk && s->sent < s->n; i++) {
    uint64_t seq = s->sent + 1;
    if (s->game) {
      bench_game_state(s->buf, s->size, seq);
      goto send;
    }
    /* Incompressible payloads, so the figure is not flattered by
     * compression: a window of random bytes (a different one for each
     * message of a datagram) after the sequence number. Copying it costs
     * about what ENet's sender pays to tag its packets. */
    size_t from = (size_t)(seq * 4099u * 8u) % sizeof s->noise;
    for (size_t off = 0; off < s->size;) {
      size_t n = sizeof s->noise - from;
      n = n < s->size - off ? n : s->size - off;
      memcpy(s->buf + off, s->noise + from, n);
      off += n;
      from = 0;
    }
    memcpy(s->buf, &seq, s->size < 8 ? s->size : 8);
  send:;
    pn_err err = pn_channel_send(s->ch, s->buf, s->size, NULL);
    if (err == PN_EAGAIN) {
      s->waiting = true;
      return;
    }
    if (err != PN_OK) {
      finish(s, true);
      return;
    }
    s->sent++;
  }
  if (s->sent < s->n && !s->lockstep) {
    (void)pn_send(self, MSG_NEXT, NULL, 0);
  }
}

static void client_handler(pn_actor *self, void *state, const pn_msg *msg) {
  tp_state *s = state;
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED: {
    pn_peer_event ev;
    (void)pn_msg_peer_event(msg, &ev);
    s->ch = pn_peer_channel(ev.peer, 0);
    s->t0 = now_ns();
    send_chunk(self, s);
    break;
  }
  case MSG_NEXT:
    send_chunk(self, s);
    break;
  case PN_MSG_PEER_WRITABLE:
    if (s->waiting) {
      s->waiting = false;
      send_chunk(self, s);
    }
    break;
  case PN_MSG_PEER_ACKED:
  case PN_MSG_PEER_LOST:
    s->acked++;
    if (s->lockstep) {
      send_chunk(self, s); /* the next one only when this one arrived */
    } else if (s->waiting) {
      s->waiting = false;
      send_chunk(self, s);
    }
    break;
  case PN_MSG_PEER_DISCONNECTED:
    finish(s, true);
    break;
  default:
    break;
  }
}

static void server_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  tp_state *s = state;
  if (pn_msg_type(msg) != PN_MSG_PEER_PACKET) {
    return;
  }
  pn_peer_event ev;
  (void)pn_msg_peer_event(msg, &ev);
  uint64_t seq = 0;
  memcpy(&seq, ev.data, ev.len < 8 ? ev.len : 8);
  if (seq <= s->got && s->kind == PN_CHANNEL_ORDERED) {
    s->out_of_order++;
  }
  s->got++;
  if (s->got == s->n ||
      (s->kind != PN_CHANNEL_ORDERED &&
       s->kind != PN_CHANNEL_RELIABLE_UNORDERED && seq == s->n)) {
    finish(s, false);
  }
}

static pn_host *open_host(pn_runtime *rt, int32_t home, pn_actor *accept,
                          const tp_config *cfg) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.home_worker = home;
  hc.accept_owner = accept;
  hc.no_compression = cfg->compression == TP_COMPRESS_OFF;
  if (cfg->compression == TP_COMPRESS_DICT) {
    hc.zstd_dict = cfg->dict;
    hc.zstd_dict_len = cfg->dict_len;
  }
  pn_host *h = NULL;
  pn_err err = pn_host_open(rt, &hc, &h);
  if (err != PN_OK) {
    fprintf(stderr, "throughput: pn_host_open: %s\n", pn_err_name(err));
  }
  return h;
}

int bench_peernet_throughput(pn_io_backend io, pn_channel_kind kind, uint64_t n,
                             uint32_t size) {
  tp_config cfg = {io, kind, n, size, false, TP_COMPRESS_ON, NULL, 0, 0};
  tp_result r;
  if (bench_throughput_run(&cfg, &r) != 0) {
    return 1;
  }
  printf("{\"bench\":\"throughput\",\"impl\":\"peernet\",\"io\":\"%s\","
         "\"kind\":\"%s\",\"size\":%u,\"n\":%llu,\"seconds\":%.3f,"
         "\"msgs_per_s\":%.0f,\"mbytes_per_s\":%.1f,\"datagrams_out\":%llu,"
         "\"retransmits\":%llu,\"compression_ratio\":%.2f}\n",
         r.io, pn_channel_kind_name(kind), r.size, (unsigned long long)n,
         r.seconds, r.msgs_per_s, r.mbytes_per_s,
         (unsigned long long)r.datagrams_out, (unsigned long long)r.retransmits,
         r.compression_ratio);
  return 0;
}

int bench_throughput_run(const tp_config *cfg, tp_result *out) {
  pn_io_backend io = cfg->io;
  pn_channel_kind kind = cfg->kind;
  uint64_t n = cfg->n;
  uint32_t size = cfg->size;
  tp_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.n = n;
  s.size = size < 8 ? 8 : size;
  s.kind = kind;
  s.rng = 0x9E3779B97F4A7C15ull;
  for (size_t off = 0; off + 8 <= sizeof s.noise; off += 8) {
    s.rng ^= s.rng << 13;
    s.rng ^= s.rng >> 7;
    s.rng ^= s.rng << 17;
    memcpy(s.noise + off, &s.rng, 8);
  }
  s.game = cfg->game;
  s.chunk = cfg->chunk ? cfg->chunk : CHUNK;
  s.lockstep = cfg->chunk == 1;
  s.buf = calloc(1, s.size);
  pn_actor *server_app, *client_app;
  pn_runtime *rt =
      s.buf ? bench_pair_start(io, "throughput", "tp-server", server_handler,
                               "tp-client", client_handler, &s, &server_app,
                               &client_app)
            : NULL;
  if (!rt) {
    free(s.buf);
    return 1;
  }
  pn_host *server = open_host(rt, 0, server_app, cfg);
  pn_host *client = open_host(rt, 1, NULL, cfg);
  pn_peer *peer = NULL;
  int rc_out = 1;
  if (server && client) {
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    (void)pn_host_local_addr(server, 0, &pc.remote);
    pc.owner = client_app;
    pc.channel_count = 1;
    pc.kinds = &kind;
    /* Like ENet's sender, which gets no per-packet event: it resumes on
     * PN_MSG_PEER_WRITABLE. Lockstep needs to hear of each arrival. */
    pc.no_delivery_events = !s.lockstep;
    if (pn_host_connect(client, &pc, &peer) == PN_OK) {
      struct timespec dl;
      clock_gettime(CLOCK_REALTIME, &dl);
      dl.tv_sec += 60;
      pthread_mutex_lock(&s.lock);
      while (!s.done && pthread_cond_timedwait(&s.cv, &s.lock, &dl) == 0) {
      }
      bool ok = s.done && !s.failed && !s.out_of_order;
      pthread_mutex_unlock(&s.lock);
      pn_peer_stats st;
      (void)pn_peer_stats_get(peer, &st);
      if (ok) {
        double secs = (double)(s.t1 - s.t0) / 1e9;
        memset(out, 0, sizeof *out);
        snprintf(out->io, sizeof out->io, "%s", pn_runtime_io_name(rt));
        out->size = s.size;
        out->seconds = secs;
        out->msgs_per_s = (double)s.got / secs;
        out->mbytes_per_s = (double)s.got * s.size / secs / 1e6;
        out->datagrams_out = st.datagrams_out;
        out->bytes_out = st.bytes_out;
        out->retransmits = st.retransmits;
        out->compression_ratio = st.compression_ratio;
        rc_out = 0;
      } else {
        fprintf(stderr,
                "throughput: %s: sent %llu received %llu out of order %llu\n",
                s.done ? "failed" : "timed out", (unsigned long long)s.sent,
                (unsigned long long)s.got, (unsigned long long)s.out_of_order);
      }
    }
  }
  pn_host_close(client);
  pn_host_close(server);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_peer_release(peer);
  pn_actor_release(server_app);
  pn_actor_release(client_app);
  if (pn_runtime_destroy(rt) != PN_OK) {
    rc_out = 1;
  }
  free(s.buf);
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return rc_out;
}

int bench_compression(pn_io_backend io, uint64_t n, uint32_t size) {
  /* The dictionary is trained on other updates than the ones sent. */
  enum { SAMPLES = 5000 };
  uint8_t *buf = malloc((size_t)SAMPLES * size);
  const void **ptrs = malloc(SAMPLES * sizeof *ptrs);
  size_t *lens = malloc(SAMPLES * sizeof *lens);
  uint8_t dict[16384];
  size_t dict_len = sizeof dict;
  if (!buf || !ptrs || !lens) {
    free(buf);
    free(ptrs);
    free(lens);
    return 1;
  }
  for (size_t i = 0; i < SAMPLES; i++) {
    bench_game_state(buf + i * size, size, 1000000 + i * 7);
    ptrs[i] = buf + i * size;
    lens[i] = size;
  }
  pn_err err = pn_zstd_train_dictionary(ptrs, lens, SAMPLES, dict, &dict_len);
  free(buf);
  free(ptrs);
  free(lens);
  if (err != PN_OK) {
    fprintf(stderr, "compression: training: %s\n", pn_err_name(err));
    return 1;
  }
  /* Bulk: datagrams full of updates. Sparse: one update at a time (the
   * next once the last is acknowledged), so each datagram carries one, as
   * a game's tick with little to say does. */
  tp_result r[3], q[3];
  for (int m = 0; m < 3; m++) {
    tp_config cfg = {io,   PN_CHANNEL_ORDERED, n, size, true, (tp_compression)m,
                     dict, dict_len,           0};
    tp_config sparse = cfg;
    sparse.n = n / 100;
    sparse.chunk = 1;
    if (bench_throughput_run(&cfg, &r[m]) != 0 ||
        bench_throughput_run(&sparse, &q[m]) != 0) {
      return 1;
    }
  }
  printf("{\"bench\":\"compression\",\"impl\":\"peernet\",\"io\":\"%s\","
         "\"payload\":\"game-state\",\"size\":%u,\"n\":%llu,"
         "\"dict_bytes\":%zu,\"ratio_zstd\":%.2f,\"ratio_dict\":%.2f,"
         "\"msgs_per_s_off\":%.0f,\"msgs_per_s_zstd\":%.0f,"
         "\"msgs_per_s_dict\":%.0f,\"sparse_msgs_per_datagram\":%.2f,"
         "\"sparse_ratio_zstd\":%.2f,\"sparse_ratio_dict\":%.2f,"
         "\"sparse_msgs_per_s_off\":%.0f,\"sparse_msgs_per_s_zstd\":%.0f,"
         "\"sparse_msgs_per_s_dict\":%.0f}\n",
         r[0].io, size, (unsigned long long)n, dict_len,
         (double)r[0].bytes_out / (double)r[1].bytes_out,
         (double)r[0].bytes_out / (double)r[2].bytes_out, r[0].msgs_per_s,
         r[1].msgs_per_s, r[2].msgs_per_s,
         (double)(n / 100) / (double)q[0].datagrams_out,
         (double)q[0].bytes_out / (double)q[1].bytes_out,
         (double)q[0].bytes_out / (double)q[2].bytes_out, q[0].msgs_per_s,
         q[1].msgs_per_s, q[2].msgs_per_s);
  return 0;
}
