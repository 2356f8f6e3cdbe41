/* io_uring backend: one ring per worker, created with SINGLE_ISSUER and
 * DEFER_TASKRUN where the kernel has them (never SQPOLL: on a 2-core
 * machine a polling kernel thread would take a core from the workers).
 *
 * The ring is created disabled by the runtime's creating thread and enabled
 * by the worker thread itself, because SINGLE_ISSUER binds the ring to the
 * task that enables it. Everything that submits runs on that worker: SQEs
 * are queued during the loop turn and submitted once, in poll() or wait().
 *
 * Completions are told apart by the low bits of user_data: the eventfd
 * read that other threads use to wake the worker, a source's multishot
 * read poll, its one-shot write poll, and cancellations. A source's polls
 * are cancelled by del(); its on_detached runs when the last of its polls
 * has completed, so the kernel can no longer report on it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <liburing.h>

#include "runtime/alloc.h"
#include "runtime/err_os.h"
#include "runtime/io/io.h"
#include "runtime/worker.h"

#define RING_ENTRIES 256u

enum {
  TAG_WAKE = 0,
  TAG_READ = 1,
  TAG_WRITE = 2,
  TAG_CANCEL = 3,
  TAG_RECV = 4,
  TAG_SEND = 5
};
#define TAG_MASK 7u /* sources are at least 8-byte aligned */

/* backend_state bits of a source */
#define SRC_READ_ARMED 1u   /* its multishot read poll is in the kernel */
#define SRC_WRITE_ARMED 2u  /* a one-shot write poll is in the kernel */
#define SRC_DETACHING 4u    /* del() called: re-arm nothing */
#define SRC_RECV_ARMED 8u   /* its multishot recvmsg is in the kernel */
#define SRC_RECV_POLLED 16u /* multishot recvmsg refused: readiness instead */

/* A source's provided-buffer ring for multishot recvmsg. */
typedef struct recv_ring {
  struct io_uring_buf_ring *br;
  unsigned char *bufs;
  uint32_t nbufs;
  uint32_t buf_bytes;
  uint16_t bgid;
  struct msghdr tmpl; /* reserves name and control space in each buffer */
} recv_ring;

typedef struct uring_state {
  struct io_uring ring;
  bool disabled; /* created with R_DISABLED, enable on the worker */
  uint64_t wake_value;
  uint16_t next_bgid;
} uring_state;

static uring_state *state_of(pn__worker *w) { return w->io.backend; }

static int setup_ring(struct io_uring *ring, bool *disabled) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
            IORING_SETUP_R_DISABLED;
  int rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
  if (rc == -EINVAL) {
    /* Kernels before 6.1 lack DEFER_TASKRUN (and 6.0 SINGLE_ISSUER). */
    memset(&p, 0, sizeof p);
    rc = io_uring_queue_init_params(RING_ENTRIES, ring, &p);
    *disabled = false;
  } else {
    *disabled = rc == 0;
  }
  return rc;
}

static int enable_ring(struct io_uring *ring) {
  /* liburing 2.3 declares io_uring_enable_rings() but does not export it;
   * this is the register call it would make. */
  return (int)syscall(__NR_io_uring_register, ring->ring_fd,
                      IORING_REGISTER_ENABLE_RINGS, NULL, 0);
}

bool pn__io_uring_available(void) {
  static _Atomic int cached = -1;
  int c = atomic_load_explicit(&cached, memory_order_relaxed);
  if (c >= 0) {
    return c == 1;
  }
  struct io_uring ring;
  bool disabled = false;
  if (setup_ring(&ring, &disabled) != 0) {
    atomic_store_explicit(&cached, 0, memory_order_relaxed);
    return false; /* ENOSYS, or EPERM under a seccomp profile */
  }
  bool enabled = !disabled || enable_ring(&ring) == 0;
  io_uring_queue_exit(&ring);
  if (!enabled) {
    atomic_store_explicit(&cached, 0, memory_order_relaxed);
    return false;
  }
  struct io_uring_probe *probe = io_uring_get_probe();
  if (!probe) {
    return false;
  }
  bool ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
            io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE) &&
            io_uring_opcode_supported(probe, IORING_OP_READ) &&
            io_uring_opcode_supported(probe, IORING_OP_RECVMSG) &&
            io_uring_opcode_supported(probe, IORING_OP_SENDMSG) &&
            io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
  io_uring_free_probe(probe);
  atomic_store_explicit(&cached, ok ? 1 : 0, memory_order_relaxed);
  return ok;
}

