//! End-to-end metrics: the real `halfopen` binary as reconciler and
//! collectors (each with `--metrics-listen`) in a lab of network namespaces,
//! scraped every second by a real Prometheus (Debian's `prometheus`) loaded
//! with `deploy/prometheus/alerts.yml` (every `for:` shortened to 1 s), and
//! asked with `promtool query instant`. During a SYN-cookie incident the
//! number of current client_only findings Prometheus sees equals the rows
//! `halfopen orphans --json` lists, the orphan and listener-drop alerts fire,
//! and every query of the Grafana dashboard runs; when the client exits the
//! series go; when a collector dies its host goes down and its alert fires.
//!
//! Needs root, prometheus and promtool: fails under CI=true without them,
//! skips with a reason elsewhere. Prometheus runs inside the reconciler's
//! namespace (killed with the lab), its database in a directory of its own.
mod common;

use common::*;
use halfopen_lab::fleet::Fleet;
use halfopen_lab::Lab;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
/// Prometheus inside the reconciler's namespace (its own loopback).
const PROM: &str = "http://127.0.0.1:9090";
const RECONCILER_METRICS: &str = "198.18.0.3:9477";

/// One series of a query result: its labels and value.
type Series = (BTreeMap<String, String>, f64);

fn tools_or_skip() -> bool {
    let have = |p: &str| Path::new(p).exists() || which(p);
    let missing: Vec<&str> = ["prometheus", "promtool"].into_iter().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{missing:?} not installed (apt-get install prometheus)");
    assert!(
        !matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")),
        "{why}: CI=true, the metrics test must run"
    );
    eprintln!("skipping: {why}");
    false
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// A directory removed on drop, whatever happens (Prometheus's database).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// `promtool query instant` from the reconciler's namespace.
fn try_query(lab: &Lab, expr: &str) -> Result<Vec<Series>, String> {
    let out = lab
        .run(
            "recon",
            "promtool",
            &["query", "instant", "-o", "json", PROM, expr],
            Duration::from_secs(20),
        )
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{expr}: {}{stdout}", String::from_utf8_lossy(&out.stderr)));
    }
    if stdout.trim().is_empty() {
        return Ok(Vec::new());
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| format!("{expr}: {e}: {stdout}"))?;
    Ok(v.as_array()
        .ok_or_else(|| format!("{expr}: not a vector: {stdout}"))?
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let value = s["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect())
}

fn query(lab: &Lab, expr: &str) -> Vec<Series> {
    try_query(lab, expr).unwrap_or_else(|e| panic!("query failed: {e}"))
}

/// The single value of `expr`, if it has exactly one series.
fn scalar(lab: &Lab, expr: &str) -> Option<f64> {
    match query(lab, expr).as_slice() {
        [(_, v)] => Some(*v),
        _ => None,
    }
}

/// alerts.yml with every `for:` at 1 s, so that the lab need not wait minutes.
fn fast_alerts() -> String {
    std::fs::read_to_string(deploy().join("prometheus/alerts.yml"))
        .unwrap()
        .lines()
        .map(|l| match l.trim_start().strip_prefix("for: ") {
            Some(_) => format!("{}for: 1s\n", &l[..l.len() - l.trim_start().len()]),
            None => format!("{l}\n"),
        })
        .collect()
}

/// Starts Prometheus in the reconciler's namespace, scraping the reconciler
/// and the collectors of `hosts` every second; returns once every target is up.
fn start_prometheus(lab: &mut Lab, hosts: &[(&str, &str)]) -> TempDir {
    let dir = TempDir(std::env::temp_dir().join(format!("halfopen-e2e-prometheus-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(dir.0.join("data")).unwrap();
    let alerts = fast_alerts();
    assert!(alerts.contains("for: 1s") && !alerts.contains("for: 1m"), "{alerts}");
    std::fs::write(dir.0.join("alerts.yml"), alerts).unwrap();
    let collectors: Vec<String> = hosts.iter().map(|(_, ip)| format!("\"{ip}:9478\"")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  \
         - job_name: halfopen-reconciler\n    static_configs:\n      - targets: [\"{RECONCILER_METRICS}\"]\n  \
         - job_name: halfopen-collector\n    static_configs:\n      - targets: [{}]\n",
        collectors.join(", ")
    );
    let config_path = dir.0.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let check = lab
        .run(
            "recon",
            "promtool",
            &["check", "config", &config_path.to_string_lossy()],
            Duration::from_secs(20),
        )
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let prometheus = lab
        .spawn(
            "recon",
            Path::new("prometheus"),
            &[
                &format!("--config.file={}", config_path.display()),
                &format!("--storage.tsdb.path={}", dir.0.join("data").display()),
                "--web.listen-address=127.0.0.1:9090",
            ],
        )
        .unwrap();
    let want = hosts.len() + 1;
    wait_for("every target to be scraped by Prometheus", TIMEOUT, || {
        if let Some(status) = prometheus.try_wait().unwrap() {
            panic!(
                "prometheus exited ({status}): {}",
                prometheus.read_stderr().unwrap_or_default()
            );
        }
        let up = try_query(lab, "up == 1").ok()?;
        (up.len() == want).then_some(())
    });
    dir
}

/// A raw scrape of `addr` from the reconciler's namespace, linted by `promtool check metrics`.
fn lint_scrape(lab: &Lab, addr: &str) -> String {
    let (host, port) = addr.split_once(':').unwrap();
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && sed '1,/^\\r$/d' <&3"
    );
    let body = lab
        .run_ok("recon", "bash", &["-c", &script], Duration::from_secs(20))
        .unwrap();
    assert!(body.contains("halfopen_build_info"), "{body}");
    let lint = lab
        .run(
            "recon",
            "bash",
            &["-c", &format!("{script} | promtool check metrics")],
            Duration::from_secs(20),
        )
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
    assert!(
        lint.status.success() && said.trim().is_empty(),
        "promtool check metrics on {addr}:\n{said}"
    );
    body
}

/// Every query of the Grafana dashboard as Grafana would send it (all hosts, 1 m rate window).
fn dashboard_queries() -> Vec<String> {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy().join("grafana/halfopen.json")).unwrap()).unwrap();
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$host", ".*")
        })
        .collect()
}

/// Runs every dashboard query; returns those that came back empty.
fn empty_dashboard_queries(lab: &Lab) -> BTreeSet<String> {
    dashboard_queries()
        .into_iter()
        .filter(|q| query(lab, q).is_empty())
        .collect()
}

/// Polls `expr` every 500 ms until `done` holds for its result; returns
/// that result, or fails after a minute showing the last one.
fn watch(lab: &Lab, what: &str, expr: &str, done: impl Fn(&[Series]) -> bool) -> Vec<Series> {
    let start = std::time::Instant::now();
    loop {
        let r = query(lab, expr);
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}: {expr} is {r:?}\nlogs in {}",
            lab.log_dir().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The single value of a result, if it has exactly one series.
fn one(r: &[Series]) -> Option<f64> {
    match r {
        [(_, v)] => Some(*v),
        _ => None,
    }
}

/// The query for an alert while it fires.
fn alert(name: &str) -> String {
    format!("ALERTS{{alertname=\"{name}\",alertstate=\"firing\"}}")
}

/// The labels of the one series of a result.
fn labels_of(r: Vec<Series>) -> BTreeMap<String, String> {
    assert_eq!(r.len(), 1, "{r:?}");
    r.into_iter().next().unwrap().0
}

fn firing(lab: &Lab, alert: &str) -> Vec<BTreeMap<String, String>> {
    query(lab, &format!("ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}}"))
        .into_iter()
        .map(|(l, _)| l)
        .collect()
}

#[test]
fn a_real_prometheus_sees_the_incident_and_fires_the_alerts() {
    if !tools_or_skip() {
        return;
    }
    let Some(mut lab) = lab("e2e-metrics") else { return };
    let hosts = [("db", "198.18.0.1"), ("app", "198.18.0.2")];
    for (h, ip) in hosts {
        lab.add_host(h, ip.parse().unwrap()).unwrap();
    }
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.sysctl("db", "net.ipv4.tcp_syncookies", "1").unwrap();
    let db_path = lab.log_dir().join("state/halfopen.db");
    let mut fleet = Fleet::start(
        &mut lab,
        &exe(),
        "recon",
        &[
            "--db",
            &db_path.to_string_lossy(),
            "--metrics-listen",
            RECONCILER_METRICS,
        ],
    )
    .unwrap();
    for (h, ip) in hosts {
        let metrics = format!("{ip}:9478");
        let remote = fleet.collector_args(h).unwrap(); // --reconciler URL and its TLS files
        let mut args = vec![
            "collector",
            "--interval",
            "1s",
            "--host-id",
            h,
            "--metrics-listen",
            &metrics,
            "--netns",
            "self",
        ];
        args.extend(remote.iter().map(String::as_str));
        let child = lab.spawn(h, &exe(), &args).unwrap();
        fleet.collectors.push((h.to_string(), child));
    }
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let _prometheus_data = start_prometheus(&mut lab, &hosts);
    watch(&lab, "both hosts up in Prometheus", "halfopen_host_up == 1", |r| {
        r.len() == 2
    });

    // A listener that never accepts, in Prometheus before anything reaches
    // it: a burst against its full queue makes its drops (sk_drops) rise.
    let _full = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3307",
        &["--backlog", "1", "--accept-delay", "1h"],
    );
    let drops = r#"halfopen_listener_drops_total{host="db",listener="0.0.0.0:3307"}"#;
    let before = one(&watch(&lab, "the listener in Prometheus", drops, |r| r.len() == 1)).unwrap();
    let _dropped = burst(&mut lab, "app", "198.18.0.1:3307", 20);

    // The incident (a burst right after the server listens, as in e2e.rs).
    let inc = incident(&mut lab, "db", "0.0.0.0:3306", "app", "198.18.0.1:3306", 200);
    let c = lab.net_counters("db").unwrap();
    println!(
        "db counters after the incident: {:?}",
        c.iter()
            .filter(|(k, _)| k.contains("ListenOverflows") || k.contains("Cookie"))
            .collect::<Vec<_>>()
    );
    let server: std::net::SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let (truth, _) = wait_for_agreement(&lab, &fleet, "app", "db", server, TIMEOUT);
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );

    // What Prometheus holds equals what `halfopen orphans` lists.
    let client_only = r#"sum(halfopen_findings{kind="client_only"})"#;
    let start = std::time::Instant::now();
    let (n, seen) = loop {
        let listed = fleet.orphans(&lab).unwrap().len();
        let seen = scalar(&lab, client_only);
        if seen == Some(listed as f64) && listed == truth.len() {
            break (listed, listed as f64);
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "Prometheus never counted what halfopen lists: ss {}, halfopen orphans {listed}, Prometheus {seen:?}",
            truth.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("halfopen orphans lists {n}; Prometheus: {client_only} = {seen}");
    let by_listener = query(&lab, r#"halfopen_findings{kind="client_only"}"#);
    assert_eq!(by_listener.len(), 1, "one series for {n} client ports: {by_listener:?}");
    let (labels, _) = &by_listener[0];
    assert_eq!(labels["server_host"], "db");
    assert_eq!(labels["listener"], "0.0.0.0:3306");
    assert_eq!(labels["job"], "halfopen-reconciler");
    assert!(scalar(&lab, r#"halfopen_findings_confirmed_total{kind="client_only"}"#).unwrap() >= n as f64);
    let after = one(&watch(&lab, "the full listener's drops to rise", drops, |r| {
        one(r).is_some_and(|a| a > before)
    }))
    .unwrap();
    println!("listener drops (sk_drops) of db 0.0.0.0:3307: {before} -> {after}");
    let app_clients = scalar(
        &lab,
        r#"halfopen_collector_sockets{host="app",state="established",side="client"}"#,
    )
    .unwrap();
    assert!(
        app_clients >= n as f64,
        "app's collector counts {app_clients} client sockets"
    );
    assert!(scalar(&lab, r#"halfopen_collector_reports_total{host="db",kind="full"}"#).unwrap() >= 1.0);
    assert!(scalar(&lab, "sum(halfopen_collector_scan_duration_seconds_count)").unwrap() > 0.0);
    // Both collectors run the eBPF source (`auto`, as root): each report's
    // counters hand it the kernel's CurrEstab, and readings are judged.
    watch(
        &lab,
        "both collectors' CurrEstab checks to agree",
        r#"halfopen_collector_bpf_curr_estab_checks_total{verdict="agrees"} > 0"#,
        |r| r.len() == 2,
    );
    watch(
        &lab,
        "the store's writes in Prometheus",
        "halfopen_store_commands_written_total",
        |r| one(r).is_some_and(|w| w >= n as f64),
    );

    // The alerts fire in the lab.
    let orphan_alert = labels_of(watch(
        &lab,
        "the orphan alert to fire",
        &alert("HalfopenOrphanConnections"),
        |r| !r.is_empty(),
    ));
    assert_eq!(orphan_alert["server_host"], "db");
    assert_eq!(orphan_alert["listener"], "0.0.0.0:3306");
    assert_eq!(orphan_alert["severity"], "warning");
    // For the full listener (and, when Prometheus saw its drops rise too,
    // the incident's), never for another.
    let dropping = |r: &[Series]| -> BTreeSet<(String, String)> {
        r.iter()
            .map(|(l, _)| (l["host"].clone(), l["listener"].clone()))
            .collect()
    };
    let drop_alerts = watch(
        &lab,
        "the listener-drop alert to fire for the full listener",
        &alert("HalfopenListenerDropping"),
        |r| dropping(r).contains(&("db".into(), "0.0.0.0:3307".into())),
    );
    let expected: BTreeSet<(String, String)> = [("db", "0.0.0.0:3306"), ("db", "0.0.0.0:3307")]
        .map(|(h, l)| (h.to_string(), l.to_string()))
        .into();
    assert!(dropping(&drop_alerts).is_subset(&expected), "{drop_alerts:?}");
    assert!(firing(&lab, "HalfopenCollectorDown").is_empty());
    assert!(firing(&lab, "HalfopenCollectorStale").is_empty());
    assert!(firing(&lab, "HalfopenEngineStuck").is_empty());

    // The exposition passes Prometheus's linter.
    let exposition = lint_scrape(&lab, RECONCILER_METRICS);
    println!(
        "reconciler /metrics (excerpt):\n{}",
        exposition
            .lines()
            .filter(|l| l.starts_with("halfopen_findings{")
                || l.starts_with("halfopen_host_up")
                || l.starts_with("halfopen_listener_drops_total{host=\"db\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    lint_scrape(&lab, "198.18.0.2:9478");
    let empty_during = empty_dashboard_queries(&lab);

    // The client exits: the findings end, and their series go.
    inc.burst.kill().unwrap();
    watch(
        &lab,
        "the client_only series to go",
        r#"halfopen_findings{kind="client_only"}"#,
        |r| r.is_empty(),
    );
    assert!(fleet.orphans(&lab).unwrap().is_empty());
    let gone = watch(
        &lab,
        "the ended findings to be counted",
        r#"halfopen_findings_gone_total{kind="client_only"}"#,
        |r| r.iter().map(|(_, v)| v).sum::<f64>() >= n as f64,
    );
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].0["reason"], "closed");
    assert_eq!(gone[0].1, n as f64);
    watch(
        &lab,
        "the orphan alert to resolve",
        &alert("HalfopenOrphanConnections"),
        |r| r.is_empty(),
    );

    // Every dashboard query runs, and each shows something at one of the two
    // moments (a rate needs two samples of a series that just appeared).
    let mut never = BTreeSet::new();
    let shown = (0..20).any(|_| {
        never = empty_during
            .intersection(&empty_dashboard_queries(&lab))
            .cloned()
            .collect();
        never.is_empty() || {
            std::thread::sleep(Duration::from_secs(1));
            false
        }
    });
    assert!(shown, "dashboard queries that never showed anything: {never:?}");

    // db's collector dies: db goes down, and its alert fires.
    fleet.collector("db").unwrap().kill().unwrap();
    watch(
        &lab,
        "db down in Prometheus",
        r#"halfopen_host_up{host="db"} + halfopen_host_connected{host="db"}"#,
        |r| one(r) == Some(0.0),
    );
    let down = labels_of(watch(
        &lab,
        "the collector-down alert to fire",
        &alert("HalfopenCollectorDown"),
        |r| !r.is_empty(),
    ));
    assert_eq!(down["host"], "db");
    assert_eq!(scalar(&lab, r#"halfopen_host_up{host="app"}"#), Some(1.0));
    // Its listeners are no longer known: their series are gone, not frozen.
    watch(
        &lab,
        "db's listener series to go",
        r#"halfopen_listener_drops_total{host="db"}"#,
        |r| r.is_empty(),
    );
    drop(fleet);
    lab.teardown().unwrap();
}
