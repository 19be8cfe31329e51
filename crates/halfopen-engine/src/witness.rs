//! The server's kernel as a witness. A collector with the eBPF source
//! reports each completed handshake its kernel dropped because the
//! listener's accept queue was full ([`DropWitness`]: the tuple in the
//! server's view, the path, the queue and backlog at that moment). Here:
//!
//! - witnesses are kept per server host for `dropped_handshake_ttl` (at most
//!   [`MAX_WITNESSES_PER_HOST`], oldest first out), so that a `client_only`
//!   finding whose tuple the server saw dropped says so: at confirmation, or
//!   when the witness arrives after it (the finding is emitted again with it);
//! - a witness whose client address no monitored host claims, on a port
//!   where the server speaks first, becomes a `dropped_handshake` candidate.
//!   After `grace`, the server host is asked in a fresh read whether it holds
//!   the tuple in any state: absent → confirmed (the server's own kernel saw
//!   the drop, and nothing of the connection is left there); a request socket
//!   (SYN_RECV: the normal path, which may still complete) → asked again
//!   later; anything else → it healed. The finding is keyed by the server
//!   host and the tuple in its view, and is gone when the tuple shows up in
//!   that host's table (a client that sent data can heal it on a
//!   client-speaks-first port, or the normal path completed) or after
//!   `dropped_handshake_ttl` (nothing else can say when an unmonitored client
//!   gave up).
//!
//! The client's side is never asked: it is not monitored. Nothing is judged
//! while the server host is not judgeable, and nothing when the server's NAT
//! translations are unknown (the address it sees might be a monitored host's).
use crate::confirm::Purpose;
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::join::SocketKey;
use crate::{Action, Clock, Engine};
use halfopen_core::{
    is_matchable_ip, CounterWindow, DropWitness, Evidence, Finding, FindingKind, GoneReason, LookupAnswer, NatState,
    Subject, TcpState, Tuple,
};
use std::collections::{HashMap, VecDeque};

/// Most witnesses kept per server host (a burst of overflows keeps its
/// latest ones; about 100 bytes each).
pub const MAX_WITNESSES_PER_HOST: usize = 65_536;

/// Expiries are checked at most this often, ms.
const EXPIRE_EVERY_MS: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Wait,
    Asked(u64),
}

/// A witnessed drop that may become a dropped_handshake.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    witness: DropWitness,
    first_seen: Clock,
    /// When the server is asked next (mono ms).
    ask_at: u64,
    phase: Phase,
}

/// One host's witnesses: tuple (its view) → (witness, arrival mono ms), and
/// the arrival order for expiry and the size bound.
#[derive(Debug, Default)]
struct HostWitnesses {
    map: HashMap<Tuple, (DropWitness, u64)>,
    order: VecDeque<(Tuple, u64)>,
}

impl HostWitnesses {
    fn insert(&mut self, w: DropWitness, now_mono: u64, ttl_ms: u64) {
        self.map.insert(w.tuple, (w, now_mono));
        self.order.push_back((w.tuple, now_mono));
        self.prune(now_mono, ttl_ms);
    }

    /// Drops witnesses older than `ttl_ms`, and the oldest beyond the bound.
    fn prune(&mut self, now_mono: u64, ttl_ms: u64) {
        while let Some(&(t, at)) = self.order.front() {
            let expired = now_mono.saturating_sub(at) > ttl_ms;
            if !expired && self.map.len() <= MAX_WITNESSES_PER_HOST && self.order.len() <= 2 * MAX_WITNESSES_PER_HOST {
                break;
            }
            self.order.pop_front();
            // A tuple witnessed again later has a newer entry: keep that one.
            if self.map.get(&t).is_some_and(|(_, a)| *a == at) {
                self.map.remove(&t);
            }
        }
    }
}

/// Witnesses, dropped_handshake candidates, and when current
/// dropped_handshake findings expire.
#[derive(Debug, Default)]
pub(crate) struct Witnesses {
    by_host: HashMap<HostIdx, HostWitnesses>,
    pending: HashMap<SocketKey, Candidate>,
    /// Current dropped_handshake findings (server host, server view) → expiry, mono ms.
    expiry: HashMap<SocketKey, u64>,
    last_expire_mono: u64,
    /// Drops witnessed since the engine started.
    pub received: u64,
}

