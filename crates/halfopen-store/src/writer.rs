//! The writer: one thread owns the write connection and applies commands
//! from a bounded queue, in order. The engine never waits on SQLite: a full
//! queue refuses the command, and the refusal is counted (and visible in the
//! stats), never silent.
//!
//! A command the queue accepted is never dropped because a write failed for
//! a reason that can pass: a full disk (SQLITE_FULL), a lock another client
//! holds past the busy timeout (SQLITE_BUSY/LOCKED), an I/O error, a
//! read-only or unopenable file. The writer keeps the command and retries it
//! with backoff (100 ms doubling to 5 s) until it succeeds; meanwhile the
//! queue fills and further commands are refused and counted. The failure is
//! logged once with what it means, then once a minute while it lasts, and
//! once when the writer has caught up; [`WriterStats::health`] shows it to
//! the CLI. Errors that retrying cannot fix (a constraint, a corrupt file)
//! drop the command, counted and logged.
use crate::row::{finding_from_row, key, Key, COLUMNS, KEY_WHERE};
use crate::{sql, StoreError};
use halfopen_core::{Finding, FindingKind, GoneReason, Sample, StoreHealth};
use halfopen_history::{IncidentKey, Latest};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What the writer does.
#[derive(Debug)]
pub enum StoreCmd {
    /// A finding was confirmed (or confirmed again: its row is refreshed,
    /// its first sighting and incident kept), with its explanation as
    /// rendered now.
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
    /// Brings the database in line with the engine after commands were
    /// refused (queue full): every finding of `current` (with its
    /// explanation) is recorded as [`StoreCmd::Confirmed`] does, and every
    /// row still current in the database but not in `current` (its end was
    /// refused) is ended at `at_ms` (the end is known only to have happened
    /// by then), as `closed` for connections and `recovered` for listeners.
    CatchUp {
        current: Vec<(Finding, String)>,
        at_ms: i64,
    },
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
    /// How long one write waits for a lock another client holds before it
    /// fails (and is retried): SQLite's busy timeout.
    pub busy_timeout: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            queue: 4096,
            incident_gap_ms: halfopen_history::DEFAULT_GAP_MS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }
}

/// SQLite's busy timeout on the write connection: a lock held longer makes
/// the write fail, be retried, and show as failing.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait before a failed write is tried again; it doubles up to
/// [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// While writes fail, the failure is logged again this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Counters of the writer, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commands applied.
    pub written: AtomicU64,
    /// Commands refused because the queue was full (or the writer stopped).
    pub refused_full: AtomicU64,
    /// Commands dropped because SQLite refused them for a reason retrying
    /// cannot fix (logged).
    pub failed: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Commands queued and not yet applied (the one being retried included).
    pub pending: AtomicU64,
    /// The queue's capacity.
    pub capacity: AtomicU64,
    /// Whether the command at the head fails now and is being retried.
    pub retrying: AtomicBool,
    /// Wall time (Unix ms) since which writes fail; 0 while they succeed
    /// (also while the backlog of a past failure is still being written).
    pub failing_since_ms: AtomicI64,
    /// The last write error while writes fail; None while they succeed.
    pub last_error: Mutex<Option<String>>,
    /// Samples written.
    pub samples: AtomicU64,
    /// Rows deleted by retention (findings and samples).
    pub pruned: AtomicU64,
    /// Rows ended by a catch-up (their end had been refused).
    pub caught_up_ends: AtomicU64,
}

