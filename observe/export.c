/* Snapshot exports: JSON and Prometheus text, written into a growable
 * buffer. Actor names are user text, so they are escaped for both. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peernet/net.h"
#include "peernet/stats.h"
#include "runtime/alloc.h"

typedef struct text {
  char *buf;
  size_t len;
  size_t cap;
  bool failed;
} text;

static void put_raw(text *t, const char *s, size_t n) {
  if (t->failed) {
    return;
  }
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 4096;
    while (cap < t->len + n + 1) {
      cap *= 2;
    }
    char *b = pn__realloc(t->buf, cap);
    if (!b) {
      t->failed = true;
      return;
    }
    t->buf = b;
    t->cap = cap;
  }
  memcpy(t->buf + t->len, s, n);
  t->len += n;
  t->buf[t->len] = '\0';
}

static void put(text *t, const char *s) { put_raw(t, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void putf(text *t, const char *fmt,
                                                       ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) {
    t->failed = true;
  } else if ((size_t)n < sizeof small) {
    put_raw(t, small, (size_t)n);
  } else {
    char *big = pn__malloc((size_t)n + 1);
    if (!big) {
      t->failed = true;
      return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    put_raw(t, big, (size_t)n);
    free(big);
  }
}

/* JSON string escaping (RFC 8259): quotes, backslash, control bytes. */
static void put_json_string(text *t, const char *s) {
  put(t, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') {
      char esc[2] = {'\\', (char)*p};
      put_raw(t, esc, 2);
    } else if (*p < 0x20) {
      putf(t, "\\u%04x", *p);
    } else {
      put_raw(t, (const char *)p, 1);
    }
  }
  put(t, "\"");
}

/* Prometheus label values escape backslash, quote and newline. */
static void put_label_value(text *t, const char *s) {
  put(t, "\"");
  for (const char *p = s; *p; p++) {
    if (*p == '\\' || *p == '"') {
      char esc[2] = {'\\', *p};
      put_raw(t, esc, 2);
    } else if (*p == '\n') {
      put(t, "\\n");
    } else {
      put_raw(t, p, 1);
    }
  }
  put(t, "\"");
}

static pn_err finish(text *t, char **text_out, size_t *len_out) {
  if (t->failed || !t->buf) {
    free(t->buf);
    return PN_ENOMEM;
  }
  *text_out = t->buf;
  if (len_out) {
    *len_out = t->len;
  }
  return PN_OK;
}

/* "name":{"count":..,"sum":..,"p50":..,"p99":..,"buckets":[..]} */
static void put_json_histogram(text *t, const char *name,
                               const pn_histogram *h) {
  putf(t,
       ",\"%s\":{\"count\":%" PRIu64 ",\"sum\":%" PRIu64
       ",\"p50\":%.1f,\"p99\":%.1f,\"buckets\":[",
       name, h->count, h->sum_ns, pn_histogram_quantile_ns(h, 0.5),
       pn_histogram_quantile_ns(h, 0.99));
  for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
    putf(t, "%s%" PRIu64, i ? "," : "", h->buckets[i]);
  }
  put(t, "]}");
}

