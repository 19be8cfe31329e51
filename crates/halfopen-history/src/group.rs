//! Which incident a finding belongs to. The rule: a finding joins the
//! latest incident on its [`IncidentKey`] when that incident still has a
//! current finding, or its last finding ended less than the gap before the
//! new one was first seen; otherwise it starts a new incident.
use crate::key::{incident_id, IncidentKey};
use halfopen_core::StoredFinding;
use std::collections::HashMap;

/// The latest incident on a key, as the store knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Latest {
    pub id: String,
    /// When its last finding ended, ms; None while one is current.
    pub last_end_ms: Option<i64>,
}

/// The incident id for a finding on `key` first seen at `first_seen_ms`,
/// given the latest incident on that key (None: there is none).
pub fn assign(latest: Option<&Latest>, key: &IncidentKey, first_seen_ms: i64, gap_ms: i64) -> String {
    match latest {
        Some(l) if l.last_end_ms.is_none_or(|end| first_seen_ms - end < gap_ms) => l.id.clone(),
        _ => incident_id(key, first_seen_ms),
    }
}

/// [`assign`] over a whole set, in order of first sighting (then store
/// id): fills `incident` where it is None, and keeps the ids already given.
pub fn group(findings: &mut [StoredFinding], gap_ms: i64) {
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&i| (findings[i].finding.first_seen_ms, findings[i].id));
    let mut latest: HashMap<IncidentKey, Latest> = HashMap::new();
    for i in order {
        let f = &mut findings[i];
        let key = IncidentKey::of(&f.finding);
        let id = match &f.incident {
            Some(id) => id.clone(),
            None => assign(latest.get(&key), &key, f.finding.first_seen_ms, gap_ms),
        };
        f.incident = Some(id.clone());
        let end = f.gone_at_ms;
        let l = latest.entry(key).or_insert_with(|| Latest {
            id: id.clone(),
            last_end_ms: end,
        });
        if l.id != id {
            *l = Latest { id, last_end_ms: end };
        } else {
            l.last_end_ms = match (l.last_end_ms, end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{conn, listener_risk};
    use proptest::prelude::*;

    const GAP: i64 = 300_000;

    #[test]
    fn gaps_split_listeners_separate_and_current_findings_hold_it_open() {
        let mut fs = vec![
            conn(1, "db", 3306, 1_000, Some(60_000)),
            conn(2, "db", 3306, 30_000, Some(100_000)),
            // 100 s + 4 min: still the same incident.
            conn(3, "db", 3306, 340_000, Some(400_000)),
            // Another listener on the same host: another incident.
            conn(4, "db", 443, 5_000, None),
            // More than the gap after 400 s: a new incident.
            conn(5, "db", 3306, 700_001, None),
            // While 5 is current, anything later joins it.
            conn(6, "db", 3306, 9_000_000, Some(9_100_000)),
            listener_risk(7, "db", 3306, 800_000, Some(900_000)),
            // Another host, same port.
            conn(8, "db2", 3306, 1_000, None),
        ];
        group(&mut fs, GAP);
        let ids: Vec<&str> = fs.iter().map(|f| f.incident.as_deref().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "db:3306@19700101T000001Z",
                "db:3306@19700101T000001Z",
                "db:3306@19700101T000001Z",
                "db:443@19700101T000005Z",
                "db:3306@19700101T001140Z",
                "db:3306@19700101T001140Z",
                "db:3306@19700101T001140Z",
                "db2:3306@19700101T000001Z",
            ]
        );
    }

    #[test]
    fn ids_already_given_are_kept() {
        let mut fs = vec![
            conn(1, "db", 3306, 1_000, Some(2_000)),
            conn(2, "db", 3306, 3_000, None),
        ];
        fs[0].incident = Some("db:3306@19691231T235959Z".into());
        group(&mut fs, GAP);
        assert_eq!(fs[1].incident, fs[0].incident);
    }

    proptest! {
        /// Whatever the findings, the invariants hold: one key per incident;
        /// consecutive incidents on a key more than the gap apart; grouping
        /// again changes nothing.
        #[test]
        fn invariants(spec in proptest::collection::vec((0u8..2, 0u16..2, 0i64..2_000_000, proptest::option::of(0i64..600_000)), 0..40)) {
            let mut fs: Vec<StoredFinding> = spec.iter().enumerate().map(|(i, (h, p, start, len))| {
                conn(i as i64, if *h == 0 { "a" } else { "b" }, 3306 + p, *start, len.map(|l| start + l))
            }).collect();
            group(&mut fs, GAP);
            let mut by_id: HashMap<String, Vec<&StoredFinding>> = HashMap::new();
            for f in &fs {
                by_id.entry(f.incident.clone().unwrap()).or_default().push(f);
            }
            let mut spans: HashMap<IncidentKey, Vec<(i64, Option<i64>)>> = HashMap::new();
            for members in by_id.values() {
                let k = IncidentKey::of(&members[0].finding);
                prop_assert!(members.iter().all(|f| IncidentKey::of(&f.finding) == k));
                let start = members.iter().map(|f| f.finding.first_seen_ms).min().unwrap();
                let end = members.iter().map(|f| f.gone_at_ms).try_fold(i64::MIN, |a, e| e.map(|e| a.max(e)));
                spans.entry(k).or_default().push((start, end));
            }
            for v in spans.values_mut() {
                v.sort();
                for w in v.windows(2) {
                    let end = w[0].1;
                    prop_assert!(end.is_some(), "an incident with a current finding is followed by another: {v:?}");
                    prop_assert!(w[1].0 - end.unwrap() >= GAP, "{v:?}");
                }
            }
            let before: Vec<_> = fs.iter().map(|f| f.incident.clone()).collect();
            for f in &mut fs { f.incident = None; }
            group(&mut fs, GAP);
            let after: Vec<_> = fs.iter().map(|f| f.incident.clone()).collect();
            prop_assert_eq!(before, after);
        }
    }
}
