/* peernet-bench udp-echo and udp-flood: PeerNet socket actors against a
 * plain program of blocking sendto/recvfrom on two threads, both measured
 * in the same process and printed in one JSON line. */
#include "tests/bench/bench_udp.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peernet/peernet.h"

#define PAYLOAD 64u

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(pn_err err, const char *what) {
  if (err != PN_OK) {
    fprintf(stderr, "peernet-bench: %s: %s\n", what, pn_strerror(err));
    exit(1);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a;
  uint64_t y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(uint64_t *v, size_t n, double p) {
  qsort(v, n, sizeof *v, cmp_u64);
  size_t i = (size_t)(p * (double)(n - 1));
  return (double)v[i] / 1000.0;
}

/* A one-shot completion signal. */
typedef struct done_signal {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
} done_signal;

static void done_fire(done_signal *d) {
  pthread_mutex_lock(&d->lock);
  d->done = true;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->lock);
}

static void done_wait(done_signal *d) {
  pthread_mutex_lock(&d->lock);
  while (!d->done) {
    pthread_cond_wait(&d->cv, &d->lock);
  }
  pthread_mutex_unlock(&d->lock);
}

/* --- plain blocking baseline -------------------------------------------- */

static int plain_socket(struct sockaddr_in *bound) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int size = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    perror("peernet-bench: plain socket");
    exit(1);
  }
  socklen_t len = sizeof *bound;
  getsockname(fd, (struct sockaddr *)bound, &len);
  /* Bounded waits: a lost datagram ends the run instead of hanging it. */
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

typedef struct plain_echo {
  int fd;
  _Atomic int stop;
} plain_echo;

static void *plain_echo_main(void *arg) {
  plain_echo *e = arg;
  unsigned char buf[2048];
  while (!atomic_load(&e->stop)) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n =
        recvfrom(e->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    if (n > 0) {
      sendto(e->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen);
    }
  }
  return NULL;
}

static void plain_rtt(uint64_t n, uint64_t *rtt) {
  struct sockaddr_in server_addr;
  struct sockaddr_in client_addr;
  plain_echo e = {.fd = plain_socket(&server_addr)};
  int cfd = plain_socket(&client_addr);
  pthread_t th;
  pthread_create(&th, NULL, plain_echo_main, &e);
  unsigned char buf[PAYLOAD];
  memset(buf, 7, sizeof buf);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t t0 = now_ns();
    sendto(cfd, buf, sizeof buf, 0, (struct sockaddr *)&server_addr,
           sizeof server_addr);
    if (recv(cfd, buf, sizeof buf, 0) <= 0) {
      i--; /* lost: send again */
      continue;
    }
    rtt[i] = now_ns() - t0;
  }
  atomic_store(&e.stop, 1);
  pthread_join(th, NULL);
  close(e.fd);
  close(cfd);
}

typedef struct plain_rx {
  int fd;
  uint64_t got;
  uint64_t first_ns;
  uint64_t last_ns;
} plain_rx;

static void *plain_rx_main(void *arg) {
  plain_rx *r = arg;
  unsigned char buf[2048];
  for (;;) {
    ssize_t n = recv(r->fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break; /* 200 ms of silence: the flood is over */
    }
    uint64_t t = now_ns();
    if (!r->got++) {
      r->first_ns = t;
    }
    r->last_ns = t;
  }
  return NULL;
}

static double plain_flood(uint64_t n, uint64_t *received) {
  struct sockaddr_in rx_addr;
  struct sockaddr_in tx_addr;
  plain_rx r = {.fd = plain_socket(&rx_addr)};
  int tx = plain_socket(&tx_addr);
  pthread_t th;
  pthread_create(&th, NULL, plain_rx_main, &r);
  unsigned char buf[PAYLOAD];
  memset(buf, 1, sizeof buf);
  for (uint64_t i = 0; i < n; i++) {
    sendto(tx, buf, sizeof buf, 0, (struct sockaddr *)&rx_addr, sizeof rx_addr);
  }
  pthread_join(th, NULL);
  close(r.fd);
  close(tx);
  *received = r.got;
  double s = (double)(r.last_ns - r.first_ns) / 1e9;
  return s > 0 ? (double)r.got / s : 0;
}

/* --- PeerNet ----------------------------------------------------------------
 */

static pn_runtime *udp_runtime(pn_io_backend io) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.io = io;
  pn_runtime *rt = NULL;
  die(pn_runtime_create(&cfg, &rt), "runtime");
  return rt;
}

/* Each socket shares a worker with its owner, as DESIGN's data flow has
 * it: a datagram's hand-over and the reply are same-thread hops. */