pn_err pn_snapshot_json(const pn_snapshot *snap, char **text_out,
                        size_t *len_out) {
  if (!snap || !text_out) {
    return PN_EINVAL;
  }
  text t = {0};
  const pn_runtime_stats *r = &snap->runtime;
  putf(&t, "{\"runtime\":{\"workers\":%u,\"io_backend\":", r->workers);
  put_json_string(&t, r->io_backend ? r->io_backend : "");
  putf(&t,
       ",\"actors_spawned\":%" PRIu64 ",\"actors_stopped\":%" PRIu64
       ",\"actors_alive\":%" PRIu64 ",\"actor_handles\":%" PRIu64
       ",\"msgs_in_flight\":%" PRIu64 ",\"timers_active\":%" PRIu64
       ",\"uptime_ns\":%" PRIu64 "},",
       r->actors_spawned, r->actors_stopped, r->actors_alive, r->actor_handles,
       r->msgs_in_flight, r->timers_active, r->uptime_ns);
  put(&t, "\"workers\":[");
  for (size_t i = 0; i < snap->worker_count; i++) {
    const pn_worker_stats *w = &snap->workers[i];
    putf(&t,
         "%s{\"index\":%u,\"runs\":%" PRIu64 ",\"steals\":%" PRIu64
         ",\"stolen_actors\":%" PRIu64 ",\"wakeups\":%" PRIu64
         ",\"idle_ns\":%" PRIu64 ",\"timers_fired\":%" PRIu64
         ",\"io_calls\":%" PRIu64 "}",
         i ? "," : "", w->index, w->runs, w->steals, w->stolen_actors,
         w->wakeups, w->idle_ns, w->timers_fired, w->io_calls);
  }
  put(&t, "],\"actors\":[");
  for (size_t i = 0; i < snap->actor_count; i++) {
    const pn_actor_stats *a = &snap->actors[i];
    putf(&t, "%s{\"id\":%" PRIu64 ",\"name\":", i ? "," : "", a->id);
    put_json_string(&t, a->name);
    put(&t, ",\"state\":");
    put_json_string(&t, pn_actor_state_name(a->state));
    putf(&t,
         ",\"home_worker\":%d,\"overloaded\":%s,\"received\":%" PRIu64
         ",\"processed\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"sent\":%" PRIu64
         ",\"runs\":%" PRIu64 ",\"muted\":%" PRIu64 ",\"cpu_ns\":%" PRIu64
         ",\"mailbox_depth\":%u,\"mailbox_hwm\":%u,\"remote_sent\":%" PRIu64
         ",\"remote_received\":%" PRIu64,
         a->home_worker, a->overloaded ? "true" : "false", a->received,
         a->processed, a->dropped, a->sent, a->runs, a->muted, a->cpu_ns,
         a->mailbox_depth, a->mailbox_hwm, a->remote_sent, a->remote_received);
    if (snap->actor_histograms) {
      const pn_actor_histograms *h = &snap->actor_histograms[i];
      put_json_histogram(&t, "mailbox_time_ns", &h->mailbox_time);
      put_json_histogram(&t, "processing_time_ns", &h->processing_time);
    }
    put(&t, "}");
  }
  put(&t, "],\"sockets\":[");
  for (size_t i = 0; i < snap->socket_count; i++) {
    const pn_socket_info *so = &snap->sockets[i];
    const pn_socket_stats *st = &so->stats;
    putf(&t,
         "%s{\"id\":%" PRIu64 ",\"owner\":%" PRIu64 ",\"local\":", i ? "," : "",
         so->id, so->owner_id);
    put_json_string(&t, so->local);
    putf(&t,
         ",\"datagrams_in\":%" PRIu64 ",\"bytes_in\":%" PRIu64
         ",\"datagrams_out\":%" PRIu64 ",\"bytes_out\":%" PRIu64
         ",\"syscalls\":%" PRIu64 ",\"completions\":%" PRIu64
         ",\"send_errors\":%" PRIu64 ",\"send_drops\":%" PRIu64
         ",\"kernel_drops\":%" PRIu64 ",\"truncated\":%" PRIu64
         ",\"gso_segments\":%" PRIu64 ",\"gro_segments\":%" PRIu64
         ",\"enobufs\":%" PRIu64 ",\"cond_dropped\":%" PRIu64
         ",\"cond_delayed\":%" PRIu64 ",\"cond_duplicated\":%" PRIu64 "}",
         st->datagrams_in, st->bytes_in, st->datagrams_out, st->bytes_out,
         st->syscalls, st->readiness, st->send_errors, st->send_drops,
         st->kernel_drops, st->truncated, st->gso_segments, st->gro_segments,
         st->enobufs, st->cond_dropped, st->cond_delayed, st->cond_duplicated);
  }
  put(&t, "],\"peers\":[");
  size_t ch = 0;
  for (size_t i = 0; i < snap->peer_count; i++) {
    const pn_peer_info *p = &snap->peers[i];
    const pn_peer_stats *st = &p->stats;
    static const char *const states[] = {"connecting", "connected",
                                         "disconnecting", "disconnected"};
    putf(&t,
         "%s{\"id\":%" PRIu64 ",\"actor\":%" PRIu64 ",\"owner\":%" PRIu64
         ",\"remote\":",
         i ? "," : "", p->id, p->actor_id, p->owner_id);
    put_json_string(&t, p->remote);
    putf(&t,
         ",\"client\":%s,\"state\":\"%s\",\"srtt_us\":%" PRIu64
         ",\"rttvar_us\":%" PRIu64 ",\"min_rtt_us\":%" PRIu64
         ",\"rto_us\":%" PRIu64 ",\"loss\":%.6f,\"datagrams_out\":%" PRIu64
         ",\"bytes_out\":%" PRIu64 ",\"datagrams_in\":%" PRIu64
         ",\"bytes_in\":%" PRIu64 ",\"datagrams_lost\":%" PRIu64
         ",\"retransmits\":%" PRIu64 ",\"messages_out\":%" PRIu64
         ",\"messages_in\":%" PRIu64 ",\"duplicates\":%" PRIu64
         ",\"bad_datagrams\":%" PRIu64 ",\"compression_ratio\":%.3f"
         ",\"in_flight\":%" PRIu64 ",\"queued_bytes\":%" PRIu64
         ",\"cwnd\":%" PRIu64 ",\"ssthresh\":%" PRIu64
         ",\"unproven_datagrams\":%" PRIu64 ",\"path_challenges\":%" PRIu64
         ",\"migrations\":%" PRIu64 ",\"receive_buffer_bytes\":%" PRIu64
         ",\"window_drops\":%" PRIu64 ",\"send_window\":%" PRIu64
         ",\"channels\":[",
         p->is_client ? "true" : "false",
         (unsigned)st->state < 4 ? states[st->state] : "?", st->srtt_us,
         st->rttvar_us, st->min_rtt_us, st->rto_us, st->loss, st->datagrams_out,
         st->bytes_out, st->datagrams_in, st->bytes_in, st->datagrams_lost,
         st->retransmits, st->messages_out, st->messages_in, st->duplicates,
         st->bad_datagrams, st->compression_ratio, st->in_flight,
         st->queued_bytes, st->cwnd, st->ssthresh, st->unproven_datagrams,
         st->path_challenges, st->migrations, st->receive_buffer_bytes,
         st->window_drops, st->send_window);
    for (uint32_t c = 0; c < p->channel_count && ch < snap->channel_count;
         c++, ch++) {
      const pn_channel_info *ci = &snap->channels[ch];
      putf(&t,
           "%s{\"index\":%" PRIu32 ",\"kind\":\"%s\",\"actor\":%" PRIu64 "}",
           c ? "," : "", ci->index,
           pn_channel_kind_name((pn_channel_kind)ci->kind), ci->actor_id);
    }
    put(&t, "]}");
  }
  put(&t, "],\"nodes\":[");
  size_t li = 0;
  for (size_t i = 0; i < snap->node_count; i++) {
    const pn_local_node_info *n = &snap->nodes[i];
    putf(&t, "%s{\"name\":", i ? "," : "");
    put_json_string(&t, n->name);
    putf(&t,
         ",\"id\":%" PRIu64 ",\"incarnation\":%" PRIu64 ",\"listen\":", n->id,
         n->incarnation);
    put_json_string(&t, n->listen);
    putf(&t,
         ",\"lanes\":%" PRIu32 ",\"links_up\":%" PRIu64
         ",\"sent_local\":%" PRIu64 ",\"sent_remote\":%" PRIu64
         ",\"delivered\":%" PRIu64 ",\"dropped_no_actor\":%" PRIu64
         ",\"dropped_stale\":%" PRIu64 ",\"dropped_bad\":%" PRIu64
         ",\"joins\":%" PRIu64 ",\"leaves\":%" PRIu64
         ",\"senders_muted\":%" PRIu64 ",\"sends_refused\":%" PRIu64
         ",\"links\":[",
         n->lanes, n->links, n->sent_local, n->sent_remote, n->delivered,
         n->dropped_no_actor, n->dropped_stale, n->dropped_bad, n->joins,
         n->leaves, n->senders_muted, n->sends_refused);
    for (size_t k = 0; k < n->link_count && li < snap->node_link_count;
         k++, li++) {
      const pn_node_link_info *l = &snap->node_links[li];
      putf(&t, "%s{\"name\":", k ? "," : "");
      put_json_string(&t, l->name);
      putf(&t,
           ",\"id\":%" PRIu64 ",\"incarnation\":%" PRIu64 ",\"remote\":", l->id,
           l->incarnation);
      put_json_string(&t, l->remote);
      putf(&t,
           ",\"peer\":%" PRIu64 ",\"srtt_us\":%" PRIu64
           ",\"loss\":%.6f,\"messages_out\":%" PRIu64
           ",\"messages_in\":%" PRIu64 "}",
           l->peer_id, l->srtt_us, l->loss, l->messages_out, l->messages_in);
    }
    put(&t, "]}");
  }
  put(&t, "]");
  if (snap->actor_histograms) {
    put(&t, ",\"histogram_le_ns\":[");
    for (uint32_t i = 0; i + 1 < PN_HIST_BUCKETS; i++) {
      putf(&t, "%s%" PRIu64, i ? "," : "", pn_histogram_bucket_le_ns(i));
    }
    put(&t, "]");
  }
  put(&t, "}\n");
  return finish(&t, text_out, len_out);
}

