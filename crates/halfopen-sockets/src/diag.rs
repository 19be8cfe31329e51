//! Netlink sock_diag for TCP: the dump request, a zero-allocation parser of
//! the kernel's answer, and [`DiagSocket`], which sends one and reads the other.
//!
//! The parser is pure (bytes in, borrowed views out) so it is tested on byte
//! fixtures and random input. It walks `nlmsghdr`s ([`frames`]), decodes
//! `struct inet_diag_msg` ([`InetDiagMsg`]) and the route attributes after it,
//! and reads the four `struct tcp_info` fields halfopen needs
//! ([`parse_tcp_info`]). Nothing is allocated per socket: a whole dump is read
//! into one reused buffer held by [`DiagSocket`].
//!
//! Requests are built with `netlink-packet-sock-diag` ([`encode_request`]);
//! that crate's response types allocate per message and are used only in
//! tests, to cross-check this parser. A request may carry an inet_diag
//! bytecode filter ([`encode_filtered_request`], programs from
//! [`crate::filter`]).
//!
//! Layouts (include/uapi/linux/netlink.h, inet_diag.h, tcp.h), all fields in
//! host byte order unless noted:
//! - `nlmsghdr` (16 bytes): len u32, type u16, flags u16, seq u32, pid u32;
//!   messages are padded to 4 bytes.
//! - `inet_diag_msg` (72 bytes): family u8, state u8, timer u8, retrans u8,
//!   id { sport be16, dport be16, src [be32; 4], dst [be32; 4], if u32,
//!   cookie [u32; 2] }, expires u32, rqueue u32, wqueue u32, uid u32, inode u32.
//! - `rtattr` (4 bytes + value): len u16 (header included), type u16; padded
//!   to 4 bytes.
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use halfopen_core::{TcpInfoLite, Tuple};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;

use crate::error::ScanError;
use crate::Family;

/// `nlmsghdr` size.
pub const NLMSG_HDRLEN: usize = 16;
/// Message type: ignore.
pub const NLMSG_NOOP: u16 = 1;
/// Message type: error (or ACK when the code is 0).
pub const NLMSG_ERROR: u16 = 2;
/// Message type: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// Message type of sock_diag requests and answers.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Message type of the older inet_diag interface (`struct inet_diag_req`),
/// whose TCP dump covers both address families in one walk; its answers
/// carry this type too.
pub const TCPDIAG_GETSOCK: u16 = 18;
/// `struct inet_diag_req` size (the TCPDIAG_GETSOCK request).
pub const INET_DIAG_REQ_V1_LEN: usize = 60;
/// Flag: the dump was interrupted by a change of the table; it may be
/// inconsistent.
pub const NLM_F_DUMP_INTR: u16 = 16;
/// `struct inet_diag_msg` size.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// Attribute type of `struct tcp_info`.
pub const INET_DIAG_INFO: u16 = 2;
/// Attribute type of the socket memory counters, `__u32[SK_MEMINFO_VARS]`
/// (include/uapi/linux/inet_diag.h, include/uapi/linux/sock_diag.h).
pub const INET_DIAG_SKMEMINFO: u16 = 7;
/// Index of `sk_drops` in the INET_DIAG_SKMEMINFO array
/// (include/uapi/linux/sock_diag.h `SK_MEMINFO_DROPS`; `ss -m` prints it as d<N>).
pub const SK_MEMINFO_DROPS: usize = 8;

/// The extensions a dump asks the kernel for (`idiag_ext` bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ext {
    /// INET_DIAG_INFO: `struct tcp_info` (costs 20-30% on a full dump).
    pub info: bool,
    /// INET_DIAG_SKMEMINFO: socket memory counters, among them sk_drops.
    pub skmeminfo: bool,
}

impl Ext {
    /// The socket memory counters only (what listeners are dumped with).
    pub const SKMEMINFO: Ext = Ext {
        info: false,
        skmeminfo: true,
    };

    /// The `idiag_ext` byte: bit (attribute type - 1) per extension.
    pub fn bits(self) -> u8 {
        let mut b = 0;
        if self.info {
            b |= 1 << (INET_DIAG_INFO - 1);
        }
        if self.skmeminfo {
            b |= 1 << (INET_DIAG_SKMEMINFO - 1);
        }
        b
    }
}

/// `true` asks for tcp_info, `false` for nothing.
impl From<bool> for Ext {
    fn from(info: bool) -> Ext {
        Ext { info, skmeminfo: false }
    }
}
/// `idiag_timer` value of an armed keepalive timer (`sk_timer`).
pub const TIMER_KEEPALIVE: u8 = 2;
/// Kernel state number of LISTEN.
pub const TCP_LISTEN: u8 = 10;
/// Bytes of `struct tcp_info` needed for the fields of [`TcpInfoLite`]
/// (through `tcpi_bytes_received`, present since Linux 4.1).
pub const TCP_INFO_MIN_LEN: usize = 136;

// Offsets in struct tcp_info.
const TI_LAST_DATA_RECV: usize = 52;
const TI_RTT: usize = 68;
const TI_BYTES_ACKED: usize = 120;
const TI_BYTES_RECEIVED: usize = 128;

