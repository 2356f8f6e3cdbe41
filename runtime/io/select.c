/* Backend choice: the config field wins, then PEERNET_IO=uring|epoll, then
 * io_uring when this kernel and sandbox allow it (Docker's and
 * containerd's default seccomp profiles do not), else epoll. The choice is
 * written once per process on stderr so a deployment can see it. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/io.h"

static void say_once(const char *name, const char *why) {
  static atomic_flag said = ATOMIC_FLAG_INIT;
  /* relaxed: only the flag itself matters (one line, once). */
  if (!atomic_flag_test_and_set_explicit(&said, memory_order_relaxed)) {
    fprintf(stderr, "peernet: I/O backend %s (%s)\n", name, why);
  }
}

pn_err pn__io_select(pn_io_backend requested, const pn__io_ops **ops_out) {
  if (requested != PN_IO_AUTO && requested != PN_IO_EPOLL &&
      requested != PN_IO_URING) {
    return PN_EINVAL;
  }
  const char *why = "configured";
  if (requested == PN_IO_AUTO) {
    const char *env = getenv("PEERNET_IO");
    if (env && strcmp(env, "uring") == 0) {
      requested = PN_IO_URING;
      why = "PEERNET_IO";
    } else if (env && strcmp(env, "epoll") == 0) {
      requested = PN_IO_EPOLL;
      why = "PEERNET_IO";
    } else if (pn__io_uring_available()) {
      requested = PN_IO_URING;
      why = "probed";
    } else {
      requested = PN_IO_EPOLL;
      why = "io_uring not available";
    }
  }
  if (requested == PN_IO_URING && !pn__io_uring_available()) {
    return PN_ENOTSUP;
  }
  *ops_out = requested == PN_IO_URING ? &pn__io_uring_ops : &pn__io_epoll_ops;
  say_once((*ops_out)->name, why);
  return PN_OK;
}
