/* The peer actor's object and what its files share (public API:
 * pn_peer_* in net.h).
 *
 * One connection is four files: peer.c (states, the handler, timers,
 * closing, the API), peer_send.c (queues, datagrams out, pacing, what
 * acknowledgements resolve), peer_recv.c (datagrams in, reassembly,
 * duplicates), handshake.c (both halves of the handshake, with the host),
 * over recovery.c (RTT, loss, congestion window: pure).
 *
 * A host, its peers and their channels are actors homed on one worker, so
 * they never run at the same time: the fields marked "actor side" are
 * plain, read and written only from those handlers. Fields read by
 * application threads (state, queued bytes, counters) are atomics, all
 * relaxed unless a comment names the operation they pair with.
 */
#ifndef PN_ACTORS_PEER_H
#define PN_ACTORS_PEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "actors/ackwin.h"
#include "actors/channel.h"
#include "actors/flow.h"
#include "actors/outmsg.h"
#include "actors/recovery.h"
#include "actors/scratch.h"
#include "actors/sendq.h"
#include "actors/wire.h"
#include "peernet/net.h"
#include "peernet/stats.h"
#include "runtime/registry.h"

/* One frame in flight: a fragment of an outgoing message. */
typedef struct pn__fref {
  pn__outmsg *om;
  uint32_t frag;
  uint32_t retries; /* times this frame was sent again */
} pn__fref;

/* A deque of frame references with absolute, growing indices. */
typedef struct pn__fq {
  pn__fref *items;
  uint64_t head, tail; /* [head, tail) live */
  uint64_t mask;       /* capacity - 1 */
} pn__fq;

/* Addresses of the remote a peer remembers as proven: a client sending
 * through several sockets shows several. */
#define PN__PATHS 4u

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

