//! No threads or file descriptors left behind by namespace workers: 20
//! namespaces are made, entered by 20 workers that each read their socket
//! table, joined, and deleted; the process's task and fd counts come back
//! to where they were. Alone in its own test binary so that no other test's
//! threads or fds move the counts.
use std::net::Ipv4Addr;
use std::sync::mpsc;
use std::time::Duration;

use halfopen_lab::{require_root_or_skip, Lab};
use halfopen_sockets::netns::{discover, spawn_in, DiscoverOptions, NetnsHandle};
use halfopen_sockets::Scanner;

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn twenty_workers_in_deleted_namespaces_leave_no_threads_or_fds() {
    if !require_root_or_skip("twenty_workers_in_deleted_namespaces_leave_no_threads_or_fds") {
        return;
    }
    let mut lab = Lab::new("nsleak").unwrap();
    let hosts: Vec<String> = (0..20u8)
        .map(|i| {
            lab.add_host(&format!("h{i}"), Ipv4Addr::new(198, 18, 3, i + 1))
                .unwrap()
                .netns
        })
        .collect();
    let opts = DiscoverOptions::default();
    let d = discover(&opts).unwrap();

    let tasks_before = count("/proc/self/task");
    let fds_before = count("/proc/self/fd");

    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    let mut handles = Vec::new();
    let mut workers = Vec::new();
    for name in &hosts {
        let h = NetnsHandle::open_discovered(d.named(name).unwrap(), &opts).unwrap();
        let rx = release_rx.clone();
        let w = spawn_in(&h, "ns-leak-worker", move || {
            let mut sc = Scanner::open().unwrap();
            let mut out = Vec::new();
            sc.listeners(&mut out).unwrap();
            drop(sc);
            // wait to be counted, then end
            let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
            out.len()
        })
        .unwrap();
        handles.push(h);
        workers.push(w);
    }
    // the counts do see workers and handles while they exist
    assert!(count("/proc/self/task") >= tasks_before + 20, "20 workers are threads");
    assert!(count("/proc/self/fd") >= fds_before + 20, "20 handles hold an fd each");
    for _ in 0..workers.len() {
        release_tx.send(()).unwrap();
    }
    for w in workers {
        assert_eq!(w.join().unwrap(), 0, "a fresh namespace has no listener");
    }
    drop(handles);
    lab.teardown().unwrap();

    // the namespaces are gone from the discovery
    let after = discover(&opts).unwrap();
    for name in &hosts {
        assert!(after.named(name).is_none(), "{name} still listed");
    }
    assert_eq!(count("/proc/self/task"), tasks_before, "threads left behind");
    assert_eq!(count("/proc/self/fd"), fds_before, "fds left behind");
}
