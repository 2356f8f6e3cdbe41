/* peernet-ping: an echo server, and a client that measures what one channel
 * kind delivers through a real network (or through the built-in link
 * conditioner, to try it on one machine).
 *
 *   peernet-ping --listen HOST:PORT [--max-seconds S] [IMPAIRMENTS]
 *   peernet-ping --connect HOST:PORT --kind KIND --count N --size B
 *                [--rate R] [--timeout S] [--json] [IMPAIRMENTS]
 *
 * IMPAIRMENTS (--loss P --dup P --reorder P --latency-us U --seed X) pass
 * what this side sends through the socket's link conditioner; give them to
 * both sides to impair both directions. Either side also takes
 * --max-queued BYTES, the unacknowledged bytes a peer may hold before
 * sends fail with PN_EAGAIN, to try backpressure on small numbers.
 *
 * The server sends every packet back on the channel and peer it came from,
 * without copying it (pn_channel_send_packet with the received packet). Its
 * first line on stdout is "listening on ADDR", with the port the kernel
 * picked for port 0.
 *
 * The client connects with one channel of KIND and sends N messages of B
 * bytes: the index, the send time, then a pattern derived from the index.
 * It checks each echo and reports what came back, what did not, in which
 * order, the round trip times, and the peer's own statistics. Its exit
 * status says whether the kind's guarantee held (see exit_code below).
 *
 * Threads: main creates the runtime, a host and an owner actor. The actor's
 * handler records every event under a mutex and signals a condition
 * variable; main sends and waits on that variable, always with a deadline.
 * Nothing assumes loopback: times come from the client's own clock, and
 * every wait gives up after --timeout seconds without progress.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <peernet/peernet.h>

/* Exit statuses. */
enum {
  EXIT_HELD = 0,      /* the kind's guarantee held */
  EXIT_BROKEN = 1,    /* it did not */
  EXIT_USAGE = 2,     /* bad command line */
  EXIT_NO_PEER = 3,   /* could not connect, or the connection was lost */
  EXIT_TIMEOUT = 4,   /* nothing moved for --timeout seconds */
  EXIT_LOCAL_ERR = 5, /* the runtime, host or a send failed here */
};

enum {
  HEADER_BYTES = 16,           /* index and send time */
  MAX_SIZE = 4 << 20,          /* the hosts' default max_message */
  MAX_COUNT = 10000000,        /* keeps the per-message records in memory */
  WORKERS = 2,                 /* the host on one, the owner actor on another */
  RETRY_US = 10000,            /* re-check backpressure at least this often */
  CLOSE_WAIT_MS = 3000,        /* for disconnects to be acknowledged */
  MSG_RETRY = 1,               /* server: timer tick to flush held echoes */
  REASON_DONE = 0,             /* client: finished */
  REASON_BACKLOG = 1,          /* server: the client outran the way back */
  ECHO_BACKLOG_MAX = 64 << 20, /* bytes a server holds for one peer */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Condition variables here measure deadlines on the monotonic clock. */
static void cond_init_monotonic(pthread_cond_t *cv) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &attr);
  pthread_condattr_destroy(&attr);
}

/* Waits (lock held) until signalled or until the monotonic time `until`. */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *lock,
                       uint64_t until_ns) {
  struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000u),
                        .tv_nsec = (long)(until_ns % 1000000000u)};
  (void)pthread_cond_timedwait(cv, lock, &ts);
}

/* --- command line -------------------------------------------------------- */

typedef struct options {
  const char *listen, *connect, *kind_name;
  pn_channel_kind kind;
  uint64_t max_seconds; /* server; 0 = until a signal */
  uint64_t count, size, rate, timeout_s, latency_us, seed;
  uint64_t max_queued; /* the host's per-peer limit; 0 = its default */
  double loss, dup, reorder;
  bool json, no_compression;
  const char *payload; /* client: the body's text, repeated (NULL: PRNG) */
  const char *key_file, *server_key_file, *psk_file;
  uint8_t key[PN_KEY_BYTES], server_key[PN_KEY_BYTES], psk[PN_KEY_BYTES];
} options;

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: peernet-ping --listen HOST:PORT [--max-seconds S]\n"
      "       peernet-ping --connect HOST:PORT --kind KIND --count N --size B"
      " [options]\n"
      "server:\n"
      "  --listen HOST:PORT  echo on this address (port 0 picks one; the\n"
      "                      first line printed is the bound address)\n"
      "  --max-seconds S     stop after S seconds (default: at SIGINT or\n"
      "                      SIGTERM)\n"
      "client:\n"
      "  --connect HOST:PORT the server (a name, IPv4 or [IPv6])\n"
      "  --kind KIND         unreliable, reliable, ordered, unsequenced or\n"
      "                      reliable-unordered\n"
      "  --count N           messages to send, 1..%d\n"
      "  --size B            bytes per message, %d..%d\n"
      "  --rate R            messages per second; 0 = as fast as the window\n"
      "                      allows (default 0)\n"
      "  --timeout S         give up after S seconds without progress\n"
      "                      (default 30)\n"
      "  --json              print one JSON line instead of the report\n"
      "  --payload TEXT      the body after the 16-byte header is TEXT,\n"
      "                      repeated to --size (default: PRNG bytes,\n"
      "                      which do not compress)\n"
      "impairments of what this side sends (either side; give them to\n"
      "both to impair both directions):\n"
      "  --loss P --dup P --reorder P   probabilities 0..1 per datagram\n"
      "  --latency-us U      added one-way delay\n"
      "  --seed X            seed of the impairments (default 1)\n"
      "keys (peernet-keygen makes them; traffic is always encrypted):\n"
      "  --key FILE          server: its secret key (clients may pin the\n"
      "                      public half); default: a new one each run\n"
      "  --server-key FILE   client: the server's public key to insist on;\n"
      "                      another key ends the attempt (exit 3)\n"
      "  --psk FILE          either side: a pre-shared key both must have\n"
      "either side:\n"
      "  --max-queued BYTES  unacknowledged bytes per peer before sends\n"
      "                      push back, 1024.. (default 512 KiB)\n"
      "  --no-compression    never compress what this side sends\n"
      "exit: 0 guarantee held, 1 broken, 2 usage, 3 no connection,\n"
      "      4 timeout, 5 local error\n",
      MAX_COUNT, HEADER_BYTES, MAX_SIZE);
}

