/* A node: opening and closing, its actor, events to subscribers, the
 * list of members and the counters (include/peernet/node.h). Links and
 * membership: link.c; references and messages: ref.c.
 */
#include "nodes/node.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/credit.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/monitor.h"

static void node_free(pn_node *n) {
  pn__registry_remove(n->rt, &n->stat);
  pn__monitors_gone(n, 0);
  pn__links_close(n);
  pn__names_free(n);
  pn__refs_free(n);
  for (size_t i = 0; i < n->nmembers; i++) {
    free(n->members[i]);
  }
  free(n->members);
  for (uint32_t i = 0; i < n->nsubscribers; i++) {
    pn_actor_release(n->subscribers[i]);
  }
  free(n->seeds);
  free(n->senders);
  pthread_rwlock_destroy(&n->lock);
  pthread_mutex_destroy(&n->exports_lock);
  free(n);
}

/* The host goes last, on the actor that uses it: its peers' last events
 * reach a stopping actor and are dropped; the links still hold the peers
 * and give them back when the actor stops. */
static void node_finish(pn_node *n, pn_actor *self) {
  atomic_store(&n->closing, true);
  pn_timer_cancel(n->retry);
  n->retry = NULL;
  pn_host_close(n->host);
  n->host = NULL;
  (void)pn_actor_stop(self);
  pn__node_closer *c = n->closer;
  n->closer = NULL;
  if (c) { /* the last touch of the waiter's memory */
    pthread_mutex_lock(&c->lock);
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->lock);
  }
}

/* Leaving: every link delivers what is queued, then closes; the node
 * finishes when the last is gone, or after twice detect_us. */
static void node_leave(pn_node *n, pn_actor *self) {
  atomic_store(&n->closing, true);
  pn_timer_cancel(n->retry);
  n->retry = NULL;
  if (!n->nlinks || pn_timer_start(self, PN__NODE_FINISH, 2 * n->detect_us, 0,
                                   NULL) != PN_OK) {
    node_finish(n, self);
    return;
  }
  for (size_t i = 0; i < n->nlinks; i++) {
    /* What senders left in Batches goes first, then the link drains. */
    if (n->links[i]->credit) {
      pn__batch_flush_all(n->links[i]->credit);
    }
    (void)pn_peer_disconnect_later(n->links[i]->peer, PN_NODE_REASON_LEFT,
                                   n->detect_us);
  }
}

void pn__node_links_gone(pn_node *n) {
  if (n->host) {
    node_finish(n, n->actor);
  }
}

static void node_handler(pn_actor *self, void *state, const pn_msg *msg) {
  pn_node *n = state;
  switch (pn_msg_type(msg)) {
  case PN__NODE_RETRY:
    if (!atomic_load(&n->closing)) {
      pn__links_tick(n);
    }
    return;
  case PN__NODE_LOOKUP:
    if (pn_msg_size(msg) == sizeof(pn__lookup)) {
      pn__lookup q;
      memcpy(&q, pn_msg_data(msg), sizeof q);
      pn__lookup_start(n, &q);
    }
    return;
  case PN__NODE_MONITOR:
    if (pn_msg_size(msg) == sizeof(pn__rmon)) {
      pn__rmon m;
      memcpy(&m, pn_msg_data(msg), sizeof m);
      pn__monitor_start(n, &m);
    }
    return;
  case PN__NODE_DEMONITOR:
    if (pn_msg_size(msg) == sizeof(uint64_t)) {
      uint64_t id;
      memcpy(&id, pn_msg_data(msg), sizeof id);
      pn__monitor_stop(n, id);
    }
    return;
  case PN_MSG_DOWN:
    pn__monitor_local_down(n, msg);
    return;
  case PN__NODE_CREDIT:
    /* The message holds the credit (credit.c gives it back). */
    pn__credit_grant_due((pn__credit *)(uintptr_t)pn_msg_data(msg));
    return;
  case PN__NODE_CLOSE:
    if (pn_msg_size(msg) == sizeof(pn__node_closer *)) {
      memcpy(&n->closer, pn_msg_data(msg), sizeof n->closer);
    }
    node_leave(n, self);
    return;
  case PN__NODE_FINISH:
    if (n->host) {
      node_finish(n, self);
    }
    return;
  case PN_MSG_STOPPED:
    if (n->host) {
      node_finish(n, self);
    }
    pn_actor_release(n->actor);
    node_free(n);
    return;
  default:
    pn__link_event(n, msg);
    return;
  }
}