struct pn_peer {
  _Atomic uint32_t refs;
  _Atomic uint32_t state; /* pn_peer_state */
  pn_host *host;          /* held */
  pn_actor *actor;        /* held */
  pn_actor *owner;        /* held */
  uint64_t id;
  /* The application's pointer, copied into every event. Set from any
   * thread (pn_peer_set_user): release store, acquire loads, so what the
   * application wrote to the pointee before setting it is visible to the
   * handler that reads it from an event. */
  _Atomic(void *) user;
  /* Where datagrams go: the handshake's address, then the newest proven
   * one (path.c). Written by the peer actor under the registry lock, so
   * pn_peer_addr() and snapshots on other threads read it whole. */
  pn_addr addr;
  pn_addr origin; /* the handshake's address: the host's key for a server
                     peer (never changes) */
  uint32_t sockets_mask;
  uint32_t socket_rr;  /* the socket this flush sends through (round robin
                          over sockets_ok, whole flushes of at least
                          PN__SOCKET_RUN datagrams: peer_send.c) */
  uint64_t socket_run; /* rec.next_seq when socket_rr was chosen */
  /* The sockets of sockets_mask the remote has proven (it acknowledged a
   * datagram sent through one, or sends to it). Until then a socket
   * carries only an acknowledgement now and then (sockets_probe_ns: the
   * last), which makes the remote challenge its address: data sent
   * through it would be dropped unacted on and counted lost. */
  uint32_t sockets_ok;
  uint32_t sockets_challenged; /* sockets the remote challenged: it has
                                  seen them, so probes through them ask
                                  for an acknowledgement (a ping) */
  uint64_t sockets_probe_ns;
  bool is_client;
  bool delivery_events; /* ACKED / LOST for the owner */
  bool registered;      /* in the host's table */
  bool gone;            /* closed: events sent, waiting for channels */
  /* Handshake (handshake.c). */
  uint32_t local_id, remote_id;
  uint64_t client_nonce, server_nonce;
  bool aes_gcm;        /* DATA: AES-256-GCM, else ChaCha20-Poly1305 */
  bool has_remote_key; /* set once, before CONNECTED is published */
  uint8_t remote_key[PN_KEY_BYTES]; /* the server's, or a client's own */
  pn__data_keys dkeys;              /* once connected */
  struct pn__handshake *hs;         /* while connecting (handshake.h) */
  uint8_t cookie[32];
  size_t cookie_len;
  uint64_t cookie_ts;
  uint64_t start_ns, last_send_ns, last_recv_ns, handshake_sent_ns;
  uint64_t ping_tried_ns;
  uint64_t keepalive_ns; /* this peer's ping interval (see pn__peer_create) */
  /* Its own timeouts: the host's unless its config or pn_peer_set_timeouts
   * gave others (keepalive_base_ns is the interval keepalive_ns is drawn
   * from). */
  uint64_t idle_timeout_ns, ack_timeout_ns, keepalive_base_ns;
  pn_timer *timer;
  uint64_t timer_at;
  pn_msg *goodbye; /* the PN_MSG_PEER_DISCONNECTED event, reserved */
  /* Sending (peer_send.c). */
  pn__recovery rec; /* datagrams in flight, RTT, window */
  pn__fq frefs;     /* frames of datagrams in flight */
  pn__fq rtx;       /* frames to send again */
  pn__sendq sendq;  /* messages not yet fully sent, per channel */
  bool poked;
  bool ping_owed;
  bool disconnect_owed;
  bool disconnect_acked;
  uint32_t disconnect_sends;
  bool draining;              /* pn_peer_disconnect_later(): the goodbye
                                 waits until everything queued is resolved */
  uint64_t drain_deadline_ns; /* ... or until then */
  uint64_t unacked_since_ns;  /* since when something sent waits for an
                                 acknowledgement (0: nothing does) */
  uint32_t compress_skip, compress_misses;
  uint64_t send_rate;   /* pacing, bytes/s, 0 = unlimited */
  int64_t pace_tokens;  /* bytes it may send now (may go below 0) */
  uint64_t pace_ns;     /* when pace_tokens was last refilled */
  pn__outmsg *withheld; /* tests only: see pn_host.test_withhold */
  /* Flow control, both directions (flow.h). */
  pn__flow flow;
  /* Paths (path.c). */
  pn_addr paths[PN__PATHS]; /* proven addresses of the remote besides addr */
  uint32_t npaths;
  uint32_t path_next;            /* the slot a newly proven one replaces */
  pn_addr path_try;              /* an address being proven */
  uint64_t path_token;           /* its challenge (0: none) */
  uint64_t path_sent_ns;         /* when the challenge last went out */
  uint64_t path_response_owed;   /* a token the remote asked us to echo */
  uint32_t path_response_socket; /* through this socket (where it came) */
  /* Receiving (peer_recv.c). */
  pn__ackwin rx;                   /* datagram sequences received */
  uint64_t rx_highest_ns;          /* when rx.highest arrived */
  uint64_t rx_late_lo, rx_late_hi; /* the oldest and newest datagrams
                                      that fell too far behind rx.highest
                                      for the next acknowledgement to name
                                      them: acknowledged apart */
  uint64_t rx_unnamed_lo;          /* the oldest datagram received that no
                                      acknowledgement sent has named yet
                                      (0: none) */
  bool ack_owed;
  uint32_t rx_unacked;  /* eliciting datagrams since the last ack */
  uint32_t reacks_left; /* copies of the last ack-only datagram still to
                           send (peer_send.c, send_packet) */
  uint64_t reack_at_ns; /* when the next copy goes (0: none) */
  pn__partial *partials;
  uint64_t reassembly;
  /* Closing. */
  uint32_t reason;
  bool reason_remote;
  uint32_t channels_open;
  uint64_t unqueued; /* acknowledged bytes still in queued_bytes until the
                        run's end */
  /* Read by any thread. */
  _Atomic uint64_t queued_bytes;
  _Atomic uint32_t want_writable; /* a send got PN_EAGAIN: owe WRITABLE */
  /* Set once the peer takes no more sends (a disconnect asked for, or the
   * connection ending): they get PN_ECLOSED. Never cleared but by a
   * disconnect request that could not be sent (out of memory). */
  _Atomic uint32_t sends_closed;
  _Atomic uint64_t st_srtt, st_rttvar, st_min_rtt, st_rto;
  _Atomic uint64_t st_dg_out, st_bytes_out, st_dg_in, st_bytes_in;
  _Atomic uint64_t st_lost, st_acked_dg, st_retransmits, st_acks_only;
  _Atomic uint64_t st_msgs_out, st_msgs_in, st_dups, st_bad, st_stale;
  _Atomic uint64_t st_raw_out, st_comp_out, st_in_flight, st_reassembly;
  _Atomic uint64_t st_unproven, st_challenges, st_migrations;
  _Atomic uint64_t st_held, st_held_max, st_window_drops, st_send_window;
  /* In datagrams; st_ssthresh 0 until the first cut. */
  _Atomic uint64_t st_cwnd, st_ssthresh;
  pn__stat_obj stat; /* in the runtime's registry of objects */
  uint32_t nchannels;
  pn_channel channels[];
};

