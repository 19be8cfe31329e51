//! Unit tests of the pure ctnetlink parser, on datagrams recorded from Linux 6.18 by
//! `tests/conntrack.rs::record_fixtures` (the Docker-shaped lab: client 198.18.0.2, host
//! 198.18.0.1 DNATing tcp/7000 to 198.19.0.2:7000; and IPv6 DNAT on loopback), on truncations
//! and corruptions of them, and on random bytes.
use super::*;
use crate::conntrack::{CtTcpState, NatEvent};
use proptest::prelude::*;

/// The dump request halfopen sends (seq 77).
const DUMP_REQUEST: &str = "14000000010101034d0000000000000000000000";
/// Dump answer: the NAT'd connection 198.18.0.2:34846 -> 198.18.0.1:7000 (backend
/// 198.19.0.2:7000), then a direct one 198.18.0.2:38214 -> 198.18.0.1:7100.
const DUMP_0: &str = "d4000000000102004d0000000246eceb02000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000300000001ae080008000000000008000c0055f2aae308000b0000000001080007000006977f300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000d4000000000102004d0000000246eceb02000000340001801400018008000100c612000208000200c61200011c00028005000100060000000600020095460000060003001bbc0000340002801400018008000100c612000108000200c61200021c0002800500010006000000060002001bbc00000600030095460000080003000000018e080008000000000008000c00d1f9acd408000b0000000001080007000006977f300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000";
/// NLMSG_DONE of that dump.
const DUMP_1: &str = "14000000030002004d0000000246eceb00000000";
/// NEW event of the NAT'd connection.
const EVENT_NEW: &str = "c400000000010006000000000000000002000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000c0055f2aae308000300000001a80800070000000078300004802c0001800500010001000000050002000a000000050003000000000006000400030000000600050000000000";
/// UPDATE events of the NAT'd connection (SYN_RECV, ESTABLISHED).
const EVENT_UPDATE_1: &str = "c400000000010000000000000000000002000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000c0055f2aae308000300000001aa080007000000003c300004802c0001800500010002000000050002000a000000050003000a00000006000400030000000600050023000000";
const EVENT_UPDATE_2: &str = "c400000000010000000000000000000002000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000c0055f2aae308000300000001ae0800070000069780300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000";
/// NEW event of the direct (untranslated) connection.
const EVENT_NEW_DIRECT: &str = "c400000000010006000000000000000002000000340001801400018008000100c612000208000200c61200011c00028005000100060000000600020095460000060003001bbc0000340002801400018008000100c612000108000200c61200021c0002800500010006000000060002001bbc0000060003009546000008000c00d1f9acd408000300000001880800070000000078300004802c0001800500010001000000050002000a000000050003000000000006000400030000000600050000000000";
/// UPDATE event (CLOSE, after a RST) of the NAT'd connection.
const EVENT_UPDATE_CLOSE: &str = "c400000000010000000000000000000002000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000c0055f2aae308000300000001ae080007000000000a300004802c0001800500010008000000050002000a000000050003000a00000006000400230000000600050023000000";
/// DESTROY event of the NAT'd connection (after `conntrack -D`).
const EVENT_DESTROY: &str = "a400000002010000000000008ccfa8c402000000340001801400018008000100c612000208000200c61200011c000280050001000600000006000200881e0000060003001b580000340002801400018008000100c613000208000200c61200021c0002800500010006000000060002001b58000006000300881e000008000c0055f2aae308000300000003ae0800070000000009100004800c0001800500010008000000";
/// Dump answer with the IPv6 connection [::1]:56036 -> [::1]:7001 DNATed to [::1]:7002.
const DUMP6_0: &str = "04010000000102004e000000ae3100000a0000004c0001802c000180140003000000000000000000000000000000000114000400000000000000000000000000000000011c000280050001000600000006000200dae40000060003001b5900004c0002802c000180140003000000000000000000000000000000000114000400000000000000000000000000000000011c0002800500010006000000060002001b5a000006000300dae4000008000300000001ae080008000000000008000c00208f51a708000b0000000001080007000006977f300004802c0001800500010003000000050002000a000000050003000a00000006000400230000000600050023000000";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn t(local: &str, remote: &str) -> Tuple {
    Tuple::new(local.parse().unwrap(), remote.parse().unwrap())
}

