//! Authorisation at the edge: who may call what, decided once per call
//! from the client certificate the TLS handshake verified, before anything
//! of the call reaches the engine (which never sees identities).
//!
//! | reconciler | `Ingest.Collect` | `Query.*` |
//! |---|---|---|
//! | mutual TLS | a collector certificate for host `H`, and the first message's `Hello.host_id` is `H` or `H/...` ([`Peer::may_collect_for`]) | a reader certificate ([`Peer::may_read`]) |
//! | plaintext (loopback, or `--insecure`) | anyone, any host id (counted) | anyone (counted) |
//!
//! With mutual TLS a client without a certificate, or with one from
//! another CA, never gets this far: the handshake fails (see
//! `halfopen_proto::transport::server_tls`). What gets here has a
//! certificate the CA signed; what it may do is read from its subject
//! (`halfopen_identity::peer_from_der`). A refusal is `PERMISSION_DENIED`
//! naming the certificate, its role and what was asked; it is counted in
//! [`AuthStats`] and logged at warn at most once a minute per peer (with
//! how many were not logged since).
//!
//! Without TLS every peer may do everything: nothing on the connection says
//! who it is. A reconciler does that only on a loopback address, or when
//! the operator said `--insecure`; plaintext sessions and calls are
//! counted, and with `--insecure` each peer's plaintext sessions are logged
//! at warn (at most once a minute per peer).
use halfopen_core::Hello;
use halfopen_identity::{peer_from_der, Peer, Role};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::{Request, Status};
use tracing::{info, warn};

/// How the reconciler's peers are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Mutual TLS: every call carries a verified client certificate.
    MutualTls,
    /// Plaintext on a loopback address: only this machine can connect.
    Loopback,
    /// Plaintext on a reachable address, because the operator said `--insecure`.
    Insecure,
}

impl Mode {
    /// The mode for a reconciler listening on `listen`, with TLS or not.
    /// `None` when plaintext is not allowed there (not loopback, no `insecure`).
    pub fn for_listener(listen: IpAddr, tls: bool, insecure: bool) -> Option<Mode> {
        if tls {
            Some(Mode::MutualTls)
        } else if listen.to_canonical().is_loopback() {
            Some(Mode::Loopback)
        } else if insecure {
            Some(Mode::Insecure)
        } else {
            None
        }
    }
}

/// Counters of the edge's decisions since start (monotonic), for logs and
/// metrics. Shared: the reconciler's metrics read them.
#[derive(Debug, Default)]
pub struct AuthStats {
    /// `Collect` sessions accepted without TLS (plaintext reconciler: the
    /// peer's identity is unknown).
    pub plaintext_sessions: AtomicU64,
    /// Query calls answered without TLS.
    pub plaintext_queries: AtomicU64,
    /// `Collect` streams refused: a certificate that is not a collector's, or
    /// a `Hello` for a host id the certificate does not name.
    pub refused_collect: AtomicU64,
    /// Query calls refused: a certificate that is not a reader's.
    pub refused_query: AtomicU64,
}

/// A copy of [`AuthStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthCounts {
    pub plaintext_sessions: u64,
    pub plaintext_queries: u64,
    pub refused_collect: u64,
    pub refused_query: u64,
}

impl AuthStats {
    /// The counters now.
    pub fn snapshot(&self) -> AuthCounts {
        AuthCounts {
            plaintext_sessions: self.plaintext_sessions.load(Ordering::Relaxed),
            plaintext_queries: self.plaintext_queries.load(Ordering::Relaxed),
            refused_collect: self.refused_collect.load(Ordering::Relaxed),
            refused_query: self.refused_query.load(Ordering::Relaxed),
        }
    }
}

/// Who is calling, as far as the connection says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A plaintext connection: unknown.
    Plaintext { addr: Option<SocketAddr> },
    /// A TLS connection with this verified certificate.
    Cert { peer: Peer, addr: Option<SocketAddr> },
}

