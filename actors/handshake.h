/* Both halves of the handshake (handshake.c): the client peer's requests
 * and the server host's stateless answers.
 *
 *   client                                server host
 *   ConnectRequest (padded)     ->        nothing allocated
 *                               <-        Challenge: cookie = keyed hash of
 *                                         address, id, nonce, timestamp
 *   ConnectResponse (padded,    ->        cookie checked, peer limit,
 *     cookie echoed)                      accept hook: the peer is created
 *                               <-        Accept (sent by the new peer)
 *
 * A reply is never larger than its request (no amplification). A retried
 * ConnectResponse for an existing peer gets the Accept again; an old
 * client's request gets Reject(PN_REASON_VERSION) in its own version.
 */
#ifndef PN_ACTORS_HANDSHAKE_H
#define PN_ACTORS_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "actors/host.h"
#include "actors/peer.h"

/* Bytes of the Accept's key confirmation. */
#define PN__CONFIRM_BYTES 16u
#define PN__PROOF_BYTES 16u /* a client's key proof */
#define PN__SEAL_BYTES 16u  /* what sealing connect data adds */

/* What a connection needs only while its handshake lasts (allocated apart,
 * so a connected peer does not carry it): the client's ephemeral key pair
 * and the key it pins; the server's ephemeral public key and the
 * confirmation, kept to resend a lost Accept until the client's first
 * DATA datagram shows it arrived. */
typedef struct pn__handshake {
  uint8_t kx_secret[PN_KEY_BYTES];  /* client */
  uint8_t kx_public[PN_KEY_BYTES];  /* client: its own; server: its own */
  uint8_t server_key[PN_KEY_BYTES]; /* client: the pinned key, or the
                                       Challenge's */
  bool pinned;
  bool challenge_key; /* client: server_key came with the Challenge */
  uint8_t confirm[PN__CONFIRM_BYTES]; /* server */
  /* Client with a key of its own or connect data: the key pair, the data
   * and, once the Challenge named the server's key, the proof and the
   * sealed data the ConnectResponse carries (kept for its resends). */
  bool has_client_key;
  uint8_t client_secret[PN_KEY_BYTES];
  uint8_t client_public[PN_KEY_BYTES];
  uint8_t proof[PN__PROOF_BYTES];
  uint8_t *data;   /* connect data, then sealed in place (+ PN__SEAL_BYTES) */
  size_t data_len; /* plaintext bytes */
  bool sealed;
} pn__handshake;

/* Client peers, at creation: makes the ephemeral key pair and copies the
 * pinned server key, the client's own key and the connect data of cfg.
 * Errors: PN_ENOMEM. */
pn_err pn__handshake_client_init(pn_peer *p, const pn_peer_config *cfg);

/* The client's handshake state is wiped and freed once it is connected
 * (a server keeps its own until the peer goes: a resent Accept needs it). */
void pn__handshake_done(pn_peer *p);

/* Wipes and frees whatever handshake state p still has. */
void pn__handshake_free(pn_peer *p);

/* --- server half: the host actor ----------------------------------------- */

/* Bytes of a Challenge's cookie. */
#define PN__COOKIE_BYTES 16u

/* The cookie the host gives a client at `from` for these ids, nonce,
 * ephemeral key and timestamp (ms): a keyed hash under the host's secret.
 * The host checks a ConnectResponse's cookie by computing it again; the
 * handshake fuzzer (tests/fuzz/fuzz_handshake.c) calls it to echo valid
 * cookies. Pure; any thread. */
void pn__handshake_cookie(const pn_host *h, const pn_addr *from,
                          uint32_t client_id, uint64_t nonce,
                          const uint8_t kx[PN_KEY_BYTES], uint64_t ts,
                          uint8_t out[PN__COOKIE_BYTES]);

/* A ConnectRequest: a Challenge (or a version Reject). Bad ones are
 * counted (handshake_dropped) and dropped. */
void pn__handshake_on_request(pn_host *h, uint32_t socket, const pn_addr *from,
                              const uint8_t *data, size_t len, uint8_t version);

/* A ConnectResponse: accepts (creating the peer), re-sends the Accept, or
 * rejects. Bad ones are counted and dropped. */
void pn__handshake_on_response(pn_host *h, uint32_t socket, const pn_addr *from,
                               const uint8_t *data, size_t len);

/* How long the server's ephemeral key pair serves new connections before
 * a new one is made; the old secret is wiped then, or by the host's
 * PN__H_EPH_WIPE timer when no connection comes. */
#define PN__EPH_LIFETIME_MS 1000u

/* Host actor, on PN__H_EPH_WIPE: wipes an expired ephemeral pair (or
 * waits again for one that is not). */
void pn__handshake_eph_tick(pn_host *h);

/* Host actor: wipes the ephemeral pair now and cancels its timer (the
 * host stopping; the fuzz harness between inputs). */
void pn__handshake_eph_forget(pn_host *h);

/* --- client half, and the server peer's Accept: the peer actor ----------- */

/* Sends the ConnectRequest, or the ConnectResponse once a cookie came. */
void pn__handshake_send_connect(pn_peer *p, pn__scratch *sc);

/* A Challenge, Accept or Reject for a connecting client. */
void pn__handshake_on_reply(pn_peer *p, pn__scratch *sc, const uint8_t *data,
                            size_t len, uint8_t type);

#endif
