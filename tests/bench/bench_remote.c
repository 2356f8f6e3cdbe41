/* peernet-bench remote-pingpong and remote-flood: one actor on each of two
 * nodes in two processes on loopback, this one (node bench-a) and a child
 * it starts (`peernet-bench remote-node`, node bench-b), each runtime with
 * one worker, so the two processes share the machine's two cores as
 * Erlang's two nodes do in tests/bench/run-remote-anchors.sh.
 *
 * remote-pingpong: an actor on bench-a sends a size-byte message to the
 * echo actor on bench-b (found by name), which answers its sender; one
 * at a time, n round trips after a warm-up. remote-flood: an actor sends
 * n one-way messages to the sink on bench-b as fast as the node takes
 * them (PN_EAGAIN: it tries again on its next run), and the sink answers
 * once it has them all; msgs_per_s counts from the first send to that
 * answer. The child exits when its stdin closes.
 */
#include "tests/bench/bench_remote.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peernet/inbox.h"
#include "peernet/net.h"
#include "peernet/node.h"
#include "tests/bench/bench_stats.h"

enum {
  MSG_START = 1, /* to the pinger or flooder; to the sink: the count */
  MSG_DATA = 2,
  MSG_DONE = 3,
  MSG_CONTINUE = 4,
  WARMUP = 2000,
  BATCH = 4096, /* flood sends per run before others get the worker */
};

static const uint8_t cluster_key[PN_KEY_BYTES] =
    "peernet-bench remote key 32 B!!";

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- the child: node bench-b ------------------------------------------- */

typedef struct far_side {
  pn_node *node;
  uint64_t want, got;
} far_side;

static void echo_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  far_side *f = state;
  pn_ref from;
  if (pn_msg_type(msg) == MSG_DATA && pn_msg_sender(msg, &from) == PN_OK) {
    (void)pn_node_send(f->node, &from, MSG_DATA, pn_msg_data(msg),
                       pn_msg_size(msg));
  }
}

static void sink_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  far_side *f = state;
  if (pn_msg_type(msg) == MSG_START && pn_msg_size(msg) == sizeof f->want) {
    memcpy(&f->want, pn_msg_data(msg), sizeof f->want);
    f->got = 0;
  } else if (pn_msg_type(msg) == MSG_DATA && ++f->got == f->want) {
    pn_ref from;
    if (pn_msg_sender(msg, &from) == PN_OK) {
      (void)pn_node_send(f->node, &from, MSG_DONE, &f->got, sizeof f->got);
    }
  }
}

int bench_remote_node(pn_io_backend io, uint16_t seed_port) {
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  rc.io = io;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK) {
    return 1;
  }
  char seed_s[32];
  snprintf(seed_s, sizeof seed_s, "127.0.0.1:%u", (unsigned)seed_port);
  pn_addr seed;
  if (pn_addr_parse(seed_s, &seed) != PN_OK) {
    return 1;
  }
  pn_node_config nc = PN_NODE_CONFIG_INIT;
  nc.name = "bench-b";
  nc.cluster_key = cluster_key;
  nc.seeds = &seed;
  nc.seed_count = 1;
  static far_side echo_side, sink_side;
  pn_node *node = NULL;
  pn_err err = pn_node_open(rt, &nc, &node);
  if (err != PN_OK) {
    fprintf(stderr, "remote-node: %s\n", pn_err_name(err));
    return 1;
  }
  echo_side.node = sink_side.node = node;
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  pn_actor *echo = NULL, *sink = NULL;
  ac.name = "echo";
  ac.handler = echo_handler;
  ac.state = &echo_side;
  (void)pn_spawn(rt, &ac, &echo);
  ac.name = "sink";
  ac.handler = sink_handler;
  ac.state = &sink_side;
  (void)pn_spawn(rt, &ac, &sink);
  if (!echo || !sink || pn_node_register(node, "echo", echo) != PN_OK ||
      pn_node_register(node, "sink", sink) != PN_OK) {
    return 1;
  }
  char buf[64];
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  pn_node_close(node);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_actor_release(echo);
  pn_actor_release(sink);
  (void)pn_runtime_destroy(rt);
  return 0;
}

