/* The stats socket and peernet-top: a runtime configured with a stats
 * socket answers each connection with a JSON snapshot that parses and
 * names its actors, and `peernet-top --once` renders a table from it: its
 * actors, each worker's busy share, and with --view peers every peer's
 * RTT, loss, window and queued bytes. The peernet-top binary's path is the
 * first argument (set by CTest). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/net/net_harness.h"
#include "tests/support/test_support.h"

static const char *top_binary;

static void busy_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

static char *read_socket(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t len = 0;
  ssize_t n;
  while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fd);
  return buf;
}

/* Runs a command and returns what it printed on stdout (the caller
 * frees), failing unless it exits 0. */
static char *run_tool(const char *cmd) {
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t cap = 1 << 16;
  char *out = malloc(cap);
  assert_non_null(out);
  size_t len = fread(out, 1, cap - 1, p);
  out[len] = '\0';
  assert_int_equal(pclose(p), 0);
  return out;
}

/* Each worker's busy share on the "busy per worker:" line is a whole
 * percentage between 0 and 100; returns how many there were. */
static unsigned check_busy_line(const char *out) {
  const char *line = strstr(out, "busy per worker:");
  assert_non_null(line);
  const char *end = strchr(line, '\n');
  assert_non_null(end);
  unsigned n = 0;
  for (const char *q = line; (q = strchr(q, ':')) && q < end; q++) {
    if (q[1] == ' ') {
      continue; /* the label's own colon */
    }
    char *pct = NULL;
    double v = strtod(q + 1, &pct);
    assert_true(pct && *pct == '%');
    assert_true(v >= 0 && v <= 100);
    n++;
  }
  return n;
}

static void endpoint_and_top(void **state) {
  (void)state;
  char path[96];
  snprintf(path, sizeof path, "/tmp/peernet-top-test-%ld.sock", (long)getpid());
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.stats_socket = path;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  enum { N = 12 };
  pn_actor *actors[N];
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.handler = busy_handler;
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "top-test-%d", i);
    acfg.name = name;
    PN_ASSERT_OK(pn_spawn(rt, &acfg, &actors[i]));
    for (int k = 0; k < 100 * (i + 1); k++) {
      PN_ASSERT_OK(pn_send(actors[i], 1, NULL, 0));
    }
  }
  char *json = read_socket(path);
  assert_true(pn_test_json_valid(json));
  assert_non_null(strstr(json, "\"name\":\"top-test-11\""));
  free(json);

  if (top_binary) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s --socket %s --once --interval 50 --top 5",
             top_binary, path);
    char *out = run_tool(cmd);
    assert_non_null(strstr(out, "peernet-top  workers 2"));
    assert_int_equal(check_busy_line(out), 2);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "top-test-"));
    /* --top 5: five actor lines under the header. */
    size_t lines = 0;
    for (const char *q = out; (q = strstr(q, "top-test-")); q++) {
      lines++;
    }
    assert_int_equal(lines, 5);
    free(out);
    /* Bad usage is refused. */
    snprintf(cmd, sizeof cmd, "%s --sort nonsense 2>/dev/null", top_binary);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --socket %s --view nonsense 2>/dev/null",
             top_binary, path);
    assert_int_not_equal(system(cmd), 0);
  }
  for (int i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
  /* The socket file goes with the runtime. */
  assert_int_not_equal(access(path, F_OK), 0);
}

/* A connected pair (the stats socket given through the environment, as a
 * user would): the snapshot lists both ends, and `peernet-top --view
 * peers` shows each with its address, state, RTT, loss, window and queued
 * bytes. */
