/* peernet-bench: PeerNet's benchmark program. Each subcommand prints one
 * JSON line on stdout. Figures are meant to be read side by side with the
 * anchors (peernet-bench-caf, ENet) measured in the same run; see
 * tests/bench/run-anchors.sh.
 *
 *   peernet-bench actor-pingpong [--n HOPS] [--workers W] [--stats on|off]
 *                                [--histograms on|off]
 *   peernet-bench actor-fanin    [--n MSGS] [--workers W] [--stats on|off]
 *                                [--histograms on|off]
 *   peernet-bench actor-spawn    [--n ACTORS] [--workers W]
 *   peernet-bench actor-memory   [--n ACTORS] [--workers W]
 *   peernet-bench enet-rtt       [--n ROUND_TRIPS] [--size BYTES]
 *   peernet-bench raw-rtt        [--n ROUND_TRIPS] [--size BYTES]
 *   peernet-bench enet-throughput [--n MSGS] [--size BYTES]
 *   peernet-bench handshakes     [--n CONNECTIONS] [--count IN_FLIGHT]
 *   peernet-bench flood          [--rate REQUESTS_PER_S] [--n ROUND_TRIPS]
 *                                [--count MESSAGES] [--limit HANDSHAKES_PER_S]
 *   peernet-bench remote-pingpong [--n ROUND_TRIPS] [--size BYTES]
 *   peernet-bench remote-flood    [--n MSGS] [--size BYTES]
 *   (remote-node --port P: the other node those two start)
 *   peernet-bench phold [--lps-per-worker N] [--remote F] [--lookahead L]
 *                       [--mean M] [--start-events K] [--end T]
 *                       [--workers W] [--processes P] [--seed S]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peernet/peernet.h"
#include "tests/bench/bench_enet.h"
#include "tests/bench/bench_flood.h"
#include "tests/bench/bench_handshakes.h"
#include "tests/bench/bench_peers.h"
#include "tests/bench/bench_remote.h"
#include "tests/bench/bench_rtt.h"
#include "tests/bench/bench_sim.h"
#include "tests/bench/bench_throughput.h"
#include "tests/bench/bench_udp.h"
#include "tests/support/rss.h"

typedef struct options {
  uint64_t n;
  uint32_t workers;
  uint32_t size; /* message bytes of the rtt subcommands, 0 for the default */
  pn_channel_kind kind; /* channel kind of `rtt` */
  uint64_t count;       /* connections of `peers` */
  uint64_t rate;        /* spoofed requests per second of `flood` */
  uint64_t limit;       /* max_handshakes_per_s of `flood` (0: default) */
  uint64_t port;        /* remote-node: the first node's port */
  bool stats;
  bool histograms; /* stats_histograms */
  pn_io_backend io;
  const char *stats_json; /* write a JSON snapshot here after the run */
  const char *prometheus; /* write Prometheus text here after the run */
} options;

/* A one-shot completion signal from an actor to main. */
typedef struct done_signal {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
  uint64_t t_end_ns;
} done_signal;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void done_init(done_signal *d) {
  pthread_mutex_init(&d->lock, NULL);
  pthread_cond_init(&d->cv, NULL);
  d->done = false;
}

static void done_fire(done_signal *d) {
  uint64_t t = now_ns();
  pthread_mutex_lock(&d->lock);
  d->t_end_ns = t;
  d->done = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->lock);
}

static uint64_t done_wait(done_signal *d) {
  pthread_mutex_lock(&d->lock);
  while (!d->done) {
    pthread_cond_wait(&d->cv, &d->lock);
  }
  uint64_t t = d->t_end_ns;
  pthread_mutex_unlock(&d->lock);
  pthread_mutex_destroy(&d->lock);
  pthread_cond_destroy(&d->cv);
  return t;
}

static pn_runtime *start_runtime(const options *o) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = o->workers;
  cfg.stats_cpu_time = o->stats;
  cfg.stats_histograms = o->histograms;
  pn_runtime *rt = NULL;
  pn_err err = pn_runtime_create(&cfg, &rt);
  if (err != PN_OK) {
    fprintf(stderr, "peernet-bench: runtime: %s\n", pn_strerror(err));
    exit(1);
  }
  return rt;
}

