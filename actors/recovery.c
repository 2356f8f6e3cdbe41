/* Loss recovery and congestion control: see recovery.h.
 *
 * The ring of datagrams in flight is indexed by sequence; `oldest` trails
 * the oldest datagram that may still be in flight, so loss detection and
 * the RTO scan only [oldest, next_seq).
 */
#include "actors/recovery.h"
#include "runtime/alloc.h"

#include <stdlib.h>

#include "runtime/assert.h"

#define SENT_MIN 64u
#define CLOCK_GRANULARITY_NS 1000000u /* RFC 6298's G: 1 ms */
#define PN__SUSPECT_RTOS                                                       \
  4u /* a suspect's wait with no acknowledgement of                            \
        its path since it was declared, in RTOs */

pn_err pn__recovery_init(pn__recovery *r, const pn__recovery_limits *lim) {
  *r = (pn__recovery){
      .lim = *lim,
      .sent_mask = SENT_MIN - 1,
      .next_seq = 1,
      .oldest = 1,
      .oldest_flight = 1,
      .rto_ns = lim->rto_initial_ns,
      .cwnd = (uint64_t)(lim->window < PN__CWND_INITIAL ? lim->window
                                                        : PN__CWND_INITIAL) *
              PN__CWND_ONE,
      .ssthresh = UINT64_MAX,
  };
  for (uint32_t i = 0; i < PN__REC_PATHS; i++) {
    r->path_reorder[i] = PN__LOSS_THRESHOLD;
  }
  r->sent = pn__calloc(SENT_MIN, sizeof *r->sent);
  return r->sent ? PN_OK : PN_ENOMEM;
}

void pn__recovery_fini(pn__recovery *r) {
  free(r->sent);
  r->sent = NULL;
}

bool pn__recovery_room(pn__recovery *r) {
  /* The ring spans [oldest, next_seq]: datagrams that carry only
   * acknowledgements take sequences too, so a wait for the oldest one's
   * RTO can need more than one doubling. */
  uint64_t need = r->next_seq - r->oldest + 1;
  uint64_t cap = r->sent_mask + 1;
  if (need <= cap) {
    return true;
  }
  /* At most the first doubling that holds four windows. */
  uint64_t max = SENT_MIN;
  while (max < 4ull * r->lim.window) {
    max *= 2;
  }
  uint64_t ncap = cap;
  while (ncap < need) {
    ncap *= 2;
  }
  if (ncap > max) {
    return false;
  }
  pn__sent *ns = pn__calloc(ncap, sizeof *ns);
  if (!ns) {
    return false;
  }
  for (uint64_t s = r->oldest; s < r->next_seq; s++) {
    ns[s & (ncap - 1)] = r->sent[s & r->sent_mask];
  }
  free(r->sent);
  r->sent = ns;
  r->sent_mask = ncap - 1;
  return true;
}

bool pn__recovery_can_send(pn__recovery *r) {
  uint64_t cwnd = r->cwnd / PN__CWND_ONE;
  uint64_t limit = cwnd < r->lim.window ? cwnd : r->lim.window;
  return r->in_flight < limit && pn__recovery_room(r);
}

pn__sent *pn__recovery_sent(pn__recovery *r, uint64_t now, uint32_t bytes,
                            bool eliciting, bool disconnect, uint32_t path) {
  uint64_t seq = r->next_seq++;
  uint8_t pi = (uint8_t)(path % PN__REC_PATHS);
  uint64_t ord = r->path_sent[pi]++;
  pn__sent *e = &r->sent[seq & r->sent_mask];
  if (!eliciting) {
    /* Never in flight, but its acknowledgement counts for the gap rule
     * on its path: recorded when the ring has its slot free. */
    if (seq - r->oldest <= r->sent_mask) {
      *e = (pn__sent){.seq = seq, .path = pi, .path_ord = ord};
    }
    return NULL;
  }
  PN_ASSERT(seq - r->oldest <= r->sent_mask); /* pn__recovery_room() */
  *e = (pn__sent){
      .seq = seq,
      .sent_ns = now,
      .path_ord = ord,
      .path = pi,
      .bytes = bytes,
      .in_flight = true,
      .eliciting = true,
      .disconnect = disconnect,
      .window_used = (r->in_flight + 1) * 2 * PN__CWND_ONE >= r->cwnd,
  };
  r->in_flight++;
  return e;
}