impl Witnesses {
    /// The witness of a drop of `t` (server `h`'s view), if one is kept.
    pub fn get(&self, h: HostIdx, t: &Tuple) -> Option<&DropWitness> {
        self.by_host.get(&h)?.map.get(t).map(|(w, _)| w)
    }

    /// Host `h` is forgotten.
    pub fn forget(&mut self, h: HostIdx) {
        self.by_host.remove(&h);
        self.pending.retain(|k, _| k.host != h);
        self.expiry.retain(|k, _| k.host != h);
    }

    /// A dropped_handshake finding restored from the store: it expires
    /// `ttl_ms` after it was first seen (reconciler wall clock, the only
    /// time that survives a restart).
    pub fn restored(&mut self, key: SocketKey, f: &Finding, now: Clock, ttl_ms: u64) {
        let age = now.wall_ms.saturating_sub(f.first_seen_ms).max(0) as u64;
        self.expiry
            .insert(key, now.mono_ms.saturating_add(ttl_ms.saturating_sub(age)));
    }
}

impl Engine {
    /// Drops witnessed by host `h`'s kernel (a report's `witnessed`).
    pub(crate) fn on_witnessed(&mut self, h: HostIdx, ws: Vec<DropWitness>, now: Clock, out: &mut Vec<Action>) {
        let ttl = self.cfg.dropped_handshake_ttl_ms;
        for w in ws {
            self.witnesses.received += 1;
            self.witnesses.by_host.entry(h).or_default().insert(w, now.mono_ms, ttl);
            match self.other_end(h, w.tuple) {
                // The client is monitored: its client_only finding (if any) says so.
                Some(o) => {
                    let key = FKey::Conn(FindingKind::ClientOnly, o.host, o.tuple);
                    let ev = w.evidence();
                    if self.findings.get(&key).is_some_and(|f| f.evidence.witness != Some(ev)) {
                        let mut e = self.findings.get(&key).map(|f| f.evidence.clone()).unwrap_or_default();
                        e.witness = Some(ev);
                        if let Some(f) = self.findings.update_evidence(&key, e) {
                            out.push(Action::Confirmed(f.clone()));
                        }
                    }
                }
                None if self.unmonitored_client(h, &w) => {
                    let key = SocketKey {
                        host: h,
                        tuple: w.tuple,
                    };
                    let current = FKey::Conn(FindingKind::DroppedHandshake, h, w.tuple);
                    if self.findings.get(&current).is_some() || self.hosts[h].table.contains(&w.tuple) {
                        continue;
                    }
                    let c = self.witnesses.pending.entry(key).or_insert(Candidate {
                        witness: w,
                        first_seen: now,
                        ask_at: now.mono_ms + self.cfg.grace_ms,
                        phase: Phase::Wait,
                    });
                    c.witness = w;
                }
                None => {}
            }
        }
    }

    /// Whether a witnessed drop on host `h` is from a client no monitored
    /// host can answer for, on a port where the server speaks first.
    fn unmonitored_client(&self, h: HostIdx, w: &DropWitness) -> bool {
        let client = w.tuple.remote_ip();
        is_matchable_ip(client)
            && !self.hosts.owns_or_shared(client)
            && !matches!(self.hosts[h].nat_state, NatState::Unknown(_))
            && self.hosts.nat_original_of(&w.tuple).is_none()
            && self.cfg.greeting_ports.contains(&w.tuple.local_port())
    }

    /// Host `h` now holds `t` (its view): a dropped handshake of that tuple
    /// healed, and a candidate for it is not one.
    pub(crate) fn witness_server_has(&mut self, h: HostIdx, t: Tuple, now: Clock, out: &mut Vec<Action>) {
        let key = SocketKey { host: h, tuple: t };
        self.witnesses.pending.remove(&key);
        if self.witnesses.expiry.remove(&key).is_some() {
            out.extend(self.findings.finish(
                &FKey::Conn(FindingKind::DroppedHandshake, h, t),
                GoneReason::ServerHasIt,
                now.wall_ms,
            ));
        }
    }

