//! The two capabilities that entering network namespaces depends on, and a
//! reader of the calling thread's effective set (`CapEff:` of
//! /proc/thread-self/status) so that a refusal can say what is missing.
//!
//! What the kernel asks for (checked against the kernel sources):
//! - `setns(fd, CLONE_NEWNET)`: `netns_install` (net/core/net_namespace.c)
//!   requires CAP_SYS_ADMIN both in the user namespace that owns the target
//!   network namespace and in the caller's own user namespace, else EPERM.
//!   Root in the initial user namespace with CAP_SYS_ADMIN passes both for
//!   every namespace; a namespace owned by a user namespace where the caller
//!   lacks it (a rootless container of another user) stays closed even then.
//! - Opening (or `stat`ing: both follow the magic link) `/proc/PID/ns/net`:
//!   `proc_ns_get_link` (fs/proc/namespaces.c) requires
//!   `ptrace_may_access(task, PTRACE_MODE_READ_FSCREDS)`, else EACCES. That
//!   passes for a thread of the caller's own process; otherwise
//!   `__ptrace_may_access` (kernel/ptrace.c) wants the caller's fsuid/fsgid
//!   to equal the target's real, effective and saved uid/gid and the target
//!   to be dumpable, **and** `cap_ptrace_access_check` (security/commoncap.c)
//!   wants the caller's *effective* capabilities to be a superset of the
//!   target's permitted ones; CAP_SYS_PTRACE (in the target's user
//!   namespace) overrides both. So a root process that dropped a capability
//!   (say CAP_SYS_ADMIN) can no longer open the namespace of a full-root
//!   process unless it keeps CAP_SYS_PTRACE. Yama's ptrace_scope does not
//!   apply to read-mode access.
//! - Opening `/run/netns/NAME`: ordinary file permission on the nsfs inode
//!   (mode 0444), no capability.
use std::fmt;
use std::io;

/// A Linux capability that network namespace work needs
/// (numbers from include/uapi/linux/capability.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// CAP_SYS_ADMIN (21): `setns` into a network namespace.
    SysAdmin,
    /// CAP_SYS_PTRACE (19): opening another process's `/proc/PID/ns/net`
    /// when the plain ptrace read check fails.
    SysPtrace,
}

impl Capability {
    /// The capability's bit number.
    pub fn bit(self) -> u32 {
        match self {
            Capability::SysAdmin => 21,
            Capability::SysPtrace => 19,
        }
    }

    /// "CAP_SYS_ADMIN", "CAP_SYS_PTRACE".
    pub fn name(self) -> &'static str {
        match self {
            Capability::SysAdmin => "CAP_SYS_ADMIN",
            Capability::SysPtrace => "CAP_SYS_PTRACE",
        }
    }

    /// Whether `set` (a 64-bit capability mask as in `CapEff:`) holds it.
    pub fn in_set(self, set: u64) -> bool {
        set & (1u64 << self.bit()) != 0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `CapEff:` mask of a /proc/PID/status text (16 hex digits in
/// practice). None if the line is missing or malformed. Pure.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let hex = line.trim();
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The calling thread's effective capability set, from
/// /proc/thread-self/status. Errors: the file cannot be read, or has no
/// well-formed `CapEff:` line (InvalidData).
pub fn effective_capabilities() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    parse_cap_eff(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "/proc/thread-self/status has no CapEff line",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cap_eff_lines() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001fffeffffff\n";
        let eff = parse_cap_eff(s).unwrap();
        assert_eq!(eff, 0x1fffeffffff);
        assert!(Capability::SysAdmin.in_set(eff));
        assert!(Capability::SysPtrace.in_set(eff));
        let no_admin = eff & !(1 << 21);
        assert!(!Capability::SysAdmin.in_set(no_admin));
        assert_eq!(parse_cap_eff("CapEff:\t\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff("CapEff:\t00000000000000000\n"), None);
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn reads_own_set() {
        // whatever we run as, the line exists and parses
        effective_capabilities().unwrap();
    }

    proptest! {
        #[test]
        fn any_status_text_never_panics(s in ".{0,200}") {
            let _ = parse_cap_eff(&s);
            let _ = parse_cap_eff(&format!("CapEff:{s}"));
        }
    }
}
