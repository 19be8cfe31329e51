//! The collector's gRPC edge: connects to the reconciler, sends the Hello,
//! a full table and then numbered deltas every interval, answers lookups,
//! and reconnects with backoff whenever the reconciler is away. Nothing the
//! reconciler does (absent, slow, restarting) stops the collector.
//!
//! One session per host: the collector's own network namespace is the host
//! `--host-id`; every other namespace it covers (`--netns`, see
//! [`crate::namespaces`]) is a host of its own, `HOSTID/NAME`, with its own
//! session, worker and reconnects ([`run_host`]).
use crate::choose::{BpfConfig, StartError};
use crate::metrics::CollectorMetrics;
use crate::source::SourceChoice;
use crate::worker::{Kernel, KernelError};
use halfopen_core::{Hello, Report};
use halfopen_identity::TlsPem;
use halfopen_proto::convert::*;
use halfopen_proto::transport::{self, ClientConfig, Role, TransportError};
use halfopen_proto::v1;
use halfopen_sockets::netns::NetnsSpec;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, error, info, warn};

/// Records per message: a socket is ~60 bytes on the wire, so a chunk stays
/// near 1 MiB, well under gRPC's 4 MiB default limit at any table size.
pub const CHUNK: usize = 16_384;

#[derive(Clone, Debug)]
pub struct CollectorConfig {
    pub reconciler: String,
    pub interval: Duration,
    pub host_id: String,
    /// `--source`: auto (eBPF if possible, else netlink), bpf, netlink,
    /// proc, for the collector's own network namespace. Other namespaces
    /// (`--netns`) are polled: netlink, or /proc with `force_proc`.
    pub source: SourceChoice,
    /// Options of the eBPF source.
    pub bpf: BpfConfig,
    /// `--source proc` (or `--proc-net`): /proc/net/tcp in every namespace.
    pub force_proc: bool,
    /// Which network namespaces to cover (`--netns`, default all): the
    /// collector's own is the host `host_id`, each other one the host
    /// `host_id/NAME`.
    pub netns: NetnsSpec,
    /// How often the namespaces are looked for again (`--netns-rescan`).
    pub netns_rescan: Duration,
    /// At most this many namespaces besides its own (`--max-namespaces`);
    /// those past it are listed as not covered.
    pub max_namespaces: usize,
    /// The node's root directory, under which `var/log/pods` and
    /// `var/lib/docker/containers` name pods and containers (`--host-root`).
    pub host_root: PathBuf,
    /// Serve Prometheus metrics at `http://ADDR/metrics`; None: no metrics endpoint.
    pub metrics_listen: Option<SocketAddr>,
    /// Mutual TLS to the reconciler (CA, this host's collector certificate
    /// and key); `None`: plaintext.
    pub tls: Option<TlsPem>,
    /// Allow plaintext to a reconciler that is not on a loopback address.
    pub insecure: bool,
}

impl CollectorConfig {
    /// A collector of its own network namespace only (`--netns self`),
    /// polling it with netlink (`--source netlink`), with the defaults of
    /// every other setting.
    pub fn own_namespace(reconciler: String, interval: Duration, host_id: String) -> CollectorConfig {
        CollectorConfig {
            reconciler,
            interval,
            host_id,
            source: SourceChoice::Netlink,
            bpf: BpfConfig::default(),
            force_proc: false,
            netns: NetnsSpec::Only(vec![halfopen_sockets::netns::NetnsSelector::Own]),
            netns_rescan: Duration::from_secs(5),
            max_namespaces: 1024,
            host_root: PathBuf::from("/"),
            metrics_listen: None,
            tls: None,
            insecure: false,
        }
    }
}

