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

static uint32_t path_of(const pn__recovery *r, uint32_t socket) {
  return socket % r->lim.paths;
}

pn_err pn__recovery_init(pn__recovery *r, const pn__recovery_limits *lim) {
  *r = (pn__recovery){
      .lim = *lim,
      .sent_mask = SENT_MIN - 1,
      .next_seq = 1,
      .oldest = 1,
      .oldest_flight = 1,
      .rto_ns = lim->rto_initial_ns,
  };
  if (!r->lim.paths) {
    r->lim.paths = 1;
  }
  if (r->lim.paths > PN__REC_PATHS) {
    r->lim.paths = PN__REC_PATHS;
  }
  r->sent = pn__calloc(SENT_MIN, sizeof *r->sent);
  r->path = pn__calloc(r->lim.paths, sizeof *r->path);
  if (!r->sent || !r->path) {
    return PN_ENOMEM;
  }
  for (uint32_t i = 0; i < r->lim.paths; i++) {
    r->path[i] = (pn__rec_path){
        .reorder = PN__LOSS_THRESHOLD,
        .cwnd = (uint64_t)(lim->window < PN__CWND_INITIAL ? lim->window
                                                          : PN__CWND_INITIAL) *
                PN__CWND_ONE,
        .ssthresh = UINT64_MAX,
    };
  }
  return PN_OK;
}

void pn__recovery_fini(pn__recovery *r) {
  free(r->sent);
  free(r->path);
  r->sent = NULL;
  r->path = NULL;
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

bool pn__recovery_can_send(pn__recovery *r, uint32_t path) {
  const pn__rec_path *pa = &r->path[path_of(r, path)];
  return pa->in_flight < pa->cwnd / PN__CWND_ONE &&
         r->in_flight < r->lim.window && pn__recovery_room(r);
}

pn__sent *pn__recovery_sent(pn__recovery *r, uint64_t now, uint32_t bytes,
                            bool eliciting, bool disconnect, uint32_t path) {
  uint64_t seq = r->next_seq++;
  uint8_t pi = (uint8_t)path_of(r, path);
  pn__rec_path *pa = &r->path[pi];
  uint64_t ord = pa->sent++;
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
      .window_used = (pa->in_flight + 1) * 2 * PN__CWND_ONE >= pa->cwnd,
  };
  r->in_flight++;
  pa->in_flight++;
  return e;
}

/* --- round trip (RFC 6298) ----------------------------------------------- */

/* One estimate: the connection's, or a path's. */
static void rtt_estimate(const pn__recovery *r, uint64_t rtt, uint64_t *srtt,
                         uint64_t *rttvar, uint64_t *min_rtt, uint64_t *rto) {
  if (!*srtt) {
    *srtt = rtt;
    *rttvar = rtt / 2;
  } else {
    uint64_t d = *srtt > rtt ? *srtt - rtt : rtt - *srtt;
    *rttvar = (3 * *rttvar + d) / 4;
    *srtt = (7 * *srtt + rtt) / 8;
  }
  if (!*min_rtt || rtt < *min_rtt) {
    *min_rtt = rtt;
  }
  uint64_t var = 4 * *rttvar;
  uint64_t t =
      *srtt + (var > CLOCK_GRANULARITY_NS ? var : CLOCK_GRANULARITY_NS);
  *rto = t < r->lim.rto_min_ns   ? r->lim.rto_min_ns
         : t > r->lim.rto_max_ns ? r->lim.rto_max_ns
                                 : t;
}

static void rtt_sample(pn__recovery *r, pn__rec_path *pa, uint64_t rtt) {
  rtt_estimate(r, rtt, &r->srtt_ns, &r->rttvar_ns, &r->min_rtt_ns, &r->rto_ns);
  rtt_estimate(r, rtt, &pa->srtt_ns, &pa->rttvar_ns, &pa->min_rtt_ns,
               &pa->rto_ns);
}

/* A path's RTO with its backoff; before its first sample, the
 * connection's. */