static inline pn_peer_state pn__peer_state(const pn_peer *p) {
  return (pn_peer_state)atomic_load_explicit(&p->state, memory_order_relaxed);
}

static inline void pn__peer_set_state(pn_peer *p, pn_peer_state s) {
  atomic_store_explicit(&p->state, (uint32_t)s, memory_order_relaxed);
}

/* --- peer.c: lifetime, events, closing ----------------------------------- */

/* Creates a peer and its actors on the host's worker. Client peers come
 * from pn_host_connect() (any thread); server peers from the host actor.
 * On PN_OK the returned peer holds one reference for the caller.
 * Errors: PN_ENOMEM, those of pn_spawn(). */
pn_err pn__peer_create(pn_host *h, const pn_peer_config *cfg, bool is_client,
                       pn_peer **out);

/* Host actor: a datagram for peer p (routed by connection id). */
void pn__peer_route(pn_peer *p, uint32_t socket, const pn_addr *from,
                    const uint8_t *data, size_t len);

/* What a PN__P_DISCONNECT message carries. */
typedef struct pn__disconnect_request {
  uint32_t reason;
  bool drain;          /* pn_peer_disconnect_later() */
  uint64_t timeout_us; /* drain: the longest wait before the goodbye */
} pn__disconnect_request;

/* Asks p's actor to close (any thread). Errors: PN_ENOMEM (the request
 * could not be sent; the caller may try again). */
pn_err pn__peer_close_request(pn_peer *p, uint32_t reason);

/* Peer actor: ends the connection: nothing more is sent or delivered; the
 * owner hears of it once every channel has delivered what it had. */
void pn__peer_close(pn_peer *p, uint32_t reason, bool remote);

/* Peer actor: an event without details for the owner (dropped when out of
 * memory). */
void pn__peer_emit(pn_peer *p, uint32_t type);

/* Peer actor: PN_MSG_PEER_ACKED or LOST about om, when p reports them. */
void pn__peer_emit_message(pn_peer *p, uint32_t type, const pn__outmsg *om,
                           uint64_t now);

/* Peer actor, during the handshake: the remote's long-term public key
 * (pn_peer_remote_key), stored under the registry lock. */
void pn__peer_set_remote_key(pn_peer *p, const uint8_t key[PN_KEY_BYTES]);

/* The keepalive and idle deadlines' rounding (see next_deadline). */
uint64_t pn__peer_keepalive_slot(const pn_peer *p);

/* Peer statistics, read from any thread (relaxed loads of single-writer
 * counters: consistent per counter). */
void pn__peer_stats_fill(const pn_peer *p, pn_peer_stats *out);

/* Snapshots (observe/): peers are registered under this class; a peer's
 * row and its nchannels channel rows. Under the registry lock. */
extern const pn__stat_class pn__peer_class;
void pn__peer_info_fill(const pn_peer *p, pn_peer_info *o,
                        pn_channel_info *channels);

/* --- path.c: source addresses ------------------------------------------- */

/* Peer actor: whether datagrams from `from` are acted on (the handshake's
 * address or one proven since). */
bool pn__path_proven(const pn_peer *p, const pn_addr *from);

/* Peer actor: a new datagram asks to echo `token`; the answer goes out
 * through host socket `socket`, where it came in. */
