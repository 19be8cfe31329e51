//! A test that panics mid-way leaves no namespace and no process behind: once in a child test
//! process (the real harness unwinding), once in-process with catch_unwind.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{bin, namespaces_starting_with, output_within, wait_pid_gone};
use halfopen_lab::{require_root_or_skip, Lab};

const CHILD_ENV: &str = "HALFOPEN_LAB_PANIC_CHILD";

#[test]
#[ignore = "the child half of panic_mid_test_leaves_nothing_behind; does nothing on its own"]
fn panicking_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut lab = Lab::new("lab-panic").unwrap();
    lab.add_host("a", Ipv4Addr::new(198, 18, 5, 1)).unwrap();
    lab.add_host("b", Ipv4Addr::new(198, 18, 5, 2)).unwrap();
    let server = lab
        .spawn(
            "a",
            bin(),
            &["greet-server", "--listen", "0.0.0.0:3306", "--backlog", "4"],
        )
        .unwrap();
    server.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    let mut stray = lab.command("b", "sleep").unwrap();
    stray.arg("300");
    // Never waited for on purpose: the lab's Drop must kill it (it is inside the namespace).
    #[allow(clippy::zombie_processes)]
    let stray = stray.spawn().unwrap();
    println!("PREFIX={}", lab.prefix());
    println!("PIDS={} {}", server.pid(), stray.id());
    panic!("deliberate panic mid-test");
}

#[test]
fn panic_mid_test_leaves_nothing_behind() {
    if !require_root_or_skip("panic_mid_test_leaves_nothing_behind") {
        return;
    }
    let t0 = Instant::now();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "panicking_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1");
    let out = output_within(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child test must fail:\n{stdout}\n{stderr}");
    assert!(stderr.contains("deliberate panic mid-test"), "{stderr}");
    let prefix = stdout
        .lines()
        .find_map(|l| l.split_once("PREFIX=").map(|(_, p)| p.trim()))
        .unwrap_or_else(|| panic!("no PREFIX line:\n{stdout}\n{stderr}"));
    let pids: Vec<u32> = stdout
        .lines()
        .find_map(|l| l.split_once("PIDS=").map(|(_, p)| p))
        .expect("PIDS line")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(namespaces_starting_with(&format!("{prefix}-")).is_empty());
    assert!(namespaces_starting_with("ho-lab-panic-").is_empty());
    for pid in pids {
        assert!(wait_pid_gone(pid, Duration::from_secs(5)), "pid {pid} survived");
    }
    // A panicking lab keeps its logs and says where.
    assert!(stderr.contains("logs of lab"), "{stderr}");
    let kept = std::env::temp_dir().join(prefix);
    assert!(kept.exists());
    let _ = std::fs::remove_dir_all(kept);
    eprintln!("panic_mid_test_leaves_nothing_behind took {:?}", t0.elapsed());
}

#[test]
fn catch_unwind_leaves_nothing_behind() {
    if !require_root_or_skip("catch_unwind_leaves_nothing_behind") {
        return;
    }
    let mut prefix = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut lab = Lab::new("lab-unwind").unwrap();
        prefix = lab.prefix().to_string();
        lab.add_host("a", Ipv4Addr::new(198, 18, 6, 1)).unwrap();
        lab.spawn("a", std::path::Path::new("sleep"), &["300"]).unwrap();
        panic!("deliberate");
    }));
    assert!(result.is_err());
    assert!(!prefix.is_empty());
    assert!(namespaces_starting_with(&format!("{prefix}-")).is_empty());
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&prefix));
}
