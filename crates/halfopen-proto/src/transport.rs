//! Transport settings, written once: message limits, keepalives, timeouts,
//! how clients reach the reconciler and how it serves, and TLS. The
//! collector, the CLI, the fleet simulator and the reconciler all take them
//! from here.
//!
//! **Plaintext or mutual TLS** is decided here, once, from the reconciler
//! address and the TLS files ([`ClientConfig::resolve`]):
//!
//! | address | TLS files | result |
//! |---|---|---|
//! | `https://H[:P]` | given | mTLS: the CA file is the only root, the client presents its certificate |
//! | `https://H[:P]` | none | error [`TransportError::HttpsWithoutTls`] (never plaintext in disguise) |
//! | `H[:P]` (no scheme) | given | mTLS, as `https://` |
//! | `H[:P]` (no scheme) | none | plaintext HTTP/2 |
//! | `http://H[:P]` | given | error [`TransportError::HttpWithTls`] |
//! | plaintext to a non-loopback `H` | | error [`TransportError::PlaintextRefused`] unless `insecure` |
//!
//! A missing port is [`DEFAULT_PORT`] (7077), whatever the scheme.
use crate::v1::ingest_client::IngestClient;
use crate::v1::query_client::QueryClient;
use halfopen_identity::TlsPem;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};

/// The reconciler's gRPC port.
pub const DEFAULT_PORT: u16 = 7077;

/// Largest message the reconciler accepts from a collector. Collectors chunk
/// their tables far below this (~1 MiB a chunk); the margin is for foreign
/// or future collectors.
pub const MAX_INGEST_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Largest answer the reconciler sends. ListOrphans costs ~550 bytes per
/// finding (explanations included), so 16 MiB ran out at ~20-30k findings,
/// in exactly the incident it exists for. Only bounds what it sends.
pub const MAX_QUERY_RESPONSE_BYTES: usize = 1024 * 1024 * 1024;

/// Largest page of ListOrphans (~5.5 MB at ~550 bytes per finding).
pub const MAX_PAGE_SIZE: usize = 10_000;

/// TCP keepalive on every connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);
/// HTTP/2 PING interval and the time a PING may go unanswered.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const H2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A CLI query that takes longer than this is an error.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest a TLS handshake may take, on either side: a peer that connects
/// and never completes one is dropped after this.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the flags say to do about a missing TLS setup, for error messages.
const TLS_FLAGS: &str = "--tls-ca, --tls-cert and --tls-key (or HALFOPEN_TLS_CA, HALFOPEN_TLS_CERT, HALFOPEN_TLS_KEY)";

/// Why a client cannot reach the reconciler, or will not.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The address given does not parse.
    #[error("invalid reconciler URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    /// `https://` asked for, but no TLS files given.
    #[error(
        "{url} asks for TLS (https://) but no TLS files were given: pass {TLS_FLAGS}; \
         make them with `halfopen certs`"
    )]
    HttpsWithoutTls { url: String },
    /// `http://` asked for, but TLS files given: which one is meant?
    #[error(
        "{url} asks for plaintext (http://) but TLS files were given: use https:// (or no scheme) \
         to talk TLS, or drop the TLS files to talk plaintext"
    )]
    HttpWithTls { url: String },
    /// Plaintext to an address that is not loopback, without `--insecure`.
    #[error(
        "refusing to talk plaintext to {url}, which is not a loopback address: whoever is on the path \
         could read and forge everything sent. Use TLS ({TLS_FLAGS}, https:// URL), or pass --insecure \
         to accept plaintext"
    )]
    PlaintextRefused { url: String },
    /// The TLS files were read but tonic/rustls refused them.
    #[error("cannot set up TLS to {url}: {reason}")]
    Tls { url: String, reason: String },
    /// Connecting (TCP, TLS or HTTP/2) failed.
    /// (The message holds the whole chain of causes, so that a log line of
    /// it says everything; there is no separate `source`.)
    #[error(
        "cannot reach the reconciler at {url} (is `halfopen reconciler` running there? set --reconciler or \
         HALFOPEN_RECONCILER): {chain}{hint}",
        chain = error_chain(error),
        hint = connect_hint(error, *tls)
    )]
    Connect {
        url: String,
        /// Whether TLS was used.
        tls: bool,
        error: tonic::transport::Error,
    },
}

