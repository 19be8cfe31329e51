//! The incident reproduces: syncookies on, a greeting server with backlog 4 that does not accept
//! for 4 s, a burst of 200 connects. The client holds ESTABLISHED connections the server has no
//! trace of, and they never get a greeting. Checked against an IPv4 listener and a dual-stack
//! `[::]` listener (peers seen as `::ffff:198.18.x.x` on the server, folded by `SsConn`).

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{bin, LogsOnPanic};
use halfopen_lab::{require_root_or_skip, BurstReport, Lab, SsConn};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);
const COUNT: u64 = 200;

/// What one run of the recipe gave.
#[derive(Debug)]
struct Outcome {
    established: usize,
    server_known: usize,
    client_only: usize,
    greeted: u64,
}

impl Outcome {
    fn check(&self) {
        assert!(self.client_only >= 100, "{self:?}");
        assert_eq!(self.server_known + self.client_only, self.established, "{self:?}");
        assert_eq!(self.greeted, self.server_known as u64, "{self:?}");
    }
}

fn client_only(client: &[SsConn], server: &[SsConn]) -> Vec<SsConn> {
    let server_side: HashSet<_> = server.iter().map(|s| s.mirrored()).collect();
    client
        .iter()
        .filter(|c| !server_side.contains(&c.tuple()))
        .cloned()
        .collect()
}

fn reproduce(lab: &mut Lab, listen: &str, port: u16) -> Outcome {
    let target = SocketAddr::from((SERVER_IP, port));
    let server = lab
        .spawn(
            "server",
            bin(),
            &[
                "greet-server",
                "--listen",
                listen,
                "--backlog",
                "4",
                "--accept-delay",
                "4s",
            ],
        )
        .unwrap();
    server.wait_for_prefix("listening ", Duration::from_secs(10)).unwrap();
    let before = lab.net_counters("server").unwrap();
    let t0 = Instant::now();
    let burst = lab
        .spawn(
            "client",
            bin(),
            &["burst", "--target", &target.to_string(), "--count", &COUNT.to_string()],
        )
        .unwrap();
    let settled: BurstReport = burst
        .wait_for_json(|r: &BurstReport| r.phase == "settled", Duration::from_secs(20))
        .unwrap();
    let settle_time = t0.elapsed();

    let client_conns: Vec<SsConn> = lab
        .ss_established("client")
        .unwrap()
        .into_iter()
        .filter(|c| c.remote == target)
        .collect();
    let server_conns: Vec<SsConn> = lab
        .ss_established("server")
        .unwrap()
        .into_iter()
        .filter(|c| c.local == target)
        .collect();
    let only = client_only(&client_conns, &server_conns);
    let after = lab.net_counters("server").unwrap();
    let delta = |k: &str| after.get(k).unwrap_or(&0) - before.get(k).unwrap_or(&0);
    println!(
        "[{listen}] burst of {COUNT}: settled in {settle_time:?}: established {} failed {}; \
         client ss {} server ss {} client-only {}; server SyncookiesSent {} SyncookiesRecv {} ListenOverflows {}",
        settled.established,
        settled.failed,
        client_conns.len(),
        server_conns.len(),
        only.len(),
        delta("TcpExt.SyncookiesSent"),
        delta("TcpExt.SyncookiesRecv"),
        delta("TcpExt.ListenOverflows"),
    );
    assert_eq!(client_conns.len() as u64, settled.established, "ss agrees with burst");
    assert!(only.len() >= 100, "only {} client-only connections", only.len());
    assert!(client_conns
        .iter()
        .all(|c| c.process.as_ref().map(|p| p.0) == Some(burst.pid())));

    // Once the server accepts, every connection it knows gets its greeting; the client-only
    // ones never do.
    server.wait_for_prefix("accepting", Duration::from_secs(10)).unwrap();
    let known = (client_conns.len() - only.len()) as u64;
    let greeted: BurstReport = burst
        .wait_for_json(|r: &BurstReport| r.greeted >= known, Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let late: BurstReport = burst.last_json().unwrap().expect("a report line");
    assert_eq!(late.greeted, known, "client-only connections got no greeting: {late:?}");
    let client_now: Vec<SsConn> = lab
        .ss_established("client")
        .unwrap()
        .into_iter()
        .filter(|c| c.remote == target)
        .collect();
    let server_now: Vec<SsConn> = lab
        .ss_established("server")
        .unwrap()
        .into_iter()
        .filter(|c| c.local == target)
        .collect();
    let only_now = client_only(&client_now, &server_now);
    assert_eq!(
        only_now.iter().collect::<HashSet<_>>(),
        only.iter().collect::<HashSet<_>>(),
        "the same connections are still client-only"
    );
    assert!(server_now
        .iter()
        .all(|s| s.process.as_ref().map(|p| p.0) == Some(server.pid())));

    burst.kill().unwrap();
    server.kill().unwrap();
    Outcome {
        established: client_conns.len(),
        server_known: server_conns.len(),
        client_only: only.len(),
        greeted: greeted.greeted,
    }
}

#[test]
fn incident_reproduces_with_v4_and_dual_stack_listeners() {
    if !require_root_or_skip("incident_reproduces_with_v4_and_dual_stack_listeners") {
        return;
    }
    let t0 = Instant::now();
    let mut lab = Lab::new("incident").unwrap();
    let _logs = LogsOnPanic(lab.log_dir().to_path_buf());
    lab.add_host("server", SERVER_IP).unwrap();
    lab.add_host("client", CLIENT_IP).unwrap();
    lab.sysctl("server", "net.ipv4.tcp_syncookies", "1").unwrap();

    let v4 = reproduce(&mut lab, "0.0.0.0:3306", 3306);
    println!("IPv4 listener: {v4:?}");
    v4.check();

    // Dual-stack: the server's raw ss shows the peer IPv4-mapped; SsConn folds it.
    let server = lab
        .spawn(
            "server",
            bin(),
            &["greet-server", "--listen", "[::]:3307", "--backlog", "16"],
        )
        .unwrap();
    assert_eq!(
        server.wait_for_prefix("listening ", Duration::from_secs(10)).unwrap(),
        "listening [::]:3307"
    );
    let probe = lab
        .spawn(
            "client",
            bin(),
            &["burst", "--target", "198.18.2.1:3307", "--count", "1"],
        )
        .unwrap();
    probe
        .wait_for_json(|r: &BurstReport| r.greeted == 1, Duration::from_secs(10))
        .unwrap();
    let raw = lab
        .run_ok(
            "server",
            "ss",
            &["-Htn", "state", "established"],
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(raw.contains("[::ffff:198.18.2.2]:"), "raw ss: {raw}");
    assert!(raw.contains("[::ffff:198.18.2.1]:3307"), "raw ss: {raw}");
    let folded: Vec<SsConn> = lab.ss_established("server").unwrap();
    let c = folded
        .iter()
        .find(|c| c.local.port() == 3307)
        .expect("probe connection");
    assert_eq!(c.local, SocketAddr::from((SERVER_IP, 3307)));
    assert_eq!(c.remote.ip(), std::net::IpAddr::V4(CLIENT_IP));
    probe.kill().unwrap();
    server.kill().unwrap();

    let v6 = reproduce(&mut lab, "[::]:3308", 3308);
    println!("dual-stack listener: {v6:?}");
    v6.check();
    lab.teardown().unwrap();
    println!("incident test took {:?}", t0.elapsed());
}
