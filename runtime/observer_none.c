/* The runtime-only build's observer hooks (see observer.h): no stats
 * socket without the observability layer. */
#include <stddef.h>

#include "runtime/observer.h"

static pn_err none_start(pn_runtime *rt, const char *path, void **state_out) {
  (void)rt;
  (void)path;
  (void)state_out;
  return PN_ENOTSUP;
}

static void none_stop(void *state) { (void)state; }

const pn__observer_hooks_t pn__observer_hooks = {.start = none_start,
                                                 .stop = none_stop};
