//! [`Lab`]: a throwaway topology of network namespaces (one switch namespace holding a bridge,
//! one namespace per host with a veth `eth0` plugged into it), the processes started in it, and
//! its teardown. Nothing here ever configures the root namespace: every `ip` command names a lab
//! namespace with `-n` or runs under `ip netns exec`.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use crate::child::{self, LabChild, SharedChild};
use crate::exec::{describe, run_bounded, run_ok, POLL};
use crate::naming::{self, BRIDGE, HOST_IF, SWITCH};
use crate::ss::{parse_ss_established, SsConn};
use crate::LabError;

/// Bound on each `ip`/`ss`/`sysctl` invocation the lab makes for itself.
const CMD_TIMEOUT: Duration = Duration::from_secs(15);
/// Bound on waiting for killed processes to disappear.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Lab sequence numbers within this process, so that one process can hold several labs.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Serialises `ip netns add/del` within this process: the first `ip netns add` on a machine
/// sets up the /run/netns mount, and concurrent first calls would stack mounts.
static NETNS_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn netns_add_del(verb: &str, ns: &str) -> Result<String, LabError> {
    let _guard = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    ip(&["netns", verb, ns])
}

/// One host of a lab: a network namespace with `eth0` at `ip`/24 on the lab bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The name given to [`Lab::add_host`].
    pub name: String,
    /// Its network namespace (`ho-<tag>-<pid>-<seq>-<name>`).
    pub netns: String,
    /// Its address on `eth0`.
    pub ip: Ipv4Addr,
    /// The name of the other end of its veth pair, inside the switch namespace.
    pub switch_port: String,
}

/// A throwaway lab of network namespaces. See the crate documentation.
///
/// Dropping it (also while unwinding from a panic) kills every process it started and every
/// process still inside its namespaces, then deletes the namespaces; [`Lab::teardown`] does the
/// same and reports what could not be undone.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch_ns: String,
    hosts: Vec<Host>,
    /// Namespaces actually created, in creation order.
    namespaces: Vec<String>,
    children: Vec<SharedChild>,
    /// Per host: how many hosts were added behind it (names its interfaces).
    behind: BTreeMap<String, u32>,
    /// Per host: the address of its pod bridge (`cbr0`), once it has one.
    bridges: BTreeMap<String, Ipv4Addr>,
    log_dir: PathBuf,
    /// Keep the processes' logs after a passing test too
    /// (`HALFOPEN_LAB_KEEP_LOGS` set); a failing test always keeps them.
    keep_logs: bool,
    spawned: usize,
    torn_down: bool,
}

/// True when running with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn ip(args: &[&str]) -> Result<String, LabError> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run_ok(cmd, CMD_TIMEOUT)
}

/// Names of all network namespaces (`ip netns list`).
pub fn list_namespaces() -> Result<Vec<String>, LabError> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

fn pid_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(p) if p > 0 => !matches!(signal::kill(Pid::from_raw(p), None), Err(nix::errno::Errno::ESRCH)),
        _ => false,
    }
}

/// SIGKILLs every process inside `ns` (never this process itself) until none is left, at most
/// `timeout`.
fn kill_ns_pids(ns: &str, timeout: Duration) -> Result<(), String> {
    let me = std::process::id();
    let deadline = Instant::now() + timeout;
    loop {
        let pids: Vec<u32> = ip(&["netns", "pids", ns])
            .map_err(|e| e.to_string())?
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter(|&p| p != me)
            .collect();
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("processes {pids:?} still in {ns} after {timeout:?}"));
        }
        for pid in pids {
            let _ = signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        std::thread::sleep(POLL);
    }
}

/// Kills the processes in `ns` and deletes it. A namespace that is already gone is fine.
fn destroy_ns(ns: &str) -> Result<(), String> {
    if !list_namespaces().map_err(|e| e.to_string())?.iter().any(|n| n == ns) {
        return Ok(());
    }
    let killed = kill_ns_pids(ns, KILL_TIMEOUT);
    netns_add_del("del", ns).map_err(|e| e.to_string())?;
    killed
}

