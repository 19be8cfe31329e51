//! Typed events and their pure decoder: [`decode`] turns one ring-buffer record (the bytes of a
//! [`crate::raw::RawSockEvent`] or [`crate::raw::RawDropEvent`]) into a [`SockEvent`] or a
//! [`WitnessedDrop`], with the kernel's boot-time timestamp converted to wall-clock time through
//! a [`ClockAnchor`]. Never panics on any input; no I/O.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use halfopen_core::{TcpState, Tuple};

use crate::raw::{self, RawDropEvent, RawSockEvent};

/// An address family as the kernel numbers it (`AF_INET` = 2, `AF_INET6` = 10,
/// include/linux/socket.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6` (also a dual-stack socket carrying IPv4; its tuple is folded to IPv4).
    V6,
}

impl Family {
    /// From `sk_family`; None for anything but AF_INET/AF_INET6.
    pub fn from_kernel(af: u16) -> Option<Family> {
        match af {
            2 => Some(Family::V4),
            10 => Some(Family::V6),
            _ => None,
        }
    }
}

/// The task that called connect(2) or listen(2) on a socket, taken at its CLOSE->SYN_SENT or
/// CLOSE->LISTEN transition, which the kernel makes inside the system call
/// (`tcp_v4_connect`/`tcp_v6_connect` call `tcp_set_state`; `inet_csk_listen_start` sets
/// LISTEN) in the caller's context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOwner {
    /// Process id (`bpf_get_current_pid_tgid() >> 32`).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Real uid and gid of the task (`bpf_get_current_uid_gid`), as seen from the initial user
    /// namespace.
    pub uid: u32,
    pub gid: u32,
    /// The thread's `comm` (at most 15 bytes, lossy UTF-8).
    pub comm: String,
}

/// One TCP state transition (tracepoint `sock:inet_sock_set_state`).
///
/// Which transitions exist (include/net/tcp_states.h, net/ipv4/tcp.c `tcp_set_state`): a
/// client goes CLOSE->SYN_SENT (inside connect()), SYN_SENT->ESTABLISHED; an accepted socket is
/// born LISTEN->SYN_RECV (`inet_csk_clone_lock`) and goes SYN_RECV->ESTABLISHED; closing goes
/// through FIN_WAIT1/FIN_WAIT2/CLOSING or CLOSE_WAIT/LAST_ACK to CLOSE. Entering TIME_WAIT is
/// reported as `->CLOSE` of the full socket (`tcp_time_wait` -> `tcp_done`): the timewait
/// minisocket that replaces it has no transitions. CLOSE->LISTEN is reported on 6.18 (checked
/// by the tests; older kernels may store the state without the tracepoint), so listeners
/// born after the initial dump are seen too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockEvent {
    /// When, as CLOCK_BOOTTIME nanoseconds (`bpf_ktime_get_boot_ns`).
    pub boot_ns: u64,
    /// When, as wall-clock time (see [`ClockAnchor`]).
    pub at: SystemTime,
    /// The socket's network namespace, as `SO_NETNS_COOKIE` returns it (`net->net_cookie`).
    pub netns_cookie: u64,
    /// The socket cookie (`bpf_get_socket_cookie`): the value sock_diag reports as
    /// `idiag_cookie`, unique for the life of the system.
    pub cookie: u64,
    /// `sk_family`.
    pub family: Family,
    pub old: TcpState,
    pub new: TcpState,
    /// Local = this socket's end. May be incomplete on the first transitions of a socket: at
    /// CLOSE->SYN_SENT the local port is usually still 0 (`inet_hash_connect` picks it after
    /// the state change) and at LISTEN->SYN_RECV the addresses are being copied; later
    /// transitions carry the full tuple. Key by `cookie`, not by tuple.
    pub tuple: Tuple,
    /// The calling task, on CLOSE->SYN_SENT (connect) and CLOSE->LISTEN (listen) only.
    pub owner: Option<ConnectOwner>,
    /// Emitted by the rescue program because the main one was skipped by the kernel's
    /// recursion guard (diagnostic; the event is as good as any other).
    pub rescued: bool,
    /// Not a transition: a SYN_SENT socket retransmitted its SYN (tracepoint
    /// `tcp:tcp_retransmit_skb`), reported as SYN_SENT->SYN_SENT so that its local port, which
    /// connect() picks after CLOSE->SYN_SENT, is known while it waits.
    pub port_only: bool,
    /// CPU the transition ran on.
    pub cpu: u32,
}

