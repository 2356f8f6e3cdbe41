/* actors/wire.c from a printed seed. The hand-written Packet codec against
 * protobuf-c: encoding writes exactly protobuf-c's bytes; decoding accepts
 * what protobuf-c accepts (and the checks allow) with the same fields, on
 * random packets (every field, the window included) and on random
 * mutations of them. DATA tags (both algorithms): a sealed datagram
 * verifies, any change to it, its sequence, its side or its key does not;
 * the header's 32-bit sequence expands to the full one across wraps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/wire.h"
#include "tests/support/bump_arena.h"
#include "tests/support/test_support.h"

enum { ROUNDS = 20000, MAX_BODY = 4096 };

static uint64_t rnd_field(uint64_t *rng) {
  switch (pn_test_rand(rng) % 4) {
  case 0:
    return 0; /* a default: left out */
  case 1:
    return pn_test_rand(rng) % 128;
  case 2:
    return pn_test_rand(rng) % 100000;
  default:
    return pn_test_rand(rng);
  }
}

/* A random packet whose frames pass the decoder's checks (8 channels). */
static void random_packet(uint64_t *rng, Peernet__Wire__V1__Packet *pk,
                          Peernet__Wire__V1__Frame *fr,
                          Peernet__Wire__V1__Frame **fp, uint8_t *payload) {
  peernet__wire__v1__packet__init(pk);
  pk->seq = 1 + pn_test_rand(rng) % 1000000;
  pk->ack = rnd_field(rng);
  pk->ack_bits = rnd_field(rng);
  pk->ack_delay_us = (uint32_t)rnd_field(rng);
  pk->ping = pn_test_rand(rng) % 2;
  pk->disconnect = pn_test_rand(rng) % 4 == 0;
  pk->disconnect_reason = pk->disconnect ? (uint32_t)rnd_field(rng) : 0;
  pk->window = rnd_field(rng);
  pk->path_challenge = pn_test_rand(rng) % 4 == 0 ? rnd_field(rng) : 0;
  pk->path_response = pn_test_rand(rng) % 4 == 0 ? rnd_field(rng) : 0;
  pk->n_frames = pn_test_rand(rng) % 6;
  for (size_t i = 0; i < pk->n_frames; i++) {
    peernet__wire__v1__frame__init(&fr[i]);
    fr[i].channel = (uint32_t)(pn_test_rand(rng) % 8);
    fr[i].msg_seq = 1 + rnd_field(rng) % 5000000000ull;
    size_t len = pn_test_rand(rng) % 200;
    if (pn_test_rand(rng) % 3 == 0) { /* a fragment of a larger message */
      fr[i].frag_count = 2 + (uint32_t)(pn_test_rand(rng) % 5);
      fr[i].msg_len = fr[i].frag_count * 40 + 3;
      fr[i].frag_index = (uint32_t)(pn_test_rand(rng) % fr[i].frag_count);
      len = pn__frag_len(fr[i].msg_len, fr[i].frag_count, fr[i].frag_index);
    }
    fr[i].payload.data = payload;
    fr[i].payload.len = len;
    fp[i] = &fr[i];
  }
  pk->frames = fp;
}

static void assert_same(const Peernet__Wire__V1__Packet *a,
                        const Peernet__Wire__V1__Packet *b) {
  assert_int_equal(a->seq, b->seq);
  assert_int_equal(a->ack, b->ack);
  assert_int_equal(a->ack_bits, b->ack_bits);
  assert_int_equal(a->ack_delay_us, b->ack_delay_us);
  assert_int_equal(a->ping, b->ping);
  assert_int_equal(a->disconnect, b->disconnect);
  assert_int_equal(a->disconnect_reason, b->disconnect_reason);
  assert_int_equal(a->window, b->window);
  assert_int_equal(a->path_challenge, b->path_challenge);
  assert_int_equal(a->path_response, b->path_response);
  assert_int_equal(a->n_frames, b->n_frames);
  for (size_t i = 0; i < a->n_frames; i++) {
    const Peernet__Wire__V1__Frame *x = a->frames[i], *y = b->frames[i];
    assert_int_equal(x->channel, y->channel);
    assert_int_equal(x->msg_seq, y->msg_seq);
    assert_int_equal(x->frag_index, y->frag_index);
    assert_int_equal(x->frag_count, y->frag_count);
    assert_int_equal(x->msg_len, y->msg_len);
    assert_int_equal(x->payload.len, y->payload.len);
    if (x->payload.len) {
      assert_memory_equal(x->payload.data, y->payload.data, x->payload.len);
    }
  }
}

