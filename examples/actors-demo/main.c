/* peernet-actors-demo: the first PeerNet program to run.
 *
 * Spawns a few thousand actors as rings of unequal sizes and sends tokens
 * around each ring for a fixed number of hops. Every ring does the same work,
 * so the actors of the smallest ring top the table at the end; when their
 * "runs" is well below "processed", tokens caught up with each other and were
 * handled in one batch. A "reporter" actor prints progress from a periodic
 * timer and wakes main once every token has come home; main then prints the
 * runtime's statistics and tears everything down.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <peernet/peernet.h>

enum { MSG_TOKEN = 1, MSG_TOKEN_HOME = 2, MSG_TICK = 3 };
enum { REPORT_PERIOD_US = 100000, TOP_ACTORS = 10 };

typedef struct options {
  uint64_t actors, rings, tokens, hops, workers;
} options;

/* How the run ended. Written by handlers on worker threads, read by main:
 * the mutex is the only synchronisation between them. */
typedef struct outcome {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
  pn_err err; /* first failure a handler saw; PN_OK otherwise */
  const char *what;
  uint64_t end_ns;
} outcome;

typedef struct ring_node {
  pn_actor *handle;   /* main's reference, released after shutdown */
  pn_actor *next;     /* borrowed: the successor's handle */
  pn_actor *reporter; /* borrowed likewise */
  outcome *out;
} ring_node;

typedef struct reporter {
  outcome *out;
  uint64_t tokens_left;
  uint64_t total_hops;
  uint64_t start_ns;
} reporter;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void outcome_finish(outcome *o, pn_err err, const char *what) {
  uint64_t t = now_ns();
  pthread_mutex_lock(&o->lock);
  /* Only the first report counts: after a failure, tokens still in flight
   * can fail again with PN_ECLOSED while the runtime shuts down. */
  if (!o->done) {
    o->done = true;
    o->err = err;
    o->what = what;
    o->end_ns = t;
    pthread_cond_signal(&o->cv);
  }
  pthread_mutex_unlock(&o->lock);
}

static void ring_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  ring_node *n = state;
  /* PN_MSG_STOPPED needs nothing: the nodes belong to main. */
  if (pn_msg_type(msg) != MSG_TOKEN) {
    return;
  }
  uint64_t hops_left;
  memcpy(&hops_left, pn_msg_data(msg), sizeof hops_left);
  pn_err err;
  if (hops_left == 0) {
    err = pn_send(n->reporter, MSG_TOKEN_HOME, NULL, 0);
  } else {
    hops_left--;
    err = pn_send(n->next, MSG_TOKEN, &hops_left, sizeof hops_left);
  }
  if (err != PN_OK) {
    outcome_finish(n->out, err, "forwarding a token");
  }
}

/* The runtime already counts every message each actor processed, so
 * progress costs the ring actors nothing: sum them from a snapshot. */
static void print_progress(pn_actor *self, reporter *r) {
  pn_snapshot *snap = NULL;
  pn_err err = pn_snapshot_take(pn_actor_runtime(self), &snap);
  if (err != PN_OK) {
    outcome_finish(r->out, err, "taking a progress snapshot");
    return;
  }
  uint64_t hops = 0;
  for (size_t i = 0; i < snap->actor_count; i++) {
    if (snap->actors[i].id != pn_actor_id(self)) {
      hops += snap->actors[i].processed;
    }
  }
  pn_snapshot_free(snap);
  printf("  %5.2f s  %12" PRIu64 " / %" PRIu64 " hops (%3.0f%%)\n",
         (double)(now_ns() - r->start_ns) / 1e9, hops, r->total_hops,
         100.0 * (double)hops / (double)r->total_hops);
}

static void reporter_handler(pn_actor *self, void *state, const pn_msg *msg) {
  reporter *r = state;
  switch (pn_msg_type(msg)) {
  case MSG_TICK:
    /* A tick can still be queued behind the last token. */
    if (r->tokens_left > 0) {
      print_progress(self, r);
    }
    break;
  case MSG_TOKEN_HOME:
    if (--r->tokens_left == 0) {
      outcome_finish(r->out, PN_OK, NULL);
    }
    break;
  }
}

static void usage(FILE *f) {
  fprintf(f, "usage: peernet-actors-demo [options]\n"
             "  --actors N   ring actors in all, 1..1000000 (default 4000)\n"
             "  --rings N    rings of unequal sizes, 1..actors (default 8)\n"
             "  --tokens N   tokens in each ring, 1..1000 (default 4)\n"
             "  --hops N     hops per token, 1..1000000000 (default 1000000)\n"
             "  --workers N  threads, 0..1024, 0 = one per CPU (default 0)\n");
}

