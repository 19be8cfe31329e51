//! `halfopen history` and `halfopen incidents`: the past, from the
//! reconciler's database, every page of it.
use super::tls::Remote;
use crate::output::{self, history_json, incident_json, Window};
use anyhow::{bail, Context, Result};
use halfopen_core::FindingKind;
use halfopen_proto::convert::{incident_from_wire, stored_from_wire};
use halfopen_proto::v1;

/// Most pages read for one listing: a server that never ends is an error.
const MAX_PAGES: usize = 100_000;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `--since`/`--until` as ms, with the words to print them.
fn window(since: &str, until: Option<&str>) -> Result<(i64, i64, String, String)> {
    let now = now_ms();
    let s = halfopen_history::parse_time(since, now).context("--since")?;
    let u = match until {
        Some(u) => halfopen_history::parse_time(u, now).context("--until")?,
        None => now,
    };
    if s > u {
        bail!(
            "--since ({}) is after --until ({}): nothing can be in that window",
            output::rfc3339(s),
            output::rfc3339(u)
        );
    }
    Ok((s, u, output::rfc3339(s), output::rfc3339(u)))
}

pub struct HistoryArgs {
    pub since: String,
    pub until: Option<String>,
    pub kind: Option<FindingKind>,
    pub host: Option<String>,
    pub server: Option<String>,
    pub process: Option<String>,
    pub json: bool,
    pub csv: bool,
}

pub async fn history(reconciler: &Remote, a: HistoryArgs) -> Result<()> {
    let (since, until, since_s, until_s) = window(&a.since, a.until.as_deref())?;
    if let Some(s) = &a.server {
        s.parse::<halfopen_history::ServerFilter>().context("--server")?;
    }
    let mut c = super::query_client(reconciler).await?;
    let mut rows = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        if page == MAX_PAGES {
            bail!(
                "the history did not end after {MAX_PAGES} pages ({} findings)",
                rows.len()
            );
        }
        let r = c
            .history(v1::HistoryRequest {
                since_unix_ms: Some(since),
                until_unix_ms: Some(until),
                kind: a.kind.map(|k| k.to_string()).unwrap_or_default(),
                host: a.host.clone().unwrap_or_default(),
                server: a.server.clone().unwrap_or_default(),
                process: a.process.clone().unwrap_or_default(),
                page_size: 5_000,
                page_token: token.clone(),
            })
            .await
            .with_context(|| format!("asking {reconciler} for the history"))?
            .into_inner();
        for u in &r.unreadable {
            eprintln!(
                "warning: unreadable row in the reconciler's database: {}",
                output::inert(u.clone())
            );
        }
        let decoded: Vec<_> = r.findings.iter().filter_map(stored_from_wire).collect();
        if decoded.len() < r.findings.len() {
            eprintln!(
                "warning: {} findings from the reconciler could not be decoded and are not shown",
                r.findings.len() - decoded.len()
            );
        }
        rows.extend(decoded.iter().map(history_json));
        if r.next_page_token.is_empty() {
            break;
        }
        if r.next_page_token == token {
            bail!("the reconciler gave the same page token twice ({token:?})");
        }
        token = r.next_page_token;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if a.csv {
        print!("{}", output::inert(output::history_csv(&rows)?));
    } else {
        print!(
            "{}",
            output::history_table(
                &rows,
                &Window {
                    since: &since_s,
                    until: &until_s
                }
            )
        );
    }
    Ok(())
}

pub async fn incidents(reconciler: &Remote, since: &str, until: Option<&str>, json: bool) -> Result<()> {
    let (s, u, since_s, until_s) = window(since, until)?;
    let mut c = super::query_client(reconciler).await?;
    let r = c
        .incidents(v1::IncidentsRequest {
            since_unix_ms: Some(s),
            until_unix_ms: Some(u),
            limit: 10_000,
        })
        .await
        .with_context(|| format!("asking {reconciler} for incidents"))?
        .into_inner();
    let now = now_ms();
    let decoded: Vec<_> = r.incidents.iter().filter_map(incident_from_wire).collect();
    if decoded.len() < r.incidents.len() {
        eprintln!(
            "warning: {} incidents from the reconciler could not be decoded and are not shown",
            r.incidents.len() - decoded.len()
        );
    }
    let rows: Vec<_> = decoded.iter().map(|i| incident_json(i, now)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        if r.truncated {
            eprintln!("warning: more incidents matched than listed (10,000): narrow --since/--until");
        }
    } else {
        print!(
            "{}",
            output::incidents_table(
                &rows,
                &Window {
                    since: &since_s,
                    until: &until_s
                },
                r.truncated
            )
        );
    }
    Ok(())
}
