/* Outgoing messages' references: see outmsg.h. */
#include "actors/outmsg.h"

#include <stdlib.h>

#include "actors/host.h"
#include "actors/peer.h"
#include "runtime/actor.h"

void pn__outmsg_free(pn__outmsg *om) {
  if (om->pkt != pn__outmsg_inline_packet(om)) {
    pn_packet_release(om->pkt);
  }
  pn_peer *p = om->peer;
  free(om->acked);
  bool held = om->holds_peer;
  pn__block_free(p->host->rt, om);
  if (held) {
    pn_peer_release(p);
  }
}

void pn__outmsg_unref(pn__outmsg *om) {
  if (--om->refs) {
    return;
  }
  if (!om->unqueued) {
    atomic_fetch_sub_explicit(&om->peer->queued_bytes, om->pkt->len,
                              memory_order_relaxed);
  }
  pn__outmsg_free(om);
}

void pn__outmsg_unref_fn(void *data, void *ctx) {
  (void)ctx;
  pn__outmsg_unref(data);
}