static pn_err check_config(const pn_node_config *cfg) {
  if (!cfg || cfg->size < sizeof(pn_node_config) || !cfg->name ||
      !pn__node_name_ok(cfg->name) || cfg->lanes > PN_NODE_LANES_MAX ||
      (cfg->detect_us &&
       (cfg->detect_us < 100000u || cfg->detect_us > PN_HOST_TIME_MAX_US)) ||
      (cfg->lane_window && (cfg->lane_window < PN__CREDIT_WINDOW_MIN ||
                            cfg->lane_window > PN_NODE_LANE_WINDOW_MAX)) ||
      (cfg->seed_count && !cfg->seeds)) {
    return PN_EINVAL;
  }
  for (uint32_t i = 0; i < cfg->seed_count; i++) {
    uint16_t f = cfg->seeds[i].family;
    if (f != PN_AF_INET && f != PN_AF_INET6) {
      return PN_EINVAL;
    }
  }
  return PN_OK;
}

static pn_err open_host(pn_node *n, const pn_node_config *cfg) {
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = cfg->host ? cfg->host : "127.0.0.1";
  sc.port = cfg->port;
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.accept_owner = n->actor;
  hc.home_worker = cfg->home_worker;
  hc.psk = cfg->cluster_key;
  hc.idle_timeout_us = n->detect_us;
  hc.keepalive_us = n->detect_us / 4;
  hc.no_delivery_events = true;
  /* Room for everything the lanes' credit lets out (two windows and one
   * largest envelope each) and the control lane: the link never refuses
   * a Batch of senders that kept to it. */
  uint64_t queued =
      (uint64_t)n->lanes * (2 * n->lane_window + PN__CREDIT_LARGEST) +
      (1u << 20);
  hc.max_queued = queued > UINT32_MAX ? UINT32_MAX : (uint32_t)queued;
  return pn_host_open(n->rt, &hc, &n->host);
}

pn_err pn_node_open(pn_runtime *rt, const pn_node_config *cfg,
                    pn_node **node_out) {
  if (!rt || !node_out) {
    return PN_EINVAL;
  }
  pn_err err = check_config(cfg);
  if (err != PN_OK) {
    return err;
  }
  if (cfg->home_worker < -1 ||
      (cfg->home_worker >= 0 &&
       (uint32_t)cfg->home_worker >= pn_runtime_workers(rt))) {
    return PN_EINVAL;
  }
  pn_node *n = pn__calloc(1, sizeof *n);
  if (!n) {
    return PN_ENOMEM;
  }
  n->rt = rt;
  pn__list_init(&n->stat.link);
  memcpy(n->name, cfg->name, strlen(cfg->name)); /* length checked */
  n->id = pn__node_id_of(cfg->name);
  do {
    randombytes_buf(&n->incarnation, sizeof n->incarnation);
  } while (!n->incarnation);
  n->lanes = cfg->lanes ? cfg->lanes : 8u;
  n->detect_us = cfg->detect_us ? cfg->detect_us : 1000000u;
  n->lane_window =
      cfg->lane_window ? cfg->lane_window : PN__CREDIT_WINDOW_DEFAULT;
  pthread_rwlock_init(&n->lock, NULL);
  pthread_mutex_init(&n->exports_lock, NULL);
  size_t caches = pn_runtime_workers(rt) * sizeof(pn__sender_cache);
  n->senders = pn__aligned_alloc(64, caches);
  if (!n->senders) {
    node_free(n);
    return PN_ENOMEM;
  }
  memset(n->senders, 0, caches);
  if (cfg->seed_count) {
    n->seeds = pn__calloc(cfg->seed_count, sizeof *n->seeds);
    if (!n->seeds) {
      node_free(n);
      return PN_ENOMEM;
    }
    memcpy(n->seeds, cfg->seeds, cfg->seed_count * sizeof *n->seeds);
    n->nseeds = cfg->seed_count;
  }
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = "node";
  ac.handler = node_handler;
  ac.state = n;
  ac.home_worker = cfg->home_worker;
  /* Never muted by a slow receiver: what it delivers is bounded by the
   * credit it grants, and muting it would stall every link. */
  err = pn__spawn(rt, &ac, PN__A_NEVER_MUTED, &n->actor);
  if (err != PN_OK) {
    node_free(n);
    return err;
  }
  /* From here the actor frees the node when it stops. */
  err = open_host(n, cfg);
  if (err == PN_OK) {
    err = pn_timer_start(n->actor, PN__NODE_RETRY, 0, n->detect_us, &n->retry);
  }
  if (err != PN_OK) {
    (void)pn_send(n->actor, PN__NODE_CLOSE, NULL, 0);
    return err;
  }
  (void)pn_host_local_addr(n->host, 0, &n->listen);
  pn__registry_add(rt, &n->stat, &pn__node_class);
  *node_out = n;
  return PN_OK;
}

