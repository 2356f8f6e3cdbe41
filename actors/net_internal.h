/* What the host, peer and channel actors share (public API: net.h).
 *
 * A host, its peers and their channels are actors homed on one worker, so
 * they never run at the same time: the fields below marked "actor side"
 * are plain, read and written only from those handlers. Fields read by
 * application threads (state, queued bytes, counters) are atomics.
 *
 * Messages carrying objects (outgoing messages, events) hold a reference
 * that the message's free function gives back, so a message dropped by a
 * stopping actor leaks nothing.
 */
#ifndef PN_ACTORS_NET_INTERNAL_H
#define PN_ACTORS_NET_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <zstd.h>

#include "actors/idmap.h"
#include "actors/packet.h"
#include "actors/wire.h"
#include "peernet/net.h"

/* A channel message on its way out (sender side). */
typedef struct pn__outmsg pn__outmsg;
struct pn__outmsg {
  /* The send message, the peer's queues. Plain: after pn_channel_send
   * publishes it, only the peer's worker touches it (the mailbox hand-off
   * orders the rest). */
  uint32_t refs;
  bool holds_peer; /* sent through the channel's mailbox, which the peer
                      may not outlive: holds a reference on peer */
  pn_peer *peer;
  pn_packet *pkt;   /* held */
  pn__outmsg *next; /* peer's queue of new messages */
  uint64_t msg_id;  /* the application's id */
  uint64_t seq;     /* the channel's wire sequence */
  uint64_t first_sent_ns;
  uint32_t channel;
  uint32_t frag_count; /* 1: sent whole */
  uint32_t next_frag;  /* first-time sends so far */
  uint32_t frags_acked;
  uint64_t *acked; /* bitmap of acknowledged fragments */
  uint8_t kind;
  bool reliable;
  bool resolved; /* acknowledged or reported lost */
};

/* One frame in flight: a fragment of an outgoing message. */
typedef struct pn__fref {
  pn__outmsg *om;
  uint32_t frag;
} pn__fref;

/* A deque of frame references with absolute, growing indices. */
typedef struct pn__fq {
  pn__fref *items;
  uint64_t head, tail; /* [head, tail) live */
  uint64_t mask;       /* capacity - 1 */
} pn__fq;

/* A datagram sent and not yet resolved. */
typedef struct pn__sent {
  uint64_t seq; /* 0: slot unused */
  uint64_t sent_ns;
  uint64_t fstart; /* its frames: frefs[fstart, fstart + nframes) */
  uint32_t bytes;
  uint16_t nframes;
  bool in_flight;
  bool eliciting;   /* carries frames or a ping: will be acknowledged */
  bool disconnect;  /* carries the goodbye */
  bool window_used; /* sent with at least half the window in flight: its
                       acknowledgement may grow the window (RFC 7661) */
} pn__sent;

/* Which message sequences of a reliable channel have arrived: all below
 * base, and a bit per sequence above it. */
typedef struct pn__rxwin {
  uint64_t base;
  uint64_t *bits; /* ring of nbits bits, bit (seq & (nbits - 1)) */
  uint64_t nbits;
} pn__rxwin;

/* A fragmented message being put together (receiver side). */
typedef struct pn__partial pn__partial;
struct pn__partial {
  pn__partial *next;
  uint32_t channel;
  uint64_t seq;
  uint32_t count, received;
  uint64_t touched_ns;
  uint64_t *have;
  pn_packet *pkt; /* msg_len bytes being filled */
};

/* An event for an application actor: the inline payload of an envelope
 * (pn__envelope_new) whose free function gives back its reference on
 * ev.packet. Events borrow ev.peer: only the peer's last event,
 * PN_MSG_PEER_DISCONNECTED (reserved when the peer is created, so it is
 * never missing), holds a reference on it. As every event of a peer goes
 * from the peer's worker to its owner's mailbox in order, the peer
 * outlives all of them. */
typedef struct pn__event {
  uint32_t type;
  bool holds_peer;
  pn_peer_event ev;
} pn__event;

struct pn_channel {
  pn_peer *peer;
  pn_actor *actor;
  uint32_t index;
  pn_channel_kind kind;
  _Atomic uint64_t next_msg_id;
  _Atomic uint32_t in_mailbox; /* PN__C_SEND messages not yet handled */
  /* Actor side. */
  uint64_t next_seq;      /* sender: next wire sequence */
  uint64_t newest;        /* receiver, sequenced kinds: newest delivered */
  uint64_t next_expected; /* receiver, ORDERED: next to deliver */
  pn_msg **held;          /* receiver, ORDERED: ring of early messages:
                             event envelopes */
  uint64_t held_cap;      /* power of two or 0 */
  uint64_t held_count;
  pn__rxwin rx; /* peer side: reliable kinds' duplicates */
};

