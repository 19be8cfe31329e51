//! The `Ingest` service: one task per collector session. It decodes what
//! the collector sends (on the runtime, not on the engine thread) and feeds
//! the engine actor; what the actor sends back goes out through the
//! session's outbox, put on the wire here.
use crate::actor::{ActorHandle, Input, ToCollector, OUTBOX};
use halfopen_proto::convert::{
    hello_from_wire, lookup_reply_from_wire, lookup_to_wire, report_from_wire, wants_to_wire,
};
use halfopen_proto::v1;
use halfopen_proto::v1::ingest_server::Ingest;
use std::pin::Pin;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{error, info, warn};

pub struct IngestService {
    pub(crate) actor: ActorHandle,
    /// Becomes true when the reconciler shuts down: every session ends
    /// (its stream closes with UNAVAILABLE), so that the server's graceful
    /// shutdown, which waits for open streams, ends too.
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// What a collector is told when the reconciler shuts down: it reconnects
/// with backoff (to this reconciler once it is back, or another).
pub const SHUTTING_DOWN: &str = "reconciler shutting down";

/// Resolves once `rx` says the reconciler is shutting down (at once if it
/// already is; never if the sender is gone without saying so).
async fn stopping(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn to_wire(m: ToCollector) -> v1::ReconcilerMessage {
    use v1::reconciler_message::Msg;
    let msg = match m {
        ToCollector::Config(w) => Msg::Config(wants_to_wire(&w)),
        ToCollector::Lookup { id, tuples, attribute } => Msg::Lookup(lookup_to_wire(id, &tuples, attribute)),
        ToCollector::Resync { reason } => Msg::Resync(v1::Resync { reason }),
    };
    v1::ReconcilerMessage { msg: Some(msg) }
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
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        info!(host = %host_id, session, peer = ?peer, source = %source, "collector connected");
        let actor = self.actor.clone();
        let stop_in = stopping(self.shutdown.clone());
        tokio::spawn(async move {
            tokio::pin!(stop_in);
            loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = &mut stop_in => {
                        info!(host = %host_id, session, "session ended: the reconciler is shutting down");
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
                        Some(m) => if out_tx.send(Ok(to_wire(m))).await.is_err() { return },
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
