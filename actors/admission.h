/* Handshake admission in the kernel. The host's token bucket
 * (pn__host_handshake_allowed) answers at most max_handshakes_per_s
 * requests, but every request it refuses was still read from the socket,
 * sent to the host actor and looked at: a flood far past the limit takes a
 * worker's whole core (and the receive queue the connected peers' data
 * shares). So the host measures the ConnectRequests that reach it and,
 * when they come faster than twice its limit, asks its sockets' kernel
 * filters (classic BPF, unprivileged) to let through only a random share
 * of ConnectRequests, sized so that about twice the limit still arrives;
 * the bucket does the exact limiting as before. Every other datagram
 * passes the filter untouched. Requests the filter drops cost the kernel
 * a few instructions and show in the sockets' kernel_drops.
 *
 * The share is re-measured every PN__ADMIT_WINDOW_MS while shedding (a
 * periodic timer, so it goes back to all within a window of the flood
 * ending) and on arrivals otherwise. A legitimate client under a flood
 * is as likely to get through as one request among the flood, as with
 * the bucket alone: its retries carry it. Host actor only. */
#ifndef PN_ACTORS_ADMISSION_H
#define PN_ACTORS_ADMISSION_H

#include <stdint.h>

#define PN__ADMIT_WINDOW_MS 100u
#define PN__ADMIT_ALL (UINT64_C(1) << 32) /* the share: all requests */

struct pn_host;

/* A ConnectRequest reached the host: counted, and the share re-measured
 * when a window has passed. */
void pn__admission_note(struct pn_host *h);

/* The host's PN__H_ADMIT_TICK timer fired. */
void pn__admission_tick(struct pn_host *h);

/* The host stops: the timer goes (the filters go with the sockets). */
void pn__admission_stop(struct pn_host *h);

#endif