/// Who a session speaks for: the host id and what the Hello says beyond it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSpec {
    pub host_id: String,
    /// Set for a namespace other than the collector's own (see [`Hello`]).
    pub parent: Option<String>,
    pub netns_name: Option<String>,
    pub container: Option<String>,
    pub pod: Option<String>,
    /// The namespace's cookie (or inode) for the Hello's instance; None:
    /// the collector's own (read by [`crate::instance::this_instance`]).
    pub netns: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error(transparent)]
    Kernel(#[from] KernelError),
    #[error(transparent)]
    Source(#[from] StartError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Netns(#[from] halfopen_sockets::netns::NetnsError),
    #[error(transparent)]
    Metrics(#[from] halfopen_telemetry::TelemetryError),
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Connect(#[from] TransportError),
    #[error("the stream to the reconciler failed: {}", transport::status_text(.0, None))]
    Status(#[from] tonic::Status),
    #[error("reconciler closed the session")]
    Closed,
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// Runs the collector until `shutdown` resolves. Returns an error only for
/// what retrying cannot fix (a bad URL, a kernel that cannot be read).
pub async fn run(cfg: CollectorConfig, shutdown: impl std::future::Future<Output = ()>) -> Result<(), CollectorError> {
    let client = ClientConfig {
        reconciler: cfg.reconciler.clone(),
        role: Role::Collector,
        tls: cfg.tls.clone(),
        insecure: cfg.insecure,
    };
    // A bad URL, or plaintext where it is not allowed, is an error now, not a retry forever.
    let resolved = client.resolve()?;
    client.endpoint()?;
    let mut registry = halfopen_telemetry::new_registry("collector", &[("host", &cfg.host_id)]);
    let metrics = CollectorMetrics::register(&mut registry);
    // Kept until the collector stops; dropping it stops the endpoint.
    let _metrics_server = match cfg.metrics_listen {
        Some(addr) => Some(halfopen_telemetry::serve(addr, Arc::new(registry)).await?),
        None => None,
    };
    if resolved.exposed() {
        warn!(
            reconciler = %resolved.url,
            "plaintext to a reconciler that is not on this machine (--insecure): sockets, process names and \
             command lines are sent unauthenticated and unencrypted, and the reconciler cannot tell this \
             collector from an impostor. Use --tls-ca, --tls-cert and --tls-key"
        );
    }
    let link = Link {
        cfg: Arc::new(cfg),
        client,
        tls: resolved.tls,
        url: resolved.url.to_string(),
    };
    crate::namespaces::run(link, metrics, shutdown).await
}

/// What every session of a collector shares: its settings and how it
/// reaches the reconciler.
#[derive(Clone)]
pub(crate) struct Link {
    pub cfg: Arc<CollectorConfig>,
    pub client: ClientConfig,
    /// Whether the reconciler is reached over TLS (for error hints).
    pub tls: bool,
    /// The reconciler's URL as resolved (for the log).
    pub url: String,
}

/// One host's sessions until `shutdown` resolves: connect, Hello, reports
/// and lookups, reconnect with backoff. `spots` (the collector's own host
/// only) carries the blind spots found after start (namespaces it cannot
/// enter): the Hello includes them, a change goes out with the next report.
/// `metrics` counts this host's scans, reports and session.
pub(crate) async fn run_host(
    link: &Link,
    host: &HostSpec,
    kernel: &Kernel,
    metrics: &CollectorMetrics,
    mut spots: Option<watch::Receiver<Vec<String>>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let cfg = &*link.cfg;
    info!(host_id = %host.host_id, source = %kernel.source(), reconciler = %link.url, tls = link.tls, interval = ?cfg.interval, "collector starting");
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(500);
    let mut attempts = 0u64;
    loop {
        let started = Instant::now();
        attempts += 1;
        tokio::select! {
            _ = &mut shutdown => return,
            r = session(link, host, kernel, metrics, attempts > 1, spots.as_mut()) => {
                metrics.session_ended();
                match r {
                    Ok(()) => {}
                    Err(SessionError::Status(s))
                        if matches!(s.code(), tonic::Code::FailedPrecondition | tonic::Code::PermissionDenied) =>
                    {
                        error!(
                            host_id = %host.host_id,
                            reconciler = %cfg.reconciler,
                            "the reconciler refused this collector: {}; retrying in {backoff:?}",
                            s.message()
                        )
                    }
                    Err(e) => {
                        // a connect error carries its hint already
                        let hint = match &e {
                            SessionError::Status(_) => transport::tls_hint(&e.to_string(), link.tls),
                            _ => "",
                        };
                        warn!(host_id = %host.host_id, reconciler = %cfg.reconciler, "session ended: {e}{hint}; retrying in {backoff:?}")
                    }
                }
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_millis(500);
        }
        let jitter = Duration::from_millis(
            (SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_millis())
                .unwrap_or(0)
                % 250) as u64,
        );
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// What the collector cannot see for this host: its capabilities', and
/// (own host) the namespaces it found but could not cover.
fn blind_spots_of(spots: Option<&mut watch::Receiver<Vec<String>>>) -> Vec<String> {
    let mut v = crate::instance::my_blind_spots();
    if let Some(s) = spots {
        v.extend(s.borrow_and_update().iter().cloned());
    }
    v
}

/// One session; `again`: not this host's first attempt (counted as a reconnect).
async fn session(
    link: &Link,
    host: &HostSpec,
    kernel: &Kernel,
    metrics: &CollectorMetrics,
    again: bool,
    mut spots: Option<&mut watch::Receiver<Vec<String>>>,
) -> Result<(), SessionError> {
    let cfg = &*link.cfg;
    if again {
        metrics.reconnecting();
    }
    let mut client = transport::ingest_client(link.client.connect().await?);
    let (tx, rx) = mpsc::channel::<v1::CollectorMessage>(64);
    let mut addrs = kernel.addresses().await?;
    let mut instance = crate::instance::this_instance();
    if let Some(n) = host.netns {
        instance.netns = n;
    }
    let hello = Hello {
        host_id: host.host_id.clone(),
        addresses: addrs.clone(),
        interval_ms: cfg.interval.as_millis().min(u32::MAX as u128) as u32,
        source: kernel.source(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        instance,
        blind_spots: blind_spots_of(spots.as_deref_mut()),
        parent: host.parent.clone(),
        netns_name: host.netns_name.clone(),
        container: host.container.clone(),
        pod: host.pod.clone(),
    };
    // A sender that is gone (collector stopping) changes nothing more.
    let mut spots_open = spots.is_some();
    let mut spots_changed = false;
    tx.send(msg_hello(hello_to_wire(&hello)))
        .await
        .map_err(|_| SessionError::Closed)?;
    let mut inbound = client.collect(ReceiverStream::new(rx)).await?.into_inner();
    info!(host_id = %host.host_id, reconciler = %cfg.reconciler, "connected");
    metrics.session_opened();

    let mut seq = 0u64;
    let mut need_full = true;
    let mut ticker = tokio::time::interval(cfg.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let mut data = match kernel.report(need_full).await {
                    Ok(d) => d,
                    Err(KernelError::Scan(e)) => {
                        // Skip this interval; the next report is a full one so
                        // the reconciler never applies a delta against a gap.
                        warn!(host_id = %host.host_id, "scan failed, skipping this interval: {e}");
                        need_full = true;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let new_addrs = kernel.addresses().await?;
                if std::mem::take(&mut spots_changed) {
                    data.blind_spots = Some(blind_spots_of(spots.as_deref_mut()));
                }
                let changed = if new_addrs != addrs { addrs = new_addrs; Some(addrs.clone()) } else { None };
                debug!(full = data.full, upserted = data.upserted.len(), removed = data.removed.len(), sockets = data.stats.sockets, scan_us = data.stats.scan_us, "report");
                let full = data.full;
                for m in report_stream(&mut seq, data, changed) {
                    if tx.send(m).await.is_err() {
                        return Err(why_closed(&mut inbound).await);
                    }
                }
                metrics.report_sent(full);
                need_full = false;
            }
            r = async { spots.as_deref_mut()?.changed().await.ok() }, if spots_open => {
                match r {
                    Some(()) => spots_changed = true,
                    None => spots_open = false,
                }
            }
            m = inbound.message() => {
                let Some(m) = m? else { return Err(SessionError::Closed) };
                match m.msg {
                    Some(v1::reconciler_message::Msg::Lookup(l)) => {
                        let (tuples, bad) = lookup_from_wire(&l);
                        if bad > 0 {
                            warn!(bad, "lookup tuples that do not decode were skipped (the reconciler asks again)");
                        }
                        let hits = kernel.lookup(tuples, l.attribute).await;
                        let answers = match hits {
                            Ok(h) => h,
                            Err(KernelError::Scan(e)) => {
                                warn!(host_id = %host.host_id, "lookup scan failed, the reconciler will ask again: {e}");
                                continue;
                            }
                            Err(e) => return Err(e.into()),
                        };
                        let reply = lookup_reply_to_wire(l.id, &answers);
                        if tx.send(v1::CollectorMessage { msg: Some(v1::collector_message::Msg::LookupReply(reply)) })
                            .await
                            .is_err()
                        {
                            return Err(why_closed(&mut inbound).await);
                        }
                        metrics.lookup_answered(answers.len());
                    }
                    Some(v1::reconciler_message::Msg::Config(c)) => {
                        let wants = wants_from_wire(&c);
                        debug!(?wants, "configuration from the reconciler");
                        kernel.configure(wants)?;
                    }
                    Some(v1::reconciler_message::Msg::Resync(r)) => {
                        info!(reason = %r.reason, "reconciler asked for a full table");
                        need_full = true;
                        ticker.reset_immediately();
                    }
                    None => {}
                }
            }
        }
    }
}

/// The request stream was dropped: the call has ended. Its status (e.g.
/// UNAVAILABLE "reconciler shutting down") is the reason, when it arrives
/// within a second; else the session just closed.
async fn why_closed(inbound: &mut tonic::Streaming<v1::ReconcilerMessage>) -> SessionError {
    let until = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        // Messages still buffered before the status are of no use now.
        match tokio::time::timeout_at(until, inbound.message()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(Err(status)) => return SessionError::Status(status),
            Ok(Ok(None)) | Err(_) => return SessionError::Closed,
        }
    }
}

fn msg_hello(h: v1::Hello) -> v1::CollectorMessage {
    v1::CollectorMessage {
        msg: Some(v1::collector_message::Msg::Hello(h)),
    }
}

/// Splits one report into messages of at most [`CHUNK`] records. A full
/// table keeps one seq across its chunks (the last has `last_chunk`); a large
/// delta becomes several consecutive deltas.
pub fn report_messages(seq: &mut u64, data: Report, addresses: Option<Vec<IpAddr>>) -> Vec<v1::CollectorMessage> {
    report_stream(seq, data, addresses).collect()
}

/// [`report_messages`] one message at a time: each chunk is converted to
/// the wire form only when asked for, so a full table of N sockets never
/// exists as N wire records at once (nor twice, as a list and as messages).
/// `seq` is advanced by the whole report at once.
pub fn report_stream(seq: &mut u64, mut data: Report, addresses: Option<Vec<IpAddr>>) -> ReportStream {
    let total = data.upserted.len() + data.removed.len();
    let chunks = total.div_ceil(CHUNK).max(1);
    let first_seq = *seq + 1;
    *seq += if data.full { 1 } else { chunks as u64 };
    data.addresses = addresses.unwrap_or_default();
    ReportStream {
        data,
        first_seq,
        chunks,
        next: 0,
    }
}

/// See [`report_stream`].
pub struct ReportStream {
    data: Report,
    first_seq: u64,
    chunks: usize,
    next: usize,
}

impl Iterator for ReportStream {
    type Item = v1::CollectorMessage;

    fn next(&mut self) -> Option<v1::CollectorMessage> {
        if self.next == self.chunks {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let last = i + 1 == self.chunks;
        let d = &mut self.data;
        let (ups, total) = (d.upserted.len(), d.upserted.len() + d.removed.len());
        let (lo, hi) = (i * CHUNK, ((i + 1) * CHUNK).min(total));
        let seq = if d.full {
            self.first_seq
        } else {
            self.first_seq + i as u64
        };
        let r = report_chunk_to_wire(
            d,
            lo.min(ups)..hi.min(ups),
            lo.max(ups) - ups..hi.max(ups) - ups,
            seq,
            last,
        );
        Some(v1::CollectorMessage {
            msg: Some(v1::collector_message::Msg::Report(r)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halfopen_core::{Side, SocketRecord, TcpState, Tuple};
    use prost::Message;

    fn recs(n: usize) -> Vec<SocketRecord> {
        (0..n)
            .map(|i| SocketRecord {
                tuple: Tuple::new(
                    format!("[2001:db8::1]:{}", 1000 + i % 60000).parse().unwrap(),
                    format!("[2001:db8::{:x}]:3306", i / 60000 + 2).parse().unwrap(),
                ),
                state: TcpState::Established,
                side: Side::Client,
                cookie: i as u64,
                inode: i as u64,
                uid: 0,
                keepalive: false,
                info: None,
            })
            .collect()
    }

    fn reports(m: &[v1::CollectorMessage]) -> Vec<&v1::Report> {
        m.iter()
            .map(|m| match &m.msg {
                Some(v1::collector_message::Msg::Report(r)) => r,
                _ => panic!("not a report"),
            })
            .collect()
    }

    #[test]
    fn half_a_million_sockets_stay_under_the_grpc_limit() {
        let data = Report {
            full: true,
            upserted: recs(500_000),
            ..Default::default()
        };
        let mut seq = 0;
        let msgs = report_messages(&mut seq, data, None);
        let rs = reports(&msgs);
        assert_eq!(rs.len(), 500_000usize.div_ceil(CHUNK));
        assert!(rs.iter().all(|r| r.seq == 1 && r.full));
        assert_eq!(rs.iter().filter(|r| r.last_chunk).count(), 1);
        assert!(rs.last().unwrap().last_chunk);
        let max = msgs.iter().map(|m| m.encoded_len()).max().unwrap();
        assert!(max < 4 * 1024 * 1024 / 2, "largest message {max} bytes");
        assert_eq!(rs.iter().map(|r| r.upserted.len()).sum::<usize>(), 500_000);
    }

    #[test]
    fn big_delta_becomes_consecutive_deltas() {
        let data = Report {
            full: false,
            upserted: recs(CHUNK + 10),
            removed: vec![Tuple::new(
                "198.18.0.1:1".parse().unwrap(),
                "198.18.0.2:2".parse().unwrap(),
            )],
            ..Default::default()
        };
        let mut seq = 7;
        let msgs = report_messages(&mut seq, data, Some(vec!["198.18.0.1".parse().unwrap()]));
        let rs = reports(&msgs);
        assert_eq!(rs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![8, 9]);
        assert!(rs.iter().all(|r| !r.full && r.last_chunk));
        assert_eq!(rs[1].removed.len(), 1);
        assert_eq!(rs[1].addresses.len(), 1);
        assert_eq!(seq, 9);
        // An empty delta still advances the sequence (a heartbeat).
        let msgs = report_messages(&mut seq, Report::default(), None);
        assert_eq!(reports(&msgs)[0].seq, 10);
    }
}
