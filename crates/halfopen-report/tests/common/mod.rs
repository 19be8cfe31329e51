//! What the report's integration tests share: the postmortem fixtures.
pub mod fixture;
