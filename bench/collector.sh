#!/usr/bin/env bash
# bench/collector.sh: the collector-side measurements of BENCHMARKS.md
# (issue "Cheap on a busy DB host").
#
# For each size (ESTABLISHED sockets; N sockets = N/2 loopback connections
# with both ends held), in a network namespace of its own (hob-<pid>):
#   ss -Htn, ss -tnp, lsof -iTCP -n -P   the peers (wall, CPU, peak RSS)
#   halfopen snapshot --json             full attribution (wall, CPU, peak RSS)
#   halfopen-sockbench collector-cost    the collector kernel worker's work per
#                                        interval, replicated (CPU, phases, RSS)
#   halfopen-sockbench scan-cost         the parts alone (dump, scans, walk)
#   real collector + reconciler          CPU per interval from /proc/PID/stat,
#                                        VmHWM (sizes in $REAL_SIZES)
# Every RESULT line goes to $OUT/results.txt; a markdown summary to
# $OUT/summary.md. Needs root (ip netns). Everything it starts is stopped and
# the namespace deleted on exit, also on failure or Ctrl-C.
#
# Environment:
#   SIZES        sockets per run        default "1000 10000 100000 200000 500000"
#   REPS         repetitions (median)   default 5 (3 for ss -tnp and lsof)
#   SLOW_MAX     largest size for ss -tnp and lsof   default 200000
#   REAL_SIZES   sizes for the real collector run    default "200000"
#   REAL_SECS    seconds the real collector is measured over   default 20
#   PORT         the listening port of the held connections    default 5432
#   OUT          output directory       default bench/results/collector-<date>
#   CARGO_TARGET_DIR                    default /work/target-bench
#   ALT_HO       another `halfopen` binary (e.g. built from a branch with a change
#                applied) whose snapshot and real collector are measured too,
#                beside the same peers; its rows are marked "(alt)"
set -euo pipefail

cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000 10000 100000 200000 500000"}
REPS=${REPS:-5}
SLOW_MAX=${SLOW_MAX:-200000}
REAL_SIZES=${REAL_SIZES:-"200000"}
REAL_SECS=${REAL_SECS:-20}
PORT=${PORT:-5432}
OUT=${OUT:-bench/results/collector-$(date +%Y%m%d-%H%M%S)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
NS=hob-$$
RECON_PORT=7099

[ "$(id -u)" = 0 ] || { echo "collector.sh: needs root (ip netns)" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"

HOLDER=""
COLLECTOR=""
RECONCILER=""
# Background jobs are started as `ip netns exec NS timeout ... &` (no shell
# function, no subshell), so $! is the process itself: ip execs timeout, and
# timeout passes SIGTERM on to the program it runs.
stop() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
teardown() { # everything of this size, then the namespace
    stop "$COLLECTOR"; COLLECTOR=""
    stop "$RECONCILER"; RECONCILER=""
    stop "$HOLDER"; HOLDER=""
    if ip netns list | grep -qw "$NS"; then
        # anything still running in our namespace was started by us
        local left
        left=$(ip netns pids "$NS" || true)
        if [ -n "$left" ]; then
            kill -TERM $left 2>/dev/null || true
            for _ in $(seq 100); do [ -z "$(ip netns pids "$NS")" ] && break; sleep 0.1; done
            left=$(ip netns pids "$NS" || true)
            [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
        fi
        ip netns del "$NS" || true
    fi
}
trap teardown EXIT
trap 'exit 130' INT TERM

echo "== build (release) into $CARGO_TARGET_DIR"
timeout 1800 cargo build --release -p halfopen-cli -p halfopen-sockets
BIN=$CARGO_TARGET_DIR/release
HO=$BIN/halfopen
SB=$BIN/halfopen-sockbench

nsx() { ip netns exec "$NS" "$@"; }
note() { echo "$*" | tee -a "$RESULTS"; }

{
    echo "MACHINE nproc=$(nproc) kernel=$(uname -r) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\" mem_gib=$(free -g | awk '/Mem:/{print $2}')"
    echo "MACHINE git=$(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty) date=$(date -Is)"
    echo "MACHINE ss=\"$(ss -V 2>&1 | head -1)\" lsof=\"$(lsof -v 2>&1 | awk '/revision/{print $2; exit}')\""
} | tee -a "$RESULTS"

# real_collector BIN LABEL: `halfopen reconciler` and `halfopen collector
# --interval 1s` in the namespace; after 3 reports, the collector's CPU time
# (utime+stime, /proc/PID/stat) over $REAL_SECS divided by the reports made
# meanwhile, and its VmHWM at the end.
real_collector() {
    local bin=$1 label=$2 log=$OUT/$2-$size.log
    echo "-- $label ($bin), ${REAL_SECS}s"
    ip netns exec "$NS" timeout 900 "$bin" --log warn reconciler --listen 127.0.0.1:$RECON_PORT --no-db \
        >"$OUT/reconciler-$label-$size.log" 2>&1 &
    RECONCILER=$!
    sleep 1
    HALFOPEN_LOG=warn,halfopen_collector=debug ip netns exec "$NS" timeout 900 "$bin" collector \
        --reconciler http://127.0.0.1:$RECON_PORT --interval 1s --host-id bench --netns self >"$log" 2>&1 &
    COLLECTOR=$!
    local p t1 r1 t2 r2 hwm threads
    reports() { grep -c ' report' "$log" || true; }
    for _ in $(seq 900); do # the full report and two deltas, at most 90 s
        [ "$(reports)" -ge 3 ] && break
        sleep 0.1
    done
    # the collector process itself (not `timeout` or `ip netns exec`)
    p=$(pgrep -f "^$bin collector" | head -1)
    if [ -z "$p" ] || [ "$(reports)" -lt 3 ]; then
        note "RESULT size=$size $label failed=\"no reports; see $log\""
    else
        t1=$(awk '{print $14 + $15}' /proc/"$p"/stat); r1=$(reports)
        sleep "$REAL_SECS"
        t2=$(awk '{print $14 + $15}' /proc/"$p"/stat); r2=$(reports)
        hwm=$(awk '/VmHWM/{print $2}' /proc/"$p"/status)
        threads=$(ls /proc/"$p"/task | wc -l)
        awk -v s="$size" -v l="$label" -v t="$((t2 - t1))" -v n="$((r2 - r1))" -v hz="$(getconf CLK_TCK)" \
            -v h="$hwm" -v th="$threads" -v secs="$REAL_SECS" \
            'BEGIN { printf "RESULT size=%s %s secs=%s intervals=%d cpu_ms_total=%.0f cpu_ms=%.1f peak_rss_kib=%s threads=%s\n", s, l, secs, n, t*1000/hz, (n>0 ? t*1000/hz/n : -1), h, th }' |
            tee -a "$RESULTS"
    fi
    stop "$COLLECTOR"; COLLECTOR=""
    stop "$RECONCILER"; RECONCILER=""
}

for size in $SIZES; do
    conns=$((size / 2))
    echo "== $size sockets ($conns connections) in $NS"
    ip netns add "$NS"
    ip -n "$NS" link set lo up
    nsx sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
    ip netns exec "$NS" timeout -s TERM 3600 "$SB" hold --conns "$conns" --port "$PORT" --timeout-secs 900 \
        >"$OUT/hold-$size.out" 2>"$OUT/hold-$size.err" &
    HOLDER=$!
    for _ in $(seq 9000); do # 900 s
        grep -q '^RESULT hold' "$OUT/hold-$size.out" 2>/dev/null && break
        kill -0 "$HOLDER" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^RESULT hold' "$OUT/hold-$size.out"; then
        echo "collector.sh: could not hold $size sockets:" >&2
        cat "$OUT/hold-$size.err" >&2
        note "SKIPPED size=$size reason=\"$(tail -1 "$OUT/hold-$size.err")\""
        teardown
        continue
    fi
    sed "s/^RESULT hold/RESULT size=$size hold/" "$OUT/hold-$size.out" >>"$RESULTS"
    seen=$(nsx ss -Htn state established | wc -l)
    note "RESULT size=$size established=$seen load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" host_tcp_socks=$(awk '$1=="TCP"{print $2}' /proc/slabinfo 2>/dev/null || echo ?)"

    run() { # name, reps, command...
        local name=$1 reps=$2; shift 2
        echo "-- $name"
        nsx timeout 1800 "$SB" time --reps "$reps" --name "$name" -- "$@" | sed "s/^RESULT/RESULT size=$size/" | tee -a "$RESULTS"
    }
    # interleaved: one run of each per round, so load changes hit all alike
    if [ -n "${ALT_HO:-}" ]; then
        run "ss -Htn|halfopen snapshot --json|halfopen snapshot --json (alt)" "$REPS" \
            ss -Htn ::: "$HO" snapshot --json ::: "$ALT_HO" snapshot --json
    else
        run "ss -Htn|halfopen snapshot --json" "$REPS" ss -Htn ::: "$HO" snapshot --json
    fi
    if [ "$size" -le "$SLOW_MAX" ]; then
        run "ss -tnp" 3 ss -tnp
        run "lsof -iTCP -n -P" 3 lsof -iTCP -n -P
    fi
    echo "-- collector-cost"
    nsx timeout 1800 "$SB" collector-cost --intervals 20 | sed "s/^RESULT/RESULT size=$size/" | tee -a "$RESULTS"
    echo "-- scan-cost"
    nsx timeout 1800 "$SB" scan-cost --reps "$REPS" | sed "s/^RESULT/RESULT size=$size/" | tee -a "$RESULTS"

    if [[ " $REAL_SIZES " == *" $size "* ]]; then
        real_collector "$HO" "real-collector"
        [ -z "${ALT_HO:-}" ] || real_collector "$ALT_HO" "real-collector-alt"
    fi
    teardown
done

bench/summarize.sh "$RESULTS" | tee "$OUT/summary.md"
echo "results: $RESULTS"
