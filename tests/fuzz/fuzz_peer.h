/* fuzz_peer's input format, shared with make_corpus (which writes its
 * seeds). An input is a script run against one connected peer:
 *
 *   config   1 byte: bit 0 the peer is the client side, bit 1 AES-256-GCM
 *            (when the CPU has it), bits 4..7 channels - 1; then one byte
 *            per channel: its kind (mod PN_CHANNEL_KINDS)
 *   ops      until the input ends, each one byte: low 3 bits the op, high
 *            5 bits its argument, then the op's bytes
 *
 * DATA ops build a DATA datagram from the peer's side of the harness:
 * sealed with the peer's receive key for the sequence they name, so it is
 * authentic (unless FZ_DG_CORRUPT asks otherwise). Their sequence is one
 * byte s: below 0xF0 it is rx.highest + 1 + s - 64 (at least 1); else four
 * more bytes give the low 32 bits of the header, which the receiver widens
 * as it always does. */
#ifndef PN_TESTS_FUZZ_PEER_H
#define PN_TESTS_FUZZ_PEER_H

enum {
  /* seq, ack (2), ack_bits (8), ack delay in 100 us (1), flags (1),
   * frames (1, at most FZ_MAX_FRAMES), then per frame: channel (1),
   * msg_seq (2), frag_count (1), frag_index (1), msg_len (2), mode (1).
   * A frame with frag_count 0 or 1 is a whole message of msg_len bytes;
   * otherwise a fragment whose payload has the length the sender would
   * cut (mode 0) or mode - 1 bytes. Payload byte k of message (c, s) is
   * fz_fill(c, s, k), which the owner checks. */
  FZ_OP_FRAMES = 0,
  /* seq, flags (1), length (2), then that many bytes of Packet body as
   * they are (payloads are then not checked). */
  FZ_OP_RAW = 1,
  /* PN_MSG_BATCH_END: the peer flushes (acknowledgements, sends). */
  FZ_OP_FLUSH = 2,
  /* A timer tick once every RTO has passed (the host's are microseconds);
   * argument bit 0: partial messages also expire. */
  FZ_OP_TICK = 3,
  /* The application sends length (2, mod FZ_MAX_SEND) bytes on channel
   * (argument mod channels). */
  FZ_OP_SEND = 4,
  /* The application disconnects, reason (1). */
  FZ_OP_DISCONNECT = 5,
  /* The datagram delivered (argument mod FZ_REPLAY) + 1 DATA ops ago,
   * again. */
  FZ_OP_REPLAY = 6,
  FZ_OPS = 7,
};

/* Flags of DATA ops. */
#define FZ_DG_PING 0x01u
#define FZ_DG_DISCONNECT 0x02u
#define FZ_DG_ZSTD 0x04u      /* compress the body */
#define FZ_DG_BAD_ZSTD 0x08u  /* the header says zstd, the body is not */
#define FZ_DG_CORRUPT 0x10u   /* flip a bit of the tag */
#define FZ_DG_MORE_BITS 0x20u /* ack_bits_more: ack_bits rotated by 32 */

#define FZ_MAX_FRAMES 16u
#define FZ_MAX_SEND 6000u
#define FZ_REPLAY 8u

/* The canonical payload byte k of message seq on channel ch. */
static inline unsigned char fz_fill(unsigned ch, unsigned long long seq,
                                    unsigned long long k) {
  return (unsigned char)(ch * 131u + seq * 31u + k * 7u + (k >> 8));
}

#endif
