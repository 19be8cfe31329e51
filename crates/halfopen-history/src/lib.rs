//! halfopen-history: what happened, from what the store kept. Pure: plain
//! data in, plain data out; the store and the reconciler do the I/O.
//!
//! - [`key`]: which server listener a finding belongs to ([`IncidentKey`])
//!   and incident ids (`HOST:PORT@START`).
//! - [`group`]: which incident a new finding joins ([`assign`]), and the
//!   same rule over a whole set of findings ([`group()`]) for databases
//!   written before incidents existed.
//! - [`summary`]: an incident's start, end, peak, kinds, client processes,
//!   counters and how it ended ([`summarize`]).
//! - [`filter`]: which findings `halfopen history` lists ([`Filter`]).
//! - [`window`]: the times operators type (`2h`, `7d`, RFC 3339).
//!
//! Invariants: an incident's findings share one server host and port; on
//! one key, consecutive incidents are separated by more than the gap (the
//! end of every finding of the first, or its still being current, to the
//! first sighting of the next); an incident's id never changes once given.
pub mod filter;
pub mod group;
pub mod key;
pub mod summary;
pub mod window;

pub use filter::{Filter, ServerFilter, ServerFilterError};
pub use group::{assign, group, Latest};
pub use key::{incident_id, parse_incident_id, IncidentKey};
pub use summary::summarize;
pub use window::{parse_time, TimeError};

/// Findings on one listener separated by less than this belong to one
/// incident (5 minutes), ms.
pub const DEFAULT_GAP_MS: i64 = 5 * 60 * 1000;

#[cfg(test)]
pub(crate) mod test_support;
