/* Conversions between pn_addr and the kernel's socket addresses. Pure;
 * any thread. */
#ifndef PN_ACTORS_ADDR_H
#define PN_ACTORS_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "peernet/socket.h"

/* Kernel address to pn_addr; IPv4-mapped IPv6 comes back as IPv4. */
void pn__addr_from_sockaddr(const struct sockaddr *sa, pn_addr *out);

/* pn_addr to a kernel address for a socket of `family` (AF_INET or
 * AF_INET6, v6only as set on it); false when that socket cannot reach it. */
bool pn__addr_to_sockaddr(const pn_addr *a, int family, bool v6only,
                          struct sockaddr_in6 *out, socklen_t *len);

#endif
