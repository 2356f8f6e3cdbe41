/* Inboxes: actors whose mailbox application threads read (peernet/inbox.h).
 *
 * States: open (readers take messages; a push that finds the mailbox idle
 * signals the eventfd) -> stopped (DEAD: what was waiting is freed, sends
 * fail, receives return PN_ECLOSED, the eventfd stays readable). The stop
 * comes from pn_inbox_close() on the caller's thread or, for
 * pn_actor_stop() and shutdown, from a run of the actor on a worker (the
 * only run an inbox ever gets); whichever sets STOP_REQ first does it.
 *
 * The mailbox is the actor's own MPSC queue: senders push with the shared
 * code in actor.h, and the consumer is whoever holds `lock` (readers, the
 * stop, and after the stop the senders that find it idle). The consumer's
 * tail differs from a run's in one way: a run's tail is the last envelope
 * it handled (freed when the run moves past it); ours is the oldest
 * envelope not yet handed out, because once handed out an envelope is the
 * application's until pn_inbox_release() and cannot stay in the queue. The
 * last envelope therefore leaves only through the idle CAS
 * (pn__mailbox_idle_cas(), which puts the stub back); while a sender sits
 * between its exchange and its link that CAS fails and the consumer waits
 * for the link. The push counts, the high mark and the muting of senders
 * are the shared ones (pn__mailbox_note_taken(), pn__actor_went_idle()).
 *
 * The eventfd is the idle bit seen from outside: the push that finds the
 * mailbox idle writes it (wake_receiver() in actor.c), and the reader
 * clears it just before it marks the mailbox idle (or finds it idle), and
 * writes it back when that fails. A push between the two finds the mailbox
 * not idle, or idle after the clear, and writes it again, so a message
 * never waits behind an unreadable fd.
 *
 * After the stop, a push that finds the mailbox idle sees DEAD (it
 * synchronises with the stop's last read-modify-write of the head, which
 * comes after DEAD was set) and queues a drain run, as for a stopped
 * actor, unless one is queued already (drain_queued): with the reader's
 * lock as the consumer's, runs are not what makes consumers take turns,
 * so the flag is what keeps the actor in one run queue at a time. The
 * drain is not done by the pusher itself: that push may be a worker's
 * outbox flush, and freeing a message there (a peer event's peer, whose
 * release flushes the outbox) would flush it again from within.
 */
#include "runtime/inbox.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/err_os.h"
#include "runtime/lock.h"
#include "runtime/rt.h"
#include "runtime/timer.h"

/* A receive that keeps finding a sender halfway through its push yields
 * this many times before a deadline that has passed ends it. */
#define BUSY_YIELDS_MAX 64u

typedef struct pn__inbox {
  pthread_mutex_t lock;          /* the consumer side of the mailbox */
  int fd;                        /* eventfd: readable while messages wait */
  _Atomic uint32_t drain_queued; /* stopped: a drain run is queued */
} pn__inbox;

typedef enum take_result {
  TAKE_OK,
  TAKE_EMPTY, /* nothing queued and the mailbox idle */
  TAKE_BUSY   /* a sender is between its exchange and its link */
} take_result;

static pn__inbox *inbox_of(const pn_actor *a) { return a->state; }

static bool is_inbox(const pn_actor *a) {
  return a &&
         (atomic_load_explicit(&a->flags, memory_order_relaxed) & PN__A_INBOX);
}

/* Under the lock, where the stop sets DEAD. */
static bool stopped_locked(const pn_actor *a) {
  return atomic_load_explicit(&a->flags, memory_order_relaxed) & PN__A_DEAD;
}

/* The handler an actor must have; no worker ever calls it (runs go to
 * pn__inbox_run(), and messages to readers). */
static void inbox_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
  /* An inbox's messages are read by pn_inbox_receive(). */
  bool never_called = false;
  PN_ASSERT(never_called);
}

static void fd_signal(pn__inbox *ib) {
  uint64_t one = 1;
  /* Only EAGAIN can fail it (a counter near 2^64), and then it is readable
   * already. */
  (void)!write(ib->fd, &one, sizeof one);
}

static void fd_clear(pn__inbox *ib) {
  uint64_t count;
  (void)!read(ib->fd, &count, sizeof count); /* EAGAIN: it was clear */
}

/* tail is the stub and nothing is linked behind it: is the mailbox idle? */
static take_result settle_empty(pn__inbox *ib, pn_actor *a) {
  uintptr_t idle = (uintptr_t)&a->stub | 1u;
  if (stopped_locked(a)) {
    /* seq_cst read-modify-write, not a load: a sender whose exchange comes
     * after it reads the value it wrote (its acquire half pairs with this
     * release), so it sees DEAD and frees what it pushed; one whose
     * exchange came before makes it fail, and we wait for its link. */
    return atomic_compare_exchange_strong_explicit(&a->head, &idle, idle,
                                                   memory_order_seq_cst,
                                                   memory_order_relaxed)
               ? TAKE_EMPTY
               : TAKE_BUSY;
  }
  fd_clear(ib);
  /* seq_cst (acquire would do): after the clear. A sender that finds the
   * mailbox idle after this look signals again; one whose signal the clear
   * swallowed had exchanged the head before that signal, so the kernel's
   * ordering of the eventfd's read and write makes this load see it. */
  if (atomic_load_explicit(&a->head, memory_order_seq_cst) == idle) {
    return TAKE_EMPTY;
  }
  fd_signal(ib);
  return TAKE_BUSY;
}

