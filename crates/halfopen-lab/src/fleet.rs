//! A halfopen deployment inside a [`Lab`]: the real `halfopen` binary run as
//! reconciler and collectors in the lab's namespaces, queried through its own
//! CLI from inside the lab, plus the ground truth from `ss` on both ends.
//! Shared by `halfopen demo` and the end-to-end tests.
//!
//! Every fleet talks **mutual TLS**, so that the secure path is the tested
//! one: [`Fleet::start`] makes a CA in the lab's log directory with the
//! binary's own `halfopen certs` (`LOG_DIR/tls`), a server certificate for
//! the reconciler's lab address, a reader certificate ([`READER`]) for
//! queries, and a collector certificate for each host id as collectors are
//! added. The CA is kept for the lab's life: a fleet started again on the
//! same lab (a reconciler restart) reuses it, so running collectors stay
//! trusted.
use crate::exec::run_ok;
use crate::{Lab, LabChild, LabError};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const RECONCILER_PORT: u16 = 7077;

/// The name of the reader certificate the fleet queries with.
pub const READER: &str = "lab-reader";

/// Where a lab's CA and certificates live: `LOG_DIR/tls`.
pub fn certs_dir(lab: &Lab) -> PathBuf {
    lab.log_dir().join("tls")
}

/// `--tls-ca DIR/ca.pem --tls-cert DIR/STEM.pem --tls-key DIR/STEM-key.pem`.
pub fn tls_flags(dir: &Path, stem: &str) -> Vec<String> {
    let p = |f: String| dir.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-ca".into(),
        p("ca.pem".into()),
        "--tls-cert".into(),
        p(format!("{stem}.pem")),
        "--tls-key".into(),
        p(format!("{stem}-key.pem")),
    ]
}

/// Runs `exe certs ARGS` (outside the lab's namespaces: it only writes files).
fn certs(exe: &Path, args: &[&str]) -> Result<(), LabError> {
    let mut cmd = Command::new(exe);
    cmd.arg("certs").args(args);
    run_ok(cmd, Duration::from_secs(30)).map(|_| ())
}

/// Makes the CA in `dir` with `halfopen certs init`, unless it is there.
pub fn ensure_ca(exe: &Path, dir: &Path) -> Result<(), LabError> {
    if dir.join("ca.pem").exists() {
        return Ok(());
    }
    certs(exe, &["init", "--dir", &dir.to_string_lossy()])
}

/// Issues `DIR/NAME.pem` with `halfopen certs issue --dir DIR FLAG NAME`
/// (`FLAG`: `--host`, `--reader` or `--reconciler`), unless it is there.
pub fn ensure_cert(exe: &Path, dir: &Path, flag: &str, name: &str) -> Result<(), LabError> {
    let stem = name.split(',').next().unwrap_or(name);
    if dir.join(format!("{stem}.pem")).exists() {
        return Ok(());
    }
    certs(exe, &["issue", "--dir", &dir.to_string_lossy(), flag, name])
}

/// The halfopen processes of one lab.
pub struct Fleet {
    pub exe: PathBuf,
    /// Host the reconciler runs on, and from which queries are made.
    pub reconciler_host: String,
    pub url: String,
    pub reconciler: LabChild,
    pub collectors: Vec<(String, LabChild)>,
    /// The lab's CA and certificates ([`certs_dir`]).
    pub certs: PathBuf,
    /// The reconciler's certificate's file stem (its lab address).
    pub server_name: String,
}

/// `halfopen reconciler` on `host`, listening on its lab address with the
/// lab's certificates in `dir` (`server_name`'s), plus `extra`.
fn spawn_reconciler(
    lab: &mut Lab,
    exe: &Path,
    host: &str,
    dir: &Path,
    server_name: &str,
    extra: &[&str],
) -> Result<LabChild, LabError> {
    let listen = format!("{}:{RECONCILER_PORT}", lab.host(host).ip);
    let tls = tls_flags(dir, server_name);
    let mut args = vec!["reconciler", "--listen", &listen];
    args.extend(tls.iter().map(String::as_str));
    args.extend_from_slice(extra);
    lab.spawn(host, exe, &args)
}

impl Fleet {
    /// Starts a reconciler on `host` (listening on its lab address, mutual
    /// TLS with the lab's CA, made if needed) and waits until it answers.
    /// `extra` goes to `halfopen reconciler`.
    pub fn start(lab: &mut Lab, exe: &Path, host: &str, extra: &[&str]) -> Result<Fleet, LabError> {
        let ip = lab.host(host).ip;
        let listen = format!("{ip}:{RECONCILER_PORT}");
        let dir = certs_dir(lab);
        let server_name = ip.to_string();
        ensure_ca(exe, &dir)?;
        ensure_cert(exe, &dir, "--reconciler", &server_name)?;
        ensure_cert(exe, &dir, "--reader", READER)?;
        let reconciler = spawn_reconciler(lab, exe, host, &dir, &server_name, extra)?;
        let fleet = Fleet {
            exe: exe.to_path_buf(),
            reconciler_host: host.to_string(),
            url: format!("https://{listen}"),
            reconciler,
            collectors: Vec::new(),
            certs: dir,
            server_name,
        };
        fleet.wait_for_reconciler(lab)?;
        Ok(fleet)
    }

