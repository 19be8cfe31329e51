//! `halfopen incident ID`: one incident's postmortem, from the reconciler's
//! database, rendered by halfopen-report; its plot written next to it.
use super::tls::Remote;
use crate::cli::ReportFormat;
use anyhow::{Context, Result};
use halfopen_core::Postmortem;
use halfopen_proto::convert::{incident_from_wire, sample_from_wire, stored_from_wire};
use halfopen_proto::v1;
use halfopen_report::postmortem::Format;
use std::path::{Path, PathBuf};

/// The incident `id` with its findings and samples.
pub async fn fetch(reconciler: &Remote, id: &str) -> Result<Postmortem> {
    let mut c = super::query_client(reconciler).await?;
    let r = c
        .incident(v1::IncidentRequest { id: id.to_string() })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))
        .with_context(|| format!("asking {reconciler} for incident {id}"))?
        .into_inner();
    for u in &r.unreadable {
        eprintln!(
            "warning: unreadable row in the reconciler's database: {}",
            crate::output::inert(u.clone())
        );
    }
    if r.truncated {
        eprintln!("warning: the incident has more findings than one answer holds: the first are shown");
    }
    let incident = r
        .incident
        .as_ref()
        .and_then(incident_from_wire)
        .context("the reconciler's answer has no incident that decodes")?;
    let findings: Vec<_> = r.findings.iter().filter_map(stored_from_wire).collect();
    if findings.len() < r.findings.len() {
        eprintln!(
            "warning: {} findings could not be decoded and are left out",
            r.findings.len() - findings.len()
        );
    }
    let mut incident = incident;
    incident.finding_ids = findings.iter().map(|f| f.id).collect();
    Ok(Postmortem {
        incident,
        findings,
        samples: r.samples.iter().map(sample_from_wire).collect(),
    })
}

pub struct Args {
    pub id: String,
    pub format: ReportFormat,
    pub plot: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

pub async fn run(reconciler: &Remote, a: Args) -> Result<()> {
    let pm = fetch(reconciler, &a.id).await?;
    let now = super::history::now_ms();
    let format = match a.format {
        ReportFormat::Text => Format::Text,
        ReportFormat::Markdown => Format::Markdown,
        ReportFormat::Json => Format::Json,
        ReportFormat::Html => Format::Html,
    };
    if let Some(p) = &a.plot {
        write_plot(&pm, p)?;
        eprintln!("plot written to {}", p.display());
    }
    let text = halfopen_report::postmortem::render(&pm, format, now).context("rendering the report")?;
    match &a.output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("report written to {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Draws `pm` to `path`; its extension picks SVG or PNG.
pub fn write_plot(pm: &Postmortem, path: &Path) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let kind = match ext.as_deref() {
        Some("svg") => halfopen_report::plot::PlotFormat::Svg,
        Some("png") => halfopen_report::plot::PlotFormat::Png,
        _ => anyhow::bail!("--plot {}: the file must end in .svg or .png", path.display()),
    };
    let bytes = halfopen_report::plot::plot(pm, kind).context("drawing the plot")?;
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
