/* The host actor: owns the sockets, answers handshakes statelessly and
 * routes datagrams to peers by connection id.
 *
 * States: open -> closing (pn_host_close(): every peer is told to close;
 * the actor routes their acknowledgements and stops when the last one
 * left) -> freed when the last peer lets go (the sockets close then, so a
 * peer never sends through a closed handle).
 *
 * Messages: PN_MSG_DATAGRAM (from its sockets), PN__H_REGISTER (a client
 * peer from pn_host_connect()), PN__H_START (pn_host_open() is done),
 * PN__H_EPH_WIPE (the server's ephemeral key pair may have expired),
 * PN__H_ADMIT_TICK (re-measure the kernel's share of requests, admission.c),
 * PN__H_CLOSE, PN_MSG_STOPPED.
 *
 * Handshake requests go to handshake.c (the server half, stateless until
 * a cookie comes back); everything else is routed to its peer by
 * connection id.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "actors/admission.h"
#include "actors/handshake.h"
#include "actors/host.h"
#include "actors/msg_ids.h"
#include "actors/peer.h"
#include "actors/random.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/timer.h"
#include "runtime/rt.h"
#include "runtime/worker.h"

#define DEFAULT_MTU 1200u
#define DEFAULT_MAX_MESSAGE (4u << 20)
#define DEFAULT_MAX_QUEUED (512u << 10)
/* Handshake datagrams (requests and responses) answered per second unless
 * configured: two per connection, so up to 10,000 new connections a
 * second, about what one core completes (peernet-bench handshakes); a
 * flood beyond it costs the host only the checks before the bucket. */
#define DEFAULT_HANDSHAKES_PER_S 20000u

/* --- lifetime ------------------------------------------------------------ */

static void host_free(pn_host *h) {
  sodium_memzero(h->secret_key, sizeof h->secret_key);
  sodium_memzero(h->psk, sizeof h->psk);
  sodium_memzero(h->secret, sizeof h->secret);
  sodium_memzero(h->eph_secret, sizeof h->eph_secret);
  for (uint32_t i = 0; i < h->nsockets; i++) {
    pn_socket_close(h->sockets[i]);
  }
  pn_actor_release(h->accept_owner);
  pn_actor_release(h->actor);
  pn__idmap_free(&h->by_id);
  pn__idmap_free(&h->by_addr);
  pn__idmap_free(&h->per_ip);
  ZSTD_freeCDict(h->cdict);
  ZSTD_freeDDict(h->ddict);
  pn__scratch_destroy(h->scratch);
  free(h);
}

void pn__host_ref(pn_host *h) {
  /* relaxed: the caller already holds a reference. */
  atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

void pn__host_unref(pn_host *h) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's writes; the acquire half, in the last holder, pairs with
   * every other holder's release half here before host_free(). */
  if (atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1) {
    host_free(h);
  }
}

/* --- tables -------------------------------------------------------------- */

static uint64_t addr_key(const pn_host *h, const pn_addr *a,
                         uint32_t client_id) {
  uint8_t in[sizeof *a + sizeof client_id];
  pn_addr copy;
  memset(&copy, 0, sizeof copy);
  copy.family = a->family;
  copy.port = a->port;
  copy.scope_id = a->scope_id;
  memcpy(copy.ip, a->ip, sizeof copy.ip);
  memcpy(in, &copy, sizeof copy);
  memcpy(in + sizeof copy, &client_id, sizeof client_id);
  uint64_t k;
  crypto_shorthash((unsigned char *)&k, in, sizeof in, h->secret);
  return k ? k : 1;
}

/* The per-IP key: the address without its port, keyed with the host's
 * secret so nobody can aim collisions at one slot. */
static uint64_t ip_key(const pn_host *h, const pn_addr *a) {
  uint8_t in[2 + 16];
  memcpy(in, &a->family, 2);
  memcpy(in + 2, a->ip, 16);
  uint64_t k;
  crypto_shorthash((unsigned char *)&k, in, sizeof in, h->secret);
  return k ? k : 1;
}

