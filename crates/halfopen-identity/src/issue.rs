//! Making halfopen's own small CA ([`init_ca`]) and issuing the reconciler's, collectors' and
//! readers' certificates with it ([`issue`]), with rcgen: ECDSA P-256 keys, SHA-256
//! signatures, the role encoding described in the crate documentation.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::DnsName;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::error::IdentityError;
use crate::files::{
    cert_file, certs_from_pem, ensure_dir, exists, key_file, read, write_atomic, CA_CERT_FILE, CA_KEY_FILE, CERT_MODE,
    KEY_MODE,
};
use crate::name::{validate_name, NameKind};
use crate::peer::{peer_from_der, system_time, Role, OU_COLLECTOR, OU_READER, OU_RECONCILER};

/// Default validity of the CA: 10 years (3650 days).
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);
/// Default validity of a reconciler, collector or reader certificate: 1 year (365 days).
pub const DEFAULT_LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Certificates start this long before "now", so that a host whose clock is behind the
/// issuer's (by up to an hour) accepts a certificate issued a moment ago: a collector with
/// a skewed clock must still report, since halfopen never compares clocks otherwise. One
/// hour, as Let's Encrypt backdates (Boulder `ca.backdate`).
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// Longest validity accepted: 100 years.
pub const MAX_VALIDITY: Duration = Duration::from_secs(36_500 * 86_400);
/// Start of the default CN of the CA certificate, followed by the time it was made
/// (`halfopen CA 2026-01-31T12:00:00Z`), so that two CAs (an old and a new one in one `ca.pem`
/// during a rotation, or another team's) never share a subject.
pub const DEFAULT_CA_NAME: &str = "halfopen CA";

/// How to make the CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaOptions {
    /// The CA certificate's CN (1 to 64 bytes, no control characters). Default (`None`):
    /// [`DEFAULT_CA_NAME`] and the current time in UTC.
    pub name: Option<String>,
    /// How long the CA is valid, from now. Default [`DEFAULT_CA_VALIDITY`] (10 years).
    pub validity: Duration,
    /// Replace an existing `ca.pem`/`ca-key.pem`. Every certificate the old CA issued stops
    /// being trusted by peers that get the new `ca.pem`.
    pub force: bool,
}

impl Default for CaOptions {
    fn default() -> Self {
        CaOptions {
            name: None,
            validity: DEFAULT_CA_VALIDITY,
            force: false,
        }
    }
}

/// What `init_ca` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/ca.pem` (mode 0644): give it to every peer.
    pub cert: PathBuf,
    /// `DIR/ca-key.pem` (mode 0600): keep it on the machine that issues certificates.
    pub key: PathBuf,
    /// End of the CA's validity: every certificate it issues ends by then.
    pub not_after: SystemTime,
}

/// Which certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    /// The reconciler's server certificate, for these DNS names and IP addresses (SANs, in this
    /// order; at least one). Files are named after the first.
    Reconciler {
        /// DNS names and IP addresses collectors and readers use to reach the reconciler.
        names: Vec<String>,
    },
    /// A collector certificate bound to host id `host` (it may also report `host/<container>`).
    Collector {
        /// The host id, valid per [`validate_name`] (no `/`).
        host: String,
    },
    /// A reader (query-only) certificate for `name`.
    Reader {
        /// Who reads, valid per [`validate_name`].
        name: String,
    },
}

impl Issue {
    /// The file stem: the collector's host, the reader's name, the reconciler's first name.
    pub fn stem(&self) -> Option<&str> {
        match self {
            Issue::Reconciler { names } => names.first().map(String::as_str),
            Issue::Collector { host } => Some(host),
            Issue::Reader { name } => Some(name),
        }
    }

    /// The role its certificate will carry.
    pub fn role(&self) -> Role {
        match self {
            Issue::Reconciler { .. } => Role::Reconciler,
            Issue::Collector { host } => Role::Collector { host: host.clone() },
            Issue::Reader { name } => Role::Reader { name: name.clone() },
        }
    }
}

/// How to issue a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    /// How long it is valid. Default [`DEFAULT_LEAF_VALIDITY`] (1 year). Cut to the CA's end of
    /// validity when it would outlive it (see [`IssuedFiles::cut_to_ca`]).
    pub validity: Duration,
    /// When it starts being valid. Default: [`BACKDATE`] before now, and `validity` counts
    /// from now. With a time given, it starts exactly then and `validity` counts from it (for
    /// pre-issuing a replacement, or for tests).
    pub not_before: Option<SystemTime>,
    /// Write the certificate and key to this directory (created 0700) with a copy of `ca.pem`,
    /// ready to hand to the peer; default: the CA directory itself.
    pub out_dir: Option<PathBuf>,
    /// Replace existing files of the same name.
    pub force: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            validity: DEFAULT_LEAF_VALIDITY,
            not_before: None,
            out_dir: None,
            force: false,
        }
    }
}