/// `e` and every error below it, joined by ": " (tonic's own message is
/// often only "transport error"; the reason is further down), repeated
/// messages skipped.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let m = err.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// What a failed connection most likely means, from the words rustls,
/// hyper and h2 use; empty when nothing specific is known. Also used on
/// the `Status` of a call that failed in the transport, since with TLS 1.3
/// a refused client certificate is seen at the first call, not at connect.
pub fn tls_hint(chain: &str, tls: bool) -> &'static str {
    let has = |w: &str| chain.contains(w);
    if tls {
        if has("InvalidContentType") || has("corrupt message") || has("HTTP/2 was not negotiated") {
            return "; the reconciler does not seem to speak TLS (started without --tls-*?): use https:// \
                    only with a TLS reconciler";
        }
        if has("UnknownIssuer") || has("BadSignature") {
            return "; the reconciler's certificate is not signed by the CA in --tls-ca";
        }
        if has("NotValidForName") || has("not valid for name") {
            return "; the reconciler's certificate does not name the address dialled: issue it with \
                    `halfopen certs issue --reconciler NAME_OR_IP,...` listing every name clients use";
        }
        if has("Expired") || has("NotValidYet") {
            return "; a certificate is outside its validity (expired, or the clocks disagree)";
        }
        // DecryptError: the signature of the client's certificate did not verify with the
        // reconciler's CA (another CA of the same name).
        if has("CertificateRequired")
            || has("UnknownCA")
            || has("BadCertificate")
            || has("DecryptError")
            || has("certificate unknown")
        {
            return "; the reconciler refused this client's certificate: it must be issued by the CA the \
                    reconciler trusts (its --tls-ca)";
        }
        if has("connection closed") || has("operation was canceled") || has("broken pipe") || has("connection reset") {
            return "; the reconciler closed the connection: with mutual TLS that is how it refuses a client \
                    certificate it does not trust (issued by another CA, or expired); check --tls-cert";
        }
    } else if has("frame with invalid size")
        || has("connection reset")
        || has("broken pipe")
        || has("unexpected end of file")
        || has("connection closed")
    {
        return "; if the reconciler runs with TLS, use https:// and --tls-ca, --tls-cert, --tls-key";
    }
    ""
}

/// A failed call in words: its code, its message, the transport error under
/// it (a refused certificate, a reset), and with `tls` given (whether the
/// call went over TLS) a hint when one is known ([`tls_hint`]).
pub fn status_text(s: &tonic::Status, tls: Option<bool>) -> String {
    let mut out = format!("{:?}", s.code());
    if !s.message().is_empty() {
        out.push_str(": ");
        out.push_str(s.message());
    }
    let mut below = String::new();
    if let Some(src) = std::error::Error::source(s) {
        below = error_chain(src);
        if !out.contains(&below) {
            out.push_str(": ");
            out.push_str(&below);
        }
    }
    if let Some(tls) = tls {
        out.push_str(tls_hint(&format!("{} {below}", s.message()), tls));
    }
    out
}

fn connect_hint(e: &tonic::transport::Error, tls: bool) -> &'static str {
    tls_hint(&error_chain(e), tls)
}

/// The scheme of a reconciler URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Plaintext HTTP/2.
    Http,
    /// HTTP/2 over TLS.
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A reconciler address as a user gives it (`H`, `H:P`, `[V6]:P`,
/// `http://H:P`, `https://H`), parsed. Pure: no name resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcilerAddr {
    /// The scheme written, if any.
    pub scheme: Option<Scheme>,
    /// The host: a DNS name, an IPv4 address, or an IPv6 address (without brackets).
    pub host: String,
    /// The port; [`DEFAULT_PORT`] when none was written.
    pub port: u16,
}

