/* peernet-bench enet-rtt and raw-rtt: the round-trip anchors.
 *
 * The client (the calling thread) sends one message of `size` bytes, an
 * echo thread sends it back, and the client times the round trip with
 * CLOCK_MONOTONIC: BENCH_RTT_WARMUP untimed round trips, then n timed ones,
 * one message in flight at a time. enet-rtt does it with two ENet 1.3 hosts
 * and reliable packets on channel 0; raw-rtt with two blocking UDP sockets,
 * the floor that any protocol over UDP pays on this machine. Both run over
 * loopback in this process, so their figures can be read next to PeerNet's
 * from the same run.
 *
 * Each message carries its sequence number in its first bytes, so that an
 * echo is matched to the message it answers.
 *
 * Where the scheduler puts the two threads decides the blocking figures:
 * on one CPU each wake-up is a context switch, across two it is a
 * cross-CPU wake-up. On the 2-core VM this was written on, raw-rtt's p50
 * was about 3 us the first way and about 55 us the second, and unpinned
 * runs landed on either. Busy polling (enet-rtt's busy_ figures) needs a
 * CPU for each thread: on one CPU it measures time slices.
 *
 * No step can hang: the connect, every round trip and the disconnect each
 * have STEP_DEADLINE_NS, after which the run fails with a message naming the
 * step. One fixed deadline for the whole run would either trip on a large
 * --n or come too late to help; per-step deadlines notice a stuck message
 * within 5 s and still bound the whole run.
 *
 * Threads: each side touches only its own ENet host or socket. They share
 * the echo thread's stop flag, and its error, which the client reads after
 * pthread_join. */
#include "tests/bench/bench_enet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifdef PEERNET_HAVE_ENET
#include <enet/enet.h>
#endif

#include "tests/bench/bench_stats.h"

#define STEP_DEADLINE_NS (5ull * 1000000000ull)

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes seq into the first bytes of a message: all of them when it is
 * shorter than 8 bytes, which still tells consecutive messages apart. */
static void tag_put(unsigned char *msg, size_t size, uint64_t seq) {
  memcpy(msg, &seq, size < sizeof seq ? size : sizeof seq);
}

/* Whether msg[0..len) is the echo of message seq of a run of size bytes. */
static bool tag_is(const unsigned char *msg, size_t len, size_t size,
                   uint64_t seq) {
  unsigned char want[sizeof seq];
  memcpy(want, &seq, sizeof seq);
  return len == size &&
         memcmp(msg, want, size < sizeof seq ? size : sizeof seq) == 0;
}

typedef struct rtt_summary {
  double p50_us;
  double p99_us;
  double p999_us;
} rtt_summary;

/* Sorts the samples and reads the three percentiles every rtt line has. */
static rtt_summary summarise(uint64_t *rtt_ns, size_t n) {
  bench_sort_ns(rtt_ns, n);
  rtt_summary s = {
      .p50_us = bench_percentile(rtt_ns, n, 0.50) / 1000.0,
      .p99_us = bench_percentile(rtt_ns, n, 0.99) / 1000.0,
      .p999_us = bench_percentile(rtt_ns, n, 0.999) / 1000.0,
  };
  return s;
}

static bool bad_args(const char *bench, uint64_t n, uint32_t size) {
  if (n == 0 || size == 0 || size > BENCH_RTT_MAX_SIZE) {
    fprintf(stderr,
            "peernet-bench: %s: n must be > 0 and size in 1..%u bytes\n", bench,
            BENCH_RTT_MAX_SIZE);
    return true;
  }
  return false;
}

/* --- raw-rtt: blocking UDP sockets --------------------------------------- */

typedef struct raw_echo {
  int fd;
  atomic_bool stop;
  int err;          /* errno of the call that ended the thread early */
  const char *what; /* that call's name, NULL if none failed */
} raw_echo;

/* A UDP socket bound to 127.0.0.1 on a port of the kernel's choosing, with
 * a receive timeout; its address goes to *bound. Returns -1 with errno set
 * on failure. */
