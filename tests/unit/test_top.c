/* The stats socket and peernet-top: a runtime configured with a stats
 * socket answers each connection with a JSON snapshot that parses and
 * names its actors, and `peernet-top --once` renders a table from it. The
 * peernet-top binary's path is the first argument (set by CTest). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

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
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "peernet-top  workers 2"));
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "top-test-"));
    /* --top 5: five actor lines under the header. */
    size_t lines = 0;
    for (const char *q = out; (q = strstr(q, "top-test-")); q++) {
      lines++;
    }
    assert_int_equal(lines, 5);
    /* Bad usage is refused. */
    snprintf(cmd, sizeof cmd, "%s --sort nonsense 2>/dev/null", top_binary);
    assert_int_not_equal(system(cmd), 0);
  }
  for (int i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
  /* The socket file goes with the runtime. */
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
      cmocka_unit_test(bad_socket_path_is_an_error),
      cmocka_unit_test(stats_socket_removes_only_its_own),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
