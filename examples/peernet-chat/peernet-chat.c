/* peernet-chat: a chat room over one ORDERED channel per client, written as
 * a short tour of the PeerNet API from an application's side.
 *
 *   peernet-chat --server HOST:PORT [--max-seconds S] [--key FILE]
 *                [--psk FILE]
 *   peernet-chat --client HOST:PORT --name NAME [--server-key FILE]
 *                [--psk FILE]
 *
 * Traffic is encrypted; the key files are peernet-keygen's: the server's
 * secret key (--key), the public half a client insists on (--server-key),
 * a pre-shared key both sides must have (--psk).
 *
 * A client's first message is its name; every later one is a line of chat.
 * The server keeps a member per peer from PN_MSG_PEER_CONNECTED to
 * PN_MSG_PEER_DISCONNECTED, announces "* NAME joined" (to everyone, the
 * newcomer included) once the member has sent its name and "* NAME left"
 * when it goes, and relays each line to the others as "NAME: line". Its
 * accept hook turns away peers that do not ask for exactly one ORDERED
 * channel. Its first line on stdout is "listening on ADDR".
 *
 * A client reads stdin on a thread of its own, which calls pn_channel_send
 * directly (the API may be called from any thread), and prints what
 * arrives. At the end of its input it waits until every line is
 * acknowledged (PN_MSG_PEER_ACKED), disconnects with an application reason,
 * and exits when its PN_MSG_PEER_DISCONNECTED arrives. Input can be piped:
 *
 *   printf 'hello\nbye\n' | peernet-chat --client 127.0.0.1:7000 --name ann
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <peernet/peernet.h>

enum {
  NAME_MAX_LEN = 32,
  LINE_MAX_LEN = 1024,
  REASON_BYE = 1,      /* a client's input ended */
  REASON_NOT_CHAT = 2, /* refused: not one ORDERED channel */
  WAIT_MS = 5000,      /* for acknowledgements and disconnects */
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Waits on cv (lock held) until *flag or WAIT_MS pass, whichever is first;
 * cv must use the monotonic clock (see cond_init). */
static void wait_flag(pthread_cond_t *cv, pthread_mutex_t *lock,
                      const bool *flag) {
  uint64_t end = now_ns() + WAIT_MS * 1000000ull;
  struct timespec ts = {.tv_sec = (time_t)(end / 1000000000u),
                        .tv_nsec = (long)(end % 1000000000u)};
  while (!*flag && pthread_cond_timedwait(cv, lock, &ts) != ETIMEDOUT) {
  }
}

static void cond_init(pthread_cond_t *cv) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &attr);
  pthread_condattr_destroy(&attr);
}

static bool check(pn_err err, const char *what) {
  if (err != PN_OK) {
    fprintf(stderr, "peernet-chat: %s: %s\n", what, pn_strerror(err));
  }
  return err == PN_OK;
}

/* The reason a peer went away, as "host-closed" or "application 1". */
static const char *reason_text(uint32_t reason, char *buf, size_t cap) {
  if (reason < PN_REASON_LIBRARY) {
    snprintf(buf, cap, "application %" PRIu32, reason);
  } else {
    snprintf(buf, cap, "%s", pn_reason_name(reason));
  }
  return buf;
}

/* --- server -------------------------------------------------------------- */

typedef struct member {
  struct member *next;
  pn_peer *peer; /* borrowed: valid until its DISCONNECTED handler returns */
  char name[NAME_MAX_LEN + 1]; /* empty until the first message */
} member;

typedef struct room {
  member *members; /* handler only */
  /* Shared with main, under lock: members not yet disconnected. */
  pthread_mutex_t lock;
  pthread_cond_t cv;
  unsigned live;
  bool empty;
} room;