bool pn__host_ip_has_room(const pn_host *h, const pn_addr *from) {
  return !h->max_per_ip ||
         (uintptr_t)pn__idmap_get(&h->per_ip, ip_key(h, from)) < h->max_per_ip;
}

/* Counts an accepted peer in (delta 1) or out (-1) of its IP's total. */
static bool ip_count(pn_host *h, const pn_addr *a, int delta) {
  if (!h->max_per_ip) {
    return true;
  }
  uint64_t k = ip_key(h, a);
  uintptr_t n = (uintptr_t)pn__idmap_get(&h->per_ip, k);
  if (delta < 0) {
    PN_ASSERT(n > 0); /* counted in when registered */
    if (n == 1) {
      (void)pn__idmap_del(&h->per_ip, k);
      return true;
    }
    return pn__idmap_put(&h->per_ip, k, (void *)(n - 1)); /* in place */
  }
  return pn__idmap_put(&h->per_ip, k, (void *)(n + 1));
}

bool pn__host_handshake_allowed(pn_host *h) {
  if (!h->hs_rate) {
    return true;
  }
  uint64_t now = pn__now_ns();
  uint64_t burst = h->hs_rate / 10 ? h->hs_rate / 10 : 1;
  if (now - h->hs_refill_ns > 1000000000u) {
    h->hs_refill_ns = now - 1000000000u; /* full anyway; keeps it small */
  }
  uint64_t add = (now - h->hs_refill_ns) * h->hs_rate / 1000000000u;
  if (add) {
    h->hs_refill_ns += add * 1000000000u / h->hs_rate;
    h->hs_tokens += (int64_t)add;
    if (h->hs_tokens > (int64_t)burst) {
      h->hs_tokens = (int64_t)burst;
    }
  }
  if (h->hs_tokens <= 0) {
    pn__stat_add(&h->st_hs_limited, 1);
    return false;
  }
  h->hs_tokens--;
  return true;
}

bool pn__host_register(pn_host *h, pn_peer *p) {
  uint32_t id;
  do {
    id = pn__random_u32();
  } while (!id || pn__idmap_get(&h->by_id, id));
  if (!pn__idmap_put(&h->by_id, id, p)) {
    return false;
  }
  if (!p->is_client &&
      !pn__idmap_put(&h->by_addr, addr_key(h, &p->origin, p->remote_id), p)) {
    void *undone = pn__idmap_del(&h->by_id, id);
    PN_ASSERT(undone == p); /* put just above */
    return false;
  }
  if (!p->is_client && !ip_count(h, &p->origin, 1)) {
    void *undone = pn__idmap_del(&h->by_id, id);
    PN_ASSERT(undone == p);
    undone = pn__idmap_del(&h->by_addr, addr_key(h, &p->origin, p->remote_id));
    PN_ASSERT(undone == p);
    return false;
  }
  p->local_id = id;
  p->registered = true;
  return true;
}

pn_peer *pn__host_find_accepted(pn_host *h, const pn_addr *from,
                                uint32_t client_id) {
  return pn__idmap_get(&h->by_addr, addr_key(h, from, client_id));
}

void pn__host_forget(pn_host *h, pn_peer *p) {
  if (!p->registered) {
    return;
  }
  p->registered = false;
  /* Registered peers are in by_id under their own id (pn__host_register()
   * picks an unused one; only this function and the host's STOPPED, which
   * clears registered first, take them out). */
  void *gone = pn__idmap_del(&h->by_id, p->local_id);
  PN_ASSERT(gone == p);
  if (!p->is_client) {
    uint64_t k = addr_key(h, &p->origin, p->remote_id);
    if (pn__idmap_get(&h->by_addr, k) == p) {
      gone = pn__idmap_del(&h->by_addr, k);
      PN_ASSERT(gone == p);
    }
    bool counted = ip_count(h, &p->origin, -1);
    PN_ASSERT(counted); /* an update in place allocates nothing */
  }
  atomic_fetch_sub_explicit(&h->npeers, 1, memory_order_relaxed);
  pn_peer_release(p); /* the table's reference */
  if (h->close_handled && !h->by_id.count) {
    (void)pn_actor_stop(h->actor); /* the last peer said goodbye */
  }
}