/// Why a sock_diag answer could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("netlink header at offset {offset}: only {have} bytes left")]
    ShortHeader { offset: usize, have: usize },
    #[error("netlink message at offset {offset} has length {len} but {have} bytes are left")]
    BadLength { offset: usize, len: u32, have: usize },
    #[error("NLMSG_ERROR payload of {have} bytes, need 4")]
    ShortError { have: usize },
    #[error("inet_diag_msg payload of {have} bytes, need {INET_DIAG_MSG_LEN}")]
    ShortDiagMsg { have: usize },
    #[error("route attribute at offset {offset} has length {len} but {have} bytes are left")]
    BadAttr { offset: usize, len: u16, have: usize },
}

/// A `nlmsghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NlHeader {
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

/// One netlink message, decoded as far as halfopen cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A SOCK_DIAG_BY_FAMILY answer: one socket.
    Socket(InetDiagMsg<'a>),
    /// NLMSG_DONE; `code` is negative (an errno) when the dump failed.
    Done { code: i32 },
    /// NLMSG_ERROR; `errno` is positive, 0 for an ACK.
    Error { errno: i32 },
    /// NLMSG_NOOP or a type halfopen does not use.
    Other { ty: u16 },
}

/// A header and its decoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: NlHeader,
    pub message: Message<'a>,
}

/// Iterator over the netlink messages of one datagram; see [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

/// The netlink messages in `buf` (one datagram as received). Stops after the
/// first error.
pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames {
        buf,
        pos: 0,
        failed: false,
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(a)
}
fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.pos;
        let rest = &self.buf[offset..];
        let r = parse_frame(rest, offset);
        match &r {
            Ok(f) => self.pos = offset.saturating_add(align4(f.header.len as usize)),
            Err(_) => self.failed = true,
        }
        Some(r)
    }
}

fn parse_frame(rest: &[u8], offset: usize) -> Result<Frame<'_>, ParseError> {
    if rest.len() < NLMSG_HDRLEN {
        return Err(ParseError::ShortHeader {
            offset,
            have: rest.len(),
        });
    }
    let header = NlHeader {
        len: u32_at(rest, 0),
        ty: u16_at(rest, 4),
        flags: u16_at(rest, 6),
        seq: u32_at(rest, 8),
        pid: u32_at(rest, 12),
    };
    let len = header.len as usize;
    if len < NLMSG_HDRLEN || len > rest.len() {
        return Err(ParseError::BadLength {
            offset,
            len: header.len,
            have: rest.len(),
        });
    }
    let payload = &rest[NLMSG_HDRLEN..len];
    let message = match header.ty {
        NLMSG_DONE => Message::Done {
            code: if payload.len() >= 4 {
                u32_at(payload, 0) as i32
            } else {
                0
            },
        },
        NLMSG_ERROR => {
            if payload.len() < 4 {
                return Err(ParseError::ShortError { have: payload.len() });
            }
            let code = u32_at(payload, 0) as i32;
            Message::Error {
                errno: code.checked_neg().unwrap_or(i32::MAX),
            }
        }
        SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => Message::Socket(InetDiagMsg::parse(payload)?),
        ty => Message::Other { ty },
    };
    Ok(Frame { header, message })
}

/// A borrowed, decoded `struct inet_diag_msg` and its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetDiagMsg<'a> {
    pub family: u8,
    /// Kernel TCP state number.
    pub state: u8,
    /// 0 none, 1 retransmit, 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero window probe.
    pub timer: u8,
    pub retrans: u8,
    /// Host byte order.
    pub sport: u16,
    /// Host byte order.
    pub dport: u16,
    /// Network byte order; an IPv4 address is in the first 4 bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ifindex: u32,
    /// `idiag_cookie[0] | idiag_cookie[1] << 32`.
    pub cookie: u64,
    pub expires: u32,
    pub rqueue: u32,
    pub wqueue: u32,
    pub uid: u32,
    pub inode: u32,
    /// The route attributes after the fixed part.
    pub attrs: &'a [u8],
}

/// What the INET_DIAG_INFO attribute of a message held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoAttr {
    /// No such attribute (not asked for, or a TIME_WAIT / request socket).
    Absent,
    /// Present but shorter than [`TCP_INFO_MIN_LEN`].
    Short {
        len: usize,
    },
    Present(TcpInfoLite),
}

