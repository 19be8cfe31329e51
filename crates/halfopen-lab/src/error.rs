//! The crate's one error type, [`LabError`], shared by the lab (namespaces, processes, `ss`) and the
//! lab processes (greet-server, burst, churn).

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, using or tearing down a lab, or inside a lab process.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Labs create network namespaces, veth pairs and a bridge: that needs root.
    #[error(
        "root is required to build a lab: it creates network namespaces, veth pairs and a bridge \
         (CAP_SYS_ADMIN and CAP_NET_ADMIN); running as uid {uid}"
    )]
    NotRoot {
        /// The effective uid we run as.
        uid: u32,
    },

    /// A caller-given value (tag, host name, address, duration, rate...) is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// What kind of value it is ("tag", "host name", "address"...).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: String,
    },

    /// The lab has no host of that name.
    #[error("no host named {0:?} in this lab")]
    UnknownHost(String),

    /// A program could not be started at all.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why exec/fork failed.
        #[source]
        source: std::io::Error,
    },

    /// A command ran and exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status, printed.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },

    /// A bounded wait ran out.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The bound that was hit.
        timeout: Duration,
    },

    /// A lab process exited while we were waiting for something from it.
    #[error("{what} exited ({status}) before {waited_for}; stderr: {stderr}")]
    Exited {
        /// Which process.
        what: String,
        /// Its exit status, printed.
        status: String,
        /// What we were waiting for.
        waited_for: String,
        /// The tail of its standard error.
        stderr: String,
    },

    /// A line of `ss` output that we do not understand.
    #[error("cannot parse `ss` line {line:?}: {reason}")]
    SsParse {
        /// The offending line.
        line: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A file or process I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, with the path where there is one.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A system call made through nix failed (sockets, signals, rlimits).
    #[error("{context}: {source}")]
    Sys {
        /// What we were doing.
        context: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },

    /// Anything else, said in words (used by helpers built on the lab, such as [`crate::fleet`]).
    #[error("{0}")]
    Other(String),

    /// Teardown could not undo everything; each entry says what is left.
    #[error("teardown of lab {lab} was incomplete: {}", .problems.join("; "))]
    Teardown {
        /// The lab's name prefix (`ho-<tag>-<pid>-<seq>`).
        lab: String,
        /// What failed.
        problems: Vec<String>,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> Self {
        LabError::Sys {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        LabError::Invalid {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }

    /// Where a log file lives, for messages.
    pub(crate) fn io_path(context: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        LabError::io(format!("{context} {}", PathBuf::from(path).display()), source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_root_message_says_root_and_why() {
        let msg = LabError::NotRoot { uid: 1000 }.to_string();
        assert!(msg.contains("root is required"), "{msg}");
        assert!(msg.contains("network namespaces"), "{msg}");
    }

    #[test]
    fn teardown_lists_every_problem() {
        let msg = LabError::Teardown {
            lab: "ho-x-1-0".into(),
            problems: vec!["a".into(), "b".into()],
        }
        .to_string();
        assert!(msg.ends_with("a; b"), "{msg}");
    }
}
