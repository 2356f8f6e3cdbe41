/* PeerNet connections: hosts, peers, channels and packets.
 *
 * A host owns one or more UDP sockets (see socket.h), accepts connections
 * when it has an accept owner, and connects to other hosts. Each connection
 * is a peer; each peer carries the channels agreed when it connected, each
 * with a delivery kind. The host, every peer and every channel is an actor,
 * all homed on the host's worker. Applications learn of everything as
 * messages to their own actors: the peer's owner receives
 * PN_MSG_PEER_CONNECTED, PN_MSG_PEER_PACKET, PN_MSG_PEER_ACKED,
 * PN_MSG_PEER_LOST and finally PN_MSG_PEER_DISCONNECTED; read them with
 * pn_msg_peer_event().
 *
 * Threading: every function may be called from any thread, including
 * handlers, and never blocks (pn_host_open() blocks while it resolves a
 * host name, as pn_socket_open() does).
 *
 * Ownership: pn_host_open() and pn_host_connect() return handles the caller
 * gives back with pn_host_close() and pn_peer_release(). A peer named in an
 * event is borrowed: it stays valid while the handler runs and, for the
 * peer's owner, until the handler of its PN_MSG_PEER_DISCONNECTED returns
 * (the last event of a peer; for an owner that is an inbox, until that
 * message is released). Keep it longer with pn_peer_hold(). Packets
 * are reference counted (pn_packet_hold/pn_packet_release). A received
 * packet kept past its event's handler lives in the runtime's memory pools:
 * release it before pn_runtime_destroy().
 */
#ifndef PEERNET_NET_H
#define PEERNET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/error.h"
#include "peernet/export.h"
#include "peernet/runtime.h"
#include "peernet/socket.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_host pn_host;
typedef struct pn_peer pn_peer;
typedef struct pn_channel pn_channel;
typedef struct pn_packet pn_packet;

/* protobuf-c's types, named here so this header needs no protobuf-c
 * include; include <protobuf-c/protobuf-c.h> to use the packet helpers. */
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;
struct ProtobufCAllocator;

/* --- packets -------------------------------------------------------------
 * An immutable, reference-counted payload. One packet can be sent on any
 * number of channels and peers without being copied. */

/* Creates a packet holding a copy of len bytes (len may be 0; data may be
 * NULL then). On PN_OK *out holds one reference. Errors: PN_EINVAL (NULL
 * out, NULL data with len > 0), PN_EMSGSIZE (len > PN_PACKET_MAX),
 * PN_ENOMEM. Any thread. */
PN_API pn_err pn_packet_create(const void *data, size_t len, pn_packet **out);

/* Creates a packet holding the packed form of a protobuf-c message.
 * Errors: as pn_packet_create(). Any thread. */
PN_API pn_err pn_packet_from_protobuf(const struct ProtobufCMessage *msg,
                                      pn_packet **out);

/* Unpacks a packet's bytes as a protobuf-c message of the given type. On
 * PN_OK *out must be freed with protobuf_c_message_free_unpacked(*out,
 * allocator). allocator may be NULL (malloc). Errors: PN_EINVAL (NULL
 * packet, descriptor or out; the bytes are not a valid message of that
 * type). Any thread. */
PN_API pn_err pn_packet_unpack(const pn_packet *pkt,
                               const struct ProtobufCMessageDescriptor *desc,
                               struct ProtobufCAllocator *allocator,
                               struct ProtobufCMessage **out);

/* Another reference / give one back (NULL is ignored). Any thread; a
 * packet that came from the network must be given back before its
 * runtime is destroyed. */
PN_API void pn_packet_hold(pn_packet *pkt);
PN_API void pn_packet_release(pn_packet *pkt);

/* The bytes (valid while a reference is held; never modify them). */
PN_API const void *pn_packet_data(const pn_packet *pkt);
PN_API size_t pn_packet_len(const pn_packet *pkt);

/* Largest packet: 64 MiB (a host's max_message is usually smaller). */
#define PN_PACKET_MAX (64u << 20)