_Noreturn static void usage_error(const char *what, const char *arg) {
  fprintf(stderr, "peernet-ping: %s%s\n", what, arg);
  usage(stderr);
  exit(EXIT_USAGE);
}

/* strtoull alone accepts leading blanks and a minus sign (wrapping it to a
 * huge value), so insist on a digit first and on nothing after the number. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max,
                      uint64_t *out) {
  if (s == NULL || *s < '0' || *s > '9') {
    return false;
  }
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) {
    return false;
  }
  *out = (uint64_t)v;
  return true;
}

static bool parse_probability(const char *s, double *out) {
  if (s == NULL || ((*s < '0' || *s > '9') && *s != '.')) {
    return false;
  }
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
    return false;
  }
  *out = v;
  return true;
}

enum { FOR_SERVER = 1, FOR_CLIENT = 2, FOR_BOTH = 3 };
typedef enum opt_type { OPT_FLAG, OPT_TEXT, OPT_U64, OPT_PROB } opt_type;

static void parse_args(int argc, char **argv, options *o) {
  *o = (options){.timeout_s = 30, .seed = 1};
  const struct {
    const char *name;
    opt_type type;
    int mode;
    void *dst;
    uint64_t min, max;
  } opts[] = {
      {"--listen", OPT_TEXT, FOR_SERVER, &o->listen, 0, 0},
      {"--max-seconds", OPT_U64, FOR_SERVER, &o->max_seconds, 1, 1000000000},
      {"--connect", OPT_TEXT, FOR_CLIENT, &o->connect, 0, 0},
      {"--kind", OPT_TEXT, FOR_CLIENT, &o->kind_name, 0, 0},
      {"--count", OPT_U64, FOR_CLIENT, &o->count, 1, MAX_COUNT},
      {"--size", OPT_U64, FOR_CLIENT, &o->size, HEADER_BYTES, MAX_SIZE},
      {"--rate", OPT_U64, FOR_CLIENT, &o->rate, 0, 1000000000},
      {"--timeout", OPT_U64, FOR_CLIENT, &o->timeout_s, 1, 86400},
      {"--json", OPT_FLAG, FOR_CLIENT, &o->json, 0, 0},
      {"--payload", OPT_TEXT, FOR_CLIENT, &o->payload, 0, 0},
      {"--no-compression", OPT_FLAG, FOR_BOTH, &o->no_compression, 0, 0},
      {"--loss", OPT_PROB, FOR_BOTH, &o->loss, 0, 0},
      {"--dup", OPT_PROB, FOR_BOTH, &o->dup, 0, 0},
      {"--reorder", OPT_PROB, FOR_BOTH, &o->reorder, 0, 0},
      {"--latency-us", OPT_U64, FOR_BOTH, &o->latency_us, 0, 60000000},
      {"--seed", OPT_U64, FOR_BOTH, &o->seed, 0, UINT64_MAX},
      {"--max-queued", OPT_U64, FOR_BOTH, &o->max_queued, 1024, UINT32_MAX},
      {"--key", OPT_TEXT, FOR_SERVER, &o->key_file, 0, 0},
      {"--server-key", OPT_TEXT, FOR_CLIENT, &o->server_key_file, 0, 0},
      {"--psk", OPT_TEXT, FOR_BOTH, &o->psk_file, 0, 0},
  };
  enum { NOPTS = sizeof opts / sizeof opts[0] };
  int modes = FOR_BOTH; /* the modes every option given allows */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    size_t k = 0;
    while (k < NOPTS && strcmp(argv[i], opts[k].name) != 0) {
      k++;
    }
    if (k == NOPTS) {
      usage_error("unknown option ", argv[i]);
    }
    modes &= opts[k].mode;
    if (opts[k].type == OPT_FLAG) {
      *(bool *)opts[k].dst = true;
      continue;
    }
    const char *v = ++i < argc ? argv[i] : NULL;
    bool ok = v != NULL;
    if (ok && opts[k].type == OPT_TEXT) {
      *(const char **)opts[k].dst = v;
    } else if (ok && opts[k].type == OPT_U64) {
      ok = parse_u64(v, opts[k].min, opts[k].max, opts[k].dst);
    } else if (ok) {
      ok = parse_probability(v, opts[k].dst);
    }
    if (!ok) {
      usage_error("missing or out-of-range value for ", opts[k].name);
    }
  }
  const struct {
    const char *path, *what;
    uint8_t *key;
  } keys[] = {{o->key_file, "--key", o->key},
              {o->server_key_file, "--server-key", o->server_key},
              {o->psk_file, "--psk", o->psk}};
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
    if (keys[k].path && pn_key_load(keys[k].path, keys[k].key) != PN_OK) {
      fprintf(stderr, "peernet-ping: %s %s: not a key file\n", keys[k].what,
              keys[k].path);
      exit(EXIT_USAGE);
    }
  }
  if ((o->listen != NULL) == (o->connect != NULL)) {
    usage_error("give exactly one of --listen and --connect", "");
  }
  if (!(modes & (o->listen ? FOR_SERVER : FOR_CLIENT))) {
    usage_error(o->listen ? "client options given with --listen"
                          : "server options given with --connect",
                "");
  }
  if (o->connect != NULL) {
    if (o->kind_name == NULL || o->count == 0 || o->size == 0) {
      usage_error("--connect needs --kind, --count and --size", "");
    }
    if (pn_channel_kind_parse(o->kind_name, &o->kind) != PN_OK) {
      usage_error("unknown kind ", o->kind_name);
    }
    if (o->payload != NULL && o->payload[0] == '\0') {
      usage_error("--payload needs at least one character", "");
    }
  }
}

