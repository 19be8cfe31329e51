//! The gRPC edge of the reconciler: one task per collector session feeding
//! the engine, a ticker that drives confirmations, a writer thread for the
//! store, and the query calls the CLI uses. All matching decisions are the
//! engine's; this module only moves messages.
//!
//! The engine lives on its own thread ("halfopen-engine") and is reached
//! through a bounded queue of jobs: a long engine call (a 500,000-socket full
//! table, a 50,000-finding page) never blocks the async runtime, so HTTP/2
//! keepalives, decoding and the other sessions keep going, and a full queue
//! slows the collectors down through flow control instead of growing memory.
use crate::engine::{
    Action, Clock, Engine, EngineConfig, FindingKind, FindingView, HelloIn, HostIdx, HostView, LookupResultIn,
    PageCursor, ReportIn,
};
use crate::store::{Store, StoreError};
use halfopen_core::TcpState;
use halfopen_proto::convert::*;
use halfopen_proto::v1;
use halfopen_proto::v1::reconciler_server::{Reconciler, ReconcilerServer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, error, info, warn};

/// Largest message accepted from a collector. Collectors chunk their tables
/// far below this; the margin is for foreign or future collectors.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Largest page of ListOrphans (~5.5 MB at ~550 bytes per finding).
pub const MAX_PAGE_SIZE: usize = 10_000;
/// Largest answer the reconciler sends. ListOrphans costs ~550 bytes per
/// finding (explanations included), so 16 MiB ran out at ~20-30k findings,
/// in exactly the incident it exists for. Only bounds what we send.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot start the engine thread: {0}")]
    Thread(std::io::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: Option<PathBuf>,
    pub engine: EngineConfig,
    pub tick: Duration,
}

type Outbox = mpsc::Sender<Result<v1::ReconcilerMessage, Status>>;

enum StoreCmd {
    Confirmed(crate::engine::Finding),
    Gone(crate::engine::Finding, i64, crate::engine::GoneReason),
}

/// Work for the engine thread: it gets the engine and the time at which it runs.
type Job = Box<dyn FnOnce(&mut Engine, Clock) + Send>;

/// Jobs waiting for the engine thread. Each holds at most one decoded report
/// chunk (<= 16,384 records), so this bounds the memory of queued work.
const ENGINE_QUEUE: usize = 256;

struct Shared {
    jobs: mpsc::Sender<Job>,
    sessions: Mutex<HashMap<HostIdx, (u64, Outbox)>>,
    store: Option<std::sync::mpsc::Sender<StoreCmd>>,
}

impl Shared {
    /// Queues `f` for the engine thread and returns once it is queued (waits
    /// while the queue is full).
    async fn tell(&self, f: impl FnOnce(&mut Engine, Clock) + Send + 'static) -> Result<(), Status> {
        self.jobs
            .send(Box::new(f))
            .await
            .map_err(|_| Status::unavailable("the reconciler's engine has stopped"))
    }

    /// Runs `f` on the engine thread and returns its result.
    async fn ask<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine, Clock) -> R + Send + 'static,
    ) -> Result<R, Status> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tell(move |e, now| {
            let _ = tx.send(f(e, now)); // the asker may have gone: nothing to do
        })
        .await?;
        rx.await
            .map_err(|_| Status::internal("the engine failed on this request (see the reconciler's log)"))
    }

    fn dispatch(&self, actions: Vec<Action>) {
        if actions.is_empty() {
            return;
        }
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        for a in actions {
            match a {
                Action::Lookup {
                    host,
                    session,
                    id,
                    tuples,
                    attribute,
                } => {
                    let msg = v1::ReconcilerMessage {
                        msg: Some(v1::reconciler_message::Msg::Lookup(v1::Lookup {
                            id,
                            tuples: tuples.iter().map(tuple_to_wire).collect(),
                            attribute,
                        })),
                    };
                    send(&sessions, host, session, msg, "lookup");
                }
                Action::Resync { host, session, reason } => {
                    info!(host, %reason, "asking collector for a full table");
                    let msg = v1::ReconcilerMessage {
                        msg: Some(v1::reconciler_message::Msg::Resync(v1::Resync { reason })),
                    };
                    send(&sessions, host, session, msg, "resync");
                }
                Action::Confirmed(f) => {
                    let p = f.process.as_ref();
                    warn!(
                        kind = f.kind.as_str(),
                        client = ?f.tuple.map(|t| t.local()),
                        server = ?f.tuple.map(|t| t.remote()),
                        listener = ?f.listener,
                        client_host = %f.client_host,
                        server_host = %f.server_host,
                        pid = p.map(|p| p.pid),
                        process = p.map(|p| p.comm.as_str()),
                        explanation = %f.explanation,
                        "finding confirmed"
                    );
                    if let Some(s) = &self.store {
                        if s.send(StoreCmd::Confirmed(f)).is_err() {
                            error!("store writer has stopped: finding not recorded");
                        }
                    }
                }
                Action::Gone { finding, at_ms, reason } => {
                    info!(kind = finding.kind.as_str(), client = ?finding.tuple.map(|t| t.local()), server = ?finding.tuple.map(|t| t.remote()), listener = ?finding.listener, reason = reason.as_str(), "finding gone");
                    if let Some(s) = &self.store {
                        if s.send(StoreCmd::Gone(finding, at_ms, reason)).is_err() {
                            error!("store writer has stopped: end of finding not recorded");
                        }
                    }
                }
            }
        }
    }
}

