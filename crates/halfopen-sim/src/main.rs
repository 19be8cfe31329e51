//! `halfopen-sim`: plays a whole fleet of collectors over real gRPC against a
//! real reconciler (`halfopen reconciler`), to measure ingest throughput,
//! memory, correctness (planted half-open connections found, zero false
//! positives under churn) and confirmation latency at fleet scale.
//!
//! Timeline of a run: build the world; connect every host (Hello + full table
//! at a random phase); wait until ListHosts shows every host judgeable ("fleet
//! up"); start churn; plant orphans `--plant-after` later; poll ListOrphans
//! every 500 ms for `--duration`; stop churn, wait an interval and compare
//! every host's table size with the reconciler's; print one JSON object.
//!
//! Modules: [`addr`] (host addresses), [`rng`] (PRNG and hasher), [`world`]
//! (the ground truth), [`collector`] (the simulated sessions), [`observe`]
//! (scoring findings, percentiles).
mod addr;
mod collector;
mod observe;
mod rng;
mod world;

use crate::addr::HostIdx;
use crate::collector::{Counters, Fleet};
use crate::observe::{percentile, Registry};
use crate::rng::Rng;
use crate::world::{Kind, World};
use anyhow::{bail, Context, Result};
use clap::Parser;
use halfopen_proto::v1;
use halfopen_proto::v1::query_client::QueryClient;
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "halfopen-sim",
    version,
    about = "Simulate a fleet of halfopen collectors against a real reconciler",
    after_help = "Example: halfopen-sim --reconciler http://127.0.0.1:7077 --hosts 1000 --sockets-per-host 10000 \
        --churn-per-sec 1000 --orphans 1000 --duration 60s --json\n\
        Progress goes to stderr; with --json stdout carries exactly one JSON object."
)]
struct Args {
    /// Reconciler URL (http://host:port, or host:port).
    #[arg(long)]
    reconciler: String,
    /// Simulated hosts (at most 64000).
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Connections per host where the host is the client; each also appears
    /// as a server-side socket on another host, so a host holds ~2N sockets.
    #[arg(long, default_value_t = 1000)]
    sockets_per_host: usize,
    /// Fleet-wide connections closed (and as many opened) per second.
    #[arg(long, default_value_t = 0.0)]
    churn_per_sec: f64,
    /// Planted client_only connections (the client holds it, the server does not).
    #[arg(long, default_value_t = 0)]
    orphans: usize,
    /// Planted server_only connections (the server holds it, the client does not).
    #[arg(long, default_value_t = 0)]
    server_only: usize,
    /// Collector report interval.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    interval: Duration,
    /// How long to run once the fleet is up.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// When to plant, after the fleet is up (default: two intervals).
    #[arg(long, value_parser = parse_duration)]
    plant_after: Option<Duration>,
    /// Spread planting over this long instead of one burst.
    #[arg(long, value_parser = parse_duration)]
    plant_over: Option<Duration>,
    /// Server ports connections go to (each below 10000).
    #[arg(long, value_delimiter = ',', default_value = "3306")]
    server_ports: Vec<u16>,
    /// Hosts sharing one HTTP/2 connection to the reconciler.
    #[arg(long, default_value_t = 50)]
    hosts_per_channel: usize,
    /// Full tables built and in flight at once (bounds the simulator's memory).
    #[arg(long, default_value_t = 4)]
    full_concurrency: usize,
    /// Seed of every random choice (world, phases, churn, planting).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Give up if the fleet is not up (every host judgeable) within this long.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    up_timeout: Duration,
    /// End as soon as every planted orphan has been found.
    #[arg(long)]
    stop_when_found: bool,
    /// Skip the final comparison of every host's table size with the reconciler's.
    #[arg(long)]
    no_verify: bool,
    /// Reconciler process id: its RSS is shown in progress lines and its peak RSS added to the JSON.
    #[arg(long)]
    reconciler_pid: Option<u32>,
    /// Async worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 500ms, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// The result of a run (printed as one JSON object with `--json`).
#[derive(Serialize, Debug, Default)]
struct Summary {
    hosts: usize,
    sockets: u64,
    connections: u64,
    /// Reports (full or delta, however many messages each) over the whole run.
    reports_sent: u64,
    /// Reports per second after the fleet was up (steady state).
    reports_per_sec: f64,
    /// Socket records (upserted + removed) over the whole run.
    records_sent: u64,
    /// Records per second after the fleet was up (steady state).
    records_per_sec: f64,
    /// Encoded protobuf bytes of every collector message (HTTP/2 framing excluded).
    bytes_sent: u64,
    planted: usize,
    found: usize,
    false_positives: usize,
    server_only_planted: usize,
    server_only_found: usize,
    /// listener_at_risk findings on server ports that planted orphans point at.
    listeners_at_risk: usize,
    /// First poll listing a planted orphan minus the moment its report was sent.
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    latency_max_ms: Option<f64>,
    /// The same by the reconciler's confirmed_at stamp (same machine only).
    confirm_latency_p50_ms: Option<f64>,
    confirm_latency_p99_ms: Option<f64>,
    /// Time after the fleet was up.
    duration_s: f64,
    /// Start (world built) to fleet up: every host's full table applied.
    fleet_up_s: f64,
    /// Records of the first full tables per second of fleet_up_s.
    ingest_records_per_sec: f64,
    world_build_s: f64,
    wall_s: f64,
    interval_ms: u64,
    churn_per_sec: f64,
    churned: u64,
    planted_at_s: Option<f64>,
    /// Wall clock of the planting (to compare with the reconciler's log).
    planted_at_unix_ms: Option<i64>,
    full_reports: u64,
    /// Full tables sent again (after a reconnect or a Resync).
    repeat_full_reports: u64,
    report_messages: u64,
    lookups_answered: u64,
    lookup_tuples: u64,
    lookup_tuples_present: u64,
    resyncs: u64,
    stream_errors: u64,
    sessions: u64,
    /// ListOrphans / ListHosts calls that failed (e.g. an answer over the
    /// reconciler's message size limit).
    poll_errors: u64,
    polls: u64,
    /// Planted orphans listed by the last poll (findings must not vanish).
    orphans_listed_at_end: usize,
    /// Hosts whose socket counts at the reconciler differ from the truth after the quiet interval.
    table_mismatch_hosts: Option<usize>,
    channels: usize,
    seed: u64,
    /// The simulator's world tables (the rest of its RSS is mostly encoded
    /// full tables waiting in HTTP/2 send buffers while the reconciler ingests).
    sim_table_bytes: u64,
    sim_peak_rss_bytes: Option<u64>,
    reconciler_peak_rss_bytes: Option<u64>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    validate(&args)?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build().context("starting the async runtime")?;
    let json = args.json;
    let summary = rt.block_on(run(args))?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let v = serde_json::to_value(&summary)?;
        if let Some(m) = v.as_object() {
            for (k, v) in m {
                println!("{k:>26}: {v}");
            }
        }
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

fn validate(a: &Args) -> Result<()> {
    if a.hosts < 2 || a.hosts > addr::MAX_HOSTS {
        bail!("--hosts must be in 2..={}", addr::MAX_HOSTS);
    }
    if a.sockets_per_host > world::EPHEMERAL_PORTS * 9 / 10 {
        bail!("--sockets-per-host must be at most {}", world::EPHEMERAL_PORTS * 9 / 10);
    }
    if !(a.churn_per_sec >= 0.0 && a.churn_per_sec.is_finite()) {
        bail!("--churn-per-sec must be a finite number >= 0");
    }
    if a.hosts_per_channel == 0 || a.full_concurrency == 0 {
        bail!("--hosts-per-channel and --full-concurrency must be at least 1");
    }
    Ok(())
}

/// VmHWM / VmRSS of a process, in bytes.
fn proc_mem(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds (user + system) a process has used so far (USER_HZ = 100).
fn proc_cpu_s(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU use of the simulator and (if known) the reconciler since the last call,
/// as "cpu sim 35% reconciler 160%".
struct CpuMeter {
    pid: Option<String>,
    last: (Instant, f64, f64),
}

impl CpuMeter {
    fn new(pid: Option<u32>) -> Self {
        let pid = pid.map(|p| p.to_string());
        let r = pid.as_deref().and_then(proc_cpu_s).unwrap_or(0.0);
        CpuMeter {
            last: (Instant::now(), proc_cpu_s("self").unwrap_or(0.0), r),
            pid,
        }
    }

    fn line(&mut self) -> String {
        let now = Instant::now();
        let s = proc_cpu_s("self").unwrap_or(0.0);
        let r = self.pid.as_deref().and_then(proc_cpu_s);
        let dt = (now - self.last.0).as_secs_f64().max(1e-3);
        let mut out = format!(", cpu sim {:.0}%", (s - self.last.1) / dt * 100.0);
        if let Some(r) = r {
            out += &format!(" reconciler {:.0}%", (r - self.last.2) / dt * 100.0);
        }
        self.last = (now, s, r.unwrap_or(0.0));
        out
    }
}

fn gib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Counter values at one moment, for rates.
#[derive(Clone, Copy, Default)]
struct Snap {
    reports: u64,
    records: u64,
}

fn snap(c: &Counters) -> Snap {
    Snap {
        reports: Counters::get(&c.reports),
        records: Counters::get(&c.full_records) + Counters::get(&c.delta_records),
    }
}

struct Poller {
    query: QueryClient<Channel>,
    fleet: Arc<Fleet>,
    polls: u64,
    errors: u64,
    last_listed: usize,
    planted_listed: usize,
}

impl Poller {
    /// One ListOrphans poll, scored.
    async fn orphans(&mut self) {
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            halfopen_proto::client::list_findings(&mut self.query, ""),
        )
        .await;
        let at = Instant::now();
        match r {
            Ok(Ok(findings)) => {
                self.polls += 1;
                let mut reg = self.fleet.registry();
                let before = reg.fp_examples.len();
                let s = reg.observe(&findings, at);
                for ex in &reg.fp_examples[before..] {
                    eprintln!("FALSE POSITIVE: {ex}");
                }
                self.last_listed = s.listed;
                self.planted_listed = s.planted_listed;
            }
            Ok(Err(e)) => self.error(format!("ListOrphans failed: {e}")),
            Err(_) => self.error("ListOrphans timed out".into()),
        }
    }

    async fn hosts(&mut self) -> Option<Vec<v1::HostInfo>> {
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            self.query.list_hosts(v1::ListHostsRequest::default()),
        )
        .await;
        match r {
            Ok(Ok(resp)) => Some(resp.into_inner().hosts),
            Ok(Err(e)) => {
                self.error(format!("ListHosts failed: {e}"));
                None
            }
            Err(_) => {
                self.error("ListHosts timed out".into());
                None
            }
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        if self.errors <= 5 {
            eprintln!("{e}");
        }
    }
}

/// Index of a simulated host named in ListHosts, if it is one of ours.
fn listed_host(h: &v1::HostInfo, hosts: usize) -> Option<HostIdx> {
    let i: usize = h.host_id.strip_prefix("sim-")?.parse().ok()?;
    (i < hosts && h.addresses.iter().any(|a| addr::host_of_wire(a) == Some(i as HostIdx))).then_some(i as HostIdx)
}

async fn run(a: Args) -> Result<Summary> {
    let t0 = Instant::now();
    let url = halfopen_proto::transport::reconciler_url(&a.reconciler);
    eprintln!(
        "building the world: {} hosts x {} connections ...",
        a.hosts, a.sockets_per_host
    );
    let world = {
        let (hosts, per, ports, seed) = (a.hosts, a.sockets_per_host, a.server_ports.clone(), a.seed);
        tokio::task::spawn_blocking(move || World::new(hosts, per, &ports, seed)).await??
    };
    let world_build = t0.elapsed();
    let total_sockets = world.sockets();
    eprintln!(
        "world built in {:.1}s: {} sockets, {} connections, ~{} of tables",
        world_build.as_secs_f64(),
        total_sockets,
        world.connections(),
        gib(world.heap_bytes())
    );

    let endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("invalid reconciler URL {url:?}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_timeout(Duration::from_secs(20));
    let n_channels = a.hosts.div_ceil(a.hosts_per_channel);
    let mut channels = Vec::with_capacity(n_channels);
    for _ in 0..n_channels {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("cannot reach the reconciler at {url}"))?,
        );
    }
    let query = halfopen_proto::transport::query_client(endpoint.connect().await?);

    let (stop_tx, stop_rx) = watch::channel(false);
    let fleet = Arc::new(Fleet {
        world: Mutex::new(world),
        registry: Mutex::new(Registry::default()),
        counters: Counters::default(),
        full_gate: Semaphore::new(a.full_concurrency),
        interval: a.interval,
        stop: stop_rx,
    });
    let mut phases = Rng::new(a.seed ^ 0xC0FF_EE00);
    let mut tasks = tokio::task::JoinSet::new();
    let t_connect = Instant::now();
    for h in 0..a.hosts {
        let phase = Duration::from_millis(phases.below(a.interval.as_millis().max(1) as u64));
        let client = halfopen_proto::transport::ingest_client(channels[h / a.hosts_per_channel].clone());
        tasks.spawn(collector::run_host(h as HostIdx, phase, client, fleet.clone()));
    }
    eprintln!(
        "{} collectors started on {} channels (interval {:?}, full tables at random phases)",
        a.hosts, n_channels, a.interval
    );

    let mut poller = Poller {
        query,
        fleet: fleet.clone(),
        polls: 0,
        errors: 0,
        last_listed: 0,
        planted_listed: 0,
    };
    let c = &fleet.counters;
    let rss = |pid: Option<u32>| -> String {
        pid.and_then(|p| proc_mem(&p.to_string(), "VmRSS:"))
            .map(|b| format!(", reconciler rss {}", gib(b)))
            .unwrap_or_default()
    };

    let mut cpu = CpuMeter::new(a.reconciler_pid);
    // Phase 1: until every host is judgeable at the reconciler.
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_progress = Instant::now();
    loop {
        tick.tick().await;
        poller.orphans().await;
        let listed = poller.hosts().await.unwrap_or_default();
        let ours: Vec<_> = listed.iter().filter(|h| listed_host(h, a.hosts).is_some()).collect();
        let judgeable = ours.iter().filter(|h| !h.stale && h.connected).count();
        let held: u64 = ours.iter().map(|h| h.sockets).sum();
        if last_progress.elapsed() >= Duration::from_secs(10) || judgeable == a.hosts {
            last_progress = Instant::now();
            eprintln!(
                "ingest +{:.0}s: {}/{} hosts sent a full table ({} again), {}/{} hosts judgeable, reconciler holds {}/{} sockets{}{}",
                t_connect.elapsed().as_secs_f64(),
                Counters::get(&c.hosts_sent_full),
                a.hosts,
                Counters::get(&c.repeat_fulls),
                judgeable,
                a.hosts,
                held,
                total_sockets,
                rss(a.reconciler_pid),
                cpu.line()
            );
        }
        if judgeable == a.hosts {
            break;
        }
        if t_connect.elapsed() > a.up_timeout {
            bail!(
                "the fleet was not up after {:?} ({judgeable}/{} hosts judgeable)",
                a.up_timeout,
                a.hosts
            );
        }
    }
    let fleet_up = Instant::now();
    let up_s = (fleet_up - t_connect).as_secs_f64();
    let at_up = snap(c);
    eprintln!(
        "fleet up: {} hosts, {} sockets, {} connections in {:.1}s ({:.0} records/s ingested){}",
        a.hosts,
        total_sockets,
        total_sockets / 2,
        up_s,
        at_up.records as f64 / up_s,
        rss(a.reconciler_pid)
    );

    // Phase 2: churn, plant, poll.
    let (churn_stop_tx, churn_stop_rx) = watch::channel(false);
    let churned = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let churn_task = (a.churn_per_sec > 0.0).then(|| {
        tokio::spawn(churn(
            fleet.clone(),
            a.churn_per_sec,
            churn_stop_rx.clone(),
            churned.clone(),
        ))
    });
    let plant_after = a.plant_after.unwrap_or(a.interval * 2);
    let planted_at: Arc<Mutex<Option<(Instant, i64)>>> = Arc::default();
    let plant_task = (a.orphans + a.server_only > 0).then(|| {
        tokio::spawn(plant(
            fleet.clone(),
            a.orphans,
            a.server_only,
            plant_after,
            a.plant_over.unwrap_or(Duration::ZERO),
            planted_at.clone(),
        ))
    });
    let end = fleet_up + a.duration;
    last_progress = Instant::now();
    let mut last_snap = at_up;
    while Instant::now() < end {
        tick.tick().await;
        poller.orphans().await;
        let reg_done = {
            let r = fleet.registry();
            (r.found(Kind::Orphan), r.count(Kind::Orphan), r.false_positives())
        };
        if last_progress.elapsed() >= Duration::from_secs(10) {
            let dt = last_progress.elapsed().as_secs_f64();
            last_progress = Instant::now();
            let s = snap(c);
            eprintln!(
                "+{:.0}s: {:.0} reports/s, {:.0} records/s, {} lookups ({} tuples), churned {}, planted {}, found {}, false positives {}, listed {}{}{}",
                fleet_up.elapsed().as_secs_f64(),
                (s.reports - last_snap.reports) as f64 / dt,
                (s.records - last_snap.records) as f64 / dt,
                Counters::get(&c.lookups),
                Counters::get(&c.lookup_tuples),
                churned.load(Relaxed),
                reg_done.1,
                reg_done.0,
                reg_done.2,
                poller.last_listed,
                rss(a.reconciler_pid),
                cpu.line()
            );
            last_snap = s;
        }
        if a.stop_when_found && a.orphans > 0 && reg_done.1 == a.orphans && reg_done.0 == a.orphans {
            eprintln!("every planted orphan found: stopping early");
            break;
        }
    }
    let window = fleet_up.elapsed();
    let at_end = snap(c);

    // Phase 3: quiet the world, let every host report it, compare tables.
    let _ = churn_stop_tx.send(true);
    if let Some(t) = churn_task {
        t.await??;
    }
    if let Some(t) = plant_task {
        if !t.is_finished() {
            eprintln!("warning: --duration ended before planting finished");
            t.abort();
        } else {
            t.await??;
        }
    }
    let mut mismatch = None;
    if !a.no_verify {
        tokio::time::sleep(a.interval + Duration::from_secs(1)).await;
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(a.interval).await;
            }
            if let Some(listed) = poller.hosts().await {
                let w = fleet.world();
                let mut bad = Vec::new();
                let mut seen = 0;
                for h in &listed {
                    let Some(i) = listed_host(h, a.hosts) else { continue };
                    seen += 1;
                    let t = w.counts(i);
                    if (h.sockets, h.client_sockets, h.server_sockets) != (t.sockets, t.clients, t.servers) {
                        bad.push(format!(
                            "{}: reconciler {}/{}/{} vs sim {}/{}/{} (sockets/client/server)",
                            h.host_id, h.sockets, h.client_sockets, h.server_sockets, t.sockets, t.clients, t.servers
                        ));
                    }
                }
                let n = bad.len() + (a.hosts - seen);
                mismatch = Some(n);
                if n == 0 {
                    break;
                }
                if attempt == 2 {
                    for b in bad.iter().take(5) {
                        eprintln!("TABLE MISMATCH {b}");
                    }
                }
            }
        }
    }
    poller.orphans().await;

