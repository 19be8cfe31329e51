//! Where a worker's socket table comes from: [`TableSource`], the seam
//! between the collector and the kernel, and [`Polling`], the source that
//! dumps the table every interval (netlink sock_diag, or /proc/net/tcp where
//! the kernel refuses sock_diag). The eBPF source ([`crate::bpf`]) follows
//! the table as it changes behind the same trait ([`TableSource::changes`]);
//! [`SourceChoice`] is what the operator asked for.
use halfopen_core::{DropWitness, Listener, Process, SocketRecord, SourceKind, TcpState, Tuple};
use halfopen_sockets::{ScanError, ScanStats, Scanner};

/// Where a worker's socket table comes from (one network namespace).
///
/// **A lookup is always answered from a fresh kernel read**, taken after the
/// lookup arrived, never from a table kept between calls: the race-free
/// confirmation (halfopen-engine's crate documentation) rests on the
/// server's "absent" and the client's "still here" being observations made
/// after the reconciler asked.
pub trait TableSource: Send {
    fn kind(&self) -> SourceKind;

    /// Every listening socket now (owners not resolved).
    fn listeners(&mut self, out: &mut Vec<Listener>) -> Result<(), ScanError>;

    /// The whole table now, in every state that matters for matching
    /// ([`TcpState::MATCH_MASK`]); sides are decided by the caller.
    fn dump(&mut self, out: &mut Vec<SocketRecord>) -> Result<ScanStats, ScanError>;

    /// ESTABLISHED sockets whose remote port is one of `ports`, with
    /// tcp_info (for silent greeting-port clients). None: this source cannot
    /// read tcp_info.
    fn greeting_clients(&mut self, ports: &[u16], out: &mut Vec<SocketRecord>) -> Option<Result<ScanStats, ScanError>>;

    /// A fresh kernel read of these tuples (never a cache): the records
    /// found, in any order; a tuple not found is absent in every state.
    fn lookup(&mut self, tuples: &[Tuple], out: &mut Vec<SocketRecord>) -> Result<(), ScanError>;

    /// Whether this source follows changes ([`TableSource::changes`]).
    fn follows(&self) -> bool {
        false
    }

    /// For sources that see sockets change (eBPF): the records of the
    /// sockets that changed since the previous `dump` or `changes` (sides
    /// are decided by the caller) appended to `out`, and the tuples gone
    /// appended to `removed`. `listeners` is this report's listener scan.
    /// Polling sources say [`Changes::Unfollowed`].
    fn changes(&mut self, listeners: &[Listener], out: &mut Vec<SocketRecord>, removed: &mut Vec<Tuple>) -> Changes {
        let _ = (listeners, out, removed);
        Changes::Unfollowed
    }

    /// Handshakes this namespace's kernel dropped on a full accept queue
    /// since the previous call, one per tuple (eBPF source only).
    fn witnessed(&mut self, out: &mut Vec<DropWitness>) {
        let _ = out;
    }

    /// The process that called connect() on socket `cookie`, when the
    /// source saw it happen (eBPF); None: find the owner through /proc.
    fn connect_owner(&mut self, cookie: u64) -> Option<Process> {
        let _ = cookie;
        None
    }

    /// The kernel's `Tcp: CurrEstab` as the worker read it with this
    /// report's counters (eBPF: held against the table built from events,
    /// [`crate::estab`]; polling sources ignore it).
    fn kernel_counted(&mut self, reading: crate::estab::Reading) {
        let _ = reading;
    }
}

/// A source chosen at run time (a namespace's worker takes the eBPF source
/// when the collector has one, else polling).
impl TableSource for Box<dyn TableSource> {
    fn kind(&self) -> SourceKind {
        (**self).kind()
    }
    fn listeners(&mut self, out: &mut Vec<Listener>) -> Result<(), ScanError> {
        (**self).listeners(out)
    }
    fn dump(&mut self, out: &mut Vec<SocketRecord>) -> Result<ScanStats, ScanError> {
        (**self).dump(out)
    }
    fn greeting_clients(&mut self, ports: &[u16], out: &mut Vec<SocketRecord>) -> Option<Result<ScanStats, ScanError>> {
        (**self).greeting_clients(ports, out)
    }
    fn lookup(&mut self, tuples: &[Tuple], out: &mut Vec<SocketRecord>) -> Result<(), ScanError> {
        (**self).lookup(tuples, out)
    }
    fn follows(&self) -> bool {
        (**self).follows()
    }
    fn changes(&mut self, listeners: &[Listener], out: &mut Vec<SocketRecord>, removed: &mut Vec<Tuple>) -> Changes {
        (**self).changes(listeners, out, removed)
    }
    fn witnessed(&mut self, out: &mut Vec<DropWitness>) {
        (**self).witnessed(out)
    }
    fn connect_owner(&mut self, cookie: u64) -> Option<Process> {
        (**self).connect_owner(cookie)
    }
    fn kernel_counted(&mut self, reading: crate::estab::Reading) {
        (**self).kernel_counted(reading)
    }
}

