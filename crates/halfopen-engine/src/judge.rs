//! Judging sockets: a socket that appears, changes or goes may make its
//! connection one-sided (a candidate for confirmation) or end a finding.
//! A judgement that needs a host that is not judgeable now (stale,
//! disconnected, waiting for a full table) is deferred, and made again, for
//! the deferred sockets only, once that host is judgeable.
use crate::confirm::Candidate;
use crate::findings::FKey;
use crate::hosts::HostIdx;
use crate::join::SocketKey;
use crate::table::Entry;
use crate::{Action, Clock, Engine};
use halfopen_core::{FindingKind, GoneReason, Side, TcpState, Tuple};
use std::collections::{HashMap, HashSet};

/// Sweeps run at most this often, ms.
const SWEEP_EVERY_MS: u64 = 1_000;

/// Judgements waiting for a host, and hosts whose addresses changed.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Sockets whose judgement was skipped because the host at their other
    /// end was not judgeable, by that host (with the length at which the list
    /// is next compacted): judged again, and only they, when it is.
    waiting: HashMap<HostIdx, (Vec<SocketKey>, usize)>,
    /// Hosts whose addresses changed since the last sweep: sockets involving
    /// them are re-judged, coalesced.
    pub changed: HashSet<HostIdx>,
    last_sweep_mono: u64,
    /// Hosts known to be gone (disconnected longer than `gone_after`).
    gone: HashSet<HostIdx>,
    /// When gone hosts were last checked for forgetting (mono ms).
    pub last_forget_mono: u64,
}

impl Deferred {
    /// Whether a deferred judgement involves host `h`.
    pub fn refers_to(&self, h: HostIdx) -> bool {
        self.waiting.contains_key(&h) || self.waiting.values().any(|(v, _)| v.iter().any(|k| k.host == h))
    }

    /// Host `h` is forgotten.
    pub fn forget(&mut self, h: HostIdx) {
        self.gone.remove(&h);
        self.changed.remove(&h);
        self.waiting.remove(&h);
    }
}

/// The kind of one-sided finding for a socket held on this side.
fn one_sided(side: Side) -> FindingKind {
    match side {
        Side::Client => FindingKind::ClientOnly,
        Side::Server => FindingKind::ServerOnly,
    }
}

impl Engine {
    /// Whether findings may be judged with this host as one end.
    pub(crate) fn judgeable(&self, h: HostIdx, now: Clock) -> bool {
        !self.hosts.is_stale(h, now, &self.cfg)
    }

    /// A socket appeared or changed on host `h`.
    pub(crate) fn on_upsert(&mut self, h: HostIdx, t: Tuple, e: Entry, now: Clock, out: &mut Vec<Action>) {
        // A dropped handshake of this tuple healed (the server has it now).
        self.witness_server_has(h, t, now, out);
        // Whatever its side and state, this host now holds the tuple: the
        // other end's candidate or finding for it is not one-sided.
        if let Some(o) = self.other_end(h, t) {
            self.confirm.remove(&o);
            for kind in [FindingKind::ClientOnly, FindingKind::ServerOnly] {
                let key = FKey::Conn(kind, o.host, o.tuple);
                out.extend(self.findings.finish(&key, GoneReason::ServerHasIt, now.wall_ms));
            }
        }
        self.judge(h, t, e, now, out);
    }

    /// A socket left host `h`.
    pub(crate) fn on_removed(&mut self, h: HostIdx, t: Tuple, now: Clock, out: &mut Vec<Action>) {
        self.confirm.remove(&SocketKey { host: h, tuple: t });
        for kind in [
            FindingKind::ClientOnly,
            FindingKind::ServerOnly,
            FindingKind::StalledGreeting,
        ] {
            out.extend(
                self.findings
                    .finish(&FKey::Conn(kind, h, t), GoneReason::ClientClosed, now.wall_ms),
            );
        }
        // The other end may now be one-sided, and no longer stalled.
        if let Some(o) = self.other_end(h, t) {
            let stalled = FKey::Conn(FindingKind::StalledGreeting, o.host, o.tuple);
            out.extend(self.findings.finish(&stalled, GoneReason::ClientClosed, now.wall_ms));
            if let Some(&oe) = self.hosts[o.host].table.get(&o.tuple) {
                self.judge(o.host, o.tuple, oe, now, out);
            }
        }
    }

