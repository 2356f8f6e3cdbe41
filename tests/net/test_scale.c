/* Scale: N peers (PEERNET_SCALE_PEERS, default 1000; ctest's stress entries
 * run 10,000) connected from one client host to one server host over
 * loopback on one runtime, two channels each (ordered and unreliable).
 * Asserts that every peer connects on both sides without a descriptor per
 * peer; that during an idle window keepalives flow on every peer (each one
 * sent and received datagrams), no peer times out, the process uses well
 * under a core and the workers spend most of the window asleep (an idle
 * runtime sleeps, it does not spin); that the memory per connection stays
 * bounded; that one message on each channel of every peer is answered:
 * the ordered one arrives and is echoed back, the unreliable one arrives
 * or its sender is told it was lost; and that once every peer has
 * disconnected gracefully nothing per peer is left (no actor, timer or
 * message) and the runtime's own leak check passes.
 *
 * The run's seed (printed; PEERNET_TEST_SEED replays it) picks message
 * lengths and the order peers send in. PEERNET_IO=uring or epoll limits
 * the run to one backend, as ctest's entries do. PEERNET_SCALE_SOCKETS
 * sets the sockets per host (default: one per SOCKET_PEERS peers). */
#include <dirent.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tests/net/net_harness.h"
#include "tests/support/rss.h"

/* ThreadSanitizer's shadow memory multiplies the resident memory of a
 * connection several times over: that build skips the memory bound (the
 * figure is still printed). It also connects fewer peers (ctest's
 * environment, tests/CMakeLists.txt). */
#if defined(__SANITIZE_THREAD__)
#define SCALE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SCALE_TSAN 1
#endif
#endif
#ifndef SCALE_TSAN
#define SCALE_TSAN 0
#endif

#define DEFAULT_PEERS 1000u
#define MAX_PEERS 80000u
#define SOCKET_PEERS 2500u /* peers per socket pair by default */
#define MAX_SOCKETS 32u    /* a host's limit */
/* Handshakes in progress at once, at most: a burst of 1,000 padded
 * handshakes overflows a stock socket buffer and then waits for the 250 ms
 * connect retry. */
#define OUTSTANDING 250u
#define BATCH 100u /* peers sending at once in the exchange */
#define MAX_PAYLOAD 200u
#define APP_REASON 7u /* the disconnect reason the client gives */
/* Socket buffers as a stock kernel caps them (net.core.rmem_max and
 * wmem_max, 208 KiB), whatever this machine allows: the run here is the
 * run on a default CI machine. */
#define SOCKET_BUF_BYTES 212992u
/* Bounds, generous for shared and noisy machines. Spinning workers would
 * burn about a core each and never sleep; the measured figures are near
 * 25% of a core for 1,000 peers, 90% of the time asleep and 18 KB per
 * connection (both ends). Under ThreadSanitizer every atomic and lock
 * costs many times more: 250 peers took 49-57% of a core in the same
 * hour both before and after the change of 2026-12-07 (per-socket
 * recovery) that first crossed 50%, asleep 72-77%, so there the CPU bound
 * is 90% (spinning would still be about 200%). */
#define MAX_IDLE_CPU (SCALE_TSAN ? 0.9 : 0.5)
#define MIN_ASLEEP 0.5
#define MAX_BYTES_PER_PEER (64.0 * 1024.0)
#define MAX_EXTRA_FDS 8

typedef struct side_counts {
  uint64_t connected, disconnected, packets, ordered, acked, lost_unreliable,
      lost_ordered, bad, wrong_reason;
} side_counts;

/* The state of each owner actor: the shared record and its side. */
typedef struct owner {
  struct scale *s;
  bool server;
} owner;

/* What both owner actors saw, under one lock; the test thread waits on
 * the condition variable for counts to reach a value before a deadline. */
typedef struct scale {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  uint64_t n;
  side_counts client, server;
  uint64_t disconnects; /* both sides */
  pn_peer **accepted;   /* server side: every accepted peer, held */
  uint8_t *got_server;  /* per peer index: bit c = its channel c arrived */
  uint8_t *got_client;  /* the same for the echo */
  uint8_t *lost_out;    /* per peer index: its unreliable send was LOST */
  owner server_owner, client_owner;
} scale;

