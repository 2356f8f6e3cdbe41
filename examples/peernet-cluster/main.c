/* peernet-cluster: actors talking across processes.
 *
 * Run with no arguments, it starts a cluster of --nodes processes on
 * loopback: this one is node n0 and starts n1.. as child processes that
 * join through it. Every node registers an echo actor under the name
 * "echo"; once it sees every other node up, its main thread looks up
 * "<node>/echo" on each, measures round trips to it, then streams
 * --count messages through it (a window of them in flight) and prints
 * what it measured. The nodes then tell each other they are done and
 * leave; n0 waits for its children and prints the exit status of each.
 *
 * The main thread reads everything from one inbox, registered as "main":
 * node events, lookup answers, echoes and the others' "done". An echo
 * answers the reference a message carries (a message from a thread that
 * is not an actor has no sender to answer).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <peernet/peernet.h>

enum { MSG_PING = 1, MSG_DONE = 2 };
enum { MAX_NODES = 16, ROUND_TRIPS = 1000, WINDOW = 256 };
#define WAIT_US 10000000u /* the longest wait for anything */

typedef struct ping {
  pn_ref reply_to;
  uint64_t seq, sent_ns;
} ping;

typedef struct options {
  const char *name;
  const char *join; /* "127.0.0.1:port", or NULL: the first node */
  uint32_t nodes;
  uint64_t count;
} options;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The echo actor: sends every ping back to the reference inside it. */
static void echo_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pn_node *node = state;
  if (pn_msg_type(msg) == MSG_PING && pn_msg_size(msg) == sizeof(ping)) {
    ping p;
    memcpy(&p, pn_msg_data(msg), sizeof p);
    (void)pn_node_send(node, &p.reply_to, MSG_PING, &p, sizeof p);
  }
}

/* What the main thread keeps while it waits: the others' "done" and the
 * nodes seen up may arrive in the middle of anything else. */
typedef struct app {
  pn_node *node;
  pn_actor *inbox;
  pn_ref me; /* the inbox's reference */
  uint32_t up, done;
} app;

/* Takes one message: a node event or a "done" is counted and given back
 * (*counted), anything else returned. false after WAIT_US of nothing. */
static bool take(app *a, pn_msg **out, bool *counted) {
  pn_msg *m = NULL;
  *out = NULL;
  *counted = false;
  if (pn_inbox_receive(a->inbox, WAIT_US, &m) != PN_OK) {
    return false;
  }
  uint32_t t = pn_msg_type(m);
  pn_node_event ev;
  if ((t == PN_MSG_NODE_UP || t == PN_MSG_NODE_DOWN) &&
      pn_msg_node_event(m, &ev) == PN_OK) {
    a->up += t == PN_MSG_NODE_UP ? 1 : 0;
    printf("%s: node %s %s\n", pn_node_name(a->node), ev.name,
           t == PN_MSG_NODE_UP ? "up" : "down");
  } else if (t == MSG_DONE) {
    a->done++;
  } else {
    *out = m;
    return true;
  }
  *counted = true;
  pn_inbox_release(a->inbox, m);
  return true;
}

/* The next message that is not a node event or a "done"; NULL after
 * WAIT_US. */
static pn_msg *next(app *a) {
  pn_msg *m;
  bool counted;
  while (take(a, &m, &counted)) {
    if (m) {
      return m;
    }
  }
  return NULL;
}

