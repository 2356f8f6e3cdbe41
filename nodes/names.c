/* Requests between nodes (include/peernet/node.h): actors registered
 * under a name and looked up as "<node>/<name>" from any node; behaviours
 * registered by name and spawned from any node.
 *
 * A request for this node is answered at once. One for another node goes
 * to the node actor (PN__NODE_LOOKUP), which numbers it, sends it on the
 * link's lane 0 (Lookup, Spawn) and keeps it until the answer (LookupReply,
 * SpawnReply), or until that node goes down or this one closes: every
 * request gets exactly one reply.
 */
#include <stdlib.h>
#include <string.h>

#include "nodes/node.h"
#include "peernet_node.pb-c.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"

/* Under exports_lock. */
static pn__name *name_find(pn_node *n, const char *name) {
  for (size_t i = 0; i < n->nnames; i++) {
    if (strcmp(n->names[i].name, name) == 0) {
      return &n->names[i];
    }
  }
  return NULL;
}

/* The id of the actor registered under name; 0 when none. */
static uint64_t name_actor(pn_node *n, const char *name) {
  pthread_mutex_lock(&n->exports_lock);
  const pn__name *e = name_find(n, name);
  uint64_t id = e ? pn_actor_id(e->actor) : 0;
  pthread_mutex_unlock(&n->exports_lock);
  return id;
}

pn_err pn_node_register(pn_node *node, const char *name, pn_actor *actor) {
  if (!node || !name || !actor || !pn__node_name_ok(name) ||
      pn_actor_runtime(actor) != node->rt) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  if (!pn__ref_export(node, actor)) {
    return PN_ENOMEM;
  }
  pn_err err = PN_OK;
  pthread_mutex_lock(&node->exports_lock);
  if (name_find(node, name)) {
    err = PN_EEXIST;
  } else {
    pn__name *v =
        pn__node_grow(node->names, &node->names_cap, node->nnames, sizeof *v);
    if (v) {
      node->names = v;
    } else {
      err = PN_ENOMEM;
    }
  }
  if (err == PN_OK) {
    pn__name *e = &node->names[node->nnames++];
    memset(e->name, 0, sizeof e->name);
    memcpy(e->name, name, strlen(name)); /* length checked */
    pn_actor_hold(actor);
    e->actor = actor;
  }
  pthread_mutex_unlock(&node->exports_lock);
  return err;
}

pn_err pn_node_unregister(pn_node *node, const char *name) {
  if (!node || !name) {
    return PN_EINVAL;
  }
  pthread_mutex_lock(&node->exports_lock);
  pn__name *e = name_find(node, name);
  pn_actor *gone = NULL;
  if (e) {
    gone = e->actor;
    *e = node->names[--node->nnames];
  }
  pthread_mutex_unlock(&node->exports_lock);
  pn_actor_release(gone);
  return gone ? PN_OK : PN_ENOENT;
}

void pn__names_free(pn_node *n) {
  for (size_t i = 0; i < n->nnames; i++) {
    pn_actor_release(n->names[i].actor);
  }
  free(n->names);
  n->names = NULL;
  n->nnames = n->names_cap = 0;
  free(n->behaviours);
  n->behaviours = NULL;
  pn__lookups_fail(n, 0, PN_ECLOSED);
  free(n->lookups);
  n->lookups = NULL;
}

/* --- lookups -------------------------------------------------------------- */

static void reply(pn_actor *to, bool spawn, uint64_t tag, pn_err status,
                  const pn_ref *ref) {
  pn_node_result r = {.tag = tag, .status = status};
  if (status == PN_OK) {
    r.ref = *ref;
  }
  (void)pn__send_parts(to, spawn ? PN_MSG_NODE_SPAWNED : PN_MSG_NODE_LOOKUP, &r,
                       sizeof r, NULL, 0);
}

/* Gives a request back: its reply sent (or not), its memory freed. */
static void request_done(pn__lookup *q) {
  pn_actor_release(q->reply_to);
  free(q->arg);
  q->arg = NULL;
}

pn_err pn_msg_node_result(const pn_msg *msg, pn_node_result *out) {
  if (!msg || !out ||
      (pn_msg_type(msg) != PN_MSG_NODE_LOOKUP &&
       pn_msg_type(msg) != PN_MSG_NODE_SPAWNED) ||
      pn_msg_size(msg) != sizeof *out) {
    return PN_EINVAL;
  }
  memcpy(out, pn_msg_data(msg), sizeof *out);
  return PN_OK;
}

