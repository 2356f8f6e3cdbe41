/* nodes/envelope.c against protobuf-c: envelopes packed by protobuf-c read
 * back the same, and on seeded random mutations of them (bytes flipped,
 * inserted, removed, cut) the hand reader accepts exactly what
 * protobuf-c's unpack accepts, with the same fields; Batches written by
 * hand are protobuf-c's bytes and read back. PEERNET_TEST_SEED replays a
 * run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nodes/envelope.h"
#include "peernet_node.pb-c.h"
#include "tests/support/seed.h"

enum { ROUNDS = 20000, MUTATIONS = 8, BUF = 1024 };

static size_t pack_random(uint64_t *rng, uint8_t *buf,
                          Peernet__Node__V1__Envelope *env, uint8_t *payload) {
  peernet__node__v1__envelope__init(env);
  uint64_t pick = pn_test_rand(rng);
  env->to_actor = pick & 1 ? pn_test_rand(rng) : 0;
  env->to_incarnation = pick & 2 ? pn_test_rand(rng) : 0;
  env->from_actor = pick & 4 ? pn_test_rand(rng) % 1000 : 0;
  env->type = pick & 8 ? (uint32_t)pn_test_rand(rng) : 0;
  env->payload.len = pick & 16 ? pn_test_rand(rng) % 300 : 0;
  for (size_t i = 0; i < env->payload.len; i++) {
    payload[i] = (uint8_t)pn_test_rand(rng);
  }
  env->payload.data = payload;
  return peernet__node__v1__envelope__pack(env, buf);
}

/* Both readers on buf: the same verdict, and the same fields. */
static void compare(const uint8_t *buf, size_t len) {
  pn__envelope mine;
  bool ok = pn__envelope_read(buf, len, &mine);
  Peernet__Node__V1__Envelope *theirs =
      peernet__node__v1__envelope__unpack(NULL, len, buf);
  if (ok != (theirs != NULL)) {
    fprintf(stderr, "# verdicts differ (hand %d, protobuf-c %d) on", ok,
            theirs != NULL);
    for (size_t i = 0; i < len; i++) {
      fprintf(stderr, " %02x", buf[i]);
    }
    fprintf(stderr, "\n");
    fail();
  }
  if (!theirs) {
    return;
  }
  assert_int_equal(mine.to_actor, theirs->to_actor);
  assert_int_equal(mine.to_incarnation, theirs->to_incarnation);
  assert_int_equal(mine.from_actor, theirs->from_actor);
  assert_int_equal(mine.type, theirs->type);
  assert_int_equal(mine.len, theirs->payload.len);
  if (mine.len) {
    assert_memory_equal(mine.payload, theirs->payload.data, mine.len);
  }
  peernet__node__v1__envelope__free_unpacked(theirs, NULL);
}

static void packed_envelopes_read_back(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() | 1;
  static uint8_t buf[BUF], payload[BUF];
  for (int i = 0; i < ROUNDS; i++) {
    Peernet__Node__V1__Envelope env;
    size_t len = pack_random(&rng, buf, &env, payload);
    pn__envelope e;
    assert_true(pn__envelope_read(buf, len, &e));
    assert_int_equal(e.to_actor, env.to_actor);
    assert_int_equal(e.type, env.type);
    assert_int_equal(e.len, env.payload.len);
    compare(buf, len);
  }
}

static void mutations_agree_with_protobuf_c(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() ^ 0x5EED;
  static uint8_t buf[BUF], payload[BUF];
  for (int i = 0; i < ROUNDS; i++) {
    Peernet__Node__V1__Envelope env;
    size_t len = pack_random(&rng, buf, &env, payload);
    for (int m = 0; m < MUTATIONS; m++) {
      uint64_t x = pn_test_rand(&rng);
      size_t at = len ? (size_t)(x >> 8) % len : 0;
      switch (x & 3) {
      case 0: /* flip a byte */
        if (len) {
          buf[at] ^= (uint8_t)(1u << ((x >> 4) & 7));
        }
        break;
      case 1: /* insert one */
        if (len + 1 < BUF) {
          memmove(buf + at + 1, buf + at, len - at);
          buf[at] = (uint8_t)(x >> 40);
          len++;
        }
        break;
      case 2: /* remove one */
        if (len) {
          memmove(buf + at, buf + at + 1, len - at - 1);
          len--;
        }
        break;
      default: /* cut */
        len = at;
        break;
      }
      compare(buf, len);
    }
  }
}

/* Hand-made edge cases: empty, an unknown field of each wire type, a
 * group, a known field of the wrong wire type, an overlong varint, length
 * prefixes of five bytes and of six (protobuf-c refuses the latter). */