/* Splits "HOST:PORT" or "[HOST]:PORT"; HOST may be empty. */
static bool split_host_port(const char *text, char *host, size_t cap,
                            uint16_t *port) {
  const char *start = text, *colon;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL || close[1] != ':') {
      return false;
    }
    start = text + 1;
    colon = close + 1;
  } else if ((colon = strrchr(text, ':')) == NULL) {
    return false;
  }
  size_t len = (size_t)(colon - start) - (text[0] == '[' ? 1 : 0);
  uint64_t p;
  if (len >= cap || !parse_u64(colon + 1, 0, 65535, &p)) {
    return false;
  }
  memcpy(host, start, len);
  host[len] = '\0';
  *port = (uint16_t)p;
  return true;
}

/* A numeric address as pn_addr_parse() reads it, or a name to resolve. */
static bool resolve(const char *text, pn_addr *out) {
  char host[256];
  uint16_t port;
  if (pn_addr_parse(text, out) == PN_OK) {
    return out->port != 0;
  }
  if (!split_host_port(text, host, sizeof host, &port) || host[0] == '\0' ||
      port == 0) {
    return false;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  if (getaddrinfo(host, NULL, &hints, &res) != 0) {
    return false;
  }
  bool found = false;
  for (struct addrinfo *ai = res; ai != NULL && !found; ai = ai->ai_next) {
    pn_addr a;
    memset(&a, 0, sizeof a);
    a.port = port;
    if (ai->ai_family == AF_INET) {
      const struct sockaddr_in *sin = (const void *)ai->ai_addr;
      a.family = PN_AF_INET;
      memcpy(a.ip, &sin->sin_addr, 4);
      found = true;
    } else if (ai->ai_family == AF_INET6) {
      const struct sockaddr_in6 *sin6 = (const void *)ai->ai_addr;
      a.family = PN_AF_INET6;
      memcpy(a.ip, &sin6->sin6_addr, 16);
      a.scope_id = sin6->sin6_scope_id;
      found = true;
    }
    if (found) {
      *out = a;
    }
  }
  freeaddrinfo(res);
  return found;
}

static void format_addr(const pn_addr *a, char buf[PN_ADDR_STRLEN]) {
  if (pn_addr_format(a, buf, PN_ADDR_STRLEN) != PN_OK) {
    snprintf(buf, PN_ADDR_STRLEN, "?");
  }
}

/* "connect-timeout", or "application 7" for an application's reason. */
static void format_reason(uint32_t reason, char *buf, size_t cap) {
  if (reason < PN_REASON_LIBRARY) {
    snprintf(buf, cap, "%s %" PRIu32, pn_reason_name(reason), reason);
  } else {
    snprintf(buf, cap, "%s", pn_reason_name(reason));
  }
}

/* The impairments of what this side sends. Only the send direction: a
 * receive-side conditioner would reach the io_uring backend re-entrantly
 * (see docs/tools.md), and impairing each side's output covers both
 * directions anyway, as netem does on egress. */
static pn_link_conditioner impairments(const options *o) {
  pn_link_conditioner lc = PN_LINK_CONDITIONER_INIT;
  lc.loss = o->loss;
  lc.duplicate = o->dup;
  lc.reorder = o->reorder;
  lc.latency_us = (uint32_t)o->latency_us;
  lc.seed = o->seed;
  return lc;
}

static bool check(pn_err err, const char *what) {
  if (err != PN_OK) {
    fprintf(stderr, "peernet-ping: %s: %s (%s)\n", what, pn_strerror(err),
            pn_err_name(err));
  }
  return err == PN_OK;
}

/* Sums the runtime's socket counters (each tool opens one socket): they
 * tell drops on this machine (kernel buffers, the send queue, the
 * conditioner) from losses on the path. */
static pn_socket_stats socket_totals(pn_runtime *rt) {
  pn_socket_stats t;
  memset(&t, 0, sizeof t);
  pn_snapshot *snap = NULL;
  if (pn_snapshot_take(rt, &snap) == PN_OK) {
    for (size_t i = 0; i < snap->socket_count; i++) {
      const pn_socket_stats *st = &snap->sockets[i].stats;
      t.datagrams_in += st->datagrams_in;
      t.datagrams_out += st->datagrams_out;
      t.kernel_drops += st->kernel_drops;
      t.enobufs += st->enobufs;
      t.send_drops += st->send_drops;
      t.cond_dropped += st->cond_dropped;
    }
    pn_snapshot_free(snap);
  }
  return t;
}

static void print_socket_totals(const pn_socket_stats *t) {
  printf("socket        datagrams out %" PRIu64 " in %" PRIu64
         "; dropped here: kernel %" PRIu64 ", send queue %" PRIu64
         ", conditioner %" PRIu64 "; buffer ring ran dry %" PRIu64 "x\n",
         t->datagrams_out, t->datagrams_in, t->kernel_drops, t->send_drops,
         t->cond_dropped, t->enobufs);
}

/* --- server -------------------------------------------------------------- */

/* An echo the peer could not take yet (PN_EAGAIN), held in arrival order. */
typedef struct held_echo {
  struct held_echo *next;
  pn_channel *ch; /* borrowed for as long as the peer */
  pn_packet *pkt; /* one reference */
} held_echo;

typedef struct echo_peer {
  struct echo_peer *next;
  pn_peer *peer; /* borrowed: valid until its DISCONNECTED handler returns */
  uint64_t id;
  held_echo *head, *tail;
  size_t held_bytes;
} echo_peer;

typedef struct server {
  /* Handler only (main reads them after the runtime shut down). */
  echo_peer *peers;
  bool retry_armed;
  uint64_t accepted, echoed, dropped, waited;
  /* Shared with main, under lock: peers not yet disconnected. */
  pthread_mutex_t lock;
  pthread_cond_t cv;
  uint64_t live;
} server;

static echo_peer *find_peer(server *s, uint64_t id) {
  for (echo_peer *e = s->peers; e != NULL; e = e->next) {
    if (e->id == id) {
      return e;
    }
  }
  return NULL;
}

static void drop_held(echo_peer *e) {
  while (e->head != NULL) {
    held_echo *h = e->head;
    e->head = h->next;
    pn_packet_release(h->pkt);
    free(h);
  }
  e->tail = NULL;
  e->held_bytes = 0;
}

/* Sends what the peer held back, oldest first, until it pushes back. */
static bool flush_held(server *s, echo_peer *e) {
  while (e->head != NULL) {
    held_echo *h = e->head;
    pn_err err = pn_channel_send_packet(h->ch, h->pkt, NULL);
    if (err == PN_EAGAIN) {
      return false;
    }
    if (err == PN_OK) {
      s->echoed++;
    } else {
      s->dropped++; /* PN_ECLOSED: the peer is going away */
    }
    e->head = h->next;
    e->held_bytes -= pn_packet_len(h->pkt);
    pn_packet_release(h->pkt);
    free(h);
  }
  e->tail = NULL;
  return true;
}

/* Acknowledgements free room and each one prompts a flush; the timer covers
 * room freed later than the last acknowledgement's event. */
static void arm_retry(server *s, pn_actor *self) {
  if (!s->retry_armed &&
      pn_timer_start(self, MSG_RETRY, RETRY_US, 0, NULL) == PN_OK) {
    s->retry_armed = true;
  }
}

static void echo(server *s, pn_actor *self, echo_peer *e,
                 const pn_peer_event *ev) {
  bool reliable = ev->kind == PN_CHANNEL_RELIABLE ||
                  ev->kind == PN_CHANNEL_ORDERED ||
                  ev->kind == PN_CHANNEL_RELIABLE_UNORDERED;
  /* Reliable echoes queue behind held ones, so each channel keeps its
   * order; unreliable ones are simply dropped under backpressure, as the
   * kind allows. */
  if (!reliable || e->head == NULL) {
    pn_err err = pn_channel_send_packet(ev->ch, ev->packet, NULL);
    if (err == PN_OK) {
      s->echoed++;
      return;
    }
    if (err != PN_EAGAIN || !reliable) {
      s->dropped++;
      return;
    }
  }
  held_echo *h = malloc(sizeof *h);
  if (h == NULL || e->held_bytes + ev->len > ECHO_BACKLOG_MAX) {
    /* The client sends faster than its echoes can come back: rather than
     * grow without bound or break the kind's promise, end the connection. */
    free(h);
    drop_held(e);
    (void)pn_peer_disconnect(ev->peer, REASON_BACKLOG);
    return;
  }
  pn_packet_hold(ev->packet);
  *h = (held_echo){.ch = ev->ch, .pkt = ev->packet};
  s->waited++;
  if (e->tail != NULL) {
    e->tail->next = h;
  } else {
    e->head = h;
  }
  e->tail = h;
  e->held_bytes += ev->len;
  arm_retry(s, self);
}

static void server_handler(pn_actor *self, void *state, const pn_msg *msg) {
  server *s = state;
  pn_peer_event ev;
  char addr[PN_ADDR_STRLEN], why[64];
  if (pn_msg_type(msg) == MSG_RETRY) {
    s->retry_armed = false;
    for (echo_peer *e = s->peers; e != NULL; e = e->next) {
      if (!flush_held(s, e)) {
        arm_retry(s, self);
      }
    }
    return;
  }
  if (pn_msg_type(msg) == PN_MSG_STOPPED) {
    while (s->peers != NULL) {
      echo_peer *e = s->peers;
      s->peers = e->next;
      drop_held(e);
      free(e);
    }
    return;
  }
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  echo_peer *e = find_peer(s, ev.peer_id);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    e = calloc(1, sizeof *e);
    if (e == NULL) {
      (void)pn_peer_disconnect(ev.peer, REASON_BACKLOG);
      return;
    }
    e->peer = ev.peer;
    e->id = ev.peer_id;
    e->next = s->peers;
    s->peers = e;
    s->accepted++;
    pthread_mutex_lock(&s->lock);
    s->live++;
    pthread_mutex_unlock(&s->lock);
    format_addr(&ev.addr, addr);
    printf("peer %" PRIu64 " %s connected\n", ev.peer_id, addr);
    fflush(stdout);
    break;
  case PN_MSG_PEER_PACKET:
    if (e != NULL) {
      echo(s, self, e, &ev);
    }
    break;
  case PN_MSG_PEER_ACKED:
  case PN_MSG_PEER_LOST:
    if (e != NULL && e->head != NULL && !flush_held(s, e)) {
      arm_retry(s, self);
    }
    break;
  case PN_MSG_PEER_DISCONNECTED:
    if (e == NULL) {
      break;
    }
    for (echo_peer **p = &s->peers; *p != NULL; p = &(*p)->next) {
      if (*p == e) {
        *p = e->next;
        break;
      }
    }
    drop_held(e);
    free(e);
    format_addr(&ev.addr, addr);
    format_reason(ev.reason, why, sizeof why);
    printf("peer %" PRIu64 " %s disconnected: %s%s\n", ev.peer_id, addr, why,
           ev.remote ? " (by the peer)" : "");
    fflush(stdout);
    pthread_mutex_lock(&s->lock);
    s->live--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->lock);
    break;
  default:
    break;
  }
}

