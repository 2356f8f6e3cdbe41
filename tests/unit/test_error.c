/* The error table: unique codes, text and names for each, errno wrapping. */
#include <errno.h>
#include <string.h>

#include "tests/support/test_support.h"

static const pn_err all_codes[] = {
#define PN_TEST_CODE_(name, value, text) name,
    PN_ERRORS(PN_TEST_CODE_)
#undef PN_TEST_CODE_
};

static void codes_are_unique_and_described(void **state) {
  (void)state;
  size_t n = sizeof all_codes / sizeof all_codes[0];
  assert_true(n >= 10);
  for (size_t i = 0; i < n; i++) {
    assert_true(all_codes[i] <= 0);
    assert_true(all_codes[i] > PN_EOS_BASE);
    for (size_t j = i + 1; j < n; j++) {
      assert_int_not_equal(all_codes[i], all_codes[j]);
    }
    const char *text = pn_strerror(all_codes[i]);
    assert_non_null(text);
    assert_true(strlen(text) > 3);
    assert_string_not_equal(text, "unknown error");
    const char *name = pn_err_name(all_codes[i]);
    assert_true(strncmp(name, "PN_", 3) == 0);
    assert_string_not_equal(name, "PN_EUNKNOWN");
    assert_int_equal(pn_err_errno(all_codes[i]), 0);
  }
  assert_int_equal(PN_OK, 0);
  assert_string_equal(pn_err_name(PN_EINVAL), "PN_EINVAL");
}

static void os_errors_keep_errno(void **state) {
  (void)state;
  pn_err e = (pn_err)(PN_EOS_BASE - EADDRINUSE);
  assert_int_equal(pn_err_errno(e), EADDRINUSE);
  assert_string_equal(pn_err_name(e), "PN_EOS");
  assert_string_equal(pn_strerror(e), strerror(EADDRINUSE));
}

static void unknown_codes_have_text(void **state) {
  (void)state;
  assert_string_equal(pn_strerror((pn_err)-500), "unknown error");
  assert_string_equal(pn_err_name((pn_err)-500), "PN_EUNKNOWN");
  assert_string_equal(pn_strerror((pn_err)7), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(codes_are_unique_and_described),
      cmocka_unit_test(os_errors_keep_errno),
      cmocka_unit_test(unknown_codes_have_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
