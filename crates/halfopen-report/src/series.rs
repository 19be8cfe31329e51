//! An incident as time series, for its plot and its timeline: one-sided
//! connections over time per client process (a sweep over the findings'
//! lifetimes, binned to a bounded number of points, so 50,000 findings cost
//! a sort, not 50,000 drawn shapes), the listener's accept queue against its
//! backlog, its drops and the host's overflow and SYN-cookie counters per
//! second (from the samples). Pure.
use halfopen_core::{FindingKind, Postmortem, Sample};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Most client processes drawn on their own; the rest are one "other".
pub const TOP_PROCESSES: usize = 6;
/// Points of the binned connection curves (about one per pixel column).
pub const BINS: usize = 900;
/// Most bins of the per-second rates (each at least one report interval
/// wide), so that a rate reads as a level, not as the jitter of single
/// reports.
pub const RATE_BINS: i64 = 200;

/// Kinds drawn as one-sided connections (as the incident's peak counts them).
pub fn one_sided(k: FindingKind) -> bool {
    matches!(k, FindingKind::ClientOnly | FindingKind::ServerOnly)
}

/// A client process (or the "other" processes) of the connection curves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// "php-fpm (pid 2201) on app-1", "12 other processes".
    pub label: String,
    /// One-sided connections of this group over the incident.
    pub connections: u64,
}

/// One point of a stacked curve: `at_ms` and the count of each group then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackPoint {
    pub at_ms: i64,
    pub counts: Vec<u64>,
}

impl StackPoint {
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The listener's accept queue at one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePoint {
    pub at_ms: i64,
    pub queue: u32,
    pub backlog: u32,
}

/// The counters drawn per second: host-wide increases from the samples
/// (/proc/net/netstat TcpExt, per collector report).
pub const RATE_COUNTERS: [&str; 3] = ["TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.SyncookiesSent"];

/// Everything the plot draws, on one time axis (reconciler wall clock, ms).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The time axis: the incident with the samples around it.
    pub from_ms: i64,
    pub to_ms: i64,
    /// The incident's start and end (None: still open at `now_ms`).
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub now_ms: i64,
    /// Client process groups, most connections first, "other" last.
    pub groups: Vec<Group>,
    /// One-sided connections current over time, per group (binned).
    pub one_sided: Vec<StackPoint>,
    /// stalled_greeting connections current over time (binned); empty when
    /// the incident has none.
    pub stalled: Vec<(i64, u64)>,
    /// The most one-sided connections at once and when first reached.
    pub peak: Option<(i64, u64)>,
    /// The listener whose queue is drawn (the incident's, or the sampled
    /// listener on its port).
    pub listener: Option<SocketAddr>,
    pub queue: Vec<QueuePoint>,
    /// The listener's drops per second (sk_drops increases between samples)
    /// per bin of `rate_bin_ms` starting at the time given; empty without
    /// samples that have it.
    pub drops: Vec<(i64, f64)>,
    /// Host counters per second, by [`RATE_COUNTERS`] name, in the same bins.
    pub rates: BTreeMap<&'static str, Vec<(i64, f64)>>,
    /// Width of the rate bins, ms.
    pub rate_bin_ms: i64,
    /// Usual time between samples (the collector's report interval), ms.
    pub interval_ms: Option<i64>,
    /// Increase of the listener's sk_drops within the incident; None when
    /// no sample had it.
    pub drops_total: Option<u64>,
    /// The fullest accept queue seen within the incident (from the samples).
    pub fullest: Option<QueuePoint>,
    /// Server-host samples with an overflow or SYN-cookie counter increase,
    /// first and last within the incident.
    pub overflow_first: Option<i64>,
    pub overflow_last: Option<i64>,
}

/// The group label of a client process.
pub fn process_label(host: &str, pid: Option<u32>, comm: Option<&str>) -> String {
    match (comm, pid) {
        (Some(c), Some(p)) => format!("{c} (pid {p}) on {host}"),
        (Some(c), None) => format!("{c} on {host}"),
        (None, Some(p)) => format!("pid {p} on {host}"),
        (None, None) => format!("unknown process on {host}"),
    }
}

type ProcKey = (String, Option<u32>, Option<String>);

fn proc_key(f: &halfopen_core::Finding) -> ProcKey {
    let p = f.process.as_ref();
    (
        f.subject.client_host().unwrap_or("").to_string(),
        p.map(|p| p.pid),
        p.map(|p| p.comm.clone()),
    )
}