static void metric_header(text *t, const char *name, const char *type,
                          const char *help) {
  putf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum value_kind {
  VALUE_U64,
  VALUE_U32,
  VALUE_NS_AS_SECONDS,
  VALUE_US_AS_SECONDS
};

/* One metric family read from an array of stats structs: the field's
 * offset and how to print it. */
typedef struct metric_family {
  const char *name;
  const char *type;
  const char *help;
  size_t offset;
  enum value_kind kind;
} metric_family;

typedef void (*label_fn)(text *t, const void *obj, size_t index);

static void worker_labels(text *t, const void *obj, size_t index) {
  (void)obj;
  putf(t, "worker=\"%zu\"", index);
}

static void actor_labels(text *t, const void *obj, size_t index) {
  (void)index;
  const pn_actor_stats *a = obj;
  putf(t, "id=\"%" PRIu64 "\",name=", a->id);
  put_label_value(t, a->name);
}

static void peer_labels(text *t, const void *obj, size_t index) {
  (void)index;
  const pn_peer_info *p = obj;
  putf(t, "peer=\"%" PRIu64 "\",remote=", p->id);
  put_label_value(t, p->remote);
}

static void node_labels(text *t, const void *obj, size_t index) {
  (void)index;
  const pn_local_node_info *n = obj;
  put(t, "node=");
  put_label_value(t, n->name);
}

static void node_link_labels(text *t, const void *obj, size_t index) {
  (void)index;
  const pn_node_link_info *l = obj;
  putf(t, "node_id=\"%" PRIu64 "\",remote_node=", l->node_id);
  put_label_value(t, l->name);
}

static void socket_labels(text *t, const void *obj, size_t index) {
  (void)index;
  const pn_socket_info *so = obj;
  putf(t, "socket=\"%" PRIu64 "\",local=", so->id);
  put_label_value(t, so->local);
}

/* Every family over every object: a header, then one sample per object. */
static void put_families(text *t, const metric_family *families, size_t nf,
                         const void *objects, size_t stride, size_t count,
                         label_fn labels) {
  for (size_t f = 0; f < nf; f++) {
    const metric_family *m = &families[f];
    metric_header(t, m->name, m->type, m->help);
    for (size_t i = 0; i < count; i++) {
      const char *obj = (const char *)objects + i * stride;
      putf(t, "%s{", m->name);
      labels(t, obj, i);
      if (m->kind == VALUE_U32) {
        uint32_t v;
        memcpy(&v, obj + m->offset, sizeof v);
        putf(t, "} %" PRIu32 "\n", v);
      } else {
        uint64_t v;
        memcpy(&v, obj + m->offset, sizeof v);
        if (m->kind == VALUE_NS_AS_SECONDS) {
          putf(t, "} %.9f\n", (double)v / 1e9);
        } else if (m->kind == VALUE_US_AS_SECONDS) {
          putf(t, "} %.6f\n", (double)v / 1e6);
        } else {
          putf(t, "} %" PRIu64 "\n", v);
        }
      }
    }
  }
}

/* One histogram family over every actor: for each, the cumulative
 * buckets with their upper bounds in seconds (exact decimals: whole
 * nanoseconds), +Inf, the sum and the count. */
static void put_actor_histograms(text *t, const pn_snapshot *snap,
                                 const char *name, const char *help,
                                 size_t offset) {
  metric_header(t, name, "histogram", help);
  for (size_t k = 0; k < snap->actor_count; k++) {
    const pn_histogram *h =
        (const pn_histogram *)(const void *)((const char *)&snap
                                                 ->actor_histograms[k] +
                                             offset);
    uint64_t cumulative = 0;
    for (uint32_t i = 0; i < PN_HIST_BUCKETS; i++) {
      cumulative += h->buckets[i];
      putf(t, "%s_bucket{", name);
      actor_labels(t, &snap->actors[k], k);
      if (i + 1 < PN_HIST_BUCKETS) {
        uint64_t le = pn_histogram_bucket_le_ns(i);
        putf(t, ",le=\"%" PRIu64 ".%09" PRIu64 "\"} %" PRIu64 "\n",
             le / 1000000000u, le % 1000000000u, cumulative);
      } else {
        putf(t, ",le=\"+Inf\"} %" PRIu64 "\n", cumulative);
      }
    }
    putf(t, "%s_sum{", name);
    actor_labels(t, &snap->actors[k], k);
    putf(t, "} %.9f\n", (double)h->sum_ns / 1e9);
    putf(t, "%s_count{", name);
    actor_labels(t, &snap->actors[k], k);
    putf(t, "} %" PRIu64 "\n", cumulative);
  }
}

pn_err pn_snapshot_prometheus(const pn_snapshot *snap, char **text_out,
                              size_t *len_out) {
  if (!snap || !text_out) {
    return PN_EINVAL;
  }
  text t = {0};
  const pn_runtime_stats *r = &snap->runtime;
  metric_header(&t, "peernet_workers", "gauge", "Worker threads.");
  putf(&t, "peernet_workers %u\n", r->workers);
  metric_header(&t, "peernet_actors_spawned_total", "counter",
                "Actors spawned.");
  putf(&t, "peernet_actors_spawned_total %" PRIu64 "\n", r->actors_spawned);
  metric_header(&t, "peernet_actors_stopped_total", "counter",
                "Actors stopped.");
  putf(&t, "peernet_actors_stopped_total %" PRIu64 "\n", r->actors_stopped);
  metric_header(&t, "peernet_actors_alive", "gauge", "Actors not stopped.");
  putf(&t, "peernet_actors_alive %" PRIu64 "\n", r->actors_alive);
  metric_header(&t, "peernet_messages_in_flight", "gauge",
                "Message envelopes allocated and not yet freed.");
  putf(&t, "peernet_messages_in_flight %" PRIu64 "\n", r->msgs_in_flight);
  metric_header(&t, "peernet_timers_active", "gauge", "Timers not freed.");
  putf(&t, "peernet_timers_active %" PRIu64 "\n", r->timers_active);
  metric_header(&t, "peernet_uptime_seconds", "gauge",
                "Time since the runtime was created.");
  putf(&t, "peernet_uptime_seconds %.9f\n", (double)r->uptime_ns / 1e9);

  static const metric_family worker_families[] = {
      {"peernet_worker_runs_total", "counter", "Actor runs.",
       offsetof(pn_worker_stats, runs), VALUE_U64},
      {"peernet_worker_steals_total", "counter", "Successful steals.",
       offsetof(pn_worker_stats, steals), VALUE_U64},
      {"peernet_worker_wakeups_total", "counter", "Returns from the idle wait.",
       offsetof(pn_worker_stats, wakeups), VALUE_U64},
      {"peernet_worker_idle_seconds_total", "counter", "Time in the idle wait.",
       offsetof(pn_worker_stats, idle_ns), VALUE_NS_AS_SECONDS},
      {"peernet_worker_io_calls_total", "counter",
       "I/O backend waits and polls.", offsetof(pn_worker_stats, io_calls),
       VALUE_U64},
  };
  static const metric_family actor_families[] = {
      {"peernet_actor_processed_total", "counter",
       "Messages given to the handler.", offsetof(pn_actor_stats, processed),
       VALUE_U64},
      {"peernet_actor_sent_total", "counter", "Messages the actor sent.",
       offsetof(pn_actor_stats, sent), VALUE_U64},
      {"peernet_actor_runs_total", "counter", "Times the actor ran.",
       offsetof(pn_actor_stats, runs), VALUE_U64},
      {"peernet_actor_remote_sent_total", "counter",
       "Messages the actor sent to other nodes' actors.",
       offsetof(pn_actor_stats, remote_sent), VALUE_U64},
      {"peernet_actor_remote_received_total", "counter",
       "Messages from other nodes delivered to the actor.",
       offsetof(pn_actor_stats, remote_received), VALUE_U64},
      {"peernet_actor_cpu_seconds_total", "counter", "Time in its runs.",
       offsetof(pn_actor_stats, cpu_ns), VALUE_NS_AS_SECONDS},
      {"peernet_actor_mailbox_depth", "gauge", "Messages queued.",
       offsetof(pn_actor_stats, mailbox_depth), VALUE_U32},
  };
  static const metric_family socket_families[] = {
      {"peernet_socket_datagrams_in_total", "counter", "Datagrams received.",
       offsetof(pn_socket_info, stats.datagrams_in), VALUE_U64},
      {"peernet_socket_bytes_in_total", "counter", "Bytes received.",
       offsetof(pn_socket_info, stats.bytes_in), VALUE_U64},
      {"peernet_socket_datagrams_out_total", "counter", "Datagrams sent.",
       offsetof(pn_socket_info, stats.datagrams_out), VALUE_U64},
      {"peernet_socket_bytes_out_total", "counter", "Bytes sent.",
       offsetof(pn_socket_info, stats.bytes_out), VALUE_U64},
      {"peernet_socket_kernel_drops_total", "counter",
       "Packets the kernel dropped.",
       offsetof(pn_socket_info, stats.kernel_drops), VALUE_U64},
      {"peernet_socket_conditioner_drops_total", "counter",
       "Datagrams the link conditioner dropped.",
       offsetof(pn_socket_info, stats.cond_dropped), VALUE_U64},
  };
  put_families(&t, worker_families, ARRAY_LEN(worker_families), snap->workers,
               sizeof *snap->workers, snap->worker_count, worker_labels);
  put_families(&t, actor_families, ARRAY_LEN(actor_families), snap->actors,
               sizeof *snap->actors, snap->actor_count, actor_labels);
  put_families(&t, socket_families, ARRAY_LEN(socket_families), snap->sockets,
               sizeof *snap->sockets, snap->socket_count, socket_labels);
  static const metric_family peer_families[] = {
      {"peernet_peer_srtt_seconds", "gauge", "Smoothed round-trip time.",
       offsetof(pn_peer_info, stats.srtt_us), VALUE_US_AS_SECONDS},
      {"peernet_peer_rttvar_seconds", "gauge", "Round-trip time variation.",
       offsetof(pn_peer_info, stats.rttvar_us), VALUE_US_AS_SECONDS},
      {"peernet_peer_min_rtt_seconds", "gauge", "Smallest round-trip time.",
       offsetof(pn_peer_info, stats.min_rtt_us), VALUE_US_AS_SECONDS},
      {"peernet_peer_datagrams_out_total", "counter", "Datagrams sent.",
       offsetof(pn_peer_info, stats.datagrams_out), VALUE_U64},
      {"peernet_peer_bytes_out_total", "counter", "Bytes sent.",
       offsetof(pn_peer_info, stats.bytes_out), VALUE_U64},
      {"peernet_peer_datagrams_in_total", "counter", "Datagrams received.",
       offsetof(pn_peer_info, stats.datagrams_in), VALUE_U64},
      {"peernet_peer_bytes_in_total", "counter", "Bytes received.",
       offsetof(pn_peer_info, stats.bytes_in), VALUE_U64},
      {"peernet_peer_datagrams_lost_total", "counter",
       "Datagrams declared lost.", offsetof(pn_peer_info, stats.datagrams_lost),
       VALUE_U64},
      {"peernet_peer_retransmits_total", "counter", "Frames sent again.",
       offsetof(pn_peer_info, stats.retransmits), VALUE_U64},
      {"peernet_peer_bad_datagrams_total", "counter",
       "Datagrams dropped as corrupt or malformed.",
       offsetof(pn_peer_info, stats.bad_datagrams), VALUE_U64},
      {"peernet_peer_unproven_datagrams_total", "counter",
       "Authentic datagrams from an address not proven: not acted on.",
       offsetof(pn_peer_info, stats.unproven_datagrams), VALUE_U64},
      {"peernet_peer_receive_buffer_bytes", "gauge",
       "Bytes held before delivery (its limit: max_receive_buffer).",
       offsetof(pn_peer_info, stats.receive_buffer_bytes), VALUE_U64},
      {"peernet_peer_window_drops_total", "counter",
       "Datagrams dropped unacknowledged: past the receive buffer.",
       offsetof(pn_peer_info, stats.window_drops), VALUE_U64},
      {"peernet_peer_migrations_total", "counter",
       "Times a newly proven address became the one sent to.",
       offsetof(pn_peer_info, stats.migrations), VALUE_U64},
      {"peernet_peer_in_flight", "gauge", "Datagrams awaiting a verdict.",
       offsetof(pn_peer_info, stats.in_flight), VALUE_U64},
      {"peernet_peer_cwnd", "gauge", "Congestion window, datagrams.",
       offsetof(pn_peer_info, stats.cwnd), VALUE_U64},
  };
  put_families(&t, peer_families, ARRAY_LEN(peer_families), snap->peers,
               sizeof *snap->peers, snap->peer_count, peer_labels);
  static const metric_family node_families[] = {
      {"peernet_node_links", "gauge", "Other nodes linked and up.",
       offsetof(pn_local_node_info, links), VALUE_U64},
      {"peernet_node_sent_local_total", "counter",
       "Messages sent to this node's own actors.",
       offsetof(pn_local_node_info, sent_local), VALUE_U64},
      {"peernet_node_sent_remote_total", "counter",
       "Messages sent to other nodes' actors.",
       offsetof(pn_local_node_info, sent_remote), VALUE_U64},
      {"peernet_node_delivered_total", "counter",
       "Messages from other nodes delivered here.",
       offsetof(pn_local_node_info, delivered), VALUE_U64},
      {"peernet_node_dropped_no_actor_total", "counter",
       "Messages to an actor that had stopped or was never referenced.",
       offsetof(pn_local_node_info, dropped_no_actor), VALUE_U64},
      {"peernet_node_dropped_stale_total", "counter",
       "Messages naming an earlier incarnation of this node.",
       offsetof(pn_local_node_info, dropped_stale), VALUE_U64},
      {"peernet_node_dropped_bad_total", "counter",
       "Malformed envelopes or control messages.",
       offsetof(pn_local_node_info, dropped_bad), VALUE_U64},
      {"peernet_node_senders_muted_total", "counter",
       "Actors muted because a lane to another node was out of credit.",
       offsetof(pn_local_node_info, senders_muted), VALUE_U64},
      {"peernet_node_sends_refused_total", "counter",
       "Sends refused (PN_EAGAIN) because a lane was out of credit.",
       offsetof(pn_local_node_info, sends_refused), VALUE_U64},
  };
  put_families(&t, node_families, ARRAY_LEN(node_families), snap->nodes,
               sizeof *snap->nodes, snap->node_count, node_labels);
  static const metric_family node_link_families[] = {
      {"peernet_node_link_srtt_seconds", "gauge",
       "A link's smoothed round-trip time.",
       offsetof(pn_node_link_info, srtt_us), VALUE_US_AS_SECONDS},
      {"peernet_node_link_messages_out_total", "counter",
       "Messages sent to that node.", offsetof(pn_node_link_info, messages_out),
       VALUE_U64},
      {"peernet_node_link_messages_in_total", "counter",
       "Messages from that node.", offsetof(pn_node_link_info, messages_in),
       VALUE_U64},
  };
  put_families(&t, node_link_families, ARRAY_LEN(node_link_families),
               snap->node_links, sizeof *snap->node_links,
               snap->node_link_count, node_link_labels);
  if (snap->actor_histograms) {
    put_actor_histograms(
        &t, snap, "peernet_actor_mailbox_seconds",
        "Time from a message's arrival in the mailbox to the start of its "
        "handling.",
        offsetof(pn_actor_histograms, mailbox_time));
    put_actor_histograms(&t, snap, "peernet_actor_processing_seconds",
                         "Time the handler took for a message.",
                         offsetof(pn_actor_histograms, processing_time));
  }
  return finish(&t, text_out, len_out);
}

void pn_free(void *ptr) { free(ptr); }
