/* PeerNet simulation: a parallel discrete-event engine on actors.
 *
 * A model is a set of logical processes (LPs) numbered 0..lp_count-1, each
 * with a state the engine owns (lp_state_size bytes, zeroed) and three
 * handlers: init (once, at time 0), event (for each event that reaches
 * it, in timestamp order) and finish (once, when the run ends). An
 * event is a timestamp, a destination LP and up to event_max bytes; a
 * handler schedules one with pn_sim_schedule(), never less than the
 * model's lookahead ahead of its own time.
 *
 * LPs live in blocks, thousands to a block, one actor per block, two
 * blocks a worker by default (the mapping of LPs to blocks may be the
 * user's). Blocks run
 * in conservative windows: the global lower bound T on the timestamps of
 * every event not yet processed (events in flight included) is reduced
 * across the blocks, and every block processes its events below
 * T + lookahead in parallel, since no event scheduled inside the window
 * can land inside it. Time-stepped mode is the same with windows fixed
 * to ticks of `tick`, every tick visited, and an optional tick handler
 * that runs for every LP at each tick's start: for real-time worlds.
 *
 * Determinism: an LP handles its events in the total order (timestamp,
 * source LP, source's sequence number), and its random stream depends
 * only on the seed and the LP, so the results (the digest of the final
 * states, the event count, the sums) are bit-identical whatever the
 * number of workers and blocks, and from run to run.
 *
 * Which mode: conservative when events are sparse in time and the model
 * has a real lookahead (networks, queues, epidemics with incubation);
 * time-stepped when every LP acts every tick anyway (traffic on a grid,
 * game worlds) or the tick is what the model means.
 *
 * Threading: pn_sim_run() blocks its caller (an application thread, never
 * a handler) until the run ends. The handlers run on the runtime's
 * workers, one block at a time per block: an LP's state is touched only by
 * its own handlers, never concurrently. The pn_sim_ctx a handler gets is
 * valid for that call only, on that thread.
 */
#ifndef PEERNET_SIM_H
#define PEERNET_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "peernet/export.h"
#include "peernet/runtime.h"

struct pn_node;

