/* Nodes (include/peernet/node.h) on loopback, on both I/O backends: three
 * nodes join through a chain of seeds and become a full mesh; an
 * application thread on one sends to an actor on another, which answers
 * the sender's reference on a third, in order and with its reference;
 * messages to actors that stopped, to unknown ones and to an earlier
 * incarnation are dropped and counted; a node that leaves is seen down by
 * the others; a node with another cluster key never joins; a client that
 * breaks the protocol is counted and dropped; names registered on one
 * node are found from another, behaviours spawned from another, and what
 * is not there gets a clear error; monitors of another node's actors and
 * of its own give one DOWN each, with the reason.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "peernet/inbox.h"
#include "peernet/node.h"
#include "peernet/stats.h"
#include "nodes/envelope.h"    /* a Batch, written by hand */
#include "nodes/node.h"        /* a node's host, to silence it */
#include "peernet_node.pb-c.h" /* a protobuf-c type to send */
#include "tests/net/net_harness.h"

enum { N = 3000, MSG = 7 };

/* What open_node() gives every node (0: the defaults); a test that sets
 * them puts them back. */
static uint32_t test_lanes;
static uint64_t test_lane_window;

static pn_node *open_node(pn_runtime *rt, const char *name, const pn_node *seed,
                          const uint8_t *key) {
  pn_node_config cfg = PN_NODE_CONFIG_INIT;
  cfg.name = name;
  cfg.cluster_key = key;
  cfg.lanes = test_lanes;
  cfg.lane_window = test_lane_window;
  pn_addr s;
  if (seed) {
    PN_ASSERT_OK(pn_node_addr(seed, &s));
    cfg.seeds = &s;
    cfg.seed_count = 1;
  }
  pn_node *n = NULL;
  PN_ASSERT_OK(pn_node_open(rt, &cfg, &n));
  return n;
}

/* The next message of the inbox, waiting at most NET_WAIT_MS. */
static pn_msg *next(pn_actor *inbox) {
  pn_msg *m = NULL;
  pn_err err = pn_inbox_receive(inbox, NET_WAIT_MS * 1000ull, &m);
  if (err != PN_OK) {
    fail_msg("inbox: %s", pn_err_name(err));
  }
  return m;
}

/* Waits for `ups` PN_MSG_NODE_UP on the inbox; returns the names seen. */
static void expect_ups(pn_actor *inbox, int ups) {
  for (int i = 0; i < ups; i++) {
    pn_msg *m = next(inbox);
    pn_node_event ev;
    PN_ASSERT_OK(pn_msg_node_event(m, &ev));
    assert_int_equal(pn_msg_type(m), PN_MSG_NODE_UP);
    assert_true(ev.node.node && ev.node.incarnation && !ev.node.actor);
    pn_inbox_release(inbox, m);
  }
}

/* Waits until a and b both have their link up: one end (the arbiter)
 * takes a link before the other, so a node's own UP, not the other's,
 * says it can send. */
static void wait_linked(pn_runtime *rt, pn_node *a, pn_node *b) {
  pn_actor *in = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "linked", &in));
  PN_ASSERT_OK(pn_node_subscribe(a, in));
  PN_ASSERT_OK(pn_node_subscribe(b, in));
  expect_ups(in, 2);
  PN_ASSERT_OK(pn_inbox_close(in));
}

/* An actor that answers every message to `reply` (the sender's reference
 * when reply is all zeros), through its node. */
typedef struct echo {
  pn_node *node;
  pn_ref reply;
} echo;

static void echo_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  echo *e = state;
  if (pn_msg_type(msg) != MSG) {
    return;
  }
  pn_ref to = e->reply, from;
  if (!to.node) {
    PN_ASSERT_OK(pn_msg_sender(msg, &from));
    to = from;
  }
  PN_ASSERT_OK(
      pn_node_send(e->node, &to, MSG, pn_msg_data(msg), pn_msg_size(msg)));
}

/* Asks `target` (through its node) on ASK; tells `out` ANSWERED when the
 * answer comes back from it. */
enum { ASK = 8, ANSWERED = 9 };
typedef struct asker {
  pn_node *node;
  pn_ref target;
  pn_actor *out;
} asker;

static void asker_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  asker *k = state;
  uint32_t v = 42;
  if (pn_msg_type(msg) == ASK) {
    PN_ASSERT_OK(pn_node_send(k->node, &k->target, MSG, &v, sizeof v));
  } else if (pn_msg_type(msg) == MSG) {
    pn_ref from;
    PN_ASSERT_OK(pn_msg_sender(msg, &from));
    assert_true(pn_ref_equal(&from, &k->target));
    assert_int_equal(pn_msg_size(msg), sizeof v);
    PN_ASSERT_OK(pn_send(k->out, ANSWERED, NULL, 0));
  }
}

static pn_node_stats node_stats(const pn_node *n) {
  pn_node_stats st;
  PN_ASSERT_OK(pn_node_stats_get(n, &st));
  return st;
}

