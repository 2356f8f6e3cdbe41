/* PeerNet statistics: plain-struct snapshots of the runtime, its workers and
 * its live actors.
 *
 * Threading: pn_snapshot_take() may be called from any thread, including a
 * handler, at any time. Counters are read without stopping the workers, so a
 * snapshot is consistent per counter, not across counters.
 * Ownership: the snapshot belongs to the caller until pn_snapshot_free().
 */
#ifndef PEERNET_STATS_H
#define PEERNET_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "peernet/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pn_actor_state {
  PN_ACTOR_IDLE = 0,     /* empty mailbox, not scheduled */
  PN_ACTOR_RUNNABLE = 1, /* scheduled or running */
  PN_ACTOR_MUTED = 2,    /* held back: it sent to an overloaded actor */
  PN_ACTOR_STOPPING = 3, /* stop requested, PN_MSG_STOPPED not yet handled */
  PN_ACTOR_STOPPED = 4
} pn_actor_state;

/* Text for a state ("idle", "runnable", ...). Never NULL. */
PN_API const char *pn_actor_state_name(pn_actor_state state);

typedef struct pn_actor_stats {
  uint64_t id;
  char name[32];
  pn_actor_state state;
  int32_t home_worker;      /* -1 when the actor may run anywhere */
  bool overloaded;          /* its last run ended with a full batch */
  uint64_t received;        /* messages taken from the mailbox */
  uint64_t processed;       /* messages given to the handler */
  uint64_t dropped;         /* taken but not handled (after stop, late ticks) */
  uint64_t sent;            /* messages this actor's handler sent */
  uint64_t runs;            /* times it was scheduled and ran */
  uint64_t muted;           /* times it was muted by backpressure */
  uint64_t cpu_ns;          /* time in its runs (TSC; single-message runs
                               sampled), when stats_cpu_time is on; else 0 */
  uint32_t mailbox_depth;   /* messages queued now (a message that woke it
                               from idle is not counted) */
  uint32_t mailbox_hwm;     /* highest depth seen at the end of a run */
  uint64_t remote_sent;     /* pn_node_send to other nodes' actors, from its
                               handler (peernet/node.h) */
  uint64_t remote_received; /* messages from other nodes delivered to it */
} pn_actor_stats;

/* Histograms (stats_histograms in the runtime config). Buckets are log2 of
 * nanoseconds: bucket 0 counts times up to 16 ns, bucket i (1 to 30)
 * times in (2^(i+3), 2^(i+4)] ns, up to about 17 s, and the last bucket
 * everything longer. pn_histogram_bucket_le_ns() gives each upper bound. */
#define PN_HIST_BUCKETS 32u

typedef struct pn_histogram {
  uint64_t count;  /* values recorded: the sum of the buckets */
  uint64_t sum_ns; /* their sum */
  uint64_t buckets[PN_HIST_BUCKETS];
} pn_histogram;

/* One actor's histograms. Each message the handler gets from the mailbox
 * counts once in each; PN_MSG_STOPPED and PN_MSG_BATCH_END, which come
 * from no mailbox, do not. Once the actor's handlers have returned, count
 * equals its processed count (pn_actor_stats), less the PN_MSG_STOPPED of
 * a stopped actor. */
typedef struct pn_actor_histograms {
  uint64_t id;                  /* the actor's id */
  pn_histogram mailbox_time;    /* from the message's arrival in the
                                   mailbox (for a handler's sends, the end
                                   of the sender's run, when its outbox is
                                   pushed; otherwise the send) to the start
                                   of its handling */
  pn_histogram processing_time; /* the handler's duration */
} pn_actor_histograms;

/* Upper bound of bucket i in nanoseconds (inclusive): 2^(i+4), or
 * UINT64_MAX for the last bucket and beyond. Pure; any thread. */
PN_API uint64_t pn_histogram_bucket_le_ns(uint32_t i);

/* Estimates the q-quantile (0 <= q <= 1; 0.5 for the median) in
 * nanoseconds, interpolating linearly inside the bucket it falls in, as
 * Prometheus' histogram_quantile() does. Returns 0 for NULL or an empty
 * histogram, and the last bucket's lower bound (2^34 ns) when the quantile
 * falls in it. Pure; any thread. */
