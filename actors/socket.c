/* The NetSocket actor: one UDP socket, homed on the worker whose I/O
 * backend watches its file descriptor.
 *
 * States: open -> closed (fd deregistered and closed, owner told) -> stopped.
 *
 * Messages it handles:
 *   PN__SOCK_ATTACH       first message: start watching the fd (the backend
 *                     must be driven from the home worker's thread).
 *   PN__SOCK_READY        the backend saw the fd readable or writable: read
 *                     datagrams in batches and hand each to the owner;
 *                     retry queued sends.
 *   PN__SOCK_SEND         a pn_addr and the bytes to send: queued (through the
 *                     send conditioner when one is set).
 *   PN__SOCK_SET_COND     new conditioner settings for one direction.
 *   PN__SOCK_COND_TICK    the conditioner's timer: release what is due.
 *   PN__SOCK_CLOSE        pn_socket_close(): send what is queued, close, tell
 *                     the owner, stop.
 *   PN_MSG_BATCH_END  end of a run: send the queued batch with one sendmmsg.
 *   PN_MSG_STOPPED    runtime shutdown (or after close): release everything.
 *
 * Only the handler touches the fd and the batches; other threads reach the
 * socket through messages, so nothing here is locked. The readiness bits
 * are the one field written from the backend's callback.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/addr.h"
#include "actors/link_conditioner.h"
#include "actors/msg_ids.h"
#include "actors/socket.h"
#include "peernet/socket.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/err_os.h"
#include "runtime/rt.h"
#include "runtime/timer.h"
#include "runtime/tsan.h"
#include "runtime/worker.h"

#ifdef PN__TSAN
/* The kernel orders a datagram's send before its receive. ThreadSanitizer
 * learns that from its send/recv interceptors, but io_uring receives
 * through no interceptor: tell it, with one token for all sockets. */
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static char kernel_delivery_token;
#define KERNEL_SENDS() __tsan_release(&kernel_delivery_token)
#define KERNEL_DELIVERED() __tsan_acquire(&kernel_delivery_token)
#else
#define KERNEL_SENDS() ((void)0)
#define KERNEL_DELIVERED() ((void)0)
#endif

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

static _Atomic uint64_t next_socket_id = 1;
#define CTL_BYTES 64u
#define GSO_CTL CMSG_SPACE(sizeof(uint16_t))
#define GSO_MAX_SEGMENTS 64u /* the kernel's limit before 6.x */
#define GSO_MAX_BYTES 65000u
#define GRO_SLOT 65536u
#define GRO_SLOTS 16u

/* --- lifetime ---------------------------------------------------------------
 */

static void send_batch_free(send_batch *b) {
  free(b->gmsg);
  free(b->gfirst);
  free(b->gcount);
  free(b->gctl);
  free(b->req);
  free(b->msg);
  free(b->iov);
  free(b->addr);
  free(b->buf);
}

/* The socket a backend source belongs to. */
static pn_socket *socket_of(pn__io_source *src) {
  return (pn_socket *)(void *)((char *)src - offsetof(pn_socket, src));
}

static void socket_free(pn_socket *s) {
  send_batch_free(&s->sb[0]);
  send_batch_free(&s->sb[1]);
  free(s->rmsg);
  free(s->riov);
  free(s->raddr);
  free(s->rbuf);
  free(s->rctl);
  pn__conditioner_fini(&s->cond[0]);
  pn__conditioner_fini(&s->cond[1]);
  free(s);
}

static void socket_unref(pn_socket *s) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's writes; the acquire half, in the last holder, pairs with
   * the other holder's release half here before socket_free(). */
  if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
    socket_free(s);
  }
}

#define STAT_ADD(s, field, v) pn__stat_add(&(s)->field, (v))

/* --- sending ------------------------------------------------------------- */

/* Groups the queued datagrams of b from `from` on: runs of the same
 * destination and size (the last may be shorter) become one UDP_SEGMENT
 * message, which the kernel takes through its stack once; everything else
 * goes as it is. Returns the number of messages. */
static uint32_t build_groups(pn_socket *s, send_batch *b, uint32_t from) {
  uint32_t ng = 0;
  for (uint32_t i = from; i < b->count;) {
    uint32_t j = i + 1;
    size_t seg = b->iov[i].iov_len;
    size_t total = seg;
    socklen_t nlen = b->msg[i].msg_hdr.msg_namelen;
    if (s->gso && seg > 0) {
      while (j < b->count && j - i < GSO_MAX_SEGMENTS &&
             b->msg[j].msg_hdr.msg_namelen == nlen &&
             memcmp(&b->addr[j], &b->addr[i], nlen) == 0 &&
             b->iov[j].iov_len <= seg && b->iov[j].iov_len > 0 &&
             total + b->iov[j].iov_len <= GSO_MAX_BYTES) {
        total += b->iov[j].iov_len;
        j++;
        if (b->iov[j - 1].iov_len < seg) {
          break; /* only the last segment may be shorter */
        }
      }
    }
    struct msghdr *mh = &b->gmsg[ng].msg_hdr;
    memset(mh, 0, sizeof *mh);
    mh->msg_name = &b->addr[i];
    mh->msg_namelen = nlen;
    mh->msg_iov = &b->iov[i];
    mh->msg_iovlen = j - i;
    if (j - i > 1) {
      unsigned char *ctl = b->gctl + (size_t)ng * GSO_CTL;
      memset(ctl, 0, GSO_CTL);
      mh->msg_control = ctl;
      mh->msg_controllen = GSO_CTL;
      struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
      cm->cmsg_level = SOL_UDP;
      cm->cmsg_type = UDP_SEGMENT;
      cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gso_size = (uint16_t)seg;
      memcpy(CMSG_DATA(cm), &gso_size, sizeof gso_size);
    }
    b->gfirst[ng] = i;
    b->gcount[ng] = j - i;
    ng++;
    i = j;
  }
  return ng;
}

