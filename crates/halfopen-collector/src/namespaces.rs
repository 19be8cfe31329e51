//! Which network namespaces the collector covers (`--netns`), and one host
//! per namespace: its worker thread entered into it, its own session. The
//! collector's own namespace is the host `HOSTID` (today's collector); every
//! other covered namespace is the host `HOSTID/NAME` ([`namespace_label`]),
//! whose Hello names its parent, namespace, container and pod.
//!
//! A rescan every `--netns-rescan` (halfopen_sockets::netns::discover:
//! /proc/*/ns/net and /run/netns) adds the namespaces that appeared and
//! stops those that are gone: their session ends, their worker thread ends
//! (joined, so nothing leaks), and their handle is closed, so the collector
//! never keeps a dead namespace alive. With `all`, a namespace is covered
//! once it holds a TCP socket (sockstat's `inuse` or `tw`), and stays
//! covered while it lives; a list covers what it names.
//!
//! Identity: a covered namespace is keyed by its nsfs inode **while the
//! collector holds it open** (a held namespace cannot die, so its inode
//! cannot be given to another); the Hello carries its netns cookie, which is
//! never reused. At most `--max-namespaces` are covered besides the own one.
//! What cannot be covered (entering refused, too many) is a blind spot of
//! the collector's own host, `halfopen hosts` and `halfopen coverage` show
//! it; it is never skipped silently.
use crate::bpf::BpfHub;
use crate::metrics::CollectorMetrics;
use crate::session::{run_host, CollectorError, HostSpec, Link};
use crate::worker::{shared_owners, Kernel, KernelError, SharedOwners};
use halfopen_sockets::containers::{Namer, NetnsName};
use halfopen_sockets::netns::{
    discover, run_in, DiscoverOptions, Netns, NetnsError, NetnsHandle, NetnsSelector, NetnsSpec, NetnsThread, NsInode,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Longest host id the reconciler takes (RFC 1035's bound of a DNS name;
/// halfopen-identity's `MAX_HOST_ID_LEN`).
pub const MAX_HOST_ID_LEN: usize = 255;

/// How long a stopped namespace's worker may take to finish its current
/// scan before it is reported as not ending.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the collector's hosts until `shutdown`: its own namespace's and,
/// unless `--netns self`, every other namespace the spec picks, rescanned.
/// `metrics` are the collector's own namespace's; every other namespace's
/// host counts into [`CollectorMetrics::for_namespace`] of them.
pub(crate) async fn run(
    link: Link,
    metrics: CollectorMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), CollectorError> {
    let cfg = link.cfg.clone();
    let owners = shared_owners();
    let own = covers_own(&cfg.netns);
    let (own_kernel, hub) = if own {
        // `--source` picks the own namespace's source (eBPF where allowed);
        // every other namespace follows the same programs when it is eBPF.
        let c = crate::choose::start(
            cfg.source,
            cfg.bpf,
            owners.clone(),
            cfg.host_id.clone(),
            metrics.clone(),
        )?;
        (Some(c.kernel), c.hub)
    } else {
        // Not the own namespace: the programs (when `--source` takes eBPF)
        // start following no namespace, and each covered one joins them.
        (None, crate::choose::start_hub(cfg.source, cfg.bpf)?)
    };
    let own_host = HostSpec {
        host_id: cfg.host_id.clone(),
        ..Default::default()
    };
    tokio::pin!(shutdown);
    if is_self_only(&cfg.netns) {
        // Today's collector: no discovery, no other host.
        if let Some(k) = &own_kernel {
            run_host(&link, &own_host, k, &metrics, None, &mut shutdown).await;
        }
        return Ok(());
    }

    let mut m = Manager {
        bpf: hub.map(|h| (h, cfg.bpf.dump_every)),
        link: link.clone(),
        metrics: metrics.for_namespace(),
        owners,
        namer: Some(Namer::new(&cfg.host_root, "/proc")),
        covered: BTreeMap::new(),
        logged: BTreeSet::new(),
    };
    let (spots_tx, spots_rx) = watch::channel(Vec::new());
    // The first discovery before the own session: its Hello says what is
    // not covered.
    let spots = m.rescan().await?;
    log_spots(&spots);
    spots_tx.send_replace(spots);
    let own_task = own_kernel.map(|k| {
        let link = link.clone();
        let metrics = metrics.clone();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            run_host(&link, &own_host, &k, &metrics, Some(spots_rx), async {
                let _ = stop_rx.await;
            })
            .await;
        });
        (stop_tx, task)
    });
    let mut tick = tokio::time::interval(cfg.netns_rescan);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: the rescan above was it
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => match m.rescan().await {
                Ok(spots) => {
                    spots_tx.send_if_modified(|old| {
                        let changed = *old != spots;
                        if changed {
                            log_spots(&spots);
                        }
                        *old = spots;
                        changed
                    });
                }
                // Only /proc itself unreadable: keep what is covered, try again.
                Err(e) => warn!("looking for network namespaces failed, keeping the {} covered: {e}", m.covered.len()),
            },
        }
    }
    let inodes: Vec<NsInode> = m.covered.keys().copied().collect();
    m.stop(&inodes, "the collector stops").await;
    if let Some((stop, task)) = own_task {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}

