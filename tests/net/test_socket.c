/* UDP socket actors over loopback, on every I/O backend this build has:
 * echo on IPv4, IPv6 and dual-stack; a 10,000-datagram burst where every
 * datagram is received or counted as dropped; the link conditioner on a
 * live socket; close with traffic in flight; the error cases. */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tests/support/test_support.h"

static pn_io_backend backend;

static const char *backend_name(void) {
  return backend == PN_IO_URING ? "uring" : "epoll";
}

static pn_runtime *net_runtime(void) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.io = backend;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  assert_string_equal(pn_runtime_io_name(rt), backend_name());
  return rt;
}

/* An owner that echoes every datagram back through its socket, or counts
 * and checks them. */
typedef struct peer {
  pn_socket *sock;
  bool echo;
  _Atomic uint64_t got;
  _Atomic uint64_t bad;
  _Atomic uint64_t closed;
  pn_addr last_from;
  pn_test_latch *latch; /* counts down per datagram when set */
  pn_test_latch *closed_latch;
} peer;

/* Asks a peer actor to close its own socket: an actor that uses its socket
 * handle must be the one that gives it back, or it could send on a handle
 * another thread has already closed. */
#define CLOSE_YOUR_SOCKET 1u

static void peer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  peer *p = state;
  uint32_t type = pn_msg_type(msg);
  if (type == PN_MSG_SOCKET_CLOSED) {
    atomic_fetch_add(&p->closed, 1);
    if (p->closed_latch) {
      pn_test_latch_count_down(p->closed_latch);
    }
    return;
  }
  if (type == CLOSE_YOUR_SOCKET) {
    pn_socket_close(p->sock);
    p->sock = NULL;
    return;
  }
  if (type != PN_MSG_DATAGRAM) {
    return;
  }
  pn_datagram d;
  PN_ASSERT_OK(pn_msg_datagram(msg, &d));
  p->last_from = d.from;
  if (p->echo && p->sock) {
    pn_err err = pn_socket_send(p->sock, &d.from, d.data, d.len);
    assert_true(err == PN_OK || err == PN_ECLOSED);
  } else {
    uint32_t v;
    if (d.len != 64) {
      atomic_fetch_add(&p->bad, 1);
    } else {
      memcpy(&v, d.data, sizeof v);
      const unsigned char *b = d.data;
      for (size_t i = 4; i < 64; i++) {
        if (b[i] != (unsigned char)(v + i)) {
          atomic_fetch_add(&p->bad, 1);
          break;
        }
      }
    }
  }
  atomic_fetch_add(&p->got, 1);
  if (p->latch) {
    pn_test_latch_count_down(p->latch);
  }
}

static pn_actor *spawn_peer(pn_runtime *rt, peer *p) {
  return pn_test_spawn(rt, "peer", peer_handler, p, -1);
}

static bool no_offload;

/* The end of every test: give back the owners' handles (after the test's
 * own shutdown, since the sockets borrowed them), then prove nothing
 * leaked. */
static void release_and_end(pn_runtime *rt, pn_actor *a, pn_actor *b) {
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  pn_actor_release(a);
  pn_actor_release(b);
  pn_test_runtime_end(rt);
}

static pn_err open_on(pn_runtime *rt, pn_actor *owner, const char *host,
                      pn_socket **out) {
  pn_socket_config cfg = PN_SOCKET_CONFIG_INIT;
  cfg.host = host;
  cfg.owner = owner;
  cfg.no_offload = no_offload;
  return pn_socket_open(rt, &cfg, out);
}

static void fill(unsigned char *buf, uint32_t v) {
  memcpy(buf, &v, sizeof v);
  for (size_t i = 4; i < 64; i++) {
    buf[i] = (unsigned char)(v + i);
  }
}

/* Client sends n datagrams to the echo server; all must come back intact
 * (loopback with 4 MiB buffers and n small). */
