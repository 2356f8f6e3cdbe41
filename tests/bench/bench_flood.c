/* peernet-bench flood: what a flood of spoofed connect requests does to an
 * established connection. One server host (worker 0) and one client host
 * (worker 1) connect over loopback; the client measures its ping round
 * trip (one 64-byte reliable message at a time, echoed) and its one-way
 * throughput (ordered messages as fast as the protocol allows), first
 * unloaded, then while a thread of this process sends `rate` ConnectRequests
 * per second to a decoy socket whose kernel filter drops them all (the
 * "decoy" figures: what the flooding thread and the kernel's loopback path
 * cost the machine on their own, with nothing reaching PeerNet), then
 * while it sends them to the server's socket. The runs are printed side by
 * side in one JSON line, with the flood rate actually reached, the
 * server's counters over the flooded run and whether the connection
 * survived. On a machine with few cores the decoy run, not the unloaded
 * one, is what the flooded run can at best match.
 *
 * The requests are genuine: the first ConnectRequest a client host sends
 * (captured on a plain socket), replayed from a raw socket with a random
 * source port per datagram (the source address stays 127.0.0.1: the
 * traffic never leaves loopback). Without CAP_NET_RAW it falls back to 64
 * ordinary sockets, one source port each. Either way each datagram looks
 * to the server like a new client that never answers its challenge. */
#include "tests/bench/bench_flood.h"
#include "tests/bench/bench_pair.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bench/bench_stats.h"

#define MSG_START_RTT 1u
#define MSG_START_TP 2u
#define MSG_NEXT 3u
#define CHUNK 256u
#define TP_SIZE 64u
#define PHASE_S 10 /* the most a measuring phase waits */

typedef struct fl_state {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool connected, done, failed, lost;
  /* Round trips (client owner). */
  uint64_t rtt_n, rtt_i, rtt_sent_ns, rtt_deadline_ns;
  uint64_t *samples;
  /* Throughput: sent by the client owner, counted by the server owner. */
  uint64_t tp_n, tp_sent, tp_deadline_ns;
  bool tp_waiting;
  _Atomic uint64_t tp_got;
  uint64_t tp_end_ns;
  uint8_t buf[TP_SIZE];
  pn_peer *peer;  /* main's handle */
  pn_channel *ch; /* the client owner's, from its CONNECTED event */
} fl_state;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void signal_done(fl_state *s, bool failed) {
  pthread_mutex_lock(&s->lock);
  if (!s->done) {
    s->done = true;
    s->failed = failed;
    s->tp_end_ns = now_ns();
  }
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

/* --- the connection's two owners ----------------------------------------- */

static void rtt_send(fl_state *s, pn_channel *ch) {
  s->buf[0] = 'R';
  s->rtt_sent_ns = now_ns();
  if (pn_channel_send(ch, s->buf, TP_SIZE, NULL) != PN_OK) {
    signal_done(s, true);
  }
}

static void tp_chunk(pn_actor *self, fl_state *s, pn_channel *ch) {
  s->buf[0] = 'T';
  for (uint32_t i = 0; i < CHUNK && s->tp_sent < s->tp_n; i++) {
    pn_err err = pn_channel_send(ch, s->buf, TP_SIZE, NULL);
    if (err == PN_EAGAIN) {
      s->tp_waiting = true;
      return;
    }
    if (err != PN_OK) {
      signal_done(s, true);
      return;
    }
    s->tp_sent++;
  }
  if (s->tp_sent < s->tp_n && now_ns() < s->tp_deadline_ns) {
    (void)pn_send(self, MSG_NEXT, NULL, 0);
  }
}

static void client_owner(pn_actor *self, void *state, const pn_msg *msg) {
  fl_state *s = state;
  pn_channel *ch = s->ch;
  pn_peer_event ev;
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (pn_msg_peer_event(msg, &ev) == PN_OK) {
      s->ch = pn_peer_channel(ev.peer, 0);
    }
    pthread_mutex_lock(&s->lock);
    s->connected = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->lock);
    break;
  case PN_MSG_PEER_DISCONNECTED:
    pthread_mutex_lock(&s->lock);
    s->lost = true;
    pthread_mutex_unlock(&s->lock);
    signal_done(s, true);
    break;
  case MSG_START_RTT:
    rtt_send(s, ch);
    break;
  case PN_MSG_PEER_PACKET: {
    uint64_t t = now_ns();
    s->samples[s->rtt_i++] = t - s->rtt_sent_ns;
    if (s->rtt_i == s->rtt_n || t > s->rtt_deadline_ns) {
      signal_done(s, false);
    } else {
      rtt_send(s, ch);
    }
    break;
  }
  case MSG_START_TP:
  case MSG_NEXT:
    tp_chunk(self, s, ch);
    break;
  case PN_MSG_PEER_WRITABLE:
    if (s->tp_waiting) {
      s->tp_waiting = false;
      tp_chunk(self, s, ch);
    }
    break;
  default:
    break;
  }
}

