//! The read side: its own connection to the database (WAL lets it read
//! while the writer writes), so that reads never wait behind the engine's
//! queue or the writer's. Opened per request by the query service; every
//! answer is bounded (pages, thinned samples, a cap on incidents).
use crate::row::{finding_from_row, stored_from_row, COLUMNS, STORED_COLUMNS};
use crate::{sql, StoreError};
use halfopen_core::{Finding, ListenerPoint, Postmortem, Sample, StoredFinding};
use halfopen_history::Filter;
use rusqlite::{params, Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Samples kept around an incident: this long before its start and after
/// its end, ms (10 minutes).
pub const SAMPLE_MARGIN_MS: i64 = 10 * 60 * 1000;
/// At most this many samples in a postmortem (evenly thinned).
pub const MAX_SAMPLES: usize = 2_000;

/// A page of `history`.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// In order of first sighting, then store id.
    pub findings: Vec<StoredFinding>,
    /// Where the next page starts (first_seen_ms, id), None at the end.
    pub next: Option<(i64, i64)>,
    /// Rows in the window that cannot be read back (edited by hand).
    pub unreadable: Vec<String>,
}

pub struct StoreReader {
    conn: Connection,
    path: PathBuf,
}

impl StoreReader {
    /// Opens an existing database read-only. Its schema must be the one
    /// this halfopen writes (the reconciler migrates it at start).
    pub fn open(path: &Path) -> Result<StoreReader, StoreError> {
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| sql(path, e))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| sql(path, e))?;
        Ok(StoreReader {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn e(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |err| sql(&self.path, err)
    }

    /// Findings not yet gone, oldest first. Rows that cannot be read back
    /// (edited by hand) are returned as descriptions, not silently skipped.
    pub fn current(&self) -> Result<(Vec<Finding>, Vec<String>), StoreError> {
        let e = self.e();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM findings WHERE gone_at_ms IS NULL ORDER BY id"
            ))
            .map_err(&e)?;
        let mut rows = stmt.query([]).map_err(&e)?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        while let Some(r) = rows.next().map_err(&e)? {
            match finding_from_row(r).map_err(&e)? {
                Ok(f) => out.push(f),
                Err(b) => bad.push(b),
            }
        }
        Ok((out, bad))
    }

    /// Findings alive at some point in [since_ms, until_ms] (first seen by
    /// `until_ms`, and current or gone at or after `since_ms`) that match
    /// `filter`: up to `limit` of them from `after` (a previous page's
    /// `next`).
    pub fn history(
        &self,
        since_ms: i64,
        until_ms: i64,
        filter: &Filter,
        after: Option<(i64, i64)>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        const BATCH: i64 = 1_000;
        let e = self.e();
        let mut page = HistoryPage::default();
        let mut cursor = after.unwrap_or((i64::MIN, i64::MIN));
        let limit = limit.max(1);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STORED_COLUMNS} FROM findings
                 WHERE first_seen_ms <= ?1 AND (gone_at_ms IS NULL OR gone_at_ms >= ?2)
                   AND (?3 IS NULL OR kind = ?3)
                   AND (first_seen_ms > ?4 OR (first_seen_ms = ?4 AND id > ?5))
                 ORDER BY first_seen_ms, id LIMIT ?6"
            ))
            .map_err(&e)?;
        loop {
            let mut rows = stmt
                .query(params![
                    until_ms,
                    since_ms,
                    filter.kind.map(|k| k.as_str()),
                    cursor.0,
                    cursor.1,
                    BATCH
                ])
                .map_err(&e)?;
            let mut n = 0;
            while let Some(r) = rows.next().map_err(&e)? {
                n += 1;
                let pos = (r.get::<_, i64>(12).map_err(&e)?, r.get::<_, i64>(0).map_err(&e)?);
                if page.findings.len() == limit {
                    page.next = Some(cursor);
                    return Ok(page);
                }
                cursor = pos;
                match stored_from_row(r).map_err(&e)? {
                    Ok(f) if filter.matches(&f) => page.findings.push(f),
                    Ok(_) => {}
                    Err(b) => page.unreadable.push(b),
                }
            }
            if n < BATCH {
                return Ok(page);
            }
        }
    }

    /// Ids of the incidents alive at some point in [since_ms, until_ms], in
    /// order of start; at most `limit`, and whether there were more.
    pub fn incident_ids(&self, since_ms: i64, until_ms: i64, limit: usize) -> Result<(Vec<String>, bool), StoreError> {
        let e = self.e();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT incident FROM findings WHERE incident IS NOT NULL GROUP BY incident
                 HAVING MIN(first_seen_ms) <= ?1
                    AND (COUNT(*) FILTER (WHERE gone_at_ms IS NULL) > 0 OR MAX(gone_at_ms) >= ?2)
                 ORDER BY MIN(first_seen_ms), incident LIMIT ?3",
            )
            .map_err(&e)?;
        let mut ids: Vec<String> = stmt
            .query_map(params![until_ms, since_ms, limit as i64 + 1], |r| r.get(0))
            .map_err(&e)?
            .collect::<Result<_, _>>()
            .map_err(&e)?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        Ok((ids, more))
    }

    /// The findings of one incident, in order of first sighting, and the
    /// rows of it that cannot be read back.
    pub fn incident_findings(&self, id: &str) -> Result<(Vec<StoredFinding>, Vec<String>), StoreError> {
        let e = self.e();
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {STORED_COLUMNS} FROM findings WHERE incident = ?1 ORDER BY first_seen_ms, id"
            ))
            .map_err(&e)?;
        let mut rows = stmt.query(params![id]).map_err(&e)?;
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        while let Some(r) = rows.next().map_err(&e)? {
            match stored_from_row(r).map_err(&e)? {
                Ok(f) => out.push(f),
                Err(b) => bad.push(b),
            }
        }
        Ok((out, bad))
    }

    /// `host`'s samples in [from_ms, to_ms], oldest first; at most `max`
    /// (evenly thinned, keeping the first and the last; counter increases
    /// of the samples left out are added to the next one kept, so sums over
    /// the span stay right).
    pub fn samples(&self, host: &str, from_ms: i64, to_ms: i64, max: usize) -> Result<Vec<Sample>, StoreError> {
        let e = self.e();
        let mut stmt = self
            .conn
            .prepare("SELECT at_ms, deltas, listeners FROM samples WHERE host = ?1 AND at_ms BETWEEN ?2 AND ?3 ORDER BY at_ms, id")
            .map_err(&e)?;
        let mut rows = stmt.query(params![host, from_ms, to_ms]).map_err(&e)?;
        let mut all = Vec::new();
        while let Some(r) = rows.next().map_err(&e)? {
            let deltas: String = r.get(1).map_err(&e)?;
            let listeners: String = r.get(2).map_err(&e)?;
            // A sample edited into nonsense is skipped with a warning: the
            // rest of the postmortem stands without it.
            let (Ok(deltas), Ok(listeners)) = (
                serde_json::from_str::<BTreeMap<String, u64>>(&deltas),
                serde_json::from_str::<Vec<ListenerPoint>>(&listeners),
            ) else {
                tracing::warn!(db = %self.path.display(), host, "a sample does not parse; left out");
                continue;
            };
            all.push(Sample {
                host: host.to_string(),
                at_ms: r.get(0).map_err(&e)?,
                deltas,
                listeners,
            });
        }
        Ok(thin(all, max.max(2)))
    }

    /// One incident with its findings and samples; None when no finding
    /// has that id. `now_ms` ends what is still current.
    pub fn postmortem(&self, id: &str, now_ms: i64) -> Result<Option<(Postmortem, Vec<String>)>, StoreError> {
        let (findings, bad) = self.incident_findings(id)?;
        if findings.is_empty() {
            return Ok(None);
        }
        let host = findings[0].finding.subject.server_host().to_string();
        let start = findings.iter().map(|f| f.finding.first_seen_ms).min().unwrap_or(0);
        let end = findings.iter().map(|f| f.end_ms(now_ms)).max().unwrap_or(now_ms);
        // The sums of the incident's counters come from every sample in its
        // span (thinning keeps sums), the picture from the margin around it.
        let samples = self.samples(&host, start - SAMPLE_MARGIN_MS, end + SAMPLE_MARGIN_MS, MAX_SAMPLES)?;
        let incident = halfopen_history::summarize(id, &findings, &samples, now_ms);
        Ok(Some((
            Postmortem {
                incident,
                findings,
                samples,
            },
            bad,
        )))
    }
}