void pn_node_close(pn_node *node) {
  if (!node) {
    return;
  }
  /* The node actor marks it closing when it takes this: marked here, a
   * link that goes meanwhile could finish the node before the message
   * that names the waiter arrives. A handler must not block: it leaves
   * the node to leave on its own. */
  pn__node_closer c = {.done = false};
  pn__node_closer *cp = pn_self() ? NULL : &c;
  if (cp) {
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cv, NULL);
  }
  if (pn_send(node->actor, PN__NODE_CLOSE, &cp, sizeof cp) != PN_OK) {
    (void)pn_actor_stop(node->actor); /* frees it as it stops */
  } else if (cp) {
    pthread_mutex_lock(&c.lock);
    while (!c.done) {
      pthread_cond_wait(&c.cv, &c.lock);
    }
    pthread_mutex_unlock(&c.lock);
  }
  if (cp) {
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.lock);
  }
}

const char *pn_node_name(const pn_node *node) {
  return node ? node->name : NULL;
}

pn_ref pn_node_self(const pn_node *node) {
  return node ? (pn_ref){.node = node->id, .incarnation = node->incarnation}
              : (pn_ref){0};
}

pn_err pn_node_addr(const pn_node *node, pn_addr *out) {
  if (!node || !out) {
    return PN_EINVAL;
  }
  *out = node->listen; /* set once, at the open: no race with the close */
  return PN_OK;
}

void *pn__node_grow(void *items, size_t *cap, size_t count, size_t size) {
  if (count < *cap) {
    return items;
  }
  size_t ncap = *cap ? 2 * *cap : 8;
  void *v = realloc(items, ncap * size);
  if (v) {
    *cap = ncap;
  }
  return v;
}

/* --- events -------------------------------------------------------------- */

static pn_node_event event_of(const char *name, const pn_ref *who,
                              const pn_addr *addr, uint32_t reason) {
  pn_node_event ev;
  memset(&ev, 0, sizeof ev);
  memcpy(ev.name, name, strnlen(name, PN_NODE_NAME_MAX));
  ev.node = *who;
  ev.addr = *addr;
  ev.reason = reason;
  return ev;
}

void pn__node_tell(pn_node *n, uint32_t type, const char *name,
                   const pn_ref *who, const pn_addr *addr, uint32_t reason) {
  pn_node_event ev = event_of(name, who, addr, reason);
  atomic_fetch_add(type == PN_MSG_NODE_UP ? &n->joins : &n->leaves, 1);
  pthread_rwlock_rdlock(&n->lock);
  for (uint32_t i = 0; i < n->nsubscribers; i++) {
    /* A subscriber that stopped misses it; one that is full is muted
     * like any receiver. */
    (void)pn__send_parts(n->subscribers[i], type, &ev, sizeof ev, NULL, 0);
  }
  pthread_rwlock_unlock(&n->lock);
}

pn_err pn_node_subscribe(pn_node *node, pn_actor *to) {
  if (!node || !to) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  pthread_rwlock_wrlock(&node->lock);
  if (node->nsubscribers == PN__NODE_SUBSCRIBERS) {
    pthread_rwlock_unlock(&node->lock);
    return PN_ERANGE;
  }
  pn_actor_hold(to);
  node->subscribers[node->nsubscribers++] = to;
  /* Those already up, told now; later ones as they come (the node actor
   * tells under the read lock, so none is told twice or missed). */
  for (size_t i = 0; i < node->nmembers; i++) {
    const pn__member *m = node->members[i];
    if (m->up) {
      pn_node_event ev = event_of(
          m->name, &(pn_ref){.node = m->id, .incarnation = m->incarnation},
          &m->addr, 0);
      (void)pn__send_parts(to, PN_MSG_NODE_UP, &ev, sizeof ev, NULL, 0);
    }
  }
  pthread_rwlock_unlock(&node->lock);
  return PN_OK;
}

pn_err pn_msg_node_event(const pn_msg *msg, pn_node_event *out) {
  if (!msg || !out ||
      (pn_msg_type(msg) != PN_MSG_NODE_UP &&
       pn_msg_type(msg) != PN_MSG_NODE_DOWN) ||
      pn_msg_size(msg) != sizeof *out) {
    return PN_EINVAL;
  }
  memcpy(out, pn_msg_data(msg), sizeof *out);
  return PN_OK;
}

/* --- list and counters --------------------------------------------------- */

