//! The delta between consecutive scans, as a pure computation: what was
//! upserted (new, or changed in a way the reconciler cares about: cookie,
//! state, side, keepalive) and what was removed. No scanner, no /proc.
//!
//! In place and cheap: one hash lookup per socket, then one pass over the
//! table for the removed ones (no second map per interval); the table keeps
//! only what is compared, not whole records.
use halfopen_core::{Side, SocketRecord, TcpState, Tuple};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// FxHash (rustc-hash): tuples come from the kernel, not from an adversary,
/// and SipHash made hashing most of the delta's cost (BENCHMARKS.md).
type TupleHash = rustc_hash::FxBuildHasher;

/// What changed since the previous scan.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delta {
    /// New or changed sockets (every socket when full), each tuple once.
    pub upserted: Vec<SocketRecord>,
    /// Tuples gone since the previous scan (empty when full).
    pub removed: Vec<Tuple>,
}

/// What the last report said about a tuple (the fields `same` compares),
/// where its latest record is in the scan, and in which scans it was last
/// seen and last changed.
#[derive(Debug, Clone, Copy)]
struct Sent {
    cookie: u64,
    idx: u32,
    seen: u32,
    changed: u32,
    state: TcpState,
    side: Side,
    keepalive: bool,
    /// No inode yet: a server end still in its listener's accept queue
    /// (the reconciler keeps this: accept_stalled, in_accept_queue).
    queued: bool,
}

impl Sent {
    fn of(r: &SocketRecord, idx: u32, generation: u32) -> Sent {
        Sent {
            cookie: r.cookie,
            idx,
            seen: generation,
            changed: 0,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
            queued: r.inode == 0,
        }
    }

    /// Whether two records of the same tuple are the same as far as the
    /// reconciler cares: tcp_info and the inode's value are not, but whether
    /// there is an inode is (a queued connection that the server accepted).
    fn same(&self, o: &Sent) -> bool {
        self.cookie == o.cookie
            && self.state == o.state
            && self.side == o.side
            && self.keepalive == o.keepalive
            && self.queued == o.queued
    }
}

/// Sockets by the kernel's state number (index 1..=12) and side (index 0
/// client, 1 server).
pub type StateCounts = [[u32; 2]; 13];

/// Adds `by` (+1 or -1) to the count of `state` on `side`.
fn count(counts: &mut StateCounts, state: TcpState, side: Side, by: i32) {
    let c = &mut counts[state as usize][usize::from(side == Side::Server)];
    *c = c.wrapping_add_signed(by);
}

/// The table as last reported. See the module documentation.
#[derive(Debug, Default)]
pub struct Differ {
    sent: HashMap<Tuple, Sent, TupleHash>,
    /// Number of the current scan (wrapping), for `Sent::seen`.
    generation: u32,
    /// `sent` by state and side, kept with every change to it, so that a
    /// report built from changes (eBPF) does not walk the table to count.
    counts: StateCounts,
}

impl Differ {
    /// Sockets in the table as last reported.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// What changed between the previous call and `scan`; with `full`,
    /// every socket of `scan` is upserted and nothing is removed (the
    /// reconciler replaces its table). Two records of one tuple in `scan` (a
    /// dump racing a state change) are sent once, as the later one.
    pub fn diff(&mut self, scan: &[SocketRecord], full: bool) -> Delta {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.sent.reserve(scan.len().saturating_sub(self.sent.len()));
        // Two records for one tuple can only come from a dump racing a state
        // change; the later one wins. Every record renews `seen`.
        let changed = self.upsert(scan, full, true);
        let mut removed = Vec::new();
        let counts = &mut self.counts;
        self.sent.retain(|t, s| {
            let keep = s.seen == generation;
            if !keep {
                removed.push(*t);
                count(counts, s.state, s.side, -1);
            }
            keep
        });
        // each changed tuple once, as its latest record in this scan
        let upserted = self.latest(scan, &changed);
        Delta {
            upserted,
            removed: if full { Vec::new() } else { removed },
        }
    }
}

