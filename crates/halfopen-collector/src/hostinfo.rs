//! Host-level facts read in the collector's network namespace: TCP counters
//! (/proc/net/netstat, /proc/net/snmp), the sysctls that govern accept
//! queues and SYN cookies, and whether a process has TCP wrappers loaded.
//! Thin I/O; the parsing is halfopen_core::counters.
use halfopen_core::counters::{parse_proc_net_counters, SYSCTLS, TRACKED};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum HostInfoError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse {
        path: String,
        source: halfopen_core::counters::CounterParseError,
    },
}

fn read(path: &str) -> Result<String, HostInfoError> {
    std::fs::read_to_string(path).map_err(|source| HostInfoError::Read {
        path: path.to_string(),
        source,
    })
}

/// The tracked counters, absolute. `/proc/thread-self/net` is the calling
/// thread's network namespace.
pub fn counters() -> Result<BTreeMap<String, u64>, HostInfoError> {
    let mut all = BTreeMap::new();
    for path in ["/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"] {
        let text = read(path)?;
        let parsed = parse_proc_net_counters(&text).map_err(|source| HostInfoError::Parse {
            path: path.to_string(),
            source,
        })?;
        all.extend(parsed);
    }
    Ok(all.into_iter().filter(|(k, _)| TRACKED.contains(&k.as_str())).collect())
}

/// The governing sysctls; one that does not exist on this kernel is left out.
pub fn sysctls() -> Result<BTreeMap<String, String>, HostInfoError> {
    let mut out = BTreeMap::new();
    for name in SYSCTLS {
        let path = format!("/proc/sys/{}", name.replace('.', "/"));
        match std::fs::read_to_string(&path) {
            Ok(v) => {
                out.insert(name.to_string(), v.trim().to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HostInfoError::Read { path, source }),
        }
    }
    Ok(out)
}

/// Whether the process maps libwrap (TCP wrappers). A process that vanished
/// or cannot be read is reported as an error for the caller to count.
/// A process that has exited meanwhile has no maps: false, not an error.
pub fn has_libwrap(pid: u32) -> Result<bool, HostInfoError> {
    match read(&format!("/proc/{pid}/maps")) {
        Ok(maps) => Ok(maps_have_libwrap(&maps)),
        Err(HostInfoError::Read { source, .. })
            if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Pure part of [`has_libwrap`].
pub fn maps_have_libwrap(maps: &str) -> bool {
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .any(|path| path.rsplit('/').next().is_some_and(|f| f.starts_with("libwrap.so")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_namespace() {
        let c = counters().unwrap();
        assert!(c.contains_key("TcpExt.ListenOverflows"), "{c:?}");
        assert!(c.contains_key("Tcp.ActiveOpens"));
        let s = sysctls().unwrap();
        assert!(s["net.core.somaxconn"].parse::<u32>().is_ok(), "{s:?}");
        assert!(s.contains_key("net.ipv4.tcp_syncookies"));
        assert!(!has_libwrap(std::process::id()).unwrap());
        // no such process: false, not an error (pid_max is at most 2^22)
        assert!(!has_libwrap(u32::MAX).unwrap());
    }

    #[test]
    fn libwrap_in_maps() {
        let maps = "7f1e0000-7f1e1000 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libwrap.so.0.7.6\n\
                    7f1e2000-7f1e3000 r-xp 00000000 08:01 124 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(maps_have_libwrap(maps));
        assert!(!maps_have_libwrap(
            "7f1e2000-7f1e3000 r-xp 00000000 08:01 124 /usr/lib/libc.so.6\n"
        ));
        assert!(!maps_have_libwrap("7f1e2000-7f1e3000 rw-p 00000000 00:00 0\n"));
    }
}