/* --- this side: node bench-a ------------------------------------------- */

typedef struct near_side {
  pn_node *node;
  pn_ref to;
  uint64_t n, sent, done;
  uint8_t *buf;
  uint32_t size;
  uint64_t *samples; /* pingpong */
  uint64_t t_send, t0, t_end;
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool finished;
  pn_err err;
} near_side;

static void finish(near_side *s, pn_err err) {
  s->t_end = now_ns();
  pthread_mutex_lock(&s->lock);
  s->finished = true;
  s->err = err;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->lock);
}

static void pinger_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  near_side *s = state;
  uint32_t t = pn_msg_type(msg);
  if (t == MSG_DATA) {
    uint64_t now = now_ns();
    if (s->done >= WARMUP) {
      s->samples[s->done - WARMUP] = now - s->t_send;
    }
    if (++s->done == s->n + WARMUP) {
      finish(s, PN_OK);
      return;
    }
  } else if (t != MSG_START) {
    return;
  }
  s->t_send = now_ns();
  pn_err err = pn_node_send(s->node, &s->to, MSG_DATA, s->buf, s->size);
  if (err != PN_OK) {
    finish(s, err);
  }
}

static void flooder_handler(pn_actor *self, void *state, const pn_msg *msg) {
  near_side *s = state;
  uint32_t t = pn_msg_type(msg);
  if (t == MSG_DONE) {
    finish(s, PN_OK);
    return;
  }
  if (t == MSG_START) {
    s->t0 = now_ns();
    pn_err err = pn_node_send(s->node, &s->to, MSG_START, &s->n, sizeof s->n);
    if (err != PN_OK) {
      finish(s, err);
      return;
    }
  } else if (t != MSG_CONTINUE) {
    return;
  }
  for (uint32_t i = 0; i < BATCH && s->sent < s->n; i++) {
    pn_err err = pn_node_send(s->node, &s->to, MSG_DATA, s->buf, s->size);
    if (err == PN_EAGAIN) {
      break; /* the lane is full: after the others had the worker */
    }
    if (err != PN_OK) {
      finish(s, err);
      return;
    }
    s->sent++;
  }
  if (s->sent < s->n) {
    (void)pn_send(self, MSG_CONTINUE, NULL, 0);
  }
}

/* Starts the child node; its stdin's write end in *to_child. */
static pid_t start_child(const char *exe, pn_io_backend io, uint16_t port,
                         int *to_child) {
  int p[2];
  if (pipe(p) != 0) {
    return -1;
  }
  pid_t pid = fork();
  if (pid == 0) {
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    close(p[1]);
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%u", (unsigned)port);
    execl(exe, exe, "remote-node", "--port", port_s, "--io",
          io == PN_IO_EPOLL ? "epoll" : "uring", (char *)NULL);
    _exit(127);
  }
  close(p[0]);
  *to_child = p[1];
  return pid;
}

static pn_msg *wait_msg(pn_actor *inbox) {
  pn_msg *m = NULL;
  return pn_inbox_receive(inbox, 10000000u, &m) == PN_OK ? m : NULL;
}