impl ReconcilerAddr {
    /// Parses `s`. Accepted: an optional `http://` or `https://`, a host (DNS
    /// name, IPv4, or IPv6 in brackets; a bare IPv6 address without a port
    /// too), an optional `:PORT` (1-65535), an optional trailing `/`.
    ///
    /// Errors: [`TransportError::Url`] saying what is wrong (another scheme, a
    /// path, user info, an empty host, a bad port).
    pub fn parse(s: &str) -> Result<ReconcilerAddr, TransportError> {
        let bad = |reason: &str| TransportError::Url {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = match s.split_once("://") {
            Some((sch, rest)) => match sch.to_ascii_lowercase().as_str() {
                "http" => (Some(Scheme::Http), rest),
                "https" => (Some(Scheme::Https), rest),
                _ => return Err(bad("the scheme must be http:// or https://")),
            },
            None => (None, s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a reconciler address is [http(s)://]HOST[:PORT], without a path"));
        }
        if rest.contains('@') {
            return Err(bad("a reconciler address takes no user name"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains a space or a control character"));
        }
        let parse_port = |p: &str| -> Result<u16, TransportError> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad("the port must be a number from 1 to 65535")),
                Ok(n) => Ok(n),
            }
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let Some((v6, after)) = inner.split_once(']') else {
                return Err(bad("an IPv6 address opened with [ must be closed with ]"));
            };
            if v6.parse::<Ipv6Addr>().is_err() {
                return Err(bad("between [ and ] must be an IPv6 address"));
            }
            let port = match after {
                "" => DEFAULT_PORT,
                p => match p.strip_prefix(':') {
                    Some(p) => parse_port(p)?,
                    None => return Err(bad("after ] only :PORT may follow")),
                },
            };
            (v6.to_string(), port)
        } else if rest.parse::<Ipv6Addr>().is_ok() {
            (rest.to_string(), DEFAULT_PORT)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p)?),
                None => (rest.to_string(), DEFAULT_PORT),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        if host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
            return Err(bad(
                "the host must be a DNS name (letters, digits, '-', '_' in dot-separated labels) or an IP address \
                 (IPv6 in brackets when a port follows)",
            ));
        }
        Ok(ReconcilerAddr { scheme, host, port })
    }

    /// Is the host a loopback address (127.0.0.0/8, ::1, ::ffff:127.x.y.z)
    /// or `localhost`? Other names are not: resolving them is not proof.
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.to_canonical().is_loopback(),
            Err(_) => false,
        }
    }

    /// `SCHEME://HOST:PORT`, IPv6 in brackets.
    pub fn url(&self, scheme: Scheme) -> String {
        if self.host.contains(':') {
            format!("{}://[{}]:{}", scheme.as_str(), self.host, self.port)
        } else {
            format!("{}://{}:{}", scheme.as_str(), self.host, self.port)
        }
    }
}

fn is_dns_name(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// A reconciler address as a plaintext URL: the scheme written, else
/// `http://`; the port written, else [`DEFAULT_PORT`]. Input that does not
/// parse is returned with `http://` added, for the caller's URL parser to
/// report. For tools that talk plaintext on loopback (the fleet simulator);
/// everything else goes through [`ClientConfig`].
pub fn reconciler_url(s: &str) -> String {
    match ReconcilerAddr::parse(s) {
        Ok(a) => a.url(a.scheme.unwrap_or(Scheme::Http)),
        Err(_) if s.contains("://") => s.to_string(),
        Err(_) => format!("http://{s}"),
    }
}

/// Who is calling: a long-lived collector stream or a one-shot query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Collector,
    Reader,
}

/// How to reach the reconciler.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// As the user gave it; see [`ReconcilerAddr::parse`].
    pub reconciler: String,
    pub role: Role,
    /// The CA, this client's certificate and key (mutual TLS); `None`: plaintext.
    pub tls: Option<TlsPem>,
    /// Allow plaintext to a reconciler that is not on a loopback address.
    pub insecure: bool,
}

/// What [`ClientConfig::resolve`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The URL dialled, scheme and port always present.
    pub url: String,
    /// Mutual TLS (true) or plaintext HTTP/2.
    pub tls: bool,
    /// The reconciler's address is loopback.
    pub loopback: bool,
}

impl Resolved {
    /// Plaintext to a reconciler off this machine (allowed by `insecure`):
    /// what is sent can be read and forged on the way, and the reconciler
    /// cannot know who sends it.
    pub fn exposed(&self) -> bool {
        !self.tls && !self.loopback
    }
}

