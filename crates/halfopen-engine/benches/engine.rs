//! Criterion benches of the matching engine: applying a full table (the
//! join over both ends) and applying a delta, per socket record.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use halfopen_core::{Hello, Report, Side, SocketRecord, TcpState, Tuple};
use halfopen_engine::{Clock, Engine, EngineConfig};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn ip(host: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, (host / 250) as u8, (host % 250 + 1) as u8))
}

fn clk(ms: u64) -> Clock {
    Clock {
        mono_ms: ms,
        wall_ms: ms as i64,
    }
}

/// n connections from the client host (ip 1) to the server host (ip 0), both ends.
fn tables(n: u32, cookie_base: u64) -> (Vec<SocketRecord>, Vec<SocketRecord>) {
    let mut c = Vec::with_capacity(n as usize);
    let mut s = Vec::with_capacity(n as usize);
    for i in 0..n {
        let client = SocketAddr::new(ip(1), 10_000 + (i % 50_000) as u16);
        let server = SocketAddr::new(ip(0), 3306 + (i / 50_000) as u16);
        let t = Tuple::new(client, server);
        let rec = |tuple, side, cookie| SocketRecord {
            tuple,
            state: TcpState::Established,
            side,
            cookie,
            inode: 1,
            uid: 0,
            keepalive: false,
            info: None,
        };
        c.push(rec(t, Side::Client, cookie_base + 2 * i as u64));
        s.push(rec(t.mirror(), Side::Server, cookie_base + 2 * i as u64 + 1));
    }
    (c, s)
}

fn engine_with(n: u32) -> (Engine, usize, u64, usize, u64) {
    let mut e = Engine::new(EngineConfig::default());
    let hello = |i: u32| Hello {
        host_id: format!("h{i}"),
        addresses: vec![ip(i)],
        interval_ms: 5000,
        ..Default::default()
    };
    let open = |e: &mut Engine, i| {
        let c = e.connect(hello(i), String::new(), clk(0)).expect("distinct hosts");
        (c.host, c.session)
    };
    let (s, ss) = open(&mut e, 0);
    let (c, cs) = open(&mut e, 1);
    let (ct, st) = tables(n, 1);
    let full = |seq, up| Report {
        seq,
        full: true,
        last_chunk: true,
        upserted: up,
        ..Default::default()
    };
    e.report(s, ss, full(1, st), clk(1));
    e.report(c, cs, full(1, ct), clk(2));
    (e, s, ss, c, cs)
}

fn bench_full(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_full_table");
    for n in [1_000u32, 10_000, 100_000] {
        let (ct, _) = tables(n, 1);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter_batched(
                || engine_with(n),
                |(mut e, _, _, c, cs)| {
                    // The client host resyncs: its whole table is joined again.
                    let r = Report {
                        seq: 2,
                        full: true,
                        last_chunk: true,
                        upserted: ct.clone(),
                        ..Default::default()
                    };
                    black_box(e.report(c, cs, r, clk(10)));
                    e
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn bench_delta(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_delta");
    let n = 100_000;
    for churn in [100u32, 1_000, 10_000] {
        g.throughput(Throughput::Elements(2 * churn as u64));
        g.bench_with_input(BenchmarkId::new("100k_table", churn), &churn, |b, &churn| {
            b.iter_batched(
                || {
                    let (e, s, ss, c, cs) = engine_with(n);
                    // `churn` connections replaced by new ones on both hosts.
                    let (old_c, old_s) = tables(churn, 1);
                    let (mut new_c, mut new_s) = tables(churn, 10_000_000);
                    for r in new_c.iter_mut().chain(new_s.iter_mut()) {
                        let l = r.tuple.local();
                        let rm = r.tuple.remote();
                        // Shift ports so the new tuples differ from the old.
                        r.tuple = if r.side == Side::Client {
                            Tuple::new(SocketAddr::new(l.ip(), l.port().wrapping_add(1)), rm)
                        } else {
                            Tuple::new(l, SocketAddr::new(rm.ip(), rm.port().wrapping_add(1)))
                        };
                    }
                    let d = |up: Vec<SocketRecord>, rm: Vec<SocketRecord>| Report {
                        seq: 2,
                        last_chunk: true,
                        upserted: up,
                        removed: rm.iter().map(|r| r.tuple).collect(),
                        ..Default::default()
                    };
                    (e, s, ss, c, cs, d(new_s, old_s), d(new_c, old_c))
                },
                |(mut e, s, ss, c, cs, ds, dc)| {
                    black_box(e.report(s, ss, ds, clk(20)));
                    black_box(e.report(c, cs, dc, clk(21)));
                    e
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench_full, bench_delta
}
criterion_main!(benches);