static double seconds(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d) {
    while (readdir(d)) {
      n++;
    }
    closedir(d);
  }
  return n;
}

/* Time the workers spent asleep in their idle wait, in all. */
static uint64_t workers_idle_ns(pn_runtime *rt, uint64_t *wakeups) {
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  uint64_t ns = 0;
  *wakeups = 0;
  for (size_t i = 0; i < snap->worker_count; i++) {
    ns += snap->workers[i].idle_ns;
    *wakeups += snap->workers[i].wakeups;
  }
  pn_snapshot_free(snap);
  return ns;
}

/* Records one event: peer packets are checked (id = the client's index of
 * the peer, then bytes derived from it), marked and, on the server,
 * echoed on the channel they came on. */
static void owner_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  owner *o = state;
  scale *s = o->s;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  pthread_mutex_lock(&s->lock);
  side_counts *c = o->server ? &s->server : &s->client;
  uint64_t mine = (uint64_t)(uintptr_t)ev.user - 1; /* client side only */
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (o->server && c->connected < s->n) {
      pn_peer_hold(ev.peer);
      s->accepted[c->connected] = ev.peer;
    }
    c->connected++;
    break;
  case PN_MSG_PEER_DISCONNECTED:
    if (ev.reason != APP_REASON || ev.remote != o->server) {
      c->wrong_reason++;
    }
    c->disconnected++;
    s->disconnects++;
    break;
  case PN_MSG_PEER_PACKET: {
    uint64_t id = 0;
    uint8_t bit = (uint8_t)(1u << ev.channel);
    uint8_t *got = o->server ? s->got_server : s->got_client;
    if (!net_check(ev.data, ev.len, &id) || id >= s->n || ev.channel > 1 ||
        (!o->server && id != mine) || (got[id] & bit)) {
      c->bad++;
    } else {
      got[id] |= bit;
    }
    c->packets++;
    c->ordered += ev.channel == 0;
    if (o->server) {
      pn_err err = pn_channel_send_packet(ev.ch, ev.packet, NULL);
      if (err != PN_OK) {
        c->bad++;
      }
    }
    break;
  }
  case PN_MSG_PEER_ACKED:
    c->acked++;
    break;
  case PN_MSG_PEER_LOST:
    if (ev.kind != PN_CHANNEL_UNRELIABLE) {
      c->lost_ordered++;
    } else {
      c->lost_unreliable++;
      if (!o->server && mine < s->n) {
        s->lost_out[mine] = 1;
      }
    }
    break;
  default:
    break;
  }
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

/* Waits until done(s, want) holds (checked under the lock) or the
 * monotonic clock passes deadline_ms; true when it held. */
static bool wait_until(scale *s, bool (*done)(const scale *, uint64_t),
                       uint64_t want, uint64_t deadline_ms) {
  struct timespec dl = {(time_t)(deadline_ms / 1000),
                        (long)(deadline_ms % 1000) * 1000000};
  pthread_mutex_lock(&s->lock);
  while (!done(s, want) && pthread_cond_timedwait(&s->cv, &s->lock, &dl) == 0) {
  }
  bool ok = done(s, want);
  pthread_mutex_unlock(&s->lock);
  return ok;
}

static bool client_connected(const scale *s, uint64_t want) {
  return s->client.connected >= want;
}

static bool both_connected(const scale *s, uint64_t want) {
  return s->client.connected >= want && s->server.connected >= want;
}

static bool any_disconnected(const scale *s, uint64_t want) {
  return s->disconnects >= want;
}

static bool both_disconnected(const scale *s, uint64_t want) {
  return s->client.disconnected >= want && s->server.disconnected >= want;
}

/* The first `want` peers (in sending order) are answered: their ordered
 * messages came back, each message they sent was acknowledged or reported
 * lost, and so was each echo the server sent. */
