/* See bench_pair.h. */
#include "tests/bench/bench_pair.h"

#include <stdio.h>

pn_runtime *bench_pair_start(pn_io_backend io, const char *what,
                             const char *server_name, pn_handler server,
                             const char *client_name, pn_handler client,
                             void *state, pn_actor **server_app,
                             pn_actor **client_app) {
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 2;
  rc.io = io;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&rc, &rt) != PN_OK) {
    fprintf(stderr, "%s: runtime\n", what);
    return NULL;
  }
  pn_actor_config ac = PN_ACTOR_CONFIG_INIT;
  ac.name = server_name;
  ac.handler = server;
  ac.state = state;
  ac.home_worker = 0;
  *server_app = NULL;
  *client_app = NULL;
  (void)pn_spawn(rt, &ac, server_app);
  ac.name = client_name;
  ac.handler = client;
  ac.home_worker = 1;
  (void)pn_spawn(rt, &ac, client_app);
  return rt;
}
