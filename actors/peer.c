/* The peer actor: one connection.
 *
 * States: CONNECTING (client: ConnectRequest, then ConnectResponse with the
 * server's cookie, retried every connect_retry until connect_timeout) ->
 * CONNECTED (draining after pn_peer_disconnect_later(): sends refused,
 * what is queued still goes, until nothing is left to resolve or the
 * deadline) -> DISCONNECTING (a Packet with `disconnect` sent up to eight
 * times until acknowledged) -> DISCONNECTED (channels closed, then the
 * owner's PN_MSG_PEER_DISCONNECTED, the peer's last event, and the actor
 * stops).
 *
 * Messages: PN__P_START (client: the host gave it an id), PN__P_RECV (a
 * datagram routed by the host), PN__P_POKE (messages were queued with
 * pn__peer_enqueue: run, so the batch end sends them), PN__P_TICK (its one
 * timer), PN__P_TIMEOUTS (pn_peer_set_timeouts), PN__P_DISCONNECT,
 * PN__P_CHANNEL_DONE, PN_MSG_BATCH_END (flush: frames coalesced into datagrams
 * up to the MTU, acknowledgements piggybacked; PN_MSG_PEER_WRITABLE when owed),
 * PN_MSG_STOPPED.
 *
 * Reliability: every datagram has a sequence number and carries the
 * highest sequence received with a 64-bit bitmap of the ones before it. A
 * datagram is lost when one sent three later is acknowledged, or when the
 * RTO (RFC 6298, doubled per expiry, bounded) passes (recovery.c); its
 * reliable frames are queued again and its unreliable messages reported
 * lost (peer_send.c); a frame due for its retransmit_limit + 1-th send
 * closes the peer (PN_REASON_RETRANSMIT_LIMIT). Each side advertises a
 * receive window with every acknowledgement and keeps to the other's
 * (flow.c). Receiving is peer_recv.c; the handshake handshake.c. This
 * file holds the states, the timer and the API.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "actors/event.h"
#include "actors/handshake.h"
#include "actors/host.h"
#include "actors/msg_ids.h"
#include "actors/peer.h"
#include "actors/random.h"
#include "runtime/actor.h"
#include "runtime/alloc.h"
#include "runtime/assert.h"
#include "runtime/clock.h"
#include "runtime/rt.h"
#include "runtime/timer.h"

#define DISCONNECT_SENDS 8u /* tries before closing anyway */
#define KEEPALIVE_SLOTS 32u /* keepalive deadlines round up to 1/32 of it, */
#define KEEPALIVE_SLOT_MAX_NS 2000000u /* but to no more than 2 ms */

static _Atomic uint64_t next_peer_id = 1;

/* Everything queued, in flight or half reassembled goes, silently. */
static void drop_queues(pn_peer *p) {
  pn__peer_drop_sends(p);
  pn__peer_drop_partials(p);
}

static void peer_free(pn_peer *p) {
  /* What a connection holds at least (the object, its channels, its rings
   * and actors): the hint that lets idle workers return a departed
   * crowd's memory to the system (runtime/alloc.h). */
  pn__alloc_released(
      sizeof *p + p->nchannels * sizeof(pn_channel) +
      (p->rec.sent_mask + 1) * sizeof(pn__sent) +
      p->rec.lim.paths * sizeof(pn__rec_path) +
      (p->frefs.items ? (p->frefs.mask + 1) * sizeof(pn__fref) : 0) +
      (1u + p->nchannels) * 1024u);
  pn__registry_remove(p->host->rt, &p->stat);
  drop_queues(p);
  if (p->goodbye) {
    pn__event_drop(p, p->goodbye); /* its creation failed */
  }
  for (uint32_t i = 0; i < p->nchannels; i++) {
    pn__rxwin_free(&p->channels[i].rx);
    pn_actor_release(p->channels[i].actor);
  }
  pn__recovery_fini(&p->rec);
  pn__sendq_fini(&p->sendq);
  free(p->frefs.items);
  free(p->rtx.items);
  pn_actor_release(p->actor);
  pn_actor_release(p->owner);
  pn__host_unref(p->host);
  pn__data_keys_clear(&p->dkeys);
  pn__handshake_free(p);
  free(p);
}

