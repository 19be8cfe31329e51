//! Confirmation: candidates and the two lookups that turn one into a
//! finding (the argument is in the crate documentation). After `grace`, the
//! other host is asked in a fresh scan whether it holds the tuple in any
//! state; if not, the holder is asked whether it still holds the same socket
//! (same cookie) ESTABLISHED, with its owning process. Lookups are batched
//! per host; one not answered in time is abandoned and its candidates start
//! over. A host that stops being judgeable defers its candidates.
//!
//! A *leftover* is a server socket whose client host is gone: the client
//! cannot answer, so only the holder check is made, and the finding says
//! that only the server confirmed it. A lookup answered "translated" (the
//! host's conntrack table, read afresh, translated the connection) means
//! the connection's other end is elsewhere: the candidate is dropped and
//! judged again when the NAT entry arrives.
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::join::SocketKey;
use crate::table::Entry;
use crate::{Action, Clock, Engine};
use halfopen_core::{
    CounterWindow, Evidence, Finding, FindingKind, KeepaliveSysctls, LookupAnswer, NatPath, Restart, Side, Subject,
    TcpState, Tuple,
};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Wait,
    /// The other host was asked whether it holds the tuple.
    OtherAsked(u64),
    /// The holder was asked whether it still holds the same socket.
    HolderAsked(u64),
}

/// A socket that looks one-sided, waiting to be confirmed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidate {
    pub cookie: u64,
    keepalive: bool,
    /// Where the other end should be.
    other: SocketKey,
    first_seen: Clock,
    phase: Phase,
    /// The other host is gone: only the holder is asked.
    leftover: bool,
    /// Not asked again before this (mono ms): the other end held only a
    /// request socket when last asked.
    retry_at: u64,
}

impl Candidate {
    pub fn new(e: Entry, other: SocketKey, now: Clock) -> Candidate {
        Candidate {
            cookie: e.cookie,
            keepalive: e.keepalive,
            other,
            first_seen: now,
            phase: Phase::Wait,
            leftover: false,
            retry_at: 0,
        }
    }