    let _ = stop_tx.send(true);
    let drain = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    });
    if drain.await.is_err() {
        tasks.abort_all();
    }

    let w = fleet.world();
    let reg = fleet.registry();
    let lat = reg.latencies_ms();
    let clat = reg.confirm_latencies_ms();
    let missing = reg.missing(5);
    if !missing.is_empty() {
        eprintln!(
            "NOT FOUND: {} planted orphans, e.g.:",
            reg.count(Kind::Orphan) - reg.found(Kind::Orphan)
        );
        for m in missing {
            eprintln!("  {m}");
        }
    }
    let win = window.as_secs_f64();
    let planted = *planted_at.lock().unwrap_or_else(|p| p.into_inner());
    let summary = Summary {
        hosts: a.hosts,
        sockets: w.sockets(),
        connections: w.connections(),
        reports_sent: Counters::get(&c.reports),
        reports_per_sec: round1((at_end.reports - at_up.reports) as f64 / win),
        records_sent: at_end.records,
        records_per_sec: round1((at_end.records - at_up.records) as f64 / win),
        bytes_sent: Counters::get(&c.bytes),
        planted: reg.count(Kind::Orphan),
        found: reg.found(Kind::Orphan),
        false_positives: reg.false_positives(),
        server_only_planted: reg.count(Kind::ServerOnly),
        server_only_found: reg.found(Kind::ServerOnly),
        listeners_at_risk: reg.listeners_at_risk(),
        latency_p50_ms: percentile(&lat, 50.0).map(round1),
        latency_p99_ms: percentile(&lat, 99.0).map(round1),
        latency_max_ms: percentile(&lat, 100.0).map(round1),
        confirm_latency_p50_ms: percentile(&clat, 50.0),
        confirm_latency_p99_ms: percentile(&clat, 99.0),
        duration_s: round1(win),
        fleet_up_s: round1(up_s),
        ingest_records_per_sec: round1(at_up.records as f64 / up_s),
        world_build_s: round1(world_build.as_secs_f64()),
        wall_s: round1(t0.elapsed().as_secs_f64()),
        interval_ms: a.interval.as_millis() as u64,
        churn_per_sec: a.churn_per_sec,
        churned: churned.load(Relaxed),
        planted_at_s: planted.map(|t| round1(t.0.saturating_duration_since(fleet_up).as_secs_f64())),
        planted_at_unix_ms: planted.map(|t| t.1),
        full_reports: Counters::get(&c.full_reports),
        repeat_full_reports: Counters::get(&c.repeat_fulls),
        report_messages: Counters::get(&c.report_messages),
        lookups_answered: Counters::get(&c.lookups),
        lookup_tuples: Counters::get(&c.lookup_tuples),
        lookup_tuples_present: Counters::get(&c.lookup_present),
        resyncs: Counters::get(&c.resyncs),
        stream_errors: Counters::get(&c.stream_errors),
        sessions: Counters::get(&c.sessions),
        poll_errors: poller.errors,
        polls: poller.polls,
        orphans_listed_at_end: poller.planted_listed,
        table_mismatch_hosts: mismatch,
        channels: n_channels,
        seed: a.seed,
        sim_table_bytes: w.heap_bytes(),
        sim_peak_rss_bytes: proc_mem("self", "VmHWM:"),
        reconciler_peak_rss_bytes: a.reconciler_pid.and_then(|p| proc_mem(&p.to_string(), "VmHWM:")),
    };
    Ok(summary)
}