/// What `issue` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedFiles {
    /// `OUT/NAME.pem` (mode 0644).
    pub cert: PathBuf,
    /// `OUT/NAME-key.pem` (mode 0600).
    pub key: PathBuf,
    /// `OUT/ca.pem`: the CA certificate beside them.
    pub ca: PathBuf,
    /// The role the certificate carries (read back from the certificate written).
    pub role: Role,
    /// Serial number, colon-separated hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// True when `validity` was cut to end with the CA.
    pub cut_to_ca: bool,
}

fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> IdentityError {
    move |source| IdentityError::Generate { what, source }
}

/// `t` as rcgen takes it, if it is in 1950..=9999, the years an X.509 time holds (RFC 5280
/// §4.1.2.5: UTCTime up to 2049, GeneralizedTime after).
fn offset(t: SystemTime) -> Result<OffsetDateTime, IdentityError> {
    let out_of_range = || IdentityError::Validity {
        detail: "a certificate's dates must fall within the years 1950 to 9999".into(),
    };
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).map_err(|_| out_of_range())?,
        Err(e) => -i64::try_from(e.duration().as_secs()).map_err(|_| out_of_range())?,
    };
    let at = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| out_of_range())?;
    if !(1950..=9999).contains(&at.year()) {
        return Err(out_of_range());
    }
    Ok(at)
}

fn check_validity(validity: Duration) -> Result<(), IdentityError> {
    if validity < Duration::from_secs(1) {
        return Err(IdentityError::Validity {
            detail: "it must be at least one second; give e.g. 365d".into(),
        });
    }
    if validity > MAX_VALIDITY {
        return Err(IdentityError::Validity {
            detail: format!(
                "{} days is more than the 36500 (100 years) accepted",
                validity.as_secs() / 86_400
            ),
        });
    }
    Ok(())
}

