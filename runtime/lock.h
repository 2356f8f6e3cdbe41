/* Internal locks: pthread mutexes of the adaptive kind, which spin briefly
 * before sleeping. Every lock here guards a few pointer updates, so a
 * waiter that spins gets it sooner than one that sleeps in a futex and pays
 * two context switches. */
#ifndef PN_RUNTIME_LOCK_H
#define PN_RUNTIME_LOCK_H

#include <pthread.h>

static inline void pn__mutex_init(pthread_mutex_t *m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
#ifdef PTHREAD_MUTEX_ADAPTIVE_NP
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
  pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
}

#endif
