/* Flight recorder storage and its Chrome trace-event JSON dump
 * (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU:
 * "X" complete events for runs, "i" instant events for the rest, one
 * thread per worker). */
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
  r->ev = calloc(n, sizeof *r->ev);
  if (!r->ev) {
    return PN_ENOMEM;
  }
  r->mask = n - 1;
  atomic_init(&r->next, 0);
  return PN_OK;
}

void pn__trace_ring_fini(pn__trace_ring *r) {
  free(r->ev);
  r->ev = NULL;
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

static const char *const kind_cat[PN__TR_KINDS] = {
    [PN__TR_RUN] = "actor",          [PN__TR_SEND] = "actor",
    [PN__TR_SPAWN] = "actor",        [PN__TR_STOP] = "actor",
    [PN__TR_MUTE] = "actor",         [PN__TR_UNMUTE] = "actor",
    [PN__TR_STEAL] = "sched",        [PN__TR_IO_SUBMIT] = "io",
    [PN__TR_IO_COMPLETE] = "io",     [PN__TR_PACKET_SEND] = "packet",
    [PN__TR_PACKET_RECV] = "packet", [PN__TR_ACK] = "packet",
    [PN__TR_RETRANSMIT] = "packet",
};

/* One calibration for the whole dump: a fresh one per event would map
 * ticks to time slightly differently each time and could reorder events
 * that are nanoseconds apart. */
typedef struct tick_scale {
  uint64_t tick0;
  double us_per_tick;
} tick_scale;

static tick_scale calibrate(pn_runtime *rt) {
  const uint64_t big = 1000000000000ull;
  tick_scale sc = {rt->tick0, (double)pn__ticks_to_ns(rt, big) / 1e3 / 1e12};
  return sc;
}

static double ticks_to_us(const tick_scale *sc, uint64_t ticks) {
  return ticks >= sc->tick0 ? (double)(ticks - sc->tick0) * sc->us_per_tick
                            : 0.0;
}

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
    /* acquire: pairs with the release store of next in pn__trace_put. */
    uint64_t end = atomic_load_explicit(&r->next, memory_order_acquire);
    uint64_t size = r->mask + 1;
    uint64_t start = end > size ? end - size : 0;
    for (uint64_t i = start; i < end; i++) {
      const pn__trace_event *e = &r->ev[i & r->mask];
      uint32_t kind = atomic_load_explicit(&e->kind, memory_order_relaxed);
      if (kind == 0 || kind >= PN__TR_KINDS) {
        continue; /* overwritten while we read */
      }
      uint64_t ts = atomic_load_explicit(&e->ts, memory_order_relaxed);
      uint64_t a = atomic_load_explicit(&e->a, memory_order_relaxed);
      uint64_t b = atomic_load_explicit(&e->b, memory_order_relaxed);
      uint32_t dur = atomic_load_explicit(&e->dur, memory_order_relaxed);
      if (kind == PN__TR_RUN) {
        fprintf(f,
                ",\n{\"name\":\"run\",\"cat\":\"actor\",\"ph\":\"X\","
                "\"pid\":1,\"tid\":%u,\"ts\":%.3f,\"dur\":%.3f,"
                "\"args\":{\"actor\":%" PRIu64 ",\"messages\":%" PRIu64 "}}",
                wi, ticks_to_us(&sc, ts), (double)dur * sc.us_per_tick, a, b);
      } else {
        fprintf(f,
                ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"i\",\"s\":\"t\","
                "\"pid\":1,\"tid\":%u,\"ts\":%.3f,"
                "\"args\":{\"a\":%" PRIu64 ",\"b\":%" PRIu64 "}}",
                kind_name[kind], kind_cat[kind], wi, ticks_to_us(&sc, ts), a,
                b);
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
