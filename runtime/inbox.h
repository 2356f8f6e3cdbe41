/* Inboxes (peernet/inbox.h) as the runtime sees them: actors flagged
 * PN__A_INBOX whose mailbox an application thread reads instead of a
 * worker. The actor's state is a pn__inbox. actor.c calls in here where it
 * would schedule such an actor (a push that found the mailbox idle, a stop
 * request) and when its last reference goes. */
#ifndef PN_RUNTIME_INBOX_H
#define PN_RUNTIME_INBOX_H

#include "peernet/inbox.h"
#include "runtime/worker.h"

/* A push found the inbox's mailbox idle, so the pusher owns waking it:
 * signals the eventfd, or, once the inbox is stopped, queues a run that
 * frees what was pushed (unless one is queued already). flags is what the
 * pusher loaded after its push (acquire). w is the calling worker or NULL.
 * The pusher still holds its reference. */
void pn__inbox_wake(pn__worker *w, pn_actor *a, uint32_t flags);

/* A run of the inbox: the one pn_actor_stop() queued, which stops it
 * (freeing what is waiting) and gives back the runtime's reference, or,
 * once stopped, a drain run queued by pn__inbox_wake(), which frees what
 * came late and gives back its own. Worker only. */
void pn__inbox_run(pn__worker *w, pn_actor *a);

/* The last reference went: closes the eventfd and frees the inbox's own
 * memory (its mailbox is empty by then). Any thread. */
void pn__inbox_free(pn_actor *a);

#endif
