#!/usr/bin/env bash
# bench/netns.sh: one collector covering many network namespaces, against
# `ss -tn` run in each of them (issue 13's performance figure, BENCHMARKS.md).
#
# NS namespaces (default 50), each holding CONNS loopback connections with
# both ends held (default 1000: 2,000 ESTABLISHED sockets), made by
# `halfopen-sockbench hold`; a reconciler and the collector in one more
# namespace (the "node"), the collector covering the node and the NS
# namespaces by name (`--netns self,NAME...`, interval 1 s). In one run:
#   collector   its CPU time (utime+stime, /proc/PID/stat) over SECS seconds
#               once every namespace reports, divided by the intervals
#               (reports of all hosts / hosts); its threads and VmHWM
#   ss -tn      one run in each namespace (`nsenter --net=/run/netns/NAME ss
#               -tn`: nsenter execs ss, no `ip netns exec` remount), CPU time
#               of each from wait4, median of REPS rounds, summed over the
#               namespaces (halfopen-sockbench time)
# and the ratio collector / sum(ss). RESULT lines go to $OUT/results.txt.
# Needs root. Everything it starts is stopped and every namespace deleted on
# exit, also on failure or Ctrl-C.
#
# Every dump of one namespace walks the kernel's TCP hash, which all
# namespaces share by default: its cost grows with every socket of the
# machine, for the collector and for ss alike. CHILD_EHASH=N gives each of
# the NS namespaces a hash of its own (net.ipv4.tcp_child_ehash_entries=N set
# in the node namespace, the namespaces created from there; kernel >= 6.1).
#
# Environment: NS (50), CONNS (1000), SECS (20), REPS (5), CHILD_EHASH
# (unset: shared hash), OUT (bench/results/netns-<date>), CARGO_TARGET_DIR
# (default /work/target-bench).
set -euo pipefail

cd "$(dirname "$0")/.."
NS=${NS:-50}
CONNS=${CONNS:-1000}
SECS=${SECS:-20}
REPS=${REPS:-5}
OUT=${OUT:-bench/results/netns-$(date +%Y%m%d-%H%M%S)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-bench}
PREFIX=hob-netns-$$
NODE=$PREFIX-node
RECON_PORT=7098
CHILD_EHASH=${CHILD_EHASH:-}

[ "$(id -u)" = 0 ] || { echo "netns.sh: needs root (ip netns)" >&2; exit 1; }
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: >"$RESULTS"

