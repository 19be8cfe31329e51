//! The TLS flags of every command that talks gRPC (`--tls-ca`, `--tls-cert`,
//! `--tls-key`, `--insecure`): reading the three files, all or none, and
//! checking before any connection that the certificate is the one this
//! command needs (the reconciler's, a collector's for this host id, a
//! reader's), so that a mix-up is a clear error at start rather than a
//! refusal by the other side later. The reconciler checks the same again.
use crate::cli::TlsArgs;
use anyhow::{bail, Context, Result};
use halfopen_identity::{load_tls_pem, Role, TlsFiles, TlsPem};
use std::fmt;
use std::time::{Duration, SystemTime};

/// A certificate this close to its end is warned about at start.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// What the certificate must be.
#[derive(Clone, Copy, Debug)]
pub enum Want<'a> {
    /// The reconciler's server certificate.
    Reconciler,
    /// A collector certificate that may report this host id.
    Collector { host_id: &'a str },
    /// A reader certificate (queries).
    Reader,
}

impl TlsArgs {
    /// The three files, or `None` when none is given.
    ///
    /// Errors: some given and not all; `--insecure` together with them.
    pub fn files(&self) -> Result<Option<TlsFiles>> {
        let given = [&self.tls_ca, &self.tls_cert, &self.tls_key];
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), Some(cert), Some(key)) => {
                if self.insecure {
                    bail!("--insecure and the TLS files were both given: choose TLS (drop --insecure) or plaintext");
                }
                Ok(Some(TlsFiles {
                    ca: ca.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                }))
            }
            (None, None, None) => Ok(None),
            _ => {
                let missing: Vec<&str> = [
                    "--tls-ca (HALFOPEN_TLS_CA)",
                    "--tls-cert (HALFOPEN_TLS_CERT)",
                    "--tls-key (HALFOPEN_TLS_KEY)",
                ]
                .into_iter()
                .zip(given)
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| n)
                .collect();
                bail!(
                    "--tls-ca, --tls-cert and --tls-key go together; missing: {}",
                    missing.join(", ")
                )
            }
        }
    }
}

/// Reads and checks the TLS files, if given: the certificate must be what
/// `want` says, inside its validity; a key readable by others and a
/// certificate near its end are warned about (on the log).
pub fn load(args: &TlsArgs, want: Want<'_>) -> Result<Option<TlsPem>> {
    let Some(files) = args.files()? else {
        return Ok(None);
    };
    let pem = load_tls_pem(&files).context("reading the TLS files")?;
    let peer = pem.own_peer(&files)?;
    let cert = files.cert.display();
    match (want, &peer.role) {
        (Want::Reconciler, Role::Reconciler) | (Want::Reader, Role::Reader { .. }) => {}
        (Want::Collector { host_id }, Role::Collector { host }) => {
            if !peer.may_collect_for(host_id) {
                bail!(
                    "{cert} is a collector certificate for host {host:?} (and {host}/...), but this collector reports \
                     as {host_id:?}: run it with --host-id {host}, or issue a certificate for {host_id:?} \
                     (halfopen certs issue --host NAME)"
                );
            }
        }
        (Want::Reconciler, role) => bail!(
            "{cert} is a {role} certificate [{}]; the reconciler needs its server certificate \
             (halfopen certs issue --reconciler NAME_OR_IP,...)",
            peer.subject
        ),
        (Want::Collector { host_id }, role) => bail!(
            "{cert} is a {role} certificate [{}]; a collector needs a collector certificate for its host id \
             (halfopen certs issue --host {host_id})",
            peer.subject
        ),
        (Want::Reader, role) => bail!(
            "{cert} is a {role} certificate [{}]; queries need a reader certificate (halfopen certs issue --reader NAME)",
            peer.subject
        ),
    }
    let now = SystemTime::now();
    if now > pem.not_after {
        bail!(
            "{cert} expired at {}: issue a new one (halfopen certs issue ...)",
            humantime::format_rfc3339_seconds(pem.not_after)
        );
    }
    if now < pem.not_before {
        bail!(
            "{cert} is valid only from {} (is this machine's clock right?)",
            humantime::format_rfc3339_seconds(pem.not_before)
        );
    }
    if pem.not_after.duration_since(now).unwrap_or_default() < EXPIRY_WARNING {
        tracing::warn!(
            cert = %cert,
            "the certificate ends at {}: issue its replacement",
            humantime::format_rfc3339_seconds(pem.not_after)
        );
    }
    if key_exposed(&files.key, pem.key_mode) {
        tracing::warn!(
            key = %files.key.display(),
            mode = format!("{:o}", pem.key_mode),
            "the private key is readable by other users: chmod 600 it (and consider it exposed)"
        );
    }
    Ok(Some(pem))
}

