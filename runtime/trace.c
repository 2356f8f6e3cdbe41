/* Flight recorder storage and its Chrome trace-event JSON dump
 * (https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU:
 * "X" complete events for runs, titled with the actor's name, "i" instant
 * events for the rest with the names of the actors they mention, "M"
 * metadata naming the process and one thread per worker). Events carry
 * actor ids only, so recording stays three stores; names are looked up
 * when the dump is written. */
#include "runtime/alloc.h"
#include "runtime/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/err_os.h"
#include "runtime/labels.h"
#include "runtime/rt.h"

size_t pn__trace_ring_capacity(uint32_t events) {
  size_t n = 1024;
  while (n < events && n < (1u << 24)) {
    n *= 2;
  }
  return n;
}

pn_err pn__trace_ring_init(pn__trace_ring *r, uint32_t events) {
  size_t n = pn__trace_ring_capacity(events);
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
    [PN__TR_REMOTE_SEND] = "remote_send",
    [PN__TR_REMOTE_DELIVER] = "remote_deliver",
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
    [PN__TR_REMOTE_SEND] = PN_TRACE_NODE,
    [PN__TR_REMOTE_DELIVER] = PN_TRACE_NODE,
};

/* The "cat" of each category in the JSON, indexed by bit number. */
static const char *const category_name[] = {"actor", "send",   "mute", "sched",
                                            "io",    "packet", "node"};

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

void pn__trace_names_note(pn_runtime *rt, uint64_t id, pn__label *label) {
  pn__trace_names *n = &rt->trace_names;
  if (!label) {
    return;
  }
  if (n->count == n->cap && n->cap < n->max) {
    /* Grown as actors stop, so a runtime whose actors live on keeps
     * nothing here. */
    size_t cap = n->cap ? n->cap * 2 : 64;
    cap = cap < n->max ? cap : n->max;
    pn__trace_name *ent = pn__realloc(n->ent, cap * sizeof *ent);
    if (!ent) {
      return;
    }
    n->ent = ent;
    n->cap = cap;
  }
  pn__trace_name *e;
  if (n->count < n->cap) {
    e = &n->ent[n->count++];
  } else {
    e = &n->ent[n->next];
    n->next = (n->next + 1) % n->count;
    pn__label_put(&rt->labels, e->label);
  }
  /* The actor's own reference goes when its last handle does; this one
   * keeps the text for as long as the entry lasts. */
  label->refs++;
  e->id = id;
  e->label = label;
}

void pn__trace_names_fini(pn__trace_names *n) {
  free(n->ent);
  n->ent = NULL;
  n->cap = n->count = n->next = 0;
}

/* A name copied out for the dump, which writes the file without the
 * registry lock. */
typedef struct dump_name {
  uint64_t id;
  char text[PN__LABEL_MAX + 1];
} dump_name;

static int dump_name_cmp(const void *a, const void *b) {
  uint64_t x = ((const dump_name *)a)->id;
  uint64_t y = ((const dump_name *)b)->id;
  return x < y ? -1 : x > y;
}

/* Every named live actor and every kept name of a stopped one, sorted by
 * id; NULL (and *count 0) when there are none or memory ran out, in which
 * case the dump shows ids only. */
static dump_name *names_collect(pn_runtime *rt, size_t *count) {
  *count = 0;
  pthread_mutex_lock(&rt->reg_lock);
  size_t n = rt->trace_names.count;
  PN__LIST_FOREACH(it, &rt->actors) {
    n += PN__CONTAINER_OF(it, pn_actor, reg)->label != NULL;
  }
  dump_name *names = n ? pn__malloc(n * sizeof *names) : NULL;
  size_t k = 0;
  if (names) {
    PN__LIST_FOREACH(it, &rt->actors) {
      const pn_actor *a = PN__CONTAINER_OF(it, pn_actor, reg);
      if (a->label) {
        names[k].id = a->id;
        memcpy(names[k++].text, a->label->text, sizeof names->text);
      }
    }
    for (size_t i = 0; i < rt->trace_names.count; i++) {
      names[k].id = rt->trace_names.ent[i].id;
      memcpy(names[k++].text, rt->trace_names.ent[i].label->text,
             sizeof names->text);
    }
  }
  pthread_mutex_unlock(&rt->reg_lock);
  if (names) {
    qsort(names, k, sizeof *names, dump_name_cmp);
  }
  *count = k;
  return names;
}