static int raw_socket(struct sockaddr_in *bound, long rcvtimeo_us) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) {
    return -1;
  }
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {.tv_sec = 0, .tv_usec = rcvtimeo_us};
  socklen_t len = sizeof *bound;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)bound, &len) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static void *raw_echo_main(void *arg) {
  raw_echo *e = arg;
  unsigned char buf[BENCH_RTT_MAX_SIZE + 1];
  /* Relaxed: the flag publishes nothing; what the client reads afterwards
   * (err, what) is ordered by pthread_join. */
  while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t got =
        recvfrom(e->fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
    if (got < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        continue; /* the receive timeout: look at the flag again */
      }
      e->err = errno;
      e->what = "recvfrom";
      break;
    }
    if (got == 0) {
      continue; /* the client's wake-up at the end of the run */
    }
    struct sockaddr *to = (struct sockaddr *)&from;
    if (sendto(e->fd, buf, (size_t)got, 0, to, flen) < 0) {
      e->err = errno;
      e->what = "sendto";
      break;
    }
  }
  return NULL;
}

/* The client's side of raw-rtt on socket fd; fills rtt[0..n). A datagram
 * with no echo for the socket's receive timeout is taken as lost and sent
 * again, and that round trip is timed from the resend. */
static int raw_ping(int fd, const struct sockaddr_in *server, uint64_t n,
                    uint32_t size, uint64_t *rtt, uint64_t *resent) {
  unsigned char *out = calloc(1, size);
  unsigned char *in = malloc((size_t)size + 1);
  int rc = 1;
  if (!out || !in) {
    fprintf(stderr, "peernet-bench: raw-rtt: out of memory\n");
    goto done;
  }
  for (uint64_t i = 0; i < BENCH_RTT_WARMUP + n; i++) {
    tag_put(out, size, i);
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + STEP_DEADLINE_NS;
    uint64_t t1 = 0;
    bool resend = true;
    for (;;) {
      if (resend && sendto(fd, out, size, 0, (const struct sockaddr *)server,
                           sizeof *server) < 0) {
        perror("peernet-bench: raw-rtt: sendto");
        goto done;
      }
      ssize_t got = recv(fd, in, (size_t)size + 1, 0);
      int saved = errno;
      t1 = now_ns();
      if (got >= 0 && tag_is(in, (size_t)got, size, i)) {
        break;
      }
      if (got < 0 && saved != EAGAIN && saved != EWOULDBLOCK &&
          saved != EINTR) {
        fprintf(stderr, "peernet-bench: raw-rtt: recv: %s\n", strerror(saved));
        goto done;
      }
      if (t1 > deadline) {
        fprintf(stderr,
                "peernet-bench: raw-rtt: round trip %" PRIu64
                " got no echo within 5 s\n",
                i);
        goto done;
      }
      /* Silence for the receive timeout means lost; anything else that
       * came in was a late echo of an earlier message. */
      resend = got < 0 && saved != EINTR;
      if (resend) {
        (*resent)++;
        t0 = now_ns();
      }
    }
    if (i >= BENCH_RTT_WARMUP) {
      rtt[i - BENCH_RTT_WARMUP] = t1 - t0;
    }
  }
  rc = 0;
done:
  free(out);
  free(in);
  return rc;
}

static int raw_run(uint64_t n, uint32_t size, uint64_t *rtt, uint64_t *resent) {
  struct sockaddr_in server_addr;
  struct sockaddr_in client_addr;
  raw_echo e = {.fd = -1};
  atomic_init(&e.stop, false);
  int rc = 1;
  /* 100 ms: the longest the echo thread takes to see the stop flag if the
   * empty wake-up datagram were lost. 200 ms without an echo: the client
   * sends again. */
  e.fd = raw_socket(&server_addr, 100000);
  int cfd = raw_socket(&client_addr, 200000);
  if (e.fd < 0 || cfd < 0) {
    perror("peernet-bench: raw-rtt: socket");
    goto close_fds;
  }
  pthread_t th;
  int err = pthread_create(&th, NULL, raw_echo_main, &e);
  if (err != 0) {
    fprintf(stderr, "peernet-bench: raw-rtt: thread: %s\n", strerror(err));
    goto close_fds;
  }
  rc = raw_ping(cfd, &server_addr, n, size, rtt, resent);
  atomic_store_explicit(&e.stop, true, memory_order_relaxed);
  (void)sendto(cfd, NULL, 0, 0, (struct sockaddr *)&server_addr,
               sizeof server_addr);
  pthread_join(th, NULL);
  if (e.what) {
    fprintf(stderr, "peernet-bench: raw-rtt: echo thread: %s: %s\n", e.what,
            strerror(e.err));
    rc = 1;
  }
close_fds:
  if (e.fd >= 0) {
    close(e.fd);
  }
  if (cfd >= 0) {
    close(cfd);
  }
  return rc;
}