static void three_nodes_mesh_and_message(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *ev[3];
  for (int i = 0; i < 3; i++) {
    PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev[i]));
  }
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  PN_ASSERT_OK(pn_node_subscribe(a, ev[0]));
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(b, ev[1]));
  pn_node *c = open_node(rt, "gamma", b, NULL);
  PN_ASSERT_OK(pn_node_subscribe(c, ev[2]));
  /* gamma knew only beta: it hears of alpha through beta. */
  for (int i = 0; i < 3; i++) {
    expect_ups(ev[i], 2);
  }
  pn_node_info info[4];
  size_t count = 0;
  PN_ASSERT_OK(pn_node_list(c, info, 4, &count));
  assert_int_equal(count, 2);
  pn_ref ra = pn_node_self(a);
  assert_true(pn_ref_equal(&info[0].node, &ra) ||
              pn_ref_equal(&info[1].node, &ra));

  /* An application thread on gamma sends N to an echo on alpha, which
   * answers an inbox on gamma: in order, with the echo's reference. */
  pn_actor *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "replies", &got));
  echo e = {.node = a};
  PN_ASSERT_OK(pn_node_ref(c, got, &e.reply));
  pn_actor *ea = pn_test_spawn(rt, "echo", echo_handler, &e, -1);
  pn_ref echo_ref;
  PN_ASSERT_OK(pn_node_ref(a, ea, &echo_ref));
  char text[PN_REF_STRLEN];
  PN_ASSERT_OK(pn_ref_format(&echo_ref, text, sizeof text));
  fprintf(stderr, "# echo on alpha: %s\n", text);
  for (uint32_t i = 1; i <= N; i++) {
    pn_err err;
    while ((err = pn_node_send(c, &echo_ref, MSG, &i, sizeof i)) == PN_EAGAIN) {
      sched_yield(); /* the lane is full: back off */
    }
    PN_ASSERT_OK(err);
  }
  for (uint32_t i = 1; i <= N; i++) {
    pn_msg *m = next(got);
    assert_int_equal(pn_msg_type(m), MSG);
    assert_int_equal(pn_msg_size(m), sizeof i);
    uint32_t v;
    memcpy(&v, pn_msg_data(m), sizeof v);
    assert_int_equal(v, i);
    pn_ref from;
    PN_ASSERT_OK(pn_msg_sender(m, &from));
    assert_true(pn_ref_equal(&from, &echo_ref));
    pn_inbox_release(got, m);
  }
  assert_int_equal(node_stats(c).sent_remote, N);
  assert_int_equal(node_stats(a).delivered, N);
  assert_int_equal(node_stats(a).sent_remote, N);

  /* An actor on beta asks an echo on alpha that answers whoever sent:
   * the answer comes back to the asker, from the echo. */
  echo es = {.node = a};
  pn_actor *sa = pn_test_spawn(rt, "echo-sender", echo_handler, &es, -1);
  asker ask = {.node = b, .out = got};
  PN_ASSERT_OK(pn_node_ref(a, sa, &ask.target));
  pn_actor *back = pn_test_spawn(rt, "asker", asker_handler, &ask, -1);
  PN_ASSERT_OK(pn_send(back, ASK, NULL, 0));
  pn_msg *answer = next(got);
  assert_int_equal(pn_msg_type(answer), ANSWERED);
  pn_inbox_release(got, answer);

  /* Dropped and counted: an actor that stopped, one never referenced;
   * refused: an earlier incarnation, a node not linked. */
  pn_ref gone;
  pn_actor *tmp = pn_test_spawn(rt, "short-lived", echo_handler, &e, -1);
  PN_ASSERT_OK(pn_node_ref(a, tmp, &gone));
  PN_ASSERT_OK(pn_actor_stop(tmp));
  for (uint64_t t0 = net_now_ms(); net_now_ms() - t0 < NET_WAIT_MS;) {
    pn_actor_stats as;
    PN_ASSERT_OK(pn_actor_stats_get(tmp, &as));
    if (as.state == PN_ACTOR_STOPPED) {
      break;
    }
    sched_yield();
  }
  pn_actor_release(tmp);
  uint32_t one = 1;
  PN_ASSERT_OK(pn_node_send(c, &gone, MSG, &one, sizeof one));
  pn_ref never = echo_ref;
  never.actor = 999999;
  PN_ASSERT_OK(pn_node_send(c, &never, MSG, &one, sizeof one));
  pn_ref old = echo_ref;
  old.incarnation ^= 1;
  assert_int_equal(pn_node_send(c, &old, MSG, &one, sizeof one), PN_ENOENT);
  pn_ref nowhere = {.node = 12345, .incarnation = 1, .actor = 1};
  assert_int_equal(pn_node_send(c, &nowhere, MSG, &one, sizeof one), PN_ENOENT);
  assert_int_equal(pn_node_send(c, &echo_ref, PN_MSG_TYPE_RESERVED, &one, 4),
                   PN_EINVAL);
  /* Both land after the echo's last answer: wait for the counts. */
  for (uint64_t t0 = net_now_ms();
       node_stats(a).dropped_no_actor < 2 && net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
  }
  assert_int_equal(node_stats(a).dropped_no_actor, 2);

  /* beta leaves: alpha and gamma see it down. */
  pn_node_close(b);
  for (int i = 0; i < 3; i += 2) {
    pn_msg *m = next(ev[i]);
    pn_node_event de;
    PN_ASSERT_OK(pn_msg_node_event(m, &de));
    if (pn_msg_type(m) != PN_MSG_NODE_DOWN || strcmp(de.name, "beta") != 0) {
      fail_msg("%s: %s %s (%s, %#x; alpha dropped_bad %" PRIu64
               ", gamma %" PRIu64 ")",
               i ? "gamma" : "alpha",
               pn_msg_type(m) == PN_MSG_NODE_UP ? "up" : "down", de.name,
               pn_reason_name(de.reason), de.reason, node_stats(a).dropped_bad,
               node_stats(c).dropped_bad);
    }
    pn_inbox_release(ev[i], m);
  }
  PN_ASSERT_OK(pn_node_list(a, info, 4, &count));
  assert_int_equal(count, 1);
  assert_string_equal(info[0].name, "gamma");

  pn_node_close(a);
  pn_node_close(c);
  PN_ASSERT_OK(pn_actor_stop(ea));
  pn_actor_release(ea);
  PN_ASSERT_OK(pn_actor_stop(back));
  pn_actor_release(back);
  PN_ASSERT_OK(pn_actor_stop(sa));
  pn_actor_release(sa);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  for (int i = 0; i < 3; i++) {
    PN_ASSERT_OK(pn_inbox_close(ev[i]));
  }
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_test_runtime_end(rt);
}

/* The next PN_MSG_NODE_LOOKUP on the inbox. */
static pn_node_result lookup_result(pn_actor *inbox) {
  pn_msg *m = next(inbox);
  pn_node_result r;
  PN_ASSERT_OK(pn_msg_node_result(m, &r));
  pn_inbox_release(inbox, m);
  return r;
}

/* Nodes that dial each other at once keep one link a pair: in each round
 * five nodes open one after another, each with every earlier one as a
 * seed, so a newcomer dials them all while the ones that hear of it from
 * others dial it too. Every node sees the other four up once and nothing
 * down, nothing is counted as a breach, and each host ends with four
 * peers. Rounds use other names, so other nodes are arbiters. */
enum { MESH_NODES = 5, MESH_ROUNDS = 4 };

static void nodes_that_dial_each_other_keep_one_link(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  for (int r = 0; r < MESH_ROUNDS; r++) {
    pn_node *nodes[MESH_NODES];
    pn_actor *ev[MESH_NODES];
    pn_addr addrs[MESH_NODES];
    for (int i = 0; i < MESH_NODES; i++) {
      char name[32];
      snprintf(name, sizeof name, "round%d-node%d", r, i);
      pn_node_config cfg = PN_NODE_CONFIG_INIT;
      cfg.name = name;
      cfg.seeds = addrs;
      cfg.seed_count = (uint32_t)i;
      PN_ASSERT_OK(pn_node_open(rt, &cfg, &nodes[i]));
      PN_ASSERT_OK(pn_node_addr(nodes[i], &addrs[i]));
      PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev[i]));
      PN_ASSERT_OK(pn_node_subscribe(nodes[i], ev[i]));
    }
    for (int i = 0; i < MESH_NODES; i++) {
      expect_ups(ev[i], MESH_NODES - 1);
    }
    for (int i = 0; i < MESH_NODES; i++) {
      pn_host_stats hs = {0};
      for (uint64_t t0 = net_now_ms(); net_now_ms() - t0 < NET_WAIT_MS;) {
        PN_ASSERT_OK(pn_host_stats_get(nodes[i]->host, &hs));
        if (hs.peers == MESH_NODES - 1) {
          break;
        }
        sched_yield(); /* a duplicate link still closing */
      }
      assert_int_equal(hs.peers, MESH_NODES - 1);
      assert_int_equal(node_stats(nodes[i]).dropped_bad, 0);
      pn_msg *m = NULL;
      assert_int_equal(pn_inbox_receive(ev[i], 0, &m), PN_ETIMEDOUT);
    }
    for (int i = MESH_NODES - 1; i >= 0; i--) {
      pn_node_close(nodes[i]);
      PN_ASSERT_OK(pn_inbox_close(ev[i]));
    }
  }
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
}

/* Names: registered on one node, looked up from it and from another
 * ("alpha/echo"), answered with the reference that reaches the actor;
 * unknown names, unknown nodes and a node that left get clear errors. */
