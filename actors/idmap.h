/* A map from nonzero 64-bit keys to pointers: open addressing, linear
 * probing, backward-shift deletion (no tombstones), grows at 50% load.
 * Not thread-safe: one owner (the host actor) uses it. */
#ifndef PN_ACTORS_IDMAP_H
#define PN_ACTORS_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pn__idmap_slot {
  uint64_t key; /* 0: empty */
  void *value;
} pn__idmap_slot;

typedef struct pn__idmap {
  pn__idmap_slot *slots;
  size_t cap; /* power of two, or 0 */
  size_t count;
} pn__idmap;

/* NULL when absent (key 0 is never present). */
void *pn__idmap_get(const pn__idmap *m, uint64_t key);

/* Inserts or replaces. False when memory ran out (nothing changed). */
bool pn__idmap_put(pn__idmap *m, uint64_t key, void *value);

/* Removes the key if present; returns its value or NULL. */
void *pn__idmap_del(pn__idmap *m, uint64_t key);

void pn__idmap_free(pn__idmap *m);

#endif
