/* Events for a peer's owner: see event.h. */
#include "actors/event.h"

#include "actors/host.h"
#include "actors/peer.h"
#include "runtime/actor.h"

/* The envelope's free function: its references go back. */
static void event_free_fn(void *data, void *ctx) {
  (void)ctx;
  pn__event *e = data;
  pn_packet_release(e->ev.packet);
  if (e->holds_peer) {
    pn_peer_release(e->ev.peer);
  }
}

pn_msg *pn__event_new(uint32_t type, pn_peer *p, pn__event **ev_out) {
  void *data;
  pn_msg *m = pn__envelope_new(p->host->rt, type, sizeof(pn__event),
                               event_free_fn, &data);
  if (!m) {
    return NULL;
  }
  pn__event *e = data;
  e->type = type;
  e->ev.peer = p;
  e->ev.peer_id = p->id;
  /* acquire: pairs with the release store in pn_peer_set_user(). */
  e->ev.user = atomic_load_explicit(&p->user, memory_order_acquire);
  e->ev.addr = p->addr;
  *ev_out = e;
  return m;
}

void pn__event_send(pn_actor *to, pn_msg *m) {
  (void)pn__envelope_send(to, m); /* PN_ECLOSED: the owner stopped */
}

void pn__event_drop(pn_peer *p, pn_msg *m) {
  pn__envelope_free(p->host->rt, m);
}

pn_err pn_msg_peer_event(const pn_msg *msg, pn_peer_event *out) {
  if (!msg || !out) {
    return PN_EINVAL;
  }
  uint32_t t = pn_msg_type(msg);
  if (t < PN_MSG_PEER_CONNECTED || t > PN_MSG_PEER_WRITABLE ||
      pn_msg_size(msg) != sizeof(pn__event)) {
    return PN_EINVAL;
  }
  const pn__event *e = pn_msg_data(msg);
  *out = e->ev;
  return PN_OK;
}