void pn__host_send(pn_host *h, uint32_t socket, const pn_addr *to,
                   const uint8_t *data, size_t len) {
  /* The index comes from on_datagram() (a socket of this host) or a peer's
   * sockets_mask, which pn_host_connect() checked against nsockets. */
  PN_ASSERT(socket < h->nsockets);
  /* PN_ECLOSED while closing; other refusals are counted by the socket. */
  (void)pn_socket_send(h->sockets[socket], to, data, len);
}

/* --- routing ------------------------------------------------------------- */

static void on_datagram(pn_host *h, const pn_msg *msg) {
  pn_datagram d;
  if (pn_msg_datagram(msg, &d) != PN_OK) {
    return;
  }
  uint32_t socket = 0;
  while (socket < h->nsockets && h->socket_ids[socket] != d.socket_id) {
    socket++;
  }
  if (socket == h->nsockets) {
    return;
  }
  pn__stat_add(&h->st_in, 1);
  const uint8_t *data = d.data;
  pn__wire_header hdr;
  if (!pn__wire_peek(data, d.len, &hdr)) {
    pn__stat_add(&h->st_bad_header, 1);
    return;
  }
  switch (hdr.type) {
  case PN__T_CONNECT_REQUEST:
    pn__admission_note(h);
    pn__handshake_on_request(h, socket, &d.from, data, d.len, hdr.version);
    return;
  case PN__T_CONNECT_RESPONSE:
    pn__handshake_on_response(h, socket, &d.from, data, d.len);
    return;
  default: {
    pn_peer *p = pn__idmap_get(&h->by_id, hdr.conn_id);
    if (!p) {
      pn__stat_add(&h->st_unknown, 1);
      return;
    }
    pn__peer_route(p, socket, &d.from, data, d.len);
    return;
  }
  }
}

/* Tells every peer to close. The peers leave the table later, in their
 * own runs, so it can be walked as it is. False when a request could not
 * be sent (out of memory). */
static bool close_all(pn_host *h) {
  bool all = true;
  for (size_t i = 0; i < h->by_id.cap; i++) {
    if (h->by_id.slots[i].key &&
        pn__peer_close_request(h->by_id.slots[i].value,
                               PN_REASON_HOST_CLOSED) != PN_OK) {
      all = false;
    }
  }
  return all;
}

static void host_handler(pn_actor *self, void *state, const pn_msg *msg) {
  pn_host *h = state;
  switch (pn_msg_type(msg)) {
  case PN_MSG_DATAGRAM:
    /* Before PN__H_START the socket table may still be being written:
     * such early datagrams are dropped, as if not yet listening. */
    if (!h->stopped && h->started) {
      on_datagram(h, msg);
    }
    break;
  case PN__H_START:
    h->started = true; /* the message orders pn_host_open()'s writes */
    break;
  case PN__H_EPH_WIPE:
    pn__handshake_eph_tick(h);
    break;
  case PN__H_ADMIT_TICK:
    pn__admission_tick(h);
    break;
  case PN__H_REGISTER: {
    pn_peer *p = (pn_peer *)pn_msg_data(msg);
    if (atomic_load_explicit(&h->closing, memory_order_relaxed)) {
      break; /* the message's free function closes it */
    }
    pn_peer_hold(p);
    if (!pn__host_register(h, p)) {
      pn_peer_release(p);
      break;
    }
    (void)pn__send_parts(p->actor, PN__P_START, NULL, 0, NULL, 0);
    break;
  }
  case PN__H_CLOSE:
    /* Keep reading until the peers are gone: the acknowledgements of
     * their disconnects come through here, and without them each peer
     * would resend its disconnect until it gave up (DISCONNECT_SENDS
     * RTOs). The last peer to leave stops the actor (pn__host_forget). */
    if (!close_all(h)) {
      /* Out of memory: ask again soon (peers already closing ignore a
       * second request). */
      (void)pn__timer_start(self, PN__H_CLOSE, 10000, 0, NULL);
    }
    h->close_handled = true;
    if (!h->by_id.count) {
      (void)pn_actor_stop(self);
    }
    break;
  case PN_MSG_STOPPED:
    /* Peers still in the table (runtime shutdown) stop on their own;
     * drop the table's references so nothing cycles. */
    h->stopped = true;
    pn__handshake_eph_forget(h);
    pn__admission_stop(h);
    for (size_t i = 0; i < h->by_id.cap; i++) {
      pn_peer *p = h->by_id.slots[i].value;
      if (h->by_id.slots[i].key && p) {
        p->registered = false;
        atomic_fetch_sub_explicit(&h->npeers, 1, memory_order_relaxed);
        pn_peer_release(p);
      }
    }
    pn__idmap_free(&h->by_id);
    pn__idmap_free(&h->by_addr);
    pn__idmap_free(&h->per_ip);
    pn__host_unref(h); /* the actor's reference */
    break;
  default:
    break;
  }
}

