//! An incident's postmortem as text, Markdown, JSON or a standalone HTML
//! page, ready to paste: what happened in one paragraph, the timeline, who
//! was affected, why, what to change and how it ended. The content is
//! [`crate::story`]'s, built from a copy of the postmortem whose hostile
//! strings are defanged ([`crate::clean`]); each form only lays it out and
//! escapes it for its medium.
use crate::clean;
use crate::rows::{history_json, incident_json, IncidentJson};
use crate::series::series;
use crate::story::{clock, day, num, span, story, Affected, Ending, Moment, Story, Why, LISTED_PROCESSES};
use halfopen_core::{Change, Postmortem, Sample};
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
    #[error("the HTML report's plot: {0}")]
    Plot(#[from] crate::plot::PlotError),
}

/// `--format json`: `incident` is the row `incidents --json` prints for it
/// (nested, not flattened: its `findings` is a count, and `findings` here
/// is the rows), then the story, then every finding as `history --json`
/// prints it and the samples.
#[derive(Serialize)]
struct PostmortemJson<'a> {
    incident: IncidentJson,
    title: &'a str,
    summary: &'a str,
    timeline: &'a [Moment],
    affected: &'a Affected,
    why: &'a Why,
    changes: &'a [Change],
    /// How it ended, in detail (`incident.ended` is the one word).
    ending: &'a Ending,
    findings: Vec<crate::rows::HistoryJson>,
    samples: &'a [Sample],
}

/// `pm` in `format`; `now_ms` ends what is still ongoing (reconciler wall
/// clock, ms). Errors: JSON serialization, or the HTML form's plot.
pub fn render(pm: &Postmortem, format: Format, now_ms: i64) -> Result<String, ReportError> {
    let safe = clean::defang_postmortem(pm);
    let sr = series(&safe, now_ms);
    let st = story(&safe, &sr, now_ms);
    Ok(match format {
        Format::Json => {
            let j = PostmortemJson {
                incident: incident_json(&pm.incident, now_ms),
                title: &st.title,
                summary: &st.summary,
                timeline: &st.timeline,
                affected: &st.affected,
                why: &st.why,
                changes: &st.changes,
                ending: &st.ending,
                findings: pm.findings.iter().map(history_json).collect(),
                samples: &pm.samples,
            };
            serde_json::to_string_pretty(&j)? + "\n"
        }
        Format::Text => clean::defang_lines(&text(&safe, &st, now_ms)),
        Format::Markdown => clean::defang_lines(&markdown(&safe, &st, now_ms)),
        Format::Html => {
            let svg = crate::plot::plot_series(&safe, &sr, crate::plot::PlotFormat::Svg)?;
            let svg = String::from_utf8_lossy(&svg).into_owned();
            crate::html::page(&safe, &st, &sr, &svg, now_ms)
        }
    })
}

/// Text wrapped at `width` columns, the first line after `first`, the
/// others after `rest`.
pub(crate) fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for w in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + w.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(w);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

const WIDTH: usize = 100;

/// "2026-11-30 02:15:02 to 02:31:40 UTC (16 min 38 s)".
pub(crate) fn when_line(pm: &Postmortem, now_ms: i64) -> String {
    let i = &pm.incident;
    match i.end_ms {
        Some(e) if day(e) == day(i.start_ms) => format!(
            "{} {} to {} UTC ({})",
            day(i.start_ms),
            clock(i.start_ms),
            clock(e),
            span(e - i.start_ms)
        ),
        Some(e) => format!(
            "{} {} to {} {} UTC ({})",
            day(i.start_ms),
            clock(i.start_ms),
            day(e),
            clock(e),
            span(e - i.start_ms)
        ),
        None => format!(
            "{} {} UTC to now, still open ({} so far)",
            day(i.start_ms),
            clock(i.start_ms),
            span(now_ms - i.start_ms)
        ),
    }
}

