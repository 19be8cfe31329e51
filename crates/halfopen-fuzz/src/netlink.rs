//! Netlink replies, one receive buffer (datagram) per input:
//! - [`sock_diag`]: `halfopen_sockets::diag`'s parser, and what the
//!   `Scanner` reads from each socket message (tuple, state, tcp_info,
//!   attributes, the listener view);
//! - [`conntrack`]: `halfopen_sockets::conntrack::parse` (framing, the
//!   ctnetlink attribute tree through `netlink-packet-netfilter`, events).
//!
//! Checked: every walk terminates within its buffer (a netlink message is
//! at least 16 bytes, a route attribute at least 4), every tuple is
//! canonical and of one family, and the event counts add up.
use halfopen_core::{SocketRecord, TcpState};
use halfopen_sockets::conntrack::parse::{
    entry, messages, parse_events, parse_message, CtMessage, ParseError, NLMSG_HDRLEN,
};
use halfopen_sockets::conntrack::NatEvent;
use halfopen_sockets::diag::{frames, parse_tcp_info, InetDiagMsg, InfoAttr, Message, TIMER_KEEPALIVE};
use halfopen_sockets::Family;

use crate::wire::assert_canonical_tuple;

/// One sock_diag receive buffer, walked as `DiagSocket` does.
pub fn sock_diag(data: &[u8]) {
    let mut n = 0usize;
    let mut offset = 0usize;
    for f in frames(data) {
        n += 1;
        assert!(
            n <= data.len() / NLMSG_HDRLEN + 1,
            "more messages than the buffer can hold"
        );
        let Ok(f) = f else { break };
        let len = f.header.len as usize;
        assert!(
            len >= NLMSG_HDRLEN && offset + len <= data.len(),
            "a message past the buffer's end"
        );
        offset += len.next_multiple_of(4);
        if let Message::Socket(m) = f.message {
            socket(&m);
        }
    }
    // The parts on their own, as tests and other callers use them.
    if let Ok(m) = InetDiagMsg::parse(data) {
        socket(&m);
    }
    let _ = parse_tcp_info(data);
}

/// What the Scanner takes from one socket message (`scanner.rs`
/// `push_diag` and `listeners`).
fn socket(m: &InetDiagMsg<'_>) {
    let family = Family::from_af(m.family);
    let tuple = m.tuple();
    assert_eq!(
        tuple.is_some(),
        family.is_some(),
        "a tuple exactly for AF_INET and AF_INET6"
    );
    if let Some(t) = tuple {
        assert_canonical_tuple(&t);
        if family == Some(Family::V4) {
            assert!(t.local_ip().is_ipv4() && t.remote_ip().is_ipv4());
        }
    }
    let info = m.tcp_info();
    let mut attrs = 0usize;
    let mut bytes = 0usize;
    for a in m.attrs() {
        attrs += 1;
        assert!(attrs <= m.attrs.len() / 4 + 1, "more attributes than bytes allow");
        match a {
            Ok((_, v)) => {
                bytes += 4 + v.len();
                assert!(bytes <= m.attrs.len(), "attributes past the message's end");
            }
            Err(_) => {
                // tcp_info walks the same attributes: it found its own
                // before the bad one, or it failed too
                assert!(!matches!(info, Ok(InfoAttr::Absent)), "{info:?} after a bad attribute");
                break;
            }
        }
    }
    if let (Some(t), Some(state)) = (tuple, TcpState::from_kernel(m.state)) {
        let rec = SocketRecord {
            tuple: t,
            state,
            side: halfopen_core::Side::Client,
            cookie: m.cookie,
            inode: u64::from(m.inode),
            uid: m.uid,
            keepalive: m.timer == TIMER_KEEPALIVE,
            info: match info {
                Ok(InfoAttr::Present(i)) => Some(i),
                _ => None,
            },
        };
        assert_eq!(rec.state as u8, m.state, "TcpState numbers are the kernel's");
    }
}

/// One ctnetlink receive buffer (a dump answer or events).
pub fn conntrack(data: &[u8]) {
    let mut n = 0usize;
    let mut entries = 0u64;
    let mut undecodable = 0u64;
    let mut it = messages(data);
    while let Some(m) = it.next() {
        n += 1;
        assert!(
            n <= data.len() / NLMSG_HDRLEN + 1,
            "more messages than the buffer can hold"
        );
        match m {
            Ok((h, msg)) => {
                assert!(h.len as usize >= NLMSG_HDRLEN);
                match msg {
                    CtMessage::Entry { entry, .. } => {
                        entries += 1;
                        // Canonical, hence not always of one family: an
                        // IPv6 entry with an IPv4-mapped address folds it.
                        assert_canonical_tuple(&entry.original);
                        assert_canonical_tuple(&entry.reply);
                        if let Some(nat) = entry.nat_entry() {
                            assert_eq!((nat.original, nat.reply), (entry.original, entry.reply));
                            assert!(entry.is_natted());
                        }
                        if entry.l4proto != 6 {
                            assert!(entry.tcp_state.is_none() && entry.nat_entry().is_none());
                        }
                    }
                    CtMessage::Undecodable { .. } => {
                        entries += 1;
                        undecodable += 1;
                    }
                    CtMessage::Done { .. } | CtMessage::Error { .. } | CtMessage::Other { .. } => {}
                }
            }
            Err(e) => {
                // Only a framing error ends the walk (a short NLMSG_ERROR
                // does not); parse_events stops at any error.
                if matches!(e, ParseError::Framing { .. }) {
                    assert!(it.next().is_none(), "the walk stops after a framing error");
                }
                break;
            }
        }
    }
    let mut out = Vec::new();
    let st = parse_events(data, &mut out);
    assert_eq!(st.kept as usize, out.len());
    assert_eq!((st.entries, st.undecodable), (entries, undecodable));
    assert!(st.kept <= st.entries);
    for e in &out {
        let (NatEvent::New(nat) | NatEvent::Destroy(nat)) = e else {
            panic!("parse_events keeps only NEW and DESTROY: {e:?}");
        };
        assert_ne!(nat.reply, nat.original.mirror(), "only translated entries are kept");
    }
    let _ = parse_message(data);
    // The payload decoder on its own, behind any conntrack message type.
    if let Some((&ty, payload)) = data.split_first() {
        let _ = entry(0x100 | u16::from(ty % 4), payload);
    }
}