/* Runs when the H_REGISTER message is freed: handled or dropped. A peer
 * the host never registered (it was closing) is closed here, so its owner
 * still hears of it. */
static void register_done(void *data, void *ctx) {
  (void)ctx;
  pn_peer *p = data;
  if (!p->registered && !p->gone) {
    atomic_fetch_sub_explicit(&p->host->npeers, 1, memory_order_relaxed);
    (void)pn__peer_close_request(p, PN_REASON_HOST_CLOSED);
  }
  pn_peer_release(p);
}

/* --- API ----------------------------------------------------------------- */

static pn_err check_config(const pn_runtime *rt, const pn_host_config *cfg) {
  if (!cfg || cfg->size < sizeof *cfg || !cfg->sockets ||
      cfg->socket_count < 1 || cfg->socket_count > 32 ||
      cfg->home_worker < -1 ||
      cfg->home_worker >= (int32_t)pn_runtime_workers(rt) ||
      (cfg->mtu && cfg->mtu < 576) || cfg->max_message > PN_PACKET_MAX ||
      (cfg->zstd_dict_len && !cfg->zstd_dict) || cfg->window > (1u << 20)) {
    return PN_EINVAL;
  }
  /* Times become nanoseconds and deadlines are sums of them: a bound keeps
   * both far from overflow. */
  const uint64_t times[] = {cfg->connect_timeout_us, cfg->connect_retry_us,
                            cfg->keepalive_us,       cfg->idle_timeout_us,
                            cfg->ack_timeout_us,     cfg->rto_min_us,
                            cfg->rto_max_us,         cfg->rto_initial_us};
  for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
    if (times[i] > PN_HOST_TIME_MAX_US) {
      return PN_EINVAL;
    }
  }
  uint32_t mtu = cfg->mtu ? cfg->mtu : DEFAULT_MTU;
  for (uint32_t i = 0; i < cfg->socket_count; i++) {
    uint32_t maxd =
        cfg->sockets[i].max_datagram ? cfg->sockets[i].max_datagram : 2048u;
    if (cfg->sockets[i].size < sizeof(pn_socket_config) || mtu > maxd) {
      return PN_EINVAL;
    }
  }
  return PN_OK;
}

static uint64_t or_default(uint64_t v, uint64_t d) { return v ? v : d; }