static void end_runtime(pn_runtime *rt) {
  pn_err err = pn_runtime_destroy(rt);
  if (err != PN_OK) {
    fprintf(stderr, "peernet-bench: destroy: %s\n", pn_strerror(err));
    exit(1);
  }
}

static void check(pn_err err, const char *what) {
  if (err != PN_OK) {
    fprintf(stderr, "peernet-bench: %s: %s\n", what, pn_strerror(err));
    exit(1);
  }
}

/* Writes the runtime's snapshot in the formats asked for. */
static void export_stats(pn_runtime *rt, const options *o) {
  if (!o->stats_json && !o->prometheus) {
    return;
  }
  pn_snapshot *snap = NULL;
  check(pn_snapshot_take(rt, &snap), "snapshot");
  const char *paths[2] = {o->stats_json, o->prometheus};
  for (int k = 0; k < 2; k++) {
    if (!paths[k]) {
      continue;
    }
    char *text = NULL;
    size_t len = 0;
    check(k == 0 ? pn_snapshot_json(snap, &text, &len)
                 : pn_snapshot_prometheus(snap, &text, &len),
          "export");
    FILE *f = fopen(paths[k], "w");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
      fprintf(stderr, "peernet-bench: cannot write %s\n", paths[k]);
      exit(1);
    }
    pn_free(text);
  }
  pn_snapshot_free(snap);
}

/* --- actor-pingpong ------------------------------------------------------ */

typedef struct pingpong {
  pn_actor *peer;
  uint64_t n;
  done_signal *done;
} pingpong;

static void pingpong_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pingpong *p = state;
  if (pn_msg_type(msg) != 1) {
    return;
  }
  uint64_t k;
  memcpy(&k, pn_msg_data(msg), sizeof k);
  if (k >= p->n) {
    done_fire(p->done);
    return;
  }
  k++;
  check(pn_send(p->peer, 1, &k, sizeof k), "send");
}

static void bench_pingpong(const options *o) {
  pn_runtime *rt = start_runtime(o);
  done_signal done;
  done_init(&done);
  pingpong pa = {.n = o->n, .done = &done};
  pingpong pb = {.n = o->n, .done = &done};
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = pingpong_handler;
  cfg.name = "ping";
  cfg.state = &pa;
  pn_actor *a = NULL;
  pn_actor *b = NULL;
  check(pn_spawn(rt, &cfg, &a), "spawn");
  cfg.name = "pong";
  cfg.state = &pb;
  check(pn_spawn(rt, &cfg, &b), "spawn");
  pa.peer = b;
  pb.peer = a;
  uint64_t zero = 0;
  uint64_t t0 = now_ns();
  check(pn_send(a, 1, &zero, sizeof zero), "send");
  uint64_t t1 = done_wait(&done);
  double s = (double)(t1 - t0) / 1e9;
  printf("{\"bench\":\"actor-pingpong\",\"impl\":\"peernet\",\"workers\":%u,"
         "\"stats\":\"%s\",\"histograms\":\"%s\",\"n\":%" PRIu64
         ",\"elapsed_s\":%.6f,\"msgs_per_s\":%.1f}\n",
         pn_runtime_workers(rt), o->stats ? "on" : "off",
         o->histograms ? "on" : "off", o->n, s, (double)o->n / s);
  export_stats(rt, o);
  /* The two actors borrow each other's handles: ours go back only after
   * every handler has finished. */
  check(pn_runtime_shutdown(rt, UINT64_MAX), "shutdown");
  pn_actor_release(a);
  pn_actor_release(b);
  end_runtime(rt);
}

/* --- actor-fanin --------------------------------------------------------- */

enum { FANIN_SENDERS = 100, FANIN_CHUNK = 64, MSG_GO = 2, MSG_DATA = 3 };

typedef struct fanin_sink {
  uint64_t expected;
  uint64_t got;
  done_signal *done;
} fanin_sink;

typedef struct fanin_source {
  pn_actor *sink;
  uint64_t remaining;
} fanin_source;

