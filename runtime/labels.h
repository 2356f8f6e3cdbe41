/* Interned actor names. Actors of one kind share a label, so a name costs
 * one pointer per actor. Labels are reference counted and freed with their
 * last actor. Every function here runs under the runtime's registry lock. */
#ifndef PN_RUNTIME_LABELS_H
#define PN_RUNTIME_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"

#define PN__LABEL_MAX 31u /* bytes kept of a name */

typedef struct pn__label {
  struct pn__label *next;
  uint32_t refs;
  uint32_t hash;
  char text[PN__LABEL_MAX + 1];
} pn__label;

typedef struct pn__label_table {
  pn__label **buckets;
  size_t nbuckets;
  size_t count;
} pn__label_table;

void pn__labels_init(pn__label_table *t);
void pn__labels_fini(pn__label_table *t);

/* The label for name (first PN__LABEL_MAX bytes), with one more reference;
 * NULL when out of memory. */
pn__label *pn__label_get(pn__label_table *t, const char *name);

/* Drops one reference; NULL is ignored. */
void pn__label_put(pn__label_table *t, pn__label *label);

#endif