int bench_raw_rtt(uint64_t n, uint32_t size) {
  if (bad_args("raw-rtt", n, size)) {
    return 2;
  }
  uint64_t *rtt = calloc(n, sizeof *rtt);
  if (!rtt) {
    fprintf(stderr, "peernet-bench: raw-rtt: out of memory\n");
    return 1;
  }
  uint64_t resent = 0;
  int rc = raw_run(n, size, rtt, &resent);
  if (rc == 0) {
    if (resent) {
      fprintf(stderr, "peernet-bench: raw-rtt: %" PRIu64 " datagrams resent\n",
              resent);
    }
    rtt_summary s = summarise(rtt, n);
    printf("{\"bench\":\"raw-rtt\",\"impl\":\"udp\",\"size\":%" PRIu32
           ",\"n\":%" PRIu64 ",\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,"
           "\"rtt_p999_us\":%.1f}\n",
           size, n, s.p50_us, s.p99_us, s.p999_us);
  }
  free(rtt);
  return rc;
}

/* --- enet-rtt: ENet 1.3 reliable packets ---------------------------------- */

#ifdef PEERNET_HAVE_ENET

/* How each host is serviced. enet_host_service sends what is queued, then
 * waits for a datagram up to its timeout, and returns as soon as one turns
 * into an event. ENet's documented use is a call with a timeout; with 1 ms
 * both threads sleep in poll() and are woken by the datagram (ENet's clock
 * counts milliseconds, so 1 is the smallest timeout that blocks). That is
 * the headline. A 0 timeout never sleeps: both threads busy-poll
 * recvmsg(), which saves the wake-up at the cost of two full cores; it is
 * measured as well, as ENet's best case. */
enum { SERVICE_BLOCKING_MS = 1, SERVICE_BUSY_MS = 0 };

typedef struct enet_echo {
  ENetHost *host;
  uint32_t timeout_ms;
  atomic_bool stop;
  const char *error; /* what ended the thread early, NULL if nothing */
} enet_echo;

static void *enet_echo_main(void *arg) {
  enet_echo *e = arg;
  /* Relaxed: as in raw_echo_main, pthread_join orders the rest. */
  while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
    ENetEvent ev;
    int r = enet_host_service(e->host, &ev, e->timeout_ms);
    if (r < 0) {
      e->error = "enet_host_service failed";
      break;
    }
    /* Connect and disconnect need nothing from the echo side. */
    if (r == 0 || ev.type != ENET_EVENT_TYPE_RECEIVE) {
      continue;
    }
    /* A fresh packet, as an application would answer. The next
     * enet_host_service call sends it (with the acknowledgement) before it
     * waits, so no enet_host_flush is needed. */
    ENetPacket *p = enet_packet_create(ev.packet->data, ev.packet->dataLength,
                                       ENET_PACKET_FLAG_RELIABLE);
    enet_packet_destroy(ev.packet);
    if (!p) {
      e->error = "enet_packet_create failed";
      break;
    }
    if (enet_peer_send(ev.peer, 0, p) != 0) {
      enet_packet_destroy(p); /* refused: still ours */
      e->error = "enet_peer_send failed";
      break;
    }
  }
  return NULL;
}

/* Services h until it reports an event. Returns 1 with *ev filled, 0 when
 * the deadline passed first, -1 when ENet failed. */
static int enet_wait(ENetHost *h, uint32_t timeout_ms, uint64_t deadline_ns,
                     ENetEvent *ev) {
  for (;;) {
    int r = enet_host_service(h, ev, timeout_ms);
    if (r != 0) {
      return r > 0 ? 1 : -1;
    }
    if (now_ns() > deadline_ns) {
      return 0;
    }
  }
}

static int enet_fail(const char *what, int r) {
  fprintf(stderr, "peernet-bench: enet-rtt: %s: %s\n", what,
          r < 0 ? "enet_host_service failed" : "no answer within 5 s");
  return 1;
}