/// Closes `rate` random connections per second (and opens as many), in
/// small batches, until told to stop.
async fn churn(
    fleet: Arc<Fleet>,
    rate: f64,
    mut stop: watch::Receiver<bool>,
    done: Arc<std::sync::atomic::AtomicU64>,
) -> Result<()> {
    let start = Instant::now();
    let mut iv = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            _ = iv.tick() => {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                if due > n {
                    let mut w = fleet.world();
                    for _ in n..due {
                        w.churn_one()?;
                    }
                    n = due;
                    done.store(n, Relaxed);
                }
            }
        }
    }
}

/// Waits `after`, then plants the orphans and server_only connections, at
/// once or spread over `over`. Each is registered before any report can
/// carry it.
async fn plant(
    fleet: Arc<Fleet>,
    orphans: usize,
    server_only: usize,
    after: Duration,
    over: Duration,
    planted_at: Arc<Mutex<Option<(Instant, i64)>>>,
) -> Result<()> {
    tokio::time::sleep(after).await;
    let start = Instant::now();
    *planted_at.lock().unwrap_or_else(|p| p.into_inner()) = Some((start, observe::wall_ms()));
    eprintln!("planting {orphans} orphans and {server_only} server_only connections");
    let (mut o, mut s) = (0, 0);
    loop {
        let frac = if over.is_zero() {
            1.0
        } else {
            (start.elapsed().as_secs_f64() / over.as_secs_f64()).min(1.0)
        };
        let (to, ts) = (
            (orphans as f64 * frac).round() as usize,
            (server_only as f64 * frac).round() as usize,
        );
        {
            let mut w = fleet.world();
            let mut r = fleet.registry();
            while o < to {
                r.add(w.plant_orphan()?, Kind::Orphan);
                o += 1;
            }
            while s < ts {
                r.add(w.plant_server_only()?, Kind::ServerOnly);
                s += 1;
            }
        }
        if o == orphans && s == server_only {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_with_defaults() {
        let a = Args::try_parse_from(["halfopen-sim", "--reconciler", "127.0.0.1:7077"]).unwrap();
        assert_eq!(a.interval, Duration::from_secs(5));
        assert_eq!(a.server_ports, vec![3306]);
        assert_eq!(
            halfopen_proto::transport::reconciler_url(&a.reconciler),
            "http://127.0.0.1:7077"
        );
        validate(&a).unwrap();
        let a = Args::try_parse_from([
            "halfopen-sim",
            "--reconciler",
            "http://x:1",
            "--hosts",
            "1000",
            "--sockets-per-host",
            "10000",
            "--churn-per-sec",
            "1000",
            "--orphans",
            "50000",
            "--server-only",
            "10",
            "--interval",
            "2s",
            "--duration",
            "1m",
            "--plant-after",
            "500ms",
            "--server-ports",
            "3306,5432",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.duration, Duration::from_secs(60));
        assert_eq!(a.plant_after, Some(Duration::from_millis(500)));
        assert_eq!(a.server_ports, vec![3306, 5432]);
        validate(&a).unwrap();
        assert!(
            Args::try_parse_from(["halfopen-sim"]).is_err(),
            "--reconciler is required"
        );
        assert!(Args::try_parse_from(["halfopen-sim", "--reconciler", "x", "--interval", "0s"]).is_err());
        let mut bad = a.clone();
        bad.hosts = 1;
        assert!(validate(&bad).is_err());
        bad.hosts = addr::MAX_HOSTS + 1;
        assert!(validate(&bad).is_err());
    }

    #[test]
    fn listed_hosts_are_recognised_by_name_and_address() {
        let h = |id: &str, ip: [u8; 4]| v1::HostInfo {
            host_id: id.into(),
            addresses: vec![ip.to_vec()],
            ..Default::default()
        };
        assert_eq!(listed_host(&h("sim-3", [198, 18, 0, 4]), 10), Some(3));
        assert_eq!(listed_host(&h("sim-3", [198, 18, 0, 5]), 10), None);
        assert_eq!(listed_host(&h("sim-30", [198, 18, 0, 31]), 10), None, "beyond --hosts");
        assert_eq!(listed_host(&h("db-1", [198, 18, 0, 2]), 10), None);
        assert_eq!(addr::host_of_ip("198.18.0.4".parse().unwrap()), Some(3));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let a = proc_cpu_s("self").unwrap();
        assert!(a >= 0.0);
        assert!(proc_cpu_s("0").is_none());
        assert!(CpuMeter::new(None).line().starts_with(", cpu sim "));
    }

    #[test]
    fn summary_has_the_promised_fields() {
        let v = serde_json::to_value(Summary::default()).unwrap();
        for k in [
            "hosts",
            "sockets",
            "connections",
            "reports_sent",
            "reports_per_sec",
            "records_per_sec",
            "planted",
            "found",
            "false_positives",
            "server_only_planted",
            "server_only_found",
            "latency_p50_ms",
            "latency_p99_ms",
            "duration_s",
            "bytes_sent",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