void pn_peer_hold(pn_peer *peer) {
  if (peer) {
    atomic_fetch_add_explicit(&peer->refs, 1, memory_order_relaxed);
  }
}

void pn_peer_release(pn_peer *peer) {
  /* acq_rel, the usual reference count release: the release half publishes
   * this holder's writes; the acquire half, in the last holder, pairs with
   * every other holder's release half here before peer_free(). */
  if (peer &&
      atomic_fetch_sub_explicit(&peer->refs, 1, memory_order_acq_rel) == 1) {
    peer_free(peer);
  }
}

static void emit(pn_peer *p, pn_msg *m) {
  if (m) {
    pn__event_send(p->owner, m);
  }
}

void pn__peer_emit(pn_peer *p, uint32_t type) {
  pn__event *e;
  emit(p, pn__event_new(type, p, &e));
}

void pn__peer_emit_message(pn_peer *p, uint32_t type, const pn__outmsg *om,
                           uint64_t now) {
  if (!p->delivery_events) {
    return;
  }
  pn__event *e;
  pn_msg *m = pn__event_new(type, p, &e);
  if (m) {
    e->ev.channel = om->channel;
    e->ev.kind = (pn_channel_kind)om->kind;
    e->ev.ch = &p->channels[om->channel];
    e->ev.msg_id = om->msg_id;
    e->ev.rtt_us = (now - om->first_sent_ns) / 1000u;
  }
  emit(p, m);
}

static void cancel_timer(pn_peer *p) {
  pn_timer_cancel(p->timer);
  p->timer = NULL;
  p->timer_at = 0;
}

static void finish(pn_peer *p) {
  pn_msg *m = p->goodbye;
  p->goodbye = NULL;
  if (!m) {
    return; /* already said */
  }
  pn__event *e = (pn__event *)pn_msg_data(m);
  e->ev.reason = p->reason;
  e->ev.remote = p->reason_remote;
  /* Made when the peer was, before the owner could set its pointer (an
   * accepted peer's, in its CONNECTED handler) or the peer move: both as
   * they are now. acquire: pairs with pn_peer_set_user()'s release. */
  e->ev.user = atomic_load_explicit(&p->user, memory_order_acquire);
  e->ev.addr = p->addr;
  e->holds_peer = true; /* the earlier events borrow p: see pn__event */
  pn_peer_hold(p);
  emit(p, m);
  (void)pn_actor_stop(p->actor);
}

/* No more sends are taken (they get PN_ECLOSED), and a sender waiting
 * for PN_MSG_PEER_WRITABLE after PN_EAGAIN gets it now: its retry learns
 * of the close instead of waiting forever. seq_cst on both: the store
 * pairs with the seq_cst load of sends_closed in send_om() (channel.c),
 * which follows its seq_cst store of want_writable; the exchange comes
 * after this store (or after the one pn_peer_disconnect() made before
 * asking us). Either the sender sees the flag and returns PN_ECLOSED, or
 * its want_writable came first and this exchange sees it. */
static void close_sends(pn_peer *p) {
  atomic_store_explicit(&p->sends_closed, 1, memory_order_seq_cst);
  if (atomic_exchange_explicit(&p->want_writable, 0, memory_order_seq_cst)) {
    pn__peer_emit(p, PN_MSG_PEER_WRITABLE);
  }
}

void pn__peer_close(pn_peer *p, uint32_t reason, bool remote) {
  if (p->gone) {
    return;
  }
  close_sends(p); /* before finish(): PN_MSG_PEER_DISCONNECTED is the last */
  p->gone = true;
  p->reason = reason;
  p->reason_remote = remote;
  pn__peer_set_state(p, PN_PEER_DISCONNECTED);
  cancel_timer(p);
  drop_queues(p);
  pn__host_forget(p->host, p);
  p->channels_open = 0;
  for (uint32_t i = 0; i < p->nchannels; i++) {
    if (pn__send_parts(p->channels[i].actor, PN__C_CLOSE, NULL, 0, NULL, 0) ==
        PN_OK) {
      p->channels_open++;
    }
  }
  if (!p->channels_open) {
    finish(p);
  }
}

