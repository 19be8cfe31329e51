//! Pure decoding of ctnetlink (NFNL_SUBSYS_CTNETLINK) messages: bytes in, [`CtEntry`]s and
//! [`NatEvent`]s out. No I/O; never panics on any input (unit tests on kernel captures,
//! truncations and a proptest of random bytes).
//!
//! Framing (`nlmsghdr`, NLMSG_DONE/NLMSG_ERROR) is read with `netlink-packet-core`'s
//! `NetlinkBuffer`; the conntrack payload (`struct nfgenmsg` and the CTA_* attribute tree) with
//! `netlink-packet-netfilter`'s `NetfilterMessage`. Attributes that crate leaves undecoded
//! (CTA_ID, CTA_ZONE) are read from its raw `DefaultNla`s here.
//!
//! Message layout (include/uapi/linux/netfilter/nfnetlink.h, nfnetlink_conntrack.h):
//! - `nlmsg_type` = `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_*`;
//! - payload: `struct nfgenmsg` (family u8, version u8, res_id be16), then attributes:
//!   CTA_TUPLE_ORIG / CTA_TUPLE_REPLY { CTA_TUPLE_IP { CTA_IP_V4_SRC/DST | CTA_IP_V6_SRC/DST },
//!   CTA_TUPLE_PROTO { CTA_PROTO_NUM u8, CTA_PROTO_SRC_PORT be16, CTA_PROTO_DST_PORT be16 } },
//!   CTA_STATUS be32 (IPS_* of nf_conntrack_common.h), CTA_PROTOINFO { CTA_PROTOINFO_TCP {
//!   CTA_PROTOINFO_TCP_STATE u8 } }, CTA_ID be32, CTA_ZONE be16 (absent for the default zone 0).
//!
//! Which message is which (net/netfilter/nf_conntrack_netlink.c, `ctnetlink_conntrack_event`
//! and `ctnetlink_fill_info`):
//! - dump answer: IPCTNL_MSG_CT_NEW with NLM_F_MULTI (recorded on 6.18); IPCTNL_MSG_CT_GET, the
//!   request's type, is read as a dump answer too;
//! - NEW event (group NFNLGRP_CONNTRACK_NEW): IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL;
//! - UPDATE event (group NFNLGRP_CONNTRACK_UPDATE): IPCTNL_MSG_CT_NEW without those flags;
//! - DESTROY event (group NFNLGRP_CONNTRACK_DESTROY): IPCTNL_MSG_CT_DELETE. Recent kernels (6.18
//!   here) put CTA_PROTOINFO in DESTROY events too (`ctnetlink_dump_protoinfo(skb, ct, true)`);
//!   older ones did not, and then [`CtEntry::tcp_state`] is `None`.
use std::net::{IpAddr, SocketAddr};

use halfopen_core::Tuple;
use netlink_packet_core::{NetlinkBuffer, Nla, NLA_TYPE_MASK, NLM_F_CREATE, NLM_F_MULTIPART};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoInfo, ProtoInfoTCP, ProtoTuple, Tuple as CtaTuple,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

use super::{CtTcpState, NatEntry, NatEvent};
use crate::diag::NlHeader;

