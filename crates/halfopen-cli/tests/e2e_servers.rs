//! End-to-end field trials (issue "Field trials") against real servers and
//! real failures: a MariaDB host that restarts under a pool of idle clients,
//! SYN drops with no one-sided connection, the leftovers a dead client host
//! leaves on Redis, a stuck accept loop, and stalled greetings that name the
//! client. Real namespaces, the real `halfopen` binary, real `mariadbd` and
//! `redis-server`. Needs root and those servers: under CI (`CI=true`) a
//! missing one FAILS; elsewhere the test prints why and returns.
//!
//! The tests of this file take turns (one lock): each one's timing (SYN
//! bursts, 1 s collectors, bounded waits) is only meaningful on a machine
//! that is not also running the others.
mod common;

use common::*;
use halfopen_lab::fleet::{finding_pairs, ss_client_only, Fleet};
use halfopen_lab::{Lab, LabChild};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(60);
const CMD: Duration = Duration::from_secs(15);

static TURN: Mutex<()> = Mutex::new(());

/// One test at a time (a failed test leaves the lock poisoned: go on).
fn turn() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// `CI` says we are in CI (as halfopen_lab::require_root_or_skip reads it).
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The absolute path of `program` (searched in PATH, then the sbin
/// directories, where Debian puts mariadbd), or None with the reason printed
/// when it is missing outside CI. Under CI a missing program fails the test.
fn need(test: &str, program: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(!in_ci(), "{test}: {program} is not installed (CI must have it)");
        println!("skipping {test}: {program} is not installed");
    }
    found
}

/// Every program of `programs`, or None (see [`need`]).
fn need_all(test: &str, programs: &[&str]) -> Option<Vec<PathBuf>> {
    programs.iter().map(|p| need(test, p)).collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// A process's comm (`/proc/PID/comm`), as halfopen names it.
fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_else(|e| panic!("reading the comm of pid {pid}: {e}"))
        .trim()
        .to_string()
}

/// `ss -Htn ARGS` inside `host`: the number of sockets listed.
fn ss_count(lab: &Lab, host: &str, args: &[&str]) -> usize {
    let mut a = vec!["-Htn"];
    a.extend_from_slice(args);
    lab.run_ok(host, "ss", &a, CMD)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// `ss -Htln` on `host`: (Recv-Q, Send-Q) of the listener on `port`.
fn listen_queue(lab: &Lab, host: &str, port: u16) -> (u32, u32) {
    let out = lab.run_ok(host, "ss", &["-Htln"], CMD).unwrap();
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 && f[3].ends_with(&format!(":{port}")) {
            return (f[1].parse().unwrap(), f[2].parse().unwrap());
        }
    }
    panic!("no listener on port {port} on {host}: {out}");
}

/// Findings of `kind` about the server end `server` (or listener).
fn findings_for(fleet: &Fleet, lab: &Lab, kind: &str, server: &str) -> Vec<Value> {
    fleet
        .findings(lab, kind)
        .unwrap()
        .into_iter()
        .filter(|f| f["server"] == server)
        .collect()
}

/// The first diagnosis of `halfopen explain TARGET --json`.
fn explain(fleet: &Fleet, lab: &Lab, target: &str) -> Value {
    let v = fleet.query(lab, &["explain", target]).unwrap();
    v.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("explain {target} gave no diagnosis: {v}"))
}