static pn_err host_setup(pn_host *h, const pn_host_config *cfg) {
  h->mtu = cfg->mtu ? cfg->mtu : DEFAULT_MTU;
  h->max_message = cfg->max_message ? cfg->max_message : DEFAULT_MAX_MESSAGE;
  /* Two messages: one being put together while a whole one waits for
   * it, so a window that holds one does not halve throughput. */
  uint64_t rbuf = (uint64_t)h->max_message * 2;
  rbuf = rbuf < PN__FLOW_INITIAL ? PN__FLOW_INITIAL : rbuf;
  h->max_receive_buffer = (uint32_t)or_default(
      cfg->max_receive_buffer, rbuf > UINT32_MAX ? UINT32_MAX : rbuf);
  if (h->max_receive_buffer < h->max_message ||
      h->max_receive_buffer < PN__FLOW_INITIAL) {
    return PN_EINVAL; /* a message it could never take; see flow.h */
  }
  h->max_reassembly =
      (uint32_t)or_default(cfg->max_reassembly, h->max_receive_buffer);
  h->retransmit_limit = cfg->retransmit_limit ? cfg->retransmit_limit : 16;
  /* Small by default, as GameNetworkingSockets' send buffer: a sender
   * far ahead of the network only grows memory and misses caches (one
   * message larger than it still goes, alone). */
  h->max_queued = cfg->max_queued ? cfg->max_queued : DEFAULT_MAX_QUEUED;
  h->max_peers = cfg->max_peers ? cfg->max_peers : 1024;
  h->window = cfg->window ? cfg->window : 1024;
  h->connect_timeout_ns = or_default(cfg->connect_timeout_us, 5000000) * 1000;
  h->connect_retry_ns = or_default(cfg->connect_retry_us, 250000) * 1000;
  h->keepalive_ns = or_default(cfg->keepalive_us, 1000000) * 1000;
  h->idle_timeout_ns = or_default(cfg->idle_timeout_us, 10000000) * 1000;
  h->ack_timeout_ns =
      cfg->ack_timeout_us ? cfg->ack_timeout_us * 1000 : h->idle_timeout_ns / 2;
  h->ack_timeout_set = cfg->ack_timeout_us != 0;
  h->rto_min_ns = or_default(cfg->rto_min_us, 10000) * 1000;
  h->rto_max_ns = or_default(cfg->rto_max_us, 2000000) * 1000;
  h->rto_initial_ns = or_default(cfg->rto_initial_us, 200000) * 1000;
  if (h->rto_min_ns > h->rto_max_ns) {
    return PN_EINVAL;
  }
  h->compress = !cfg->no_compression;
  h->max_per_ip = cfg->max_peers_per_address;
  h->hs_rate = cfg->max_handshakes_per_s == UINT32_MAX ? 0
               : cfg->max_handshakes_per_s ? cfg->max_handshakes_per_s
                                           : DEFAULT_HANDSHAKES_PER_S;
  h->hs_tokens = (int64_t)(h->hs_rate / 10 ? h->hs_rate / 10 : 1);
  h->hs_refill_ns = pn__now_ns();
  h->admit_share = PN__ADMIT_ALL;
  h->admit_window_ns = h->hs_refill_ns;
  atomic_init(&h->st_admit_ppm, 1000000u);
  h->send_rate = cfg->send_rate;
  h->no_delivery_events = cfg->no_delivery_events;
  h->aes_gcm = pn__wire_aes_available();
  h->accept = cfg->accept;
  h->accept_ctx = cfg->accept_ctx;
  randombytes_buf(h->secret, sizeof h->secret);
  if (cfg->secret_key) {
    memcpy(h->secret_key, cfg->secret_key, PN_KEY_BYTES);
  } else {
    randombytes_buf(h->secret_key, PN_KEY_BYTES);
  }
  if (crypto_scalarmult_base(h->public_key, h->secret_key) != 0) {
    return PN_EINVAL; /* never for a clamped scalar */
  }
  if (cfg->psk) {
    memcpy(h->psk, cfg->psk, PN_KEY_BYTES);
    h->has_psk = true;
  }
  pn_err err = pn__scratch_create(&h->scratch);
  if (err != PN_OK) {
    return err;
  }
  if (cfg->zstd_dict_len) {
    crypto_generichash((unsigned char *)&h->dict_hash, sizeof h->dict_hash,
                       cfg->zstd_dict, cfg->zstd_dict_len, NULL, 0);
    h->dict_hash |= 1; /* never 0, which means "none" */
    h->cdict = ZSTD_createCDict(cfg->zstd_dict, cfg->zstd_dict_len, 1);
    h->ddict = ZSTD_createDDict(cfg->zstd_dict, cfg->zstd_dict_len);
    if (!h->cdict || !h->ddict) {
      return PN_EINVAL;
    }
  }
  return PN_OK;
}

