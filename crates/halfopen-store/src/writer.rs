//! The writer: one thread owns the write connection and applies commands
//! from a bounded queue, in order. The engine never waits on SQLite: a full
//! queue refuses the command, and the refusal is counted (and visible in the
//! stats), never silent.
use crate::row::{key, KEY_WHERE};
use crate::{sql, StoreError};
use halfopen_core::{Finding, GoneReason, Sample};
use halfopen_history::{IncidentKey, Latest};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// What the writer does.
#[derive(Debug)]
pub enum StoreCmd {
    /// A finding was confirmed (or confirmed again: its row is refreshed),
    /// with its explanation as rendered now.
    Confirmed { finding: Finding, explanation: String },
    /// A finding is no longer current.
    Gone {
        finding: Finding,
        at_ms: i64,
        reason: GoneReason,
    },
    /// A host's listeners and counter increases at one report.
    Sample(Sample),
    /// Deletes findings that ended before `before_ms` and samples taken
    /// before it (retention). Current findings are never deleted.
    Prune { before_ms: i64 },
    /// Answered once every command queued before it was applied.
    Flush(std::sync::mpsc::Sender<()>),
}

/// How the writer groups and keeps.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Commands the queue holds before it refuses.
    pub queue: usize,
    /// Findings on one listener separated by less than this are one
    /// incident, ms.
    pub incident_gap_ms: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            queue: 4096,
            incident_gap_ms: halfopen_history::DEFAULT_GAP_MS,
        }
    }
}

/// Counters of the writer, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commands applied.
    pub written: AtomicU64,
    /// Commands refused because the queue was full.
    pub refused_full: AtomicU64,
    /// Commands that failed in SQLite (logged).
    pub failed: AtomicU64,
    /// Samples written.
    pub samples: AtomicU64,
    /// Rows deleted by retention (findings and samples).
    pub pruned: AtomicU64,
}

/// The handle to the writer thread. Dropping every clone stops the thread
/// once the queue is drained.
#[derive(Clone, Debug)]
pub struct StoreWriter {
    tx: SyncSender<StoreCmd>,
    stats: Arc<WriterStats>,
}