/* The client's side: connect, n + warm-up round trips, disconnect. */
static int enet_ping(ENetHost *client, const ENetAddress *server,
                     uint32_t timeout_ms, uint64_t n, uint32_t size,
                     uint64_t *rtt) {
  ENetPeer *peer = enet_host_connect(client, server, 1, 0);
  if (!peer) {
    fprintf(stderr, "peernet-bench: enet-rtt: enet_host_connect failed\n");
    return 1;
  }
  ENetEvent ev;
  int r = enet_wait(client, timeout_ms, now_ns() + STEP_DEADLINE_NS, &ev);
  if (r <= 0 || ev.type != ENET_EVENT_TYPE_CONNECT) {
    return enet_fail("connect", r);
  }
  unsigned char *out = calloc(1, size);
  if (!out) {
    fprintf(stderr, "peernet-bench: enet-rtt: out of memory\n");
    return 1;
  }
  int rc = 1;
  for (uint64_t i = 0; i < BENCH_RTT_WARMUP + n; i++) {
    tag_put(out, size, i);
    uint64_t t0 = now_ns();
    ENetPacket *p = enet_packet_create(out, size, ENET_PACKET_FLAG_RELIABLE);
    if (!p || enet_peer_send(peer, 0, p) != 0) {
      if (p) {
        enet_packet_destroy(p);
      }
      fprintf(stderr,
              "peernet-bench: enet-rtt: cannot send round trip %" PRIu64 "\n",
              i);
      goto done;
    }
    /* Reliable and ordered on one channel: the next message the client
     * receives is the echo of this one. */
    r = enet_wait(client, timeout_ms, t0 + STEP_DEADLINE_NS, &ev);
    uint64_t t1 = now_ns();
    if (r <= 0 || ev.type != ENET_EVENT_TYPE_RECEIVE) {
      fprintf(stderr, "peernet-bench: enet-rtt: round trip %" PRIu64 ": %s\n",
              i,
              r < 0    ? "enet_host_service failed"
              : r == 0 ? "no echo within 5 s"
                       : "the server went away");
      goto done;
    }
    bool mine = tag_is(ev.packet->data, ev.packet->dataLength, size, i);
    enet_packet_destroy(ev.packet);
    if (!mine) {
      fprintf(stderr,
              "peernet-bench: enet-rtt: round trip %" PRIu64
              ": the echo does not match\n",
              i);
      goto done;
    }
    if (i >= BENCH_RTT_WARMUP) {
      rtt[i - BENCH_RTT_WARMUP] = t1 - t0;
    }
  }
  /* A clean disconnect, so the echo side sees the end of the session. */
  enet_peer_disconnect(peer, 0);
  uint64_t deadline = now_ns() + STEP_DEADLINE_NS;
  for (;;) {
    r = enet_wait(client, timeout_ms, deadline, &ev);
    if (r <= 0) {
      enet_peer_reset(peer);
      enet_fail("disconnect", r);
      goto done;
    }
    if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
      break;
    }
    if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
      enet_packet_destroy(ev.packet);
    }
  }
  rc = 0;
done:
  free(out);
  return rc;
}

/* One run with both hosts serviced with timeout_ms; fills rtt[0..n). */
static int enet_run(uint32_t timeout_ms, uint64_t n, uint32_t size,
                    uint64_t *rtt) {
  ENetAddress bind_to = {.host = ENET_HOST_ANY, .port = 0};
  ENetAddress server_addr;
  enet_echo e = {.timeout_ms = timeout_ms};
  atomic_init(&e.stop, false);
  ENetHost *client = NULL;
  int rc = 1;
  /* One peer and one channel each; 0 bandwidth means unthrottled. */
  if (enet_address_set_host_ip(&bind_to, "127.0.0.1") != 0 ||
      !(e.host = enet_host_create(&bind_to, 1, 1, 0, 0)) ||
      !(client = enet_host_create(NULL, 1, 1, 0, 0)) ||
      enet_socket_get_address(e.host->socket, &server_addr) != 0) {
    fprintf(stderr, "peernet-bench: enet-rtt: cannot create the hosts\n");
    goto destroy;
  }
  pthread_t th;
  int err = pthread_create(&th, NULL, enet_echo_main, &e);
  if (err != 0) {
    fprintf(stderr, "peernet-bench: enet-rtt: thread: %s\n", strerror(err));
    goto destroy;
  }
  rc = enet_ping(client, &server_addr, timeout_ms, n, size, rtt);
  atomic_store_explicit(&e.stop, true, memory_order_relaxed);
  pthread_join(th, NULL);
  if (e.error) {
    fprintf(stderr, "peernet-bench: enet-rtt: echo thread: %s\n", e.error);
    rc = 1;
  }
destroy:
  if (client) {
    enet_host_destroy(client);
  }
  if (e.host) {
    enet_host_destroy(e.host);
  }
  return rc;
}

