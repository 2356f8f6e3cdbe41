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

/* What the relay does with the client's DATA datagrams besides forwarding
 * them (path_mode), through its second socket (alt, relay_pair_open only):
 * RACE sends a copy from alt and holds the original back (up to
 * RELAY_HELD of them) until relay_release(): a copier elsewhere on the
 * path whose copies win the race, and who cannot receive there (what
 * reaches alt is dropped); REBIND
 * forwards them from alt only and what reaches alt goes on to the client
 * (a NAT that changed the client's port); REFLECT also sends each back to
 * the client, as if from the server; INJECT sends a forged one (random
 * body, the right header) ahead of each. */
#define RELAY_HELD 256
#define RELAY_PATH_NONE 0
#define RELAY_PATH_RACE 1
#define RELAY_PATH_REBIND 2
#define RELAY_PATH_REFLECT 3
#define RELAY_PATH_INJECT 4

typedef struct relay_dir {
  uint8_t ring[RELAY_RING][2048]; /* intact DATA datagrams forwarded */
  size_t ring_len[RELAY_RING];
  uint64_t ring_n;
  _Atomic uint64_t forwarded, impaired, replayed, handshakes;
} relay_dir;

typedef struct relay {
  pn_socket *sock, *alt; /* alt: relay_pair_open only */
  pn_addr local, alt_local, server, client;
  _Atomic int path_mode;
  _Atomic uint64_t path_sent, alt_dropped; /* copies, reflections,
                                              forgeries; dropped at alt */
  pn_actor *actor;
  uint8_t (*held)[2048]; /* RACE: originals held back */
  size_t held_len[RELAY_HELD];
  _Atomic uint64_t held_n;
  bool have_client;
  uint64_t rng;
  double corrupt, truncate, replay;
  _Atomic int mode;
  _Atomic uint32_t server_id, client_id;
  /* Set before traffic: bytes to look for in every datagram either way
   * (what an on-path observer could read), and whether to change the
   * Accept on its way (its server_kx, with tamper_key its server_key, with
   * tamper_cipher its choice of cipher),
   * resealing it as anyone can. */
  uint8_t marker[64];
  _Atomic size_t marker_len; /* stored (release) after marker is written */
  _Atomic uint64_t marker_seen;
  bool tamper_accept, tamper_key, tamper_cipher; /* cipher: its aes_gcm */
  /* Change the ConnectResponse on its way: a byte of its connect data, or
   * with tamper_client_key its client key. */
  bool tamper_response, tamper_client_key;
  _Atomic uint64_t tampered;
  relay_dir dir[2]; /* 0: client to server, 1: server to client */
} relay;

/* Opens p with net_pair_start(), a relay in front of the server (its PRNG
 * from the run's seed ^ salt; both its sockets) and the client's
 * connection through it. The relay's actor goes back with the pair (its
 * sockets close when it stops); relay_free() the relay after net_pair_close().
 */
relay *relay_pair_open(net_pair *p, const net_pair_opts *o, uint64_t salt);

/* Frees r (after its actor stopped). */
void relay_free(relay *r);

/* Sends the originals RACE held back, in order, and turns path_mode back
 * to RELAY_PATH_NONE. Any thread. */
void relay_release(relay *r);

/* The relay's actor and socket on 127.0.0.1, for a test that sets r up
 * (r->server at least) itself; the caller owns the actor handle. The
 * relay closes its sockets itself when its actor stops (at runtime
 * shutdown): only its handler touches them. */
pn_actor *relay_spawn(pn_runtime *rt, relay *r);

#endif