/// The strings of a JSON array field (`causes`, `facts`).
fn strings(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Waits until `child` printed `needle` on stdout or stderr (servers log
/// to either), failing early if it exits.
fn wait_for_log(child: &LabChild, needle: &str, timeout: Duration) {
    wait_for(&format!("{needle:?} in the log"), timeout, || {
        let log = format!("{}{}", child.read_stdout().unwrap(), child.read_stderr().unwrap());
        if let Some(status) = child.try_wait().unwrap() {
            panic!("exited ({status}) before {needle:?}:\n{log}");
        }
        log.contains(needle).then_some(())
    });
}

// ------------------------------------------------------------------ MariaDB

/// A MariaDB data directory on `host`, initialised by mariadb-install-db
/// (in the lab's log directory, removed with it).
fn mariadb_datadir(lab: &Lab, host: &str, install_db: &Path) -> PathBuf {
    let dir = lab.log_dir().join(format!("mariadb-{host}"));
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    let out = lab
        .run(
            host,
            install_db.to_str().unwrap(),
            &[
                "--no-defaults",
                &format!("--datadir={}", data.display()),
                "--auth-root-authentication-method=normal",
                "--user=root",
                "--skip-test-db",
            ],
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-install-db failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

/// A real mariadbd on `host`, on 0.0.0.0:3306 with this back_log, once it is
/// ready for connections.
fn start_mariadbd(lab: &mut Lab, host: &str, mariadbd: &Path, data: &Path, back_log: u32) -> LabChild {
    let dir = data.parent().unwrap();
    let args = [
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", dir.join("mysqld.sock").display()),
        format!("--pid-file={}", dir.join("mysqld.pid").display()),
        "--bind-address=0.0.0.0".into(),
        "--port=3306".into(),
        format!("--back-log={back_log}"),
        "--skip-grant-tables".into(),
        "--skip-log-bin".into(),
        "--user=root".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = lab.spawn(host, mariadbd, &args).unwrap();
    wait_for_log(&server, "ready for connections", Duration::from_secs(60));
    server
}

/// A pool of idle MariaDB clients in one python3 process: argv HOST PORT N.
/// Each socket gets SO_KEEPALIVE before connect, completes the MySQL
/// handshake (greeting, HandshakeResponse41 as root with no password, OK:
/// the server runs with --skip-grant-tables), then idles. Prints "ready N".
const POOL_PY: &str = r#"
import socket, struct, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def read_exact(s, k):
    b = b""
    while len(b) < k:
        c = s.recv(k - len(b))
        if not c:
            raise SystemExit("the server closed the connection")
        b += c
    return b
def read_packet(s):
    head = read_exact(s, 4)
    return head[3], read_exact(s, head[0] | head[1] << 8 | head[2] << 16)
pool = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.settimeout(10)
    s.connect((host, port))
    seq, greeting = read_packet(s)
    if greeting[0] != 10:
        raise SystemExit("not a protocol 10 greeting: %r" % greeting[:16])
    # CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
    caps = 0x1 | 0x200 | 0x8000 | 0x80000
    resp = struct.pack("<IIB23x", caps, 1 << 24, 33) + b"root\0" + b"\0" + b"mysql_native_password\0"
    s.sendall(struct.pack("<I", len(resp))[:3] + bytes([seq + 1]) + resp)
    _, ok = read_packet(s)
    if ok[0] != 0:
        raise SystemExit("handshake refused: %r" % ok)
    s.settimeout(None)
    pool.append(s)
print("ready %d" % len(pool), flush=True)
while True:
    time.sleep(3600)
"#;

/// Item 2a: the server host "crashes" under a pool of idle keepalive clients
/// (its sockets vanish, no reset reaches them) and comes back with a new
/// mariadbd on the same port. The ten orphans are a restart, not an
/// overflow: nothing may suggest a bigger back_log, and the new, empty
/// listener is not at risk.
#[test]
fn a_restarted_mariadb_host_leaves_orphans_that_are_not_an_overflow() {
    const T: &str = "a_restarted_mariadb_host_leaves_orphans_that_are_not_an_overflow";
    let Some(bins) = need_all(T, &["mariadbd", "mariadb-install-db", "python3"]) else {
        return;
    };
    let [mariadbd, install_db, python] = &bins[..] else {
        unreachable!()
    };
    let _turn = turn();
    let Some(mut lab) = lab("e2e-srv-restart") else { return };
    let started = Instant::now();
    let mut fleet = standard_with(&mut lab, "1s", &["--no-db"]);
    let data = mariadb_datadir(&lab, "db", install_db);
    let first = start_mariadbd(&mut lab, "db", mariadbd, &data, 128);
    let pool = lab
        .spawn("app", python, &["-c", POOL_PY, "198.18.0.1", "3306", "10"])
        .unwrap();
    pool.wait_for_prefix("ready 10", Duration::from_secs(30)).unwrap();
    let pool_comm = comm_of(pool.pid());
    let server: SocketAddr = "198.18.0.1:3306".parse().unwrap();
    let held = |lab: &Lab| -> BTreeSet<(SocketAddr, SocketAddr)> {
        lab.ss_established("app")
            .unwrap()
            .into_iter()
            .filter(|c| c.remote == server)
            .map(|c| c.tuple())
            .collect()
    };
    let pool_conns = held(&lab);
    assert_eq!(pool_conns.len(), 10, "{pool_conns:?}");
    // Healthy while both ends hold them (a few intervals).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(fleet.query(&lab, &["findings"]).unwrap(), serde_json::json!([]));

    // The crash: nothing db sends reaches app any more; mariadbd and the
    // collector die; the closing sockets mariadbd leaves (FIN-WAIT, their
    // FIN dropped) are destroyed, as a power cut would.
    lab.nft(
        "db",
        "table inet crash {\n chain out { type filter hook output priority 0; ip daddr 198.18.0.2 drop; }\n}",
    )
    .unwrap();
    first.kill().unwrap();
    fleet.collector("db").unwrap().kill().unwrap();
    lab.run_ok("db", "ss", &["-K", "-tn", "sport", "=", ":3306"], CMD)
        .unwrap();
    let left = lab.run_ok("db", "ss", &["-Htan", "sport", "=", ":3306"], CMD).unwrap();
    assert!(left.trim().is_empty(), "db still holds sockets on 3306: {left}");
    lab.nft("db", "delete table inet crash").unwrap();
    assert_eq!(held(&lab), pool_conns, "the clients must not have heard a thing");

    // db comes back: a new mariadbd on the same port, a new collector with
    // the same host id.
    let second = start_mariadbd(&mut lab, "db", mariadbd, &data, 128);
    fleet.add_collector(&mut lab, "db", "1s").unwrap();
    fleet.wait_for_collectors_named(&lab, &["db"], TIMEOUT).unwrap();
    let found = wait_for("the 10 orphans of the restart", TIMEOUT, || {
        let f = findings_for(&fleet, &lab, "client_only", "198.18.0.1:3306");
        (finding_pairs(&f) == pool_conns).then_some(f)
    });
    assert_eq!(ss_client_only(&lab, "app", "db", server).unwrap(), pool_conns);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(pool.pid() as u64), "the pool's pid: {f}");
        assert_eq!(f["process"].as_str(), Some(pool_comm.as_str()), "{f}");
        assert_eq!(f["keepalive"], true, "SO_KEEPALIVE is on: {f}");
        let r = &f["evidence"]["server_restarted"];
        assert_eq!(r["what"], "listener restarted", "{f}");
        assert!(r["at_ms"].as_i64().unwrap() > 0, "{f}");
        let e = f["explanation"].as_str().unwrap();
        assert!(e.contains("This is not an accept-queue overflow"), "{e}");
        assert!(e.contains("listener restarted"), "{e}");
        assert!(e.contains("The client socket has keepalive"), "{e}");
        assert!(!e.contains("overflowed"), "{e}");
        assert_eq!(
            f["server_pid"].as_u64(),
            Some(second.pid() as u64),
            "the new mariadbd: {f}"
        );
        assert_eq!(f["server_process"], "mariadbd", "{f}");
        assert_eq!(f["confirmed_by_client"], true, "{f}");
    }

    let d = explain(&fleet, &lab, "db:3306");
    println!("explain db:3306: {d:#}");
    let changes = d["changes"].as_array().unwrap();
    for c in changes {
        let s = c["setting"].as_str().unwrap();
        assert!(
            !s.contains("back_log") && !s.contains("somaxconn") && !s.contains("tcp_max_syn_backlog"),
            "a restart is not cured by a bigger queue: {c}"
        );
        assert!(!s.contains("keepalive"), "keepalive is already on: {c}");
    }
    let causes = strings(&d, "causes");
    assert!(
        causes.iter().any(
            |c| c.contains("restarted (listener restarted) after 10 of these connections")
                && c.contains("This is not an overflow")
        ),
        "{causes:?}"
    );
    assert!(!causes.iter().any(|c| c.contains("overflowed")), "{causes:?}");
    let facts = strings(&d, "facts");
    assert!(
        facts
            .iter()
            .any(|c| c.contains("keepalive is on for 10 of 10 client-only sockets")),
        "{facts:?}"
    );
    // The new, empty listener is not at risk (now, nor a few intervals on).
    for _ in 0..2 {
        let risk = fleet.findings(&lab, "listener_at_risk").unwrap();
        assert!(risk.is_empty(), "{risk:?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}

// ------------------------------------------------------------- SYN drops

/// Item 2b: the accept queue of a greeting server (backlog 511) stays full
/// for 20 s while 900 clients connect: with tcp_syncookies=1 the kernel
/// drops the surplus SYNs and sends no cookie. Nobody is one-sided: the
/// diagnosis says so, and counts the clients stuck in SYN-SENT.
#[test]
fn syn_drops_without_cookies_leave_no_one_sided_connection() {
    const T: &str = "syn_drops_without_cookies_leave_no_one_sided_connection";
    let _turn = turn();
    let Some(mut lab) = lab("e2e-syndrop") else { return };
    let started = Instant::now();
    let fleet = standard_with(&mut lab, "1s", &["--no-db"]);
    assert_eq!(lab.sysctl_get("db", "net.ipv4.tcp_syncookies").unwrap(), "1");
    let before = lab.net_counters("db").unwrap();
    let server = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3306",
        &["--backlog", "511", "--accept-delay", "20s"],
    );
    let listening = Instant::now();
    let burst_of = |lab: &mut Lab, n: &str| {
        lab.spawn(
            "app",
            &exe(),
            &[
                "lab",
                "burst",
                "--target",
                "198.18.0.1:3306",
                "--count",
                n,
                "--connect-timeout",
                "40s",
            ],
        )
        .unwrap()
    };
    // 511 fill the queue to its limit with fewer than 511 handshakes under
    // way at any moment (so no SYN cookie is ever due); then 389 more find
    // it full.
    let _first = burst_of(&mut lab, "511");
    wait_for("the first 511 to be queued", Duration::from_secs(10), || {
        (listen_queue(&lab, "db", 3306).0 >= 511).then_some(())
    });
    let _second = burst_of(&mut lab, "389");
    let syn_sent = wait_for("clients stuck in SYN-SENT", Duration::from_secs(10), || {
        let n = ss_count(&lab, "app", &["state", "syn-sent"]);
        (n >= 300).then_some(n)
    });
    println!("{syn_sent} clients in SYN-SENT");
    let d = wait_for(
        "explain to see the drops and the SYN-SENT clients",
        Duration::from_secs(12),
        || {
            let d = explain(&fleet, &lab, "db:3306");
            let causes = strings(&d, "causes");
            (causes.iter().any(|c| c.contains("no SYN cookie was sent"))
                && causes.iter().any(|c| c.contains("stuck in SYN-SENT")))
            .then_some(d)
        },
    );
    println!("explain db:3306: {d:#}");
    let after = lab.net_counters("db").unwrap();
    let rose = |k: &str| after.get(k).copied().unwrap_or(0) - before.get(k).copied().unwrap_or(0);
    assert!(rose("TcpExt.ListenOverflows") > 0, "the queue must overflow");
    assert_eq!(
        rose("TcpExt.SyncookiesSent"),
        0,
        "no cookie may be sent for this test to mean anything"
    );
    let causes = strings(&d, "causes");
    let stuck = causes.iter().find(|c| c.contains("stuck in SYN-SENT")).unwrap();
    let n: u64 = stuck.split_whitespace().next().unwrap().parse().unwrap();
    assert!(n > 0 && n <= 389, "the SYN-SENT count: {stuck}");
    for c in &causes {
        assert!(!c.contains("believe they are connected"), "{c}");
        assert!(!c.contains("SYN cookies answered"), "{c}");
        assert!(!c.contains("client-only"), "{c}");
    }
    for r in fleet.findings(&lab, "listener_at_risk").unwrap() {
        let e = r["explanation"].as_str().unwrap();
        assert!(!e.contains("the client believes it is connected"), "{e}");
    }
    // Until the server accepts (at 20 s) and 5 s after, no client is
    // one-sided.
    while listening.elapsed() < Duration::from_secs(25) {
        let all = fleet.query(&lab, &["findings", "--kind", "client_only"]).unwrap();
        assert_eq!(all, serde_json::json!([]), "no client can be one-sided");
        assert!(
            ss_client_only(&lab, "app", "db", "198.18.0.1:3306".parse().unwrap())
                .unwrap()
                .is_empty(),
            "ss shows a one-sided connection: the test itself is wrong"
        );
        std::thread::sleep(Duration::from_millis(700));
    }
    server.wait_for_prefix("accepting", Duration::from_secs(1)).unwrap();
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}

// ----------------------------------------------------------------- Redis

/// Kills everything on `host` and deletes its namespace, its eth0 taken
/// down first so that no FIN or reset leaves it: the host is gone for good.
fn vanish(lab: &Lab, host: &str) {
    lab.run_ok(host, "ip", &["link", "set", "eth0", "down"], CMD).unwrap();
    let ns = lab.host(host).netns.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = std::process::Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .unwrap();
        let pids: Vec<i32> = String::from_utf8_lossy(&pids.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes {pids:?} survive in {ns}");
        for p in pids {
            // SAFETY: kill(2) has no memory effects; the pid was read just
            // now from the namespace.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = std::process::Command::new("ip")
        .args(["netns", "del", &ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip netns del {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Redis on db (maxclients 28) with 25 idle connections from app, the
/// reconciler with --gone-after 10s. Returns the fleet, the server and the
/// 25 connections as db holds them, (client, server).
fn redis_with_idle_clients(lab: &mut Lab, redis: &Path) -> (Fleet, LabChild, BTreeSet<(SocketAddr, SocketAddr)>) {
    let fleet = standard_with(lab, "1s", &["--no-db", "--gone-after", "10s"]);
    let dir = lab.log_dir().join("redis");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.to_string_lossy().into_owned();
    let server = lab
        .spawn(
            "db",
            redis,
            &[
                "--port",
                "6379",
                "--bind",
                "0.0.0.0",
                "--maxclients",
                "28",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--dir",
                &dir,
            ],
        )
        .unwrap();
    wait_for_log(&server, "Ready to accept connections", Duration::from_secs(30));
    let clients = lab
        .spawn(
            "app",
            &exe(),
            &["lab", "burst", "--target", "198.18.0.1:6379", "--count", "25"],
        )
        .unwrap();
    clients
        .wait_for_line(|l| l.contains("\"established\":25"), Duration::from_secs(20))
        .unwrap();
    let held: BTreeSet<(SocketAddr, SocketAddr)> = lab
        .ss_established("db")
        .unwrap()
        .into_iter()
        .filter(|c| c.local.port() == 6379)
        .map(|c| c.mirrored())
        .collect();
    assert_eq!(held.len(), 25, "redis must hold the 25: {held:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        fleet.query(lab, &["findings"]).unwrap(),
        serde_json::json!([]),
        "healthy idle connections reported"
    );
    (fleet, server, held)
}

/// The 25 leftovers of gone host app on Redis, checked; returns them.
fn assert_leftovers(
    fleet: &Fleet,
    lab: &Lab,
    redis: &LabChild,
    held: &BTreeSet<(SocketAddr, SocketAddr)>,
    gone_since: (i64, i64),
    within: Duration,
) {
    let start = Instant::now();
    let found = wait_for("25 leftovers of app", within, || {
        let f = findings_for(fleet, lab, "server_only", "198.18.0.1:6379");
        (f.len() == 25).then_some(f)
    });
    println!("25 server_only findings after {:?}", start.elapsed());
    assert_eq!(&finding_pairs(&found), held);
    for f in &found {
        assert_eq!(f["confirmed_by_client"], false, "only the server confirmed it: {f}");
        assert_eq!(f["client_host_gone"], true, "{f}");
        assert_eq!(f["client_host"], "app", "{f}");
        assert_eq!(f["server_host"], "db", "{f}");
        assert_eq!(f["server_process"], "redis-server", "{f}");
        assert_eq!(f["server_pid"].as_u64(), Some(redis.pid() as u64), "{f}");
        assert!(f["pid"].is_null(), "no client process is known: {f}");
        let since = f["evidence"]["client_host_gone_since_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("client_host_gone_since_ms missing: {f}"));
        assert!(
            since >= gone_since.0 && since <= gone_since.1,
            "gone since {since}, expected within {gone_since:?}: {f}"
        );
        let e = f["explanation"].as_str().unwrap();
        assert!(e.contains("The client host app has been gone since"), "{e}");
    }
    let d = explain(fleet, lab, "db:6379");
    println!("explain db:6379: {d:#}");
    let causes = strings(&d, "causes");
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("25 connections from host that is gone (app) are still held here")),
        "{causes:?}"
    );
    let changes = d["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["setting"] == "timeout (Redis)"),
        "Redis's timeout must be named: {changes:?}"
    );
    let cov = fleet.query(lab, &["coverage"]).unwrap();
    assert!(
        cov["gone"].as_array().unwrap().iter().any(|h| h == "app"),
        "coverage: {cov}"
    );
    // The gone host's own findings are not listed (it held nothing that is
    // still known), and nothing is judged as if its sockets were current.
    let client_only = fleet.findings(lab, "client_only").unwrap();
    assert!(client_only.is_empty(), "{client_only:?}");
}

/// Item 3: app dies for good (its collector stops, then its sockets vanish
/// without a reset). After --gone-after (10 s) and a few intervals, the 25
/// connections Redis still holds are leftovers, confirmed by the server
/// alone, and the diagnosis names Redis's `timeout`.
#[test]
fn leftovers_of_a_host_that_never_returns_are_reported_on_redis() {
    const T: &str = "leftovers_of_a_host_that_never_returns_are_reported_on_redis";
    let Some(redis) = need(T, "redis-server") else { return };
    let _turn = turn();
    let Some(mut lab) = lab("e2e-redis-gone") else { return };
    let started = Instant::now();
    let (fleet, server, held) = redis_with_idle_clients(&mut lab, &redis);
    // The collector stops (its session ends), then the host vanishes.
    let t0 = now_ms();
    fleet.collector("app").unwrap().kill().unwrap();
    vanish(&lab, "app");
    let t1 = now_ms();
    let still: BTreeSet<_> = lab
        .ss_established("db")
        .unwrap()
        .into_iter()
        .filter(|c| c.local.port() == 6379)
        .map(|c| c.mirrored())
        .collect();
    assert_eq!(still, held, "redis must still hold all 25 (no reset reached it)");
    // gone_after 10 s + a few 1 s intervals.
    assert_leftovers(
        &fleet,
        &lab,
        &server,
        &held,
        (t0 - 1000, t1 + 1000),
        Duration::from_secs(20),
    );
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}

/// Item 3, the harder way: app loses power. Its collector never closes
/// its session (no FIN, no reset: eth0 goes down first), so the reconciler
/// can only learn it from the session's keepalive (HTTP/2 pings every 15 s,
/// 20 s to answer); then --gone-after (10 s) runs.
#[test]
fn leftovers_of_a_host_that_lost_power_are_reported_on_redis() {
    const T: &str = "leftovers_of_a_host_that_lost_power_are_reported_on_redis";
    let Some(redis) = need(T, "redis-server") else { return };
    let _turn = turn();
    let Some(mut lab) = lab("e2e-redis-power") else { return };
    let started = Instant::now();
    let (fleet, server, held) = redis_with_idle_clients(&mut lab, &redis);
    let t0 = now_ms();
    vanish(&lab, "app");
    // The session is found dead within 15 + 20 s; gone 10 s later; a few
    // intervals of slack.
    let within = Duration::from_secs(15 + 20 + 10 + 10);
    assert_leftovers(&fleet, &lab, &server, &held, (t0 - 1000, t0 + 36_000), within);
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}

// ------------------------------------------------------ stuck accept loop

/// Item 4: a greeting server (backlog 100) that does not accept for 30 s
/// while 60 clients connect: accept_stalled on its listener, naming it, with
/// the queue and the wait; gone once it accepts.
#[test]
fn a_stuck_accept_loop_is_found_and_clears_when_it_accepts() {
    const T: &str = "a_stuck_accept_loop_is_found_and_clears_when_it_accepts";
    let _turn = turn();
    let Some(mut lab) = lab("e2e-acceptstall") else { return };
    let started = Instant::now();
    let fleet = standard_with(&mut lab, "1s", &["--no-db", "--accept-stall-after", "5s"]);
    let server = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3306",
        &["--backlog", "100", "--accept-delay", "30s"],
    );
    let listening = Instant::now();
    let clients = burst(&mut lab, "app", "198.18.0.1:3306", 60);
    clients
        .wait_for_line(|l| l.contains("\"established\":60"), Duration::from_secs(15))
        .unwrap();
    let stalled = wait_for("accept_stalled on db's listener", Duration::from_secs(20), || {
        let f = findings_for(&fleet, &lab, "accept_stalled", "0.0.0.0:3306");
        (!f.is_empty()).then_some(f)
    });
    assert!(
        listening.elapsed() < Duration::from_secs(30),
        "found too late to mean anything"
    );
    assert_eq!(stalled.len(), 1, "{stalled:?}");
    let f = &stalled[0];
    println!("accept_stalled: {f:#}");
    let (queue, backlog) = listen_queue(&lab, "db", 3306);
    assert_eq!((queue, backlog), (60, 100), "ss -tln");
    assert_eq!(f["server_host"], "db");
    assert_eq!(f["listener"], "0.0.0.0:3306");
    assert_eq!(f["server_pid"].as_u64(), Some(server.pid() as u64), "{f}");
    assert_eq!(f["server_process"], "halfopen", "{f}");
    let e = &f["evidence"];
    assert_eq!(e["queued"].as_u64(), Some(60), "{f}");
    let wait = e["accept_wait_ms"].as_u64().unwrap();
    assert!(wait > 5000 && wait < 30_000, "accept_wait_ms {wait}: {f}");
    assert_eq!(e["listener"]["queue"].as_u64(), Some(60), "{f}");
    assert_eq!(e["listener"]["backlog"].as_u64(), Some(100), "{f}");
    let text = f["explanation"].as_str().unwrap();
    assert!(
        text.contains("has not accepted 60 connections on 0.0.0.0:3306"),
        "{text}"
    );
    let d = explain(&fleet, &lab, "db:3306");
    let causes = strings(&d, "causes");
    assert!(
        causes
            .iter()
            .any(|c| c.starts_with("The server is not accepting: 60 connections wait")),
        "{causes:?}"
    );
    // It accepts at 30 s: the finding goes away.
    server.wait_for_prefix("accepting", Duration::from_secs(35)).unwrap();
    let accepted = Instant::now();
    let mut left = Vec::new();
    while accepted.elapsed() < Duration::from_secs(10) {
        left = fleet.findings(&lab, "accept_stalled").unwrap();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (queue, _) = listen_queue(&lab, "db", 3306);
    let owned = lab
        .ss_established("db")
        .unwrap()
        .into_iter()
        .filter(|c| c.local.port() == 3306 && c.process.as_ref().map(|p| p.0) == Some(server.pid()))
        .count();
    assert!(
        left.is_empty(),
        "accept_stalled still listed 10 s after the server accepted everything (ss -tln: queue {queue}; \
         {owned} connections owned by the server's pid {}): {left:#?}",
        server.pid()
    );
    assert_eq!(queue, 0);
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}

// ------------------------------------------------------ stalled greetings

/// Item 5: three connections a greeting server accepts and does not greet
/// for 20 s: each stalled_greeting names the client process (the burst's
/// pid and comm) and the server's.
#[test]
fn stalled_greetings_name_the_client_and_the_server_process() {
    const T: &str = "stalled_greetings_name_the_client_and_the_server_process";
    let _turn = turn();
    let Some(mut lab) = lab("e2e-stall-pid") else { return };
    let started = Instant::now();
    let fleet = standard_with(&mut lab, "1s", &["--no-db", "--stall-after", "3s"]);
    let server = greet_server(
        &mut lab,
        "db",
        "0.0.0.0:3306",
        &["--backlog", "128", "--greet-delay", "20s"],
    );
    let clients = burst(&mut lab, "app", "198.18.0.1:3306", 3);
    clients
        .wait_for_line(|l| l.contains("\"established\":3"), Duration::from_secs(10))
        .unwrap();
    let comm = comm_of(clients.pid());
    let stalled = wait_for("3 stalled greetings", Duration::from_secs(15), || {
        let s = fleet.findings(&lab, "stalled_greeting").unwrap();
        (s.len() == 3).then_some(s)
    });
    let truth: BTreeSet<(SocketAddr, SocketAddr)> = lab
        .ss_established("app")
        .unwrap()
        .into_iter()
        .filter(|c| c.remote.port() == 3306)
        .map(|c| c.tuple())
        .collect();
    assert_eq!(finding_pairs(&stalled), truth);
    for f in &stalled {
        assert_eq!(f["pid"].as_u64(), Some(clients.pid() as u64), "the burst: {f}");
        assert_eq!(f["process"].as_str(), Some(comm.as_str()), "{f}");
        assert!(f["cmdline"].as_str().unwrap().contains("burst"), "{f}");
        assert_eq!(
            f["server_pid"].as_u64(),
            Some(server.pid() as u64),
            "the greet server: {f}"
        );
        assert_eq!(f["server_process"], "halfopen", "{f}");
        assert_eq!(f["in_accept_queue"], false, "{f}");
        assert!(f["silent_ms"].as_u64().unwrap() >= 3000, "{f}");
    }
    println!("{T}: {:?}", started.elapsed());
    lab.teardown().unwrap();
}
