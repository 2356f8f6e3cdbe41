/* The relay: a UDP hop between a pair's client and server, for the tests
 * that impair a live connection. It passes datagrams both ways and learns
 * the connection ids from DATA headers. Impairing, it replaces a share of
 * DATA datagrams with a bit-flipped or truncated copy and sends a replay
 * of an older intact one after another share, all from a seeded PRNG.
 *
 * Its state belongs to its actor; the test sets the shares before it
 * turns `mode` to RELAY_IMPAIR (the atomic store publishes them) and reads
 * only the atomics. */
#ifndef PN_TEST_NET_RELAY_H
#define PN_TEST_NET_RELAY_H

#include "tests/net/net_harness.h"

#define RELAY_RING 32
#define RELAY_PASS 0   /* forward everything as it is */
#define RELAY_IMPAIR 1 /* corrupt, truncate and replay */

typedef struct relay_dir {
  uint8_t ring[RELAY_RING][2048]; /* intact DATA datagrams forwarded */
  size_t ring_len[RELAY_RING];
  uint64_t ring_n;
  _Atomic uint64_t forwarded, impaired, replayed, handshakes;
} relay_dir;

typedef struct relay {
  pn_socket *sock;
  pn_addr local, server, client;
  bool have_client;
  uint64_t rng;
  double corrupt, truncate, replay;
  _Atomic int mode;
  _Atomic uint32_t server_id, client_id;
  /* Set before traffic: bytes to look for in every datagram either way
   * (what an on-path observer could read), and whether to change the
   * Accept on its way (its server_kx, or with tamper_key its server_key),
   * resealing it as anyone can. */
  uint8_t marker[64];
  _Atomic size_t marker_len; /* stored (release) after marker is written */
  _Atomic uint64_t marker_seen;
  bool tamper_accept, tamper_key;
  _Atomic uint64_t tampered;
  relay_dir dir[2]; /* 0: client to server, 1: server to client */
} relay;

/* Opens p with net_pair_start(), a relay in front of the server (its PRNG
 * from the run's seed ^ salt) and the client's connection through it. The
 * relay's socket and actor go back with the pair; free() the relay after
 * net_pair_close(). */
relay *relay_pair_open(net_pair *p, const net_pair_opts *o, uint64_t salt);

/* The relay's actor and socket on 127.0.0.1, for a test that sets r up
 * (r->server at least) itself; the caller owns both handles. */
pn_actor *relay_spawn(pn_runtime *rt, relay *r);

#endif