int bench_enet_rtt(uint64_t n, uint32_t size) {
  if (bad_args("enet-rtt", n, size)) {
    return 2;
  }
  if (enet_initialize() != 0) {
    fprintf(stderr, "peernet-bench: enet-rtt: enet_initialize failed\n");
    return 1;
  }
  uint64_t *blocking = calloc(n, sizeof *blocking);
  uint64_t *busy = calloc(n, sizeof *busy);
  int rc = 1;
  if (!blocking || !busy) {
    fprintf(stderr, "peernet-bench: enet-rtt: out of memory\n");
  } else {
    rc = enet_run(SERVICE_BLOCKING_MS, n, size, blocking);
    if (rc == 0) {
      rc = enet_run(SERVICE_BUSY_MS, n, size, busy);
    }
  }
  if (rc == 0) {
    rtt_summary b = summarise(blocking, n);
    rtt_summary p = summarise(busy, n);
    ENetVersion v = enet_linked_version();
    printf("{\"bench\":\"enet-rtt\",\"impl\":\"enet\",\"size\":%" PRIu32
           ",\"n\":%" PRIu64 ",\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,"
           "\"rtt_p999_us\":%.1f,\"service_timeout_ms\":%d,"
           "\"busy_rtt_p50_us\":%.1f,\"busy_rtt_p99_us\":%.1f,"
           "\"busy_rtt_p999_us\":%.1f,\"enet\":\"%u.%u.%u\"}\n",
           size, n, b.p50_us, b.p99_us, b.p999_us, SERVICE_BLOCKING_MS,
           p.p50_us, p.p99_us, p.p999_us, ENET_VERSION_GET_MAJOR(v),
           ENET_VERSION_GET_MINOR(v), ENET_VERSION_GET_PATCH(v));
  }
  free(blocking);
  free(busy);
  enet_deinitialize();
  return rc;
}

/* --- enet-throughput: one-way reliable transfer --------------------------- */

/* The client (the calling thread) queues n reliable packets of `size` bytes
 * on channel 0 as fast as ENet takes them; a sink thread receives them,
 * checks that packet k carries sequence number k (ENet's reliable channel
 * promises order and no loss, so any other number is a bug), and notes the
 * time of the last one. The figure runs from just before the first
 * enet_peer_send to that last receive.
 *
 * Giving ENet its best shot, within what an application would do:
 *
 * - Both hosts are created with 0 incoming and outgoing bandwidth, which
 *   ENet reads as unlimited: no bandwidth throttle, and each side's window
 *   (the bytes of reliable data in flight before an acknowledgement) is the
 *   protocol's maximum, ENET_PROTOCOL_MAXIMUM_WINDOW_SIZE (64 KiB); it
 *   cannot be negotiated higher.
 * - The packet throttle scales that window down (to one MTU at worst) when
 *   a round trip comes back slower than the recent ones. Loopback has no
 *   queue to protect, and ENet's millisecond clock makes a busy loopback's
 *   round trips jump between 0 and a few ms, so the client calls
 *   enet_peer_throttle_configure with the largest acceleration and a
 *   deceleration of 0: the throttle stays at its full 32/32 and the window
 *   at 64 KiB throughout. On an idle machine the default throttle stayed
 *   at 32/32 as well and the figures did not change; the setting keeps one
 *   descheduled thread from shrinking the window for the rest of the run.
 * - ENet 1.3.17 keeps every queued command on one list, and each service
 *   call walks the whole list past the window's end. Queueing all n packets
 *   up front would make each call O(n), so the client keeps at most
 *   TP_QUEUE_WINDOWS windows' worth of packets inside ENet (queued or
 *   unacknowledged; a packet's free callback says when ENet lets go of it)
 *   and tops the queue up before every enet_host_service(client, 0) call.
 *   That call sends what the window allows and takes in acknowledgements.
 *   Measured at 64 bytes: 1 window's worth lets the queue run dry between
 *   calls (about 15% slower), 16 windows' worth spends the time walking the
 *   list (about 3.5 times slower). Below 32 bytes a packet count limits
 *   what is in flight before the bytes do: ENet numbers reliable packets in
 *   sequence windows of ENET_PEER_RELIABLE_WINDOW_SIZE (4096) and starts no
 *   new one while the previous one is wholly unacknowledged, so the
 *   client never holds more than TP_QUEUE_WINDOWS sequence windows' worth
 *   either (without that bound, 1-byte packets ran 5 times slower).
 * - The sink busy-polls enet_host_service(sink, 0). Its acknowledgements go
 *   out when a service call finds no event left to hand out, so one
 *   datagram of acknowledgements answers a whole burst. Calling
 *   enet_host_flush every 32 packets to send them sooner was tried and cost
 *   about a quarter of the 64-byte rate: more, smaller datagrams for both
 *   sides.
 * - The MTU stays at ENet's 1400 bytes: 1.3.17 has no call to change it.
 *
 * Both threads spin, so this needs two free CPUs: on one CPU it measures
 * time slices.
 *
 * No step can hang: the connect and the disconnect each have
 * STEP_DEADLINE_NS, and the transfer fails when neither a packet arrives
 * nor an acknowledgement frees one for STEP_DEADLINE_NS.
 *
 * Threads: each side touches only its own host. They share the sink's
 * progress counter, done flag and stop flag (atomics, below), and its
 * error, which the client reads after pthread_join. */

