#!/usr/bin/env bash
# A change's cost, measured the way these noisy machines allow: two builds
# of peernet-bench (before and after) run alternately in one run, every
# benchmark ROUNDS times, with ENet's throughput alongside as the anchor
# that neither build touches; prints every JSON line, then the medians and
# the after/before ratios.
#
#   tests/bench/run-before-after.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR [ROUNDS]
set -euo pipefail
before=$1/tests/bench/peernet-bench
after=$2/tests/bench/peernet-bench
rounds=${3:-3}
for b in "$before" "$after"; do
  [ -x "$b" ] || { echo "missing $b (build first)" >&2; exit 1; }
done

out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { # tag, bench args...
  local tag=$1
  shift
  "$@" 2>/dev/null | sed "s/^{/{\"build\":\"$tag\",/" | tee -a "$out" || true
}
for ((r = 1; r <= rounds; r++)); do
  for args in "actor-pingpong" "actor-fanin" "actor-spawn" \
              "throughput --kind ordered --size 64" \
              "throughput --kind ordered --size 16384" \
              "rtt --kind reliable" "peers --count 2000"; do
    # shellcheck disable=SC2086
    run before "$before" $args
    # shellcheck disable=SC2086
    run after "$after" $args
  done
  run anchor "$after" enet-throughput --size 64
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
keys = ["msgs_per_s", "mbytes_per_s", "rtt_p50_us", "actors_per_s",
        "bytes_per_peer_pair", "idle_cpu_percent"]
groups = {}
for r in rows:
    name = r.get("bench", "?")
    if "size" in r:
        name += f" {r['size']} B"
    for k in keys:
        if k in r:
            groups.setdefault((name, k), {}).setdefault(r["build"], []).append(r[k])
print()
print(f"{'benchmark':<34}{'metric':<22}{'before':>14}{'after':>14}{'after/before':>14}")
for (name, k), by in sorted(groups.items()):
    b = statistics.median(by["before"]) if "before" in by else None
    a = statistics.median(by["after"]) if "after" in by else None
    if "anchor" in by:
        print(f"{name:<34}{k:<22}{'':>14}{statistics.median(by['anchor']):>14.4g}   (anchor)")
        continue
    ratio = f"{a / b:.3f}" if a is not None and b else "-"
    fb = f"{b:.4g}" if b is not None else "-"
    fa = f"{a:.4g}" if a is not None else "-"
    print(f"{name:<34}{k:<22}{fb:>14}{fa:>14}{ratio:>14}")
PY
