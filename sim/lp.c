/* The handlers' API (include/peernet/sim.h): an LP's time, its random
 * stream, its sums, and scheduling (into its block's queue, or into the
 * buffer of the block that holds the receiver, sent when the window
 * ends). On the block's actor, during a handler's call. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

/* splitmix64's output function (Steele, Lea, Flood 2014): a stream is a
 * state moved on by a constant, each step mixed. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t pn__sim_stream_seed(uint64_t seed, uint64_t lp) {
  return mix64(seed ^ mix64(lp + 0x9E3779B97F4A7C15ull));
}

uint64_t pn_sim_lp(const pn_sim_ctx *ctx) {
  return ctx ? ctx->b->lps[ctx->local] : 0;
}

double pn_sim_now(const pn_sim_ctx *ctx) { return ctx ? ctx->now : 0.0; }

uint64_t pn_sim_lp_count(const pn_sim_ctx *ctx) {
  return ctx ? ctx->b->run->cfg.lp_count : 0;
}

uint64_t pn_sim_random(pn_sim_ctx *ctx) {
  if (!ctx) {
    return 0;
  }
  uint64_t *s = &ctx->b->rng[ctx->local];
  *s += 0x9E3779B97F4A7C15ull;
  return mix64(*s);
}

double pn_sim_uniform(pn_sim_ctx *ctx) {
  return (double)(pn_sim_random(ctx) >> 11) * 0x1.0p-53;
}

uint64_t pn_sim_below(pn_sim_ctx *ctx, uint64_t n) {
  if (!n) {
    return 0;
  }
  /* Draws below the largest multiple of n are kept: exact. */
  uint64_t floor = -n % n; /* 2^64 mod n */
  uint64_t r;
  do {
    r = pn_sim_random(ctx);
  } while (r < floor);
  return r % n;
}

double pn_sim_exponential(pn_sim_ctx *ctx, double mean) {
  /* 1 - u is in (0, 1]: its log is finite. */
  return -mean * log(1.0 - pn_sim_uniform(ctx));
}

pn_err pn_sim_record(pn_sim_ctx *ctx, uint32_t slot, int64_t v) {
  if (!ctx || slot >= PN_SIM_SUMS || ctx->phase == PN__SIM_PHASE_FINISH) {
    return PN_EINVAL;
  }
  uint64_t s = (uint64_t)ctx->b->series[slot] + (uint64_t)v;
  memcpy(&ctx->b->series[slot], &s, sizeof s);
  return PN_OK;
}

pn_err pn_sim_add(pn_sim_ctx *ctx, uint32_t slot, int64_t v) {
  if (!ctx || slot >= PN_SIM_SUMS) {
    return PN_EINVAL;
  }
  /* Wrapping, as unsigned: the order of additions never shows. */
  uint64_t s = (uint64_t)ctx->b->part.sums[slot] + (uint64_t)v;
  memcpy(&ctx->b->part.sums[slot], &s, sizeof s);
  return PN_OK;
}

static bool out_put(pn__sim_out *o, const pn__sim_key *key, uint64_t to,
                    const void *data, uint32_t len) {
  size_t need = sizeof(pn__sim_wire) + ((len + 7u) & ~7u);
  if (!o->len) {
    o->len = sizeof(uint64_t); /* the window, written when sent */
  }
  if (o->len + need > o->cap) {
    size_t cap = o->cap ? o->cap * 2 : 4096;
    while (cap < o->len + need) {
      cap *= 2;
    }
    uint8_t *p = realloc(o->bytes, cap);
    if (!p) {
      return false;
    }
    o->bytes = p;
    o->cap = cap;
  }
  pn__sim_wire w = {.key = *key, .to = to, .len = len};
  memcpy(o->bytes + o->len, &w, sizeof w);
  if (len) {
    memcpy(o->bytes + o->len + sizeof w, data, len);
  }
  o->len += need;
  return true;
}

pn_err pn_sim_schedule(pn_sim_ctx *ctx, uint64_t to, double delay,
                       const void *data, size_t len) {
  if (!ctx || (!data && len) || !isfinite(delay)) {
    return PN_EINVAL;
  }
  pn__sim_block *b = ctx->b;
  const pn__sim_run *run = b->run;
  if (ctx->phase == PN__SIM_PHASE_FINISH) {
    return PN_ECLOSED;
  }
  if (delay < run->lookahead) {
    return PN_EINVAL;
  }
  if (to >= run->cfg.lp_count) {
    return PN_ENOENT;
  }
  if (len > run->cfg.event_max) {
    return PN_ERANGE;
  }
  pn__sim_key key = {.ts = ctx->now + delay,
                     .src = b->lps[ctx->local],
                     .seq = b->seq[ctx->local]};
  if (key.ts < b->window_end) {
    /* Only by rounding (a tick that is no binary fraction: k * tick and
     * (k - 1) * tick + tick may differ in the last bit): the event goes
     * to the next window, the same in every run. */
    key.ts = b->window_end;
  }
  if (key.ts >= run->cfg.end_time) {
    b->seq[ctx->local]++;
    b->part.beyond_end++;
    return PN_OK;
  }
  uint32_t dest = run->lp_block[to];
  bool ok = dest == b->index
                ? pn__sim_queue_push(&b->queue, &key, run->lp_local[to], data,
                                     (uint32_t)len)
                : out_put(&b->out[dest], &key, to, data, (uint32_t)len);
  if (!ok) {
    return PN_ENOMEM;
  }
  if (dest != b->index && key.ts < b->sent_min) {
    b->sent_min = key.ts;
  }
  b->seq[ctx->local]++;
  return PN_OK;
}
