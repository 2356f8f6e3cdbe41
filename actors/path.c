/* Source addresses of a connection: which ones its datagrams are acted on
 * from, and proving a new one (as QUIC's path validation, RFC 9000 §8.2).
 *
 * Every DATA datagram is authenticated, so a datagram from an unknown
 * address is one the remote sent: after a NAT rebinding, from another of
 * its sockets, or copied there by someone on the path racing the original
 * (to move the connection, or to have a disconnect taken from elsewhere).
 * Until the address proves it can receive, by echoing a random token sent
 * to it, nothing in such a datagram is acted on and it is not marked
 * received, so the same datagram arriving from the proven address still
 * counts. A proven address becomes the one this side sends to; the one
 * before it stays proven (PN__PATHS of them, the oldest forgotten first).
 * Among proven addresses, replies follow the newest datagram: a client
 * that spreads its datagrams over several sockets gets its replies spread
 * the same way.
 * A challenge is answered through the socket it arrived on, which is the
 * address it tests.
 *
 * Peer actor only; addr is written under the registry lock because
 * pn_peer_addr() and snapshots read it from other threads.
 */
#include <sodium.h>

#include "actors/host.h"
#include "actors/peer.h"
#include "runtime/clock.h"
#include "runtime/registry.h"
#include "runtime/rt.h"
#include "runtime/worker.h"

/* The least time between two challenges of one peer: a copier cannot make
 * a peer send more than this allows, whatever it sends. */
#define CHALLENGE_GAP_MIN_NS 20000000u /* 20 ms */

bool pn__path_proven(const pn_peer *p, const pn_addr *from) {
  if (pn_addr_equal(&p->addr, from)) {
    return true;
  }
  for (uint32_t i = 0; i < p->npaths; i++) {
    if (pn_addr_equal(&p->paths[i], from)) {
      return true;
    }
  }
  return false;
}

/* The newly proven address `a` becomes the one p sends to; the one it
 * replaces stays proven (a client sending through several sockets uses
 * them all), in the oldest slot when the set is full. */
static void migrate(pn_peer *p, const pn_addr *a) {
  if (p->npaths < PN__PATHS) {
    p->paths[p->npaths++] = p->addr;
  } else {
    p->paths[p->path_next] = p->addr;
    p->path_next = (p->path_next + 1) % PN__PATHS;
  }
  pn_runtime *rt = p->host->rt;
  pn__registry_lock(rt);
  p->addr = *a;
  pn__registry_unlock(rt);
  p->path_token = 0;
  pn__stat_add(&p->st_migrations, 1);
}

void pn__path_follow(pn_peer *p, const pn_addr *from) {
  for (uint32_t i = 0; i < p->npaths; i++) {
    if (pn_addr_equal(&p->paths[i], from)) {
      pn_runtime *rt = p->host->rt;
      pn__registry_lock(rt);
      p->paths[i] = p->addr; /* the swap keeps the proven set */
      p->addr = *from;
      pn__registry_unlock(rt);
      return;
    }
  }
}

void pn__path_challenged(pn_peer *p, uint32_t socket, uint64_t token) {
  p->path_response_owed = token;
  p->path_response_socket = socket;
  if (socket < 32) {
    p->sockets_challenged |= 1u << socket;
  }
}

bool pn__path_check(pn_peer *p, pn__scratch *sc, uint32_t socket,
                    const pn_addr *from, const Peernet__Wire__V1__Packet *pk) {
  if (p->path_token && pk->path_response == p->path_token &&
      pn_addr_equal(&p->path_try, from)) {
    migrate(p, from);
    return true;
  }
  pn__stat_add(&p->st_unproven, 1);
  if (pk->path_challenge) {
    pn__path_challenged(p, socket, pk->path_challenge);
  }
  uint64_t now = pn__now_ns();
  uint64_t gap = p->rec.rto_ns > CHALLENGE_GAP_MIN_NS ? p->rec.rto_ns
                                                      : CHALLENGE_GAP_MIN_NS;
  bool same = p->path_token && pn_addr_equal(&p->path_try, from);
  if (p->path_token && now - p->path_sent_ns < gap) {
    return false; /* one challenge in flight at a time */
  }
  if (!same) {
    p->path_try = *from;
    do {
      randombytes_buf(&p->path_token, sizeof p->path_token);
    } while (!p->path_token);
  }
  p->path_sent_ns = now;
  pn__peer_send_challenge(p, sc, socket, from, p->path_token);
  return false;
}
