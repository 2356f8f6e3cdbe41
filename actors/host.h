/* The host actor's object and what peers and handshakes use of it (public
 * API: pn_host_* in net.h). Fields are written by pn_host_open() before
 * the actor starts and then only read, except those marked actor side
 * (the host's handler) and the atomics (any thread, relaxed: counters and
 * flags that order nothing). */
#ifndef PN_ACTORS_HOST_H
#define PN_ACTORS_HOST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

#include "actors/idmap.h"
#include "actors/scratch.h"
#include "peernet/net.h"

struct pn_host {
  _Atomic uint32_t refs; /* the handle, the actor, every peer */
  _Atomic uint32_t closing;
  _Atomic uint32_t npeers;
  pn_runtime *rt;
  pn_actor *actor; /* held */
  int32_t home;
  uint32_t nsockets;
  pn_socket *sockets[32];
  uint64_t socket_ids[32];
  pn_addr local[32];
  pn_actor *accept_owner; /* held */
  pn_accept_fn accept;
  void *accept_ctx;
  uint32_t max_peers, mtu, max_message, max_reassembly, max_queued, window;
  uint32_t max_receive_buffer, retransmit_limit;
  uint64_t ack_timeout_ns;
  bool ack_timeout_set; /* configured, not half the idle timeout */
  uint64_t connect_timeout_ns, connect_retry_ns, keepalive_ns, idle_timeout_ns,
      rto_min_ns, rto_max_ns, rto_initial_ns;
  bool compress;
  uint64_t send_rate;      /* default bytes/s per peer, 0 = unlimited */
  bool no_delivery_events; /* for the peers it accepts */
  bool aes_gcm;            /* this machine can tag DATA with AES-256-GCM */
  uint8_t secret[32];      /* cookie and table key */
  uint8_t secret_key[PN_KEY_BYTES]; /* long-term X25519 key pair */
  uint8_t public_key[PN_KEY_BYTES];
  uint8_t psk[PN_KEY_BYTES]; /* pre-shared key, when has_psk */
  bool has_psk;
  ZSTD_CDict *cdict; /* the configured dictionary, or NULL */
  ZSTD_DDict *ddict;
  uint64_t dict_hash;   /* BLAKE2b-64 of the dictionary, 0 without one */
  pn__scratch *scratch; /* the home worker's (see scratch.h) */
  /* Actor side. */
  bool stopped;        /* the host actor has stopped */
  bool started;        /* PN__H_START handled */
  bool close_handled;  /* PN__H_CLOSE closed every peer */
  pn__idmap by_id;     /* local connection id -> peer */
  pn__idmap by_addr;   /* hash of (address, client id) -> accepted peer */
  pn__idmap per_ip;    /* keyed hash of an IP -> accepted peers from it */
  uint32_t max_per_ip; /* 0: no limit */
  uint64_t hs_rate;    /* handshakes per second, 0: no limit */
  int64_t hs_tokens;   /* the bucket: requests it may answer now */
  uint64_t hs_refill_ns;
  /* The server's ephemeral X25519 pair, shared by the connections it
   * accepts for at most PN__EPH_LIFETIME_MS, then wiped (handshake.c). */
  uint8_t eph_secret[PN_KEY_BYTES];
  uint8_t eph_public[PN_KEY_BYTES];
  uint64_t eph_made_ns;
  bool eph_live;       /* eph_* hold a pair */
  pn_timer *eph_timer; /* the PN__H_EPH_WIPE timer, while pending */
  /* Admission in the kernel (admission.c): the share of ConnectRequests
   * the sockets' filters let through (of PN__ADMIT_ALL), the measuring
   * window and its periodic timer while shedding. */
  uint64_t admit_share, admit_window_ns, admit_requests;
  pn_timer *admit_timer;
  _Atomic uint64_t st_admit_ppm;
  _Atomic uint64_t st_in, st_bad_header, st_unknown, st_hs_dropped,
      st_challenges, st_accepted, st_rejected, st_hs_limited;
  /* Tests only: make this host's peers misbehave as a hostile sender
   * would (tests/net/test_window.c). withhold: the message of this
   * sequence on channel 0 is kept back, unsent, until the value changes;
   * ignore_window: the peer's window is not respected. Set by a test
   * thread, read by the peers' handlers at each flush (relaxed: a flag
   * whose change takes effect at some later flush orders nothing). */
  _Atomic uint64_t test_withhold;
  _Atomic bool test_ignore_window;
};

/* References: the handle, the actor and every peer hold one. Any
 * thread. */
void pn__host_ref(pn_host *h);
void pn__host_unref(pn_host *h);

/* The scratch space of the worker the caller runs on (the host's home:
 * its actors' handlers only). */
static inline pn__scratch *pn__host_scratch(pn_host *h) { return h->scratch; }

/* Host actor: assigns p its local connection id and enters it in the
 * tables. False when out of memory (nothing changed). */
bool pn__host_register(pn_host *h, pn_peer *p);

/* Host actor: the accepted peer of that address and client id, or NULL. */
pn_peer *pn__host_find_accepted(pn_host *h, const pn_addr *from,
                                uint32_t client_id);

/* Host actor: whether another peer may be accepted from `from`'s IP, and
 * the bookkeeping when one is (pn__host_register) or leaves. */
bool pn__host_ip_has_room(const pn_host *h, const pn_addr *from);

/* Host actor: whether a handshake request may be answered now (the rate
 * limit's token bucket); counts the ones that may not. */
bool pn__host_handshake_allowed(pn_host *h);

/* Peer actor: p leaves the host's tables (and the host stops once closing
 * and empty). */
void pn__host_forget(pn_host *h, pn_peer *p);

/* Sends a sealed datagram through the host's socket `socket`. Host's
 * worker. */
void pn__host_send(pn_host *h, uint32_t socket, const pn_addr *to,
                   const uint8_t *data, size_t len);

#endif