static int run_server(const options *o) {
  char host_text[256];
  uint16_t port;
  if (!split_host_port(o->listen, host_text, sizeof host_text, &port)) {
    usage_error("--listen wants HOST:PORT, not ", o->listen);
  }
  /* Block the signals in every thread (the runtime's workers inherit the
   * mask) so that main takes them with sigtimedwait(), at a point of its
   * choosing, instead of in a handler. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  server s = {.live = 0};
  pthread_mutex_init(&s.lock, NULL);
  cond_init_monotonic(&s.cv);
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = WORKERS;
  pn_runtime *rt = NULL;
  if (!check(pn_runtime_create(&rcfg, &rt), "creating the runtime")) {
    return EXIT_LOCAL_ERR;
  }
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "echo";
  acfg.handler = server_handler;
  acfg.state = &s;
  pn_actor *actor = NULL;
  pn_host *host = NULL;
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = host_text;
  sc.port = port;
  sc.send_conditioner = impairments(o);
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.max_queued = (uint32_t)o->max_queued;
  hc.no_compression = o->no_compression;
  hc.secret_key = o->key_file ? o->key : NULL;
  hc.psk = o->psk_file ? o->psk : NULL;
  bool ok = check(pn_spawn(rt, &acfg, &actor), "spawning the echo actor");
  hc.accept_owner = actor;
  ok = ok && check(pn_host_open(rt, &hc, &host), "opening the host");
  pn_addr bound;
  ok = ok && check(pn_host_local_addr(host, 0, &bound), "reading the address");
  int rc = ok ? EXIT_HELD : EXIT_LOCAL_ERR;
  if (ok) {
    char addr[PN_ADDR_STRLEN];
    format_addr(&bound, addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    int sig = 0;
    if (o->max_seconds == 0) {
      (void)sigwait(&sigs, &sig);
    } else {
      /* Linux may end the wait early with EINTR (after SIGSTOP/SIGCONT,
       * for one): wait again for what is left. */
      uint64_t end = now_ns() + o->max_seconds * 1000000000ull, now;
      while (sig <= 0 && (now = now_ns()) < end) {
        struct timespec ts = {.tv_sec = (time_t)((end - now) / 1000000000u),
                              .tv_nsec = (long)((end - now) % 1000000000u)};
        sig = sigtimedwait(&sigs, NULL, &ts);
      }
    }
    printf("%s: closing\n",
           sig > 0 ? (sig == SIGINT ? "SIGINT" : "SIGTERM") : "time is up");
  }
  pn_socket_stats totals = socket_totals(rt);
  /* Closing the host disconnects every peer, telling each client; wait,
   * bounded, for the owner to see them go before stopping the runtime. */
  pn_host_close(host);
  pthread_mutex_lock(&s.lock);
  uint64_t until = now_ns() + CLOSE_WAIT_MS * 1000000ull;
  while (s.live > 0 && now_ns() < until) {
    wait_until(&s.cv, &s.lock, until);
  }
  pthread_mutex_unlock(&s.lock);
  ok = check(pn_runtime_shutdown(rt, UINT64_MAX), "shutting down");
  if (rc == EXIT_HELD) {
    printf("served %" PRIu64 " peers, echoed %" PRIu64 " messages (%" PRIu64
           " waited for room), dropped %" PRIu64 "\n",
           s.accepted, s.echoed, s.waited, s.dropped);
    print_socket_totals(&totals);
  }
  pn_actor_release(actor);
  ok = check(pn_runtime_destroy(rt), "destroying the runtime") && ok;
  pthread_mutex_destroy(&s.lock);
  pthread_cond_destroy(&s.cv);
  return ok ? rc : EXIT_LOCAL_ERR;
}