static void names_and_lookups(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *ev = NULL, *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  PN_ASSERT_OK(pn_inbox_open(rt, "answers", &got));
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(b, ev));
  expect_ups(ev, 1);
  wait_linked(rt, a, b);
  echo e = {.node = a};
  PN_ASSERT_OK(pn_node_ref(b, got, &e.reply));
  pn_actor *ea = pn_test_spawn(rt, "echo", echo_handler, &e, -1);
  PN_ASSERT_OK(pn_node_register(a, "echo", ea));
  assert_int_equal(pn_node_register(a, "echo", ea), PN_EEXIST);
  assert_int_equal(pn_node_register(a, "no/slash", ea), PN_EINVAL);

  /* Here, and from beta: the same reference. */
  PN_ASSERT_OK(pn_node_lookup(a, "echo", got, 1));
  pn_node_result here = lookup_result(got);
  assert_int_equal(here.tag, 1);
  assert_int_equal(here.status, PN_OK);
  PN_ASSERT_OK(pn_node_lookup(b, "alpha/echo", got, 2));
  pn_node_result there = lookup_result(got);
  assert_int_equal(there.tag, 2);
  assert_int_equal(there.status, PN_OK);
  assert_true(pn_ref_equal(&here.ref, &there.ref));
  uint32_t v = 5;
  PN_ASSERT_OK(pn_node_send(b, &there.ref, MSG, &v, sizeof v));
  pn_msg *m = next(got);
  assert_int_equal(pn_msg_type(m), MSG);
  pn_inbox_release(got, m);

  /* No such name there; no such node; bad paths. */
  PN_ASSERT_OK(pn_node_lookup(b, "alpha/nobody", got, 3));
  pn_node_result none = lookup_result(got);
  assert_int_equal(none.tag, 3);
  assert_int_equal(none.status, PN_ENOENT);
  PN_ASSERT_OK(pn_node_lookup(b, "delta/echo", got, 4));
  assert_int_equal(lookup_result(got).status, PN_EUNREACHABLE);
  assert_int_equal(pn_node_lookup(b, "alpha/", got, 5), PN_EINVAL);
  assert_int_equal(pn_node_lookup(b, "/echo", got, 5), PN_EINVAL);
  assert_int_equal(pn_node_lookup(b, "a b/echo", got, 5), PN_EINVAL);

  /* Unregistered: gone by name (the reference still reaches it). */
  PN_ASSERT_OK(pn_node_unregister(a, "echo"));
  assert_int_equal(pn_node_unregister(a, "echo"), PN_ENOENT);
  PN_ASSERT_OK(pn_node_lookup(b, "alpha/echo", got, 6));
  assert_int_equal(lookup_result(got).status, PN_ENOENT);

  /* alpha leaves: a lookup of it is unreachable. */
  pn_node_close(a);
  m = next(ev);
  assert_int_equal(pn_msg_type(m), PN_MSG_NODE_DOWN);
  pn_inbox_release(ev, m);
  PN_ASSERT_OK(pn_node_lookup(b, "alpha/echo", got, 7));
  pn_node_result late = lookup_result(got);
  assert_int_equal(late.tag, 7);
  assert_int_equal(late.status, PN_EUNREACHABLE);

  pn_node_close(b);
  PN_ASSERT_OK(pn_actor_stop(ea));
  pn_actor_release(ea);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(ev));
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_test_runtime_end(rt);
}

/* The behaviour "echo": an echo actor whose argument is the reference it
 * answers (its node is the spawn context). */
static echo spawned_echo[4];
static unsigned nspawned;

static pn_err spawn_echo(void *ctx, pn_runtime *rt, const void *arg, size_t len,
                         pn_actor **out) {
  if (len != sizeof(pn_ref) || nspawned == 4) {
    return PN_EINVAL;
  }
  echo *e = &spawned_echo[nspawned++];
  e->node = ctx;
  memcpy(&e->reply, arg, sizeof e->reply);
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = "spawned-echo";
  ac.handler = echo_handler;
  ac.state = e;
  return pn_spawn(rt, &ac, out);
}

/* The next PN_MSG_NODE_SPAWNED on the inbox. */
static pn_node_result spawn_result(pn_actor *inbox) {
  pn_msg *m = next(inbox);
  pn_node_result r;
  assert_int_equal(pn_msg_type(m), PN_MSG_NODE_SPAWNED);
  PN_ASSERT_OK(pn_msg_node_result(m, &r));
  pn_inbox_release(inbox, m);
  return r;
}

/* Remote spawn: beta spawns an echo on alpha by behaviour name, with an
 * argument; the reply carries the new actor's reference, which works.
 * Unknown behaviours, refused arguments and unknown nodes get clear
 * errors; a spawn on this node answers at once. */
static void spawn_on_another_node(void **state) {
  (void)state;
  nspawned = 0;
  pn_runtime *rt = net_runtime();
  pn_actor *ev = NULL, *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  PN_ASSERT_OK(pn_inbox_open(rt, "answers", &got));
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  PN_ASSERT_OK(pn_node_subscribe(a, got));
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(b, ev));
  expect_ups(ev, 1);
  expect_ups(got, 1);
  PN_ASSERT_OK(pn_node_behaviour(a, "echo", spawn_echo, a));
  assert_int_equal(pn_node_behaviour(a, "echo", spawn_echo, a), PN_EEXIST);
  PN_ASSERT_OK(pn_node_behaviour(b, "echo", spawn_echo, b));
  pn_ref back;
  PN_ASSERT_OK(pn_node_ref(b, got, &back));

  PN_ASSERT_OK(pn_node_spawn(b, "alpha", "echo", &back, sizeof back, got, 11));
  pn_node_result r = spawn_result(got);
  assert_int_equal(r.tag, 11);
  assert_int_equal(r.status, PN_OK);
  pn_ref ra = pn_node_self(a);
  assert_int_equal(r.ref.node, ra.node);
  assert_int_equal(r.ref.incarnation, ra.incarnation);
  uint32_t v = 9;
  PN_ASSERT_OK(pn_node_send(b, &r.ref, MSG, &v, sizeof v));
  pn_msg *m = next(got);
  assert_int_equal(pn_msg_type(m), MSG);
  pn_inbox_release(got, m);

  /* Here: answered at once. */
  PN_ASSERT_OK(pn_node_spawn(b, NULL, "echo", &back, sizeof back, got, 12));
  r = spawn_result(got);
  assert_int_equal(r.status, PN_OK);
  pn_ref rb = pn_node_self(b);
  assert_int_equal(r.ref.node, rb.node);

  /* Unknown behaviour; an argument the behaviour refuses; no such node. */
  PN_ASSERT_OK(pn_node_spawn(b, "alpha", "nothing", NULL, 0, got, 13));
  assert_int_equal(spawn_result(got).status, PN_ENOENT);
  PN_ASSERT_OK(pn_node_spawn(b, "alpha", "echo", "x", 1, got, 14));
  r = spawn_result(got);
  assert_int_equal(r.tag, 14);
  assert_int_equal(r.status, PN_EINVAL);
  PN_ASSERT_OK(pn_node_spawn(b, "delta", "echo", NULL, 0, got, 15));
  assert_int_equal(spawn_result(got).status, PN_EUNREACHABLE);
  static uint8_t big[PN_NODE_SPAWN_ARG_MAX + 1];
  assert_int_equal(pn_node_spawn(b, "alpha", "echo", big, sizeof big, got, 16),
                   PN_ERANGE);
  assert_int_equal(pn_node_spawn(b, "a b", "echo", NULL, 0, got, 16),
                   PN_EINVAL);

  pn_node_close(b);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(ev));
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_test_runtime_end(rt);
}

/* A node that leaves delivers what it sent first: the others see its
 * last messages, then its DOWN (PN_NODE_REASON_LEFT). */