static void count_sent(pn_socket *s, send_batch *b, uint32_t g) {
  uint32_t count = b->gcount[g];
  pn__tr(s->home, PN__TR_PACKET_SEND, s->id, count);
  for (uint32_t k = 0; k < count; k++) {
    STAT_ADD(s, bytes_out, b->iov[b->gfirst[g] + k].iov_len);
  }
  if (count > 1) {
    STAT_ADD(s, gso_segments, count);
  }
  STAT_ADD(s, datagrams_out, count);
}

static bool gso_refused(int err) {
  return err == EIO || err == EINVAL || err == EOPNOTSUPP || err == ENOPROTOOPT;
}

/* epoll: sends b with sendmmsg. Datagrams the kernel refuses for good are
 * counted and skipped; on EAGAIN the rest waits for writability. A refused
 * GSO message turns GSO off for this socket and is sent again without
 * it. */
static void flush_syscall(pn_socket *s, send_batch *b) {
  uint32_t done = 0;
  while (done < b->count) {
    uint32_t ng = build_groups(s, b, done);
    KERNEL_SENDS();
    int n = sendmmsg(s->src.fd, b->gmsg, ng, MSG_DONTWAIT);
    STAT_ADD(s, syscalls, 1);
    if (n > 0) {
      for (int g = 0; g < n; g++) {
        count_sent(s, b, (uint32_t)g);
        done += b->gcount[g];
      }
      /* A reply often lands on a socket of this same worker: look at the
       * backend right after this run rather than at the next poll. */
      s->home->io_submit_pending = true;
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      s->want_write = true;
      if (s->attached) {
        s->rt->io->want_write(s->home, &s->src);
      }
      break;
    }
    if (err == EINTR) {
      continue;
    }
    if (b->gcount[0] > 1 && gso_refused(err)) {
      s->gso = false; /* sticky: this path refuses segmentation */
      continue;
    }
    /* Refused (unreachable port, bad route...). */
    STAT_ADD(s, send_errors, b->gcount[0]);
    done += b->gcount[0];
  }
  if (done && done < b->count) {
    /* Keep the unsent tail at the front; its bytes move to their slots. */
    for (uint32_t i = done; i < b->count; i++) {
      uint32_t d = i - done;
      size_t len = b->iov[i].iov_len;
      memmove(b->buf + (size_t)d * s->max_datagram,
              b->buf + (size_t)i * s->max_datagram, len);
      b->iov[d].iov_len = len;
      b->addr[d] = b->addr[i];
      b->msg[d].msg_hdr.msg_namelen = b->msg[i].msg_hdr.msg_namelen;
    }
  }
  b->count -= done;
  if (!b->count) {
    s->want_write = false;
  }
}

/* io_uring: submits b's messages through the ring (they reach the kernel
 * at the end of this worker's loop turn) and fills the other batch
 * meanwhile, or none while both are in the kernel. */
static void flush_ring(pn_socket *s, send_batch *b) {
  uint32_t ng = build_groups(s, b, 0);
  KERNEL_SENDS();
  uint32_t queued = 0;
  for (uint32_t g = 0; g < ng; g++) {
    b->req[g].io.src = &s->src;
    b->req[g].batch = b;
    b->req[g].group = g;
    if (s->rt->io->send_msg(s->home, &b->req[g].io, &b->gmsg[g].msg_hdr) !=
        PN_OK) {
      STAT_ADD(s, send_drops, b->gcount[g]);
      continue;
    }
    queued++;
  }
  b->inflight = queued;
  pn__tr(s->home, PN__TR_IO_SUBMIT, s->id, queued);
  send_batch *other = b == &s->sb[0] ? &s->sb[1] : &s->sb[0];
  if (!queued) {
    b->count = 0;
    s->cur = b;
  } else {
    s->cur = other->inflight ? NULL : other;
  }
}

static void flush_sends(pn_socket *s) {
  send_batch *b = s->cur;
  if (!b || !b->count) {
    return;
  }
  if (s->rt->io->send_msg && s->attached && !s->closed) {
    flush_ring(s, b);
  } else {
    flush_syscall(s, b);
  }
}