/* Trains a zstd dictionary for pn_host_config.zstd_dict from sample
 * payloads (for example a few thousand recorded messages): small datagrams
 * barely compress without one. Both ends must use the same dictionary.
 * dict receives at most *dict_len bytes (16 KiB to 112 KiB is typical);
 * on PN_OK *dict_len is the dictionary's size. Errors, with *dict_len
 * unchanged (dict may have been written): PN_EINVAL (NULL, no samples, a zero
 * capacity), PN_ERANGE (too few or too uniform samples to train from: zstd
 * wants roughly 100 times the dictionary size in samples), PN_ENOMEM. Any
 * thread; takes CPU time in proportion to the samples (milliseconds for a few
 * MB). */
PN_API pn_err pn_zstd_train_dictionary(const void *const *samples,
                                       const size_t *sample_lens, size_t count,
                                       void *dict, size_t *dict_len);

/* --- channels ------------------------------------------------------------ */

typedef enum pn_channel_kind {
  /* Not resent; the receiver drops a message older than the newest it
   * delivered (sequenced). Lost messages are reported to the sender. */
  PN_CHANNEL_UNRELIABLE = 0,
  /* Resent until acknowledged; the receiver delivers only messages newer
   * than the newest it delivered (the newest state wins). */
  PN_CHANNEL_RELIABLE = 1,
  /* Resent until acknowledged; delivered exactly once, in send order. */
  PN_CHANNEL_ORDERED = 2,
  /* Not resent; delivered at most once, in arrival order. */
  PN_CHANNEL_UNSEQUENCED = 3,
  /* Resent until acknowledged; delivered exactly once, in arrival order. */
  PN_CHANNEL_RELIABLE_UNORDERED = 4,
} pn_channel_kind;

#define PN_CHANNEL_KINDS 5
#define PN_MAX_CHANNELS 64

/* Name of a kind ("unreliable", "reliable", "ordered", "unsequenced",
 * "reliable-unordered"), or "?" */
PN_API const char *pn_channel_kind_name(pn_channel_kind kind);

/* Parses one of the names above. Errors: PN_EINVAL. */
PN_API pn_err pn_channel_kind_parse(const char *name, pn_channel_kind *out);

/* Sends a copy of len bytes on the channel. On PN_OK, *msg_id_out (if not
 * NULL) receives the message's id, the one PN_MSG_PEER_ACKED and
 * PN_MSG_PEER_LOST carry (ids start at 1 and grow per channel).
 * Messages larger than the MTU are fragmented. Errors, with nothing sent:
 * PN_EINVAL (NULL channel, NULL data with len > 0), PN_EMSGSIZE (len above
 * the host's max_message), PN_ECLOSED (peer disconnected or disconnecting,
 * or pn_peer_disconnect() / pn_peer_disconnect_later() was called),
 * PN_EAGAIN (the peer already holds max_queued bytes or more not yet
 * acknowledged: back off; the owner gets PN_MSG_PEER_WRITABLE when it may
 * go on), PN_ENOMEM. A message is taken whenever less than max_queued is
 * queued, so one larger than max_queued (up to max_message) is taken too;
 * the queue then holds more than max_queued until it drains. Messages sent on a
 * channel from one thread leave in that order. Called from an actor on the
 * host's worker, the message goes straight onto the peer's queue (no hop
 * through the channel actor). Any thread, never blocks. */
PN_API pn_err pn_channel_send(pn_channel *ch, const void *data, size_t len,
                              uint64_t *msg_id_out);

/* As pn_channel_send(), sending a packet without copying it (the channel
 * takes its own reference; the caller keeps its own). */
PN_API pn_err pn_channel_send_packet(pn_channel *ch, pn_packet *pkt,
                                     uint64_t *msg_id_out);

/* The channel's index on its peer and its kind. */
PN_API uint32_t pn_channel_index(const pn_channel *ch);
PN_API pn_channel_kind pn_channel_kind_of(const pn_channel *ch);

/* --- events -------------------------------------------------------------- */

#define PN_MSG_PEER_CONNECTED 0xFFFFFF10u
#define PN_MSG_PEER_DISCONNECTED 0xFFFFFF11u
#define PN_MSG_PEER_PACKET 0xFFFFFF12u
/* Every message sent gets exactly one of these two while the connection
 * lasts (messages still unresolved when it closes get neither), unless the
 * peer was configured with no_delivery_events: ACKED once
 * the remote peer acknowledged all of it (reliable kinds always end here); LOST
 * when a datagram carrying part of an unreliable or unsequenced message was
 * declared lost (three later datagrams acknowledged, or the RTO passed).
 * A heavily reordered datagram can arrive after being declared lost, so
 * LOST means "not known to have arrived". */
