//! What a postmortem says, as plain data that every form (text, Markdown,
//! JSON, HTML) renders: the paragraph of what happened, a bounded timeline,
//! who was affected, why, what to change and how it ended.
//!
//! The reasoning is the engine's, not a second one: "why" and "what to
//! change" are `halfopen_engine::diagnose::listener_diagnosis` over a
//! `ListenerContext` built from the stored evidence and samples (the
//! listener at its fullest, the server host's sysctls, the counter
//! increases over the incident, the findings counted by kind, restarts,
//! keepalive, leftovers, accept stalls), and each kind's example is
//! `halfopen_engine::explain::finding_text` of its first confirmed finding.
//! Everything here is bounded by the number of kinds and processes, never
//! one line per finding.
use crate::rfc3339;
use crate::series::{one_sided, process_label, Series};
use halfopen_core::{
    Change, Finding, FindingKind, GoneReason, IncidentEnd, Listener, Postmortem, Process, StoredFinding, Subject,
};
use halfopen_engine::diagnose::{listener_diagnosis, ListenerContext, Seen};
use halfopen_engine::explain::{counter_summary, finding_text, humanize};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Most client processes listed by name in "who was affected".
pub const LISTED_PROCESSES: usize = 10;

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moment {
    /// RFC 3339, UTC.
    pub at: String,
    #[serde(skip)]
    pub at_ms: i64,
    /// first_sighting, first_confirmed, queue_full, counters_rising, peak,
    /// last_new, counters_stopped, queue_drained, last_gone, end, still_open.
    pub event: &'static str,
    pub what: String,
}

/// A client process the incident affected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AffectedProcess {
    pub client_host: String,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub cmdline: Option<String>,
    /// Its connections in the incident (every kind).
    pub connections: u64,
}

/// A client host and its connections in the incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostCount {
    pub client_host: String,
    pub connections: u64,
}

/// The server side: host, listener and the process that owns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerSide {
    pub host: String,
    pub listener: String,
    pub pid: Option<u32>,
    pub process: Option<String>,
    pub cmdline: Option<String>,
}

/// Who was affected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// Connections from clients, in all.
    pub connections: u64,
    /// Every client process, most connections first.
    pub processes: Vec<AffectedProcess>,
    /// Connections per client host, most first.
    pub client_hosts: Vec<HostCount>,
    pub server: ServerSide,
}

/// One kind's example: the first confirmed finding of the kind and its
/// explanation (the engine's words from its evidence).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Example {
    pub kind: String,
    /// Findings of this kind in the incident.
    pub count: u64,
    /// The connection ("client -> server") or listener it is about.
    pub subject: String,
    pub explanation: String,
}

/// Why: the engine's diagnosis of the listener over the incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Why {
    pub causes: Vec<String>,
    /// What the diagnosis rests on (listener, server software, sysctls,
    /// counters, keepalive).
    pub evidence: Vec<String>,
    /// What the server software does, each with its source in brackets.
    pub sources: Vec<String>,
    pub examples: Vec<Example>,
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// As `incidents --json` says it: ongoing, healed, client_closed, mixed, recovered.
    pub ended: &'static str,
    pub sentence: String,
    /// RFC 3339; null while open.
    pub end: Option<String>,
    /// Findings still current (by kind).
    pub current: BTreeMap<String, u64>,
    /// Findings gone, by kind, then by why they went ("closed", ...).
    pub gone: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The postmortem's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Story {
    pub title: String,
    pub summary: String,
    pub timeline: Vec<Moment>,
    pub affected: Affected,
    pub why: Why,
    pub changes: Vec<Change>,
    pub ending: Ending,
}