struct pn_peer {
  _Atomic uint32_t refs;
  _Atomic uint32_t state; /* pn_peer_state */
  pn_host *host;          /* held */
  pn_actor *actor;        /* held */
  pn_actor *owner;        /* held */
  uint64_t id;
  void *user;
  pn_addr addr;
  uint32_t sockets_mask;
  uint32_t socket_rr;
  bool is_client;
  bool delivery_events; /* ACKED / LOST for the owner */
  bool registered;      /* in the host's table */
  bool gone;            /* closed: events sent, waiting for channels */
  uint32_t local_id, remote_id;
  uint64_t client_nonce, server_nonce;
  bool aes_gcm; /* DATA tags: AES-256-GCM, else ChaCha20-Poly1305 */
  pn__data_key dkey;
  uint8_t cookie[32];
  size_t cookie_len;
  uint64_t cookie_ts;
  uint64_t start_ns, last_send_ns, last_recv_ns, handshake_sent_ns;
  uint64_t ping_tried_ns;
  uint64_t keepalive_ns; /* this peer's ping interval (see pn__peer_create) */
  uint64_t last_ack_ns;  /* last acknowledgement of something new */
  pn_timer *timer;
  uint64_t timer_at;
  pn_msg *goodbye; /* the PN_MSG_PEER_DISCONNECTED event, reserved */
  /* Sending. */
  uint64_t next_seq;
  pn__sent *sent; /* ring indexed by seq & sent_mask */
  uint64_t sent_mask;
  uint64_t oldest; /* oldest sequence whose slot may be in use */
  uint64_t in_flight;
  uint64_t largest_acked;
  pn__fq frefs; /* frames of datagrams in flight */
  pn__fq rtx;   /* frames to send again */
  pn__outmsg *newq, *newq_tail;
  bool poked;
  bool ping_owed;
  bool disconnect_owed;
  bool disconnect_acked;
  uint32_t disconnect_sends;
  uint32_t compress_skip, compress_misses;
  /* Receiving. */
  uint64_t rx_highest;
  uint64_t rx_bits; /* bit i: rx_highest - 1 - i received */
  uint64_t rx_highest_ns;
  bool ack_owed;
  uint32_t rx_unacked; /* eliciting datagrams since the last ack */
  pn__partial *partials;
  uint64_t reassembly;
  /* RTT, nanoseconds. */
  uint64_t srtt, rttvar, min_rtt, rto;
  uint32_t backoff;
  /* Congestion control and pacing (see peer.c). */
  uint64_t send_rate;  /* bytes/s, 0 = unlimited */
  int64_t pace_tokens; /* bytes it may send now (may go below 0) */
  uint64_t pace_ns;    /* when pace_tokens was last refilled */
  uint64_t cwnd, ssthresh, recovery_seq;
  /* Closing. */
  uint32_t reason;
  bool reason_remote;
  uint32_t channels_open;
  uint64_t unqueued; /* acknowledged bytes still in queued_bytes until the
                        run's end */
  /* Read by any thread. */
  _Atomic uint64_t queued_bytes;
  _Atomic uint32_t want_writable; /* a send got PN_EAGAIN: owe WRITABLE */
  _Atomic uint64_t st_srtt, st_rttvar, st_min_rtt, st_rto;
  _Atomic uint64_t st_dg_out, st_bytes_out, st_dg_in, st_bytes_in;
  _Atomic uint64_t st_lost, st_acked_dg, st_retransmits, st_acks_only;
  _Atomic uint64_t st_msgs_out, st_msgs_in, st_dups, st_bad, st_stale;
  _Atomic uint64_t st_raw_out, st_comp_out, st_in_flight, st_reassembly;
  /* In datagrams; st_ssthresh 0 until the first cut. */
  _Atomic uint64_t st_cwnd, st_ssthresh;
  pn_peer *reg_prev, *reg_next; /* the runtime's registry (reg_lock) */
  bool in_registry;
  uint32_t nchannels;
  pn_channel channels[];
};

struct pn_host {
  _Atomic uint32_t refs; /* the handle, the actor, every peer */
  _Atomic uint32_t closing;
  _Atomic uint32_t npeers;
  pn_runtime *rt;
  pn_actor *actor; /* held */
  int32_t home;
  uint32_t nsockets;
  pn_socket *sockets[32];
  uint64_t socket_ids[32];
  pn_addr local[32];
  uint32_t sockets_open;  /* actor side: not yet reported closed */
  pn_actor *accept_owner; /* held */
  pn_accept_fn accept;
  void *accept_ctx;
  uint32_t max_peers, mtu, max_message, max_reassembly, max_queued, window;
  uint64_t connect_timeout_ns, connect_retry_ns, keepalive_ns, idle_timeout_ns,
      rto_min_ns, rto_max_ns, rto_initial_ns;
  bool compress;
  uint64_t send_rate;      /* default bytes/s per peer, 0 = unlimited */
  bool no_delivery_events; /* for the peers it accepts */
  bool stopped;            /* actor side: the host actor has stopped */
  bool started;            /* actor side: PN__H_START handled */
  bool close_handled;      /* actor side: PN__H_CLOSE closed every peer */
  uint8_t secret[32];      /* cookie key */
  pn__idmap by_id;         /* local connection id -> peer */
  pn__idmap by_addr;       /* hash of (address, client id) -> accepted peer */
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  ZSTD_CDict *cdict;
  ZSTD_DDict *ddict;
  uint64_t dict_hash;  /* BLAKE2b-64 of the dictionary, 0 without one */
  bool aes_gcm;        /* this machine can tag DATA with AES-256-GCM */
  uint8_t *buf, *zbuf; /* scratch, 2 x PN_DATAGRAM_MAX each */
  /* A bump allocator for decoding one Packet at a time (protobuf-c would
   * otherwise malloc each frame and copy of its payload); reset after each
   * datagram. */
  ProtobufCAllocator arena_allocator;
  uint8_t *arena;
  size_t arena_used;
  _Atomic uint64_t st_in, st_bad_header, st_unknown, st_hs_dropped,
      st_challenges, st_accepted, st_rejected;
};

