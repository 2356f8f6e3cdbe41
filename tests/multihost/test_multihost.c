/* Three nodes as three processes (pn_node_proc, node_proc.c), in three
 * network namespaces joined through a bridge of veth pairs, and the same
 * three on loopback addresses (127.0.0.1-3), on both I/O backends: they
 * join through a chain of seeds; remote sends both ways; a name looked up
 * and one that is not there; an actor spawned on another node; a monitor
 * that sees an actor stop with its reason; and a node killed with SIGKILL
 * seen DOWN (PN_DOWN_NOCONNECTION) by the other two's monitors within the
 * detection time (1 s; bounded at 3 s, the time printed). The two nodes
 * that quit prove they freed everything (exit 0: pn_runtime_destroy; the
 * sanitizer builds' leak check too).
 *
 * The namespaces and links are named after this process and removed at
 * the end; where the kernel refuses namespaces (not root, no CAP_SYS_ADMIN)
 * those tests say so and are skipped. Traffic stays on loopback or inside
 * the namespaces; every wait is bounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "peernet/runtime.h"

enum { NODES = 3, LINE_MS = 15000, DOWN_BOUND_MS = 3000 };

typedef struct proc {
  pid_t pid;
  int in;  /* its stdin */
  int out; /* its stdout */
  char buf[512];
  size_t len;
} proc;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char ns_names[NODES + 1][32]; /* [0]: the bridge's */
static bool ns_made;

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
  char cmd[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  return system(cmd);
}

static void netns_remove(void) {
  for (int i = 0; i <= NODES; i++) {
    if (ns_names[i][0]) {
      (void)run("ip netns del %s 2>/dev/null", ns_names[i]);
    }
  }
  ns_made = false;
}

/* Namespaces pnmh<pid>b (the bridge) and pnmh<pid>n1..3, each node's with
 * v0 at 10.77.0.i/24, its peer in the bridge's namespace. False (with
 * nothing left behind) when the kernel refuses. */
static bool netns_make(void) {
  snprintf(ns_names[0], sizeof ns_names[0], "pnmh%db", (int)getpid());
  for (int i = 1; i <= NODES; i++) {
    snprintf(ns_names[i], sizeof ns_names[i], "pnmh%dn%d", (int)getpid(), i);
  }
  ns_made = true;
  const char *b = ns_names[0];
  bool ok = run("ip netns add %s 2>/dev/null", b) == 0 &&
            run("ip -n %s link add br0 type bridge", b) == 0 &&
            run("ip -n %s link set br0 up", b) == 0;
  for (int i = 1; ok && i <= NODES; i++) {
    const char *n = ns_names[i];
    ok = run("ip netns add %s", n) == 0 &&
         run("ip link add v0 netns %s type veth peer name p%d netns %s", n, i,
             b) == 0 &&
         run("ip -n %s link set p%d master br0", b, i) == 0 &&
         run("ip -n %s link set p%d up", b, i) == 0 &&
         run("ip -n %s link set lo up", n) == 0 &&
         run("ip -n %s addr add 10.77.0.%d/24 dev v0", n, i) == 0 &&
         run("ip -n %s link set v0 up", n) == 0;
  }
  if (!ok) {
    netns_remove();
  }
  return ok;
}

/* A free UDP port on 127.0.0.1 (the loopback nodes all use it, each on
 * its own address). */
static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static void start(proc *p, const char *ns, const char *name, const char *host,
                  uint16_t port, const char *seed, const char *io) {
  int in[2], out[2];
  assert_int_equal(pipe(in), 0);
  assert_int_equal(pipe(out), 0);
  char port_s[16];
  snprintf(port_s, sizeof port_s, "%u", (unsigned)port);
  const char *args[16];
  int n = 0;
  if (ns) {
    args[n++] = "ip";
    args[n++] = "netns";
    args[n++] = "exec";
    args[n++] = ns;
  }
  args[n++] = PN_NODE_PROC;
  args[n++] = name;
  args[n++] = host;
  args[n++] = port_s;
  if (seed) {
    args[n++] = seed;
  }
  args[n++] = "--io";
  args[n++] = io;
  args[n] = NULL;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    execvp(args[0], (char *const *)args);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  *p = (proc){.pid = pid, .in = in[1], .out = out[0]};
}

/* The process's next line (without its newline), waiting at most
 * timeout_ms; false when none came. */
static bool read_line(proc *p, char *line, size_t cap, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    char *nl = memchr(p->buf, '\n', p->len);
    if (nl) {
      size_t n = (size_t)(nl - p->buf);
      snprintf(line, cap, "%.*s", (int)n, p->buf);
      memmove(p->buf, nl + 1, p->len - n - 1);
      p->len -= n + 1;
      return true;
    }
    uint64_t t = now_ms();
    if (t >= end || p->len == sizeof p->buf) {
      return false;
    }
    struct pollfd pfd = {.fd = p->out, .events = POLLIN};
    if (poll(&pfd, 1, (int)(end - t)) <= 0) {
      continue;
    }
    ssize_t r = read(p->out, p->buf + p->len, sizeof p->buf - p->len);
    if (r <= 0) {
      return false;
    }
    p->len += (size_t)r;
  }
}

/* Waits for a node's "ready" (its names registered). */
static void wait_ready(proc *p, const char *name) {
  char line[64];
  if (!read_line(p, line, sizeof line, LINE_MS) || strcmp(line, "ready")) {
    fail_msg("%s did not start", name);
  }
}

/* Sends a command; returns its answer line. */
static const char *ask(proc *p, const char *cmd) {
  static char line[256];
  char out[256];
  int n = snprintf(out, sizeof out, "%s\n", cmd);
  assert_int_equal(write(p->in, out, (size_t)n), n);
  if (!read_line(p, line, sizeof line, LINE_MS)) {
    fail_msg("no answer to '%s'", cmd);
  }
  return line;
}

