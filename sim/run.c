/* pn_sim_run (include/peernet/sim.h): checks the model and the config,
 * maps the LPs to blocks, spawns one actor per block of this process,
 * joins the other processes of the run (join.c), starts the blocks,
 * waits for every block's RESULT (from every process) and for its own
 * blocks to stop, and adds the results up. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peernet/inbox.h"
#include "runtime/alloc.h"
#include "sim/sim.h"

/* 1..max bytes of letters, digits, '.', '-' and '_'. */
static bool name_ok(const char *name, size_t max) {
  size_t len = name ? strnlen(name, max + 1) : 0;
  if (len == 0 || len > max) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

/* This node's place in cfg->nodes, or node_count when it is not there. */
static uint32_t rank_of(const pn_sim_config *c) {
  const char *me = pn_node_name(c->node);
  for (uint32_t i = 0; i < c->node_count; i++) {
    if (strcmp(c->nodes[i], me) == 0) {
      return i;
    }
  }
  return c->node_count;
}

/* Every node named, validly: nodes[i] is looked up as a path. */
static bool nodes_ok(const pn_sim_config *c) {
  if (!c->nodes || c->node_count == 0 || c->node_count > 1024) {
    return false;
  }
  for (uint32_t i = 0; i < c->node_count; i++) {
    if (!name_ok(c->nodes[i], PN_NODE_NAME_MAX)) {
      return false;
    }
  }
  return rank_of(c) < c->node_count;
}

static bool config_ok(const pn_sim_model *m, const pn_sim_config *c) {
  if (m->size < sizeof *m || c->size < sizeof *c || !m->event ||
      c->lp_count == 0 || c->lp_count > UINT32_MAX || !(c->end_time > 0) ||
      !isfinite(c->end_time) || c->event_max > PN_SIM_EVENT_MAX) {
    return false;
  }
  if (c->sync == PN_SIM_TIME_STEPPED) {
    if (!(c->tick > 0) || !isfinite(c->tick)) {
      return false;
    }
  } else if (c->sync != PN_SIM_CONSERVATIVE || !(c->lookahead > 0) ||
             !isfinite(c->lookahead) || m->tick) {
    return false;
  }
  if (c->node && (!nodes_ok(c) || !name_ok(c->run_name, 24))) {
    return false;
  }
  return c->blocks <= c->lp_count;
}

/* Two blocks a worker (fewer when there are fewer LPs): while one waits
 * for its window's GO the other may run, and work stealing moves blocks
 * off a worker that has more than its share. */
static uint32_t default_blocks(const pn_sim_config *c, uint32_t workers,
                               uint32_t nprocs) {
  uint64_t b = 2ull * workers * nprocs;
  return (uint32_t)(b < c->lp_count ? b : c->lp_count);
}

static void run_free(pn__sim_run *run) {
  for (uint32_t i = 0; run->block && i < run->blocks; i++) {
    pn__sim_block_free(run->block[i]);
  }
  free(run->block);
  free(run->actors);
  free(run->lp_block);
  free(run->lp_local);
  free(run->refs);
  free(run->inbox_refs);
  free(run->monitors);
}

/* LPs to blocks: the user's map, or contiguous runs. False: a map gave a
 * block out of range, or memory ran out. */
static bool map_lps(pn__sim_run *run) {
  uint64_t n = run->cfg.lp_count;
  run->lp_block = malloc(n * sizeof *run->lp_block);
  run->lp_local = malloc(n * sizeof *run->lp_local);
  uint64_t *counts = calloc(run->blocks, sizeof *counts);
  uint64_t **lists = calloc(run->blocks, sizeof *lists);
  run->block = calloc(run->blocks, sizeof *run->block);
  bool ok = run->lp_block && run->lp_local && counts && lists && run->block;
  for (uint64_t lp = 0; ok && lp < n; lp++) {
    uint32_t b = run->cfg.map ? run->cfg.map(lp, run->blocks, run->cfg.map_ctx)
                              : (uint32_t)(lp * run->blocks / n);
    if (b >= run->blocks) {
      ok = false;
      break;
    }
    run->lp_block[lp] = b;
    run->lp_local[lp] = (uint32_t)counts[b]++;
  }
  for (uint32_t b = 0; ok && b < run->blocks; b++) {
    lists[b] = malloc((counts[b] ? counts[b] : 1) * sizeof **lists);
    ok = lists[b] != NULL;
  }
  for (uint64_t lp = 0; ok && lp < n; lp++) {
    lists[run->lp_block[lp]][run->lp_local[lp]] = lp;
  }
  for (uint32_t b = 0; ok && b < run->blocks; b++) {
    if (b % run->nprocs == run->rank) { /* this process's */
      run->block[b] = pn__sim_block_new(run, b, lists[b], counts[b]);
      ok = run->block[b] != NULL;
    }
  }
  for (uint32_t b = 0; lists && b < run->blocks; b++) {
    free(lists[b]);
  }
  free(lists);
  free(counts);
  return ok;
}

/* Spawns this process's blocks, each monitored by the inbox. */
static pn_err spawn_blocks(pn_runtime *rt, pn__sim_run *run) {
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (!run->block[b]) {
      continue;
    }
    pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
    ac.name = "sim-block";
    ac.handler = pn__sim_block_handler;
    ac.state = run->block[b];
    pn_actor *a = NULL;
    pn_err err = pn_spawn(rt, &ac, &a);
    if (err != PN_OK) {
      return err;
    }
    uint64_t mon = 0;
    err = pn_monitor(a, run->inbox, &mon);
    if (err != PN_OK) {
      /* Never started: it runs no handler, and no DOWN is awaited. */
      (void)pn_actor_stop(a);
      pn_actor_release(a);
      return err;
    }
    run->actors[b] = a;
  }
  return PN_OK;
}

