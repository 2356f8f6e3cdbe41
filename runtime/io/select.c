/* Backend choice: the config field wins, then PEERNET_IO, then the best
 * backend this build has. io_uring is the next backend to land; until then
 * AUTO and PEERNET_IO=uring use epoll (saying so once on stderr), and only
 * an explicit config request for io_uring fails. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/io.h"

pn_err pn__io_select(pn_io_backend requested, const pn__io_ops **ops_out) {
  if (requested == PN_IO_URING) {
    return PN_ENOTSUP;
  }
  if (requested != PN_IO_AUTO && requested != PN_IO_EPOLL) {
    return PN_EINVAL;
  }
  const char *env = getenv("PEERNET_IO");
  if (requested == PN_IO_AUTO && env && *env && strcmp(env, "epoll") != 0) {
    static atomic_flag said = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&said)) {
      fprintf(stderr,
              "peernet: PEERNET_IO=%s is not available in this build; "
              "using epoll\n",
              env);
    }
  }
  *ops_out = &pn__io_epoll_ops;
  return PN_OK;
}
