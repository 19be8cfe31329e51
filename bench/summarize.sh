#!/usr/bin/env bash
# bench/summarize.sh RESULTS: the markdown tables of BENCHMARKS.md from the
# RESULT lines that bench/collector.sh wrote (one table of peers per size,
# the targets as ratios, the phases of the collector's interval, and the
# growth from the smallest to the largest size).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 bench/results/.../results.txt" >&2; exit 2; }
awk '
function kv(line, arr,    s, k, v, i) {
    # key=value and key="quoted value" pairs into arr
    delete arr
    s = line
    while (match(s, /[A-Za-z0-9_]+=("[^"]*"|[^ ]*)/)) {
        k = substr(s, RSTART, RLENGTH)
        i = index(k, "=")
        v = substr(k, i + 1)
        gsub(/^"|"$/, "", v)
        arr[substr(k, 1, i - 1)] = v
        s = substr(s, RSTART + RLENGTH)
    }
}
function f(x, d) { return (x == "" ? "–" : sprintf("%." d "f", x)) }
function mib(k) { return (k == "" ? "–" : sprintf("%.1f", k / 1024)) }
/^MACHINE/ { sub(/^MACHINE /, ""); machine = machine "- " $0 "\n"; next }
/^SKIPPED/ { skipped = skipped "- " $0 "\n"; next }
/^RESULT size=/ {
    kv($0, a)
    s = a["size"]
    if (!(s in seen)) { seen[s] = 1; order[++n] = s }
    if ($3 == "time") {
        nm = a["name"]
        wall[s, nm] = a["wall_ms"]; cpu[s, nm] = a["cpu_ms"]; rss[s, nm] = a["peak_rss_kib"]
        wmin[s, nm] = a["wall_min_ms"]; wmax[s, nm] = a["wall_max_ms"]; names[nm] = 1
    } else if ($3 == "collector-cost") {
        cc_cpu[s] = a["cpu_ms"]; cc_wall[s] = a["wall_ms"]; cc_first[s] = a["first_cpu_ms"]; cc_rss[s] = a["peak_rss_kib"]
        ph = ""
        np = split("listeners scan sides owners_libwrap counters_sysctls greeting_dump map diff drop_report", pn, " ")
        for (q = 1; q <= np; q++) if (("cpu_" pn[q] "_ms") in a) ph = ph sprintf(" %s %s ms;", pn[q], a["cpu_" pn[q] "_ms"])
        phases[s] = ph
    } else if ($3 == "scan-cost") {
        sc[s, a["what"]] = a["cpu_ms"]; scw[s, a["what"]] = a["wall_ms"]
    } else if ($3 == "real-collector") {
        rc_cpu[s] = a["cpu_ms"]; rc_rss[s] = a["peak_rss_kib"]; rc_n[s] = a["intervals"]
    } else if ($3 == "real-collector-alt") {
        ra_cpu[s] = a["cpu_ms"]; ra_rss[s] = a["peak_rss_kib"]; ra_n[s] = a["intervals"]
    } else if ($3 ~ /^established=/) {
        load[s] = a["load"]; est[s] = a["established"]; other[s] = a["host_tcp_socks"]
    } else if ($3 == "hold") {
        setup[s] = a["secs"]
    }
}
END {
    print "### Machine\n" machine
    if (skipped != "") print "### Not measured\n" skipped
    for (i = 1; i <= n; i++) {
        s = order[i]
        printf "### %d sockets (%s ESTABLISHED seen by ss; load average %s; TCP sockets in the host slab %s)\n\n", s, est[s], load[s], other[s]
        print "| measured | wall ms (median) | wall min–max | CPU ms (median) | peak RSS MiB |"
        print "|---|---|---|---|---|"
        split("ss -Htn|halfopen snapshot --json|halfopen snapshot --json (alt)|ss -tnp|lsof -iTCP -n -P", tools, "|")
        for (t = 1; t <= 5; t++) {
            nm = tools[t]
            if ((s, nm) in wall)
                printf "| `%s` | %s | %s–%s | %s | %s |\n", nm, f(wall[s, nm], 0), f(wmin[s, nm], 0), f(wmax[s, nm], 0), f(cpu[s, nm], 0), mib(rss[s, nm])
        }
        printf "| collector interval, replicated (steady; first = full) | %s | | %s (first %s) | %s |\n", f(cc_wall[s], 0), f(cc_cpu[s], 1), f(cc_first[s], 0), mib(cc_rss[s])
        if (s in rc_cpu)
            printf "| real collector, CPU per interval over %s intervals | | | %s | %s |\n", rc_n[s], f(rc_cpu[s], 1), mib(rc_rss[s])
        if (s in ra_cpu)
            printf "| real collector (alt), CPU per interval over %s intervals | | | %s | %s |\n", ra_n[s], f(ra_cpu[s], 1), mib(ra_rss[s])
        print ""
        htn = wall[s, "ss -Htn"]; snap = wall[s, "halfopen snapshot --json"]
        has_tnp = ((s, "ss -tnp") in wall); tnp = (has_tnp ? wall[s, "ss -tnp"] : "")
        budget = 64 * 1024 + 400 * s / 1024
        printf "Targets: collector CPU / `ss -Htn` wall = **%s** replicated", (htn > 0 ? f(cc_cpu[s] / htn, 2) : "–")
        if (s in rc_cpu) printf ", **%s** real", (htn > 0 ? f(rc_cpu[s] / htn, 2) : "–")
        printf " (≤ 0.6); `ss -tnp` / snapshot = **%s** (≥ 20); snapshot / `ss -Htn` = **%s** (≤ 2); collector peak RSS %s MiB", \
            (has_tnp && snap > 0 ? f(tnp / snap, 1) : "–"), (htn > 0 ? f(snap / htn, 2) : "–"), mib(s in rc_rss ? rc_rss[s] : cc_rss[s])
        printf " vs budget 64 MiB + 400 B × %d = %.1f MiB.\n\n", s, budget / 1024
        asnap = wall[s, "halfopen snapshot --json (alt)"]
        if (s in ra_cpu || asnap != "")
            printf "Alt build: collector CPU / `ss -Htn` wall = **%s**; `ss -tnp` / snapshot = **%s**; snapshot / `ss -Htn` = **%s**; collector peak RSS %s MiB.\n\n", \
                (s in ra_cpu && htn > 0 ? f(ra_cpu[s] / htn, 2) : "–"), (has_tnp && asnap > 0 ? f(tnp / asnap, 1) : "–"), \
                (asnap != "" && htn > 0 ? f(asnap / htn, 2) : "–"), mib(ra_rss[s])
        printf "Collector interval phases (CPU, median):%s\n\n", phases[s]
        printf "Parts (CPU ms / wall ms, median): one dump per family %s/%s (AF_INET %s/%s, AF_INET6 %s/%s); one dump of both families %s/%s; ", \
            sc[s, "raw_dump"], scw[s, "raw_dump"], sc[s, "raw_dump_v4"], scw[s, "raw_dump_v4"], sc[s, "raw_dump_v6"], scw[s, "raw_dump_v6"], \
            sc[s, "raw_dump_all_families"], scw[s, "raw_dump_all_families"]
        printf "per-family dumps + tcp_info %s/%s; Scanner::scan %s/%s; scan_ports(10 cold ports) %s/%s; + tcp_info %s/%s; tuple map build %s/%s; /proc fd walk (Owners::resolve_all) %s/%s.\n\n", \
            sc[s, "raw_dump_info"], scw[s, "raw_dump_info"], sc[s, "scan"], scw[s, "scan"], \
            sc[s, "scan_ports10"], scw[s, "scan_ports10"], sc[s, "scan_ports10_info"], scw[s, "scan_ports10_info"], \
            sc[s, "map_build"], scw[s, "map_build"], sc[s, "owners_resolve_all"], scw[s, "owners_resolve_all"]
    }
    print "### Growth (median wall ms, collector CPU ms per interval)\n"
    print "| sockets | `ss -Htn` | snapshot | snapshot (alt) | `ss -tnp` | lsof | collector CPU (replicated) | per 1k sockets | real collector CPU | (alt) | real collector RSS MiB | (alt) |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        s = order[i]
        printf "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, f(wall[s, "ss -Htn"], 0), f(wall[s, "halfopen snapshot --json"], 0), \
            f(wall[s, "halfopen snapshot --json (alt)"], 0), f(wall[s, "ss -tnp"], 0), f(wall[s, "lsof -iTCP -n -P"], 0), f(cc_cpu[s], 1), \
            (cc_cpu[s] != "" ? f(cc_cpu[s] * 1000 / s, 2) : "–"), f(rc_cpu[s], 1), f(ra_cpu[s], 1), mib(rc_rss[s]), mib(ra_rss[s])
    }
}' "$1"
