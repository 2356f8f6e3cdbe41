/* The tests' model of the simulation engine (tests/sim/): each LP holds
 * a running hash and a count; an event carries a hop count and a value;
 * handling one folds the value into the LP's state and sends the event
 * on (to a random LP a third of the time, often with a delay of exactly
 * the lookahead, so ties happen), until its hops run out. Any difference
 * in the order of handling changes the digest. With `misuse`, LP 0 makes
 * bad calls in init and finish and keeps their codes. */
#ifndef PN_TESTS_SIM_TOKEN_MODEL_H
#define PN_TESTS_SIM_TOKEN_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "peernet/sim.h"

typedef struct token_model {
  uint32_t hops;
  bool misuse;
  pn_err got[8];
  /* Set once an event at or after `mark` was handled (0: never). */
  double mark;
  atomic_bool marked;
} token_model;

/* The model's handlers with `tm` as their user pointer, and a config of
 * 500 LPs, lookahead 1, end 300, events of the model's size. */
void token_model_setup(token_model *tm, pn_sim_model *m, pn_sim_config *c);

#endif