/// Keeps at most `max` samples, evenly spread; what is left out adds its
/// counter increases to the next sample kept.
fn thin(all: Vec<Sample>, max: usize) -> Vec<Sample> {
    if all.len() <= max {
        return all;
    }
    let n = all.len();
    // The first, then the last of each of max-1 buckets over the rest.
    let bucket = |i: usize| ((i - 1) * (max - 1)) / (n - 1);
    let keep = |i: usize| i == 0 || i == n - 1 || bucket(i) != bucket(i + 1);
    let mut out: Vec<Sample> = Vec::with_capacity(max);
    let mut carry: BTreeMap<String, u64> = BTreeMap::new();
    for (i, mut s) in all.into_iter().enumerate() {
        if keep(i) {
            for (k, v) in std::mem::take(&mut carry) {
                *s.deltas.entry(k).or_default() += v;
            }
            out.push(s);
        } else {
            for (k, v) in s.deltas {
                *carry.entry(k).or_default() += v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_the_bound_and_the_sums() {
        let all: Vec<Sample> = (0..10_001)
            .map(|i| Sample {
                host: "db".into(),
                at_ms: i,
                deltas: [("TcpExt.ListenOverflows".to_string(), 1)].into(),
                listeners: vec![],
            })
            .collect();
        let t = thin(all, 2_000);
        assert!(t.len() <= 2_000 && t.len() >= 1_999, "{}", t.len());
        assert_eq!(t.first().unwrap().at_ms, 0);
        assert_eq!(t.last().unwrap().at_ms, 10_000);
        let sum: u64 = t.iter().map(|s| s.deltas["TcpExt.ListenOverflows"]).sum();
        assert_eq!(sum, 10_001);
    }
}