/* io_uring: one submitted message finished. */
static void socket_on_sent(pn__worker *w, pn__io_send *io, int res) {
  (void)w;
  send_req *req = (send_req *)(void *)io;
  send_batch *b = req->batch;
  pn_socket *s = socket_of(io->src);
  uint32_t g = req->group;
  pn__tr(s->home, PN__TR_IO_COMPLETE, s->id, (uint64_t)(int64_t)res);
  if (res >= 0) {
    count_sent(s, b, g);
  } else {
    if (b->gcount[g] > 1 && gso_refused(-res)) {
      s->gso = false; /* sticky; this group's datagrams are lost */
    }
    STAT_ADD(s, send_errors, b->gcount[g]);
  }
  if (--b->inflight == 0) {
    b->count = 0;
    if (!s->cur) {
      s->cur = b;
    }
  }
}

static void queue_send(pn_socket *s, const pn_addr *to, const void *data,
                       size_t len) {
  if (s->cur && s->cur->count == s->batch) {
    flush_sends(s);
  }
  /* Both batches in the kernel (a burst larger than two batches within
   * one run): submit and reap now rather than drop; UDP sends complete as
   * they are submitted. The bound only guards against a stuck kernel. */
  for (int i = 0; !s->cur && s->attached && i < 1000; i++) {
    s->rt->io->poll(s->home);
  }
  send_batch *b = s->cur;
  if (!b || b->count == s->batch) {
    STAT_ADD(s, send_drops, 1); /* every batch is full or in the kernel */
    return;
  }
  uint32_t i = b->count;
  socklen_t alen = 0;
  if (!pn__addr_to_sockaddr(to, s->family, s->v6only, &b->addr[i], &alen)) {
    STAT_ADD(s, send_errors, 1);
    return;
  }
  memcpy(b->buf + (size_t)i * s->max_datagram, data, len);
  b->iov[i].iov_len = len;
  b->msg[i].msg_hdr.msg_namelen = alen;
  b->count++;
}

/* --- conditioner --------------------------------------------------------- */

static void *dup_held(void *item, void *ctx) {
  (void)ctx;
  held *h = item;
  held *copy = pn__malloc(sizeof *h + h->len);
  if (copy) {
    memcpy(copy, h, sizeof *h + h->len);
  }
  return copy;
}

static void deliver_to_owner(pn_socket *s, const pn_addr *from,
                             const void *data, size_t len) {
  datagram_header hdr = {.from = *from, .socket_id = s->id};
  /* PN_ECLOSED: the owner stopped; the datagram has nobody to go to. */
  (void)pn__send_parts(s->owner, PN_MSG_DATAGRAM, &hdr, sizeof hdr, data, len);
}

static void arm_cond_timer(pn_socket *s) {
  uint64_t next = pn__conditioner_next_ns(&s->cond[0]);
  uint64_t next_recv = pn__conditioner_next_ns(&s->cond[1]);
  if (next_recv < next) {
    next = next_recv;
  }
  if (next == UINT64_MAX || (s->cond_timer && s->cond_timer_ns <= next)) {
    return;
  }
  if (s->cond_timer) {
    pn_timer_cancel(s->cond_timer);
    s->cond_timer = NULL;
  }
  uint64_t now = pn__now_ns();
  uint64_t delay_us = next > now ? (next - now + 999) / 1000 : 0;
  if (pn__timer_start(s->actor, PN__SOCK_COND_TICK, delay_us, 0,
                      &s->cond_timer) == PN_OK) {
    s->cond_timer_ns = next;
  }
}

static void release_due(pn_socket *s) {
  uint64_t now = pn__now_ns();
  held *h;
  while ((h = pn__conditioner_pop_due(&s->cond[PN_DIR_SEND], now))) {
    queue_send(s, &h->addr, h->data, h->len);
    free(h);
  }
  while ((h = pn__conditioner_pop_due(&s->cond[PN_DIR_RECV], now))) {
    deliver_to_owner(s, &h->addr, h->data, h->len);
    free(h);
  }
}

/* Routes one datagram through a direction's conditioner; false when the
 * conditioner is idle and the caller should go straight on. */
static bool condition(pn_socket *s, pn_direction dir, const pn_addr *addr,
                      const void *data, size_t len) {
  pn__conditioner *c = &s->cond[dir];
  if (!c->active && !c->count) {
    return false;
  }
  held *h = pn__malloc(sizeof *h + len);
  if (!h) {
    c->stats.dropped_rate++;
    return true;
  }
  h->addr = *addr;
  h->len = len;
  memcpy(h->data, data, len);
  pn__cond_stats before = c->stats;
  bool taken = pn__conditioner_submit(c, pn__now_ns(), len, h, dup_held, NULL);
  STAT_ADD(s, cond_dropped,
           (c->stats.dropped_loss - before.dropped_loss) +
               (c->stats.dropped_rate - before.dropped_rate));
  STAT_ADD(s, cond_delayed, c->stats.delayed - before.delayed);
  STAT_ADD(s, cond_duplicated, c->stats.duplicated - before.duplicated);
  if (!taken) {
    free(h);
    return true;
  }
  if (pn__conditioner_next_ns(c) <= pn__now_ns()) {
    release_due(s);
  }
  arm_cond_timer(s);
  return true;
}

