//! Serving: opens the store and restores its current findings, starts the
//! engine actor and its ticker, and serves both gRPC services until shutdown.
use crate::actor::{self, ActorHandle, Input, STORE_QUEUE};
use crate::auth::{Auth, AuthStats, Mode, ReaderGate};
use crate::ingest::IngestService;
use crate::query::{QueryService, CONCURRENT_READS};
use halfopen_engine::{Engine, EngineConfig};
use halfopen_identity::TlsPem;
use halfopen_proto::transport::{self, MAX_INGEST_MESSAGE_BYTES, MAX_QUERY_RESPONSE_BYTES};
use halfopen_proto::v1::ingest_server::IngestServer;
use halfopen_proto::v1::query_server::QueryServer;
use halfopen_store::{StoreCmd, StoreConfig, StoreError, StoreWriter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tonic::service::interceptor::InterceptedService;
use tracing::{error, info, warn};

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
fn start(cfg: &ServeConfig) -> Result<(ActorHandle, Option<StoreWriter>), ServeError> {
    let mut engine = Engine::new(cfg.engine.clone());
    let store = match &cfg.db {
        Some(path) => {
            let (writer, reader) = halfopen_store::open_with(
                path,
                StoreConfig {
                    queue: STORE_QUEUE,
                    incident_gap_ms: cfg.incident_gap.as_millis() as i64,
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
    Ok((actor::start(engine, store).map_err(ServeError::Thread)?, writer))
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

/// Serves until `shutdown` resolves.
pub async fn serve(
    cfg: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let mode = Mode::for_listener(cfg.listen.ip(), cfg.tls.is_some(), cfg.insecure)
        .ok_or(ServeError::PlaintextNotLoopback { addr: cfg.listen })?;
    let mut server = transport::server(cfg.tls.as_ref())?;
    let auth = Arc::new(Auth::new(mode, cfg.auth_stats.clone()));
    let (actor, writer) = start(&cfg)?;
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
    auth.log_mode(local);
    let ticker = tokio::spawn(run_ticker(actor.clone(), cfg.tick));
    let retention = match (writer, cfg.retention) {
        (Some(w), Some(keep)) => Some(tokio::spawn(run_retention(w, keep))),
        _ => None,
    };
    let ingest = IngestServer::new(IngestService {
        actor: actor.clone(),
        auth: auth.clone(),
    })
    .max_decoding_message_size(MAX_INGEST_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_INGEST_MESSAGE_BYTES);
    let query = QueryServer::new(QueryService {
        actor,
        db: cfg.db.clone(),
        reads: Arc::new(Semaphore::new(CONCURRENT_READS)),
    })
    .max_encoding_message_size(MAX_QUERY_RESPONSE_BYTES);
    // Readers only (with mutual TLS), checked before any query method runs.
    let query = InterceptedService::new(query, ReaderGate(auth));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let r = server
        .add_service(ingest)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    ticker.abort();
    if let Some(r) = retention {
        r.abort();
    }
    r.map_err(ServeError::from)
}
