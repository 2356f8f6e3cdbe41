/* Snapshot exports: the JSON document parses (checked by a strict RFC 8259
 * validator here) and names every actor, odd names included; the
 * Prometheus text follows the exposition format line by line, and passes
 * promtool when it is installed; with histograms on, both carry them, the
 * Prometheus buckets cumulative up to +Inf, which equals the count. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/test_support.h"

/* --- the workload ------------------------------------------------------- */

static void counting_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

static const char *const odd_names[] = {"plain", "with \"quotes\"",
                                        "back\\slash", "new\nline", "tab\t"};

static pn_runtime *runtime_with_actors(pn_actor **actors, size_t n) {
  pn_runtime *rt = pn_test_runtime(2);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = counting_handler;
  for (size_t i = 0; i < n; i++) {
    cfg.name = odd_names[i];
    PN_ASSERT_OK(pn_spawn(rt, &cfg, &actors[i]));
    for (size_t k = 0; k <= i; k++) {
      PN_ASSERT_OK(pn_send(actors[i], 1, NULL, 0));
    }
  }
  return rt;
}

static void json_parses_and_names_every_actor(void **state) {
  (void)state;
  enum { N = sizeof odd_names / sizeof odd_names[0] };
  pn_actor *actors[N];
  pn_runtime *rt = runtime_with_actors(actors, N);
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  char *json = NULL;
  size_t len = 0;
  PN_ASSERT_OK(pn_snapshot_json(snap, &json, &len));
  assert_int_equal(strlen(json), len);
  if (!pn_test_json_valid(json)) {
    fail_msg("invalid JSON: %s", json);
  }
  assert_non_null(strstr(json, "\"actors\":["));
  assert_non_null(strstr(json, "\"name\":\"with \\\"quotes\\\"\""));
  assert_non_null(strstr(json, "\"name\":\"back\\\\slash\""));
  assert_non_null(strstr(json, "\"name\":\"new\\u000aline\""));
  const char *fields[] = {"\"processed\":", "\"sent\":", "\"mailbox_depth\":",
                          "\"cpu_ns\":", "\"io_calls\":"};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    assert_non_null(strstr(json, fields[i]));
  }
  /* One object per live actor. */
  size_t ids = 0;
  for (const char *p = json; (p = strstr(p, "{\"id\":")); p++) {
    ids++;
  }
  assert_int_equal(ids, snap->actor_count);
  pn_free(json);
  PN_ASSERT_ERR(PN_EINVAL, pn_snapshot_json(NULL, &json, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_snapshot_json(snap, NULL, NULL));
  pn_snapshot_free(snap);
  for (size_t i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
}

/* name{labels} value, with a metric name as the format defines it. */
static bool prometheus_line_ok(const char *line) {
  const char *p = line;
  if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':')) {
    return false;
  }
  while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') {
    p++;
  }
  if (*p == '{') {
    p++;
    while (*p && *p != '}') {
      while (isalnum((unsigned char)*p) || *p == '_') {
        p++;
      }
      if (*p++ != '=' || *p++ != '"') {
        return false;
      }
      while (*p && *p != '"') {
        if (*p == '\\') {
          p++;
          if (*p != '\\' && *p != '"' && *p != 'n') {
            return false;
          }
        } else if (*p == '\n') {
          return false;
        }
        p++;
      }
      if (*p++ != '"') {
        return false;
      }
      if (*p == ',') {
        p++;
      }
    }
    if (*p++ != '}') {
      return false;
    }
  }
  if (*p++ != ' ') {
    return false;
  }
  char *end = NULL;
  strtod(p, &end);
  return end != p && *end == '\0';
}

/* promtool, the reference, when it is installed. */
static void check_with_promtool(const char *prom) {
  if (system("command -v promtool >/dev/null 2>&1") == 0) {
    FILE *f = popen("promtool check metrics", "w");
    assert_non_null(f);
    fputs(prom, f);
    assert_int_equal(pclose(f), 0);
  } else {
    fprintf(stderr, "# promtool not installed: format checked here only\n");
  }
}

