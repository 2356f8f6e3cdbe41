/* peernet-bench phold: the PHOLD benchmark (Fujimoto 1990) as ROSS runs
 * it (models/phold in ROSS-org/ROSS), the anchor of record for parallel
 * discrete-event engines. Each LP starts with start-events events; each
 * event it handles schedules one more, at lookahead + exponential(mean)
 * from now, to an LP chosen uniformly among all of them with probability
 * `remote`, to itself otherwise. The run ends at simulated time `end`.
 *
 * Prints {"bench":"phold",...,"events":N,"events_per_s":X,"digest":"..."}:
 * events handled over the wall time of the event phase (the init
 * handlers excluded, as ROSS excludes its setup), and the digest, equal
 * for equal parameters whatever the number of workers.
 */
#include "tests/bench/bench_sim.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peernet/peernet.h"

typedef struct phold_params {
  uint64_t lps_per_worker, start_events, seed;
  double remote, lookahead, mean, end;
  uint32_t workers, processes, blocks;
  /* Across processes: this one's rank (0: the one that prints), and the
   * first one's port, that the others join through (internal options the
   * first gives the others it starts). */
  uint32_t rank;
  uint64_t seed_port;
} phold_params;

static void phold_init(pn_sim_ctx *ctx, void *state, void *user) {
  (void)state;
  const phold_params *p = user;
  for (uint64_t i = 0; i < p->start_events; i++) {
    double delay = p->lookahead + pn_sim_exponential(ctx, p->mean);
    (void)pn_sim_schedule(ctx, pn_sim_lp(ctx), delay, NULL, 0);
  }
}

static void phold_event(pn_sim_ctx *ctx, void *state, const void *data,
                        size_t len, void *user) {
  (void)state;
  (void)data;
  (void)len;
  const phold_params *p = user;
  uint64_t to = pn_sim_lp(ctx);
  if (pn_sim_uniform(ctx) < p->remote) {
    to = pn_sim_below(ctx, pn_sim_lp_count(ctx));
  }
  double delay = p->lookahead + pn_sim_exponential(ctx, p->mean);
  (void)pn_sim_schedule(ctx, to, delay, NULL, 0);
}

static bool parse_double(const char *s, double *out) {
  char *end = NULL;
  if (!s || !*s) {
    return false;
  }
  *out = strtod(s, &end);
  return *end == '\0';
}

static bool parse_u64(const char *s, uint64_t *out) {
  char *end = NULL;
  if (!s || !*s || *s == '-') {
    return false;
  }
  *out = strtoull(s, &end, 10);
  return *end == '\0';
}

static bool parse(int argc, char **argv, phold_params *p) {
  for (int i = 0; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    uint64_t u = 0;
    bool ok;
    if (strcmp(k, "--lps-per-worker") == 0) {
      ok = parse_u64(v, &p->lps_per_worker) && p->lps_per_worker > 0;
    } else if (strcmp(k, "--start-events") == 0) {
      ok = parse_u64(v, &p->start_events);
    } else if (strcmp(k, "--seed") == 0) {
      ok = parse_u64(v, &p->seed);
    } else if (strcmp(k, "--remote") == 0) {
      ok = parse_double(v, &p->remote) && p->remote >= 0 && p->remote <= 1;
    } else if (strcmp(k, "--lookahead") == 0) {
      ok = parse_double(v, &p->lookahead) && p->lookahead > 0;
    } else if (strcmp(k, "--mean") == 0) {
      ok = parse_double(v, &p->mean) && p->mean >= 0;
    } else if (strcmp(k, "--end") == 0) {
      ok = parse_double(v, &p->end) && p->end > 0;
    } else if (strcmp(k, "--workers") == 0) {
      ok = parse_u64(v, &u) && u >= 1 && u <= 1024;
      p->workers = (uint32_t)u;
    } else if (strcmp(k, "--blocks") == 0) {
      ok = parse_u64(v, &u) && u <= 1u << 20;
      p->blocks = (uint32_t)u;
    } else if (strcmp(k, "--processes") == 0) {
      ok = parse_u64(v, &u) && u >= 1 && u <= 64;
      p->processes = (uint32_t)u;
    } else if (strcmp(k, "--rank") == 0) {
      ok = parse_u64(v, &u) && u < 64;
      p->rank = (uint32_t)u;
    } else if (strcmp(k, "--seed-port") == 0) {
      ok = parse_u64(v, &p->seed_port) && p->seed_port > 0 &&
           p->seed_port < 65536;
    } else {
      ok = false;
    }
    if (!ok) {
      fprintf(stderr, "phold: bad option %s %s\n", k, v);
      return false;
    }
  }
  if (argc % 2) {
    fprintf(stderr, "phold: %s needs a value\n", argv[argc - 1]);
    return false;
  }
  return true;
}

/* The other processes of a run, started with this one's options and
 * their rank; they print nothing. Everything the child needs is made
 * before the fork: a child of a threaded process may not allocate. */
