//! Where container and pod names are written on a node, parsed (pure) and
//! read (under a root directory, `/` in production, a temporary tree in
//! tests):
//! - Kubernetes: the kubelet keeps one log directory per pod,
//!   `/var/log/pods/<namespace>_<pod name>_<pod uid>` (kubelet
//!   `BuildPodLogsDirectory`). Namespace and pod names are DNS labels and
//!   subdomains, which cannot hold `_`, so the name splits unambiguously.
//! - Docker: `/var/lib/docker/containers/<id>/config.v2.json`, whose
//!   top-level `"Name"` is the container name with a leading `/`.
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::cgroup::normalise_uid;
use super::ContainersError;

/// A pod named by its log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDir {
    /// The Kubernetes namespace.
    pub namespace: String,
    pub name: String,
    /// Lowercase, `-` separated.
    pub uid: String,
}

impl PodDir {
    /// `namespace/name`.
    pub fn qualified(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn dns_ish(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Parses a `/var/log/pods` directory name, `<namespace>_<pod>_<uid>`. None
/// for anything else (wrong number of `_`, empty parts, characters that
/// Kubernetes names cannot hold, a uid that is not one). Pure.
pub fn parse_pod_log_dir(name: &str) -> Option<PodDir> {
    let mut parts = name.split('_');
    let (Some(namespace), Some(pod), Some(uid), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !dns_ish(namespace) || !dns_ish(pod) {
        return None;
    }
    let uid = normalise_uid(uid)?;
    Some(PodDir {
        namespace: namespace.to_string(),
        name: pod.to_string(),
        uid,
    })
}

/// The container name in a Docker `config.v2.json`: its top-level `"Name"`
/// without the leading `/`. `Ok(None)` when the field is absent, null or
/// empty. Errors: the text is not JSON, or `Name` is not a string. Pure.
pub fn parse_docker_name(json: &[u8]) -> Result<Option<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(rename = "Name")]
        name: Option<String>,
    }
    // serde would also take a struct from a JSON array (["/web"]): only an
    // object is a Docker config.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(<serde_json::Error as serde::de::Error>::custom("not a JSON object"));
    }
    let c: Config = serde_json::from_slice(json)?;
    Ok(c.name
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !n.is_empty()))
}

/// Bound on a `config.v2.json` read (real ones are a few KiB to a few
/// hundred KiB with large environments).
pub const DOCKER_CONFIG_MAX: u64 = 8 << 20;

/// Every pod log directory under `<root>/var/log/pods`, by uid. A missing
/// directory (no kubelet on this node) is an empty map. Entries that do not
/// parse are counted in the second value, not returned. Errors: the
/// directory exists but cannot be listed.
pub fn read_pod_dirs(root: &Path) -> Result<(HashMap<String, PodDir>, u64), ContainersError> {
    let dir = root.join("var/log/pods");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((HashMap::new(), 0)),
        Err(source) => return Err(ContainersError::Read { path: dir, source }),
    };
    let mut pods = HashMap::new();
    let mut unparsed = 0;
    for entry in rd {
        let entry = entry.map_err(|source| ContainersError::Read {
            path: dir.clone(),
            source,
        })?;
        match entry.file_name().to_str().and_then(parse_pod_log_dir) {
            Some(p) => {
                pods.insert(p.uid.clone(), p);
            }
            None => unparsed += 1,
        }
    }
    Ok((pods, unparsed))
}

/// The Docker name of container `id` (64 hex digits, checked: it becomes a
/// path component) from `<root>/var/lib/docker/containers/<id>/config.v2.json`.
/// `Ok(None)` when that file does not exist (not a Docker container, or
/// Docker keeps its data elsewhere) or has no name. Errors: unreadable,
/// larger than [`DOCKER_CONFIG_MAX`], not JSON.
pub fn read_docker_name(root: &Path, id: &str) -> Result<Option<String>, ContainersError> {
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ContainersError::BadId { id: id.to_string() });
    }
    let path = root.join("var/lib/docker/containers").join(id).join("config.v2.json");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ContainersError::Read { path, source }),
    };
    let mut buf = Vec::new();
    file.take(DOCKER_CONFIG_MAX + 1)
        .read_to_end(&mut buf)
        .map_err(|source| ContainersError::Read {
            path: path.clone(),
            source,
        })?;
    if buf.len() as u64 > DOCKER_CONFIG_MAX {
        return Err(ContainersError::TooLarge {
            path,
            limit: DOCKER_CONFIG_MAX,
        });
    }
    parse_docker_name(&buf).map_err(|source| ContainersError::Json { path, source })
}

