//! The matching engine: the latest table of every host, the join by canonical
//! 4-tuple, and the race-free confirmation of one-sided connections; then
//! the other findings (stalled greetings, listeners at risk) and the
//! diagnosis of what to change.
//!
//! Pure and synchronous: it takes reports, lookup answers and clock readings,
//! and returns [`Action`]s (lookups to send, findings to store). It never
//! touches the network, the database or a clock of its own; its crate
//! depends on halfopen-core and small pure crates only.
//!
//! # Confirmation without clocks
//! A client-side ESTABLISHED socket whose server address belongs to another
//! monitored host, and which that host's latest table lacks, becomes a
//! *candidate* (reconciler time `t0`, socket cookie `c`). It is reported only
//! after this sequence, each step requested after the previous one's answer
//! arrived:
//! 1. no sooner than `t0 + grace`, the server host looks the tuple up in a
//!    fresh scan and holds it in **no** state (SYN_RECV and TIME_WAIT count);
//! 2. then the client host looks it up in a fresh scan and still holds the
//!    **same socket** (same cookie) ESTABLISHED.
//!
//! The client socket therefore existed continuously from before `t0` until
//! after step 1, while the server had no trace of it at step 1, at least
//! `grace` after the client had completed its handshake. A healthy
//! connection's server end exists from one round trip after the client's
//! handshake until after the client leaves ESTABLISHED, so no interleaving
//! of snapshots can confirm it (the property test in `tests/confirm.rs`
//! replays random interleavings). The cookie guards against a 4-tuple reused
//! by a new connection. `server_only` is the mirror image, with the roles of
//! the two hosts swapped.
//!
//! # Who owns what
//! - [`hosts`]: every host, its table, addresses, staleness, counter history.
//! - [`join`]: the one function that maps a socket to where its other end
//!   must be (`Engine::other_end`); NAT and namespaces plug in there only.
//! - `judge`: deciding which sockets are one-sided candidates, and the
//!   judgements deferred until a host is fresh again.
//! - `confirm`: candidates and the two lookups that confirm them.
//! - [`findings`]: the set of current findings and the indexes it keeps.
//! - [`gauges`]: what the engine holds now, counted for monitoring.
//! - [`paging`]: the listing order and its cursor.
//! - `stalled`, `risk`, `accept`: stalled greetings, listeners at risk,
//!   stuck accept loops.
//! - `coverage`: what an answer covers and what it does not.
//! - [`explain`]: a finding's English explanation, rendered from its evidence.
//! - [`diagnose`]: `halfopen explain`: facts, causes and changes, a
//!   differential diagnosis from the evidence; `target` resolves what it names.
//! - [`advice`]: server-specific settings (backlog, idle timeouts, keepalive,
//!   name lookups, worker limits), each fact with its source.
pub mod advice;
pub mod diagnose;
pub mod explain;
pub mod findings;
pub mod gauges;
pub mod hosts;
pub mod join;
pub mod paging;

mod accept;
mod confirm;
mod counters;
mod coverage;
mod forget;
mod ingest;
mod judge;
mod risk;
mod stalled;
mod table;
mod target;
mod witness;

#[cfg(test)]
mod tests;

use confirm::Confirmations;
use findings::FindingSet;
use halfopen_core::{Finding, FindingKind, FindingView, GoneReason, HostView, Instance, Tuple};
use hosts::Hosts;
use judge::Deferred;
use serde::Serialize;

pub use hosts::{Handover, HostIdx};
pub use ingest::Connected;
pub use paging::PageCursor;

/// Reconciler time: a monotonic reading for ordering and ages, and the wall
/// clock for what operators read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub mono_ms: u64,
    pub wall_ms: i64,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Minimum time between a candidate's first sighting and the server-side
    /// lookup, ms. Must exceed any healthy handshake's round trip by far.
    pub grace_ms: u64,
    /// A host is stale after this many of its intervals without a report...
    pub stale_intervals: u32,
    /// ...and never sooner than this, ms.
    pub stale_min_ms: u64,
    /// A lookup not answered within this time is abandoned and retried, ms.
    pub lookup_timeout_ms: u64,
    /// Most tuples in one lookup message.
    pub max_lookup_batch: usize,
    /// Ports where the server speaks first.
    pub greeting_ports: Vec<u16>,
    /// A client on a greeting port that received nothing for this long is stalled, ms.
    pub stall_after_ms: u32,
    /// A listener stays at risk this many of its host's intervals after the
    /// last sign (queue near full, counters rising).
    pub risk_intervals: u32,
    /// A host disconnected this long is gone: its leftovers on servers are
    /// reported, what it held is forgotten, ms.
    pub gone_after_ms: u64,
    /// A connection waiting in an accept queue this long means the server's
    /// accept loop is stuck, ms.
    pub accept_stall_after_ms: u64,
    /// Most host ids known at once; a collector with a new one beyond it is
    /// refused ([`ConnectError::TooManyHosts`]).
    pub max_hosts: usize,
    /// Most sockets in one host's table (a full table being received
    /// counts); a report beyond it ends the session ([`Action::Close`]).
    pub max_sockets_per_host: usize,
    /// A host gone this long that nothing refers to any more (no finding,
    /// no candidate) is forgotten, ms.
    pub forget_after_ms: u64,
    /// A dropped_handshake (a witnessed drop from an unmonitored client) is
    /// gone this long after it was first seen, and witnessed drops are kept
    /// this long to match client_only findings, ms.
    pub dropped_handshake_ttl_ms: u64,
}

