//! Network namespaces on the real kernel: discovery of namespaces made with
//! `ip netns add` (through halfopen-lab's `Lab`) and `unshare --net`,
//! cookies, handles, workers that enter a namespace and read its sockets,
//! and naming. Needs root (skips outside CI, fails in CI); every namespace
//! is the test's own (Lab names carry the pid and a tag) and is removed on
//! drop; every wait is bounded.
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use halfopen_lab::{require_root_or_skip, Lab};
use halfopen_sockets::containers::Namer;
use halfopen_sockets::netns::{
    current_cookie, discover, run_in, spawn_in, DiscoverOptions, Discovery, NetnsHandle, NetnsSpec, NsInode,
};
use halfopen_sockets::Scanner;

fn ip(a: u8, b: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, a, b)
}

fn own_inode() -> NsInode {
    let h = NetnsHandle::open_path("/proc/thread-self/ns/net").unwrap();
    h.inode()
}

fn pid_inode(pid: u32) -> Option<NsInode> {
    NetnsHandle::open_pid(Path::new("/proc"), pid).ok().map(|h| h.inode())
}

/// Polls `f` every 20 ms for at most 10 s.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn discover_all() -> Discovery {
    let d = discover(&DiscoverOptions::default()).unwrap();
    assert_eq!(d.stats.proc_errors, 0, "{:?}", d.problems);
    d
}

/// `unshare --net sleep 30`: a namespace with one process and no name.
/// Killed and reaped on drop.
struct Unshared {
    child: Child,
}

impl Unshared {
    fn start() -> Unshared {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "30"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare runs");
        let u = Unshared { child };
        let own = own_inode();
        // unshare(2) happens between fork and exec: wait until it did
        wait_for("the unshared process to leave our namespace", || {
            pid_inode(u.pid()).filter(|i| *i != own)
        });
        u
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Unshared {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn discovery_finds_named_namespaces_with_distinct_ids_and_cookies() {
    if !require_root_or_skip("discovery_finds_named_namespaces_with_distinct_ids_and_cookies") {
        return;
    }
    let mut lab = Lab::new("nsdisc").unwrap();
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, h)| lab.add_host(h, ip(0, i as u8 + 1)).unwrap().netns)
        .collect();

    let d = discover_all();
    let own = d.own().expect("own namespace");
    assert!(own.is_self);
    assert_eq!(own.inode, own_inode());
    assert_eq!(
        own.cookie,
        current_cookie().unwrap(),
        "own cookie read without entering"
    );
    // this process is a member (the sample keeps the lowest pids, maybe not ours)
    assert!(own.members >= 1);
    let me = format!("pid:{}", std::process::id()).parse::<NetnsSpec>().unwrap();
    let sel = me.select(&d, Path::new("/proc"));
    assert_eq!(sel.chosen.iter().map(|n| n.inode).collect::<Vec<_>>(), vec![own.inode]);

    let found: Vec<_> = names
        .iter()
        .map(|n| {
            d.named(n)
                .unwrap_or_else(|| panic!("{n} not discovered: {:?}", d.namespaces))
        })
        .collect();
    let mut inodes: Vec<_> = found.iter().map(|n| n.inode).collect();
    let mut cookies: Vec<_> = found.iter().map(|n| n.cookie.expect("cookie probed as root")).collect();
    inodes.push(own.inode);
    cookies.push(own.cookie.unwrap());
    inodes.sort();
    inodes.dedup();
    cookies.sort();
    cookies.dedup();
    assert_eq!(inodes.len(), 4, "distinct inodes");
    assert_eq!(cookies.len(), 4, "distinct cookies");
    for (ns, name) in found.iter().zip(&names) {
        assert!(!ns.is_self);
        assert_eq!(ns.names, vec![name.clone()]);
        assert_eq!(ns.members, 0, "no process runs in a fresh lab host");
        // the inode is the one `ip netns` shows through the bind mount
        let st = std::fs::metadata(Path::new("/run/netns").join(name)).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&st), ns.inode.ino);
        // a handle opened from the discovery identifies the same namespace
        let h = NetnsHandle::open_discovered(ns, &DiscoverOptions::default()).unwrap();
        assert_eq!(Some(h.identify().unwrap()), ns.id());
    }
    assert_eq!(d.stats.cookies_denied, 0);
    assert_eq!(d.stats.cookies as usize, d.namespaces.len(), "{:?}", d.problems);

    // the --netns selection picks them by name, and self
    let spec: NetnsSpec = format!("{},self,{}", names[0], names[2]).parse().unwrap();
    let sel = spec.select(&d, Path::new("/proc"));
    assert!(sel.unmatched.is_empty(), "{:?}", sel.unmatched);
    let mut want = vec![found[0].inode, found[2].inode, own.inode];
    want.sort();
    assert_eq!(sel.chosen.iter().map(|n| n.inode).collect::<Vec<_>>(), want);
    lab.teardown().unwrap();
}

