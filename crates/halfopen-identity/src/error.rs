//! [`IdentityError`]: everything that can go wrong making, writing or loading certificates and
//! keys. Each message names the file or field and says what to do.

use std::path::PathBuf;

use crate::name::NameError;
use crate::peer::PeerError;

fn io_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "; check the path",
        std::io::ErrorKind::PermissionDenied => "; run as a user allowed to access it (keys are 0600, owner only)",
        _ => "",
    }
}

/// An error of this crate's file and issuing operations.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}{}", path.display(), io_hint(source))]
    Io {
        /// What was being done ("create directory", "write", "read", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file that would be replaced already exists and `force` was not given.
    #[error(
        "{} already exists ({what}); refusing to overwrite it: move it away, or force the replacement \
         (--force) if you mean to",
        path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
        /// What it holds.
        what: &'static str,
    },
    /// `issue` found no CA in the directory.
    #[error(
        "no CA in {}: {} is missing; run `halfopen certs init --dir {}` first, or point --dir at the \
         directory that holds ca.pem and ca-key.pem",
        dir.display(), missing.display(), dir.display()
    )]
    NoCa {
        /// The directory given.
        dir: PathBuf,
        /// The first CA file not found.
        missing: PathBuf,
    },
    /// A file is not the PEM it should be.
    #[error("{} is not {what}: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should hold ("a PEM certificate", "a PEM private key", ...).
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A private key that does not belong to the certificate beside it.
    #[error(
        "{} is not the private key of {}: use the key file written together with that certificate",
        key.display(), cert.display()
    )]
    KeyMismatch {
        /// The certificate.
        cert: PathBuf,
        /// The key.
        key: PathBuf,
    },
    /// A host id or reader name that breaks the name rule.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A reconciler name that is neither a DNS name nor an IP address.
    #[error(
        "reconciler name {name:?} is neither an IP address nor a DNS name (letters, digits, '-' in \
         dot-separated labels): give the names collectors use to reach the reconciler"
    )]
    ServerName {
        /// The name given.
        name: String,
    },
    /// A reconciler certificate asked for without any name.
    #[error(
        "the reconciler certificate needs at least one DNS name or IP address (--reconciler NAME[,NAME...]): \
         collectors check the reconciler's address against them"
    )]
    NoServerNames,
    /// A validity that cannot be used.
    #[error("validity: {detail}")]
    Validity {
        /// What is wrong.
        detail: String,
    },
    /// A certificate file whose halfopen role cannot be read.
    #[error("{}: {source}", path.display())]
    Peer {
        /// The certificate file.
        path: PathBuf,
        /// Why it gives no role.
        source: PeerError,
    },
    /// Key or certificate generation failed (rcgen).
    #[error("cannot make {what}: {source}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
}
