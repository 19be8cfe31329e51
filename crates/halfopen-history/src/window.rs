//! The times operators type: `--since 2h`, `--until 2026-11-30T17:00:00Z`.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{0:?} is not a time: give an RFC 3339 time (2026-11-30T17:00:00Z, 2026-11-30 17:00:00 as UTC) or a time ago \
     (30m, 2h, 7d, 1h30m)"
)]
pub struct TimeError(pub String);

/// Milliseconds since the epoch for `s`: RFC 3339 (`2026-11-30T17:00:00Z`,
/// with an offset, fractional seconds, or a space for the `T` and no zone as
/// UTC), or a duration ago from `now_ms` (`30m`, `2h`, `7d`, `1h 30m`;
/// humantime's units).
pub fn parse_time(s: &str, now_ms: i64) -> Result<i64, TimeError> {
    let t = s.trim();
    let err = || TimeError(s.to_string());
    if t.is_empty() {
        return Err(err());
    }
    if let Ok(d) = humantime::parse_duration(t) {
        return Ok(now_ms.saturating_sub(i64::try_from(d.as_millis()).map_err(|_| err())?));
    }
    let at: SystemTime = humantime::parse_rfc3339_weak(t)
        .or_else(|_| humantime::parse_rfc3339(t))
        .or_else(|_| parse_with_offset(t).ok_or(()))
        .map_err(|_| err())?;
    let ms = match at.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    };
    Ok(ms)
}

/// `2026-11-30T18:00:00+01:00` (humantime takes only `Z`).
fn parse_with_offset(t: &str) -> Option<SystemTime> {
    let (base, sign, off) = if let Some(i) = t.rfind('+').filter(|&i| i > 10) {
        (&t[..i], 1i64, &t[i + 1..])
    } else {
        let i = t.rfind('-').filter(|&i| i > 10)?;
        (&t[..i], -1, &t[i + 1..])
    };
    let (h, m) = off.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 23 || m > 59 {
        return None;
    }
    let utc = humantime::parse_rfc3339_weak(base).ok()?;
    let shift = Duration::from_secs(h * 3600 + m * 60);
    if sign > 0 {
        utc.checked_sub(shift)
    } else {
        utc.checked_add(shift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_058_902_000; // 2026-11-30T17:15:02Z

    #[test]
    fn relative_and_absolute_forms() {
        assert_eq!(parse_time("2h", NOW), Ok(NOW - 7_200_000));
        assert_eq!(parse_time("30m", NOW), Ok(NOW - 1_800_000));
        assert_eq!(parse_time("7d", NOW), Ok(NOW - 7 * 86_400_000));
        assert_eq!(parse_time("1h 30m", NOW), Ok(NOW - 5_400_000));
        assert_eq!(parse_time("2026-11-30T17:15:02Z", 0), Ok(NOW));
        assert_eq!(parse_time("2026-11-30T17:15:02.5Z", 0), Ok(NOW + 500));
        assert_eq!(parse_time("2026-11-30 17:15:02", 0), Ok(NOW));
        assert_eq!(parse_time("2026-11-30T18:15:02+01:00", 0), Ok(NOW));
        assert_eq!(parse_time("2026-11-30T16:15:02-01:00", 0), Ok(NOW));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "5 parsecs",
            "2026-11-30T18:15:02+25:00",
        ] {
            let e = parse_time(bad, NOW).unwrap_err();
            assert!(e.to_string().contains("is not a time"), "{bad}: {e}");
        }
    }
}