static void sink_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  fanin_sink *s = state;
  if (pn_msg_type(msg) == MSG_DATA && ++s->got == s->expected) {
    done_fire(s->done);
  }
}

/* Each "go" sends a chunk and asks for the next one with a message to
 * itself, so a muted sender really stops between chunks. */
static void source_handler(pn_actor *self, void *state, const pn_msg *msg) {
  fanin_source *s = state;
  if (pn_msg_type(msg) != MSG_GO) {
    return;
  }
  uint64_t chunk = s->remaining < FANIN_CHUNK ? s->remaining : FANIN_CHUNK;
  for (uint64_t i = 0; i < chunk; i++) {
    check(pn_send(s->sink, MSG_DATA, &i, sizeof i), "send");
  }
  s->remaining -= chunk;
  if (s->remaining) {
    check(pn_send(self, MSG_GO, NULL, 0), "send");
  }
}

static void bench_fanin(const options *o) {
  pn_runtime *rt = start_runtime(o);
  done_signal done;
  done_init(&done);
  fanin_sink sink = {.expected = o->n, .done = &done};
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = sink_handler;
  cfg.name = "sink";
  cfg.state = &sink;
  pn_actor *sink_actor = NULL;
  check(pn_spawn(rt, &cfg, &sink_actor), "spawn");
  fanin_source sources[FANIN_SENDERS];
  pn_actor *src[FANIN_SENDERS];
  cfg.handler = source_handler;
  cfg.name = "source";
  for (int i = 0; i < FANIN_SENDERS; i++) {
    sources[i].sink = sink_actor;
    sources[i].remaining =
        o->n / FANIN_SENDERS + ((uint64_t)i < o->n % FANIN_SENDERS ? 1 : 0);
    cfg.state = &sources[i];
    check(pn_spawn(rt, &cfg, &src[i]), "spawn");
  }
  uint64_t t0 = now_ns();
  for (int i = 0; i < FANIN_SENDERS; i++) {
    check(pn_send(src[i], MSG_GO, NULL, 0), "send");
  }
  uint64_t t1 = done_wait(&done);
  double s = (double)(t1 - t0) / 1e9;
  pn_actor_stats st;
  check(pn_actor_stats_get(sink_actor, &st), "stats");
  printf("{\"bench\":\"actor-fanin\",\"impl\":\"peernet\",\"workers\":%u,"
         "\"stats\":\"%s\",\"histograms\":\"%s\",\"senders\":%d,\"n\":%" PRIu64
         ",\"elapsed_s\":%.6f,\"msgs_per_s\":%.1f,\"sink_mailbox_hwm\":%u}\n",
         pn_runtime_workers(rt), o->stats ? "on" : "off",
         o->histograms ? "on" : "off", FANIN_SENDERS, o->n, s, (double)o->n / s,
         st.mailbox_hwm);
  export_stats(rt, o);
  check(pn_runtime_shutdown(rt, UINT64_MAX), "shutdown");
  for (int i = 0; i < FANIN_SENDERS; i++) {
    pn_actor_release(src[i]);
  }
  pn_actor_release(sink_actor);
  end_runtime(rt);
}

/* --- actor-spawn --------------------------------------------------------- */

typedef struct spawn_state {
  _Atomic uint64_t remaining;
  done_signal *done;
} spawn_state;

static void once_handler(pn_actor *self, void *state, const pn_msg *msg) {
  spawn_state *s = state;
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    if (atomic_fetch_sub_explicit(&s->remaining, 1, memory_order_relaxed) ==
        1) {
      done_fire(s->done);
    }
    return;
  }
  check(pn_actor_stop(self), "stop");
}

static void bench_spawn(const options *o) {
  pn_runtime *rt = start_runtime(o);
  done_signal done;
  done_init(&done);
  spawn_state st = {.done = &done};
  atomic_init(&st.remaining, o->n);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = once_handler;
  cfg.name = "once";
  cfg.state = &st;
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < o->n; i++) {
    pn_actor *a = NULL;
    check(pn_spawn(rt, &cfg, &a), "spawn");
    check(pn_send(a, 1, NULL, 0), "send");
    pn_actor_release(a);
  }
  uint64_t t1 = done_wait(&done);
  double s = (double)(t1 - t0) / 1e9;
  printf("{\"bench\":\"actor-spawn\",\"impl\":\"peernet\",\"workers\":%u,"
         "\"n\":%" PRIu64 ",\"elapsed_s\":%.6f,\"actors_per_s\":%.1f}\n",
         pn_runtime_workers(rt), o->n, s, (double)o->n / s);
  end_runtime(rt);
}