static void leaving_delivers_what_was_sent(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *ev = NULL, *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  PN_ASSERT_OK(pn_inbox_open(rt, "got", &got));
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  PN_ASSERT_OK(pn_node_subscribe(a, got)); /* alpha sees beta up first */
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(b, ev));
  expect_ups(ev, 1);
  expect_ups(got, 1);
  pn_ref to;
  PN_ASSERT_OK(pn_node_ref(b, got, &to));
  enum { LAST = 200 };
  for (uint32_t i = 1; i <= LAST; i++) {
    PN_ASSERT_OK(pn_node_send(a, &to, MSG, &i, sizeof i));
  }
  pn_node_close(a);
  for (uint32_t i = 1; i <= LAST; i++) {
    pn_msg *m = next(got);
    uint32_t v;
    memcpy(&v, pn_msg_data(m), sizeof v);
    assert_int_equal(v, i);
    pn_inbox_release(got, m);
  }
  pn_msg *m = next(ev);
  pn_node_event de;
  PN_ASSERT_OK(pn_msg_node_event(m, &de));
  assert_int_equal(pn_msg_type(m), PN_MSG_NODE_DOWN);
  assert_int_equal(de.reason, PN_NODE_REASON_LEFT);
  pn_inbox_release(ev, m);
  pn_node_close(b);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(ev));
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_test_runtime_end(rt);
}

/* A node that goes silent (every datagram it sends or receives dropped,
 * as when its machine dies) is seen down by the other within about
 * detect_us (here the default, 1 s): the time is printed. */
static void silent_node_detected(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *ev = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(a, ev));
  expect_ups(ev, 1);
  pn_link_conditioner dead = PN_LINK_CONDITIONER_INIT;
  dead.loss = 1.0;
  PN_ASSERT_OK(pn_host_set_conditioner(b->host, 0, PN_DIR_SEND, &dead));
  PN_ASSERT_OK(pn_host_set_conditioner(b->host, 0, PN_DIR_RECV, &dead));
  uint64_t t0 = net_now_ms();
  pn_msg *m = next(ev);
  uint64_t took = net_now_ms() - t0;
  pn_node_event de;
  PN_ASSERT_OK(pn_msg_node_event(m, &de));
  assert_int_equal(pn_msg_type(m), PN_MSG_NODE_DOWN);
  assert_string_equal(de.name, "beta");
  fprintf(stderr, "# beta silent: down after %" PRIu64 " ms (%s)\n", took,
          pn_reason_name(de.reason));
  pn_inbox_release(ev, m);
  pn_node_close(b);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(ev));
  pn_test_runtime_end(rt);
}

/* Two nodes on one runtime, alpha's events in `ev` (beta up already), and
 * an inbox `in` for the test. */
typedef struct two_nodes {
  pn_runtime *rt;
  pn_actor *ev, *in;
  pn_node *a, *b;
} two_nodes;

static void two_nodes_open(two_nodes *t, const char *in_name) {
  t->rt = net_runtime();
  PN_ASSERT_OK(pn_inbox_open(t->rt, "node-events", &t->ev));
  PN_ASSERT_OK(pn_inbox_open(t->rt, in_name, &t->in));
  t->a = open_node(t->rt, "alpha", NULL, NULL);
  t->b = open_node(t->rt, "beta", t->a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(t->a, t->ev));
  expect_ups(t->ev, 1);
  wait_linked(t->rt, t->a, t->b);
}

/* Closes both nodes and the runtime; proves nothing leaked. */
static void two_nodes_close(two_nodes *t) {
  pn_node_close(t->b);
  pn_node_close(t->a);
  PN_ASSERT_OK(pn_runtime_shutdown(t->rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(t->ev));
  PN_ASSERT_OK(pn_inbox_close(t->in));
  pn_test_runtime_end(t->rt);
}

static void idle_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

/* The next message of the inbox, a PN_MSG_DOWN. */
static pn_down next_down(pn_actor *inbox) {
  pn_msg *m = next(inbox);
  pn_down d;
  PN_ASSERT_OK(pn_msg_down(m, &d));
  pn_inbox_release(inbox, m);
  return d;
}

static void expect_down(const pn_down *d, uint64_t monitor, const pn_ref *r,
                        uint32_t reason) {
  assert_int_equal(d->monitor, monitor);
  assert_int_equal(d->actor, r->actor);
  assert_int_equal(d->node, r->node);
  assert_int_equal(d->incarnation, r->incarnation);
  assert_int_equal(d->reason, reason);
}

/* Monitors across nodes: alpha's watcher monitors two of beta's actors
 * (and one of them twice, one removed again). A lookup on beta, behind
 * the monitors on the control lane, proves they are in place. One actor
 * stopped with a reason: one DOWN with it. A reference to no actor:
 * NOPROC; to another run of beta: NOCONNECTION, never another actor; one
 * of alpha's own actors: a DOWN naming alpha. Beta silenced: the other
 * actor's monitor is DOWN, NOCONNECTION, within about detect_us; the
 * removed one never comes. */
static void monitors_across_nodes(void **state) {
  (void)state;
  two_nodes t;
  two_nodes_open(&t, "watcher");
  pn_runtime *rt = t.rt;
  pn_actor *w = t.in;
  pn_node *a = t.a, *b = t.b;
  pn_actor *t1 = pn_test_spawn(rt, "t1", idle_handler, NULL, -1);
  pn_actor *t2 = pn_test_spawn(rt, "t2", idle_handler, NULL, -1);
  pn_actor *t3 = pn_test_spawn(rt, "t3", idle_handler, NULL, -1);
  pn_ref r1, r2, r3;
  PN_ASSERT_OK(pn_node_ref(b, t1, &r1));
  PN_ASSERT_OK(pn_node_ref(b, t2, &r2));
  PN_ASSERT_OK(pn_node_ref(a, t3, &r3));
  PN_ASSERT_OK(pn_node_register(b, "t2", t2));
  uint64_t m1, m2, m2b;
  PN_ASSERT_OK(pn_node_monitor(a, w, &r1, &m1));
  PN_ASSERT_OK(pn_node_monitor(a, w, &r2, &m2));
  PN_ASSERT_OK(pn_node_monitor(a, w, &r2, &m2b));
  assert_true(m1 != m2 && m2 != m2b);
  PN_ASSERT_OK(pn_node_demonitor(a, &r2, m2b));
  PN_ASSERT_OK(pn_node_lookup(a, "beta/t2", w, 1));
  pn_msg *lm = next(w);
  pn_node_result res;
  PN_ASSERT_OK(pn_msg_node_result(lm, &res));
  assert_true(pn_ref_equal(&res.ref, &r2));
  pn_inbox_release(w, lm);

  PN_ASSERT_OK(pn_actor_stop_reason(t1, PN_DOWN_APP + 5));
  pn_down d = next_down(w);
  expect_down(&d, m1, &r1, PN_DOWN_APP + 5);

  uint64_t m3, m4, m5;
  pn_ref nobody = {
      .node = r2.node, .incarnation = r2.incarnation, .actor = 987654321};
  PN_ASSERT_OK(pn_node_monitor(a, w, &nobody, &m3));
  d = next_down(w);
  expect_down(&d, m3, &nobody, PN_DOWN_NOPROC);
  pn_ref earlier = r2;
  earlier.incarnation ^= 1;
  PN_ASSERT_OK(pn_node_monitor(a, w, &earlier, &m4));
  d = next_down(w);
  expect_down(&d, m4, &earlier, PN_DOWN_NOCONNECTION);
  PN_ASSERT_OK(pn_node_monitor(a, w, &r3, &m5));
  PN_ASSERT_OK(pn_actor_stop(t3));
  d = next_down(w);
  expect_down(&d, m5, &r3, PN_DOWN_NORMAL);

  pn_link_conditioner dead = PN_LINK_CONDITIONER_INIT;
  dead.loss = 1.0;
  PN_ASSERT_OK(pn_host_set_conditioner(b->host, 0, PN_DIR_SEND, &dead));
  PN_ASSERT_OK(pn_host_set_conditioner(b->host, 0, PN_DIR_RECV, &dead));
  uint64_t t0 = net_now_ms();
  d = next_down(w);
  fprintf(stderr,
          "# beta silent: its actor's monitor DOWN after %" PRIu64 " ms\n",
          net_now_ms() - t0);
  expect_down(&d, m2, &r2, PN_DOWN_NOCONNECTION);
  pn_msg *more = NULL;
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(w, 0, &more));
  pn_actor_release(t1);
  pn_actor_release(t2);
  pn_actor_release(t3);
  two_nodes_close(&t);
}

