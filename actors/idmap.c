/* See idmap.h. */
#include "actors/idmap.h"
#include "runtime/alloc.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap) {
  /* Fibonacci hashing: keys may be sequential or random. */
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

void *pn__idmap_get(const pn__idmap *m, uint64_t key) {
  if (!m->cap || !key) {
    return NULL;
  }
  for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
    if (m->slots[i].key == key) {
      return m->slots[i].value;
    }
    if (!m->slots[i].key) {
      return NULL;
    }
  }
}

static void put_new(pn__idmap_slot *slots, size_t cap, uint64_t key,
                    void *value) {
  size_t i = slot_of(key, cap);
  while (slots[i].key) {
    i = (i + 1) & (cap - 1);
  }
  slots[i].key = key;
  slots[i].value = value;
}

static bool grow(pn__idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  pn__idmap_slot *slots = pn__calloc(cap, sizeof *slots);
  if (!slots) {
    return false;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (m->slots[i].key) {
      put_new(slots, cap, m->slots[i].key, m->slots[i].value);
    }
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return true;
}

bool pn__idmap_put(pn__idmap *m, uint64_t key, void *value) {
  if (!key) {
    return false;
  }
  if (m->cap) {
    for (size_t i = slot_of(key, m->cap); m->slots[i].key;
         i = (i + 1) & (m->cap - 1)) {
      if (m->slots[i].key == key) {
        m->slots[i].value = value;
        return true;
      }
    }
  }
  if ((m->count + 1) * 2 > m->cap && !grow(m)) {
    return false;
  }
  put_new(m->slots, m->cap, key, value);
  m->count++;
  return true;
}

void *pn__idmap_del(pn__idmap *m, uint64_t key) {
  if (!m->cap || !key) {
    return NULL;
  }
  size_t mask = m->cap - 1;
  size_t i = slot_of(key, m->cap);
  while (m->slots[i].key != key) {
    if (!m->slots[i].key) {
      return NULL;
    }
    i = (i + 1) & mask;
  }
  void *value = m->slots[i].value;
  /* Backward shift: pull later entries of the probe run into the hole
   * when their home slot does not lie between the hole and them. */
  size_t hole = i;
  for (size_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
    size_t home = slot_of(m->slots[j].key, m->cap);
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      m->slots[hole] = m->slots[j];
      hole = j;
    }
  }
  m->slots[hole].key = 0;
  m->slots[hole].value = NULL;
  m->count--;
  return value;
}

void pn__idmap_free(pn__idmap *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->count = 0;
}
