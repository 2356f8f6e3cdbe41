/* Interned actor names: a chained hash set that doubles as it fills. */
#include "runtime/alloc.h"
#include "runtime/labels.h"

#include <stdlib.h>
#include <string.h>

static uint32_t hash_name(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  }
  return h;
}

void pn__labels_init(pn__label_table *t) {
  t->buckets = NULL;
  t->nbuckets = 0;
  t->count = 0;
}

void pn__labels_fini(pn__label_table *t) {
  for (size_t i = 0; i < t->nbuckets; i++) {
    pn__label *l = t->buckets[i];
    while (l) {
      pn__label *next = l->next;
      free(l);
      l = next;
    }
  }
  free(t->buckets);
  pn__labels_init(t);
}

static void grow(pn__label_table *t) {
  size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
  pn__label **b = pn__calloc(n, sizeof *b);
  if (!b) {
    return; /* longer chains, still correct */
  }
  for (size_t i = 0; i < t->nbuckets; i++) {
    pn__label *l = t->buckets[i];
    while (l) {
      pn__label *next = l->next;
      l->next = b[l->hash & (n - 1)];
      b[l->hash & (n - 1)] = l;
      l = next;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
}

pn__label *pn__label_get(pn__label_table *t, const char *name) {
  size_t n = strnlen(name, PN__LABEL_MAX);
  uint32_t h = hash_name(name, n);
  if (t->count >= t->nbuckets) {
    grow(t);
    if (!t->nbuckets) {
      return NULL;
    }
  }
  pn__label **slot = &t->buckets[h & (t->nbuckets - 1)];
  for (pn__label *l = *slot; l; l = l->next) {
    if (l->hash == h && strncmp(l->text, name, n) == 0 && l->text[n] == '\0') {
      l->refs++;
      return l;
    }
  }
  pn__label *l = pn__malloc(sizeof *l);
  if (!l) {
    return NULL;
  }
  memcpy(l->text, name, n);
  l->text[n] = '\0';
  l->hash = h;
  l->refs = 1;
  l->next = *slot;
  *slot = l;
  t->count++;
  return l;
}

void pn__label_put(pn__label_table *t, pn__label *label) {
  if (!label || --label->refs) {
    return;
  }
  pn__label **p = &t->buckets[label->hash & (t->nbuckets - 1)];
  while (*p != label) {
    p = &(*p)->next;
  }
  *p = label->next;
  t->count--;
  free(label);
}