/// The timeline's times: the clock alone when the incident is within one
/// day (the day is said in the heading), else the date too.
pub(crate) fn moment_time(m: &Moment, one_day: bool) -> String {
    if one_day {
        clock(m.at_ms)
    } else {
        format!("{} {}", day(m.at_ms), clock(m.at_ms))
    }
}

pub(crate) fn one_day(st: &Story) -> Option<String> {
    let first = st.timeline.first()?;
    let d = day(first.at_ms);
    st.timeline.iter().all(|m| day(m.at_ms) == d).then_some(d)
}

/// "mysqld (pid 1123) on db-1, listener 0.0.0.0:3306".
pub(crate) fn server_line(a: &Affected) -> String {
    let s = &a.server;
    let who = match (&s.process, s.pid) {
        (Some(p), Some(pid)) => format!("{p} (pid {pid})"),
        _ => "process unknown".to_string(),
    };
    format!("{who} on {}, listener {}", s.host, s.listener)
}

pub(crate) fn client_line(p: &crate::story::AffectedProcess) -> String {
    crate::series::process_label(&p.client_host, p.pid, p.process.as_deref())
}

/// "300 connections from 3 client processes on 3 hosts".
pub(crate) fn affected_line(a: &Affected) -> String {
    format!(
        "{} connection{} from {} client process{} on {} host{}",
        num(a.connections),
        if a.connections == 1 { "" } else { "s" },
        num(a.processes.len() as u64),
        if a.processes.len() == 1 { "" } else { "es" },
        num(a.client_hosts.len() as u64),
        if a.client_hosts.len() == 1 { "" } else { "s" }
    )
}

