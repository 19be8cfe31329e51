//! The reconciler's metrics. The engine thread publishes a [`Published`]
//! snapshot (the engine's [`MetricsSnapshot`], sessions, lookup replies, the
//! store writer's counters) after a tick, at most once a second; a scrape
//! encodes the latest one, plus the engine queue's depth read live from the
//! channel. A scrape therefore never sends anything to the engine thread and
//! never waits behind its work; what it shows is at most about a second old
//! (`halfopen_engine_snapshot_timestamp_seconds` says when it was taken, so
//! a stuck engine shows as a snapshot that stops advancing).
//!
//! Families and labels (all bounded by hosts, listeners, kinds, reasons):
//! see [`ReconcilerMetrics`]'s `Collector` implementation and the README.
use crate::actor::Input;
use crate::auth::AuthStats;
use crate::ingest::IngestStats;
use crate::serve::AcceptStats;
use halfopen_engine::gauges::MetricsSnapshot;
use halfopen_telemetry::prometheus_client::collector::Collector;
use halfopen_telemetry::prometheus_client::encoding::DescriptorEncoder;
use halfopen_telemetry::prometheus_client::registry::{Registry, Unit};
use halfopen_telemetry::snapshot::{Families, Labels};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::mpsc::WeakSender;

/// The store writer's counters at one moment (halfopen-store `WriterStats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Commands applied.
    pub written: u64,
    /// Commands refused because its queue was full (or the writer stopped).
    pub refused: u64,
    /// Commands SQLite failed (logged).
    pub failed: u64,
    /// Samples of listeners and counters written.
    pub samples: u64,
    /// Rows deleted by retention.
    pub pruned: u64,
    /// Writes tried again after a failure that can pass (full disk, lock).
    pub retries: u64,
    /// Commands waiting in the writer's queue now, and its capacity.
    pub pending: u64,
    pub capacity: u64,
    /// Writes are failing now (and being retried).
    pub failing: bool,
}

/// What the engine thread publishes for scrapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Published {
    pub engine: MetricsSnapshot,
    /// Collector sessions connected now.
    pub sessions: u64,
    /// Lookup replies the engine received since start.
    pub lookup_replies: u64,
    /// None when the reconciler runs without a database.
    pub store: Option<StoreCounts>,
    /// Reconciler wall clock when it was taken, ms since the epoch.
    pub at_wall_ms: i64,
}

/// See the module documentation. Shared between the engine thread (which
/// publishes) and the registry (which encodes at every scrape).
#[derive(Debug, Default)]
pub struct ReconcilerMetrics {
    /// Held only to swap or clone the pointer: never across encoding.
    published: Mutex<Arc<Published>>,
    /// The engine's input queue, read for its depth (weak: metrics never keep
    /// the engine alive).
    queue: OnceLock<WeakSender<Input>>,
    /// What the Ingest service refused (its counters, read at each scrape).
    ingest: OnceLock<Arc<IngestStats>>,
    /// Connections accepted and accepts that failed (file limit).
    accepts: OnceLock<Arc<AcceptStats>>,
    /// The edge's authorisation decisions (refused roles, plaintext calls).
    auth: OnceLock<Arc<AuthStats>>,
}

impl ReconcilerMetrics {
    /// Metrics registered in `registry` (as one collector).
    pub fn register(registry: &mut Registry) -> Arc<ReconcilerMetrics> {
        let m = Arc::new(ReconcilerMetrics::default());
        registry.register_collector(Box::new(m.clone()));
        m
    }

