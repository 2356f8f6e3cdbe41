/* One node of the multi-host test (test_multihost.c), as its own process:
 * node NAME listening on HOST:PORT, seeded with SEED (HOST:PORT) if given,
 * with an echo actor registered as "echo", one as "victim", and the
 * behaviour "echo" for remote spawns. It reads one command per line on
 * stdin and answers one line on stdout for each (and "down ..." lines
 * when a monitor fires), once it has said "ready":
 *
 *   up K              waits until K other nodes are up       -> ok
 *   send NODE/NAME    looks it up, sends, waits for the echo -> ok | err E
 *   lookup NODE/NAME                                         -> ok | err E
 *   spawn NODE        spawns an echo there, sends to it      -> ok | err E
 *   monitor NODE/NAME looks it up and monitors it (in place when it
 *                     answers)                               -> ok | err E
 *                     later: down REASON MS (ms since the monitor)
 *   stop-victim       stops "victim" with reason PN_DOWN_APP + 1 -> ok
 *   quit              closes the node, ends the runtime      -> exit 0
 *                     when everything was freed, else 1
 *
 *   pn_node_proc NAME HOST PORT [SEED] [--io epoll|uring]
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peernet/inbox.h"
#include "peernet/node.h"
#include "peernet/peernet.h"

enum { MSG_PING = 1, WAIT_US = 10000000 };

static pn_node *node;
static pn_actor *inbox; /* replies, lookups, spawns */
static pn_actor *downs; /* DOWNs, read by their own thread */
static _Atomic uint64_t monitored_at_ms;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&lock);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  pthread_mutex_unlock(&lock);
  va_end(ap);
}

/* Answers a ping to the reference it carries (sent from a thread, a
 * message has no sender). */
static void echo_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  pn_ref to;
  if (pn_msg_type(msg) == MSG_PING && pn_msg_size(msg) == sizeof to) {
    memcpy(&to, pn_msg_data(msg), sizeof to);
    (void)pn_node_send(node, &to, MSG_PING, NULL, 0);
  }
}

static pn_err spawn_echo(void *ctx, pn_runtime *rt, const void *arg, size_t len,
                         pn_actor **out) {
  (void)ctx;
  (void)arg;
  (void)len;
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = "spawned-echo";
  ac.handler = echo_handler;
  return pn_spawn(rt, &ac, out);
}

/* The next message of the inbox of that type (others are dropped), or
 * NULL after WAIT_US. */
static pn_msg *next_of(uint32_t type) {
  for (;;) {
    pn_msg *m = NULL;
    if (pn_inbox_receive(inbox, WAIT_US, &m) != PN_OK) {
      return NULL;
    }
    if (pn_msg_type(m) == type) {
      return m;
    }
    pn_inbox_release(inbox, m);
  }
}

static pn_err result_of(uint32_t type, pn_ref *ref) {
  pn_msg *m = next_of(type);
  pn_node_result r;
  if (!m || pn_msg_node_result(m, &r) != PN_OK) {
    if (m) {
      pn_inbox_release(inbox, m);
    }
    return PN_ETIMEDOUT;
  }
  pn_inbox_release(inbox, m);
  *ref = r.ref;
  return r.status;
}

/* Pings ref with the inbox's reference and waits for the answer. */
static pn_err ping(const pn_ref *ref) {
  pn_ref me;
  pn_err err = pn_node_ref(node, inbox, &me);
  if (err == PN_OK) {
    err = pn_node_send(node, ref, MSG_PING, &me, sizeof me);
  }
  pn_msg *m = err == PN_OK ? next_of(MSG_PING) : NULL;
  if (m) {
    pn_inbox_release(inbox, m);
  }
  return err != PN_OK ? err : m ? PN_OK : PN_ETIMEDOUT;
}

