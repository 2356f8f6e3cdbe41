/* A block of LPs: one actor (sim/sim.h).
 *
 * States: initialising (START: every LP's init; that is window 0),
 * running a window, waiting (its window done, its DONE sent, until its
 * GO and the EVENTS the GO counts are in), finished (RESULT sent).
 *
 * Messages: START; EVENTS, another block's events for this one's LPs,
 * taken into the queue at once and counted by the window they were sent
 * in; DONE (to block 0, the coordinator), a block's bound for the window
 * it finished and the blocks it sent EVENTS to; GO (from block 0), the
 * global bound T (the least of every DONE) and how many EVENTS of the
 * window the block gets. Once its GO and that many EVENTS are in, the run
 * ends if T reached end_time; otherwise the block handles its events
 * below T + lookahead (the next tick's end, time-stepped), sends each
 * other block the events it scheduled for it, then its DONE.
 *
 * The counts, not the order of messages, say when a block has every
 * event of the window: a block's EVENTS and the coordinator's GO come
 * from two senders, and nothing orders them. No block can be two windows
 * ahead of another (it needs their DONE for the one before), so EVENTS
 * counted by the parity of their window are enough.
 */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peernet/node.h"
#include "runtime/alloc.h"
#include "sim/sim.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

pn__sim_block *pn__sim_block_new(pn__sim_run *run, uint32_t index,
                                 const uint64_t *lps, uint64_t nlps) {
  /* Cache lines of its own: blocks on other workers write theirs. */
  size_t bytes = (sizeof(pn__sim_block) + 63) & ~(size_t)63;
  pn__sim_block *b = pn__aligned_alloc(64, bytes);
  if (!b) {
    return NULL;
  }
  memset(b, 0, bytes);
  size_t n = nlps ? (size_t)nlps : 1;
  size_t state = run->model.lp_state_size ? run->model.lp_state_size : 1;
  b->run = run;
  b->index = index;
  b->nlps = nlps;
  b->lps = malloc(n * sizeof *b->lps);
  b->states = calloc(n, state);
  b->rng = malloc(n * sizeof *b->rng);
  b->seq = calloc(n, sizeof *b->seq);
  b->handled = calloc(n, sizeof *b->handled);
  b->out = calloc(run->blocks, sizeof *b->out);
  b->expect = index ? NULL : calloc(run->blocks, sizeof *b->expect);
  if (!b->lps || !b->states || !b->rng || !b->seq || !b->handled || !b->out ||
      (!index && !b->expect)) {
    pn__sim_block_free(b);
    return NULL;
  }
  for (uint64_t i = 0; i < nlps; i++) {
    b->lps[i] = lps[i];
    b->rng[i] = pn__sim_stream_seed(run->cfg.seed, lps[i]);
  }
  pn__sim_queue_init(&b->queue, run->cfg.event_max);
  b->sent_min = INFINITY;
  b->done_min = INFINITY;
  return b;
}

void pn__sim_block_free(pn__sim_block *b) {
  if (!b) {
    return;
  }
  for (uint32_t i = 0; b->out && i < b->run->blocks; i++) {
    free(b->out[i].bytes);
  }
  free(b->out);
  free(b->expect);
  pn__sim_queue_fini(&b->queue);
  free(b->lps);
  free(b->states);
  free(b->rng);
  free(b->seq);
  free(b->handled);
  free(b);
}

static void *lp_state(pn__sim_block *b, uint64_t local) {
  return b->states + local * b->run->model.lp_state_size;
}

static void free_buf(void *data, void *ctx) {
  (void)ctx;
  free(data);
}

/* A message to block `to`: its actor here, or through the node when the
 * block lives in another process (the node copies the bytes). buf is
 * malloc'd and given over whatever the result. */
static pn_err send_owned(const pn__sim_run *run, uint32_t to, uint32_t type,
                         void *buf, size_t len) {
  if (run->actors[to]) {
    pn_err err = pn_send_buf(run->actors[to], type, buf, len, free_buf, NULL);
    if (err != PN_OK) {
      free(buf);
    }
    return err;
  }
  pn_err err = pn_node_send(run->node, &run->refs[to], type, buf, len);
  free(buf);
  return err;
}

static pn_err send_copy(const pn__sim_run *run, uint32_t to, uint32_t type,
                        const void *data, size_t len) {
  return run->actors[to]
             ? pn_send(run->actors[to], type, data, len)
             : pn_node_send(run->node, &run->refs[to], type, data, len);
}