impl Differ {
    /// What changes to a table already reported make: `upserted` are the
    /// current records of sockets that changed (a tuple twice: the later
    /// record), `removed` tuples gone. Only differences from what was last
    /// reported are sent; a removal of a tuple never reported is nothing.
    /// For sources that see changes happen (eBPF): no whole table needed.
    pub fn apply(&mut self, upserted: &[SocketRecord], removed: &[Tuple]) -> Delta {
        self.generation = self.generation.wrapping_add(1);
        let mut delta = Delta::default();
        let fresh: std::collections::HashSet<Tuple, TupleHash> = upserted.iter().map(|r| r.tuple).collect();
        for t in removed {
            if fresh.contains(t) {
                continue;
            }
            if let Some(s) = self.sent.remove(t) {
                count(&mut self.counts, s.state, s.side, -1);
                delta.removed.push(*t);
            }
        }
        // `seen` stays what the last whole diff saw: a later diff renews it.
        let changed = self.upsert(upserted, false, false);
        delta.upserted = self.latest(upserted, &changed);
        delta
    }

    /// Puts `records` into the table for the current generation and returns
    /// the indexes (into `records`) of the tuples that changed, each tuple
    /// once, at its first record's index (`Sent::idx` then points at its
    /// latest). With `all`, every record counts as changed (a full report);
    /// with `renew_seen`, every record marks its tuple seen in this
    /// generation (a whole scan), else an existing tuple keeps its `seen`.
    fn upsert(&mut self, records: &[SocketRecord], all: bool, renew_seen: bool) -> Vec<u32> {
        let generation = self.generation;
        let mut changed: Vec<u32> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let i = i as u32;
            let now = Sent::of(r, i, generation);
            match self.sent.entry(r.tuple) {
                Entry::Occupied(mut e) => {
                    let s = e.get_mut();
                    let changed_now = all || !s.same(&now) || s.changed == generation;
                    if changed_now && s.changed != generation {
                        changed.push(i);
                    }
                    count(&mut self.counts, s.state, s.side, -1);
                    count(&mut self.counts, now.state, now.side, 1);
                    *s = Sent {
                        changed: if changed_now { generation } else { s.changed },
                        seen: if renew_seen { generation } else { s.seen },
                        ..now
                    };
                }
                Entry::Vacant(e) => {
                    count(&mut self.counts, now.state, now.side, 1);
                    e.insert(Sent {
                        changed: generation,
                        ..now
                    });
                    changed.push(i);
                }
            }
        }
        changed
    }

    /// The latest record of each changed tuple (`changed` as [`Differ::upsert`]
    /// returned it, for the same `records`).
    fn latest(&self, records: &[SocketRecord], changed: &[u32]) -> Vec<SocketRecord> {
        changed
            .iter()
            .map(|&i| {
                let t = records[i as usize].tuple;
                records[self.sent.get(&t).map_or(i, |s| s.idx) as usize]
            })
            .collect()
    }

    /// Sockets as last reported, by state and side (kept as the table
    /// changes: no walk).
    pub fn counts(&self) -> &StateCounts {
        &self.counts
    }

    /// Whether a socket as last reported matches `f` (tuple, state, side).
    pub fn any(&self, f: impl Fn(&Tuple, TcpState, Side) -> bool) -> bool {
        self.sent.iter().any(|(t, s)| f(t, s.state, s.side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn rec(port: u16, state: TcpState, cookie: u64) -> SocketRecord {
        SocketRecord {
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "198.18.0.1:3306".parse().unwrap(),
            ),
            state,
            side: Side::Client,
            cookie,
            inode: 1,
            uid: 0,
            keepalive: false,
            info: None,
        }
    }

    #[test]
    fn new_changed_unchanged_and_removed() {
        let mut d = Differ::default();
        let a = rec(1, TcpState::Established, 1);
        let b = rec(2, TcpState::Established, 2);
        let first = d.diff(&[a, b], true);
        assert_eq!(first.upserted, vec![a, b]);
        assert!(first.removed.is_empty());
        // Nothing changed: an empty delta.
        assert_eq!(d.diff(&[a, b], false), Delta::default());
        // b changed state, c is new, a is gone.
        let b2 = rec(2, TcpState::CloseWait, 2);
        let c = rec(3, TcpState::SynSent, 3);
        let delta = d.diff(&[b2, c], false);
        assert_eq!(delta.upserted, vec![b2, c]);
        assert_eq!(delta.removed, vec![a.tuple]);
        // A new socket on an old tuple (another cookie) is a change.
        let b3 = rec(2, TcpState::CloseWait, 99);
        assert_eq!(d.diff(&[b3, c], false).upserted, vec![b3]);
        // An inode's value changing alone is not (the reconciler does not keep it).
        let mut c2 = c;
        c2.inode = 77;
        assert_eq!(d.diff(&[b3, c2], false), Delta::default());
        assert_eq!(d.len(), 2);
        // A connection waiting in the accept queue (no inode) that the server
        // accepts (an inode now) is a change: it is no longer queued.
        let mut q = rec(4, TcpState::Established, 4);
        q.side = Side::Server;
        q.inode = 0;
        assert_eq!(d.diff(&[b3, c2, q], false).upserted, vec![q]);
        let mut accepted = q;
        accepted.inode = 5;
        assert_eq!(d.diff(&[b3, c2, accepted], false).upserted, vec![accepted]);
    }

    #[test]
    fn a_full_report_resends_everything_and_removes_nothing() {
        let mut d = Differ::default();
        let a = rec(1, TcpState::Established, 1);
        d.diff(&[a, rec(2, TcpState::Established, 2)], false);
        let full = d.diff(&[a], true);
        assert_eq!(full.upserted, vec![a]);
        assert!(full.removed.is_empty(), "a full table replaces, it removes nothing");
        assert_eq!(d.len(), 1, "the dropped socket is forgotten");
    }

    #[test]
    fn a_tuple_seen_twice_in_one_scan_is_sent_once_as_the_later_record() {
        let mut d = Differ::default();
        let early = rec(1, TcpState::SynSent, 5);
        let late = rec(1, TcpState::Established, 5);
        assert_eq!(d.diff(&[early, late], false).upserted, vec![late]);
        // Unchanged since, even when the dump shows it twice again.
        assert_eq!(d.diff(&[late, late], false), Delta::default());
        // Twice in one scan, the later one different from what was sent: the later.
        let closing = rec(1, TcpState::FinWait1, 5);
        assert_eq!(d.diff(&[late, closing], false).upserted, vec![closing]);
    }

    #[test]
    fn changes_applied_one_by_one_send_only_differences() {
        let mut d = Differ::default();
        let a = rec(1, TcpState::Established, 1);
        let b = rec(2, TcpState::Established, 2);
        d.diff(&[a, b], true);
        // b closed, c connected, a reported again unchanged.
        let c = rec(3, TcpState::SynSent, 3);
        let delta = d.apply(&[a, c], &[b.tuple]);
        assert_eq!(delta.upserted, vec![c]);
        assert_eq!(delta.removed, vec![b.tuple]);
        // c twice: its later record, once.
        let c2 = rec(3, TcpState::Established, 3);
        assert_eq!(d.apply(&[c, c2], &[]).upserted, vec![c2]);
        // A removal of what was never reported is nothing; one whose tuple a new socket holds is an upsert.
        let reused = rec(1, TcpState::Established, 9);
        let delta = d.apply(&[reused], &[a.tuple, rec(77, TcpState::Established, 77).tuple]);
        assert_eq!(
            delta,
            Delta {
                upserted: vec![reused],
                removed: vec![]
            }
        );
        assert!(d.any(|t, st, side| t.local_port() == 3 && st == TcpState::Established && side == Side::Client));
        assert!(!d.any(|t, _, _| t.local_port() == 2));
        // A whole diff afterwards still removes what it does not see.
        let delta = d.diff(&[c2], false);
        assert_eq!(delta.removed, vec![reused.tuple]);
    }

    /// What [`Differ::counts`] must be for this table, counted the long way.
    fn counted<'a>(table: impl Iterator<Item = &'a SocketRecord>) -> StateCounts {
        let mut c = StateCounts::default();
        for r in table {
            c[r.state as usize][usize::from(r.side == Side::Server)] += 1;
        }
        c
    }

    fn arb_scan() -> impl Strategy<Value = Vec<SocketRecord>> {
        prop::collection::vec((0u16..40, 0usize..3, 0u64..4), 0..60).prop_map(|v| {
            v.into_iter()
                .map(|(p, s, c)| {
                    let st = [TcpState::Established, TcpState::CloseWait, TcpState::TimeWait][s];
                    // a third of the ports on the server side, so both sides are counted
                    let side = if p % 3 == 0 { Side::Server } else { Side::Client };
                    SocketRecord { side, ..rec(p, st, c) }
                })
                .collect()
        })
    }

    proptest! {
        /// Changes applied one by one, each followed by what the reconciler
        /// does with the delta, keep the reconciler's replica equal to the
        /// table the changes built, whatever their order.
        #[test]
        fn applied_changes_replay_to_the_table(steps in prop::collection::vec((arb_scan(), prop::collection::vec(0u16..40, 0..10)), 1..8)) {
            let mut d = Differ::default();
            let mut replica: BTreeMap<Tuple, SocketRecord> = BTreeMap::new();
            let mut truth: BTreeMap<Tuple, SocketRecord> = BTreeMap::new();
            for (ups, gone_ports) in steps {
                let gone: Vec<Tuple> = gone_ports.iter().map(|p| rec(*p, TcpState::Established, 0).tuple).collect();
                for t in &gone {
                    truth.remove(t);
                }
                for r in &ups {
                    truth.insert(r.tuple, *r);
                }
                let delta = d.apply(&ups, &gone);
                for t in &delta.removed {
                    prop_assert!(replica.remove(t).is_some(), "removed what was never sent");
                }
                for r in &delta.upserted {
                    replica.insert(r.tuple, *r);
                }
                let same = |a: &SocketRecord, b: &SocketRecord| a.cookie == b.cookie && a.state == b.state && a.side == b.side && a.keepalive == b.keepalive;
                prop_assert_eq!(replica.len(), truth.len());
                for (t, r) in &truth {
                    prop_assert!(replica.get(t).is_some_and(|x| same(x, r)), "{:?} differs", t);
                }
                prop_assert_eq!(d.counts(), &counted(truth.values()));
            }
        }

        /// Applying each delta to a copy of the previous table gives the
        /// scan's table (its last record per tuple), whatever the sequence.
        #[test]
        fn deltas_replay_to_the_scanned_table(scans in prop::collection::vec((arb_scan(), any::<bool>()), 1..8)) {
            let mut d = Differ::default();
            let mut replica: BTreeMap<Tuple, SocketRecord> = BTreeMap::new();
            for (scan, full) in scans {
                let delta = d.diff(&scan, full);
                if full {
                    replica.clear();
                }
                for t in &delta.removed {
                    prop_assert!(replica.remove(t).is_some(), "removed what was never sent");
                }
                let mut once = std::collections::HashSet::new();
                for r in &delta.upserted {
                    prop_assert!(once.insert(r.tuple), "a tuple upserted twice in one delta");
                    replica.insert(r.tuple, *r);
                }
                let truth: BTreeMap<Tuple, SocketRecord> = scan.iter().map(|r| (r.tuple, *r)).collect();
                let same = |a: &SocketRecord, b: &SocketRecord| a.cookie == b.cookie && a.state == b.state && a.side == b.side && a.keepalive == b.keepalive;
                prop_assert_eq!(replica.len(), truth.len());
                for (t, r) in &truth {
                    prop_assert!(replica.get(t).is_some_and(|x| same(x, r)), "{:?} differs", t);
                }
                prop_assert_eq!(d.counts(), &counted(truth.values()));
            }
        }
    }
}