/// `nlmsghdr` size (include/uapi/linux/netlink.h).
pub const NLMSG_HDRLEN: usize = 16;
/// Message type: ignore.
pub const NLMSG_NOOP: u16 = 1;
/// Message type: error (or ACK when the code is 0).
pub const NLMSG_ERROR: u16 = 2;
/// Message type: end of a dump.
pub const NLMSG_DONE: u16 = 3;
/// Flag: the dump was interrupted by a change of the table.
pub const NLM_F_DUMP_INTR: u16 = 16;
/// `struct nfgenmsg` size.
pub const NFGENMSG_LEN: usize = 4;
/// Subsystem id of ctnetlink (nfnetlink.h `NFNL_SUBSYS_CTNETLINK`), the high byte of
/// `nlmsg_type`.
pub const NFNL_SUBSYS_CTNETLINK: u8 = 1;
/// `enum cntl_msg_types`: a conntrack entry (dump answer, NEW or UPDATE event).
pub const IPCTNL_MSG_CT_NEW: u8 = 0;
/// `enum cntl_msg_types`: the dump request.
pub const IPCTNL_MSG_CT_GET: u8 = 1;
/// `enum cntl_msg_types`: a DESTROY event (and the delete request).
pub const IPCTNL_MSG_CT_DELETE: u8 = 2;
/// `enum ctattr_type` CTA_ID: the entry's id, be32 (a hash of the entry's address, unique among
/// live entries; net/netfilter/nf_conntrack_core.c `nf_ct_get_id`).
pub const CTA_ID: u16 = 12;
/// `enum ctattr_type` CTA_ZONE: the conntrack zone, be16; absent for zone 0.
pub const CTA_ZONE: u16 = 18;
/// IANA protocol number of TCP (`IPPROTO_TCP`).
pub const IPPROTO_TCP: u8 = 6;
/// `IPS_SRC_NAT` (include/uapi/linux/netfilter/nf_conntrack_common.h): source NAT applies.
pub const IPS_SRC_NAT: u32 = 1 << 4;
/// `IPS_DST_NAT`: destination NAT applies.
pub const IPS_DST_NAT: u32 = 1 << 5;

/// Why bytes could not be decoded as ctnetlink messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than a `nlmsghdr` are left, or its `nlmsg_len` is below the header size or
    /// past the end of the buffer. The rest of the buffer cannot be framed.
    #[error("netlink message at offset {offset}: {detail}")]
    Framing { offset: usize, detail: String },
    /// NLMSG_ERROR with fewer than 4 payload bytes.
    #[error("NLMSG_ERROR payload of {have} bytes, need 4")]
    ShortError { have: usize },
    /// A ctnetlink message shorter than `struct nfgenmsg`.
    #[error("ctnetlink message payload of {have} bytes, shorter than struct nfgenmsg ({NFGENMSG_LEN})")]
    ShortNfgenmsg { have: usize },
    /// `netlink-packet-netfilter` could not decode the attribute tree.
    #[error("ctnetlink attributes: {0}")]
    Attributes(String),
    /// A required attribute is missing or inconsistent (e.g. a tuple without its protocol, or
    /// an IPv4 source with an IPv6 destination).
    #[error("ctnetlink entry: {0}")]
    Entry(&'static str),
}

/// What a ctnetlink entry message is, from its type and flags (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtKind {
    /// An answer to a dump request (NLM_F_MULTI).
    Dumped,
    /// NEW event: the entry was confirmed (its first packet left the last netfilter hook, after
    /// every NAT rule ran: the reply tuple already holds the translation).
    New,
    /// UPDATE event (state or status change); halfopen does not subscribe to these.
    Update,
    /// DESTROY event: the entry was deleted (expired, evicted or removed by `conntrack -D`).
    Destroy,
}

/// One conntrack entry as the kernel sent it, of any protocol, NAT'd or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CtEntry {
    /// Layer-4 protocol (CTA_PROTO_NUM), an IANA number: 6 TCP, 17 UDP, 1 ICMP...
    pub l4proto: u8,
    /// CTA_TUPLE_ORIG as `Tuple::new(src, dst)`; ports 0 for protocols without ports.
    pub original: Tuple,
    /// CTA_TUPLE_REPLY as `Tuple::new(src, dst)`; ports 0 for protocols without ports.
    pub reply: Tuple,
    /// CTA_STATUS: IPS_* bits (nf_conntrack_common.h); 0 when absent.
    pub status: u32,
    /// CTA_ID, when present (always, on kernels since 2.6.14).
    pub id: Option<u32>,
    /// CTA_ZONE; 0 (the default zone) when absent.
    pub zone: u16,
    /// CTA_PROTOINFO_TCP_STATE for TCP entries that carry it (all on 6.18; not DESTROY events of
    /// older kernels).
    pub tcp_state: Option<CtTcpState>,
}