impl<'a> InetDiagMsg<'a> {
    /// Decodes the payload of a SOCK_DIAG_BY_FAMILY message.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ParseError> {
        if payload.len() < INET_DIAG_MSG_LEN {
            return Err(ParseError::ShortDiagMsg { have: payload.len() });
        }
        let p = payload;
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&p[8..24]);
        dst.copy_from_slice(&p[24..40]);
        Ok(InetDiagMsg {
            family: p[0],
            state: p[1],
            timer: p[2],
            retrans: p[3],
            sport: u16::from_be_bytes([p[4], p[5]]),
            dport: u16::from_be_bytes([p[6], p[7]]),
            src,
            dst,
            ifindex: u32_at(p, 40),
            cookie: u64::from(u32_at(p, 44)) | (u64::from(u32_at(p, 48)) << 32),
            expires: u32_at(p, 52),
            rqueue: u32_at(p, 56),
            wqueue: u32_at(p, 60),
            uid: u32_at(p, 64),
            inode: u32_at(p, 68),
            attrs: &p[INET_DIAG_MSG_LEN..],
        })
    }

    /// Source address bytes as the family says: 4 for AF_INET, 16 for
    /// AF_INET6, None for anything else.
    pub fn src_ip(&self) -> Option<&[u8]> {
        match Family::from_af(self.family)? {
            Family::V4 => Some(&self.src[..4]),
            Family::V6 => Some(&self.src[..]),
        }
    }

    pub fn dst_ip(&self) -> Option<&[u8]> {
        match Family::from_af(self.family)? {
            Family::V4 => Some(&self.dst[..4]),
            Family::V6 => Some(&self.dst[..]),
        }
    }

    /// The canonical tuple, local = source. None for an unknown family.
    pub fn tuple(&self) -> Option<Tuple> {
        Tuple::from_raw(self.src_ip()?, self.sport, self.dst_ip()?, self.dport)
    }

    /// The route attributes: (type, value).
    pub fn attrs(&self) -> Attrs<'a> {
        Attrs {
            buf: self.attrs,
            pos: 0,
            failed: false,
        }
    }

    /// The value of the first attribute of this type.
    pub fn attr(&self, ty: u16) -> Result<Option<&'a [u8]>, ParseError> {
        for a in self.attrs() {
            let (t, v) = a?;
            if t == ty {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The listening socket's drop counter (sk_drops) from the
    /// INET_DIAG_SKMEMINFO attribute; None when the attribute is absent (not
    /// asked for) or too short to hold it.
    pub fn sk_drops(&self) -> Result<Option<u64>, ParseError> {
        let off = SK_MEMINFO_DROPS * 4;
        Ok(self
            .attr(INET_DIAG_SKMEMINFO)?
            .and_then(|v| v.get(off..off + 4))
            .map(|b| u64::from(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))))
    }

    /// The INET_DIAG_INFO attribute, decoded.
    pub fn tcp_info(&self) -> Result<InfoAttr, ParseError> {
        Ok(match self.attr(INET_DIAG_INFO)? {
            None => InfoAttr::Absent,
            Some(v) => match parse_tcp_info(v) {
                Some(i) => InfoAttr::Present(i),
                None => InfoAttr::Short { len: v.len() },
            },
        })
    }
}

/// Iterator over route attributes; see [`InetDiagMsg::attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let bad = |len: u16| ParseError::BadAttr {
            offset: self.pos,
            len,
            have: rest.len(),
        };
        if rest.len() < 4 {
            self.failed = true;
            return Some(Err(bad(0)));
        }
        let len = u16_at(rest, 0);
        let ty = u16_at(rest, 2) & 0x3fff; // NLA_TYPE_MASK
        if usize::from(len) < 4 || usize::from(len) > rest.len() {
            self.failed = true;
            return Some(Err(bad(len)));
        }
        self.pos = self.pos.saturating_add(align4(usize::from(len)));
        Some(Ok((ty, &rest[4..usize::from(len)])))
    }
}

/// The [`TcpInfoLite`] fields of a `struct tcp_info`; None when `b` is shorter
/// than [`TCP_INFO_MIN_LEN`].
pub fn parse_tcp_info(b: &[u8]) -> Option<TcpInfoLite> {
    if b.len() < TCP_INFO_MIN_LEN {
        return None;
    }
    Some(TcpInfoLite {
        bytes_received: u64_at(b, TI_BYTES_RECEIVED),
        bytes_acked: u64_at(b, TI_BYTES_ACKED),
        last_data_recv_ms: u32_at(b, TI_LAST_DATA_RECV),
        rtt_us: u32_at(b, TI_RTT),
    })
}

/// Writes into `out` (cleared first) a dump request for every TCP socket of
/// `family` whose state bit (`1 << state`) is in `states`, asking for
/// INET_DIAG_INFO when `with_info`.
pub fn encode_request(out: &mut Vec<u8>, seq: u32, family: Family, states: u32, with_info: impl Into<Ext>) {
    let ext: Ext = with_info.into();
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let socket_id = match family {
        Family::V4 => SocketId::new_v4(),
        Family::V6 => SocketId::new_v6(),
    };
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family: family.af(),
            protocol: libc::IPPROTO_TCP as u8,
            extensions: ExtensionFlags::from_bits_retain(ext.bits()),
            // from_bits_retain: the crate has no flag for NEW_SYN_RECV (12).
            states: StateFlags::from_bits_retain(states),
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    out.clear();
    out.resize(msg.buffer_len(), 0);
    msg.serialize(&mut out[..]);
}