/// "300 closed by the client, 2 healed (the other end has it now)".
pub(crate) fn gone_line(kind: &str, reasons: &std::collections::BTreeMap<String, u64>) -> String {
    let kind = kind.parse::<halfopen_core::FindingKind>().ok();
    reasons
        .iter()
        .map(|(r, n)| {
            let words = r
                .parse::<halfopen_core::GoneReason>()
                .map(|r| crate::story::gone_words(kind, r))
                .unwrap_or(r.as_str());
            format!("{} {words}", num(*n))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) const EXAMPLES_HEADING: &str = "How halfopen explained each kind when it confirmed the first of them";
pub(crate) const EVIDENCE_HEADING: &str = "What this rests on";
pub(crate) const SOURCES_HEADING: &str = "What the server software does (with sources)";

fn text(pm: &Postmortem, st: &Story, now_ms: i64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "INCIDENT {}", pm.incident.id);
    let _ = writeln!(s, "{}", st.title);
    let _ = writeln!(s, "{}  |  ended: {}", when_line(pm, now_ms), st.ending.ended);
    s.push('\n');

    let _ = writeln!(s, "WHAT HAPPENED");
    s.push_str(&wrap(&st.summary, WIDTH, "  ", "  "));
    s.push('\n');

    let d = one_day(st);
    match &d {
        Some(d) => {
            let _ = writeln!(s, "TIMELINE (UTC, {d})");
        }
        None => {
            let _ = writeln!(s, "TIMELINE (UTC)");
        }
    }
    for m in &st.timeline {
        let t = moment_time(m, d.is_some());
        let pad = " ".repeat(t.len() + 4);
        s.push_str(&wrap(&m.what, WIDTH, &format!("  {t}  "), &pad));
    }
    s.push('\n');

    let a = &st.affected;
    let _ = writeln!(s, "WHO WAS AFFECTED");
    if a.processes.is_empty() {
        let _ = writeln!(s, "  No client connection: the findings are about the listener.");
    } else {
        let _ = writeln!(s, "  {}:", affected_line(a));
        let w = num(a.processes[0].connections).len();
        for p in a.processes.iter().take(LISTED_PROCESSES) {
            let cmd = p.cmdline.as_deref().filter(|c| !c.is_empty());
            let _ = writeln!(
                s,
                "  {:>w$}  {}{}",
                num(p.connections),
                client_line(p),
                cmd.map_or(String::new(), |c| format!("  [{}]", crate::story::truncate(c, 60)))
            );
        }
        if a.processes.len() > LISTED_PROCESSES {
            let rest = &a.processes[LISTED_PROCESSES..];
            let _ = writeln!(
                s,
                "  {:>w$}  {} more processes",
                num(rest.iter().map(|p| p.connections).sum()),
                num(rest.len() as u64)
            );
        }
        if a.client_hosts.len() > 1 {
            let hosts: Vec<String> = a
                .client_hosts
                .iter()
                .take(LISTED_PROCESSES)
                .map(|h| format!("{} {}", h.client_host, num(h.connections)))
                .collect();
            let more = a.client_hosts.len().saturating_sub(LISTED_PROCESSES);
            let tail = if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            };
            s.push_str(&wrap(
                &format!("By host: {}{tail}", hosts.join(", ")),
                WIDTH,
                "  ",
                "    ",
            ));
        }
    }
    let cmd = a.server.cmdline.as_deref().filter(|c| !c.is_empty());
    let _ = writeln!(
        s,
        "  Server: {}{}",
        server_line(a),
        cmd.map_or(String::new(), |c| format!("  [{}]", crate::story::truncate(c, 60)))
    );
    s.push('\n');

    let _ = writeln!(s, "WHY");
    for c in &st.why.causes {
        s.push_str(&wrap(c, WIDTH, "  - ", "    "));
    }
    if !st.why.evidence.is_empty() {
        let _ = writeln!(s, "  {EVIDENCE_HEADING}:");
        for f in &st.why.evidence {
            s.push_str(&wrap(f, WIDTH, "  - ", "    "));
        }
    }
    if !st.why.examples.is_empty() {
        let _ = writeln!(s, "  {EXAMPLES_HEADING}:");
        for e in &st.why.examples {
            s.push_str(&wrap(
                &format!(
                    "{} ({} in all), e.g. {}: {}",
                    e.kind,
                    num(e.count),
                    e.subject,
                    e.explanation
                ),
                WIDTH,
                "  - ",
                "    ",
            ));
        }
    }
    s.push('\n');

    let _ = writeln!(s, "WHAT TO CHANGE");
    if st.changes.is_empty() {
        let _ = writeln!(s, "  Nothing the evidence points at.");
    }
    for c in &st.changes {
        s.push_str(&wrap(
            &format!("{}: {} -> {}", c.setting, c.current, c.suggested),
            WIDTH,
            "  - ",
            "    ",
        ));
        s.push_str(&wrap(&format!("how: {}", c.how), WIDTH, "    ", "      "));
    }
    if !st.why.sources.is_empty() {
        let _ = writeln!(s, "  {SOURCES_HEADING}:");
        for f in &st.why.sources {
            s.push_str(&wrap(f, WIDTH, "  - ", "    "));
        }
    }
    s.push('\n');

    let _ = writeln!(s, "HOW IT ENDED");
    s.push_str(&wrap(&st.ending.sentence, WIDTH, "  ", "  "));
    for (k, reasons) in &st.ending.gone {
        s.push_str(&wrap(&format!("{k}: {}", gone_line(k, reasons)), WIDTH, "  ", "    "));
    }
    for (k, n) in &st.ending.current {
        let _ = writeln!(s, "  {k}: {} still current", num(*n));
    }
    s
}

