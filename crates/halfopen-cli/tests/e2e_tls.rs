//! End-to-end for identity and roles (mutual TLS): certificates made by
//! `halfopen certs` in the lab, the real binary as reconciler, collectors
//! and CLI, and hand-made gRPC clients (tonic, inside a lab namespace) for
//! what an attacker would send rather than what our CLI allows:
//! - a collector certificate reports only its own host id, and never
//!   queries; a reader certificate only queries;
//! - without a certificate of the lab's CA nothing gets past the handshake;
//! - plaintext and TLS never mix silently (either way round);
//! - an impostor cannot displace a reporting host, not even with its
//!   certificate, and healthy connections never become findings;
//! - a reconciler without TLS serves only loopback, unless `--insecure`
//!   (then it warns and counts plaintext sessions);
//! - `halfopen certs` writes keys 0600 and never overwrites unasked.
//!
//! Lab tests need root (fail under CI=true without it, skip with a reason
//! elsewhere); the `certs` test needs nothing.
mod common;

use common::*;
use halfopen_core::{Hello, Instance};
use halfopen_lab::fleet::Fleet;
use halfopen_lab::{BurstReport, Lab, LabChild};
use halfopen_proto::convert::hello_to_wire;
use halfopen_proto::v1;
use halfopen_proto::v1::collector_message::Msg;
use serde_json::Value;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Bound of every hand-made gRPC exchange.
const CALL: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------ helpers

/// Runs `f` on a thread that entered `host`'s network namespace (setns
/// changes only the calling thread), with a current-thread tokio runtime.
fn in_host<T: Send, F: std::future::Future<Output = T>>(lab: &Lab, host: &str, f: impl FnOnce() -> F + Send) -> T {
    let path = format!("/run/netns/{}", lab.host(host).netns);
    std::thread::scope(|s| {
        s.spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a valid namespace fd; it affects this thread only.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f())
        })
        .join()
        .unwrap()
    })
}

/// Which TLS a hand-made client uses.
enum Tls<'a> {
    /// Plaintext HTTP/2.
    None,
    /// Trusts `ca`; presents no certificate.
    Anonymous { ca: &'a Path },
    /// Trusts `ca`; presents `DIR/STEM.pem` with `DIR/STEM-key.pem`.
    Cert { ca: &'a Path, dir: &'a Path, stem: &'a str },
}

/// A channel to `url` (https:// with TLS), or the connect error in words.
async fn channel(url: &str, tls: Tls<'_>) -> Result<Channel, String> {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ep = Endpoint::from_shared(url.to_string()).unwrap().connect_timeout(CALL);
    let ep = match tls {
        Tls::None => ep,
        Tls::Anonymous { ca } => ep
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca))))
            .unwrap(),
        Tls::Cert { ca, dir, stem } => ep
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(read(ca)))
                    .identity(Identity::from_pem(
                        read(&dir.join(format!("{stem}.pem"))),
                        read(&dir.join(format!("{stem}-key.pem"))),
                    )),
            )
            .unwrap(),
    };
    match tokio::time::timeout(CALL, ep.connect()).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(format!("{e:?}")),
        Err(_) => Err("connect timed out".into()),
    }
}

/// A Hello for `host_id`, from an instance named by `boot` (empty: unknown).
fn hello(host_id: &str, boot: &str) -> v1::CollectorMessage {
    let h = Hello {
        host_id: host_id.into(),
        addresses: Vec::new(),
        interval_ms: 1000,
        source: Default::default(),
        version: "e2e_tls".into(),
        instance: if boot.is_empty() {
            Instance::default()
        } else {
            Instance {
                machine_id: format!("machine-{boot}"),
                boot_id: boot.into(),
                netns: 7,
                pid: 1,
            }
        },
        blind_spots: Vec::new(),
        parent: None,
        netns_name: None,
        container: None,
        pod: None,
    };
    v1::CollectorMessage {
        msg: Some(Msg::Hello(hello_to_wire(&h))),
    }
}

/// An open collector session (dropping it ends the session).
struct Session {
    _tx: tokio::sync::mpsc::Sender<v1::CollectorMessage>,
    _rx: tonic::Streaming<v1::ReconcilerMessage>,
}