    /// Every tick: asks the servers about candidates whose grace passed,
    /// drops candidates older than the TTL, ends expired findings.
    pub(crate) fn witness_tick(&mut self, now: Clock, out: &mut Vec<Action>) {
        let ttl = self.cfg.dropped_handshake_ttl_ms;
        let mut batches: HashMap<HostIdx, Vec<SocketKey>> = HashMap::new();
        let mut stale = Vec::new();
        for (&key, c) in &self.witnesses.pending {
            if now.mono_ms.saturating_sub(c.first_seen.mono_ms) > ttl {
                stale.push(key);
            } else if c.phase == Phase::Wait && now.mono_ms >= c.ask_at && self.judgeable(key.host, now) {
                batches.entry(key.host).or_default().push(key);
            }
        }
        for k in stale {
            self.witnesses.pending.remove(&k);
        }
        for (host, keys) in batches {
            for chunk in keys.chunks(self.cfg.max_lookup_batch) {
                let tuples = chunk.iter().map(|k| k.tuple).collect();
                let id = self.send(host, Purpose::DroppedHandshake, chunk.to_vec(), tuples, false, now, out);
                for k in chunk {
                    if let Some(c) = self.witnesses.pending.get_mut(k) {
                        c.phase = Phase::Asked(id);
                    }
                }
            }
        }
        if now.mono_ms >= self.witnesses.last_expire_mono + EXPIRE_EVERY_MS {
            self.witnesses.last_expire_mono = now.mono_ms;
            let expired: Vec<SocketKey> = self
                .witnesses
                .expiry
                .iter()
                .filter(|(_, &at)| now.mono_ms >= at)
                .map(|(k, _)| *k)
                .collect();
            for k in expired {
                self.witnesses.expiry.remove(&k);
                out.extend(self.findings.finish(
                    &FKey::Conn(FindingKind::DroppedHandshake, k.host, k.tuple),
                    GoneReason::Expired,
                    now.wall_ms,
                ));
            }
            for w in self.witnesses.by_host.values_mut() {
                w.prune(now.mono_ms, ttl);
            }
        }
    }

    /// A lookup about this many dropped_handshake candidates timed out or
    /// its host went away: they are asked again.
    pub(crate) fn witness_retry(&mut self, keys: &[SocketKey], id: u64) {
        for k in keys {
            if let Some(c) = self.witnesses.pending.get_mut(k) {
                if c.phase == Phase::Asked(id) {
                    c.phase = Phase::Wait;
                }
            }
        }
    }

    /// The server answered about dropped_handshake candidates.
    pub(crate) fn dropped_answered(
        &mut self,
        id: u64,
        keys: Vec<SocketKey>,
        by_tuple: &HashMap<Tuple, LookupAnswer>,
        now: Clock,
        out: &mut Vec<Action>,
    ) {
        for key in keys {
            let Some(c) = self.witnesses.pending.get(&key).copied() else {
                continue;
            };
            if c.phase != Phase::Asked(id) {
                continue;
            }
            match by_tuple.get(&key.tuple) {
                None => self.witness_retry(&[key], id),
                // Translated here: its other end is elsewhere; not ours to judge.
                Some(a) if a.translated.is_some() => {
                    self.witnesses.pending.remove(&key);
                }
                // The request socket is still there (normal path): it may
                // complete when the queue drains. Asked again later.
                Some(a)
                    if a.socket
                        .is_some_and(|s| matches!(s.state, TcpState::SynRecv | TcpState::NewSynRecv)) =>
                {
                    if let Some(c) = self.witnesses.pending.get_mut(&key) {
                        c.phase = Phase::Wait;
                        c.ask_at = now.mono_ms + self.cfg.grace_ms.max(1_000);
                    }
                }
                // The server holds it after all: not a lost handshake.
                Some(a) if a.socket.is_some() => {
                    self.witnesses.pending.remove(&key);
                }
                Some(_) => {
                    self.witnesses.pending.remove(&key);
                    if self.hosts[key.host].table.contains(&key.tuple) {
                        continue;
                    }
                    let f = self.dropped_finding(key, &c, now);
                    self.witnesses
                        .expiry
                        .insert(key, c.first_seen.mono_ms + self.cfg.dropped_handshake_ttl_ms);
                    out.push(self.findings.confirm(
                        FKey::Conn(FindingKind::DroppedHandshake, key.host, key.tuple),
                        f,
                        key.host,
                    ));
                }
            }
        }
    }