    pub fn leftover(e: Entry, other: SocketKey, now: Clock) -> Candidate {
        Candidate {
            leftover: true,
            ..Candidate::new(e, other, now)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    OtherCheck,
    HolderCheck,
    /// The server end of a silent greeting-port connection: still there,
    /// and who holds it.
    StalledServer,
    /// A witnessed drop from an unmonitored client: does the server hold
    /// anything of it (`witness`).
    DroppedHandshake,
}

#[derive(Debug)]
struct Pending {
    host: HostIdx,
    session: u64,
    purpose: Purpose,
    sent_mono: u64,
    /// The candidates (by holder socket) this lookup serves.
    keys: Vec<SocketKey>,
}

/// Candidates by holder socket, and the lookups in flight.
#[derive(Debug)]
pub(crate) struct Confirmations {
    candidates: HashMap<SocketKey, Candidate>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    /// Silent client sockets whose server end was asked about, by lookup id.
    pub stalled_asked: HashMap<SocketKey, u64>,
}

impl Default for Confirmations {
    fn default() -> Self {
        Confirmations {
            candidates: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
            stalled_asked: HashMap::new(),
        }
    }
}

impl Confirmations {
    pub fn get(&self, k: &SocketKey) -> Option<&Candidate> {
        self.candidates.get(k)
    }
    pub fn insert(&mut self, k: SocketKey, c: Candidate) {
        self.candidates.insert(k, c);
    }
    pub fn remove(&mut self, k: &SocketKey) -> Option<Candidate> {
        self.candidates.remove(k)
    }
    pub fn len(&self) -> usize {
        self.candidates.len()
    }
    /// Whether a candidate, lookup or stalled-greeting question involves host `h`.
    pub fn refers_to(&self, h: HostIdx) -> bool {
        self.candidates.iter().any(|(k, c)| k.host == h || c.other.host == h)
            || self.pending.values().any(|p| p.host == h)
            || self.stalled_asked.keys().any(|k| k.host == h)
    }
    fn set_phase(&mut self, k: &SocketKey, phase: Phase) {
        if let Some(c) = self.candidates.get_mut(k) {
            c.phase = phase;
        }
    }
}

impl Engine {
    /// Periodic work: deferred judgements, sweeps, lookup timeouts, and the
    /// next batch of lookups to the other hosts.
    pub fn tick(&mut self, now: Clock) -> Vec<Action> {
        let mut out = Vec::new();
        self.catch_up(now, &mut out);

        // Lookups that were never answered: the candidates start over.
        let timeout = self.cfg.lookup_timeout_ms;
        let expired: Vec<u64> = self
            .confirm
            .pending
            .iter()
            .filter(|(_, p)| now.mono_ms.saturating_sub(p.sent_mono) > timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            if let Some(p) = self.confirm.pending.remove(&id) {
                self.stats.lookups_timed_out += 1;
                if p.purpose == Purpose::DroppedHandshake {
                    self.witness_retry(&p.keys, id);
                    continue;
                }
                for key in p.keys {
                    self.confirm.set_phase(&key, Phase::Wait);
                    if self.confirm.stalled_asked.get(&key) == Some(&id) {
                        self.confirm.stalled_asked.remove(&key);
                    }
                }
            }
        }

        // Checks on the other end, batched per host; leftovers straight to
        // their holder (the other host is gone: it cannot answer).
        let mut batches: HashMap<HostIdx, Vec<(SocketKey, Tuple)>> = HashMap::new();
        let mut holders: HashMap<HostIdx, Vec<SocketKey>> = HashMap::new();
        let mut drop = Vec::new();
        for (&key, cand) in &self.confirm.candidates {
            if cand.phase != Phase::Wait {
                continue;
            }
            if !self.judgeable(key.host, now) {
                drop.push((key, key.host));
                continue;
            }
            let other_ok = if cand.leftover {
                self.hosts.is_gone(cand.other.host, now, &self.cfg)
            } else {
                self.judgeable(cand.other.host, now)
            };
            if !other_ok {
                drop.push((key, cand.other.host));
                continue;
            }
            if now.mono_ms >= cand.first_seen.mono_ms + self.cfg.grace_ms && now.mono_ms >= cand.retry_at {
                if cand.leftover {
                    holders.entry(key.host).or_default().push(key);
                } else {
                    batches
                        .entry(cand.other.host)
                        .or_default()
                        .push((key, cand.other.tuple));
                }
            }
        }
        for (holder, keys) in holders {
            self.ask_holder(holder, keys, now, &mut out);
        }
        for (key, on) in drop {
            self.confirm.remove(&key);
            self.defer(key, on);
        }
        for (o, asks) in batches {
            for chunk in asks.chunks(self.cfg.max_lookup_batch) {
                let keys = chunk.iter().map(|(k, _)| *k).collect();
                let tuples = chunk.iter().map(|(_, t)| *t).collect();
                let id = self.send(o, Purpose::OtherCheck, keys, tuples, false, now, &mut out);
                for (key, _) in chunk {
                    self.confirm.set_phase(key, Phase::OtherAsked(id));
                }
            }
        }
        self.witness_tick(now, &mut out);
        out
    }

    /// Abandons the lookups sent to host `h`: their candidates wait for it.
    pub(crate) fn drop_pending_for(&mut self, h: HostIdx) {
        let ids: Vec<u64> = self
            .confirm
            .pending
            .iter()
            .filter(|(_, p)| p.host == h)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some(p) = self.confirm.pending.remove(&id) {
                if p.purpose == Purpose::DroppedHandshake {
                    self.witness_retry(&p.keys, id);
                    continue;
                }
                for key in p.keys {
                    if self.confirm.stalled_asked.get(&key) == Some(&id) {
                        self.confirm.stalled_asked.remove(&key);
                    }
                    if self.confirm.remove(&key).is_some() {
                        self.defer(key, h);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &mut self,
        host: HostIdx,
        purpose: Purpose,
        keys: Vec<SocketKey>,
        tuples: Vec<Tuple>,
        attribute: bool,
        now: Clock,
        out: &mut Vec<Action>,
    ) -> u64 {
        let id = self.confirm.next_id;
        self.confirm.next_id += 1;
        let session = self.hosts[host].session;
        self.confirm.pending.insert(
            id,
            Pending {
                host,
                session,
                purpose,
                sent_mono: now.mono_ms,
                keys,
            },
        );
        self.stats.lookups_sent += 1;
        out.push(Action::Lookup {
            host,
            session,
            id,
            tuples,
            attribute,
        });
        id
    }

    /// A collector answered a lookup.
    pub fn lookup_reply(
        &mut self,
        h: HostIdx,
        session: u64,
        id: u64,
        results: Vec<LookupAnswer>,
        now: Clock,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(p) = self.confirm.pending.remove(&id) else {
            return out;
        };
        if p.host != h || p.session != session {
            // Not this session's: put it back for its owner or the timeout.
            self.confirm.pending.insert(id, p);
            return out;
        }
        let by_tuple: HashMap<Tuple, LookupAnswer> = results.into_iter().map(|r| (r.tuple, r)).collect();
        match p.purpose {
            Purpose::OtherCheck => self.other_answered(id, p.keys, &by_tuple, now, &mut out),
            Purpose::HolderCheck => self.holder_answered(id, p.keys, &by_tuple, now, &mut out),
            Purpose::StalledServer => self.stalled_server_answered(id, p.keys, &by_tuple, now, &mut out),
            Purpose::DroppedHandshake => self.dropped_answered(id, p.keys, &by_tuple, now, &mut out),
        }
        out
    }

    /// Asks `holder` whether it still holds these candidates' sockets (step 2).
    fn ask_holder(&mut self, holder: HostIdx, keys: Vec<SocketKey>, now: Clock, out: &mut Vec<Action>) {
        for chunk in keys.chunks(self.cfg.max_lookup_batch) {
            let tuples = chunk.iter().map(|k| k.tuple).collect();
            let nid = self.send(holder, Purpose::HolderCheck, chunk.to_vec(), tuples, true, now, out);
            for key in chunk {
                self.confirm.set_phase(key, Phase::HolderAsked(nid));
            }
        }
    }

    /// Step 1 answered: absent there → ask the holder (step 2).
    fn other_answered(
        &mut self,
        id: u64,
        keys: Vec<SocketKey>,
        by_tuple: &HashMap<Tuple, LookupAnswer>,
        now: Clock,
        out: &mut Vec<Action>,
    ) {
        let mut next: HashMap<HostIdx, Vec<SocketKey>> = HashMap::new();
        for key in keys {
            let Some(cand) = self.confirm.get(&key).copied() else {
                continue;
            };
            if cand.phase != Phase::OtherAsked(id) {
                continue;
            }
            match by_tuple.get(&cand.other.tuple) {
                Some(r) if r.translated.is_some_and(|n| !consistent(key, &cand, &n)) => {
                    self.stats.cleared_by_nat += 1;
                    self.confirm.remove(&key);
                }
                Some(r) if r.socket.is_none() => next.entry(key.host).or_default().push(key),
                // Only a request socket (SYN_RECV): the server has not completed this handshake (its
                // final ACK was dropped on a full accept queue without SYN cookies). Not one-sided
                // yet, nor healthy: asked again later, until it completes (the server's table gains
                // the connection) or expires. A source that follows transitions (eBPF) has no
                // request sockets in its table, so no change of the table would bring it back.
                Some(r)
                    if r.socket
                        .is_some_and(|s| matches!(s.state, TcpState::SynRecv | TcpState::NewSynRecv)) =>
                {
                    if let Some(c) = self.confirm.candidates.get_mut(&key) {
                        c.phase = Phase::Wait;
                        c.retry_at = now.mono_ms + self.cfg.grace_ms.max(1_000);
                    }
                }
                // Present in some state: not one-sided.
                Some(_) => {
                    self.stats.cleared_by_other_lookup += 1;
                    self.confirm.remove(&key);
                }
                None => self.confirm.set_phase(&key, Phase::Wait),
            }
        }
        for (holder, keys) in next {
            if !self.judgeable(holder, now) {
                // judged again once the holder is judgeable (dropping
                // them lost an orphan whose socket never changes)
                for k in keys {
                    self.confirm.remove(&k);
                    self.defer(k, holder);
                }
                continue;
            }
            self.ask_holder(holder, keys, now, out);
        }
    }

    /// Step 2 answered: the same socket still ESTABLISHED → confirmed.
    fn holder_answered(
        &mut self,
        id: u64,
        keys: Vec<SocketKey>,
        by_tuple: &HashMap<Tuple, LookupAnswer>,
        now: Clock,
        out: &mut Vec<Action>,
    ) {
        for key in keys {
            let Some(cand) = self.confirm.get(&key).copied() else {
                continue;
            };
            if cand.phase != Phase::HolderAsked(id) {
                continue;
            }
            let Some(r) = by_tuple.get(&key.tuple) else {
                // not answered for: asked again, as for the other side
                self.confirm.set_phase(&key, Phase::Wait);
                continue;
            };
            self.confirm.remove(&key);
            if r.translated.is_some_and(|n| !consistent(key, &cand, &n)) {
                // The holder's own conntrack translated it: the other end we
                // asked about was the wrong one.
                self.stats.cleared_by_nat += 1;
                continue;
            }
            let same_socket = r
                .socket
                .is_some_and(|s| s.state == TcpState::Established && s.cookie == cand.cookie);
            let Some(&e) = self.hosts[key.host].table.get(&key.tuple) else {
                continue;
            };
            if !same_socket {
                self.stats.cleared_by_holder_lookup += 1;
                continue;
            }
            // The join may have learnt a translation since the candidate was
            // made: a candidate whose other end moved is judged again.
            if self.other_end(key.host, key.tuple) != Some(cand.other) {
                self.stats.cleared_by_nat += 1;
                self.judge(key.host, key.tuple, e, now, out);
                continue;
            }
            let (f, server) = self.one_sided_finding(key, e.side, &cand, r, now);
            out.push(
                self.findings
                    .confirm(FKey::Conn(f.kind, key.host, key.tuple), f, server),
            );
        }
    }

    /// A confirmed client_only / server_only finding with its evidence, and
    /// the server's host.
    fn one_sided_finding(
        &self,
        key: SocketKey,
        side: Side,
        cand: &Candidate,
        r: &LookupAnswer,
        now: Clock,
    ) -> (Finding, HostIdx) {
        let other = cand.other;
        let keepalive = r.socket.is_some_and(|s| s.keepalive) || cand.keepalive;
        // (client host, client view, server host, server view)
        let (client, client_t, server, server_t) = match side {
            Side::Client => (key.host, key.tuple, other.host, other.tuple),
            Side::Server => (other.host, other.tuple, key.host, key.tuple),
        };
        let (kind, process, server_process) = match side {
            Side::Client => (
                FindingKind::ClientOnly,
                r.process.clone(),
                self.hosts[server]
                    .listener_for(server_t.local())
                    .and_then(|l| l.process.clone()),
            ),
            Side::Server => (FindingKind::ServerOnly, None, r.process.clone()),
        };
        let server_state = &self.hosts[server];
        let client_state = &self.hosts[client];
        let listener = server_state.listener_for(server_t.local());
        // The window around its appearance: from two of the server's
        // intervals before it was first seen.
        let since = cand
            .first_seen
            .mono_ms
            .saturating_sub(2 * server_state.interval_ms as u64);
        let mut evidence = Evidence {
            listener: listener.map(|l| server_state.sample(l, since)),
            client_keepalive: KeepaliveSysctls::from_sysctls(&client_state.sysctls).ok().flatten(),
            ..Default::default()
        };
        if server_t != client_t.mirror() {
            evidence.nat = Some(NatPath {
                translated_on: self
                    .hosts
                    .nat_hosts_of(&client_t)
                    .first()
                    .map(|h| self.hosts[*h].name.clone())
                    .unwrap_or_default(),
                server: server_t.local(),
                seen_as: server_t.remote(),
            });
        }
        match kind {
            FindingKind::ClientOnly => {
                evidence.counters = Some(CounterWindow {
                    window_ms: now.mono_ms.saturating_sub(since),
                    deltas: server_state.counters.deltas_since(since),
                });
                evidence.sysctls = server_state.sysctls.clone();
                evidence.server_restarted = self.restart_since(server, server_t, key);
                evidence.witness = self.witnesses.get(server, &server_t).map(|w| w.evidence());
            }
            _ => {
                if cand.leftover {
                    evidence.client_host_gone_since_ms =
                        Some(client_state.disconnected_at.unwrap_or(client_state.known_since).wall_ms);
                }
                evidence.sysctls = server_state.sysctls.clone();
            }
        }
        let f = Finding {
            kind,
            subject: Subject::Connection {
                tuple: client_t,
                client_host: client_state.name.clone(),
                server_host: server_state.name.clone(),
            },
            cookie: cand.cookie,
            process,
            server_process,
            keepalive,
            first_seen_ms: cand.first_seen.wall_ms,
            confirmed_at_ms: now.wall_ms,
            evidence,
        };
        (f, server)
    }

    /// Whether the server side restarted after the client socket `key` was
    /// first seen: the server host came back from a reboot, or the listener
    /// of `server_t` is a new socket. Both are reconciler times, so no clock
    /// of the hosts is compared.
    fn restart_since(&self, server: HostIdx, server_t: Tuple, key: SocketKey) -> Option<Restart> {
        let since_s = self.hosts[key.host].table.get(&key.tuple)?.since_s as u64;
        let s = &self.hosts[server];
        let after = |c: Clock| c.mono_ms / 1000 > since_s;
        if let Some(at) = s.rebooted_at.filter(|c| after(*c)) {
            return Some(Restart {
                what: "host rebooted".into(),
                at_ms: at.wall_ms,
            });
        }
        let l = s.listener_for(server_t.local())?;
        let restarted = s.listener_since.get(&l.addr)?.1?;
        after(restarted).then(|| Restart {
            what: "listener restarted".into(),
            at_ms: restarted.wall_ms,
        })
    }
}

/// Whether a translation that a lookup answer reported is the one the
/// candidate's join already went through (its other end is the entry's other
/// tuple); otherwise the join missed it and asked the wrong host or tuple.
fn consistent(key: SocketKey, cand: &Candidate, n: &halfopen_core::NatEntry) -> bool {
    if key.tuple == n.original {
        cand.other.tuple == n.reply
    } else if key.tuple == n.reply {
        cand.other.tuple == n.original
    } else {
        cand.other.tuple == n.original || cand.other.tuple == n.reply
    }
}
