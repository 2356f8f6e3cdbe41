/* peernet-epidemic: an epidemic (SIR) spreading over a map of towns,
 * simulated on PeerNet's engine (peernet/sim.h), on one process or
 * across several.
 *
 * The map is a grid of cells, each a logical process holding a town's
 * susceptible, infected and recovered people; a few cities stand out of
 * a rural plain. Each day (a tick of the time-stepped engine) every cell
 * infects some of its susceptible people (a binomial draw from the
 * infectious pressure of its own infected and of travellers who came the
 * day before), some infected recover, and some infected travel: to each
 * neighbour, and now and then far away, as an event for the next day.
 * The first case is in the largest city.
 *
 * Run with --processes N (default 3), it starts N processes on loopback:
 * this one is node epi-0 and starts epi-1.. as children that join
 * through it; the cells are spread over them in blocks, and each prints
 * the same digest at the end. Node epi-0 prints the epidemic's progress
 * while it runs, writes the daily counts to OUT/epidemic.csv, and draws
 * OUT/epidemic.svg: the curves, and the map of the day the epidemic
 * reached each town (each process writes its cells to OUT/cells-<rank>.csv;
 * node epi-0 joins them once the others have exited).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <peernet/peernet.h>

enum { MAX_PROCS = 16, SERIES_S = 0, SERIES_I, SERIES_R, SERIES_NEW };
static const double PI = 3.14159265358979323846;

typedef struct options {
  uint32_t width, height, days, processes, rank, workers;
  uint64_t seed;
  uint16_t join_port; /* 0: the first process */
  const char *out;
  char names[MAX_PROCS][16];
  const char *name_ptrs[MAX_PROCS];
} options;

/* A town. */
typedef struct cell {
  uint32_t s, i, r;
  uint32_t imported; /* infected travellers arrived since the last day */
  uint32_t reached;  /* the day of its first case (NEVER: none yet) */
} cell;

#define NEVER UINT32_MAX

/* The disease: infections a day per infected (beta), recovery a day
 * (gamma), travel a day to each neighbour, and far away. */
static const double BETA = 0.32, GAMMA = 0.1, TRAVEL = 0.004, FLY = 0.0002;

static uint32_t population(const options *o, uint32_t x, uint32_t y) {
  /* Cities: (x, y) as fractions of the map, people, radius in cells. */
  static const double cities[][4] = {{0.25, 0.30, 60000, 3.0},
                                     {0.70, 0.25, 35000, 2.5},
                                     {0.55, 0.70, 45000, 3.0},
                                     {0.15, 0.80, 20000, 2.0},
                                     {0.88, 0.75, 25000, 2.0}};
  double p = 300.0;
  for (size_t k = 0; k < sizeof cities / sizeof cities[0]; k++) {
    double dx = x - cities[k][0] * o->width, dy = y - cities[k][1] * o->height;
    double r = cities[k][3];
    p += cities[k][2] * exp(-(dx * dx + dy * dy) / (2 * r * r)) /
         (2 * PI * r * r) * 4.0;
  }
  return (uint32_t)p;
}

/* Binomial(n, p) from the LP's stream: exact below 40 trials, else a
 * normal draw (Box-Muller) rounded into [0, n]. */
static uint32_t binomial(pn_sim_ctx *ctx, uint32_t n, double p) {
  if (n == 0 || p <= 0) {
    return 0;
  }
  if (n < 40) {
    uint32_t k = 0;
    for (uint32_t t = 0; t < n; t++) {
      k += pn_sim_uniform(ctx) < p;
    }
    return k;
  }
  double mean = n * p, sd = sqrt(n * p * (1 - p));
  double u1 = 1.0 - pn_sim_uniform(ctx), u2 = pn_sim_uniform(ctx);
  double z = sqrt(-2.0 * log(u1)) * cos(2 * PI * u2);
  double k = floor(mean + sd * z + 0.5);
  return k < 0 ? 0 : k > n ? n : (uint32_t)k;
}

static void cell_init(pn_sim_ctx *ctx, void *state, void *user) {
  const options *o = user;
  cell *c = state;
  uint64_t lp = pn_sim_lp(ctx);
  c->s = population(o, (uint32_t)(lp % o->width), (uint32_t)(lp / o->width));
  c->reached = NEVER;
  /* The first cases: the centre of the largest city. */
  if (lp ==
      (uint64_t)(0.30 * o->height) * o->width + (uint64_t)(0.25 * o->width)) {
    c->i = 10;
    c->s -= 10;
    c->reached = 0;
  }
}

static void travel(pn_sim_ctx *ctx, uint64_t to, uint32_t people) {
  if (people) {
    (void)pn_sim_schedule(ctx, to, 1.0, &people, sizeof people);
  }
}

