/* PeerNet error codes: one table for the whole library.
 *
 * Every fallible public function returns a pn_err. PN_OK is zero, every
 * failure is negative. Operating-system failures keep their errno: such a
 * code is PN_EOS_BASE - errno, and pn_err_errno() recovers it.
 *
 * Threading: every function here is pure and may be called from any thread.
 * None of them blocks.
 */
#ifndef PEERNET_ERROR_H
#define PEERNET_ERROR_H

#include "peernet/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, text): the single source of the enum, the names and the
 * texts. A unit test checks that values are unique and every code has text. */
#define PN_ERRORS(X)                                                           \
  X(PN_OK, 0, "success")                                                       \
  X(PN_EINVAL, -1, "invalid argument")                                         \
  X(PN_ENOMEM, -2, "out of memory")                                            \
  X(PN_ECLOSED, -3, "the actor or runtime is stopped or closing")              \
  X(PN_EAGAIN, -4, "resource temporarily unavailable, try again")              \
  X(PN_ETIMEDOUT, -5, "timed out")                                             \
  X(PN_EBUSY, -6, "still in use")                                              \
  X(PN_ENOTSUP, -7, "not supported on this system or configuration")           \
  X(PN_ERANGE, -8, "value out of the allowed range")                           \
  X(PN_ENOENT, -9, "no such object")                                           \
  X(PN_EWRONGTHREAD, -10, "called from a thread that may not make this call")  \
  X(PN_EADDRINUSE, -11, "address already in use")                              \
  X(PN_EADDRNOTAVAIL, -12, "address not valid or not available here")          \
  X(PN_ENAMERESOLVE, -13, "host name could not be resolved")                   \
  X(PN_EMSGSIZE, -14, "datagram larger than allowed")                          \
  X(PN_EEXIST, -15, "name already taken")                                      \
  X(PN_EUNREACHABLE, -16, "no live link to that node")

typedef enum pn_err {
#define PN_ERR_ENUM_(name, value, text) name = value,
  PN_ERRORS(PN_ERR_ENUM_)
#undef PN_ERR_ENUM_
} pn_err;

/* Codes at or below PN_EOS_BASE wrap an errno: code = PN_EOS_BASE - errno. */
#define PN_EOS_BASE (-1000)

/* Returns a static, human-readable text for any code, including wrapped
 * errno values and unknown codes ("unknown error"). Never NULL. */
PN_API const char *pn_strerror(pn_err err);

/* Returns the enum's name ("PN_EINVAL"), "PN_EOS" for wrapped errno values,
 * or "PN_EUNKNOWN". Never NULL. */
PN_API const char *pn_err_name(pn_err err);

/* Returns the errno wrapped in err, or 0 when err does not wrap one. */
PN_API int pn_err_errno(pn_err err);

#ifdef __cplusplus
}
#endif

#endif