_Noreturn static void usage_error(const char *what, const char *arg) {
  fprintf(stderr, "peernet-actors-demo: %s%s\n", what, arg);
  usage(stderr);
  exit(2);
}

/* strtoull alone accepts leading blanks and a minus sign (wrapping it to a
 * huge value), so insist on a digit first and on nothing after the number. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max,
                      uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') {
    return false;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) {
    return false;
  }
  *out = (uint64_t)v;
  return true;
}

static void parse_args(int argc, char **argv, options *o) {
  *o = (options){.actors = 4000, .rings = 8, .tokens = 4, .hops = 1000000};
  /* The bounds keep tokens * rings * (hops + 1) far from overflowing. */
  const struct {
    const char *name;
    uint64_t *dst, min, max;
  } opts[] = {{"--actors", &o->actors, 1, 1000000},
              {"--rings", &o->rings, 1, 1000000},
              {"--tokens", &o->tokens, 1, 1000},
              {"--hops", &o->hops, 1, 1000000000},
              {"--workers", &o->workers, 0, 1024}};
  /* Every option takes a value, so arguments come in pairs. */
  for (int i = 1; i < argc; i += 2) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    size_t k = 0;
    while (k < sizeof opts / sizeof opts[0] && strcmp(argv[i], opts[k].name)) {
      k++;
    }
    if (k == sizeof opts / sizeof opts[0]) {
      usage_error("unknown option ", argv[i]);
    }
    if (i + 1 >= argc ||
        !parse_u64(argv[i + 1], opts[k].min, opts[k].max, opts[k].dst)) {
      usage_error("missing or out-of-range value for ", argv[i]);
    }
  }
  if (o->rings > o->actors) {
    usage_error("--rings may not exceed --actors", "");
  }
}

/* First actor of ring r. Sizes grow linearly with r (every ring gets at least
 * one actor), so equal work per ring means unequal work per actor. */
static uint64_t ring_start(const options *o, uint64_t r) {
  return r + (o->actors - o->rings) * (r * (r + 1) / 2) /
                 (o->rings * (o->rings + 1) / 2);
}

static int by_processed_desc(const void *a, const void *b) {
  const pn_actor_stats *x = a, *y = b;
  if (x->processed != y->processed) {
    return x->processed < y->processed ? 1 : -1;
  }
  return x->id < y->id ? -1 : x->id > y->id;
}

static void print_report(pn_snapshot *s, uint64_t elapsed_ns) {
  const pn_runtime_stats *rs = &s->runtime;
  printf("\nruntime: %" PRIu32 " workers, io %s, %" PRIu64
         " actors spawned, %" PRIu64 " alive, %" PRIu64 " messages in flight\n",
         rs->workers, rs->io_backend, rs->actors_spawned, rs->actors_alive,
         rs->msgs_in_flight);
  printf("\n%6s %10s %8s %8s %9s\n", "worker", "runs", "steals", "wakeups",
         "idle ms");
  for (size_t i = 0; i < s->worker_count; i++) {
    const pn_worker_stats *w = &s->workers[i];
    printf("%6" PRIu32 " %10" PRIu64 " %8" PRIu64 " %8" PRIu64 " %9.1f\n",
           w->index, w->runs, w->steals, w->wakeups, (double)w->idle_ns / 1e6);
  }
  uint64_t total = 0;
  for (size_t i = 0; i < s->actor_count; i++) {
    total += s->actors[i].processed;
  }
  /* The snapshot is ours, so sorting it in place is fine. */
  qsort(s->actors, s->actor_count, sizeof s->actors[0], by_processed_desc);
  printf("\ntop %d actors by processed messages:\n", TOP_ACTORS);
  printf("%-14s %6s %-8s %9s %9s %9s %8s %8s %4s\n", "name", "id", "state",
         "received", "processed", "sent", "runs", "cpu us", "hwm");
  for (size_t i = 0; i < s->actor_count && i < TOP_ACTORS; i++) {
    const pn_actor_stats *a = &s->actors[i];
    printf("%-14s %6" PRIu64 " %-8s %9" PRIu64 " %9" PRIu64 " %9" PRIu64
           " %8" PRIu64 " %8" PRIu64 " %4" PRIu32 "\n",
           a->name, a->id, pn_actor_state_name(a->state), a->received,
           a->processed, a->sent, a->runs, a->cpu_ns / 1000, a->mailbox_hwm);
  }
  /* A tiny run can finish within the clock's resolution. */
  double secs = elapsed_ns > 0 ? (double)elapsed_ns / 1e9 : 1e-9;
  printf("\n%" PRIu64 " messages in %.3f s: %.0f messages/s\n", total, secs,
         (double)total / secs);
}

static bool check(pn_err err, const char *what) {
  if (err != PN_OK) {
    fprintf(stderr, "peernet-actors-demo: %s: %s (%s)\n", what,
            pn_strerror(err), pn_err_name(err));
  }
  return err == PN_OK;
}

