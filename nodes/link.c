/* Links and membership, on the node actor (nodes/node.h).
 *
 * A link starts as a PeerNet peer (to a seed, to a member heard of, or
 * accepted). Once connected, each end sends Hello on lane 0; the Hello
 * names the node. Of the two, the one with the smaller id is the
 * arbiter: on the other's Hello it takes the link (sends Accept) unless
 * that node's run is linked already, and then it closes the new one; the
 * other end takes a link only on its Accept. So duplicate links (both
 * dialled at once, or one through a seed) are settled by one node alone,
 * whatever order the Hellos came in, and nothing but Hello is sent on a
 * link before both ends have it. Each end then sends the other its
 * members, and tells its other links of the newcomer: a node connects to
 * every member it hears of whose id is above its own (the other, hearing
 * of it, waits), so the cluster becomes a full mesh with one link per
 * pair.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nodes/credit.h"
#include "nodes/envelope.h"
#include "nodes/node.h"
#include "peernet_node.pb-c.h"
#include "runtime/alloc.h"

/* Reasons a node gives when it closes a link (below PN_REASON_LIBRARY:
 * the host's application is the node). */
#define PN__NODE_REASON_SELF 0xFFFFFE01u      /* a link to itself */
#define PN__NODE_REASON_DUPLICATE 0xFFFFFE02u /* another link stays */
#define PN__NODE_REASON_BAD 0xFFFFFE03u       /* broke the protocol */

typedef Peernet__Node__V1__Control Control;
typedef Peernet__Node__V1__Hello Hello;
typedef Peernet__Node__V1__Accept Accept;
typedef Peernet__Node__V1__Members Members;
typedef Peernet__Node__V1__Member Member;

uint64_t pn__node_id_of(const char *name) {
  uint64_t id = 0;
  crypto_generichash((unsigned char *)&id, sizeof id,
                     (const unsigned char *)name, strlen(name), NULL, 0);
  return id ? id : 1;
}

