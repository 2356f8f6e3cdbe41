/* Snapshots: the runtime's part (runtime/stats.c) and every registered
 * object of the layers above it, by class (sockets, peers and their
 * channels, nodes and their links), all copied under the registry lock so each
 * row describes an object that was alive at one moment. */
#include <stdlib.h>
#include <string.h>

#include "actors/peer.h"
#include "actors/socket.h"
#include "nodes/node.h"
#include "peernet/stats.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/registry.h"
#include "runtime/rt.h"

static pn_err objects_fill_locked(pn_runtime *rt, pn_snapshot *snap) {
  size_t ns = 0, np = 0, nc = 0, nn = 0, nl = 0;
  PN__LIST_FOREACH(it, pn__registry_objects(rt)) {
    const pn__stat_obj *o = PN__CONTAINER_OF(it, pn__stat_obj, link);
    if (o->cls == &pn__socket_class) {
      ns++;
    } else if (o->cls == &pn__peer_class) {
      np++;
      nc += PN__CONTAINER_OF(o, pn_peer, stat)->nchannels;
    } else if (o->cls == &pn__node_class) {
      nn++;
      /* Links come and go between the two walks: room for a few more,
       * and the second walk fills what fits. */
      nl += pn__node_snap_links(PN__CONTAINER_OF(o, pn_node, stat)) + 4;
    }
  }
  snap->sockets = ns ? pn__malloc(ns * sizeof *snap->sockets) : NULL;
  snap->peers = np ? pn__malloc(np * sizeof *snap->peers) : NULL;
  snap->channels = nc ? pn__malloc(nc * sizeof *snap->channels) : NULL;
  snap->nodes = nn ? pn__malloc(nn * sizeof *snap->nodes) : NULL;
  snap->node_links = nl ? pn__malloc(nl * sizeof *snap->node_links) : NULL;
  if ((ns && !snap->sockets) || (np && !snap->peers) ||
      (nc && !snap->channels) || (nn && !snap->nodes) ||
      (nl && !snap->node_links)) {
    return PN_ENOMEM;
  }
  /* The same walk under the same hold of the registry lock: the arrays
   * sized above fit. */
  PN__LIST_FOREACH(it, pn__registry_objects(rt)) {
    const pn__stat_obj *o = PN__CONTAINER_OF(it, pn__stat_obj, link);
    if (o->cls == &pn__socket_class) {
      PN_ASSERT(snap->socket_count < ns);
      pn__socket_info_fill(o, &snap->sockets[snap->socket_count++]);
    } else if (o->cls == &pn__peer_class) {
      const pn_peer *p = PN__CONTAINER_OF(o, pn_peer, stat);
      PN_ASSERT(snap->peer_count < np &&
                snap->channel_count + p->nchannels <= nc);
      pn__peer_info_fill(p, &snap->peers[snap->peer_count++],
                         &snap->channels[snap->channel_count]);
      snap->channel_count += p->nchannels;
    } else if (o->cls == &pn__node_class) {
      PN_ASSERT(snap->node_count < nn);
      pn_node *n = PN__CONTAINER_OF(o, pn_node, stat);
      snap->node_link_count += pn__node_snap_fill(
          n, &snap->nodes[snap->node_count++],
          &snap->node_links[snap->node_link_count], nl - snap->node_link_count);
      pn__refs_snap(n, snap->actors, snap->actor_count);
    }
  }
  return PN_OK;
}

pn_err pn_snapshot_take(pn_runtime *rt, pn_snapshot **snap_out) {
  if (!rt || !snap_out) {
    return PN_EINVAL;
  }
  pn_snapshot *snap = pn__calloc(1, sizeof *snap);
  if (!snap) {
    return PN_ENOMEM;
  }
  pn__registry_lock(rt);
  pn_err err = pn__runtime_snapshot_locked(rt, snap);
  if (err == PN_OK) {
    err = objects_fill_locked(rt, snap);
  }
  pn__registry_unlock(rt);
  if (err != PN_OK) {
    pn_snapshot_free(snap);
    return err;
  }
  *snap_out = snap;
  return PN_OK;
}

void pn_snapshot_free(pn_snapshot *snap) {
  if (snap) {
    free(snap->workers);
    free(snap->actors);
    free(snap->sockets);
    free(snap->actor_histograms);
    free(snap->peers);
    free(snap->channels);
    free(snap->nodes);
    free(snap->node_links);
    free(snap);
  }
}