/* CONNECTED -> DISCONNECTING: what is queued goes, the goodbye is owed. */
static void say_goodbye(pn_peer *p) {
  pn__peer_set_state(p, PN_PEER_DISCONNECTING);
  p->draining = false;
  drop_queues(p);
  p->disconnect_owed = true;
  p->disconnect_sends = 1;
}

/* Whether a draining peer has nothing left to deliver: nothing queued,
 * to resend or in flight, and no send still on its way through a
 * channel's mailbox (a send made before pn_peer_disconnect_later()
 * returned is counted there, or already queued: the request reached us
 * after it). */
static bool drained(const pn_peer *p) {
  if (!pn__sendq_empty(&p->sendq) || p->withheld ||
      p->rtx.head != p->rtx.tail || p->rec.in_flight) {
    return false;
  }
  for (uint32_t i = 0; i < p->nchannels; i++) {
    /* relaxed: see channel_handler() (channel.c); the increment of a send
     * made before the request happens before it through our mailbox. */
    if (atomic_load_explicit(&p->channels[i].in_mailbox,
                             memory_order_relaxed)) {
      return false;
    }
  }
  return true;
}

/* A draining peer says goodbye once drained or at its deadline. */
static void check_drained(pn_peer *p, uint64_t now) {
  if (p->draining && pn__peer_state(p) == PN_PEER_CONNECTED &&
      (drained(p) || now >= p->drain_deadline_ns)) {
    say_goodbye(p);
  }
}

static void local_disconnect(pn_peer *p, const pn__disconnect_request *rq) {
  close_sends(p);
  switch (pn__peer_state(p)) {
  case PN_PEER_CONNECTING:
    pn__peer_close(p, rq->reason, false);
    break;
  case PN_PEER_CONNECTED:
    if (p->draining) {
      /* A host closing while the peer drains: at once, with the reason
       * the application gave. */
      if (!rq->drain) {
        say_goodbye(p);
      }
      break;
    }
    p->reason = rq->reason;
    p->reason_remote = false;
    if (rq->drain) {
      p->draining = true;
      p->drain_deadline_ns = pn__now_ns() + rq->timeout_us * 1000u;
      check_drained(p, pn__now_ns());
    } else {
      say_goodbye(p);
    }
    break;
  default:
    break;
  }
}

uint64_t pn__peer_keepalive_slot(const pn_peer *p) {
  uint64_t slot = p->keepalive_base_ns / KEEPALIVE_SLOTS;
  return slot < KEEPALIVE_SLOT_MAX_NS ? slot : KEEPALIVE_SLOT_MAX_NS;
}

static uint64_t slot_up(uint64_t t, uint64_t slot) {
  return slot ? (t + slot - 1) / slot * slot : t;
}

