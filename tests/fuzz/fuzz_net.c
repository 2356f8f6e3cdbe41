/* See fuzz_net.h. */
#include "tests/fuzz/fuzz_net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "actors/msg_ids.h"
#include "runtime/actor.h"
#include "runtime/clock.h"
#include "runtime/msg.h"
#include "runtime/rt.h"

#define FZ_JOB 1u
#define SETTLE_NS                                                              \
  (5ull * 1000000000u) /* a close that takes longer is a bug                   \
                        */

fz_env fz;

static fz_event_fn *event_hook;
static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cv = PTHREAD_COND_INITIALIZER;
static bool job_done;

typedef struct job {
  void (*fn)(void *ctx);
  void *ctx;
} job;

_Noreturn void fz_broken(const char *what) {
  fprintf(stderr, "invariant broken: %s\n", what);
  abort();
}

static void owner_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) == PN_OK && event_hook) {
    event_hook(pn_msg_type(msg), &ev);
  }
}

static void driver_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  if (pn_msg_type(msg) != FZ_JOB) {
    return;
  }
  job j;
  memcpy(&j, pn_msg_data(msg), sizeof j);
  j.fn(j.ctx);
  pthread_mutex_lock(&job_lock);
  job_done = true;
  pthread_cond_signal(&job_cv);
  pthread_mutex_unlock(&job_lock);
}

static pn_actor *spawn(const char *name, pn_handler handler) {
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = name;
  cfg.handler = handler;
  cfg.home_worker = 0;
  pn_actor *a = NULL;
  if (pn_spawn(fz.rt, &cfg, &a) != PN_OK) {
    fz_broken("spawn");
  }
  return a;
}

/* A UDP socket on 127.0.0.1 nobody reads, with the smallest buffer the
 * kernel gives: the peers' datagrams end there. */
static void sink_open(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int small = 1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (fd < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
    fz_broken("sink socket");
  }
  char text[64];
  snprintf(text, sizeof text, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  if (pn_addr_parse(text, &fz.sink) != PN_OK) {
    fz_broken("sink address");
  }
  /* Left open for the life of the process. */
}

void fz_init(pn_host_config *cfg, fz_event_fn *on_event) {
  event_hook = on_event;
  pn_runtime_config rc = PN_RUNTIME_CONFIG_INIT;
  rc.workers = 1;
  rc.io = PN_IO_EPOLL;
  rc.stats_cpu_time = false;
  if (pn_runtime_create(&rc, &fz.rt) != PN_OK) {
    fz_broken("runtime");
  }
  fz.owner = spawn("fuzz.owner", owner_handler);
  fz.driver = spawn("fuzz.driver", driver_handler);
  sink_open();
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = "127.0.0.1";
  cfg->sockets = &sc;
  cfg->socket_count = 1;
  cfg->accept_owner = fz.owner;
  cfg->home_worker = 0;
  if (pn_host_open(fz.rt, cfg, &fz.host) != PN_OK) {
    fz_broken("host");
  }
  cfg->sockets = NULL;
  /* The host's start message, before the first input. */
  fz_settle(NULL, 0);
}

void fz_run(void (*fn)(void *ctx), void *ctx) {
  job j = {fn, ctx};
  job_done = false;
  if (pn_send(fz.driver, FZ_JOB, &j, sizeof j) != PN_OK) {
    fz_broken("send to the driver");
  }
  pthread_mutex_lock(&job_lock);
  while (!job_done) {
    pthread_cond_wait(&job_cv, &job_lock);
  }
  pthread_mutex_unlock(&job_lock);
}

/* Spins (yielding) until done() or the deadline. */
static bool wait_for(bool (*done)(void *), void *arg) {
  uint64_t deadline = pn__now_ns() + SETTLE_NS;
  while (!done(arg)) {
    if (pn__now_ns() > deadline) {
      return false;
    }
    sched_yield();
  }
  return true;
}

static bool peer_alone(void *arg) {
  /* acquire: pairs with the release half of every other holder's
   * pn_peer_release(), so their writes come before our release. */
  return atomic_load_explicit(&((pn_peer *)arg)->refs, memory_order_acquire) ==
         1;
}

static uint64_t base_actors, base_timers;
static bool have_base;

static bool runtime_quiet(void *arg) {
  (void)arg;
  return atomic_load_explicit(&fz.rt->actor_objects, memory_order_acquire) ==
             base_actors &&
         atomic_load_explicit(&fz.rt->timers_live, memory_order_acquire) ==
             base_timers;
}

static void nothing(void *ctx) { (void)ctx; }

void fz_settle(pn_peer **peers, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!wait_for(peer_alone, peers[i])) {
      fz_broken("a closed peer was never freed");
    }
    pn_peer_release(peers[i]);
  }
  /* One more round through the worker: what the last frees sent (timer
   * retirements, stopped actors) is handled before the counts are read. */
  fz_run(nothing, NULL);
  if (!have_base) {
    base_actors = atomic_load(&fz.rt->actor_objects);
    base_timers = atomic_load(&fz.rt->timers_live);
    have_base = true;
    return;
  }
  if (!wait_for(runtime_quiet, NULL)) {
    fprintf(stderr, "actors %llu (before %llu), timers %llu (before %llu)\n",
            (unsigned long long)atomic_load(&fz.rt->actor_objects),
            (unsigned long long)base_actors,
            (unsigned long long)atomic_load(&fz.rt->timers_live),
            (unsigned long long)base_timers);
    fz_broken("actors or timers outlived their input");
  }
}

