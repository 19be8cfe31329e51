//! halfopen-report: what people and scripts read about the past. Pure:
//! plain data in, text or bytes out; the CLI writes the files.
//!
//! - [`rows`]: the JSON rows that are contracts for scripts (`findings`,
//!   `history`, `incidents`).
//! - [`postmortem`]: one incident as text, Markdown, JSON or HTML
//!   ([`postmortem::render`]); [`html`] lays out the standalone page.
//! - [`story`]: what a postmortem says (summary, timeline, who, why, what to
//!   change, how it ended), with the engine's diagnosis as its reasoning.
//! - [`series`]: the incident as time series (sweeps, bounded).
//! - [`plot`]: one incident in one picture (SVG or PNG, plotters).
//! - [`clean`]: hostile strings from monitored hosts made inert.
pub mod clean;
pub mod html;
pub mod plot;
pub mod postmortem;
pub mod rows;
pub mod series;
pub mod story;

/// RFC 3339, UTC, millisecond precision ("2026-11-25T17:40:01.123Z").
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}
