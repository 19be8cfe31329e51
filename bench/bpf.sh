#!/usr/bin/env bash
# bench/bpf.sh: the eBPF source beside the polling source, in one run (issue 14, BENCHMARKS.md
# "The eBPF source"). Needs root (network namespaces, BPF). Modes (MODES, default all four):
#
#   idle     CONNS connections held open on loopback in one namespace (2 sockets each, nothing
#            changing); `ss -Htn` timed there (sockbench time), then two real collectors side by
#            side, `--source bpf` and `--source netlink`, each reporting every second to its own
#            reconciler: CPU (utime+stime from /proc/PID/stat) over IDLE_SECS, per interval,
#            and as a ratio to one `ss -Htn` (the issue's target: <= 0.05x).
#   churn    a greeting server and `halfopen-lab churn` at RATE new connections/s in two
#            namespaces on a bridge; the same two collectors on the server's namespace: CPU as %
#            of one core over CHURN_SECS (target for bpf: <= 2%), the rate the churn reached.
#   exact    halfopen-bpf's test table_from_events_equals_the_kernel_under_churn at RATE for
#            CHURN_SECS (release): the table built from one dump plus the transitions equals a
#            sock_diag dump of both namespaces at the end (zero missed, zero extra), with its
#            loader's CPU.
#   witness  e2e_bpf's three witness tests (the seed lab: burst of 200 against a greeting server
#            with backlog 4; cookie path IPv4 and dual stack, normal path) WITNESS_REPS times:
#            each asserts that the witnessed drops are exactly the connections ss shows only on
#            the client.
#
# Every RESULT line goes to $OUT/results.txt. Everything started is stopped and every namespace
# deleted on exit (also on failure or Ctrl-C). Environment: MODES, CONNS (100000), IDLE_SECS
# (120: two of the eBPF source's periodic dumps), RATE (10000), CHURN_SECS (60), INTERVAL (1s: the
# collectors' --interval; the default of `halfopen collector` is 5s), WITNESS_REPS
# (3), OUT (bench/results/bpf-<date>), CARGO_TARGET_DIR (./target).
set -euo pipefail

cd "$(dirname "$0")/.."
MODES=${MODES:-"idle churn exact witness"}
CONNS=${CONNS:-100000}
IDLE_SECS=${IDLE_SECS:-120}
RATE=${RATE:-10000}
CHURN_SECS=${CHURN_SECS:-60}
WITNESS_REPS=${WITNESS_REPS:-3}
OUT=${OUT:-bench/results/bpf-$(date +%Y%m%d-%H%M%S)}
INTERVAL=${INTERVAL:-1s}
# The churn generator holds tens of thousands of sockets: lift the descriptor limit (root may
# raise the hard limit up to fs.nr_open); with 20,000 it stalled at ~7,900 connections/s.
ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
P=hobpf-$$
NSES=()
PIDS=()

