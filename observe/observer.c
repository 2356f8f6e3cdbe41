/* The library's observer hooks (runtime/observer.h): the stats endpoint. */
#include <stdlib.h>

#include "observe/endpoint.h"
#include "runtime/alloc.h"
#include "runtime/observer.h"

static pn_err endpoint_start(pn_runtime *rt, const char *path,
                             void **state_out) {
  pn__endpoint *ep = pn__calloc(1, sizeof *ep);
  if (!ep) {
    return PN_ENOMEM;
  }
  pn_err err = pn__endpoint_start(ep, rt, path);
  if (err != PN_OK) {
    free(ep);
    return err;
  }
  *state_out = ep;
  return PN_OK;
}

static void endpoint_stop(void *state) {
  if (state) {
    pn__endpoint_stop(state);
    free(state);
  }
}

const pn__observer_hooks_t pn__observer_hooks = {.start = endpoint_start,
                                                 .stop = endpoint_stop};
