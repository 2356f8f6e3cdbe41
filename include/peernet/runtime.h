/* PeerNet actor runtime: workers, actors, messages and timers.
 *
 * Threading. A runtime owns N worker threads. An actor's handler runs on one
 * worker at a time, never concurrently with itself, so the state it was
 * spawned with needs no locks as long as only the handler touches it.
 * Functions here may be called from any thread (a worker running a handler or
 * any application thread) unless their comment says otherwise. Messages from
 * one sender (an actor, or one application thread) to one receiver arrive in
 * the order they were sent.
 *
 * Ownership. The runtime and every actor handle are reference counted
 * objects the caller releases explicitly; nothing is garbage collected. A
 * message's bytes are copied at send time unless pn_send_buf() hands a buffer
 * over. Pointers a handler gets from a pn_msg are valid only until the
 * handler returns (a message taken from an inbox, peernet/inbox.h, until it
 * is released).
 *
 * Errors. Bad arguments return PN_EINVAL (or a more precise code) and change
 * nothing. See peernet/error.h.
 */
#ifndef PEERNET_RUNTIME_H
#define PEERNET_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_runtime pn_runtime;
typedef struct pn_actor pn_actor;
typedef struct pn_msg pn_msg;
typedef struct pn_timer pn_timer;

/* Message types at or above PN_MSG_TYPE_RESERVED belong to the runtime. */
#define PN_MSG_TYPE_RESERVED 0xFFFF0000u
/* The last message every actor's handler receives, exactly once, after a stop
 * (its own or a requested one) or at runtime shutdown. The handler frees its
 * state here. Messages still queued behind it are dropped, not delivered. */
#define PN_MSG_STOPPED 0xFFFFFFFFu
/* With pn_actor_config.batch_end set: delivered after the last message of
 * every run that handled at least one, so an actor can flush what it
 * batched (a socket sends its datagrams here). */
#define PN_MSG_BATCH_END 0xFFFFFFFEu

/* Largest message pn_send() copies (bytes). Larger payloads go by
 * pn_send_buf(), which has no size limit beyond size_t. */
#define PN_MSG_COPY_MAX (1u << 20)

/* I/O backend that provides the workers' idle wait (and, in later releases,
 * socket I/O). AUTO probes; the PEERNET_IO environment variable ("uring" or
 * "epoll") overrides AUTO. */
typedef enum pn_io_backend {
  PN_IO_AUTO = 0,
  PN_IO_EPOLL = 1,
  PN_IO_URING = 2
} pn_io_backend;

typedef struct pn_runtime_config {
  size_t size;            /* sizeof(pn_runtime_config): lets the struct grow */
  uint32_t workers;       /* worker threads; 0 = number of online CPUs */
  uint32_t batch;         /* most messages an actor handles per run; 0 = 100 */
  uint32_t spin_us;       /* busy-wait before an idle worker sleeps; 0 = 20 */
  pn_io_backend io;       /* idle-wait and I/O backend */
  bool stats_cpu_time;    /* measure handler CPU time per run (TSC based) */
  uint32_t mailbox_high;  /* depth that mutes actor senders; 0 = 1024 */
  const char *trace_path; /* flight recorder on; dumped here at shutdown
                             (Chrome trace JSON). NULL: PEERNET_TRACE, if
                             set, else off. Copied. */
  uint32_t trace_events;  /* events kept per worker; 0 = 65536 */
  const char *stats_socket;  /* publish JSON snapshots on this Unix socket
                                path (peernet-top reads it); NULL:
                                PEERNET_STATS_SOCKET, if set, else none.
                                Copied. A stale socket file there is
                                replaced; another live runtime's socket or
                                a file that is not a socket makes
                                pn_runtime_create fail (PN_EADDRINUSE) and
                                is left alone. The file is removed at
                                shutdown if it is still this one's. */
  uint32_t trace_categories; /* PN_TRACE_... bits the flight recorder
                                records, when it is on; 0 = all */
  bool stats_histograms;     /* per-actor histograms of mailbox and
                                processing times (pn_actor_histograms_get,
                                snapshots, exports). Off by default: every
                                message is timed, a TSC read per message
                                and per run, so a bare ping-pong loses
                                about half its rate, an actor that works
                                1 us per message under 4%; 576 bytes more
                                per actor */
} pn_runtime_config;

