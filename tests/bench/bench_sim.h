/* peernet-bench phold (see bench_sim.c). */
#ifndef PN_BENCH_SIM_H
#define PN_BENCH_SIM_H

/* Parses phold's options (argv after the subcommand), runs it and prints
 * one JSON line. Returns 0, 1 when the run failed, 2 on bad options.
 * Main thread; blocks. */
int bench_phold(int argc, char **argv);

#endif
