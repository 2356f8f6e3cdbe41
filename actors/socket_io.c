/* The socket's data path: datagrams queued in send batches and flushed
 * with one sendmmsg (epoll) or ring submissions (io_uring) at the end of a
 * run, runs of one destination and size sent as UDP_SEGMENT (GSO) groups;
 * receive batches read with recvmmsg or handed over by the ring, GRO runs
 * split; a link conditioner on each direction. Runs on the socket's home
 * worker only (see socket.h). */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "actors/addr.h"
#include "actors/msg_ids.h"
#include "actors/socket.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/tsan.h"

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

void pn__socket_batch_free(send_batch *b) {
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

bool pn__socket_alloc_batches(pn_socket *s) {
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
    PN__SOCK_STAT_ADD(s, bytes_out, b->iov[b->gfirst[g] + k].iov_len);
  }
  if (count > 1) {
    PN__SOCK_STAT_ADD(s, gso_segments, count);
  }
  PN__SOCK_STAT_ADD(s, datagrams_out, count);
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
    PN__SOCK_STAT_ADD(s, syscalls, 1);
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
    PN__SOCK_STAT_ADD(s, send_errors, b->gcount[0]);
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
      PN__SOCK_STAT_ADD(s, send_drops, b->gcount[g]);
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

void pn__socket_flush_sends(pn_socket *s) {
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
void pn__socket_on_sent(pn__worker *w, pn__io_send *io, int res) {
  (void)w;
  send_req *req = (send_req *)(void *)io;
  send_batch *b = req->batch;
  pn_socket *s = pn__socket_of(io->src);
  uint32_t g = req->group;
  pn__tr(s->home, PN__TR_IO_COMPLETE, s->id, (uint64_t)(int64_t)res);
  if (res >= 0) {
    count_sent(s, b, g);
  } else {
    if (b->gcount[g] > 1 && gso_refused(-res)) {
      s->gso = false; /* sticky; this group's datagrams are lost */
    }
    PN__SOCK_STAT_ADD(s, send_errors, b->gcount[g]);
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
    pn__socket_flush_sends(s);
  }
  /* Both batches in the kernel (a burst larger than two batches within
   * one run): submit and reap now rather than drop; UDP sends complete as
   * they are submitted. The bound only guards against a stuck kernel. */
  for (int i = 0; !s->cur && s->attached && i < 1000; i++) {
    s->rt->io->poll(s->home);
  }
  send_batch *b = s->cur;
  if (!b || b->count == s->batch) {
    PN__SOCK_STAT_ADD(s, send_drops,
                      1); /* every batch is full or in the kernel */
    return;
  }
  uint32_t i = b->count;
  socklen_t alen = 0;
  if (!pn__addr_to_sockaddr(to, s->family, s->v6only, &b->addr[i], &alen)) {
    PN__SOCK_STAT_ADD(s, send_errors, 1);
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

void pn__socket_arm_cond_timer(pn_socket *s) {
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

void pn__socket_release_due(pn_socket *s) {
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
  PN__SOCK_STAT_ADD(s, cond_dropped,
                    (c->stats.dropped_loss - before.dropped_loss) +
                        (c->stats.dropped_rate - before.dropped_rate));
  PN__SOCK_STAT_ADD(s, cond_delayed, c->stats.delayed - before.delayed);
  PN__SOCK_STAT_ADD(s, cond_duplicated,
                    c->stats.duplicated - before.duplicated);
  if (!taken) {
    free(h);
    return true;
  }
  if (pn__conditioner_next_ns(c) <= pn__now_ns()) {
    pn__socket_release_due(s);
  }
  pn__socket_arm_cond_timer(s);
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
      PN__SOCK_STAT_ADD(s, kernel_drops,
                        (uint32_t)(total - s->kernel_drops_seen));
      s->kernel_drops_seen = total;
    }
  }
  return gro_size;
}

static void received(pn_socket *s, const pn_addr *from,
                     const unsigned char *data, size_t len) {
  pn__tr(s->home, PN__TR_PACKET_RECV, s->id, len);
  if (len > s->max_datagram) {
    PN__SOCK_STAT_ADD(s, truncated, 1);
    return;
  }
  PN__SOCK_STAT_ADD(s, datagrams_in, 1);
  PN__SOCK_STAT_ADD(s, bytes_in, len);
  if (!condition(s, PN_DIR_RECV, from, data, len)) {
    deliver_to_owner(s, from, data, len);
  }
}

/* Reads up to RECV_BATCHES_PER_RUN batches. Returns true when the socket
 * may still hold datagrams (the caller posts itself another READY). */
bool pn__socket_read_batches(pn_socket *s) {
  for (uint32_t b = 0; b < RECV_BATCHES_PER_RUN; b++) {
    for (uint32_t i = 0; i < s->rbatch; i++) {
      s->rmsg[i].msg_hdr.msg_namelen = sizeof s->raddr[i];
      s->rmsg[i].msg_hdr.msg_controllen = CTL_BYTES;
      s->rmsg[i].msg_hdr.msg_flags = 0;
    }
    int n = recvmmsg(s->src.fd, s->rmsg, s->rbatch, MSG_DONTWAIT, NULL);
    PN__SOCK_STAT_ADD(s, syscalls, 1);
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
        PN__SOCK_STAT_ADD(s, truncated, 1);
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
        PN__SOCK_STAT_ADD(s, gro_segments, 1);
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
void pn__socket_on_datagram(pn__worker *w, pn__io_source *src,
                            const pn__io_datagram *d) {
  (void)w;
  pn_socket *s = pn__socket_of(src);
  if (s->closed) {
    return;
  }
  KERNEL_DELIVERED();
  PN__SOCK_STAT_ADD(s, readiness, 1);
  if (d->has_ovfl) {
    PN__SOCK_STAT_ADD(s, kernel_drops,
                      (uint32_t)(d->ovfl - s->kernel_drops_seen));
    s->kernel_drops_seen = d->ovfl;
  }
  if (d->truncated) {
    PN__SOCK_STAT_ADD(s, truncated, 1);
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
    PN__SOCK_STAT_ADD(s, gro_segments, 1);
  }
}

void pn__socket_on_recv_error(pn__worker *w, pn__io_source *src, int err) {
  (void)w;
  pn_socket *s = pn__socket_of(src);
  if (err == ENOBUFS) {
    PN__SOCK_STAT_ADD(s, enobufs, 1);
  }
}

void pn__socket_send(pn_socket *s, const pn_addr *to, const void *data,
                     size_t len) {
  if (!condition(s, PN_DIR_SEND, to, data, len)) {
    queue_send(s, to, data, len);
  }
}