#define PN_RUNTIME_CONFIG_INIT                                                 \
  {                                                                            \
    .size = sizeof(pn_runtime_config), .io = PN_IO_AUTO,                       \
    .stats_cpu_time = true                                                     \
  }

/* Flight recorder categories, the bits of trace_categories. Every event
 * kind belongs to one; PN_TRACE_ALL is every category this release has.
 *   ACTOR   actor runs (start, duration, messages handled), spawns, stops
 *   SEND    messages sent by handlers and other code on a worker
 *   MUTE    backpressure: senders muted and released
 *   SCHED   work stealing between workers
 *   IO      I/O submissions and completions
 *   PACKET  datagrams sent and received
 *   NODE    messages sent to other nodes' actors and delivered from them
 *           (peernet/node.h)
 * Sends are the most frequent events: leaving SEND out is the way to make
 * a recorder of runs cheaper still. */
#define PN_TRACE_ACTOR 0x01u
#define PN_TRACE_SEND 0x02u
#define PN_TRACE_MUTE 0x04u
#define PN_TRACE_SCHED 0x08u
#define PN_TRACE_IO 0x10u
#define PN_TRACE_PACKET 0x20u
#define PN_TRACE_NODE 0x40u
#define PN_TRACE_ALL 0x7Fu

/* Handler of an actor. self is the running actor, state the pointer given at
 * spawn, msg the message (valid until return). Runs on a worker thread; it
 * may send, spawn, start timers and stop actors, and should not block. */
typedef void (*pn_handler)(pn_actor *self, void *state, const pn_msg *msg);

typedef struct pn_actor_config {
  size_t size;      /* sizeof(pn_actor_config) */
  const char *name; /* label for stats, copied (first 31 bytes); may be NULL */
  pn_handler handler;  /* required */
  void *state;         /* passed to every handler call; owned by the caller */
  int32_t home_worker; /* -1: any worker; k: always run on worker k */
  bool batch_end;      /* also deliver PN_MSG_BATCH_END after each run */
} pn_actor_config;

#define PN_ACTOR_CONFIG_INIT                                                   \
  { .size = sizeof(pn_actor_config), .home_worker = -1 }

/* Frees the bytes of a buffer handed over with pn_send_buf(). */
typedef void (*pn_free_fn)(void *data, void *ctx);

/* --- runtime ------------------------------------------------------------ */

/* Creates a runtime and starts its workers. cfg may be NULL for defaults.
 * On PN_OK *rt_out owns the runtime; release it with pn_runtime_destroy().
 * Errors: PN_EINVAL (bad config: size too small, workers > 1024, batch
 * > 10^6, spin_us > 10^6, mailbox_high of 1 or > 2^30, unknown io,
 * trace_categories bits outside PN_TRACE_ALL), PN_ENOTSUP
 * (forced backend unavailable), PN_ENOMEM, or a wrapped errno when a thread or
 * wait object cannot be created. Any thread; blocks only while threads start.
 */
PN_API pn_err pn_runtime_create(const pn_runtime_config *cfg,
                                pn_runtime **rt_out);

/* Stops every actor (each handler gets PN_MSG_STOPPED), waits until all have
 * stopped, then stops and joins the workers. New spawns fail with PN_ECLOSED
 * from the first call on. Safe to call again after PN_ETIMEDOUT.
 * timeout_us: how long to wait for handlers to finish; UINT64_MAX = forever.
 * Errors: PN_ETIMEDOUT (actors still running: pn_snapshot_take() lists them),
 * PN_EWRONGTHREAD when called from a worker of this runtime.
 * Blocks. Not from a handler of this runtime. */
PN_API pn_err pn_runtime_shutdown(pn_runtime *rt, uint64_t timeout_us);

/* Shuts down (waiting up to 10 s for running handlers to return) and frees
 * the runtime. Errors: PN_ETIMEDOUT (a handler is still running: nothing is
 * freed; pn_snapshot_take() shows which actor; call again), PN_EBUSY (actor
 * or timer handles are still held by the application: nothing is freed,
 * the runtime stays shut down; release them and call again),
 * PN_EWRONGTHREAD from a worker of this runtime. On PN_OK every message,
 * actor and timer has been freed. Safe order when actors keep handles they
 * borrowed from you: pn_runtime_shutdown(), release, pn_runtime_destroy().
 * Blocks (bounded). Not from a handler of this runtime. */
PN_API pn_err pn_runtime_destroy(pn_runtime *rt);

/* Number of worker threads. Any thread, never blocks. */
PN_API uint32_t pn_runtime_workers(const pn_runtime *rt);