    /// Kills the reconciler (SIGKILL: nothing flushed, nothing said to the
    /// collectors) and starts a new one on the same host, address and
    /// certificates with `extra`; waits until it answers. The collectors
    /// reconnect by themselves.
    pub fn restart_reconciler(&mut self, lab: &mut Lab, extra: &[&str]) -> Result<(), LabError> {
        self.reconciler.kill()?;
        let host = self.reconciler_host.clone();
        self.reconciler = spawn_reconciler(lab, &self.exe, &host, &self.certs, &self.server_name, extra)?;
        self.wait_for_reconciler(lab)
    }

    /// Waits (20 s at most) until the reconciler answers a query; fails
    /// early, with its stderr, when it exits.
    fn wait_for_reconciler(&self, lab: &Lab) -> Result<(), LabError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.hosts(lab).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.reconciler.try_wait()? {
                return Err(LabError::Other(format!(
                    "the reconciler exited ({status}) before answering: {}",
                    self.reconciler.read_stderr().unwrap_or_default()
                )));
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: "the reconciler to answer".into(),
                    timeout: Duration::from_secs(20),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a collector on `host`, named after the lab host (with a
    /// collector certificate for it), covering only the host's own network
    /// namespace (`--netns self`: every lab namespace of every test shares
    /// one machine, so `all` would see them all).
    pub fn add_collector(&mut self, lab: &mut Lab, host: &str, interval: &str) -> Result<(), LabError> {
        self.add_collector_with(lab, host, interval, &["--netns", "self"])
            .map(|_| ())
    }

    /// Starts a collector on `host`, named after the lab host, with `extra`
    /// flags (e.g. `--netns self,NS1,NS2` for a node and its pods; give
    /// `--netns` always: the default, all, covers every test's namespaces).
    pub fn add_collector_with(
        &mut self,
        lab: &mut Lab,
        host: &str,
        interval: &str,
        extra: &[&str],
    ) -> Result<LabChild, LabError> {
        let exe = self.exe.clone();
        let mut args: Vec<String> = vec!["collector".into()];
        args.extend(self.collector_args(host)?);
        args.extend(["--interval", interval, "--host-id", host].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = lab.spawn(host, &exe, &args)?;
        self.collectors.push((host.to_string(), child.clone()));
        Ok(child)
    }

    /// The TLS flags of the reconciler (its certificate, the lab's CA): to
    /// start it again by hand.
    pub fn reconciler_tls_args(&self) -> Vec<String> {
        tls_flags(&self.certs, &self.server_name)
    }

    /// `--reconciler URL` and the reader certificate's TLS flags: what a
    /// query command needs to ask this fleet.
    pub fn reader_args(&self) -> Vec<String> {
        let mut a = vec!["--reconciler".to_string(), self.url.clone()];
        a.extend(tls_flags(&self.certs, READER));
        a
    }

    /// `--reconciler URL` and the TLS flags of a collector certificate for
    /// `host_id` (its host part: `web/redis` uses `web`'s), issued if needed.
    pub fn collector_args(&self, host_id: &str) -> Result<Vec<String>, LabError> {
        let host = host_id.split('/').next().unwrap_or(host_id);
        ensure_cert(&self.exe, &self.certs, "--host", host)?;
        let mut a = vec!["--reconciler".to_string(), self.url.clone()];
        a.extend(tls_flags(&self.certs, host));
        Ok(a)
    }

    pub fn collector(&self, host: &str) -> Option<&LabChild> {
        self.collectors.iter().find(|(h, _)| h == host).map(|(_, c)| c)
    }

    /// Runs `halfopen ARGS --reconciler URL --json` (with the reader
    /// certificate) from the reconciler's host and parses its output.
    pub fn query(&self, lab: &Lab, args: &[&str]) -> Result<serde_json::Value, LabError> {
        let exe = self.exe.to_string_lossy().into_owned();
        let reader = self.reader_args();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(reader.iter().map(String::as_str));
        a.push("--json");
        let out = lab.run(&self.reconciler_host, &exe, &a, Duration::from_secs(30))?;
        if !out.status.success() {
            return Err(LabError::Other(format!(
                "halfopen {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| LabError::Other(format!("halfopen {} printed invalid JSON: {e}", args.join(" "))))
    }

    pub fn orphans(&self, lab: &Lab) -> Result<Vec<serde_json::Value>, LabError> {
        as_array(self.query(lab, &["orphans"])?)
    }

    /// `halfopen findings --kind KIND`.
    pub fn findings(&self, lab: &Lab, kind: &str) -> Result<Vec<serde_json::Value>, LabError> {
        as_array(self.query(lab, &["findings", "--kind", kind])?)
    }

    pub fn hosts(&self, lab: &Lab) -> Result<Vec<serde_json::Value>, LabError> {
        as_array(self.query(lab, &["hosts"])?)
    }

    /// Waits until every collector in the fleet has reported and is not stale.
    pub fn wait_for_collectors(&self, lab: &Lab, timeout: Duration) -> Result<(), LabError> {
        let names: Vec<&str> = self.collectors.iter().map(|(h, _)| h.as_str()).collect();
        self.wait_for_collectors_named(lab, &names, timeout)
    }

    /// Waits until these hosts' collectors have reported and are not stale
    /// (also collectors started by another Fleet, e.g. before a restart).
    pub fn wait_for_collectors_named(&self, lab: &Lab, names: &[&str], timeout: Duration) -> Result<(), LabError> {
        let want: BTreeSet<&str> = names.iter().copied().collect();
        let deadline = Instant::now() + timeout;
        loop {
            let hosts = self.hosts(lab)?;
            let ready: BTreeSet<&str> = hosts
                .iter()
                .filter(|h| h["stale"] == false && h["last_report"].is_string())
                .filter_map(|h| h["host_id"].as_str())
                .filter(|h| want.contains(h))
                .collect::<BTreeSet<_>>();
            if ready.len() == want.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(LabError::Timeout {
                    what: format!("collectors {want:?} to report (ready: {ready:?})"),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn as_array(v: serde_json::Value) -> Result<Vec<serde_json::Value>, LabError> {
    match v {
        serde_json::Value::Array(a) => Ok(a),
        other => Err(LabError::Other(format!("expected a JSON array, got {other}"))),
    }
}

/// Connections the client host holds ESTABLISHED to `server` (ip:port) that
/// the server host does not hold ESTABLISHED, by `ss` on both: (client, server).
/// Server-side connections still in the accept queue count as held.
pub fn ss_client_only(
    lab: &Lab,
    client_host: &str,
    server_host: &str,
    server: SocketAddr,
) -> Result<BTreeSet<(SocketAddr, SocketAddr)>, LabError> {
    let client: BTreeSet<(SocketAddr, SocketAddr)> = lab
        .ss_established(client_host)?
        .into_iter()
        .filter(|c| c.remote == server)
        .map(|c| c.tuple())
        .collect();
    let held: BTreeSet<(SocketAddr, SocketAddr)> = lab
        .ss_established(server_host)?
        .into_iter()
        .map(|c| c.mirrored())
        .collect();
    Ok(client.difference(&held).copied().collect())
}

/// Through DNAT (a VIP or a published port, no SNAT): the client ends
/// `client_host` holds ESTABLISHED to `dialed` whose server end `server_host`
/// does not hold on `server`, by `ss` on both. The client holds the dialed
/// tuple and the server the translated one, so only client ends compare.
pub fn ss_client_only_through_dnat(
    lab: &Lab,
    client_host: &str,
    dialed: SocketAddr,
    server_host: &str,
    server: SocketAddr,
) -> Result<BTreeSet<SocketAddr>, LabError> {
    let client: BTreeSet<SocketAddr> = lab
        .ss_established(client_host)?
        .into_iter()
        .filter(|c| c.remote == dialed)
        .map(|c| c.local)
        .collect();
    let held: BTreeSet<SocketAddr> = lab
        .ss_established(server_host)?
        .into_iter()
        .filter(|c| c.local == server)
        .map(|c| c.remote)
        .collect();
    Ok(client.difference(&held).copied().collect())
}

/// (client, server) pairs of a JSON array of findings.
pub fn finding_pairs(findings: &[serde_json::Value]) -> BTreeSet<(SocketAddr, SocketAddr)> {
    findings
        .iter()
        .filter_map(|f| {
            let c = f["client"].as_str()?.parse().ok()?;
            let s = f["server"].as_str()?.parse().ok()?;
            Some((c, s))
        })
        .collect()
}

/// Where [`poll_agreement`] stopped: the client-only set by `ss`, halfopen's
/// orphans for that server, and whether they agreed.
pub struct Agreement {
    pub truth: BTreeSet<(SocketAddr, SocketAddr)>,
    pub found: Vec<serde_json::Value>,
    pub agreed: bool,
}

/// Polls every 500 ms, for up to `timeout`, until halfopen's orphans for
/// `server` equal the client-only set `ss` shows: non-empty, and unchanged
/// when `ss` is read again (agreement must hold on fresh ground truth).
/// `between` runs before each round (a Ctrl-C check, or nothing).
pub fn poll_agreement<E: From<LabError>>(
    lab: &Lab,
    fleet: &Fleet,
    client_host: &str,
    server_host: &str,
    server: SocketAddr,
    timeout: Duration,
    mut between: impl FnMut() -> Result<(), E>,
) -> Result<Agreement, E> {
    let start = Instant::now();
    loop {
        between()?;
        let truth = ss_client_only(lab, client_host, server_host, server)?;
        let found: Vec<serde_json::Value> = fleet
            .orphans(lab)?
            .into_iter()
            .filter(|f| f["server"] == server.to_string())
            .collect();
        let agreed = !truth.is_empty()
            && finding_pairs(&found) == truth
            && ss_client_only(lab, client_host, server_host, server)? == truth;
        if agreed || start.elapsed() > timeout {
            return Ok(Agreement { truth, found, agreed });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
