/* Long-term keys and their text form: see net.h. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "peernet/net.h"
#include "runtime/err_os.h"

pn_err pn_key_pair(uint8_t public_out[PN_KEY_BYTES],
                   uint8_t secret_out[PN_KEY_BYTES]) {
  if (!public_out || !secret_out || sodium_init() < 0) {
    return PN_EINVAL;
  }
  randombytes_buf(secret_out, PN_KEY_BYTES);
  return crypto_scalarmult_base(public_out, secret_out) == 0 ? PN_OK
                                                             : PN_EINVAL;
}

pn_err pn_key_public(const uint8_t secret[PN_KEY_BYTES],
                     uint8_t public_out[PN_KEY_BYTES]) {
  if (!secret || !public_out || sodium_init() < 0) {
    return PN_EINVAL;
  }
  return crypto_scalarmult_base(public_out, secret) == 0 ? PN_OK : PN_EINVAL;
}

pn_err pn_key_to_text(const uint8_t key[PN_KEY_BYTES],
                      char text_out[PN_KEY_TEXT_BYTES]) {
  if (!key || !text_out || sodium_init() < 0) {
    return PN_EINVAL;
  }
  sodium_bin2base64(text_out, PN_KEY_TEXT_BYTES, key, PN_KEY_BYTES,
                    sodium_base64_VARIANT_ORIGINAL);
  return PN_OK;
}

pn_err pn_key_from_text(const char *text, uint8_t key_out[PN_KEY_BYTES]) {
  if (!text || !key_out || sodium_init() < 0) {
    return PN_EINVAL;
  }
  uint8_t key[PN_KEY_BYTES];
  size_t len = 0;
  const char *end = NULL;
  /* Trailing white space (a file's newline) is allowed, nothing else. */
  if (sodium_base642bin(key, sizeof key, text, strlen(text), NULL, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != PN_KEY_BYTES) {
    return PN_EINVAL;
  }
  for (; *end; end++) {
    if (*end != '\n' && *end != '\r' && *end != ' ' && *end != '\t') {
      return PN_EINVAL;
    }
  }
  memcpy(key_out, key, PN_KEY_BYTES);
  sodium_memzero(key, sizeof key);
  return PN_OK;
}

pn_err pn_key_load(const char *path, uint8_t key_out[PN_KEY_BYTES]) {
  if (!path || !key_out) {
    return PN_EINVAL;
  }
  FILE *f = fopen(path, "re");
  if (!f) {
    return pn__err_os(errno);
  }
  char text[128];
  size_t n = fread(text, 1, sizeof text - 1, f);
  pn_err err = ferror(f) ? pn__err_os(EIO) : PN_OK;
  fclose(f);
  if (err == PN_OK && n == sizeof text - 1) {
    err = PN_ERANGE;
  }
  if (err != PN_OK) {
    return err;
  }
  text[n] = '\0';
  err = pn_key_from_text(text, key_out);
  sodium_memzero(text, sizeof text);
  return err;
}