static void prometheus_text_is_well_formed(void **state) {
  (void)state;
  enum { N = sizeof odd_names / sizeof odd_names[0] };
  pn_actor *actors[N];
  pn_runtime *rt = runtime_with_actors(actors, N);
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
  char *prom = NULL;
  PN_ASSERT_OK(pn_snapshot_prometheus(snap, &prom, NULL));
  size_t samples = 0;
  for (const char *line = prom; *line;) {
    const char *nl = strchr(line, '\n');
    assert_non_null(nl); /* every line ends with a newline */
    size_t n = (size_t)(nl - line);
    char buf[512];
    assert_true(n < sizeof buf);
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl + 1;
    if (buf[0] == '#') {
      assert_true(strncmp(buf, "# HELP ", 7) == 0 ||
                  strncmp(buf, "# TYPE ", 7) == 0);
      continue;
    }
    if (!prometheus_line_ok(buf)) {
      fail_msg("bad exposition line: %s", buf);
    }
    samples++;
  }
  assert_true(samples >= N * 5);
  assert_non_null(strstr(prom, "name=\"new\\nline\""));
  assert_non_null(strstr(prom, "name=\"with \\\"quotes\\\"\""));
  assert_null(strstr(prom, "_bucket{")); /* no histograms by default */
  check_with_promtool(prom);
  pn_free(prom);
  pn_snapshot_free(snap);
  for (size_t i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
}

/* --- histograms ----------------------------------------------------------- */

/* Handled messages of the workload, so the histograms have counts. */
static pn_test_latch handled_latch;

static void latch_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  if (pn_msg_type(msg) != PN_MSG_STOPPED) {
    pn_test_latch_count_down(&handled_latch);
  }
}

static pn_runtime *runtime_with_histograms(pn_actor **actors, size_t n) {
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  rc.stats_histograms = true;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rc, &rt));
  pn_test_latch_init(&handled_latch, n * (n + 1) / 2);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = latch_handler;
  for (size_t i = 0; i < n; i++) {
    cfg.name = odd_names[i];
    PN_ASSERT_OK(pn_spawn(rt, &cfg, &actors[i]));
    for (size_t k = 0; k <= i; k++) {
      PN_ASSERT_OK(pn_send(actors[i], 1, NULL, 0));
    }
  }
  assert_true(pn_test_latch_wait(&handled_latch, 10000));
  return rt;
}

/* The value of a sample line, and its labels without le (for matching a
 * series' buckets with its _sum and _count). */
static double sample_value(const char *line) {
  const char *sp = strrchr(line, ' ');
  assert_non_null(sp);
  return strtod(sp + 1, NULL);
}

static void series_key(const char *line, char *key, size_t cap) {
  const char *open = strchr(line, '{');
  const char *le = strstr(line, ",le=\"");
  const char *close = strrchr(line, '}');
  assert_non_null(open);
  assert_non_null(close);
  const char *end = le ? le : close;
  size_t n = (size_t)(end - open);
  assert_true(n < cap);
  memcpy(key, open, n);
  key[n] = '\0';
}

/* Every histogram series has cumulative buckets with rising bounds that end
 * at +Inf, which equals its _count; returns the number of series. */
static size_t check_histogram_family(const char *prom, const char *family) {
  char bucket[128], count[128];
  snprintf(bucket, sizeof bucket, "%s_bucket{", family);
  snprintf(count, sizeof count, "%s_count{", family);
  char type[160];
  snprintf(type, sizeof type, "# TYPE %s histogram\n", family);
  assert_non_null(strstr(prom, type));
  size_t series = 0;
  char key[512] = "";
  double last_le = -1, last_count = -1;
  bool open_series = false;
  for (const char *line = prom; *line;) {
    const char *nl = strchr(line, '\n');
    size_t n = (size_t)(nl - line);
    char buf[512];
    assert_true(n < sizeof buf);
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl + 1;
    if (strncmp(buf, bucket, strlen(bucket)) == 0) {
      char k[512];
      series_key(buf, k, sizeof k);
      if (!open_series || strcmp(k, key) != 0) {
        assert_false(open_series); /* the previous one ended at +Inf */
        strcpy(key, k);
        last_le = -1;
        last_count = -1;
        open_series = true;
      }
      const char *le = strstr(buf, ",le=\"") + 5;
      double bound = strncmp(le, "+Inf", 4) == 0 ? 1e300 : strtod(le, NULL);
      double v = sample_value(buf);
      assert_true(bound > last_le);
      assert_true(v >= last_count);
      last_le = bound;
      last_count = v;
    } else if (strncmp(buf, count, strlen(count)) == 0) {
      char k[512];
      series_key(buf, k, sizeof k);
      assert_true(open_series);
      assert_string_equal(k, key);
      assert_true(last_le == 1e300); /* the last bucket was +Inf */
      assert_true(sample_value(buf) == last_count);
      open_series = false;
      series++;
    }
  }
  assert_false(open_series);
  return series;
}