static uint64_t path_rto(const pn__recovery *r, const pn__rec_path *pa) {
  uint64_t rto = pa->rto_ns ? pa->rto_ns : r->rto_ns;
  for (uint32_t i = 0; i < pa->backoff && rto < r->lim.rto_max_ns; i++) {
    rto *= 2;
  }
  return rto < r->lim.rto_max_ns ? rto : r->lim.rto_max_ns;
}

uint64_t pn__recovery_rto(const pn__recovery *r) {
  uint64_t rto = path_rto(r, &r->path[0]);
  for (uint32_t i = 1; i < r->lim.paths; i++) {
    uint64_t t = r->path[i].sent ? path_rto(r, &r->path[i]) : 0;
    rto = t > rto ? t : rto;
  }
  return rto;
}

/* --- congestion window --------------------------------------------------- */

static uint64_t halved(uint64_t cwnd) {
  uint64_t min = PN__CWND_MIN * PN__CWND_ONE;
  return cwnd / 2 > min ? cwnd / 2 : min;
}

/* Congestion avoidance's growth of pa's window for one acknowledged
 * datagram: one datagram per round trip (Reno) on a single path. With
 * several, RFC 6356's coupled increase: the windows together grow as one
 * path's would on the best of them, so paths through a shared bottleneck
 * take no more than one connection's share, and a path that loses more
 * carries less. */
static uint64_t avoidance_growth(const pn__recovery *r,
                                 const pn__rec_path *pa) {
  uint64_t own = PN__CWND_ONE * PN__CWND_ONE / pa->cwnd;
  if (r->lim.paths == 1 || !pa->srtt_ns) {
    return own;
  }
  double total = 0, best = 0, rate = 0;
  uint32_t used = 0;
  for (uint32_t i = 0; i < r->lim.paths; i++) {
    const pn__rec_path *q = &r->path[i];
    if (!q->srtt_ns) {
      continue; /* no round trip measured: not carrying traffic */
    }
    double w = (double)q->cwnd, t = (double)q->srtt_ns;
    total += w;
    best = w / (t * t) > best ? w / (t * t) : best;
    rate += w / t;
    used++;
  }
  if (used == 1) {
    return own;
  }
  double alpha = total * best / (rate * rate);
  double coupled = alpha * PN__CWND_ONE * PN__CWND_ONE / total;
  return coupled < (double)own ? (uint64_t)coupled : own;
}

/* Reno: slow start doubles the window per round trip up to ssthresh, then
 * it grows by one datagram per round trip. Only a window the sender uses
 * grows (RFC 7661): an application that sends little would otherwise
 * inflate it to the cap, and after a loss halve a window it never filled.
 * Whether it was used is judged when the datagram left (window_used), not
 * now: one acknowledgement can resolve dozens of datagrams, emptying the
 * window before the caller refills it. */
static void congestion_acked(pn__recovery *r, pn__rec_path *pa,
                             bool window_used) {
  if (!window_used) {
    return;
  }
  if (pa->cwnd < pa->ssthresh) {
    pa->cwnd += PN__CWND_ONE;
  } else {
    pa->cwnd += avoidance_growth(r, pa);
  }
  uint64_t max = (uint64_t)r->lim.window * PN__CWND_ONE;
  if (pa->cwnd > max) {
    pa->cwnd = max;
  }
}

/* A loss halves its path's window once per round trip of datagrams (those
 * sent before the cut are part of the same loss event); an RTO drops it to
 * the minimum. */
static void congestion_lost(pn__recovery *r, pn__rec_path *pa, uint64_t seq,
                            bool timeout) {
  if (!pa->undo_valid && (timeout || seq >= pa->recovery_seq)) {
    /* What to give back if every loss from here proves spurious. */
    pa->undo_valid = true;
    pa->undo_cwnd = pa->cwnd;
    pa->undo_ssthresh = pa->ssthresh;
  }
  if (timeout) {
    pa->ssthresh = halved(pa->cwnd);
    pa->cwnd = PN__CWND_MIN * PN__CWND_ONE;
    pa->recovery_seq = r->next_seq;
    return;
  }
  if (seq < pa->recovery_seq) {
    return;
  }
  pa->cwnd = halved(pa->cwnd);
  pa->ssthresh = pa->cwnd;
  pa->recovery_seq = r->next_seq;
}