static bool exchange_settled(const scale *s, uint64_t want) {
  return s->client.ordered >= want &&
         s->client.acked + s->client.lost_unreliable >= 2 * want &&
         s->server.acked + s->server.lost_unreliable >= s->server.packets;
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  if (!v || !*v) {
    return dflt;
  }
  char *end = NULL;
  unsigned long long x = strtoull(v, &end, 10);
  if (!end || *end) {
    fail_msg("%s=%s is not a number", name, v);
  }
  return x;
}

static side_counts counts_of(scale *s, bool server) {
  pthread_mutex_lock(&s->lock);
  side_counts c = server ? s->server : s->client;
  pthread_mutex_unlock(&s->lock);
  return c;
}

/* Prints the socket counters that explain a missing datagram. */
static void print_sockets(pn_runtime *rt) {
  pn_snapshot *snap = NULL;
  if (pn_snapshot_take(rt, &snap) != PN_OK) {
    return;
  }
  for (size_t i = 0; i < snap->socket_count; i++) {
    const pn_socket_stats *st = &snap->sockets[i].stats;
    fprintf(stderr,
            "# socket %s: in %" PRIu64 " out %" PRIu64 " kernel_drops %" PRIu64
            " send_drops %" PRIu64 " send_errors %" PRIu64 " enobufs %" PRIu64
            "\n",
            snap->sockets[i].local, st->datagrams_in, st->datagrams_out,
            st->kernel_drops, st->send_drops, st->send_errors, st->enobufs);
  }
  pn_snapshot_free(snap);
}

static void fail_not_connected(scale *s, pn_runtime *rt, pn_host *server,
                               pn_host *client, uint64_t made) {
  pn_host_stats a, b;
  PN_ASSERT_OK(pn_host_stats_get(server, &a));
  PN_ASSERT_OK(pn_host_stats_get(client, &b));
  side_counts cc = counts_of(s, false), sc = counts_of(s, true);
  print_sockets(rt);
  fail_msg("connected %" PRIu64 " client / %" PRIu64 " server of %" PRIu64
           " (%" PRIu64 " started, %" PRIu64 " / %" PRIu64
           " disconnected); server: in %" PRIu64 " handshake_dropped %" PRIu64
           " challenges %" PRIu64 " accepted %" PRIu64 " rejected %" PRIu64
           "; client: in %" PRIu64 " unknown %" PRIu64,
           cc.connected, sc.connected, s->n, made, cc.disconnected,
           sc.disconnected, a.datagrams_in, a.handshake_dropped,
           a.challenges_sent, a.accepted, a.rejected, b.datagrams_in,
           b.unknown_connection);
}