/* Packets the client keeps inside ENet: this many windows' worth. */
enum { TP_QUEUE_WINDOWS = 2 };

typedef struct enet_sink {
  ENetHost *host;
  uint64_t n;
  uint32_t size;
  atomic_bool stop;          /* set by the client to end the thread */
  _Atomic uint64_t received; /* packets in, for the client's stall check */
  atomic_bool done;          /* all n packets are in; t_last_ns is set */
  uint64_t t_last_ns;        /* when packet n - 1 came out of ENet */
  const char *error;         /* what ended the thread early, NULL if none */
  uint64_t error_seq;        /* the packet it concerns */
} enet_sink;

static void *enet_sink_main(void *arg) {
  enet_sink *s = arg;
  uint64_t got = 0;
  bool connected = false;
  /* Relaxed: as in raw_echo_main, pthread_join orders the rest. */
  while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
    ENetEvent ev;
    /* Spin while packets are due; otherwise sleep up to 1 ms at a time. */
    uint32_t timeout_ms = connected && got < s->n ? 0 : 1;
    int r = enet_host_service(s->host, &ev, timeout_ms);
    if (r < 0) {
      s->error = "enet_host_service failed";
      break;
    }
    if (r == 0) {
      continue;
    }
    if (ev.type == ENET_EVENT_TYPE_CONNECT) {
      connected = true;
      continue;
    }
    if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
      if (got < s->n) {
        s->error = "the client went away";
        s->error_seq = got;
      }
      break; /* after the run, the client's clean disconnect */
    }
    bool in_order = got < s->n && tag_is(ev.packet->data, ev.packet->dataLength,
                                         s->size, got);
    enet_packet_destroy(ev.packet);
    if (!in_order) {
      s->error = "packet out of order, resent or of the wrong size";
      s->error_seq = got;
      break;
    }
    got++;
    /* Relaxed: a progress count for the stall check, publishing nothing. */
    atomic_store_explicit(&s->received, got, memory_order_relaxed);
    if (got == s->n) {
      s->t_last_ns = now_ns();
      /* Release: pairs with the client's acquire load of done, which then
       * reads t_last_ns. */
      atomic_store_explicit(&s->done, true, memory_order_release);
    }
  }
  return NULL;
}

/* A packet's free callback: ENet is done with it (acknowledged, or dropped
 * by a reset). userData points at the client's count of such packets. */
static void ENET_CALLBACK tp_packet_freed(ENetPacket *p) {
  (*(uint64_t *)p->userData)++;
}

/* The client's side: connect, send n packets, wait for the sink to have
 * them all, disconnect. *t0_ns is when the first packet was sent; *freed
 * counts the packets ENet has let go of and must outlive the client host
 * (destroying the host frees what is still queued). */