/* --- client -------------------------------------------------------------- */

typedef struct client {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  /* Set before the actor exists, then read-only. */
  uint64_t count;
  size_t size;
  const char *payload; /* --payload, or NULL */
  /* Written by the handler, read by main; both under lock. */
  bool connected, disconnected, remote;
  uint32_t reason;
  uint64_t acked, lost;   /* events for the messages main sent */
  uint64_t last_event_ns; /* of the last ACKED, LOST or echo */
  uint8_t *seen;          /* per index: echoed intact */
  uint64_t delivered, duplicates, out_of_order, corrupt;
  uint64_t highest;  /* highest index echoed, once delivered > 0 */
  uint64_t *rtt_us;  /* one sample per delivered message */
  uint8_t *expected; /* handler's scratch: the body an echo should have */
} client;

/* Message layout: index (8 bytes), send time in ns (8 bytes), then bytes
 * from a PRNG (xorshift64*) seeded by the index: a damaged or misplaced
 * body shows, and it does not compress, so the library's zstd does not
 * shrink what is measured. With --payload, that text repeated instead
 * (the header still tells messages apart). */
static void body_bytes(const client *c, uint64_t index, uint8_t *out,
                       size_t len) {
  if (c->payload != NULL) {
    size_t n = strlen(c->payload);
    for (size_t i = 0; i < len; i++) {
      out[i] = (uint8_t)c->payload[i % n];
    }
    return;
  }
  uint64_t x = index * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  for (size_t i = 0; i < len; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t w = x * 0x2545F4914F6CDD1Dull;
    memcpy(out + i, &w, len - i < 8 ? len - i : 8);
  }
}

static void fill_body(const client *c, uint8_t *buf, uint64_t index) {
  memcpy(buf, &index, 8);
  body_bytes(c, index, buf + HEADER_BYTES, c->size - HEADER_BYTES);
}

