//! [`Scanner`]: this host's TCP sockets and listeners as `halfopen-core`
//! records, read by one netlink inet_diag dump for both address families
//! (one per family on kernels without TCPDIAG_GETSOCK), or from
//! /proc/net/tcp{,6} when the kernel refuses netlink.
use std::time::{Duration, Instant};

use halfopen_core::{Listener, Side, SocketRecord, SourceKind, TcpState};

use crate::diag::{DiagSocket, DumpEvent, Ext, InetDiagMsg, InfoAttr, TCP_LISTEN, TIMER_KEEPALIVE};
use crate::error::ScanError;
use crate::filter::{encode_port_filter, encode_remote_port_filter, PortSet};
use crate::procnet::{ProcNetEntry, ProcNetReader};
use crate::Family;

/// What one [`Scanner::scan`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Records appended to `out`.
    pub sockets: u64,
    /// INET_DIAG_INFO attributes present but too short (kernels before 4.1)
    /// or malformed; those records have `info: None`.
    pub info_parse_failures: u64,
    pub elapsed: Duration,
    /// Sockets the kernel reported with a state or family this crate does
    /// not know (never seen; logged).
    pub skipped: u64,
}

/// Reads the TCP socket table of the network namespace of the thread that
/// created it.
#[derive(Debug)]
pub struct Scanner {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Netlink {
        sock: DiagSocket,
        /// The kernel answers TCPDIAG_GETSOCK: one dump covers both families.
        all_families: bool,
    },
    ProcNet(ProcNetReader),
}

/// Errors that mean "this kernel or sandbox will not give us sock_diag".
fn refused(e: &ScanError) -> bool {
    const REFUSED: [i32; 4] = [libc::EPERM, libc::EACCES, libc::EPROTONOSUPPORT, libc::EAFNOSUPPORT];
    match e {
        ScanError::Netlink { source, .. } => source.raw_os_error().is_some_and(|n| REFUSED.contains(&n)),
        // ENOENT from a dump: no inet_diag handler for TCP (tcp_diag not
        // built and not loadable), which is a refusal too.
        ScanError::Kernel { source, .. } => source
            .raw_os_error()
            .is_some_and(|n| REFUSED.contains(&n) || n == libc::ENOENT),
        _ => false,
    }
}

fn push_diag(m: &InetDiagMsg<'_>, with_info: bool, out: &mut Vec<SocketRecord>, stats: &mut ScanStats) {
    let (Some(tuple), Some(state)) = (m.tuple(), TcpState::from_kernel(m.state)) else {
        stats.skipped += 1;
        return;
    };
    let info = if with_info {
        match m.tcp_info() {
            Ok(InfoAttr::Present(i)) => Some(i),
            Ok(InfoAttr::Absent) => None, // TIME_WAIT and request sockets carry none
            Ok(InfoAttr::Short { .. }) | Err(_) => {
                stats.info_parse_failures += 1;
                None
            }
        }
    } else {
        None
    };
    out.push(SocketRecord {
        tuple,
        state,
        side: Side::Client,
        cookie: m.cookie,
        inode: u64::from(m.inode),
        uid: m.uid,
        keepalive: m.timer == TIMER_KEEPALIVE,
        info,
    });
    stats.sockets += 1;
}

fn push_proc(e: &ProcNetEntry, out: &mut Vec<SocketRecord>, stats: &mut ScanStats) {
    let Some(state) = TcpState::from_kernel(e.state) else {
        stats.skipped += 1;
        return;
    };
    out.push(SocketRecord {
        tuple: e.tuple,
        state,
        side: Side::Client,
        cookie: 0,
        inode: e.inode,
        uid: e.uid,
        keepalive: e.timer == TIMER_KEEPALIVE,
        info: None,
    });
    stats.sockets += 1;
}

/// Which port of a socket a port filter tests.
#[derive(Debug, Clone, Copy)]
enum PortTest {
    Either,
    Remote,
}

fn in_mask(mask: u32, state: u8) -> bool {
    1u32.checked_shl(u32::from(state)).is_some_and(|bit| mask & bit != 0)
}

impl Scanner {
    /// Opens a NETLINK_SOCK_DIAG socket in the caller's network namespace and
    /// makes one small dump (the IPv4 listeners) to check that the kernel
    /// answers. If the kernel refuses (EPERM, EACCES, EPROTONOSUPPORT,
    /// EAFNOSUPPORT at socket/bind/first dump, or ENOENT from the dump: no
    /// tcp_diag), falls back to /proc/net/tcp{,6} with one `tracing::warn!`.
    /// Any other error is returned.
    pub fn open() -> Result<Scanner, ScanError> {
        match Self::netlink() {
            Ok(s) => Ok(s),
            Err(e) if refused(&e) => {
                tracing::warn!(
                    "netlink sock_diag refused ({e}); reading /proc/net/tcp and /proc/net/tcp6 instead \
                     (slower, no socket cookies, no tcp_info, no listen backlogs)"
                );
                Ok(Self::procnet())
            }
            Err(e) => Err(e),
        }
    }

