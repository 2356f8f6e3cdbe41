/* A client that spreads its datagrams over two sockets (sockets_mask), on
 * both I/O backends: every channel kind keeps its guarantee, and messages
 * of 64 KiB (fragments) go through, on a clean link, through 5% loss each
 * way, and with the second socket's path 4 ms slower each way than the
 * first. Once the server has proven the second address, datagrams leave
 * through both sockets in comparable shares and the replies come back to
 * both (to the faster mostly, when one is slower); nothing is reported lost
 * that arrived (the round robin moves whole flushes, the gap rule counts each
 * path's datagrams apart and learns how far a path reorders, and the receiver
 * acknowledges apart what arrives far behind its newest). */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "tests/net/net_harness.h"

#if defined(__SANITIZE_THREAD__)
#define MULTISOCKET_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MULTISOCKET_TSAN 1
#endif
#endif
#ifndef MULTISOCKET_TSAN
#define MULTISOCKET_TSAN 0
#endif

/* Two phases of N/2 messages per kind; channel BIG carries BIG_N ordered
 * messages of BIG_LEN bytes in the second. */
enum { KINDS = 5, N = 2000, CHUNK = 20, LEN = 100 };
enum { BIG = KINDS, CHANNELS, BIG_N = 8, BIG_LEN = 64 * 1024 };
enum { WARM = CHANNELS, ALL_CHANNELS }; /* the server ignores it */

static const pn_channel_kind kinds[ALL_CHANNELS] = {
    PN_CHANNEL_ORDERED,    PN_CHANNEL_RELIABLE_UNORDERED, PN_CHANNEL_RELIABLE,
    PN_CHANNEL_UNRELIABLE, PN_CHANNEL_UNSEQUENCED,        PN_CHANNEL_ORDERED,
    PN_CHANNEL_ORDERED};

typedef struct path_case {
  double loss;      /* each way, every socket */
  uint32_t slow_us; /* added each way on the client's second socket */
  uint64_t rate;    /* bytes/s the client's second socket may send (0:
                       no cap), with 10 ms of queue */
} path_case;

/* The server's owner: what each channel delivered. */
typedef struct rec {
  pthread_mutex_t lock;
  uint64_t got[CHANNELS];
  uint64_t last[CHANNELS];
  uint8_t seen[CHANNELS][N + 2];
  uint64_t dup_or_bad, out_of_order;
  pn_test_latch *phase_done[2]; /* per phase: its ORDERED and
                                   RELIABLE_UNORDERED messages, RELIABLE's
                                   last one, and (second) the big ones */
  pn_peer *peer;                /* held */
} rec;

static void rec_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  rec *r = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  pthread_mutex_lock(&r->lock);
  if (pn_msg_type(msg) == PN_MSG_PEER_CONNECTED && !r->peer) {
    pn_peer_hold(ev.peer);
    r->peer = ev.peer;
  }
  uint64_t id;
  if (pn_msg_type(msg) == PN_MSG_PEER_PACKET && ev.channel < CHANNELS) {
    uint32_t k = ev.channel;
    if (!net_check(ev.data, ev.len, &id) || id == 0 || id > N + 1 ||
        r->seen[k][id]) {
      r->dup_or_bad++;
    } else {
      r->seen[k][id] = 1;
      r->got[k]++;
      bool sequenced = kinds[k] == PN_CHANNEL_ORDERED ||
                       kinds[k] == PN_CHANNEL_RELIABLE ||
                       kinds[k] == PN_CHANNEL_UNRELIABLE;
      if (sequenced && id <= r->last[k]) {
        r->out_of_order++;
      }
      r->last[k] = id > r->last[k] ? id : r->last[k];
      int phase = k == BIG || id > N / 2;
      if (id <= N &&
          (k == BIG || kinds[k] == PN_CHANNEL_ORDERED ||
           kinds[k] == PN_CHANNEL_RELIABLE_UNORDERED ||
           (kinds[k] == PN_CHANNEL_RELIABLE && (id == N / 2 || id == N)))) {
        pn_test_latch_count_down(r->phase_done[phase]);
      }
    }
  }
  pthread_mutex_unlock(&r->lock);
}

static pn_socket_stats client_socket(pn_runtime *rt, pn_host *h, uint32_t i) {
  pn_addr a;
  PN_ASSERT_OK(pn_host_local_addr(h, i, &a));
  return net_socket_stats(rt, &a);
}

