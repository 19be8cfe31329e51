//! halfopen-identity: who a peer of the reconciler is. It owns halfopen's small CA (making it,
//! issuing certificates with it, writing the files safely), the encoding of a peer's role and
//! identity in a certificate, reading them back from the certificate a TLS handshake verified,
//! and the authorisation rules that follow ([`Peer::may_collect_for`], [`Peer::may_read`]). It
//! knows nothing of tonic: it hands over PEM bytes ([`load_tls_pem`]) and takes DER bytes
//! ([`peer_from_der`]).
//!
//! # Roles and how a certificate carries them
//!
//! | role | may | subject OU (exactly one `halfopen-*` OU) | subject CN | extended key usage |
//! |---|---|---|---|---|
//! | collector | `Ingest.Collect` for host id `H` and `H/<container>` | `halfopen-collector` | the host id `H` | clientAuth |
//! | reader | the query service, nothing else | `halfopen-reader` | the reader's name | clientAuth |
//! | reconciler | serve both services | `halfopen-reconciler` | not read (halfopen writes its first name) | serverAuth, with the names clients dial as DNS / IP SANs |
//!
//! Precisely, [`peer_from_der`] accepts an end-entity certificate when:
//! - among its subject's OU attributes (2.5.4.11) exactly **one** starts with `halfopen-`
//!   (ASCII case-insensitively); it must be one of the three values above, lower case. Other
//!   OUs (`OU=Platform`) are ignored; two `halfopen-*` OUs, even equal ones, are refused;
//! - a collector or reader has exactly **one** CN (2.5.4.3), a UTF8String, PrintableString or
//!   IA5String whose value follows the name rule: 1 to 64 bytes of ASCII letters, digits and
//!   `. _ - : @`, starting with a letter or digit (so: not empty, no control characters, no
//!   whitespace, no `/`) — see [`validate_name`];
//! - it is not a CA (no basicConstraints CA:TRUE);
//! - if it has an extended key usage extension, it lists clientAuth (collector, reader) or
//!   serverAuth (reconciler); without the extension it is unrestricted (RFC 5280 §4.2.1.12,
//!   which is also what rustls-webpki applies during the handshake).
//!
//! Other subject attributes (O, C, ...), SANs of client certificates and the issuer are not
//! read. The chain, signatures and dates are checked by the handshake (rustls'
//! `WebPkiClientVerifier` with the CA as the only root), never here.
//!
//! **Why subject OU + CN, and no second encoding.** Every PKI can issue it: `openssl req -subj
//! "/OU=halfopen-collector/CN=web-1"`, Vault PKI roles (`ou`, CN from the request), cfssl
//! (`names[].OU`, `CN`), step-ca templates, AWS Private CA and AD CS all set subject attributes,
//! while URI SANs need extra configuration in several of them (AD CS only takes SANs from a
//! request with a risky CA-wide flag). The CN as a client's identity is the convention operators
//! already run for Kubernetes users, etcd, PostgreSQL `cert` authentication and CockroachDB. A
//! CN is a plain string, with no percent-encoding to get wrong, and a CA policy can fix the OU
//! per issuing role while the CN varies. A SAN URI (`halfopen://collector/H`) would pair role
//! and identity in one field, but accepting both encodings would double the fields a CA's
//! policy must control and add the question of which wins when they disagree; one encoding is
//! simpler to audit. (The public Web PKI dropped OU in 2022; that concerns publicly trusted
//! server certificates, not a private CA issuing client certificates.)
//!
//! **Trust.** Whoever can obtain a certificate with `OU=halfopen-collector, CN=web-1` from a CA
//! in the reconciler's `ca.pem` can report as `web-1`. Give halfopen its own CA (this crate's,
//! or a dedicated intermediate of yours), or make sure your CA checks the OU and CN of every
//! request. There is no revocation list: keep leaf validity short enough, or replace the CA.
//!
//! # Host ids and containers
//!
//! A collector that covers containers reports several hosts, `H` and `H/<name>`, under one
//! certificate for `H`: [`Peer::may_collect_for`] allows exactly those host ids (valid per
//! [`validate_host_id`], byte-for-byte equal to `H` or starting with `H/`). [`validate_host_id`]
//! is the rule the CLI applies to `--host-id` too: parts of `[A-Za-z0-9._:@-]` starting with a
//! letter or digit, separated by `/`, the first at most 64 bytes, the whole at most 255.
//!
//! # halfopen's own CA
//!
//! [`init_ca`] (`halfopen certs init --dir DIR`) writes `DIR/ca.pem` and `DIR/ca-key.pem`;
//! [`issue`] (`halfopen certs issue --dir DIR --reconciler|--host|--reader ...`) writes
//! `NAME.pem` and `NAME-key.pem`, NAME being the host id, the reader name or the reconciler's
//! first name, next to `ca.pem` (or in `--out`, with a copy of `ca.pem`). Names `ca` and
//! `*-key` are refused since their files would collide. Defaults: the CA is valid 10 years,
//! other certificates 1 year ([`DEFAULT_CA_VALIDITY`], [`DEFAULT_LEAF_VALIDITY`], both
//! options), starting 5 minutes before issue for hosts whose clock is a little behind; a
//! certificate never outlives its CA (its validity is cut, [`IssuedFiles::cut_to_ca`]). The CA
//! has pathlen 0: it signs end-entity certificates only.
//!
//! Files: a missing directory is created with mode 0700; keys are created with mode 0600 (never
//! chmod-ed afterwards, so never readable by others even for a moment), certificates 0644; every
//! file is written to a temporary file in the same directory, synced, then linked into place,
//! which fails if the file exists (the kernel checks, so two concurrent runs cannot both win).
//! An existing file is replaced only when forced, by an atomic rename.
//!
//! **Keys are ECDSA P-256 with SHA-256 signatures**: the signature scheme TLS 1.3 requires every
//! implementation to support (RFC 8446 §9.1), so rustls (ring and aws-lc-rs providers), OpenSSL,
//! Go, Java and every HSM or cloud KMS accept it; keys and signatures are small and quick to
//! make (ring cannot generate RSA keys at all, and RSA-2048 handshakes cost more CPU on a
//! reconciler with a thousand collectors); Ed25519 certificates are still refused by parts of
//! the PKI tooling and by some TLS stacks.
//!
//! # Bringing your own CA: issuing with OpenSSL
//!
//! The key is made on the peer's host and never leaves it; the CA signs a request and sets the
//! extensions itself. **Check the subject of each request before signing**: it is the identity.
//! These exact commands are run by this crate's tests (`tests/openssl.rs`) against a CA made
//! with OpenSSL; they need OpenSSL 3.0 or later (1.1.1: add `-CAcreateserial` to `x509`).
//!
//! <!-- openssl-commands: begin -->
//! ```sh
//! # Once, at the CA: the extensions of halfopen's client certificates.
//! cat > halfopen-client.ext <<'EOF'
//! basicConstraints = critical, CA:FALSE
//! keyUsage = critical, digitalSignature
//! extendedKeyUsage = clientAuth
//! EOF
//!
//! # A collector for host id web-1. On web-1: a P-256 key and a request.
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//!     -keyout web-1-key.pem -out web-1.csr -subj "/OU=halfopen-collector/CN=web-1"
//! # At the CA: check the subject (expect: subject=OU = halfopen-collector, CN = web-1), then sign.
//! openssl req -in web-1.csr -noout -verify -subject
//! openssl x509 -req -in web-1.csr -CA ca.pem -CAkey ca-key.pem -days 365 -sha256 \
//!     -extfile halfopen-client.ext -out web-1.pem
//!
//! # A reader named alice: the same with another OU.
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
//!     -keyout alice-key.pem -out alice.csr -subj "/OU=halfopen-reader/CN=alice"
//! openssl req -in alice.csr -noout -verify -subject
//! openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca-key.pem -days 365 -sha256 \
//!     -extfile halfopen-client.ext -out alice.pem
//! ```
//! <!-- openssl-commands: end -->
//!
//! The reconciler's certificate is the same with `-subj "/OU=halfopen-reconciler/CN=NAME"` and
//! an extension file with `extendedKeyUsage = serverAuth` and `subjectAltName = DNS:NAME,
//! IP:ADDRESS` (every name collectors dial). Give each peer `ca.pem` (your CA certificate, with
//! any intermediates), its certificate and its key.
//!
//! # Use from the reconciler and the CLI
//!
//! ```no_run
//! # use halfopen_identity::*;
//! # fn main() -> Result<(), IdentityError> {
//! // At start: PEM bytes for tonic's Identity::from_pem / Certificate::from_pem, checked.
//! let files = TlsFiles::in_dir(std::path::Path::new("/etc/halfopen"), "reconciler.example");
//! let tls = load_tls_pem(&files)?;
//! if tls.key_exposed() { /* warn: the key file is readable by others */ }
//! // Per call, with the end-entity certificate from tonic's request.peer_certs():
//! # let peer_der: &[u8] = &[];
//! match peer_from_der(peer_der) {
//!     Ok(peer) if peer.may_collect_for("web-1/redis") => { /* serve */ }
//!     Ok(peer) => { /* Status::permission_denied(format!("{} may not report web-1/redis", peer.role)) */ }
//!     Err(e) => { /* Status::unauthenticated(e.to_string()) */ }
//! }
//! # Ok(()) }
//! ```

mod error;
mod files;
mod issue;
mod name;
mod peer;

pub use error::IdentityError;
pub use files::{
    cert_file, key_file, load_tls_pem, peer_from_pem_file, TlsFiles, TlsPem, CA_CERT_FILE, CA_KEY_FILE, CERT_MODE,
    DIR_MODE, KEY_MODE,
};
pub use issue::{
    init_ca, issue, CaFiles, CaOptions, Issue, IssueOptions, IssuedFiles, BACKDATE, DEFAULT_CA_NAME,
    DEFAULT_CA_VALIDITY, DEFAULT_LEAF_VALIDITY, MAX_VALIDITY,
};
pub use name::{
    host_part, validate_host_id, validate_name, NameError, NameKind, NameProblem, CONTAINER_SEPARATOR, MAX_HOST_ID_LEN,
    MAX_NAME_LEN,
};
pub use peer::{peer_from_der, KeyPurpose, Peer, PeerError, Role, OU_COLLECTOR, OU_READER, OU_RECONCILER, ROLE_PREFIX};