static uint64_t next_deadline(pn_peer *p) {
  const pn_host *h = p->host;
  switch (pn__peer_state(p)) {
  case PN_PEER_CONNECTING: {
    if (!p->registered) {
      return p->start_ns + h->connect_timeout_ns; /* no id yet */
    }
    uint64_t retry = p->handshake_sent_ns + h->connect_retry_ns;
    uint64_t give_up = p->start_ns + h->connect_timeout_ns;
    return retry < give_up ? retry : give_up;
  }
  case PN_PEER_CONNECTED: {
    /* Keepalive and idle deadlines need no precision: rounded up to a slot
     * (keepalive/32, at most 2 ms), all the peers due in one slot are
     * served by one wake-up of the worker rather than one each. Larger
     * slots make bursts that overflow a socket's receive buffer. */
    uint64_t slot = pn__peer_keepalive_slot(p);
    uint64_t d = slot_up(p->last_recv_ns + p->idle_timeout_ns, slot);
    uint64_t k =
        slot_up((p->last_send_ns > p->ping_tried_ns ? p->last_send_ns
                                                    : p->ping_tried_ns) +
                    p->keepalive_ns,
                slot);
    d = k < d ? k : d;
    if (p->unacked_since_ns) {
      uint64_t a = p->unacked_since_ns + p->ack_timeout_ns;
      d = a < d ? a : d;
    }
    uint64_t r = pn__recovery_rto_deadline(&p->rec);
    if (r) {
      d = r < d ? r : d;
    }
    uint64_t probe = pn__flow_probe_deadline(&p->flow, p->rec.in_flight);
    if (probe) {
      d = probe < d ? probe : d; /* blocked by the window: ping */
    }
    uint64_t pace = pn__peer_pace_at(p);
    if (pace && (!pn__sendq_empty(&p->sendq) || p->rtx.head < p->rtx.tail)) {
      d = pace < d ? pace : d; /* frames wait for the bucket */
    }
    if (p->draining) {
      d = p->drain_deadline_ns < d ? p->drain_deadline_ns : d;
    }
    if (p->reack_at_ns) {
      d = p->reack_at_ns < d ? p->reack_at_ns : d;
    }
    if (p->partials) {
      d = d < p->last_recv_ns + PN__PARTIAL_EXPIRY_NS
              ? d
              : p->last_recv_ns + PN__PARTIAL_EXPIRY_NS;
    }
    return d;
  }
  case PN_PEER_DISCONNECTING: {
    /* Each goodbye waits twice as long as the one before, up to 4 RTOs
     * (and rto_max): a receiver too busy to answer within one RTO, as
     * when thousands of peers close at once, still hears one of them, and
     * an unresponsive one holds the peer at most 27 RTOs. */
    uint64_t wait = pn__recovery_rto(&p->rec);
    uint32_t sent = p->disconnect_sends;
    wait <<= sent > 3 ? 2 : (sent ? sent - 1 : 0);
    return p->last_send_ns + (wait < h->rto_max_ns ? wait : h->rto_max_ns);
  }
  default:
    return 0;
  }
}

static void arm_timer(pn_peer *p) {
  uint64_t at = next_deadline(p);
  if (!at || (p->timer && p->timer_at <= at)) {
    return;
  }
  cancel_timer(p);
  uint64_t now = pn__now_ns();
  /* At least 100 us: a deadline already past is handled by this tick, and
   * a mistake in one can never become a busy loop of ticks. */
  uint64_t delay = at > now + 100000 ? (at - now + 999) / 1000 : 100;
  if (pn__timer_start(p->actor, PN__P_TICK, delay, 0, &p->timer) == PN_OK) {
    p->timer_at = at;
  } else {
    p->timer = NULL;
  }
}

static void on_tick(pn_peer *p, pn__scratch *sc) {
  const pn_host *h = p->host;
  uint64_t now = pn__now_ns();
  switch (pn__peer_state(p)) {
  case PN_PEER_CONNECTING:
    if (now - p->start_ns >= h->connect_timeout_ns) {
      pn__peer_close(p, PN_REASON_CONNECT_TIMEOUT, false);
    } else if (now - p->handshake_sent_ns >= h->connect_retry_ns &&
               p->registered) {
      pn__handshake_send_connect(p, sc);
    }
    break;
  case PN_PEER_CONNECTED:
    if (now - p->last_recv_ns >= p->idle_timeout_ns) {
      pn__peer_close(p, PN_REASON_TIMEOUT, false);
      break;
    }
    /* Hearing from a peer is not enough: one that pings but acknowledges
     * nothing would hold its send queue forever. */
    if (p->unacked_since_ns && now - p->unacked_since_ns >= p->ack_timeout_ns) {
      pn__peer_close(p, PN_REASON_ACK_TIMEOUT, false);
      break;
    }
    pn__peer_on_rto(p, now);
    pn__peer_on_reack(p, now);
    if (now - p->last_send_ns >= p->keepalive_ns &&
        now - p->ping_tried_ns >= p->keepalive_ns) {
      p->ping_owed = true;
      p->ping_tried_ns = now;
    }
    pn__peer_expire_partials(p, now, UINT32_MAX, 0);
    check_drained(p, now);
    break;
  case PN_PEER_DISCONNECTING:
    if (now < next_deadline(p)) {
      break; /* a timer armed while connected: not a goodbye's turn */
    }
    if (p->disconnect_sends >= DISCONNECT_SENDS) {
      pn__peer_close(p, p->reason, false);
    } else {
      p->disconnect_sends++;
      p->disconnect_owed = true;
    }
    break;
  default:
    break;
  }
}