/* Handler only: `expected` is scratch space of c->size bytes. */
static void record_echo(client *c, const uint8_t *data, size_t len,
                        uint64_t now) {
  uint64_t index, sent_ns;
  if (len != c->size) {
    c->corrupt++;
    return;
  }
  memcpy(&index, data, 8);
  memcpy(&sent_ns, data + 8, 8);
  bool intact = index < c->count && sent_ns <= now;
  if (intact) {
    body_bytes(c, index, c->expected, len - HEADER_BYTES);
    intact = memcmp(c->expected, data + HEADER_BYTES, len - HEADER_BYTES) == 0;
  }
  if (!intact) {
    c->corrupt++;
  } else if (c->seen[index]) {
    c->duplicates++;
  } else {
    if (c->delivered > 0 && index < c->highest) {
      c->out_of_order++;
    }
    if (c->delivered == 0 || index > c->highest) {
      c->highest = index;
    }
    c->seen[index] = 1;
    c->rtt_us[c->delivered++] = (now - sent_ns) / 1000;
  }
}

static void client_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  client *c = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return; /* PN_MSG_STOPPED: main owns the state */
  }
  uint64_t now = now_ns();
  pthread_mutex_lock(&c->lock);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    c->connected = true;
    break;
  case PN_MSG_PEER_DISCONNECTED:
    c->disconnected = true;
    c->reason = ev.reason;
    c->remote = ev.remote;
    break;
  case PN_MSG_PEER_ACKED:
    c->acked++;
    c->last_event_ns = now;
    break;
  case PN_MSG_PEER_LOST:
    c->lost++;
    c->last_event_ns = now;
    break;
  case PN_MSG_PEER_PACKET:
    record_echo(c, ev.data, ev.len, now);
    c->last_event_ns = now;
    break;
  default:
    break;
  }
  pthread_cond_signal(&c->cv);
  pthread_mutex_unlock(&c->lock);
}

typedef enum run_end {
  RUN_DONE,     /* everything sent and accounted for */
  RUN_LOST,     /* the connection went away */
  RUN_TIMEOUT,  /* no progress for --timeout */
  RUN_SEND_ERR, /* pn_channel_send failed */
} run_end;

static bool reliable_kind(pn_channel_kind k) {
  return k == PN_CHANNEL_RELIABLE || k == PN_CHANNEL_ORDERED ||
         k == PN_CHANNEL_RELIABLE_UNORDERED;
}

/* Progress is an event from the peer. Stalled: messages are outstanding
 * and none came for timeout_ns since the later of the last event and the
 * moment something was outstanding again. Lock held. */
static bool stalled(const client *c, uint64_t sent, uint64_t timeout_ns,
                    uint64_t *calm_ns) {
  uint64_t now = now_ns();
  if (c->acked + c->lost >= sent) {
    *calm_ns = now; /* nothing outstanding: nothing to wait for */
  }
  uint64_t since = c->last_event_ns > *calm_ns ? c->last_event_ns : *calm_ns;
  return now - since > timeout_ns;
}

/* Sends --count messages, pacing them at --rate and backing off while the
 * peer holds max_queued unacknowledged bytes. *sent_out counts successes. */
static run_end send_all(client *c, const options *o, pn_channel *ch,
                        uint64_t *sent_out) {
  uint8_t *buf = malloc(c->size);
  if (buf == NULL) {
    return RUN_SEND_ERR;
  }
  const uint64_t timeout_ns = o->timeout_s * 1000000000ull;
  const uint64_t start = now_ns();
  uint64_t calm_ns = start, sent = 0;
  run_end end = RUN_DONE;
  pthread_mutex_lock(&c->lock);
  while (sent < c->count && end == RUN_DONE) {
    if (o->rate > 0) {
      uint64_t at = start + sent * 1000000000ull / o->rate;
      while (!c->disconnected && now_ns() < at) {
        wait_until(&c->cv, &c->lock, at);
      }
    }
    if (c->disconnected) {
      end = RUN_LOST;
      break;
    }
    uint64_t resolved = c->acked + c->lost;
    pthread_mutex_unlock(&c->lock);
    fill_body(c, buf, sent);
    uint64_t t = now_ns();
    memcpy(buf + 8, &t, 8);
    pn_err err = pn_channel_send(ch, buf, c->size, NULL);
    pthread_mutex_lock(&c->lock);
    if (err == PN_OK) {
      sent++;
    } else if (err == PN_EAGAIN) {
      /* Backpressure: wait for an acknowledgement to free room. Room can
       * also free up a little after the last event, so never wait longer
       * than RETRY_US before trying again. */
      uint64_t until = now_ns() + RETRY_US * 1000u;
      while (c->acked + c->lost == resolved && !c->disconnected &&
             now_ns() < until) {
        wait_until(&c->cv, &c->lock, until);
      }
    } else {
      check(err, "sending");
      end = err == PN_ECLOSED ? RUN_LOST : RUN_SEND_ERR;
    }
    if (end == RUN_DONE && stalled(c, sent, timeout_ns, &calm_ns)) {
      end = RUN_TIMEOUT;
    }
  }
  pthread_mutex_unlock(&c->lock);
  *sent_out = sent;
  free(buf);
  return end;
}

/* Everything that can still come back came back. Lock held. */
static bool echoes_complete(const client *c, pn_channel_kind kind,
                            uint64_t sent) {
  if (sent == 0) {
    return true;
  }
  switch (kind) {
  case PN_CHANNEL_ORDERED:
  case PN_CHANNEL_RELIABLE_UNORDERED:
    return c->delivered + c->corrupt >= sent;
  case PN_CHANNEL_RELIABLE:
    /* Newest wins: once the last message is back, nothing older follows. */
    return c->seen[sent - 1] != 0;
  default:
    return c->delivered >= sent;
  }
}

/* Waits for the echoes. Unreliable kinds are done once every message was
 * acknowledged or declared lost and nothing arrived for `quiet_ns` (an echo
 * lost on the way back is never reported to the client). */
