//! The `Query` service: what the CLI asks. Each call is one read of the
//! engine on its thread; a page of findings is moved out of it and its
//! explanations are rendered here, on the runtime.
use crate::actor::ActorHandle;
use halfopen_core::{ExplainTarget, FindingKind};
use halfopen_engine::explain::finding_text;
use halfopen_engine::PageCursor;
use halfopen_proto::convert::{coverage_to_wire, diagnosis_to_wire, finding_to_wire, host_to_wire};
use halfopen_proto::transport::MAX_PAGE_SIZE;
use halfopen_proto::v1;
use halfopen_proto::v1::query_server::Query;
use tonic::{Request, Response, Status};

pub struct QueryService {
    pub(crate) actor: ActorHandle,
}

#[tonic::async_trait]
impl Query for QueryService {
    async fn list_orphans(
        &self,
        req: Request<v1::ListOrphansRequest>,
    ) -> Result<Response<v1::ListOrphansResponse>, Status> {
        let req = req.into_inner();
        let want = if req.kind.is_empty() {
            None
        } else {
            Some(
                req.kind
                    .parse::<FindingKind>()
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            )
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
            .actor
            .ask(move |e, now| e.findings_page(now, want, after.as_ref(), limit))
            .await?;
        Ok(Response::new(v1::ListOrphansResponse {
            findings: page
                .into_iter()
                .map(|v| {
                    let text = finding_text(&v.finding);
                    finding_to_wire(v, text)
                })
                .collect(),
            next_page_token: next.map(|c| c.token()).unwrap_or_default(),
        }))
    }

    async fn explain(&self, req: Request<v1::ExplainRequest>) -> Result<Response<v1::ExplainResponse>, Status> {
        let target = ExplainTarget::parse(&req.into_inner().target);
        let diags = self
            .actor
            .ask(move |e, now| e.explain(&target, now))
            .await?
            .map_err(|e| Status::not_found(e.to_string()))?;
        Ok(Response::new(v1::ExplainResponse {
            diagnoses: diags.iter().map(diagnosis_to_wire).collect(),
        }))
    }

    async fn coverage(&self, _req: Request<v1::CoverageRequest>) -> Result<Response<v1::CoverageResponse>, Status> {
        let c = self.actor.ask(|e, now| e.coverage(now)).await?;
        Ok(Response::new(v1::CoverageResponse {
            coverage: Some(coverage_to_wire(&c)),
        }))
    }

    async fn list_hosts(&self, _req: Request<v1::ListHostsRequest>) -> Result<Response<v1::ListHostsResponse>, Status> {
        let hosts = self.actor.ask(|e, now| e.hosts(now)).await?;
        Ok(Response::new(v1::ListHostsResponse {
            hosts: hosts.iter().map(host_to_wire).collect(),
        }))
    }
}
