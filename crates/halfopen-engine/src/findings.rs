//! The current findings and the indexes kept with them. Inserting and
//! removing go through [`FindingSet`] only, so no caller can forget an
//! index: stalled greetings by client host (a report looks only at its own
//! host's) and client_only findings per server port that an overflow left
//! (a listener stays at risk while its orphans are there; orphans of a
//! server restart do not make its new listener at risk).
use crate::hosts::{HostIdx, Hosts};
use crate::{Action, Clock};
use halfopen_core::{Evidence, Finding, FindingKind, GoneReason, Subject, Tuple};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// Where a finding lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FKey {
    /// A connection: its kind, the host that holds the socket the finding is
    /// about (the client for client_only and stalled_greeting, the server for
    /// server_only), and the tuple in that host's view.
    Conn(FindingKind, HostIdx, Tuple),
    /// A listener finding (listener_at_risk, accept_stalled): its kind, the
    /// listener's host and address.
    Listener(FindingKind, HostIdx, SocketAddr),
}

#[derive(Debug)]
struct Stored {
    finding: Finding,
    /// The server's host (the listener's for listener_at_risk).
    server: HostIdx,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct FindingSet {
    by_key: HashMap<FKey, Stored>,
    stalled_by_client: HashMap<HostIdx, HashSet<Tuple>>,
    orphans_by_port: HashMap<(HostIdx, u16), usize>,
    /// Current findings per server host (the listener's host).
    by_server: HashMap<HostIdx, usize>,
    confirmed: u64,
    gone: u64,
    /// Confirmed since start, per kind; ended since start, per kind and reason.
    confirmed_by_kind: HashMap<FindingKind, u64>,
    gone_by_kind: HashMap<(FindingKind, GoneReason), u64>,
}

impl FindingSet {
    /// The key of a finding that comes from outside (the store): its hosts
    /// are created in `hosts` when unknown.
    pub fn key_for(&self, f: &Finding, hosts: &mut Hosts, now: Clock) -> FKey {
        match &f.subject {
            Subject::Connection {
                tuple,
                client_host,
                server_host,
            } => {
                let (c, s) = (hosts.index(client_host, now), hosts.index(server_host, now));
                match f.kind {
                    FindingKind::ServerOnly => FKey::Conn(f.kind, s, tuple.mirror()),
                    k => FKey::Conn(k, c, *tuple),
                }
            }
            Subject::Listener { host, addr } => FKey::Listener(f.kind, hosts.index(host, now), *addr),
        }
    }