static run_end wait_echoes(client *c, const options *o, uint64_t sent,
                           uint64_t quiet_ns) {
  const uint64_t timeout_ns = o->timeout_s * 1000000000ull;
  run_end end = RUN_DONE;
  pthread_mutex_lock(&c->lock);
  uint64_t since = now_ns();
  while (!echoes_complete(c, o->kind, sent)) {
    if (c->disconnected) {
      end = RUN_LOST;
      break;
    }
    uint64_t now = now_ns();
    if (c->last_event_ns > since) {
      since = c->last_event_ns;
    }
    uint64_t until = since + timeout_ns;
    if (!reliable_kind(o->kind) && c->acked + c->lost >= sent) {
      uint64_t quiet_end = since + quiet_ns;
      if (now >= quiet_end) {
        break;
      }
      until = quiet_end < until ? quiet_end : until;
    }
    if (now >= until) {
      end = RUN_TIMEOUT;
      break;
    }
    wait_until(&c->cv, &c->lock, until);
  }
  pthread_mutex_unlock(&c->lock);
  return end;
}

typedef struct report {
  uint64_t sent, delivered, missing, duplicates, out_of_order, corrupt;
  uint64_t p50_us, p99_us, p999_us;
  bool last_delivered;
  pn_peer_stats peer;
  pn_socket_stats sockets;
} report;

