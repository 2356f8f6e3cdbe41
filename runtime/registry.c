/* The registry of observable objects: see registry.h. */
#include "runtime/registry.h"

#include <stdbool.h>

#include "runtime/rt.h"

void pn__registry_add(pn_runtime *rt, pn__stat_obj *o,
                      const pn__stat_class *cls) {
  pthread_mutex_lock(&rt->reg_lock);
  o->cls = cls;
  if (!o->retired) {
    pn__list_insert_after(&rt->objects, &o->link);
  }
  pthread_mutex_unlock(&rt->reg_lock);
}

void pn__registry_remove(pn_runtime *rt, pn__stat_obj *o) {
  pthread_mutex_lock(&rt->reg_lock);
  pn__list_remove(&o->link); /* an unlinked node stays unlinked */
  o->retired = true;
  pthread_mutex_unlock(&rt->reg_lock);
}

void pn__registry_lock(pn_runtime *rt) { pthread_mutex_lock(&rt->reg_lock); }

void pn__registry_unlock(pn_runtime *rt) {
  pthread_mutex_unlock(&rt->reg_lock);
}

pn__list *pn__registry_objects(pn_runtime *rt) { return &rt->objects; }