impl WriterStats {
    /// A snapshot for the CLI (see [`StoreHealth`]).
    pub fn health(&self) -> StoreHealth {
        let since = self.failing_since_ms.load(Ordering::Relaxed);
        let failing = since != 0;
        StoreHealth {
            failing_since_ms: failing.then_some(since),
            error: if failing {
                self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
            } else {
                None
            },
            pending: self.pending.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
            refused: self.refused_full.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Whether writes fail now.
    pub fn is_failing(&self) -> bool {
        self.retrying.load(Ordering::Relaxed)
    }
}

/// The handle to the writer thread. Dropping every clone stops the thread
/// once the queue is drained.
#[derive(Clone, Debug)]
pub struct StoreWriter {
    tx: SyncSender<StoreCmd>,
    stats: Arc<WriterStats>,
}

/// [`StoreWriter::flush_within`] ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("{pending} records not yet written to the database after {waited:?}{}", match .error { Some(e) => format!(" (writes fail: {e})"), None => String::new() })]
pub struct FlushTimeout {
    pub pending: u64,
    pub waited: Duration,
    pub error: Option<String>,
}

impl StoreWriter {
    pub(crate) fn start(conn: Connection, path: PathBuf, config: StoreConfig) -> Result<StoreWriter, StoreError> {
        let cap = config.queue.max(1);
        let (tx, rx) = sync_channel(cap);
        let stats = Arc::new(WriterStats::default());
        stats.capacity.store(cap as u64, Ordering::Relaxed);
        let s = stats.clone();
        conn.busy_timeout(config.busy_timeout).map_err(|e| sql(&path, e))?;
        std::thread::Builder::new()
            .name("halfopen-store".into())
            .spawn(move || Writer::new(conn, path, config.incident_gap_ms, s).run(rx))
            .map_err(StoreError::Thread)?;
        Ok(StoreWriter { tx, stats })
    }

    /// Queues a command. Returns false (and counts it) when the queue is
    /// full or the writer has stopped.
    pub fn send(&self, cmd: StoreCmd) -> bool {
        // Counted before it is queued, so the writer never sees it go below 0.
        self.stats.pending.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(cmd) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until everything queued so far is applied (however long
    /// failing writes take; see [`StoreWriter::flush_within`]).
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(StoreCmd::Flush(tx)).is_ok() {
            let _ = rx.recv(); // Err only if the thread died: nothing to wait for
        }
    }

    /// Waits at most `timeout` until everything queued so far is applied.
    /// Blocks the calling thread.
    pub fn flush_within(&self, timeout: Duration) -> Result<(), FlushTimeout> {
        let start = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut cmd = StoreCmd::Flush(tx);
        let late = |s: &WriterStats| FlushTimeout {
            pending: s.pending.load(Ordering::Relaxed),
            waited: start.elapsed(),
            error: s.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        };
        // A full queue: wait for room, within the time.
        loop {
            match self.tx.try_send(cmd) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Ok(()), // nothing left to write
                Err(TrySendError::Full(c)) => {
                    if start.elapsed() >= timeout {
                        return Err(late(&self.stats));
                    }
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        match rx.recv_timeout(timeout.saturating_sub(start.elapsed())) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(late(&self.stats)),
        }
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The counters, shared (for metrics and the CLI's answers).
    pub fn stats_arc(&self) -> Arc<WriterStats> {
        self.stats.clone()
    }
}

/// Why writes fail, as far as it tells the operator what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trouble {
    Full,
    Locked,
    Io,
    Unwritable,
}

impl Trouble {
    /// What the error means and what happens meanwhile.
    fn meaning(self) -> &'static str {
        match self {
            Trouble::Full => {
                "the disk holding the database is full; findings are kept in memory and written when space returns"
            }
            Trouble::Locked => {
                "another program holds a lock on the database (an sqlite3 shell in a transaction?); findings are kept \
                 in memory and written when it lets go"
            }
            Trouble::Io => {
                "the disk holding the database fails to write; findings are kept in memory and written when it works \
                 again"
            }
            Trouble::Unwritable => {
                "the database cannot be written (read-only file system, permissions, or the file was removed); \
                 findings are kept in memory and written when it can be"
            }
        }
    }
}

/// Whether a failed write may succeed later, and why it failed. None: it
/// never will (the command is dropped, counted).
fn trouble(e: &rusqlite::Error) -> Option<Trouble> {
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    match f.code {
        ErrorCode::DiskFull => Some(Trouble::Full),
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::FileLockingProtocolFailed => {
            Some(Trouble::Locked)
        }
        ErrorCode::SystemIoFailure | ErrorCode::OutOfMemory | ErrorCode::SchemaChanged => Some(Trouble::Io),
        ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => Some(Trouble::Unwritable),
        _ => None,
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    path: PathBuf,
    gap_ms: i64,
    stats: Arc<WriterStats>,
    /// Since when writes fail, with the count written at that moment.
    outage: Option<Outage>,
}

struct Outage {
    since: Instant,
    written_before: u64,
    last_log: Instant,
    /// Writes succeed again; waiting for the queue to drain to say so.
    recovered: bool,
}

impl Writer {
    fn new(conn: Connection, path: PathBuf, gap_ms: i64, stats: Arc<WriterStats>) -> Writer {
        Writer {
            conn,
            path,
            gap_ms,
            stats,
            outage: None,
        }
    }

    fn run(mut self, rx: Receiver<StoreCmd>) {
        for cmd in rx {
            // Flushes are not counted in `pending` (they are not records).
            if let StoreCmd::Flush(done) = cmd {
                let _ = done.send(()); // the asker may have gone
                continue;
            }
            self.apply_until_done(&cmd);
            self.stats.pending.fetch_sub(1, Ordering::Relaxed);
            self.maybe_caught_up();
        }
    }

    /// Applies one command, retrying for as long as its failure may pass.
    fn apply_until_done(&mut self, cmd: &StoreCmd) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.apply(cmd) {
                Ok(()) => {
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                    self.on_success();
                    return;
                }
                Err(e) => match trouble(&e) {
                    Some(t) => {
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        self.on_failure(t, &e);
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(RETRY_MAX);
                    }
                    None => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            "{}; this record is dropped (retrying cannot fix this error)",
                            sql(&self.path, e)
                        );
                        return;
                    }
                },
            }
        }
    }

    fn on_failure(&mut self, t: Trouble, e: &rusqlite::Error) {
        let text = sql(&self.path, clone_err(e)).to_string();
        *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.clone());
        self.stats.retrying.store(true, Ordering::Relaxed);
        let pending = self.stats.pending.load(Ordering::Relaxed);
        match &mut self.outage {
            Some(o) if !o.recovered => {
                if o.last_log.elapsed() >= LOG_EVERY {
                    o.last_log = Instant::now();
                    tracing::error!(
                        error = %text,
                        queued = pending,
                        refused = self.stats.refused_full.load(Ordering::Relaxed),
                        failing_for = ?Duration::from_secs(o.since.elapsed().as_secs()),
                        "database writes still fail: {}",
                        t.meaning()
                    );
                }
            }
            _ => {
                // A new outage (or one that came back before the queue drained).
                if self.outage.is_none() {
                    self.stats.failing_since_ms.store(wall_ms(), Ordering::Relaxed);
                    self.outage = Some(Outage {
                        since: Instant::now(),
                        written_before: self.stats.written.load(Ordering::Relaxed),
                        last_log: Instant::now(),
                        recovered: false,
                    });
                } else if let Some(o) = &mut self.outage {
                    o.recovered = false;
                    o.last_log = Instant::now();
                    self.stats.failing_since_ms.store(wall_ms(), Ordering::Relaxed);
                }
                tracing::error!(
                    error = %text,
                    queued = pending,
                    "database writes fail: {}; {pending} queued (the queue holds {}, then further records are refused and counted)",
                    t.meaning(),
                    self.stats.capacity.load(Ordering::Relaxed)
                );
            }
        }
    }