/// Default [`EngineConfig::max_hosts`].
pub const DEFAULT_MAX_HOSTS: usize = 10_000;
/// Default [`EngineConfig::max_sockets_per_host`]: a busy proxy holds a few
/// hundred thousand; a table of this many costs the reconciler ~200 MB.
pub const DEFAULT_MAX_SOCKETS_PER_HOST: usize = 2_000_000;
/// Default [`EngineConfig::forget_after_ms`]: 7 days.
pub const DEFAULT_FORGET_AFTER_MS: u64 = 7 * 86_400_000;
/// Default [`EngineConfig::dropped_handshake_ttl_ms`]: 10 minutes.
pub const DEFAULT_DROPPED_HANDSHAKE_TTL_MS: u64 = 600_000;

/// Server-speaks-first ports: FTP, SSH, SMTP, POP3, NNTP, IMAP, submission, MySQL/MariaDB.
pub const DEFAULT_GREETING_PORTS: &[u16] = &[21, 22, 25, 110, 119, 143, 587, 3306];

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            grace_ms: 1_000,
            stale_intervals: 3,
            stale_min_ms: 3_000,
            lookup_timeout_ms: 15_000,
            max_lookup_batch: 20_000,
            greeting_ports: DEFAULT_GREETING_PORTS.to_vec(),
            stall_after_ms: 10_000,
            risk_intervals: 3,
            gone_after_ms: 600_000,
            accept_stall_after_ms: 10_000,
            max_hosts: DEFAULT_MAX_HOSTS,
            max_sockets_per_host: DEFAULT_MAX_SOCKETS_PER_HOST,
            forget_after_ms: DEFAULT_FORGET_AFTER_MS,
            dropped_handshake_ttl_ms: DEFAULT_DROPPED_HANDSHAKE_TTL_MS,
        }
    }
}

/// What the engine asks its caller to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a lookup to this host's current session.
    Lookup {
        host: HostIdx,
        session: u64,
        id: u64,
        tuples: Vec<Tuple>,
        attribute: bool,
    },
    /// Ask this host's collector for a full table.
    Resync {
        host: HostIdx,
        session: u64,
        reason: String,
    },
    /// A finding was confirmed (or, for stalled greetings and listeners at
    /// risk, its evidence changed: the same finding again).
    Confirmed(Finding),
    /// A finding is no longer current.
    Gone {
        finding: Finding,
        at_ms: i64,
        reason: GoneReason,
    },
    /// Something an operator should read in the log.
    Notice(Notice),
    /// End this session: it broke a limit (the reason names it). Its host
    /// is disconnected as if the stream had ended.
    Close {
        host: HostIdx,
        session: u64,
        reason: String,
    },
    /// A host's listeners and counters at one report, for the history:
    /// recorded while the host has findings or its overflow counters or
    /// listener drops rise, and for `SAMPLE_LINGER_MS` after (with the few
    /// before, as a lead-in).
    Sample(halfopen_core::Sample),
}

/// Samples keep being recorded this long after the last sign, ms.
pub const SAMPLE_LINGER_MS: u64 = 300_000;
/// Samples kept in memory before a sign, to lead into the incident.
pub const SAMPLE_LEAD_IN: usize = 24;

/// Events worth a log line (the engine itself never logs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// An address's owner changed (a host took it over, or its only claimant left).
    AddressMoved(Handover),
    /// A host is gone: disconnected for longer than `gone_after`.
    HostGone { host: String },
    /// A gone host that nothing refers to any more was forgotten (its slot
    /// is free for another host id).
    HostForgotten { host: String },
}

/// Why a collector's session was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "host id {host:?} is already in use by a live collector ({holder}, from {holder_peer}): this collector ({refused}) \
         was refused. Two hosts share a name (cloned images, network namespaces of one machine): give each collector \
         its own --host-id"
    )]
    Conflict {
        host: String,
        holder: Box<Instance>,
        holder_peer: String,
        refused: Box<Instance>,
    },
    #[error(
        "the reconciler already knows {limit} host ids (its --max-hosts): host id {host:?} was refused. Raise \
         --max-hosts if the fleet is that big; hosts gone for --forget-hosts-after are forgotten"
    )]
    TooManyHosts { host: String, limit: usize },
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub reports: u64,
    /// Sessions refused because the host limit was reached.
    pub hosts_refused: u64,
    /// Sessions ended because a table exceeded the sockets-per-host limit.
    pub tables_refused: u64,
    /// Gone hosts forgotten.
    pub hosts_forgotten: u64,
    pub resyncs_requested: u64,
    pub candidates_created: u64,
    pub cleared_by_other_lookup: u64,
    pub cleared_by_holder_lookup: u64,
    pub confirmed: u64,
    pub gone: u64,
    pub lookups_sent: u64,
    pub lookups_timed_out: u64,
    pub sweeps: u64,
    /// Candidates cleared because a host's conntrack had translated the
    /// connection (its other end is elsewhere).
    pub cleared_by_nat: u64,
    /// Sessions refused because a live collector held the host id.
    pub conflicts_refused: u64,
    /// Current findings.
    pub findings: u64,
    /// Drops the servers' kernels witnessed (eBPF sources), as reported.
    pub witnessed_drops: u64,
}

