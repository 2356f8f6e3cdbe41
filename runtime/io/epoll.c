/* epoll backend: each worker waits in epoll_wait on its own epoll instance,
 * with an eventfd registered so other threads can end the wait.
 *
 * epoll_pwait2 (Linux 5.11, glibc 2.35) takes a nanosecond timeout; older
 * kernels fall back to epoll_wait with the timeout rounded up to a
 * millisecond, so a timer never fires early. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/err_os.h"
#include "runtime/io/io.h"
#include "runtime/tsan.h"
#include "runtime/worker.h"

static pn_err epoll_worker_init(pn__worker *w) {
  w->io.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (w->io.epfd < 0) {
    return pn__err_os(errno);
  }
  w->io.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (w->io.wakefd < 0) {
    int saved = errno;
    close(w->io.epfd);
    w->io.epfd = -1;
    return pn__err_os(saved);
  }
  struct epoll_event ev = {.events = EPOLLIN, .data = {.ptr = NULL}};
  if (epoll_ctl(w->io.epfd, EPOLL_CTL_ADD, w->io.wakefd, &ev) != 0) {
    int saved = errno;
    close(w->io.wakefd);
    close(w->io.epfd);
    w->io.wakefd = w->io.epfd = -1;
    return pn__err_os(saved);
  }
  return PN_OK;
}

static void epoll_worker_fini(pn__worker *w) {
  if (w->io.wakefd >= 0) {
    close(w->io.wakefd);
  }
  if (w->io.epfd >= 0) {
    close(w->io.epfd);
  }
  w->io.wakefd = w->io.epfd = -1;
}

static int epoll_wait_ns(int epfd, struct epoll_event *evs, int n,
                         int64_t timeout_ns) {
#ifdef PN__TSAN
  /* ThreadSanitizer (GCC 12) models epoll_ctl -> epoll_wait as a
   * happens-before edge but does not know epoll_pwait2. */
  static _Atomic int have_pwait2 = 0;
#else
  static _Atomic int have_pwait2 = 1;
#endif
  if (atomic_load_explicit(&have_pwait2, memory_order_relaxed)) {
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (timeout_ns >= 0) {
      ts.tv_sec = (time_t)(timeout_ns / 1000000000);
      ts.tv_nsec = (long)(timeout_ns % 1000000000);
      tsp = &ts;
    }
    int r = epoll_pwait2(epfd, evs, n, tsp, NULL);
    if (r >= 0 || errno != ENOSYS) {
      return r;
    }
    atomic_store_explicit(&have_pwait2, 0, memory_order_relaxed);
  }
  int ms = -1;
  if (timeout_ns >= 0) {
    int64_t rounded = (timeout_ns + 999999) / 1000000;
    ms = rounded > 1000000 ? 1000000 : (int)rounded;
  }
  return epoll_wait(epfd, evs, n, ms);
}

static void dispatch(pn__worker *w, struct epoll_event *evs, int n) {
  for (int i = 0; i < n; i++) {
    pn__io_source *src = evs[i].data.ptr;
    if (src == NULL) {
      uint64_t v;
      /* Drains the wakeups; EAGAIN means another read already did. */
      ssize_t r = read(w->io.wakefd, &v, sizeof v);
      (void)r;
      continue;
    }
    uint32_t ev = 0;
    if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
      ev |= PN__IO_READ;
    }
    if (evs[i].events & (EPOLLOUT | EPOLLERR)) {
      ev |= PN__IO_WRITE;
    }
    src->on_ready(w, src, ev);
  }
}

static void epoll_wait_op(pn__worker *w, int64_t timeout_ns) {
  struct epoll_event evs[64];
  int n = epoll_wait_ns(w->io.epfd, evs, 64, timeout_ns);
  dispatch(w, evs, n);
}

static void epoll_poll_op(pn__worker *w) {
  struct epoll_event evs[64];
  int n = epoll_wait(w->io.epfd, evs, 64, 0);
  dispatch(w, evs, n);
}

static pn_err epoll_thread_start(pn__worker *w) {
  (void)w;
  return PN_OK;
}

/* Watches writability too: with EPOLLET it fires only when a full send
 * buffer drains, which is exactly when a blocked sender wants to know. */
static pn_err epoll_add_op(pn__worker *w, pn__io_source *src) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                           .data = {.ptr = src}};
  if (epoll_ctl(w->io.epfd, EPOLL_CTL_ADD, src->fd, &ev) != 0) {
    return pn__err_os(errno);
  }
  atomic_fetch_add_explicit(&w->io_sources, 1, memory_order_relaxed);
  return PN_OK;
}

static void epoll_want_write(pn__worker *w, pn__io_source *src) {
  (void)w;
  (void)src; /* EPOLLOUT is always armed, edge-triggered */
}

/* On the owning worker, so no event for src is being dispatched: once the
 * fd is out of the epoll set nothing refers to src. */
static void epoll_del_op(pn__worker *w, pn__io_source *src) {
  if (epoll_ctl(w->io.epfd, EPOLL_CTL_DEL, src->fd, NULL) == 0) {
    atomic_fetch_sub_explicit(&w->io_sources, 1, memory_order_relaxed);
  }
  src->on_detached(w, src);
}

static void epoll_wake_op(pn__worker *w) {
  uint64_t one = 1;
  /* EAGAIN (counter saturated) still leaves the eventfd readable. */
  ssize_t r = write(w->io.wakefd, &one, sizeof one);
  (void)r;
}

const pn__io_ops pn__io_epoll_ops = {
    .name = "epoll",
    .worker_init = epoll_worker_init,
    .worker_fini = epoll_worker_fini,
    .wait = epoll_wait_op,
    .wake = epoll_wake_op,
    .poll = epoll_poll_op,
    .thread_start = epoll_thread_start,
    .add = epoll_add_op,
    .want_write = epoll_want_write,
    .send_msg = NULL, /* sockets send with sendmmsg */
    .del = epoll_del_op,
};