/* --- receiving ----------------------------------------------------------- */

static void take_events(pn__sim_block *b, const uint8_t *p, size_t len) {
  const pn__sim_run *run = b->run;
  uint64_t window;
  memcpy(&window, p, sizeof window);
  b->received[window & 1]++;
  const uint8_t *end = p + len;
  p += sizeof window;
  while (p + sizeof(pn__sim_wire) <= end) {
    pn__sim_wire w;
    memcpy(&w, p, sizeof w);
    if (!pn__sim_queue_push(&b->queue, &w.key, run->lp_local[w.to],
                            p + sizeof w, w.len)) {
      b->part.err = PN_ENOMEM;
    }
    p += sizeof w + ((w.len + 7u) & ~7u);
  }
}

/* --- a window ------------------------------------------------------------ */

/* Handles every event below `end`. */
static void run_window(pn__sim_block *b, double end) {
  pn__sim_run *run = b->run;
  pn_sim_ctx ctx = {.b = b, .phase = PN__SIM_PHASE_EVENT};
  const pn__sim_key *top;
  uint64_t events = 0;
  double last = b->part.last_ts;
  while ((top = pn__sim_queue_top(&b->queue)) && top->ts < end) {
    pn__sim_key key;
    uint32_t slot = pn__sim_queue_pop(&b->queue, &key);
    const pn__sim_slot *s = pn__sim_queue_slot(&b->queue, slot);
    ctx.local = s->lp_local;
    ctx.now = key.ts;
    b->handled[s->lp_local]++;
    events++;
    last = key.ts;
    /* The handler's pushes may move the pool: bytes are copied out, and
     * the slot is free again before the call. */
    uint32_t len = s->len;
    uint8_t buf[PN_SIM_EVENT_MAX];
    if (len) {
      memcpy(buf, s + 1, len);
    }
    pn__sim_queue_done(&b->queue, slot);
    run->model.event(&ctx, lp_state(b, ctx.local), len ? buf : NULL, len,
                     run->model.user);
  }
  b->part.events += events;
  b->part.last_ts = last;
}

static void run_ticks(pn__sim_block *b, double at) {
  pn__sim_run *run = b->run;
  pn_sim_ctx ctx = {.b = b, .now = at, .phase = PN__SIM_PHASE_EVENT};
  for (uint64_t i = 0; i < b->nlps; i++) {
    ctx.local = i;
    run->model.tick(&ctx, lp_state(b, i), run->model.user);
  }
}

/* Block 0 counts a DONE: its bound, the EVENTS each block gets, and
 * whether the block failed. */
static void count_done(pn__sim_block *b, const pn__sim_done *d,
                       const uint32_t *to) {
  b->done_count++;
  b->done_failed |= d->failed;
  b->done_events += d->events;
  for (uint32_t i = 0; i < PN_SIM_SUMS; i++) {
    b->done_series[i] =
        (int64_t)((uint64_t)b->done_series[i] + (uint64_t)d->series[i]);
  }
  if (d->min < b->done_min) {
    b->done_min = d->min;
  }
  for (uint32_t i = 0; i < d->count; i++) {
    b->expect[to[2 * i]] += to[2 * i + 1];
  }
}

/* Another process's node takes at most PN__SIM_CHUNK bytes a message:
 * the buffer goes in pieces, each with the window. Returns the messages
 * sent (0: none could be; the buffer is given over either way). */
#define PN__SIM_CHUNK (1u << 20)
static uint32_t send_events(pn__sim_block *b, uint32_t to, pn__sim_out *o) {
  const pn__sim_run *run = b->run;
  memcpy(o->bytes, &b->window, sizeof b->window);
  if (run->actors[to] || o->len <= PN__SIM_CHUNK) {
    return send_owned(run, to, PN__SIM_EVENTS, o->bytes, o->len) == PN_OK;
  }
  uint32_t sent = 0;
  size_t at = sizeof b->window;
  while (at < o->len) {
    size_t end = at;
    while (end < o->len) {
      pn__sim_wire w;
      memcpy(&w, o->bytes + end, sizeof w);
      size_t rec = sizeof w + ((w.len + 7u) & ~7u);
      if (end > at && end + rec - at > PN__SIM_CHUNK) {
        break;
      }
      end += rec;
    }
    uint8_t *piece = malloc(sizeof b->window + (end - at));
    if (!piece) {
      free(o->bytes);
      return 0;
    }
    memcpy(piece, &b->window, sizeof b->window);
    memcpy(piece + sizeof b->window, o->bytes + at, end - at);
    if (send_owned(run, to, PN__SIM_EVENTS, piece,
                   sizeof b->window + (end - at)) != PN_OK) {
      free(o->bytes);
      return 0;
    }
    sent++;
    at = end;
  }
  free(o->bytes);
  return sent;
}

