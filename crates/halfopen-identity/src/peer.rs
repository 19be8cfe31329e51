//! Reading a peer's halfopen role and identity from its end-entity certificate (pure: bytes in,
//! [`Peer`] or [`PeerError`] out, no I/O, never panics), and the authorisation rules that follow
//! from it ([`Peer::may_collect_for`], [`Peer::may_read`]).
//!
//! The certificate must already have been verified against the CA by the TLS handshake (rustls'
//! `WebPkiClientVerifier` on the reconciler); this module does not check signatures or dates.
//! The encoding it reads is described in the crate documentation.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::name::{validate_host_id, validate_name, NameError, NameKind};

/// Subject OU of a collector certificate (identity: CN = host id).
pub const OU_COLLECTOR: &str = "halfopen-collector";
/// Subject OU of a reader (query-only) certificate (identity: CN = reader name).
pub const OU_READER: &str = "halfopen-reader";
/// Subject OU of the reconciler's server certificate (identity: its SAN DNS names / IPs).
pub const OU_RECONCILER: &str = "halfopen-reconciler";
/// An OU starting with this (ASCII case-insensitive) is a role claim; any other OU is ignored.
pub const ROLE_PREFIX: &str = "halfopen-";

/// Longest subject string kept in a [`Peer`] or an error message, in characters.
const MAX_SUBJECT_CHARS: usize = 256;

/// What a peer is to halfopen, read from its certificate's subject OU (role) and CN (identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A collector for host id `host` (and its container parts `host/...`): may call
    /// `Ingest.Collect`. OU `halfopen-collector`, CN = `host`, EKU clientAuth.
    Collector {
        /// The host id the certificate is bound to; valid per [`crate::validate_name`].
        host: String,
    },
    /// A reader: may call the query service only. OU `halfopen-reader`, CN = `name`, EKU
    /// clientAuth.
    Reader {
        /// Who reads (a person or a tool); valid per [`crate::validate_name`].
        name: String,
    },
    /// The reconciler (a server certificate). OU `halfopen-reconciler`, EKU serverAuth; clients
    /// check its SAN DNS names / IP addresses as usual, the CN is not read.
    Reconciler,
}

impl Role {
    /// The subject OU value that encodes this role.
    pub fn ou(&self) -> &'static str {
        match self {
            Role::Collector { .. } => OU_COLLECTOR,
            Role::Reader { .. } => OU_READER,
            Role::Reconciler => OU_RECONCILER,
        }
    }

    /// The identity carried in the CN: the host id of a collector, the name of a reader; `None`
    /// for the reconciler.
    pub fn identity(&self) -> Option<&str> {
        match self {
            Role::Collector { host } => Some(host),
            Role::Reader { name } => Some(name),
            Role::Reconciler => None,
        }
    }

    /// The extended key usage this role's certificate needs when it has an EKU extension.
    pub fn key_purpose(&self) -> KeyPurpose {
        match self {
            Role::Collector { .. } | Role::Reader { .. } => KeyPurpose::ClientAuth,
            Role::Reconciler => KeyPurpose::ServerAuth,
        }
    }
}

impl fmt::Display for Role {
    /// `collector web-1`, `reader alice`, `reconciler`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Collector { host } => write!(f, "collector {host}"),
            Role::Reader { name } => write!(f, "reader {name}"),
            Role::Reconciler => f.write_str("reconciler"),
        }
    }
}

/// An extended key usage purpose (RFC 5280 §4.2.1.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// id-kp-clientAuth, 1.3.6.1.5.5.7.3.2 (TLS client).
    ClientAuth,
    /// id-kp-serverAuth, 1.3.6.1.5.5.7.3.1 (TLS server).
    ServerAuth,
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyPurpose::ClientAuth => "clientAuth",
            KeyPurpose::ServerAuth => "serverAuth",
        })
    }
}

/// A peer as its certificate describes it.
///
/// Fields are public so that authorisation code can be tested with hand-made peers; a `Peer`
/// made by [`peer_from_der`] always has a valid identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Role and identity.
    pub role: Role,
    /// The certificate's subject in RFC 4514 style (`OU=halfopen-collector, CN=web-1`), for logs:
    /// characters outside printable ASCII escaped as `\u{..}`, cut at 256 characters.
    pub subject: String,
    /// The serial number as colon-separated hex bytes (`3a:0f:...`), for logs and revocation.
    pub serial: String,
    /// Start of validity (`notBefore`).
    pub not_before: SystemTime,
    /// End of validity (`notAfter`).
    pub not_after: SystemTime,
}