/* Flow control: an actor on alpha floods an inbox on beta that nobody
 * reads, with a 64 KiB lane window. It is muted once its lane is out of
 * credit, and beta holds at most two windows; an application thread gets
 * PN_EAGAIN on that lane and changes nothing; the other lane still
 * carries a message to another actor. Read at last, the inbox gets every
 * message in order while alpha never has more than two windows out, and
 * the flooder finishes. */
enum {
  FLOOD = 1500,
  FLOOD_BATCH = 50,
  FLOOD_SIZE = 1000,
  GO = 10,
  FLOODED = 11
};
enum { FLOOD_WINDOW = 64 << 10, FLOOD_COST = FLOOD_SIZE + 64 };
/* The most a lane may have out: two windows and the message that
 * crossed the second. */
enum { FLOOD_OUT_MAX = 2 * FLOOD_WINDOW / FLOOD_COST + 1 };

typedef struct flooder {
  pn_node *node;
  pn_ref to;
  pn_actor *done; /* told FLOODED when every message went */
  uint32_t next;  /* the next message's number */
} flooder;

static void flooder_handler(pn_actor *self, void *state, const pn_msg *msg) {
  flooder *f = state;
  if (pn_msg_type(msg) != GO) {
    return;
  }
  uint8_t buf[FLOOD_SIZE] = {0};
  for (int i = 0; i < FLOOD_BATCH && f->next < FLOOD; i++) {
    memcpy(buf, &f->next, sizeof f->next);
    pn_err err = pn_node_send(f->node, &f->to, MSG, buf, sizeof buf);
    if (err == PN_EAGAIN) {
      break; /* past even an actor's slack: the next GO tries again */
    }
    PN_ASSERT_OK(err);
    f->next++;
  }
  PN_ASSERT_OK(pn_send(f->next < FLOOD ? self : f->done,
                       f->next < FLOOD ? GO : FLOODED, NULL, 0));
}

/* An actor whose id puts its sends on `lane` of `lanes` (ids come in
 * order: at most `lanes` tries). */
static pn_actor *spawn_on_lane(pn_runtime *rt, const char *name, pn_handler h,
                               void *state, uint32_t lane, uint32_t lanes) {
  for (uint32_t i = 0; i <= lanes; i++) {
    pn_actor *a = pn_test_spawn(rt, name, h, state, -1);
    if (1 + pn_actor_id(a) % lanes == lane) {
      return a;
    }
    PN_ASSERT_OK(pn_actor_stop(a));
    pn_actor_release(a);
  }
  fail_msg("no actor on lane %u", lane);
  return NULL;
}

typedef struct flood_wait {
  pn_node *a, *b;
} flood_wait;

/* Alpha muted a sender, and everything it sent has reached beta. */
static bool flood_stalled(void *ctx) {
  flood_wait *w = ctx;
  pn_node_stats sa = node_stats(w->a), sb = node_stats(w->b);
  return sa.senders_muted > 0 && sb.delivered == sa.sent_remote;
}

typedef struct thread_send {
  pn_node *node;
  const pn_ref *to;
} thread_send;

/* One message from this thread, or false on PN_EAGAIN. */
static bool thread_sent(void *ctx) {
  thread_send *ts = ctx;
  uint8_t buf[FLOOD_SIZE] = {0};
  pn_err err = pn_node_send(ts->node, ts->to, MSG, buf, sizeof buf);
  if (err != PN_EAGAIN) {
    PN_ASSERT_OK(err);
  }
  return err == PN_OK;
}

static void flood_to_a_slow_actor_is_bounded(void **state) {
  (void)state;
  test_lanes = 2;
  test_lane_window = FLOOD_WINDOW;
  two_nodes t;
  two_nodes_open(&t, "flooded");
  pn_actor *slow = t.in, *done, *other;
  PN_ASSERT_OK(pn_inbox_open(t.rt, "done", &done));
  PN_ASSERT_OK(pn_inbox_open(t.rt, "other", &other));
  pn_ref to, other_ref;
  PN_ASSERT_OK(pn_node_ref(t.b, slow, &to));
  PN_ASSERT_OK(pn_node_ref(t.b, other, &other_ref));
  /* The flooder on lane 1, where threads send; the asker on lane 2. */
  flooder f = {.node = t.a, .to = to, .done = done};
  pn_actor *fa = spawn_on_lane(t.rt, "flooder", flooder_handler, &f, 1, 2);
  asker k = {.node = t.a, .target = other_ref, .out = done};
  pn_actor *ka = spawn_on_lane(t.rt, "asker", asker_handler, &k, 2, 2);

  PN_ASSERT_OK(pn_send(fa, GO, NULL, 0));
  flood_wait w = {.a = t.a, .b = t.b};
  assert_true(net_wait_until(flood_stalled, &w));
  pn_node_stats sa = node_stats(t.a), sb = node_stats(t.b);
  fprintf(stderr,
          "# stalled: %" PRIu64 " of %d sent, %" PRIu64
          " held by beta (at most %d), muted %" PRIu64 "\n",
          sa.sent_remote, FLOOD, sb.delivered, FLOOD_OUT_MAX, sa.senders_muted);
  assert_true(sb.delivered >= FLOOD_WINDOW / FLOOD_COST);
  assert_true(sb.delivered <= FLOOD_OUT_MAX);

  /* A thread on the stalled lane: refused, nothing sent. */
  uint8_t buf[FLOOD_SIZE] = {0};
  PN_ASSERT_ERR(PN_EAGAIN, pn_node_send(t.a, &to, MSG, buf, sizeof buf));
  pn_node_stats sa2 = node_stats(t.a);
  assert_int_equal(sa2.sent_remote, sa.sent_remote);
  assert_int_equal(sa2.sends_refused, sa.sends_refused + 1);

  /* The other lane flows. */
  PN_ASSERT_OK(pn_send(ka, ASK, NULL, 0));
  pn_msg *m = next(other);
  assert_int_equal(pn_msg_type(m), MSG);
  pn_inbox_release(other, m);

  /* Read at last: every message, in order, never more than two windows
   * out (each released message is consumed at once, on this thread). */
  for (uint32_t i = 0; i < FLOOD; i++) {
    m = next(slow);
    assert_int_equal(pn_msg_type(m), MSG);
    assert_int_equal(pn_msg_size(m), FLOOD_SIZE);
    uint32_t seq;
    memcpy(&seq, pn_msg_data(m), sizeof seq);
    assert_int_equal(seq, i);
    pn_inbox_release(slow, m);
    uint64_t out = node_stats(t.a).sent_remote - 1 - (i + 1);
    assert_true(out <= FLOOD_OUT_MAX);
  }
  m = next(done);
  assert_int_equal(pn_msg_type(m), FLOODED);
  pn_inbox_release(done, m);

  /* Room again for the thread, once beta's last grant has come (a
   * thread retries PN_EAGAIN). */
  thread_send ts = {.node = t.a, .to = &to};
  assert_true(net_wait_until(thread_sent, &ts));
  m = next(slow);
  pn_inbox_release(slow, m);
  sb = node_stats(t.b);
  sa = node_stats(t.a);
  fprintf(stderr, "# drained: flooder muted %" PRIu64 " times\n",
          sa.senders_muted);
  assert_int_equal(sb.delivered, FLOOD + 2);
  assert_int_equal(sb.dropped_bad, 0);

  PN_ASSERT_OK(pn_actor_stop(fa));
  PN_ASSERT_OK(pn_actor_stop(ka));
  pn_actor_release(fa);
  pn_actor_release(ka);
  PN_ASSERT_OK(pn_inbox_close(done));
  PN_ASSERT_OK(pn_inbox_close(other));
  two_nodes_close(&t);
  test_lanes = 0;
  test_lane_window = 0;
}

