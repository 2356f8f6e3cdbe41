/* The handshake's key material (see handshake_keys.h): what both sides
 * derive, the client's proof and sealed connect data, and the server's
 * shared ephemeral pair. All with libsodium; nothing here is hand-written
 * cryptography.
 */
#include "actors/handshake_keys.h"

#include <sodium.h>
#include <string.h>

#include "actors/msg_ids.h"
#include "actors/random.h"
#include "runtime/clock.h"
#include "runtime/timer.h"

void pn__hs_data_key(uint8_t out[crypto_aead_xchacha20poly1305_ietf_KEYBYTES],
                     const uint8_t dh_es[PN_KEY_BYTES], const uint8_t *cookie,
                     size_t cookie_len) {
  static const uint8_t label[] = "peernet/3 connect data";
  crypto_generichash_state st;
  crypto_generichash_init(&st, dh_es, PN_KEY_BYTES,
                          crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
  crypto_generichash_update(&st, label, sizeof label - 1);
  crypto_generichash_update(&st, cookie, cookie_len);
  crypto_generichash_final(&st, out,
                           crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
}

void pn__hs_client_proof(uint8_t out[PN__PROOF_BYTES],
                         const uint8_t dh_ss[PN_KEY_BYTES],
                         const uint8_t *cookie, size_t cookie_len,
                         uint32_t client_id, uint64_t nonce,
                         const uint8_t client_kx[PN_KEY_BYTES],
                         const uint8_t client_key[PN_KEY_BYTES],
                         const uint8_t *sealed, size_t sealed_len) {
  static const uint8_t label[] = "peernet/3 client proof";
  crypto_generichash_state st;
  crypto_generichash_init(&st, dh_ss, PN_KEY_BYTES, PN__PROOF_BYTES);
  crypto_generichash_update(&st, label, sizeof label - 1);
  crypto_generichash_update(&st, cookie, cookie_len);
  crypto_generichash_update(&st, (const uint8_t *)&client_id, 4);
  crypto_generichash_update(&st, (const uint8_t *)&nonce, 8);
  crypto_generichash_update(&st, client_kx, PN_KEY_BYTES);
  crypto_generichash_update(&st, client_key, PN_KEY_BYTES);
  crypto_generichash_update(&st, sealed, sealed_len);
  crypto_generichash_final(&st, out, PN__PROOF_BYTES);
}

void pn__hs_derive_keys(pn_peer *p, const pn__dh *dh,
                        const uint8_t client_kx[PN_KEY_BYTES],
                        const uint8_t server_kx[PN_KEY_BYTES],
                        const uint8_t server_key[PN_KEY_BYTES],
                        uint8_t confirm[PN__CONFIRM_BYTES]) {
  static const uint8_t label[] = "peernet/3 handshake";
  uint32_t cid = p->is_client ? p->local_id : p->remote_id;
  uint32_t sid = p->is_client ? p->remote_id : p->local_id;
  uint8_t transcript[32];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof transcript);
  crypto_generichash_update(&st, label, sizeof label - 1);
  crypto_generichash_update(&st, (const uint8_t *)&cid, 4);
  crypto_generichash_update(&st, (const uint8_t *)&p->client_nonce, 8);
  crypto_generichash_update(&st, client_kx, PN_KEY_BYTES);
  crypto_generichash_update(&st, dh->client_key, PN_KEY_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)&sid, 4);
  crypto_generichash_update(&st, (const uint8_t *)&p->server_nonce, 8);
  crypto_generichash_update(&st, server_kx, PN_KEY_BYTES);
  crypto_generichash_update(&st, server_key, PN_KEY_BYTES);
  /* The cipher the Accept chose: changed on the way, the confirmation
   * fails rather than the two sides using different ciphers. */
  uint8_t cipher = p->aes_gcm ? 1 : 0;
  crypto_generichash_update(&st, &cipher, 1);
  crypto_generichash_final(&st, transcript, sizeof transcript);

  const pn_host *h = p->host;
  uint8_t master[crypto_kdf_KEYBYTES];
  crypto_generichash_init(&st, h->has_psk ? h->psk : NULL,
                          h->has_psk ? sizeof h->psk : 0, sizeof master);
  crypto_generichash_update(&st, transcript, sizeof transcript);
  crypto_generichash_update(&st, dh->ee, PN_KEY_BYTES);
  crypto_generichash_update(&st, dh->es, PN_KEY_BYTES);
  crypto_generichash_update(&st, dh->ss, PN_KEY_BYTES);
  crypto_generichash_final(&st, master, sizeof master);

  uint8_t c2s[PN__DATA_KEY_BYTES], s2c[PN__DATA_KEY_BYTES], ck[32];
  static const char ctx[crypto_kdf_CONTEXTBYTES] = {'p', 'e', 'e', 'r',
                                                    'n', 'e', 't', '3'};
  crypto_kdf_derive_from_key(c2s, sizeof c2s, 1, ctx, master);
  crypto_kdf_derive_from_key(s2c, sizeof s2c, 2, ctx, master);
  crypto_kdf_derive_from_key(ck, sizeof ck, 3, ctx, master);
  crypto_generichash(confirm, PN__CONFIRM_BYTES, transcript, sizeof transcript,
                     ck, sizeof ck);
  if (p->is_client) {
    pn__data_keys_init(&p->dkeys, c2s, s2c, p->aes_gcm);
  } else {
    pn__data_keys_init(&p->dkeys, s2c, c2s, p->aes_gcm);
  }
  sodium_memzero(master, sizeof master);
  sodium_memzero(c2s, sizeof c2s);
  sodium_memzero(s2c, sizeof s2c);
  sodium_memzero(ck, sizeof ck);
}