/// Samples of `host`, in time order.
fn host_samples<'a>(samples: &'a [Sample], host: &str) -> Vec<&'a Sample> {
    let mut v: Vec<&Sample> = samples.iter().filter(|s| s.host == host).collect();
    v.sort_by_key(|s| s.at_ms);
    v
}

/// The sampled listener that is the incident's: the same address, else the
/// same port (a wildcard and a specific address of one port).
fn pick_listener(samples: &[&Sample], server: SocketAddr) -> Option<SocketAddr> {
    let all = || samples.iter().flat_map(|s| s.listeners.iter());
    all()
        .find(|l| l.addr == server)
        .or_else(|| all().find(|l| l.addr.port() == server.port()))
        .map(|l| l.addr)
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// Increases summed into bins of `width` ms from `from`, as per-second
/// rates at each bin's start; bins without a sample are 0.
fn rate_bins(points: &[(i64, u64)], from: i64, to: i64, width: i64) -> Vec<(i64, f64)> {
    let width = width.max(1);
    let n = (((to - from) / width) + 1).max(1) as usize;
    let mut sums = vec![0u64; n];
    for (t, v) in points {
        let i = ((t - from).max(0) / width) as usize;
        if let Some(x) = sums.get_mut(i) {
            *x += v;
        }
    }
    let per_s = width as f64 / 1000.0;
    sums.into_iter()
        .enumerate()
        .map(|(i, v)| (from + i as i64 * width, v as f64 / per_s))
        .collect()
}

fn is_overflow(s: &Sample) -> bool {
    halfopen_core::counters::overflowed(&s.deltas)
}

/// The series of `pm`; `now_ms` ends what is still current.
pub fn series(pm: &Postmortem, now_ms: i64) -> Series {
    let inc = &pm.incident;
    let start_ms = inc.start_ms;
    let end_ms = inc.end_ms;
    let until = end_ms.unwrap_or(now_ms).max(start_ms);
    let samples = host_samples(&pm.samples, &inc.server_host);

    // The time axis: the incident, widened to the samples around it; never empty.
    let mut from_ms = start_ms.min(samples.first().map_or(start_ms, |s| s.at_ms));
    let mut to_ms = until.max(samples.last().map_or(until, |s| s.at_ms));
    if samples.is_empty() {
        let pad = ((to_ms - from_ms) / 20).max(5_000);
        from_ms -= pad;
        to_ms += pad;
    }
    if to_ms <= from_ms {
        to_ms = from_ms + 1_000;
    }

    // Groups: client processes by one-sided connections.
    let mut counts: BTreeMap<ProcKey, u64> = BTreeMap::new();
    for f in pm.findings.iter().filter(|f| one_sided(f.finding.kind)) {
        *counts.entry(proc_key(&f.finding)).or_default() += 1;
    }
    let mut ranked: Vec<(ProcKey, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let own = if ranked.len() <= TOP_PROCESSES + 1 {
        ranked.len()
    } else {
        TOP_PROCESSES
    };
    let mut groups: Vec<Group> = ranked[..own]
        .iter()
        .map(|((h, pid, comm), n)| Group {
            label: process_label(h, *pid, comm.as_deref()),
            connections: *n,
        })
        .collect();
    let index: BTreeMap<&ProcKey, usize> = ranked[..own].iter().enumerate().map(|(i, (k, _))| (k, i)).collect();
    if ranked.len() > own {
        let rest = &ranked[own..];
        groups.push(Group {
            label: format!("{} other processes", rest.len()),
            connections: rest.iter().map(|r| r.1).sum(),
        });
    }
    let other = groups.len().saturating_sub(1);

    // Sweep: (time, +1/-1, group); at one instant ends before starts, as the
    // incident's peak counts them.
    let mut events: Vec<(i64, i8, usize)> = Vec::new();
    let mut stalled_events: Vec<(i64, i8)> = Vec::new();
    for f in &pm.findings {
        let s = f.finding.first_seen_ms;
        let e = f.end_ms(now_ms).max(s);
        if one_sided(f.finding.kind) {
            let g = index.get(&proc_key(&f.finding)).copied().unwrap_or(other);
            events.push((s, 1, g));
            events.push((e, -1, g));
        } else if f.finding.kind == FindingKind::StalledGreeting {
            stalled_events.push((s, 1));
            stalled_events.push((e, -1));
        }
    }
    events.sort_unstable();
    stalled_events.sort_unstable();

    let width = (to_ms - from_ms) as f64 / BINS as f64;
    let bin_of = |t: i64| (((t - from_ms) as f64 / width).floor().max(0.0) as usize).min(BINS - 1);
    let bin_start = |i: usize| from_ms + (i as f64 * width) as i64;

    let mut one_sided_pts: Vec<StackPoint> = Vec::new();
    let mut peak: Option<(i64, u64)> = None;
    if !groups.is_empty() {
        // Per bin: the moment with the most connections (the curve keeps
        // every peak); bins without events carry the last value.
        let mut cur = vec![0u64; groups.len()];
        let mut best: Vec<Option<(u64, Vec<u64>)>> = vec![None; BINS];
        let mut last_bin_state: Vec<Vec<u64>> = vec![Vec::new(); BINS];
        let mut i = 0;
        while i < events.len() {
            let t = events[i].0;
            while i < events.len() && events[i].0 == t {
                let (_, d, g) = events[i];
                cur[g] = if d > 0 { cur[g] + 1 } else { cur[g].saturating_sub(1) };
                i += 1;
            }
            let total: u64 = cur.iter().sum();
            if peak.is_none_or(|(_, p)| total > p) {
                peak = Some((t, total));
            }
            let b = bin_of(t);
            if best[b].as_ref().is_none_or(|(x, _)| total > *x) {
                best[b] = Some((total, cur.clone()));
            }
            last_bin_state[b] = cur.clone();
        }
        let mut carried = vec![0u64; groups.len()];
        for b in 0..BINS {
            let shown = match &best[b] {
                Some((_, c)) => c.clone(),
                None => carried.clone(),
            };
            one_sided_pts.push(StackPoint {
                at_ms: bin_start(b),
                counts: shown,
            });
            if !last_bin_state[b].is_empty() {
                carried = last_bin_state[b].clone();
            }
        }
        one_sided_pts.push(StackPoint {
            at_ms: to_ms,
            counts: carried,
        });
        peak = peak.filter(|p| p.1 > 0);
    }

    let mut stalled: Vec<(i64, u64)> = Vec::new();
    if !stalled_events.is_empty() {
        let mut best: Vec<Option<u64>> = vec![None; BINS];
        let mut last: Vec<Option<u64>> = vec![None; BINS];
        let mut cur = 0u64;
        for (t, d) in &stalled_events {
            cur = if *d > 0 { cur + 1 } else { cur.saturating_sub(1) };
            let b = bin_of(*t);
            best[b] = Some(best[b].map_or(cur, |x| x.max(cur)));
            last[b] = Some(cur);
        }
        let mut carried = 0;
        for b in 0..BINS {
            stalled.push((bin_start(b), best[b].unwrap_or(carried)));
            if let Some(l) = last[b] {
                carried = l;
            }
        }
        stalled.push((to_ms, carried));
    }

    // The listener and the host's counters.
    let listener = pick_listener(&samples, inc.server);
    let interval_ms = median(
        samples
            .windows(2)
            .map(|w| w[1].at_ms - w[0].at_ms)
            .filter(|d| *d > 0)
            .collect(),
    );
    let mut queue = Vec::new();
    let mut drop_incs: Vec<(i64, u64)> = Vec::new();
    let mut drops_total: Option<u64> = None;
    let mut fullest: Option<QueuePoint> = None;
    let mut prev_drops: Option<u64> = None;
    let within = |t: i64| t >= start_ms && t <= until;
    for s in &samples {
        let Some(l) = listener.and_then(|a| s.listeners.iter().find(|l| l.addr == a)) else {
            continue;
        };
        let q = QueuePoint {
            at_ms: s.at_ms,
            queue: l.queue,
            backlog: l.backlog,
        };
        queue.push(q);
        if within(s.at_ms) && fullest.is_none_or(|f| q.queue > f.queue) {
            fullest = Some(q);
        }
        if let Some(d) = l.drops {
            if let Some(pd) = prev_drops {
                // A listener recreated starts from 0 again.
                let inc = if d >= pd { d - pd } else { d };
                drop_incs.push((s.at_ms, inc));
                if within(s.at_ms) {
                    *drops_total.get_or_insert(0) += inc;
                }
            } else if within(s.at_ms) {
                drops_total.get_or_insert(0);
            }
            prev_drops = Some(d);
        }
    }
    let rate_bin_ms = interval_ms.unwrap_or(1_000).max((to_ms - from_ms) / RATE_BINS).max(1);
    let mut rates: BTreeMap<&'static str, Vec<(i64, f64)>> = BTreeMap::new();
    if !samples.is_empty() {
        for name in RATE_COUNTERS {
            let pts: Vec<(i64, u64)> = samples
                .iter()
                .map(|s| (s.at_ms, s.deltas.get(name).copied().unwrap_or(0)))
                .collect();
            rates.insert(name, rate_bins(&pts, from_ms, to_ms, rate_bin_ms));
        }
    }
    let drops = if drop_incs.is_empty() {
        Vec::new()
    } else {
        rate_bins(&drop_incs, from_ms, to_ms, rate_bin_ms)
    };
    let over: Vec<i64> = samples
        .iter()
        .filter(|s| within(s.at_ms) && is_overflow(s))
        .map(|s| s.at_ms)
        .collect();

    Series {
        from_ms,
        to_ms,
        start_ms,
        end_ms,
        now_ms,
        groups,
        one_sided: one_sided_pts,
        stalled,
        peak,
        listener,
        queue,
        drops,
        rates,
        rate_bin_ms,
        interval_ms,
        drops_total,
        fullest,
        overflow_first: over.first().copied(),
        overflow_last: over.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Incident, IncidentEnd, ListenerPoint};

    fn sample(at_ms: i64, addr: &str, queue: u32, drops: Option<u64>, cookies: u64) -> Sample {
        Sample {
            host: "db".into(),
            at_ms,
            deltas: [("TcpExt.SyncookiesSent".to_string(), cookies)].into(),
            listeners: vec![
                ListenerPoint {
                    addr: addr.parse().unwrap(),
                    queue,
                    backlog: 4,
                    drops,
                },
                ListenerPoint {
                    addr: "0.0.0.0:22".parse().unwrap(),
                    queue: 0,
                    backlog: 128,
                    drops: Some(1_000_000),
                },
            ],
        }
    }

    fn pm(samples: Vec<Sample>) -> Postmortem {
        Postmortem {
            incident: Incident {
                id: "db:3306@x".into(),
                server_host: "db".into(),
                // What the client dialed; the samples have the wildcard.
                server: "198.18.0.1:3306".parse().unwrap(),
                start_ms: 1_000,
                end_ms: Some(4_000),
                peak: 0,
                findings: 0,
                kinds: Default::default(),
                client_processes: Vec::new(),
                counters: Default::default(),
                finding_ids: Vec::new(),
                ended: IncidentEnd::Recovered,
            },
            findings: Vec::new(),
            samples,
        }
    }

    #[test]
    fn drops_are_increases_between_samples_and_survive_a_recreated_listener() {
        let s = series(
            &pm(vec![
                sample(0, "0.0.0.0:3306", 1, Some(10), 0),
                sample(1_000, "0.0.0.0:3306", 5, Some(15), 2),
                sample(2_000, "0.0.0.0:3306", 5, Some(3), 4),
                sample(3_000, "0.0.0.0:3306", 2, Some(8), 0),
                // Another host's sample is not this incident's.
                Sample {
                    host: "app".into(),
                    ..sample(3_500, "0.0.0.0:3306", 99, Some(0), 99)
                },
            ]),
            10_000,
        );
        assert_eq!(s.listener, Some("0.0.0.0:3306".parse().unwrap()), "picked by port");
        assert_eq!(
            s.drops_total,
            Some(5 + 3 + 5),
            "15-10, then 3 from a new socket, then 8-3"
        );
        assert_eq!(s.fullest.map(|q| (q.queue, q.backlog)), Some((5, 4)));
        assert_eq!(s.queue.len(), 4);
        assert_eq!(s.interval_ms, Some(1_000));
        assert_eq!(s.rate_bin_ms, 1_000, "one report per bin on a short axis");
        let cookies: Vec<f64> = s.rates["TcpExt.SyncookiesSent"].iter().map(|x| x.1).collect();
        assert_eq!(&cookies[..4], &[0.0, 2.0, 4.0, 0.0]);
        let drops: Vec<f64> = s.drops.iter().map(|x| x.1).collect();
        assert_eq!(&drops[..4], &[0.0, 5.0, 3.0, 5.0]);
        assert!(s.peak.is_none() && s.groups.is_empty() && s.one_sided.is_empty());
        assert_eq!((s.from_ms, s.to_ms), (0, 4_000));
    }

    #[test]
    fn without_samples_the_axis_is_the_incident_padded() {
        let s = series(&pm(Vec::new()), 10_000);
        assert_eq!((s.from_ms, s.to_ms), (-4_000, 9_000));
        assert!(s.queue.is_empty() && s.drops.is_empty() && s.rates.is_empty());
        assert_eq!(s.drops_total, None);
    }
}