impl StoreWriter {
    pub(crate) fn start(conn: Connection, path: PathBuf, config: StoreConfig) -> Result<StoreWriter, StoreError> {
        let (tx, rx) = sync_channel(config.queue.max(1));
        let stats = Arc::new(WriterStats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name("halfopen-store".into())
            .spawn(move || run(conn, path, config.incident_gap_ms, rx, s))
            .map_err(StoreError::Thread)?;
        Ok(StoreWriter { tx, stats })
    }

    /// Queues a command. Returns false (and counts it) when the queue is
    /// full or the writer has stopped.
    pub fn send(&self, cmd: StoreCmd) -> bool {
        match self.tx.try_send(cmd) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until everything queued so far is applied.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(StoreCmd::Flush(tx)).is_ok() {
            let _ = rx.recv(); // Err only if the thread died: nothing to wait for
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

fn run(conn: Connection, path: PathBuf, gap_ms: i64, rx: Receiver<StoreCmd>, stats: Arc<WriterStats>) {
    for cmd in rx {
        let r = match &cmd {
            StoreCmd::Confirmed { finding, explanation } => record_confirmed(&conn, finding, explanation, gap_ms),
            StoreCmd::Gone { finding, at_ms, reason } => record_gone(&conn, finding, *at_ms, *reason),
            StoreCmd::Sample(sample) => record_sample(&conn, sample).inspect(|_| {
                stats.samples.fetch_add(1, Ordering::Relaxed);
            }),
            StoreCmd::Prune { before_ms } => prune(&conn, *before_ms).map(|n| {
                stats.pruned.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(db = %path.display(), rows = n, "retention: deleted findings and samples older than the retention");
                }
            }),
            StoreCmd::Flush(done) => {
                let _ = done.send(()); // the asker may have gone
                continue;
            }
        };
        match r {
            Ok(()) => {
                stats.written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{}", sql(&path, e));
            }
        }
    }
}

/// Inserts a confirmed finding; a finding already current in the database
/// (restored, or a stalled greeting seen again) gets its row refreshed.
pub(crate) fn record_confirmed(c: &Connection, f: &Finding, explanation: &str, gap_ms: i64) -> rusqlite::Result<()> {
    let k = key(f);
    let evidence = serde_json::to_string(&f.evidence).unwrap_or_else(|_| "{}".to_string());
    let exists: Option<i64> = c
        .query_row(
            &format!("SELECT id FROM findings WHERE {KEY_WHERE}"),
            params![k.0, k.1, k.2, k.3, k.4, k.5],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = exists {
        c.execute(
            "UPDATE findings SET explanation = ?1, silent_ms = ?2, evidence = ?3 WHERE id = ?4",
            params![explanation, f.evidence.silent_ms, evidence, id],
        )?;
        return Ok(());
    }
    let ikey = IncidentKey::of(f);
    let latest = latest_incident(c, &ikey)?;
    let incident = halfopen_history::assign(latest.as_ref(), &ikey, f.first_seen_ms, gap_ms);
    let p = f.process.as_ref();
    let sp = f.server_process.as_ref();
    c.execute(
        "INSERT INTO findings (kind, client_host, server_host, client, server, cookie, pid, process, cmdline, uid,
                               keepalive, first_seen_ms, confirmed_at_ms, listener, server_pid, server_process,
                               server_cmdline, explanation, silent_ms, in_accept_queue, server_uid, evidence,
                               incident, server_port)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22,
                 ?23, ?24)",
        params![
            k.0,
            k.1,
            k.2,
            k.3,
            k.4,
            k.5,
            p.map(|p| p.pid),
            p.map(|p| p.comm.clone()),
            p.map(|p| p.cmdline.clone()),
            p.map(|p| p.uid),
            f.keepalive,
            f.first_seen_ms,
            f.confirmed_at_ms,
            f.listener_addr().map(|l| l.to_string()),
            sp.map(|p| p.pid),
            sp.map(|p| p.comm.clone()),
            sp.map(|p| p.cmdline.clone()),
            explanation,
            f.evidence.silent_ms,
            f.evidence.in_accept_queue,
            sp.map(|p| p.uid),
            evidence,
            incident,
            ikey.port,
        ],
    )?;
    Ok(())
}

/// The latest incident on a listener: the one whose first finding was seen
/// last, with whether it still has a current finding.
fn latest_incident(c: &Connection, k: &IncidentKey) -> rusqlite::Result<Option<Latest>> {
    let id: Option<String> = c
        .query_row(
            "SELECT incident FROM findings WHERE server_host = ?1 AND server_port = ?2 AND incident IS NOT NULL
             ORDER BY first_seen_ms DESC, id DESC LIMIT 1",
            params![k.server_host, k.port],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let (current, last_end): (i64, Option<i64>) = c.query_row(
        "SELECT COUNT(*) FILTER (WHERE gone_at_ms IS NULL), MAX(gone_at_ms) FROM findings WHERE incident = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Some(Latest {
        id,
        last_end_ms: if current > 0 { None } else { last_end },
    }))
}

pub(crate) fn record_sample(c: &Connection, s: &Sample) -> rusqlite::Result<()> {
    let deltas = serde_json::to_string(&s.deltas).unwrap_or_else(|_| "{}".into());
    let listeners = serde_json::to_string(&s.listeners).unwrap_or_else(|_| "[]".into());
    c.execute(
        "INSERT INTO samples (host, at_ms, deltas, listeners) VALUES (?1, ?2, ?3, ?4)",
        params![s.host, s.at_ms, deltas, listeners],
    )?;
    Ok(())
}

/// Deletes what ended before `before_ms`; returns the rows deleted.
pub(crate) fn prune(c: &Connection, before_ms: i64) -> rusqlite::Result<u64> {
    let f = c.execute(
        "DELETE FROM findings WHERE gone_at_ms IS NOT NULL AND gone_at_ms < ?1",
        params![before_ms],
    )?;
    let s = c.execute("DELETE FROM samples WHERE at_ms < ?1", params![before_ms])?;
    Ok((f + s) as u64)
}

pub(crate) fn record_gone(c: &Connection, f: &Finding, at_ms: i64, reason: GoneReason) -> rusqlite::Result<()> {
    let k = key(f);
    c.execute(
        &format!("UPDATE findings SET gone_at_ms = ?7, gone_reason = ?8 WHERE {KEY_WHERE}"),
        params![k.0, k.1, k.2, k.3, k.4, k.5, at_ms, reason.as_str()],
    )?;
    Ok(())
}