/* --- receiving ----------------------------------------------------------- */

/* Reads the control messages: kernel drop counter, GRO segment size (0
 * when the slot holds one datagram). */
static size_t read_cmsgs(pn_socket *s, struct msghdr *mh) {
  size_t gro_size = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(cm), sizeof v);
      gro_size = v > 0 ? (size_t)v : 0;
    } else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
      uint32_t total;
      memcpy(&total, CMSG_DATA(cm), sizeof total);
      /* The kernel reports a running total for the socket. */
      STAT_ADD(s, kernel_drops, (uint32_t)(total - s->kernel_drops_seen));
      s->kernel_drops_seen = total;
    }
  }
  return gro_size;
}

static void received(pn_socket *s, const pn_addr *from,
                     const unsigned char *data, size_t len) {
  pn__tr(s->home, PN__TR_PACKET_RECV, s->id, len);
  if (len > s->max_datagram) {
    STAT_ADD(s, truncated, 1);
    return;
  }
  STAT_ADD(s, datagrams_in, 1);
  STAT_ADD(s, bytes_in, len);
  if (!condition(s, PN_DIR_RECV, from, data, len)) {
    deliver_to_owner(s, from, data, len);
  }
}

/* Reads up to RECV_BATCHES_PER_RUN batches. Returns true when the socket
 * may still hold datagrams (the caller posts itself another READY). */