static void encode_matches_protobuf_c(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed();
  uint8_t payload[256], ours[MAX_BODY], theirs[MAX_BODY];
  for (size_t i = 0; i < sizeof payload; i++) {
    payload[i] = (uint8_t)pn_test_rand(&rng);
  }
  Peernet__Wire__V1__Frame fr[8], *fp[8];
  for (int r = 0; r < ROUNDS; r++) {
    Peernet__Wire__V1__Packet pk;
    random_packet(&rng, &pk, fr, fp, payload);
    size_t n = pn__wire_encode_packet(&pk, ours);
    size_t m = protobuf_c_message_pack(&pk.base, theirs);
    assert_int_equal(n, m);
    assert_memory_equal(ours, theirs, n);
    /* The frame sizes the sender plans with are the encoded sizes. */
    size_t planned = 0;
    for (size_t i = 0; i < pk.n_frames; i++) {
      planned += pn__frame_wire_size(fr[i].channel, fr[i].msg_seq,
                                     fr[i].frag_index, fr[i].frag_count,
                                     fr[i].msg_len, fr[i].payload.len);
    }
    /* The bound leaves out seq, which senders leave 0 (not encoded). */
    size_t seq_bytes = pk.seq ? 1 + pn__varint_len(pk.seq) : 0;
    assert_true(planned <= n &&
                n - planned <= PN__PACKET_FIELDS_MAX + seq_bytes);
  }
}

/* Decoding random packets and mutations of them (flipped bytes, cuts,
 * appended garbage): ours accepts exactly when protobuf-c unpacks and the
 * checks hold, with the same fields. */
static void decode_matches_protobuf_c(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed();
  uint8_t payload[256], body[MAX_BODY];
  for (size_t i = 0; i < sizeof payload; i++) {
    payload[i] = (uint8_t)pn_test_rand(&rng);
  }
  static pn_test_arena mem;
  Peernet__Wire__V1__Frame fr[8], *fp[8];
  uint64_t accepted = 0, refused = 0;
  for (int r = 0; r < ROUNDS; r++) {
    Peernet__Wire__V1__Packet pk;
    random_packet(&rng, &pk, fr, fp, payload);
    size_t n = pn__wire_encode_packet(&pk, body);
    ProtobufCAllocator heap = pn_test_arena_allocator(&mem);
    int mutations = (int)(pn_test_rand(&rng) % 4);
    for (int k = 0; k < mutations && n; k++) {
      switch (pn_test_rand(&rng) % 3) {
      case 0:
        body[pn_test_rand(&rng) % n] ^=
            (uint8_t)(1u << (pn_test_rand(&rng) % 8));
        break;
      case 1:
        n = pn_test_rand(&rng) % n;
        break;
      default:
        for (int j = 0; j < 4 && n < sizeof body; j++) {
          body[n++] = (uint8_t)pn_test_rand(&rng);
        }
        break;
      }
    }
    Peernet__Wire__V1__Packet *ours =
        pn__wire_decode_packet(body, n, 8, 1u << 20, &heap);
    Peernet__Wire__V1__Packet *ref =
        peernet__wire__v1__packet__unpack(&heap, n, body);
    bool ref_ok = ref != NULL && ref->n_frames <= PN__MAX_FRAMES;
    for (size_t i = 0; ref_ok && i < ref->n_frames; i++) {
      const Peernet__Wire__V1__Frame *f = ref->frames[i];
      ref_ok = f->channel < 8 && f->msg_seq != 0;
      if (ref_ok && f->frag_count > 1) {
        size_t piece = ((size_t)f->msg_len + f->frag_count - 1) / f->frag_count;
        ref_ok = f->msg_len <= (1u << 20) && f->frag_index < f->frag_count &&
                 f->frag_count <= f->msg_len &&
                 piece * (f->frag_count - 1) < f->msg_len &&
                 f->payload.len ==
                     pn__frag_len(f->msg_len, f->frag_count, f->frag_index);
      } else if (ref_ok) {
        ref_ok = f->frag_index == 0 && f->msg_len == 0;
      }
    }
    if (ref_ok != (ours != NULL)) {
      for (size_t i = 0; i < n; i++) {
        fprintf(stderr, "%02x%s", body[i], i + 1 == n ? "\n" : " ");
      }
      fail_msg("round %d: protobuf-c %s, ours %s", r,
               ref_ok ? "accepts" : "refuses", ours ? "accepts" : "refuses");
    }
    if (ours) {
      assert_same(ours, ref);
      accepted++;
    } else {
      refused++;
    }
  }
  assert_true(accepted > ROUNDS / 4 && refused > ROUNDS / 20);
}