/* The peer's timeouts from the given ones (0: the host's). The ack
 * timeout is the host's when configured, else half the idle timeout, as
 * for the host. Each peer pings at its own interval, 3/4 of the keepalive
 * to one slot less than all of it, so peers that connected together drift
 * apart instead of pinging in one burst; rounded up to next_deadline's
 * slot it is never longer than the keepalive, which the other side's idle
 * timeout counts on. */
static void set_timeouts(pn_peer *p, uint64_t idle_ns, uint64_t keepalive_ns) {
  const pn_host *h = p->host;
  p->idle_timeout_ns = idle_ns ? idle_ns : h->idle_timeout_ns;
  p->ack_timeout_ns =
      h->ack_timeout_set ? h->ack_timeout_ns : p->idle_timeout_ns / 2;
  p->keepalive_base_ns = keepalive_ns ? keepalive_ns : h->keepalive_ns;
  uint64_t k = p->keepalive_base_ns, r;
  pn__random_buf(&r, sizeof r);
  p->keepalive_ns = k - k / 4 + r % (k / 4 - pn__peer_keepalive_slot(p) + 1);
}

static void peer_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  pn_peer *p = state;
  pn__scratch *sc = pn__host_scratch(p->host);
  uint32_t type = pn_msg_type(msg);
  if (type == PN_MSG_STOPPED) {
    cancel_timer(p);
    drop_queues(p);
    if (p->goodbye) {
      pn__event_drop(p, p->goodbye); /* stopped without finishing */
      p->goodbye = NULL;
    }
    if (!p->gone) {
      p->gone = true;
      pn__peer_set_state(p, PN_PEER_DISCONNECTED);
      pn__host_forget(p->host, p);
    }
    pn_peer_release(p); /* the actor's reference */
    return;
  }
  if (p->gone) {
    if (type == PN__P_CHANNEL_DONE && p->channels_open &&
        --p->channels_open == 0) {
      finish(p);
    }
    return;
  }
  switch (type) {
  case PN__P_START:
    p->start_ns = pn__now_ns();
    pn__handshake_send_connect(p, sc);
    break;
  case PN__P_RECV:
    pn__peer_on_recv(p, sc, msg);
    break;
  case PN__P_POKE:
    p->poked = false;
    break;
  case PN__P_TICK:
    cancel_timer(p);
    on_tick(p, sc);
    break;
  case PN__P_TIMEOUTS: {
    uint64_t t[2];
    memcpy(t, pn_msg_data(msg), sizeof t);
    set_timeouts(p, t[0], t[1]);
    break; /* the batch end re-arms the timer for the new deadlines */
  }
  case PN__P_DISCONNECT: {
    pn__disconnect_request rq;
    PN_ASSERT(pn_msg_size(msg) == sizeof rq); /* pn__peer_close_request() */
    memcpy(&rq, pn_msg_data(msg), sizeof rq);
    local_disconnect(p, &rq);
    break;
  }
  case PN_MSG_BATCH_END:
    check_drained(p, pn__now_ns()); /* after the run's acknowledgements */
    pn__peer_flush(p, sc);
    pn__peer_check_writable(p);
    if (!p->gone) {
      arm_timer(p);
    }
    break;
  default:
    break;
  }
}

void pn__peer_route(pn_peer *p, uint32_t socket, const pn_addr *from,
                    const uint8_t *data, size_t len) {
  pn__recv_header rh = {socket, *from};
  /* PN_ECLOSED: the peer is stopping; the datagram has nobody to go to. */
  (void)pn__send_parts(p->actor, PN__P_RECV, &rh, sizeof rh, data, len);
}

pn_err pn__peer_close_request(pn_peer *p, uint32_t reason) {
  pn__disconnect_request rq = {.reason = reason};
  pn_err err =
      pn__send_parts(p->actor, PN__P_DISCONNECT, &rq, sizeof rq, NULL, 0);
  /* PN_ECLOSED: the peer is stopping anyway. */
  return err == PN_ECLOSED ? PN_OK : err;
}

