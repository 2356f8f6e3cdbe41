/* The library's internal assert: for invariants, never for input. A false
 * invariant means memory may already be corrupt, so it reports the
 * expression, file and line on stderr and aborts, in every build (unlike
 * assert(3), NDEBUG does not remove it). Callers' mistakes get error codes
 * and network input is counted and dropped; neither comes here. */
#ifndef PN_RUNTIME_ASSERT_H
#define PN_RUNTIME_ASSERT_H

/* Never returns. Any thread. */
_Noreturn void pn__assert_fail(const char *expr, const char *file, int line);

#define PN_ASSERT(expr)                                                        \
  (__builtin_expect(!!(expr), 1) ? (void)0                                     \
                                 : pn__assert_fail(#expr, __FILE__, __LINE__))

#endif
