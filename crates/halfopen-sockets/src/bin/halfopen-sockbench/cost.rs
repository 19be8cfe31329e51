//! `collector-cost` and `scan-cost`.
//!
//! `collector-cost` replicates, step by step and in the same order,
//! `Worker::report` of crates/halfopen-collector/src/kernel.rs (the kernel
//! worker's work for one report interval; the collector crate cannot be a
//! dependency of this one): listeners dump, `scan(MATCH_MASK, false)`, side
//! classification with `ListenerPorts`, listener owners through the `Owners`
//! cache, the libwrap check of listener owners (cached, refreshed every 60
//! reports), the TCP counters and sysctls, the greeting-port dump
//! (`scan_ports(ESTABLISHED, true, greeting ports)`), the tuple -> record
//! map and the diff against the previous one (full the first time, deltas
//! after). Not included: turning the report into protobuf messages and
//! sending them (the gRPC side); the real collector's figure in
//! BENCHMARKS.md includes those.
//!
//! CPU time is CLOCK_THREAD_CPUTIME_ID (user + system, exact): this program
//! does the work on one thread, and the kernel time of a dump is charged to
//! the thread that reads it.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use halfopen_core::counters::{parse_proc_net_counters, SYSCTLS, TRACKED};
use halfopen_core::{Listener, ListenerPorts, Side, SocketRecord, TcpState, Tuple};
use halfopen_sockets::diag::DiagSocket;
use halfopen_sockets::{Family, Owners, Scanner};

use crate::{median, vm_hwm_kib, Args};

/// The reconciler's default greeting ports (`halfopen reconciler --greeting-port`).
const DEFAULT_GREETING_PORTS: [u16; 8] = [21, 22, 25, 110, 119, 143, 587, 3306];
const LIBWRAP_REFRESH: u64 = 60;

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID: the
/// scheduler's exact runtime, user and system; getrusage's figures move in
/// scheduler ticks here).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU and wall time of the phases of one interval.
#[derive(Default, Clone)]
struct Phases {
    names: Vec<&'static str>,
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
}

struct Clock {
    cpu: Duration,
    wall: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }
    fn lap(&mut self, p: &mut Phases, name: &'static str) {
        let (cpu, wall) = (thread_cpu(), Instant::now());
        p.names.push(name);
        p.cpu.push(cpu.saturating_sub(self.cpu));
        p.wall.push(wall - self.wall);
        self.cpu = cpu;
        self.wall = wall;
    }
}

fn same(a: &SocketRecord, b: &SocketRecord) -> bool {
    a.cookie == b.cookie && a.state == b.state && a.side == b.side && a.keepalive == b.keepalive
}

fn maps_have_libwrap(maps: &str) -> bool {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|path| path.rsplit('/').next().is_some_and(|f| f.starts_with("libwrap.so")))
}

fn counters() -> BTreeMap<String, u64> {
    let mut all = BTreeMap::new();
    for path in ["/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(parsed) = parse_proc_net_counters(&text) {
                all.extend(parsed);
            }
        }
    }
    all.into_iter().filter(|(k, _)| TRACKED.contains(&k.as_str())).collect()
}

fn sysctls() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in SYSCTLS {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        if let Ok(v) = std::fs::read_to_string(&path) {
            out.insert(name.to_string(), v.trim().to_string());
        }
    }
    out
}

/// The state `Worker` keeps between reports.
struct Worker {
    scanner: Scanner,
    owners: Owners,
    sent: HashMap<Tuple, SocketRecord>,
    buf: Vec<SocketRecord>,
    listeners: Vec<Listener>,
    greeting_ports: Vec<u16>,
    stall_after_ms: u32,
    remote_only: bool,
    greeting_buf: Vec<SocketRecord>,
    libwrap: HashMap<u32, bool>,
    reports: u64,
}

/// What one report carried (the sizes only).
#[derive(Default)]
struct Report {
    sockets: usize,
    upserted: usize,
    removed: usize,
    silent: usize,
    greeting_dump: usize,
}