/// Opens `Ingest.Collect` on `ch` with a Hello for `host_id` and waits for
/// the reconciler's first message (its Config): the open session, or the
/// refusal. A transport failure is a Status too (code Unavailable/Unknown).
async fn collect(ch: Channel, host_id: &str, boot: &str) -> Result<Session, Status> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello(host_id, boot)).await.unwrap();
    let mut client = halfopen_proto::transport::ingest_client(ch);
    let call = async {
        let mut inbound = client
            .collect(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        match inbound.message().await? {
            Some(_) => Ok(inbound),
            None => Err(Status::aborted("the reconciler ended the session without a word")),
        }
    };
    match tokio::time::timeout(CALL, call).await {
        Ok(Ok(inbound)) => Ok(Session { _tx: tx, _rx: inbound }),
        Ok(Err(s)) => Err(s),
        Err(_) => Err(Status::deadline_exceeded("no answer to the Hello")),
    }
}

/// `Query.ListHosts` on `ch`: the host ids, or the refusal.
async fn list_hosts(ch: Channel) -> Result<Vec<String>, Status> {
    let mut q = halfopen_proto::transport::query_client(ch);
    match tokio::time::timeout(CALL, q.list_hosts(v1::ListHostsRequest {})).await {
        Ok(r) => Ok(r?.into_inner().hosts.into_iter().map(|h| h.host_id).collect()),
        Err(_) => Err(Status::deadline_exceeded("ListHosts")),
    }
}

/// A refusal that never reached a service: the transport failed (handshake
/// refused, connection closed), so no authorisation code answered.
fn transport_failure(s: &Status) -> bool {
    !matches!(
        s.code(),
        Code::Ok | Code::PermissionDenied | Code::InvalidArgument | Code::FailedPrecondition
    )
}

fn exe_s() -> String {
    exe().to_string_lossy().into_owned()
}

/// `halfopen ARGS` in `host`'s namespace, bounded.
fn run(lab: &Lab, host: &str, args: &[&str]) -> Output {
    lab.run(host, &exe_s(), args, Duration::from_secs(30)).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `halfopen hosts --json ARGS` from the reconciler's host, as a person would
/// run it with these flags.
fn hosts_with(lab: &Lab, fleet: &Fleet, args: &[String]) -> Output {
    let mut a = vec!["hosts".to_string(), "--json".to_string()];
    a.extend(args.iter().cloned());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run(lab, &fleet.reconciler_host, &a)
}

fn host_ids(lab: &Lab, fleet: &Fleet) -> Vec<String> {
    fleet
        .hosts(lab)
        .unwrap()
        .iter()
        .filter_map(|h| h["host_id"].as_str().map(str::to_string))
        .collect()
}

/// Polls `child`'s stderr until it contains every one of `words`.
fn wait_for_log(child: &LabChild, words: &[&str], timeout: Duration) -> String {
    wait_for(&format!("{words:?} in the log of pid {}", child.pid()), timeout, || {
        let log = child.read_stderr().unwrap();
        words.iter().all(|w| log.contains(w)).then_some(log)
    })
}

/// TLS flags of `DIR/STEM` for the CLI.
fn tls_flags(ca: &Path, dir: &Path, stem: &str) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        ca.to_string_lossy().into_owned(),
        "--tls-cert".into(),
        dir.join(format!("{stem}.pem")).to_string_lossy().into_owned(),
        "--tls-key".into(),
        dir.join(format!("{stem}-key.pem")).to_string_lossy().into_owned(),
    ]
}

/// `halfopen certs ARGS` (no namespace needed), bounded by coreutils `timeout`.
fn certs(args: &[&str]) -> Output {
    std::process::Command::new("timeout")
        .arg("30")
        .arg(exe())
        .arg("certs")
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("timeout (coreutils) runs")
}

