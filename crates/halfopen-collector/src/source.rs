//! Where a worker's socket table comes from: [`TableSource`], the seam
//! between the collector and the kernel, and [`Polling`], the source that
//! dumps the table every interval (netlink sock_diag, or /proc/net/tcp where
//! the kernel refuses sock_diag). An event-driven source (eBPF) and one
//! source per network namespace plug in behind the same trait.
use halfopen_core::{Listener, SocketRecord, SourceKind, TcpState, Tuple};
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
        // A fresh dump of every socket; the wanted ones are kept.
        self.buf.clear();
        self.scanner.scan(TcpState::MATCH_MASK, false, &mut self.buf)?;
        let wanted: std::collections::HashSet<Tuple> = tuples.iter().copied().collect();
        out.extend(self.buf.iter().filter(|r| wanted.contains(&r.tuple)));
        Ok(())
    }
}
