//! Files: where certificates and keys live (`DIR/ca.pem`, `DIR/NAME.pem`, `DIR/NAME-key.pem`),
//! how they are written (directory 0700, keys 0600 from creation, temp file + rename, no
//! overwrite unless forced) and how they are loaded and checked for TLS ([`load_tls_pem`]).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::error::IdentityError;
use crate::peer::{peer_from_der, Peer};

/// The CA certificate's file name in a certificate directory (distributed to every peer).
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key's file name (mode 0600; never leaves the CA directory).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// Mode of private key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub const CERT_MODE: u32 = 0o644;
/// Mode of a certificate directory created here.
pub const DIR_MODE: u32 = 0o700;

/// `DIR/STEM.pem`: the certificate file of `stem`.
pub fn cert_file(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.pem"))
}

/// `DIR/STEM-key.pem`: the private key file of `stem`.
pub fn key_file(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}-key.pem"))
}

pub(crate) fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IdentityError + 'a {
    move |source| IdentityError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Create `dir` (and missing parents) with mode 0700; an existing directory is left as it is.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), IdentityError> {
    match DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir) {
        Ok(()) if dir.is_dir() => Ok(()),
        Ok(()) => Err(IdentityError::Io {
            action: "use directory",
            path: dir.to_path_buf(),
            source: std::io::Error::new(ErrorKind::NotADirectory, "not a directory"),
        }),
        Err(e) => Err(io("create directory", dir)(e)),
    }
}

/// Does `path` exist (a dangling symlink counts)?
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Write `bytes` to `path` atomically: a temporary file in the same directory, created with
/// `mode` (so a key is never readable by others, not even for a moment), flushed to disk, then
/// moved into place. With `replace` false the move is a hard link, which fails if `path` exists
/// (checked by the kernel, so two concurrent writers cannot both win); `what` names the file in
/// that error. The directory is synced afterwards.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
    what: &'static str,
) -> Result<(), IdentityError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_then_move(&tmp, path, bytes, mode, replace, what);
    if result.is_err() {
        let _ = fs::remove_file(&tmp); // may not exist; the first error is the one to report
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

fn write_then_move(
    tmp: &Path,
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: bool,
    what: &'static str,
) -> Result<(), IdentityError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .map_err(io("create", tmp))?;
    f.write_all(bytes).map_err(io("write", tmp))?;
    f.sync_all().map_err(io("sync", tmp))?;
    drop(f);
    if replace {
        return fs::rename(tmp, path).map_err(io("move into place", path));
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => fs::remove_file(tmp).map_err(io("remove", tmp)),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(IdentityError::Exists {
            path: path.to_path_buf(),
            what,
        }),
        // A file system without hard links: check, then rename (a narrow race, no worse).
        Err(_) if exists(path) => Err(IdentityError::Exists {
            path: path.to_path_buf(),
            what,
        }),
        Err(_) => fs::rename(tmp, path).map_err(io("move into place", path)),
    }
}

/// Read a whole file; a missing file is an `Io` error with action "read".
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(io("read", path))
}

/// All `CERTIFICATE` blocks of a PEM file, each checked to be an X.509 certificate.
pub(crate) fn certs_from_pem(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bad = |detail: String| IdentityError::Pem {
        path: path.to_path_buf(),
        what: "a PEM certificate file",
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("it has no -----BEGIN CERTIFICATE----- block".into()));
    }
    for (i, c) in certs.iter().enumerate() {
        X509Certificate::from_der(c).map_err(|e| bad(format!("certificate {} of the file: {e}", i + 1)))?;
    }
    Ok(certs)
}

/// Where a peer's TLS material lives: the CA certificate(s) it trusts, its certificate (chain,
/// end entity first) and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CA certificate(s) that issued the other side's certificates.
    pub ca: PathBuf,
    /// PEM file of this peer's certificate, end entity first (intermediates may follow).
    pub cert: PathBuf,
    /// PEM file of this peer's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `halfopen certs issue` writes for `stem`: `DIR/ca.pem`, `DIR/STEM.pem`,
    /// `DIR/STEM-key.pem`.
    pub fn in_dir(dir: &Path, stem: &str) -> TlsFiles {
        TlsFiles {
            ca: dir.join(CA_CERT_FILE),
            cert: cert_file(dir, stem),
            key: key_file(dir, stem),
        }
    }
}

/// Loaded and checked TLS material: the PEM bytes as tonic's `Identity::from_pem(cert_pem,
/// key_pem)` and `Certificate::from_pem(ca_pem)` take them, plus what was read from them.
/// `Debug` leaves the key out.
#[derive(Clone)]
pub struct TlsPem {
    /// The CA file's bytes (one or more certificates).
    pub ca_pem: Vec<u8>,
    /// The certificate file's bytes.
    pub cert_pem: Vec<u8>,
    /// The key file's bytes.
    pub key_pem: Vec<u8>,
    /// The end-entity certificate (first of the certificate file).
    pub cert_der: CertificateDer<'static>,
    /// Its `notBefore`.
    pub not_before: SystemTime,
    /// Its `notAfter`: log it, and warn as it approaches.
    pub not_after: SystemTime,
    /// Permission bits of the key file (`0o600` expected; group/other bits mean the key is
    /// exposed: say so).
    pub key_mode: u32,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &format_args!("<{} bytes, not shown>", self.key_pem.len()))
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_mode", &format_args!("{:o}", self.key_mode))
            .finish_non_exhaustive()
    }
}

