#!/usr/bin/env bash
# PeerNet's nodes against Erlang/OTP distribution and CAF's caf::io in one
# run: peernet-bench remote-pingpong and remote-flood (two processes, one
# node each), the same two between two Erlang nodes on loopback
# (tests/bench/erlang/pnb_remote.erl, Debian's erlang-base) and between two
# CAF processes (peernet-bench-caf-remote), alternating, every one ROUNDS
# times; prints every JSON line, then the medians and PeerNet's ratios.
#
#   tests/bench/run-remote-anchors.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
build=${1:-build/release}
rounds=${2:-3}
here=$(cd "$(dirname "$0")" && pwd)
pn=$build/tests/bench/peernet-bench
[ -x "$pn" ] || { echo "missing $pn (build first)" >&2; exit 1; }
caf=$build/tests/bench/caf/peernet-bench-caf-remote
have_caf=1
[ -x "$caf" ] || { echo "note: $caf not built (libcaf-dev missing?)" >&2; have_caf=0; }
have_erl=1
command -v erlc >/dev/null && command -v erl >/dev/null || {
  echo "note: erl/erlc not found (erlang-base missing?): PeerNet alone" >&2
  have_erl=0
}

out=$(mktemp)
beams=$(mktemp -d)
trap 'rm -rf "$out" "$beams"' EXIT
if [ "$have_erl" = 1 ]; then
  erlc -o "$beams" "$here/erlang/pnb_remote.erl"
fi
host=$(hostname -s)
erlang_round() {
  local b="pnb_b_$$_$1" a="pnb_a_$$_$1"
  erl -sname "$b" -setcookie pnb -noshell -pa "$beams" -s pnb_remote serve &
  local pid=$!
  # The client retries its connection until the serving node is up.
  timeout 300 erl -sname "$a" -setcookie pnb -noshell -pa "$beams" -eval "
    Node = '$b@$host',
    Wait = fun W(0) -> halt(1);
               W(K) -> case net_adm:ping(Node) of pong -> ok;
                       pang -> timer:sleep(100), W(K - 1) end end,
    Wait(100),
    timer:sleep(200),
    pnb_remote:run(Node, 20000, 1000000)" -s init stop | tee -a "$out"
  wait "$pid" || true
}
for ((r = 1; r <= rounds; r++)); do
  "$pn" remote-pingpong 2>/dev/null | tee -a "$out"
  "$pn" remote-flood 2>/dev/null | tee -a "$out"
  if [ "$have_erl" = 1 ]; then erlang_round "$r"; fi
  if [ "$have_caf" = 1 ]; then
    "$caf" remote-pingpong 2>/dev/null | tee -a "$out"
    "$caf" remote-flood 2>/dev/null | tee -a "$out"
  fi
done

python3 - "$out" "$here" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from bench_report import load, median
rows = load(sys.argv[1])
print()
print(f"{'benchmark':18}{'metric':12}{'peernet':>10}{'erlang':>10}"
      f"{'vs erlang':>11}{'caf':>10}{'vs caf':>9}")
fmt = lambda v: "-" if v is None else f"{v:.4g}"
for bench, key, better in (("remote-pingpong", "rtt_p50_us", "lower"),
                           ("remote-pingpong", "rtt_p99_us", "lower"),
                           ("remote-flood", "msgs_per_s", "higher")):
    p = median(rows, bench, "peernet", key)
    cols = []
    for impl in ("erlang", "caf"):
        a = median(rows, bench, impl, key)
        ratio = "-"
        if p and a:
            ratio = f"{(a / p if better == 'lower' else p / a):.2f}x"
        cols += [fmt(a), ratio]
    print(f"{bench:18}{key:12}{fmt(p):>10}{cols[0]:>10}{cols[1]:>11}"
          f"{cols[2]:>10}{cols[3]:>9}")
print("(ratio: how many times better PeerNet is; below 1, worse)")
PY
