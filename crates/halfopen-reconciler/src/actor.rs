//! The engine actor: one thread ("halfopen-engine") owns the engine, the
//! collectors' outboxes and the store writer, and takes typed [`Input`]s
//! from a bounded queue. Nothing else touches them, so nothing is locked.
//! A long engine call (a 500,000-socket full table, a page of 50,000
//! findings) never blocks the async runtime, and a full queue slows the
//! collectors through flow control instead of growing memory. After a
//! tick (at most once a second) it publishes what it holds for the metrics
//! endpoint ([`crate::metrics`]), which never queues anything here.
use crate::metrics::{Published, ReconcilerMetrics, StoreCounts};
use halfopen_core::{Finding, Hello, LookupAnswer, Report, Tuple, Wants};
use halfopen_engine::explain::finding_text;
use halfopen_engine::{Action, Clock, ConnectError, Engine, HostIdx, Notice};
use halfopen_store::{StoreCmd, StoreWriter};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tracing::{debug, error, info, warn};

/// Inputs waiting for the engine thread. Each holds at most one decoded
/// report chunk (<= 16,384 records), so this bounds the memory of queued work.
pub const ENGINE_QUEUE: usize = 256;

/// Messages waiting to be sent to one collector.
pub const OUTBOX: usize = 1024;

/// Store commands waiting for the writer (a 50,000-orphan incident is
/// 50,000 confirmations and later as many ends).
pub const STORE_QUEUE: usize = 200_000;

/// The metrics snapshot is published after a tick, at most this often.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What the reconciler sends a collector, before it is put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToCollector {
    Config(Wants),
    Lookup {
        id: u64,
        tuples: Vec<Tuple>,
        attribute: bool,
    },
    Resync {
        reason: String,
    },
    /// End the session with RESOURCE_EXHAUSTED: it broke a limit.
    Close {
        reason: String,
    },
}

pub type Outbox = mpsc::Sender<ToCollector>;

type Query = Box<dyn FnOnce(&mut Engine, Clock) + Send>;

/// Work for the engine thread.
pub enum Input {
    /// A collector opened a session: registered with its outbox, its Config
    /// queued first, and its (host, session) answered; or refused.
    Connect {
        hello: Hello,
        peer: String,
        outbox: Outbox,
        reply: oneshot::Sender<Result<(HostIdx, u64), ConnectError>>,
    },
    Report {
        host: HostIdx,
        session: u64,
        report: Report,
    },
    Answer {
        host: HostIdx,
        session: u64,
        id: u64,
        answers: Vec<LookupAnswer>,
    },
    Disconnect {
        host: HostIdx,
        session: u64,
    },
    /// Confirmations, timeouts, staleness; answered when done.
    Tick(oneshot::Sender<()>),
    /// A read of the engine (queries); the closure answers its caller.
    Query(Query),
}

/// The handle the async side holds.
#[derive(Clone)]
pub struct ActorHandle {
    tx: mpsc::Sender<Input>,
}

impl ActorHandle {
    /// Queues an input; waits while the queue is full.
    pub async fn tell(&self, input: Input) -> Result<(), Status> {
        self.tx
            .send(input)
            .await
            .map_err(|_| Status::unavailable("the reconciler's engine has stopped"))
    }

    /// Runs `f` on the engine thread and returns its result.
    pub async fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine, Clock) -> R + Send + 'static,
    ) -> Result<R, Status> {
        let (tx, rx) = oneshot::channel();
        self.tell(Input::Query(Box::new(move |e, now| {
            let _ = tx.send(f(e, now)); // the asker may have gone: nothing to do
        })))
        .await?;
        rx.await
            .map_err(|_| Status::internal("the engine failed on this request (see the reconciler's log)"))
    }
}

struct EngineActor {
    engine: Engine,
    outboxes: HashMap<HostIdx, (u64, Outbox)>,
    store: Option<StoreWriter>,
    start: Instant,
    metrics: Arc<ReconcilerMetrics>,
    /// When the metrics snapshot was last published.
    published: Option<Instant>,
    /// Lookup replies received (for the metrics).
    lookup_replies: u64,
    refusals: Refusals,
}

/// Records the store's queue refused: logged at the first, then at most
/// once a minute; and how many the last catch-up covered.
#[derive(Default)]
struct Refusals {
    /// Refusals not yet logged.
    unlogged: u64,
    last_log: Option<Instant>,
    /// The writer's refusal count when the last catch-up was queued.
    caught_up_to: u64,
    /// A catch-up that was itself refused is tried again after this.
    retry_at: Option<Instant>,
}

