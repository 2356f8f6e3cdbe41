/* The seam between the runtime and the observability layer above it
 * (observe/): the runtime starts and stops the stats endpoint through these
 * hooks without knowing what a snapshot holds.
 *
 * Exactly one definition of pn__observer_hooks is linked: observe/observer.c
 * in the library (the stats socket serving JSON snapshots of actors,
 * sockets and peers), runtime/observer_none.c in the runtime-only target
 * that the runtime's own tests link (no stats socket: PN_ENOTSUP). So the
 * runtime never calls up into the layers above it, and a runtime test that
 * needed them would fail to link.
 */
#ifndef PN_RUNTIME_OBSERVER_H
#define PN_RUNTIME_OBSERVER_H

#include "peernet/error.h"
#include "peernet/runtime.h"

typedef struct pn__observer_hooks_t {
  /* Starts serving snapshots of rt on the Unix socket at path; *state_out
   * is what stop() gets. Called once from pn_runtime_create(). Errors:
   * PN_ENOTSUP (no observability layer), PN_EINVAL, PN_EEXIST, OS errors,
   * PN_ENOMEM. */
  pn_err (*start)(pn_runtime *rt, const char *path, void **state_out);
  /* Stops serving and frees state (NULL is ignored). Blocks until the
   * endpoint's thread has exited. */
  void (*stop)(void *state);
} pn__observer_hooks_t;

extern const pn__observer_hooks_t pn__observer_hooks;

#endif
