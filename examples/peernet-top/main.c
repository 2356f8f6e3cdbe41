/* peernet-top: a live table of a running PeerNet runtime's actors or
 * peers, like etop or htop. The runtime must publish its stats on a Unix
 * socket (pn_runtime_config.stats_socket, or PEERNET_STATS_SOCKET=path in
 * its environment); peernet-top reads a JSON snapshot from it every
 * interval and shows the busiest actors with their message rates and CPU
 * share, or every peer with its RTT, loss, congestion window and queued
 * bytes.
 *
 *   peernet-top --socket PATH [--view actors|peers|nodes]
 *               [--sort cpu|rate|mailbox|processed]
 *               [--interval MS] [--top N] [--once]
 *
 * Keys while running: a, e and n show actors, peers and nodes; c, r, m, p
 * change the actors' sort; q quits. --once prints one table (from two samples,
 * to have rates) and exits.
 *
 * Rates and busy shares are taken over the runtime's own uptime between
 * two snapshots (runtime.uptime_ns), the moment each worker's idle time is
 * counted to, not over this program's clock: the time the socket took to
 * answer does not skew them. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

typedef struct actor_row {
  uint64_t id;
  char name[64];
  char state[16];
  uint64_t processed;
  uint64_t sent;
  uint64_t runs;
  uint64_t cpu_ns;
  uint64_t depth;
  uint64_t hwm;
  uint64_t remote_sent; /* to and from other nodes' actors */
  uint64_t remote_received;
  double rate;    /* processed per second since the last sample */
  double cpu_pct; /* share of one core since the last sample */
} actor_row;

typedef struct peer_row {
  uint64_t id;
  char remote[64];
  char state[16];
  uint64_t srtt_us;
  double loss; /* share of datagrams deemed lost, 0 to 1 */
  uint64_t cwnd;
  uint64_t in_flight;
  uint64_t queued_bytes;
  uint64_t retransmits;
  uint64_t bytes_out;
  uint64_t bytes_in;
  double out_rate; /* bytes per second since the last sample */
  double in_rate;
} peer_row;

/* A node of the runtime, or (link) one of its links, in the nodes view. */
typedef struct node_row {
  char name[64];
  bool link;          /* a link of the node above it */
  uint64_t links;     /* node: links up */
  uint64_t sent, got; /* node: sent_remote, delivered; link: messages
                         out, in */
  uint64_t dropped;   /* node: no actor + stale + malformed */
  uint64_t srtt_us;   /* link */
} node_row;

/* Workers beyond this many are summed but not shown one by one. */
#define WORKERS_SHOWN 16

typedef struct sample {
  uint64_t taken_ns; /* the runtime's uptime, or this program's clock */
  uint64_t workers;
  char io[16];
  uint64_t alive;
  uint64_t in_flight;
  uint64_t worker_runs;
  uint64_t worker_idle_ns;
  uint64_t idle_ns[WORKERS_SHOWN]; /* per worker */
  size_t count;
  actor_row *rows;
  size_t peer_count;
  peer_row *peers;
  size_t node_count; /* rows: nodes, each followed by its links */
  node_row *nodes;
} sample;

enum sort_key { SORT_CPU, SORT_RATE, SORT_MAILBOX, SORT_PROCESSED };
enum view { VIEW_ACTORS, VIEW_PEERS, VIEW_NODES };

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Reads the whole JSON document the runtime writes on connect. */
static char *fetch(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (fd < 0 || strlen(path) >= sizeof sa.sun_path) {
    if (fd >= 0) {
      close(fd);
    }
    return NULL;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return NULL;
  }
  size_t cap = 65536;
  size_t len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      close(fd);
      return NULL;
    }
    if (len + 1 == cap) {
      char *bigger = realloc(buf, cap * 2);
      if (!bigger) {
        free(buf);
        close(fd);
        return NULL;
      }
      buf = bigger;
      cap *= 2;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    len += (size_t)n;
  }
  close(fd);
  buf[len] = '\0';
  return buf;
}