/// Says what is not covered (when it changed).
fn log_spots(spots: &[String]) {
    for s in spots {
        warn!("not covered: {s}");
    }
}

/// Whether the spec covers the collector's own namespace.
pub fn covers_own(spec: &NetnsSpec) -> bool {
    match spec {
        NetnsSpec::All => true,
        NetnsSpec::Only(items) => items.contains(&NetnsSelector::Own),
    }
}

/// `--netns self`: the own namespace and nothing else (no discovery at all).
pub fn is_self_only(spec: &NetnsSpec) -> bool {
    matches!(spec, NetnsSpec::Only(items) if items.as_slice() == [NetnsSelector::Own])
}

/// One covered namespace other than the own.
struct Covered {
    host_id: String,
    /// Pins the namespace: its inode is this entry's key.
    _handle: NetnsHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    thread: NetnsThread<()>,
}

struct Manager {
    /// The own namespace's eBPF programs and the dump period, when it took
    /// the eBPF source: the other namespaces subscribe to them.
    bpf: Option<(Arc<BpfHub>, Duration)>,
    link: Link,
    /// Shared by every namespace's host (see [`CollectorMetrics::for_namespace`]).
    metrics: CollectorMetrics,
    owners: SharedOwners,
    /// Taken by each rescan's blocking part and given back.
    namer: Option<Namer>,
    covered: BTreeMap<NsInode, Covered>,
    /// Discovery problems already logged (bounded).
    logged: BTreeSet<String>,
}

/// What a rescan's blocking part found.
struct Plan {
    namer: Namer,
    started: Vec<Started>,
    gone: Vec<NsInode>,
    spots: Vec<String>,
    problems: Vec<String>,
}

/// A namespace just entered, its worker running.
struct Started {
    inode: NsInode,
    host: HostSpec,
    handle: NetnsHandle,
    kernel: Kernel,
    thread: NetnsThread<()>,
}

impl Manager {
    /// One rescan: discovery and the new workers on a blocking thread, then
    /// sessions started and stopped here. Returns the blind spots of the
    /// own host (what is not covered). Errors: the discovery failed as a
    /// whole (/proc unreadable).
    async fn rescan(&mut self) -> Result<Vec<String>, CollectorError> {
        let cfg = self.link.cfg.clone();
        let input = PlanInput {
            spec: cfg.netns.clone(),
            host_id: cfg.host_id.clone(),
            force_proc: cfg.force_proc,
            bpf: self.bpf.clone(),
            max: cfg.max_namespaces,
            owners: self.owners.clone(),
            metrics: self.metrics.clone(),
            covered: self.covered.iter().map(|(i, c)| (*i, c.host_id.clone())).collect(),
            namer: self.namer.take().unwrap_or_else(|| Namer::new(&cfg.host_root, "/proc")),
        };
        let plan = match tokio::task::spawn_blocking(move || plan(input)).await {
            Ok(r) => r?,
            Err(e) => {
                return Err(CollectorError::Kernel(KernelError::Spawn(std::io::Error::other(
                    format!("the namespace discovery thread failed: {e}"),
                ))))
            }
        };
        self.namer = Some(plan.namer);
        for p in plan.problems {
            if self.logged.len() < 256 && self.logged.insert(p.clone()) {
                warn!("network namespace discovery: {p}");
            }
        }
        self.stop(&plan.gone, "its network namespace is gone").await;
        // Every covered namespace's worker resolves through one cache.
        let sharers = self.covered.len() + plan.started.len() + 1;
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .set_sharers(sharers);
        for s in plan.started {
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let (link, metrics, host) = (self.link.clone(), self.metrics.clone(), s.host.clone());
            let kernel = s.kernel;
            info!(host_id = %host.host_id, netns = %s.inode, source = ?kernel.source(), "covering network namespace");
            let task = tokio::spawn(async move {
                run_host(&link, &host, &kernel, &metrics, None, async {
                    let _ = stop_rx.await;
                })
                .await;
                // `kernel` drops here: its worker thread ends.
            });
            self.covered.insert(
                s.inode,
                Covered {
                    host_id: s.host.host_id,
                    _handle: s.handle,
                    stop: Some(stop_tx),
                    task,
                    thread: s.thread,
                },
            );
        }
        Ok(plan.spots)
    }

