/* A server host, client hosts and recording owner actors over loopback,
 * shared by the connection tests. Everything waits on latches with
 * deadlines; nothing sleeps. */
#ifndef PN_TEST_NET_HARNESS_H
#define PN_TEST_NET_HARNESS_H

#include <pthread.h>

#include "tests/support/test_support.h"

/* What an owner actor saw. Written by its handler, read by the test after
 * a latch (which orders the accesses). */
typedef struct net_app {
  pthread_mutex_t lock;
  bool echo;     /* send every packet back on its channel */
  pn_peer *peer; /* the first connected peer, held */
  uint64_t connected, disconnected, packets, acked, lost, bad, writable;
  uint32_t reason; /* of the last disconnect */
  bool remote;
  uint64_t *ids;      /* msg_id of each packet, in arrival order */
  uint32_t *channels; /* channel of each packet */
  size_t cap;
  uint64_t *acked_ids; /* ids of PN_MSG_PEER_ACKED, in arrival order */
  uint64_t *lost_ids;
  size_t acked_cap;
  uint64_t rtt_sum_us;
  pn_test_latch *on_connect; /* counted down per event when set */
  pn_test_latch *on_disconnect;
  pn_test_latch *on_packet;
  pn_test_latch *on_resolved; /* acked or lost */
  pn_test_latch *on_writable;
  uint64_t signal_id;       /* a packet with this id ... */
  uint32_t signal_channel;  /* ... on this channel ... */
  pn_test_latch *on_signal; /* ... counts this down */
} net_app;

/* Payload used by the tests: id in the first 8 bytes, then bytes derived
 * from it, so corruption is visible. */
void net_fill(uint8_t *buf, size_t len, uint64_t id);
bool net_check(const uint8_t *buf, size_t len, uint64_t *id_out);

void net_app_init(net_app *a, size_t cap);
void net_app_fini(net_app *a);
void net_app_handler(pn_actor *self, void *state, const pn_msg *msg);

/* The backend under test (set by the group setup). */
extern pn_io_backend net_backend;
/* When set, net_runtime() turns the flight recorder on, dumping here. */
extern const char *net_trace_path;
pn_runtime *net_runtime(void);

/* A host on 127.0.0.1 (port 0) homed on `home`, accepting into
 * accept_owner when not NULL. cfg may be NULL for defaults; its socket
 * fields are filled here. */
pn_host *net_host(pn_runtime *rt, pn_actor *accept_owner, pn_host_config *cfg,
                  const pn_link_conditioner *send_cond);

/* Runs the group on both backends (uring skipped loudly if refused). */
int net_run_groups(const struct CMUnitTest *tests, size_t n);

#endif
