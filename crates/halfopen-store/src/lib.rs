//! halfopen-store: the SQLite record of findings, for restarts and
//! postmortems (`sqlite3 PATH 'select * from findings'`).
//!
//! - [`schema`]: the schema as numbered migrations (`PRAGMA user_version`);
//!   every older database is brought up to date at open, and a database from
//!   a newer halfopen is refused.
//! - [`writer`]: one thread that owns the write connection, fed by a bounded
//!   queue whose fullness is counted ([`StoreWriter`]).
//! - [`reader`]: a separate read connection ([`StoreReader`]), so reads
//!   never wait behind the engine or the writer.
//! - [`row`]: how a finding maps to a row and back.
pub mod reader;
pub mod row;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};

pub use reader::StoreReader;
pub use writer::{FlushTimeout, StoreCmd, StoreConfig, StoreWriter, WriterStats};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for the database {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("database {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error(
        "database {path} has schema version {found}, newer than this halfopen knows ({known}): it was written by a newer \
         halfopen. Upgrade halfopen, or point --db at another file"
    )]
    FutureSchema { path: PathBuf, found: i64, known: i64 },
    #[error("cannot start the store writer thread: {0}")]
    Thread(std::io::Error),
}

pub(crate) fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (creating it and its directory if needed) and migrates the database
/// at `path`; returns the writer (its thread started, `queue` commands deep)
/// and a reader on its own connection. The default incident gap.
pub fn open(path: &Path, queue: usize) -> Result<(StoreWriter, StoreReader), StoreError> {
    open_with(
        path,
        StoreConfig {
            queue,
            ..Default::default()
        },
    )
}

/// [`open`] with every setting.
pub fn open_with(path: &Path, config: StoreConfig) -> Result<(StoreWriter, StoreReader), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let conn = schema::open_migrated(path)?;
    let reader = StoreReader::open(path)?;
    let writer = StoreWriter::start(conn, path.to_path_buf(), config)?;
    Ok((writer, reader))
}
