//! `halfopen orphans` and `halfopen findings`: the current findings, every
//! page of them, as a table or JSON.
use crate::output::{self, OrphanJson};
use anyhow::{Context, Result};
use halfopen_core::FindingKind;
use halfopen_proto::convert::finding_from_wire;
use halfopen_proto::v1;

pub async fn orphans(reconciler: &str, json: bool) -> Result<()> {
    let rows = list(reconciler, Some(FindingKind::ClientOnly), "orphans").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", output::orphans_table(&rows));
    }
    Ok(())
}

pub async fn findings(reconciler: &str, kind: Option<FindingKind>, json: bool) -> Result<()> {
    let rows = list(reconciler, kind, "findings").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", output::findings_table(&rows));
    }
    Ok(())
}

async fn list(reconciler: &str, kind: Option<FindingKind>, what: &str) -> Result<Vec<OrphanJson>> {
    let mut c = super::query_client(reconciler).await?;
    let kind_name = kind.map(|k| k.to_string()).unwrap_or_default();
    let findings = halfopen_proto::client::list_findings(&mut c, &kind_name)
        .await
        .with_context(|| format!("asking {reconciler} for {what}"))?;
    Ok(shown(&findings, kind))
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
