/* Flow control: see flow.h. */
#include "actors/flow.h"

#include "runtime/assert.h"

void pn__flow_init(pn__flow *f, uint64_t capacity) {
  *f = (pn__flow){.limit = PN__FLOW_INITIAL, .capacity = capacity};
}

bool pn__flow_may_start(pn__flow *f, uint64_t cost) {
  if (!cost || (f->sent <= f->limit && cost <= f->limit - f->sent)) {
    return true;
  }
  f->blocked = true;
  return false;
}

void pn__flow_started(pn__flow *f, uint64_t cost) { f->sent += cost; }

bool pn__flow_on_limit(pn__flow *f, uint64_t limit) {
  if (limit <= f->limit) {
    return false; /* older news (reordered), or nothing new */
  }
  f->limit = limit;
  f->blocked = false;
  f->probe_at = 0;
  f->probe_wait_ns = 0;
  return true;
}

uint64_t pn__flow_window(const pn__flow *f) {
  return f->limit > f->sent ? f->limit - f->sent : 0;
}

bool pn__flow_probe_due(const pn__flow *f, uint64_t in_flight, uint64_t now) {
  return f->blocked && !in_flight && now >= f->probe_at;
}

void pn__flow_probed(pn__flow *f, uint64_t now, uint64_t first_ns,
                     uint64_t max_ns) {
  uint64_t wait = f->probe_wait_ns ? 2 * f->probe_wait_ns : first_ns;
  f->probe_wait_ns = wait < max_ns ? wait : max_ns;
  f->probe_at = now + f->probe_wait_ns;
}

uint64_t pn__flow_probe_deadline(const pn__flow *f, uint64_t in_flight) {
  if (!f->blocked || in_flight) {
    return 0;
  }
  return f->probe_at ? f->probe_at : 1;
}

void pn__flow_hold(pn__flow *f, uint64_t bytes) {
  f->held += bytes;
  if (f->held > f->held_max) {
    f->held_max = f->held;
  }
}

void pn__flow_unhold(pn__flow *f, uint64_t bytes) {
  PN_ASSERT(bytes <= f->held);
  f->held -= bytes;
}