/// Deletes the namespaces (and log directories) of earlier labs with this tag whose creating
/// process no longer exists, killing whatever still runs inside them. Returns the namespaces
/// deleted. [`Lab::new`] calls this.
pub fn remove_leftovers(tag: &str) -> Result<Vec<String>, LabError> {
    naming::validate_tag(tag)?;
    let mut removed = Vec::new();
    let mut problems = Vec::new();
    for ns in list_namespaces()? {
        let Some(owner) = naming::parse_owned(tag, &ns) else {
            continue;
        };
        if pid_alive(owner.pid) {
            continue;
        }
        match destroy_ns(&ns) {
            Ok(()) => removed.push(ns),
            Err(p) => problems.push(p),
        }
    }
    // Logs that a crashed or panicking run kept.
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(owner) = naming::parse_owned(tag, &format!("{name}-x")) {
                if !pid_alive(owner.pid) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(LabError::Teardown {
            lab: format!("leftovers of tag {tag}"),
            problems,
        });
    }
    Ok(removed)
}

impl Lab {
    /// Creates an empty lab: the switch namespace with its bridge. Deletes leftovers of earlier
    /// labs with the same tag whose process died. Needs root.
    pub fn new(tag: &str) -> Result<Lab, LabError> {
        naming::validate_tag(tag)?;
        if !is_root() {
            return Err(LabError::NotRoot {
                uid: nix::unistd::geteuid().as_raw(),
            });
        }
        match remove_leftovers(tag) {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(?removed, "deleted leftover lab namespaces");
            }
            Ok(_) => {}
            // Leftovers have other names than ours: carry on, but say so.
            Err(e) => tracing::warn!("{e}"),
        }
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let prefix = naming::lab_prefix(tag, std::process::id(), seq);
        let log_dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir_all(&log_dir).map_err(|e| LabError::io_path("creating log directory", &log_dir, e))?;
        let mut lab = Lab {
            switch_ns: naming::ns_name(&prefix, SWITCH),
            prefix,
            hosts: Vec::new(),
            namespaces: Vec::new(),
            children: Vec::new(),
            behind: BTreeMap::new(),
            bridges: BTreeMap::new(),
            log_dir,
            keep_logs: std::env::var_os("HALFOPEN_LAB_KEEP_LOGS").is_some(),
            spawned: 0,
            torn_down: false,
        };
        // Same pid and seq as ours can only be a crashed process whose pid we got again.
        for ns in list_namespaces()? {
            if ns.starts_with(&format!("{}-", lab.prefix)) {
                destroy_ns(&ns).map_err(|p| LabError::Teardown {
                    lab: lab.prefix.clone(),
                    problems: vec![p],
                })?;
            }
        }
        // From here on, Drop cleans up whatever part was built.
        let sw = lab.switch_ns.clone();
        lab.add_ns(&sw)?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", BRIDGE, "up"])?;
        tracing::debug!(lab = %lab.prefix, "lab created");
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), LabError> {
        netns_add_del("add", ns)?;
        self.namespaces.push(ns.to_string());
        Ok(())
    }

    /// Adds a host: its namespace, lo up, a veth pair whose `eth0` end gets `ip`/24 and whose
    /// other end joins the bridge. `ip` must be in 198.18.0.0/15 and unused in this lab.
    pub fn add_host(&mut self, name: &str, ip_addr: Ipv4Addr) -> Result<Host, LabError> {
        naming::validate_host_name(name)?;
        naming::validate_lab_ip(ip_addr)?;
        if self.try_host(name).is_some() {
            return Err(LabError::invalid("host name", name, "already in this lab"));
        }
        if self.hosts.iter().any(|h| h.ip == ip_addr) {
            return Err(LabError::invalid(
                "address",
                ip_addr.to_string(),
                "already used in this lab",
            ));
        }
        let ns = naming::ns_name(&self.prefix, name);
        let port = naming::switch_port(self.hosts.len());
        let sw = self.switch_ns.clone();
        let cidr = format!("{ip_addr}/24");
        self.add_ns(&ns)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        // Created inside the switch namespace with its peer sent straight to the host's: no
        // interface ever exists in the root namespace.
        ip(&[
            "-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", HOST_IF, "netns", &ns,
        ])?;
        ip(&["-n", &sw, "link", "set", &port, "master", BRIDGE])?;
        ip(&["-n", &sw, "link", "set", &port, "up"])?;
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", HOST_IF])?;
        ip(&["-n", &ns, "link", "set", HOST_IF, "up"])?;
        let host = Host {
            name: name.to_string(),
            netns: ns,
            ip: ip_addr,
            switch_port: port,
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Adds a host routed behind `via` (a container behind a Docker host, a pod behind its
    /// node): its own namespace with `eth0` at `inner`/24, a veth whose peer sits in `via`'s
    /// namespace at `gateway`/24, a default route through `via`, which forwards. Both
    /// addresses in 198.18.0.0/15; each host behind `via` gets its own /24. The new host can
    /// be used like any other (spawn, run, sysctl, teardown).
    pub fn add_behind(&mut self, via: &str, name: &str, gateway: Ipv4Addr, inner: Ipv4Addr) -> Result<Host, LabError> {
        naming::validate_host_name(name)?;
        naming::validate_lab_ip(gateway)?;
        naming::validate_lab_ip(inner)?;
        if self.try_host(name).is_some() {
            return Err(LabError::invalid("host name", name, "already in this lab"));
        }
        let via_ns = self.ns_of(via)?.to_string();
        let behind = self.behind.entry(via.to_string()).or_insert(0);
        *behind += 1;
        let via_if = format!("in{}", *behind);
        let ns = naming::ns_name(&self.prefix, name);
        self.add_ns(&ns)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &via_ns, "link", "add", &via_if, "type", "veth", "peer", "name", HOST_IF, "netns", &ns,
        ])?;
        ip(&["-n", &via_ns, "addr", "add", &format!("{gateway}/24"), "dev", &via_if])?;
        ip(&["-n", &via_ns, "link", "set", &via_if, "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{inner}/24"), "dev", HOST_IF])?;
        ip(&["-n", &ns, "link", "set", HOST_IF, "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "via", &gateway.to_string()])?;
        self.sysctl(via, "net.ipv4.ip_forward", "1")?;
        let host = Host {
            name: name.to_string(),
            netns: ns,
            ip: inner,
            switch_port: via_if,
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Adds a host behind a bridge of `via` (pods behind their node, as the
    /// bridge CNI plugin and kubenet make them; containers behind docker0):
    /// the first call makes the bridge `cbr0` in `via`'s namespace with
    /// `gateway`/24 and forwarding on; each call plugs a veth into it whose
    /// other end is the new host's `eth0` at `inner`/24, with a default route
    /// through `gateway`. Every host behind one bridge shares its /24, so
    /// `gateway` must be the same at every call for one `via`.
    pub fn add_bridged(&mut self, via: &str, name: &str, gateway: Ipv4Addr, inner: Ipv4Addr) -> Result<Host, LabError> {
        naming::validate_host_name(name)?;
        naming::validate_lab_ip(gateway)?;
        naming::validate_lab_ip(inner)?;
        if self.try_host(name).is_some() {
            return Err(LabError::invalid("host name", name, "already in this lab"));
        }
        let via_ns = self.ns_of(via)?.to_string();
        match self.bridges.get(via) {
            Some(g) if *g != gateway => {
                return Err(LabError::invalid(
                    "gateway",
                    gateway.to_string(),
                    "the bridge of this host has another address",
                ))
            }
            Some(_) => {}
            None => {
                ip(&["-n", &via_ns, "link", "add", "cbr0", "type", "bridge"])?;
                ip(&["-n", &via_ns, "addr", "add", &format!("{gateway}/24"), "dev", "cbr0"])?;
                ip(&["-n", &via_ns, "link", "set", "cbr0", "up"])?;
                self.sysctl(via, "net.ipv4.ip_forward", "1")?;
                self.bridges.insert(via.to_string(), gateway);
            }
        }
        let behind = self.behind.entry(via.to_string()).or_insert(0);
        *behind += 1;
        let via_if = format!("vp{}", *behind);
        let ns = naming::ns_name(&self.prefix, name);
        self.add_ns(&ns)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &via_ns, "link", "add", &via_if, "type", "veth", "peer", "name", HOST_IF, "netns", &ns,
        ])?;
        ip(&["-n", &via_ns, "link", "set", &via_if, "master", "cbr0"])?;
        ip(&["-n", &via_ns, "link", "set", &via_if, "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{inner}/24"), "dev", HOST_IF])?;
        ip(&["-n", &ns, "link", "set", HOST_IF, "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "via", &gateway.to_string()])?;
        let host = Host {
            name: name.to_string(),
            netns: ns,
            ip: inner,
            switch_port: via_if,
        };
        self.hosts.push(host.clone());
        Ok(host)
    }

    /// Adds a route on `host` (`ip route add DEST via GATEWAY`), e.g. to a network behind
    /// another lab host.
    pub fn route(&self, host: &str, dest: &str, via: Ipv4Addr) -> Result<(), LabError> {
        ip(&["-n", self.ns_of(host)?, "route", "add", dest, "via", &via.to_string()]).map(|_| ())
    }

    /// Loads an nftables ruleset (the text `nft -f` reads, one line or many)
    /// into the host's namespace, from a file in the lab's log directory.
    pub fn nft(&self, host: &str, ruleset: &str) -> Result<(), LabError> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = self.log_dir.join(format!("nft-{host}-{n}.rules"));
        std::fs::write(&file, ruleset).map_err(|e| LabError::io_path("writing an nftables ruleset", &file, e))?;
        let mut cmd = self.command(host, "nft")?;
        cmd.arg("-f").arg(&file);
        run_ok(cmd, CMD_TIMEOUT).map(|_| ())
    }

    /// The host of that name. Panics if there is none (a bug in the caller); see
    /// [`Lab::try_host`].
    pub fn host(&self, name: &str) -> &Host {
        self.try_host(name)
            .unwrap_or_else(|| panic!("no host named {name:?} in lab {}", self.prefix))
    }

    /// The host of that name, if any.
    pub fn try_host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// `ho-<tag>-<pid>-<seq>`: the prefix of all this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where the logs of spawned processes go (a directory under the system temp dir). Removed
    /// at teardown, except when the thread is panicking.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    fn ns_of(&self, host: &str) -> Result<&str, LabError> {
        self.try_host(host)
            .map(|h| h.netns.as_str())
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))
    }

    /// A `Command` that runs `program` inside the host's namespace (`ip netns exec NS program`).
    /// Processes started with it are not tracked, but teardown still kills them because they
    /// are inside the namespace.
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Result<Command, LabError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns_of(host)?]).arg(program);
        Ok(cmd)
    }

    /// Sets a sysctl inside the host's namespace (`sysctl -w key=value` there). Only
    /// per-namespace keys (`net.*`) make sense; the key is checked to be one.
    pub fn sysctl(&self, host: &str, key: &str, value: &str) -> Result<(), LabError> {
        check_sysctl_key(key)?;
        let mut cmd = self.command(host, "sysctl")?;
        cmd.args(["-q", "-w", &format!("{key}={value}")]);
        run_ok(cmd, CMD_TIMEOUT).map(|_| ())
    }

    /// Reads a sysctl inside the host's namespace.
    pub fn sysctl_get(&self, host: &str, key: &str) -> Result<String, LabError> {
        check_sysctl_key(key)?;
        let mut cmd = self.command(host, "sysctl")?;
        cmd.args(["-n", key]);
        Ok(run_ok(cmd, CMD_TIMEOUT)?.trim().to_string())
    }

    /// The namespace's `/proc/net/netstat` and `/proc/net/snmp` counters, as
    /// `"TcpExt.ListenOverflows" -> n`.
    pub fn net_counters(&self, host: &str) -> Result<BTreeMap<String, u64>, LabError> {
        let mut cmd = self.command(host, "cat")?;
        cmd.args(["/proc/net/netstat", "/proc/net/snmp"]);
        halfopen_core::counters::parse_proc_net_counters(&run_ok(cmd, CMD_TIMEOUT)?)
            .map_err(|e| LabError::Other(format!("parsing the counters of {host}: {e}")))
    }

    /// Starts a long-running process inside the host's namespace (`ip netns exec NS program
    /// args`), in its own process group, stdout and stderr to log files in [`Lab::log_dir`].
    /// It is killed at teardown.
    pub fn spawn(&mut self, host: &str, program: &Path, args: &[&str]) -> Result<LabChild, LabError> {
        let ns = self.ns_of(host)?.to_string();
        self.spawned += 1;
        let base = program
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prog".into());
        let sub = args.first().filter(|a| !a.starts_with('-') && a.len() <= 24);
        let label = match sub {
            Some(s) => format!("{host}/{base} {s}"),
            None => format!("{host}/{base}"),
        };
        let stem: String = format!(
            "{host}-{:02}-{base}{}",
            self.spawned,
            sub.map(|s| format!("-{s}")).unwrap_or_default()
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
        let stdout_path = self.log_dir.join(format!("{stem}.stdout"));
        let stderr_path = self.log_dir.join(format!("{stem}.stderr"));
        let stdout = File::create(&stdout_path).map_err(|e| LabError::io_path("creating log", &stdout_path, e))?;
        let stderr = File::create(&stderr_path).map_err(|e| LabError::io_path("creating log", &stderr_path, e))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        let command = describe(&cmd);
        tracing::debug!(%command, "spawn");
        let child = cmd.spawn().map_err(|source| LabError::Spawn { command, source })?;
        let pid = child.id();
        let shared = child::share(child);
        self.children.push(shared.clone());
        Ok(LabChild {
            shared,
            pid,
            label,
            stdout_path,
            stderr_path,
        })
    }

    /// Runs `program args` to completion inside the host's namespace, killed after `timeout`
    /// (then the error is [`LabError::Timeout`]). Returns the output whatever the exit status.
    pub fn run(&self, host: &str, program: &str, args: &[&str], timeout: Duration) -> Result<Output, LabError> {
        let mut cmd = self.command(host, program)?;
        cmd.args(args);
        run_bounded(cmd, timeout)
    }

    /// Like [`Lab::run`], but a non-zero exit is an error carrying its stderr;
    /// returns stdout.
    pub fn run_ok(&self, host: &str, program: &str, args: &[&str], timeout: Duration) -> Result<String, LabError> {
        let mut cmd = self.command(host, program)?;
        cmd.args(args);
        run_ok(cmd, timeout)
    }

    /// Ground truth: `ss -Htnp state established` inside the host's namespace, parsed, with
    /// IPv4-mapped IPv6 addresses folded to IPv4.
    pub fn ss_established(&self, host: &str) -> Result<Vec<SsConn>, LabError> {
        let mut cmd = self.command(host, "ss")?;
        cmd.args(["-Htnp", "state", "established"]);
        parse_ss_established(&run_ok(cmd, CMD_TIMEOUT)?)
    }

    /// Tears the lab down and reports everything that could not be undone. Dropping the lab does
    /// the same silently (printing problems on stderr).
    pub fn teardown(mut self) -> Result<(), LabError> {
        let problems = self.cleanup();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Teardown {
                lab: self.prefix.clone(),
                problems,
            })
        }
    }

    /// Kills the lab's processes, then everything inside its namespaces, deletes the
    /// namespaces and (unless kept) the logs. Never panics; returns the problems.
    fn cleanup(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        let mut problems = Vec::new();
        for c in self.children.drain(..) {
            if let Some(p) = child::kill_and_reap(&c, KILL_TIMEOUT) {
                problems.push(p);
            }
        }
        // Hosts first, the switch (created first) last.
        for ns in self.namespaces.drain(..).rev() {
            if let Err(p) = destroy_ns(&ns) {
                problems.push(p);
            }
        }
        match list_namespaces() {
            Ok(left) => {
                let mine = format!("{}-", self.prefix);
                for ns in left.into_iter().filter(|n| n.starts_with(&mine)) {
                    problems.push(format!("namespace {ns} still exists"));
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
        if self.keep_logs || std::thread::panicking() {
            eprintln!(
                "halfopen-lab: logs of lab {} kept in {}",
                self.prefix,
                self.log_dir.display()
            );
        } else if let Err(e) = std::fs::remove_dir_all(&self.log_dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("removing {}: {e}", self.log_dir.display()));
            }
        }
        problems
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let problems = self.cleanup();
        if !problems.is_empty() {
            eprintln!(
                "halfopen-lab: teardown of lab {} was incomplete: {}",
                self.prefix,
                problems.join("; ")
            );
        }
    }
}

fn check_sysctl_key(key: &str) -> Result<(), LabError> {
    let ok = key.starts_with("net.")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' || b == b'/');
    if !ok {
        return Err(LabError::invalid(
            "sysctl key",
            key,
            "only per-namespace net.* keys can be set in a lab",
        ));
    }
    Ok(())
}