    fn on_success(&mut self) {
        if !self.stats.retrying.swap(false, Ordering::Relaxed) {
            return;
        }
        // What the CLI shows: no longer failing, only a backlog (pending).
        self.stats.failing_since_ms.store(0, Ordering::Relaxed);
        *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(o) = &mut self.outage {
            o.recovered = true;
            tracing::info!(
                queued = self.stats.pending.load(Ordering::Relaxed),
                failed_for = ?Duration::from_secs(o.since.elapsed().as_secs()),
                "database writes succeed again; writing what is queued"
            );
        }
    }

    /// Once the queue has drained after an outage: says so, and clears it.
    fn maybe_caught_up(&mut self) {
        let Some(o) = &self.outage else { return };
        if !o.recovered || self.stats.pending.load(Ordering::Relaxed) > 0 {
            return;
        }
        let written = self.stats.written.load(Ordering::Relaxed) - o.written_before;
        tracing::info!(
            written,
            refused = self.stats.refused_full.load(Ordering::Relaxed),
            outage = ?Duration::from_secs(o.since.elapsed().as_secs()),
            "database caught up: {written} written since writes began to fail"
        );
        self.outage = None;
    }

    fn apply(&mut self, cmd: &StoreCmd) -> rusqlite::Result<()> {
        let c = &self.conn;
        match cmd {
            StoreCmd::Confirmed { finding, explanation } => record_confirmed(c, finding, explanation, self.gap_ms),
            StoreCmd::Gone { finding, at_ms, reason } => record_gone(c, finding, *at_ms, *reason),
            StoreCmd::Sample(sample) => record_sample(c, sample).inspect(|_| {
                self.stats.samples.fetch_add(1, Ordering::Relaxed);
            }),
            StoreCmd::Prune { before_ms } => prune(c, *before_ms).map(|n| {
                self.stats.pruned.fetch_add(n, Ordering::Relaxed);
                if n > 0 {
                    tracing::info!(db = %self.path.display(), rows = n, "retention: deleted findings and samples older than the retention");
                }
            }),
            StoreCmd::CatchUp { current, at_ms } => {
                let ended = catch_up(&mut self.conn, current, *at_ms, self.gap_ms)?;
                self.stats.caught_up_ends.fetch_add(ended, Ordering::Relaxed);
                tracing::info!(
                    db = %self.path.display(),
                    current = current.len(),
                    ended,
                    "database brought in line with the current findings after records were refused"
                );
                Ok(())
            }
            StoreCmd::Flush(_) => Ok(()),
        }
    }
}

