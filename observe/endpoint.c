/* Stats endpoint: see endpoint.h. */
#include "observe/endpoint.h"
#include "runtime/alloc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "peernet/stats.h"
#include "runtime/err_os.h"

typedef struct serve_args {
  pn__endpoint *ep;
  pn_runtime *rt;
} serve_args;

static void write_all(int fd, const char *buf, size_t len) {
  while (len) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return; /* the reader went away */
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void serve_one(pn_runtime *rt, int fd) {
  /* A reader gets 2 s to take the document; then it is dropped. */
  struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  pn_snapshot *snap = NULL;
  char *json = NULL;
  size_t len = 0;
  if (pn_snapshot_take(rt, &snap) == PN_OK &&
      pn_snapshot_json(snap, &json, &len) == PN_OK) {
    write_all(fd, json, len);
  }
  pn_free(json);
  pn_snapshot_free(snap);
}

static void *serve(void *arg) {
  serve_args *a = arg;
  pn__endpoint *ep = a->ep;
  pn_runtime *rt = a->rt;
  free(a);
  for (;;) {
    struct pollfd fds[2] = {{.fd = ep->listen_fd, .events = POLLIN},
                            {.fd = ep->stop_fd, .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    if (fds[1].revents) {
      break;
    }
    if (fds[0].revents & POLLIN) {
      int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0) {
        serve_one(rt, fd);
        close(fd);
      }
    }
  }
  return NULL;
}

/* What is at path, before binding there: nothing, or a socket file no
 * server answers on (a stale one from a crashed run, removed here), is
 * fine. A live server's socket is PN_EADDRINUSE and anything that is not a
 * socket PN_EADDRINUSE too: neither is ever removed. */
static pn_err clear_path(const struct sockaddr_un *sa) {
  struct stat st;
  if (lstat(sa->sun_path, &st) != 0) {
    return errno == ENOENT ? PN_OK : pn__err_os(errno);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return PN_EADDRINUSE; /* a file of someone else's */
  }
  int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) {
    return pn__err_os(errno);
  }
  int rc = connect(probe, (const struct sockaddr *)sa, sizeof *sa);
  int err = errno;
  close(probe);
  if (rc == 0) {
    return PN_EADDRINUSE; /* another runtime serves there */
  }
  if (err != ECONNREFUSED) {
    return pn__err_os(err);
  }
  return unlink(sa->sun_path) == 0 || errno == ENOENT ? PN_OK
                                                      : pn__err_os(errno);
}

pn_err pn__endpoint_start(pn__endpoint *ep, pn_runtime *rt, const char *path) {
  memset(ep, 0, sizeof *ep);
  ep->listen_fd = ep->stop_fd = -1;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof sa.sun_path) {
    return PN_EINVAL;
  }
  memcpy(sa.sun_path, path, n + 1);
  ep->path = strdup(path);
  if (!ep->path) {
    return PN_ENOMEM;
  }
  pn_err err = PN_OK;
  ep->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ep->stop_fd = eventfd(0, EFD_CLOEXEC);
  if (ep->listen_fd < 0 || ep->stop_fd < 0) {
    err = pn__err_os(errno);
  } else {
    err = clear_path(&sa);
    struct stat st;
    if (err == PN_OK &&
        (bind(ep->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
         stat(path, &st) != 0 || listen(ep->listen_fd, 16) != 0)) {
      err = pn__err_os(errno);
    }
    if (err == PN_OK) {
      /* Ours: only this file is removed at the end. */
      ep->dev = st.st_dev;
      ep->ino = st.st_ino;
      ep->bound = true;
    }
  }
  serve_args *args = NULL;
  if (err == PN_OK) {
    args = pn__malloc(sizeof *args);
    if (!args) {
      err = PN_ENOMEM;
    } else {
      *args = (serve_args){ep, rt};
      int rc = pthread_create(&ep->thread, NULL, serve, args);
      if (rc != 0) {
        free(args);
        err = pn__err_os(rc);
      } else {
        ep->running = true;
      }
    }
  }
  if (err != PN_OK) {
    pn__endpoint_stop(ep);
  }
  return err;
}

void pn__endpoint_stop(pn__endpoint *ep) {
  if (!ep->path) {
    return; /* never started (the runtime zeroes it) */
  }
  if (ep->running) {
    uint64_t one = 1;
    ssize_t r = write(ep->stop_fd, &one, sizeof one);
    (void)r;
    pthread_join(ep->thread, NULL);
    ep->running = false;
  }
  if (ep->listen_fd >= 0) {
    close(ep->listen_fd);
    ep->listen_fd = -1;
    /* Only the socket this endpoint made: another server may have put its
     * own at the path since (after removing ours). */
    struct stat st;
    if (ep->bound && lstat(ep->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
        st.st_dev == ep->dev && st.st_ino == ep->ino) {
      (void)unlink(ep->path);
    }
  }
  if (ep->stop_fd >= 0) {
    close(ep->stop_fd);
    ep->stop_fd = -1;
  }
  free(ep->path);
  ep->path = NULL;
}
