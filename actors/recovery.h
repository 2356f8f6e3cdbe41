/* Loss recovery and congestion control of one connection: the datagrams in
 * flight, the round-trip estimate (RFC 6298), loss detection (an
 * acknowledgement gap or an RTO) and the congestion window (Reno with
 * RFC 7661's rule for an unused window, plus a queueing-delay cut), each
 * per path when a connection spreads its datagrams over several sockets.
 * Several paths' windows grow together as RFC 6356's coupled increase
 * has them: on a bottleneck they share they take no more than one path
 * would, and traffic moves to the path that loses least.
 *
 * A datagram declared lost is first only suspected: what must arrive is
 * sent again at once, but the loss is final (reported, counted) only when
 * no acknowledgement can name it any more. Reordering beyond the gap rule
 * and lost acknowledgements (which a later one repairs, ackwin.h) then
 * cost a resend, never a message reported lost that arrived; and a window
 * cut by losses that all turn out spurious is restored.
 *
 * Pure: no I/O, no clock, no allocation after pn__recovery_init() except
 * when the ring of datagrams in flight grows (pn__recovery_room). The
 * caller gives every time as `now` (nanoseconds) and learns which
 * datagrams were acknowledged or lost through a callback, so the module is
 * tested alone (tests/unit/test_recovery.c).
 *
 * Threading: one owner (the peer actor); nothing here is shared.
 */
#ifndef PN_ACTORS_RECOVERY_H
#define PN_ACTORS_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "actors/ackwin.h"
#include "peernet/error.h"

/* The window is fixed point: PN__CWND_ONE is one datagram. */
#define PN__CWND_ONE 1024u
#define PN__CWND_MIN 4u       /* datagrams */
#define PN__CWND_INITIAL 32u  /* datagrams */
#define PN__LOSS_THRESHOLD 3u /* datagrams acknowledged after a lost one */
#define PN__QUEUE_DELAY_NS 2000000u /* 2 ms above the minimum RTT */
/* Paths a connection's datagrams take: the local socket they leave
 * through, modulo the paths it was set up with (at most this many). Each
 * path has its own loss detection (the gap rule counts its datagrams only,
 * its suspects wait its own RTO), round-trip estimate and congestion
 * window, so a slower or narrower path neither makes the other's
 * datagrams look lost nor holds the other's window down. */
#define PN__REC_PATHS 4u
#define PN__REORDER_MAX 128u /* the gap rule's threshold, at most */

/* A datagram sent and not yet resolved. */
typedef struct pn__sent {
  uint64_t seq; /* 0: slot unused */
  uint64_t sent_ns;
  uint64_t fstart;   /* the caller's: where its frames are kept */
  uint64_t path_ord; /* datagrams sent on its path before it */
  uint64_t lost_ns;  /* when declared lost (suspect) */
  uint32_t bytes;
  uint16_t nframes;
  uint16_t reorder; /* declared by the gap rule: datagrams of its path
                       acknowledged after it then, at most
                       PN__REORDER_MAX (0: by the RTO) */
  uint8_t path;
  bool in_flight;
  bool suspect;     /* declared lost, not final: a later ack may name it */
  bool eliciting;   /* carries frames or a ping: will be acknowledged */
  bool disconnect;  /* carries the goodbye */
  bool window_used; /* sent with at least half the window in flight: its
                       acknowledgement may grow the window (RFC 7661) */
} pn__sent;

typedef struct pn__recovery_limits {
  uint64_t rto_min_ns, rto_max_ns, rto_initial_ns;
  uint32_t window; /* most datagrams in flight, on all paths together */
  uint32_t paths;  /* paths to keep apart, 1..PN__REC_PATHS (0: 1) */
} pn__recovery_limits;

