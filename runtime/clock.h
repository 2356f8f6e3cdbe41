/* Time sources for the runtime.
 *
 * pn__now_ns() is CLOCK_MONOTONIC (vDSO, no syscall): timers and idle time.
 * pn__ticks() is the cheapest monotonic counter the CPU has (the TSC on
 * x86-64, constant-rate on every CPU this targets); it times handler runs on
 * the hot path and is converted to nanoseconds only when stats are read.
 */
#ifndef PN_RUNTIME_CLOCK_H
#define PN_RUNTIME_CLOCK_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

static inline uint64_t pn__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t pn__ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
  return __rdtsc();
#else
  return pn__now_ns();
#endif
}

static inline void pn__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

#endif