impl Peer {
    /// May this peer open a `Collect` stream for `host_id`?
    ///
    /// True only for a collector certificate bound to `H` and a `host_id` that is valid
    /// ([`validate_host_id`]) and either equals `H` or starts with `H/` (a container of that
    /// host, `H/<anything>`). Byte-for-byte comparison: `web` may not collect for `web2`, `Web`
    /// or `web.example`. Readers and the reconciler may collect for nothing.
    pub fn may_collect_for(&self, host_id: &str) -> bool {
        let Role::Collector { host } = &self.role else {
            return false;
        };
        if host.is_empty() || validate_host_id(host_id).is_err() {
            return false;
        }
        match host_id.strip_prefix(host.as_str()) {
            Some("") => true,
            Some(rest) => rest.starts_with(crate::name::CONTAINER_SEPARATOR),
            None => false,
        }
    }

    /// May this peer call the query service (list findings and hosts, explain)? Readers only:
    /// a collector's key sits on every host, so it must not read the whole fleet's connections.
    pub fn may_read(&self) -> bool {
        matches!(self.role, Role::Reader { .. })
    }

    /// Is `at` within `not_before..=not_after`?
    pub fn valid_at(&self, at: SystemTime) -> bool {
        self.not_before <= at && at <= self.not_after
    }
}

/// Why a certificate gives no halfopen role. Every message names the certificate (its subject)
/// and what the issuer must set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Not a DER X.509 certificate (or bytes after it).
    #[error("the peer certificate is not a DER X.509 certificate: {detail}")]
    Der {
        /// What the parser said.
        detail: String,
    },
    /// No subject OU starting with `halfopen-`.
    #[error(
        "certificate [{subject}] has no halfopen role: its subject needs exactly one OU of \
         halfopen-collector, halfopen-reader or halfopen-reconciler"
    )]
    NoRole {
        /// The certificate's subject.
        subject: String,
    },
    /// More than one subject OU starting with `halfopen-`.
    #[error(
        "certificate [{subject}] claims several halfopen roles ({found:?}): issue one certificate per role, \
         with exactly one halfopen-* OU"
    )]
    ConflictingRoles {
        /// The certificate's subject.
        subject: String,
        /// Every role OU found, in subject order.
        found: Vec<String>,
    },
    /// A subject OU starting with `halfopen-` that names no role (roles are lower case).
    #[error(
        "certificate [{subject}] has OU {ou:?}, which is no halfopen role: use halfopen-collector, \
         halfopen-reader or halfopen-reconciler (lower case)"
    )]
    UnknownRole {
        /// The certificate's subject.
        subject: String,
        /// The OU value.
        ou: String,
    },
    /// A collector or reader certificate without a CN.
    #[error("certificate [{subject}] is a {role_ou} certificate without a CN: set CN to the {wanted}")]
    NoCommonName {
        /// The certificate's subject.
        subject: String,
        /// The role OU found.
        role_ou: &'static str,
        /// What the CN must hold.
        wanted: &'static str,
    },
    /// A collector or reader certificate with several CNs: which one is the identity?
    #[error("certificate [{subject}] has several CNs: a {role_ou} certificate needs exactly one")]
    ConflictingCommonNames {
        /// The certificate's subject.
        subject: String,
        /// The role OU found.
        role_ou: &'static str,
    },
    /// The CN is not a UTF8String, PrintableString or IA5String.
    #[error(
        "certificate [{subject}]: the CN is not a UTF8String, PrintableString or IA5String; \
         issue it with a UTF8String CN (OpenSSL's default)"
    )]
    CommonNameNotText {
        /// The certificate's subject.
        subject: String,
    },
    /// The CN does not satisfy the name rule (empty, control characters, `/`, too long...).
    #[error("certificate [{subject}]: {source}")]
    BadIdentity {
        /// The certificate's subject.
        subject: String,
        /// What is wrong with the CN.
        source: NameError,
    },
    /// An EKU extension without the purpose the role needs.
    #[error(
        "certificate [{subject}] has an extended key usage without {needed}, which a {role_ou} certificate \
         needs: issue it with extendedKeyUsage = {needed}"
    )]
    WrongKeyPurpose {
        /// The certificate's subject.
        subject: String,
        /// The role OU found.
        role_ou: &'static str,
        /// The purpose required.
        needed: KeyPurpose,
    },
    /// A CA certificate (basicConstraints cA TRUE) presented as a peer.
    #[error(
        "certificate [{subject}] is a CA certificate (basicConstraints CA:TRUE); a peer presents an \
         end-entity certificate with CA:FALSE"
    )]
    IsCa {
        /// The certificate's subject.
        subject: String,
    },
    /// A duplicated or malformed extension that the role depends on.
    #[error("certificate [{subject}]: {detail}")]
    Extension {
        /// The certificate's subject.
        subject: String,
        /// What the parser said.
        detail: String,
    },
}