    /// Netlink only: like [`Scanner::open`] without the fallback.
    pub fn netlink() -> Result<Scanner, ScanError> {
        let mut sock = DiagSocket::open()?;
        sock.dump(Family::V4, 1 << TCP_LISTEN, false, |_| {})?;
        // One dump for both families walks the kernel's socket hash once
        // instead of twice; use it when the kernel has the interface.
        let all_families = match sock.dump_all_families(1 << TCP_LISTEN, false, None, |_| {}) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("TCPDIAG_GETSOCK refused ({e}); one sock_diag dump per address family");
                false
            }
        };
        Ok(Scanner {
            backend: Backend::Netlink { sock, all_families },
        })
    }

    /// A scanner that uses /proc/net/tcp{,6} only.
    pub fn procnet() -> Scanner {
        Scanner {
            backend: Backend::ProcNet(ProcNetReader::new()),
        }
    }

    pub fn source(&self) -> SourceKind {
        match self.backend {
            Backend::Netlink { .. } => SourceKind::Netlink,
            Backend::ProcNet(_) => SourceKind::ProcNet,
        }
    }

    /// Every socket of both address families whose state bit (`1 << kernel
    /// state number`) is in `state_mask`, appended to `out`: netlink makes one
    /// TCPDIAG_GETSOCK dump (one walk of the kernel's socket hash), or one
    /// sock_diag dump per family where the kernel lacks that interface. Tuples are canonical, local = this host's end; `side` is always
    /// [`Side::Client`] (the caller classifies). With `with_info`, netlink
    /// asks for tcp_info and fills `info` (the /proc source has none).
    /// `keepalive` is "the kernel reports the keepalive timer pending"
    /// (`idiag_timer == 2`, `tr == 2` in /proc). The kernel reports one timer
    /// per socket: while data is unacknowledged the retransmit timer (1)
    /// hides the keepalive one; and an orphaned FIN_WAIT2 socket uses the
    /// same timer when `tcp_fin_timeout` exceeds 60 s (at 60 s or less it is
    /// a timewait minisocket: state FIN_WAIT2, timer 3, inode 0).
    pub fn scan(
        &mut self,
        state_mask: u32,
        with_info: bool,
        out: &mut Vec<SocketRecord>,
    ) -> Result<ScanStats, ScanError> {
        self.scan_filtered(state_mask, with_info, None, None, out)
    }

    /// Like [`Scanner::scan`], but only sockets whose local or remote port
    /// is in `ports` (duplicates and order do not matter; empty = nothing,
    /// without asking the kernel). Netlink passes the test to the kernel as
    /// an inet_diag bytecode filter ([`crate::filter`]), so the sockets left
    /// out are never copied to user space and `with_info` costs only for
    /// those returned; the kernel still walks every socket of the states in
    /// `state_mask`. The /proc source, and netlink for a list too long for a
    /// bytecode program (more than about 2,700 separate ports), test each
    /// socket in user space instead.
    pub fn scan_ports(
        &mut self,
        state_mask: u32,
        with_info: bool,
        ports: &[u16],
        out: &mut Vec<SocketRecord>,
    ) -> Result<ScanStats, ScanError> {
        self.scan_port_filter(state_mask, with_info, ports, PortTest::Either, out)
    }

    /// Like [`Scanner::scan_ports`], but only the remote port is tested: the
    /// sockets that connected to one of `ports`, not those accepted on them
    /// (the client ends of connections to those ports).
    pub fn scan_remote_ports(
        &mut self,
        state_mask: u32,
        with_info: bool,
        ports: &[u16],
        out: &mut Vec<SocketRecord>,
    ) -> Result<ScanStats, ScanError> {
        self.scan_port_filter(state_mask, with_info, ports, PortTest::Remote, out)
    }

    fn scan_port_filter(
        &mut self,
        state_mask: u32,
        with_info: bool,
        ports: &[u16],
        test: PortTest,
        out: &mut Vec<SocketRecord>,
    ) -> Result<ScanStats, ScanError> {
        if ports.is_empty() {
            return Ok(ScanStats::default());
        }
        let mut bytecode = Vec::new();
        let netlink = matches!(self.backend, Backend::Netlink { .. });
        let in_kernel = netlink
            && match test {
                PortTest::Either => encode_port_filter(ports, &mut bytecode),
                PortTest::Remote => encode_remote_port_filter(ports, &mut bytecode),
            };
        if in_kernel {
            self.scan_filtered(state_mask, with_info, Some(&bytecode), None, out)
        } else {
            if netlink {
                tracing::debug!(
                    ports = ports.len(),
                    "port list too long for a sock_diag bytecode filter; filtering in user space"
                );
            }
            let set = (PortSet::new(ports), test);
            self.scan_filtered(state_mask, with_info, None, Some(&set), out)
        }
    }

    /// The scan: `bytecode` goes to the kernel, `set` is tested here.
    fn scan_filtered(
        &mut self,
        state_mask: u32,
        with_info: bool,
        bytecode: Option<&[u8]>,
        set: Option<&(PortSet, PortTest)>,
        out: &mut Vec<SocketRecord>,
    ) -> Result<ScanStats, ScanError> {
        let t0 = Instant::now();
        let mut stats = ScanStats::default();
        let wanted = |local: u16, remote: u16| match set {
            None => true,
            Some((s, PortTest::Either)) => s.matches(local, remote),
            Some((s, PortTest::Remote)) => s.contains(remote),
        };
        match &mut self.backend {
            Backend::Netlink { sock, all_families } => {
                let targets: &[Option<Family>] = if *all_families {
                    &[None]
                } else {
                    &[Some(Family::V4), Some(Family::V6)]
                };
                for &target in targets {
                    let base = out.len();
                    let mut fam = ScanStats::default();
                    let on = |ev: DumpEvent<'_, '_>| match ev {
                        DumpEvent::Socket(m) => {
                            if wanted(m.sport, m.dport) {
                                push_diag(m, with_info, out, &mut fam);
                            }
                        }
                        DumpEvent::Restart => {
                            out.truncate(base);
                            fam = ScanStats::default();
                        }
                    };
                    match target {
                        None => sock.dump_all_families(state_mask, with_info, bytecode, on)?,
                        Some(family) => sock.dump_filtered(family, state_mask, with_info, bytecode, on)?,
                    }
                    stats.sockets += fam.sockets;
                    stats.info_parse_failures += fam.info_parse_failures;
                    stats.skipped += fam.skipped;
                }
            }
            Backend::ProcNet(reader) => {
                reader.for_each(|_, e| {
                    if in_mask(state_mask, e.state) && wanted(e.tuple.local_port(), e.tuple.remote_port()) {
                        push_proc(e, out, &mut stats);
                    }
                })?;
            }
        }
        if stats.skipped > 0 {
            tracing::warn!(
                skipped = stats.skipped,
                "sockets with an unknown state or family were skipped"
            );
        }
        stats.elapsed = t0.elapsed();
        Ok(stats)
    }

    /// Listening sockets of both families, appended to `out`: `queue` is the
    /// accept queue now, `backlog` its limit (0 from /proc, which does not
    /// show it), `drops` the socket's sk_drops (None from /proc), `process` None.
    pub fn listeners(&mut self, out: &mut Vec<Listener>) -> Result<(), ScanError> {
        match &mut self.backend {
            Backend::Netlink { sock, .. } => {
                for family in Family::ALL {
                    let base = out.len();
                    sock.dump(family, 1 << TCP_LISTEN, Ext::SKMEMINFO, |ev| match ev {
                        DumpEvent::Socket(m) => {
                            if let Some(t) = m.tuple() {
                                out.push(Listener {
                                    addr: t.local(),
                                    queue: m.rqueue,
                                    backlog: m.wqueue,
                                    inode: u64::from(m.inode),
                                    uid: m.uid,
                                    process: None,
                                    libwrap: false,
                                    // A malformed attribute only loses the count.
                                    drops: m.sk_drops().ok().flatten(),
                                });
                            }
                        }
                        DumpEvent::Restart => out.truncate(base),
                    })?;
                }
            }
            Backend::ProcNet(reader) => {
                reader.for_each(|_, e| {
                    if e.state == TCP_LISTEN {
                        out.push(Listener {
                            addr: e.tuple.local(),
                            queue: e.rx_queue,
                            backlog: 0,
                            inode: e.inode,
                            uid: e.uid,
                            process: None,
                            libwrap: false,
                            drops: None,
                        });
                    }
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn source_display() {
        assert_eq!(SourceKind::Netlink.to_string(), "netlink");
        assert_eq!(SourceKind::ProcNet.to_string(), "proc");
    }

    #[test]
    fn refusals() {
        let nl = |n| ScanError::Netlink {
            op: "socket",
            source: io::Error::from_raw_os_error(n),
        };
        let k = |n| ScanError::Kernel {
            family: "AF_INET",
            source: io::Error::from_raw_os_error(n),
        };
        for n in [libc::EPERM, libc::EACCES, libc::EPROTONOSUPPORT, libc::EAFNOSUPPORT] {
            assert!(refused(&nl(n)));
            assert!(refused(&k(n)));
        }
        assert!(refused(&k(libc::ENOENT)));
        assert!(!refused(&nl(libc::ENOENT)));
        assert!(!refused(&nl(libc::ENOBUFS)));
        assert!(!refused(&k(libc::EINVAL)));
        assert!(!refused(&ScanError::DumpInterrupted { family: "AF_INET" }));
    }

    #[test]
    fn masks() {
        assert!(in_mask(TcpState::MATCH_MASK, 1));
        assert!(!in_mask(TcpState::MATCH_MASK, 10));
        assert!(!in_mask(u32::MAX, 200));
    }
}
