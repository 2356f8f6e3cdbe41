/* Backend choice: the config field wins, then PEERNET_IO, then the best
 * backend this build has. io_uring is the next backend to land; until then
 * AUTO and PEERNET_IO=uring use epoll, and only an explicit config request
 * for io_uring fails. */
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
  *ops_out = &pn__io_epoll_ops;
  return PN_OK;
}