int main(int argc, char **argv) {
  options o;
  parse_args(argc, argv, &o);
  ring_node *nodes = calloc(o.actors, sizeof *nodes);
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = (uint32_t)o.workers;
  pn_runtime *rt = NULL;
  if (nodes == NULL) {
    fprintf(stderr, "peernet-actors-demo: out of memory\n");
    return 1;
  }
  if (!check(pn_runtime_create(&rcfg, &rt), "creating the runtime")) {
    free(nodes);
    return 1;
  }
  printf("peernet %s: %" PRIu64 " actors in %" PRIu64 " rings, %" PRIu64
         " tokens/ring, %" PRIu64 " hops each, %" PRIu32 " workers (%s)\n",
         pn_version(), o.actors, o.rings, o.tokens, o.hops,
         pn_runtime_workers(rt), pn_runtime_io_name(rt));

  outcome out = {.err = PN_OK};
  pthread_mutex_init(&out.lock, NULL);
  pthread_cond_init(&out.cv, NULL);
  reporter rep = {.out = &out,
                  .tokens_left = o.rings * o.tokens,
                  .total_hops = o.rings * o.tokens * (o.hops + 1)};
  pn_actor *reporter_actor = NULL;
  pn_timer *tick = NULL;
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "reporter";
  acfg.handler = reporter_handler;
  acfg.state = &rep;
  bool ok = check(pn_spawn(rt, &acfg, &reporter_actor), "spawning reporter");
  acfg.handler = ring_handler;
  /* A node learns its successor only once that one is spawned. That is safe:
   * no handler runs before the first token, and sending it orders these
   * writes before every handler that follows. */
  for (uint64_t r = 0; ok && r < o.rings; r++) {
    uint64_t first = ring_start(&o, r), end = ring_start(&o, r + 1);
    for (uint64_t i = first; ok && i < end; i++) {
      char name[48]; /* fits any two uint64 values; pn_spawn copies it */
      snprintf(name, sizeof name, "ring%" PRIu64 "-%" PRIu64, r, i - first);
      acfg.name = name;
      acfg.state = &nodes[i];
      nodes[i].reporter = reporter_actor;
      nodes[i].out = &out;
      ok = check(pn_spawn(rt, &acfg, &nodes[i].handle), "spawning ring actor");
    }
    for (uint64_t i = first; ok && i < end; i++) {
      nodes[i].next = nodes[i + 1 < end ? i + 1 : first].handle;
    }
  }
  rep.start_ns = now_ns();
  if (ok) {
    ok = check(pn_timer_start(reporter_actor, MSG_TICK, REPORT_PERIOD_US,
                              REPORT_PERIOD_US, &tick),
               "starting the progress timer");
  }
  for (uint64_t r = 0; ok && r < o.rings; r++) {
    uint64_t first = ring_start(&o, r), size = ring_start(&o, r + 1) - first;
    for (uint64_t t = 0; ok && t < o.tokens; t++) {
      /* Start the tokens spread out; whether they stay apart is up to the
       * scheduler, and the final table shows it. */
      ok = check(pn_send(nodes[first + t * size / o.tokens].handle, MSG_TOKEN,
                         &o.hops, sizeof o.hops),
                 "sending a token");
    }
  }

  if (ok) {
    pthread_mutex_lock(&out.lock);
    while (!out.done) {
      pthread_cond_wait(&out.cv, &out.lock);
    }
    pthread_mutex_unlock(&out.lock);
    ok = check(out.err, out.what);
  }
  if (tick != NULL) {
    pn_timer_cancel(tick);
  }
  pn_snapshot *snap = NULL;
  if (ok && (ok = check(pn_snapshot_take(rt, &snap), "final snapshot"))) {
    print_report(snap, out.end_ns - rep.start_ns);
    pn_snapshot_free(snap);
  }

  /* Shut down before releasing anything: on an error path tokens may still
   * be moving, and the nodes only borrow the handles main holds. */
  ok = check(pn_runtime_shutdown(rt, UINT64_MAX), "shutting down") && ok;
  if (reporter_actor != NULL) {
    pn_actor_release(reporter_actor);
  }
  for (uint64_t i = 0; i < o.actors; i++) {
    if (nodes[i].handle != NULL) {
      pn_actor_release(nodes[i].handle);
    }
  }
  pn_err err = pn_runtime_destroy(rt);
  if (check(err, "destroying the runtime")) {
    printf("clean shutdown: every actor, message and timer freed\n");
  }
  pthread_mutex_destroy(&out.lock);
  pthread_cond_destroy(&out.cv);
  free(nodes);
  return ok && err == PN_OK ? 0 : 1;
}
