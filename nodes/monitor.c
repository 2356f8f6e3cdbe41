/* Monitors across nodes (pn_node_monitor, include/peernet/node.h).
 *
 * A monitor of this node's own actor is the runtime's (pn__monitor_as,
 * its DOWN naming this node: a runtime may hold several), made at once. A
 * monitor of another node's actor is the node actor's (`watching`): it
 * sends that node a Monitor; that node's
 * actor monitors the target there on our behalf (`watched`) and answers with
 * one Down, which goes to the watcher. When the link to a node goes, every
 * monitor of its actors is DOWN with PN_DOWN_NOCONNECTION (within detect_us:
 * the link's idle timeout), and its monitors of ours are removed. A reference
 * to another run of a node gets PN_DOWN_NOCONNECTION at once: a node that came
 * back is a new incarnation, and never stands in for the old one's actors.
 */
#include <stdlib.h>
#include <string.h>

#include "nodes/node.h"
#include "peernet_node.pb-c.h"
#include "runtime/actor.h"
#include "runtime/monitor.h"

static void down_to(pn_actor *watcher, uint64_t id, const pn_ref *target,
                    uint32_t reason) {
  pn_down d = {.monitor = id,
               .actor = target->actor,
               .node = target->node,
               .incarnation = target->incarnation,
               .reason = reason};
  (void)pn__down_send(watcher, &d); /* a stopped watcher needs none */
}

/* --- the application's side ---------------------------------------------- */

/* A monitor of this node's own actor: the runtime's, naming this node
 * (made at once, as pn_monitor's). */
static pn_err monitor_here(pn_node *node, pn_actor *watcher,
                           const pn_ref *target, uint64_t *monitor_out) {
  pn_actor *a = target->incarnation == node->incarnation
                    ? pn__ref_exported(node, target->actor)
                    : NULL;
  if (a) {
    pn_err err =
        pn__monitor_as(a, watcher, node->id, node->incarnation, monitor_out);
    pn_actor_release(a);
    return err;
  }
  *monitor_out = pn__monitor_id(node->rt);
  down_to(watcher, *monitor_out, target,
          target->incarnation == node->incarnation ? PN_DOWN_NOPROC
                                                   : PN_DOWN_NOCONNECTION);
  return PN_OK;
}

pn_err pn_node_monitor(pn_node *node, pn_actor *watcher, const pn_ref *target,
                       uint64_t *monitor_out) {
  if (!node || !watcher || !target || !monitor_out ||
      pn_actor_runtime(watcher) != node->rt) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  if (target->node == node->id) {
    return monitor_here(node, watcher, target, monitor_out);
  }
  pn__rmon m = {
      .id = pn__monitor_id(node->rt), .target = *target, .watcher = watcher};
  pn_actor_hold(watcher); /* the node actor's until the DOWN */
  pn_err err =
      pn__send_parts(node->actor, PN__NODE_MONITOR, &m, sizeof m, NULL, 0);
  if (err != PN_OK) {
    pn_actor_release(watcher);
    return err;
  }
  *monitor_out = m.id;
  return PN_OK;
}

pn_err pn_node_demonitor(pn_node *node, const pn_ref *target,
                         uint64_t monitor) {
  if (!node || !target) {
    return PN_EINVAL;
  }
  if (target->node == node->id) {
    pn_actor *a = target->incarnation == node->incarnation
                      ? pn__ref_exported(node, target->actor)
                      : NULL;
    pn_err err = a ? pn_demonitor(a, monitor) : PN_ENOENT;
    pn_actor_release(a);
    return err;
  }
  return pn__send_parts(node->actor, PN__NODE_DEMONITOR, &monitor,
                        sizeof monitor, NULL, 0);
}

/* --- the node actor: monitors of other nodes' actors -----------------------
 */

void pn__monitor_start(pn_node *n, const pn__rmon *m) {
  pn__member *mb = pn__member_find(n, m->target.node);
  if (!mb || !mb->up || !mb->link || mb->incarnation != m->target.incarnation ||
      atomic_load(&n->closing)) {
    down_to(m->watcher, m->id, &m->target, PN_DOWN_NOCONNECTION);
    pn_actor_release(m->watcher);
    return;
  }
  pn__rmon *v =
      pn__node_grow(n->watching, &n->watching_cap, n->nwatching, sizeof *v);
  if (!v) {
    /* Out of memory: said as it would be if the link went, which is all
     * the watcher can be told. */
    down_to(m->watcher, m->id, &m->target, PN_DOWN_NOCONNECTION);
    pn_actor_release(m->watcher);
    return;
  }
  n->watching = v;
  n->watching[n->nwatching++] = *m;
  Peernet__Node__V1__Monitor q = PEERNET__NODE__V1__MONITOR__INIT;
  q.monitor = m->id;
  q.actor = m->target.actor;
  q.incarnation = m->target.incarnation;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_MONITOR;
  c.monitor = &q;
  pn__link_send_control(mb->link, &c);
}