static void cell_day(pn_sim_ctx *ctx, void *state, void *user) {
  const options *o = user;
  cell *c = state;
  uint32_t n = c->s + c->i + c->r;
  if (c->i || c->imported) {
    double pressure = (BETA * (c->i + c->imported)) / (n ? n : 1);
    uint32_t infected = binomial(ctx, c->s, 1.0 - exp(-pressure));
    uint32_t recovered = binomial(ctx, c->i, GAMMA);
    c->s -= infected;
    c->i += infected - recovered;
    c->r += recovered;
    c->imported = 0;
    if (c->i && c->reached == NEVER) {
      c->reached = (uint32_t)pn_sim_now(ctx);
    }
    pn_sim_record(ctx, SERIES_NEW, infected);
    uint64_t lp = pn_sim_lp(ctx);
    uint32_t x = (uint32_t)(lp % o->width), y = (uint32_t)(lp / o->width);
    if (x > 0) {
      travel(ctx, lp - 1, binomial(ctx, c->i, TRAVEL));
    }
    if (x + 1 < o->width) {
      travel(ctx, lp + 1, binomial(ctx, c->i, TRAVEL));
    }
    if (y > 0) {
      travel(ctx, lp - o->width, binomial(ctx, c->i, TRAVEL));
    }
    if (y + 1 < o->height) {
      travel(ctx, lp + o->width, binomial(ctx, c->i, TRAVEL));
    }
    travel(ctx, pn_sim_below(ctx, pn_sim_lp_count(ctx)),
           binomial(ctx, c->i, FLY));
  }
  pn_sim_record(ctx, SERIES_S, c->s);
  pn_sim_record(ctx, SERIES_I, c->i);
  pn_sim_record(ctx, SERIES_R, c->r);
}

static void cell_travellers(pn_sim_ctx *ctx, void *state, const void *data,
                            size_t len, void *user) {
  (void)ctx;
  (void)user;
  cell *c = state;
  uint32_t people;
  if (len == sizeof people) {
    memcpy(&people, data, sizeof people);
    c->imported += people;
  }
}

/* Each process writes its own cells: lp,s,i,r,reached. */
typedef struct cells_out {
  FILE *f;
} cells_out;

static cells_out g_cells;

static void cell_finish(pn_sim_ctx *ctx, void *state, void *user) {
  (void)user;
  const cell *c = state;
  pn_sim_add(ctx, 0, c->r + c->i); /* everyone ever infected */
  if (g_cells.f) {
    fprintf(g_cells.f, "%" PRIu64 ",%u,%u,%u,%d\n", pn_sim_lp(ctx), c->s, c->i,
            c->r, c->reached == NEVER ? -1 : (int)c->reached);
  }
}

/* The progress of the run, day by day, on node epi-0. */
typedef struct progress {
  FILE *csv;
  uint32_t days;
  int64_t *s, *i, *r, *fresh;
} progress;

static void on_day(const pn_sim_progress *p, void *ctx) {
  progress *pr = ctx;
  if (p->window == 0) {
    return; /* the init handlers */
  }
  uint32_t day = (uint32_t)p->time;
  if (day >= pr->days) {
    return;
  }
  pr->s[day] = p->series[SERIES_S];
  pr->i[day] = p->series[SERIES_I];
  pr->r[day] = p->series[SERIES_R];
  pr->fresh[day] = p->series[SERIES_NEW];
  if (pr->csv) {
    fprintf(pr->csv, "%u,%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "\n",
            day, pr->s[day], pr->i[day], pr->r[day], pr->fresh[day]);
  }
  if (day % 20 == 0) {
    printf("day %3u: susceptible %9" PRId64 "  infected %8" PRId64
           "  recovered %9" PRId64 "  (%" PRIu64 " events)\n",
           day, pr->s[day], pr->i[day], pr->r[day], p->events);
    fflush(stdout);
  }
}

/* The picture: curves on the left; on the right the map, each town
 * coloured by the day the epidemic reached it (dark red first, then
 * orange to pale yellow; white never), darker where more people live. */
