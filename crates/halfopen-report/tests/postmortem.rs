//! The postmortem of a realistic SYN-cookie incident in every form: whole
//! text, Markdown and JSON outputs as snapshots, and the properties every
//! incident must keep (bounded timeline, hostile names inert, edge cases:
//! no samples, one finding, still open, 50,000 findings).
mod common;

use common::fixture::{self, Spec};
use halfopen_core::{FindingKind, GoneReason, IncidentEnd};
use halfopen_report::postmortem::{render, Format};
use halfopen_report::rows::history_json;
use halfopen_report::series::series;

fn realistic() -> (halfopen_core::Postmortem, i64) {
    let spec = Spec::default();
    (fixture::build(&spec), fixture::now_ms(&spec))
}

#[test]
fn text_of_the_realistic_incident() {
    let (pm, now) = realistic();
    insta::assert_snapshot!("text", render(&pm, Format::Text, now).unwrap());
}

#[test]
fn markdown_of_the_realistic_incident() {
    let (pm, now) = realistic();
    insta::assert_snapshot!("markdown", render(&pm, Format::Markdown, now).unwrap());
}

/// `json` (pretty-printed) with the top-level array `key` cut to its first
/// `n` elements and a line saying how many were cut.
fn first_elements(json: &str, key: &str, n: usize) -> String {
    let mut out = Vec::new();
    let mut inside = false;
    let mut seen = 0;
    let mut cut = 0;
    for line in json.lines() {
        if line == format!("  \"{key}\": [") {
            inside = true;
        } else if inside && (line == "  ]" || line == "  ],") {
            inside = false;
            if cut > 0 {
                out.push(format!("    ... {cut} more"));
            }
        } else if inside {
            if line == "    {" {
                seen += 1;
                if seen > n {
                    cut += 1;
                }
            }
            if seen > n {
                continue;
            }
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

/// The whole JSON document, with the findings and samples arrays cut to
/// their first two elements for the snapshot (300 and 1,060 long; their
/// lengths and contents are checked here instead).
#[test]
fn json_of_the_realistic_incident() {
    let (pm, now) = realistic();
    let out = render(&pm, Format::Json, now).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let findings = v["findings"].as_array().unwrap().clone();
    let samples = v["samples"].as_array().unwrap().clone();
    assert_eq!(findings.len(), pm.findings.len());
    assert_eq!(samples.len(), pm.samples.len());
    for (row, f) in findings.iter().zip(&pm.findings) {
        assert_eq!(row, &serde_json::to_value(history_json(f)).unwrap());
    }
    // `incident` is the row `incidents --json` prints for it.
    let inc = serde_json::to_value(halfopen_report::rows::incident_json(&pm.incident, now)).unwrap();
    assert_eq!(v["incident"], inc);
    // Top-level keys in the order printed (two spaces of indentation).
    let keys: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split_once('"').map(|k| k.0))
        .collect();
    assert_eq!(
        keys,
        ["incident", "title", "summary", "timeline", "affected", "why", "changes", "ending", "findings", "samples"]
    );
    insta::assert_snapshot!(
        "json",
        first_elements(&first_elements(&out, "findings", 2), "samples", 2)
    );
}

#[test]
fn the_summary_says_what_when_who_and_how_it_ended() {
    let (pm, now) = realistic();
    let t = render(&pm, Format::Text, now).unwrap();
    for want in [
        "On 2026-11-30, from 02:15:02 to 02:31:40 UTC (16 min 38 s), 300 connections from php-fpm on app-1..3 to \
         db-1:3306 were half-open",
        "Peak 292 at once, at 02:19:51.",
        "The listener's accept queue was full (129/128) and the kernel dropped 1,000 connection attempts on it; SYN \
         cookies were sent 1,060 times.",
        "It ended when the clients closed them.",
    ] {
        let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(want), "missing {want:?} in\n{t}");
    }
    // The engine's reasoning, not ours: its cause and its backlog advice.
    assert!(
        t.contains("The accept queue overflowed and SYN cookies answered"),
        "{t}"
    );
    assert!(t.contains("back_log (mysqld): 128 -> "), "{t}");
    assert_eq!(pm.incident.ended, IncidentEnd::ClientClosed);
}

#[test]
fn the_plotted_peak_is_the_incidents_peak() {
    for spec in [Spec::default(), fixture::big(5_000, 9), Spec::ongoing()] {
        let pm = fixture::build(&spec);
        let sr = series(&pm, fixture::now_ms(&spec));
        assert_eq!(sr.peak.map(|p| p.1), Some(pm.incident.peak));
        // The stacked curve never exceeds the peak, and reaches it.
        let top = sr.one_sided.iter().map(|p| p.total()).max();
        assert_eq!(top, Some(pm.incident.peak));
    }
}

#[test]
fn an_ongoing_incident_is_told_as_still_open() {
    let spec = Spec::ongoing();
    let pm = fixture::build(&spec);
    assert_eq!(pm.incident.ended, IncidentEnd::Ongoing);
    let t = render(&pm, Format::Text, fixture::now_ms(&spec)).unwrap();
    let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Since 2026-11-30 02:15:02 UTC (11 min 40 s so far), 300 connections"),
        "{t}"
    );
    assert!(flat.contains("have been half-open"), "{t}");
    assert!(
        flat.contains("It is still open: 81 connections still half-open at 02:26:42 UTC."),
        "{t}"
    );
    assert!(flat.contains("client_only: 81 still current"), "{t}");
    let j: serde_json::Value =
        serde_json::from_str(&render(&pm, Format::Json, fixture::now_ms(&spec)).unwrap()).unwrap();
    assert_eq!(j["incident"]["ended"], "ongoing");
    assert_eq!(j["incident"]["end"], serde_json::Value::Null);
    assert_eq!(j["ending"]["current"]["client_only"], 81);
    assert_eq!(j["timeline"].as_array().unwrap().last().unwrap()["event"], "still_open");
}