fn all(buf: &[u8]) -> Vec<CtMessage> {
    messages(buf).map(|m| m.unwrap().1).collect()
}

fn natted() -> (Tuple, Tuple) {
    (
        t("198.18.0.2:34846", "198.18.0.1:7000"),
        t("198.19.0.2:7000", "198.18.0.2:34846"),
    )
}

#[test]
fn the_dump_request_is_get_dump_of_every_family() {
    let mut out = vec![0xff; 3];
    encode_dump_request(&mut out, 77);
    assert_eq!(out, unhex(DUMP_REQUEST));
    // type CTNETLINK<<8 | IPCTNL_MSG_CT_GET, flags REQUEST|DUMP, nfgen_family AF_UNSPEC
    assert_eq!(u16::from_ne_bytes([out[4], out[5]]), 0x0101);
    assert_eq!(u16::from_ne_bytes([out[6], out[7]]), 0x0301);
    assert_eq!(out[16], 0);
}

#[test]
fn a_recorded_dump_decodes_field_by_field() {
    let buf = unhex(DUMP_0);
    let msgs: Vec<_> = messages(&buf).map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 2);
    let (h, first) = &msgs[0];
    assert_eq!((h.seq, h.ty, h.flags), (77, 0x0100, 0x0002)); // CT_NEW, NLM_F_MULTI
    let CtMessage::Entry {
        kind: CtKind::Dumped,
        entry,
    } = first
    else {
        panic!("{first:?}")
    };
    let (orig, reply) = natted();
    assert_eq!(entry.l4proto, IPPROTO_TCP);
    assert_eq!(entry.original, orig);
    assert_eq!(entry.reply, reply);
    assert_eq!(entry.status, 0x1ae); // SEEN_REPLY|ASSURED|CONFIRMED|DST_NAT|SRC_NAT_DONE|DST_NAT_DONE
    assert_eq!(entry.id, Some(0x55f2_aae3));
    assert_eq!(entry.zone, 0);
    assert_eq!(entry.tcp_state, Some(CtTcpState::Established));
    assert!(entry.is_natted());
    let nat = entry.nat_entry().unwrap();
    assert_eq!((nat.original, nat.reply), (orig, reply));
    assert!(nat.is_dnat() && !nat.is_snat());

    let CtMessage::Entry { entry: direct, .. } = &msgs[1].1 else {
        panic!("{:?}", msgs[1])
    };
    assert_eq!(direct.original, t("198.18.0.2:38214", "198.18.0.1:7100"));
    assert_eq!(direct.reply, direct.original.mirror());
    assert!(!direct.is_natted());
    assert_eq!(direct.nat_entry(), None);

    assert_eq!(all(&unhex(DUMP_1)), vec![CtMessage::Done { code: 0 }]);
}

#[test]
fn an_ipv6_entry_decodes() {
    let msgs = all(&unhex(DUMP6_0));
    let [CtMessage::Entry {
        kind: CtKind::Dumped,
        entry,
    }] = msgs.as_slice()
    else {
        panic!("{msgs:?}")
    };
    assert_eq!(entry.original, t("[::1]:56036", "[::1]:7001"));
    assert_eq!(entry.reply, t("[::1]:7002", "[::1]:56036"));
    assert!(entry.nat_entry().is_some_and(|n| n.is_dnat()));
}

#[test]
fn events_are_told_apart_by_type_and_flags() {
    let kind = |hex: &str| match parse_message(&unhex(hex)).unwrap().1 {
        CtMessage::Entry { kind, entry } => (kind, entry.tcp_state),
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(EVENT_NEW), (CtKind::New, Some(CtTcpState::SynSent)));
    assert_eq!(kind(EVENT_UPDATE_1), (CtKind::Update, Some(CtTcpState::SynRecv)));
    assert_eq!(kind(EVENT_UPDATE_2), (CtKind::Update, Some(CtTcpState::Established)));
    assert_eq!(kind(EVENT_UPDATE_CLOSE), (CtKind::Update, Some(CtTcpState::Close)));
    assert_eq!(kind(EVENT_DESTROY), (CtKind::Destroy, Some(CtTcpState::Close)));
    assert_eq!(kind(EVENT_NEW_DIRECT), (CtKind::New, Some(CtTcpState::SynSent)));
}