impl CtEntry {
    /// Whether any translation applies: the reply tuple is not the original one mirrored.
    pub fn is_natted(&self) -> bool {
        self.reply != self.original.mirror()
    }

    /// The [`NatEntry`] of a NAT'd TCP entry; `None` for any other protocol or an entry that is
    /// not translated.
    pub fn nat_entry(&self) -> Option<NatEntry> {
        (self.l4proto == IPPROTO_TCP && self.is_natted()).then_some(NatEntry {
            original: self.original,
            reply: self.reply,
            id: self.id,
            zone: self.zone,
            status: self.status,
            tcp_state: self.tcp_state,
        })
    }
}

/// One netlink message of a ctnetlink socket, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtMessage {
    /// A conntrack entry (dump answer or event).
    Entry { kind: CtKind, entry: CtEntry },
    /// A conntrack entry message whose framing was sound but whose payload did not decode; the
    /// messages after it can still be read.
    Undecodable { kind: CtKind, error: ParseError },
    /// NLMSG_DONE; `code` is negative (an errno) when the dump failed.
    Done { code: i32 },
    /// NLMSG_ERROR; `errno` is positive, 0 for an ACK.
    Error { errno: i32 },
    /// NLMSG_NOOP, or a type of another subsystem or message halfopen does not use.
    Other { ty: u16 },
}

/// Iterator over the messages of one receive buffer; see [`messages`].
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

/// The netlink messages in `buf` (one datagram as received), each with its header. Stops after
/// the first framing error (a [`ParseError::Framing`] item), since nothing after it can be
/// found; a message whose payload is bad is a [`CtMessage::Undecodable`] item and the walk goes
/// on.
pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages {
        buf,
        pos: 0,
        failed: false,
    }
}

