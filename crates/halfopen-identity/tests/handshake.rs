//! Real mutual-TLS handshakes over loopback TCP with rustls (ring provider, as tonic's
//! `tls-ring`): the server requires a client certificate from its CA. Certificates made by
//! `init_ca`/`issue` are accepted and their roles read from what the server sees; certificates
//! from another CA, expired or not yet valid are refused by the handshake itself.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::{client_config, handshake, server_config, tls_error};
use halfopen_identity::*;
use rustls::{CertificateError, Error as TlsError};

const DAY: Duration = Duration::from_secs(86_400);

/// A CA in `dir` with a reconciler certificate for localhost and 127.0.0.1.
fn ca_with_reconciler(dir: &Path) {
    init_ca(dir, &CaOptions::default()).unwrap();
    let names = vec!["localhost".into(), "127.0.0.1".into()];
    issue(dir, &Issue::Reconciler { names }, &IssueOptions::default()).unwrap();
}

fn reconciler(dir: &Path) -> TlsFiles {
    TlsFiles::in_dir(dir, "localhost")
}

fn server_error(o: &common::Outcome) -> &TlsError {
    let e = o.server.as_ref().expect_err("the server must refuse the client");
    tls_error(e).unwrap_or_else(|| panic!("not a TLS error: {e}"))
}

#[test]
fn collector_and_reader_certificates_are_accepted_and_their_roles_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ca_with_reconciler(dir);
    issue(
        dir,
        &Issue::Collector { host: "web-1".into() },
        &IssueOptions::default(),
    )
    .unwrap();
    issue(dir, &Issue::Reader { name: "alice".into() }, &IssueOptions::default()).unwrap();
    let server = server_config(&reconciler(dir));

    for (stem, dial, role) in [
        ("web-1", "127.0.0.1", Role::Collector { host: "web-1".into() }),
        ("alice", "localhost", Role::Reader { name: "alice".into() }),
    ] {
        let o = handshake(server.clone(), client_config(&TlsFiles::in_dir(dir, stem)), dial);
        let seen = o.server.unwrap_or_else(|e| panic!("{stem}: server: {e}"));
        let peer = peer_from_der(&seen[0]).unwrap();
        assert_eq!(peer.role, role, "{stem}");
        assert_eq!(
            peer.serial,
            peer_from_pem_file(&dir.join(format!("{stem}.pem"))).unwrap().serial
        );
        // and the client, for its part, sees the reconciler
        let server_chain = o.client.unwrap_or_else(|e| panic!("{stem}: client: {e}"));
        assert_eq!(peer_from_der(&server_chain[0]).unwrap().role, Role::Reconciler);
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused_by_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    init_ca(
        &ours,
        &CaOptions {
            name: Some("halfopen CA".into()),
            ..CaOptions::default()
        },
    )
    .unwrap();
    let names = vec!["localhost".into()];
    issue(&ours, &Issue::Reconciler { names }, &IssueOptions::default()).unwrap();
    let server = server_config(&reconciler(&ours));

    // Another CA with another name (the default one is unique), and an impostor CA that copies
    // our CA's name: the first is not found among the roots, the second fails the signature.
    for (name, expected) in [
        (None, CertificateError::UnknownIssuer),
        (Some("halfopen CA".to_string()), CertificateError::BadSignature),
    ] {
        let theirs = tmp.path().join(format!("theirs-{}", name.is_some()));
        init_ca(
            &theirs,
            &CaOptions {
                name,
                ..CaOptions::default()
            },
        )
        .unwrap();
        // Same subject as a real collector of ours, but another CA signed it.
        issue(
            &theirs,
            &Issue::Collector { host: "web-1".into() },
            &IssueOptions::default(),
        )
        .unwrap();
        // The impostor trusts our CA for the server, so only its own certificate is at fault.
        std::fs::copy(ours.join("ca.pem"), theirs.join("ca.pem")).unwrap();
        let o = handshake(
            server.clone(),
            client_config(&TlsFiles::in_dir(&theirs, "web-1")),
            "localhost",
        );
        assert_eq!(server_error(&o), &TlsError::InvalidCertificate(expected));
        let client = o.client.expect_err("the client must see the refusal");
        assert!(client.to_string().contains("alert"), "{client}");
    }
}