    /// Stops these namespaces' hosts: the session ends, the worker thread
    /// is joined (bounded), the handle is closed.
    async fn stop(&mut self, inodes: &[NsInode], why: &str) {
        for inode in inodes {
            let Some(mut c) = self.covered.remove(inode) else {
                continue;
            };
            if let Some(s) = c.stop.take() {
                let _ = s.send(());
            }
            if let Err(e) = (&mut c.task).await {
                warn!(host_id = %c.host_id, "the session task of a namespace ended badly: {e}");
            }
            let thread = c.thread;
            let joined = tokio::time::timeout(JOIN_TIMEOUT, tokio::task::spawn_blocking(move || thread.join())).await;
            match joined {
                Ok(Ok(Ok(()))) => {
                    info!(host_id = %c.host_id, netns = %inode, "stopped covering network namespace: {why}")
                }
                Ok(Ok(Err(_))) => warn!(host_id = %c.host_id, "the worker of network namespace {inode} panicked"),
                Ok(Err(e)) => warn!(host_id = %c.host_id, "joining the worker of network namespace {inode}: {e}"),
                Err(_) => warn!(
                    host_id = %c.host_id,
                    "the worker of network namespace {inode} did not end within {JOIN_TIMEOUT:?}: its thread is left running"
                ),
            }
        }
    }
}

struct PlanInput {
    spec: NetnsSpec,
    host_id: String,
    force_proc: bool,
    bpf: Option<(Arc<BpfHub>, Duration)>,
    max: usize,
    owners: SharedOwners,
    metrics: CollectorMetrics,
    /// What is covered now: inode -> host id.
    covered: BTreeMap<NsInode, String>,
    namer: Namer,
}