    /// Replaces the snapshot scrapes read.
    pub fn publish(&self, p: Published) {
        let p = Arc::new(p);
        // A poisoned lock only means a panic elsewhere while swapping an Arc:
        // the value inside is whole.
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// The latest published snapshot.
    pub fn latest(&self) -> Arc<Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Watches the engine's input queue (its depth is read at each scrape).
    pub(crate) fn watch_queue(&self, tx: WeakSender<Input>) {
        let _ = self.queue.set(tx); // set once, by actor::start
    }

    /// Reads the accept loop's counters at each scrape.
    pub(crate) fn watch_accepts(&self, stats: Arc<AcceptStats>) {
        let _ = self.accepts.set(stats); // set once, by serve
    }

    /// Reads the edge's authorisation counters at each scrape.
    pub(crate) fn watch_auth(&self, stats: Arc<AuthStats>) {
        let _ = self.auth.set(stats); // set once, by serve
    }

    /// Reads the Ingest service's refusals at each scrape.
    pub(crate) fn watch_ingest(&self, stats: Arc<IngestStats>) {
        let _ = self.ingest.set(stats); // set once, by serve
    }

    /// (inputs queued now, capacity), when the engine is running.
    fn queue(&self) -> Option<(usize, usize)> {
        let tx = self.queue.get()?.upgrade()?;
        Some((tx.max_capacity() - tx.capacity(), tx.max_capacity()))
    }
}

fn l1(k: &'static str, v: impl ToString) -> Labels {
    vec![(k, v.to_string())]
}

impl Collector for ReconcilerMetrics {
    fn encode(&self, enc: DescriptorEncoder) -> std::fmt::Result {
        let p = self.latest();
        let e = &p.engine;
        let mut f = Families::new(enc);

        // Findings.
        let findings: Vec<(Labels, u64)> = e
            .findings
            .iter()
            .map(|c| {
                (
                    vec![
                        ("kind", c.kind.as_str().to_string()),
                        ("server_host", c.server_host.clone()),
                        ("listener", c.listener.to_string()),
                    ],
                    c.count,
                )
            })
            .collect();
        f.gauges(
            "findings",
            "Current findings by kind, server host and listener (the listener the connections were made to, or \
             the server end when no listener is known)",
            None,
            &findings,
        )?;
        let confirmed: Vec<(Labels, u64)> = e.confirmed.iter().map(|(k, n)| (l1("kind", k), *n)).collect();
        f.counters(
            "findings_confirmed",
            "Findings confirmed since the reconciler started, by kind",
            None,
            &confirmed,
        )?;
        let gone: Vec<(Labels, u64)> = e
            .gone
            .iter()
            .map(|(k, r, n)| {
                (
                    vec![("kind", k.as_str().to_string()), ("reason", r.as_str().to_string())],
                    *n,
                )
            })
            .collect();
        f.counters(
            "findings_gone",
            "Findings that ended since the reconciler started, by kind and reason",
            None,
            &gone,
        )?;

        // Hosts and their listeners.
        let up: Vec<(Labels, u64)> = e.hosts.iter().map(|h| (l1("host", &h.name), u64::from(h.up))).collect();
        f.gauges(
            "host_up",
            "1 while a host is fresh (connected, its table in place, reporting within its stale limit); 0 when \
             stale or disconnected: nothing is judged against it then",
            None,
            &up,
        )?;
        let connected: Vec<(Labels, u64)> = e
            .hosts
            .iter()
            .map(|h| (l1("host", &h.name), u64::from(h.connected)))
            .collect();
        f.gauges(
            "host_connected",
            "1 while a host's collector has a session with the reconciler",
            None,
            &connected,
        )?;
        let last: Vec<(Labels, f64)> = e
            .hosts
            .iter()
            .filter_map(|h| Some((l1("host", &h.name), h.last_report_ms? as f64 / 1000.0)))
            .collect();
        f.gauges(
            "host_last_report_timestamp",
            "When the reconciler last heard from a host's collector (the reconciler's clock, Unix time)",
            Some(Unit::Seconds),
            &last,
        )?;
        let sockets: Vec<(Labels, u64)> = e
            .hosts
            .iter()
            .flat_map(|h| {
                [("client", h.client_sockets), ("server", h.server_sockets)]
                    .map(|(side, n)| (vec![("host", h.name.clone()), ("side", side.to_string())], n))
            })
            .collect();
        f.gauges(
            "host_sockets",
            "Sockets in a host's table as the reconciler holds it, by side (client: the local port is not a \
             listener's)",
            None,
            &sockets,
        )?;
        let listener = |h: &str, addr: &std::net::SocketAddr| -> Labels {
            vec![("host", h.to_string()), ("listener", addr.to_string())]
        };
        let drops: Vec<(Labels, u64)> = e
            .hosts
            .iter()
            .flat_map(|h| {
                h.listeners
                    .iter()
                    .filter_map(|l| Some((listener(&h.name, &l.addr), l.drops?)))
            })
            .collect();
        f.counters(
            "listener_drops",
            "Packets the kernel dropped on a listening socket (its sk_drops, sock_diag SK_MEMINFO_DROPS, `ss -tlm` \
             d<N>), as its host's collector last read it; restarts from 0 with a new socket",
            None,
            &drops,
        )?;
        let queue: Vec<(Labels, u32)> = e
            .hosts
            .iter()
            .flat_map(|h| h.listeners.iter().map(|l| (listener(&h.name, &l.addr), l.queue)))
            .collect();
        f.gauges(
            "listener_queue",
            "Connections waiting in a listener's accept queue (`ss -tln` Recv-Q)",
            None,
            &queue,
        )?;
        let backlog: Vec<(Labels, u32)> = e
            .hosts
            .iter()
            .flat_map(|h| h.listeners.iter().map(|l| (listener(&h.name, &l.addr), l.backlog)))
            .collect();
        f.gauges(
            "listener_backlog",
            "A listener's accept queue limit (`ss -tln` Send-Q: min(listen backlog, net.core.somaxconn))",
            None,
            &backlog,
        )?;

        // The engine.
        let s = &e.stats;
        f.counter(
            "engine_reports",
            "Report messages (full-table chunks and deltas) the engine applied",
            None,
            s.reports,
        )?;
        f.counter(
            "engine_resyncs_requested",
            "Full tables asked of collectors (a sequence gap, a restart)",
            None,
            s.resyncs_requested,
        )?;
        f.gauge(
            "engine_candidates",
            "One-sided connections waiting for confirmation now",
            None,
            e.candidates,
        )?;
        f.counter(
            "engine_candidates_created",
            "One-sided connections that became candidates",
            None,
            s.candidates_created,
        )?;
        let cleared = [
            ("other_end_lookup", s.cleared_by_other_lookup),
            ("holder_lookup", s.cleared_by_holder_lookup),
            ("nat", s.cleared_by_nat),
        ]
        .map(|(by, n)| (l1("by", by), n));
        f.counters(
            "engine_candidates_cleared",
            "Candidates dropped without a finding, by what cleared them",
            None,
            &cleared,
        )?;
        f.counter(
            "engine_lookups_sent",
            "Lookup requests sent to collectors (each a batch of tuples)",
            None,
            s.lookups_sent,
        )?;
        f.counter(
            "engine_lookup_replies",
            "Lookup replies received from collectors",
            None,
            p.lookup_replies,
        )?;
        f.counter(
            "engine_lookups_timed_out",
            "Lookup requests never answered in time (their candidates start over)",
            None,
            s.lookups_timed_out,
        )?;
        f.counter(
            "engine_conflicts_refused",
            "Collector sessions refused because a live collector held the same host id",
            None,
            s.conflicts_refused,
        )?;
        f.counter(
            "engine_hosts_refused",
            "Collector sessions refused because the reconciler knew --max-hosts host ids",
            None,
            s.hosts_refused,
        )?;
        f.counter(
            "engine_tables_refused",
            "Collector sessions ended because a table exceeded --max-sockets-per-host",
            None,
            s.tables_refused,
        )?;
        f.counter(
            "engine_hosts_forgotten",
            "Gone hosts forgotten (nothing referred to them for --forget-hosts-after)",
            None,
            s.hosts_forgotten,
        )?;
        f.counter(
            "engine_witnessed_drops",
            "Completed handshakes the servers' kernels witnessed dropped on a full accept queue (eBPF sources)",
            None,
            s.witnessed_drops,
        )?;
        if let Some(i) = self.ingest.get() {
            use std::sync::atomic::Ordering::Relaxed;
            let refused: Vec<(Labels, u64)> = vec![
                (l1("reason", "peer_limit"), i.refused_peer_limit.load(Relaxed)),
                (l1("reason", "host_limit"), i.refused_host_limit.load(Relaxed)),
                (l1("reason", "conflict"), i.refused_conflict.load(Relaxed)),
            ];
            f.counters(
                "reconciler_sessions_refused",
                "Collector sessions refused at the edge, by reason (peer_limit: --max-sessions-per-peer; \
                 host_limit: --max-hosts; conflict: another live collector holds the host id)",
                None,
                &refused,
            )?;
        }
        f.gauge(
            "engine_snapshot_timestamp",
            "When the engine thread took the snapshot these metrics come from (Unix time); it advances about \
             every second while the engine keeps up",
            Some(Unit::Seconds),
            p.at_wall_ms as f64 / 1000.0,
        )?;
        if let Some((depth, capacity)) = self.queue() {
            f.gauge(
                "engine_queue_depth",
                "Inputs (reports, lookup replies, queries, ticks) waiting for the engine thread now",
                None,
                depth,
            )?;
            f.gauge(
                "engine_queue_capacity",
                "Inputs the engine queue holds before collectors are slowed down",
                None,
                capacity,
            )?;
        }
        f.gauge(
            "reconciler_sessions",
            "Collector sessions connected now",
            None,
            p.sessions,
        )?;

        // The store.
        if let Some(st) = &p.store {
            f.counter(
                "store_commands_written",
                "Store commands (findings confirmed or gone, samples, retention runs) applied to the database",
                None,
                st.written,
            )?;
            f.counter(
                "store_commands_refused",
                "Store commands refused because the writer's queue was full: not recorded",
                None,
                st.refused,
            )?;
            f.counter(
                "store_commands_failed",
                "Store commands that failed in SQLite (see the log): not recorded",
                None,
                st.failed,
            )?;
            f.counter(
                "store_samples_written",
                "Samples of listeners and counters written",
                None,
                st.samples,
            )?;
            f.counter(
                "store_rows_pruned",
                "Rows deleted by retention (findings that ended and samples)",
                None,
                st.pruned,
            )?;
            f.counter(
                "store_write_retries",
                "Database writes tried again after a failure that can pass (disk full, database locked): \
                 nothing is lost while the queue has room",
                None,
                st.retries,
            )?;
            f.gauge(
                "store_writes_failing",
                "1 while database writes fail and are being retried (the live view keeps working)",
                None,
                u64::from(st.failing),
            )?;
            f.gauge(
                "store_queue_pending",
                "Store commands waiting to be written",
                None,
                st.pending,
            )?;
            f.gauge(
                "store_queue_capacity",
                "Store commands the queue holds before it refuses (refusals are caught up later)",
                None,
                st.capacity,
            )?;
        }
        if let Some(a) = self.accepts.get() {
            use std::sync::atomic::Ordering::Relaxed;
            f.counter(
                "reconciler_accepts",
                "Connections accepted on the gRPC port",
                None,
                a.accepted.load(Relaxed),
            )?;
            f.counter(
                "reconciler_accept_errors",
                "Accepts that failed (EMFILE at the open-file limit, ENFILE, ENOBUFS); raise LimitNOFILE",
                None,
                a.failed.load(Relaxed),
            )?;
        }
        if let Some(a) = self.auth.get() {
            let c = a.snapshot();
            f.counters(
                "reconciler_auth_refused",
                "Calls refused at the edge with PERMISSION_DENIED, by what was asked (collect: not a collector \
                 certificate, or a host id the certificate does not name; query: not a reader certificate)",
                None,
                &[
                    (l1("call", "collect"), c.refused_collect),
                    (l1("call", "query"), c.refused_query),
                ],
            )?;
            f.counters(
                "reconciler_plaintext_calls",
                "Calls served without TLS (the caller's identity unknown), by kind: only on loopback or with \
                 --insecure",
                None,
                &[
                    (l1("call", "collect"), c.plaintext_sessions),
                    (l1("call", "query"), c.plaintext_queries),
                ],
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{self, Input};
    use halfopen_core::{FindingKind, GoneReason};
    use halfopen_engine::gauges::{FindingCount, HostGauges, ListenerGauges};
    use halfopen_engine::{Engine, EngineConfig, EngineStats};
    use halfopen_telemetry::{encode, new_registry, Format};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn host(name: &str, up: bool, listeners: Vec<ListenerGauges>) -> HostGauges {
        HostGauges {
            name: name.into(),
            up,
            connected: up,
            gone: false,
            last_report_ms: Some(1_764_522_000_500),
            client_sockets: 210,
            server_sockets: 3,
            listeners,
        }
    }

    /// An incident: 180 orphans on db's MySQL listener, one stalled
    /// greeting, one host stale.
    fn incident() -> Published {
        let mysql: std::net::SocketAddr = "0.0.0.0:3306".parse().unwrap();
        Published {
            engine: MetricsSnapshot {
                stats: EngineStats {
                    reports: 512,
                    resyncs_requested: 1,
                    candidates_created: 190,
                    cleared_by_other_lookup: 7,
                    cleared_by_holder_lookup: 2,
                    confirmed: 182,
                    gone: 1,
                    lookups_sent: 40,
                    lookups_timed_out: 0,
                    sweeps: 3,
                    cleared_by_nat: 0,
                    conflicts_refused: 0,
                    findings: 181,
                    hosts_refused: 0,
                    tables_refused: 0,
                    hosts_forgotten: 0,
                    witnessed_drops: 170,
                },
                candidates: 1,
                hosts: vec![
                    host("app", true, Vec::new()),
                    host(
                        "db",
                        true,
                        vec![ListenerGauges {
                            addr: mysql,
                            queue: 5,
                            backlog: 4,
                            drops: Some(181),
                        }],
                    ),
                    HostGauges {
                        last_report_ms: None,
                        ..host("web", false, Vec::new())
                    },
                ],
                findings: vec![
                    FindingCount {
                        kind: FindingKind::ClientOnly,
                        server_host: "db".into(),
                        listener: mysql,
                        count: 180,
                    },
                    FindingCount {
                        kind: FindingKind::StalledGreeting,
                        server_host: "db".into(),
                        listener: mysql,
                        count: 1,
                    },
                ],
                confirmed: FindingKind::ALL
                    .iter()
                    .map(|k| (*k, if *k == FindingKind::ClientOnly { 181 } else { 0 }))
                    .collect(),
                gone: vec![(FindingKind::ClientOnly, GoneReason::ClientClosed, 1)],
            },
            sessions: 2,
            lookup_replies: 40,
            store: Some(StoreCounts {
                written: 183,
                refused: 0,
                failed: 0,
                samples: 12,
                pruned: 0,
                retries: 2,
                pending: 0,
                capacity: 200_000,
                failing: false,
            }),
            at_wall_ms: 1_764_522_001_250,
        }
    }

    #[test]
    fn exposition_of_an_incident() {
        let mut r = new_registry("reconciler", &[]);
        let m = ReconcilerMetrics::register(&mut r);
        let (tx, _rx) = tokio::sync::mpsc::channel::<Input>(actor::ENGINE_QUEUE);
        m.watch_queue(tx.downgrade());
        m.publish(incident());
        insta::assert_snapshot!("incident_openmetrics", encode(&r, Format::OpenMetrics).unwrap());
        // The text format carries the same series.
        let text = encode(&r, Format::PrometheusText).unwrap();
        assert!(
            text.contains("halfopen_findings{kind=\"client_only\",server_host=\"db\",listener=\"0.0.0.0:3306\"} 180")
        );
        assert!(text.contains("halfopen_listener_drops_total{host=\"db\",listener=\"0.0.0.0:3306\"} 181\n"));
        assert!(text.contains("halfopen_engine_queue_depth 0\n"), "{text}");
        drop(tx);
    }

    #[test]
    fn refusals_at_the_edge_are_counted_by_call() {
        use std::sync::atomic::Ordering::Relaxed;
        let mut r = new_registry("reconciler", &[]);
        let m = ReconcilerMetrics::register(&mut r);
        let auth = Arc::new(AuthStats::default());
        m.watch_auth(auth.clone());
        auth.refused_collect.fetch_add(3, Relaxed);
        auth.refused_query.fetch_add(1, Relaxed);
        auth.plaintext_queries.fetch_add(7, Relaxed);
        let text = encode(&r, Format::PrometheusText).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("halfopen_reconciler_auth") || l.starts_with("halfopen_reconciler_plaintext"))
            .collect();
        assert_eq!(
            lines,
            [
                "halfopen_reconciler_auth_refused_total{call=\"collect\"} 3",
                "halfopen_reconciler_auth_refused_total{call=\"query\"} 1",
                "halfopen_reconciler_plaintext_calls_total{call=\"collect\"} 0",
                "halfopen_reconciler_plaintext_calls_total{call=\"query\"} 7",
            ]
        );
    }

    #[test]
    fn series_of_what_went_away_leave_the_scrape() {
        let mut r = new_registry("reconciler", &[]);
        let m = ReconcilerMetrics::register(&mut r);
        m.publish(incident());
        let before = encode(&r, Format::PrometheusText).unwrap();
        assert!(before.contains("halfopen_host_up{host=\"web\"} 0"), "{before}");
        assert!(!before.contains("halfopen_host_last_report_timestamp_seconds{host=\"web\"}"));
        // The orphans are gone, db's collector disconnected, no database.
        let mut p = incident();
        p.engine.findings.retain(|f| f.kind != FindingKind::ClientOnly);
        p.engine.hosts[1] = HostGauges {
            connected: false,
            ..host("db", false, Vec::new())
        };
        p.store = None;
        m.publish(p);
        let after = encode(&r, Format::PrometheusText).unwrap();
        assert!(!after.contains("kind=\"client_only\",server_host"), "{after}");
        assert!(
            after.contains("kind=\"stalled_greeting\",server_host=\"db\""),
            "{after}"
        );
        assert!(!after.contains("halfopen_listener_"), "{after}");
        assert!(after.contains("halfopen_host_up{host=\"db\"} 0"), "{after}");
        assert!(!after.contains("halfopen_store_"), "{after}");
        // A counter stays (it never goes back).
        assert!(after.contains("halfopen_findings_confirmed_total{kind=\"client_only\"} 181"));
        // With the engine stopped, the queue is not shown rather than shown wrong.
        assert!(!after.contains("halfopen_engine_queue"), "{after}");
    }

    async fn scrape(addr: std::net::SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
            .parse()
            .unwrap()
    }

    /// The engine thread busy for 2 s with three inputs queued behind it: a
    /// scrape answers at once, from the last snapshot, and shows the queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrape_never_waits_behind_engine_work() {
        let mut registry = new_registry("reconciler", &[]);
        let metrics = ReconcilerMetrics::register(&mut registry);
        let engine = actor::start(Engine::new(EngineConfig::default()), None, metrics.clone()).unwrap();
        let server = halfopen_telemetry::serve("127.0.0.1:0".parse().unwrap(), Arc::new(registry))
            .await
            .unwrap();
        // The engine thread publishes its first snapshot soon after it starts.
        let mut t0 = 0.0;
        for _ in 0..100 {
            let first = scrape(server.local_addr()).await;
            t0 = value(&first, "halfopen_engine_snapshot_timestamp_seconds");
            if t0 > 1.7e9 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(t0 > 1.7e9, "no snapshot published within 5 s: {t0}");

        // The engine is held by a job until the test releases it (bounded).
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let busy = {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .ask(move |_, _| {
                        let _ = started_tx.send(());
                        let _ = held.recv_timeout(Duration::from_secs(60));
                        // so that the next snapshot is a second newer
                        std::thread::sleep(Duration::from_millis(1100));
                    })
                    .await
            })
        };
        started.await.unwrap();
        let mut ticks = Vec::new();
        for _ in 0..3 {
            let (done, rx) = tokio::sync::oneshot::channel();
            engine.tell(Input::Tick(done)).await.unwrap();
            ticks.push(rx);
        }
        let during = scrape(server.local_addr()).await;
        // Answered while the engine is still blocked: its job waits for the
        // release below, whatever the machine's load.
        assert!(!busy.is_finished(), "the scrape waited for the engine's job");
        assert_eq!(value(&during, "halfopen_engine_queue_depth"), 3.0);
        assert_eq!(
            value(&during, "halfopen_engine_queue_capacity"),
            actor::ENGINE_QUEUE as f64
        );

        // Once the engine is through, a tick publishes a newer snapshot.
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for t in ticks {
            t.await.unwrap();
        }
        let after = scrape(server.local_addr()).await;
        assert_eq!(value(&after, "halfopen_engine_queue_depth"), 0.0);
        assert!(
            value(&after, "halfopen_engine_snapshot_timestamp_seconds") >= t0 + 1.0,
            "{after}"
        );
    }
}