static int by_value(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static uint64_t percentile(const uint64_t *v, uint64_t n, double p) {
  if (n == 0) {
    return 0;
  }
  uint64_t rank = (uint64_t)(p * (double)n + 0.999999);
  return v[rank == 0 ? 0 : (rank > n ? n : rank) - 1];
}

static void make_report(client *c, uint64_t sent, report *r) {
  pthread_mutex_lock(&c->lock);
  r->sent = sent;
  r->delivered = c->delivered;
  r->missing = sent > c->delivered ? sent - c->delivered : 0;
  r->duplicates = c->duplicates;
  r->out_of_order = c->out_of_order;
  r->corrupt = c->corrupt;
  r->last_delivered = sent > 0 && c->seen[sent - 1];
  /* The handler is done with rtt_us once the peer is gone, but it may
   * still append while we look: sort a copy of what is there now. */
  uint64_t n = c->delivered;
  uint64_t *v = malloc((n ? n : 1) * sizeof *v);
  if (v != NULL) {
    memcpy(v, c->rtt_us, n * sizeof *v);
  }
  pthread_mutex_unlock(&c->lock);
  if (v != NULL) {
    qsort(v, n, sizeof *v, by_value);
    r->p50_us = percentile(v, n, 0.50);
    r->p99_us = percentile(v, n, 0.99);
    r->p999_us = percentile(v, n, 0.999);
    free(v);
  }
}

/* Whether what came back is what the kind promises, given that the echo
 * travels back on the same kind, so the promises compose. */
static bool guarantee_held(pn_channel_kind kind, const report *r) {
  bool clean = r->duplicates == 0 && r->corrupt == 0;
  switch (kind) {
  case PN_CHANNEL_ORDERED:
    return clean && r->missing == 0 && r->out_of_order == 0;
  case PN_CHANNEL_RELIABLE_UNORDERED:
    return clean && r->missing == 0;
  case PN_CHANNEL_RELIABLE:
    return clean && r->out_of_order == 0 && r->last_delivered;
  case PN_CHANNEL_UNRELIABLE:
    return clean && r->out_of_order == 0;
  default:
    return clean;
  }
}

/* verdict: "held", "BROKEN", or why the run is incomplete. */
static void print_report(const options *o, const report *r, double secs,
                         const char *verdict) {
  if (o->json) {
    printf("{\"kind\":\"%s\",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
           ",\"missing\":%" PRIu64 ",\"duplicates\":%" PRIu64
           ",\"out_of_order\":%" PRIu64 ",\"corrupt\":%" PRIu64
           ",\"rtt_p50_us\":%" PRIu64 ",\"rtt_p99_us\":%" PRIu64
           ",\"rtt_p999_us\":%" PRIu64 ",\"srtt_us\":%" PRIu64
           ",\"loss\":%.6f,\"retransmits\":%" PRIu64
           ",\"compression_ratio\":%.3f}\n",
           pn_channel_kind_name(o->kind), r->sent, r->delivered, r->missing,
           r->duplicates, r->out_of_order, r->corrupt, r->p50_us, r->p99_us,
           r->p999_us, r->peer.srtt_us, r->peer.loss, r->peer.retransmits,
           r->peer.compression_ratio);
    return;
  }
  printf("kind          %s, %" PRIu64 " x %" PRIu64 " B\n",
         pn_channel_kind_name(o->kind), o->count, o->size);
  printf("sent          %" PRIu64 "\n", r->sent);
  printf("time          %.3f s from the first send to the last echo"
         " (%.0f echoes/s)\n",
         secs, secs > 0 ? (double)r->delivered / secs : 0.0);
  printf("delivered     %" PRIu64 "\n", r->delivered);
  printf("missing       %" PRIu64 "\n", r->missing);
  printf("duplicates    %" PRIu64 "\n", r->duplicates);
  printf("out_of_order  %" PRIu64 "\n", r->out_of_order);
  printf("corrupt       %" PRIu64 "\n", r->corrupt);
  printf("rtt           p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64
         " us\n",
         r->p50_us, r->p99_us, r->p999_us);
  printf("peer          srtt %" PRIu64 " us, loss %.2f%%, retransmits %" PRIu64
         ", datagrams out %" PRIu64 " in %" PRIu64 "\n",
         r->peer.srtt_us, 100.0 * r->peer.loss, r->peer.retransmits,
         r->peer.datagrams_out, r->peer.datagrams_in);
  print_socket_totals(&r->sockets);
  printf("result        %s guarantee %s\n", pn_channel_kind_name(o->kind),
         verdict);
}

static int run_client(const options *o) {
  pn_addr remote;
  if (!resolve(o->connect, &remote)) {
    fprintf(stderr, "peernet-ping: cannot resolve %s\n", o->connect);
    return EXIT_NO_PEER;
  }
  client c = {
      .count = o->count, .size = (size_t)o->size, .payload = o->payload};
  pthread_mutex_init(&c.lock, NULL);
  cond_init_monotonic(&c.cv);
  c.seen = calloc(o->count, 1);
  c.rtt_us = malloc(o->count * sizeof *c.rtt_us);
  c.expected = malloc(c.size);
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = WORKERS;
  pn_runtime *rt = NULL;
  if (c.seen == NULL || c.rtt_us == NULL || c.expected == NULL ||
      !check(pn_runtime_create(&rcfg, &rt), "creating the runtime")) {
    free(c.seen);
    free(c.rtt_us);
    free(c.expected);
    return EXIT_LOCAL_ERR;
  }
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "ping";
  acfg.handler = client_handler;
  acfg.state = &c;
  pn_actor *actor = NULL;
  bool ok = check(pn_spawn(rt, &acfg, &actor), "spawning the owner actor");

  /* One socket on the wildcard of the server's family. */
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = remote.family == PN_AF_INET6 ? "::" : "0.0.0.0";
  sc.send_conditioner = impairments(o);
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.connect_timeout_us = o->timeout_s * 1000000u;
  hc.max_queued = (uint32_t)o->max_queued;
  hc.no_compression = o->no_compression;
  hc.psk = o->psk_file ? o->psk : NULL;
  pn_host *host = NULL;
  ok = ok && check(pn_host_open(rt, &hc, &host), "opening the host");
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = remote;
  pc.owner = actor;
  pc.channel_count = 1;
  pc.kinds = &o->kind;
  pc.server_key = o->server_key_file ? o->server_key : NULL;
  pn_peer *peer = NULL;
  ok = ok && check(pn_host_connect(host, &pc, &peer), "connecting");
  int rc = ok ? EXIT_HELD : EXIT_LOCAL_ERR;

  /* The library reports the connect timeout itself; the extra second
   * only bounds this wait should that report never come. */
  char addr[PN_ADDR_STRLEN], why[64];
  format_addr(&remote, addr);
  pthread_mutex_lock(&c.lock);
  uint64_t until = now_ns() + (o->timeout_s + 1) * 1000000000ull;
  while (ok && !c.connected && !c.disconnected && now_ns() < until) {
    wait_until(&c.cv, &c.lock, until);
  }
  if (ok && !c.connected) {
    format_reason(c.disconnected ? c.reason : PN_REASON_CONNECT_TIMEOUT, why,
                  sizeof why);
    fprintf(stderr, "peernet-ping: could not connect to %s: %s\n", addr, why);
    rc = EXIT_NO_PEER;
  }
  pthread_mutex_unlock(&c.lock);

  if (rc == EXIT_HELD) {
    if (!o->json) {
      printf("connected to %s\n", addr);
      fflush(stdout);
    }
    uint64_t sent = 0, start = now_ns();
    run_end end = send_all(&c, o, pn_peer_channel(peer, 0), &sent);
    pn_peer_stats ps;
    uint64_t srtt_us =
        pn_peer_stats_get(peer, &ps) == PN_OK && ps.srtt_us ? ps.srtt_us : 0;
    if (end == RUN_DONE) {
      end = wait_echoes(&c, o, sent, 200000000u + 4 * srtt_us * 1000u);
    }
    double secs = (double)(now_ns() - start) / 1e9;
    report r;
    memset(&r, 0, sizeof r);
    make_report(&c, sent, &r);
    (void)pn_peer_stats_get(peer, &r.peer);
    r.sockets = socket_totals(rt);
    bool held = guarantee_held(o->kind, &r);
    rc = held ? EXIT_HELD : EXIT_BROKEN;
    const char *verdict = held ? "held" : "BROKEN";
    if (end == RUN_LOST) {
      rc = EXIT_NO_PEER;
      verdict = "not known: the connection was lost";
    } else if (end == RUN_TIMEOUT) {
      rc = EXIT_TIMEOUT;
      verdict = "not known: timed out";
    } else if (end == RUN_SEND_ERR) {
      rc = EXIT_LOCAL_ERR;
      verdict = "not known: a send failed";
    }
    print_report(o, &r, secs, verdict);
    fflush(stdout); /* the report before any message on stderr */
    if (end == RUN_LOST) {
      pthread_mutex_lock(&c.lock);
      format_reason(c.reason, why, sizeof why);
      pthread_mutex_unlock(&c.lock);
      fprintf(stderr, "peernet-ping: connection lost: %s\n", why);
    } else if (end == RUN_TIMEOUT) {
      fprintf(stderr,
              "peernet-ping: timed out: nothing moved for %" PRIu64 " s\n",
              o->timeout_s);
    } else if (!held) {
      fprintf(stderr, "peernet-ping: the %s guarantee did not hold\n",
              pn_channel_kind_name(o->kind));
    }
  }

  /* Say goodbye, so the server need not wait for an idle timeout. */
  if (peer != NULL && pn_peer_disconnect(peer, REASON_DONE) == PN_OK) {
    pthread_mutex_lock(&c.lock);
    until = now_ns() + CLOSE_WAIT_MS * 1000000ull;
    while (!c.disconnected && now_ns() < until) {
      wait_until(&c.cv, &c.lock, until);
    }
    pthread_mutex_unlock(&c.lock);
  }
  pn_peer_release(peer);
  pn_host_close(host);
  ok = check(pn_runtime_shutdown(rt, UINT64_MAX), "shutting down");
  pn_actor_release(actor);
  ok = check(pn_runtime_destroy(rt), "destroying the runtime") && ok;
  pthread_mutex_destroy(&c.lock);
  pthread_cond_destroy(&c.cv);
  free(c.seen);
  free(c.rtt_us);
  free(c.expected);
  return ok ? rc : EXIT_LOCAL_ERR;
}

int main(int argc, char **argv) {
  options o;
  parse_args(argc, argv, &o);
  return o.listen != NULL ? run_server(&o) : run_client(&o);
}