static void connected_peers_idle_exchange_and_leave(void **state) {
  (void)state;
  const uint64_t n = env_u64("PEERNET_SCALE_PEERS", DEFAULT_PEERS);
  if (n < 1 || n > MAX_PEERS) {
    fail_msg("PEERNET_SCALE_PEERS=%" PRIu64 ": expected 1..%u", n, MAX_PEERS);
  }
  const uint64_t nsock64 =
      env_u64("PEERNET_SCALE_SOCKETS", (n + SOCKET_PEERS - 1) / SOCKET_PEERS);
  if (nsock64 < 1 || nsock64 > MAX_SOCKETS) {
    fail_msg("%" PRIu64 " sockets per host: expected 1..%u", nsock64,
             MAX_SOCKETS);
  }
  const uint32_t nsock = (uint32_t)nsock64;
  /* Keepalives every n/5 ms (at least 200 ms): a ping and its
   * acknowledgement per peer per interval, about 10,000 datagrams a second
   * whatever n. The idle window holds at least three intervals, so every
   * peer pings or answers a ping at least twice in it, and ends half an
   * interval off their rhythm: peers that connected together ping
   * together, and the exchange that follows should not start on top of a
   * wave of keepalives. */
  const uint64_t keepalive_ms = n / 5 > 200 ? n / 5 : 200;
  const uint64_t intervals = 3 * keepalive_ms > 2000 ? 3 : 2000 / keepalive_ms;
  const uint64_t idle_ms = intervals * keepalive_ms + keepalive_ms / 2;
  const uint64_t wait_ms = 30000 + n * 5; /* per phase */
  uint64_t seed = pn_test_seed();

  /* On the heap: a failed assertion leaves the runtime running, and its
   * actors must not write into a returned stack frame. */
  scale *s = calloc(1, sizeof *s);
  assert_non_null(s);
  pthread_mutex_init(&s->lock, NULL);
  pthread_condattr_t cattr;
  pthread_condattr_init(&cattr);
  pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &cattr);
  pthread_condattr_destroy(&cattr);
  s->n = n;
  s->accepted = calloc(n, sizeof *s->accepted);
  s->got_server = calloc(n, 1);
  s->got_client = calloc(n, 1);
  s->lost_out = calloc(n, 1);
  pn_peer **peers = calloc(n, sizeof *peers);
  pn_peer_stats *before = calloc(2 * n, sizeof *before);
  uint64_t *order = calloc(n, sizeof *order);
  assert_true(s->accepted && s->got_server && s->got_client && s->lost_out &&
              peers && before && order);

  struct rlimit nofile;
  assert_int_equal(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  pn_runtime *rt = net_runtime();
  s->server_owner = (owner){s, true};
  s->client_owner = (owner){s, false};
  pn_actor *sa =
      pn_test_spawn(rt, "scale-server", owner_handler, &s->server_owner, -1);
  pn_actor *ca =
      pn_test_spawn(rt, "scale-client", owner_handler, &s->client_owner, -1);
  pn_socket_config sock[MAX_SOCKETS];
  for (uint32_t k = 0; k < nsock; k++) {
    sock[k] = (pn_socket_config)PN_SOCKET_CONFIG_INIT;
    sock[k].host = "127.0.0.1";
    sock[k].rcvbuf_bytes = sock[k].sndbuf_bytes = SOCKET_BUF_BYTES;
  }
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = sock;
  hc.socket_count = nsock;
  hc.max_peers = (uint32_t)n;
  hc.keepalive_us = keepalive_ms * 1000;
  hc.connect_timeout_us = wait_ms * 1000;
  hc.home_worker = 0;
  hc.accept_owner = sa;
  pn_host *server = NULL, *client = NULL;
  PN_ASSERT_OK(pn_host_open(rt, &hc, &server));
  hc.home_worker = 1;
  hc.accept_owner = NULL;
  PN_ASSERT_OK(pn_host_open(rt, &hc, &client));
  pn_runtime_stats base;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &base));

  /* --- connect: at most OUTSTANDING handshakes at once; peer i goes from
   * the client's socket i % nsock to the server's ----------------------- */
  pn_addr remotes[MAX_SOCKETS];
  for (uint32_t k = 0; k < nsock; k++) {
    PN_ASSERT_OK(pn_host_local_addr(server, k, &remotes[k]));
  }
  pn_channel_kind kinds[2] = {PN_CHANNEL_ORDERED, PN_CHANNEL_UNRELIABLE};
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.owner = ca;
  pc.channel_count = 2;
  pc.kinds = kinds;
  int fds0 = open_fds();
  long rss0 = pn_rss_bytes();
  double t0 = seconds(CLOCK_MONOTONIC);
  uint64_t deadline = net_now_ms() + wait_ms;
  for (uint64_t i = 0; i < n; i++) {
    if (i >= OUTSTANDING &&
        !wait_until(s, client_connected, i - OUTSTANDING, deadline)) {
      fail_not_connected(s, rt, server, client, i);
    }
    pc.user = (void *)(uintptr_t)(i + 1);
    pc.remote = remotes[i % nsock];
    pc.sockets_mask = 1u << (i % nsock);
    PN_ASSERT_OK(pn_host_connect(client, &pc, &peers[i]));
  }
  /* The limit holds: one more is refused at once. */
  PN_ASSERT_ERR(PN_EAGAIN, pn_host_connect(client, &pc, &(pn_peer *){NULL}));
  if (!wait_until(s, both_connected, n, deadline)) {
    fail_not_connected(s, rt, server, client, n);
  }
  double connect_s = seconds(CLOCK_MONOTONIC) - t0;
  long rss1 = pn_rss_bytes();
  int fds1 = open_fds();
  pn_host_stats hs;
  PN_ASSERT_OK(pn_host_stats_get(server, &hs));
  assert_int_equal(hs.peers, n);
  assert_int_equal(hs.accepted, n);
  PN_ASSERT_OK(pn_host_stats_get(client, &hs));
  assert_int_equal(hs.peers, n);
  double per_peer = (double)(rss1 - rss0) / (double)n;
  fprintf(stderr,
          "# %" PRIu64 " peers (%s, %u socket%s per host): connected in "
          "%.2f s; %.0f bytes per connection (both ends, RSS); %d "
          "descriptors before, %d after (RLIMIT_NOFILE %llu/%llu)\n",
          n, pn_runtime_io_name(rt), nsock, nsock > 1 ? "s" : "", connect_s,
          per_peer, fds0, fds1, (unsigned long long)nofile.rlim_cur,
          (unsigned long long)nofile.rlim_max);
  /* Peers share the hosts' sockets: no descriptor per peer. */
  assert_true(fds1 - fds0 <= MAX_EXTRA_FDS);
  if (!SCALE_TSAN && per_peer > MAX_BYTES_PER_PEER) {
    fail_msg("%.0f bytes per connection, above %.0f", per_peer,
             MAX_BYTES_PER_PEER);
  }

  /* --- idle: keepalives only ------------------------------------------- */
  for (uint64_t i = 0; i < n; i++) {
    PN_ASSERT_OK(pn_peer_stats_get(peers[i], &before[i]));
    PN_ASSERT_OK(pn_peer_stats_get(s->accepted[i], &before[n + i]));
  }
  uint64_t wake0 = 0, wake1 = 0;
  uint64_t asleep0 = workers_idle_ns(rt, &wake0);
  double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  double w0 = seconds(CLOCK_MONOTONIC);
  /* The idle window is a wait for a disconnect that must not come. */
  bool dropped = wait_until(s, any_disconnected, 1, net_now_ms() + idle_ms);
  double cpu1 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  double wall = seconds(CLOCK_MONOTONIC) - w0;
  uint64_t asleep1 = workers_idle_ns(rt, &wake1);
  uint64_t out_sum = 0, in_sum = 0, acks_sum = 0, lost_sum = 0;
  uint64_t min_in = UINT64_MAX;
  for (uint64_t i = 0; i < 2 * n; i++) {
    pn_peer *p = i < n ? peers[i] : s->accepted[i - n];
    pn_peer_stats st;
    PN_ASSERT_OK(pn_peer_stats_get(p, &st));
    const pn_peer_stats *b = &before[i];
    if (st.state != PN_PEER_CONNECTED || st.datagrams_in <= b->datagrams_in ||
        st.datagrams_out <= b->datagrams_out) {
      fail_msg("%s peer %" PRIu64 " over %.2f s idle: state %d, datagrams in "
               "%" PRIu64 " -> %" PRIu64 ", out %" PRIu64 " -> %" PRIu64,
               i < n ? "client" : "server", i % n, wall, (int)st.state,
               b->datagrams_in, st.datagrams_in, b->datagrams_out,
               st.datagrams_out);
    }
    uint64_t in = st.datagrams_in - b->datagrams_in;
    min_in = in < min_in ? in : min_in;
    in_sum += in;
    out_sum += st.datagrams_out - b->datagrams_out;
    acks_sum += st.acks_only - b->acks_only;
    lost_sum += st.datagrams_lost - b->datagrams_lost;
  }
  double cpu = (cpu1 - cpu0) / wall;
  double asleep =
      (double)(asleep1 - asleep0) / 1e9 / wall / pn_runtime_workers(rt);
  fprintf(stderr,
          "# idle %.2f s, keepalive %" PRIu64 " ms: %.1f%% of one core, "
          "workers asleep %.0f%% of it (%.0f wakeups/s); %.0f datagrams/s "
          "out (%.0f acknowledgement-only), %.0f in (at least %" PRIu64
          " per peer), %" PRIu64 " declared lost\n",
          wall, keepalive_ms, 100.0 * cpu, 100.0 * asleep,
          (double)(wake1 - wake0) / wall, (double)out_sum / wall,
          (double)acks_sum / wall, (double)in_sum / wall, min_in, lost_sum);
  assert_false(dropped);
  if (cpu > MAX_IDLE_CPU || asleep < MIN_ASLEEP) {
    print_sockets(rt);
    fail_msg("idle runtime: %.1f%% of one core (bound %.0f%%), asleep %.0f%% "
             "(bound %.0f%%)",
             100.0 * cpu, 100.0 * MAX_IDLE_CPU, 100.0 * asleep,
             100.0 * MIN_ASLEEP);
  }

  /* --- one message per channel of every peer, echoed back --------------- */
  for (uint64_t i = 0; i < n; i++) {
    order[i] = i;
  }
  uint64_t rng = seed;
  for (uint64_t i = n - 1; i > 0; i--) {
    uint64_t j = pn_test_rand(&rng) % (i + 1);
    uint64_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  uint8_t buf[MAX_PAYLOAD];
  double x0 = seconds(CLOCK_MONOTONIC);
  deadline = net_now_ms() + wait_ms;
  for (uint64_t start = 0; start < n; start += BATCH) {
    uint64_t end = start + BATCH < n ? start + BATCH : n;
    for (uint64_t k = start; k < end; k++) {
      uint64_t i = order[k];
      for (uint32_t ch = 0; ch < 2; ch++) {
        size_t len = 8 + pn_test_rand(&rng) % (MAX_PAYLOAD - 7);
        net_fill(buf, len, i);
        PN_ASSERT_OK(
            pn_channel_send(pn_peer_channel(peers[i], ch), buf, len, NULL));
      }
    }
    /* A batch at a time, so the sockets' buffers do not overflow. */
    if (!wait_until(s, exchange_settled, end, deadline)) {
      print_sockets(rt);
      side_counts cc = counts_of(s, false), sc = counts_of(s, true);
      fail_msg("after %" PRIu64 " peers sent: server got %" PRIu64 " (%" PRIu64
               " resolved of its echoes), client got %" PRIu64
               " ordered echoes (%" PRIu64 " of its sends resolved)",
               end, sc.packets, sc.acked + sc.lost_unreliable, cc.ordered,
               cc.acked + cc.lost_unreliable);
    }
  }
  double exchange_s = seconds(CLOCK_MONOTONIC) - x0;

  /* --- graceful disconnect of every peer; nothing per peer is left ------ */
  double d0 = seconds(CLOCK_MONOTONIC);
  deadline = net_now_ms() + wait_ms;
  /* In waves, as the exchange: a peer retries its disconnect only eight
   * times, one RTO apart (tens of milliseconds on loopback), so when all
   * 10,000 leave at once whole retry waves overflow the server's socket
   * buffers and some server-side peers never hear of it (they time out
   * ten seconds later instead). */
  for (uint64_t start = 0; start < n; start += BATCH) {
    uint64_t end = start + BATCH < n ? start + BATCH : n;
    for (uint64_t k = start; k < end; k++) {
      PN_ASSERT_OK(pn_peer_disconnect(peers[order[k]], APP_REASON));
    }
    if (!wait_until(s, both_disconnected, end, deadline)) {
      print_sockets(rt);
      side_counts cc = counts_of(s, false), sc = counts_of(s, true);
      fail_msg("after %" PRIu64 " disconnects: client saw %" PRIu64
               ", server %" PRIu64,
               end, cc.disconnected, sc.disconnected);
    }
  }
  /* The peers' and channels' actors stop after their last event: wait for
   * the runtime to be back where it was before the first connect. */
  pn_runtime_stats rs;
  pn_host_stats hs_server, hs_client;
  for (;;) {
    PN_ASSERT_OK(pn_runtime_stats_get(rt, &rs));
    PN_ASSERT_OK(pn_host_stats_get(server, &hs_server));
    PN_ASSERT_OK(pn_host_stats_get(client, &hs_client));
    if ((rs.actors_alive == base.actors_alive &&
         rs.timers_active == base.timers_active && hs_server.peers == 0 &&
         hs_client.peers == 0) ||
        net_now_ms() > deadline) {
      break;
    }
    sched_yield();
  }
  fprintf(stderr,
          "# disconnected in %.2f s: %" PRIu64 " actors and %" PRIu64
          " timers alive (%" PRIu64 " and %" PRIu64 " before connecting)\n",
          seconds(CLOCK_MONOTONIC) - d0, rs.actors_alive, rs.timers_active,
          base.actors_alive, base.timers_active);
  assert_int_equal(hs_server.peers, 0);
  assert_int_equal(hs_client.peers, 0);
  assert_int_equal(rs.actors_alive, base.actors_alive);
  assert_int_equal(rs.timers_active, base.timers_active);

  /* Every event is in: check the exchange. Ordered messages arrived and
   * came back; an unreliable message that did not arrive was reported
   * lost to its sender, and so was every echo that did not come back. */
  side_counts cc = counts_of(s, false), sc = counts_of(s, true);
  uint64_t first_bad = n, both_ways = 0, lost_out = 0, lost_back = 0;
  uint64_t told_needlessly = 0;
  pthread_mutex_lock(&s->lock);
  for (uint64_t i = 0; i < n; i++) {
    bool out = s->got_server[i] & 2, back = s->got_client[i] & 2;
    if (first_bad == n && (!(s->got_server[i] & s->got_client[i] & 1) ||
                           (!out && !s->lost_out[i]))) {
      first_bad = i;
    }
    both_ways += out && back;
    lost_out += !out;
    lost_back += out && !back;
    told_needlessly += out && s->lost_out[i];
  }
  uint8_t bad_server = first_bad < n ? s->got_server[first_bad] : 0;
  uint8_t bad_client = first_bad < n ? s->got_client[first_bad] : 0;
  uint8_t bad_lost = first_bad < n ? s->lost_out[first_bad] : 0;
  pthread_mutex_unlock(&s->lock);
  fprintf(stderr,
          "# exchange: %" PRIu64 " messages each way in %.2f s; unreliable: "
          "%" PRIu64 " arrived and came back, %" PRIu64 " lost out, %" PRIu64
          " lost back (%" PRIu64 " and %" PRIu64 " reported lost, %" PRIu64
          " of them needlessly on the way out)\n",
          2 * n, exchange_s, both_ways, lost_out, lost_back, cc.lost_unreliable,
          sc.lost_unreliable, told_needlessly);
  if (first_bad < n) {
    fail_msg("peer %" PRIu64 ": channels 0x%x arrived, 0x%x came back, "
             "unreliable reported lost: %d",
             first_bad, bad_server, bad_client, bad_lost);
  }
  assert_true(lost_back <= sc.lost_unreliable);
  assert_true(both_ways >= n / 2); /* loopback loses little */
  assert_int_equal(cc.ordered, n);
  assert_int_equal(sc.ordered, n);
  assert_int_equal(sc.bad + cc.bad, 0);
  assert_int_equal(sc.lost_ordered + cc.lost_ordered, 0);
  /* Each message sent was resolved exactly once. */
  assert_int_equal(cc.acked + cc.lost_unreliable, 2 * n);
  assert_int_equal(sc.acked + sc.lost_unreliable, sc.packets);
  assert_int_equal(cc.disconnected, n);
  assert_int_equal(sc.disconnected, n);
  if (cc.wrong_reason + sc.wrong_reason) {
    fail_msg("%" PRIu64 " client and %" PRIu64 " server peers closed with "
             "another reason than the client's (or the wrong side)",
             cc.wrong_reason, sc.wrong_reason);
  }

  for (uint64_t i = 0; i < n; i++) {
    pn_peer_release(peers[i]);
    pn_peer_release(s->accepted[i]);
  }
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_actor_release(sa);
  pn_actor_release(ca);
  pn_test_runtime_end(rt);
  free(order);
  free(before);
  free(peers);
  free(s->lost_out);
  free(s->got_client);
  free(s->got_server);
  free(s->accepted);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(connected_peers_idle_exchange_and_leave),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
