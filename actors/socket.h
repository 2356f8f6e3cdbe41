/* What the rest of the library sees of the socket actor beyond its public
 * API (peernet/socket.h): its class in the runtime's registry of objects,
 * and its row in a snapshot. */
#ifndef PN_ACTORS_SOCKET_H
#define PN_ACTORS_SOCKET_H

#include "peernet/socket.h"
#include "peernet/stats.h"
#include "runtime/registry.h"

/* Sockets are registered under this class from pn_socket_open() until
 * they close. */
extern const pn__stat_class pn__socket_class;

/* The snapshot row of the socket registered as o. Under the registry lock
 * (the socket cannot be freed meanwhile). */
void pn__socket_info_fill(const pn__stat_obj *o, pn_socket_info *info);

#endif