static void echo_on(const char *server_host, const char *client_host) {
  pn_runtime *rt = net_runtime();
  enum { N = 500 };
  pn_test_latch back;
  pn_test_latch_init(&back, N);
  pn_test_latch closed;
  pn_test_latch_init(&closed, 2);
  peer server = {.echo = true, .closed_latch = &closed};
  peer client = {.latch = &back, .closed_latch = &closed};
  pn_actor *sa = spawn_peer(rt, &server);
  pn_actor *ca = spawn_peer(rt, &client);
  pn_err err = open_on(rt, sa, server_host, &server.sock);
  if (err == PN_EADDRNOTAVAIL) {
    /* No IPv6 loopback on this machine. */
    PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
    release_and_end(rt, sa, ca);
    pn_test_latch_fini(&back);
    pn_test_latch_fini(&closed);
    skip();
  }
  PN_ASSERT_OK(err);
  PN_ASSERT_OK(open_on(rt, ca, client_host, &client.sock));
  pn_addr to;
  PN_ASSERT_OK(pn_socket_local_addr(server.sock, &to));
  assert_true(to.port != 0);
  if (server_host && server_host[0] == ':') {
    assert_int_equal(to.family, PN_AF_INET6);
  }
  if (!server_host || !*server_host) {
    /* Dual stack bound to any: reach it over IPv4 loopback. */
    PN_ASSERT_OK(pn_addr_parse("127.0.0.1:0", &to));
    pn_addr bound;
    PN_ASSERT_OK(pn_socket_local_addr(server.sock, &bound));
    to.port = bound.port;
  }
  unsigned char buf[64];
  for (uint32_t i = 0; i < N; i++) {
    fill(buf, i);
    PN_ASSERT_OK(pn_socket_send(client.sock, &to, buf, sizeof buf));
  }
  assert_true(pn_test_latch_wait(&back, 20000));
  assert_int_equal(atomic_load(&client.bad), 0);
  pn_addr client_addr;
  PN_ASSERT_OK(pn_socket_local_addr(client.sock, &client_addr));
  assert_true(pn_addr_equal(&server.last_from, &client_addr) ||
              server.last_from.port == client_addr.port);
  pn_socket_stats st;
  PN_ASSERT_OK(pn_socket_stats_get(server.sock, &st));
  assert_int_equal(st.datagrams_in, N);
  assert_int_equal(st.bytes_in, N * 64);
  pn_socket_close(server.sock);
  pn_socket_close(client.sock);
  /* Two-phase close: each owner hears when its socket is gone. */
  assert_true(pn_test_latch_wait(&closed, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&server.closed), 1);
  assert_int_equal(atomic_load(&client.closed), 1);
  release_and_end(rt, sa, ca);
  pn_test_latch_fini(&back);
  pn_test_latch_fini(&closed);
}

static void echo_ipv4(void **state) {
  (void)state;
  echo_on("127.0.0.1", "127.0.0.1");
}

static void echo_ipv6(void **state) {
  (void)state;
  echo_on("::1", "::1");
}

static void echo_dual_stack(void **state) {
  (void)state;
  echo_on("", "127.0.0.1");
}

/* Polls a condition with a deadline (no sleeping): used where the only
 * signal is a counter in the socket stats. */
static void burst_checked(void);

static void burst_is_received_or_counted(void **state) {
  (void)state;
  no_offload = false;
  burst_checked();
}

static void burst_without_offload_counts_exactly(void **state) {
  (void)state;
  no_offload = true;
  burst_checked();
  no_offload = false;
}

