/* PeerNet nodes: one actor system across processes and machines.
 *
 * A node is a runtime's seat in a cluster: a name, a host listening on one
 * UDP address, and a link (a PeerNet peer) to every other node it learns
 * of. A node joins through seed addresses; each link carries the members
 * its ends know (gossip), so the cluster becomes a full mesh. Actors are
 * named across nodes by references (pn_ref): the node, its incarnation and
 * the actor's id. pn_node_send() delivers to a reference whether the actor
 * is on this node or another; the receiver reads the sender's reference
 * with pn_msg_sender() and may answer it.
 *
 * Links. Lane 0 of a link carries membership; lanes 1..lanes carry
 * messages, ORDERED, each sender always on the same lane (chosen by its
 * actor id): the order per sender and receiver is FIFO, and a loss
 * stalls only its lane, not unrelated senders', and nor does a large
 * message (the lanes' pieces take turns in the link's datagrams). A
 * handler's messages to one lane leave together when its run ends (one
 * datagram carries many); an application thread's leave at once.
 *
 * Flow control. Each lane of a link has a window (lane_window of the
 * receiving node): what its senders may have sent there that the
 * receiving actors have not yet handled, counted as payload + 64 bytes a
 * message. An actor that fills it is muted exactly as a full local
 * mailbox mutes it: its message is queued, and it parks when its current
 * run ends until the receivers catch up (a handler that keeps sending in
 * that run may go one more window, then gets PN_EAGAIN). An application
 * thread gets PN_EAGAIN where an actor would be muted, and tries again
 * later. So a receiving node holds at most two windows per lane of a
 * link (more is a broken protocol: the link is dropped), a slow actor
 * stalls only the lanes that reach it, and nothing is lost silently.
 * Failure: a link silent for detect_us is down; its node's subscribers get
 * PN_MSG_NODE_DOWN. A node that restarts has a new incarnation: references
 * to the old one never reach the new one (their messages are dropped and
 * counted).
 *
 * Security. With cluster_key, every link's keys mix it in (the host's
 * pre-shared key, peernet/net.h): a process without it cannot join, read
 * or forge anything. Without it links are still encrypted, but anyone who
 * can reach the listen address can join.
 *
 * Threading. Every function may be called from any thread; none blocks,
 * except pn_node_open (which opens a socket) and pn_node_close (which
 * waits for the node to leave). The node's own work runs on
 * an actor of its runtime.
 *
 * Ownership. pn_node_open() returns a handle the caller gives back with
 * pn_node_close() before shutting its runtime down. A reference is a plain
 * value: copy it, send it inside messages, compare and hash it.
 */
#ifndef PEERNET_NODE_H
#define PEERNET_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "peernet/runtime.h"
#include "peernet/socket.h"

/* protobuf-c's types (as in peernet/net.h): include
 * <protobuf-c/protobuf-c.h> to use the protobuf helpers. */
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
struct ProtobufCAllocator;

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_node pn_node;

/* An actor anywhere in the cluster: node is the hash of the node's name,
 * incarnation the node's run (random at pn_node_open), actor the actor's
 * id on it (pn_actor_id). All zero: no actor (pn_msg_sender of a message
 * an application thread sent). */
typedef struct pn_ref {
  uint64_t node;
  uint64_t incarnation;
  uint64_t actor;
} pn_ref;

/* Longest node name, without its NUL. */
#define PN_NODE_NAME_MAX 63u
/* Most lanes a link may have. */
#define PN_NODE_LANES_MAX 64u