/* --- actor-memory -------------------------------------------------------- */

static void idle_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

static void bench_memory(const options *o) {
  pn_runtime *rt = start_runtime(o);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = idle_handler;
  cfg.name = "idle";
  long before = pn_rss_bytes();
  for (uint64_t i = 0; i < o->n; i++) {
    check(pn_spawn(rt, &cfg, NULL), "spawn");
  }
  long after = pn_rss_bytes();
  pn_runtime_stats st;
  check(pn_runtime_stats_get(rt, &st), "stats");
  double per = (double)(after - before) / (double)o->n;
  printf("{\"bench\":\"actor-memory\",\"impl\":\"peernet\",\"workers\":%u,"
         "\"n\":%" PRIu64 ",\"alive\":%" PRIu64
         ",\"rss_delta_bytes\":%ld,\"bytes_per_actor\":%.1f}\n",
         pn_runtime_workers(rt), o->n, st.actors_alive, after - before, per);
  end_runtime(rt);
}

/* --- command line -------------------------------------------------------- */

/* enet-throughput's default count: 1 GB of payload, at most 6 M packets.
 * On the 2-core VM it was written on that is about 1.5 s at 64 bytes
 * (6 M packets) and 1.3 s at 16 KiB (61035 packets). */
static uint64_t enet_throughput_n(uint32_t size) {
  uint64_t n = 1000000000u / size;
  return n > 6000000u ? 6000000u : n;
}