pn_err pn_node_lookup(pn_node *node, const char *path, pn_actor *reply_to,
                      uint64_t tag) {
  if (!node || !path || !reply_to) {
    return PN_EINVAL;
  }
  pn__lookup q = {.tag = tag, .reply_to = reply_to};
  char where[PN_NODE_NAME_MAX + 1] = {0};
  const char *slash = strchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  size_t wlen = slash ? (size_t)(slash - path) : 0;
  if (wlen > PN_NODE_NAME_MAX || !pn__node_name_ok(name)) {
    return PN_EINVAL;
  }
  memcpy(where, path, wlen);
  if (slash && !pn__node_name_ok(where)) {
    return PN_EINVAL;
  }
  memcpy(q.name, name, strlen(name)); /* length checked */
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  q.node = slash ? pn__node_id_of(where) : node->id;
  if (q.node == node->id) {
    uint64_t id = name_actor(node, q.name);
    pn_ref r = {
        .node = node->id, .incarnation = node->incarnation, .actor = id};
    reply(reply_to, false, tag, id ? PN_OK : PN_ENOENT, &r);
    return PN_OK;
  }
  pn_actor_hold(reply_to); /* the node actor's until it replies */
  pn_err err =
      pn__send_parts(node->actor, PN__NODE_LOOKUP, &q, sizeof q, NULL, 0);
  if (err != PN_OK) {
    pn_actor_release(reply_to);
  }
  return err;
}

void pn__lookup_start(pn_node *n, const pn__lookup *q) {
  pn__lookup own = *q; /* the message's copy: its arg is now ours */
  pn__member *m = pn__member_find(n, q->node);
  if (!m || !m->up || atomic_load(&n->closing)) {
    reply(own.reply_to, own.spawn, own.tag, PN_EUNREACHABLE, NULL);
    request_done(&own);
    return;
  }
  pn__lookup *v =
      pn__node_grow(n->lookups, &n->lookups_cap, n->nlookups, sizeof *v);
  if (!v) {
    reply(own.reply_to, own.spawn, own.tag, PN_ENOMEM, NULL);
    request_done(&own);
    return;
  }
  n->lookups = v;
  pn__lookup *p = &n->lookups[n->nlookups++];
  *p = own;
  p->request = ++n->next_request;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  Peernet__Node__V1__Lookup lk = PEERNET__NODE__V1__LOOKUP__INIT;
  Peernet__Node__V1__Spawn sp = PEERNET__NODE__V1__SPAWN__INIT;
  if (p->spawn) {
    sp.request = p->request;
    sp.behaviour = p->name;
    sp.arg.data = p->arg;
    sp.arg.len = p->arg_len;
    c.body_case = PEERNET__NODE__V1__CONTROL__BODY_SPAWN;
    c.spawn = &sp;
  } else {
    lk.request = p->request;
    lk.name = p->name;
    c.body_case = PEERNET__NODE__V1__CONTROL__BODY_LOOKUP;
    c.lookup = &lk;
  }
  pn__link_send_control(m->link, &c); /* a failure: answered when the
                                         link goes down */
}

void pn__lookup_answer(pn_node *n, pn__link *l,
                       const Peernet__Node__V1__Lookup *q) {
  Peernet__Node__V1__LookupReply r = PEERNET__NODE__V1__LOOKUP_REPLY__INIT;
  r.request = q->request;
  r.actor = q->name && pn__node_name_ok(q->name) ? name_actor(n, q->name) : 0;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_LOOKUP_REPLY;
  c.lookup_reply = &r;
  pn__link_send_control(l, &c);
}

void pn__lookup_answered(pn_node *n, const pn__member *from, bool spawn,
                         uint64_t request, uint64_t actor, pn_err status) {
  for (size_t i = 0; i < n->nlookups; i++) {
    pn__lookup *p = &n->lookups[i];
    if (p->request == request && p->node == from->id && p->spawn == spawn) {
      pn_ref ref = {
          .node = from->id, .incarnation = from->incarnation, .actor = actor};
      if (status == PN_OK && !actor) {
        status = PN_ENOENT;
      }
      reply(p->reply_to, spawn, p->tag, status, &ref);
      request_done(p);
      *p = n->lookups[--n->nlookups];
      return;
    }
  }
  atomic_fetch_add(&n->dropped_bad, 1); /* an answer to nothing asked */
}

void pn__lookups_fail(pn_node *n, uint64_t node, pn_err status) {
  for (size_t i = 0; i < n->nlookups;) {
    pn__lookup *p = &n->lookups[i];
    if (node && p->node != node) {
      i++;
      continue;
    }
    reply(p->reply_to, p->spawn, p->tag, status, NULL);
    request_done(p);
    *p = n->lookups[--n->nlookups];
  }
}

/* --- spawning ---------------------------------------------------------------
 */

