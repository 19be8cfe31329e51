//! Conversions between halfopen.v1 messages and halfopen-core domain types:
//! the one place that knows how a domain value maps to the wire, so both ends
//! of the wire agree by construction. Decoding never panics on bad input: a
//! value that does not decode is None (or skipped and counted).
//!
//! - [`socket`]: tuples, sides, sockets, processes, listeners, addresses.
//! - [`report`]: Hello, Report, lookups and their answers, the Config (Wants).
//! - [`finding`]: findings with their evidence.
//! - [`host`]: host views.
//! - [`diagnosis`]: `explain` diagnoses.
//! - [`history`]: stored findings, incidents and samples (postmortems).
pub mod diagnosis;
pub mod finding;
pub mod history;
pub mod host;
pub mod report;
pub mod socket;

pub use diagnosis::*;
pub use finding::*;
pub use history::*;
pub use host::*;
pub use report::*;
pub use socket::*;

/// Decodes each item; those that do not decode are counted in `bad` and skipped.
pub fn decode_all<T, U>(items: &[T], bad: &mut usize, decode: impl Fn(&T) -> Option<U>) -> Vec<U> {
    items
        .iter()
        .filter_map(|x| {
            let d = decode(x);
            *bad += d.is_none() as usize;
            d
        })
        .collect()
}
