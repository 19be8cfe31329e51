//! Which of the capabilities that BPF tracing needs this process has: the pure parser of the
//! `CapEff:` line of /proc/self/status, and the reader. Used only to explain a refusal; the
//! kernel's answer is what decides.

/// CAP_SYS_ADMIN (include/uapi/linux/capability.h).
pub const CAP_SYS_ADMIN: u32 = 21;
/// CAP_PERFMON (5.8+).
pub const CAP_PERFMON: u32 = 38;
/// CAP_BPF (5.8+).
pub const CAP_BPF: u32 = 39;

/// The effective capability mask from the text of /proc/PID/status (`CapEff:\t000001ffffffffff`).
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).ok()
}

/// The names of the capabilities among CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN missing from
/// `mask`, comma-separated; "none of them" when all are present.
pub fn missing_names(mask: u64) -> String {
    let missing: Vec<&str> = [
        (CAP_BPF, "CAP_BPF"),
        (CAP_PERFMON, "CAP_PERFMON"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ]
    .into_iter()
    .filter(|&(bit, _)| mask & (1u64 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        "none of them (something else refused: an LSM, lockdown or a seccomp filter)".to_string()
    } else {
        missing.join(", ")
    }
}

/// Whether `mask` is enough to load and attach tracing programs: CAP_SYS_ADMIN, or CAP_BPF
/// and CAP_PERFMON together (kernel/bpf/syscall.c `bpf_capable`, `perfmon_capable`).
pub fn sufficient(mask: u64) -> bool {
    let has = |bit: u32| mask & (1u64 << bit) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

/// When this process lacks what tracing programs need: the names missing among CAP_BPF,
/// CAP_PERFMON and CAP_SYS_ADMIN. None when it has enough, or when /proc/self/status cannot
/// be read or parsed (then the refusal is not blamed on capabilities).
pub fn insufficient_here() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mask = parse_cap_eff(&status)?;
    (!sufficient(mask)).then(|| missing_names(mask))
}

/// [`missing_names`] for this process; says so when /proc/self/status cannot be read.
pub fn missing_here() -> String {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => match parse_cap_eff(&s) {
            Some(mask) => missing_names(mask),
            None => "unknown (no CapEff line in /proc/self/status)".to_string(),
        },
        Err(e) => format!("unknown (reading /proc/self/status: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cap_eff() {
        let s = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\nCapBnd:\t0\n";
        assert_eq!(parse_cap_eff(s), Some(0x1ff_ffff_ffff));
        assert_eq!(parse_cap_eff("CapEff:\tzz\n"), None);
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
    }

    #[test]
    fn names_what_is_missing() {
        assert_eq!(missing_names(0), "CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN");
        assert_eq!(missing_names(1 << CAP_SYS_ADMIN), "CAP_BPF, CAP_PERFMON");
        let all = (1 << CAP_BPF) | (1 << CAP_PERFMON) | (1 << CAP_SYS_ADMIN);
        assert!(missing_names(all).starts_with("none of them"));
    }

    #[test]
    fn bpf_and_perfmon_are_enough_without_sys_admin() {
        assert!(sufficient(1 << CAP_SYS_ADMIN));
        assert!(sufficient((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!sufficient(1 << CAP_BPF));
        assert!(!sufficient(1 << CAP_PERFMON));
        assert!(!sufficient(0));
    }
}