typedef struct pn_node_config {
  size_t size;          /* sizeof(pn_node_config) */
  const char *name;     /* required: 1..PN_NODE_NAME_MAX bytes of letters,
                           digits, '.', '-' and '_', unique in the cluster
                           (copied) */
  const char *host;     /* address to listen on, numeric or a name (NULL:
                           127.0.0.1); other nodes reach this node at the
                           address its datagrams come from, which is this
                           one's socket */
  uint16_t port;        /* 0 picks a free port (pn_node_addr tells it) */
  const pn_addr *seeds; /* seed_count nodes to join through (copied); none:
                           this node starts a cluster, or waits for others
                           to join it */
  uint32_t seed_count;
  const uint8_t *cluster_key; /* PN_KEY_BYTES shared by every node
                                 (copied); NULL: none (see the top) */
  uint32_t lanes;             /* message lanes per link; 0 = 8, at most
                                 PN_NODE_LANES_MAX */
  uint64_t detect_us;         /* a link silent this long is down; 0 = 1 s,
                                 at least 100 ms */
  int32_t home_worker;        /* the node's actor and host; -1 picks one */
  uint64_t lane_window;       /* bytes of messages (payload + 64 each) a
                                 sender may have on each lane of a link to
                                 this node beyond what this node's actors
                                 have handled (see "Flow control"); 0 =
                                 1 MiB, 64 KiB .. PN_NODE_LANE_WINDOW_MAX */
} pn_node_config;

#define PN_NODE_LANE_WINDOW_MAX (1ull << 30)

#define PN_NODE_CONFIG_INIT                                                    \
  { .size = sizeof(pn_node_config), .home_worker = -1 }

/* Opens a node on rt: its host listens, and it connects to the seeds (and
 * again, every detect_us, while it has no live link and seeds are given).
 * On PN_OK *node_out owns the handle. Errors, with nothing left open:
 * PN_EINVAL (NULL, small size, bad or missing name, lanes above
 * PN_NODE_LANES_MAX, detect_us below 100 ms or above PN_HOST_TIME_MAX_US,
 * a seed of no address family, home worker out of range, lane_window
 * outside 64 KiB .. PN_NODE_LANE_WINDOW_MAX), every
 * pn_host_open() error, PN_ENOMEM. Any thread; blocks while the socket
 * opens (and resolves host). */
PN_API pn_err pn_node_open(pn_runtime *rt, const pn_node_config *cfg,
                           pn_node **node_out);

/* Leaves the cluster and gives back the handle: each link first delivers
 * what was sent on it (for at most detect_us), then closes; the others
 * see this node down (PN_NODE_REASON_LEFT). From a thread that is not
 * running a handler it BLOCKS until the node has left (at most twice
 * detect_us, so pn_runtime_shutdown() after it cuts nothing short); from a
 * handler it returns at once and the node leaves on its own worker. No
 * other call on this node may run or start once this one has begun.
 * Call it before pn_runtime_shutdown(). NULL is ignored. */
PN_API void pn_node_close(pn_node *node);

/* This node's name (borrowed: valid until pn_node_close) and reference
 * (actor 0). */
PN_API const char *pn_node_name(const pn_node *node);
PN_API pn_ref pn_node_self(const pn_node *node);

/* The address this node listens on (as opened; still given while it
 * closes). Errors: PN_EINVAL (NULL). Any thread; never blocks. */
PN_API pn_err pn_node_addr(const pn_node *node, pn_addr *out);

/* The reference of a local actor, which makes it reachable from other
 * nodes (the node holds it until it stops). Errors: PN_EINVAL (NULL, an
 * actor of another runtime), PN_ECLOSED (node closing), PN_ENOMEM. */
PN_API pn_err pn_node_ref(pn_node *node, pn_actor *actor, pn_ref *ref_out);

/* Sends size bytes (copied) of message type `type` to the actor `to`
 * names, on this node or another. Called from a handler, the sender is
 * the running actor (its reference is made as pn_node_ref would, so the
 * receiver can answer); from any other thread, no actor (pn_msg_sender
 * gives all zeros). Per sender and receiver, messages arrive in the order
 * sent. Errors: PN_EINVAL (NULL, reserved type, NULL data with size > 0),
 * PN_ERANGE (size above the link's max_message, 4 MiB less 64 bytes),
 * PN_ENOENT (a node this one has no live link to, or a reference to a
 * node's earlier incarnation), PN_EAGAIN (the lane is out of credit: from
 * a thread, its window is full; from a handler, one window past it; or
 * the link holds max_queued bytes not yet acknowledged: back off and try
 * again; nothing was sent), PN_ECLOSED (node closing), PN_ENOMEM. PN_OK
 * means queued (from a handler, the actor may now be muted: see "Flow
 * control"): an actor that no longer exists when it arrives drops it
 * (counted, pn_node_stats). */