static void send_phase(pn_peer *peer, uint64_t first, uint64_t last) {
  for (; first <= last; first += CHUNK) {
    for (uint32_t k = 0; k < KINDS; k++) {
      net_send_range(pn_peer_channel(peer, k), first, first + CHUNK - 1, LEN);
    }
  }
}

static void wait_phase(rec *r, int phase, pn_peer *peer) {
  if (!pn_test_latch_wait(r->phase_done[phase], NET_WAIT_MS)) {
    net_print_peer("client", peer);
    fail_msg("phase %d: the reliable channels did not deliver everything",
             phase + 1);
  }
}

static void every_kind_through_two_sockets(const path_case *pc) {
  pn_runtime *rt = net_runtime();
  static rec r; /* large: off the stack */
  memset(&r, 0, sizeof r);
  pthread_mutex_init(&r.lock, NULL);
  pn_test_latch done[2], connected;
  pn_test_latch_init(&done[0], 2 * (N / 2) + 1);
  pn_test_latch_init(&done[1], 2 * (N / 2) + 1 + BIG_N);
  pn_test_latch_init(&connected, 1);
  r.phase_done[0] = &done[0];
  r.phase_done[1] = &done[1];
  net_app capp;
  net_app_init(&capp, 4);
  capp.on_connect = &connected;
  pn_actor *sa = pn_test_spawn(rt, "server-app", rec_handler, &r, 0);
  pn_actor *ca = pn_test_spawn(rt, "client-app", net_app_handler, &capp, 1);
  pn_host *server = net_host(rt, sa, NULL, NULL);
  pn_host *client = net_host_sockets(rt, NULL, NULL, 2);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  uint64_t seed = pn_test_seed();
  for (uint32_t i = 0; i < 3; i++) {
    pn_link_conditioner c = PN_LINK_CONDITIONER_INIT;
    c.loss = pc->loss;
    c.seed = seed ^ (0x5555u * (i + 1));
    pn_host *h = i == 0 ? server : client;
    uint32_t sock = i == 2 ? 1 : 0;
    if (i == 2 && pc->slow_us) {
      c.latency_us = pc->slow_us;
      PN_ASSERT_OK(pn_host_set_conditioner(h, sock, PN_DIR_RECV, &c));
    }
    if (i == 2 && pc->rate) {
      c.rate_bytes_per_s = pc->rate;
      c.queue_us = 10000;
    }
    if (c.loss > 0 || c.latency_us || c.rate_bytes_per_s) {
      PN_ASSERT_OK(pn_host_set_conditioner(h, sock, PN_DIR_SEND, &c));
    }
  }
  pn_peer *peer = net_connect(client, &to, ca, ALL_CHANNELS, kinds, 0x3);
  assert_true(pn_test_latch_wait(&connected, NET_WAIT_MS));

  /* Phase 1: the second socket gets proven along the way (the client
   * probes it, the server challenges it, the answer proves it). */
  send_phase(peer, 1, N / 2);
  wait_phase(&r, 0, peer);
  pthread_mutex_lock(&r.lock);
  pn_peer *back = r.peer;
  pthread_mutex_unlock(&r.lock);
  for (uint64_t t0 = net_now_ms();
       !net_peer_stats(back).migrations && net_now_ms() - t0 < NET_WAIT_MS;) {
    sched_yield();
  }
  assert_int_equal(net_peer_stats(back).migrations, 1);
  /* The client uses the second socket once the server acknowledged a
   * datagram sent through it (the answer to its challenge, or a probe an
   * RTO later): traffic on a channel the server ignores until it does
   * (bounded in time and count). */
  uint64_t warm0 = client_socket(rt, client, 1).datagrams_out;
  for (uint64_t t0 = net_now_ms(), id = 1;
       client_socket(rt, client, 1).datagrams_out < warm0 + 8 &&
       net_now_ms() - t0 < NET_WAIT_MS && id < 100000;
       id += 4) {
    net_send_range(pn_peer_channel(peer, WARM), id, id + 3, LEN);
    sched_yield();
  }

  /* Phase 2: both sockets in use, and 64 KiB messages among the rest. */
  pn_socket_stats k0 = client_socket(rt, client, 0);
  pn_socket_stats k1 = client_socket(rt, client, 1);
  pn_peer_stats cs0 = net_peer_stats(peer);
  uint64_t phase2_ms = net_now_ms();
  net_send_range(pn_peer_channel(peer, BIG), 1, BIG_N / 2, BIG_LEN);
  send_phase(peer, N / 2 + 1, N);
  net_send_range(pn_peer_channel(peer, BIG), BIG_N / 2 + 1, BIG_N, BIG_LEN);
  wait_phase(&r, 1, peer);
  phase2_ms = net_now_ms() - phase2_ms;
  /* Once the client has nothing in flight and nothing unacknowledged, the
   * server's peer has handled every datagram that arrived (it acknowledges
   * after handing the messages to the owner); one more ordered message
   * after that reaches the owner behind all of them (one sender, FIFO). */
  for (uint64_t t0 = net_now_ms(); net_now_ms() - t0 < NET_WAIT_MS;) {
    pn_peer_stats st = net_peer_stats(peer);
    if (!st.in_flight && !st.queued_bytes) {
      break;
    }
    sched_yield();
  }
  net_send_range(pn_peer_channel(peer, 0), N + 1, N + 1, LEN);
  for (uint64_t t0 = net_now_ms(); net_now_ms() - t0 < NET_WAIT_MS;) {
    pthread_mutex_lock(&r.lock);
    bool in = r.seen[0][N + 1];
    pthread_mutex_unlock(&r.lock);
    if (in) {
      break;
    }
    sched_yield();
  }
  pn_socket_stats e0 = client_socket(rt, client, 0);
  pn_socket_stats e1 = client_socket(rt, client, 1);
  uint64_t out0 = e0.datagrams_out - k0.datagrams_out;
  uint64_t out1 = e1.datagrams_out - k1.datagrams_out;
  uint64_t in0 = e0.datagrams_in - k0.datagrams_in;
  uint64_t in1 = e1.datagrams_in - k1.datagrams_in;
  pn_peer_stats cs = net_peer_stats(peer);
  pthread_mutex_lock(&r.lock);
  pn_peer_stats ss = net_peer_stats(r.peer);
  uint64_t dropped = e0.cond_dropped + e1.cond_dropped;
  uint64_t resent = cs.retransmits - cs0.retransmits;
  uint64_t sent2 = cs.datagrams_out - cs0.datagrams_out;
  fprintf(
      stderr,
      "# loss %.2f, second path +%u us, %" PRIu64 " B/s: phase 2 in %" PRIu64
      " ms, delivered ordered %" PRIu64 ", reliable-unordered %" PRIu64
      ", reliable %" PRIu64 " (last %" PRIu64 "), unreliable %" PRIu64
      ", unsequenced %" PRIu64 " of %d, big %" PRIu64
      " of %d; phase 2 through the client's sockets: "
      "out %" PRIu64 " + %" PRIu64 ", in %" PRIu64 " + %" PRIu64
      "; client: %" PRIu64 " datagrams out, %" PRIu64 " lost, %" PRIu64
      " frames resent (phase 2: %" PRIu64 " of %" PRIu64
      " datagrams), link dropped %" PRIu64 ", cwnd %" PRIu64
      "; server: %" PRIu64 " migrations, %" PRIu64 " unproven, %" PRIu64
      " dups\n",
      pc->loss, pc->slow_us, pc->rate, phase2_ms, r.got[0], r.got[1], r.got[2],
      r.last[2], r.got[3], r.got[4], N, r.got[BIG], BIG_N, out0, out1, in0, in1,
      cs.datagrams_out, cs.datagrams_lost, cs.retransmits, resent, sent2,
      dropped, cs.cwnd, ss.migrations, ss.unproven_datagrams, ss.duplicates);
  /* Every kind kept its guarantee. */
  assert_int_equal(r.got[0], N + 1);
  assert_int_equal(r.got[1], N);
  assert_int_equal(r.last[2], N);
  assert_int_equal(r.got[BIG], BIG_N);
  assert_int_equal(r.out_of_order, 0);
  assert_int_equal(r.dup_or_bad, 0);
  /* What a link losing `loss` each way lets through, with room. The
   * sequenced unreliable channel also drops what arrives after a newer
   * message came through the other socket (its guarantee: never an older
   * one after a newer): the sockets' batches leave from separate socket
   * actors and cross now and then, and a slower path crosses more often:
   * each of its flushes arrives behind the faster one's newer messages
   * (80-100% kept in release builds; under ThreadSanitizer, whose stalls
   * make the 4 ms path 40 ms and cut the faster one's window by its
   * queueing-delay signal, so the slower one carries more, 44-100%).
   * Unsequenced takes everything. */
  double keep = pc->loss > 0 || pc->rate ? 0.80 : 0.97;
  assert_true((double)r.got[4] >= keep * N);
  assert_true((double)r.got[3] >= (pc->slow_us ? 0.35 : 0.5) * keep * N);
  pthread_mutex_unlock(&r.lock);
  /* Once proven, both sockets carry data and get replies. Each path has
   * its own window (round robin per flush, and a flush whose path's window
   * is full moves to a path whose is not): on equal paths each carries at
   * least a tenth of the second phase's datagrams (14-83% in release
   * builds; under ThreadSanitizer, whose stalls of several milliseconds
   * are queueing-delay signals that can keep one path's window at its
   * minimum for the whole phase, a twentieth: 8% was seen); a narrower
   * path, whose cap drops what exceeds it, carries less than the other,
   * which its losses do not hold back. A slower one usually carries less
   * too (11-22% in release builds), but not always under a sanitizer,
   * whose own delays can dwarf the 4 ms: printed, not bounded. */
  uint64_t share = MULTISOCKET_TSAN ? 20 : 10;
  if (pc->rate) {
    assert_true(out1 > 0 && out1 < out0);
  } else if (pc->slow_us) {
    assert_true(out1 > 0);
  } else {
    assert_true(out0 * share >= out0 + out1 && out1 * share >= out0 + out1);
  }
  /* Replies go where the newest datagram came from: both sockets on equal
   * paths; on unequal ones mostly the faster. */
  assert_true(in0 > 0 && (pc->slow_us || pc->rate || in1 > 0));
  /* On a clean link, slow second path or not, nothing is reported lost
   * (at most 1%: a late acknowledgement on a busy machine) and usually
   * nothing is resent: each path's datagrams are judged by its own
   * acknowledgements and its own RTO (from its own round trips, though
   * its datagrams are seldom the newest the receiver has), a suspect's
   * wait shortens only once its path's acknowledgements pass it, and the
   * receiver names apart every datagram its next acknowledgement could
   * not (the sockets' batches, and the replies to each, may cross). Even
   * under ThreadSanitizer, whose stalls make the 4 ms path 40 ms. Half of
   * the transfer bounds what a stall of the machine past an RTO can cost.
   * Through loss, datagrams declared lost stay close to those the link
   * dropped, and what was lost was resent. */
  if (pc->loss == 0 && !pc->rate) {
    assert_true(cs.datagrams_lost * 100 <= cs.datagrams_out);
    assert_true(resent * 2 <= sent2);
  } else {
    assert_true(pc->rate || resent > 0);
    assert_true(cs.datagrams_lost <= dropped + dropped / 2 + 10);
  }
  pn_peer_release(peer);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_runtime_shutdown(rt, UINT64_MAX));
  pn_peer_release(r.peer);
  pn_peer_release(capp.peer);
  pn_actor_release(sa);
  pn_actor_release(ca);
  pn_test_runtime_end(rt);
  net_app_fini(&capp);
  pthread_mutex_destroy(&r.lock);
  pn_test_latch_fini(&done[0]);
  pn_test_latch_fini(&done[1]);
  pn_test_latch_fini(&connected);
}

static void every_kind_on_a_clean_link(void **state) {
  (void)state;
  every_kind_through_two_sockets(&(path_case){0});
}

static void every_kind_through_loss(void **state) {
  (void)state;
  every_kind_through_two_sockets(&(path_case){.loss = 0.05});
}

static void every_kind_with_a_slower_second_path(void **state) {
  (void)state;
  every_kind_through_two_sockets(&(path_case){.slow_us = 4000});
}

/* 2 MB/s on the second path (what passes its 10 ms queue), none on the
 * first: the second path's losses cut its own window. */
static void every_kind_with_a_narrow_second_path(void **state) {
  (void)state;
  every_kind_through_two_sockets(&(path_case){.rate = 2000000});
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_kind_on_a_clean_link),
      cmocka_unit_test(every_kind_through_loss),
      cmocka_unit_test(every_kind_with_a_slower_second_path),
      cmocka_unit_test(every_kind_with_a_narrow_second_path),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