/// rusqlite::Error is not Clone; the parts that matter for the message are.
fn clone_err(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, m) => rusqlite::Error::SqliteFailure(*f, m.clone()),
        other => rusqlite::Error::ToSqlConversionFailure(other.to_string().into()),
    }
}

/// See [`StoreCmd::CatchUp`]. One transaction: all of it or none (retried).
/// Returns the rows ended.
pub(crate) fn catch_up(
    c: &mut Connection,
    current: &[(Finding, String)],
    at_ms: i64,
    gap_ms: i64,
) -> rusqlite::Result<u64> {
    let tx = c.transaction()?;
    let keep: HashSet<Key> = current.iter().map(|(f, _)| key(f)).collect();
    for (f, explanation) in current {
        record_confirmed(&tx, f, explanation, gap_ms)?;
    }
    let mut stale = Vec::new();
    {
        let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM findings WHERE gone_at_ms IS NULL"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            // Rows that do not read back (edited by hand) are left alone.
            if let Ok(f) = finding_from_row(r)? {
                if !keep.contains(&key(&f)) {
                    stale.push(f);
                }
            }
        }
    }
    for f in &stale {
        let reason = match f.kind {
            FindingKind::ListenerAtRisk | FindingKind::AcceptStalled => GoneReason::Recovered,
            _ => GoneReason::ClientClosed,
        };
        record_gone(&tx, f, at_ms, reason)?;
    }
    tx.commit()?;
    Ok(stale.len() as u64)
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