PN_API pn_err pn_node_send(pn_node *node, const pn_ref *to, uint32_t type,
                           const void *data, size_t size);

/* Watches the actor `target` names, on this node or another: watcher (an
 * actor of this node's runtime) gets one PN_MSG_DOWN (pn_msg_down, in
 * peernet/runtime.h: the monitor's id, the target's actor, node and
 * incarnation, a reason) when the target stops (PN_DOWN_NORMAL or the
 * reason of pn_actor_stop_reason), when its node becomes unreachable or
 * leaves (PN_DOWN_NOCONNECTION: within detect_us of its silence), or at
 * once when the reference names no actor (PN_DOWN_NOPROC: not exported,
 * or stopped) or another run of its node than the one now up
 * (PN_DOWN_NOCONNECTION: a node that came back never stands in for its
 * earlier incarnation). Closing this node ends every monitor of other
 * nodes' actors with PN_DOWN_NOCONNECTION. The node holds watcher until
 * the DOWN is sent or the monitor removed. Monitor ids come from the
 * runtime's one sequence (pn_monitor's too). Errors: PN_EINVAL (NULL, a
 * watcher of another runtime, target is the watcher), PN_ECLOSED (node
 * closing), PN_ENOMEM. Any thread; never blocks. */
PN_API pn_err pn_node_monitor(pn_node *node, pn_actor *watcher,
                              const pn_ref *target, uint64_t *monitor_out);

/* Removes a monitor pn_node_monitor made of `target`: no DOWN for it
 * follows (for another node's actor, once this node's actor has taken
 * the request: a DOWN already on its way may still arrive; tell it by its
 * id). Errors: PN_EINVAL (NULL), PN_ENOENT (of this node's actor: it
 * fired, was removed, or the reference names none), PN_ECLOSED (node
 * closed), PN_ENOMEM. Any thread; never blocks. */
PN_API pn_err pn_node_demonitor(pn_node *node, const pn_ref *target,
                                uint64_t monitor);

/* pn_node_send() of a protobuf-c message's packed form (include
 * <protobuf-c/protobuf-c.h> to use it; peernet/net.h names the type).
 * Errors: PN_EINVAL (NULL msg), PN_ERANGE (packed, above the link's
 * max_message), and those of pn_node_send(). Any thread; never blocks. */
PN_API pn_err pn_node_send_protobuf(pn_node *node, const pn_ref *to,
                                    uint32_t type,
                                    const struct ProtobufCMessage *msg);

/* Unpacks a message's bytes (one pn_node_send_protobuf sent, or any
 * message) as a protobuf-c message of type desc. On PN_OK *out is the
 * caller's, to free with protobuf_c_message_free_unpacked(*out,
 * allocator); allocator NULL: malloc. Errors: PN_EINVAL (NULL msg, desc or
 * out; bytes that are not a valid message of that type: *out untouched).
 * From the handler that received msg (or while an inbox's is held). */
PN_API pn_err pn_msg_unpack_protobuf(
    const pn_msg *msg, const struct ProtobufCMessageDescriptor *desc,
    struct ProtobufCAllocator *allocator, struct ProtobufCMessage **out);

/* The sender of a message a node delivered (pn_node_send). Errors:
 * PN_EINVAL (NULL), PN_ENOENT (not delivered by a node). Pure; from the
 * handler that received the message. */
PN_API pn_err pn_msg_sender(const pn_msg *msg, pn_ref *out);

/* References compare as values; the hash mixes all three fields. */
PN_API bool pn_ref_equal(const pn_ref *a, const pn_ref *b);
PN_API uint64_t pn_ref_hash(const pn_ref *r);

