//! Without privilege the kernel refuses, and the error says what is missing: a child process
//! run through `setpriv` with CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN removed from its bounding
//! set (so root, but without them) tries `Bpf::load`. Needs root to drop them from
//! (`cargo test -p halfopen-bpf --features bpf`).

#![cfg(feature = "bpf")]

use std::process::Command;
use std::time::{Duration, Instant};

use halfopen_bpf::{Bpf, BpfError, LoadOptions};
use halfopen_lab::require_root_or_skip;

const MARK: &str = "LOAD-RESULT ";

#[test]
#[ignore = "run by load_without_capabilities_is_permission_denied in a process without capabilities"]
fn load_in_this_process() {
    let caps = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = caps.lines().find(|l| l.starts_with("CapEff:")).unwrap_or("CapEff: ?");
    match Bpf::load(&LoadOptions::default()) {
        Ok(_) => println!("{MARK}loaded ({eff})"),
        Err(e @ BpfError::PermissionDenied { .. }) => println!("{MARK}PermissionDenied: {e} ({eff})"),
        Err(e) => println!("{MARK}other: {e:?} ({eff})"),
    }
}

/// Runs `load_in_this_process` under setpriv with these capabilities removed; returns its
/// result line.
fn load_without(caps: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", caps, "--inh-caps=-all"]).arg(&exe).args([
        "load_in_this_process",
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--quiet",
    ]);
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux)");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.find(MARK).map(|i| l[i + MARK.len()..].to_string()))
        .unwrap_or_else(|| {
            panic!(
                "no result line; stdout {stdout}; stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn load_without_capabilities_is_permission_denied() {
    if !require_root_or_skip("load_without_capabilities_is_permission_denied") {
        return;
    }
    let line = load_without("-bpf,-perfmon,-sys_admin");
    assert!(line.starts_with("PermissionDenied:"), "{line}");
    assert!(line.contains("lacks CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN"), "{line}");
    assert!(
        line.contains("needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN"),
        "{line}"
    );
}

#[test]
fn cap_bpf_and_cap_perfmon_are_enough() {
    if !require_root_or_skip("cap_bpf_and_cap_perfmon_are_enough") {
        return;
    }
    // Without CAP_SYS_ADMIN the kernel may still refuse a hook (fentry/fexit is refused here
    // even to root): that must not be taken for missing privilege.
    let line = load_without("-sys_admin");
    assert!(line.starts_with("loaded"), "{line}");
}