impl Caller {
    /// For logs: `collector web-1 [OU=..., CN=...] from 10.0.0.7:51234` or
    /// `plaintext peer 10.0.0.7:51234`.
    pub fn describe(&self) -> String {
        let from = |a: &Option<SocketAddr>| a.map(|a| format!(" from {a}")).unwrap_or_default();
        match self {
            Caller::Plaintext { addr } => format!("plaintext peer{}", from(addr)),
            Caller::Cert { peer, addr } => format!("{} [{}]{}", peer.role, peer.subject, from(addr)),
        }
    }

    /// The key under which refusals are rate-limited: the certificate
    /// (subject and serial), or the peer's IP address.
    fn key(&self) -> String {
        match self {
            Caller::Plaintext { addr } => addr.map(|a| a.ip().to_string()).unwrap_or_default(),
            Caller::Cert { peer, .. } => format!("{}#{}", peer.subject, peer.serial),
        }
    }
}

/// How often one peer's refusals (or plaintext sessions) are logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(60);
/// Peers remembered by the log limiter; past this, entries older than
/// [`LOG_EVERY`] are dropped, and if that is not enough, all of them.
const MAX_LOG_KEYS: usize = 4096;

/// At most one log line per key per [`LOG_EVERY`]; counts what it held back.
#[derive(Debug, Default)]
struct LogLimiter {
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogLimiter {
    /// `Some(n)` when a line for `key` should be logged now (`n`: lines
    /// held back since the last one), `None` when it is held back.
    fn allow(&self, key: &str, now: Instant) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, held)) = seen.get_mut(key) {
            if now.duration_since(*last) < LOG_EVERY {
                *held += 1;
                return None;
            }
            let n = *held;
            *last = now;
            *held = 0;
            return Some(n);
        }
        if seen.len() >= MAX_LOG_KEYS {
            seen.retain(|_, (last, _)| now.duration_since(*last) < LOG_EVERY);
            if seen.len() >= MAX_LOG_KEYS {
                seen.clear();
            }
        }
        seen.insert(key.to_string(), (now, 0));
        Some(0)
    }
}

/// The edge's authorisation: one per reconciler, shared by both services.
#[derive(Debug)]
pub struct Auth {
    mode: Mode,
    stats: Arc<AuthStats>,
    log: LogLimiter,
}

/// Which service a refusal concerns, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Collect,
    Query,
}