fn send(
    sessions: &HashMap<HostIdx, (u64, Outbox)>,
    host: HostIdx,
    session: u64,
    msg: v1::ReconcilerMessage,
    what: &str,
) {
    match sessions.get(&host) {
        Some((s, tx)) if *s == session => {
            if let Err(e) = tx.try_send(Ok(msg)) {
                // The engine times the request out and asks again.
                warn!(host, what, "collector session is not keeping up: {e}");
            }
        }
        _ => debug!(host, what, "session gone before its message could be sent"),
    }
}

/// The tonic service. Build with [`ReconcilerService::new`], then serve it
/// with [`serve`] or mount [`ReconcilerService::into_server`] yourself.
#[derive(Clone)]
pub struct ReconcilerService {
    shared: Arc<Shared>,
}

impl ReconcilerService {
    /// Opens the store (if any), restores its current findings and starts the
    /// store writer thread. Call [`ReconcilerService::run_ticker`] to drive it.
    pub fn new(cfg: &ServeConfig) -> Result<Self, ServeError> {
        let mut engine = Engine::new(cfg.engine.clone());
        let store_tx = match &cfg.db {
            Some(path) => {
                let store = Store::open(path)?;
                let (current, bad) = store.current()?;
                for b in &bad {
                    warn!(db = %path.display(), "unreadable finding left in the database: {b}");
                }
                info!(db = %path.display(), restored = current.len(), "findings database open");
                engine.restore(current);
                let (tx, rx) = std::sync::mpsc::channel::<StoreCmd>();
                std::thread::Builder::new()
                    .name("halfopen-store".into())
                    .spawn(move || store_writer(store, rx))
                    .map_err(|source| StoreError::CreateDir {
                        path: path.clone(),
                        source,
                    })?;
                Some(tx)
            }
            None => None,
        };
        let start = Instant::now();
        let (jobs, rx) = mpsc::channel::<Job>(ENGINE_QUEUE);
        std::thread::Builder::new()
            .name("halfopen-engine".into())
            .spawn(move || engine_thread(engine, rx, start))
            .map_err(ServeError::Thread)?;
        Ok(ReconcilerService {
            shared: Arc::new(Shared {
                jobs,
                sessions: Mutex::new(HashMap::new()),
                store: store_tx,
            }),
        })
    }

    pub fn into_server(self) -> ReconcilerServer<Self> {
        ReconcilerServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// Drives lookups, timeouts and staleness; runs until the task is dropped.
    pub async fn run_ticker(self, every: Duration) {
        let mut iv = tokio::time::interval(every);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            iv.tick().await;
            let shared = self.shared.clone();
            // Waiting for the tick to run keeps at most one tick queued when
            // the engine is behind.
            let r = self
                .shared
                .ask(move |e, now| {
                    let actions = e.tick(now);
                    shared.dispatch(actions);
                })
                .await;
            if r.is_err() {
                error!("engine thread has stopped: no more confirmations");
                return;
            }
        }
    }

    pub async fn hosts(&self) -> Result<Vec<HostView>, Status> {
        self.shared.ask(|e, now| e.hosts(now)).await
    }
}

/// Owns the engine: runs jobs in order until every sender is gone. A panic
/// in a job is a bug; it is logged and the engine keeps serving with the
/// state it has (the best there is).
fn engine_thread(mut engine: Engine, mut rx: mpsc::Receiver<Job>, start: Instant) {
    while let Some(job) = rx.blocking_recv() {
        let now = clock(start);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut engine, now)));
        if r.is_err() {
            error!("an engine job panicked (a bug; please report it with the log above); still serving");
        }
    }
}

fn clock(start: Instant) -> Clock {
    let wall_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Clock {
        mono_ms: start.elapsed().as_millis() as u64,
        wall_ms,
    }
}