#[test]
fn during_a_ca_rotation_a_bundle_of_both_cas_accepts_both() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    ca_with_reconciler(&old);
    init_ca(&new, &CaOptions::default()).unwrap();
    issue(
        &old,
        &Issue::Collector { host: "web-1".into() },
        &IssueOptions::default(),
    )
    .unwrap();
    issue(
        &new,
        &Issue::Collector { host: "web-2".into() },
        &IssueOptions::default(),
    )
    .unwrap();
    // The reconciler trusts old + new; clients keep trusting the old CA for the server.
    let mut bundle = std::fs::read(old.join("ca.pem")).unwrap();
    bundle.extend(std::fs::read(new.join("ca.pem")).unwrap());
    let bundle_path = tmp.path().join("bundle.pem");
    std::fs::write(&bundle_path, bundle).unwrap();
    let server = server_config(&TlsFiles {
        ca: bundle_path,
        ..reconciler(&old)
    });
    std::fs::copy(old.join("ca.pem"), new.join("ca.pem")).unwrap();
    for (dir, host) in [(&old, "web-1"), (&new, "web-2")] {
        let o = handshake(server.clone(), client_config(&TlsFiles::in_dir(dir, host)), "localhost");
        let seen = o.server.unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(
            peer_from_der(&seen[0]).unwrap().role,
            Role::Collector { host: host.into() }
        );
    }
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused_by_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ca_with_reconciler(dir);
    let now = SystemTime::now();
    let expired = IssueOptions {
        not_before: Some(now - 10 * DAY),
        validity: DAY,
        ..IssueOptions::default()
    };
    issue(dir, &Issue::Collector { host: "old".into() }, &expired).unwrap();
    let future = IssueOptions {
        not_before: Some(now + DAY),
        ..IssueOptions::default()
    };
    issue(dir, &Issue::Collector { host: "early".into() }, &future).unwrap();
    let server = server_config(&reconciler(dir));

    let o = handshake(
        server.clone(),
        client_config(&TlsFiles::in_dir(dir, "old")),
        "localhost",
    );
    assert!(
        matches!(
            server_error(&o),
            TlsError::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })
        ),
        "{:?}",
        o.server
    );
    assert!(o.client.is_err());

    let o = handshake(server, client_config(&TlsFiles::in_dir(dir, "early")), "localhost");
    assert!(
        matches!(
            server_error(&o),
            TlsError::InvalidCertificate(CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. })
        ),
        "{:?}",
        o.server
    );
    assert!(o.client.is_err());
}

#[test]
fn the_client_checks_the_reconciler_names_and_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ca_with_reconciler(dir);
    issue(
        dir,
        &Issue::Collector { host: "web-1".into() },
        &IssueOptions::default(),
    )
    .unwrap();
    let client = client_config(&TlsFiles::in_dir(dir, "web-1"));

    // A name the reconciler certificate does not carry.
    let o = handshake(server_config(&reconciler(dir)), client.clone(), "reconciler.other");
    let e = o.client.expect_err("wrong name must be refused");
    assert!(
        matches!(
            tls_error(&e),
            Some(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{e}"
    );

    // A collector certificate (clientAuth only) cannot pose as the reconciler.
    let o = handshake(server_config(&TlsFiles::in_dir(dir, "web-1")), client, "localhost");
    let e = o.client.expect_err("a client certificate is no server certificate");
    assert!(
        matches!(
            tls_error(&e),
            Some(TlsError::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            ))
        ),
        "{e}"
    );
}

#[test]
fn a_client_without_a_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ca_with_reconciler(dir);
    let pem = load_tls_pem(&reconciler(dir)).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem.ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    use rustls::pki_types::pem::PemObject;
    let anonymous = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let o = handshake(server_config(&reconciler(dir)), anonymous, "localhost");
    assert_eq!(server_error(&o), &TlsError::NoCertificatesPresented);
}