void pn__path_challenged(pn_peer *p, uint32_t socket, uint64_t token);

/* Peer actor: an authentic, new datagram pk arrived from `from` (through
 * host socket `socket`), an address not proven. Returns true when pk
 * proves it (it echoes the token challenged there): the address is now
 * the one p sends to, and the caller acts on pk as on any. Otherwise
 * nothing of pk but its challenge is acted on (it is not even marked
 * received, so the same datagram from the proven address still counts),
 * and `from` is challenged (at most once per RTO). */
bool pn__path_check(pn_peer *p, pn__scratch *sc, uint32_t socket,
                    const pn_addr *from, const Peernet__Wire__V1__Packet *pk);

/* Peer actor: an authentic datagram newer than any before came from
 * `from`, a proven address other than the one p sends to: p sends there
 * from now on (the proven set keeps the old one). */
void pn__path_follow(pn_peer *p, const pn_addr *from);

/* --- peer_send.c --------------------------------------------------------- */

/* Peer's worker: queues om (sequenced by its channel) for sending and
 * makes sure the peer runs to send it. Takes its own reference. */
void pn__peer_enqueue(pn_peer *p, pn__outmsg *om);

/* Sends a sealed datagram through socket `socket` of the host, counting
 * it. */
void pn__peer_send_on(pn_peer *p, uint32_t socket, const uint8_t *data,
                      size_t len);

/* Coalesces resent and new frames into datagrams up to the MTU while the
 * window allows, and sends what acknowledgements, pings, disconnects and
 * path responses are owed. */
void pn__peer_flush(pn_peer *p, pn__scratch *sc);

/* Sends a DATA datagram carrying only a path challenge (and the current
 * acknowledgements) to `to` through host socket `socket`; not recorded as
 * in flight (path.c sends it again while it waits). */
void pn__peer_send_challenge(pn_peer *p, pn__scratch *sc, uint32_t socket,
                             const pn_addr *to, uint64_t token);

/* At a run's end: gives back acknowledged bytes and sends
 * PN_MSG_PEER_WRITABLE when owed. */
void pn__peer_check_writable(pn_peer *p);

/* An acknowledgement from the peer: resolves datagrams, reports messages,
 * and closes a DISCONNECTING peer whose goodbye was acknowledged. */
void pn__peer_on_acks(pn_peer *p, uint64_t ack, const uint64_t bits[2],
                      uint32_t delay_us, uint64_t now);

/* The retransmission timer's part of a tick. */
void pn__peer_on_rto(pn_peer *p, uint64_t now);

/* The timer's part for acknowledgements repeated (see send_packet): owes
 * another ack-only datagram once reack_at_ns has passed. */
void pn__peer_on_reack(pn_peer *p, uint64_t now);

/* Copies of an acknowledgement that went alone: see send_packet. */
#define PN__REACKS 2u

/* Drops everything queued or in flight (closing): messages are released
 * without events. */
void pn__peer_drop_sends(pn_peer *p);

/* When the pacing bucket is back at zero (0: not waiting), and the bucket
 * size. */
uint64_t pn__peer_pace_at(const pn_peer *p);
uint64_t pn__peer_pace_burst(const pn_peer *p);

/* --- peer_recv.c --------------------------------------------------------- */

/* A PN__P_RECV message: a datagram the host routed here. */
void pn__peer_on_recv(pn_peer *p, pn__scratch *sc, const pn_msg *msg);

/* Drops partial unreliable messages nobody will complete: older than
 * `newest` on `channel` (UNRELIABLE), or silent for too long. */
void pn__peer_expire_partials(pn_peer *p, uint64_t now, uint32_t channel,
                              uint64_t newest);

/* Drops every partial message (closing). */
void pn__peer_drop_partials(pn_peer *p);

/* A partial message unheard of for this long is dropped. */
#define PN__PARTIAL_EXPIRY_NS (5ull * 1000000000u)

/* What a PN__P_RECV message carries before the datagram. */
typedef struct pn__recv_header {
  uint32_t socket;
  pn_addr from;
} pn__recv_header;

#endif
