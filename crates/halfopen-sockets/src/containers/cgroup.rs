//! Pure parsing of `/proc/PID/cgroup` text into a [`ContainerRef`]: which
//! container runtime put the process there, its container id and, under
//! Kubernetes, its pod's uid. No I/O.
//!
//! The file has one line per hierarchy, `ID:CONTROLLERS:PATH` (cgroups(7));
//! cgroup v2 has the single line `0::PATH`, v1 one line per controller,
//! hybrid machines both. The runtimes write their ids into path components:
//!
//! | runtime, cgroup driver | component(s) |
//! |---|---|
//! | Docker, systemd | `docker-<64 hex>.scope` |
//! | Docker, cgroupfs | `docker/<64 hex>` |
//! | containerd CRI, systemd | `cri-containerd-<64 hex>.scope` |
//! | CRI-O, systemd / cgroupfs | `crio-<64 hex>.scope` / `crio-<64 hex>` |
//! | podman, systemd / cgroupfs | `libpod-<64 hex>.scope` / `libpod_parent/libpod-<64 hex>` |
//! | Kubernetes pod, systemd | `kubepods[-burstable\|-besteffort]-pod<uid>.slice`, uid's `-` written `_` |
//! | Kubernetes pod, cgroupfs | `kubepods[/burstable\|/besteffort]/pod<uid>/<64 hex>` |
//!
//! The monitors `crio-conmon-<id>.scope` and `libpod-conmon-<id>.scope` run
//! in the host's network namespace, not the container's: they are not
//! containers. Components are looked for anywhere in the path, so nesting
//! (kind's `kubelet-kubepods-…`, a collector in its own cgroup namespace
//! seeing `/../..` prefixes, docker-in-docker) still parses; the innermost
//! match wins.
use std::fmt;

/// A container runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Docker,
    /// containerd through its CRI plugin (Kubernetes).
    Containerd,
    CriO,
    Podman,
}

impl Runtime {
    /// "docker", "containerd", "crio", "podman".
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "crio",
            Runtime::Podman => "podman",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A container: its runtime (None when the path does not say, as with the
/// kubelet's cgroupfs driver: `…/pod<uid>/<id>`) and its 64-hex-digit id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId {
    pub runtime: Option<Runtime>,
    /// 64 lowercase hex digits.
    pub id: String,
}

impl ContainerId {
    /// The first 12 hex digits, as `docker ps` shows them.
    pub fn short(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// What a process's cgroup says about where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContainerRef {
    /// A container outside Kubernetes.
    Container(ContainerId),
    /// A Kubernetes pod (uid as the API shows it: lowercase, `-` separated),
    /// and the container of the pod the process is in, when the path says.
    Pod {
        uid: String,
        container: Option<ContainerId>,
    },
}

impl ContainerRef {
    fn rank(&self) -> u8 {
        match self {
            ContainerRef::Container(_) => 1,
            ContainerRef::Pod { container: None, .. } => 2,
            ContainerRef::Pod { container: Some(_), .. } => 3,
        }
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A pod uid as written in a cgroup component (`_` for `-` in systemd slice
/// names), normalised; None unless it looks like a uid: a UUID (36
/// characters) or a static pod's 32-hex-digit hash.
pub(crate) fn normalise_uid(raw: &str) -> Option<String> {
    if !(32..=36).contains(&raw.len()) {
        return None;
    }
    let uid: String = raw
        .chars()
        .map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() })
        .collect();
    // 8-4-4-4-12 hex digits (a UUID), or 32 hex digits (a static pod's hash)
    let dashes: &[usize] = match uid.len() {
        36 => &[8, 13, 18, 23],
        32 => &[],
        _ => return None,
    };
    let ok = uid.bytes().enumerate().all(|(i, b)| {
        if dashes.contains(&i) {
            b == b'-'
        } else {
            b.is_ascii_hexdigit()
        }
    });
    ok.then_some(uid)
}

/// `<prefix><64 hex>` with an optional `.scope` suffix.
fn scoped_id<'a>(c: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = c.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_hex64(id).then_some(id)
}

fn scope_container(c: &str) -> Option<ContainerId> {
    // conmon monitors are not containers (see the module documentation)
    if c.starts_with("crio-conmon-") || c.starts_with("libpod-conmon-") {
        return None;
    }
    const PREFIXES: [(&str, Runtime); 4] = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::CriO),
        ("libpod-", Runtime::Podman),
    ];
    PREFIXES.iter().find_map(|&(p, runtime)| {
        scoped_id(c, p).map(|id| ContainerId {
            runtime: Some(runtime),
            id: id.to_string(),
        })
    })
}

/// `…kubepods…-pod<uid>.slice` (systemd driver).
fn slice_pod_uid(c: &str) -> Option<String> {
    let stem = c.strip_suffix(".slice")?;
    if !stem.contains("kubepods") {
        return None;
    }
    let at = stem.rfind("-pod")?;
    normalise_uid(&stem[at + 4..])
}

