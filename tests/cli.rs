//! The `halfopen` binary's own behaviour on one host: `snapshot` against real
//! sockets on loopback, and clear errors for bad input and missing services.
use std::io::Read;
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
}

#[test]
fn reconciler_reports_a_port_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = halfopen(&["reconciler", "--listen", &addr, "--no-db"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn demo_without_root_says_why() {
    if unsafe { libc::geteuid() } != 0 {
        let out = halfopen(&["demo"]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
        return;
    }
    // As root: run it as nobody, from a copy that nobody can read wherever
    // the build directory is.
    let dir = std::env::temp_dir().join(format!("halfopen-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("halfopen");
    std::fs::copy(env!("CARGO_BIN_EXE_halfopen"), &exe).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .arg("demo")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) is needed for this test");
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!status.success());
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
        assert!(
            text.contains("Example") || cmd == "demo",
            "{cmd} --help has no example:\n{text}"
        );
    }
    let out = halfopen(&["--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("halfopen demo"));
}