fn markdown(pm: &Postmortem, st: &Story, now_ms: i64) -> String {
    let m = clean::markdown;
    let mut s = String::new();
    let _ = writeln!(s, "# Incident {}", m(&pm.incident.id));
    s.push('\n');
    let _ = writeln!(
        s,
        "**{}** · {} · ended: **{}**",
        m(&st.title),
        m(&when_line(pm, now_ms)),
        st.ending.ended
    );
    s.push('\n');
    let _ = writeln!(s, "## What happened\n\n{}\n", m(&st.summary));

    let d = one_day(st);
    let _ = writeln!(
        s,
        "## Timeline (UTC{})\n",
        d.as_ref().map_or(String::new(), |d| format!(", {d}"))
    );
    let _ = writeln!(s, "| time | what |\n|---|---|");
    for e in &st.timeline {
        let _ = writeln!(s, "| {} | {} |", moment_time(e, d.is_some()), m(&e.what));
    }
    s.push('\n');

    let a = &st.affected;
    let _ = writeln!(s, "## Who was affected\n");
    if a.processes.is_empty() {
        let _ = writeln!(s, "No client connection: the findings are about the listener.\n");
    } else {
        let _ = writeln!(s, "{}:\n", m(&affected_line(a)));
        let _ = writeln!(
            s,
            "| connections | client process | host | command line |\n|---:|---|---|---|"
        );
        for p in a.processes.iter().take(LISTED_PROCESSES) {
            let who = match (&p.process, p.pid) {
                (Some(c), Some(pid)) => format!("{} (pid {pid})", m(c)),
                (Some(c), None) => m(c),
                (None, Some(pid)) => format!("pid {pid}"),
                (None, None) => "unknown".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {who} | {} | {} |",
                num(p.connections),
                m(&p.client_host),
                m(&crate::story::truncate(p.cmdline.as_deref().unwrap_or(""), 80))
            );
        }
        if a.processes.len() > LISTED_PROCESSES {
            let rest = &a.processes[LISTED_PROCESSES..];
            let _ = writeln!(
                s,
                "| {} | {} more processes | | |",
                num(rest.iter().map(|p| p.connections).sum()),
                num(rest.len() as u64)
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "**Server:** {}", m(&server_line(a)));
    if let Some(c) = a.server.cmdline.as_deref().filter(|c| !c.is_empty()) {
        let _ = writeln!(s, "(command line: {})", m(&crate::story::truncate(c, 120)));
    }
    s.push('\n');

    let _ = writeln!(s, "## Why\n");
    for c in &st.why.causes {
        let _ = writeln!(s, "- {}", m(c));
    }
    s.push('\n');
    if !st.why.evidence.is_empty() {
        let _ = writeln!(s, "### {EVIDENCE_HEADING}\n");
        for f in &st.why.evidence {
            let _ = writeln!(s, "- {}", m(f));
        }
        s.push('\n');
    }
    if !st.why.examples.is_empty() {
        let _ = writeln!(s, "### {EXAMPLES_HEADING}\n");
        for e in &st.why.examples {
            let _ = writeln!(
                s,
                "- **{}** ({} in all), e.g. {}: {}",
                m(&e.kind),
                num(e.count),
                m(&e.subject),
                m(&e.explanation)
            );
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## What to change\n");
    if st.changes.is_empty() {
        let _ = writeln!(s, "Nothing the evidence points at.\n");
    } else {
        let _ = writeln!(s, "| setting | now | suggested | how |\n|---|---|---|---|");
        for c in &st.changes {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                m(&c.setting),
                m(&c.current),
                m(&c.suggested),
                m(&c.how)
            );
        }
        s.push('\n');
    }
    if !st.why.sources.is_empty() {
        let _ = writeln!(s, "### {SOURCES_HEADING}\n");
        for f in &st.why.sources {
            let _ = writeln!(s, "- {}", m(f));
        }
        s.push('\n');
    }

    let _ = writeln!(s, "## How it ended\n\n{}\n", m(&st.ending.sentence));
    for (k, reasons) in &st.ending.gone {
        let _ = writeln!(s, "- {}: {}", m(k), m(&gone_line(k, reasons)));
    }
    for (k, n) in &st.ending.current {
        let _ = writeln!(s, "- {}: {} still current", m(k), num(*n));
    }
    s
}
