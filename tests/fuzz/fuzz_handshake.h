/* fuzz_handshake's input format, shared with make_corpus (which writes its
 * seeds). An input is a script against one host that is both the server
 * and, through one connecting client peer, the client:
 *
 *   config   1 byte: bit 0 the client pins the host's key, bit 1 it pins
 *            another one, bit 2 it presents a key of its own, bit 3 it
 *            sends connect data, bits 4..7 channels - 1; then one byte per
 *            channel: its kind (mod PN_CHANNEL_KINDS)
 *   ops      until the input ends, each one byte: low 4 bits the op,
 *            high 4 bits its flags, then the op's bytes
 *
 * Bodies are a length (2 bytes) and that many bytes of a protobuf message;
 * the harness adds the header and the SipHash tag (pn__wire_seal), so the
 * fuzzer is past the tag check. Fields the harness appends come after the
 * fuzzer's and win (protobuf: the last one of a number counts). */
#ifndef PN_TESTS_FUZZ_HANDSHAKE_H
#define PN_TESTS_FUZZ_HANDSHAKE_H

enum {
  /* A ConnectRequest body to the host; flags: bits 0-1 the header's
   * version (0: the current one), bit 2 padded to the minimum size. */
  FZ_HS_REQUEST = 0,
  /* A ConnectResponse body to the host; flags: bit 0 a valid cookie
   * (and timestamp) for the body's ids and key, bit 1 padded. */
  FZ_HS_RESPONSE = 1,
  /* The client's own ConnectResponse (its ids, key and kinds, a valid
   * cookie), then the body's bytes, to the host; flags: bit 0 asks for
   * AES-256-GCM, bit 1 names another dictionary. */
  FZ_HS_SERVE = 2,
  /* A Challenge body to the client; flags: bit 0 the client's ids
   * appended. */
  FZ_HS_CHALLENGE = 3,
  /* An Accept body to the client; flags: bit 0 preceded by the Accept
   * the server peer made for this client (when there is one), bit 1 the
   * client's ids appended. */
  FZ_HS_ACCEPT = 4,
  /* A Reject body to the client; flags: bit 0 the client's ids
   * appended. */
  FZ_HS_REJECT = 5,
  /* A timer tick for the client once its retry time passed (the host's
   * is a microsecond); flags: bit 0 for the server peer instead. */
  FZ_HS_TICK = 6,
  /* A DATA ping sealed with the sender's key; flags: bit 0 from the
   * server peer to the client, else the other way. */
  FZ_HS_DATA = 7,
  /* The application disconnects; flags: bit 0 the server peer, else the
   * client. */
  FZ_HS_DISCONNECT = 8,
  /* Batch ends for both peers. */
  FZ_HS_FLUSH = 9,
  /* A whole datagram (length, bytes) as it came from the network: to the
   * host's routing (flags bit 0) or to the client. */
  FZ_HS_RAW = 10,
  FZ_HS_OPS = 11,
};

#endif
