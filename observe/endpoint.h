/* The stats endpoint: a Unix stream socket on which the runtime answers
 * every connection with one JSON snapshot (pn_snapshot_json) and closes
 * it. A small thread of its own serves it, so a slow or stuck reader never
 * holds up a worker. */
#ifndef PN_OBSERVE_ENDPOINT_H
#define PN_OBSERVE_ENDPOINT_H

#include <pthread.h>
#include <stdbool.h>

#include "peernet/error.h"

typedef struct pn_runtime pn_runtime;

typedef struct pn__endpoint {
  char *path;
  int listen_fd;
  int stop_fd; /* eventfd: wakes the thread to exit */
  pthread_t thread;
  bool running;
} pn__endpoint;

/* Binds path (replacing a stale socket file) and starts serving. */
pn_err pn__endpoint_start(pn__endpoint *ep, pn_runtime *rt, const char *path);

/* Stops the thread, closes and unlinks the socket. Idempotent. */
void pn__endpoint_stop(pn__endpoint *ep);

#endif