fn certs_ok(args: &[&str]) -> String {
    let o = certs(args);
    assert!(o.status.success(), "halfopen certs {args:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// recon 198.18.0.3 with a TLS reconciler (no database), app 198.18.0.2.
fn two_hosts(lab: &mut Lab) -> Fleet {
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    Fleet::start(lab, &exe(), "recon", &["--no-db"]).unwrap()
}

// -------------------------------------------------------------------- tests

/// (1)(2) A collector certificate for web-a may report web-a only: a Hello
/// for web-b is refused with PERMISSION_DENIED, counted and logged, and
/// web-b never appears; it may not query. A reader certificate queries and
/// may not open a collector stream. The CLI says so before connecting.
#[test]
fn certificates_bind_the_host_id_and_the_role() {
    let Some(mut lab) = lab("tls-roles") else { return };
    let fleet = two_hosts(&mut lab);
    fleet.collector_args("web-a").unwrap(); // issues web-a's certificate
    let dir = fleet.certs.clone();
    let ca = dir.join("ca.pem");
    let url = fleet.url.clone();
    let web_a = || Tls::Cert {
        ca: &ca,
        dir: &dir,
        stem: "web-a",
    };
    let reader = || Tls::Cert {
        ca: &ca,
        dir: &dir,
        stem: halfopen_lab::fleet::READER,
    };

    let listed = in_host(&lab, "app", || async {
        // A Hello for another host: refused before the engine hears of it.
        let ch = channel(&url, web_a()).await.unwrap();
        let e = collect(ch.clone(), "web-b", "boot-1")
            .await
            .err()
            .expect("web-b refused");
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(
            e.message().contains("\"web-a\"") && e.message().contains("\"web-b\""),
            "{e:?}"
        );
        // Its own host: accepted (the control that shows the refusal means something).
        let session = collect(ch.clone(), "web-a", "boot-1").await.expect("web-a accepted");
        let listed = wait_for("web-a listed", Duration::from_secs(10), || {
            let ids = host_ids(&lab, &fleet);
            ids.contains(&"web-a".to_string()).then_some(ids)
        });
        // A collector certificate may not query.
        let e = list_hosts(ch).await.expect_err("a collector certificate queried");
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("halfopen-collector certificate"), "{e:?}");
        // A reader certificate may query, and may not open a collector stream.
        let rd = channel(&url, reader()).await.unwrap();
        let ids = list_hosts(rd.clone()).await.expect("a reader queries");
        assert!(ids.contains(&"web-a".to_string()), "{ids:?}");
        let e = collect(rd, "web-a", "boot-2").await.err().expect("a reader refused");
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        assert!(e.message().contains("halfopen-reader certificate"), "{e:?}");
        drop(session);
        listed
    });
    assert!(!listed.contains(&"web-b".to_string()), "{listed:?}");
    assert!(!host_ids(&lab, &fleet).contains(&"web-b".to_string()));

    // Counted and logged: web-a's refusal (the first, logged), then the reader's.
    let log = wait_for_log(&fleet.reconciler, &["refused", "web-b"], Duration::from_secs(10));
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("refused")).collect();
    println!("{}", refusals.join("\n"));
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("web-b") && l.contains("refused_total=1") && l.contains("WARN")),
        "{log}"
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("reader lab-reader") && l.contains("refused_total=2")),
        "{log}"
    );
    // web-a's second refusal (its query) came within the minute: counted, not logged again.
    assert!(!refusals.iter().any(|l| l.contains("may not query")), "{log}");

    // The CLI refuses the mix-ups itself, with what to do.
    let o = hosts_with(&lab, &fleet, &{
        let mut a = vec!["--reconciler".to_string(), fleet.url.clone()];
        a.extend(tls_flags(&ca, &dir, "web-a"));
        a
    });
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("queries need a reader certificate"),
        "{}",
        stderr(&o)
    );
    let mut a = vec!["collector".to_string(), "--host-id".into(), "web-b".into()];
    a.extend(fleet.collector_args("web-a").unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = run(&lab, "app", &a);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("run it with --host-id web-a"), "{}", stderr(&o));
    lab.teardown().unwrap();
}

