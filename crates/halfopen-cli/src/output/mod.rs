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

/// `s` safe to print to a terminal: control characters that came from the
/// network or another host (a process name, a command line, a host id
/// with escape sequences) are shown as `\x1b`-style text instead of being
/// interpreted. Newlines and tabs, which the tables themselves use, stay.
pub fn inert(s: String) -> String {
    // C0, DEL and C1 controls; and the bidirectional overrides that make
    // text read differently than it is ("Trojan Source", CVE-2021-42574).
    let hostile = |c: char| {
        (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(hostile) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if hostile(c) {
            let n = c as u32;
            if n < 0x100 {
                out.push_str(&format!("\\x{n:02x}"));
            } else {
                out.push_str(&format!("\\u{{{n:x}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
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
