//! Serving: opens the store and restores its current findings, starts the
//! engine actor and its ticker, serves both gRPC services until shutdown,
//! and the Prometheus metrics when asked to.
//!
//! Connections are accepted by [`accept_loop`], which never spins: an accept
//! that fails (EMFILE at the open-file limit, ENFILE, ENOBUFS) is counted,
//! logged at most every 10 s, and followed by a 100 ms pause; sessions
//! already open keep working. Shutdown is graceful and bounded: no new
//! connections, every collector session told UNAVAILABLE (its stream would
//! otherwise never end, and the server waits for open streams), at most
//! [`SERVER_GRACE`] for the connections to close, the engine's queue
//! drained, then the store flushed for at most [`STORE_FLUSH`] (what is
//! still not written is logged).
use crate::actor::{self, ActorHandle, Input, STORE_QUEUE};
use crate::auth::{Auth, AuthStats, Mode, ReaderGate};
use crate::ingest::{IngestService, IngestStats, SessionLimits};
use crate::metrics::ReconcilerMetrics;
use crate::query::{QueryService, CONCURRENT_READS};
use halfopen_engine::{Engine, EngineConfig};
use halfopen_identity::TlsPem;
use halfopen_proto::transport::{self, MAX_INGEST_MESSAGE_BYTES, MAX_QUERY_RESPONSE_BYTES};
use halfopen_proto::v1::ingest_server::IngestServer;
use halfopen_proto::v1::query_server::QueryServer;
use halfopen_store::{StoreCmd, StoreConfig, StoreError, StoreWriter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tracing::{error, info, warn};

/// After shutdown begins, how long open connections get to close.
pub const SERVER_GRACE: Duration = Duration::from_secs(3);
/// How long the engine's queue gets to drain at shutdown.
pub const ENGINE_DRAIN: Duration = Duration::from_secs(1);
/// How long the store gets to write what is queued at shutdown.
pub const STORE_FLUSH: Duration = Duration::from_secs(10);
/// Pause after an accept that failed (EMFILE...), before accepting again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Failed accepts are logged at most this often (with their count).
pub const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

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
    #[error(transparent)]
    Metrics(#[from] halfopen_telemetry::TelemetryError),
    #[error(transparent)]
    Tls(#[from] transport::ServerTlsError),
    #[error(
        "refusing to listen on {addr} without TLS: anyone who reaches it could report as any host and read \
         every finding. Either give --tls-ca, --tls-cert and --tls-key (make them with `halfopen certs`), or \
         listen on a loopback address (--listen 127.0.0.1:7077), or pass --insecure to serve plaintext anyway"
    )]
    PlaintextNotLoopback { addr: SocketAddr },
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: Option<PathBuf>,
    pub engine: EngineConfig,
    pub tick: Duration,
    /// Findings that ended and samples older than this are deleted (checked
    /// at start and hourly); None keeps everything.
    pub retention: Option<Duration>,
    /// Findings on one listener closer than this are one incident.
    pub incident_gap: Duration,
    /// Limits on collector sessions (the engine's are in `engine`).
    pub sessions: SessionLimits,
    /// Largest message a collector may send, bytes.
    pub max_message_bytes: usize,
    /// Serve Prometheus metrics at `http://ADDR/metrics`; None: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Mutual TLS: the CA that issued the peers' certificates, the
    /// reconciler's certificate and key. `None`: plaintext, allowed only on a
    /// loopback address or with `insecure`.
    pub tls: Option<TlsPem>,
    /// Serve plaintext on a non-loopback address (warned at start, counted).
    pub insecure: bool,
    /// Counters of the edge's authorisation decisions (shared with whoever
    /// exports them).
    pub auth_stats: Arc<AuthStats>,
}