/* The document is the library's own flat format, so a key search inside
 * one object is enough; names are the only strings that need unescaping. */
static uint64_t num_field(const char *obj, const char *end, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(obj, pat);
  if (!p || p > end) {
    return 0;
  }
  return strtoull(p + strlen(pat), NULL, 10);
}

static double real_field(const char *obj, const char *end, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(obj, pat);
  if (!p || p > end) {
    return 0;
  }
  return strtod(p + strlen(pat), NULL);
}

static void str_field(const char *obj, const char *end, const char *key,
                      char *out, size_t cap) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(obj, pat);
  size_t n = 0;
  if (p && p < end) {
    for (p += strlen(pat); *p && *p != '"' && n + 1 < cap; p++) {
      char c = *p;
      if (c == '\\' && p[1]) {
        p++;
        c = *p == 'n' ? ' ' : *p == 'u' ? '?' : *p;
        if (*p == 'u') {
          p += 4; /* control characters: shown as '?' */
        }
      }
      out[n++] = (c >= 0x20 && c != 0x7f) ? c : '?';
    }
  }
  out[n] = '\0';
}

/* End of the JSON object starting at p (strings may hold braces). */
static const char *object_end(const char *p) {
  int depth = 0;
  bool in_str = false;
  for (; *p; p++) {
    if (in_str) {
      if (*p == '\\' && p[1]) {
        p++;
      } else if (*p == '"') {
        in_str = false;
      }
    } else if (*p == '"') {
      in_str = true;
    } else if (*p == '{') {
      depth++;
    } else if (*p == '}' && --depth == 0) {
      return p;
    }
  }
  return NULL;
}

/* Grows *rows (of size elem) so that index *count fits. */
static bool room_for(void **rows, size_t *cap, size_t count, size_t elem) {
  if (count < *cap) {
    return true;
  }
  size_t n = *cap ? *cap * 2 : 64;
  void *bigger = realloc(*rows, n * elem);
  if (!bigger) {
    return false;
  }
  *rows = bigger;
  *cap = n;
  return true;
}

static void parse_peers(const char *peers, sample *s) {
  size_t cap = 0;
  const char *open = strchr(peers, '[');
  if (!open || open[1] == ']') {
    return; /* none: what follows is not theirs */
  }
  for (const char *p = strchr(open, '{'); p;) {
    const char *e = object_end(p);
    if (!e ||
        !room_for((void **)&s->peers, &cap, s->peer_count, sizeof *s->peers)) {
      break;
    }
    peer_row *r = &s->peers[s->peer_count++];
    memset(r, 0, sizeof *r);
    /* A peer's own fields come before its "channels" array, whose
     * objects repeat some names: search only up to it. */
    const char *own = strstr(p, "\"channels\":[");
    if (!own || own > e) {
      own = e;
    }
    r->id = num_field(p, own, "id");
    str_field(p, own, "remote", r->remote, sizeof r->remote);
    str_field(p, own, "state", r->state, sizeof r->state);
    r->srtt_us = num_field(p, own, "srtt_us");
    r->loss = real_field(p, own, "loss");
    r->cwnd = num_field(p, own, "cwnd");
    r->in_flight = num_field(p, own, "in_flight");
    r->queued_bytes = num_field(p, own, "queued_bytes");
    r->retransmits = num_field(p, own, "retransmits");
    r->bytes_out = num_field(p, own, "bytes_out");
    r->bytes_in = num_field(p, own, "bytes_in");
    p = e[1] == ',' ? strchr(e, '{') : NULL;
  }
}

