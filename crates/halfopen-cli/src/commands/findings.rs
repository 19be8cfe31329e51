//! `halfopen orphans` and `halfopen findings`: the current findings, every
//! page of them, with what the answer covers, as a table or JSON.
use super::tls::Remote;
use crate::output::{self, OrphanJson};
use anyhow::{Context, Result};
use halfopen_core::{Coverage, FindingKind};
use halfopen_proto::convert::{coverage_from_wire, finding_from_wire};
use halfopen_proto::v1;
use halfopen_proto::v1::query_client::QueryClient;
use tonic::transport::Channel;

pub async fn orphans(reconciler: &Remote, json: bool) -> Result<()> {
    let (rows, coverage) = list(reconciler, Some(FindingKind::ClientOnly), "orphans").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        warn_incomplete(&coverage);
    } else {
        print!("{}", output::orphans_table(&rows, &coverage));
    }
    Ok(())
}

pub async fn findings(reconciler: &Remote, kind: Option<FindingKind>, json: bool) -> Result<()> {
    let (rows, coverage) = list(reconciler, kind, "findings").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        warn_incomplete(&coverage);
    } else {
        print!("{}", output::findings_table(&rows, &coverage));
    }
    Ok(())
}

/// In JSON mode stdout stays the array (a contract); what the answer did
/// not cover goes to stderr, one line each (`halfopen coverage --json` has it as data).
pub fn warn_incomplete(c: &Coverage) {
    for l in output::not_covered(c) {
        eprintln!("not covered: {l}");
    }
    if let Some(l) = output::not_recorded(c) {
        eprintln!("not recorded: {l}");
    }
}

/// What the reconciler's answers cover now.
pub async fn coverage_of(c: &mut QueryClient<Channel>, reconciler: &Remote) -> Result<Coverage> {
    let r = c
        .coverage(v1::CoverageRequest {})
        .await
        .with_context(|| format!("asking {reconciler} what its answers cover"))?
        .into_inner();
    Ok(r.coverage.as_ref().map(coverage_from_wire).unwrap_or_default())
}

async fn list(reconciler: &Remote, kind: Option<FindingKind>, what: &str) -> Result<(Vec<OrphanJson>, Coverage)> {
    let mut c = super::query_client(reconciler).await?;
    let kind_name = kind.map(|k| k.to_string()).unwrap_or_default();
    let findings = halfopen_proto::client::list_findings(&mut c, &kind_name)
        .await
        .with_context(|| format!("asking {reconciler} for {what}"))?;
    let coverage = coverage_of(&mut c, reconciler).await?;
    Ok((shown(&findings, kind), coverage))
}

/// The findings as printed (only `kind`, when given); any that cannot be
/// decoded (malformed from the reconciler) are counted on stderr, not
/// dropped silently.
fn shown(findings: &[v1::Finding], kind: Option<FindingKind>) -> Vec<OrphanJson> {
    let decoded: Vec<_> = findings.iter().filter_map(finding_from_wire).collect();
    if decoded.len() < findings.len() {
        eprintln!(
            "warning: {} findings from the reconciler could not be decoded and are not shown",
            findings.len() - decoded.len()
        );
    }
    decoded
        .into_iter()
        .filter(|(v, _)| kind.is_none_or(|k| v.finding.kind == k))
        .map(|(v, text)| output::orphan_json(&v, text))
        .collect()
}