/* A handler's sends of one run leave together: two actors on one lane
 * (a one-lane link) each send 2,000 small messages in one run; every
 * message arrives, each actor's in its order, in far fewer PeerNet
 * messages than that. */
enum { RUN_SENDS = 2000 };

typedef struct burster {
  pn_node *node;
  pn_ref to;
  uint32_t tag;
} burster;

static void burster_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  burster *b = state;
  if (pn_msg_type(msg) != GO) {
    return;
  }
  for (uint32_t i = 0; i < RUN_SENDS; i++) {
    uint32_t v[2] = {b->tag, i};
    PN_ASSERT_OK(pn_node_send(b->node, &b->to, MSG, v, sizeof v));
  }
}

/* PeerNet messages alpha has sent beta so far. */
static uint64_t link_messages_out(pn_node *a) {
  pthread_rwlock_rdlock(&a->lock);
  assert_int_equal(a->nmembers, 1);
  pn_peer_stats ps;
  PN_ASSERT_OK(pn_peer_stats_get(a->members[0]->link->peer, &ps));
  pthread_rwlock_unlock(&a->lock);
  return ps.messages_out;
}

static void a_run_of_sends_leaves_together(void **state) {
  (void)state;
  test_lanes = 1;
  two_nodes t;
  two_nodes_open(&t, "bursts");
  pn_ref to;
  PN_ASSERT_OK(pn_node_ref(t.b, t.in, &to));
  burster b1 = {.node = t.a, .to = to, .tag = 1};
  burster b2 = {.node = t.a, .to = to, .tag = 2};
  pn_actor *a1 = pn_test_spawn(t.rt, "burst1", burster_handler, &b1, -1);
  pn_actor *a2 = pn_test_spawn(t.rt, "burst2", burster_handler, &b2, -1);
  uint64_t before = link_messages_out(t.a);
  PN_ASSERT_OK(pn_send(a1, GO, NULL, 0));
  PN_ASSERT_OK(pn_send(a2, GO, NULL, 0));
  uint32_t next_of[3] = {0, 0, 0};
  for (int i = 0; i < 2 * RUN_SENDS; i++) {
    pn_msg *m = next(t.in);
    assert_int_equal(pn_msg_size(m), 2 * sizeof(uint32_t));
    uint32_t v[2];
    memcpy(v, pn_msg_data(m), sizeof v);
    assert_true(v[0] == 1 || v[0] == 2);
    assert_int_equal(v[1], next_of[v[0]]++);
    pn_ref from;
    PN_ASSERT_OK(pn_msg_sender(m, &from));
    assert_int_equal(from.actor, pn_actor_id(v[0] == 1 ? a1 : a2));
    pn_inbox_release(t.in, m);
  }
  uint64_t sent = link_messages_out(t.a) - before;
  fprintf(stderr, "# %d messages in %" PRIu64 " PeerNet messages\n",
          2 * RUN_SENDS, sent);
  assert_true(sent * 10 <= 2 * RUN_SENDS);
  PN_ASSERT_OK(pn_actor_stop(a1));
  PN_ASSERT_OK(pn_actor_stop(a2));
  pn_actor_release(a1);
  pn_actor_release(a2);
  two_nodes_close(&t);
  test_lanes = 0;
}

/* protobuf-c payloads: a message packed by pn_node_send_protobuf on alpha
 * arrives on beta and unpacks to the same fields; bytes that are not that
 * message are refused (PN_EINVAL), as are NULLs. */
static void protobuf_payloads(void **state) {
  (void)state;
  two_nodes t;
  two_nodes_open(&t, "got");
  pn_actor *got = t.in;
  pn_node *a = t.a, *b = t.b;
  pn_ref to;
  PN_ASSERT_OK(pn_node_ref(b, got, &to));
  Peernet__Node__V1__Member mb = PEERNET__NODE__V1__MEMBER__INIT;
  mb.name = "gamma";
  mb.incarnation = 0x1122334455667788u;
  mb.addr = "10.0.0.3:7001";
  PN_ASSERT_OK(pn_node_send_protobuf(a, &to, MSG, &mb.base));
  const uint8_t junk[] = {0x0A, 0x7F, 'x'}; /* a string cut short */
  PN_ASSERT_OK(pn_node_send(a, &to, MSG, junk, sizeof junk));
  const ProtobufCMessageDescriptor *desc =
      &peernet__node__v1__member__descriptor;
  ProtobufCMessage *out = NULL;
  pn_msg *m = next(got);
  PN_ASSERT_OK(pn_msg_unpack_protobuf(m, desc, NULL, &out));
  Peernet__Node__V1__Member *back = (Peernet__Node__V1__Member *)out;
  assert_string_equal(back->name, "gamma");
  assert_int_equal(back->incarnation, mb.incarnation);
  assert_string_equal(back->addr, "10.0.0.3:7001");
  protobuf_c_message_free_unpacked(out, NULL);
  pn_inbox_release(got, m);
  m = next(got);
  out = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_msg_unpack_protobuf(m, desc, NULL, &out));
  assert_null(out);
  PN_ASSERT_ERR(PN_EINVAL, pn_msg_unpack_protobuf(NULL, desc, NULL, &out));
  pn_inbox_release(got, m);
  PN_ASSERT_ERR(PN_EINVAL, pn_node_send_protobuf(a, &to, MSG, NULL));
  two_nodes_close(&t);
}

/* Snapshots show the runtime's nodes and their links: alpha and beta,
 * each linked to the other, with the messages sent; the JSON and the
 * Prometheus text carry them. */
