//! `halfopen coverage`: what the reconciler's answers cover now, and what
//! not (stale, gone or conflicting hosts, shared addresses, connections to
//! unmonitored servers, collectors' blind spots).
use super::tls::Remote;
use crate::output;
use anyhow::Result;

pub async fn run(reconciler: &Remote, json: bool) -> Result<()> {
    let mut c = super::query_client(reconciler).await?;
    let coverage = super::findings::coverage_of(&mut c, reconciler).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&output::coverage_json(&coverage))?);
    } else {
        print!("{}", output::coverage_text(&coverage));
    }
    Ok(())
}
