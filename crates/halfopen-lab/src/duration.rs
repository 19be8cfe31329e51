//! Parsing of the small command-line quantities the lab processes take: durations (`500ms`, `4s`,
//! `2m`, `1m30s`, `1.5s`, `0`) and rates (`200/s`, `600/m`, `200`). Pure, no I/O.

use std::time::Duration;

/// Parses a duration such as `500ms`, `4s`, `2m`, `1h`, `1m30s`, `1.5s` or `0`.
///
/// Units: `ns`, `us`, `ms`, `s`, `m`, `h`, `d`. A bare number is accepted only when it is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    let mut total_ns: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("{text:?}: expected a number at {rest:?}"));
        }
        let (num, after) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| format!("{text:?}: {num:?} is not a number"))?;
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "" => return Err(format!("{text:?}: missing unit after {num} (use ms, s, m, h)")),
            other => return Err(format!("{text:?}: unknown unit {other:?} (use ns, us, ms, s, m, h, d)")),
        };
        total_ns += value * scale;
        rest = after;
    }
    if !total_ns.is_finite() || total_ns > u64::MAX as f64 {
        return Err(format!("{text:?}: duration too large"));
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats a duration so that [`parse_duration`] reads it back exactly (whole milliseconds when
/// possible, nanoseconds otherwise). Handy for building lab process command lines.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// Parses a rate such as `200/s`, `600/m`, `10/h` or a bare `200` (per second), returning events
/// per second. Zero and negative rates are refused.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let s = text.trim();
    let (num, per) = match s.split_once('/') {
        Some((n, p)) => (n.trim(), p.trim()),
        None => (s, "s"),
    };
    let value: f64 = num.parse().map_err(|_| format!("{text:?}: {num:?} is not a number"))?;
    let seconds = match per {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{text:?}: unknown rate unit {other:?} (use /s, /m, /h)")),
    };
    let rate = value / seconds;
    if !(rate.is_finite() && rate > 0.0) {
        return Err(format!("{text:?}: rate must be positive"));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("4s"), Ok(Duration::from_secs(4)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 3s "), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "5", "s", "4x", "-1s", "1..2s", "ms5", "1s2"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_millis(1),
            Duration::from_millis(4000),
            Duration::from_nanos(1_234_567),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("200/s"), Ok(200.0));
        assert_eq!(parse_rate("200"), Ok(200.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert_eq!(parse_rate("0.5/s"), Ok(0.5));
        for bad in ["0/s", "-3/s", "x/s", "3/y", ""] {
            assert!(parse_rate(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