pn_err pn__peer_create(pn_host *h, const pn_peer_config *cfg, bool is_client,
                       pn_peer **out) {
  uint32_t nch = cfg->channel_count ? cfg->channel_count : 1;
  pn_peer *p = pn__calloc(1, sizeof *p + nch * sizeof(pn_channel));
  if (!p) {
    return PN_ENOMEM;
  }
  pn__recovery_limits lim = {.rto_min_ns = h->rto_min_ns,
                             .rto_max_ns = h->rto_max_ns,
                             .rto_initial_ns = h->rto_initial_ns,
                             .window = h->window,
                             .paths = h->nsockets};
  if (pn__recovery_init(&p->rec, &lim) != PN_OK ||
      pn__sendq_init(&p->sendq, nch) != PN_OK) {
    pn__recovery_fini(&p->rec);
    pn__sendq_fini(&p->sendq);
    free(p);
    return PN_ENOMEM;
  }
  atomic_init(&p->refs, 1);
  atomic_init(&p->state, PN_PEER_CONNECTING);
  pn__list_init(&p->stat.link);
  pn__host_ref(h);
  p->host = h;
  pn_actor_hold(cfg->owner);
  p->owner = cfg->owner;
  p->id = atomic_fetch_add_explicit(&next_peer_id, 1, memory_order_relaxed);
  atomic_init(&p->user, cfg->user);
  p->addr = p->origin = cfg->remote;
  p->sockets_mask = cfg->sockets_mask ? cfg->sockets_mask : 1u;
  /* The first: the handshake goes through it, which proves it. */
  p->socket_rr = (uint32_t)__builtin_ctz(p->sockets_mask);
  p->sockets_ok = 1u << p->socket_rr;
  p->is_client = is_client;
  if (is_client) {
    pn__random_buf(&p->client_nonce, sizeof p->client_nonce);
  }
  atomic_init(&p->st_cwnd, PN__CWND_INITIAL);
  pn__flow_init(&p->flow, h->max_receive_buffer);
  atomic_init(&p->st_send_window, pn__flow_window(&p->flow));
  set_timeouts(p, cfg->idle_timeout_us * 1000u, cfg->keepalive_us * 1000u);
  p->send_rate = cfg->send_rate ? cfg->send_rate : h->send_rate;
  p->delivery_events = !cfg->no_delivery_events;
  p->pace_ns = p->start_ns;
  p->pace_tokens = (int64_t)pn__peer_pace_burst(p);
  p->start_ns = p->last_send_ns = p->last_recv_ns = pn__now_ns();
  atomic_init(&p->st_comp_out, 0);
  p->nchannels = nch;
  for (uint32_t i = 0; i < nch; i++) {
    pn_channel *ch = &p->channels[i];
    ch->peer = p;
    ch->index = i;
    ch->kind = cfg->kinds ? cfg->kinds[i] : PN_CHANNEL_ORDERED;
    atomic_init(&ch->next_msg_id, 1);
    ch->next_seq = 1;
    ch->next_expected = 1;
    ch->rx.base = 1;
  }
  /* Reserved now, so the owner's last event is never missing (the
   * events before it borrow the peer on its strength). */
  pn__event *goodbye;
  p->goodbye = pn__event_new(PN_MSG_PEER_DISCONNECTED, p, &goodbye);
  pn_err err = p->goodbye ? PN_OK : PN_ENOMEM;
  if (err == PN_OK && is_client) {
    err = pn__handshake_client_init(p, cfg);
  }
  uint32_t spawned = 0;
  for (; spawned < nch && err == PN_OK; spawned++) {
    err = pn__channel_spawn(p, &p->channels[spawned], h->home);
  }
  if (err == PN_OK) {
    pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
    acfg.name = "pn.peer";
    acfg.handler = peer_handler;
    acfg.state = p;
    acfg.home_worker = h->home;
    acfg.batch_end = true;
    pn_peer_hold(p); /* the actor's */
    err = pn_spawn(h->rt, &acfg, &p->actor);
    if (err != PN_OK) {
      pn_peer_release(p);
    }
  }
  if (err != PN_OK) {
    p->gone = true;
    pn__peer_set_state(p, PN_PEER_DISCONNECTED);
    for (uint32_t i = 0; i < nch; i++) {
      if (p->channels[i].actor) {
        (void)pn_actor_stop(p->channels[i].actor);
      }
    }
    pn_peer_release(p);
    return err;
  }
  pn__registry_add(h->rt, &p->stat, &pn__peer_class);
  *out = p;
  return PN_OK;
}

