//! The eBPF source on the real kernel, in a lab namespace (root, and the
//! cargo feature `bpf`): the table the transitions build is held to the
//! kernel's own count of ESTABLISHED and CLOSE_WAIT sockets (Tcp CurrEstab,
//! handed over with each report's counters as the worker does), and under
//! churn between reports they agree exactly (offset 0, never a loss).

#![cfg(feature = "bpf")]

use halfopen_bpf::ClockAnchor;
use halfopen_collector::bpf::{BpfHub, BpfSource};
use halfopen_collector::estab::Reading;
use halfopen_collector::source::{Changes, TableSource};
use halfopen_lab::{require_root_or_skip, Lab};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::time::Duration;

#[test]
fn the_event_table_agrees_with_the_kernels_curr_estab_under_churn() {
    if !require_root_or_skip("the_event_table_agrees_with_the_kernels_curr_estab_under_churn") {
        return;
    }
    let mut lab = Lab::new("colest").unwrap();
    let ns = lab.add_host("a", Ipv4Addr::new(198, 18, 37, 1)).unwrap().netns;
    let stats = std::thread::scope(|sc| {
        sc.spawn(|| {
            let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let cookie = halfopen_sockets::netns::current_cookie().unwrap().unwrap().0;
            let hub = BpfHub::start(Some(cookie), None).unwrap();
            let mut src = BpfSource::open(hub, cookie, Duration::from_secs(600), Default::default()).unwrap();
            let listener = TcpListener::bind("198.18.37.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let (mut out, mut removed, mut listeners) = (Vec::new(), Vec::new(), Vec::new());
            src.dump(&mut out).unwrap();
            let mut held: Vec<(TcpStream, TcpStream)> = Vec::new();
            for round in 0..12 {
                // Churn between reports: 20 new connections (both ends
                // ESTABLISHED), half-closes (CLOSE_WAIT) and full closes.
                std::thread::sleep(Duration::from_millis(20));
                for _ in 0..20 {
                    let c = TcpStream::connect(addr).unwrap();
                    let (s, _) = listener.accept().unwrap();
                    held.push((c, s));
                }
                if round % 3 == 1 {
                    for (c, _) in held.iter().take(5) {
                        c.shutdown(Shutdown::Write).unwrap();
                    }
                }
                if round % 4 == 3 {
                    held.drain(..10);
                }
                std::thread::sleep(Duration::from_millis(700));
                listeners.clear();
                src.listeners(&mut listeners).unwrap();
                out.clear();
                removed.clear();
                match src.changes(&listeners, &mut out, &mut removed) {
                    Changes::Delta => {}
                    other => panic!("round {round}: the report asked for {other:?}"),
                }
                // As the worker does: this report's counters, read in the
                // namespace, hand the source the kernel's CurrEstab.
                let from_ns = ClockAnchor::now().boot_ns;
                let counters = halfopen_collector::hostinfo::counters().unwrap();
                src.kernel_counted(Reading {
                    kernel: counters["Tcp.CurrEstab"] as i64,
                    from_ns,
                    to_ns: ClockAnchor::now().boot_ns,
                });
            }
            src.stats()
        })
        .join()
        .unwrap()
    });
    eprintln!("{stats:?}");
    assert_eq!(stats.unseen_losses, 0, "{stats:?}");
    assert_eq!(
        stats.estab_offset, 0,
        "the kernel counts what the table holds: {stats:?}"
    );
    assert!(stats.estab_agreed >= 5, "most readings are judged and agree: {stats:?}");
    lab.teardown().unwrap();
}
