/* The error table: enum values, names and texts all come from PN_ERRORS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peernet/error.h"
#include "runtime/assert.h"

const char *pn_strerror(pn_err err) {
  switch (err) {
#define PN_ERR_TEXT_(name, value, text)                                        \
  case name:                                                                   \
    return text;
    PN_ERRORS(PN_ERR_TEXT_)
#undef PN_ERR_TEXT_
  }
  if ((int)err <= PN_EOS_BASE) {
    /* strerror() texts are static for valid errno values on glibc; the
     * thread-safe variant would need a caller buffer this API does not have. */
    return strerror(pn_err_errno(err)); /* NOLINT(concurrency-mt-unsafe) */
  }
  return "unknown error";
}

const char *pn_err_name(pn_err err) {
  switch (err) {
#define PN_ERR_NAME_(name, value, text)                                        \
  case name:                                                                   \
    return #name;
    PN_ERRORS(PN_ERR_NAME_)
#undef PN_ERR_NAME_
  }
  if ((int)err <= PN_EOS_BASE) {
    return "PN_EOS";
  }
  return "PN_EUNKNOWN";
}

int pn_err_errno(pn_err err) {
  int code = (int)err;
  return code <= PN_EOS_BASE ? PN_EOS_BASE - code : 0;
}

/* --- internal invariants (runtime/assert.h) ------------------------------ */

_Noreturn void pn__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "peernet: invariant failed: %s (%s:%d)\n", expr, file, line);
  abort();
}
