//! What the CLI prints, built from domain values so it is tested without a
//! reconciler: [`json`] rows (contracts for scripts) and [`table`]s for
//! people. Tests compare whole outputs (insta snapshots).
pub mod history;
pub mod json;
pub mod table;

#[cfg(test)]
mod tests;

pub use history::*;
pub use json::*;
pub use table::*;

pub use halfopen_report::rfc3339;

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