static pn_err uring_worker_init(pn__worker *w) {
  uring_state *st = pn__calloc(1, sizeof *st);
  if (!st) {
    return PN_ENOMEM;
  }
  int rc = setup_ring(&st->ring, &st->disabled);
  if (rc != 0) {
    free(st);
    return rc == -ENOMEM ? PN_ENOMEM : pn__err_os(-rc);
  }
  w->io.wakefd = eventfd(0, EFD_CLOEXEC);
  if (w->io.wakefd < 0) {
    int saved = errno;
    io_uring_queue_exit(&st->ring);
    free(st);
    return pn__err_os(saved);
  }
  w->io.backend = st;
  return PN_OK;
}

static void uring_worker_fini(pn__worker *w) {
  uring_state *st = state_of(w);
  if (st) {
    io_uring_queue_exit(&st->ring);
    free(st);
    w->io.backend = NULL;
  }
  if (w->io.wakefd >= 0) {
    close(w->io.wakefd);
    w->io.wakefd = -1;
  }
}

/* An SQE, submitting what is queued first if the ring is full. */
static struct io_uring_sqe *get_sqe(uring_state *st) {
  struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
  if (!sqe) {
    io_uring_submit(&st->ring);
    sqe = io_uring_get_sqe(&st->ring);
  }
  return sqe;
}

static void arm_wake(uring_state *st, pn__worker *w) {
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_read(sqe, w->io.wakefd, &st->wake_value, sizeof st->wake_value,
                     0);
  io_uring_sqe_set_data64(sqe, TAG_WAKE);
}

static void arm_read(uring_state *st, pn__io_source *src) {
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_poll_multishot(sqe, src->fd, POLLIN);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)src | TAG_READ);
  src->backend_state |= SRC_READ_ARMED;
}

static pn_err uring_thread_start(pn__worker *w) {
  uring_state *st = state_of(w);
  if (st->disabled) {
    if (enable_ring(&st->ring) < 0) {
      return pn__err_os(errno);
    }
    st->disabled = false;
  }
  arm_wake(st, w);
  io_uring_submit(&st->ring);
  return PN_OK;
}

static void free_recv_ring(uring_state *st, pn__io_source *src) {
  recv_ring *rr = src->backend_data;
  if (!rr) {
    return;
  }
  (void)io_uring_unregister_buf_ring(&st->ring, rr->bgid);
  free(rr->br);
  free(rr->bufs);
  free(rr);
  src->backend_data = NULL;
}

static void detach_if_done(pn__worker *w, pn__io_source *src) {
  if ((src->backend_state & SRC_DETACHING) && !src->backend_inflight &&
      !(src->backend_state &
        (SRC_READ_ARMED | SRC_WRITE_ARMED | SRC_RECV_ARMED))) {
    /* The kernel holds no request of this source: its buffers may go. */
    free_recv_ring(state_of(w), src);
    src->backend_state = 0;
    atomic_fetch_sub_explicit(&w->io_sources, 1, memory_order_relaxed);
    src->on_detached(w, src);
  }
}

static void arm_recv(uring_state *st, pn__io_source *src) {
  recv_ring *rr = src->backend_data;
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_recvmsg_multishot(sqe, src->fd, &rr->tmpl, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = rr->bgid;
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)src | TAG_RECV);
  src->backend_state |= SRC_RECV_ARMED;
}

/* Registers the source's buffer ring by hand (io_uring_setup_buf_ring only
 * arrived in liburing 2.4) and fills it. */