PN_API double pn_histogram_quantile_ns(const pn_histogram *h, double q);

typedef struct pn_worker_stats {
  uint32_t index;
  uint64_t runs;          /* actor runs */
  uint64_t steals;        /* successful steals from other workers */
  uint64_t stolen_actors; /* actors taken by those steals */
  uint64_t wakeups;       /* returns from the idle wait */
  uint64_t idle_ns;       /* time spent in the idle wait, a wait still
                             going on included (up to the snapshot's
                             moment: runtime.uptime_ns); between two
                             snapshots it grows by at most the uptime
                             between them, so 1 - its growth / uptime's is
                             the worker's busy share */
  uint64_t timers_fired;
  uint64_t io_calls; /* I/O backend waits and polls: each one syscall
                        (io_uring submissions ride on them) */
} pn_worker_stats;

typedef struct pn_runtime_stats {
  uint32_t workers;
  const char *io_backend; /* static string */
  uint64_t actors_spawned;
  uint64_t actors_stopped;
  uint64_t actors_alive;   /* spawned, not yet stopped */
  uint64_t actor_handles;  /* actor objects not yet freed */
  uint64_t msgs_in_flight; /* envelopes allocated and not yet freed (an
                              actor frees the last one it handled when it
                              goes idle or takes the next) */
  uint64_t timers_active;
  uint64_t timers_fired; /* ticks delivered, all workers together */
  uint64_t uptime_ns;    /* since pn_runtime_create(); in a snapshot, to
                            the moment the workers' idle_ns are counted
                            to */
} pn_runtime_stats;

typedef struct pn_socket_stats {
  uint64_t datagrams_in;
  uint64_t bytes_in;
  uint64_t datagrams_out;
  uint64_t bytes_out;
  uint64_t syscalls;        /* recvmmsg and sendmmsg calls */
  uint64_t readiness;       /* readiness notifications (epoll) or receive
                               completions (io_uring) handled */
  uint64_t send_errors;     /* datagrams the kernel refused */
  uint64_t send_drops;      /* dropped because the send queue was full */
  uint64_t kernel_drops;    /* SO_RXQ_OVFL: packets the kernel dropped (a
                               GSO run of up to 64 datagrams is one) */
  uint64_t truncated;       /* received datagrams over max_datagram */
  uint64_t cond_dropped;    /* conditioner: loss and rate drops */
  uint64_t cond_delayed;    /* conditioner: held back */
  uint64_t cond_duplicated; /* conditioner: extra copies */
  uint64_t gso_segments;    /* datagrams sent inside UDP_SEGMENT messages */
  uint64_t gro_segments;    /* datagrams received inside GRO runs */
  uint64_t enobufs;         /* io_uring: the receive buffer ring ran dry */
} pn_socket_stats;

/* One socket in a snapshot. */
typedef struct pn_socket_info {
  uint64_t id;
  uint64_t owner_id; /* the owner actor's id */
  char local[64];    /* bound address, "1.2.3.4:5" or "[::1]:5" */
  pn_socket_stats stats;
} pn_socket_info;

typedef enum pn_peer_state {
  PN_PEER_CONNECTING = 0,
  PN_PEER_CONNECTED = 1,
  PN_PEER_DISCONNECTING = 2,
  PN_PEER_DISCONNECTED = 3,
} pn_peer_state;

