//! What the simulator knows it planted, and how it scores the reconciler's
//! findings against it: a finding is *found* when it names a planted
//! client_only connection (client tuple and server), *server_only found* when
//! it names a planted server_only one, an *expected listener* when it is a
//! listener_at_risk on a server port that planted orphans point at (the
//! reconciler keeps such a listener at risk while its orphans exist), and a
//! *false positive* otherwise.
//! Latency runs from the moment the planted socket was first sent in a report
//! to the first poll that lists it.
use crate::addr::{host_id, host_of_wire};
use crate::world::{Conn, Kind};
use halfopen_proto::convert::tuple_from_wire;
use halfopen_proto::v1;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct Plant {
    pub conn: Conn,
    pub kind: Kind,
    /// When the planted socket first went out in a report (monotonic, wall ms).
    pub sent: Option<(Instant, i64)>,
    /// The first poll listing it, and the reconciler's confirmed_at (wall ms).
    pub found: Option<(Instant, i64)>,
}

/// Outcome of scoring one ListOrphans answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollScore {
    pub listed: usize,
    pub new_found: usize,
    pub new_server_only: usize,
    pub new_false_positives: usize,
    pub new_listeners: usize,
    /// Planted client_only connections listed in this answer.
    pub planted_listed: usize,
}

#[derive(Default)]
pub struct Registry {
    by_client_end: HashMap<(u16, u16), usize>,
    /// (server host, server port) of every planted orphan.
    orphan_listeners: HashSet<(u16, u16)>,
    /// listener_at_risk findings explained by planted orphans.
    listeners_at_risk: HashSet<(u16, u16)>,
    pub plants: Vec<Plant>,
    false_positives: HashSet<String>,
    /// Up to [`Registry::EXAMPLES`] false positives, described.
    pub fp_examples: Vec<String>,
}

impl Registry {
    pub const EXAMPLES: usize = 5;

    pub fn add(&mut self, conn: Conn, kind: Kind) {
        if kind == Kind::Orphan {
            self.orphan_listeners.insert((conn.server, conn.sport));
        }
        self.by_client_end.insert((conn.client, conn.cport), self.plants.len());
        self.plants.push(Plant {
            conn,
            kind,
            sent: None,
            found: None,
        });
    }

    fn get_mut(&mut self, conn: &Conn) -> Option<&mut Plant> {
        let &i = self.by_client_end.get(&(conn.client, conn.cport))?;
        let p = &mut self.plants[i];
        (p.conn == *conn).then_some(p)
    }

    /// Planted sockets that went out in a report at `at`.
    pub fn mark_sent(&mut self, conns: &[Conn], at: Instant, wall: i64) {
        for c in conns {
            if let Some(p) = self.get_mut(c) {
                p.sent.get_or_insert((at, wall));
            }
        }
    }

    /// Scores one ListOrphans answer received at `at`.
    pub fn observe(&mut self, findings: &[v1::Finding], at: Instant) -> PollScore {
        let mut score = PollScore {
            listed: findings.len(),
            ..Default::default()
        };
        for f in findings {
            if f.kind == "listener_at_risk" {
                if let Some(l) = listener_of(f).filter(|l| self.orphan_listeners.contains(l)) {
                    score.new_listeners += self.listeners_at_risk.insert(l) as usize;
                    continue;
                }
            }
            let conn = f
                .tuple
                .as_ref()
                .and_then(tuple_from_wire)
                .and_then(|t| Conn::from_client_tuple(&t));
            let named_right = |c: &Conn| f.client_host == host_id(c.client) && f.server_host == host_id(c.server);
            let plant = conn.filter(named_right).and_then(|c| self.get_mut(&c));
            match plant {
                Some(p) if p.kind == Kind::Orphan && f.kind == "client_only" => {
                    score.planted_listed += 1;
                    if p.found.is_none() {
                        p.found = Some((at, f.confirmed_at_unix_ms));
                        score.new_found += 1;
                    }
                }
                Some(p) if p.kind == Kind::ServerOnly => {
                    if p.found.is_none() {
                        p.found = Some((at, f.confirmed_at_unix_ms));
                        score.new_server_only += 1;
                    }
                }
                _ => {
                    let d = describe(f);
                    if self.false_positives.insert(d.clone()) {
                        score.new_false_positives += 1;
                        if self.fp_examples.len() < Self::EXAMPLES {
                            self.fp_examples.push(d);
                        }
                    }
                }
            }
        }
        score
    }