static pn_err request_disconnect(pn_peer *peer, uint32_t reason, bool drain,
                                 uint64_t timeout_us) {
  if (!peer || reason >= PN_REASON_LIBRARY ||
      (drain && (!timeout_us || timeout_us > PN_HOST_TIME_MAX_US))) {
    return PN_EINVAL;
  }
  /* The first request wins; sends stop here, before the actor hears of
   * it, so a send made after this call returns is refused rather than
   * queued and dropped. seq_cst: see close_sends(). */
  if (atomic_exchange_explicit(&peer->sends_closed, 1, memory_order_seq_cst) ||
      pn__peer_state(peer) >= PN_PEER_DISCONNECTING) {
    return PN_ECLOSED;
  }
  pn__disconnect_request rq = {
      .reason = reason, .drain = drain, .timeout_us = timeout_us};
  pn_err err =
      pn__send_parts(peer->actor, PN__P_DISCONNECT, &rq, sizeof rq, NULL, 0);
  if (err == PN_ENOMEM) {
    /* Not asked: the peer goes on taking sends (relaxed: nothing is
     * published with it). */
    atomic_store_explicit(&peer->sends_closed, 0, memory_order_relaxed);
    return PN_ENOMEM;
  }
  return err == PN_OK ? PN_OK : PN_ECLOSED; /* the actor stopped */
}

pn_err pn_peer_disconnect(pn_peer *peer, uint32_t reason) {
  return request_disconnect(peer, reason, false, 0);
}

pn_err pn_peer_disconnect_later(pn_peer *peer, uint32_t reason,
                                uint64_t timeout_us) {
  return request_disconnect(peer, reason, true, timeout_us);
}

pn_channel *pn_peer_channel(pn_peer *peer, uint32_t index) {
  return peer && index < peer->nchannels ? &peer->channels[index] : NULL;
}

uint32_t pn_peer_channel_count(const pn_peer *peer) {
  return peer ? peer->nchannels : 0;
}

uint64_t pn_peer_id(const pn_peer *peer) { return peer ? peer->id : 0; }

pn_err pn_peer_set_user(pn_peer *peer, void *user) {
  if (!peer) {
    return PN_EINVAL;
  }
  /* release: pairs with the acquire load in pn__event_new() (event.c) and
   * pn_peer_user(), so the pointee's writes before this call are seen by
   * whoever reads the pointer back. */
  atomic_store_explicit(&peer->user, user, memory_order_release);
  return PN_OK;
}

void *pn_peer_user(const pn_peer *peer) {
  /* acquire: pairs with the release store in pn_peer_set_user(). */
  return peer ? atomic_load_explicit(&peer->user, memory_order_acquire) : NULL;
}

pn_err pn_peer_set_timeouts(pn_peer *peer, uint64_t idle_timeout_us,
                            uint64_t keepalive_us) {
  if (!peer || idle_timeout_us > PN_HOST_TIME_MAX_US ||
      keepalive_us > PN_HOST_TIME_MAX_US) {
    return PN_EINVAL;
  }
  if (pn__peer_state(peer) == PN_PEER_DISCONNECTED) {
    return PN_ECLOSED;
  }
  uint64_t t[2] = {idle_timeout_us * 1000u, keepalive_us * 1000u};
  pn_err err =
      pn__send_parts(peer->actor, PN__P_TIMEOUTS, t, sizeof t, NULL, 0);
  return err;
}

pn_err pn_peer_addr(const pn_peer *peer, pn_addr *out) {
  if (!peer || !out) {
    return PN_EINVAL;
  }
  /* The peer actor moves addr under the registry lock (path.c). */
  pn__registry_lock(peer->host->rt);
  *out = peer->addr;
  pn__registry_unlock(peer->host->rt);
  return PN_OK;
}