/// Refusals of the store's queue are logged at most this often.
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the engine thread, which publishes into `metrics`.
pub fn start(
    engine: Engine,
    store: Option<StoreWriter>,
    metrics: Arc<ReconcilerMetrics>,
) -> std::io::Result<ActorHandle> {
    let (tx, rx) = mpsc::channel(ENGINE_QUEUE);
    metrics.watch_queue(tx.downgrade());
    let actor = EngineActor {
        engine,
        outboxes: HashMap::new(),
        store,
        start: Instant::now(),
        metrics,
        published: None,
        lookup_replies: 0,
        refusals: Refusals::default(),
    };
    std::thread::Builder::new()
        .name("halfopen-engine".into())
        .spawn(move || actor.run(rx))?;
    Ok(ActorHandle { tx })
}

impl EngineActor {
    /// Handles inputs in order until every handle is gone. A panic in one is
    /// a bug; it is logged and the engine keeps serving with the state it
    /// has (the best there is).
    fn run(mut self, mut rx: mpsc::Receiver<Input>) {
        self.publish(self.clock());
        while let Some(input) = rx.blocking_recv() {
            let now = self.clock();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(input, now)));
            if r.is_err() {
                error!("an engine job panicked (a bug; please report it with the log above); still serving");
            }
        }
    }

    fn clock(&self) -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            mono_ms: self.start.elapsed().as_millis() as u64,
            wall_ms,
        }
    }

    fn handle(&mut self, input: Input, now: Clock) {
        let tick = matches!(input, Input::Tick(_));
        let actions = match input {
            Input::Connect {
                hello,
                peer,
                outbox,
                reply,
            } => match self.engine.connect(hello, peer, now) {
                Ok(c) => {
                    let wants = Wants {
                        greeting_ports: self.engine.config().greeting_ports.clone(),
                        stall_after_ms: self.engine.config().stall_after_ms,
                    };
                    // The outbox is new and empty: this cannot fail for lack of room.
                    let _ = outbox.try_send(ToCollector::Config(wants));
                    self.outboxes.insert(c.host, (c.session, outbox));
                    let _ = reply.send(Ok((c.host, c.session))); // the session may have gone already
                    c.actions
                }
                Err(e) => {
                    warn!("{e}");
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            Input::Report { host, session, report } => self.engine.report(host, session, report, now),
            Input::Answer {
                host,
                session,
                id,
                answers,
            } => {
                self.lookup_replies += 1;
                self.engine.lookup_reply(host, session, id, answers, now)
            }
            Input::Disconnect { host, session } => {
                if self.outboxes.get(&host).map(|x| x.0) == Some(session) {
                    self.outboxes.remove(&host);
                }
                self.engine.disconnect(host, session, now)
            }
            Input::Tick(done) => {
                let a = self.engine.tick(now);
                let _ = done.send(());
                self.catch_up(now);
                a
            }
            Input::Query(f) => {
                f(&mut self.engine, now);
                Vec::new()
            }
        };
        self.dispatch(actions);
        if tick && self.published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY) {
            self.publish(now);
        }
    }

    /// Publishes what the engine holds now for the metrics endpoint.
    fn publish(&mut self, now: Clock) {
        let store = self.store.as_ref().map(|s| {
            let st = s.stats();
            StoreCounts {
                written: st.written.load(Ordering::Relaxed),
                refused: st.refused_full.load(Ordering::Relaxed),
                failed: st.failed.load(Ordering::Relaxed),
                samples: st.samples.load(Ordering::Relaxed),
                pruned: st.pruned.load(Ordering::Relaxed),
                retries: st.retries.load(Ordering::Relaxed),
                pending: st.pending.load(Ordering::Relaxed),
                capacity: st.capacity.load(Ordering::Relaxed),
                failing: st.retrying.load(Ordering::Relaxed),
            }
        });
        self.metrics.publish(Published {
            engine: self.engine.metrics_snapshot(now),
            sessions: self.outboxes.len() as u64,
            lookup_replies: self.lookup_replies,
            store,
            at_wall_ms: now.wall_ms,
        });
        self.published = Some(Instant::now());
    }

    fn dispatch(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Lookup {
                    host,
                    session,
                    id,
                    tuples,
                    attribute,
                } => self.send(host, session, ToCollector::Lookup { id, tuples, attribute }, "lookup"),
                Action::Resync { host, session, reason } => {
                    info!(host, %reason, "asking collector for a full table");
                    self.send(host, session, ToCollector::Resync { reason }, "resync");
                }
                Action::Confirmed(f) => {
                    let explanation = finding_text(&f);
                    log_confirmed(&f, &explanation);
                    self.record(StoreCmd::Confirmed {
                        finding: f,
                        explanation,
                    });
                }
                Action::Gone { finding, at_ms, reason } => {
                    info!(
                        kind = %finding.kind,
                        client = ?finding.subject.client_end(),
                        server = %finding.subject.server_end(),
                        listener = ?finding.listener_addr(),
                        reason = reason.as_str(),
                        "finding gone"
                    );
                    self.record(StoreCmd::Gone { finding, at_ms, reason });
                }
                Action::Notice(n) => log_notice(&n),
                Action::Sample(s) => self.record(StoreCmd::Sample(s)),
                Action::Close { host, session, reason } => {
                    warn!(host, session, %reason, "ending a collector session");
                    self.send(host, session, ToCollector::Close { reason }, "close");
                }
            }
        }
    }

    fn record(&mut self, cmd: StoreCmd) {
        let Some(s) = &self.store else { return };
        if s.send(cmd) {
            return;
        }
        // Logged at the first refusal, then once a minute with the count: an
        // incident of thousands of findings is not thousands of lines.
        let r = &mut self.refusals;
        r.unlogged += 1;
        if r.last_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
            let st = s.stats().health();
            error!(
                refused = r.unlogged,
                refused_total = st.refused,
                queued = st.pending,
                error = st.error.as_deref().unwrap_or(""),
                "the database writer's queue is full (writes fail or are slow): records are refused; the current \
                 findings are written again once it catches up, refused samples are lost"
            );
            r.unlogged = 0;
            r.last_log = Some(Instant::now());
        }
    }

    /// After refusals, once the writer works again and its queue has room:
    /// records the engine's current findings again (idempotent in the
    /// store) and ends the rows whose end was refused, so that the database
    /// catches up with what is current. Checked every tick (cheap: atomics).
    fn catch_up(&mut self, now: Clock) {
        let Some(s) = &self.store else { return };
        let st = s.stats();
        let refused = st.refused_full.load(std::sync::atomic::Ordering::Relaxed);
        let r = &mut self.refusals;
        if refused == r.caught_up_to || st.is_failing() || r.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let (pending, cap) = (
            st.pending.load(std::sync::atomic::Ordering::Relaxed),
            st.capacity.load(std::sync::atomic::Ordering::Relaxed),
        );
        if pending > cap / 2 {
            return;
        }
        let current: Vec<(Finding, String)> = self
            .engine
            .findings(now)
            .into_iter()
            .map(|v| {
                let text = finding_text(&v.finding);
                (v.finding, text)
            })
            .collect();
        let n = current.len();
        if s.send(StoreCmd::CatchUp {
            current,
            at_ms: now.wall_ms,
        }) {
            info!(
                current = n,
                refused = refused - r.caught_up_to,
                "the database writer has room again: recording the current findings again so it catches up"
            );
            r.caught_up_to = refused;
            r.retry_at = None;
        } else {
            r.retry_at = Some(Instant::now() + std::time::Duration::from_secs(5));
        }
    }

    fn send(&self, host: HostIdx, session: u64, msg: ToCollector, what: &str) {
        match self.outboxes.get(&host) {
            Some((s, tx)) if *s == session => {
                if let Err(e) = tx.try_send(msg) {
                    // The engine times the request out and asks again.
                    warn!(host, what, "collector session is not keeping up: {e}");
                }
            }
            _ => debug!(host, what, "session gone before its message could be sent"),
        }
    }
}

