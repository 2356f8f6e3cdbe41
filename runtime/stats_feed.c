/* The periodic stats feed: a small actor per subscription with a periodic
 * timer. On each tick it reads the runtime's counters and sends them to the
 * subscriber; when the subscriber has stopped it stops itself. */
#include <stdlib.h>
#include <string.h>

#include "peernet/stats.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/rt.h"

#define FEED_START 1u
#define FEED_TICK 2u

typedef struct feed {
  pn_actor *to; /* held */
  uint64_t period_us;
  pn_timer *timer;
} feed;

static void feed_handler(pn_actor *self, void *state, const pn_msg *msg) {
  feed *f = state;
  switch (pn_msg_type(msg)) {
  case FEED_START:
    if (pn_timer_start(self, FEED_TICK, f->period_us, f->period_us,
                       &f->timer) != PN_OK) {
      (void)pn_actor_stop(self);
    }
    break;
  case FEED_TICK: {
    pn_runtime_stats st;
    if (pn_runtime_stats_get(pn_actor_runtime(self), &st) == PN_OK &&
        pn__send_parts(f->to, PN_MSG_STATS, &st, sizeof st, NULL, 0) ==
            PN_ECLOSED) {
      (void)pn_actor_stop(self); /* the subscriber is gone */
    }
    break;
  }
  case PN_MSG_STOPPED:
    pn_timer_cancel(f->timer);
    pn_actor_release(f->to);
    free(f);
    break;
  default:
    break;
  }
}

pn_err pn_stats_subscribe(pn_runtime *rt, pn_actor *to, uint64_t period_us) {
  if (!rt || !to || period_us < 1000 || period_us > UINT64_MAX / 2000 ||
      to->rt != rt) {
    return PN_EINVAL;
  }
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped() (actor.c). */
  if (atomic_load_explicit(&to->flags, memory_order_acquire) & PN__A_DEAD) {
    return PN_ECLOSED;
  }
  feed *f = pn__calloc(1, sizeof *f);
  if (!f) {
    return PN_ENOMEM;
  }
  f->to = to;
  f->period_us = period_us;
  pn_actor_hold(to);
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "stats-feed";
  cfg.handler = feed_handler;
  cfg.state = f;
  pn_actor *self = NULL;
  pn_err err = pn_spawn(rt, &cfg, &self);
  if (err != PN_OK) {
    pn_actor_release(to);
    free(f);
    return err;
  }
  err = pn_send(self, FEED_START, NULL, 0);
  if (err != PN_OK) {
    /* Its PN_MSG_STOPPED frees f and releases `to`. */
    (void)pn_actor_stop(self);
  }
  pn_actor_release(self);
  return err;
}

pn_err pn_msg_stats(const pn_msg *msg, pn_runtime_stats *stats_out) {
  if (!msg || !stats_out || pn_msg_type(msg) != PN_MSG_STATS ||
      pn_msg_size(msg) != sizeof *stats_out) {
    return PN_EINVAL;
  }
  memcpy(stats_out, pn_msg_data(msg), sizeof *stats_out);
  return PN_OK;
}
