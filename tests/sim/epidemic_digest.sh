#!/usr/bin/env bash
# The example's promise: the same epidemic, to the bit, on one process
# and across three on loopback (the digest every process prints), with
# its daily counts and its picture written.
#
#   tests/sim/epidemic_digest.sh PEERNET_EPIDEMIC OUT_DIR
set -euo pipefail
exe=$1
out=$2
rm -rf "$out"
mkdir -p "$out/one" "$out/three"
"$exe" --processes 1 --days 80 --out "$out/one" >"$out/one.log"
"$exe" --processes 3 --days 80 --out "$out/three" >"$out/three.log"
one=$(sed -n 's/^epi-0: digest //p' "$out/one.log")
three=$(sed -n 's/^epi-[0-9]*: digest //p' "$out/three.log" | sort -u)
echo "one process: $one; three processes: $(echo "$three" | tr '\n' ' ')"
[ -n "$one" ] && [ "$one" = "$three" ] || { cat "$out"/*.log; exit 1; }
[ "$(grep -c digest "$out/three.log")" = 3 ] || { echo "not every process printed its digest"; exit 1; }
for f in one/epidemic.csv one/epidemic.svg three/epidemic.csv three/epidemic.svg; do
  [ -s "$out/$f" ] || { echo "missing $out/$f"; exit 1; }
done
cmp "$out/one/epidemic.csv" "$out/three/epidemic.csv"
grep -q '^summary:' "$out/three.log"
