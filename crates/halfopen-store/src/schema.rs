//! The schema, as numbered migrations. `PRAGMA user_version` holds the
//! number of the last one applied; opening a database applies the ones it
//! lacks, each in a transaction, and refuses a database whose version is
//! newer than [`LATEST`] (a newer halfopen wrote it: writing to it would fail
//! or corrupt it).
//!
//! History:
//! - 0: no version recorded. Either an empty file, or a database from before
//!   migrations were numbered: the `findings` table with the first 16
//!   columns, and possibly some of the columns added later.
//! - 1: `findings` with every column of halfopen 0.1 (listener, both
//!   processes, explanation, silent_ms, in_accept_queue, server_uid) and its
//!   indexes.
//! - 2: `evidence` (JSON of halfopen_core::Evidence): findings keep the data
//!   they were confirmed on; `explanation` stays, rendered from it.
//! - 3: postmortems. `findings.incident` (halfopen-history's incident id)
//!   and `findings.server_port` (the incident key's port), filled for the
//!   rows already there by the same grouping; the `samples` table (a host's
//!   counter increases and listeners at one report, JSON); indexes for
//!   time windows and incidents.
use crate::row::{stored_from_row, STORED_COLUMNS};
use crate::{sql, StoreError};
use rusqlite::Connection;
use std::path::Path;

/// The schema version this halfopen writes.
pub const LATEST: i64 = 3;

/// Version 1 from nothing.
const V1: &str = "
CREATE TABLE IF NOT EXISTS findings (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL,
    client          TEXT    NOT NULL,
    server          TEXT    NOT NULL,
    client_host     TEXT    NOT NULL,
    server_host     TEXT    NOT NULL,
    cookie          INTEGER NOT NULL,
    pid             INTEGER,
    process         TEXT,
    cmdline         TEXT,
    uid             INTEGER,
    keepalive       INTEGER NOT NULL,
    first_seen_ms   INTEGER NOT NULL,
    confirmed_at_ms INTEGER NOT NULL,
    gone_at_ms      INTEGER,
    gone_reason     TEXT,
    listener        TEXT,
    server_pid      INTEGER,
    server_process  TEXT,
    server_cmdline  TEXT,
    explanation     TEXT,
    silent_ms       INTEGER,
    in_accept_queue INTEGER,
    server_uid      INTEGER
);
CREATE INDEX IF NOT EXISTS findings_current ON findings (gone_at_ms);
CREATE INDEX IF NOT EXISTS findings_key ON findings (client_host, client, cookie);
";

/// Columns added to `findings` after its first 16, before versions were
/// recorded: a version-0 database may have any prefix of them.
const V1_ADDED_COLUMNS: &[(&str, &str)] = &[
    ("listener", "TEXT"),
    ("server_pid", "INTEGER"),
    ("server_process", "TEXT"),
    ("server_cmdline", "TEXT"),
    ("explanation", "TEXT"),
    ("silent_ms", "INTEGER"),
    ("in_accept_queue", "INTEGER"),
    ("server_uid", "INTEGER"),
];

fn migrate_to_1(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(V1)?;
    let have: Vec<String> = c
        .prepare("SELECT name FROM pragma_table_info('findings')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (col, ty) in V1_ADDED_COLUMNS {
        if !have.iter().any(|h| h == col) {
            c.execute_batch(&format!("ALTER TABLE findings ADD COLUMN {col} {ty}"))?;
        }
    }
    Ok(())
}

fn migrate_to_2(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("ALTER TABLE findings ADD COLUMN evidence TEXT")
}

const V3: &str = "
ALTER TABLE findings ADD COLUMN incident TEXT;
ALTER TABLE findings ADD COLUMN server_port INTEGER;
CREATE INDEX IF NOT EXISTS findings_incident ON findings (incident);
CREATE INDEX IF NOT EXISTS findings_listener ON findings (server_host, server_port, first_seen_ms);
CREATE INDEX IF NOT EXISTS findings_first_seen ON findings (first_seen_ms);
CREATE TABLE IF NOT EXISTS samples (
    id        INTEGER PRIMARY KEY,
    host      TEXT    NOT NULL,
    at_ms     INTEGER NOT NULL,
    deltas    TEXT    NOT NULL,
    listeners TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_host_time ON samples (host, at_ms);
CREATE INDEX IF NOT EXISTS samples_time ON samples (at_ms);
";

fn migrate_to_3(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(V3)?;
    // The rows already there get their incidents by the rule new rows will
    // follow. Rows that do not read back (edited by hand) keep none.
    let mut all = Vec::new();
    {
        let mut stmt = c.prepare(&format!("SELECT {STORED_COLUMNS} FROM findings"))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            if let Ok(f) = stored_from_row(r)? {
                all.push(f);
            }
        }
    }
    halfopen_history::group(&mut all, halfopen_history::DEFAULT_GAP_MS);
    let mut up = c.prepare("UPDATE findings SET incident = ?1, server_port = ?2 WHERE id = ?3")?;
    for f in &all {
        let port = halfopen_history::IncidentKey::of(&f.finding).port;
        up.execute(rusqlite::params![f.incident, port, f.id])?;
    }
    Ok(())
}