fn store_writer(store: Store, rx: std::sync::mpsc::Receiver<StoreCmd>) {
    for cmd in rx {
        let r = match &cmd {
            StoreCmd::Confirmed(f) => store.record_confirmed(f),
            StoreCmd::Gone(f, at, reason) => store.record_gone(f, *at, *reason),
        };
        if let Err(e) = r {
            error!("{e}");
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let svc = ReconcilerService::new(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    info!(listen = %local, "reconciler listening");
    let ticker = tokio::spawn(svc.clone().run_ticker(cfg.tick));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let r = tonic::transport::Server::builder()
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keepalive_interval(Some(Duration::from_secs(15)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(svc.into_server())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    ticker.abort();
    r.map_err(ServeError::from)
}

fn hello_in(h: &v1::Hello, peer: Option<SocketAddr>) -> HelloIn {
    HelloIn {
        host_id: h.host_id.clone(),
        addresses: addrs_from_wire(&h.addresses),
        interval_ms: h.interval_ms,
        source: h.source.clone(),
        peer: peer.map(|p| p.to_string()).unwrap_or_default(),
    }
}

/// Decodes each item; those that do not decode are counted in `bad` and skipped.
fn decode_all<T, U>(items: &[T], bad: &mut usize, decode: impl Fn(&T) -> Option<U>) -> Vec<U> {
    items
        .iter()
        .filter_map(|x| {
            let d = decode(x);
            *bad += d.is_none() as usize;
            d
        })
        .collect()
}

/// Decodes a report; records that do not decode are counted and skipped.
fn report_in(r: v1::Report) -> (ReportIn, usize) {
    let mut bad = 0;
    let report = ReportIn {
        seq: r.seq,
        full: r.full,
        last_chunk: r.last_chunk,
        upserted: decode_all(&r.upserted, &mut bad, socket_from_wire),
        removed: decode_all(&r.removed, &mut bad, tuple_from_wire),
        listeners: decode_all(&r.listeners, &mut bad, listener_from_wire),
        addresses: addrs_from_wire(&r.addresses),
        counters: r.counters.into_iter().collect(),
        sysctls: r.sysctls.into_iter().collect(),
        silent: decode_all(&r.silent, &mut bad, |s| {
            Some((tuple_from_wire(s.tuple.as_ref()?)?, s.silent_ms))
        }),
    };
    (report, bad)
}

/// Decodes a lookup answer; results that do not decode are counted and
/// skipped (the engine asks again for what was not answered).
fn lookup_results_in(r: &v1::LookupReply) -> (Vec<LookupResultIn>, usize) {
    let mut bad = 0;
    let results = decode_all(&r.results, &mut bad, |x| {
        Some(LookupResultIn {
            tuple: tuple_from_wire(x.tuple.as_ref()?)?,
            present: x.present,
            state: u8::try_from(x.state).ok().and_then(TcpState::from_kernel),
            cookie: x.cookie,
            process: x.process.as_ref().map(process_from_wire),
            keepalive: x.keepalive,
        })
    });
    (results, bad)
}

/// Consumes the view: a page of findings is moved to the wire, not copied again.
pub fn finding_to_wire(v: FindingView) -> v1::Finding {
    let f = v.finding;
    v1::Finding {
        kind: f.kind.as_str().to_string(),
        tuple: f.tuple.as_ref().map(tuple_to_wire),
        client_host: f.client_host,
        server_host: f.server_host,
        process: f.process.as_ref().map(process_to_wire),
        first_seen_unix_ms: f.first_seen_ms,
        confirmed_at_unix_ms: f.confirmed_at_ms,
        keepalive: f.keepalive,
        client_host_stale: v.client_host_stale,
        server_process: f.server_process.as_ref().map(process_to_wire),
        explanation: f.explanation,
        listener: f.listener.map(|l| l.to_string()).unwrap_or_default(),
        silent_ms: f.silent_ms,
        in_accept_queue: f.in_accept_queue,
    }
}

pub fn host_to_wire(h: &HostView) -> v1::HostInfo {
    v1::HostInfo {
        host_id: h.name.clone(),
        addresses: addrs_to_wire(&h.addresses),
        last_report_unix_ms: h.last_report_wall_ms.unwrap_or(0),
        sockets: h.sockets,
        client_sockets: h.client_sockets,
        server_sockets: h.server_sockets,
        listeners: h.listeners,
        stale: h.stale,
        connected: h.connected,
        source: h.source.clone(),
        interval_ms: h.interval_ms,
        peer: h.peer.clone(),
    }
}

#[tonic::async_trait]
impl Reconciler for ReconcilerService {
    type CollectStream = ReceiverStream<Result<v1::ReconcilerMessage, Status>>;

    async fn collect(
        &self,
        req: Request<Streaming<v1::CollectorMessage>>,
    ) -> Result<Response<Self::CollectStream>, Status> {
        let peer = req.remote_addr();
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty session: the first message must be a Hello"))?;
        let hello = match first.msg {
            Some(v1::collector_message::Msg::Hello(h)) => h,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be a Hello",
                ))
            }
        };
        if hello.host_id.trim().is_empty() {
            return Err(Status::invalid_argument("Hello.host_id is empty"));
        }
        let shared = self.shared.clone();
        let (tx, rx) = mpsc::channel(1024);
        let hello_v = hello_in(&hello, peer);
        let sh = shared.clone();
        // Connected and registered for messages in one engine job, so nothing
        // the engine sends this session can come before it is registered.
        let (h, session) = shared
            .ask(move |e, now| {
                let (h, session) = e.connect(hello_v, now);
                let config = v1::ReconcilerMessage {
                    msg: Some(v1::reconciler_message::Msg::Config(v1::Config {
                        greeting_ports: e.config().greeting_ports.iter().map(|&p| p as u32).collect(),
                        stall_after_ms: e.config().stall_after_ms,
                    })),
                };
                // The channel is new and empty: this cannot fail for lack of room.
                let _ = tx.try_send(Ok(config));
                sh.sessions
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(h, (session, tx));
                (h, session)
            })
            .await?;
        info!(host = %hello.host_id, session, peer = ?peer, source = %hello.source, "collector connected");
        let host_id = hello.host_id.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        let sh = shared.clone();
                        let queued = match m.msg {
                            Some(v1::collector_message::Msg::Report(r)) => {
                                // decoded here, on the runtime, not on the engine thread
                                let (r, bad) = report_in(r);
                                if bad > 0 {
                                    warn!(host = %host_id, bad, "records that do not decode were skipped");
                                }
                                shared
                                    .tell(move |e, now| sh.dispatch(e.report(h, session, r, now)))
                                    .await
                            }
                            Some(v1::collector_message::Msg::LookupReply(r)) => {
                                let (results, bad) = lookup_results_in(&r);
                                if bad > 0 {
                                    warn!(host = %host_id, bad, "lookup results that do not decode were skipped");
                                }
                                shared
                                    .tell(move |e, now| sh.dispatch(e.lookup_reply(h, session, r.id, results, now)))
                                    .await
                            }
                            Some(v1::collector_message::Msg::Hello(_)) => {
                                warn!(host = %host_id, "second Hello in a session ignored");
                                Ok(())
                            }
                            None => Ok(()),
                        };
                        if let Err(e) = queued {
                            error!(host = %host_id, session, "{}", e.message());
                            break;
                        }
                    }
                    Ok(None) => {
                        info!(host = %host_id, session, "collector disconnected");
                        break;
                    }
                    Err(e) => {
                        warn!(host = %host_id, session, "collector session broken: {e}");
                        break;
                    }
                }
            }
            let sh = shared.clone();
            let _ = shared // fails only when the engine has stopped: nothing left to tell
                .tell(move |e, _| {
                    e.disconnect(h, session);
                    let mut s = sh.sessions.lock().unwrap_or_else(|p| p.into_inner());
                    if s.get(&h).map(|x| x.0) == Some(session) {
                        s.remove(&h);
                    }
                })
                .await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_orphans(
        &self,
        req: Request<v1::ListOrphansRequest>,
    ) -> Result<Response<v1::ListOrphansResponse>, Status> {
        let req = req.into_inner();
        let kind = req.kind;
        let want = if kind.is_empty() {
            None
        } else {
            Some(FindingKind::parse(&kind).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "unknown finding kind {kind:?} (kinds: client_only, server_only, stalled_greeting, listener_at_risk)"
                ))
            })?)
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(PageCursor::parse(&req.page_token).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "page_token {:?} is not a next_page_token this reconciler gave",
                    req.page_token
                ))
            })?)
        };
        let limit = match req.page_size {
            0 => usize::MAX,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let (page, next) = self
            .shared
            .ask(move |e, now| e.findings_page(now, want, after.as_ref(), limit))
            .await?;
        Ok(Response::new(v1::ListOrphansResponse {
            findings: page.into_iter().map(finding_to_wire).collect(),
            next_page_token: next.map(|c| c.token()).unwrap_or_default(),
        }))
    }

    async fn explain(&self, req: Request<v1::ExplainRequest>) -> Result<Response<v1::ExplainResponse>, Status> {
        let target = req.into_inner().target;
        let diags = self
            .shared
            .ask(move |e, now| e.explain(&target, now))
            .await?
            .map_err(Status::not_found)?;
        Ok(Response::new(v1::ExplainResponse {
            diagnoses: diags.iter().map(diagnosis_to_wire).collect(),
        }))
    }

    async fn list_hosts(&self, _req: Request<v1::ListHostsRequest>) -> Result<Response<v1::ListHostsResponse>, Status> {
        Ok(Response::new(v1::ListHostsResponse {
            hosts: self.hosts().await?.iter().map(host_to_wire).collect(),
        }))
    }
}