/* Sends text to every named member but `except`. */
static void broadcast(room *r, const member *except, const char *text,
                      size_t len) {
  for (member *m = r->members; m != NULL; m = m->next) {
    if (m != except && m->name[0] != '\0') {
      pn_err err =
          pn_channel_send(pn_peer_channel(m->peer, 0), text, len, NULL);
      if (err != PN_OK && err != PN_ECLOSED) {
        fprintf(stderr, "peernet-chat: dropped a line for %s: %s\n", m->name,
                pn_strerror(err));
      }
    }
  }
}

/* Copies at most cap - 1 bytes of untrusted text, replacing control
 * characters, so one client cannot drive another's terminal. */
static size_t clean_copy(char *dst, size_t cap, const void *src, size_t len) {
  const unsigned char *s = src;
  size_t n = len < cap - 1 ? len : cap - 1;
  for (size_t i = 0; i < n; i++) {
    dst[i] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i];
  }
  dst[n] = '\0';
  return n;
}

static void on_line(room *r, member *m, const pn_peer_event *ev) {
  char line[LINE_MAX_LEN + 1], out[NAME_MAX_LEN + LINE_MAX_LEN + 16];
  if (m->name[0] == '\0') {
    if (clean_copy(m->name, sizeof m->name, ev->data, ev->len) == 0) {
      snprintf(m->name, sizeof m->name, "peer%" PRIu64, ev->peer_id);
    }
    int n = snprintf(out, sizeof out, "* %s joined", m->name);
    printf("%s\n", out);
    broadcast(r, NULL, out, (size_t)n);
  } else {
    clean_copy(line, sizeof line, ev->data, ev->len);
    int n = snprintf(out, sizeof out, "%s: %s", m->name, line);
    broadcast(r, m, out, (size_t)n);
  }
  fflush(stdout);
}

static void server_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  room *r = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return; /* PN_MSG_STOPPED: the members went with their peers */
  }
  member *m = r->members;
  while (m != NULL && m->peer != ev.peer) {
    m = m->next;
  }
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    if ((m = calloc(1, sizeof *m)) == NULL) {
      (void)pn_peer_disconnect(ev.peer, REASON_NOT_CHAT);
      return;
    }
    m->peer = ev.peer;
    m->next = r->members;
    r->members = m;
    pthread_mutex_lock(&r->lock);
    r->live++;
    r->empty = false;
    pthread_mutex_unlock(&r->lock);
    break;
  case PN_MSG_PEER_PACKET:
    if (m != NULL) {
      on_line(r, m, &ev);
    }
    break;
  case PN_MSG_PEER_DISCONNECTED:
    if (m == NULL) {
      return;
    }
    for (member **p = &r->members; *p != NULL; p = &(*p)->next) {
      if (*p == m) {
        *p = m->next;
        break;
      }
    }
    if (m->name[0] != '\0') {
      char out[NAME_MAX_LEN + 16], why[48];
      int n = snprintf(out, sizeof out, "* %s left", m->name);
      printf("%s (%s)\n", out, reason_text(ev.reason, why, sizeof why));
      fflush(stdout);
      broadcast(r, NULL, out, (size_t)n);
    }
    free(m);
    pthread_mutex_lock(&r->lock);
    r->empty = --r->live == 0;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->lock);
    break;
  default:
    break; /* ACKED, LOST: nothing to do */
  }
}

/* Runs on the host's worker before a client is accepted. */
static uint32_t accept_chat(void *ctx, const pn_accept_info *info) {
  (void)ctx;
  bool chat = info->channels == 1 && info->kinds[0] == PN_CHANNEL_ORDERED;
  return chat ? 0 : REASON_NOT_CHAT;
}

/* "HOST:PORT" (HOST may be empty: every address) into the socket config. */
static bool parse_listen(const char *text, char *host, size_t cap,
                         pn_socket_config *sc) {
  const char *colon = strrchr(text, ':');
  char *end = NULL;
  unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
  size_t len = colon ? (size_t)(colon - text) : 0;
  if (colon == NULL || end == colon + 1 || *end != '\0' || port > 65535 ||
      len >= cap) {
    return false;
  }
  /* Brackets are for the reader: the socket wants "::1", not "[::1]". */
  if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
    text++;
    len -= 2;
  }
  memcpy(host, text, len);
  host[len] = '\0';
  sc->host = host;
  sc->port = (uint16_t)port;
  return true;
}

