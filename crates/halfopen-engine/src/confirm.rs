//! Confirmation: candidates and the two lookups that turn one into a
//! finding (the argument is in the crate documentation). After `grace`, the
//! other host is asked in a fresh scan whether it holds the tuple in any
//! state; if not, the holder is asked whether it still holds the same socket
//! (same cookie) ESTABLISHED, with its owning process. Lookups are batched
//! per host; one not answered in time is abandoned and its candidates start
//! over. A host that stops being judgeable defers its candidates.
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::join::SocketKey;
use crate::table::Entry;
use crate::{Action, Clock, Engine};
use halfopen_core::{
    CounterWindow, Evidence, Finding, FindingKind, Listener, ListenerSample, LookupAnswer, Side, Subject, TcpState,
    Tuple,
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
}

impl Candidate {
    pub fn new(e: Entry, other: SocketKey, now: Clock) -> Candidate {
        Candidate {
            cookie: e.cookie,
            keepalive: e.keepalive,
            other,
            first_seen: now,
            phase: Phase::Wait,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    OtherCheck,
    HolderCheck,
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
}

impl Default for Confirmations {
    fn default() -> Self {
        Confirmations {
            candidates: HashMap::new(),
            pending: HashMap::new(),
            next_id: 1,
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
                for key in p.keys {
                    self.confirm.set_phase(&key, Phase::Wait);
                }
            }
        }

        // Checks on the other end, batched per host.
        let mut batches: HashMap<HostIdx, Vec<(SocketKey, Tuple)>> = HashMap::new();
        let mut drop = Vec::new();
        for (&key, cand) in &self.confirm.candidates {
            if cand.phase != Phase::Wait {
                continue;
            }
            if !self.judgeable(key.host, now) {
                drop.push((key, key.host));
                continue;
            }
            if !self.judgeable(cand.other.host, now) {
                drop.push((key, cand.other.host));
                continue;
            }
            if now.mono_ms >= cand.first_seen.mono_ms + self.cfg.grace_ms {
                batches
                    .entry(cand.other.host)
                    .or_default()
                    .push((key, cand.other.tuple));
            }
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
                for key in p.keys {
                    if self.confirm.remove(&key).is_some() {
                        self.defer(key, h);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
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
        }
        out
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
                Some(r) if r.socket.is_none() => next.entry(key.host).or_default().push(key),
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
            for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                let tuples = chunk.iter().map(|k| k.tuple).collect();
                let nid = self.send(holder, Purpose::HolderCheck, chunk.to_vec(), tuples, true, now, out);
                for key in chunk {
                    self.confirm.set_phase(key, Phase::HolderAsked(nid));
                }
            }
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
        let (kind, client, server, tuple, process, server_process) = match side {
            Side::Client => {
                let listener = self.hosts[other.host].listener_for(other.tuple.local());
                (
                    FindingKind::ClientOnly,
                    key.host,
                    other.host,
                    key.tuple,
                    r.process.clone(),
                    listener.and_then(|l| l.process.clone()),
                )
            }
            Side::Server => (
                FindingKind::ServerOnly,
                other.host,
                key.host,
                other.tuple,
                None,
                r.process.clone(),
            ),
        };
        let server_state = &self.hosts[server];
        // The server end in the server's own view.
        let server_end = if side == Side::Client {
            other.tuple.local()
        } else {
            key.tuple.local()
        };
        let listener = server_state.listener_for(server_end);
        let mut evidence = Evidence {
            listener: listener.map(sample),
            ..Default::default()
        };
        if kind == FindingKind::ClientOnly {
            // The counters in the window around its appearance: from two of
            // the server's intervals before it was first seen.
            let since = cand
                .first_seen
                .mono_ms
                .saturating_sub(2 * server_state.interval_ms as u64);
            evidence.counters = Some(CounterWindow {
                window_ms: now.mono_ms.saturating_sub(since),
                deltas: server_state.counters.deltas_since(since),
            });
            evidence.sysctls = server_state.sysctls.clone();
        }
        let f = Finding {
            kind,
            subject: Subject::Connection {
                tuple,
                client_host: self.hosts[client].name.clone(),
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
}

/// A listener as evidence.
pub(crate) fn sample(l: &Listener) -> ListenerSample {
    ListenerSample {
        addr: l.addr,
        queue: l.queue,
        backlog: l.backlog,
        libwrap: l.libwrap,
    }
}