/* Removes watching[i] (order is not kept). */
static void watching_drop(pn_node *n, size_t i) {
  pn_actor_release(n->watching[i].watcher);
  n->watching[i] = n->watching[--n->nwatching];
}

void pn__monitor_stop(pn_node *n, uint64_t id) {
  for (size_t i = 0; i < n->nwatching; i++) {
    pn__rmon *m = &n->watching[i];
    if (m->id != id) {
      continue;
    }
    pn__member *mb = pn__member_find(n, m->target.node);
    if (mb && mb->link && mb->incarnation == m->target.incarnation) {
      Peernet__Node__V1__Demonitor q = PEERNET__NODE__V1__DEMONITOR__INIT;
      q.monitor = id;
      Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
      c.body_case = PEERNET__NODE__V1__CONTROL__BODY_DEMONITOR;
      c.demonitor = &q;
      pn__link_send_control(mb->link, &c);
    }
    watching_drop(n, i);
    return;
  }
}

void pn__monitor_answered(pn_node *n, pn__link *l,
                          const Peernet__Node__V1__Down *d) {
  const pn__member *from = l->member;
  for (size_t i = 0; i < n->nwatching; i++) {
    pn__rmon *m = &n->watching[i];
    if (m->id == d->monitor && m->target.node == from->id) {
      down_to(m->watcher, m->id, &m->target, d->reason);
      watching_drop(n, i);
      return;
    }
  }
  /* Removed meanwhile (pn_node_demonitor): nothing to tell. */
}

/* --- the node actor: other nodes' monitors of this node's actors ---------- */

static void answer(pn__link *l, uint64_t remote_id, uint32_t reason) {
  Peernet__Node__V1__Down d = PEERNET__NODE__V1__DOWN__INIT;
  d.monitor = remote_id;
  d.reason = reason;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_DOWN;
  c.down = &d;
  pn__link_send_control(l, &c);
}

void pn__monitor_asked(pn_node *n, pn__link *l,
                       const Peernet__Node__V1__Monitor *q) {
  if (q->incarnation != n->incarnation) {
    answer(l, q->monitor, PN_DOWN_NOCONNECTION);
    return;
  }
  pn_actor *a = pn__ref_exported(n, q->actor);
  if (!a || a == n->actor) {
    pn_actor_release(a);
    answer(l, q->monitor, PN_DOWN_NOPROC);
    return;
  }
  pn__lmon *v =
      pn__node_grow(n->watched, &n->watched_cap, n->nwatched, sizeof *v);
  uint64_t local;
  if (!v || pn_monitor(a, n->actor, &local) != PN_OK) {
    if (v) {
      n->watched = v;
    }
    pn_actor_release(a);
    /* Out of memory here: the other node hears the actor is gone from its
     * reach, the one answer it can act on. */
    answer(l, q->monitor, PN_DOWN_NOCONNECTION);
    return;
  }
  n->watched = v;
  n->watched[n->nwatched++] = (pn__lmon){.remote_id = q->monitor,
                                         .from = l->member->id,
                                         .local_id = local,
                                         .target = a};
}

/* Removes watched[i]: the local monitor too unless it fired (fired). */
static void watched_drop(pn_node *n, size_t i, bool fired) {
  pn__lmon *w = &n->watched[i];
  if (!fired) {
    (void)pn_demonitor(w->target, w->local_id);
  }
  pn_actor_release(w->target);
  *w = n->watched[--n->nwatched];
}

void pn__demonitor_asked(pn_node *n, pn__link *l,
                         const Peernet__Node__V1__Demonitor *q) {
  for (size_t i = 0; i < n->nwatched; i++) {
    if (n->watched[i].remote_id == q->monitor &&
        n->watched[i].from == l->member->id) {
      watched_drop(n, i, false);
      return;
    }
  }
}

void pn__monitor_local_down(pn_node *n, const pn_msg *msg) {
  pn_down d;
  if (pn_msg_down(msg, &d) != PN_OK) {
    return;
  }
  for (size_t i = 0; i < n->nwatched; i++) {
    pn__lmon *w = &n->watched[i];
    if (w->local_id != d.monitor) {
      continue;
    }
    pn__member *mb = pn__member_find(n, w->from);
    if (mb && mb->link) {
      answer(mb->link, w->remote_id, d.reason);
    }
    watched_drop(n, i, true);
    return;
  }
}

void pn__monitors_gone(pn_node *n, uint64_t member) {
  for (size_t i = 0; i < n->nwatching;) {
    pn__rmon *m = &n->watching[i];
    if (member && m->target.node != member) {
      i++;
      continue;
    }
    down_to(m->watcher, m->id, &m->target, PN_DOWN_NOCONNECTION);
    watching_drop(n, i);
  }
  for (size_t i = 0; i < n->nwatched;) {
    if (member && n->watched[i].from != member) {
      i++;
      continue;
    }
    watched_drop(n, i, false);
  }
  if (!member) {
    free(n->watching);
    free(n->watched);
    n->watching = NULL;
    n->watched = NULL;
    n->watching_cap = n->watched_cap = 0;
  }
}
