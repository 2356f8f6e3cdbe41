#!/usr/bin/env bash
# Runs PeerNet's actor benchmarks side by side with the CAF 0.17 anchor in
# one run, alternating the two so both see the same machine state, and
# prints every JSON line followed by the median ratios.
#
#   tests/bench/run-anchors.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build/release}
rounds=${2:-3}
pn=$build/tests/bench/peernet-bench
caf=$build/tests/bench/caf/peernet-bench-caf
[ -x "$pn" ] || { echo "missing $pn (build first)" >&2; exit 1; }
have_caf=1
[ -x "$caf" ] || { echo "note: $caf not built (libcaf-dev missing?)" >&2; have_caf=0; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for sub in actor-pingpong actor-fanin actor-spawn; do
    "$pn" "$sub" | tee -a "$out"
    if [ "$have_caf" = 1 ]; then "$caf" "$sub" | tee -a "$out"; fi
  done
  "$pn" actor-memory | tee -a "$out"
  # The cost of observability, side by side: stats off, on (default), the
  # flight recorder on, and the per-actor histograms on.
  "$pn" actor-pingpong --stats off | sed 's/"impl":"peernet"/"impl":"peernet-stats-off"/' | tee -a "$out"
  trace=$(mktemp)
  PEERNET_TRACE=$trace "$pn" actor-pingpong 2>/dev/null |
    sed 's/"impl":"peernet"/"impl":"peernet-trace"/' | tee -a "$out"
  rm -f "$trace"
  "$pn" actor-pingpong --histograms on |
    sed 's/"impl":"peernet"/"impl":"peernet-histograms"/' | tee -a "$out"
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(bench, impl, key):
    v = [r[key] for r in rows if r["bench"] == bench and r["impl"] == impl]
    return statistics.median(v) if v else None
print()
print(f"{'benchmark':<16}{'peernet':>14}{'caf':>14}{'ratio':>8}  target")
for bench, key, target in [("actor-pingpong", "msgs_per_s", ">= 5x"),
                           ("actor-fanin", "msgs_per_s", ">= 2x"),
                           ("actor-spawn", "actors_per_s", ">= 5x")]:
    p, c = med(bench, "peernet", key), med(bench, "caf", key)
    ratio = f"{p / c:.2f}x" if p and c else "-"
    cs = f"{c / 1e6:.2f} M/s" if c else "-"
    print(f"{bench:<16}{p / 1e6:>10.2f} M/s{cs:>14}{ratio:>8}  {target}")
m = med("actor-memory", "peernet", "bytes_per_actor")
print(f"{'actor-memory':<16}{m:>10.1f} B/actor{'':>11}  <= 256 B")
on = med("actor-pingpong", "peernet", "msgs_per_s")
off = med("actor-pingpong", "peernet-stats-off", "msgs_per_s")
tr = med("actor-pingpong", "peernet-trace", "msgs_per_s")
if on and off:
    print(f"{'stats cost':<16}{100 * (1 - on / off):>10.1f} %{'':>13}  <= 3 %")
if tr and on:
    print(f"{'trace cost':<16}{100 * (1 - tr / on):>10.1f} %{'':>13}  <= 15 %")
hi = med("actor-pingpong", "peernet-histograms", "msgs_per_s")
if hi and on:
    print(f"{'histogram cost':<16}{100 * (1 - hi / on):>10.1f} %{'':>13}  (opt-in)")
PY
