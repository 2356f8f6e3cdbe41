/* A host's peers from the application's side: listing them and sending one
 * packet to all of them (ENet's host->peers walk and enet_host_broadcast).
 * Both read the runtime's registry of objects, where every peer stays from
 * its creation until its memory goes, rather than the host actor's tables,
 * which only the host's handler may touch. */
#include <stdlib.h>

#include "actors/host.h"
#include "actors/peer.h"
#include "runtime/alloc.h"
#include "runtime/registry.h"

/* A reference to p unless its count already reached zero (peer_free() is
 * waiting for the registry lock the caller holds to take it out). */
static bool hold_live(pn_peer *p) {
  uint32_t n = atomic_load_explicit(&p->refs, memory_order_relaxed);
  while (n) {
    /* relaxed: the caller's registry lock keeps the memory; the count
     * alone decides, as in pn_peer_hold(). */
    if (atomic_compare_exchange_weak_explicit(
            &p->refs, &n, n + 1, memory_order_relaxed, memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

/* Under the registry lock: up to cap of the host's peers that are not
 * disconnected (with connected_only, that are connected), each held, into
 * out; returns how many there are in all. */
static size_t collect_locked(pn_host *host, pn_peer **out, size_t cap,
                             bool connected_only) {
  size_t n = 0;
  PN__LIST_FOREACH(it, pn__registry_objects(host->rt)) {
    pn__stat_obj *o = PN__CONTAINER_OF(it, pn__stat_obj, link);
    if (o->cls != &pn__peer_class) {
      continue;
    }
    pn_peer *p = PN__CONTAINER_OF(o, pn_peer, stat);
    pn_peer_state st = pn__peer_state(p);
    if (p->host != host || st == PN_PEER_DISCONNECTED ||
        (connected_only && st != PN_PEER_CONNECTED)) {
      continue;
    }
    if (n < cap) {
      if (!hold_live(p)) {
        continue;
      }
      out[n] = p;
    }
    n++;
  }
  return n;
}

pn_err pn_host_peers(pn_host *host, pn_peer **out, size_t cap,
                     size_t *count_out) {
  if (!host || !count_out || (cap && !out)) {
    return PN_EINVAL;
  }
  pn__registry_lock(host->rt);
  *count_out = collect_locked(host, out, cap, false);
  pn__registry_unlock(host->rt);
  return PN_OK;
}

pn_err pn_host_broadcast(pn_host *host, uint32_t channel, pn_packet *pkt,
                         bool (*filter)(pn_peer *peer, void *ctx), void *ctx,
                         size_t *sent_out) {
  if (!host || !pkt || channel >= PN_MAX_CHANNELS) {
    return PN_EINVAL;
  }
  /* Held first, sent after the lock: a send may allocate and take other
   * locks. A peer that connects in between misses this broadcast, as it
   * would had it connected just after. */
  pn_peer *stack[64];
  pn_peer **peers = stack;
  size_t cap = sizeof stack / sizeof stack[0], n;
  for (;;) {
    pn__registry_lock(host->rt);
    n = collect_locked(host, peers, cap, true);
    pn__registry_unlock(host->rt);
    if (n <= cap) {
      break;
    }
    for (size_t i = 0; i < cap; i++) {
      pn_peer_release(peers[i]);
    }
    if (peers != stack) {
      free(peers);
    }
    cap = n + n / 4; /* room for a few more that connect meanwhile */
    peers = pn__malloc(cap * sizeof *peers);
    if (!peers) {
      if (sent_out) {
        *sent_out = 0;
      }
      return PN_ENOMEM;
    }
  }
  size_t sent = 0;
  for (size_t i = 0; i < n; i++) {
    pn_channel *ch = pn_peer_channel(peers[i], channel);
    if (ch && (!filter || filter(peers[i], ctx)) &&
        pn_channel_send_packet(ch, pkt, NULL) == PN_OK) {
      sent++;
    }
    pn_peer_release(peers[i]);
  }
  if (peers != stack) {
    free(peers);
  }
  if (sent_out) {
    *sent_out = sent;
  }
  return PN_OK;
}
