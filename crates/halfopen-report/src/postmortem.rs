//! An incident's postmortem as text, Markdown, JSON or a standalone HTML
//! page.
use crate::rows::{history_json, incident_json};
use halfopen_core::Postmortem;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Html,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the {0:?} form is not built yet")]
    NotYet(Format),
}

#[derive(Serialize)]
struct PostmortemJson<'a> {
    incident: crate::rows::IncidentJson,
    findings: Vec<crate::rows::HistoryJson>,
    samples: &'a [halfopen_core::Sample],
}

/// `pm` in `format`; `now_ms` ends what is still ongoing.
pub fn render(pm: &Postmortem, format: Format, now_ms: i64) -> Result<String, ReportError> {
    let i = incident_json(&pm.incident, now_ms);
    match format {
        Format::Json => {
            let j = PostmortemJson {
                incident: i,
                findings: pm.findings.iter().map(history_json).collect(),
                samples: &pm.samples,
            };
            Ok(serde_json::to_string_pretty(&j)? + "\n")
        }
        Format::Text => {
            let mut s = String::new();
            let _ = writeln!(s, "Incident {}", i.id);
            let _ = writeln!(s, "  server: {} on {}", i.server, i.server_host);
            let _ = writeln!(
                s,
                "  start: {}  end: {}",
                i.start,
                i.end.as_deref().unwrap_or("(ongoing)")
            );
            let _ = writeln!(s, "  peak one-sided connections: {}  findings: {}", i.peak, i.findings);
            for f in &pm.findings {
                let _ = writeln!(s, "  - {} {}", f.finding.kind, f.explanation);
            }
            Ok(s)
        }
        f => Err(ReportError::NotYet(f)),
    }
}
