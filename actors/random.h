/* Random bytes for the handshake's nonces, connection ids and ephemeral
 * keys, without a system call each: libsodium's randombytes_buf() asks
 * the kernel (getrandom) on every call, about a microsecond here, and a
 * connection asked six or seven times. Each thread keeps a small buffer
 * filled by one randombytes_buf() call; bytes handed out are wiped from it
 * at once, and a forked child never reuses its parent's buffer.
 *
 * Threads: any thread; the buffer is the calling thread's own. Never
 * blocks (beyond what randombytes_buf() may at boot). */
#ifndef PN_ACTORS_RANDOM_H
#define PN_ACTORS_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* Fills out[0..len) with random bytes, as randombytes_buf() would. */
void pn__random_buf(void *out, size_t len);

/* A random 32-bit value, as randombytes_random() would. */
uint32_t pn__random_u32(void);

#endif
