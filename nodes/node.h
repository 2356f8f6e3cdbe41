/* A node's insides (include/peernet/node.h): the node actor, its links and
 * members (link.c), references and the messages they carry (ref.c).
 *
 * Threading. The node actor (node.c) owns the host, the links and every
 * change to the members; application threads and other actors read the
 * members (to send, to list) under `lock`, a reader-writer lock the node
 * actor takes for writing only to change a member. The exported actors
 * have their own mutex (`exports_lock`): any thread exports (pn_node_ref,
 * pn_node_send from a handler), the node actor looks them up.
 */
#ifndef PN_NODES_NODE_H
#define PN_NODES_NODE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/idmap.h"
#include "peernet/net.h"
#include "peernet/node.h"
#include "peernet/stats.h"
#include "runtime/registry.h"

/* 2: lanes carry Batches, Hello has lane_window; 3: the arbiter (the
 * smaller id) takes a link with Accept. */
#define PN__NODE_VERSION 3u
/* The largest payload: a link's max_message (4 MiB) less the envelope's
 * own fields. */
#define PN__NODE_PAYLOAD_MAX ((4u << 20) - 64u)
#define PN__NODE_SUBSCRIBERS 16u

/* A lane message that came before its link was taken (link.c). */
typedef struct pn__early {
  pn_packet *pkt; /* held */
  uint32_t channel;
} pn__early;

/* One PeerNet peer between this node and another (or a seed whose name is
 * not known yet). The peer's user pointer. */
typedef struct pn__link {
  pn_peer *peer;             /* held */
  struct pn__member *member; /* once taken, while it is the member's link */
  pn_addr addr;              /* where the other end is */
  bool initiated;            /* this node connected */
  bool seed;                 /* to a seed address */
  bool connected;
  bool closing; /* this node closes it: what still comes is ignored */
  /* The other end's Hello (other_id 0: not heard yet). */
  uint64_t other_id, other_incarnation, other_window;
  char other_name[PN_NODE_NAME_MAX + 1];
  /* Lane messages from the arbiter before its Accept (link.c), held
   * within what the lanes' credit lets it have out. */
  pn__early *early;
  size_t nearly, early_cap;
  uint64_t early_bytes;
  struct pn__credit *credit; /* its lanes' flow control (credit.h), held */
} pn__link;

/* Another node this one knows: linked (link set, up) or only heard of
 * through gossip. */
typedef struct pn__member {
  char name[PN_NODE_NAME_MAX + 1];
  uint64_t id, incarnation;
  pn_addr addr;
  pn__link *link; /* NULL: not linked (yet) */
  bool up;        /* PN_MSG_NODE_UP sent */
  _Atomic uint64_t msgs_out, msgs_in;
} pn__member;

struct pn_node {
  pn_runtime *rt;
  pn__stat_obj stat; /* in the runtime's registry (snapshots) */
  pn_addr listen;    /* its host's address, from the open on */
  pn_actor *actor;   /* the node actor (held) */
  pn_host *host;
  char name[PN_NODE_NAME_MAX + 1];
  uint64_t id, incarnation;
  uint32_t lanes;
  uint64_t lane_window; /* credit per lane this node grants (credit.h) */
  uint64_t detect_us;
  pn_addr *seeds;
  uint32_t nseeds;
  pn_timer *retry;  /* every detect_us: seeds again while nothing is
                       linked, else the members to every link */
  pn__link **links; /* every link, the node actor's alone */
  size_t nlinks, links_cap;
  pthread_rwlock_t lock; /* members (see the top) */
  pn__member **members;
  size_t nmembers, cap;
  pthread_mutex_t exports_lock;
  pn__idmap exports;                /* actor id -> pn__export */
  struct pn__sender_cache *senders; /* one per worker (ref.c), its own */
  pn_actor *subscribers[PN__NODE_SUBSCRIBERS]; /* held, under lock */
  uint32_t nsubscribers;
  /* Registered names (pn_node_register), under exports_lock. */
  struct pn__name *names;
  size_t nnames, names_cap;
  struct pn__behaviour *behaviours; /* under exports_lock too */
  size_t nbehaviours, behaviours_cap;
  /* Monitors (monitor.c), the node actor's alone: of other nodes'
   * actors by this node's, and of this node's actors by other nodes'. */
  struct pn__rmon *watching;
  size_t nwatching, watching_cap;
  struct pn__lmon *watched;
  size_t nwatched, watched_cap;
  /* Lookups waiting for another node's answer: the node actor's alone. */
  struct pn__lookup *lookups;
  size_t nlookups, lookups_cap;
  uint64_t next_request;
  struct pn__node_closer *closer; /* a thread waiting in pn_node_close */
  _Atomic bool closing;
  _Atomic uint64_t sent_local, sent_remote, delivered, dropped_no_actor,
      dropped_stale, dropped_bad, dropped_unsent, joins, leaves, senders_muted,
      sends_refused;
};