/// Which way a completed handshake reached `tcp_v{4,6}_syn_recv_sock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropPath {
    /// From `cookie_v4_check`/`cookie_v6_check`: the handshake was answered with a SYN cookie,
    /// so the server kept nothing: the client is ESTABLISHED and the server will never know.
    SynCookie,
    /// From `tcp_check_req`: a request socket was kept (SYN_RECV); the kernel retransmits its
    /// SYN-ACK and may complete it later if the queue drains.
    Normal,
}

/// Which hook saw the drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WitnessHook {
    /// fexit on `tcp_v{4,6}_syn_recv_sock` (fentry/fexit on `cookie_v{4,6}_check` for the path).
    Fexit,
    /// kprobe + kretprobe on the same functions.
    Kretprobe,
    /// tracepoint `skb:kfree_skb` (tp_btf): the final ACK freed with reason
    /// `SKB_DROP_REASON_NO_SOCKET` (cookie path, 6.9+) or `SKB_DROP_REASON_TCP_LISTEN_OVERFLOW`
    /// (normal path, 6.15+) and the listener as `rx_sk` (6.11+); the tuple from the packet.
    DropReason,
}

/// A completed handshake that the server's kernel dropped because the listener's accept queue
/// was full: `tcp_v4_syn_recv_sock`/`tcp_v6_syn_recv_sock` returned NULL while
/// `sk_ack_backlog > sk_max_ack_backlog` (`sk_acceptq_is_full`, include/net/sock.h). The
/// kernel counted it in ListenOverflows and ListenDrops and dropped the client's final ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessedDrop {
    /// When, as CLOCK_BOOTTIME nanoseconds.
    pub boot_ns: u64,
    /// When, as wall-clock time (see [`ClockAnchor`]).
    pub at: SystemTime,
    /// The listener's network namespace cookie.
    pub netns_cookie: u64,
    /// The listener's socket cookie, as sock_diag reports it. `None` with the kretprobe
    /// fallback when no cookie had been taken for the listener yet (a sock_diag dump takes one).
    pub listener_cookie: Option<u64>,
    /// The connection from the server's side: local = the listener's address and port as the
    /// client reached it (`ir_loc_addr`, `ir_num`), remote = the client (`ir_rmt_addr`,
    /// `ir_rmt_port`). IPv4 clients of a dual-stack listener are folded to IPv4.
    pub tuple: Tuple,
    /// The listener's `sk_family` (a dual-stack `[::]` listener is V6 even for IPv4 clients).
    pub listener_family: Family,
    /// SYN-cookie or normal path: with fexit/kretprobe, a per-CPU flag set inside
    /// `cookie_v{4,6}_check`; with [`WitnessHook::DropReason`], the drop reason.
    pub path: DropPath,
    /// `request_sock.syncookie` where the kernel has it (6.7+): an independent witness of the
    /// path, which should agree with `path`.
    pub req_syncookie: Option<bool>,
    /// The accept queue length (`sk_ack_backlog`) when the function returned.
    pub queue: u32,
    /// The accept queue limit (`sk_max_ack_backlog`: min(listen backlog, somaxconn)).
    pub backlog: u32,
    pub hook: WitnessHook,
    pub cpu: u32,
}

/// One decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Sock(SockEvent),
    Drop(WitnessedDrop),
}

/// Why a record did not decode. A record that does not decode means the kernel and user sides
/// disagree on the layout (a build mismatch), never a kernel condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for a kind tag")]
    NoKind { len: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("record of kind {kind} is {len} bytes, expected at least {need}")]
    Short { kind: u32, len: usize, need: usize },
    #[error("unknown TCP state {state}")]
    State { state: u8 },
    #[error("unknown address family {family}")]
    Family { family: u16 },
}

/// Maps the kernel's CLOCK_BOOTTIME (what `bpf_ktime_get_boot_ns` returns) to wall-clock time.
///
/// Taken once per poll ([`ClockAnchor::now`]): CLOCK_REALTIME is read between two
/// CLOCK_BOOTTIME reads and paired with their midpoint, so the pairing error is at most half
/// the time between the two boot-time reads (well under a microsecond). An event's wall time is
/// `wall + (event_boot_ns - boot_ns)`. CLOCK_BOOTTIME, unlike CLOCK_MONOTONIC, keeps counting
/// across suspend, so the offset stays right after a resume; a step of the wall clock (NTP,
/// settimeofday) is picked up at the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAnchor {
    /// CLOCK_BOOTTIME, nanoseconds.
    pub boot_ns: u64,
    /// The wall-clock time at that instant.
    pub wall: SystemTime,
}