/* --- round trip (RFC 6298) ----------------------------------------------- */

static void rtt_sample(pn__recovery *r, uint64_t rtt) {
  if (!r->srtt_ns) {
    r->srtt_ns = rtt;
    r->rttvar_ns = rtt / 2;
  } else {
    uint64_t d = r->srtt_ns > rtt ? r->srtt_ns - rtt : rtt - r->srtt_ns;
    r->rttvar_ns = (3 * r->rttvar_ns + d) / 4;
    r->srtt_ns = (7 * r->srtt_ns + rtt) / 8;
  }
  if (!r->min_rtt_ns || rtt < r->min_rtt_ns) {
    r->min_rtt_ns = rtt;
  }
  uint64_t var = 4 * r->rttvar_ns;
  uint64_t rto =
      r->srtt_ns + (var > CLOCK_GRANULARITY_NS ? var : CLOCK_GRANULARITY_NS);
  r->rto_ns = rto < r->lim.rto_min_ns   ? r->lim.rto_min_ns
              : rto > r->lim.rto_max_ns ? r->lim.rto_max_ns
                                        : rto;
}

uint64_t pn__recovery_rto(const pn__recovery *r) {
  uint64_t rto = r->rto_ns;
  for (uint32_t i = 0; i < r->backoff && rto < r->lim.rto_max_ns; i++) {
    rto *= 2;
  }
  return rto < r->lim.rto_max_ns ? rto : r->lim.rto_max_ns;
}

/* --- congestion window --------------------------------------------------- */

static uint64_t halved(uint64_t cwnd) {
  uint64_t min = PN__CWND_MIN * PN__CWND_ONE;
  return cwnd / 2 > min ? cwnd / 2 : min;
}

/* Reno: slow start doubles the window per round trip up to ssthresh, then
 * it grows by one datagram per round trip. Only a window the sender uses
 * grows (RFC 7661): an application that sends little would otherwise
 * inflate it to the cap, and after a loss halve a window it never filled.
 * Whether it was used is judged when the datagram left (window_used), not
 * now: one acknowledgement can resolve dozens of datagrams, emptying the
 * window before the caller refills it. */
static void congestion_acked(pn__recovery *r, bool window_used) {
  if (!window_used) {
    return;
  }
  if (r->cwnd < r->ssthresh) {
    r->cwnd += PN__CWND_ONE;
  } else {
    r->cwnd += PN__CWND_ONE * PN__CWND_ONE / r->cwnd;
  }
  uint64_t max = (uint64_t)r->lim.window * PN__CWND_ONE;
  if (r->cwnd > max) {
    r->cwnd = max;
  }
}

/* A loss halves the window once per round trip of datagrams (those sent
 * before the cut are part of the same loss event); an RTO drops it to the
 * minimum. */
static void congestion_lost(pn__recovery *r, uint64_t seq, bool timeout) {
  if (!r->undo_valid && (timeout || seq >= r->recovery_seq)) {
    /* What to give back if every loss from here proves spurious. */
    r->undo_valid = true;
    r->undo_cwnd = r->cwnd;
    r->undo_ssthresh = r->ssthresh;
  }
  if (timeout) {
    r->ssthresh = halved(r->cwnd);
    r->cwnd = PN__CWND_MIN * PN__CWND_ONE;
    r->recovery_seq = r->next_seq;
    return;
  }
  if (seq < r->recovery_seq) {
    return;
  }
  r->cwnd = halved(r->cwnd);
  r->ssthresh = r->cwnd;
  r->recovery_seq = r->next_seq;
}

/* Queueing delay as a congestion signal (true when it cut): a round trip more
 * than PN__QUEUE_DELAY_NS (or the minimum RTT, if larger) above the minimum
 * of its path (a slower path is not a queue)
 * means datagrams wait in a queue (often the receiver's own backlog, which
 * no loss would ever reveal): shrink by an eighth, once per round trip. */