/* Writes the flight recorder's events (the last trace_events per worker)
 * as Chrome trace-event JSON, which Perfetto and chrome://tracing open.
 * Events being overwritten while the dump runs may be missing. Errors:
 * PN_EINVAL (NULL), PN_ENOTSUP (tracing is off), a wrapped errno when the
 * file cannot be written. Any thread; blocks while writing the file. */
PN_API pn_err pn_runtime_trace_dump(pn_runtime *rt, const char *path);

/* Name of the I/O backend in use ("epoll" or "uring"). Any thread. */
PN_API const char *pn_runtime_io_name(const pn_runtime *rt);

/* --- actors ------------------------------------------------------------- */

/* Spawns an actor. If actor_out is not NULL, on PN_OK it receives a handle
 * the caller owns and must give back with pn_actor_release(); the actor runs
 * whether or not a handle is kept. The runtime keeps the actor alive until it
 * stops. Errors: PN_EINVAL (NULL rt, cfg or handler, small cfg->size, home
 * worker out of range), PN_ECLOSED (runtime shutting down), PN_ENOMEM.
 * Any thread, never blocks (takes a short internal lock). */
PN_API pn_err pn_spawn(pn_runtime *rt, const pn_actor_config *cfg,
                       pn_actor **actor_out);

/* Takes another reference to a handle (for example to give it to another
 * actor in a message). Any thread. */
PN_API void pn_actor_hold(pn_actor *actor);

/* Gives back one reference; NULL is ignored. The memory is freed when the
 * actor has stopped and no reference is left. An actor that keeps another
 * actor's handle must own a reference of its own (pn_actor_hold) and give
 * it back, typically on PN_MSG_STOPPED. From a handler, the messages it
 * has sent so far are delivered first, so sending to an actor and then
 * releasing the handle is safe. Any thread, never blocks. */
PN_API void pn_actor_release(pn_actor *actor);

/* Asks the actor to stop. Messages sent before the request (by the same
 * sender) are handled first; then the handler gets PN_MSG_STOPPED and later
 * messages are dropped. An inbox (peernet/inbox.h) has no handler: it
 * stops soon after, on a worker, freeing whatever is still waiting. From the
 * actor's own handler the stop takes effect when the handler returns.
 * Idempotent. Errors: PN_EINVAL (NULL), PN_ECLOSED (already stopped),
 * PN_ENOMEM. Any thread, never blocks. */
PN_API pn_err pn_actor_stop(pn_actor *actor);

/* --- monitors ----------------------------------------------------------- */

/* A watched actor is down: read it with pn_msg_down(). */
#define PN_MSG_DOWN 0xFFFFFF04u

/* Why a watched actor is down. From PN_DOWN_APP up, the application's own
 * reasons (pn_actor_stop_reason). */
enum {
  PN_DOWN_NORMAL = 0,       /* it stopped (pn_actor_stop, or its runtime
                               shut down) */
  PN_DOWN_NOPROC = 1,       /* it had stopped, or never existed, when the
                               monitor was made */
  PN_DOWN_NOCONNECTION = 2, /* its node became unreachable, or the
                               reference names another run of it
                               (peernet/node.h) */
  PN_DOWN_APP = 256,
};

typedef struct pn_down {
  uint64_t monitor;           /* pn_monitor's or pn_node_monitor's id */
  uint64_t actor;             /* the watched actor's id */
  uint64_t node, incarnation; /* its node as a pn_ref names it, for a
                                 monitor of pn_node_monitor
                                 (peernet/node.h); 0, 0 for pn_monitor's */
  uint32_t reason;            /* PN_DOWN_* or the application's */
} pn_down;

/* Watches target: when it stops, watcher gets one PN_MSG_DOWN with the
 * monitor's id (*monitor_out) and the reason; if target has stopped
 * already, at once, with PN_DOWN_NOPROC. Monitors are independent: two of
 * the same pair bring two DOWNs. The runtime holds watcher until the DOWN
 * is sent or the monitor removed. Errors: PN_EINVAL (NULL, target ==
 * watcher, actors of two runtimes), PN_ENOMEM (nothing changed). Any
 * thread; never blocks (a short internal lock). */
PN_API pn_err pn_monitor(pn_actor *target, pn_actor *watcher,
                         uint64_t *monitor_out);

