//! The records the BPF programs write into the ring buffers, as `#[repr(C)]` mirrors of
//! `src/bpf/events.h` (one field per C field, same order and types), and the slots of the
//! per-CPU `counters` map. The decoder ([`crate::decode`]) reads fields at the offsets of these
//! structs; the assertions at the bottom fail the build if a size changes without the C side.
//! Pure: no I/O.

/// `ho_sock_event.kind`.
pub const KIND_SOCK: u32 = 1;
/// `ho_drop_event.kind`.
pub const KIND_DROP: u32 = 2;

/// `ho_sock_event.flags`: emitted by the rescue program (`on_state_rescue`).
pub const SOCK_RESCUED: u32 = 1 << 0;
/// `ho_sock_event.flags`: CLOSE->SYN_SENT inside connect() or CLOSE->LISTEN inside listen();
/// tgid/tid/uid/gid/comm are the calling task's.
pub const SOCK_OWNER: u32 = 1 << 1;
/// `HO_SOCK_PORT`: not a transition but a SYN_SENT socket's SYN retransmitted (tracepoint
/// `tcp:tcp_retransmit_skb`), reported as SYN_SENT->SYN_SENT with its local port.
pub const SOCK_PORT: u32 = 1 << 2;

/// `ho_drop_event.flags`: seen inside `cookie_v4_check`/`cookie_v6_check` on that CPU.
pub const DROP_COOKIE_PATH: u32 = 1 << 0;
/// `ho_drop_event.flags`: the kernel has `request_sock.syncookie` (6.7+).
pub const DROP_REQ_SYNCOOKIE_KNOWN: u32 = 1 << 1;
/// `ho_drop_event.flags`: `request_sock.syncookie` was set.
pub const DROP_REQ_SYNCOOKIE: u32 = 1 << 2;
/// `ho_drop_event.flags`: seen by the kretprobe fallback, not by fexit.
pub const DROP_KPROBE: u32 = 1 << 3;
/// `ho_drop_event.flags`: seen on `tcp_v6_syn_recv_sock` (else `tcp_v4_syn_recv_sock`).
pub const DROP_V6_FN: u32 = 1 << 4;
/// `ho_drop_event.flags`: seen on tracepoint `skb:kfree_skb` (the drop reason), not on
/// `tcp_v{4,6}_syn_recv_sock`.
pub const DROP_KFREE_SKB: u32 = 1 << 5;

/// Slots of the per-CPU `counters` array (u64 each), as `HO_CNT_*` in events.h.
pub mod counter {
    /// Transition records that did not fit in the `events` ring.
    pub const SOCK_LOST: u32 = 0;
    /// Witness records that did not fit in the `drops` ring.
    pub const DROP_LOST: u32 = 1;
    /// Firings the rescue program covered because `on_state` was skipped, whether or not they
    /// passed the filters (the kernel counts `on_state`'s misses for every firing).
    pub const RESCUED: u32 = 2;
    /// `tcp_v{4,6}_syn_recv_sock` returned NULL with the accept queue not full.
    pub const NULL_NOT_FULL: u32 = 3;
    /// Transition records submitted.
    pub const SOCK_EMITTED: u32 = 4;
    /// Witness records submitted.
    pub const DROP_EMITTED: u32 = 5;
    /// Submits that forced a wakeup (more than `wake_bytes` pending).
    pub const WAKEUPS: u32 = 6;
    /// Transitions dropped because the socket's protocol or namespace cookie read as 0 (a
    /// failed read).
    pub const UNREADABLE: u32 = 7;
    /// Slots in the map.
    pub const MAX: u32 = 8;
}

/// `struct ho_sock_event`: one TCP state transition.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawSockEvent {
    pub kind: u32,
    pub flags: u32,
    /// `bpf_ktime_get_boot_ns()`: CLOCK_BOOTTIME, nanoseconds.
    pub ts_ns: u64,
    pub netns_cookie: u64,
    pub sock_cookie: u64,
    /// Local address, 16 bytes, IPv4 as `::ffff:a.b.c.d`.
    pub saddr: [u8; 16],
    /// Remote address, same form.
    pub daddr: [u8; 16],
    /// Local port, host order.
    pub sport: u16,
    /// Remote port, host order.
    pub dport: u16,
    pub family: u16,
    pub oldstate: u8,
    pub newstate: u8,
    pub tgid: u32,
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; 16],
    pub cpu: u32,
    pub _pad: u32,
}

