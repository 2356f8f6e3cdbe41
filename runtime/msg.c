/* Envelope pools. See msg.h for the scheme. */
#include "runtime/alloc.h"
#include "runtime/msg.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"
#include "runtime/timer.h"
#include "runtime/worker.h"

/* Block sizes, header included. Sized so a small message, the common case
 * for actors and game traffic, takes two cache lines. */
static const uint32_t class_bytes[PN__MSG_CLASSES] = {128, 256, 512, 2048,
                                                      8192};
/* Free-list caps per pool: 2 MiB for small envelopes (enough for the
 * envelopes circulating between two busy workers), 4 MiB for the next
 * class (the net layer's per-message blocks: a peer's max_queued of small
 * messages in flight, and their events), about 512 KiB for the others, so
 * a burst's blocks are reused but a past flood's memory goes back to
 * malloc. */
static const uint32_t class_cap[PN__MSG_CLASSES] = {16384, 16384, 1024, 256,
                                                    64};
#define OVERSIZE_CLASS 0xFFu
/* Foreign envelopes collected before one CAS hands them home. */
#define RETURN_BATCH 32u

static uint8_t class_for(size_t size) {
  size_t need = sizeof(pn_msg) + size;
  for (uint8_t c = 0; c < PN__MSG_CLASSES; c++) {
    if (need <= class_bytes[c]) {
      return c;
    }
  }
  return OVERSIZE_CLASS;
}

pn_err pn__msg_pool_init(pn__msg_pool *pool, uint32_t workers) {
  memset(pool, 0, sizeof *pool);
  /* One batch per worker plus one for the application threads' pool. */
  pool->ret_head = pn__calloc(workers + 1, sizeof *pool->ret_head);
  pool->ret_tail = pn__calloc(workers + 1, sizeof *pool->ret_tail);
  pool->ret_count = pn__calloc(workers + 1, sizeof *pool->ret_count);
  if (!pool->ret_head || !pool->ret_tail || !pool->ret_count) {
    free(pool->ret_head);
    free(pool->ret_tail);
    free(pool->ret_count);
    /* Nothing dangles: pn__msg_pool_fini() may still see this pool. */
    memset(pool, 0, sizeof *pool);
    return PN_ENOMEM;
  }
  atomic_init(&pool->returned, NULL);
  atomic_init(&pool->allocs, 0);
  atomic_init(&pool->frees, 0);
  return PN_OK;
}