static bool read_batches(pn_socket *s) {
  for (uint32_t b = 0; b < RECV_BATCHES_PER_RUN; b++) {
    for (uint32_t i = 0; i < s->rbatch; i++) {
      s->rmsg[i].msg_hdr.msg_namelen = sizeof s->raddr[i];
      s->rmsg[i].msg_hdr.msg_controllen = CTL_BYTES;
      s->rmsg[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(s->src.fd, s->rmsg, s->rbatch, MSG_DONTWAIT, NULL);
    STAT_ADD(s, syscalls, 1);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false; /* EAGAIN: drained (edge-triggered, so this matters) */
    }
    for (int i = 0; i < n; i++) {
      struct msghdr *mh = &s->rmsg[i].msg_hdr;
      size_t gro_size = read_cmsgs(s, mh);
      if (mh->msg_flags & MSG_TRUNC) {
        STAT_ADD(s, truncated, 1);
        continue;
      }
      size_t len = s->rmsg[i].msg_len;
      pn_addr from;
      pn__addr_from_sockaddr((struct sockaddr *)&s->raddr[i], &from);
      const unsigned char *data = s->rbuf + (size_t)i * s->rslot;
      if (!gro_size || gro_size >= len) {
        received(s, &from, data, len);
        continue;
      }
      /* A coalesced run: equal segments, the last may be shorter. */
      for (size_t off = 0; off < len; off += gro_size) {
        size_t seg = len - off < gro_size ? len - off : gro_size;
        received(s, &from, data + off, seg);
        STAT_ADD(s, gro_segments, 1);
      }
    }
    if ((uint32_t)n < s->rbatch) {
      return false;
    }
  }
  return true;
}

/* Backend callbacks for backends that receive by themselves (io_uring's
 * multishot recvmsg): they run on the home worker, the socket's own
 * thread, between or inside its runs, never concurrently with them. */
static void socket_on_datagram(pn__worker *w, pn__io_source *src,
                               const pn__io_datagram *d) {
  (void)w;
  pn_socket *s = socket_of(src);
  if (s->closed) {
    return;
  }
  KERNEL_DELIVERED();
  STAT_ADD(s, readiness, 1);
  if (d->has_ovfl) {
    STAT_ADD(s, kernel_drops, (uint32_t)(d->ovfl - s->kernel_drops_seen));
    s->kernel_drops_seen = d->ovfl;
  }
  if (d->truncated) {
    STAT_ADD(s, truncated, 1);
    return;
  }
  struct sockaddr_in6 name;
  memset(&name, 0, sizeof name);
  memcpy(&name, d->name, d->namelen < sizeof name ? d->namelen : sizeof name);
  pn_addr from;
  pn__addr_from_sockaddr((struct sockaddr *)&name, &from);
  if (!d->gro_size || d->gro_size >= d->len) {
    received(s, &from, d->data, d->len);
    return;
  }
  for (size_t off = 0; off < d->len; off += d->gro_size) {
    size_t seg = d->len - off < d->gro_size ? d->len - off : d->gro_size;
    received(s, &from, d->data + off, seg);
    STAT_ADD(s, gro_segments, 1);
  }
}

static void socket_on_recv_error(pn__worker *w, pn__io_source *src, int err) {
  (void)w;
  pn_socket *s = socket_of(src);
  if (err == ENOBUFS) {
    STAT_ADD(s, enobufs, 1);
  }
}

/* --- the actor ----------------------------------------------------------- */

const pn__stat_class pn__socket_class = {.name = "socket"};

void pn__socket_info_fill(const pn__stat_obj *o, pn_socket_info *info) {
  const pn_socket *s = PN__CONTAINER_OF(o, pn_socket, stat);
  memset(info, 0, sizeof *info);
  info->id = s->id;
  info->owner_id = pn_actor_id(s->owner);
  (void)pn_addr_format(&s->local, info->local, sizeof info->local);
  pn_err err = pn_socket_stats_get(s, &info->stats);
  PN_ASSERT(err == PN_OK); /* fails only for NULL arguments */
}

static void socket_on_detached(pn__worker *w, pn__io_source *src) {
  (void)w;
  pn_socket *s = socket_of(src);
  s->detached = true;
}

static void close_socket(pn_socket *s) {
  if (s->closed) {
    return;
  }
  s->closed = true;
  pn__registry_remove(s->rt, &s->stat);
  if (s->src.fd >= 0) {
    flush_sends(s);
  }
  if (s->attached) {
    /* Runs on the home worker. The backend may confirm at once (epoll) or
     * when the kernel has finished the cancelled requests (io_uring);
     * until then neither the memory nor the fd may go, so drive the
     * worker's completions here. A cancellation completes within a few
     * polls; the bound only guards against a broken kernel. */
    s->rt->io->del(s->home, &s->src);
    for (int i = 0; !s->detached && i < 100000; i++) {
      s->rt->io->poll(s->home);
    }
    s->attached = false;
  }
  if (s->src.fd >= 0) {
    close(s->src.fd);
    s->src.fd = -1;
  }
  for (int d = 0; d < 2; d++) {
    held *h;
    while ((h = pn__conditioner_drain(&s->cond[d]))) {
      free(h);
    }
  }
  if (s->cond_timer) {
    pn_timer_cancel(s->cond_timer);
    s->cond_timer = NULL;
  }
  if (s->owner) {
    (void)pn__send_parts(s->owner, PN_MSG_SOCKET_CLOSED, &s->id, sizeof s->id,
                         NULL, 0);
    pn_actor_release(s->owner);
    s->owner = NULL;
  }
}

static void socket_handler(pn_actor *self, void *state, const pn_msg *msg) {
  pn_socket *s = state;
  uint32_t type = pn_msg_type(msg);
  if (type == PN_MSG_STOPPED) {
    close_socket(s);
    socket_unref(s);
    return;
  }
  if (s->closed) {
    return;
  }
  switch (type) {
  case PN__SOCK_ATTACH:
    if (s->rt->io->add(s->home, &s->src) == PN_OK) {
      s->attached = true;
    } else {
      close_socket(s);
      (void)pn_actor_stop(self);
    }
    break;
  case PN__SOCK_READY: {
    /* relaxed: every access to ready runs on the home worker, the
     * backend's callback (socket_on_ready()) and this handler alike, so
     * one thread's program order orders them and acquire or release would
     * pair with nothing. */
    uint32_t ev = atomic_exchange_explicit(&s->ready, 0, memory_order_relaxed);
    STAT_ADD(s, readiness, 1);
    if ((ev & PN__IO_WRITE) && s->want_write) {
      flush_sends(s);
    }
    if ((ev & PN__IO_READ) && read_batches(s)) {
      /* More may be waiting: continue in a later run, after others.
       * relaxed: home worker only, as the exchange above. */
      if (!atomic_fetch_or_explicit(&s->ready, PN__IO_READ,
                                    memory_order_relaxed)) {
        (void)pn__send_parts(self, PN__SOCK_READY, NULL, 0, NULL, 0);
      }
    }
    break;
  }
  case PN__SOCK_SEND: {
    pn_addr to;
    memcpy(&to, pn_msg_data(msg), sizeof to);
    const unsigned char *data =
        (const unsigned char *)pn_msg_data(msg) + sizeof to;
    size_t len = pn_msg_size(msg) - sizeof to;
    if (!condition(s, PN_DIR_SEND, &to, data, len)) {
      queue_send(s, &to, data, len);
    }
    break;
  }
  case PN__SOCK_SET_COND: {
    uint32_t dir;
    pn_link_conditioner cfg;
    memcpy(&dir, pn_msg_data(msg), sizeof dir);
    memcpy(&cfg, (const unsigned char *)pn_msg_data(msg) + sizeof dir,
           sizeof cfg);
    PN_ASSERT(dir < 2); /* pn_socket_set_conditioner() checked it */
    (void)pn__conditioner_set(&s->cond[dir], &cfg);
    arm_cond_timer(s);
    break;
  }
  case PN__SOCK_COND_TICK:
    /* The one-shot fired (ticks of replaced timers are dropped, so this is
     * the current one): give its handle back. */
    pn_timer_cancel(s->cond_timer);
    s->cond_timer = NULL;
    release_due(s);
    arm_cond_timer(s);
    break;
  case PN__SOCK_CLOSE:
    close_socket(s);
    (void)pn_actor_stop(self);
    break;
  case PN_MSG_BATCH_END:
    if (!s->want_write) {
      flush_sends(s);
    }
    break;
  default:
    break;
  }
}

/* Backend callback, on the home worker: note and wake the actor once. */
static void socket_on_ready(pn__worker *w, pn__io_source *src, uint32_t ev) {
  (void)w;
  pn_socket *s = socket_of(src);
  /* The first setter sends the wakeup; the handler's exchange takes all
   * bits set since. relaxed: the backend calls this on the home worker,
   * the thread the handler runs on (see PN__SOCK_READY). */
  if (!atomic_fetch_or_explicit(&s->ready, ev, memory_order_relaxed)) {
    (void)pn__send_parts(s->actor, PN__SOCK_READY, NULL, 0, NULL, 0);
  }
}

/* --- opening ------------------------------------------------------------- */

static pn_err resolve(const pn_socket_config *cfg, struct sockaddr_in6 *sa,
                      socklen_t *len, int *family) {
  memset(sa, 0, sizeof *sa);
  const char *host = cfg->host;
  if (!host || !*host) {
    sa->sin6_family = AF_INET6;
    sa->sin6_addr = in6addr_any;
    sa->sin6_port = htons(cfg->port);
    *len = sizeof *sa;
    *family = AF_INET6;
    return PN_OK;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE;
  struct addrinfo *res = NULL;
  char port[8];
  snprintf(port, sizeof port, "%u", cfg->port);
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0 || !res) {
    if (rc == EAI_MEMORY) {
      return PN_ENOMEM;
    }
    if (rc == EAI_SYSTEM) {
      return pn__err_os(errno);
    }
    return PN_ENAMERESOLVE;
  }
  memcpy(sa, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  *family = res->ai_family;
  freeaddrinfo(res);
  return PN_OK;
}

static pn_err bind_error(int err) {
  switch (err) {
  case EADDRINUSE:
    return PN_EADDRINUSE;
  case EADDRNOTAVAIL:
  case EAFNOSUPPORT:
  case EINVAL:
    return PN_EADDRNOTAVAIL;
  default:
    return pn__err_os(err);
  }
}

static bool alloc_send_batch(pn_socket *s, send_batch *b) {
  size_t m = s->max_datagram;
  b->gmsg = pn__calloc(s->batch, sizeof *b->gmsg);
  b->gfirst = pn__calloc(s->batch, sizeof *b->gfirst);
  b->gcount = pn__calloc(s->batch, sizeof *b->gcount);
  b->gctl = pn__calloc(s->batch, GSO_CTL);
  b->req = pn__calloc(s->batch, sizeof *b->req);
  b->msg = pn__calloc(s->batch, sizeof *b->msg);
  b->iov = pn__calloc(s->batch, sizeof *b->iov);
  b->addr = pn__calloc(s->batch, sizeof *b->addr);
  b->buf = pn__malloc(s->batch * m);
  if (!b->gmsg || !b->gfirst || !b->gcount || !b->gctl || !b->req || !b->msg ||
      !b->iov || !b->addr || !b->buf) {
    return false;
  }
  for (uint32_t i = 0; i < s->batch; i++) {
    b->iov[i].iov_base = b->buf + i * m;
    b->msg[i].msg_hdr.msg_iov = &b->iov[i];
    b->msg[i].msg_hdr.msg_iovlen = 1;
    b->msg[i].msg_hdr.msg_name = &b->addr[i];
  }
  return true;
}

static bool alloc_batches(pn_socket *s) {
  if (!alloc_send_batch(s, &s->sb[0]) || !alloc_send_batch(s, &s->sb[1])) {
    return false;
  }
  s->cur = &s->sb[0];
  s->rmsg = pn__calloc(s->rbatch, sizeof *s->rmsg);
  s->riov = pn__calloc(s->rbatch, sizeof *s->riov);
  s->raddr = pn__calloc(s->rbatch, sizeof *s->raddr);
  s->rbuf = pn__malloc((size_t)s->rbatch * s->rslot);
  s->rctl = pn__calloc(s->rbatch, CTL_BYTES);
  if (!s->rmsg || !s->riov || !s->raddr || !s->rbuf || !s->rctl) {
    return false;
  }
  for (uint32_t i = 0; i < s->rbatch; i++) {
    s->riov[i].iov_base = s->rbuf + (size_t)i * s->rslot;
    s->riov[i].iov_len = s->rslot;
    s->rmsg[i].msg_hdr.msg_iov = &s->riov[i];
    s->rmsg[i].msg_hdr.msg_iovlen = 1;
    s->rmsg[i].msg_hdr.msg_name = &s->raddr[i];
    s->rmsg[i].msg_hdr.msg_control = s->rctl + (size_t)i * CTL_BYTES;
  }
  return true;
}

static pn_err open_fd(pn_socket *s, const pn_socket_config *cfg) {
  struct sockaddr_in6 sa;
  socklen_t salen = 0;
  int family = AF_INET6;
  pn_err err = resolve(cfg, &sa, &salen, &family);
  if (err != PN_OK) {
    return err;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && family == AF_INET6 && (!cfg->host || !*cfg->host) &&
      errno == EAFNOSUPPORT) {
    /* No IPv6 on this machine: "any" means IPv4 any. */
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)&sa;
    memset(&sa, 0, sizeof sa);
    in->sin_family = AF_INET;
    in->sin_port = htons(cfg->port);
    salen = sizeof *in;
    family = AF_INET;
    fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    return pn__err_os(errno);
  }
  int one = 1;
  int size = (int)(cfg->rcvbuf_bytes ? cfg->rcvbuf_bytes : DEFAULT_BUF_BYTES);
  /* Best effort: the kernel caps buffers at net.core.[rw]mem_max. */
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  size = (int)(cfg->sndbuf_bytes ? cfg->sndbuf_bytes : DEFAULT_BUF_BYTES);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  (void)setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
  /* GRO: the kernel hands over runs of same-sized datagrams from one
   * sender as one buffer; refused on old kernels, then slots stay small. */
  s->gro = !cfg->no_offload &&
           setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  s->gso = !cfg->no_offload;
  if (family == AF_INET6) {
    int v6only = cfg->ipv6_only ? 1 : 0;
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
  }
  if (bind(fd, (struct sockaddr *)&sa, salen) != 0) {
    int saved = errno;
    close(fd);
    return bind_error(saved);
  }
  struct sockaddr_in6 local;
  socklen_t llen = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0) {
    int saved = errno;
    close(fd);
    return pn__err_os(saved);
  }
  pn__addr_from_sockaddr((struct sockaddr *)&local, &s->local);
  if (family == AF_INET6 && s->local.family == PN_AF_INET) {
    /* A dual-stack socket bound to a mapped address reports IPv4. */
    s->local.family = PN_AF_INET;
  }
  s->family = family;
  s->v6only = family == AF_INET6 && cfg->ipv6_only;
  s->src.fd = fd;
  return PN_OK;
}

