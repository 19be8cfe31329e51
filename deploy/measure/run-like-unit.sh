#!/bin/bash
# Runs a command with the sandbox of a halfopen unit: every [Service]
# setting of UNIT except how the service starts and restarts, passed to
# `systemd-run --pipe --wait` as properties. Needs a running systemd (PID 1).
#
#   deploy/measure/run-like-unit.sh deploy/halfopen-collector.service halfopen snapshot --json
#   deploy/measure/run-like-unit.sh UNIT -p AmbientCapabilities=CAP_SYS_ADMIN \
#       -p CapabilityBoundingSet=CAP_SYS_ADMIN CMD...   (extra properties first)
# An extra capability property replaces the unit's list (systemd-run does not
# merge them): give the whole set, e.g. "CAP_SYS_ADMIN CAP_DAC_READ_SEARCH
# CAP_SYS_PTRACE". An extra SystemCallFilter= adds to the unit's filter.
#
# Use it to check on a host that the collector, as its unit runs it, still
# names the processes behind sockets (every socket has a "pid") and reads
# the sysctls.
set -eu
UNIT=$1
shift
props=()
in_service=0
while IFS= read -r line; do
    case $line in
        \[Service\]) in_service=1; continue ;;
        \[*) in_service=0; continue ;;
    esac
    [ $in_service = 1 ] || continue
    case $line in
        '' | \#*) continue ;;
        ExecStart=* | ExecStop=* | Type=* | Restart=* | RestartSec=* | TimeoutStopSec=*) continue ;;
    esac
    props+=(-p "$line")
done <"$UNIT"
while [ "${1:-}" = -p ]; do
    props+=(-p "$2")
    shift 2
done
exec systemd-run --quiet --pipe --wait --collect "${props[@]}" -- "$@"
