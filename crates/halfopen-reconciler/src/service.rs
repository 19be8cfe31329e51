//! The gRPC edge of the reconciler: one task per collector session feeding
//! the engine, a ticker that drives confirmations, a writer thread for the
//! store, and the query calls the CLI uses. All matching decisions are the
//! engine's; this module only moves messages.
use crate::engine::{
    Action, Clock, Engine, EngineConfig, FindingKind, FindingView, HelloIn, HostIdx, HostView, LookupResultIn, ReportIn,
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

struct Shared {
    engine: Mutex<Engine>,
    sessions: Mutex<HashMap<HostIdx, (u64, Outbox)>>,
    store: Option<std::sync::mpsc::Sender<StoreCmd>>,
    start: Instant,
}

impl Shared {
    fn now(&self) -> Clock {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            mono_ms: self.start.elapsed().as_millis() as u64,
            wall_ms,
        }
    }

    fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        // A panic while holding the lock is a bug; the engine's state is
        // still the best we have, so keep serving.
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
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
        Ok(ReconcilerService {
            shared: Arc::new(Shared {
                engine: Mutex::new(engine),
                sessions: Mutex::new(HashMap::new()),
                store: store_tx,
                start: Instant::now(),
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
            let now = self.shared.now();
            let actions = self.shared.engine().tick(now);
            self.shared.dispatch(actions);
        }
    }

    pub fn findings(&self) -> Vec<FindingView> {
        let now = self.shared.now();
        self.shared.engine().findings(now)
    }

    pub fn hosts(&self) -> Vec<HostView> {
        let now = self.shared.now();
        self.shared.engine().hosts(now)
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

/// Decodes a report; records that do not decode are counted and skipped.
fn report_in(r: v1::Report) -> (ReportIn, usize) {
    let mut bad = 0;
    let upserted = r
        .upserted
        .iter()
        .filter_map(|s| {
            let x = socket_from_wire(s);
            bad += x.is_none() as usize;
            x
        })
        .collect();
    let removed = r
        .removed
        .iter()
        .filter_map(|t| {
            let x = tuple_from_wire(t);
            bad += x.is_none() as usize;
            x
        })
        .collect();
    let listeners = r.listeners.iter().filter_map(listener_from_wire).collect();
    (
        ReportIn {
            seq: r.seq,
            full: r.full,
            last_chunk: r.last_chunk,
            upserted,
            removed,
            listeners,
            addresses: addrs_from_wire(&r.addresses),
            counters: r.counters.into_iter().collect(),
            sysctls: r.sysctls.into_iter().collect(),
            silent: r
                .silent
                .iter()
                .filter_map(|s| Some((tuple_from_wire(s.tuple.as_ref()?)?, s.silent_ms)))
                .collect(),
        },
        bad,
    )
}

fn lookup_results_in(r: &v1::LookupReply) -> Vec<LookupResultIn> {
    r.results
        .iter()
        .filter_map(|x| {
            Some(LookupResultIn {
                tuple: tuple_from_wire(x.tuple.as_ref()?)?,
                present: x.present,
                state: u8::try_from(x.state).ok().and_then(TcpState::from_kernel),
                cookie: x.cookie,
                process: x.process.as_ref().map(process_from_wire),
                keepalive: x.keepalive,
            })
        })
        .collect()
}

pub fn finding_to_wire(v: &FindingView) -> v1::Finding {
    let f = &v.finding;
    v1::Finding {
        kind: f.kind.as_str().to_string(),
        tuple: f.tuple.as_ref().map(tuple_to_wire),
        client_host: f.client_host.clone(),
        server_host: f.server_host.clone(),
        process: f.process.as_ref().map(process_to_wire),
        first_seen_unix_ms: f.first_seen_ms,
        confirmed_at_unix_ms: f.confirmed_at_ms,
        keepalive: f.keepalive,
        client_host_stale: v.client_host_stale,
        server_process: f.server_process.as_ref().map(process_to_wire),
        explanation: f.explanation.clone(),
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
        let now = shared.now();
        let (h, session) = shared.engine().connect(hello_in(&hello, peer), now);
        info!(host = %hello.host_id, session, peer = ?peer, source = %hello.source, "collector connected");
        let (tx, rx) = mpsc::channel(1024);
        let config = {
            let e = shared.engine();
            v1::ReconcilerMessage {
                msg: Some(v1::reconciler_message::Msg::Config(v1::Config {
                    greeting_ports: e.config().greeting_ports.iter().map(|&p| p as u32).collect(),
                    stall_after_ms: e.config().stall_after_ms,
                })),
            }
        };
        // The channel is new and empty: this cannot fail for lack of room.
        let _ = tx.try_send(Ok(config));
        shared
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(h, (session, tx));
        let host_id = hello.host_id.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(m)) => {
                        let actions = match m.msg {
                            Some(v1::collector_message::Msg::Report(r)) => {
                                let (r, bad) = report_in(r);
                                if bad > 0 {
                                    warn!(host = %host_id, bad, "records that do not decode were skipped");
                                }
                                let now = shared.now();
                                shared.engine().report(h, session, r, now)
                            }
                            Some(v1::collector_message::Msg::LookupReply(r)) => {
                                let results = lookup_results_in(&r);
                                let now = shared.now();
                                shared.engine().lookup_reply(h, session, r.id, results, now)
                            }
                            Some(v1::collector_message::Msg::Hello(_)) => {
                                warn!(host = %host_id, "second Hello in a session ignored");
                                Vec::new()
                            }
                            None => Vec::new(),
                        };
                        shared.dispatch(actions);
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
            shared.engine().disconnect(h, session);
            let mut s = shared.sessions.lock().unwrap_or_else(|p| p.into_inner());
            if s.get(&h).map(|x| x.0) == Some(session) {
                s.remove(&h);
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_orphans(
        &self,
        req: Request<v1::ListOrphansRequest>,
    ) -> Result<Response<v1::ListOrphansResponse>, Status> {
        let kind = req.into_inner().kind;
        let want = if kind.is_empty() {
            None
        } else {
            Some(FindingKind::parse(&kind).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "unknown finding kind {kind:?} (kinds: client_only, server_only, stalled_greeting, listener_at_risk)"
                ))
            })?)
        };
        Ok(Response::new(v1::ListOrphansResponse {
            findings: self
                .findings()
                .iter()
                .filter(|f| want.is_none_or(|k| f.finding.kind == k))
                .map(finding_to_wire)
                .collect(),
        }))
    }

    async fn explain(&self, req: Request<v1::ExplainRequest>) -> Result<Response<v1::ExplainResponse>, Status> {
        let target = req.into_inner().target;
        let now = self.shared.now();
        let diags = self.shared.engine().explain(&target, now).map_err(Status::not_found)?;
        Ok(Response::new(v1::ExplainResponse {
            diagnoses: diags.iter().map(diagnosis_to_wire).collect(),
        }))
    }

    async fn list_hosts(&self, _req: Request<v1::ListHostsRequest>) -> Result<Response<v1::ListHostsResponse>, Status> {
        Ok(Response::new(v1::ListHostsResponse {
            hosts: self.hosts().iter().map(host_to_wire).collect(),
        }))
    }
}
