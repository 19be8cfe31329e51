//! The `Ingest` service: one task per collector session. It decodes what
//! the collector sends (on the runtime, not on the engine thread) and feeds
//! the engine actor; what the actor sends back goes out through the
//! session's outbox, put on the wire here.
use crate::actor::{ActorHandle, Input, ToCollector, OUTBOX};
use crate::auth::Auth;
use halfopen_engine::ConnectError;
use halfopen_proto::convert::{
    hello_from_wire, lookup_reply_from_wire, lookup_to_wire, report_from_wire, wants_to_wire,
};
use halfopen_proto::v1;
use halfopen_proto::v1::ingest_server::Ingest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{error, info, warn};

pub struct IngestService {
    pub(crate) actor: ActorHandle,
    pub(crate) limits: SessionLimits,
    pub(crate) stats: Arc<IngestStats>,
    /// Becomes true when the reconciler shuts down: every session ends
    /// (its stream closes with UNAVAILABLE), so that the server's graceful
    /// shutdown, which waits for open streams, ends too.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Who may report which host (checked before the engine hears of a session).
    pub(crate) auth: Arc<Auth>,
}

/// What a collector is told when the reconciler shuts down: it reconnects
/// with backoff (to this reconciler once it is back, or another).
pub const SHUTTING_DOWN: &str = "reconciler shutting down";

/// How long a session's request stream is kept open at shutdown for the
/// collector to read [`SHUTTING_DOWN`] and close its side.
const SHUTDOWN_LINGER: Duration = Duration::from_secs(1);

/// Resolves once `rx` says the reconciler is shutting down (at once if it
/// already is; never if the sender is gone without saying so).
async fn stopping(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Limits on collector sessions, checked before anything reaches the engine.
#[derive(Clone, Debug)]
pub struct SessionLimits {
    /// Collector sessions open at once from one peer address (one collector
    /// covering network namespaces opens one per namespace).
    pub max_sessions_per_peer: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_sessions_per_peer: DEFAULT_MAX_SESSIONS_PER_PEER,
        }
    }
}

/// Default [`SessionLimits::max_sessions_per_peer`].
pub const DEFAULT_MAX_SESSIONS_PER_PEER: usize = 1024;

/// What the Ingest service refused, for metrics and logs.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Sessions refused: too many from one peer address.
    pub refused_peer_limit: AtomicU64,
    /// Sessions refused: the host limit (--max-hosts).
    pub refused_host_limit: AtomicU64,
    /// Sessions refused: the host id is held by another live collector.
    pub refused_conflict: AtomicU64,
    /// Sessions open now, by peer address.
    pub open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open session of a peer address; counted down when dropped.
struct PeerSlot {
    stats: Arc<IngestStats>,
    ip: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.stats.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl IngestService {
    /// A slot for a new session from `ip`, or RESOURCE_EXHAUSTED naming the limit.
    fn admit(&self, ip: IpAddr) -> Result<PeerSlot, Status> {
        let max = self.limits.max_sessions_per_peer;
        let mut open = self.stats.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            self.stats.refused_peer_limit.fetch_add(1, Ordering::Relaxed);
            warn!(peer = %ip, limit = max, "collector session refused: too many from one address");
            return Err(Status::resource_exhausted(format!(
                "{ip} already has {max} collector sessions open (the reconciler's --max-sessions-per-peer)"
            )));
        }
        *n += 1;
        Ok(PeerSlot {
            stats: self.stats.clone(),
            ip,
        })
    }
}

fn to_wire(m: ToCollector) -> Result<v1::ReconcilerMessage, Status> {
    use v1::reconciler_message::Msg;
    let msg = match m {
        ToCollector::Config(w) => Msg::Config(wants_to_wire(&w)),
        ToCollector::Lookup { id, tuples, attribute } => Msg::Lookup(lookup_to_wire(id, &tuples, attribute)),
        ToCollector::Resync { reason } => Msg::Resync(v1::Resync { reason }),
        ToCollector::Close { reason } => return Err(Status::resource_exhausted(reason)),
    };
    Ok(v1::ReconcilerMessage { msg: Some(msg) })
}

