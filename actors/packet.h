/* The packet object behind the public pn_packet (net.h): an immutable,
 * reference-counted payload shared by every peer that sends it. */
#ifndef PN_ACTORS_PACKET_H
#define PN_ACTORS_PACKET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/net.h"

struct pn_packet {
  _Atomic uint32_t refs;
  uint32_t len;   /* at most PN_PACKET_MAX */
  pn_runtime *rt; /* a block of rt's pools (pn__block_alloc), or NULL:
                     malloc'd */
  unsigned char data[];
};

/* A packet of len uninitialised bytes, one reference; from rt's pools
 * when rt is not NULL. NULL when out of memory. Any thread. */
pn_packet *pn__packet_new(pn_runtime *rt, size_t len);

#endif