/* Waits until *count reaches want (node events and "done" only). */
static bool wait_count(app *a, const uint32_t *count, uint32_t want) {
  while (*count < want) {
    pn_msg *m;
    bool counted;
    if (!take(a, &m, &counted)) {
      return false;
    }
    if (m) {
      pn_inbox_release(a->inbox, m); /* nothing else is expected now */
    }
  }
  return true;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

/* Round trips, then a stream, through the echo `to` on node `name`. */
static int exercise(app *a, const char *name, const pn_ref *to,
                    uint64_t count) {
  static uint64_t rtt[ROUND_TRIPS];
  ping p = {.reply_to = a->me};
  for (uint32_t i = 0; i < ROUND_TRIPS; i++) {
    p.seq = i;
    p.sent_ns = now_ns();
    if (pn_node_send(a->node, to, MSG_PING, &p, sizeof p) != PN_OK) {
      return -1;
    }
    pn_msg *m = next(a);
    if (!m) {
      return -1;
    }
    rtt[i] = now_ns() - p.sent_ns;
    pn_inbox_release(a->inbox, m);
  }
  qsort(rtt, ROUND_TRIPS, sizeof rtt[0], cmp_u64);
  uint64_t t0 = now_ns(), sent = 0, back = 0;
  while (back < count) {
    while (sent < count && sent - back < WINDOW) {
      p.seq = sent;
      pn_err err = pn_node_send(a->node, to, MSG_PING, &p, sizeof p);
      if (err == PN_EAGAIN) {
        break; /* the lane is full: take answers first */
      }
      if (err != PN_OK) {
        return -1;
      }
      sent++;
    }
    pn_msg *m = next(a);
    if (!m) {
      return -1;
    }
    ping r;
    memcpy(&r, pn_msg_data(m), sizeof r);
    pn_inbox_release(a->inbox, m);
    if (r.seq != back) {
      fprintf(stderr, "%s: echo %" PRIu64 " came as %" PRIu64 "\n",
              pn_node_name(a->node), back, r.seq);
      return -1; /* per sender and receiver, order holds */
    }
    back++;
  }
  double s = (double)(now_ns() - t0) / 1e9;
  printf("%s -> %s/echo: round trip p50 %.0f us, p99 %.0f us; "
         "%" PRIu64 " echoes in %.3f s (%.0f K/s each way)\n",
         pn_node_name(a->node), name, (double)rtt[ROUND_TRIPS / 2] / 1e3,
         (double)rtt[ROUND_TRIPS * 99 / 100] / 1e3, count, s,
         (double)count / s / 1e3);
  return 0;
}

/* The reference of "<node>/<name>", asked and answered. A node is up
 * (PN_MSG_NODE_UP) as soon as it joined, maybe before it registered its
 * names: PN_ENOENT is asked again, for up to 2 s. */
static bool look_up(app *a, const char *node, const char *name, pn_ref *out) {
  char path[2 * PN_NODE_NAME_MAX + 2];
  snprintf(path, sizeof path, "%s/%s", node, name);
  pn_node_result r = {.status = PN_ENOENT};
  for (int i = 0; i < 100 && r.status == PN_ENOENT; i++) {
    if (i) {
      usleep(20000);
    }
    pn_msg *m = NULL;
    if (pn_node_lookup(a->node, path, a->inbox, 0) != PN_OK ||
        (m = next(a)) == NULL || pn_msg_node_result(m, &r) != PN_OK) {
      r.status = PN_ETIMEDOUT;
    }
    if (m) {
      pn_inbox_release(a->inbox, m);
    }
  }
  bool ok = r.status == PN_OK;
  if (!ok) {
    fprintf(stderr, "%s: no %s\n", pn_node_name(a->node), path);
    return false;
  }
  *out = r.ref;
  return true;
}

static int run_node(const options *o, pn_addr *addr_out) {
  pn_runtime *rt = NULL;
  app a = {0};
  pn_actor *echo = NULL;
  pn_addr seed;
  if (o->join && pn_addr_parse(o->join, &seed) != PN_OK) {
    fprintf(stderr, "bad --join address: %s\n", o->join);
    return 2;
  }
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  pn_node_config nc = PN_NODE_CONFIG_INIT;
  nc.name = o->name;
  nc.seeds = o->join ? &seed : NULL;
  nc.seed_count = o->join ? 1 : 0;
  pn_actor_config ec = PN_ACTOR_CONFIG_INIT;
  ec.name = "echo";
  ec.handler = echo_handler;
  if (pn_runtime_create(&rc, &rt) != PN_OK ||
      pn_inbox_open(rt, "main", &a.inbox) != PN_OK ||
      pn_node_open(rt, &nc, &a.node) != PN_OK ||
      pn_node_subscribe(a.node, a.inbox) != PN_OK ||
      pn_node_ref(a.node, a.inbox, &a.me) != PN_OK) {
    fprintf(stderr, "%s: could not start\n", o->name);
    return 1;
  }
  ec.state = a.node;
  int rc_out = 1;
  if (pn_spawn(rt, &ec, &echo) != PN_OK ||
      pn_node_register(a.node, "echo", echo) != PN_OK ||
      pn_node_register(a.node, "main", a.inbox) != PN_OK ||
      pn_node_addr(a.node, addr_out) != PN_OK) {
    goto out;
  }
  char text[PN_ADDR_STRLEN];
  pn_addr_format(addr_out, text, sizeof text);
  printf("%s: listening on %s\n", o->name, text);
  fflush(stdout);
  if (addr_out && !o->join) {
    /* The first node: start the others now that the address is known. */
    for (uint32_t i = 1; i < o->nodes; i++) {
      char name[16], count[32], nodes[16];
      snprintf(name, sizeof name, "n%u", i);
      snprintf(count, sizeof count, "%" PRIu64, o->count);
      snprintf(nodes, sizeof nodes, "%u", o->nodes);
      pid_t pid = fork();
      if (pid == 0) {
        execl("/proc/self/exe", "peernet-cluster", "--name", name, "--join",
              text, "--nodes", nodes, "--count", count, (char *)NULL);
        _exit(127);
      }
    }
  }
  if (!wait_count(&a, &a.up, o->nodes - 1)) {
    fprintf(stderr, "%s: only %u of %u nodes came up\n", o->name, a.up,
            o->nodes - 1);
    goto out;
  }
  pn_node_info info[MAX_NODES];
  size_t n = 0;
  if (pn_node_list(a.node, info, MAX_NODES, &n) != PN_OK) {
    goto out;
  }
  pn_ref mains[MAX_NODES];
  for (size_t i = 0; i < n && i < MAX_NODES; i++) {
    pn_ref echo_ref;
    if (!look_up(&a, info[i].name, "echo", &echo_ref) ||
        !look_up(&a, info[i].name, "main", &mains[i]) ||
        exercise(&a, info[i].name, &echo_ref, o->count) != 0) {
      fprintf(stderr, "%s: exchange with %s failed\n", o->name, info[i].name);
      goto out;
    }
  }
  fflush(stdout);
  /* Done here; stay until every other node is done with this one. */
  for (size_t i = 0; i < n && i < MAX_NODES; i++) {
    (void)pn_node_send(a.node, &mains[i], MSG_DONE, NULL, 0);
  }
  rc_out = 0;
  if (!wait_count(&a, &a.done, o->nodes - 1)) {
    fprintf(stderr, "%s: the others never finished\n", o->name);
    rc_out = 1;
  }
  pn_node_stats st;
  if (pn_node_stats_get(a.node, &st) == PN_OK) {
    printf("%s: sent %" PRIu64 " to other nodes, delivered %" PRIu64
           " from them, dropped %" PRIu64 "\n",
           o->name, st.sent_remote, st.delivered,
           st.dropped_no_actor + st.dropped_stale + st.dropped_bad);
  }
out:
  fflush(stdout);
  pn_node_close(a.node);
  pn_actor_release(echo);
  pn_runtime_shutdown(rt, 5000000);
  pn_inbox_close(a.inbox);
  pn_runtime_destroy(rt);
  return rc_out;
}

static void usage(void) {
  fprintf(stderr,
          "usage: peernet-cluster [--nodes N] [--count N]\n"
          "       [--name NAME --join ADDR]   (how the first node starts "
          "the others)\n");
}

int main(int argc, char **argv) {
  options o = {.name = "n0", .nodes = 3, .count = 20000};
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(argv[i], "--help") == 0) {
      usage();
      return 0;
    }
    if (!v) {
      usage();
      return 2;
    }
    if (strcmp(argv[i], "--name") == 0) {
      o.name = v;
    } else if (strcmp(argv[i], "--join") == 0) {
      o.join = v;
    } else if (strcmp(argv[i], "--nodes") == 0) {
      o.nodes = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(argv[i], "--count") == 0) {
      o.count = strtoull(v, NULL, 10);
    } else {
      usage();
      return 2;
    }
    i++;
  }
  if (o.nodes < 2 || o.nodes > MAX_NODES || o.count == 0) {
    usage();
    return 2;
  }
  pn_addr addr;
  int rc = run_node(&o, &addr);
  if (!o.join) {
    /* The first node: its children's verdicts too. */
    int status;
    pid_t pid;
    while ((pid = wait(&status)) > 0) {
      bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      rc |= ok ? 0 : 1;
    }
    printf("%s\n", rc ? "cluster: FAILED" : "cluster: every node done");
  }
  return rc;
}
