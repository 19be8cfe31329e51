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

/// Columns added after the first schema: added to older databases at open.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("listener", "TEXT"),
    ("server_pid", "INTEGER"),
    ("server_process", "TEXT"),
    ("server_cmdline", "TEXT"),
    ("explanation", "TEXT"),
    ("silent_ms", "INTEGER"),
    ("in_accept_queue", "INTEGER"),
    ("server_uid", "INTEGER"),
];

/// The columns that identify a finding's row while it is current.
fn key(f: &Finding) -> (String, String, String, String, String, i64) {
    (
        f.kind.as_str().to_string(),
        f.client_host.clone(),
        f.server_host.clone(),
        f.tuple.map(|t| t.local().to_string()).unwrap_or_default(),
        f.tuple
            .map(|t| t.remote().to_string())
            .or(f.listener.map(|l| l.to_string()))
            .unwrap_or_default(),
        f.cookie as i64,
    )
}

const KEY_WHERE: &str =
    "kind = ?1 AND client_host = ?2 AND server_host = ?3 AND client = ?4 AND server = ?5 AND cookie = ?6 AND gone_at_ms IS NULL";

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
        let have: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('findings')")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| sql(path, e))?;
        for (col, ty) in ADDED_COLUMNS {
            if !have.iter().any(|h| h == col) {
                conn.execute_batch(&format!("ALTER TABLE findings ADD COLUMN {col} {ty}"))
                    .map_err(|e| sql(path, e))?;
            }
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn record_confirmed(&self, f: &Finding) -> Result<(), StoreError> {
        let k = key(f);
        // A finding restored from this database and confirmed again (or a
        // stalled greeting updated) is the same row: refresh what changes.
        let exists: Option<i64> = self
            .conn
            .query_row(
                &format!("SELECT id FROM findings WHERE {KEY_WHERE}"),
                params![k.0, k.1, k.2, k.3, k.4, k.5],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        if let Some(id) = exists {
            self.conn
                .execute(
                    "UPDATE findings SET explanation = ?1, silent_ms = ?2 WHERE id = ?3",
                    params![f.explanation, f.silent_ms, id],
                )
                .map_err(|e| sql(&self.path, e))?;
            return Ok(());
        }
        let p = f.process.as_ref();
        let sp = f.server_process.as_ref();
        self.conn
            .execute(
                "INSERT INTO findings (kind, client_host, server_host, client, server, cookie, pid, process, cmdline, uid,
                                       keepalive, first_seen_ms, confirmed_at_ms, listener, server_pid, server_process,
                                       server_cmdline, explanation, silent_ms, in_accept_queue, server_uid)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
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
                    f.listener.map(|l| l.to_string()),
                    sp.map(|p| p.pid),
                    sp.map(|p| p.comm.clone()),
                    sp.map(|p| p.cmdline.clone()),
                    f.explanation,
                    f.silent_ms,
                    f.in_accept_queue,
                    sp.map(|p| p.uid),
                ],
            )
            .map_err(|e| sql(&self.path, e))?;
        Ok(())
    }

    pub fn record_gone(&self, f: &Finding, at_ms: i64, reason: GoneReason) -> Result<(), StoreError> {
        let k = key(f);
        self.conn
            .execute(
                &format!("UPDATE findings SET gone_at_ms = ?7, gone_reason = ?8 WHERE {KEY_WHERE}"),
                params![k.0, k.1, k.2, k.3, k.4, k.5, at_ms, reason.as_str()],
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
                "SELECT id, kind, client, server, client_host, server_host, cookie, pid, process, cmdline, uid,
                        keepalive, first_seen_ms, confirmed_at_ms, listener, server_pid, server_process, server_cmdline,
                        explanation, silent_ms, in_accept_queue, server_uid
                 FROM findings WHERE gone_at_ms IS NULL ORDER BY id",
            )
            .map_err(|e| sql(&self.path, e))?;
        let mut rows = stmt.query([]).map_err(|e| sql(&self.path, e))?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        while let Some(r) = rows.next().map_err(|e| sql(&self.path, e))? {
            let row = (|| -> rusqlite::Result<Result<Finding, String>> {
                let id: i64 = r.get(0)?;
                let kind: String = r.get(1)?;
                let client: String = r.get(2)?;
                let server: String = r.get(3)?;
                let Some(kind) = FindingKind::parse(&kind) else {
                    return Ok(Err(format!("row {id}: unknown kind {kind:?}")));
                };
                let tuple = match kind {
                    FindingKind::ListenerAtRisk => None,
                    _ => match (parse_endpoint(&client), parse_endpoint(&server)) {
                        (Some(c), Some(s)) => Some(Tuple::new(c, s)),
                        _ => return Ok(Err(format!("row {id}: client={client:?} server={server:?}"))),
                    },
                };
                let listener: Option<String> = r.get(14)?;
                let listener = listener.as_deref().and_then(parse_endpoint);
                if kind == FindingKind::ListenerAtRisk && listener.is_none() {
                    return Ok(Err(format!("row {id}: listener_at_risk without a listener")));
                }
                let client_proc = match r.get::<_, Option<u32>>(7)? {
                    Some(pid) => Some(Process {
                        pid,
                        comm: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                        cmdline: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                        uid: r.get::<_, Option<u32>>(10)?.unwrap_or_default(),
                    }),
                    None => None,
                };
                let server_proc = match r.get::<_, Option<u32>>(15)? {
                    Some(pid) => Some(Process {
                        pid,
                        comm: r.get::<_, Option<String>>(16)?.unwrap_or_default(),
                        cmdline: r.get::<_, Option<String>>(17)?.unwrap_or_default(),
                        uid: r.get::<_, Option<u32>>(21)?.unwrap_or_default(),
                    }),
                    None => None,
                };
                Ok(Ok(Finding {
                    kind,
                    tuple,
                    listener,
                    cookie: r.get::<_, i64>(6)? as u64,
                    client_host: r.get(4)?,
                    server_host: r.get(5)?,
                    process: client_proc,
                    server_process: server_proc,
                    keepalive: r.get(11)?,
                    first_seen_ms: r.get(12)?,
                    confirmed_at_ms: r.get(13)?,
                    explanation: r.get::<_, Option<String>>(18)?.unwrap_or_default(),
                    silent_ms: r.get::<_, Option<u32>>(19)?.unwrap_or_default(),
                    in_accept_queue: r.get::<_, Option<bool>>(20)?.unwrap_or_default(),
                }))
            })()
            .map_err(|e| sql(&self.path, e))?;
            match row {
                Ok(f) => out.push(f),
                Err(b) => bad.push(b),
            }
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
            tuple: Some(Tuple::new(
                format!("198.18.0.2:{port}").parse().unwrap(),
                "[::ffff:198.18.0.1]:3306".parse().unwrap(),
            )),
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
            explanation: "why".into(),
            ..Default::default()
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
        assert_eq!((n, reason.as_str()), (1, "closed"));
        let total: i64 = s
            .conn
            .query_row("SELECT count(*) FROM findings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(total, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_kind_round_trips_and_old_databases_are_migrated() {
        let dir = std::env::temp_dir().join(format!("halfopen-store-kinds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("h.db");
        {
            // A database with the first schema only.
            std::fs::create_dir_all(&dir).unwrap();
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE findings (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, client TEXT NOT NULL, server TEXT NOT NULL,
                 client_host TEXT NOT NULL, server_host TEXT NOT NULL, cookie INTEGER NOT NULL, pid INTEGER, process TEXT,
                 cmdline TEXT, uid INTEGER, keepalive INTEGER NOT NULL, first_seen_ms INTEGER NOT NULL,
                 confirmed_at_ms INTEGER NOT NULL, gone_at_ms INTEGER, gone_reason TEXT)",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let mut server_only = finding(40003, 9);
        server_only.kind = FindingKind::ServerOnly;
        server_only.process = None;
        server_only.server_process = Some(Process {
            pid: 5,
            comm: "mariadbd".into(),
            cmdline: "mariadbd --back-log=4".into(),
            uid: 27,
        });
        let mut stalled = finding(40004, 10);
        stalled.kind = FindingKind::StalledGreeting;
        stalled.silent_ms = 12_000;
        stalled.in_accept_queue = true;
        let risk = Finding {
            kind: FindingKind::ListenerAtRisk,
            listener: Some("0.0.0.0:3306".parse().unwrap()),
            server_host: "db".into(),
            explanation: "queue 5/4".into(),
            first_seen_ms: 1,
            confirmed_at_ms: 1,
            ..Default::default()
        };
        for f in [&server_only, &stalled, &risk] {
            s.record_confirmed(f).unwrap();
        }
        // A stalled greeting seen again updates its row.
        let mut later = stalled.clone();
        later.silent_ms = 15_000;
        s.record_confirmed(&later).unwrap();
        let (cur, bad) = s.current().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(cur, vec![server_only.clone(), later, risk.clone()]);
        s.record_gone(&risk, 50, GoneReason::Recovered).unwrap();
        assert_eq!(s.current().unwrap().0.len(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_path_is_a_clear_error() {
        let e = Store::open(Path::new("/proc/halfopen/x.db")).err().unwrap().to_string();
        assert!(e.contains("/proc/halfopen"), "{e}");
    }
}
