/* An intrusive, circular, doubly linked list: the node lives inside the
 * object, so linking allocates nothing and unlinking is O(1). Every
 * registry of live objects (actors, sockets, peers) is one of these.
 * Not thread-safe: the list's owner says which lock guards it. */
#ifndef PN_RUNTIME_LIST_H
#define PN_RUNTIME_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct pn__list {
  struct pn__list *prev, *next;
} pn__list;

/* An empty list (or an unlinked node). */
static inline void pn__list_init(pn__list *l) { l->prev = l->next = l; }

static inline bool pn__list_empty(const pn__list *l) { return l->next == l; }

/* Links n after `at` (at the front when `at` is the head). */
static inline void pn__list_insert_after(pn__list *at, pn__list *n) {
  n->prev = at;
  n->next = at->next;
  at->next->prev = n;
  at->next = n;
}

/* Unlinks n, which then reads as empty; unlinking it again is harmless. */
static inline void pn__list_remove(pn__list *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  pn__list_init(n);
}

/* The object holding node `ptr` as member `member`. */
#define PN__CONTAINER_OF(ptr, type, member)                                    \
  ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* for (pn__list *it = first; it != head; it = it->next) */
#define PN__LIST_FOREACH(it, head)                                             \
  for (pn__list *it = (head)->next; it != (head); it = it->next)

#endif