impl Worker {
    fn report(&mut self, full: bool, p: &mut Phases) -> Result<Report, String> {
        let mut clock = Clock::start();
        // Worker::scan
        self.listeners.clear();
        self.scanner.listeners(&mut self.listeners).map_err(|e| e.to_string())?;
        let ports = ListenerPorts::new(self.listeners.iter().map(|l| l.addr));
        clock.lap(p, "listeners");
        self.buf.clear();
        self.scanner
            .scan(TcpState::MATCH_MASK, false, &mut self.buf)
            .map_err(|e| e.to_string())?;
        clock.lap(p, "scan");
        for r in &mut self.buf {
            r.side = ports.side_of(r.tuple.local());
        }
        clock.lap(p, "sides");
        let mut out = Report {
            sockets: self.buf.len(),
            ..Default::default()
        };
        // listener owners
        let inodes: Vec<u64> = self.listeners.iter().map(|l| l.inode).filter(|&i| i != 0).collect();
        if !inodes.is_empty() {
            let (procs, _stats) = self.owners.resolve(&inodes);
            for l in &mut self.listeners {
                l.process = procs.get(&l.inode).cloned();
            }
        }
        self.reports += 1;
        if self.reports.is_multiple_of(LIBWRAP_REFRESH) {
            self.libwrap.clear();
        }
        for l in &mut self.listeners {
            if let Some(pid) = l.process.as_ref().map(|p| p.pid) {
                l.libwrap = *self.libwrap.entry(pid).or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| maps_have_libwrap(&m))
                });
            }
        }
        let listeners = self.listeners.clone();
        clock.lap(p, "owners+libwrap");
        let c = counters();
        let s = sysctls();
        clock.lap(p, "counters+sysctls");
        // silent_sockets
        if !self.greeting_ports.is_empty() {
            self.greeting_buf.clear();
            let mask = TcpState::Established.mask_bit();
            let lp = ListenerPorts::new(listeners.iter().map(|l| l.addr));
            if self.remote_only {
                self.scanner
                    .scan_remote_ports(mask, true, &self.greeting_ports, &mut self.greeting_buf)
                    .map_err(|e| e.to_string())?;
            } else {
                self.scanner
                    .scan_ports(mask, true, &self.greeting_ports, &mut self.greeting_buf)
                    .map_err(|e| e.to_string())?;
            }
            out.greeting_dump = self.greeting_buf.len();
            out.silent = self
                .greeting_buf
                .iter()
                .filter(|r| lp.side_of(r.tuple.local()) == Side::Client)
                .filter(|r| self.greeting_ports.contains(&r.tuple.remote_port()))
                .filter_map(|r| {
                    let i = r.info?;
                    (i.bytes_received == 0 && i.last_data_recv_ms >= self.stall_after_ms)
                        .then_some((r.tuple, i.last_data_recv_ms))
                })
                .count();
        }
        clock.lap(p, "greeting dump");
        let mut next: HashMap<Tuple, SocketRecord> = HashMap::with_capacity(self.buf.len());
        for r in &self.buf {
            next.insert(r.tuple, *r);
        }
        clock.lap(p, "map");
        let mut upserted = Vec::new();
        let mut removed = Vec::new();
        if full {
            upserted = next.values().copied().collect();
        } else {
            for (t, r) in &next {
                match self.sent.get(t) {
                    Some(old) if same(old, r) => {}
                    _ => upserted.push(*r),
                }
            }
            removed = self.sent.keys().filter(|t| !next.contains_key(t)).copied().collect();
        }
        out.upserted = upserted.len();
        out.removed = removed.len();
        self.sent = next;
        clock.lap(p, "diff");
        drop((upserted, removed, listeners, c, s));
        clock.lap(p, "drop report");
        Ok(out)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn collector_cost(args: &Args) -> Result<(), String> {
    let intervals: usize = args.get("intervals", 20)?;
    let sleep = Duration::from_millis(args.get("sleep-ms", 0)?);
    let remote_only = match args.get_str("filter").unwrap_or("either") {
        "either" => false,
        "remote" => true,
        f => return Err(format!("--filter {f}: either or remote")),
    };
    let mut w = Worker {
        scanner: Scanner::open().map_err(|e| e.to_string())?,
        owners: Owners::new(),
        sent: HashMap::new(),
        buf: Vec::new(),
        listeners: Vec::new(),
        greeting_ports: args.ports("greeting-ports", &DEFAULT_GREETING_PORTS)?,
        stall_after_ms: args.get("stall-after-ms", 10_000)?,
        remote_only,
        greeting_buf: Vec::new(),
        libwrap: HashMap::new(),
        reports: 0,
    };
    let mut per: Vec<Phases> = Vec::new();
    let mut last = Report::default();
    for i in 0..intervals.max(2) {
        let mut p = Phases::default();
        last = w.report(i == 0, &mut p)?;
        if i == 0 {
            eprintln!(
                "collector-cost: {} sockets, greeting dump {} sockets, {} silent; first report upserted {}",
                last.sockets, last.greeting_dump, last.silent, last.upserted
            );
        }
        per.push(p);
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
    }
    let total = |p: &Phases| (p.cpu.iter().sum::<Duration>(), p.wall.iter().sum::<Duration>());
    let (first_cpu, first_wall) = total(&per[0]);
    let steady: Vec<(Duration, Duration)> = per[1..].iter().map(total).collect();
    let cpu_med = median(&steady.iter().map(|s| ms(s.0)).collect::<Vec<_>>());
    let wall_med = median(&steady.iter().map(|s| ms(s.1)).collect::<Vec<_>>());
    let mut line = format!(
        "RESULT collector-cost sockets={} intervals={} greeting_dump={} silent={} delta_upserted={} delta_removed={} \
         first_cpu_ms={:.1} first_wall_ms={:.1} cpu_ms={cpu_med:.1} wall_ms={wall_med:.1}",
        last.sockets,
        per.len(),
        last.greeting_dump,
        last.silent,
        last.upserted,
        last.removed,
        ms(first_cpu),
        ms(first_wall),
    );
    // per-phase medians over the steady intervals
    for (k, name) in per[0].names.iter().enumerate() {
        let c = median(&per[1..].iter().map(|p| ms(p.cpu[k])).collect::<Vec<_>>());
        let key = name.replace([' ', '+'], "_");
        line.push_str(&format!(" cpu_{key}_ms={c:.1}"));
    }
    line.push_str(&format!(" peak_rss_kib={}", vm_hwm_kib()));
    println!("{line}");
    Ok(())
}