pn_err pn_socket_open(pn_runtime *rt, const pn_socket_config *cfg,
                      pn_socket **sock_out) {
  if (!rt || !cfg || !sock_out || cfg->size < sizeof(pn_socket_config) ||
      !cfg->owner || cfg->max_datagram > PN_DATAGRAM_MAX ||
      cfg->home_worker < -1 || cfg->home_worker >= (int32_t)rt->nworkers ||
      pn_link_conditioner_check(&cfg->send_conditioner) != PN_OK ||
      pn_link_conditioner_check(&cfg->recv_conditioner) != PN_OK ||
      cfg->owner->rt != rt) {
    return PN_EINVAL;
  }
  pn_socket *s = pn__calloc(1, sizeof *s);
  if (!s) {
    return PN_ENOMEM;
  }
  pn__list_init(&s->stat.link);
  s->rt = rt;
  s->src.fd = -1;
  s->src.on_ready = socket_on_ready;
  s->src.on_detached = socket_on_detached;
  s->src.on_datagram = socket_on_datagram;
  s->src.on_recv_error = socket_on_recv_error;
  s->src.on_sent = socket_on_sent;
  /* Rounded up so the control messages after the name stay aligned. */
  s->src.dgram_name_bytes = (sizeof(struct sockaddr_in6) + 7u) & ~7u;
  s->src.dgram_ctl_bytes = CTL_BYTES;
  s->id = atomic_fetch_add_explicit(&next_socket_id, 1, memory_order_relaxed);
  s->max_datagram =
      cfg->max_datagram ? cfg->max_datagram : DEFAULT_MAX_DATAGRAM;
  s->batch = BATCH_BYTES / s->max_datagram;
  s->batch = s->batch > BATCH_MAX ? BATCH_MAX : (s->batch ? s->batch : 1);
  (void)pn__conditioner_init(&s->cond[PN_DIR_SEND], &cfg->send_conditioner);
  (void)pn__conditioner_init(&s->cond[PN_DIR_RECV], &cfg->recv_conditioner);
  pn_err err = open_fd(s, cfg);
  if (err != PN_OK) {
    socket_free(s);
    return err;
  }
  /* One spare byte per slot so a datagram over max_datagram shows up as
   * MSG_TRUNC instead of fitting exactly. */
  s->rslot = s->gro ? GRO_SLOT : s->max_datagram + 1;
  s->src.dgram_slot_bytes = s->rslot;
  s->rbatch = s->gro ? GRO_SLOTS : s->batch;
  if (!alloc_batches(s)) {
    close(s->src.fd);
    socket_free(s);
    return PN_ENOMEM;
  }
  uint32_t home = cfg->home_worker >= 0 ? (uint32_t)cfg->home_worker
                                        : (uint32_t)(s->id % rt->nworkers);
  s->home = &rt->workers[home];
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "socket";
  acfg.handler = socket_handler;
  acfg.state = s;
  acfg.home_worker = (int32_t)home;
  acfg.batch_end = true;
  atomic_init(&s->refs, 2);
  err = pn_spawn(rt, &acfg, &s->actor);
  if (err != PN_OK) {
    close(s->src.fd);
    socket_free(s);
    return err;
  }
  /* acquire: pairs with the release fetch_or of DEAD in finish_stop()
   * (runtime/actor.c). */
  if (atomic_load_explicit(&cfg->owner->flags, memory_order_acquire) &
      PN__A_DEAD) {
    err = PN_ECLOSED;
  } else {
    pn_actor_hold(cfg->owner);
    s->owner = cfg->owner;
    /* The backend is driven from the home worker: the actor attaches the
     * fd with its first message. */
    err = pn__send_parts(s->actor, PN__SOCK_ATTACH, NULL, 0, NULL, 0);
    if (err != PN_OK) {
      pn_actor_release(s->owner);
      s->owner = NULL;
    }
  }
  if (err != PN_OK) {
    /* The actor exists: stop it; its PN_MSG_STOPPED drops its reference,
     * ours goes with the handle. Mark closed so it touches no fd. */
    close(s->src.fd);
    s->src.fd = -1;
    s->closed = true;
    (void)pn_actor_stop(s->actor);
    pn_actor_release(s->actor);
    socket_unref(s);
    return err;
  }
  pn__registry_add(rt, &s->stat, &pn__socket_class);
  *sock_out = s;
  return PN_OK;
}