pn_err pn_node_behaviour(pn_node *node, const char *name, pn_node_spawn_fn fn,
                         void *ctx) {
  if (!node || !name || !fn || !pn__node_name_ok(name)) {
    return PN_EINVAL;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  pn_err err = PN_OK;
  pthread_mutex_lock(&node->exports_lock);
  for (size_t i = 0; i < node->nbehaviours; i++) {
    if (strcmp(node->behaviours[i].name, name) == 0) {
      err = PN_EEXIST;
    }
  }
  if (err == PN_OK) {
    pn__behaviour *v = pn__node_grow(node->behaviours, &node->behaviours_cap,
                                     node->nbehaviours, sizeof *v);
    if (v) {
      node->behaviours = v;
    } else {
      err = PN_ENOMEM;
    }
  }
  if (err == PN_OK) {
    pn__behaviour *b = &node->behaviours[node->nbehaviours++];
    memset(b, 0, sizeof *b);
    memcpy(b->name, name, strlen(name)); /* length checked */
    b->fn = fn;
    b->ctx = ctx;
  }
  pthread_mutex_unlock(&node->exports_lock);
  return err;
}

/* Spawns here: the new actor's id, or 0 with *err set. */
static uint64_t spawn_here(pn_node *n, const char *behaviour, const void *arg,
                           size_t len, pn_err *err) {
  pn_node_spawn_fn fn = NULL;
  void *ctx = NULL;
  pthread_mutex_lock(&n->exports_lock);
  for (size_t i = 0; i < n->nbehaviours; i++) {
    if (strcmp(n->behaviours[i].name, behaviour) == 0) {
      fn = n->behaviours[i].fn;
      ctx = n->behaviours[i].ctx;
    }
  }
  pthread_mutex_unlock(&n->exports_lock);
  if (!fn) {
    *err = PN_ENOENT;
    return 0;
  }
  pn_actor *a = NULL;
  *err = fn(ctx, n->rt, arg, len, &a);
  if (*err == PN_OK && !a) {
    *err = PN_EINVAL; /* a spawn function that said yes and gave nothing */
  }
  if (*err != PN_OK) {
    return 0;
  }
  if (pn_actor_runtime(a) != n->rt) {
    pn_actor_release(a);
    *err = PN_EINVAL;
    return 0;
  }
  *err = pn__ref_export(n, a) ? PN_OK : PN_ENOMEM;
  uint64_t id = pn_actor_id(a);
  pn_actor_release(a); /* the node holds it now (or, failing, nobody) */
  return *err == PN_OK ? id : 0;
}

pn_err pn_node_spawn(pn_node *node, const char *where, const char *behaviour,
                     const void *arg, size_t len, pn_actor *reply_to,
                     uint64_t tag) {
  if (!node || !behaviour || !reply_to || (!arg && len) ||
      !pn__node_name_ok(behaviour) || (where && !pn__node_name_ok(where))) {
    return PN_EINVAL;
  }
  if (len > PN_NODE_SPAWN_ARG_MAX) {
    return PN_ERANGE;
  }
  if (atomic_load(&node->closing)) {
    return PN_ECLOSED;
  }
  uint64_t id = where ? pn__node_id_of(where) : node->id;
  if (id == node->id) {
    pn_err err;
    uint64_t actor = spawn_here(node, behaviour, arg, len, &err);
    pn_ref r = {
        .node = node->id, .incarnation = node->incarnation, .actor = actor};
    reply(reply_to, true, tag, err, &r);
    return PN_OK;
  }
  pn__lookup q = {.node = id,
                  .tag = tag,
                  .reply_to = reply_to,
                  .spawn = true,
                  .arg_len = len};
  memcpy(q.name, behaviour, strlen(behaviour)); /* length checked */
  if (len) {
    q.arg = malloc(len);
    if (!q.arg) {
      return PN_ENOMEM;
    }
    memcpy(q.arg, arg, len);
  }
  pn_actor_hold(reply_to); /* the node actor's until it replies */
  pn_err err =
      pn__send_parts(node->actor, PN__NODE_LOOKUP, &q, sizeof q, NULL, 0);
  if (err != PN_OK) {
    request_done(&q);
  }
  return err;
}

void pn__spawn_answer(pn_node *n, pn__link *l,
                      const Peernet__Node__V1__Spawn *q) {
  Peernet__Node__V1__SpawnReply r = PEERNET__NODE__V1__SPAWN_REPLY__INIT;
  pn_err err = PN_ENOENT;
  r.request = q->request;
  if (q->behaviour && pn__node_name_ok(q->behaviour) &&
      q->arg.len <= PN_NODE_SPAWN_ARG_MAX) {
    r.actor = spawn_here(n, q->behaviour, q->arg.data, q->arg.len, &err);
  }
  r.status = err;
  Peernet__Node__V1__Control c = PEERNET__NODE__V1__CONTROL__INIT;
  c.body_case = PEERNET__NODE__V1__CONTROL__BODY_SPAWN_REPLY;
  c.spawn_reply = &r;
  pn__link_send_control(l, &c);
}