static pn_socket *udp_open(pn_runtime *rt, pn_actor *owner, int32_t home) {
  pn_socket_config cfg = PN_SOCKET_CONFIG_INIT;
  cfg.host = "127.0.0.1";
  cfg.owner = owner;
  cfg.home_worker = home % (int32_t)pn_runtime_workers(rt);
  pn_socket *s = NULL;
  die(pn_socket_open(rt, &cfg, &s), "socket");
  return s;
}

typedef struct echo_server {
  pn_socket *sock;
} echo_server;

static void echo_server_handler(pn_actor *self, void *state,
                                const pn_msg *msg) {
  (void)self;
  echo_server *e = state;
  pn_datagram d;
  if (pn_msg_datagram(msg, &d) == PN_OK) {
    (void)pn_socket_send(e->sock, &d.from, d.data, d.len);
  }
}

typedef struct pinger {
  pn_socket *sock;
  pn_addr server;
  uint64_t n;
  uint64_t i;
  uint64_t t0;
  uint64_t *rtt;
  done_signal *done;
} pinger;

static void pinger_send(pinger *p) {
  unsigned char buf[PAYLOAD];
  memset(buf, 7, sizeof buf);
  p->t0 = now_ns();
  die(pn_socket_send(p->sock, &p->server, buf, sizeof buf), "send");
}

static void pinger_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pinger *p = state;
  if (pn_msg_type(msg) == 1) {
    pinger_send(p);
    return;
  }
  pn_datagram d;
  if (pn_msg_datagram(msg, &d) != PN_OK) {
    return;
  }
  p->rtt[p->i++] = now_ns() - p->t0;
  if (p->i == p->n) {
    done_fire(p->done);
    return;
  }
  pinger_send(p);
}

static pn_actor *spawn(pn_runtime *rt, const char *name, pn_handler h,
                       void *state, int32_t home) {
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = name;
  cfg.home_worker = home % (int32_t)pn_runtime_workers(rt);
  cfg.handler = h;
  cfg.state = state;
  pn_actor *a = NULL;
  die(pn_spawn(rt, &cfg, &a), "spawn");
  return a;
}

static void close_and_end(pn_runtime *rt, pn_socket **socks, size_t nsocks,
                          pn_actor **actors, size_t nactors) {
  for (size_t i = 0; i < nsocks; i++) {
    pn_socket_close(socks[i]);
  }
  die(pn_runtime_shutdown(rt, UINT64_MAX), "shutdown");
  for (size_t i = 0; i < nactors; i++) {
    pn_actor_release(actors[i]);
  }
  die(pn_runtime_destroy(rt), "destroy");
}

/* One PeerNet echo run; client_home is the worker of the pinger and its
 * socket (the echo side is on worker 0). Fills rtt[n]; returns the
 * backend's name. */
static const char *peernet_rtt(pn_io_backend io, uint64_t n,
                               int32_t client_home, uint64_t *rtt) {
  pn_runtime *rt = udp_runtime(io);
  done_signal done = {.lock = PTHREAD_MUTEX_INITIALIZER,
                      .cv = PTHREAD_COND_INITIALIZER};
  echo_server server = {0};
  pinger p = {.n = n, .rtt = rtt, .done = &done};
  pn_actor *sa = spawn(rt, "echo", echo_server_handler, &server, 0);
  pn_actor *pa = spawn(rt, "pinger", pinger_handler, &p, client_home);
  server.sock = udp_open(rt, sa, 0);
  p.sock = udp_open(rt, pa, client_home);
  die(pn_socket_local_addr(server.sock, &p.server), "addr");
  die(pn_send(pa, 1, NULL, 0), "start");
  done_wait(&done);
  /* Static strings: valid after the runtime is gone. */
  const char *name =
      strcmp(pn_runtime_io_name(rt), "uring") == 0 ? "uring" : "epoll";
  pn_socket *socks[] = {server.sock, p.sock};
  pn_actor *actors[] = {sa, pa};
  close_and_end(rt, socks, 2, actors, 2);
  return name;
}

void bench_udp_echo(pn_io_backend io, uint64_t n) {
  uint64_t *plain = calloc(n, sizeof *plain);
  uint64_t *same = calloc(n, sizeof *same);
  uint64_t *cross = calloc(n, sizeof *cross);
  if (!plain || !same || !cross) {
    die(PN_ENOMEM, "alloc");
  }
  plain_rtt(n, plain);
  /* Both sides on one worker (as actors that talk often should be), and
   * each side on its own worker. */
  const char *name = peernet_rtt(io, n, 0, same);
  (void)peernet_rtt(io, n, 1, cross);
  double p50 = pct_us(same, n, 0.50);
  double p99 = pct_us(same, n, 0.99);
  double cross50 = pct_us(cross, n, 0.50);
  double cross99 = pct_us(cross, n, 0.99);
  double plain50 = pct_us(plain, n, 0.50);
  double plain99 = pct_us(plain, n, 0.99);
  printf("{\"bench\":\"udp-echo\",\"impl\":\"peernet\",\"io\":\"%s\","
         "\"n\":%" PRIu64 ",\"size\":%u,\"rtt_p50_us\":%.1f,\"rtt_p99_us\":"
         "%.1f,\"cross_worker_rtt_p50_us\":%.1f,"
         "\"cross_worker_rtt_p99_us\":%.1f,\"plain_rtt_p50_us\":%.1f,"
         "\"plain_rtt_p99_us\":%.1f,\"p50_vs_plain\":%.2f}\n",
         name, n, PAYLOAD, p50, p99, cross50, cross99, plain50, plain99,
         p50 / plain50);
  free(plain);
  free(same);
  free(cross);
}

