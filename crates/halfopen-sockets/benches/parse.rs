//! Criterion benches of halfopen-sockets' pure parsers: a sock_diag
//! datagram of many `inet_diag_msg` (what `Scanner::scan` does per socket:
//! frame, decode, tuple, state, optional tcp_info), /proc/net/tcp{,6} lines
//! (`procnet::parse_line`), and the port-filter encoder.
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use halfopen_core::TcpState;
use halfopen_sockets::diag::{frames, InfoAttr, Message, INET_DIAG_INFO, INET_DIAG_MSG_LEN, SOCK_DIAG_BY_FAMILY};
use halfopen_sockets::{filter, procnet, Family};

/// One inet_diag_msg (AF_INET, ESTABLISHED) wrapped in a nlmsghdr, with a
/// 232-byte tcp_info attribute when `info`.
fn message(i: u32, info: bool) -> Vec<u8> {
    let mut p = vec![2u8, 1, 0, 0];
    p.extend_from_slice(&(3306u16).to_be_bytes());
    p.extend_from_slice(&((i % 60000) as u16 + 1024).to_be_bytes());
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[198, 18, 0, 1]);
    let mut dst = [0u8; 16];
    dst[..4].copy_from_slice(&(0xC612_0000u32 | (i / 60000 + 2)).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    for v in [0u32, i, 0, 0, 0, 0, 0, 1000 + i] {
        p.extend_from_slice(&v.to_ne_bytes()); // if, cookie x2, expires, rqueue, wqueue, uid, inode
    }
    assert_eq!(p.len(), INET_DIAG_MSG_LEN);
    if info {
        p.extend_from_slice(&(4u16 + 232).to_ne_bytes());
        p.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        p.extend_from_slice(&[0u8; 232]);
    }
    let mut m = Vec::new();
    m.extend_from_slice(&(16 + p.len() as u32).to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&2u16.to_ne_bytes()); // NLM_F_MULTI
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&p);
    m
}

/// A datagram as the kernel sends them: up to 32 KiB of messages.
fn datagram(info: bool) -> (Vec<u8>, u64) {
    let mut d = Vec::new();
    let mut n = 0u64;
    loop {
        let m = message(n as u32, info);
        if d.len() + m.len() > 32 * 1024 {
            return (d, n);
        }
        d.extend_from_slice(&m);
        n += 1;
    }
}

fn bench_diag(c: &mut Criterion) {
    let mut g = c.benchmark_group("diag_datagram");
    for info in [false, true] {
        let (d, n) = datagram(info);
        g.throughput(Throughput::Elements(n));
        let name = if info { "with_tcp_info" } else { "no_info" };
        g.bench_with_input(BenchmarkId::new("parse", format!("{name}_{n}_msgs")), &d, |b, d| {
            b.iter(|| {
                let mut acc = 0u64;
                for f in frames(black_box(d)).flatten() {
                    if let Message::Socket(m) = f.message {
                        let t = m.tuple();
                        let s = TcpState::from_kernel(m.state);
                        if info {
                            if let Ok(InfoAttr::Present(i)) = m.tcp_info() {
                                acc += i.bytes_received;
                            }
                        }
                        acc += u64::from(t.is_some() && s.is_some()) + m.cookie;
                    }
                }
                acc
            })
        });
    }
    g.finish();
}

fn bench_procnet(c: &mut Criterion) {
    let v4 = "   1: 0100007F:0CEA 0200007F:9C40 01 00000000:00000000 02:000A7D8A 00000000  1000        0 123456 2 0000000000000000 20 4 30 10 -1";
    let v6 = "   1: 0000000000000000FFFF00000100007F:0CEA 0000000000000000FFFF00000200007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1";
    let mut g = c.benchmark_group("procnet_parse_line");
    g.bench_function("v4", |b| {
        b.iter(|| procnet::parse_line(black_box(v4), Family::V4).unwrap())
    });
    g.bench_function("v6_mapped", |b| {
        b.iter(|| procnet::parse_line(black_box(v6), Family::V6).unwrap())
    });
    g.finish();
}

fn bench_filter(c: &mut Criterion) {
    let mut g = c.benchmark_group("port_filter_encode");
    let mut out = Vec::new();
    for n in [10u16, 64] {
        let ports: Vec<u16> = (0..n).map(|i| 1000 + 7 * i).collect();
        g.bench_with_input(BenchmarkId::from_parameter(n), &ports, |b, p| {
            b.iter(|| filter::encode_port_filter(black_box(p), &mut out))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_diag, bench_procnet, bench_filter);
criterion_main!(benches);