static void histograms_exported(void **state) {
  (void)state;
  enum { N = sizeof odd_names / sizeof odd_names[0] };
  pn_actor *actors[N];
  pn_runtime *rt = runtime_with_histograms(actors, N);
  /* Counts settle when the handlers have returned and the runs ended. */
  pn_snapshot *snap = NULL;
  for (;;) {
    PN_ASSERT_OK(pn_snapshot_take(rt, &snap));
    uint64_t done = 0;
    for (size_t i = 0; i < snap->actor_count; i++) {
      done += snap->actor_histograms[i].processing_time.count;
    }
    if (done == N * (N + 1) / 2) {
      break;
    }
    pn_snapshot_free(snap);
  }
  char *json = NULL;
  PN_ASSERT_OK(pn_snapshot_json(snap, &json, NULL));
  if (!pn_test_json_valid(json)) {
    fail_msg("invalid JSON: %s", json);
  }
  const char *fields[] = {"\"mailbox_time_ns\":{\"count\":",
                          "\"processing_time_ns\":{\"count\":",
                          "\"p50\":",
                          "\"p99\":",
                          "\"buckets\":[",
                          "\"histogram_le_ns\":[16,32,64,"};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    if (!strstr(json, fields[i])) {
      fail_msg("JSON lacks %s", fields[i]);
    }
  }
  /* The actor that got 5 messages says so in both of its histograms. */
  const char *five = strstr(json, "\"name\":\"tab\\u0009\"");
  assert_non_null(five);
  assert_non_null(strstr(five, "\"mailbox_time_ns\":{\"count\":5,"));
  assert_non_null(strstr(five, "\"processing_time_ns\":{\"count\":5,"));
  pn_free(json);

  char *prom = NULL;
  PN_ASSERT_OK(pn_snapshot_prometheus(snap, &prom, NULL));
  for (const char *line = prom; *line;) {
    const char *nl = strchr(line, '\n');
    assert_non_null(nl);
    char buf[512];
    size_t n = (size_t)(nl - line);
    assert_true(n < sizeof buf);
    memcpy(buf, line, n);
    buf[n] = '\0';
    line = nl + 1;
    if (buf[0] != '#' && !prometheus_line_ok(buf)) {
      fail_msg("bad exposition line: %s", buf);
    }
  }
  assert_int_equal(
      check_histogram_family(prom, "peernet_actor_mailbox_seconds"), N);
  assert_int_equal(
      check_histogram_family(prom, "peernet_actor_processing_seconds"), N);
  assert_non_null(strstr(prom, "peernet_actor_processing_seconds_count{id=\""));
  check_with_promtool(prom);
  pn_free(prom);
  pn_snapshot_free(snap);
  for (size_t i = 0; i < N; i++) {
    pn_actor_release(actors[i]);
  }
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&handled_latch);
}

typedef struct subscriber {
  pn_test_latch *got;
  _Atomic uint64_t feeds;
  _Atomic uint64_t last_workers;
} subscriber;

static void subscriber_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  subscriber *s = state;
  pn_runtime_stats st;
  if (pn_msg_stats(msg, &st) == PN_OK) {
    atomic_store(&s->last_workers, st.workers);
    if (atomic_fetch_add(&s->feeds, 1) < 3) {
      pn_test_latch_count_down(s->got);
    }
  }
}

static void periodic_stats_feed(void **state) {
  (void)state;
  pn_runtime *rt = pn_test_runtime(2);
  pn_test_latch got;
  pn_test_latch_init(&got, 3);
  subscriber sub = {.got = &got};
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.handler = subscriber_handler;
  cfg.state = &sub;
  pn_actor *a = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &a));
  PN_ASSERT_ERR(PN_EINVAL, pn_stats_subscribe(rt, a, 10)); /* too often */
  PN_ASSERT_ERR(PN_EINVAL, pn_stats_subscribe(NULL, a, 1000));
  PN_ASSERT_ERR(PN_EINVAL, pn_stats_subscribe(rt, NULL, 1000));
  PN_ASSERT_OK(pn_stats_subscribe(rt, a, 2000));
  assert_true(pn_test_latch_wait(&got, 10000));
  assert_int_equal(atomic_load(&sub.last_workers), 2);
  /* When the subscriber stops, the feed stops itself at its next tick. */
  PN_ASSERT_OK(pn_actor_stop(a));
  pn_actor_release(a);
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&got);
}

int main(void) {
  pn_test_seed();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(json_parses_and_names_every_actor),
      cmocka_unit_test(prometheus_text_is_well_formed),
      cmocka_unit_test(histograms_exported),
      cmocka_unit_test(periodic_stats_feed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