/* The server's ephemeral pair: one X25519 base multiplication is about a
 * third of the server's work per connection, so the pair is shared by the
 * connections accepted within PN__EPH_LIFETIME_MS (a TLS 1.3 or QUIC
 * server may reuse its key share the same way). Each connection's keys
 * still differ: the transcript holds both nonces and the client's own
 * ephemeral key. Forward secrecy is kept: the secret is wiped once it
 * expires, by a timer if no connection comes. Host actor only. */
static void eph_wipe(pn_host *h) {
  sodium_memzero(h->eph_secret, sizeof h->eph_secret);
  h->eph_live = false;
}

static void eph_arm(pn_host *h, uint64_t delay_ms) {
  if (!h->eph_timer) {
    /* On failure (no memory) the pair is still wiped when it next expires
     * on use, or with the host. */
    (void)pn__timer_start(h->actor, PN__H_EPH_WIPE, delay_ms * 1000u, 0,
                          &h->eph_timer);
  }
}

void pn__handshake_eph_forget(pn_host *h) {
  pn_timer_cancel(h->eph_timer);
  h->eph_timer = NULL;
  eph_wipe(h);
}

bool pn__hs_eph_current(pn_host *h) {
  uint64_t now = pn__now_ns();
  if (h->eph_live && now - h->eph_made_ns < PN__EPH_LIFETIME_MS * 1000000ull) {
    return true;
  }
  eph_wipe(h);
  pn__random_buf(h->eph_secret, sizeof h->eph_secret);
  if (crypto_scalarmult_base(h->eph_public, h->eph_secret) != 0) {
    eph_wipe(h); /* never for a clamped scalar */
    return false;
  }
  h->eph_live = true;
  h->eph_made_ns = now;
  eph_arm(h, PN__EPH_LIFETIME_MS);
  return true;
}

void pn__handshake_eph_tick(pn_host *h) {
  pn_timer_cancel(h->eph_timer); /* it fired: lets the handle go */
  h->eph_timer = NULL;
  if (!h->eph_live) {
    return;
  }
  uint64_t age_ms = (pn__now_ns() - h->eph_made_ns) / 1000000u;
  if (age_ms >= PN__EPH_LIFETIME_MS) {
    eph_wipe(h);
  } else {
    eph_arm(h, PN__EPH_LIFETIME_MS - age_ms);
  }
}