#[test]
fn parse_events_keeps_new_and_destroy_of_natted_tcp_only() {
    // Several datagrams read back to back, as one buffer.
    let mut buf = Vec::new();
    for h in [
        EVENT_NEW,
        EVENT_UPDATE_1,
        EVENT_UPDATE_2,
        EVENT_NEW_DIRECT,
        EVENT_UPDATE_CLOSE,
        EVENT_DESTROY,
    ] {
        buf.extend(unhex(h));
    }
    let mut out = vec![NatEvent::Lost];
    let st = parse_events(&buf, &mut out);
    assert_eq!(
        st,
        ParsedEvents {
            entries: 6,
            kept: 2,
            undecodable: 0,
            error: None,
        }
    );
    let (orig, reply) = natted();
    match out.as_slice() {
        [NatEvent::Lost, NatEvent::New(n), NatEvent::Destroy(d)] => {
            assert_eq!((n.original, n.reply), (orig, reply));
            assert_eq!((d.original, d.reply), (orig, reply));
            assert_eq!(n.id, d.id);
            assert_eq!(d.status & 0x200, 0x200, "IPS_DYING");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_an_error_never_a_wrong_entry() {
    let buf = unhex(DUMP_0);
    let first_len = 0xd4;
    for cut in 0..buf.len() {
        let part = &buf[..cut];
        let items: Vec<_> = messages(part).collect();
        let complete = if cut >= first_len { 1 } else { 0 };
        assert_eq!(
            items.iter().filter(|m| m.is_ok()).count(),
            complete,
            "cut at {cut}: {items:?}"
        );
        if cut != 0 && cut != first_len {
            assert!(
                matches!(items.last(), Some(Err(ParseError::Framing { .. }))),
                "cut at {cut}"
            );
        }
        if cut < first_len {
            assert!(parse_message(part).is_err());
        }
        let mut out = Vec::new();
        let st = parse_events(part, &mut out);
        assert_eq!(st.error.is_some(), cut != 0 && cut != first_len, "cut at {cut}");
        assert_eq!(st.entries as usize, complete);
        assert!(out.is_empty(), "dump answers are not events");
    }
}

#[test]
fn a_bad_payload_is_undecodable_and_the_walk_goes_on() {
    let mut buf = unhex(DUMP_0);
    // The first attribute of the first message (CTA_TUPLE_ORIG at offset 20): length past the
    // end of the message.
    buf[20] = 0xff;
    buf[21] = 0x0f;
    let msgs = all(&buf);
    assert!(
        matches!(
            &msgs[0],
            CtMessage::Undecodable {
                kind: CtKind::Dumped,
                error: ParseError::Attributes(_)
            }
        ),
        "{msgs:?}"
    );
    assert!(matches!(&msgs[1], CtMessage::Entry { .. }));

    // CTA_TUPLE_REPLY (offset 72) retyped to an attribute nobody knows: no reply tuple.
    let mut buf = unhex(EVENT_NEW);
    assert_eq!(&buf[72..76], &[0x34, 0x00, 0x02, 0x80]);
    buf[74] = 0x1f;
    let m = parse_message(&buf).unwrap().1;
    assert_eq!(
        m,
        CtMessage::Undecodable {
            kind: CtKind::New,
            error: ParseError::Entry("no CTA_TUPLE_REPLY")
        }
    );
    let mut out = Vec::new();
    let st = parse_events(&buf, &mut out);
    assert_eq!((st.entries, st.kept, st.undecodable, st.error), (1, 0, 1, None));
    // A NAT'd NEW event, then a second datagram cut short: the first is kept, the fault said.
    let mut two = unhex(EVENT_NEW);
    two.extend(&unhex(EVENT_DESTROY)[..100]);
    let st = parse_events(&two, &mut out);
    assert_eq!((st.entries, st.kept), (1, 1));
    assert!(
        matches!(st.error, Some(ParseError::Framing { offset: 0xc4, .. })),
        "{st:?}"
    );
    assert!(matches!(out.as_slice(), [NatEvent::New(_)]));

    // A ctnetlink message too short for struct nfgenmsg.
    let mut short = unhex(EVENT_NEW)[..18].to_vec();
    short[0] = 18;
    assert_eq!(
        parse_message(&short).unwrap().1,
        CtMessage::Undecodable {
            kind: CtKind::New,
            error: ParseError::ShortNfgenmsg { have: 2 }
        }
    );

    // The source address of the original tuple made IPv6-sized: mixed families. CTA_IP_V4_SRC
    // is at offset 32 (len 8, type 1); rewriting its type to CTA_IP_V6_SRC with 4 bytes fails
    // in the codec, so check the mixed case by hand-building a tuple.
    let parts = vec![
        CtaTuple::Ip(vec![
            IPTuple::SourceAddress("198.18.0.2".parse().unwrap()),
            IPTuple::DestinationAddress("::1".parse().unwrap()),
        ]),
        CtaTuple::Proto(vec![ProtoTuple::Protocol(6.into())]),
    ];
    assert_eq!(
        tuple(&parts, "CTA_TUPLE_ORIG"),
        Err(ParseError::Entry("tuple with addresses of two families"))
    );
    let no_proto = vec![CtaTuple::Ip(vec![
        IPTuple::SourceAddress("198.18.0.2".parse().unwrap()),
        IPTuple::DestinationAddress("198.18.0.1".parse().unwrap()),
    ])];
    assert_eq!(
        tuple(&no_proto, "CTA_TUPLE_ORIG"),
        Err(ParseError::Entry("tuple without CTA_PROTO_NUM"))
    );
}

#[test]
fn error_and_other_messages() {
    // NLMSG_ERROR carrying -EPERM and the request's header.
    let mut err = Vec::new();
    err.extend(36u32.to_ne_bytes());
    err.extend(NLMSG_ERROR.to_ne_bytes());
    err.extend(0u16.to_ne_bytes());
    err.extend(77u32.to_ne_bytes());
    err.extend(0u32.to_ne_bytes());
    err.extend((-libc::EPERM).to_ne_bytes());
    err.extend(&unhex(DUMP_REQUEST)[..16]);
    assert_eq!(parse_message(&err).unwrap().1, CtMessage::Error { errno: libc::EPERM });
    // A short error payload.
    let mut short = err[..18].to_vec();
    short[0] = 18;
    assert_eq!(parse_message(&short), Err(ParseError::ShortError { have: 2 }));
    // A message of another subsystem (nftables, 10 << 8) and a ctnetlink type halfopen does not
    // read (IPCTNL_MSG_CT_GET_STATS = 5).
    for ty in [0x0a00u16, 0x0105, NLMSG_NOOP] {
        let mut m = unhex(DUMP_1);
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        assert_eq!(parse_message(&m).unwrap().1, CtMessage::Other { ty });
    }
    // A DONE with a negative code.
    let mut done = unhex(DUMP_1);
    done[16..20].copy_from_slice(&(-libc::EINVAL).to_ne_bytes());
    assert_eq!(parse_message(&done).unwrap().1, CtMessage::Done { code: -libc::EINVAL });
}

#[test]
fn tcp_states_map_to_the_kernel_numbers() {
    assert_eq!(CtTcpState::from_raw(3), CtTcpState::Established);
    assert_eq!(CtTcpState::from_raw(7), CtTcpState::TimeWait);
    assert_eq!(CtTcpState::from_raw(9), CtTcpState::SynSent2);
    assert_eq!(CtTcpState::from_raw(200), CtTcpState::Other(200));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = messages(&bytes).count();
        let _ = parse_message(&bytes);
        let _ = parse_events(&bytes, &mut Vec::new());
    }

    #[test]
    fn mutated_recordings_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
        cut in any::<u16>(),
    ) {
        let mut buf = unhex([DUMP_0, EVENT_NEW, EVENT_DESTROY, DUMP6_0][which]);
        // Keep the netlink header intact half of the time so the attribute decoder is reached.
        let keep_header = edits[0].1 & 1 == 0;
        for (at, v) in &edits {
            let lo = if keep_header { NLMSG_HDRLEN } else { 0 };
            let at = lo + usize::from(*at) % (buf.len() - lo);
            buf[at] = *v;
        }
        let cut = usize::from(cut) % (buf.len() + 1);
        let part = &buf[..cut.max(buf.len() / 2)];
        for m in messages(part) {
            if let Ok((_, CtMessage::Entry { entry, .. })) = m {
                let _ = entry.nat_entry();
            }
        }
        let _ = parse_events(part, &mut Vec::new());
    }
}