static void free_chain(pn_msg *m) {
  while (m) {
    pn_msg *next =
        (pn_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    free(m);
    m = next;
  }
}

void pn__msg_pool_fini(pn__msg_pool *pool, uint32_t workers) {
  for (int c = 0; c < PN__MSG_CLASSES; c++) {
    free_chain(pool->free_list[c]);
    pool->free_list[c] = NULL;
  }
  for (uint32_t i = 0; pool->ret_head && i <= workers; i++) {
    free_chain(pool->ret_head[i]);
  }
  /* acquire: pairs with the release CAS in give_home(), as in
   * take_returned() (the workers are joined by now, which orders it too). */
  free_chain(
      atomic_exchange_explicit(&pool->returned, NULL, memory_order_acquire));
  free(pool->ret_head);
  free(pool->ret_tail);
  free(pool->ret_count);
}

/* Takes the chains handed home by other threads and sorts them by class. */
static void take_returned(pn__msg_pool *pool) {
  /* acquire: pairs with the release CAS in give_home(); the chain's links
   * and headers are visible. */
  pn_msg *m =
      atomic_exchange_explicit(&pool->returned, NULL, memory_order_acquire);
  while (m) {
    pn_msg *next =
        (pn_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    uint8_t c = m->cls;
    if (pool->free_count[c] < class_cap[c]) {
      atomic_store_explicit(&m->node.next, (pn__node *)pool->free_list[c],
                            memory_order_relaxed);
      pool->free_list[c] = m;
      pool->free_count[c]++;
    } else {
      free(m);
    }
    m = next;
  }
}

size_t pn__msg_pool_shrink(pn__msg_pool *pool) {
  if (atomic_load_explicit(&pool->returned, memory_order_relaxed)) {
    take_returned(pool);
  }
  size_t freed = 0;
  for (uint8_t c = 0; c < PN__MSG_CLASSES; c++) {
    while (pool->free_count[c] > class_cap[c] / 8) {
      pn_msg *m = pool->free_list[c];
      pool->free_list[c] =
          (pn_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
      pool->free_count[c]--;
      free(m);
      freed += class_bytes[c];
    }
  }
  return freed;
}

/* A block of class c from pool (or malloc). The pool's owner only. */
static pn_msg *pool_take(pn__msg_pool *pool, uint8_t c) {
  if (!pool->free_list[c] &&
      atomic_load_explicit(&pool->returned, memory_order_relaxed)) {
    take_returned(pool);
  }
  pn_msg *m = pool->free_list[c];
  if (m) {
    pool->free_list[c] =
        (pn_msg *)atomic_load_explicit(&m->node.next, memory_order_relaxed);
    pool->free_count[c]--;
    return m;
  }
  return pn__malloc(class_bytes[c]);
}

/* Puts a block back on its owner's free list. The pool's owner only. */
static void pool_put(pn__msg_pool *pool, pn_msg *m) {
  if (pool->free_count[m->cls] < class_cap[m->cls]) {
    atomic_store_explicit(&m->node.next, (pn__node *)pool->free_list[m->cls],
                          memory_order_relaxed);
    pool->free_list[m->cls] = m;
    pool->free_count[m->cls]++;
  } else {
    free(m);
  }
}

pn_msg *pn__msg_alloc(pn_runtime *rt, pn__worker *w, size_t size) {
  if (pn__alloc_fails()) {
    return NULL; /* injected (alloc.h): a pool hit counts too */
  }
  uint8_t c = class_for(size);
  pn_msg *m;
  if (c == OVERSIZE_CLASS) {
    m = pn__malloc(sizeof(pn_msg) + size);
  } else if (w) {
    m = pool_take(&w->pool, c);
  } else {
    /* Application threads share one pool; workers hand its blocks back in
     * batches, so the application thread and the workers never contend
     * on malloc's arena lock for every message. */
    pthread_mutex_lock(&rt->ext_lock);
    m = pool_take(&rt->ext_pool, c);
    pthread_mutex_unlock(&rt->ext_lock);
  }
  if (!m) {
    return NULL;
  }
  m->home = w ? (uint16_t)w->index : PN__HOME_EXT;
  m->cls = c;
  if (w) {
    pn__stat_add(&w->pool.allocs, 1);
  } else {
    /* Several application threads allocate: a real atomic add. */
    atomic_fetch_add_explicit(&rt->ext_pool.allocs, 1, memory_order_relaxed);
  }
  m->kind = PN__MSG_COPY;
  m->size = 0;
  m->chain_count = 0;
  m->data = NULL;
  return m;
}

void pn__msg_release_payload(pn_msg *m) {
  if (m->kind == PN__MSG_BUF) {
    pn__msg_buf *buf = pn__msg_buf_of(m);
    if (buf->fn) {
      buf->fn(m->data, buf->ctx);
    }
    buf->fn = NULL;
    m->kind = PN__MSG_COPY;
    m->data = NULL;
  } else if (m->kind == PN__MSG_TICK) {
    pn__timer_release(m->timer);
    m->kind = PN__MSG_COPY;
  }
}

/* Pushes a chain first..last onto a pool's returned stack. Any thread. */
static void give_home(pn__msg_pool *home, pn_msg *first, pn_msg *last) {
  pn_msg *old = atomic_load_explicit(&home->returned, memory_order_relaxed);
  do {
    atomic_store_explicit(&last->node.next, (pn__node *)old,
                          memory_order_relaxed);
    /* release: publishes the chain's links and headers; pairs with the
     * owner's acquire exchange in take_returned() (or
     * pn__msg_pool_fini()). */
  } while (!atomic_compare_exchange_weak_explicit(&home->returned, &old, first,
                                                  memory_order_release,
                                                  memory_order_relaxed));
}

static pn__msg_pool *home_pool(pn_runtime *rt, uint32_t home) {
  return home == PN__HOME_EXT ? &rt->ext_pool : &rt->workers[home].pool;
}

void pn__msg_free(pn_runtime *rt, pn__worker *w, pn_msg *m) {
  pn__msg_release_payload(m);
  if (w) {
    pn__stat_add(&w->pool.frees, 1);
  } else {
    atomic_fetch_add_explicit(&rt->ext_frees, 1, memory_order_relaxed);
  }
  if (m->cls == OVERSIZE_CLASS) {
    free(m);
    return;
  }
  if (w && m->home == w->index) {
    pool_put(&w->pool, m);
    return;
  }
  if (!w) {
    if (m->home == PN__HOME_EXT) {
      pthread_mutex_lock(&rt->ext_lock);
      pool_put(&rt->ext_pool, m);
      pthread_mutex_unlock(&rt->ext_lock);
    } else {
      give_home(home_pool(rt, m->home), m, m);
    }
    return;
  }
  /* Batch slot nworkers collects blocks of the application threads' pool. */
  pn__msg_pool *pool = &w->pool;
  uint32_t h = m->home == PN__HOME_EXT ? rt->nworkers : m->home;
  atomic_store_explicit(&m->node.next, (pn__node *)pool->ret_head[h],
                        memory_order_relaxed);
  if (!pool->ret_head[h]) {
    pool->ret_tail[h] = m;
  }
  pool->ret_head[h] = m;
  if (++pool->ret_count[h] >= RETURN_BATCH) {
    give_home(home_pool(rt, m->home), pool->ret_head[h], pool->ret_tail[h]);
    pool->ret_head[h] = pool->ret_tail[h] = NULL;
    pool->ret_count[h] = 0;
  }
}

void pn__msg_pool_flush(pn_runtime *rt, pn__worker *w) {
  pn__msg_pool *pool = &w->pool;
  for (uint32_t h = 0; h <= rt->nworkers; h++) {
    if (pool->ret_head[h]) {
      give_home(home_pool(rt, h == rt->nworkers ? PN__HOME_EXT : h),
                pool->ret_head[h], pool->ret_tail[h]);
      pool->ret_head[h] = pool->ret_tail[h] = NULL;
      pool->ret_count[h] = 0;
    }
  }
}