static bool wait_until(bool (*cond)(void *), void *ctx, uint64_t timeout_ms) {
  struct timespec t0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (cond(ctx)) {
      return true;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t ms = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000u +
                  (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
    if (ms > timeout_ms) {
      return false;
    }
    sched_yield();
  }
}

typedef struct burst_ctx {
  pn_socket *client;
  pn_socket *server;
  uint64_t n;
} burst_ctx;

static bool burst_accounted(void *arg) {
  burst_ctx *b = arg;
  pn_socket_stats c;
  pn_socket_stats s;
  PN_ASSERT_OK(pn_socket_stats_get(b->client, &c));
  PN_ASSERT_OK(pn_socket_stats_get(b->server, &s));
  uint64_t left_client = c.datagrams_out + c.send_errors + c.send_drops;
  if (left_client != b->n) {
    return false;
  }
  if (no_offload) {
    /* One packet per datagram: the kernel's drop count is exact. */
    return s.datagrams_in + s.kernel_drops == b->n;
  }
  /* A dropped GSO packet held up to 64 datagrams. */
  return s.datagrams_in == b->n ||
         (s.kernel_drops && s.datagrams_in + 64 * s.kernel_drops >= b->n);
}

static void burst_checked(void) {
  pn_runtime *rt = net_runtime();
  enum { N = 10000 };
  peer server = {.echo = false};
  peer client = {.echo = false};
  pn_actor *sa = spawn_peer(rt, &server);
  pn_actor *ca = spawn_peer(rt, &client);
  PN_ASSERT_OK(open_on(rt, sa, "127.0.0.1", &server.sock));
  PN_ASSERT_OK(open_on(rt, ca, "127.0.0.1", &client.sock));
  pn_addr to;
  PN_ASSERT_OK(pn_socket_local_addr(server.sock, &to));
  unsigned char buf[64];
  for (uint32_t i = 0; i < N; i++) {
    fill(buf, i);
    PN_ASSERT_OK(pn_socket_send(client.sock, &to, buf, sizeof buf));
  }
  burst_ctx b = {.client = client.sock, .server = server.sock, .n = N};
  if (!wait_until(burst_accounted, &b, 20000)) {
    pn_socket_stats c;
    pn_socket_stats s;
    PN_ASSERT_OK(pn_socket_stats_get(client.sock, &c));
    PN_ASSERT_OK(pn_socket_stats_get(server.sock, &s));
    fail_msg(
        "sent %llu errors %llu drops %llu; received %llu kernel drops "
        "%llu",
        (unsigned long long)c.datagrams_out, (unsigned long long)c.send_errors,
        (unsigned long long)c.send_drops, (unsigned long long)s.datagrams_in,
        (unsigned long long)s.kernel_drops);
  }
  pn_socket_stats s;
  PN_ASSERT_OK(pn_socket_stats_get(server.sock, &s));
  assert_true(s.syscalls < N); /* batched, not one call per datagram */
  if (backend == PN_IO_URING) {
    /* io_uring receives by itself (multishot recvmsg into the buffer
     * ring) and sends through the ring: neither socket made a receive or
     * send syscall of its own. */
    assert_int_equal(s.syscalls, 0);
    assert_true(s.readiness > 0);
    pn_socket_stats cs;
    PN_ASSERT_OK(pn_socket_stats_get(client.sock, &cs));
    assert_int_equal(cs.syscalls, 0);
  }
  {
    /* The workers' own calls into the backend carry all of that. */
    pn_snapshot *snap = NULL;
    PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
    uint64_t calls = 0;
    for (size_t i = 0; i < snap->worker_count; i++) {
      calls += snap->workers[i].io_calls;
    }
    assert_true(calls > 0);
    assert_string_equal(snap->runtime.io_backend, backend_name());
    /* Both sockets are in the snapshot and its exports. */
    assert_int_equal(snap->socket_count, 2);
    uint64_t in = 0;
    for (size_t i = 0; i < snap->socket_count; i++) {
      assert_non_null(strstr(snap->sockets[i].local, "127.0.0.1:"));
      in += snap->sockets[i].stats.datagrams_in;
    }
    assert_true(in > 0);
    char *json = NULL;
    PN_ASSERT_OK(pn_snapshot_json(snap, &json, NULL));
    assert_true(pn_test_json_valid(json));
    assert_non_null(strstr(json, "\"sockets\":[{"));
    pn_free(json);
    char *prom = NULL;
    PN_ASSERT_OK(pn_snapshot_prometheus(snap, &prom, NULL));
    assert_non_null(strstr(prom, "peernet_socket_datagrams_in_total{socket="));
    pn_free(prom);
    pn_snapshot_free(snap);
  }
  pn_socket_stats c;
  PN_ASSERT_OK(pn_socket_stats_get(client.sock, &c));
  if (no_offload) {
    assert_int_equal(c.gso_segments, 0);
    assert_int_equal(s.gro_segments, 0);
  }
  pn_socket_close(server.sock);
  pn_socket_close(client.sock);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  /* Whatever arrived was intact. */
  assert_int_equal(atomic_load(&server.bad), 0);
  assert_int_equal(atomic_load(&server.got), s.datagrams_in);
  release_and_end(rt, sa, ca);
}

typedef struct count_ctx {
  pn_socket *client;
  uint64_t n;
} count_ctx;

static bool all_sent_or_dropped(void *arg) {
  count_ctx *c = arg;
  pn_socket_stats st;
  PN_ASSERT_OK(pn_socket_stats_get(c->client, &st));
  return st.datagrams_out + st.cond_dropped >= c->n;
}

static void conditioner_drops_at_its_rate(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  enum { N = 4000 };
  peer server = {.echo = false};
  peer client = {.echo = false};
  pn_actor *sa = spawn_peer(rt, &server);
  pn_actor *ca = spawn_peer(rt, &client);
  PN_ASSERT_OK(open_on(rt, sa, "127.0.0.1", &server.sock));
  pn_socket_config cfg = PN_SOCKET_CONFIG_INIT;
  cfg.host = "127.0.0.1";
  cfg.owner = ca;
  cfg.send_conditioner.loss = 0.25;
  cfg.send_conditioner.latency_us = 200;
  cfg.send_conditioner.seed = 7;
  PN_ASSERT_OK(pn_socket_open(rt, &cfg, &client.sock));
  pn_addr to;
  PN_ASSERT_OK(pn_socket_local_addr(server.sock, &to));
  unsigned char buf[64];
  for (uint32_t i = 0; i < N; i++) {
    fill(buf, i);
    PN_ASSERT_OK(pn_socket_send(client.sock, &to, buf, sizeof buf));
  }
  count_ctx c = {.client = client.sock, .n = N};
  assert_true(wait_until(all_sent_or_dropped, &c, 20000));
  pn_socket_stats st;
  PN_ASSERT_OK(pn_socket_stats_get(client.sock, &st));
  /* 25% +- 3 points: over 4 standard deviations at n = 4000. */
  double loss = (double)st.cond_dropped / N;
  assert_true(loss > 0.22 && loss < 0.28);
  assert_int_equal(st.datagrams_out + st.cond_dropped, N);
  assert_true(st.cond_delayed > 0);
  /* Settable while running: no loss from now on. */
  pn_link_conditioner none = PN_LINK_CONDITIONER_INIT;
  PN_ASSERT_OK(pn_socket_set_conditioner(client.sock, PN_DIR_SEND, &none));
  for (uint32_t i = 0; i < 100; i++) {
    fill(buf, i);
    PN_ASSERT_OK(pn_socket_send(client.sock, &to, buf, sizeof buf));
  }
  c.n = N + 100;
  assert_true(wait_until(all_sent_or_dropped, &c, 20000));
  PN_ASSERT_OK(pn_socket_stats_get(client.sock, &st));
  assert_int_equal(st.datagrams_out, N + 100 - st.cond_dropped);
  pn_link_conditioner bad = PN_LINK_CONDITIONER_INIT;
  bad.loss = 2.0;
  PN_ASSERT_ERR(PN_EINVAL,
                pn_socket_set_conditioner(client.sock, PN_DIR_SEND, &bad));
  pn_socket_close(server.sock);
  pn_socket_close(client.sock);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  release_and_end(rt, sa, ca);
}

static void close_with_traffic_in_flight(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_test_latch closed;
  pn_test_latch_init(&closed, 1);
  pn_test_latch client_closed;
  pn_test_latch_init(&client_closed, 1);
  peer server = {.echo = true, .closed_latch = &closed};
  peer client = {.echo = false, .closed_latch = &client_closed};
  pn_actor *sa = spawn_peer(rt, &server);
  pn_actor *ca = spawn_peer(rt, &client);
  PN_ASSERT_OK(open_on(rt, sa, "127.0.0.1", &server.sock));
  pn_socket_config cfg = PN_SOCKET_CONFIG_INIT;
  cfg.host = "127.0.0.1";
  cfg.owner = ca;
  cfg.send_conditioner.latency_us = 5000; /* some still held at close */
  PN_ASSERT_OK(pn_socket_open(rt, &cfg, &client.sock));
  pn_addr to;
  PN_ASSERT_OK(pn_socket_local_addr(server.sock, &to));
  unsigned char buf[64];
  for (uint32_t i = 0; i < 3000; i++) {
    fill(buf, i);
    PN_ASSERT_OK(pn_socket_send(client.sock, &to, buf, sizeof buf));
    if (i == 1500) {
      /* The echo server goes away mid-stream. */
      PN_ASSERT_OK(pn_send(sa, CLOSE_YOUR_SOCKET, NULL, 0));
    }
  }
  assert_true(pn_test_latch_wait(&closed, 10000));
  pn_socket_close(client.sock);
  assert_true(pn_test_latch_wait(&client_closed, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&server.closed), 1);
  assert_int_equal(atomic_load(&client.closed), 1);
  release_and_end(rt, sa, ca);
  pn_test_latch_fini(&closed);
  pn_test_latch_fini(&client_closed);
}

static void errors_are_clear_and_leave_nothing_open(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_test_latch closed;
  pn_test_latch_init(&closed, 1);
  peer p = {.echo = false, .closed_latch = &closed};
  pn_actor *a = spawn_peer(rt, &p);
  pn_socket *s = NULL;
  PN_ASSERT_OK(open_on(rt, a, "127.0.0.1", &s));
  pn_addr bound;
  PN_ASSERT_OK(pn_socket_local_addr(s, &bound));
  pn_socket_config cfg = PN_SOCKET_CONFIG_INIT;
  cfg.owner = a;
  cfg.host = "127.0.0.1";
  cfg.port = bound.port;
  pn_socket *other = NULL;
  PN_ASSERT_ERR(PN_EADDRINUSE, pn_socket_open(rt, &cfg, &other));
  cfg.port = 0;
  cfg.host = "192.0.2.1"; /* TEST-NET-1: never a local address */
  PN_ASSERT_ERR(PN_EADDRNOTAVAIL, pn_socket_open(rt, &cfg, &other));
  cfg.host = "no-such-host.invalid";
  PN_ASSERT_ERR(PN_ENAMERESOLVE, pn_socket_open(rt, &cfg, &other));
  cfg.host = "127.0.0.1";
  cfg.owner = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_socket_open(rt, &cfg, &other));
  cfg.owner = a;
  cfg.max_datagram = PN_DATAGRAM_MAX + 1;
  PN_ASSERT_ERR(PN_EINVAL, pn_socket_open(rt, &cfg, &other));
  cfg.max_datagram = 0;
  cfg.recv_conditioner.loss = -1;
  PN_ASSERT_ERR(PN_EINVAL, pn_socket_open(rt, &cfg, &other));
  assert_null(other);

  unsigned char big[4096];
  memset(big, 0, sizeof big);
  PN_ASSERT_ERR(PN_EMSGSIZE, pn_socket_send(s, &bound, big, sizeof big));
  PN_ASSERT_ERR(PN_EINVAL, pn_socket_send(s, NULL, big, 1));
  pn_addr v6;
  PN_ASSERT_OK(pn_addr_parse("[::1]:9", &v6));
  PN_ASSERT_ERR(PN_EINVAL, pn_socket_send(s, &v6, big, 1)); /* IPv4 socket */

  pn_addr parsed;
  const char *bad_text[] = {
      "",           "1.2.3.4",     "1.2.3.4:", "1.2.3.4:65536",
      "1.2.3.4:-1", "300.1.1.1:5", "[::1:5",   "[::1]5",
      "host:80",    "1.2.3.4:5x"};
  for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
    PN_ASSERT_ERR(PN_EINVAL, pn_addr_parse(bad_text[i], &parsed));
  }
  PN_ASSERT_OK(pn_addr_parse("[::1]:65535", &parsed));
  char text[PN_ADDR_STRLEN];
  PN_ASSERT_OK(pn_addr_format(&parsed, text, sizeof text));
  assert_string_equal(text, "[::1]:65535");
  PN_ASSERT_ERR(PN_ERANGE, pn_addr_format(&parsed, text, 4));

  pn_socket_close(s);
  assert_true(pn_test_latch_wait(&closed, 10000));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&p.closed), 1);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&closed);
}