impl ClientConfig {
    /// Decides plaintext or TLS and the URL (see the module table); pure.
    ///
    /// Errors: [`TransportError::Url`], [`TransportError::HttpsWithoutTls`],
    /// [`TransportError::HttpWithTls`], [`TransportError::PlaintextRefused`].
    pub fn resolve(&self) -> Result<Resolved, TransportError> {
        let addr = ReconcilerAddr::parse(&self.reconciler)?;
        let have_tls = self.tls.is_some();
        let scheme = match (addr.scheme, have_tls) {
            (Some(Scheme::Https), false) => {
                return Err(TransportError::HttpsWithoutTls {
                    url: addr.url(Scheme::Https),
                })
            }
            (Some(Scheme::Http), true) => {
                return Err(TransportError::HttpWithTls {
                    url: addr.url(Scheme::Http),
                })
            }
            (_, true) => Scheme::Https,
            (_, false) => Scheme::Http,
        };
        let url = addr.url(scheme);
        let loopback = addr.is_loopback();
        if !have_tls && !loopback && !self.insecure {
            return Err(TransportError::PlaintextRefused { url });
        }
        Ok(Resolved {
            url,
            tls: have_tls,
            loopback,
        })
    }

    /// The endpoint, with every transport setting and TLS applied (no connection yet).
    pub fn endpoint(&self) -> Result<Endpoint, TransportError> {
        let r = self.resolve()?;
        let url = r.url;
        let ep = Endpoint::from_shared(url.clone())
            .map_err(|e| TransportError::Url {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Some(TCP_KEEPALIVE))
            .http2_keep_alive_interval(H2_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
        let ep = match &self.tls {
            Some(pem) => ep.tls_config(client_tls(pem)).map_err(|e| TransportError::Tls {
                url: url.clone(),
                reason: error_chain(&e),
            })?,
            None => ep,
        };
        Ok(match self.role {
            Role::Collector => ep,
            Role::Reader => ep.timeout(QUERY_TIMEOUT),
        })
    }

    /// A connected channel.
    pub async fn connect(&self) -> Result<Channel, TransportError> {
        let ep = self.endpoint()?;
        ep.connect().await.map_err(|error| TransportError::Connect {
            url: self.resolve().map(|r| r.url).unwrap_or_else(|_| ep.uri().to_string()),
            tls: self.tls.is_some(),
            error,
        })
    }
}

/// The client side of mutual TLS: the CA file as the only root (no system
/// roots are compiled in: tonic's `tls-ring` feature alone), this client's
/// certificate and key, the handshake bounded by [`TLS_HANDSHAKE_TIMEOUT`].
/// The server's name is checked against the URL's host (DNS or IP SAN).
fn client_tls(pem: &TlsPem) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pem.ca_pem))
        .identity(Identity::from_pem(&pem.cert_pem, &pem.key_pem))
        .timeout(TLS_HANDSHAKE_TIMEOUT)
}

/// The server side of mutual TLS: the reconciler's certificate and key, a
/// client certificate **required** and verified against the CA file
/// (rustls' `WebPkiClientVerifier`: chain, signatures, dates, clientAuth),
/// the handshake bounded by [`TLS_HANDSHAKE_TIMEOUT`]. A client without a
/// certificate, or with one from another CA, fails the handshake: no call
/// of it reaches a service.
pub fn server_tls(pem: &TlsPem) -> ServerTlsConfig {
    ServerTlsConfig::new()
        .identity(Identity::from_pem(&pem.cert_pem, &pem.key_pem))
        .client_ca_root(Certificate::from_pem(&pem.ca_pem))
        .client_auth_optional(false)
        .timeout(TLS_HANDSHAKE_TIMEOUT)
}