/* One row per node, then one per link of it. */
static void parse_nodes(const char *nodes, sample *s) {
  size_t cap = 0;
  const char *open = strchr(nodes, '[');
  if (!open || open[1] == ']') {
    return;
  }
  for (const char *p = strchr(open, '{'); p;) {
    const char *e = object_end(p);
    if (!e ||
        !room_for((void **)&s->nodes, &cap, s->node_count, sizeof *s->nodes)) {
      break;
    }
    const char *links = strstr(p, "\"links\":[");
    if (!links || links > e) {
      links = e;
    }
    node_row *r = &s->nodes[s->node_count++];
    memset(r, 0, sizeof *r);
    str_field(p, links, "name", r->name, sizeof r->name);
    r->links = num_field(p, links, "links_up");
    r->sent = num_field(p, links, "sent_remote");
    r->got = num_field(p, links, "delivered");
    r->dropped = num_field(p, links, "dropped_no_actor") +
                 num_field(p, links, "dropped_stale") +
                 num_field(p, links, "dropped_bad");
    for (const char *l = links < e && links[9] != ']' ? strchr(links, '{')
                                                      : NULL;
         l && l < e;) {
      const char *le = object_end(l);
      if (!le || !room_for((void **)&s->nodes, &cap, s->node_count,
                           sizeof *s->nodes)) {
        break;
      }
      node_row *k = &s->nodes[s->node_count++];
      memset(k, 0, sizeof *k);
      k->link = true;
      str_field(l, le, "name", k->name, sizeof k->name);
      k->srtt_us = num_field(l, le, "srtt_us");
      k->sent = num_field(l, le, "messages_out");
      k->got = num_field(l, le, "messages_in");
      l = le[1] == ',' ? strchr(le, '{') : NULL;
    }
    p = e[1] == ',' ? strchr(e, '{') : NULL;
  }
}

static bool parse(const char *json, sample *s) {
  memset(s, 0, sizeof *s);
  const char *rt = strstr(json, "\"runtime\":{");
  const char *workers = strstr(json, "\"workers\":[");
  const char *actors = strstr(json, "\"actors\":[");
  if (!rt || !workers || !actors) {
    return false;
  }
  const char *rt_end = object_end(rt + 10);
  s->workers = num_field(rt, rt_end, "workers");
  str_field(rt, rt_end, "io_backend", s->io, sizeof s->io);
  s->alive = num_field(rt, rt_end, "actors_alive");
  s->in_flight = num_field(rt, rt_end, "msgs_in_flight");
  /* A runtime too old to report its uptime: this program's clock. */
  s->taken_ns = num_field(rt, rt_end, "uptime_ns");
  if (!s->taken_ns) {
    s->taken_ns = now_ns();
  }
  size_t wi = 0;
  for (const char *p = strchr(workers, '{'); p && p < actors; wi++) {
    const char *e = object_end(p);
    if (!e) {
      break;
    }
    uint64_t idle = num_field(p, e, "idle_ns");
    s->worker_runs += num_field(p, e, "runs");
    s->worker_idle_ns += idle;
    if (wi < WORKERS_SHOWN) {
      s->idle_ns[wi] = idle;
    }
    p = strchr(e, '{');
  }
  size_t cap = 0;
  for (const char *p = strchr(actors, '{'); p;) {
    const char *e = object_end(p);
    if (!e || !room_for((void **)&s->rows, &cap, s->count, sizeof *s->rows)) {
      break;
    }
    actor_row *r = &s->rows[s->count++];
    memset(r, 0, sizeof *r);
    r->id = num_field(p, e, "id");
    str_field(p, e, "name", r->name, sizeof r->name);
    str_field(p, e, "state", r->state, sizeof r->state);
    r->processed = num_field(p, e, "processed");
    r->sent = num_field(p, e, "sent");
    r->runs = num_field(p, e, "runs");
    r->cpu_ns = num_field(p, e, "cpu_ns");
    r->depth = num_field(p, e, "mailbox_depth");
    r->hwm = num_field(p, e, "mailbox_hwm");
    r->remote_sent = num_field(p, e, "remote_sent");
    r->remote_received = num_field(p, e, "remote_received");
    /* The next actor, or the end of the array (sockets and peers follow). */
    p = e[1] == ',' ? strchr(e, '{') : NULL;
  }
  /* Names are escaped, so a quote in one is always after a backslash:
   * this cannot match inside a name. */
  const char *peers = strstr(actors, "],\"peers\":[");
  if (peers) {
    parse_peers(peers + 2, s);
    const char *nodes = strstr(peers, "],\"nodes\":[");
    if (nodes) {
      parse_nodes(nodes + 2, s);
    }
  }
  return true;
}

