#!/bin/bash
# Measures which Linux capabilities each kind of read of the halfopen
# collector needs, by running the reads (and the real binary) as a non-root
# uid with exactly one capability set at a time (setpriv: inheritable,
# ambient and bounding sets all equal to the set), against sockets and
# processes owned by other users that this script starts itself.
#
#   sudo deploy/measure/measure-capabilities.sh [PATH/TO/halfopen]
#
# Prints one table per kind of read: a row per read and target, a column per
# capability set, each cell "ok" or the error. deploy/README.md has the
# results of a run and what follows from them.
#
# Everything it starts is on loopback (127.0.0.1, ports chosen at random)
# or in a network namespace named hocap-<pid>, and is removed on exit.
# Needs: root, setpriv and nsenter (util-linux), /usr/bin/python3,
# conntrack (conntrack-tools) for the conntrack rows, ip (iproute2).
set -u

BIN=${1:-target/debug/halfopen}
BIN=$(readlink -f "$BIN")
HERE=$(dirname "$(readlink -f "$0")")
PY=/usr/bin/python3
LABPROC=$HERE/labproc.py
BPFPROBE=$HERE/bpfprobe.py
CUID=${HALFOPEN_MEASURE_UID:-61234}   # the collector's uid here (no passwd entry needed)
OTHER=65534                           # another user (nobody)
TAG=hocap-$$
NS=$TAG
TMP=$(mktemp -d /tmp/$TAG.XXXX)
chmod 755 "$TMP"
PIDS=()

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ -x "$BIN" ] || { echo "no halfopen binary at $BIN (cargo build -p halfopen-cli)" >&2; exit 2; }
for t in setpriv nsenter ip "$PY"; do command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }; done

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Capability sets, as setpriv spells them ("" = none).
SETS=("" "dac_read_search" "sys_ptrace" "dac_read_search,sys_ptrace" "dac_override")
ALL_SETS=("${SETS[@]}")
set_label() { [ -z "$1" ] && echo none || echo "$1"; }

# as_collector CAPS CMD...: CMD as $CUID with exactly CAPS. With PROC_OPTS
# set, in a private mount namespace whose /proc is a new proc mount with those
# options (what systemd's ProtectProc= and ProcSubset= make).
PROC_OPTS=
as_collector() {
    local caps=$1 spec="-all"
    shift
    [ -n "$caps" ] && spec="-all,+${caps//,/,+}"
    local cmd=(setpriv --reuid="$CUID" --regid="$CUID" --clear-groups
        --inh-caps="$spec" --ambient-caps="$spec" --bounding-set="$spec" -- "$@")
    if [ -n "$PROC_OPTS" ]; then
        unshare --mount --propagation private -- sh -c 'mount -t proc -o "$0" proc /proc && exec "$@"' \
            "$PROC_OPTS" "${cmd[@]}"
    else
        "${cmd[@]}"
    fi
}

# cell CAPS CMD...: "ok", or the first line of the error (no exit codes in the table).
cell() {
    local caps=$1 out rc
    shift
    out=$(cd "$TMP" && as_collector "$caps" timeout 10 "$@" 2>&1 >/dev/null)
    rc=$?
    if [ $rc = 0 ]; then echo ok; else
        out=$(echo "$out" | head -1 | sed -E -e 's/.*(Permission denied|Operation not permitted|No such file or directory).*/\1/' \
            -e 's/.*must be root or get CAP_NET_ADMIN.*/Operation not permitted/')
        echo "${out:-exit $rc}"
    fi
}

header() {
    printf '\n## %s\n\n| %s |' "$1" "$2"
    for s in "${SETS[@]}"; do printf ' %s |' "$(set_label "$s")"; done
    printf '\n|---|'
    for _ in "${SETS[@]}"; do printf -- '---|'; done
    printf '\n'
}

row() { # row LABEL CMD... (run under every set)
    local label=$1
    shift
    printf '| %s |' "$label"
    for s in "${SETS[@]}"; do printf ' %s |' "$(cell "$s" "$@")"; done
    printf '\n'
}

