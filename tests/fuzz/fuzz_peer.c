/* libFuzzer target for a connected peer's state machine: what an
 * authentic peer (one that holds the connection's keys) can make it do.
 *
 * Each input (format in fuzz_peer.h) creates a peer with the channels it
 * asks for, puts it in the CONNECTED state with known keys the way the
 * handshake's end does (make_connected below: the one piece the harness
 * does itself), and runs a script on the host's worker: DATA datagrams
 * sealed with the peer's receive key (frames of every kind, fragments,
 * acknowledgements of what the peer sent, pings, disconnects, zstd
 * bodies, replays, forgeries), the application's sends, local disconnects,
 * batch ends and timer ticks. Everything goes through the peer's own
 * actor handler (peer.c), so peer_recv.c, channel.c, peer_send.c and
 * recovery.c run as they do in a connection.
 *
 * Checked, besides ASan and UBSan and the library's own assertions:
 *   - the owner's PN_MSG_PEER_PACKET events keep each channel kind's
 *     promise (ORDERED: 1, 2, 3, ... exactly once; RELIABLE and
 *     UNRELIABLE: increasing; RELIABLE_UNORDERED: at most once), and
 *     carry the bytes that were sent (when the script sent only
 *     canonical payloads);
 *   - PN_MSG_PEER_ACKED / LOST name messages the application sent, once
 *     each, and LOST only those of unreliable kinds;
 *   - the reassembly count matches the partial messages held, within the
 *     host's limit;
 *   - the peer, once closed, is freed, and no actor or timer outlives the
 *     input (fuzz_net.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "actors/handshake.h"
#include "actors/msg_ids.h"
#include "runtime/alloc.h"
#include "runtime/clock.h"
#include "tests/fuzz/fuzz_net.h"
#include "tests/fuzz/fuzz_peer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 256u
#define MAX_TICKS 16u
#define RTO_MAX_US 20u
#define MAX_MESSAGE (32u << 10)
#define MAX_REASSEMBLY (48u << 10)
#define DG_MAX 65507u /* PN_DATAGRAM_MAX */
#define SEEN_SEQS 65536u
#define SENT_IDS 512u

/* What the owner saw, per channel (reset for each input). */
typedef struct chan_rec {
  pn_channel_kind kind;
  uint64_t last;               /* newest delivered sequence */
  uint8_t seen[SEEN_SEQS / 8]; /* reliable kinds: delivered sequences */
  uint64_t sent;               /* ids the application got: 1..sent */
  uint8_t resolved[SENT_IDS];  /* ACKED or LOST seen for the id */
} chan_rec;

static struct {
  uint32_t nch;
  bool canonical; /* every payload was fz_fill's */
  chan_rec ch[16];
} rec;

static uint8_t key_a[PN__DATA_KEY_BYTES], key_b[PN__DATA_KEY_BYTES];
static uint8_t dg[DG_MAX + 64];
static uint8_t body[DG_MAX];
static uint8_t payloads[DG_MAX];
static uint8_t send_buf[FZ_MAX_SEND];
static uint8_t replay[FZ_REPLAY][DG_MAX];
static size_t replay_len[FZ_REPLAY];