/* Longest text pn_ref_format() writes, with its NUL. */
#define PN_REF_STRLEN 64u

/* Writes "<node>.<incarnation>.<actor>" (hexadecimal, hexadecimal,
 * decimal). Errors: PN_EINVAL (NULL), PN_ERANGE (cap too small). Pure. */
PN_API pn_err pn_ref_format(const pn_ref *r, char *buf, size_t cap);

/* --- names ---------------------------------------------------------------- */

/* Registers a local actor under `name` (1..PN_NODE_NAME_MAX bytes of
 * letters, digits, '.', '-' and '_'; copied) on this node, so that any
 * node can look it up as "<node name>/<name>". The node holds the actor
 * until the name is unregistered or a lookup finds it stopped. Errors:
 * PN_EINVAL (NULL, bad name, an actor of another runtime), PN_EEXIST (the
 * name is taken), PN_ECLOSED, PN_ENOMEM. */
PN_API pn_err pn_node_register(pn_node *node, const char *name,
                               pn_actor *actor);

/* Frees a name. Errors: PN_EINVAL (NULL), PN_ENOENT (not registered). */
PN_API pn_err pn_node_unregister(pn_node *node, const char *name);

#define PN_MSG_NODE_LOOKUP 0xFFFFFF22u
#define PN_MSG_NODE_SPAWNED 0xFFFFFF23u

/* The answer to pn_node_lookup (PN_MSG_NODE_LOOKUP) or pn_node_spawn
 * (PN_MSG_NODE_SPAWNED). */
typedef struct pn_node_result {
  uint64_t tag;  /* the caller's */
  pn_err status; /* PN_OK; PN_ENOENT (no such name or behaviour there);
                    PN_EUNREACHABLE (no live link to that node, or it
                    went down before it answered); PN_ECLOSED (this node
                    closed first); or the spawn function's own error */
  pn_ref ref;    /* PN_OK: the actor */
} pn_node_result;

/* Looks up `path`, "<node name>/<name>" (or "<name>" on this node),
 * asynchronously: reply_to gets one PN_MSG_NODE_LOOKUP carrying `tag`.
 * A node is up (PN_MSG_NODE_UP) as soon as it has joined, which may be
 * before its application registered its names: a PN_ENOENT just after
 * the UP may be worth asking again (examples/peernet-cluster does).
 * Errors (then no reply comes): PN_EINVAL (NULL, a path that is not two
 * valid names), PN_ECLOSED, PN_ENOMEM. */
PN_API pn_err pn_node_lookup(pn_node *node, const char *path,
                             pn_actor *reply_to, uint64_t tag);

/* Reads a PN_MSG_NODE_LOOKUP or PN_MSG_NODE_SPAWNED. Errors: PN_EINVAL
 * (NULL, another type). Pure. */
PN_API pn_err pn_msg_node_result(const pn_msg *msg, pn_node_result *out);

/* --- remote spawn -----------------------------------------------------------
 */

/* Spawns the actor of a behaviour from the argument bytes a spawn request
 * carried (borrowed for the call). Runs on the node's worker for requests
 * from other nodes, on the caller's thread for this node's own; must not
 * block. Returns PN_OK with *actor_out a handle the node takes over, or an
 * error that goes back to the requester. */
typedef pn_err (*pn_node_spawn_fn)(void *ctx, pn_runtime *rt, const void *arg,
                                   size_t len, pn_actor **actor_out);

/* Most bytes of a spawn argument. */
#define PN_NODE_SPAWN_ARG_MAX 65536u

/* Lets other nodes spawn actors of behaviour `name` (a valid name, copied)
 * here. Errors: PN_EINVAL (NULL, bad name), PN_EEXIST (taken), PN_ECLOSED,
 * PN_ENOMEM. */
PN_API pn_err pn_node_behaviour(pn_node *node, const char *name,
                                pn_node_spawn_fn fn, void *ctx);