/// Make a CA in `dir`: a fresh ECDSA P-256 key in `DIR/ca-key.pem` (mode 0600, written 0600
/// from creation) and a self-signed certificate in `DIR/ca.pem` (CN `opts.name`,
/// basicConstraints CA:TRUE pathlen 0 — it signs end-entity certificates only — keyUsage
/// keyCertSign and cRLSign, valid from 5 minutes ago for `opts.validity`). `dir` is created
/// with mode 0700 if missing.
///
/// Errors: [`IdentityError::Exists`] when either file exists and `opts.force` is false (nothing
/// is written then); [`IdentityError::Validity`] for a bad name or duration;
/// [`IdentityError::Io`].
pub fn init_ca(dir: &Path, opts: &CaOptions) -> Result<CaFiles, IdentityError> {
    check_validity(opts.validity)?;
    let now = SystemTime::now();
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => {
            let t = offset(now)?;
            format!(
                "{DEFAULT_CA_NAME} {:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        }
    };
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(IdentityError::Validity {
            detail: format!("CA name {name:?} must be 1 to 64 bytes without control characters"),
        });
    }
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    if !opts.force {
        for (p, what) in [(&cert_path, "a CA certificate"), (&key_path, "a CA private key")] {
            if exists(p) {
                return Err(IdentityError::Exists { path: p.clone(), what });
            }
        }
    }
    ensure_dir(dir)?;

    let not_before = now - BACKDATE;
    let not_after = now + opts.validity;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("the CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = offset(not_before)?;
    params.not_after = offset(not_after)?;
    let cert = params.self_signed(&key).map_err(generate("the CA certificate"))?;

    write_pair(
        (&key_path, key.serialize_pem().as_bytes(), "a CA private key"),
        (&cert_path, cert.pem().as_bytes(), "a CA certificate"),
        opts.force,
    )?;
    let (_, parsed) = X509Certificate::from_der(cert.der()).map_err(|e| IdentityError::Pem {
        path: cert_path.clone(),
        what: "a certificate",
        detail: e.to_string(),
    })?;
    Ok(CaFiles {
        cert: cert_path,
        key: key_path,
        not_after: system_time(parsed.validity().not_after),
    })
}

/// Write a key then its certificate; if the certificate cannot be written, a key written here
/// without `force` is removed again, so that a retry is not refused for a half-made pair.
fn write_pair(
    (key_path, key_pem, key_what): (&Path, &[u8], &'static str),
    (cert_path, cert_pem, cert_what): (&Path, &[u8], &'static str),
    force: bool,
) -> Result<(), IdentityError> {
    write_atomic(key_path, key_pem, KEY_MODE, force, key_what)?;
    if let Err(e) = write_atomic(cert_path, cert_pem, CERT_MODE, force, cert_what) {
        if !force {
            let _ = std::fs::remove_file(key_path); // ours, written a moment ago; report `e`
        }
        return Err(e);
    }
    Ok(())
}

/// The CA of `dir`, loaded and checked: its certificate, its key, and the signer rcgen needs.
struct Ca {
    pem: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    not_after: SystemTime,
}

fn load_ca(dir: &Path) -> Result<Ca, IdentityError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    for p in [&cert_path, &key_path] {
        if !exists(p) {
            return Err(IdentityError::NoCa {
                dir: dir.to_path_buf(),
                missing: p.clone(),
            });
        }
    }
    let pem = read(&cert_path)?;
    let der = certs_from_pem(&cert_path, &pem)?.remove(0);
    let bad_cert = |detail: String| IdentityError::Pem {
        path: cert_path.clone(),
        what: "a CA certificate",
        detail,
    };
    let (_, parsed) = X509Certificate::from_der(&der).map_err(|e| bad_cert(e.to_string()))?;
    if !parsed.is_ca() {
        return Err(bad_cert(
            "it is not a CA (no basicConstraints CA:TRUE); point --dir at the CA's directory".into(),
        ));
    }
    let key_pem = read(&key_path)?;
    let key_text = String::from_utf8(key_pem).map_err(|_| IdentityError::Pem {
        path: key_path.clone(),
        what: "a PEM private key",
        detail: "it is not text".into(),
    })?;
    let key = KeyPair::from_pem(&key_text).map_err(|e| IdentityError::Pem {
        path: key_path.clone(),
        what: "a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)",
        detail: format!("{e}; an EC PRIVATE KEY converts with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY8`"),
    })?;
    if key.subject_public_key_info() != parsed.public_key().raw {
        return Err(IdentityError::KeyMismatch {
            cert: cert_path,
            key: key_path,
        });
    }
    let not_after = system_time(parsed.validity().not_after);
    let issuer = Issuer::from_ca_cert_der(&der, key).map_err(generate("an issuer from the CA certificate"))?;
    Ok(Ca { pem, issuer, not_after })
}

fn server_sans(names: &[String]) -> Result<Vec<SanType>, IdentityError> {
    if names.is_empty() {
        return Err(IdentityError::NoServerNames);
    }
    names
        .iter()
        .map(|n| {
            if let Ok(ip) = n.parse::<IpAddr>() {
                return Ok(SanType::IpAddress(ip));
            }
            let bad = || IdentityError::ServerName { name: n.clone() };
            DnsName::try_from(n.as_str()).map_err(|_| bad())?;
            Ok(SanType::DnsName(Ia5String::try_from(n.as_str()).map_err(|_| bad())?))
        })
        .collect()
}

/// Issue a certificate with the CA in `dir` (`DIR/ca.pem`, `DIR/ca-key.pem`).
///
/// Writes `OUT/NAME-key.pem` (a fresh ECDSA P-256 key, mode 0600 from creation) and
/// `OUT/NAME.pem`, and makes sure `OUT/ca.pem` is there (`OUT` = `opts.out_dir`, default
/// `dir`; created 0700). `NAME` is the collector's host, the reader's name, or the reconciler's
/// first name. The certificate has subject `OU=<role OU>, CN=<NAME>`, basicConstraints CA:FALSE,
/// keyUsage digitalSignature, EKU clientAuth (collector, reader) or serverAuth (reconciler, with
/// its names as DNS/IP SANs), and an authority key identifier. It is read back with
/// [`peer_from_der`] before anything is written.
///
/// Errors: [`IdentityError::NoCa`]; [`IdentityError::Name`] for a host or reader name outside
/// the name rule; [`IdentityError::ServerName`], [`IdentityError::NoServerNames`];
/// [`IdentityError::Validity`] (including a start after the CA's end);
/// [`IdentityError::Exists`] when `NAME.pem`, `NAME-key.pem` or a different `OUT/ca.pem` exists
/// and `opts.force` is false (nothing is written then); [`IdentityError::Io`],
/// [`IdentityError::Pem`], [`IdentityError::KeyMismatch`] for an unreadable CA.
pub fn issue(dir: &Path, what: &Issue, opts: &IssueOptions) -> Result<IssuedFiles, IdentityError> {
    check_validity(opts.validity)?;
    let (ou, sans, eku) = match what {
        Issue::Reconciler { names } => (OU_RECONCILER, server_sans(names)?, ExtendedKeyUsagePurpose::ServerAuth),
        Issue::Collector { host } => {
            validate_name(host, NameKind::CertHost)?;
            (OU_COLLECTOR, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
        }
        Issue::Reader { name } => {
            validate_name(name, NameKind::ReaderName)?;
            (OU_READER, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
        }
    };
    let stem = what.stem().ok_or(IdentityError::NoServerNames)?;
    if stem == "ca" || stem.ends_with("-key") {
        return Err(IdentityError::Validity {
            detail: format!(
                "the name {stem:?} would collide with the files of another certificate \
                 (ca.pem, ca-key.pem, NAME-key.pem); choose a name that is not \"ca\" and does not end in \"-key\""
            ),
        });
    }

    let ca = load_ca(dir)?;
    let out = opts.out_dir.as_deref().unwrap_or(dir);
    let cert_path = cert_file(out, stem);
    let key_path = key_file(out, stem);
    let ca_copy = out.join(CA_CERT_FILE);
    let copy_ca = ca_copy != dir.join(CA_CERT_FILE);
    if !opts.force {
        for (p, what) in [(&cert_path, "a certificate"), (&key_path, "a private key")] {
            if exists(p) {
                return Err(IdentityError::Exists { path: p.clone(), what });
            }
        }
    }
    let ca_copy_needed = copy_ca && std::fs::read(&ca_copy).ok().as_deref() != Some(ca.pem.as_slice());
    if ca_copy_needed && !opts.force && exists(&ca_copy) {
        return Err(IdentityError::Exists {
            path: ca_copy,
            what: "a different CA certificate",
        });
    }

    // Dates.
    let now = SystemTime::now();
    let (start, not_before) = match opts.not_before {
        Some(t) => (t, t),
        None => (now, now - BACKDATE),
    };
    let wanted_end = start
        .checked_add(opts.validity)
        .ok_or_else(|| IdentityError::Validity {
            detail: "the start plus the validity is beyond what a certificate can hold".into(),
        })?;
    let cut_to_ca = wanted_end > ca.not_after;
    let not_after = wanted_end.min(ca.not_after);
    if not_after <= not_before {
        return Err(IdentityError::Validity {
            detail: format!(
                "the CA in {} ends before this certificate would start: make a new CA (halfopen certs init --force) \
                 and issue every certificate again",
                dir.display()
            ),
        });
    }

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationalUnitName, ou);
    dn.push(DnType::CommonName, stem);
    params.distinguished_name = dn;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset(not_before)?;
    params.not_after = offset(not_after)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate("a key"))?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(generate("the certificate"))?;

    // Read it back: what we issue must be what peer_from_der accepts, with the role asked for.
    let peer = peer_from_der(cert.der()).map_err(|source| IdentityError::Peer {
        path: cert_path.clone(),
        source,
    })?;

    ensure_dir(out)?;
    write_pair(
        (&key_path, key.serialize_pem().as_bytes(), "a private key"),
        (&cert_path, cert.pem().as_bytes(), "a certificate"),
        opts.force,
    )?;
    if ca_copy_needed {
        write_atomic(&ca_copy, &ca.pem, CERT_MODE, true, "a CA certificate")?;
    }
    Ok(IssuedFiles {
        cert: cert_path,
        key: key_path,
        ca: ca_copy,
        role: peer.role,
        serial: peer.serial,
        not_before: peer.not_before,
        not_after: peer.not_after,
        cut_to_ca,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn server_names_become_dns_and_ip_sans() {
        let sans = server_sans(&["reconciler.example".into(), "198.18.0.1".into(), "::1".into()]).unwrap();
        assert_eq!(
            sans,
            vec![
                SanType::DnsName(Ia5String::try_from("reconciler.example").unwrap()),
                SanType::IpAddress("198.18.0.1".parse().unwrap()),
                SanType::IpAddress("::1".parse().unwrap()),
            ]
        );
        for bad in ["", "-x", "a b", "*.example", "x_/y", "a..b"] {
            assert!(
                matches!(server_sans(&[bad.to_string()]), Err(IdentityError::ServerName { ref name }) if name == bad),
                "{bad:?}"
            );
        }
        assert!(matches!(server_sans(&[]), Err(IdentityError::NoServerNames)));
    }

    #[test]
    fn dates_outside_x509_years_are_refused_not_panicked_on() {
        let year = Duration::from_secs(365 * 86_400);
        assert!(offset(SystemTime::UNIX_EPOCH).is_ok());
        assert!(offset(SystemTime::UNIX_EPOCH - 19 * year).is_ok()); // 1951
        assert!(matches!(
            offset(SystemTime::UNIX_EPOCH - 21 * year),
            Err(IdentityError::Validity { .. })
        ));
        assert!(matches!(
            offset(SystemTime::UNIX_EPOCH + 9000 * year),
            Err(IdentityError::Validity { .. })
        ));
        assert!(matches!(
            offset(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4)),
            Err(IdentityError::Validity { .. })
        ));
    }

    #[test]
    fn validity_is_bounded() {
        assert!(check_validity(Duration::ZERO).is_err());
        assert!(check_validity(DAY).is_ok());
        assert!(check_validity(MAX_VALIDITY).is_ok());
        assert!(check_validity(MAX_VALIDITY + DAY).is_err());
    }
}