/* Takes the oldest message out of the mailbox, detached: *out is then the
 * caller's. Under the lock. */
static take_result take(pn__inbox *ib, pn__worker *w, pn_actor *a,
                        pn_msg **out) {
  pn__node *t = a->tail;
  if (t == &a->stub) {
    /* acquire: pairs with the release store of the link in
     * pn__mailbox_push_chain() or pn__mailbox_push_msgs() (actor.h). */
    pn__node *n = atomic_load_explicit(&t->next, memory_order_acquire);
    if (!n) {
      return settle_empty(ib, a);
    }
    a->tail = t = n;
  }
  /* acquire: as above. */
  pn__node *n = atomic_load_explicit(&t->next, memory_order_acquire);
  if (n) {
    a->tail = n;
  } else {
    bool stopped = stopped_locked(a);
    if (!stopped) {
      fd_clear(ib);
    }
    if (!pn__mailbox_idle_cas(a, t)) {
      if (!stopped) {
        fd_signal(ib);
      }
      return TAKE_BUSY;
    }
    pn__actor_went_idle(w, a);
  }
  pn_msg *m = (pn_msg *)t;
  /* The depth before this take; a run records it at its end instead. */
  uint32_t depth = pn__mailbox_depth(a);
  if (depth > atomic_load_explicit(&a->depth_hwm, memory_order_relaxed)) {
    atomic_store_explicit(&a->depth_hwm, depth, memory_order_relaxed);
  }
  pn__stat_add(&a->received, 1);
  pn__mailbox_note_taken(w, a, m->chain_count);
  *out = m;
  return TAKE_OK;
}

/* Frees everything queued and leaves the mailbox idle. Under the lock,
 * once the inbox is stopped. It may wait for a sender halfway through its
 * push: a few instructions, unless that thread is preempted there. */
static void drain_locked(pn__worker *w, pn_actor *a) {
  pn__inbox *ib = inbox_of(a);
  uint64_t dropped = 0;
  for (;;) {
    pn_msg *m;
    take_result r = take(ib, w, a, &m);
    if (r == TAKE_OK) {
      pn__msg_free(a->rt, w, m);
      dropped++;
    } else if (r == TAKE_EMPTY) {
      break;
    } else {
      sched_yield();
    }
  }
  pn__stat_add(&a->dropped, dropped);
}

/* The stop, by whoever set STOP_REQ first. Gives back the runtime's
 * reference; the caller still holds one of its own. */
static void stop(pn__worker *w, pn_actor *a) {
  pn__inbox *ib = inbox_of(a);
  pthread_mutex_lock(&ib->lock);
  pn__actor_mark_stopped(w, a);
  drain_locked(w, a);
  pthread_mutex_unlock(&ib->lock);
  fd_signal(ib); /* blocked readers return PN_ECLOSED; it stays readable */
  pn__actor_unref(a);
}

void pn__inbox_wake(pn__worker *w, pn_actor *a, uint32_t flags) {
  pn__inbox *ib = inbox_of(a);
  if (!(flags & PN__A_DEAD)) {
    fd_signal(ib);
    return;
  }
  /* relaxed: a queued run that has not cleared the flag yet drains this
   * push too. One that cleared it before its drain's last read-modify-write
   * of the head either drains this push, or this push's exchange read that
   * write's value (acq_rel, actor.h) and so this exchange sees the clear. */
  if (!atomic_exchange_explicit(&ib->drain_queued, 1, memory_order_relaxed)) {
    pn_actor_hold(a); /* the drain run's own, as for a stopped actor */
    pn__schedule(w, a, true);
  }
}

void pn__inbox_run(pn__worker *w, pn_actor *a) {
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped() (actor.c). */
  if (!(atomic_load_explicit(&a->flags, memory_order_acquire) & PN__A_DEAD)) {
    /* The run pn_actor_stop() queued, on the runtime's reference, which
     * only this stop gives back. */
    stop(w, a);
    return;
  }
  pn__inbox *ib = inbox_of(a);
  /* relaxed: see pn__inbox_wake(); cleared before the drain begins. */
  atomic_store_explicit(&ib->drain_queued, 0, memory_order_relaxed);
  pthread_mutex_lock(&ib->lock);
  drain_locked(w, a);
  pthread_mutex_unlock(&ib->lock);
  pn__actor_unref(a);
}

