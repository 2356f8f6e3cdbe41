/* PeerNet UDP sockets. A socket is an actor homed on one worker: the
 * kernel's readiness becomes messages to it, it reads datagrams in batches
 * (recvmmsg) and hands each one to its owner actor as a PN_MSG_DATAGRAM
 * message, and it sends what any thread gives it in batches (sendmmsg) when
 * its run ends. Each direction can pass through a link conditioner.
 *
 * Threading: every function may be called from any thread, including
 * handlers. pn_socket_open() blocks while it resolves a host name (numeric
 * addresses never block); the others never block.
 *
 * Ownership: pn_socket_open() returns a handle the caller gives back with
 * pn_socket_close(), which also closes the socket; the owner then receives
 * PN_MSG_SOCKET_CLOSED once no I/O can touch the socket any more. The
 * socket holds a reference to its owner until then.
 */
#ifndef PEERNET_SOCKET_H
#define PEERNET_SOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/conditioner.h"
#include "peernet/error.h"
#include "peernet/export.h"
#include "peernet/runtime.h"
#include "peernet/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pn_socket pn_socket;

/* An IPv4 or IPv6 address and port. Plain value type. */
typedef struct pn_addr {
  uint16_t family;   /* PN_AF_INET or PN_AF_INET6 (0: unset) */
  uint16_t port;     /* host byte order */
  uint32_t scope_id; /* IPv6 scope (link-local), else 0 */
  uint8_t ip[16];    /* network byte order; IPv4 uses the first 4 bytes */
} pn_addr;

#define PN_AF_INET 4
#define PN_AF_INET6 6

/* Longest text pn_addr_format() writes, with its terminating NUL. */
#define PN_ADDR_STRLEN 64

/* Parses a numeric "1.2.3.4:5000" or "[::1]:5000" (never resolves names).
 * Errors: PN_EINVAL (NULL or malformed text, port out of range); *out is
 * untouched on error. Pure; any thread. */
PN_API pn_err pn_addr_parse(const char *text, pn_addr *out);

/* Resolves a host name or numeric address and a port to an address
 * (getaddrinfo: /etc/hosts, DNS), preferring IPv4 when family is 0, else
 * only PN_AF_INET or PN_AF_INET6, for pn_peer_config.remote. Errors:
 * PN_EINVAL (NULL, empty name, bad family), PN_ENAMERESOLVE (no such
 * name or no address of that family), PN_ENOMEM; *out untouched on error.
 * Any thread; BLOCKS while the name is looked up (seconds on a slow
 * resolver): not from a handler. */
PN_API pn_err pn_addr_resolve(const char *name, uint16_t port, uint16_t family,
                              pn_addr *out);

/* Writes "1.2.3.4:5000" or "[::1]:5000" into buf (cap bytes, at least
 * PN_ADDR_STRLEN is always enough). Errors: PN_EINVAL (NULL, bad family),
 * PN_ERANGE (cap too small). Pure; any thread. */
PN_API pn_err pn_addr_format(const pn_addr *addr, char *buf, size_t cap);

/* True when both hold the same family, address, port and scope. */
PN_API bool pn_addr_equal(const pn_addr *a, const pn_addr *b);

/* Messages a socket sends to its owner (reserved types). */
#define PN_MSG_DATAGRAM 0xFFFFFF01u      /* read it with pn_msg_datagram() */
#define PN_MSG_SOCKET_CLOSED 0xFFFFFF02u /* payload: uint64_t socket id */

/* Largest UDP payload over IPv4 or IPv6. */
#define PN_DATAGRAM_MAX 65507u

typedef struct pn_socket_config {
  size_t size;           /* sizeof(pn_socket_config) */
  const char *host;      /* name or numeric address; NULL or "" = any (::
                            with IPv4 mapped unless ipv6_only) */
  uint16_t port;         /* 0 picks a free port */
  pn_actor *owner;       /* receives PN_MSG_DATAGRAM and
                            PN_MSG_SOCKET_CLOSED; required */
  uint32_t rcvbuf_bytes; /* SO_RCVBUF; 0 = 4 MiB (the kernel may cap it) */
  uint32_t sndbuf_bytes; /* SO_SNDBUF; 0 = 4 MiB */
  uint32_t max_datagram; /* largest datagram sent or received; 0 = 2048,
                            at most PN_DATAGRAM_MAX */
  bool ipv6_only;        /* for IPv6 sockets: refuse IPv4-mapped traffic */
  bool no_offload;       /* no UDP GSO/GRO: one kernel packet per datagram, so
                            kernel_drops counts datagrams */
  int32_t home_worker;   /* -1 picks one */
  pn_link_conditioner send_conditioner; /* outgoing impairments */
  pn_link_conditioner recv_conditioner; /* incoming impairments */
} pn_socket_config;

