//! `halfopen hosts`: every collector the reconciler knows, and whether the
//! reconciler's database is being written.
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
    // The hosts are the answer; the store's state is said beside it.
    let coverage = super::findings::coverage_of(&mut c, reconciler).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", output::hosts_table(&rows));
    }
    match coverage {
        Ok(cov) => match output::not_recorded(&cov) {
            Some(l) if json => eprintln!("not recorded: {l}"),
            Some(l) => println!("Not recorded: {l}"),
            None => {}
        },
        Err(e) => eprintln!("warning: whether the database is being written is unknown: {e:#}"),
    }
    Ok(())
}
