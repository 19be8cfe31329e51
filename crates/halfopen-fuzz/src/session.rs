//! `collector_session`: what any sequence of messages from hostile
//! collectors does to a real [`Engine`].
//!
//! The input is a sequence of frames, each a control byte and, for a
//! message, a varint length and that many bytes of a protobuf
//! `halfopen.v1.CollectorMessage`:
//!
//! ```text
//! frame := ctl                      (op Disconnect or Idle)
//!        | ctl varint(len) msg[len] (op Message)
//! ctl   := bits 0-1 slot (one of SLOTS collector connections)
//!          bits 2-4 clock advance, an index into ADVANCE_MS
//!          bit  5   tick the engine after the frame
//!          bits 6-7 op: 0 or 1 Message, 2 Disconnect, 3 Idle
//! ```
//!
//! A message goes where `halfopen-reconciler`'s `ingest.rs` sends it: the
//! first message of a slot must decode as a Hello with a non-blank host id
//! (anything else refuses the session, and nothing reaches the engine);
//! then a Report goes through `convert::report_from_wire` to
//! [`Engine::report`], a LookupReply through
//! `convert::lookup_reply_from_wire` to [`Engine::lookup_reply`], a second
//! Hello or an empty message is ignored, and bytes that do not decode
//! break the stream: the session is disconnected, as a tonic stream error
//! ends it there. A length past the end of the input is a stream cut in the
//! middle of a message (disconnected too). The reconciler's clock is fake
//! and only moves forward, by the frames' advances.
//!
//! Checked after every frame: the engine never knows more hosts than host
//! ids were accepted, nor holds more findings, candidates or sockets than
//! records were decoded (its memory is bounded by what was sent); lookups
//! go only to a connected session, with at most `max_lookup_batch` tuples;
//! and the findings the actions announce (confirmed, gone) are exactly the
//! findings the engine lists. At the end: paging with page tokens lists
//! every finding once, and `explain` answers for everything it knows.
use std::collections::BTreeSet;

use halfopen_core::{ExplainTarget, FindingKind};
use halfopen_engine::{Action, Clock, Engine, EngineConfig, HostIdx, PageCursor};
use halfopen_proto::convert::{hello_from_wire, lookup_reply_from_wire, report_from_wire};
use halfopen_proto::transport::MAX_INGEST_MESSAGE_BYTES;
use halfopen_proto::v1;
use halfopen_proto::v1::collector_message::Msg;
use prost::Message as _;

/// Collector connections a session input can drive at once.
pub const SLOTS: usize = 4;

/// How far a frame moves the reconciler's clock, ms: around the grace
/// (1 s), the stale limit (3 s or three intervals), the lookup timeout
/// (15 s) and far past everything.
pub const ADVANCE_MS: [u64; 8] = [0, 10, 250, 1_000, 1_500, 5_000, 16_000, 120_000];

/// The clock at the start of every session.
pub const START: Clock = Clock {
    mono_ms: 1_000_000,
    wall_ms: 1_764_000_000_000,
};

/// What a frame does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The slot's collector sends a message.
    Message,
    /// The slot's stream ends.
    Disconnect,
    /// Nothing but the clock (and the tick).
    Idle,
}

/// A frame's control byte, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctl {
    /// Below [`SLOTS`].
    pub slot: u8,
    /// Index into [`ADVANCE_MS`].
    pub advance: u8,
    pub tick: bool,
    pub op: Op,
}

impl Ctl {
    pub fn decode(b: u8) -> Ctl {
        Ctl {
            slot: b & 3,
            advance: (b >> 2) & 7,
            tick: b & 0x20 != 0,
            op: match b >> 6 {
                0 | 1 => Op::Message,
                2 => Op::Disconnect,
                _ => Op::Idle,
            },
        }
    }

    pub fn encode(self) -> u8 {
        let op = match self.op {
            Op::Message => 0,
            Op::Disconnect => 2,
            Op::Idle => 3,
        };
        (self.slot & 3) | (self.advance & 7) << 2 | u8::from(self.tick) << 5 | op << 6
    }
}

