/* Symbol visibility: the library is built with hidden visibility, and only
 * functions marked PN_API are exported. */
#ifndef PEERNET_EXPORT_H
#define PEERNET_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define PN_API __attribute__((visibility("default")))
#else
#define PN_API
#endif

#endif