    /// Distinct listener_at_risk findings explained by planted orphans.
    pub fn listeners_at_risk(&self) -> usize {
        self.listeners_at_risk.len()
    }

    pub fn false_positives(&self) -> usize {
        self.false_positives.len()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.plants.iter().filter(|p| p.kind == kind).count()
    }

    pub fn found(&self, kind: Kind) -> usize {
        self.plants
            .iter()
            .filter(|p| p.kind == kind && p.found.is_some())
            .count()
    }

    /// Poll-based latencies (ms) of the found planted client_only connections.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.plants
            .iter()
            .filter(|p| p.kind == Kind::Orphan)
            .filter_map(|p| Some(p.found?.0.saturating_duration_since(p.sent?.0).as_secs_f64() * 1e3))
            .collect()
    }

    /// Latencies (ms) by the reconciler's own confirmed_at stamp (same
    /// machine's wall clock, so only meaningful on one host).
    pub fn confirm_latencies_ms(&self) -> Vec<f64> {
        self.plants
            .iter()
            .filter(|p| p.kind == Kind::Orphan)
            .filter_map(|p| Some((p.found?.1 - p.sent?.1) as f64))
            .collect()
    }

    /// Planted client_only connections not found (for the stderr report).
    pub fn missing(&self, n: usize) -> Vec<String> {
        self.plants
            .iter()
            .filter(|p| p.kind == Kind::Orphan && p.found.is_none())
            .take(n)
            .map(|p| {
                format!(
                    "{} ({} -> {}) {}",
                    p.conn.client_tuple(),
                    host_id(p.conn.client),
                    host_id(p.conn.server),
                    if p.sent.is_some() { "sent" } else { "never sent" }
                )
            })
            .collect()
    }
}

/// (server host, port) of a listener_at_risk finding on a simulated host.
fn listener_of(f: &v1::Finding) -> Option<(u16, u16)> {
    let host: u16 = f.server_host.strip_prefix("sim-")?.parse().ok()?;
    let port = f.listener.rsplit_once(':')?.1.parse().ok()?;
    Some((host, port))
}