pn_err pn_socket_local_addr(const pn_socket *sock, pn_addr *addr_out) {
  if (!sock || !addr_out) {
    return PN_EINVAL;
  }
  *addr_out = sock->local;
  return PN_OK;
}

uint64_t pn_socket_id(const pn_socket *sock) { return sock ? sock->id : 0; }

pn_err pn_socket_send(pn_socket *sock, const pn_addr *to, const void *data,
                      size_t len) {
  if (!sock || !to || (len && !data) ||
      (to->family != PN_AF_INET && to->family != PN_AF_INET6) ||
      (sock->family == AF_INET && to->family != PN_AF_INET) ||
      (sock->v6only && to->family == PN_AF_INET)) {
    return PN_EINVAL;
  }
  if (len > sock->max_datagram) {
    return PN_EMSGSIZE;
  }
  if (atomic_load_explicit(&sock->closing, memory_order_relaxed)) {
    return PN_ECLOSED;
  }
  return pn__send_parts(sock->actor, PN__SOCK_SEND, to, sizeof *to, data, len);
}

pn_err pn_socket_set_conditioner(pn_socket *sock, pn_direction dir,
                                 const pn_link_conditioner *cfg) {
  if (!sock || (dir != PN_DIR_SEND && dir != PN_DIR_RECV) ||
      pn_link_conditioner_check(cfg) != PN_OK) {
    return PN_EINVAL;
  }
  if (atomic_load_explicit(&sock->closing, memory_order_relaxed)) {
    return PN_ECLOSED;
  }
  uint32_t d = (uint32_t)dir;
  pn_link_conditioner copy = *cfg;
  copy.size = sizeof copy;
  return pn__send_parts(sock->actor, PN__SOCK_SET_COND, &d, sizeof d, &copy,
                        sizeof copy);
}

