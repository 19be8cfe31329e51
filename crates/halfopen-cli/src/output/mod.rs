//! What the CLI prints, built from domain values so it is tested without a
//! reconciler: [`json`] rows (contracts for scripts) and [`table`]s for
//! people. Tests compare whole outputs (insta snapshots).
pub mod json;
pub mod table;

#[cfg(test)]
mod tests;

pub use json::*;
pub use table::*;

/// RFC 3339, UTC, millisecond precision ("2026-11-25T17:40:01.123Z").
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
