//! Criterion benches of halfopen-core's per-socket work: building canonical
//! tuples (IPv4, IPv4-mapped IPv6 folded, IPv6), hashing them (the
//! collector's tuple -> record map), deciding sides with `ListenerPorts`,
//! and parsing /proc/net/netstat with `counters::parse_proc_net_counters`.
//!
//! `tuple_map` compares std's SipHash with a multiply-rotate hasher (the
//! FxHash of rustc-hash, written out here) on the map the collector builds
//! every interval, to size the change proposed in BENCHMARKS.md.
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use halfopen_core::counters::parse_proc_net_counters;
use halfopen_core::{canonical_ip, ListenerPorts, Side, SocketRecord, TcpState, Tuple};

fn v4(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC612_0000 | (i >> 16))), (i & 0xffff) as u16)
}

fn tuples(n: u32) -> Vec<Tuple> {
    (0..n)
        .map(|i| Tuple::new(v4(i * 7 + 1), SocketAddr::from(([198, 18, 0, 1], 3306))))
        .collect()
}

fn bench_tuple(c: &mut Criterion) {
    let mut g = c.benchmark_group("tuple");
    let local = SocketAddr::from(([198, 18, 0, 2], 40000));
    let remote = SocketAddr::from(([198, 18, 0, 1], 3306));
    let mapped = SocketAddr::new(IpAddr::V6(Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped()), 40000);
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), 40000);
    g.bench_function("new_v4", |b| b.iter(|| Tuple::new(black_box(local), black_box(remote))));
    g.bench_function("new_v4_mapped_v6", |b| {
        b.iter(|| Tuple::new(black_box(mapped), black_box(remote)))
    });
    g.bench_function("new_v6", |b| b.iter(|| Tuple::new(black_box(v6), black_box(v6))));
    let raw4 = [198u8, 18, 0, 2];
    let raw6 = Ipv4Addr::new(198, 18, 0, 2).to_ipv6_mapped().octets();
    g.bench_function("from_raw_v4", |b| {
        b.iter(|| Tuple::from_raw(black_box(&raw4), 40000, black_box(&raw4), 3306))
    });
    g.bench_function("from_raw_mapped_v6", |b| {
        b.iter(|| Tuple::from_raw(black_box(&raw6), 40000, black_box(&raw6), 3306))
    });
    g.bench_function("canonical_ip_mapped", |b| {
        b.iter(|| canonical_ip(black_box(mapped.ip())))
    });
    let t = Tuple::new(local, remote);
    g.bench_function("mirror", |b| b.iter(|| black_box(t).mirror()));
    g.bench_function("local_remote", |b| {
        b.iter(|| (black_box(t).local(), black_box(t).remote()))
    });
    g.finish();
}

fn bench_side(c: &mut Criterion) {
    let mut g = c.benchmark_group("listener_ports_side_of");
    for n in [3usize, 50] {
        let mut addrs: Vec<SocketAddr> = (0..n as u16)
            .map(|i| SocketAddr::from(([198, 18, 0, 1], 1000 + i)))
            .collect();
        addrs.push("[::]:3306".parse().unwrap());
        let lp = ListenerPorts::new(addrs);
        let server = SocketAddr::from(([198, 18, 0, 1], 3306));
        let client = SocketAddr::from(([198, 18, 0, 1], 45000));
        g.bench_with_input(BenchmarkId::new("server", n + 1), &lp, |b, lp| {
            b.iter(|| lp.side_of(black_box(server)))
        });
        g.bench_with_input(BenchmarkId::new("client", n + 1), &lp, |b, lp| {
            b.iter(|| lp.side_of(black_box(client)))
        });
    }
    g.finish();
}

fn record(t: Tuple, i: u64) -> SocketRecord {
    SocketRecord {
        tuple: t,
        state: TcpState::Established,
        side: Side::Client,
        cookie: i,
        inode: i,
        uid: 0,
        keepalive: false,
        info: None,
    }
}

fn bench_map(c: &mut Criterion) {
    let mut g = c.benchmark_group("tuple_map");
    for n in [10_000u32, 200_000] {
        let recs: Vec<SocketRecord> = tuples(n)
            .into_iter()
            .enumerate()
            .map(|(i, t)| record(t, i as u64))
            .collect();
        g.throughput(Throughput::Elements(u64::from(n)));
        g.sample_size(if n > 50_000 { 10 } else { 30 });
        // what the collector does every interval: build the map, diff it
        // against the previous one both ways
        g.bench_with_input(BenchmarkId::new("build_and_diff_siphash", n), &recs, |b, recs| {
            let prev: HashMap<Tuple, SocketRecord> = recs.iter().map(|r| (r.tuple, *r)).collect();
            b.iter(|| {
                let mut next: HashMap<Tuple, SocketRecord> = HashMap::with_capacity(recs.len());
                for r in recs {
                    next.insert(r.tuple, *r);
                }
                let changed = next.iter().filter(|(t, r)| prev.get(t) != Some(r)).count();
                let removed = prev.keys().filter(|t| !next.contains_key(t)).count();
                black_box((changed, removed, next.len()))
            })
        });
        g.bench_with_input(BenchmarkId::new("build_and_diff_fxhash", n), &recs, |b, recs| {
            type M = HashMap<Tuple, SocketRecord, rustc_hash::FxBuildHasher>;
            let prev: M = recs.iter().map(|r| (r.tuple, *r)).collect();
            b.iter(|| {
                let mut next: M = M::with_capacity_and_hasher(recs.len(), Default::default());
                for r in recs {
                    next.insert(r.tuple, *r);
                }
                let changed = next.iter().filter(|(t, r)| prev.get(t) != Some(r)).count();
                let removed = prev.keys().filter(|t| !next.contains_key(t)).count();
                black_box((changed, removed, next.len()))
            })
        });
    }
    g.finish();
}

fn bench_counters(c: &mut Criterion) {
    // This host's real /proc/net/netstat (about 120 TcpExt and 30 IpExt
    // counters); a small synthetic one if it cannot be read.
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_else(|_| {
        "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\nTcpExt: 1 2 3 4\n".to_string()
    });
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut g = c.benchmark_group("counters");
    g.bench_function("parse_proc_net_netstat", |b| {
        b.iter(|| parse_proc_net_counters(black_box(&text)).unwrap())
    });
    if !snmp.is_empty() {
        g.bench_function("parse_proc_net_snmp", |b| {
            b.iter(|| parse_proc_net_counters(black_box(&snmp)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_tuple, bench_side, bench_map, bench_counters);
criterion_main!(benches);