/* Stops this process's blocks (with a reason the other processes read as
 * a failure when the run failed) and waits for each one's DOWN: then
 * nothing runs their handler any more, and their memory may go. */
static void stop_blocks(pn__sim_run *run, bool failed) {
  uint32_t spawned = 0;
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (run->block[b] && run->actors[b]) {
      (void)pn_actor_stop_reason(
          run->actors[b], failed ? PN__SIM_DOWN_FAILED : PN__SIM_DOWN_FINISHED);
      spawned++;
    }
  }
  uint32_t downs = 0;
  while (downs < spawned) {
    pn_msg *m = NULL;
    if (pn_inbox_receive(run->inbox, UINT64_MAX, &m) != PN_OK) {
      break; /* the runtime is going: its shutdown stopped them */
    }
    pn_down d;
    downs += pn_msg_down(m, &d) == PN_OK && d.node == 0;
    pn_inbox_release(run->inbox, m);
  }
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (run->block[b] && run->actors[b]) {
      pn_actor_release(run->actors[b]);
    }
  }
}

static void add_partial(pn_sim_result *r, const pn__sim_partial *p) {
  r->events += p->events;
  r->beyond_end += p->beyond_end;
  r->windows = p->windows;
  r->digest += p->digest;
  for (uint32_t i = 0; i < PN_SIM_SUMS; i++) {
    r->sums[i] = (int64_t)((uint64_t)r->sums[i] + (uint64_t)p->sums[i]);
  }
  if (p->last_ts > r->end_time) {
    r->end_time = p->last_ts;
  }
  if (p->run_start_ns) { /* block 0's */
    r->init_ns = p->run_start_ns - p->start_ns;
    r->run_ns = p->end_ns - p->run_start_ns;
  }
}

/* Every block's RESULT, from every process; or why the run ended without
 * them: a block here stopped (shutdown), or one elsewhere stopped for
 * anything but the run's end (its node lost, its process failed). */