static int tp_send(ENetHost *client, const ENetAddress *server, enet_sink *s,
                   uint64_t *t0_ns, uint64_t *freed) {
  const uint64_t n = s->n;
  const uint32_t size = s->size;
  ENetPeer *peer = enet_host_connect(client, server, 1, 0);
  if (!peer) {
    fprintf(stderr,
            "peernet-bench: enet-throughput: enet_host_connect failed\n");
    return 1;
  }
  ENetEvent ev;
  int r = enet_wait(client, 1, now_ns() + STEP_DEADLINE_NS, &ev);
  if (r <= 0 || ev.type != ENET_EVENT_TYPE_CONNECT) {
    fprintf(stderr, "peernet-bench: enet-throughput: connect: %s\n",
            r < 0 ? "enet_host_service failed" : "no answer within 5 s");
    return 1;
  }
  /* Interval unchanged; acceleration to the full scale at once and no
   * deceleration: the throttle never shrinks the window (see above). */
  enet_peer_throttle_configure(peer, ENET_PEER_PACKET_THROTTLE_INTERVAL,
                               ENET_PEER_PACKET_THROTTLE_SCALE, 0);
  unsigned char *out = calloc(1, size);
  if (!out) {
    fprintf(stderr, "peernet-bench: enet-throughput: out of memory\n");
    return 1;
  }
  /* The packets kept inside ENet: TP_QUEUE_WINDOWS windows, at least 2
   * packets and at most TP_QUEUE_WINDOWS sequence windows. */
  uint64_t window_packets =
      (ENET_PROTOCOL_MAXIMUM_WINDOW_SIZE + size - 1) / size;
  uint64_t cap = window_packets * TP_QUEUE_WINDOWS;
  cap = cap < 2 ? 2 : cap;
  if (cap > TP_QUEUE_WINDOWS * ENET_PEER_RELIABLE_WINDOW_SIZE) {
    cap = TP_QUEUE_WINDOWS * ENET_PEER_RELIABLE_WINDOW_SIZE;
  }
  int rc = 1;
  uint64_t queued = 0;
  uint64_t seen_received = 0;
  uint64_t seen_freed = 0;
  *t0_ns = now_ns();
  uint64_t progress_ns = *t0_ns;
  /* Acquire: pairs with the sink's release store of done. */
  while (!atomic_load_explicit(&s->done, memory_order_acquire)) {
    while (queued < n && queued - *freed < cap) {
      tag_put(out, size, queued);
      ENetPacket *p = enet_packet_create(out, size, ENET_PACKET_FLAG_RELIABLE);
      if (!p) {
        fprintf(stderr,
                "peernet-bench: enet-throughput: enet_packet_create failed\n");
        goto done;
      }
      p->userData = freed;
      p->freeCallback = tp_packet_freed;
      if (enet_peer_send(peer, 0, p) != 0) {
        enet_packet_destroy(p); /* refused: still ours */
        fprintf(stderr,
                "peernet-bench: enet-throughput: cannot send packet %" PRIu64
                "\n",
                queued);
        goto done;
      }
      queued++;
    }
    r = enet_host_service(client, &ev, 0);
    if (r < 0) {
      fprintf(stderr, "peernet-bench: enet-throughput: "
                      "enet_host_service failed\n");
      goto done;
    }
    if (r > 0 && ev.type == ENET_EVENT_TYPE_DISCONNECT) {
      fprintf(stderr, "peernet-bench: enet-throughput: the sink went away\n");
      goto done;
    }
    if (r > 0 && ev.type == ENET_EVENT_TYPE_RECEIVE) {
      enet_packet_destroy(ev.packet); /* the sink sends none */
    }
    /* Relaxed: only compared with its previous value. */
    uint64_t received =
        atomic_load_explicit(&s->received, memory_order_relaxed);
    uint64_t t = now_ns();
    if (received != seen_received || *freed != seen_freed) {
      seen_received = received;
      seen_freed = *freed;
      progress_ns = t;
    } else if (t - progress_ns > STEP_DEADLINE_NS) {
      fprintf(stderr,
              "peernet-bench: enet-throughput: stalled: %" PRIu64 " of %" PRIu64
              " packets received, %" PRIu64
              " acknowledged, no progress for 5 s\n",
              received, n, *freed);
      goto done;
    }
  }
  /* A clean disconnect, so the sink sees the end of the session. Packets
   * still unacknowledged are dropped; the sink has them all already. */
  enet_peer_disconnect(peer, 0);
  uint64_t deadline = now_ns() + STEP_DEADLINE_NS;
  for (;;) {
    r = enet_wait(client, 1, deadline, &ev);
    if (r <= 0) {
      enet_peer_reset(peer);
      fprintf(stderr, "peernet-bench: enet-throughput: disconnect: %s\n",
              r < 0 ? "enet_host_service failed" : "no answer within 5 s");
      goto done;
    }
    if (ev.type == ENET_EVENT_TYPE_DISCONNECT) {
      break;
    }
    if (ev.type == ENET_EVENT_TYPE_RECEIVE) {
      enet_packet_destroy(ev.packet);
    }
  }
  rc = 0;
done:
  free(out);
  return rc;
}