/// (3) Without a certificate, or with one from another CA, nothing gets
/// past the TLS handshake: no call reaches a service (no refusal is logged,
/// since none was needed), nothing is registered, and the CLI says the
/// certificate was refused.
#[test]
fn only_certificates_of_the_ca_pass_the_handshake() {
    let Some(mut lab) = lab("tls-handshake") else { return };
    let fleet = two_hosts(&mut lab);
    let dir = fleet.certs.clone();
    let ca = dir.join("ca.pem");
    let other = lab.log_dir().join("other-ca");
    let other_s = other.to_string_lossy().into_owned();
    certs_ok(&["init", "--dir", &other_s]);
    certs_ok(&["issue", "--dir", &other_s, "--host", "web-a"]);
    certs_ok(&["issue", "--dir", &other_s, "--reader", "mallory"]);
    let url = fleet.url.clone();

    in_host(&lab, "app", || async {
        // No client certificate.
        match channel(&url, Tls::Anonymous { ca: &ca }).await {
            Err(e) => println!("anonymous: refused at connect: {e}"),
            Ok(ch) => {
                let e = list_hosts(ch.clone()).await.expect_err("an anonymous query");
                assert!(transport_failure(&e), "{e:?}");
                let e = collect(ch, "web-a", "boot-1")
                    .await
                    .err()
                    .expect("an anonymous collector");
                assert!(transport_failure(&e), "{e:?}");
            }
        }
        // A certificate of another CA (the client trusts ours, so it gets as far as it can).
        let tls = Tls::Cert {
            ca: &ca,
            dir: &other,
            stem: "web-a",
        };
        match channel(&url, tls).await {
            Err(e) => println!("other CA: refused at connect: {e}"),
            Ok(ch) => {
                let e = collect(ch, "web-a", "boot-1")
                    .await
                    .err()
                    .expect("another CA's collector");
                assert!(transport_failure(&e), "{e:?}");
            }
        }
    });
    // The CLI with another CA's reader certificate: a clear error.
    let o = hosts_with(&lab, &fleet, &{
        let mut a = vec!["--reconciler".to_string(), fleet.url.clone()];
        a.extend(tls_flags(&ca, &other, "mallory"));
        a
    });
    assert!(!o.status.success());
    let err = stderr(&o);
    println!("{err}");
    assert!(err.contains("certificate"), "{err}");
    // Nothing registered, no service was asked, and readers still get answers.
    assert!(host_ids(&lab, &fleet).is_empty());
    let log = fleet.reconciler.read_stderr().unwrap();
    assert!(!log.contains("refused"), "{log}");
    lab.teardown().unwrap();
}