static void on_event(uint32_t type, const pn_peer_event *ev) {
  if (type != PN_MSG_PEER_PACKET && type != PN_MSG_PEER_ACKED &&
      type != PN_MSG_PEER_LOST) {
    return;
  }
  if (ev->channel >= rec.nch) {
    fz_broken("event on a channel the peer does not have");
  }
  chan_rec *c = &rec.ch[ev->channel];
  uint64_t id = ev->msg_id;
  if (type != PN_MSG_PEER_PACKET) {
    if (id < 1 || id > c->sent || id > SENT_IDS) {
      fz_broken("ACKED or LOST for a message never sent");
    }
    if (c->resolved[id - 1]++) {
      fz_broken("a message resolved twice");
    }
    if (type == PN_MSG_PEER_LOST && pn__kind_reliable(c->kind)) {
      fz_broken("a reliable message reported lost");
    }
    return;
  }
  if (ev->len > MAX_MESSAGE) {
    fz_broken("a message larger than max_message");
  }
  switch (c->kind) {
  case PN_CHANNEL_ORDERED:
    if (id != c->last + 1) {
      fz_broken("ORDERED delivered out of sequence");
    }
    break;
  case PN_CHANNEL_RELIABLE:
  case PN_CHANNEL_UNRELIABLE:
    if (id <= c->last) {
      fz_broken("a sequenced kind delivered an older message");
    }
    break;
  default:
    break;
  }
  c->last = id > c->last ? id : c->last;
  if (pn__kind_reliable(c->kind) && id < SEEN_SEQS) {
    if (c->seen[id / 8] >> (id % 8) & 1u) {
      fz_broken("a reliable message delivered twice");
    }
    c->seen[id / 8] |= (uint8_t)(1u << (id % 8));
  }
  if (rec.canonical) {
    const uint8_t *d = ev->data;
    for (size_t k = 0; k < ev->len; k++) {
      if (d[k] != fz_fill(ev->channel, id, k)) {
        fz_broken("a message's bytes are not what was sent");
      }
    }
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  if (sodium_init() < 0) {
    abort();
  }
  memset(key_a, 0xA1, sizeof key_a);
  memset(key_b, 0xB2, sizeof key_b);
  pn_host_config cfg = PN_HOST_CONFIG_INIT;
  cfg.max_message = MAX_MESSAGE;
  cfg.max_reassembly = MAX_REASSEMBLY;
  cfg.max_queued = 16u << 10; /* PN_EAGAIN and PN_MSG_PEER_WRITABLE */
  cfg.window = 16;            /* a full window and a full ring */
  /* Every RTO is over after RTO_MAX_US: a tick that waits that long is
   * always one that declares loss (deterministic, however fast or slow
   * the script runs). Keepalives are due at every tick too. */
  cfg.rto_min_us = 1;
  cfg.rto_initial_us = 5;
  cfg.rto_max_us = RTO_MAX_US;
  cfg.keepalive_us = 1;
  fz_init(&cfg, on_event);
  return 0;
}

/* The end of the handshake without the handshake (handshake.c: the
 * server's accept_peer and peer_accepted, the client's client_accepted):
 * ids, keys and the CONNECTED state. A server peer keeps its handshake
 * state until the first DATA datagram, as there. */
static void make_connected(pn_peer *p, bool aes) {
  p->remote_id = 0x00000F07u;
  p->aes_gcm = aes;
  pn__data_keys_init(&p->dkeys, key_a, key_b, aes);
  if (p->is_client) {
    pn__handshake_done(p);
  } else {
    p->hs = pn__calloc(1, sizeof *p->hs);
    if (!p->hs) {
      fz_broken("out of memory");
    }
  }
  pn__peer_set_state(p, PN_PEER_CONNECTED);
  p->start_ns = p->last_recv_ns = pn__now_ns();
}

typedef struct script {
  fz_in in;
  pn_peer *peer; /* the caller's reference */
  bool aes;
  pn__dir_key tx; /* the harness's send key: the peer's receive key */
  uint32_t ndg;   /* DATA datagrams delivered */
} script;

/* A datagram's sequence as the script names it (fuzz_peer.h). */
typedef struct seq_choice {
  uint8_t sel;
  uint32_t low;
} seq_choice;

static seq_choice read_seq(script *s) {
  seq_choice c = {fz_u8(&s->in), 0};
  if (c.sel >= 0xF0) {
    c.low = fz_u32(&s->in);
  }
  return c;
}

/* Writes dg's header for the chosen sequence; returns the sequence. */
static uint64_t put_header(const script *s, seq_choice c, bool zstd) {
  const pn_peer *p = s->peer;
  uint64_t seq;
  if (c.sel < 0xF0) {
    int64_t want = (int64_t)p->rx.highest + 1 + (int64_t)c.sel - 64;
    seq = want < 1 ? 1 : (uint64_t)want;
  } else {
    pn__wire_put_data_header(dg, zstd, p->remote_id, c.low);
    seq = pn__data_seq(dg, p->rx.highest);
  }
  pn__wire_put_data_header(dg, zstd, p->remote_id, seq);
  return seq;
}

/* Puts the body (blen bytes in `body`) after the header, compressed when
 * the flags ask and zstd manages; seals the datagram, delivers it and
 * keeps a copy for FZ_OP_REPLAY. */
static void deliver(script *s, seq_choice c, size_t blen, uint8_t flags) {
  size_t placed = 0;
  bool zstd = false;
  if (flags & FZ_DG_ZSTD) {
    size_t z = ZSTD_compress(dg + PN__DATA_HEADER, DG_MAX - PN__DATA_OVERHEAD,
                             body, blen, 1);
    if (!ZSTD_isError(z)) {
      placed = z;
      zstd = true;
    }
  }
  if (!zstd) {
    placed =
        blen < DG_MAX - PN__DATA_OVERHEAD ? blen : DG_MAX - PN__DATA_OVERHEAD;
    memcpy(dg + PN__DATA_HEADER, body, placed);
  }
  uint64_t seq = put_header(s, c, zstd || (flags & FZ_DG_BAD_ZSTD));
  if (seq == 0) {
    return; /* never valid: nothing could seal it */
  }
  /* A fresh copy of the epoch-0 key each time: sealing ratchets it to
   * seq's epoch, and the script may go back to an older one. */
  pn__dir_key k = s->tx;
  size_t len = pn__data_seal(&k, seq, dg, PN__DATA_HEADER + placed);
  if (flags & FZ_DG_CORRUPT) {
    dg[len - 1] ^= 0x01;
  }
  uint32_t slot = s->ndg++ % FZ_REPLAY;
  memcpy(replay[slot], dg, len);
  replay_len[slot] = len;
  fz_peer_recv(s->peer, dg, len);
}

static void op_frames(script *s) {
  seq_choice c = read_seq(s);
  Peernet__Wire__V1__Packet pk = PEERNET__WIRE__V1__PACKET__INIT;
  pk.ack = fz_u16(&s->in);
  pk.ack_bits = fz_u64(&s->in);
  pk.ack_delay_us = (uint32_t)fz_u8(&s->in) * 100u;
  uint8_t flags = fz_u8(&s->in);
  pk.ping = (flags & FZ_DG_PING) != 0;
  if (flags & FZ_DG_MORE_BITS) {
    pk.ack_bits_more = pk.ack_bits << 32 | pk.ack_bits >> 32;
  }
  if (flags & FZ_DG_DISCONNECT) {
    pk.disconnect = true;
    pk.disconnect_reason = 7;
  }
  uint32_t n = fz_u8(&s->in) % (FZ_MAX_FRAMES + 1);
  Peernet__Wire__V1__Frame fr[FZ_MAX_FRAMES];
  Peernet__Wire__V1__Frame *fp[FZ_MAX_FRAMES];
  size_t used = 0;
  for (uint32_t i = 0; i < n; i++) {
    Peernet__Wire__V1__Frame *f = &fr[i];
    peernet__wire__v1__frame__init(f);
    f->channel = fz_u8(&s->in);
    f->msg_seq = fz_u16(&s->in);
    uint32_t count = fz_u8(&s->in);
    uint32_t index = fz_u8(&s->in);
    uint32_t msg_len = fz_u16(&s->in);
    uint32_t mode = fz_u8(&s->in);
    size_t plen, off = 0;
    f->frag_count = count;
    if (count <= 1) {
      plen = msg_len;
    } else {
      f->frag_index = index;
      f->msg_len = msg_len;
      plen = mode ? mode - 1 : pn__frag_len(msg_len, count, index);
      off = ((size_t)msg_len + count - 1) / count * index;
    }
    if (plen > sizeof payloads - used) {
      plen = sizeof payloads - used;
    }
    for (size_t k = 0; k < plen; k++) {
      payloads[used + k] = fz_fill(f->channel, f->msg_seq, off + k);
    }
    f->payload.data = payloads + used;
    f->payload.len = plen;
    used += plen;
    fp[i] = f;
  }
  pk.frames = fp;
  pk.n_frames = n;
  while (pk.n_frames &&
         protobuf_c_message_get_packed_size(&pk.base) > sizeof body) {
    pk.n_frames--;
  }
  deliver(s, c, protobuf_c_message_pack(&pk.base, body), flags);
}

static void op_raw(script *s) {
  seq_choice c = read_seq(s);
  uint8_t flags = fz_u8(&s->in);
  size_t want = fz_u16(&s->in), got;
  const uint8_t *b = fz_bytes(&s->in, want, &got);
  memcpy(body, b, got);
  rec.canonical = false;
  deliver(s, c, got, flags);
}

static void spin_us(uint64_t us) {
  uint64_t until = pn__now_ns() + us * 1000u;
  while (pn__now_ns() < until) {
  }
}

static void check_reassembly(const pn_peer *p) {
  uint64_t sum = 0;
  for (const pn__partial *q = p->partials; q; q = q->next) {
    sum += q->pkt->len;
  }
  if (sum != p->reassembly) {
    fz_broken("reassembly bytes differ from the partial messages held");
  }
  if (p->reassembly > MAX_REASSEMBLY) {
    fz_broken("reassembly over max_reassembly");
  }
}

static void run_script(void *ctx) {
  script *s = ctx;
  uint8_t config = fz_u8(&s->in);
  uint32_t nch = 1u + (config >> 4);
  pn_channel_kind kinds[16];
  for (uint32_t i = 0; i < nch; i++) {
    kinds[i] = (pn_channel_kind)(fz_u8(&s->in) % PN_CHANNEL_KINDS);
    rec.ch[i].kind = kinds[i];
  }
  rec.nch = nch;
  s->aes = (config & 2) && pn__wire_aes_available();
  pn_peer_config pc = PN_PEER_CONFIG_INIT;
  pc.remote = fz.sink;
  pc.owner = fz.owner;
  pc.channel_count = nch;
  pc.kinds = kinds;
  if (pn__peer_create(fz.host, &pc, config & 1, &s->peer) != PN_OK) {
    fz_broken("peer creation");
  }
  pn_peer *p = s->peer;
  make_connected(p, s->aes);
  pn__data_keys k;
  pn__data_keys_init(&k, key_b, key_a, s->aes); /* the other side's */
  s->tx = k.tx;
  pn__data_keys_clear(&k);
  uint32_t ticks = 0;
  for (uint32_t ops = 0; s->in.n && ops < MAX_OPS && !p->gone; ops++) {
    uint8_t op = fz_u8(&s->in);
    uint8_t arg = op >> 3;
    switch ((op & 7u) % FZ_OPS) {
    case FZ_OP_FRAMES:
      op_frames(s);
      break;
    case FZ_OP_RAW:
      op_raw(s);
      break;
    case FZ_OP_FLUSH:
      fz_peer_call(p, PN_MSG_BATCH_END, NULL, 0, NULL, 0);
      break;
    case FZ_OP_TICK:
      if (ticks++ < MAX_TICKS) {
        spin_us(RTO_MAX_US + 1);
        fz_peer_call(p, PN__P_TICK, NULL, 0, NULL, 0);
        if ((arg & 1u) && !p->gone) {
          pn__peer_expire_partials(p, pn__now_ns() + PN__PARTIAL_EXPIRY_NS + 1,
                                   UINT32_MAX, 0);
        }
      }
      break;
    case FZ_OP_SEND: {
      uint32_t c = arg % nch;
      size_t len = fz_u16(&s->in) % FZ_MAX_SEND;
      for (size_t i = 0; i < len; i++) {
        send_buf[i] = (uint8_t)(i * 13u + c);
      }
      uint64_t id = 0;
      pn_err err = pn_channel_send(&p->channels[c], send_buf, len, &id);
      if (err == PN_OK) {
        if (id != rec.ch[c].sent + 1) {
          fz_broken("message ids not 1, 2, 3, ...");
        }
        rec.ch[c].sent = id;
      } else if (err != PN_EAGAIN && err != PN_ECLOSED) {
        fz_broken("pn_channel_send failed");
      }
      break;
    }
    case FZ_OP_DISCONNECT: {
      pn__disconnect_request rq = {.reason = fz_u8(&s->in)};
      fz_peer_call(p, PN__P_DISCONNECT, &rq, sizeof rq, NULL, 0);
      break;
    }
    case FZ_OP_REPLAY:
      if (s->ndg) {
        uint32_t back = arg % FZ_REPLAY % s->ndg;
        uint32_t slot = (s->ndg - 1 - back) % FZ_REPLAY;
        memcpy(dg, replay[slot], replay_len[slot]);
        fz_peer_recv(p, dg, replay_len[slot]);
      }
      break;
    default:
      break;
    }
    if (!p->gone) {
      check_reassembly(p);
    }
  }
  /* The run's end, then closed for good, as a host closing would. */
  fz_peer_call(p, PN_MSG_BATCH_END, NULL, 0, NULL, 0);
  pn__peer_close(p, PN_REASON_HOST_CLOSED, false);
  if (p->partials || p->reassembly) {
    fz_broken("a closed peer kept partial messages");
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  memset(&rec, 0, sizeof rec);
  rec.canonical = true;
  script s = {.in = {data, size}};
  fz_run(run_script, &s);
  fz_settle(&s.peer, 1);
  return 0;
}
