//! `halfopen explain [TARGET]`: diagnoses with the concrete changes, and
//! what the answer covers.
use super::tls::Remote;
use crate::output;
use anyhow::Result;
use halfopen_proto::convert::diagnosis_from_wire;
use halfopen_proto::v1;

pub async fn run(reconciler: &Remote, target: Option<String>, json: bool) -> Result<()> {
    let mut c = super::query_client(reconciler).await?;
    let r = c
        .explain(v1::ExplainRequest {
            target: target.unwrap_or_default(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound => anyhow::anyhow!("{}", s.message()),
            _ => anyhow::anyhow!("asking {reconciler} to explain: {s}"),
        })?
        .into_inner();
    let diagnoses: Vec<_> = r.diagnoses.into_iter().map(diagnosis_from_wire).collect();
    let coverage = super::findings::coverage_of(&mut c, reconciler).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&diagnoses)?);
        super::findings::warn_incomplete(&coverage);
    } else {
        print!("{}", output::explain_text(&diagnoses, &coverage));
    }
    Ok(())
}
