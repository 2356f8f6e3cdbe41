/* Simulation runs across processes (include/peernet/sim.h, "Across
 * processes"), on both I/O backends: nodes on their own runtimes, as
 * processes would be, each calling pn_sim_run on its own thread. Two
 * nodes give the digest one process gives; a node lost mid-run ends the
 * run on every node with PN_EUNREACHABLE, none hangs; a config that
 * differs between nodes never joins (PN_ETIMEDOUT); bad node configs
 * are refused.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "nodes/node.h" /* a node's host, to silence it */
#include "peernet/peernet.h"
#include "tests/net/net_harness.h"
#include "tests/sim/token_model.h"

enum { MAX_NODES = 3 };

typedef struct sim_proc {
  pn_runtime *rt;
  pn_node *node;
  token_model tm;
  pn_sim_model m;
  pn_sim_config c;
  pn_sim_result r;
  pn_err err;
  pthread_t thread;
} sim_proc;

static const char *const names[MAX_NODES] = {"sim-a", "sim-b", "sim-c"};

static void *proc_main(void *arg) {
  sim_proc *p = arg;
  p->err = pn_sim_run(p->rt, &p->m, &p->c, &p->r);
  return NULL;
}

/* n nodes, each on a runtime of one worker, joined through the first. */
static void procs_open(sim_proc *procs, uint32_t n, uint64_t detect_us) {
  pn_addr seed;
  for (uint32_t i = 0; i < n; i++) {
    pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
    rc.workers = 1;
    rc.io = net_backend;
    PN_ASSERT_OK(pn_runtime_create(&rc, &procs[i].rt));
    pn_node_config nc = PN_NODE_CONFIG_INIT;
    nc.name = names[i];
    nc.detect_us = detect_us;
    nc.seeds = i ? &seed : NULL;
    nc.seed_count = i ? 1 : 0;
    PN_ASSERT_OK(pn_node_open(procs[i].rt, &nc, &procs[i].node));
    if (!i) {
      PN_ASSERT_OK(pn_node_addr(procs[0].node, &seed));
    }
  }
}

typedef struct run_params {
  uint32_t nodes, blocks;
  uint32_t hops; /* 0: 1000 */
  uint64_t seed, join_timeout_ms;
  const char *name;
  double end_time; /* 0: the model's */
} run_params;

/* Starts procs[i]'s run on its own thread. */
static void proc_start(sim_proc *p, const run_params *rp) {
  p->tm.hops = rp->hops ? rp->hops : 1000;
  p->tm.mark = 20.0;
  token_model_setup(&p->tm, &p->m, &p->c);
  p->c.seed = rp->seed;
  p->c.blocks = rp->blocks;
  p->c.node = p->node;
  p->c.nodes = names;
  p->c.node_count = rp->nodes;
  p->c.run_name = rp->name;
  p->c.join_timeout_ms = rp->join_timeout_ms;
  if (rp->end_time > 0) {
    p->c.end_time = rp->end_time;
  }
  assert_int_equal(pthread_create(&p->thread, NULL, proc_main, p), 0);
}

static void procs_start(sim_proc *procs, const run_params *rp) {
  for (uint32_t i = 0; i < rp->nodes; i++) {
    proc_start(&procs[i], rp);
  }
}

static void procs_join(sim_proc *procs, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    pthread_join(procs[i].thread, NULL);
  }
}

static void procs_close(sim_proc *procs, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    pn_node_close(procs[i].node);
    PN_ASSERT_OK(pn_runtime_shutdown(procs[i].rt, UINT64_MAX));
    pn_test_runtime_end(procs[i].rt);
  }
}

/* The same run on one runtime (4 blocks, 2 workers). */
static pn_sim_result one_process(uint64_t seed) {
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  rc.io = net_backend;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&rc, &rt));
  token_model tm = {.hops = 1000};
  pn_sim_model m;
  pn_sim_config c;
  token_model_setup(&tm, &m, &c);
  c.seed = seed;
  c.blocks = 4;
  pn_sim_result r;
  PN_ASSERT_OK(pn_sim_run(rt, &m, &c, &r));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
  return r;
}