/// Like [`encode_request`], followed by an `INET_DIAG_REQ_BYTECODE`
/// attribute holding `bytecode` (see [`crate::filter`]); `nlmsg_len` covers
/// it. `bytecode` is a whole number of 4-byte ops.
pub fn encode_filtered_request(
    out: &mut Vec<u8>,
    seq: u32,
    family: Family,
    states: u32,
    with_info: impl Into<Ext>,
    bytecode: &[u8],
) {
    encode_request(out, seq, family, states, with_info);
    push_bytecode(out, bytecode);
}

/// Appends an `INET_DIAG_REQ_BYTECODE` attribute holding `bytecode` to the
/// request in `out` (padded to 4 bytes) and makes `nlmsg_len` cover it.
fn push_bytecode(out: &mut Vec<u8>, bytecode: &[u8]) {
    debug_assert!(bytecode.len().is_multiple_of(4) && bytecode.len() <= crate::filter::MAX_PROGRAM_LEN);
    let attr_len = (4 + bytecode.len()).min(usize::from(u16::MAX)) as u16;
    out.extend_from_slice(&attr_len.to_ne_bytes());
    out.extend_from_slice(&crate::filter::INET_DIAG_REQ_BYTECODE.to_ne_bytes());
    out.extend_from_slice(bytecode);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_ne_bytes());
}

/// Writes into `out` (cleared first) a TCPDIAG_GETSOCK dump request
/// (`struct inet_diag_req`): every TCP socket of both address families whose
/// state bit is in `states`, in one walk of the kernel's socket hash, with
/// INET_DIAG_INFO when `with_info` and an optional bytecode filter. Layout:
/// family u8 (ignored by the kernel for dumps), src_len u8, dst_len u8,
/// ext u8, `inet_diag_sockid` (48 bytes, zero: no port filter; cookie
/// INET_DIAG_NOCOOKIE), states u32, dbs u32.
pub fn encode_all_families_request(
    out: &mut Vec<u8>,
    seq: u32,
    states: u32,
    with_info: impl Into<Ext>,
    bytecode: Option<&[u8]>,
) {
    out.clear();
    out.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set below
    out.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    let ext: u8 = with_info.into().bits();
    out.extend_from_slice(&[0, 0, 0, ext]);
    out.extend_from_slice(&[0u8; 40]); // sport, dport, src, dst, if
    out.extend_from_slice(&[0xff; 8]); // cookie: INET_DIAG_NOCOOKIE
    out.extend_from_slice(&states.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    debug_assert_eq!(out.len(), NLMSG_HDRLEN + INET_DIAG_REQ_V1_LEN);
    let len = out.len() as u32;
    out[..4].copy_from_slice(&len.to_ne_bytes());
    if let Some(bc) = bytecode {
        push_bytecode(out, bc);
    }
}

/// Which sockets one dump asks for.
#[derive(Debug, Clone, Copy)]
enum Target {
    Family(Family),
    /// Both families through TCPDIAG_GETSOCK.
    All,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Family(f) => f.name(),
            Target::All => "AF_INET+AF_INET6 (TCPDIAG_GETSOCK)",
        }
    }
}

/// What a dump hands to its callback.
#[derive(Debug)]
pub enum DumpEvent<'m, 'a> {
    /// One socket.
    Socket(&'m InetDiagMsg<'a>),
    /// The dump is being retried: forget every socket given so far.
    Restart,
}

enum DumpEnd {
    Complete,
    Interrupted,
    Truncated { size: usize },
}

/// Receive buffer size. The kernel sizes dump datagrams from the reader's
/// buffer but caps them at 32 KiB; 64 KiB never truncates today.
pub const RECV_BUF_LEN: usize = 64 * 1024;
/// How long one recv may wait for the kernel before the dump is abandoned.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);
const DRAIN_LIMIT: usize = 1 << 20;

/// A NETLINK_SOCK_DIAG socket (bound to the network namespace of the thread
/// that opened it) with its reused receive buffer.
pub struct DiagSocket {
    sock: netlink_sys::Socket,
    buf: Vec<u8>,
    req: Vec<u8>,
    seq: u32,
    /// A dump may still be running in the kernel (we stopped reading early).
    dirty: bool,
}

impl std::fmt::Debug for DiagSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiagSocket")
            .field("fd", &self.sock.as_raw_fd())
            .field("buf", &self.buf.len())
            .field("seq", &self.seq)
            .finish()
    }
}

fn nl_err(op: &'static str) -> impl FnOnce(io::Error) -> ScanError {
    move |source| ScanError::Netlink { op, source }
}

impl DiagSocket {
    /// socket(NETLINK_SOCK_DIAG), bind, connect to the kernel, set a receive
    /// timeout. Does not talk to the kernel yet.
    pub fn open() -> Result<DiagSocket, ScanError> {
        Self::with_buffer_len(RECV_BUF_LEN)
    }

