/* Flight recorder storage and its Chrome trace-event JSON dump
 * (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU:
 * "X" complete events for runs, "i" instant events for the rest, one
 * thread per worker). */
#include "runtime/alloc.h"
#include "runtime/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/err_os.h"
#include "runtime/rt.h"

pn_err pn__trace_ring_init(pn__trace_ring *r, uint32_t events) {
  uint64_t n = 1024;
  while (n < events && n < (1u << 24)) {
    n *= 2;
  }
  r->ev = pn__calloc(n, sizeof *r->ev);
  if (!r->ev) {
    return PN_ENOMEM;
  }
  r->end = r->ev + n;
  atomic_init(&r->pos, r->ev);
  atomic_init(&r->wrapped, false);
  r->cur = r->last_read = 0;
  r->step = 1;
  r->interval = PN__TRACE_READ_EVERY;
  pn__trace_idle(r);
  return PN_OK;
}

void pn__trace_ring_fini(pn__trace_ring *r) {
  free(r->ev);
  r->ev = NULL;
}

uint64_t pn__trace_clock_read(pn__trace_ring *r) {
  uint64_t t = pn__ticks();
  if (r->step_valid && t > r->last_read) {
    uint64_t step = (t - r->last_read) / r->interval;
    r->step = step ? step : 1;
  }
  r->step_valid = true;
  r->last_read = t;
  if (r->exact_left) {
    r->exact_left--;
    r->interval = 1;
  } else {
    r->interval = r->step >= PN__TRACE_LONG_STEP ? 1 : PN__TRACE_READ_EVERY;
  }
  r->until_read = r->interval;
  uint64_t ts = t > r->cur ? t : r->cur;
  /* Reading every time, the next request reads too: no estimate. */
  r->cur = r->interval == 1 ? ts : ts + r->step;
  return ts;
}

static const char *const kind_name[PN__TR_KINDS] = {
    [PN__TR_RUN] = "run",
    [PN__TR_SEND] = "send",
    [PN__TR_SPAWN] = "spawn",
    [PN__TR_STOP] = "stop",
    [PN__TR_MUTE] = "mute",
    [PN__TR_UNMUTE] = "unmute",
    [PN__TR_STEAL] = "steal",
    [PN__TR_IO_SUBMIT] = "io_submit",
    [PN__TR_IO_COMPLETE] = "io_complete",
    [PN__TR_PACKET_SEND] = "packet_send",
    [PN__TR_PACKET_RECV] = "packet_recv",
    [PN__TR_ACK] = "ack",
    [PN__TR_RETRANSMIT] = "retransmit",
};

/* Each kind's category: the PN_TRACE_... bit that switches it. */
static const uint32_t kind_category[PN__TR_KINDS] = {
    [PN__TR_RUN] = PN_TRACE_ACTOR,
    [PN__TR_SEND] = PN_TRACE_SEND,
    [PN__TR_SPAWN] = PN_TRACE_ACTOR,
    [PN__TR_STOP] = PN_TRACE_ACTOR,
    [PN__TR_MUTE] = PN_TRACE_MUTE,
    [PN__TR_UNMUTE] = PN_TRACE_MUTE,
    [PN__TR_STEAL] = PN_TRACE_SCHED,
    [PN__TR_IO_SUBMIT] = PN_TRACE_IO,
    [PN__TR_IO_COMPLETE] = PN_TRACE_IO,
    [PN__TR_PACKET_SEND] = PN_TRACE_PACKET,
    [PN__TR_PACKET_RECV] = PN_TRACE_PACKET,
    [PN__TR_ACK] = PN_TRACE_PACKET,
    [PN__TR_RETRANSMIT] = PN_TRACE_PACKET,
};

/* The "cat" of each category in the JSON, indexed by bit number. */
static const char *const category_name[] = {"actor", "send", "mute",
                                            "sched", "io",   "packet"};

_Static_assert(PN_TRACE_ALL ==
                   (1u << sizeof category_name / sizeof category_name[0]) - 1u,
               "every category has a name");

uint32_t pn__trace_kind_mask(uint32_t categories) {
  uint32_t mask = 0;
  for (uint32_t k = 1; k < PN__TR_KINDS; k++) {
    if (kind_category[k] & categories) {
      mask |= 1u << k;
    }
  }
  return mask;
}

static const char *kind_cat(uint32_t kind) {
  uint32_t bit = (uint32_t)__builtin_ctz(kind_category[kind]);
  return category_name[bit];
}

/* Event times are the TSC's low 56 bits: differences are taken modulo
 * 2^56, and one that comes out "negative" (a CPU whose TSC lags the one
 * the runtime was created on) is taken as zero. */
#define TS_BITS 56
#define TS_MASK ((UINT64_C(1) << TS_BITS) - 1)