/* --- shared helpers (same worker only unless noted) --------------------- */

/* Any thread. */
void pn__host_ref(pn_host *h);
void pn__host_unref(pn_host *h);
void pn__outmsg_unref(pn__outmsg *om);
void pn__outmsg_unref_fn(void *data, void *ctx);
/* Frees om and its packet without touching the peer's queued bytes: for a
 * message never queued. */
void pn__outmsg_free(pn__outmsg *om);

/* pn_channel_send()'s private copy of the bytes lives in the same pool
 * block as its message, right after it (one allocation, not two); such a
 * packet is never shared, and goes with its message. */
static inline pn_packet *pn__outmsg_inline_packet(pn__outmsg *om) {
  return (pn_packet *)(om + 1);
}

/* Creates a peer and its actors on the host's worker. Client peers come
 * from pn_host_connect() (any thread); server peers from the host actor.
 * On PN_OK the returned peer holds one reference for the caller. */
pn_err pn__peer_create(pn_host *h, const pn_peer_config *cfg, bool is_client,
                       pn_peer **out);

/* Peer's worker: queues om (sequenced by its channel) for sending and
 * makes sure the peer runs to send it. Takes its own reference. */
void pn__peer_enqueue(pn_peer *p, pn__outmsg *om);

/* Host actor: a datagram for peer p (routed by connection id). */
void pn__peer_route(pn_peer *p, uint32_t socket, const pn_addr *from,
                    const uint8_t *data, size_t len);

/* Host actor: the peer is accepted; send the Accept and the event. */
void pn__peer_accepted(pn_peer *p);

/* Host actor: a retried ConnectResponse for an accepted peer. */
void pn__peer_resend_accept(pn_peer *p, uint32_t socket);

/* Host actor: assigns p its local connection id and starts it. */
bool pn__host_register(pn_host *h, pn_peer *p);

/* Peer actor: p leaves the host's tables. */
void pn__host_forget(pn_host *h, pn_peer *p);

/* Host actor: close every peer (host closing). */
void pn__peer_close_request(pn_peer *p, uint32_t reason);

/* Sends a sealed datagram through the host's socket `socket`. */
void pn__host_send(pn_host *h, uint32_t socket, const pn_addr *to,
                   const uint8_t *data, size_t len);

/* An event envelope of type PN_MSG_PEER_* about p (borrowing p: see
 * pn__event), *ev_out its event to fill in; a packet stored in
 * (*ev_out)->ev.packet is released with it. NULL when out of memory. */
pn_msg *pn__event_new(uint32_t type, pn_peer *p, pn__event **ev_out);

/* Delivers the envelope to actor `to` (dropped if `to` stopped). */
void pn__event_send(pn_actor *to, pn_msg *m);

/* Frees an event envelope not sent. */
void pn__event_drop(pn_peer *p, pn_msg *m);

/* Peer actor: a complete message (one reference on pkt given) for
 * channel ch; applies the channel's kind and delivers to the owner. */
void pn__channel_receive(pn_channel *ch, uint64_t seq, pn_packet *pkt);

/* Channel actor internals. */
pn_err pn__channel_spawn(pn_peer *p, pn_channel *ch, int32_t home);
bool pn__rxwin_seen(const pn__rxwin *w, uint64_t seq);
/* False when seq lies too far ahead to remember (nothing changed). */
bool pn__rxwin_mark(pn__rxwin *w, uint64_t seq);
void pn__rxwin_free(pn__rxwin *w);

/* Internal message types of the net actors (below the reserved range:
 * only the library sends them to these actors). */
enum {
  PN__H_DATAGRAM_UNUSED = 1,
  PN__H_REGISTER,
  PN__H_CLOSE,
  PN__H_START,
  PN__P_RECV,
  PN__P_START,
  PN__P_TICK,
  PN__P_DISCONNECT,
  PN__P_CHANNEL_DONE,
  PN__P_POKE,
  PN__C_SEND,
  PN__C_CLOSE,
};

#endif