    /// Decides whether a socket held by `h` is a one-sided candidate: client
    /// side for client_only, server side for server_only.
    pub(crate) fn judge(&mut self, h: HostIdx, t: Tuple, e: Entry, now: Clock, out: &mut Vec<Action>) {
        let key = SocketKey { host: h, tuple: t };
        let kind = one_sided(e.side);
        let other_kind = one_sided(match e.side {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        });
        // A side flip (a listener appeared on the port) retires the other kind.
        out.extend(
            self.findings
                .finish(&FKey::Conn(other_kind, h, t), GoneReason::Replaced, now.wall_ms),
        );
        let fkey = FKey::Conn(kind, h, t);
        if e.state != TcpState::Established {
            self.confirm.remove(&key);
            out.extend(self.findings.finish(&fkey, GoneReason::ClientClosed, now.wall_ms));
            return;
        }
        if let Some(f) = self.findings.get(&fkey) {
            if f.cookie == e.cookie {
                return;
            }
            out.extend(self.findings.finish(&fkey, GoneReason::Replaced, now.wall_ms));
        }
        let Some(other) = self.other_end(h, t) else {
            return; // unmonitored or ambiguous address: never judged
        };
        if !self.judgeable(h, now) {
            self.defer(key, h);
            return;
        }
        if !self.judgeable(other.host, now) {
            if e.side == Side::Server && self.hosts.is_gone(other.host, now, &self.cfg) {
                // A leftover of a client host that is gone: only the server
                // can say it still holds it.
                if self.confirm.get(&key).is_none_or(|c| c.cookie != e.cookie) {
                    self.stats.candidates_created += 1;
                    self.confirm.insert(key, Candidate::leftover(e, other, now));
                }
                return;
            }
            self.defer(key, other.host);
            return;
        }
        if self.hosts[other.host].table.contains(&other.tuple) {
            self.confirm.remove(&key);
            return;
        }
        if self.confirm.get(&key).is_some_and(|c| c.cookie == e.cookie) {
            return;
        }
        self.stats.candidates_created += 1;
        self.confirm.insert(key, Candidate::new(e, other, now));
    }

    /// Remembers that `key`'s judgement waits for host `on` to be judgeable.
    pub(crate) fn defer(&mut self, key: SocketKey, on: HostIdx) {
        if key.host == on {
            self.hosts[on].own_skipped = true;
            return;
        }
        let (list, compact_at) = self.deferred.waiting.entry(on).or_insert_with(|| (Vec::new(), 4096));
        list.push(key);
        if list.len() >= *compact_at {
            // Bounded by the live sockets involving `on`, not by how often
            // they were judged: drop duplicates and sockets gone since.
            list.sort_unstable();
            list.dedup();
            let hosts = &self.hosts;
            list.retain(|k| hosts[k.host].table.contains(&k.tuple));
            *compact_at = (list.len() * 2).max(4096);
        }
    }

    /// Judges again what waited for host `h`: its own table if a judgement
    /// of it was skipped, and the sockets elsewhere whose other end is `h`.
    fn rejudge(&mut self, h: HostIdx, now: Clock, out: &mut Vec<Action>) {
        self.stats.sweeps += 1;
        if std::mem::take(&mut self.hosts[h].own_skipped) {
            for (t, e) in self.hosts[h].table.established() {
                self.judge(h, t, e, now, out);
            }
        }
        let (mut list, _) = self.deferred.waiting.remove(&h).unwrap_or_default();
        list.sort_unstable();
        list.dedup();
        for k in list {
            if let Some(&e) = self.hosts[k.host].table.get(&k.tuple) {
                self.judge(k.host, k.tuple, e, now, out);
            }
        }
    }

    /// Every tick: hosts that just became gone, what waited for a host that
    /// is judgeable again (or gone), and (at most once a second) the sockets
    /// involving hosts whose addresses or liveness changed.
    pub(crate) fn catch_up(&mut self, now: Clock, out: &mut Vec<Action>) {
        for h in 0..self.hosts.len() {
            let gone = self.hosts.is_gone(h, now, &self.cfg);
            if gone && self.deferred.gone.insert(h) {
                self.became_gone(h, now, out);
            } else if !gone {
                self.deferred.gone.remove(&h);
            }
            if (self.judgeable(h, now) || gone) && (self.hosts[h].own_skipped || self.deferred.waiting.contains_key(&h))
            {
                self.rejudge(h, now, out);
            }
        }
        if !self.deferred.changed.is_empty() && now.mono_ms >= self.deferred.last_sweep_mono + SWEEP_EVERY_MS {
            let changed = std::mem::take(&mut self.deferred.changed);
            self.deferred.last_sweep_mono = now.mono_ms;
            self.sweep(&changed, now, out);
        }
        self.forget_gone_hosts(now, out);
    }

    /// Host `h` has been disconnected for longer than `gone_after`: what it
    /// held is not known any more (its findings end), and the servers'
    /// sockets whose other end it held are judged again, as leftovers.
    fn became_gone(&mut self, h: HostIdx, now: Clock, out: &mut Vec<Action>) {
        out.push(Action::Notice(crate::Notice::HostGone {
            host: self.hosts[h].name.clone(),
        }));
        for key in self
            .findings
            .held_by(h)
            .into_iter()
            .chain(self.findings.listeners_of(h))
        {
            out.extend(self.findings.finish(&key, GoneReason::HostGone, now.wall_ms));
        }
        self.deferred.changed.insert(h);
    }

    /// Re-judges the ESTABLISHED sockets that involve a host in `changed`
    /// (held by it, or with their other end on it).
    fn sweep(&mut self, changed: &HashSet<HostIdx>, now: Clock, out: &mut Vec<Action>) {
        self.stats.sweeps += 1;
        for h in 0..self.hosts.len() {
            if !self.judgeable(h, now) {
                continue;
            }
            let all = changed.contains(&h);
            let socks: Vec<(Tuple, Entry)> = self.hosts[h]
                .table
                .established()
                .into_iter()
                .filter(|(t, _)| match self.other_end(h, *t) {
                    Some(o) => all || changed.contains(&o.host),
                    None => false,
                })
                .collect();
            for (t, e) in socks {
                self.judge(h, t, e, now, out);
            }
        }
    }
}
