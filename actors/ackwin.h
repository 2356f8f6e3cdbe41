/* The receiver's record of datagram sequences: the highest received and
 * which of the PN__ACK_SPAN before it arrived too. Every acknowledgement
 * carries it (ack, ack_bits, ack_bits_more), so one names PN__ACK_SPAN + 1
 * datagrams and, sent every ACK_EVERY (peer_recv.c) datagrams, each
 * datagram is named by several: a lost acknowledgement is repaired by the
 * next. The same record tells duplicates and replays from new datagrams.
 *
 * Pure and inline: the receiver (peer_recv.c) and the recovery simulation
 * (tests/unit/test_recovery.c) share it. One owner; nothing shared.
 */
#ifndef PN_ACTORS_ACKWIN_H
#define PN_ACTORS_ACKWIN_H

#include <stdbool.h>
#include <stdint.h>

#define PN__ACK_SPAN 128u

typedef struct pn__ackwin {
  uint64_t highest; /* 0: nothing received */
  uint64_t bits[2]; /* bits[0] bit i: highest - 1 - i received;
                       bits[1] bit i: highest - 65 - i received */
} pn__ackwin;

/* Whether seq is new: neither received before nor too old to tell (more
 * than PN__ACK_SPAN below the highest, treated as a replay). */
static inline bool pn__ackwin_is_new(const pn__ackwin *w, uint64_t seq) {
  if (seq > w->highest) {
    return true;
  }
  uint64_t back = w->highest - seq;
  if (back == 0 || back > PN__ACK_SPAN) {
    return false;
  }
  uint64_t k = back - 1;
  return !(w->bits[k / 64] >> (k % 64) & 1u);
}

/* Records seq, which pn__ackwin_is_new() accepted. True when it is the
 * new highest. */
static inline bool pn__ackwin_mark(pn__ackwin *w, uint64_t seq) {
  if (seq <= w->highest) {
    uint64_t k = w->highest - seq - 1;
    w->bits[k / 64] |= 1ull << (k % 64);
    return false;
  }
  uint64_t shift = seq - w->highest;
  if (shift >= 128) {
    w->bits[0] = w->bits[1] = 0;
  } else if (shift >= 64) {
    w->bits[1] = w->bits[0] << (shift - 64);
    w->bits[0] = 0;
  } else {
    w->bits[1] = w->bits[1] << shift | w->bits[0] >> (64 - shift);
    w->bits[0] <<= shift;
  }
  if (w->highest && shift <= PN__ACK_SPAN) {
    uint64_t k = shift - 1; /* the old highest */
    w->bits[k / 64] |= 1ull << (k % 64);
  }
  w->highest = seq;
  return true;
}

#endif