#[test]
fn without_samples_the_report_says_what_the_evidence_shows() {
    let spec = Spec::no_samples();
    let pm = fixture::build(&spec);
    let t = render(&pm, Format::Text, fixture::now_ms(&spec)).unwrap();
    let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
    // The queue from the findings' evidence; the counters from the
    // evidence's windows (a lower bound, as halfopen-history sums them).
    assert!(flat.contains("The listener's accept queue was full (129/128)"), "{t}");
    assert!(
        !flat.contains("connection attempts on it"),
        "no sample, no sk_drops total: {t}"
    );
    assert!(
        !t.contains("The accept queue is full:"),
        "no queue timeline without samples: {t}"
    );
}

#[test]
fn one_finding_makes_a_whole_report() {
    let spec = Spec::one();
    let pm = fixture::build(&spec);
    let t = render(&pm, Format::Text, fixture::now_ms(&spec)).unwrap();
    let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("1 connection from php-fpm on app-1 to db-1:3306 was half-open"),
        "{t}"
    );
    assert!(flat.contains("Peak 1 at once"), "{t}");
    assert!(!flat.contains("Last new client_only"), "{t}");
    for f in [Format::Markdown, Format::Json, Format::Html] {
        assert!(!render(&pm, f, fixture::now_ms(&spec)).unwrap().is_empty());
    }
}

#[test]
fn a_listener_only_incident_recovers() {
    let spec = Spec::listener_only();
    let pm = fixture::build(&spec);
    assert_eq!(pm.incident.ended, IncidentEnd::Recovered);
    let t = render(&pm, Format::Text, fixture::now_ms(&spec)).unwrap();
    let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("the listener 0.0.0.0:3306 on db-1 was at risk of losing connections (listener_at_risk)"),
        "{t}"
    );
    assert!(flat.contains("It ended when the listener recovered."), "{t}");
    assert!(
        flat.contains("No client connection: the findings are about the listener."),
        "{t}"
    );
}