#define PN_MSG_PEER_ACKED 0xFFFFFF13u
#define PN_MSG_PEER_LOST 0xFFFFFF14u
/* After pn_channel_send() returned PN_EAGAIN: the peer's unacknowledged
 * bytes fell to half of max_queued, so the next send is taken (of any
 * size, unless other threads filled the queue first). Sent once per
 * PN_EAGAIN episode (ev.channel is 0). Also sent, before
 * PN_MSG_PEER_DISCONNECTED, when the peer stops taking sends (a
 * disconnect) while a sender waits for it: the retry then returns
 * PN_ECLOSED, so a sender that waits for this event never waits
 * forever. */
#define PN_MSG_PEER_WRITABLE 0xFFFFFF15u

/* Disconnect reasons the library uses; applications pass their own values
 * below PN_REASON_LIBRARY to pn_peer_disconnect(). */
#define PN_REASON_LIBRARY 0xFFFFFF00u
#define PN_REASON_TIMEOUT 0xFFFFFF01u         /* nothing heard for too long */
#define PN_REASON_CONNECT_TIMEOUT 0xFFFFFF02u /* handshake never finished */
#define PN_REASON_FULL 0xFFFFFF03u            /* server at max_peers */
#define PN_REASON_HOST_CLOSED 0xFFFFFF04u     /* pn_host_close() */
#define PN_REASON_VERSION 0xFFFFFF05u         /* protocol versions differ */
#define PN_REASON_REFUSED 0xFFFFFF06u    /* accept hook said no (default) */
#define PN_REASON_DICTIONARY 0xFFFFFF07u /* zstd dictionaries differ */
#define PN_REASON_SERVER_KEY 0xFFFFFF08u /* not the pinned server key */
/* Keys did not agree: different pre-shared keys, or a handshake changed
 * on the way. */
#define PN_REASON_AUTH 0xFFFFFF09u
/* Nothing sent was acknowledged for ack_timeout_us. */
#define PN_REASON_ACK_TIMEOUT 0xFFFFFF0Au
/* The server holds max_peers_per_address connections from this address. */
#define PN_REASON_ADDRESS_LIMIT 0xFFFFFF0Bu
/* A message piece was sent retransmit_limit + 1 times and never
 * acknowledged. */
#define PN_REASON_RETRANSMIT_LIMIT 0xFFFFFF0Cu

/* Name of a library reason, or "application" for smaller values. */
PN_API const char *pn_reason_name(uint32_t reason);

typedef struct pn_peer_event {
  pn_peer *peer; /* borrowed, see the ownership note at the top */
  uint64_t peer_id;
  void *user;           /* the peer's user pointer */
  pn_addr addr;         /* the remote address */
  uint32_t channel;     /* PACKET, ACKED, LOST: channel index */
  pn_channel_kind kind; /* PACKET, ACKED, LOST: its kind */
  pn_channel *ch;       /* PACKET, ACKED, LOST: the channel (borrowed) */
  uint64_t msg_id;      /* PACKET: the message's sequence number on its
                           channel, from 1 in the order the sender's
                           channel took them (the sender's id when one
                           thread sends on the channel); ACKED, LOST: the
                           id pn_channel_send() gave */
  uint64_t rtt_us;      /* ACKED: first send to acknowledgement */
  pn_packet *packet;    /* PACKET: borrowed; hold it to keep it */
  const void *data;     /* PACKET: pn_packet_data(packet) */
  size_t len;           /* PACKET: pn_packet_len(packet) */
  uint32_t reason;      /* DISCONNECTED: why */
  bool remote;          /* DISCONNECTED: the remote side gave the reason */
} pn_peer_event;

/* Reads one of the PN_MSG_PEER_* messages. Errors: PN_EINVAL (NULL, other
 * type). Pure; from the handler that received the message, or while a
 * message taken from an inbox is held (peernet/inbox.h). */
PN_API pn_err pn_msg_peer_event(const pn_msg *msg, pn_peer_event *out);

/* --- hosts --------------------------------------------------------------- */

/* The most bytes of connect data a client may send (pn_peer_config). */
#define PN_CONNECT_DATA_MAX 512u

