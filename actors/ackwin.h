/* The receiver's record of datagram sequences: the highest received and
 * which of the PN__RX_WINDOW before it arrived too. Every acknowledgement
 * carries the newest part of it (ack, ack_bits, ack_bits_more: the
 * highest and the PN__ACK_SPAN before it), so one names PN__ACK_SPAN + 1
 * datagrams and, sent every ACK_EVERY (peer_recv.c) datagrams, each
 * datagram is named by several: a lost acknowledgement is repaired by the
 * next. The whole record tells duplicates and replays from new datagrams:
 * it reaches further back than an acknowledgement so that a datagram that
 * took a slower path (another socket, tests/net/test_multisocket.c) is
 * still taken, up to PN__RX_WINDOW behind.
 *
 * Pure and inline: the receiver (peer_recv.c) and the recovery simulation
 * (tests/unit/test_recovery.c) share it. One owner; nothing shared.
 */
#ifndef PN_ACTORS_ACKWIN_H
#define PN_ACTORS_ACKWIN_H

#include <stdbool.h>
#include <stdint.h>

#define PN__ACK_SPAN 128u   /* named by an acknowledgement below its own */
#define PN__RX_WINDOW 1024u /* remembered below the highest */
#define PN__RX_WORDS (PN__RX_WINDOW / 64u)

typedef struct pn__ackwin {
  uint64_t highest;            /* 0: nothing received */
  uint64_t bits[PN__RX_WORDS]; /* bit k of the whole (bits[k / 64] bit
                                  k % 64): highest - 1 - k received */
} pn__ackwin;

/* Whether seq is new: neither received before nor too old to tell (more
 * than PN__RX_WINDOW below the highest, treated as a replay). */
static inline bool pn__ackwin_is_new(const pn__ackwin *w, uint64_t seq) {
  if (seq > w->highest) {
    return true;
  }
  uint64_t back = w->highest - seq;
  if (back == 0 || back > PN__RX_WINDOW) {
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
  if (shift >= PN__RX_WINDOW) {
    for (uint32_t i = 0; i < PN__RX_WORDS; i++) {
      w->bits[i] = 0;
    }
  } else {
    /* The whole record moves up by shift bits, from the top word down. */
    uint32_t words = (uint32_t)(shift / 64), b = (uint32_t)(shift % 64);
    for (uint32_t i = PN__RX_WORDS; i-- > 0;) {
      uint64_t v = 0;
      if (i >= words) {
        v = w->bits[i - words] << b;
        if (b && i > words) {
          v |= w->bits[i - words - 1] >> (64 - b);
        }
      }
      w->bits[i] = v;
    }
  }
  if (w->highest && shift <= PN__RX_WINDOW) {
    uint64_t k = shift - 1; /* the old highest */
    w->bits[k / 64] |= 1ull << (k % 64);
  }
  w->highest = seq;
  return true;
}

/* Whether seq arrived: the highest, or recorded below it. */
static inline bool pn__ackwin_has(const pn__ackwin *w, uint64_t seq) {
  if (!seq || seq > w->highest) {
    return false;
  }
  return seq == w->highest || !pn__ackwin_is_new(w, seq);
}

/* The acknowledgement fields for seq (received, at most PN__RX_WINDOW
 * below the highest) as if it were the highest: out[0] bit i tells
 * whether seq - 1 - i arrived, out[1] bit i seq - 65 - i. For a datagram
 * that arrived too far behind the highest for an ordinary acknowledgement
 * to name it (PN__ACK_SPAN). */
static inline void pn__ackwin_below(const pn__ackwin *w, uint64_t seq,
                                    uint64_t out[2]) {
  out[0] = out[1] = 0;
  uint64_t base = w->highest - seq; /* bit base + j: seq - 1 - j */
  for (uint32_t j = 0; j < PN__ACK_SPAN && seq > j + 1; j++) {
    uint64_t k = base + j;
    if (k < PN__RX_WINDOW && (w->bits[k / 64] >> (k % 64) & 1u)) {
      out[j / 64] |= 1ull << (j % 64);
    }
  }
}

#endif
