#include "tests/support/test_support.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pn_test_latch_init(pn_test_latch *l, uint64_t count) {
  pthread_mutex_init(&l->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cv, &ca);
  pthread_condattr_destroy(&ca);
  l->remaining = count;
}

void pn_test_latch_fini(pn_test_latch *l) {
  pthread_mutex_destroy(&l->lock);
  pthread_cond_destroy(&l->cv);
}

void pn_test_latch_add(pn_test_latch *l, uint64_t count) {
  pthread_mutex_lock(&l->lock);
  l->remaining += count;
  pthread_mutex_unlock(&l->lock);
}

void pn_test_latch_count_down(pn_test_latch *l) {
  pthread_mutex_lock(&l->lock);
  if (l->remaining && --l->remaining == 0) {
    pthread_cond_broadcast(&l->cv);
  }
  pthread_mutex_unlock(&l->lock);
}

bool pn_test_latch_wait(pn_test_latch *l, uint64_t timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  uint64_t ns = (uint64_t)deadline.tv_nsec + (timeout_ms % 1000) * 1000000;
  deadline.tv_sec += (time_t)(timeout_ms / 1000 + ns / 1000000000);
  deadline.tv_nsec = (long)(ns % 1000000000);
  pthread_mutex_lock(&l->lock);
  while (l->remaining) {
    if (pthread_cond_timedwait(&l->cv, &l->lock, &deadline) == ETIMEDOUT) {
      break;
    }
  }
  bool done = l->remaining == 0;
  pthread_mutex_unlock(&l->lock);
  return done;
}

pn_runtime *pn_test_runtime(uint32_t workers) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = workers;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  return rt;
}

pn_actor *pn_test_spawn(pn_runtime *rt, const char *name, pn_handler handler,
                        void *state, int32_t home) {
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = name;
  cfg.handler = handler;
  cfg.state = state;
  cfg.home_worker = home;
  pn_actor *a = NULL;
  PN_ASSERT_OK(pn_spawn(rt, &cfg, &a));
  return a;
}

void pn_test_runtime_end(pn_runtime *rt) {
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 30u * 1000000u));
  pn_runtime_stats st;
  PN_ASSERT_OK(pn_runtime_stats_get(rt, &st));
  assert_int_equal(st.actors_alive, 0);
  assert_int_equal(st.msgs_in_flight, 0);
  if (st.actor_handles || st.timers_active) {
    fail_msg("leak: %" PRIu64 " actor handles and %" PRIu64
             " timers still held",
             st.actor_handles, st.timers_active);
  }
  PN_ASSERT_OK(pn_runtime_destroy(rt));
}

/* A strict JSON validator (RFC 8259 syntax) for the export and trace
 * tests. */

typedef struct cursor {
  const char *p;
} cursor;

static void skip_ws(cursor *c) {
  while (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t') {
    c->p++;
  }
}

static bool json_value(cursor *c, int depth);

static bool json_string(cursor *c) {
  if (*c->p != '"') {
    return false;
  }
  c->p++;
  while (*c->p != '"') {
    unsigned char ch = (unsigned char)*c->p;
    if (ch < 0x20) {
      return false;
    }
    if (ch == '\\') {
      c->p++;
      if (*c->p == 'u') {
        for (int i = 1; i <= 4; i++) {
          if (!isxdigit((unsigned char)c->p[i])) {
            return false;
          }
        }
        c->p += 4;
      } else if (!strchr("\"\\/bfnrt", *c->p) || !*c->p) {
        return false;
      }
    }
    c->p++;
  }
  c->p++;
  return true;
}

static bool json_number(cursor *c) {
  const char *start = c->p;
  if (*c->p == '-') {
    c->p++;
  }
  if (!isdigit((unsigned char)*c->p)) {
    return false;
  }
  while (isdigit((unsigned char)*c->p) || *c->p == '.' || *c->p == 'e' ||
         *c->p == 'E' || *c->p == '+' || *c->p == '-') {
    c->p++;
  }
  return c->p > start;
}

static bool json_value(cursor *c, int depth) {
  if (depth > 32) {
    return false;
  }
  skip_ws(c);
  if (*c->p == '{' || *c->p == '[') {
    char close = *c->p == '{' ? '}' : ']';
    bool object = *c->p == '{';
    c->p++;
    skip_ws(c);
    if (*c->p == close) {
      c->p++;
      return true;
    }
    for (;;) {
      skip_ws(c);
      if (object) {
        if (!json_string(c)) {
          return false;
        }
        skip_ws(c);
        if (*c->p++ != ':') {
          return false;
        }
      }
      if (!json_value(c, depth + 1)) {
        return false;
      }
      skip_ws(c);
      if (*c->p == ',') {
        c->p++;
        continue;
      }
      if (*c->p == close) {
        c->p++;
        return true;
      }
      return false;
    }
  }
  if (*c->p == '"') {
    return json_string(c);
  }
  if (strncmp(c->p, "true", 4) == 0 || strncmp(c->p, "null", 4) == 0) {
    c->p += 4;
    return true;
  }
  if (strncmp(c->p, "false", 5) == 0) {
    c->p += 5;
    return true;
  }
  return json_number(c);
}

bool pn_test_json_valid(const char *text) {
  cursor c = {text};
  if (!json_value(&c, 0)) {
    return false;
  }
  skip_ws(&c);
  return *c.p == '\0';
}

/* --- both I/O backends ---------------------------------------------------- */

static pn_io_backend *group_backend;

static int use_epoll(void **state) {
  (void)state;
  *group_backend = PN_IO_EPOLL;
  return 0;
}

static int use_uring(void **state) {
  (void)state;
  *group_backend = PN_IO_URING;
  return 0;
}

static bool uring_usable(void) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 1;
  cfg.io = PN_IO_URING;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&cfg, &rt) != PN_OK) {
    return false;
  }
  return pn_runtime_destroy(rt) == PN_OK;
}

int pn_test_run_on_backends(const struct CMUnitTest *tests, size_t n,
                            pn_io_backend *backend) {
  group_backend = backend;
  const char *only = getenv("PEERNET_IO");
  bool all = !only || !*only;
  bool epoll = all || strcmp(only, "epoll") == 0;
  bool uring = all || strcmp(only, "uring") == 0;
  if (!epoll && !uring) {
    fprintf(stderr, "# PEERNET_IO=%s: expected uring or epoll\n", only);
    return 1;
  }
  int failed = 0;
  if (epoll) {
    failed += _cmocka_run_group_tests("epoll", tests, n, use_epoll, NULL);
  }
  if (uring && uring_usable()) {
    failed += _cmocka_run_group_tests("uring", tests, n, use_uring, NULL);
  } else if (uring) {
    fprintf(stderr, "# io_uring not available here: uring group skipped\n");
  }
  return failed;
}