static void usage(FILE *f) {
  fprintf(f, "usage: peernet-bench SUBCOMMAND [--n N] [--workers W] "
             "[--stats on|off]\n"
             "       [--histograms on|off] [--io uring|epoll] "
             "[--stats-json PATH] [--prometheus PATH]\n"
             "       [--size BYTES] [--kind KIND] [--count PEERS]\n"
             "       [--rate REQUESTS_PER_S] [--limit HANDSHAKES_PER_S]\n"
             "subcommands: actor-pingpong actor-fanin actor-spawn "
             "actor-memory udp-echo udp-flood rtt throughput compression peers "
             "handshakes flood remote-pingpong remote-flood phold "
             "enet-rtt raw-rtt enet-throughput\n"
             "kinds (rtt, throughput): unreliable reliable ordered unsequenced "
             "reliable-unordered\n");
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s || *s == '-') {
    return false;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v == 0) {
    return false;
  }
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "phold") == 0) { /* options of its own */
    return bench_phold(argc - 2, argv + 2);
  }
  options o = {
      .n = 0, .workers = 0, .stats = true, .kind = PN_CHANNEL_RELIABLE};
  for (int i = 2; i < argc; i++) {
    uint64_t v = 0;
    if (strcmp(argv[i], "--n") == 0 && i + 1 < argc &&
        parse_u64(argv[i + 1], &v)) {
      o.n = v;
      i++;
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= 1024) {
      o.workers = (uint32_t)v;
      i++;
    } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= BENCH_RTT_MAX_SIZE) {
      o.size = (uint32_t)v;
      i++;
    } else if (strcmp(argv[i], "--io") == 0 && i + 1 < argc &&
               (strcmp(argv[i + 1], "epoll") == 0 ||
                strcmp(argv[i + 1], "uring") == 0)) {
      o.io = strcmp(argv[i + 1], "epoll") == 0 ? PN_IO_EPOLL : PN_IO_URING;
      i++;
    } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= 1000000) {
      o.count = v;
      i++;
    } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= 100000000) {
      o.rate = v;
      i++;
    } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= UINT32_MAX) {
      o.limit = v;
      i++;
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], &v) && v <= 65535) {
      o.port = v;
      i++;
    } else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc &&
               pn_channel_kind_parse(argv[i + 1], &o.kind) == PN_OK) {
      i++;
    } else if (strcmp(argv[i], "--stats-json") == 0 && i + 1 < argc) {
      o.stats_json = argv[++i];
    } else if (strcmp(argv[i], "--prometheus") == 0 && i + 1 < argc) {
      o.prometheus = argv[++i];
    } else if (strcmp(argv[i], "--histograms") == 0 && i + 1 < argc &&
               (strcmp(argv[i + 1], "on") == 0 ||
                strcmp(argv[i + 1], "off") == 0)) {
      o.histograms = strcmp(argv[i + 1], "on") == 0;
      i++;
    } else if (strcmp(argv[i], "--stats") == 0 && i + 1 < argc &&
               (strcmp(argv[i + 1], "on") == 0 ||
                strcmp(argv[i + 1], "off") == 0)) {
      o.stats = strcmp(argv[i + 1], "on") == 0;
      i++;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (strcmp(cmd, "actor-pingpong") == 0) {
    o.n = o.n ? o.n : 2000000;
    bench_pingpong(&o);
  } else if (strcmp(cmd, "actor-fanin") == 0) {
    o.n = o.n ? o.n : 10000000;
    bench_fanin(&o);
  } else if (strcmp(cmd, "actor-spawn") == 0) {
    o.n = o.n ? o.n : 200000;
    bench_spawn(&o);
  } else if (strcmp(cmd, "udp-echo") == 0) {
    bench_udp_echo(o.io, o.n ? o.n : 20000);
  } else if (strcmp(cmd, "udp-flood") == 0) {
    bench_udp_flood(o.io, o.n ? o.n : 1000000);
  } else if (strcmp(cmd, "compression") == 0) {
    return bench_compression(o.io, o.n ? o.n : 300000, o.size ? o.size : 48);
  } else if (strcmp(cmd, "peers") == 0) {
    return bench_peers(o.io, o.count ? o.count : 10000, 3);
  } else if (strcmp(cmd, "handshakes") == 0) {
    return bench_handshakes(o.io, o.n ? o.n : 20000,
                            o.count ? (uint32_t)o.count : 256);
  } else if (strcmp(cmd, "flood") == 0) {
    return bench_flood(o.io, o.rate ? o.rate : 650000, o.n ? o.n : 5000,
                       o.count ? o.count : 1000000, (uint32_t)o.limit);
  } else if (strcmp(cmd, "throughput") == 0) {
    uint32_t size = o.size ? o.size : 64;
    return bench_peernet_throughput(
        o.io, o.kind, o.n ? o.n : (size <= 1024 ? 2000000 : 20000), size);
  } else if (strcmp(cmd, "rtt") == 0) {
    return bench_peernet_rtt(o.io, o.kind, o.n ? o.n : 20000,
                             o.size ? o.size : 64);
  } else if (strcmp(cmd, "enet-rtt") == 0) {
    return bench_enet_rtt(o.n ? o.n : 20000, o.size ? o.size : 64);
  } else if (strcmp(cmd, "enet-throughput") == 0) {
    uint32_t size = o.size ? o.size : 64;
    return bench_enet_throughput(o.n ? o.n : enet_throughput_n(size), size);
  } else if (strcmp(cmd, "raw-rtt") == 0) {
    return bench_raw_rtt(o.n ? o.n : 20000, o.size ? o.size : 64);
  } else if (strcmp(cmd, "remote-pingpong") == 0 ||
             strcmp(cmd, "remote-flood") == 0) {
    bool flood = strcmp(cmd, "remote-flood") == 0;
    return bench_remote(o.io, flood, o.n ? o.n : (flood ? 1000000 : 20000),
                        o.size ? o.size : 64, argv[0]);
  } else if (strcmp(cmd, "remote-node") == 0) {
    return bench_remote_node(o.io, (uint16_t)o.port);
  } else if (strcmp(cmd, "actor-memory") == 0) {
    o.n = o.n ? o.n : 100000;
    bench_memory(&o);
  } else {
    usage(stderr);
    return 2;
  }
  return 0;
}