static void nodes_in_snapshots(void **state) {
  (void)state;
  two_nodes t;
  two_nodes_open(&t, "got");
  pn_ref to;
  PN_ASSERT_OK(pn_node_ref(t.b, t.in, &to));
  uint32_t v = 1;
  PN_ASSERT_OK(pn_node_send(t.a, &to, MSG, &v, sizeof v));
  pn_inbox_release(t.in, next(t.in));
  /* And one from an actor: its row counts it, the inbox's both. */
  asker k = {.node = t.a, .target = to, .out = t.ev};
  pn_actor *ka = pn_test_spawn(t.rt, "asker", asker_handler, &k, -1);
  PN_ASSERT_OK(pn_send(ka, ASK, NULL, 0));
  pn_inbox_release(t.in, next(t.in));
  pn_snapshot *snap = NULL;
  PN_ASSERT_OK(pn_snapshot_take(t.rt, &snap));
  int rows = 0;
  for (size_t i = 0; i < snap->actor_count; i++) {
    const pn_actor_stats *r = &snap->actors[i];
    if (r->id == pn_actor_id(ka)) {
      assert_int_equal(r->remote_sent, 1);
      assert_int_equal(r->remote_received, 0);
      rows++;
    } else if (r->id == pn_actor_id(t.in)) {
      assert_int_equal(r->remote_sent, 0);
      assert_int_equal(r->remote_received, 2);
      rows++;
    } else {
      assert_int_equal(r->remote_sent + r->remote_received, 0);
    }
  }
  assert_int_equal(rows, 2);
  assert_int_equal(snap->node_count, 2);
  assert_int_equal(snap->node_link_count, 2);
  size_t li = 0;
  for (size_t i = 0; i < snap->node_count; i++) {
    const pn_local_node_info *n = &snap->nodes[i];
    bool alpha = strcmp(n->name, "alpha") == 0;
    assert_true(alpha || strcmp(n->name, "beta") == 0);
    assert_int_equal(n->links, 1);
    assert_int_equal(n->link_count, 1);
    const pn_node_link_info *l = &snap->node_links[li++];
    assert_int_equal(l->node_id, n->id);
    assert_string_equal(l->name, alpha ? "beta" : "alpha");
    assert_true(l->peer_id != 0);
    assert_int_equal(alpha ? n->sent_remote : n->delivered, 2);
    assert_int_equal(alpha ? l->messages_out : l->messages_in, 2);
  }
  char *json = NULL, *prom = NULL;
  PN_ASSERT_OK(pn_snapshot_json(snap, &json, NULL));
  assert_true(pn_test_json_valid(json));
  assert_non_null(strstr(json, "\"nodes\":[{\"name\":"));
  PN_ASSERT_OK(pn_snapshot_prometheus(snap, &prom, NULL));
  assert_non_null(strstr(json, "\"remote_received\":2"));
  assert_non_null(
      strstr(prom, "peernet_node_sent_remote_total{node=\"alpha\"} 2"));
  assert_non_null(strstr(prom, "peernet_node_link_messages_in_total{"));
  assert_non_null(strstr(prom, "peernet_actor_remote_sent_total{"));
  pn_free(json);
  pn_free(prom);
  pn_snapshot_free(snap);
  PN_ASSERT_OK(pn_actor_stop(ka));
  pn_actor_release(ka);
  two_nodes_close(&t);
}

/* The flight recorder shows remote sends and deliveries: an actor on
 * alpha that sends to beta's inbox (remote_send, with its id and the
 * receiver's) and beta's delivery (remote_deliver), in the dump. */
static void remote_sends_in_traces(void **state) {
  (void)state;
  char path[64];
  snprintf(path, sizeof path, "/tmp/pn-node-trace-%d.json", (int)getpid());
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.io = net_backend;
  cfg.trace_path = path;
  cfg.trace_events = 4096;
  cfg.trace_categories = PN_TRACE_NODE;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  pn_actor *ev = NULL, *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  PN_ASSERT_OK(pn_inbox_open(rt, "got", &got));
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  pn_node *b = open_node(rt, "beta", a, NULL);
  PN_ASSERT_OK(pn_node_subscribe(a, ev));
  expect_ups(ev, 1);
  wait_linked(rt, a, b);
  echo e = {.node = a};
  PN_ASSERT_OK(pn_node_ref(b, got, &e.reply));
  pn_actor *ea = pn_test_spawn(rt, "echo", echo_handler, &e, -1);
  pn_ref er;
  PN_ASSERT_OK(pn_node_ref(a, ea, &er));
  uint32_t v = 9;
  PN_ASSERT_OK(pn_node_send(b, &er, MSG, &v, sizeof v)); /* beta -> echo */
  pn_inbox_release(got, next(got)); /* echo (alpha) -> beta's inbox */
  pn_node_close(b);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_trace_dump(rt, path));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_actor_release(ea);
  PN_ASSERT_OK(pn_inbox_close(ev));
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_test_runtime_end(rt);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char text[1 << 20];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  unlink(path);
  text[len] = 0;
  assert_true(pn_test_json_valid(text));
  assert_non_null(strstr(text, "\"remote_send\""));
  assert_non_null(strstr(text, "\"remote_deliver\""));
}

/* A node with another cluster key is refused; one with none too. */
static void cluster_key_keeps_others_out(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  uint8_t k1[32], k2[32];
  memset(k1, 1, sizeof k1);
  memset(k2, 2, sizeof k2);
  pn_actor *ev = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "node-events", &ev));
  pn_node *a = open_node(rt, "alpha", NULL, k1);
  PN_ASSERT_OK(pn_node_subscribe(a, ev));
  pn_node *intruder = open_node(rt, "intruder", a, k2);
  pn_node *friend = open_node(rt, "friend", a, k1);
  pn_msg *m = next(ev);
  pn_node_event e;
  PN_ASSERT_OK(pn_msg_node_event(m, &e));
  assert_string_equal(e.name, "friend");
  pn_inbox_release(ev, m);
  size_t count = 0;
  PN_ASSERT_OK(pn_node_list(intruder, NULL, 0, &count));
  assert_int_equal(count, 0);
  pn_node_close(intruder);
  pn_node_close(friend);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(ev));
  pn_test_runtime_end(rt);
}

/* A PeerNet client that is not a node, or one that breaks the link
 * protocol: garbage on lane 0 or on a lane, an Accept before any Hello,
 * an Accept from the end that is not the arbiter, a second Hello. Each is
 * counted and costs it its link. */
enum {
  BREAK_JUNK0,
  BREAK_JUNK1,
  BREAK_EARLY_ACCEPT,
  BREAK_FOLLOWER_ACCEPT,
  BREAK_HELLO_TWICE,
  BREAK_ROUNDS
};

static void send_control(pn_peer *p, const Peernet__Node__V1__Control *c) {
  uint8_t buf[256];
  size_t len = peernet__node__v1__control__get_packed_size(c);
  assert_true(len <= sizeof buf);
  peernet__node__v1__control__pack(c, buf);
  PN_ASSERT_OK(pn_channel_send(pn_peer_channel(p, 0), buf, len, NULL));
}

/* A Hello from `name`, as a node of this version would send it. */
static void send_hello(pn_peer *p, const char *name) {
  Peernet__Node__V1__Hello h = PEERNET__NODE__V1__HELLO__INIT;
  h.version = PN__NODE_VERSION;
  h.name = (char *)name;
  h.incarnation = 77;
  h.lanes = 8;
  h.lane_window = 1u << 20;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_HELLO;
  c.hello = &h;
  send_control(p, &c);
}

static void send_accept(pn_peer *p) {
  Peernet__Node__V1__Accept a = PEERNET__NODE__V1__ACCEPT__INIT;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_ACCEPT;
  c.accept = &a;
  send_control(p, &c);
}

static void break_protocol(pn_peer *p, int how, uint64_t node_id) {
  static const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
  char name[32];
  switch (how) {
  case BREAK_JUNK0:
  case BREAK_JUNK1:
    PN_ASSERT_OK(pn_channel_send(pn_peer_channel(p, how == BREAK_JUNK1), junk,
                                 sizeof junk, NULL));
    break;
  case BREAK_EARLY_ACCEPT:
    send_accept(p);
    break;
  case BREAK_FOLLOWER_ACCEPT:
    /* A name whose id is above the node's: the node is the arbiter. */
    for (int i = 0;; i++) {
      snprintf(name, sizeof name, "follower%d", i);
      if (pn__node_id_of(name) > node_id) {
        break;
      }
    }
    send_hello(p, name);
    send_accept(p);
    break;
  default:
    send_hello(p, "twice");
    send_hello(p, "twice");
    break;
  }
}

