//! End-to-end: one collector covers the network namespaces of its machine
//! (issue 13, `halfopen collector --netns`), each namespace reported as the
//! host `HOSTID/NAME`, and the reconciler joins connections through the NAT
//! of whichever namespace translated them. Real namespaces, real nftables
//! NAT, real cgroups naming pods and containers, the real binary:
//!
//! 1. Kubernetes-like: two nodes, pods behind each node's bridge, routes
//!    between nodes, a Service VIP DNAT'd on the client's node to a pod on
//!    the other node; one collector per node covering its pods.
//! 2. Docker-like: a published port DNAT'd on the server's machine to a
//!    container's 3306.
//! 3. Masquerade: a pod reaching a server outside through its node's address.
//! 4. A namespace created and deleted while the collector runs.
//! 5. Namespaces the collector cannot enter are listed as not covered.
//!
//! All lab namespaces share one machine, so every collector here gets an
//! explicit `--netns self,NS...` list of its own lab's namespaces: `all`
//! would also cover every other test's namespaces. Needs root (fails under
//! CI=true without it, skips with a reason elsewhere).
mod common;

use common::*;
use halfopen_lab::fleet::{ss_client_only_through_dnat, Fleet};
use halfopen_lab::{BurstReport, Lab, LabChild};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

/// kube-proxy on the client's node: the Service VIP's ports 80 (healthy
/// traffic) and 81 (the incident) are DNAT'd, for what comes from the pods'
/// bridge, to the server pod on the other node.
const VIP_DNAT: &str = "table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100;
    iifname \"cbr0\" ip daddr 198.18.100.1 tcp dport 80 dnat to 198.18.2.2:8080
    iifname \"cbr0\" ip daddr 198.18.100.1 tcp dport 81 dnat to 198.18.2.2:8081
  }
}";

/// Docker's published port on the server's machine: 13306 to the
/// container's 3306 (no masquerade: the container sees the client).
const DOCKER_DNAT: &str = "table ip nat {
  chain prerouting {
    type nat hook prerouting priority -100;
    iifname \"eth0\" tcp dport 13306 dnat to 198.19.0.2:3306
  }
}";

/// The node masquerades what its pods send out of eth0 (a pod reaching a
/// server outside the cluster).
const MASQUERADE: &str = "table ip nat {
  chain postrouting {
    type nat hook postrouting priority 100;
    ip saddr 198.18.1.0/24 oifname \"eth0\" masquerade
  }
}";

const POD_UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const CONTAINER_ID: &str = "4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706";

/// What a container runtime leaves on a node, for real: cgroups whose paths
/// carry a pod uid or a container id (the v1 `pids` hierarchy; processes are
/// moved into them), and the kubelet's /var/log/pods directories and
/// Docker's config.v2.json under a node root of our own (`--host-root`).
/// Removed on drop (declare it before the lab: the lab's processes must be
/// gone first for the cgroups to be removable).
struct FakeRuntime {
    /// Our top cgroup, `/sys/fs/cgroup/pids/ho-netns-PID-SEQ`.
    cgroup_top: PathBuf,
    root: PathBuf,
}

impl FakeRuntime {
    fn new(tag: &str) -> FakeRuntime {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ho-{tag}-{}-{seq}", std::process::id());
        let cgroup_top = PathBuf::from("/sys/fs/cgroup/pids").join(&name);
        let root = std::env::temp_dir().join(format!("{name}-root"));
        std::fs::create_dir_all(&cgroup_top).expect("creating a cgroup (the v1 pids hierarchy)");
        std::fs::create_dir_all(&root).unwrap();
        FakeRuntime { cgroup_top, root }
    }

    /// `pid` into the cgroup at `rel` (created) under our top cgroup.
    fn move_into(&self, rel: &str, pid: u32) {
        let dir = self.cgroup_top.join(rel);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        let shown = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(shown.contains(rel), "{pid} is not in {rel}: {shown}");
    }

