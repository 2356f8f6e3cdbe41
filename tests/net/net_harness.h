/* A server host, client hosts and recording owner actors over loopback,
 * shared by the connection tests. Everything waits on latches with
 * deadlines; nothing sleeps. */
#ifndef PN_TEST_NET_HARNESS_H
#define PN_TEST_NET_HARNESS_H

#include <pthread.h>

#include "tests/support/test_support.h"

/* How long a test waits for any one thing before it fails. */
#define NET_WAIT_MS 10000

/* What an owner actor saw. Written by its handler, read by the test after
 * a latch (which orders the accesses). */
typedef struct net_app {
  pthread_mutex_t lock;
  bool echo;     /* send every packet back on its channel */
  pn_peer *peer; /* the first connected peer, held */
  uint64_t connected, disconnected, packets, acked, lost, bad, writable;
  uint32_t reason; /* of the last disconnect */
  bool remote;
  uint64_t *ids;       /* net_fill id of each packet, in arrival order */
  uint64_t *acked_ids; /* ids of PN_MSG_PEER_ACKED, in arrival order */
  size_t cap;          /* entries of each; later events are only counted */
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

/* The same with `nsockets` sockets (1..32), each on a free port. */
pn_host *net_host_sockets(pn_runtime *rt, pn_actor *accept_owner,
                          pn_host_config *cfg, uint32_t nsockets);

/* Connects client to `to` for owner (sockets_mask 0: socket 0) and
 * returns the caller's handle, or fails the test. */
pn_peer *net_connect(pn_host *client, const pn_addr *to, pn_actor *owner,
                     uint32_t nch, const pn_channel_kind *kinds,
                     uint32_t sockets_mask);

/* Monotonic milliseconds, for deadlines and the durations tests print. */
uint64_t net_now_ms(void);

/* Polls cond(ctx), yielding between looks, until it holds (true) or
 * NET_WAIT_MS pass (false): for states nothing signals, such as a sender
 * parked by flow control. */
bool net_wait_until(bool (*cond)(void *), void *ctx);

/* Statistics, or fail the test. */
pn_host_stats net_host_stats(const pn_host *h);
pn_peer_stats net_peer_stats(const pn_peer *p);
/* The statistics of the runtime's one socket bound to `local`. */
pn_socket_stats net_socket_stats(pn_runtime *rt, const pn_addr *local);

/* One line of counters on stderr, for a failure's context. */
void net_print_host(const char *name, const pn_host *h);
void net_print_peer(const char *name, const pn_peer *p);

/* Sends messages 1..n of min_len..max_len bytes (lengths from *rng,
 * net_fill payloads) and asserts each got the next message id. Each
 * PN_EAGAIN (backpressure: acknowledgements make room) is waited out for
 * up to NET_WAIT_MS. */
void net_send_n(pn_channel *ch, uint64_t n, size_t min_len, size_t max_len,
                uint64_t *rng);

/* Sends net_fill payloads of len bytes with ids first..last, waiting out
 * PN_EAGAIN the same way. */
void net_send_range(pn_channel *ch, uint64_t first, uint64_t last, size_t len);

/* --- a connected pair ----------------------------------------------------
 * A runtime with a server host (worker 0, accepting into server_app) and a
 * client host (worker 1) whose one peer, owned by client_app, connects to
 * the server. Both apps count `connected` and `disconnected` down. */

#define NET_PAIR_ADOPTED 4

typedef struct net_pair {
  pn_runtime *rt;
  net_app server_app, client_app;
  pn_actor *server_actor, *client_actor;
  pn_host *server, *client;
  pn_addr server_addr;
  pn_peer *peer; /* the client's handle */
  pn_test_latch connected, disconnected;
  /* Handed over with net_pair_adopt_*(), given back by net_pair_close(). */
  pn_actor *actors[NET_PAIR_ADOPTED];
  pn_peer *peers[NET_PAIR_ADOPTED];
} net_pair;

typedef struct net_pair_opts {
  pn_host_config *server_cfg, *client_cfg; /* NULL: defaults */
  /* Both hosts' send side when set (the client's with its seed ^ 0x5555,
   * so the two directions differ). */
  const pn_link_conditioner *cond;
  uint32_t nch; /* the client peer's channels (0: one) */
  const pn_channel_kind *kinds;
  size_t cap; /* of each app's records */
  /* Called just before each host opens (server first), when set. */
  void (*before_host_open)(bool server);
  /* The server key the client pins (NULL: none). */
  const uint8_t *server_key;
  /* The client's own secret key and connect data (NULL: none). */
  const uint8_t *client_key;
  const void *connect_data;
  size_t connect_data_len;
} net_pair_opts;

/* net_pair_start() then net_pair_connect(p, NULL). */
void net_pair_open(net_pair *p, const net_pair_opts *o);

/* The runtime, the apps and both hosts, nothing connected yet. */
void net_pair_start(net_pair *p, const net_pair_opts *o);

/* The client's peer, with o's channels, to `to` (NULL: the server). */
void net_pair_connect(net_pair *p, const net_pair_opts *o, const pn_addr *to);

/* Waits until both apps heard PN_MSG_PEER_CONNECTED (printing both hosts'
 * and the client peer's counters if not) and asserts each heard it once. */
void net_pair_wait_connected(net_pair *p);

/* Hands p something to give back in net_pair_close(): actor and peer
 * handles are released after the runtime shut down. */
void net_pair_adopt_actor(net_pair *p, pn_actor *a);
void net_pair_adopt_peer(net_pair *p, pn_peer *peer);

/* Closes both hosts (either may have been closed and set to NULL),
 * shuts the runtime down, gives everything back and proves nothing
 * leaked. */
void net_pair_close(net_pair *p);

/* --- one connection attempt ----------------------------------------------
 * Its own owner app, counting `done` down on connect or disconnect. */

typedef struct net_attempt {
  net_app app;
  pn_actor *actor;
  pn_test_latch done; /* connected or disconnected */
  pn_peer *peer;
} net_attempt;

void net_attempt_start(net_attempt *at, pn_runtime *rt, pn_host *client,
                       const pn_addr *to, uint32_t nch,
                       const pn_channel_kind *kinds);
void net_attempt_wait(net_attempt *at);
/* After the runtime shut down. */
void net_attempt_fini(net_attempt *at);

/* Runs the group on both backends (uring skipped loudly if refused). */
int net_run_groups(const struct CMUnitTest *tests, size_t n);

#endif
