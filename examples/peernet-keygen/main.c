/* peernet-keygen: long-term keys for PeerNet hosts, as ssh-keygen and wg
 * make them.
 *
 *   peernet-keygen NAME        NAME: the secret key (mode 0600), for a
 *                              server's --key; NAME.pub: its public key,
 *                              for a client's --server-key
 *   peernet-keygen --psk NAME  NAME: a pre-shared key (mode 0600), the
 *                              same file on both sides' --psk
 *
 * Keys are one line of base64 (pn_key_to_text). Existing files are never
 * overwritten. Exit: 0 written, 1 could not write, 2 usage. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <peernet/peernet.h>

static void usage(FILE *f) {
  fprintf(f, "usage: peernet-keygen NAME        (NAME and NAME.pub)\n"
             "       peernet-keygen --psk NAME  (a pre-shared key)\n");
}

/* Writes the key's text to a new file of that mode; false (and a message)
 * when the file exists or cannot be written. */
static bool write_key(const char *path, const uint8_t key[PN_KEY_BYTES],
                      mode_t mode) {
  char text[PN_KEY_TEXT_BYTES];
  if (pn_key_to_text(key, text) != PN_OK) {
    return false;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    fprintf(stderr, "peernet-keygen: %s: %s\n", path, strerror(errno));
    return false;
  }
  size_t len = strlen(text);
  text[len] = '\n';
  bool ok = write(fd, text, len + 1) == (ssize_t)(len + 1);
  ok = close(fd) == 0 && ok;
  if (!ok) {
    fprintf(stderr, "peernet-keygen: %s: write failed\n", path);
    unlink(path);
  }
  return ok;
}

int main(int argc, char **argv) {
  bool psk = argc == 3 && strcmp(argv[1], "--psk") == 0;
  if (argc == 2 &&
      (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
    usage(stdout);
    return 0;
  }
  if ((argc != 2 && !psk) || argv[argc - 1][0] == '-' ||
      argv[argc - 1][0] == '\0') {
    usage(stderr);
    return 2;
  }
  const char *name = argv[argc - 1];
  uint8_t secret[PN_KEY_BYTES], pub[PN_KEY_BYTES];
  if (pn_key_pair(pub, secret) != PN_OK) {
    fprintf(stderr, "peernet-keygen: no randomness\n");
    return 1;
  }
  if (psk) {
    /* Any 32 random bytes make a pre-shared key; the pair's secret half
     * is as good as any. */
    return write_key(name, secret, 0600) ? 0 : 1;
  }
  size_t n = strlen(name);
  char *pub_path = malloc(n + 5);
  if (!pub_path) {
    return 1;
  }
  memcpy(pub_path, name, n);
  memcpy(pub_path + n, ".pub", 5);
  int rc = 1;
  if (write_key(name, secret, 0600)) {
    if (write_key(pub_path, pub, 0644)) {
      char text[PN_KEY_TEXT_BYTES];
      (void)pn_key_to_text(pub, text);
      printf("%s\n", text);
      rc = 0;
    } else {
      unlink(name);
    }
  }
  free(pub_path);
  return rc;
}