/* The window is done: each other block gets what this one scheduled for
 * it (tagged with the window), then block 0 its DONE. A block that could
 * not keep or send an event says so in its DONE: every block then ends
 * the run (with the error), none waits for what will not come. */
static void end_window(pn__sim_block *b) {
  pn__sim_run *run = b->run;
  pn__sim_done *d = malloc(sizeof *d + 2 * run->blocks * sizeof(uint32_t));
  uint32_t *dests = d ? (uint32_t *)(d + 1) : NULL; /* (block, messages) */
  uint32_t count = 0;
  for (uint32_t i = 0; i < run->blocks; i++) {
    pn__sim_out *o = &b->out[i];
    if (!o->len) {
      continue;
    }
    uint32_t sent = d ? send_events(b, i, o) : 0;
    if (!d) {
      free(o->bytes);
    } else if (!sent) {
      b->part.err = PN_EUNREACHABLE;
    } else {
      dests[2 * count] = i;
      dests[2 * count + 1] = sent;
      count++;
    }
    *o = (pn__sim_out){0};
  }
  const pn__sim_key *top = pn__sim_queue_top(&b->queue);
  pn__sim_done head = {.window = b->window,
                       .min = top ? top->ts : INFINITY,
                       .count = count,
                       .failed = b->part.err != PN_OK,
                       .events = b->part.events};
  memcpy(head.series, b->series, sizeof head.series);
  memset(b->series, 0, sizeof b->series);
  if (b->sent_min < head.min) {
    head.min = b->sent_min;
  }
  b->sent_min = INFINITY;
  b->waiting = true;
  if (!b->index) {
    count_done(b, &head, dests);
    free(d);
    return;
  }
  if (d) {
    *d = head;
    if (send_owned(run, 0, PN__SIM_DONE, d,
                   sizeof *d + 2 * count * sizeof *dests) == PN_OK) {
      return;
    }
  }
  /* A DONE of the header alone, copied, says the block failed. */
  b->part.err = d ? PN_EUNREACHABLE : PN_ENOMEM;
  head.failed = 1;
  head.count = 0;
  (void)send_copy(run, 0, PN__SIM_DONE, &head, sizeof head);
}

static void finish(pn__sim_block *b) {
  pn__sim_run *run = b->run;
  pn_sim_ctx ctx = {
      .b = b, .now = run->cfg.end_time, .phase = PN__SIM_PHASE_FINISH};
  uint64_t digest = 0;
  for (uint64_t i = 0; i < b->nlps; i++) {
    ctx.local = i;
    void *st = lp_state(b, i);
    if (run->model.finish) {
      run->model.finish(&ctx, st, run->model.user);
    }
    /* Each LP's hash, summed: the same whatever block holds the LP. */
    crypto_generichash_state h;
    uint64_t words[3] = {b->lps[i], b->handled[i], b->rng[i]};
    uint64_t lp_hash;
    crypto_generichash_init(&h, NULL, 0, sizeof lp_hash);
    crypto_generichash_update(&h, (const unsigned char *)words, sizeof words);
    crypto_generichash_update(&h, st, run->model.lp_state_size);
    crypto_generichash_final(&h, (unsigned char *)&lp_hash, sizeof lp_hash);
    digest += lp_hash;
  }
  b->part.digest = digest;
  b->part.end_ns = now_ns();
  /* To every process of the run: each adds the same results up. */
  (void)pn_send(run->inbox, PN__SIM_RESULT, &b->part, sizeof b->part);
  for (uint32_t p = 0; run->node && p < run->nprocs; p++) {
    if (p != run->rank) {
      (void)pn_node_send(run->node, &run->inbox_refs[p], PN__SIM_RESULT,
                         &b->part, sizeof b->part);
    }
  }
}