/* The node actor's own messages (below PN_MSG_TYPE_RESERVED, as timers
 * and pn_send() want; nothing else sends to the node actor but its peers'
 * events). */
#define PN__NODE_RETRY 0x4E4F0001u
#define PN__NODE_CLOSE 0x4E4F0002u
#define PN__NODE_LOOKUP 0x4E4F0003u    /* a pn__lookup to send */
#define PN__NODE_FINISH 0x4E4F0004u    /* closing: links had their time */
#define PN__NODE_MONITOR 0x4E4F0005u   /* a pn__rmon to start */
#define PN__NODE_DEMONITOR 0x4E4F0006u /* a pn__rmon's id to remove */
#define PN__NODE_CREDIT 0x4E4F0007u    /* a pn__credit with a grant due */

/* Snapshots (observe/snapshot.c), under the registry lock: the links n
 * has up, and n's row with up to cap of them (returns how many). */
extern const pn__stat_class pn__node_class;
size_t pn__node_snap_links(pn_node *n);
size_t pn__node_snap_fill(pn_node *n, pn_local_node_info *o,
                          pn_node_link_info *links, size_t cap);

/* link.c, on the node actor. pn__link_send_control: a Control on the
 * link's lane 0 (one that cannot be sent is settled when the link goes
 * down). */
struct Peernet__Node__V1__Control;
pn_err pn__link_send_control(pn__link *l,
                             const struct Peernet__Node__V1__Control *c);
void pn__link_connect(pn_node *n, const pn_addr *to, bool seed);
void pn__link_event(pn_node *n, const pn_msg *msg);
void pn__links_close(pn_node *n);
pn__member *pn__member_find(const pn_node *n, uint64_t id); /* under lock */
uint64_t pn__node_id_of(const char *name);
bool pn__node_name_ok(const char *name);

/* Room for one more of `count` items of `size` bytes in `items` (capacity
 * *cap, doubled from 8 when full): the array, moved or not, or NULL when
 * memory ran out (items and *cap unchanged). node.c. */
void *pn__node_grow(void *items, size_t *cap, size_t count, size_t size);

/* Links: the periodic round (seeds, or members to every link). */
void pn__links_tick(pn_node *n);

/* What a thread in pn_node_close waits on (its own stack). */
typedef struct pn__node_closer {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool done;
} pn__node_closer;

/* node.c: closing, the last link is gone. */
void pn__node_links_gone(pn_node *n);

/* node.c: tells every subscriber about the node `who` names. */
void pn__node_tell(pn_node *n, uint32_t type, const char *name,
                   const pn_ref *who, const pn_addr *addr, uint32_t reason);

/* A registered name. */
typedef struct pn__name {
  char name[PN_NODE_NAME_MAX + 1];
  pn_actor *actor; /* held */
} pn__name;

/* A behaviour other nodes may spawn. */
typedef struct pn__behaviour {
  char name[PN_NODE_NAME_MAX + 1];
  pn_node_spawn_fn fn;
  void *ctx;
} pn__behaviour;