fn log_notice(n: &Notice) {
    match n {
        Notice::AddressMoved(m) if !m.ambiguous.is_empty() => warn!(
            addr = %m.addr,
            hosts = ?m.ambiguous,
            "an address is claimed by several live hosts: connections to it are not judged until one lets it go"
        ),
        Notice::AddressMoved(m) => info!(
            addr = %m.addr,
            from = m.from.as_deref().unwrap_or("nobody"),
            to = m.to.as_deref().unwrap_or("nobody"),
            "address handed over"
        ),
        Notice::HostForgotten { host } => info!(
            %host,
            "host forgotten: gone longer than --forget-hosts-after and nothing refers to it"
        ),
        Notice::HostGone { host } => warn!(
            %host,
            "host is gone (its collector has been away longer than --gone-after): what servers still hold from it is reported as leftovers"
        ),
    }
}

fn log_confirmed(f: &Finding, explanation: &str) {
    let p = f.process.as_ref();
    warn!(
        kind = %f.kind,
        client = ?f.subject.client_end(),
        server = %f.subject.server_end(),
        listener = ?f.listener_addr(),
        client_host = ?f.subject.client_host(),
        server_host = %f.subject.server_host(),
        pid = p.map(|p| p.pid),
        process = p.map(|p| p.comm.as_str()),
        explanation = %explanation,
        "finding confirmed"
    );
}