/// Escape everything outside printable ASCII and cut to [`MAX_SUBJECT_CHARS`].
pub(crate) fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_SUBJECT_CHARS));
    for (n, c) in s.chars().enumerate() {
        if n == MAX_SUBJECT_CHARS {
            out.push('…');
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

pub(crate) fn system_time(t: ASN1Time) -> SystemTime {
    let secs = t.timestamp();
    let abs = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(abs)
    } else {
        UNIX_EPOCH.checked_sub(abs)
    };
    // X.509 times are years 0000-9999, which SystemTime holds on every 64-bit platform; clamp
    // rather than fail on the rest.
    at.unwrap_or(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 / 2)
    } else {
        UNIX_EPOCH
    })
}

/// Read the role and identity of a peer from its end-entity certificate (DER, as rustls and
/// tonic's `Request::peer_certs()` give it: the first certificate of the chain).
///
/// Rules, in order:
/// 1. the bytes are exactly one DER X.509 certificate;
/// 2. exactly one subject OU starts with `halfopen-` (ASCII case-insensitive; other OUs are
///    ignored) and it is one of [`OU_COLLECTOR`], [`OU_READER`], [`OU_RECONCILER`] exactly;
/// 3. a collector or reader has exactly one CN, a text string that passes [`validate_name`]
///    (so no empty name, no control characters or whitespace, no `/`); the reconciler's CN is
///    not read;
/// 4. it is not a CA (basicConstraints cA TRUE);
/// 5. if it has an extended key usage extension, that lists clientAuth (collector, reader) or
///    serverAuth (reconciler) — RFC 5280 §4.2.1.12, as rustls-webpki applies it.
///
/// Signatures, the chain and the validity dates are the handshake's job, not this function's.
///
/// Errors: [`PeerError`], one variant per broken rule.
pub fn peer_from_der(der: &[u8]) -> Result<Peer, PeerError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PeerError::Der { detail: e.to_string() })?;
    if !rest.is_empty() {
        return Err(PeerError::Der {
            detail: format!("{} bytes follow the certificate", rest.len()),
        });
    }
    peer_from_parsed(&cert)
}

pub(crate) fn subject_of(cert: &X509Certificate<'_>) -> String {
    sanitize(&cert.subject().to_string())
}