static void expect_ok(proc *p, const char *cmd) {
  const char *r = ask(p, cmd);
  if (strcmp(r, "ok") != 0) {
    fail_msg("'%s': %s", cmd, r);
  }
}

/* Waits for a "down REASON MS" line; returns its reason. */
static uint32_t expect_down(proc *p) {
  char line[256];
  if (!read_line(p, line, sizeof line, LINE_MS)) {
    fail_msg("no DOWN");
  }
  unsigned reason = 0;
  unsigned long long ms = 0;
  if (sscanf(line, "down %u %llu", &reason, &ms) != 2) {
    fail_msg("not a DOWN: %s", line);
  }
  return reason;
}

static int quit(proc *p) {
  (void)write(p->in, "quit\n", 5);
  close(p->in);
  int st = 0;
  assert_int_equal(waitpid(p->pid, &st, 0), p->pid);
  close(p->out);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static proc procs[NODES];
static bool started[NODES];

static void scenario(bool netns, const char *io) {
  char host[NODES][32], seed[NODES][48];
  uint16_t port = netns ? 7001 : free_port();
  static const char *names[NODES] = {"n1", "n2", "n3"};
  for (int i = 0; i < NODES; i++) {
    snprintf(host[i], sizeof host[i], netns ? "10.77.0.%d" : "127.0.0.%d",
             i + 1);
    snprintf(seed[i], sizeof seed[i], "%.31s:%u", host[i], (unsigned)port);
  }
  for (int i = 0; i < NODES; i++) {
    start(&procs[i], netns ? ns_names[i + 1] : NULL, names[i], host[i], port,
          i ? seed[i - 1] : NULL, io);
    started[i] = true;
    wait_ready(&procs[i], names[i]);
  }
  proc *n1 = &procs[0], *n2 = &procs[1], *n3 = &procs[2];
  for (int i = 0; i < NODES; i++) {
    expect_ok(&procs[i], "up 2"); /* a chain of seeds, then a mesh */
  }
  expect_ok(n1, "send n3/echo");
  expect_ok(n3, "send n1/echo");
  expect_ok(n2, "send n1/echo");
  expect_ok(n2, "lookup n3/echo");
  assert_string_equal(ask(n2, "lookup n3/nobody"), "err PN_ENOENT");
  expect_ok(n1, "spawn n2");
  assert_string_equal(ask(n3, "spawn n9"), "err PN_EUNREACHABLE");
  expect_ok(n1, "monitor n2/victim");
  expect_ok(n2, "stop-victim");
  assert_int_equal(expect_down(n1), PN_DOWN_APP + 1);
  expect_ok(n1, "monitor n3/echo");
  expect_ok(n2, "monitor n3/echo");
  uint64_t t0 = now_ms();
  assert_int_equal(kill(n3->pid, SIGKILL), 0);
  assert_int_equal(expect_down(n1), PN_DOWN_NOCONNECTION);
  uint64_t t1 = now_ms() - t0;
  assert_int_equal(expect_down(n2), PN_DOWN_NOCONNECTION);
  uint64_t t2 = now_ms() - t0;
  fprintf(stderr,
          "# %s, %s: n3 killed, DOWN at n1 after %" PRIu64
          " ms, at n2 after %" PRIu64 " ms\n",
          netns ? "namespaces" : "loopback", io, t1, t2);
  assert_true(t1 <= DOWN_BOUND_MS && t2 <= DOWN_BOUND_MS);
  int st = 0;
  assert_int_equal(waitpid(n3->pid, &st, 0), n3->pid);
  close(n3->in);
  close(n3->out);
  started[2] = false;
  assert_int_equal(quit(n1), 0);
  started[0] = false;
  assert_int_equal(quit(n2), 0);
  started[1] = false;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < NODES; i++) {
    if (started[i]) {
      kill(procs[i].pid, SIGKILL);
      (void)waitpid(procs[i].pid, NULL, 0);
      close(procs[i].in);
      close(procs[i].out);
      started[i] = false;
    }
  }
  if (ns_made) {
    netns_remove();
  }
  return 0;
}

static bool uring_usable(void) {
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  rc.io = PN_IO_URING;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK) {
    return false;
  }
  (void)pn_runtime_destroy(rt);
  return true;
}

static void in_namespaces(const char *io) {
  if (strcmp(io, "uring") == 0 && !uring_usable()) {
    fprintf(stderr, "# io_uring refused here: skipped\n");
    skip();
  }
  if (!netns_make()) {
    fprintf(stderr, "# multihost: network namespaces cannot be made here "
                    "(root and iproute2 needed): skipped; the loopback "
                    "variant runs\n");
    skip();
  }
  scenario(true, io);
}

static void on_loopback(const char *io) {
  if (strcmp(io, "uring") == 0 && !uring_usable()) {
    fprintf(stderr, "# io_uring refused here: skipped\n");
    skip();
  }
  scenario(false, io);
}

static void namespaces_epoll(void **state) {
  (void)state;
  in_namespaces("epoll");
}
static void namespaces_uring(void **state) {
  (void)state;
  in_namespaces("uring");
}
static void loopback_epoll(void **state) {
  (void)state;
  on_loopback("epoll");
}
static void loopback_uring(void **state) {
  (void)state;
  on_loopback("uring");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* a node that died: its stdin */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(loopback_epoll, teardown),
      cmocka_unit_test_teardown(loopback_uring, teardown),
      cmocka_unit_test_teardown(namespaces_epoll, teardown),
      cmocka_unit_test_teardown(namespaces_uring, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
