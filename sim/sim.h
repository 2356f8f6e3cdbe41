/* The simulation engine's insides (include/peernet/sim.h): a run (run.c),
 * its blocks of LPs, one actor each (block.c), and a block's pending
 * events (queue.c).
 *
 * Threading. A run's shared part (pn__sim_run) is written by the thread
 * in pn_sim_run() before the blocks start and read-only until they have
 * stopped. A block is its actor's alone. Blocks talk by messages only:
 * EVENTS (another block's events for this one), DONE (to block 0: a block
 * finished a window, and its lower bound), GO (from block 0: the global
 * bound), and to the caller's inbox RESULT.
 */
#ifndef PN_SIM_SIM_H
#define PN_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/node.h"
#include "peernet/sim.h"

/* Messages (below PN_MSG_TYPE_RESERVED). */
#define PN__SIM_START 0x53490001u    /* run.c -> block: init, window 0 */
#define PN__SIM_EVENTS 0x53490002u   /* block -> block: a pn__sim_out buffer */
#define PN__SIM_DONE 0x53490003u     /* block -> block 0: pn__sim_done */
#define PN__SIM_RESULT 0x53490004u   /* block -> caller: pn__sim_partial */
#define PN__SIM_GO 0x53490005u       /* block 0 -> block: pn__sim_done */
#define PN__SIM_FLUSH 0x53490007u    /* block -> itself: send what waits */
#define PN__SIM_PROGRESS 0x53490006u /* block 0 -> caller: pn_sim_progress */

/* Why a block stopped, as other processes' monitors read it: the run's
 * end, or its failure (any other reason, PN_DOWN_NORMAL included: a
 * runtime shutting down, a node lost, is a failure too). */
#define PN__SIM_DOWN_FINISHED (PN_DOWN_APP + 2u)
#define PN__SIM_DOWN_FAILED (PN_DOWN_APP + 1u)

/* An event's place in the total order. */
typedef struct pn__sim_key {
  double ts;
  uint64_t src; /* the LP that scheduled it */
  uint64_t seq; /* the source's count of events it scheduled before */
} pn__sim_key;

static inline bool pn__sim_key_less(const pn__sim_key *a,
                                    const pn__sim_key *b) {
  if (a->ts != b->ts) {
    return a->ts < b->ts;
  }
  if (a->src != b->src) {
    return a->src < b->src;
  }
  return a->seq < b->seq;
}

/* --- queue.c: a block's pending events ----------------------------------
 *
 * A binary min-heap of keys, each with the index of a slot in a pool that
 * holds the event's LP and bytes (the heap moves only its small entries).
 */
typedef struct pn__sim_entry {
  pn__sim_key key;
  uint32_t slot;
} pn__sim_entry;

typedef struct pn__sim_queue {
  pn__sim_entry *heap;
  size_t count, cap;
  uint8_t *slots; /* slot_size bytes each: pn__sim_slot and its bytes */
  size_t slot_size, nslots;
  uint32_t *free; /* free slot indices */
  size_t nfree;
} pn__sim_queue;

typedef struct pn__sim_slot {
  uint32_t lp_local; /* the LP's index in its block */
  uint32_t len;
  /* len bytes follow */
} pn__sim_slot;

void pn__sim_queue_init(pn__sim_queue *q, uint32_t event_max);
void pn__sim_queue_fini(pn__sim_queue *q);
/* Adds an event (bytes copied): false when out of memory. */
bool pn__sim_queue_push(pn__sim_queue *q, const pn__sim_key *key,
                        uint32_t lp_local, const void *data, uint32_t len);
/* The earliest key, or NULL when empty. */
static inline const pn__sim_key *pn__sim_queue_top(const pn__sim_queue *q) {
  return q->count ? &q->heap[0].key : NULL;
}
/* Takes the earliest event out: its slot (valid until the next push or
 * pn__sim_queue_done). */
uint32_t pn__sim_queue_pop(pn__sim_queue *q, pn__sim_key *key_out);
static inline const pn__sim_slot *pn__sim_queue_slot(const pn__sim_queue *q,
                                                     uint32_t slot) {
  return (const pn__sim_slot *)(q->slots + (size_t)slot * q->slot_size);
}
/* The popped slot is free again. */
void pn__sim_queue_done(pn__sim_queue *q, uint32_t slot);

/* --- a run --------------------------------------------------------------- */

struct pn__sim_block;

typedef struct pn__sim_run {
  pn_sim_model model;
  pn_sim_config cfg;
  double lookahead; /* the tick, time-stepped */
  uint32_t blocks;
  struct pn__sim_block **block; /* [blocks] */
  pn_actor **actors;            /* [blocks], held */
  uint32_t *lp_block;           /* [lp_count]: the LP's block */
  uint32_t *lp_local;           /* [lp_count]: its index there */
  pn_actor *inbox;              /* the caller's: RESULTs */
  /* Across processes: this process's place among them, and where the
   * other processes' blocks (actors[b] NULL) and inboxes are. */
  struct pn_node *node;
  uint32_t rank, nprocs;
  pn_ref *refs;       /* [blocks] */
  pn_ref *inbox_refs; /* [nprocs] */
  uint64_t *monitors; /* [blocks]: of the other processes' blocks */
  uint32_t registered;
  bool inbox_registered;
} pn__sim_run;