#ifdef __cplusplus
extern "C" {
#endif

/* A handler's view of the engine: its LP, the time, its random stream,
 * scheduling. Borrowed for the call. */
typedef struct pn_sim_ctx pn_sim_ctx;

/* Handlers. state is the LP's own (lp_state_size bytes, zeroed before
 * init); user the model's. event: data is the event's bytes (len of them,
 * valid for the call). */
typedef void (*pn_sim_init_fn)(pn_sim_ctx *ctx, void *state, void *user);
typedef void (*pn_sim_event_fn)(pn_sim_ctx *ctx, void *state, const void *data,
                                size_t len, void *user);
typedef void (*pn_sim_finish_fn)(pn_sim_ctx *ctx, void *state, void *user);
/* Which block an LP lives in (< blocks): pure, called once per LP at the
 * start, from the calling thread. */
typedef uint32_t (*pn_sim_map_fn)(uint64_t lp, uint32_t blocks, void *ctx);

typedef enum pn_sim_sync {
  PN_SIM_CONSERVATIVE = 0, /* windows from the global lower bound */
  PN_SIM_TIME_STEPPED = 1  /* windows fixed to ticks */
} pn_sim_sync;

/* Most bytes of one event. */
#define PN_SIM_EVENT_MAX 4096u
/* Integer sums a run collects (pn_sim_add). */
#define PN_SIM_SUMS 8u

typedef struct pn_sim_model {
  size_t size;             /* sizeof(pn_sim_model) */
  size_t lp_state_size;    /* bytes of state per LP (0: none) */
  pn_sim_init_fn init;     /* may be NULL */
  pn_sim_event_fn event;   /* required */
  pn_sim_finish_fn finish; /* may be NULL */
  pn_sim_init_fn tick;     /* time-stepped only, may be NULL: each LP at
                              each tick's start, before its events */
  void *user;              /* passed to every handler; the caller's */
} pn_sim_model;

#define PN_SIM_MODEL_INIT                                                      \
  { .size = sizeof(pn_sim_model) }

/* A window's end, told to pn_sim_run's caller (progress below): what
 * the run has done so far and what the window's handlers recorded with
 * pn_sim_record (time-stepped: one tick's worth, so a time series). */
typedef struct pn_sim_progress {
  uint64_t window;             /* 0: the init handlers */
  double time;                 /* the window's start (its tick's) */
  uint64_t events;             /* handled so far, every block */
  int64_t series[PN_SIM_SUMS]; /* recorded in the window, every block */
} pn_sim_progress;

/* Called on pn_sim_run's thread, window by window, in order; p is valid
 * for the call. */
typedef void (*pn_sim_progress_fn)(const pn_sim_progress *p, void *ctx);

typedef struct pn_sim_config {
  size_t size;        /* sizeof(pn_sim_config) */
  uint64_t lp_count;  /* LPs, at least 1 */
  double lookahead;   /* > 0: the least delay of an event (conservative) */
  double end_time;    /* > 0: events at or after it are never handled */
  double tick;        /* time-stepped: the tick (> 0); the lookahead is it */
  pn_sim_sync sync;   /* PN_SIM_CONSERVATIVE by default */
  uint64_t seed;      /* the random streams' (printed by the caller) */
  uint32_t blocks;    /* 0: two per worker (at most lp_count); blocks
                         move between workers as work stealing finds
                         them */
  uint32_t event_max; /* bytes of an event; 0 = 64, at most
                         PN_SIM_EVENT_MAX */
  pn_sim_map_fn map;  /* NULL: LPs in contiguous runs, block by block */
  void *map_ctx;
  /* Across processes (NULL node: this runtime alone). Every process of
   * the run calls pn_sim_run with its own node and the same config: the
   * same `nodes` (names, in the same order; its own among them), run
   * name and model parameters, and (blocks 0) the same worker count.
   * Block b lives on nodes[b % node_count]; blocks find each other by
   * names registered on their nodes, and a run whose config differs
   * anywhere finds none (PN_ETIMEDOUT). */
  /* Known defect: two blocks in two processes that each schedule more
   * than two lane windows of events (2 MiB by default) for the other in
   * one window stall the run (each waits for the other's credit). */
  struct pn_node *node;
  const char *const *nodes;
  uint32_t node_count;
  const char *run_name;     /* letters, digits, '.', '-', '_'; 1..24;
                               another for a run that may overlap this
                               one on the same nodes (one started again
                               before every process returned from it) */
  uint64_t join_timeout_ms; /* for every process to come; 0 = 30 s */
  /* NULL: none. Across processes, the process of nodes[0] (which holds
   * block 0) tells every process that gives one. */
  pn_sim_progress_fn progress;
  void *progress_ctx;
} pn_sim_config;

#define PN_SIM_CONFIG_INIT                                                     \
  { .size = sizeof(pn_sim_config) }

typedef struct pn_sim_result {
  uint64_t events;           /* events handled (committed) */
  uint64_t beyond_end;       /* events scheduled at or after end_time */
  uint64_t windows;          /* windows (ticks) the run took */
  uint64_t digest;           /* of every LP's final state, random stream
                                and event count: equal runs, equal digest */
  int64_t sums[PN_SIM_SUMS]; /* what the handlers added (pn_sim_add) */
  uint64_t init_ns;          /* wall time of the init handlers */
  uint64_t run_ns;           /* wall time of the event phase */
  double end_time;           /* the last event's timestamp */
} pn_sim_result;

/* Runs a model to its end on rt's workers (and, with cfg->node, with
 * the other processes of the run) and fills *out: every process gets the
 * same result. Blocks the caller until then. The model's user pointer
 * and the map context are the caller's, used only during the call.
 * Errors, with *out untouched and nothing left running: PN_EINVAL (NULL,
 * small sizes, no event handler, lp_count 0 or 2^32 or more, lookahead or
 * end_time not > 0 or not finite, tick not > 0 in time-stepped mode,
 * event_max above PN_SIM_EVENT_MAX, blocks above lp_count, a map giving a
 * block out of range, called from a handler; across processes: no nodes,
 * a bad node name, this node not among them, a bad run name; or another
 * process sent what this one cannot read: their maps differ), PN_ETIMEDOUT (the
 * other processes did not all come within join_timeout_ms), PN_EUNREACHABLE (a
 * node of the run was lost, or its process failed, mid-run: every other process
 * ends its run with it, none hangs), PN_ECLOSED (runtime or node closing),
 * PN_ENOMEM. Any thread but a worker's. */
PN_API pn_err pn_sim_run(pn_runtime *rt, const pn_sim_model *model,
                         const pn_sim_config *cfg, pn_sim_result *out);

/* Schedules an event of len bytes (copied) for LP `to` at now + delay.
 * Errors, with nothing scheduled: PN_EINVAL (NULL ctx, NULL data with len
 * > 0, delay below the lookahead (the tick, time-stepped) or not finite),
 * PN_ENOENT (no such LP), PN_ERANGE (len above event_max), PN_ECLOSED
 * (from a finish handler: the run has ended), PN_ENOMEM. An event at or
 * after end_time is accepted and never handled (counted in beyond_end).
 * From a handler, with its ctx. */
PN_API pn_err pn_sim_schedule(pn_sim_ctx *ctx, uint64_t to, double delay,
                              const void *data, size_t len);

/* The handler's LP, its time (0 in init, end_time in finish), and the
 * model's end. Pure. */
PN_API uint64_t pn_sim_lp(const pn_sim_ctx *ctx);
PN_API double pn_sim_now(const pn_sim_ctx *ctx);
PN_API uint64_t pn_sim_lp_count(const pn_sim_ctx *ctx);

/* The LP's random stream (the seed's and the LP's alone): 64 random bits;
 * uniform in [0, 1); uniform below n (n > 0; 0 when n is 0); exponential
 * with this mean. Each call moves the stream on. */
PN_API uint64_t pn_sim_random(pn_sim_ctx *ctx);
PN_API double pn_sim_uniform(pn_sim_ctx *ctx);
PN_API uint64_t pn_sim_below(pn_sim_ctx *ctx, uint64_t n);
PN_API double pn_sim_exponential(pn_sim_ctx *ctx, double mean);

/* Adds v to the current window's series `slot` (< PN_SIM_SUMS), which
 * pn_sim_progress reports once every block has ended the window: a time
 * series of the model's own counts. Errors: PN_EINVAL (NULL, slot out of
 * range, from a finish handler). */
PN_API pn_err pn_sim_record(pn_sim_ctx *ctx, uint32_t slot, int64_t v);

/* Adds v to the run's sum `slot` (< PN_SIM_SUMS), from any handler:
 * integer sums, so their order never shows. Errors: PN_EINVAL (NULL,
 * slot out of range). */
PN_API pn_err pn_sim_add(pn_sim_ctx *ctx, uint32_t slot, int64_t v);

#ifdef __cplusplus
}
#endif

#endif
