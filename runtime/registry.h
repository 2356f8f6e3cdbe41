/* The runtime's registry of observable objects. The layers above the
 * runtime (sockets, peers, and whatever comes next) register their objects
 * here with a class of their own, so a snapshot finds every live object
 * without the runtime knowing what a socket or a peer is; the observability
 * layer (observe/) reads them by class. Actors are registered apart, in the
 * runtime's own list, with the same intrusive list.
 *
 * Threading: add and remove from any thread; both take the registry lock
 * (rt->reg_lock), which the snapshot holds while it copies.
 */
#ifndef PN_RUNTIME_REGISTRY_H
#define PN_RUNTIME_REGISTRY_H

#include "peernet/runtime.h"
#include "runtime/list.h"

/* A class of objects: static, one per kind (compared by address). */
typedef struct pn__stat_class {
  const char *name; /* "socket", "peer" */
} pn__stat_class;

/* Embedded in each registered object. */
typedef struct pn__stat_obj {
  pn__list link;
  const pn__stat_class *cls;
  bool retired; /* removed: never (again) added (under the lock) */
} pn__stat_obj;

/* Registers o (embedded in a live object) under cls, unless o was
 * removed already: an object whose actor closed it before its opener got
 * to register it (the two run on different threads) stays out. Any
 * thread. */
void pn__registry_add(pn_runtime *rt, pn__stat_obj *o,
                      const pn__stat_class *cls);

/* Removes o for good; removing one never added (or already removed) is
 * harmless, provided its link was initialised with pn__list_init(). Any
 * thread. */
void pn__registry_remove(pn_runtime *rt, pn__stat_obj *o);

/* The registry lock, for readers walking pn__registry_objects(). */
void pn__registry_lock(pn_runtime *rt);
void pn__registry_unlock(pn_runtime *rt);

/* The list of registered objects (walk under the lock). */
pn__list *pn__registry_objects(pn_runtime *rt);

#endif
