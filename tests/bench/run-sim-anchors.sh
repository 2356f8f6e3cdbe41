#!/usr/bin/env bash
# PHOLD on PeerNet's simulation engine (peernet-bench phold: 1 worker, 2
# workers, and 2 processes of 1 worker over nodes on loopback) side by side with ROSS (https://github.com/ROSS-org/ROSS, Time
# Warp over MPI), the discrete-event simulation anchor: the phold model with 1024 LPs per
# PE, lookahead 1, one start event per LP, end time 2000, on 1 PE
# (sequential and optimistic) and 2 PEs (conservative and optimistic),
# alternating, every one ROUNDS times; prints one JSON line per
# configuration: the committed ("Net Events Processed") events and the
# median of ROSS's "Event Rate (events/sec)", which is committed events
# over the slowest PE's scheduler-loop wall time (setup excluded).
#
# ROSS is not packaged in Debian and is never vendored here: build it
# outside the tree (see need_ross below). When its phold is missing this
# prints how to build it and a "skipped" JSON line, and exits 0.
#
#   tests/bench/run-sim-anchors.sh [ROSS_BUILD_DIR] [ROUNDS] [--remote R]
#                                  [--mean M] [--peernet BUILD_DIR]
#
# --peernet BUILD_DIR (default build/release when it has peernet-bench):
#   PeerNet's runs alternate with ROSS's, with the same workload: ROSS's
#   --mean M is the whole increment, PeerNet's --mean the exponential part
#   alone, so PeerNet runs with --mean M-1 (lookahead 1). One JSON line
#   per configuration ("impl":"peernet"), then a line of ratios.
# ROSS_BUILD_DIR defaults to $ROSS_BUILD, else /work/anchors/ross-build.
# --remote R: the chance (0..1) that an event goes to an LP drawn uniformly
#   from ALL LPs of all PEs (the sender itself and its own PE included), so
#   the share that crosses PEs is R*(P-1)/P; default 0.1.
# --mean M: phold's --mean, the mean of the whole timestamp increment,
#   lookahead included: phold draws lookahead + Exp(M - lookahead). With
#   the default M=1 and lookahead 1 every increment is exactly 1.0 (all
#   LPs step in lockstep on integer times); M=2 gives 1 + Exp(1).
set -euo pipefail
build=${ROSS_BUILD:-/work/anchors/ross-build}
rounds=3
remote=0.1
mean=1
pos=()
pn_build=build/release
while [ $# -gt 0 ]; do
  case $1 in
    --peernet) pn_build=${2:?--peernet needs a value}; shift 2 ;;
    --remote) remote=${2:?--remote needs a value}; shift 2 ;;
    --remote=*) remote=${1#*=}; shift ;;
    --mean) mean=${2:?--mean needs a value}; shift 2 ;;
    --mean=*) mean=${1#*=}; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) pos+=("$1"); shift ;;
  esac
done
[ ${#pos[@]} -ge 1 ] && build=${pos[0]}
[ ${#pos[@]} -ge 2 ] && rounds=${pos[1]}
python3 -c "import sys; r, m = float(sys.argv[1]), float(sys.argv[2]);
sys.exit(not (0 <= r <= 1 and m >= 1))" "$remote" "$mean" ||
  { echo "--remote must be in [0,1] and --mean >= 1 (the lookahead)" >&2; exit 2; }

nlp=1024
lookahead=1
end=2000
# ROSS's own tests run optimistic phold with this much extra event memory;
# without it 2-PE optimistic runs stop with "Out of events in GVT".
extramem=100000

skip() {
  printf '{"bench":"ross-phold","impl":"ross","skipped":"%s"}\n' "$1"
  exit 0
}
need_ross() {
  cat >&2 <<EOF
ROSS's phold is not built at $build/models/phold/phold.
Build it outside this repository (never inside it), for instance:
  # Debian: apt-get install libopenmpi-dev openmpi-bin cmake
  git clone https://github.com/ROSS-org/ROSS /work/anchors/ross-src
  cmake -S /work/anchors/ross-src -B /work/anchors/ross-build \\
        -DROSS_BUILD_MODELS=ON -DROSS_BUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release
  cmake --build /work/anchors/ross-build -j1 --target phold
then run this again (or pass the build dir / set ROSS_BUILD).
EOF
  skip "ROSS phold not built at $build (see stderr for how to build it)"
}
phold=$build/models/phold/phold
[ -x "$phold" ] || phold=$build/bin/phold
[ -x "$phold" ] || need_ross
phold=$(cd "$(dirname "$phold")" && pwd)/phold
command -v mpirun >/dev/null ||
  skip "mpirun not found (apt-get install openmpi-bin)"
mpi_flags=(--oversubscribe)
[ "$(id -u)" = 0 ] && mpi_flags+=(--allow-run-as-root)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pn=$pn_build/tests/bench/peernet-bench
[ -x "$pn" ] || { echo "note: $pn not built: ROSS alone" >&2; pn=; }
pn_mean=$(python3 -c "import sys; print(float(sys.argv[1]) - 1)" "$mean")
configs=("1 1" "1 3" "2 2" "2 3")  # PEs, --synch
for ((r = 1; r <= rounds; r++)); do
  for wp in "1 1" "2 1" "1 2"; do  # workers, processes
    [ -n "$pn" ] || break
    read -r w procs <<<"$wp"
    "$pn" phold --workers "$w" --processes "$procs" --lps-per-worker $nlp \
      --remote "$remote" --lookahead $lookahead --mean "$pn_mean" \
      --start-events 1 --end $end 2>/dev/null >>"$out/peernet.jsonl" ||
      echo "peernet phold workers=$w processes=$procs round $r failed" >&2
  done
  for c in "${configs[@]}"; do
    read -r pes synch <<<"$c"
    log=$out/p$pes-s$synch-r$r.log
    # In $out: ROSS writes ross.csv and ross_all_lp_stats/ into its cwd.
    (cd "$out" && timeout 60 mpirun "${mpi_flags[@]}" -np "$pes" "$phold" \
      --synch="$synch" --nlp=$nlp --remote="$remote" --lookahead=$lookahead \
      --mean="$mean" --start-events=1 --end=$end --extramem=$extramem) \
      >"$log" 2>&1 ||
      echo "ross-phold pes=$pes synch=$synch round $r failed: $(tail -n 3 "$log")" >&2
  done
done

python3 - "$out" "$rounds" "$remote" "$mean" "$nlp" "$lookahead" "$end" \
  "${configs[@]}" <<'PY'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
remote, mean, nlp, lookahead, end = map(float, sys.argv[3:8])
names = {1: "sequential", 2: "conservative", 3: "optimistic"}
best = {}
def stat(text, label):
    m = re.search(r"^\s*" + re.escape(label) + r"\s+([-0-9.]+)", text, re.M)
    return float(m.group(1)) if m else None
for c in sys.argv[8:]:
    pes, synch = map(int, c.split())
    runs = []
    for r in range(1, rounds + 1):
        try:
            t = open(f"{out}/p{pes}-s{synch}-r{r}.log").read()
        except OSError:
            continue
        ev, rate = stat(t, "Net Events Processed"), stat(t, "Event Rate (events/sec)")
        if ev is not None and rate is not None:
            runs.append((ev, rate, stat(t, "Events Rolled Back") or 0,
                         stat(t, ": Running Time =")))
    row = {"bench": "ross-phold", "impl": "ross", "pes": pes,
           "synch": names[synch], "lps_per_pe": int(nlp), "remote": remote,
           "lookahead": lookahead, "mean": mean, "end": int(end)}
    if not runs:
        row["error"] = "no run finished (see stderr)"
    else:
        row.update({
            "events": int(statistics.median(x[0] for x in runs)),
            "events_per_s": round(statistics.median(x[1] for x in runs), 1),
            "rolled_back": int(statistics.median(x[2] for x in runs)),
            "run_s": round(statistics.median(x[3] or 0 for x in runs), 4),
            "rounds": len(runs),
            "events_per_s_all": [round(x[1], 1) for x in runs]})
    print(json.dumps(row, separators=(",", ":")), flush=True)
    best[pes] = max(best.get(pes, 0), row.get("events_per_s", 0))
pn = {}
try:
    for line in open(f"{out}/peernet.jsonl"):
        d = json.loads(line)
        pn.setdefault((d["workers"], d["processes"]), []).append(d)
except OSError:
    pass
for (w, procs), rows in sorted(pn.items()):
    rate = statistics.median(d["events_per_s"] for d in rows)
    print(json.dumps({"bench": "phold", "impl": "peernet", "workers": w,
                      "processes": procs, "lps_per_worker": int(nlp),
                      "remote": remote, "lookahead": lookahead,
                      "mean": mean - lookahead, "end": int(end),
                      "events": rows[0]["events"],
                      "digest": rows[0]["digest"],
                      "events_per_s": round(rate, 1), "rounds": len(rows),
                      "events_per_s_all": [d["events_per_s"] for d in rows]},
                     separators=(",", ":")), flush=True)
    pes = w * procs
    if best.get(pes):
        print(f"# PeerNet {w} worker(s) x {procs} process(es) "
              f"{rate / 1e6:.2f} M events/s, ROSS best on {pes} PE(s) "
              f"{best[pes] / 1e6:.2f} M: {rate / best[pes]:.2f}x", flush=True)
PY
