//! Readable names for network namespaces: which container or Kubernetes pod
//! a namespace belongs to, from a member process's `/proc/PID/cgroup`
//! ([`cgroup`], pure), the kubelet's `/var/log/pods` directories and
//! Docker's `config.v2.json` files ([`sources`]); and the [`NetnsName`]
//! with its [`NetnsName::label`], safe inside a host id `HOSTID/LABEL`.
//!
//! Which process speaks for a namespace: the lowest member pid whose
//! cgroup could be read. In a container's namespace that is the
//! container's first process (a pod's: the pause/sandbox container), so a
//! host process that later joined it (`nsenter`) does not rename it; in the
//! host's namespace it is init, so a `--network host` container does not
//! name the host.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

pub mod cgroup;
pub mod sources;

pub use cgroup::{parse_cgroup, parse_cgroup_path, ContainerId, ContainerRef, Runtime};
pub use sources::{parse_docker_name, parse_pod_log_dir, read_cgroup, read_docker_name, read_pod_dirs, PodDir};

use crate::netns::Netns;

/// Why a name source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ContainersError {
    /// Opening or reading a file or directory failed.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file is larger than this module reads.
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    /// A Docker config that is not the JSON expected.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A container id that is not 64 hex digits (never made into a path).
    #[error("container id {id:?} is not 64 hex digits")]
    BadId { id: String },
}

impl ContainersError {
    /// The process or file went away (ENOENT/ESRCH): normal churn.
    pub fn is_gone(&self) -> bool {
        matches!(self, ContainersError::Read { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)))
    }
}

/// What a namespace is called, from every source; [`NetnsName::label`]
/// picks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsName {
    /// Its first /run/netns name.
    pub run_netns: Option<String>,
    /// The container whose namespace this is, outside Kubernetes: its Docker
    /// name, else `<runtime>-<first 12 hex digits of its id>`. None for a
    /// pod's namespace (all of a pod's containers share it: the pod names it).
    pub container: Option<String>,
    /// The pod, `namespace/name`, when its /var/log/pods directory was found.
    pub pod: Option<String>,
    /// The pod's uid, when the cgroup showed one.
    pub pod_uid: Option<String>,
    /// What the cgroup said, as parsed.
    pub container_ref: Option<ContainerRef>,
    /// `netns-<inode>`. Inodes are reused after a namespace dies, so two
    /// namespaces that lived at different times can share this label.
    pub fallback: String,
}

impl NetnsName {
    /// The name to show, first present (and non-empty) of: the /run/netns
    /// name, the container, the pod (`namespace/name`), `pod-<uid>`, the
    /// fallback `netns-<inode>`. Each part goes through
    /// [`label_component`], so the label holds only `[A-Za-z0-9._%-]`, plus
    /// exactly one `/` when it is a pod's `namespace/name` (the only label
    /// with a `/`; the lead encodes or splits it).
    pub fn label(&self) -> String {
        let nonempty = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        if let Some(n) = nonempty(&self.run_netns) {
            return label_component(&n);
        }
        if let Some(c) = nonempty(&self.container) {
            return label_component(&c);
        }
        if let Some(p) = nonempty(&self.pod) {
            return match p.split_once('/') {
                Some((ns, name)) => format!("{}/{}", label_component(ns), label_component(name)),
                None => label_component(&p),
            };
        }
        if let Some(u) = nonempty(&self.pod_uid) {
            return label_component(&format!("pod-{u}"));
        }
        label_component(&self.fallback)
    }
}