#[test]
fn an_unnamed_namespace_is_found_through_its_process_and_gone_after_it_exits() {
    if !require_root_or_skip("an_unnamed_namespace_is_found_through_its_process_and_gone_after_it_exits") {
        return;
    }
    let mut u = Unshared::start();
    let pid = u.pid();
    let d = discover_all();
    let ns = d
        .with_pid(pid)
        .unwrap_or_else(|| panic!("pid {pid} not found: {:?}", d.namespaces))
        .clone();
    assert!(ns.names.is_empty());
    assert!(!ns.is_self);
    assert_eq!(ns.members, 1);
    assert_eq!(ns.pids, vec![pid]);
    assert_eq!(Some(ns.inode), pid_inode(pid));
    assert!(ns.cookie.is_some());

    // pid:N selects it
    let sel = format!("pid:{pid}")
        .parse::<NetnsSpec>()
        .unwrap()
        .select(&d, Path::new("/proc"));
    assert_eq!(sel.chosen.len(), 1);
    assert_eq!(sel.chosen[0].inode, ns.inode);

    // hold it, then let its only process go
    let handle = NetnsHandle::open_discovered(&ns, &DiscoverOptions::default()).unwrap();
    assert!(d.still_used(&handle));
    u.stop();
    let d2 = discover_all();
    assert!(d2.get(ns.inode).is_none(), "still listed after its process exited");
    assert!(d2.with_pid(pid).is_none());
    assert!(!d2.still_used(&handle), "the collector is told to drop it");
    // ...yet the handle pins it: it can still be entered, and is the same namespace
    let id = run_in(&handle, || ()).map(|_| handle.identify().unwrap()).unwrap();
    assert_eq!(Some(id), ns.id());
    // and a fresh open through the discovery's paths says it is gone
    match NetnsHandle::open_discovered(&ns, &DiscoverOptions::default()) {
        Err(halfopen_sockets::netns::NetnsError::Gone { inode, tried }) => {
            assert_eq!(inode, ns.inode);
            assert_eq!(tried, vec![PathBuf::from(format!("/proc/{pid}/ns/net"))]);
        }
        other => panic!("expected Gone, got {other:?}"),
    }
    // a pid that no longer exists selects nothing, and says why
    let sel = format!("pid:{pid}")
        .parse::<NetnsSpec>()
        .unwrap()
        .select(&d2, Path::new("/proc"));
    assert!(sel.chosen.is_empty());
    assert!(sel.unmatched[0].1.contains("No such file"), "{:?}", sel.unmatched);
}

fn listener_addrs(sc: &mut Scanner) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    sc.listeners(&mut out).unwrap();
    out.into_iter().map(|l| l.addr).collect()
}

