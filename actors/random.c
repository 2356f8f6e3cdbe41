/* See random.h. */
#include "actors/random.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

/* Bytes fetched per system call; requests larger than this go straight
 * to libsodium. */
#define POOL_BYTES 512u

/* Bumped in a forked child, so every inherited buffer counts as empty. */
static _Atomic uint32_t fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void after_fork_in_child(void) {
  /* relaxed: the child has one thread here; nothing else to order. */
  atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_atfork(void) {
  (void)pthread_atfork(NULL, NULL, after_fork_in_child);
}

typedef struct pool {
  uint8_t bytes[POOL_BYTES];
  size_t left; /* unused bytes at the end of bytes[] */
  uint32_t generation;
} pool;

static _Thread_local pool tls_pool;

void pn__random_buf(void *out, size_t len) {
  if (len > POOL_BYTES / 4) {
    randombytes_buf(out, len);
    return;
  }
  pool *p = &tls_pool;
  /* relaxed: a counter only this process's own fork handler writes. */
  uint32_t gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
  if (p->generation != gen) {
    sodium_memzero(p->bytes, sizeof p->bytes);
    p->left = 0;
  }
  if (p->left < len) {
    (void)pthread_once(&atfork_once, register_atfork);
    randombytes_buf(p->bytes, sizeof p->bytes);
    p->left = sizeof p->bytes;
    p->generation = gen;
  }
  uint8_t *from = p->bytes + sizeof p->bytes - p->left;
  memcpy(out, from, len);
  sodium_memzero(from, len);
  p->left -= len;
}

uint32_t pn__random_u32(void) {
  uint32_t v;
  pn__random_buf(&v, sizeof v);
  return v;
}
