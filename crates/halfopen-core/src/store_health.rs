//! [`StoreHealth`]: whether the reconciler's database is being written. The
//! engine never sees the store: the reconciler fills this from its writer's
//! counters and hands it out with the coverage, so that every answer can say
//! when what it shows is not being recorded.

/// The database writer as the reconciler sees it at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// Wall time (Unix ms) since which writes fail and are retried; None
    /// while they succeed.
    pub failing_since_ms: Option<i64>,
    /// The last write error (SQLite's words, with the database path), kept
    /// while writes fail.
    pub error: Option<String>,
    /// Records (findings, their ends, samples) queued and not yet written.
    pub pending: u64,
    /// How many records the queue holds before it refuses more.
    pub capacity: u64,
    /// Records refused since start because the queue was full. The current
    /// findings are written again once the writer catches up, so a refused
    /// confirmation is not lost for good; a refused sample is.
    pub refused: u64,
    /// Records written since start.
    pub written: u64,
    /// Records dropped since start because SQLite refused them for good
    /// (an error that retrying cannot fix, e.g. a constraint).
    pub dropped: u64,
}

impl StoreHealth {
    /// Whether writes fail now.
    pub fn failing(&self) -> bool {
        self.failing_since_ms.is_some()
    }
}
