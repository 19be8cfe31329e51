//! Who this collector is beyond its host id (machine, boot, network
//! namespace), and what it cannot see, found at start from its own
//! capabilities. Thin reads of /etc and /proc.
use halfopen_core::Instance;

/// This collector's instance, from machine-id(5), random(4)'s boot_id and
/// the calling thread's network namespace (its netns cookie, else the
/// inode of /proc/thread-self/ns/net). What cannot be read stays empty (an
/// empty instance matches any, so an unreadable file never refuses a session).
pub fn this_instance() -> Instance {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).ok();
    let machine_id = read("/etc/machine-id")
        .filter(|s| !s.is_empty())
        .or_else(|| read("/var/lib/dbus/machine-id"))
        .unwrap_or_default();
    let boot_id = read("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let netns = match halfopen_sockets::netns::current_cookie() {
        Ok(Some(c)) => c.0,
        _ => std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap_or(0),
    };
    Instance {
        machine_id,
        boot_id,
        netns,
        pid: std::process::id(),
    }
}

/// Capability bits (include/uapi/linux/capability.h).
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_PTRACE: u32 = 19;

/// What a collector with these effective capabilities cannot see, in words.
/// Pure: `eff` is the CapEff mask of /proc/self/status.
pub fn blind_spots(eff: u64) -> Vec<String> {
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    let mut v = Vec::new();
    // Naming another user's socket owner lists /proc/PID/fd (CAP_DAC_READ_SEARCH)
    // and reads its links (CAP_SYS_PTRACE): neither alone is enough
    // (deploy/README.md, measured on kernel 6.18).
    let missing: Vec<&str> = [
        (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
        (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
    ]
    .into_iter()
    .filter(|(bit, _)| !has(*bit))
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        v.push(format!(
            "owners of other users' sockets: the collector lacks {} (their processes stay unknown)",
            missing.join(" and ")
        ));
    }
    if !has(CAP_NET_ADMIN) {
        v.push(
            "NAT translations: the collector lacks CAP_NET_ADMIN, so its conntrack table cannot be read and \
             connections through NAT on this host are not judged"
                .to_string(),
        );
    }
    v
}

/// [`blind_spots`] of this process; unreadable capabilities are one spot.
pub fn my_blind_spots() -> Vec<String> {
    match halfopen_sockets::netns::caps::effective_capabilities() {
        Ok(eff) => blind_spots(eff),
        Err(e) => vec![format!("the collector's capabilities are unknown ({e})")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_capabilities_see_everything_and_missing_ones_are_said() {
        assert!(blind_spots(u64::MAX).is_empty());
        let none = blind_spots(0);
        assert_eq!(none.len(), 2);
        assert!(
            none[0].contains("lacks CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE"),
            "{none:?}"
        );
        assert!(none[1].contains("CAP_NET_ADMIN"));
        let ptrace_only = blind_spots(1 << CAP_SYS_PTRACE | 1 << CAP_NET_ADMIN);
        assert_eq!(ptrace_only, vec![
            "owners of other users' sockets: the collector lacks CAP_DAC_READ_SEARCH (their processes stay unknown)".to_string()
        ]);
        assert!(blind_spots(1 << CAP_SYS_PTRACE | 1 << CAP_DAC_READ_SEARCH | 1 << CAP_NET_ADMIN).is_empty());
    }

    #[test]
    fn this_instance_is_read() {
        let i = this_instance();
        assert_eq!(i.pid, std::process::id());
        assert!(i.netns != 0);
        assert_eq!(i.boot_id.len(), 36, "{i:?}");
    }
}