/// The blocking part of a rescan: discovery, selection, and for each new
/// namespace: open, check it holds TCP sockets (`all` only), name it, start
/// its worker inside it.
fn plan(mut input: PlanInput) -> Result<Plan, CollectorError> {
    let opts = DiscoverOptions {
        probe_cookies: false, // the workers read them when they enter
        ..DiscoverOptions::default()
    };
    let d = discover(&opts)?;
    let mut problems: Vec<String> = d.problems.iter().map(|p| p.to_string()).collect();
    let all = input.spec == NetnsSpec::All;
    let sel = input.spec.select(&d, &opts.proc_root);
    for (item, why) in &sel.unmatched {
        problems.push(format!(
            "--netns item {item}: {why} (looked for again at the next rescan)"
        ));
    }
    let chosen: Vec<&Netns> = sel.chosen.into_iter().filter(|n| !n.is_self).collect();
    let listed: BTreeSet<NsInode> = chosen.iter().map(|n| n.inode).collect();
    let gone: Vec<NsInode> = input.covered.keys().filter(|i| !listed.contains(i)).copied().collect();
    for g in &gone {
        input.covered.remove(g);
    }
    if let Err(e) = input.namer.reload_pods() {
        if !e.is_gone() {
            problems.push(format!("pod names unavailable: {e}"));
        }
    }
    let mut used: BTreeSet<String> = input.covered.values().cloned().collect();
    let mut started = Vec::new();
    let mut spots = Vec::new();
    let mut too_many = 0usize;
    for ns in chosen {
        if input.covered.contains_key(&ns.inode) {
            continue;
        }
        let (name, name_problems) = input.namer.name(ns);
        problems.extend(name_problems.iter().map(|e| e.to_string()));
        let shown = describe(ns, &name);
        let handle = match NetnsHandle::open_discovered(ns, &opts) {
            Ok(h) => h,
            Err(NetnsError::Gone { .. }) => continue, // died since the discovery
            Err(e) => {
                spots.push(not_covered(&shown, &e));
                continue;
            }
        };
        if all {
            match holds_tcp(ns, &handle, &opts.proc_root) {
                Ok(true) => {}
                Ok(false) => continue, // looked at again at the next rescan
                Err(e) => {
                    spots.push(not_covered(&shown, &e));
                    continue;
                }
            }
        }
        if input.covered.len() + started.len() >= input.max {
            too_many += 1;
            continue;
        }
        let label = unique_label(&input.host_id, &namespace_label(&name), ns.inode, &used);
        let host_id = host_id_of(&input.host_id, &label, ns.inode);
        let force_proc = input.force_proc;
        let (bpf, host, m) = (input.bpf.clone(), host_id.clone(), input.metrics.clone());
        match Kernel::start_in(
            &handle,
            input.owners.clone(),
            host_id.clone(),
            input.metrics.clone(),
            move || crate::choose::open_in_namespace(bpf, force_proc, &host, m),
        ) {
            Ok((kernel, thread)) => {
                let id = thread.id();
                used.insert(host_id.clone());
                started.push(Started {
                    inode: ns.inode,
                    host: HostSpec {
                        host_id,
                        parent: Some(input.host_id.clone()),
                        netns_name: Some(label),
                        container: name.container.clone(),
                        pod: name.pod.clone(),
                        netns: Some(id.cookie.map_or(id.inode.ino, |c| c.0)),
                    },
                    handle,
                    kernel,
                    thread,
                });
            }
            Err(KernelError::Netns(NetnsError::Gone { .. })) => {}
            Err(KernelError::Netns(e)) => spots.push(not_covered(&shown, &e)),
            Err(e) => spots.push(format!("network namespace {shown}: not covered: {e}")),
        }
    }
    if too_many > 0 {
        spots.push(format!(
            "{too_many} network namespaces not covered: the collector covers at most {} besides its own \
             (--max-namespaces)",
            input.max
        ));
    }
    // Only `all` looks at every process's namespace: a list names its own.
    if all && d.stats.denied > 0 {
        let why = match halfopen_sockets::netns::caps::effective_capabilities() {
            Ok(eff) if !halfopen_sockets::netns::Capability::SysPtrace.in_set(eff) => {
                "the collector lacks CAP_SYS_PTRACE".to_string()
            }
            Ok(_) => {
                "refused even with CAP_SYS_PTRACE: processes of another user namespace, or a security module".into()
            }
            Err(e) => format!("the collector's capabilities are unknown: {e}"),
        };
        spots.push(format!(
            "the network namespaces of {} processes could not be read (/proc/PID/ns/net refused: {why}): a \
             namespace only they are in is not covered",
            d.stats.denied
        ));
    }
    Ok(Plan {
        namer: input.namer,
        started,
        gone,
        spots,
        problems,
    })
}

/// "NAME (pid N)" for messages: the readable name and a member pid.
fn describe(ns: &Netns, name: &NetnsName) -> String {
    let label = namespace_label(name);
    match ns.pids.first() {
        Some(p) => format!("{label} (pid {p})"),
        None => label,
    }
}

/// A blind spot for a namespace that could not be covered.
fn not_covered(shown: &str, e: &NetnsError) -> String {
    match e.missing_capability() {
        Some(c) => format!("network namespace {shown}: cannot enter: {c} missing; its sockets are not seen"),
        None => format!("network namespace {shown}: cannot enter ({e}); its sockets are not seen"),
    }
}

