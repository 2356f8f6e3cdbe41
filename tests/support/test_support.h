/* Shared helpers for the cmocka tests: seeds, latches, deadlines and the
 * end-of-test leak check. */
#ifndef PN_TEST_SUPPORT_H
#define PN_TEST_SUPPORT_H

#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "peernet/peernet.h"
#include "tests/support/seed.h"

/* A countdown latch: actors count down from any thread; the test thread
 * waits with a deadline. */
typedef struct pn_test_latch {
  pthread_mutex_t lock;
  pthread_cond_t cv;
  uint64_t remaining;
} pn_test_latch;

void pn_test_latch_init(pn_test_latch *l, uint64_t count);
void pn_test_latch_fini(pn_test_latch *l);
void pn_test_latch_add(pn_test_latch *l, uint64_t count);
void pn_test_latch_count_down(pn_test_latch *l);
/* true when the latch reached zero before timeout_ms. */
bool pn_test_latch_wait(pn_test_latch *l, uint64_t timeout_ms);

/* Creates a runtime with the given worker count (0 = cores) or fails the
 * test. */
pn_runtime *pn_test_runtime(uint32_t workers);

/* Spawns an actor (home -1: any worker) and returns the caller's handle,
 * or fails the test. */
pn_actor *pn_test_spawn(pn_runtime *rt, const char *name, pn_handler handler,
                        void *state, int32_t home);

/* Destroys the runtime and fails the test unless everything (actors,
 * handles, timers, envelopes) was freed. */
void pn_test_runtime_end(pn_runtime *rt);

/* Runs the group once per I/O backend this machine allows, storing the
 * backend in *backend before each: epoll always, io_uring unless it is
 * refused (an older kernel, a container's seccomp profile), in which case
 * its group is reported as skipped, loudly. PEERNET_IO=epoll or
 * PEERNET_IO=uring runs that one group only (so ctest can give each
 * backend its own entry). Returns the failures. */
int pn_test_run_on_backends(const struct CMUnitTest *tests, size_t n,
                            pn_io_backend *backend);

/* True when text is one well-formed JSON value (RFC 8259). */
bool pn_test_json_valid(const char *text);

/* Asserts a call returned the expected code, printing names on failure. */
#define PN_ASSERT_ERR(expected, call)                                          \
  do {                                                                         \
    pn_err pn_got_ = (call);                                                   \
    if (pn_got_ != (expected)) {                                               \
      fail_msg("%s returned %s, expected %s", #call, pn_err_name(pn_got_),     \
               pn_err_name(expected));                                         \
    }                                                                          \
  } while (0)

#define PN_ASSERT_OK(call) PN_ASSERT_ERR(PN_OK, call)

#endif
