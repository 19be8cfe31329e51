//! What readers of the Query service share: reading a whole ListOrphans
//! listing page by page (a 50,000-orphan incident is ~27 MB of findings,
//! more than any sane message limit, while a page of [`PAGE_SIZE`] stays
//! under 3 MB).
use crate::v1;
use crate::v1::query_client::QueryClient;
use tonic::transport::Channel;
use tonic::Status;

/// Findings asked for per page.
pub const PAGE_SIZE: u32 = 5_000;

/// Most pages read for one listing (50 million findings at [`PAGE_SIZE`]):
/// a server that never ends its listing is an error, not a hang.
const MAX_PAGES: usize = 10_000;

/// Every current finding of `kind` (every kind if empty), in the
/// reconciler's order. A reconciler that does not page answers everything
/// at once with no next token, which ends the listing just as well.
pub async fn list_findings(client: &mut QueryClient<Channel>, kind: &str) -> Result<Vec<v1::Finding>, Status> {
    let mut all = Vec::new();
    let mut token = String::new();
    for _ in 0..MAX_PAGES {
        let r = client
            .list_orphans(v1::ListOrphansRequest {
                kind: kind.to_string(),
                page_size: PAGE_SIZE,
                page_token: token.clone(),
            })
            .await?
            .into_inner();
        all.extend(r.findings);
        if r.next_page_token.is_empty() {
            return Ok(all);
        }
        if r.next_page_token == token {
            return Err(Status::internal(format!(
                "the reconciler gave the same page token twice ({token:?}): listing stopped after {} findings",
                all.len()
            )));
        }
        token = r.next_page_token;
    }
    Err(Status::out_of_range(format!(
        "the listing did not end after {MAX_PAGES} pages ({} findings)",
        all.len()
    )))
}