static void protocol_breakers_dropped(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_node_addr(a, &to));
  net_app app[BREAK_ROUNDS];
  for (int round = 0; round < BREAK_ROUNDS; round++) {
    net_app_init(&app[round], 4);
    pn_test_latch connected, gone;
    pn_test_latch_init(&connected, 1);
    pn_test_latch_init(&gone, 1);
    app[round].on_connect = &connected;
    app[round].on_disconnect = &gone;
    pn_actor *owner =
        pn_test_spawn(rt, "breaker", net_app_handler, &app[round], -1);
    pn_host *h = net_host(rt, NULL, NULL, NULL);
    pn_peer *p = net_connect(h, &to, owner, 9, NULL, 0);
    assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
    break_protocol(p, round, pn_node_self(a).node);
    assert_true(pn_test_latch_wait(&gone, NET_WAIT_MS));
    assert_int_equal(node_stats(a).dropped_bad, (uint64_t)round + 1);
    pn_peer_release(p);
    pn_host_close(h);
    /* the latches are gone once this round ends */
    pthread_mutex_lock(&app[round].lock);
    app[round].on_connect = app[round].on_disconnect = NULL;
    pthread_mutex_unlock(&app[round].lock);
    PN_ASSERT_OK(pn_actor_stop(owner));
    pn_actor_release(owner);
    pn_test_latch_fini(&connected);
    pn_test_latch_fini(&gone);
  }
  /* The breakers' links are gone, and the member one was taken for. */
  for (uint64_t t0 = net_now_ms();
       node_stats(a).nodes && net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
  }
  assert_int_equal(node_stats(a).nodes, 0);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  for (int round = 0; round < BREAK_ROUNDS; round++) {
    pn_peer_release(app[round].peer);
  }
  pn_test_runtime_end(rt);
  for (int round = 0; round < BREAK_ROUNDS; round++) {
    net_app_fini(&app[round]);
  }
}

/* A Batch from the arbiter that overtakes its Hello and Accept (lane 0
 * is a channel of its own) is held, and delivered once the Accept came:
 * a client named so that it is the arbiter sends a message to an actor
 * on alpha on lane 1 first, then Hello and Accept on lane 0. */
static void arbiters_batch_before_its_accept_is_held(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_node *a = open_node(rt, "alpha", NULL, NULL);
  pn_actor *got = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "got", &got));
  pn_ref to;
  PN_ASSERT_OK(pn_node_ref(a, got, &to));
  pn_addr addr;
  PN_ASSERT_OK(pn_node_addr(a, &addr));
  net_app app;
  net_app_init(&app, 4);
  pn_actor *owner = pn_test_spawn(rt, "arbiter", net_app_handler, &app, -1);
  pn_host *h = net_host(rt, NULL, NULL, NULL);
  pn_test_latch connected;
  pn_test_latch_init(&connected, 1);
  app.on_connect = &connected;
  pn_peer *p = net_connect(h, &addr, owner, 9, NULL, 0);
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));
  char name[32];
  for (int i = 0;; i++) {
    snprintf(name, sizeof name, "arbiter%d", i);
    if (pn__node_id_of(name) < to.node) {
      break;
    }
  }
  uint32_t v = 1234;
  pn__envelope e = {.to_actor = to.actor,
                    .to_incarnation = to.incarnation,
                    .type = MSG,
                    .payload = (const uint8_t *)&v,
                    .len = sizeof v};
  uint8_t batch[64];
  assert_true(pn__batch_entry_size(&e) <= sizeof batch);
  size_t len = (size_t)(pn__batch_put(batch, &e) - batch);
  PN_ASSERT_OK(pn_channel_send(pn_peer_channel(p, 1), batch, len, NULL));
  send_hello(p, name);
  send_accept(p);
  pn_msg *m = next(got);
  assert_int_equal(pn_msg_type(m), MSG);
  assert_int_equal(pn_msg_size(m), sizeof v);
  assert_memory_equal(pn_msg_data(m), &v, sizeof v);
  pn_inbox_release(got, m);
  assert_int_equal(node_stats(a).dropped_bad, 0);
  assert_int_equal(node_stats(a).nodes, 1);
  pthread_mutex_lock(&app.lock);
  app.on_connect = NULL;
  pthread_mutex_unlock(&app.lock);
  pn_peer_release(p);
  pn_host_close(h);
  PN_ASSERT_OK(pn_actor_stop(owner));
  pn_actor_release(owner);
  pn_test_latch_fini(&connected);
  pn_node_close(a);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  PN_ASSERT_OK(pn_inbox_close(got));
  pn_peer_release(app.peer);
  pn_test_runtime_end(rt);
  net_app_fini(&app);
}

/* Bad arguments change nothing and say why. */
static void bad_arguments(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_node_config cfg = PN_NODE_CONFIG_INIT;
  pn_node *n = NULL;
  assert_int_equal(pn_node_open(rt, &cfg, &n), PN_EINVAL); /* no name */
  cfg.name = "bad name";
  assert_int_equal(pn_node_open(rt, &cfg, &n), PN_EINVAL);
  cfg.name = "ok";
  cfg.lanes = PN_NODE_LANES_MAX + 1;
  assert_int_equal(pn_node_open(rt, &cfg, &n), PN_EINVAL);
  cfg.lanes = 0;
  cfg.detect_us = 1000;
  assert_int_equal(pn_node_open(rt, &cfg, &n), PN_EINVAL);
  cfg.detect_us = 0;
  pn_addr bad = {0};
  cfg.seeds = &bad;
  cfg.seed_count = 1;
  assert_int_equal(pn_node_open(rt, &cfg, &n), PN_EINVAL);
  assert_null(n);
  pn_ref r = {1, 2, 3};
  char small[8];
  assert_int_equal(pn_ref_format(&r, small, sizeof small), PN_ERANGE);
  assert_int_equal(pn_node_send(NULL, &r, 1, NULL, 0), PN_EINVAL);
  assert_int_equal(pn_msg_sender(NULL, &r), PN_EINVAL);
  uint64_t mon = 0;
  assert_int_equal(pn_node_monitor(NULL, NULL, &r, &mon), PN_EINVAL);
  assert_int_equal(pn_node_demonitor(NULL, &r, 1), PN_EINVAL);
  assert_int_equal(mon, 0);
  pn_ref s = r;
  assert_true(pn_ref_equal(&r, &s) && pn_ref_hash(&r) == pn_ref_hash(&s));
  s.actor++;
  assert_false(pn_ref_equal(&r, &s));
  assert_true(pn_ref_hash(&r) != pn_ref_hash(&s));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_test_runtime_end(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(three_nodes_mesh_and_message),
      cmocka_unit_test(nodes_that_dial_each_other_keep_one_link),
      cmocka_unit_test(names_and_lookups),
      cmocka_unit_test(spawn_on_another_node),
      cmocka_unit_test(leaving_delivers_what_was_sent),
      cmocka_unit_test(silent_node_detected),
      cmocka_unit_test(monitors_across_nodes),
      cmocka_unit_test(flood_to_a_slow_actor_is_bounded),
      cmocka_unit_test(a_run_of_sends_leaves_together),
      cmocka_unit_test(protobuf_payloads),
      cmocka_unit_test(nodes_in_snapshots),
      cmocka_unit_test(remote_sends_in_traces),
      cmocka_unit_test(cluster_key_keeps_others_out),
      cmocka_unit_test(protocol_breakers_dropped),
      cmocka_unit_test(arbiters_batch_before_its_accept_is_held),
      cmocka_unit_test(bad_arguments),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