/// `struct ho_drop_event`: a completed handshake dropped on a full accept queue.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawDropEvent {
    pub kind: u32,
    pub flags: u32,
    pub ts_ns: u64,
    pub netns_cookie: u64,
    pub listener_cookie: u64,
    /// The server's end (`ir_loc_addr`/`ir_v6_loc_addr`), 16 bytes.
    pub laddr: [u8; 16],
    /// The client (`ir_rmt_addr`/`ir_v6_rmt_addr`), 16 bytes.
    pub raddr: [u8; 16],
    /// `ir_num`.
    pub lport: u16,
    /// `ntohs(ir_rmt_port)`.
    pub rport: u16,
    /// The listener's `sk_family`.
    pub family: u16,
    pub _pad: u16,
    /// Listener's `sk_ack_backlog`.
    pub ack_backlog: u32,
    /// Listener's `sk_max_ack_backlog`.
    pub max_ack_backlog: u32,
    pub cpu: u32,
    pub _pad2: u32,
}

// The C structs have the same sizes (natural alignment, no implicit padding on either side).
const _: () = assert!(std::mem::size_of::<RawSockEvent>() == 112);
const _: () = assert!(std::mem::size_of::<RawDropEvent>() == 88);

impl RawSockEvent {
    /// The record as the BPF side writes it (native byte order). For tests and fuzzing seeds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(std::mem::size_of::<Self>());
        b.extend_from_slice(&self.kind.to_ne_bytes());
        b.extend_from_slice(&self.flags.to_ne_bytes());
        b.extend_from_slice(&self.ts_ns.to_ne_bytes());
        b.extend_from_slice(&self.netns_cookie.to_ne_bytes());
        b.extend_from_slice(&self.sock_cookie.to_ne_bytes());
        b.extend_from_slice(&self.saddr);
        b.extend_from_slice(&self.daddr);
        b.extend_from_slice(&self.sport.to_ne_bytes());
        b.extend_from_slice(&self.dport.to_ne_bytes());
        b.extend_from_slice(&self.family.to_ne_bytes());
        b.push(self.oldstate);
        b.push(self.newstate);
        for v in [self.tgid, self.tid, self.uid, self.gid] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b.extend_from_slice(&self.comm);
        b.extend_from_slice(&self.cpu.to_ne_bytes());
        b.extend_from_slice(&self._pad.to_ne_bytes());
        b
    }
}

impl RawDropEvent {
    /// The record as the BPF side writes it (native byte order). For tests and fuzzing seeds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(std::mem::size_of::<Self>());
        b.extend_from_slice(&self.kind.to_ne_bytes());
        b.extend_from_slice(&self.flags.to_ne_bytes());
        b.extend_from_slice(&self.ts_ns.to_ne_bytes());
        b.extend_from_slice(&self.netns_cookie.to_ne_bytes());
        b.extend_from_slice(&self.listener_cookie.to_ne_bytes());
        b.extend_from_slice(&self.laddr);
        b.extend_from_slice(&self.raddr);
        for v in [self.lport, self.rport, self.family, self._pad] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        for v in [self.ack_backlog, self.max_ack_backlog, self.cpu, self._pad2] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_bytes_matches_the_repr_c_layout() {
        // Every field at its offset_of! position: the encoder and the decoder agree with the
        // C layout, which has the same field order and natural alignment.
        let e = RawSockEvent {
            kind: 1,
            sport: 0x1234,
            comm: *b"abcdefghijklmno\0",
            cpu: 7,
            ..Default::default()
        };
        let b = e.to_bytes();
        assert_eq!(b.len(), std::mem::size_of::<RawSockEvent>());
        let off = std::mem::offset_of!(RawSockEvent, sport);
        assert_eq!(&b[off..off + 2], &0x1234u16.to_ne_bytes());
        let off = std::mem::offset_of!(RawSockEvent, comm);
        assert_eq!(&b[off..off + 3], b"abc");
        let off = std::mem::offset_of!(RawSockEvent, cpu);
        assert_eq!(&b[off..off + 4], &7u32.to_ne_bytes());

        let d = RawDropEvent {
            kind: 2,
            max_ack_backlog: 4,
            ..Default::default()
        };
        let b = d.to_bytes();
        assert_eq!(b.len(), std::mem::size_of::<RawDropEvent>());
        let off = std::mem::offset_of!(RawDropEvent, max_ack_backlog);
        assert_eq!(&b[off..off + 4], &4u32.to_ne_bytes());
    }
}
