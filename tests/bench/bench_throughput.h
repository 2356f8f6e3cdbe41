/* peernet-bench throughput (see bench_throughput.c). */
#ifndef PN_BENCH_THROUGHPUT_H
#define PN_BENCH_THROUGHPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "peernet/net.h"

typedef enum tp_compression {
  TP_COMPRESS_OFF, /* no_compression */
  TP_COMPRESS_ON,  /* zstd when it shrinks a datagram (the default) */
  TP_COMPRESS_DICT /* the same with a trained dictionary */
} tp_compression;

typedef struct tp_config {
  pn_io_backend io;
  pn_channel_kind kind;
  uint64_t n;
  uint32_t size;
  bool game; /* game-state payloads (compressible) instead of random */
  tp_compression compression;
  const void *dict;
  size_t dict_len;
  uint32_t chunk; /* messages per sender run; 0 = 256; 1 = one message
                    in flight at a time */
} tp_config;

typedef struct tp_result {
  char io[8];
  uint32_t size;
  double seconds, msgs_per_s, mbytes_per_s, compression_ratio;
  uint64_t datagrams_out, bytes_out, retransmits;
} tp_result;

/* One run as configured, without printing. Returns 0, or 1 on failure. */
int bench_throughput_run(const tp_config *cfg, tp_result *out);

/* n one-way messages of size bytes on a channel of `kind`; prints one JSON
 * line with msgs_per_s and mbytes_per_s. Returns 0, or 1 on failure. */
int bench_peernet_throughput(pn_io_backend io, pn_channel_kind kind, uint64_t n,
                             uint32_t size);

/* A small game-state update (entity, position, velocity, health, flags,
 * name), deterministic from seq, in size bytes. */
void bench_game_state(uint8_t *buf, uint32_t size, uint64_t seq);

/* The same n game-state messages sent three times: without compression,
 * with zstd, and with a dictionary trained on other updates; prints one
 * JSON line with the bytes on the wire and msgs/s of each. */
int bench_compression(pn_io_backend io, uint64_t n, uint32_t size);

#endif