/* Key files (peernet-keygen's), loaded by main. */
typedef struct keys {
  bool have_secret, have_server, have_psk;
  uint8_t secret[PN_KEY_BYTES], server[PN_KEY_BYTES], psk[PN_KEY_BYTES];
} keys;

static int run_server(const char *listen, uint64_t max_seconds, const keys *k) {
  char host_text[256];
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  if (!parse_listen(listen, host_text, sizeof host_text, &sc)) {
    fprintf(stderr, "peernet-chat: --server wants HOST:PORT\n");
    return 2;
  }
  /* SIGINT and SIGTERM are taken by main with sigtimedwait(); blocking
   * them first makes every runtime thread inherit the mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  room r = {.empty = true};
  pthread_mutex_init(&r.lock, NULL);
  cond_init(&r.cv);
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  pn_runtime *rt = NULL;
  if (!check(pn_runtime_create(&rcfg, &rt), "creating the runtime")) {
    return 1;
  }
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "room";
  acfg.handler = server_handler;
  acfg.state = &r;
  pn_actor *actor = NULL;
  pn_host *host = NULL;
  bool ok = check(pn_spawn(rt, &acfg, &actor), "spawning the room");
  if (ok) {
    pn_host_config hc = PN_HOST_CONFIG_INIT;
    hc.sockets = &sc;
    hc.socket_count = 1;
    hc.accept_owner = actor; /* accepted peers' events go to the room */
    hc.accept = accept_chat;
    hc.secret_key = k->have_secret ? k->secret : NULL;
    hc.psk = k->have_psk ? k->psk : NULL;
    ok = check(pn_host_open(rt, &hc, &host), "opening the host");
  }
  pn_addr bound;
  if (ok && check(pn_host_local_addr(host, 0, &bound), "reading the address")) {
    char addr[PN_ADDR_STRLEN];
    pn_addr_format(&bound, addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    struct timespec ts = {.tv_sec = (time_t)max_seconds};
    int sig;
    do { /* EINTR: stopped and continued; start the wait again */
      sig = max_seconds ? sigtimedwait(&sigs, NULL, &ts)
                        : sigwaitinfo(&sigs, NULL);
    } while (sig < 0 && errno == EINTR);
  }
  /* Closing the host tells every client; give their owner a moment to see
   * them go before stopping the runtime. */
  pn_host_close(host);
  pthread_mutex_lock(&r.lock);
  wait_flag(&r.cv, &r.lock, &r.empty);
  pthread_mutex_unlock(&r.lock);
  ok = check(pn_runtime_shutdown(rt, UINT64_MAX), "shutting down") && ok;
  pn_actor_release(actor);
  ok = check(pn_runtime_destroy(rt), "destroying the runtime") && ok;
  pthread_mutex_destroy(&r.lock);
  pthread_cond_destroy(&r.cv);
  return ok ? 0 : 1;
}

/* --- client -------------------------------------------------------------- */

typedef struct chat_client {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  /* Under lock: the handler writes the flags and counts, main and the
   * reader wait on them. */
  bool connected, disconnected, remote, all_acked;
  uint32_t reason;
  uint64_t sent, resolved;
  pn_peer *peer; /* main's handle: the reader borrows it */
} chat_client;

static void client_handler(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  chat_client *c = state;
  pn_peer_event ev;
  if (pn_msg_peer_event(msg, &ev) != PN_OK) {
    return;
  }
  if (pn_msg_type(msg) == PN_MSG_PEER_PACKET) {
    printf("%.*s\n", (int)ev.len, (const char *)ev.data);
    fflush(stdout);
    return;
  }
  pthread_mutex_lock(&c->lock);
  switch (pn_msg_type(msg)) {
  case PN_MSG_PEER_CONNECTED:
    c->connected = true;
    break;
  case PN_MSG_PEER_ACKED:
  case PN_MSG_PEER_LOST:
    c->all_acked = ++c->resolved == c->sent;
    break;
  case PN_MSG_PEER_DISCONNECTED:
    c->disconnected = true;
    c->reason = ev.reason;
    c->remote = ev.remote;
    break;
  default:
    break;
  }
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->lock);
}

