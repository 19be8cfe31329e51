//! [`BpfError`]: everything that can go wrong loading, attaching and reading the BPF programs,
//! with what each failure prevents.

use std::io;

/// Why the BPF source cannot run, or stopped working.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// This build of halfopen-bpf has no BPF programs (built without the `bpf` feature).
    #[error(
        "halfopen was built without eBPF support (crate halfopen-bpf without feature `bpf`): use sock_diag polling"
    )]
    NotCompiledIn,
    /// The kernel refused for lack of privilege. `missing` names the capabilities this process
    /// lacks (from CapEff in /proc/self/status); loading tracing programs needs CAP_BPF and
    /// CAP_PERFMON (kernel 5.8+), or CAP_SYS_ADMIN, or root.
    #[error("{what} refused ({source}): needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (root); this process lacks {missing}")]
    PermissionDenied {
        /// What was being done ("loading the BPF programs", "attaching on_state").
        what: String,
        /// E.g. "CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN", or "none of them (an LSM or lockdown refused)".
        missing: String,
        source: io::Error,
    },
    /// The running kernel lacks something the programs need (BTF, a function, a helper).
    #[error("unsupported by this kernel: {what}")]
    Unsupported {
        /// What is missing and what it prevents.
        what: String,
    },
    /// Opening, verifying or loading the BPF object failed. `log` holds the tail of libbpf's
    /// own messages (the verifier log among them).
    #[error("{what}: {source}{}", log_suffix(.log))]
    Load {
        what: String,
        source: io::Error,
        log: String,
    },
    /// Attaching one program failed.
    #[error("attaching {program}: {source}{}", log_suffix(.log))]
    Attach {
        program: String,
        source: io::Error,
        log: String,
    },
    /// A load option is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption { option: &'static str, reason: String },
    /// Polling the ring buffers or reading the counters failed.
    #[error("{what}: {source}")]
    Read { what: &'static str, source: io::Error },
}

fn log_suffix(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("\nlibbpf said:\n{}", log.trim_end())
    }
}
