//! What a collector without privileges gets: this test binary runs itself
//! again under `setpriv` with CAP_SYS_ADMIN (and, in the second case, also
//! CAP_SYS_PTRACE) removed from the bounding and inheritable sets, so the
//! root child really lacks them, and the child checks that discovery still
//! lists the namespace while entering it fails with the typed error naming
//! the capability. The child entry is `#[ignore]`d so a plain `cargo test`
//! runs only the parents, which run it; run by hand (`--ignored`) without
//! the parent's variables it plays the parents' part itself.
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use halfopen_lab::{require_root_or_skip, Lab};
use halfopen_sockets::netns::{
    caps, discover, spawn_in, Capability, DiscoverOptions, NetnsError, NetnsHandle, ProblemKind,
};

const NS_VAR: &str = "HALFOPEN_NETNS_CAPS_NS";
const DROP_VAR: &str = "HALFOPEN_NETNS_CAPS_DROP";
const PARENT_VAR: &str = "HALFOPEN_NETNS_CAPS_PARENT";
const CHILD: &str = "child_without_capabilities";

/// Runs the child entry under setpriv without `drop` (e.g. "sys_admin") and
/// returns its stdout; fails on a non-zero exit or after 60 s.
fn run_child(netns: &str, drop: &[&str]) -> String {
    let exe = std::env::current_exe().unwrap();
    let caps: Vec<String> = drop.iter().map(|c| format!("-{c}")).collect();
    let caps = caps.join(",");
    let mut child = Command::new("setpriv")
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--bounding-set={caps}"))
        .arg("--")
        .arg(&exe)
        .args(["--exact", CHILD, "--ignored", "--nocapture", "--test-threads=1"])
        .env(NS_VAR, netns)
        .env(DROP_VAR, drop.join(","))
        .env(PARENT_VAR, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child under setpriv did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "child failed ({status}):\n{out}\n{err}");
    out
}

fn parent(tag: &str, drop: &[&str]) -> String {
    let mut lab = Lab::new(tag).unwrap();
    let host = lab.add_host("a", Ipv4Addr::new(198, 18, 4, 1)).unwrap();
    let out = run_child(&host.netns, drop);
    lab.teardown().unwrap();
    out
}

#[test]
fn without_cap_sys_admin_the_namespace_is_listed_and_entering_names_the_capability() {
    if !require_root_or_skip("without_cap_sys_admin_the_namespace_is_listed_and_entering_names_the_capability") {
        return;
    }
    let out = parent("nscap", &["sys_admin"]);
    assert!(out.contains("CHILD OK: setns refused, missing CAP_SYS_ADMIN"), "{out}");
}

#[test]
fn without_cap_sys_ptrace_either_root_processes_are_counted_as_refused() {
    if !require_root_or_skip("without_cap_sys_ptrace_either_root_processes_are_counted_as_refused") {
        return;
    }
    let out = parent("nscap2", &["sys_admin", "sys_ptrace"]);
    assert!(out.contains("CHILD OK: setns refused, missing CAP_SYS_ADMIN"), "{out}");
    assert!(
        out.contains("CHILD OK: parent's namespace refused, missing CAP_SYS_PTRACE"),
        "{out}"
    );
}

#[test]
#[ignore = "run by the two tests above, under setpriv, with their environment"]
fn child_without_capabilities() {
    let Ok(netns) = std::env::var(NS_VAR) else {
        // run by hand: do the parents' work
        if require_root_or_skip(CHILD) {
            without_cap_sys_admin_the_namespace_is_listed_and_entering_names_the_capability();
            without_cap_sys_ptrace_either_root_processes_are_counted_as_refused();
        }
        return;
    };
    let dropped = std::env::var(DROP_VAR).unwrap();
    let parent_pid: u32 = std::env::var(PARENT_VAR).unwrap().parse().unwrap();
    let eff = caps::effective_capabilities().unwrap();
    assert!(
        !Capability::SysAdmin.in_set(eff),
        "setpriv did not drop CAP_SYS_ADMIN: {eff:#x}"
    );
    let no_ptrace = dropped.contains("sys_ptrace");
    assert_eq!(Capability::SysPtrace.in_set(eff), !no_ptrace, "{eff:#x}");

    // keep every problem, to look for one pid's
    let opts = DiscoverOptions {
        max_problems: 100_000,
        ..Default::default()
    };
    let d = discover(&opts).unwrap();
    assert_eq!(d.problems_dropped, 0);
    let parent_refused = d
        .problems
        .iter()
        .any(|p| p.kind == ProblemKind::ProcDenied { pid: parent_pid });
    let ns = d
        .named(&netns)
        .unwrap_or_else(|| panic!("{netns} not listed: {:?}", d.namespaces));
    // listed, without a cookie, and the refusal is counted and described
    assert_eq!(ns.cookie, None);
    assert!(d.stats.cookies_denied >= 1);
    let p = d
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::CookieDenied { inode: ns.inode })
        .unwrap_or_else(|| panic!("no CookieDenied for {netns}: {:?}", d.problems));
    assert!(p.error.contains("CAP_SYS_ADMIN"), "{}", p.error);
    assert!(p.to_string().contains("cannot be entered"), "{p}");
    // the own namespace's cookie needs no privilege
    assert!(d.own().unwrap().cookie.is_some());

    // opening the named namespace needs none either; entering it does
    let h = NetnsHandle::open_discovered(ns, &opts).unwrap();
    match spawn_in(&h, "must-not-run", || panic!("ran without entering")) {
        Err(e @ NetnsError::SetnsDenied { .. }) => {
            assert_eq!(e.missing_capability(), Some(Capability::SysAdmin));
            assert!(e.is_denied());
            let NetnsError::SetnsDenied { has_cap_sys_admin, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*has_cap_sys_admin, Some(false));
            let msg = e.to_string();
            assert!(msg.contains("needs CAP_SYS_ADMIN"), "{msg}");
            assert!(msg.contains("effective capability set lacks it"), "{msg}");
            println!("CHILD OK: setns refused, missing {}", e.missing_capability().unwrap());
        }
        Err(e) => panic!("expected SetnsDenied, got {e}"),
        Ok(_) => panic!("entered {netns} without CAP_SYS_ADMIN"),
    }

    // the parent (root with every capability) holds capabilities we lack:
    // without CAP_SYS_PTRACE its namespace file is refused
    let parent_ns = NetnsHandle::open_pid(Path::new("/proc"), parent_pid);
    if no_ptrace {
        match parent_ns {
            Err(e @ NetnsError::OpenDenied { .. }) => {
                assert_eq!(e.missing_capability(), Some(Capability::SysPtrace));
                assert!(e.to_string().contains("CAP_SYS_PTRACE"), "{e}");
            }
            other => panic!("expected OpenDenied, got {other:?}"),
        }
        assert!(
            parent_refused,
            "the discovery did not count the parent: {:?}",
            d.problems
        );
        let p = d
            .problems
            .iter()
            .find(|p| p.kind == ProblemKind::ProcDenied { pid: parent_pid })
            .unwrap();
        assert_eq!(p.errno, Some(libc::EACCES), "proc_ns_get_link answers EACCES");
        assert!(p.to_string().contains("CAP_SYS_PTRACE"), "{p}");
        println!("CHILD OK: parent's namespace refused, missing CAP_SYS_PTRACE");
    } else {
        // with CAP_SYS_PTRACE the ptrace read check passes
        assert_eq!(parent_ns.unwrap().inode(), d.own().unwrap().inode);
        assert!(!parent_refused, "{:?}", d.problems);
    }
}
