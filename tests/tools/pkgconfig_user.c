/* A program built against an installed PeerNet with nothing but
 * `pkg-config --cflags --libs peernet` (tests/tools/install_test.sh and
 * the outside-project build in scripts/quickstart.sh): it uses the runtime
 * and the network layer's keys, so both halves and their dependencies
 * must link. Prints "ok" and exits 0 when every call succeeded. */
#include <peernet/peernet.h>
#include <stdio.h>

static void quiet(pn_actor *self, void *state, const pn_msg *msg) {
  (void)self;
  (void)state;
  (void)msg;
}

int main(void) {
  pn_runtime_config rcfg = PN_RUNTIME_CONFIG_INIT;
  rcfg.workers = 1;
  pn_runtime *rt = NULL;
  if (pn_runtime_create(&rcfg, &rt) != PN_OK) {
    return 1;
  }
  pn_actor_config cfg = PN_ACTOR_CONFIG_INIT;
  cfg.name = "quiet";
  cfg.handler = quiet;
  pn_actor *a = NULL;
  pn_err err = pn_spawn(rt, &cfg, &a);
  if (err == PN_OK) {
    err = pn_send(a, 1, "x", 1);
    pn_actor_release(a);
  }
  uint8_t pub[PN_KEY_BYTES], sec[PN_KEY_BYTES];
  if (err == PN_OK) {
    err = pn_key_pair(pub, sec);
  }
  pn_err end = pn_runtime_destroy(rt);
  if (err != PN_OK || end != PN_OK) {
    fprintf(stderr, "pkgconfig_user: %s\n",
            pn_strerror(err != PN_OK ? err : end));
    return 1;
  }
  puts("ok");
  return 0;
}