/// What [`TableSource::changes`] had for a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The source does not follow changes: dump and diff.
    Unfollowed,
    /// What changed was appended.
    Delta,
    /// A dump is due (why): a loss, the start, the periodic one. Dump and diff.
    Whole(String),
}

/// Which source `halfopen collector --source` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceChoice {
    /// eBPF where this build, the kernel and the privileges allow it, else netlink.
    #[default]
    Auto,
    /// eBPF, or fail.
    Bpf,
    /// netlink sock_diag every interval (/proc/net/tcp if the kernel refuses sock_diag).
    Netlink,
    /// /proc/net/tcp{,6} every interval.
    Proc,
}

impl SourceChoice {
    pub const ALL: [SourceChoice; 4] = [
        SourceChoice::Auto,
        SourceChoice::Bpf,
        SourceChoice::Netlink,
        SourceChoice::Proc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceChoice::Auto => "auto",
            SourceChoice::Bpf => "bpf",
            SourceChoice::Netlink => "netlink",
            SourceChoice::Proc => "proc",
        }
    }
}

impl std::fmt::Display for SourceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SourceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SourceChoice::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown source {s:?} (sources: auto, bpf, netlink, proc)"))
    }
}

/// The polling source: a [`Scanner`] read afresh at every call.
pub struct Polling {
    scanner: Scanner,
    buf: Vec<SocketRecord>,
}

impl Polling {
    /// netlink sock_diag, or /proc/net/tcp{,6} when netlink is refused or
    /// `force_proc`; in the network namespace of the calling thread.
    pub fn open(force_proc: bool) -> Result<Polling, ScanError> {
        let scanner = if force_proc {
            Scanner::procnet()
        } else {
            Scanner::open()?
        };
        Ok(Polling {
            scanner,
            buf: Vec::new(),
        })
    }
}

impl TableSource for Polling {
    fn kind(&self) -> SourceKind {
        self.scanner.source()
    }

    fn listeners(&mut self, out: &mut Vec<Listener>) -> Result<(), ScanError> {
        self.scanner.listeners(out)
    }

    fn dump(&mut self, out: &mut Vec<SocketRecord>) -> Result<ScanStats, ScanError> {
        self.scanner.scan(TcpState::MATCH_MASK, false, out)
    }

    fn greeting_clients(&mut self, ports: &[u16], out: &mut Vec<SocketRecord>) -> Option<Result<ScanStats, ScanError>> {
        if self.scanner.source() == SourceKind::ProcNet {
            return None; // /proc/net/tcp has no tcp_info
        }
        // Remote port only: the server ends on a greeting port (a DB host's
        // every connection) are not client sockets and need no tcp_info.
        Some(
            self.scanner
                .scan_remote_ports(TcpState::Established.mask_bit(), true, ports, out),
        )
    }

    fn lookup(&mut self, tuples: &[Tuple], out: &mut Vec<SocketRecord>) -> Result<(), ScanError> {
        fresh_lookup(&mut self.scanner, &mut self.buf, tuples, out)
    }
}

/// What every source's [`TableSource::lookup`] does: a fresh dump of every
/// socket in `scanner`'s namespace (into `buf`, reused), the records of
/// `tuples` appended to `out`. Never a table kept between calls: the
/// race-free confirmation rests on it.
pub(crate) fn fresh_lookup(
    scanner: &mut Scanner,
    buf: &mut Vec<SocketRecord>,
    tuples: &[Tuple],
    out: &mut Vec<SocketRecord>,
) -> Result<(), ScanError> {
    buf.clear();
    scanner.scan(TcpState::MATCH_MASK, false, buf)?;
    let wanted: rustc_hash::FxHashSet<Tuple> = tuples.iter().copied().collect();
    out.extend(buf.iter().filter(|r| wanted.contains(&r.tuple)));
    Ok(())
}
