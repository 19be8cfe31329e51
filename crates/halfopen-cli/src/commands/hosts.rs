//! `halfopen hosts`: every collector the reconciler knows.
use super::tls::Remote;
use crate::output;
use anyhow::{Context, Result};
use halfopen_proto::convert::host_from_wire;
use halfopen_proto::v1;

pub async fn run(reconciler: &Remote, json: bool) -> Result<()> {
    let mut c = super::query_client(reconciler).await?;
    let r = c
        .list_hosts(v1::ListHostsRequest {})
        .await
        .with_context(|| format!("asking {reconciler} for hosts"))?
        .into_inner();
    let rows: Vec<_> = r.hosts.iter().map(|h| output::host_json(&host_from_wire(h))).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", output::hosts_table(&rows));
    }
    Ok(())
}