    /// A Kubernetes pod: `pid` in the pod's cgroup (kubelet's cgroupfs
    /// layout), and its /var/log/pods directory.
    fn pod(&self, pid: u32, namespace: &str, name: &str) {
        self.move_into(&format!("kubepods/besteffort/pod{POD_UID}/{CONTAINER_ID}"), pid);
        std::fs::create_dir_all(self.root.join(format!("var/log/pods/{namespace}_{name}_{POD_UID}"))).unwrap();
    }

    /// A Docker container: `pid` in its cgroup (cgroupfs driver) and its
    /// config naming it.
    fn docker(&self, pid: u32, name: &str) {
        self.move_into(&format!("docker/{CONTAINER_ID}"), pid);
        let dir = self.root.join(format!("var/lib/docker/containers/{CONTAINER_ID}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.v2.json"),
            format!("{{\"ID\":\"{CONTAINER_ID}\",\"Name\":\"/{name}\"}}"),
        )
        .unwrap();
    }

    fn root(&self) -> &str {
        self.root.to_str().unwrap()
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        // Deepest first; a cgroup is removable once its processes are gone
        // (bounded wait for the lab's killed processes to be reaped).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut dirs = Vec::new();
            collect_dirs(&self.cgroup_top, &mut dirs);
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            let mut left = 0;
            for d in dirs.iter().chain(std::iter::once(&self.cgroup_top)) {
                if std::fs::remove_dir(d).is_err() && d.exists() {
                    left += 1;
                }
            }
            if left == 0 || Instant::now() > deadline {
                if left > 0 {
                    eprintln!("e2e_netns: cgroups left under {}", self.cgroup_top.display());
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn collect_dirs(p: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// A long sleep in `host`'s namespace, standing for a pod's or container's
/// first process (the pause container).
fn pause(lab: &mut Lab, host: &str) -> LabChild {
    lab.spawn(host, Path::new("sleep"), &["600"]).unwrap()
}

/// `HOSTID/NAME` of a lab host's namespace, named after its /run/netns name.
fn ns_host(lab: &Lab, parent: &str, host: &str) -> String {
    format!("{parent}/{}", lab.host(host).netns)
}

/// `--netns self,NS1,NS2...` of these lab hosts, rescanned every second.
fn netns_flags(lab: &Lab, hosts: &[&str]) -> Vec<String> {
    let mut list = vec!["self".to_string()];
    list.extend(hosts.iter().map(|h| lab.host(h).netns.clone()));
    vec!["--netns".into(), list.join(","), "--netns-rescan".into(), "1s".into()]
}

fn add_node_collector(lab: &mut Lab, fleet: &mut Fleet, node: &str, extra: &[String]) -> LabChild {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    fleet.add_collector_with(lab, node, "1s", &extra).unwrap()
}

fn host_named(lab: &Lab, fleet: &Fleet, name: &str) -> Value {
    fleet
        .hosts(lab)
        .unwrap()
        .into_iter()
        .find(|h| h["host_id"] == name)
        .unwrap_or_else(|| panic!("no host {name} in `halfopen hosts`"))
}

/// `count` healthy connections from `host` to `target`, held for 60 s.
fn held_healthy(lab: &mut Lab, host: &str, target: &str, count: u64) -> LabChild {
    let n = count.to_string();
    let b = lab
        .spawn(
            host,
            &exe(),
            &["lab", "burst", "--target", target, "--count", &n, "--hold", "60s"],
        )
        .unwrap();
    let r: BurstReport = b
        .wait_for_json(|r: &BurstReport| r.greeted == count, Duration::from_secs(20))
        .unwrap();
    assert_eq!((r.established, r.failed), (count, 0), "{r:?}");
    b
}

/// Asserts, every 500 ms for `period`, that there is no finding of any kind
/// while these hosts are fresh (so the silence is a judgement).
fn assert_no_finding_for(lab: &Lab, fleet: &Fleet, period: Duration, hosts: &[&str]) {
    let start = Instant::now();
    while start.elapsed() < period {
        let all = fleet.query(lab, &["findings"]).unwrap().as_array().unwrap().clone();
        assert!(
            all.is_empty(),
            "healthy connections reported ({} findings): {}\nlogs in {}",
            all.len(),
            serde_json::to_string_pretty(&all[..all.len().min(3)]).unwrap(),
            lab.log_dir().display()
        );
        for h in hosts {
            assert_eq!(host_named(lab, fleet, h)["stale"], false, "{h} went stale");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Polls until halfopen's orphans of `client_host_id` that dialed `dialed`
/// are exactly `truth()` (non-empty, and unchanged when read again), or
/// fails after TIMEOUT with both sets.
fn wait_for_orphans(
    lab: &Lab,
    fleet: &Fleet,
    client_host_id: &str,
    dialed: SocketAddr,
    mut truth: impl FnMut() -> BTreeSet<SocketAddr>,
) -> (BTreeSet<SocketAddr>, Vec<Value>) {
    let start = Instant::now();
    loop {
        let t = truth();
        let found: Vec<Value> = fleet
            .orphans(lab)
            .unwrap()
            .into_iter()
            .filter(|f| f["client_host"] == client_host_id && f["dialed"] == dialed.to_string())
            .collect();
        let ends: BTreeSet<SocketAddr> = found
            .iter()
            .map(|f| f["client"].as_str().unwrap().parse().unwrap())
            .collect();
        if !t.is_empty() && ends == t && truth() == t {
            println!("ss and halfopen agree on {} orphans of {client_host_id}", t.len());
            return (t, found);
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "no agreement after {TIMEOUT:?}: ss client-only {} {:?}\nhalfopen {} {}\nhosts {}\nlogs in {}",
            t.len(),
            t.iter().take(5).collect::<Vec<_>>(),
            found.len(),
            serde_json::to_string_pretty(&found[..found.len().min(2)]).unwrap(),
            serde_json::to_string_pretty(&fleet.hosts(lab).unwrap()).unwrap(),
            lab.log_dir().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Two nodes on the lab bridge (na 198.18.0.1, nb 198.18.0.2), each with
/// two pods behind its bridge (na: pa1 198.18.1.2, pa2 198.18.1.3; nb: pb1
/// 198.18.2.2, pb2 198.18.2.3), routes between the nodes' pod networks,
/// and recon 198.18.0.3 running the reconciler.
fn cluster(lab: &mut Lab) -> Fleet {
    lab.add_host("na", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("nb", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    for (node, pod, gw, ip) in [
        ("na", "pa1", "198.18.1.1", "198.18.1.2"),
        ("na", "pa2", "198.18.1.1", "198.18.1.3"),
        ("nb", "pb1", "198.18.2.1", "198.18.2.2"),
        ("nb", "pb2", "198.18.2.1", "198.18.2.3"),
    ] {
        lab.add_bridged(node, pod, gw.parse().unwrap(), ip.parse().unwrap())
            .unwrap();
    }
    lab.route("na", "198.18.2.0/24", "198.18.0.2".parse().unwrap()).unwrap();
    lab.route("nb", "198.18.1.0/24", "198.18.0.1".parse().unwrap()).unwrap();
    Fleet::start(lab, &exe(), "recon", &["--no-db"]).unwrap()
}

/// (1) Kubernetes-like. The client pod pa1 (its first process in a real
/// kubepods cgroup, its pod directory under the node root) dials the
/// Service VIP 198.18.100.1, DNAT'd on na to the server pod pb1 on the other
/// node. One collector per node covers the node and its pods. Healthy
/// churn through the VIP: not one finding. The seed incident through the
/// VIP: every orphan found, the client pod named (host, pod) with its
/// process, the VIP as `dialed`, na as the translator, pb1 as the server.
#[test]
fn kubernetes_vip_across_nodes_with_one_collector_per_node() {
    let runtime = FakeRuntime::new("netns-k8s");
    let Some(mut lab) = lab("netns-k8s") else { return };
    let mut fleet = cluster(&mut lab);
    lab.nft("na", VIP_DNAT).unwrap();
    lab.sysctl("pb1", "net.ipv4.tcp_syncookies", "1").unwrap();
    let pause_a1 = pause(&mut lab, "pa1");
    runtime.pod(pause_a1.pid(), "shop", "client-7d9f");
    let mut flags_a = netns_flags(&lab, &["pa1", "pa2"]);
    flags_a.extend(["--host-root".to_string(), runtime.root().to_string()]);
    add_node_collector(&mut lab, &mut fleet, "na", &flags_a);
    let flags_b = netns_flags(&lab, &["pb1", "pb2"]);
    add_node_collector(&mut lab, &mut fleet, "nb", &flags_b);
    let client_id = "na/shop/client-7d9f";
    let server_id = ns_host(&lab, "nb", "pb1");
    let pa2_id = ns_host(&lab, "na", "pa2");
    let all_hosts = ["na", "nb", client_id, &pa2_id, &server_id, &ns_host(&lab, "nb", "pb2")];
    fleet
        .wait_for_collectors_named(&lab, &all_hosts, Duration::from_secs(30))
        .unwrap();

    // Each namespace is its own host: the pod named from its cgroup and the
    // kubelet's directory, the others by their /run/netns names.
    let a1 = host_named(&lab, &fleet, client_id);
    assert_eq!(a1["parent"], "na", "{a1}");
    assert_eq!(a1["pod"], "shop/client-7d9f", "{a1}");
    assert_eq!(a1["netns"], "shop/client-7d9f", "{a1}");
    assert!(
        a1["addresses"].as_array().unwrap().iter().any(|a| a == "198.18.1.2"),
        "{a1}"
    );
    let b1 = host_named(&lab, &fleet, &server_id);
    assert_eq!(b1["parent"], "nb", "{b1}");
    assert_eq!(b1["netns"].as_str(), Some(lab.host("pb1").netns.as_str()), "{b1}");
    assert_eq!(b1["pod"], Value::Null);
    let na = host_named(&lab, &fleet, "na");
    assert_eq!(
        (na["parent"].clone(), na["nat"].clone()),
        (Value::Null, "visible".into()),
        "{na}"
    );
    assert!(na["blind_spots"].as_array().unwrap().is_empty(), "{na}");
    assert_eq!(na["netns"], Value::Null, "{na}");
    assert_ne!(
        a1["netns_cookie"], na["netns_cookie"],
        "each its own namespace identity"
    );

    // Healthy churn through the VIP from the other pod: not one finding.
    let _healthy = greet_server(&mut lab, "pb1", "0.0.0.0:8080", &["--backlog", "4096"]);
    let churn = lab
        .spawn(
            "pa2",
            &exe(),
            &[
                "lab",
                "churn",
                "--target",
                "198.18.100.1:80",
                "--rate",
                "200/s",
                "--max-life",
                "5s",
                "--duration",
                "20s",
            ],
        )
        .unwrap();
    assert_no_finding_for(
        &lab,
        &fleet,
        Duration::from_secs(20),
        &["na", "nb", &pa2_id, &server_id],
    );
    let summary = churn
        .wait_for_line(|l| l.contains("\"opened\""), Duration::from_secs(30))
        .unwrap();
    println!("churn through the VIP: {summary}");
    let v: Value = serde_json::from_str(&summary).unwrap();
    assert!(
        v["opened"].as_u64().unwrap() >= 2000,
        "churn too slow to prove anything: {summary}"
    );

    // The seed incident, from the client pod through the VIP.
    let vip: SocketAddr = "198.18.100.1:81".parse().unwrap();
    let backend: SocketAddr = "198.18.2.2:8081".parse().unwrap();
    let inc = incident(&mut lab, "pb1", "0.0.0.0:8081", "pa1", "198.18.100.1:81", 200);
    let (truth, found) = wait_for_orphans(&lab, &fleet, client_id, vip, || {
        ss_client_only_through_dnat(&lab, "pa1", vip, "pb1", backend).unwrap()
    });
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );
    assert_processes_match_ss(&lab, "pa1", &found);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64), "{f}");
        assert_eq!(f["client_pod"], "shop/client-7d9f", "{f}");
        assert_eq!(f["server_host"], server_id.as_str(), "{f}");
        assert_eq!(f["server"], "198.18.2.2:8081", "{f}");
        assert_eq!(f["dialed"], "198.18.100.1:81", "{f}");
        let nat = &f["evidence"]["nat"];
        assert_eq!(nat["translated_on"], "na", "the client's node translated it: {f}");
        assert_eq!(nat["seen_as"], f["client"], "no masquerade: {f}");
        let text = f["explanation"].as_str().unwrap();
        assert!(
            text.contains("dialed 198.18.100.1:81, translated by na's NAT"),
            "{text}"
        );
    }
    // Nothing else: no orphan of another host, no server_only of the pod.
    let all = fleet.query(&lab, &["findings"]).unwrap();
    let others: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] != "listener_at_risk" && f["kind"] != "accept_stalled")
        .filter(|f| !(f["kind"] == "client_only" && f["client_host"] == client_id))
        .collect();
    assert!(others.is_empty(), "false findings: {others:?}");
    lab.teardown().unwrap();
    drop(runtime);
}

/// (2) Docker-like published port: the client machine dials the server
/// machine's 13306, DNAT'd there to the container's 3306 (the container's
/// first process in a real docker cgroup, its config naming it mysql-1).
/// One collector per machine; the server's covers its container.
#[test]
fn docker_published_port_into_a_container_of_the_servers_machine() {
    let runtime = FakeRuntime::new("netns-docker");
    let Some(mut lab) = lab("netns-docker") else { return };
    lab.add_host("srv", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("cli", "198.18.0.2".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.add_bridged(
        "srv",
        "ctr",
        "198.19.0.1".parse().unwrap(),
        "198.19.0.2".parse().unwrap(),
    )
    .unwrap();
    lab.nft("srv", DOCKER_DNAT).unwrap();
    lab.sysctl("ctr", "net.ipv4.tcp_syncookies", "1").unwrap();
    let p = pause(&mut lab, "ctr");
    runtime.docker(p.pid(), "mysql-1");
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let mut flags = netns_flags(&lab, &["ctr"]);
    flags.extend(["--host-root".to_string(), runtime.root().to_string()]);
    add_node_collector(&mut lab, &mut fleet, "srv", &flags);
    fleet.add_collector(&mut lab, "cli", "1s").unwrap();
    fleet
        .wait_for_collectors_named(&lab, &["srv", "srv/mysql-1", "cli"], Duration::from_secs(30))
        .unwrap();
    let c = host_named(&lab, &fleet, "srv/mysql-1");
    assert_eq!(
        (c["parent"].as_str(), c["container"].as_str()),
        (Some("srv"), Some("mysql-1")),
        "{c}"
    );

    // Healthy connections through the published port first: nothing.
    let healthy = greet_server(&mut lab, "ctr", "0.0.0.0:3306", &["--backlog", "128"]);
    let clients = held_healthy(&mut lab, "cli", "198.18.0.1:13306", 5);
    assert_no_finding_for(&lab, &fleet, Duration::from_secs(8), &["srv", "srv/mysql-1", "cli"]);
    clients.kill().unwrap();
    healthy.kill().unwrap();

    let published: SocketAddr = "198.18.0.1:13306".parse().unwrap();
    let real: SocketAddr = "198.19.0.2:3306".parse().unwrap();
    let inc = incident(&mut lab, "ctr", "0.0.0.0:3306", "cli", "198.18.0.1:13306", 200);
    let (truth, found) = wait_for_orphans(&lab, &fleet, "cli", published, || {
        ss_client_only_through_dnat(&lab, "cli", published, "ctr", real).unwrap()
    });
    assert!(
        truth.len() >= 50,
        "the incident did not reproduce well: {}",
        truth.len()
    );
    assert_processes_match_ss(&lab, "cli", &found);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64), "{f}");
        assert_eq!(f["server_host"], "srv/mysql-1", "{f}");
        assert_eq!(f["server_container"], "mysql-1", "{f}");
        assert_eq!(f["client_container"], Value::Null, "{f}");
        assert_eq!(f["server"], "198.19.0.2:3306", "{f}");
        assert_eq!(f["dialed"], "198.18.0.1:13306", "{f}");
        assert_eq!(
            f["evidence"]["nat"]["translated_on"], "srv",
            "the server's machine translated it: {f}"
        );
    }
    lab.teardown().unwrap();
    drop(runtime);
}

/// (client end in the pod, as seen by the server) for every connection the
/// node's conntrack masqueraded to `server`: `conntrack -L` on the node.
fn masquerade_map(lab: &Lab, node: &str, server: SocketAddr) -> BTreeMap<SocketAddr, SocketAddr> {
    let out = lab
        .run_ok(
            node,
            "conntrack",
            &["-L", "-p", "tcp", "--dport", &server.port().to_string()],
            Duration::from_secs(15),
        )
        .unwrap();
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let kv: Vec<(&str, &str)> = line.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str, n: usize| kv.iter().filter(|(key, _)| *key == k).nth(n).map(|(_, v)| *v);
        let (Some(src), Some(sport), Some(rdst), Some(rdport)) =
            (get("src", 0), get("sport", 0), get("dst", 1), get("dport", 1))
        else {
            continue;
        };
        if let (Ok(pod), Ok(seen)) = (
            format!("{src}:{sport}").parse::<SocketAddr>(),
            format!("{rdst}:{rdport}").parse::<SocketAddr>(),
        ) {
            map.insert(pod, seen);
        }
    }
    map
}

/// (3) Masquerade: the pod pa1 reaches a server outside the cluster (ext,
/// its own machine) through its node's address. Healthy connections are
/// joined through na's conntrack (no finding, none server_only); the seed
/// incident's orphans are found, each seen by the server as na's address.
#[test]
fn a_pod_masqueraded_behind_its_node_reaches_a_server_outside() {
    let Some(mut lab) = lab("netns-snat") else { return };
    lab.add_host("na", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("ext", "198.18.0.9".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.add_bridged(
        "na",
        "pa1",
        "198.18.1.1".parse().unwrap(),
        "198.18.1.2".parse().unwrap(),
    )
    .unwrap();
    lab.nft("na", MASQUERADE).unwrap();
    lab.sysctl("ext", "net.ipv4.tcp_syncookies", "1").unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let flags = netns_flags(&lab, &["pa1"]);
    add_node_collector(&mut lab, &mut fleet, "na", &flags);
    fleet.add_collector(&mut lab, "ext", "1s").unwrap();
    let pod_id = ns_host(&lab, "na", "pa1");
    fleet
        .wait_for_collectors_named(&lab, &["na", "ext", &pod_id], Duration::from_secs(30))
        .unwrap();
    let server: SocketAddr = "198.18.0.9:5432".parse().unwrap();

    let healthy = greet_server(&mut lab, "ext", "0.0.0.0:5432", &["--backlog", "128"]);
    let clients = held_healthy(&mut lab, "pa1", "198.18.0.9:5432", 5);
    // The lab is what it claims: ext sees the node, not the pod.
    let seen: Vec<SocketAddr> = lab
        .ss_established("ext")
        .unwrap()
        .into_iter()
        .filter(|c| c.local == server)
        .map(|c| c.remote)
        .collect();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.ip().to_string() == "198.18.0.1"), "{seen:?}");
    assert_no_finding_for(&lab, &fleet, Duration::from_secs(10), &["na", "ext", &pod_id]);
    clients.kill().unwrap();
    healthy.kill().unwrap();

    let inc = incident(&mut lab, "ext", "0.0.0.0:5432", "pa1", "198.18.0.9:5432", 200);
    let truth = || {
        let map = masquerade_map(&lab, "na", server);
        let held: BTreeSet<SocketAddr> = lab
            .ss_established("ext")
            .unwrap()
            .into_iter()
            .filter(|c| c.local == server)
            .map(|c| c.remote)
            .collect();
        lab.ss_established("pa1")
            .unwrap()
            .into_iter()
            .filter(|c| c.remote == server)
            .map(|c| c.local)
            .filter(|pod| {
                let seen = map
                    .get(pod)
                    .unwrap_or_else(|| panic!("{pod} has no conntrack entry on na"));
                !held.contains(seen)
            })
            .collect::<BTreeSet<SocketAddr>>()
    };
    let (truth_set, found) = wait_for_orphans(&lab, &fleet, &pod_id, server, truth);
    assert!(
        truth_set.len() >= 50,
        "the incident did not reproduce well: {}",
        truth_set.len()
    );
    assert_processes_match_ss(&lab, "pa1", &found);
    let map = masquerade_map(&lab, "na", server);
    for f in &found {
        assert_eq!(f["pid"].as_u64(), Some(inc.burst.pid() as u64), "{f}");
        assert_eq!(f["server_host"], "ext", "{f}");
        let nat = &f["evidence"]["nat"];
        assert_eq!(nat["translated_on"], "na", "{f}");
        let client: SocketAddr = f["client"].as_str().unwrap().parse().unwrap();
        assert_eq!(nat["seen_as"], map[&client].to_string(), "as the server saw it: {f}");
    }
    let server_only = fleet.findings(&lab, "server_only").unwrap();
    assert!(server_only.is_empty(), "{server_only:?}");
    lab.teardown().unwrap();
}

/// Polls `f` every 250 ms until it holds (true) or `timeout` passes (false).
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Threads of `pid` whose name starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end().starts_with(prefix)))
        .count()
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Whether some thread of `pid` is in the namespace with this inode.
fn any_thread_in(pid: u32, ns_ino: u64) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .any(|t| {
            std::fs::metadata(t.path().join("ns/net")).is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == ns_ino)
        })
}

/// A namespace of our own, outside the lab's hosts: `ip netns add`, lo up,
/// a listener inside; deleted (its process killed) on drop.
struct LateNamespace {
    name: String,
    server: Option<Child>,
}

impl LateNamespace {
    fn create(name: &str) -> LateNamespace {
        let ok = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ok(&["netns", "add", name]);
        let mut ns = LateNamespace {
            name: name.to_string(),
            server: None,
        };
        ok(&["-n", name, "link", "set", "lo", "up"]);
        let child = Command::new("ip")
            .args(["netns", "exec", name])
            .arg(exe())
            .args(["lab", "greet-server", "--listen", "127.0.0.1:7000", "--backlog", "16"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ns.server = Some(child);
        ns
    }

    fn inode(&self) -> u64 {
        std::fs::metadata(format!("/run/netns/{}", self.name))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .unwrap()
    }
}

impl Drop for LateNamespace {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// (4) A namespace created while the collector runs is covered within a
/// rescan (its listener seen); deleted, it is dropped: its host is
/// disconnected, its worker thread ended, the collector's fds back to where
/// they were, no thread of the collector left in it, and no finding
/// meanwhile. Twice, with the same name (the second namespace may even get
/// the first one's inode number).
#[test]
fn a_namespace_that_comes_and_goes_is_picked_up_and_dropped_without_leaks() {
    let Some(mut lab) = lab("netns-churn") else { return };
    lab.add_host("na", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let late = format!("{}-late", lab.prefix());
    let collector = fleet
        .add_collector_with(
            &mut lab,
            "na",
            "1s",
            &["--netns", &format!("self,{late}"), "--netns-rescan", "1s"],
        )
        .unwrap();
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let pid = collector.pid();
    let late_id = format!("na/{late}");
    // Settled: the collector's fds and worker threads before anything comes.
    std::thread::sleep(Duration::from_secs(2));
    let baseline = (0..5)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(200));
            fd_count(pid)
        })
        .min()
        .unwrap();
    assert_eq!(threads_named(pid, "ho-ns-"), 0);

    for round in 1..=2 {
        let ns = LateNamespace::create(&late);
        let ino = ns.inode();
        let mut last = Value::Null;
        let covered = wait_until(TIMEOUT, || {
            let Some(h) = fleet
                .hosts(&lab)
                .unwrap()
                .into_iter()
                .find(|h| h["host_id"] == late_id.as_str())
            else {
                return false;
            };
            last = h;
            last["connected"] == true && last["stale"] == false && last["listeners"] == 1
        });
        assert!(covered, "round {round}: {late_id} not covered: {last}");
        assert_eq!(threads_named(pid, "ho-ns-"), 1, "one worker for the namespace");
        assert!(any_thread_in(pid, ino), "the worker is inside it");
        assert_eq!(host_named(&lab, &fleet, &late_id)["parent"], "na");
        drop(ns); // its process killed, `ip netns del`
        wait_for(&format!("round {round}: {late_id} dropped"), TIMEOUT, || {
            let h = fleet
                .hosts(&lab)
                .unwrap()
                .into_iter()
                .find(|h| h["host_id"] == late_id.as_str())?;
            (h["connected"] == false).then_some(())
        });
        wait_for(
            &format!("round {round}: the worker ended and its fds closed"),
            TIMEOUT,
            || {
                (threads_named(pid, "ho-ns-") == 0 && !any_thread_in(pid, ino) && fd_count(pid) <= baseline)
                    .then_some(())
            },
        );
        let findings = fleet.query(&lab, &["findings"]).unwrap();
        assert_eq!(findings.as_array().unwrap().len(), 0, "{findings}");
    }
    let log = collector.read_stderr().unwrap();
    assert!(log.contains("stopped covering network namespace"), "{log}");
    lab.teardown().unwrap();
}

/// (5) A collector without CAP_SYS_ADMIN cannot enter the pods' namespaces:
/// each is a blind spot of the node, shown by `hosts` and `coverage`,
/// naming the namespace and the capability; no host is made up for it.
#[test]
fn namespaces_the_collector_cannot_enter_are_listed_as_not_covered() {
    let Some(mut lab) = lab("netns-nocap") else { return };
    lab.add_host("na", "198.18.0.1".parse().unwrap()).unwrap();
    lab.add_host("recon", "198.18.0.3".parse().unwrap()).unwrap();
    lab.add_bridged(
        "na",
        "pa1",
        "198.18.1.1".parse().unwrap(),
        "198.18.1.2".parse().unwrap(),
    )
    .unwrap();
    let mut fleet = Fleet::start(&mut lab, &exe(), "recon", &["--no-db"]).unwrap();
    let exe = exe();
    let pa1 = lab.host("pa1").netns.clone();
    let list = format!("self,{pa1}");
    let remote = fleet.collector_args("na").unwrap(); // --reconciler URL and its TLS files
    let mut args = vec![
        "--inh-caps=-sys_admin",
        "--ambient-caps=-sys_admin",
        "--bounding-set=-sys_admin",
        exe.to_str().unwrap(),
        "collector",
        "--interval",
        "1s",
        "--host-id",
        "na",
        "--netns",
        &list,
        "--netns-rescan",
        "1s",
    ];
    args.extend(remote.iter().map(String::as_str));
    let c = lab.spawn("na", Path::new("setpriv"), &args).unwrap();
    fleet.collectors.push(("na".into(), c.clone()));
    fleet.wait_for_collectors(&lab, Duration::from_secs(30)).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid())).unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(eff & (1 << 21), 0, "CAP_SYS_ADMIN still effective: {eff:x}");

    let na = host_named(&lab, &fleet, "na");
    let spots: Vec<&str> = na["blind_spots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(
        spots
            .iter()
            .any(|s| s.contains(&format!("network namespace {pa1}"))
                && s.contains("cannot enter: CAP_SYS_ADMIN missing")),
        "{spots:?}"
    );
    let hosts = fleet.hosts(&lab).unwrap();
    assert!(
        !hosts.iter().any(|h| h["host_id"].as_str().unwrap().starts_with("na/")),
        "no host for a namespace that was not entered: {hosts:?}"
    );
    let cov = fleet.query(&lab, &["coverage"]).unwrap();
    assert_eq!(cov["complete"], false, "{cov}");
    assert!(
        cov["blind_spots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["host"] == "na" && b["what"].as_str().unwrap().contains(&pa1)),
        "{cov}"
    );
    let log = c.read_stderr().unwrap();
    assert!(log.contains("not covered: network namespace"), "{log}");
    lab.teardown().unwrap();
}