pub(crate) fn peer_from_parsed(cert: &X509Certificate<'_>) -> Result<Peer, PeerError> {
    let subject = subject_of(cert);

    // Rule 2: the role.
    let claims: Vec<String> = cert
        .subject()
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok())
        .filter(|ou| {
            ou.len() >= ROLE_PREFIX.len()
                && ou.as_bytes()[..ROLE_PREFIX.len()].eq_ignore_ascii_case(ROLE_PREFIX.as_bytes())
        })
        .map(sanitize)
        .collect();
    let role_ou: &'static str = match claims.as_slice() {
        [] => return Err(PeerError::NoRole { subject }),
        [one] => match one.as_str() {
            OU_COLLECTOR => OU_COLLECTOR,
            OU_READER => OU_READER,
            OU_RECONCILER => OU_RECONCILER,
            _ => {
                return Err(PeerError::UnknownRole {
                    subject,
                    ou: one.clone(),
                })
            }
        },
        _ => return Err(PeerError::ConflictingRoles { subject, found: claims }),
    };

    // Rule 3: the identity.
    let identity = |kind: NameKind, wanted: &'static str| -> Result<String, PeerError> {
        let mut cns = cert.subject().iter_common_name();
        let Some(cn) = cns.next() else {
            return Err(PeerError::NoCommonName {
                subject: subject.clone(),
                role_ou,
                wanted,
            });
        };
        if cns.next().is_some() {
            return Err(PeerError::ConflictingCommonNames {
                subject: subject.clone(),
                role_ou,
            });
        }
        let cn = cn.as_str().map_err(|_| PeerError::CommonNameNotText {
            subject: subject.clone(),
        })?;
        validate_name(cn, kind).map_err(|source| PeerError::BadIdentity {
            subject: subject.clone(),
            source,
        })?;
        Ok(cn.to_string())
    };
    let role = match role_ou {
        OU_COLLECTOR => Role::Collector {
            host: identity(NameKind::CertHost, "collector's host id")?,
        },
        OU_READER => Role::Reader {
            name: identity(NameKind::ReaderName, "reader's name")?,
        },
        _ => Role::Reconciler,
    };

    // Rule 4: an end entity.
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err(PeerError::IsCa { subject }),
        Ok(_) => {}
        Err(e) => {
            return Err(PeerError::Extension {
                subject,
                detail: format!("basicConstraints: {e}"),
            })
        }
    }

    // Rule 5: the key purpose, if restricted.
    let needed = role.key_purpose();
    match cert.extended_key_usage() {
        Ok(Some(eku)) => {
            let has = match needed {
                KeyPurpose::ClientAuth => eku.value.client_auth,
                KeyPurpose::ServerAuth => eku.value.server_auth,
            };
            if !has {
                return Err(PeerError::WrongKeyPurpose {
                    subject,
                    role_ou,
                    needed,
                });
            }
        }
        Ok(None) => {}
        Err(e) => {
            return Err(PeerError::Extension {
                subject,
                detail: format!("extendedKeyUsage: {e}"),
            })
        }
    }

    let validity = cert.validity();
    Ok(Peer {
        role,
        subject,
        serial: cert.raw_serial_as_string(),
        not_before: system_time(validity.not_before),
        not_after: system_time(validity.not_after),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::name::NameProblem;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };

    /// A self-signed certificate with the given subject attributes (in order), EKUs and CA flag:
    /// peer_from_der does not look at the issuer, so self-signed is enough here.
    fn cert(attrs: &[(DnType, DnValue)], ekus: &[ExtendedKeyUsagePurpose], ca: bool) -> Vec<u8> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for (t, v) in attrs {
            dn.push(t.clone(), v.clone());
        }
        p.distinguished_name = dn;
        p.extended_key_usages = ekus.to_vec();
        p.is_ca = if ca {
            IsCa::Ca(BasicConstraints::Unconstrained)
        } else {
            IsCa::ExplicitNoCa
        };
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    fn ou(s: &str) -> (DnType, DnValue) {
        (DnType::OrganizationalUnitName, DnValue::from(s))
    }
    /// A second OU: rcgen keeps one value per DnType, a custom type with the OU's OID is another.
    fn ou2(s: &str) -> (DnType, DnValue) {
        (DnType::CustomDnType(vec![2, 5, 4, 11]), DnValue::from(s))
    }
    fn cn(s: &str) -> (DnType, DnValue) {
        (DnType::CommonName, DnValue::from(s))
    }
    fn cn2(s: &str) -> (DnType, DnValue) {
        (DnType::CustomDnType(vec![2, 5, 4, 3]), DnValue::from(s))
    }
    const CLIENT: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ClientAuth];
    const SERVER: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth];

    #[test]
    fn each_role_is_read_with_its_identity() {
        let p = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("web-1")], CLIENT, false)).unwrap();
        assert_eq!(p.role, Role::Collector { host: "web-1".into() });
        assert_eq!(p.subject, "OU=halfopen-collector, CN=web-1");
        assert!(p.not_before < p.not_after);
        assert!(!p.serial.is_empty());
        let p = peer_from_der(&cert(&[ou(OU_READER), cn("alice")], CLIENT, false)).unwrap();
        assert_eq!(p.role, Role::Reader { name: "alice".into() });
        let p = peer_from_der(&cert(&[ou(OU_RECONCILER), cn("::1")], SERVER, false)).unwrap();
        assert_eq!(p.role, Role::Reconciler);
    }

    #[test]
    fn other_ous_are_ignored_and_order_does_not_matter() {
        let attrs = [
            (DnType::OrganizationName, DnValue::from("Example Corp")),
            cn("db-7"),
            ou("Platform"),
            ou2(OU_COLLECTOR),
        ];
        let p = peer_from_der(&cert(&attrs, CLIENT, false)).unwrap();
        assert_eq!(p.role, Role::Collector { host: "db-7".into() });
    }

    #[test]
    fn printable_and_ia5_strings_are_read_too() {
        let attrs = [
            (
                DnType::OrganizationalUnitName,
                DnValue::PrintableString("halfopen-collector".try_into().unwrap()),
            ),
            (DnType::CommonName, DnValue::Ia5String("web-2".try_into().unwrap())),
        ];
        let p = peer_from_der(&cert(&attrs, CLIENT, false)).unwrap();
        assert_eq!(p.role, Role::Collector { host: "web-2".into() });
    }

    #[test]
    fn no_role_is_refused() {
        let e = peer_from_der(&cert(&[ou("Platform"), cn("web-1")], CLIENT, false)).unwrap_err();
        assert_eq!(
            e,
            PeerError::NoRole {
                subject: "OU=Platform, CN=web-1".into()
            }
        );
        let e = peer_from_der(&cert(&[cn("web-1")], CLIENT, false)).unwrap_err();
        assert!(matches!(e, PeerError::NoRole { .. }), "{e}");
    }

    #[test]
    fn two_roles_are_refused_even_when_equal() {
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), ou2(OU_READER), cn("x")], CLIENT, false)).unwrap_err();
        assert!(
            matches!(&e, PeerError::ConflictingRoles { found, .. } if found == &["halfopen-collector", "halfopen-reader"]),
            "{e}"
        );
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), ou2(OU_COLLECTOR), cn("x")], CLIENT, false)).unwrap_err();
        assert!(matches!(e, PeerError::ConflictingRoles { .. }), "{e}");
    }

    #[test]
    fn unknown_or_miscased_roles_are_refused() {
        let e = peer_from_der(&cert(&[ou("halfopen-admin"), cn("x")], CLIENT, false)).unwrap_err();
        assert_eq!(
            e,
            PeerError::UnknownRole {
                subject: "OU=halfopen-admin, CN=x".into(),
                ou: "halfopen-admin".into()
            }
        );
        let e = peer_from_der(&cert(&[ou("HalfOpen-Collector"), cn("x")], CLIENT, false)).unwrap_err();
        assert!(matches!(e, PeerError::UnknownRole { .. }), "{e}");
    }

    #[test]
    fn identity_problems_are_refused() {
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR)], CLIENT, false)).unwrap_err();
        assert!(
            matches!(
                e,
                PeerError::NoCommonName {
                    role_ou: OU_COLLECTOR,
                    ..
                }
            ),
            "{e}"
        );
        let e = peer_from_der(&cert(&[ou(OU_READER), cn("")], CLIENT, false)).unwrap_err();
        assert!(
            matches!(&e, PeerError::BadIdentity { source, .. } if source.problem == NameProblem::Empty),
            "{e}"
        );
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("web\u{7}1")], CLIENT, false)).unwrap_err();
        assert!(
            matches!(&e, PeerError::BadIdentity { source, .. } if source.problem == NameProblem::BadChar { found: '\u{7}', at: 3 }),
            "{e}"
        );
        // the message escapes the control character
        assert!(!e.to_string().contains('\u{7}'), "{e}");
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("web-1/redis")], CLIENT, false)).unwrap_err();
        assert!(
            matches!(&e, PeerError::BadIdentity { source, .. } if source.problem == NameProblem::Slash),
            "{e}"
        );
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("a"), cn2("b")], CLIENT, false)).unwrap_err();
        assert!(matches!(e, PeerError::ConflictingCommonNames { .. }), "{e}");
        let bmp = (DnType::CommonName, DnValue::BmpString("web-1".try_into().unwrap()));
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), bmp], CLIENT, false)).unwrap_err();
        assert!(matches!(e, PeerError::CommonNameNotText { .. }), "{e}");
    }

    #[test]
    fn key_purpose_must_match_the_role_when_present() {
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("web-1")], SERVER, false)).unwrap_err();
        assert!(
            matches!(
                e,
                PeerError::WrongKeyPurpose {
                    needed: KeyPurpose::ClientAuth,
                    ..
                }
            ),
            "{e}"
        );
        let e = peer_from_der(&cert(&[ou(OU_RECONCILER), cn("r")], CLIENT, false)).unwrap_err();
        assert!(
            matches!(
                e,
                PeerError::WrongKeyPurpose {
                    needed: KeyPurpose::ServerAuth,
                    ..
                }
            ),
            "{e}"
        );
        // no EKU extension: unrestricted (RFC 5280 §4.2.1.12)
        let p = peer_from_der(&cert(&[ou(OU_READER), cn("bob")], &[], false)).unwrap();
        assert_eq!(p.role, Role::Reader { name: "bob".into() });
        // both purposes: fine for either
        let both = [ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        assert!(peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("h")], &both, false)).is_ok());
    }

    #[test]
    fn a_ca_certificate_is_no_peer() {
        let e = peer_from_der(&cert(&[ou(OU_COLLECTOR), cn("web-1")], CLIENT, true)).unwrap_err();
        assert!(matches!(e, PeerError::IsCa { .. }), "{e}");
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(matches!(peer_from_der(b""), Err(PeerError::Der { .. })));
        assert!(matches!(
            peer_from_der(b"-----BEGIN CERTIFICATE-----"),
            Err(PeerError::Der { .. })
        ));
        let mut der = cert(&[ou(OU_COLLECTOR), cn("web-1")], CLIENT, false);
        der.push(0);
        assert_eq!(
            peer_from_der(&der),
            Err(PeerError::Der {
                detail: "1 bytes follow the certificate".into()
            })
        );
    }

    #[test]
    fn subjects_are_escaped_and_bounded() {
        let attrs = [
            ou(OU_COLLECTOR),
            cn("web-1"),
            (DnType::OrganizationName, DnValue::from("Evil\u{1b}[2J\u{202e}")),
        ];
        let p = peer_from_der(&cert(&attrs, CLIENT, false)).unwrap();
        assert!(p.subject.is_ascii() && !p.subject.contains('\u{1b}'), "{}", p.subject);
        assert!(p.subject.contains("\\u{1b}[2J\\u{202e}"), "{}", p.subject);
        let long = sanitize(&"x".repeat(1000));
        assert_eq!(long.chars().count(), MAX_SUBJECT_CHARS + 1);
    }

    fn collector(host: &str) -> Peer {
        Peer {
            role: Role::Collector { host: host.into() },
            subject: String::new(),
            serial: String::new(),
            not_before: UNIX_EPOCH,
            not_after: UNIX_EPOCH + Duration::from_secs(1),
        }
    }

    #[test]
    fn a_collector_may_collect_for_its_host_and_its_containers_only() {
        let p = collector("web");
        assert!(p.may_collect_for("web"));
        assert!(p.may_collect_for("web/redis"));
        assert!(p.may_collect_for("web/ns/inner"));
        for other in [
            "web2",
            "we",
            "Web",
            "web.example",
            "web-1/x",
            "",
            "web/",
            "web//x",
            "/web",
            "web/ x",
            "web/..",
        ] {
            assert!(!p.may_collect_for(other), "{other:?}");
        }
        assert!(!p.may_read());
        // a hand-made peer with an empty host collects for nothing
        assert!(!collector("").may_collect_for("x"));
    }

    #[test]
    fn readers_read_and_collect_nothing_and_the_reconciler_does_neither() {
        let mut p = collector("web");
        p.role = Role::Reader { name: "web".into() };
        assert!(p.may_read());
        assert!(!p.may_collect_for("web"));
        p.role = Role::Reconciler;
        assert!(!p.may_read());
        assert!(!p.may_collect_for("web"));
    }

    #[test]
    fn valid_at_is_inclusive() {
        let p = collector("web");
        assert!(p.valid_at(UNIX_EPOCH));
        assert!(p.valid_at(UNIX_EPOCH + Duration::from_secs(1)));
        assert!(!p.valid_at(UNIX_EPOCH + Duration::from_secs(2)));
    }

    mod never_panics {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
            #[test]
            fn on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = peer_from_der(&bytes);
            }
        }

        fn valid() -> &'static [u8] {
            static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            DER.get_or_init(|| cert(&[ou(OU_COLLECTOR), cn("web-1"), ou("Platform")], CLIENT, false))
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]
            /// Random bytes rarely get past the outer SEQUENCE; a real certificate with a few bytes
            /// changed, cut or extended reaches the name and extension parsers.
            #[test]
            fn on_mutated_certificates(
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                cut in any::<prop::sample::Index>(),
                do_cut in any::<bool>(),
            ) {
                let mut der = valid().to_vec();
                for (i, b) in edits {
                    let i = i.index(der.len());
                    der[i] = b;
                }
                if do_cut {
                    der.truncate(cut.index(der.len()));
                }
                if let Ok(p) = peer_from_der(&der) {
                    // whatever survives still satisfies the rules
                    if let Some(id) = p.role.identity() {
                        prop_assert!(validate_name(id, NameKind::CertHost).is_ok());
                    }
                }
            }
        }
    }
}
