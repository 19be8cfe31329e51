//! The registry every halfopen service starts from (prefix `halfopen`, the
//! build info), and the encoding of a whole registry in the exposition
//! format the scraper asked for.
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::borrow::Cow;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (ends with `# EOF`): what Prometheus asks for first.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: for `curl` and older scrapers.
    PrometheusText,
}

impl Format {
    /// The format for a request's `Accept` header value (None: no header).
    /// OpenMetrics when the scraper lists `application/openmetrics-text`
    /// (Prometheus does, see its `scrape.acceptHeader`), else the Prometheus
    /// text format, which every scraper and a human can read.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// A registry whose metric names all start with `halfopen_`, holding
/// `halfopen_build_info{component, version}` (1), so that dashboards can
/// tell what runs where.
///
/// `component` is the service ("reconciler", "collector"); `labels` are put
/// on every series of the registry (the collector's `host`, so that its
/// series join the reconciler's `halfopen_host_*{host}`).
pub fn new_registry(component: &'static str, labels: &[(&'static str, &str)]) -> Registry {
    let labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = labels
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Owned(v.to_string())))
        .collect();
    let mut r = Registry::with_prefix_and_labels("halfopen", labels.into_iter());
    r.register(
        "build",
        "halfopen build information: the service and its version",
        Info::new(vec![("component", component), ("version", env!("CARGO_PKG_VERSION"))]),
    );
    r
}

/// The whole registry as text in `format`. Reads only what the metrics
/// hold now (atomics and published snapshots): it never waits on a service's
/// work.
///
/// Errors: only those of a collector's `encode` (a `fmt::Error`).
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(4096);
    match format {
        Format::OpenMetrics => text::encode(&mut out, registry)?,
        Format::PrometheusText => prometheus_text::encode(&mut out, registry)?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_asks_for_openmetrics_and_curl_gets_the_text_format() {
        // Prometheus 2.42's scrape Accept header.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                    text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::from_accept(None), Format::PrometheusText);
        assert!(Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text"));
        assert!(Format::PrometheusText
            .content_type()
            .starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn the_registry_carries_the_prefix_and_the_build_info() {
        let r = new_registry("collector", &[]);
        let om = encode(&r, Format::OpenMetrics).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            om,
            format!(
                "# HELP halfopen_build halfopen build information: the service and its version.\n\
                 # TYPE halfopen_build info\n\
                 halfopen_build_info{{component=\"collector\",version=\"{version}\"}} 1\n\
                 # EOF\n"
            )
        );
        let text = encode(&r, Format::PrometheusText).unwrap();
        assert!(
            text.contains(&format!(
                "halfopen_build_info{{component=\"collector\",version=\"{version}\"}} 1\n"
            )),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        // Labels of the registry go on every series.
        let r = new_registry("collector", &[("host", "db-1")]);
        let text = encode(&r, Format::PrometheusText).unwrap();
        assert!(
            text.contains(&format!(
                "halfopen_build_info{{host=\"db-1\",component=\"collector\",version=\"{version}\"}} 1\n"
            )),
            "{text}"
        );
    }
}