/* Queueing delay as a congestion signal (true when it cut): a round trip
 * more than PN__QUEUE_DELAY_NS (or the minimum RTT, if larger) above the
 * minimum of its path (a slower path is not a queue) means datagrams wait
 * in a queue (often the receiver's own backlog, which no loss would ever
 * reveal): shrink by an eighth, once per round trip. */
static bool congestion_delay(pn__recovery *r, pn__rec_path *pa, uint64_t sample,
                             uint64_t seq) {
  uint64_t min = pa->min_rtt_ns;
  uint64_t allowance = min > PN__QUEUE_DELAY_NS ? min : PN__QUEUE_DELAY_NS;
  if (sample <= min + allowance || seq < pa->recovery_seq) {
    return false;
  }
  pa->cwnd -= pa->cwnd / 8;
  if (pa->cwnd < PN__CWND_MIN * PN__CWND_ONE) {
    pa->cwnd = PN__CWND_MIN * PN__CWND_ONE;
  }
  pa->ssthresh = pa->cwnd;
  pa->recovery_seq = r->next_seq;
  return true;
}

uint64_t pn__recovery_cwnd(const pn__recovery *r) {
  uint64_t w = r->path[0].cwnd;
  for (uint32_t i = 1; i < r->lim.paths; i++) {
    w += r->path[i].sent ? r->path[i].cwnd : 0;
  }
  return w / PN__CWND_ONE;
}

uint64_t pn__recovery_ssthresh(const pn__recovery *r) {
  uint64_t w = 0;
  for (uint32_t i = 0; i < r->lim.paths; i++) {
    const pn__rec_path *pa = &r->path[i];
    if ((i == 0 || pa->sent) && pa->ssthresh != UINT64_MAX) {
      w += pa->ssthresh;
    }
  }
  return w / PN__CWND_ONE;
}

bool pn__recovery_path_acked(const pn__recovery *r, uint32_t path) {
  return r->path[path_of(r, path)].acked != 0;
}

/* --- resolving ----------------------------------------------------------- */

/* Resolves datagram seq while in flight: ACKED, or SUSPECT (then a loss
 * found by the gap rule cuts its path's window (cut); one found by the RTO
 * leaves that to pn__recovery_on_rto()). */