/// Why the server cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the reconciler's TLS: {reason}")]
pub struct ServerTlsError {
    pub reason: String,
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The collectors' client, with its message limits.
pub fn ingest_client(ch: Channel) -> IngestClient<Channel> {
    IngestClient::new(ch)
        .max_decoding_message_size(MAX_INGEST_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_INGEST_MESSAGE_BYTES)
}

/// The readers' client, with its message limits.
pub fn query_client(ch: Channel) -> QueryClient<Channel> {
    QueryClient::new(ch).max_decoding_message_size(MAX_QUERY_RESPONSE_BYTES)
}

/// A server with the transport settings applied, and mutual TLS when `tls`
/// is given (see [`server_tls`]); add the services to it.
///
/// Errors: [`ServerTlsError`] when rustls refuses the certificate or key.
pub fn server(tls: Option<&TlsPem>) -> Result<Server, ServerTlsError> {
    let b = Server::builder()
        .tcp_keepalive(Some(TCP_KEEPALIVE))
        .http2_keepalive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(H2_KEEPALIVE_TIMEOUT));
    match tls {
        Some(pem) => b.tls_config(server_tls(pem)).map_err(|e| ServerTlsError {
            reason: error_chain(&e),
        }),
        None => Ok(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> ReconcilerAddr {
        ReconcilerAddr::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn url_err(s: &str) -> String {
        match ReconcilerAddr::parse(s) {
            Err(TransportError::Url { url, reason }) => {
                assert_eq!(url, s);
                reason
            }
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn a_missing_port_is_7077_whatever_the_scheme() {
        assert_eq!(addr("recon").port, DEFAULT_PORT);
        assert_eq!(addr("http://recon").port, 7077);
        assert_eq!(addr("https://recon/").port, 7077);
        assert_eq!(addr("[::1]").port, 7077);
        assert_eq!(addr("::1").host, "::1");
        assert_eq!(addr("::1").port, 7077);
        assert_eq!(addr("10.0.0.5").url(Scheme::Http), "http://10.0.0.5:7077");
        assert_eq!(addr("HTTPS://Recon.Example").scheme, Some(Scheme::Https));
    }

    #[test]
    fn hosts_ports_and_schemes_are_read() {
        let a = addr("https://recon.example:9000");
        assert_eq!(
            a,
            ReconcilerAddr {
                scheme: Some(Scheme::Https),
                host: "recon.example".into(),
                port: 9000
            }
        );
        let a = addr("[2001:db8::5]:7078");
        assert_eq!((a.scheme, a.host.as_str(), a.port), (None, "2001:db8::5", 7078));
        assert_eq!(a.url(Scheme::Https), "https://[2001:db8::5]:7078");
        assert_eq!(addr("198.18.0.3:7077").url(Scheme::Http), "http://198.18.0.3:7077");
        assert_eq!(
            addr("halfopen-reconciler.halfopen.svc.").host,
            "halfopen-reconciler.halfopen.svc."
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        assert!(url_err("ftp://recon").contains("http:// or https://"));
        assert!(url_err("http://recon:7077/v1").contains("without a path"));
        assert!(url_err("http://bad host:1").contains("space"));
        assert!(url_err("http://user@recon").contains("user"));
        assert!(url_err("recon:0").contains("1 to 65535"));
        assert!(url_err("recon:99999").contains("1 to 65535"));
        assert!(url_err("recon:").contains("1 to 65535"));
        assert!(url_err("http://").contains("empty"));
        assert!(url_err(":7077").contains("empty"));
        assert!(url_err("[::1").contains("closed"));
        assert!(url_err("[recon]:1").contains("IPv6"));
        assert!(url_err("[::1]7077").contains(":PORT"));
        assert!(url_err("-recon").contains("DNS name"));
        assert!(url_err("http://[bad").contains("closed"));
    }

    #[test]
    fn loopback_is_only_what_is_certainly_loopback() {
        for l in [
            "127.0.0.1",
            "127.3.2.1:1",
            "[::1]:7077",
            "localhost",
            "LOCALHOST:1",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(addr(l).is_loopback(), "{l}");
        }
        for n in [
            "10.0.0.5",
            "0.0.0.0",
            "[::]",
            "recon",
            "localhost.example",
            "198.18.0.3",
        ] {
            assert!(!addr(n).is_loopback(), "{n}");
        }
    }

    #[test]
    fn reconciler_url_adds_http_and_the_port_only_when_missing() {
        assert_eq!(reconciler_url("10.0.0.5:7077"), "http://10.0.0.5:7077");
        assert_eq!(reconciler_url("10.0.0.5"), "http://10.0.0.5:7077");
        assert_eq!(reconciler_url("[::1]:7077"), "http://[::1]:7077");
        assert_eq!(reconciler_url("https://recon:7077"), "https://recon:7077");
        assert_eq!(reconciler_url("https://recon"), "https://recon:7077");
        // unparsable input is left for the URL parser to report
        assert_eq!(reconciler_url("http://bad host:1"), "http://bad host:1");
    }

    /// A TlsPem whose bytes are never used by resolve (it only asks whether TLS is configured).
    fn some_tls() -> Option<TlsPem> {
        Some(TlsPem {
            ca_pem: Vec::new(),
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
            cert_der: Vec::new().into(),
            not_before: std::time::UNIX_EPOCH,
            not_after: std::time::UNIX_EPOCH,
            key_mode: 0o600,
        })
    }

    fn cfg(reconciler: &str, tls: bool, insecure: bool) -> ClientConfig {
        ClientConfig {
            reconciler: reconciler.into(),
            role: Role::Reader,
            tls: if tls { some_tls() } else { None },
            insecure,
        }
    }

    #[test]
    fn tls_is_decided_by_the_scheme_and_the_files() {
        let r = cfg("https://recon", true, false).resolve().unwrap();
        assert_eq!((r.url.as_str(), r.tls, r.loopback), ("https://recon:7077", true, false));
        assert!(!r.exposed());
        let r = cfg("recon:9", true, false).resolve().unwrap();
        assert_eq!((r.url.as_str(), r.tls), ("https://recon:9", true));
        let r = cfg("127.0.0.1", false, false).resolve().unwrap();
        assert_eq!(
            (r.url.as_str(), r.tls, r.loopback),
            ("http://127.0.0.1:7077", false, true)
        );
        assert!(!r.exposed());
        let r = cfg("http://[::1]:1", false, false).resolve().unwrap();
        assert_eq!(r.url, "http://[::1]:1");
    }

    #[test]
    fn https_is_never_plaintext_and_http_never_tls() {
        let e = cfg("https://recon", false, true).resolve().unwrap_err();
        assert!(matches!(e, TransportError::HttpsWithoutTls { .. }), "{e}");
        let m = e.to_string();
        assert!(m.contains("https://recon:7077") && m.contains("--tls-ca"), "{m}");
        let e = cfg("http://recon", true, false).resolve().unwrap_err();
        assert!(matches!(e, TransportError::HttpWithTls { .. }), "{e}");
        // also on loopback: the scheme says what the user means
        let e = cfg("https://127.0.0.1", false, false).resolve().unwrap_err();
        assert!(matches!(e, TransportError::HttpsWithoutTls { .. }), "{e}");
    }

    #[test]
    fn plaintext_off_loopback_needs_insecure() {
        for a in ["recon", "http://10.0.0.5:7077", "[2001:db8::1]", "0.0.0.0"] {
            let e = cfg(a, false, false).resolve().unwrap_err();
            assert!(matches!(e, TransportError::PlaintextRefused { .. }), "{a}: {e}");
            assert!(e.to_string().contains("--insecure"), "{e}");
            let r = cfg(a, false, true).resolve().unwrap();
            assert!(!r.tls && r.exposed(), "{a}");
        }
    }

    #[test]
    fn a_bad_url_is_a_clear_error() {
        let e = cfg("http://bad host:1", false, false)
            .endpoint()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid reconciler URL \"http://bad host:1\""), "{e}");
    }

    #[test]
    fn hints_name_the_likely_cause() {
        assert!(tls_hint("received corrupt message of type InvalidContentType", true).contains("not seem to speak TLS"));
        assert!(tls_hint("invalid peer certificate: UnknownIssuer", true).contains("--tls-ca"));
        assert!(tls_hint("invalid peer certificate: NotValidForName", true).contains("--reconciler NAME_OR_IP"));
        assert!(tls_hint("received fatal alert: CertificateRequired", true).contains("refused this client"));
        assert!(tls_hint("received fatal alert: DecryptError", true).contains("refused this client"));
        assert!(tls_hint("certificate not valid for name \"10.0.0.1\"", true).contains("--reconciler NAME_OR_IP"));
        assert!(tls_hint("operation was canceled: connection closed", true).contains("--tls-cert"));
        assert!(tls_hint("connection error detected: frame with invalid size", false).contains("https://"));
        assert!(tls_hint("stream closed because of a broken pipe", false).contains("https://"));
        assert!(tls_hint("connection reset by peer", false).contains("https://"));
        assert_eq!(tls_hint("connection refused", true), "");
    }

    #[test]
    fn error_chains_join_sources_once() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl fmt::Display for E {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for E {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|e| e as _)
            }
        }
        let e = E(
            "transport error",
            Some(Box::new(E("tls: bad", Some(Box::new(E("bad", None)))))),
        );
        assert_eq!(error_chain(&e), "transport error: tls: bad");
    }
}