/* join.c, on pn_sim_run's thread: names registered, the other processes'
 * blocks and inboxes found and monitored (PN_OK), or why not; and undone. */
pn_err pn__sim_join(pn__sim_run *run);
void pn__sim_leave(pn__sim_run *run);

/* DONE: a block finished window `window`; nothing it holds or sent is
 * earlier than `min` (INFINITY: nothing); it sent EVENTS to `count`
 * blocks: (index, messages) pairs of uint32 follow. GO: the least of the
 * window's mins, and how many EVENTS of the window the receiver gets (`count`).
 */
typedef struct pn__sim_piece {
  uint8_t *bytes; /* owned */
  size_t len;
  uint32_t to;
} pn__sim_piece;

typedef struct pn__sim_done {
  uint64_t window;
  double min;
  uint32_t count;
  uint32_t failed; /* DONE: this block failed; GO: one did: the run ends */
  uint32_t want_progress;      /* DONE: this block's process has a progress
                                  function */
  uint32_t from;               /* DONE: the block that sent it */
  uint64_t events;             /* DONE: the block's events handled so far */
  int64_t series[PN_SIM_SUMS]; /* DONE: recorded in the window */
} pn__sim_done;

/* A block's share of the result. */
typedef struct pn__sim_partial {
  uint64_t events, beyond_end, windows, digest;
  int64_t sums[PN_SIM_SUMS];
  uint64_t start_ns, run_start_ns, end_ns; /* block 0's clock */
  double last_ts;
  pn_err err; /* PN_OK, or PN_ENOMEM when an event could not be kept */
} pn__sim_partial;

/* Events for another block, written as they are scheduled: a window
 * number (set when sent), then wire events. */
typedef struct pn__sim_out {
  uint8_t *bytes;
  size_t len, cap;
} pn__sim_out;

/* One event in an EVENTS buffer. */
typedef struct pn__sim_wire {
  pn__sim_key key;
  uint64_t to;
  uint32_t len;
  uint32_t pad;
  /* len bytes, then padding to 8 */
} pn__sim_wire;

/* A block of LPs: its actor's alone (block.c; its handlers' API, lp.c). */
typedef struct pn__sim_block {
  pn__sim_run *run;
  uint32_t index;
  uint64_t nlps;
  uint64_t *lps;     /* its LPs, by local index */
  uint8_t *states;   /* lp_state_size each */
  uint64_t *rng;     /* each LP's stream */
  uint64_t *seq;     /* events each LP scheduled */
  uint64_t *handled; /* events each LP handled */
  pn__sim_queue queue;
  pn__sim_out *out; /* [blocks] */
  /* The window's EVENTS not sent yet (a link out of credit), and the
   * DONE that goes once they are out. */
  struct pn__sim_piece *pend;
  size_t npend, pend_cap, pend_at;
  struct pn__sim_done *done_msg;
  size_t done_size;
  double sent_min; /* the earliest event sent this window */
  uint64_t window; /* the window it is in, or waits to leave */
  bool waiting;    /* its window done, DONE sent */
  /* The GO that lets it leave: the bound, and how many EVENTS of the
   * window it must have taken in first. */
  bool have_go;
  double go_min;
  uint32_t go_expect;
  uint32_t go_failed;
  uint32_t received[2]; /* EVENTS taken in, by their window's parity */
  /* Block 0 only: the window's DONEs, its own included. */
  uint32_t done_count;
  uint32_t done_failed;
  bool *done_want; /* [nprocs]: the processes that want progress */
  double done_min;
  uint64_t done_events;
  int64_t done_series[PN_SIM_SUMS];
  double window_start;         /* this window's start (its tick's) */
  double window_end;           /* and its end: nothing scheduled earlier */
  int64_t series[PN_SIM_SUMS]; /* recorded in this window */
  uint32_t *expect; /* [blocks]: EVENTS each block gets of the window */
  pn__sim_partial part;
} pn__sim_block;

/* The handler's view (peernet/sim.h). */
enum { PN__SIM_PHASE_INIT, PN__SIM_PHASE_EVENT, PN__SIM_PHASE_FINISH };
struct pn_sim_ctx {
  pn__sim_block *b;
  uint64_t local;
  double now;
  int phase;
};

pn__sim_block *pn__sim_block_new(pn__sim_run *run, uint32_t index,
                                 const uint64_t *lps, uint64_t nlps);
void pn__sim_block_free(pn__sim_block *b);
void pn__sim_block_handler(pn_actor *self, void *state, const pn_msg *msg);

/* lp.c: an LP's random stream, seeded from the run's seed and the LP. */
uint64_t pn__sim_stream_seed(uint64_t seed, uint64_t lp);

#endif