/// One cgroup path (the part after the second ':').
pub fn parse_cgroup_path(path: &str) -> Option<ContainerRef> {
    let mut in_kubepods = false;
    let mut pod: Option<String> = None;
    let mut container: Option<ContainerId> = None;
    let mut prev = "";
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if let Some(uid) = slice_pod_uid(c) {
            pod = Some(uid);
            container = None;
        } else if c.contains("kubepods") {
            in_kubepods = true;
        } else if let Some(uid) = c.strip_prefix("pod").filter(|_| in_kubepods).and_then(normalise_uid) {
            pod = Some(uid);
            container = None;
        } else if let Some(id) = scope_container(c) {
            container = Some(id);
        } else if prev == "docker" && is_hex64(c) {
            container = Some(ContainerId {
                runtime: Some(Runtime::Docker),
                id: c.to_string(),
            });
        } else if pod.is_some() && is_hex64(c) {
            container = Some(ContainerId {
                runtime: None,
                id: c.to_string(),
            });
        }
        if slice_pod_uid(c).is_some() {
            in_kubepods = true;
        }
        prev = c;
    }
    match (pod, container) {
        (Some(uid), container) => Some(ContainerRef::Pod { uid, container }),
        (None, Some(c)) => Some(ContainerRef::Container(c)),
        (None, None) => None,
    }
}