static void draw(const options *o, const progress *pr, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    return;
  }
  double total = (double)(pr->s[0] + pr->i[0] + pr->r[0]);
  int cw = 520, ch = 360, cell_px = 6;
  int mw = (int)o->width * cell_px, mh = (int)o->height * cell_px;
  int w = cw + mw + 60, h = (ch > mh ? ch : mh) + 80;
  fprintf(f,
          "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
          "font-family='sans-serif' font-size='13'>\n"
          "<rect width='100%%' height='100%%' fill='white'/>\n"
          "<text x='20' y='24' font-size='16'>SIR epidemic over %ux%u towns, "
          "%u days, %u process(es)</text>\n",
          w, h, o->width, o->height, o->days, o->processes);
  const char *colours[] = {"#3b7dd8", "#d83b3b", "#3bb35a"};
  const char *labels[] = {"susceptible", "infected", "recovered"};
  const int64_t *curves[] = {pr->s, pr->i, pr->r};
  for (int k = 0; k < 3; k++) {
    fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='2' points='",
            colours[k]);
    for (uint32_t d = 0; d < pr->days; d++) {
      fprintf(f, "%.1f,%.1f ", 20 + d * (double)cw / pr->days,
              50 + ch - (double)curves[k][d] / total * ch);
    }
    fprintf(f, "'/>\n<text x='%d' y='%d' fill='%s'>%s</text>\n", 30 + k * 120,
            ch + 70, colours[k], labels[k]);
  }
  fprintf(f,
          "<rect x='20' y='50' width='%d' height='%d' fill='none' "
          "stroke='#888'/>\n",
          cw, ch);
  /* The map, from every process's cells. */
  for (uint32_t p = 0; p < o->processes; p++) {
    char name[512];
    snprintf(name, sizeof name, "%s/cells-%u.csv", o->out, p);
    FILE *in = fopen(name, "r");
    uint64_t lp;
    unsigned s, i, r;
    int reached;
    while (in && fscanf(in, "%" SCNu64 ",%u,%u,%u,%d", &lp, &s, &i, &r,
                        &reached) == 5) {
      int red = 255, green = 255, blue = 255;
      if (reached >= 0) {
        double t = (double)reached / o->days; /* 0 early .. 1 late */
        red = 150 + (int)(105 * (t < 0.4 ? t / 0.4 : 1));
        green = (int)(235 * t);
        blue = (int)(150 * (t > 0.6 ? (t - 0.6) / 0.4 : 0));
      }
      fprintf(f,
              "<rect x='%d' y='%d' width='%d' height='%d' "
              "fill='rgb(%d,%d,%d)'/>\n",
              cw + 40 + (int)(lp % o->width) * cell_px,
              50 + (int)(lp / o->width) * cell_px, cell_px, cell_px, red, green,
              blue);
    }
    if (in) {
      fclose(in);
    }
  }
  fprintf(f,
          "<text x='%d' y='%d'>the day each town had its first case "
          "(dark red first, pale yellow last, white never)</text>\n"
          "</svg>\n",
          cw + 40, mh + 70);
  fclose(f);
}

static bool parse(int argc, char **argv, options *o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    bool num = *v && *end == '\0';
    if (strcmp(k, "--out") == 0) {
      o->out = v;
    } else if (!num) {
      return false;
    } else if (strcmp(k, "--width") == 0 && n >= 4 && n <= 1024) {
      o->width = (uint32_t)n;
    } else if (strcmp(k, "--height") == 0 && n >= 4 && n <= 1024) {
      o->height = (uint32_t)n;
    } else if (strcmp(k, "--days") == 0 && n >= 1 && n <= 10000) {
      o->days = (uint32_t)n;
    } else if (strcmp(k, "--processes") == 0 && n >= 1 && n <= MAX_PROCS) {
      o->processes = (uint32_t)n;
    } else if (strcmp(k, "--workers") == 0 && n >= 1 && n <= 64) {
      o->workers = (uint32_t)n;
    } else if (strcmp(k, "--seed") == 0) {
      o->seed = n;
    } else if (strcmp(k, "--rank") == 0 && n < MAX_PROCS) {
      o->rank = (uint32_t)n;
    } else if (strcmp(k, "--join") == 0 && n > 0 && n < 65536) {
      o->join_port = (uint16_t)n;
    } else {
      return false;
    }
  }
  return argc % 2 == 1 && o->rank < o->processes &&
         (o->rank == 0) == (o->join_port == 0);
}

/* The other processes: this program again, with their rank. All it
 * needs is made before the fork: a child of a threaded process may not
 * allocate. */
static pid_t start_rank(int argc, char **argv, uint32_t rank, uint16_t port) {
  char rank_s[16], port_s[16];
  snprintf(rank_s, sizeof rank_s, "%u", rank);
  snprintf(port_s, sizeof port_s, "%u", (unsigned)port);
  char **args = calloc((size_t)argc + 5, sizeof *args);
  if (!args) {
    return -1;
  }
  int k = 0;
  for (int i = 0; i < argc; i++) {
    args[k++] = argv[i];
  }
  args[k++] = (char *)"--rank";
  args[k++] = rank_s;
  args[k++] = (char *)"--join";
  args[k++] = port_s;
  pid_t pid = fork();
  if (pid == 0) {
    execv("/proc/self/exe", args);
    _exit(127);
  }
  free(args);
  return pid;
}