/* A pair of key sets as two ends hold them: a's tx is b's rx. */
static pn__data_keys *key_pair(bool aes, uint64_t *rng, bool flip) {
  uint8_t k1[PN__DATA_KEY_BYTES], k2[PN__DATA_KEY_BYTES];
  for (size_t i = 0; i < sizeof k1; i++) {
    k1[i] = (uint8_t)pn_test_rand(rng);
    k2[i] = (uint8_t)pn_test_rand(rng);
  }
  pn__data_keys *k = aligned_alloc(16, 2 * sizeof *k);
  assert_non_null(k);
  pn__data_keys_init(&k[0], k1, k2, aes);
  k1[7] ^= (uint8_t)(flip ? 0x10 : 0); /* b's rx key differs in one bit */
  pn__data_keys_init(&k[1], k2, k1, aes);
  return k;
}

static void check_seal(bool aes, uint64_t *rng) {
  pn__data_keys *k = key_pair(aes, rng, false);
  pn__data_keys *bad = key_pair(aes, rng, true);
  uint8_t buf[PN__DATA_HEADER + 600 + PN__DATA_TAG], plain[600], out[600];
  for (int r = 0; r < 200; r++) {
    size_t body = pn_test_rand(rng) % 600;
    size_t len = PN__DATA_HEADER + body;
    uint64_t seq = 1 + pn_test_rand(rng) % (1ull << 27);
    for (size_t i = 0; i < body; i++) {
      plain[i] = (uint8_t)pn_test_rand(rng);
    }
    pn__wire_put_data_header(buf, false, 7, seq);
    memcpy(buf + PN__DATA_HEADER, plain, body);
    size_t n = pn__data_seal(&k[0].tx, seq, buf, len);
    assert_int_equal(n, len + PN__DATA_TAG);
    /* Encrypted: a body of 16 bytes or more is never sent as it is. */
    if (body >= 16) {
      assert_memory_not_equal(buf + PN__DATA_HEADER, plain, body);
    }
    assert_true(pn__data_open(&k[1].rx, seq, buf, n, out));
    assert_memory_equal(out, plain, body);
    assert_int_equal(pn__data_seq(buf, seq - 1), seq);
    /* The other direction's key, another sequence, a key one bit off,
     * a short datagram: all refused. */
    assert_false(pn__data_open(&k[0].rx, seq, buf, n, out));
    assert_false(pn__data_open(&k[1].rx, seq + 1, buf, n, out));
    assert_false(pn__data_open(&bad[1].rx, seq, buf, n, out));
    assert_false(pn__data_open(&k[1].rx, seq, buf, n - 1, out));
    size_t at = pn_test_rand(rng) % n;
    uint8_t bit = (uint8_t)(1u << pn_test_rand(rng) % 8);
    buf[at] ^= bit;
    assert_false(pn__data_open(&k[1].rx, seq, buf, n, out));
    buf[at] ^= bit;
    assert_true(pn__data_open(&k[1].rx, seq, buf, n, out));
  }
  pn__data_keys_clear(&k[0]);
  pn__data_keys_clear(&k[1]);
  free(k);
  free(bad);
}

static void data_is_encrypted_and_opens_only_as_sealed(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  uint64_t rng = pn_test_seed();
  check_seal(false, &rng);
  if (crypto_aead_aes256gcm_is_available()) {
    check_seal(true, &rng);
  } else {
    fprintf(stderr, "# no AES-NI here: AES-256-GCM not tested\n");
  }
}

/* Keys change every 2^rekey_bits datagrams on both sides from the
 * sequence alone; the receiver follows only authentic datagrams one epoch
 * ahead, and an old epoch's key is gone. */
