/* The link conditioner engine. See link_conditioner.h for the model. */
#include "actors/link_conditioner.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DELAY_US (60u * 1000000u)
#define DEFAULT_QUEUE_US 100000u
#define DEFAULT_SEED 0x5045455244554d50ull

pn_err pn_link_conditioner_check(const pn_link_conditioner *cfg) {
  if (!cfg || cfg->size < sizeof(pn_link_conditioner)) {
    return PN_EINVAL;
  }
  const double p[3] = {cfg->loss, cfg->duplicate, cfg->reorder};
  for (int i = 0; i < 3; i++) {
    /* The negated form also rejects NaN. */
    if (!(p[i] >= 0.0 && p[i] <= 1.0)) {
      return PN_EINVAL;
    }
  }
  if (cfg->latency_us > MAX_DELAY_US || cfg->jitter_us > MAX_DELAY_US ||
      cfg->reorder_delay_us > MAX_DELAY_US || cfg->queue_us > MAX_DELAY_US) {
    return PN_EINVAL;
  }
  return PN_OK;
}

/* xoshiro256** seeded through splitmix64: fast, and a fixed seed gives the
 * same stream on every machine. */
static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void seed_rng(pn__conditioner *c, uint64_t seed) {
  uint64_t s = seed ? seed : DEFAULT_SEED;
  for (int i = 0; i < 4; i++) {
    c->rng[i] = splitmix(&s);
  }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(pn__conditioner *c) {
  uint64_t *s = c->rng;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform in [0, 1). */
static double next_unit(pn__conditioner *c) {
  return (double)(next_u64(c) >> 11) * 0x1.0p-53;
}

static bool is_active(const pn_link_conditioner *cfg) {
  return cfg->loss > 0 || cfg->duplicate > 0 || cfg->reorder > 0 ||
         cfg->latency_us || cfg->jitter_us || cfg->rate_bytes_per_s;
}

pn_err pn__conditioner_init(pn__conditioner *c,
                            const pn_link_conditioner *cfg) {
  pn_link_conditioner none = PN_LINK_CONDITIONER_INIT;
  if (!cfg) {
    cfg = &none;
  }
  pn_err err = pn_link_conditioner_check(cfg);
  if (err != PN_OK) {
    return err;
  }
  memset(c, 0, sizeof *c);
  c->cfg = *cfg;
  c->cfg.size = sizeof c->cfg;
  c->active = is_active(cfg);
  seed_rng(c, cfg->seed);
  return PN_OK;
}

pn_err pn__conditioner_set(pn__conditioner *c, const pn_link_conditioner *cfg) {
  pn_err err = pn_link_conditioner_check(cfg);
  if (err != PN_OK) {
    return err;
  }
  if (cfg->seed != c->cfg.seed) {
    seed_rng(c, cfg->seed);
  }
  c->cfg = *cfg;
  c->cfg.size = sizeof c->cfg;
  c->active = is_active(cfg);
  return PN_OK;
}

void pn__conditioner_fini(pn__conditioner *c) {
  free(c->heap);
  c->heap = NULL;
  c->count = c->capacity = 0;
}

static bool entry_before(const pn__cond_entry *a, const pn__cond_entry *b) {
  return a->release_ns < b->release_ns ||
         (a->release_ns == b->release_ns && a->order < b->order);
}

/* Room for n more entries, so the pushes that follow cannot fail. */
static bool heap_reserve(pn__conditioner *c, size_t n) {
  if (c->count + n <= c->capacity) {
    return true;
  }
  size_t cap = c->capacity ? c->capacity * 2 : 64;
  while (cap < c->count + n) {
    cap *= 2;
  }
  pn__cond_entry *h = pn__realloc(c->heap, cap * sizeof *h);
  if (!h) {
    return false;
  }
  c->heap = h;
  c->capacity = cap;
  return true;
}

static void heap_push(pn__conditioner *c, uint64_t release_ns, void *item) {
  PN_ASSERT(c->count < c->capacity); /* heap_reserve() in submit */
  pn__cond_entry e = {release_ns, c->next_order++, item};
  size_t i = c->count++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!entry_before(&e, &c->heap[parent])) {
      break;
    }
    c->heap[i] = c->heap[parent];
    i = parent;
  }
  c->heap[i] = e;
}