/// The fuzz target; see the module documentation.
pub fn collector_session(data: &[u8]) {
    let mut d = Driver::new();
    let mut rest = data;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        let ctl = Ctl::decode(b);
        if ctl.op != Op::Message {
            d.step(ctl, None);
            continue;
        }
        let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
            // a length prefix cut short: the stream broke
            d.step(ctl, Some(Payload::Broken));
            break;
        };
        match usize::try_from(len) {
            Ok(len) if len <= rest.len() && len <= MAX_INGEST_MESSAGE_BYTES => {
                let (msg, tail) = rest.split_at(len);
                rest = tail;
                d.step(ctl, Some(Payload::Bytes(msg)));
            }
            _ => {
                // cut in the middle of a message, or over the transport's limit
                d.step(ctl, Some(Payload::Broken));
                break;
            }
        }
    }
    d.finish(data.len());
}

/// What a Message frame carried.
#[derive(Clone, Copy, Debug)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    /// The stream broke before a whole message arrived.
    Broken,
}

/// Records decoded from what the collectors sent: the bounds of the
/// engine's state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sent {
    pub upserted: u64,
    pub listeners: u64,
    pub silent: u64,
    pub lookups_asked: u64,
}

/// A real engine, the collectors' connections and the bookkeeping the
/// checks need. [`collector_session`] drives one from the input bytes;
/// [`crate::seeds`] drives one to write realistic sessions.
pub struct Driver {
    pub engine: Engine,
    pub now: Clock,
    /// Per slot: the engine's host and session of that connection.
    pub slots: [Option<(HostIdx, u64)>; SLOTS],
    /// Host ids the engine accepted.
    names: BTreeSet<String>,
    pub sent: Sent,
    /// Current findings as the actions announced them, by page token.
    announced: BTreeSet<String>,
    /// Every action so far, in order (for the seeds; cleared by the caller).
    pub actions: Vec<Action>,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    pub fn new() -> Driver {
        Driver {
            engine: Engine::new(EngineConfig::default()),
            now: START,
            slots: [None; SLOTS],
            names: BTreeSet::new(),
            sent: Sent::default(),
            announced: BTreeSet::new(),
            actions: Vec::new(),
        }
    }

    /// One frame: the clock moves, the op is applied, the engine ticks if
    /// asked; then the invariants are checked.
    pub fn step(&mut self, ctl: Ctl, payload: Option<Payload<'_>>) {
        let adv = ADVANCE_MS[usize::from(ctl.advance & 7)];
        self.now.mono_ms += adv;
        self.now.wall_ms += adv as i64;
        let slot = usize::from(ctl.slot) % SLOTS;
        match (ctl.op, payload) {
            (Op::Message, Some(Payload::Bytes(b))) => self.message(slot, b),
            (Op::Message, _) | (Op::Disconnect, _) => self.disconnect(slot),
            (Op::Idle, _) => {}
        }
        if ctl.tick {
            let a = self.engine.tick(self.now);
            self.take(a);
        }
        self.check_bounds();
    }

    fn message(&mut self, slot: usize, bytes: &[u8]) {
        let now = self.now;
        let Some((h, session)) = self.slots[slot] else {
            // ingest.rs: the first message must be a Hello with a host id
            let Ok(v1::CollectorMessage {
                msg: Some(Msg::Hello(w)),
            }) = v1::CollectorMessage::decode(bytes)
            else {
                return;
            };
            let hello = hello_from_wire(&w);
            if hello.host_id.trim().is_empty() {
                return;
            }
            self.names.insert(hello.host_id.clone());
            let peer = format!("198.18.0.{}:{}", 100 + slot, 40_000 + slot);
            // A Hello with a host id that another slot holds supersedes
            // that slot's session in the engine; that slot's stream stays
            // open, as in the reconciler, and its messages are ignored.
            // A second live instance of a held host id is refused (the
            // stream ends with FAILED_PRECONDITION); so is a host id beyond
            // the host limit.
            match self.engine.connect(hello, peer, now) {
                Ok(c) => {
                    self.slots[slot] = Some((c.host, c.session));
                    self.take(c.actions);
                }
                Err(_) => self.slots[slot] = None,
            }
            return;
        };
        let Ok(m) = v1::CollectorMessage::decode(bytes) else {
            // a tonic stream error ends the session
            self.disconnect(slot);
            return;
        };
        let actions = match m.msg {
            Some(Msg::Report(r)) => {
                let total = r.upserted.len()
                    + r.removed.len()
                    + r.listeners.len()
                    + r.silent.len()
                    + r.nat.len()
                    + r.nat_removed.len();
                let (report, bad) = report_from_wire(r);
                let decoded = report.upserted.len()
                    + report.removed.len()
                    + report.listeners.len()
                    + report.silent.len()
                    + report.nat.len()
                    + report.nat_removed.len();
                assert_eq!(decoded + bad, total, "every record is decoded or counted as bad");
                self.sent.upserted += report.upserted.len() as u64;
                self.sent.listeners += report.listeners.len() as u64;
                self.sent.silent += report.silent.len() as u64;
                self.engine.report(h, session, report, now)
            }
            Some(Msg::LookupReply(r)) => {
                let (answers, bad) = lookup_reply_from_wire(&r);
                assert_eq!(answers.len() + bad, r.results.len());
                self.engine.lookup_reply(h, session, r.id, answers, now)
            }
            Some(Msg::Hello(_)) | None => Vec::new(),
        };
        self.take(actions);
    }

