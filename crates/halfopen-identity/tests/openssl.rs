//! An existing PKI can issue halfopen's fields: a CA made with the `openssl` CLI, certificates
//! issued by running the exact commands of the crate documentation, read back with
//! `peer_from_der` and accepted in a real mutual-TLS handshake. Also the other direction:
//! OpenSSL verifies and reads certificates made by `init_ca`/`issue`.
//!
//! Needs the `openssl` binary: missing, the tests fail when `CI` is `true`/`1` and are skipped
//! (with a message) otherwise.

mod common;

use std::path::Path;
use std::process::Command;

use common::{client_config, handshake, server_config};
use halfopen_identity::*;

/// The shell block between the `openssl-commands` markers of the crate documentation.
fn documented_commands() -> String {
    let lib = include_str!("../src/lib.rs");
    let begin = lib
        .find("<!-- openssl-commands: begin -->")
        .expect("begin marker in lib.rs");
    let end = lib
        .find("<!-- openssl-commands: end -->")
        .expect("end marker in lib.rs");
    let script: Vec<&str> = lib[begin..end]
        .lines()
        .skip(1)
        .map(|l| l.strip_prefix("//! ").or_else(|| l.strip_prefix("//!")).unwrap_or(l))
        .filter(|l| !l.starts_with("```"))
        .collect();
    let script = script.join("\n");
    assert!(script.contains("openssl x509 -req"), "{script}");
    script
}

fn have_openssl() -> bool {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            let ci = matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"));
            assert!(!ci, "the openssl CLI is required in CI (apt-get install openssl)");
            eprintln!("skipped: no openssl CLI on this machine (apt-get install openssl)");
            false
        }
    }
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "script failed:\n{script}\n---\n{text}");
    text
}

/// "Your" CA, made the way an OpenSSL-based PKI makes one.
fn openssl_ca(dir: &Path) {
    sh(
        dir,
        r#"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
             -keyout ca-key.pem -out ca.pem -days 3650 -subj "/O=Example Corp/CN=Example Ops CA" \
             -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>&1"#,
    );
}

/// A reconciler certificate for localhost/127.0.0.1 issued by the OpenSSL CA, as the crate
/// documentation describes it in prose.
fn openssl_reconciler(dir: &Path) {
    sh(
        dir,
        r#"cat > halfopen-server.ext <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout localhost-key.pem -out localhost.csr -subj "/OU=halfopen-reconciler/CN=localhost" 2>&1
openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca-key.pem -days 365 -sha256 \
    -extfile halfopen-server.ext -out localhost.pem 2>&1"#,
    );
}

#[test]
fn the_documented_openssl_commands_issue_certificates_halfopen_reads_and_accepts() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl_ca(dir);
    let printed = sh(dir, &documented_commands());
    // The subject check the documentation tells the CA to make prints what it promises.
    assert!(
        printed.contains("subject=OU = halfopen-collector, CN = web-1"),
        "{printed}"
    );
    assert!(
        printed.contains("subject=OU = halfopen-reader, CN = alice"),
        "{printed}"
    );

    let web = peer_from_pem_file(&dir.join("web-1.pem")).unwrap();
    assert_eq!(web.role, Role::Collector { host: "web-1".into() });
    assert!(web.may_collect_for("web-1/redis"));
    let alice = peer_from_pem_file(&dir.join("alice.pem")).unwrap();
    assert_eq!(alice.role, Role::Reader { name: "alice".into() });
    for stem in ["web-1", "alice"] {
        load_tls_pem(&TlsFiles::in_dir(dir, stem)).unwrap_or_else(|e| panic!("{stem}: {e}"));
    }

    openssl_reconciler(dir);
    assert_eq!(
        peer_from_pem_file(&dir.join("localhost.pem")).unwrap().role,
        Role::Reconciler
    );
    let server = server_config(&TlsFiles::in_dir(dir, "localhost"));
    for (stem, role) in [("web-1", web.role), ("alice", alice.role)] {
        let o = handshake(server.clone(), client_config(&TlsFiles::in_dir(dir, stem)), "127.0.0.1");
        let seen = o.server.unwrap_or_else(|e| panic!("{stem}: server: {e}"));
        assert_eq!(peer_from_der(&seen[0]).unwrap().role, role);
        o.client.unwrap_or_else(|e| panic!("{stem}: client: {e}"));
    }
}

