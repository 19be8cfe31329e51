//! The `Ingest` service: one task per collector session. It decodes what
//! the collector sends (on the runtime, not on the engine thread) and feeds
//! the engine actor; what the actor sends back goes out through the
//! session's outbox, put on the wire here.
use crate::actor::{ActorHandle, Input, ToCollector, OUTBOX};
use crate::auth::Auth;
use halfopen_proto::convert::{
    hello_from_wire, lookup_reply_from_wire, lookup_to_wire, report_from_wire, wants_to_wire,
};
use halfopen_proto::v1;
use halfopen_proto::v1::ingest_server::Ingest;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::{error, info, warn};

pub struct IngestService {
    pub(crate) actor: ActorHandle,
    /// Who may report which host (checked before the engine hears of a session).
    pub(crate) auth: Arc<Auth>,
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
        let caller = self.auth.collector(&req)?;
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
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        info!(host = %host_id, session, peer = ?peer, source = %source, caller = %caller.describe(), "collector connected");
        let actor = self.actor.clone();
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
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
        let out = ReceiverStream::new(rx).map(|m| Ok(to_wire(m)));
        Ok(Response::new(Box::pin(out) as Outbound))
    }
}