static void *down_reader(void *arg) {
  (void)arg;
  for (;;) {
    pn_msg *m = NULL;
    if (pn_inbox_receive(downs, UINT64_MAX, &m) != PN_OK) {
      return NULL;
    }
    pn_down d;
    if (pn_msg_down(m, &d) == PN_OK) {
      say("down %" PRIu32 " %" PRIu64, d.reason, now_ms() - monitored_at_ms);
    }
    pn_inbox_release(downs, m);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: pn_node_proc NAME HOST PORT [SEED] [--io IO]\n");
    return 2;
  }
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  const char *seed_s = NULL;
  for (int i = 4; i < argc; i++) {
    if (strcmp(argv[i], "--io") == 0 && i + 1 < argc) {
      rc.io = strcmp(argv[++i], "epoll") == 0 ? PN_IO_EPOLL : PN_IO_URING;
    } else {
      seed_s = argv[i];
    }
  }
  pn_runtime *rt = NULL;
  pn_actor *ev = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK ||
      pn_inbox_open(rt, "events", &ev) != PN_OK ||
      pn_inbox_open(rt, "inbox", &inbox) != PN_OK ||
      pn_inbox_open(rt, "downs", &downs) != PN_OK) {
    return 1;
  }
  static const uint8_t key[PN_KEY_BYTES] = "pn multihost test cluster key";
  pn_node_config nc = PN_NODE_CONFIG_INIT;
  nc.name = argv[1];
  nc.host = argv[2];
  nc.port = (uint16_t)atoi(argv[3]);
  nc.cluster_key = key;
  pn_addr seed;
  if (seed_s) {
    if (pn_addr_parse(seed_s, &seed) != PN_OK) {
      return 2;
    }
    nc.seeds = &seed;
    nc.seed_count = 1;
  }
  pn_err err = pn_node_open(rt, &nc, &node);
  if (err != PN_OK) {
    fprintf(stderr, "%s: %s\n", argv[1], pn_err_name(err));
    return 1;
  }
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.handler = echo_handler;
  pn_actor *echo = NULL, *victim = NULL;
  ac.name = "echo";
  (void)pn_spawn(rt, &ac, &echo);
  ac.name = "victim";
  (void)pn_spawn(rt, &ac, &victim);
  if (!echo || !victim || pn_node_subscribe(node, ev) != PN_OK ||
      pn_node_register(node, "echo", echo) != PN_OK ||
      pn_node_register(node, "victim", victim) != PN_OK ||
      pn_node_behaviour(node, "echo", spawn_echo, NULL) != PN_OK) {
    return 1;
  }
  pthread_t reader;
  pthread_create(&reader, NULL, down_reader, NULL);
  say("ready"); /* its names registered: lookups from others find them */
  uint32_t ups = 0;
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[32] = {0}, what[200] = {0};
    int k = 0;
    if (sscanf(line, "%31s %199s", cmd, what) < 1) {
      continue;
    }
    pn_ref ref;
    if (strcmp(cmd, "up") == 0 && sscanf(what, "%d", &k) == 1) {
      while ((int)ups < k) {
        pn_msg *m = NULL;
        if (pn_inbox_receive(ev, WAIT_US, &m) != PN_OK) {
          break;
        }
        ups += pn_msg_type(m) == PN_MSG_NODE_UP;
        pn_inbox_release(ev, m);
      }
      say((int)ups >= k ? "ok" : "err up %" PRIu32, ups);
    } else if (strcmp(cmd, "lookup") == 0 || strcmp(cmd, "send") == 0 ||
               strcmp(cmd, "monitor") == 0) {
      err = pn_node_lookup(node, what, inbox, 1);
      if (err == PN_OK) {
        err = result_of(PN_MSG_NODE_LOOKUP, &ref);
      }
      if (err == PN_OK && strcmp(cmd, "send") == 0) {
        err = ping(&ref);
      }
      uint64_t id;
      if (err == PN_OK && strcmp(cmd, "monitor") == 0) {
        monitored_at_ms = now_ms();
        err = pn_node_monitor(node, downs, &ref, &id);
        /* As Erlang's, a monitor is asynchronous: an actor that stops
         * before the other node takes it is DOWN with PN_DOWN_NOPROC. A
         * lookup behind it on the control lane is answered once it did,
         * so "ok" means it is in place. */
        if (err == PN_OK) {
          err = pn_node_lookup(node, what, inbox, 3);
        }
        if (err == PN_OK) {
          err = result_of(PN_MSG_NODE_LOOKUP, &ref);
        }
      }
      say(err == PN_OK ? "ok" : "err %s", pn_err_name(err));
    } else if (strcmp(cmd, "spawn") == 0) {
      err = pn_node_spawn(node, what, "echo", NULL, 0, inbox, 2);
      if (err == PN_OK) {
        err = result_of(PN_MSG_NODE_SPAWNED, &ref);
      }
      if (err == PN_OK) {
        err = ping(&ref);
      }
      say(err == PN_OK ? "ok" : "err %s", pn_err_name(err));
    } else if (strcmp(cmd, "stop-victim") == 0) {
      err = pn_actor_stop_reason(victim, PN_DOWN_APP + 1);
      say(err == PN_OK ? "ok" : "err %s", pn_err_name(err));
    } else if (strcmp(cmd, "quit") == 0) {
      break;
    }
  }
  pn_node_close(node);
  (void)pn_actor_stop(downs); /* the reader returns, then it is closed */
  pthread_join(reader, NULL);
  (void)pn_inbox_close(downs);
  (void)pn_runtime_shutdown(rt, UINT64_MAX);
  pn_actor_release(echo);
  pn_actor_release(victim);
  (void)pn_inbox_close(ev);
  (void)pn_inbox_close(inbox);
  return pn_runtime_destroy(rt) == PN_OK ? 0 : 1;
}