/* What the accept hook learns of a client whose handshake just proved its
 * address. Everything is borrowed for the call only. */
typedef struct pn_accept_info {
  pn_addr from;                 /* the client's address */
  uint32_t channels;            /* its channel count */
  const pn_channel_kind *kinds; /* and their kinds */
  const uint8_t *client_key;    /* PN_KEY_BYTES: the client's long-term
                                   public key, proven (the client holds its
                                   secret half); NULL when it presented
                                   none */
  const void *data;             /* the client's connect data (decrypted:
                                   only this server could read it); NULL
                                   when none */
  size_t data_len;
} pn_accept_info;

/* Decides whether to accept a connection whose handshake just proved its
 * address (and its key, when it presented one). Returns 0 to accept or a
 * reason below PN_REASON_LIBRARY (sent to the client) to refuse. Runs on
 * the host's worker; must not block. */
typedef uint32_t (*pn_accept_fn)(void *ctx, const pn_accept_info *info);

typedef struct pn_host_config {
  size_t size;                     /* sizeof(pn_host_config) */
  const pn_socket_config *sockets; /* socket_count sockets to open; each
                                      one's owner and home_worker are
                                      ignored (the host's are used) */
  uint32_t socket_count;           /* 1..32 */
  pn_actor *accept_owner;          /* owner of accepted peers; NULL: this
                                      host only connects out */
  pn_accept_fn accept;             /* NULL accepts every proven client */
  void *accept_ctx;
  int32_t home_worker;         /* -1 picks one */
  uint32_t max_peers;          /* 0 = 1024 (connected and connecting) */
  uint32_t mtu;                /* largest datagram; 0 = 1200 */
  uint32_t max_message;        /* 0 = 4 MiB, at most PN_PACKET_MAX */
  uint32_t max_reassembly;     /* per peer: bytes of partial (fragmented)
                                  messages, a bound within
                                  max_receive_buffer; 0 = the same as
                                  max_receive_buffer */
  uint32_t max_queued;         /* per peer bytes sent but not yet
                                  acknowledged before pn_channel_send()
                                  returns PN_EAGAIN; 0 = 512 KiB. A message
                                  is taken while less than this is queued,
                                  whatever its size (up to max_message) */
  uint32_t window;             /* datagrams in flight; 0 = 1024 */
  uint64_t connect_timeout_us; /* 0 = 5 s */
  uint64_t connect_retry_us;   /* 0 = 250 ms */
  uint64_t keepalive_us;       /* longest silence before a ping (each
                                  peer pings after 3/4 to all of it);
                                  0 = 1 s */
  uint64_t idle_timeout_us;    /* 0 = 10 s */
  uint64_t ack_timeout_us;     /* a peer that acknowledges nothing sent for
                                  this long is disconnected
                                  (PN_REASON_ACK_TIMEOUT), even if it keeps
                                  pinging; 0 = half of idle_timeout_us */
  uint64_t rto_min_us;         /* 0 = 10 ms */
  uint64_t rto_max_us;         /* 0 = 2 s */
  uint64_t rto_initial_us;     /* before any sample; 0 = 200 ms */
  bool no_compression;         /* never compress */
  const void *zstd_dict;       /* optional dictionary (copied), the
                                  same on both sides */
  size_t zstd_dict_len;
  uint64_t send_rate;             /* per peer: most bytes per second it sends
                                     (datagrams paced to it, like ENet's
                                     outgoing bandwidth); 0 = unlimited */
  bool no_delivery_events;        /* peers it accepts send their owner no
                                     PN_MSG_PEER_ACKED / LOST (cheaper when
                                     nobody needs them) */
  const uint8_t *secret_key;      /* PN_KEY_BYTES: the host's long-term X25519
                                     secret key (copied), whose public half
                                     clients may pin (pn_host_public_key,
                                     pn_key_pair); NULL: a random key made at
                                     open, so nothing is pinned */
  uint32_t max_peers_per_address; /* connections accepted from one IP
                                     address (any port); more are refused
                                     (PN_REASON_ADDRESS_LIMIT); 0 = no
                                     limit besides max_peers */
  uint32_t max_handshakes_per_s;  /* handshake datagrams (ConnectRequest and
                                     ConnectResponse, two per connection)
                                     answered per second, bursts of a tenth
                                     of it; more are dropped unanswered and
                                     counted (handshake_limited), after only
                                     the checks of length, version, type and
                                     tag, before any decoding, cookie, key
                                     exchange or reply; past twice the
                                     limit, the kernel sheds a random share
                                     of ConnectRequests before the host
                                     reads them (handshake_admit_ppm);
                                     0 = 20,000 (10,000 connections a
                                     second), UINT32_MAX = no limit (and no
                                     shedding) */
  const uint8_t *psk;             /* PN_KEY_BYTES: a pre-shared key (copied)
                                     mixed into every connection's keys, the
                                     same on both sides; a side with another
                                     or none cannot connect (PN_REASON_AUTH) */
  uint32_t max_receive_buffer;    /* per peer: the most bytes it makes this
                                     host hold before they can be delivered
                                     (ORDERED messages waiting for an
                                     earlier one, partial fragmented
                                     messages). The peer is told how much is
                                     free (its window, proto/README.md) and
                                     sends no more; datagrams that would go
                                     past it are dropped unacknowledged and
                                     counted (window_drops). Like a QUIC
                                     connection's flow-control limit, or a
                                     TCP receive buffer. 0 = 2 x max_message
                                     (8 MiB by default); at least
                                     max_message and 64 KiB */
  uint32_t retransmit_limit;      /* times one piece of a message is sent
                                     again without being acknowledged
                                     before the peer is disconnected
                                     (PN_REASON_RETRANSMIT_LIMIT), however
                                     often other datagrams are
                                     acknowledged; with the RTO doubling
                                     each time, 16 lasts many seconds
                                     (ENet gives up after 32 backoffs and
                                     5 s); 0 = 16 */
} pn_host_config;