/* A runtime shut down with a socket still open closes the socket itself;
 * the application then gives the handle back and destroy succeeds. */
static void shutdown_closes_open_sockets(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  peer p = {.echo = true};
  pn_actor *a = spawn_peer(rt, &p);
  PN_ASSERT_OK(open_on(rt, a, "127.0.0.1", &p.sock));
  pn_addr to;
  PN_ASSERT_OK(pn_socket_local_addr(p.sock, &to));
  unsigned char buf[64];
  fill(buf, 1);
  for (int i = 0; i < 100; i++) {
    PN_ASSERT_OK(pn_socket_send(p.sock, &to, buf, sizeof buf));
  }
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  /* The handle still answers, and is refused while held. */
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  PN_ASSERT_ERR(PN_ECLOSED, pn_socket_send(p.sock, &to, buf, sizeof buf));
  pn_socket_close(p.sock);
  pn_actor_release(a);
  pn_test_runtime_end(rt);
}

int main(void) {
  pn_test_seed();
  /* Every test runs on both I/O backends. */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(echo_ipv4),
      cmocka_unit_test(echo_ipv6),
      cmocka_unit_test(echo_dual_stack),
      cmocka_unit_test(burst_is_received_or_counted),
      cmocka_unit_test(burst_without_offload_counts_exactly),
      cmocka_unit_test(conditioner_drops_at_its_rate),
      cmocka_unit_test(close_with_traffic_in_flight),
      cmocka_unit_test(errors_are_clear_and_leave_nothing_open),
      cmocka_unit_test(shutdown_closes_open_sockets),
  };
  return pn_test_run_on_backends(tests, sizeof tests / sizeof tests[0],
                                 &backend);
}