typedef struct pn_peer_stats {
  pn_peer_state state;
  uint64_t srtt_us, rttvar_us, min_rtt_us, rto_us; /* 0 before a sample */
  uint64_t datagrams_out, bytes_out; /* after compression, with headers */
  uint64_t datagrams_in, bytes_in;
  uint64_t datagrams_lost; /* deemed lost (acknowledgement gap or RTO) */
  double loss;             /* datagrams_lost / acknowledged-or-lost */
  uint64_t retransmits;    /* frames sent again */
  uint64_t acks_only;      /* datagrams carrying only acknowledgements */
  uint64_t messages_out, messages_in;
  uint64_t duplicates;           /* datagrams or messages seen before */
  uint64_t bad_datagrams;        /* bad tag, malformed, undecompressible */
  uint64_t stale;                /* sequenced messages older than the newest */
  uint64_t raw_bytes_out;        /* datagram bodies before compression */
  uint64_t compressed_bytes_out; /* the same bodies as sent */
  double compression_ratio;      /* raw / compressed (1.0: none) */
  uint64_t in_flight;            /* datagrams sent and not yet resolved */
  uint64_t queued_bytes;         /* message bytes not yet acknowledged */
  uint64_t reassembly_bytes;     /* held for partial fragmented messages */
  uint64_t cwnd;                 /* congestion window, datagrams */
  uint64_t ssthresh;             /* slow-start threshold; 0: none yet */
  /* Flow control (max_receive_buffer; proto/README.md). */
  uint64_t receive_buffer_bytes; /* held for this peer now: ORDERED
                                    messages waiting for an earlier one,
                                    partial messages */
  uint64_t receive_buffer_max;   /* the most ever held */
  uint64_t window_drops;         /* datagrams dropped unacknowledged: their
                                    frames would have taken the receive
                                    buffer past its limit (a sender that
                                    ignores the window) */
  uint64_t send_window;          /* bytes of messages this side may still
                                    start sending before the peer's window
                                    is full */
  uint64_t unproven_datagrams;   /* authentic, from an address the remote
                                    has not proven: not acted on */
  uint64_t path_challenges;      /* addresses challenged to prove it */
  uint64_t migrations;           /* times a new address was proven and
                                    became the one sent to */
} pn_peer_stats;

/* A channel of a peer in a snapshot. */
typedef struct pn_channel_info {
  uint64_t peer_id;  /* the peer it belongs to */
  uint64_t actor_id; /* its actor (also in the actors array) */
  uint32_t index;    /* on its peer */
  uint32_t kind;     /* a pn_channel_kind (peernet/net.h) */
} pn_channel_info;

/* A peer (connection) in a snapshot. */
typedef struct pn_peer_info {
  uint64_t id;
  uint64_t actor_id; /* the peer's actor */
  uint64_t owner_id; /* the actor that receives its events */
  char remote[64];   /* "1.2.3.4:5" or "[::1]:5" */
  bool is_client;    /* this side connected out */
  uint32_t channel_count;
  pn_peer_stats stats;
} pn_peer_info;

/* A node of this runtime in a snapshot (peernet/node.h): its counters, as
 * pn_node_stats_get gives them. */
typedef struct pn_local_node_info {
  char name[64];
  uint64_t id, incarnation;
  char listen[64]; /* its address, "1.2.3.4:5" */
  uint32_t lanes;
  uint64_t links; /* nodes linked and up */
  uint64_t sent_local, sent_remote, delivered;
  uint64_t dropped_no_actor, dropped_stale, dropped_bad;
  uint64_t joins, leaves;
  uint64_t senders_muted, sends_refused; /* flow control (pn_node_stats) */
  size_t link_count; /* its entries in node_links, after the previous
                        node's */
} pn_local_node_info;

/* One of a node's links (to a node that is up) in a snapshot. */
typedef struct pn_node_link_info {
  uint64_t node_id; /* the local node it belongs to */
  char name[64];    /* the other node */
  uint64_t id, incarnation;
  char remote[64];  /* its address */
  uint64_t peer_id; /* the link's peer (in peers) */
  uint64_t srtt_us;
  double loss;
  uint64_t messages_out, messages_in; /* pn_node_send messages each way */
} pn_node_link_info;

typedef struct pn_snapshot {
  pn_runtime_stats runtime;
  size_t worker_count;
  pn_worker_stats *workers; /* worker_count entries */
  size_t actor_count;
  pn_actor_stats *actors; /* every live (not yet stopped) actor */
  size_t socket_count;
  pn_socket_info *sockets; /* every open socket */
  /* With stats_histograms on: actor_count entries, entry i for actors[i];
   * NULL when the runtime keeps none. */
  pn_actor_histograms *actor_histograms;
  size_t peer_count;
  pn_peer_info *peers; /* every peer not yet freed */
  size_t channel_count;
  pn_channel_info *channels; /* the channels of those peers */
  size_t node_count;
  struct pn_local_node_info *nodes; /* this runtime's nodes (peernet/node.h) */
  size_t node_link_count;
  struct pn_node_link_info *node_links; /* their links, node by node */
} pn_snapshot;

/* Takes a snapshot. On PN_OK *snap_out belongs to the caller (free with
 * pn_snapshot_free()). Errors: PN_EINVAL, PN_ENOMEM. Any thread; holds the
 * actor registry lock while copying (spawns wait meanwhile). */