/// The engine (with what the store remembers) and its actor, and the
/// store's writer (for retention).
fn start(cfg: &ServeConfig, metrics: Arc<ReconcilerMetrics>) -> Result<(ActorHandle, Option<StoreWriter>), ServeError> {
    let mut engine = Engine::new(cfg.engine.clone());
    let store = match &cfg.db {
        Some(path) => {
            let (writer, reader) = halfopen_store::open_with(
                path,
                StoreConfig {
                    queue: STORE_QUEUE,
                    incident_gap_ms: cfg.incident_gap.as_millis() as i64,
                    ..Default::default()
                },
            )?;
            let (current, bad) = reader.current()?;
            for b in &bad {
                warn!(db = %path.display(), "unreadable finding left in the database: {b}");
            }
            info!(db = %path.display(), restored = current.len(), "findings database open");
            // The engine's monotonic time starts with the actor, right after.
            let wall_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            engine.restore(current, halfopen_engine::Clock { mono_ms: 0, wall_ms });
            Some(writer)
        }
        None => None,
    };
    let writer = store.clone();
    Ok((
        actor::start(engine, store, metrics).map_err(ServeError::Thread)?,
        writer,
    ))
}

/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes what is older than `keep`, now and every hour, through the
/// writer's queue (so it never races a write).
async fn run_retention(writer: StoreWriter, keep: Duration) {
    let mut iv = tokio::time::interval(PRUNE_EVERY);
    loop {
        iv.tick().await;
        let before_ms = std::time::SystemTime::now()
            .checked_sub(keep)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        if !writer.send(StoreCmd::Prune { before_ms }) {
            warn!("the store's queue is full: retention runs again in an hour");
        }
    }
}

/// Drives lookups, timeouts and staleness; runs until the task is dropped.
async fn run_ticker(actor: ActorHandle, every: Duration) {
    let mut iv = tokio::time::interval(every);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        // Waiting for the tick to run keeps at most one tick queued when
        // the engine is behind.
        let (done, ran) = tokio::sync::oneshot::channel();
        if actor.tell(Input::Tick(done)).await.is_err() || ran.await.is_err() {
            error!("engine thread has stopped: no more confirmations");
            return;
        }
    }
}

/// Counters of the accept loop (for logs and metrics).
#[derive(Debug, Default)]
pub struct AcceptStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Accepts that failed (EMFILE, ENFILE, ...): each a connection left
    /// waiting in the kernel's queue, or refused by it when that is full.
    pub failed: AtomicU64,
}

/// errno values (Linux, asm-generic/errno-base.h) that name a limit.
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const ENOMEM: i32 = 12;
const ENOBUFS: i32 = 105;

/// What a failed accept means for the operator.
fn accept_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(EMFILE) => "the reconciler is at its open-file limit (raise LimitNOFILE in the unit, or ulimit -n)",
        Some(ENFILE) => "the system-wide open-file table is full (fs.file-max)",
        Some(ENOMEM) | Some(ENOBUFS) => "the kernel is out of memory for sockets",
        _ => "a transient error",
    }
}

/// Accepts connections on its own task and hands them to the server. An
/// accept that fails is counted, logged (the first, then at most every
/// [`ACCEPT_LOG_EVERY`], with the count) and followed by [`ACCEPT_BACKOFF`]:
/// a process at its open-file limit would otherwise retry at once, forever,
/// on one core. The task ends when the server stops taking connections, or
/// when its handle is aborted (which closes the listener).
pub fn accept_loop(
    listener: TcpListener,
    stats: Arc<AcceptStats>,
) -> (
    ReceiverStream<Result<TcpStream, std::io::Error>>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut unlogged = 0u64;
        let mut last_log: Option<Instant> = None;
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if tx.send(Ok(conn)).await.is_err() {
                        return;
                    }
                    if unlogged > 0 {
                        warn!(refused = unlogged, "accepting connections again");
                        unlogged = 0;
                        last_log = None;
                    }
                }
                Err(e) => {
                    let total = stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
                    unlogged += 1;
                    if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                        error!(
                            failed = unlogged,
                            failed_total = total,
                            "cannot accept connections: {e}: {}; sessions already open keep working, new ones wait \
                             (retrying every {ACCEPT_BACKOFF:?})",
                            accept_hint(&e)
                        );
                        unlogged = 0;
                        last_log = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    });
    (ReceiverStream::new(rx), task)
}