static void two_nodes_same_digest_as_one_process(void **state) {
  (void)state;
  uint64_t seed = pn_test_seed();
  pn_sim_result base = one_process(seed);
  sim_proc procs[2];
  memset(procs, 0, sizeof procs);
  procs_open(procs, 2, 0);
  run_params rp = {.nodes = 2,
                   .blocks = 4,
                   .seed = seed,
                   .join_timeout_ms = NET_WAIT_MS,
                   .name = "tokens"};
  procs_start(procs, &rp);
  procs_join(procs, 2);
  for (int i = 0; i < 2; i++) {
    PN_ASSERT_OK(procs[i].err);
    assert_int_equal(procs[i].r.events, base.events);
    assert_int_equal(procs[i].r.digest, base.digest);
    assert_memory_equal(procs[i].r.sums, base.sums, sizeof base.sums);
  }
  fprintf(stderr, "# two nodes: %llu events, digest %016llx as one process\n",
          (unsigned long long)base.events, (unsigned long long)base.digest);
  /* And again on the same nodes: the names of the first run are gone. */
  procs_start(procs, &rp);
  procs_join(procs, 2);
  for (int i = 0; i < 2; i++) {
    PN_ASSERT_OK(procs[i].err);
    assert_int_equal(procs[i].r.digest, base.digest);
  }
  procs_close(procs, 2);
}

/* Three nodes; once the run is past simulated time 20, the third goes
 * silent (its host drops everything, as when its machine dies): every
 * node's run ends with PN_EUNREACHABLE within about detect_us. */
static void a_node_lost_mid_run_ends_it_everywhere(void **state) {
  (void)state;
  sim_proc procs[3];
  memset(procs, 0, sizeof procs);
  procs_open(procs, 3, 300000);
  run_params rp = {.nodes = 3,
                   .blocks = 6,
                   .seed = pn_test_seed(),
                   .join_timeout_ms = NET_WAIT_MS,
                   .name = "lost",
                   .end_time = 1e9,
                   .hops = UINT32_MAX}; /* it runs until a node is lost */
  procs_start(procs, &rp);
  uint64_t t0 = net_now_ms();
  while (!atomic_load(&procs[0].tm.marked) && net_now_ms() - t0 < NET_WAIT_MS) {
    sched_yield();
  }
  assert_true(atomic_load(&procs[0].tm.marked));
  pn_link_conditioner dead = PN_LINK_CONDITIONER_INIT;
  dead.loss = 1.0;
  PN_ASSERT_OK(
      pn_host_set_conditioner(procs[2].node->host, 0, PN_DIR_SEND, &dead));
  PN_ASSERT_OK(
      pn_host_set_conditioner(procs[2].node->host, 0, PN_DIR_RECV, &dead));
  uint64_t t1 = net_now_ms();
  procs_join(procs, 3);
  fprintf(stderr, "# node lost: every run ended %llu ms later\n",
          (unsigned long long)(net_now_ms() - t1));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(procs[i].err, PN_EUNREACHABLE);
  }
  procs_close(procs, 3);
}

/* Two nodes whose configs differ (the seed) never find each other's
 * blocks: both give up at the join timeout. */
static void differing_configs_never_join(void **state) {
  (void)state;
  sim_proc procs[2];
  memset(procs, 0, sizeof procs);
  procs_open(procs, 2, 0);
  run_params rp = {.nodes = 2,
                   .blocks = 4,
                   .seed = 1,
                   .join_timeout_ms = 500,
                   .name = "differ"};
  proc_start(&procs[0], &rp);
  rp.seed = 2;
  proc_start(&procs[1], &rp);
  procs_join(procs, 2);
  assert_int_equal(procs[0].err, PN_ETIMEDOUT);
  assert_int_equal(procs[1].err, PN_ETIMEDOUT);
  procs_close(procs, 2);
}