pn_err pn_host_open(pn_runtime *rt, const pn_host_config *cfg,
                    pn_host **host_out) {
  if (!rt || !host_out) {
    return PN_EINVAL;
  }
  pn_err err = check_config(rt, cfg);
  if (err != PN_OK) {
    return err;
  }
  if (sodium_init() < 0) {
    return PN_ENOMEM;
  }
  pn_host *h = pn__calloc(1, sizeof *h);
  if (!h) {
    return PN_ENOMEM;
  }
  atomic_init(&h->refs, 1);
  h->rt = rt;
  err = host_setup(h, cfg);
  if (err != PN_OK) {
    host_free(h);
    return err;
  }
  /* relaxed: a round-robin spread of hosts over workers; it orders
   * nothing. */
  static _Atomic uint32_t next_home;
  h->home = cfg->home_worker >= 0
                ? cfg->home_worker
                : (int32_t)(atomic_fetch_add_explicit(&next_home, 1,
                                                      memory_order_relaxed) %
                            pn_runtime_workers(rt));
  if (cfg->accept_owner) {
    pn_actor_hold(cfg->accept_owner);
    h->accept_owner = cfg->accept_owner;
  }
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "pn.host";
  acfg.handler = host_handler;
  acfg.state = h;
  acfg.home_worker = h->home;
  pn__host_ref(h); /* the actor's, given back on PN_MSG_STOPPED */
  err = pn_spawn(rt, &acfg, &h->actor);
  if (err != PN_OK) {
    /* relaxed: no actor was made, so no other thread has seen h. */
    atomic_store_explicit(&h->refs, 1, memory_order_relaxed);
    host_free(h);
    return err;
  }
  for (uint32_t i = 0; i < cfg->socket_count; i++) {
    pn_socket_config sc = cfg->sockets[i];
    sc.owner = h->actor;
    sc.home_worker = h->home;
    err = pn_socket_open(rt, &sc, &h->sockets[i]);
    if (err != PN_OK) {
      break;
    }
    h->nsockets++;
    h->socket_ids[i] = pn_socket_id(h->sockets[i]);
    pn_err aerr = pn_socket_local_addr(h->sockets[i], &h->local[i]);
    PN_ASSERT(aerr == PN_OK); /* fails only for NULL arguments */
  }
  if (err != PN_OK) {
    (void)pn_actor_stop(h->actor); /* its STOPPED gives its reference back */
    pn__host_unref(h);
    return err;
  }
  (void)pn__send_parts(h->actor, PN__H_START, NULL, 0, NULL, 0);
  *host_out = h;
  return PN_OK;
}

pn_err pn_host_public_key(const pn_host *host,
                          uint8_t public_out[PN_KEY_BYTES]) {
  if (!host || !public_out) {
    return PN_EINVAL;
  }
  memcpy(public_out, host->public_key, PN_KEY_BYTES);
  return PN_OK;
}

pn_err pn_host_local_addr(const pn_host *host, uint32_t index,
                          pn_addr *addr_out) {
  if (!host || !addr_out || index >= host->nsockets) {
    return PN_EINVAL;
  }
  *addr_out = host->local[index];
  return PN_OK;
}

pn_err pn_host_set_conditioner(pn_host *host, uint32_t index, pn_direction dir,
                               const pn_link_conditioner *cfg) {
  if (!host || index >= host->nsockets) {
    return PN_EINVAL;
  }
  if (atomic_load_explicit(&host->closing, memory_order_relaxed)) {
    return PN_ECLOSED;
  }
  return pn_socket_set_conditioner(host->sockets[index], dir, cfg);
}