pn_err pn_node_list(pn_node *node, pn_node_info *out, size_t cap,
                    size_t *count) {
  if (!node || !count || (!out && cap)) {
    return PN_EINVAL;
  }
  size_t k = 0;
  pthread_rwlock_rdlock(&node->lock);
  for (size_t i = 0; i < node->nmembers; i++) {
    const pn__member *m = node->members[i];
    if (!m->up) {
      continue;
    }
    if (k < cap) {
      pn_node_info *o = &out[k];
      memset(o, 0, sizeof *o);
      memcpy(o->name, m->name, sizeof o->name);
      o->node = (pn_ref){.node = m->id, .incarnation = m->incarnation};
      o->addr = m->addr;
      pn_peer_stats ps;
      if (m->link && pn_peer_stats_get(m->link->peer, &ps) == PN_OK) {
        o->srtt_us = ps.srtt_us;
        o->loss = ps.loss;
        o->datagrams_out = ps.datagrams_out;
        o->datagrams_in = ps.datagrams_in;
      }
      o->messages_out = atomic_load(&m->msgs_out);
      o->messages_in = atomic_load(&m->msgs_in);
    }
    k++;
  }
  pthread_rwlock_unlock(&node->lock);
  *count = k;
  return PN_OK;
}

const pn__stat_class pn__node_class = {.name = "node"};

size_t pn__node_snap_links(pn_node *n) {
  size_t k = 0;
  pthread_rwlock_rdlock(&n->lock);
  for (size_t i = 0; i < n->nmembers; i++) {
    k += n->members[i]->up;
  }
  pthread_rwlock_unlock(&n->lock);
  return k;
}

size_t pn__node_snap_fill(pn_node *n, pn_local_node_info *o,
                          pn_node_link_info *links, size_t cap) {
  memset(o, 0, sizeof *o);
  memcpy(o->name, n->name, sizeof n->name);
  o->id = n->id;
  o->incarnation = n->incarnation;
  (void)pn_addr_format(&n->listen, o->listen, sizeof o->listen);
  o->lanes = n->lanes;
  pn_node_stats st;
  (void)pn_node_stats_get(n, &st);
  o->sent_local = st.sent_local;
  o->sent_remote = st.sent_remote;
  o->delivered = st.delivered;
  o->dropped_no_actor = st.dropped_no_actor;
  o->dropped_stale = st.dropped_stale;
  o->dropped_bad = st.dropped_bad;
  o->joins = st.joins;
  o->leaves = st.leaves;
  o->senders_muted = st.senders_muted;
  o->sends_refused = st.sends_refused;
  /* pn_node_list's rows, in this snapshot's shape: under one read lock,
   * so the count and the rows are the links up at one moment. */
  size_t k = 0;
  pthread_rwlock_rdlock(&n->lock);
  for (size_t i = 0; i < n->nmembers; i++) {
    const pn__member *m = n->members[i];
    if (!m->up || ++o->links > cap) {
      continue;
    }
    pn_node_link_info *l = &links[k++];
    memset(l, 0, sizeof *l);
    l->node_id = n->id;
    memcpy(l->name, m->name, sizeof m->name);
    l->id = m->id;
    l->incarnation = m->incarnation;
    (void)pn_addr_format(&m->addr, l->remote, sizeof l->remote);
    pn_peer_stats ps;
    if (m->link && pn_peer_stats_get(m->link->peer, &ps) == PN_OK) {
      l->peer_id = pn_peer_id(m->link->peer);
      l->srtt_us = ps.srtt_us;
      l->loss = ps.loss;
    }
    l->messages_out = atomic_load(&m->msgs_out);
    l->messages_in = atomic_load(&m->msgs_in);
  }
  pthread_rwlock_unlock(&n->lock);
  o->link_count = k;
  return k;
}

pn_err pn_node_stats_get(const pn_node *node, pn_node_stats *out) {
  if (!node || !out) {
    return PN_EINVAL;
  }
  pn_node *n = (pn_node *)node; /* the lock, not the node, changes */
  memset(out, 0, sizeof *out);
  pthread_rwlock_rdlock(&n->lock);
  for (size_t i = 0; i < n->nmembers; i++) {
    out->nodes += n->members[i]->up;
  }
  pthread_rwlock_unlock(&n->lock);
  out->sent_local = atomic_load(&n->sent_local);
  out->sent_remote = atomic_load(&n->sent_remote);
  out->delivered = atomic_load(&n->delivered);
  out->dropped_no_actor = atomic_load(&n->dropped_no_actor);
  out->dropped_stale = atomic_load(&n->dropped_stale);
  out->dropped_bad = atomic_load(&n->dropped_bad);
  out->dropped_unsent = atomic_load(&n->dropped_unsent);
  out->joins = atomic_load(&n->joins);
  out->leaves = atomic_load(&n->leaves);
  out->senders_muted = atomic_load(&n->senders_muted);
  out->sends_refused = atomic_load(&n->sends_refused);
  return PN_OK;
}
