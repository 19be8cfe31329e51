//! The SQLite record of findings: every confirmed finding with when it was
//! first seen, confirmed and gone, its hosts and its client process; read
//! back at start so current findings survive a restart, and kept for
//! postmortems (`sqlite3 PATH 'select * from findings'`).
use crate::engine::{Finding, FindingKind, GoneReason};
use halfopen_core::{parse_endpoint, Process, Tuple};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for the database {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
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
    gone_reason     TEXT
);
CREATE INDEX IF NOT EXISTS findings_current ON findings (gone_at_ms);
CREATE INDEX IF NOT EXISTS findings_key ON findings (client_host, client, cookie);
";

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(|e| sql(path, e))?;
        conn.execute_batch(SCHEMA).map_err(|e| sql(path, e))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn record_confirmed(&self, f: &Finding) -> Result<(), StoreError> {
        // A finding restored from this database and confirmed again is the
        // same row: keep it.
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM findings WHERE client_host = ?1 AND client = ?2 AND cookie = ?3 AND gone_at_ms IS NULL",
                params![f.client_host, f.tuple.local().to_string(), f.cookie as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        if exists.is_some() {
            return Ok(());
        }
        let p = f.process.as_ref();
        self.conn
            .execute(
                "INSERT INTO findings (kind, client, server, client_host, server_host, cookie, pid, process, cmdline, uid,
                                       keepalive, first_seen_ms, confirmed_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    f.kind.as_str(),
                    f.tuple.local().to_string(),
                    f.tuple.remote().to_string(),
                    f.client_host,
                    f.server_host,
                    f.cookie as i64,
                    p.map(|p| p.pid),
                    p.map(|p| p.comm.clone()),
                    p.map(|p| p.cmdline.clone()),
                    p.map(|p| p.uid),
                    f.keepalive,
                    f.first_seen_ms,
                    f.confirmed_at_ms,
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(())
    }

    pub fn record_gone(&self, f: &Finding, at_ms: i64, reason: GoneReason) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE findings SET gone_at_ms = ?1, gone_reason = ?2
                 WHERE client_host = ?3 AND client = ?4 AND cookie = ?5 AND gone_at_ms IS NULL",
                params![
                    at_ms,
                    reason.as_str(),
                    f.client_host,
                    f.tuple.local().to_string(),
                    f.cookie as i64
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(())
    }

    /// Findings not yet gone. Rows that cannot be read back (edited by hand)
    /// are reported, not silently skipped.
    pub fn current(&self) -> Result<(Vec<Finding>, Vec<String>), StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT kind, client, server, client_host, server_host, cookie, pid, process, cmdline, uid,
                        keepalive, first_seen_ms, confirmed_at_ms, id
                 FROM findings WHERE gone_at_ms IS NULL ORDER BY id",
            )
            .map_err(|e| sql(&self.path, e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<u32>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<u32>>(9)?,
                    r.get::<_, bool>(10)?,
                    r.get::<_, i64>(11)?,
                    r.get::<_, i64>(12)?,
                    r.get::<_, i64>(13)?,
                ))
            })
            .map_err(|e| sql(&self.path, e))?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for row in rows {
            let (kind, client, server, ch, sh, cookie, pid, comm, cmdline, uid, ka, fs, ca, id) =
                row.map_err(|e| sql(&self.path, e))?;
            let (Some(kind), Some(c), Some(s)) = (
                FindingKind::parse(&kind),
                parse_endpoint(&client),
                parse_endpoint(&server),
            ) else {
                bad.push(format!("row {id}: kind={kind} client={client} server={server}"));
                continue;
            };
            out.push(Finding {
                kind,
                tuple: Tuple::new(c, s),
                cookie: cookie as u64,
                client_host: ch,
                server_host: sh,
                process: pid.map(|pid| Process {
                    pid,
                    comm: comm.unwrap_or_default(),
                    cmdline: cmdline.unwrap_or_default(),
                    uid: uid.unwrap_or_default(),
                }),
                keepalive: ka,
                first_seen_ms: fs,
                confirmed_at_ms: ca,
            });
        }
        Ok((out, bad))
    }
}

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(port: u16, cookie: u64) -> Finding {
        Finding {
            kind: FindingKind::ClientOnly,
            tuple: Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "[::ffff:198.18.0.1]:3306".parse().unwrap(),
            ),
            cookie,
            client_host: "app".into(),
            server_host: "db".into(),
            process: Some(Process {
                pid: 7,
                comm: "java".into(),
                cmdline: "java -jar x".into(),
                uid: 1000,
            }),
            keepalive: true,
            first_seen_ms: 10,
            confirmed_at_ms: 20,
        }
    }

    #[test]
    fn survives_reopen_and_gone_is_recorded() {
        let dir = std::env::temp_dir().join(format!("halfopen-store-{}", std::process::id()));
        let path = dir.join("sub/halfopen.db");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&path).unwrap();
            s.record_confirmed(&finding(40001, u64::MAX)).unwrap();
            s.record_confirmed(&finding(40001, u64::MAX)).unwrap(); // idempotent
            s.record_confirmed(&finding(40002, 5)).unwrap();
            s.record_gone(&finding(40002, 5), 30, GoneReason::ClientClosed).unwrap();
        }
        let s = Store::open(&path).unwrap();
        let (cur, bad) = s.current().unwrap();
        assert!(bad.is_empty());
        assert_eq!(cur, vec![finding(40001, u64::MAX)]);
        let (n, reason): (i64, String) = s
            .conn
            .query_row(
                "SELECT count(*), max(gone_reason) FROM findings WHERE gone_at_ms = 30",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n, reason.as_str()), (1, "client_closed"));
        let total: i64 = s
            .conn
            .query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = Store::open(Path::new("/proc/halfopen/x.db")).err().unwrap().to_string();
        assert!(e.contains("/proc/halfopen"), "{e}");
    }
}