#[test]
fn healed_and_closed_connections_end_mixed() {
    let mut pm = fixture::realistic();
    for f in pm
        .findings
        .iter_mut()
        .filter(|f| f.finding.kind == FindingKind::ClientOnly)
        .take(12)
    {
        f.gone_reason = Some(GoneReason::ServerHasIt);
    }
    pm.incident = halfopen_history::summarize(
        &pm.incident.id,
        &pm.findings,
        &pm.samples,
        fixture::now_ms(&Spec::default()),
    );
    let t = render(&pm, Format::Text, fixture::now_ms(&Spec::default())).unwrap();
    let flat = t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("It ended with 12 connections healed and 288 closed by their clients."),
        "{t}"
    );
    assert!(
        flat.contains("client_only: 288 closed by the client, 12 healed (the other end has it now)"),
        "{t}"
    );
}

/// 50,000 findings: the timeline and the lists stay short, and every form
/// but JSON (which has a row per finding by contract) is small.
#[test]
fn a_huge_incident_is_aggregated_never_listed() {
    let spec = fixture::big(50_000, 14);
    let pm = fixture::build(&spec);
    let now = fixture::now_ms(&spec);
    let started = std::time::Instant::now();
    let t = render(&pm, Format::Text, now).unwrap();
    assert!(t.contains("50,000 connections from worker-0"), "{t}");
    assert!(t.lines().count() < 150, "{} lines", t.lines().count());
    assert!(t.contains("4 more processes"), "{t}");
    let h = render(&pm, Format::Html, now).unwrap();
    assert!(h.len() < 600_000, "{} bytes of HTML", h.len());
    let sr = series(&pm, now);
    assert_eq!(sr.groups.len(), 7, "six processes and the other");
    assert_eq!(sr.groups[6].label, "8 other processes");
    assert!(sr.one_sided.len() <= halfopen_report::series::BINS + 1);
    // Generous for a debug build on two shared cores; a per-finding drawing
    // would take minutes.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hostile_process_names_are_inert_in_every_human_form() {
    let pm = fixture::hostile();
    let now = fixture::now_ms(&Spec::default());
    let t = render(&pm, Format::Text, now).unwrap();
    assert!(
        !t.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in the text form"
    );
    assert!(!t.contains('\u{202e}'), "bidi override in the text form");
    assert!(t.contains("<script>alert(1)</script>?[31m (pid 2201) on app-1"), "{t}");

    let md = render(&pm, Format::Markdown, now).unwrap();
    // Every '<' is escaped: Markdown renders no raw HTML from it.
    let raw = md
        .char_indices()
        .filter(|(i, c)| *c == '<' && !md[..*i].ends_with('\\'))
        .count();
    assert_eq!(raw, 0, "unescaped '<' in Markdown: {md}");
    assert!(md.contains("\\<script\\>alert(1)\\</script\\>"), "{md}");
    assert!(
        md.contains("\\| \\* \\_ \\`"),
        "table and emphasis characters escaped: {md}"
    );

    let h = render(&pm, Format::Html, now).unwrap();
    assert!(!h.contains("<script"), "a script element in the HTML");
    assert!(!h.contains("<img"), "an img element in the HTML");
    assert!(!h.contains('\u{1b}'), "an escape character in the HTML");
    assert!(
        h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "escaped name missing"
    );
    assert!(
        h.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "escaped cmdline missing"
    );

    // JSON keeps the data as it was (escaped by JSON itself).
    let j = render(&pm, Format::Json, now).unwrap();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    let p = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["pid"] == 2201)
        .unwrap();
    assert_eq!(p["process"], "<script>alert(1)</script>\u{1b}[31m");
    assert!(!j.contains('\u{1b}'), "JSON escapes control characters");
}
