//! Hostile text made inert. Process names, command lines and host names come
//! from the monitored machines (a process may name itself anything, `comm`
//! is settable with prctl(PR_SET_NAME) and cmdline is its own argv), so
//! every human form treats them as untrusted:
//!
//! - [`defang`]: control characters (C0, DEL, C1: terminal escapes, line
//!   breaks inside a name) become `?`, and Unicode bidirectional controls
//!   (which reorder what a reader sees, "Trojan Source", CVE-2021-42574)
//!   are dropped. Applied to every string of a postmortem before any human
//!   form is built from it.
//! - [`html`]: `& < > " '` as character references, for element text and
//!   quoted attribute values.
//! - [`markdown`]: CommonMark punctuation that would start markup (and `|`,
//!   which ends a GFM table cell) backslash-escaped, `&` as `&amp;`, so raw
//!   HTML in a name is shown, never rendered.
use halfopen_core::{Evidence, Finding, Postmortem, Process, Subject};

/// Unicode bidirectional formatting characters (Unicode Standard Annex #9:
/// embeddings, overrides, isolates and marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `s` with control characters as `?` and bidi controls removed; a new
/// string only when something changed.
pub fn defang(s: &str) -> String {
    s.chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Whole lines of output: like [`defang`], but line breaks stay (the
/// output's own); a belt over the per-field cleaning.
pub fn defang_lines(s: &str) -> String {
    s.chars()
        .filter(|c| !is_bidi_control(*c))
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

/// `s` escaped for HTML text and double- or single-quoted attributes.
pub fn html(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `s` as literal text in Markdown (CommonMark and GitHub tables).
pub fn markdown(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '!' => {
                o.push('\\');
                o.push(c);
            }
            c => o.push(c),
        }
    }
    o
}

fn process(p: &mut Option<Process>) {
    if let Some(p) = p {
        p.comm = defang(&p.comm);
        p.cmdline = defang(&p.cmdline);
    }
}

fn evidence(e: &mut Evidence) {
    for v in e.sysctls.values_mut() {
        *v = defang(v);
    }
    if let Some(n) = &mut e.nat {
        n.translated_on = defang(&n.translated_on);
    }
    if let Some(r) = &mut e.server_restarted {
        r.what = defang(&r.what);
    }
    if let Some(l) = &mut e.legacy_explanation {
        *l = defang(l);
    }
}

fn finding(f: &mut Finding) {
    match &mut f.subject {
        Subject::Connection {
            client_host,
            server_host,
            ..
        } => {
            *client_host = defang(client_host);
            *server_host = defang(server_host);
        }
        Subject::Listener { host, .. } => *host = defang(host),
    }
    process(&mut f.process);
    process(&mut f.server_process);
    evidence(&mut f.evidence);
}

/// A copy of `pm` with every string that came from a monitored host
/// [`defang`]ed: what the human forms are built from.
pub fn defang_postmortem(pm: &Postmortem) -> Postmortem {
    let mut pm = pm.clone();
    let i = &mut pm.incident;
    i.id = defang(&i.id);
    i.server_host = defang(&i.server_host);
    for p in &mut i.client_processes {
        p.client_host = defang(&p.client_host);
        p.process = p.process.as_deref().map(defang);
    }
    for f in &mut pm.findings {
        finding(&mut f.finding);
        f.explanation = defang(&f.explanation);
        f.incident = f.incident.as_deref().map(defang);
    }
    for s in &mut pm.samples {
        s.host = defang(&s.host);
    }
    pm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_and_bidi_controls_are_made_inert() {
        assert_eq!(defang("a\u{1b}[31mb\u{7}\nc\u{9b}d"), "a?[31mb??c?d");
        assert_eq!(defang("x\u{202e}gnp.exe"), "xgnp.exe");
        assert_eq!(defang_lines("a\u{1b}]0;t\u{7}\nb"), "a?]0;t?\nb");
        assert_eq!(defang("php-fpm: pool www"), "php-fpm: pool www");
    }

    #[test]
    fn html_and_markdown_show_markup_as_text() {
        assert_eq!(
            html("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(markdown("<b>*x*_|`&"), "\\<b\\>\\*x\\*\\_\\|\\`&amp;");
        assert_eq!(markdown("php-fpm: pool www (pid 7)"), "php-fpm: pool www (pid 7)");
    }
}