    fn disconnect(&mut self, slot: usize) {
        if let Some((h, session)) = self.slots[slot].take() {
            let now = self.now;
            let actions = self.engine.disconnect(h, session, now);
            self.take(actions);
        }
    }

    /// Checks each action and keeps the announced findings up to date.
    fn take(&mut self, actions: Vec<Action>) {
        let max_batch = self.engine.config().max_lookup_batch;
        for a in &actions {
            match a {
                Action::Lookup {
                    host, session, tuples, ..
                } => {
                    assert!(
                        self.slots.contains(&Some((*host, *session))),
                        "lookup to host {host} session {session}, which is not connected: {:?}",
                        self.slots
                    );
                    assert!(
                        !tuples.is_empty() && tuples.len() <= max_batch,
                        "lookup of {} tuples",
                        tuples.len()
                    );
                    self.sent.lookups_asked += 1;
                }
                Action::Resync { host, session, .. } => {
                    assert!(
                        self.slots.contains(&Some((*host, *session))),
                        "resync to a session that is not connected"
                    );
                }
                Action::Confirmed(f) => {
                    assert!(
                        self.names.contains(f.subject.server_host()),
                        "finding on unknown host {:?}",
                        f.subject.server_host()
                    );
                    if let Some(c) = f.subject.client_host() {
                        assert!(self.names.contains(c), "finding on unknown client host {c:?}");
                    }
                    assert_eq!(f.kind.is_connection(), f.tuple().is_some(), "{f:?}");
                    self.announced.insert(PageCursor::of(f).token());
                }
                Action::Gone { finding, .. } => {
                    let was = self.announced.remove(&PageCursor::of(finding).token());
                    assert!(was, "gone without having been confirmed: {finding:?}");
                }
                Action::Close { host, session, .. } => {
                    // The session broke a limit: its stream ends.
                    for s in &mut self.slots {
                        if *s == Some((*host, *session)) {
                            *s = None;
                        }
                    }
                }
                Action::Notice(_) | Action::Sample(_) => {}
            }
        }
        self.actions.extend(actions);
    }

    /// The engine holds no more than it was sent.
    fn check_bounds(&self) {
        let hosts = self.engine.hosts(self.now);
        assert!(
            hosts.len() <= self.names.len(),
            "{} hosts from {} host ids",
            hosts.len(),
            self.names.len()
        );
        let sockets: u64 = hosts.iter().map(|h| h.sockets).sum();
        assert!(
            sockets <= self.sent.upserted,
            "{sockets} sockets from {} records",
            self.sent.upserted
        );
        let listeners: u64 = hosts.iter().map(|h| u64::from(h.listeners)).sum();
        assert!(listeners <= self.sent.listeners);
        let s = self.engine.stats();
        let records = self.sent.upserted + self.sent.listeners + self.sent.silent;
        assert!(s.findings <= records, "{} findings from {records} records", s.findings);
        assert_eq!(
            s.findings as usize,
            self.announced.len(),
            "findings listed vs announced"
        );
        assert!(self.engine.candidate_count() as u64 <= self.sent.upserted);
        assert_eq!(
            s.lookups_sent, self.sent.lookups_asked,
            "every lookup sent is an action"
        );
    }

    /// After the input: time passes far beyond every timeout, then the
    /// listing and the explanations are checked.
    pub fn finish(&mut self, input_len: usize) {
        for _ in 0..3 {
            self.step(
                Ctl {
                    slot: 0,
                    advance: 7,
                    tick: true,
                    op: Op::Idle,
                },
                None,
            );
        }
        self.check_listing(input_len);
        self.check_explain();
    }