static const char *name_of(const dump_name *names, size_t count, uint64_t id) {
  dump_name key = {.id = id};
  const dump_name *d =
      count ? bsearch(&key, names, count, sizeof *names, dump_name_cmp) : NULL;
  return d ? d->text : NULL;
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0. A name
 * cut at PN__LABEL_MAX bytes can end inside one. */
static size_t utf8_len(const unsigned char *p) {
  size_t n = p[0] < 0x80   ? 1
             : p[0] < 0xC2 ? 0
             : p[0] < 0xE0 ? 2
             : p[0] < 0xF0 ? 3
             : p[0] < 0xF5 ? 4
                           : 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) {
      return 0;
    }
  }
  return n;
}

/* s as a JSON string: quote and backslash escaped, control characters as
 * \u00XX, bytes that are not UTF-8 as '?'. */
static void put_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    size_t n = utf8_len(p);
    if (n == 0) {
      fputc('?', f);
      p++;
    } else if (*p == '"' || *p == '\\') {
      fputc('\\', f);
      fputc(*p++, f);
    } else if (*p < 0x20) {
      fprintf(f, "\\u%04x", *p++);
    } else {
      fwrite(p, 1, n, f);
      p += n;
    }
  }
  fputc('"', f);
}

/* Which of an instant event's arguments are actor ids. */
static bool arg_a_is_actor(uint32_t kind) {
  return kind == PN__TR_SEND || kind == PN__TR_SPAWN || kind == PN__TR_STOP ||
         kind == PN__TR_MUTE || kind == PN__TR_UNMUTE;
}

static bool arg_b_is_actor(uint32_t kind) {
  return kind == PN__TR_SEND || kind == PN__TR_MUTE;
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
  size_t nnames = 0;
  dump_name *names = names_collect(rt, &nnames);
  fputs("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n", f);
  fputs("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":1,"
        "\"args\":{\"name\":\"peernet runtime\"}}",
        f);
  tick_scale sc = calibrate(rt);
  for (uint32_t wi = 0; wi < rt->nworkers; wi++) {
    pn__trace_ring *r = &rt->workers[wi].trace;
    fprintf(f,
            ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%u,"
            "\"args\":{\"name\":\"worker %u\"}}",
            wi, wi);
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
        /* Titled with the actor's name, so Perfetto's tracks read as
         * which actors ran; an unnamed one is "actor ID". */
        uint64_t dur_ns = ticks_to_ns(&sc, (ts + (b >> 32)) & TS_MASK) - ts_ns;
        const char *name = name_of(names, nnames, a);
        fputs(",\n{\"name\":", f);
        if (name) {
          put_json_string(f, name);
        } else {
          fprintf(f, "\"actor %" PRIu64 "\"", a);
        }
        fprintf(f,
                ",\"cat\":\"actor\",\"ph\":\"X\","
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
                ",\"args\":{\"a\":%" PRIu64 ",\"b\":%s",
                kind_name[kind], kind_cat(kind), wi, US_ARG(ts_ns), a, bs);
        const char *an =
            arg_a_is_actor(kind) ? name_of(names, nnames, a) : NULL;
        const char *bn =
            arg_b_is_actor(kind) ? name_of(names, nnames, b) : NULL;
        if (an) {
          fputs(",\"a_name\":", f);
          put_json_string(f, an);
        }
        if (bn) {
          fputs(",\"b_name\":", f);
          put_json_string(f, bn);
        }
        fputs("}}", f);
      }
    }
  }
  free(names);
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