/// The engine. See the crate documentation.
pub struct Engine {
    cfg: EngineConfig,
    hosts: Hosts,
    confirm: Confirmations,
    findings: FindingSet,
    deferred: Deferred,
    witnesses: witness::Witnesses,
    next_session: u64,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Engine {
            cfg,
            hosts: Hosts::default(),
            confirm: Confirmations::default(),
            findings: FindingSet::default(),
            deferred: Deferred::default(),
            witnesses: witness::Witnesses::default(),
            next_session: 1,
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn stats(&self) -> EngineStats {
        let (confirmed, gone) = self.findings.counts();
        EngineStats {
            confirmed,
            gone,
            findings: self.findings.len() as u64,
            witnessed_drops: self.witnesses.received,
            ..self.stats
        }
    }

    /// The monitored host that owns this address, if exactly one does.
    pub fn owner_of(&self, ip: std::net::IpAddr) -> Option<HostIdx> {
        self.hosts.owner_of(ip)
    }

    /// Candidates waiting for confirmation.
    pub fn candidate_count(&self) -> usize {
        self.confirm.len()
    }

    /// Puts back findings recorded before a restart. They stay listed until
    /// their holder's first full table says whether they still exist.
    pub fn restore(&mut self, findings: Vec<Finding>, now: Clock) {
        for f in findings {
            let key = self.findings.key_for(&f, &mut self.hosts, now);
            let server = self.hosts.index(f.subject.server_host(), now);
            if let findings::FKey::Conn(FindingKind::DroppedHandshake, h, t) = key {
                let ttl = self.cfg.dropped_handshake_ttl_ms;
                self.witnesses
                    .restored(join::SocketKey { host: h, tuple: t }, &f, now, ttl);
            }
            self.findings.insert(key, f, server);
        }
    }

    /// Every current finding, in [`paging::OrderKey`] order.
    pub fn findings(&self, now: Clock) -> Vec<FindingView> {
        self.findings_page(now, None, None, usize::MAX).0
    }

    /// Up to `limit` findings of `kind` (every kind if None) that come after
    /// `after` in [`paging::OrderKey`] order, and the cursor to ask for the
    /// next page with (None when nothing follows). Findings that appear or go
    /// between pages are seen or not, but none is listed twice.
    pub fn findings_page(
        &self,
        now: Clock,
        kind: Option<FindingKind>,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> (Vec<FindingView>, Option<PageCursor>) {
        let (page, next) = paging::page(&self.findings, kind, after, limit);
        let views = page
            .into_iter()
            .map(|f| {
                // A dropped_handshake's client is not monitored: no host to be stale.
                let client = f
                    .subject
                    .client_host()
                    .filter(|c| !c.is_empty())
                    .map(|c| self.hosts.find(c));
                let server = self.hosts.find(f.subject.server_host());
                let of = |h: Option<HostIdx>, what: fn(&hosts::HostState) -> &Option<String>| {
                    h.and_then(|h| what(&self.hosts[h]).clone())
                };
                FindingView {
                    client_host_stale: client.is_some_and(|h| h.is_none_or(|h| self.hosts.is_stale(h, now, &self.cfg))),
                    client_host_gone: client.is_some_and(|h| h.is_some_and(|h| self.hosts.is_gone(h, now, &self.cfg))),
                    client_container: of(client.flatten(), |x| &x.container),
                    client_pod: of(client.flatten(), |x| &x.pod),
                    server_container: of(server, |x| &x.container),
                    server_pod: of(server, |x| &x.pod),
                    finding: f.clone(),
                }
            })
            .collect();
        (views, next)
    }

    /// Every host, sorted by name.
    pub fn hosts(&self, now: Clock) -> Vec<HostView> {
        let shared = self.hosts.ambiguous();
        let mut v: Vec<HostView> = (0..self.hosts.len())
            .filter(|&h| !self.hosts[h].vacant)
            .map(|h| {
                let mut view = self.hosts.view(h, now, &self.cfg);
                view.gone = self.hosts.is_gone(h, now, &self.cfg);
                view.shared_addresses = shared
                    .iter()
                    .filter(|(_, hs)| hs.contains(&h))
                    .map(|(a, _)| *a)
                    .collect();
                view.conflict = self.conflict_of(h, now);
                view
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
