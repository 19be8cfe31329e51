//! The values operators type after a flag: durations, intervals, sizes,
//! retention. Plain functions over `&str` (humantime underneath) so that
//! halfopen-fuzz compiles this file as it is and fuzzes the real parsers.
use std::time::Duration;

/// A size in bytes: 16MiB, 512KiB, 1GiB, or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (num, mul) = [("GiB", 1usize << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        .iter()
        .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((t, 1));
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (examples: 16MiB, 512KiB, 1048576)"))?;
    let v = n.checked_mul(mul).ok_or_else(|| format!("{s} is too large"))?;
    if !(1024..=(1usize << 31)).contains(&v) {
        return Err(format!("{s} is outside 1KiB..2GiB"));
    }
    Ok(v)
}

/// How long the reconciler keeps what ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Forever,
    For(Duration),
}

pub fn parse_retention(s: &str) -> Result<Retention, String> {
    if s == "forever" {
        return Ok(Retention::Forever);
    }
    parse_duration(s)
        .map(Retention::For)
        .map_err(|e| format!("{e}; or `forever`"))
}

/// A collector interval: 100ms to 1h. Shorter busies a core for nothing
/// (a scan takes milliseconds); longer makes a dead host look alive for
/// hours (a host is stale after 3 intervals).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!(
            "{s} is outside 100ms..1h: scans more often busy a core, and a host is judged stale only after 3 intervals"
        ));
    }
    Ok(d)
}

/// A duration such as 5s, 500ms or 2m, greater than zero.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 5s, 500ms, 2m)"))?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}