/* Sends one line, unless the connection is gone. The lock keeps main from
 * releasing the peer between the check and the send. */
static bool send_line(chat_client *c, const char *text, size_t len) {
  pthread_mutex_lock(&c->lock);
  pn_err err = PN_ECLOSED;
  if (!c->disconnected) {
    err = pn_channel_send(pn_peer_channel(c->peer, 0), text, len, NULL);
    if (err == PN_OK) {
      c->sent++;
      c->all_acked = false;
    }
  }
  pthread_mutex_unlock(&c->lock);
  if (err != PN_OK && err != PN_ECLOSED) {
    fprintf(stderr, "peernet-chat: line not sent: %s\n", pn_strerror(err));
  }
  return err != PN_ECLOSED;
}

static void *read_stdin(void *arg) {
  chat_client *c = arg;
  char line[LINE_MAX_LEN];
  bool open = true;
  while (open && fgets(line, sizeof line, stdin) != NULL) {
    size_t len = strcspn(line, "\n");
    open = len == 0 || send_line(c, line, len);
  }
  /* End of input. Disconnecting drops what is not yet acknowledged, so
   * wait for the acknowledgements first (bounded). */
  pthread_mutex_lock(&c->lock);
  wait_flag(&c->cv, &c->lock, &c->all_acked);
  if (!c->disconnected) {
    (void)pn_peer_disconnect(c->peer, REASON_BYE);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

static int run_client(const char *server, const char *name, const keys *k) {
  pn_addr remote;
  if (pn_addr_parse(server, &remote) != PN_OK) {
    fprintf(stderr, "peernet-chat: --client wants a numeric HOST:PORT\n");
    return 2;
  }
  chat_client c = {.all_acked = true};
  pthread_mutex_init(&c.lock, NULL);
  cond_init(&c.cv);
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 2;
  pn_runtime *rt = NULL;
  if (!check(pn_runtime_create(&rcfg, &rt), "creating the runtime")) {
    return 1;
  }
  pn_actor_config acfg = PN_ACTOR_CONFIG_INIT;
  acfg.name = "chat";
  acfg.handler = client_handler;
  acfg.state = &c;
  pn_actor *actor = NULL;
  pn_socket_config sc = PN_SOCKET_CONFIG_INIT;
  sc.host = remote.family == PN_AF_INET6 ? "::" : "0.0.0.0";
  pn_host_config hc = PN_HOST_CONFIG_INIT;
  hc.sockets = &sc;
  hc.socket_count = 1;
  hc.psk = k->have_psk ? k->psk : NULL;
  pn_host *host = NULL;
  bool ok = check(pn_spawn(rt, &acfg, &actor), "spawning the actor") &&
            check(pn_host_open(rt, &hc, &host), "opening the host");
  if (ok) {
    pn_peer_config pc = PN_PEER_CONFIG_INIT; /* one ORDERED channel */
    pc.remote = remote;
    pc.owner = actor;
    pc.server_key = k->have_server ? k->server : NULL;
    ok = check(pn_host_connect(host, &pc, &c.peer), "connecting");
  }

  /* The library ends a failed attempt with PN_MSG_PEER_DISCONNECTED
   * (connect-timeout after 5 s, or the server's refusal), so this wait
   * ends either way. */
  pthread_mutex_lock(&c.lock);
  while (ok && !c.connected && !c.disconnected) {
    pthread_cond_wait(&c.cv, &c.lock);
  }
  pthread_mutex_unlock(&c.lock);
  pthread_t reader;
  bool reading = false;
  if (ok && c.connected && !c.disconnected) {
    /* The name goes first; sends from one thread leave in order, and the
     * reader's first send happens after this one returned. */
    ok = send_line(&c, name, strlen(name)) &&
         pthread_create(&reader, NULL, read_stdin, &c) == 0;
    reading = ok;
  }
  pthread_mutex_lock(&c.lock);
  while (ok && !c.disconnected) {
    pthread_cond_wait(&c.cv, &c.lock);
  }
  bool bye = c.disconnected && !c.remote && c.reason == REASON_BYE;
  if (ok && !bye) {
    char why[48];
    fprintf(stderr, "peernet-chat: %s: %s\n",
            c.connected ? "disconnected" : "could not connect",
            reason_text(c.reason, why, sizeof why));
  }
  pthread_mutex_unlock(&c.lock);
  if (reading && bye) {
    pthread_join(reader, NULL); /* it ended the connection: it is done */
  } else if (reading) {
    pthread_detach(reader); /* may be blocked reading: exit ends it */
  }
  pn_peer_release(c.peer);
  pn_host_close(host);
  ok = check(pn_runtime_shutdown(rt, UINT64_MAX), "shutting down") && ok;
  pn_actor_release(actor);
  ok = check(pn_runtime_destroy(rt), "destroying the runtime") && ok;
  return ok && bye ? 0 : 1;
}

int main(int argc, char **argv) {
  const char *server = NULL, *client = NULL, *name = NULL, *secs = "0";
  const char *key_file = NULL, *server_key_file = NULL, *psk_file = NULL;
  bool help = argc == 2 &&
              (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
  bool valid = !help;
  /* Every option takes a value, so arguments come in pairs. */
  for (int i = 1; valid && i < argc; i += 2) {
    const char **dst = strcmp(argv[i], "--server") == 0        ? &server
                       : strcmp(argv[i], "--client") == 0      ? &client
                       : strcmp(argv[i], "--name") == 0        ? &name
                       : strcmp(argv[i], "--max-seconds") == 0 ? &secs
                       : strcmp(argv[i], "--key") == 0         ? &key_file
                       : strcmp(argv[i], "--server-key") == 0 ? &server_key_file
                       : strcmp(argv[i], "--psk") == 0        ? &psk_file
                                                              : NULL;
    valid = dst != NULL && i + 1 < argc;
    if (valid) {
      *dst = argv[i + 1];
    }
  }
  char *end = NULL;
  unsigned long long max_seconds = strtoull(secs, &end, 10);
  valid = valid && secs[0] >= '0' && secs[0] <= '9' && *end == '\0' &&
          (server != NULL) != (client != NULL) &&
          (server != NULL ||
           (name != NULL && name[0] != '\0' && strlen(name) <= NAME_MAX_LEN)) &&
          !(server && server_key_file) && !(client && key_file);
  keys k = {0};
  if (valid &&
      ((key_file &&
        !(k.have_secret = pn_key_load(key_file, k.secret) == PN_OK)) ||
       (server_key_file &&
        !(k.have_server = pn_key_load(server_key_file, k.server) == PN_OK)) ||
       (psk_file && !(k.have_psk = pn_key_load(psk_file, k.psk) == PN_OK)))) {
    fprintf(stderr, "peernet-chat: a key file could not be read\n");
    valid = false;
  }
  if (!valid) {
    fprintf(help ? stdout : stderr,
            "usage: peernet-chat --server HOST:PORT [--max-seconds S] "
            "[--key FILE] [--psk FILE]\n"
            "       peernet-chat --client HOST:PORT --name NAME (1..%d "
            "bytes) [--server-key FILE] [--psk FILE]\n"
            "A client sends each line of its input and prints what others "
            "send;\nat the end of input it disconnects and exits.\n",
            NAME_MAX_LEN);
    return help ? 0 : 2;
  }
  return server ? run_server(server, max_seconds, &k)
                : run_client(client, name, &k);
}