/// A whole `/proc/PID/cgroup` text: the most specific answer of any line
/// (a pod with its container, then a pod, then a container), the first
/// line winning a tie. None: the process is in no container this module
/// knows (a host process). Malformed lines are skipped; never panics.
pub fn parse_cgroup(text: &str) -> Option<ContainerRef> {
    let mut best: Option<ContainerRef> = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(_controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if let Some(r) = parse_cgroup_path(path) {
            if best.as_ref().is_none_or(|b| r.rank() > b.rank()) {
                best = Some(r);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "4f3c2e1d0b9a8f7e6d5c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a39281706";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
    const UID_: &str = "0a1b2c3d_4e5f_6789_abcd_ef0123456789";

    fn container(runtime: Option<Runtime>, id: &str) -> ContainerId {
        ContainerId {
            runtime,
            id: id.to_string(),
        }
    }

    fn docker(id: &str) -> Option<ContainerRef> {
        Some(ContainerRef::Container(container(Some(Runtime::Docker), id)))
    }

    fn pod(uid: &str, c: Option<ContainerId>) -> Option<ContainerRef> {
        Some(ContainerRef::Pod {
            uid: uid.to_string(),
            container: c,
        })
    }

    #[test]
    fn docker_systemd_v2() {
        let t = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(parse_cgroup(&t), docker(ID));
    }

    #[test]
    fn docker_cgroupfs_v1() {
        let t = format!(
            "12:hugetlb:/docker/{ID}\n11:memory:/docker/{ID}\n3:cpu,cpuacct:/docker/{ID}\n\
             1:name=systemd:/docker/{ID}\n0::/system.slice/containerd.service\n"
        );
        assert_eq!(parse_cgroup(&t), docker(ID));
    }

    #[test]
    fn docker_in_docker_takes_the_inner_one() {
        let t = format!("0::/docker/{ID}/docker/{ID2}\n");
        assert_eq!(parse_cgroup(&t), docker(ID2));
    }

    #[test]
    fn containerd_cri_systemd_v2_in_a_burstable_pod() {
        let t = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse_cgroup(&t),
            pod(UID, Some(container(Some(Runtime::Containerd), ID)))
        );
    }

    #[test]
    fn crio_in_a_besteffort_pod_and_its_conmon() {
        let t = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/crio-{ID}.scope\n"
        );
        assert_eq!(parse_cgroup(&t), pod(UID, Some(container(Some(Runtime::CriO), ID))));
        // conmon runs beside the container, in the host's network namespace
        let conmon = format!("0::/machine.slice/crio-conmon-{ID}.scope\n");
        assert_eq!(parse_cgroup(&conmon), None);
        // CRI-O with the cgroupfs driver: no .scope
        let t = format!("0::/kubepods/besteffort/pod{UID}/crio-{ID}\n");
        assert_eq!(parse_cgroup(&t), pod(UID, Some(container(Some(Runtime::CriO), ID))));
    }

    #[test]
    fn guaranteed_pod_slice() {
        let t = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope\n");
        assert_eq!(
            parse_cgroup(&t),
            pod(UID, Some(container(Some(Runtime::Containerd), ID)))
        );
        // the pod slice itself (no container below it)
        let t = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice\n");
        assert_eq!(parse_cgroup(&t), pod(UID, None));
    }

    #[test]
    fn kubelet_cgroupfs_v1() {
        let t = format!(
            "11:memory:/kubepods/burstable/pod{UID}/{ID}\n10:cpu,cpuacct:/kubepods/burstable/pod{UID}/{ID}\n\
             1:name=systemd:/kubepods/burstable/pod{UID}/{ID}\n"
        );
        assert_eq!(parse_cgroup(&t), pod(UID, Some(container(None, ID))));
        let guaranteed = format!("4:memory:/kubepods/pod{UID}/{ID}\n");
        assert_eq!(parse_cgroup(&guaranteed), pod(UID, Some(container(None, ID))));
    }

    #[test]
    fn docker_runtime_under_kubernetes() {
        let t = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{ID}.scope\n"
        );
        assert_eq!(parse_cgroup(&t), pod(UID, Some(container(Some(Runtime::Docker), ID))));
    }

    #[test]
    fn kind_nodes_nest_kubelet_slices() {
        let t = format!(
            "0::/system.slice/docker-{ID2}.scope/kubelet.slice/kubelet-kubepods.slice/\
             kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            parse_cgroup(&t),
            pod(UID, Some(container(Some(Runtime::Containerd), ID)))
        );
    }

    #[test]
    fn static_pod_uid_is_a_hash() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015";
        let t = format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{hash}.slice/cri-containerd-{ID}.scope\n");
        assert_eq!(
            parse_cgroup(&t),
            pod(hash, Some(container(Some(Runtime::Containerd), ID)))
        );
    }

    #[test]
    fn podman_rootful_rootless_and_cgroupfs() {
        let t = format!("0::/machine.slice/libpod-{ID}.scope/container\n");
        assert_eq!(
            parse_cgroup(&t),
            Some(ContainerRef::Container(container(Some(Runtime::Podman), ID)))
        );
        let rootless = format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope\n");
        assert_eq!(
            parse_cgroup(&rootless),
            Some(ContainerRef::Container(container(Some(Runtime::Podman), ID)))
        );
        let cgroupfs = format!("0::/libpod_parent/libpod-{ID}\n");
        assert_eq!(
            parse_cgroup(&cgroupfs),
            Some(ContainerRef::Container(container(Some(Runtime::Podman), ID)))
        );
        assert_eq!(
            parse_cgroup(&format!("0::/machine.slice/libpod-conmon-{ID}.scope\n")),
            None
        );
    }

    #[test]
    fn host_processes_and_near_misses() {
        for t in [
            "0::/init.scope\n",
            "0::/\n",
            "0::/system.slice/docker.service\n",
            "0::/system.slice/containerd.service\n",
            "0::/user.slice/user-0.slice/session-3.scope\n",
            "9:name=systemd:/\n4:memory:/process_api/2359fc9b33a026b09f3fbfcaeb4e0364\n0::/\n",
            // too short an id
            "0::/system.slice/docker-4f3c2e1d0b9a.scope\n",
            // uppercase hex is not what runtimes write
            "0::/docker/4F3C2E1D0B9A8F7E6D5C4B3A29180716F5E4D3C2B1A09F8E7D6C5B4A39281706\n",
            // a pod-looking component outside kubepods
            "0::/system.slice/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789\n",
            // kubepods slices without a pod
            "0::/kubepods.slice/kubepods-burstable.slice\n",
            "",
            "garbage",
            "0:",
        ] {
            assert_eq!(parse_cgroup(t), None, "{t:?}");
        }
    }

    #[test]
    fn the_most_specific_line_wins() {
        // a hybrid machine where v1 controllers show the pod and v2 only a container
        let t = format!("0::/system.slice/docker-{ID2}.scope\n4:memory:/kubepods/burstable/pod{UID}/{ID}\n");
        assert_eq!(parse_cgroup(&t), pod(UID, Some(container(None, ID))));
    }

    #[test]
    fn uids() {
        assert_eq!(normalise_uid(UID_).as_deref(), Some(UID));
        assert_eq!(
            normalise_uid("0A1B2C3D-4E5F-6789-ABCD-EF0123456789").as_deref(),
            Some(UID)
        );
        assert_eq!(normalise_uid("0a1b2c3d"), None);
        assert_eq!(normalise_uid("0a1b2c3d-4e5f-6789-abcd-ef012345678g"), None);
        assert_eq!(normalise_uid("------------------------------------"), None);
    }

    proptest! {
        #[test]
        fn any_text_never_panics(s in "\\PC{0,300}") {
            let _ = parse_cgroup(&s);
            let _ = parse_cgroup_path(&s);
        }

        #[test]
        fn any_bytes_as_lossy_text_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_cgroup(&String::from_utf8_lossy(&b));
        }

        #[test]
        fn ids_found_are_well_formed(prefix in "[a-z/._-]{0,40}", id in "[0-9a-f]{64}") {
            let t = format!("0::/{prefix}/docker-{id}.scope\n");
            if let Some(r) = parse_cgroup(&t) {
                let c = match r {
                    ContainerRef::Container(c) => Some(c),
                    ContainerRef::Pod { container, .. } => container,
                };
                if let Some(c) = c {
                    prop_assert!(is_hex64(&c.id));
                }
            }
        }
    }
}
