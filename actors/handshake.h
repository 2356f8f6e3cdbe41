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

/* --- server half: the host actor ----------------------------------------- */

/* A ConnectRequest: a Challenge (or a version Reject). Bad ones are
 * counted (handshake_dropped) and dropped. */
void pn__handshake_on_request(pn_host *h, uint32_t socket, const pn_addr *from,
                              const uint8_t *data, size_t len, uint8_t version);

/* A ConnectResponse: accepts (creating the peer), re-sends the Accept, or
 * rejects. Bad ones are counted and dropped. */
void pn__handshake_on_response(pn_host *h, uint32_t socket, const pn_addr *from,
                               const uint8_t *data, size_t len);

/* --- client half, and the server peer's Accept: the peer actor ----------- */

/* Sends the ConnectRequest, or the ConnectResponse once a cookie came. */
void pn__handshake_send_connect(pn_peer *p, pn__scratch *sc);

/* A Challenge, Accept or Reject for a connecting client. */
void pn__handshake_on_reply(pn_peer *p, pn__scratch *sc, const uint8_t *data,
                            size_t len, uint8_t type);

#endif
