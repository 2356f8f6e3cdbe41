/* The setup the in-process client/server benches share: a two-worker
 * runtime with the server's application actor on worker 0 and the
 * client's on worker 1, so each side's host and peers run on their own
 * core. Main thread only; blocks while the runtime starts. */
#ifndef PN_BENCH_PAIR_H
#define PN_BENCH_PAIR_H

#include <peernet/peernet.h>

/* Creates the runtime and spawns both actors (handlers with `state`,
 * named server_name and client_name). Returns NULL, having printed why
 * after `what`, when the runtime could not be made; the caller owns the
 * runtime and both actor handles otherwise. */
pn_runtime *bench_pair_start(pn_io_backend io, const char *what,
                             const char *server_name, pn_handler server,
                             const char *client_name, pn_handler client,
                             void *state, pn_actor **server_app,
                             pn_actor **client_app);

#endif