[ "$(id -u)" = 0 ] || { echo "bpf.sh: needs root (ip netns, BPF)" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"

stop() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
teardown() {
    local p n left
    for p in "${PIDS[@]}"; do stop "$p"; done
    PIDS=()
    for n in "${NSES[@]}"; do
        # anything still running in our namespaces was started by us
        left=$(ip netns pids "$n" 2>/dev/null || true)
        [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
    done
    sleep 0.3
    for n in "${NSES[@]}"; do ip netns del "$n" 2>/dev/null || true; done
    NSES=()
}
trap teardown EXIT
trap 'exit 130' INT TERM

note() { echo "$*" | tee -a "$RESULTS"; }
newns() { ip netns add "$1"; NSES+=("$1"); ip -n "$1" link set lo up; }
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
HZ=$(getconf CLK_TCK)

echo "== build (release) into $CARGO_TARGET_DIR"
timeout 1800 cargo build --release -p halfopen-cli --bin halfopen -p halfopen-sockets --bin halfopen-sockbench \
    -p halfopen-lab --bin halfopen-lab
BIN=$CARGO_TARGET_DIR/release
HO=$BIN/halfopen
SB=$BIN/halfopen-sockbench
LAB=$BIN/halfopen-lab
{
    echo "MACHINE nproc=$(nproc) kernel=$(uname -r) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\""
    echo "MACHINE git=$(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty) date=$(date -Is) load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
} | tee -a "$RESULTS"

# collectors NS: a reconciler (loopback, no database) and a collector per source in NS (its own
# namespace only, --netns self: the source is what is measured), both
# reporting every second; waits for 3 reports of each. Sets PID_bpf, PID_netlink, LOG_*.
collectors() {
    local ns=$1 port=7101 src
    for src in bpf netlink; do
        ip netns exec "$ns" timeout 3600 "$HO" --log warn reconciler --listen 127.0.0.1:$port --no-db \
            >"$OUT/reconciler-$src-$ns.log" 2>&1 &
        PIDS+=($!)
        port=$((port + 1))
    done
    sleep 1
    port=7101
    for src in bpf netlink; do
        ip netns exec "$ns" timeout 3600 "$HO" --log warn,halfopen_collector=debug collector \
            --reconciler http://127.0.0.1:$port --interval "$INTERVAL" --host-id "$src" --source "$src" --netns self \
            >"$OUT/collector-$src-$ns.log" 2>&1 &
        PIDS+=($!)
        port=$((port + 1))
    done
    LOG_bpf=$OUT/collector-bpf-$ns.log
    LOG_netlink=$OUT/collector-netlink-$ns.log
    for src in bpf netlink; do
        local log=$OUT/collector-$src-$ns.log
        for _ in $(seq 1200); do # at most 120 s: the first full table of a big host
            [ "$(grep -c ' report' "$log" || true)" -ge 3 ] && break
            sleep 0.1
        done
        [ "$(grep -c ' report' "$log" || true)" -ge 3 ] || { echo "bpf.sh: no reports from $src; see $log" >&2; exit 1; }
    done
    # the collector processes themselves (not `timeout` or `ip netns exec`)
    PID_bpf=$(pgrep -f "^$HO --log warn,halfopen_collector=debug collector .*--source bpf" | head -1)
    PID_netlink=$(pgrep -f "^$HO --log warn,halfopen_collector=debug collector .*--source netlink" | head -1)
}

idle() {
    local ns=$P-idle
    echo "== idle: $CONNS connections ($((CONNS * 2)) sockets) in $ns"
    newns "$ns"
    ip netns exec "$ns" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
    ip netns exec "$ns" timeout -s TERM 3600 "$SB" hold --conns "$CONNS" --port 5432 --timeout-secs 900 \
        >"$OUT/hold.out" 2>"$OUT/hold.err" &
    PIDS+=($!)
    for _ in $(seq 9000); do
        grep -q '^RESULT hold' "$OUT/hold.out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q '^RESULT hold' "$OUT/hold.out" || { echo "bpf.sh: could not hold the connections" >&2; cat "$OUT/hold.err" >&2; exit 1; }
    note "RESULT idle established=$(ip netns exec "$ns" ss -Htn state established | wc -l)"
    echo "-- ss -Htn"
    ip netns exec "$ns" "$SB" time --reps 5 --name "ss -Htn" -- ss -Htn | sed "s/^RESULT/RESULT idle/" | tee -a "$RESULTS"
    local ss_cpu ss_wall
    ss_cpu=$(grep '^RESULT idle time name="ss -Htn"' "$RESULTS" | tail -1 | sed 's/.* cpu_ms=\([0-9.]*\).*/\1/')
    ss_wall=$(grep '^RESULT idle time name="ss -Htn"' "$RESULTS" | tail -1 | sed 's/.* wall_ms=\([0-9.]*\).*/\1/')
    echo "-- collectors (bpf and netlink side by side), ${IDLE_SECS}s"
    collectors "$ns"
    local b0 n0 rb0 rn0 b1 n1 rb1 rn1
    b0=$(ticks "$PID_bpf"); n0=$(ticks "$PID_netlink")
    rb0=$(grep -c ' report' "$LOG_bpf"); rn0=$(grep -c ' report' "$LOG_netlink")
    sleep "$IDLE_SECS"
    b1=$(ticks "$PID_bpf"); n1=$(ticks "$PID_netlink")
    rb1=$(grep -c ' report' "$LOG_bpf"); rn1=$(grep -c ' report' "$LOG_netlink")
    local dumps
    dumps=$(grep -c 'full=true' "$LOG_bpf" || true)
    awk -v hz="$HZ" -v secs="$IDLE_SECS" -v ss="$ss_cpu" -v ssw="$ss_wall" -v bt="$((b1 - b0))" -v nt="$((n1 - n0))" \
        -v br="$((rb1 - rb0))" -v nr="$((rn1 - rn0))" -v dumps="$dumps" 'BEGIN {
        b = bt * 1000 / hz / br; n = nt * 1000 / hz / nr
        printf "RESULT idle source=bpf secs=%d intervals=%d cpu_ms_total=%.0f cpu_ms_per_interval=%.2f ratio_to_ss_cpu=%.4f ratio_to_ss_wall=%.4f full_reports_in_log=%d\n", secs, br, bt * 1000 / hz, b, b / ss, b / ssw, dumps
        printf "RESULT idle source=netlink secs=%d intervals=%d cpu_ms_total=%.0f cpu_ms_per_interval=%.1f ratio_to_ss_cpu=%.3f ratio_to_ss_wall=%.3f\n", secs, nr, nt * 1000 / hz, n, n / ss, n / ssw
        printf "RESULT idle ss_cpu_ms=%.1f ss_wall_ms=%.1f bpf_vs_netlink=%.4f\n", ss, ssw, b / n
    }' | tee -a "$RESULTS"
    teardown
}

churn() {
    local s=$P-s c=$P-c sw=$P-sw i=0 n
    echo "== churn: $RATE new connections/s for ${CHURN_SECS}s"
    for n in $sw $s $c; do newns "$n"; done
    ip -n $sw link add br0 type bridge
    ip -n $sw link set br0 up
    for n in $s $c; do
        i=$((i + 1))
        ip -n $sw link add p$i type veth peer name eth0 netns $n
        ip -n $sw link set p$i master br0
        ip -n $sw link set p$i up
        ip -n $n addr add 198.18.41.$i/24 dev eth0
        ip -n $n link set eth0 up
    done
    ip netns exec $c sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"
    ip netns exec $s sysctl -qw net.core.somaxconn=65535
    ip netns exec $s timeout 3600 "$LAB" greet-server --listen 198.18.41.1:3306 --backlog 4096 >/dev/null 2>&1 &
    PIDS+=($!)
    collectors $s
    ip netns exec $c timeout 3600 "$LAB" churn --target 198.18.41.1:3306 --rate "$RATE/s" --max-life 200ms \
        --duration $((CHURN_SECS + 8))s >"$OUT/churn.out" 2>"$OUT/churn.err" &
    PIDS+=($!)
    sleep 3
    local b0 n0 b1 n1 lost
    b0=$(ticks "$PID_bpf"); n0=$(ticks "$PID_netlink")
    sleep "$CHURN_SECS"
    b1=$(ticks "$PID_bpf"); n1=$(ticks "$PID_netlink")
    for _ in $(seq 600); do grep -q . "$OUT/churn.out" 2>/dev/null && break; sleep 0.1; done
    lost=$(grep -c 'the eBPF source took a dump' "$LOG_bpf" || true)
    awk -v hz="$HZ" -v secs="$CHURN_SECS" -v bt="$((b1 - b0))" -v nt="$((n1 - n0))" -v lost="$lost" 'BEGIN {
        printf "RESULT churn source=bpf secs=%d cpu_pct_of_one_core=%.2f dumps_forced_by_loss=%d\n", secs, bt / hz / secs * 100, lost
        printf "RESULT churn source=netlink secs=%d cpu_pct_of_one_core=%.2f\n", secs, nt / hz / secs * 100
    }' | tee -a "$RESULTS"
    note "RESULT churn asked=$RATE/s load=\"$(cut -d' ' -f1-3 /proc/loadavg)\" summary=\"$(tr '\n' ' ' <"$OUT/churn.out")\""
    teardown
}