static bool congestion_delay(pn__recovery *r, uint64_t sample, uint64_t seq,
                             uint8_t path) {
  uint64_t *min = &r->path_min_rtt_ns[path];
  if (!*min || sample < *min) {
    *min = sample;
  }
  uint64_t allowance = *min > PN__QUEUE_DELAY_NS ? *min : PN__QUEUE_DELAY_NS;
  if (sample <= *min + allowance || seq < r->recovery_seq) {
    return false;
  }
  r->cwnd -= r->cwnd / 8;
  if (r->cwnd < PN__CWND_MIN * PN__CWND_ONE) {
    r->cwnd = PN__CWND_MIN * PN__CWND_ONE;
  }
  r->ssthresh = r->cwnd;
  r->recovery_seq = r->next_seq;
  return true;
}

uint64_t pn__recovery_cwnd(const pn__recovery *r) {
  return r->cwnd / PN__CWND_ONE;
}

uint64_t pn__recovery_ssthresh(const pn__recovery *r) {
  return r->ssthresh == UINT64_MAX ? 0 : r->ssthresh / PN__CWND_ONE;
}

/* --- resolving ----------------------------------------------------------- */

/* Resolves datagram seq while in flight: ACKED, or SUSPECT (then a loss
 * found by the gap rule cuts the window (cut); one found by the RTO leaves
 * that to pn__recovery_on_rto()). */
static bool resolve(pn__recovery *r, uint64_t seq, bool acked, bool cut,
                    uint64_t now, pn__resolved_fn *fn, void *ctx) {
  pn__sent *e = &r->sent[seq & r->sent_mask];
  if (e->seq != seq || !e->in_flight) {
    return false;
  }
  e->in_flight = false;
  r->in_flight--;
  if (acked) {
    congestion_acked(r, e->window_used);
    fn(ctx, e, PN__RES_ACKED, now);
    return true;
  }
  e->suspect = true;
  uint64_t reorder = cut ? r->path_acked[e->path] - e->path_ord : 0;
  e->reorder =
      (uint16_t)(reorder < PN__REORDER_MAX ? reorder : PN__REORDER_MAX);
  e->lost_ns = now;
  r->suspects++;
  if (!r->path_since_ns[e->path]) {
    r->path_since_ns[e->path] = now;
  }
  /* No acknowledgement of its path came after it yet: the longer wait. */
  if (!r->suspect_since4_ns) {
    r->suspect_since4_ns = now;
  }
  if (cut) {
    congestion_lost(r, seq, false);
  }
  fn(ctx, e, PN__RES_SUSPECT, now);
  return true;
}

/* Ends suspect seq: LATE when an acknowledgement named it, else LOST. A
 * window cut only by losses that all proved spurious is given back
 * (RFC 4015's response, for the loss events of a round trip). */
static bool settle(pn__recovery *r, uint64_t seq, bool named, uint64_t now,
                   pn__resolved_fn *fn, void *ctx) {
  pn__sent *e = &r->sent[seq & r->sent_mask];
  if (e->seq != seq || !e->suspect) {
    return false;
  }
  e->suspect = false;
  if (!--r->suspects) {
    r->suspect_since1_ns = r->suspect_since4_ns = 0;
    for (uint32_t pi = 0; pi < PN__REC_PATHS; pi++) {
      r->path_since_ns[pi] = 0;
    }
  }
  if (named) {
    r->late++;
    /* It was reordered, not lost: its path's gap rule waits that long
     * from now on. */
    uint64_t *thr = &r->path_reorder[e->path];
    if (e->reorder > *thr) {
      *thr = e->reorder;
    }
  } else {
    r->final_lost++;
    r->undo_valid = false;
  }
  if (!r->suspects && r->undo_valid) {
    r->undo_valid = false;
    if (r->cwnd < r->undo_cwnd) {
      r->cwnd = r->undo_cwnd;
    }
    r->ssthresh = r->undo_ssthresh;
  }
  fn(ctx, e, named ? PN__RES_LATE : PN__RES_LOST, now);
  return true;
}

uint64_t pn__recovery_advance(pn__recovery *r, uint64_t none) {
  while (r->oldest < r->next_seq) {
    const pn__sent *e = &r->sent[r->oldest & r->sent_mask];
    if (e->seq == r->oldest && (e->in_flight || e->suspect)) {
      return e->fstart;
    }
    r->oldest++;
  }
  return none;
}

