//! Durations for people, and (re-exported from halfopen-core) TCP
//! keepalive arithmetic: when the kernel resets an idle socket whose peer
//! is gone.
pub use halfopen_core::keepalive::{
    keepalive_reap_time, KeepaliveSysctls, SysctlError, LINUX_KEEPALIVE_INTVL_S, LINUX_KEEPALIVE_PROBES,
    LINUX_KEEPALIVE_TIME_S,
};

/// A duration in seconds as an operator reads it, truncated to its two
/// largest units: "45 s", "1 min 15 s", "10 min", "2 h 11 min", "1 d 1 h".
pub fn humanize(secs: u64) -> String {
    const MIN: u64 = 60;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if secs >= DAY {
        two(secs / DAY, "d", secs % DAY / HOUR, "h")
    } else if secs >= HOUR {
        two(secs / HOUR, "h", secs % HOUR / MIN, "min")
    } else if secs >= MIN {
        two(secs / MIN, "min", secs % MIN, "s")
    } else {
        format!("{secs} s")
    }
}
