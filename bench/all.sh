#!/usr/bin/env bash
# bench/all.sh: every figure of BENCHMARKS.md in one command (as root, on an
# otherwise idle machine; about 40 minutes on 2 cores):
#   1. criterion benches of the pure parts (canonicalisation, side, tuple
#      maps, counters, sock_diag/procnet parsers, port filters; the engine's
#      join and delta apply)
#   2. bench/collector.sh: collector, snapshot and the peers (ss -Htn,
#      ss -tnp, lsof) at 1,000 to 500,000 sockets
#   3. bench/sim.sh: the reconciler fed by halfopen-sim at 10 x 1,000,
#      100 x 10,000 and 1,000 x 10,000 hosts x connections, then a 50,000-orphan
#      incident at 1,000 hosts
# Output: $OUT (default bench/results/all-<date>): criterion.txt,
# collector/{results.txt,summary.md}, sim.jsonl (one JSON object per run).
# Environment: OUT, SKIP (words among "criterion collector sim" to skip),
# and whatever bench/collector.sh and bench/sim.sh read.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results/all-$(date +%Y%m%d-%H%M%S)}
SKIP=${SKIP:-}
mkdir -p "$OUT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
skip() { [[ " $SKIP " == *" $1 "* ]]; }

{
  echo "nproc=$(nproc) kernel=$(uname -r) git=$(git describe --always --dirty 2>/dev/null || echo none)"
  echo "date=$(date -Is) load=$(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

if ! skip criterion; then
  echo "== criterion (pure parts)" >&2
  for b in "halfopen-core core" "halfopen-sockets parse" "halfopen-engine engine"; do
    set -- $b
    cargo bench -q -p "$1" --bench "$2" -- --warm-up-time 1 --measurement-time 3 2>&1 \
      | grep -vE '^(Benchmarking|Found|Performance|Change|No change|  [0-9]+ \(|$)' | grep -v '%' | tee -a "$OUT/criterion.txt"
  done
fi

if ! skip collector; then
  echo "== collector and snapshot against ss/lsof" >&2
  REAL_SIZES=${REAL_SIZES:-"1000 10000 100000 200000 500000"} OUT="$OUT/collector" bench/collector.sh
fi

if ! skip sim; then
  echo "== reconciler fed by halfopen-sim" >&2
  cargo build --release -q -p halfopen-cli -p halfopen-sim
  sim() { NO_BUILD=1 CARGO_TARGET_DIR=$CARGO_TARGET_DIR bench/sim.sh "$@" | tee -a "$OUT/sim.jsonl"; }
  # hosts sockets churn/s orphans interval duration [-- halfopen-sim flags]
  SERVER_ONLY=10 sim 10 1000 100 10 5s 30s
  SERVER_ONLY=100 sim 100 10000 1000 100 5s 60s
  SERVER_ONLY=1000 sim 1000 10000 1000 1000 5s 60s
  # the big incident: 50,000 client-only at once, confirmed within two intervals?
  sim 1000 10000 0 50000 5s 60s -- --stop-when-found
fi
echo "results in $OUT" >&2
