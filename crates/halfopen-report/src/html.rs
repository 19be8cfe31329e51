//! The postmortem as one standalone HTML page: inline CSS, the plot's SVG
//! inline, no script, no font, no image or link to fetch (its
//! Content-Security-Policy forbids loading anything, as a second guard), so
//! it opens the same from a ticket attachment on a machine without network.
//! Every string from the story is escaped ([`crate::clean::html`]).
use crate::clean::html as h;
use crate::postmortem::{
    affected_line, client_line, gone_line, moment_time, one_day, server_line, when_line, EVIDENCE_HEADING,
    EXAMPLES_HEADING, SOURCES_HEADING,
};
use crate::series::Series;
use crate::story::{num, span, truncate, Story, LISTED_PROCESSES};
use halfopen_core::Postmortem;
use std::fmt::Write as _;

const CSS: &str = r#"
:root { color-scheme: light; }
body { margin: 0; background: #f4f5f7; color: #1d2330;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
header { border-left: 6px solid #c0392b; background: #fff; padding: 14px 20px; border-radius: 4px; }
header.ended { border-left-color: #2e7d32; }
h1 { font-size: 22px; margin: 0 0 4px; }
.id { font-family: ui-monospace, "DejaVu Sans Mono", monospace; color: #5b6475; font-size: 13px; }
.when { color: #3a4252; margin-top: 4px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; font-weight: 600;
  background: #fdecea; color: #a12622; }
.badge.ended { background: #e8f5e9; color: #1b5e20; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { background: #fff; border-radius: 4px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 22px; }
.card span { color: #5b6475; font-size: 13px; }
section { background: #fff; border-radius: 4px; padding: 4px 20px 14px; margin: 14px 0; }
h2 { font-size: 17px; margin: 14px 0 8px; border-bottom: 1px solid #e3e6eb; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 14px 0 4px; color: #3a4252; }
.summary { font-size: 16px; }
figure { margin: 8px 0; } figure svg { width: 100%; height: auto; display: block; }
figcaption { color: #5b6475; font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { color: #5b6475; font-weight: 600; } th.n { text-align: right; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: nowrap; }
code, .cmd { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; color: #3a4252;
  overflow-wrap: anywhere; }
ul { margin: 4px 0; padding-left: 22px; } li { margin: 3px 0; }
.cause { font-weight: 500; }
footer { color: #5b6475; font-size: 12px; margin-top: 18px; }
"#;

/// The inline SVG for embedding: without the XML namespace attribute (an
/// inline `<svg>` in HTML needs none) and sized by the page.
fn inline_svg(svg: &str) -> String {
    let mut s = svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1);
    if let Some(i) = s.find("<svg") {
        if let Some(end) = s[i..].find('>') {
            let head = &s[i..i + end];
            let cleaned: String = head
                .split(' ')
                .filter(|a| !a.starts_with("width=") && !a.starts_with("height="))
                .collect::<Vec<_>>()
                .join(" ");
            s.replace_range(
                i..i + end,
                &format!("{cleaned} role=\"img\" aria-label=\"incident plot\""),
            );
        }
    }
    s
}

/// The page. `svg` is the plot (from plotters: its text is escaped there).
pub fn page(pm: &Postmortem, st: &Story, sr: &Series, svg: &str, now_ms: i64) -> String {
    let inc = &pm.incident;
    let ended = inc.end_ms.is_some();
    let mut s = String::with_capacity(64 * 1024 + svg.len());
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Incident {} — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        h(&inc.id),
        h(&st.title)
    );
    let cls = if ended { " class=\"ended\"" } else { "" };
    let _ = write!(
        s,
        "<header{cls}>\n<h1>{}</h1>\n<div class=\"id\">incident {}</div>\n\
         <div class=\"when\">{} &nbsp; <span class=\"badge{}\">{}</span></div>\n</header>\n",
        h(&st.title),
        h(&inc.id),
        h(&when_line(pm, now_ms)),
        if ended { " ended" } else { "" },
        h(&match st.ending.ended {
            "ongoing" => "still open".to_string(),
            e => format!("ended: {}", e.replace('_', " ")),
        })
    );

    // The numbers an on-call engineer asks first.
    let mut cards: Vec<(String, &str)> = vec![
        (num(st.affected.connections), "connections affected"),
        (num(inc.peak), "at once, at the peak"),
        (span(inc.end_ms.unwrap_or(now_ms) - inc.start_ms), "long"),
    ];
    if let Some(d) = sr.drops_total {
        cards.push((num(d), "dropped by the listener"));
    }
    let cookies = inc.counters.get("TcpExt.SyncookiesSent").copied().unwrap_or(0);
    if cookies > 0 {
        cards.push((num(cookies), "SYN cookies sent"));
    }
    if let Some(q) = sr.fullest {
        cards.push((format!("{}/{}", q.queue, q.backlog), "accept queue at its fullest"));
    }
    s.push_str("<div class=\"cards\">\n");
    for (v, l) in &cards {
        let _ = writeln!(s, "<div class=\"card\"><b>{}</b><span>{}</span></div>", h(v), h(l));
    }
    s.push_str("</div>\n");

    let _ = write!(
        s,
        "<section>\n<h2>What happened</h2>\n<p class=\"summary\">{}</p>\n<figure>\n{}\n\
         <figcaption>One time axis (UTC) for all three panels. The shaded band is the incident.</figcaption>\n\
         </figure>\n</section>\n",
        h(&st.summary),
        inline_svg(svg)
    );

    let d = one_day(st);
    let _ = write!(
        s,
        "<section>\n<h2>Timeline (UTC{})</h2>\n<table>\n",
        d.as_ref().map_or(String::new(), |d| format!(", {}", h(d)))
    );
    for m in &st.timeline {
        let _ = writeln!(
            s,
            "<tr><td class=\"t\">{}</td><td>{}</td></tr>",
            h(&moment_time(m, d.is_some())),
            h(&m.what)
        );
    }
    s.push_str("</table>\n</section>\n");

    let a = &st.affected;
    s.push_str("<section>\n<h2>Who was affected</h2>\n");
    if a.processes.is_empty() {
        s.push_str("<p>No client connection: the findings are about the listener.</p>\n");
    } else {
        let _ = writeln!(s, "<p>{}:</p>", h(&affected_line(a)));
        s.push_str("<table>\n<tr><th class=\"n\">connections</th><th>client process</th><th>command line</th></tr>\n");
        for p in a.processes.iter().take(LISTED_PROCESSES) {
            let _ = writeln!(
                s,
                "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"cmd\">{}</td></tr>",
                num(p.connections),
                h(&client_line(p)),
                h(&truncate(p.cmdline.as_deref().unwrap_or(""), 120))
            );
        }
        if a.processes.len() > LISTED_PROCESSES {
            let rest = &a.processes[LISTED_PROCESSES..];
            let _ = writeln!(
                s,
                "<tr><td class=\"n\">{}</td><td>{} more processes</td><td></td></tr>",
                num(rest.iter().map(|p| p.connections).sum()),
                num(rest.len() as u64)
            );
        }
        s.push_str("</table>\n");
    }
    let _ = writeln!(
        s,
        "<p><b>Server:</b> {}{}</p>\n</section>",
        h(&server_line(a)),
        a.server
            .cmdline
            .as_deref()
            .filter(|c| !c.is_empty())
            .map_or(String::new(), |c| format!(
                " <span class=\"cmd\">{}</span>",
                h(&truncate(c, 160))
            ))
    );

    s.push_str("<section>\n<h2>Why</h2>\n<ul>\n");
    for c in &st.why.causes {
        let _ = writeln!(s, "<li class=\"cause\">{}</li>", h(c));
    }
    s.push_str("</ul>\n");
    if !st.why.evidence.is_empty() {
        let _ = writeln!(s, "<h3>{}</h3>\n<ul>", h(EVIDENCE_HEADING));
        for f in &st.why.evidence {
            let _ = writeln!(s, "<li>{}</li>", h(f));
        }
        s.push_str("</ul>\n");
    }
    if !st.why.examples.is_empty() {
        let _ = writeln!(s, "<h3>{}</h3>\n<ul>", h(EXAMPLES_HEADING));
        for e in &st.why.examples {
            let _ = writeln!(
                s,
                "<li><b>{}</b> ({} in all), e.g. <code>{}</code>: {}</li>",
                h(&e.kind),
                num(e.count),
                h(&e.subject),
                h(&e.explanation)
            );
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</section>\n");

    s.push_str("<section>\n<h2>What to change</h2>\n");
    if st.changes.is_empty() {
        s.push_str("<p>Nothing the evidence points at.</p>\n");
    } else {
        s.push_str("<table>\n<tr><th>setting</th><th>now</th><th>suggested</th><th>how</th></tr>\n");
        for c in &st.changes {
            let _ = writeln!(
                s,
                "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                h(&c.setting),
                h(&c.current),
                h(&c.suggested),
                h(&c.how)
            );
        }
        s.push_str("</table>\n");
    }
    if !st.why.sources.is_empty() {
        let _ = writeln!(s, "<h3>{}</h3>\n<ul>", h(SOURCES_HEADING));
        for f in &st.why.sources {
            let _ = writeln!(s, "<li>{}</li>", h(f));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</section>\n");

    let _ = writeln!(
        s,
        "<section>\n<h2>How it ended</h2>\n<p>{}</p>\n<ul>",
        h(&st.ending.sentence)
    );
    for (k, reasons) in &st.ending.gone {
        let _ = writeln!(s, "<li><b>{}</b>: {}</li>", h(k), h(&gone_line(k, reasons)));
    }
    for (k, n) in &st.ending.current {
        let _ = writeln!(s, "<li><b>{}</b>: {} still current</li>", h(k), num(*n));
    }
    s.push_str("</ul>\n</section>\n");
    let _ = writeln!(
        s,
        "<footer>Written by <code>halfopen incident</code> from the reconciler's database: {} findings, {} samples.</footer>\n</main>\n</body>\n</html>",
        num(pm.findings.len() as u64),
        num(pm.samples.len() as u64)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_svg_loses_its_namespace_and_fixed_size() {
        let svg = "<svg width=\"1400\" height=\"1000\" viewBox=\"0 0 1400 1000\" xmlns=\"http://www.w3.org/2000/svg\">\n<rect/></svg>";
        assert_eq!(
            inline_svg(svg),
            "<svg viewBox=\"0 0 1400 1000\" role=\"img\" aria-label=\"incident plot\">\n<rect/></svg>"
        );
    }
}