#define PN_HOST_CONFIG_INIT                                                    \
  { .size = sizeof(pn_host_config), .home_worker = -1 }

/* Bytes of an X25519 key (public, secret) and of a pre-shared key. */
#define PN_KEY_BYTES 32u

/* Makes a long-term key pair for pn_host_config.secret_key: the secret
 * half (keep it private) and the public half (clients pin it in
 * pn_peer_config.server_key). Errors: PN_EINVAL (NULL). Any thread. */
PN_API pn_err pn_key_pair(uint8_t public_out[PN_KEY_BYTES],
                          uint8_t secret_out[PN_KEY_BYTES]);

/* The public half of a secret key. Errors: PN_EINVAL (NULL). Any thread. */
PN_API pn_err pn_key_public(const uint8_t secret[PN_KEY_BYTES],
                            uint8_t public_out[PN_KEY_BYTES]);

/* Bytes of a key's text form (base64, as WireGuard writes keys), with its
 * terminating NUL. */
#define PN_KEY_TEXT_BYTES 45u

/* A key as text, for files and command lines. Errors: PN_EINVAL (NULL).
 * Pure; any thread. */
PN_API pn_err pn_key_to_text(const uint8_t key[PN_KEY_BYTES],
                             char text_out[PN_KEY_TEXT_BYTES]);

/* Reads a key's text form (trailing white space allowed). On error
 * key_out is untouched. Errors: PN_EINVAL (NULL, not base64 of exactly
 * PN_KEY_BYTES bytes). Pure; any thread. */
PN_API pn_err pn_key_from_text(const char *text, uint8_t key_out[PN_KEY_BYTES]);

/* Reads a key file as peernet-keygen writes it (one line of text, as
 * pn_key_from_text reads). On error key_out is untouched. Errors:
 * PN_EINVAL (NULL, not a key), PN_ERANGE (larger than a key file can be),
 * the OS error of opening or reading it. Any thread; blocks on the file. */
PN_API pn_err pn_key_load(const char *path, uint8_t key_out[PN_KEY_BYTES]);

/* The remote side's long-term public key, once connected: on a client,
 * the server's; on a server, the client's when it presented one (proven).
 * Errors: PN_EINVAL (NULL), PN_ENOENT (not connected yet, or a client
 * that presented no key). Any thread; does not block. */
PN_API pn_err pn_peer_remote_key(const pn_peer *peer,
                                 uint8_t public_out[PN_KEY_BYTES]);

/* The host's long-term public key. Errors: PN_EINVAL. Any thread. */
PN_API pn_err pn_host_public_key(const pn_host *host,
                                 uint8_t public_out[PN_KEY_BYTES]);

