/* The README's two-node example. Exit 0: b's echo answered; b's leave seen. */
#include <peernet/peernet.h>
#include <stdio.h>
#include <string.h>

static pn_node *b;
static void echo(pn_actor *self, void *state, const pn_msg *msg) {
  pn_ref to; /* the reply address travels in the message */
  if (pn_msg_size(msg) == sizeof to && memcpy(&to, pn_msg_data(msg), sizeof to))
    pn_node_send(b, &to, 2, "pong", 5);
  (void)self, (void)state;
}

static pn_msg *wait_for(pn_actor *inbox, uint32_t type) { /* 5 s at most */
  for (pn_msg *m; pn_inbox_receive(inbox, 5000000, &m) == PN_OK;) {
    if (pn_msg_type(m) == type)
      return m;
    pn_inbox_release(inbox, m); /* not what we wait for */
  }
  return NULL;
}

int main(void) { /* a and b: two runtimes, as two processes would be */
  pn_runtime *ra, *rb;
  pn_node *a;
  pn_actor *inbox, *e;
  pn_addr seed;
  pn_node_config ca = PN_NODE_CONFIG_INIT, cb = PN_NODE_CONFIG_INIT;
  ca.name = "a", cb.name = "b", cb.seeds = &seed, cb.seed_count = 1;
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.handler = echo;
  if (pn_runtime_create(NULL, &ra) || pn_runtime_create(NULL, &rb) ||
      pn_inbox_open(ra, "a", &inbox) || pn_node_open(ra, &ca, &a) ||
      pn_node_subscribe(a, inbox) || pn_node_addr(a, &seed) ||
      pn_node_open(rb, &cb, &b) || pn_spawn(rb, &ac, &e) ||
      pn_node_register(b, "echo", e))
    return 1;
  pn_inbox_release(inbox, wait_for(inbox, PN_MSG_NODE_UP)); /* b joined */
  pn_node_lookup(a, "b/echo", inbox, 0);
  pn_msg *m = wait_for(inbox, PN_MSG_NODE_LOOKUP);
  pn_node_result r;
  pn_ref me;
  if (pn_msg_node_result(m, &r) || r.status || pn_node_ref(a, inbox, &me) ||
      pn_node_send(a, &r.ref, 1, &me, sizeof me))
    return 1;
  pn_inbox_release(inbox, m);
  int got = (m = wait_for(inbox, 2)) != NULL; /* b's echo answers */
  printf("a got \"%s\" from b/echo\n", got ? (char *)pn_msg_data(m) : "");
  pn_inbox_release(inbox, m);
  pn_down d = {.reason = 99};
  pn_node_monitor(a, inbox, &r.ref, &d.monitor);
  pn_node_close(b); /* b leaves: a's monitor of its echo fires */
  m = wait_for(inbox, PN_MSG_DOWN);
  pn_msg_down(m, &d), pn_inbox_release(inbox, m);
  printf("b/echo is down, reason %u (2: no connection)\n", d.reason);
  pn_node_close(a), pn_actor_release(e), pn_runtime_destroy(rb);
  pn_inbox_close(inbox), pn_runtime_destroy(ra);
  return !got || d.reason != PN_DOWN_NOCONNECTION;
}