/// (4) Plaintext to a TLS reconciler and https:// to a plaintext one are
/// clear errors, never a silent downgrade; plaintext off loopback needs
/// --insecure on the client too.
#[test]
fn plaintext_and_tls_never_mix() {
    let Some(mut lab) = lab("tls-mix") else { return };
    let fleet = two_hosts(&mut lab);
    let reader = halfopen_lab::fleet::tls_flags(&fleet.certs, halfopen_lab::fleet::READER);

    // Plaintext to the TLS reconciler.
    let o = run(
        &lab,
        "app",
        &["hosts", "--reconciler", "http://198.18.0.3:7077", "--insecure"],
    );
    assert!(!o.status.success());
    println!("plaintext to TLS: {}", stderr(&o));
    assert!(
        stderr(&o).contains("if the reconciler runs with TLS, use https://"),
        "{}",
        stderr(&o)
    );
    let o = run(&lab, "app", &["hosts", "--reconciler", "198.18.0.3:7077"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refusing to talk plaintext"), "{}", stderr(&o));
    let o = run(&lab, "app", &["hosts", "--reconciler", "https://198.18.0.3:7077"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no TLS files were given"), "{}", stderr(&o));
    // http:// with TLS files: which one is meant?
    let mut a: Vec<&str> = vec!["hosts", "--reconciler", "http://198.18.0.3:7077"];
    a.extend(reader.iter().map(String::as_str));
    let o = run(&lab, "app", &a);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("asks for plaintext (http://) but TLS files"),
        "{}",
        stderr(&o)
    );

    // A plaintext reconciler (--insecure) beside it.
    let plain = lab
        .spawn(
            "recon",
            &exe(),
            &["reconciler", "--listen", "198.18.0.3:7078", "--no-db", "--insecure"],
        )
        .unwrap();
    wait_for("the plaintext reconciler to answer", Duration::from_secs(20), || {
        run(&lab, "app", &["hosts", "--reconciler", "198.18.0.3:7078", "--insecure"])
            .status
            .success()
            .then_some(())
    });
    let mut a: Vec<&str> = vec!["hosts", "--reconciler", "https://198.18.0.3:7078"];
    a.extend(reader.iter().map(String::as_str));
    let o = run(&lab, "app", &a);
    assert!(!o.status.success());
    println!("TLS to plaintext: {}", stderr(&o));
    assert!(stderr(&o).contains("does not seem to speak TLS"), "{}", stderr(&o));
    wait_for_log(
        &plain,
        &["WARN", "PLAINTEXT on a reachable address (--insecure)"],
        TIMEOUT,
    );
    lab.teardown().unwrap();
}

/// (5) The attacker scenario: db reports, app holds 50 healthy connections
/// to it. An unauthenticated peer, a plaintext one, one with db's key but no
/// instance, one with db's key from elsewhere, and a real second collector
/// with db's certificate all try to be db: none displaces it, the second
/// instance is a conflict, and the 50 connections never become findings.
#[test]
fn an_impostor_cannot_displace_a_reporting_host() {
    let Some(mut lab) = lab("tls-impostor") else { return };
    let mut fleet = standard(&mut lab, "1s");
    let db_pid = fleet.collector("db").unwrap().pid() as u64;
    let _server = greet_server(&mut lab, "db", "0.0.0.0:3306", &["--backlog", "4096"]);
    let held = lab
        .spawn(
            "app",
            &exe(),
            &[
                "lab",
                "burst",
                "--target",
                "198.18.0.1:3306",
                "--count",
                "50",
                "--hold",
                "120s",
            ],
        )
        .unwrap();
    let r: BurstReport = held
        .wait_for_json(|r: &BurstReport| r.greeted == 50, Duration::from_secs(20))
        .unwrap();
    assert_eq!((r.established, r.failed), (50, 0), "{r:?}");
    std::thread::sleep(Duration::from_secs(3)); // both tables hold them

    let dir = fleet.certs.clone();
    let ca = dir.join("ca.pem");
    let url = fleet.url.clone();
    in_host(&lab, "app", || async {
        // Unauthenticated: no certificate, or no TLS at all.
        if let Ok(ch) = channel(&url, Tls::Anonymous { ca: &ca }).await {
            let e = collect(ch, "db", "boot-x").await.err().expect("an anonymous db");
            assert!(transport_failure(&e), "{e:?}");
        }
        let plain = url.replace("https://", "http://");
        if let Ok(ch) = channel(&plain, Tls::None).await {
            let e = collect(ch, "db", "boot-x").await.err().expect("a plaintext db");
            assert!(transport_failure(&e), "{e:?}");
        }
        // db's own key, but a Hello that does not say where it runs: the engine
        // would take it for db restarting; refused at the edge.
        let db = Tls::Cert {
            ca: &ca,
            dir: &dir,
            stem: "db",
        };
        let ch = channel(&url, db).await.unwrap();
        let e = collect(ch.clone(), "db", "").await.err().expect("no instance");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        // db's key from another place while db reports: a conflict, not a replacement.
        let e = collect(ch, "db", "boot-x").await.err().expect("a second db");
        assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
        println!("second instance: {}", e.message());
    });
    // A real second collector with db's certificate, on app.
    let mut a = vec!["collector".to_string()];
    a.extend(fleet.collector_args("db").unwrap());
    a.extend(["--interval", "1s", "--host-id", "db", "--netns", "self"].map(String::from));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let impostor = lab.spawn("app", &exe(), &a).unwrap();
    wait_for_log(
        &impostor,
        &["the reconciler refused this collector"],
        Duration::from_secs(20),
    );

    // For 10 s (ten intervals, ten times the grace) with the impostor retrying:
    // db stays the real collector, nothing of the 50 connections is a finding.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let hosts = fleet.hosts(&lab).unwrap();
        let db = hosts.iter().find(|h| h["host_id"] == "db").expect("db listed");
        assert_eq!(db["collector_pid"].as_u64(), Some(db_pid), "{db}");
        assert_eq!(db["stale"], false, "{db}");
        let found: Vec<Value> = fleet.query(&lab, &["findings"]).unwrap().as_array().unwrap().clone();
        let on_db: Vec<&Value> = found
            .iter()
            .filter(|f| {
                f["server"] == "198.18.0.1:3306" || f["client"].as_str().is_some_and(|c| c.starts_with("198.18.0.2:"))
            })
            .filter(|f| f["kind"] != "listener_at_risk")
            .collect();
        assert!(on_db.is_empty(), "healthy connections became findings: {on_db:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let db = fleet
        .hosts(&lab)
        .unwrap()
        .into_iter()
        .find(|h| h["host_id"] == "db")
        .unwrap();
    assert!(
        db["conflict"].as_str().is_some_and(|c| c.contains("198.18.0.2")),
        "{db}"
    );
    impostor.kill().unwrap();
    fleet.collectors.push(("impostor".into(), impostor));
    // The connections are still there on both ends.
    let truth = halfopen_lab::fleet::ss_client_only(&lab, "app", "db", "198.18.0.1:3306".parse().unwrap()).unwrap();
    assert!(truth.is_empty(), "{truth:?}");
    assert_eq!(
        lab.ss_established("app")
            .unwrap()
            .iter()
            .filter(|c| c.remote.port() == 3306)
            .count(),
        50
    );
    lab.teardown().unwrap();
}

/// (6) A reconciler without TLS refuses a reachable address, and says the
/// three ways out; without --listen it serves loopback; with --insecure it
/// warns, and counts and logs each peer's plaintext sessions. A collector
/// will not talk plaintext off loopback without --insecure, and with it says
/// that command lines go out unauthenticated.
#[test]
fn without_tls_the_reconciler_serves_loopback_unless_insecure() {
    let Some(mut lab) = lab("tls-listen") else { return };
    lab.add_host("app", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();

    let o = run(&lab, "recon", &["reconciler", "--listen", "198.18.0.3:7077", "--no-db"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for w in [
        "refusing to listen on 198.18.0.3:7077 without TLS",
        "--tls-ca",
        "--listen 127.0.0.1:7077",
        "--insecure",
    ] {
        assert!(err.contains(w), "{w}: {err}");
    }

    let local = lab.spawn("recon", &exe(), &["reconciler", "--no-db"]).unwrap();
    wait_for_log(
        &local,
        &["listen=127.0.0.1:7077", "plaintext on a loopback address"],
        TIMEOUT,
    );
    wait_for("the loopback reconciler to answer", Duration::from_secs(20), || {
        run(&lab, "recon", &["hosts", "--reconciler", "127.0.0.1"])
            .status
            .success()
            .then_some(())
    });
    local.kill().unwrap();

    let insecure = lab
        .spawn(
            "recon",
            &exe(),
            &["reconciler", "--listen", "198.18.0.3:7077", "--no-db", "--insecure"],
        )
        .unwrap();
    wait_for_log(&insecure, &["WARN", "PLAINTEXT on a reachable address"], TIMEOUT);

    let o = run(
        &lab,
        "app",
        &[
            "collector",
            "--reconciler",
            "198.18.0.3",
            "--host-id",
            "app",
            "--interval",
            "1s",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refusing to talk plaintext to http://198.18.0.3:7077"),
        "{}",
        stderr(&o)
    );

    let collector = lab
        .spawn(
            "app",
            &exe(),
            &[
                "collector",
                "--reconciler",
                "198.18.0.3",
                "--insecure",
                "--host-id",
                "app",
                "--interval",
                "1s",
                "--netns",
                "self",
            ],
        )
        .unwrap();
    wait_for_log(&collector, &["WARN", "command lines are sent unauthenticated"], TIMEOUT);
    let log = wait_for_log(
        &insecure,
        &["plaintext collector session", "plaintext_sessions=1", "198.18.0.2"],
        TIMEOUT,
    );
    assert!(log.contains("host=\"app\""), "{log}");
    wait_for("app to report over plaintext", TIMEOUT, || {
        let o = run(
            &lab,
            "recon",
            &["hosts", "--json", "--reconciler", "198.18.0.3", "--insecure"],
        );
        let v: Value = serde_json::from_slice(&o.stdout).ok()?;
        v.as_array()?
            .iter()
            .any(|h| h["host_id"] == "app" && h["stale"] == false)
            .then_some(())
    });
    lab.teardown().unwrap();
}

/// `halfopen certs`: a CA and one certificate of each role, keys 0600 in a
/// 0700 directory, roles as documented, what to run next; nothing is
/// overwritten unless --force; clear errors. (The lab tests above run on
/// certificates made by this command: Fleet uses it.)
#[test]
fn certs_writes_safe_files_and_never_overwrites_unasked() {
    let tmp = std::env::temp_dir().join(format!("halfopen-e2e-tls-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(tmp.clone());
    let dir = tmp.join("ca");
    let d = dir.to_string_lossy().into_owned();
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;

    let out = certs_ok(&["init", "--dir", &d]);
    assert!(out.contains("ca.pem") && out.contains("ca-key.pem"), "{out}");
    assert!(
        out.contains(&format!("next: halfopen certs issue --dir {d} --reconciler")),
        "{out}"
    );
    assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!((mode("ca.pem"), mode("ca-key.pem")), (0o644, 0o600));

    let out = certs_ok(&["issue", "--dir", &d, "--reconciler", "198.18.0.3,recon.lab"]);
    assert!(
        out.contains("reconciler certificate") && out.contains("halfopen reconciler --tls-ca"),
        "{out}"
    );
    assert!(out.contains("https://198.18.0.3:7077"), "{out}");
    let out = certs_ok(&["issue", "--dir", &d, "--host", "web-1"]);
    assert!(out.contains("collector web-1 certificate"), "{out}");
    assert!(
        out.contains("halfopen collector --reconciler https://RECONCILER:7077 --host-id web-1"),
        "{out}"
    );
    let out = certs_ok(&["issue", "--dir", &d, "--reader", "alice"]);
    assert!(out.contains("reader alice certificate"), "{out}");
    for (stem, role) in [
        ("198.18.0.3", halfopen_identity::Role::Reconciler),
        ("web-1", halfopen_identity::Role::Collector { host: "web-1".into() }),
        ("alice", halfopen_identity::Role::Reader { name: "alice".into() }),
    ] {
        assert_eq!(
            (mode(&format!("{stem}.pem")), mode(&format!("{stem}-key.pem"))),
            (0o644, 0o600),
            "{stem}"
        );
        let peer = halfopen_identity::peer_from_pem_file(&dir.join(format!("{stem}.pem"))).unwrap();
        assert_eq!(peer.role, role);
    }

    // Nothing is overwritten unasked; --force replaces.
    let ca_before = std::fs::read(dir.join("ca-key.pem")).unwrap();
    let o = certs(&["init", "--dir", &d]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(dir.join("ca-key.pem")).unwrap(), ca_before);
    let key_before = std::fs::read(dir.join("web-1-key.pem")).unwrap();
    let o = certs(&["issue", "--dir", &d, "--host", "web-1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("web-1.pem already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.join("web-1-key.pem")).unwrap(), key_before);
    certs_ok(&["issue", "--dir", &d, "--host", "web-1", "--force"]);
    assert_ne!(std::fs::read(dir.join("web-1-key.pem")).unwrap(), key_before);
    assert_eq!(mode("web-1-key.pem"), 0o600);

    // Clear errors.
    let empty = tmp.join("empty").to_string_lossy().into_owned();
    let o = certs(&["issue", "--dir", &empty, "--host", "web-2"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("halfopen certs init --dir"), "{}", stderr(&o));
    let o = certs(&["issue", "--dir", &d, "--host", "web-1/redis"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("web-1/redis"), "{}", stderr(&o));
    let o = certs(&["issue", "--dir", &d, "--host", "a", "--reader", "b"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = certs(&["issue", "--dir", &d]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--reconciler") && stderr(&o).contains("--reader"),
        "{}",
        stderr(&o)
    );
}
