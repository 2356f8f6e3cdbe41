/* The NetSocket actor: one UDP socket, homed on the worker whose I/O
 * backend watches its file descriptor.
 *
 * States: open -> closed (fd deregistered and closed, owner told) -> stopped.
 *
 * Messages it handles:
 *   PN__SOCK_ATTACH     first message: start watching the fd (the backend
 *                       must be driven from the home worker's thread).
 *   PN__SOCK_READY      the backend saw the fd readable or writable: read
 *                       datagrams in batches and hand each to the owner;
 *                       retry queued sends.
 *   PN__SOCK_SEND       a pn_addr and the bytes to send: queued (through
 *                       the send conditioner when one is set).
 *   PN__SOCK_SET_COND   new conditioner settings for one direction.
 *   PN__SOCK_COND_TICK  the conditioner's timer: release what is due.
 *   PN__SOCK_CLOSE      pn_socket_close(): send what is queued, close, tell
 *                       the owner, stop.
 *   PN_MSG_BATCH_END    end of a run: send the queued batch.
 *   PN_MSG_STOPPED      runtime shutdown (or after close): release all.
 *
 * The data path (batches, GSO/GRO, conditioners) is socket_io.c.
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

static _Atomic uint64_t next_socket_id = 1;

/* --- lifetime ------------------------------------------------------------ */

static void socket_free(pn_socket *s) {
  pn__socket_batch_free(&s->sb[0]);
  pn__socket_batch_free(&s->sb[1]);
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
  pn_socket *s = pn__socket_of(src);
  s->detached = true;
}

static void close_socket(pn_socket *s) {
  if (s->closed) {
    return;
  }
  s->closed = true;
  pn__registry_remove(s->rt, &s->stat);
  if (s->src.fd >= 0) {
    pn__socket_flush_sends(s);
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

static void set_filter(pn_socket *s, const void *prog, size_t bytes) {
  struct sock_filter f[PN__SOCKET_FILTER_MAX];
  struct sock_fprog fp = {.len = (unsigned short)(bytes / sizeof f[0]),
                          .filter = f};
  if (bytes) {
    memcpy(f, prog, bytes); /* pn__socket_set_filter() checked the size */
  }
  if (s->src.fd < 0) {
    return;
  }
  /* Failures leave the old filter (or none): the datagrams it would have
   * dropped reach the owner, which has its own limits. ENOENT: there was
   * no filter to detach. */
  if (fp.len) {
    (void)setsockopt(s->src.fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
  } else {
    (void)setsockopt(s->src.fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
  }
}

pn_err pn__socket_set_filter(pn_socket *s, const struct sock_filter *prog,
                             uint32_t len) {
  if (!s || len > PN__SOCKET_FILTER_MAX || (len && !prog)) {
    return PN_EINVAL;
  }
  return pn__send_parts(s->actor, PN__SOCK_SET_FILTER, prog, len * sizeof *prog,
                        NULL, 0);
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
    PN__SOCK_STAT_ADD(s, readiness, 1);
    if ((ev & PN__IO_WRITE) && s->want_write) {
      pn__socket_flush_sends(s);
    }
    if ((ev & PN__IO_READ) && pn__socket_read_batches(s)) {
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
    pn__socket_send(s, &to, data, len);
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
    pn__socket_arm_cond_timer(s);
    break;
  }
  case PN__SOCK_SET_FILTER:
    set_filter(s, pn_msg_data(msg), pn_msg_size(msg));
    break;
  case PN__SOCK_COND_TICK:
    /* The one-shot fired (ticks of replaced timers are dropped, so this is
     * the current one): give its handle back. */
    pn_timer_cancel(s->cond_timer);
    s->cond_timer = NULL;
    pn__socket_release_due(s);
    pn__socket_arm_cond_timer(s);
    break;
  case PN__SOCK_CLOSE:
    close_socket(s);
    (void)pn_actor_stop(self);
    break;
  case PN_MSG_BATCH_END:
    if (!s->want_write) {
      pn__socket_flush_sends(s);
    }
    break;
  default:
    break;
  }
}

/* Backend callback, on the home worker: note and wake the actor once. */
static void socket_on_ready(pn__worker *w, pn__io_source *src, uint32_t ev) {
  (void)w;
  pn_socket *s = pn__socket_of(src);
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
  s->src.on_datagram = pn__socket_on_datagram;
  s->src.on_recv_error = pn__socket_on_recv_error;
  s->src.on_sent = pn__socket_on_sent;
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
  if (!pn__socket_alloc_batches(s)) {
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
  /* acquire: pairs with the release fetch_or of DEAD in
   * pn__actor_mark_stopped() (runtime/actor.c). */
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
    pn__registry_remove(rt, &s->stat); /* never listed */
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