PIDS=()
stop() { # pid: SIGTERM, then SIGKILL after 10 s
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
teardown() {
    local p ns left
    for p in "${PIDS[@]}"; do stop "$p"; done
    for ns in $(ip netns list | awk '{print $1}' | grep "^$PREFIX-" || true); do
        left=$(ip netns pids "$ns" || true)
        [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
        ip netns del "$ns" || true
    done
}
trap teardown EXIT
trap 'exit 130' INT TERM

echo "== build (release) into $CARGO_TARGET_DIR"
timeout 1800 cargo build --release -p halfopen-cli -p halfopen-sockets --bins
BIN=$CARGO_TARGET_DIR/release
HO=$BIN/halfopen
SB=$BIN/halfopen-sockbench
note() { echo "$*" | tee -a "$RESULTS"; }
note "MACHINE nproc=$(nproc) kernel=$(uname -r) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')\" git=$(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty) date=$(date -Is)"
note "MACHINE tcp_sockets_elsewhere=$(awk '/^TCP:/{print $3 + $7}' /proc/net/sockstat) namespaces_elsewhere=$(ip netns list | wc -l)"

echo "== $NS namespaces x $CONNS connections ($((2 * CONNS)) sockets each)"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
add_ns() { ip netns add "$1"; }
if [ -n "$CHILD_EHASH" ]; then
    ip netns exec "$NODE" sysctl -qw net.ipv4.tcp_child_ehash_entries="$CHILD_EHASH"
    # nsenter (no mount namespace of its own): the name is bound in /run/netns for all
    add_ns() { nsenter --net=/run/netns/"$NODE" ip netns add "$1"; }
fi
names=()
for i in $(seq "$NS"); do
    ns=$PREFIX-n$i
    add_ns "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" "$SB" hold --conns "$CONNS" >"$OUT/hold-$i.log" 2>&1 &
    PIDS+=($!)
    names+=("$ns")
done
for i in $(seq "$NS"); do
    for _ in $(seq 600); do # at most 60 s each
        grep -q '^RESULT hold' "$OUT/hold-$i.log" && break
        kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null || { echo "hold $i died:" >&2; cat "$OUT/hold-$i.log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^RESULT hold' "$OUT/hold-$i.log" || { echo "hold $i not ready" >&2; exit 1; }
done
note "RESULT netns held namespaces=$NS child_ehash=${CHILD_EHASH:-shared} ehash_of_one=$(ip netns exec "${names[0]}" sysctl -n net.ipv4.tcp_ehash_entries) sockets_each=$((2 * CONNS)) tcp_inuse_total=$(for n in "${names[@]}"; do ip netns exec "$n" awk '/^TCP:/{print $3}' /proc/net/sockstat; done | awk '{s+=$1} END {print s}')"

echo "== collector covering the node and the $NS namespaces"
ip netns exec "$NODE" "$HO" --log warn reconciler --listen 127.0.0.1:$RECON_PORT --no-db >"$OUT/reconciler.log" 2>&1 &
PIDS+=($!)
sleep 1
list=self,$(IFS=,; echo "${names[*]}")
HALFOPEN_LOG=warn,halfopen_collector::session=debug ip netns exec "$NODE" "$HO" collector \
    --reconciler http://127.0.0.1:$RECON_PORT --interval 1s --host-id bench \
    --netns "$list" --netns-rescan 5s >"$OUT/collector.log" 2>&1 &
COLLECTOR=$!
PIDS+=($COLLECTOR)
hosts=$((NS + 1))
fresh() { ip netns exec "$NODE" "$HO" hosts --reconciler http://127.0.0.1:$RECON_PORT --json |
    python3 -c 'import json,sys; print(sum(1 for h in json.load(sys.stdin) if not h["stale"] and h["last_report"]))'; }
for _ in $(seq 120); do
    [ "$(fresh)" -ge "$hosts" ] && break
    sleep 0.5
done
[ "$(fresh)" -ge "$hosts" ] || { echo "not every namespace reports: $(fresh)/$hosts" >&2; exit 1; }
sleep 3 # past the full tables: steady state
reports() { grep -c ' report' "$OUT/collector.log" || true; }
hz=$(getconf CLK_TCK)
t1=$(awk '{print $14 + $15}' /proc/"$COLLECTOR"/stat); r1=$(reports)
sleep "$SECS"
t2=$(awk '{print $14 + $15}' /proc/"$COLLECTOR"/stat); r2=$(reports)
threads=$(ls /proc/"$COLLECTOR"/task | wc -l)
hwm=$(awk '/VmHWM/{print $2}' /proc/"$COLLECTOR"/status)
collector_ms=$(awk -v t="$((t2 - t1))" -v r="$((r2 - r1))" -v h="$hosts" -v hz="$hz" \
    'BEGIN { n = r / h; printf "%.1f", (n > 0 ? t * 1000 / hz / n : -1) }')
note "RESULT netns collector hosts=$hosts secs=$SECS reports=$((r2 - r1)) cpu_ms_total=$(((t2 - t1) * 1000 / hz)) cpu_ms_per_interval=$collector_ms threads=$threads peak_rss_kib=$hwm"
stop "$COLLECTOR"

echo "== ss -tn in each namespace, $REPS rounds"
args=()
for n in "${names[@]}"; do
    [ ${#args[@]} -eq 0 ] || args+=(":::")
    args+=(nsenter "--net=/run/netns/$n" ss -tn)
done
"$SB" time --reps "$REPS" -- "${args[@]}" >"$OUT/ss.txt"
ss_ms=$(awk '/^RESULT time/ { for (i = 1; i <= NF; i++) if ($i ~ /^cpu_ms=/) { split($i, a, "="); s += a[2] } } END { printf "%.1f", s }' "$OUT/ss.txt")
ss_one=$(awk '/^RESULT time/ { for (i = 1; i <= NF; i++) if ($i ~ /^cpu_ms=/) { split($i, a, "="); print a[2] } }' "$OUT/ss.txt" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
note "RESULT netns ss namespaces=$NS reps=$REPS cpu_ms_sum=$ss_ms cpu_ms_median_one=$ss_one"
note "RESULT netns ratio collector_per_interval/ss_sum=$(awk -v c="$collector_ms" -v s="$ss_ms" 'BEGIN { printf "%.2f", c / s }') (limit 0.6)"