/* Removes a monitor of target: no DOWN for it is sent after this returns
 * (one already sent stays in the watcher's mailbox: tell it by its id).
 * Errors: PN_EINVAL (NULL), PN_ENOENT (no such monitor of target: it
 * fired, or was removed). Any thread; never blocks. */
PN_API pn_err pn_demonitor(pn_actor *target, uint64_t monitor);

/* pn_actor_stop() with a reason for its monitors' DOWN (the first given
 * counts). Errors: those of pn_actor_stop(); PN_EINVAL for a reason below
 * PN_DOWN_APP (nothing changed); PN_ENOMEM. Any thread; never blocks. */
PN_API pn_err pn_actor_stop_reason(pn_actor *actor, uint32_t reason);

/* Reads a PN_MSG_DOWN into *out. Errors: PN_EINVAL (NULL, or another
 * message). Any thread. */
PN_API pn_err pn_msg_down(const pn_msg *msg, pn_down *out);

/* The actor whose handler is running on this thread, or NULL outside one.
 * Borrowed: valid while the handler runs. */
PN_API pn_actor *pn_self(void);

/* The runtime an actor belongs to. Borrowed. Any thread. */
PN_API pn_runtime *pn_actor_runtime(const pn_actor *actor);

/* Unique, never-reused (per runtime) identifier, starting at 1. */
PN_API uint64_t pn_actor_id(const pn_actor *actor);

/* --- messages ----------------------------------------------------------- */

/* Copies size bytes from data into a pooled envelope and queues it for the
 * actor. type must be below PN_MSG_TYPE_RESERVED; data may be NULL when size
 * is 0. The caller keeps data. A handler that sends to an actor whose
 * mailbox holds mailbox_high messages or more is muted: after its current
 * run it is not run again until the receiver is down to half of that.
 * Sends from a handler are queued when the handler returns (one push per
 * receiver per run); sends from other threads are queued at once.
 * Errors: PN_EINVAL (NULL actor, reserved type, NULL data with size > 0),
 * PN_ERANGE (size > PN_MSG_COPY_MAX), PN_ECLOSED (receiver stopped; nothing
 * queued), PN_ENOMEM. PN_OK means queued: a receiver that stops before
 * handling it drops it.
 * Any thread, never blocks. */
PN_API pn_err pn_send(pn_actor *to, uint32_t type, const void *data,
                      size_t size);

/* Hands data over without copying. On PN_OK the runtime owns data and calls
 * free_fn(data, ctx) exactly once, on some worker thread, after the handler
 * returned or when the message is dropped (to an inbox: on the thread that
 * releases the message, or that closes the inbox while it waits). free_fn may
 * be NULL when the buffer needs no freeing. On error the caller still owns
 * data. Errors as pn_send() except PN_ERANGE. Any thread, never blocks. */
PN_API pn_err pn_send_buf(pn_actor *to, uint32_t type, void *data, size_t size,
                          pn_free_fn free_fn, void *ctx);

/* Accessors for a message inside a handler. The pointer from pn_msg_data()
 * is valid until the handler returns; NULL when the size is 0. */
PN_API uint32_t pn_msg_type(const pn_msg *msg);
PN_API const void *pn_msg_data(const pn_msg *msg);
PN_API size_t pn_msg_size(const pn_msg *msg);

/* --- timers ------------------------------------------------------------- */

/* Sends a message of the given type (no payload) to actor after delay_us
 * microseconds, then every period_us if period_us > 0. If timer_out is not
 * NULL it receives a handle that must be given back with pn_timer_cancel();
 * with NULL the timer cannot be cancelled (allowed only for one-shot timers).
 * A tick for an actor that stopped is dropped. Ticks are never queued twice
 * behind each other for one periodic timer (a late tick is not followed by a
 * burst of catch-up ticks).
 * Errors: PN_EINVAL (NULL actor, reserved type, periodic timer without
 * timer_out), PN_ECLOSED (actor stopped), PN_ENOMEM.
 * Any thread, never blocks. */
PN_API pn_err pn_timer_start(pn_actor *actor, uint32_t type, uint64_t delay_us,
                             uint64_t period_us, pn_timer **timer_out);

/* Cancels the timer and gives back the handle; NULL is ignored. A tick not
 * yet handed to the handler when this returns is dropped, even one already
 * queued. Safe after a one-shot timer fired. Any thread, never blocks. */
PN_API void pn_timer_cancel(pn_timer *timer);

#ifdef __cplusplus
}
#endif

#endif