static pn_err setup_recv_ring(uring_state *st, pn__io_source *src) {
  recv_ring *rr = pn__calloc(1, sizeof *rr);
  if (!rr) {
    return PN_ENOMEM;
  }
  rr->tmpl.msg_namelen = src->dgram_name_bytes;
  rr->tmpl.msg_controllen = src->dgram_ctl_bytes;
  /* Each buffer starts 64-byte aligned, so the header, name and control
   * messages inside it are aligned as their types need. */
  rr->buf_bytes =
      ((uint32_t)sizeof(struct io_uring_recvmsg_out) + src->dgram_name_bytes +
       src->dgram_ctl_bytes + src->dgram_slot_bytes + 63u) &
      ~63u;
  /* A power of two, about 1 MiB of buffers. */
  rr->nbufs = 16;
  while (rr->nbufs < 4096 &&
         (size_t)rr->nbufs * 2 * rr->buf_bytes <= (1u << 20)) {
    rr->nbufs *= 2;
  }
  rr->bgid = st->next_bgid++;
  size_t ring_bytes = rr->nbufs * sizeof(struct io_uring_buf);
  rr->bufs = pn__aligned_alloc(64, (size_t)rr->nbufs * rr->buf_bytes);
  if (!rr->bufs ||
      posix_memalign((void **)&rr->br, 4096, (ring_bytes + 4095) & ~4095ul)) {
    free(rr->bufs);
    free(rr);
    return PN_ENOMEM;
  }
  struct io_uring_buf_reg reg;
  memset(&reg, 0, sizeof reg);
  reg.ring_addr = (uint64_t)(uintptr_t)rr->br;
  reg.ring_entries = rr->nbufs;
  reg.bgid = rr->bgid;
  int rc = io_uring_register_buf_ring(&st->ring, &reg, 0);
  if (rc != 0) {
    free(rr->br);
    free(rr->bufs);
    free(rr);
    return pn__err_os(-rc);
  }
  io_uring_buf_ring_init(rr->br);
  int mask = io_uring_buf_ring_mask(rr->nbufs);
  for (uint32_t i = 0; i < rr->nbufs; i++) {
    io_uring_buf_ring_add(rr->br, rr->bufs + (size_t)i * rr->buf_bytes,
                          rr->buf_bytes, (unsigned short)i, mask, (int)i);
  }
  io_uring_buf_ring_advance(rr->br, (int)rr->nbufs);
  src->backend_data = rr;
  return PN_OK;
}

/* Parses one completed buffer, hands the datagram over and gives the
 * buffer back to the ring, on this (its own) worker. */
static void recv_completed(pn__worker *w, pn__io_source *src,
                           struct io_uring_cqe *cqe) {
  recv_ring *rr = src->backend_data;
  uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
  unsigned char *buf = rr->bufs + (size_t)bid * rr->buf_bytes;
  struct io_uring_recvmsg_out *out =
      io_uring_recvmsg_validate(buf, cqe->res, &rr->tmpl);
  if (out && !(src->backend_state & SRC_DETACHING)) {
    pn__io_datagram d;
    memset(&d, 0, sizeof d);
    d.name = io_uring_recvmsg_name(out);
    d.namelen = out->namelen < rr->tmpl.msg_namelen ? out->namelen
                                                    : rr->tmpl.msg_namelen;
    d.data = io_uring_recvmsg_payload(out, &rr->tmpl);
    d.len = io_uring_recvmsg_payload_length(out, cqe->res, &rr->tmpl);
    d.truncated = (out->flags & MSG_TRUNC) != 0;
    for (struct cmsghdr *cm = io_uring_recvmsg_cmsg_firsthdr(out, &rr->tmpl);
         cm; cm = io_uring_recvmsg_cmsg_nexthdr(out, &rr->tmpl, cm)) {
      if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
        int v;
        memcpy(&v, CMSG_DATA(cm), sizeof v);
        d.gro_size = v > 0 ? (uint32_t)v : 0;
      } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
        memcpy(&d.ovfl, CMSG_DATA(cm), sizeof d.ovfl);
        d.has_ovfl = true;
      }
    }
    src->on_datagram(w, src, &d);
  }
  io_uring_buf_ring_add(rr->br, buf, rr->buf_bytes, (unsigned short)bid,
                        io_uring_buf_ring_mask(rr->nbufs), 0);
  io_uring_buf_ring_advance(rr->br, 1);
}

