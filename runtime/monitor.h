/* Monitors (pn_monitor, peernet/runtime.h): which actors watch which,
 * and each watched actor's stop reason, in a table of the runtime's keyed
 * by actor id, so an actor stays three cache lines: only an actor with the
 * PN__A_MONITORED flag costs its stop a look in the table.
 *
 * Threading: any thread, under the table's own mutex. The flag is set
 * under it, and an actor's stop sets DEAD with one read-modify-write of
 * the same flags word: whichever of the two comes second sees the other
 * (a monitor of an actor already stopped gets PN_DOWN_NOPROC at once; a
 * stop that sees the flag fires the monitors under the mutex).
 */
#ifndef PN_RUNTIME_MONITOR_H
#define PN_RUNTIME_MONITOR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/runtime.h"

typedef struct pn__monitors {
  pthread_mutex_t lock;
  struct pn__watched **buckets; /* chained by actor id; power of two */
  size_t nbuckets, count;
  uint64_t next_id;
} pn__monitors;

void pn__monitors_init(pn__monitors *m);

/* Frees what is left (the runtime is gone: watchers' references given
 * back). */
void pn__monitors_fini(pn__monitors *m);

/* The runtime's actor `a` stopped (DEAD set; `flags` what it was before):
 * each of its monitors' watchers gets PN_MSG_DOWN. Its worker. */
void pn__monitors_fire(pn_runtime *rt, pn_actor *a);

/* pn_monitor() whose DOWN names node and incarnation (a node's monitor
 * of one of its own actors, nodes/monitor.c). */
pn_err pn__monitor_as(pn_actor *target, pn_actor *watcher, uint64_t node,
                      uint64_t incarnation, uint64_t *monitor_out);

/* A new monitor id, from the runtime's one sequence (a node's monitors of
 * other nodes' actors take theirs from it too). Any thread. */
uint64_t pn__monitor_id(pn_runtime *rt);

/* Sends watcher a PN_MSG_DOWN. Any thread. */
pn_err pn__down_send(pn_actor *watcher, const pn_down *d);

#endif
