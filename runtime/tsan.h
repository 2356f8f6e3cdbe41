/* PN__TSAN is defined when ThreadSanitizer instruments this build (GCC
 * defines __SANITIZE_THREAD__, clang has __has_feature). A few places pick
 * an equivalent that it can model. */
#ifndef PN_RUNTIME_TSAN_H
#define PN_RUNTIME_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define PN__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PN__TSAN 1
#endif
#endif

#endif