/* A request to another node: a lookup of a name, or a spawn. */
typedef struct pn__lookup {
  uint64_t request;   /* this node's number for it (0: not sent yet) */
  uint64_t node;      /* whom it asks */
  uint64_t tag;       /* the caller's */
  pn_actor *reply_to; /* held */
  bool spawn;         /* a spawn of behaviour `name` */
  uint8_t *arg;       /* spawn: its argument (owned), arg_len bytes */
  size_t arg_len;
  char name[PN_NODE_NAME_MAX + 1];
} pn__lookup;

/* names.c, on the node actor: a lookup to send, a Lookup to answer, a
 * LookupReply to pass on, a member gone (its lookups fail), the node gone
 * (every one fails). */
struct Peernet__Node__V1__Lookup;
struct Peernet__Node__V1__LookupReply;
void pn__lookup_start(pn_node *n, const pn__lookup *q);
void pn__lookup_answer(pn_node *n, pn__link *l,
                       const struct Peernet__Node__V1__Lookup *q);
void pn__lookup_answered(pn_node *n, const pn__member *from, bool spawn,
                         uint64_t request, uint64_t actor, pn_err status);
struct Peernet__Node__V1__Spawn;
void pn__spawn_answer(pn_node *n, pn__link *l,
                      const struct Peernet__Node__V1__Spawn *q);
void pn__lookups_fail(pn_node *n, uint64_t node, pn_err status);
void pn__names_free(pn_node *n);

/* A monitor of another node's actor (pn_node_monitor). */
typedef struct pn__rmon {
  uint64_t id;
  pn_ref target;
  pn_actor *watcher; /* held */
} pn__rmon;

/* Another node's monitor of one of this node's actors: the local monitor
 * the node actor keeps on its behalf. */
typedef struct pn__lmon {
  uint64_t remote_id; /* the other node's id for it */
  uint64_t from;      /* that node */
  uint64_t local_id;  /* the node actor's pn_monitor */
  pn_actor *target;   /* held */
} pn__lmon;

/* monitor.c, on the node actor: a monitor to start or remove, the
 * Monitor, Demonitor and Down a link brought, a DOWN of a local monitor,
 * a member gone (0: every one, the node closing). */
struct Peernet__Node__V1__Monitor;
struct Peernet__Node__V1__Demonitor;
struct Peernet__Node__V1__Down;
void pn__monitor_start(pn_node *n, const pn__rmon *m);
void pn__monitor_stop(pn_node *n, uint64_t id);
void pn__monitor_asked(pn_node *n, pn__link *l,
                       const struct Peernet__Node__V1__Monitor *q);
void pn__demonitor_asked(pn_node *n, pn__link *l,
                         const struct Peernet__Node__V1__Demonitor *q);
void pn__monitor_answered(pn_node *n, pn__link *l,
                          const struct Peernet__Node__V1__Down *d);
void pn__monitor_local_down(pn_node *n, const pn_msg *msg);
void pn__monitors_gone(pn_node *n, uint64_t member);

/* ref.c. An exported actor: held, with its messages to and from other
 * nodes (counted relaxed by any thread; read by snapshots). */
typedef struct pn__export {
  pn_actor *actor;
  _Atomic uint64_t sent, received;
} pn__export;

/* The last actor that sent through the node on a worker, and its
 * record (ref.c). */
typedef struct pn__sender_cache {
  _Alignas(64) uint64_t id;
  pn__export *e;
} pn__sender_cache;

/* Exports a (once): its record, or NULL when out of memory. */
pn__export *pn__ref_export(pn_node *n, pn_actor *a);
pn_actor *pn__ref_exported(pn_node *n, uint64_t id); /* held, or NULL */
/* Adds each exported actor's remote counts to its row of a snapshot. */
void pn__refs_snap(pn_node *n, pn_actor_stats *rows, size_t count);
/* False when the envelope broke the protocol (the link must go). */
bool pn__ref_deliver(pn_node *n, pn__link *l, const pn_peer_event *ev);
void pn__refs_free(pn_node *n);

#endif