static pid_t start_rank(char **argv, int argc, uint32_t rank, uint16_t port) {
  char rank_s[16], port_s[16];
  snprintf(rank_s, sizeof rank_s, "%u", rank);
  snprintf(port_s, sizeof port_s, "%u", (unsigned)port);
  char **args = calloc((size_t)argc + 8, sizeof *args);
  if (!args) {
    return -1;
  }
  int k = 0;
  args[k++] = (char *)"/proc/self/exe";
  args[k++] = (char *)"phold";
  for (int i = 0; i < argc; i++) {
    args[k++] = argv[i];
  }
  args[k++] = (char *)"--rank";
  args[k++] = rank_s;
  args[k++] = (char *)"--seed-port";
  args[k++] = port_s;
  pid_t pid = fork();
  if (pid == 0) {
    execv("/proc/self/exe", args);
    _exit(127);
  }
  free(args);
  return pid;
}

static const char *const *node_names(uint32_t n) {
  static char names[64][24];
  static const char *ptrs[64];
  for (uint32_t i = 0; i < n; i++) {
    snprintf(names[i], sizeof names[i], "phold-%u", i);
    ptrs[i] = names[i];
  }
  return ptrs;
}

int bench_phold(int argc, char **argv) {
  phold_params p = {.lps_per_worker = 1024,
                    .start_events = 1,
                    .seed = 1,
                    .remote = 0.1,
                    .lookahead = 1.0,
                    .mean = 1.0,
                    .end = 2000.0,
                    .workers = 1,
                    .processes = 1};
  if (!parse(argc, argv, &p)) {
    return 2;
  }
  if (p.rank >= p.processes || (p.rank && !p.seed_port)) {
    fprintf(stderr, "phold: --rank needs --seed-port and --processes\n");
    return 2;
  }
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = p.workers;
  pn_runtime *rt = NULL;
  pn_err err = pn_runtime_create(&rc, &rt);
  if (err != PN_OK) {
    fprintf(stderr, "phold: runtime: %s\n", pn_err_name(err));
    return 1;
  }
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.init = phold_init;
  m.event = phold_event;
  m.user = &p;
  pn_sim_config c = PN_SIM_CONFIG_INIT;
  c.lp_count = p.lps_per_worker * p.workers * p.processes;
  c.lookahead = p.lookahead;
  c.end_time = p.end;
  c.seed = p.seed;
  c.blocks = p.blocks;
  c.event_max = 8;
  pn_node *node = NULL;
  pid_t children[64] = {0};
  if (p.processes > 1) {
    const char *const *names = node_names(p.processes);
    pn_node_config nc = PN_NODE_CONFIG_INIT;
    nc.name = names[p.rank];
    pn_addr seed = {0};
    if (p.rank) {
      char text[32];
      snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)p.seed_port);
      (void)pn_addr_parse(text, &seed);
      nc.seeds = &seed;
      nc.seed_count = 1;
    }
    pn_addr me;
    err = pn_node_open(rt, &nc, &node);
    if (err == PN_OK && !p.rank && pn_node_addr(node, &me) == PN_OK) {
      for (uint32_t r = 1; r < p.processes; r++) {
        children[r] = start_rank(argv, argc, r, me.port);
      }
    }
    c.node = node;
    c.nodes = names;
    c.node_count = p.processes;
    c.run_name = "phold";
  }
  pn_sim_result r;
  if (err == PN_OK) {
    err = pn_sim_run(rt, &m, &c, &r);
  }
  pn_node_close(node);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  (void)pn_runtime_destroy(rt);
  int failed_children = 0;
  for (uint32_t i = 1; i < p.processes && !p.rank; i++) {
    int status = 0;
    if (children[i] <= 0 || waitpid(children[i], &status, 0) < 0 ||
        !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      failed_children++;
    }
  }
  if (err != PN_OK || failed_children) {
    fprintf(stderr, "phold: %s%s\n", pn_err_name(err),
            failed_children ? " (another process failed)" : "");
    return 1;
  }
  if (p.rank) {
    return 0;
  }
  double run_s = (double)r.run_ns / 1e9;
  printf("{\"bench\":\"phold\",\"workers\":%u,\"processes\":%u,"
         "\"lps\":%" PRIu64 ",\"remote\":%g,\"lookahead\":%g,\"mean\":%g,"
         "\"start_events\":%" PRIu64 ",\"end\":%g,\"seed\":%" PRIu64
         ",\"events\":%" PRIu64 ",\"windows\":%" PRIu64
         ",\"init_s\":%.4f,\"run_s\":%.4f,\"events_per_s\":%.0f,"
         "\"digest\":\"%016" PRIx64 "\"}\n",
         p.workers, p.processes, c.lp_count, p.remote, p.lookahead, p.mean,
         p.start_events, p.end, p.seed, r.events, r.windows,
         (double)r.init_ns / 1e9, run_s,
         run_s > 0 ? (double)r.events / run_s : 0.0, r.digest);
  return 0;
}