    pub fn get(&self, key: &FKey) -> Option<&Finding> {
        self.by_key.get(key).map(|s| &s.finding)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether a current finding is held by host `h` or names host `name`.
    pub fn mentions(&self, h: HostIdx, name: &str) -> bool {
        self.by_key.iter().any(|(k, s)| {
            matches!(k, FKey::Conn(_, x, _) | FKey::Listener(_, x, _) if *x == h)
                || s.finding.subject.server_host() == name
                || s.finding.subject.client_host() == Some(name)
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.by_key.values().map(|s| &s.finding)
    }

    /// Findings confirmed and gone since the engine started.
    pub fn counts(&self) -> (u64, u64) {
        (self.confirmed, self.gone)
    }

    /// Findings of `kind` confirmed since the engine started.
    pub fn confirmed_of(&self, kind: FindingKind) -> u64 {
        self.confirmed_by_kind.get(&kind).copied().unwrap_or(0)
    }

    /// Findings that ended since the engine started, per kind and reason
    /// (sorted; only pairs that happened).
    pub fn gone_by_kind(&self) -> Vec<(FindingKind, GoneReason, u64)> {
        let mut gone: Vec<_> = self.gone_by_kind.iter().map(|(&(k, r), &n)| (k, r, n)).collect();
        gone.sort_by_key(|&(k, r, _)| (k, r.as_str()));
        gone
    }

    /// Puts a finding in place (replacing one with the same key). Returns the
    /// one it replaced.
    pub fn insert(&mut self, key: FKey, finding: Finding, server: HostIdx) -> Option<Finding> {
        let old = self.by_key.remove(&key);
        if let Some(o) = &old {
            self.index(&key, o, false);
        }
        let s = Stored { finding, server };
        self.index(&key, &s, true);
        self.by_key.insert(key, s);
        old.map(|o| o.finding)
    }

    /// A newly confirmed finding: in place, counted, and the action saying so.
    pub fn confirm(&mut self, key: FKey, finding: Finding, server: HostIdx) -> Action {
        self.confirmed += 1;
        *self.confirmed_by_kind.entry(finding.kind).or_insert(0) += 1;
        self.insert(key, finding.clone(), server);
        Action::Confirmed(finding)
    }

    /// Replaces the evidence of a current finding (nothing that an index
    /// depends on changes). Returns the finding as it is now.
    pub fn update_evidence(&mut self, key: &FKey, evidence: Evidence) -> Option<&Finding> {
        let s = self.by_key.get_mut(key)?;
        s.finding.evidence = evidence;
        Some(&s.finding)
    }

    /// Ends a finding, if current: out of the set and every index, counted,
    /// and the action saying so.
    pub fn finish(&mut self, key: &FKey, reason: GoneReason, at_ms: i64) -> Option<Action> {
        let s = self.by_key.remove(key)?;
        self.index(key, &s, false);
        self.gone += 1;
        *self.gone_by_kind.entry((s.finding.kind, reason)).or_insert(0) += 1;
        Some(Action::Gone {
            finding: s.finding,
            at_ms,
            reason,
        })
    }

    /// Current stalled greetings held by client host `c` (their tuples).
    pub fn stalled_of(&self, c: HostIdx) -> Vec<Tuple> {
        self.stalled_by_client
            .get(&c)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Whether current client_only findings that an overflow left (not a
    /// restart) point at `port` on server host `s`.
    pub fn has_orphans(&self, s: HostIdx, port: u16) -> bool {
        self.orphans_by_port.contains_key(&(s, port))
    }

    /// Keys of the connection findings whose socket host `h` holds.
    pub fn held_by(&self, h: HostIdx) -> Vec<FKey> {
        self.by_key
            .keys()
            .filter(|k| matches!(k, FKey::Conn(_, x, _) if *x == h))
            .copied()
            .collect()
    }

    /// Keys of the listener findings (at risk, accept stalled) of host `h`.
    pub fn listeners_of(&self, h: HostIdx) -> Vec<FKey> {
        self.by_key
            .keys()
            .filter(|k| matches!(k, FKey::Listener(_, x, _) if *x == h))
            .copied()
            .collect()
    }

    /// Whether host `s` serves any current finding.
    pub fn serves(&self, s: HostIdx) -> bool {
        self.by_server.contains_key(&s)
    }

    fn index(&mut self, key: &FKey, s: &Stored, add: bool) {
        let n = self.by_server.entry(s.server).or_insert(0);
        *n = if add { *n + 1 } else { n.saturating_sub(1) };
        if *n == 0 {
            self.by_server.remove(&s.server);
        }
        match *key {
            FKey::Conn(FindingKind::StalledGreeting, c, t) => {
                if add {
                    self.stalled_by_client.entry(c).or_default().insert(t);
                } else if let Some(set) = self.stalled_by_client.get_mut(&c) {
                    set.remove(&t);
                    if set.is_empty() {
                        self.stalled_by_client.remove(&c);
                    }
                }
            }
            FKey::Conn(FindingKind::ClientOnly, _, t) if s.finding.evidence.server_restarted.is_none() => {
                let k = (s.server, t.remote_port());
                let n = self.orphans_by_port.entry(k).or_insert(0);
                *n = if add { *n + 1 } else { n.saturating_sub(1) };
                if *n == 0 {
                    self.orphans_by_port.remove(&k);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::Subject;

    fn finding(kind: FindingKind, port: u16) -> Finding {
        Finding {
            kind,
            subject: Subject::Connection {
                tuple: Tuple::new(
                    format!("198.18.0.2:{port}").parse().unwrap(),
                    "198.18.0.1:3306".parse().unwrap(),
                ),
                client_host: "app".into(),
                server_host: "db".into(),
            },
            cookie: 1,
            process: None,
            server_process: None,
            keepalive: false,
            first_seen_ms: 0,
            confirmed_at_ms: 0,
            evidence: Evidence::default(),
        }
    }

    #[test]
    fn indexes_follow_every_insert_replace_and_finish() {
        let mut hosts = Hosts::default();
        let mut set = FindingSet::default();
        let now = Clock { mono_ms: 0, wall_ms: 0 };
        let o1 = finding(FindingKind::ClientOnly, 40001);
        let o2 = finding(FindingKind::ClientOnly, 40002);
        let st = finding(FindingKind::StalledGreeting, 40003);
        let (k1, k2, ks) = (
            set.key_for(&o1, &mut hosts, now),
            set.key_for(&o2, &mut hosts, now),
            set.key_for(&st, &mut hosts, now),
        );
        let (app, db) = (hosts.find("app").unwrap(), hosts.find("db").unwrap());
        set.confirm(k1, o1.clone(), db);
        set.confirm(k2, o2, db);
        set.confirm(ks, st.clone(), db);
        assert!(set.has_orphans(db, 3306));
        assert_eq!(set.stalled_of(app), vec![st.tuple().unwrap()]);
        // Replacing keeps the count right.
        assert!(set.insert(k1, o1, db).is_some());
        set.finish(&k1, GoneReason::ClientClosed, 5).unwrap();
        assert!(set.has_orphans(db, 3306), "one orphan left");
        set.finish(&k2, GoneReason::ClientClosed, 5).unwrap();
        assert!(!set.has_orphans(db, 3306));
        assert!(set.finish(&k2, GoneReason::ClientClosed, 5).is_none(), "already gone");
        set.finish(&ks, GoneReason::Greeted, 6).unwrap();
        assert!(set.stalled_of(app).is_empty());
        assert_eq!(set.counts(), (3, 3));
        assert_eq!(set.confirmed_of(FindingKind::ClientOnly), 2);
        assert_eq!(set.confirmed_of(FindingKind::StalledGreeting), 1);
        assert_eq!(
            set.gone_by_kind(),
            vec![
                (FindingKind::ClientOnly, GoneReason::ClientClosed, 2),
                (FindingKind::StalledGreeting, GoneReason::Greeted, 1)
            ]
        );
        assert_eq!(set.len(), 0);
        // An orphan of a server restart does not point at the listener.
        let mut restarted = finding(FindingKind::ClientOnly, 40004);
        restarted.evidence.server_restarted = Some(halfopen_core::Restart {
            what: "host rebooted".into(),
            at_ms: 1,
        });
        let kr = set.key_for(&restarted, &mut hosts, now);
        set.confirm(kr, restarted, db);
        assert!(!set.has_orphans(db, 3306));
        set.finish(&kr, GoneReason::ClientClosed, 7).unwrap();
    }
}