/// Serves until `shutdown` resolves, then shuts down gracefully (see the
/// module documentation); returns within about
/// [`SERVER_GRACE`] + [`ENGINE_DRAIN`] + [`STORE_FLUSH`] of the signal.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mode = Mode::for_listener(cfg.listen.ip(), cfg.tls.is_some(), cfg.insecure)
        .ok_or(ServeError::PlaintextNotLoopback { addr: cfg.listen })?;
    let mut server = transport::server(cfg.tls.as_ref())?;
    let auth = Arc::new(Auth::new(mode, cfg.auth_stats.clone()));
    let mut registry = halfopen_telemetry::new_registry("reconciler", &[]);
    let metrics = ReconcilerMetrics::register(&mut registry);
    let ingest_stats = Arc::new(IngestStats::default());
    metrics.watch_ingest(ingest_stats.clone());
    let accept_stats = Arc::new(AcceptStats::default());
    metrics.watch_accepts(accept_stats.clone());
    metrics.watch_auth(cfg.auth_stats.clone());
    let (actor, writer) = start(&cfg, metrics)?;
    // Kept until serving ends; dropping it stops the endpoint.
    let _metrics_server = match cfg.metrics_listen {
        Some(addr) => Some(halfopen_telemetry::serve(addr, Arc::new(registry)).await?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen).await.map_err(|source| ServeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: cfg.listen,
        source,
    })?;
    info!(listen = %local, "reconciler listening");
    auth.log_mode(local);
    let ticker = tokio::spawn(run_ticker(actor.clone(), cfg.tick));
    let retention = match (&writer, cfg.retention) {
        (Some(w), Some(keep)) => Some(tokio::spawn(run_retention(w.clone(), keep))),
        _ => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ingest = IngestServer::new(IngestService {
        actor: actor.clone(),
        limits: cfg.sessions.clone(),
        stats: ingest_stats,
        shutdown: stop_rx.clone(),
        auth: auth.clone(),
    })
    .max_decoding_message_size(cfg.max_message_bytes)
    .max_encoding_message_size(MAX_INGEST_MESSAGE_BYTES);
    let query = QueryServer::new(QueryService {
        actor: actor.clone(),
        db: cfg.db.clone(),
        reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
        store: writer.as_ref().map(StoreWriter::stats_arc),
    })
    .max_encoding_message_size(MAX_QUERY_RESPONSE_BYTES);
    // Readers only (with mutual TLS), checked before any query method runs.
    let query = InterceptedService::new(query, ReaderGate(auth));
    let (incoming, acceptor) = accept_loop(listener, accept_stats);
    let mut stopped = stop_rx.clone();
    let server = server
        .add_service(ingest)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stopped.wait_for(|s| *s).await;
        });
    tokio::pin!(server);
    tokio::pin!(shutdown);
    let r = tokio::select! {
        r = &mut server => r,
        _ = &mut shutdown => {
            let began = Instant::now();
            info!("shutting down: accepting no more connections, ending collector sessions");
            acceptor.abort(); // closes the listener: collectors are refused and retry
            let _ = stop_tx.send(true);
            let r = match tokio::time::timeout(SERVER_GRACE, &mut server).await {
                Ok(r) => r,
                Err(_) => {
                    warn!("connections still open {SERVER_GRACE:?} after shutdown began: closing them");
                    Ok(())
                }
            };
            info!(took = ?began.elapsed(), "connections closed");
            r
        }
    };
    acceptor.abort();
    ticker.abort();
    if let Some(r) = retention {
        r.abort();
    }
    // What the engine still has queued (disconnects, the last reports) is
    // handled before the store is flushed, so that it is flushed too.
    if tokio::time::timeout(ENGINE_DRAIN, actor.ask(|_, _| ())).await.is_err() {
        warn!("the engine did not drain its queue within {ENGINE_DRAIN:?}");
    }
    drop(actor);
    if let Some(w) = writer {
        let path = cfg.db.clone().unwrap_or_default();
        let flushed = tokio::task::spawn_blocking(move || w.flush_within(STORE_FLUSH)).await;
        match flushed {
            Ok(Ok(())) => info!(db = %path.display(), "database flushed"),
            Ok(Err(late)) => error!(db = %path.display(), "shutting down with records not written: {late}"),
            Err(e) => error!(db = %path.display(), "flushing the database failed: {e}"),
        }
    }
    r.map_err(ServeError::from)
}