/// Migration `n` takes a database from version n-1 to n.
const MIGRATIONS: &[fn(&Connection) -> rusqlite::Result<()>] = &[migrate_to_1, migrate_to_2, migrate_to_3];

/// The database's schema version.
pub fn version(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Opens `path` for writing and brings it to [`LATEST`].
pub fn open_migrated(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(|e| sql(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| sql(path, e))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        .map_err(|e| sql(path, e))?;
    let found = version(&conn).map_err(|e| sql(path, e))?;
    if found > LATEST {
        return Err(StoreError::FutureSchema {
            path: path.to_path_buf(),
            found,
            known: LATEST,
        });
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = i as i64 + 1;
        let tx = conn.transaction().map_err(|e| sql(path, e))?;
        m(&tx).map_err(|e| sql(path, e))?;
        tx.pragma_update(None, "user_version", to).map_err(|e| sql(path, e))?;
        tx.commit().map_err(|e| sql(path, e))?;
        // A new database is not news; an existing one brought up to date is.
        if found > 0 {
            tracing::info!(db = %path.display(), version = to, "database schema migrated");
        }
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(c: &Connection) -> Vec<String> {
        c.prepare("SELECT name FROM pragma_table_info('findings')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("halfopen-schema-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("h.db")
    }

    /// The first schema of all (16 columns, no version).
    const FIRST: &str = "CREATE TABLE findings (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, client TEXT NOT NULL,
        server TEXT NOT NULL, client_host TEXT NOT NULL, server_host TEXT NOT NULL, cookie INTEGER NOT NULL,
        pid INTEGER, process TEXT, cmdline TEXT, uid INTEGER, keepalive INTEGER NOT NULL,
        first_seen_ms INTEGER NOT NULL, confirmed_at_ms INTEGER NOT NULL, gone_at_ms INTEGER, gone_reason TEXT)";

    #[test]
    fn every_older_version_is_brought_to_the_latest() {
        // version 0, first schema; version 0 with some added columns (as
        // halfopen 0.1 left it mid-history); version 1 (V1 applied and numbered).
        let first = tmp("first");
        Connection::open(&first).unwrap().execute_batch(FIRST).unwrap();
        let partial = tmp("partial");
        {
            let c = Connection::open(&partial).unwrap();
            c.execute_batch(FIRST).unwrap();
            c.execute_batch(
                "ALTER TABLE findings ADD COLUMN listener TEXT; ALTER TABLE findings ADD COLUMN server_pid INTEGER",
            )
            .unwrap();
        }
        let v1 = tmp("v1");
        {
            let c = Connection::open(&v1).unwrap();
            migrate_to_1(&c).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO findings (kind, client, server, client_host, server_host, cookie, keepalive, first_seen_ms,
                 confirmed_at_ms, explanation) VALUES ('client_only', '198.18.0.2:1', '198.18.0.1:3306', 'app', 'db', 7, 0,
                 1, 2, 'old words')",
                [],
            )
            .unwrap();
        }
        let fresh = tmp("fresh");
        for p in [&first, &partial, &v1, &fresh] {
            let c = open_migrated(p).unwrap();
            assert_eq!(version(&c).unwrap(), LATEST, "{}", p.display());
            let cols = columns(&c);
            assert_eq!(cols.len(), 27, "{}: {cols:?}", p.display());
            assert_eq!(&cols[24..], ["evidence", "incident", "server_port"]);
            drop(c);
            // Opening again changes nothing.
            assert_eq!(columns(&open_migrated(p).unwrap()).len(), 27);
        }
        let c = open_migrated(&v1).unwrap();
        let kept: (String, String, u16) = c
            .query_row("SELECT explanation, incident, server_port FROM findings", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(
            kept,
            ("old words".to_string(), "db:3306@19700101T000000Z".to_string(), 3306),
            "rows survive migrations, and get their incident"
        );
    }

    #[test]
    fn a_database_from_a_newer_halfopen_is_refused() {
        let p = tmp("future");
        Connection::open(&p)
            .unwrap()
            .pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let e = open_migrated(&p).unwrap_err().to_string();
        assert!(
            e.contains("schema version 4, newer than this halfopen knows (3)"),
            "{e}"
        );
    }
}