static void sample_free(sample *s) {
  free(s->rows);
  free(s->peers);
  free(s->nodes);
}

/* Rates against the previous sample, matched by actor id. */
static void derive(sample *cur, const sample *prev) {
  if (!prev) {
    return;
  }
  double secs = (double)(cur->taken_ns - prev->taken_ns) / 1e9;
  if (secs <= 0) {
    return;
  }
  for (size_t i = 0; i < cur->count; i++) {
    for (size_t j = 0; j < prev->count; j++) {
      if (prev->rows[j].id == cur->rows[i].id) {
        actor_row *r = &cur->rows[i];
        const actor_row *o = &prev->rows[j];
        r->rate = (double)(r->processed - o->processed) / secs;
        r->cpu_pct = (double)(r->cpu_ns - o->cpu_ns) / (secs * 1e7);
        break;
      }
    }
  }
  for (size_t i = 0; i < cur->peer_count; i++) {
    for (size_t j = 0; j < prev->peer_count; j++) {
      if (prev->peers[j].id == cur->peers[i].id) {
        peer_row *r = &cur->peers[i];
        const peer_row *o = &prev->peers[j];
        r->out_rate = (double)(r->bytes_out - o->bytes_out) / secs;
        r->in_rate = (double)(r->bytes_in - o->bytes_in) / secs;
        break;
      }
    }
  }
}

static enum sort_key sort_by;

static int compare_rows(const void *a, const void *b) {
  const actor_row *x = a;
  const actor_row *y = b;
  double kx = 0;
  double ky = 0;
  switch (sort_by) {
  case SORT_CPU:
    kx = x->cpu_pct, ky = y->cpu_pct;
    break;
  case SORT_RATE:
    kx = x->rate, ky = y->rate;
    break;
  case SORT_MAILBOX:
    kx = (double)x->depth, ky = (double)y->depth;
    break;
  case SORT_PROCESSED:
    kx = (double)x->processed, ky = (double)y->processed;
    break;
  }
  if (kx != ky) {
    return kx < ky ? 1 : -1;
  }
  return x->id < y->id ? -1 : x->id > y->id;
}

static const char *sort_name(void) {
  static const char *const names[] = {"cpu", "rate", "mailbox", "processed"};
  return names[sort_by];
}

/* Busiest first: bytes per second both ways, then id. */
static int compare_peers(const void *a, const void *b) {
  const peer_row *x = a;
  const peer_row *y = b;
  double kx = x->out_rate + x->in_rate;
  double ky = y->out_rate + y->in_rate;
  if (kx != ky) {
    return kx < ky ? 1 : -1;
  }
  return x->id < y->id ? -1 : x->id > y->id;
}

/* A worker's busy share: the part of the uptime between the samples it
 * did not spend waiting. The runtime never reports more idle time than
 * elapsed; the clamp only guards against an older runtime. */
static double busy_pct(uint64_t idle_now, uint64_t idle_before, double ns) {
  double idle = (double)(idle_now - idle_before) / ns;
  double busy = 100.0 * (1.0 - idle);
  return busy < 0 ? 0 : busy > 100 ? 100 : busy;
}

static void render_actors(sample *s, size_t top) {
  printf("%8s %-24s %-9s %12s %11s %10s %10s %6s %8s %8s %10s %10s\n", "ID",
         "NAME", "STATE", "PROCESSED", "RATE/s", "SENT", "RUNS", "CPU%",
         "MAILBOX", "HWM", "REMOTE-OUT", "REMOTE-IN");
  qsort(s->rows, s->count, sizeof *s->rows, compare_rows);
  for (size_t i = 0; i < s->count && i < top; i++) {
    const actor_row *r = &s->rows[i];
    printf("%8" PRIu64 " %-24.24s %-9s %12" PRIu64 " %11.0f %10" PRIu64
           " %10" PRIu64 " %6.1f %8" PRIu64 " %8" PRIu64 " %10" PRIu64
           " %10" PRIu64 "\n",
           r->id, r->name[0] ? r->name : "-", r->state, r->processed, r->rate,
           r->sent, r->runs, r->cpu_pct, r->depth, r->hwm, r->remote_sent,
           r->remote_received);
  }
}

