//! The `Query` service: what the CLI asks. Live answers are one read of the
//! engine on its thread; a page of findings is moved out of it and its
//! explanations are rendered here, on the runtime. Postmortems (History,
//! Incidents, Incident) read the database on blocking threads, a few at a
//! time, never through the engine.
use crate::actor::ActorHandle;
use halfopen_core::{ExplainTarget, FindingKind};
use halfopen_engine::explain::finding_text;
use halfopen_engine::PageCursor;
use halfopen_history::{Filter, ServerFilter};
use halfopen_proto::convert::{coverage_to_wire, diagnosis_to_wire, finding_to_wire, host_to_wire};
use halfopen_proto::convert::{incident_to_wire, sample_to_wire, stored_to_wire};
use halfopen_proto::transport::MAX_PAGE_SIZE;
use halfopen_proto::v1;
use halfopen_proto::v1::query_server::Query;
use halfopen_store::{StoreError, StoreReader, WriterStats};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

pub struct QueryService {
    pub(crate) actor: ActorHandle,
    /// The database, for postmortems; None with --no-db.
    pub(crate) db: Option<PathBuf>,
    /// Postmortem reads running at once.
    pub(crate) reads: Arc<Semaphore>,
    /// The database writer's counters (whether findings are being
    /// recorded); None with --no-db.
    pub(crate) store: Option<Arc<WriterStats>>,
}

/// Postmortem reads at once; more wait (the CLI's deadline bounds them).
pub const CONCURRENT_READS: usize = 4;
/// Findings in one Incident answer.
pub const MAX_INCIDENT_FINDINGS: usize = 50_000;
/// Page size and incident count when the request says 0.
const DEFAULT_PAGE: usize = 1_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn store_status(e: StoreError) -> Status {
    Status::unavailable(format!("reading the database: {e}"))
}

impl QueryService {
    /// Runs `read` on a blocking thread with its own read connection.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&StoreReader) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let Some(db) = self.db.clone() else {
            return Err(Status::failed_precondition(
                "this reconciler keeps no database (--no-db): there is no history; run it with --db PATH",
            ));
        };
        let _slot = self
            .reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        tokio::task::spawn_blocking(move || {
            let r = StoreReader::open(&db).map_err(store_status)?;
            read(&r)
        })
        .await
        .map_err(|e| Status::internal(format!("history read failed: {e}")))?
    }
}

fn window(since: Option<i64>, until: Option<i64>) -> Result<(i64, i64), Status> {
    let (s, u) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
    if s > u {
        return Err(Status::invalid_argument("since is after until"));
    }
    Ok((s, u))
}

/// A requested page size: 0 is the default; above [`MAX_PAGE_SIZE`] is
/// refused, naming the limit.
fn page_size(n: u32) -> Result<usize, Status> {
    match n as usize {
        0 => Ok(DEFAULT_PAGE),
        n if n > MAX_PAGE_SIZE => Err(Status::invalid_argument(format!(
            "page size {n} is above the limit of {MAX_PAGE_SIZE}: ask for smaller pages and follow next_page_token"
        ))),
        n => Ok(n),
    }
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
            n => page_size(n)?,
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
        let mut c = self.actor.ask(|e, now| e.coverage(now)).await?;
        // The store's state comes from its writer, never from the engine.
        c.store = self.store.as_ref().map(|s| s.health());
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

    async fn history(&self, req: Request<v1::HistoryRequest>) -> Result<Response<v1::HistoryResponse>, Status> {
        let req = req.into_inner();
        let (since, until) = window(req.since_unix_ms, req.until_unix_ms)?;
        let bad = |e: String| Status::invalid_argument(e);
        let filter = Filter {
            kind: (!req.kind.is_empty())
                .then(|| req.kind.parse::<FindingKind>())
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            host: (!req.host.is_empty()).then(|| req.host.clone()),
            server: (!req.server.is_empty())
                .then(|| req.server.parse::<ServerFilter>())
                .transpose()
                .map_err(|e| bad(e.to_string()))?,
            process: (!req.process.is_empty()).then(|| req.process.clone()),
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let p = req
                .page_token
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)));
            Some(p.ok_or_else(|| {
                bad(format!(
                    "page_token {:?} is not a next_page_token this reconciler gave",
                    req.page_token
                ))
            })?)
        };
        let limit = page_size(req.page_size)?;
        let page = self
            .read(move |r| r.history(since, until, &filter, after, limit).map_err(store_status))
            .await?;
        Ok(Response::new(v1::HistoryResponse {
            findings: page.findings.into_iter().map(stored_to_wire).collect(),
            next_page_token: page.next.map(|(a, b)| format!("{a}.{b}")).unwrap_or_default(),
            unreadable: page.unreadable,
        }))
    }

    async fn incidents(&self, req: Request<v1::IncidentsRequest>) -> Result<Response<v1::IncidentsResponse>, Status> {
        let req = req.into_inner();
        let (since, until) = window(req.since_unix_ms, req.until_unix_ms)?;
        let limit = page_size(req.limit)?;
        let (incidents, truncated) = self
            .read(move |r| {
                let (ids, more) = r.incident_ids(since, until, limit).map_err(store_status)?;
                let now = now_ms();
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some((pm, _)) = r.postmortem(&id, now).map_err(store_status)? {
                        out.push(incident_to_wire(&pm.incident));
                    }
                }
                Ok((out, more))
            })
            .await?;
        Ok(Response::new(v1::IncidentsResponse { incidents, truncated }))
    }

    async fn incident(&self, req: Request<v1::IncidentRequest>) -> Result<Response<v1::IncidentResponse>, Status> {
        let id = req.into_inner().id;
        let pm = self
            .read(move |r| {
                r.postmortem(&id, now_ms()).map_err(store_status)?.ok_or_else(|| {
                    Status::not_found(format!(
                        "no incident {id:?} in the database (ids look like db:3306@20261130T171502Z; \
                         `halfopen incidents` lists them)"
                    ))
                })
            })
            .await?;
        let (pm, unreadable) = pm;
        let truncated = pm.findings.len() > MAX_INCIDENT_FINDINGS;
        Ok(Response::new(v1::IncidentResponse {
            incident: Some(incident_to_wire(&pm.incident)),
            samples: pm.samples.iter().map(sample_to_wire).collect(),
            findings: pm
                .findings
                .into_iter()
                .take(MAX_INCIDENT_FINDINGS)
                .map(stored_to_wire)
                .collect(),
            unreadable,
            truncated,
        }))
    }
}
