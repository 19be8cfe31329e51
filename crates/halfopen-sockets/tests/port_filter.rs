//! `Scanner::scan_ports` against the real kernel: sockets on loopback in
//! this process on a few listening ports, read back through a sock_diag dump
//! with an inet_diag bytecode port filter (and through /proc/net/tcp with the
//! same filter in user space). Every test makes its own listeners on
//! ephemeral ports and asserts only about those ports, so tests run in
//! parallel with anything else on the host.
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use halfopen_core::SourceKind;
use halfopen_core::{SocketRecord, TcpState, Tuple};
use halfopen_sockets::diag::{DiagSocket, TCP_LISTEN};
use halfopen_sockets::filter::{self, PortSet};
use halfopen_sockets::{Family, ScanError, Scanner};

const MASK: u32 = TcpState::MATCH_MASK;

struct Port {
    listener: TcpListener,
    /// (client, accepted server end)
    conns: Vec<(TcpStream, TcpStream)>,
}

impl Port {
    fn new(conns: usize) -> Port {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = (0..conns)
            .map(|_| {
                let c = TcpStream::connect(addr).unwrap();
                let (s, _) = listener.accept().unwrap();
                (c, s)
            })
            .collect();
        Port { listener, conns }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().unwrap().port()
    }

    /// Both ends of every connection, as this host sees them.
    fn tuples(&self) -> Vec<Tuple> {
        self.conns
            .iter()
            .flat_map(|(c, s)| [tuple_of(c), tuple_of(s)])
            .collect()
    }
}

fn tuple_of(s: &TcpStream) -> Tuple {
    Tuple::new(s.local_addr().unwrap(), s.peer_addr().unwrap())
}

fn scan_ports(sc: &mut Scanner, mask: u32, info: bool, ports: &[u16]) -> Vec<SocketRecord> {
    let mut out = Vec::new();
    let st = sc.scan_ports(mask, info, ports, &mut out).unwrap();
    assert_eq!(st.sockets as usize, out.len());
    assert_eq!(st.skipped, 0);
    out
}

fn tuples(recs: &[SocketRecord]) -> BTreeSet<Tuple> {
    recs.iter().map(|r| r.tuple).collect()
}

/// Records whose tuple involves one of `ports`, among the given ports' sockets.
fn mine(recs: &[SocketRecord], ports: &[&Port]) -> BTreeSet<Tuple> {
    let all: BTreeSet<Tuple> = ports.iter().flat_map(|p| p.tuples()).collect();
    tuples(recs).intersection(&all).copied().collect()
}

fn scanners() -> Vec<Scanner> {
    let nl = Scanner::netlink().unwrap();
    assert_eq!(nl.source(), SourceKind::Netlink);
    vec![nl, Scanner::procnet()]
}

#[test]
fn returns_both_ends_of_exactly_the_chosen_ports() {
    let (p1, p2, p3) = (Port::new(2), Port::new(2), Port::new(2));
    let wanted = [p1.port(), p3.port()];
    let set = PortSet::new(&wanted);
    let expect: BTreeSet<Tuple> = p1.tuples().into_iter().chain(p3.tuples()).collect();
    assert_eq!(expect.len(), 8, "2 ports x 2 connections x 2 ends");
    for mut sc in scanners() {
        let recs = scan_ports(&mut sc, MASK, false, &wanted);
        for r in &recs {
            assert!(
                set.matches(r.tuple.local_port(), r.tuple.remote_port()),
                "{}: {r:?} has neither port",
                sc.source()
            );
        }
        assert_eq!(mine(&recs, &[&p1, &p2, &p3]), expect, "{}", sc.source());
        for r in recs.iter().filter(|r| expect.contains(&r.tuple)) {
            assert_eq!(r.state, TcpState::Established);
            assert_eq!(r.info, None, "not asked for");
        }
        // the same as a full scan filtered here (our ports are ours alone:
        // bound listeners are never picked as ephemeral ports)
        let mut full = Vec::new();
        sc.scan(MASK, false, &mut full).unwrap();
        full.retain(|r| set.matches(r.tuple.local_port(), r.tuple.remote_port()));
        assert_eq!(tuples(&recs), tuples(&full), "{}", sc.source());
        // and the filter applies to listeners too
        let l = scan_ports(&mut sc, 1 << TCP_LISTEN, false, &wanted);
        let lports: BTreeSet<u16> = l.iter().map(|r| r.tuple.local_port()).collect();
        assert_eq!(lports, wanted.into_iter().collect(), "{}", sc.source());
    }
}

#[test]
fn tcp_info_when_asked() {
    let mut p = Port::new(3);
    let other = Port::new(1);
    for (c, s) in &mut p.conns {
        s.write_all(b"greeting").unwrap();
        let mut b = [0u8; 8];
        c.read_exact(&mut b).unwrap();
    }
    let mut sc = Scanner::netlink().unwrap();
    let mut out = Vec::new();
    let st = sc.scan_ports(MASK, true, &[p.port()], &mut out).unwrap();
    assert_eq!(st.info_parse_failures, 0);
    let expect: BTreeSet<Tuple> = p.tuples().into_iter().collect();
    assert_eq!(mine(&out, &[&p, &other]), expect);
    for (c, _) in &p.conns {
        let r = out.iter().find(|r| r.tuple == tuple_of(c)).unwrap();
        let info = r.info.expect("tcp_info asked for");
        assert!(info.bytes_received >= 8, "{info:?}");
    }
    assert!(out.iter().all(|r| r.state != TcpState::Established || r.info.is_some()));
}

