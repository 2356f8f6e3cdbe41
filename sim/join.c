/* A run across processes (include/peernet/sim.h, "Across processes"):
 * each process registers its blocks and its inbox on its node under
 * names made of the run's name and a hash of its config, finds the other
 * processes' blocks and inboxes by looking those names up on their nodes
 * (again until they are there, or the join timeout), and monitors the
 * other processes' blocks, so that a node lost mid-run ends the run
 * everywhere (PN_EUNREACHABLE) instead of leaving it waiting. On the
 * calling thread of pn_sim_run. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peernet/inbox.h"
#include "sim/sim.h"

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What every process must agree on: runs that differ find none of each
 * other's names. FNV-1a over the fields, one at a time. */
static uint32_t config_hash(const pn__sim_run *run) {
  const pn_sim_config *c = &run->cfg;
  uint64_t words[] = {c->lp_count,
                      run->blocks,
                      c->seed,
                      (uint64_t)c->sync,
                      c->event_max,
                      run->nprocs,
                      run->model.lp_state_size,
                      0,
                      0,
                      0};
  memcpy(&words[7], &c->lookahead, sizeof(double));
  memcpy(&words[8], &c->end_time, sizeof(double));
  memcpy(&words[9], &c->tick, sizeof(double));
  uint64_t h = 0xcbf29ce484222325ull;
  const uint8_t *p = (const uint8_t *)words;
  for (size_t i = 0; i < sizeof words; i++) {
    h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return (uint32_t)(h ^ (h >> 32));
}

static void block_name(const pn__sim_run *run, uint32_t b, char *out,
                       size_t cap) {
  snprintf(out, cap, "%s.%08" PRIx32 ".b%" PRIu32, run->cfg.run_name,
           config_hash(run), b);
}

static void inbox_name(const pn__sim_run *run, uint32_t p, char *out,
                       size_t cap) {
  snprintf(out, cap, "%s.%08" PRIx32 ".r%" PRIu32, run->cfg.run_name,
           config_hash(run), p);
}

/* Looks "<node>/<name>" up until it is there: PN_OK with *ref, or
 * PN_ETIMEDOUT at the deadline (or another error of the lookup). */
static pn_err resolve(pn__sim_run *run, uint32_t proc, const char *name,
                      uint64_t deadline_ms, pn_ref *ref) {
  char path[2 * PN_NODE_NAME_MAX + 2];
  snprintf(path, sizeof path, "%s/%s", run->cfg.nodes[proc], name);
  for (uint64_t tag = 1;; tag++) {
    pn_err err = pn_node_lookup(run->node, path, run->inbox, tag);
    if (err != PN_OK) {
      return err;
    }
    pn_node_result r = {.status = PN_ETIMEDOUT};
    for (;;) {
      uint64_t now = now_ms();
      pn_msg *m = NULL;
      if (now >= deadline_ms ||
          pn_inbox_receive(run->inbox, (deadline_ms - now) * 1000u, &m) !=
              PN_OK) {
        return PN_ETIMEDOUT;
      }
      bool mine = pn_msg_type(m) == PN_MSG_NODE_LOOKUP &&
                  pn_msg_node_result(m, &r) == PN_OK && r.tag == tag;
      /* A DOWN now: a process found and monitored before has gone. */
      bool down = pn_msg_type(m) == PN_MSG_DOWN;
      pn_inbox_release(run->inbox, m); /* nothing else comes before START */
      if (down) {
        return PN_EUNREACHABLE;
      }
      if (mine) {
        break;
      }
    }
    if (r.status == PN_OK) {
      *ref = r.ref;
      return PN_OK;
    }
    if (r.status != PN_ENOENT && r.status != PN_EUNREACHABLE) {
      return r.status;
    }
    /* Not there yet (that process has not registered, or its node has
     * not joined): ask again in a while. */
    struct timespec pause = {.tv_nsec = 20 * 1000 * 1000};
    if (now_ms() + 20 >= deadline_ms) {
      return PN_ETIMEDOUT;
    }
    nanosleep(&pause, NULL);
  }
}

pn_err pn__sim_join(pn__sim_run *run) {
  char name[PN_NODE_NAME_MAX + 1];
  uint64_t timeout =
      run->cfg.join_timeout_ms ? run->cfg.join_timeout_ms : 30000u;
  uint64_t now = now_ms();
  uint64_t deadline = timeout < UINT64_MAX - now ? now + timeout : UINT64_MAX;
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (run->actors[b]) {
      block_name(run, b, name, sizeof name);
      pn_err err = pn_node_register(run->node, name, run->actors[b]);
      if (err != PN_OK) {
        return err;
      }
      run->registered++;
    }
  }
  inbox_name(run, run->rank, name, sizeof name);
  pn_err err = pn_node_register(run->node, name, run->inbox);
  if (err != PN_OK) {
    return err;
  }
  run->inbox_registered = true;
  for (uint32_t p = 0; p < run->nprocs; p++) {
    if (p == run->rank) {
      continue;
    }
    inbox_name(run, p, name, sizeof name);
    err = resolve(run, p, name, deadline, &run->inbox_refs[p]);
    if (err != PN_OK) {
      return err;
    }
  }
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (run->actors[b]) {
      continue;
    }
    block_name(run, b, name, sizeof name);
    err = resolve(run, b % run->nprocs, name, deadline, &run->refs[b]);
    if (err == PN_OK) {
      err = pn_node_monitor(run->node, run->inbox, &run->refs[b],
                            &run->monitors[b]);
    }
    if (err != PN_OK) {
      return err;
    }
  }
  return PN_OK;
}

void pn__sim_leave(pn__sim_run *run) {
  char name[PN_NODE_NAME_MAX + 1];
  for (uint32_t b = 0; b < run->blocks; b++) {
    if (run->monitors[b]) {
      (void)pn_node_demonitor(run->node, &run->refs[b], run->monitors[b]);
    }
  }
  for (uint32_t b = 0; run->registered && b < run->blocks; b++) {
    if (run->actors[b]) {
      block_name(run, b, name, sizeof name);
      (void)pn_node_unregister(run->node, name);
    }
  }
  if (run->inbox_registered) {
    inbox_name(run, run->rank, name, sizeof name);
    (void)pn_node_unregister(run->node, name);
  }
}