/// Makes one part of a label safe: bytes of `[A-Za-z0-9_-]` and `.` (except
/// as the first byte, so that no label is `.` or `..`) are kept, every other
/// byte (of the UTF-8 text) is written `%XX` (uppercase hex), `%` included,
/// so the encoding is reversible and never yields `/`, a space or a control
/// character. Docker, Kubernetes and most `ip netns` names come out
/// unchanged.
pub fn label_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
        if keep {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Names namespaces. Holds the pod directory list (reload it with
/// [`Namer::reload_pods`] once per discovery); reads each member's cgroup
/// and Docker configs on demand.
#[derive(Debug, Clone)]
pub struct Namer {
    root: PathBuf,
    proc_root: PathBuf,
    pods: HashMap<String, PodDir>,
}

impl Namer {
    /// `root`: the node's filesystem root (`/`), under which
    /// `var/log/pods` and `var/lib/docker/containers` are read;
    /// `proc_root`: the proc filesystem (`/proc`). Reads nothing yet.
    pub fn new(root: impl Into<PathBuf>, proc_root: impl Into<PathBuf>) -> Namer {
        Namer {
            root: root.into(),
            proc_root: proc_root.into(),
            pods: HashMap::new(),
        }
    }

    /// Re-reads `<root>/var/log/pods`. Returns how many pods are known and
    /// how many directory names did not parse. On error the previous list
    /// is kept.
    pub fn reload_pods(&mut self) -> Result<(usize, u64), ContainersError> {
        let (pods, unparsed) = read_pod_dirs(&self.root)?;
        self.pods = pods;
        Ok((self.pods.len(), unparsed))
    }

    /// The pod with this uid, if its log directory was seen.
    pub fn pod(&self, uid: &str) -> Option<&PodDir> {
        self.pods.get(uid)
    }

    /// Names `ns`. The second value lists what could not be read (other
    /// than processes that exited meanwhile, which are skipped): each hides
    /// part of the name, never all of it, since the fallback always exists.
    pub fn name(&self, ns: &Netns) -> (NetnsName, Vec<ContainersError>) {
        let mut problems = Vec::new();
        let mut container_ref = None;
        for &pid in &ns.pids {
            match read_cgroup(&self.proc_root, pid) {
                Ok(text) => {
                    container_ref = parse_cgroup(&text);
                    break;
                }
                Err(e) if e.is_gone() => continue,
                Err(e) => problems.push(e),
            }
        }
        let mut name = NetnsName {
            run_netns: ns.names.first().cloned(),
            container: None,
            pod: None,
            pod_uid: None,
            container_ref: container_ref.clone(),
            fallback: format!("netns-{}", ns.inode.ino),
        };
        match container_ref {
            Some(ContainerRef::Pod { uid, .. }) => {
                name.pod = self.pods.get(&uid).map(PodDir::qualified);
                name.pod_uid = Some(uid);
            }
            Some(ContainerRef::Container(c)) => {
                let docker_name = if c.runtime == Some(Runtime::Docker) {
                    read_docker_name(&self.root, &c.id).unwrap_or_else(|e| {
                        problems.push(e);
                        None
                    })
                } else {
                    None
                };
                name.container = Some(docker_name.unwrap_or_else(|| {
                    let rt = c.runtime.map_or("container", Runtime::name);
                    format!("{rt}-{}", c.short())
                }));
            }
            None => {}
        }
        (name, problems)
    }
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
    fn label_order() {
        let mut n = name();
        assert_eq!(n.label(), "netns-4026532281");
        n.pod_uid = Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789".into());
        assert_eq!(n.label(), "pod-0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        n.pod = Some("kube-system/coredns-5d78c9869d-x7x2k".into());
        assert_eq!(n.label(), "kube-system/coredns-5d78c9869d-x7x2k");
        n.container = Some("web-1".into());
        assert_eq!(n.label(), "web-1");
        n.run_netns = Some(String::new());
        assert_eq!(n.label(), "web-1", "an empty name is skipped");
        n.run_netns = Some("lab-a".into());
        assert_eq!(n.label(), "lab-a");
    }

    #[test]
    fn labels_are_encoded() {
        let mut n = name();
        n.run_netns = Some("my ns/x%\n".into());
        assert_eq!(n.label(), "my%20ns%2Fx%25%0A");
        n.run_netns = Some("..".into());
        assert_eq!(n.label(), "%2E.");
        n.run_netns = Some("ünï".into());
        assert_eq!(n.label(), "%C3%BCn%C3%AF");
        let mut p = name();
        p.pod = Some("ns/a b".into());
        assert_eq!(p.label(), "ns/a%20b");
        p.pod = Some("ns/a/b".into());
        assert_eq!(p.label(), "ns/a%2Fb", "only one '/' survives");
    }

    proptest! {
        #[test]
        fn labels_are_always_safe(run in proptest::option::of("\\PC{0,30}"), c in proptest::option::of(".{0,30}"),
                                  pod in proptest::option::of(".{0,30}"), uid in proptest::option::of(".{0,30}")) {
            let n = NetnsName { run_netns: run, container: c, pod: pod.clone(), pod_uid: uid,
                                container_ref: None, fallback: "netns-1".into() };
            let l = n.label();
            prop_assert!(!l.is_empty());
            prop_assert!(l.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-%/".contains(&b)), "{}", l);
            prop_assert!(l.matches('/').count() <= 1);
            prop_assert!(!l.starts_with('.'));
            for part in l.split('/') {
                prop_assert!(part != "." && part != "..");
            }
        }
    }
}
