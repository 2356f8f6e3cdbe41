/* Forged handshake datagrams and the prober, a plain UDP socket that sends
 * them and checks every reply, for the tests that abuse a host from
 * outside. The datagrams are built with the library's own wire helpers
 * (actors/wire.h), so each one is wrong in exactly the way a test means.
 *
 * The prober's counters are written by its actor and read by the test
 * thread (atomics, or after a latch under its lock). */
#ifndef PN_TEST_NET_FORGE_H
#define PN_TEST_NET_FORGE_H

#include <protobuf-c/protobuf-c.h>

#include "tests/net/net_harness.h"

/* Seals a handshake message of `type` for conn_id into buf, padded with
 * field 15 to at least pad_to bytes (0: no padding). Returns its length. */
size_t forge_handshake(uint8_t *buf, uint8_t type, uint32_t conn_id,
                       ProtobufCMessage *m, ProtobufCBinaryData *padding,
                       size_t pad_to);

/* The size a request from client_id is padded to, and the most its
 * replies may be: 256..352 bytes for ids below 0x40000000, 256 above. */
size_t forge_request_size(uint32_t client_id);

/* A ConnectRequest of `version` for nch channels (kinds in turn), padded
 * to pad_to bytes (0: unpadded). Returns its length. */
size_t forge_request(uint8_t *buf, uint32_t version, uint32_t client_id,
                     uint32_t nch, size_t pad_to);

/* A ConnectResponse carrying `cookie`, padded to the request's size.
 * Returns its length. */
size_t forge_response(uint8_t *buf, uint32_t client_id, uint64_t ts_ms,
                      const uint8_t *cookie, size_t cookie_len);

/* --- the prober ----------------------------------------------------------
 * Each reply must carry a valid handshake tag, answer a request the prober
 * sent (its client id and nonce), and be no larger than that request;
 * anything else counts as bad. */

typedef struct prober {
  pn_socket *sock;
  pn_addr local;
  pn_test_latch replies_latch; /* counted down per reply */
  _Atomic uint64_t replies, challenges, accepts, rejects, data, bad;
  _Atomic uint64_t requests; /* padded requests (the prober as a server) */
  _Atomic uint32_t reject_reason;
  _Atomic uint64_t old_rejects; /* Rejects in version PN__WIRE_VERSION - 1 */
  /* The last challenge (read by the test after a latch). */
  pthread_mutex_t lock;
  uint32_t chal_id;
  uint64_t chal_ts;
  uint8_t cookie[32];
  size_t cookie_len;
  uint32_t accept_server_id;
} prober;

/* Spawns the prober's actor and opens its socket on 127.0.0.1; returns
 * the actor's handle. */
pn_actor *prober_open(pn_runtime *rt, prober *pr);

/* After the runtime ended (a: its handle, given back after shutdown). */
void prober_fini(prober *pr, pn_actor *a);

void prober_send(prober *pr, const pn_addr *to, const uint8_t *b, size_t len);

/* Adds n replies to what prober_wait() waits for. */
void prober_expect(prober *pr, uint64_t n);

/* Waits for the replies expected so far, or fails the test (`what` says
 * which). */
void prober_wait(prober *pr, const char *what);

/* A padded request whose challenge proves every datagram sent to `to`
 * before it was handled (the host reads its socket in order). */
void prober_sync(prober *pr, const pn_addr *to);

#endif