/// `<proc_root>/<pid>/cgroup` as text (at most 64 KiB; real files are a few
/// hundred bytes). Errors: unreadable (a process that exited is ENOENT or
/// ESRCH).
pub fn read_cgroup(proc_root: &Path, pid: u32) -> Result<String, ContainersError> {
    let path: PathBuf = proc_root.join(format!("{pid}/cgroup"));
    let file = std::fs::File::open(&path).map_err(|source| ContainersError::Read {
        path: path.clone(),
        source,
    })?;
    let mut buf = Vec::new();
    file.take(64 << 10)
        .read_to_end(&mut buf)
        .map_err(|source| ContainersError::Read { path, source })?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pod_log_dirs() {
        assert_eq!(
            parse_pod_log_dir("kube-system_coredns-5d78c9869d-x7x2k_0a1b2c3d-4e5f-6789-abcd-ef0123456789"),
            Some(PodDir {
                namespace: "kube-system".into(),
                name: "coredns-5d78c9869d-x7x2k".into(),
                uid: "0a1b2c3d-4e5f-6789-abcd-ef0123456789".into(),
            })
        );
        // a static pod: uid is a hash, the name carries the node name with dots
        let p = parse_pod_log_dir("kube-system_etcd-node1.example.com_9f86d081884c7d659a2feaa0c55ad015").unwrap();
        assert_eq!(p.qualified(), "kube-system/etcd-node1.example.com");
        for bad in [
            "",
            "default_web",
            "default_web_0a1b2c3d-4e5f-6789-abcd-ef0123456789_x",
            "_web_0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "default__0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "default_web_not-a-uid",
            "default_we b_0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            "default_web/x_0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        ] {
            assert_eq!(parse_pod_log_dir(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn docker_names() {
        let json = br#"{"StreamConfig":{},"State":{"Running":true},"ID":"4f3c","Name":"/web-1","Driver":"overlay2","Config":{"Env":["A=B"]}}"#;
        assert_eq!(parse_docker_name(json).unwrap().as_deref(), Some("web-1"));
        assert_eq!(parse_docker_name(br#"{"Name":""}"#).unwrap(), None);
        assert_eq!(parse_docker_name(br#"{"Name":"/"}"#).unwrap(), None);
        assert_eq!(parse_docker_name(br#"{"Name":null}"#).unwrap(), None);
        assert_eq!(parse_docker_name(br#"{}"#).unwrap(), None);
        assert!(parse_docker_name(br#"{"Name":42}"#).is_err());
        assert!(parse_docker_name(b"not json").is_err());
        assert!(parse_docker_name(b"").is_err());
        assert!(parse_docker_name(br#"["Name"]"#).is_err());
    }

    proptest! {
        #[test]
        fn any_text_never_panics(s in "\\PC{0,200}") {
            let _ = parse_pod_log_dir(&s);
            let _ = parse_docker_name(s.as_bytes());
        }

        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_docker_name(&b);
        }

        #[test]
        fn generated_pod_dirs_parse_back(ns in "[a-z0-9][a-z0-9-]{0,20}", pod in "[a-z0-9][a-z0-9.-]{0,40}",
                                         uid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}") {
            let p = parse_pod_log_dir(&format!("{ns}_{pod}_{uid}")).unwrap();
            prop_assert_eq!(p.namespace, ns);
            prop_assert_eq!(p.name, pod);
            prop_assert_eq!(p.uid, uid);
        }
    }
}