impl TlsPem {
    /// The halfopen role of this peer's own certificate (for a start-up check such as "this
    /// collector certificate is for host web-1, not web-2").
    ///
    /// Errors: [`IdentityError::Peer`] naming the certificate file.
    pub fn own_peer(&self, files: &TlsFiles) -> Result<Peer, IdentityError> {
        peer_from_der(&self.cert_der).map_err(|source| IdentityError::Peer {
            path: files.cert.clone(),
            source,
        })
    }

    /// Is the key file readable or writable by group or others?
    pub fn key_exposed(&self) -> bool {
        self.key_mode & 0o077 != 0
    }
}

/// Read the three files and check them: the CA file holds at least one X.509 certificate and
/// no private key (the CA's key must never be handed to peers), the certificate file holds at
/// least one certificate, the key file one private key (PKCS#8, SEC1 or PKCS#1) that rustls can
/// sign with and that belongs to the first certificate (a mix-up of `web-1.pem` with
/// `web-2-key.pem` is caught here, not at the first handshake). Dates are reported, not judged.
///
/// Errors: [`IdentityError::Io`] (unreadable file), [`IdentityError::Pem`] (not the expected
/// PEM), [`IdentityError::KeyMismatch`].
pub fn load_tls_pem(files: &TlsFiles) -> Result<TlsPem, IdentityError> {
    let ca_pem = read(&files.ca)?;
    certs_from_pem(&files.ca, &ca_pem)?;
    if ca_pem
        .windows(b"PRIVATE KEY-----".len())
        .any(|w| w == b"PRIVATE KEY-----")
    {
        return Err(IdentityError::Pem {
            path: files.ca.clone(),
            what: "a CA certificate file without keys",
            detail: "it holds a private key: the CA's key must never leave the CA; give peers ca.pem only, \
                     and replace the CA if this file was copied anywhere"
                .into(),
        });
    }
    let cert_pem = read(&files.cert)?;
    let chain = certs_from_pem(&files.cert, &cert_pem)?;
    let key_pem = read(&files.key)?;
    let key_mode = fs::metadata(&files.key).map_err(io("stat", &files.key))?.mode() & 0o7777;

    let bad_key = |detail: String| IdentityError::Pem {
        path: files.key.clone(),
        what: "a PEM private key",
        detail,
    };
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        bad_key(format!(
            "{e} (expected a PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY block)"
        ))
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad_key(e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), Arc::clone(&signer));
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(IdentityError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // Unknown: the provider cannot derive the public key (not the case for ring's ECDSA,
        // RSA and Ed25519 keys); any other error is the certificate's.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(IdentityError::Pem {
                path: files.cert.clone(),
                what: "a usable certificate",
                detail: e.to_string(),
            })
        }
    }

    let cert_der = chain.into_iter().next().expect("certs_from_pem returns at least one");
    let (_, parsed) = X509Certificate::from_der(&cert_der).map_err(|e| IdentityError::Pem {
        path: files.cert.clone(),
        what: "a PEM certificate file",
        detail: e.to_string(),
    })?;
    let validity = parsed.validity();
    let (not_before, not_after) = (to_system(validity.not_before), to_system(validity.not_after));
    Ok(TlsPem {
        ca_pem,
        cert_pem,
        key_pem,
        cert_der,
        not_before,
        not_after,
        key_mode,
    })
}

fn to_system(t: x509_parser::time::ASN1Time) -> SystemTime {
    crate::peer::system_time(t)
}

/// Read the halfopen role of the certificate in a PEM file (its first certificate).
///
/// Errors: [`IdentityError::Io`], [`IdentityError::Pem`], [`IdentityError::Peer`].
pub fn peer_from_pem_file(path: &Path) -> Result<Peer, IdentityError> {
    let pem = read(path)?;
    let certs = certs_from_pem(path, &pem)?;
    peer_from_der(&certs[0]).map_err(|source| IdentityError::Peer {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_is_written_0600_and_not_overwritten() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.pem");
        write_atomic(&p, b"one", KEY_MODE, false, "a key").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let e = write_atomic(&p, b"two", KEY_MODE, false, "a key").unwrap_err();
        assert!(
            matches!(&e, IdentityError::Exists { path, what: "a key" } if path == &p),
            "{e}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"three", KEY_MODE, true, "a key").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        // no temporary file left behind
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("k.pem")]);
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let pem = TlsPem {
            ca_pem: vec![],
            cert_pem: vec![],
            key_pem: b"-----BEGIN PRIVATE KEY-----SECRET".to_vec(),
            cert_der: CertificateDer::from(vec![]),
            not_before: SystemTime::UNIX_EPOCH,
            not_after: SystemTime::UNIX_EPOCH,
            key_mode: 0o600,
        };
        let shown = format!("{pem:?}");
        assert!(
            !shown.contains("SECRET") && shown.contains("not shown") && shown.contains("key_mode: 600"),
            "{shown}"
        );
    }

    #[test]
    fn a_created_directory_is_0700() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        ensure_dir(&sub).unwrap();
        assert_eq!(fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        let file = d.path().join("f");
        fs::write(&file, b"").unwrap();
        assert!(matches!(ensure_dir(&file), Err(IdentityError::Io { .. })));
    }

    #[test]
    fn pem_files_without_certificates_are_refused_by_name() {
        let p = Path::new("/x/ca.pem");
        let e = certs_from_pem(p, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/x/ca.pem is not a PEM certificate file: it has no -----BEGIN CERTIFICATE"),
            "{e}"
        );
        let e = certs_from_pem(p, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap_err();
        assert!(e.to_string().contains("certificate 1 of the file"), "{e}");
    }
}
