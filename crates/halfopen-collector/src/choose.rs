//! `halfopen collector --source`: which [`crate::source::TableSource`] the
//! worker runs, and why. `auto` takes the eBPF source where this build, the
//! kernel and the collector's privileges allow it, and netlink otherwise;
//! either way it logs which and why (the reason eBPF was not taken, or the
//! drop witness's hook).
use crate::bpf::{BpfHub, BpfSource, DEFAULT_DUMP_EVERY};
use crate::metrics::CollectorMetrics;
use crate::source::TableSource;
use crate::source::{Polling, SourceChoice};
use crate::worker::SharedOwners;
use crate::worker::{Kernel, KernelError};
use halfopen_sockets::ScanError;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Why the eBPF source cannot run here, or the error that `--source bpf`
/// reports.
#[derive(Debug, thiserror::Error)]
pub enum BpfUnavailable {
    #[error("this build of halfopen has no eBPF programs (built without the cargo feature `bpf`)")]
    NotCompiledIn,
    #[error(
        "the collector lacks {0} (the eBPF source needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; see deploy/README.md)"
    )]
    Capabilities(String),
    #[error("the kernel gives no network namespace cookie (SO_NETNS_COOKIE, Linux 5.14+){0}")]
    NoNetnsCookie(String),
    #[error("loading the eBPF programs: {0}")]
    Load(#[from] halfopen_bpf::BpfError),
    #[error("starting the eBPF source: {0}")]
    Kernel(#[from] KernelError),
}

/// Options of the eBPF source.
#[derive(Clone, Copy, Debug)]
pub struct BpfConfig {
    /// A sock_diag dump at least this often.
    pub dump_every: Duration,
    /// Size of the transitions ring (None: halfopen-bpf's default, 16 MiB).
    pub ring_bytes: Option<u32>,
}

impl Default for BpfConfig {
    fn default() -> Self {
        BpfConfig {
            dump_every: DEFAULT_DUMP_EVERY,
            ring_bytes: None,
        }
    }
}

/// The own namespace's worker, and the loaded eBPF programs when it took
/// the eBPF source: every other covered namespace subscribes to them
/// (one program for every namespace, routed by netns cookie).
pub struct Chosen {
    pub kernel: Kernel,
    pub hub: Option<Arc<BpfHub>>,
}

/// Starts the worker on the source `choice` asks for (see the module
/// documentation), in the calling thread's network namespace, with the
/// owner cache `owners`, naming `host` in its log lines and counting its
/// scans into `metrics`. Errors: `--source bpf` that cannot run (why), or
/// a polling source that cannot read the kernel.
pub fn start(
    choice: SourceChoice,
    bpf: BpfConfig,
    owners: SharedOwners,
    host: String,
    metrics: CollectorMetrics,
) -> Result<Chosen, StartError> {
    let bpf_started = with_bpf(choice, || start_bpf(bpf, owners.clone(), host.clone(), metrics.clone()))?;
    if let Some(chosen) = bpf_started {
        return Ok(chosen);
    }
    let force_proc = matches!(choice, SourceChoice::Proc);
    let kernel = Kernel::start_shared(owners, host, metrics, move || Polling::open(force_proc))?;
    Ok(Chosen { kernel, hub: None })
}

/// What `--source` says about eBPF, given how to start it: `proc` and
/// `netlink` never try (None), `bpf` must (its error is the collector's),
/// `auto` tries and falls back (None), logging why.
fn with_bpf<T>(
    choice: SourceChoice,
    try_bpf: impl FnOnce() -> Result<T, BpfUnavailable>,
) -> Result<Option<T>, StartError> {
    match choice {
        SourceChoice::Proc | SourceChoice::Netlink => Ok(None),
        SourceChoice::Bpf => try_bpf().map(Some).map_err(StartError::Bpf),
        SourceChoice::Auto => Ok(try_bpf()
            .inspect_err(|why| info!("source netlink (--source auto): the eBPF source is not available: {why}"))
            .ok()),
    }
}

/// The source of another namespace's worker, opened on that worker's thread
/// (inside the namespace): the eBPF source fed by `hub` when there is one
/// and the namespace has a cookie, else polling (`force_proc`: /proc/net).
/// An eBPF source that cannot be opened there falls back to polling, said
/// once per namespace.
pub fn open_in_namespace(
    hub: Option<(Arc<BpfHub>, Duration)>,
    force_proc: bool,
    host: &str,
    metrics: CollectorMetrics,
) -> Result<Box<dyn TableSource>, ScanError> {
    if let Some((hub, dump_every)) = hub {
        match halfopen_sockets::netns::current_cookie() {
            Ok(Some(c)) => match BpfSource::open(hub, c.0, dump_every, metrics) {
                Ok(s) => return Ok(Box::new(s)),
                Err(e) => warn!(host_id = %host, "the eBPF source cannot follow this namespace ({e}): polling it"),
            },
            Ok(None) => {
                warn!(host_id = %host, "this namespace has no netns cookie (Linux 5.14+): polling it instead of eBPF")
            }
            Err(e) => warn!(host_id = %host, "reading the netns cookie failed ({e}): polling this namespace"),
        }
    }
    Ok(Box::new(Polling::open(force_proc)?))
}

/// Why the collector could not start its source.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--source bpf: {0}")]
    Bpf(BpfUnavailable),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

fn start_bpf(
    cfg: BpfConfig,
    owners: SharedOwners,
    host: String,
    metrics: CollectorMetrics,
) -> Result<Chosen, BpfUnavailable> {
    check_bpf()?;
    let netns = own_cookie()?;
    let hub = load_hub(cfg, Some(netns))?;
    let own = hub.clone();
    let m = metrics.clone();
    let kernel = Kernel::start_shared(owners, host, metrics, move || {
        BpfSource::open(own, netns, cfg.dump_every, m)
    })?;
    Ok(Chosen { kernel, hub: Some(hub) })
}

/// The eBPF programs for a collector that does not cover its own namespace
/// (`--netns` without `self`): loaded with an empty namespace filter, which
/// every covered namespace joins when its worker subscribes. `--source
/// proc|netlink`: None. `auto`: None when eBPF cannot run here (logged with
/// the reason, and the namespaces are polled). Errors: `--source bpf` that
/// cannot run (why).
pub fn start_hub(choice: SourceChoice, cfg: BpfConfig) -> Result<Option<Arc<BpfHub>>, StartError> {
    with_bpf(choice, || {
        check_bpf()?;
        // The events are routed by netns cookie: the own namespace's tells
        // whether the kernel gives them (every namespace's or none's).
        own_cookie()?;
        load_hub(cfg, None)
    })
}

/// The calling thread's network namespace cookie (SO_NETNS_COOKIE).
fn own_cookie() -> Result<u64, BpfUnavailable> {
    match halfopen_sockets::netns::current_cookie() {
        Ok(Some(c)) => Ok(c.0),
        Ok(None) => Err(BpfUnavailable::NoNetnsCookie(String::new())),
        Err(e) => Err(BpfUnavailable::NoNetnsCookie(format!(": {e}"))),
    }
}

/// What can be told before loading: the build and the capabilities.
fn check_bpf() -> Result<(), BpfUnavailable> {
    if !halfopen_bpf::COMPILED_IN {
        return Err(BpfUnavailable::NotCompiledIn);
    }
    // Asked first so that the reason is plain; the kernel's answer decides.
    if let Some(missing) = halfopen_bpf::insufficient_capabilities() {
        return Err(BpfUnavailable::Capabilities(missing));
    }
    Ok(())
}

/// Loads the programs (filtered to `netns`, or to nothing yet) and logs
/// what they follow and which hook witnesses drops.
fn load_hub(cfg: BpfConfig, netns: Option<u64>) -> Result<Arc<BpfHub>, BpfUnavailable> {
    let hub = BpfHub::start(netns, cfg.ring_bytes)?;
    match hub.witness_hook() {
        Some(h) => info!(
            "source bpf: TCP transitions from tracepoint sock:inet_sock_set_state, a sock_diag dump every {:?} and \
             whenever events are lost; dropped handshakes witnessed by {h:?}",
            cfg.dump_every
        ),
        None => warn!(
            "source bpf: TCP transitions followed, but this kernel allows no drop witness (fexit, kprobes and the \
             kfree_skb drop reasons all refused): dropped handshakes are not witnessed"
        ),
    }
    Ok(hub)
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)] // used only without the feature
    use super::*;

    /// A build without the cargo feature `bpf` (no clang needed): `--source
    /// bpf` refuses and says why, `auto` takes netlink. Run by `.ci/run` as
    /// `cargo test -p halfopen-collector --lib choose::` (the feature off).
    #[cfg(not(feature = "bpf"))]
    #[test]
    fn without_the_feature_bpf_is_refused_as_not_compiled_in_and_auto_takes_netlink() {
        use halfopen_core::SourceKind;
        const { assert!(!halfopen_bpf::COMPILED_IN) };
        let start = |choice| {
            let owners = crate::worker::shared_owners();
            start(
                choice,
                BpfConfig::default(),
                owners,
                String::new(),
                CollectorMetrics::default(),
            )
        };
        let err = match start(SourceChoice::Bpf) {
            Ok(k) => panic!("--source bpf started without the feature: {:?}", k.kernel.source()),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err,
            "--source bpf: this build of halfopen has no eBPF programs (built without the cargo feature `bpf`)"
        );
        let k = start(SourceChoice::Auto).expect("netlink (or /proc) is readable by anyone");
        assert!(k.hub.is_none(), "no programs to share without the feature");
        let k = k.kernel;
        assert!(
            matches!(k.source(), SourceKind::Netlink | SourceKind::ProcNet),
            "{:?}",
            k.source()
        );
    }
}
