//! The NETLINK_NETFILTER sockets: [`Conntrack`] sends the dump request and reads its answer;
//! [`ConntrackEvents`] is joined to the NEW and DESTROY groups and reads events without
//! blocking longer than asked. Both are bound to the network namespace of the thread that
//! opened them, for their whole life. Decoding is [`super::parse`]'s.
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use super::parse::{self, CtEntry, CtKind, CtMessage, NLM_F_DUMP_INTR};
use super::{ConntrackError, NatEntry, NatEvent};

/// User-space receive buffer. The kernel sizes dump datagrams from the reader's buffer but caps
/// them at 32 KiB (net/netlink/af_netlink.c `netlink_dump`); 64 KiB never truncates today, and
/// a truncated datagram makes the buffer grow and the dump restart once.
pub const RECV_BUF_LEN: usize = 64 * 1024;
/// How long one `recv` of a dump may wait for the kernel before the dump is abandoned.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Kernel receive buffer asked for the event socket (SO_RCVBUFFORCE, or SO_RCVBUF capped at
/// `net.core.rmem_max` without CAP_NET_ADMIN in the initial user namespace). Each queued event
/// costs its skb's truesize, about 1.3 KiB (measured on 6.18: a 64 KiB buffer held 51 NEW
/// events), so 8 MiB holds about 6,500 unread events of every protocol, NAT'd or not.
pub const DEFAULT_EVENT_BUFFER: usize = 8 << 20;
/// At most this many datagrams are read by one [`ConntrackEvents::poll`], so that a flood of
/// events cannot keep it from returning; [`EventStats::more`] says when it stopped there.
pub const MAX_DATAGRAMS_PER_POLL: usize = 4096;
/// `enum nfnetlink_groups` (include/uapi/linux/netfilter/nfnetlink.h).
const NFNLGRP_CONNTRACK_NEW: u32 = 1;
const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;
/// Upper bound on datagrams read to finish an abandoned dump.
const DRAIN_LIMIT: usize = 1 << 20;

/// What one [`Conntrack::dump`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpStats {
    /// Conntrack entries in the answer, of every protocol, decodable or not.
    pub seen: u64,
    /// NAT'd TCP entries appended to `out`.
    pub kept: u64,
    /// Entries whose payload did not decode (counted in `seen`, not kept).
    pub undecodable: u64,
}

/// What one [`ConntrackEvents::poll`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Datagrams read.
    pub datagrams: u64,
    /// Conntrack event messages in them (NEW, DESTROY), decodable or not.
    pub events: u64,
    /// NEW/DESTROY events of NAT'd TCP entries appended to `out`.
    pub kept: u64,
    /// Event messages that did not decode, plus datagrams whose rest could not be framed.
    pub undecodable: u64,
    /// Receive-buffer overruns (ENOBUFS): each also appended a [`NatEvent::Lost`].
    pub overruns: u64,
    /// The poll stopped after [`MAX_DATAGRAMS_PER_POLL`] datagrams: more are waiting.
    pub more: bool,
}

fn recv_retrying(sock: &Socket, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        match sock.recv(&mut &mut buf[..], flags | libc::MSG_TRUNC) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// A socket for dumping the conntrack table of the network namespace of the thread that
/// opened it, with its reused receive buffer.
pub struct Conntrack {
    sock: Socket,
    buf: Vec<u8>,
    req: Vec<u8>,
    seq: u32,
    /// A dump may still be running in the kernel (we stopped reading early).
    dirty: bool,
}

impl std::fmt::Debug for Conntrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conntrack")
            .field("fd", &self.sock.as_raw_fd())
            .field("buf", &self.buf.len())
            .field("seq", &self.seq)
            .finish()
    }
}

enum DumpEnd {
    Complete,
    Interrupted,
    Truncated { size: usize },
}