#[test]
fn a_worker_sees_its_namespace_sockets_and_only_those() {
    if !require_root_or_skip("a_worker_sees_its_namespace_sockets_and_only_those") {
        return;
    }
    let mut lab = Lab::new("nsworker").unwrap();
    let host = lab.add_host("a", ip(1, 1)).unwrap();
    let d = discover_all();
    let ns = d.named(&host.netns).unwrap();
    let handle = NetnsHandle::open_discovered(ns, &DiscoverOptions::default()).unwrap();

    // a listener made inside the namespace by a worker that stays there
    let (port_tx, port_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let holder = spawn_in(&handle, "ns-listener", move || {
        let l = TcpListener::bind("0.0.0.0:0").unwrap();
        port_tx.send(l.local_addr().unwrap()).unwrap();
        let _ = stop_rx.recv_timeout(Duration::from_secs(60));
        drop(l);
    })
    .unwrap();
    assert_eq!(
        Some(holder.id()),
        ns.id(),
        "the worker confirmed the discovered namespace"
    );
    let inside: SocketAddr = port_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    // one made here, in the test's own namespace
    let outside_l = TcpListener::bind("127.0.0.1:0").unwrap();
    let outside = outside_l.local_addr().unwrap();

    // netlink and /proc/thread-self/net readers opened inside the namespace
    let (netlink, procnet) = run_in(&handle, || {
        let mut nl = Scanner::open().unwrap();
        assert_eq!(nl.source(), halfopen_core::SourceKind::Netlink);
        let mut pn = Scanner::procnet();
        (listener_addrs(&mut nl), listener_addrs(&mut pn))
    })
    .unwrap();
    for (what, seen) in [("netlink", &netlink), ("procnet", &procnet)] {
        assert!(seen.contains(&inside), "{what} inside misses {inside}: {seen:?}");
        assert!(!seen.contains(&outside), "{what} inside sees the outside {outside}");
        assert_eq!(seen.len(), 1, "{what}: the namespace has one listener: {seen:?}");
    }
    // and the test's own scanner sees the opposite
    let mut here = Scanner::open().unwrap();
    let seen = listener_addrs(&mut here);
    assert!(seen.contains(&outside));
    assert!(
        !seen.contains(&inside),
        "own namespace sees the inside listener {inside}"
    );

    stop_tx.send(()).unwrap();
    holder.join().unwrap();
    drop(handle);
    lab.teardown().unwrap();
}

/// A throwaway directory tree, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str) -> Tree {
        let p = std::env::temp_dir().join(format!("halfopen-netns-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Tree(p)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn namespaces_are_named_from_cgroups_pod_dirs_and_docker_configs() {
    // Reads files only: a directory tree stands for the node's / and /proc.
    const CID: &str = "4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706";
    const CID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    let t = Tree::new("names");
    t.write(
        &format!("root/var/lib/docker/containers/{CID}/config.v2.json"),
        r#"{"ID":"x","Name":"/web-1","Config":{"Env":["A=1"]}}"#,
    );
    t.write(
        &format!("root/var/log/pods/shop_cart-7d9f_{UID}/cart/0.log"),
        "log line\n",
    );
    t.write("root/var/log/pods/not-a-pod-dir/x", "");
    // pid 10: a docker container; 20: a pod; 30: a crio container; 40: host; 50: a pod not on disk
    t.write("proc/10/cgroup", &format!("0::/system.slice/docker-{CID}.scope\n"));
    t.write(
        "proc/20/cgroup",
        &format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CID2}.scope\n",
            UID.replace('-', "_")
        ),
    );
    t.write("proc/30/cgroup", &format!("0::/machine.slice/crio-{CID2}.scope\n"));
    t.write("proc/40/cgroup", "0::/init.scope\n");
    t.write(
        "proc/50/cgroup",
        "0::/kubepods.slice/kubepods-pod11111111_2222_3333_4444_555555555555.slice\n",
    );
    let mut namer = Namer::new(t.0.join("root"), t.0.join("proc"));
    assert_eq!(namer.reload_pods().unwrap(), (1, 1));
    let ns = |pids: &[u32], names: &[&str]| halfopen_sockets::netns::Netns {
        inode: NsInode {
            dev: 4,
            ino: 4026532999,
        },
        cookie: None,
        names: names.iter().map(|s| s.to_string()).collect(),
        pids: pids.to_vec(),
        members: pids.len() as u32,
        is_self: false,
    };
    let label = |pids: &[u32], names: &[&str]| {
        let (n, problems) = namer.name(&ns(pids, names));
        assert!(problems.is_empty(), "{problems:?}");
        n.label()
    };
    assert_eq!(label(&[10], &[]), "web-1");
    assert_eq!(label(&[20], &[]), "shop/cart-7d9f");
    assert_eq!(label(&[30], &[]), "crio-0123456789ab");
    assert_eq!(label(&[40], &[]), "netns-4026532999");
    assert_eq!(label(&[50], &[]), "pod-11111111-2222-3333-4444-555555555555");
    assert_eq!(label(&[10], &["lab-x"]), "lab-x", "a /run/netns name comes first");
    // the lowest pid speaks: a host process (40) does not rename the container's namespace if it
    // joined later (higher pid), and a gone pid (99) is skipped
    assert_eq!(label(&[10, 40], &[]), "web-1");
    assert_eq!(label(&[99, 10], &[]), "web-1");
    assert_eq!(label(&[40, 10], &[]), "netns-4026532999");

    // a corrupt Docker config is reported, and the id still names the container
    t.write(
        &format!("root/var/lib/docker/containers/{CID}/config.v2.json"),
        "{not json",
    );
    let (n, problems) = namer.name(&ns(&[10], &[]));
    assert_eq!(n.label(), "docker-4f3c2e1d0b9a");
    assert_eq!(problems.len(), 1);
    assert!(problems[0].to_string().contains("config.v2.json"), "{}", problems[0]);
}

