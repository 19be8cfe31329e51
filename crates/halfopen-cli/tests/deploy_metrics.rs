//! The monitoring files under `deploy/`, checked by Prometheus's own tool
//! (`promtool`, Debian's `prometheus` package) and against the metrics the
//! code exports:
//! - `deploy/prometheus/alerts.yml` passes `promtool check rules`, and its
//!   unit tests (`alerts_test.yml`: each alert fires on the series it is
//!   about, after its `for:`, and not on healthy ones) pass
//!   `promtool test rules`; a copy with a broken rule fails both, so the
//!   checks are known to check;
//! - `deploy/prometheus/prometheus.yml` passes `promtool check config`;
//! - every query of `deploy/grafana/halfopen.json` is valid PromQL (checked
//!   as recording rules by promtool, Grafana's variables substituted), and
//!   every `halfopen_*` name in the alerts and the dashboard is one the
//!   reconciler or the collector exports (their exposition snapshots).
//!
//! The same queries run against a real Prometheus scraping a lab in
//! `e2e_metrics.rs`. A missing promtool fails under CI=true (or 1);
//! elsewhere the test prints why and returns.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// promtool, or None (with the reason printed) outside CI.
fn promtool() -> Option<&'static str> {
    let ok = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some("promtool");
    }
    let why = "promtool is not installed (apt-get install prometheus)";
    assert!(!in_ci(), "{why}: CI=true, the monitoring files must be checked");
    eprintln!("skipping: {why}");
    None
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn prometheus_dir() -> PathBuf {
    root().join("deploy/prometheus")
}

/// Runs promtool with `args` in `dir`, killed after 60 s.
fn run(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promtool {args:?} did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A directory of this test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("halfopen-deploy-metrics-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(_) = promtool() else { return };
    let dir = prometheus_dir();
    let o = run(&dir, &["check", "rules", "alerts.yml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
    let o = run(&dir, &["test", "rules", "alerts_test.yml"]);
    assert!(o.status.success(), "{}", text(&o));

    // A copy whose orphan alert needs 1,000 orphans: its unit test fails.
    let tmp = TempDir::new("broken");
    let alerts = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let orphan_rule = r#"expr: sum by (server_host, listener) (halfopen_findings{kind="client_only"}) > 0"#;
    assert!(
        alerts.contains(orphan_rule),
        "the orphan alert's expression changed: update this test"
    );
    std::fs::write(
        tmp.0.join("alerts.yml"),
        alerts.replace(orphan_rule, &orphan_rule.replace("> 0", "> 1000")),
    )
    .unwrap();
    std::fs::copy(dir.join("alerts_test.yml"), tmp.0.join("alerts_test.yml")).unwrap();
    let o = run(&tmp.0, &["test", "rules", "alerts_test.yml"]);
    assert!(
        !o.status.success(),
        "a broken orphan alert passed its unit test:\n{}",
        text(&o)
    );
    assert!(text(&o).contains("HalfopenOrphanConnections"), "{}", text(&o));
    // And a rule that is not PromQL fails the check.
    std::fs::write(tmp.0.join("alerts.yml"), alerts.replace(orphan_rule, "expr: sum by (")).unwrap();
    let o = run(&tmp.0, &["check", "rules", "alerts.yml"]);
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn the_example_configuration_passes_promtool() {
    let Some(_) = promtool() else { return };
    let o = run(&prometheus_dir(), &["check", "config", "prometheus.yml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 rule files found"), "{}", text(&o));
}

/// Every query of the dashboard (targets and template variables), as written.
fn dashboard_queries() -> Vec<String> {
    let path = root().join("deploy/grafana/halfopen.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

/// A dashboard query as Prometheus would get it from Grafana: every host, a 1 m rate window.
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m").replace("$host", ".*")
}

/// `halfopen_*` names used in `s`.
fn names(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = s;
    while let Some(i) = rest.find("halfopen_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_dashboard_is_well_formed_and_its_queries_are_valid_promql() {
    let path = root().join("deploy/grafana/halfopen.json");
    let d: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(d["uid"], "halfopen");
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "duplicate panel id {}", p["id"]);
        let g = &p["gridPos"];
        assert!(g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24, "{p}");
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
            assert!(!p["targets"].as_array().unwrap().is_empty(), "{}", p["title"]);
        }
    }
    let queries = dashboard_queries();
    for q in &queries {
        let sent = as_sent(q);
        assert!(!sent.contains('$'), "a Grafana variable left in {q}");
    }
    let Some(_) = promtool() else { return };
    // Each query as a recording rule: promtool parses the PromQL.
    let tmp = TempDir::new("dashboard");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: '{}'\n",
            as_sent(q).replace('\'', "''")
        ));
    }
    std::fs::write(tmp.0.join("dashboard.yml"), &rules).unwrap();
    let o = run(&tmp.0, &["check", "rules", "dashboard.yml"]);
    assert!(o.status.success(), "{}\n{rules}", text(&o));
    assert!(
        text(&o).contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{}",
        text(&o)
    );
}

#[test]
fn alerts_and_dashboard_use_only_exported_metric_names() {
    let snap = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let exported = names(&format!(
        "{}{}",
        snap("crates/halfopen-reconciler/src/snapshots/halfopen_reconciler__metrics__tests__incident_openmetrics.snap"),
        snap("crates/halfopen-collector/src/snapshots/halfopen_collector__metrics__tests__collector_openmetrics.snap")
    ));
    assert!(exported.contains("halfopen_findings"), "{exported:?}");
    assert!(
        exported.contains("halfopen_collector_scan_duration_seconds_bucket"),
        "{exported:?}"
    );
    let alerts = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let used: BTreeSet<String> = names(&alerts)
        .into_iter()
        .chain(dashboard_queries().iter().flat_map(|q| names(q)))
        .collect();
    let unknown: Vec<&String> = used.difference(&exported).collect();
    assert!(unknown.is_empty(), "not exported by halfopen: {unknown:?}");
    // The issue's contract.
    for name in [
        "halfopen_findings",
        "halfopen_findings_confirmed_total",
        "halfopen_host_up",
        "halfopen_host_last_report_timestamp_seconds",
        "halfopen_listener_drops_total",
    ] {
        assert!(exported.contains(name), "{name} is not exported");
    }
    for required in [
        "HalfopenOrphanConnections",
        "HalfopenCollectorDown",
        "HalfopenCollectorStale",
        "HalfopenListenerDropping",
    ] {
        assert!(alerts.contains(&format!("alert: {required}")), "{required} missing");
    }
}
