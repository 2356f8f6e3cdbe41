/* What fuzz_peer and fuzz_handshake share: one runtime for the whole run,
 * a host on 127.0.0.1, an owner actor for its peers' events and a driver
 * actor that runs each input's script on the host's worker.
 *
 * Why on the worker: a peer's state is touched only by handlers on its
 * host's worker (actors/peer.h). The runtime has one worker, so while the
 * driver's handler runs nothing else does, and the script may call the
 * peer's own handler (fz_peer_call: the real peer_handler with a message
 * made here) and the host's handshake functions directly, as the host
 * actor does. What those handlers send (owner events, channel messages,
 * datagrams for the socket actor) is handled after the script returns.
 *
 * Datagrams the peers send go to a UDP socket of the harness's that is
 * never read (the kernel drops them once its small buffer is full).
 *
 * Each input ends with every peer it made closed; fz_settle() waits (with
 * a deadline: a peer that never finishes closing is a bug, reported by
 * abort()) until each is freed and the runtime's live actor and timer
 * counts are back where they were, so nothing leaks from one input into
 * the next.
 *
 * Threading: fz_init, fz_run and fz_settle on the fuzzer's thread; the
 * script and the owner hook on the worker. */
#ifndef PN_TESTS_FUZZ_NET_H
#define PN_TESTS_FUZZ_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "actors/host.h"
#include "actors/peer.h"
#include "peernet/peernet.h"

typedef struct fz_env {
  pn_runtime *rt;
  pn_host *host;
  pn_actor *owner;  /* owner of every peer, accept_owner of the host */
  pn_actor *driver; /* runs fz_run's function */
  pn_addr sink;     /* where the peers' datagrams go */
} fz_env;

extern fz_env fz;

/* Called on the worker for each event the owner receives. */
typedef void fz_event_fn(uint32_t type, const pn_peer_event *ev);

/* Creates the runtime, the actors, the sink and a host with cfg (its
 * sockets, owner and home are filled in here); aborts on failure. */
void fz_init(pn_host_config *cfg, fz_event_fn *on_event);

/* Runs fn(ctx) inside the driver's handler on the host's worker and
 * waits for it to return. */
void fz_run(void (*fn)(void *ctx), void *ctx);

/* Waits until each of peers[0..n) (closed, each held once by the caller)
 * is held by nothing else, releases them, and waits until the runtime's
 * actors and timers are back to their count before the input. */
void fz_settle(pn_peer **peers, size_t n);

/* Calls p's actor handler with a message of type `type` and bytes
 * a[0..alen) then b[0..blen) (the layout pn__send_parts gives). Worker
 * only (inside fz_run). */
void fz_peer_call(pn_peer *p, uint32_t type, const void *a, size_t alen,
                  const void *b, size_t blen);

/* A datagram for p, as the host routes it (PN__P_RECV). */
void fz_peer_recv(pn_peer *p, const uint8_t *data, size_t len);

/* Aborts with a message: libFuzzer reports the input as a crash. */
_Noreturn void fz_broken(const char *what);

/* Reads the input: fz_u8 and fz_u16 give 0 past the end. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n;
} fz_in;

uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
/* Up to `want` bytes; *got says how many were left. */
const uint8_t *fz_bytes(fz_in *in, size_t want, size_t *got);

/* Protobuf fields appended to a body (a later field wins over an earlier
 * one of the same number, so the harness can make a field right without
 * taking the fuzzer's bytes away). Each returns the new length, or len
 * unchanged when the field does not fit in cap. */
size_t fz_pb_varint(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                    uint64_t v);
size_t fz_pb_fixed64(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                     uint64_t v);
size_t fz_pb_bytes(uint8_t *buf, size_t len, size_t cap, uint32_t field,
                   const uint8_t *data, size_t n);

#endif