void pn_socket_close(pn_socket *sock) {
  if (!sock) {
    return;
  }
  atomic_store_explicit(&sock->closing, 1, memory_order_relaxed);
  /* PN_ECLOSED: the actor already stopped (runtime shutdown) and closed the
   * socket itself. */
  (void)pn__send_parts(sock->actor, PN__SOCK_CLOSE, NULL, 0, NULL, 0);
  pn_actor_release(sock->actor);
  socket_unref(sock);
}

pn_err pn_socket_stats_get(const pn_socket *sock, pn_socket_stats *stats_out) {
  if (!sock || !stats_out) {
    return PN_EINVAL;
  }
#define LOAD(f) atomic_load_explicit(&sock->f, memory_order_relaxed)
  pn_socket_stats st;
  memset(&st, 0, sizeof st);
  st.datagrams_in = LOAD(datagrams_in);
  st.bytes_in = LOAD(bytes_in);
  st.datagrams_out = LOAD(datagrams_out);
  st.bytes_out = LOAD(bytes_out);
  st.syscalls = LOAD(syscalls);
  st.readiness = LOAD(readiness);
  st.send_errors = LOAD(send_errors);
  st.send_drops = LOAD(send_drops);
  st.kernel_drops = LOAD(kernel_drops);
  st.truncated = LOAD(truncated);
  st.cond_dropped = LOAD(cond_dropped);
  st.cond_delayed = LOAD(cond_delayed);
  st.cond_duplicated = LOAD(cond_duplicated);
  st.gso_segments = LOAD(gso_segments);
  st.gro_segments = LOAD(gro_segments);
  st.enobufs = LOAD(enobufs);
#undef LOAD
  *stats_out = st;
  return PN_OK;
}

pn_err pn_msg_datagram(const pn_msg *msg, pn_datagram *out) {
  if (!msg || !out || pn_msg_type(msg) != PN_MSG_DATAGRAM ||
      pn_msg_size(msg) < sizeof(datagram_header)) {
    return PN_EINVAL;
  }
  datagram_header hdr;
  memcpy(&hdr, pn_msg_data(msg), sizeof hdr);
  out->from = hdr.from;
  out->socket_id = hdr.socket_id;
  out->data = (const unsigned char *)pn_msg_data(msg) + sizeof hdr;
  out->len = pn_msg_size(msg) - sizeof hdr;
  return PN_OK;
}