    /// Like [`DiagSocket::open`] with a receive buffer of `len` bytes to
    /// start with (it grows when a datagram does not fit).
    pub fn with_buffer_len(len: usize) -> Result<DiagSocket, ScanError> {
        use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};
        let mut sock = Socket::new(NETLINK_SOCK_DIAG).map_err(nl_err("socket"))?;
        sock.bind_auto().map_err(nl_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(nl_err("connect"))?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: valid fd, pointer and length of a timeval.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(ScanError::Netlink {
                op: "setsockopt",
                source: io::Error::last_os_error(),
            });
        }
        Ok(DiagSocket {
            sock,
            buf: vec![0; len.max(NLMSG_HDRLEN)],
            req: Vec::with_capacity(128),
            seq: 0,
            dirty: false,
        })
    }

    /// Current receive buffer size (it grows if a datagram was truncated).
    pub fn buffer_len(&self) -> usize {
        self.buf.len()
    }

    /// Dumps every TCP socket of `family` whose state bit is in `states`,
    /// calling `on` for each. If the dump is interrupted (NLM_F_DUMP_INTR) or
    /// a datagram was truncated, it is retried once after
    /// [`DumpEvent::Restart`]; a second failure is an error.
    pub fn dump(
        &mut self,
        family: Family,
        states: u32,
        with_info: impl Into<Ext>,
        on: impl FnMut(DumpEvent<'_, '_>),
    ) -> Result<(), ScanError> {
        self.dump_filtered(family, states, with_info, None, on)
    }

    /// Like [`DiagSocket::dump`], with an inet_diag bytecode program (see
    /// [`crate::filter`]) that the kernel runs on every socket: only those it
    /// accepts are returned. The kernel refuses a malformed program with
    /// EINVAL ([`ScanError::Kernel`]).
    pub fn dump_filtered(
        &mut self,
        family: Family,
        states: u32,
        with_info: impl Into<Ext>,
        bytecode: Option<&[u8]>,
        on: impl FnMut(DumpEvent<'_, '_>),
    ) -> Result<(), ScanError> {
        self.dump_target(Target::Family(family), states, with_info.into(), bytecode, on)
    }

    /// Like [`DiagSocket::dump_filtered`] for both address families at once:
    /// one TCPDIAG_GETSOCK dump ([`encode_all_families_request`]), one walk
    /// of the kernel's socket hash instead of one per family (the walk of a
    /// family skips, but still visits, every socket of the other). Kernels
    /// without that interface answer EINVAL, ENOENT or EOPNOTSUPP.
    pub fn dump_all_families(
        &mut self,
        states: u32,
        with_info: impl Into<Ext>,
        bytecode: Option<&[u8]>,
        on: impl FnMut(DumpEvent<'_, '_>),
    ) -> Result<(), ScanError> {
        self.dump_target(Target::All, states, with_info.into(), bytecode, on)
    }

    fn dump_target(
        &mut self,
        target: Target,
        states: u32,
        with_info: Ext,
        bytecode: Option<&[u8]>,
        mut on: impl FnMut(DumpEvent<'_, '_>),
    ) -> Result<(), ScanError> {
        let mut retried = false;
        loop {
            match self.dump_once(target, states, with_info, bytecode, &mut on)? {
                DumpEnd::Complete => return Ok(()),
                DumpEnd::Interrupted if !retried => {
                    tracing::debug!(family = target.name(), "sock_diag dump interrupted, retrying");
                }
                DumpEnd::Interrupted => return Err(ScanError::DumpInterrupted { family: target.name() }),
                DumpEnd::Truncated { size } if !retried => {
                    // The kernel's dump datagrams are at most 32 KiB (or the
                    // reader's buffer if smaller, but never under one page).
                    let grown = (size.saturating_add(4095) & !4095)
                        .max(self.buf.len() * 2)
                        .max(32 * 1024);
                    tracing::debug!(size, grown, "sock_diag datagram truncated, growing buffer");
                    self.buf.resize(grown, 0);
                }
                DumpEnd::Truncated { size } => {
                    return Err(ScanError::Truncated {
                        size,
                        capacity: self.buf.len(),
                    })
                }
            }
            retried = true;
            on(DumpEvent::Restart);
        }
    }

    fn recv(&mut self, flags: libc::c_int) -> io::Result<usize> {
        loop {
            match self.sock.recv(&mut &mut self.buf[..], flags | libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn dump_once(
        &mut self,
        target: Target,
        states: u32,
        with_info: Ext,
        bytecode: Option<&[u8]>,
        on: &mut impl FnMut(DumpEvent<'_, '_>),
    ) -> Result<DumpEnd, ScanError> {
        if self.dirty {
            self.drain();
        }
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        match (target, bytecode) {
            (Target::Family(f), None) => encode_request(&mut self.req, seq, f, states, with_info),
            (Target::Family(f), Some(bc)) => encode_filtered_request(&mut self.req, seq, f, states, with_info, bc),
            (Target::All, bc) => encode_all_families_request(&mut self.req, seq, states, with_info, bc),
        }
        loop {
            match self.sock.send(&self.req, 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => {
                    r.map_err(nl_err("send"))?;
                    break;
                }
            }
        }
        self.dirty = true;
        let mut interrupted = false;
        loop {
            let n = self.recv(0).map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    ScanError::Netlink {
                        op: "recv",
                        source: io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer from the kernel in {RECV_TIMEOUT:?}"),
                        ),
                    }
                } else {
                    ScanError::Netlink { op: "recv", source: e }
                }
            })?;
            if n > self.buf.len() {
                // The tail of the datagram is lost; finish the kernel's dump
                // without waiting and let the caller retry.
                self.drain();
                return Ok(DumpEnd::Truncated { size: n });
            }
            if n == 0 {
                return Err(ScanError::Netlink {
                    op: "recv",
                    source: io::Error::new(io::ErrorKind::UnexpectedEof, "empty datagram"),
                });
            }
            for frame in frames(&self.buf[..n]) {
                let frame = frame?;
                if frame.header.seq != seq {
                    continue; // left over from an abandoned dump
                }
                if frame.header.flags & NLM_F_DUMP_INTR != 0 {
                    interrupted = true;
                }
                match frame.message {
                    Message::Socket(ref m) => {
                        if !interrupted {
                            on(DumpEvent::Socket(m));
                        }
                    }
                    Message::Done { code } => {
                        self.dirty = false;
                        if code < 0 {
                            return Err(ScanError::Kernel {
                                family: target.name(),
                                source: io::Error::from_raw_os_error(code.saturating_neg()),
                            });
                        }
                        return Ok(if interrupted {
                            DumpEnd::Interrupted
                        } else {
                            DumpEnd::Complete
                        });
                    }
                    Message::Error { errno: 0 } => {}
                    Message::Error { errno } => {
                        self.dirty = false;
                        return Err(ScanError::Kernel {
                            family: target.name(),
                            source: io::Error::from_raw_os_error(errno),
                        });
                    }
                    Message::Other { .. } => {}
                }
            }
        }
    }

    /// Reads without blocking until the kernel has nothing more to say, so a
    /// dump abandoned half-way does not make the next request fail with
    /// EBUSY. Each read lets the kernel queue the next part of a running dump.
    fn drain(&mut self) {
        for _ in 0..DRAIN_LIMIT {
            match self.recv(libc::MSG_DONTWAIT) {
                Ok(n) if n > 0 && n <= self.buf.len() => {
                    let done = frames(&self.buf[..n]).any(|f| {
                        matches!(
                            f,
                            Ok(Frame {
                                message: Message::Done { .. } | Message::Error { .. },
                                ..
                            })
                        )
                    });
                    if done {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.dirty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a netlink message: header + payload, padded.
    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&4242u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn rtattr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// A hand-built inet_diag_msg: 198.18.0.1:3306 -> 198.18.0.2:40000,
    /// ESTABLISHED, keepalive timer, cookie 0x0000_0007_0000_0005.
    fn diag_v4(attrs: &[u8]) -> Vec<u8> {
        let mut p = vec![
            2, 1, 2, 0, // family AF_INET, ESTABLISHED, timer keepalive, retrans
            0x0c, 0xea, // sport 3306 big-endian
            0x9c, 0x40, // dport 40000 big-endian
        ];
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[198, 18, 0, 1]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[198, 18, 0, 2]);
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&3u32.to_ne_bytes()); // if
        p.extend_from_slice(&5u32.to_ne_bytes()); // cookie[0]
        p.extend_from_slice(&7u32.to_ne_bytes()); // cookie[1]
        p.extend_from_slice(&7_200_000u32.to_ne_bytes()); // expires
        p.extend_from_slice(&11u32.to_ne_bytes()); // rqueue
        p.extend_from_slice(&22u32.to_ne_bytes()); // wqueue
        p.extend_from_slice(&1000u32.to_ne_bytes()); // uid
        p.extend_from_slice(&123_456u32.to_ne_bytes()); // inode
        assert_eq!(p.len(), INET_DIAG_MSG_LEN);
        p.extend_from_slice(attrs);
        p
    }

    fn tcp_info_bytes(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        if len >= TCP_INFO_MIN_LEN {
            b[TI_LAST_DATA_RECV..TI_LAST_DATA_RECV + 4].copy_from_slice(&1500u32.to_ne_bytes());
            b[TI_RTT..TI_RTT + 4].copy_from_slice(&250u32.to_ne_bytes());
            b[TI_BYTES_ACKED..TI_BYTES_ACKED + 8].copy_from_slice(&777u64.to_ne_bytes());
            b[TI_BYTES_RECEIVED..TI_BYTES_RECEIVED + 8].copy_from_slice(&(1u64 << 40).to_ne_bytes());
        }
        b
    }

    #[test]
    fn parses_hand_built_v4_message_field_by_field() {
        let mut attrs = rtattr(5, &[0x10]); // INET_DIAG_TOS first
        attrs.extend(rtattr(INET_DIAG_INFO, &tcp_info_bytes(232)));
        let mut dgram = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 9, &diag_v4(&attrs));
        dgram.extend(nlmsg(NLMSG_DONE, 2, 9, &0i32.to_ne_bytes()));

        let fr: Vec<_> = frames(&dgram).collect::<Result<_, _>>().unwrap();
        assert_eq!(fr.len(), 2);
        assert_eq!(fr[0].header.seq, 9);
        assert_eq!(fr[0].header.pid, 4242);
        assert_eq!(fr[0].header.ty, SOCK_DIAG_BY_FAMILY);
        let Message::Socket(m) = fr[0].message else {
            panic!("{:?}", fr[0].message)
        };
        assert_eq!(m.family, 2);
        assert_eq!(m.state, 1);
        assert_eq!(m.timer, TIMER_KEEPALIVE);
        assert_eq!((m.sport, m.dport), (3306, 40000));
        assert_eq!(m.ifindex, 3);
        assert_eq!(m.cookie, (7u64 << 32) | 5);
        assert_eq!(m.expires, 7_200_000);
        assert_eq!((m.rqueue, m.wqueue), (11, 22));
        assert_eq!(m.uid, 1000);
        assert_eq!(m.inode, 123_456);
        let t = m.tuple().unwrap();
        assert_eq!(t.local().to_string(), "198.18.0.1:3306");
        assert_eq!(t.remote().to_string(), "198.18.0.2:40000");
        assert_eq!(m.attr(5).unwrap(), Some(&[0x10][..]));
        assert_eq!(
            m.tcp_info().unwrap(),
            InfoAttr::Present(TcpInfoLite {
                bytes_received: 1 << 40,
                bytes_acked: 777,
                last_data_recv_ms: 1500,
                rtt_us: 250,
            })
        );
        assert_eq!(fr[1].message, Message::Done { code: 0 });
    }

    #[test]
    fn v6_mapped_addresses_fold() {
        let mut p = diag_v4(&[]);
        p[0] = 10;
        let mapped = |v4: [u8; 4]| {
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&v4);
            a
        };
        p[8..24].copy_from_slice(&mapped([127, 0, 0, 1]));
        p[24..40].copy_from_slice(&mapped([127, 0, 0, 2]));
        let m = InetDiagMsg::parse(&p).unwrap();
        assert_eq!(m.tuple().unwrap().local().to_string(), "127.0.0.1:3306");
        assert_eq!(m.tuple().unwrap().remote().to_string(), "127.0.0.2:40000");
        p[0] = 1; // AF_UNIX: no tuple
        assert_eq!(InetDiagMsg::parse(&p).unwrap().tuple(), None);
    }

    #[test]
    fn short_tcp_info_is_reported_not_parsed() {
        // Linux 4.x tcp_info ends before tcpi_bytes_received on some versions.
        let attrs = rtattr(INET_DIAG_INFO, &tcp_info_bytes(104));
        let p = diag_v4(&attrs);
        let m = InetDiagMsg::parse(&p).unwrap();
        assert_eq!(m.tcp_info().unwrap(), InfoAttr::Short { len: 104 });
        let p = diag_v4(&[]);
        assert_eq!(InetDiagMsg::parse(&p).unwrap().tcp_info().unwrap(), InfoAttr::Absent);
    }

    #[test]
    fn error_and_done_codes() {
        let mut e = (-libc::EPERM).to_ne_bytes().to_vec();
        e.extend_from_slice(&[0u8; 16]); // the offending request's header
        let d = nlmsg(NLMSG_ERROR, 0, 1, &e);
        let f = frames(&d).next().unwrap().unwrap();
        assert_eq!(f.message, Message::Error { errno: libc::EPERM });
        let d = nlmsg(NLMSG_DONE, 2, 1, &(-libc::ENOBUFS).to_ne_bytes());
        let f = frames(&d).next().unwrap().unwrap();
        assert_eq!(f.message, Message::Done { code: -libc::ENOBUFS });
        let d = nlmsg(NLMSG_ERROR, 0, 1, &[1, 2]);
        assert!(matches!(
            frames(&d).next(),
            Some(Err(ParseError::ShortError { have: 2 }))
        ));
        let d = nlmsg(NLMSG_DONE, 2, 1, &i32::MIN.to_ne_bytes());
        assert!(frames(&d).next().unwrap().is_ok());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // header says 100 bytes, 20 present
        let mut d = nlmsg(NLMSG_NOOP, 0, 1, &[0; 4]);
        d[0] = 100;
        assert!(matches!(
            frames(&d).next(),
            Some(Err(ParseError::BadLength { len: 100, .. }))
        ));
        // length below the header size
        d[0] = 8;
        assert!(matches!(
            frames(&d).next(),
            Some(Err(ParseError::BadLength { len: 8, .. }))
        ));
        // truncated header
        assert!(matches!(
            frames(&d[..10]).next(),
            Some(Err(ParseError::ShortHeader { have: 10, .. }))
        ));
        // iteration stops after the first error
        assert_eq!(frames(&d[..10]).count(), 1);
        // a diag message too short for inet_diag_msg
        let d = nlmsg(SOCK_DIAG_BY_FAMILY, 2, 1, &[0; 40]);
        assert!(matches!(
            frames(&d).next(),
            Some(Err(ParseError::ShortDiagMsg { have: 40 }))
        ));
        // an attribute that runs past the end
        let mut attrs = rtattr(INET_DIAG_INFO, &[0; 8]);
        attrs[0] = 200;
        let p = diag_v4(&attrs);
        let m = InetDiagMsg::parse(&p).unwrap();
        assert!(matches!(m.tcp_info(), Err(ParseError::BadAttr { len: 200, .. })));
    }

    #[test]
    fn request_encodes_states_info_and_family() {
        let mut buf = Vec::new();
        let states = halfopen_core::TcpState::MATCH_MASK;
        encode_request(&mut buf, 77, Family::V6, states, true);
        assert_eq!(buf.len(), NLMSG_HDRLEN + 56);
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(u16_at(&buf, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_at(&buf, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(&buf, 8), 77);
        let p = &buf[NLMSG_HDRLEN..];
        assert_eq!(p[0], libc::AF_INET6 as u8);
        assert_eq!(p[1], libc::IPPROTO_TCP as u8);
        assert_eq!(p[2], 1 << (INET_DIAG_INFO - 1));
        assert_eq!(u32_at(p, 4), states, "NEW_SYN_RECV bit kept");
        encode_request(&mut buf, 78, Family::V4, 1 << TCP_LISTEN, false);
        assert_eq!(buf[NLMSG_HDRLEN + 2], 0);
        assert_eq!(buf[NLMSG_HDRLEN], libc::AF_INET as u8);
    }

    #[test]
    fn all_families_request_layout() {
        let mut buf = Vec::new();
        encode_all_families_request(&mut buf, 9, 1 << 1 | 1 << 12, true, None);
        assert_eq!(buf.len(), NLMSG_HDRLEN + INET_DIAG_REQ_V1_LEN);
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(u16_at(&buf, 4), TCPDIAG_GETSOCK);
        assert_eq!(u16_at(&buf, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(u32_at(&buf, 8), 9);
        let p = &buf[NLMSG_HDRLEN..];
        assert_eq!(&p[..4], &[0, 0, 0, 1 << (INET_DIAG_INFO - 1)]);
        assert!(p[4..44].iter().all(|&b| b == 0), "no port or address filter");
        assert_eq!(&p[44..52], &[0xff; 8]);
        assert_eq!(u32_at(p, 52), 1 << 1 | 1 << 12);
        assert_eq!(u32_at(p, 56), 0);
        let mut bc = Vec::new();
        assert!(crate::filter::encode_port_filter(&[22], &mut bc));
        encode_all_families_request(&mut buf, 9, 2, false, Some(&bc));
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(buf.len(), NLMSG_HDRLEN + INET_DIAG_REQ_V1_LEN + 4 + bc.len());
        let attr = &buf[NLMSG_HDRLEN + INET_DIAG_REQ_V1_LEN..];
        assert_eq!(u16_at(attr, 2), crate::filter::INET_DIAG_REQ_BYTECODE);
        assert_eq!(&attr[4..], &bc[..]);
        // its answers are socket messages too
        let d = nlmsg(TCPDIAG_GETSOCK, 2, 9, &diag_v4(&[]));
        assert!(matches!(
            frames(&d).next(),
            Some(Ok(Frame {
                message: Message::Socket(_),
                ..
            }))
        ));
    }

    #[test]
    fn filtered_request_appends_the_bytecode_attribute() {
        let mut plain = Vec::new();
        encode_request(&mut plain, 5, Family::V4, 1 << 1, true);
        let mut bc = Vec::new();
        assert!(crate::filter::encode_port_filter(&[3306], &mut bc));
        let mut buf = Vec::new();
        encode_filtered_request(&mut buf, 5, Family::V4, 1 << 1, true, &bc);
        assert_eq!(buf.len(), plain.len() + 4 + bc.len());
        assert_eq!(u32_at(&buf, 0) as usize, buf.len(), "nlmsg_len covers the attribute");
        assert_eq!(
            &buf[4..plain.len()],
            &plain[4..],
            "same header fields and inet_diag_req_v2"
        );
        let attr = &buf[plain.len()..];
        assert_eq!(usize::from(u16_at(attr, 0)), 4 + bc.len());
        assert_eq!(u16_at(attr, 2), crate::filter::INET_DIAG_REQ_BYTECODE);
        assert_eq!(&attr[4..], &bc[..]);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for f in frames(&bytes).flatten() {
                if let Message::Socket(m) = f.message {
                    let _ = m.tuple();
                    let _ = m.tcp_info();
                    let _ = m.attrs().count();
                }
            }
            let _ = InetDiagMsg::parse(&bytes).map(|m| (m.tcp_info(), m.attrs().count()));
            let _ = parse_tcp_info(&bytes);
        }

        #[test]
        fn random_payloads_behind_valid_headers_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..400),
            ty in prop_oneof![Just(NLMSG_DONE), Just(NLMSG_ERROR), Just(SOCK_DIAG_BY_FAMILY), any::<u16>()],
            tail in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut d = nlmsg(ty, 2, 1, &payload);
            d.extend_from_slice(&tail);
            for f in frames(&d).flatten() {
                if let Message::Socket(m) = f.message {
                    let _ = m.tuple();
                    let _ = m.tcp_info();
                    let _ = m.attrs().count();
                }
            }
        }
    }
}