    /// A confirmed dropped_handshake: the client end (unmonitored), the
    /// server listener and its process, the witness, and the server host's
    /// counters and sysctls around it.
    fn dropped_finding(&self, key: SocketKey, c: &Candidate, now: Clock) -> Finding {
        let s = &self.hosts[key.host];
        let listener = s.listener_for(key.tuple.local());
        let since = c.first_seen.mono_ms.saturating_sub(2 * s.interval_ms as u64);
        let mut sample = listener.map(|l| s.sample(l, since));
        // The queue when it overflowed, not now.
        if let Some(l) = sample.as_mut() {
            l.queue = c.witness.queue;
            l.backlog = c.witness.backlog;
        }
        Finding {
            kind: FindingKind::DroppedHandshake,
            subject: Subject::Connection {
                tuple: key.tuple.mirror(),
                client_host: String::new(),
                server_host: s.name.clone(),
            },
            cookie: 0,
            process: None,
            server_process: listener.and_then(|l| l.process.clone()),
            keepalive: false,
            first_seen_ms: c.first_seen.wall_ms,
            confirmed_at_ms: now.wall_ms,
            evidence: Evidence {
                listener: sample,
                counters: Some(CounterWindow {
                    window_ms: now.mono_ms.saturating_sub(since),
                    deltas: s.counters.deltas_since(since),
                }),
                sysctls: s.sysctls.clone(),
                witness: Some(c.witness.evidence()),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::DropPath;

    /// The n-th distinct client (198.18.x.7:port).
    fn w(n: u32) -> DropWitness {
        let (port, x) = (n % 60_000 + 1, n / 60_000);
        DropWitness {
            tuple: Tuple::new(
                "198.19.0.1:3306".parse().unwrap(),
                format!("198.18.{x}.7:{port}").parse().unwrap(),
            ),
            at_ms: 0,
            path: DropPath::Cookie,
            queue: 5,
            backlog: 4,
        }
    }

    #[test]
    fn witnesses_expire_and_stay_bounded() {
        let mut h = HostWitnesses::default();
        h.insert(w(1), 0, 1_000);
        h.insert(w(2), 500, 1_000);
        // The first witnessed again later: its newer entry survives the old one's expiry.
        h.insert(w(1), 900, 1_000);
        h.prune(1_200, 1_000);
        assert_eq!(h.map.len(), 2);
        h.prune(1_600, 1_000);
        assert_eq!(h.map.keys().copied().collect::<Vec<_>>(), vec![w(1).tuple]);
        h.prune(2_000, 1_000);
        assert!(h.map.is_empty() && h.order.is_empty());
        // A burst beyond the bound keeps the latest.
        let n = (MAX_WITNESSES_PER_HOST + 10) as u32;
        for p in 0..n {
            h.insert(w(p), 10_000 + u64::from(p), u64::MAX);
        }
        assert_eq!(h.map.len(), MAX_WITNESSES_PER_HOST);
        assert!(h.map.contains_key(&w(n - 1).tuple), "the latest is kept");
        assert!(!h.map.contains_key(&w(0).tuple), "the oldest went first");
        // The same tuple witnessed over and over does not grow the order without bound.
        for i in 0..(3 * MAX_WITNESSES_PER_HOST) as u64 {
            h.insert(w(1), 1_000_000 + i, u64::MAX);
        }
        assert!(h.order.len() <= 2 * MAX_WITNESSES_PER_HOST);
    }
}
