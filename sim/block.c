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
  b->done_want = index ? NULL : calloc(run->nprocs, sizeof *b->done_want);
  if (!b->lps || !b->states || !b->rng || !b->seq || !b->handled || !b->out ||
      (!index && (!b->expect || !b->done_want))) {
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
  for (size_t i = b->pend_at; i < b->npend; i++) {
    free(b->pend[i].bytes);
  }
  free(b->pend);
  free(b->done_msg);
  free(b->expect);
  free(b->done_want);
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

/* A message that had to go did not: the block stops with the failure
 * reason, which ends the run here (its DOWN in pn_sim_run's inbox) and in
 * every other process (their monitors of it), so none waits for it. */
static void fail_stop(pn__sim_block *b) {
  if (b->part.err == PN_OK) {
    b->part.err = PN_EUNREACHABLE;
  }
  (void)pn_actor_stop_reason(pn_self(), PN__SIM_DOWN_FAILED);
}

/* --- receiving ----------------------------------------------------------- */

/* Another block's events for this one. From another process, they are
 * checked before they are used: a malformed one (short, an LP that is
 * not this block's, bytes past event_max or past the message) fails the
 * run, and nothing of it is kept past the check. */
static void take_events(pn__sim_block *b, const uint8_t *p, size_t len) {
  const pn__sim_run *run = b->run;
  uint64_t window;
  if (len < sizeof window) {
    b->part.err = PN_EINVAL;
    return;
  }
  memcpy(&window, p, sizeof window);
  b->received[window & 1]++;
  const uint8_t *end = p + len;
  p += sizeof window;
  while ((size_t)(end - p) >= sizeof(pn__sim_wire)) {
    pn__sim_wire w;
    memcpy(&w, p, sizeof w);
    size_t rec = sizeof w + ((w.len + 7u) & ~7u);
    if (w.to >= run->cfg.lp_count || run->lp_block[w.to] != b->index ||
        w.len > run->cfg.event_max || rec > (size_t)(end - p) ||
        !(w.key.ts >= 0)) {
      b->part.err = PN_EINVAL;
      return;
    }
    if (!pn__sim_queue_push(&b->queue, &w.key, run->lp_local[w.to],
                            p + sizeof w, w.len)) {
      b->part.err = PN_ENOMEM;
    }
    p += rec;
  }
  if (p != end) {
    b->part.err = PN_EINVAL;
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

/* Block 0 counts a DONE: its bound, the EVENTS each block gets, whether
 * the block failed, and whether its process wants progress. */
static void count_done(pn__sim_block *b, const pn__sim_done *d,
                       const uint32_t *to) {
  const pn__sim_run *run = b->run;
  b->done_count++;
  b->done_failed |= d->failed;
  b->done_want[d->from % run->nprocs] |= d->want_progress != 0;
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

/* A DONE from another block (block 0 only): checked before it counts. */
static void take_done(pn__sim_block *b, const uint8_t *p, size_t len) {
  pn__sim_done d;
  if (b->index || len < sizeof d) {
    b->part.err = PN_EINVAL;
    b->done_failed = 1;
    return;
  }
  memcpy(&d, p, sizeof d);
  size_t pairs = (len - sizeof d) / (2 * sizeof(uint32_t));
  uint32_t *to = pairs ? malloc(pairs * 2 * sizeof *to) : NULL;
  if (pairs && !to) {
    b->part.err = PN_ENOMEM;
    d.failed = 1;
    d.count = 0;
  } else if (pairs) {
    memcpy(to, p + sizeof d, pairs * 2 * sizeof *to);
  }
  /* Its window is block 0's, or the next: the others may leave on their
   * GO before block 0 has its own (a message too). */
  bool ok = d.count <= pairs && d.window - b->window <= 1 &&
            d.from < b->run->blocks && d.from != 0;
  for (uint32_t i = 0; ok && i < d.count; i++) {
    ok = to[2 * i] < b->run->blocks;
  }
  if (!ok) {
    b->part.err = PN_EINVAL;
    d.failed = 1;
    d.count = 0;
    d.from = 1;
    d.want_progress = 0;
  }
  count_done(b, &d, to);
  free(to);
}

/* To another process, a buffer goes in pieces of at most PN__SIM_CHUNK
 * bytes, each with the window (a node link's credit is counted in
 * messages' bytes: a piece fits any lane window). Adds them to the
 * pieces waiting to go and returns how many, 0 when out of memory (the
 * buffer is given over either way). */
#define PN__SIM_CHUNK (32u << 10)
static bool pend_add(pn__sim_block *b, uint32_t to, uint8_t *bytes,
                     size_t len) {
  if (b->npend == b->pend_cap) {
    size_t cap = b->pend_cap ? 2 * b->pend_cap : 16;
    pn__sim_piece *v = realloc(b->pend, cap * sizeof *v);
    if (!v) {
      free(bytes);
      return false;
    }
    b->pend = v;
    b->pend_cap = cap;
  }
  b->pend[b->npend++] = (pn__sim_piece){bytes, len, to};
  return true;
}

static uint32_t split_events(pn__sim_block *b, uint32_t to, pn__sim_out *o) {
  const pn__sim_run *run = b->run;
  memcpy(o->bytes, &b->window, sizeof b->window);
  if (run->actors[to] || o->len <= PN__SIM_CHUNK) {
    return pend_add(b, to, o->bytes, o->len);
  }
  uint32_t pieces = 0;
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
    if (!pend_add(b, to, piece, sizeof b->window + (end - at))) {
      free(o->bytes);
      return 0;
    }
    pieces++;
    at = end;
  }
  free(o->bytes);
  return pieces;
}

/* Sends the pieces waiting to go, then the DONE. A link out of credit
 * refuses a piece (PN_EAGAIN): the block, muted by then, goes on when a
 * FLUSH to itself comes, once the other end has taken what it had. */
static void flush(pn__sim_block *b) {
  pn__sim_run *run = b->run;
  while (b->pend_at < b->npend) {
    pn__sim_piece *p = &b->pend[b->pend_at];
    pn_err err;
    if (run->actors[p->to]) {
      err = pn_send_buf(run->actors[p->to], PN__SIM_EVENTS, p->bytes, p->len,
                        free_buf, NULL);
      if (err != PN_OK) {
        free(p->bytes);
      }
    } else {
      err = pn_node_send(run->node, &run->refs[p->to], PN__SIM_EVENTS, p->bytes,
                         p->len);
      if (err == PN_EAGAIN) {
        if (pn_send(run->actors[b->index], PN__SIM_FLUSH, NULL, 0) != PN_OK) {
          fail_stop(b);
        }
        return;
      }
      free(p->bytes);
    }
    if (err != PN_OK) {
      b->part.err = PN_EUNREACHABLE;
      b->done_msg->failed = 1;
    }
    b->pend_at++;
  }
  b->npend = b->pend_at = 0;
  pn__sim_done *d = b->done_msg;
  size_t size = b->done_size;
  b->done_msg = NULL;
  b->waiting = true;
  if (!b->index) {
    count_done(b, d, (const uint32_t *)(d + 1));
    free(d);
  } else if (send_owned(run, 0, PN__SIM_DONE, d, size) != PN_OK) {
    fail_stop(b);
  }
}

/* The window is done: each other block gets what this one scheduled for
 * it (tagged with the window), then block 0 its DONE. A block that could
 * not keep or send an event says so in its DONE: every block then ends
 * the run (with the error), none waits for what will not come; one that
 * cannot even say so stops (fail_stop). */
static void end_window(pn__sim_block *b) {
  pn__sim_run *run = b->run;
  pn__sim_done *d = malloc(sizeof *d + 2 * run->blocks * sizeof(uint32_t));
  if (!d) {
    b->part.err = PN_ENOMEM;
    fail_stop(b);
    return;
  }
  uint32_t *dests = (uint32_t *)(d + 1); /* (block, messages) */
  uint32_t count = 0;
  for (uint32_t i = 0; i < run->blocks; i++) {
    pn__sim_out *o = &b->out[i];
    if (!o->len) {
      continue;
    }
    uint32_t pieces = split_events(b, i, o);
    if (!pieces) {
      b->part.err = PN_ENOMEM;
    } else {
      dests[2 * count] = i;
      dests[2 * count + 1] = pieces;
      count++;
    }
    *o = (pn__sim_out){0};
  }
  const pn__sim_key *top = pn__sim_queue_top(&b->queue);
  *d = (pn__sim_done){.window = b->window,
                      .min = top ? top->ts : INFINITY,
                      .count = count,
                      .want_progress = run->cfg.progress != NULL,
                      .from = b->index,
                      .events = b->part.events};
  memcpy(d->series, b->series, sizeof d->series);
  memset(b->series, 0, sizeof b->series);
  if (b->sent_min < d->min) {
    d->min = b->sent_min;
  }
  b->sent_min = INFINITY;
  d->failed = b->part.err != PN_OK;
  b->done_msg = d;
  b->done_size = sizeof *d + 2 * count * sizeof *dests;
  flush(b);
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
  bool sent =
      pn_send(run->inbox, PN__SIM_RESULT, &b->part, sizeof b->part) == PN_OK;
  for (uint32_t p = 0; run->node && p < run->nprocs; p++) {
    if (p != run->rank) {
      sent &= pn_node_send(run->node, &run->inbox_refs[p], PN__SIM_RESULT,
                           &b->part, sizeof b->part) == PN_OK;
    }
  }
  if (!sent) {
    fail_stop(b);
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
    /* Every tick when a tick handler wants them (each starting where the
     * last ended); otherwise the tick that holds the next event. */
    if (run->model.tick) {
      start = b->window_end;
    } else {
      start =
          isfinite(t) ? floor(t / run->lookahead) * run->lookahead : INFINITY;
      start = start > b->window_end ? start : b->window_end;
    }
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
  b->window_end = end;
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
      fail_stop(b); /* that block would wait for it */
    }
    b->expect[i] = 0;
  }
  /* To the caller of every process that wants it, this one's too. */
  pn_sim_progress pr = {
      .window = b->window, .time = b->window_start, .events = b->done_events};
  memcpy(pr.series, b->done_series, sizeof pr.series);
  for (uint32_t p = 0; p < run->nprocs; p++) {
    if (!b->done_want[p]) {
      continue;
    }
    b->done_want[p] = false;
    pn_err err = p == run->rank
                     ? pn_send(run->inbox, PN__SIM_PROGRESS, &pr, sizeof pr)
                     : pn_node_send(run->node, &run->inbox_refs[p],
                                    PN__SIM_PROGRESS, &pr, sizeof pr);
    if (err != PN_OK) {
      fail_stop(b); /* a window missing from its series: the run fails */
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
  /* A failed run ends at once: its counts may never add up. */
  if (!b->waiting || !b->have_go ||
      (!b->go_failed && b->received[par] != b->go_expect)) {
    return;
  }
  b->received[par] = 0;
  b->waiting = b->have_go = false;
  next_window(b, b->go_min, b->go_failed);
}

void pn__sim_block_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pn__sim_block *b = state;
  /* Only the run's own messages touch the block: a stop (the block may be
   * gone already when it never started) does not. */
  switch (pn_msg_type(msg)) {
  case PN__SIM_START: {
    pn__sim_run *run = b->run;
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
  case PN__SIM_DONE:
    take_done(b, pn_msg_data(msg), pn_msg_size(msg));
    break;
  case PN__SIM_FLUSH:
    if (b->done_msg) {
      flush(b);
    }
    break;
  case PN__SIM_GO: {
    pn__sim_done go;
    if (pn_msg_size(msg) != sizeof go) {
      b->part.err = PN_EINVAL;
      fail_stop(b);
      return;
    }
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