/* One run; on success *seconds is the time from the first send to the last
 * receive. */
static int tp_run(uint64_t n, uint32_t size, double *seconds) {
  ENetAddress bind_to = {.host = ENET_HOST_ANY, .port = 0};
  ENetAddress server_addr;
  enet_sink s = {.n = n, .size = size};
  atomic_init(&s.stop, false);
  atomic_init(&s.received, 0);
  atomic_init(&s.done, false);
  ENetHost *client = NULL;
  uint64_t freed = 0;
  uint64_t t0 = 0;
  int rc = 1;
  /* One peer and one channel each; 0 bandwidth means unlimited. */
  if (enet_address_set_host_ip(&bind_to, "127.0.0.1") != 0 ||
      !(s.host = enet_host_create(&bind_to, 1, 1, 0, 0)) ||
      !(client = enet_host_create(NULL, 1, 1, 0, 0)) ||
      enet_socket_get_address(s.host->socket, &server_addr) != 0) {
    fprintf(stderr,
            "peernet-bench: enet-throughput: cannot create the hosts\n");
    goto destroy;
  }
  pthread_t th;
  int err = pthread_create(&th, NULL, enet_sink_main, &s);
  if (err != 0) {
    fprintf(stderr, "peernet-bench: enet-throughput: thread: %s\n",
            strerror(err));
    goto destroy;
  }
  rc = tp_send(client, &server_addr, &s, &t0, &freed);
  atomic_store_explicit(&s.stop, true, memory_order_relaxed);
  pthread_join(th, NULL);
  if (s.error) {
    fprintf(stderr,
            "peernet-bench: enet-throughput: sink: %s (packet %" PRIu64 ")\n",
            s.error, s.error_seq);
    rc = 1;
  }
  if (rc == 0) {
    *seconds = (double)(s.t_last_ns - t0) / 1e9;
  }
destroy:
  if (client) {
    enet_host_destroy(client);
  }
  if (s.host) {
    enet_host_destroy(s.host);
  }
  return rc;
}

int bench_enet_throughput(uint64_t n, uint32_t size) {
  if (bad_args("enet-throughput", n, size)) {
    return 2;
  }
  if (enet_initialize() != 0) {
    fprintf(stderr, "peernet-bench: enet-throughput: enet_initialize failed\n");
    return 1;
  }
  double s = 0.0;
  int rc = tp_run(n, size, &s);
  if (rc == 0) {
    ENetVersion v = enet_linked_version();
    printf("{\"bench\":\"enet-throughput\",\"impl\":\"enet\",\"size\":%" PRIu32
           ",\"n\":%" PRIu64 ",\"msgs_per_s\":%.1f,\"mbytes_per_s\":%.1f,"
           "\"seconds\":%.6f,\"enet\":\"%u.%u.%u\"}\n",
           size, n, (double)n / s, (double)n * size / s / 1e6, s,
           ENET_VERSION_GET_MAJOR(v), ENET_VERSION_GET_MINOR(v),
           ENET_VERSION_GET_PATCH(v));
  }
  enet_deinitialize();
  return rc;
}

#else

int bench_enet_rtt(uint64_t n, uint32_t size) {
  (void)n;
  (void)size;
  printf("{\"bench\":\"enet-rtt\",\"error\":\"built without ENet\"}\n");
  fprintf(stderr, "peernet-bench: enet-rtt: built without ENet; install "
                  "libenet-dev (pkg-config libenet) and reconfigure\n");
  return 2;
}

int bench_enet_throughput(uint64_t n, uint32_t size) {
  (void)n;
  (void)size;
  printf("{\"bench\":\"enet-throughput\",\"error\":\"built without ENet\"}\n");
  fprintf(stderr, "peernet-bench: enet-throughput: built without ENet; "
                  "install libenet-dev (pkg-config libenet) and reconfigure\n");
  return 2;
}

#endif