impl Conntrack {
    /// socket(NETLINK_NETFILTER), bind, connect to the kernel, a receive timeout of
    /// [`RECV_TIMEOUT`]. Needs no privilege and does not talk to the kernel yet.
    ///
    /// Errors: [`ConntrackError::NotAvailable`] if the kernel has no nfnetlink
    /// (EPROTONOSUPPORT); [`ConntrackError::Io`] otherwise.
    pub fn open() -> Result<Conntrack, ConntrackError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| ConntrackError::from_os("socket", e))?;
        sock.bind_auto().map_err(|e| ConntrackError::from_os("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| ConntrackError::from_os("connect", e))?;
        let timeout = nix::sys::time::TimeVal::new(RECV_TIMEOUT.as_secs() as libc::time_t, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &timeout)
            .map_err(|e| ConntrackError::from_os("setsockopt", e.into()))?;
        Ok(Conntrack {
            sock,
            buf: vec![0; RECV_BUF_LEN],
            req: Vec::with_capacity(32),
            seq: 0,
            dirty: false,
        })
    }

    /// Appends every NAT'd TCP entry of the table (IPv4 and IPv6, every zone) to `out`, in the
    /// kernel's hash order. If the dump is interrupted (NLM_F_DUMP_INTR) or a datagram was
    /// truncated, it is retried once, after removing what this call appended.
    ///
    /// Needs CAP_NET_ADMIN in the user namespace owning the socket's network namespace, for the
    /// thread that opened the socket and the one calling (net/netfilter/nfnetlink.c
    /// `nfnetlink_rcv`).
    ///
    /// Cost: one walk of the kernel's conntrack hash (shared by all namespaces) and a decode of
    /// every entry of this namespace, NAT'd or not. Measured on 6.18 (2 busy cores), 10,000
    /// NAT'd entries: 52-105 ms, of which decoding 17-24 ms (~2 µs an entry) and the rest the
    /// kernel; `conntrack -L` on the same table took 82-104 ms.
    ///
    /// Errors: [`ConntrackError::PermissionDenied`] without CAP_NET_ADMIN;
    /// [`ConntrackError::NotAvailable`] without ctnetlink; [`ConntrackError::Parse`] for a
    /// datagram that cannot be framed; [`ConntrackError::Io`] for a failed system call or a
    /// kernel that stops answering for [`RECV_TIMEOUT`].
    pub fn dump(&mut self, out: &mut Vec<NatEntry>) -> Result<DumpStats, ConntrackError> {
        let start = out.len();
        let r = self.dump_with(|item| match item {
            Item::Restart => out.truncate(start),
            Item::Entry(e) => {
                if let Some(n) = e.nat_entry() {
                    out.push(n);
                }
            }
            Item::Undecodable => {}
        });
        match r {
            Ok(mut st) => {
                st.kept = (out.len() - start) as u64;
                Ok(st)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Like [`Conntrack::dump`], but appends every decodable entry of the table, of any
    /// protocol, NAT'd or not (`kept` counts them). For diagnostics and tests: a busy host's
    /// table holds far more entries than NAT'd TCP ones.
    pub fn dump_entries(&mut self, out: &mut Vec<CtEntry>) -> Result<DumpStats, ConntrackError> {
        let start = out.len();
        let r = self.dump_with(|item| match item {
            Item::Restart => out.truncate(start),
            Item::Entry(e) => out.push(*e),
            Item::Undecodable => {}
        });
        match r {
            Ok(mut st) => {
                st.kept = (out.len() - start) as u64;
                Ok(st)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Runs the dump, retrying once after [`Item::Restart`] if it was interrupted or a
    /// datagram was truncated. The stats count the last attempt only.
    fn dump_with(&mut self, mut on: impl FnMut(Item<'_>)) -> Result<DumpStats, ConntrackError> {
        let mut retried = false;
        loop {
            let mut stats = DumpStats::default();
            let end = self.dump_once(&mut |e| {
                stats.seen += 1;
                match e {
                    Some(e) => on(Item::Entry(e)),
                    None => {
                        stats.undecodable += 1;
                        on(Item::Undecodable);
                    }
                }
            })?;
            match end {
                DumpEnd::Complete => return Ok(stats),
                DumpEnd::Interrupted if !retried => {
                    tracing::debug!("conntrack dump interrupted, retrying");
                }
                DumpEnd::Interrupted => return Err(ConntrackError::DumpInterrupted),
                DumpEnd::Truncated { size } if !retried => {
                    let grown = (size.saturating_add(4095) & !4095).max(self.buf.len() * 2);
                    tracing::debug!(size, grown, "ctnetlink datagram truncated, growing buffer");
                    self.buf.resize(grown, 0);
                }
                DumpEnd::Truncated { size } => {
                    return Err(ConntrackError::Truncated {
                        size,
                        capacity: self.buf.len(),
                    })
                }
            }
            retried = true;
            on(Item::Restart);
        }
    }

    fn dump_once(&mut self, on: &mut impl FnMut(Option<&CtEntry>)) -> Result<DumpEnd, ConntrackError> {
        if self.dirty {
            self.drain();
        }
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        parse::encode_dump_request(&mut self.req, seq);
        loop {
            match self.sock.send(&self.req, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => {
                    r.map_err(|e| ConntrackError::from_os("send", e))?;
                    break;
                }
            }
        }
        self.dirty = true;
        let mut interrupted = false;
        loop {
            let n = recv_retrying(&self.sock, &mut self.buf, 0).map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    ConntrackError::Io {
                        op: "recv",
                        source: io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer from the kernel in {RECV_TIMEOUT:?}"),
                        ),
                    }
                } else {
                    ConntrackError::from_os("recv", e)
                }
            })?;
            if n > self.buf.len() {
                self.drain();
                return Ok(DumpEnd::Truncated { size: n });
            }
            if n == 0 {
                return Err(ConntrackError::Io {
                    op: "recv",
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, "empty datagram"),
                });
            }
            for m in parse::messages(&self.buf[..n]) {
                let (header, message) = m?;
                if header.seq != seq {
                    continue; // left over from an abandoned dump
                }
                if header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match message {
                    CtMessage::Entry {
                        kind: CtKind::Dumped,
                        entry,
                    } => {
                        if !interrupted {
                            on(Some(&entry));
                        }
                    }
                    CtMessage::Undecodable {
                        kind: CtKind::Dumped,
                        error,
                    } => {
                        tracing::debug!(%error, "undecodable conntrack entry");
                        if !interrupted {
                            on(None);
                        }
                    }
                    CtMessage::Done { code } => {
                        self.dirty = false;
                        if code < 0 {
                            return Err(ConntrackError::from_kernel("dump", code.saturating_neg()));
                        }
                        return Ok(if interrupted {
                            DumpEnd::Interrupted
                        } else {
                            DumpEnd::Complete
                        });
                    }
                    CtMessage::Error { errno: 0 } => {}
                    CtMessage::Error { errno } => {
                        self.dirty = false;
                        return Err(ConntrackError::from_kernel("dump", errno));
                    }
                    CtMessage::Entry { .. } | CtMessage::Undecodable { .. } | CtMessage::Other { .. } => {}
                }
            }
        }
    }

    /// Reads without blocking until the kernel has nothing more to say, so a dump abandoned
    /// half-way does not make the next request fail with EBUSY.
    fn drain(&mut self) {
        for _ in 0..DRAIN_LIMIT {
            match recv_retrying(&self.sock, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(n) if n > 0 && n <= self.buf.len() => {
                    let done = parse::messages(&self.buf[..n])
                        .any(|m| matches!(m, Ok((_, CtMessage::Done { .. } | CtMessage::Error { .. })) | Err(_)));
                    if done {
                        break;
                    }
                }
                Ok(n) if n > self.buf.len() => continue,
                _ => break,
            }
        }
        self.dirty = false;
    }
}

/// What a dump hands to its consumer.
enum Item<'a> {
    Entry(&'a CtEntry),
    Undecodable,
    /// The dump is being retried: forget every entry given so far.
    Restart,
}

/// A NETLINK_NETFILTER socket joined to NFNLGRP_CONNTRACK_NEW and NFNLGRP_CONNTRACK_DESTROY of
/// the network namespace of the thread that subscribed. Non-blocking; its fd can be watched
/// with poll/epoll ([`AsFd`]).
pub struct ConntrackEvents {
    sock: Socket,
    buf: Vec<u8>,
}

impl std::fmt::Debug for ConntrackEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConntrackEvents")
            .field("fd", &self.sock.as_raw_fd())
            .finish()
    }
}