impl ClockAnchor {
    /// Reads both clocks now (three clock_gettime calls).
    pub fn now() -> ClockAnchor {
        let b1 = clock_ns(libc::CLOCK_BOOTTIME);
        let wall = SystemTime::now();
        let b2 = clock_ns(libc::CLOCK_BOOTTIME);
        ClockAnchor {
            boot_ns: b1 + (b2.saturating_sub(b1)) / 2,
            wall,
        }
    }

    /// The wall-clock time of a CLOCK_BOOTTIME instant. Saturates at the Unix epoch and at the
    /// largest representable time instead of panicking.
    pub fn wall_of(&self, boot_ns: u64) -> SystemTime {
        if boot_ns >= self.boot_ns {
            let d = Duration::from_nanos(boot_ns - self.boot_ns);
            self.wall.checked_add(d).unwrap_or(self.wall)
        } else {
            let d = Duration::from_nanos(self.boot_ns - boot_ns);
            self.wall
                .checked_sub(d)
                .filter(|t| *t >= SystemTime::UNIX_EPOCH)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }
}

/// CLOCK_BOOTTIME or another clock in nanoseconds (clock_gettime(2); it cannot fail for the
/// clocks used here).
pub(crate) fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Little reader over a record: every read is bounds-checked by the caller's length check.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u8(&self, off: usize) -> u8 {
        self.0.get(off).copied().unwrap_or(0)
    }
    fn u16(&self, off: usize) -> u16 {
        u16::from_ne_bytes(self.array(off))
    }
    fn u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.array(off))
    }
    fn u64(&self, off: usize) -> u64 {
        u64::from_ne_bytes(self.array(off))
    }
    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut a = [0u8; N];
        if let Some(s) = self.0.get(off..off + N) {
            a.copy_from_slice(s);
        }
        a
    }
}

macro_rules! off {
    ($t:ty, $f:ident) => {
        std::mem::offset_of!($t, $f)
    };
}

fn state(n: u8) -> Result<TcpState, DecodeError> {
    TcpState::from_kernel(n).ok_or(DecodeError::State { state: n })
}

fn family(af: u16) -> Result<Family, DecodeError> {
    Family::from_kernel(af).ok_or(DecodeError::Family { family: af })
}

/// A tuple from 16-byte addresses (IPv4-mapped ones fold to IPv4 in `Tuple`).
fn tuple16(local: [u8; 16], lport: u16, remote: [u8; 16], rport: u16) -> Tuple {
    let ip = |b: [u8; 16]| IpAddr::V6(Ipv6Addr::from(b));
    Tuple::new(SocketAddr::new(ip(local), lport), SocketAddr::new(ip(remote), rport))
}