/// Can users other than this process's read or write the key? Bits for
/// others always count; bits for the group count unless the file's group is
/// one of ours (a Kubernetes secret volume is root:fsGroup 0440, the group
/// being the pod's own).
fn key_exposed(key: &std::path::Path, mode: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    if mode & 0o007 != 0 {
        return true;
    }
    if mode & 0o070 == 0 {
        return false;
    }
    let Ok(meta) = std::fs::metadata(key) else {
        return true;
    };
    !own_groups().contains(&meta.gid())
}

/// This process's effective group and supplementary groups.
fn own_groups() -> Vec<u32> {
    // SAFETY: getegid cannot fail; getgroups writes at most `n` entries into a buffer of `n`.
    let mut groups = vec![unsafe { libc::getegid() }];
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n > 0 {
        let mut buf = vec![0 as libc::gid_t; n as usize];
        let got = unsafe { libc::getgroups(n, buf.as_mut_ptr()) };
        if got > 0 {
            groups.extend_from_slice(&buf[..got as usize]);
        }
    }
    groups
}

/// Where the reconciler is and how to talk to it, as a query command's
/// flags give it. Shows as the address given.
#[derive(Clone, Debug)]
pub struct Remote {
    pub reconciler: String,
    pub tls: TlsArgs,
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reconciler)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn args(ca: bool, cert: bool, key: bool, insecure: bool) -> TlsArgs {
        let p = |b: bool, n: &str| b.then(|| PathBuf::from(n));
        TlsArgs {
            tls_ca: p(ca, "ca.pem"),
            tls_cert: p(cert, "c.pem"),
            tls_key: p(key, "c-key.pem"),
            insecure,
        }
    }

    #[test]
    fn the_three_files_go_together() {
        assert_eq!(args(false, false, false, false).files().unwrap(), None);
        assert_eq!(args(false, false, false, true).files().unwrap(), None);
        let f = args(true, true, true, false).files().unwrap().unwrap();
        assert_eq!(f.key, PathBuf::from("c-key.pem"));
        let e = args(true, false, true, false).files().unwrap_err().to_string();
        assert!(e.contains("missing: --tls-cert (HALFOPEN_TLS_CERT)"), "{e}");
        let e = args(false, true, false, false).files().unwrap_err().to_string();
        assert!(
            e.contains("--tls-ca (HALFOPEN_TLS_CA), --tls-key (HALFOPEN_TLS_KEY)"),
            "{e}"
        );
        let e = args(true, true, true, true).files().unwrap_err().to_string();
        assert!(e.contains("--insecure"), "{e}");
    }

    #[test]
    fn a_key_is_exposed_to_others_never_to_its_own_group() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, b"x").unwrap();
        for (mode, exposed) in [
            (0o600, false),
            (0o400, false),
            (0o640, false),
            (0o604, true),
            (0o666, true),
        ] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            // the file's group is this process's (it created it)
            assert_eq!(key_exposed(&key, mode), exposed, "{mode:o}");
        }
        assert!(key_exposed(&dir.path().join("missing"), 0o640));
    }

    #[test]
    fn the_certificate_must_fit_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        halfopen_identity::init_ca(d, &Default::default()).unwrap();
        use halfopen_identity::Issue;
        for what in [
            Issue::Reconciler {
                names: vec!["recon".into()],
            },
            Issue::Collector { host: "web-1".into() },
            Issue::Reader { name: "alice".into() },
        ] {
            halfopen_identity::issue(d, &what, &Default::default()).unwrap();
        }
        let tls = |stem: &str| TlsArgs {
            tls_ca: Some(d.join("ca.pem")),
            tls_cert: Some(d.join(format!("{stem}.pem"))),
            tls_key: Some(d.join(format!("{stem}-key.pem"))),
            insecure: false,
        };
        assert!(load(&tls("recon"), Want::Reconciler).unwrap().is_some());
        assert!(load(&tls("alice"), Want::Reader).unwrap().is_some());
        assert!(load(&tls("web-1"), Want::Collector { host_id: "web-1" })
            .unwrap()
            .is_some());
        assert!(load(&tls("web-1"), Want::Collector { host_id: "web-1/redis" })
            .unwrap()
            .is_some());
        let e = load(&tls("web-1"), Want::Collector { host_id: "web-2" })
            .unwrap_err()
            .to_string();
        assert!(e.contains("--host-id web-1"), "{e}");
        let e = load(&tls("web-1"), Want::Reader).unwrap_err().to_string();
        assert!(
            e.contains("collector web-1 certificate") && e.contains("--reader"),
            "{e}"
        );
        let e = load(&tls("alice"), Want::Reconciler).unwrap_err().to_string();
        assert!(e.contains("reader alice certificate"), "{e}");
        let e = load(&tls("recon"), Want::Collector { host_id: "recon" })
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("reconciler certificate") && e.contains("--host recon"),
            "{e}"
        );
        // a key of another certificate
        let mut mixed = tls("alice");
        mixed.tls_key = Some(d.join("web-1-key.pem"));
        let e = format!("{:#}", load(&mixed, Want::Reader).unwrap_err());
        assert!(e.contains("is not the private key of"), "{e}");
    }
}