/* The longest time a host config takes (a day, in microseconds). */
#define PN_HOST_TIME_MAX_US (86400ull * 1000000u)

/* Opens a host and its sockets. On PN_OK *host_out owns the handle.
 * Errors, with nothing left open: PN_EINVAL (NULL, small size, no sockets
 * or more than 32, mtu below 576 or above a socket's max_datagram,
 * max_message above PN_PACKET_MAX, max_receive_buffer below max_message or
 * 64 KiB, home worker out of range, a time above
 * PN_HOST_TIME_MAX_US, rto_min_us above rto_max_us, bad socket config),
 * PN_ECLOSED, PN_ENOMEM, and every pn_socket_open() error.
 * Blocks only to resolve a socket's host name. */
PN_API pn_err pn_host_open(pn_runtime *rt, const pn_host_config *cfg,
                           pn_host **host_out);

/* The bound address of socket `index`. Errors: PN_EINVAL (NULL, index out
 * of range). Any thread. */
PN_API pn_err pn_host_local_addr(const pn_host *host, uint32_t index,
                                 pn_addr *addr_out);

/* Replaces one direction's link conditioner of socket `index` while the
 * host runs, as pn_socket_set_conditioner() does for a plain socket: the
 * way to impair (or cut: loss = 1.0) a live host's traffic in a test or a
 * debug build. The host config's pn_socket_config conditioners set the
 * initial ones. Errors: PN_EINVAL (NULL, index out of range, bad
 * direction or settings), PN_ECLOSED (host closing), PN_ENOMEM. Any
 * thread, never blocks; takes effect when the socket's actor handles it,
 * in order with the host's sends from the same thread. */
PN_API pn_err pn_host_set_conditioner(pn_host *host, uint32_t index,
                                      pn_direction dir,
                                      const pn_link_conditioner *cfg);

/* Disconnects every peer (reason PN_REASON_HOST_CLOSED, sent to the remote
 * sides), closes the sockets and gives back the handle (NULL is ignored).
 * Owners get PN_MSG_PEER_DISCONNECTED for each peer. Any thread. */
PN_API void pn_host_close(pn_host *host);

typedef struct pn_host_stats {
  uint64_t datagrams_in;
  uint64_t bad_header;         /* too short, unknown version or type */
  uint64_t unknown_connection; /* data for no connection: dropped */
  uint64_t handshake_dropped;  /* bad tag, malformed, unpadded, stale or
                                  forged cookie, not listening */
  uint64_t challenges_sent;
  uint64_t accepted;
  uint64_t rejected;
  uint64_t peers;             /* current */
  uint64_t handshake_limited; /* over max_handshakes_per_s: dropped */
  /* Of every million connect requests, how many the kernel lets through
   * to the host now (1,000,000: all). Under a flood past twice
   * max_handshakes_per_s the sockets' filters drop a random share before
   * the host reads them (counted in the sockets' kernel_drops). */
  uint64_t handshake_admit_ppm;
} pn_host_stats;

/* Counters of the host. Errors: PN_EINVAL. Any thread. */
PN_API pn_err pn_host_stats_get(const pn_host *host, pn_host_stats *out);

/* The host's peers that are not disconnected (accepted ones and its own
 * clients, connecting or connected), up to cap of them into out, each
 * with a reference the caller gives back with pn_peer_release();
 * *count_out: how many there are in all, which may exceed cap (call again
 * with more room; peers come and go meanwhile). cap 0 only counts. Errors:
 * PN_EINVAL (NULL host or count_out, out NULL with cap > 0), with nothing
 * held. Any thread; takes the runtime's registry lock for a walk of its
 * objects; never blocks otherwise. */
PN_API pn_err pn_host_peers(pn_host *host, pn_peer **out, size_t cap,
                            size_t *count_out);

/* Sends pkt on channel `channel` of every connected peer of the host for
 * which filter(peer, ctx) is true (NULL: every one), without copying it:
 * each send takes its own reference (pn_channel_send_packet), the caller
 * keeps its own. Peers without that channel, and sends refused (PN_EAGAIN
 * over max_queued, a peer closing), are skipped; *sent_out (NULL: not
 * wanted) counts the peers it went to. filter runs on the calling thread,
 * with no lock held. Errors: PN_EINVAL (NULL host or pkt, channel at or
 * above PN_MAX_CHANNELS), PN_ENOMEM (nothing sent). Any thread, never
 * blocks (the registry lock briefly). */