void pn__peer_set_remote_key(pn_peer *p, const uint8_t key[PN_KEY_BYTES]) {
  pn__registry_lock(p->host->rt);
  memcpy(p->remote_key, key, PN_KEY_BYTES);
  p->has_remote_key = true;
  pn__registry_unlock(p->host->rt);
}

pn_err pn_peer_remote_key(const pn_peer *peer,
                          uint8_t public_out[PN_KEY_BYTES]) {
  if (!peer || !public_out) {
    return PN_EINVAL;
  }
  pn_err err = PN_ENOENT;
  pn__registry_lock(peer->host->rt);
  if (peer->has_remote_key) {
    memcpy(public_out, peer->remote_key, PN_KEY_BYTES);
    err = PN_OK;
  }
  pn__registry_unlock(peer->host->rt);
  return err;
}

void pn__peer_stats_fill(const pn_peer *peer, pn_peer_stats *out) {
  memset(out, 0, sizeof *out);
#define LD(f) atomic_load_explicit(&peer->f, memory_order_relaxed)
  out->state = pn__peer_state(peer);
  out->srtt_us = LD(st_srtt);
  out->rttvar_us = LD(st_rttvar);
  out->min_rtt_us = LD(st_min_rtt);
  out->rto_us = LD(st_rto);
  out->datagrams_out = LD(st_dg_out);
  out->bytes_out = LD(st_bytes_out);
  out->datagrams_in = LD(st_dg_in);
  out->bytes_in = LD(st_bytes_in);
  out->datagrams_lost = LD(st_lost);
  uint64_t resolved = out->datagrams_lost + LD(st_acked_dg);
  out->loss = resolved ? (double)out->datagrams_lost / (double)resolved : 0.0;
  out->retransmits = LD(st_retransmits);
  out->acks_only = LD(st_acks_only);
  out->messages_out = LD(st_msgs_out);
  out->messages_in = LD(st_msgs_in);
  out->duplicates = LD(st_dups);
  out->bad_datagrams = LD(st_bad);
  out->stale = LD(st_stale);
  out->raw_bytes_out = LD(st_raw_out);
  out->compressed_bytes_out = LD(st_comp_out);
  out->compression_ratio =
      out->compressed_bytes_out
          ? (double)out->raw_bytes_out / (double)out->compressed_bytes_out
          : 1.0;
  out->in_flight = LD(st_in_flight);
  out->queued_bytes = LD(queued_bytes);
  out->reassembly_bytes = LD(st_reassembly);
  out->cwnd = LD(st_cwnd);
  out->ssthresh = LD(st_ssthresh);
  out->unproven_datagrams = LD(st_unproven);
  out->path_challenges = LD(st_challenges);
  out->migrations = LD(st_migrations);
  out->receive_buffer_bytes = LD(st_held);
  out->receive_buffer_max = LD(st_held_max);
  out->window_drops = LD(st_window_drops);
  out->send_window = LD(st_send_window);
#undef LD
}

pn_err pn_peer_stats_get(const pn_peer *peer, pn_peer_stats *out) {
  if (!peer || !out) {
    return PN_EINVAL;
  }
  pn__peer_stats_fill(peer, out);
  return PN_OK;
}

/* --- observability ------------------------------------------------------- */

const pn__stat_class pn__peer_class = {.name = "peer"};

void pn__peer_info_fill(const pn_peer *p, pn_peer_info *o,
                        pn_channel_info *channels) {
  memset(o, 0, sizeof *o);
  o->id = p->id;
  o->actor_id = pn_actor_id(p->actor);
  o->owner_id = pn_actor_id(p->owner);
  (void)pn_addr_format(&p->addr, o->remote, sizeof o->remote);
  o->is_client = p->is_client;
  o->channel_count = p->nchannels;
  pn__peer_stats_fill(p, &o->stats);
  for (uint32_t i = 0; i < p->nchannels; i++) {
    pn_channel_info *c = &channels[i];
    c->peer_id = p->id;
    c->actor_id = pn_actor_id(p->channels[i].actor);
    c->index = i;
    c->kind = (uint32_t)p->channels[i].kind;
  }
}