PN_API pn_err pn_snapshot_take(pn_runtime *rt, pn_snapshot **snap_out);

/* Frees a snapshot; NULL is ignored. Any thread. */
PN_API void pn_snapshot_free(pn_snapshot *snap);

/* The snapshot as one JSON document: {"runtime":{...},"workers":[...],
 * "actors":[{"id","name","state","processed","sent","mailbox_depth",
 * "cpu_ns",...}],"sockets":[...],"peers":[{"id","remote","state","srtt_us",
 * ...,"channels":[{"index","kind","actor"}]}],"nodes":[{"name","id",
 * "incarnation","listen","sent_remote","delivered",...,"links":[{"name",
 * "id","remote","peer","srtt_us","loss","messages_out","messages_in"}]}]}. With
 * histograms, each actor also has "mailbox_time_ns" and "processing_time_ns",
 * objects with "count", "sum", "p50", "p99" (estimates) and "buckets"
 * (PN_HIST_BUCKETS counts), and the document has "histogram_le_ns", the upper
 * bounds of all buckets but the last. On PN_OK *text_out is a NUL-terminated
 * string the caller frees with pn_free(), *len_out (may be NULL) its length.
 * Errors: PN_EINVAL, PN_ENOMEM; outputs untouched on error. Pure; any
 * thread. */
PN_API pn_err pn_snapshot_json(const pn_snapshot *snap, char **text_out,
                               size_t *len_out);

/* The snapshot in the Prometheus text exposition format (version 0.0.4):
 * runtime gauges and counters, per-worker counters labelled by worker,
 * per-actor counters labelled by id and name, and with histograms two
 * histogram families per actor, peernet_actor_mailbox_seconds and
 * peernet_actor_processing_seconds (cumulative _bucket{le=...} series up
 * to le="+Inf", _sum, _count). Ownership, errors and threading as
 * pn_snapshot_json(). */
PN_API pn_err pn_snapshot_prometheus(const pn_snapshot *snap, char **text_out,
                                     size_t *len_out);

/* Message type of the periodic stats feed (a reserved type). */
#define PN_MSG_STATS 0xFFFFFF03u

/* Sends the runtime's counters to `to` every period_us microseconds as a
 * PN_MSG_STATS message (read it with pn_msg_stats()); a handler that wants
 * more can take a full snapshot then. The feed holds a reference to `to`
 * and ends by itself when `to` stops (or at shutdown). Errors: PN_EINVAL
 * (NULL, period below 1000 us, actor of another runtime), PN_ECLOSED,
 * PN_ENOMEM. Any thread, never blocks. */
PN_API pn_err pn_stats_subscribe(pn_runtime *rt, pn_actor *to,
                                 uint64_t period_us);

/* Reads a PN_MSG_STATS message. Errors: PN_EINVAL (NULL, another type).
 * Pure; from the handler that received it. */
PN_API pn_err pn_msg_stats(const pn_msg *msg, pn_runtime_stats *stats_out);

/* Frees memory the library handed over (NULL is ignored). Any thread. */
PN_API void pn_free(void *ptr);

/* Statistics of one actor, live or stopped, through a handle.
 * Errors: PN_EINVAL. Any thread, never blocks. */
PN_API pn_err pn_actor_stats_get(const pn_actor *actor,
                                 pn_actor_stats *stats_out);

/* Histograms of one actor, live or stopped, through a handle. On PN_OK
 * *hist_out is filled (the caller's memory). Errors: PN_EINVAL (NULL),
 * PN_ENOTSUP (the runtime keeps no histograms: stats_histograms is off).
 * Counters are read while the actor may run: each bucket is exact, the
 * histogram as a whole consistent to within the messages handled during
 * the read. Any thread, never blocks. */
PN_API pn_err pn_actor_histograms_get(const pn_actor *actor,
                                      pn_actor_histograms *hist_out);

/* Runtime-wide counters only (cheap: no per-actor walk).
 * Errors: PN_EINVAL. Any thread, never blocks. */
PN_API pn_err pn_runtime_stats_get(pn_runtime *rt, pn_runtime_stats *stats_out);

#ifdef __cplusplus
}
#endif

#endif