type Outbound = Pin<Box<dyn Stream<Item = Result<v1::ReconcilerMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    type CollectStream = Outbound;

    async fn collect(
        &self,
        req: Request<Streaming<v1::CollectorMessage>>,
    ) -> Result<Response<Self::CollectStream>, Status> {
        let peer = req.remote_addr();
        let caller = self.auth.collector(&req)?;
        let slot = peer.map(|p| self.admit(p.ip())).transpose()?;
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty session: the first message must be a Hello"))?;
        let hello = match first.msg {
            Some(v1::collector_message::Msg::Hello(h)) => hello_from_wire(&h),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a session must be a Hello",
                ))
            }
        };
        if hello.host_id.trim().is_empty() {
            return Err(Status::invalid_argument("Hello.host_id is empty"));
        }
        // The certificate must name this host: refused here, nothing of it reaches the engine.
        self.auth.hello(&caller, &hello)?;
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let (reply, registered) = oneshot::channel();
        let host_id = hello.host_id.clone();
        let source = hello.source;
        // Connected and registered for messages in one engine input, so
        // nothing the engine sends this session can come before it is registered.
        self.actor
            .tell(Input::Connect {
                hello,
                peer: peer.map(|p| p.to_string()).unwrap_or_default(),
                outbox,
                reply,
            })
            .await?;
        let (h, session) = registered
            .await
            .map_err(|_| Status::internal("the engine failed to register the session (see the reconciler's log)"))?
            .map_err(|e| match e {
                ConnectError::Conflict { .. } => {
                    self.stats.refused_conflict.fetch_add(1, Ordering::Relaxed);
                    Status::failed_precondition(e.to_string())
                }
                ConnectError::TooManyHosts { .. } => {
                    self.stats.refused_host_limit.fetch_add(1, Ordering::Relaxed);
                    warn!("{e}");
                    Status::resource_exhausted(e.to_string())
                }
            })?;
        info!(host = %host_id, session, peer = ?peer, source = %source, caller = %caller.describe(), "collector connected");
        let actor = self.actor.clone();
        let stop_in = stopping(self.shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(stop_in);
            loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = &mut stop_in => {
                        info!(host = %host_id, session, "session ended: the reconciler is shutting down");
                        // The request stream is kept until the collector has
                        // read the UNAVAILABLE status and closed its side (or
                        // a second passed): dropped first, it can reach the
                        // collector as a bare close with no reason.
                        let _ = tokio::time::timeout(SHUTDOWN_LINGER, async {
                            while let Ok(Some(_)) = inbound.message().await {}
                        })
                        .await;
                        break;
                    }
                };
                match next {
                    Ok(Some(m)) => {
                        let queued = match m.msg {
                            Some(v1::collector_message::Msg::Report(r)) => {
                                let (report, bad) = report_from_wire(r);
                                if bad > 0 {
                                    warn!(host = %host_id, bad, "records that do not decode were skipped");
                                }
                                actor
                                    .tell(Input::Report {
                                        host: h,
                                        session,
                                        report,
                                    })
                                    .await
                            }
                            Some(v1::collector_message::Msg::LookupReply(r)) => {
                                let (answers, bad) = lookup_reply_from_wire(&r);
                                if bad > 0 {
                                    warn!(host = %host_id, bad, "lookup results that do not decode were skipped");
                                }
                                actor
                                    .tell(Input::Answer {
                                        host: h,
                                        session,
                                        id: r.id,
                                        answers,
                                    })
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
            // fails only when the engine has stopped: nothing left to tell
            let _ = actor.tell(Input::Disconnect { host: h, session }).await;
        });
        // The outbound stream ends with UNAVAILABLE at shutdown (a stream
        // that never ends would hold the server's graceful shutdown forever).
        let (out_tx, out_rx) = mpsc::channel::<Result<v1::ReconcilerMessage, Status>>(1);
        let stop_out = stopping(self.shutdown.clone());
        tokio::spawn(async move {
            let mut rx = rx;
            tokio::pin!(stop_out);
            loop {
                tokio::select! {
                    m = rx.recv() => match m {
                        Some(m) => {
                            // A Close is the session's last word: an error status.
                            let m = to_wire(m);
                            let last = m.is_err();
                            if out_tx.send(m).await.is_err() || last {
                                return;
                            }
                        }
                        None => return,
                    },
                    _ = &mut stop_out => {
                        let _ = out_tx.send(Err(Status::unavailable(SHUTTING_DOWN))).await;
                        return;
                    }
                }
            }
        });
        let out = ReceiverStream::new(out_rx);
        Ok(Response::new(Box::pin(out) as Outbound))
    }
}
