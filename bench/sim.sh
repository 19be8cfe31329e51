#!/usr/bin/env bash
# Fleet-scale benchmark: a real `halfopen reconciler` on loopback, fed by
# halfopen-sim playing HOSTS collectors over real gRPC.
#
# Usage: bench/sim.sh [HOSTS [SOCKETS [CHURN [ORPHANS [INTERVAL [DURATION]]]]]] [-- extra halfopen-sim flags]
#   or set them in the environment (arguments win):
#   HOSTS=1000 SOCKETS=10000 CHURN=1000 ORPHANS=1000 INTERVAL=5s DURATION=60s bench/sim.sh
# Other environment: SERVER_ONLY (planted server_only, default 0), PORT
# (default: a free one), RECONCILER_ARGS (extra `halfopen reconciler` flags),
# CARGO_TARGET_DIR (default target), NO_BUILD=1 uses the binaries as built,
# KEEP=1 keeps the logs directory.
#
# Prints the simulator's JSON merged with reconciler_peak_rss_bytes (VmHWM),
# reconciler_bytes_per_socket (peak RSS / socket records), from the
# reconciler's log the client_only confirmations and how long after planting
# the last one came (a second witness beside the paged ListOrphans polls), and
# bench_wall_s. Progress and the reconciler log's warnings go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

extra=()
pos=()
while (($#)); do
  if [[ $1 == -- ]]; then
    shift
    extra=("$@")
    break
  fi
  pos+=("$1")
  shift
done
HOSTS=${pos[0]:-${HOSTS:-10}}
SOCKETS=${pos[1]:-${SOCKETS:-1000}}
CHURN=${pos[2]:-${CHURN:-0}}
ORPHANS=${pos[3]:-${ORPHANS:-10}}
INTERVAL=${pos[4]:-${INTERVAL:-5s}}
DURATION=${pos[5]:-${DURATION:-30s}}
SERVER_ONLY=${SERVER_ONLY:-0}
TARGET=${CARGO_TARGET_DIR:-target}

command -v jq >/dev/null || { echo "bench/sim.sh needs jq" >&2; exit 1; }

if [[ ${NO_BUILD:-0} != 1 ]]; then
  echo "building (release) ..." >&2
  cargo build --release -q -p halfopen-cli -p halfopen-sim >&2
fi
BIN=$TARGET/release

free_port() {
  local p
  for p in $(seq 17077 17177); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  echo "no free port in 17077..17177" >&2
  exit 1
}
PORT=${PORT:-$(free_port)}

WORK=$(mktemp -d /tmp/halfopen-sim.XXXXXX)
RPID=
cleanup() {
  local rc=$?
  if [[ -n $RPID ]] && kill -0 "$RPID" 2>/dev/null; then
    kill "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
  fi
  if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then
    echo "logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s%3N)
# shellcheck disable=SC2086 # RECONCILER_ARGS is a list of flags
"$BIN/halfopen" reconciler --listen "127.0.0.1:$PORT" --no-db ${RECONCILER_ARGS:-} 2>"$WORK/reconciler.log" &
RPID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$RPID" 2>/dev/null || { cat "$WORK/reconciler.log" >&2; exit 1; }
  sleep 0.1
done
echo "reconciler pid $RPID on 127.0.0.1:$PORT; simulating $HOSTS hosts x $SOCKETS, churn $CHURN/s, $ORPHANS orphans, interval $INTERVAL, duration $DURATION" >&2

"$BIN/halfopen-sim" --reconciler "http://127.0.0.1:$PORT" \
  --hosts "$HOSTS" --sockets-per-host "$SOCKETS" --churn-per-sec "$CHURN" \
  --orphans "$ORPHANS" --server-only "$SERVER_ONLY" --interval "$INTERVAL" --duration "$DURATION" \
  --reconciler-pid "$RPID" --json "${extra[@]}" >"$WORK/sim.json"

kill -0 "$RPID" 2>/dev/null || { echo "the reconciler died during the run" >&2; tail -20 "$WORK/reconciler.log" >&2; exit 1; }
hwm_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$RPID/status")
end=$(date +%s%3N)
# The log, without colours. Confirmations are counted here too, independently
# of the simulator's ListOrphans polls.
sed 's/\x1b\[[0-9;]*m//g' "$WORK/reconciler.log" >"$WORK/reconciler.txt"
confirmed=$(grep -c 'finding confirmed kind="client_only"' "$WORK/reconciler.txt" || true)
last_ms=null
if ((confirmed > 0)); then
  last=$(grep 'finding confirmed kind="client_only"' "$WORK/reconciler.txt" | tail -1 | cut -d' ' -f1)
  last_ms=$(date -d "$last" +%s%3N)
fi
warnings=$(grep -v 'finding confirmed' "$WORK/reconciler.txt" | grep -c ' WARN \| ERROR ' || true)
echo "reconciler log: $(wc -l <"$WORK/reconciler.txt") lines, $confirmed client_only confirmations, $warnings other warnings/errors" >&2
grep -v 'finding confirmed' "$WORK/reconciler.txt" | grep ' WARN \| ERROR ' | tail -5 | cut -c1-300 >&2 || true

jq -c --argjson hwm "$((hwm_kb * 1024))" --argjson wall_ms "$((end - start))" \
  --argjson confirmed "$confirmed" --argjson last_ms "$last_ms" --argjson warnings "$warnings" \
  '. + {reconciler_peak_rss_bytes: $hwm,
        reconciler_bytes_per_socket: (if .sockets > 0 then ($hwm / .sockets | floor) else null end),
        reconciler_logged_client_only: $confirmed,
        reconciler_last_confirmed_after_plant_ms:
          (if $last_ms != null and .planted_at_unix_ms != null then $last_ms - .planted_at_unix_ms else null end),
        reconciler_log_warnings: $warnings,
        bench_wall_s: ($wall_ms / 100 | round / 10)}' "$WORK/sim.json"