static void handle_cqe(pn__worker *w, uring_state *st,
                       struct io_uring_cqe *cqe) {
  uint64_t data = io_uring_cqe_get_data64(cqe);
  uint32_t tag = (uint32_t)(data & TAG_MASK);
  pn__io_source *src = (pn__io_source *)(uintptr_t)(data & ~(uint64_t)TAG_MASK);
  bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
  switch (tag) {
  case TAG_WAKE:
    arm_wake(st, w);
    break;
  case TAG_READ:
    if (!more) {
      src->backend_state &= ~SRC_READ_ARMED;
    }
    if (!(src->backend_state & SRC_DETACHING)) {
      if (cqe->res > 0) {
        src->on_ready(w, src, PN__IO_READ);
      }
      if (!more) {
        /* The kernel ended the multishot (overflow or error): read once
         * more in case something arrived meanwhile, and re-arm. */
        src->on_ready(w, src, PN__IO_READ);
        arm_read(st, src);
      }
    }
    detach_if_done(w, src);
    break;
  case TAG_WRITE:
    src->backend_state &= ~SRC_WRITE_ARMED;
    if (!(src->backend_state & SRC_DETACHING) && cqe->res > 0) {
      src->on_ready(w, src, PN__IO_WRITE);
    }
    detach_if_done(w, src);
    break;
  case TAG_RECV:
    if (!more) {
      src->backend_state &= ~SRC_RECV_ARMED;
    }
    if (cqe->res >= 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
      recv_completed(w, src, cqe);
    } else if (cqe->res < 0 && cqe->res != -ECANCELED &&
               !(src->backend_state & SRC_DETACHING)) {
      src->on_recv_error(w, src, -cqe->res);
    }
    if (!more && !(src->backend_state & SRC_DETACHING)) {
      if (cqe->res >= 0 || cqe->res == -ENOBUFS) {
        /* Ended by the kernel (-ENOBUFS: the ring ran dry; buffers go
         * back as each completion is handled, so there are some now). */
        arm_recv(st, src);
      } else {
        /* A kernel without multishot recvmsg (before 6.0) refuses it:
         * fall back, for good, to readiness and the socket's recvmmsg. */
        free_recv_ring(st, src);
        src->backend_state |= SRC_RECV_POLLED;
        arm_read(st, src);
        src->on_ready(w, src, PN__IO_READ);
      }
    }
    detach_if_done(w, src);
    break;
  case TAG_SEND: {
    pn__io_send *req = (pn__io_send *)(uintptr_t)(data & ~(uint64_t)TAG_MASK);
    src = req->src;
    src->backend_inflight--;
    src->on_sent(w, req, cqe->res);
    detach_if_done(w, src);
    break;
  }
  default: /* TAG_CANCEL: the cancelled requests report on their own */
    break;
  }
}

/* Handles every completion. Each one is copied and consumed before its
 * handler runs, because a handler may poll again (a socket whose send
 * batches are both in the kernel drives the ring until one returns): the
 * nested reap then starts after it instead of handling it twice. */
static void reap(pn__worker *w, uring_state *st) {
  for (;;) {
    struct io_uring_cqe *cqe = NULL;
    unsigned head;
    io_uring_for_each_cqe(&st->ring, head, cqe) { break; /* just the oldest */ }
    if (!cqe) {
      return;
    }
    struct io_uring_cqe copy = *cqe;
    io_uring_cq_advance(&st->ring, 1);
    handle_cqe(w, st, &copy);
  }
}