PN_API pn_err pn_host_broadcast(pn_host *host, uint32_t channel, pn_packet *pkt,
                                bool (*filter)(pn_peer *peer, void *ctx),
                                void *ctx, size_t *sent_out);

/* --- peers --------------------------------------------------------------- */

typedef struct pn_peer_config {
  size_t size;                  /* sizeof(pn_peer_config) */
  pn_addr remote;               /* where to connect */
  pn_actor *owner;              /* receives the peer's events; required */
  uint32_t channel_count;       /* 1..PN_MAX_CHANNELS; 0 = 1 */
  const pn_channel_kind *kinds; /* channel_count kinds; NULL = all
                                   PN_CHANNEL_ORDERED */
  uint32_t sockets_mask;        /* bit i: send through the host's socket i
                                   (round robin, whole flushes of at least
                                   64 datagrams, over the sockets the
                                   remote has proven: the first one at
                                   once, the others after a challenge,
                                   about a round trip; replies go where
                                   the newest datagram came from). Each
                                   socket has its own loss detection, RTT,
                                   RTO and congestion window (coupled as
                                   RFC 6356's), and a flush whose socket's
                                   window is full takes another's: a
                                   slower or lossier socket carries less.
                                   The sockets' datagrams can cross on the
                                   way: sequenced channels (RELIABLE,
                                   UNRELIABLE) then drop the older
                                   messages as stale (up to 16% of
                                   UNRELIABLE ones with equal sockets in
                                   tests/net/test_multisocket.c).
                                   0 = socket 0 */
  void *user;                   /* copied into every event */
  uint64_t send_rate;           /* bytes per second; 0 = the host's */
  bool no_delivery_events;      /* no PN_MSG_PEER_ACKED / LOST for the
                                   owner (cheaper when nobody needs them) */
  const uint8_t *server_key;    /* PN_KEY_BYTES: the server's long-term
                                   public key to insist on (copied); a
                                   server with another cannot connect
                                   (PN_REASON_SERVER_KEY), nor can anyone
                                   in the middle (PN_REASON_AUTH). NULL:
                                   any key (encrypted, but an on-path
                                   attacker could stand in the middle) */
  const uint8_t *client_key;    /* PN_KEY_BYTES: this client's long-term
                                   X25519 secret key (copied; pn_key_pair,
                                   pn_key_load): the server's accept hook
                                   sees the public half, proven. NULL:
                                   the client stays anonymous */
  const void *connect_data;     /* bytes for the server's accept hook (a
                                   login token, say; copied), encrypted to
                                   the server's key: a client that pins
                                   server_key knows only that server reads
                                   them. NULL: none */
  size_t connect_data_len;      /* at most PN_CONNECT_DATA_MAX */
  uint64_t idle_timeout_us;     /* this peer's, at most PN_HOST_TIME_MAX_US;
                                   0 = the host's (and its ack timeout is
                                   half of it unless the host sets one) */
  uint64_t keepalive_us;        /* this peer's ping interval; 0 = the
                                   host's */
} pn_peer_config;

#define PN_PEER_CONFIG_INIT                                                    \
  { .size = sizeof(pn_peer_config) }

/* Starts connecting. On PN_OK *peer_out owns a handle (give it back with
 * pn_peer_release()); channels can be sent on at once (messages wait for
 * the connection). The owner receives PN_MSG_PEER_CONNECTED, or
 * PN_MSG_PEER_DISCONNECTED with PN_REASON_CONNECT_TIMEOUT, the server's
 * refusal reason, PN_REASON_SERVER_KEY or PN_REASON_AUTH. Errors, with nothing
 * created: PN_EINVAL (NULL, small size, no owner, bad kinds or channel count,
 * unset or unreachable address family, empty socket mask), PN_EAGAIN (max_peers
 * reached), PN_ECLOSED (host closing), PN_ENOMEM. Any thread. */
PN_API pn_err pn_host_connect(pn_host *host, const pn_peer_config *cfg,
                              pn_peer **peer_out);