impl AsRawFd for ConntrackEvents {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for ConntrackEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl ConntrackEvents {
    /// Subscribes with a kernel receive buffer of [`DEFAULT_EVENT_BUFFER`] bytes.
    /// Subscribe before dumping, so that no entry created between the two is missed.
    ///
    /// Needs CAP_NET_ADMIN in the user namespace owning the network namespace (joining the
    /// groups: net/netlink/af_netlink.c `netlink_allowed`); the buffer above
    /// `net.core.rmem_max` needs it in the initial user namespace (else it is capped).
    ///
    /// Errors: [`ConntrackError::PermissionDenied`] without CAP_NET_ADMIN (joining the groups);
    /// [`ConntrackError::NotAvailable`] without nfnetlink; [`ConntrackError::Io`] otherwise.
    pub fn subscribe() -> Result<ConntrackEvents, ConntrackError> {
        Self::subscribe_with_buffer(DEFAULT_EVENT_BUFFER)
    }

    /// Like [`ConntrackEvents::subscribe`] with a kernel receive buffer of `bytes` (the kernel
    /// doubles it for bookkeeping and applies a floor of about 2 KiB). A small buffer overruns
    /// sooner ([`NatEvent::Lost`]).
    pub fn subscribe_with_buffer(bytes: usize) -> Result<ConntrackEvents, ConntrackError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| ConntrackError::from_os("socket", e))?;
        // The kernel takes an int (and doubles it, saturating).
        let size = bytes.min(libc::c_int::MAX as usize);
        // SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN in the initial user
        // namespace; SO_RCVBUF is capped at rmem_max silently.
        if setsockopt(&sock, sockopt::RcvBufForce, &size).is_err() {
            setsockopt(&sock, sockopt::RcvBuf, &size).map_err(|e| ConntrackError::from_os("setsockopt", e.into()))?;
        }
        sock.bind_auto().map_err(|e| ConntrackError::from_os("bind", e))?;
        sock.set_non_blocking(true)
            .map_err(|e| ConntrackError::from_os("setsockopt", e))?;
        for group in [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY] {
            sock.add_membership(group)
                .map_err(|e| ConntrackError::from_os("join conntrack event group", e))?;
        }
        Ok(ConntrackEvents {
            sock,
            buf: vec![0; RECV_BUF_LEN],
        })
    }

    /// The kernel receive buffer in bytes, as the kernel reports it (SO_RCVBUF: twice what
    /// was asked, or capped).
    pub fn receive_buffer(&self) -> Result<usize, ConntrackError> {
        self.sock
            .get_rx_buf_sz()
            .map_err(|e| ConntrackError::from_os("getsockopt", e))
    }

    /// Waits at most `wait` (zero: not at all) for an event, then reads every datagram already
    /// queued, up to [`MAX_DATAGRAMS_PER_POLL`], and appends the NEW/DESTROY events of NAT'd
    /// TCP entries to `out` in the order the kernel sent them. An overrun (ENOBUFS) appends
    /// [`NatEvent::Lost`] where it was noticed and reading goes on.
    ///
    /// A datagram that cannot be framed is counted in [`EventStats::undecodable`] (the events
    /// after the fault are lost, not misread). Errors: [`ConntrackError::Io`] for a failed poll
    /// or recv.
    pub fn poll(&mut self, out: &mut Vec<NatEvent>, wait: Duration) -> Result<EventStats, ConntrackError> {
        let mut st = EventStats::default();
        if !wait.is_zero() && !self.wait_readable(wait)? {
            return Ok(st);
        }
        for _ in 0..MAX_DATAGRAMS_PER_POLL {
            let n = match recv_retrying(&self.sock, &mut self.buf, libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(st),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    st.overruns += 1;
                    out.push(NatEvent::Lost);
                    continue;
                }
                Err(e) => return Err(ConntrackError::from_os("recv", e)),
            };
            st.datagrams += 1;
            if n > self.buf.len() {
                // An event of over 64 KiB cannot happen; count it rather than misread it.
                st.undecodable += 1;
                continue;
            }
            let p = parse::parse_events(&self.buf[..n], out);
            st.events += p.entries;
            st.kept += p.kept;
            st.undecodable += p.undecodable;
            if let Some(error) = p.error {
                tracing::debug!(%error, "conntrack event datagram cut short");
                st.undecodable += 1;
            }
        }
        st.more = true;
        Ok(st)
    }

    /// poll(2) for POLLIN for at most `wait`; false when nothing came.
    fn wait_readable(&self, wait: Duration) -> Result<bool, ConntrackError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so that a sub-millisecond wait still waits.
            let ms = libc::c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX);
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ConntrackError::from_os("poll", e));
            }
            // POLLERR (a pending ENOBUFS) also makes the socket worth reading.
            return Ok(rc > 0);
        }
    }
}