static pn_err collect(pn__sim_run *run, pn_sim_result *r) {
  pn_err block_err = PN_OK;
  for (uint32_t results = 0; results < run->blocks;) {
    pn_msg *m = NULL;
    pn_err err = pn_inbox_receive(run->inbox, UINT64_MAX, &m);
    if (err != PN_OK) {
      return err;
    }
    pn_down d;
    if (pn_msg_type(m) == PN__SIM_RESULT &&
        pn_msg_size(m) == sizeof(pn__sim_partial)) {
      pn__sim_partial p;
      memcpy(&p, pn_msg_data(m), sizeof p);
      add_partial(r, &p);
      results++;
      if (p.err != PN_OK) {
        block_err = p.err;
      }
    } else if (pn_msg_type(m) == PN__SIM_PROGRESS &&
               pn_msg_size(m) == sizeof(pn_sim_progress)) {
      if (run->cfg.progress) {
        pn_sim_progress pr;
        memcpy(&pr, pn_msg_data(m), sizeof pr);
        run->cfg.progress(&pr, run->cfg.progress_ctx);
      }
    } else if (pn_msg_down(m, &d) == PN_OK &&
               (d.node == 0 || d.reason != PN__SIM_DOWN_FINISHED)) {
      /* A block here stopped before the end: it failed (a message it had
       * to send did not go), or the runtime is shutting down. One
       * elsewhere stopped for anything but the run's end: its process
       * failed, or its node was lost. */
      pn_inbox_release(run->inbox, m);
      return d.node == 0 && d.reason != PN__SIM_DOWN_FAILED ? PN_ECLOSED
                                                            : PN_EUNREACHABLE;
    }
    pn_inbox_release(run->inbox, m);
  }
  return block_err;
}

pn_err pn_sim_run(pn_runtime *rt, const pn_sim_model *model,
                  const pn_sim_config *cfg, pn_sim_result *out) {
  if (!rt || !model || !cfg || !out || pn_self() || !config_ok(model, cfg)) {
    return PN_EINVAL;
  }
  pn__sim_run run = {.model = *model, .cfg = *cfg, .nprocs = 1};
  if (cfg->node) {
    run.node = cfg->node;
    run.nprocs = cfg->node_count;
    run.rank = rank_of(cfg);
  }
  run.cfg.event_max = cfg->event_max ? cfg->event_max : 64;
  run.lookahead = cfg->sync == PN_SIM_TIME_STEPPED ? cfg->tick : cfg->lookahead;
  run.blocks = cfg->blocks
                   ? cfg->blocks
                   : default_blocks(cfg, pn_runtime_workers(rt), run.nprocs);
  run.actors = calloc(run.blocks, sizeof *run.actors);
  run.refs = calloc(run.blocks, sizeof *run.refs);
  run.monitors = calloc(run.blocks, sizeof *run.monitors);
  run.inbox_refs = calloc(run.nprocs, sizeof *run.inbox_refs);
  if (!run.actors || !run.refs || !run.monitors || !run.inbox_refs) {
    run_free(&run);
    return PN_ENOMEM;
  }
  if (!map_lps(&run)) {
    bool range = run.lp_block && run.lp_local && run.block;
    run_free(&run);
    return range && cfg->map ? PN_EINVAL : PN_ENOMEM;
  }
  pn_err err = pn_inbox_open(rt, "sim", &run.inbox);
  if (err != PN_OK) {
    run_free(&run);
    return err;
  }
  err = spawn_blocks(rt, &run);
  if (err == PN_OK && run.node) {
    err = pn__sim_join(&run);
  }
  for (uint32_t b = 0; err == PN_OK && b < run.blocks; b++) {
    if (run.block[b]) {
      err = pn_send(run.actors[b], PN__SIM_START, NULL, 0);
    }
  }
  pn_sim_result r = {0};
  if (err == PN_OK) {
    err = collect(&run, &r);
  }
  stop_blocks(&run, err != PN_OK);
  if (run.node) {
    pn__sim_leave(&run);
  }
  (void)pn_inbox_close(run.inbox);
  run_free(&run);
  if (err == PN_OK) {
    /* One more mix: a digest that reads as random whatever the sums. */
    r.digest = r.digest * 0x9E3779B97F4A7C15ull ^ r.events;
    *out = r;
  }
  return err;
}
