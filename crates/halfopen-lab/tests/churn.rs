//! Healthy churn: hundreds of short-lived connections per second, each greeted and closed
//! normally, none left half-open.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::{bin, LogsOnPanic};
use halfopen_lab::{require_root_or_skip, ChurnReport, Lab};

#[test]
fn churn_sustains_hundreds_per_second() {
    if !require_root_or_skip("churn_sustains_hundreds_per_second") {
        return;
    }
    let t0 = Instant::now();
    let server_ip = Ipv4Addr::new(198, 18, 7, 1);
    let mut lab = Lab::new("churn").unwrap();
    let _logs = LogsOnPanic(lab.log_dir().to_path_buf());
    lab.add_host("server", server_ip).unwrap();
    lab.add_host("client", Ipv4Addr::new(198, 18, 7, 2)).unwrap();
    let server = lab
        .spawn(
            "server",
            bin(),
            &["greet-server", "--listen", "0.0.0.0:3306", "--backlog", "1024"],
        )
        .unwrap();
    server.wait_for_prefix("listening", Duration::from_secs(10)).unwrap();
    let churn = lab
        .spawn(
            "client",
            bin(),
            &[
                "churn",
                "--target",
                "198.18.7.1:3306",
                "--rate",
                "400/s",
                "--max-life",
                "500ms",
                "--duration",
                "3s",
            ],
        )
        .unwrap();
    let done: ChurnReport = churn
        .wait_for_json(|r: &ChurnReport| r.phase == "final", Duration::from_secs(30))
        .unwrap();
    println!("churn 400/s for 3s: {done:?}");
    assert!(churn.wait_with_timeout(Duration::from_secs(5)).unwrap().success());
    assert!((1150..=1201).contains(&done.opened), "{done:?}");
    assert_eq!(done.errors, 0, "{done:?}");
    assert_eq!(done.completed, done.opened, "{done:?}");
    assert_eq!(done.in_flight, 0);

    // Everything closed: nothing ESTABLISHED to the server is left on either side.
    let target = SocketAddr::from((server_ip, 3306));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let client_left = lab
            .ss_established("client")
            .unwrap()
            .into_iter()
            .filter(|c| c.remote == target)
            .count();
        let server_left = lab
            .ss_established("server")
            .unwrap()
            .into_iter()
            .filter(|c| c.local == target)
            .count();
        if client_left == 0 && server_left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left: client {client_left} server {server_left}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    lab.teardown().unwrap();
    println!("churn test took {:?}", t0.elapsed());
}