static void edge_cases(void **state) {
  (void)state;
  static const uint8_t cases[][12] = {
      {0},
      {0x30, 0x05},       /* field 6 varint: skipped */
      {0x35, 1, 2, 3, 4}, /* field 6 fixed32 */
      {0x33},             /* field 6 start group */
      {0x08, 0x01},       /* field 1 as a varint: wrong type */
      {0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
      {0x2A, 0x05, 1, 2},                         /* payload cut short */
      {0x20, 0x80, 0x80, 0x80, 0x80, 0x10},       /* type above 32 bits */
      {0x4A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, /* a six-byte length */
      {0x4A, 0x80, 0x80, 0x80, 0x80, 0x00},       /* a five-byte one */
      {0x2A, 0x81, 0x80, 0x80, 0x80, 0x00, 'x'},  /* payload length 1 */
  };
  static const size_t lens[] = {0, 2, 5, 1, 2, 11, 4, 6, 7, 6, 7};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    compare(cases[i], lens[i]);
  }
}

/* Batches written by pn__batch_put are what protobuf-c packs for the same
 * Batch, byte for byte, and read back an envelope at a time; a Batch with
 * an unknown field between envelopes reads around it; one cut short, or
 * with a bad envelope inside, is refused as protobuf-c refuses it. */
static void batches_written_and_read(void **state) {
  (void)state;
  uint64_t rng = pn_test_seed() | 1;
  enum { MAX = 8 };
  static uint8_t mine[MAX * BUF], theirs[MAX * BUF], payload[MAX][BUF];
  static uint8_t scratch[BUF];
  for (int round = 0; round < ROUNDS / 10; round++) {
    Peernet__Node__V1__Envelope envs[MAX], *ptrs[MAX];
    size_t n = pn_test_rand(&rng) % (MAX + 1);
    uint8_t *p = mine;
    for (size_t i = 0; i < n; i++) {
      (void)pack_random(&rng, scratch, &envs[i], payload[i]);
      ptrs[i] = &envs[i];
      pn__envelope e = {.to_actor = envs[i].to_actor,
                        .to_incarnation = envs[i].to_incarnation,
                        .from_actor = envs[i].from_actor,
                        .type = envs[i].type,
                        .payload = envs[i].payload.data,
                        .len = envs[i].payload.len};
      uint8_t *q = pn__batch_put(p, &e);
      assert_int_equal(q - p, pn__batch_entry_size(&e));
      p = q;
    }
    Peernet__Node__V1__Batch b = PEERNET__NODE__V1__BATCH__INIT;
    b.n_envelopes = n;
    b.envelopes = ptrs;
    size_t len = peernet__node__v1__batch__pack(&b, theirs);
    assert_int_equal(len, (size_t)(p - mine));
    assert_memory_equal(mine, theirs, len);
    const uint8_t *cur = mine;
    pn__envelope e;
    bool ok = true;
    size_t got = 0;
    while (pn__batch_next(&cur, p, &e, &ok)) {
      assert_int_equal(e.to_actor, envs[got].to_actor);
      assert_int_equal(e.len, envs[got].payload.len);
      got++;
    }
    assert_true(ok);
    assert_int_equal(got, n);
  }
  /* field 2 (varint 5) between two empty envelopes: skipped */
  const uint8_t unknown[] = {0x0A, 0x00, 0x10, 0x05, 0x0A, 0x00};
  const uint8_t *cur = unknown;
  pn__envelope e;
  bool ok = true;
  int got = 0;
  while (pn__batch_next(&cur, unknown + sizeof unknown, &e, &ok)) {
    got++;
  }
  assert_true(ok);
  assert_int_equal(got, 2);
  /* cut inside the second envelope; a bad wire type for field 1 */
  const uint8_t cut[] = {0x0A, 0x00, 0x0A, 0x09, 0x09, 0x01};
  const uint8_t wrong[] = {0x08, 0x01};
  const uint8_t *bad[] = {cut, wrong};
  size_t lens[] = {sizeof cut, sizeof wrong};
  for (int i = 0; i < 2; i++) {
    cur = bad[i];
    while (pn__batch_next(&cur, bad[i] + lens[i], &e, &ok)) {
    }
    assert_false(ok);
    assert_null(peernet__node__v1__batch__unpack(NULL, lens[i], bad[i]));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(packed_envelopes_read_back),
      cmocka_unit_test(mutations_agree_with_protobuf_c),
      cmocka_unit_test(edge_cases),
      cmocka_unit_test(batches_written_and_read),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