static void server_owner(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  fl_state *s = state;
  pn_peer_event ev;
  if (pn_msg_type(msg) != PN_MSG_PEER_PACKET ||
      pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  const uint8_t *data = pn_packet_data(ev.packet);
  if (pn_packet_len(ev.packet) && data[0] == 'R') {
    (void)pn_channel_send_packet(ev.ch, ev.packet, NULL);
    return;
  }
  /* relaxed: main reads it after signal_done()'s lock, or as a sample. */
  uint64_t got =
      atomic_fetch_add_explicit(&s->tp_got, 1, memory_order_relaxed) + 1;
  if (got == s->tp_n) {
    signal_done(s, false);
  }
}

/* --- the flooder --------------------------------------------------------- */

#define FLOOD_BATCH 32u
#define FLOOD_SOCKETS 64u

typedef struct flooder {
  pthread_t thread;
  uint64_t rate; /* datagrams per second */
  const uint8_t *req;
  size_t len;
  uint16_t port; /* where the flood goes, network order */
  bool raw;
  int fds[FLOOD_SOCKETS];
  uint32_t nfds;
  _Atomic bool stop;
  _Atomic uint64_t sent;
} flooder;

static uint64_t xorshift(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static bool flooder_open(flooder *f) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd >= 0) {
    f->raw = true;
    f->fds[0] = fd;
    f->nfds = 1;
    return true;
  }
  for (f->nfds = 0; f->nfds < FLOOD_SOCKETS; f->nfds++) {
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      if (fd >= 0) {
        close(fd);
      }
      break;
    }
    f->fds[f->nfds] = fd;
  }
  return f->nfds > 0;
}

static void *flooder_main(void *arg) {
  flooder *f = arg;
  size_t hdr = f->raw ? sizeof(struct iphdr) + sizeof(struct udphdr) : 0;
  size_t dlen = hdr + f->len;
  uint8_t *pkts = calloc(FLOOD_BATCH, dlen);
  struct mmsghdr msgs[FLOOD_BATCH];
  struct iovec iov[FLOOD_BATCH];
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = f->port,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (!pkts) {
    return NULL;
  }
  memset(msgs, 0, sizeof msgs);
  for (uint32_t i = 0; i < FLOOD_BATCH; i++) {
    uint8_t *p = pkts + (size_t)i * dlen;
    if (f->raw) {
      struct iphdr *ip = (struct iphdr *)(void *)p;
      ip->version = 4;
      ip->ihl = 5;
      ip->ttl = 64;
      ip->protocol = IPPROTO_UDP;
      ip->saddr = htonl(INADDR_LOOPBACK);
      ip->daddr = htonl(INADDR_LOOPBACK);
      ip->tot_len = htons((uint16_t)dlen); /* the kernel fills the rest */
      struct udphdr *u = (struct udphdr *)(void *)(p + sizeof *ip);
      u->dest = f->port;
      u->len = htons((uint16_t)(sizeof *u + f->len));
      u->check = 0; /* none: allowed over IPv4 */
    }
    memcpy(p + hdr, f->req, f->len);
    iov[i].iov_base = p;
    iov[i].iov_len = dlen;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof to;
  }
  uint64_t rng = now_ns() | 1;
  uint64_t t0 = now_ns();
  uint64_t sent = 0;
  uint32_t next_fd = 0;
  /* relaxed: a stop flag; the join orders everything else. */
  while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
    uint64_t due = t0 + sent * 1000000000u / f->rate;
    uint64_t now = now_ns();
    if (due > now + 20000) {
      struct timespec ts = {(time_t)(due / 1000000000u),
                            (long)(due % 1000000000u)};
      (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
      continue;
    }
    if (f->raw) {
      for (uint32_t i = 0; i < FLOOD_BATCH; i++) {
        struct udphdr *u = (struct udphdr *)(void *)(pkts + (size_t)i * dlen +
                                                     sizeof(struct iphdr));
        u->source = htons((uint16_t)(1024 + xorshift(&rng) % 64000));
      }
    }
    int n = sendmmsg(f->fds[next_fd], msgs, FLOOD_BATCH, 0);
    next_fd = (next_fd + 1) % f->nfds;
    if (n > 0) {
      sent += (uint64_t)n;
      /* relaxed: a progress counter main samples. */
      atomic_store_explicit(&f->sent, sent, memory_order_relaxed);
    } else if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS) {
      break;
    }
  }
  free(pkts);
  return NULL;
}

