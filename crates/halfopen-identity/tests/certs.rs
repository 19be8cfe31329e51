//! `init_ca` and `issue` on a real file system: the files, their modes, refusing to overwrite,
//! reading each certificate's role back, and bad inputs giving typed errors.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use halfopen_identity::*;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn collector(host: &str) -> Issue {
    Issue::Collector { host: host.into() }
}

#[test]
fn init_then_issue_each_kind_and_read_the_role_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs"); // missing: created 0700
    let ca = init_ca(&dir, &CaOptions::default()).unwrap();
    assert_eq!(ca.cert, dir.join("ca.pem"));
    assert_eq!(ca.key, dir.join("ca-key.pem"));
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&ca.key), 0o600);
    assert_eq!(mode(&ca.cert), 0o644);
    let years = ca.not_after.duration_since(SystemTime::now()).unwrap().as_secs() / (365 * 86_400);
    assert_eq!(years, 9, "10 years of 365 days minus a moment (leap days aside)");

    let cases = [
        (
            Issue::Reconciler {
                names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            },
            "localhost",
            Role::Reconciler,
        ),
        (collector("web-1"), "web-1", Role::Collector { host: "web-1".into() }),
        (
            Issue::Reader { name: "alice".into() },
            "alice",
            Role::Reader { name: "alice".into() },
        ),
    ];
    for (what, stem, role) in cases {
        let out = issue(&dir, &what, &IssueOptions::default()).unwrap();
        assert_eq!(out.cert, dir.join(format!("{stem}.pem")));
        assert_eq!(out.key, dir.join(format!("{stem}-key.pem")));
        assert_eq!(out.ca, dir.join("ca.pem"));
        assert_eq!(mode(&out.key), 0o600, "{stem}");
        assert_eq!(mode(&out.cert), 0o644, "{stem}");
        assert_eq!(out.role, role);
        assert!(!out.cut_to_ca);
        // 1 year from now, starting 5 minutes ago
        let now = SystemTime::now();
        let left = out.not_after.duration_since(now).unwrap();
        assert!(
            left > Duration::from_secs(365 * 86_400 - 60) && left <= Duration::from_secs(365 * 86_400),
            "{left:?}"
        );
        let before = now.duration_since(out.not_before).unwrap();
        assert!(
            before >= BACKDATE && before < BACKDATE + Duration::from_secs(60),
            "{before:?}"
        );

        // read back from the file, as a peer would be read
        let peer = peer_from_pem_file(&out.cert).unwrap();
        assert_eq!(peer.role, role);
        assert_eq!(peer.serial, out.serial);
        assert_eq!(peer.subject, format!("OU={}, CN={stem}", role.ou()));
        // and the files load for TLS: key matches certificate
        let tls = load_tls_pem(&TlsFiles::in_dir(&dir, stem)).unwrap();
        assert_eq!(tls.key_mode, 0o600);
        assert!(!tls.key_exposed());
        assert_eq!(tls.own_peer(&TlsFiles::in_dir(&dir, stem)).unwrap().role, role);
        assert_eq!(tls.ca_pem, fs::read(dir.join("ca.pem")).unwrap());
    }

    // The collector certificate authorises its host and its containers, nothing else.
    let peer = peer_from_pem_file(&dir.join("web-1.pem")).unwrap();
    assert!(peer.may_collect_for("web-1") && peer.may_collect_for("web-1/redis"));
    assert!(!peer.may_collect_for("web-10") && !peer.may_read());
    assert!(peer_from_pem_file(&dir.join("alice.pem")).unwrap().may_read());

    // Nothing but what was asked for is in the directory (no temporary files left).
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "alice-key.pem",
            "alice.pem",
            "ca-key.pem",
            "ca.pem",
            "localhost-key.pem",
            "localhost.pem",
            "web-1-key.pem",
            "web-1.pem"
        ]
    );
}

#[test]
fn the_reconciler_certificate_carries_its_names_as_sans() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), &CaOptions::default()).unwrap();
    let names = vec!["reconciler.example".to_string(), "198.18.0.10".to_string()];
    let out = issue(tmp.path(), &Issue::Reconciler { names }, &IssueOptions::default()).unwrap();
    assert_eq!(out.cert, tmp.path().join("reconciler.example.pem"));
    let tls = load_tls_pem(&TlsFiles::in_dir(tmp.path(), "reconciler.example")).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&tls.cert_der).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    let got: Vec<String> = san.value.general_names.iter().map(|n| n.to_string()).collect();
    assert_eq!(got, ["DNSName(reconciler.example)", "IPAddress(c6:12:00:0a)"]); // 198.18.0.10
    let eku = parsed.extended_key_usage().unwrap().unwrap();
    assert!(eku.value.server_auth && !eku.value.client_auth);
    assert!(!parsed.is_ca());
}