int main(int argc, char **argv) {
  options o = {.width = 96,
               .height = 64,
               .days = 300,
               .processes = 3,
               .workers = 1,
               .seed = 7,
               .out = "."};
  if (!parse(argc, argv, &o)) {
    fprintf(stderr, "usage: peernet-epidemic [--processes N] [--days D] "
                    "[--width W] [--height H] [--seed S] [--workers W] "
                    "[--out DIR]\n");
    return 2;
  }
  for (uint32_t p = 0; p < o.processes; p++) {
    snprintf(o.names[p], sizeof o.names[p], "epi-%u", p);
    o.name_ptrs[p] = o.names[p];
  }
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = o.workers;
  pn_runtime *rt = NULL;
  pn_node *node = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK) {
    return 1;
  }
  pid_t children[MAX_PROCS] = {0};
  if (o.processes > 1) {
    pn_node_config nc = PN_NODE_CONFIG_INIT;
    nc.name = o.names[o.rank];
    pn_addr seed, me;
    if (o.rank) {
      char text[32];
      snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)o.join_port);
      pn_addr_parse(text, &seed);
      nc.seeds = &seed;
      nc.seed_count = 1;
    }
    if (pn_node_open(rt, &nc, &node) != PN_OK ||
        pn_node_addr(node, &me) != PN_OK) {
      fprintf(stderr, "%s: could not open its node\n", o.names[o.rank]);
      return 1;
    }
    for (uint32_t r = 1; r < o.processes && !o.rank; r++) {
      children[r] = start_rank(argc, argv, r, me.port);
    }
  }
  char path[512];
  snprintf(path, sizeof path, "%s/cells-%u.csv", o.out, o.rank);
  g_cells.f = fopen(path, "w");
  progress pr = {.days = o.days};
  pr.s = calloc(o.days, sizeof *pr.s);
  pr.i = calloc(o.days, sizeof *pr.i);
  pr.r = calloc(o.days, sizeof *pr.r);
  pr.fresh = calloc(o.days, sizeof *pr.fresh);
  if (!o.rank) {
    snprintf(path, sizeof path, "%s/epidemic.csv", o.out);
    pr.csv = fopen(path, "w");
    if (pr.csv) {
      fprintf(pr.csv, "day,susceptible,infected,recovered,new\n");
    }
    printf("%u towns on a %ux%u map, %u days, %u process(es)\n",
           o.width * o.height, o.width, o.height, o.days, o.processes);
  }
  pn_sim_model m = PN_SIM_MODEL_INIT;
  m.lp_state_size = sizeof(cell);
  m.init = cell_init;
  m.tick = cell_day;
  m.event = cell_travellers;
  m.finish = cell_finish;
  m.user = &o;
  pn_sim_config c = PN_SIM_CONFIG_INIT;
  c.sync = PN_SIM_TIME_STEPPED;
  c.tick = 1.0;
  c.lp_count = (uint64_t)o.width * o.height;
  c.end_time = o.days;
  c.seed = o.seed;
  c.event_max = sizeof(uint32_t);
  c.blocks = 2 * o.processes; /* the same in every process */
  c.node = node;
  c.nodes = o.name_ptrs;
  c.node_count = node ? o.processes : 0;
  c.run_name = "epidemic";
  c.progress = o.rank ? NULL : on_day;
  c.progress_ctx = &pr;
  pn_sim_result res;
  pn_err err = pn_sim_run(rt, &m, &c, &res);
  if (g_cells.f) {
    fclose(g_cells.f);
  }
  if (pr.csv) {
    fclose(pr.csv);
  }
  pn_node_close(node);
  pn_runtime_destroy(rt);
  int failed = err != PN_OK;
  for (uint32_t r = 1; r < o.processes && !o.rank; r++) {
    int status = 0;
    failed |= children[r] <= 0 || waitpid(children[r], &status, 0) < 0 ||
              !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  if (err != PN_OK) {
    fprintf(stderr, "%s: %s\n", o.names[o.rank], pn_strerror(err));
  } else {
    printf("%s: digest %016" PRIx64 "\n", o.names[o.rank], res.digest);
  }
  if (!o.rank && !failed) {
    int64_t peak = 0;
    uint32_t peak_day = 0;
    for (uint32_t d = 0; d < o.days; d++) {
      if (pr.i[d] > peak) {
        peak = pr.i[d], peak_day = d;
      }
    }
    double total = (double)(pr.s[0] + pr.i[0] + pr.r[0]);
    snprintf(path, sizeof path, "%s/epidemic.svg", o.out);
    draw(&o, &pr, path);
    printf("summary: %.1f%% of %.0f people infected; the peak, %" PRId64
           " infected at once, on day %u; %" PRIu64 " events in %.2f s\n"
           "daily counts: %s/epidemic.csv\npicture: %s\n",
           100.0 * (double)res.sums[0] / total, total, peak, peak_day,
           res.events, (double)res.run_ns / 1e9, o.out, path);
  }
  free(pr.s);
  free(pr.i);
  free(pr.r);
  free(pr.fresh);
  return failed;
}