static void uring_wait_op(pn__worker *w, int64_t timeout_ns) {
  uring_state *st = state_of(w);
  struct io_uring_cqe *cqe = NULL;
  struct __kernel_timespec ts;
  struct __kernel_timespec *tsp = NULL;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;
    tsp = &ts;
  }
  /* One enter: submits this turn's SQEs and waits (-ETIME on timeout). */
  (void)io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, tsp, NULL);
  reap(w, st);
}

static void uring_poll_op(pn__worker *w) {
  uring_state *st = state_of(w);
  /* Submits this turn's SQEs and, with DEFER_TASKRUN, runs the kernel's
   * pending completion work so it shows up now. */
  (void)io_uring_submit_and_get_events(&st->ring);
  reap(w, st);
}

static void uring_wake_op(pn__worker *w) {
  uint64_t one = 1;
  ssize_t r = write(w->io.wakefd, &one, sizeof one);
  (void)r;
}

static pn_err uring_add_op(pn__worker *w, pn__io_source *src) {
  uring_state *st = state_of(w);
  src->backend_state = 0;
  src->backend_data = NULL;
  if (src->on_datagram) {
    pn_err err = setup_recv_ring(st, src);
    if (err != PN_OK) {
      return err;
    }
    arm_recv(st, src);
    atomic_fetch_add_explicit(&w->io_sources, 1, memory_order_relaxed);
    return PN_OK;
  }
  arm_read(st, src);
  atomic_fetch_add_explicit(&w->io_sources, 1, memory_order_relaxed);
  /* Data may have arrived before the poll: look once now. */
  src->on_ready(w, src, PN__IO_READ);
  return PN_OK;
}

static void uring_want_write(pn__worker *w, pn__io_source *src) {
  uring_state *st = state_of(w);
  if (src->backend_state & (SRC_WRITE_ARMED | SRC_DETACHING)) {
    return;
  }
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_poll_add(sqe, src->fd, POLLOUT);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)src | TAG_WRITE);
  src->backend_state |= SRC_WRITE_ARMED;
}

static pn_err uring_send_msg(pn__worker *w, pn__io_send *req,
                             struct msghdr *mh) {
  uring_state *st = state_of(w);
  struct io_uring_sqe *sqe = get_sqe(st);
  if (!sqe) {
    return PN_EAGAIN;
  }
  /* No MSG_DONTWAIT: on a full socket buffer io_uring waits for room by
   * itself instead of failing with EAGAIN. */
  io_uring_prep_sendmsg(sqe, req->src->fd, mh, 0);
  io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)req | TAG_SEND);
  req->src->backend_inflight++;
  w->io_submit_pending = true;
  return PN_OK;
}

static void cancel_poll(uring_state *st, pn__io_source *src, uint32_t tag) {
  struct io_uring_sqe *sqe = get_sqe(st);
  io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)src | tag);
  io_uring_sqe_set_data64(sqe, TAG_CANCEL);
}

static void uring_del_op(pn__worker *w, pn__io_source *src) {
  uring_state *st = state_of(w);
  src->backend_state |= SRC_DETACHING;
  if (src->backend_state & SRC_READ_ARMED) {
    cancel_poll(st, src, TAG_READ);
  }
  if (src->backend_state & SRC_WRITE_ARMED) {
    cancel_poll(st, src, TAG_WRITE);
  }
  if (src->backend_state & SRC_RECV_ARMED) {
    struct io_uring_sqe *sqe = get_sqe(st);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)src | TAG_RECV, 0);
    io_uring_sqe_set_data64(sqe, TAG_CANCEL);
  }
  /* Nothing armed: detach now. Otherwise the polls' final completions
   * (-ECANCELED) detach it. */
  detach_if_done(w, src);
}

const pn__io_ops pn__io_uring_ops = {
    .name = "uring",
    .worker_init = uring_worker_init,
    .worker_fini = uring_worker_fini,
    .wait = uring_wait_op,
    .wake = uring_wake_op,
    .poll = uring_poll_op,
    .thread_start = uring_thread_start,
    .add = uring_add_op,
    .want_write = uring_want_write,
    .send_msg = uring_send_msg,
    .del = uring_del_op,
};