free_port() { $PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# start_lab UID ARGS...: a labproc.py as UID (0 = root with all capabilities), waits for "ready".
start_lab() {
    local uid=$1 fifo
    shift
    fifo=$TMP/ready.$RANDOM$RANDOM
    mkfifo "$fifo"
    if [ "$uid" = 0 ]; then
        $PY "$LABPROC" "$@" >"$fifo" &
    else
        setpriv --reuid="$uid" --regid="$uid" --clear-groups --inh-caps=-all --ambient-caps=-all \
            --bounding-set=-all -- $PY "$LABPROC" "$@" >"$fifo" &
    fi
    PIDS+=($!)
    LAST=$!
    if ! timeout 10 head -1 "$fifo" | grep -q ready; then echo "lab process $* did not start" >&2; exit 1; fi
    rm -f "$fifo"
}

# socket_fd PID: an fd number of PID that is a socket (read as root).
socket_fd() {
    local f
    for f in /proc/"$1"/fd/*; do
        case $(readlink "$f") in socket:*) basename "$f"; return ;; esac
    done
}

# Targets: a server (listener + accepted socket) and its client, per kind of owner.
declare -A SRV PORT
start_target() { # start_target NAME UID [--nondumpable]
    local name=$1 uid=$2 p
    shift 2
    p=$(free_port)
    start_lab "$uid" server "$p" "$@"
    SRV[$name]=$LAST
    PORT[$name]=$p
    start_lab "$uid" client "$p"
    sleep 0.2
}
start_target other $OTHER
start_target nondumpable $OTHER --nondumpable
start_target root 0
start_target same "$CUID"

echo "# Capability measurements"
echo
echo "kernel $(uname -r), $(setpriv --version | head -1), binary $BIN"
echo "collector uid $CUID; targets: 'other' = uid $OTHER (dumpable), 'nondumpable' = uid $OTHER after"
echo "prctl(PR_SET_DUMPABLE, 0), 'root' = uid 0 with every capability, 'same' = uid $CUID"

header "Process attribution: /proc/PID of another process" "read (target)"
for t in other nondumpable root same; do
    pid=${SRV[$t]}
    fd=$(socket_fd "$pid")
    row "list /proc/PID/fd ($t)" ls "/proc/$pid/fd"
    row "readlink /proc/PID/fd/N ($t)" readlink -v "/proc/$pid/fd/$fd"
    row "read /proc/PID/maps ($t)" cat "/proc/$pid/maps"
    row "read comm, cmdline, status ($t)" cat "/proc/$pid/comm" "/proc/$pid/cmdline" "/proc/$pid/status"
    row "readlink /proc/PID/ns/net ($t)" readlink -v "/proc/$pid/ns/net"
done

# The real binary: does `halfopen snapshot` name the server process of each target?
snapshot_row() { # snapshot_row TARGET
    local t=$1
    printf '| %s (port %s) |' "$t" "${PORT[$t]}"
    for s in "${SETS[@]}"; do
        json=$(cd "$TMP" && as_collector "$s" timeout 30 "$BIN" snapshot --json 2>/dev/null)
        verdict=$(echo "$json" | $PY -c '
import json, sys
port, pid = sys.argv[1], int(sys.argv[2])
socks = [s for s in json.load(sys.stdin) if s["side"] == "server" and s["local"].endswith(":" + port)]
if not socks: print("socket not seen")
elif socks[0].get("pid") == pid: print("named")
else: print("seen, owner unknown")
' "${PORT[$t]}" "${SRV[$t]}" 2>&1 | tail -1)
        printf ' %s |' "$verdict"
    done
    printf '\n'
}
header "halfopen snapshot --json: owner of each target's accepted socket" "target"
for t in other nondumpable root same; do snapshot_row $t; done

# systemd's ProtectProc=invisible mounts /proc with hidepid=invisible,
# ProcSubset=pid with subset=pid: what the collector still sees under each.
for opts in hidepid=invisible subset=pid; do
    PROC_OPTS=$opts
    header "/proc mounted with $opts" "read (target)"
    for t in other root; do snapshot_row $t; done
    row "see /proc/PID (other)" ls -d "/proc/${SRV[other]}"
    row "read /proc/sys/net/core/somaxconn" cat /proc/sys/net/core/somaxconn
    row "read /proc/thread-self/net/netstat" cat /proc/thread-self/net/netstat
done
PROC_OPTS=

header "Host facts and sock_diag" "read"
row "sock_diag dump with tcp_info (snapshot --info)" "$BIN" snapshot --info --json
row "read /proc/thread-self/net/netstat and snmp" cat /proc/thread-self/net/netstat /proc/thread-self/net/snmp
row "read /proc/sys/net/core/somaxconn, ipv4/tcp_syncookies" cat /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_syncookies
row "read /proc/net/tcp (--proc-net)" cat /proc/net/tcp /proc/net/tcp6

# Network namespaces: a namespace with a process of another uid and one of root in it.
ip netns add "$NS" || exit 1
ip netns exec "$NS" setpriv --reuid=$OTHER --regid=$OTHER --clear-groups --inh-caps=-all \
    --bounding-set=-all -- sleep 600 &
PIDS+=($!)
NS_OTHER=$!
ip netns exec "$NS" sleep 600 &
PIDS+=($!)
NS_ROOT=$!
sleep 0.3
SETS=("" "sys_admin" "sys_ptrace" "sys_admin,sys_ptrace" "sys_admin,dac_read_search")
header "Network namespaces (setns)" "read"
row "list /run/netns" ls /run/netns
row "setns via /run/netns/NAME" nsenter --net=/run/netns/"$NS" true
row "setns via /proc/PID/ns/net (uid $OTHER)" nsenter --net=/proc/$NS_OTHER/ns/net true
row "setns via /proc/PID/ns/net (root)" nsenter --net=/proc/$NS_ROOT/ns/net true

SETS=("" "net_admin" "sys_admin")
header "Conntrack (ctnetlink)" "read"
if command -v conntrack >/dev/null; then
    row "dump (conntrack -L)" conntrack -L
    # -E runs until killed: timeout's 124 means it subscribed; print it as ok.
    printf '| events (conntrack -E, 1 s) |'
    for s in "${SETS[@]}"; do
        out=$(as_collector "$s" timeout 1 conntrack -E 2>&1 >/dev/null)
        rc=$?
        if [ $rc = 124 ]; then printf ' ok |'; else printf ' %s |' "$(echo "$out" | head -1 | sed -E 's/.*(Operation not permitted).*/\1/')"; fi
    done
    printf '\n'
else
    echo "(conntrack not installed: apt-get install conntrack)"
fi

SETS=("" "bpf" "perfmon" "bpf,perfmon" "sys_admin")
header "eBPF (ring buffer, raw tracepoint program, attach)" "step"
for step in ringbuf_map_create raw_tracepoint_prog_load raw_tracepoint_attach; do
    printf '| %s |' "$step"
    for s in "${SETS[@]}"; do
        out=$(as_collector "$s" $PY "$BPFPROBE" 2>&1 | grep "^$step ")
        printf ' %s |' "$(echo "${out#"$step" }" | cut -d' ' -f1)"
    done
    printf '\n'
done

# Container names: files laid out with the owners and modes that the
# runtimes use (Docker: /var/lib/docker 0710, containers/ 0710, <id>/ 0710,
# config.v2.json 0600, all root; kubelet: /var/log/pods/* 0755).
mkdir -p "$TMP/docker/containers/abc" "$TMP/pods/ns_pod_uid/c"
echo '{"Name":"/web"}' >"$TMP/docker/containers/abc/config.v2.json"
chmod 0710 "$TMP/docker" "$TMP/docker/containers" "$TMP/docker/containers/abc"
chmod 0600 "$TMP/docker/containers/abc/config.v2.json"
chmod 0755 "$TMP/pods" "$TMP/pods/ns_pod_uid"
SETS=("" "dac_read_search" "dac_override")
header "Container names" "read"
row "read docker containers/ID/config.v2.json (0600 root)" cat "$TMP/docker/containers/abc/config.v2.json"
row "list /var/log/pods (0755 root)" ls "$TMP/pods" "$TMP/pods/ns_pod_uid"