/* The global bound after this window is t: the next window, or the end. */
static void next_window(pn__sim_block *b, double t, bool failed) {
  pn__sim_run *run = b->run;
  if (b->window == 0 && b->index == 0) {
    b->part.run_start_ns = now_ns();
  }
  b->window++;
  double start = t, end;
  bool stepped = run->cfg.sync == PN_SIM_TIME_STEPPED;
  if (stepped) {
    /* Every tick when a tick handler wants them; otherwise the tick that
     * holds the next event. */
    double k =
        run->model.tick ? (double)(b->window - 1) : floor(t / run->lookahead);
    start = run->model.tick || isfinite(t) ? k * run->lookahead : INFINITY;
    end = start + run->lookahead;
  } else {
    end = t + run->lookahead;
  }
  if (start >= run->cfg.end_time || failed) {
    b->part.windows = b->window - 1;
    finish(b);
    return;
  }
  if (end > run->cfg.end_time) {
    end = run->cfg.end_time;
  }
  b->window_start = start;
  if (stepped && run->model.tick) {
    run_ticks(b, start);
  }
  run_window(b, end);
  end_window(b);
}

/* Block 0, once every DONE of the window is in: GO to every block,
 * itself included. Its own comes back as a message so that the others'
 * leave now: a handler's sends are pushed only when it returns, and its
 * next window would hold them back until then. */
static void coordinate(pn__sim_block *b) {
  pn__sim_run *run = b->run;
  if (b->index || !b->waiting || b->done_count != run->blocks) {
    return;
  }
  for (uint32_t i = 0; i < run->blocks; i++) {
    pn__sim_done go = {.window = b->window,
                       .min = b->done_min,
                       .count = b->expect[i],
                       .failed = b->done_failed};
    if (send_copy(run, i, PN__SIM_GO, &go, sizeof go) != PN_OK) {
      b->part.err = PN_ENOMEM; /* that block waits: the caller sees it stop */
    }
    b->expect[i] = 0;
  }
  if (run->cfg.progress) {
    /* To every process's caller, this one's included. */
    pn_sim_progress pr = {
        .window = b->window, .time = b->window_start, .events = b->done_events};
    memcpy(pr.series, b->done_series, sizeof pr.series);
    (void)pn_send(run->inbox, PN__SIM_PROGRESS, &pr, sizeof pr);
    for (uint32_t p = 0; run->node && p < run->nprocs; p++) {
      if (p != run->rank) {
        (void)pn_node_send(run->node, &run->inbox_refs[p], PN__SIM_PROGRESS,
                           &pr, sizeof pr);
      }
    }
  }
  b->done_count = 0;
  b->done_failed = 0;
  b->done_min = INFINITY;
  b->done_events = 0;
  memset(b->done_series, 0, sizeof b->done_series);
}

/* Leaves the window once its GO and the EVENTS that GO counts are in. */
static void try_leave(pn__sim_block *b) {
  uint32_t par = (uint32_t)(b->window & 1);
  if (!b->waiting || !b->have_go || b->received[par] != b->go_expect) {
    return;
  }
  b->received[par] = 0;
  b->waiting = b->have_go = false;
  next_window(b, b->go_min, b->go_failed);
}

void pn__sim_block_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pn__sim_block *b = state;
  pn__sim_run *run = b->run;
  switch (pn_msg_type(msg)) {
  case PN__SIM_START: {
    b->part.start_ns = now_ns();
    pn_sim_ctx ctx = {.b = b, .now = 0.0, .phase = PN__SIM_PHASE_INIT};
    for (uint64_t i = 0; run->model.init && i < b->nlps; i++) {
      ctx.local = i;
      run->model.init(&ctx, lp_state(b, i), run->model.user);
    }
    end_window(b);
    break;
  }
  case PN__SIM_EVENTS:
    take_events(b, pn_msg_data(msg), pn_msg_size(msg));
    break;
  case PN__SIM_DONE: { /* block 0 */
    pn__sim_done d;
    memcpy(&d, pn_msg_data(msg), sizeof d);
    count_done(
        b, &d,
        (const uint32_t *)((const uint8_t *)pn_msg_data(msg) + sizeof d));
    break;
  }
  case PN__SIM_GO: {
    pn__sim_done go;
    memcpy(&go, pn_msg_data(msg), sizeof go);
    b->have_go = true;
    b->go_min = go.min;
    b->go_expect = go.count;
    b->go_failed = go.failed;
    break;
  }
  default:
    return;
  }
  try_leave(b);
  coordinate(b);
}