#define PN_SOCKET_CONFIG_INIT                                                  \
  {                                                                            \
    .size = sizeof(pn_socket_config), .home_worker = -1,                       \
    .send_conditioner = PN_LINK_CONDITIONER_INIT,                              \
    .recv_conditioner = PN_LINK_CONDITIONER_INIT                               \
  }

/* Opens and binds a UDP socket. On PN_OK *sock_out owns the handle.
 * Errors, with nothing left open: PN_EINVAL (NULL, small size, no owner,
 * max_datagram too large, bad conditioner, home worker out of range),
 * PN_ENAMERESOLVE (host not found), PN_EADDRNOTAVAIL (address not local or
 * of the wrong family), PN_EADDRINUSE, PN_ECLOSED (runtime or owner
 * stopped), PN_ENOMEM, or a wrapped errno. Blocks only to resolve a name. */
PN_API pn_err pn_socket_open(pn_runtime *rt, const pn_socket_config *cfg,
                             pn_socket **sock_out);

/* The bound address (with the port the kernel picked for port 0).
 * Errors: PN_EINVAL. Any thread, never blocks. */
PN_API pn_err pn_socket_local_addr(const pn_socket *sock, pn_addr *addr_out);

/* Unique id of the socket (also in PN_MSG_SOCKET_CLOSED). */
PN_API uint64_t pn_socket_id(const pn_socket *sock);

/* Queues one datagram to `to`; the bytes are copied. It leaves with the
 * socket's next batch. Errors: PN_EINVAL (NULL, family the socket cannot
 * reach), PN_EMSGSIZE (len > max_datagram), PN_ECLOSED (socket closing),
 * PN_ENOMEM. A datagram the kernel refuses later (full buffers,
 * unreachable) is counted in the stats and dropped, as UDP does. Any
 * thread, never blocks. */
PN_API pn_err pn_socket_send(pn_socket *sock, const pn_addr *to,
                             const void *data, size_t len);

typedef enum pn_direction { PN_DIR_SEND = 0, PN_DIR_RECV = 1 } pn_direction;

/* Replaces one direction's conditioner settings while running (datagrams
 * already held keep their release times). Errors: PN_EINVAL, PN_ECLOSED,
 * PN_ENOMEM. Any thread, never blocks; takes effect when the socket's actor
 * handles it, in order with sends from the same thread. */
PN_API pn_err pn_socket_set_conditioner(pn_socket *sock, pn_direction dir,
                                        const pn_link_conditioner *cfg);

/* Closes the socket and gives back the handle (NULL is ignored). Datagrams
 * queued before the call are sent first; datagrams held by a conditioner
 * are dropped. The owner receives PN_MSG_SOCKET_CLOSED when the file
 * descriptor is closed and no I/O can reach the socket. Any thread. */
PN_API void pn_socket_close(pn_socket *sock);

/* pn_socket_stats is defined in peernet/stats.h. */

/* Counters of the socket. Errors: PN_EINVAL. Any thread, never blocks. */
PN_API pn_err pn_socket_stats_get(const pn_socket *sock,
                                  pn_socket_stats *stats_out);

/* A datagram as its owner receives it. Valid while the handler runs. */
typedef struct pn_datagram {
  pn_addr from;
  uint64_t socket_id;
  const void *data;
  size_t len;
} pn_datagram;

/* Reads a PN_MSG_DATAGRAM message. Errors: PN_EINVAL (NULL, other type,
 * malformed). Pure; from the handler that received the message, or while
 * a message taken from an inbox is held (peernet/inbox.h). */
PN_API pn_err pn_msg_datagram(const pn_msg *msg, pn_datagram *out);

#ifdef __cplusplus
}
#endif

#endif