/* One path's state. */
typedef struct pn__rec_path {
  uint64_t sent;    /* datagrams sent on it: the next one's ordinal */
  uint64_t acked;   /* 1 + the highest ordinal acknowledged */
  uint64_t reorder; /* the gap rule's threshold: PN__LOSS_THRESHOLD, raised
                       to the reordering a suspect that arrived after all
                       showed (at most PN__REORDER_MAX) */
  uint64_t srtt_ns, rttvar_ns, min_rtt_ns, rto_ns; /* 0 before a sample
                                                      (rto_ns: the
                                                      connection's) */
  uint64_t last_ack_ns; /* last acknowledgement of something new on it */
  /* The last acknowledgement that named something new on it: when, and
   * 1 + the highest ordinal it newly named. A suspect of the path sent
   * before that one (a lower ordinal) would have been named too had it
   * arrived (the path keeps its order): it waits one RTO, not
   * PN__SUSPECT_RTOS. An acknowledgement that names only older ones of
   * the path says nothing of it. */
  uint64_t vouch_ns, vouch_ord;
  uint64_t since_ns; /* no suspect of it was declared before this (0:
                        none; exact after pn__recovery_on_rto) */
  /* The earliest declaration among its suspects that wait one RTO (an
   * acknowledgement of the path came after them) and among those that
   * wait PN__SUSPECT_RTOS: 0 for none; lower bounds, exact after
   * pn__recovery_on_rto. */
  uint64_t since1_ns, since4_ns;
  uint64_t cwnd, ssthresh; /* fixed point; ssthresh UINT64_MAX */
  uint64_t recovery_seq;   /* its datagrams below it were sent before the
                              last cut */
  uint64_t undo_cwnd, undo_ssthresh; /* before the first loss cut whose
                                        suspects are not all final */
  uint32_t in_flight, suspects;
  uint32_t backoff; /* RTO expiries since its last acknowledgement */
  bool undo_valid;
} pn__rec_path;

typedef struct pn__recovery {
  pn__recovery_limits lim;
  pn__sent *sent; /* ring indexed by seq & sent_mask */
  uint64_t sent_mask;
  pn__rec_path *path;        /* lim.paths of them */
  uint64_t next_seq;         /* the next datagram's sequence, from 1 */
  uint64_t oldest;           /* oldest sequence whose slot may be in use */
  uint64_t oldest_flight;    /* oldest sequence that may be in flight */
  uint64_t in_flight;        /* datagrams sent and not resolved */
  uint64_t suspects;         /* datagrams declared lost, not final */
  uint64_t late, final_lost; /* suspects named after all; final losses */
  uint64_t largest_acked;    /* highest sequence acknowledged */
  uint64_t last_ack_ns;      /* last acknowledgement of something new */
  /* The connection's round trip over all paths (what stats show, and the
   * pace of probes and challenges): 0 before a sample (rto_ns: initial). */
  uint64_t srtt_ns, rttvar_ns, min_rtt_ns, rto_ns;
} pn__recovery;

/* What became of a datagram. Each one sent with frames is reported
 * ACKED, or SUSPECT and then LATE or LOST (LOST alone when abandoned). */
typedef enum pn__resolution {
  PN__RES_ACKED,   /* acknowledged while in flight */
  PN__RES_SUSPECT, /* declared lost: send again what must arrive */
  PN__RES_LATE,    /* a suspect an acknowledgement named: it arrived */
  PN__RES_LOST,    /* final: no acknowledgement can name it any more */
} pn__resolution;

/* Called once per change above. The record is no longer in flight when it
 * runs. */
typedef void pn__resolved_fn(void *ctx, const pn__sent *e, pn__resolution res,
                             uint64_t now);

/* Sets r up for a new connection (the window starts at
 * PN__CWND_INITIAL datagrams, or lim->window if smaller). Errors:
 * PN_ENOMEM (r is then safe to pass to pn__recovery_fini). Caller's
 * memory. */
pn_err pn__recovery_init(pn__recovery *r, const pn__recovery_limits *lim);

/* Frees the ring. Safe on a zeroed or failed r. */
void pn__recovery_fini(pn__recovery *r);