/// Whether a namespace holds any TCP socket: sockstat's `TCP: inuse` and
/// `tw` (and sockstat6's), from a member's /proc/PID/net (no entering
/// needed), else from a short thread inside it. Errors: entering refused.
fn holds_tcp(ns: &Netns, handle: &NetnsHandle, proc_root: &Path) -> Result<bool, NetnsError> {
    for &pid in &ns.pids {
        let dir = proc_root.join(pid.to_string());
        let text = (|| -> std::io::Result<String> {
            let a = std::fs::read_to_string(dir.join("net/sockstat"))?;
            let b = std::fs::read_to_string(dir.join("net/sockstat6")).unwrap_or_default();
            Ok(a + &b)
        })();
        // The pid may have exited and been reused elsewhere meanwhile: the
        // answer counts only if it is still in this namespace.
        let still = std::fs::metadata(dir.join("ns/net"))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m) == ns.inode.ino)
            .unwrap_or(false);
        if let (Ok(t), true) = (text, still) {
            return Ok(sockstat_holds_tcp(&t));
        }
    }
    let t = run_in(handle, || {
        let a = std::fs::read_to_string("/proc/thread-self/net/sockstat").unwrap_or_default();
        let b = std::fs::read_to_string("/proc/thread-self/net/sockstat6").unwrap_or_default();
        a + &b
    })?;
    Ok(sockstat_holds_tcp(&t))
}

/// Whether /proc/net/sockstat (and sockstat6) text counts a TCP socket:
/// `TCP: inuse N orphan N tw N alloc N mem N` (`TCP6: inuse N` in
/// sockstat6), from `sockstat_seq_show` in net/ipv4/proc.c: `inuse` counts
/// the namespace's TCP sockets in use (listeners included), `tw` its
/// TIME_WAIT ones. Pure; text it cannot read counts nothing.
pub fn sockstat_holds_tcp(text: &str) -> bool {
    text.lines()
        .filter_map(|l| l.strip_prefix("TCP:").or_else(|| l.strip_prefix("TCP6:")))
        .any(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            words
                .chunks(2)
                .filter(|kv| kv.len() == 2 && (kv[0] == "inuse" || kv[0] == "tw"))
                .any(|kv| kv[1].parse::<u64>().is_ok_and(|n| n > 0))
        })
}

/// The readable NAME of `HOSTID/NAME`: the first known of the Kubernetes pod
/// (`namespace/name`), the container, the /run/netns name, `pod-<uid>`,
/// `netns-<inode>`; each part (between `/`) made of ASCII letters, digits
/// and `. _ - : @` only and starting with a letter or digit (other
/// characters become `_`; a part that starts otherwise gets `n` in front),
/// the rule of halfopen-identity's host ids. A pod comes before a /run/netns
/// name because Kubernetes' CNI plugins name every pod's namespace
/// `cni-<uuid>`, which says nothing. Pure.
pub fn namespace_label(n: &NetnsName) -> String {
    let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.trim().is_empty()).map(str::to_string);
    let raw = nonempty(&n.pod)
        .or_else(|| nonempty(&n.container))
        .or_else(|| nonempty(&n.run_netns))
        .or_else(|| nonempty(&n.pod_uid).map(|u| format!("pod-{u}")))
        .unwrap_or_else(|| n.fallback.clone());
    let label = raw
        .split('/')
        .filter(|p| !p.is_empty())
        .take(2) // a pod's namespace/name; anything else has no '/'
        .map(label_part)
        .collect::<Vec<_>>()
        .join("/");
    if label.is_empty() {
        label_part(&n.fallback)
    } else {
        label
    }
}

fn label_part(p: &str) -> String {
    let mut s: String = p
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        s.insert(0, 'n');
    }
    s
}

/// `label`, or `label-<inode>` when another covered namespace has the
/// host id `host_id/label` already.
fn unique_label(host_id: &str, label: &str, inode: NsInode, used_host_ids: &BTreeSet<String>) -> String {
    if used_host_ids.contains(&host_id_of(host_id, label, inode)) {
        format!("{label}-{}", inode.ino)
    } else {
        label.to_string()
    }
}

