/* The handshake's key material (handshake_keys.c; the exchange itself is
 * in handshake.c, the derivation written out in proto/README.md).
 *
 * Threading: the peer actor for a peer's keys, the host actor for the
 * host's ephemeral pair (they share a worker).
 */
#ifndef PN_ACTORS_HANDSHAKE_KEYS_H
#define PN_ACTORS_HANDSHAKE_KEYS_H

#include <sodium.h>

#include "actors/handshake.h"

/* The Diffie-Hellman results a connection's keys come from: ephemeral-
 * ephemeral, client ephemeral with the server's long-term key, and the
 * client's long-term key with the server's (zeros, as is client_key, when
 * the client presented none). */
typedef struct pn__dh {
  uint8_t ee[PN_KEY_BYTES], es[PN_KEY_BYTES], ss[PN_KEY_BYTES];
  uint8_t client_key[PN_KEY_BYTES];
} pn__dh;

/* The key connect data is sealed with: BLAKE2b-256 keyed by the
 * client-ephemeral/server-long-term result, over the cookie (fresh per
 * Challenge, so a key seals one plaintext: the nonce may be zero). */
void pn__hs_data_key(uint8_t out[crypto_aead_xchacha20poly1305_ietf_KEYBYTES],
                     const uint8_t dh_es[PN_KEY_BYTES], const uint8_t *cookie,
                     size_t cookie_len);

/* A client's proof that it holds the secret half of client_key:
 * BLAKE2b-128 keyed by the long-term/long-term result (which only it and
 * the server can compute) over the cookie, its ids, its ephemeral key,
 * client_key and the sealed connect data (sealed may be NULL when
 * sealed_len is 0). */
void pn__hs_client_proof(uint8_t out[PN__PROOF_BYTES],
                         const uint8_t dh_ss[PN_KEY_BYTES],
                         const uint8_t *cookie, size_t cookie_len,
                         uint32_t client_id, uint64_t nonce,
                         const uint8_t client_kx[PN_KEY_BYTES],
                         const uint8_t client_key[PN_KEY_BYTES],
                         const uint8_t *sealed, size_t sealed_len);

/* The connection's DATA keys (into p->dkeys) and the Accept's
 * confirmation, from the Diffie-Hellman results, the transcript (ids,
 * nonces, the public keys, the cipher in p->aes_gcm) and the host's
 * pre-shared key. BLAKE2b hashes the transcript and, keyed with the
 * pre-shared key, extracts the master key; libsodium's KDF expands it
 * into one key per direction and the confirmation key. */
void pn__hs_derive_keys(pn_peer *p, const pn__dh *dh,
                        const uint8_t client_kx[PN_KEY_BYTES],
                        const uint8_t server_kx[PN_KEY_BYTES],
                        const uint8_t server_key[PN_KEY_BYTES],
                        uint8_t confirm[PN__CONFIRM_BYTES]);

/* Host actor: makes sure h->eph_* hold a live ephemeral pair (a new one
 * once the last is PN__EPH_LIFETIME_MS old), arming its wipe timer. False
 * only when a pair could not be made. */
bool pn__hs_eph_current(pn_host *h);

#endif
