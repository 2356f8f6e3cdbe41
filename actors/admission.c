/* See admission.h. */
#include "actors/admission.h"

#include <linux/filter.h>

#include "actors/host.h"
#include "actors/msg_ids.h"
#include "actors/socket.h"
#include "actors/wire.h"
#include "runtime/clock.h"
#include "runtime/timer.h"

#define WINDOW_NS ((uint64_t)PN__ADMIT_WINDOW_MS * 1000000u)
/* The smallest share: one request in a million still gets through, so the
 * measurement never loses sight of the flood. */
#define SHARE_MIN (PN__ADMIT_ALL / 1000000u)

/* The socket filter letting through `share` (of 2^32) of ConnectRequests
 * and everything else. A UDP socket's filter sees the UDP header first:
 * the PeerNet header starts at byte 8. A load past the end would make the
 * filter drop, so datagrams too short to have a type pass (the host counts
 * them as bad headers). Returns the instruction count. */
static uint32_t build_filter(struct sock_filter *f, uint64_t share) {
  const uint32_t type_at = 8u + 1u; /* UDP header, then version, type */
  uint32_t n = 0;
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0);
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, type_at + 1u,
                                        0, 4); /* to pass */
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_B | BPF_ABS, type_at);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x0Fu);
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
                                        PN__T_CONNECT_REQUEST, 0, 2);
  f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                        (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM));
  f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
                                        (uint32_t)share, 1, 0);
  f[n++] =
      (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xFFFFFFFFu); /* pass */
  f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);      /* drop */
  return n;
}

static void apply(pn_host *h, uint64_t share) {
  struct sock_filter f[PN__SOCKET_FILTER_MAX];
  uint32_t n = share >= PN__ADMIT_ALL ? 0 : build_filter(f, share);
  for (uint32_t i = 0; i < h->nsockets; i++) {
    /* PN_ENOMEM leaves the old filter: the share is measured again within
     * a window. */
    (void)pn__socket_set_filter(h->sockets[i], f, n);
  }
  h->admit_share = share;
  atomic_store_explicit(&h->st_admit_ppm, share * 1000000u / PN__ADMIT_ALL,
                        memory_order_relaxed);
  if (share < PN__ADMIT_ALL && !h->admit_timer) {
    (void)pn__timer_start(h->actor, PN__H_ADMIT_TICK, WINDOW_NS / 1000u,
                          WINDOW_NS / 1000u, &h->admit_timer);
  } else if (share >= PN__ADMIT_ALL && h->admit_timer) {
    pn_timer_cancel(h->admit_timer);
    h->admit_timer = NULL;
  }
}

/* Ends the window when it has passed: the rate that arrived, scaled by the
 * share that was let through, is the rate offered; the new share brings
 * twice the limit of it through. Changes under an eighth are left. */
static void measure(pn_host *h, uint64_t now) {
  uint64_t elapsed = now - h->admit_window_ns;
  if (elapsed < WINDOW_NS) {
    return;
  }
  uint64_t arrived = h->admit_requests;
  h->admit_window_ns = now;
  h->admit_requests = 0;
  /* Requests per second offered, from those the share let through. */
  double offered = (double)arrived * 1e9 / (double)elapsed *
                   ((double)PN__ADMIT_ALL / (double)h->admit_share);
  double target = 2.0 * (double)h->hs_rate;
  uint64_t share = PN__ADMIT_ALL;
  if (offered > target) {
    share = (uint64_t)(target / offered * (double)PN__ADMIT_ALL);
    share = share < SHARE_MIN ? SHARE_MIN : share;
  }
  uint64_t old = h->admit_share;
  uint64_t diff = share > old ? share - old : old - share;
  if ((share == PN__ADMIT_ALL) != (old == PN__ADMIT_ALL) || diff > old / 8u) {
    apply(h, share);
  }
}

void pn__admission_note(pn_host *h) {
  if (!h->hs_rate) {
    return; /* no limit, nothing to shed */
  }
  h->admit_requests++;
  measure(h, pn__now_ns());
}

void pn__admission_tick(pn_host *h) {
  if (h->admit_timer) {
    measure(h, pn__now_ns());
  }
}

void pn__admission_stop(pn_host *h) {
  pn_timer_cancel(h->admit_timer);
  h->admit_timer = NULL;
}
