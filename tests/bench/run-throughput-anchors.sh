#!/usr/bin/env bash
# One-way throughput side by side in one run: PeerNet ordered messages and
# ENet 1.3 reliable packets of the same size, alternating so both see the
# same machine state; prints every JSON line, then the medians.
#
#   tests/bench/run-throughput-anchors.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build/release}
rounds=${2:-3}
pn=$build/tests/bench/peernet-bench
[ -x "$pn" ] || { echo "missing $pn (build first)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for size in 64 16384; do
    "$pn" throughput --kind ordered --size "$size" 2>/dev/null | tee -a "$out" || true
    "$pn" enet-throughput --size "$size" 2>/dev/null | tee -a "$out" || true
  done
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, size, key):
    v = [r[key] for r in rows if r.get("impl") == impl and r.get("size") == size]
    return statistics.median(v) if v else None
print()
print(f"{'one-way':<22}{'peernet':>14}{'enet':>14}{'ratio':>8}  target")
for size, key, unit, scale, target in [(64, "msgs_per_s", "M msg/s", 1e6, ">= 2x"),
                                       (16384, "mbytes_per_s", "MB/s", 1, ">= 1.5x")]:
    p, e = med("peernet", size, key), med("enet", size, key)
    if p is None or e is None:
        continue
    print(f"{str(size) + ' B':<22}{p / scale:>10.2f} {unit:<4}{e / scale:>9.2f}"
          f" {unit:<4}{p / e:>6.2f}x  {target}")
PY