/* Whether the ring can record the datagram of sequence next_seq, growing
 * it (by as many doublings as [oldest, next_seq] needs) up to the first
 * size that holds four windows. False when it cannot (past that cap, or
 * out of memory): the caller waits for acknowledgements or the RTO. */
bool pn__recovery_room(pn__recovery *r);

/* Whether another datagram with frames may leave on `path` (a socket,
 * taken modulo lim.paths): fewer of that path's in flight than its
 * congestion window, fewer in flight on all paths than the configured
 * window, and room to record it. */
bool pn__recovery_can_send(pn__recovery *r, uint32_t path);

/* Records the datagram of sequence r->next_seq as sent on `path` (the
 * socket it leaves through; taken modulo lim.paths) and advances
 * next_seq. Eliciting ones stay in flight until resolved: call
 * pn__recovery_room() first for one. Returns its record (NULL for a
 * non-eliciting datagram), whose fstart/nframes the caller fills. */
pn__sent *pn__recovery_sent(pn__recovery *r, uint64_t now, uint32_t bytes,
                            bool eliciting, bool disconnect, uint32_t path);

enum {
  PN__ACK_NEW = 1u, /* something in flight was acknowledged */
  PN__ACK_RTT = 2u, /* the RTT estimate changed */
};

/* An acknowledgement: `ack` and the PN__ACK_SPAN sequences before it
 * named by bits[0] (bit i: ack - 1 - i) and bits[1] (bit i: ack - 65 - i),
 * `delay_us` the time the receiver held it. Resolves what it names
 * (ACKED, or LATE for a suspect), declares SUSPECT every datagram in
 * flight when PN__LOSS_THRESHOLD datagrams sent after it on its path are
 * acknowledged (the gap rule; more once a path showed it reorders: as
 * Linux TCP's reordering metric, a suspect that arrives after all raises
 * its path's threshold to the reordering it showed), and LOST every
 * suspect more than PN__RX_WINDOW below it (the receiver acknowledges
 * apart what arrives that far behind its highest: ackwin.h). Returns
 * PN__ACK_* flags.
 * Ignores acknowledgements of sequences never sent. */
uint32_t pn__recovery_on_ack(pn__recovery *r, uint64_t ack,
                             const uint64_t bits[2], uint32_t delay_us,
                             uint64_t now, pn__resolved_fn *fn, void *ctx);

/* The retransmission timer, per path: once no acknowledgement of a path
 * came for its RTO, every datagram of it older than its backed-off RTO is
 * SUSPECT, its backoff doubles and its window falls to the minimum.
 * Whether or not acknowledgements come, a suspect no acknowledgement
 * named within its path's RTO is LOST. True when something was declared
 * SUSPECT. */
bool pn__recovery_on_rto(pn__recovery *r, uint64_t now, pn__resolved_fn *fn,
                         void *ctx);

/* Resolves everything in flight or suspect as LOST without touching the
 * window (the connection is closing). */
void pn__recovery_abandon(pn__recovery *r, pn__resolved_fn *fn, void *ctx);

/* The RTO with its backoff, bounded by rto_max: the largest among the
 * paths that sent anything (one path: its own). */
uint64_t pn__recovery_rto(const pn__recovery *r);

/* When the RTO of the oldest datagram in flight on a path expires, or the
 * first suspect's wait ends, whichever is first; 0 when neither is. Moves
 * `oldest` past resolved datagrams first. */
uint64_t pn__recovery_rto_deadline(pn__recovery *r);

/* Moves `oldest` past resolved datagrams; returns the fstart of the oldest
 * one in flight or suspect, or `none` when nothing is. */
uint64_t pn__recovery_advance(pn__recovery *r, uint64_t none);

/* The window in whole datagrams, and ssthresh (0 until the first cut):
 * summed over the paths that sent anything. */
uint64_t pn__recovery_cwnd(const pn__recovery *r);
uint64_t pn__recovery_ssthresh(const pn__recovery *r);

/* Whether the remote acknowledged anything sent on `path` (a socket). */
bool pn__recovery_path_acked(const pn__recovery *r, uint32_t path);

#endif