/* A message as a mailbox would hand it over (pn__send_parts' layout). */
static _Alignas(64) unsigned char envelope[sizeof(pn_msg) + 2 * 65536];

void fz_peer_call(pn_peer *p, uint32_t type, const void *a, size_t alen,
                  const void *b, size_t blen) {
  pn_msg *m = (pn_msg *)(void *)envelope;
  if (alen + blen > sizeof envelope - sizeof *m) {
    fz_broken("message too large for the harness");
  }
  memset(m, 0, sizeof *m);
  m->type = type;
  m->size = (uint32_t)(alen + blen);
  m->kind = PN__MSG_COPY;
  m->data = m->inline_data;
  if (alen) {
    memcpy(m->inline_data, a, alen);
  }
  if (blen) {
    memcpy(m->inline_data + alen, b, blen);
  }
  p->actor->handler(p->actor, p->actor->state, m);
}

void fz_peer_recv(pn_peer *p, const uint8_t *data, size_t len) {
  pn__recv_header rh = {0, p->addr};
  fz_peer_call(p, PN__P_RECV, &rh, sizeof rh, data, len);
}

/* --- input --------------------------------------------------------------- */

uint8_t fz_u8(fz_in *in) {
  if (!in->n) {
    return 0;
  }
  in->n--;
  return *in->p++;
}

uint16_t fz_u16(fz_in *in) {
  uint16_t lo = fz_u8(in);
  return (uint16_t)(lo | fz_u8(in) << 8);
}

uint32_t fz_u32(fz_in *in) {
  uint32_t lo = fz_u16(in);
  return lo | (uint32_t)fz_u16(in) << 16;
}

uint64_t fz_u64(fz_in *in) {
  uint64_t lo = fz_u32(in);
  return lo | (uint64_t)fz_u32(in) << 32;
}

const uint8_t *fz_bytes(fz_in *in, size_t want, size_t *got) {
  *got = want < in->n ? want : in->n;
  const uint8_t *p = in->p;
  in->p += *got;
  in->n -= *got;
  return p;
}

/* --- protobuf fields ----------------------------------------------------- */

static size_t put_varint(uint8_t *buf, size_t len, size_t cap, uint64_t v) {
  do {
    if (len >= cap) {
      return SIZE_MAX;
    }
    buf[len++] = (uint8_t)((v & 0x7F) | (v >= 0x80 ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return len;
}

size_t fz_pb_varint(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                    uint64_t v) {
  size_t n = put_varint(buf, len, cap, (uint64_t)field << 3);
  n = n == SIZE_MAX ? n : put_varint(buf, n, cap, v);
  return n == SIZE_MAX ? len : n;
}

size_t fz_pb_fixed64(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                     uint64_t v) {
  size_t n = put_varint(buf, len, cap, (uint64_t)field << 3 | 1u);
  if (n == SIZE_MAX || cap - n < 8) {
    return len;
  }
  for (int i = 0; i < 8; i++) {
    buf[n++] = (uint8_t)(v >> (8 * i));
  }
  return n;
}

size_t fz_pb_bytes(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                   const uint8_t *data, size_t dlen) {
  size_t n = put_varint(buf, len, cap, (uint64_t)field << 3 | 2u);
  n = n == SIZE_MAX ? n : put_varint(buf, n, cap, dlen);
  if (n == SIZE_MAX || cap - n < dlen) {
    return len;
  }
  if (dlen) {
    memcpy(buf + n, data, dlen);
  }
  return n + dlen;
}