static void render_peers(sample *s, size_t top) {
  printf("%8s %-28s %-13s %9s %7s %6s %8s %12s %8s %11s %11s\n", "ID", "REMOTE",
         "STATE", "RTT(ms)", "LOSS%", "CWND", "INFLIGHT", "QUEUED(B)",
         "RETRANS", "OUT(B/s)", "IN(B/s)");
  qsort(s->peers, s->peer_count, sizeof *s->peers, compare_peers);
  for (size_t i = 0; i < s->peer_count && i < top; i++) {
    const peer_row *r = &s->peers[i];
    printf("%8" PRIu64 " %-28.28s %-13s %9.3f %7.2f %6" PRIu64 " %8" PRIu64
           " %12" PRIu64 " %8" PRIu64 " %11.0f %11.0f\n",
           r->id, r->remote, r->state, (double)r->srtt_us / 1000.0,
           r->loss * 100.0, r->cwnd, r->in_flight, r->queued_bytes,
           r->retransmits, r->out_rate, r->in_rate);
  }
  if (!s->peer_count) {
    printf("(no peers)\n");
  }
}

static void render_nodes(const sample *s, size_t top) {
  printf("%-24s %6s %9s %12s %12s %9s\n", "NODE / LINK", "LINKS", "RTT(ms)",
         "SENT", "RECEIVED", "DROPPED");
  for (size_t i = 0; i < s->node_count && i < top; i++) {
    const node_row *r = &s->nodes[i];
    if (r->link) {
      printf("  -> %-19.19s %6s %9.3f %12" PRIu64 " %12" PRIu64 " %9s\n",
             r->name, "", (double)r->srtt_us / 1000.0, r->sent, r->got, "");
    } else {
      printf("%-24.24s %6" PRIu64 " %9s %12" PRIu64 " %12" PRIu64 " %9" PRIu64
             "\n",
             r->name, r->links, "", r->sent, r->got, r->dropped);
    }
  }
  if (!s->node_count) {
    printf("(no nodes)\n");
  }
}

static void render(sample *s, const sample *prev, enum view view, size_t top,
                   bool clear) {
  if (clear) {
    fputs("\x1b[H\x1b[2J", stdout);
  }
  double ns = prev && s->taken_ns > prev->taken_ns
                  ? (double)(s->taken_ns - prev->taken_ns)
                  : 0;
  double secs = ns / 1e9;
  double idle = ns > 0 && s->workers
                    ? (double)(s->worker_idle_ns - prev->worker_idle_ns) /
                          (ns * (double)s->workers) * 100.0
                    : 0;
  idle = idle < 0 ? 0 : idle > 100 ? 100 : idle;
  double runs =
      secs > 0 ? (double)(s->worker_runs - prev->worker_runs) / secs : 0;
  printf("peernet-top  workers %" PRIu64 " (%s)  actors %" PRIu64
         "  peers %zu  messages in flight %" PRIu64
         "  runs/s %.0f  idle %.0f%%",
         s->workers, s->io, s->alive, s->peer_count, s->in_flight, runs, idle);
  if (view == VIEW_ACTORS) {
    printf("  sort: %s", sort_name());
  }
  printf("\nbusy per worker:");
  for (uint64_t w = 0; w < s->workers && w < WORKERS_SHOWN; w++) {
    printf(" %" PRIu64 ":%.0f%%", w,
           ns > 0 ? busy_pct(s->idle_ns[w], prev->idle_ns[w], ns) : 0.0);
  }
  printf("\n\n");
  if (view == VIEW_ACTORS) {
    render_actors(s, top);
  } else if (view == VIEW_PEERS) {
    render_peers(s, top);
  } else {
    render_nodes(s, top);
  }
  fflush(stdout);
}