static void *heap_pop(pn__conditioner *c) {
  void *item = c->heap[0].item;
  pn__cond_entry last = c->heap[--c->count];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= c->count) {
      break;
    }
    size_t m = l;
    if (l + 1 < c->count && entry_before(&c->heap[l + 1], &c->heap[l])) {
      m = l + 1;
    }
    if (!entry_before(&c->heap[m], &last)) {
      break;
    }
    c->heap[i] = c->heap[m];
    i = m;
  }
  if (c->count) {
    c->heap[i] = last;
  }
  return item;
}

static uint64_t jitter_ns(pn__conditioner *c) {
  double u = next_unit(c);
  return c->cfg.jitter_us
             ? (uint64_t)(u * ((double)c->cfg.jitter_us + 1.0)) * 1000u
             : 0;
}

bool pn__conditioner_submit(pn__conditioner *c, uint64_t now_ns, size_t bytes,
                            void *item, pn__cond_dup_fn dup, void *dup_ctx) {
  c->stats.submitted++;
  /* Room for the datagram and a duplicate up front: out of memory is a
   * drop, never a half-taken duplicate. */
  if (!heap_reserve(c, 2)) {
    c->stats.dropped_rate++;
    return false;
  }
  if (!c->active) {
    heap_push(c, now_ns, item);
    return true;
  }
  /* Every datagram draws the same number of values whatever the settings,
   * so changing one impairment does not reshuffle the others' decisions. */
  double u_loss = next_unit(c);
  double u_dup = next_unit(c);
  double u_reorder = next_unit(c);
  uint64_t jit = jitter_ns(c);
  uint64_t jit_dup = jitter_ns(c);

  uint64_t depart = now_ns;
  if (c->cfg.rate_bytes_per_s) {
    uint64_t queue_ns =
        (uint64_t)(c->cfg.queue_us ? c->cfg.queue_us : DEFAULT_QUEUE_US) *
        1000u;
    if (c->link_free_ns > now_ns + queue_ns) {
      c->stats.dropped_rate++;
      return false;
    }
    uint64_t start = c->link_free_ns > now_ns ? c->link_free_ns : now_ns;
    uint64_t busy =
        (uint64_t)((double)bytes * 1e9 / (double)c->cfg.rate_bytes_per_s);
    c->link_free_ns = start + busy;
    depart = start + busy;
  }
  if (u_loss < c->cfg.loss) {
    c->stats.dropped_loss++;
    return false;
  }
  uint64_t release = depart + (uint64_t)c->cfg.latency_us * 1000u + jit;
  bool reordered = u_reorder < c->cfg.reorder;
  if (reordered) {
    uint64_t hold =
        c->cfg.reorder_delay_us
            ? (uint64_t)c->cfg.reorder_delay_us * 1000u
            : ((uint64_t)c->cfg.latency_us + c->cfg.jitter_us + 1000u) * 1000u;
    release += hold;
    c->stats.reordered++;
  } else {
    if (release < c->last_release_ns) {
      release = c->last_release_ns;
    }
    c->last_release_ns = release;
  }
  heap_push(c, release, item);
  if (release > now_ns) {
    c->stats.delayed++;
  }
  if (u_dup < c->cfg.duplicate && dup) {
    void *copy = dup(item, dup_ctx);
    if (copy) {
      heap_push(c, release + jit_dup, copy);
      c->stats.duplicated++;
    }
  }
  return true;
}

void *pn__conditioner_pop_due(pn__conditioner *c, uint64_t now_ns) {
  if (!c->count || c->heap[0].release_ns > now_ns) {
    return NULL;
  }
  return heap_pop(c);
}

uint64_t pn__conditioner_next_ns(const pn__conditioner *c) {
  return c->count ? c->heap[0].release_ns : UINT64_MAX;
}

void *pn__conditioner_drain(pn__conditioner *c) {
  return c->count ? heap_pop(c) : NULL;
}
