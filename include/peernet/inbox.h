/* PeerNet inboxes: an actor whose messages a thread of yours reads.
 *
 * An inbox is a pn_actor that no worker runs: whatever is sent to it waits
 * in its mailbox until an application thread takes it with
 * pn_inbox_receive(). Anything that takes a pn_actor * works with it:
 * pn_send() and pn_send_buf(), a peer's owner (pn_peer_config.owner), a
 * host's accept_owner, a socket's owner, pn_timer_start(),
 * pn_stats_subscribe(). A received message reads as it would in a handler
 * (pn_msg_type(), pn_msg_data(), pn_msg_peer_event(), pn_msg_datagram(),
 * pn_msg_stats(), ...). pn_inbox_fd() gives an eventfd to wait on with
 * poll(2), epoll(7) or a game loop's own wait: it is readable while
 * messages are waiting.
 *
 * Threading. Every function may be called from any thread, including
 * handlers (pn_inbox_receive() with a timeout of 0 only: a handler must
 * not block, and one that tries gets PN_EWRONGTHREAD). Any number of threads
 * may receive from one inbox at once; each message goes to exactly one of them.
 * Messages from one sender arrive in the order they were sent, as they do for
 * an actor.
 *
 * Ownership. pn_inbox_open() returns a handle the caller gives back with
 * pn_inbox_close(). A received message is the caller's until it gives it
 * back with pn_inbox_release(): its bytes and whatever it carries (a
 * handed-over buffer, a packet, a peer event's peer) stay valid until
 * then, and the runtime calls a handed-over buffer's free function once,
 * at the release. A peer named in an event stays valid until that peer's
 * PN_MSG_PEER_DISCONNECTED is released (pn_peer_hold() keeps it longer).
 * Messages not yet released keep the inbox's memory alive and count as
 * held objects: pn_runtime_destroy() returns PN_EBUSY while any is.
 *
 * Memory. An inbox's mailbox is bounded like an actor's: an actor whose
 * handler sends to an inbox holding mailbox_high messages or more is muted
 * (not run again) until a reader takes it below half of that. Application
 * threads are never muted, as with actors.
 *
 * Stopping. pn_actor_stop() on an inbox, or pn_runtime_shutdown(), stops
 * it: messages still waiting are freed, sends fail with PN_ECLOSED, every
 * receive (blocked ones included) returns PN_ECLOSED, and the fd stays
 * readable. That is the way to wake a thread blocked in pn_inbox_receive()
 * for good. pn_inbox_close() stops the inbox, if it is not stopped yet, and
 * gives back the handle.
 *
 * Errors. Bad arguments (NULL, an actor that is not an inbox) return
 * PN_EINVAL and change nothing. See peernet/error.h.
 */
#ifndef PEERNET_INBOX_H
#define PEERNET_INBOX_H

#include <stdint.h>

#include "peernet/error.h"
#include "peernet/export.h"
#include "peernet/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opens an inbox. name labels it in stats and snapshots (copied, first 31
 * bytes); NULL: "inbox". On PN_OK *inbox_out is a handle the caller owns
 * and gives back with pn_inbox_close(); pn_actor_hold() takes more
 * references (given back with pn_actor_release()), as for any actor.
 * Errors: PN_EINVAL (NULL rt or inbox_out), PN_ECLOSED (runtime shutting
 * down), PN_ENOMEM, or a wrapped errno when the eventfd cannot be made.
 * Any thread, never blocks. */
PN_API pn_err pn_inbox_open(pn_runtime *rt, const char *name,
                            pn_actor **inbox_out);

/* Takes the oldest waiting message, waiting up to timeout_us microseconds
 * for one (0: do not wait; UINT64_MAX: wait until one arrives or the inbox
 * stops). On PN_OK *msg_out is the caller's until pn_inbox_release().
 * Errors, with *msg_out untouched: PN_ETIMEDOUT (nothing arrived in
 * time), PN_ECLOSED (the inbox stopped; what was waiting is freed),
 * PN_EINVAL (NULL, or inbox is not an inbox), PN_EWRONGTHREAD (a timeout
 * other than 0 from a worker of the inbox's runtime: a handler must not
 * block), a wrapped errno if waiting on the fd fails (EINTR is retried).
 * Any thread; blocks up to timeout_us. */
PN_API pn_err pn_inbox_receive(pn_actor *inbox, uint64_t timeout_us,
                               pn_msg **msg_out);

/* Gives a received message back: its bytes and what it carries are freed
 * (a handed-over buffer's free function runs now, on this thread). msg must
 * come from pn_inbox_receive() on this inbox and is invalid afterwards;
 * NULL is ignored. Allowed after pn_inbox_close(). Any thread, never
 * blocks. */
PN_API void pn_inbox_release(pn_actor *inbox, pn_msg *msg);

/* The inbox's eventfd, for poll(2) or epoll(7) (POLLIN / EPOLLIN; level or
 * edge triggered). It is readable while messages are waiting, and from the
 * stop on; it may also stay readable briefly after the last message was
 * taken, until a pn_inbox_receive() finds none. Read it only through
 * pn_inbox_receive(); never read, write or close it yourself. Valid until
 * the inbox is closed. Errors: PN_EINVAL (NULL, not an inbox). Any thread,
 * never blocks. */
PN_API pn_err pn_inbox_fd(const pn_actor *inbox, int *fd_out);

/* Stops the inbox (unless it is stopped already: see Stopping above),
 * freeing what is waiting, and gives back the caller's handle. Messages
 * received and not yet released stay valid until pn_inbox_release().
 * No other thread may still use this handle (one blocked in
 * pn_inbox_receive() included: stop the inbox with pn_actor_stop() and let
 * that thread return first). Errors: PN_EINVAL (NULL, not an inbox;
 * nothing changes). Any thread, never blocks (it may wait briefly for a
 * sender halfway through a send). */
PN_API pn_err pn_inbox_close(pn_actor *inbox);

#ifdef __cplusplus
}
#endif

#endif
