/* PeerNet: an actor runtime carrying reliable UDP.
 *
 * Including this header is enough to use the library. Each header it
 * includes documents its own threading, ownership and errors.
 *
 * Configs are plain structs with a size field, so they can grow: start
 * from their PN_..._INIT macro and set what you need. The macros are
 * designated initialisers naming only the fields whose default is not
 * zero, so a new field never shifts an old one (C99 and later; C++20, or
 * in older C++ value-initialise the struct and assign size and those
 * fields by hand).
 */
#ifndef PEERNET_PEERNET_H
#define PEERNET_PEERNET_H

#include "peernet/conditioner.h"
#include "peernet/error.h"
#include "peernet/inbox.h"
#include "peernet/net.h"
#include "peernet/node.h"
#include "peernet/sim.h"
#include "peernet/runtime.h"
#include "peernet/socket.h"
#include "peernet/stats.h"

#define PEERNET_VERSION_MAJOR 0
#define PEERNET_VERSION_MINOR 1
#define PEERNET_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* Library version as "MAJOR.MINOR.PATCH"; static. Any thread. */
PN_API const char *pn_version(void);

#ifdef __cplusplus
}
#endif

#endif