static bool take(const char *path, sample *s) {
  char *json = fetch(path);
  if (!json) {
    return false;
  }
  bool ok = parse(json, s);
  free(json);
  if (!ok) {
    sample_free(s);
  }
  return ok;
}

static void usage(FILE *f) {
  fprintf(f, "usage: peernet-top --socket PATH [--view actors|peers|nodes]\n"
             "                   [--sort cpu|rate|mailbox|processed]\n"
             "                   [--interval MS] [--top N] [--once]\n");
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  if (!s || !*s || *s == '-' || *s == '+') {
    return false;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v < lo || v > hi) {
    return false;
  }
  *out = v;
  return true;
}

int main(int argc, char **argv) {
  const char *path = getenv("PEERNET_STATS_SOCKET");
  uint64_t interval_ms = 1000;
  uint64_t top = 20;
  bool once = false;
  enum view view = VIEW_ACTORS;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      path = argv[++i];
    } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], 10, 3600000, &interval_ms)) {
      i++;
    } else if (strcmp(argv[i], "--top") == 0 && i + 1 < argc &&
               parse_u64(argv[i + 1], 1, 100000, &top)) {
      i++;
    } else if (strcmp(argv[i], "--sort") == 0 && i + 1 < argc) {
      const char *k = argv[++i];
      if (strcmp(k, "cpu") == 0) {
        sort_by = SORT_CPU;
      } else if (strcmp(k, "rate") == 0) {
        sort_by = SORT_RATE;
      } else if (strcmp(k, "mailbox") == 0) {
        sort_by = SORT_MAILBOX;
      } else if (strcmp(k, "processed") == 0) {
        sort_by = SORT_PROCESSED;
      } else {
        usage(stderr);
        return 2;
      }
    } else if (strcmp(argv[i], "--view") == 0 && i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(v, "actors") == 0) {
        view = VIEW_ACTORS;
      } else if (strcmp(v, "peers") == 0) {
        view = VIEW_PEERS;
      } else if (strcmp(v, "nodes") == 0) {
        view = VIEW_NODES;
      } else {
        usage(stderr);
        return 2;
      }
    } else if (strcmp(argv[i], "--once") == 0) {
      once = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (!path || !*path) {
    usage(stderr);
    return 2;
  }
  sample prev;
  if (!take(path, &prev)) {
    fprintf(stderr, "peernet-top: cannot read stats from %s: %s\n", path,
            strerror(errno));
    return 1;
  }
  bool tty = isatty(STDIN_FILENO) && !once;
  struct termios saved;
  if (tty) {
    struct termios raw;
    tcgetattr(STDIN_FILENO, &saved);
    raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }
  int status = 0;
  for (;;) {
    /* Waiting for the next sample doubles as waiting for a key. */
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    int ready = poll(&in, tty ? 1 : 0, (int)interval_ms);
    if (ready > 0 && (in.revents & POLLIN)) {
      char key = 0;
      if (read(STDIN_FILENO, &key, 1) == 1) {
        if (key == 'q') {
          break;
        }
        sort_by = key == 'c'   ? SORT_CPU
                  : key == 'r' ? SORT_RATE
                  : key == 'm' ? SORT_MAILBOX
                  : key == 'p' ? SORT_PROCESSED
                               : sort_by;
        view = key == 'a'   ? VIEW_ACTORS
               : key == 'e' ? VIEW_PEERS
               : key == 'n' ? VIEW_NODES
                            : view;
      }
    }
    sample cur;
    if (!take(path, &cur)) {
      fprintf(stderr, "peernet-top: the runtime went away\n");
      status = 1;
      break;
    }
    derive(&cur, &prev);
    render(&cur, &prev, view, (size_t)top, !once);
    sample_free(&prev);
    prev = cur;
    if (once) {
      break;
    }
  }
  sample_free(&prev);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  }
  return status;
}
