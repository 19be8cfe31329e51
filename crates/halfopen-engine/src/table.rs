//! One host's socket table as the engine keeps it: 16 bytes per socket
//! beside its 36-byte tuple, and the client/server counts kept in step with
//! every insert and removal (no caller adjusts them by hand).
use halfopen_core::{Side, SocketRecord, TcpState, Tuple};
use std::collections::HashMap;

/// What the engine keeps per socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub cookie: u64,
    pub state: TcpState,
    pub side: Side,
    pub keepalive: bool,
    /// A server end ESTABLISHED with inode 0: waiting in an accept queue.
    pub queued: bool,
}

impl Entry {
    pub fn of(r: &SocketRecord) -> Entry {
        Entry {
            cookie: r.cookie,
            state: r.state,
            side: r.side,
            keepalive: r.keepalive,
            queued: r.inode == 0 && r.state == TcpState::Established && r.side == Side::Server,
        }
    }
}

/// A host's sockets by tuple (the host's own view), with counts per side.
#[derive(Debug, Default)]
pub(crate) struct Table {
    map: HashMap<Tuple, Entry>,
    client: u64,
    server: u64,
}

impl Table {
    /// A table of these records (a later record of the same tuple wins).
    pub fn from_records(records: &[SocketRecord]) -> Table {
        let mut t = Table {
            map: HashMap::with_capacity(records.len()),
            ..Default::default()
        };
        for r in records {
            t.insert(r.tuple, Entry::of(r));
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

    /// Inserts or replaces; returns the previous entry.
    pub fn insert(&mut self, t: Tuple, e: Entry) -> Option<Entry> {
        let old = self.map.insert(t, e);
        if let Some(o) = &old {
            self.count(o.side, false);
        }
        self.count(e.side, true);
        old
    }

    pub fn remove(&mut self, t: &Tuple) -> Option<Entry> {
        let old = self.map.remove(t)?;
        self.count(old.side, false);
        Some(old)
    }

    fn count(&mut self, side: Side, add: bool) {
        let c = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        *c = if add { *c + 1 } else { c.saturating_sub(1) };
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