impl Iterator for Messages<'_> {
    type Item = Result<(NlHeader, CtMessage), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.pos;
        match frame(&self.buf[offset..], offset) {
            Ok((header, payload)) => {
                // nlmsg_len is at least NLMSG_HDRLEN here, so the walk always advances.
                self.pos = offset.saturating_add((header.len as usize).saturating_add(3) & !3);
                Some(decode(header, payload).map(|m| (header, m)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// Decodes the first netlink message of `msg` (bytes after it are ignored).
pub fn parse_message(msg: &[u8]) -> Result<(NlHeader, CtMessage), ParseError> {
    let (header, payload) = frame(msg, 0)?;
    Ok((header, decode(header, payload)?))
}

/// What [`parse_events`] found in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedEvents {
    /// Conntrack entry messages (NEW, UPDATE, DESTROY), decodable or not.
    pub entries: u64,
    /// Of those, NEW or DESTROY events of NAT'd TCP entries, pushed to `out`.
    pub kept: u64,
    /// Entry messages whose payload did not decode.
    pub undecodable: u64,
    /// The framing error that ended the walk early, if any: the rest of the buffer could not
    /// be read, and the events in it are lost.
    pub error: Option<ParseError>,
}

/// Decodes a receive buffer of event messages (possibly several) and appends a
/// [`NatEvent::New`] / [`NatEvent::Destroy`] for every NEW / DESTROY event of a NAT'd TCP entry,
/// in order. UPDATE events and dump answers are counted and not kept. Never fails as a whole:
/// what was read before a framing error is appended and counted, and the error is returned in
/// [`ParsedEvents::error`].
pub fn parse_events(buf: &[u8], out: &mut Vec<NatEvent>) -> ParsedEvents {
    let mut st = ParsedEvents::default();
    for m in messages(buf) {
        let message = match m {
            Ok((_, message)) => message,
            Err(e) => {
                st.error = Some(e);
                break;
            }
        };
        match message {
            CtMessage::Entry { kind, entry } => {
                st.entries += 1;
                let ev = match kind {
                    CtKind::New => entry.nat_entry().map(NatEvent::New),
                    CtKind::Destroy => entry.nat_entry().map(NatEvent::Destroy),
                    CtKind::Update | CtKind::Dumped => None,
                };
                if let Some(ev) = ev {
                    st.kept += 1;
                    out.push(ev);
                }
            }
            CtMessage::Undecodable { .. } => {
                st.entries += 1;
                st.undecodable += 1;
            }
            CtMessage::Done { .. } | CtMessage::Error { .. } | CtMessage::Other { .. } => {}
        }
    }
    st
}

/// Checks one `nlmsghdr` at the start of `rest` and returns it with its payload.
fn frame(rest: &[u8], offset: usize) -> Result<(NlHeader, &[u8]), ParseError> {
    let nl = NetlinkBuffer::new_checked(rest).map_err(|e| ParseError::Framing {
        offset,
        detail: e.to_string(),
    })?;
    let header = NlHeader {
        len: nl.length(),
        ty: nl.message_type(),
        flags: nl.flags(),
        seq: nl.sequence_number(),
        pid: nl.port_number(),
    };
    // new_checked guarantees NLMSG_HDRLEN <= nlmsg_len <= rest.len().
    let payload = rest.get(NLMSG_HDRLEN..header.len as usize).unwrap_or(&[]);
    Ok((header, payload))
}

fn decode(header: NlHeader, payload: &[u8]) -> Result<CtMessage, ParseError> {
    let ty = header.ty;
    match ty {
        NLMSG_DONE => Ok(CtMessage::Done {
            code: payload
                .get(..4)
                .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])),
        }),
        NLMSG_ERROR => {
            let b = payload.get(..4).ok_or(ParseError::ShortError { have: payload.len() })?;
            let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            Ok(CtMessage::Error {
                errno: code.checked_neg().unwrap_or(i32::MAX),
            })
        }
        _ if (ty >> 8) as u8 == NFNL_SUBSYS_CTNETLINK => {
            let kind = match (ty & 0xff) as u8 {
                IPCTNL_MSG_CT_DELETE => CtKind::Destroy,
                IPCTNL_MSG_CT_GET => CtKind::Dumped,
                IPCTNL_MSG_CT_NEW if header.flags & NLM_F_MULTIPART != 0 => CtKind::Dumped,
                IPCTNL_MSG_CT_NEW if header.flags & NLM_F_CREATE != 0 => CtKind::New,
                IPCTNL_MSG_CT_NEW => CtKind::Update,
                _ => return Ok(CtMessage::Other { ty }),
            };
            Ok(match entry(ty, payload) {
                Ok(entry) => CtMessage::Entry { kind, entry },
                Err(error) => CtMessage::Undecodable { kind, error },
            })
        }
        _ => Ok(CtMessage::Other { ty }),
    }
}

