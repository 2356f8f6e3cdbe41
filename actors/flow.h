/* Flow control of one connection: the receive window each side advertises
 * and the other respects (proto/README.md, "Flow control"), in the manner
 * of QUIC's connection-level MAX_DATA (RFC 9000 section 4.1).
 *
 * The unit is a message's length in bytes, counted once per message, for
 * the messages a receiver may have to hold before it can deliver them:
 * every ORDERED message (it waits for any earlier one that is missing) and
 * every fragmented message of a reliable kind (it waits for its pieces).
 * That is the message's cost (pn__flow_cost); other messages cost nothing
 * (delivered as they arrive; unreliable pieces are not resent, so their
 * cost could never be given back, and are bounded by the receiver alone).
 *
 * The receiver advertises a limit, released + capacity: the total cost it
 * lets the sender start since the connection began, where `released` is
 * the cost of the messages it has delivered (or dropped) and `capacity` its
 * max_receive_buffer. The sender starts a message only while its total
 * `sent` plus the message's cost stays within the highest limit it heard.
 * Whatever the receiver holds then costs at most sent - released <=
 * capacity, however datagrams are lost, reordered or sent again
 * (retransmissions start nothing new); a receiver that checks its held
 * bytes against `capacity` never refuses a sender that keeps to this.
 *
 * A limit rides on every acknowledgement; it grows only when the receiver
 * delivers, which happens when a datagram arrives, and every datagram that
 * arrives is acknowledged, so a window that opens is announced at once. A
 * sender blocked with nothing in flight (the acknowledgement that carried
 * the news was lost, or it never heard a limit) pings: at once, then after
 * an RTO, doubling up to its keepalive.
 *
 * Pure: no I/O, no clock, no allocation (tests/unit/test_flow.c). One
 * owner (the peer actor).
 */
#ifndef PN_ACTORS_FLOW_H
#define PN_ACTORS_FLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "peernet/net.h"

/* The limit a sender assumes before it hears one: no receiver holds less
 * (pn_host_open refuses a smaller max_receive_buffer). */
#define PN__FLOW_INITIAL (64u << 10)

typedef struct pn__flow {
  /* Sending. */
  uint64_t sent;          /* cost of the messages started */
  uint64_t limit;         /* the highest limit heard */
  bool blocked;           /* a message waits for the window */
  uint64_t probe_at;      /* when a blocked sender with nothing in flight
                             pings next */
  uint64_t probe_wait_ns; /* the wait before the next probe (0: none yet) */
  /* Receiving. */
  uint64_t capacity; /* max_receive_buffer */
  uint64_t held;     /* bytes held now: ORDERED messages waiting for an
                        earlier one, partial messages of every kind */
  uint64_t held_max; /* the most ever held */
  uint64_t released; /* cost of the messages delivered or dropped */
} pn__flow;

/* Sets f up for a connection whose receive buffer holds capacity bytes. */
void pn__flow_init(pn__flow *f, uint64_t capacity);

/* The cost of a message of `len` bytes on a channel of `kind` cut into
 * frag_count pieces (0 or 1: whole). */
static inline uint64_t pn__flow_cost(pn_channel_kind kind, uint32_t frag_count,
                                     uint64_t len) {
  bool reliable_piece =
      frag_count > 1 &&
      (kind == PN_CHANNEL_RELIABLE || kind == PN_CHANNEL_RELIABLE_UNORDERED);
  return kind == PN_CHANNEL_ORDERED || reliable_piece ? len : 0;
}

/* --- sending ------------------------------------------------------------- */

/* Whether a message of this cost may start now; when it may not, the
 * sender is blocked until a larger limit comes. */
bool pn__flow_may_start(pn__flow *f, uint64_t cost);

/* A message of this cost started (its first frame left). */
void pn__flow_started(pn__flow *f, uint64_t cost);

/* A limit heard from the receiver; true when it is larger than any before
 * (the sender is no longer blocked and probes start over). */
bool pn__flow_on_limit(pn__flow *f, uint64_t limit);

/* Cost the sender may still start: limit - sent, or 0. */
uint64_t pn__flow_window(const pn__flow *f);

/* Whether a blocked sender with nothing in flight should ping now. */
bool pn__flow_probe_due(const pn__flow *f, uint64_t in_flight, uint64_t now);

/* A probe was sent at `now`: the next waits first_ns (the RTO), then
 * twice as long each time, up to max_ns. */
void pn__flow_probed(pn__flow *f, uint64_t now, uint64_t first_ns,
                     uint64_t max_ns);

/* When the next probe is due (0: none, not blocked or something in
 * flight). */
uint64_t pn__flow_probe_deadline(const pn__flow *f, uint64_t in_flight);

/* --- receiving ----------------------------------------------------------- */

/* The limit to advertise: released + capacity. */
static inline uint64_t pn__flow_advertised(const pn__flow *f) {
  return f->released + f->capacity;
}

/* Whether `extra` more bytes can be held. */
static inline bool pn__flow_fits(const pn__flow *f, uint64_t extra) {
  return f->held <= f->capacity && extra <= f->capacity - f->held;
}

/* Bytes start or stop being held. */
void pn__flow_hold(pn__flow *f, uint64_t bytes);
void pn__flow_unhold(pn__flow *f, uint64_t bytes);

/* A message of this cost was delivered or dropped: its cost is given
 * back to the sender with the next limit. */
static inline void pn__flow_release(pn__flow *f, uint64_t cost) {
  f->released += cost;
}

#endif
