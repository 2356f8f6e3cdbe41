/* Inboxes (peernet/inbox.h): messages read on the test's own threads.
 * Receiving with and without a timeout, the eventfd under poll(2), sends
 * from actors and from other threads in order per sender, hand-over
 * buffers freed exactly once (released, or dropped by a close), the
 * backpressure an inbox puts on actors, timers, stats and a socket aimed
 * at an inbox, several readers at once, a connection's events over
 * loopback, stops that wake a blocked reader, and bad arguments. Every
 * group runs on both I/O backends; nothing sleeps. */
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "tests/net/net_harness.h"

enum { MSG_DATA = 1, MSG_GO = 2, MSG_TICK = 3 };

#define WAIT_US (10u * 1000000u) /* what a test waits for any one message */

static pn_runtime *runtime_with_high(uint32_t mailbox_high) {
  pn_runtime_config cfg = PN_RUNTIME_CONFIG_INIT;
  cfg.workers = 2;
  cfg.io = net_backend;
  cfg.mailbox_high = mailbox_high;
  pn_runtime *rt = NULL;
  PN_ASSERT_OK(pn_runtime_create(&cfg, &rt));
  return rt;
}

static pn_actor *open_inbox(pn_runtime *rt) {
  pn_actor *inbox = NULL;
  PN_ASSERT_OK(pn_inbox_open(rt, "test-inbox", &inbox));
  return inbox;
}

static bool fd_readable(pn_actor *inbox) {
  int fd = -1;
  PN_ASSERT_OK(pn_inbox_fd(inbox, &fd));
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int n = poll(&p, 1, 0);
  assert_true(n >= 0);
  return n == 1 && (p.revents & POLLIN);
}

/* Receives one message of the given type, or fails the test. */
static pn_msg *receive_type(pn_actor *inbox, uint32_t type) {
  pn_msg *m = NULL;
  PN_ASSERT_OK(pn_inbox_receive(inbox, WAIT_US, &m));
  assert_int_equal(pn_msg_type(m), type);
  return m;
}

/* A payload naming its sender and its place in that sender's sequence. */
typedef struct seq_msg {
  uint32_t sender;
  uint32_t seq;
} seq_msg;

/* Receives n seq_msg from `senders` senders and checks each sender's
 * sequence arrives whole and in order. */
static void receive_in_order(pn_actor *inbox, uint32_t senders, uint32_t n) {
  uint32_t next[64] = {0};
  assert_true(senders <= 64);
  for (uint32_t i = 0; i < n; i++) {
    pn_msg *m = receive_type(inbox, MSG_DATA);
    assert_int_equal(pn_msg_size(m), sizeof(seq_msg));
    seq_msg s;
    memcpy(&s, pn_msg_data(m), sizeof s);
    assert_true(s.sender < senders);
    assert_int_equal(s.seq, next[s.sender]);
    next[s.sender]++;
    pn_inbox_release(inbox, m);
  }
  for (uint32_t i = 0; i < senders; i++) {
    assert_int_equal(next[i], n / senders);
  }
}

/* --- receiving ----------------------------------------------------------- */

static void receive_times_out_and_returns_what_was_sent(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  pn_msg *m = NULL;
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(inbox, 0, &m));
  uint64_t t0 = net_now_ms();
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(inbox, 20000, &m));
  assert_true(net_now_ms() - t0 >= 19);
  assert_null(m);

  PN_ASSERT_OK(pn_send(inbox, MSG_DATA, "hello", 5));
  PN_ASSERT_OK(pn_send(inbox, MSG_GO, NULL, 0));
  PN_ASSERT_OK(pn_inbox_receive(inbox, 0, &m));
  assert_int_equal(pn_msg_type(m), MSG_DATA);
  assert_int_equal(pn_msg_size(m), 5);
  assert_memory_equal(pn_msg_data(m), "hello", 5);
  pn_msg *m2 = NULL;
  PN_ASSERT_OK(pn_inbox_receive(inbox, WAIT_US, &m2));
  assert_int_equal(pn_msg_type(m2), MSG_GO);
  assert_int_equal(pn_msg_size(m2), 0);
  /* The first is still valid while the second is held. */
  assert_memory_equal(pn_msg_data(m), "hello", 5);
  pn_inbox_release(inbox, m2);
  pn_inbox_release(inbox, m);
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(inbox, 0, &m));

  pn_actor_stats st;
  PN_ASSERT_OK(pn_actor_stats_get(inbox, &st));
  assert_int_equal(st.received, 2);
  assert_int_equal(st.processed, 2);
  assert_string_equal(st.name, "test-inbox");
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