#[test]
fn real_namespaces_get_their_netns_names() {
    if !require_root_or_skip("real_namespaces_get_their_netns_names") {
        return;
    }
    let mut lab = Lab::new("nsname").unwrap();
    let host = lab.add_host("a", ip(2, 1)).unwrap();
    let d = discover_all();
    let namer = Namer::new("/", "/proc");
    let (n, problems) = namer.name(d.named(&host.netns).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(n.label(), host.netns);
    // the test's own namespace: this machine runs us outside any container runtime
    let (own, problems) = namer.name(d.own().unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(own.container_ref, None);
    assert_eq!(own.label(), format!("netns-{}", own_inode().ino));
    lab.teardown().unwrap();
}

#[test]
fn run_netns_entries_that_are_not_network_namespaces_are_reported() {
    // A directory standing for /run/netns: a plain file (what `ip netns add` leaves when the bind
    // mount is gone), a link to a UTS namespace, and a link to our own network namespace.
    let t = Tree::new("runnetns");
    t.write("stale", "");
    std::os::unix::fs::symlink("/proc/self/ns/uts", t.0.join("uts")).unwrap();
    std::os::unix::fs::symlink("/proc/self/ns/net", t.0.join("mine")).unwrap();
    let opts = DiscoverOptions {
        run_netns: t.0.clone(),
        probe_cookies: false,
        ..Default::default()
    };
    let d = discover(&opts).unwrap();
    assert_eq!(d.own().unwrap().names, vec!["mine".to_string()]);
    assert_eq!(d.stats.names, 1);
    assert_eq!(d.stats.stale_names, 2);
    assert_eq!(d.stats.name_errors, 0);
    let kinds: Vec<_> = d
        .problems
        .iter()
        .filter(|p| p.path.starts_with(&t.0))
        .map(|p| p.kind.clone())
        .collect();
    use halfopen_sockets::netns::ProblemKind;
    assert!(
        kinds.contains(&ProblemKind::NameStale { name: "stale".into() }),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&ProblemKind::NameNotNet { name: "uts".into() }),
        "{kinds:?}"
    );
    let stale = d
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::NameStale { name: "stale".into() })
        .unwrap();
    assert!(stale.to_string().contains("not on nsfs"), "{stale}");
}