static void peers_view(void **state) {
  (void)state;
  char path[96];
  snprintf(path, sizeof path, "/tmp/peernet-top-peers-%ld.sock",
           (long)getpid());
  assert_int_equal(setenv("PEERNET_STATS_SOCKET", path, 1), 0);
  net_pair w;
  net_pair_open(&w, &(net_pair_opts){0});
  assert_int_equal(unsetenv("PEERNET_STATS_SOCKET"), 0);
  net_pair_wait_connected(&w);
  /* Some traffic, so the client has an RTT sample. */
  pn_channel *ch = pn_peer_channel(w.peer, 0);
  assert_non_null(ch);
  uint64_t rng = 1;
  net_send_n(ch, 20, 64, 64, &rng);
  char *json = read_socket(path);
  assert_true(pn_test_json_valid(json));
  const char *peers = strstr(json, "\"peers\":[{");
  assert_non_null(peers);
  assert_non_null(strstr(peers, "\"srtt_us\":"));
  assert_non_null(strstr(peers, "\"queued_bytes\":"));
  assert_non_null(strstr(peers, "\"cwnd\":"));
  free(json);

  if (top_binary) {
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "%s --socket %s --view peers --once --interval 50", top_binary,
             path);
    char *out = run_tool(cmd);
    assert_non_null(strstr(out, "peers 2"));
    const char *head = strstr(out, "REMOTE");
    assert_non_null(head);
    const char *cols[] = {"STATE", "RTT(ms)", "LOSS%", "CWND", "QUEUED(B)"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
      if (!strstr(head, cols[i])) {
        fail_msg("no %s column in:\n%s", cols[i], out);
      }
    }
    /* Both ends, on loopback, connected. */
    size_t rows = 0;
    for (const char *q = head; (q = strstr(q, " 127.0.0.1:")); q++) {
      rows++;
    }
    assert_int_equal(rows, 2);
    size_t connected = 0;
    for (const char *q = head; (q = strstr(q, " connected ")); q++) {
      connected++;
    }
    assert_int_equal(connected, 2);
    check_busy_line(out);
    free(out);
  }
  net_pair_close(&w);
  assert_int_not_equal(access(path, F_OK), 0);
}

static void bad_socket_path_is_an_error(void **state) {
  (void)state;
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 1;
  cfg.stats_socket = "/nonexistent-dir/peernet.sock";
  pn_runtime *rt = NULL;
  pn_err err = pn_runtime_create(&cfg, &rt);
  assert_int_not_equal(err, PN_OK);
  assert_null(rt);
}

/* The stats socket never removes what is not its own: a regular file and
 * a live runtime's socket make a second runtime fail and stay; a stale
 * socket file (nobody listening) is replaced; and a runtime whose socket
 * file another one replaced leaves that one alone at shutdown. */
static void stats_socket_removes_only_its_own(void **state) {
  (void)state;
  char path[96];
  snprintf(path, sizeof path, "/tmp/peernet-top-own-%ld.sock", (long)getpid());
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 1;
  cfg.stats_socket = path;
  pn_runtime *rt = NULL, *second = NULL;
  /* A regular file. */
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("someone's data\n", f);
  fclose(f);
  PN_ASSERT_ERR(PN_EADDRINUSE, pn_runtime_create(&cfg, &second));
  assert_null(second);
  assert_int_equal(access(path, F_OK), 0);
  assert_int_equal(unlink(path), 0);
  /* A live runtime's socket. */
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  PN_ASSERT_ERR(PN_EADDRINUSE, pn_runtime_create(&cfg, &second));
  char *json = read_socket(path); /* still the first one's, still served */
  assert_true(pn_test_json_valid(json));
  free(json);
  /* Another takes the path over (as an operator removing the file and
   * starting a second runtime would): the first one's shutdown leaves
   * the second one's socket in place. */
  assert_int_equal(unlink(path), 0);
  PN_ASSERT_OK(pn_runtime_create(&cfg, &second));
  pn_test_runtime_end(rt);
  assert_int_equal(access(path, F_OK), 0);
  json = read_socket(path);
  assert_true(pn_test_json_valid(json));
  free(json);
  pn_test_runtime_end(second);
  assert_int_not_equal(access(path, F_OK), 0);
  /* A stale socket file (bound, nobody listening): replaced. */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path) + 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd);
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  pn_test_runtime_end(rt);
  assert_int_not_equal(access(path, F_OK), 0);
}

int main(int argc, char **argv) {
  pn_test_seed();
  top_binary = argc > 1 ? argv[1] : NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(endpoint_and_top),
      cmocka_unit_test(peers_view),
      cmocka_unit_test(bad_socket_path_is_an_error),
      cmocka_unit_test(stats_socket_removes_only_its_own),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
