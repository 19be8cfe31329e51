//! One host's socket table as the engine keeps it: 16 bytes per socket
//! beside its 36-byte tuple, and what is counted from it kept in step with
//! every insert and removal (sockets per side, sockets waiting in accept
//! queues, client sockets stuck in SYN-SENT per server endpoint), so no
//! caller adjusts a count by hand.
use halfopen_core::{Side, SocketRecord, TcpState, Tuple};
use std::collections::HashMap;
use std::net::SocketAddr;

/// What the engine keeps per socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub cookie: u64,
    /// When the engine first saw this socket (reconciler monotonic time, s):
    /// kept while the same socket (cookie) is reported again.
    pub since_s: u32,
    pub state: TcpState,
    pub side: Side,
    pub keepalive: bool,
    /// A server end ESTABLISHED with inode 0: waiting in an accept queue.
    pub queued: bool,
}

impl Entry {
    pub fn of(r: &SocketRecord, now_mono_ms: u64) -> Entry {
        Entry {
            cookie: r.cookie,
            since_s: (now_mono_ms / 1000).min(u32::MAX as u64) as u32,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
            queued: r.inode == 0 && r.state == TcpState::Established && r.side == Side::Server,
        }
    }
}

/// A host's sockets by tuple (the host's own view), with what is counted from them.
#[derive(Debug, Default)]
pub(crate) struct Table {
    map: HashMap<Tuple, Entry>,
    client: u64,
    server: u64,
    queued: u64,
    /// Client sockets in SYN-SENT, by the server endpoint they try to reach.
    syn_sent: HashMap<SocketAddr, u32>,
}

impl Table {
    /// A table of these records (a later record of the same tuple wins); a
    /// socket that `old` held (same tuple and cookie) keeps its first sighting.
    pub fn from_records(records: &[SocketRecord], old: &Table, now_mono_ms: u64) -> Table {
        let mut t = Table {
            map: HashMap::with_capacity(records.len()),
            ..Default::default()
        };
        for r in records {
            let mut e = Entry::of(r, now_mono_ms);
            if let Some(o) = old.get(&r.tuple).filter(|o| o.cookie == e.cookie) {
                e.since_s = o.since_s;
            }
            t.insert(r.tuple, e);
        }
        t
    }

    pub fn get(&self, t: &Tuple) -> Option<&Entry> {
        self.map.get(t)
    }

    pub fn contains(&self, t: &Tuple) -> bool {
        self.map.contains_key(t)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Tuple, &Entry)> {
        self.map.iter()
    }

    /// Sockets on the client side / on the server side.
    pub fn counts(&self) -> (u64, u64) {
        (self.client, self.server)
    }

    /// Server ends waiting in accept queues.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    /// Client sockets in SYN-SENT towards `server`.
    pub fn syn_sent_to(&self, server: SocketAddr) -> u32 {
        self.syn_sent.get(&server).copied().unwrap_or(0)
    }

    /// Inserts or replaces; the same socket (cookie) keeps its first
    /// sighting. Returns the previous entry.
    pub fn insert(&mut self, t: Tuple, mut e: Entry) -> Option<Entry> {
        let old = self.map.get(&t).copied();
        if let Some(o) = &old {
            if o.cookie == e.cookie {
                e.since_s = o.since_s;
            }
            self.count(&t, o, false);
        }
        self.count(&t, &e, true);
        self.map.insert(t, e);
        old
    }

    pub fn remove(&mut self, t: &Tuple) -> Option<Entry> {
        let old = self.map.remove(t)?;
        self.count(t, &old, false);
        Some(old)
    }

    fn count(&mut self, t: &Tuple, e: &Entry, add: bool) {
        let step = |c: &mut u64| *c = if add { *c + 1 } else { c.saturating_sub(1) };
        match e.side {
            Side::Client => step(&mut self.client),
            Side::Server => step(&mut self.server),
        }
        if e.queued {
            step(&mut self.queued);
        }
        if e.state == TcpState::SynSent && e.side == Side::Client {
            let n = self.syn_sent.entry(t.remote()).or_insert(0);
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
            if *n == 0 {
                self.syn_sent.remove(&t.remote());
            }
        }
    }

    /// ESTABLISHED sockets, copied out (for re-judging while the table may change).
    pub fn established(&self) -> Vec<(Tuple, Entry)> {
        self.map
            .iter()
            .filter(|(_, e)| e.state == TcpState::Established)
            .map(|(t, e)| (*t, *e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(l: &str, r: &str, state: TcpState, side: Side, inode: u64, cookie: u64) -> SocketRecord {
        SocketRecord {
            tuple: Tuple::new(l.parse().unwrap(), r.parse().unwrap()),
            state,
            side,
            cookie,
            inode,
            uid: 0,
            keepalive: false,
            info: None,
        }
    }

    #[test]
    fn counts_follow_inserts_replacements_and_removals() {
        let mut t = Table::default();
        let q = rec(
            "198.18.0.1:3306",
            "198.18.0.2:1",
            TcpState::Established,
            Side::Server,
            0,
            1,
        );
        let s = rec("198.18.0.2:2", "198.18.0.1:3306", TcpState::SynSent, Side::Client, 5, 2);
        t.insert(q.tuple, Entry::of(&q, 1_000));
        t.insert(s.tuple, Entry::of(&s, 1_000));
        assert_eq!((t.counts(), t.queued()), ((1, 1), 1));
        assert_eq!(t.syn_sent_to("198.18.0.1:3306".parse().unwrap()), 1);
        // Accepted (an inode now), seen later: no longer queued, first sighting kept.
        let accepted = rec(
            "198.18.0.1:3306",
            "198.18.0.2:1",
            TcpState::Established,
            Side::Server,
            9,
            1,
        );
        t.insert(accepted.tuple, Entry::of(&accepted, 7_000));
        assert_eq!(t.queued(), 0);
        assert_eq!(t.get(&accepted.tuple).unwrap().since_s, 1);
        // The SYN-SENT client connects.
        let est = rec(
            "198.18.0.2:2",
            "198.18.0.1:3306",
            TcpState::Established,
            Side::Client,
            5,
            2,
        );
        t.insert(est.tuple, Entry::of(&est, 7_000));
        assert_eq!(t.syn_sent_to("198.18.0.1:3306".parse().unwrap()), 0);
        // A new socket on an old tuple starts its own sighting.
        let reused = rec(
            "198.18.0.2:2",
            "198.18.0.1:3306",
            TcpState::Established,
            Side::Client,
            6,
            3,
        );
        t.insert(reused.tuple, Entry::of(&reused, 9_000));
        assert_eq!(t.get(&reused.tuple).unwrap().since_s, 9);
        t.remove(&reused.tuple);
        t.remove(&accepted.tuple);
        assert_eq!((t.counts(), t.queued(), t.len()), ((0, 0), 0, 0));
        // A full table keeps the sightings of sockets it already had.
        t.insert(q.tuple, Entry::of(&q, 2_000));
        let full = Table::from_records(&[q, s], &t, 30_000);
        assert_eq!(full.get(&q.tuple).unwrap().since_s, 2);
        assert_eq!(full.get(&s.tuple).unwrap().since_s, 30);
    }
}
