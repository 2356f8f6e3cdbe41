#!/usr/bin/env bash
# Reliable ping-pong round trips side by side in one run: PeerNet (both I/O
# backends), ENet 1.3 doing the same reliable ping-pong, and plain blocking
# UDP, alternating so all see the same machine state; prints every JSON
# line, then the medians of p50 and p99.
#
#   tests/bench/run-rtt-anchors.sh [BUILD_DIR] [ROUNDS] [SIZE] [KIND]
set -euo pipefail
build=${1:-build/release}
rounds=${2:-3}
size=${3:-64}
kind=${4:-reliable}
pn=$build/tests/bench/peernet-bench
[ -x "$pn" ] || { echo "missing $pn (build first)" >&2; exit 1; }

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for io in epoll uring; do
    "$pn" rtt --kind "$kind" --size "$size" --io "$io" 2>/dev/null |
      sed "s/\"impl\":\"peernet\"/\"impl\":\"peernet-$io\"/" | tee -a "$out" || true
  done
  "$pn" enet-rtt --size "$size" | tee -a "$out" || true
  "$pn" raw-rtt --size "$size" | tee -a "$out" || true
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def med(impl, key):
    v = [r[key] for r in rows if r.get("impl") == impl and key in r]
    return statistics.median(v) if v else None
print()
print(f"{'round trip':<34}{'p50 us':>10}{'p99 us':>10}")
for label, impl, pre in [("peernet (epoll)", "peernet-epoll", ""),
                         ("peernet (io_uring)", "peernet-uring", ""),
                         ("enet 1.3, service timeout 1 ms", "enet", ""),
                         ("enet 1.3, busy polling", "enet", "busy_"),
                         ("plain blocking UDP", "udp", "")]:
    p50, p99 = med(impl, pre + "rtt_p50_us"), med(impl, pre + "rtt_p99_us")
    if p50 is not None:
        print(f"{label:<34}{p50:>10.1f}{p99:>10.1f}")
PY