#[test]
fn an_existing_ca_is_not_overwritten_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir, &CaOptions::default()).unwrap();
    let key_before = fs::read(dir.join("ca-key.pem")).unwrap();
    let e = init_ca(dir, &CaOptions::default()).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Exists { path, what: "a CA certificate" } if path == &dir.join("ca.pem")),
        "{e}"
    );
    assert!(
        e.to_string().contains("refusing to overwrite it") && e.to_string().contains("--force"),
        "{e}"
    );
    assert_eq!(fs::read(dir.join("ca-key.pem")).unwrap(), key_before);

    // only the key left: still refused, and nothing written
    fs::remove_file(dir.join("ca.pem")).unwrap();
    let e = init_ca(dir, &CaOptions::default()).unwrap_err();
    assert!(
        matches!(
            &e,
            IdentityError::Exists {
                what: "a CA private key",
                ..
            }
        ),
        "{e}"
    );
    assert!(!dir.join("ca.pem").exists());

    let forced = init_ca(
        dir,
        &CaOptions {
            force: true,
            ..CaOptions::default()
        },
    )
    .unwrap();
    assert_ne!(fs::read(&forced.key).unwrap(), key_before);
    assert_eq!(mode(&forced.key), 0o600);
}

#[test]
fn an_existing_certificate_or_key_is_not_overwritten_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir, &CaOptions::default()).unwrap();
    let first = issue(dir, &collector("db"), &IssueOptions::default()).unwrap();
    let key = fs::read(&first.key).unwrap();
    let e = issue(dir, &collector("db"), &IssueOptions::default()).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Exists { path, .. } if path == &first.cert),
        "{e}"
    );
    // a reader of the same name would take the same files: refused too
    let e = issue(dir, &Issue::Reader { name: "db".into() }, &IssueOptions::default()).unwrap_err();
    assert!(matches!(e, IdentityError::Exists { .. }), "{e}");
    // a key alone (certificate lost) is not overwritten either
    fs::remove_file(&first.cert).unwrap();
    let e = issue(dir, &collector("db"), &IssueOptions::default()).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Exists { path, what: "a private key" } if path == &first.key),
        "{e}"
    );
    assert_eq!(fs::read(&first.key).unwrap(), key);

    let again = issue(
        dir,
        &collector("db"),
        &IssueOptions {
            force: true,
            ..IssueOptions::default()
        },
    )
    .unwrap();
    assert_ne!(fs::read(&again.key).unwrap(), key);
    assert_eq!(mode(&again.key), 0o600);
    load_tls_pem(&TlsFiles::in_dir(dir, "db")).unwrap();
}

#[test]
fn out_dir_gets_the_pair_and_a_copy_of_the_ca_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    init_ca(&dir, &CaOptions::default()).unwrap();
    let out = tmp.path().join("for-web-2");
    let opts = IssueOptions {
        out_dir: Some(out.clone()),
        ..IssueOptions::default()
    };
    let got = issue(&dir, &collector("web-2"), &opts).unwrap();
    assert_eq!(got.ca, out.join("ca.pem"));
    assert_eq!(
        fs::read(out.join("ca.pem")).unwrap(),
        fs::read(dir.join("ca.pem")).unwrap()
    );
    assert!(
        !out.join("ca-key.pem").exists(),
        "the CA key never leaves the CA directory"
    );
    assert_eq!(mode(&out), 0o700);
    assert!(!dir.join("web-2.pem").exists());
    load_tls_pem(&TlsFiles::in_dir(&out, "web-2")).unwrap();
    // a second certificate into the same out dir: the identical ca.pem is fine
    issue(&dir, &Issue::Reader { name: "ops".into() }, &opts).unwrap();
    // a different ca.pem there is not replaced silently
    fs::write(out.join("ca.pem"), b"other").unwrap();
    let e = issue(&dir, &collector("web-3"), &opts).unwrap_err();
    assert!(
        matches!(
            &e,
            IdentityError::Exists {
                what: "a different CA certificate",
                ..
            }
        ),
        "{e}"
    );
    assert!(!out.join("web-3-key.pem").exists(), "nothing written when refused");
}

#[test]
fn bad_names_give_typed_errors_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir, &CaOptions::default()).unwrap();
    let o = IssueOptions::default();
    let e = issue(dir, &collector(""), &o).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Name(n) if n.problem == NameProblem::Empty && n.kind == NameKind::CertHost),
        "{e}"
    );
    let e = issue(dir, &collector("web\n1"), &o).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Name(n) if n.problem == NameProblem::BadChar { found: '\n', at: 3 }),
        "{e}"
    );
    let e = issue(dir, &collector("web-1/redis"), &o).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Name(n) if n.problem == NameProblem::Slash),
        "{e}"
    );
    let e = issue(dir, &collector("../etc"), &o).unwrap_err();
    assert!(matches!(&e, IdentityError::Name(_)), "{e}");
    let e = issue(
        dir,
        &Issue::Reader {
            name: "bob smith".into(),
        },
        &o,
    )
    .unwrap_err();
    assert!(
        matches!(&e, IdentityError::Name(n) if n.kind == NameKind::ReaderName),
        "{e}"
    );
    let e = issue(dir, &Issue::Reconciler { names: vec![] }, &o).unwrap_err();
    assert!(matches!(e, IdentityError::NoServerNames), "{e}");
    let e = issue(
        dir,
        &Issue::Reconciler {
            names: vec!["ok.example".into(), "bad name".into()],
        },
        &o,
    )
    .unwrap_err();
    assert!(
        matches!(&e, IdentityError::ServerName { name } if name == "bad name"),
        "{e}"
    );
    for reserved in ["ca", "web-key"] {
        let e = issue(dir, &collector(reserved), &o).unwrap_err();
        assert!(
            matches!(&e, IdentityError::Validity { detail } if detail.contains("collide")),
            "{reserved}: {e}"
        );
    }
    let e = issue(
        dir,
        &collector("web-1"),
        &IssueOptions {
            validity: Duration::ZERO,
            ..o.clone()
        },
    )
    .unwrap_err();
    assert!(matches!(e, IdentityError::Validity { .. }), "{e}");
    let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["ca-key.pem", "ca.pem"]);
}