void pn__inbox_free(pn_actor *a) {
  pn__inbox *ib = inbox_of(a);
  PN_ASSERT(a->tail == &a->stub);
  close(ib->fd);
  pthread_mutex_destroy(&ib->lock);
  free(ib);
}

pn_err pn_inbox_open(pn_runtime *rt, const char *name, pn_actor **inbox_out) {
  if (!rt || !inbox_out) {
    return PN_EINVAL;
  }
  pn__inbox *ib = pn__calloc(1, sizeof *ib);
  if (!ib) {
    return PN_ENOMEM;
  }
  ib->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ib->fd < 0) {
    pn_err err = pn__err_os(errno);
    free(ib);
    return err;
  }
  pn__mutex_init(&ib->lock);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = name ? name : "inbox";
  cfg.handler = inbox_handler;
  cfg.state = ib;
  pn_actor *a;
  pn_err err = pn__spawn(rt, &cfg, PN__A_INBOX, &a);
  if (err != PN_OK) {
    close(ib->fd);
    pthread_mutex_destroy(&ib->lock);
    free(ib);
    return err;
  }
  *inbox_out = a;
  return PN_OK;
}

pn_err pn_inbox_receive(pn_actor *inbox, uint64_t timeout_us,
                        pn_msg **msg_out) {
  if (!is_inbox(inbox) || !msg_out) {
    return PN_EINVAL;
  }
  pn_actor *a = inbox;
  pn__inbox *ib = inbox_of(a);
  pn__worker *w = pn__worker_current(a->rt);
  if (w && timeout_us) {
    return PN_EWRONGTHREAD; /* a worker that waits may be the sender */
  }
  uint64_t start = pn__now_ns();
  uint64_t deadline = timeout_us >= (UINT64_MAX - start) / 1000
                          ? UINT64_MAX
                          : start + timeout_us * 1000;
  uint32_t yields = 0;
  for (;;) {
    pthread_mutex_lock(&ib->lock);
    if (stopped_locked(a)) {
      pthread_mutex_unlock(&ib->lock);
      return PN_ECLOSED;
    }
    pn_msg *m = NULL;
    take_result r = take(ib, w, a, &m);
    if (r == TAKE_OK && m->kind == PN__MSG_TICK &&
        !pn__timer_tick_take(m->timer)) {
      /* The timer was cancelled after this tick was queued. */
      pn__stat_add(&a->dropped, 1);
      pthread_mutex_unlock(&ib->lock);
      pn__msg_free(a->rt, w, m);
      continue;
    }
    if (r == TAKE_OK) {
      pn__stat_add(&a->processed, 1);
    }
    pthread_mutex_unlock(&ib->lock);
    if (r == TAKE_OK) {
      pn_actor_hold(a); /* the message's, given back by pn_inbox_release */
      *msg_out = m;
      return PN_OK;
    }
    uint64_t now = pn__now_ns();
    if (r == TAKE_BUSY) {
      if (++yields > BUSY_YIELDS_MAX && now >= deadline) {
        return PN_ETIMEDOUT;
      }
      sched_yield();
      continue;
    }
    if (now >= deadline) {
      return PN_ETIMEDOUT;
    }
    struct pollfd pfd = {.fd = ib->fd, .events = POLLIN};
    struct timespec left;
    if (deadline != UINT64_MAX) {
      left.tv_sec = (time_t)((deadline - now) / 1000000000u);
      left.tv_nsec = (long)((deadline - now) % 1000000000u);
    }
    if (ppoll(&pfd, 1, deadline == UINT64_MAX ? NULL : &left, NULL) < 0 &&
        errno != EINTR) {
      return pn__err_os(errno);
    }
  }
}

void pn_inbox_release(pn_actor *inbox, pn_msg *msg) {
  if (!is_inbox(inbox) || !msg) {
    return;
  }
  pn__msg_free(inbox->rt, pn__worker_current(inbox->rt), msg);
  /* The message's reference; from a handler, pn_actor_release() first
   * delivers what the handler sent, which holds no reference of its own. */
  pn_actor_release(inbox);
}

pn_err pn_inbox_fd(const pn_actor *inbox, int *fd_out) {
  if (!is_inbox(inbox) || !fd_out) {
    return PN_EINVAL;
  }
  *fd_out = inbox_of(inbox)->fd;
  return PN_OK;
}

pn_err pn_inbox_close(pn_actor *inbox) {
  if (!is_inbox(inbox)) {
    return PN_EINVAL;
  }
  /* relaxed: only the read-modify-write's atomicity matters. Exactly one
   * of this and pn_actor_stop() (actor.c) finds STOP_REQ clear and stops
   * the inbox; the stop itself is ordered by the lock. */
  uint32_t f = atomic_fetch_or_explicit(&inbox->flags, PN__A_STOP_REQ,
                                        memory_order_relaxed);
  if (!(f & PN__A_STOP_REQ)) {
    stop(pn__worker_current(inbox->rt), inbox);
  }
  pn_actor_release(inbox);
  return PN_OK;
}