bool pn__node_name_ok(const char *name) {
  size_t len = strnlen(name, PN_NODE_NAME_MAX + 1);
  if (len == 0 || len > PN_NODE_NAME_MAX) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

pn__member *pn__member_find(const pn_node *n, uint64_t id) {
  for (size_t i = 0; i < n->nmembers; i++) {
    if (n->members[i]->id == id) {
      return n->members[i];
    }
  }
  return NULL;
}

/* --- the links of this node (the node actor's alone) --------------------- */

static bool links_add(pn_node *n, pn__link *l) {
  pn__link **v = pn__node_grow(n->links, &n->links_cap, n->nlinks, sizeof *v);
  if (!v) {
    return false;
  }
  n->links = v;
  n->links[n->nlinks++] = l;
  return true;
}

static void links_remove(pn_node *n, pn__link *l) {
  for (size_t i = 0; i < n->nlinks; i++) {
    if (n->links[i] == l) {
      n->links[i] = n->links[--n->nlinks];
      return;
    }
  }
}

static void early_free(pn__link *l) {
  for (size_t i = 0; i < l->nearly; i++) {
    pn_packet_release(l->early[i].pkt);
  }
  free(l->early);
  l->early = NULL;
  l->nearly = l->early_cap = 0;
  l->early_bytes = 0;
}

static void link_free(pn_node *n, pn__link *l) {
  early_free(l);
  if (l->credit) {
    atomic_fetch_add(&n->dropped_unsent, pn__batch_drop_all(l->credit));
    pn__credit_link_gone(l->credit);
    pn__credit_release(l->credit);
  }
  pn_peer_release(l->peer);
  free(l);
}

void pn__links_close(pn_node *n) {
  for (size_t i = 0; i < n->nlinks; i++) {
    link_free(n, n->links[i]);
  }
  free(n->links);
  n->links = NULL;
  n->nlinks = n->links_cap = 0;
}

void pn__link_connect(pn_node *n, const pn_addr *to, bool seed) {
  for (size_t i = 0; i < n->nlinks; i++) {
    const pn__link *l = n->links[i];
    if (pn_addr_equal(&l->addr, to) &&
        (l->initiated || (l->member && l->member->up))) {
      return; /* dialled already, or linked from there */
    }
  }
  pn__link *l = pn__calloc(1, sizeof *l);
  if (!l) {
    return; /* the retry timer tries again */
  }
  l->addr = *to;
  l->initiated = true;
  l->seed = seed;
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = *to;
  pc.owner = n->actor;
  pc.channel_count = 1 + n->lanes; /* all ORDERED */
  pc.user = l;
  pc.no_delivery_events = true;
  if (pn_host_connect(n->host, &pc, &l->peer) != PN_OK || !links_add(n, l)) {
    if (l->peer) {
      (void)pn_peer_disconnect(l->peer, PN__NODE_REASON_BAD);
      pn_peer_release(l->peer);
    }
    free(l);
  }
}

/* --- control messages ---------------------------------------------------- */

static void send_members(pn_node *n, pn__link *l, const pn__member *only,
                         const pn__member *except);

void pn__links_tick(pn_node *n) {
  bool any = false;
  for (size_t i = 0; i < n->nmembers; i++) {
    pn__member *m = n->members[i];
    if (m->up) {
      any = true;
      /* Anti-entropy: a node that missed a newcomer (or failed to dial
       * it) hears of it again. */
      send_members(n, m->link, NULL, m);
      /* And credit a refused Credit left owing. */
      pn__credit_grant_due(m->link->credit);
    }
  }
  for (uint32_t i = 0; !any && i < n->nseeds; i++) {
    pn__link_connect(n, &n->seeds[i], true);
  }
}

pn_err pn__link_send_control(pn__link *l, const Control *c) {
  pn_packet *pkt = NULL;
  if (!l || !l->peer) {
    return PN_ECLOSED;
  }
  pn_err err = pn_packet_from_protobuf(&c->base, &pkt);
  if (err == PN_OK) {
    err = pn_channel_send_packet(pn_peer_channel(l->peer, 0), pkt, NULL);
    pn_packet_release(pkt);
  }
  return err;
}

static void send_hello(pn_node *n, pn__link *l) {
  Hello h = PEERNET__NODE__V1__HELLO__INIT;
  h.version = PN__NODE_VERSION;
  h.name = n->name;
  h.incarnation = n->incarnation;
  h.lanes = n->lanes;
  h.lane_window = n->lane_window;
  Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_HELLO;
  c.hello = &h;
  pn__link_send_control(l, &c);
}

/* Members (those up, but `except`) to link l: all of them, or only m. */
static void send_members(pn_node *n, pn__link *l, const pn__member *only,
                         const pn__member *except) {
  size_t cap = only ? 1 : n->nmembers;
  Member *ms = calloc(cap ? cap : 1, sizeof *ms);
  Member **ptrs = calloc(cap ? cap : 1, sizeof *ptrs);
  char(*addrs)[PN_ADDR_STRLEN] = calloc(cap ? cap : 1, sizeof *addrs);
  if (!ms || !ptrs || !addrs) {
    free(ms);
    free(ptrs);
    free(addrs);
    return;
  }
  size_t k = 0;
  for (size_t i = 0; i < n->nmembers && k < cap; i++) {
    const pn__member *m = only ? only : n->members[i];
    if (!m->up || m == except ||
        pn_addr_format(&m->addr, addrs[k], sizeof addrs[k]) != PN_OK) {
      if (only) {
        break;
      }
      continue;
    }
    peernet__node__v1__member__init(&ms[k]);
    ms[k].name = (char *)m->name;
    ms[k].incarnation = m->incarnation;
    ms[k].addr = addrs[k];
    ptrs[k] = &ms[k];
    k++;
    if (only) {
      break;
    }
  }
  if (k) {
    Members mb = PEERNET__NODE__V1__MEMBERS__INIT;
    mb.n_members = k;
    mb.members = ptrs;
    Control c = PEERNET__NODE__V1__CONTROL__INIT;
    c.body_case = PEERNET__NODE__V1__CONTROL__BODY_MEMBERS;
    c.members = &mb;
    pn__link_send_control(l, &c);
  }
  free(ms);
  free(ptrs);
  free(addrs);
}

static bool members_add(pn_node *n, pn__member *m) {
  pn__member **v = pn__node_grow(n->members, &n->cap, n->nmembers, sizeof *v);
  if (!v) {
    return false;
  }
  n->members = v;
  n->members[n->nmembers++] = m;
  return true;
}

/* Under the write lock. */
static void members_remove(pn_node *n, pn__member *m) {
  for (size_t i = 0; i < n->nmembers; i++) {
    if (n->members[i] == m) {
      n->members[i] = n->members[--n->nmembers];
      return;
    }
  }
}

/* This node closes l: what still comes on it is ignored. */
static void close_link(pn__link *l, uint32_t reason) {
  l->closing = true;
  (void)pn_peer_disconnect(l->peer, reason);
}

static void bad_link(pn_node *n, pn__link *l) {
  if (!l->closing) {
    atomic_fetch_add(&n->dropped_bad, 1);
    close_link(l, PN__NODE_REASON_BAD);
  }
}

/* A member's link is gone (or let go): what waited on it fails, and
 * subscribers hear it is down. Node actor, the member's link detached. */
static void member_down(pn_node *n, const pn__member *m, uint32_t reason) {
  pn__lookups_fail(n, m->id, PN_EUNREACHABLE);
  pn__monitors_gone(n, m->id);
  pn__node_tell(n, PN_MSG_NODE_DOWN, m->name,
                &(pn_ref){.node = m->id, .incarnation = m->incarnation},
                &m->addr, reason);
}

/* A lane message on a link not taken yet: held for the arbiter's Accept,
 * within what the lanes' credit lets a sender have out. Only the arbiter
 * sends on a link before this end took it (it took it first). */
static void hold_early(pn_node *n, pn__link *l, const pn_peer_event *ev) {
  uint64_t max =
      (uint64_t)l->credit->lanes * (2 * l->credit->window + PN__CREDIT_LARGEST);
  /* Only what reads as a Batch: anything else breaks the protocol now. */
  const uint8_t *cur = ev->data, *end = cur + ev->len;
  pn__envelope env;
  bool ok = true;
  while (pn__batch_next(&cur, end, &env, &ok)) {
  }
  bool arbiter_sent = !l->other_id || l->other_id < n->id;
  pn__early *v =
      !ok || !arbiter_sent || ev->channel > l->credit->lanes ||
              l->early_bytes + ev->len > max
          ? NULL
          : pn__node_grow(l->early, &l->early_cap, l->nearly, sizeof *v);
  if (!v) {
    bad_link(n, l);
    return;
  }
  l->early = v;
  pn_packet_hold(ev->packet);
  l->early[l->nearly++] = (pn__early){ev->packet, ev->channel};
  l->early_bytes += ev->len;
}

/* The link was taken: what was held for it, in the order it came. */
static void deliver_early(pn_node *n, pn__link *l) {
  for (size_t i = 0; i < l->nearly && l->member; i++) {
    pn_packet *pkt = l->early[i].pkt;
    pn_peer_event ev = {.peer = l->peer,
                        .channel = l->early[i].channel,
                        .packet = pkt,
                        .data = pn_packet_data(pkt),
                        .len = pn_packet_len(pkt)};
    if (!pn__ref_deliver(n, l, &ev)) {
      bad_link(n, l);
      break;
    }
  }
  early_free(l);
}

/* l becomes the link to the node whose Hello it carried: the arbiter
 * takes it on that Hello (and says so with Accept), the other end on the
 * Accept. A run of that node linked still on another link is down first:
 * a new incarnation means the old run is gone, and the arbiter takes a
 * new link of the same run only once it let the old one go. */
static void take(pn_node *n, pn__link *l, bool arbiter) {
  /* Before any send can find the link (the member below). */
  pn__credit_start(l->credit, l->other_window);
  pthread_rwlock_wrlock(&n->lock);
  pn__member *m = pn__member_find(n, l->other_id);
  pn__link *old = NULL;
  if (m && m->up) {
    old = m->link;
    pn__credit_link_gone(old->credit); /* its muted senders go on */
    old->member = NULL;
    m->link = NULL;
    m->up = false;
  }
  if (!m) {
    m = pn__calloc(1, sizeof *m);
    if (!m || !members_add(n, m)) {
      pthread_rwlock_unlock(&n->lock);
      free(m);
      close_link(l, PN__NODE_REASON_BAD);
      return;
    }
    memcpy(m->name, l->other_name, sizeof m->name);
    m->id = l->other_id;
  }
  pthread_rwlock_unlock(&n->lock);
  if (old) {
    bool restarted = m->incarnation != l->other_incarnation;
    member_down(n, m,
                restarted ? PN_REASON_TIMEOUT : PN__NODE_REASON_DUPLICATE);
    close_link(old, PN__NODE_REASON_DUPLICATE);
  }
  pthread_rwlock_wrlock(&n->lock);
  m->incarnation = l->other_incarnation;
  m->addr = l->addr;
  m->link = l;
  m->up = true;
  l->member = m;
  pthread_rwlock_unlock(&n->lock);
  if (arbiter) {
    Accept a = PEERNET__NODE__V1__ACCEPT__INIT;
    Control c = PEERNET__NODE__V1__CONTROL__INIT;
    c.body_case = PEERNET__NODE__V1__CONTROL__BODY_ACCEPT;
    c.accept = &a;
    if (pn__link_send_control(l, &c) != PN_OK) {
      /* The other end would wait for it: the link goes (its DOWN, from
       * on_down, says so). */
      close_link(l, PN__NODE_REASON_BAD);
      return;
    }
  }
  pn__node_tell(n, PN_MSG_NODE_UP, m->name,
                &(pn_ref){.node = m->id, .incarnation = m->incarnation},
                &m->addr, 0);
  /* What this node knows, to the newcomer; the newcomer, to the rest. */
  send_members(n, l, NULL, m);
  for (size_t i = 0; i < n->nmembers; i++) {
    pn__member *o = n->members[i];
    if (o != m && o->up) {
      send_members(n, o->link, m, NULL);
    }
  }
  deliver_early(n, l);
}

static void on_hello(pn_node *n, pn__link *l, const Hello *h) {
  if (l->other_id || !l->credit || h->version < PN__NODE_VERSION ||
      h->lane_window < PN__CREDIT_WINDOW_MIN ||
      h->lane_window > PN_NODE_LANE_WINDOW_MAX || !h->name ||
      !pn__node_name_ok(h->name) || !h->incarnation ||
      pn_peer_channel_count(l->peer) < 2) {
    bad_link(n, l);
    return;
  }
  uint64_t id = pn__node_id_of(h->name);
  if (id == n->id) {
    close_link(l, PN__NODE_REASON_SELF);
    return;
  }
  l->other_id = id;
  l->other_incarnation = h->incarnation;
  l->other_window = h->lane_window;
  memset(l->other_name, 0, sizeof l->other_name);
  memcpy(l->other_name, h->name, strlen(h->name)); /* length checked */
  if (id < n->id) {
    return; /* the other end decides: its Accept, or it closes the link */
  }
  /* This node is the arbiter: one link per run of that node, the first.
   * The other end sends on a link only once this one took it. */
  if (l->nearly) {
    bad_link(n, l);
    return;
  }
  const pn__member *m = pn__member_find(n, id);
  if (m && m->up && m->incarnation == h->incarnation) {
    close_link(l, PN__NODE_REASON_DUPLICATE);
    return;
  }
  take(n, l, true);
}

static void on_accept(pn_node *n, pn__link *l) {
  /* Only from the arbiter, once, after its Hello. */
  if (!l->other_id || l->other_id > n->id || l->member) {
    bad_link(n, l);
    return;
  }
  take(n, l, false);
}

static void on_members(pn_node *n, pn__link *l, const Members *mb) {
  if (!l->member) {
    bad_link(n, l); /* before its Hello */
    return;
  }
  for (size_t i = 0; i < mb->n_members; i++) {
    const Member *e = mb->members[i];
    pn_addr addr;
    if (!e->name || !pn__node_name_ok(e->name) || !e->incarnation || !e->addr ||
        pn_addr_parse(e->addr, &addr) != PN_OK) {
      atomic_fetch_add(&n->dropped_bad, 1);
      continue;
    }
    uint64_t id = pn__node_id_of(e->name);
    if (id == n->id) {
      continue;
    }
    /* The node actor alone changes members: no lock to read them. */
    const pn__member *m = pn__member_find(n, id);
    bool known = m && m->up && m->incarnation == e->incarnation;
    /* The one with the smaller id dials; the other hears of it too and
     * waits for it. */
    if (!known && n->id < id) {
      pn__link_connect(n, &addr, false);
    }
  }
}

static void on_control(pn_node *n, pn__link *l, const pn_peer_event *ev) {
  if (l->closing) {
    return; /* sent before the other end heard it goes */
  }
  Control *c = peernet__node__v1__control__unpack(NULL, ev->len, ev->data);
  if (!c) {
    bad_link(n, l);
    return;
  }
  switch (c->body_case) {
  case PEERNET__NODE__V1__CONTROL__BODY_HELLO:
    on_hello(n, l, c->hello);
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_ACCEPT:
    on_accept(n, l);
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_MEMBERS:
    on_members(n, l, c->members);
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_LOOKUP:
    if (l->member) {
      pn__lookup_answer(n, l, c->lookup);
    } else {
      bad_link(n, l); /* before its Hello */
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_LOOKUP_REPLY:
    if (l->member) {
      pn__lookup_answered(n, l->member, false, c->lookup_reply->request,
                          c->lookup_reply->actor, PN_OK);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_SPAWN:
    if (l->member) {
      pn__spawn_answer(n, l, c->spawn);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_SPAWN_REPLY:
    if (l->member) {
      /* Whatever the other node says, a failure is a failure. */
      int32_t st = c->spawn_reply->status;
      pn__lookup_answered(n, l->member, true, c->spawn_reply->request,
                          c->spawn_reply->actor, st < 0 ? (pn_err)st : PN_OK);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_MONITOR:
    if (l->member) {
      pn__monitor_asked(n, l, c->monitor);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_DEMONITOR:
    if (l->member) {
      pn__demonitor_asked(n, l, c->demonitor);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_DOWN:
    if (l->member) {
      pn__monitor_answered(n, l, c->down);
    } else {
      bad_link(n, l);
    }
    break;
  case PEERNET__NODE__V1__CONTROL__BODY_CREDIT:
    if (l->member) {
      pn__credit_heard(l->credit, c->credit);
    } else {
      bad_link(n, l);
    }
    break;
  default:
    break; /* a later version's: ignored */
  }
  peernet__node__v1__control__free_unpacked(c, NULL);
}

static void on_down(pn_node *n, pn__link *l, uint32_t reason) {
  links_remove(n, l);
  pn__member *m = l->member;
  if (m && m->link == l) {
    pthread_rwlock_wrlock(&n->lock);
    members_remove(n, m);
    pthread_rwlock_unlock(&n->lock);
    member_down(n, m, reason);
    free(m);
  }
  link_free(n, l);
  if (!n->nlinks && atomic_load(&n->closing)) {
    pn__node_links_gone(n);
  }
}

void pn__link_event(pn_node *n, const pn_msg *msg) {
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  /* An event carries the user pointer as it was when the peer made it:
   * an accepted peer's first packets may be made before this actor's
   * CONNECTED handler set it (and are handled after it: one peer's
   * events keep their order). */
  pn__link *l = ev.user ? ev.user : pn_peer_user(ev.peer);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if (atomic_load(&n->closing)) {
      /* Leaving: no new link. One this node dialled goes when its
       * DISCONNECTED comes; an accepted one is not ours to hold. */
      (void)pn_peer_disconnect(ev.peer, PN_NODE_REASON_LEFT);
      return;
    }
    if (!l) { /* accepted */
      l = pn__calloc(1, sizeof *l);
      if (!l || !links_add(n, l)) {
        free(l);
        (void)pn_peer_disconnect(ev.peer, PN__NODE_REASON_BAD);
        return;
      }
      pn_peer_hold(ev.peer);
      l->peer = ev.peer;
      l->addr = ev.addr;
      (void)pn_peer_set_user(ev.peer, l);
    }
    l->credit =
        pn__credit_new(n->actor, l, ev.peer, pn_peer_channel_count(ev.peer) - 1,
                       n->lane_window);
    if (!l->credit) {
      (void)pn_peer_disconnect(ev.peer, PN__NODE_REASON_BAD);
      return;
    }
    l->connected = true;
    send_hello(n, l);
    return;
  case PN_MSG_PEER_PACKET:
    if (!l) {
      return;
    }
    if (ev.channel == 0) {
      on_control(n, l, &ev);
    } else if (l->member && l->member->link == l) {
      if (!pn__ref_deliver(n, l, &ev)) {
        bad_link(n, l);
      }
    } else if (!l->closing) {
      hold_early(n, l, &ev); /* before the arbiter's Accept */
    }
    return;
  case PN_MSG_PEER_DISCONNECTED:
    if (l) {
      on_down(n, l, ev.reason);
    }
    return;
  case PN_MSG_PEER_WRITABLE:
    if (l && l->credit) {
      pn__batch_flush_all(l->credit); /* what the link had refused */
      pn__credit_grant_due(l->credit);
    }
    return;
  default:
    return;
  }
}