fn comm(bytes: &[u8; 16]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Decodes one ring-buffer record. Records longer than their struct are accepted (a newer BPF
/// side may append fields); shorter ones, unknown kinds, states or families are errors.
pub fn decode(bytes: &[u8], clock: &ClockAnchor) -> Result<Event, DecodeError> {
    let f = Fields(bytes);
    if bytes.len() < 4 {
        return Err(DecodeError::NoKind { len: bytes.len() });
    }
    let kind = f.u32(0);
    match kind {
        raw::KIND_SOCK => decode_sock(&f, clock).map(Event::Sock),
        raw::KIND_DROP => decode_drop(&f, clock).map(Event::Drop),
        kind => Err(DecodeError::UnknownKind { kind }),
    }
}

fn decode_sock(f: &Fields<'_>, clock: &ClockAnchor) -> Result<SockEvent, DecodeError> {
    type R = RawSockEvent;
    let need = std::mem::size_of::<R>();
    if f.0.len() < need {
        return Err(DecodeError::Short {
            kind: raw::KIND_SOCK,
            len: f.0.len(),
            need,
        });
    }
    let flags = f.u32(off!(R, flags));
    let boot_ns = f.u64(off!(R, ts_ns));
    let saddr: [u8; 16] = f.array(off!(R, saddr));
    let daddr: [u8; 16] = f.array(off!(R, daddr));
    let tuple = tuple16(saddr, f.u16(off!(R, sport)), daddr, f.u16(off!(R, dport)));
    let owner = (flags & raw::SOCK_OWNER != 0).then(|| ConnectOwner {
        pid: f.u32(off!(R, tgid)),
        tid: f.u32(off!(R, tid)),
        uid: f.u32(off!(R, uid)),
        gid: f.u32(off!(R, gid)),
        comm: comm(&f.array(off!(R, comm))),
    });
    Ok(SockEvent {
        boot_ns,
        at: clock.wall_of(boot_ns),
        netns_cookie: f.u64(off!(R, netns_cookie)),
        cookie: f.u64(off!(R, sock_cookie)),
        family: family(f.u16(off!(R, family)))?,
        old: state(f.u8(off!(R, oldstate)))?,
        new: state(f.u8(off!(R, newstate)))?,
        tuple,
        owner,
        rescued: flags & raw::SOCK_RESCUED != 0,
        port_only: flags & raw::SOCK_PORT != 0,
        cpu: f.u32(off!(R, cpu)),
    })
}

fn decode_drop(f: &Fields<'_>, clock: &ClockAnchor) -> Result<WitnessedDrop, DecodeError> {
    type R = RawDropEvent;
    let need = std::mem::size_of::<R>();
    if f.0.len() < need {
        return Err(DecodeError::Short {
            kind: raw::KIND_DROP,
            len: f.0.len(),
            need,
        });
    }
    let flags = f.u32(off!(R, flags));
    let boot_ns = f.u64(off!(R, ts_ns));
    let laddr: [u8; 16] = f.array(off!(R, laddr));
    let raddr: [u8; 16] = f.array(off!(R, raddr));
    let tuple = tuple16(laddr, f.u16(off!(R, lport)), raddr, f.u16(off!(R, rport)));
    let listener_cookie = f.u64(off!(R, listener_cookie));
    Ok(WitnessedDrop {
        boot_ns,
        at: clock.wall_of(boot_ns),
        netns_cookie: f.u64(off!(R, netns_cookie)),
        listener_cookie: (listener_cookie != 0).then_some(listener_cookie),
        tuple,
        listener_family: family(f.u16(off!(R, family)))?,
        path: if flags & raw::DROP_COOKIE_PATH != 0 {
            DropPath::SynCookie
        } else {
            DropPath::Normal
        },
        req_syncookie: (flags & raw::DROP_REQ_SYNCOOKIE_KNOWN != 0).then_some(flags & raw::DROP_REQ_SYNCOOKIE != 0),
        queue: f.u32(off!(R, ack_backlog)),
        backlog: f.u32(off!(R, max_ack_backlog)),
        hook: if flags & raw::DROP_KFREE_SKB != 0 {
            WitnessHook::DropReason
        } else if flags & raw::DROP_KPROBE != 0 {
            WitnessHook::Kretprobe
        } else {
            WitnessHook::Fexit
        },
        cpu: f.u32(off!(R, cpu)),
    })
}

impl fmt::Display for WitnessedDrop {
    /// "198.18.0.2:40000 -> 198.18.0.1:3306 dropped: accept queue full (5 of 4), SYN-cookie path".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} dropped: accept queue full ({} of {}), {} path",
            halfopen_core::fmt_endpoint(self.tuple.remote()),
            halfopen_core::fmt_endpoint(self.tuple.local()),
            self.queue,
            self.backlog,
            match self.path {
                DropPath::SynCookie => "SYN-cookie",
                DropPath::Normal => "normal",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn anchor() -> ClockAnchor {
        ClockAnchor {
            boot_ns: 1_000_000_000,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }

    fn mapped(ip: [u8; 4]) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12..].copy_from_slice(&ip);
        a
    }

    fn sock_raw() -> RawSockEvent {
        RawSockEvent {
            kind: raw::KIND_SOCK,
            flags: raw::SOCK_OWNER,
            ts_ns: 1_500_000_000,
            netns_cookie: 4096,
            sock_cookie: 77,
            saddr: mapped([198, 18, 0, 2]),
            daddr: mapped([198, 18, 0, 1]),
            sport: 0,
            dport: 3306,
            family: 2,
            oldstate: 7,
            newstate: 2,
            tgid: 1234,
            tid: 1235,
            uid: 1000,
            gid: 100,
            comm: *b"mysql-client\0\0\0\0",
            cpu: 1,
            _pad: 0,
        }
    }

    #[test]
    fn decodes_a_connect_transition_with_its_owner() {
        let Event::Sock(e) = decode(&sock_raw().to_bytes(), &anchor()).unwrap() else {
            panic!("not a sock event")
        };
        assert_eq!(e.old, TcpState::Close);
        assert_eq!(e.new, TcpState::SynSent);
        assert_eq!(e.cookie, 77);
        assert_eq!(e.netns_cookie, 4096);
        assert_eq!(e.family, Family::V4);
        assert_eq!(e.tuple.local(), "198.18.0.2:0".parse::<SocketAddr>().unwrap());
        assert_eq!(e.tuple.remote(), "198.18.0.1:3306".parse::<SocketAddr>().unwrap());
        let o = e.owner.unwrap();
        assert_eq!((o.pid, o.tid, o.uid, o.gid), (1234, 1235, 1000, 100));
        assert_eq!(o.comm, "mysql-client");
        assert!(!e.rescued);
        assert_eq!(e.boot_ns, 1_500_000_000);
        assert_eq!(e.at, anchor().wall + Duration::from_millis(500));
    }

    #[test]
    fn owner_only_when_flagged_and_rescue_flag_read() {
        let mut r = sock_raw();
        r.flags = raw::SOCK_RESCUED;
        r.oldstate = 2;
        r.newstate = 1;
        let Event::Sock(e) = decode(&r.to_bytes(), &anchor()).unwrap() else {
            panic!()
        };
        assert_eq!(e.owner, None);
        assert!(e.rescued);
        assert!(!e.port_only);
        assert_eq!(e.new, TcpState::Established);
        // A retransmitted SYN: the socket's port, as SYN_SENT->SYN_SENT.
        r.flags = raw::SOCK_PORT;
        r.oldstate = 2;
        r.newstate = 2;
        r.sport = 40000;
        let Event::Sock(e) = decode(&r.to_bytes(), &anchor()).unwrap() else {
            panic!()
        };
        assert!(e.port_only && !e.rescued);
        assert_eq!(
            (e.old, e.new, e.tuple.local_port()),
            (TcpState::SynSent, TcpState::SynSent, 40000)
        );
    }

    #[test]
    fn v6_addresses_stay_v6() {
        let mut r = sock_raw();
        r.family = 10;
        r.saddr = "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
        r.daddr = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let Event::Sock(e) = decode(&r.to_bytes(), &anchor()).unwrap() else {
            panic!()
        };
        assert_eq!(e.family, Family::V6);
        assert_eq!(e.tuple.remote(), "[fd00::1]:3306".parse::<SocketAddr>().unwrap());
    }

    fn drop_raw() -> RawDropEvent {
        RawDropEvent {
            kind: raw::KIND_DROP,
            flags: raw::DROP_COOKIE_PATH | raw::DROP_REQ_SYNCOOKIE_KNOWN | raw::DROP_REQ_SYNCOOKIE | raw::DROP_V6_FN,
            ts_ns: 900_000_000,
            netns_cookie: 5,
            listener_cookie: 0,
            laddr: mapped([198, 18, 0, 1]),
            raddr: mapped([198, 18, 0, 2]),
            lport: 3306,
            rport: 40000,
            family: 10,
            _pad: 0,
            ack_backlog: 5,
            max_ack_backlog: 4,
            cpu: 0,
            _pad2: 0,
        }
    }

    #[test]
    fn decodes_a_witnessed_drop() {
        let Event::Drop(d) = decode(&drop_raw().to_bytes(), &anchor()).unwrap() else {
            panic!("not a drop")
        };
        assert_eq!(d.tuple.local(), "198.18.0.1:3306".parse::<SocketAddr>().unwrap());
        assert_eq!(d.tuple.remote(), "198.18.0.2:40000".parse::<SocketAddr>().unwrap());
        assert_eq!(d.listener_family, Family::V6);
        assert_eq!(d.path, DropPath::SynCookie);
        assert_eq!(d.req_syncookie, Some(true));
        assert_eq!((d.queue, d.backlog), (5, 4));
        assert_eq!(d.listener_cookie, None);
        assert_eq!(d.hook, WitnessHook::Fexit);
        assert_eq!(d.at, anchor().wall - Duration::from_millis(100));
        assert_eq!(
            d.to_string(),
            "198.18.0.2:40000 -> 198.18.0.1:3306 dropped: accept queue full (5 of 4), SYN-cookie path"
        );

        let mut r = drop_raw();
        r.flags = raw::DROP_KPROBE;
        r.listener_cookie = 9;
        let Event::Drop(d) = decode(&r.to_bytes(), &anchor()).unwrap() else {
            panic!()
        };
        assert_eq!(d.path, DropPath::Normal);
        assert_eq!(d.req_syncookie, None);
        assert_eq!(d.hook, WitnessHook::Kretprobe);
        assert_eq!(d.listener_cookie, Some(9));

        let mut r = drop_raw();
        r.flags = raw::DROP_KFREE_SKB | raw::DROP_COOKIE_PATH;
        let Event::Drop(d) = decode(&r.to_bytes(), &anchor()).unwrap() else {
            panic!()
        };
        assert_eq!(d.hook, WitnessHook::DropReason);
        assert_eq!(d.path, DropPath::SynCookie);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let a = anchor();
        assert_eq!(decode(&[], &a), Err(DecodeError::NoKind { len: 0 }));
        assert_eq!(decode(&[9, 0, 0, 0], &a), Err(DecodeError::UnknownKind { kind: 9 }));
        let b = sock_raw().to_bytes();
        assert_eq!(
            decode(&b[..111], &a),
            Err(DecodeError::Short {
                kind: 1,
                len: 111,
                need: 112
            })
        );
        let mut r = sock_raw();
        r.newstate = 13;
        assert_eq!(decode(&r.to_bytes(), &a), Err(DecodeError::State { state: 13 }));
        let mut r = sock_raw();
        r.family = 1;
        assert_eq!(decode(&r.to_bytes(), &a), Err(DecodeError::Family { family: 1 }));
        let mut r = drop_raw();
        r.family = 0;
        assert_eq!(decode(&r.to_bytes(), &a), Err(DecodeError::Family { family: 0 }));
        // Longer records (a newer BPF side appending fields) still decode.
        let mut long = sock_raw().to_bytes();
        long.extend_from_slice(&[0xAA; 16]);
        assert!(decode(&long, &a).is_ok());
    }

    #[test]
    fn clock_anchor_saturates_instead_of_panicking() {
        let a = ClockAnchor {
            boot_ns: u64::MAX,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        };
        assert_eq!(a.wall_of(0), SystemTime::UNIX_EPOCH);
        let now = ClockAnchor::now();
        let later = now.wall_of(now.boot_ns + 1_000);
        assert_eq!(later.duration_since(now.wall).unwrap(), Duration::from_micros(1));
        // The anchor agrees with the system clock to well under a millisecond.
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let sys = SystemTime::now();
        let est = now.wall_of(boot);
        let diff = match sys.duration_since(est) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(diff < Duration::from_millis(5), "{diff:?}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256),
                                     boot in any::<u64>()) {
            let a = ClockAnchor { boot_ns: boot, wall: SystemTime::UNIX_EPOCH };
            let _ = decode(&bytes, &a);
        }

        #[test]
        fn never_panics_on_mutated_records(idx in 0usize..112, val in any::<u8>(), cut in 0usize..=112,
                                           drop in any::<bool>()) {
            let mut b = if drop { drop_raw().to_bytes() } else { sock_raw().to_bytes() };
            if idx < b.len() { b[idx] = val; }
            b.truncate(cut);
            let _ = decode(&b, &anchor());
        }

        #[test]
        fn round_trips_every_valid_transition(old in 1u8..=12, new in 1u8..=12, sport in any::<u16>(),
                                              dport in any::<u16>(), cookie in any::<u64>(), v6 in any::<bool>()) {
            let mut r = sock_raw();
            r.oldstate = old;
            r.newstate = new;
            r.sport = sport;
            r.dport = dport;
            r.sock_cookie = cookie;
            r.family = if v6 { 10 } else { 2 };
            let Event::Sock(e) = decode(&r.to_bytes(), &anchor()).unwrap() else { panic!() };
            prop_assert_eq!(e.old as u8, old);
            prop_assert_eq!(e.new as u8, new);
            prop_assert_eq!(e.tuple.local_port(), sport);
            prop_assert_eq!(e.tuple.remote_port(), dport);
            prop_assert_eq!(e.cookie, cookie);
        }
    }
}