/// Times `f` `reps` times; median wall and CPU in ms, and the note of the last run.
fn measure(reps: usize, mut f: impl FnMut() -> Result<String, String>) -> Result<(f64, f64, String), String> {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut note = String::new();
    for _ in 0..reps {
        let c0 = thread_cpu();
        let t0 = Instant::now();
        note = f()?;
        walls.push(ms(t0.elapsed()));
        cpus.push(ms(thread_cpu().saturating_sub(c0)));
    }
    Ok((median(&walls), median(&cpus), note))
}

pub(crate) fn scan_cost(args: &Args) -> Result<(), String> {
    let reps: usize = args.get("reps", 5)?.max(1);
    let mut sc = Scanner::open().map_err(|e| e.to_string())?;
    let mut listeners = Vec::new();
    sc.listeners(&mut listeners).map_err(|e| e.to_string())?;
    // default filter: the 10 reconciler-like ports, none of them the bench's
    let ports = args.ports("ports", &[21, 22, 25, 110, 119, 143, 587, 3306, 1521, 6379])?;
    let mut out: Vec<SocketRecord> = Vec::new();
    let mut d = DiagSocket::open().map_err(|e| e.to_string())?;
    let mask = TcpState::MATCH_MASK;
    let mut rows: Vec<(&str, (f64, f64, String))> = Vec::new();
    rows.push((
        "raw_dump",
        measure(reps, || {
            let mut n = 0u64;
            for f in Family::ALL {
                d.dump(f, mask, false, |_| n += 1).map_err(|e| e.to_string())?;
            }
            Ok(format!("{n}"))
        })?,
    ));
    rows.push((
        "raw_dump_all_families",
        measure(reps, || {
            let mut n = 0u64;
            d.dump_all_families(mask, false, None, |_| n += 1)
                .map_err(|e| e.to_string())?;
            Ok(format!("{n}"))
        })?,
    ));
    for (name, fam) in [("raw_dump_v4", Family::V4), ("raw_dump_v6", Family::V6)] {
        rows.push((
            name,
            measure(reps, || {
                let mut n = 0u64;
                d.dump(fam, mask, false, |_| n += 1).map_err(|e| e.to_string())?;
                Ok(format!("{n}"))
            })?,
        ));
    }
    rows.push((
        "raw_dump_info",
        measure(reps, || {
            let mut n = 0u64;
            for f in Family::ALL {
                d.dump(f, mask, true, |_| n += 1).map_err(|e| e.to_string())?;
            }
            Ok(format!("{n}"))
        })?,
    ));
    let mut scan = |name: &'static str, info: bool, filter: Option<&[u16]>, rows: &mut Vec<_>| -> Result<(), String> {
        let m = measure(reps, || {
            out.clear();
            let st = match filter {
                None => sc.scan(mask, info, &mut out),
                Some(p) => sc.scan_ports(mask, info, p, &mut out),
            }
            .map_err(|e| e.to_string())?;
            Ok(format!("{}", st.sockets))
        })?;
        rows.push((name, m));
        Ok(())
    };
    scan("scan", false, None, &mut rows)?;
    scan("scan_info", true, None, &mut rows)?;
    scan("scan_ports10", false, Some(&ports), &mut rows)?;
    scan("scan_ports10_info", true, Some(&ports), &mut rows)?;
    let lports: Vec<u16> = listeners.iter().map(|l| l.addr.port()).collect();
    scan("scan_ports_listeners_info", true, Some(&lports), &mut rows)?;
    out.clear();
    sc.scan(mask, false, &mut out).map_err(|e| e.to_string())?;
    rows.push((
        "map_build",
        measure(reps, || {
            let mut next: HashMap<Tuple, SocketRecord> = HashMap::with_capacity(out.len());
            for r in &out {
                next.insert(r.tuple, *r);
            }
            Ok(format!("{}", next.len()))
        })?,
    ));
    rows.push((
        "owners_resolve_all",
        measure(reps.min(3), || {
            let (m, st) = Owners::new().resolve_all();
            Ok(format!("{} inodes {} fds", m.len(), st.fds_walked))
        })?,
    ));
    for (name, (wall, cpu, note)) in rows {
        println!(
            "RESULT scan-cost what={name} wall_ms={wall:.1} cpu_ms={cpu:.1} n=\"{note}\" reps={reps} peak_rss_kib={}",
            vm_hwm_kib()
        );
    }
    Ok(())
}
