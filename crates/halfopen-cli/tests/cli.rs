//! The `halfopen` binary's own behaviour on one host: `snapshot` against real
//! sockets on loopback, and clear errors for bad input and missing services.
use std::net::{TcpListener, TcpStream};
use std::process::Command;

fn halfopen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_halfopen"))
        .args(args)
        .env_remove("HALFOPEN_RECONCILER")
        .output()
        .expect("running halfopen")
}

#[test]
fn snapshot_json_shows_both_ends_with_side_and_process() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    let client_local = client.local_addr().unwrap().to_string();
    let out = halfopen(&["snapshot", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let me = std::process::id() as u64;
    let c = rows
        .iter()
        .find(|r| r["local"] == client_local.as_str() && r["remote"] == addr.to_string())
        .expect("client end missing");
    assert_eq!(c["side"], "client");
    assert_eq!(c["state"], "ESTAB");
    assert_eq!(c["pid"].as_u64(), Some(me), "{c}");
    assert!(c["cmdline"].as_str().unwrap().contains("cli"), "{c}");
    let s = rows
        .iter()
        .find(|r| r["local"] == addr.to_string() && r["remote"] == client_local.as_str())
        .expect("server end missing");
    assert_eq!(s["side"], "server");
    assert_eq!(s["pid"].as_u64(), Some(me));
    drop((client, server));
}

#[test]
fn snapshot_table_and_proc_fallback() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let _client = TcpStream::connect(addr).unwrap();
    // Not accepted: the server end waits in the accept queue, with no owner.
    let out = halfopen(&["snapshot"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{addr} ")) && l.contains("server"))
        .unwrap_or_else(|| panic!("no server line for {addr} in\n{text}"));
    assert!(line.contains("(in accept queue)"), "{line}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("read through netlink"));
    let out = halfopen(&["snapshot", "--proc-net"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read through proc"));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&addr.to_string()));
}

#[test]
fn unreachable_reconciler_is_a_clear_error() {
    // A port nobody listens on: bind then drop.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for cmd in ["orphans", "hosts"] {
        let out = halfopen(&[cmd, "--reconciler", &format!("127.0.0.1:{port}")]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot reach the reconciler"), "{err}");
        assert!(err.contains("HALFOPEN_RECONCILER"), "{err}");
    }
}

#[test]
fn bad_flags_are_rejected_with_the_reason() {
    let out = halfopen(&["collector", "--interval", "0s"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("greater than zero"));
    let out = halfopen(&["collector", "--interval", "five"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("examples: 5s"));
    let out = halfopen(&["reconciler", "--listen", "nowhere"]);
    assert!(!out.status.success());
    let out = halfopen(&["orphans", "--reconciler", "http://[bad"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid reconciler URL"));
    let out = halfopen(&["reconciler", "--no-db", "--stale-intervals", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale-intervals"));
    let out = Command::new(env!("CARGO_BIN_EXE_halfopen"))
        .args(["--log", "halfopen=loud", "hosts", "--reconciler", "127.0.0.1:1"])
        .env_remove("RUST_LOG")
        .env_remove("HALFOPEN_RECONCILER")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid log filter") && err.contains("halfopen=loud"),
        "{err}"
    );
}

#[test]
fn reconciler_reports_a_port_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = halfopen(&["reconciler", "--listen", &addr, "--no-db"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
    // With a database it logs first; logs to a pipe (journald, a file)
    // carry no terminal colour codes.
    let dir = std::env::temp_dir().join(format!("halfopen-cli-ansi-{}", std::process::id()));
    let db = dir.join("h.db");
    let out = halfopen(&["reconciler", "--listen", &addr, "--db", db.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFO") && err.contains("findings database open"), "{err}");
    assert!(!out.stderr.contains(&0x1b), "ANSI escapes in piped logs: {err:?}");
}

#[test]
fn demo_without_root_says_why() {
    if !halfopen_lab::is_root() {
        let out = halfopen(&["demo"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
        return;
    }
    // As root: run it as nobody, from a copy that nobody can read wherever
    // the build directory is.
    let exe = halfopen_lab::ExeForOthers::copy(std::path::Path::new(env!("CARGO_BIN_EXE_halfopen"))).unwrap();
    // bounded: coreutils `timeout` ends it after 60 s. ETXTBSY: the copy can
    // still be open for writing in a child another test thread forked a
    // moment ago (until it execs); bounded retries.
    let mut tries = 0;
    let out = loop {
        let out = Command::new("timeout")
            .args(["60", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(exe.path())
            .arg("demo")
            .output()
            .expect("timeout (coreutils) and setpriv (util-linux) are needed for this test");
        if tries < 50 && String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        break out;
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(124), "demo as nobody did not end within 60 s");
    assert!(
        err.contains("needs root") && err.contains("network namespaces"),
        "{err}"
    );
}

#[test]
fn help_teaches_with_examples() {
    for cmd in ["collector", "reconciler", "orphans", "hosts", "snapshot", "demo"] {
        let out = halfopen(&[cmd, "--help"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Example"), "{cmd} --help has no example:\n{text}");
    }
    let out = halfopen(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("halfopen demo"));
}

/// Stops the child when the test ends, also on failure.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A big incident restored from the findings database (12,345 findings,
/// ~6.8 MB: more than 2 pages of 5,000) is listed whole by `findings` and
/// `orphans`, each finding once.
#[test]
fn a_big_incident_is_listed_whole_through_pages() {
    use halfopen_core::{Evidence, Finding, FindingKind, Subject, Tuple};
    use halfopen_store::StoreCmd;
    const N: usize = 12_345;
    let dir = std::env::temp_dir().join(format!("halfopen-cli-paging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("findings.db");
    {
        let (store, _) = halfopen_store::open(&db, N).unwrap();
        for i in 0..N {
            let kind = if i % 5 == 0 {
                FindingKind::ServerOnly
            } else {
                FindingKind::ClientOnly
            };
            let client = format!("127.0.{}.{}:{}", 1 + i / 60_000, 1 + (i / 250) % 250, 10_000 + i % 250);
            let f = Finding {
                kind,
                subject: Subject::Connection {
                    tuple: Tuple::new(client.parse().unwrap(), "127.0.0.1:3306".parse().unwrap()),
                    client_host: "app".into(),
                    server_host: "db".into(),
                },
                cookie: 0,
                process: None,
                server_process: None,
                keepalive: false,
                confirmed_at_ms: 1_700_000_000_000,
                first_seen_ms: 1_700_000_000_000,
                evidence: Evidence {
                    legacy_explanation: Some("x".repeat(400)),
                    ..Default::default()
                },
            };
            assert!(store.send(StoreCmd::Confirmed {
                finding: f,
                explanation: "x".repeat(400),
            }));
        }
        store.flush();
    }
    let mut started = None;
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_halfopen"))
            .args(["reconciler", "--listen", &addr, "--db", db.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let child = Child(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if halfopen(&["hosts", "--reconciler", &addr]).status.success() {
                started = Some((child, addr));
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if started.is_some() {
            break;
        }
    }
    let (_child, addr) = started.expect("reconciler did not start in 20 s (5 tries)");
    let list = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["--json", "--reconciler", &addr]);
        let out = halfopen(&a);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let distinct = |v: &[serde_json::Value]| {
        let mut k: Vec<String> = v
            .iter()
            .map(|f| format!("{} {} {}", f["kind"], f["client"], f["server"]))
            .collect();
        k.sort();
        k.dedup();
        k.len()
    };
    let all = list(&["findings"]);
    assert_eq!(all.len(), N);
    assert_eq!(distinct(&all), N, "a finding listed twice");
    let orphans = list(&["orphans"]);
    assert_eq!(orphans.len(), N - N.div_ceil(5));
    assert_eq!(distinct(&orphans), orphans.len());
    let server_only = list(&["findings", "--kind", "server_only"]);
    assert_eq!(server_only.len(), N.div_ceil(5));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The terminal closes under a running demo (SIGHUP): it tears its lab
/// down like on Ctrl-C — no namespace and no lab process is left.
#[test]
fn demo_cleans_up_when_its_terminal_closes() {
    if !halfopen_lab::require_root_or_skip("demo-sighup") {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_halfopen"))
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait (bounded) until its collectors run, then hang up.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let start = std::time::Instant::now();
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "demo ended before its lab was up");
        // Printed once the reconciler and collectors run (the "Starting"
        // line comes before they are spawned).
        if line.contains("On `db`") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "demo too slow to start"
        );
    }
    // Its descendants (the lab's reconciler, collectors, ...).
    let descendants = || {
        let ps = Command::new("ps").args(["-eo", "pid=,ppid="]).output().unwrap();
        let pairs: Vec<(u32, u32)> = String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace().map(|x| x.parse::<u32>());
                Some((it.next()?.ok()?, it.next()?.ok()?))
            })
            .collect();
        let mut d = vec![pid];
        let mut i = 0;
        while i < d.len() {
            let parent = d[i];
            d.extend(pairs.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
            i += 1;
        }
        d.remove(0);
        d
    };
    let descendants = {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let d = descendants();
            if !d.is_empty() {
                break d;
            }
            assert!(std::time::Instant::now() < until, "the demo started no process in 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    // SAFETY: plain kill(2) on our child's pid.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    drop(out); // the terminal is gone: its output goes nowhere
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "demo still running 60 s after SIGHUP"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(!status.success(), "interrupted: {status:?}");
    let prefix = format!("ho-demo-{pid}-");
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let ns = String::from_utf8_lossy(&ns.stdout);
    assert!(!ns.contains(&prefix), "namespaces left behind: {ns}");
    let left: Vec<u32> = descendants
        .into_iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(left.is_empty(), "lab processes left behind: {left:?}");
}
