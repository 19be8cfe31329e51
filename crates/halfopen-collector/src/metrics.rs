//! The collector's metrics: what its scans cost and found, what reading
//! owners from /proc failed on, and how its session with the reconciler
//! goes. The worker thread and the session update atomics; a scrape reads
//! them (prometheus-client families), so it never waits on a scan.
//!
//! Labels are bounded: TCP states, sides, failure reasons, report kinds.
use crate::differ::StateCounts;
use halfopen_core::{Side, SocketRecord, TcpState};
use halfopen_sockets::owners::ResolveStats;
use halfopen_telemetry::prometheus_client::metrics::counter::Counter;
use halfopen_telemetry::prometheus_client::metrics::family::Family;
use halfopen_telemetry::prometheus_client::metrics::gauge::Gauge;
use halfopen_telemetry::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use halfopen_telemetry::prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[("state", _), ("side", _)]`.
type SocketLabels = [(&'static str, &'static str); 2];
/// `[("reason", _)]` or `[("kind", _)]`.
type OneLabel = [(&'static str, &'static str); 1];

/// The states a collector reports (everything but LISTEN and CLOSE), with
/// their label values (the kernel's names, `include/net/tcp_states.h`, in
/// lower case).
const STATES: [(TcpState, &str); 10] = [
    (TcpState::Established, "established"),
    (TcpState::SynSent, "syn_sent"),
    (TcpState::SynRecv, "syn_recv"),
    (TcpState::FinWait1, "fin_wait1"),
    (TcpState::FinWait2, "fin_wait2"),
    (TcpState::TimeWait, "time_wait"),
    (TcpState::CloseWait, "close_wait"),
    (TcpState::LastAck, "last_ack"),
    (TcpState::Closing, "closing"),
    (TcpState::NewSynRecv, "new_syn_recv"),
];

const SIDES: [(Side, &str); 2] = [(Side::Client, "client"), (Side::Server, "server")];

/// Why reading a socket's owner from /proc failed (halfopen-sockets
/// `ResolveStats`).
pub const OWNER_FAILURE_REASONS: [&str; 3] = ["vanished", "permission_denied", "other"];

/// Verdicts of the eBPF source's CurrEstab check (`crate::estab`).
pub const CURR_ESTAB_VERDICTS: [&str; 4] = ["agrees", "unsure", "suspect", "lost"];

/// See the module documentation. Cheap to clone (every metric is shared).
#[derive(Clone, Debug)]
pub struct CollectorMetrics {
    scan_duration: Histogram,
    scan_failures: Counter,
    sockets: Family<SocketLabels, Gauge>,
    listeners: Gauge,
    owner_failures: Family<OneLabel, Counter>,
    reconnects: Counter,
    connected: Gauge,
    reports: Family<OneLabel, Counter>,
    last_report: Gauge<f64, AtomicU64>,
    lookups: Counter,
    lookup_tuples: Counter,
    curr_estab_checks: Family<OneLabel, Counter>,
}

impl Default for CollectorMetrics {
    fn default() -> Self {
        let owner_failures = Family::default();
        for reason in OWNER_FAILURE_REASONS {
            drop(owner_failures.get_or_create(&[("reason", reason)])); // shown at 0 from the start
        }
        let reports = Family::default();
        for kind in ["full", "delta"] {
            drop(reports.get_or_create(&[("kind", kind)]));
        }
        CollectorMetrics {
            // 0.5 ms .. 16 s: a scan of a few sockets to half a million.
            scan_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            scan_failures: Counter::default(),
            sockets: Family::default(),
            listeners: Gauge::default(),
            owner_failures,
            reconnects: Counter::default(),
            connected: Gauge::default(),
            reports,
            last_report: Gauge::default(),
            lookups: Counter::default(),
            lookup_tuples: Counter::default(),
            // Shown once an eBPF source runs (netlink collectors have none).
            curr_estab_checks: Family::default(),
        }
    }
}

impl CollectorMetrics {
    /// The metrics of another network namespace's host (`HOSTID/NAME`) of
    /// the same collector: its scan times and failures, owner failures,
    /// reconnects, reports and lookups add to this collector's; the
    /// gauges of one table and one session (`sockets`, `listeners`,
    /// `connected`) are its own and not exported, so the exported ones stay
    /// the collector's own namespace's.
    pub fn for_namespace(&self) -> CollectorMetrics {
        CollectorMetrics {
            sockets: Family::default(),
            listeners: Gauge::default(),
            connected: Gauge::default(),
            ..self.clone()
        }
    }

    /// Metrics registered in `registry` (names under its prefix, `halfopen_collector_*`).
    pub fn register(registry: &mut Registry) -> CollectorMetrics {
        let m = CollectorMetrics::default();
        let r = registry.sub_registry_with_prefix("collector");
        r.register_with_unit(
            "scan_duration",
            "Time to read the listeners and the socket table for one report (sock_diag or /proc/net/tcp)",
            Unit::Seconds,
            m.scan_duration.clone(),
        );
        r.register(
            "scan_failures",
            "Scans that failed (the interval is skipped and the next report is a full table; lookups are asked \
             again)",
            m.scan_failures.clone(),
        );
        r.register(
            "sockets",
            "Sockets in the last scan by TCP state and side (server: the local port is one of this host's \
             listeners)",
            m.sockets.clone(),
        );
        r.register("listeners", "Listening sockets in the last scan", m.listeners.clone());
        r.register(
            "owner_lookup_failures",
            "/proc entries that could not be read while naming sockets' owners, by reason: vanished (the \
             process or fd went away: normal), permission_denied (the collector lacks CAP_SYS_PTRACE and \
             CAP_DAC_READ_SEARCH: those owners stay unknown), other",
            m.owner_failures.clone(),
        );
        r.register(
            "reconnects",
            "Attempts to open a session with the reconciler again after one ended or failed (with backoff while \
             it is away)",
            m.reconnects.clone(),
        );
        r.register(
            "connected",
            "1 while a session with the reconciler is open",
            m.connected.clone(),
        );
        r.register(
            "reports",
            "Reports sent to the reconciler, by kind (full table or delta)",
            m.reports.clone(),
        );
        r.register_with_unit(
            "last_report_timestamp",
            "When the last report was sent to the reconciler (this host's clock, Unix time)",
            Unit::Seconds,
            m.last_report.clone(),
        );
        r.register(
            "lookups",
            "Lookups answered for the reconciler (each a fresh kernel read)",
            m.lookups.clone(),
        );
        r.register(
            "lookup_tuples",
            "Connections looked up for the reconciler",
            m.lookup_tuples.clone(),
        );
        r.register(
            "bpf_curr_estab_checks",
            "eBPF source: readings of the kernel's Tcp CurrEstab judged against the table built from events, by \
             verdict: agrees; unsure (a transition within 2 ms of the reading: no conclusion, most readings under \
             heavy churn, where the periodic dump is the backstop); suspect (off once); lost (off twice in a row: \
             a transition was lost without a loss counter rising, a dump followed)",
            m.curr_estab_checks.clone(),
        );
        m
    }

    /// A scan for a report: how long it took and what it found.
    pub(crate) fn scanned(&self, took: Duration, sockets: &[SocketRecord], listeners: usize) {
        let mut counts = StateCounts::default();
        for r in sockets {
            counts[r.state as usize][usize::from(r.side == Side::Server)] += 1;
        }
        self.table(took, &counts, listeners);
    }

    /// A report built without a dump (the eBPF source's delta): how long it
    /// took and the table it leaves, counted by state and side.
    pub(crate) fn table(&self, took: Duration, counts: &StateCounts, listeners: usize) {
        self.scan_duration.observe(took.as_secs_f64());
        self.listeners.set(listeners as i64);
        for (st, state) in STATES {
            for (j, (_, side)) in SIDES.iter().enumerate() {
                let labels: SocketLabels = [("state", state), ("side", side)];
                let n = i64::from(counts[st as usize][j]);
                // A state seen once stays, at 0 when none is left; one never
                // seen is not shown.
                if n > 0 {
                    self.sockets.get_or_create(&labels).set(n);
                } else if let Some(g) = self.sockets.get(&labels) {
                    g.set(0);
                }
            }
        }
    }

    pub(crate) fn scan_failed(&self) {
        self.scan_failures.inc();
    }

    /// What one owner resolution could not read.
    pub(crate) fn owners(&self, s: &ResolveStats) {
        for (reason, n) in OWNER_FAILURE_REASONS
            .iter()
            .zip([s.vanished, s.permission_errors, s.other_errors])
        {
            if n > 0 {
                self.owner_failures.get_or_create(&[("reason", reason)]).inc_by(n);
            }
        }
    }

    /// Another attempt at a session, after one ended or failed.
    pub(crate) fn reconnecting(&self) {
        self.reconnects.inc();
    }

    /// A session is open.
    pub(crate) fn session_opened(&self) {
        self.connected.set(1);
    }

    pub(crate) fn session_ended(&self) {
        self.connected.set(0);
    }

    /// A report was handed to the session's stream in full.
    pub(crate) fn report_sent(&self, full: bool) {
        let kind = if full { "full" } else { "delta" };
        self.reports.get_or_create(&[("kind", kind)]).inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_report.set(now);
    }

    /// An eBPF source started: its CurrEstab verdicts are shown, at 0.
    pub(crate) fn curr_estab_checks_shown(&self) {
        for v in CURR_ESTAB_VERDICTS {
            drop(self.curr_estab_checks.get_or_create(&[("verdict", v)]));
        }
    }

    /// One reading of CurrEstab judged (`verdict`: one of
    /// [`CURR_ESTAB_VERDICTS`]).
    pub(crate) fn curr_estab_checked(&self, verdict: &'static str) {
        self.curr_estab_checks.get_or_create(&[("verdict", verdict)]).inc();
    }

    pub(crate) fn lookup_answered(&self, tuples: usize) {
        self.lookups.inc();
        self.lookup_tuples.inc_by(tuples as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::Tuple;
    use halfopen_telemetry::{encode, new_registry, Format};

    fn rec(state: TcpState, side: Side, port: u16) -> SocketRecord {
        SocketRecord {
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "198.18.0.1:3306".parse().unwrap(),
            ),
            state,
            side,
            cookie: port as u64,
            inode: 0,
            uid: 0,
            keepalive: false,
            info: None,
        }
    }

    /// Everything but the histogram's sum and the timestamp (which vary)
    /// as a scrape shows it after a known sequence of events.
    #[test]
    fn exposition_after_scans_owner_failures_and_a_reconnect() {
        let mut r = new_registry("collector", &[("host", "db-1")]);
        let m = CollectorMetrics::register(&mut r);
        // 180 orphans' client ends in many ports: one series.
        let mut scan: Vec<SocketRecord> = (0..180)
            .map(|i| rec(TcpState::Established, Side::Client, 40000 + i))
            .collect();
        scan.push(rec(TcpState::TimeWait, Side::Client, 39000));
        scan.push(rec(TcpState::Established, Side::Server, 39001));
        m.scanned(Duration::from_millis(3), &scan, 2);
        // The TIME_WAIT socket is gone at the next scan: 0, not its old count.
        scan.retain(|r| r.state != TcpState::TimeWait);
        m.scanned(Duration::from_millis(2), &scan, 2);
        m.owners(&ResolveStats {
            vanished: 1,
            permission_errors: 4,
            ..Default::default()
        });
        m.session_opened();
        m.report_sent(true);
        m.report_sent(false);
        m.session_ended();
        m.reconnecting();
        m.session_opened();
        m.lookup_answered(180);
        m.scan_failed();
        m.curr_estab_checks_shown();
        m.curr_estab_checked("agrees");
        m.curr_estab_checked("agrees");
        m.curr_estab_checked("lost");
        let text = encode(&r, Format::OpenMetrics).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("halfopen_collector_scan_duration_seconds_sum"))
            .filter(|l| !l.starts_with("halfopen_collector_last_report_timestamp_seconds{"))
            .collect();
        // A family's series come in hash order: sorted here (but a
        // histogram's buckets, which come in order).
        let mut stable = String::new();
        for run in lines.chunk_by(|a, b| a.starts_with('#') == b.starts_with('#')) {
            let mut run = run.to_vec();
            if !run[0].starts_with('#') && !run.iter().any(|l| l.contains("_bucket{")) {
                run.sort();
            }
            run.iter().for_each(|l| stable.push_str(&format!("{l}\n")));
        }
        insta::assert_snapshot!("collector_openmetrics", stable);
        let ts: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("halfopen_collector_last_report_timestamp_seconds{host=\"db-1\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(ts > 1.7e9, "{ts}");
    }

    /// Another namespace's host adds to the collector's counters, never to
    /// the gauges of the collector's own table and session.
    #[test]
    fn a_namespace_counts_into_the_counters_and_leaves_the_own_gauges() {
        let mut r = new_registry("collector", &[("host", "node-a")]);
        let own = CollectorMetrics::register(&mut r);
        let ns = own.for_namespace();
        own.scanned(
            Duration::from_millis(1),
            &[rec(TcpState::Established, Side::Client, 40000)],
            3,
        );
        own.session_opened();
        let many: Vec<SocketRecord> = (0..7)
            .map(|i| rec(TcpState::Established, Side::Client, 41000 + i))
            .collect();
        ns.scanned(Duration::from_millis(1), &many, 9);
        ns.session_opened();
        ns.session_ended();
        ns.scan_failed();
        ns.report_sent(true);
        ns.lookup_answered(5);
        let text = encode(&r, Format::OpenMetrics).unwrap();
        let value = |name: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with(name))
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            value("halfopen_collector_sockets{"),
            ["1"],
            "the own table's count: {text}"
        );
        assert_eq!(value("halfopen_collector_listeners{"), ["3"], "{text}");
        assert_eq!(value("halfopen_collector_connected{"), ["1"], "{text}");
        assert_eq!(value("halfopen_collector_scan_failures_total{"), ["1"], "{text}");
        assert_eq!(value("halfopen_collector_lookup_tuples_total{"), ["5"], "{text}");
        assert_eq!(
            value("halfopen_collector_scan_duration_seconds_count{"),
            ["2"],
            "both scans: {text}"
        );
    }
}