/* One calibration for the whole dump: a fresh one per event would map
 * ticks to time slightly differently each time and could reorder events
 * that are nanoseconds apart. */
typedef struct tick_scale {
  uint64_t tick0;
  double ns_per_tick;
} tick_scale;

static tick_scale calibrate(pn_runtime *rt) {
  const uint64_t big = 1000000000000ull;
  tick_scale sc = {rt->tick0 & TS_MASK,
                   (double)pn__ticks_to_ns(rt, big) / 1e12};
  return sc;
}

/* Nanoseconds since the runtime's creation. Times and durations are both
 * printed from these whole nanoseconds, so a run that ends where the next
 * begins (in ticks) does so in the JSON too, with no rounding overlap. */
static uint64_t ticks_to_ns(const tick_scale *sc, uint64_t ts56) {
  uint64_t d = (ts56 - sc->tick0) & TS_MASK;
  return d < (TS_MASK >> 1) ? (uint64_t)((double)d * sc->ns_per_tick + 0.5) : 0;
}

/* Microseconds with three decimals, the unit of the format. */
#define US_FMT "%" PRIu64 ".%03u"
#define US_ARG(ns) (ns) / 1000u, (unsigned)((ns) % 1000u)

pn_err pn__trace_dump(pn_runtime *rt, const char *path) {
  FILE *f = fopen(path, "w");
  if (!f) {
    return pn__err_os(errno);
  }
  fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", f);
  tick_scale sc = calibrate(rt);
  bool first = true;
  for (uint32_t wi = 0; wi < rt->nworkers; wi++) {
    pn__trace_ring *r = &rt->workers[wi].trace;
    fprintf(f,
            "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,"
            "\"args\":{\"name\":\"worker %u\"}}",
            first ? "" : ",\n", wi, wi);
    first = false;
    if (!r->ev) {
      continue;
    }
    /* acquire: pairs with the release store of pos in pn__trace_put()
     * (trace.h). The oldest event is at pos once the ring has wrapped,
     * else at ev. */
    const pn__trace_event *pos =
        atomic_load_explicit(&r->pos, memory_order_acquire);
    bool wrapped = atomic_load_explicit(&r->wrapped, memory_order_relaxed);
    size_t size = (size_t)(r->end - r->ev);
    size_t oldest = wrapped ? (size_t)(pos - r->ev) : 0;
    size_t count = wrapped ? size : (size_t)(pos - r->ev);
    for (size_t i = 0; i < count; i++) {
      const pn__trace_event *e = &r->ev[(oldest + i) % size];
      uint64_t ts_kind =
          atomic_load_explicit(&e->ts_kind, memory_order_relaxed);
      uint32_t kind = (uint32_t)(ts_kind & 0xFFu);
      if (kind == 0 || kind >= PN__TR_KINDS) {
        continue; /* overwritten while we read */
      }
      uint64_t ts = ts_kind >> 8;
      uint64_t a = atomic_load_explicit(&e->a, memory_order_relaxed);
      uint64_t b = atomic_load_explicit(&e->b, memory_order_relaxed);
      uint64_t ts_ns = ticks_to_ns(&sc, ts);
      if (kind == PN__TR_RUN) {
        uint64_t dur_ns = ticks_to_ns(&sc, (ts + (b >> 32)) & TS_MASK) - ts_ns;
        fprintf(f,
                ",\n{\"name\":\"run\",\"cat\":\"actor\",\"ph\":\"X\","
                "\"pid\":1,\"tid\":%u,\"ts\":" US_FMT ",\"dur\":" US_FMT
                ",\"args\":{\"actor\":%" PRIu64 ",\"messages\":%" PRIu32 "}}",
                wi, US_ARG(ts_ns), US_ARG(dur_ns), a, (uint32_t)b);
      } else {
        /* An I/O completion's b is a result: bytes, or a negative errno. */
        char bs[24];
        if (kind == PN__TR_IO_COMPLETE) {
          snprintf(bs, sizeof bs, "%" PRId64, (int64_t)b);
        } else {
          snprintf(bs, sizeof bs, "%" PRIu64, b);
        }
        fprintf(f,
                ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"i\",\"s\":\"t\","
                "\"pid\":1,\"tid\":%u,\"ts\":" US_FMT
                ",\"args\":{\"a\":%" PRIu64 ",\"b\":%s}}",
                kind_name[kind], kind_cat(kind), wi, US_ARG(ts_ns), a, bs);
      }
    }
  }
  fputs("\n]}\n", f);
  if (ferror(f)) {
    int saved = errno ? errno : EIO;
    fclose(f);
    return pn__err_os(saved);
  }
  if (fclose(f) != 0) {
    return pn__err_os(errno);
  }
  return PN_OK;
}