/* Moves `oldest_flight` past datagrams no longer in flight. */
static void advance_flight(pn__recovery *r) {
  if (r->oldest_flight < r->oldest) {
    r->oldest_flight = r->oldest;
  }
  while (r->oldest_flight < r->next_seq) {
    const pn__sent *e = &r->sent[r->oldest_flight & r->sent_mask];
    if (e->seq == r->oldest_flight && e->in_flight) {
      return;
    }
    r->oldest_flight++;
  }
}

/* When suspect e's wait ends. An acknowledgement of something new that
 * came after e was declared would have named e had e arrived by then:
 * after one RTO (time for a reordered e to arrive and be named) e is
 * lost. Without one (acknowledgements lost, or the probes' too), e waits
 * PN__SUSPECT_RTOS: a lost acknowledgement of the probe must not make a
 * datagram that arrived a lost message. */
static uint64_t suspect_deadline(const pn__recovery *r, const pn__sent *e,
                                 uint64_t rto) {
  return e->lost_ns + (r->path_last_ack_ns[e->path] > e->lost_ns
                           ? rto
                           : PN__SUSPECT_RTOS * rto);
}

/* Acknowledgement i places back from ack: i = 0 is ack itself. */
static bool named(const uint64_t bits[2], uint64_t i) {
  return i == 0 || (bits[(i - 1) / 64] >> ((i - 1) % 64) & 1u);
}

uint32_t pn__recovery_on_ack(pn__recovery *r, uint64_t ack,
                             const uint64_t bits[2], uint32_t delay_us,
                             uint64_t now, pn__resolved_fn *fn, void *ctx) {
  if (!ack || ack >= r->next_seq) {
    return 0;
  }
  uint32_t flags = 0, paths = 0;
  const pn__sent *top = &r->sent[ack & r->sent_mask];
  if (top->seq == ack && top->in_flight && top->eliciting) {
    uint64_t rtt = now - top->sent_ns;
    uint64_t held = (uint64_t)delay_us * 1000u;
    uint64_t sample = rtt > held ? rtt - held : rtt;
    rtt_sample(r, sample);
    if (congestion_delay(r, sample, ack, top->path)) {
      r->undo_valid = false; /* a real signal: no going back past it */
    }
    flags |= PN__ACK_RTT;
  }
  /* Below `oldest` nothing is in flight or suspect, but a datagram sent
   * without frames (a path's probe or response) still counts for its
   * path: the ring keeps its record until the slot is taken again. */
  for (uint64_t i = 0; i <= PN__ACK_SPAN && i < ack; i++) {
    if (!named(bits, i)) {
      continue;
    }
    const pn__sent *e = &r->sent[(ack - i) & r->sent_mask];
    if (e->seq == ack - i && e->path_ord >= r->path_acked[e->path]) {
      r->path_acked[e->path] = e->path_ord + 1;
    }
    if (resolve(r, ack - i, true, false, now, fn, ctx) ||
        settle(r, ack - i, true, now, fn, ctx)) {
      flags |= PN__ACK_NEW;
      paths |= 1u << e->path;
    }
  }
  /* Suspects of a path an acknowledgement just reached wait one RTO
   * from their declaration, no longer four. */
  for (uint32_t pi = 0; paths >> pi; pi++) {
    if (paths >> pi & 1u) {
      r->path_last_ack_ns[pi] = now;
      uint64_t since = r->path_since_ns[pi];
      if (since && (!r->suspect_since1_ns || since < r->suspect_since1_ns)) {
        r->suspect_since1_ns = since;
      }
    }
  }

  if (flags & PN__ACK_NEW) {
    r->backoff = 0;
    r->last_ack_ns = now;
  }
  if (ack > r->largest_acked) {
    r->largest_acked = ack;
  }
  advance_flight(r);
  /* The gap rule, per path: on one path alone (a single socket) this is
   * "three sent later were acknowledged" (until reordering is seen); with
   * several, a slower path's datagrams wait for acknowledgements of their
   * own path's. */
  for (uint64_t s = r->oldest_flight; s < r->largest_acked && s < r->next_seq;
       s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && e->in_flight &&
        e->path_ord + r->path_reorder[e->path] < r->path_acked[e->path]) {
      (void)resolve(r, s, false, true, now, fn, ctx);
    }
  }
  /* Suspects no later acknowledgement can name. */
  for (uint64_t s = r->oldest;
       r->suspects && s + PN__RX_WINDOW < r->largest_acked && s < r->next_seq;
       s++) {
    (void)settle(r, s, false, now, fn, ctx);
  }
  advance_flight(r);
  return flags;
}