/// `HOSTID/LABEL`, at most [`MAX_HOST_ID_LEN`] bytes: a label too long is
/// cut and ends in `-<inode>` (still unique among live namespaces).
pub fn host_id_of(host_id: &str, label: &str, inode: NsInode) -> String {
    let id = format!("{host_id}/{label}");
    if id.len() <= MAX_HOST_ID_LEN {
        return id;
    }
    let suffix = format!("-{}", inode.ino);
    let room = MAX_HOST_ID_LEN.saturating_sub(host_id.len() + 1 + suffix.len());
    // labels are ASCII: any byte index is a char boundary
    let cut = label[..room.min(label.len())].trim_end_matches('/');
    let cut = if cut.is_empty() { "n" } else { cut };
    format!("{host_id}/{cut}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> NetnsName {
        NetnsName {
            run_netns: None,
            container: None,
            pod: None,
            pod_uid: None,
            container_ref: None,
            fallback: "netns-4026532281".into(),
        }
    }

    #[test]
    fn sockstat_says_whether_tcp_is_held() {
        let idle = "sockets: used 5\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 0 mem 0\n";
        assert!(!sockstat_holds_tcp(idle));
        assert!(sockstat_holds_tcp(
            "sockets: used 5\nTCP: inuse 2 orphan 0 tw 0 alloc 3 mem 1\n"
        ));
        assert!(
            sockstat_holds_tcp("TCP: inuse 0 orphan 0 tw 4 alloc 0 mem 0\n"),
            "TIME_WAIT counts"
        );
        assert!(
            sockstat_holds_tcp(&format!("{idle}TCP6: inuse 1\nUDP6: inuse 0\n")),
            "IPv6 counts"
        );
        assert!(!sockstat_holds_tcp("UDP: inuse 9 mem 1\nTCP: inuse x tw -1\n"));
        assert!(!sockstat_holds_tcp(""));
    }

    #[test]
    fn labels_prefer_the_pod_then_container_then_name() {
        let mut n = name();
        assert_eq!(namespace_label(&n), "netns-4026532281");
        n.pod_uid = Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789".into());
        assert_eq!(namespace_label(&n), "pod-0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        n.run_netns = Some("cni-1f2e3d4c-aaaa-bbbb-cccc-0123456789ab".into());
        assert_eq!(namespace_label(&n), "cni-1f2e3d4c-aaaa-bbbb-cccc-0123456789ab");
        n.container = Some("web-1".into());
        assert_eq!(namespace_label(&n), "web-1");
        n.pod = Some("shop/client-7d9f".into());
        assert_eq!(namespace_label(&n), "shop/client-7d9f", "a pod's namespace/name");
    }

    #[test]
    fn labels_keep_to_the_host_id_rule() {
        let mut n = name();
        n.run_netns = Some("my ns%x".into());
        assert_eq!(namespace_label(&n), "my_ns_x");
        n.run_netns = Some("..".into());
        assert_eq!(namespace_label(&n), "n..");
        n.run_netns = Some("ünï".into());
        assert_eq!(namespace_label(&n), "n_n_");
        n.run_netns = Some("-x".into());
        assert_eq!(namespace_label(&n), "n-x");
        n.run_netns = Some("/".into());
        assert_eq!(namespace_label(&n), "netns-4026532281", "nothing left: the fallback");
        let mut p = name();
        p.pod = Some("ns/a/b".into());
        assert_eq!(namespace_label(&p), "ns/a", "at most one '/'");
    }

    #[test]
    fn clashing_labels_get_the_inode() {
        let inode = NsInode { dev: 4, ino: 77 };
        let used: BTreeSet<String> = ["node/web".to_string()].into();
        assert_eq!(unique_label("node", "web", inode, &used), "web-77");
        assert_eq!(unique_label("node", "db", inode, &used), "db");
        assert_eq!(unique_label("other", "web", inode, &used), "web");
        let pods: BTreeSet<String> = ["node/shop/web".to_string()].into();
        assert_eq!(unique_label("node", "shop/web", inode, &pods), "shop/web-77");
    }

    #[test]
    fn long_host_ids_are_cut_and_stay_unique() {
        let inode = NsInode {
            dev: 4,
            ino: 4026532281,
        };
        assert_eq!(host_id_of("node-a", "web", inode), "node-a/web");
        let long = "x".repeat(300);
        let id = host_id_of("node-a", &long, inode);
        assert_eq!(id.len(), MAX_HOST_ID_LEN);
        assert!(id.starts_with("node-a/xxx") && id.ends_with("-4026532281"), "{id}");
    }

    #[test]
    fn self_and_lists() {
        assert!(is_self_only(&"self".parse().unwrap()));
        assert!(!is_self_only(&"self,web".parse().unwrap()));
        assert!(!is_self_only(&NetnsSpec::All));
        assert!(covers_own(&NetnsSpec::All));
        assert!(covers_own(&"web,self".parse().unwrap()));
        assert!(!covers_own(&"web,pid:7".parse().unwrap()));
    }

    /// `ip netns add NAME`, deleted on drop.
    struct Named(String);

    impl Named {
        fn add(name: &str) -> Named {
            let st = std::process::Command::new("ip")
                .args(["netns", "add", name])
                .status()
                .unwrap();
            assert!(st.success(), "ip netns add {name}");
            Named(name.to_string())
        }
    }

    impl Drop for Named {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }

    fn input(spec: NetnsSpec, covered: BTreeMap<NsInode, String>) -> PlanInput {
        PlanInput {
            spec,
            host_id: "node".into(),
            force_proc: false,
            bpf: None,
            max: 65_536,
            owners: shared_owners(),
            metrics: CollectorMetrics::default(),
            covered,
            namer: Namer::new("/nonexistent-host-root", "/proc"),
        }
    }

    /// `all` on this machine: a named namespace with a listener (made from a
    /// thread inside it) is covered, an idle one is not; once its name is
    /// gone (the listener still pins it, but nothing lists it) it is gone.
    /// Every worker started (there may be other namespaces holding TCP on
    /// the machine) is joined.
    #[test]
    fn all_covers_namespaces_that_hold_tcp_and_drops_them_when_they_go() {
        if !halfopen_lab::require_root_or_skip("all_covers_namespaces_that_hold_tcp") {
            return;
        }
        let base = format!("ho-collall-{}", std::process::id());
        let busy = Named::add(&format!("{base}-busy"));
        let idle = Named::add(&format!("{base}-idle"));
        let h = NetnsHandle::open_named(Path::new("/run/netns"), &busy.0).unwrap();
        let listener = run_in(&h, || std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let idle_inode = NetnsHandle::open_named(Path::new("/run/netns"), &idle.0)
            .unwrap()
            .inode();

        let p = plan(input(NetnsSpec::All, BTreeMap::new())).unwrap();
        let mine: Vec<&Started> = p.started.iter().filter(|s| s.inode == h.inode()).collect();
        assert_eq!(mine.len(), 1, "the busy namespace is covered");
        assert_eq!(mine[0].host.host_id, format!("node/{}", busy.0));
        assert_eq!(mine[0].host.parent.as_deref(), Some("node"));
        assert!(mine[0].host.netns.is_some_and(|c| c != 0));
        assert!(!p.started.iter().any(|s| s.inode == idle_inode), "the idle one is not");
        let covered: BTreeMap<NsInode, String> = p.started.iter().map(|s| (s.inode, s.host.host_id.clone())).collect();
        for s in p.started {
            drop(s.kernel);
            s.thread.join().unwrap();
        }

        // The name goes; the listener keeps the namespace alive, unlisted.
        let busy_inode = h.inode();
        drop(busy);
        drop(h);
        let p = plan(input(NetnsSpec::All, covered)).unwrap();
        assert!(p.gone.contains(&busy_inode), "gone: {:?}", p.gone);
        for s in p.started {
            drop(s.kernel);
            s.thread.join().unwrap();
        }
        drop(listener);
    }

    fn host_id_rule(id: &str) -> bool {
        id.len() <= MAX_HOST_ID_LEN
            && id.split('/').all(|p| {
                p.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:@".contains(c))
            })
    }

    proptest! {
        #[test]
        fn any_name_gives_a_valid_host_id(run in proptest::option::of(".{0,300}"), c in proptest::option::of(".{0,80}"),
                                          pod in proptest::option::of(".{0,300}"), ino in 1u64..u64::MAX) {
            let n = NetnsName { run_netns: run, container: c, pod, pod_uid: None, container_ref: None,
                                fallback: format!("netns-{ino}") };
            let inode = NsInode { dev: 4, ino };
            let label = namespace_label(&n);
            let id = host_id_of("node-a", &label, inode);
            prop_assert!(host_id_rule(&id), "{}", id);
            prop_assert!(id.starts_with("node-a/"));
        }
    }
}