/* --- measuring ----------------------------------------------------------- */

typedef struct fl_result {
  double rtt_p50_us, rtt_p99_us;
  uint64_t rtt_n;
  double tp_msgs_per_s;
  bool ok;
} fl_result;

/* Waits for the phase's end (bounded); false on timeout. */
static bool wait_done(fl_state *s, int seconds) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += seconds;
  pthread_mutex_lock(&s->lock);
  while (!s->done && pthread_cond_timedwait(&s->cv, &s->lock, &dl) == 0) {
  }
  bool done = s->done && !s->failed;
  pthread_mutex_unlock(&s->lock);
  return done;
}

static void measure(fl_state *s, pn_actor *client_app, uint64_t rtt_n,
                    uint64_t tp_n, fl_result *r) {
  memset(r, 0, sizeof *r);
  /* Round trips. */
  pthread_mutex_lock(&s->lock);
  s->done = false;
  s->rtt_n = rtt_n;
  s->rtt_i = 0;
  s->rtt_deadline_ns = now_ns() + (uint64_t)PHASE_S * 1000000000u / 2;
  pthread_mutex_unlock(&s->lock);
  (void)pn_send(client_app, MSG_START_RTT, NULL, 0);
  bool ok = wait_done(s, PHASE_S + 5);
  pthread_mutex_lock(&s->lock);
  uint64_t n = s->rtt_i;
  pthread_mutex_unlock(&s->lock);
  if (ok && n) {
    bench_sort_ns(s->samples, n);
    r->rtt_p50_us = bench_percentile(s->samples, n, 0.50) / 1000.0;
    r->rtt_p99_us = bench_percentile(s->samples, n, 0.99) / 1000.0;
    r->rtt_n = n;
  }
  /* Throughput. */
  pthread_mutex_lock(&s->lock);
  s->done = false;
  s->tp_n = tp_n;
  s->tp_sent = 0;
  /* relaxed: the message below orders it before the server's counting. */
  atomic_store_explicit(&s->tp_got, 0, memory_order_relaxed);
  uint64_t t0 = now_ns();
  s->tp_deadline_ns = t0 + (uint64_t)PHASE_S * 1000000000u;
  pthread_mutex_unlock(&s->lock);
  (void)pn_send(client_app, MSG_START_TP, NULL, 0);
  bool tp_ok = wait_done(s, PHASE_S + 1);
  pthread_mutex_lock(&s->lock);
  uint64_t t1 = tp_ok ? s->tp_end_ns : now_ns();
  pthread_mutex_unlock(&s->lock);
  /* relaxed: a sample; all that matters is that it counts arrivals. */
  uint64_t got = atomic_load_explicit(&s->tp_got, memory_order_relaxed);
  r->tp_msgs_per_s = (double)got / ((double)(t1 - t0) / 1e9);
  r->ok = ok && tp_ok;
  /* A phase cut short by its deadline leaves messages in flight: let them
   * land before the next phase counts. */
  for (int i = 0; i < 100 && !tp_ok; i++) {
    uint64_t before = atomic_load_explicit(&s->tp_got, memory_order_relaxed);
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL); /* draining, not synchronising: no event says so */
    if (atomic_load_explicit(&s->tp_got, memory_order_relaxed) == before) {
      break;
    }
  }
}

/* Floods `port` while measuring; the requests per second the flood
 * reached go to *rate_out. False when the flooding thread did not start. */
static bool flooded_measure(fl_state *s, pn_actor *client_app, flooder *f,
                            uint16_t port, uint64_t rtt_n, uint64_t tp_n,
                            fl_result *r, double *rate_out) {
  f->port = port;
  atomic_store(&f->stop, false);
  atomic_store(&f->sent, 0);
  if (pthread_create(&f->thread, NULL, flooder_main, f) != 0) {
    return false;
  }
  struct timespec settle = {0, 300000000};
  nanosleep(&settle, NULL); /* let the flood reach its rate */
  uint64_t sent0 = atomic_load(&f->sent);
  uint64_t t0 = now_ns();
  measure(s, client_app, rtt_n, tp_n, r);
  *rate_out =
      (double)(atomic_load(&f->sent) - sent0) / ((double)(now_ns() - t0) / 1e9);
  atomic_store(&f->stop, true);
  pthread_join(f->thread, NULL);
  return true;
}