#[test]
fn issuing_without_a_ca_says_to_run_init() {
    let tmp = tempfile::tempdir().unwrap();
    let e = issue(tmp.path(), &collector("web-1"), &IssueOptions::default()).unwrap_err();
    assert!(
        matches!(&e, IdentityError::NoCa { missing, .. } if missing == &tmp.path().join("ca.pem")),
        "{e}"
    );
    assert!(e.to_string().contains("halfopen certs init --dir"), "{e}");
}

#[test]
fn a_certificate_never_outlives_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(
        tmp.path(),
        &CaOptions {
            validity: Duration::from_secs(30 * 86_400),
            ..CaOptions::default()
        },
    )
    .unwrap();
    let out = issue(tmp.path(), &collector("web-1"), &IssueOptions::default()).unwrap();
    assert!(out.cut_to_ca);
    assert_eq!(out.not_after, ca.not_after);
    // one that would start after the CA ends cannot be issued
    let late = IssueOptions {
        not_before: Some(ca.not_after + Duration::from_secs(1)),
        ..IssueOptions::default()
    };
    let e = issue(tmp.path(), &collector("web-2"), &late).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Validity { detail } if detail.contains("make a new CA")),
        "{e}"
    );
}

#[test]
fn a_key_from_another_issue_is_caught_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir, &CaOptions::default()).unwrap();
    issue(dir, &collector("web-1"), &IssueOptions::default()).unwrap();
    issue(dir, &collector("web-2"), &IssueOptions::default()).unwrap();
    let files = TlsFiles {
        key: dir.join("web-2-key.pem"),
        ..TlsFiles::in_dir(dir, "web-1")
    };
    let e = load_tls_pem(&files).unwrap_err();
    assert!(
        matches!(&e, IdentityError::KeyMismatch { key, .. } if key == &dir.join("web-2-key.pem")),
        "{e}"
    );
    // a key given as the certificate, a missing file: named in the error
    let files = TlsFiles {
        cert: dir.join("web-1-key.pem"),
        ..TlsFiles::in_dir(dir, "web-1")
    };
    let e = load_tls_pem(&files).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Pem { path, .. } if path == &dir.join("web-1-key.pem")),
        "{e}"
    );
    let files = TlsFiles {
        ca: dir.join("nope.pem"),
        ..TlsFiles::in_dir(dir, "web-1")
    };
    let e = load_tls_pem(&files).unwrap_err();
    assert!(
        matches!(&e, IdentityError::Io { action: "read", path, .. } if path == &dir.join("nope.pem")),
        "{e}"
    );
    // a CA file that carries the CA's key is refused: that key must not be on peers
    let leaked = dir.join("leaked-ca.pem");
    let mut bytes = fs::read(dir.join("ca.pem")).unwrap();
    bytes.extend(fs::read(dir.join("ca-key.pem")).unwrap());
    fs::write(&leaked, bytes).unwrap();
    let e = load_tls_pem(&TlsFiles {
        ca: leaked.clone(),
        ..TlsFiles::in_dir(dir, "web-1")
    })
    .unwrap_err();
    assert!(
        matches!(&e, IdentityError::Pem { path, detail, .. } if path == &leaked && detail.contains("must never leave the CA")),
        "{e}"
    );
    // a loose key mode is reported
    fs::set_permissions(dir.join("web-1-key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(load_tls_pem(&TlsFiles::in_dir(dir, "web-1")).unwrap().key_exposed());
}

#[test]
fn a_ca_key_that_does_not_match_the_ca_certificate_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init_ca(&a, &CaOptions::default()).unwrap();
    init_ca(&b, &CaOptions::default()).unwrap();
    fs::copy(b.join("ca-key.pem"), a.join("ca-key.pem")).unwrap();
    let e = issue(&a, &collector("web-1"), &IssueOptions::default()).unwrap_err();
    assert!(matches!(e, IdentityError::KeyMismatch { .. }), "{e}");
}

#[test]
fn validate_host_id_is_the_cli_rule() {
    assert!(validate_host_id("web-1/redis").is_ok());
    let e = validate_host_id("").unwrap_err();
    assert_eq!(
        e.to_string(),
        "host id \"\" is not valid: it is empty; use ASCII letters, digits and . _ - : @"
    );
}