/* Flood: a sender actor queues chunks of datagrams on its socket (muted by
 * backpressure when the socket falls behind); the receiver counts. */
typedef struct flood_tx {
  pn_socket *sock;
  pn_addr to;
  uint64_t left;
} flood_tx;

static void flood_tx_handler(pn_actor *self, void *state, const pn_msg *msg) {
  flood_tx *t = state;
  if (pn_msg_type(msg) != 1) {
    return;
  }
  unsigned char buf[PAYLOAD];
  memset(buf, 1, sizeof buf);
  for (int i = 0; i < 64 && t->left; i++, t->left--) {
    die(pn_socket_send(t->sock, &t->to, buf, sizeof buf), "send");
  }
  if (t->left) {
    die(pn_send(self, 1, NULL, 0), "next");
  }
}

typedef struct flood_rx {
  _Atomic uint64_t got;
  _Atomic uint64_t first_ns;
  _Atomic uint64_t last_ns;
} flood_rx;

static void flood_rx_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  flood_rx *r = state;
  if (pn_msg_type(msg) != PN_MSG_DATAGRAM) {
    return;
  }
  uint64_t t = now_ns();
  if (!atomic_load_explicit(&r->got, memory_order_relaxed)) {
    atomic_store_explicit(&r->first_ns, t, memory_order_relaxed);
  }
  atomic_store_explicit(&r->last_ns, t, memory_order_relaxed);
  atomic_fetch_add_explicit(&r->got, 1, memory_order_release);
}

void bench_udp_flood(pn_io_backend io, uint64_t n) {
  uint64_t plain_got = 0;
  double plain_rate = plain_flood(n, &plain_got);

  pn_runtime *rt = udp_runtime(io);
  flood_rx rx = {0};
  flood_tx tx = {.left = n};
  pn_actor *ra = spawn(rt, "flood-rx", flood_rx_handler, &rx, 0);
  pn_actor *ta = spawn(rt, "flood-tx", flood_tx_handler, &tx, 1);
  pn_socket *rs = udp_open(rt, ra, 0);
  tx.sock = udp_open(rt, ta, 1);
  die(pn_socket_local_addr(rs, &tx.to), "addr");
  die(pn_send(ta, 1, NULL, 0), "start");
  /* Ends by itself: when nothing new arrived for 200 ms after the first
   * datagram (or 5 s with nothing at all). */
  uint64_t start = now_ns();
  uint64_t seen = 0;
  uint64_t seen_at = start;
  for (;;) {
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL); /* a benchmark's progress poll, not a test */
    uint64_t got = atomic_load_explicit(&rx.got, memory_order_acquire);
    uint64_t t = now_ns();
    if (got != seen) {
      seen = got;
      seen_at = t;
    } else if ((got && t - seen_at > 200000000u) ||
               (!got && t - start > 5000000000u) || got >= n) {
      break;
    }
  }
  pn_socket_stats st;
  die(pn_socket_stats_get(rs, &st), "stats");
  const char *io_name = pn_runtime_io_name(rt);
  char name[16];
  snprintf(name, sizeof name, "%s", io_name);
  pn_socket *socks[] = {rs, tx.sock};
  pn_actor *actors[] = {ra, ta};
  close_and_end(rt, socks, 2, actors, 2);
  uint64_t got = atomic_load(&rx.got);
  double s =
      (double)(atomic_load(&rx.last_ns) - atomic_load(&rx.first_ns)) / 1e9;
  double rate = s > 0 ? (double)got / s : 0;
  printf("{\"bench\":\"udp-flood\",\"impl\":\"peernet\",\"io\":\"%s\","
         "\"n\":%" PRIu64 ",\"size\":%u,\"received\":%" PRIu64
         ",\"kernel_drops\":%" PRIu64 ",\"datagrams_per_s\":%.0f,"
         "\"plain_received\":%" PRIu64 ",\"plain_datagrams_per_s\":%.0f,"
         "\"vs_plain\":%.2f}\n",
         name, n, PAYLOAD, got, st.kernel_drops, rate, plain_got, plain_rate,
         plain_rate > 0 ? rate / plain_rate : 0);
}