impl Auth {
    pub fn new(mode: Mode, stats: Arc<AuthStats>) -> Auth {
        Auth {
            mode,
            stats,
            log: LogLimiter::default(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn stats(&self) -> &Arc<AuthStats> {
        &self.stats
    }

    /// Who calls, from the certificates of the request's connection
    /// (`Request::peer_certs`, end entity first).
    fn caller<T>(&self, req: &Request<T>, service: Service) -> Result<Caller, Status> {
        let certs = req.peer_certs();
        self.caller_from(req.remote_addr(), certs.as_deref().map(|c| c.as_slice()), service)
    }

    fn caller_from(
        &self,
        addr: Option<SocketAddr>,
        certs: Option<&[tonic::transport::CertificateDer<'static>]>,
        service: Service,
    ) -> Result<Caller, Status> {
        if self.mode != Mode::MutualTls {
            return Ok(Caller::Plaintext { addr });
        }
        // The handshake requires a certificate, so a TLS connection always has one; a
        // connection without any (an accept path that lost the TLS information) is refused.
        let Some(first) = certs.and_then(|c| c.first()) else {
            let who = Caller::Plaintext { addr };
            return Err(self.refuse(
                &who,
                service,
                Status::unauthenticated(
                    "this reconciler requires mutual TLS: no client certificate on this connection",
                ),
            ));
        };
        match peer_from_der(first) {
            Ok(peer) => Ok(Caller::Cert { peer, addr }),
            Err(e) => {
                let who = Caller::Plaintext { addr };
                Err(self.refuse(&who, service, Status::permission_denied(e.to_string())))
            }
        }
    }

    /// `Ingest.Collect`, before its first message: the caller, if it may
    /// open a collector stream at all (a collector certificate, or plaintext).
    pub fn collector<T>(&self, req: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(req, Service::Collect)?;
        self.check_collector(caller)
    }

    fn check_collector(&self, caller: Caller) -> Result<Caller, Status> {
        match &caller {
            Caller::Plaintext { .. } => Ok(caller),
            Caller::Cert { peer, .. } if matches!(peer.role, Role::Collector { .. }) => Ok(caller),
            Caller::Cert { peer, .. } => {
                let msg = format!(
                    "certificate [{}] is a {} certificate: it may not open a collector stream; a collector needs \
                     a certificate with OU=halfopen-collector and CN=its host id (halfopen certs issue --host NAME)",
                    peer.subject,
                    peer.role.ou()
                );
                Err(self.refuse(&caller, Service::Collect, Status::permission_denied(msg)))
            }
        }
    }

    /// `Ingest.Collect`, on its `Hello`: may `caller` report as its host id?
    /// Plaintext callers may (and are counted); a collector certificate for
    /// `H` may report `H` and `H/...` only, and must say where it runs (its
    /// `Instance`): the engine takes a session of an unknown instance for a
    /// restart of the live one and lets it replace it, so with mutual TLS a
    /// Hello without one is refused (every collector that speaks TLS sends
    /// one). Call before the engine hears of the session.
    pub fn hello(&self, caller: &Caller, hello: &Hello) -> Result<(), Status> {
        let host_id = hello.host_id.as_str();
        match caller {
            Caller::Plaintext { .. } => {
                let n = self.stats.plaintext_sessions.fetch_add(1, Ordering::Relaxed) + 1;
                if self.mode == Mode::Insecure {
                    if let Some(held) = self.log.allow(&caller.key(), Instant::now()) {
                        warn!(
                            peer = %caller.describe(),
                            host = ?host_id,
                            plaintext_sessions = n,
                            not_logged = held,
                            "plaintext collector session (--insecure): nobody knows who sent it"
                        );
                    }
                }
                Ok(())
            }
            Caller::Cert { peer, .. } if peer.may_collect_for(host_id) && hello.instance.is_unknown() => {
                let msg = format!(
                    "certificate [{}]: the Hello for {host_id:?} does not say where the collector runs (machine id, \
                     boot id, network namespace all empty), so a second instance could not be told from a restart; \
                     this collector is too old for mutual TLS",
                    peer.subject
                );
                Err(self.refuse(caller, Service::Collect, Status::invalid_argument(msg)))
            }
            Caller::Cert { peer, .. } if peer.may_collect_for(host_id) => Ok(()),
            Caller::Cert { peer, .. } => {
                let mine = peer.role.identity().unwrap_or_default();
                let msg = format!(
                    "certificate [{}] is for host {mine:?} (and {mine}/...): it may not report host id {host_id:?}; \
                     run this collector with --host-id {mine}, or give it a certificate for that host \
                     (halfopen certs issue --host NAME)",
                    peer.subject
                );
                Err(self.refuse(caller, Service::Collect, Status::permission_denied(msg)))
            }
        }
    }

    /// Any `Query` call: the caller must hold a reader certificate (or the
    /// reconciler is plaintext; counted).
    pub fn reader<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let caller = self.caller(req, Service::Query)?;
        self.check_reader(&caller)
    }

    fn check_reader(&self, caller: &Caller) -> Result<(), Status> {
        match caller {
            Caller::Plaintext { .. } => {
                self.stats.plaintext_queries.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Caller::Cert { peer, .. } if peer.may_read() => Ok(()),
            Caller::Cert { peer, .. } => {
                let msg = format!(
                    "certificate [{}] is a {} certificate: it may not query; queries need a reader \
                     certificate, OU=halfopen-reader (halfopen certs issue --reader NAME)",
                    peer.subject,
                    peer.role.ou()
                );
                Err(self.refuse(caller, Service::Query, Status::permission_denied(msg)))
            }
        }
    }

    /// Counts a refusal, logs it (rate-limited per peer), returns `status`.
    fn refuse(&self, caller: &Caller, service: Service, status: Status) -> Status {
        let counter = match service {
            Service::Collect => &self.stats.refused_collect,
            Service::Query => &self.stats.refused_query,
        };
        let total = counter.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(held) = self.log.allow(&caller.key(), Instant::now()) {
            warn!(
                peer = %caller.describe(),
                service = ?service,
                refused_total = total,
                not_logged = held,
                "refused: {}",
                status.message()
            );
        }
        status
    }

    /// Logs how the reconciler authenticates, once at start.
    pub fn log_mode(&self, listen: SocketAddr) {
        match self.mode {
            Mode::MutualTls => info!(
                %listen,
                "mutual TLS: collectors need a collector certificate for their host id, queries a reader certificate"
            ),
            Mode::Loopback => info!(
                %listen,
                "plaintext on a loopback address: only this machine can connect, and every local peer may report \
                 any host and read everything (use --tls-ca, --tls-cert and --tls-key to serve other hosts)"
            ),
            Mode::Insecure => warn!(
                %listen,
                "PLAINTEXT on a reachable address (--insecure): any peer that reaches this port can report as any \
                 host id it makes up, see what collectors send (command lines included) and read every finding. \
                 Plaintext sessions are counted and logged. Use --tls-ca, --tls-cert and --tls-key instead"
            ),
        }
    }
}

/// The query service's gate: every `Query` call passes [`Auth::reader`].
#[derive(Clone, Debug)]
pub struct ReaderGate(pub Arc<Auth>);

impl tonic::service::Interceptor for ReaderGate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        self.0.reader(&req)?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_identity::{init_ca, issue, CaOptions, Issue, IssueOptions};
    use tonic::transport::CertificateDer;

    /// DER certificates issued by a fresh CA: the collector web-1, the reader alice, the reconciler.
    fn certs() -> (
        CertificateDer<'static>,
        CertificateDer<'static>,
        CertificateDer<'static>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        init_ca(dir.path(), &CaOptions::default()).unwrap();
        let der = |what: Issue| {
            let f = issue(dir.path(), &what, &IssueOptions::default()).unwrap();
            let pem = std::fs::read(&f.cert).unwrap();
            use rustls_pki_types::pem::PemObject;
            CertificateDer::from_pem_slice(&pem).unwrap()
        };
        (
            der(Issue::Collector { host: "web-1".into() }),
            der(Issue::Reader { name: "alice".into() }),
            der(Issue::Reconciler {
                names: vec!["recon".into()],
            }),
        )
    }

    fn auth(mode: Mode) -> Auth {
        Auth::new(mode, Arc::new(AuthStats::default()))
    }

    /// A Hello for `host` from a collector that says where it runs.
    fn hi(host: &str) -> Hello {
        Hello {
            host_id: host.into(),
            instance: halfopen_core::Instance {
                boot_id: "b".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn addr() -> Option<SocketAddr> {
        Some("198.18.0.2:40000".parse().unwrap())
    }

    #[test]
    fn plaintext_is_allowed_only_on_loopback_or_when_insecure() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(Mode::for_listener(lo, false, false), Some(Mode::Loopback));
        assert_eq!(Mode::for_listener(mapped, false, false), Some(Mode::Loopback));
        assert_eq!(Mode::for_listener(any, false, false), None);
        assert_eq!(Mode::for_listener(any, false, true), Some(Mode::Insecure));
        assert_eq!(Mode::for_listener(any, true, false), Some(Mode::MutualTls));
        assert_eq!(Mode::for_listener(lo, true, true), Some(Mode::MutualTls));
    }

    #[test]
    fn a_collector_certificate_collects_for_its_host_only_and_never_reads() {
        let (collector, _, _) = certs();
        let a = auth(Mode::MutualTls);
        let c = a
            .caller_from(addr(), Some(std::slice::from_ref(&collector)), Service::Collect)
            .unwrap();
        let c = a.check_collector(c).unwrap();
        a.hello(&c, &hi("web-1")).unwrap();
        a.hello(&c, &hi("web-1/redis")).unwrap();
        let e = a.hello(&c, &hi("web-2")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("CN=web-1") && e.message().contains("\"web-2\""),
            "{}",
            e.message()
        );
        let e = a.hello(&c, &hi("web-1\u{1b}[2J")).unwrap_err();
        assert!(!e.message().contains('\u{1b}'), "escaped: {}", e.message());
        let e = a.check_reader(&c).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(
            e.message().contains("halfopen-collector certificate"),
            "{}",
            e.message()
        );
        let n = a.stats().snapshot();
        assert_eq!(
            n,
            AuthCounts {
                refused_collect: 2,
                refused_query: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_reader_reads_and_never_collects_and_the_reconciler_does_neither() {
        let (_, reader, reconciler) = certs();
        let a = auth(Mode::MutualTls);
        let r = a.caller_from(addr(), Some(&[reader]), Service::Query).unwrap();
        a.check_reader(&r).unwrap();
        let e = a.check_collector(r).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("halfopen-reader certificate"), "{}", e.message());
        let s = a.caller_from(addr(), Some(&[reconciler]), Service::Query).unwrap();
        assert!(a.check_reader(&s).is_err());
        assert!(a.check_collector(s).is_err());
        assert_eq!(a.stats().snapshot().refused_collect, 2);
        assert_eq!(a.stats().snapshot().refused_query, 1);
    }

    #[test]
    fn with_tls_a_connection_without_a_usable_certificate_is_refused() {
        let a = auth(Mode::MutualTls);
        let e = a.caller_from(addr(), None, Service::Collect).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = a.caller_from(addr(), Some(&[]), Service::Query).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        let e = a.caller_from(addr(), Some(&[junk]), Service::Query).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        let n = a.stats().snapshot();
        assert_eq!((n.refused_collect, n.refused_query), (1, 2));
    }

    #[test]
    fn without_tls_everyone_may_everything_and_is_counted() {
        for mode in [Mode::Loopback, Mode::Insecure] {
            let a = auth(mode);
            // certificates are not looked at without TLS
            let c = a.caller_from(addr(), None, Service::Collect).unwrap();
            assert_eq!(c, Caller::Plaintext { addr: addr() });
            let c = a.check_collector(c).unwrap();
            a.hello(&c, &hi("anything")).unwrap();
            a.hello(&c, &Hello::default()).unwrap();
            a.check_reader(&c).unwrap();
            let n = a.stats().snapshot();
            assert_eq!(
                n,
                AuthCounts {
                    plaintext_sessions: 2,
                    plaintext_queries: 1,
                    ..Default::default()
                }
            );
        }
    }

    #[test]
    fn logs_are_limited_per_peer_per_minute() {
        let l = LogLimiter::default();
        let t0 = Instant::now();
        assert_eq!(l.allow("a", t0), Some(0));
        assert_eq!(l.allow("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(l.allow("a", t0 + Duration::from_secs(59)), None);
        assert_eq!(l.allow("b", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(l.allow("a", t0 + Duration::from_secs(60)), Some(2));
        assert_eq!(l.allow("a", t0 + Duration::from_secs(61)), None);
        // bounded: old keys go first
        for i in 0..MAX_LOG_KEYS + 10 {
            l.allow(&format!("k{i}"), t0 + Duration::from_secs(200));
        }
        assert!(l.seen.lock().unwrap().len() <= MAX_LOG_KEYS);
    }
}