/* Spawns an actor of `behaviour` on node `where` (its name; NULL or this
 * node's name: here), with len bytes of argument (copied): reply_to gets
 * one PN_MSG_NODE_SPAWNED carrying `tag` and, on success, the new actor's
 * reference (exported, as pn_node_ref would). Errors (then no reply
 * comes): PN_EINVAL (NULL, bad names, NULL arg with len > 0), PN_ERANGE
 * (len above PN_NODE_SPAWN_ARG_MAX), PN_ECLOSED, PN_ENOMEM. */
PN_API pn_err pn_node_spawn(pn_node *node, const char *where,
                            const char *behaviour, const void *arg, size_t len,
                            pn_actor *reply_to, uint64_t tag);

/* Node events, to actors given to pn_node_subscribe(). */
#define PN_MSG_NODE_UP 0xFFFFFF20u
#define PN_MSG_NODE_DOWN 0xFFFFFF21u

/* A DOWN's reason when the node left (pn_node_close): it delivered what it
 * had queued first. Otherwise the link's PN_REASON_* (peernet/net.h). */
#define PN_NODE_REASON_LEFT 0xFFFFFE04u

typedef struct pn_node_event {
  char name[PN_NODE_NAME_MAX + 1];
  pn_ref node; /* its reference (actor 0) */
  pn_addr addr;
  uint32_t reason; /* DOWN: the link's PN_REASON_* (PN_REASON_TIMEOUT
                      when it went silent) */
} pn_node_event;

/* Sends `to` PN_MSG_NODE_UP for every node linked now and later, and
 * PN_MSG_NODE_DOWN when one goes. A node's UP says that node can send to
 * the other; the other end's UP may come a moment later (one end of a
 * pair takes the link first), so wait for the UP of the node that sends
 * (before it, a send gets PN_ENOENT). Errors: PN_EINVAL (NULL), PN_ERANGE (16
 * subscribers already), PN_ECLOSED, PN_ENOMEM. */
PN_API pn_err pn_node_subscribe(pn_node *node, pn_actor *to);

/* Reads a PN_MSG_NODE_UP or PN_MSG_NODE_DOWN. Errors: PN_EINVAL (NULL,
 * another type). Pure. */
PN_API pn_err pn_msg_node_event(const pn_msg *msg, pn_node_event *out);

typedef struct pn_node_info {
  char name[PN_NODE_NAME_MAX + 1];
  pn_ref node;
  pn_addr addr;
  uint64_t srtt_us;       /* the link's smoothed round trip */
  double loss;            /* its datagram loss, 0..1 */
  uint64_t datagrams_out; /* its datagrams each way */
  uint64_t datagrams_in;
  uint64_t messages_out; /* pn_node_send messages to that node */
  uint64_t messages_in;  /* and from it */
} pn_node_info;

/* Copies up to cap of the nodes this one has a live link to into out,
 * and their number into *count (which may exceed cap). Errors: PN_EINVAL
 * (NULL count, NULL out with cap > 0). */
PN_API pn_err pn_node_list(pn_node *node, pn_node_info *out, size_t cap,
                           size_t *count);

typedef struct pn_node_stats {
  uint64_t nodes;            /* live links */
  uint64_t sent_local;       /* pn_node_send to this node's actors */
  uint64_t sent_remote;      /* to other nodes' */
  uint64_t delivered;        /* messages from other nodes delivered */
  uint64_t dropped_no_actor; /* to an actor that had stopped or was never
                                referenced */
  uint64_t dropped_stale;    /* naming an earlier incarnation of this node */
  uint64_t dropped_bad;      /* malformed envelopes or control messages */
  uint64_t dropped_unsent;   /* queued on a link that went down (or out of
                                memory) before they left */
  uint64_t joins, leaves;    /* node up and down events */
  uint64_t senders_muted;    /* actors muted for a lane's credit */
  uint64_t sends_refused;    /* PN_EAGAIN for a lane's credit */
} pn_node_stats;

/* Errors: PN_EINVAL (NULL). */
PN_API pn_err pn_node_stats_get(const pn_node *node, pn_node_stats *out);

#ifdef __cplusplus
}
#endif

#endif