/* Closes the connection, telling the remote side `reason` (it sees
 * remote = true; the local owner sees remote = false). From the call on,
 * sends on the peer's channels return PN_ECLOSED. Messages not yet
 * acknowledged are dropped (they get neither ACKED nor LOST). Errors:
 * PN_EINVAL (NULL, reason at or above PN_REASON_LIBRARY), PN_ECLOSED
 * (already disconnected, or disconnecting: a second call, or after
 * pn_peer_disconnect_later()), PN_ENOMEM (the request could not be made:
 * the peer goes on; try again). The caller keeps its handle. Any thread,
 * never blocks. */
PN_API pn_err pn_peer_disconnect(pn_peer *peer, uint32_t reason);

/* Closes the connection once everything already sent is delivered (as
 * ENet's enet_peer_disconnect_later): from the call on, sends return
 * PN_ECLOSED; messages sent before it (on any thread, when the send
 * returned before this call) are still sent and resent until every one
 * is resolved (reliable ones acknowledged; each gets its ACKED or LOST as
 * usual), then the remote side is told `reason` as with
 * pn_peer_disconnect() and the owner gets PN_MSG_PEER_DISCONNECTED. The
 * peer stays PN_PEER_CONNECTED while it drains. If that takes longer than
 * timeout_us (a peer that stopped acknowledging, say), what is left is
 * dropped and the disconnect goes ahead then; the connection's own
 * timeouts (idle, ack, retransmit limit) still apply. A later
 * pn_peer_disconnect() is refused (PN_ECLOSED); pn_host_close() ends the
 * drain at once, with this reason. Errors: PN_EINVAL (NULL, reason at or
 * above PN_REASON_LIBRARY, timeout_us 0 or above PN_HOST_TIME_MAX_US),
 * PN_ECLOSED and PN_ENOMEM as pn_peer_disconnect(). The caller keeps its
 * handle. Any thread, never blocks (the drain happens on the host's
 * worker). */
PN_API pn_err pn_peer_disconnect_later(pn_peer *peer, uint32_t reason,
                                       uint64_t timeout_us);

/* Another reference / give one back (NULL is ignored). Any thread. */
PN_API void pn_peer_hold(pn_peer *peer);
PN_API void pn_peer_release(pn_peer *peer);

/* Channel `index` of the peer, borrowed for as long as the peer is, or
 * NULL when out of range. */
PN_API pn_channel *pn_peer_channel(pn_peer *peer, uint32_t index);
PN_API uint32_t pn_peer_channel_count(const pn_peer *peer);

/* Unique id (per process), the remote address and the user pointer. The
 * address is the one datagrams go to: the handshake's, then the newest one
 * the remote proved (a client whose NAT changed its port, say; see
 * proto/README.md). pn_peer_addr: errors PN_EINVAL (NULL); any thread,
 * takes a short lock. */
PN_API uint64_t pn_peer_id(const pn_peer *peer);
PN_API pn_err pn_peer_addr(const pn_peer *peer, pn_addr *out);

/* Sets the pointer copied into the peer's later events (an accepted peer's
 * starts NULL; a client's is its config's user), for the application's
 * per-connection state. What the caller wrote to the pointee before the
 * call is visible to the handler that reads it from an event. Errors:
 * PN_EINVAL (NULL peer). Any thread, never blocks. */
PN_API pn_err pn_peer_set_user(pn_peer *peer, void *user);

/* The peer's user pointer (NULL for NULL). Any thread, never blocks. */
PN_API void *pn_peer_user(const pn_peer *peer);

/* Gives the peer its own idle timeout and keepalive interval, replacing
 * the host's (0: the host's), as ENet's enet_peer_timeout and
 * enet_peer_ping_interval do; for accepted peers, whose config the host
 * made. Takes effect at the peer's next run; the ack timeout follows as in
 * pn_peer_config. Errors: PN_EINVAL (NULL, over PN_HOST_TIME_MAX_US),
 * PN_ECLOSED (disconnected), PN_ENOMEM. Any thread, never blocks. */
PN_API pn_err pn_peer_set_timeouts(pn_peer *peer, uint64_t idle_timeout_us,
                                   uint64_t keepalive_us);

/* pn_peer_state and pn_peer_stats are defined in peernet/stats.h. */

/* Counters of the peer. Errors: PN_EINVAL. Any thread, never blocks. */
PN_API pn_err pn_peer_stats_get(const pn_peer *peer, pn_peer_stats *out);

#ifdef __cplusplus
}
#endif

#endif