static void keys_change_every_epoch(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  uint64_t rng = pn_test_seed();
  atomic_store(&pn__wire_rekey_bits, 4); /* 16 datagrams an epoch */
  pn__data_keys *k = key_pair(false, &rng, false);
  uint8_t buf[PN__DATA_HEADER + 64 + PN__DATA_TAG], out[64];
  uint8_t first_key[PN__DATA_KEY_BYTES];
  memcpy(first_key, k[0].tx.key, sizeof first_key);
  uint8_t old[sizeof buf];
  size_t old_n = 0;
  for (uint64_t seq = 1; seq < 100; seq++) {
    pn__wire_put_data_header(buf, false, 7, seq);
    memset(buf + PN__DATA_HEADER, (int)seq, 64);
    size_t n = pn__data_seal(&k[0].tx, seq, buf, PN__DATA_HEADER + 64);
    assert_int_equal(k[0].tx.epoch, seq >> 4);
    if (seq == 3) {
      memcpy(old, buf, n); /* epoch 0, for later */
      old_n = n;
    }
    if (seq == 40) {
      /* A forged datagram of the next epoch does not move the key. */
      uint8_t forged[sizeof buf];
      memcpy(forged, buf, n);
      forged[PN__DATA_HEADER] ^= 1;
      uint64_t before = k[1].rx.epoch;
      assert_false(pn__data_open(&k[1].rx, seq, forged, n, out));
      assert_int_equal(k[1].rx.epoch, before);
    }
    assert_true(pn__data_open(&k[1].rx, seq, buf, n, out));
    assert_int_equal(out[0], (uint8_t)seq);
    assert_int_equal(k[1].rx.epoch, seq >> 4);
  }
  assert_memory_not_equal(k[0].tx.key, first_key, sizeof first_key);
  /* Six epochs on, epoch 0's datagram no longer opens. */
  assert_false(pn__data_open(&k[1].rx, 3, old, old_n, out));
  /* Two epochs ahead is refused, not followed. */
  pn__wire_put_data_header(buf, false, 7, 140);
  size_t n = pn__data_seal(&k[0].tx, 140, buf, PN__DATA_HEADER + 64);
  assert_false(pn__data_open(&k[1].rx, 140, buf, n, out));
  atomic_store(&pn__wire_rekey_bits, 28);
  pn__data_keys_clear(&k[0]);
  pn__data_keys_clear(&k[1]);
  free(k);
}

static uint64_t expand(uint64_t largest, uint64_t seq) {
  uint8_t hdr[PN__DATA_HEADER];
  pn__wire_put_data_header(hdr, false, 1, seq);
  return pn__data_seq(hdr, largest);
}

static void data_sequence_expands_across_wraps(void **state) {
  (void)state;
  const uint64_t W = 1ull << 32;
  assert_int_equal(expand(0, 1), 1);
  assert_int_equal(expand(0, W - 1), W - 1); /* far ahead of nothing */
  assert_int_equal(expand(W - 1, W), W);     /* the first wrap */
  assert_int_equal(expand(W + 5, W - 2), W - 2);
  assert_int_equal(expand(3 * W + 10, 3 * W - 100), 3 * W - 100);
  assert_int_equal(expand(UINT64_MAX - 10, UINT64_MAX - 3), UINT64_MAX - 3);
  /* Anything within half the window of largest + 1 comes back whole. */
  uint64_t rng = pn_test_seed();
  for (int r = 0; r < 100000; r++) {
    uint64_t largest = pn_test_rand(&rng) >> (pn_test_rand(&rng) % 64);
    if (largest > UINT64_MAX - W) {
      largest -= W;
    }
    int64_t d = (int64_t)(pn_test_rand(&rng) % W) - (int64_t)(W / 2) + 1;
    uint64_t seq = largest + 1 + (uint64_t)d;
    if (d < 0 && (uint64_t)-d > largest) {
      continue; /* before 1 */
    }
    assert_int_equal(expand(largest, seq), seq);
  }
}

/* Key files: what peernet-keygen writes loads back; anything else is an
 * error and leaves the output alone. */
static void key_files_load(void **state) {
  (void)state;
  uint8_t pub[PN_KEY_BYTES], secret[PN_KEY_BYTES], got[PN_KEY_BYTES];
  PN_ASSERT_OK(pn_key_pair(pub, secret));
  char text[PN_KEY_TEXT_BYTES], path[64];
  PN_ASSERT_OK(pn_key_to_text(pub, text));
  snprintf(path, sizeof path, "/tmp/peernet-key-%ld", (long)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "%s\n", text);
  fclose(f);
  PN_ASSERT_OK(pn_key_load(path, got));
  assert_memory_equal(got, pub, PN_KEY_BYTES);
  memset(got, 7, sizeof got);
  f = fopen(path, "w");
  assert_non_null(f);
  fputs("not a key\n", f);
  fclose(f);
  PN_ASSERT_ERR(PN_EINVAL, pn_key_load(path, got));
  assert_int_equal(got[0], 7);
  assert_int_equal(unlink(path), 0);
  assert_int_not_equal(pn_key_load(path, got), PN_OK); /* gone */
  PN_ASSERT_ERR(PN_EINVAL, pn_key_load(NULL, got));
  PN_ASSERT_ERR(PN_EINVAL, pn_key_load(path, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(encode_matches_protobuf_c),
      cmocka_unit_test(decode_matches_protobuf_c),
      cmocka_unit_test(data_is_encrypted_and_opens_only_as_sealed),
      cmocka_unit_test(keys_change_every_epoch),
      cmocka_unit_test(key_files_load),
      cmocka_unit_test(data_sequence_expands_across_wraps),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