fn describe(f: &v1::Finding) -> String {
    let t = f.tuple.as_ref();
    let end = |ip: Option<&Vec<u8>>, port: Option<u32>| match (ip.and_then(|b| halfopen_core::ip_from_wire(b)), port) {
        (Some(ip), Some(p)) => format!("{ip}:{p}"),
        _ => "?".into(),
    };
    let known = t.map(|t| (host_of_wire(&t.local_ip), host_of_wire(&t.remote_ip)));
    if f.tuple.is_none() && !f.listener.is_empty() {
        return format!("{} listener={} server_host={}", f.kind, f.listener, f.server_host);
    }
    format!(
        "{} {} -> {} client_host={} server_host={}{}",
        f.kind,
        end(t.map(|t| &t.local_ip), t.map(|t| t.local_port)),
        end(t.map(|t| &t.remote_ip), t.map(|t| t.remote_port)),
        f.client_host,
        f.server_host,
        match known {
            Some((Some(_), Some(_))) => "",
            _ => " (addresses are not simulated hosts)",
        }
    )
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted values; None if empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_proto::convert::tuple_to_wire;
    use std::time::Duration;

    #[test]
    fn percentiles_nearest_rank() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let v: Vec<f64> = (1..=100).rev().map(|x| x as f64).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 1000.0], 99.0), Some(1000.0));
    }

    fn finding(c: &Conn, kind: &str) -> v1::Finding {
        v1::Finding {
            kind: kind.into(),
            tuple: Some(tuple_to_wire(&c.client_tuple())),
            client_host: host_id(c.client),
            server_host: host_id(c.server),
            confirmed_at_unix_ms: 5_000,
            ..Default::default()
        }
    }

    #[test]
    fn findings_are_scored_against_what_was_planted() {
        let o = Conn {
            client: 1,
            cport: 20_000,
            server: 2,
            sport: 3306,
        };
        let so = Conn {
            client: 3,
            cport: 20_001,
            server: 1,
            sport: 3306,
        };
        let mut r = Registry::default();
        r.add(o, Kind::Orphan);
        r.add(so, Kind::ServerOnly);
        let t0 = Instant::now();
        r.mark_sent(&[o], t0, 4_000);
        r.mark_sent(&[o], t0 + Duration::from_secs(9), 13_000); // first send counts

        let wrong_server = Conn { server: 3, ..o };
        let mut misnamed = finding(&o, "client_only");
        misnamed.server_host = "sim-9".into();
        let s = r.observe(
            &[finding(&wrong_server, "client_only"), misnamed.clone()],
            t0 + Duration::from_millis(100),
        );
        assert_eq!(s.new_false_positives, 2);
        assert_eq!(s.new_found, 0);

        let at = t0 + Duration::from_millis(1500);
        let s = r.observe(&[finding(&o, "client_only"), finding(&so, "server_only")], at);
        assert_eq!((s.new_found, s.new_server_only, s.planted_listed), (1, 1, 1));
        let s = r.observe(&[finding(&o, "client_only"), misnamed], at + Duration::from_secs(1));
        assert_eq!(s.new_found, 0, "found once");
        assert_eq!(s.new_false_positives, 0, "a false positive is counted once");
        assert_eq!(r.false_positives(), 2);
        assert_eq!(r.fp_examples.len(), 2);
        assert_eq!(r.found(Kind::Orphan), 1);
        assert_eq!(r.found(Kind::ServerOnly), 1);
        assert_eq!(r.latencies_ms(), vec![1500.0]);
        assert_eq!(r.confirm_latencies_ms(), vec![1000.0]);
        assert!(r.missing(5).is_empty());
    }

    #[test]
    fn listeners_at_risk_are_expected_only_where_orphans_point() {
        let mut r = Registry::default();
        r.add(
            Conn {
                client: 1,
                cport: 20_000,
                server: 2,
                sport: 3306,
            },
            Kind::Orphan,
        );
        let l = |host: &str, listener: &str| v1::Finding {
            kind: "listener_at_risk".into(),
            server_host: host.into(),
            listener: listener.into(),
            ..Default::default()
        };
        let s = r.observe(&[l("sim-2", "0.0.0.0:3306"), l("sim-2", "[::]:3306")], Instant::now());
        assert_eq!(
            (s.new_listeners, s.new_false_positives),
            (1, 0),
            "one listener, named twice"
        );
        let s = r.observe(
            &[l("sim-2", "0.0.0.0:5432"), l("sim-3", "0.0.0.0:3306")],
            Instant::now(),
        );
        assert_eq!((s.new_listeners, s.new_false_positives), (0, 2));
        assert_eq!(r.listeners_at_risk(), 1);
        assert!(r.fp_examples[0].contains("listener=0.0.0.0:5432"));
    }

    #[test]
    fn examples_are_capped() {
        let mut r = Registry::default();
        let fs: Vec<v1::Finding> = (0..20)
            .map(|i| {
                finding(
                    &Conn {
                        client: 1,
                        cport: 30_000 + i,
                        server: 2,
                        sport: 3306,
                    },
                    "client_only",
                )
            })
            .collect();
        assert_eq!(r.observe(&fs, Instant::now()).new_false_positives, 20);
        assert_eq!(r.fp_examples.len(), Registry::EXAMPLES);
        let bogus = v1::Finding {
            kind: "client_only".into(),
            tuple: None,
            ..Default::default()
        };
        assert_eq!(r.observe(&[bogus], Instant::now()).new_false_positives, 1);
    }
}