#[test]
fn sixty_four_ports() {
    let ports: Vec<Port> = (0..64).map(|_| Port::new(1)).collect();
    let refs: Vec<&Port> = ports.iter().collect();
    let numbers: Vec<u16> = ports.iter().map(Port::port).collect();
    let mut sc = Scanner::netlink().unwrap();
    let all = scan_ports(&mut sc, MASK, false, &numbers);
    assert_eq!(mine(&all, &refs).len(), 128);
    let half = scan_ports(&mut sc, MASK, false, &numbers[..32]);
    let expect: BTreeSet<Tuple> = ports[..32].iter().flat_map(Port::tuples).collect();
    assert_eq!(mine(&half, &refs), expect);
    let set = PortSet::new(&numbers[..32]);
    assert!(half
        .iter()
        .all(|r| set.matches(r.tuple.local_port(), r.tuple.remote_port())));
}

#[test]
fn duplicates_and_order_do_not_matter() {
    let (p1, p2, p3) = (Port::new(1), Port::new(1), Port::new(1));
    let mut sc = Scanner::netlink().unwrap();
    let a = scan_ports(&mut sc, MASK, false, &[p1.port(), p3.port()]);
    let b = scan_ports(
        &mut sc,
        MASK,
        false,
        &[p3.port(), p1.port(), p1.port(), p3.port(), p1.port()],
    );
    let refs = [&p1, &p2, &p3];
    assert_eq!(mine(&a, &refs), mine(&b, &refs));
    assert_eq!(mine(&a, &refs).len(), 4);
}

#[test]
fn empty_port_list_returns_nothing() {
    let _p = Port::new(1);
    for mut sc in scanners() {
        let mut out = Vec::new();
        let st = sc.scan_ports(MASK, true, &[], &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(st.sockets, 0);
    }
}

#[test]
fn a_list_too_long_for_the_kernel_is_filtered_here() {
    let (p1, p2, p3) = (Port::new(1), Port::new(1), Port::new(1));
    // 3,000 separate ports plus ours, never p2
    let mut ports: Vec<u16> = (1..u16::MAX)
        .step_by(2)
        .filter(|&p| p != p2.port())
        .take(3000)
        .collect();
    ports.extend([p1.port(), p3.port()]);
    assert!(!filter::encode_port_filter(&ports, &mut Vec::new()));
    let set = PortSet::new(&ports);
    let mut sc = Scanner::netlink().unwrap();
    let recs = scan_ports(&mut sc, MASK, false, &ports);
    assert!(recs
        .iter()
        .all(|r| set.matches(r.tuple.local_port(), r.tuple.remote_port())));
    let expect: BTreeSet<Tuple> = p1.tuples().into_iter().chain(p3.tuples()).collect();
    assert_eq!(mine(&recs, &[&p1, &p2, &p3]), expect);
}

#[test]
fn kernel_accepts_our_programs_and_refuses_a_bad_one() {
    let p = Port::new(1);
    let mut d = DiagSocket::open().unwrap();
    for ports in [vec![p.port()], vec![], (1..=64).collect(), (0..=u16::MAX).collect()] {
        let mut bc = Vec::new();
        assert!(filter::encode_port_filter(&ports, &mut bc));
        let mut n = 0;
        for f in Family::ALL {
            d.dump_filtered(f, MASK, false, Some(&bc), |_| n += 1).unwrap();
        }
        if ports.is_empty() {
            assert_eq!(n, 0, "the empty program rejects everything");
        }
    }
    // a port comparison whose operand is missing: the audit says EINVAL
    let bad = [filter::INET_DIAG_BC_S_EQ, 4, 8, 0];
    let e = d
        .dump_filtered(Family::V4, MASK, false, Some(&bad), |_| {})
        .unwrap_err();
    assert!(
        matches!(e, ScanError::Kernel { .. }) && e.raw_os_error() == Some(libc::EINVAL),
        "{e:?}"
    );
    // and the socket still works afterwards
    let mut bc = Vec::new();
    filter::encode_port_filter(&[p.port()], &mut bc);
    let mut n = 0;
    d.dump_filtered(Family::V4, MASK, false, Some(&bc), |_| n += 1).unwrap();
    assert_eq!(n, 2);
}

#[test]
fn remote_ports_returns_only_the_connecting_ends() {
    let (p1, p2) = (Port::new(3), Port::new(1));
    let expect: BTreeSet<Tuple> = p1.conns.iter().map(|(c, _)| tuple_of(c)).collect();
    for mut sc in scanners() {
        let mut out = Vec::new();
        let st = sc
            .scan_remote_ports(MASK, sc.source() == SourceKind::Netlink, &[p1.port()], &mut out)
            .unwrap();
        assert_eq!(st.sockets as usize, out.len());
        assert!(
            out.iter().all(|r| r.tuple.remote_port() == p1.port()),
            "{}",
            sc.source()
        );
        assert_eq!(mine(&out, &[&p1, &p2]), expect, "{}: client ends only", sc.source());
        if sc.source() == SourceKind::Netlink {
            assert!(out.iter().all(|r| r.info.is_some()));
        }
        out.clear();
        sc.scan_remote_ports(MASK, false, &[], &mut out).unwrap();
        assert!(out.is_empty());
    }
}
