/* The stats endpoint: a Unix stream socket on which the runtime answers
 * every connection with one JSON snapshot (pn_snapshot_json) and closes
 * it. A small thread of its own serves it, so a slow or stuck reader never
 * holds up a worker. */
#ifndef PN_OBSERVE_ENDPOINT_H
#define PN_OBSERVE_ENDPOINT_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "peernet/error.h"

typedef struct pn_runtime pn_runtime;

typedef struct pn__endpoint {
  char *path;
  int listen_fd;
  int stop_fd; /* eventfd: wakes the thread to exit */
  pthread_t thread;
  bool running;
  bool bound; /* the socket file at path is ours: */
  dev_t dev;  /* its device */
  ino_t ino;  /* and inode, checked before removing it */
} pn__endpoint;

/* Binds path and starts serving. A socket file nobody answers on (left by
 * a crashed run) is replaced; a live server's socket, or anything that is
 * not a socket, is left alone: PN_EADDRINUSE. */
pn_err pn__endpoint_start(pn__endpoint *ep, pn_runtime *rt, const char *path);

/* Stops the thread, closes the socket and removes its file if the file is
 * still the one it created. Idempotent. */
void pn__endpoint_stop(pn__endpoint *ep);

#endif
