/* pn_addr: parsing, formatting, and conversion to and from the kernel's
 * socket addresses. */
#include "actors/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pn_err pn_addr_parse(const char *text, pn_addr *out) {
  if (!text || !out) {
    return PN_EINVAL;
  }
  char host[INET6_ADDRSTRLEN + 16];
  const char *port_text;
  pn_addr a;
  memset(&a, 0, sizeof a);
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (!close || close[1] != ':' ||
        (size_t)(close - text - 1) >= sizeof host) {
      return PN_EINVAL;
    }
    memcpy(host, text + 1, (size_t)(close - text - 1));
    host[close - text - 1] = '\0';
    port_text = close + 2;
    char *pct = strchr(host, '%');
    if (pct) {
      *pct = '\0';
      unsigned idx = if_nametoindex(pct + 1);
      char *end = NULL;
      unsigned long v = strtoul(pct + 1, &end, 10);
      a.scope_id = idx ? idx : (end && *end == '\0' ? (uint32_t)v : 0);
    }
    if (inet_pton(AF_INET6, host, a.ip) != 1) {
      return PN_EINVAL;
    }
    a.family = PN_AF_INET6;
  } else {
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof host) {
      return PN_EINVAL;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    port_text = colon + 1;
    if (inet_pton(AF_INET, host, a.ip) != 1) {
      return PN_EINVAL;
    }
    a.family = PN_AF_INET;
  }
  char *end = NULL;
  errno = 0;
  unsigned long port = strtoul(port_text, &end, 10);
  if (!*port_text || *port_text == '-' || *port_text == '+' || errno || *end ||
      port > 65535) {
    return PN_EINVAL;
  }
  a.port = (uint16_t)port;
  *out = a;
  return PN_OK;
}

pn_err pn_addr_format(const pn_addr *addr, char *buf, size_t cap) {
  if (!addr || !buf) {
    return PN_EINVAL;
  }
  char ip[INET6_ADDRSTRLEN];
  int n;
  if (addr->family == PN_AF_INET) {
    inet_ntop(AF_INET, addr->ip, ip, sizeof ip);
    n = snprintf(buf, cap, "%s:%u", ip, addr->port);
  } else if (addr->family == PN_AF_INET6) {
    inet_ntop(AF_INET6, addr->ip, ip, sizeof ip);
    n = snprintf(buf, cap, "[%s]:%u", ip, addr->port);
  } else {
    return PN_EINVAL;
  }
  return n > 0 && (size_t)n < cap ? PN_OK : PN_ERANGE;
}

bool pn_addr_equal(const pn_addr *a, const pn_addr *b) {
  if (!a || !b || a->family != b->family || a->port != b->port) {
    return false;
  }
  size_t n = a->family == PN_AF_INET ? 4 : 16;
  return memcmp(a->ip, b->ip, n) == 0 &&
         (a->family == PN_AF_INET || a->scope_id == b->scope_id);
}

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};

void pn__addr_from_sockaddr(const struct sockaddr *sa, pn_addr *out) {
  memset(out, 0, sizeof *out);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    out->family = PN_AF_INET;
    out->port = ntohs(in->sin_port);
    memcpy(out->ip, &in->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    out->port = ntohs(in6->sin6_port);
    if (memcmp(in6->sin6_addr.s6_addr, v4_mapped_prefix, 12) == 0) {
      out->family = PN_AF_INET;
      memcpy(out->ip, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      out->family = PN_AF_INET6;
      memcpy(out->ip, in6->sin6_addr.s6_addr, 16);
      out->scope_id = in6->sin6_scope_id;
    }
  }
}

bool pn__addr_to_sockaddr(const pn_addr *a, int family, bool v6only,
                          struct sockaddr_in6 *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET) {
    if (a->family != PN_AF_INET) {
      return false;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)out;
    in->sin_family = AF_INET;
    in->sin_port = htons(a->port);
    memcpy(&in->sin_addr, a->ip, 4);
    *len = sizeof *in;
    return true;
  }
  out->sin6_family = AF_INET6;
  out->sin6_port = htons(a->port);
  if (a->family == PN_AF_INET) {
    if (v6only) {
      return false;
    }
    memcpy(out->sin6_addr.s6_addr, v4_mapped_prefix, 12);
    memcpy(out->sin6_addr.s6_addr + 12, a->ip, 4);
  } else if (a->family == PN_AF_INET6) {
    memcpy(out->sin6_addr.s6_addr, a->ip, 16);
    out->sin6_scope_id = a->scope_id;
  } else {
    return false;
  }
  *len = sizeof *out;
  return true;
}

pn_err pn_addr_resolve(const char *name, uint16_t port, uint16_t family,
                       pn_addr *out) {
  if (!name || !*name || !out ||
      (family && family != PN_AF_INET && family != PN_AF_INET6)) {
    return PN_EINVAL;
  }
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family == PN_AF_INET    ? AF_INET
                    : family == PN_AF_INET6 ? AF_INET6
                                            : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  struct addrinfo *res = NULL;
  int rc = getaddrinfo(name, NULL, &hints, &res);
  if (rc != 0 || !res) {
    return rc == EAI_MEMORY ? PN_ENOMEM : PN_ENAMERESOLVE;
  }
  /* IPv4 first when either will do: a dual-stack name's IPv6 address is
   * often the one a host without an IPv6 route cannot reach. */
  const struct addrinfo *pick = NULL;
  for (const struct addrinfo *r = res; r; r = r->ai_next) {
    if (r->ai_family == AF_INET) {
      pick = r;
      break;
    }
    if (r->ai_family == AF_INET6 && !pick) {
      pick = r;
    }
  }
  if (!pick) {
    freeaddrinfo(res);
    return PN_ENAMERESOLVE;
  }
  pn__addr_from_sockaddr(pick->ai_addr, out);
  out->port = port;
  freeaddrinfo(res);
  return PN_OK;
}