    /// Every finding is listed once, in order, whatever the page size, and
    /// each page's token parses back to its cursor.
    fn check_listing(&self, input_len: usize) {
        let all = self.engine.findings(self.now);
        let tokens: Vec<String> = all.iter().map(|v| PageCursor::of(&v.finding).token()).collect();
        let listed: BTreeSet<&String> = tokens.iter().collect();
        assert_eq!(listed.len(), tokens.len(), "two findings share an order key");
        let announced: BTreeSet<&String> = self.announced.iter().collect();
        assert_eq!(listed, announced, "the findings listed are the findings announced");

        let page_size = 1 + input_len % 3;
        let mut paged = Vec::new();
        let mut after: Option<PageCursor> = None;
        for _ in 0..=all.len() {
            let (page, next) = self.engine.findings_page(self.now, None, after.as_ref(), page_size);
            assert!(page.len() <= page_size);
            paged.extend(page);
            let Some(next) = next else { break };
            let parsed = PageCursor::parse(&next.token());
            assert_eq!(parsed.as_ref(), Some(&next), "a page token parses back to its cursor");
            after = parsed;
        }
        assert_eq!(paged, all, "paging lists every finding once, in order");
        for kind in FindingKind::ALL {
            let (page, next) = self.engine.findings_page(self.now, Some(kind), None, usize::MAX);
            assert!(next.is_none());
            let want: Vec<_> = all.iter().filter(|v| v.finding.kind == kind).cloned().collect();
            assert_eq!(page, want);
        }
    }

    /// `explain` of everything, of each host and of each finding's ends
    /// answers without panicking (a bounded number of them).
    fn check_explain(&self) {
        let mut targets = vec![ExplainTarget::Everything];
        targets.extend(
            self.engine
                .hosts(self.now)
                .into_iter()
                .take(4)
                .map(|h| ExplainTarget::Host(h.name)),
        );
        for v in self.engine.findings(self.now).into_iter().take(4) {
            targets.push(ExplainTarget::Endpoint(v.finding.subject.server_end()));
            if let Some(c) = v.finding.subject.client_end() {
                targets.push(ExplainTarget::Endpoint(c));
            }
        }
        for t in &targets {
            let _ = self.engine.explain(t, self.now);
        }
    }
}

/// Writes session inputs frame by frame, feeding each frame to a
/// [`Driver`] as it goes, so that the writer can answer the lookups the
/// engine really asks (see [`crate::seeds`]).
pub struct SessionWriter {
    pub driver: Driver,
    bytes: Vec<u8>,
}

impl Default for SessionWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionWriter {
    pub fn new() -> SessionWriter {
        SessionWriter {
            driver: Driver::new(),
            bytes: Vec::new(),
        }
    }

    /// A message from `slot`; returns the actions it (and the tick) caused.
    pub fn send(&mut self, slot: u8, advance: u8, tick: bool, msg: &v1::CollectorMessage) -> Vec<Action> {
        let ctl = Ctl {
            slot,
            advance,
            tick,
            op: Op::Message,
        };
        let body = msg.encode_to_vec();
        self.bytes.push(ctl.encode());
        prost::encoding::encode_varint(body.len() as u64, &mut self.bytes);
        self.bytes.extend_from_slice(&body);
        self.driver.step(ctl, Some(Payload::Bytes(&body)));
        std::mem::take(&mut self.driver.actions)
    }

    /// Raw bytes as a message from `slot` (undecodable ones break the stream).
    pub fn send_raw(&mut self, slot: u8, advance: u8, tick: bool, body: &[u8]) -> Vec<Action> {
        let ctl = Ctl {
            slot,
            advance,
            tick,
            op: Op::Message,
        };
        self.bytes.push(ctl.encode());
        prost::encoding::encode_varint(body.len() as u64, &mut self.bytes);
        self.bytes.extend_from_slice(body);
        self.driver.step(ctl, Some(Payload::Bytes(body)));
        std::mem::take(&mut self.driver.actions)
    }

    /// `slot`'s stream ends.
    pub fn disconnect(&mut self, slot: u8, advance: u8, tick: bool) -> Vec<Action> {
        self.other(slot, advance, tick, Op::Disconnect)
    }

    /// Time passes.
    pub fn idle(&mut self, advance: u8, tick: bool) -> Vec<Action> {
        self.other(0, advance, tick, Op::Idle)
    }

    fn other(&mut self, slot: u8, advance: u8, tick: bool, op: Op) -> Vec<Action> {
        let ctl = Ctl {
            slot,
            advance,
            tick,
            op,
        };
        self.bytes.push(ctl.encode());
        self.driver.step(ctl, None);
        std::mem::take(&mut self.driver.actions)
    }

    /// The input written so far.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}
