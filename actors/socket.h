/* The socket actor's object, shared by its two files: socket.c (the actor,
 * opening, closing, the API) and socket_io.c (send and receive batches,
 * GSO/GRO, the conditioners). Public API: peernet/socket.h. Everything
 * below is touched only by the socket's handler and its home worker's
 * backend callbacks, except the atomics (counters: relaxed, any thread). */
#ifndef PN_ACTORS_SOCKET_H
#define PN_ACTORS_SOCKET_H

#include <linux/filter.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "actors/link_conditioner.h"
#include "peernet/socket.h"
#include "peernet/stats.h"
#include "runtime/io/io.h"
#include "runtime/registry.h"
#include "runtime/timer.h"
#include "runtime/worker.h"

/* Sockets are registered under this class from pn_socket_open() until
 * they close. */
extern const pn__stat_class pn__socket_class;

/* The snapshot row of the socket registered as o. Under the registry lock
 * (the socket cannot be freed meanwhile). */
void pn__socket_info_fill(const pn__stat_obj *o, pn_socket_info *info);

/* Datagrams per recvmmsg/sendmmsg, and receive batches per run before the
 * socket yields to other actors (it posts itself a READY to go on). */
#define BATCH_MAX 64u
#define BATCH_BYTES (1u << 20)
#define RECV_BATCHES_PER_RUN 16u
#define DEFAULT_BUF_BYTES (4u << 20)
#define DEFAULT_MAX_DATAGRAM 2048u

/* What the owner's PN_MSG_DATAGRAM carries before the payload. */
typedef struct datagram_header {
  pn_addr from;
  uint64_t socket_id;
} datagram_header;

struct send_batch;

/* One submitted message of a batch, as the backend hands it back. */
typedef struct send_req {
  pn__io_send io; /* first: the backend's handle */
  struct send_batch *batch;
  uint32_t group;
} send_req;

/* Queued datagrams and the messages built from them. With a backend that
 * submits sends itself, a batch stays untouched from its submission until
 * its last completion. */
typedef struct send_batch {
  uint32_t count;    /* datagrams queued */
  uint32_t inflight; /* submitted messages not yet completed */
  struct mmsghdr *msg;
  struct iovec *iov;
  struct sockaddr_in6 *addr;
  unsigned char *buf;
  /* GSO groups: one message each. */
  struct mmsghdr *gmsg;
  uint32_t *gfirst;
  uint32_t *gcount;
  unsigned char *gctl;
  send_req *req;
} send_batch;

/* A datagram held by a conditioner. */
typedef struct held {
  pn_addr addr;
  size_t len;
  unsigned char data[];
} held;

struct pn_socket {
  _Atomic uint32_t refs;  /* the handle and the actor */
  _Atomic uint32_t ready; /* PN__IO_* bits not yet handled */
  _Atomic uint32_t closing;
  pn_runtime *rt;
  pn_actor *actor; /* held by the handle */
  pn_actor *owner; /* held until closed */
  pn__worker *home;
  pn__io_source src;
  uint64_t id;
  pn_addr local;
  int family; /* AF_INET or AF_INET6 */
  bool v6only;
  bool closed;
  bool attached;     /* watched by the home worker's backend */
  pn__stat_obj stat; /* in the runtime's registry of objects */
  bool detached;     /* the backend confirmed it watches no more */
  uint32_t max_datagram;
  uint32_t batch;
  bool want_write; /* the kernel said EAGAIN: wait for writability */
  bool gso;        /* UDP_SEGMENT works (off for good after a refusal) */
  bool gro;        /* UDP_GRO is on: receive slots hold coalesced runs */
  uint32_t rslot;  /* bytes per receive slot */
  uint32_t rbatch; /* receive slots */
  /* Send batches: one being filled (cur), the other possibly in the
   * kernel; cur is NULL while both are. */
  send_batch sb[2];
  send_batch *cur;
  /* Receive batch. */
  struct mmsghdr *rmsg;
  struct iovec *riov;
  struct sockaddr_in6 *raddr;
  unsigned char *rbuf;
  unsigned char *rctl;
  pn__conditioner cond[2]; /* PN_DIR_SEND, PN_DIR_RECV */
  pn_timer *cond_timer;
  uint64_t cond_timer_ns;
  uint32_t kernel_drops_seen;
  /* Counters: written by the actor only, read by any thread. */
  _Atomic uint64_t datagrams_in, bytes_in, datagrams_out, bytes_out;
  _Atomic uint64_t syscalls, readiness, send_errors, send_drops;
  _Atomic uint64_t kernel_drops, truncated;
  _Atomic uint64_t cond_dropped, cond_delayed, cond_duplicated;
  _Atomic uint64_t gso_segments, gro_segments, enobufs;
};

#define CTL_BYTES 64u
#define GSO_CTL CMSG_SPACE(sizeof(uint16_t))
#define GSO_MAX_SEGMENTS 64u /* the kernel's limit before 6.x */
#define GSO_MAX_BYTES 65000u
#define GRO_SLOT 65536u
#define GRO_SLOTS 16u

#define PN__SOCK_STAT_ADD(s, field, v) pn__stat_add(&(s)->field, (v))

/* --- socket_io.c ---------------------------------------------------------- */

/* Allocates the send and receive batches; false when out of memory. */
bool pn__socket_alloc_batches(pn_socket *s);

/* Frees one send batch's buffers. */
void pn__socket_batch_free(send_batch *b);

/* Queues a datagram for the end of the run (through the send conditioner
 * when one is set). */
void pn__socket_send(pn_socket *s, const pn_addr *to, const void *data,
                     size_t len);

/* Sends what is queued: one sendmmsg, or ring submissions. */
void pn__socket_flush_sends(pn_socket *s);

/* Reads up to RECV_BATCHES_PER_RUN batches; true when more may wait. */
bool pn__socket_read_batches(pn_socket *s);

/* The conditioner's timer: releases what is due, re-arms. */
void pn__socket_release_due(pn_socket *s);

/* Arms the conditioner's timer for the earliest release. */
void pn__socket_arm_cond_timer(pn_socket *s);

/* Replaces the kernel's filter of the socket's incoming datagrams with the
 * classic BPF program prog (len instructions, at most
 * PN__SOCKET_FILTER_MAX; len 0: no filter). The socket's actor applies it
 * to its own descriptor; datagrams the filter drops count as
 * kernel_drops. A kernel that refuses the program leaves the old one.
 * Errors: PN_EINVAL (too long), PN_ENOMEM, PN_ECLOSED. Any thread. */
#define PN__SOCKET_FILTER_MAX 16u
pn_err pn__socket_set_filter(pn_socket *s, const struct sock_filter *prog,
                             uint32_t len);

/* The backend's callbacks (io.h). */
void pn__socket_on_sent(pn__worker *w, pn__io_send *io, int res);
void pn__socket_on_datagram(pn__worker *w, pn__io_source *src,
                            const pn__io_datagram *d);
void pn__socket_on_recv_error(pn__worker *w, pn__io_source *src, int err);

/* The socket whose io source src is. */
static inline pn_socket *pn__socket_of(pn__io_source *src) {
  return (pn_socket *)(void *)((char *)src - offsetof(pn_socket, src));
}

#endif
