/* The channel actor's object (public API: pn_channel_* in net.h). A peer
 * holds its channels inline; each has an actor for sends that arrive from
 * other threads. */
#ifndef PN_ACTORS_CHANNEL_H
#define PN_ACTORS_CHANNEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/packet.h"
#include "peernet/net.h"

/* Which message sequences of a reliable channel have arrived: all below
 * base, and a bit per sequence above it. */
typedef struct pn__rxwin {
  uint64_t base;
  uint64_t *bits; /* ring of nbits bits, bit (seq & (nbits - 1)) */
  uint64_t nbits;
} pn__rxwin;

/* The most sequences a reliable channel remembers above its base: a
 * datagram with a frame further ahead is dropped unacknowledged. */
#define PN__RXWIN_MAX_BITS (1ull << 22)

struct pn_channel {
  pn_peer *peer;
  pn_actor *actor;
  uint32_t index;
  pn_channel_kind kind;
  _Atomic uint64_t next_msg_id;
  _Atomic uint32_t in_mailbox; /* PN__C_SEND messages not yet handled */
  /* Actor side (the peer's worker). */
  uint64_t next_seq;      /* sender: next wire sequence */
  uint64_t newest;        /* receiver, sequenced kinds: newest delivered */
  uint64_t next_expected; /* receiver, ORDERED: next to deliver */
  pn_msg **held;          /* receiver, ORDERED: ring of early messages:
                             event envelopes */
  uint64_t held_cap;      /* power of two or 0 */
  uint64_t held_count;
  pn__rxwin rx; /* peer side: reliable kinds' duplicates */
};

static inline bool pn__kind_reliable(pn_channel_kind kind) {
  return kind == PN_CHANNEL_RELIABLE || kind == PN_CHANNEL_ORDERED ||
         kind == PN_CHANNEL_RELIABLE_UNORDERED;
}

struct pn__event;

/* Peer actor: a complete message (one reference on pkt given) for
 * channel ch, with the PN_MSG_PEER_PACKET envelope m (its payload e) made
 * for it beforehand; applies the channel's kind and delivers it to the
 * owner, or drops both. Never fails: an ORDERED message ahead of the next
 * one needs room that pn__channel_reserve() made. */
void pn__channel_receive(pn_channel *ch, uint64_t seq, pn_packet *pkt,
                         pn_msg *m, struct pn__event *e);

/* Grows ch's hold ring to hold `ahead` messages. */
bool pn__channel_hold_grow(pn_channel *ch, uint64_t ahead);

/* Peer actor: makes room to hold message seq of an ORDERED channel until
 * the gap before it fills (true at once for other kinds, or when seq is
 * next). False when out of memory. */
static inline bool pn__channel_reserve(pn_channel *ch, uint64_t seq) {
  return ch->kind != PN_CHANNEL_ORDERED || seq <= ch->next_expected ||
         seq - ch->next_expected < ch->held_cap ||
         pn__channel_hold_grow(ch, seq - ch->next_expected + 1);
}

/* Spawns ch's actor on worker `home`; it holds a reference on p until it
 * stops. Errors: those of pn_spawn(). Any thread. */
pn_err pn__channel_spawn(pn_peer *p, pn_channel *ch, int32_t home);

/* The duplicate window. Peer's worker. Inline: every received frame asks
 * each of these. */
static inline bool pn__rxwin_seen(const pn__rxwin *w, uint64_t seq) {
  if (seq < w->base) {
    return true;
  }
  if (seq - w->base >= w->nbits) {
    return false;
  }
  uint64_t b = seq & (w->nbits - 1);
  return (w->bits[b / 64] >> (b % 64)) & 1u;
}

/* Grows the window to hold need sequences above base. */
bool pn__rxwin_grow(pn__rxwin *w, uint64_t need);

/* Makes room to mark seq; false when out of memory (nothing changed). */
static inline bool pn__rxwin_reserve(pn__rxwin *w, uint64_t seq) {
  return seq < w->base || seq - w->base < w->nbits ||
         pn__rxwin_grow(w, seq - w->base + 1);
}
/* Marks seq; false when there is no room and none could be made. */
bool pn__rxwin_mark(pn__rxwin *w, uint64_t seq);
void pn__rxwin_free(pn__rxwin *w);

#endif