exact() {
    echo "== exact: table from events vs sock_diag dump, $RATE/s for ${CHURN_SECS}s"
    HALFOPEN_BPF_CHURN_RATE=$RATE HALFOPEN_BPF_CHURN_SECS=$CHURN_SECS CI=true timeout 1800 \
        cargo test --release -p halfopen-bpf --features bpf --test transitions \
        table_from_events_equals_the_kernel_under_churn -- --nocapture >"$OUT/exact.log" 2>&1 &&
        ok=pass || ok=FAIL
    note "RESULT exact test=$ok $(grep -m1 '^churn: .*transitions applied' "$OUT/exact.log" | tr -d '"')"
    grep -m3 'panicked\|mismatches,\|did not follow' "$OUT/exact.log" | sed 's/^/    /' | tee -a "$RESULTS" || true
}

witness() {
    echo "== witness: e2e_bpf witness tests, $WITNESS_REPS runs"
    for r in $(seq "$WITNESS_REPS"); do
        CI=true timeout 1800 cargo test --release -p halfopen-cli --test e2e_bpf the_witness_names -- \
            --nocapture --test-threads 1 >"$OUT/witness-$r.log" 2>&1 && ok=pass || ok=FAIL
        note "RESULT witness run=$r tests=$ok $(grep -h 'unwitnessed client-only\|each witnessed\|witness paths' "$OUT/witness-$r.log" | sed 's/^test [^ ]* \.\.\. //' | tr '\n' ';')"
        grep -m3 'panicked\|witnessed .* vs client-only' "$OUT/witness-$r.log" | sed 's/^/    /' | tee -a "$RESULTS" || true
    done
}

for m in $MODES; do "$m"; done
echo "results: $RESULTS"