static bool resolve(pn__recovery *r, uint64_t seq, bool acked, bool cut,
                    uint64_t now, pn__resolved_fn *fn, void *ctx) {
  pn__sent *e = &r->sent[seq & r->sent_mask];
  if (e->seq != seq || !e->in_flight) {
    return false;
  }
  pn__rec_path *pa = &r->path[e->path];
  e->in_flight = false;
  r->in_flight--;
  pa->in_flight--;
  if (acked) {
    congestion_acked(r, pa, e->window_used);
    fn(ctx, e, PN__RES_ACKED, now);
    return true;
  }
  e->suspect = true;
  uint64_t reorder = cut ? pa->acked - e->path_ord : 0;
  e->reorder =
      (uint16_t)(reorder < PN__REORDER_MAX ? reorder : PN__REORDER_MAX);
  e->lost_ns = now;
  r->suspects++;
  pa->suspects++;
  if (!pa->since_ns) {
    pa->since_ns = now;
  }
  /* No acknowledgement of its path came after it yet: the longer wait. */
  if (!pa->since4_ns) {
    pa->since4_ns = now;
  }
  if (cut) {
    congestion_lost(r, pa, seq, false);
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
  pn__rec_path *pa = &r->path[e->path];
  e->suspect = false;
  r->suspects--;
  if (!--pa->suspects) {
    pa->since_ns = pa->since1_ns = pa->since4_ns = 0;
  }
  if (named) {
    r->late++;
    /* It was reordered, not lost: its path's gap rule waits that long
     * from now on. */
    if (e->reorder > pa->reorder) {
      pa->reorder = e->reorder;
    }
  } else {
    r->final_lost++;
    pa->undo_valid = false;
  }
  if (!pa->suspects && pa->undo_valid) {
    pa->undo_valid = false;
    if (pa->cwnd < pa->undo_cwnd) {
      pa->cwnd = pa->undo_cwnd;
    }
    pa->ssthresh = pa->undo_ssthresh;
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

/* Whether an acknowledgement that came after suspect e was declared
 * newly named a datagram sent after e on its path: it would have named e
 * too had e arrived by then. One that names only older datagrams of the
 * path proves nothing (a slower path's acknowledgements trail its
 * datagrams by its own round trip). */
static bool vouched_past(const pn__recovery *r, const pn__sent *e) {
  const pn__rec_path *pa = &r->path[e->path];
  return pa->vouch_ns > e->lost_ns && pa->vouch_ord > e->path_ord + 1;
}

/* When suspect e's wait ends: one RTO of its path after its declaration
 * once an acknowledgement vouched past it (time for a reordered e to
 * arrive and be named), else PN__SUSPECT_RTOS (acknowledgements lost, or
 * the path's slower than it seemed): a lost or late acknowledgement must
 * not make a datagram that arrived a lost message. */
static uint64_t suspect_deadline(const pn__recovery *r, const pn__sent *e) {
  uint64_t rto = path_rto(r, &r->path[e->path]);
  return e->lost_ns + (vouched_past(r, e) ? rto : PN__SUSPECT_RTOS * rto);
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
  uint64_t named_top[PN__REC_PATHS] = {0};  /* 1 + the highest ordinal of
                                               each path this names */
  uint64_t fresh_top[PN__REC_PATHS] = {0};  /* the same, of what it newly
                                               names */
  uint64_t fresh_sent[PN__REC_PATHS] = {0}; /* when that one left */
  uint64_t fresh_seq[PN__REC_PATHS] = {0};  /* its sequence */
  uint64_t acked_before[PN__REC_PATHS];
  for (uint32_t pi = 0; pi < r->lim.paths; pi++) {
    acked_before[pi] = r->path[pi].acked;
  }
  const pn__sent *top = &r->sent[ack & r->sent_mask];
  uint32_t top_path = top->seq == ack ? top->path : PN__REC_PATHS;
  if (top->seq == ack && top->in_flight && top->eliciting) {
    pn__rec_path *pa = &r->path[top->path];
    uint64_t rtt = now - top->sent_ns;
    uint64_t held = (uint64_t)delay_us * 1000u;
    uint64_t sample = rtt > held ? rtt - held : rtt;
    rtt_sample(r, pa, sample);
    if (congestion_delay(r, pa, sample, ack)) {
      pa->undo_valid = false; /* a real signal: no going back past it */
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
    if (e->seq == ack - i) {
      if (e->path_ord >= r->path[e->path].acked) {
        r->path[e->path].acked = e->path_ord + 1;
      }
      if (e->path_ord >= named_top[e->path]) {
        named_top[e->path] = e->path_ord + 1;
      }
    }
    if (resolve(r, ack - i, true, false, now, fn, ctx) ||
        settle(r, ack - i, true, now, fn, ctx)) {
      flags |= PN__ACK_NEW;
      paths |= 1u << e->path;
      if (e->path_ord >= fresh_top[e->path]) {
        fresh_top[e->path] = e->path_ord + 1;
        fresh_sent[e->path] = e->sent_ns;
        fresh_seq[e->path] = e->seq;
      }
    }
  }
  for (uint32_t pi = 0; paths >> pi; pi++) {
    if (!(paths >> pi & 1u)) {
      continue;
    }
    pn__rec_path *pa = &r->path[pi];
    /* A path whose datagrams this names but whose newest is not the
     * acknowledgement's own (a slower path's, overtaken by a faster one's:
     * perhaps never the highest the receiver has) takes its round trip
     * from the newest one it names, if that is the newest of the path
     * acknowledged yet. The receiver's delay was measured for the
     * acknowledgement's own, which may have arrived after it or before:
     * none is taken off, so the sample errs long (by at most the
     * receiver's acknowledgement delay, far below the queueing signal's
     * 2 ms), as an RTO may. It is the path's queueing signal too: else a
     * path seldom the newest would never see one, and take the traffic of
     * one that does. One path alone keeps the single sample. */
    if (r->lim.paths > 1 && pi != top_path &&
        fresh_top[pi] > acked_before[pi] && now > fresh_sent[pi]) {
      uint64_t sample = now - fresh_sent[pi];
      rtt_estimate(r, sample, &pa->srtt_ns, &pa->rttvar_ns, &pa->min_rtt_ns,
                   &pa->rto_ns);
      if (congestion_delay(r, pa, sample, fresh_seq[pi])) {
        pa->undo_valid = false;
      }
      flags |= PN__ACK_RTT;
    }
    /* A path an acknowledgement just reached: its backoff ends, and its
     * suspects declared before this wait one RTO, no longer four, if it
     * vouched past them. */
    pa->vouch_ns = now;
    pa->vouch_ord = fresh_top[pi];
    pa->last_ack_ns = now;
    pa->backoff = 0;
    if (pa->since_ns && (!pa->since1_ns || pa->since_ns < pa->since1_ns)) {
      pa->since1_ns = pa->since_ns; /* a bound: on_rto makes it exact */
    }
  }

  if (flags & PN__ACK_NEW) {
    r->last_ack_ns = now;
  }
  if (ack > r->largest_acked) {
    r->largest_acked = ack;
  }
  advance_flight(r);
  /* The gap rule, per path and per acknowledgement: a datagram this one
   * could have named but did not, while it names PN__LOSS_THRESHOLD sent
   * after it on its path (more once the path showed it reorders), had not
   * arrived when this was sent. On one path alone (a single socket) that
   * is "three sent later were acknowledged"; with several, a slower path's
   * datagrams wait for acknowledgements of their own path's. What lies
   * below this acknowledgement's reach it says nothing about: a reply that
   * came through another socket may overtake the one that names it. */
  uint64_t from = ack > PN__ACK_SPAN ? ack - PN__ACK_SPAN : 1;
  for (uint64_t s = r->oldest_flight > from ? r->oldest_flight : from; s < ack;
       s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && e->in_flight) {
      const pn__rec_path *pa = &r->path[e->path];
      if (e->path_ord + pa->reorder < named_top[e->path]) {
        (void)resolve(r, s, false, true, now, fn, ctx);
      }
    }
  }
  /* What no later acknowledgement can name (the receiver remembers
   * PN__RX_WINDOW): suspects, and what is still in flight, are LOST. */
  for (uint64_t s = r->oldest;
       (r->suspects || r->in_flight) && s + PN__RX_WINDOW < r->largest_acked &&
       s < r->next_seq;
       s++) {
    if (!settle(r, s, false, now, fn, ctx) &&
        resolve(r, s, false, true, now, fn, ctx)) {
      (void)settle(r, s, false, now, fn, ctx);
    }
  }
  advance_flight(r);
  return flags;
}

bool pn__recovery_on_rto(pn__recovery *r, uint64_t now, pn__resolved_fn *fn,
                         void *ctx) {
  /* A suspect no acknowledgement named in its wait never arrived (every
   * acknowledgement since names it if it did, or a late one does: suspects
   * are within PN__RX_WINDOW of the largest acknowledged, or already
   * LOST). With several paths suspects and datagrams in flight
   * interleave: all are looked at, and the first deadline left is found
   * exactly. */
  uint64_t left = r->suspects;
  for (uint32_t pi = 0; pi < r->lim.paths; pi++) {
    pn__rec_path *pa = &r->path[pi];
    pa->since_ns = pa->since1_ns = pa->since4_ns = 0;
  }
  for (uint64_t s = r->oldest; left && s < r->next_seq; s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq == s && e->suspect) {
      left--;
      uint64_t at = suspect_deadline(r, e);
      if (at <= now) {
        (void)settle(r, s, false, now, fn, ctx);
        continue;
      }
      pn__rec_path *pa = &r->path[e->path];
      uint64_t *wait = vouched_past(r, e) ? &pa->since1_ns : &pa->since4_ns;
      if (!*wait || e->lost_ns < *wait) {
        *wait = e->lost_ns;
      }
      if (!pa->since_ns || e->lost_ns < pa->since_ns) {
        pa->since_ns = e->lost_ns;
      }
    }
  }
  /* While acknowledgements of a path keep coming, its losses are found by
   * the gap rule; an RTO is for an acknowledgement stream that stopped.
   * (A busy peer's tick can also run before acknowledgements queued
   * behind it.) But a datagram no acknowledgement reached (each names
   * only PN__ACK_SPAN below its own) while later ones of its path were
   * acknowledged is lost once an RTO old, as the gap rule would have it. */
  uint64_t rto[PN__REC_PATHS], youngest = UINT64_MAX;
  uint32_t due = 0, fired = 0;
  bool gap = false;
  for (uint32_t pi = 0; pi < r->lim.paths; pi++) {
    const pn__rec_path *pa = &r->path[pi];
    rto[pi] = path_rto(r, pa);
    if (pa->in_flight && now - pa->last_ack_ns >= rto[pi]) {
      due |= 1u << pi;
    }
    youngest = rto[pi] < youngest ? rto[pi] : youngest;
  }
  advance_flight(r);
  for (uint64_t s = r->oldest_flight; s < r->next_seq; s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq != s || !e->in_flight) {
      continue;
    }
    if (e->sent_ns + youngest > now) {
      break; /* the rest left later still */
    }
    uint32_t pi = e->path;
    const pn__rec_path *pa = &r->path[pi];
    if (e->sent_ns + rto[pi] > now) {
      continue;
    }
    if (due >> pi & 1u) {
      fired |= resolve(r, s, false, false, now, fn, ctx) ? 1u << pi : 0;
    } else if (e->path_ord + pa->reorder < pa->acked) {
      gap |= resolve(r, s, false, true, now, fn, ctx);
    }
  }
  for (uint32_t pi = 0; fired >> pi; pi++) {
    if (fired >> pi & 1u) {
      r->path[pi].backoff++;
      congestion_lost(r, &r->path[pi], r->next_seq, true);
    }
  }
  advance_flight(r);
  return fired != 0 || gap;
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
  for (uint32_t pi = 0; pi < r->lim.paths; pi++) {
    pn__rec_path *pa = &r->path[pi];
    pa->in_flight = pa->suspects = 0;
    pa->since_ns = pa->since1_ns = pa->since4_ns = 0;
    pa->undo_valid = false;
  }
}

uint64_t pn__recovery_rto_deadline(pn__recovery *r) {
  (void)pn__recovery_advance(r, 0);
  advance_flight(r);
  uint64_t at = 0;
  uint32_t want = 0;
  for (uint32_t pi = 0; pi < r->lim.paths; pi++) {
    const pn__rec_path *pa = &r->path[pi];
    want |= (pa->in_flight ? 1u : 0u) << pi;
    if (!pa->suspects) {
      continue;
    }
    /* A bound: a suspect that ended since may leave it early (a timer
     * that finds nothing due, once: pn__recovery_on_rto makes it exact). */
    uint64_t rto = path_rto(r, pa);
    uint64_t s1 = pa->since1_ns ? pa->since1_ns + rto : UINT64_MAX;
    uint64_t s4 =
        pa->since4_ns ? pa->since4_ns + PN__SUSPECT_RTOS * rto : UINT64_MAX;
    uint64_t s = s1 < s4 ? s1 : s4;
    if (s != UINT64_MAX) {
      at = at && at < s ? at : s;
    }
  }
  /* Each path's oldest datagram in flight: the first one in flight is
   * it for its path; others' are found further on (one path: never). */
  for (uint64_t s = r->oldest_flight; want && s < r->next_seq; s++) {
    const pn__sent *e = &r->sent[s & r->sent_mask];
    if (e->seq != s || !e->in_flight || !(want >> e->path & 1u)) {
      continue;
    }
    want &= ~(1u << e->path);
    const pn__rec_path *pa = &r->path[e->path];
    /* One that later ones of its path overtook waits from its sending
     * (pn__recovery_on_rto). */
    bool overtaken = e->path_ord + pa->reorder < pa->acked;
    uint64_t from = overtaken || e->sent_ns > pa->last_ack_ns ? e->sent_ns
                                                              : pa->last_ack_ns;
    uint64_t t = from + path_rto(r, pa);
    at = at && at < t ? at : t;
  }
  return at;
}
