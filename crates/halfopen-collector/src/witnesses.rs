//! Witnessed drops a report carries, kept for the next full report: a
//! report can be lost with its session (the reconciler restarted, the link
//! broke) after the source handed its witnesses over, and witnesses are not
//! part of the socket table that a new session's full report rebuilds. So
//! every full report carries again the witnesses sent within
//! [`KEEP_FOR`] (at most [`MAX_KEPT`], newest kept), one per tuple; the
//! reconciler takes a witness it already holds as the same fact.
//!
//! Pure: time is passed in.
use halfopen_core::{DropWitness, Tuple};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a sent witness is carried again by full reports: the
/// reconciler's default `--dropped-handshake-ttl` (10 minutes), after which
/// it would have let the witness go anyway.
pub const KEEP_FOR: Duration = Duration::from_secs(600);

/// Most witnesses kept (one per tuple; about 100 bytes each).
pub const MAX_KEPT: usize = 65_536;

/// The witnesses sent lately, one per tuple, oldest first.
#[derive(Debug, Default)]
pub struct Resend {
    /// tuple -> (when sent, the witness); `order` holds (tuple, when sent).
    kept: HashMap<Tuple, (Instant, DropWitness)>,
    order: VecDeque<(Tuple, Instant)>,
}

impl Resend {
    /// Completes a report's `witnessed` (the source's new witnesses): a
    /// full report also carries every witness kept (those the new ones do
    /// not replace). Then keeps the new ones as sent at `now`.
    pub fn carry(&mut self, now: Instant, full: bool, witnessed: &mut Vec<DropWitness>) {
        self.prune(now);
        if full && !self.kept.is_empty() {
            let fresh: std::collections::HashSet<Tuple> = witnessed.iter().map(|w| w.tuple).collect();
            let mut old: Vec<&(Instant, DropWitness)> =
                self.kept.values().filter(|(_, w)| !fresh.contains(&w.tuple)).collect();
            old.sort_by_key(|(at, w)| (*at, w.at_ms));
            let mut all: Vec<DropWitness> = old.into_iter().map(|(_, w)| *w).collect();
            all.append(witnessed);
            *witnessed = all;
        }
        for w in witnessed.iter() {
            let new = !self.kept.contains_key(&w.tuple);
            // A witness carried again keeps its first sending time: it is not news.
            let at = self.kept.get(&w.tuple).map_or(now, |(at, _)| *at);
            self.kept.insert(w.tuple, (at, *w));
            if new {
                self.order.push_back((w.tuple, now));
            }
        }
        self.prune(now);
    }

    /// How many witnesses are kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(t, at)) = self.order.front() {
            if now.saturating_duration_since(at) <= KEEP_FOR && self.kept.len() <= MAX_KEPT {
                break;
            }
            self.order.pop_front();
            if self.kept.get(&t).is_some_and(|(a, _)| *a == at) {
                self.kept.remove(&t);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::DropPath;

    fn w(port: u16, at_ms: i64) -> DropWitness {
        DropWitness {
            tuple: Tuple::new(
                "198.18.0.1:3306".parse().unwrap(),
                format!("198.18.0.2:{port}").parse().unwrap(),
            ),
            at_ms,
            path: DropPath::Cookie,
            queue: 5,
            backlog: 4,
        }
    }

    fn ports(ws: &[DropWitness]) -> Vec<u16> {
        ws.iter().map(|w| w.tuple.remote_port()).collect()
    }

    #[test]
    fn a_full_report_carries_again_what_deltas_sent() {
        let t0 = Instant::now();
        let mut r = Resend::default();
        let mut a = vec![w(1, 10), w(2, 11)];
        r.carry(t0, false, &mut a);
        assert_eq!(ports(&a), [1, 2], "a delta carries only what is new");
        let mut b = vec![w(3, 12)];
        r.carry(t0 + Duration::from_secs(1), false, &mut b);
        assert_eq!(ports(&b), [3]);
        // The session broke; the new session's first report is full.
        let mut c = vec![w(4, 13)];
        r.carry(t0 + Duration::from_secs(2), true, &mut c);
        assert_eq!(ports(&c), [1, 2, 3, 4], "oldest first, then the new ones");
        let mut d = Vec::new();
        r.carry(t0 + Duration::from_secs(3), false, &mut d);
        assert!(d.is_empty(), "the next delta carries nothing old");
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn one_per_tuple_and_the_new_witness_wins() {
        let t0 = Instant::now();
        let mut r = Resend::default();
        r.carry(t0, false, &mut vec![w(1, 10)]);
        let mut again = vec![w(1, 20)];
        r.carry(t0 + Duration::from_secs(1), true, &mut again);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].at_ms, 20);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn kept_for_ten_minutes_then_forgotten() {
        let t0 = Instant::now();
        let mut r = Resend::default();
        r.carry(t0, false, &mut vec![w(1, 10)]);
        r.carry(t0 + Duration::from_secs(300), false, &mut vec![w(2, 11)]);
        // Carried again at 9 minutes: its sending time stays t0.
        let mut full = Vec::new();
        r.carry(t0 + Duration::from_secs(540), true, &mut full);
        assert_eq!(ports(&full), [1, 2]);
        let mut full = Vec::new();
        r.carry(t0 + KEEP_FOR + Duration::from_secs(1), true, &mut full);
        assert_eq!(ports(&full), [2], "the first is older than KEEP_FOR");
        let mut full = Vec::new();
        r.carry(
            t0 + Duration::from_secs(300) + KEEP_FOR + Duration::from_secs(1),
            true,
            &mut full,
        );
        assert!(full.is_empty() && r.is_empty());
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut r = Resend::default();
        let mut many: Vec<DropWitness> = (0..=MAX_KEPT as u32)
            .map(|i| {
                let mut x = w(1, i as i64);
                x.tuple = Tuple::new(
                    "198.18.0.1:3306".parse().unwrap(),
                    std::net::SocketAddr::from(([198, 18, (i >> 16) as u8 + 1, (i >> 8) as u8], (i & 0xff) as u16 + 1)),
                );
                x
            })
            .collect();
        r.carry(t0, false, &mut many);
        assert_eq!(r.len(), MAX_KEPT, "the oldest beyond the bound is let go");
    }
}