int bench_remote(pn_io_backend io, bool flood, uint64_t n, uint32_t size,
                 const char *exe) {
  const char *name = flood ? "remote-flood" : "remote-pingpong";
  static near_side s;
  memset(&s, 0, sizeof s);
  pthread_mutex_init(&s.lock, NULL);
  pthread_cond_init(&s.cv, NULL);
  s.n = n;
  s.size = size ? size : 1;
  s.buf = calloc(1, s.size);
  s.samples = flood ? NULL : calloc(n, sizeof *s.samples);
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  rc.io = io;
  pn_runtime *rt = NULL;
  pn_actor *ev = NULL;
  pn_node *node = NULL;
  pn_node_config nc = PN_NODE_CONFIG_INIT;
  nc.name = "bench-a";
  nc.cluster_key = cluster_key;
  pn_addr me;
  if (!s.buf || (!flood && !s.samples) ||
      pn_runtime_create(&rc, &rt) != PN_OK ||
      pn_inbox_open(rt, "events", &ev) != PN_OK ||
      pn_node_open(rt, &nc, &node) != PN_OK ||
      pn_node_subscribe(node, ev) != PN_OK ||
      pn_node_addr(node, &me) != PN_OK) {
    fprintf(stderr, "%s: setup failed\n", name);
    return 1;
  }
  s.node = node;
  int to_child = -1;
  pid_t child = start_child(exe, io, me.port, &to_child);
  int rc_out = 1;
  pn_msg *m = child > 0 ? wait_msg(ev) : NULL;
  bool up = m && pn_msg_type(m) == PN_MSG_NODE_UP;
  pn_inbox_release(ev, m);
  if (!up) {
    fprintf(stderr, "%s: bench-b did not come up\n", name);
    goto out;
  }
  /* bench-b is up before it has registered its actors: a lookup may come
   * too early (PN_ENOENT), and is asked again, 200 times at most. */
  pn_node_result res = {.status = PN_ENOENT};
  for (int i = 0; i < 200 && res.status == PN_ENOENT; i++) {
    if (i) {
      usleep(10000);
    }
    (void)pn_node_lookup(node, flood ? "bench-b/sink" : "bench-b/echo", ev, 1);
    m = wait_msg(ev);
    if (!m || pn_msg_node_result(m, &res) != PN_OK) {
      res.status = PN_ETIMEDOUT;
    }
    pn_inbox_release(ev, m);
  }
  if (res.status != PN_OK) {
    fprintf(stderr, "%s: lookup failed: %s\n", name, pn_err_name(res.status));
    goto out;
  }
  s.to = res.ref;
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = flood ? "flooder" : "pinger";
  ac.handler = flood ? flooder_handler : pinger_handler;
  ac.state = &s;
  pn_actor *a = NULL;
  if (pn_spawn(rt, &ac, &a) != PN_OK) {
    goto out;
  }
  uint64_t t0 = now_ns();
  (void)pn_send(a, MSG_START, NULL, 0);
  pthread_mutex_lock(&s.lock);
  while (!s.finished) {
    pthread_cond_wait(&s.cv, &s.lock);
  }
  pthread_mutex_unlock(&s.lock);
  pn_actor_release(a);
  if (s.err != PN_OK) {
    fprintf(stderr, "%s: %s\n", name, pn_err_name(s.err));
    goto out;
  }
  if (flood) {
    double secs = (double)(s.t_end - s.t0) / 1e9;
    printf("{\"bench\":\"%s\",\"impl\":\"peernet\",\"io\":\"%s\",\"size\":%u,"
           "\"n\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.0f}\n",
           name, pn_runtime_io_name(rt), s.size, n, secs, (double)n / secs);
  } else {
    bench_sort_ns(s.samples, n);
    printf("{\"bench\":\"%s\",\"impl\":\"peernet\",\"io\":\"%s\",\"size\":%u,"
           "\"n\":%" PRIu64 ",\"seconds\":%.3f,\"rtt_p50_us\":%.1f,"
           "\"rtt_p99_us\":%.1f}\n",
           name, pn_runtime_io_name(rt), s.size, n,
           (double)(now_ns() - t0) / 1e9,
           bench_percentile(s.samples, n, 0.50) / 1000.0,
           bench_percentile(s.samples, n, 0.99) / 1000.0);
  }
  fflush(stdout);
  rc_out = 0;
out:
  if (to_child >= 0) {
    close(to_child);
  }
  if (child > 0) {
    int st;
    (void)waitpid(child, &st, 0);
  }
  pn_node_close(node);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  (void)pn_inbox_close(ev);
  (void)pn_runtime_destroy(rt);
  free(s.buf);
  free(s.samples);
  return rc_out;
}