bool pn__recovery_on_rto(pn__recovery *r, uint64_t now, pn__resolved_fn *fn,
                         void *ctx) {
  uint64_t rto = pn__recovery_rto(r);
  /* A suspect no acknowledgement named in its wait never arrived (every
   * acknowledgement since names it if it did, or a late one does: suspects
   * are within PN__RX_WINDOW of the largest acknowledged, or already
   * LOST). With
   * several paths suspects and datagrams in flight interleave: all are
   * looked at, and the earliest declaration left is found exactly. */
  uint64_t left = r->suspects, since[2] = {0, 0};
  for (uint32_t pi = 0; pi < PN__REC_PATHS; pi++) {
    r->path_since_ns[pi] = 0;
  }
  for (uint64_t s = r->oldest; left && s < r->next_seq; s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && e->suspect) {
      left--;
      uint64_t at = suspect_deadline(r, e, rto);
      if (at <= now) {
        (void)settle(r, s, false, now, fn, ctx);
        continue;
      }
      uint64_t *one = &since[r->path_last_ack_ns[e->path] <= e->lost_ns];
      if (!*one || e->lost_ns < *one) {
        *one = e->lost_ns;
      }
      uint64_t *path = &r->path_since_ns[e->path];
      if (!*path || e->lost_ns < *path) {
        *path = e->lost_ns;
      }
    }
  }
  r->suspect_since1_ns = since[0];
  r->suspect_since4_ns = since[1];
  /* While acknowledgements keep coming, losses are found by the gap rule;
   * an RTO is for an acknowledgement stream that stopped. (A busy peer's
   * tick can also run before acknowledgements queued behind it.) */
  if (now - r->last_ack_ns < rto) {
    return false;
  }
  advance_flight(r);
  bool any = false;
  for (uint64_t s = r->oldest_flight; s < r->next_seq; s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && e->in_flight && e->sent_ns + rto <= now) {
      any |= resolve(r, s, false, false, now, fn, ctx);
    }
  }
  if (any) {
    r->backoff++;
    congestion_lost(r, r->next_seq, true);
    advance_flight(r);
  }
  return any;
}

void pn__recovery_abandon(pn__recovery *r, pn__resolved_fn *fn, void *ctx) {
  for (uint64_t s = r->oldest; s < r->next_seq; s++) {
    pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && (e->in_flight || e->suspect)) {
      e->in_flight = false;
      e->suspect = false;
      fn(ctx, e, PN__RES_LOST, 0);
    }
  }
  r->oldest = r->oldest_flight = r->next_seq;
  r->in_flight = 0;
  r->suspects = 0;
  r->suspect_since1_ns = r->suspect_since4_ns = 0;
  for (uint32_t pi = 0; pi < PN__REC_PATHS; pi++) {
    r->path_since_ns[pi] = 0;
  }
  r->undo_valid = false;
}

uint64_t pn__recovery_rto_deadline(pn__recovery *r) {
  (void)pn__recovery_advance(r, 0);
  advance_flight(r);
  uint64_t rto = pn__recovery_rto(r);
  uint64_t at = 0;
  if (r->in_flight) {
    const pn__sent *e = &r->sent[r->oldest_flight & r->sent_mask];
    uint64_t from = e->sent_ns > r->last_ack_ns ? e->sent_ns : r->last_ack_ns;
    at = from + rto;
  }
  if (r->suspects) {
    /* A bound: a suspect that ended since may leave it early (a timer
     * that finds nothing due, once: pn__recovery_on_rto makes it exact). */
    uint64_t s1 = r->suspect_since1_ns, s4 = r->suspect_since4_ns;
    uint64_t s = s1 ? s1 + rto : UINT64_MAX;
    if (s4 && s4 + PN__SUSPECT_RTOS * rto < s) {
      s = s4 + PN__SUSPECT_RTOS * rto;
    }
    if (s != UINT64_MAX) {
      at = at && at < s ? at : s;
    }
  }
  return at;
}
