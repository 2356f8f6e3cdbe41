/* The I/O backend seam: the one place a worker sleeps.
 *
 * A worker with nothing to run sleeps in its backend's wait, so that idle
 * time and I/O completions share one blocking call (epoll_wait with an
 * eventfd here; the io_uring wait when that backend lands). Other threads
 * end the wait with wake(). Socket operations will join this table.
 */
#ifndef PN_RUNTIME_IO_H
#define PN_RUNTIME_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "peernet/runtime.h"

typedef struct pn__worker pn__worker;

/* A file descriptor watched by a worker's backend. on_ready runs on that
 * worker, outside any handler, with PN__IO_READ and/or PN__IO_WRITE; it
 * must only note the readiness and wake the actor that owns the fd. */
typedef struct pn__io_source pn__io_source;
struct pn__io_send;

/* A received datagram as a backend hands it over, with what its control
 * messages said. */
typedef struct pn__io_datagram {
  const void *name; /* sender's struct sockaddr */
  uint32_t namelen;
  const unsigned char *data;
  size_t len;
  bool truncated;
  uint32_t gro_size; /* UDP_GRO segment size; 0: one datagram */
  bool has_ovfl;
  uint32_t ovfl; /* SO_RXQ_OVFL running total */
} pn__io_datagram;

struct pn__io_source {
  int fd;
  /* Runs on the watching worker, outside any handler, with PN__IO_READ
   * and/or PN__IO_WRITE; must only note the readiness and wake the actor
   * that owns the fd. */
  void (*on_ready)(pn__worker *w, pn__io_source *src, uint32_t events);
  /* Runs on the watching worker once del() has taken effect: no callback
   * for src will follow, so its memory and fd may go. */
  void (*on_detached)(pn__worker *w, pn__io_source *src);
  /* Optional, for datagram sockets: a backend that receives by itself
   * (io_uring's multishot recvmsg into a provided-buffer ring) hands each
   * message here instead of reporting readability. Runs on the watching
   * worker; the memory is the backend's again when it returns. */
  void (*on_datagram)(pn__worker *w, pn__io_source *src,
                      const pn__io_datagram *d);
  /* With on_datagram: a receive error (-ENOBUFS when the buffer ring ran
   * dry); the backend re-arms by itself. */
  void (*on_recv_error)(pn__worker *w, pn__io_source *src, int err);
  /* With on_datagram: the size of one receive slot (payload plus room
   * for GRO runs) and of the address and control space to reserve. */
  uint32_t dgram_slot_bytes;
  uint32_t dgram_name_bytes;
  uint32_t dgram_ctl_bytes;
  /* With send_msg: a send finished (res: bytes sent or -errno). */
  void (*on_sent)(pn__worker *w, struct pn__io_send *req, int res);
  uint32_t backend_state;    /* backend-private */
  uint32_t backend_inflight; /* backend-private: sends in the kernel */
  void *backend_data;        /* backend-private */
};

/* A send handed to a backend that submits sends itself. The caller embeds
 * it in its own record and keeps the message and its memory valid until
 * on_sent. */
typedef struct pn__io_send {
  pn__io_source *src;
} pn__io_send;

#define PN__IO_READ 1u
#define PN__IO_WRITE 2u

/* Backend state carried by every worker. */
typedef struct pn__io_worker {
  int epfd;      /* epoll instance (epoll backend) */
  int wakefd;    /* eventfd written by wake() */
  void *backend; /* backend-private state, if any */
} pn__io_worker;

typedef struct pn__io_ops {
  const char *name;
  /* Sets up w->io. Called on the creating thread before workers start. */
  pn_err (*worker_init)(pn__worker *w);
  /* Tears down w->io after the worker thread exited. */
  void (*worker_fini)(pn__worker *w);
  /* Owner only: blocks until wake(), I/O or timeout_ns (-1: no timeout). */
  void (*wait)(pn__worker *w, int64_t timeout_ns);
  /* Any thread: ends the current or next wait of w. */
  void (*wake)(pn__worker *w);
  /* Owner only: dispatches whatever is ready now, without blocking. */
  void (*poll)(pn__worker *w);
  /* On the worker thread, at its start (io_uring binds its ring there). */
  pn_err (*thread_start)(pn__worker *w);
  /* Owner only: starts watching src for readability (edge-triggered:
   * after a notification, read until EAGAIN). */
  pn_err (*add)(pn__worker *w, pn__io_source *src);
  /* Owner only: asks for one PN__IO_WRITE notification, after a send got
   * EAGAIN. */
  void (*want_write)(pn__worker *w, pn__io_source *src);
  /* Owner only, optional (NULL: the caller sends with sendmmsg itself):
   * queues one sendmsg of mh for src, submitted with the worker's next
   * submission, at the end of the current loop turn at the latest. */
  pn_err (*send_msg)(pn__worker *w, struct pn__io_send *req, struct msghdr *mh);
  /* Owner only: stops watching src; on_detached follows (at once or after
   * the kernel confirms, and after every send of src has finished). */
  void (*del)(pn__worker *w, pn__io_source *src);
} pn__io_ops;

extern const pn__io_ops pn__io_epoll_ops;
extern const pn__io_ops pn__io_uring_ops;

/* True when this kernel and sandbox allow io_uring with what the backend
 * needs (setup, and the poll and read opcodes). Any thread. */
bool pn__io_uring_available(void);

/* Chooses the backend for a runtime: the config's choice, else PEERNET_IO,
 * else the best available. PN_ENOTSUP when a forced backend is missing. */
pn_err pn__io_select(pn_io_backend requested, const pn__io_ops **ops_out);

#endif
