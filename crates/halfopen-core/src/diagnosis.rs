//! [`Diagnosis`]: what `halfopen explain` says about a listener or host:
//! facts seen, causes, and the concrete changes to make.
use serde::Serialize;

/// One change an operator should make: a setting, its value now and the
/// suggested one, and how to apply it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub setting: String,
    pub current: String,
    pub suggested: String,
    pub how: String,
}

/// A diagnosis of a listener or host: what is seen, why, and what to change
/// (`halfopen explain`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub target: String,
    pub title: String,
    pub facts: Vec<String>,
    pub causes: Vec<String>,
    pub changes: Vec<Change>,
}