void pn_host_close(pn_host *host) {
  if (!host) {
    return;
  }
  atomic_store_explicit(&host->closing, 1, memory_order_relaxed);
  /* PN_ECLOSED: the actor already stopped (runtime shutdown). */
  (void)pn__send_parts(host->actor, PN__H_CLOSE, NULL, 0, NULL, 0);
  /* From a handler the message waits in this worker's outbox, which holds
   * no reference to the host actor; the last reference to the host may go
   * on another worker (its last peer's) and the actor stop there before
   * this run ends: pushed now, while this handle still holds it. */
  pn__worker *w = pn__worker_current(host->rt);
  if (w && w->outbox_used) {
    pn__outbox_flush(w);
  }
  pn__host_unref(host);
}

pn_err pn_host_stats_get(const pn_host *host, pn_host_stats *out) {
  if (!host || !out) {
    return PN_EINVAL;
  }
  memset(out, 0, sizeof *out);
  /* Counters ordering nothing: relaxed, as in every snapshot. */
#define LOAD(f) atomic_load_explicit(&host->f, memory_order_relaxed)
  out->datagrams_in = LOAD(st_in);
  out->bad_header = LOAD(st_bad_header);
  out->unknown_connection = LOAD(st_unknown);
  out->handshake_dropped = LOAD(st_hs_dropped);
  out->challenges_sent = LOAD(st_challenges);
  out->accepted = LOAD(st_accepted);
  out->rejected = LOAD(st_rejected);
  out->peers = LOAD(npeers);
  out->handshake_limited = LOAD(st_hs_limited);
  out->handshake_admit_ppm = LOAD(st_admit_ppm);
#undef LOAD
  return PN_OK;
}

pn_err pn_host_connect(pn_host *host, const pn_peer_config *cfg,
                       pn_peer **peer_out) {
  if (!host || !cfg || !peer_out || cfg->size < sizeof *cfg || !cfg->owner ||
      cfg->channel_count > PN_MAX_CHANNELS ||
      (cfg->remote.family != PN_AF_INET && cfg->remote.family != PN_AF_INET6) ||
      (host->nsockets < 32 && (cfg->sockets_mask >> host->nsockets) != 0) ||
      (cfg->connect_data_len && !cfg->connect_data) ||
      cfg->connect_data_len > PN_CONNECT_DATA_MAX ||
      cfg->idle_timeout_us > PN_HOST_TIME_MAX_US ||
      cfg->keepalive_us > PN_HOST_TIME_MAX_US) {
    return PN_EINVAL;
  }
  uint32_t nch = cfg->channel_count ? cfg->channel_count : 1;
  for (uint32_t i = 0; cfg->kinds && i < nch; i++) {
    if ((unsigned)cfg->kinds[i] >= PN_CHANNEL_KINDS) {
      return PN_EINVAL;
    }
  }
  for (uint32_t i = 0; i < host->nsockets; i++) {
    if (((cfg->sockets_mask ? cfg->sockets_mask : 1u) >> i & 1u) &&
        host->local[i].family == PN_AF_INET &&
        cfg->remote.family != PN_AF_INET) {
      return PN_EINVAL; /* an IPv4 socket cannot reach an IPv6 address */
    }
  }
  if (atomic_load_explicit(&host->closing, memory_order_relaxed)) {
    return PN_ECLOSED;
  }
  if (atomic_fetch_add_explicit(&host->npeers, 1, memory_order_relaxed) >=
      host->max_peers) {
    atomic_fetch_sub_explicit(&host->npeers, 1, memory_order_relaxed);
    return PN_EAGAIN;
  }
  pn_peer *p;
  pn_err err = pn__peer_create(host, cfg, true, &p);
  if (err != PN_OK) {
    atomic_fetch_sub_explicit(&host->npeers, 1, memory_order_relaxed);
    return err;
  }
  pn_peer_hold(p); /* the register message's */
  err = pn__send_buf(host->actor, PN__H_REGISTER, p, sizeof(void *),
                     register_done, NULL);
  if (err != PN_OK) {
    register_done(p, NULL); /* counts the peer out and closes it */
  }
  *peer_out = p;
  return PN_OK;
}
