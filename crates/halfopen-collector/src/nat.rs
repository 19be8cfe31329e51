//! The NAT'd connections of this network namespace's connection-tracking
//! table, kept current: a dump at start, then conntrack's event stream, with
//! a fresh dump whenever events were lost and once a minute (entries created
//! before the subscription never send their DESTROY). Reports carry the
//! changes since the previous report (all of them in a full report) and
//! whether the set is complete; lookups answer from a fresh dump, never
//! from this table (the race-free confirmation rests on fresh reads).
use halfopen_core::{NatEntry, NatState, Tuple};
use halfopen_sockets::conntrack::{self, Conntrack, ConntrackError, ConntrackEvents, NatEvent};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A full dump at least this often, even when no event was lost.
const REDUMP_EVERY: Duration = Duration::from_secs(60);

/// The changes to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NatDelta {
    pub upserted: Vec<NatEntry>,
    pub removed: Vec<Tuple>,
    pub state: NatState,
}

/// See the module documentation.
pub struct NatReader {
    conntrack: Option<Conntrack>,
    events: Option<ConntrackEvents>,
    /// original -> reply, as the kernel has them now.
    table: HashMap<Tuple, Tuple>,
    /// original -> reply, as last reported.
    sent: HashMap<Tuple, Tuple>,
    state: NatState,
    last_dump: Option<Instant>,
    buf: Vec<conntrack::NatEntry>,
    events_buf: Vec<NatEvent>,
}

fn state_of(e: &ConntrackError) -> NatState {
    if e.is_not_available() {
        NatState::Absent
    } else if e.is_permission_denied() {
        NatState::Unknown("the collector lacks CAP_NET_ADMIN: its conntrack table cannot be read".into())
    } else {
        NatState::Unknown(e.to_string())
    }
}

impl NatReader {
    /// Opens conntrack in the calling thread's network namespace: the event
    /// subscription first, then the dump (so nothing falls between them).
    /// Never fails: what cannot be read is the state ([`NatReader::state`]).
    pub fn open() -> NatReader {
        let mut r = NatReader {
            conntrack: None,
            events: None,
            table: HashMap::new(),
            sent: HashMap::new(),
            state: NatState::Absent,
            last_dump: None,
            buf: Vec::new(),
            events_buf: Vec::new(),
        };
        match ConntrackEvents::subscribe() {
            Ok(ev) => r.events = Some(ev),
            Err(e) => r.state = state_of(&e),
        }
        match Conntrack::open() {
            Ok(c) => r.conntrack = Some(c),
            Err(e) => r.state = state_of(&e),
        }
        r.refresh();
        r
    }

    /// Whether the set is complete (and if not, why).
    pub fn state(&self) -> &NatState {
        &self.state
    }

    fn dump(&mut self) {
        let Some(c) = self.conntrack.as_mut() else {
            return;
        };
        self.buf.clear();
        match c.dump(&mut self.buf) {
            Ok(_) => {
                self.table = self.buf.iter().map(|e| (e.original, e.reply)).collect();
                self.state = NatState::Visible;
                self.last_dump = Some(Instant::now());
            }
            Err(e) => self.state = state_of(&e),
        }
    }

    /// Brings the table up to date: pending events, or a dump when due.
    pub fn refresh(&mut self) {
        if self.conntrack.is_none() {
            return;
        }
        let mut lost = self.events.is_none();
        if let Some(ev) = self.events.as_mut() {
            self.events_buf.clear();
            match ev.poll(&mut self.events_buf, Duration::ZERO) {
                Ok(_) => {
                    for e in &self.events_buf {
                        match e {
                            NatEvent::New(n) => {
                                self.table.insert(n.original, n.reply);
                            }
                            NatEvent::Destroy(n) => {
                                self.table.remove(&n.original);
                            }
                            NatEvent::Lost => lost = true,
                        }
                    }
                }
                Err(_) => lost = true,
            }
        }
        if lost || self.last_dump.is_none_or(|t| t.elapsed() >= REDUMP_EVERY) {
            self.dump();
        }
    }

    /// What changed since the previous call (everything when `full`).
    pub fn delta(&mut self, full: bool) -> NatDelta {
        self.refresh();
        let mut d = NatDelta {
            state: self.state.clone(),
            ..Default::default()
        };
        if full {
            self.sent.clear();
        }
        for (o, r) in &self.table {
            if self.sent.get(o) != Some(r) {
                d.upserted.push(NatEntry {
                    original: *o,
                    reply: *r,
                });
            }
        }
        if !full {
            d.removed = self
                .sent
                .keys()
                .filter(|o| !self.table.contains_key(o))
                .copied()
                .collect();
        }
        self.sent = self.table.clone();
        d
    }

    /// For each asked tuple (this host's view), the translation this host's
    /// conntrack table holds for that connection, read afresh: an entry
    /// whose original or reply is the tuple or its mirror.
    pub fn lookup(&mut self, asked: &[Tuple]) -> HashMap<Tuple, NatEntry> {
        let mut out = HashMap::new();
        let Some(c) = self.conntrack.as_mut() else {
            return out;
        };
        self.buf.clear();
        if c.dump(&mut self.buf).is_err() {
            return out;
        }
        let mut by: HashMap<Tuple, NatEntry> = HashMap::new();
        for e in &self.buf {
            let n = NatEntry {
                original: e.original,
                reply: e.reply,
            };
            for t in [e.original, e.reply, e.original.mirror(), e.reply.mirror()] {
                by.insert(t, n);
            }
        }
        for t in asked {
            if let Some(n) = by.get(t) {
                out.insert(*t, *n);
            }
        }
        out
    }
}
