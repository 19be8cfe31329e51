//! Which server listener a finding belongs to, and incident ids.
use halfopen_core::{Finding, FindingKind};
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

/// A server listener: its host and port. The connection's server end after
/// NAT (the real server, not a VIP), or the listener of a listener finding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentKey {
    pub server_host: String,
    pub port: u16,
}

impl IncidentKey {
    pub fn of(f: &Finding) -> IncidentKey {
        let port = match f.kind {
            FindingKind::ListenerAtRisk | FindingKind::AcceptStalled => f.subject.server_end().port(),
            _ => f
                .listener_addr()
                .map(|l| l.port())
                .unwrap_or_else(|| f.server_end().port()),
        };
        IncidentKey {
            server_host: f.subject.server_host().to_string(),
            port,
        }
    }
}

impl fmt::Display for IncidentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.server_host, self.port)
    }
}

/// `HOST:PORT@START`, START the incident's first sighting in RFC 3339
/// basic format, UTC, whole seconds: `db:3306@20261130T171502Z`. Readable,
/// sortable per listener, and the same every time it is computed.
pub fn incident_id(k: &IncidentKey, start_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(start_ms.max(0) as u64);
    let iso = humantime::format_rfc3339_seconds(t).to_string(); // 2026-11-30T17:15:02Z
    let basic: String = iso.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{k}@{basic}")
}

/// The key and start (whole seconds, ms) of an id made by [`incident_id`];
/// None when `id` is not one.
pub fn parse_incident_id(id: &str) -> Option<(IncidentKey, i64)> {
    let (k, start) = id.rsplit_once('@')?;
    let (host, port) = k.rsplit_once(':')?;
    let port = port.parse().ok()?;
    if host.is_empty() || start.len() != 16 || !start.ends_with('Z') || start.as_bytes()[8] != b'T' {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &start[0..4],
        &start[4..6],
        &start[6..8],
        &start[9..11],
        &start[11..13],
        &start[13..15]
    );
    let t = humantime::parse_rfc3339(&iso).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64;
    Some((
        IncidentKey {
            server_host: host.to_string(),
            port,
        },
        ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_and_round_trip() {
        let k = IncidentKey {
            server_host: "db".into(),
            port: 3306,
        };
        // 2026-11-30T17:15:02.750Z
        let id = incident_id(&k, 1_796_058_902_750);
        assert_eq!(id, "db:3306@20261130T171502Z");
        assert_eq!(parse_incident_id(&id), Some((k, 1_796_058_902_000)));
        let k6 = IncidentKey {
            server_host: "node-1/pod:x".into(),
            port: 443,
        };
        let id = incident_id(&k6, 0);
        assert_eq!(id, "node-1/pod:x:443@19700101T000000Z");
        assert_eq!(parse_incident_id(&id).unwrap().0, k6);
        for bad in [
            "",
            "db",
            "db:3306",
            "db:3306@",
            "db:x@20261130T171502Z",
            ":1@20261130T171502Z",
            "db:1@2026",
        ] {
            assert_eq!(parse_incident_id(bad), None, "{bad}");
        }
    }
}
