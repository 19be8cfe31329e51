#!/usr/bin/env bash
# Cost of the BPF source, as % of one core of the loader process (utime+stime of the `watch`
# example, which loads the programs and polls every 10 ms):
#   churn: greet-server + `churn` at RATE new connections/s for SECONDS (default 10000/s, 60 s)
#   idle:  CONNS established connections held open (2 sockets each), nothing changing, SECONDS
# Runs in throwaway namespaces (198.18.40.0/24) behind a bridge, removed on exit. Needs root and
# release builds:
#   cargo build --release -p halfopen-bpf --features bpf --example watch -p halfopen-lab --bin halfopen-lab
# Usage: bench/cost.sh churn|idle [RATE|CONNS] [SECONDS]
set -euo pipefail
MODE=${1:?churn or idle}
ARG=${2:-}
SECONDS_=${3:-60}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
WATCH=$ROOT/target/release/examples/watch
LAB=$ROOT/target/release/halfopen-lab
P=hobpfcost-$$
SW=$P-sw; S=$P-s; C=$P-c
cleanup() {
  for n in $S $C $SW; do ip netns pids $n 2>/dev/null | xargs -r kill -9 2>/dev/null || true; done
  sleep 0.3
  for n in $S $C $SW; do ip netns del $n 2>/dev/null || true; done
}
trap cleanup EXIT
for n in $SW $S $C; do ip netns add $n; ip -n $n link set lo up; done
ip -n $SW link add br0 type bridge; ip -n $SW link set br0 up
i=0
for n in $S $C; do
  i=$((i+1))
  ip -n $SW link add p$i type veth peer name eth0 netns $n
  ip -n $SW link set p$i master br0; ip -n $SW link set p$i up
  ip -n $n addr add 198.18.40.$i/24 dev eth0; ip -n $n link set eth0 up
done
ip netns exec $C sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"

case $MODE in
churn)
  RATE=${ARG:-10000}
  ip netns exec $S $LAB greet-server --listen 198.18.40.1:3306 --backlog 4096 >/dev/null 2>&1 &
  sleep 0.5
  ip netns exec $C $LAB churn --target 198.18.40.1:3306 --rate "$RATE/s" --max-life 200ms \
    --duration $((SECONDS_ + 10))s >/tmp/$P-churn.out 2>/tmp/$P-churn.err &
  sleep 3
  ;;
idle)
  CONNS=${ARG:-100000}
  PER=10000
  N=$((CONNS / PER))
  for k in $(seq 1 $N); do
    ip netns exec $S python3 - $((4000 + k)) $PER <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("198.18.40.1", port)); l.listen(4096)
held = [l.accept()[0] for _ in range(n)]
time.sleep(100000)
PY
  done
  sleep 1
  for k in $(seq 1 $N); do
    ip netns exec $C python3 - $((4000 + k)) $PER <<'PY' &
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.socket(); s.connect(("198.18.40.1", port)); held.append(s)
time.sleep(100000)
PY
  done
  for t in $(seq 1 120); do
    est=$(ip netns exec $C ss -Htn state established | wc -l)
    [ "$est" -ge "$CONNS" ] && break
    sleep 1
  done
  echo "established on the client: $est (and as many on the server)"
  sleep 2
  ;;
*) echo "churn or idle" >&2; exit 2 ;;
esac

"$WATCH" --quiet --seconds "$SECONDS_" | tail -1
