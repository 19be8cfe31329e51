//! Serving: opens the store and restores its current findings, starts the
//! engine actor and its ticker, and serves both gRPC services until shutdown.
use crate::actor::{self, ActorHandle, Input, STORE_QUEUE};
use crate::ingest::IngestService;
use crate::query::QueryService;
use halfopen_engine::{Engine, EngineConfig};
use halfopen_proto::transport::{self, MAX_INGEST_MESSAGE_BYTES, MAX_QUERY_RESPONSE_BYTES};
use halfopen_proto::v1::ingest_server::IngestServer;
use halfopen_proto::v1::query_server::QueryServer;
use halfopen_store::StoreError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
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
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: Option<PathBuf>,
    pub engine: EngineConfig,
    pub tick: Duration,
}

/// The engine (with what the store remembers) and its actor.
fn start(cfg: &ServeConfig) -> Result<ActorHandle, ServeError> {
    let mut engine = Engine::new(cfg.engine.clone());
    let store = match &cfg.db {
        Some(path) => {
            let (writer, reader) = halfopen_store::open(path, STORE_QUEUE)?;
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
    actor::start(engine, store).map_err(ServeError::Thread)
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
    let actor = start(&cfg)?;
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
    let ticker = tokio::spawn(run_ticker(actor.clone(), cfg.tick));
    let ingest = IngestServer::new(IngestService { actor: actor.clone() })
        .max_decoding_message_size(MAX_INGEST_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_INGEST_MESSAGE_BYTES);
    let query = QueryServer::new(QueryService { actor }).max_encoding_message_size(MAX_QUERY_RESPONSE_BYTES);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let r = transport::server()
        .add_service(ingest)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    ticker.abort();
    r.map_err(ServeError::from)
}