/// Decodes the payload of a conntrack entry message (after the `nlmsghdr`).
pub fn entry(ty: u16, payload: &[u8]) -> Result<CtEntry, ParseError> {
    use netlink_packet_core::ParseableParametrized;
    if payload.len() < NFGENMSG_LEN {
        return Err(ParseError::ShortNfgenmsg { have: payload.len() });
    }
    let msg = NetfilterMessage::parse_with_param(payload, ty).map_err(|e| ParseError::Attributes(e.to_string()))?;
    let attrs = match msg.inner {
        NetfilterMessageInner::Conntrack(
            ConntrackMessage::New(a) | ConntrackMessage::Get(a) | ConntrackMessage::Delete(a),
        ) => a,
        _ => return Err(ParseError::Entry("not a conntrack entry message")),
    };
    let mut original = None;
    let mut reply = None;
    let mut status = 0;
    let mut id = None;
    let mut zone = 0;
    let mut tcp_state = None;
    for a in &attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => original = Some(tuple(t, "CTA_TUPLE_ORIG")?),
            ConntrackAttribute::CtaTupleReply(t) => reply = Some(tuple(t, "CTA_TUPLE_REPLY")?),
            ConntrackAttribute::CtaStatus(s) => status = s.bits(),
            ConntrackAttribute::CtaProtoInfo(p) => {
                for info in p {
                    if let ProtoInfo::TCP(tcp) = info {
                        for t in tcp {
                            if let ProtoInfoTCP::State(s) = t {
                                tcp_state = Some(CtTcpState::from_raw(*s));
                            }
                        }
                    }
                }
            }
            ConntrackAttribute::Other(nla) => match nla.kind() & NLA_TYPE_MASK {
                CTA_ID => {
                    id = Some(u32::from_be_bytes(
                        raw_value::<4>(nla).ok_or(ParseError::Entry("CTA_ID is not 4 bytes"))?,
                    ))
                }
                CTA_ZONE => {
                    zone = u16::from_be_bytes(raw_value::<2>(nla).ok_or(ParseError::Entry("CTA_ZONE is not 2 bytes"))?)
                }
                _ => {}
            },
            _ => {}
        }
    }
    let (orig_proto, original) = original.ok_or(ParseError::Entry("no CTA_TUPLE_ORIG"))?;
    let (reply_proto, reply) = reply.ok_or(ParseError::Entry("no CTA_TUPLE_REPLY"))?;
    if orig_proto != reply_proto {
        return Err(ParseError::Entry("original and reply tuples of different protocols"));
    }
    Ok(CtEntry {
        l4proto: orig_proto,
        original,
        reply,
        status,
        id,
        zone,
        tcp_state: if orig_proto == IPPROTO_TCP { tcp_state } else { None },
    })
}

/// The value of a raw attribute that must be exactly `N` bytes.
fn raw_value<const N: usize>(nla: &impl Nla) -> Option<[u8; N]> {
    if nla.value_len() != N {
        return None;
    }
    let mut v = [0u8; N];
    nla.emit_value(&mut v);
    Some(v)
}

/// A CTA_TUPLE_* nest as `(protocol, Tuple::new(src, dst))`.
fn tuple(parts: &[CtaTuple], what: &'static str) -> Result<(u8, Tuple), ParseError> {
    let mut src: Option<IpAddr> = None;
    let mut dst: Option<IpAddr> = None;
    let mut proto = None;
    let mut sport = 0u16;
    let mut dport = 0u16;
    for p in parts {
        match p {
            CtaTuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            CtaTuple::Proto(ps) => {
                for pt in ps {
                    match pt {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(p) => sport = *p,
                        ProtoTuple::DestinationPort(p) => dport = *p,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(ParseError::Entry(match what {
            "CTA_TUPLE_ORIG" => "CTA_TUPLE_ORIG without both addresses",
            _ => "CTA_TUPLE_REPLY without both addresses",
        }));
    };
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(ParseError::Entry("tuple with addresses of two families"));
    }
    let proto = proto.ok_or(ParseError::Entry("tuple without CTA_PROTO_NUM"))?;
    Ok((
        proto,
        Tuple::new(SocketAddr::new(src, sport), SocketAddr::new(dst, dport)),
    ))
}

/// Encodes the dump request: IPCTNL_MSG_CT_GET with NLM_F_REQUEST|NLM_F_DUMP, `nfgen_family`
/// AF_UNSPEC (every layer-3 family in one walk of the table: `ctnetlink_dump_table` skips
/// other families only when a family is given), version NFNETLINK_V0, no attributes. `out` is
/// cleared first.
pub fn encode_dump_request(out: &mut Vec<u8>, seq: u32) {
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
    use netlink_packet_netfilter::{NetfilterHeader, NetfilterProtoFamily};
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0),
            ConntrackMessage::Get(Vec::new()),
        )),
    );
    msg.finalize();
    out.clear();
    out.resize(msg.buffer_len(), 0);
    msg.serialize(out);
}

#[cfg(test)]
mod tests;