typedef struct later_sender {
  pn_actor *inbox;
  pn_test_latch *receiving; /* the test is about to block */
} later_sender;

static void *send_later(void *arg) {
  later_sender *ls = arg;
  assert_true(pn_test_latch_wait(ls->receiving, 10000));
  PN_ASSERT_OK(pn_send(ls->inbox, MSG_DATA, "late", 4));
  return NULL;
}

static void blocking_receive_wakes_for_a_later_message(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  pn_test_latch receiving;
  pn_test_latch_init(&receiving, 1);
  later_sender ls = {inbox, &receiving};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, send_later, &ls), 0);
  pn_test_latch_count_down(&receiving);
  pn_msg *m = NULL;
  PN_ASSERT_OK(pn_inbox_receive(inbox, UINT64_MAX, &m));
  assert_int_equal(pn_msg_type(m), MSG_DATA);
  assert_memory_equal(pn_msg_data(m), "late", 4);
  pn_inbox_release(inbox, m);
  assert_int_equal(pthread_join(t, NULL), 0);
  pn_test_latch_fini(&receiving);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

static void fd_is_readable_while_messages_wait(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  assert_false(fd_readable(inbox));
  PN_ASSERT_OK(pn_send(inbox, MSG_DATA, "a", 1));
  assert_true(fd_readable(inbox));
  PN_ASSERT_OK(pn_send(inbox, MSG_DATA, "b", 1));
  pn_msg *m = NULL;
  PN_ASSERT_OK(pn_inbox_receive(inbox, 0, &m));
  assert_true(fd_readable(inbox)); /* "b" still waits */
  pn_inbox_release(inbox, m);
  PN_ASSERT_OK(pn_inbox_receive(inbox, 0, &m));
  assert_false(fd_readable(inbox)); /* the last one was taken */
  pn_inbox_release(inbox, m);

  /* poll(2) with a timeout wakes for a message an actor sends. */
  int fd = -1;
  PN_ASSERT_OK(pn_inbox_fd(inbox, &fd));
  PN_ASSERT_OK(pn_timer_start(inbox, MSG_TICK, 1000, 0, NULL));
  struct pollfd p = {.fd = fd, .events = POLLIN};
  assert_int_equal(poll(&p, 1, 10000), 1);
  pn_inbox_release(inbox, receive_type(inbox, MSG_TICK));
  assert_false(fd_readable(inbox));
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* --- senders --------------------------------------------------------------
 */

enum { ACTOR_SENDERS = 8, PER_SENDER = 3000, CHUNK = 100 };

typedef struct seq_sender {
  pn_actor *to;
  uint32_t id;
  uint32_t sent;
  uint32_t total;
  uint32_t chunk;
} seq_sender;

/* Sends a chunk of numbered messages per run, then asks itself for more,
 * as an actor that respects backpressure does. */
static void seq_sender_handler(pn_actor *self, void *state, const pn_msg *msg) {
  seq_sender *s = state;
  if (pn_msg_type(msg) != MSG_GO) {
    return;
  }
  for (uint32_t i = 0; i < s->chunk && s->sent < s->total; i++, s->sent++) {
    seq_msg m = {s->id, s->sent};
    PN_ASSERT_OK(pn_send(s->to, MSG_DATA, &m, sizeof m));
  }
  if (s->sent < s->total) {
    PN_ASSERT_OK(pn_send(self, MSG_GO, NULL, 0));
  }
}

static void actors_send_in_order_per_sender(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  seq_sender senders[ACTOR_SENDERS];
  pn_actor *actors[ACTOR_SENDERS];
  for (uint32_t i = 0; i < ACTOR_SENDERS; i++) {
    senders[i] = (seq_sender){inbox, i, 0, PER_SENDER, CHUNK};
    actors[i] = pn_test_spawn(rt, "sender", seq_sender_handler, &senders[i],
                              (int32_t)(i % 2));
  }
  for (uint32_t i = 0; i < ACTOR_SENDERS; i++) {
    PN_ASSERT_OK(pn_send(actors[i], MSG_GO, NULL, 0));
  }
  receive_in_order(inbox, ACTOR_SENDERS, ACTOR_SENDERS * PER_SENDER);
  pn_msg *m = NULL;
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(inbox, 0, &m));
  for (uint32_t i = 0; i < ACTOR_SENDERS; i++) {
    pn_actor_release(actors[i]);
  }
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

enum { THREAD_SENDERS = 4, READERS = 3 };

typedef struct thread_sender {
  pn_actor *to;
  uint32_t id;
  uint32_t total;
} thread_sender;

static void *thread_send(void *arg) {
  thread_sender *s = arg;
  for (uint32_t i = 0; i < s->total; i++) {
    seq_msg m = {s->id, i};
    PN_ASSERT_OK(pn_send(s->to, MSG_DATA, &m, sizeof m));
  }
  return NULL;
}

static void threads_send_in_order_per_sender(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  thread_sender s[THREAD_SENDERS];
  pthread_t t[THREAD_SENDERS];
  for (uint32_t i = 0; i < THREAD_SENDERS; i++) {
    s[i] = (thread_sender){inbox, i, PER_SENDER};
    assert_int_equal(pthread_create(&t[i], NULL, thread_send, &s[i]), 0);
  }
  receive_in_order(inbox, THREAD_SENDERS, THREAD_SENDERS * PER_SENDER);
  for (uint32_t i = 0; i < THREAD_SENDERS; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
  }
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

typedef struct reader {
  pn_actor *inbox;
  uint32_t got;
  uint32_t next[THREAD_SENDERS]; /* this reader's view of each sequence */
  bool in_order;
} reader;

/* Receives until the inbox stops; counts, and checks that what this
 * reader sees of each sender's sequence only goes up. */
static void *read_until_stopped(void *arg) {
  reader *r = arg;
  r->in_order = true;
  for (;;) {
    pn_msg *m = NULL;
    pn_err err = pn_inbox_receive(r->inbox, UINT64_MAX, &m);
    if (err == PN_ECLOSED) {
      return NULL;
    }
    PN_ASSERT_OK(err);
    seq_msg s;
    memcpy(&s, pn_msg_data(m), sizeof s);
    if (s.sender >= THREAD_SENDERS || s.seq < r->next[s.sender]) {
      r->in_order = false;
    } else {
      r->next[s.sender] = s.seq + 1;
    }
    r->got++;
    pn_inbox_release(r->inbox, m);
  }
}

static void several_readers_share_the_messages(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  reader r[READERS];
  pthread_t rt_threads[READERS];
  memset(r, 0, sizeof r);
  for (uint32_t i = 0; i < READERS; i++) {
    r[i].inbox = inbox;
    assert_int_equal(
        pthread_create(&rt_threads[i], NULL, read_until_stopped, &r[i]), 0);
  }
  thread_sender s[THREAD_SENDERS];
  pthread_t t[THREAD_SENDERS];
  for (uint32_t i = 0; i < THREAD_SENDERS; i++) {
    s[i] = (thread_sender){inbox, i, PER_SENDER};
    assert_int_equal(pthread_create(&t[i], NULL, thread_send, &s[i]), 0);
  }
  for (uint32_t i = 0; i < THREAD_SENDERS; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
  }
  /* Every message was sent; wait until all were taken, then stop the inbox,
   * which wakes the readers blocked in pn_inbox_receive. */
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  pn_actor_stats st;
  do {
    PN_ASSERT_OK(pn_actor_stats_get(inbox, &st));
    assert_true(net_now_ms() < deadline);
    sched_yield(); /* the readers need the cores */
  } while (st.processed < THREAD_SENDERS * PER_SENDER);
  PN_ASSERT_OK(pn_actor_stop(inbox));
  uint32_t total = 0;
  for (uint32_t i = 0; i < READERS; i++) {
    assert_int_equal(pthread_join(rt_threads[i], NULL), 0);
    assert_true(r[i].in_order);
    total += r[i].got;
  }
  assert_int_equal(total, THREAD_SENDERS * PER_SENDER);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* --- ownership ------------------------------------------------------------
 */

typedef struct buf_count {
  _Atomic uint32_t freed;
  _Atomic uint32_t bad; /* freed twice */
} buf_count;

typedef struct counted_buf {
  buf_count *count;
  _Atomic uint32_t frees;
  char text[16];
} counted_buf;

static void counted_free(void *data, void *ctx) {
  counted_buf *b = data;
  (void)ctx;
  if (atomic_fetch_add(&b->frees, 1) != 0) {
    atomic_fetch_add(&b->count->bad, 1);
  }
  atomic_fetch_add(&b->count->freed, 1);
}

enum { BUFS = 40 };

static void buffers_are_freed_once_at_release(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  buf_count count = {0, 0};
  counted_buf bufs[BUFS];
  for (uint32_t i = 0; i < BUFS; i++) {
    bufs[i].count = &count;
    atomic_init(&bufs[i].frees, 0);
    snprintf(bufs[i].text, sizeof bufs[i].text, "buf %u", i);
    PN_ASSERT_OK(pn_send_buf(inbox, MSG_DATA, &bufs[i], sizeof bufs[i],
                             counted_free, NULL));
  }
  pn_msg *held[BUFS];
  for (uint32_t i = 0; i < BUFS; i++) {
    held[i] = receive_type(inbox, MSG_DATA);
    assert_ptr_equal(pn_msg_data(held[i]), &bufs[i]);
  }
  assert_int_equal(atomic_load(&count.freed), 0); /* all still held */
  for (uint32_t i = 0; i < BUFS; i++) {
    pn_inbox_release(inbox, held[i]);
    assert_int_equal(atomic_load(&count.freed), i + 1);
  }
  assert_int_equal(atomic_load(&count.bad), 0);

  /* Received, then the inbox closed: still the caller's until released. */
  PN_ASSERT_OK(pn_send_buf(inbox, MSG_DATA, &bufs[0], 1, counted_free, NULL));
  atomic_store(&bufs[0].frees, 0);
  pn_msg *m = receive_type(inbox, MSG_DATA);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  assert_int_equal(atomic_load(&count.freed), BUFS);
  assert_ptr_equal(pn_msg_data(m), &bufs[0]);
  pn_inbox_release(inbox, m);
  assert_int_equal(atomic_load(&count.freed), BUFS + 1);
  assert_int_equal(atomic_load(&count.bad), 0);
  pn_test_runtime_end(rt);
}

static void close_frees_what_is_waiting(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  buf_count count = {0, 0};
  counted_buf bufs[BUFS];
  for (uint32_t i = 0; i < BUFS; i++) {
    bufs[i].count = &count;
    atomic_init(&bufs[i].frees, 0);
    PN_ASSERT_OK(pn_send_buf(inbox, MSG_DATA, &bufs[i], sizeof bufs[i],
                             counted_free, NULL));
    PN_ASSERT_OK(pn_send(inbox, MSG_DATA, "copied", 6));
  }
  PN_ASSERT_OK(pn_timer_start(inbox, MSG_TICK, 0, 0, NULL));
  PN_ASSERT_OK(pn_inbox_close(inbox)); /* on this thread: freed now */
  assert_int_equal(atomic_load(&count.freed), BUFS);
  assert_int_equal(atomic_load(&count.bad), 0);
  pn_test_runtime_end(rt); /* every envelope, timer and the inbox freed */
}

/* An inbox still open at shutdown is stopped with the actors; destroy then
 * reports the handle until it is given back. */
static void shutdown_stops_an_open_inbox(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  buf_count count = {0, 0};
  counted_buf buf = {&count, 0, "x"};
  PN_ASSERT_OK(pn_send_buf(inbox, MSG_DATA, &buf, 1, counted_free, NULL));
  PN_ASSERT_OK(pn_runtime_shutdown(rt, 10000000));
  assert_int_equal(atomic_load(&count.freed), 1);
  pn_msg *m = NULL;
  PN_ASSERT_ERR(PN_ECLOSED, pn_inbox_receive(inbox, UINT64_MAX, &m));
  assert_true(fd_readable(inbox));
  PN_ASSERT_ERR(PN_EBUSY, pn_runtime_destroy(rt));
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* A stop from another thread wakes a blocked reader with PN_ECLOSED; sends
 * then fail and the fd stays readable. */
static void *receive_expecting_closed(void *arg) {
  pn_actor *inbox = arg;
  pn_msg *m = NULL;
  PN_ASSERT_ERR(PN_ECLOSED, pn_inbox_receive(inbox, UINT64_MAX, &m));
  return NULL;
}

static void stop_wakes_a_blocked_reader(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, receive_expecting_closed, inbox),
                   0);
  PN_ASSERT_OK(pn_actor_stop(inbox));
  assert_int_equal(pthread_join(t, NULL), 0);
  PN_ASSERT_ERR(PN_ECLOSED, pn_send(inbox, MSG_DATA, "x", 1));
  PN_ASSERT_ERR(PN_ECLOSED, pn_actor_stop(inbox));
  PN_ASSERT_ERR(PN_ECLOSED, pn_timer_start(inbox, MSG_TICK, 0, 0, NULL));
  assert_true(fd_readable(inbox));
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* --- backpressure ---------------------------------------------------------
 */

enum { HIGH = 64, FLOOD_CHUNK = 16, FLOOD_TOTAL = 40 * HIGH };

static void backpressure_mutes_actors_sending_to_an_inbox(void **state) {
  (void)state;
  pn_runtime *rt = runtime_with_high(HIGH);
  pn_actor *inbox = open_inbox(rt);
  seq_sender s = {inbox, 0, 0, FLOOD_TOTAL, FLOOD_CHUNK};
  pn_actor *flooder = pn_test_spawn(rt, "flooder", seq_sender_handler, &s, 0);
  PN_ASSERT_OK(pn_send(flooder, MSG_GO, NULL, 0));
  /* Nobody reads: the flooder must end up muted, not fill memory. */
  uint64_t deadline = net_now_ms() + NET_WAIT_MS;
  pn_actor_stats fs;
  do {
    PN_ASSERT_OK(pn_actor_stats_get(flooder, &fs));
    assert_true(net_now_ms() < deadline);
    sched_yield();
  } while (fs.state != PN_ACTOR_MUTED);
  pn_actor_stats is;
  PN_ASSERT_OK(pn_actor_stats_get(inbox, &is));
  /* Counted depth (the push that woke the inbox is not counted): the run
   * that found it at the mark or above queued one chunk more, and the run
   * before it found it below. */
  assert_true(is.mailbox_depth >= HIGH);
  assert_true(is.mailbox_depth < HIGH + 2 * FLOOD_CHUNK);
  /* Reading lets it go on to the end, within the same bound. */
  receive_in_order(inbox, 1, FLOOD_TOTAL);
  PN_ASSERT_OK(pn_actor_stats_get(flooder, &fs));
  assert_true(fs.muted >= 1);
  PN_ASSERT_OK(pn_actor_stats_get(inbox, &is));
  assert_true(is.mailbox_hwm < HIGH + 2 * FLOOD_CHUNK);
  pn_actor_release(flooder);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* --- timers, stats, sockets -----------------------------------------------
 */

static void timers_and_stats_reach_an_inbox(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  pn_timer *timer = NULL;
  PN_ASSERT_OK(pn_timer_start(inbox, MSG_TICK, 1000, 1000, &timer));
  for (int i = 0; i < 3; i++) {
    pn_inbox_release(inbox, receive_type(inbox, MSG_TICK));
  }
  pn_timer_cancel(timer);
  PN_ASSERT_OK(pn_stats_subscribe(rt, inbox, 1000));
  /* A tick queued before the cancel is dropped, not received. */
  pn_msg *m = receive_type(inbox, PN_MSG_STATS);
  pn_runtime_stats rs;
  PN_ASSERT_OK(pn_msg_stats(m, &rs));
  assert_true(rs.workers == 2);
  pn_inbox_release(inbox, m);
  PN_ASSERT_OK(pn_inbox_close(inbox)); /* the feed stops on its own */
  pn_test_runtime_end(rt);
}

static void a_socket_delivers_datagrams_to_an_inbox(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = open_inbox(rt);
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  sc.owner = inbox;
  pn_socket *sock = NULL;
  PN_ASSERT_OK(pn_socket_open(rt, &sc, &sock));
  pn_addr self;
  PN_ASSERT_OK(pn_socket_local_addr(sock, &self));
  PN_ASSERT_OK(pn_socket_send(sock, &self, "datagram", 8));
  pn_msg *m = receive_type(inbox, PN_MSG_DATAGRAM);
  pn_datagram d;
  PN_ASSERT_OK(pn_msg_datagram(m, &d));
  assert_int_equal(d.len, 8);
  assert_memory_equal(d.data, "datagram", 8);
  assert_true(pn_addr_equal(&d.from, &self));
  pn_socket_close(sock);
  pn_msg *closed = receive_type(inbox, PN_MSG_SOCKET_CLOSED);
  assert_memory_equal(d.data, "datagram", 8); /* still held */
  pn_inbox_release(inbox, m);
  pn_inbox_release(inbox, closed);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

/* --- a connection over loopback --------------------------------------------
 */

/* Receives until a message of `type` arrives, releasing the others (the
 * ACKED events of what this side sent). */
static pn_msg *receive_until(pn_actor *inbox, uint32_t type) {
  for (int i = 0; i < 1000; i++) {
    pn_msg *m = NULL;
    PN_ASSERT_OK(pn_inbox_receive(inbox, WAIT_US, &m));
    if (pn_msg_type(m) == type) {
      return m;
    }
    assert_int_equal(pn_msg_type(m), PN_MSG_PEER_ACKED);
    pn_inbox_release(inbox, m);
  }
  fail_msg("no message of type %x", type);
  return NULL;
}

static void peer_events_reach_inbox_owners(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *server_in = open_inbox(rt);
  pn_actor *client_in = open_inbox(rt);
  pn_host *server = net_host(rt, server_in, NULL, NULL);
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  pn_peer *peer = net_connect(client, &to, client_in, 1, NULL, 0);
  PN_ASSERT_OK(pn_channel_send(pn_peer_channel(peer, 0), "hello", 5, NULL));

  pn_msg *sc = receive_type(server_in, PN_MSG_PEER_CONNECTED);
  pn_msg *cc = receive_type(client_in, PN_MSG_PEER_CONNECTED);
  pn_peer_event ev;
  PN_ASSERT_OK(pn_msg_peer_event(cc, &ev));
  assert_ptr_equal(ev.peer, peer);

  /* The server echoes the packet it received, without a copy. */
  pn_msg *sp = receive_type(server_in, PN_MSG_PEER_PACKET);
  PN_ASSERT_OK(pn_msg_peer_event(sp, &ev));
  assert_int_equal(ev.len, 5);
  assert_memory_equal(ev.data, "hello", 5);
  PN_ASSERT_OK(pn_channel_send_packet(ev.ch, ev.packet, NULL));
  pn_peer *server_peer = ev.peer;

  pn_msg *cp = receive_until(client_in, PN_MSG_PEER_PACKET);
  PN_ASSERT_OK(pn_msg_peer_event(cp, &ev));
  assert_memory_equal(ev.data, "hello", 5);

  /* Both sides see the disconnect; events received earlier stay valid
   * until released, the peer until its DISCONNECTED is. */
  PN_ASSERT_OK(pn_peer_disconnect(peer, 7));
  pn_msg *cd = receive_until(client_in, PN_MSG_PEER_DISCONNECTED);
  pn_msg *sd = receive_until(server_in, PN_MSG_PEER_DISCONNECTED);
  PN_ASSERT_OK(pn_msg_peer_event(sd, &ev));
  assert_int_equal(ev.reason, 7);
  assert_true(ev.remote);
  assert_ptr_equal(ev.peer, server_peer);
  PN_ASSERT_OK(pn_msg_peer_event(sp, &ev));
  assert_memory_equal(ev.data, "hello", 5);
  assert_int_equal(pn_peer_id(server_peer), ev.peer_id);
  pn_inbox_release(server_in, sc);
  pn_inbox_release(client_in, cc);
  pn_inbox_release(server_in, sp);
  pn_inbox_release(client_in, cp);
  pn_inbox_release(server_in, sd);
  pn_inbox_release(client_in, cd);
  pn_peer_release(peer);
  pn_host_close(client);
  pn_host_close(server);
  /* The inboxes close with whatever came late (ACKED events). */
  PN_ASSERT_OK(pn_inbox_close(client_in));
  PN_ASSERT_OK(pn_inbox_close(server_in));
  pn_test_runtime_end(rt);
}

/* A peer whose owner inbox is closed while its events are still coming:
 * they are freed, and the peer with them. */
static void closing_an_owner_inbox_mid_connection_leaks_nothing(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *server_in = open_inbox(rt);
  pn_actor *client_in = open_inbox(rt);
  pn_host *server = net_host(rt, server_in, NULL, NULL);
  pn_host *client = net_host(rt, NULL, NULL, NULL);
  pn_addr to;
  PN_ASSERT_OK(pn_host_local_addr(server, 0, &to));
  pn_peer *peer = net_connect(client, &to, client_in, 1, NULL, 0);
  pn_inbox_release(server_in, receive_type(server_in, PN_MSG_PEER_CONNECTED));
  pn_inbox_release(client_in, receive_type(client_in, PN_MSG_PEER_CONNECTED));
  for (uint32_t i = 0; i < 200; i++) {
    PN_ASSERT_OK(pn_channel_send(pn_peer_channel(peer, 0), &i, sizeof i, NULL));
  }
  PN_ASSERT_OK(pn_inbox_close(server_in)); /* packets still arriving */
  PN_ASSERT_OK(pn_peer_disconnect(peer, 1));
  pn_inbox_release(client_in,
                   receive_until(client_in, PN_MSG_PEER_DISCONNECTED));
  pn_peer_release(peer);
  pn_host_close(client);
  pn_host_close(server);
  PN_ASSERT_OK(pn_inbox_close(client_in));
  pn_test_runtime_end(rt);
}

/* --- bad arguments ---------------------------------------------------------
 */

static void noop_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

typedef struct handler_reader {
  pn_actor *inbox;
  pn_test_latch done;
} handler_reader;

/* From a handler: a receive that would wait is refused, one that does not
 * works. */
static void handler_reader_handler(pn_actor *self, void *state,
                                   const pn_msg *msg) {
  (void)self;
  handler_reader *h = state;
  if (pn_msg_type(msg) != MSG_GO) {
    return;
  }
  pn_msg *m = NULL;
  PN_ASSERT_ERR(PN_EWRONGTHREAD, pn_inbox_receive(h->inbox, 1000, &m));
  assert_null(m);
  PN_ASSERT_OK(pn_inbox_receive(h->inbox, 0, &m));
  assert_int_equal(pn_msg_type(m), MSG_DATA);
  pn_inbox_release(h->inbox, m);
  pn_test_latch_count_down(&h->done);
}

static void handlers_may_receive_without_waiting(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  handler_reader h;
  h.inbox = open_inbox(rt);
  pn_test_latch_init(&h.done, 1);
  pn_actor *a = pn_test_spawn(rt, "reader", handler_reader_handler, &h, -1);
  PN_ASSERT_OK(pn_send(h.inbox, MSG_DATA, NULL, 0));
  PN_ASSERT_OK(pn_send(a, MSG_GO, NULL, 0));
  assert_true(pn_test_latch_wait(&h.done, NET_WAIT_MS));
  pn_actor_release(a);
  PN_ASSERT_OK(pn_inbox_close(h.inbox));
  pn_test_runtime_end(rt);
  pn_test_latch_fini(&h.done);
}

static void bad_arguments_change_nothing(void **state) {
  (void)state;
  pn_runtime *rt = net_runtime();
  pn_actor *inbox = NULL;
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_open(NULL, "x", &inbox));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_open(rt, "x", NULL));
  assert_null(inbox);
  inbox = open_inbox(rt);
  pn_actor *plain = pn_test_spawn(rt, "plain", noop_handler, NULL, -1);
  pn_msg *m = NULL;
  int fd = -1;
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_receive(NULL, 0, &m));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_receive(inbox, 0, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_receive(plain, 0, &m));
  assert_null(m);
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_fd(NULL, &fd));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_fd(inbox, NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_fd(plain, &fd));
  assert_int_equal(fd, -1);
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_close(NULL));
  PN_ASSERT_ERR(PN_EINVAL, pn_inbox_close(plain));
  pn_inbox_release(NULL, NULL);
  pn_inbox_release(inbox, NULL);
  /* Reserved types and bad sends are refused as for any actor. */
  PN_ASSERT_ERR(PN_EINVAL, pn_send(inbox, PN_MSG_TYPE_RESERVED, NULL, 0));
  PN_ASSERT_ERR(PN_EINVAL, pn_send(inbox, MSG_DATA, NULL, 3));
  /* Nothing changed: both still work. */
  PN_ASSERT_OK(pn_send(plain, MSG_DATA, NULL, 0));
  PN_ASSERT_OK(pn_send(inbox, MSG_DATA, "ok", 2));
  pn_inbox_release(inbox, receive_type(inbox, MSG_DATA));
  PN_ASSERT_ERR(PN_ETIMEDOUT, pn_inbox_receive(inbox, 0, &m));
  pn_actor_release(plain);
  PN_ASSERT_OK(pn_inbox_close(inbox));
  pn_test_runtime_end(rt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(receive_times_out_and_returns_what_was_sent),
      cmocka_unit_test(blocking_receive_wakes_for_a_later_message),
      cmocka_unit_test(fd_is_readable_while_messages_wait),
      cmocka_unit_test(actors_send_in_order_per_sender),
      cmocka_unit_test(threads_send_in_order_per_sender),
      cmocka_unit_test(several_readers_share_the_messages),
      cmocka_unit_test(buffers_are_freed_once_at_release),
      cmocka_unit_test(close_frees_what_is_waiting),
      cmocka_unit_test(shutdown_stops_an_open_inbox),
      cmocka_unit_test(stop_wakes_a_blocked_reader),
      cmocka_unit_test(backpressure_mutes_actors_sending_to_an_inbox),
      cmocka_unit_test(timers_and_stats_reach_an_inbox),
      cmocka_unit_test(a_socket_delivers_datagrams_to_an_inbox),
      cmocka_unit_test(peer_events_reach_inbox_owners),
      cmocka_unit_test(closing_an_owner_inbox_mid_connection_leaks_nothing),
      cmocka_unit_test(handlers_may_receive_without_waiting),
      cmocka_unit_test(bad_arguments_change_nothing),
  };
  return net_run_groups(tests, sizeof tests / sizeof tests[0]);
}