/* A socket that takes the same flood and drops all of it in the kernel (a
 * filter that refuses everything): the flood's cost to the machine with
 * nothing of it reaching PeerNet. Returns its port (network order), 0 on
 * failure. */
static uint16_t open_decoy(int *fd_out) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
  struct sock_fprog fp = {.len = 1, .filter = &drop};
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return 0;
  }
  *fd_out = fd;
  return a.sin_port;
}

static pn_host *open_host(pn_runtime *rt, int32_t home, pn_actor *accept,
                          uint32_t limit) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.home_worker = home;
  hc.accept_owner = accept;
  hc.max_handshakes_per_s = limit;
  pn_host *h = NULL;
  pn_err err = pn_host_open(rt, &hc, &h);
  if (err != PN_OK) {
    fprintf(stderr, "flood: pn_host_open: %s\n", pn_err_name(err));
  }
  return h;
}

/* The first ConnectRequest a client host sends, read from a plain socket.
 * Returns its length, 0 on failure. */
static size_t capture_request(pn_runtime *rt, pn_actor *owner, uint8_t *buf,
                              size_t cap) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
    if (fd >= 0) {
      close(fd);
    }
    return 0;
  }
  pn_host *h = open_host(rt, 1, NULL, 0);
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.owner = owner;
  pc.remote.family = PN_AF_INET;
  pc.remote.port = ntohs(a.sin_port);
  pc.remote.ip[0] = 127;
  pc.remote.ip[3] = 1;
  pn_peer *p = NULL;
  ssize_t n = -1;
  if (h && pn_host_connect(h, &pc, &p) == PN_OK) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, 5000) == 1) {
      n = recv(fd, buf, cap, 0);
    }
  }
  pn_peer_release(p);
  pn_host_close(h);
  close(fd);
  return n > 0 ? (size_t)n : 0;
}

static uint64_t socket_kernel_drops(pn_runtime *rt, const pn_addr *local) {
  char want[PN_ADDR_STRLEN];
  pn_snapshot *snap = NULL;
  uint64_t drops = 0;
  if (pn_addr_format(local, want, sizeof want) != PN_OK ||
      pn_snapshot_take(rt, &snap) != PN_OK) {
    return 0;
  }
  for (size_t i = 0; i < snap->socket_count; i++) {
    if (strcmp(snap->sockets[i].local, want) == 0) {
      drops = snap->sockets[i].stats.kernel_drops;
    }
  }
  pn_snapshot_free(snap);
  return drops;
}

