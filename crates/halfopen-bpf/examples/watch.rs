//! `watch`: loads the BPF programs and prints what they see, or (with `--quiet`) only counts it;
//! every `--report` interval one JSON line with counts, losses and this process's CPU time
//! (utime+stime from /proc/self/stat). The tool behind the cost figures in the crate's README
//! section of the report.
//!
//! `cargo run --release -p halfopen-bpf --features bpf --example watch -- [--quiet] [--seconds N]
//!  [--netns COOKIE]...`

use std::time::{Duration, Instant};

use halfopen_bpf::{Bpf, LoadOptions};

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the comm.
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

fn main() {
    let mut quiet = false;
    let mut seconds = u64::MAX;
    let mut opts = LoadOptions::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quiet" => quiet = true,
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--netns" => opts
                .only_netns
                .get_or_insert_with(Vec::new)
                .push(args.next().and_then(|v| v.parse().ok()).expect("--netns COOKIE")),
            other => panic!("unknown argument {other}"),
        }
    }
    let mut bpf = match Bpf::load(&opts) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("watch: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("watch: loaded, witness hook {:?}", bpf.witness_hook());
    let hz = 100.0; // USER_HZ
                    // Measured from here: the loading (verification, attach) is not part of the steady cost.
    let start = Instant::now();
    let ticks0 = cpu_ticks();
    let (mut socks, mut drops) = (Vec::new(), Vec::new());
    let (mut n_socks, mut n_drops) = (0u64, 0u64);
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if let Err(e) = bpf.poll(Duration::from_millis(10), &mut socks, &mut drops) {
            eprintln!("watch: {e}");
            std::process::exit(1);
        }
        n_socks += socks.len() as u64;
        n_drops += drops.len() as u64;
        if !quiet {
            for e in &socks {
                println!(
                    "{} netns={} cookie={} {:?}->{:?} {}->{} owner={:?}{}",
                    e.boot_ns,
                    e.netns_cookie,
                    e.cookie,
                    e.old,
                    e.new,
                    e.tuple.local(),
                    e.tuple.remote(),
                    e.owner,
                    if e.rescued { " RESCUED" } else { "" }
                );
            }
            for d in &drops {
                println!("DROP netns={} {d} {:?}", d.netns_cookie, d);
            }
        }
        socks.clear();
        drops.clear();
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            let cpu = (cpu_ticks() - ticks0) as f64 / hz;
            let lost = bpf.lost().map(|l| format!("{l:?}")).unwrap_or_else(|e| e.to_string());
            let act = bpf
                .activity()
                .map(|a| format!("{a:?}"))
                .unwrap_or_else(|e| e.to_string());
            println!(
                "{{\"secs\":{secs:.1},\"transitions\":{n_socks},\"drops\":{n_drops},\"cpu_pct\":{:.2},\"lost\":\"{lost}\",\"activity\":\"{act}\"}}",
                100.0 * cpu / secs
            );
        }
    }
}