/// "1,030".
pub fn num(n: u64) -> String {
    let s = n.to_string();
    let mut o = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// At most `n` characters, an ellipsis marking the cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// "02:15:02" (UTC).
pub fn clock(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// "2026-11-30" (UTC).
pub fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// "16 min 38 s" for a span of ms.
pub fn span(ms: i64) -> String {
    humanize((ms.max(0) / 1000) as u64)
}

/// "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [a] => a.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Host names compressed: "app-1..3" for app-1, app-2, app-3; at most four
/// names, else "12 hosts".
pub fn hosts_phrase(hosts: &BTreeSet<String>) -> String {
    // (prefix, numbers) of names that end in digits.
    let mut runs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut plain: Vec<String> = Vec::new();
    for h in hosts {
        let digits = h.len() - h.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        match h[h.len() - digits..].parse::<u64>() {
            Ok(n) if digits > 0 && digits < h.len() && !h[h.len() - digits..].starts_with('0') => {
                runs.entry(h[..h.len() - digits].to_string()).or_default().push(n)
            }
            _ => plain.push(h.clone()),
        }
    }
    let mut parts: Vec<String> = plain;
    for (prefix, mut ns) in runs {
        ns.sort_unstable();
        let mut i = 0;
        while i < ns.len() {
            let mut j = i;
            while j + 1 < ns.len() && ns[j + 1] == ns[j] + 1 {
                j += 1;
            }
            match j - i {
                0 => parts.push(format!("{prefix}{}", ns[i])),
                1 => {
                    parts.push(format!("{prefix}{}", ns[i]));
                    parts.push(format!("{prefix}{}", ns[j]));
                }
                _ => parts.push(format!("{prefix}{}..{}", ns[i], ns[j])),
            }
            i = j + 1;
        }
    }
    if parts.len() > 4 {
        return format!("{} hosts", hosts.len());
    }
    and_list(&parts)
}

/// "php-fpm", "php-fpm and java", "php-fpm, java and 3 other programs".
fn programs_phrase(fs: &[&StoredFinding]) -> String {
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    for f in fs {
        let name = f
            .finding
            .process
            .as_ref()
            .map_or("an unknown process".to_string(), |p| p.comm.clone());
        *by.entry(name).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let names: Vec<String> = v.iter().map(|x| x.0.clone()).collect();
    if names.len() <= 3 {
        and_list(&names)
    } else {
        format!("{}, {} and {} other programs", names[0], names[1], names.len() - 2)
    }
}

fn client_hosts(fs: &[&StoredFinding]) -> BTreeSet<String> {
    fs.iter()
        .filter_map(|f| f.finding.subject.client_host().map(str::to_string))
        .collect()
}

/// "198.18.2.1:32768 -> 198.18.1.1:3306 (php-fpm (pid 2201) on app-1)", or
/// "listener 0.0.0.0:3306 on db-1".
pub fn describe(f: &Finding) -> String {
    match &f.subject {
        Subject::Connection { tuple, client_host, .. } => {
            let p = f.process.as_ref();
            format!(
                "{} -> {} ({})",
                tuple.local(),
                f.server_end(),
                process_label(client_host, p.map(|p| p.pid), p.map(|p| p.comm.as_str()))
            )
        }
        Subject::Listener { host, addr } => match &f.evidence.listener {
            Some(l) => format!("listener {addr} on {host} (accept queue {}/{})", l.queue, l.backlog),
            None => format!("listener {addr} on {host}"),
        },
    }
}

/// Plain words for why findings of `kind` went away.
pub fn gone_words(kind: Option<FindingKind>, r: GoneReason) -> &'static str {
    match r {
        GoneReason::ClientClosed => match kind {
            Some(FindingKind::ServerOnly) => "closed by the server",
            Some(k) if k.is_connection() => "closed by the client",
            _ => "closed by their holder",
        },
        GoneReason::ServerHasIt => "healed (the other end has it now)",
        GoneReason::Replaced => "replaced (a new connection reused the ports)",
        GoneReason::Greeted => "greeted (the server spoke at last)",
        GoneReason::Recovered => "recovered",
        GoneReason::HostGone => "lost with their host (its collector went away)",
        GoneReason::Expired => "expired (no news of the unmonitored client for --dropped-handshake-ttl)",
    }
}

/// How an incident ended, for its last timeline line.
fn end_phrase(e: IncidentEnd) -> &'static str {
    match e {
        IncidentEnd::Ongoing => "still open",
        IncidentEnd::Healed => "every connection healed",
        IncidentEnd::ClientClosed => "the clients closed the last of them",
        IncidentEnd::Mixed => "the last are gone (some healed, some were closed)",
        IncidentEnd::Recovered => "the listener recovered",
    }
}

/// The most common server process among the findings.
fn server_process(pm: &Postmortem) -> Option<Process> {
    let mut by: BTreeMap<(u32, String), (u64, &Process)> = BTreeMap::new();
    for p in pm.findings.iter().filter_map(|f| f.finding.server_process.as_ref()) {
        by.entry((p.pid, p.comm.clone())).or_insert((0, p)).0 += 1;
    }
    by.into_values().max_by_key(|(n, _)| *n).map(|(_, p)| p.clone())
}

/// What the engine counts about findings on a listener (`Seen`), over the
/// whole incident instead of what is current.
fn seen(pm: &Postmortem) -> Seen {
    let mut s = Seen::default();
    for f in &pm.findings {
        s.add(&f.finding);
    }
    s
}

/// The listener at its fullest: from the samples, else from the evidence.
fn listener(pm: &Postmortem, series: &Series, server: Option<Process>) -> Option<Listener> {
    let ev = pm
        .findings
        .iter()
        .filter_map(|f| f.finding.evidence.listener.as_ref())
        .max_by_key(|l| (l.queue, l.backlog));
    let (addr, queue, backlog) = match (series.fullest, series.listener, ev) {
        (Some(q), Some(a), e) => {
            let eq = e.map_or(0, |e| e.queue);
            if eq > q.queue {
                (a, eq, e.map_or(q.backlog, |e| e.backlog))
            } else {
                (a, q.queue, q.backlog)
            }
        }
        (_, _, Some(e)) => (e.addr, e.queue, e.backlog),
        _ => return None,
    };
    Some(Listener {
        addr,
        queue,
        backlog,
        inode: 0,
        uid: server.as_ref().map_or(0, |p| p.uid),
        process: server,
        libwrap: pm
            .findings
            .iter()
            .any(|f| f.finding.evidence.listener.as_ref().is_some_and(|l| l.libwrap)),
        drops: series.drops_total,
    })
}

/// The server host's sysctls as the latest evidence had them.
fn sysctls(pm: &Postmortem) -> BTreeMap<String, String> {
    pm.findings
        .iter()
        .filter(|f| !f.finding.evidence.sysctls.is_empty())
        .max_by_key(|f| f.finding.confirmed_at_ms)
        .map(|f| f.finding.evidence.sysctls.clone())
        .unwrap_or_default()
}

/// The engine's facts are worded for `halfopen explain`, about now; a
/// postmortem is about the incident. These are the only rewordings: the
/// listener "now" is its fullest, the counters' window is the incident, and
/// the counts of "current" findings are said in the summary instead.
fn postmortem_fact(fact: &str, window_s: u64) -> Option<String> {
    let words: Vec<&str> = fact.split_whitespace().collect();
    if let [n, "current", _, "finding" | "findings"] = words[..] {
        if n.parse::<u64>().is_ok() {
            return None;
        }
    }
    if fact.starts_with("listener ") {
        if let Some(x) = fact.strip_suffix(" now") {
            return Some(format!("{x} at its fullest"));
        }
    }
    if fact.starts_with("counters on ") {
        let from = format!(" in the last {window_s} s: ");
        if fact.contains(&from) {
            return Some(fact.replacen(&from, &format!(" over the incident ({}): ", humanize(window_s)), 1));
        }
    }
    Some(fact.to_string())
}

/// The story of `pm` (its strings already defanged for human forms).
pub fn story(pm: &Postmortem, series: &Series, now_ms: i64) -> Story {
    let inc = &pm.incident;
    let fs: Vec<&StoredFinding> = pm.findings.iter().collect();
    let by_kind =
        |k: FindingKind| -> Vec<&StoredFinding> { fs.iter().copied().filter(|f| f.finding.kind == k).collect() };
    let port = inc.server.port();
    let target = format!("{}:{port}", inc.server_host);
    let until = inc.end_ms.unwrap_or(now_ms);
    let server = server_process(pm);

    // --- What happened, in one paragraph.
    let when = match inc.end_ms {
        Some(e) if day(e) == day(inc.start_ms) => format!(
            "On {}, from {} to {} UTC ({})",
            day(inc.start_ms),
            clock(inc.start_ms),
            clock(e),
            span(e - inc.start_ms)
        ),
        Some(e) => format!(
            "From {} {} to {} {} UTC ({})",
            day(inc.start_ms),
            clock(inc.start_ms),
            day(e),
            clock(e),
            span(e - inc.start_ms)
        ),
        None => format!(
            "Since {} {} UTC ({} so far)",
            day(inc.start_ms),
            clock(inc.start_ms),
            span(now_ms - inc.start_ms)
        ),
    };
    let (were, was) = if inc.end_ms.is_some() {
        ("were", "was")
    } else {
        ("have been", "has been")
    };
    let mut what: Vec<String> = Vec::new();
    let client_only = by_kind(FindingKind::ClientOnly);
    if !client_only.is_empty() {
        let n = client_only.len() as u64;
        what.push(format!(
            "{} connection{} from {} on {} to {target} {} half-open: the clients held them, the server never accepted \
             them (client_only)",
            num(n),
            plural(n),
            programs_phrase(&client_only),
            hosts_phrase(&client_hosts(&client_only)),
            if n == 1 { was } else { were }
        ));
    }
    let server_only = by_kind(FindingKind::ServerOnly);
    if !server_only.is_empty() {
        let n = server_only.len() as u64;
        what.push(format!(
            "{} connection{} to {target} {} held by the server alone: their clients on {} no longer had them \
             (server_only)",
            num(n),
            plural(n),
            if n == 1 { was } else { were },
            hosts_phrase(&client_hosts(&server_only))
        ));
    }
    let stalled = by_kind(FindingKind::StalledGreeting);
    if !stalled.is_empty() {
        let n = stalled.len() as u64;
        what.push(format!(
            "{} connection{} from {} on {} to {target} got no greeting: both ends held them and the server sent \
             nothing (stalled_greeting)",
            num(n),
            plural(n),
            programs_phrase(&stalled),
            hosts_phrase(&client_hosts(&stalled))
        ));
    }
    let accept = by_kind(FindingKind::AcceptStalled);
    if what.is_empty() {
        if !accept.is_empty() {
            what.push(format!(
                "the server on {target} stopped accepting connections: they waited in its accept queue (accept_stalled)"
            ));
        } else {
            what.push(format!(
                "the listener {} on {} was at risk of losing connections (listener_at_risk)",
                inc.server, inc.server_host
            ));
        }
    }
    let mut summary = format!("{when}, {}.", what[0]);
    for w in &what[1..] {
        summary.push_str(&format!(" Also, {w}."));
    }
    if let Some((t, p)) = series.peak {
        summary.push_str(&format!(" Peak {} at once, at {}.", num(p), clock(t)));
    }
    let l = listener(pm, series, server.clone());
    let overflows = inc.counters.get("TcpExt.ListenOverflows").copied().unwrap_or(0);
    let cookies = inc.counters.get("TcpExt.SyncookiesSent").copied().unwrap_or(0);
    if let Some(l) = &l {
        let q = if l.queue >= l.backlog {
            format!("The listener's accept queue was full ({}/{})", l.queue, l.backlog)
        } else if u64::from(l.queue) * 5 >= u64::from(l.backlog) * 4 {
            format!("The listener's accept queue reached {}/{}", l.queue, l.backlog)
        } else {
            format!(
                "The listener's accept queue stayed below its backlog (at most {}/{})",
                l.queue, l.backlog
            )
        };
        let dropped = match series.drops_total {
            Some(d) if d > 0 => format!(" and the kernel dropped {} connection attempts on it", num(d)),
            _ if overflows > 0 => format!(" and the host counted {} accept-queue overflows", num(overflows)),
            _ => String::new(),
        };
        summary.push_str(&format!(" {q}{dropped}"));
        if cookies > 0 {
            summary.push_str(&format!(
                "; SYN cookies were sent {} time{}.",
                num(cookies),
                plural(cookies)
            ));
        } else if overflows > 0 {
            summary.push_str("; no SYN cookie was sent.");
        } else {
            summary.push('.');
        }
    } else if cookies > 0 || overflows > 0 {
        summary.push_str(&format!(
            " The host counted {} accept-queue overflows and sent {} SYN cookies.",
            num(overflows),
            num(cookies)
        ));
    }

    // --- How it ended.
    let mut current: BTreeMap<String, u64> = BTreeMap::new();
    let mut gone: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for f in &fs {
        let k = f.finding.kind.as_str().to_string();
        match f.gone_reason {
            Some(r) if f.gone_at_ms.is_some() => {
                *gone.entry(k).or_default().entry(r.as_str().to_string()).or_default() += 1
            }
            _ => *current.entry(k).or_default() += 1,
        }
    }
    let conn_gone = |r: GoneReason| -> u64 {
        fs.iter()
            .filter(|f| f.finding.kind.is_connection() && f.gone_at_ms.is_some() && f.gone_reason == Some(r))
            .count() as u64
    };
    let open_one_sided = fs
        .iter()
        .filter(|f| one_sided(f.finding.kind) && f.gone_at_ms.is_none())
        .count() as u64;
    let open_all: u64 = current.values().sum();
    let healed = conn_gone(GoneReason::ServerHasIt) + conn_gone(GoneReason::Greeted) + conn_gone(GoneReason::Recovered);
    let closed = conn_gone(GoneReason::ClientClosed) + conn_gone(GoneReason::Replaced);
    let lost = conn_gone(GoneReason::HostGone);
    let end_sentence = match inc.ended {
        IncidentEnd::Ongoing if open_one_sided > 0 => format!(
            "It is still open: {} connection{} still half-open at {} UTC.",
            num(open_one_sided),
            plural(open_one_sided),
            clock(now_ms)
        ),
        IncidentEnd::Ongoing => format!(
            "It is still open: {} finding{} still current at {} UTC.",
            num(open_all),
            plural(open_all),
            clock(now_ms)
        ),
        IncidentEnd::Healed => "It ended when the server took them all over: every connection healed.".to_string(),
        IncidentEnd::ClientClosed if lost > 0 && closed == 0 => {
            "It ended when the client hosts went away (their collectors stopped reporting).".to_string()
        }
        IncidentEnd::ClientClosed if lost > 0 => {
            "It ended when the clients closed them (or their hosts went away).".to_string()
        }
        IncidentEnd::ClientClosed => "It ended when the clients closed them.".to_string(),
        IncidentEnd::Mixed => format!(
            "It ended with {} connection{} healed and {} closed by their clients.",
            num(healed),
            plural(healed),
            num(closed + lost)
        ),
        IncidentEnd::Recovered => "It ended when the listener recovered.".to_string(),
    };
    summary.push(' ');
    summary.push_str(&end_sentence);
    let ending = Ending {
        ended: crate::rows::ended_str(inc.ended),
        sentence: end_sentence,
        end: inc.end_ms.map(rfc3339),
        current,
        gone,
    };

    // --- Timeline: a bounded number of moments.
    let mut tl: Vec<Moment> = Vec::new();
    let mut at = |at_ms: i64, event: &'static str, what: String| {
        tl.push(Moment {
            at: rfc3339(at_ms),
            at_ms,
            event,
            what,
        })
    };
    if let Some(first) = fs.iter().min_by_key(|f| (f.finding.first_seen_ms, f.id)) {
        at(
            first.finding.first_seen_ms,
            "first_sighting",
            format!(
                "Incident starts: first {}, {}",
                first.finding.kind,
                describe(&first.finding)
            ),
        );
    }
    if let Some(c) = fs
        .iter()
        .filter(|f| f.finding.kind.is_connection())
        .min_by_key(|f| (f.finding.confirmed_at_ms, f.id))
    {
        at(
            c.finding.confirmed_at_ms,
            "first_confirmed",
            format!(
                "First {} confirmed (both hosts looked it up): {}",
                c.finding.kind,
                describe(&c.finding)
            ),
        );
    }
    for k in FindingKind::ALL {
        let v = by_kind(k);
        if v.is_empty() {
            continue;
        }
        let n = v.len() as u64;
        let Some(first_f) = v.iter().min_by_key(|f| (f.finding.first_seen_ms, f.id)) else {
            continue;
        };
        let first = first_f.finding.first_seen_ms;
        let last = v.iter().map(|f| f.finding.first_seen_ms).max().unwrap_or(0);
        if fs.iter().map(|f| (f.finding.first_seen_ms, f.id)).min() != Some((first, first_f.id)) {
            at(
                first,
                "first_sighting",
                format!("First {k} seen: {}", describe(&first_f.finding)),
            );
        }
        if n > 1 && last > first {
            at(last, "last_new", format!("Last new {k} seen ({} in all)", num(n)));
        }
        if v.iter().all(|f| f.gone_at_ms.is_some()) {
            let (t, why) = v
                .iter()
                .filter_map(|f| f.gone_at_ms.map(|g| (g, f.gone_reason)))
                .max_by_key(|x| x.0)
                .unwrap_or((0, None));
            at(
                t,
                "last_gone",
                format!(
                    "Last {k} gone{}",
                    why.map_or(String::new(), |r| format!(": {}", gone_words(Some(k), r)))
                ),
            );
        }
    }
    if let Some(q) = series
        .queue
        .iter()
        .find(|q| q.at_ms >= inc.start_ms - 60_000 && q.at_ms <= until && q.backlog > 0 && q.queue >= q.backlog)
    {
        at(
            q.at_ms,
            "queue_full",
            format!("The accept queue is full: {}/{}", q.queue, q.backlog),
        );
        if let Some(last_full) = series
            .queue
            .iter()
            .filter(|x| x.at_ms <= until && x.backlog > 0 && x.queue >= x.backlog)
            .map(|x| x.at_ms)
            .max()
        {
            if let Some(d) = series.queue.iter().find(|x| x.at_ms > last_full && x.queue < x.backlog) {
                at(
                    d.at_ms,
                    "queue_drained",
                    format!("The accept queue is below its backlog again: {}/{}", d.queue, d.backlog),
                );
            }
        }
    }
    let host_samples: BTreeMap<i64, &halfopen_core::Sample> = pm
        .samples
        .iter()
        .filter(|s| s.host == inc.server_host)
        .map(|s| (s.at_ms, s))
        .collect();
    if let Some(t) = series.overflow_first {
        let d = host_samples
            .get(&t)
            .map(|s| counter_summary(&s.deltas))
            .unwrap_or_default();
        at(
            t,
            "counters_rising",
            format!("The host's overflow counters start rising: {d} in one report"),
        );
    }
    if let (Some(first), Some(t)) = (series.overflow_first, series.overflow_last) {
        if t > first {
            let total = counter_summary(&inc.counters);
            at(
                t,
                "counters_stopped",
                format!("The overflow counters rise for the last time (over the incident: {total})"),
            );
        }
    }
    if let Some((t, p)) = series.peak {
        at(
            t,
            "peak",
            format!("Peak: {} one-sided connection{} at once", num(p), plural(p)),
        );
    }
    match inc.end_ms {
        Some(e) => at(e, "end", format!("Incident over: {}", end_phrase(inc.ended))),
        None => at(
            now_ms,
            "still_open",
            format!("Now: {}", ending.sentence.trim_end_matches('.')),
        ),
    }
    // Stable: by time, then in the order the story tells them.
    tl.sort_by_key(|m| m.at_ms);

    // --- Who was affected.
    let mut cmdlines: BTreeMap<(String, Option<u32>, Option<String>), String> = BTreeMap::new();
    let mut per_proc: BTreeMap<(String, Option<u32>, Option<String>), u64> = BTreeMap::new();
    let mut per_host: BTreeMap<String, u64> = BTreeMap::new();
    for f in &fs {
        if let Subject::Connection { client_host, .. } = &f.finding.subject {
            let p = f.finding.process.as_ref();
            let key = (client_host.clone(), p.map(|p| p.pid), p.map(|p| p.comm.clone()));
            if let Some(p) = p {
                cmdlines.entry(key.clone()).or_insert_with(|| p.cmdline.clone());
            }
            *per_proc.entry(key).or_default() += 1;
            *per_host.entry(client_host.clone()).or_default() += 1;
        }
    }
    let mut processes: Vec<AffectedProcess> = per_proc
        .into_iter()
        .map(|(k, n)| AffectedProcess {
            cmdline: cmdlines.get(&k).cloned(),
            client_host: k.0,
            pid: k.1,
            process: k.2,
            connections: n,
        })
        .collect();
    processes.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.client_host.cmp(&b.client_host))
            .then_with(|| a.pid.cmp(&b.pid))
    });
    let mut client_hosts_v: Vec<HostCount> = per_host
        .into_iter()
        .map(|(client_host, connections)| HostCount {
            client_host,
            connections,
        })
        .collect();
    client_hosts_v.sort_by(|a, b| {
        b.connections
            .cmp(&a.connections)
            .then_with(|| a.client_host.cmp(&b.client_host))
    });
    let affected = Affected {
        connections: processes.iter().map(|p| p.connections).sum(),
        processes,
        client_hosts: client_hosts_v,
        server: ServerSide {
            host: inc.server_host.clone(),
            listener: l.as_ref().map_or(inc.server, |l| l.addr).to_string(),
            pid: server.as_ref().map(|p| p.pid),
            process: server.as_ref().map(|p| p.comm.clone()),
            cmdline: server.as_ref().map(|p| p.cmdline.clone()),
        },
    };

    // --- Why, and what to change: the engine's diagnosis over the incident.
    let window_s = ((until - inc.start_ms).max(0) as u64 / 1000).max(1);
    let sysctls = sysctls(pm);
    let seen = seen(pm);
    let syn_sent = pm
        .findings
        .iter()
        .filter_map(|f| f.finding.evidence.syn_sent)
        .max()
        .unwrap_or(0);
    let ctx = ListenerContext {
        host: &inc.server_host,
        listener: l.as_ref(),
        sysctls: &sysctls,
        deltas: &inc.counters,
        window_s,
        syn_sent,
        seen: &seen,
    };
    let d = listener_diagnosis(&ctx);
    let (sources, facts): (Vec<String>, Vec<String>) = d.facts.iter().cloned().partition(|f| f.ends_with(']'));
    let evidence: Vec<String> = facts.iter().filter_map(|f| postmortem_fact(f, window_s)).collect();
    let mut examples = Vec::new();
    for k in FindingKind::ALL {
        let v = by_kind(k);
        if let Some(f) = v.iter().min_by_key(|f| (f.finding.confirmed_at_ms, f.id)) {
            examples.push(Example {
                kind: k.as_str().to_string(),
                count: v.len() as u64,
                subject: describe(&f.finding),
                explanation: finding_text(&f.finding),
            });
        }
    }

    let title = format!(
        "{target}: {}",
        match (client_only.len() + server_only.len(), stalled.len()) {
            (0, 0) if !accept.is_empty() => "the server stopped accepting".to_string(),
            (0, 0) => "listener at risk".to_string(),
            (0, s) => format!("{} connection{} without a greeting", num(s as u64), plural(s as u64)),
            (n, _) => format!("{} half-open connection{}", num(n as u64), plural(n as u64)),
        }
    );
    Story {
        title,
        summary,
        timeline: tl,
        affected,
        why: Why {
            causes: d.causes,
            evidence,
            sources,
            examples,
        },
        changes: d.changes,
        ending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hosts_read_as_people_write_them() {
        assert_eq!(num(0), "0");
        assert_eq!(num(965), "965");
        assert_eq!(num(1030), "1,030");
        assert_eq!(num(1_234_567), "1,234,567");
        let h = |v: &[&str]| hosts_phrase(&v.iter().map(|s| s.to_string()).collect());
        assert_eq!(h(&["app-1", "app-2", "app-3"]), "app-1..3");
        assert_eq!(h(&["app-1", "app-2"]), "app-1 and app-2");
        assert_eq!(h(&["app"]), "app");
        assert_eq!(h(&["app-1", "app-3", "web"]), "web, app-1 and app-3");
        assert_eq!(h(&["a1", "b1", "c1", "d1", "e1"]), "5 hosts");
        assert_eq!(h(&["node-01", "node-02"]), "node-01 and node-02");
    }

    #[test]
    fn postmortem_facts_are_about_the_incident_not_now() {
        assert_eq!(
            postmortem_fact(
                "listener 0.0.0.0:3306 owned by mysqld (pid 1): accept queue 129 of 128 now",
                998
            ),
            Some("listener 0.0.0.0:3306 owned by mysqld (pid 1): accept queue 129 of 128 at its fullest".into())
        );
        assert_eq!(
            postmortem_fact("counters on db-1 in the last 998 s: ListenOverflows +3", 998),
            Some("counters on db-1 over the incident (16 min 38 s): ListenOverflows +3".into())
        );
        assert_eq!(postmortem_fact("300 current client_only findings", 998), None);
        assert_eq!(postmortem_fact("1 current listener_at_risk finding", 998), None);
    }
}
