//! A host's counter history: the increases of its TCP counters (or of its
//! listeners' drop counters, keyed by listening address) between
//! consecutive reports, by reconciler time, so that "what rose around this
//! moment" can be asked without any clock of the host's. Bounded.
use std::collections::{BTreeMap, VecDeque};

/// How many reports' increases a host keeps.
const HISTORY: usize = 128;

#[derive(Debug, Default)]
pub(crate) struct CounterHistory {
    /// The last absolute reading.
    last: BTreeMap<String, u64>,
    /// (reconciler mono ms, increases since the previous reading).
    samples: VecDeque<(u64, BTreeMap<String, u64>)>,
}

impl CounterHistory {
    /// Records an absolute reading taken at `mono_ms` (an empty reading, a
    /// report without counters, is ignored).
    /// Returns the increases since the previous reading (None for the first).
    pub fn record(&mut self, mono_ms: u64, now: BTreeMap<String, u64>) -> Option<&BTreeMap<String, u64>> {
        if now.is_empty() {
            return None;
        }
        let first = self.last.is_empty();
        if !first {
            let d = halfopen_core::counters::deltas(&self.last, &now);
            self.samples.push_back((mono_ms, d));
            while self.samples.len() > HISTORY {
                self.samples.pop_front();
            }
        }
        self.last = now;
        if first {
            None
        } else {
            self.samples.back().map(|(_, d)| d)
        }
    }

    /// Counter increases reported at or after `since_mono` (a sum past
    /// u64::MAX, which only a collector's bogus readings reach, saturates).
    pub fn deltas_since(&self, since_mono: u64) -> BTreeMap<String, u64> {
        let mut sum = BTreeMap::new();
        for (t, d) in &self.samples {
            if *t >= since_mono {
                for (k, v) in d {
                    let total = sum.entry(k.clone()).or_insert(0u64);
                    *total = total.saturating_add(*v);
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(v: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([("TcpExt.ListenOverflows".to_string(), v)])
    }

    #[test]
    fn increases_are_summed_over_the_window_and_the_first_reading_is_a_baseline() {
        let mut h = CounterHistory::default();
        h.record(0, reading(100));
        h.record(1_000, reading(105));
        h.record(2_000, BTreeMap::new());
        h.record(3_000, reading(125));
        assert_eq!(h.deltas_since(0)["TcpExt.ListenOverflows"], 25);
        assert_eq!(h.deltas_since(2_000)["TcpExt.ListenOverflows"], 20);
        assert!(h.deltas_since(3_001).is_empty());
        for i in 0..(HISTORY as u64 + 10) {
            h.record(4_000 + i, reading(200 + i));
        }
        assert_eq!(h.samples.len(), HISTORY);
    }
}