int bench_flood(pn_io_backend io, uint64_t rate, uint64_t rtt_n, uint64_t tp_n,
                uint32_t limit) {
  fl_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.samples = calloc(rtt_n, sizeof *s.samples);
  pn_actor *server_app, *client_app;
  pn_runtime *rt =
      s.samples ? bench_pair_start(io, "flood", "flood-server", server_owner,
                                   "flood-client", client_owner, &s,
                                   &server_app, &client_app)
                : NULL;
  if (!rt) {
    free(s.samples);
    return 1;
  }
  pn_host *server = open_host(rt, 0, server_app, limit);
  pn_host *client = open_host(rt, 1, NULL, 0);
  uint8_t req[2048];
  /* The capturing peer's events go to the server's owner, which ignores
   * them. */
  size_t req_len = capture_request(rt, server_app, req, sizeof req);
  int rc_out = 1;
  flooder f;
  memset(&f, 0, sizeof f);
  pn_addr server_addr;
  memset(&server_addr, 0, sizeof server_addr);
  if (server && client && req_len) {
    (void)pn_host_local_addr(server, 0, &server_addr);
    f.rate = rate;
    f.req = req;
    f.len = req_len;
    f.port = htons(server_addr.port);
  }
  if (f.req && flooder_open(&f)) {
    pn_channel_kind kind = PN_CHANNEL_ORDERED;
    pn_peer_config pc = PN_PEER_CONFIG_INIT;
    pc.remote = server_addr;
    pc.owner = client_app;
    pc.channel_count = 1;
    pc.kinds = &kind;
    pn_err err = pn_host_connect(client, &pc, &s.peer);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&s.lock);
    while (err == PN_OK && !s.connected &&
           pthread_cond_timedwait(&s.cv, &s.lock, &dl) == 0) {
    }
    bool connected = s.connected;
    pthread_mutex_unlock(&s.lock);
    fl_result warm, quiet, loud;
    if (connected) {
      measure(&s, client_app, rtt_n / 4, tp_n / 4, &warm);
      measure(&s, client_app, rtt_n, tp_n, &quiet);
      /* The same flood at a socket that drops it all: what the flooding
       * thread and the kernel's loopback path cost on their own. */
      fl_result decoy;
      memset(&decoy, 0, sizeof decoy);
      double decoy_rate = 0, rate_reached = 0;
      int decoy_fd = -1;
      uint16_t decoy_port = open_decoy(&decoy_fd);
      bool decoyed =
          decoy_port && flooded_measure(&s, client_app, &f, decoy_port, rtt_n,
                                        tp_n, &decoy, &decoy_rate);
      if (decoy_fd >= 0) {
        close(decoy_fd);
      }
      pn_host_stats h0, hf, h1;
      (void)pn_host_stats_get(server, &h0);
      uint64_t drops0 = socket_kernel_drops(rt, &server_addr);
      /* hf: the kernel's share while still flooded, read by the flood's
       * last measurement; h1 after it. */
      if (flooded_measure(&s, client_app, &f, htons(server_addr.port), rtt_n,
                          tp_n, &loud, &rate_reached)) {
        (void)pn_host_stats_get(server, &hf);
        (void)pn_host_stats_get(server, &h1);
        uint64_t drops1 = socket_kernel_drops(rt, &server_addr);
        pthread_mutex_lock(&s.lock);
        bool lost = s.lost;
        pthread_mutex_unlock(&s.lock);
        printf(
            "{\"bench\":\"flood\",\"impl\":\"peernet\",\"io\":\"%s\","
            "\"source\":\"%s\",\"rate\":%llu,\"limit\":%u,"
            "\"flood_sent_per_s\":%.0f,"
            "\"unloaded_rtt_p50_us\":%.1f,\"flooded_rtt_p50_us\":%.1f,"
            "\"unloaded_rtt_p99_us\":%.1f,\"flooded_rtt_p99_us\":%.1f,"
            "\"flooded_rtt_n\":%llu,"
            "\"unloaded_msgs_per_s\":%.0f,\"flooded_msgs_per_s\":%.0f,"
            "\"decoy_sent_per_s\":%.0f,\"decoy_rtt_p50_us\":%.1f,"
            "\"decoy_msgs_per_s\":%.0f,"
            "\"server_in\":%llu,\"challenges\":%llu,\"limited\":%llu,"
            "\"kernel_drops\":%llu,\"admit_ppm\":%llu,\"connected\":%s}\n",
            pn_runtime_io_name(rt), f.raw ? "raw" : "sockets",
            (unsigned long long)rate, limit, rate_reached, quiet.rtt_p50_us,
            loud.rtt_p50_us, quiet.rtt_p99_us, loud.rtt_p99_us,
            (unsigned long long)loud.rtt_n, quiet.tp_msgs_per_s,
            loud.tp_msgs_per_s, decoyed ? decoy_rate : 0.0,
            decoyed ? decoy.rtt_p50_us : 0.0,
            decoyed ? decoy.tp_msgs_per_s : 0.0,
            (unsigned long long)(h1.datagrams_in - h0.datagrams_in),
            (unsigned long long)(h1.challenges_sent - h0.challenges_sent),
            (unsigned long long)(h1.handshake_limited - h0.handshake_limited),
            (unsigned long long)(drops1 - drops0),
            (unsigned long long)hf.handshake_admit_ppm,
            lost ? "false" : "true");
        rc_out = quiet.ok && !lost ? 0 : 1;
      }
    } else {
      fprintf(stderr, "flood: never connected\n");
    }
  } else {
    fprintf(stderr, "flood: setup failed\n");
  }
  for (uint32_t i = 0; i < f.nfds; i++) {
    close(f.fds[i]);
  }
  pn_host_close(client);
  pn_host_close(server);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_peer_release(s.peer);
  pn_actor_release(server_app);
  pn_actor_release(client_app);
  if (pn_runtime_destroy(rt) != PN_OK) {
    rc_out = 1;
  }
  free(s.samples);
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return rc_out;
}
