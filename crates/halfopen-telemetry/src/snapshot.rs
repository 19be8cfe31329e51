//! Metric families read from a snapshot at scrape time. A service publishes
//! what it holds now (findings by listener, hosts, engine counters) as plain
//! data; its [`Collector`](prometheus_client::collector::Collector) writes
//! every family from the latest snapshot through [`Families`]. A series that
//! is not in the snapshot is not written, so a host or listener that went
//! away leaves no stale series behind (Prometheus marks it stale at the next
//! scrape), and a family with no series writes nothing at all.
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// A label set: (name, value) pairs in the order they are written. Label
/// names are static (they are part of the metric's contract); values come
/// from bounded sets (hosts, listeners, kinds, reasons).
pub type Labels = Vec<(&'static str, String)>;

/// Writes metric families from snapshot values into one scrape. Names are
/// given without the registry's prefix, without the unit (pass `unit`) and,
/// for counters, without `_total` (the encoder appends it).
pub struct Families<'a> {
    enc: DescriptorEncoder<'a>,
}

impl<'a> Families<'a> {
    pub fn new(enc: DescriptorEncoder<'a>) -> Self {
        Families { enc }
    }

    /// One gauge without labels (`value`: a count as u64/i64, a measure as f64).
    pub fn gauge<V: EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        value: V,
    ) -> std::fmt::Result {
        let g = ConstGauge::new(value);
        let m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        g.encode(m)
    }

    /// One counter without labels: `value` is the total since the service
    /// started (or, for a counter the kernel keeps, its latest reading).
    pub fn counter(&mut self, name: &str, help: &str, unit: Option<Unit>, value: u64) -> std::fmt::Result {
        let c = ConstCounter::new(value);
        let m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        c.encode(m)
    }

    /// A gauge family; nothing is written when `series` is empty.
    pub fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue + Copy>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        series: &[(L, V)],
    ) -> std::fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, v) in series {
            ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }

    /// A counter family; nothing is written when `series` is empty.
    pub fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        series: &[(L, u64)],
    ) -> std::fmt::Result {
        if series.is_empty() {
            return Ok(());
        }
        let mut m = self
            .enc
            .encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        for (labels, v) in series {
            ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{encode, Format};
    use prometheus_client::collector::Collector;
    use prometheus_client::registry::Registry;
    use std::sync::{Arc, Mutex};

    /// A collector over a snapshot that the test replaces.
    #[derive(Debug, Default)]
    struct Snap(Mutex<Arc<Vec<(String, u64)>>>);

    impl Collector for Snap {
        fn encode(&self, enc: DescriptorEncoder) -> std::fmt::Result {
            let s = self.0.lock().unwrap().clone();
            let mut f = Families::new(enc);
            let series: Vec<(Labels, u64)> = s.iter().map(|(h, v)| (vec![("host", h.clone())], *v)).collect();
            f.gauges("things", "Things now", None, &series)?;
            let drops: Vec<(Labels, u64)> = s.iter().map(|(h, v)| (vec![("host", h.clone())], *v)).collect();
            f.counters("drops", "Drops so far", None, &drops)?;
            f.gauge("age", "Age of the snapshot", Some(Unit::Seconds), 1.5)
        }
    }

    #[test]
    fn a_series_absent_from_the_snapshot_is_absent_from_the_scrape() {
        let snap = Arc::new(Snap::default());
        let mut r = Registry::with_prefix("halfopen");
        r.register_collector(Box::new(snap.clone()));
        *snap.0.lock().unwrap() = Arc::new(vec![("a".into(), 3), ("b\"x".into(), 1)]);
        let t = encode(&r, Format::OpenMetrics).unwrap();
        insta::assert_snapshot!("two_hosts", t);
        *snap.0.lock().unwrap() = Arc::new(vec![("a".into(), 4)]);
        let t = encode(&r, Format::PrometheusText).unwrap();
        assert!(!t.contains("b\\\"x"), "{t}");
        assert!(t.contains("halfopen_things{host=\"a\"} 4\n"), "{t}");
        assert!(t.contains("halfopen_drops_total{host=\"a\"} 4\n"), "{t}");
        // Nothing at all: the labelled families vanish, even their HELP.
        *snap.0.lock().unwrap() = Arc::new(Vec::new());
        let t = encode(&r, Format::PrometheusText).unwrap();
        assert!(!t.contains("halfopen_things"), "{t}");
        assert!(!t.contains("halfopen_drops"), "{t}");
        assert!(t.contains("halfopen_age_seconds 1.5\n"), "{t}");
    }
}