/* A window whose events for another process's block are more than the
 * link's credit lets a block have out (two lane windows, 2 MiB by
 * default) goes in pieces as the other end takes them: the first node's
 * LPs each send a 4 KiB event to an LP of the second in their init, 2.4
 * MB one way, and the run ends with every event handled. (Both ways at
 * once is a known defect: each block is muted until the other takes
 * what it sent, and a muted block takes nothing.) */
static void big_init(pn_sim_ctx *ctx, void *state, void *user) {
  (void)state;
  (void)user;
  static const uint8_t bytes[4000];
  uint64_t n = pn_sim_lp_count(ctx), lp = pn_sim_lp(ctx);
  (void)pn_sim_schedule(ctx, lp < n / 2 ? lp + n / 2 : lp, 1.0, bytes,
                        sizeof bytes);
}

static void big_event(pn_sim_ctx *ctx, void *state, const void *data,
                      size_t len, void *user) {
  (void)ctx;
  (void)state;
  (void)data;
  (void)len;
  (void)user;
}

static void *big_main(void *arg) {
  sim_proc *p = arg;
  p->m = (pn_sim_model)PN_SIM_MODEL_INIT;
  p->m.init = big_init;
  p->m.event = big_event;
  p->c.lp_count = 1200;
  p->c.lookahead = 1.0;
  p->c.end_time = 10.0;
  p->c.event_max = 4000;
  p->c.blocks = 2;
  p->c.nodes = names;
  p->c.node_count = 2;
  p->c.run_name = "big";
  p->c.join_timeout_ms = NET_WAIT_MS;
  p->c.node = p->node;
  p->err = pn_sim_run(p->rt, &p->m, &p->c, &p->r);
  return NULL;
}

static void a_window_past_the_credit_waits_for_it(void **state) {
  (void)state;
  sim_proc procs[2];
  memset(procs, 0, sizeof procs);
  procs_open(procs, 2, 0);
  for (int i = 0; i < 2; i++) {
    procs[i].c = (pn_sim_config)PN_SIM_CONFIG_INIT;
    assert_int_equal(
        pthread_create(&procs[i].thread, NULL, big_main, &procs[i]), 0);
  }
  procs_join(procs, 2);
  for (int i = 0; i < 2; i++) {
    PN_ASSERT_OK(procs[i].err);
    assert_int_equal(procs[i].r.events, 1200);
  }
  procs_close(procs, 2);
}

static void bad_node_configs_refused(void **state) {
  (void)state;
  sim_proc procs[1];
  memset(procs, 0, sizeof procs);
  procs_open(procs, 1, 0);
  token_model tm = {.hops = 1};
  pn_sim_model m;
  pn_sim_config ok;
  token_model_setup(&tm, &m, &ok);
  ok.node = procs[0].node;
  ok.nodes = names;
  ok.node_count = 2;
  ok.run_name = "fine";
  pn_sim_result r;
  pn_sim_config c = ok;
  c.nodes = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  c = ok, c.node_count = 0;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  c = ok, c.nodes = names + 1, c.node_count = 2; /* not among them */
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  const char *const holes[] = {"sim-a", NULL};
  c = ok, c.nodes = holes;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  const char *const bad[] = {"sim-a", "no/slash"};
  c = ok, c.nodes = bad;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  c = ok, c.run_name = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  c = ok, c.run_name = "no/slash";
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  c = ok, c.run_name = "a-name-longer-than-24-bytes";
  PN_ASSERT_ERR(PN_EINVAL, pn_sim_run(procs[0].rt, &m, &c, &r));
  /* A process alone, the other never comes: the join timeout. */
  c = ok, c.join_timeout_ms = 200;
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_sim_run(procs[0].rt, &m, &c, &r));
  procs_close(procs, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(two_nodes_same_digest_as_one_process),
      cmocka_unit_test(a_node_lost_mid_run_ends_it_everywhere),
      cmocka_unit_test(differing_configs_never_join),
      cmocka_unit_test(a_window_past_the_credit_waits_for_it),
      cmocka_unit_test(bad_node_configs_refused),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
