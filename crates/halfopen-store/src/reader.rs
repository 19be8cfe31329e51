//! The read side: its own connection to the database (WAL lets it read
//! while the writer writes), so that reads never wait behind the engine's
//! queue or the writer's.
use crate::row::{finding_from_row, COLUMNS};
use crate::{sql, StoreError};
use halfopen_core::Finding;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

pub struct StoreReader {
    conn: Connection,
    path: PathBuf,
}

impl StoreReader {
    /// Opens an existing, migrated database read-only.
    pub(crate) fn open(path: &Path) -> Result<StoreReader, StoreError> {
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

    /// Findings not yet gone, oldest first. Rows that cannot be read back
    /// (edited by hand) are returned as descriptions, not silently skipped.
    pub fn current(&self) -> Result<(Vec<Finding>, Vec<String>), StoreError> {
        let e = |err| sql(&self.path, err);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM findings WHERE gone_at_ms IS NULL ORDER BY id"
            ))
            .map_err(e)?;
        let mut rows = stmt.query([]).map_err(e)?;
        let mut out = Vec::new();
        let mut bad = Vec::new();
        while let Some(r) = rows.next().map_err(e)? {
            match finding_from_row(r).map_err(e)? {
                Ok(f) => out.push(f),
                Err(b) => bad.push(b),
            }
        }
        Ok((out, bad))
    }
}
