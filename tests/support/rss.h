/* The process's resident memory, for the tests and benchmarks that report
 * memory per actor or per peer. Header-only: peernet-bench is built
 * without the test support library. Any thread; reads /proc/self/statm. */
#ifndef PN_TEST_RSS_H
#define PN_TEST_RSS_H

#include <stdio.h>
#include <unistd.h>

/* Resident bytes, or -1 when /proc cannot be read. */
static inline long pn_rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (!f) {
    return -1;
  }
  long size = 0, resident = 0;
  int got = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  return got == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

#endif