#[test]
fn openssl_made_certificates_with_wrong_roles_are_refused() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl_ca(dir);
    let issue_with = |stem: &str, subj: &str, eku: &str| {
        sh(
            dir,
            &format!(
                r#"printf 'basicConstraints = critical, CA:FALSE\nextendedKeyUsage = {eku}\n' > {stem}.ext
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {stem}-key.pem -out {stem}.csr \
    -subj "{subj}" -multivalue-rdn 2>&1
openssl x509 -req -in {stem}.csr -CA ca.pem -CAkey ca-key.pem -days 1 -extfile {stem}.ext -out {stem}.pem 2>&1"#
            ),
        );
        peer_from_pem_file(&dir.join(format!("{stem}.pem")))
    };
    let peer_error = |r: Result<Peer, IdentityError>| match r {
        Err(IdentityError::Peer { source, .. }) => source,
        other => panic!("expected a PeerError, got {other:?}"),
    };
    let e = peer_error(issue_with(
        "two",
        "/OU=halfopen-collector/OU=halfopen-reader/CN=x",
        "clientAuth",
    ));
    assert!(
        matches!(&e, PeerError::ConflictingRoles { found, .. } if found.len() == 2),
        "{e}"
    );
    // two OUs in one multi-valued RDN are no loophole either
    let e = peer_error(issue_with(
        "mv",
        "/OU=halfopen-collector+OU=halfopen-reader/CN=x",
        "clientAuth",
    ));
    assert!(matches!(e, PeerError::ConflictingRoles { .. }), "{e}");
    let e = peer_error(issue_with("none", "/O=Example Corp/CN=web-1", "clientAuth"));
    assert!(matches!(e, PeerError::NoRole { .. }), "{e}");
    let e = peer_error(issue_with(
        "twocn",
        "/OU=halfopen-collector/CN=web-1/CN=web-2",
        "clientAuth",
    ));
    assert!(matches!(e, PeerError::ConflictingCommonNames { .. }), "{e}");
    let e = peer_error(issue_with("space", "/OU=halfopen-reader/CN=bob smith", "clientAuth"));
    assert!(matches!(e, PeerError::BadIdentity { .. }), "{e}");
    let e = peer_error(issue_with("srv", "/OU=halfopen-collector/CN=web-1", "serverAuth"));
    assert!(matches!(e, PeerError::WrongKeyPurpose { .. }), "{e}");
}

#[test]
fn a_sec1_key_made_by_openssl_ecparam_loads() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    openssl_ca(dir);
    sh(
        dir,
        r#"openssl ecparam -name prime256v1 -genkey -noout -out db-key.pem
grep -q 'BEGIN EC PRIVATE KEY' db-key.pem
openssl req -new -key db-key.pem -out db.csr -subj "/OU=halfopen-collector/CN=db"
printf 'basicConstraints = critical, CA:FALSE\nextendedKeyUsage = clientAuth\n' > c.ext
openssl x509 -req -in db.csr -CA ca.pem -CAkey ca-key.pem -days 1 -extfile c.ext -out db.pem 2>&1"#,
    );
    let tls = load_tls_pem(&TlsFiles::in_dir(dir, "db")).unwrap();
    assert_eq!(
        tls.own_peer(&TlsFiles::in_dir(dir, "db")).unwrap().role,
        Role::Collector { host: "db".into() }
    );
}

#[test]
fn openssl_verifies_and_reads_certificates_made_here() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir, &CaOptions::default()).unwrap();
    issue(
        dir,
        &Issue::Reconciler {
            names: vec!["reconciler.example".into(), "198.18.0.10".into()],
        },
        &IssueOptions::default(),
    )
    .unwrap();
    issue(
        dir,
        &Issue::Collector { host: "web-1".into() },
        &IssueOptions::default(),
    )
    .unwrap();
    let out = sh(
        dir,
        r#"openssl verify -CAfile ca.pem -purpose sslserver reconciler.example.pem
openssl verify -CAfile ca.pem -purpose sslclient web-1.pem
openssl x509 -in reconciler.example.pem -noout -subject -ext subjectAltName,extendedKeyUsage,basicConstraints,keyUsage
openssl x509 -in web-1.pem -noout -subject -ext extendedKeyUsage
openssl x509 -in ca.pem -noout -subject -ext basicConstraints,keyUsage
openssl pkey -in web-1-key.pem -noout -text | grep -E 'ASN1 OID|NIST CURVE'"#,
    );
    for expected in [
        "reconciler.example.pem: OK",
        "web-1.pem: OK",
        "subject=OU = halfopen-reconciler, CN = reconciler.example",
        "DNS:reconciler.example, IP Address:198.18.0.10",
        "TLS Web Server Authentication",
        "subject=OU = halfopen-collector, CN = web-1",
        "TLS Web Client Authentication",
        "CA:FALSE",
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "NIST CURVE: P-256",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // a collector certificate is no server certificate to OpenSSL either
    let refused = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "web-1.pem"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
